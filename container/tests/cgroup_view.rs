//! What a container sees at `/sys/fs/cgroup`: its own cgroup, never the
//! host's tree (issue 21 item 7: runc shows only the container's own
//! cgroup), with or without a network and a cgroup namespace of its own.

mod common;

use berth::{Namespaces, Network};
use common::*;

/// `ls /sys/fs/cgroup` and the cgroup2 `cgroup.procs` seen inside a
/// container built by `tweak`.
fn cgroup_view(tweak: impl FnOnce(berth::ContainerBuilder) -> berth::ContainerBuilder) -> String {
    let root = state_root();
    let id = berth_testkit::unique_name("cgview");
    let b = tweak(busybox(&id, &root));
    let (st, out, err) = sh(
        b,
        "ls /sys/fs/cgroup | tr '\\n' ' '; echo; cat /sys/fs/cgroup/cgroup.procs | wc -l",
    );
    assert!(st.success(), "{out}{err}");
    out
}

/// The container's own cgroup only: cgroup2 files at the top, none of
/// the host's v1 hierarchies or its unified mount, and no process but the
/// container's (its shell and `cat`, at most a `wc`).
fn assert_own_cgroup(out: &str, case: &str) {
    let (ls, procs) = out.split_once('\n').unwrap();
    let names: Vec<&str> = ls.split_whitespace().collect();
    assert!(
        names.contains(&"cgroup.procs"),
        "{case}: /sys/fs/cgroup is not a cgroup2 directory: {names:?}"
    );
    for host in ["unified", "memory", "cpu", "systemd", "pids"] {
        assert!(
            !names.contains(&host),
            "{case}: the host's cgroup tree is visible: {names:?}"
        );
    }
    let n: usize = procs.trim().parse().unwrap();
    assert!(
        (1..=3).contains(&n),
        "{case}: {n} processes in /sys/fs/cgroup/cgroup.procs"
    );
}

#[test]
fn own_netns_and_cgroup_namespace_see_their_own_cgroup() {
    berth_testkit::privileged!();
    let out = cgroup_view(|b| b);
    assert_own_cgroup(&out, "own netns, cgroup namespace");
}

#[test]
fn own_netns_without_cgroup_namespace_sees_its_own_cgroup() {
    berth_testkit::privileged!();
    let out = cgroup_view(|b| b.share_namespaces(Namespaces::CGROUP));
    assert_own_cgroup(&out, "own netns, no cgroup namespace");
}

/// The host's network namespace: `/sys` is a read-only bind of the host's
/// (a new sysfs needs a network namespace of its own), which carries the
/// host's `/sys/fs/cgroup` tree below it (Kubernetes' hostNetwork pods).
#[test]
fn host_network_with_cgroup_namespace_sees_its_own_cgroup() {
    berth_testkit::privileged!();
    let out = cgroup_view(|b| b.network(Network::host()));
    assert_own_cgroup(&out, "host netns, cgroup namespace");
}

#[test]
fn host_network_without_cgroup_namespace_sees_its_own_cgroup() {
    berth_testkit::privileged!();
    let out = cgroup_view(|b| {
        b.network(Network::host())
            .share_namespaces(Namespaces::CGROUP)
    });
    assert_own_cgroup(&out, "host netns, no cgroup namespace");
}
