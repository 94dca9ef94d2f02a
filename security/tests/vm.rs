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
    let allowed = dir.path().join("allowed");
    let denied = dir.path().join("denied");
    std::fs::create_dir(&allowed).unwrap();
    std::fs::create_dir(&denied).unwrap();
    std::fs::write(allowed.join("open"), "op3n\n").unwrap();
    std::fs::write(denied.join("secret"), "s3cret\n").unwrap();
    // An allowlist profile: the static busybox, /proc, /dev and the allowed
    // tree; everything else (the denied tree) is refused. `chroot_relative`:
    // the VM's init switches root with chroot, and AppArmor names paths
    // relative to the namespace root unless told otherwise.
    let rootfs = berth_testkit::busybox_rootfs();
    let profile = dir.path().join("profile");
    std::fs::write(
        &profile,
        format!(
            "profile {PROFILE} flags=(chroot_relative) {{\n  {}/** rmix,\n  /proc/** r,\n  /dev/** rw,\n  {}/** r,\n}}\n",
            rootfs.display(),
            allowed.display()
        ),
    )
    .unwrap();
    berth_testkit::run(parser(), &["-r", "-K", profile.to_str().unwrap()]);
    let _loaded = Loaded(profile.clone());

    let secret = denied.join("secret");
    let open = allowed.join("open");
    let (secret, open) = (secret.to_str().unwrap(), open.to_str().unwrap());
    // Control: unconfined, everything is readable.
    let o = busybox_run(None, &["cat", "/proc/self/attr/current", secret, open]);
    o.assert_ok();
    assert!(o.text().starts_with("unconfined"), "{}", o.text());
    assert!(o.text().contains("s3cret"), "{}", o.text());

    let p = SecurityPolicy::new()
        .apparmor_profile(PROFILE)
        .prepare()
        .unwrap();
    let o = busybox_run(Some(&p), &["cat", "/proc/self/attr/current"]);
    o.assert_ok();
    assert_eq!(o.text().trim(), format!("{PROFILE} (enforce)"));
    let o = busybox_run(Some(&p), &["cat", open]);
    o.assert_ok();
    assert_eq!(o.text(), "op3n\n");
    let o = busybox_run(Some(&p), &["cat", secret]);
    assert_eq!(o.failure, None);
    assert_ne!(
        o.exit_code(),
        Some(0),
        "read of {secret} was allowed: {}",
        o.text()
    );
    assert!(!o.text().contains("s3cret"));
}
