//! The `hardened` program (exercise 4), privileged tier: inside, only
//! `NET_BIND_SERVICE` is left, seccomp and no_new_privs are on, the user is
//! 1000, and each forbidden operation is refused with the expected errno.

#[test]
fn hardened_refuses_the_forbidden_operations() {
    berth_testkit::privileged!();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hardened"))
        .output()
        .expect("run hardened");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "status   Uid: 1000 1000 1000 1000",
        "status   CapEff: 0000000000000400",
        "status   CapBnd: 0000000000000400",
        "status   NoNewPrivs: 1",
        "status   Seccomp: 2",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    let outcome = |what: &str| {
        text.lines()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no {what} line in\n{text}"))
            .to_string()
    };
    for (what, errno) in [
        ("create /hello", "EROFS"),
        ("chown /tmp/ok", "EPERM"),
        ("setuid(0)", "EPERM"),
        ("mount a tmpfs", "EPERM"),
        ("unshare(CLONE_NEWUSER)", "EPERM"),
        ("sethostname", "EPERM"),
        ("raw socket", "EPERM"),
        ("reboot", "EPERM"),
    ] {
        let l = outcome(what);
        assert!(
            l.starts_with("refused") && l.contains(&format!(": {errno} (")),
            "{l}"
        );
    }
    // The controls: what the policy allows still works.
    assert!(outcome("create /tmp/ok").starts_with("allowed"), "{text}");
    assert!(outcome("bind TCP port 80").starts_with("allowed"), "{text}");
    // Landlock (when the kernel has it) refuses a write the mounts allow.
    if text.contains("landlock ABI") {
        let l = outcome("create /scratch/x");
        assert!(l.starts_with("refused") && l.contains(": EACCES ("), "{l}");
    }
    // Nothing left behind on the host.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("berth-hardened-"), "{mounts}");
}
