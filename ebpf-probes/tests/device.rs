//! Privileged tests of the cgroup device filter, observed from a child
//! process inside the filtered cgroup.

mod common;

use std::ffi::CString;
use std::os::fd::AsFd;

use berth_ebpf_probes::sys::{self, AttachType, ProgType, Program};
use berth_ebpf_probes::{DeviceAccess, DeviceFilter, DeviceKind, DeviceRule, Error};
use common::{only_null, run_in_cgroup, test_cgroup, try_open};

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// Child check: /dev/null writable (write succeeds), /dev/zero → `zero_errno`.
fn null_ok_zero(cg: &common::TestCgroup, zero_errno: i32) -> i32 {
    let null = c("/dev/null");
    let zero = c("/dev/zero");
    run_in_cgroup(cg, || {
        // SAFETY: raw syscalls on valid paths/buffers.
        unsafe {
            let fd = libc::open(null.as_ptr(), libc::O_WRONLY);
            if fd < 0 {
                return 10;
            }
            if libc::write(fd, b"x".as_ptr().cast(), 1) != 1 {
                return 11;
            }
            libc::close(fd);
        }
        if try_open(&zero, libc::O_RDONLY) != zero_errno {
            return 12;
        }
        0
    })
    .1
}

#[test]
fn only_null_allowed_inside_and_outside_unaffected() {
    berth_testkit::privileged!();
    let cg = test_cgroup("bdev");
    let h = only_null().attach(&cg.fd).unwrap();
    assert_eq!(
        null_ok_zero(&cg, libc::EPERM),
        0,
        "inside: null ok, zero EPERM"
    );
    // A process outside the cgroup (this one) is unaffected.
    assert_eq!(try_open(&c("/dev/zero"), libc::O_RDONLY), 0);
    assert_eq!(
        sys::query_cgroup(cg.fd.as_fd(), AttachType::CgroupDevice).unwrap(),
        vec![h.program_id().unwrap()]
    );
    h.detach().unwrap();
    assert!(sys::query_cgroup(cg.fd.as_fd(), AttachType::CgroupDevice)
        .unwrap()
        .is_empty());
    assert_eq!(null_ok_zero(&cg, 0), 0, "after detach: zero opens again");
}

#[test]
fn drop_detaches() {
    berth_testkit::privileged!();
    let cg = test_cgroup("bdrp");
    {
        let _h = only_null().attach(&cg.fd).unwrap();
        assert_eq!(null_ok_zero(&cg, libc::EPERM), 0);
    }
    assert!(sys::query_cgroup(cg.fd.as_fd(), AttachType::CgroupDevice)
        .unwrap()
        .is_empty());
    assert_eq!(null_ok_zero(&cg, 0), 0);
}

#[test]
fn thousand_replacements_leave_exactly_one_program() {
    berth_testkit::privileged!();
    let cg = test_cgroup("brep");
    let mut both = only_null();
    both.rule(DeviceRule::allow(
        DeviceKind::Char,
        Some(1),
        Some(5),
        DeviceAccess::READ,
    ));
    let null = only_null();
    let mut h = both.attach(&cg.fd).unwrap();
    for i in 0..1000 {
        h.replace(if i % 2 == 0 { &both } else { &null }).unwrap();
    }
    // The last replacement (i = 999) installed `only_null`.
    let ids = sys::query_cgroup(cg.fd.as_fd(), AttachType::CgroupDevice).unwrap();
    assert_eq!(ids, vec![h.program_id().unwrap()]);
    assert_eq!(null_ok_zero(&cg, libc::EPERM), 0);
    h.replace(&both).unwrap();
    assert_eq!(null_ok_zero(&cg, 0), 0, "replacement takes effect");
    assert_eq!(
        sys::query_cgroup(cg.fd.as_fd(), AttachType::CgroupDevice)
            .unwrap()
            .len(),
        1
    );
    h.detach().unwrap();
    assert!(sys::query_cgroup(cg.fd.as_fd(), AttachType::CgroupDevice)
        .unwrap()
        .is_empty());
}

#[test]
fn container_default_allowlist_in_the_kernel() {
    berth_testkit::privileged!();
    let cg = test_cgroup("bdef");
    let _h = DeviceFilter::container_default().attach(&cg.fd).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = c(dir.path().join("kmsg").to_str().unwrap());
    let kmsg = c("/dev/kmsg");
    assert_eq!(
        try_open(&kmsg, libc::O_RDONLY),
        0,
        "outside the cgroup /dev/kmsg opens"
    );
    let allowed: Vec<CString> = [
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/urandom",
        "/dev/random",
    ]
    .iter()
    .map(|p| c(p))
    .collect();
    let (_, code) = run_in_cgroup(&cg, || {
        for (i, p) in allowed.iter().enumerate() {
            if try_open(p, libc::O_RDWR) != 0 {
                return 20 + i as i32;
            }
        }
        // mknod of any char device is allowed ('m')...
        // SAFETY: valid path.
        if unsafe { libc::mknod(node.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 11)) } != 0 {
            return 30;
        }
        // ...opening /dev/kmsg (1:11) is not.
        if try_open(&kmsg, libc::O_RDONLY) != libc::EPERM {
            return 31;
        }
        0
    });
    assert_eq!(code, 0);
}

#[test]
fn bad_rules_fail_cleanly_and_attach_nothing() {
    berth_testkit::privileged!();
    let cg = test_cgroup("bbad");
    let mut f = only_null();
    f.rule(DeviceRule::allow(
        DeviceKind::Block,
        Some(9000),
        None,
        DeviceAccess::READ,
    ));
    let e = f.attach(&cg.fd).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidDeviceRule { index: 1, reason } if reason.contains("major 9000")),
        "{e}"
    );
    assert!(sys::query_cgroup(cg.fd.as_fd(), AttachType::CgroupDevice)
        .unwrap()
        .is_empty());
    // A tmpfs is not a cgroup: clear error.
    let tmp = tempfile::tempdir().unwrap();
    let e = berth_ebpf_probes::open_cgroup(tmp.path()).unwrap_err();
    assert!(e.to_string().contains("not a cgroup v2 directory"), "{e}");
}

#[test]
fn verifier_log_is_in_the_error() {
    berth_testkit::privileged!();
    let mut a = berth_ebpf_probes::asm::Asm::new();
    // A device program must return 0 or 1.
    a.mov64_imm(berth_ebpf_probes::asm::Reg::R0, 2).exit();
    let insns = a.build().unwrap();
    let e = Program::load(ProgType::CgroupDevice, "bad", &insns, "GPL", None).unwrap_err();
    match e {
        Error::Verifier { log, program, .. } => {
            assert_eq!(program, "bad");
            assert!(log.contains("R0"), "{log}");
        }
        other => panic!("expected a verifier error, got {other}"),
    }
}

#[test]
fn every_generated_program_passes_the_verifier() {
    berth_testkit::privileged!();
    let cg = test_cgroup("bver");
    let id = berth_ebpf_probes::cgroup_id(&cg.fd).unwrap();
    let names = berth_ebpf_probes::load_all_programs(id).unwrap();
    assert_eq!(names.len(), 5, "{names:?}");
    // Device filters of every shape: empty, every rule kind, wildcards, dead tails.
    let mut big = DeviceFilter::new();
    for i in 0..40u32 {
        let kind = [DeviceKind::All, DeviceKind::Char, DeviceKind::Block][i as usize % 3];
        let acc = DeviceAccess::from_bits_truncate(1 + i % 7);
        let maj = (i % 2 == 0).then_some(i);
        let min = (i % 3 == 0).then_some(i * 7);
        big.rule(if i % 4 == 0 {
            DeviceRule::deny(kind, maj, min, acc)
        } else {
            DeviceRule::allow(kind, maj, min, acc)
        });
    }
    let mut tail = only_null();
    tail.rule(DeviceRule::allow(
        DeviceKind::All,
        None,
        None,
        DeviceAccess::all(),
    ));
    for f in [
        DeviceFilter::new(),
        only_null(),
        DeviceFilter::container_default(),
        big,
        tail,
    ] {
        f.load().unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn verification_stays_linear_in_the_rule_count() {
    berth_testkit::privileged!();
    // 100 rules, mixed kinds and wildcards: the verifier must walk each
    // instruction a bounded number of times (states are pruned at each rule;
    // on 6.18 it walks each exactly once).
    let mut f = DeviceFilter::new();
    f.rule(DeviceRule::deny(
        DeviceKind::All,
        None,
        None,
        DeviceAccess::all(),
    ));
    for i in 0..99u32 {
        let kind = [DeviceKind::All, DeviceKind::Char, DeviceKind::Block][i as usize % 3];
        f.rule(DeviceRule::allow(
            kind,
            Some(i % 50),
            (i % 2 == 0).then_some(i),
            DeviceAccess::READ,
        ));
    }
    let insns = f.compile().unwrap();
    let (_p, log) =
        Program::load_with_log(ProgType::CgroupDevice, "stats", &insns, "GPL", None, 4).unwrap();
    let processed: usize = log
        .split("processed ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no statistics in {log:?}"));
    assert!(
        processed <= 2 * insns.len(),
        "{processed} instructions processed for a {}-slot program",
        insns.len()
    );
}

#[test]
fn cgroup_link_detaches_when_closed() {
    berth_testkit::privileged!();
    let cg = test_cgroup("blnk");
    let prog = only_null().load().unwrap();
    let link = sys::link_cgroup(cg.fd.as_fd(), &prog, AttachType::CgroupDevice).unwrap();
    assert_eq!(
        sys::query_cgroup(cg.fd.as_fd(), AttachType::CgroupDevice).unwrap(),
        vec![prog.id().unwrap()]
    );
    assert_eq!(null_ok_zero(&cg, libc::EPERM), 0);
    drop(link);
    // A child forked by a test running in parallel may hold a copy of the
    // link fd until it execs; the link goes when the last copy is closed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !sys::query_cgroup(cg.fd.as_fd(), AttachType::CgroupDevice)
        .unwrap()
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "link still attached 10 s after its fd was closed"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(null_ok_zero(&cg, 0), 0);
}

/// `attach_shared`: the container default is loaded once per process, the
/// same program attached to every cgroup; another filter gets its own,
/// enforced; nothing is detached when the call returns.
#[test]
fn attach_shared_loads_the_default_once() {
    berth_testkit::privileged!();
    let query = |cg: &common::TestCgroup| {
        sys::query_cgroup(cg.fd.as_fd(), AttachType::CgroupDevice).unwrap()
    };
    let (a, b, c) = (
        test_cgroup("bsha"),
        test_cgroup("bshb"),
        test_cgroup("bshc"),
    );
    DeviceFilter::container_default()
        .attach_shared(&a.fd)
        .unwrap();
    DeviceFilter::container_default()
        .attach_shared(&b.fd)
        .unwrap();
    let (ia, ib) = (query(&a), query(&b));
    assert_eq!(ia.len(), 1, "{ia:?}");
    assert_eq!(ia, ib, "the default program is loaded once");
    only_null().attach_shared(&c.fd).unwrap();
    let ic = query(&c);
    assert_eq!(ic.len(), 1, "{ic:?}");
    assert_ne!(ic, ia);
    assert_eq!(
        null_ok_zero(&c, libc::EPERM),
        0,
        "inside: null ok, zero EPERM"
    );
}
