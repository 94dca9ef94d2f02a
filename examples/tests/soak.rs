//! The leak soak in its CI form (privileged tier): `berth-soak` runs 300
//! create → exec → (pause/resume) → destroy cycles with mixed options and
//! checks every 25 cycles that nothing grew; ~70 ms per cycle here, so the
//! run takes about 20 s. The long form (10,000 cycles) is run by hand, see
//! the root README's "Reliability" section.

use std::process::Command;

#[test]
fn soak_300_cycles_leaks_nothing() {
    berth_testkit::privileged!();
    let forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_berth-soak"))
        .args(["--rootfs"])
        .arg(berth_testkit::busybox_rootfs())
        .args(["--cycles", "300", "--check-every", "25"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("300 cycles in"), "{stdout}");
    assert!(stdout.contains("OK: nothing leaked"), "{stdout}");
    // 11 comparisons after the baseline (taken after the first 25 cycles).
    assert_eq!(stdout.matches("nothing grew").count(), 11, "{stdout}");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        forward,
        "ip_forward not restored"
    );
}

#[test]
fn soak_rejects_bad_arguments() {
    let out = Command::new(env!("CARGO_BIN_EXE_berth-soak"))
        .args(["--cycles", "ten"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cycles"));
}
