//! Privileged tier: a `Rootfs::dir` with `read_only_root(true)` is never
//! modified — berth's mount points and /etc files go to a private layer
//! (issue 22 item 8).

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use berth::{Container, Mount, Rootfs, Stdio};

/// Every entry below `root` (not following links) with its type, mode,
/// owner, size, mtime (ns) and link target, sorted.
fn listing(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let link = std::fs::read_link(&p)
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            out.push(format!(
                "{} mode={:o} uid={} gid={} size={} mtime={}.{} link={link}",
                p.strip_prefix(root).unwrap().display(),
                m.mode(),
                m.uid(),
                m.gid(),
                m.size(),
                m.mtime(),
                m.mtime_nsec()
            ));
            if m.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let m = std::fs::symlink_metadata(root).unwrap();
    let mut out = vec![format!(
        ". mode={:o} mtime={}.{}",
        m.mode(),
        m.mtime(),
        m.mtime_nsec()
    )];
    walk(root, root, &mut out);
    out.sort();
    out
}

#[test]
fn read_only_dir_rootfs_is_never_modified() {
    berth_testkit::privileged!();
    let copy = berth_testkit::busybox_rootfs_copy();
    let dir = copy.path();
    // Without the files and directories berth needs inside.
    for f in ["etc/hosts", "etc/hostname"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    for d in ["proc", "sys", "dev", "scratch"] {
        let _ = std::fs::remove_dir_all(dir.join(d));
    }
    let before = listing(dir);
    let root = common::state_root();
    let id = berth_testkit::unique_name("rodir");
    let out = Container::builder(&id)
        .rootfs(Rootfs::dir(dir))
        .read_only_root(true)
        .hostname("rodir")
        .mount(Mount::tmpfs("/scratch"))
        .state_root(root.path())
        .stdin(Stdio::Null)
        .command([
            "/bin/sh",
            "-c",
            "echo x > /scratch/f && cat /scratch/f; cat /etc/hostname; \
             grep -c rodir /etc/hosts; ls -d /proc/1 /sys/kernel /dev/null; \
             touch /newfile 2>/dev/null && echo root-writable; true",
        ])
        .output()
        .unwrap();
    let after = listing(dir);
    let changed: Vec<_> = after.iter().filter(|l| !before.contains(l)).collect();
    assert_eq!(
        before, after,
        "the rootfs directory on the host changed: {changed:?}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout,
        "x\nrodir\n1\n/dev/null\n/proc/1\n/sys/kernel\n",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
