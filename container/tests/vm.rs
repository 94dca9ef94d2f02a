//! VM tier: cgroup v2 limits enforced end to end (run with
//! `scripts/vm-test -p berth --test vm`).

mod common;

use std::time::Duration;

use berth::{ContainerEvent, Limit, Mount, Resources, Stdio};
use common::*;

#[test]
fn over_memory_workload_is_oom_killed_and_reported() {
    berth_testkit::vm_only!();
    let root = state_root();
    let id = berth_testkit::unique_name("oom");
    let mut c = busybox(&id, &root)
        .resources(
            Resources::new()
                .memory_max(Limit::Value(32 << 20))
                .memory_swap_max(Limit::Value(0)),
        )
        .mount(Mount::tmpfs("/big"))
        // Fill an unlimited tmpfs: its pages are charged to the container.
        .command([
            "/bin/sh",
            "-c",
            "head -c 200000000 /dev/zero > /big/fill; echo survived",
        ])
        .stdout(Stdio::Null)
        .spawn()
        .unwrap();
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
    c.destroy().unwrap();
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
