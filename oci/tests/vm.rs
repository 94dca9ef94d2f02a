//! VM tier (`scripts/vm-test -p berth-oci --test vm`): berth-oci under
//! podman on a real cgroup2 hierarchy with every controller.

use std::path::Path;

mod common;

use common::*;

/// `podman --runtime berth-oci run --memory …` on a real cgroup2 hierarchy
/// (the host's hybrid cgroups lack the memory controller in cgroup2): the
/// limit is observed from inside the container (its own `memory.max` via
/// the cgroup namespace) and a process touching more than the limit is
/// OOM-killed (exit 137). Private podman storage (vfs driver) and runtime
/// dirs under `$TMPDIR` (a real tmpfs in the VM).
#[test]
fn podman_memory_limit_with_berth_oci() {
    use std::process::{Command, Stdio};
    berth_testkit::vm_only!();
    if Command::new("podman").arg("--version").output().is_err() {
        println!("skipped: podman is not installed (apt-get install podman)");
        return;
    }
    let bin = BIN;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("containers.conf"),
        "[containers]\ndefault_ulimits = [\"nofile=1024:1024\"]\n\
         [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
    )
    .unwrap();
    std::fs::write(
        d.join("registries.conf"),
        "unqualified-search-registries = []\n",
    )
    .unwrap();
    let podman = |args: &[&str]| {
        let out = berth_testkit::podman_private_store(&mut Command::new("podman"), d, "vfs", bin)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // An OCI archive of the busybox fixture.
    let tar = image_archive(d, "localhost/berth-busybox:latest");
    let (code, _, err) = podman(&["pull", "-q", &format!("oci-archive:{}", tar.display())]);
    assert_eq!(code, 0, "{err}");
    let (_, imgs, _) = podman(&["images", "--format", "{{.Id}}"]);
    let img = imgs.lines().next().unwrap().trim().to_string();

    // The limit, seen from inside.
    let (code, out, err) = podman(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--memory",
        "64m",
        &img,
        "cat",
        "/sys/fs/cgroup/memory.max",
    ]);
    assert_eq!((code, out.as_str()), (0, "67108864\n"), "{err}");
    // Touching 64 MiB under a 24 MiB limit (no swap): the OOM killer ends
    // the container's process, podman reports 137.
    let (code, out, err) = podman(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--memory",
        "24m",
        "--memory-swap",
        "24m",
        &img,
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=64M",
        "count=1",
    ]);
    assert_eq!(code, 137, "{out}\n{err}");
    // Without a limit the same process completes.
    let (code, _, err) = podman(&[
        "run",
        "--rm",
        "--network",
        "none",
        &img,
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=64M",
        "count=1",
    ]);
    assert_eq!(code, 0, "{err}");
    // `podman update` (issue 21 item 7; the runtime's `update --resources
    // -`) with a runtime root deeper than sockaddr_un: the new limit is the
    // container's own, seen from inside; then `events --stats` by hand
    // reports the container's memory (a few hundred kB), never the VM's.
    let root = deep_dir(&d.join("rt"), 120);
    let flag = format!("root={}", root.display());
    let name = berth_testkit::unique_name("vmu");
    let deep = |args: &[&str]| {
        let mut v = vec!["--runtime-flag", flag.as_str()];
        v.extend_from_slice(args);
        podman(&v)
    };
    let (code, _, err) = deep(&[
        "run",
        "-d",
        "--network",
        "none",
        "--memory",
        "64m",
        "--name",
        &name,
        &img,
        "sleep",
        "600",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = deep(&["update", "--memory", "32m", &name]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = deep(&["exec", &name, "cat", "/sys/fs/cgroup/memory.max"]);
    assert_eq!((code, out.as_str()), (0, "33554432\n"), "{err}");
    let (_, id, _) = deep(&["inspect", "--format", "{{.Id}}", &name]);
    let ev = Command::new(bin)
        .arg("--root")
        .arg(&root)
        .args(["events", "--stats", id.trim()])
        .output()
        .unwrap();
    let ev: serde_json::Value = serde_json::from_slice(&ev.stdout).unwrap();
    let usage = ev["data"]["memory"]["usage"]["usage"].as_u64().unwrap();
    let limit = ev["data"]["memory"]["usage"]["limit"].as_u64().unwrap();
    assert!(usage > 0 && usage < 16 << 20, "{ev}");
    assert_eq!(limit, 32 << 20, "{ev}");
    let (code, _, err) = deep(&["rm", "-f", "-t", "0", &name]);
    assert_eq!(code, 0, "{err}");
    Rt::new(bin, root.clone()).delete_all();
    let left: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left in the runtime root: {left:?}");

    // --rm left nothing: no container, no berth-oci state, no container
    // cgroup (libpod-<id>) under podman's parent (podman keeps its own
    // `conmon` group there).
    let (_, ps, _) = podman(&["ps", "-aq"]);
    assert_eq!(ps.trim(), "");
    let meta: Vec<_> = std::fs::read_dir("/run/berth-oci/.meta")
        .map(|r| r.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(meta.is_empty(), "{meta:?}");
    let parent = Path::new("/sys/fs/cgroup/libpod_parent");
    let left: Vec<_> = std::fs::read_dir(parent)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "conmon")
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    let _ = podman(&["system", "reset", "-f"]);
}
