//! What a lesson program may have left on the host: anything whose name
//! contains a marker (the program's pid or its unique names) among berth's
//! state directories, cgroups, network links, nft tables and mounts.

use std::path::Path;

/// Every trace of `marker` on the host, as `kind: name` lines (empty: clean).
pub fn leftovers(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for dir in ["/run/berth", "/run/berth-net", "/run/berth-net/networks"] {
        found.extend(names_in(Path::new(dir), marker).map(|n| format!("state: {dir}/{n}")));
    }
    let find = std::process::Command::new("find")
        .args([
            "/sys/fs/cgroup",
            "-type",
            "d",
            "-name",
            &format!("*{marker}*"),
        ])
        .output()
        .expect("run find");
    let cgroups = String::from_utf8_lossy(&find.stdout);
    found.extend(cgroups.lines().map(|l| format!("cgroup: {l}")));
    found.extend(names_in(Path::new("/sys/class/net"), marker).map(|n| format!("link: {n}")));
    let nft = ["/usr/sbin/nft", "/sbin/nft"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("nft");
    let tables = berth_testkit::run(nft, &["list", "tables"]);
    found.extend(
        tables
            .lines()
            .filter(|l| l.contains(marker))
            .map(|l| format!("nft: {l}")),
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    found.extend(
        mounts
            .lines()
            .filter(|l| l.contains(marker))
            .map(|l| format!("mount: {l}")),
    );
    found
}

fn names_in<'a>(dir: &Path, marker: &'a str) -> impl Iterator<Item = String> + 'a {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(move |n| n.contains(marker))
}

/// Run the lesson binary `bin` with `args`; its stdout (asserting success
/// and showing stderr otherwise) and its pid.
pub fn run_lesson(bin: &str, args: &[&str]) -> (String, u32) {
    let child = std::process::Command::new(bin)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the lesson program");
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{bin} failed: {}\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (text, pid)
}
