//! VM tier: the spawn path on Debian's stock 6.1 kernel with a real cgroup2
//! unified hierarchy — `CLONE_INTO_CGROUP` into a cgroup whose `pids.max`
//! the child feels from its first instruction, plus every namespace type
//! but user (the VM runner's root is chrooted, where `CLONE_NEWUSER` is
//! EPERM), time offsets and the init.
mod common;

use berth_namespaces::Namespaces;
use common::*;

#[test]
fn clone_into_limited_cgroup_with_all_namespaces() {
    berth_testkit::vm_only!();
    let root = std::path::Path::new("/sys/fs/cgroup");
    let cg = berth_testkit::CgroupDir::adopt(root.join(berth_testkit::unique_name("bnsvm")));
    std::fs::create_dir(cg.path()).unwrap();
    // The init, the shell and two more: the third background sleep must fail.
    std::fs::write(cg.path().join("pids.max"), "4").unwrap();
    let script = "cat /proc/self/cgroup; echo pid=$$; cut -d. -f1 /proc/uptime; \
        sleep 1 & sleep 1 & sleep 1 & sleep 1 & wait";
    let out = sh_in_rootfs(script, Namespaces::all() - Namespaces::USER)
        .time_offsets(0, 5_000_000)
        .cgroup_path(cg.path())
        .init(true)
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = s.lines().collect();
    assert!(lines.len() >= 3, "{out:?}");
    assert_eq!(lines[0], "0::/", "{s}");
    assert_eq!(lines[1], "pid=2", "{s}");
    let uptime: u64 = lines[2].parse().unwrap();
    assert!(uptime >= 5_000_000, "{s}");
    // Only our child ever ran in this cgroup: the limit it hit proves it
    // was born there (init + sh + 2 sleeps fit, the other sleeps did not).
    let events = std::fs::read_to_string(cg.path().join("pids.events")).unwrap();
    let hits: u64 = events
        .lines()
        .find_map(|l| l.strip_prefix("max "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        hits >= 1,
        "pids.max was never hit: {events}; child said {s}"
    );
}
