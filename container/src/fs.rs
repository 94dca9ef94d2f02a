//! The standard container filesystem as a berth-namespaces step plan,
//! built in the parent, executed by the child with raw syscalls.

use std::ffi::{CStr, CString};
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
    /// The container's own cgroup directory (host path), if it has one.
    pub cgroup_dir: Option<&'a Path>,
    pub mounts: &'a [Mount],
    pub masked: &'a [String],
    pub readonly: &'a [String],
    pub sysctls: &'a [(String, String)],
    /// (path inside the container, content) written into the writable rootfs.
    pub etc_files: &'a [(&'static str, Vec<u8>)],
}

/// `mount_setattr(2)` (Linux 5.12): `MOUNT_ATTR_RDONLY`, include/uapi/linux/mount.h.
const MOUNT_ATTR_RDONLY: u64 = 0x1;

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `O_PATH` fd of `path` resolved inside `dirfd` (see
/// [`berth_namespaces::open_in_root`]).
fn open_in_root(dirfd: libc::c_int, path: &CString) -> std::result::Result<libc::c_int, i32> {
    berth_namespaces::open_in_root(dirfd, path, libc::O_PATH)
}

/// What an in-root mount mounts.
struct InRootMount {
    /// `/path/to/new/root` (before `pivot_root`).
    root: CString,
    /// For each component of the destination: (relative prefix, its parent
    /// prefix or ".", the component's name).
    walk: Vec<(CString, CString, CString)>,
    /// The last component is a file (file bind mount), not a directory.
    file: bool,
    source: Option<CString>,
    fstype: Option<CString>,
    flags: libc::c_ulong,
    data: Option<CString>,
    readonly: bool,
    recursive: bool,
    /// `MS_SLAVE`/`MS_SHARED` (with `MS_REC`) or 0.
    propagation: libc::c_ulong,
}

/// A mount on `dst` (a path inside the container) below the new root
/// `root` whose every path component is resolved *inside* the root with
/// `openat2(RESOLVE_IN_ROOT)` (Linux 5.6): a symlink in the rootfs (even
/// one swapped in while the container starts) can neither make berth create
/// a directory on the host nor land the mount outside the root
/// (CVE-2021-30465 class). Missing directories are created with `mkdirat`
/// relative to an in-root fd; the mount goes onto the resolved `O_PATH` fd
/// through `/proc/self/fd/<n>` (the host's procfs, still visible before
/// `pivot_root`), read-only and propagation are set on a fresh in-root fd
/// of the new mount (`mount_setattr(2)`, 5.12).
#[allow(clippy::too_many_arguments)]
fn mount_in_root(
    root: &Path,
    dst: &Path,
    file: bool,
    source: Option<&Path>,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
    readonly: bool,
    recursive: bool,
    propagation: libc::c_ulong,
) -> Result<Step> {
    let cs = |s: &[u8]| {
        CString::new(s).map_err(|_| Error::invalid(format!("path {dst:?} contains a NUL byte")))
    };
    let mut walk = Vec::new();
    let mut prefix = PathBuf::new();
    for c in dst.components() {
        if let Component::Normal(n) = c {
            let parent = if prefix.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                prefix.clone()
            };
            prefix.push(n);
            walk.push((
                cs(prefix.as_os_str().as_bytes())?,
                cs(parent.as_os_str().as_bytes())?,
                cs(n.as_bytes())?,
            ));
        }
    }
    if walk.is_empty() {
        return Err(Error::invalid(format!(
            "mount destination {dst:?} is the container's root"
        )));
    }
    let m = InRootMount {
        root: cs(root.as_os_str().as_bytes())?,
        walk,
        file,
        source: source.map(|p| cs(p.as_os_str().as_bytes())).transpose()?,
        fstype: fstype.map(|f| cs(f.as_bytes())).transpose()?,
        flags,
        data: data.map(|d| cs(d.as_bytes())).transpose()?,
        readonly,
        recursive,
        propagation,
    };
    // SAFETY: the hook makes raw syscalls only, on C strings and stack
    // buffers prepared here; it allocates nothing.
    Ok(unsafe {
        Step::hook(
            format!("mount {} inside the root", dst.display()),
            move || m.run(),
        )
    })
}

impl InRootMount {
    fn run(&self) -> std::result::Result<(), i32> {
        // SAFETY (whole body): raw syscalls on C strings owned by `self` and
        // on stack buffers; every fd opened here is closed on every path.
        unsafe {
            let errno = || *libc::__errno_location();
            let rootfd = libc::open(
                self.root.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            );
            if rootfd < 0 {
                return Err(errno());
            }
            let r = self.run_at(rootfd);
            libc::close(rootfd);
            r
        }
    }

    unsafe fn run_at(&self, rootfd: libc::c_int) -> std::result::Result<(), i32> {
        // SAFETY (whole body): see `run`.
        unsafe {
            let errno = || *libc::__errno_location();
            let last = self.walk.len() - 1;
            for (i, (prefix, parent, name)) in self.walk.iter().enumerate() {
                match open_in_root(rootfd, prefix) {
                    Ok(fd) => {
                        libc::close(fd);
                        continue;
                    }
                    Err(libc::ENOENT) => {}
                    Err(e) => return Err(e),
                }
                let pfd = open_in_root(rootfd, parent)?;
                let r = if i == last && self.file {
                    let fd = libc::openat(
                        pfd,
                        name.as_ptr(),
                        libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                        0o644,
                    );
                    if fd >= 0 {
                        libc::close(fd);
                    }
                    fd
                } else {
                    libc::mkdirat(pfd, name.as_ptr(), 0o755)
                };
                let e = errno();
                libc::close(pfd);
                // EEXIST: raced with another creator, or a dangling symlink
                // (whose in-root target then fails the open below).
                if r < 0 && e != libc::EEXIST {
                    return Err(e);
                }
            }
            let target = &self.walk[last].0;
            let tfd = open_in_root(rootfd, target)?;
            let path = berth_namespaces::proc_self_fd(tfd);
            let r = libc::mount(
                self.source
                    .as_ref()
                    .map_or(std::ptr::null(), |s| s.as_ptr()),
                path.as_ptr().cast(),
                self.fstype
                    .as_ref()
                    .map_or(std::ptr::null(), |s| s.as_ptr()),
                self.flags,
                self.data
                    .as_ref()
                    .map_or(std::ptr::null(), |s| s.as_ptr().cast()),
            );
            let e = errno();
            libc::close(tfd);
            if r < 0 {
                return Err(e);
            }
            if !self.readonly && self.propagation == 0 {
                return Ok(());
            }
            // A fresh in-root fd now resolves to the new mount's root.
            let mfd = open_in_root(rootfd, target)?;
            let mut r = Ok(());
            if self.readonly {
                let attr = MountAttr {
                    attr_set: MOUNT_ATTR_RDONLY,
                    attr_clr: 0,
                    propagation: 0,
                    userns_fd: 0,
                };
                let at = libc::AT_EMPTY_PATH
                    | if self.recursive {
                        libc::AT_RECURSIVE
                    } else {
                        0
                    };
                if libc::syscall(
                    libc::SYS_mount_setattr,
                    mfd,
                    c"".as_ptr(),
                    at,
                    &attr as *const MountAttr,
                    std::mem::size_of::<MountAttr>(),
                ) < 0
                {
                    r = Err(errno());
                }
            }
            if r.is_ok() && self.propagation != 0 {
                let path = berth_namespaces::proc_self_fd(mfd);
                if libc::mount(
                    std::ptr::null(),
                    path.as_ptr().cast(),
                    std::ptr::null(),
                    self.propagation,
                    std::ptr::null(),
                ) < 0
                {
                    r = Err(errno());
                }
            }
            libc::close(mfd);
            r
        }
    }
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

/// An overlay mounted in the child with `fsopen("overlay")`, one
/// `fsconfig(FSCONFIG_SET_STRING, "lowerdir+")` per layer (Linux 6.8; older
/// kernels fail the step with EINVAL), upper and work dirs, `fsmount` and
/// `move_mount` onto `target` (fsopen(2), fsconfig(2), move_mount(2)). For
/// layer lists whose classic option string exceeds the one page mount(2)
/// takes.
fn overlay_by_fsconfig(
    lowers: &[String],
    upper: &str,
    work: &str,
    userxattr: bool,
    target: &Path,
) -> Result<Step> {
    let cs = |s: &[u8]| {
        CString::new(s)
            .map_err(|_| Error::invalid(format!("overlay path {s:?} contains a NUL byte")))
    };
    let m = FsconfigOverlay {
        lowers: lowers
            .iter()
            .map(|l| cs(l.as_bytes()))
            .collect::<Result<_>>()?,
        upper: cs(upper.as_bytes())?,
        work: cs(work.as_bytes())?,
        userxattr,
        target: cs(target.as_os_str().as_bytes())?,
    };
    // SAFETY: the hook makes raw syscalls only, on C strings prepared here;
    // it allocates nothing.
    Ok(unsafe {
        Step::hook(
            format!(
                "overlay of {} layers by fsconfig(lowerdir+) on {}",
                lowers.len(),
                target.display()
            ),
            move || m.run(),
        )
    })
}

/// Prepared data of [`overlay_by_fsconfig`].
struct FsconfigOverlay {
    lowers: Vec<CString>,
    upper: CString,
    work: CString,
    userxattr: bool,
    target: CString,
}

impl FsconfigOverlay {
    fn run(&self) -> std::result::Result<(), i32> {
        // <linux/mount.h>
        const FSOPEN_CLOEXEC: libc::c_uint = 1;
        const FSCONFIG_SET_FLAG: libc::c_uint = 0;
        const FSCONFIG_SET_STRING: libc::c_uint = 1;
        const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
        const FSMOUNT_CLOEXEC: libc::c_uint = 1;
        const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
        // SAFETY (whole body): raw syscalls on C strings owned by `self`;
        // both fds are closed on every path.
        unsafe {
            let errno = || *libc::__errno_location();
            let fs = libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), FSOPEN_CLOEXEC) as i32;
            if fs < 0 {
                return Err(errno());
            }
            let set = |key: &CStr, val: Option<&CString>| -> std::result::Result<(), i32> {
                let (cmd, v) = match val {
                    Some(v) => (FSCONFIG_SET_STRING, v.as_ptr()),
                    None => (FSCONFIG_SET_FLAG, std::ptr::null()),
                };
                if libc::syscall(libc::SYS_fsconfig, fs, cmd, key.as_ptr(), v, 0) < 0 {
                    Err(errno())
                } else {
                    Ok(())
                }
            };
            let mut r = Ok(());
            for l in &self.lowers {
                r = r.and_then(|()| set(c"lowerdir+", Some(l)));
            }
            r = r
                .and_then(|()| set(c"upperdir", Some(&self.upper)))
                .and_then(|()| set(c"workdir", Some(&self.work)));
            if self.userxattr {
                r = r.and_then(|()| set(c"userxattr", None));
            }
            if let Err(e) = r {
                libc::close(fs);
                return Err(e);
            }
            let null: *const libc::c_char = std::ptr::null();
            if libc::syscall(libc::SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, null, null, 0) < 0 {
                let e = errno();
                libc::close(fs);
                return Err(e);
            }
            let mnt = libc::syscall(libc::SYS_fsmount, fs, FSMOUNT_CLOEXEC, 0) as i32;
            let e = errno();
            libc::close(fs);
            if mnt < 0 {
                return Err(e);
            }
            let r = libc::syscall(
                libc::SYS_move_mount,
                mnt,
                c"".as_ptr(),
                libc::AT_FDCWD,
                self.target.as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH,
            );
            let e = errno();
            libc::close(mnt);
            if r < 0 {
                return Err(e);
            }
            Ok(())
        }
    }
}

/// Build the steps: rootfs, /etc files, /proc, /dev, /sys, sysctls, masks,
/// read-only paths, extra mounts, pivot_root. Every path inside the new root
/// is resolved inside it (`Step::in_root`, `mount_in_root`): the image never
/// steers a write, mkdir, mknod, symlink or mount onto the host.
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
            // limited to one page. Longer layer lists go through the new
            // mount API, one `lowerdir+` parameter per layer (Linux 6.8).
            if data.len() >= 4000 {
                s.push(overlay_by_fsconfig(
                    &lowers,
                    &format!("{rw_s}/upper"),
                    &format!("{rw_s}/work"),
                    p.rootless,
                    &t,
                )?);
            } else {
                s.push(Step::mount(
                    Some("overlay"),
                    &t,
                    Some("overlay"),
                    0,
                    Some(&data),
                ));
            }
            // The upper layer root gets the lower's mode; a host `/` is 0755.
        }
    }

    // Every path below is inside the new root, which the image controls:
    // each step resolves it there (`Step::in_root`: openat2 with
    // RESOLVE_IN_ROOT, mkdirat/mknodat/symlinkat on an in-root parent fd,
    // mounts onto /proc/self/fd/<n> of an in-root O_PATH fd), so a symlink
    // in the rootfs (`etc -> /host/dir`, `etc/hosts -> ../../victim`,
    // `proc -> /`) never reaches the host. A symlink as the last component
    // of a mount point or a made directory is refused (ELOOP), as runc
    // refuses mounts onto symlinks; the /etc files and masks follow links
    // inside the root (the container reads them through those links too).
    let r = |step: Step| step.in_root(&t);

    // /etc/hostname, /etc/hosts, /etc/resolv.conf: first, while nothing but
    // the image is in the root (no /proc, /sys, /dev a link could reach).
    if !p.etc_files.is_empty() {
        if writable_root {
            s.push(r(Step::mkdir("/etc", 0o755)));
            for (path, data) in p.etc_files {
                // Only a regular file is written (reopened through its
                // O_PATH fd); a link dangling inside the root is replaced.
                s.push(r(Step::write_file(path, data.clone())).follow_symlink());
            }
        } else {
            // Never write into the user's directory (and rootless, the
            // image's /etc belongs to an unmapped owner): bind our copies
            // over the files the rootfs already has (looked up in the
            // child, inside the root).
            for (path, data) in p.etc_files {
                let name = Path::new(path).file_name().unwrap_or_default();
                s.push(Step::write_file(p.state_dir.join(name), data.clone()));
                s.push(
                    r(Step::bind(p.state_dir.join(name), path, false, true))
                        .follow_symlink()
                        .skip_missing(),
                );
            }
        }
    }

    // /proc: a new instance for the new pid namespace.
    s.push(r(Step::mkdir("/proc", 0o555)));
    s.push(r(Step::mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        nosuid_nodev_noexec,
        None,
    )));

    // /dev: a small tmpfs with the standard nodes.
    s.push(r(Step::mkdir("/dev", 0o755)));
    s.push(r(Step::mount(
        Some("tmpfs"),
        "/dev",
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )));
    let dev = Path::new("/dev");
    for (name, maj, min) in DEV_NODES {
        let node = dev.join(name);
        if p.rootless {
            // No CAP_MKNOD in the init user namespace: bind the host's node
            // over an empty file.
            s.push(r(Step::mknod(&node, libc::S_IFREG | 0o644, 0)));
            s.push(r(Step::bind(dev.join(name), &node, false, false)));
        } else {
            s.push(r(Step::mknod(
                &node,
                libc::S_IFCHR | 0o666,
                libc::makedev(maj, min),
            )));
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
        s.push(r(Step::symlink(target, dev.join(link))));
    }
    s.push(r(Step::mkdir("/dev/pts", 0o755)));
    let pts_opts = if p.rootless {
        "newinstance,ptmxmode=0666,mode=0620"
    } else {
        "newinstance,ptmxmode=0666,mode=0620,gid=5"
    };
    s.push(r(Step::mount(
        Some("devpts"),
        "/dev/pts",
        Some("devpts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some(pts_opts),
    )));
    s.push(r(Step::mkdir("/dev/shm", 0o1777)));
    s.push(r(Step::mount(
        Some("shm"),
        "/dev/shm",
        Some("tmpfs"),
        nosuid_nodev_noexec,
        Some("mode=1777,size=65536k"),
    )));
    s.push(r(Step::mkdir("/dev/mqueue", 0o755)));
    s.push(r(Step::mount(
        Some("mqueue"),
        "/dev/mqueue",
        Some("mqueue"),
        nosuid_nodev_noexec,
        None,
    )));

    // /sys read-only: a new sysfs instance needs a network namespace of our
    // own (sysfs shows the netns' devices); otherwise a read-only bind.
    s.push(r(Step::mkdir("/sys", 0o555)));
    if p.own_netns {
        s.push(r(Step::mount(
            Some("sysfs"),
            "/sys",
            Some("sysfs"),
            nosuid_nodev_noexec | libc::MS_RDONLY,
            None,
        )));
        if p.cgroupns {
            // The container's own cgroup as the root of /sys/fs/cgroup
            // (a new cgroup namespace, cgroup_namespaces(7)).
            s.push(r(Step::mount(
                Some("cgroup2"),
                "/sys/fs/cgroup",
                Some("cgroup2"),
                nosuid_nodev_noexec | libc::MS_RDONLY,
                None,
            )));
        }
    } else {
        s.push(r(Step::bind("/sys", "/sys", true, true)));
    }
    if let (false, Some(cg)) = (p.cgroupns, p.cgroup_dir) {
        // Without a cgroup namespace, only the container's own group at
        // /sys/fs/cgroup (read-only), never the host's tree (the /sys
        // bind carries it): as runc does for cgroup v2.
        s.push(r(Step::bind(cg, "/sys/fs/cgroup", false, true)));
    }

    // Namespaced sysctls, before /proc/sys turns read-only (the key is
    // checked against the namespaced list by the builder; `..` in it makes
    // the step invalid).
    for (k, v) in p.sysctls {
        let path = Path::new("/proc/sys").join(k.replace('.', "/"));
        s.push(r(Step::write_file(path, v.as_bytes().to_vec())));
    }
    for m in p.masked {
        s.push(r(Step::mask(m)).follow_symlink());
    }
    for ro in p.readonly {
        s.push(r(Step::read_only(ro)).follow_symlink());
    }

    // Extra mounts.
    for m in p.mounts {
        match &m.kind {
            MountKind::Bind {
                src,
                readonly,
                recursive,
                propagation,
            } => {
                let rec = if *recursive { libc::MS_REC } else { 0 };
                let prop = match propagation {
                    Propagation::Private => 0,
                    Propagation::Slave => libc::MS_SLAVE | rec,
                    Propagation::Shared => libc::MS_SHARED | rec,
                };
                s.push(mount_in_root(
                    &t,
                    &m.dst,
                    !src.is_dir(),
                    Some(src),
                    None,
                    libc::MS_BIND | rec,
                    None,
                    *readonly,
                    *recursive,
                    prop,
                )?);
            }
            MountKind::Tmpfs { size, mode } => {
                let mut data = format!("mode={mode:o}");
                if let Some(sz) = size {
                    data.push_str(&format!(",size={sz}"));
                }
                s.push(mount_in_root(
                    &t,
                    &m.dst,
                    false,
                    Some(Path::new("tmpfs")),
                    Some("tmpfs"),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    Some(&data),
                    false,
                    false,
                    0,
                )?);
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
