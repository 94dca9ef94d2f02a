//! The standard container filesystem as a berth-namespaces step plan,
//! built in the parent, executed by the child with raw syscalls.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use berth_namespaces::Step;
use berth_sys::child;
use berth_sys::mount_api::MountAttr;

use crate::config::{
    attr, DeviceNode, DeviceNodeKind, Mount, MountKind, MountOpts, Propagation, RootfsKind,
};
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
    /// Send the overlay's upper directory to the parent (commit.rs).
    pub send_upper: bool,
    /// `/etc/hosts` is this host file, written by the parent and bound
    /// read-only in every case (a user-defined network keeps it current
    /// from the host: berth-netsetup's hosts files). Not in the state
    /// directory, which the child covers with a tmpfs.
    pub hosts_bound: Option<&'a Path>,
    /// The workload's umask.
    pub umask: u32,
    /// `linux.rootfsPropagation`: the root mount's type, recursive.
    pub root_propagation: Option<(Propagation, bool)>,
    /// Extra device nodes (`linux.devices`).
    pub devices: &'a [DeviceNode],
    /// Bind the host's device nodes instead of mknod (a user namespace).
    pub bind_devices: bool,
    /// A user namespace made by root: the container's root (a mapped id,
    /// not the host's root) may not search the private state root nor the
    /// bundle's directory.
    pub userns_by_root: bool,
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
    /// Attributes (`mount_setattr`) and propagation set after the mount.
    opts: MountOpts,
    /// Propagation set before `opts`' (0: none): a detached copy of a
    /// host tree (`open_tree`) is still a peer of the host's mounts; this
    /// cuts it as the container's namespace copy was cut (`MS_SLAVE` or
    /// `MS_PRIVATE`, with `MS_REC`).
    cut: libc::c_ulong,
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
    opts: MountOpts,
    cut: libc::c_ulong,
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
        opts,
        cut,
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
        let rootfd = child::open(
            &self.root,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            0,
        )?;
        let r = self
            .make_path(rootfd)
            .and_then(|()| self.mount_at(rootfd))
            .and_then(|()| self.set_attributes(rootfd));
        child::close(rootfd);
        r
    }

    /// Each missing component of the destination, made inside the root
    /// (`mkdirat`, or an empty file for the last one of a file bind).
    fn make_path(&self, rootfd: libc::c_int) -> std::result::Result<(), i32> {
        let last = self.walk.len() - 1;
        for (i, (prefix, parent, name)) in self.walk.iter().enumerate() {
            match open_in_root(rootfd, prefix) {
                Ok(fd) => {
                    child::close(fd);
                    continue;
                }
                Err(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
            let pfd = open_in_root(rootfd, parent)?;
            let r = if i == last && self.file {
                child::openat(
                    pfd,
                    name,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                    0o644,
                )
                .map(child::close)
            } else {
                child::mkdirat(pfd, name, 0o755)
            };
            child::close(pfd);
            // EEXIST: raced with another creator, or a dangling symlink
            // (whose in-root target then fails the open below).
            match r {
                Err(e) if e != libc::EEXIST => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// The mount onto the resolved destination (`/proc/self/fd/<n>` of an
    /// in-root `O_PATH` fd). Neither source nor type: the tree was moved
    /// in already (move_mount), only its attributes are set after this.
    fn mount_at(&self, rootfd: libc::c_int) -> std::result::Result<(), i32> {
        let moved = self.source.is_none() && self.fstype.is_none();
        let tfd = open_in_root(rootfd, self.target())?;
        if moved {
            child::close(tfd);
            return Ok(());
        }
        let path = berth_namespaces::proc_self_fd(tfd);
        let r = fd_path(&path).and_then(|at| {
            child::mount(
                self.source.as_deref(),
                at,
                self.fstype.as_deref(),
                self.flags,
                self.data.as_deref(),
            )
        });
        child::close(tfd);
        r
    }

    /// The destination relative to the root (the last prefix of the walk).
    fn target(&self) -> &CString {
        &self.walk[self.walk.len() - 1].0
    }

    /// Attributes (`mount_setattr`, the `r` forms first: the mount and its
    /// submounts, then the mount's own words), then the cut and the
    /// propagation asked for (a shared mount after an `MS_SLAVE` cut is
    /// "slave and shared": mount_namespaces(7)), on a fresh in-root fd,
    /// which now resolves to the new mount's root.
    fn set_attributes(&self, rootfd: libc::c_int) -> std::result::Result<(), i32> {
        let o = &self.opts;
        let any_attr = o.attr_set | o.attr_clr | o.rattr_set | o.rattr_clr != 0;
        if !any_attr && o.propagation == 0 && self.cut == 0 {
            return Ok(());
        }
        let mfd = open_in_root(rootfd, self.target())?;
        let setattr = |set: u64, clr: u64, at: libc::c_int| {
            if set | clr == 0 {
                return Ok(());
            }
            child::mount_setattr(
                mfd,
                c"",
                (libc::AT_EMPTY_PATH | at) as libc::c_uint,
                MountAttr::from_bits_retain(set),
                MountAttr::from_bits_retain(clr),
            )
        };
        let mut r = setattr(o.rattr_set, o.rattr_clr, libc::AT_RECURSIVE)
            .and_then(|()| setattr(o.attr_set, o.attr_clr, 0));
        for flags in [self.cut, o.propagation] {
            if r.is_ok() && flags != 0 {
                let path = berth_namespaces::proc_self_fd(mfd);
                r = fd_path(&path).and_then(|at| child::mount(None, at, None, flags, None));
            }
        }
        child::close(mfd);
        r
    }
}

/// [`berth_namespaces::proc_self_fd`]'s buffer as a C string.
fn fd_path(buf: &[u8; 32]) -> std::result::Result<&CStr, i32> {
    CStr::from_bytes_until_nul(buf).map_err(|_| libc::EINVAL)
}

fn umask_step(mask: libc::mode_t) -> Step {
    // SAFETY: umask(2) is a raw syscall that cannot fail.
    unsafe {
        Step::hook("umask", move || {
            child::umask(mask);
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

/// Build the steps: rootfs, /etc files, /proc, /dev, /sys, sysctls, masks,
/// read-only paths, extra mounts, pivot_root. Every path inside the new root
/// is resolved inside it (`Step::in_root`, `mount_in_root`): the image never
/// steers a write, mkdir, mknod, symlink or mount onto the host.
pub(crate) fn plan(p: &FsPlan<'_>) -> Result<Vec<Step>> {
    let mut pl = Planner {
        p,
        root: p.state_dir.join("rootfs"),
        steps: Vec::with_capacity(64),
    };
    let ns_copy = pl.propagation();
    pl.scratch();
    let writable_root = pl.root_filesystem()?;
    pl.etc_files(writable_root);
    pl.proc();
    pl.dev_nodes();
    let chowns = pl.extra_devices()?;
    pl.dev_links_and_mounts();
    pl.sys();
    pl.sysctls_masks_read_only();
    for m in p.mounts {
        pl.user_mount(m, ns_copy)?;
    }
    pl.after_pivot_root(chowns);
    Ok(pl.steps)
}

/// The plan being built: its input, the new root (`<state>/rootfs`), the steps so far.
struct Planner<'p, 'a> {
    p: &'p FsPlan<'a>,
    root: PathBuf,
    steps: Vec<Step>,
}

impl Planner<'_, '_> {
    fn push(&mut self, step: Step) {
        self.steps.push(step);
    }

    /// Every path below is inside the new root, which the image controls:
    /// each step resolves it there (`Step::in_root`: openat2 with
    /// RESOLVE_IN_ROOT, mkdirat/mknodat/symlinkat on an in-root parent fd,
    /// mounts onto /proc/self/fd/<n> of an in-root O_PATH fd), so a symlink
    /// in the rootfs (`etc -> /host/dir`, `etc/hosts -> ../../victim`,
    /// `proc -> /`) never reaches the host. A symlink as the last component
    /// of a mount point or a made directory is refused (ELOOP), as runc
    /// refuses mounts onto symlinks; the /etc files and masks follow links
    /// inside the root (the container reads them through those links too).
    fn in_root(&self, step: Step) -> Step {
        step.in_root(&self.root)
    }

    fn push_in_root(&mut self, step: Step) {
        let step = self.in_root(step);
        self.steps.push(step);
    }

    /// `mkdir(dir, mode)` and a mount of `fstype` there, inside the root.
    fn mkdir_and_mount(
        &mut self,
        dir: &str,
        mode: u32,
        source: &str,
        fstype: &str,
        flags: libc::c_ulong,
        data: Option<&str>,
    ) {
        self.push_in_root(Step::mkdir(dir, mode));
        self.push_in_root(Step::mount(Some(source), dir, Some(fstype), flags, data));
    }

    /// Private, so mounts made in the child never reach the host; a slave
    /// (as runc's default) for a slave or shared root or mount: host events
    /// still arrive, nothing goes back. Returns what this made of the
    /// copies of the host's mounts: a detached copy of a host tree
    /// (open_tree, made by the parent) is cut the same way, unless it is a
    /// bidirectional bind.
    fn propagation(&mut self) -> libc::c_ulong {
        let p = self.p;
        let slave = matches!(
            p.root_propagation,
            Some((Propagation::Slave | Propagation::Shared, _))
        ) || p.mounts.iter().any(Mount::wants_host_events);
        if slave {
            self.push(Step::make_slave("/", true));
            libc::MS_REC | libc::MS_SLAVE
        } else {
            self.push(Step::make_private("/", true));
            libc::MS_REC | libc::MS_PRIVATE
        }
    }

    /// A tmpfs over the state directory, in the container's mount namespace
    /// only: the rootfs mount point, the overlay's writable layer and the
    /// /etc copies live there, in memory, never on the host's disk, and
    /// vanish with the container (nothing to delete on the host but
    /// state.json).
    ///
    /// With a user namespace made by root the child runs as the mapped root
    /// (another host id), which may not search the 0700 state root: the
    /// tmpfs goes over the state root itself (only its parent is searched;
    /// in the container's namespace only, hiding the other containers'
    /// state from it) and the state directory is made in it.
    fn scratch(&mut self) {
        let p = self.p;
        let scratch = match p.state_dir.parent() {
            Some(root) if p.userns_by_root => root,
            _ => p.state_dir,
        };
        self.push(Step::mount(
            Some("tmpfs"),
            scratch,
            Some("tmpfs"),
            libc::MS_NOSUID | libc::MS_NODEV,
            Some("mode=755"),
        ));
        if scratch != p.state_dir {
            self.push(Step::mkdir(p.state_dir, 0o755));
        }
        self.push(Step::mkdir(&self.root, 0o755));
        self.push(umask_step(0));
    }

    /// The root filesystem at `<state>/rootfs`. Returns whether berth may
    /// write into it (the /etc files).
    fn root_filesystem(&mut self) -> Result<bool> {
        let p = self.p;
        let lowers: Vec<String> = match p.rootfs {
            RootfsKind::Dir(dir) if p.userns_by_root => {
                // A detached copy made here, by the host's root, moved into
                // place by the child: the mapped root need not search the
                // bundle's (often 0700) directory (open_tree(2), Linux 5.2).
                let tree = berth_namespaces::detached_bind(dir, true)?;
                self.push(Step::move_mount(tree, &self.root));
                return Ok(false); // the user's directory: don't write into it
            }
            // The user's directory, read-only: never modified. An overlay
            // with its writable layer on the state tmpfs takes the mount
            // points berth makes (`/proc`, `/dev`, a tmpfs destination...)
            // and the /etc files, which then exist even when the directory
            // lacks them; `/` is made read-only after `pivot_root`.
            RootfsKind::Dir(dir) if p.read_only_root => vec![overlay_path(dir)?],
            RootfsKind::Dir(dir) => {
                // Writable: the container writes into the user's directory.
                self.push(Step::bind(dir, &self.root, true, false));
                return Ok(false); // but berth's /etc copies are bound over
            }
            RootfsKind::Layers(l) => l.iter().map(|d| overlay_path(d)).collect::<Result<_>>()?,
            RootfsKind::Host => vec!["/".to_string()],
        };
        self.overlay(&lowers)?;
        Ok(!p.rootless)
    }

    /// An overlay of `lowers` with its writable layer on the state
    /// directory's tmpfs (above): private, gone with the container, and on
    /// another filesystem than any lower layer (overlayfs refuses an upper
    /// inside a lower, e.g. below the host's `/`). Mounted by the child
    /// with berth-overlay's rule (`MountMethod::Auto`: `lowerdir+` through
    /// the new mount API on Linux ≥ 6.8, else the classic option string of
    /// one page; Documentation/filesystems/overlayfs.rst).
    fn overlay(&mut self, lowers: &[String]) -> Result<()> {
        let p = self.p;
        if lowers.is_empty() {
            return Err(Error::invalid("an image rootfs needs at least one layer"));
        }
        let rw = p.state_dir.join("rw");
        overlay_path(&rw)?;
        self.push(Step::mkdir(&rw, 0o755));
        self.push(Step::mkdir(rw.join("upper"), 0o755));
        self.push(Step::mkdir(rw.join("work"), 0o755));
        let mut ov = berth_overlay::Overlay::new()
            .lowers(lowers)
            .upper(rw.join("upper"))
            .work(rw.join("work"));
        if p.rootless {
            // Unprivileged overlay (Linux 5.11): xattrs in the user.* namespace.
            ov = ov.userxattr();
        }
        let m = ov.prepare_child_mount(&self.root)?;
        let how = match m.methods() {
            (true, true) => "fsconfig(lowerdir+), else mount(2)",
            (true, false) => "fsconfig(lowerdir+)",
            _ => "mount(2)",
        };
        let name = format!(
            "overlay of {} layers on {} by {how}",
            m.layers(),
            self.root.display()
        );
        // SAFETY: ChildOverlay::mount makes raw syscalls only, on data
        // prepared here (berth-overlay's contract); it allocates nothing.
        self.push(unsafe { Step::hook(name, move || m.mount()) });
        // The upper layer root gets the lower's mode; a host `/` is 0755.
        if p.send_upper {
            self.push(crate::commit::send_upper_step(&rw.join("upper"))?);
        }
        Ok(())
    }

    /// /etc/hostname, /etc/hosts, /etc/resolv.conf: first, while nothing
    /// but the image is in the root (no /proc, /sys, /dev a link could
    /// reach). Written into a `writable_root`, else bound over the files
    /// the rootfs has.
    fn etc_files(&mut self, writable_root: bool) {
        let p = self.p;
        if p.etc_files.is_empty() {
            return;
        }
        if writable_root {
            self.push_in_root(Step::mkdir("/etc", 0o755));
            for (path, data) in p.etc_files {
                // Only a regular file is written (reopened through its
                // O_PATH fd); a link dangling inside the root is replaced.
                self.push(
                    self.in_root(Step::write_file(path, data.clone()))
                        .follow_symlink(),
                );
                if let (Some(h), "/etc/hosts") = (p.hosts_bound, *path) {
                    // The file just written is the mount point.
                    self.push(
                        self.in_root(Step::bind(h, path, false, true))
                            .follow_symlink(),
                    );
                }
            }
            return;
        }
        // Never write into the user's directory (and rootless, the image's
        // /etc belongs to an unmapped owner): bind our copies over the
        // files the rootfs already has (looked up in the child, inside the
        // root).
        for (path, data) in p.etc_files {
            let name = Path::new(path).file_name().unwrap_or_default();
            // A bound hosts file is the parent's (already written).
            let src = match (p.hosts_bound, *path) {
                (Some(h), "/etc/hosts") => h.to_path_buf(),
                _ => {
                    self.push(Step::write_file(p.state_dir.join(name), data.clone()));
                    p.state_dir.join(name)
                }
            };
            let bind = self.in_root(Step::bind(src, path, false, true));
            self.push(bind.follow_symlink().skip_missing());
        }
    }

    /// /proc: a new instance for the new pid namespace.
    fn proc(&mut self) {
        self.mkdir_and_mount("/proc", 0o555, "proc", "proc", NOSUID_NODEV_NOEXEC, None);
    }

    /// /dev: a small tmpfs with the standard nodes (those `linux.devices`
    /// does not give).
    fn dev_nodes(&mut self) {
        let p = self.p;
        self.mkdir_and_mount(
            "/dev",
            0o755,
            "tmpfs",
            "tmpfs",
            libc::MS_NOSUID | libc::MS_STRICTATIME,
            Some("mode=755,size=65536k"),
        );
        let dev = Path::new("/dev");
        for (name, maj, min) in DEV_NODES {
            let node = dev.join(name);
            if p.devices.iter().any(|d| d.path == node) {
                continue; // linux.devices gives its own
            }
            if p.bind_devices {
                // No CAP_MKNOD in the init user namespace: bind the host's
                // node over an empty file.
                self.push_in_root(Step::mknod(&node, libc::S_IFREG | 0o644, 0));
                self.push_in_root(Step::bind(dev.join(name), &node, false, false));
            } else {
                self.push_in_root(Step::mknod(
                    &node,
                    libc::S_IFCHR | 0o666,
                    libc::makedev(maj, min),
                ));
            }
        }
    }

    /// `linux.devices`, with their parent directories; returns the steps
    /// setting their owners, run after `pivot_root`.
    fn extra_devices(&mut self) -> Result<Vec<Step>> {
        let p = self.p;
        let dev = Path::new("/dev");
        let mut chowns = Vec::new();
        for d in p.devices {
            if d.path == dev.join("ptmx") {
                // Always the link to the container's own devpts instance
                // (below): runc makes the node, then replaces it with the
                // link when it sets up /dev (setupPtmx). A 5:2 node would
                // open the devpts mounted beside it all the same (pts(4),
                // Linux 4.7), but tools and critest look for the link.
                tracing::debug!("linux.devices /dev/ptmx: the pts/ptmx link instead, as runc");
                continue;
            }
            let mut parents: Vec<&Path> = d
                .path
                .ancestors()
                .skip(1)
                .filter(|a| *a != Path::new("/") && *a != dev)
                .collect();
            parents.reverse();
            for a in parents {
                self.push_in_root(Step::mkdir(a, 0o755));
            }
            if p.bind_devices && d.kind != DeviceNodeKind::Fifo {
                // No CAP_MKNOD in the initial user namespace: the host's
                // node at the same path, bound over an empty file (as runc
                // does).
                self.push_in_root(Step::mknod(&d.path, libc::S_IFREG | 0o644, 0));
                self.push_in_root(Step::bind(&d.path, &d.path, false, false));
            } else {
                self.push_in_root(Step::mknod(
                    &d.path,
                    d.type_bits() | d.mode,
                    libc::makedev(d.major, d.minor),
                ));
                if d.uid != 0 || d.gid != 0 {
                    chowns.push(chown_step(&d.path, d.uid, d.gid)?);
                }
            }
        }
        Ok(chowns)
    }

    /// The standard links of /dev, then devpts, shm and mqueue.
    fn dev_links_and_mounts(&mut self) {
        let p = self.p;
        let dev = Path::new("/dev");
        for (target, link) in [
            ("/proc/self/fd", "fd"),
            ("/proc/self/fd/0", "stdin"),
            ("/proc/self/fd/1", "stdout"),
            ("/proc/self/fd/2", "stderr"),
            ("/proc/kcore", "core"),
            ("pts/ptmx", "ptmx"),
        ] {
            if link != "ptmx" && p.devices.iter().any(|d| d.path == dev.join(link)) {
                continue; // a node asked for wins over the link, as runc's setupDevSymlinks
            }
            self.push_in_root(Step::symlink(target, dev.join(link)));
        }
        self.push_in_root(Step::mkdir("/dev/pts", 0o755));
        let pts_opts = if p.rootless {
            "newinstance,ptmxmode=0666,mode=0620"
        } else {
            "newinstance,ptmxmode=0666,mode=0620,gid=5"
        };
        self.push_in_root(Step::mount(
            Some("devpts"),
            "/dev/pts",
            Some("devpts"),
            libc::MS_NOSUID | libc::MS_NOEXEC,
            Some(pts_opts),
        ));
        self.mkdir_and_mount(
            "/dev/shm",
            0o1777,
            "shm",
            "tmpfs",
            NOSUID_NODEV_NOEXEC,
            Some("mode=1777,size=65536k"),
        );
        self.mkdir_and_mount(
            "/dev/mqueue",
            0o755,
            "mqueue",
            "mqueue",
            NOSUID_NODEV_NOEXEC,
            None,
        );
    }

    /// /sys read-only: a new sysfs instance needs a network namespace of
    /// our own (sysfs shows the netns' devices); otherwise a read-only
    /// bind. Then /sys/fs/cgroup.
    fn sys(&mut self) {
        let p = self.p;
        self.push_in_root(Step::mkdir("/sys", 0o555));
        if p.own_netns {
            self.push_in_root(Step::mount(
                Some("sysfs"),
                "/sys",
                Some("sysfs"),
                NOSUID_NODEV_NOEXEC | libc::MS_RDONLY,
                None,
            ));
        } else {
            // The host's /sys, with its /sys/fs/cgroup tree (every v1
            // hierarchy, the whole unified one): covered below in every case.
            self.push_in_root(Step::bind("/sys", "/sys", true, true));
        }
        if p.cgroupns {
            // The container's own cgroup as the root of /sys/fs/cgroup
            // (a new cgroup namespace, cgroup_namespaces(7)).
            self.push_in_root(Step::mount(
                Some("cgroup2"),
                "/sys/fs/cgroup",
                Some("cgroup2"),
                NOSUID_NODEV_NOEXEC | libc::MS_RDONLY,
                None,
            ));
        } else if let Some(cg) = p.cgroup_dir {
            // Without a cgroup namespace, only the container's own group at
            // /sys/fs/cgroup (read-only), never the host's tree: as runc
            // does for cgroup v2.
            self.push_in_root(Step::bind(cg, "/sys/fs/cgroup", false, true));
        } else if !p.own_netns {
            // No cgroup of its own (rootless without a delegated one): an
            // empty read-only tmpfs over the host's tree the /sys bind
            // carries, as a new sysfs shows an empty /sys/fs/cgroup.
            self.push_in_root(Step::mount(
                Some("tmpfs"),
                "/sys/fs/cgroup",
                Some("tmpfs"),
                NOSUID_NODEV_NOEXEC | libc::MS_RDONLY,
                Some("mode=755"),
            ));
        }
    }

    /// Namespaced sysctls, before /proc/sys turns read-only (the key is
    /// checked against the namespaced list by the builder; `..` in it
    /// makes the step invalid); then masked and read-only paths.
    fn sysctls_masks_read_only(&mut self) {
        let p = self.p;
        for (k, v) in p.sysctls {
            let path = Path::new("/proc/sys").join(k.replace('.', "/"));
            self.push_in_root(Step::write_file(path, v.as_bytes().to_vec()));
        }
        for m in p.masked {
            self.push(self.in_root(Step::mask(m)).follow_symlink());
        }
        for ro in p.readonly {
            self.push(self.in_root(Step::read_only(ro)).follow_symlink());
        }
    }

    /// An extra mount; `ns_copy` is what [`propagation`](Self::propagation)
    /// made of the host's mounts.
    fn user_mount(&mut self, m: &Mount, ns_copy: libc::c_ulong) -> Result<()> {
        let step = match &m.kind {
            MountKind::Bind { src, .. } if self.detached_source(m) => {
                return self.detached_bind_mount(m, src, ns_copy)
            }
            MountKind::Bind { src, recursive, .. } => mount_in_root(
                &self.root,
                &m.dst,
                !src.is_dir(),
                Some(src),
                None,
                libc::MS_BIND | if *recursive { libc::MS_REC } else { 0 },
                None,
                self.bind_opts(m),
                0,
            )?,
            MountKind::Tmpfs { size, mode } => {
                let mut data = format!("mode={mode:o}");
                if let Some(sz) = size {
                    data.push_str(&format!(",size={sz}"));
                }
                for d in &m.data {
                    data.push(',');
                    data.push_str(d);
                }
                mount_in_root(
                    &self.root,
                    &m.dst,
                    false,
                    Some(Path::new("tmpfs")),
                    Some("tmpfs"),
                    libc::MS_NOSUID | libc::MS_NODEV | m.opts.sb_flags,
                    Some(&data),
                    m.opts,
                    0,
                )?
            }
        };
        self.push(step);
        Ok(())
    }

    /// A bind mount's attributes and propagation: `read_only()` sets
    /// `MOUNT_ATTR_RDONLY` (on the whole tree of a recursive bind), and
    /// private (the default) is set explicitly too: the copy of the source
    /// is a slave when another mount or the root asks for host events.
    fn bind_opts(&self, m: &Mount) -> MountOpts {
        let mut o = m.opts;
        let MountKind::Bind {
            readonly,
            recursive,
            propagation,
            ..
        } = &m.kind
        else {
            return o;
        };
        if *readonly {
            let (set, clr) = if *recursive {
                (&mut o.rattr_set, &mut o.rattr_clr)
            } else {
                (&mut o.attr_set, &mut o.attr_clr)
            };
            *set |= attr::RDONLY;
            *clr &= !attr::RDONLY;
        }
        if o.propagation == 0 {
            o.propagation = propagation.ms_flag() | if *recursive { libc::MS_REC } else { 0 };
        }
        o
    }

    /// Bidirectional (Kubernetes' `Bidirectional`: a shared bind and a
    /// shared root, as containerd writes it): the bind must stay a peer of
    /// the host's source, which the container's namespace copy no longer
    /// is (made a slave above, as runc's rslave default would). The
    /// parent's detached copy (open_tree(2) OPEN_TREE_CLONE, Linux 5.2) of
    /// a shared mount is a peer of it, and stays one when moved onto a
    /// non-shared mount (mount_namespaces(7)), so mounts made below it in
    /// the container reach the host. A user namespace's copies are slaves
    /// (the kernel's rule for a less privileged namespace), so never there.
    fn stays_peer(&self, m: &Mount) -> bool {
        let p = self.p;
        self.bind_opts(m).propagation & libc::MS_SHARED != 0
            && matches!(p.root_propagation, Some((Propagation::Shared, _)))
            && !p.rootless
            && !p.userns_by_root
    }

    /// A directory bind made from a detached copy taken by the parent: a
    /// peer (above), or with a user namespace made by root, whose mapped
    /// root may not search the source's parents (a 0700 volume directory;
    /// as runc opens mount sources before entering the user namespace).
    fn detached_source(&self, m: &Mount) -> bool {
        match &m.kind {
            MountKind::Bind { src, .. } => {
                (self.p.userns_by_root || self.stays_peer(m)) && src.is_dir()
            }
            MountKind::Tmpfs { .. } => false,
        }
    }

    /// The detached copy of `src`, moved onto the in-root destination by
    /// the child, then its attributes and propagation (cut first unless it
    /// stays a peer).
    fn detached_bind_mount(&mut self, m: &Mount, src: &Path, ns_copy: libc::c_ulong) -> Result<()> {
        let recursive = matches!(
            m.kind,
            MountKind::Bind {
                recursive: true,
                ..
            }
        );
        let mut prefix = PathBuf::from("/");
        for c in m.dst.components() {
            if let Component::Normal(n) = c {
                prefix.push(n);
                self.push_in_root(Step::mkdir(&prefix, 0o755));
            }
        }
        let tree = berth_namespaces::detached_bind(src, recursive)?;
        self.push_in_root(Step::move_mount(tree, &m.dst));
        let cut = if self.stays_peer(m) { 0 } else { ns_copy };
        let step = mount_in_root(
            &self.root,
            &m.dst,
            false,
            None,
            None,
            0,
            None,
            self.bind_opts(m),
            cut,
        )?;
        self.push(step);
        Ok(())
    }

    /// `pivot_root`, then what is set on the container's own paths: `/`
    /// read-only, the owners of made device nodes (`chowns`), the root's
    /// propagation, the workload's umask.
    fn after_pivot_root(&mut self, chowns: Vec<Step>) {
        let p = self.p;
        self.push(Step::pivot_root(&self.root));
        if p.read_only_root {
            // Per-mount read-only flag on `/` only (MS_REMOUNT|MS_BIND,
            // mount(2)); /dev, /proc, tmpfs mounts keep theirs.
            let mut flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY;
            if p.rootless {
                // Flags locked by the user namespace must be kept.
                flags |= libc::MS_NOSUID | libc::MS_NODEV;
            }
            self.push(Step::mount(None::<&str>, "/", None, flags, None));
        }
        // Owners of made device nodes, inside the new root (lchown: never
        // through a link).
        self.steps.extend(chowns);
        if let Some((prop, rec)) = p.root_propagation {
            let rec = if rec { libc::MS_REC } else { 0 };
            self.push(Step::mount(
                None::<&str>,
                "/",
                None,
                prop.ms_flag() | rec,
                None,
            ));
        }
        self.push(umask_step(p.umask));
    }
}

/// The flags of /proc, /dev/shm, /dev/mqueue, /sys and /sys/fs/cgroup.
const NOSUID_NODEV_NOEXEC: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;

/// `lchown(path)` after `pivot_root` (the path is the container's).
fn chown_step(path: &Path, uid: u32, gid: u32) -> Result<Step> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::invalid(format!("path {path:?} contains a NUL byte")))?;
    // SAFETY: lchown(2) is a raw syscall on a C string prepared here.
    Ok(unsafe {
        Step::hook(
            format!("lchown {} {uid}:{gid}", path.display()),
            move || child::lchown(&c, uid, gid),
        )
    })
}

/// The steps for a container without a mount namespace of its own (it
/// shares the runtime's or joined one, runtime-spec: a namespace not
/// listed is inherited): nothing is mounted (no standard filesystem, so
/// masked and read-only paths have nothing to protect and are skipped;
/// the builder refuses what needs a mount), namespaced sysctls are
/// written through the runtime's procfs (they show the writer's
/// namespaces), then `chroot(2)` into a directory root filesystem, as runc
/// does without a mount namespace (runc also mounts into the shared
/// namespace; berth never changes a mount namespace it does not own).
pub(crate) fn plan_without_mount_ns(p: &FsPlan<'_>) -> Result<Vec<Step>> {
    let mut s = Vec::new();
    if !p.masked.is_empty() || !p.readonly.is_empty() {
        tracing::warn!(
            "no mount namespace of the container's own: masked and read-only paths skipped (no /proc or /sys is mounted)"
        );
    }
    for (k, v) in p.sysctls {
        let path = Path::new("/proc/sys").join(k.replace('.', "/"));
        s.push(Step::write_file(path, v.as_bytes().to_vec()));
    }
    match p.rootfs {
        RootfsKind::Dir(dir) => {
            let c = CString::new(dir.as_os_str().as_bytes())
                .map_err(|_| Error::invalid(format!("root {dir:?} contains a NUL byte")))?;
            // SAFETY: chroot(2) and chdir(2) on a C string prepared here.
            s.push(unsafe {
                Step::hook(format!("chroot {}", dir.display()), move || {
                    child::chroot(&c).and_then(|()| child::chdir(c"/"))
                })
            });
        }
        RootfsKind::Host => {}
        RootfsKind::Layers(_) => {
            return Err(Error::invalid(
                "an image root filesystem needs a mount namespace of the container's own",
            ))
        }
    }
    s.push(umask_step(p.umask));
    Ok(s)
}

/// The plan's order and kinds of steps for representative configurations,
/// through [`Step::describe`]: no root needed (nothing runs).
#[cfg(test)]
mod tests {
    use super::*;

    const STATE: &str = "/run/berth-test/c1";
    const ROOT: &str = "/run/berth-test/c1/rootfs";

    /// A default container's plan input: own network and cgroup namespaces,
    /// the /etc files, one masked and one read-only path, a sysctl.
    fn defaults(rootfs: &RootfsKind) -> FsPlan<'_> {
        FsPlan {
            state_dir: Path::new(STATE),
            rootfs,
            read_only_root: false,
            rootless: false,
            own_netns: true,
            cgroupns: true,
            cgroup_dir: Some(Path::new("/sys/fs/cgroup/unified/berth/c1")),
            mounts: &[],
            masked: Box::leak(Box::new(vec!["/proc/kcore".to_string()])),
            readonly: Box::leak(Box::new(vec!["/proc/sys".to_string()])),
            sysctls: Box::leak(Box::new(vec![(
                "net.ipv4.ip_forward".to_string(),
                "1".to_string(),
            )])),
            etc_files: Box::leak(Box::new(vec![
                ("/etc/hostname", b"c1\n".to_vec()),
                ("/etc/hosts", b"127.0.0.1\tlocalhost\n".to_vec()),
            ])),
            send_upper: false,
            hosts_bound: None,
            umask: 0o022,
            root_propagation: None,
            devices: &[],
            bind_devices: false,
            userns_by_root: false,
        }
    }

    fn describe(p: &FsPlan<'_>) -> Vec<String> {
        plan(p).unwrap().iter().map(Step::describe).collect()
    }

    /// Index of the first step containing every needle (panics with the plan).
    fn pos(steps: &[String], needles: &[&str]) -> usize {
        steps
            .iter()
            .position(|s| needles.iter().all(|n| s.contains(n)))
            .unwrap_or_else(|| panic!("no step with {needles:?} in\n{:#?}", steps))
    }

    fn count(steps: &[String], needles: &[&str]) -> usize {
        steps
            .iter()
            .filter(|s| needles.iter().all(|n| s.contains(n)))
            .count()
    }

    fn flags(f: libc::c_ulong) -> String {
        format!("flags {f:#x}")
    }

    fn in_order(steps: &[String], order: &[&[&str]]) {
        let at: Vec<usize> = order.iter().map(|n| pos(steps, n)).collect();
        assert!(
            at.windows(2).all(|w| w[0] < w[1]),
            "{order:?} at {at:?}, not in order:\n{steps:#?}"
        );
    }

    #[test]
    fn default_directory_root() {
        let rootfs = RootfsKind::Dir("/srv/rootfs".into());
        let s = describe(&defaults(&rootfs));
        // Private first; the state tmpfs, the root bound there; umask 0 for
        // the setup, the workload's last.
        assert_eq!(
            s[0],
            format!(
                "mount_propagation(\"/\", {})",
                flags(libc::MS_PRIVATE | libc::MS_REC)
            )
        );
        assert!(s[1].starts_with(&format!("mount(\"tmpfs\" -> \"{STATE}\", type \"tmpfs\"")));
        assert_eq!(s[2], format!("mkdir(\"{ROOT}\", 0o755)"));
        assert_eq!(s[3], "hook(\"umask\")");
        assert_eq!(
            s[4],
            format!("bind(\"/srv/rootfs\" -> \"{ROOT}\", recursive)")
        );
        assert_eq!(s.last().unwrap(), "hook(\"umask\")");
        // The user's directory is never written: /etc copies bound over.
        assert_eq!(count(&s, &["write_file(\"/run/berth-test/c1/host"]), 2);
        assert_eq!(
            count(&s, &["bind(", "-> \"/etc/", "skipped when missing"]),
            2
        );
        in_order(
            &s,
            &[
                &["bind(", "-> \"/etc/hostname\""],
                &["mount(\"proc\" -> \"/proc\""],
                &["mount(\"tmpfs\" -> \"/dev\""],
                &["mknod(\"/dev/null\", 0o20666, dev 0x103)"],
                &["symlink(\"/dev/ptmx\" -> \"pts/ptmx\")"],
                &["mount(\"devpts\" -> \"/dev/pts\""],
                &["mount(\"shm\" -> \"/dev/shm\""],
                &["mount(\"mqueue\" -> \"/dev/mqueue\""],
                &["mount(\"sysfs\" -> \"/sys\""],
                &["mount(\"cgroup2\" -> \"/sys/fs/cgroup\""],
                &["write_file(\"/proc/sys/net/ipv4/ip_forward\""],
                &["mask(\"/proc/kcore\")"],
                &["read_only(\"/proc/sys\")"],
                &[&format!("pivot_root(\"{ROOT}\")")],
            ],
        );
        // Every path below the new root is resolved inside it.
        let first_in_root = pos(&s, &["bind(", "-> \"/etc/hostname\""]);
        let pivot = pos(&s, &["pivot_root("]);
        // (but the copies of the /etc files, written in the state tmpfs).
        for step in &s[first_in_root..pivot] {
            let copy = step.starts_with(&format!("write_file(\"{STATE}/"));
            assert!(
                copy || step.contains(&format!("inside the root \"{ROOT}\"")),
                "{step}"
            );
        }
        // The six standard nodes, made (no user namespace).
        assert_eq!(count(&s, &["mknod(\"/dev/", "0o20666"]), DEV_NODES.len());
        assert_eq!(count(&s, &["remount"]), 0);
        assert_eq!(
            count(
                &s,
                &[&flags(libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY)]
            ),
            0
        );
    }

    #[test]
    fn read_only_root_is_an_overlay_remounted_read_only_after_pivot_root() {
        let rootfs = RootfsKind::Dir("/srv/rootfs".into());
        let p = FsPlan {
            read_only_root: true,
            ..defaults(&rootfs)
        };
        let s = describe(&p);
        let overlay = pos(
            &s,
            &[&format!(
                "hook(\"overlay of 1 layers on {ROOT} by fsconfig(lowerdir+), else mount(2)\")"
            )],
        );
        assert!(pos(&s, &[&format!("mkdir(\"{STATE}/rw/work\"")]) < overlay);
        // Writable layer: the /etc files are written into it, not bound.
        assert_eq!(count(&s, &["write_file(\"/etc/hostname\""]), 1);
        let remount = pos(
            &s,
            &[
                "mount(none -> \"/\"",
                &flags(libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY),
            ],
        );
        assert!(pos(&s, &["pivot_root("]) < remount);
        assert_eq!(count(&s, &["bind(\"/srv/rootfs\""]), 0);
    }

    #[test]
    fn user_namespace_made_by_root_binds_nodes_and_covers_the_state_root() {
        let rootfs = RootfsKind::Layers(vec!["/l/1".into(), "/l/0".into()]);
        let p = FsPlan {
            userns_by_root: true,
            bind_devices: true,
            send_upper: true,
            ..defaults(&rootfs)
        };
        let s = describe(&p);
        // The tmpfs goes over the state root (the mapped root may not
        // search it), the state directory is made in it.
        assert!(
            s[1].starts_with("mount(\"tmpfs\" -> \"/run/berth-test\""),
            "{}",
            s[1]
        );
        assert_eq!(s[2], format!("mkdir(\"{STATE}\", 0o755)"));
        // The upper layer is sent to the parent right after the overlay.
        let overlay = pos(&s, &["hook(\"overlay of 2 layers on"]);
        assert!(s[overlay + 1].starts_with("hook("), "{}", s[overlay + 1]);
        // No mknod of a device: an empty file with the host's node bound on it.
        assert_eq!(count(&s, &["mknod(\"/dev/", "0o20666"]), 0);
        for (name, _, _) in DEV_NODES {
            let node = format!("\"/dev/{name}\"");
            let file = pos(&s, &["mknod(", &node, "0o100644"]);
            let bind = pos(&s, &[&format!("bind({node} -> {node}")]);
            assert!(file < bind, "{name}");
        }
    }

    #[test]
    fn rshared_root_and_bind_make_the_copy_a_slave_and_share_root_last() {
        let rootfs = RootfsKind::Dir("/srv/rootfs".into());
        // A file source: bound by the child (a directory would be a
        // detached copy made here, which needs root).
        let mounts = [Mount::bind("/etc/hostname", "/data/name").propagation(Propagation::Shared)];
        let p = FsPlan {
            root_propagation: Some((Propagation::Shared, true)),
            mounts: &mounts,
            ..defaults(&rootfs)
        };
        let s = describe(&p);
        assert_eq!(
            s[0],
            format!(
                "mount_propagation(\"/\", {})",
                flags(libc::MS_SLAVE | libc::MS_REC)
            )
        );
        in_order(
            &s,
            &[
                &["read_only(\"/proc/sys\")"],
                &["hook(\"mount /data/name inside the root\")"],
                &["pivot_root("],
                &[
                    "mount(none -> \"/\"",
                    &flags(libc::MS_SHARED | libc::MS_REC),
                ],
            ],
        );
        assert_eq!(s.last().unwrap(), "hook(\"umask\")");
    }

    #[test]
    fn devices_ptmx_stays_the_link_others_are_made_and_owned() {
        let rootfs = RootfsKind::Dir("/srv/rootfs".into());
        let devices = [
            DeviceNode::new("/dev/ptmx", DeviceNodeKind::Char, 5, 2),
            DeviceNode::new("/dev/net/tun", DeviceNodeKind::Char, 10, 200).owner(1000, 1000),
            DeviceNode::new("/dev/null", DeviceNodeKind::Char, 1, 3).mode(0o600),
            DeviceNode::new("/dev/stdin", DeviceNodeKind::Fifo, 0, 0),
        ];
        let p = FsPlan {
            devices: &devices,
            ..defaults(&rootfs)
        };
        let s = describe(&p);
        // /dev/ptmx: no node, the link to the container's devpts.
        assert_eq!(count(&s, &["mknod(\"/dev/ptmx\""]), 0);
        pos(&s, &["symlink(\"/dev/ptmx\" -> \"pts/ptmx\")"]);
        // A node asked for replaces the default one and the default link.
        assert_eq!(count(&s, &["mknod(\"/dev/null\""]), 1);
        pos(&s, &["mknod(\"/dev/null\", 0o20600, dev 0x103)"]);
        assert_eq!(count(&s, &["symlink(\"/dev/stdin\""]), 0);
        pos(&s, &["mknod(\"/dev/stdin\", 0o10666"]);
        // Parents made first; the owner set after pivot_root (lchown).
        in_order(
            &s,
            &[
                &["mount(\"tmpfs\" -> \"/dev\""],
                &["mkdir(\"/dev/net\", 0o755)"],
                &["mknod(\"/dev/net/tun\", 0o20666, dev 0xac8)"],
                &["pivot_root("],
                &["hook(\"lchown /dev/net/tun 1000:1000\")"],
            ],
        );
    }

    #[test]
    fn many_layers_go_through_fsconfig() {
        let layers: Vec<PathBuf> = (0..200)
            .map(|i| PathBuf::from(format!("/var/lib/berth/layers/{i:064}")))
            .collect();
        let rootfs = RootfsKind::Layers(layers);
        let s = describe(&defaults(&rootfs));
        // Beyond the page mount(2) takes: lowerdir+ only.
        pos(
            &s,
            &[&format!(
                "hook(\"overlay of 200 layers on {ROOT} by fsconfig(lowerdir+)\")"
            )],
        );
    }

    #[test]
    fn bad_roots_are_refused() {
        let empty = RootfsKind::Layers(Vec::new());
        assert!(plan(&defaults(&empty)).is_err());
        let comma = RootfsKind::Layers(vec!["/l/a,b".into()]);
        let e = plan(&defaults(&comma)).unwrap_err().to_string();
        assert!(e.contains("/l/a,b"), "{e}");
    }

    #[test]
    fn without_a_mount_namespace_only_sysctls_chroot_and_umask() {
        let rootfs = RootfsKind::Dir("/srv/rootfs".into());
        let s: Vec<String> = plan_without_mount_ns(&defaults(&rootfs))
            .unwrap()
            .iter()
            .map(Step::describe)
            .collect();
        assert_eq!(
            s,
            [
                "write_file(\"/proc/sys/net/ipv4/ip_forward\", 1 bytes)",
                "hook(\"chroot /srv/rootfs\")",
                "hook(\"umask\")"
            ]
        );
    }

    /// fs.rs's plans executed against berth-sys's fake kernel (no root,
    /// nothing mounted): the calls the child would make, checked for the
    /// orderings the container's safety rests on.
    mod executed {
        use super::*;
        use berth_sys::fake::child::{install, is_inside, Call, Node, Record, Recorder};
        use berth_sys::mount_api::MountAttr;

        const IMAGE: &str = "/srv/rootfs";
        const CGROUP: &str = "/sys/fs/cgroup/unified/berth/c1";

        /// Run every step of `p`'s plan against a recorder holding the
        /// host paths the plan names, the image and what a new proc and
        /// sysfs show; every step must succeed and leave no fd open.
        fn run(p: &FsPlan<'_>) -> Vec<Record> {
            run_with(p, |rec| rec)
        }

        /// [`run`] with the recorder changed by `tweak` (a scripted errno).
        fn run_with(p: &FsPlan<'_>, tweak: impl FnOnce(Recorder) -> Recorder) -> Vec<Record> {
            let rec = Recorder::new()
                .dir(STATE)
                .dir(CGROUP)
                .file("/dev/null")
                .file("/etc/hostname")
                .dir(&volume())
                .file(&format!("{IMAGE}/etc/hosts"))
                .file(&format!("{IMAGE}/etc/hostname"))
                .file(&format!("{IMAGE}/bin/sh"))
                .fill_on_mount(
                    "proc",
                    &[
                        ("kcore", Node::File),
                        ("acpi", Node::Dir),
                        ("bus", Node::Dir),
                        ("sys/net/ipv4/ip_forward", Node::File),
                    ],
                )
                .fill_on_mount("sysfs", &[("fs/cgroup", Node::Dir)])
                .fill_on_mount(
                    "overlay",
                    &[
                        ("etc/hosts", Node::File),
                        ("etc/hostname", Node::File),
                        ("bin/sh", Node::File),
                    ],
                );
            let rec = tweak(rec).leak();
            let _fake = install(rec);
            for (i, step) in plan(p).unwrap().iter().enumerate() {
                if let Err(e) = step.run_faked() {
                    panic!("step {i} {step:?}: {e:?}\n{:#?}", rec.records());
                }
            }
            assert!(rec.open_fds().is_empty(), "{:#?}", rec.records());
            rec.records()
        }

        /// A host directory for a volume (the plan checks `is_dir` on the host).
        fn volume() -> String {
            std::env::temp_dir().to_string_lossy().into_owned()
        }

        fn in_root(p: &str) -> String {
            format!("{ROOT}{p}")
        }

        /// A typical container's plan input: a directory rootfs, a
        /// read-only volume, a file bind, a tmpfs, masked paths (one
        /// missing) and read-only paths, a device with an owner.
        fn typical<'a>(
            rootfs: &'a RootfsKind,
            mounts: &'a [Mount],
            devices: &'a [DeviceNode],
        ) -> FsPlan<'a> {
            FsPlan {
                mounts,
                devices,
                masked: Box::leak(Box::new(
                    ["/proc/kcore", "/proc/acpi", "/proc/missing"].map(String::from),
                )),
                readonly: Box::leak(Box::new(["/proc/sys", "/proc/bus"].map(String::from))),
                ..defaults(rootfs)
            }
        }

        fn mounts() -> Vec<Mount> {
            vec![
                Mount::bind(volume(), "/data").read_only(),
                Mount::bind("/etc/hostname", "/etc/extra/name"),
                Mount::tmpfs("/run/scratch").size(1 << 20),
            ]
        }

        fn devices() -> Vec<DeviceNode> {
            vec![DeviceNode::new("/dev/net/tun", DeviceNodeKind::Char, 10, 200).owner(1000, 1000)]
        }

        fn pivot(r: &[Record]) -> usize {
            r.iter()
                .position(|r| matches!(r.call, Call::PivotRoot { .. }))
                .expect("pivot_root")
        }

        const PROPAGATION: libc::c_ulong =
            libc::MS_SHARED | libc::MS_SLAVE | libc::MS_PRIVATE | libc::MS_UNBINDABLE;

        /// A mount that shows something at its target (not a remount nor
        /// a propagation change).
        fn shows(c: &Call) -> bool {
            matches!(c, Call::Mount { flags, .. } if flags & (libc::MS_REMOUNT | PROPAGATION) == 0)
        }

        /// A call that makes (or finds made) the file at its path.
        fn creates(r: &Record) -> bool {
            let made = matches!(r.result, Ok(_) | Err(libc::EEXIST));
            made && match &r.call {
                Call::Mkdir { .. }
                | Call::Mkdirat { .. }
                | Call::Mknod { .. }
                | Call::Mknodat { .. } => true,
                Call::Open { flags, .. } | Call::Openat { flags, .. } => flags & libc::O_CREAT != 0,
                _ => false,
            }
        }

        /// A call that changes the file system at its path.
        fn writes(c: &Call) -> bool {
            match c {
                Call::Open { flags, .. } | Call::Openat { flags, .. } => {
                    flags & (libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT) != 0
                }
                Call::Mkdir { .. }
                | Call::Mkdirat { .. }
                | Call::Mknod { .. }
                | Call::Mknodat { .. }
                | Call::Symlink { .. }
                | Call::Symlinkat { .. }
                | Call::Unlinkat { .. }
                | Call::Write { .. }
                | Call::Lchown { .. } => true,
                _ => false,
            }
        }

        /// Every path a call names, as given.
        fn literals(c: &Call) -> Vec<&str> {
            match c {
                Call::Mount { source, target, .. } => source
                    .iter()
                    .map(String::as_str)
                    .chain([target.as_str()])
                    .collect(),
                Call::Umount2 { target: p, .. }
                | Call::Chdir(p)
                | Call::Chroot(p)
                | Call::Mkdir { path: p, .. }
                | Call::Mknod { path: p, .. }
                | Call::Open { path: p, .. }
                | Call::Stat(p)
                | Call::Lchown { path: p, .. }
                | Call::Openat2 { path: p, .. }
                | Call::MountSetattr { path: p, .. }
                | Call::MoveMount { to_path: p, .. } => vec![p],
                Call::Symlink { target, link } => vec![target, link],
                Call::PivotRoot { new_root, put_old } => vec![new_root, put_old],
                _ => vec![],
            }
        }

        /// The invariants every executed plan keeps.
        fn check(r: &[Record], premade: &[String]) {
            let at = |r: &Record| r.at.clone().unwrap_or_default();
            let pivot = pivot(r);
            // Every mount target is made (mkdir, mknod, an empty file)
            // before the mount, unless the image or the kernel has it.
            for (i, m) in r.iter().enumerate().filter(|(_, m)| shows(&m.call)) {
                let target = at(m);
                let made = r.iter().position(|c| creates(c) && at(c) == target);
                match made {
                    Some(j) => assert!(j < i, "{target} made after its mount:\n{r:#?}"),
                    None => assert!(
                        premade.contains(&target),
                        "mount on {target}, never made:\n{r:#?}"
                    ),
                }
            }
            // Before pivot_root, mounts land in the state directory only
            // (after the propagation of `/`); after it, only `/` itself is
            // changed (remount, propagation).
            for (i, c) in r.iter().enumerate() {
                let mounts = matches!(
                    c.call,
                    Call::Mount { .. } | Call::MoveMount { .. } | Call::MountSetattr { .. }
                );
                if !mounts || (i == 0 && at(c) == "/") {
                    continue;
                }
                if i < pivot {
                    assert!(
                        is_inside(&at(c), STATE),
                        "mount #{i} outside the state dir:\n{r:#?}"
                    );
                } else {
                    assert!(
                        matches!(&c.call, Call::Mount { source: None, target, fstype: None, flags, .. }
                            if target == "/" && flags & (libc::MS_REMOUNT | PROPAGATION) != 0),
                        "mount #{i} after pivot_root:\n{r:#?}"
                    );
                }
            }
            // /proc is mounted before anything under it is touched (masks,
            // read-only paths, sysctls).
            let proc = in_root("/proc");
            let proc_mount = r
                .iter()
                .position(|c| matches!(&c.call, Call::Mount { fstype: Some(t), .. } if t == "proc"))
                .expect("proc mount");
            assert_eq!(at(&r[proc_mount]), proc);
            for (i, c) in r.iter().enumerate() {
                if at(c) != proc && is_inside(&at(c), &proc) {
                    assert!(i > proc_mount, "#{i} under /proc before its mount:\n{r:#?}");
                }
            }
            // A read-only attribute comes after the bind it covers, and
            // nothing writes below it afterwards.
            for (k, c) in r.iter().enumerate() {
                let Call::MountSetattr { set, .. } = &c.call else {
                    continue;
                };
                assert!(set.contains(MountAttr::RDONLY), "{c:?}");
                let p = at(c);
                let bound = r[..k].iter().rposition(|b| {
                    at(b) == p
                        && matches!(b.call, Call::Mount { flags, .. } if flags & libc::MS_BIND != 0)
                });
                assert!(
                    bound.is_some(),
                    "read-only {p} without a bind before:\n{r:#?}"
                );
                for w in &r[k..] {
                    assert!(
                        !(writes(&w.call) && is_inside(&at(w), &p)),
                        "{w:?} below read-only {p}:\n{r:#?}"
                    );
                }
            }
            // After pivot_root nothing reaches a host path: every path is
            // resolved in the new root, none is given as a host path.
            for c in &r[pivot + 1..] {
                if let Some(p) = &c.at {
                    assert!(is_inside(p, ROOT), "{c:?} after pivot_root:\n{r:#?}");
                }
                for l in literals(&c.call) {
                    for host in [STATE, IMAGE, "/proc/self/fd/", &volume()] {
                        assert!(
                            !is_inside(l, host) && !l.starts_with("/proc/self/fd/"),
                            "{c:?}"
                        );
                    }
                }
            }
        }

        /// Mount targets neither berth nor the plan makes: the state
        /// directory (the parent's), the image's files and the kernel's.
        fn premade(extra: &[&str]) -> Vec<String> {
            let mut v = vec![STATE.to_string()];
            v.extend(
                [
                    "/etc/hosts",
                    "/etc/hostname",
                    "/proc/kcore",
                    "/proc/acpi",
                    "/proc/sys",
                    "/proc/bus",
                ]
                .iter()
                .chain(extra)
                .map(|p| in_root(p)),
            );
            v
        }

        #[test]
        fn a_typical_plan_keeps_the_mount_orderings() {
            let rootfs = RootfsKind::Dir(IMAGE.into());
            let (mounts, devices) = (mounts(), devices());
            let r = run(&typical(&rootfs, &mounts, &devices));
            check(&r, &premade(&["/sys/fs/cgroup"]));
            // The volume: made, bound, read-only; the missing mask skipped.
            let data = in_root("/data");
            let on = |p: &str| {
                r.iter()
                    .filter(|c| c.at.as_deref() == Some(p))
                    .map(|c| &c.call)
                    .collect::<Vec<_>>()
            };
            assert!(
                on(&data)
                    .iter()
                    .any(|c| matches!(c, Call::MountSetattr { .. })),
                "{r:#?}"
            );
            assert!(!on(&in_root("/proc/missing"))
                .iter()
                .any(|c| matches!(c, Call::Mount { .. })));
            // The device's owner is set after pivot_root, on the container's path.
            let chown = r
                .iter()
                .position(|c| matches!(&c.call, Call::Lchown { path, uid: 1000, gid: 1000 } if path == "/dev/net/tun"))
                .expect("lchown");
            assert!(chown > pivot(&r));
            assert_eq!(r[chown].at.as_deref(), Some(&*in_root("/dev/net/tun")));
            assert_eq!(r.last().unwrap().call, Call::Umask(0o022));
        }

        #[test]
        fn a_plan_sharing_the_hosts_network_binds_sys_and_its_cgroup_read_only() {
            let rootfs = RootfsKind::Dir(IMAGE.into());
            let (mounts, devices) = (mounts(), devices());
            let p = FsPlan {
                own_netns: false,
                cgroupns: false,
                ..typical(&rootfs, &mounts, &devices)
            };
            let r = run(&p);
            check(&r, &premade(&["/sys/fs/cgroup"]));
            let ro: Vec<String> = r
                .iter()
                .filter(|c| matches!(c.call, Call::MountSetattr { .. }))
                .map(|c| c.at.clone().unwrap())
                .collect();
            for p in ["/sys", "/sys/fs/cgroup", "/proc/sys", "/proc/bus", "/data"] {
                assert!(ro.contains(&in_root(p)), "{p} not read-only: {ro:?}");
            }
        }

        /// The overlay mounted on the root (`move_mount` of an `fsmount`,
        /// or `mount(2)`): its position. Its writable layer was made on
        /// the state tmpfs before it, and nothing in the root is touched
        /// before it covers the root (that would land in the state tmpfs
        /// below it).
        fn check_overlay(r: &[Record]) -> usize {
            let at = |r: &Record| r.at.clone().unwrap_or_default();
            let ov = r
                .iter()
                .position(|c| {
                    at(c) == ROOT
                        && match &c.call {
                            Call::MoveMount { .. } => true,
                            Call::Mount { fstype, .. } => fstype.as_deref() == Some("overlay"),
                            _ => false,
                        }
                })
                .unwrap_or_else(|| panic!("no overlay on the root:\n{r:#?}"));
            for d in ["upper", "work"] {
                let path = format!("{STATE}/rw/{d}");
                let made = r
                    .iter()
                    .position(|c| matches!(&c.call, Call::Mkdir { path: p, .. } if *p == path));
                assert!(
                    made.is_some_and(|m| m < ov),
                    "{path} made after the overlay:\n{r:#?}"
                );
            }
            for (i, c) in r.iter().enumerate() {
                if at(c) != ROOT && is_inside(&at(c), ROOT) {
                    assert!(i > ov, "#{i} in the root before the overlay:\n{r:#?}");
                }
            }
            ov
        }

        /// The `lowerdir+` values the overlay was configured with.
        fn lowers(r: &[Record]) -> Vec<String> {
            r.iter()
                .filter_map(|c| match &c.call {
                    Call::Fsconfig {
                        key: Some(k),
                        value: Some(v),
                        ..
                    } if k == "lowerdir+" => Some(v.clone()),
                    _ => None,
                })
                .collect()
        }

        #[test]
        fn a_read_only_root_is_an_overlay_of_the_directory_remounted_read_only() {
            let rootfs = RootfsKind::Dir(IMAGE.into());
            let (mounts, devices) = (mounts(), devices());
            let p = FsPlan {
                read_only_root: true,
                ..typical(&rootfs, &mounts, &devices)
            };
            let r = run(&p);
            check(&r, &premade(&["/sys/fs/cgroup"]));
            let ov = check_overlay(&r);
            assert_eq!(lowers(&r), [IMAGE]);
            // The user's directory is never written nor bound: the /etc
            // files go into the writable layer.
            for c in &r {
                let host = c.at.as_deref().is_some_and(|p| is_inside(p, IMAGE));
                assert!(!(host && writes(&c.call)), "{c:?} writes the image");
            }
            let hostname = r
                .iter()
                .position(|c| {
                    matches!(c.call, Call::Write { .. })
                        && c.at.as_deref() == Some(&*in_root("/etc/hostname"))
                })
                .expect("/etc/hostname written");
            assert!(hostname > ov);
            // `/` is made read-only after pivot_root (per-mount: /dev,
            // /proc, the tmpfs keep theirs); after it only the device
            // owners on /dev are written.
            let ro = r
                .iter()
                .position(|c| matches!(&c.call, Call::Mount { target, flags, .. }
                    if target == "/" && *flags == libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY))
                .expect("read-only remount of /");
            assert!(ro > pivot(&r));
            for w in r[ro..].iter().filter(|w| writes(&w.call)) {
                let at = w.at.as_deref().unwrap_or_default();
                assert!(
                    is_inside(at, &in_root("/dev")),
                    "{w:?} after / is read-only"
                );
            }
        }

        #[test]
        fn an_image_root_is_an_overlay_of_its_layers_whose_upper_goes_to_the_parent() {
            let (top, base) = ("/srv/img/top", "/srv/img/base");
            let rootfs = RootfsKind::Layers(vec![top.into(), base.into()]);
            let (mounts, devices) = (mounts(), devices());
            let p = FsPlan {
                send_upper: true,
                ..typical(&rootfs, &mounts, &devices)
            };
            let r = run(&p);
            check(&r, &premade(&["/sys/fs/cgroup"]));
            let ov = check_overlay(&r);
            assert_eq!(lowers(&r), [top, base], "top layer first");
            // The writable layer is sent right after the overlay is up,
            // from the state tmpfs (gone from view after pivot_root), and
            // the socket is closed.
            let upper = format!("{STATE}/rw/upper");
            let sent = r
                .iter()
                .position(|c| {
                    matches!(
                        c.call,
                        Call::SendFd {
                            sock: crate::commit::UPPER_SOCKET_FD,
                            ..
                        }
                    )
                })
                .expect("the upper layer sent");
            assert_eq!(r[sent].at.as_deref(), Some(&*upper));
            assert!(ov < sent && sent < pivot(&r));
            let closed = Call::Close(crate::commit::UPPER_SOCKET_FD);
            assert_eq!(r[sent + 2].call, closed, "{r:#?}");
            assert!(r.iter().all(|c| !matches!(c.call, Call::Mount { flags, .. } if flags & libc::MS_RDONLY != 0 && flags & libc::MS_REMOUNT != 0)));
        }

        #[test]
        fn without_lowerdir_plus_the_overlay_root_is_mounted_with_mount_2() {
            // A kernel before 6.5: the create step is EINVAL.
            let rootfs = RootfsKind::Layers(vec!["/srv/img/top".into(), IMAGE.into()]);
            let (mounts, devices) = (mounts(), devices());
            let p = FsPlan {
                read_only_root: true,
                ..typical(&rootfs, &mounts, &devices)
            };
            let r = run_with(&p, |rec| {
                rec.fail_when(libc::EINVAL, |c| {
                    matches!(c, Call::Fsconfig { cmd, .. } if *cmd == libc::FSCONFIG_CMD_CREATE)
                })
            });
            check(&r, &premade(&["/sys/fs/cgroup"]));
            let ov = check_overlay(&r);
            let Call::Mount {
                data: Some(data), ..
            } = &r[ov].call
            else {
                panic!("not mount(2): {:?}", r[ov]);
            };
            assert!(
                data.starts_with(&format!(
                    "lowerdir=/srv/img/top:{IMAGE},upperdir={STATE}/rw/upper,"
                )),
                "{data}"
            );
        }
    }
}
