//! The `manual_container` program (exercise 3), privileged tier: the command
//! runs as pid 1 with its own hostname on the busybox overlay, the upper layer
//! captures the new file and the deletion, the lower layer is untouched, and
//! the cgroup, the overlay and the temporary directories are gone afterwards.

#[test]
fn manual_container_upper_layer_captures_the_changes() {
    berth_testkit::privileged!();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_manual_container"))
        .args([
            "sh",
            "-c",
            "echo hello > /hello.txt; rm /bin/ls; echo host $(hostname); echo pid $$",
        ])
        .output()
        .expect("run manual_container");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let has = |l: &str| text.lines().any(|x| x.trim_end() == l);
    assert!(has("host manual"), "{text}");
    assert!(has("pid 1"), "{text}");
    assert!(has("  file     /hello.txt (6 bytes)"), "{text}");
    assert!(has("  deleted  /bin/ls (whiteout)"), "{text}");
    assert!(has("2 change(s) captured in the upper layer"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("lower layer unchanged: yes")),
        "{text}"
    );
    // The cgroup it printed is removed, and nothing stays mounted.
    let cg = text
        .lines()
        .find_map(|l| l.strip_prefix("cgroup: "))
        .expect("cgroup line");
    assert!(!std::path::Path::new(cg).exists(), "{cg} left behind");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains("berth-manual-"), "{mountinfo}");
    let lower = text
        .lines()
        .find_map(|l| l.strip_prefix("lower layer: "))
        .and_then(|l| l.split(" (").next())
        .expect("lower layer line");
    let base = std::path::Path::new(lower).parent().unwrap();
    assert!(!base.exists(), "{base:?} left behind");
}
