//! VM tier: AppArmor is active in the VM's Debian kernel (not on the host).
//! Needs `apparmor_parser` (Debian package `apparmor`) on the host, which the
//! VM sees read-only. Run with `scripts/vm-test -p berth-security --test vm`.

mod common;

use std::path::Path;

use berth_security::{apparmor_active, SecurityPolicy};
use common::busybox_run;

const PROFILE: &str = "berth-vm-test";

fn parser() -> &'static str {
    ["/usr/sbin/apparmor_parser", "/sbin/apparmor_parser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("apparmor_parser")
}

/// Removes the loaded profile even if the test panics.
struct Loaded(std::path::PathBuf);

impl Drop for Loaded {
    fn drop(&mut self) {
        let _ = berth_testkit::run_ok(parser(), &["-R", self.0.to_str().unwrap_or("")]);
    }
}

#[test]
fn apparmor_profile_label_and_denial() {
    berth_testkit::vm_only!();
    assert!(
        apparmor_active(),
        "AppArmor should be active in the VM (securityfs at /sys/kernel/security)"
    );
    let dir = tempfile::tempdir().unwrap();
    let denied = dir.path().join("denied");
    std::fs::create_dir(&denied).unwrap();
    std::fs::write(denied.join("secret"), "s3cret\n").unwrap();
    let profile = dir.path().join("profile");
    std::fs::write(
        &profile,
        format!(
            "profile {PROFILE} {{\n  file,\n  capability,\n  deny {}/** rw,\n}}\n",
            denied.display()
        ),
    )
    .unwrap();
    berth_testkit::run(parser(), &["-r", "-K", profile.to_str().unwrap()]);
    let _loaded = Loaded(profile.clone());

    let secret = denied.join("secret");
    let script = format!(
        "cat /proc/self/attr/current; cat {} && echo READ-OK || echo READ-DENIED",
        secret.display()
    );
    // Control: unconfined, the file is readable.
    let o = busybox_run(None, &["sh", "-c", &script]);
    o.assert_ok();
    assert!(o.text().contains("unconfined"), "{}", o.text());
    assert!(o.text().contains("READ-OK"), "{}", o.text());

    let p = SecurityPolicy::new()
        .apparmor_profile(PROFILE)
        .prepare()
        .unwrap();
    let o = busybox_run(Some(&p), &["sh", "-c", &script]);
    o.assert_ok();
    let t = o.text();
    assert!(t.contains(&format!("{PROFILE} (enforce)")), "{t}");
    assert!(t.contains("READ-DENIED"), "{t}");
    assert!(!t.contains("s3cret"), "{t}");
    assert!(Path::new(&secret).exists());
}
