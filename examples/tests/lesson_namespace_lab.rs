//! The `namespace_lab` program (exercise 1), privileged tier: its printed
//! table shows pid 1 inside, another hostname, only `lo`, no host SysV
//! segment, and eight new namespaces that the joining process shares.

#[test]
fn namespace_lab_shows_every_namespace_and_the_join() {
    berth_testkit::privileged!();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_namespace_lab"))
        .output()
        .expect("run namespace_lab");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each row: name | host | container | joined.
    let row = |k: &str| -> Vec<String> {
        let line = text
            .lines()
            .find(|l| l.split('|').next().map(str::trim) == Some(k))
            .unwrap_or_else(|| panic!("no {k} row in\n{text}"));
        line.split('|').map(|c| c.trim().to_string()).collect()
    };
    let pid = row("pid");
    assert_eq!(
        pid[2], "1",
        "the child is pid 1 in its pid namespace\n{text}"
    );
    assert_ne!(pid[3], pid[1], "{text}");
    let host = row("hostname");
    assert_eq!(
        (host[2].as_str(), host[3].as_str()),
        ("lab", "lab"),
        "{text}"
    );
    assert_ne!(host[1], "lab");
    assert_eq!(row("interfaces")[2], "lo", "{text}");
    let shm = row("shm segments");
    assert!(shm[1].parse::<u32>().unwrap() >= 1, "{text}");
    assert_eq!(shm[2], "0", "{text}");
    assert_eq!(row("uid_map")[2], "0 100000 65536", "{text}");
    for ns in ["mnt", "uts", "ipc", "pid", "net", "user", "cgroup", "time"] {
        let r = row(&format!("ns/{ns}"));
        assert!(r[1].starts_with(&format!("{ns}:[")), "{text}");
        assert_ne!(r[1], r[2], "{ns}: the container has its own\n{text}");
        assert_eq!(
            r[2], r[3],
            "{ns}: the join landed in the container's\n{text}"
        );
    }
    assert!(text.contains("shares 8 of 8 namespaces"), "{text}");
}
