//! Privileged tests of `NetnsPool` + `Spawner::netns_pool`: the child lands
//! in a fresh network namespace made ahead of time, each one is handed out
//! once, the pool threads move on, the parent's hook already sees the child
//! in it, and a user namespace falls back to `CLONE_NEWNET`.
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_namespaces::{IdMap, Namespaces, NetnsPool, Spawner};
use common::*;

/// `readlink /proc/self/ns/net` and the interface names, from inside.
const PROBE: &str =
    "readlink /proc/self/ns/net; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ' '";

fn probe(ns: Namespaces, pool: &NetnsPool) -> (String, String) {
    let bb = berth_testkit::busybox_binary();
    let out = Spawner::new([bb.to_str().unwrap(), "sh", "-c", PROBE])
        .namespaces(ns)
        .netns_pool(pool)
        .output()
        .unwrap();
    let s = ok_stdout(&out);
    let mut l = s.lines();
    (
        l.next().unwrap_or_default().to_owned(),
        l.next().unwrap_or_default().trim().to_owned(),
    )
}

/// Network namespaces the pool's threads (named `berth-netns-*`) are in now.
fn pool_thread_namespaces() -> Vec<String> {
    let mut v = Vec::new();
    for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.starts_with("berth-netns-") {
            if let Ok(l) = std::fs::read_link(t.path().join("ns/net")) {
                v.push(l.to_string_lossy().into_owned());
            }
        }
    }
    v
}

#[test]
fn pooled_namespaces_are_fresh_distinct_and_handed_out_once() {
    berth_testkit::privileged!();
    let pool = NetnsPool::new(2).unwrap();
    assert!(pool.wait_ready(2, Duration::from_secs(10)), "{pool:?}");
    let host = own_ns("net");
    let mut seen = Vec::new();
    for i in 0..4 {
        // Both clone paths: plain (CLONE_VM fast path) and with a pid
        // namespace + init (clone3 path).
        let ns = if i % 2 == 0 {
            Namespaces::NET
        } else {
            Namespaces::NET | Namespaces::PID
        };
        let (inode, ifaces) = probe(ns, &pool);
        assert!(inode.starts_with("net:["), "{inode}");
        assert_ne!(inode, host, "spawn {i} stayed in the host's netns");
        assert_eq!(ifaces, "lo", "spawn {i}: a fresh netns has only lo");
        assert!(!seen.contains(&inode), "netns {inode} handed out twice");
        seen.push(inode);
        pool.wait_ready(2, Duration::from_secs(10));
    }
    let st = pool.stats();
    assert!(st.handed_out >= 4, "{st:?}");
    assert_eq!(st.failed, None);
    // The threads moved on to new namespaces: none is still in one we got.
    assert!(pool.wait_ready(2, Duration::from_secs(10)));
    let now = pool_thread_namespaces();
    for s in &seen {
        assert!(!now.contains(s), "a pool thread is still in {s}: {now:?}");
    }
}

#[test]
fn hook_sees_the_child_in_its_pooled_namespace() {
    berth_testkit::privileged!();
    let pool = NetnsPool::new(1).unwrap();
    assert!(pool.wait_ready(1, Duration::from_secs(10)));
    let from_hook = Arc::new(Mutex::new(String::new()));
    let slot = from_hook.clone();
    let bb = berth_testkit::busybox_binary();
    let out = Spawner::new([bb.to_str().unwrap(), "readlink", "/proc/self/ns/net"])
        .namespaces(Namespaces::NET | Namespaces::UTS)
        .netns_pool(&pool)
        .after_clone(move |child| {
            let l = std::fs::read_link(format!("/proc/{}/ns/net", child.pid()))?;
            *slot.lock().unwrap() = l.to_string_lossy().into_owned();
            Ok(())
        })
        .output()
        .unwrap();
    let inside = ok_stdout(&out).trim().to_owned();
    assert_eq!(pool.stats().handed_out, 1, "{pool:?}");
    assert_ne!(inside, own_ns("net"));
    assert_eq!(*from_hook.lock().unwrap(), inside);
}

#[test]
fn a_new_user_namespace_gets_its_own_netns_from_clone() {
    berth_testkit::privileged!();
    let pool = NetnsPool::new(1).unwrap();
    assert!(pool.wait_ready(1, Duration::from_secs(10)));
    let bb = berth_testkit::busybox_binary();
    // Root of the new user namespace must own its network namespace: it can
    // bring lo up (a pooled one, owned by our user namespace, would refuse).
    let out = Spawner::new([
        bb.to_str().unwrap(),
        "sh",
        "-c",
        "ip link set lo up && readlink /proc/self/ns/net",
    ])
    .namespaces(Namespaces::USER | Namespaces::NET)
    .uid_map(IdMap::new(0, 0, 1))
    .gid_map(IdMap::new(0, 0, 1))
    .netns_pool(&pool)
    .output()
    .unwrap();
    let inside = ok_stdout(&out).trim().to_owned();
    assert_ne!(inside, own_ns("net"));
    let st = pool.stats();
    assert_eq!((st.handed_out, st.misses), (0, 0), "{st:?}");
}

/// `ip -o link show lo`'s flags, from inside a child of `pool`.
fn lo_flags_inside(pool: &NetnsPool) -> String {
    let bb = berth_testkit::busybox_binary();
    let out = Spawner::new([bb.to_str().unwrap(), "ip", "-o", "link", "show", "lo"])
        .namespaces(Namespaces::NET)
        .netns_pool(pool)
        .output()
        .unwrap();
    let s = ok_stdout(&out);
    s.split(['<', '>']).nth(1).unwrap_or_default().to_owned()
}

#[test]
fn a_loopback_up_pool_hands_out_namespaces_with_lo_up() {
    berth_testkit::privileged!();
    let up = NetnsPool::with_loopback_up(1).unwrap();
    let down = NetnsPool::new(1).unwrap();
    assert!(up.loopback_up() && !down.loopback_up());
    for _ in 0..2 {
        assert!(up.wait_ready(1, Duration::from_secs(10)), "{up:?}");
        assert!(down.wait_ready(1, Duration::from_secs(10)), "{down:?}");
        let flags = lo_flags_inside(&up);
        assert!(flags.split(',').any(|f| f == "UP"), "lo not up: <{flags}>");
        let flags = lo_flags_inside(&down);
        assert!(!flags.split(',').any(|f| f == "UP"), "lo up: <{flags}>");
    }
    assert_eq!(up.stats().handed_out, 2, "{up:?}");
    assert_eq!(up.stats().failed, None);
}
