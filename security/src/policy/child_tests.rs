//! [`PreparedSecurity::apply_in_child`] against berth-sys's fake kernel
//! (no root): for policies a runc or podman user sets, the calls it makes
//! in the order the security rests on, and a failure at any of them is the
//! [`ChildFailure`] naming that step with nothing called after it.

use std::cell::Cell;
use std::os::fd::{AsRawFd, OwnedFd};

use berth_sys::child::CapData;
use berth_sys::fake::child::{install, Call, Recorder};

use super::*;

const OOM: &str = "/proc/self/oom_score_adj";
const LABEL: &str = "/proc/thread-self/attr/exec";

/// The files apply_in_child writes.
fn recorder() -> Recorder {
    Recorder::new().file(OOM).file(LABEL)
}

fn run(p: &PreparedSecurity, rec: &'static Recorder) -> Result<(), ChildFailure> {
    let _fake = install(rec);
    // SAFETY: every call apply_in_child makes goes to the fake installed
    // on this thread; nothing reaches the kernel.
    unsafe { p.apply_in_child() }
}

/// An exec label as `prepare` makes it (the host needs no LSM).
fn exec_label() -> PreparedLsm {
    PreparedLsm {
        path: cstring(LABEL),
        data: b"system_u:system_r:container_t:s0".to_vec(),
    }
}

/// What `podman run --user 1000:1000 --group-add 10 --group-add 20
/// --ulimit nofile=1024:4096 --oom-score-adj 500` sets on top of the
/// Docker defaults (14 capabilities, the default seccomp profile,
/// `no_new_privs` as given), with an exec label and a Landlock ruleset.
/// The host needs no LSM and no Landlock: their prepared forms are set
/// as `prepare` makes them (a label file and bytes; a ruleset fd).
fn podman_like(no_new_privs: bool) -> PreparedSecurity {
    let mut p = SecurityPolicy::docker_default()
        .no_new_privs(no_new_privs)
        .user(1000, 1000)
        .groups([10, 20])
        .rlimit(Resource::Nofile, 1024, 4096)
        .oom_score_adj(500)
        .prepare()
        .unwrap();
    p.lsm = Some(exec_label());
    p.landlock = Some(OwnedFd::from(std::fs::File::open("/dev/null").unwrap()));
    p
}

/// The steps of [`podman_like`] made while the child is still
/// privileged: its `oom_score_adj` and exec label, then its rlimit (after
/// the opens, which a low `RLIMIT_NOFILE` would refuse).
const WHILE_PRIVILEGED: [&str; 7] = [
    "open oom",
    "write oom",
    "close oom",
    "open label",
    "write label",
    "close label",
    "prlimit64",
];

/// The steps of a capability set with a user: the bounding set, then the
/// id change with KEEPCAPS, then the sets (no ambient capability raised).
const ID_CHANGE: [&str; 8] = [
    "bounding drop",
    "keepcaps",
    "get pdeathsig",
    "setgroups",
    "setresgid",
    "setresuid",
    "capset",
    "ambient clear",
];

/// A call as the step it belongs to.
fn kind(rec: &Recorder, c: &Call) -> String {
    let file = |fd: i32| match rec.path_of(fd).as_deref() {
        Some(OOM) => "oom",
        Some(LABEL) => "label",
        _ => "?",
    };
    let s = match c {
        Call::Prlimit64 { .. } => "prlimit64",
        Call::Open { path, .. } if path == OOM => "open oom",
        Call::Open { path, .. } if path == LABEL => "open label",
        Call::Write { fd, .. } => return format!("write {}", file(*fd)),
        Call::Close(fd) => return format!("close {}", file(*fd)),
        Call::Prctl { option, args } => match (*option, args[0] as i32) {
            (libc::PR_CAPBSET_DROP, _) => "bounding drop",
            (libc::PR_SET_KEEPCAPS, 1) => "keepcaps",
            (libc::PR_SET_PDEATHSIG, _) => "set pdeathsig",
            (libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL) => "ambient clear",
            (libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_RAISE) => "ambient raise",
            (libc::PR_SET_NO_NEW_PRIVS, 1) => "no_new_privs",
            _ => "prctl ?",
        },
        Call::GetPdeathsig => "get pdeathsig",
        Call::Setgroups(_) => "setgroups",
        Call::Setresgid(..) => "setresgid",
        Call::Setresuid(..) => "setresuid",
        Call::Capset(_) => "capset",
        Call::LandlockRestrictSelf { .. } => "landlock",
        Call::Seccomp { .. } => "seccomp",
        _ => "?",
    };
    s.to_string()
}

/// The steps of the recorded calls, runs of one step (the bounding set's
/// drops) as one.
fn steps(rec: &Recorder) -> Vec<String> {
    let mut v: Vec<String> = rec.calls().iter().map(|c| kind(rec, c)).collect();
    v.dedup();
    v
}

/// The `ChildFailure` step a failure of `c` is reported as; `None` when
/// apply_in_child goes on (a failed close, or `PR_GET_PDEATHSIG`: nothing
/// to restore).
fn failure_step(rec: &Recorder, c: &Call) -> Option<&'static str> {
    Some(match kind(rec, c).as_str() {
        "prlimit64" => "prlimit64",
        "open oom" | "write oom" => "write /proc/self/oom_score_adj",
        "open label" | "write label" => "write LSM exec label",
        "bounding drop" => "prctl(PR_CAPBSET_DROP)",
        "keepcaps" => "prctl(PR_SET_KEEPCAPS)",
        "set pdeathsig" => "prctl(PR_SET_PDEATHSIG)",
        "ambient clear" => "prctl(PR_CAP_AMBIENT_CLEAR_ALL)",
        "ambient raise" => "prctl(PR_CAP_AMBIENT_RAISE)",
        "no_new_privs" => "prctl(PR_SET_NO_NEW_PRIVS)",
        "setgroups" => "setgroups",
        "setresgid" => "setresgid",
        "setresuid" => "setresuid",
        "capset" => "capset",
        "landlock" => "landlock_restrict_self",
        "seccomp" => "seccomp(SECCOMP_SET_MODE_FILTER)",
        "get pdeathsig" | "close oom" | "close label" => return None,
        other => panic!("unexpected call {other}: {c:?}"),
    })
}

/// Positions of the calls of step `k`.
fn at(rec: &Recorder, k: &str) -> Vec<usize> {
    let calls = rec.calls();
    (0..calls.len())
        .filter(|&i| kind(rec, &calls[i]) == k)
        .collect()
}

#[test]
fn a_podman_policy_applies_in_the_order_its_security_rests_on() {
    let p = podman_like(true);
    let rec = recorder().leak();
    assert_eq!(run(&p, rec), Ok(()));
    assert_eq!(
        steps(rec),
        [
            &WHILE_PRIVILEGED[..],
            &ID_CHANGE,
            &["no_new_privs", "landlock", "seccomp"]
        ]
        .concat()
    );
    let calls = rec.calls();
    // The arguments: what the policy said.
    assert_eq!(
        calls[6],
        Call::Prlimit64 {
            resource: libc::RLIMIT_NOFILE as i32,
            soft: 1024,
            hard: 4096
        }
    );
    assert!(calls.contains(&Call::Write {
        fd: 1000,
        data: b"500".to_vec()
    }));
    assert!(calls.contains(&Call::Open {
        path: LABEL.into(),
        flags: libc::O_WRONLY | libc::O_CLOEXEC,
        mode: 0
    }));
    assert!(calls.contains(&Call::Setgroups(vec![10, 20])));
    assert!(calls.contains(&Call::Setresgid(1000, 1000, 1000)));
    assert!(calls.contains(&Call::Setresuid(1000, 1000, 1000)));
    // Every capability up to cap_last_cap outside Docker's 14 leaves the
    // bounding set, each once.
    let caps = p.caps.unwrap();
    let dropped: Vec<u64> = calls
        .iter()
        .filter_map(|c| match c {
            Call::Prctl {
                option: libc::PR_CAPBSET_DROP,
                args,
            } => Some(args[0]),
            _ => None,
        })
        .collect();
    let outside: Vec<u64> = (0..=u64::from(caps.last_cap))
        .filter(|&c| caps.bounding & (1 << c) == 0)
        .collect();
    assert_eq!(dropped, outside);
    assert_eq!(dropped.len(), caps.last_cap as usize + 1 - 14);
    let half = |i: u32| (caps.bounding >> (32 * i)) as u32;
    let data = |i| CapData {
        effective: half(i),
        permitted: half(i),
        inheritable: 0,
    };
    assert!(calls.contains(&Call::Capset([data(0), data(1)])));
    let prog = p.seccomp_program().unwrap();
    assert_eq!(
        calls.last(),
        Some(&Call::Seccomp {
            flags: prog.flags(),
            len: prog.len()
        }),
        "seccomp is the last call: no call after it needs the filter's leave"
    );
    assert_eq!(
        calls[calls.len() - 2],
        Call::LandlockRestrictSelf {
            ruleset: p.landlock.as_ref().unwrap().as_raw_fd(),
            flags: 0
        }
    );
    assert!(rec.open_fds().is_empty(), "the files written are closed");
}

#[test]
fn the_orderings_hold_for_each_step_of_the_podman_policy() {
    let rec = recorder().leak();
    assert_eq!(run(&podman_like(true), rec), Ok(()));
    let first = |k| at(rec, k)[0];
    let last = |k| *at(rec, k).last().unwrap();
    // rlimits, oom_score_adj and the label while still privileged.
    for k in ["prlimit64", "close oom", "close label"] {
        assert!(last(k) < first("setgroups"), "{k} before the id change");
        assert!(last(k) < first("bounding drop"), "{k} before caps go");
    }
    // The rlimits after the files are written (a low RLIMIT_NOFILE would
    // refuse their opens).
    assert!(last("close label") < first("prlimit64"));
    // The bounding set is dropped while CAP_SETPCAP is still there.
    assert!(last("bounding drop") < first("setresuid"));
    // KEEPCAPS around the id change: set before it, and the permitted set
    // it kept is narrowed by capset after it.
    assert!(last("keepcaps") < first("setgroups"));
    assert!(first("setgroups") < first("setresgid"));
    assert!(first("setresgid") < first("setresuid"));
    assert!(first("setresuid") < first("capset"));
    assert!(first("capset") < first("ambient clear"));
    // no_new_privs, then Landlock, then seccomp, last.
    assert!(first("ambient clear") < first("no_new_privs"));
    assert!(first("no_new_privs") < first("landlock"));
    assert!(first("landlock") < first("seccomp"));
    assert_eq!(first("seccomp"), rec.calls().len() - 1);
}

#[test]
fn without_no_new_privs_landlock_and_seccomp_come_before_the_caps_go() {
    // Without no_new_privs the filter needs CAP_SYS_ADMIN to install, so
    // it goes in after the label and before the bounding set is dropped
    // (step 4 of apply_in_child's order): the profile must allow the id
    // and capability calls after it, as Docker's does.
    let rec = recorder().leak();
    assert_eq!(run(&podman_like(false), rec), Ok(()));
    assert_eq!(
        steps(rec),
        [&WHILE_PRIVILEGED[..], &["landlock", "seccomp"], &ID_CHANGE].concat()
    );
}

#[test]
fn ambient_capabilities_are_raised_after_capset() {
    // `--user 1000 --cap-add NET_BIND_SERVICE` kept across execve.
    let set = CapSet::from_names(["NET_BIND_SERVICE"]).unwrap();
    let p = SecurityPolicy::new()
        .capabilities(Capabilities::uniform_with_ambient(set))
        .user(1000, 1000)
        .prepare()
        .unwrap();
    let rec = recorder().leak();
    assert_eq!(run(&p, rec), Ok(()));
    assert_eq!(steps(rec), [&ID_CHANGE[..], &["ambient raise"]].concat());
    let raise = [
        libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
        10, // CAP_NET_BIND_SERVICE (<linux/capability.h>)
        0,
        0,
    ];
    assert_eq!(
        rec.calls().last(),
        Some(&Call::Prctl {
            option: libc::PR_CAP_AMBIENT,
            args: raise
        })
    );
    assert!(rec.calls().contains(&Call::Setgroups(vec![])));
}

#[test]
fn a_user_alone_changes_ids_only() {
    // No capabilities asked: no KEEPCAPS, no bounding drop, no capset.
    let p = SecurityPolicy::new().user(1000, 1000).prepare().unwrap();
    let rec = recorder().leak();
    assert_eq!(run(&p, rec), Ok(()));
    assert_eq!(
        rec.calls(),
        [
            Call::GetPdeathsig,
            Call::Setgroups(vec![]),
            Call::Setresgid(1000, 1000, 1000),
            Call::Setresuid(1000, 1000, 1000),
        ]
    );
}

#[test]
fn the_parent_death_signal_survives_the_id_change() {
    let p = SecurityPolicy::new().user(1000, 1000).prepare().unwrap();
    let rec = recorder().pdeathsig(libc::SIGKILL).leak();
    assert_eq!(run(&p, rec), Ok(()));
    let calls = rec.calls();
    assert_eq!(
        calls.last(),
        Some(&Call::Prctl {
            option: libc::PR_SET_PDEATHSIG,
            args: [libc::SIGKILL as libc::c_ulong, 0, 0, 0]
        })
    );
    assert_eq!(calls[calls.len() - 2], Call::Setresuid(1000, 1000, 1000));
    let _fake = install(rec);
    assert_eq!(berth_sys::child::get_pdeathsig(), Ok(libc::SIGKILL));
}

#[test]
fn clearing_groups_a_user_namespace_denies_is_skipped() {
    // /proc/<pid>/setgroups "deny": EPERM on setgroups. Harmless for an
    // empty list (runc skips it too), a failure for a list to set.
    let eperm_on_setgroups = || {
        recorder()
            .fail_when(libc::EPERM, |c| matches!(c, Call::Setgroups(_)))
            .leak()
    };
    let p = SecurityPolicy::new().user(1000, 1000).prepare().unwrap();
    let rec = eperm_on_setgroups();
    assert_eq!(run(&p, rec), Ok(()));
    assert_eq!(rec.calls().last(), Some(&Call::Setresuid(1000, 1000, 1000)));

    let p = SecurityPolicy::new()
        .user(1000, 1000)
        .groups([10])
        .prepare()
        .unwrap();
    let rec = eperm_on_setgroups();
    let failed = ChildFailure {
        step: "setgroups",
        errno: libc::EPERM,
    };
    assert_eq!(run(&p, rec), Err(failed));
    assert_eq!(rec.calls().last(), Some(&Call::Setgroups(vec![10])));
}

#[test]
fn a_kernel_without_ambient_capabilities_is_fine_unless_some_are_asked() {
    // Before Linux 4.3, PR_CAP_AMBIENT is EINVAL.
    let no_ambient = || {
        recorder()
            .fail_when(
                libc::EINVAL,
                |c| matches!(c, Call::Prctl { option, .. } if *option == libc::PR_CAP_AMBIENT),
            )
            .leak()
    };
    let rec = no_ambient();
    assert_eq!(run(&podman_like(true), rec), Ok(()));
    assert_eq!(
        steps(rec)[14..],
        ["ambient clear", "no_new_privs", "landlock", "seccomp"]
    );

    let set = CapSet::from_names(["NET_BIND_SERVICE"]).unwrap();
    let p = SecurityPolicy::new()
        .capabilities(Capabilities::uniform_with_ambient(set))
        .prepare()
        .unwrap();
    let rec = no_ambient();
    let failed = ChildFailure {
        step: "prctl(PR_CAP_AMBIENT_CLEAR_ALL)",
        errno: libc::EINVAL,
    };
    assert_eq!(run(&p, rec), Err(failed));
    assert_eq!(steps(rec).last().map(String::as_str), Some("ambient clear"));
}

/// Fail each call of `p`'s run in turn: the failure is the step's, the
/// calls before it are the full run's, and after it nothing is called
/// but the close of a file the step opened.
fn each_call_fails_as_its_step(p: &PreparedSecurity, pdeathsig: libc::c_int) {
    let full = recorder().pdeathsig(pdeathsig).leak();
    assert_eq!(run(p, full), Ok(()));
    let calls = full.calls();
    for (k, c) in calls.iter().enumerate() {
        let seen = Cell::new(0);
        let rec = recorder()
            .pdeathsig(pdeathsig)
            .fail_when(libc::EACCES, move |_| {
                seen.set(seen.get() + 1);
                seen.get() == k + 1
            })
            .leak();
        let r = run(p, rec);
        let got = rec.calls();
        assert_eq!(got[..=k], calls[..=k], "the calls up to {c:?}");
        let Some(step) = failure_step(full, c) else {
            assert_eq!(r, Ok(()), "a failed {c:?} is not fatal");
            continue;
        };
        let failed = ChildFailure {
            step,
            errno: libc::EACCES,
        };
        assert_eq!(r, Err(failed), "call {k}: {c:?}");
        let after: Vec<Call> = match c {
            Call::Write { fd, .. } => vec![Call::Close(*fd)],
            _ => vec![],
        };
        assert_eq!(got[k + 1..], after, "nothing after the failed {c:?}");
        assert!(rec.open_fds().is_empty());
    }
}

#[test]
fn a_failed_call_is_its_step_and_ends_the_child_side() {
    each_call_fails_as_its_step(&podman_like(true), libc::SIGKILL);
    each_call_fails_as_its_step(&podman_like(false), 0);
    let set = CapSet::from_names(["NET_BIND_SERVICE", "NET_RAW"]).unwrap();
    let p = SecurityPolicy::new()
        .capabilities(Capabilities::uniform_with_ambient(set))
        .user(1000, 1000)
        .no_new_privs(true)
        .prepare()
        .unwrap();
    each_call_fails_as_its_step(&p, libc::SIGTERM);
}

/// `--ulimit nofile=3:3 --oom-score-adj 500` with an exec label: the
/// limit leaves no fd free beyond stdin, stdout and stderr, so the files
/// written while privileged are opened before it is set (runc sets the
/// rlimits from the parent once its init is ready).
#[test]
fn a_nofile_limit_as_low_as_the_held_fds_still_writes_the_proc_files() {
    let mut p = SecurityPolicy::new()
        .rlimit(Resource::Nofile, 3, 3)
        .oom_score_adj(500)
        .prepare()
        .unwrap();
    p.lsm = Some(exec_label());
    let rec = recorder().held_fds(3).leak();
    assert_eq!(run(&p, rec), Ok(()));
    assert_eq!(steps(rec), WHILE_PRIVILEGED);
    // The model: once the limit is set, no open gets an fd.
    let _fake = install(rec);
    assert_eq!(
        berth_sys::child::open(c"/x", libc::O_RDONLY, 0),
        Err(libc::EMFILE)
    );
}
