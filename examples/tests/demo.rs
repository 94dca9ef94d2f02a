//! End to end: the `demo` program (privileged tier).

#[test]
fn demo_shows_the_isolation() {
    berth_testkit::privileged!();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_demo"))
        .output()
        .expect("run demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = |k: &str| {
        text.lines()
            .find(|l| l.starts_with(k))
            .unwrap_or_else(|| panic!("no {k} row in {text}"))
            .split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(row("hostname").last().unwrap(), "berth-demo");
    assert_eq!(row("shell pid").last().unwrap(), "1");
    assert_eq!(row("interfaces").last().unwrap(), "lo");
    assert!(row("seccomp").ends_with(&["2".to_string(), "(filter)".to_string()]));
    assert!(row("capabilities").contains(&"00000000a80425fb".to_string()));
    assert!(row("root fs").ends_with(&["overlay".to_string()]));
    assert!(text.contains("/berth/berth-demo-"), "{text}");
}
