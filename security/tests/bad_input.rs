//! Bad input gives a clear error and leaves nothing behind (no fd, no child).

use berth_security::{
    apparmor_active, selinux_active, CapSet, Capabilities, Capability, Error, FsAccess, Landlock,
    Resource, SeccompProfile, SecurityPolicy,
};
use berth_testkit::{child_pids, open_fds};

/// Tests in this binary run in parallel threads of one process: serialise
/// them so the fd counts of one are not disturbed by another.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn leak_check<F: FnOnce()>(f: F) {
    let fds = open_fds();
    let kids = child_pids();
    f();
    assert_eq!(open_fds(), fds, "fd leak");
    assert_eq!(child_pids(), kids, "child leak");
}

#[test]
fn unknown_capability_name() {
    let _serial = serial();
    let e = CapSet::from_names(["CAP_CHOWN", "CAP_TIME_TRAVEL"]).unwrap_err();
    assert!(matches!(e, Error::UnknownCapability { ref name } if name == "CAP_TIME_TRAVEL"));
    assert!(e.to_string().contains("CAP_TIME_TRAVEL"));
    assert!(CapSet::docker_with(["NET_ADMIN"], ["FLY"]).is_err());
}

#[test]
fn inconsistent_capability_sets() {
    let _serial = serial();
    let mut c = Capabilities::docker_default();
    c.effective.insert(Capability::CAP_SYS_ADMIN);
    let e = SecurityPolicy::new().capabilities(c).prepare().unwrap_err();
    assert!(e.to_string().contains("CAP_SYS_ADMIN"), "{e}");
    // An inheritable capability outside the bounding set (the default
    // inheritable set is empty: ask for one).
    let mut c = Capabilities::docker_default();
    c.inheritable.insert(Capability::CAP_KILL);
    c.bounding.remove(Capability::CAP_KILL);
    let e = SecurityPolicy::new().capabilities(c).prepare().unwrap_err();
    assert!(e.to_string().contains("bounding"), "{e}");
}

#[test]
fn rlimit_soft_above_hard() {
    let _serial = serial();
    let e = SecurityPolicy::new()
        .rlimit(Resource::Nofile, 2048, 1024)
        .prepare()
        .unwrap_err();
    assert!(e.to_string().contains("RLIMIT_NOFILE"), "{e}");
    assert!(e.to_string().contains("2048"), "{e}");
    assert!("RLIMIT_WARP".parse::<Resource>().is_err());
}

#[test]
fn oom_score_adj_out_of_range_and_bad_groups() {
    let _serial = serial();
    assert!(matches!(
        SecurityPolicy::new().oom_score_adj(1001).prepare(),
        Err(Error::InvalidOomScoreAdj { value: 1001 })
    ));
    let e = SecurityPolicy::new().groups([1, 2]).prepare().unwrap_err();
    assert!(e.to_string().contains("user()"), "{e}");
}

#[test]
fn bad_seccomp_profiles() {
    let _serial = serial();
    for (json, needle) in [
        (
            r#"{"defaultAction": "SCMP_ACT_EXPLODE"}"#,
            "SCMP_ACT_EXPLODE",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
            "index is 9",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_SOMETIMES"}]}]}"#,
            "SCMP_CMP_SOMETIMES",
        ),
        (r#"{"defaultAction": 5}"#, "parse seccomp profile"),
    ] {
        let e = SeccompProfile::from_docker_json(json).unwrap_err();
        assert!(e.to_string().contains(needle), "{json}: {e}");
    }
    let e =
        berth_security::SyscallRule::by_number(5000, berth_security::Action::Allow).unwrap_err();
    assert!(e.to_string().contains("5000"), "{e}");
}

#[test]
fn unknown_syscall_names_are_skipped() {
    let _serial = serial();
    let p = SeccompProfile::from_docker_json(
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["no_such_call", "getpid"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let prog = p
        .compile(&berth_security::CompileContext::new(CapSet::empty()))
        .unwrap();
    // The same program as without the unknown name ...
    let only_getpid = SeccompProfile::from_docker_json(
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap()
    .compile(&berth_security::CompileContext::new(CapSet::empty()))
    .unwrap();
    assert_eq!(prog.instructions(), only_getpid.instructions());
    // ... which still has the getpid rule: arch check (3), load nr (1), the
    // x32 split (1), `jeq getpid` (1), `ret ALLOW` (1), shared KILL and EPERM
    // returns (2).
    assert_eq!(prog.len(), 9);
    assert!(prog
        .instructions()
        .contains(&(0x15, 1, 0, libc::SYS_getpid as u32)));
}

#[test]
fn landlock_path_missing_closes_ruleset() {
    let _serial = serial();
    leak_check(|| {
        let e = SecurityPolicy::new()
            .no_new_privs(true)
            .landlock(
                Landlock::new()
                    .allow("/", FsAccess::READ)
                    .allow("/berth/no/such/dir", FsAccess::ALL),
            )
            .prepare()
            .unwrap_err();
        assert!(e.to_string().contains("/berth/no/such/dir"), "{e}");
        assert!(e.to_string().contains("No such file"), "{e}");
    });
}

#[test]
fn inactive_lsm_is_a_clear_error() {
    let _serial = serial();
    if !apparmor_active() {
        leak_check(|| {
            let e = SecurityPolicy::new()
                .apparmor_profile("berth-test")
                .prepare()
                .unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::LsmInactive {
                        lsm: "AppArmor",
                        ..
                    }
                ),
                "{e}"
            );
            assert!(e.to_string().contains("AppArmor is not active"), "{e}");
        });
    } else {
        eprintln!("AppArmor is active here: inactive-LSM error not checked for AppArmor");
    }
    if !selinux_active() {
        let e = SecurityPolicy::new()
            .selinux_label("system_u:system_r:container_t:s0")
            .prepare()
            .unwrap_err();
        assert!(e.to_string().contains("SELinux is not active"), "{e}");
    }
    // Labels that can never be valid are rejected before the LSM is even checked.
    let e = SecurityPolicy::new()
        .apparmor_profile("a\nb")
        .prepare()
        .unwrap_err();
    assert!(e.to_string().contains("newline"), "{e}");
}

#[test]
fn good_prepare_then_drop_leaves_nothing() {
    let _serial = serial();
    leak_check(|| {
        let p = SecurityPolicy::docker_default()
            .landlock(Landlock::new().allow("/", FsAccess::READ))
            .prepare()
            .unwrap();
        assert!(p.landlock_fd().is_some());
        assert!(p.seccomp_program().is_some());
        drop(p);
    });
}
