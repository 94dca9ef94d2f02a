//! Steps of the child plan: plain data built in the parent, executed in the
//! child after `clone3` with raw syscalls only.

use std::borrow::Cow;
use std::ffi::{CStr, CString, OsStr};
use std::fmt;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::sys::{self, cvt, cvt_i};

/// An async-signal-safe callback run in the child (see [`Step::hook`]).
pub type HookFn = Box<dyn Fn() -> Result<(), i32> + Send + Sync + 'static>;

/// One step of the child plan.
///
/// Steps run in the child in the order they were added to the
/// [`Spawner`](crate::Spawner), after the fixed prologue (id-map sync, joins,
/// time offsets, hostname, stdio) and before the epilogue (cwd, init, exec).
/// A failing step stops the child; [`Spawner::spawn`](crate::Spawner::spawn)
/// returns [`Error::Child`](crate::Error::Child) naming the step, its path
/// and the errno.
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
        f: HookFn,
    },
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
        Step {
            kind: StepKind::Hook {
                name: name.into(),
                f: Box::new(f),
            },
            invalid: None,
        }
    }

    /// A human description naming the operation and its objects, used in errors.
    pub fn describe(&self) -> String {
        fn s(c: &CStr) -> String {
            format!("{:?}", c.to_string_lossy())
        }
        match &self.kind {
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
        }
    }

    /// Run the step. Called in the child only: raw syscalls, no allocation.
    pub(crate) fn run(&self) -> Result<(), i32> {
        // SAFETY (whole body): every pointer passed below comes from a CString
        // or buffer owned by `self`, alive for the call.
        unsafe {
            match &self.kind {
                StepKind::Mount {
                    source,
                    target,
                    fstype,
                    flags,
                    data,
                } => cvt_i(libc::mount(
                    opt_ptr(source),
                    target.as_ptr(),
                    opt_ptr(fstype),
                    *flags,
                    opt_ptr(data).cast(),
                ))
                .map(drop),
                StepKind::Bind {
                    source,
                    target,
                    recursive,
                    readonly,
                } => {
                    let rec = if *recursive { libc::MS_REC } else { 0 };
                    cvt_i(libc::mount(
                        source.as_ptr(),
                        target.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND | rec,
                        std::ptr::null(),
                    ))?;
                    if *readonly {
                        set_readonly(target, *recursive)?;
                    }
                    Ok(())
                }
                StepKind::Propagation { target, flags } => cvt_i(libc::mount(
                    std::ptr::null(),
                    target.as_ptr(),
                    std::ptr::null(),
                    *flags,
                    std::ptr::null(),
                ))
                .map(drop),
                StepKind::MoveMount { fd, target } => cvt(libc::syscall(
                    sys::SYS_MOVE_MOUNT,
                    fd.as_raw_fd(),
                    c"".as_ptr(),
                    libc::AT_FDCWD,
                    target.as_ptr(),
                    sys::MOVE_MOUNT_F_EMPTY_PATH,
                ))
                .map(drop),
                StepKind::Mkdir { path, mode } => match cvt_i(libc::mkdir(path.as_ptr(), *mode)) {
                    Err(libc::EEXIST) => {
                        let mut st: libc::stat = std::mem::zeroed();
                        cvt_i(libc::stat(path.as_ptr(), &mut st))?;
                        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                            Ok(())
                        } else {
                            Err(libc::EEXIST)
                        }
                    }
                    r => r.map(drop),
                },
                StepKind::Mknod { path, mode, dev } => {
                    cvt_i(libc::mknod(path.as_ptr(), *mode, *dev)).map(drop)
                }
                StepKind::Symlink { target, link } => {
                    cvt_i(libc::symlink(target.as_ptr(), link.as_ptr())).map(drop)
                }
                StepKind::WriteFile { path, data } => {
                    let fd = cvt_i(libc::open(
                        path.as_ptr(),
                        libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
                        0o644 as libc::c_uint,
                    ))?;
                    let r = sys::write_all(fd, data);
                    libc::close(fd);
                    r
                }
                StepKind::Mask { path } => {
                    let mut st: libc::stat = std::mem::zeroed();
                    match cvt_i(libc::stat(path.as_ptr(), &mut st)) {
                        Err(libc::ENOENT) => return Ok(()),
                        Err(e) => return Err(e),
                        Ok(_) => {}
                    }
                    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                        cvt_i(libc::mount(
                            c"tmpfs".as_ptr(),
                            path.as_ptr(),
                            c"tmpfs".as_ptr(),
                            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                            c"size=0".as_ptr().cast(),
                        ))
                        .map(drop)
                    } else {
                        cvt_i(libc::mount(
                            c"/dev/null".as_ptr(),
                            path.as_ptr(),
                            std::ptr::null(),
                            libc::MS_BIND,
                            std::ptr::null(),
                        ))
                        .map(drop)
                    }
                }
                StepKind::ReadOnly { path } => {
                    match cvt_i(libc::mount(
                        path.as_ptr(),
                        path.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND | libc::MS_REC,
                        std::ptr::null(),
                    )) {
                        Err(libc::ENOENT) => return Ok(()),
                        r => r?,
                    };
                    set_readonly(path, true)
                }
                StepKind::PivotRoot { new_root } => {
                    cvt_i(libc::chdir(new_root.as_ptr()))?;
                    cvt(libc::syscall(
                        libc::SYS_pivot_root,
                        c".".as_ptr(),
                        c".".as_ptr(),
                    ))?;
                    cvt_i(libc::umount2(c".".as_ptr(), libc::MNT_DETACH))?;
                    cvt_i(libc::chdir(c"/".as_ptr())).map(drop)
                }
                StepKind::Chdir { path } => cvt_i(libc::chdir(path.as_ptr())).map(drop),
                StepKind::Sethostname(n) => {
                    cvt_i(libc::sethostname(n.as_ptr(), n.as_bytes().len())).map(drop)
                }
                StepKind::Setdomainname(n) => {
                    cvt_i(libc::setdomainname(n.as_ptr(), n.as_bytes().len())).map(drop)
                }
                StepKind::Setrlimit {
                    resource,
                    soft,
                    hard,
                } => {
                    let lim = libc::rlimit64 {
                        rlim_cur: *soft,
                        rlim_max: *hard,
                    };
                    cvt(libc::syscall(
                        libc::SYS_prlimit64,
                        0,
                        *resource,
                        &lim as *const libc::rlimit64,
                        std::ptr::null_mut::<libc::rlimit64>(),
                    ))
                    .map(drop)
                }
                StepKind::Prctl { option, args } => {
                    cvt_i(libc::prctl(*option, args[0], args[1], args[2], args[3])).map(drop)
                }
                StepKind::SetGroups(g) => cvt(libc::syscall(
                    libc::SYS_setgroups,
                    g.len(),
                    if g.is_empty() {
                        std::ptr::null()
                    } else {
                        g.as_ptr()
                    },
                ))
                .map(drop),
                StepKind::SetGid(g) => {
                    cvt(libc::syscall(libc::SYS_setresgid, *g, *g, *g)).map(drop)
                }
                StepKind::SetUid(u) => {
                    cvt(libc::syscall(libc::SYS_setresuid, *u, *u, *u)).map(drop)
                }
                StepKind::Hook { f, .. } => f(),
            }
        }
    }
}

fn opt_ptr(c: &Option<CString>) -> *const libc::c_char {
    c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr())
}

/// `mount_setattr(path, AT_RECURSIVE?, {attr_set: MOUNT_ATTR_RDONLY})`, Linux 5.12.
fn set_readonly(path: &CStr, recursive: bool) -> Result<(), i32> {
    let attr = sys::MountAttr {
        attr_set: sys::MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = if recursive { sys::AT_RECURSIVE } else { 0 };
    // SAFETY: valid path and struct pointers for the call.
    cvt(unsafe {
        libc::syscall(
            sys::SYS_MOUNT_SETATTR,
            libc::AT_FDCWD,
            path.as_ptr(),
            flags,
            &attr as *const sys::MountAttr,
            std::mem::size_of::<sys::MountAttr>(),
        )
    })
    .map(drop)
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}
