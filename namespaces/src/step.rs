//! Steps of the child plan: plain data built in the parent, executed in the
//! child after `clone3` with raw syscalls only.

use std::borrow::Cow;
use std::ffi::{CStr, CString, OsStr};
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use berth_sys::child;
use berth_sys::mount_api::MountAttr;
use berth_sys::openat2::ResolveFlags;

/// An async-signal-safe callback run in the child (see [`Step::hook`]).
pub type HookFn = Box<dyn Fn() -> Result<(), i32> + Send + Sync + 'static>;

/// How a child-side hook failed: the part of it that failed and the errno
/// (see [`Step::hook_detailed`]). Plain data, so the child reports it
/// without allocating; the parent's [`Error::Child`](crate::Error::Child)
/// names the part after the hook, e.g. `hook("apply security policy"):
/// capset: EPERM`.
///
/// ```
/// use berth_namespaces::StepFailure;
/// let f = StepFailure { step: "capset", errno: libc::EPERM };
/// let plain: StepFailure = libc::EINVAL.into(); // no part named
/// assert_eq!(plain.step, "");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepFailure {
    /// The part of the hook that failed (`""`: the hook as a whole).
    pub step: &'static str,
    /// The errno it failed with.
    pub errno: i32,
}

impl From<i32> for StepFailure {
    fn from(errno: i32) -> Self {
        StepFailure { step: "", errno }
    }
}

/// A hook as stored: every hook reports a [`StepFailure`].
type DetailedHookFn = Box<dyn Fn() -> Result<(), StepFailure> + Send + Sync + 'static>;

/// One step of the child plan.
///
/// Steps run in the child in the order they were added to the
/// [`Spawner`](crate::Spawner), after the fixed prologue (id-map sync, joins,
/// time offsets, hostname, stdio) and before the epilogue (cwd, init, exec).
/// A failing step stops the child; [`Spawner::spawn`](crate::Spawner::spawn)
/// returns [`Error::Child`](crate::Error::Child) naming the step, its path
/// and the errno.
///
/// ```
/// use berth_namespaces::Step;
/// let plan = [Step::mkdir("/tmp/box", 0o755), Step::pivot_root("/tmp/box"), Step::chdir("/")];
/// for s in &plan {
///     println!("{}", s.describe()); // steps run in the child between clone and execve
/// }
/// ```
pub struct Step {
    pub(crate) kind: StepKind,
    /// Set when a path or string given to the constructor held a NUL byte.
    pub(crate) invalid: Option<String>,
}

pub(crate) enum StepKind {
    Mount {
        source: Option<CString>,
        target: CString,
        fstype: Option<CString>,
        flags: libc::c_ulong,
        data: Option<CString>,
    },
    Bind {
        source: CString,
        target: CString,
        recursive: bool,
        readonly: bool,
    },
    Propagation {
        target: CString,
        flags: libc::c_ulong,
    },
    MoveMount {
        fd: OwnedFd,
        target: CString,
    },
    Mkdir {
        path: CString,
        mode: libc::mode_t,
    },
    Mknod {
        path: CString,
        mode: libc::mode_t,
        dev: libc::dev_t,
    },
    Symlink {
        target: CString,
        link: CString,
    },
    WriteFile {
        path: CString,
        data: Vec<u8>,
    },
    Mask {
        path: CString,
    },
    ReadOnly {
        path: CString,
    },
    PivotRoot {
        new_root: CString,
    },
    Chdir {
        path: CString,
    },
    Sethostname(CString),
    Setdomainname(CString),
    Setrlimit {
        resource: libc::c_int,
        soft: u64,
        hard: u64,
    },
    Prctl {
        option: libc::c_int,
        args: [libc::c_ulong; 4],
    },
    SetGroups(Vec<libc::gid_t>),
    SetGid(libc::gid_t),
    SetUid(libc::uid_t),
    Hook {
        name: Cow<'static, str>,
        f: DetailedHookFn,
    },
    /// `op` with its path resolved inside a root (see [`Step::in_root`]).
    InRoot {
        at: Box<InRoot>,
        op: Box<StepKind>,
    },
}

/// Where an in-root step resolves its path (see [`Step::in_root`]).
pub(crate) struct InRoot {
    /// The new root, before `pivot_root` (a host path berth owns).
    root: CString,
    /// The step's path relative to the root (`etc/hosts`).
    path: CString,
    /// Its parent relative to the root (`etc`, or `.`).
    parent: CString,
    /// Its last component (`hosts`).
    name: CString,
    /// Follow a symlink in the last component (inside the root).
    follow: bool,
    /// A missing path is not an error: the step does nothing.
    skip_missing: bool,
}

struct Conv {
    err: Option<String>,
}

impl Conv {
    fn new() -> Self {
        Conv { err: None }
    }
    fn c(&mut self, what: &str, s: &OsStr) -> CString {
        match CString::new(s.as_bytes()) {
            Ok(c) => c,
            Err(_) => {
                self.err
                    .get_or_insert_with(|| format!("{what} {s:?} contains a NUL byte"));
                CString::default()
            }
        }
    }
    fn p(&mut self, what: &str, p: impl AsRef<Path>) -> CString {
        self.c(what, p.as_ref().as_os_str())
    }
    fn done(self, kind: StepKind) -> Step {
        Step {
            kind,
            invalid: self.err,
        }
    }
}

impl Step {
    /// `mount(2)` with everything spelled out: `source` (`None` = no device),
    /// `target`, filesystem type, `MS_*` flags and the data string.
    ///
    /// ```
    /// use berth_namespaces::Step;
    /// let proc_mount = Step::mount(Some("proc"), "/rootfs/proc", Some("proc"),
    ///     libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC, None);
    /// ```
    pub fn mount(
        source: Option<impl AsRef<Path>>,
        target: impl AsRef<Path>,
        fstype: Option<&str>,
        flags: libc::c_ulong,
        data: Option<&str>,
    ) -> Step {
        let mut c = Conv::new();
        let kind = StepKind::Mount {
            source: source.map(|s| c.p("mount source", s)),
            target: c.p("mount target", target),
            fstype: fstype.map(|f| c.c("fstype", OsStr::new(f))),
            flags,
            data: data.map(|d| c.c("mount data", OsStr::new(d))),
        };
        c.done(kind)
    }

    /// Bind-mount `source` on `target` (`MS_BIND`, plus `MS_REC` when
    /// `recursive`), then make it read-only with `mount_setattr(2)`
    /// (`MOUNT_ATTR_RDONLY`, recursively when `recursive`; Linux 5.12) when
    /// `readonly`.
    ///
    /// ```
    /// use berth_namespaces::Step;
    /// let rootfs = Step::bind("/var/lib/c1/rootfs", "/var/lib/c1/rootfs", true, false);
    /// ```
    pub fn bind(
        source: impl AsRef<Path>,
        target: impl AsRef<Path>,
        recursive: bool,
        readonly: bool,
    ) -> Step {
        let mut c = Conv::new();
        let kind = StepKind::Bind {
            source: c.p("bind source", source),
            target: c.p("bind target", target),
            recursive,
            readonly,
        };
        c.done(kind)
    }

    /// Change the propagation of the mount at `target` to private
    /// (`MS_PRIVATE`), recursively when `recursive` (`MS_REC`). Done on `/`
    /// before anything else so mounts made in the child never reach the host.
    ///
    /// ```
    /// use berth_namespaces::Step;
    /// let step = Step::make_private("/", true);
    /// ```
    #[doc(alias("MS_PRIVATE"))]
    pub fn make_private(target: impl AsRef<Path>, recursive: bool) -> Step {
        Self::propagation(target, libc::MS_PRIVATE, recursive)
    }

    /// Like [`make_private`](Self::make_private) but `MS_SLAVE`: host mount
    /// events still arrive, nothing goes back.
    ///
    /// ```
    /// use berth_namespaces::Step;
    /// let step = Step::make_slave("/", true);
    /// ```
    #[doc(alias("MS_SLAVE"))]
    pub fn make_slave(target: impl AsRef<Path>, recursive: bool) -> Step {
        Self::propagation(target, libc::MS_SLAVE, recursive)
    }

    fn propagation(target: impl AsRef<Path>, flag: libc::c_ulong, recursive: bool) -> Step {
        let mut c = Conv::new();
        let kind = StepKind::Propagation {
            target: c.p("propagation target", target),
            flags: flag | if recursive { libc::MS_REC } else { 0 },
        };
        c.done(kind)
    }

    /// Attach a detached mount (an fd from `fsmount(2)` or
    /// `open_tree(2)` with `OPEN_TREE_CLONE`, prepared in the parent, e.g. by
    /// [`detached_bind`](crate::detached_bind)) at `target` with
    /// `move_mount(2)` (Linux 5.2). The fd is owned by the step.
    ///
    /// ```no_run
    /// use berth_namespaces::{detached_bind, Step};
    /// let tree = detached_bind("/srv/data", true)?;
    /// let step = Step::move_mount(tree, "/rootfs/data");
    /// # Ok::<(), berth_namespaces::Error>(())
    /// ```
    pub fn move_mount(fd: OwnedFd, target: impl AsRef<Path>) -> Step {
        let mut c = Conv::new();
        let kind = StepKind::MoveMount {
            fd,
            target: c.p("move_mount target", target),
        };
        c.done(kind)
    }

    /// `mkdir(2)` with `mode`; an existing directory is not an error.
    ///
    /// ```
    /// use berth_namespaces::Step;
    /// let step = Step::mkdir("/rootfs/dev/pts", 0o755);
    /// ```
    pub fn mkdir(path: impl AsRef<Path>, mode: u32) -> Step {
        let mut c = Conv::new();
        let kind = StepKind::Mkdir {
            path: c.p("mkdir path", path),
            mode,
        };
        c.done(kind)
    }

    /// `mknod(2)`: `mode` includes the file type (`libc::S_IFCHR | 0o666`),
    /// `dev` is `libc::makedev(major, minor)`.
    ///
    /// ```
    /// use berth_namespaces::Step;
    /// let null = Step::mknod("/rootfs/dev/null", libc::S_IFCHR | 0o666, libc::makedev(1, 3));
    /// ```
    pub fn mknod(path: impl AsRef<Path>, mode: u32, dev: u64) -> Step {
        let mut c = Conv::new();
        let kind = StepKind::Mknod {
            path: c.p("mknod path", path),
            mode,
            dev,
        };
        c.done(kind)
    }

    /// `symlink(2)`: create `link` pointing at `target`.
    ///
    /// ```
    /// use berth_namespaces::Step;
    /// let step = Step::symlink("/proc/self/fd", "/rootfs/dev/fd");
    /// ```
    pub fn symlink(target: impl AsRef<Path>, link: impl AsRef<Path>) -> Step {
        let mut c = Conv::new();
        let kind = StepKind::Symlink {
            target: c.p("symlink target", target),
            link: c.p("symlink path", link),
        };
        c.done(kind)
    }

    /// Open `path` (`O_WRONLY|O_CREAT|O_TRUNC`, mode 0644) and write `data`
    /// in full, e.g. `/proc/self/oom_score_adj` or `/proc/self/attr/exec`.
    ///
    /// ```
    /// use berth_namespaces::Step;
    /// let step = Step::write_file("/proc/self/oom_score_adj", "500");
    /// ```
    pub fn write_file(path: impl AsRef<Path>, data: impl Into<Vec<u8>>) -> Step {
        let mut c = Conv::new();
        let kind = StepKind::WriteFile {
            path: c.p("write_file path", path),
            data: data.into(),
        };
        c.done(kind)
    }

    /// Hide `path`: a directory gets an empty read-only tmpfs on top, anything
    /// else a bind mount of `/dev/null`. A path that does not exist is
    /// skipped (there is nothing to hide).
    ///
    /// ```
    /// use berth_namespaces::Step;
    /// let step = Step::mask("/proc/kcore");
    /// ```
    #[doc(alias("maskedPaths"))]
    pub fn mask(path: impl AsRef<Path>) -> Step {
        let mut c = Conv::new();
        let kind = StepKind::Mask {
            path: c.p("mask path", path),
        };
        c.done(kind)
    }

    /// Make `path` read-only: bind it on itself (recursively) and set
    /// `MOUNT_ATTR_RDONLY` on the whole tree with `mount_setattr(2)`
    /// (Linux 5.12). A path that does not exist is skipped.
    ///
    /// ```
    /// use berth_namespaces::Step;
    /// let step = Step::read_only("/proc/sys");
    /// ```
    #[doc(alias("MS_RDONLY", "mount_setattr"))]
    pub fn read_only(path: impl AsRef<Path>) -> Step {
        let mut c = Conv::new();
        let kind = StepKind::ReadOnly {
            path: c.p("read_only path", path),
        };
        c.done(kind)
    }

    /// Make `new_root` the root with `pivot_root(2)` (never `chroot`): `chdir`
    /// into it, `pivot_root(".", ".")`, detach the old root
    /// (`umount2(".", MNT_DETACH)`), `chdir("/")`. `new_root` must be a mount
    /// point (bind it on itself first) and `/` must not be shared (use
    /// [`make_private`](Self::make_private) first), or the kernel says `EINVAL`.
    ///
    /// ```
    /// use berth_namespaces::Step;
    /// let step = Step::pivot_root("/var/lib/c1/rootfs");
    /// ```
    #[doc(alias("chroot"))]
    pub fn pivot_root(new_root: impl AsRef<Path>) -> Step {
        let mut c = Conv::new();
        let kind = StepKind::PivotRoot {
            new_root: c.p("pivot_root new root", new_root),
        };
        c.done(kind)
    }

    /// `chdir(2)`.
    ///
    /// ```
    /// use berth_namespaces::Step;
    /// let step = Step::chdir("/");
    /// ```
    pub fn chdir(path: impl AsRef<Path>) -> Step {
        let mut c = Conv::new();
        let kind = StepKind::Chdir {
            path: c.p("chdir path", path),
        };
        c.done(kind)
    }

    /// `sethostname(2)` (at most 64 bytes; needs a new UTS namespace, which
    /// [`Spawner::spawn`](crate::Spawner::spawn) checks).
    ///
    /// ```
    /// use berth_namespaces::Step;
    /// let step = Step::sethostname("c1");
    /// ```
    pub fn sethostname(name: &str) -> Step {
        let mut c = Conv::new();
        let kind = StepKind::Sethostname(c.c("hostname", OsStr::new(name)));
        c.done(kind)
    }

    /// `setdomainname(2)` (at most 64 bytes; needs a new UTS namespace).
    ///
    /// ```
    /// use berth_namespaces::Step;
    /// let step = Step::setdomainname("example");
    /// ```
    pub fn setdomainname(name: &str) -> Step {
        let mut c = Conv::new();
        let kind = StepKind::Setdomainname(c.c("domainname", OsStr::new(name)));
        c.done(kind)
    }

    /// `setrlimit(2)` for `resource` (`libc::RLIMIT_NOFILE`, …).
    ///
    /// ```
    /// use berth_namespaces::Step;
    /// let step = Step::setrlimit(libc::RLIMIT_NOFILE as i32, 1024, 1024);
    /// ```
    pub fn setrlimit(resource: i32, soft: u64, hard: u64) -> Step {
        Step {
            kind: StepKind::Setrlimit {
                resource,
                soft,
                hard,
            },
            invalid: None,
        }
    }

    /// `prctl(2)` with `option` and up to four integer arguments.
    ///
    /// ```
    /// use berth_namespaces::Step;
    /// let nnp = Step::prctl(libc::PR_SET_NO_NEW_PRIVS, [1, 0, 0, 0]);
    /// ```
    pub fn prctl(option: i32, args: [u64; 4]) -> Step {
        Step {
            kind: StepKind::Prctl {
                option,
                args: args.map(|a| a as libc::c_ulong),
            },
            invalid: None,
        }
    }

    /// Set the supplementary groups (`setgroups(2)`, raw syscall: glibc's
    /// wrapper would try to signal the parent's threads).
    ///
    /// ```
    /// use berth_namespaces::Step;
    /// let step = Step::set_groups(&[]);
    /// ```
    #[doc(alias("setgroups"))]
    pub fn set_groups(groups: &[u32]) -> Step {
        Step {
            kind: StepKind::SetGroups(groups.to_vec()),
            invalid: None,
        }
    }

    /// `setresgid(gid, gid, gid)` (raw syscall). Inside a new user namespace
    /// the gid must be mapped, which `spawn` checks.
    ///
    /// ```
    /// use berth_namespaces::Step;
    /// let step = Step::set_gid(0);
    /// ```
    #[doc(alias("setresgid"))]
    pub fn set_gid(gid: u32) -> Step {
        Step {
            kind: StepKind::SetGid(gid),
            invalid: None,
        }
    }

    /// `setresuid(uid, uid, uid)` (raw syscall). Inside a new user namespace
    /// the uid must be mapped, which `spawn` checks.
    ///
    /// ```
    /// use berth_namespaces::Step;
    /// let step = Step::set_uid(1000);
    /// ```
    #[doc(alias("setresuid"))]
    pub fn set_uid(uid: u32) -> Step {
        Step {
            kind: StepKind::SetUid(uid),
            invalid: None,
        }
    }

    /// An escape hatch: run `f` in the child at this point of the plan, like
    /// [`CommandExt::pre_exec`](std::os::unix::process::CommandExt::pre_exec).
    /// `f` returns `Err(errno)` to fail the spawn; the error names the hook.
    /// Other crates use it to apply prepared data (capabilities, seccomp,
    /// landlock) without this crate depending on them.
    ///
    /// # Safety
    /// `f` runs in a child forked from a possibly multi-threaded parent: it
    /// must be async-signal-safe — no allocation, no locks, no panics, only
    /// raw syscalls on data prepared before `spawn`.
    ///
    /// ```
    /// use berth_namespaces::Step;
    /// // SAFETY: prctl is a raw syscall, nothing is allocated.
    /// let step = unsafe {
    ///     Step::hook("no_new_privs", || {
    ///         if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 {
    ///             Ok(())
    ///         } else {
    ///             Err(*libc::__errno_location())
    ///         }
    ///     })
    /// };
    /// ```
    pub unsafe fn hook<F>(name: impl Into<Cow<'static, str>>, f: F) -> Step
    where
        F: Fn() -> Result<(), i32> + Send + Sync + 'static,
    {
        // SAFETY: the caller's contract, passed on.
        unsafe { Self::hook_detailed(name, move || f().map_err(StepFailure::from)) }
    }

    /// Like [`hook`](Self::hook), for a hook made of several parts that
    /// says which one failed: the error names the hook, then that part
    /// (`hook("apply security policy"): capset: EPERM (…)`), e.g.
    /// berth-security's `ChildFailure { step, errno }`.
    ///
    /// # Safety
    /// As for [`hook`](Self::hook): `f` must be async-signal-safe.
    ///
    /// ```
    /// use berth_namespaces::{Step, StepFailure};
    /// // SAFETY: prctl is a raw syscall, nothing is allocated.
    /// let step = unsafe {
    ///     Step::hook_detailed("lock down", || {
    ///         if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
    ///             let errno = *libc::__errno_location();
    ///             return Err(StepFailure { step: "no_new_privs", errno });
    ///         }
    ///         Ok(())
    ///     })
    /// };
    /// ```
    pub unsafe fn hook_detailed<F>(name: impl Into<Cow<'static, str>>, f: F) -> Step
    where
        F: Fn() -> Result<(), StepFailure> + Send + Sync + 'static,
    {
        Step {
            kind: StepKind::Hook {
                name: name.into(),
                f: Box::new(f),
            },
            invalid: None,
        }
    }

    /// Resolve this step's path inside `root`, a new root filesystem before
    /// `pivot_root` (the host's `/` still visible): the path is read as a
    /// path of the container (`/etc/hosts`, leading `/` optional) and every
    /// symlink and `..` on the way is resolved as if `root` were `/`
    /// (`openat2(2)` with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`, Linux
    /// 5.6), so a hostile rootfs (`etc -> /host/dir`,
    /// `etc/hosts -> ../../../victim`, `proc -> /`) can never make the step
    /// touch the host. For [`mkdir`](Self::mkdir), [`mknod`](Self::mknod)
    /// and [`symlink`](Self::symlink) the parent is resolved that way and
    /// the last component made with `mkdirat`/`mknodat`/`symlinkat` on the
    /// parent's fd; an existing symlink there is refused (`ELOOP`, for
    /// `mkdir`) or `EEXIST`. [`mount`](Self::mount), [`bind`](Self::bind),
    /// [`mask`](Self::mask) and [`read_only`](Self::read_only) mount onto
    /// `/proc/self/fd/<n>` of the resolved `O_PATH` fd (the host's procfs),
    /// [`move_mount`](Self::move_mount) moves onto that fd;
    /// [`write_file`](Self::write_file) writes only a regular file,
    /// reopened through that fd (never a device or FIFO), and creates a
    /// missing one with `O_EXCL` in its in-root parent. A symlink as the
    /// last component is refused with `ELOOP` unless
    /// [`follow_symlink`](Self::follow_symlink). Other step kinds, and a
    /// path with `..` or naming the root itself, make the step invalid
    /// (`spawn` refuses it).
    ///
    /// ```
    /// use berth_namespaces::Step;
    /// let proc_mount = Step::mount(Some("proc"), "/proc", Some("proc"), 0, None)
    ///     .in_root("/run/c1/rootfs");
    /// ```
    pub fn in_root(mut self, root: impl AsRef<Path>) -> Step {
        use std::path::Component;
        let primary = match &self.kind {
            StepKind::Mount { target, .. }
            | StepKind::Bind { target, .. }
            | StepKind::MoveMount { target, .. } => target,
            StepKind::Mkdir { path, .. }
            | StepKind::Mknod { path, .. }
            | StepKind::WriteFile { path, .. }
            | StepKind::Mask { path }
            | StepKind::ReadOnly { path } => path,
            StepKind::Symlink { link, .. } => link,
            _ => {
                let why = format!("{} cannot be resolved inside a root", self.describe());
                self.invalid.get_or_insert(why);
                return self;
            }
        };
        let p = Path::new(OsStr::from_bytes(primary.to_bytes()));
        let mut rel = std::path::PathBuf::new();
        for comp in p.components() {
            match comp {
                Component::Normal(n) => rel.push(n),
                Component::RootDir | Component::CurDir => {}
                Component::ParentDir | Component::Prefix(_) => {
                    let why = format!("in-root path {p:?} contains \"..\"");
                    self.invalid.get_or_insert(why);
                    return self;
                }
            }
        }
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            let why = format!("in-root path {p:?} is the root itself");
            self.invalid.get_or_insert(why);
            return self;
        };
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        let mut c = Conv::new();
        let at = InRoot {
            root: c.p("root", root),
            path: c.p("in-root path", &rel),
            parent: c.p("in-root parent", parent),
            name: c.c("in-root name", name),
            follow: false,
            skip_missing: false,
        };
        if let Some(e) = c.err {
            self.invalid.get_or_insert(e);
        }
        let op = std::mem::replace(&mut self.kind, StepKind::SetGroups(Vec::new()));
        self.kind = StepKind::InRoot {
            at: Box::new(at),
            op: Box::new(op),
        };
        self
    }

    /// For an [`in_root`](Self::in_root) step: a symlink as the last
    /// component is followed (inside the root, like every other component)
    /// instead of refused. For files a container reads through links of its
    /// own (`/etc/hosts -> /run/hosts`), and for masks, which runc applies
    /// after `pivot_root` where the kernel follows them too. A
    /// [`write_file`](Self::write_file) whose link dangles inside the root
    /// replaces the link with the file (the writable rootfs is the
    /// container's copy).
    ///
    /// ```
    /// use berth_namespaces::Step;
    /// let hosts = Step::write_file("/etc/hosts", "127.0.0.1 localhost\n")
    ///     .in_root("/run/c1/rootfs")
    ///     .follow_symlink();
    /// ```
    pub fn follow_symlink(self) -> Step {
        self.with_in_root("follow_symlink", |at| at.follow = true)
    }

    /// For an [`in_root`](Self::in_root) step: a path (or parent) that
    /// does not exist in the root is skipped instead of an error (`ENOENT`),
    /// e.g. binding a file over one the image may not have.
    ///
    /// ```
    /// use berth_namespaces::Step;
    /// let step = Step::bind("/run/c1/hosts", "/etc/hosts", false, true)
    ///     .in_root("/run/c1/rootfs")
    ///     .follow_symlink()
    ///     .skip_missing();
    /// ```
    pub fn skip_missing(self) -> Step {
        self.with_in_root("skip_missing", |at| at.skip_missing = true)
    }

    /// Change the [`in_root`](Self::in_root) settings; on another step
    /// kind, make the step invalid.
    fn with_in_root(mut self, what: &str, f: impl FnOnce(&mut InRoot)) -> Step {
        match &mut self.kind {
            StepKind::InRoot { at, .. } => f(at),
            _ => {
                self.invalid
                    .get_or_insert_with(|| format!("{what}() needs in_root() first"));
            }
        }
        self
    }

    /// A human description naming the operation and its objects, used in errors.
    pub fn describe(&self) -> String {
        describe_kind(&self.kind)
    }

    /// Run the step now, in the calling thread, against the fake kernel
    /// installed on it (`berth_sys::fake::child::install`): what the child
    /// would do after `clone`, recorded instead of done. Without an
    /// installed fake nothing runs: `ENOSYS` (`step` names why). A
    /// [`hook`](Self::hook) runs as it is: only the `berth_sys::child`
    /// calls it makes reach the fake.
    ///
    /// ```
    /// use berth_namespaces::Step;
    /// use berth_sys::fake::child::{install, Call, Recorder};
    /// let rec = Recorder::new().leak();
    /// let _fake = install(rec);
    /// Step::sethostname("c1").run_faked().unwrap();
    /// assert_eq!(rec.calls(), [Call::Sethostname("c1".into())]);
    /// ```
    #[cfg(feature = "fake")]
    pub fn run_faked(&self) -> Result<(), StepFailure> {
        if !berth_sys::fake::child::is_installed() {
            return Err(StepFailure {
                step: "no fake kernel installed on this thread",
                errno: libc::ENOSYS,
            });
        }
        self.run()
    }

    /// Run the step. Called in the child only: raw syscalls, no allocation.
    pub(crate) fn run(&self) -> Result<(), StepFailure> {
        match &self.kind {
            StepKind::Hook { f, .. } => f(),
            kind => run_kind(kind).map_err(StepFailure::from),
        }
    }
}

fn describe_kind(kind: &StepKind) -> String {
    fn s(c: &CStr) -> String {
        format!("{:?}", c.to_string_lossy())
    }
    match kind {
        StepKind::Mount {
            source,
            target,
            fstype,
            flags,
            data,
        } => format!(
            "mount({} -> {}, type {}, flags {:#x}, data {})",
            source.as_deref().map(s).unwrap_or_else(|| "none".into()),
            s(target),
            fstype.as_deref().map(s).unwrap_or_else(|| "none".into()),
            flags,
            data.as_deref().map(s).unwrap_or_else(|| "none".into())
        ),
        StepKind::Bind {
            source,
            target,
            recursive,
            readonly,
        } => format!(
            "bind({} -> {}{}{})",
            s(source),
            s(target),
            if *recursive { ", recursive" } else { "" },
            if *readonly { ", read-only" } else { "" }
        ),
        StepKind::Propagation { target, flags } => {
            format!("mount_propagation({}, flags {:#x})", s(target), flags)
        }
        StepKind::MoveMount { fd, target } => {
            format!("move_mount(fd {} -> {})", fd.as_raw_fd(), s(target))
        }
        StepKind::Mkdir { path, mode } => format!("mkdir({}, {:#o})", s(path), mode),
        StepKind::Mknod { path, mode, dev } => {
            format!("mknod({}, {:#o}, dev {:#x})", s(path), mode, dev)
        }
        StepKind::Symlink { target, link } => {
            format!("symlink({} -> {})", s(link), s(target))
        }
        StepKind::WriteFile { path, data } => {
            format!("write_file({}, {} bytes)", s(path), data.len())
        }
        StepKind::Mask { path } => format!("mask({})", s(path)),
        StepKind::ReadOnly { path } => format!("read_only({})", s(path)),
        StepKind::PivotRoot { new_root } => format!("pivot_root({})", s(new_root)),
        StepKind::Chdir { path } => format!("chdir({})", s(path)),
        StepKind::Sethostname(n) => format!("sethostname({})", s(n)),
        StepKind::Setdomainname(n) => format!("setdomainname({})", s(n)),
        StepKind::Setrlimit {
            resource,
            soft,
            hard,
        } => format!("setrlimit({resource}, {soft}, {hard})"),
        StepKind::Prctl { option, args } => format!("prctl({option}, {args:?})"),
        StepKind::SetGroups(g) => format!("setgroups({g:?})"),
        StepKind::SetGid(g) => format!("setresgid({g})"),
        StepKind::SetUid(u) => format!("setresuid({u})"),
        StepKind::Hook { name, .. } => format!("hook({name:?})"),
        StepKind::InRoot { at, op } => format!(
            "{} resolved inside the root {}{}{}",
            describe_kind(op),
            s(&at.root),
            if at.follow {
                " (a symlink is followed inside the root)"
            } else {
                " (a symlink is refused: ELOOP)"
            },
            if at.skip_missing {
                ", skipped when missing"
            } else {
                ""
            }
        ),
    }
}

/// Run a step in the child: raw syscalls only, no allocation.
fn run_kind(kind: &StepKind) -> Result<(), i32> {
    match kind {
        StepKind::Mount { .. }
        | StepKind::Bind { .. }
        | StepKind::Propagation { .. }
        | StepKind::MoveMount { .. }
        | StepKind::Mask { .. }
        | StepKind::ReadOnly { .. }
        | StepKind::PivotRoot { .. } => run_mount_kind(kind),
        StepKind::Mkdir { .. }
        | StepKind::Mknod { .. }
        | StepKind::Symlink { .. }
        | StepKind::WriteFile { .. } => run_file_kind(kind),
        _ => run_process_kind(kind),
    }
}

/// The steps that mount, change mounts or the root.
fn run_mount_kind(kind: &StepKind) -> Result<(), i32> {
    match kind {
        StepKind::Mount {
            source,
            target,
            fstype,
            flags,
            data,
        } => child::mount(
            source.as_deref(),
            target,
            fstype.as_deref(),
            *flags,
            data.as_deref(),
        ),
        StepKind::Bind {
            source,
            target,
            recursive,
            readonly,
        } => {
            let rec = if *recursive { libc::MS_REC } else { 0 };
            child::mount(Some(source), target, None, libc::MS_BIND | rec, None)?;
            if *readonly {
                set_readonly(libc::AT_FDCWD, target, *recursive)?;
            }
            Ok(())
        }
        StepKind::Propagation { target, flags } => child::mount(None, target, None, *flags, None),
        StepKind::MoveMount { fd, target } => child::move_mount(
            fd.as_fd(),
            c"",
            libc::AT_FDCWD,
            target,
            libc::MOVE_MOUNT_F_EMPTY_PATH,
        ),
        StepKind::Mask { path } => {
            let mode = match child::stat_mode(path) {
                Err(libc::ENOENT) => return Ok(()),
                r => r?,
            };
            mask_at(path, mode & libc::S_IFMT == libc::S_IFDIR)
        }
        StepKind::ReadOnly { path } => {
            match child::mount(Some(path), path, None, libc::MS_BIND | libc::MS_REC, None) {
                Err(libc::ENOENT) => return Ok(()),
                r => r?,
            };
            set_readonly(libc::AT_FDCWD, path, true)
        }
        StepKind::PivotRoot { new_root } => {
            child::chdir(new_root)?;
            child::pivot_root(c".", c".")?;
            child::umount2(c".", libc::MNT_DETACH)?;
            child::chdir(c"/")
        }
        _ => Err(libc::EINVAL),
    }
}

/// The steps that make files.
fn run_file_kind(kind: &StepKind) -> Result<(), i32> {
    match kind {
        StepKind::Mkdir { path, mode } => match child::mkdir(path, *mode) {
            Err(libc::EEXIST) => {
                if child::stat_mode(path)? & libc::S_IFMT == libc::S_IFDIR {
                    Ok(())
                } else {
                    Err(libc::EEXIST)
                }
            }
            r => r,
        },
        StepKind::Mknod { path, mode, dev } => child::mknod(path, *mode, *dev),
        StepKind::Symlink { target, link } => child::symlink(target, link),
        StepKind::WriteFile { path, data } => {
            let fd = child::open(
                path,
                libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
                0o644,
            )?;
            let r = child::write_all(fd, data);
            child::close(fd);
            r
        }
        _ => Err(libc::EINVAL),
    }
}

/// The steps that change the process (ids, limits, names, hooks) and in-root steps.
fn run_process_kind(kind: &StepKind) -> Result<(), i32> {
    match kind {
        StepKind::Chdir { path } => child::chdir(path),
        StepKind::Sethostname(n) => child::sethostname(n),
        StepKind::Setdomainname(n) => child::setdomainname(n),
        StepKind::Setrlimit {
            resource,
            soft,
            hard,
        } => child::prlimit64(*resource, *soft, *hard),
        StepKind::Prctl { option, args } => child::prctl(*option, *args).map(drop),
        StepKind::SetGroups(g) => child::setgroups(g),
        StepKind::SetGid(g) => child::setresgid(*g, *g, *g),
        StepKind::SetUid(u) => child::setresuid(*u, *u, *u),
        StepKind::Hook { f, .. } => f().map_err(|e| e.errno),
        StepKind::InRoot { at, op } => at.run(op),
        _ => Err(libc::EINVAL),
    }
}

/// Hide `target`: an empty read-only tmpfs over a directory, `/dev/null`
/// bound over anything else.
fn mask_at(target: &CStr, dir: bool) -> Result<(), i32> {
    if dir {
        child::mount(
            Some(c"tmpfs"),
            target,
            Some(c"tmpfs"),
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            Some(c"size=0"),
        )
    } else {
        child::mount(Some(c"/dev/null"), target, None, libc::MS_BIND, None)
    }
}

/// `mount_setattr(dirfd, path, [AT_RECURSIVE], {attr_set: MOUNT_ATTR_RDONLY})`
/// (Linux 5.12); an empty `path` is the mount `dirfd` is on
/// (`AT_EMPTY_PATH`).
fn set_readonly(dirfd: libc::c_int, path: &CStr, recursive: bool) -> Result<(), i32> {
    let mut flags = if recursive { libc::AT_RECURSIVE } else { 0 };
    if path.is_empty() {
        flags |= libc::AT_EMPTY_PATH;
    }
    child::mount_setattr(
        dirfd,
        path,
        flags as libc::c_uint,
        MountAttr::RDONLY,
        MountAttr::empty(),
    )
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// `openat2(dirfd, path, flags | O_CLOEXEC, RESOLVE_IN_ROOT |
/// RESOLVE_NO_MAGICLINKS)` (Linux 5.6): `path` and every symlink and `..`
/// met on the way resolve as if `dirfd` were `/`, and no
/// `/proc/<pid>/fd`-style magic link is followed, so the result is always
/// inside `dirfd`'s tree. Returns the new fd (the caller closes it) or the
/// errno. A raw syscall: async-signal-safe, usable in [`Step::hook`]s.
///
/// ```no_run
/// let root = std::fs::File::open("/var/lib/c1/rootfs")?;
/// let fd = berth_namespaces::open_in_root(
///     std::os::fd::AsRawFd::as_raw_fd(&root),
///     c"etc/hosts",
///     libc::O_PATH,
/// ).map_err(std::io::Error::from_raw_os_error)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn open_in_root(
    dirfd: libc::c_int,
    path: &CStr,
    flags: libc::c_int,
) -> Result<libc::c_int, i32> {
    child::openat2(
        dirfd,
        path,
        flags | libc::O_CLOEXEC,
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
}

/// `/proc/self/fd/<fd>`, NUL-terminated, in a stack buffer (no
/// allocation, async-signal-safe): the magic link through which a mount or
/// reopen reaches exactly the inode an `O_PATH` fd holds (the host's
/// procfs, before `pivot_root`).
///
/// ```
/// let p = berth_namespaces::proc_self_fd(7);
/// assert!(p.starts_with(b"/proc/self/fd/7\0"));
/// ```
pub fn proc_self_fd(fd: libc::c_int) -> [u8; 32] {
    let mut buf = [0u8; 32];
    let prefix = b"/proc/self/fd/";
    buf[..prefix.len()].copy_from_slice(prefix);
    let mut digits = [0u8; 10];
    let (mut n, mut i) = (fd.max(0) as u32, 0);
    loop {
        digits[i] = b'0' + (n % 10) as u8;
        i += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut at = prefix.len();
    while i > 0 {
        i -= 1;
        buf[at] = digits[i];
        at += 1;
    }
    buf
}

/// [`proc_self_fd`] as a C string.
fn fd_path(buf: &[u8; 32]) -> Result<&CStr, i32> {
    CStr::from_bytes_until_nul(buf).map_err(|_| libc::EINVAL)
}

/// `fstat(2)`'s file type (`S_IFMT` bits) of `fd`.
fn file_type(fd: libc::c_int) -> Result<libc::mode_t, i32> {
    Ok(child::fstat_mode(fd)? & libc::S_IFMT)
}

/// Closes the fd on drop (no allocation; the child never unwinds, but
/// early returns do).
struct Fd(libc::c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        child::close(self.0);
    }
}

impl InRoot {
    /// Run `op` with its path resolved inside the root (child only).
    fn run(&self, op: &StepKind) -> Result<(), i32> {
        let root = Fd(child::open(
            &self.root,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            0,
        )?);
        match self.run_at(root.0, op) {
            Err(libc::ENOENT) if self.skip_missing => Ok(()),
            r => r,
        }
    }

    /// The parent directory, resolved in the root.
    fn parent(&self, root: libc::c_int) -> Result<Fd, i32> {
        open_in_root(root, &self.parent, libc::O_PATH | libc::O_DIRECTORY).map(Fd)
    }

    /// The path itself as an `O_PATH` fd; a symlink as the last component
    /// is followed (inside the root) or refused with `ELOOP`.
    fn target(&self, root: libc::c_int) -> Result<Fd, i32> {
        let nofollow = if self.follow { 0 } else { libc::O_NOFOLLOW };
        let fd = Fd(open_in_root(root, &self.path, libc::O_PATH | nofollow)?);
        if file_type(fd.0)? == libc::S_IFLNK {
            return Err(libc::ELOOP);
        }
        Ok(fd)
    }

    fn run_at(&self, root: libc::c_int, op: &StepKind) -> Result<(), i32> {
        match op {
            StepKind::Mkdir { .. }
            | StepKind::Mknod { .. }
            | StepKind::Symlink { .. }
            | StepKind::WriteFile { .. } => self.make_at(root, op),
            _ => self.mount_at(root, op),
        }
    }

    /// The steps that make a file in the root: on the in-root parent's fd.
    fn make_at(&self, root: libc::c_int, op: &StepKind) -> Result<(), i32> {
        match op {
            StepKind::Mkdir { mode, .. } => {
                let p = self.parent(root)?;
                match child::mkdirat(p.0, &self.name, *mode) {
                    Err(libc::EEXIST) => {
                        let mode = child::fstatat_mode(p.0, &self.name, libc::AT_SYMLINK_NOFOLLOW)?;
                        match mode & libc::S_IFMT {
                            libc::S_IFDIR => Ok(()),
                            libc::S_IFLNK => Err(libc::ELOOP),
                            _ => Err(libc::EEXIST),
                        }
                    }
                    r => r,
                }
            }
            StepKind::Mknod { mode, dev, .. } => {
                let p = self.parent(root)?;
                child::mknodat(p.0, &self.name, *mode, *dev)
            }
            StepKind::Symlink { target, .. } => {
                let p = self.parent(root)?;
                child::symlinkat(target, p.0, &self.name)
            }
            StepKind::WriteFile { data, .. } => {
                let f = self.open_for_write(root)?;
                child::write_all(f.0, data)
            }
            _ => Err(libc::EINVAL),
        }
    }

    /// The steps that mount in the root: onto the in-root target's fd.
    fn mount_at(&self, root: libc::c_int, op: &StepKind) -> Result<(), i32> {
        match op {
            StepKind::Mount {
                source,
                fstype,
                flags,
                data,
                ..
            } => {
                let t = self.target(root)?;
                let at = proc_self_fd(t.0);
                child::mount(
                    source.as_deref(),
                    fd_path(&at)?,
                    fstype.as_deref(),
                    *flags,
                    data.as_deref(),
                )
            }
            StepKind::Bind {
                source,
                recursive,
                readonly,
                ..
            } => {
                let rec = if *recursive { libc::MS_REC } else { 0 };
                {
                    let t = self.target(root)?;
                    let at = proc_self_fd(t.0);
                    child::mount(Some(source), fd_path(&at)?, None, libc::MS_BIND | rec, None)?;
                }
                if *readonly {
                    // A fresh fd resolves to the new mount.
                    set_readonly(self.target(root)?.0, c"", *recursive)?;
                }
                Ok(())
            }
            StepKind::MoveMount { fd, .. } => {
                let t = self.target(root)?;
                child::move_mount(
                    fd.as_fd(),
                    c"",
                    t.0,
                    c"",
                    libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH,
                )
            }
            StepKind::Mask { .. } => {
                let t = match self.target(root) {
                    Err(libc::ENOENT) => return Ok(()),
                    r => r?,
                };
                let at = proc_self_fd(t.0);
                mask_at(fd_path(&at)?, file_type(t.0)? == libc::S_IFDIR)
            }
            StepKind::ReadOnly { .. } => {
                {
                    let t = match self.target(root) {
                        Err(libc::ENOENT) => return Ok(()),
                        r => r?,
                    };
                    let at = proc_self_fd(t.0);
                    let at = fd_path(&at)?;
                    child::mount(Some(at), at, None, libc::MS_BIND | libc::MS_REC, None)?;
                }
                set_readonly(self.target(root)?.0, c"", true)
            }
            _ => Err(libc::EINVAL),
        }
    }

    /// A writable fd on the regular file at the path: an existing one is
    /// checked through an `O_PATH` fd (a device node, FIFO or directory is
    /// refused with `EINVAL` before it is ever opened) and reopened for
    /// writing through `/proc/self/fd/<n>`, truncated; a missing one is
    /// created with `O_EXCL|O_NOFOLLOW` in its in-root parent; a symlink
    /// dangling inside the root (followed) is replaced by the file.
    fn open_for_write(&self, root: libc::c_int) -> Result<Fd, i32> {
        match self.target(root) {
            Ok(t) => {
                if file_type(t.0)? != libc::S_IFREG {
                    return Err(libc::EINVAL);
                }
                let at = proc_self_fd(t.0);
                child::open(
                    fd_path(&at)?,
                    libc::O_WRONLY | libc::O_TRUNC | libc::O_NOCTTY | libc::O_CLOEXEC,
                    0,
                )
                .map(Fd)
            }
            Err(libc::ENOENT) if !self.skip_missing => {
                let p = self.parent(root)?;
                let create = || {
                    child::openat(
                        p.0,
                        &self.name,
                        libc::O_WRONLY
                            | libc::O_CREAT
                            | libc::O_EXCL
                            | libc::O_NOFOLLOW
                            | libc::O_NOCTTY
                            | libc::O_CLOEXEC,
                        0o644,
                    )
                };
                match create() {
                    // The name is a symlink whose in-root target does
                    // not exist (the target lookup said ENOENT).
                    Err(libc::EEXIST) if self.follow => {
                        child::unlinkat(p.0, &self.name, 0)?;
                        create().map(Fd)
                    }
                    r => r.map(Fd),
                }
            }
            Err(e) => Err(e),
        }
    }
}

/// The executor against berth-sys's fake kernel: the exact calls each step
/// makes, in order, and how it treats the answers. No root needed.
#[cfg(test)]
mod tests {
    use super::*;
    use berth_sys::fake::child::{install, Call, Installed, Node, Recorder};

    const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);
    const DIR: libc::c_int = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC;
    const ROOT: &str = "/c/rootfs";

    fn fake(rec: Recorder) -> (&'static Recorder, Installed) {
        let rec = rec.leak();
        (rec, install(rec))
    }

    /// Run `step` on a fresh recorder; its result and calls.
    fn calls_of(rec: Recorder, step: Step) -> (Result<(), StepFailure>, Vec<Call>) {
        let (rec, _g) = fake(rec);
        let r = step.run();
        assert!(
            rec.open_fds().is_empty(),
            "fds left open: {:?}",
            rec.records()
        );
        (r, rec.calls())
    }

    fn mount(
        source: Option<&str>,
        target: &str,
        fstype: Option<&str>,
        flags: libc::c_ulong,
        data: Option<&str>,
    ) -> Call {
        Call::Mount {
            source: source.map(String::from),
            target: target.into(),
            fstype: fstype.map(String::from),
            flags,
            data: data.map(String::from),
        }
    }

    fn setattr_ro(dir: libc::c_int, path: &str, flags: libc::c_int) -> Call {
        Call::MountSetattr {
            dir,
            path: path.into(),
            flags: flags as libc::c_uint,
            set: MountAttr::RDONLY,
            clr: MountAttr::empty(),
        }
    }

    fn open_root() -> Call {
        Call::Open {
            path: ROOT.into(),
            flags: DIR,
            mode: 0,
        }
    }

    fn openat2(dir: libc::c_int, path: &str, flags: libc::c_int) -> Call {
        Call::Openat2 {
            dir,
            path: path.into(),
            flags: flags | libc::O_CLOEXEC,
            resolve: IN_ROOT,
        }
    }

    fn err(errno: i32) -> Result<(), StepFailure> {
        Err(StepFailure { step: "", errno })
    }

    #[test]
    fn mount_kinds_make_exactly_their_calls() {
        let tree = || Recorder::new().dir("/a").dir("/b").file("/f");
        let flags = libc::MS_NOSUID | libc::MS_NODEV;
        let (r, c) = calls_of(
            tree(),
            Step::mount(Some("tmpfs"), "/a", Some("tmpfs"), flags, Some("size=1")),
        );
        assert_eq!(r, Ok(()));
        assert_eq!(
            c,
            [mount(
                Some("tmpfs"),
                "/a",
                Some("tmpfs"),
                flags,
                Some("size=1")
            )]
        );
        let (r, c) = calls_of(tree(), Step::bind("/a", "/b", true, true));
        assert_eq!(r, Ok(()));
        let bind = libc::MS_BIND | libc::MS_REC;
        assert_eq!(
            c,
            [
                mount(Some("/a"), "/b", None, bind, None),
                setattr_ro(libc::AT_FDCWD, "/b", libc::AT_RECURSIVE),
            ]
        );
        let (_, c) = calls_of(tree(), Step::bind("/a", "/b", false, false));
        assert_eq!(c, [mount(Some("/a"), "/b", None, libc::MS_BIND, None)]);
        let (_, c) = calls_of(tree(), Step::make_slave("/", true));
        assert_eq!(
            c,
            [mount(None, "/", None, libc::MS_SLAVE | libc::MS_REC, None)]
        );
        let tree_fd = std::fs::File::open("/dev/null").unwrap();
        let raw = tree_fd.as_raw_fd();
        let (_, c) = calls_of(tree(), Step::move_mount(tree_fd.into(), "/b"));
        assert_eq!(
            c,
            [Call::MoveMount {
                from_dir: raw,
                from_path: String::new(),
                to_dir: libc::AT_FDCWD,
                to_path: "/b".into(),
                flags: libc::MOVE_MOUNT_F_EMPTY_PATH,
            }]
        );
        let (r, c) = calls_of(tree(), Step::pivot_root("/a"));
        assert_eq!(r, Ok(()));
        assert_eq!(
            c,
            [
                Call::Chdir("/a".into()),
                Call::PivotRoot {
                    new_root: ".".into(),
                    put_old: ".".into()
                },
                Call::Umount2 {
                    target: ".".into(),
                    flags: libc::MNT_DETACH
                },
                Call::Chdir("/".into()),
            ]
        );
    }

    #[test]
    fn mask_and_read_only_pick_their_mount_and_skip_what_is_missing() {
        let tree = || Recorder::new().dir("/proc/acpi").file("/proc/kcore");
        let hide = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        let (r, c) = calls_of(tree(), Step::mask("/proc/acpi"));
        assert_eq!(r, Ok(()));
        assert_eq!(
            c,
            [
                Call::Stat("/proc/acpi".into()),
                mount(
                    Some("tmpfs"),
                    "/proc/acpi",
                    Some("tmpfs"),
                    hide,
                    Some("size=0")
                ),
            ]
        );
        let (_, c) = calls_of(tree(), Step::mask("/proc/kcore"));
        assert_eq!(
            c[1],
            mount(Some("/dev/null"), "/proc/kcore", None, libc::MS_BIND, None)
        );
        let (r, c) = calls_of(tree(), Step::mask("/proc/nope"));
        assert_eq!((r, c), (Ok(()), vec![Call::Stat("/proc/nope".into())]));
        // Another error than ENOENT is not skipped.
        let denied = tree().fail_when(libc::EACCES, |c| matches!(c, Call::Stat(_)));
        assert_eq!(
            calls_of(denied, Step::mask("/proc/acpi")).0,
            err(libc::EACCES)
        );

        let rbind = libc::MS_BIND | libc::MS_REC;
        let (r, c) = calls_of(tree(), Step::read_only("/proc/acpi"));
        assert_eq!(r, Ok(()));
        assert_eq!(
            c,
            [
                mount(Some("/proc/acpi"), "/proc/acpi", None, rbind, None),
                setattr_ro(libc::AT_FDCWD, "/proc/acpi", libc::AT_RECURSIVE),
            ]
        );
        let (r, c) = calls_of(tree(), Step::read_only("/proc/nope"));
        assert_eq!(r, Ok(()));
        assert_eq!(
            c,
            [mount(Some("/proc/nope"), "/proc/nope", None, rbind, None)]
        );
    }

    #[test]
    fn file_kinds_make_exactly_their_calls() {
        let tree = || Recorder::new().dir("/d").file("/f");
        let (r, c) = calls_of(tree(), Step::mkdir("/d/new", 0o700));
        assert_eq!(r, Ok(()));
        assert_eq!(
            c,
            [Call::Mkdir {
                path: "/d/new".into(),
                mode: 0o700
            }]
        );
        let dev = libc::makedev(1, 3);
        let (_, c) = calls_of(tree(), Step::mknod("/d/null", libc::S_IFCHR | 0o666, dev));
        assert_eq!(
            c,
            [Call::Mknod {
                path: "/d/null".into(),
                mode: libc::S_IFCHR | 0o666,
                dev
            }]
        );
        let (_, c) = calls_of(tree(), Step::symlink("/proc/self/fd", "/d/fd"));
        assert_eq!(
            c,
            [Call::Symlink {
                target: "/proc/self/fd".into(),
                link: "/d/fd".into()
            }]
        );
        let (r, c) = calls_of(tree(), Step::write_file("/d/x", "500"));
        assert_eq!(r, Ok(()));
        assert_eq!(
            c,
            [
                Call::Open {
                    path: "/d/x".into(),
                    flags: libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
                    mode: 0o644
                },
                Call::Write {
                    fd: 1000,
                    data: b"500".to_vec()
                },
                Call::Close(1000),
            ]
        );
        // A failed write still closes the fd (calls_of checks).
        let full = tree().fail_when(libc::ENOSPC, |c| matches!(c, Call::Write { .. }));
        assert_eq!(
            calls_of(full, Step::write_file("/d/x", "1")).0,
            err(libc::ENOSPC)
        );
    }

    #[test]
    fn mkdir_of_an_existing_dir_passes_of_a_file_fails_eexist() {
        let tree = || Recorder::new().dir("/d").file("/f");
        let (r, c) = calls_of(tree(), Step::mkdir("/d", 0o755));
        assert_eq!(r, Ok(()));
        assert_eq!(c[1], Call::Stat("/d".into()));
        assert_eq!(
            calls_of(tree(), Step::mkdir("/f", 0o755)).0,
            err(libc::EEXIST)
        );
        // In a root: on the parent's fd, and a symlink there is ELOOP.
        let tree = || {
            Recorder::new()
                .dir(&format!("{ROOT}/d"))
                .file(&format!("{ROOT}/f"))
                .symlink(&format!("{ROOT}/l"), "/d")
        };
        let (r, c) = calls_of(tree(), Step::mkdir("/d", 0o755).in_root(ROOT));
        assert_eq!(r, Ok(()));
        assert_eq!(
            c,
            [
                open_root(),
                openat2(1000, ".", libc::O_PATH | libc::O_DIRECTORY),
                Call::Mkdirat {
                    dir: 1001,
                    name: "d".into(),
                    mode: 0o755
                },
                Call::Fstatat {
                    dir: 1001,
                    name: "d".into(),
                    flags: libc::AT_SYMLINK_NOFOLLOW
                },
                Call::Close(1001),
                Call::Close(1000),
            ]
        );
        let in_root = |p: &str| Step::mkdir(p, 0o755).in_root(ROOT);
        assert_eq!(calls_of(tree(), in_root("/f")).0, err(libc::EEXIST));
        assert_eq!(calls_of(tree(), in_root("/l")).0, err(libc::ELOOP));
    }

    #[test]
    fn process_kinds_make_exactly_their_calls() {
        let cases: Vec<(Step, Call)> = vec![
            (Step::chdir("/"), Call::Chdir("/".into())),
            (Step::sethostname("c1"), Call::Sethostname("c1".into())),
            (Step::setdomainname("ex"), Call::Setdomainname("ex".into())),
            (
                Step::setrlimit(libc::RLIMIT_NOFILE as i32, 10, 20),
                Call::Prlimit64 {
                    resource: libc::RLIMIT_NOFILE as i32,
                    soft: 10,
                    hard: 20,
                },
            ),
            (
                Step::prctl(libc::PR_SET_NO_NEW_PRIVS, [1, 0, 0, 0]),
                Call::Prctl {
                    option: libc::PR_SET_NO_NEW_PRIVS,
                    args: [1, 0, 0, 0],
                },
            ),
            (Step::set_groups(&[5, 6]), Call::Setgroups(vec![5, 6])),
            (Step::set_gid(7), Call::Setresgid(7, 7, 7)),
            (Step::set_uid(8), Call::Setresuid(8, 8, 8)),
        ];
        for (step, call) in cases {
            let d = step.describe();
            assert_eq!(calls_of(Recorder::new(), step), (Ok(()), vec![call]), "{d}");
        }
        // A hook runs as it is; its berth_sys::child calls reach the fake.
        // SAFETY: a raw call, nothing allocated.
        let hook = unsafe {
            Step::hook_detailed("mask", || {
                child::umask(0o077);
                Err(StepFailure {
                    step: "part",
                    errno: libc::EPERM,
                })
            })
        };
        let (r, c) = calls_of(Recorder::new(), hook);
        assert_eq!(
            r,
            Err(StepFailure {
                step: "part",
                errno: libc::EPERM
            })
        );
        assert_eq!(c, [Call::Umask(0o077)]);
    }

    #[test]
    fn in_root_mounts_resolve_in_the_root_then_mount_on_the_fd() {
        let tree = || {
            Recorder::new()
                .dir(&format!("{ROOT}/proc"))
                .symlink(&format!("{ROOT}/sys"), "/proc")
                .symlink(&format!("{ROOT}/etc/hosts"), "/run/hosts")
                .file(&format!("{ROOT}/run/hosts"))
        };
        let step = || Step::mount(Some("proc"), "/proc", Some("proc"), 0, None).in_root(ROOT);
        let (rec, _g) = fake(tree());
        assert_eq!(step().run(), Ok(()));
        assert_eq!(
            rec.calls(),
            [
                open_root(),
                openat2(1000, "proc", libc::O_PATH | libc::O_NOFOLLOW),
                Call::Fstat(1001),
                mount(Some("proc"), "/proc/self/fd/1001", Some("proc"), 0, None),
                Call::Close(1001),
                Call::Close(1000),
            ]
        );
        assert_eq!(
            rec.records()[3].at.as_deref(),
            Some(&*format!("{ROOT}/proc"))
        );
        // A symlink as the last component is refused, unless followed.
        let link = || Step::mount(Some("sysfs"), "/sys", Some("sysfs"), 0, None).in_root(ROOT);
        let (r, c) = calls_of(tree(), link());
        assert_eq!(r, err(libc::ELOOP));
        assert!(!c.iter().any(|c| matches!(c, Call::Mount { .. })), "{c:?}");
        let (r, c) = calls_of(tree(), link().follow_symlink());
        assert_eq!(r, Ok(()));
        assert_eq!(c[1], openat2(1000, "sys", libc::O_PATH));
        // A bind read-only: the attribute on a fresh fd of the new mount.
        let bind = Step::bind("/srv/hosts", "/etc/hosts", false, true)
            .in_root(ROOT)
            .follow_symlink();
        let (r, c) = calls_of(tree(), bind);
        assert_eq!(r, Ok(()));
        assert_eq!(
            c[3..],
            [
                mount(
                    Some("/srv/hosts"),
                    "/proc/self/fd/1001",
                    None,
                    libc::MS_BIND,
                    None
                ),
                Call::Close(1001),
                openat2(1000, "etc/hosts", libc::O_PATH),
                Call::Fstat(1002),
                setattr_ro(1002, "", libc::AT_EMPTY_PATH),
                Call::Close(1002),
                Call::Close(1000),
            ]
        );
    }

    #[test]
    fn in_root_kinds_make_exactly_their_calls() {
        let tree = || {
            Recorder::new()
                .dir(&format!("{ROOT}/proc/acpi"))
                .file(&format!("{ROOT}/proc/kcore"))
                .dir(&format!("{ROOT}/dev"))
        };
        let path = libc::O_PATH | libc::O_NOFOLLOW;
        let prologue = |name: &str| vec![open_root(), openat2(1000, name, path), Call::Fstat(1001)];
        let (r, c) = calls_of(tree(), Step::mask("/proc/acpi").in_root(ROOT));
        assert_eq!(r, Ok(()));
        let hide = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        let mut want = prologue("proc/acpi");
        want.extend([
            Call::Fstat(1001),
            mount(
                Some("tmpfs"),
                "/proc/self/fd/1001",
                Some("tmpfs"),
                hide,
                Some("size=0"),
            ),
            Call::Close(1001),
            Call::Close(1000),
        ]);
        assert_eq!(c, want);
        let (r, c) = calls_of(tree(), Step::read_only("/proc/kcore").in_root(ROOT));
        assert_eq!(r, Ok(()));
        let fd = "/proc/self/fd/1001";
        let mut want = prologue("proc/kcore");
        want.extend([
            mount(Some(fd), fd, None, libc::MS_BIND | libc::MS_REC, None),
            Call::Close(1001),
            openat2(1000, "proc/kcore", path),
            Call::Fstat(1002),
            setattr_ro(1002, "", libc::AT_EMPTY_PATH | libc::AT_RECURSIVE),
            Call::Close(1002),
            Call::Close(1000),
        ]);
        assert_eq!(c, want);
        // Missing: nothing mounted, no error.
        let (r, c) = calls_of(tree(), Step::read_only("/proc/nope").in_root(ROOT));
        assert_eq!((r, c.len()), (Ok(()), 3), "{c:?}");
        let tree_fd = std::fs::File::open("/dev/null").unwrap();
        let raw = tree_fd.as_raw_fd();
        let (r, c) = calls_of(
            tree(),
            Step::move_mount(tree_fd.into(), "/dev").in_root(ROOT),
        );
        assert_eq!(r, Ok(()));
        let mut want = prologue("dev");
        want.extend([
            Call::MoveMount {
                from_dir: raw,
                from_path: String::new(),
                to_dir: 1001,
                to_path: String::new(),
                flags: libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH,
            },
            Call::Close(1001),
            Call::Close(1000),
        ]);
        assert_eq!(c, want);
        let parent = || {
            vec![
                open_root(),
                openat2(1000, "dev", libc::O_PATH | libc::O_DIRECTORY),
            ]
        };
        let dev = libc::makedev(1, 3);
        let (_, c) = calls_of(
            tree(),
            Step::mknod("/dev/null", libc::S_IFCHR | 0o666, dev).in_root(ROOT),
        );
        let mut want = parent();
        want.extend([
            Call::Mknodat {
                dir: 1001,
                name: "null".into(),
                mode: libc::S_IFCHR | 0o666,
                dev,
            },
            Call::Close(1001),
            Call::Close(1000),
        ]);
        assert_eq!(c, want);
        let (_, c) = calls_of(tree(), Step::symlink("pts/ptmx", "/dev/ptmx").in_root(ROOT));
        let mut want = parent();
        want.extend([
            Call::Symlinkat {
                target: "pts/ptmx".into(),
                dir: 1001,
                name: "ptmx".into(),
            },
            Call::Close(1001),
            Call::Close(1000),
        ]);
        assert_eq!(c, want);
    }

    #[test]
    fn skip_missing_turns_enoent_into_success_and_nothing_else() {
        let step = || {
            Step::bind("/srv/hosts", "/etc/hosts", false, true)
                .in_root(ROOT)
                .follow_symlink()
        };
        let tree = || Recorder::new().dir(ROOT);
        assert_eq!(calls_of(tree(), step()).0, err(libc::ENOENT));
        let (r, c) = calls_of(tree(), step().skip_missing());
        assert_eq!(r, Ok(()));
        assert!(!c.iter().any(|c| matches!(c, Call::Mount { .. })), "{c:?}");
        for errno in [libc::EACCES, libc::ELOOP, libc::EXDEV] {
            let failing = tree().fail_when(errno, |c| matches!(c, Call::Openat2 { .. }));
            assert_eq!(calls_of(failing, step().skip_missing()).0, err(errno));
        }
        // The root itself must exist: only the path in it may be missing.
        let (r, _) = calls_of(Recorder::new(), step().skip_missing());
        assert_eq!(r, err(libc::ENOENT));
    }

    #[test]
    fn in_root_write_file_reopens_a_file_creates_a_missing_one_replaces_a_dangling_link() {
        let tree = || {
            Recorder::new()
                .file(&format!("{ROOT}/etc/hostname"))
                .symlink(&format!("{ROOT}/etc/hosts"), "/run/hosts")
                .with(
                    &format!("{ROOT}/etc/null"),
                    Node::Special(libc::S_IFCHR | 0o666),
                )
        };
        let write = |p: &str| Step::write_file(p, "x").in_root(ROOT).follow_symlink();
        let (r, c) = calls_of(tree(), write("/etc/hostname"));
        assert_eq!(r, Ok(()));
        assert_eq!(c[2..4], [Call::Fstat(1001), Call::Fstat(1001)]);
        assert_eq!(
            c[4],
            Call::Open {
                path: "/proc/self/fd/1001".into(),
                flags: libc::O_WRONLY | libc::O_TRUNC | libc::O_NOCTTY | libc::O_CLOEXEC,
                mode: 0
            }
        );
        let create = libc::O_WRONLY
            | libc::O_CREAT
            | libc::O_EXCL
            | libc::O_NOFOLLOW
            | libc::O_NOCTTY
            | libc::O_CLOEXEC;
        let (rec, _g) = fake(tree());
        assert_eq!(write("/etc/hosts").run(), Ok(()));
        let c = rec.calls();
        let at = |dir, name: &str| (dir, name.to_string());
        let made: Vec<_> = c
            .iter()
            .filter_map(|c| match c {
                Call::Openat {
                    dir,
                    name,
                    flags,
                    mode,
                } => {
                    assert_eq!((*flags, *mode), (create, 0o644));
                    Some(at(*dir, name))
                }
                Call::Unlinkat { dir, name, .. } => Some(at(*dir, name)),
                _ => None,
            })
            .collect();
        assert_eq!(
            made,
            [at(1001, "hosts"), at(1001, "hosts"), at(1001, "hosts")]
        );
        assert_eq!(rec.node(&format!("{ROOT}/etc/hosts")), Some(Node::File));
        // A device node is never opened for writing.
        assert_eq!(calls_of(tree(), write("/etc/null")).0, err(libc::EINVAL));
    }

    #[test]
    fn a_scripted_errno_stops_the_plan_at_the_step_that_failed() {
        use crate::protocol::{At, Phase};
        use std::cell::Cell;
        let steps = [
            Step::mkdir("/a", 0o755),
            Step::mount(Some("proc"), "/a", Some("proc"), 0, None),
            Step::chdir("/a"),
        ];
        let rec = Recorder::new().fail_when(libc::EPERM, |c| matches!(c, Call::Mount { .. }));
        let (rec, _g) = fake(rec);
        let at = Cell::new(At::Phase(Phase::Setup));
        let mut done = Vec::new();
        let e = crate::child::run_range(&steps, 0..3, &at, |i| done.push(i)).unwrap_err();
        assert_eq!((e.at, e.errno, e.detail), (At::Step(1), libc::EPERM, ""));
        assert_eq!(done, [0]);
        assert!(!rec.calls().contains(&Call::Chdir("/a".into())));
        // A hook's failure keeps the part it names.
        // SAFETY: never makes a system call.
        let hook = unsafe {
            Step::hook_detailed("policy", || {
                Err(StepFailure {
                    step: "capset",
                    errno: libc::EPERM,
                })
            })
        };
        let e = crate::child::run_range(&[hook], 0..1, &at, |_| ()).unwrap_err();
        assert_eq!(
            (e.at, e.errno, e.detail),
            (At::Step(0), libc::EPERM, "capset")
        );
    }
}
