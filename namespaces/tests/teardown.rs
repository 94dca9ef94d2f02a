//! Privileged tests of `Spawner::background_teardown`: the child's mount
//! namespace is held by an fd from the spawn until the child is reaped, then
//! let go on the release thread (never left in the process's fd table), and
//! it is gone once that thread dropped it; without the option nothing is held.
mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use berth_namespaces::{Namespaces, Spawner};
use common::*;

/// The tests look at the process's fd table: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Links of every fd of every thread of this process (the release thread
/// has a private fd table, so `/proc/self/fd` alone would not see it).
fn fd_links_of_all_threads() -> Vec<String> {
    let mut v = Vec::new();
    for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let Ok(fds) = std::fs::read_dir(t.path().join("fd")) else {
            continue;
        };
        for f in fds.flatten() {
            if let Ok(l) = std::fs::read_link(f.path()) {
                v.push(l.to_string_lossy().into_owned());
            }
        }
    }
    v
}

/// The mount namespace link of `pid`, e.g. `mnt:[4026532000]`.
fn mnt_ns_of(pid: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/mnt"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Wait (at most 5 s) until no thread of ours holds an fd of `ns`.
fn wait_released(ns: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while fd_links_of_all_threads().iter().any(|l| l == ns) {
        assert!(Instant::now() < deadline, "{ns} still held after 5 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn own_fd_links() -> Vec<String> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|f| std::fs::read_link(f.path()).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn held_until_reaped_then_released_in_the_background() {
    berth_testkit::privileged!();
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let bb = berth_testkit::busybox_binary();
    // The child mounts a tmpfs in its (private) namespace, something to
    // unmount, and waits until we close its stdin.
    let mut child = Spawner::new([
        bb.to_str().unwrap(),
        "sh",
        "-c",
        "mount --make-rprivate / && mount -t tmpfs t /mnt && read x; exit 0",
    ])
    .namespaces(Namespaces::MOUNT | Namespaces::PID)
    .stdin(berth_namespaces::Stdio::Piped)
    .background_teardown(true)
    .spawn()
    .unwrap();
    let ns = mnt_ns_of(child.pid());
    assert_ne!(ns, own_ns("mnt"));
    assert_eq!(
        own_fd_links().iter().filter(|l| **l == ns).count(),
        1,
        "the spawner holds one fd of the child's mount namespace"
    );
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    assert!(
        !own_fd_links().contains(&ns),
        "after wait the fd is no longer in the process's table"
    );
    // The release thread drops its copy: no thread holds the namespace.
    wait_released(&ns);
}

#[test]
fn nothing_held_without_the_option_or_without_a_mount_namespace() {
    berth_testkit::privileged!();
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let bb = berth_testkit::busybox_binary();
    for (ns, on) in [
        (Namespaces::MOUNT | Namespaces::PID, false),
        (Namespaces::UTS | Namespaces::PID, true),
    ] {
        let before = own_fd_links().len();
        let mut child = Spawner::new([bb.to_str().unwrap(), "sleep", "1"])
            .namespaces(ns)
            .background_teardown(on)
            .spawn()
            .unwrap();
        let mnt = own_fd_links()
            .iter()
            .filter(|l| l.starts_with("mnt:"))
            .count();
        assert_eq!(
            mnt, 0,
            "{ns:?} with background_teardown({on}) holds a mount namespace"
        );
        child.kill(libc::SIGKILL).unwrap();
        child.wait().unwrap();
        drop(child);
        assert_eq!(own_fd_links().len(), before);
    }
}

#[test]
fn dropping_an_unwaited_child_releases_it_too() {
    berth_testkit::privileged!();
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let bb = berth_testkit::busybox_binary();
    let child = Spawner::new([bb.to_str().unwrap(), "sleep", "30"])
        .namespaces(Namespaces::MOUNT | Namespaces::PID)
        .background_teardown(true)
        .spawn()
        .unwrap();
    let ns = mnt_ns_of(child.pid());
    drop(child); // SIGKILL + reap
    assert!(!own_fd_links().contains(&ns));
    wait_released(&ns);
}
