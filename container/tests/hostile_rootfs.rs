//! Privileged tier: hostile images (issue 20, item 2). A rootfs whose
//! `etc/hosts`, `etc/hostname`, `etc/resolv.conf`, `etc`, `proc`, `dev` or
//! `sys` are symlinks pointing out of the root must never make berth write,
//! create or mount anything on the host: every path the container
//! filesystem plan touches is resolved inside the new root. Each shape runs
//! as the top layer of a writable overlay rootfs (the image path) and as an
//! OCI bundle's directory rootfs; the container runs or is refused, and the
//! host directory the links point into is byte-for-byte, mtime-for-mtime
//! unchanged.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[cfg(feature = "oci")]
use berth::Bundle;
use berth::{Network, Rootfs, Stdio};
use common::*;

/// What the host victim directory holds: relative path -> (type, content, mtime).
type Snapshot = BTreeMap<PathBuf, (String, Vec<u8>, i64, i64)>;

fn snapshot(dir: &Path) -> Snapshot {
    fn walk(base: &Path, d: &Path, out: &mut Snapshot) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(base).unwrap().to_path_buf();
            let ft = md.file_type();
            let (kind, content) = if ft.is_dir() {
                ("dir", Vec::new())
            } else if ft.is_file() {
                ("file", std::fs::read(&p).unwrap())
            } else {
                ("other", Vec::new())
            };
            out.insert(rel, (kind.into(), content, md.mtime(), md.mtime_nsec()));
            if ft.is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = Snapshot::new();
    walk(dir, dir, &mut out);
    out
}

/// The host side: a victim file, a victim directory with a file in it.
struct Host {
    dir: tempfile::TempDir,
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::Builder::new()
            .prefix("berth-victim-")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("victim"), "host victim: must stay\n").unwrap();
        std::fs::create_dir(dir.path().join("dir")).unwrap();
        std::fs::write(dir.path().join("dir/keep"), "keep\n").unwrap();
        // Old mtimes, so a rewrite of the same bytes still shows.
        for p in ["victim", "dir/keep", "dir"] {
            let p =
                std::ffi::CString::new(dir.path().join(p).as_os_str().as_encoded_bytes()).unwrap();
            let ts = [libc::timespec {
                tv_sec: 1_000_000_000,
                tv_nsec: 0,
            }; 2];
            // SAFETY: valid path and array.
            let r = unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), ts.as_ptr(), 0) };
            assert_eq!(r, 0);
        }
        Host { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// One hostile shape: (path inside the rootfs, symlink target), the
/// network it needs for the file to be written (resolv.conf: a bridge).
struct Shape {
    name: &'static str,
    link: &'static str,
    target: String,
    bridge: bool,
}

fn shapes(host: &Path) -> Vec<Shape> {
    let h = host.display().to_string();
    let up = "../".repeat(24);
    let rel = h.trim_start_matches('/');
    let s = |name, link, target: String, bridge| Shape {
        name,
        link,
        target,
        bridge,
    };
    vec![
        s("hosts-abs", "etc/hosts", format!("{h}/victim"), false),
        s("hostname-abs", "etc/hostname", format!("{h}/victim"), false),
        s("hosts-dangling", "etc/hosts", format!("{h}/created"), false),
        s("hosts-rel", "etc/hosts", format!("{up}{rel}/victim"), false),
        s(
            "hostname-rel",
            "etc/hostname",
            format!("{up}{rel}/victim"),
            false,
        ),
        s("etc-dir", "etc", format!("{h}/dir"), false),
        s("etc-dir-rel", "etc", format!("{up}{rel}/dir"), false),
        s("proc", "proc", format!("{h}/dir"), false),
        s("dev", "dev", format!("{h}/dir"), false),
        s("sys", "sys", format!("{h}/dir"), false),
        // A FIFO: a plain open for writing would block the start forever.
        s("hosts-fifo", "etc/hosts", "fifo:".into(), false),
        // A link inside the root is followed there.
        s("hosts-inroot", "etc/hosts", "/etc/hosts.real".into(), false),
        s("resolv-abs", "etc/resolv.conf", format!("{h}/victim"), true),
        s(
            "resolv-rel",
            "etc/resolv.conf",
            format!("{up}{rel}/created"),
            true,
        ),
    ]
}

/// Put the shape's symlink into `root` (replacing what is there).
fn plant(root: &Path, shape: &Shape) {
    let at = root.join(shape.link);
    std::fs::create_dir_all(at.parent().unwrap()).unwrap();
    if let Ok(md) = std::fs::symlink_metadata(&at) {
        if md.is_dir() {
            std::fs::remove_dir_all(&at).unwrap();
        } else {
            std::fs::remove_file(&at).unwrap();
        }
    }
    if shape.target == "fifo:" {
        let c = std::ffi::CString::new(at.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: valid path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        return;
    }
    if shape.target.starts_with("/etc/") {
        std::fs::write(root.join(&shape.target[1..]), "image's real file\n").unwrap();
    }
    std::os::unix::fs::symlink(&shape.target, &at).unwrap();
}

const SCRIPT: &str = "cat /etc/hostname /etc/hosts 2>&1; ls / >/dev/null; echo done";

/// Run `b` to completion: Ok(stdout) or Err(the spawn error / status).
fn run(b: berth::ContainerBuilder) -> Result<String, String> {
    let mut c = b
        .command(["/bin/sh", "-c", SCRIPT])
        .stdin(Stdio::Null)
        .stdout(Stdio::Piped)
        .stderr(Stdio::Null)
        .spawn()
        .map_err(|e| format!("refused: {e}"))?;
    let mut out = String::new();
    c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let st = c.wait().unwrap();
    c.destroy().unwrap();
    if st.success() {
        Ok(out)
    } else {
        Err(format!("exited {st:?}: {out}"))
    }
}

/// Host mounts naming the victim directory (none may appear).
fn host_mounts(host: &Path) -> Vec<String> {
    let h = host.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&h))
        .map(String::from)
        .collect()
}

/// Run every shape through `make` (which builds the container for a
/// shape), check the host after each, and fail with the whole table.
fn check_all(
    kind: &str,
    make: impl Fn(&Shape, &Path, &tempfile::TempDir) -> berth::ContainerBuilder,
) {
    let mut report = Vec::new();
    let mut bad = Vec::new();
    for i in 0..shapes(Path::new("/")).len() {
        let host = Host::new();
        let shape = shapes(host.path()).swap_remove(i);
        let root = state_root();
        let before = snapshot(host.path());
        let outcome = run(make(&shape, host.path(), &root));
        let after = snapshot(host.path());
        let mounts = host_mounts(host.path());
        let line = format!("{kind} {}: {:?}", shape.name, outcome);
        if before != after || !mounts.is_empty() {
            let changed: Vec<_> = before
                .keys()
                .chain(after.keys())
                .filter(|k| before.get(*k) != after.get(*k))
                .map(|k| {
                    let show = |v: Option<&(String, Vec<u8>, i64, i64)>| {
                        v.map(|(t, c, s, _)| {
                            format!("{t} {:?} mtime {s}", String::from_utf8_lossy(c))
                        })
                    };
                    format!(
                        "{}: {:?} -> {:?}",
                        k.display(),
                        show(before.get(k)),
                        show(after.get(k))
                    )
                })
                .collect();
            bad.push(format!(
                "{line}\n  host changed: {changed:?}\n  host mounts: {mounts:?}"
            ));
        }
        if let Err(e) = &outcome {
            // A refusal names what was refused.
            if !e.contains("refused") || e.len() < 20 {
                bad.push(format!("{line}: not a clear refusal"));
            }
        }
        report.push(line);
    }
    eprintln!("{}", report.join("\n"));
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

fn bridge(shape: &Shape, b: berth::ContainerBuilder, net_state: &Path) -> berth::ContainerBuilder {
    if !shape.bridge {
        return b;
    }
    b.network(
        Network::bridge(&format!("bh{}", std::process::id() % 100000))
            .subnet("10.231.41.0/24")
            .masquerade(false)
            .ip_forward(false)
            .state_dir(net_state),
    )
}

/// The image path: the hostile layer on top of busybox, a writable overlay
/// (the /etc files are written into it).
#[test]
fn hostile_image_layers_touch_nothing_on_the_host() {
    berth_testkit::privileged!();
    let net_state = tempfile::tempdir().unwrap();
    let _link = berth_testkit::Link::adopt(format!("bh{}", std::process::id() % 100000));
    let layers = tempfile::tempdir().unwrap();
    check_all("layers", |shape, _host, root| {
        let layer = layers.path().join(shape.name);
        std::fs::create_dir(&layer).unwrap();
        plant(&layer, shape);
        let id = berth_testkit::unique_name("hostile");
        let b = busybox(&id, root).rootfs(Rootfs::layers([
            layer,
            berth_testkit::busybox_rootfs().to_path_buf(),
        ]));
        bridge(shape, b, net_state.path())
    });
}

#[cfg(feature = "oci")]
/// The OCI bundle path: the hostile links in the bundle's rootfs directory
/// (never written into: our /etc files are bound over existing ones).
#[test]
fn hostile_bundle_rootfs_touches_nothing_on_the_host() {
    berth_testkit::privileged!();
    let net_state = tempfile::tempdir().unwrap();
    let _link = berth_testkit::Link::adopt(format!("bh{}", std::process::id() % 100000));
    let copies = std::cell::RefCell::new(Vec::new());
    check_all("bundle", |shape, _host, root| {
        let rootfs = berth_testkit::busybox_rootfs_copy();
        // The files the plan would bind over, so the links are followed.
        std::fs::write(rootfs.path().join("etc/hosts"), "image hosts\n").unwrap();
        std::fs::write(rootfs.path().join("etc/hostname"), "image\n").unwrap();
        std::fs::write(rootfs.path().join("etc/resolv.conf"), "\n").unwrap();
        plant(rootfs.path(), shape);
        let dir = tempfile::tempdir().unwrap();
        let cfg = serde_json::json!({
            "ociVersion": "1.0.2",
            "root": { "path": rootfs.path(), "readonly": false },
            "hostname": "hostile",
            "process": {
                "user": { "uid": 0, "gid": 0 },
                "args": ["/bin/sh", "-c", SCRIPT],
                "env": ["PATH=/bin"],
                "cwd": "/"
            },
            "linux": {
                "namespaces": [
                    { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
                    { "type": "uts" }, { "type": "mount" }
                ]
            }
        });
        std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
        let id = berth_testkit::unique_name("hostileb");
        let b = Bundle::load(dir.path())
            .unwrap()
            .builder(&id)
            .unwrap()
            .state_root(root.path());
        copies.borrow_mut().push((rootfs, dir));
        bridge(shape, b, net_state.path())
    });
}
