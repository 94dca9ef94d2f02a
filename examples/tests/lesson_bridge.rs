//! The `bridge` program (section 8.2), privileged tier: two containers get
//! addresses from IPAM on one bridge, exchange a TCP message through it, and
//! everything (bridge, veths, IPAM state, nft rules) is gone afterwards with
//! the host's `ip_forward` unchanged.

use std::path::Path;

#[test]
fn bridge_carries_tcp_between_two_containers_and_cleans_up() {
    berth_testkit::privileged!();
    let forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bridge"))
        .output()
        .expect("run bridge");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |prefix: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in\n{text}"))
            .to_string()
    };
    // Addresses from IPAM, in the bridge's subnet, default route via the gateway.
    let gateway = field("bridge ")
        .split("gateway ")
        .nth(1)
        .unwrap()
        .to_string();
    let addr = |c: &str| {
        field(&format!("{c}: eth0 "))
            .split('/')
            .next()
            .unwrap()
            .to_string()
    };
    let (a1, a2) = (addr("c1"), addr("c2"));
    assert_ne!(a1, a2);
    for c in ["c1", "c2"] {
        assert_eq!(
            field(&format!("{c}: route default via ")),
            format!("{gateway} dev eth0")
        );
    }
    // The exchange, seen from both ends.
    assert!(
        text.contains(&format!("c2: connected to {a1}:7777 from {a2}:")),
        "{text}"
    );
    assert!(text.contains("c2: got \"pong from c1\""), "{text}");
    assert!(
        text.contains(&format!("c1: got \"ping from c2\" from {a2}:")),
        "{text}"
    );
    // Teardown: check for ourselves what the program claims.
    let bridge = field("bridge ").split(':').next().unwrap().to_string();
    let veths: Vec<String> = text
        .lines()
        .filter_map(|l| l.split("(host side ").nth(1))
        .map(|v| v.trim_end_matches(')').to_string())
        .collect();
    assert_eq!(veths.len(), 2, "{text}");
    for link in veths.iter().chain([&bridge]) {
        assert!(
            !Path::new("/sys/class/net").join(link).exists(),
            "{link} left behind"
        );
        assert!(text.contains(&format!("{link} removed: yes")), "{text}");
    }
    let state = field("cleanup: IPAM state ").replace(" removed: yes", "");
    assert!(!Path::new(&state).exists(), "{state} left behind");
    let ruleset = berth_testkit::run(
        ["/usr/sbin/nft", "/sbin/nft"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("nft"),
        &["list", "ruleset"],
    );
    assert!(
        !ruleset.contains(&bridge) && !ruleset.contains(&a1),
        "{ruleset}"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        forward
    );
}
