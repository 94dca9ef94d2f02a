//! The `execsnoop` program (section 7.4), privileged tier: the eBPF probe
//! reports the container's execs of known binaries, none of the exec made
//! outside its cgroup at the same time, and with `--stats` the syscall and
//! network counters see the container's work.

#[test]
fn execsnoop_sees_the_container_execs_only() {
    berth_testkit::privileged!();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_execsnoop"))
        .arg("--stats")
        .output()
        .expect("run execsnoop");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<&str> = text.lines().filter(|l| l.starts_with("exec  ")).collect();
    for (comm, file) in [
        ("sh", "/bin/sh"),
        ("true", "/bin/true"),
        ("ls", "/bin/ls"),
        ("cat", "/bin/cat"),
    ] {
        assert!(
            events.iter().any(|e| e.contains(&format!("comm={comm} "))
                && e.ends_with(&format!("filename={file}"))),
            "no exec of {file} in\n{text}"
        );
    }
    // The exec outside the cgroup, at the same time, is not reported.
    let outside = text
        .lines()
        .find_map(|l| l.strip_prefix("outside: /bin/echo is pid "))
        .expect("outside line");
    assert!(
        !events
            .iter()
            .any(|e| e.contains(&format!("pid={outside} ")) || e.ends_with("/bin/echo")),
        "{text}"
    );
    assert!(text.contains(", 0 from outside it,"), "{text}");
    // Counters: at least the five execve calls, and the loopback SYN sent.
    let execve: u64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("execve calls: "))
        .expect("execve line")
        .parse()
        .unwrap();
    assert!(execve >= 5, "{text}");
    let net = text
        .lines()
        .find(|l| l.starts_with("network: tx "))
        .expect("network line");
    let tx: u64 = net.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(tx > 0, "{net}");
    let cg = text
        .lines()
        .find_map(|l| l.strip_prefix("cgroup "))
        .and_then(|l| l.split(' ').next())
        .expect("cgroup line");
    assert!(!std::path::Path::new(cg).exists(), "{cg} left behind");
}
