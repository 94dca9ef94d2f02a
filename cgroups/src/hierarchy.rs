//! Discovery of the cgroup2 hierarchy: the mount, the process's own cgroup,
//! and the controllers available at each level.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::sys;

/// A cgroup v2 controller.
///
/// ```
/// use berth_cgroups::Controller;
/// assert_eq!(Controller::Memory.name(), "memory");
/// assert_eq!(Controller::from_name("pids"), Some(Controller::Pids));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Controller {
    /// `cpu`: `cpu.weight`, `cpu.max`, `cpu.idle` (weights since 4.15, `cpu.idle` since 5.15).
    Cpu,
    /// `cpuset`: `cpuset.cpus`, `cpuset.mems` (cgroup v2 since 5.0).
    Cpuset,
    /// `io`: `io.weight`, `io.max` (since 4.5).
    Io,
    /// `memory`: `memory.min/low/high/max`, `memory.swap.max`, `memory.oom.group` (since 4.5; `oom.group` 4.19).
    Memory,
    /// `pids`: `pids.max` (since 4.5).
    Pids,
    /// `hugetlb`: `hugetlb.<size>.max` (cgroup v2 since 5.6).
    Hugetlb,
    /// `rdma` (not configured by this crate, listed for discovery).
    Rdma,
    /// `misc` (not configured by this crate, listed for discovery).
    Misc,
    /// `perf_event` (implicit on v2, listed for discovery).
    PerfEvent,
}

impl Controller {
    /// Every controller this crate knows.
    ///
    /// ```
    /// assert!(berth_cgroups::Controller::ALL.contains(&berth_cgroups::Controller::Pids));
    /// ```
    pub const ALL: [Controller; 9] = [
        Controller::Cpu,
        Controller::Cpuset,
        Controller::Io,
        Controller::Memory,
        Controller::Pids,
        Controller::Hugetlb,
        Controller::Rdma,
        Controller::Misc,
        Controller::PerfEvent,
    ];

    /// The controller's name as the kernel spells it in `cgroup.controllers`.
    pub fn name(self) -> &'static str {
        match self {
            Controller::Cpu => "cpu",
            Controller::Cpuset => "cpuset",
            Controller::Io => "io",
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Hugetlb => "hugetlb",
            Controller::Rdma => "rdma",
            Controller::Misc => "misc",
            Controller::PerfEvent => "perf_event",
        }
    }

    /// Parse a kernel controller name.
    pub fn from_name(s: &str) -> Option<Controller> {
        Controller::ALL.into_iter().find(|c| c.name() == s)
    }

    /// The cgroup v1 name of the same controller (for "where is it bound" messages).
    fn v1_names(self) -> &'static [&'static str] {
        match self {
            Controller::Io => &["blkio"],
            Controller::Cpu => &["cpu"],
            Controller::Cpuset => &["cpuset"],
            Controller::Memory => &["memory"],
            Controller::Pids => &["pids"],
            Controller::Hugetlb => &["hugetlb"],
            Controller::Rdma => &["rdma"],
            Controller::Misc => &["misc"],
            Controller::PerfEvent => &["perf_event"],
        }
    }
}

impl fmt::Display for Controller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of controllers, as read from `cgroup.controllers` or
/// `cgroup.subtree_control`.
///
/// ```
/// use berth_cgroups::{Controller, Controllers};
/// let c = Controllers::parse("cpuset cpu io memory pids\n"); // cgroup.controllers
/// assert!(c.contains(Controller::Memory));
/// assert_eq!(c.iter().count(), 5);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[doc(alias("cgroup.controllers"))]
pub struct Controllers(u16);

impl Controllers {
    /// The empty set.
    ///
    /// ```
    /// assert!(berth_cgroups::Controllers::empty().is_empty());
    /// ```
    pub const fn empty() -> Self {
        Controllers(0)
    }
    /// Add a controller.
    ///
    /// ```
    /// use berth_cgroups::{Controller, Controllers};
    /// let mut c = Controllers::empty();
    /// c.insert(Controller::Io);
    /// assert!(c.contains(Controller::Io));
    /// ```
    pub fn insert(&mut self, c: Controller) {
        self.0 |= 1 << (c as u16);
    }
    /// Whether `c` is in the set.
    ///
    /// ```
    /// use berth_cgroups::{Controller, Controllers};
    /// assert!(Controllers::parse("memory pids").contains(Controller::Pids));
    /// ```
    pub fn contains(&self, c: Controller) -> bool {
        self.0 & (1 << (c as u16)) != 0
    }
    /// True when no controller is in the set.
    ///
    /// ```
    /// assert!(berth_cgroups::Controllers::parse("").is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
    /// The controllers in the set, in a fixed order.
    ///
    /// ```
    /// let names: Vec<_> = berth_cgroups::Controllers::parse("cpu memory").iter().map(|c| c.name()).collect();
    /// assert_eq!(names.len(), 2);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = Controller> + '_ {
        Controller::ALL.into_iter().filter(|c| self.contains(*c))
    }
    /// Parse a space-separated list (the format of `cgroup.controllers`);
    /// names this crate does not know are ignored.
    ///
    /// ```
    /// let c = berth_cgroups::Controllers::parse("cpuset cpu io memory hugetlb pids rdma misc\n");
    /// assert_eq!(c.iter().count(), 8);
    /// ```
    pub fn parse(s: &str) -> Self {
        let mut set = Controllers::empty();
        for name in s.split_whitespace() {
            if let Some(c) = Controller::from_name(name) {
                set.insert(c);
            }
        }
        set
    }
}

impl FromIterator<Controller> for Controllers {
    fn from_iter<I: IntoIterator<Item = Controller>>(iter: I) -> Self {
        let mut s = Controllers::empty();
        for c in iter {
            s.insert(c);
        }
        s
    }
}

impl fmt::Display for Controllers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for c in self.iter() {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            f.write_str(c.name())?;
        }
        Ok(())
    }
}

/// One line of `/proc/self/mountinfo` (only the fields this crate uses).
///
/// ```
/// let text = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
/// let mounts = berth_cgroups::parse_mountinfo(text).unwrap();
/// assert_eq!(mounts[0].fs_type, "cgroup2");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// The root of the mount within its filesystem (field 4).
    pub root: PathBuf,
    /// Where it is mounted (field 5), unescaped.
    pub mount_point: PathBuf,
    /// Filesystem type (after the ` - ` separator).
    pub fs_type: String,
    /// Superblock options (last field).
    pub super_options: String,
}

/// Undo mountinfo's octal escapes (`\040` for space, `\011`, `\012`, `\134`).
fn unescape(s: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// Parse `/proc/self/mountinfo` text (see `proc_pid_mountinfo(5)`).
///
/// ```
/// let text = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
/// assert_eq!(berth_cgroups::parse_mountinfo(text).unwrap()[0].mount_point, std::path::Path::new("/sys/fs/cgroup"));
/// ```
pub fn parse_mountinfo(text: &str) -> Result<Vec<MountEntry>> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let bad = || Error::Parse {
            what: "/proc/self/mountinfo".into(),
            content: line.to_string(),
        };
        let (left, right) = line.split_once(" - ").ok_or_else(bad)?;
        let lf: Vec<&str> = left.split(' ').collect();
        if lf.len() < 6 {
            return Err(bad());
        }
        let rf: Vec<&str> = right.split(' ').collect();
        if rf.len() < 3 {
            return Err(bad());
        }
        out.push(MountEntry {
            root: unescape(lf[3]),
            mount_point: unescape(lf[4]),
            fs_type: rf[0].to_string(),
            super_options: rf[2].to_string(),
        });
    }
    Ok(out)
}

/// Parse `/proc/self/cgroup` text and return the cgroup v2 path (the `0::`
/// line), e.g. `/user.slice/session-1.scope`. See `cgroups(7)`.
///
/// ```
/// let own = berth_cgroups::parse_proc_cgroup("0::/user.slice/session-1.scope\n").unwrap();
/// assert_eq!(own, std::path::Path::new("/user.slice/session-1.scope"));
/// ```
pub fn parse_proc_cgroup(text: &str) -> Result<PathBuf> {
    for line in text.lines() {
        if let Some(p) = line.strip_prefix("0::") {
            // A cgroup deleted under us shows " (deleted)"; keep the path.
            let p = p.strip_suffix(" (deleted)").unwrap_or(p);
            if !p.starts_with('/') {
                return Err(Error::Parse {
                    what: "/proc/self/cgroup".into(),
                    content: line.to_string(),
                });
            }
            return Ok(PathBuf::from(p));
        }
    }
    Err(Error::Parse {
        what: "/proc/self/cgroup (no 0:: line for cgroup v2)".into(),
        content: text.to_string(),
    })
}

/// The cgroup2 hierarchy this process sees: its mount point, the process's own
/// cgroup in it, and where controllers missing from it are bound (v1 mounts).
///
/// ```no_run
/// let h = berth_cgroups::Hierarchy::discover()?; // from /proc/self/mountinfo
/// println!("cgroup2 at {}, we are in {}", h.mount_point().display(), h.own_cgroup().display());
/// println!("root controllers: {:?}", h.root_controllers()?);
/// # Ok::<(), berth_cgroups::Error>(())
/// ```
#[derive(Debug, Clone)]
#[doc(alias("cgroup2", "/sys/fs/cgroup"))]
pub struct Hierarchy {
    mount_point: PathBuf,
    own_cgroup: PathBuf,
    /// The cgroup v1 mounts, read from `/proc/self/mountinfo` when first
    /// needed (only to explain a missing controller); shared by clones.
    v1_mounts: std::sync::Arc<std::sync::OnceLock<Vec<MountEntry>>>,
}

/// A `v1_mounts` cell, filled already when `mounts` are known.
fn v1_cell(mounts: Option<&[MountEntry]>) -> std::sync::Arc<std::sync::OnceLock<Vec<MountEntry>>> {
    let cell = std::sync::OnceLock::new();
    if let Some(m) = mounts {
        let _ = cell.set(
            m.iter()
                .filter(|m| m.fs_type == "cgroup")
                .cloned()
                .collect(),
        );
    }
    std::sync::Arc::new(cell)
}

/// Where cgroup2 is mounted on hybrid and unified hosts.
const USUAL_MOUNTS: [&str; 2] = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"];

impl Hierarchy {
    /// Find the cgroup2 mount and the process's own cgroup in it (from
    /// `/proc/self/cgroup`): at `/sys/fs/cgroup` (unified hosts) or
    /// `/sys/fs/cgroup/unified` (hybrid ones) when that mount shows the
    /// hierarchy's root and holds our cgroup, else from
    /// `/proc/self/mountinfo`; either way verified with `statfs(2)`
    /// (`CGROUP2_SUPER_MAGIC`), so a tmpfs at the usual path is never taken
    /// for cgroupfs.
    ///
    /// ```no_run
    /// let h = berth_cgroups::Hierarchy::discover()?;
    /// println!("cgroup2 at {}", h.mount_point().display());
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn discover() -> Result<Self> {
        let pc = fs::read_to_string("/proc/self/cgroup").map_err(|source| Error::Read {
            path: "/proc/self/cgroup".into(),
            source,
        })?;
        if let Some(h) = Self::at_usual_place(&parse_proc_cgroup(&pc)?) {
            return Ok(h);
        }
        let mi = fs::read_to_string("/proc/self/mountinfo").map_err(|source| Error::Read {
            path: "/proc/self/mountinfo".into(),
            source,
        })?;
        Self::from_texts(&mi, &pc)
    }

    /// The fast path of [`discover`](Self::discover), without reading
    /// `/proc/self/mountinfo` (which the kernel generates line by line;
    /// skipping it saved ≈0.15 ms of a whole `berth-run` here): cgroup2 at one of the usual
    /// places, verified with `statfs(2)`, showing the hierarchy's root (no
    /// `cgroup.type` file: cgroup v2 has one in every cgroup but the root,
    /// Documentation/admin-guide/cgroup-v2.rst), with the process's own
    /// cgroup in it. Anything else (a subtree bind-mounted, a cgroup
    /// namespace's mount, cgroup2 elsewhere) is left to the mountinfo path.
    fn at_usual_place(own: &Path) -> Option<Self> {
        for mp in USUAL_MOUNTS.map(Path::new) {
            if verify_cgroup2(mp).is_err() {
                continue;
            }
            if fs::symlink_metadata(mp.join("cgroup.type")).is_ok() {
                return None;
            }
            let h = Hierarchy {
                mount_point: mp.to_path_buf(),
                own_cgroup: own.to_path_buf(),
                v1_mounts: v1_cell(None),
            };
            return h.own_cgroup_dir().is_dir().then(|| {
                tracing::debug!(mount = %mp.display(), own = %own.display(), "found cgroup2 hierarchy");
                h
            });
        }
        None
    }

    /// Like [`discover`](Self::discover) from given `mountinfo` and
    /// `/proc/self/cgroup` texts; the chosen mount point is still verified
    /// with `statfs(2)`.
    ///
    /// ```no_run
    /// let h = berth_cgroups::Hierarchy::from_texts(
    ///     &std::fs::read_to_string("/proc/self/mountinfo").unwrap(),
    ///     &std::fs::read_to_string("/proc/self/cgroup").unwrap(),
    /// )?;
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn from_texts(mountinfo: &str, proc_cgroup: &str) -> Result<Self> {
        let mounts = parse_mountinfo(mountinfo)?;
        let own = parse_proc_cgroup(proc_cgroup)?;
        let mut last_err = Error::NoCgroup2Mount;
        // The last cgroup2 mount of a path is the visible one; try them all.
        for m in mounts.iter().rev().filter(|m| m.fs_type == "cgroup2") {
            match verify_cgroup2(&m.mount_point) {
                Ok(()) => {
                    let own_cgroup = relative_own(&m.root, &own);
                    tracing::debug!(mount = %m.mount_point.display(), own = %own_cgroup.display(), "found cgroup2 hierarchy");
                    return Ok(Hierarchy {
                        mount_point: m.mount_point.clone(),
                        own_cgroup,
                        v1_mounts: v1_cell(Some(&mounts)),
                    });
                }
                Err(e) => last_err = e,
            }
        }
        Err(last_err)
    }

    /// Use `mount_point` as the hierarchy (verified with `statfs(2)`); the
    /// process's own cgroup is read from `/proc/self/cgroup`.
    ///
    /// ```no_run
    /// let h = berth_cgroups::Hierarchy::at("/sys/fs/cgroup")?; // statfs says CGROUP2_SUPER_MAGIC
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn at(mount_point: impl Into<PathBuf>) -> Result<Self> {
        let mount_point = mount_point.into();
        verify_cgroup2(&mount_point)?;
        let pc = fs::read_to_string("/proc/self/cgroup").map_err(|source| Error::Read {
            path: "/proc/self/cgroup".into(),
            source,
        })?;
        let own_cgroup = parse_proc_cgroup(&pc)?;
        Ok(Hierarchy {
            mount_point,
            own_cgroup,
            v1_mounts: v1_cell(None),
        })
    }

    /// Where cgroup2 is mounted (e.g. `/sys/fs/cgroup/unified` on a hybrid host).
    ///
    /// ```no_run
    /// # let h = berth_cgroups::Hierarchy::discover()?;
    /// println!("{}", h.mount_point().display());
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn mount_point(&self) -> &Path {
        &self.mount_point
    }

    /// The process's own cgroup, relative to the mount (e.g. `/` or `/user.slice/x.scope`).
    ///
    /// ```no_run
    /// # let h = berth_cgroups::Hierarchy::discover()?;
    /// println!("we are in {}", h.own_cgroup().display()); // from /proc/self/cgroup
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn own_cgroup(&self) -> &Path {
        &self.own_cgroup
    }

    /// The absolute directory of the process's own cgroup.
    ///
    /// ```no_run
    /// # let h = berth_cgroups::Hierarchy::discover()?;
    /// assert!(h.own_cgroup_dir().join("cgroup.procs").exists());
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn own_cgroup_dir(&self) -> PathBuf {
        self.join(&self.own_cgroup)
    }

    /// `mount_point` joined with a hierarchy-relative path (leading `/` allowed).
    ///
    /// ```no_run
    /// # let h = berth_cgroups::Hierarchy::discover()?;
    /// let dir = h.join(std::path::Path::new("jobs/job-1"));
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn join(&self, rel: &Path) -> PathBuf {
        let rel = rel.strip_prefix("/").unwrap_or(rel);
        if rel.as_os_str().is_empty() {
            self.mount_point.clone()
        } else {
            self.mount_point.join(rel)
        }
    }

    /// Controllers the root of the hierarchy offers (`cgroup.controllers` at the mount).
    ///
    /// ```no_run
    /// # let h = berth_cgroups::Hierarchy::discover()?;
    /// println!("{:?}", h.root_controllers()?);
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn root_controllers(&self) -> Result<Controllers> {
        read_controllers(&self.mount_point.join("cgroup.controllers"))
    }

    /// Controllers available in the cgroup directory `dir` (its `cgroup.controllers`).
    ///
    /// ```no_run
    /// # let h = berth_cgroups::Hierarchy::discover()?;
    /// println!("{:?}", h.controllers_at(&h.own_cgroup_dir())?);
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn controllers_at(&self, dir: &Path) -> Result<Controllers> {
        read_controllers(&dir.join("cgroup.controllers"))
    }

    /// Controllers enabled for the children of `dir` (its `cgroup.subtree_control`).
    ///
    /// ```no_run
    /// # let h = berth_cgroups::Hierarchy::discover()?;
    /// println!("{:?}", h.subtree_control_at(&h.own_cgroup_dir())?);
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn subtree_control_at(&self, dir: &Path) -> Result<Controllers> {
        read_controllers(&dir.join("cgroup.subtree_control"))
    }

    /// A sentence saying where `c` is bound when it is missing at `cgroup`:
    /// a cgroup v1 hierarchy, not enabled in an ancestor's
    /// `cgroup.subtree_control`, or absent from the kernel.
    ///
    /// ```no_run
    /// # let h = berth_cgroups::Hierarchy::discover()?;
    /// // "memory is bound to the cgroup v1 hierarchy at /sys/fs/cgroup/memory" on a hybrid host
    /// println!("{}", h.where_bound(berth_cgroups::Controller::Memory, h.own_cgroup()));
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn where_bound(&self, c: Controller, cgroup: &Path) -> String {
        let v1 = self.v1_mounts.get_or_init(|| {
            fs::read_to_string("/proc/self/mountinfo")
                .ok()
                .and_then(|t| parse_mountinfo(&t).ok())
                .unwrap_or_default()
                .into_iter()
                .filter(|m| m.fs_type == "cgroup")
                .collect()
        });
        for m in v1.iter() {
            if m.super_options
                .split(',')
                .any(|o| c.v1_names().contains(&o))
            {
                return format!(
                    "bound to the cgroup v1 hierarchy at {}",
                    m.mount_point.display()
                );
            }
        }
        if self
            .root_controllers()
            .map(|s| s.contains(c))
            .unwrap_or(false)
        {
            // Find the highest ancestor that does not pass it down.
            let mut dir = cgroup.to_path_buf();
            let mut culprit = None;
            while dir.starts_with(&self.mount_point) && dir != self.mount_point {
                let parent = match dir.parent() {
                    Some(p) => p.to_path_buf(),
                    None => break,
                };
                if !self
                    .subtree_control_at(&parent)
                    .map(|s| s.contains(c))
                    .unwrap_or(false)
                {
                    culprit = Some(parent.clone());
                }
                dir = parent;
            }
            return match culprit {
                Some(p) => format!(
                    "offered by the cgroup2 root but not enabled in {}/cgroup.subtree_control",
                    p.display()
                ),
                None => "offered by the cgroup2 root".to_string(),
            };
        }
        let enabled_in_kernel = fs::read_to_string("/proc/cgroups")
            .map(|t| {
                t.lines().any(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    f.len() >= 4 && c.v1_names().contains(&f[0]) && f[3] == "1"
                })
            })
            .unwrap_or(false);
        if enabled_in_kernel {
            "held by another cgroup hierarchy (see /proc/cgroups), not by this cgroup2 mount"
                .to_string()
        } else {
            "not available in this kernel (see /proc/cgroups)".to_string()
        }
    }
}

fn relative_own(mount_root: &Path, own: &Path) -> PathBuf {
    if mount_root == Path::new("/") {
        return own.to_path_buf();
    }
    match own.strip_prefix(mount_root) {
        Ok(rest) => Path::new("/").join(rest),
        Err(_) => own.to_path_buf(),
    }
}

/// Check with `statfs(2)` that `path` is a cgroup2 filesystem (`CGROUP2_SUPER_MAGIC`, `<linux/magic.h>`).
///
/// ```no_run
/// berth_cgroups::verify_cgroup2(std::path::Path::new("/sys/fs/cgroup"))?;
/// # Ok::<(), berth_cgroups::Error>(())
/// ```
pub fn verify_cgroup2(path: &Path) -> Result<()> {
    let fd = sys::open_dir(path).map_err(|source| Error::Open {
        path: path.to_path_buf(),
        source,
    })?;
    crate::cgroup::verify_fd_cgroup2(std::os::fd::AsFd::as_fd(&fd), path)
}

fn read_controllers(file: &Path) -> Result<Controllers> {
    // open + read + close, without the stat fs::read_to_string does.
    let mut buf = Vec::with_capacity(256);
    sys::read_path(file, &mut buf).map_err(|source| Error::Read {
        path: file.to_path_buf(),
        source,
    })?;
    Ok(Controllers::parse(&String::from_utf8_lossy(&buf)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path agrees with the mountinfo path on this machine (or is
    /// not taken), and v1 mounts are still found lazily.
    #[test]
    fn fast_discovery_matches_mountinfo() {
        let pc = fs::read_to_string("/proc/self/cgroup").unwrap();
        let mi = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let Ok(slow) = Hierarchy::from_texts(&mi, &pc) else {
            return; // no cgroup2 here at all
        };
        let fast = Hierarchy::discover().unwrap();
        assert_eq!(fast.mount_point(), slow.mount_point());
        assert_eq!(fast.own_cgroup(), slow.own_cgroup());
        if let Some(f) = Hierarchy::at_usual_place(&parse_proc_cgroup(&pc).unwrap()) {
            assert_eq!(f.mount_point(), slow.mount_point());
            assert_eq!(f.own_cgroup(), slow.own_cgroup());
        }
        let v1 = |h: &Hierarchy| {
            let _ = h.where_bound(Controller::Memory, h.mount_point());
            h.v1_mounts.get().map(|v| v.len())
        };
        assert_eq!(v1(&fast), v1(&slow));
    }

    /// The kernel fact the fast path rests on, checked on this machine: the
    /// hierarchy's root has no `cgroup.type`, every cgroup below it has one
    /// (so a mount showing a subtree is never taken for the root).
    #[test]
    fn fast_discovery_refuses_a_subtree_root() {
        let pc = fs::read_to_string("/proc/self/cgroup").unwrap();
        let own = parse_proc_cgroup(&pc).unwrap();
        let Some(h) = Hierarchy::at_usual_place(&own) else {
            return;
        };
        // The root has no cgroup.type; every cgroup below it has one.
        assert!(!h.mount_point().join("cgroup.type").exists());
        if own != Path::new("/") {
            assert!(h.own_cgroup_dir().join("cgroup.type").exists());
        }
    }

    #[test]
    fn parses_hybrid_mountinfo_fixture() {
        let t = include_str!("../tests/fixtures/host-mountinfo");
        let m = parse_mountinfo(t).unwrap();
        let v2: Vec<_> = m.iter().filter(|m| m.fs_type == "cgroup2").collect();
        assert_eq!(v2.len(), 1);
        assert_eq!(v2[0].mount_point, Path::new("/sys/fs/cgroup/unified"));
        let tmpfs = m
            .iter()
            .find(|m| m.mount_point == Path::new("/sys/fs/cgroup"))
            .unwrap();
        assert_eq!(tmpfs.fs_type, "tmpfs");
        assert!(m
            .iter()
            .any(|m| m.fs_type == "cgroup" && m.super_options.contains("memory")));
    }

    #[test]
    fn unescapes_mount_points() {
        let line = "50 23 0:40 / /mnt/with\\040space rw - cgroup2 cgroup2 rw,nsdelegate";
        let m = parse_mountinfo(line).unwrap();
        assert_eq!(m[0].mount_point, Path::new("/mnt/with space"));
        assert_eq!(m[0].super_options, "rw,nsdelegate");
        assert!(parse_mountinfo("garbage line").is_err());
    }

    #[test]
    fn parses_proc_cgroup() {
        let t = include_str!("../tests/fixtures/host-proc-self-cgroup");
        assert_eq!(parse_proc_cgroup(t).unwrap(), Path::new("/"));
        assert_eq!(
            parse_proc_cgroup("0::/user.slice/s.scope\n").unwrap(),
            Path::new("/user.slice/s.scope")
        );
        assert!(parse_proc_cgroup("1:cpu:/\n").is_err());
    }

    #[test]
    fn controllers_set() {
        let s = Controllers::parse("cpuset cpu io memory hugetlb pids rdma misc newthing\n");
        assert!(s.contains(Controller::Memory));
        assert!(s.contains(Controller::Misc));
        assert!(!s.contains(Controller::PerfEvent));
        assert_eq!(s.to_string(), "cpu cpuset io memory pids hugetlb rdma misc");
        assert!(Controllers::parse("").is_empty());
    }

    #[test]
    fn own_cgroup_relative_to_mount_root() {
        assert_eq!(
            relative_own(Path::new("/a"), Path::new("/a/b")),
            Path::new("/b")
        );
        assert_eq!(
            relative_own(Path::new("/"), Path::new("/a/b")),
            Path::new("/a/b")
        );
    }
}
