//! Privileged tier: the seccomp filter is the last thing before `execve`
//! (runtime-spec; issue 21 item 3). A profile that allows the workload's own
//! system calls and nothing of berth's setup (`close_range`, `chdir`, the
//! start pipe's `read`, signal resets, `fork` of the init) must still start
//! the container, and the filter must be in force in the workload.

mod common;

use std::io::Read;

use berth::{Seccomp, Stdio};
use berth_security::{Action, SeccompProfile, SyscallRule};
use common::*;

fn workload_only() -> SeccompProfile {
    SeccompProfile::new(Action::Errno(libc::EPERM as u16)).rule(SyscallRule::new(
        berth_testkit::BUSYBOX_CAT_SYSCALLS.iter().copied(),
        Action::Allow,
    ))
}

/// What berth's init calls after the policy (Spawner::init's doc).
const INIT: &[&str] = &["rt_sigtimedwait", "wait4", "kill", "close_range"];

fn run_cat(id: &str, init: bool, start_two_phase: bool) -> String {
    let root = state_root();
    let mut profile = workload_only();
    if init {
        profile = profile.rule(SyscallRule::new(INIT.iter().copied(), Action::Allow));
    }
    let b = busybox(id, &root)
        .seccomp(Seccomp::Profile(profile))
        .init(init)
        .command(["/bin/cat", "/proc/self/status"])
        .stdout(Stdio::Piped)
        .stderr(Stdio::Null);
    let mut c = if start_two_phase {
        let mut c = b.create().expect("create under a workload-only profile");
        c.start().expect("start");
        c
    } else {
        b.spawn().expect("spawn under a workload-only profile")
    };
    let mut out = String::new();
    c.stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read");
    let st = c.wait().expect("wait");
    c.destroy().expect("destroy");
    assert!(st.success(), "cat failed: {st:?}\n{out}");
    assert!(footprint(root.path(), id).state.is_empty());
    out
}

#[test]
fn a_profile_without_berths_setup_calls_still_starts() {
    berth_testkit::privileged!();
    let id = berth_testkit::unique_name("sclast");
    let out = run_cat(&id, false, false);
    // The filter is there (mode 2), and so is the rest of the policy.
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("CapEff:\t00000000a80425fb"), "{out}");
}

#[test]
fn also_with_two_phase_start_and_an_init() {
    berth_testkit::privileged!();
    let id = berth_testkit::unique_name("sclast2");
    let out = run_cat(&id, false, true);
    assert!(out.contains("Seccomp:\t2"), "{out}");
    let id = berth_testkit::unique_name("sclast3");
    let out = run_cat(&id, true, false);
    assert!(out.contains("Seccomp:\t2"), "{out}");
}

/// An init whose profile refuses waiting for signals exits at once (255)
/// instead of spinning or hanging, and takes the workload with it.
#[test]
fn an_init_that_cannot_wait_ends_the_container() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("sclwait");
    let mut c = busybox(&id, &root)
        .seccomp(Seccomp::Profile(workload_only()))
        .init(true)
        .command(["/bin/cat", "/proc/self/status"])
        .stdout(Stdio::Null)
        .stderr(Stdio::Null)
        .spawn()
        .expect("spawn");
    let st = c.wait().expect("wait");
    c.destroy().expect("destroy");
    assert_eq!(st.code(), Some(255), "{st:?}");
}

/// The init (pid 1) holds no more privilege than the workload: it applies
/// the same policy after forking the workload.
#[test]
fn the_init_is_confined_too() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("sclinit");
    let out = ok_sh(
        busybox(&id, &root).init(true),
        "grep -E '^(Seccomp|CapEff|NoNewPrivs):' /proc/1/status",
    );
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("CapEff:\t00000000a80425fb"), "{out}");
}

fn ok_sh(b: berth::ContainerBuilder, script: &str) -> String {
    let (st, out, err) = sh(b, script);
    assert!(st.success(), "status {st:?}\nstdout {out}\nstderr {err}");
    out
}
