//! Mount propagation of a bundle's bind mount, observed on both sides:
//! Kubernetes' Bidirectional (`rshared` bind, `rootfsPropagation:
//! rshared`), HostToContainer (`rslave`) and None (`rprivate`), as
//! containerd writes them and runc honours them.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use berth::{Bundle, Stdio};
use common::*;
use serde_json::json;

/// A tmpfs of this test under a tempdir, made shared on the host (the
/// source of the bind mount); it and everything below it are unmounted on
/// drop. The host's own mounts are never touched.
struct SharedSource(tempfile::TempDir);

impl SharedSource {
    fn new() -> SharedSource {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().to_str().unwrap().to_string();
        assert!(berth_testkit::run_ok(
            "mount",
            &["-t", "tmpfs", "-o", "size=1m", "berth-prop-src", &p]
        ));
        let src = SharedSource(d);
        assert!(berth_testkit::run_ok("mount", &["--make-shared", &p]));
        for sub in ["from-ctr", "from-host"] {
            std::fs::create_dir(src.path().join(sub)).unwrap();
        }
        src
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for SharedSource {
    fn drop(&mut self) {
        // Submounts first (a mount propagated back from a container, the
        // host's own), then the source: lazily, whole trees.
        for sub in ["from-ctr", "from-host"] {
            while mounted(&self.path().join(sub)) {
                if !berth_testkit::run_ok(
                    "umount",
                    &["-l", &self.path().join(sub).to_string_lossy()],
                ) {
                    break;
                }
            }
        }
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

/// `path` is a mount point in the test's (the host's) mount namespace.
fn mounted(path: &Path) -> bool {
    let want = path.to_str().unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(want))
}

/// What each side saw: (the container's mount below the bind reached the
/// host, the host's mount made after start reached the container).
fn run(root_propagation: Option<&str>, bind_propagation: &str, userns: bool) -> (bool, bool) {
    let src = SharedSource::new();
    let state = state_root();
    let bundle = tempfile::tempdir().unwrap();
    let all_caps = json!(["CAP_SYS_ADMIN", "CAP_CHOWN", "CAP_DAC_OVERRIDE"]);
    // The container mounts a tmpfs below the bind, says so, waits for the
    // host's mount, then reports whether it sees it.
    let script = "mount -t tmpfs berth-prop-ctr /vol/from-ctr && echo mounted; \
                  read go; \
                  if grep -q ' /vol/from-host ' /proc/self/mountinfo; then echo seen; else echo unseen; fi";
    let mut cfg = json!({
        "ociVersion": "1.0.2",
        "root": { "path": berth_testkit::busybox_rootfs(), "readonly": true },
        "process": {
            "user": { "uid": 0, "gid": 0 },
            "args": ["/bin/sh", "-c", script],
            "env": ["PATH=/bin"],
            "cwd": "/",
            "capabilities": {
                "bounding": all_caps, "effective": all_caps, "permitted": all_caps
            }
        },
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/vol", "type": "bind", "source": src.path(),
              "options": ["rbind", bind_propagation] }
        ],
        "linux": {
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
                { "type": "uts" }, { "type": "mount" }
            ]
        }
    });
    if userns {
        // A user namespace made by root: container root is host uid
        // 100000 (the bind is then a detached copy moved in).
        cfg["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "type": "user" }));
        let map = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
        cfg["linux"]["uidMappings"] = map.clone();
        cfg["linux"]["gidMappings"] = map;
    }
    if let Some(r) = root_propagation {
        cfg["linux"]["rootfsPropagation"] = json!(r);
    }
    std::fs::write(bundle.path().join("config.json"), cfg.to_string()).unwrap();
    let id = berth_testkit::unique_name("prop");
    let mut c = Bundle::load(bundle.path())
        .unwrap()
        .builder(&id)
        .unwrap()
        .state_root(state.path())
        .stdin(Stdio::Piped)
        .stdout(Stdio::Piped)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(c.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "mounted\n", "the container's mount below /vol failed");
    let from_ctr = mounted(&src.path().join("from-ctr"));
    let host_mnt: PathBuf = src.path().join("from-host");
    assert!(berth_testkit::run_ok(
        "mount",
        &["-t", "tmpfs", "berth-prop-host", host_mnt.to_str().unwrap()]
    ));
    let mut stdin = c.stdin.take().unwrap();
    stdin.write_all(b"go\n").unwrap();
    drop(stdin);
    line.clear();
    out.read_line(&mut line).unwrap();
    assert!(c.wait().unwrap().success());
    c.destroy().unwrap();
    let to_ctr = match line.as_str() {
        "seen\n" => true,
        "unseen\n" => false,
        other => panic!("container said {other:?}"),
    };
    drop(src);
    (from_ctr, to_ctr)
}

/// Kubernetes' Bidirectional: containerd sets `rootfsPropagation:
/// rshared` and the bind's options `rbind`, `rshared`. A mount the
/// container makes below the bind appears on the host, and the host's
/// appear inside (runc passes critest's "should support mount
/// propagation: Bidirectional").
#[test]
fn rshared_bind_propagates_both_ways() {
    berth_testkit::privileged!();
    assert_eq!(run(Some("rshared"), "rshared", false), (true, true));
}

/// Kubernetes' HostToContainer: `rslave` root and bind. The host's mounts
/// made after start arrive; the container's stay inside.
#[test]
fn rslave_bind_sees_host_mounts_only() {
    berth_testkit::privileged!();
    assert_eq!(run(Some("rslave"), "rslave", false), (false, true));
}

/// Kubernetes' None (`rprivate`): neither direction.
#[test]
fn rprivate_bind_sees_neither_direction() {
    berth_testkit::privileged!();
    assert_eq!(run(None, "rprivate", false), (false, false));
}

/// A user namespace made by root: the bind is a detached copy of the
/// host's tree (open_tree), which is a peer of a shared source until cut.
/// With no propagation asked for (private, the default) nothing crosses,
/// as in a namespace copied into a user namespace (the kernel makes its
/// shared mounts slaves; runc's rprivate then cuts them).
#[test]
fn user_namespace_default_bind_sees_neither_direction() {
    berth_testkit::privileged!();
    assert_eq!(run(None, "rbind", true), (false, false));
}

/// A user namespace made by root with `rshared` asked for: host mounts
/// arrive, the container's stay inside (a less privileged namespace never
/// propagates back: mount_namespaces(7)).
#[test]
fn user_namespace_rshared_bind_sees_host_mounts_only() {
    berth_testkit::privileged!();
    assert_eq!(run(Some("rshared"), "rshared", true), (false, true));
}
