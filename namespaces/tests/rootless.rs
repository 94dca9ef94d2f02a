//! Rootless: the test binary re-executes itself as uid/gid 65534 (setpriv)
//! and spawns with a user namespace and a single-id map.
mod common;

use std::os::unix::fs::PermissionsExt;

use berth_namespaces::{IdMap, Namespaces};
use common::*;

const INNER: &str = "BERTH_NS_ROOTLESS_INNER";
const ROOTFS: &str = "BERTH_NS_ROOTLESS_ROOTFS";

/// Runs as uid 65534 (only when re-executed by `rootless_spawn_as_nobody`).
#[test]
fn rootless_inner() {
    let Some(rootfs) = std::env::var_os(ROOTFS) else {
        return; // not the re-executed run
    };
    if std::env::var_os(INNER).is_none() {
        return;
    }
    // SAFETY: getters cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 65534);
    let rootfs = std::path::PathBuf::from(rootfs);
    let ns = Namespaces::USER
        | Namespaces::MOUNT
        | Namespaces::PID
        | Namespaces::UTS
        | Namespaces::IPC
        | Namespaces::NET;
    let out = berth_namespaces::Spawner::new([
        "/bin/sh",
        "-c",
        "id -u; id -g; hostname; cat /proc/self/uid_map; echo pid=$$; cat /proc/net/dev | tail -n +3 | wc -l",
    ])
    .namespaces(ns)
    .uid_map(IdMap::new(0, 65534, 1))
    .gid_map(IdMap::new(0, 65534, 1))
    .hostname("rootless")
    .env_clear()
    .env("PATH", "/bin")
    .steps(rootfs_steps(&rootfs, true))
    .output()
    .unwrap();
    let s = ok_stdout(&out);
    let lines: Vec<String> = s
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        lines,
        ["0", "0", "rootless", "0 65534 1", "pid=1", "1"],
        "{s}"
    );
    // A range is refused by the kernel for an unprivileged writer.
    let err = berth_namespaces::Spawner::new(["/bin/true"])
        .namespaces(Namespaces::USER)
        .uid_map(IdMap::new(0, 100_000, 1000))
        .spawn()
        .unwrap_err();
    assert_eq!(err.errno(), Some(libc::EPERM), "{err}");
    println!("ROOTLESS-INNER-OK");
}

#[test]
fn rootless_spawn_as_nobody() {
    berth_testkit::privileged!();
    if std::env::var_os(INNER).is_some() {
        return;
    }
    let rootfs = berth_testkit::busybox_rootfs();
    // Copy the test binary where uid 65534 can execute it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = dir.path().join("rootless-test");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(&exe)
        .args([
            "rootless_inner",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INNER, "1")
        .env(ROOTFS, rootfs)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ROOTLESS-INNER-OK"),
        "rootless run failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
