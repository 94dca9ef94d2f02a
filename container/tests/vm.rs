//! VM tier: cgroup v2 limits enforced end to end (run with
//! `scripts/vm-test -p berth --test vm`).

mod common;

use std::time::Duration;

use berth::{ContainerEvent, Limit, Mount, Resources, Stdio};
use common::*;

/// Held by the tests that cause OOM kills: one counts every OOM kill of
/// the machine and must see only its own.
static OOM_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A container limited to 32 MiB (no swap) that writes 200 MB to a tmpfs:
/// its pages are charged to the container, so it is OOM-killed.
fn memory_hog(id: &str, root: &tempfile::TempDir) -> berth::ContainerBuilder {
    busybox(id, root)
        .resources(
            Resources::new()
                .memory_max(Limit::Value(32 << 20))
                .memory_swap_max(Limit::Value(0)),
        )
        .mount(Mount::tmpfs("/big"))
        .command([
            "/bin/sh",
            "-c",
            "head -c 200000000 /dev/zero > /big/fill; echo survived",
        ])
        .stdout(Stdio::Null)
}

#[test]
fn over_memory_workload_is_oom_killed_and_reported() {
    berth_testkit::vm_only!();
    let _serial = OOM_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let root = state_root();
    let id = berth_testkit::unique_name("oom");
    // A bystander container without a limit: the OOM kill must stay
    // inside the hog's cgroup.
    let by_id = berth_testkit::unique_name("byst");
    let mut bystander = busybox(&by_id, &root)
        .stdout(Stdio::Null)
        .command(["/bin/sleep", "1000"])
        .spawn()
        .unwrap();
    let vm_ooms = || -> u64 {
        std::fs::read_to_string("/proc/vmstat")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .map_or(0, |v| v.trim().parse().unwrap())
    };
    let ooms_before = vm_ooms();
    let mut c = memory_hog(&id, &root).spawn().unwrap();
    let mut events = c.events().unwrap();
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !seen
        .iter()
        .any(|e| matches!(e, ContainerEvent::OomKill { .. }))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no OOM kill reported: {seen:?}"
        );
        seen.extend(events.next(Some(Duration::from_secs(5))).unwrap());
    }
    c.wait_timeout(Duration::from_secs(60)).unwrap();
    let stats = c.stats().unwrap();
    let mem = stats.cgroup.unwrap().memory.unwrap();
    assert!(mem.events.oom_kill >= 1, "{mem:?}");
    // Every OOM kill of the machine meanwhile was one of the hog's cgroup
    // (a cgroup OOM, not a global one), and the bystander lives on.
    assert_eq!(
        vm_ooms() - ooms_before,
        mem.events.oom_kill,
        "OOM kills outside the container's cgroup"
    );
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "the bystander was killed"
    );
    println!(
        "OOM: {} kill(s), all inside the hog's cgroup; bystander alive",
        mem.events.oom_kill
    );
    c.destroy().unwrap();
    bystander.destroy().unwrap();
}

#[test]
fn pids_and_memory_limits_are_enforced() {
    berth_testkit::vm_only!();
    let root = state_root();
    let id = berth_testkit::unique_name("lim");
    let out = {
        let (st, out, err) = sh(
            busybox(&id, &root).resources(
                Resources::new()
                    .pids_max(Limit::Value(4))
                    .memory_max(Limit::Value(64 << 20)),
            ),
            "cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/memory.max; \
             (for i in 1 2 3 4 5 6; do sleep 5 & done) 2>/dev/null; echo started; \
             grep max /sys/fs/cgroup/pids.events",
        );
        assert!(st.success(), "{out} {err}");
        out
    };
    let mut l = out.lines();
    assert_eq!(l.next(), Some("4"));
    assert_eq!(l.next(), Some(&*(64u64 << 20).to_string()));
    assert_eq!(l.next(), Some("started"));
    let max_events: u64 = l
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(max_events >= 1, "{out}");
}

/// Time `n` fork+exec+wait round trips of `/bin/true` from the test
/// process itself (outside the container): sorted latencies.
fn fork_probe(n: usize) -> Vec<Duration> {
    let mut v: Vec<Duration> = (0..n)
        .map(|_| {
            let t = std::time::Instant::now();
            let st = std::process::Command::new("/bin/true").status().unwrap();
            assert!(st.success());
            t.elapsed()
        })
        .collect();
    v.sort();
    v
}

/// A fork bomb inside the container stops at `pids.max`, and the host stays
/// responsive meanwhile: the test's own fork+exec round trips, measured
/// before and during the bomb, stay bounded (the bomb's processes spin on
/// `fork` forever, so this is also a CPU hog).
#[test]
fn fork_bomb_stops_at_pids_max_and_host_stays_responsive() {
    berth_testkit::vm_only!();
    let root = state_root();
    let id = berth_testkit::unique_name("bomb");
    let max = 48u64;
    let before = fork_probe(20);
    let mut c = busybox(&id, &root)
        .resources(Resources::new().pids_max(Limit::Value(max)))
        // berth's init reaps the bomb's orphans, so the bomb never stalls
        // on zombies: every process keeps trying to fork.
        .init(true)
        .stdout(Stdio::Null)
        .stderr(Stdio::Null)
        // A shell bomb dies out: ash exits on its first failed fork. Each
        // awk here loops on system("awk <itself> &") forever, and a failed
        // fork is just -1 to it, so the bomb keeps pushing at the limit.
        .env("P", r#"BEGIN { while (1) system("awk \"$P\" &") }"#)
        .command(["/bin/sh", "-c", "awk \"$P\" & exec sleep 1000"])
        .spawn()
        .unwrap();
    let cg = c.cgroup().unwrap().path().to_path_buf();
    let read = |f: &str| std::fs::read_to_string(cg.join(f)).unwrap();
    let max_events = || -> u64 {
        read("pids.events")
            .lines()
            .find_map(|l| l.strip_prefix("max "))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    // The bomb reaches the limit and the kernel refuses its forks.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let cur: u64 = read("pids.current").trim().parse().unwrap();
        assert!(cur <= max, "pids.current {cur} > pids.max {max}");
        if cur >= max - 1 && max_events() > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the bomb never reached pids.max: current {cur}, events {}",
            read("pids.events")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let refused = max_events();
    let during = fork_probe(20);
    let cur: u64 = read("pids.current").trim().parse().unwrap();
    let refused_after = max_events();
    assert!(cur <= max, "pids.current {cur} > pids.max {max}");
    // Still at the limit: the bomb is alive and held there.
    assert!(cur >= max / 2, "the bomb died out: pids.current {cur}");
    assert!(
        refused_after > refused,
        "the bomb stopped trying: {refused} -> {refused_after} refused forks"
    );
    assert!(c.try_wait().unwrap().is_none(), "the workload died");
    let med = |v: &[Duration]| v[v.len() / 2];
    println!(
        "fork bomb held at pids.max {max} (pids.current {cur}, {refused_after} forks refused); \
         the test's fork+exec of /bin/true: median {:?} / max {:?} before, median {:?} / max {:?} during",
        med(&before),
        before[before.len() - 1],
        med(&during),
        during[during.len() - 1]
    );
    // Responsive: no round trip takes more than 5 s even under TCG (a
    // host starved of pids or CPU would stall here or fail to fork).
    assert!(
        during[during.len() - 1] < Duration::from_secs(5),
        "host unresponsive during the bomb: {during:?}"
    );
    let t = std::time::Instant::now();
    c.destroy().unwrap();
    println!("destroy of the bomb took {:?}", t.elapsed());
    let f = footprint(root.path(), &id);
    assert!(f.cgroups.is_empty() && f.state.is_empty(), "{f:?}");
}

/// The async events stream (feature `tokio`) reports the OOM kill of a
/// workload over its memory limit, then its exit, on a current-thread
/// runtime (run with `scripts/vm-test -p berth --features tokio --test vm`).
#[cfg(feature = "tokio")]
#[test]
fn async_events_report_an_oom_kill() {
    berth_testkit::vm_only!();
    let _serial = OOM_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let root = state_root();
    let id = berth_testkit::unique_name("aoom");
    rt.block_on(async {
        let mut c = memory_hog(&id, &root).spawn_async().await.unwrap();
        let mut events = c.events_async().unwrap();
        let mut seen = Vec::new();
        tokio::time::timeout(Duration::from_secs(120), async {
            while let Some(e) = events.next().await {
                let e = e.unwrap();
                seen.push(e);
                if e == ContainerEvent::Exited {
                    break;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no exit within 120 s: {seen:?}"));
        assert_eq!(seen.first(), Some(&ContainerEvent::Started), "{seen:?}");
        assert!(
            seen.iter()
                .any(|e| matches!(e, ContainerEvent::OomKill { count } if *count >= 1)),
            "no OOM kill reported: {seen:?}"
        );
        println!("async events of an OOM: {seen:?}");
        c.wait_async().await.unwrap();
        c.destroy_async().await.unwrap();
    });
    assert_no_footprint(root.path(), &id);
}
