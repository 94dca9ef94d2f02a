//! Helpers shared by this crate's integration tests.
#![allow(dead_code)]

use std::path::Path;

use berth_namespaces::{Namespaces, Spawner, Step};

/// The namespace inode link of our own process, e.g. `net:[4026531840]`.
pub fn own_ns(name: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{name}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Steps that make `rootfs` (read-only fixture) the child's root with a
/// fresh /proc and a tmpfs /tmp: private `/`, bind rootfs on itself, mounts,
/// pivot_root.
pub fn rootfs_steps(rootfs: &Path, proc_: bool) -> Vec<Step> {
    let mut v = vec![
        Step::make_private("/", true),
        Step::bind(rootfs, rootfs, true, false),
        Step::mount(
            Some("tmpfs"),
            rootfs.join("tmp"),
            Some("tmpfs"),
            libc::MS_NOSUID | libc::MS_NODEV,
            Some("size=1m"),
        ),
    ];
    if proc_ {
        v.push(Step::mount(
            Some("proc"),
            rootfs.join("proc"),
            Some("proc"),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            None,
        ));
    }
    v.push(Step::pivot_root(rootfs));
    v
}

/// A spawner running `sh -c script` inside the busybox rootfs in new
/// mount (+ given) namespaces, stdout captured by `output()`.
pub fn sh_in_rootfs(script: &str, ns: Namespaces) -> Spawner {
    let rootfs = berth_testkit::busybox_rootfs();
    let mut s = Spawner::new(["/bin/sh", "-c", script]);
    s.namespaces(ns | Namespaces::MOUNT)
        .env_clear()
        .env("PATH", "/bin")
        .steps(rootfs_steps(rootfs, ns.contains(Namespaces::PID)));
    s
}

/// Stdout of a finished `output()` as a string, asserting success.
pub fn ok_stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "child failed: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
