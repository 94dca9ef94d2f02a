//! Privileged tier: containers on the busybox rootfs, every option observed from inside.

mod common;

use berth::{Container, Mount, Network, Rootfs, Stdio};
#[allow(unused_imports)]
use berth::{Limit, Resources};
use common::*;

#[test]
fn smoke_isolation() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("smoke");
    let (st, out, err) = sh(
        busybox(&id, &root).hostname("inside"),
        "hostname; echo pid=$$; ls /sys/class/net | tr '\\n' ' '; echo; grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status; cat /proc/self/cgroup",
    );
    assert!(st.success(), "status {st:?}, stderr {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "inside", "{out}");
    assert_eq!(lines[1], "pid=1", "{out}");
    assert_eq!(lines[2].trim(), "lo", "{out}");
    assert!(out.contains("CapEff:\t00000000a80425fb"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("0::/\n"), "own cgroup namespace: {out}");
    assert_eq!(
        footprint(root.path(), &id).state,
        Vec::<std::path::PathBuf>::new()
    );
}
