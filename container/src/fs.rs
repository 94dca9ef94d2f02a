//! The standard container filesystem as a berth-namespaces step plan,
//! built in the parent, executed by the child with raw syscalls.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use berth_namespaces::Step;

use crate::config::{Mount, MountKind, Propagation, RootfsKind};
use crate::error::{Error, Result};

/// Devices created in `/dev`: name, major, minor (devices.txt of the kernel docs).
pub(crate) const DEV_NODES: [(&str, u32, u32); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Everything the filesystem plan needs to know.
pub(crate) struct FsPlan<'a> {
    pub state_dir: &'a Path,
    pub rootfs: &'a RootfsKind,
    pub read_only_root: bool,
    pub rootless: bool,
    pub own_netns: bool,
    pub cgroupns: bool,
    pub mounts: &'a [Mount],
    pub masked: &'a [String],
    pub readonly: &'a [String],
    pub sysctls: &'a [(String, String)],
    /// (path inside the container, content) written into the writable rootfs.
    pub etc_files: &'a [(&'static str, Vec<u8>)],
}

fn inside(root: &Path, p: &Path) -> PathBuf {
    let rel = p.strip_prefix("/").unwrap_or(p);
    root.join(rel)
}

/// `mkdir -p` of `dir` below `root` as steps (existing directories are fine).
fn mkdir_p(steps: &mut Vec<Step>, root: &Path, dir: &Path, mode: u32) {
    let mut cur = root.to_path_buf();
    for c in dir.components() {
        if let Component::Normal(n) = c {
            cur.push(n);
            steps.push(Step::mkdir(&cur, mode));
        }
    }
}

/// A child-side `open(O_CREAT)` without truncation: creates an empty file
/// as a mount point for a file bind mount, keeps an existing one intact.
fn touch(path: &Path) -> Result<Step> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::invalid(format!("path {path:?} contains a NUL byte")))?;
    // SAFETY: open/close are raw syscalls on a C string prepared here.
    Ok(unsafe {
        Step::hook("create bind-mount target file", move || {
            let fd = libc::open(
                c.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                0o644,
            );
            if fd < 0 {
                let e = *libc::__errno_location();
                // A directory (or anything else) already there is a usable target.
                if e == libc::EISDIR || e == libc::EEXIST {
                    return Ok(());
                }
                return Err(e);
            }
            libc::close(fd);
            Ok(())
        })
    })
}

fn umask_step(mask: libc::mode_t) -> Step {
    // SAFETY: umask(2) is a raw syscall that cannot fail.
    unsafe {
        Step::hook("umask", move || {
            libc::umask(mask);
            Ok(())
        })
    }
}

/// Reject characters the legacy overlay option string cannot carry.
fn overlay_path(p: &Path) -> Result<String> {
    let s = p
        .to_str()
        .ok_or_else(|| Error::invalid(format!("overlay layer {p:?} is not UTF-8")))?;
    if s.contains([':', ',', '\\', '\n']) {
        return Err(Error::invalid(format!(
            "overlay layer path {s:?} contains ':', ',' or '\\', which overlayfs options cannot carry"
        )));
    }
    Ok(s.to_string())
}

/// Build the steps: rootfs, /proc, /dev, /sys, masks, extra mounts, pivot_root.
pub(crate) fn plan(p: &FsPlan<'_>) -> Result<Vec<Step>> {
    let t = p.state_dir.join("rootfs");
    let nosuid_nodev_noexec = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    let mut s = Vec::with_capacity(64);
    s.push(Step::make_private("/", true));
    // A tmpfs over the state directory, in the container's mount namespace
    // only: the rootfs mount point, the overlay's writable layer and the
    // /etc copies live there, in memory, never on the host's disk, and
    // vanish with the container (nothing to delete on the host but
    // state.json).
    s.push(Step::mount(
        Some("tmpfs"),
        p.state_dir,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=755"),
    ));
    s.push(Step::mkdir(&t, 0o755));
    s.push(umask_step(0));

    // Root filesystem at <state>/rootfs.
    let mut writable_root = !p.rootless;
    match p.rootfs {
        RootfsKind::Dir(dir) => {
            s.push(Step::bind(dir, &t, true, false));
            writable_root = false; // the user's directory: don't write into it
        }
        RootfsKind::Layers(_) | RootfsKind::Host => {
            let lowers: Vec<String> = match p.rootfs {
                RootfsKind::Layers(l) => {
                    l.iter().map(|d| overlay_path(d)).collect::<Result<_>>()?
                }
                _ => vec!["/".to_string()],
            };
            if lowers.is_empty() {
                return Err(Error::invalid("an image rootfs needs at least one layer"));
            }
            let rw = p.state_dir.join("rw");
            let rw_s = overlay_path(&rw)?;
            // The writable layer is on the state directory's tmpfs (above):
            // private, gone with the container, and on another filesystem
            // than any lower layer (overlayfs refuses an upper inside a
            // lower, e.g. below the host's `/`).
            s.push(Step::mkdir(&rw, 0o755));
            s.push(Step::mkdir(rw.join("upper"), 0o755));
            s.push(Step::mkdir(rw.join("work"), 0o755));
            let mut data = format!(
                "lowerdir={},upperdir={rw_s}/upper,workdir={rw_s}/work",
                lowers.join(":")
            );
            if p.rootless {
                // Unprivileged overlay (Linux 5.11): xattrs in the user.* namespace.
                data.push_str(",userxattr");
            }
            // Documentation/filesystems/overlayfs.rst; the legacy string is
            // limited to one page.
            if data.len() >= 4000 {
                return Err(Error::invalid(format!(
                    "{} overlay layers make an option string of {} bytes; the kernel takes at most one page",
                    lowers.len(),
                    data.len()
                )));
            }
            s.push(Step::mount(
                Some("overlay"),
                &t,
                Some("overlay"),
                0,
                Some(&data),
            ));
            // The upper layer root gets the lower's mode; a host `/` is 0755.
        }
    }

    // /proc: a new instance for the new pid namespace.
    s.push(Step::mkdir(t.join("proc"), 0o555));
    s.push(Step::mount(
        Some("proc"),
        t.join("proc"),
        Some("proc"),
        nosuid_nodev_noexec,
        None,
    ));

    // /dev: a small tmpfs with the standard nodes.
    let dev = t.join("dev");
    s.push(Step::mkdir(&dev, 0o755));
    s.push(Step::mount(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    ));
    for (name, maj, min) in DEV_NODES {
        let node = dev.join(name);
        if p.rootless {
            // No CAP_MKNOD in the init user namespace: bind the host's node
            // over an empty file.
            s.push(Step::mknod(&node, libc::S_IFREG | 0o644, 0));
            s.push(Step::bind(
                Path::new("/dev").join(name),
                &node,
                false,
                false,
            ));
        } else {
            s.push(Step::mknod(
                &node,
                libc::S_IFCHR | 0o666,
                libc::makedev(maj, min),
            ));
        }
    }
    for (target, link) in [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("/proc/kcore", "core"),
        ("pts/ptmx", "ptmx"),
    ] {
        s.push(Step::symlink(target, dev.join(link)));
    }
    s.push(Step::mkdir(dev.join("pts"), 0o755));
    let pts_opts = if p.rootless {
        "newinstance,ptmxmode=0666,mode=0620"
    } else {
        "newinstance,ptmxmode=0666,mode=0620,gid=5"
    };
    s.push(Step::mount(
        Some("devpts"),
        dev.join("pts"),
        Some("devpts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some(pts_opts),
    ));
    s.push(Step::mkdir(dev.join("shm"), 0o1777));
    s.push(Step::mount(
        Some("shm"),
        dev.join("shm"),
        Some("tmpfs"),
        nosuid_nodev_noexec,
        Some("mode=1777,size=65536k"),
    ));
    s.push(Step::mkdir(dev.join("mqueue"), 0o755));
    s.push(Step::mount(
        Some("mqueue"),
        dev.join("mqueue"),
        Some("mqueue"),
        nosuid_nodev_noexec,
        None,
    ));

    // /sys read-only: a new sysfs instance needs a network namespace of our
    // own (sysfs shows the netns' devices); otherwise a read-only bind.
    let sys = t.join("sys");
    s.push(Step::mkdir(&sys, 0o555));
    if p.own_netns {
        s.push(Step::mount(
            Some("sysfs"),
            &sys,
            Some("sysfs"),
            nosuid_nodev_noexec | libc::MS_RDONLY,
            None,
        ));
        if p.cgroupns {
            // The container's own cgroup as the root of /sys/fs/cgroup
            // (a new cgroup namespace, cgroup_namespaces(7)).
            s.push(Step::mount(
                Some("cgroup2"),
                sys.join("fs/cgroup"),
                Some("cgroup2"),
                nosuid_nodev_noexec | libc::MS_RDONLY,
                None,
            ));
        }
    } else {
        s.push(Step::bind("/sys", &sys, true, true));
    }

    // Namespaced sysctls, before /proc/sys turns read-only.
    for (k, v) in p.sysctls {
        let path = t.join("proc/sys").join(k.replace('.', "/"));
        s.push(Step::write_file(path, v.as_bytes().to_vec()));
    }
    for m in p.masked {
        s.push(Step::mask(inside(&t, Path::new(m))));
    }
    for r in p.readonly {
        s.push(Step::read_only(inside(&t, Path::new(r))));
    }

    // /etc/hostname, /etc/hosts, /etc/resolv.conf.
    if !p.etc_files.is_empty() {
        if writable_root {
            s.push(Step::mkdir(t.join("etc"), 0o755));
            for (path, data) in p.etc_files {
                s.push(Step::write_file(inside(&t, Path::new(path)), data.clone()));
            }
        } else {
            // Never write into the user's directory (and rootless, the
            // image's /etc belongs to an unmapped owner): bind our copies
            // over the files the rootfs already has.
            let lowers: Vec<PathBuf> = match p.rootfs {
                RootfsKind::Dir(d) => vec![d.clone()],
                RootfsKind::Layers(l) => l.clone(),
                RootfsKind::Host => vec![PathBuf::from("/")],
            };
            for (path, data) in p.etc_files {
                let name = Path::new(path).file_name().unwrap_or_default();
                if lowers.iter().any(|l| inside(l, Path::new(path)).is_file()) {
                    s.push(Step::write_file(p.state_dir.join(name), data.clone()));
                    s.push(Step::bind(
                        p.state_dir.join(name),
                        inside(&t, Path::new(path)),
                        false,
                        true,
                    ));
                }
            }
        }
    }

    // Extra mounts.
    for m in p.mounts {
        let dst = inside(&t, &m.dst);
        match &m.kind {
            MountKind::Bind {
                src,
                readonly,
                recursive,
                propagation,
            } => {
                let is_dir = src.is_dir();
                if is_dir {
                    mkdir_p(&mut s, &t, &m.dst, 0o755);
                } else {
                    if let Some(parent) = m.dst.parent() {
                        mkdir_p(&mut s, &t, parent, 0o755);
                    }
                    s.push(touch(&dst)?);
                }
                s.push(Step::bind(src, &dst, *recursive, *readonly));
                let rec = if *recursive { libc::MS_REC } else { 0 };
                match propagation {
                    Propagation::Private => {}
                    Propagation::Slave => s.push(Step::make_slave(&dst, *recursive)),
                    Propagation::Shared => s.push(Step::mount(
                        None::<&str>,
                        &dst,
                        None,
                        libc::MS_SHARED | rec,
                        None,
                    )),
                }
            }
            MountKind::Tmpfs { size, mode } => {
                mkdir_p(&mut s, &t, &m.dst, 0o755);
                let mut data = format!("mode={mode:o}");
                if let Some(sz) = size {
                    data.push_str(&format!(",size={sz}"));
                }
                s.push(Step::mount(
                    Some("tmpfs"),
                    &dst,
                    Some("tmpfs"),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    Some(&data),
                ));
            }
        }
    }

    s.push(Step::pivot_root(&t));
    if p.read_only_root {
        // Per-mount read-only flag on `/` only (MS_REMOUNT|MS_BIND, mount(2));
        // /dev, /proc, tmpfs mounts keep theirs.
        let mut flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY;
        if p.rootless {
            // Flags locked by the user namespace must be kept.
            flags |= libc::MS_NOSUID | libc::MS_NODEV;
        }
        s.push(Step::mount(None::<&str>, "/", None, flags, None));
    }
    s.push(umask_step(0o022));
    Ok(s)
}
