//! Leak checks: one test in its own binary, so no parallel test opens or
//! closes fds while it counts them.

mod common;

use std::os::fd::AsFd;

use berth_ebpf_probes::sys::{self, AttachType};
use berth_ebpf_probes::{
    DeviceAccess, DeviceFilter, DeviceKind, DeviceRule, ExecProbe, NetCounter, SyscallCounter,
};

fn prog_ids_held_by_this_process() -> Vec<u32> {
    std::fs::read_dir("/proc/self/fdinfo")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("prog_id:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .collect()
}

#[test]
fn nothing_is_left_behind() {
    berth_testkit::privileged!();
    let cg = common::test_cgroup("bleak");
    // Warm up once-per-process state (tracefs discovery) before counting.
    drop(ExecProbe::attach(&cg.fd).unwrap());
    let fds = berth_testkit::open_fds();
    let progs = prog_ids_held_by_this_process();

    // Device filter: attach, 100 replacements, detach.
    let mut h = DeviceFilter::container_default().attach(&cg.fd).unwrap();
    for _ in 0..100 {
        h.replace(&DeviceFilter::container_default()).unwrap();
    }
    h.detach().unwrap();
    // A bad filter fails before touching the kernel.
    let mut bad = DeviceFilter::new();
    bad.rule(DeviceRule::allow(
        DeviceKind::Char,
        Some(1),
        Some(1 << 21),
        DeviceAccess::READ,
    ));
    assert!(bad.attach(&cg.fd).is_err());

    // Probes: attach and drop.
    let exec = ExecProbe::attach(&cg.fd).unwrap();
    let exec_id = exec.program().id().unwrap();
    drop(exec);
    drop(SyscallCounter::attach(&cg.fd).unwrap());
    drop(NetCounter::attach(&cg.fd).unwrap());

    assert_eq!(berth_testkit::open_fds(), fds, "fd leaked");
    assert_eq!(prog_ids_held_by_this_process(), progs);
    assert!(!prog_ids_held_by_this_process().contains(&exec_id));
    for t in [
        AttachType::CgroupDevice,
        AttachType::CgroupInetIngress,
        AttachType::CgroupInetEgress,
    ] {
        assert!(
            sys::query_cgroup(cg.fd.as_fd(), t).unwrap().is_empty(),
            "{t:?} programs left attached"
        );
    }
}
