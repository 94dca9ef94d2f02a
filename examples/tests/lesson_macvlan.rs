//! The `macvlan` program (section 8.3, macvlan mode), privileged tier: two
//! containers on a macvlan network over a parent inside a namespace
//! standing in for the host reach each other and a neighbour on the wire,
//! but not the host through the parent's own address, nor the host them
//! (the macvlan bridge-mode rule); the macvlans and the network's state go,
//! the parent stays.

mod leftovers;

use leftovers::{leftovers, run_lesson};

#[test]
fn macvlan_siblings_talk_but_not_to_their_parent() {
    berth_testkit::privileged!();
    let (text, pid) = run_lesson(env!("CARGO_BIN_EXE_macvlan"), &[]);
    let has = |line: &str| assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    let addr = |c: &str| -> String {
        let prefix = format!("{c}: eth0 ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|l| l.split('/').next())
            .unwrap_or_else(|| panic!("no {prefix:?} in\n{text}"))
            .to_string()
    };
    let (c1, c2) = (addr("c1"), addr("c2"));
    assert_ne!(c1, c2);
    for (c, a) in [("c1", &c1), ("c2", &c2)] {
        assert!(a.starts_with("10.215.0."), "{text}");
        has(&format!("{c}: eth0 {a}/24 kind macvlan"));
    }
    // Nothing made on the host but what the program put there itself.
    has("host links: lo lan0");
    has(&format!("c2 -> c1 {c1}: answered (the listener saw {c2})"));
    has(&format!(
        "c1 -> neighbour 10.215.0.253: answered (the listener saw {c1})"
    ));
    let refused = |prefix: &str| {
        let l = text
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in\n{text}"));
        assert!(l.contains(": no answer ("), "{l}");
    };
    refused("c1 -> host 10.215.0.254 (the parent's own address): ");
    refused(&format!("host -> c1 {c1}: "));
    for line in [
        "cleanup: c1's macvlan removed: yes",
        "cleanup: c2's macvlan removed: yes",
        "cleanup: IPAM state and record removed: yes",
        "cleanup: parent lan0 still there: yes",
    ] {
        has(line);
    }
    let state = std::env::temp_dir().join(format!("berth-macvlan-{pid}"));
    assert!(!state.exists(), "{} left behind", state.display());
    // Everything lived in the program's namespaces: nothing on the host.
    for marker in ["mvlesson", "lan0", "lan1"] {
        let left = leftovers(marker);
        assert!(left.is_empty(), "left behind: {left:#?}");
    }
}
