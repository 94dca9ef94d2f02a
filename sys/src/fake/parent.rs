//! The fake of the parent-side wrappers (files and directories, as cgroupfs uses them).
//!
//! A test installs a [`ParentKernel`] on its thread with [`install`] (an
//! RAII guard, [`Installed`]); while it is installed, each wrapper of
//! [`crate::fs`] listed in the trait (`open_dir`, `openat`, `open_subdir`,
//! `mkdirat`, `rmdirat`, `read_at`, `read_path`, `pread_all`, `write_at`,
//! `fs_type`, `inode`, `subdirs`) asks it first. The trait's default
//! methods call the real wrappers: inside a fake's method the fake is out
//! of the way (a call to a wrapper made from there reaches the kernel), so
//! a fake overrides only what it emulates. Other threads never see it.
//! Without the feature `fake` the wrappers are compiled exactly as before.
//!
//! [`CgroupFs`] is the fake berth-cgroups is tested on: a cgroup2
//! hierarchy emulated over a directory of ordinary files (so the fds it
//! returns are real ones), recording every call in order and failing the
//! calls a test scripts ([`CgroupFs::fail`]).
//!
//! # What [`CgroupFs`] emulates
//! From cgroups(7) and the kernel's Documentation/admin-guide/cgroup-v2.rst
//! (and where they are silent, kernel/cgroup/cgroup.c):
//! - `fstatfs(2)` of a directory inside it reports `CGROUP2_SUPER_MAGIC`.
//! - `mkdir` creates the interface files of a cgroup: the core ones
//!   (`cgroup.procs`, `cgroup.threads`, `cgroup.controllers`,
//!   `cgroup.subtree_control`, `cgroup.events`, `cgroup.freeze`,
//!   `cgroup.kill`, `cgroup.type`, `cgroup.max.*`, `cgroup.stat`,
//!   `cpu.stat`, the `*.pressure` files) and those of each controller its
//!   parent enabled (`cgroup.controllers` = the parent's
//!   `cgroup.subtree_control`):
//!   `cpu.{weight,max,idle}`, `cpuset.{cpus,mems}`, `io.{weight,max,stat}`,
//!   `memory.{min,low,high,max,swap.max,oom.group,current,events,stat}`,
//!   `pids.{max,current,events}`, `hugetlb.{2MB,1GB}.max`, with the
//!   kernel's defaults. The root (the mount) has no `cgroup.events`,
//!   `cgroup.freeze`, `cgroup.kill` or `cgroup.type`.
//! - `cgroup.subtree_control` takes space-separated `+name`/`-name`: a name
//!   the kernel does not know is `EINVAL`, enabling one missing from the
//!   group's `cgroup.controllers` `ENOENT`, enabling a domain controller
//!   (memory, io, hugetlb, rdma, misc) in a non-root group with processes
//!   `EBUSY` (no internal processes), disabling one a child group has in
//!   its own `cgroup.subtree_control` `EBUSY`. Enabling creates the
//!   controller's files in every child group, disabling removes them.
//! - `cgroup.procs`/`cgroup.threads` take a pid of a live process (`ESRCH`
//!   otherwise; `0` is the writer), `EBUSY` for a non-root group with a
//!   domain controller in its `cgroup.subtree_control`; the pid leaves the
//!   group it was in. A process that exited (or is a zombie) is no longer
//!   listed, and `cgroup.events` says `populated 1` while the group or a
//!   descendant lists one (recomputed when `cgroup.procs` or
//!   `cgroup.events` is read).
//! - `cgroup.freeze` takes 0/1 (`ERANGE` else) and `cgroup.events` says
//!   `frozen` at once; `cgroup.kill` takes 1 (`ERANGE` else) and empties the
//!   group and its descendants — **without signalling anything**. With
//!   [`CgroupFs::hold`] a group's freeze/kill writes are taken but never
//!   complete (tasks that do not stop).
//! - Limits are parsed as the kernel parses them, `EINVAL` (or `ERANGE`)
//!   for a bad value, and read back in the kernel's format:
//!   `memory.{min,low,high,max,swap.max}` and `hugetlb.<size>.max` `max` or
//!   bytes with an optional K/M/G/T suffix (rounded down to the page / the
//!   huge page size), `memory.oom.group` and `cpu.idle` 0/1, `pids.max`
//!   `max` or 0..4194304, `cpu.max` `"$MAX [$PERIOD]"` (quota ≥ 1000 µs,
//!   period 1000..=1000000 µs), `cpu.weight` 1..=10000 (`ERANGE`),
//!   `io.weight` `default N` / `MAJ:MIN N`, `io.max` `MAJ:MIN key=value..`
//!   (keys rbps/wbps/riops/wiops, `max` or a number; a device whose limits
//!   are all `max` is not listed), `cpuset.{cpus,mems}` lists (`0-3,5`).
//! - Files without a write operation (`cgroup.controllers`, `cgroup.events`,
//!   `cgroup.stat`, `*.current`, `*.stat`, `*.events`, `*.effective`) refuse
//!   a write with `EINVAL` (as for root); `cgroup.type` takes `threaded`
//!   only.
//! - `rmdir` of a group is `EBUSY` while it or a descendant lists a process
//!   or it has a child group; the group's interface files go with it.
//!
//! # What it does not
//! Processes are never moved, frozen or killed (`cgroup.procs` is a list of
//! pids; berth's pid-by-pid kill fallback signals them for real, so a test
//! writes only pids of processes it owns); no resource is enforced or
//! accounted (`memory.current`, stats stay 0); threaded mode
//! (`cgroup.type`), delegation and permissions (`nsdelegate`, file owners),
//! `cgroup.max.depth`/`descendants`, cpuset's subset-of-parent and
//! exclusivity rules, the existence of the `io.max` device (`ENODEV`),
//! kernfs notifications (`poll` on `cgroup.events` never wakes early),
//! inotify, cgroup v1. Calls outside its directory go to the kernel.

use std::cell::{Cell, RefCell};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::fs::{self, OFlag};

/// The parent-side file and directory calls a fake can answer (each a
/// wrapper of [`crate::fs`] of the same name). Every default method is the
/// real wrapper.
pub trait ParentKernel {
    /// [`crate::fs::open_dir`].
    fn open_dir(&self, path: &Path) -> io::Result<OwnedFd> {
        fs::open_dir(path)
    }
    /// [`crate::fs::openat`].
    fn openat(&self, dir: BorrowedFd<'_>, name: &OsStr, flags: OFlag) -> io::Result<OwnedFd> {
        fs::openat(dir, name, flags)
    }
    /// [`crate::fs::open_subdir`].
    fn open_subdir(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
        fs::open_subdir(dir, name)
    }
    /// [`crate::fs::mkdirat`].
    fn mkdirat(&self, dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()> {
        fs::mkdirat(dir, name, mode)
    }
    /// [`crate::fs::rmdirat`].
    fn rmdirat(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
        fs::rmdirat(dir, name)
    }
    /// [`crate::fs::read_at`].
    fn read_at(&self, dir: BorrowedFd<'_>, name: &OsStr, buf: &mut Vec<u8>) -> io::Result<()> {
        fs::read_at(dir, name, buf)
    }
    /// [`crate::fs::read_path`].
    fn read_path(&self, path: &Path, buf: &mut Vec<u8>) -> io::Result<()> {
        fs::read_path(path, buf)
    }
    /// [`crate::fs::pread_all`].
    fn pread_all(&self, fd: BorrowedFd<'_>, buf: &mut Vec<u8>) -> io::Result<()> {
        fs::pread_all(fd, buf)
    }
    /// [`crate::fs::write_at`].
    fn write_at(&self, dir: BorrowedFd<'_>, name: &OsStr, value: &[u8]) -> io::Result<()> {
        fs::write_at(dir, name, value)
    }
    /// [`crate::fs::fs_type`].
    fn fs_type(&self, fd: BorrowedFd<'_>) -> io::Result<i64> {
        fs::fs_type(fd)
    }
    /// [`crate::fs::inode`].
    fn inode(&self, fd: BorrowedFd<'_>) -> io::Result<u64> {
        fs::inode(fd)
    }
    /// [`crate::fs::subdirs`].
    fn subdirs(&self, dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
        fs::subdirs(dir)
    }
}

/// How many fakes are installed, on any thread: while none is, a wrapper
/// costs one atomic load and never touches the thread-locals (whose first
/// use registers a destructor, which may allocate).
static INSTALLED: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static FAKE: RefCell<Option<Rc<dyn ParentKernel>>> = const { RefCell::new(None) };
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

/// The guard of [`install`]: while it lives, the wrappers on this thread
/// ask the fake first; dropping it puts back what was installed before.
#[must_use = "the fake is uninstalled when the guard is dropped"]
pub struct Installed {
    prev: Option<Rc<dyn ParentKernel>>,
}

impl fmt::Debug for Installed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Installed").finish_non_exhaustive()
    }
}

/// Install `fake` on the calling thread until the returned guard is dropped.
pub fn install(fake: Rc<dyn ParentKernel>) -> Installed {
    let prev = FAKE.with(|f| f.borrow_mut().replace(fake));
    INSTALLED.fetch_add(1, Ordering::SeqCst);
    Installed { prev }
}

impl Drop for Installed {
    fn drop(&mut self) {
        let prev = self.prev.take();
        FAKE.with(|f| *f.borrow_mut() = prev);
        INSTALLED.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Run `call` on the fake installed on this thread, `None` when there is
/// none or when called from inside a fake's method (which then reaches the
/// kernel).
pub(crate) fn dispatch<R>(call: impl FnOnce(&dyn ParentKernel) -> R) -> Option<R> {
    if INSTALLED.load(Ordering::Relaxed) == 0 || BUSY.with(Cell::get) {
        return None;
    }
    let fake = FAKE.with(|f| f.borrow().clone())?;
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            BUSY.with(|b| b.set(false));
        }
    }
    BUSY.with(|b| b.set(true));
    let _reset = Reset;
    Some(call(&*fake))
}

/// A call of [`ParentKernel`], as [`CgroupFs`] records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `open_dir(path)`.
    OpenDir,
    /// `openat(dir, name, flags)`.
    OpenAt,
    /// `open_subdir(dir, name)`.
    OpenSubdir,
    /// `mkdirat(dir, name)`.
    Mkdir,
    /// `rmdirat(dir, name)`.
    Rmdir,
    /// `read_at(dir, name)`.
    Read,
    /// `read_path(path)`.
    ReadPath,
    /// `pread_all(fd)`.
    Pread,
    /// `write_at(dir, name, value)`.
    Write,
    /// `fs_type(fd)`.
    FsType,
    /// `inode(fd)`.
    Inode,
    /// `subdirs(dir)`.
    Subdirs,
}

/// One recorded call: its operation, the path it named (relative to the
/// fake's root, `""` for the root itself; absolute outside it), the value
/// of a write, and the errno it failed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The operation.
    pub op: Op,
    /// The path, relative to the root of the fake hierarchy.
    pub path: String,
    /// The value written ([`Op::Write`]).
    pub value: Option<String>,
    /// The errno returned, `None` on success.
    pub errno: Option<i32>,
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {}", self.op, self.path)?;
        if let Some(v) = &self.value {
            write!(f, " = {v:?}")?;
        }
        if let Some(e) = self.errno {
            write!(f, " -> {}", io::Error::from_raw_os_error(e))?;
        }
        Ok(())
    }
}

/// A scripted failure (see [`CgroupFs::fail`]).
#[derive(Debug)]
struct Rule {
    op: Op,
    path: String,
    errno: i32,
    times: Option<usize>,
}

/// Every controller name the emulated kernel knows (in `cgroup.subtree_control`).
const KNOWN: [&str; 8] = [
    "cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc",
];
/// Threaded controllers (cgroup-v2.rst "Threads"): exempt from the
/// no-internal-processes rule.
const THREADED: [&str; 3] = ["cpuset", "cpu", "pids"];
/// `PID_MAX_LIMIT` on 64-bit (`include/linux/threads.h`): `pids.max` < it.
const PID_MAX_LIMIT: i64 = 4 * 1024 * 1024;
/// The page size the memory limits are rounded to.
const PAGE: u64 = 4096;

/// The interface files of `controller` and their default content.
fn controller_files(controller: &str) -> &'static [(&'static str, &'static str)] {
    match controller {
        "cpu" => &[
            ("cpu.weight", "100"),
            ("cpu.weight.nice", "0"),
            ("cpu.max", "max 100000"),
            ("cpu.idle", "0"),
        ],
        "cpuset" => &[
            ("cpuset.cpus", ""),
            ("cpuset.mems", ""),
            ("cpuset.cpus.effective", ""),
            ("cpuset.mems.effective", ""),
        ],
        "io" => &[
            ("io.weight", "default 100"),
            ("io.max", ""),
            ("io.stat", ""),
        ],
        "memory" => &[
            ("memory.min", "0"),
            ("memory.low", "0"),
            ("memory.high", "max"),
            ("memory.max", "max"),
            ("memory.swap.max", "max"),
            ("memory.oom.group", "0"),
            ("memory.current", "0"),
            (
                "memory.events",
                "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0",
            ),
            ("memory.stat", ""),
        ],
        "pids" => &[
            ("pids.max", "max"),
            ("pids.current", "0"),
            ("pids.events", "max 0"),
        ],
        "hugetlb" => &[
            ("hugetlb.2MB.max", "max"),
            ("hugetlb.1GB.max", "max"),
            ("hugetlb.2MB.current", "0"),
            ("hugetlb.1GB.current", "0"),
        ],
        _ => &[],
    }
}

/// The core interface files of a non-root cgroup and their default content
/// (`cgroup.controllers` is written separately).
const CORE_FILES: [(&str, &str); 14] = [
    ("cgroup.procs", ""),
    ("cgroup.threads", ""),
    ("cgroup.subtree_control", ""),
    ("cgroup.events", "populated 0\nfrozen 0"),
    ("cgroup.freeze", "0"),
    ("cgroup.kill", ""),
    ("cgroup.type", "domain"),
    ("cgroup.max.depth", "max"),
    ("cgroup.max.descendants", "max"),
    ("cgroup.stat", "nr_descendants 0\nnr_dying_descendants 0"),
    ("cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0"),
    ("cpu.pressure", PSI),
    ("memory.pressure", PSI),
    ("io.pressure", PSI),
];

/// A pressure file (PSI, Documentation/accounting/psi.rst) of a group that
/// never stalled.
const PSI: &str = "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n\
                   full avg10=0.00 avg60=0.00 avg300=0.00 total=0";

fn err(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

/// Write `text` (plus a newline unless empty) as the whole content of `path`.
fn put(path: &Path, text: &str) -> io::Result<()> {
    let t = text.trim_end();
    if t.is_empty() {
        std::fs::write(path, "")
    } else {
        std::fs::write(path, format!("{t}\n"))
    }
}

fn get(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The kernel's `memparse()`: a number with an optional K/M/G/T/P/E suffix.
fn memparse(s: &str) -> Option<u64> {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let n: u64 = digits.parse().ok()?;
    let shift = match &s[digits.len()..] {
        "" => 0,
        "k" | "K" => 10,
        "m" | "M" => 20,
        "g" | "G" => 30,
        "t" | "T" => 40,
        "p" | "P" => 50,
        "e" | "E" => 60,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

/// `max` or bytes rounded down to `unit` (`page_counter_memparse`).
fn bytes_or_max(v: &str, unit: u64) -> io::Result<String> {
    if v == "max" {
        return Ok("max".into());
    }
    let b = memparse(v).ok_or_else(|| err(libc::EINVAL))?;
    Ok((b / unit * unit).to_string())
}

fn zero_or_one(v: &str) -> io::Result<String> {
    match v.parse::<i64>() {
        Ok(n @ (0 | 1)) => Ok(n.to_string()),
        _ => Err(err(libc::EINVAL)),
    }
}

/// A cpuset list (`0-3,5`), empty allowed.
fn cpu_list(v: &str) -> io::Result<String> {
    for part in v.split(',').filter(|_| !v.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        match (a.parse::<u32>(), b.parse::<u32>()) {
            (Ok(a), Ok(b)) if a <= b => {}
            _ => return Err(err(libc::EINVAL)),
        }
    }
    Ok(v.to_string())
}

/// `MAJ:MIN`, as the io controller parses it.
fn device(v: &str) -> io::Result<(u32, u32)> {
    let (a, b) = v.split_once(':').ok_or_else(|| err(libc::EINVAL))?;
    match (a.parse(), b.parse()) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        _ => Err(err(libc::EINVAL)),
    }
}

/// `cpu.max`: `"$MAX [$PERIOD]"` (cpu_period_quota_parse, tg_set_cfs_bandwidth).
fn cpu_max(v: &str, old: &str) -> io::Result<String> {
    let mut it = v.split_whitespace();
    let quota = it.next().ok_or_else(|| err(libc::EINVAL))?;
    let old_period = old.split_whitespace().nth(1).unwrap_or("100000");
    let period: u64 = it
        .next()
        .unwrap_or(old_period)
        .parse()
        .map_err(|_| err(libc::EINVAL))?;
    if it.next().is_some() || !(1000..=1_000_000).contains(&period) {
        return Err(err(libc::EINVAL));
    }
    if quota != "max" {
        let q: u64 = quota.parse().map_err(|_| err(libc::EINVAL))?;
        if q < 1000 {
            return Err(err(libc::EINVAL));
        }
    }
    Ok(format!("{quota} {period}"))
}

fn weight(v: &str) -> io::Result<u64> {
    let w: u64 = v.parse().map_err(|_| err(libc::EINVAL))?;
    if !(1..=10000).contains(&w) {
        return Err(err(libc::ERANGE));
    }
    Ok(w)
}

/// `io.weight`: `default N` or `MAJ:MIN N` (`MAJ:MIN default` drops the override).
fn io_weight(v: &str, old: &str) -> io::Result<String> {
    let mut lines: Vec<String> = old.lines().map(str::to_string).collect();
    let (key, val) = v.split_once(' ').unwrap_or(("default", v));
    let val = val.trim();
    if key == "default" {
        let w = weight(val)?;
        lines.retain(|l| !l.starts_with("default "));
        lines.insert(0, format!("default {w}"));
    } else {
        device(key)?;
        lines.retain(|l| !l.starts_with(&format!("{key} ")));
        if val != "default" {
            lines.push(format!("{key} {}", weight(val)?));
        }
    }
    Ok(lines.join("\n"))
}

/// `io.max`: `MAJ:MIN key=value ..`, merged into the device's line.
fn io_max(v: &str, old: &str) -> io::Result<String> {
    const KEYS: [&str; 4] = ["rbps", "wbps", "riops", "wiops"];
    let mut it = v.split_whitespace();
    let dev = it.next().ok_or_else(|| err(libc::EINVAL))?;
    device(dev)?;
    let mut lines: Vec<String> = old.lines().map(str::to_string).collect();
    let prefix = format!("{dev} ");
    let mut vals: Vec<String> = match lines.iter().position(|l| l.starts_with(&prefix)) {
        Some(i) => lines.remove(i)[prefix.len()..]
            .split(' ')
            .map(|kv| kv.split_once('=').map_or("max", |(_, v)| v).to_string())
            .collect(),
        None => vec!["max".to_string(); 4],
    };
    for kv in it {
        let (k, x) = kv.split_once('=').ok_or_else(|| err(libc::EINVAL))?;
        let i = KEYS
            .iter()
            .position(|key| *key == k)
            .ok_or_else(|| err(libc::EINVAL))?;
        if x != "max" {
            x.parse::<u64>().map_err(|_| err(libc::EINVAL))?;
        }
        vals[i] = x.to_string();
    }
    if vals.iter().any(|x| x != "max") {
        let kvs: Vec<String> = KEYS
            .iter()
            .zip(&vals)
            .map(|(k, x)| format!("{k}={x}"))
            .collect();
        lines.push(format!("{dev} {}", kvs.join(" ")));
    }
    Ok(lines.join("\n"))
}

/// A file without a write handler: `cgroup_file_write` answers `EINVAL`
/// (for root; others get `EACCES` from the file's mode, not emulated).
fn read_only(file: &str) -> bool {
    matches!(file, "cgroup.controllers" | "cgroup.events" | "cgroup.stat")
        || [".current", ".stat", ".events", ".effective"]
            .iter()
            .any(|s| file.ends_with(s))
}

/// The huge page size named in `hugetlb.<size>.max`, in bytes.
fn huge_page_size(file: &str) -> Option<u64> {
    let size = file.strip_prefix("hugetlb.")?.strip_suffix(".max")?;
    memparse(size.strip_suffix('B')?)
}

/// The value a limit file shows after `v` is written, as the kernel parses
/// it; `None` for a file without emulated parsing (stored as written).
fn parse_limit(file: &str, v: &str, old: &str) -> Option<io::Result<String>> {
    Some(match file {
        "memory.min" | "memory.low" | "memory.high" | "memory.max" | "memory.swap.max" => {
            bytes_or_max(v, PAGE)
        }
        "memory.oom.group" | "cpu.idle" => zero_or_one(v),
        "pids.max" => match v {
            "max" => Ok("max".into()),
            _ => match v.parse::<i64>() {
                Ok(n) if (0..PID_MAX_LIMIT).contains(&n) => Ok(n.to_string()),
                _ => Err(err(libc::EINVAL)),
            },
        },
        "cpu.max" => cpu_max(v, old),
        "cpu.weight" => weight(v).map(|w| w.to_string()),
        "cpuset.cpus" | "cpuset.mems" => cpu_list(v),
        "io.weight" => io_weight(v, old),
        "io.max" => io_max(v, old),
        _ => match huge_page_size(file) {
            Some(size) => bytes_or_max(v, size),
            None => return None,
        },
    })
}

/// A cgroup2 hierarchy emulated over a directory of ordinary files (see
/// the [module](self) documentation for what is emulated): install it with
/// [`CgroupFs::install`], point the code under test at [`CgroupFs::root`]
/// as the cgroup2 mount, then check [`CgroupFs::calls`] and the files.
/// The directory is removed on drop.
///
/// ```
/// use std::os::fd::AsFd;
/// use berth_sys::fake::parent::{CgroupFs, Op};
/// let fake = CgroupFs::new("cpu memory pids").unwrap();
/// let _on = fake.install();
/// let root = berth_sys::fs::open_dir(fake.root()).unwrap();
/// assert_eq!(berth_sys::fs::fs_type(root.as_fd()).unwrap(), berth_sys::magic::CGROUP2_SUPER_MAGIC);
/// fake.fail(Op::Mkdir, "job", libc::EACCES);
/// let e = berth_sys::fs::mkdirat(root.as_fd(), "job".as_ref(), 0o755).unwrap_err();
/// assert_eq!(e.raw_os_error(), Some(libc::EACCES));
/// assert_eq!(fake.calls()[2].to_string(), "Mkdir job -> Permission denied (os error 13)");
/// ```
#[derive(Debug)]
pub struct CgroupFs {
    root: PathBuf,
    calls: RefCell<Vec<Call>>,
    rules: RefCell<Vec<Rule>>,
    held: RefCell<Vec<PathBuf>>,
}

impl CgroupFs {
    /// A fresh hierarchy in a new directory under `std::env::temp_dir()`,
    /// whose root offers `controllers` (space-separated, as in
    /// `cgroup.controllers`) and enables none.
    pub fn new(controllers: &str) -> io::Result<Rc<CgroupFs>> {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir =
            std::env::temp_dir().join(format!("berth-fakecg-{}-{seq}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir)?;
        let root = dir.canonicalize()?;
        for (f, v) in [
            ("cgroup.procs", ""),
            ("cgroup.threads", ""),
            ("cgroup.subtree_control", ""),
            ("cgroup.max.depth", "max"),
            ("cgroup.max.descendants", "max"),
            ("cgroup.stat", "nr_descendants 0\nnr_dying_descendants 0"),
            ("cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0"),
            ("cgroup.controllers", controllers),
        ] {
            put(&root.join(f), v)?;
        }
        Ok(Rc::new(CgroupFs {
            root,
            calls: RefCell::default(),
            rules: RefCell::default(),
            held: RefCell::default(),
        }))
    }

    /// Install it on the calling thread (see [`install`]).
    pub fn install(self: &Rc<Self>) -> Installed {
        install(self.clone())
    }

    /// The directory standing for the cgroup2 mount.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every call made so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }

    /// Forget the calls recorded so far.
    pub fn clear_calls(&self) {
        self.calls.borrow_mut().clear();
    }

    /// The successful writes so far, as `(path, value)`.
    pub fn writes(&self) -> Vec<(String, String)> {
        self.calls
            .borrow()
            .iter()
            .filter(|c| c.op == Op::Write && c.errno.is_none())
            .map(|c| (c.path.clone(), c.value.clone().unwrap_or_default()))
            .collect()
    }

    /// Fail every call `op` on `path` with `errno` (before it does
    /// anything). `path` is relative to the root, and matches a call's path
    /// equal to it or ending in `/path`.
    pub fn fail(&self, op: Op, path: &str, errno: i32) {
        self.fail_times(op, path, errno, usize::MAX);
    }

    /// Like [`fail`](Self::fail) for the next `times` matching calls only.
    pub fn fail_times(&self, op: Op, path: &str, errno: i32, times: usize) {
        self.rules.borrow_mut().push(Rule {
            op,
            path: path.to_string(),
            errno,
            times: (times != usize::MAX).then_some(times),
        });
    }

    /// From now on, writes to `cgroup.freeze` and `cgroup.kill` of the group
    /// `rel` are taken but never complete (`cgroup.events` does not change).
    pub fn hold(&self, rel: &str) {
        self.held.borrow_mut().push(self.root.join(rel));
    }

    /// Create the group `rel` as `mkdir(2)` would (its parent must exist);
    /// not recorded.
    pub fn mkdir(&self, rel: &str) -> io::Result<()> {
        self.make_cgroup(&self.root.join(rel))
    }

    /// Write `value` to the interface file `rel` as `write(2)` would (the
    /// kernel's rules apply); not recorded.
    pub fn write(&self, rel: &str, value: &str) -> io::Result<()> {
        self.write_file(&self.root.join(rel), value.as_bytes())
    }

    /// The content of the interface file `rel` (empty when absent).
    pub fn read(&self, rel: &str) -> String {
        let p = self.root.join(rel);
        self.refresh_for(&p);
        get(&p)
    }

    /// Every group below the root (relative paths, sorted).
    pub fn groups(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.walk(&self.root, &mut |p| out.push(self.rel(p)));
        out.retain(|p| !p.is_empty());
        out.sort();
        out
    }

    fn walk(&self, dir: &Path, f: &mut dyn FnMut(&Path)) {
        f(dir);
        for d in child_groups(dir) {
            self.walk(&d, f);
        }
    }

    fn rel(&self, p: &Path) -> String {
        match p.strip_prefix(&self.root) {
            Ok(r) => r.to_string_lossy().into_owned(),
            Err(_) => p.to_string_lossy().into_owned(),
        }
    }

    fn inside(&self, p: &Path) -> bool {
        p.starts_with(&self.root)
    }

    fn is_group(p: &Path) -> bool {
        p.join("cgroup.procs").is_file()
    }

    /// Record the call, apply a scripted failure or run `f`, note the errno.
    fn run<T>(
        &self,
        op: Op,
        path: &Path,
        value: Option<&[u8]>,
        f: impl FnOnce() -> io::Result<T>,
    ) -> io::Result<T> {
        let rel = self.rel(path);
        let scripted = self.scripted(op, &rel);
        let idx = {
            let mut calls = self.calls.borrow_mut();
            calls.push(Call {
                op,
                path: rel,
                value: value.map(|v| String::from_utf8_lossy(v).into_owned()),
                errno: None,
            });
            calls.len() - 1
        };
        let r = match scripted {
            Some(e) => Err(err(e)),
            None => f(),
        };
        if let Err(e) = &r {
            self.calls.borrow_mut()[idx].errno = Some(e.raw_os_error().unwrap_or(libc::EIO));
        }
        r
    }

    fn scripted(&self, op: Op, rel: &str) -> Option<i32> {
        let mut rules = self.rules.borrow_mut();
        let r = rules.iter_mut().find(|r| {
            r.op == op
                && r.times != Some(0)
                && (rel == r.path || rel.ends_with(&format!("/{}", r.path)))
        })?;
        if let Some(t) = &mut r.times {
            *t -= 1;
        }
        Some(r.errno)
    }

    /// `mkdir(2)` in cgroupfs: the directory and its interface files.
    fn make_cgroup(&self, p: &Path) -> io::Result<()> {
        let parent = p.parent().ok_or_else(|| err(libc::EEXIST))?;
        if !Self::is_group(parent) {
            return std::fs::create_dir(p);
        }
        std::fs::create_dir(p)?;
        for (f, v) in CORE_FILES {
            put(&p.join(f), v)?;
        }
        let controllers = get(&parent.join("cgroup.subtree_control"));
        put(&p.join("cgroup.controllers"), &controllers)?;
        for c in controllers.split_whitespace() {
            for (f, v) in controller_files(c) {
                put(&p.join(f), v)?;
            }
        }
        Ok(())
    }

    /// `rmdir(2)` in cgroupfs (cgroup_destroy_locked): `EBUSY` while
    /// populated or with a child group.
    fn remove_cgroup(&self, p: &Path) -> io::Result<()> {
        if !self.inside(p) || !Self::is_group(p) || p == self.root {
            return std::fs::remove_dir(p);
        }
        self.refresh();
        if !child_groups(p).is_empty() || populated(p) {
            return Err(err(libc::EBUSY));
        }
        for e in std::fs::read_dir(p)? {
            std::fs::remove_file(e?.path())?;
        }
        std::fs::remove_dir(p)
    }

    /// `write(2)` of `value` to the interface file `p`.
    fn write_file(&self, p: &Path, value: &[u8]) -> io::Result<()> {
        let dir = p.parent().unwrap_or(p);
        if !Self::is_group(dir) {
            return std::fs::write(p, value);
        }
        if !p.is_file() {
            return Err(err(libc::ENOENT));
        }
        let v = String::from_utf8_lossy(value);
        let v = v.trim();
        let name = p
            .file_name()
            .map(OsStr::to_string_lossy)
            .unwrap_or_default();
        match &*name {
            "cgroup.subtree_control" => self.subtree_control(dir, v),
            "cgroup.procs" | "cgroup.threads" => self.attach(dir, v),
            "cgroup.freeze" => {
                let n: i64 = v.parse().map_err(|_| err(libc::EINVAL))?;
                if !(0..=1).contains(&n) {
                    return Err(err(libc::ERANGE));
                }
                put(p, &n.to_string())?;
                if !self.held.borrow().iter().any(|h| h == dir) {
                    let ev = get(&dir.join("cgroup.events"));
                    set_event(&dir.join("cgroup.events"), &ev, "frozen", n == 1)?;
                }
                Ok(())
            }
            "cgroup.kill" => {
                if v.parse::<i64>().map_err(|_| err(libc::EINVAL))? != 1 {
                    return Err(err(libc::ERANGE));
                }
                if !self.held.borrow().iter().any(|h| h == dir) {
                    self.walk(dir, &mut |g| {
                        let _ = put(&g.join("cgroup.procs"), "");
                        let _ = put(&g.join("cgroup.threads"), "");
                    });
                    self.refresh();
                }
                Ok(())
            }
            // Threaded mode itself is not emulated, only the value.
            "cgroup.type" if v == "threaded" => put(p, v),
            "cgroup.type" => Err(err(libc::EINVAL)),
            _ if read_only(&name) => Err(err(libc::EINVAL)),
            _ => {
                let shown = match parse_limit(&name, v, get(p).trim_end()) {
                    Some(r) => r?,
                    None => v.to_string(),
                };
                put(p, &shown)
            }
        }
    }

    /// `cgroup.subtree_control` (cgroup_subtree_control_write).
    fn subtree_control(&self, dir: &Path, v: &str) -> io::Result<()> {
        let mut enable = Vec::new();
        let mut disable = Vec::new();
        for tok in v.split(' ').filter(|t| !t.is_empty()) {
            let (sign, name) = tok.split_at(1);
            if !KNOWN.contains(&name) {
                return Err(err(libc::EINVAL));
            }
            match sign {
                "+" => {
                    disable.retain(|d| *d != name);
                    enable.push(name);
                }
                "-" => {
                    enable.retain(|e| *e != name);
                    disable.push(name);
                }
                _ => return Err(err(libc::EINVAL)),
            }
        }
        let have = get(&dir.join("cgroup.controllers"));
        let have: Vec<&str> = have.split_whitespace().collect();
        let on = get(&dir.join("cgroup.subtree_control"));
        let mut on: Vec<String> = on.split_whitespace().map(str::to_string).collect();
        let children = child_groups(dir);
        enable.retain(|c| !on.iter().any(|o| o == c));
        if enable.iter().any(|c| !have.contains(c)) {
            return Err(err(libc::ENOENT));
        }
        disable.retain(|c| on.iter().any(|o| o == c));
        for c in &disable {
            let used = children.iter().any(|ch| {
                get(&ch.join("cgroup.subtree_control"))
                    .split_whitespace()
                    .any(|x| x == *c)
            });
            if used {
                return Err(err(libc::EBUSY));
            }
        }
        let domain = enable.iter().any(|c| !THREADED.contains(c));
        if domain && dir != self.root && !get(&dir.join("cgroup.procs")).trim().is_empty() {
            return Err(err(libc::EBUSY));
        }
        on.retain(|o| !disable.contains(&o.as_str()));
        on.extend(enable.iter().map(|c| c.to_string()));
        // The kernel lists them in its own order.
        on.sort_by_key(|o| KNOWN.iter().position(|k| k == o));
        put(&dir.join("cgroup.subtree_control"), &on.join(" "))?;
        for ch in &children {
            put(&ch.join("cgroup.controllers"), &on.join(" "))?;
            for c in &enable {
                for (f, v) in controller_files(c) {
                    put(&ch.join(f), v)?;
                }
            }
            for c in &disable {
                for (f, _) in controller_files(c) {
                    let _ = std::fs::remove_file(ch.join(f));
                }
            }
        }
        Ok(())
    }

    /// `cgroup.procs` (cgroup_procs_write, cgroup_migrate_vet_dst).
    fn attach(&self, dir: &Path, v: &str) -> io::Result<()> {
        let pid: u32 = v.parse().map_err(|_| err(libc::EINVAL))?;
        let pid = if pid == 0 { std::process::id() } else { pid };
        if !alive(pid) {
            return Err(err(libc::ESRCH));
        }
        let domain_on = get(&dir.join("cgroup.subtree_control"))
            .split_whitespace()
            .any(|c| !THREADED.contains(&c));
        if dir != self.root && domain_on {
            return Err(err(libc::EBUSY));
        }
        let pid_s = pid.to_string();
        self.walk(&self.root, &mut |g| {
            for f in ["cgroup.procs", "cgroup.threads"] {
                let old = get(&g.join(f));
                let mut ids: Vec<&str> = old.lines().filter(|l| *l != pid_s).collect();
                if g == dir {
                    ids.push(&pid_s);
                }
                let _ = put(&g.join(f), &ids.join("\n"));
            }
        });
        self.refresh();
        Ok(())
    }

    /// Refresh membership when `p` is a file whose content depends on it.
    fn refresh_for(&self, p: &Path) {
        let name = p.file_name().unwrap_or_default();
        if self.inside(p) && (name == "cgroup.procs" || name == "cgroup.events") {
            self.refresh();
        }
    }

    /// Drop exited processes from every group and recompute `populated`.
    fn refresh(&self) {
        fn visit(g: &Path) -> bool {
            let mut any = false;
            for f in ["cgroup.procs", "cgroup.threads"] {
                let old = get(&g.join(f));
                let ids: Vec<&str> = old.lines().filter(|l| l.parse().is_ok_and(alive)).collect();
                any |= !ids.is_empty();
                if ids.len() != old.lines().count() {
                    let _ = put(&g.join(f), &ids.join("\n"));
                }
            }
            for ch in child_groups(g) {
                any |= visit(&ch);
            }
            let ev = g.join("cgroup.events");
            if ev.is_file() {
                let _ = set_event(&ev, &get(&ev), "populated", any);
            }
            any
        }
        visit(&self.root);
    }

    fn path_at(&self, dir: BorrowedFd<'_>, name: &OsStr) -> PathBuf {
        let base = fd_path(dir);
        match name.as_bytes() {
            b"." => base,
            b".." => base.parent().map(Path::to_path_buf).unwrap_or(base),
            _ => base.join(name),
        }
    }
}

impl Drop for CgroupFs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The child groups of `dir` (subdirectories with a `cgroup.procs`), sorted.
fn child_groups(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir() && CgroupFs::is_group(p))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Whether `g` or a descendant lists a process (after a refresh).
fn populated(g: &Path) -> bool {
    get(&g.join("cgroup.events"))
        .lines()
        .any(|l| l == "populated 1")
}

/// Set `key` (`populated`/`frozen`) to `on` in the `cgroup.events` at `p`
/// whose content is `old`.
fn set_event(p: &Path, old: &str, key: &str, on: bool) -> io::Result<()> {
    let mut state = ["populated", "frozen"].map(|k| {
        let line = old
            .lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix(' '));
        (k, line == Some("1"))
    });
    for (k, v) in &mut state {
        if *k == key {
            *v = on;
        }
    }
    let [(_, populated), (_, frozen)] = state;
    put(
        p,
        &format!("populated {}\nfrozen {}", populated as u8, frozen as u8),
    )
}

/// A live process (not a zombie): what the kernel lists in `cgroup.procs`.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
    })
}

/// The path `fd` was opened at (`/proc/self/fd/N`, proc(5)).
fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
    match std::fs::read_link(&link) {
        Ok(p) => {
            let b = p.as_os_str().as_bytes();
            match b.strip_suffix(b" (deleted)") {
                Some(b) => PathBuf::from(OsStr::from_bytes(b)),
                None => p,
            }
        }
        Err(_) => PathBuf::from(link),
    }
}

impl ParentKernel for CgroupFs {
    fn open_dir(&self, path: &Path) -> io::Result<OwnedFd> {
        self.run(Op::OpenDir, path, None, || fs::open_dir(path))
    }
    fn openat(&self, dir: BorrowedFd<'_>, name: &OsStr, flags: OFlag) -> io::Result<OwnedFd> {
        let p = self.path_at(dir, name);
        self.run(Op::OpenAt, &p, None, || fs::openat(dir, name, flags))
    }
    fn open_subdir(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
        let p = self.path_at(dir, name);
        self.run(Op::OpenSubdir, &p, None, || fs::open_subdir(dir, name))
    }
    fn mkdirat(&self, dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()> {
        let p = self.path_at(dir, name);
        if !self.inside(&p) {
            return self.run(Op::Mkdir, &p, None, || fs::mkdirat(dir, name, mode));
        }
        self.run(Op::Mkdir, &p, None, || self.make_cgroup(&p))
    }
    fn rmdirat(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
        let p = self.path_at(dir, name);
        self.run(Op::Rmdir, &p, None, || self.remove_cgroup(&p))
    }
    fn read_at(&self, dir: BorrowedFd<'_>, name: &OsStr, buf: &mut Vec<u8>) -> io::Result<()> {
        let p = self.path_at(dir, name);
        self.refresh_for(&p);
        self.run(Op::Read, &p, None, || fs::read_at(dir, name, buf))
    }
    fn read_path(&self, path: &Path, buf: &mut Vec<u8>) -> io::Result<()> {
        self.refresh_for(path);
        self.run(Op::ReadPath, path, None, || fs::read_path(path, buf))
    }
    fn pread_all(&self, fd: BorrowedFd<'_>, buf: &mut Vec<u8>) -> io::Result<()> {
        let p = fd_path(fd);
        self.refresh_for(&p);
        self.run(Op::Pread, &p, None, || fs::pread_all(fd, buf))
    }
    fn write_at(&self, dir: BorrowedFd<'_>, name: &OsStr, value: &[u8]) -> io::Result<()> {
        let p = self.path_at(dir, name);
        if !self.inside(&p) {
            return self.run(Op::Write, &p, Some(value), || {
                fs::write_at(dir, name, value)
            });
        }
        self.run(Op::Write, &p, Some(value), || self.write_file(&p, value))
    }
    fn fs_type(&self, fd: BorrowedFd<'_>) -> io::Result<i64> {
        let p = fd_path(fd);
        if self.inside(&p) {
            return self.run(Op::FsType, &p, None, || {
                Ok(crate::magic::CGROUP2_SUPER_MAGIC)
            });
        }
        self.run(Op::FsType, &p, None, || fs::fs_type(fd))
    }
    fn inode(&self, fd: BorrowedFd<'_>) -> io::Result<u64> {
        self.run(Op::Inode, &fd_path(fd), None, || fs::inode(fd))
    }
    fn subdirs(&self, dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
        self.run(Op::Subdirs, &fd_path(dir), None, || fs::subdirs(dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn os(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    #[test]
    fn wrappers_ask_the_installed_fake_and_only_on_this_thread() {
        let fake = CgroupFs::new("cpu memory pids").unwrap();
        let root = fs::open_dir(fake.root()).unwrap();
        assert_ne!(
            fs::fs_type(root.as_fd()).unwrap(),
            crate::magic::CGROUP2_SUPER_MAGIC
        );
        {
            let _on = fake.install();
            assert_eq!(
                fs::fs_type(root.as_fd()).unwrap(),
                crate::magic::CGROUP2_SUPER_MAGIC
            );
            let r = fake.root().to_path_buf();
            let other = std::thread::spawn(move || {
                let d = fs::open_dir(&r).unwrap();
                fs::fs_type(d.as_fd()).unwrap()
            });
            assert_ne!(other.join().unwrap(), crate::magic::CGROUP2_SUPER_MAGIC);
            // Outside its directory it is the kernel.
            let slash = fs::open_dir(Path::new("/")).unwrap();
            assert_ne!(
                fs::fs_type(slash.as_fd()).unwrap(),
                crate::magic::CGROUP2_SUPER_MAGIC
            );
        }
        assert_ne!(
            fs::fs_type(root.as_fd()).unwrap(),
            crate::magic::CGROUP2_SUPER_MAGIC
        );
        let ops: Vec<Op> = fake.calls().iter().map(|c| c.op).collect();
        assert_eq!(ops, [Op::FsType, Op::OpenDir, Op::FsType]);
    }

    #[test]
    fn mkdir_makes_a_cgroup_with_the_parents_controllers() {
        let fake = CgroupFs::new("cpu io memory pids").unwrap();
        let _on = fake.install();
        let root = fs::open_dir(fake.root()).unwrap();
        let r = root.as_fd();
        fs::write_at(r, os("cgroup.subtree_control"), b"+memory +pids").unwrap();
        fs::mkdirat(r, os("a"), 0o755).unwrap();
        assert_eq!(fake.read("a/cgroup.controllers"), "memory pids\n");
        assert_eq!(fake.read("a/memory.max"), "max\n");
        assert_eq!(fake.read("a/cgroup.events"), "populated 0\nfrozen 0\n");
        assert!(!fake.root().join("a/cpu.max").exists());
        // Enabling later creates the files in existing children.
        fs::write_at(r, os("cgroup.subtree_control"), b"+cpu").unwrap();
        assert_eq!(fake.read("a/cpu.max"), "max 100000\n");
        assert_eq!(fake.read("cgroup.subtree_control"), "cpu memory pids\n");
        let e = fs::mkdirat(r, os("a"), 0o755).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fake.groups(), ["a"]);
    }

    #[test]
    fn subtree_control_follows_the_kernels_rules() {
        let fake = CgroupFs::new("cpu io memory pids").unwrap();
        let _on = fake.install();
        let root = fs::open_dir(fake.root()).unwrap();
        let r = root.as_fd();
        let w = |v: &str| fs::write_at(r, os("cgroup.subtree_control"), v.as_bytes());
        let errno = |v: &str| w(v).unwrap_err().raw_os_error().unwrap();
        assert_eq!(errno("+nosuch"), libc::EINVAL);
        assert_eq!(errno("memory"), libc::EINVAL);
        assert_eq!(errno("+hugetlb"), libc::ENOENT); // known, not offered
        w("+memory +cpu").unwrap();
        fs::mkdirat(r, os("a"), 0o755).unwrap();
        let a = fs::open_subdir(r, os("a")).unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        fs::write_at(
            a.as_fd(),
            os("cgroup.procs"),
            child.id().to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(fake.read("a/cgroup.events"), "populated 1\nfrozen 0\n");
        let ea = |v: &str| {
            fs::write_at(a.as_fd(), os("cgroup.subtree_control"), v.as_bytes())
                .unwrap_err()
                .raw_os_error()
        };
        assert_eq!(ea("+memory"), Some(libc::EBUSY)); // internal process
        assert_eq!(ea("+io"), Some(libc::ENOENT));
        fs::write_at(a.as_fd(), os("cgroup.subtree_control"), b"+cpu").unwrap(); // threaded
        assert_eq!(errno("-cpu"), libc::EBUSY); // a child uses it
        let rm = fs::rmdirat(r, os("a")).unwrap_err();
        assert_eq!(rm.raw_os_error(), Some(libc::EBUSY));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(fake.read("a/cgroup.events"), "populated 0\nfrozen 0\n");
        fs::write_at(a.as_fd(), os("cgroup.subtree_control"), b"-cpu").unwrap();
        w("-cpu").unwrap();
        assert!(!fake.root().join("a/cpu.max").exists());
        fs::rmdirat(r, os("a")).unwrap();
        assert!(fake.groups().is_empty());
        let e = fs::write_at(r, os("cgroup.procs"), b"999999999").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ESRCH));
    }

    #[test]
    fn limits_are_parsed_and_shown_as_the_kernel_does() {
        let fake = CgroupFs::new("cpu cpuset io memory pids hugetlb").unwrap();
        fake.write(
            "cgroup.subtree_control",
            "+cpu +cpuset +io +memory +pids +hugetlb",
        )
        .unwrap();
        fake.mkdir("a").unwrap();
        for (file, value, shown) in [
            ("memory.max", "1G", "1073741824"),
            ("memory.high", "12345", "12288"),
            ("memory.low", "max", "max"),
            ("pids.max", "64", "64"),
            ("cpu.max", "50000", "50000 100000"),
            ("cpu.max", "max 20000", "max 20000"),
            ("cpu.weight", "200", "200"),
            ("cpu.idle", "1", "1"),
            ("cpuset.cpus", "0-1,3", "0-1,3"),
            ("io.weight", "default 50", "default 50"),
            ("io.weight", "8:0 70", "default 50\n8:0 70"),
            (
                "io.max",
                "8:0 wbps=1024",
                "8:0 rbps=max wbps=1024 riops=max wiops=max",
            ),
            ("io.max", "8:0 wbps=max", ""),
            ("hugetlb.2MB.max", "3M", "2097152"),
            ("memory.oom.group", "1", "1"),
        ] {
            fake.write(&format!("a/{file}"), value).unwrap();
            assert_eq!(fake.read(&format!("a/{file}")).trim_end(), shown, "{file}");
        }
        for (file, value, errno) in [
            ("memory.max", "lots", libc::EINVAL),
            ("pids.max", "-1", libc::EINVAL),
            ("cpu.max", "999 100000", libc::EINVAL),
            ("cpu.max", "max 10", libc::EINVAL),
            ("cpu.weight", "0", libc::ERANGE),
            ("cpuset.cpus", "3-1", libc::EINVAL),
            ("io.max", "8:0 bps=1", libc::EINVAL),
            ("cgroup.freeze", "2", libc::ERANGE),
            ("cgroup.kill", "0", libc::ERANGE),
            ("nosuch.file", "1", libc::ENOENT),
            ("memory.current", "0", libc::EINVAL),
            ("cgroup.events", "populated 0", libc::EINVAL),
            ("cgroup.type", "domain", libc::EINVAL),
        ] {
            let e = fake.write(&format!("a/{file}"), value).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(errno), "{file} = {value}");
        }
    }

    #[test]
    fn scripted_errors_fail_matching_calls_and_are_recorded() {
        let fake = CgroupFs::new("memory").unwrap();
        let _on = fake.install();
        let root = fs::open_dir(fake.root()).unwrap();
        fake.fail_times(Op::Mkdir, "x", libc::ENOSPC, 1);
        let e = fs::mkdirat(root.as_fd(), os("x"), 0o755).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        fs::mkdirat(root.as_fd(), os("x"), 0o755).unwrap();
        fake.fail(Op::Write, "memory.max", libc::EINVAL);
        let x = fs::open_subdir(root.as_fd(), os("x")).unwrap();
        let mut buf = Vec::new();
        fs::read_at(x.as_fd(), os("cgroup.events"), &mut buf).unwrap();
        let calls: Vec<String> = fake.calls().iter().map(|c| c.to_string()).collect();
        assert_eq!(
            calls,
            [
                "OpenDir ",
                "Mkdir x -> No space left on device (os error 28)",
                "Mkdir x",
                "OpenSubdir x",
                "Read x/cgroup.events",
            ]
        );
        assert!(fake.writes().is_empty());
    }
}
