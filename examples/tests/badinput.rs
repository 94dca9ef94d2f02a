//! Bad input to `berth-run` (privileged tier): every invalid option value
//! exits 125 with a one-line error naming what was wrong, and leaves
//! nothing behind (state dir, cgroup, mount, link).

mod common;

use std::process::Command;

/// What berth-run left of container `name`: also a link named after it.
fn left_behind(name: &str) -> Vec<String> {
    let mut v = common::left_behind(name);
    let links = berth_testkit::run("ip", &["-o", "link"]);
    v.extend(links.lines().filter(|l| l.contains(name)).map(String::from));
    v
}

#[test]
fn berth_run_bad_input_table() {
    berth_testkit::privileged!();
    let rootfs = berth_testkit::busybox_rootfs().display().to_string();
    let dir = tempfile::TempDir::new().unwrap();
    let bad_json = dir.path().join("bad.json");
    std::fs::write(&bad_json, "{ not json").unwrap();
    let bad_json = bad_json.display().to_string();
    let long = "x".repeat(200);
    // (option and value, a piece of the error message that must appear)
    let table: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--rootfs", "/nonexistent/rootfs"],
            "/nonexistent/rootfs",
        ),
        (
            vec!["--image", "/nonexistent/layout:latest"],
            "/nonexistent/layout",
        ),
        (vec!["--memory", "abc"], "--memory"),
        (vec!["--memory", "12Q"], "--memory"),
        (vec!["--cpus", "abc"], "--cpus"),
        (vec!["--cpus", "-1"], "--cpus"),
        (vec!["--cpus", "0"], "--cpus"),
        (vec!["--pids", "abc"], "--pids"),
        (vec!["--pids", "-3"], "--pids"),
        (vec!["--net", "bogus"], "bogus"),
        (vec!["--publish", "70000:80"], "70000"),
        (vec!["--publish", "abc"], "abc"),
        (vec!["--publish", "80:80/sctp"], "sctp"),
        (vec!["--tmpfs", "relative/dir"], "relative/dir"),
        (vec!["--volume", "/nonexistent/vol:/v"], "/nonexistent/vol"),
        (vec!["--volume", "nocolon"], "nocolon"),
        (vec!["--volume", "/tmp:/v:rx"], "rx"),
        (vec!["--user", "abc"], "abc"),
        (vec!["--user", "1:x"], "1:x"),
        (vec!["--cap-add", "NOT_A_CAP"], "NOT_A_CAP"),
        (vec!["--cap-drop", "NOT_A_CAP"], "NOT_A_CAP"),
        (
            vec!["--seccomp", "/nonexistent/profile.json"],
            "/nonexistent/profile.json",
        ),
        (vec!["--seccomp", &bad_json], "seccomp"),
        (vec!["--env", "NOEQUALS"], "NOEQUALS"),
        (vec!["--workdir", "relative/dir"], "relative/dir"),
        (vec!["--timeout", "abc"], "--timeout"),
        (vec!["--timeout", "-1"], "--timeout"),
        (vec!["--hostname", &long], "hostname"),
        (vec!["--bogus-flag"], "--bogus-flag"),
        (vec!["--name", "bad/name"], "bad/name"),
        (vec!["--name", &long], "xxxx"),
    ];
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for (i, (opt, want)) in table.iter().enumerate() {
        let name = berth_testkit::unique_name(&format!("bi{i}"));
        let mut args: Vec<&str> = Vec::new();
        if opt[0] != "--image" {
            args.extend(["--rootfs", rootfs.as_str()]);
        }
        if opt[0] != "--name" {
            args.extend(["--name", &name]);
        }
        args.extend(opt.iter().copied());
        args.extend(["--", "/bin/true"]);
        let out = Command::new(env!("CARGO_BIN_EXE_berth-run"))
            .args(&args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let code = out.status.code().unwrap_or(-1);
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let left = left_behind(&name);
        let first = err.lines().next().unwrap_or("");
        report.push(format!(
            "{:<45.45} exit {code:<4} {first:.110}",
            opt.join(" ")
        ));
        if code != 125 || !err.contains(want) || !left.is_empty() {
            failures.push(format!(
                "{opt:?}: exit {code}, stderr {err:?} (want {want:?}), left {left:?}"
            ));
        }
    }
    // A missing value and a missing command.
    for args in [vec!["--rootfs"], vec!["--rootfs", rootfs.as_str()]] {
        let out = Command::new(env!("CARGO_BIN_EXE_berth-run"))
            .args(&args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let code = out.status.code().unwrap_or(-1);
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let first = err.lines().next().unwrap_or("");
        report.push(format!(
            "{:<45.45} exit {code:<4} {first:.110}",
            args.join(" ")
        ));
        if code != 125 || err.is_empty() {
            failures.push(format!("{args:?}: exit {code}, stderr {err:?}"));
        }
    }
    println!("\n{}\n", report.join("\n"));
    assert!(failures.is_empty(), "{failures:#?}");
}
