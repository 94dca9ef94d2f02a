//! Running without privileges gives a clear error. The test re-runs this
//! binary as a child that drops to uid 65534 before using BPF.

use std::process::Command;

const CHILD_ENV: &str = "BERTH_EBPF_UNPRIV_CHILD";

#[test]
fn unprivileged_use_is_a_clear_error() {
    if std::env::var(CHILD_ENV).is_ok() {
        // Child: drop every privilege, then try.
        // SAFETY: plain uid/gid changes of this process.
        unsafe {
            assert_eq!(libc::setgroups(0, std::ptr::null()), 0);
            assert_eq!(libc::setresgid(65534, 65534, 65534), 0);
            assert_eq!(libc::setresuid(65534, 65534, 65534), 0);
        }
        let e = berth_ebpf_probes::check_privileges().unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("euid 65534"), "{msg}");
        assert!(msg.contains("missing CAP_BPF"), "{msg}");
        let e = berth_ebpf_probes::DeviceFilter::container_default()
            .load()
            .unwrap_err();
        assert!(
            matches!(e, berth_ebpf_probes::Error::PermissionDenied { .. }),
            "{e}"
        );
        assert!(e.to_string().contains("unprivileged_bpf_disabled="), "{e}");
        return;
    }
    berth_testkit::privileged!();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "unprivileged_use_is_a_clear_error",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
}
