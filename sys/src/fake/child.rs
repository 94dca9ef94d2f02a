//! The fake of the child-side calls ([`crate::child`]).
//!
//! A test installs a [`ChildKernel`] on its thread with [`install`]; while
//! the returned guard lives, every [`crate::child`] call on that thread
//! goes to it instead of the kernel. The slot is a `const`-initialised
//! thread-local `Cell` holding a `&'static dyn ChildKernel` (no
//! destructor, no lazy initialisation): reading it is a load from
//! thread-local memory, async-signal-safe and allocation-free, so the check
//! costs nothing a child could trip on — and without the `fake` feature it
//! is not compiled at all.
//!
//! [`Recorder`] is a ready fake: it records every call (paths as
//! `String`s) and answers from a small model of a file system (directories,
//! files, symlinks and nodes the test declares or the calls make), so the
//! code under test sees `EEXIST`, `ENOENT`, `ELOOP` as it would; a test may
//! script an errno for the calls a predicate matches.
//!
//! ```
//! use berth_sys::{child, fake::child::{install, Call, Recorder}};
//! let rec = Recorder::new().dir("/srv").leak();
//! let _fake = install(rec);
//! assert_eq!(child::mkdir(c"/srv/box", 0o755), Ok(()));
//! assert_eq!(child::mkdir(c"/srv/box", 0o755), Err(libc::EEXIST));
//! assert_eq!(rec.calls()[0], Call::Mkdir { path: "/srv/box".into(), mode: 0o755 });
//! ```

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ffi::CStr;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use crate::child::CapData;
use crate::mount_api::MountAttr;
use crate::openat2::ResolveFlags;

/// The kernel as the child side sees it: one method per [`crate::child`]
/// call, same arguments, same result. Every method defaults to
/// `Err(ENOSYS)` (`umask` to 0, `close` to nothing), so a fake implements
/// only what its test drives.
#[allow(unused_variables, missing_docs)]
pub trait ChildKernel {
    fn mount(
        &self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: libc::c_ulong,
        data: Option<&CStr>,
    ) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn umount2(&self, target: &CStr, flags: libc::c_int) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn move_mount(
        &self,
        from_dir: BorrowedFd<'_>,
        from_path: &CStr,
        to_dir: RawFd,
        to_path: &CStr,
        flags: libc::c_uint,
    ) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn mount_setattr(
        &self,
        dir: RawFd,
        path: &CStr,
        flags: libc::c_uint,
        set: MountAttr,
        clr: MountAttr,
    ) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn fsopen(&self, fstype: &CStr, flags: libc::c_uint) -> Result<RawFd, i32> {
        Err(libc::ENOSYS)
    }
    fn fsconfig(
        &self,
        fd: RawFd,
        cmd: libc::c_uint,
        key: Option<&CStr>,
        value: Option<&CStr>,
        aux: libc::c_int,
    ) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn fsmount(&self, fd: RawFd, flags: libc::c_uint, attr: MountAttr) -> Result<RawFd, i32> {
        Err(libc::ENOSYS)
    }
    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn chdir(&self, path: &CStr) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn chroot(&self, path: &CStr) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn mkdir(&self, path: &CStr, mode: libc::mode_t) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn mkdirat(&self, dir: RawFd, name: &CStr, mode: libc::mode_t) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn mknod(&self, path: &CStr, mode: libc::mode_t, dev: libc::dev_t) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn mknodat(
        &self,
        dir: RawFd,
        name: &CStr,
        mode: libc::mode_t,
        dev: libc::dev_t,
    ) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn symlink(&self, target: &CStr, link: &CStr) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn symlinkat(&self, target: &CStr, dir: RawFd, name: &CStr) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn unlinkat(&self, dir: RawFd, name: &CStr, flags: libc::c_int) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn open(&self, path: &CStr, flags: libc::c_int, mode: libc::mode_t) -> Result<RawFd, i32> {
        Err(libc::ENOSYS)
    }
    fn openat(
        &self,
        dir: RawFd,
        name: &CStr,
        flags: libc::c_int,
        mode: libc::mode_t,
    ) -> Result<RawFd, i32> {
        Err(libc::ENOSYS)
    }
    fn openat2(
        &self,
        dir: RawFd,
        path: &CStr,
        flags: libc::c_int,
        resolve: ResolveFlags,
    ) -> Result<RawFd, i32> {
        Err(libc::ENOSYS)
    }
    fn close(&self, fd: RawFd) {}
    fn close_range(&self, first: u32, last: u32, flags: libc::c_uint) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn setns(&self, fd: RawFd, nstype: libc::c_int) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn unshare(&self, flags: libc::c_int) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn dup2(&self, src: RawFd, dst: RawFd) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn unlock_pty(&self, master: RawFd) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn open_pty_peer(&self, master: RawFd, flags: libc::c_int) -> Result<RawFd, i32> {
        Err(libc::ENOSYS)
    }
    /// The errno execve fails with (a fake cannot replace the process).
    fn execve(
        &self,
        path: &CStr,
        argv: &[*const libc::c_char],
        envp: &[*const libc::c_char],
    ) -> i32 {
        libc::ENOSYS
    }
    fn signal_handler(&self, sig: libc::c_int) -> Result<libc::sighandler_t, i32> {
        Err(libc::ENOSYS)
    }
    fn signal_default(&self, sig: libc::c_int) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn set_signal_mask(&self, mask: &libc::sigset_t) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn swap_signal_mask(&self, mask: &libc::sigset_t) -> Result<libc::sigset_t, i32> {
        Err(libc::ENOSYS)
    }
    fn sigwaitinfo(&self, set: &libc::sigset_t) -> Result<libc::c_int, i32> {
        Err(libc::ENOSYS)
    }
    fn kill(&self, pid: libc::pid_t, sig: libc::c_int) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn waitpid(
        &self,
        pid: libc::pid_t,
        flags: libc::c_int,
    ) -> Result<(libc::pid_t, libc::c_int), i32> {
        Err(libc::ENOSYS)
    }
    fn fork(&self, flags: libc::c_ulong) -> Result<libc::pid_t, i32> {
        Err(libc::ENOSYS)
    }
    fn setsid(&self) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn set_controlling_tty(&self, fd: RawFd) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn monotonic_ns(&self) -> Result<u64, i32> {
        Err(libc::ENOSYS)
    }
    fn read(&self, fd: RawFd, buf: &mut [u8]) -> Result<usize, i32> {
        Err(libc::ENOSYS)
    }
    fn write(&self, fd: RawFd, buf: &[u8]) -> Result<usize, i32> {
        Err(libc::ENOSYS)
    }
    fn send_fd(&self, sock: RawFd, fd: RawFd) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn stat_mode(&self, path: &CStr) -> Result<libc::mode_t, i32> {
        Err(libc::ENOSYS)
    }
    fn fstat_mode(&self, fd: RawFd) -> Result<libc::mode_t, i32> {
        Err(libc::ENOSYS)
    }
    fn fstatat_mode(
        &self,
        dir: RawFd,
        name: &CStr,
        flags: libc::c_int,
    ) -> Result<libc::mode_t, i32> {
        Err(libc::ENOSYS)
    }
    fn sethostname(&self, name: &CStr) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn setdomainname(&self, name: &CStr) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn prlimit64(&self, resource: libc::c_int, soft: u64, hard: u64) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn prctl(&self, option: libc::c_int, args: [libc::c_ulong; 4]) -> Result<libc::c_int, i32> {
        Err(libc::ENOSYS)
    }
    fn setgroups(&self, groups: &[libc::gid_t]) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn setresgid(&self, r: libc::gid_t, e: libc::gid_t, s: libc::gid_t) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn setresuid(&self, r: libc::uid_t, e: libc::uid_t, s: libc::uid_t) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn get_pdeathsig(&self) -> Result<libc::c_int, i32> {
        Err(libc::ENOSYS)
    }
    fn capset(&self, data: &[CapData; 2]) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn seccomp_set_mode_filter(
        &self,
        flags: libc::c_uint,
        filter: &[libc::sock_filter],
    ) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn landlock_restrict_self(&self, ruleset: BorrowedFd<'_>, flags: u32) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn lo_up(&self) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
    fn umask(&self, mask: libc::mode_t) -> libc::mode_t {
        0
    }
    fn lchown(&self, path: &CStr, uid: libc::uid_t, gid: libc::gid_t) -> Result<(), i32> {
        Err(libc::ENOSYS)
    }
}

thread_local! {
    /// The fake of this thread (`const`: no lazy initialisation, no destructor).
    static FAKE: Cell<Option<&'static dyn ChildKernel>> = const { Cell::new(None) };
}

/// The fake installed on the calling thread, if any (async-signal-safe:
/// a thread-local load).
#[inline]
pub(crate) fn installed() -> Option<&'static dyn ChildKernel> {
    FAKE.try_with(Cell::get).ok().flatten()
}

/// Whether a fake is installed on the calling thread.
pub fn is_installed() -> bool {
    installed().is_some()
}

/// Route this thread's [`crate::child`] calls to `fake` until the guard is
/// dropped (which puts back what was installed before). A `'static`
/// reference (e.g. [`Recorder::leak`]), so no call can outlive it.
#[must_use = "the fake is uninstalled when the guard is dropped"]
pub fn install(fake: &'static dyn ChildKernel) -> Installed {
    let prev = FAKE.with(|c| c.replace(Some(fake)));
    Installed {
        prev,
        _thread: PhantomData,
    }
}

/// Guard of [`install`]: uninstalls the fake on drop (on the thread that
/// installed it: not `Send`).
pub struct Installed {
    prev: Option<&'static dyn ChildKernel>,
    _thread: PhantomData<*const ()>,
}

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = FAKE.try_with(|c| c.set(self.prev));
    }
}

/// One call the [`Recorder`] saw: paths as given (lossy UTF-8), fds as
/// numbers (the recorder's, from 1000 up; `AT_FDCWD` is -100).
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Mount {
        source: Option<String>,
        target: String,
        fstype: Option<String>,
        flags: libc::c_ulong,
        data: Option<String>,
    },
    Umount2 {
        target: String,
        flags: libc::c_int,
    },
    MoveMount {
        from_dir: RawFd,
        from_path: String,
        to_dir: RawFd,
        to_path: String,
        flags: libc::c_uint,
    },
    MountSetattr {
        dir: RawFd,
        path: String,
        flags: libc::c_uint,
        set: MountAttr,
        clr: MountAttr,
    },
    Fsopen {
        fstype: String,
        flags: libc::c_uint,
    },
    Fsconfig {
        fd: RawFd,
        cmd: libc::c_uint,
        key: Option<String>,
        value: Option<String>,
        aux: libc::c_int,
    },
    Fsmount {
        fd: RawFd,
        flags: libc::c_uint,
        attr: MountAttr,
    },
    PivotRoot {
        new_root: String,
        put_old: String,
    },
    Chdir(String),
    Chroot(String),
    Mkdir {
        path: String,
        mode: libc::mode_t,
    },
    Mkdirat {
        dir: RawFd,
        name: String,
        mode: libc::mode_t,
    },
    Mknod {
        path: String,
        mode: libc::mode_t,
        dev: libc::dev_t,
    },
    Mknodat {
        dir: RawFd,
        name: String,
        mode: libc::mode_t,
        dev: libc::dev_t,
    },
    Symlink {
        target: String,
        link: String,
    },
    Symlinkat {
        target: String,
        dir: RawFd,
        name: String,
    },
    Unlinkat {
        dir: RawFd,
        name: String,
        flags: libc::c_int,
    },
    Open {
        path: String,
        flags: libc::c_int,
        mode: libc::mode_t,
    },
    Openat {
        dir: RawFd,
        name: String,
        flags: libc::c_int,
        mode: libc::mode_t,
    },
    Openat2 {
        dir: RawFd,
        path: String,
        flags: libc::c_int,
        resolve: ResolveFlags,
    },
    Close(RawFd),
    CloseRange {
        first: u32,
        last: u32,
        flags: libc::c_uint,
    },
    Setns {
        fd: RawFd,
        nstype: libc::c_int,
    },
    Unshare(libc::c_int),
    Dup2 {
        src: RawFd,
        dst: RawFd,
    },
    /// execve of the path, with that many arguments.
    Execve {
        path: String,
        args: usize,
    },
    SignalHandler(libc::c_int),
    SignalDefault(libc::c_int),
    /// `kill(pid, sig)`.
    Kill {
        pid: libc::pid_t,
        sig: libc::c_int,
    },
    /// `read(fd, len)`.
    Read {
        fd: RawFd,
        len: usize,
    },
    SetSignalMask,
    Write {
        fd: RawFd,
        data: Vec<u8>,
    },
    SendFd {
        sock: RawFd,
        fd: RawFd,
    },
    Stat(String),
    Fstat(RawFd),
    Fstatat {
        dir: RawFd,
        name: String,
        flags: libc::c_int,
    },
    Sethostname(String),
    Setdomainname(String),
    Prlimit64 {
        resource: libc::c_int,
        soft: u64,
        hard: u64,
    },
    Prctl {
        option: libc::c_int,
        args: [libc::c_ulong; 4],
    },
    Setgroups(Vec<libc::gid_t>),
    Setresgid(libc::gid_t, libc::gid_t, libc::gid_t),
    Setresuid(libc::uid_t, libc::uid_t, libc::uid_t),
    GetPdeathsig,
    /// [`crate::child::net::lo_up`].
    LoUp,
    Capset([CapData; 2]),
    /// A seccomp filter of `len` instructions.
    Seccomp {
        flags: libc::c_uint,
        len: usize,
    },
    LandlockRestrictSelf {
        ruleset: RawFd,
        flags: u32,
    },
    Umask(libc::mode_t),
    Lchown {
        path: String,
        uid: libc::uid_t,
        gid: libc::gid_t,
    },
}

/// A file in the [`Recorder`]'s model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link to the path.
    Link(String),
    /// A device node or FIFO (its `mode`, file type included).
    Special(libc::mode_t),
}

impl Node {
    /// What mknod(2) with `mode` makes.
    fn made(mode: libc::mode_t) -> Node {
        if mode & libc::S_IFMT == libc::S_IFREG {
            Node::File
        } else {
            Node::Special(mode)
        }
    }

    fn mode(&self) -> libc::mode_t {
        match self {
            Node::Dir => libc::S_IFDIR | 0o755,
            Node::File => libc::S_IFREG | 0o644,
            Node::Link(_) => libc::S_IFLNK | 0o777,
            Node::Special(m) => *m,
        }
    }
}

/// A recorded call: the call, the host path it acted on as the model
/// resolved it (through fds, `/proc/self/fd/<n>`, symlinks, the root
/// after `pivot_root`; `None` when it names no path or did not resolve),
/// and its result (a value such as an fd, or the errno).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The call.
    pub call: Call,
    /// The host path it acted on.
    pub at: Option<String>,
    /// Its result.
    pub result: Result<i64, i32>,
}

type Matcher = Box<dyn Fn(&Call) -> bool>;

/// A call's success value as recorded.
trait Ret: Copy {
    fn value(self) -> i64;
}

impl Ret for () {
    fn value(self) -> i64 {
        0
    }
}

impl Ret for i32 {
    fn value(self) -> i64 {
        self.into()
    }
}

impl Ret for u32 {
    fn value(self) -> i64 {
        self.into()
    }
}

impl Ret for usize {
    fn value(self) -> i64 {
        self as i64
    }
}

impl Ret for i64 {
    fn value(self) -> i64 {
        self
    }
}

/// A [`ChildKernel`] that records every call and answers from a model of
/// a file system (see the [module doc](self)). Build it, declare the
/// files the test's tree has, [`leak`](Self::leak) it and [`install`] it.
pub struct Recorder {
    state: RefCell<State>,
    rules: Vec<(Matcher, i32)>,
}

struct State {
    nodes: BTreeMap<String, Node>,
    /// Every fd ever handed out and the path it was opened on (numbers
    /// are never reused, so a path stays known after `close`).
    fds: BTreeMap<RawFd, String>,
    open: BTreeSet<RawFd>,
    next_fd: RawFd,
    cwd: String,
    /// The host path of `/` (changed by `pivot_root` and `chroot`).
    root: String,
    umask: libc::mode_t,
    /// The parent-death signal (`PR_SET_PDEATHSIG`; a uid or gid change clears it).
    pdeathsig: libc::c_int,
    /// The fds the process holds besides those the model opened.
    held_fds: usize,
    /// The soft `RLIMIT_NOFILE` a `prlimit64` set (none: no limit).
    nofile: Option<u64>,
    records: Vec<Record>,
    /// What a new mount of a file system type shows (relative paths).
    fills: Vec<(String, Vec<(String, Node)>)>,
}

/// The [`Recorder`]'s path of an `fsopen` context fd: this and the type.
const FSOPEN: &str = "fsopen:";
/// The [`Recorder`]'s path of an `fsmount` mount fd: this and the type.
const FSMOUNT: &str = "fsmount:";

/// Lossy UTF-8 of a C string.
fn s(c: &CStr) -> String {
    c.to_string_lossy().into_owned()
}

/// `base/name` of model paths (`/` joins without a double slash).
fn join(base: &str, name: &str) -> String {
    if base == "/" {
        format!("/{name}")
    } else {
        format!("{base}/{name}")
    }
}

fn parent_of(p: &str) -> &str {
    match p.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &p[..i],
    }
}

/// Whether the host path `p` is inside (or is) `top`: for assertions on
/// [`Record::at`].
pub fn is_inside(p: &str, top: &str) -> bool {
    top == "/" || p == top || p.strip_prefix(top).is_some_and(|r| r.starts_with('/'))
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// An empty tree (only `/`), umask 022, no calls.
    pub fn new() -> Recorder {
        let mut nodes = BTreeMap::new();
        nodes.insert("/".to_string(), Node::Dir);
        Recorder {
            state: RefCell::new(State {
                nodes,
                fds: BTreeMap::new(),
                open: BTreeSet::new(),
                next_fd: 1000,
                cwd: "/".into(),
                root: "/".into(),
                umask: 0o022,
                pdeathsig: 0,
                held_fds: 3,
                nofile: None,
                records: Vec::new(),
                fills: Vec::new(),
            }),
            rules: Vec::new(),
        }
    }

    /// Add `node` at the absolute `path`, with any missing parent as a directory.
    pub fn with(self, path: &str, node: Node) -> Recorder {
        self.state.borrow_mut().add(path, node);
        self
    }

    /// Add a directory (and its parents).
    pub fn dir(self, path: &str) -> Recorder {
        self.with(path, Node::Dir)
    }

    /// Add a regular file (and its parents).
    pub fn file(self, path: &str) -> Recorder {
        self.with(path, Node::File)
    }

    /// Add a symbolic link `path -> target` (and its parents).
    pub fn symlink(self, path: &str, target: &str) -> Recorder {
        self.with(path, Node::Link(target.to_string()))
    }

    /// A new mount of `fstype` shows `files` (paths relative to the mount
    /// point, parents made as directories), e.g. `proc` its `kcore`.
    pub fn fill_on_mount(self, fstype: &str, files: &[(&str, Node)]) -> Recorder {
        let files = files
            .iter()
            .map(|(p, n)| (p.trim_start_matches('/').to_string(), n.clone()))
            .collect();
        self.state
            .borrow_mut()
            .fills
            .push((fstype.to_string(), files));
        self
    }

    /// The parent-death signal the process has before the calls
    /// (`PR_SET_PDEATHSIG`; 0, none, by default).
    pub fn pdeathsig(self, sig: libc::c_int) -> Recorder {
        self.state.borrow_mut().pdeathsig = sig;
        self
    }

    /// The process holds `n` fds before the calls (3 by default: stdin,
    /// stdout, stderr). An open fails with `EMFILE` when these and the
    /// fds the model opened reach the soft `RLIMIT_NOFILE` a
    /// `prlimit64` set (getrlimit(2): "a value one greater than the
    /// maximum file descriptor number that can be opened"; the model
    /// counts fds, as if they were the lowest numbers).
    pub fn held_fds(self, n: usize) -> Recorder {
        self.state.borrow_mut().held_fds = n;
        self
    }

    /// Every call `matches` accepts fails with `errno` (recorded, the model
    /// left alone). The first matching rule wins.
    pub fn fail_when(mut self, errno: i32, matches: impl Fn(&Call) -> bool + 'static) -> Recorder {
        self.rules.push((Box::new(matches), errno));
        self
    }

    /// A `'static` reference for [`install`] (the recorder is leaked: a test's).
    pub fn leak(self) -> &'static Recorder {
        Box::leak(Box::new(self))
    }

    /// The recorded calls with where they acted and their results.
    pub fn records(&self) -> Vec<Record> {
        self.state.borrow().records.clone()
    }

    /// The recorded calls.
    pub fn calls(&self) -> Vec<Call> {
        self.state
            .borrow()
            .records
            .iter()
            .map(|r| r.call.clone())
            .collect()
    }

    /// Forget the calls recorded so far (the model stays).
    pub fn clear(&self) {
        self.state.borrow_mut().records.clear();
    }

    /// The model's node at the host path `path`.
    pub fn node(&self, path: &str) -> Option<Node> {
        self.state.borrow().nodes.get(path).cloned()
    }

    /// The host path fd `fd` was opened on.
    pub fn path_of(&self, fd: RawFd) -> Option<String> {
        self.state.borrow().fds.get(&fd).cloned()
    }

    /// The fds handed out and not closed.
    pub fn open_fds(&self) -> Vec<RawFd> {
        self.state.borrow().open.iter().copied().collect()
    }

    /// Record `call` and run `model` unless a rule fails it.
    fn call<T: Ret>(
        &self,
        call: Call,
        model: impl FnOnce(&mut State) -> (Option<String>, Result<T, i32>),
    ) -> Result<T, i32> {
        let scripted = self.rules.iter().find(|(m, _)| m(&call)).map(|r| r.1);
        let mut st = self.state.borrow_mut();
        let (at, r) = match scripted {
            Some(e) => (None, Err(e)),
            None => model(&mut st),
        };
        st.records.push(Record {
            call,
            at,
            result: r.map(Ret::value),
        });
        r
    }
}

impl State {
    /// Add `node` at `path`, with any missing parent as a directory.
    fn add(&mut self, path: &str, node: Node) {
        let mut p = path;
        while p != "/" {
            p = parent_of(p);
            self.nodes.entry(p.to_string()).or_insert(Node::Dir);
        }
        self.nodes.insert(path.to_string(), node);
    }

    /// What a mount at `p` shows: a bind the (modelled) tree of its
    /// source, a new file system nothing but its fill; a remount or a
    /// propagation change leaves it alone.
    fn mounted(
        &mut self,
        p: &str,
        source: Option<String>,
        fstype: Option<String>,
        flags: libc::c_ulong,
    ) {
        let shown: Vec<(String, Node)> = if flags & libc::MS_REMOUNT != 0 {
            return;
        } else if flags & libc::MS_BIND != 0 {
            let Some(src) = source else { return };
            self.nodes
                .iter()
                .filter(|(k, _)| is_inside(k, &src))
                .map(|(k, n)| (format!("{p}{}", &k[src.len()..]), n.clone()))
                .collect()
        } else if let Some(t) = fstype {
            let fill = self.fills.iter().find(|(f, _)| *f == t);
            let files = fill.map(|(_, files)| files.clone()).unwrap_or_default();
            let mut shown = vec![(p.to_string(), Node::Dir)];
            shown.extend(files.into_iter().map(|(rel, n)| (join(p, &rel), n)));
            shown
        } else {
            return;
        };
        let below: Vec<String> = self
            .nodes
            .keys()
            .filter(|k| *k != p && is_inside(k, p))
            .cloned()
            .collect();
        for k in below {
            self.nodes.remove(&k);
        }
        for (k, n) in shown {
            self.add(&k, n);
        }
    }

    /// The directory an `*at` call starts from.
    fn base(&self, dir: RawFd) -> Result<String, i32> {
        if dir == libc::AT_FDCWD {
            return Ok(self.cwd.clone());
        }
        if !self.open.contains(&dir) {
            return Err(libc::EBADF);
        }
        self.fds.get(&dir).cloned().ok_or(libc::EBADF)
    }

    /// Resolve `path` from `base` with `top` as the root (`..` and absolute
    /// links stay below it); `/proc/self/fd/<n>` is the fd's path unless
    /// `in_root`. Returns the host path (existing or not, only its parent
    /// must exist) and whether it exists.
    fn walk(
        &self,
        base: &str,
        top: &str,
        path: &str,
        follow: bool,
        in_root: bool,
    ) -> Result<(String, bool), i32> {
        if !in_root {
            if let Some(rest) = path.strip_prefix("/proc/self/fd/") {
                let (n, tail) = rest.split_once('/').unwrap_or((rest, ""));
                let fd: RawFd = n.parse().map_err(|_| libc::ENOENT)?;
                let p = self.fds.get(&fd).ok_or(libc::ENOENT)?.clone();
                return self.walk(
                    &p,
                    top,
                    if tail.is_empty() { "." } else { tail },
                    follow,
                    in_root,
                );
            }
        }
        let mut cur = if path.starts_with('/') {
            top.to_string()
        } else {
            base.to_string()
        };
        let mut todo: VecDeque<String> = path
            .split('/')
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect();
        let mut links = 0;
        while let Some(c) = todo.pop_front() {
            let last = todo.is_empty();
            match c.as_str() {
                "." => continue,
                ".." => {
                    if cur != top {
                        cur = parent_of(&cur).to_string();
                    }
                    continue;
                }
                _ => {}
            }
            let next = join(&cur, &c);
            match self.nodes.get(&next) {
                Some(Node::Link(t)) if !last || follow => {
                    links += 1;
                    if links > 40 {
                        return Err(libc::ELOOP);
                    }
                    if t.starts_with('/') {
                        cur = top.to_string();
                    }
                    for part in t.split('/').filter(|p| !p.is_empty()).rev() {
                        todo.push_front(part.to_string());
                    }
                }
                None if last => return Ok((next, false)),
                None => return Err(libc::ENOENT),
                Some(Node::Dir) => cur = next,
                Some(_) if last => cur = next,
                Some(_) => return Err(libc::ENOTDIR),
            }
        }
        let exists = self.nodes.contains_key(&cur);
        Ok((cur, exists))
    }

    /// An existing path.
    fn lookup(&self, base: &str, path: &str, follow: bool) -> Result<String, i32> {
        match self.walk(base, &self.root.clone(), path, follow, false)? {
            (p, true) => Ok(p),
            _ => Err(libc::ENOENT),
        }
    }

    /// A path to create: its parent must be a directory, itself absent.
    fn creatable(&self, base: &str, path: &str) -> (Option<String>, Result<String, i32>) {
        match self.walk(base, &self.root.clone(), path, false, false) {
            Err(e) => (None, Err(e)),
            Ok((p, true)) => (Some(p), Err(libc::EEXIST)),
            Ok((p, false)) => match self.nodes.get(parent_of(&p)) {
                Some(Node::Dir) => (Some(p.clone()), Ok(p)),
                Some(_) => (Some(p), Err(libc::ENOTDIR)),
                None => (Some(p), Err(libc::ENOENT)),
            },
        }
    }

    fn make(&mut self, base: &str, path: &str, node: Node) -> (Option<String>, Result<(), i32>) {
        let (at, r) = self.creatable(base, path);
        let r = r.map(|p| {
            self.nodes.insert(p, node);
        });
        (at, r)
    }

    fn new_fd(&mut self, path: String) -> RawFd {
        let fd = self.next_fd;
        self.next_fd += 1;
        self.fds.insert(fd, path);
        self.open.insert(fd);
        fd
    }

    /// open/openat/openat2 on the model.
    fn open(
        &mut self,
        base: &str,
        top: Option<&str>,
        path: &str,
        flags: libc::c_int,
    ) -> (Option<String>, Result<RawFd, i32>) {
        // open(2) takes the fd before it walks the path.
        let in_use = (self.held_fds + self.open.len()) as u64;
        if self.nofile.is_some_and(|limit| in_use >= limit) {
            return (None, Err(libc::EMFILE));
        }
        let nofollow = flags & libc::O_NOFOLLOW != 0;
        let create = flags & libc::O_CREAT != 0;
        let in_root = top.is_some();
        let top = top.map_or_else(|| self.root.clone(), String::from);
        let (p, exists) = match self.walk(base, &top, path, !nofollow, in_root) {
            Ok(r) => r,
            Err(e) => return (None, Err(e)),
        };
        let at = Some(p.clone());
        if exists && create && flags & libc::O_EXCL != 0 {
            return (at, Err(libc::EEXIST));
        }
        if !exists {
            if !create {
                return (at, Err(libc::ENOENT));
            }
            if self.nodes.get(parent_of(&p)) != Some(&Node::Dir) {
                return (at, Err(libc::ENOENT));
            }
            self.nodes.insert(p.clone(), Node::File);
        }
        match self.nodes.get(&p) {
            Some(Node::Link(_)) if flags & libc::O_PATH == 0 => return (at, Err(libc::ELOOP)),
            Some(n) if flags & libc::O_DIRECTORY != 0 && *n != Node::Dir => {
                return (at, Err(libc::ENOTDIR))
            }
            _ => {}
        }
        let fd = self.new_fd(p);
        (at, Ok(fd))
    }

    fn mode_at(
        &self,
        base: &str,
        path: &str,
        follow: bool,
    ) -> (Option<String>, Result<libc::mode_t, i32>) {
        match self.lookup(base, path, follow) {
            Ok(p) => {
                let m = self.nodes.get(&p).map_or(0, Node::mode);
                (Some(p), Ok(m))
            }
            Err(e) => (None, Err(e)),
        }
    }

    /// A call on an existing path (a mount target, a chdir...).
    fn existing(&self, base: &str, path: &str, follow: bool) -> (Option<String>, Result<(), i32>) {
        match self.lookup(base, path, follow) {
            Ok(p) => (Some(p), Ok(())),
            Err(e) => (None, Err(e)),
        }
    }

    fn dir_of(&self, base: &str, path: &str) -> (Option<String>, Result<String, i32>) {
        match self.lookup(base, path, true) {
            Ok(p) if self.nodes.get(&p) == Some(&Node::Dir) => (Some(p.clone()), Ok(p)),
            Ok(p) => (Some(p), Err(libc::ENOTDIR)),
            Err(e) => (None, Err(e)),
        }
    }

    /// An `*at` call: the base of `dir`, then `f` on it.
    fn at<T>(
        &mut self,
        dir: RawFd,
        f: impl FnOnce(&mut State, &str) -> (Option<String>, Result<T, i32>),
    ) -> (Option<String>, Result<T, i32>) {
        match self.base(dir) {
            Ok(b) => f(self, &b),
            Err(e) => (None, Err(e)),
        }
    }
}

fn ok() -> (Option<String>, Result<(), i32>) {
    (None, Ok(()))
}

impl ChildKernel for Recorder {
    fn mount(
        &self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: libc::c_ulong,
        data: Option<&CStr>,
    ) -> Result<(), i32> {
        let call = Call::Mount {
            source: source.map(s),
            target: s(target),
            fstype: fstype.map(s),
            flags,
            data: data.map(s),
        };
        self.call(call, |st| {
            let cwd = st.cwd.clone();
            let (at, r) = st.existing(&cwd, &s(target), true);
            if let (Some(p), Ok(())) = (&at, r) {
                let source = source.map(|c| st.lookup(&cwd, &s(c), true));
                st.mounted(p, source.and_then(Result::ok), fstype.map(s), flags);
            }
            (at, r)
        })
    }
    fn umount2(&self, target: &CStr, flags: libc::c_int) -> Result<(), i32> {
        let call = Call::Umount2 {
            target: s(target),
            flags,
        };
        self.call(call, |st| {
            let cwd = st.cwd.clone();
            st.existing(&cwd, &s(target), flags & libc::UMOUNT_NOFOLLOW == 0)
        })
    }
    fn move_mount(
        &self,
        from_dir: BorrowedFd<'_>,
        from_path: &CStr,
        to_dir: RawFd,
        to_path: &CStr,
        flags: libc::c_uint,
    ) -> Result<(), i32> {
        let call = Call::MoveMount {
            from_dir: from_dir.as_raw_fd(),
            from_path: s(from_path),
            to_dir,
            to_path: s(to_path),
            flags,
        };
        self.call(call, |st| {
            let (at, r) = st.at(to_dir, |st, b| {
                if flags & libc::MOVE_MOUNT_T_EMPTY_PATH != 0 && to_path.is_empty() {
                    (Some(b.to_string()), Ok(()))
                } else {
                    st.existing(b, &s(to_path), true)
                }
            });
            // A mount fsmount made shows its file system's fill.
            let made = st
                .fds
                .get(&from_dir.as_raw_fd())
                .and_then(|p| p.strip_prefix(FSMOUNT));
            if let (Some(p), Ok(()), Some(t)) = (&at, r, made.map(String::from)) {
                st.mounted(p, None, Some(t), 0);
            }
            (at, r)
        })
    }
    fn mount_setattr(
        &self,
        dir: RawFd,
        path: &CStr,
        flags: libc::c_uint,
        set: MountAttr,
        clr: MountAttr,
    ) -> Result<(), i32> {
        let call = Call::MountSetattr {
            dir,
            path: s(path),
            flags,
            set,
            clr,
        };
        self.call(call, |st| {
            st.at(dir, |st, b| {
                if flags & libc::AT_EMPTY_PATH as libc::c_uint != 0 && path.is_empty() {
                    (Some(b.to_string()), Ok(()))
                } else {
                    st.existing(b, &s(path), true)
                }
            })
        })
    }
    fn fsopen(&self, fstype: &CStr, flags: libc::c_uint) -> Result<RawFd, i32> {
        let call = Call::Fsopen {
            fstype: s(fstype),
            flags,
        };
        self.call(call, |st| {
            (None, Ok(st.new_fd(format!("{FSOPEN}{}", s(fstype)))))
        })
    }
    fn fsconfig(
        &self,
        fd: RawFd,
        cmd: libc::c_uint,
        key: Option<&CStr>,
        value: Option<&CStr>,
        aux: libc::c_int,
    ) -> Result<(), i32> {
        let call = Call::Fsconfig {
            fd,
            cmd,
            key: key.map(s),
            value: value.map(s),
            aux,
        };
        self.call(call, |st| match st.base(fd) {
            Ok(p) if p.starts_with(FSOPEN) => (None, Ok(())),
            Ok(_) => (None, Err(libc::EINVAL)),
            Err(e) => (None, Err(e)),
        })
    }
    fn fsmount(&self, fd: RawFd, flags: libc::c_uint, attr: MountAttr) -> Result<RawFd, i32> {
        let call = Call::Fsmount { fd, flags, attr };
        self.call(call, |st| match st.base(fd) {
            Ok(p) => match p.strip_prefix(FSOPEN) {
                Some(t) => (None, Ok(st.new_fd(format!("{FSMOUNT}{t}")))),
                None => (None, Err(libc::EINVAL)),
            },
            Err(e) => (None, Err(e)),
        })
    }
    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> Result<(), i32> {
        let call = Call::PivotRoot {
            new_root: s(new_root),
            put_old: s(put_old),
        };
        self.call(call, |st| {
            let cwd = st.cwd.clone();
            let (at, r) = st.dir_of(&cwd, &s(new_root));
            let r = r.map(|p| {
                st.root = p.clone();
                st.cwd = p;
            });
            (at, r)
        })
    }
    fn chdir(&self, path: &CStr) -> Result<(), i32> {
        self.call(Call::Chdir(s(path)), |st| {
            let cwd = st.cwd.clone();
            let (at, r) = st.dir_of(&cwd, &s(path));
            (at, r.map(|p| st.cwd = p))
        })
    }
    fn chroot(&self, path: &CStr) -> Result<(), i32> {
        self.call(Call::Chroot(s(path)), |st| {
            let cwd = st.cwd.clone();
            let (at, r) = st.dir_of(&cwd, &s(path));
            (at, r.map(|p| st.root = p))
        })
    }
    fn mkdir(&self, path: &CStr, mode: libc::mode_t) -> Result<(), i32> {
        let call = Call::Mkdir {
            path: s(path),
            mode,
        };
        self.call(call, |st| {
            st.at(libc::AT_FDCWD, |st, b| st.make(b, &s(path), Node::Dir))
        })
    }
    fn mkdirat(&self, dir: RawFd, name: &CStr, mode: libc::mode_t) -> Result<(), i32> {
        let call = Call::Mkdirat {
            dir,
            name: s(name),
            mode,
        };
        self.call(call, |st| {
            st.at(dir, |st, b| st.make(b, &s(name), Node::Dir))
        })
    }
    fn mknod(&self, path: &CStr, mode: libc::mode_t, dev: libc::dev_t) -> Result<(), i32> {
        let call = Call::Mknod {
            path: s(path),
            mode,
            dev,
        };
        self.call(call, |st| {
            st.at(libc::AT_FDCWD, |st, b| {
                st.make(b, &s(path), Node::made(mode))
            })
        })
    }
    fn mknodat(
        &self,
        dir: RawFd,
        name: &CStr,
        mode: libc::mode_t,
        dev: libc::dev_t,
    ) -> Result<(), i32> {
        let call = Call::Mknodat {
            dir,
            name: s(name),
            mode,
            dev,
        };
        self.call(call, |st| {
            st.at(dir, |st, b| st.make(b, &s(name), Node::made(mode)))
        })
    }
    fn symlink(&self, target: &CStr, link: &CStr) -> Result<(), i32> {
        let call = Call::Symlink {
            target: s(target),
            link: s(link),
        };
        let node = Node::Link(s(target));
        self.call(call, |st| {
            st.at(libc::AT_FDCWD, |st, b| st.make(b, &s(link), node))
        })
    }
    fn symlinkat(&self, target: &CStr, dir: RawFd, name: &CStr) -> Result<(), i32> {
        let call = Call::Symlinkat {
            target: s(target),
            dir,
            name: s(name),
        };
        let node = Node::Link(s(target));
        self.call(call, |st| st.at(dir, |st, b| st.make(b, &s(name), node)))
    }
    fn unlinkat(&self, dir: RawFd, name: &CStr, flags: libc::c_int) -> Result<(), i32> {
        let call = Call::Unlinkat {
            dir,
            name: s(name),
            flags,
        };
        self.call(call, |st| {
            st.at(dir, |st, b| match st.lookup(b, &s(name), false) {
                Ok(p) => {
                    let is_dir = st.nodes.get(&p) == Some(&Node::Dir);
                    if is_dir != (flags & libc::AT_REMOVEDIR != 0) {
                        let e = if is_dir { libc::EISDIR } else { libc::ENOTDIR };
                        return (Some(p), Err(e));
                    }
                    st.nodes.remove(&p);
                    (Some(p), Ok(()))
                }
                Err(e) => (None, Err(e)),
            })
        })
    }
    fn open(&self, path: &CStr, flags: libc::c_int, mode: libc::mode_t) -> Result<RawFd, i32> {
        let call = Call::Open {
            path: s(path),
            flags,
            mode,
        };
        self.call(call, |st| {
            st.at(libc::AT_FDCWD, |st, b| st.open(b, None, &s(path), flags))
        })
    }
    fn openat(
        &self,
        dir: RawFd,
        name: &CStr,
        flags: libc::c_int,
        mode: libc::mode_t,
    ) -> Result<RawFd, i32> {
        let call = Call::Openat {
            dir,
            name: s(name),
            flags,
            mode,
        };
        self.call(call, |st| {
            st.at(dir, |st, b| st.open(b, None, &s(name), flags))
        })
    }
    fn openat2(
        &self,
        dir: RawFd,
        path: &CStr,
        flags: libc::c_int,
        resolve: ResolveFlags,
    ) -> Result<RawFd, i32> {
        let call = Call::Openat2 {
            dir,
            path: s(path),
            flags,
            resolve,
        };
        self.call(call, |st| {
            st.at(dir, |st, b| {
                let top = resolve.contains(ResolveFlags::IN_ROOT).then_some(b);
                st.open(b, top, &s(path), flags)
            })
        })
    }
    fn close(&self, fd: RawFd) {
        let _ = self.call(Call::Close(fd), |st| {
            let at = st.fds.get(&fd).cloned();
            let r = if st.open.remove(&fd) {
                Ok(())
            } else {
                Err(libc::EBADF)
            };
            (at, r)
        });
    }
    fn close_range(&self, first: u32, last: u32, flags: libc::c_uint) -> Result<(), i32> {
        let call = Call::CloseRange { first, last, flags };
        self.call(call, |st| {
            if flags & libc::CLOSE_RANGE_CLOEXEC == 0 {
                st.open.retain(|fd| !(first..=last).contains(&(*fd as u32)));
            }
            ok()
        })
    }
    fn setns(&self, fd: RawFd, nstype: libc::c_int) -> Result<(), i32> {
        self.call(Call::Setns { fd, nstype }, |_| ok())
    }
    fn unshare(&self, flags: libc::c_int) -> Result<(), i32> {
        self.call(Call::Unshare(flags), |_| ok())
    }
    fn dup2(&self, src: RawFd, dst: RawFd) -> Result<(), i32> {
        self.call(Call::Dup2 { src, dst }, |_| ok())
    }
    /// `ENOENT` when `path` is not in the model, else `ENOEXEC` (the
    /// process is not replaced); the arguments counted up to argv's NULL.
    fn execve(
        &self,
        path: &CStr,
        argv: &[*const libc::c_char],
        _envp: &[*const libc::c_char],
    ) -> i32 {
        let args = argv.iter().take_while(|p| !p.is_null()).count();
        let call = Call::Execve {
            path: s(path),
            args,
        };
        let r: Result<(), i32> = self.call(call, |st| {
            let cwd = st.cwd.clone();
            match st.lookup(&cwd, &s(path), true) {
                Ok(p) => (Some(p), Err(libc::ENOEXEC)),
                Err(e) => (None, Err(e)),
            }
        });
        r.err().unwrap_or(libc::ENOEXEC)
    }
    /// Every handler is `SIG_DFL`.
    fn signal_handler(&self, sig: libc::c_int) -> Result<libc::sighandler_t, i32> {
        self.call(Call::SignalHandler(sig), |_| (None, Ok(libc::SIG_DFL)))
    }
    fn signal_default(&self, sig: libc::c_int) -> Result<(), i32> {
        self.call(Call::SignalDefault(sig), |_| ok())
    }
    /// Every process exists and takes the signal.
    fn kill(&self, pid: libc::pid_t, sig: libc::c_int) -> Result<(), i32> {
        self.call(Call::Kill { pid, sig }, |_| ok())
    }
    /// An open fd is at its end (0 bytes); another is `EBADF`.
    fn read(&self, fd: RawFd, buf: &mut [u8]) -> Result<usize, i32> {
        let call = Call::Read { fd, len: buf.len() };
        self.call(call, |st| match st.base(fd) {
            Ok(p) => (Some(p), Ok(0i64)),
            Err(e) => (None, Err(e)),
        })
        .map(|n| n as usize)
    }
    fn set_signal_mask(&self, _mask: &libc::sigset_t) -> Result<(), i32> {
        self.call(Call::SetSignalMask, |_| ok())
    }
    fn write(&self, fd: RawFd, buf: &[u8]) -> Result<usize, i32> {
        let call = Call::Write {
            fd,
            data: buf.to_vec(),
        };
        self.call(call, |st| match st.base(fd) {
            Ok(p) => (Some(p), Ok(buf.len() as i64)),
            Err(e) => (None, Err(e)),
        })
        .map(|n| n as usize)
    }
    fn send_fd(&self, sock: RawFd, fd: RawFd) -> Result<(), i32> {
        self.call(Call::SendFd { sock, fd }, |st| match st.base(fd) {
            Ok(p) => (Some(p), Ok(())),
            Err(e) => (None, Err(e)),
        })
    }
    fn stat_mode(&self, path: &CStr) -> Result<libc::mode_t, i32> {
        self.call(Call::Stat(s(path)), |st| {
            st.at(libc::AT_FDCWD, |st, b| st.mode_at(b, &s(path), true))
        })
    }
    fn fstat_mode(&self, fd: RawFd) -> Result<libc::mode_t, i32> {
        self.call(Call::Fstat(fd), |st| match st.base(fd) {
            Ok(p) => match st.nodes.get(&p) {
                Some(n) => (Some(p), Ok(n.mode())),
                None => (Some(p), Err(libc::ENOENT)),
            },
            Err(e) => (None, Err(e)),
        })
    }
    fn fstatat_mode(
        &self,
        dir: RawFd,
        name: &CStr,
        flags: libc::c_int,
    ) -> Result<libc::mode_t, i32> {
        let call = Call::Fstatat {
            dir,
            name: s(name),
            flags,
        };
        let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
        self.call(call, |st| {
            st.at(dir, |st, b| st.mode_at(b, &s(name), follow))
        })
    }
    fn sethostname(&self, name: &CStr) -> Result<(), i32> {
        self.call(Call::Sethostname(s(name)), |_| ok())
    }
    fn setdomainname(&self, name: &CStr) -> Result<(), i32> {
        self.call(Call::Setdomainname(s(name)), |_| ok())
    }
    fn prlimit64(&self, resource: libc::c_int, soft: u64, hard: u64) -> Result<(), i32> {
        let call = Call::Prlimit64 {
            resource,
            soft,
            hard,
        };
        self.call(call, |st| {
            if resource == libc::RLIMIT_NOFILE as libc::c_int {
                st.nofile = Some(soft);
            }
            ok()
        })
    }
    fn prctl(&self, option: libc::c_int, args: [libc::c_ulong; 4]) -> Result<libc::c_int, i32> {
        self.call(Call::Prctl { option, args }, |st| {
            if option == libc::PR_SET_PDEATHSIG {
                st.pdeathsig = args[0] as libc::c_int;
            }
            (None, Ok(0))
        })
    }
    fn setgroups(&self, groups: &[libc::gid_t]) -> Result<(), i32> {
        self.call(Call::Setgroups(groups.to_vec()), |_| ok())
    }
    fn setresgid(&self, r: libc::gid_t, e: libc::gid_t, s: libc::gid_t) -> Result<(), i32> {
        self.call(Call::Setresgid(r, e, s), |st| {
            st.pdeathsig = 0;
            ok()
        })
    }
    fn setresuid(&self, r: libc::uid_t, e: libc::uid_t, s: libc::uid_t) -> Result<(), i32> {
        self.call(Call::Setresuid(r, e, s), |st| {
            st.pdeathsig = 0;
            ok()
        })
    }
    fn lo_up(&self) -> Result<(), i32> {
        self.call(Call::LoUp, |_| ok())
    }
    fn get_pdeathsig(&self) -> Result<libc::c_int, i32> {
        self.call(Call::GetPdeathsig, |st| (None, Ok(st.pdeathsig)))
    }
    fn capset(&self, data: &[CapData; 2]) -> Result<(), i32> {
        self.call(Call::Capset(*data), |_| ok())
    }
    fn seccomp_set_mode_filter(
        &self,
        flags: libc::c_uint,
        filter: &[libc::sock_filter],
    ) -> Result<(), i32> {
        let call = Call::Seccomp {
            flags,
            len: filter.len(),
        };
        self.call(call, |_| ok())
    }
    fn landlock_restrict_self(&self, ruleset: BorrowedFd<'_>, flags: u32) -> Result<(), i32> {
        let call = Call::LandlockRestrictSelf {
            ruleset: ruleset.as_raw_fd(),
            flags,
        };
        self.call(call, |_| ok())
    }
    fn umask(&self, mask: libc::mode_t) -> libc::mode_t {
        self.call(Call::Umask(mask), |st| {
            (None, Ok(std::mem::replace(&mut st.umask, mask)))
        })
        .unwrap_or(0)
    }
    fn lchown(&self, path: &CStr, uid: libc::uid_t, gid: libc::gid_t) -> Result<(), i32> {
        let call = Call::Lchown {
            path: s(path),
            uid,
            gid,
        };
        self.call(call, |st| {
            let cwd = st.cwd.clone();
            st.existing(&cwd, &s(path), false)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::child;

    #[test]
    fn installed_only_while_the_guard_lives() {
        let rec = Recorder::new().leak();
        assert!(installed().is_none());
        {
            let _g = install(rec);
            assert!(installed().is_some());
            assert_eq!(child::sethostname(c"box"), Ok(()));
            assert_eq!(child::net::lo_up(), Ok(()));
            // Another thread still sees the kernel.
            std::thread::spawn(|| assert!(installed().is_none()))
                .join()
                .unwrap();
        }
        assert!(installed().is_none());
        assert_eq!(
            rec.calls(),
            vec![Call::Sethostname("box".into()), Call::LoUp]
        );
    }

    #[test]
    fn nested_installs_restore_the_previous_fake() {
        let (a, b) = (Recorder::new().leak(), Recorder::new().leak());
        let _ga = install(a);
        {
            let _gb = install(b);
            child::umask(0o077);
        }
        child::umask(0o022);
        assert_eq!(b.calls(), vec![Call::Umask(0o077)]);
        assert_eq!(a.calls(), vec![Call::Umask(0o022)]);
    }

    #[test]
    fn a_low_nofile_limit_refuses_opens_once_set() {
        let rec = Recorder::new().file("/a").held_fds(3).leak();
        let _g = install(rec);
        let fd = child::open(c"/a", libc::O_RDONLY, 0).unwrap();
        // The soft limit counts: 3 held + 1 open leave no room under 4.
        assert_eq!(child::prlimit64(libc::RLIMIT_NOFILE as i32, 4, 8), Ok(()));
        assert_eq!(child::open(c"/a", libc::O_RDONLY, 0), Err(libc::EMFILE));
        assert_eq!(
            child::openat(libc::AT_FDCWD, c"/a", libc::O_RDONLY, 0),
            Err(libc::EMFILE)
        );
        child::close(fd);
        let fd = child::open(c"/a", libc::O_RDONLY, 0).unwrap();
        // Another limit leaves opens alone.
        assert_eq!(child::prlimit64(libc::RLIMIT_CORE as i32, 0, 0), Ok(()));
        assert_eq!(child::read(fd, &mut [0; 4]), Ok(0));
        assert_eq!(child::read(fd + 1, &mut [0; 4]), Err(libc::EBADF));
        assert_eq!(child::kill(7, libc::SIGTERM), Ok(()));
        assert!(rec.calls().contains(&Call::Kill {
            pid: 7,
            sig: libc::SIGTERM
        }));
        assert!(rec.calls().contains(&Call::Read { fd, len: 4 }));
    }

    #[test]
    fn the_model_answers_like_the_kernel() {
        let rec = Recorder::new()
            .dir("/root/etc")
            .file("/root/etc/passwd")
            .symlink("/root/etc/hosts", "/run/hosts")
            .symlink("/root/evil", "../../..")
            .leak();
        let _g = install(rec);
        let dir = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC;
        let root = child::open(c"/root", dir, 0).unwrap();
        let in_root = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        // A link as the last component: O_NOFOLLOW gives the link itself.
        let fd =
            child::openat2(root, c"etc/hosts", libc::O_PATH | libc::O_NOFOLLOW, in_root).unwrap();
        assert_eq!(child::fstat_mode(fd).unwrap() & libc::S_IFMT, libc::S_IFLNK);
        // Followed, it stays in the root: /root/run/hosts does not exist.
        assert_eq!(
            child::openat2(root, c"etc/hosts", libc::O_PATH, in_root),
            Err(libc::ENOENT)
        );
        // `..` stops at the root.
        let up = child::openat2(root, c"evil/etc/passwd", libc::O_PATH, in_root).unwrap();
        assert_eq!(rec.path_of(up).as_deref(), Some("/root/etc/passwd"));
        // /proc/self/fd/<n> reaches the fd's path.
        let etc = child::openat2(root, c"etc", libc::O_PATH, in_root).unwrap();
        assert_eq!(
            child::mount(None, c"/proc/self/fd/1003", None, 0, None),
            Ok(())
        );
        assert_eq!(
            rec.records().last().unwrap().at.as_deref(),
            Some("/root/etc")
        );
        assert_eq!(etc, 1003);
        assert_eq!(child::mkdirat(root, c"etc", 0o755), Err(libc::EEXIST));
        assert_eq!(child::mkdir(c"/nope/x", 0o755), Err(libc::ENOENT));
        assert_eq!(
            child::mknodat(root, c"dev", libc::S_IFCHR | 0o666, 0),
            Ok(())
        );
        assert_eq!(
            rec.node("/root/dev"),
            Some(Node::Special(libc::S_IFCHR | 0o666))
        );
        // After pivot_root, `/` is the new root.
        assert_eq!(child::chdir(c"/root"), Ok(()));
        assert_eq!(child::pivot_root(c".", c"."), Ok(()));
        assert_eq!(
            child::stat_mode(c"/etc/passwd").unwrap() & libc::S_IFMT,
            libc::S_IFREG
        );
        assert_eq!(
            rec.records().last().unwrap().at.as_deref(),
            Some("/root/etc/passwd")
        );
        for fd in [root, fd, up, etc] {
            child::close(fd);
        }
        assert!(rec.open_fds().is_empty());
    }

    #[test]
    fn mounts_show_their_source_or_their_fill() {
        let rec = Recorder::new()
            .file("/img/etc/hosts")
            .file("/img-other/x")
            .dir("/root/old")
            .fill_on_mount("proc", &[("kcore", Node::File), ("sys/kernel", Node::Dir)])
            .leak();
        let _g = install(rec);
        assert_eq!(
            child::mount(Some(c"/img"), c"/root", None, libc::MS_BIND, None),
            Ok(())
        );
        assert_eq!(rec.node("/root/etc/hosts"), Some(Node::File));
        assert_eq!(rec.node("/root/old"), None);
        assert_eq!(rec.node("/root/x"), None);
        assert_eq!(child::mkdir(c"/root/proc", 0o555), Ok(()));
        assert_eq!(child::stat_mode(c"/root/proc/kcore"), Err(libc::ENOENT));
        assert_eq!(
            child::mount(Some(c"proc"), c"/root/proc", Some(c"proc"), 0, None),
            Ok(())
        );
        assert_eq!(rec.node("/root/proc/kcore"), Some(Node::File));
        assert_eq!(rec.node("/root/proc/sys/kernel"), Some(Node::Dir));
        // A tmpfs hides what was below; a propagation change does not.
        let flags = libc::MS_PRIVATE | libc::MS_REC;
        assert_eq!(child::mount(None, c"/root/proc", None, flags, None), Ok(()));
        assert_eq!(rec.node("/root/proc/kcore"), Some(Node::File));
        assert_eq!(
            child::mount(Some(c"tmpfs"), c"/root/proc/sys", Some(c"tmpfs"), 0, None),
            Ok(())
        );
        assert_eq!(rec.node("/root/proc/sys/kernel"), None);
        assert_eq!(
            child::mount(None, c"/nope", None, flags, None),
            Err(libc::ENOENT)
        );
    }

    #[test]
    fn a_new_mount_api_mount_shows_its_fill() {
        let rec = Recorder::new()
            .file("/root/old")
            .fill_on_mount("overlay", &[("etc/passwd", Node::File)])
            .leak();
        let _g = install(rec);
        let fs = child::fsopen(c"overlay", libc::FSOPEN_CLOEXEC).unwrap();
        let set = libc::FSCONFIG_SET_STRING;
        assert_eq!(
            child::fsconfig(fs, set, Some(c"source"), Some(c"overlay"), 0),
            Ok(())
        );
        assert_eq!(
            child::fsconfig(42, set, Some(c"a"), Some(c"b"), 0),
            Err(libc::EBADF)
        );
        let create = libc::FSCONFIG_CMD_CREATE;
        assert_eq!(child::fsconfig(fs, create, None, None, 0), Ok(()));
        let m = child::fsmount(fs, libc::FSMOUNT_CLOEXEC, MountAttr::RDONLY).unwrap();
        assert_eq!(child::fsmount(m, 0, MountAttr::empty()), Err(libc::EINVAL));
        // SAFETY: a number the fake handed out; no kernel call sees it.
        let fd = unsafe { BorrowedFd::borrow_raw(m) };
        let flags = libc::MOVE_MOUNT_F_EMPTY_PATH;
        assert_eq!(
            child::move_mount(fd, c"", libc::AT_FDCWD, c"/root", flags),
            Ok(())
        );
        assert_eq!(rec.node("/root/etc/passwd"), Some(Node::File));
        assert_eq!(rec.node("/root/old"), None);
        // What was sent is the fd's path.
        assert_eq!(child::send_fd(3, m), Ok(()));
        assert_eq!(child::send_fd(3, 77), Err(libc::EBADF));
        child::close(m);
        child::close(fs);
        assert!(rec.open_fds().is_empty());
        assert_eq!(rec.records()[7].at.as_deref(), Some("fsmount:overlay"));
    }

    #[test]
    fn execve_fails_as_the_model_says() {
        let rec = Recorder::new().file("/bin/sh").leak();
        let _g = install(rec);
        let argv = [c"sh".as_ptr(), c"-c".as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null()];
        // SAFETY: NULL-terminated arrays of C strings (the fake reads argv).
        let (found, missing) = unsafe {
            (
                child::execve(c"/bin/sh", &argv, &envp),
                child::execve(c"/bin/nope", &argv, &envp),
            )
        };
        assert_eq!((found, missing), (libc::ENOEXEC, libc::ENOENT));
        let sh = Call::Execve {
            path: "/bin/sh".into(),
            args: 2,
        };
        assert_eq!(rec.calls()[0], sh);
        assert_eq!(rec.records()[0].at.as_deref(), Some("/bin/sh"));
    }

    #[test]
    fn an_id_change_clears_the_parent_death_signal() {
        let rec = Recorder::new().leak();
        let _g = install(rec);
        assert_eq!(child::get_pdeathsig(), Ok(0));
        let set = [libc::SIGKILL as libc::c_ulong, 0, 0, 0];
        assert_eq!(child::prctl(libc::PR_SET_PDEATHSIG, set), Ok(0));
        assert_eq!(child::get_pdeathsig(), Ok(libc::SIGKILL));
        assert_eq!(child::setresuid(1, 1, 1), Ok(()));
        assert_eq!(child::get_pdeathsig(), Ok(0));
        let data = [CapData::default(); 2];
        assert_eq!(child::capset(&data), Ok(()));
        assert_eq!(rec.calls().last(), Some(&Call::Capset(data)));
    }

    #[test]
    fn a_scripted_errno_fails_only_the_matching_calls() {
        let rec = Recorder::new()
            .fail_when(
                libc::EPERM,
                |c| matches!(c, Call::Mkdir { path, .. } if path == "/a"),
            )
            .leak();
        let _g = install(rec);
        assert_eq!(child::mkdir(c"/a", 0o755), Err(libc::EPERM));
        assert_eq!(rec.node("/a"), None);
        assert_eq!(child::mkdir(c"/b", 0o755), Ok(()));
        let r = rec.records();
        assert_eq!((r[0].result, r[1].result), (Err(libc::EPERM), Ok(0)));
    }
}
