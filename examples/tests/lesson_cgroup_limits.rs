//! The `cgroup_limits` program (exercise 2) on a host whose cgroup2
//! hierarchy lacks the controllers (a hybrid host such as this project's):
//! it names the missing ones and exits with status 2, creating nothing.
//! The limits themselves are observed in the VM tier (`tests/vm.rs`).

use std::path::PathBuf;

/// The controllers this process's cgroup2 group offers, read independently.
fn own_controllers() -> Option<Vec<String>> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        (right.split(' ').next() == Some("cgroup2"))
            .then(|| left.split(' ').nth(4).map(PathBuf::from))?
    })?;
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let own = own.lines().find_map(|l| l.strip_prefix("0::"))?.to_string();
    let dir = mount.join(own.trim_start_matches('/'));
    let text = std::fs::read_to_string(dir.join("cgroup.controllers")).ok()?;
    Some(text.split_whitespace().map(String::from).collect())
}

#[test]
fn cgroup_limits_names_the_missing_controllers() {
    berth_testkit::privileged!();
    let have = own_controllers().unwrap_or_default();
    let missing: Vec<&str> = ["cpu", "memory", "io", "pids"]
        .into_iter()
        .filter(|c| !have.iter().any(|h| h == c))
        .collect();
    if missing.is_empty() {
        println!("skipped: this host's cgroup2 offers every controller (the VM test covers it)");
        return;
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cgroup_limits"))
        .args(["--seconds", "1"])
        .output()
        .expect("run cgroup_limits");
    let (text, err) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(2), "{text}\n{err}");
    for c in &missing {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("missing controller {c}: "))),
            "{text}"
        );
    }
    assert!(err.contains(&format!(": {}", missing.join(" "))), "{err}");
    assert!(!text.contains(".max = "), "nothing is configured: {text}");
}
