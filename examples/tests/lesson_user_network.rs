//! The `user_network` program (section 8.3, names on a user-defined
//! network), privileged tier: three containers resolve each other by name
//! and alias through their own `/etc/hosts`; when one leaves, its name and
//! alias disappear from the others' view; the network, its bridge and every
//! container's state are gone afterwards, the host's `ip_forward` unchanged.

mod leftovers;

use leftovers::{leftovers, run_lesson};

#[test]
fn members_resolve_each_other_until_one_leaves() {
    berth_testkit::privileged!();
    let forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let rootfs = berth_testkit::busybox_rootfs().to_str().unwrap();
    let (text, pid) = run_lesson(env!("CARGO_BIN_EXE_user_network"), &[rootfs]);
    let addr = |id: &str| -> String {
        let prefix = format!("started {id}-{pid} at ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|l| l.split(' ').next())
            .unwrap_or_else(|| panic!("no {prefix:?} in\n{text}"))
            .to_string()
    };
    let (db, web, cache) = (addr("db"), addr("web"), addr("cache"));
    assert!(db != web && web != cache && db != cache, "{text}");
    let (web_id, cache_id) = (format!("web-{pid}"), format!("cache-{pid}"));
    let lines: Vec<&str> = text.lines().collect();
    let left = lines
        .iter()
        .position(|l| *l == format!("{web_id} left"))
        .unwrap_or_else(|| panic!("web never left:\n{text}"));
    let (before, after) = lines.split_at(left);
    let has = |part: &[&str], line: String| {
        assert!(part.contains(&line.as_str()), "no {line:?} in\n{text}");
    };
    // Before: every name and alias resolves to its member's address.
    has(before, format!("db resolves {web_id} {web}"));
    has(before, format!("db resolves www {web}"));
    has(before, format!("db resolves {cache_id} {cache}"));
    has(before, format!("db resolves primary {db}"));
    has(before, format!("db /etc/hosts: {web} {web_id} www"));
    // After: web's name and alias are gone, for db and cache alike; the
    // others still resolve.
    has(after, format!("db resolves {web_id} -"));
    has(after, "db resolves www -".to_string());
    has(after, format!("cache resolves {web_id} -"));
    has(after, "cache resolves www -".to_string());
    has(after, format!("db resolves {cache_id} {cache}"));
    has(after, format!("cache resolves primary {db}"));
    assert!(!after.iter().any(|l| l.contains(&web)), "{text}");
    has(after, format!("network bun{pid} removed: yes"));
    for marker in [format!("-{pid}"), format!("bun{pid}")] {
        let left = leftovers(&marker);
        assert!(left.is_empty(), "left behind: {left:#?}");
    }
    let resolv = std::env::temp_dir().join(format!("bun{pid}.resolv.conf"));
    assert!(!resolv.exists(), "{} left behind", resolv.display());
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        forward
    );
}
