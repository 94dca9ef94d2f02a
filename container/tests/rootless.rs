//! Rootless tier: the test binary re-executes itself as uid/gid 65534
//! (setpriv) and runs containers with a user namespace.

mod common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;

use berth::{Container, Rootfs, Stdio};

const INNER: &str = "BERTH_CONTAINER_ROOTLESS_INNER";

fn run(b: berth::ContainerBuilder, script: &str) -> String {
    let mut c = b
        .command(["/bin/sh", "-c", script])
        .stdin(Stdio::Null)
        .stdout(Stdio::Piped)
        .spawn()
        .unwrap();
    let mut out = String::new();
    c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let st = c.wait().unwrap();
    c.destroy().unwrap();
    assert!(st.success(), "{st:?}: {out}");
    out
}

/// Runs as uid 65534 (only when re-executed by `rootless_container_as_nobody`).
#[test]
fn rootless_inner() {
    let Some(spec) = std::env::var_os(INNER) else {
        return;
    };
    let spec = spec.to_string_lossy().into_owned();
    let (state, rootfs) = spec.split_once(':').unwrap();
    // SAFETY: geteuid cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 65534);
    let script = "id -u; cat /proc/self/uid_map | tr -s ' '; hostname; echo pid=$$; \
                  cat /sys/class/net/lo/flags; echo x > /dev/null && echo devnull; \
                  grep Seccomp: /proc/self/status";
    let dir_out = run(
        Container::builder("rootless-dir")
            .rootfs(Rootfs::dir(rootfs))
            .state_root(state)
            .hostname("rl"),
        script,
    );
    assert_eq!(
        dir_out,
        "0\n 0 65534 1\nrl\npid=1\n0x9\ndevnull\nSeccomp:\t2\n"
    );
    let ovl_out = run(
        Container::builder("rootless-ovl")
            .rootfs(Rootfs::layers([rootfs]))
            .state_root(state)
            .hostname("rl"),
        &format!("{script}; echo w > /tmp/rootless-w && cat /tmp/rootless-w"),
    );
    assert_eq!(
        ovl_out,
        "0\n 0 65534 1\nrl\npid=1\n0x9\ndevnull\nSeccomp:\t2\nw\n"
    );
    // The write went to the private overlay layer, not the shared rootfs.
    assert!(!std::path::Path::new(rootfs).join("tmp/rootless-w").exists());
    assert_eq!(std::fs::read_dir(state).unwrap().count(), 0);
    println!("ROOTLESS-CONTAINER-OK");
}

#[test]
fn rootless_container_as_nobody() {
    berth_testkit::privileged!();
    if std::env::var_os(INNER).is_some() {
        return;
    }
    // A rootfs owned by the unprivileged user, as rootless images are
    // unpacked (files of an unmapped owner cannot be copied up: EOVERFLOW).
    let copy = berth_testkit::busybox_rootfs_copy();
    std::fs::set_permissions(copy.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(berth_testkit::run_ok(
        "chown",
        &["-R", "65534:65534", &copy.path().display().to_string()]
    ));
    let rootfs = copy.path();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = dir.path().join("rootless-test");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = dir.path().join("state");
    // The state root belongs to the rootless user (one it does not own,
    // or others can write, is refused).
    std::fs::create_dir(&state).unwrap();
    std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(&exe)
        .args([
            "rootless_inner",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INNER, format!("{}:{}", state.display(), rootfs.display()))
        .env_remove("XDG_RUNTIME_DIR")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ROOTLESS-CONTAINER-OK"),
        "rootless run failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
