//! The [`Cgroup`] handle and its [`CgroupBuilder`].

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::hierarchy::{Controller, Controllers, Hierarchy};
use crate::resources::{Resources, Setting};
use crate::stats::{
    self, CgroupEvents, CpuStat, MemoryEvents, MemoryStats, PidsStats, Pressure, Stats,
};
use crate::sys;
use crate::watch::EventWatcher;

/// Default time [`Cgroup::freeze`], [`Cgroup::kill`] and [`Cgroup::remove`] wait.
///
/// ```
/// assert_eq!(berth_cgroups::DEFAULT_TIMEOUT.as_secs(), 10);
/// ```
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A setting left out by `ignore_unavailable` because its controller is missing.
///
/// ```no_run
/// use berth_cgroups::{CgroupBuilder, Limit, Resources};
/// let (cg, report) = CgroupBuilder::new("job-1")
///     .resources(Resources::new().pids_max(Limit::Value(64)))
///     .ignore_unavailable(true)
///     .create_with_report()?;
/// for s in &report.skipped {
///     eprintln!("not enforced: {s:?}");
/// }
/// # Ok::<(), berth_cgroups::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The missing controller.
    pub controller: Controller,
    /// The file that was not written.
    pub file: String,
    /// The value that was not written.
    pub value: String,
    /// Where the controller is bound instead (a sentence).
    pub bound: String,
}

/// What [`Cgroup::apply`] wrote and what it skipped.
///
/// ```no_run
/// use berth_cgroups::{CgroupBuilder, Limit, Resources};
/// let cg = CgroupBuilder::new("job-2").create()?;
/// let report = cg.apply(&Resources::new().memory_max(Limit::Value(256 << 20)))?;
/// println!("{report:?}");
/// cg.remove()?;
/// # Ok::<(), berth_cgroups::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// `(file, value)` written, in order.
    pub applied: Vec<(String, String)>,
    /// Settings skipped because their controller is unavailable (only with
    /// `ignore_unavailable`).
    pub skipped: Vec<Skipped>,
}

/// A cgroup v2 group, held by an open directory fd: every operation is an
/// `openat` relative to it, so a rename or a path swap cannot redirect it.
///
/// A handle made by [`CgroupBuilder::create`] removes its group on drop
/// (killing what is left, best effort, errors logged); [`Cgroup::remove`] does
/// the same and reports errors. Handles from [`Cgroup::open`] leave the group alone.
///
/// ```no_run
/// use berth_cgroups::{Cgroup, Limit, Resources};
/// let cg = Cgroup::builder("job-3")
///     .resources(Resources::new().memory_max(Limit::Value(64 << 20)).pids_max(Limit::Value(32)))
///     .create()?; // mkdir + memory.max, pids.max
/// cg.add_process(std::process::id())?; // cgroup.procs
/// println!("{:?}", cg.stats()?.memory);
/// cg.freeze()?; // cgroup.freeze = 1
/// cg.thaw()?;
/// # Ok::<(), berth_cgroups::Error>(())
/// ```
#[derive(Debug)]
#[doc(alias("cgroup2"))]
pub struct Cgroup {
    fd: OwnedFd,
    path: PathBuf,
    id: u64,
    hierarchy: Hierarchy,
    remove_on_drop: bool,
}

impl AsFd for Cgroup {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Cgroup {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Check a cgroup path given by a user: relative, no `.`/`..`, no empty or NUL parts.
fn check_rel_path(p: &Path) -> Result<Vec<OsString>> {
    let bad = |reason| Error::InvalidPath {
        path: p.to_path_buf(),
        reason,
    };
    if p.as_os_str().is_empty() {
        return Err(bad("empty"));
    }
    if p.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(bad("contains a NUL byte"));
    }
    if p.is_absolute() {
        return Err(bad("must be relative to the parent cgroup"));
    }
    let mut out = Vec::new();
    for part in p.as_os_str().as_encoded_bytes().split(|b| *b == b'/') {
        match part {
            b"" => continue,
            b".." => return Err(bad("`..` would escape the hierarchy")),
            b"." => return Err(bad("`.` components are not allowed")),
            n => out.push(std::ffi::OsStr::from_bytes(n).to_os_string()),
        }
    }
    if out.is_empty() {
        return Err(bad("no components"));
    }
    Ok(out)
}

fn enable_at(dir: BorrowedFd<'_>, dir_path: &Path, c: Controller) -> Result<()> {
    let mut buf = Vec::new();
    let have = match sys::read_at(dir, OsStr::new("cgroup.subtree_control"), &mut buf) {
        Ok(()) => Controllers::parse(&String::from_utf8_lossy(&buf)),
        Err(source) => {
            return Err(Error::Read {
                path: dir_path.join("cgroup.subtree_control"),
                source,
            })
        }
    };
    if have.contains(c) {
        return Ok(());
    }
    let value = format!("+{}", c.name());
    tracing::debug!(cgroup = %dir_path.display(), controller = c.name(), "enabling controller");
    sys::write_at(dir, OsStr::new("cgroup.subtree_control"), value.as_bytes()).map_err(|source| {
        if source.raw_os_error() == Some(libc::EBUSY) {
            Error::InternalProcesses {
                controller: c.name().to_string(),
                cgroup: dir_path.to_path_buf(),
            }
        } else {
            Error::Write {
                path: dir_path.join("cgroup.subtree_control"),
                value,
                source,
            }
        }
    })
}

/// Configures and creates a [`Cgroup`], like `std::process::Command` for
/// processes: set a name, optionally a parent, controllers and resources, then
/// [`create`](Self::create).
///
/// ```no_run
/// use berth_cgroups::{CgroupBuilder, Limit, Resources};
/// let cg = CgroupBuilder::new("job-42")
///     .resources(Resources::new().memory_max(Limit::Value(64 << 20)))
///     .create()?;
/// cg.add_process(std::process::id())?;
/// # Ok::<(), berth_cgroups::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct CgroupBuilder {
    name: PathBuf,
    parent: Option<PathBuf>,
    hierarchy: Option<Hierarchy>,
    controllers: Controllers,
    resources: Resources,
    ignore_unavailable: bool,
}

impl CgroupBuilder {
    /// A group called `name` (a relative path; nested parts are created too).
    ///
    /// ```
    /// let b = berth_cgroups::CgroupBuilder::new("jobs/job-1");
    /// ```
    pub fn new(name: impl Into<PathBuf>) -> Self {
        CgroupBuilder {
            name: name.into(),
            parent: None,
            hierarchy: None,
            controllers: Controllers::empty(),
            resources: Resources::default(),
            ignore_unavailable: false,
        }
    }

    /// Create under this parent directory: an absolute path inside the
    /// cgroup2 mount, or a path relative to the mount. Default: a `berth`
    /// group under the caller's own cgroup (created if missing, never removed).
    ///
    /// ```
    /// let b = berth_cgroups::CgroupBuilder::new("x").parent("/sys/fs/cgroup/jobs");
    /// ```
    pub fn parent(mut self, parent: impl Into<PathBuf>) -> Self {
        self.parent = Some(parent.into());
        self
    }

    /// Use this hierarchy instead of discovering it.
    ///
    /// ```no_run
    /// let h = berth_cgroups::Hierarchy::discover()?;
    /// let b = berth_cgroups::CgroupBuilder::new("x").hierarchy(h);
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn hierarchy(mut self, h: Hierarchy) -> Self {
        self.hierarchy = Some(h);
        self
    }

    /// Make sure `c` is enabled for the new group (written into each
    /// ancestor's `cgroup.subtree_control` that lacks it). Controllers needed
    /// by [`resources`](Self::resources) are enabled automatically.
    ///
    /// ```
    /// use berth_cgroups::{CgroupBuilder, Controller};
    /// let b = CgroupBuilder::new("x").enable(Controller::Memory);
    /// ```
    pub fn enable(mut self, c: Controller) -> Self {
        self.controllers.insert(c);
        self
    }

    /// Apply these resources right after creating the group.
    ///
    /// ```
    /// use berth_cgroups::{CgroupBuilder, Limit, Resources};
    /// let b = CgroupBuilder::new("x").resources(Resources::new().pids_max(Limit::Value(16)));
    /// ```
    pub fn resources(mut self, r: Resources) -> Self {
        self.resources = r;
        self
    }

    /// Skip resources whose controller the hierarchy does not offer (they
    /// are logged and listed in the [`ApplyReport`] of
    /// [`create_with_report`](Self::create_with_report)) instead of failing. Default: fail with [`Error::MissingController`].
    ///
    /// ```
    /// let b = berth_cgroups::CgroupBuilder::new("x").ignore_unavailable(true);
    /// ```
    pub fn ignore_unavailable(mut self, yes: bool) -> Self {
        self.ignore_unavailable = yes;
        self
    }

    /// Create the group; see [`create_with_report`](Self::create_with_report).
    ///
    /// ```no_run
    /// let cg = berth_cgroups::CgroupBuilder::new("job-10").create()?; // mkdir, then the resources
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn create(self) -> Result<Cgroup> {
        self.create_with_report().map(|(c, _)| c)
    }

    /// Validate everything, enable the needed controllers down the tree,
    /// create the directories, apply the resources, and return the handle and
    /// what was applied/skipped. On error, every directory it created is removed.
    ///
    /// ```no_run
    /// use berth_cgroups::{CgroupBuilder, Limit, Resources};
    /// let (cg, report) = CgroupBuilder::new("job-11")
    ///     .resources(Resources::new().pids_max(Limit::Value(16)))
    ///     .ignore_unavailable(true)
    ///     .create_with_report()?;
    /// println!("skipped: {:?}", report.skipped);
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn create_with_report(self) -> Result<(Cgroup, ApplyReport)> {
        let comps = check_rel_path(&self.name)?;
        let settings = self.resources.settings()?;
        let hierarchy = match self.hierarchy {
            Some(h) => h,
            None => Hierarchy::discover()?,
        };
        let mount = hierarchy.mount_point().to_path_buf();
        let (parent_path, default_parent) = parent_path(self.parent.as_deref(), &hierarchy)?;

        // Which controllers are needed, and which are there at all.
        let mut needed = self.controllers;
        for s in &settings {
            if let Some(c) = s.controller {
                needed.insert(c);
            }
        }
        let (enable, missing) = split_available(needed, hierarchy.root_controllers()?);
        let leaf_path = comps.iter().fold(parent_path.clone(), |p, c| p.join(c));
        if !missing.is_empty() && !self.ignore_unavailable {
            let bound = missing
                .iter()
                .map(|c| (c, hierarchy.where_bound(c, &parent_path)));
            return Err(missing_controllers(bound, leaf_path, mount));
        }
        let mut skipped = Vec::new();
        for s in &settings {
            if let Some(c) = s.controller.filter(|c| missing.contains(*c)) {
                skipped.push(Skipped {
                    controller: c,
                    file: s.file.clone(),
                    value: s.value.clone(),
                    bound: hierarchy.where_bound(c, &parent_path),
                });
            }
        }

        let (cur, cur_path) = open_parent(&mount, &parent_path, enable, default_parent)?;
        // Create the new components, remembering what to undo.
        let mut created = Vec::new();
        let (fd, cur_path) = match create_components(cur, cur_path, &comps, enable, &mut created) {
            Ok(v) => v,
            Err(e) => {
                undo_created(created);
                return Err(e);
            }
        };
        let id = match sys::inode(fd.as_fd()) {
            Ok(id) => id,
            Err(source) => {
                undo_created(created);
                return Err(Error::Sys {
                    call: "fstat",
                    path: cur_path,
                    source,
                });
            }
        };
        let cg = Cgroup {
            fd,
            path: cur_path,
            id,
            hierarchy,
            remove_on_drop: false,
        };
        let writable: Vec<Setting> = settings
            .into_iter()
            .filter(|s| !s.controller.is_some_and(|c| missing.contains(c)))
            .collect();
        match cg.write_settings(&writable) {
            Ok(applied) => {
                for s in &skipped {
                    tracing::warn!(cgroup = %cg.path.display(), controller = s.controller.name(), file = %s.file, bound = %s.bound, "resource skipped: controller unavailable");
                }
                let mut cg = cg;
                cg.remove_on_drop = true;
                Ok((cg, ApplyReport { applied, skipped }))
            }
            Err(e) => {
                drop(cg);
                undo_created(created);
                Err(e)
            }
        }
    }
}

/// The parent cgroup's path and whether it is the default one (`berth`
/// below this process's own cgroup, created on first use): an absolute
/// `parent` must be below the mount and have no `.`/`..`, a relative one
/// is checked like a name and taken from the mount.
fn parent_path(parent: Option<&Path>, hierarchy: &Hierarchy) -> Result<(PathBuf, bool)> {
    let mount = hierarchy.mount_point();
    Ok(match parent {
        Some(p) if p.is_absolute() => {
            if !p.starts_with(mount) {
                return Err(Error::InvalidPath {
                    path: p.to_path_buf(),
                    reason: "parent is outside the cgroup2 mount",
                });
            }
            let rel = p.strip_prefix(mount).unwrap_or(Path::new(""));
            if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
                return Err(Error::InvalidPath {
                    path: p.to_path_buf(),
                    reason: "`..` or `.` in the parent path",
                });
            }
            (p.to_path_buf(), false)
        }
        Some(p) => {
            if !p.as_os_str().is_empty() {
                check_rel_path(p)?;
            }
            (hierarchy.join(p), false)
        }
        None => (hierarchy.own_cgroup_dir().join("berth"), true),
    })
}

/// `needed` split into the controllers to enable (the root has them) and
/// the missing ones.
fn split_available(needed: Controllers, root_has: Controllers) -> (Controllers, Controllers) {
    let mut enable = Controllers::empty();
    let mut missing = Controllers::empty();
    for c in needed.iter() {
        if root_has.contains(c) {
            enable.insert(c);
        } else {
            missing.insert(c);
        }
    }
    (enable, missing)
}

/// Open the parent, checked to be on cgroup2: directly when nothing must be
/// enabled on the way, else by walking from the mount down, enabling as we
/// go (see [`walk_to_parent`]).
fn open_parent(
    mount: &Path,
    parent_path: &Path,
    enable: Controllers,
    default_parent: bool,
) -> Result<(OwnedFd, PathBuf)> {
    let direct = if enable.is_empty() {
        match sys::open_dir(parent_path) {
            Ok(fd) => Some(fd),
            Err(e) if e.kind() == io::ErrorKind::NotFound && default_parent => None,
            Err(source) => {
                return Err(Error::Open {
                    path: parent_path.to_path_buf(),
                    source,
                })
            }
        }
    } else {
        None
    };
    let (cur, cur_path) = match direct {
        Some(fd) => (fd, parent_path.to_path_buf()),
        None => walk_to_parent(mount, parent_path, enable, default_parent)?,
    };
    verify_fd_cgroup2(cur.as_fd(), &cur_path)?;
    Ok((cur, cur_path))
}

/// A component made by [`create_components`]: its parent's fd, its name,
/// its path (for messages).
type Created = (OwnedFd, OsString, PathBuf);

/// Create `comps` below `cur` (open as `cur_path`), enabling `enable` in
/// each level first; an existing component is reused except the last.
/// What was made goes to `created` (for [`undo_created`]). Returns the
/// leaf's fd and path.
fn create_components(
    mut cur: OwnedFd,
    mut cur_path: PathBuf,
    comps: &[OsString],
    enable: Controllers,
    created: &mut Vec<Created>,
) -> Result<(OwnedFd, PathBuf)> {
    for comp in comps.iter() {
        for c in enable.iter() {
            enable_at(cur.as_fd(), &cur_path, c)?;
        }
        let child_path = cur_path.join(comp);
        let last = std::ptr::eq(comp, comps.last().unwrap_or(comp));
        let made = match sys::mkdirat(cur.as_fd(), comp, 0o755) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && !last => false,
            Err(source) => {
                return Err(Error::Create {
                    path: child_path,
                    source,
                })
            }
        };
        let child = match sys::open_subdir(cur.as_fd(), comp) {
            Ok(fd) => fd,
            Err(source) => {
                if made {
                    let _ = sys::rmdirat(cur.as_fd(), comp);
                }
                return Err(Error::Open {
                    path: child_path,
                    source,
                });
            }
        };
        // Keep the parent's fd (not a dup) for the undo list.
        let parent = std::mem::replace(&mut cur, child);
        if made {
            created.push((parent, comp.clone(), child_path.clone()));
        }
        cur_path = child_path;
    }
    Ok((cur, cur_path))
}

/// Remove what [`create_components`] made, deepest first.
fn undo_created(created: Vec<Created>) {
    for (parent, name, path) in created.into_iter().rev() {
        if let Err(e) = sys::rmdirat(parent.as_fd(), &name) {
            tracing::warn!(cgroup = %path.display(), error = %e, "could not remove cgroup after a failed create");
        }
    }
}

/// [`Error::MissingController`] naming every missing controller at once
/// (a caller fixing one at a time would otherwise retry once per controller).
fn missing_controllers(
    bound: impl Iterator<Item = (Controller, String)>,
    cgroup: PathBuf,
    mount: PathBuf,
) -> Error {
    let bound: Vec<(Controller, String)> = bound.collect();
    let controller = bound
        .iter()
        .map(|(c, _)| c.name())
        .collect::<Vec<_>>()
        .join(", ");
    let bound = match bound.as_slice() {
        [(_, why)] => why.clone(),
        many => many
            .iter()
            .map(|(c, why)| format!("{}: {why}", c.name()))
            .collect::<Vec<_>>()
            .join("; "),
    };
    Error::MissingController {
        controller,
        cgroup,
        mount,
        bound,
    }
}

/// Open `parent_path` by walking down from the mount, enabling `enable` in
/// each level's `cgroup.subtree_control`; the default `berth` parent is
/// created on first use (and kept).
fn walk_to_parent(
    mount: &Path,
    parent_path: &Path,
    enable: Controllers,
    default_parent: bool,
) -> Result<(OwnedFd, PathBuf)> {
    let mut cur = sys::open_dir(mount).map_err(|source| Error::Open {
        path: mount.to_path_buf(),
        source,
    })?;
    let mut cur_path = mount.to_path_buf();
    let rel = parent_path.strip_prefix(mount).unwrap_or(Path::new(""));
    for comp in rel.components().map(|c| c.as_os_str()) {
        for c in enable.iter() {
            enable_at(cur.as_fd(), &cur_path, c)?;
        }
        cur_path.push(comp);
        let next = match sys::open_subdir(cur.as_fd(), comp) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound && default_parent => {
                match sys::mkdirat(cur.as_fd(), comp, 0o755) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(source) => {
                        return Err(Error::Create {
                            path: cur_path,
                            source,
                        })
                    }
                }
                sys::open_subdir(cur.as_fd(), comp).map_err(|source| Error::Open {
                    path: cur_path.clone(),
                    source,
                })?
            }
            Err(source) => {
                return Err(Error::Open {
                    path: cur_path,
                    source,
                })
            }
        };
        cur = next;
    }
    Ok((cur, cur_path))
}

/// Check with `fstatfs(2)` that `fd` (opened from `path`, named in errors)
/// is on a cgroup2 filesystem (`CGROUP2_SUPER_MAGIC`, `<linux/magic.h>`).
pub(crate) fn verify_fd_cgroup2(fd: BorrowedFd<'_>, path: &Path) -> Result<()> {
    let t = sys::fs_type(fd).map_err(|source| Error::Sys {
        call: "fstatfs",
        path: path.to_path_buf(),
        source,
    })?;
    if t != berth_sys::magic::CGROUP2_SUPER_MAGIC {
        return Err(Error::NotCgroup2 {
            path: path.to_path_buf(),
            fs_type: t,
        });
    }
    Ok(())
}

impl Cgroup {
    /// Start configuring a new group; see [`CgroupBuilder`].
    ///
    /// ```
    /// let b = berth_cgroups::Cgroup::builder("job-1");
    /// ```
    pub fn builder(name: impl Into<PathBuf>) -> CgroupBuilder {
        CgroupBuilder::new(name)
    }

    /// Open an existing group at `rel` (relative to the mount; `""` or `/` is
    /// the root). The handle does not remove the group on drop.
    ///
    /// ```no_run
    /// use berth_cgroups::{Cgroup, Hierarchy};
    /// let h = Hierarchy::discover()?;
    /// let cg = Cgroup::open(&h, "system.slice")?; // an existing cgroup, not removed on drop
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn open(hierarchy: &Hierarchy, rel: impl AsRef<Path>) -> Result<Cgroup> {
        let rel = rel.as_ref();
        let rel = rel.strip_prefix("/").unwrap_or(rel);
        let path = if rel.as_os_str().is_empty() {
            hierarchy.mount_point().to_path_buf()
        } else {
            check_rel_path(rel)?;
            hierarchy.join(rel)
        };
        let fd = sys::open_dir(&path).map_err(|source| Error::Open {
            path: path.clone(),
            source,
        })?;
        verify_fd_cgroup2(fd.as_fd(), &path)?;
        let id = sys::inode(fd.as_fd()).map_err(|source| Error::Sys {
            call: "fstat",
            path: path.clone(),
            source,
        })?;
        Ok(Cgroup {
            fd,
            path,
            id,
            hierarchy: hierarchy.clone(),
            remove_on_drop: false,
        })
    }

    /// True when this handle is the hierarchy's root cgroup.
    ///
    /// ```no_run
    /// use berth_cgroups::{Cgroup, Hierarchy};
    /// let h = Hierarchy::discover()?;
    /// assert!(Cgroup::open(&h, "")?.is_root());
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn is_root(&self) -> bool {
        self.path == self.hierarchy.mount_point()
    }

    fn refuse_root(&self, reason: &'static str) -> Result<()> {
        if self.is_root() {
            return Err(Error::InvalidPath {
                path: self.path.clone(),
                reason,
            });
        }
        Ok(())
    }

    /// The group's directory.
    ///
    /// ```no_run
    /// # use berth_cgroups::Cgroup;
    /// # let cg = Cgroup::builder("job-9").create()?;
    /// println!("{}", cg.path().display()); // e.g. /sys/fs/cgroup/<own>/job-9
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cgroup id: the directory's inode number, which is what
    /// `bpf_get_current_cgroup_id()` returns and what `CLONE_INTO_CGROUP`
    /// users print (kernfs node id, 64-bit hosts).
    ///
    /// ```no_run
    /// # use berth_cgroups::Cgroup;
    /// # let cg = Cgroup::builder("job-9").create()?;
    /// println!("cgroup id {} (bpf_get_current_cgroup_id)", cg.id());
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The hierarchy the group lives in.
    ///
    /// ```no_run
    /// # use berth_cgroups::Cgroup;
    /// # let cg = Cgroup::builder("job-9").create()?;
    /// println!("{}", cg.hierarchy().mount_point().display());
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn hierarchy(&self) -> &Hierarchy {
        &self.hierarchy
    }

    /// Whether dropping the handle removes the group.
    ///
    /// ```no_run
    /// # use berth_cgroups::Cgroup;
    /// let mut cg = Cgroup::builder("keep-me").create()?;
    /// cg.set_remove_on_drop(false); // outlives this handle
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn set_remove_on_drop(&mut self, yes: bool) {
        self.remove_on_drop = yes;
    }

    /// Read an interface file of the group as text.
    ///
    /// ```no_run
    /// # use berth_cgroups::Cgroup;
    /// # let cg = Cgroup::builder("job-9").create()?;
    /// let max = cg.read_file("pids.max")?; // "max\n"
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn read_file(&self, name: &str) -> Result<String> {
        let mut buf = Vec::new();
        self.read_into(name, &mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    fn read_into(&self, name: &str, buf: &mut Vec<u8>) -> Result<()> {
        sys::read_at(self.fd.as_fd(), OsStr::new(name), buf).map_err(|source| Error::Read {
            path: self.path.join(name),
            source,
        })
    }

    /// Like `read_into` but `Ok(false)` when the file does not exist.
    fn read_opt(&self, name: &str, buf: &mut Vec<u8>) -> Result<bool> {
        match sys::read_at(self.fd.as_fd(), OsStr::new(name), buf) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(Error::Read {
                path: self.path.join(name),
                source,
            }),
        }
    }

    /// Write `value` to an interface file of the group (one `write(2)`).
    ///
    /// ```no_run
    /// # use berth_cgroups::Cgroup;
    /// # let cg = Cgroup::builder("job-9").create()?;
    /// cg.write_file("memory.high", "100M")?;
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn write_file(&self, name: &str, value: &str) -> Result<()> {
        if name.contains('/') {
            return Err(Error::InvalidPath {
                path: name.into(),
                reason: "interface file names have no `/`",
            });
        }
        sys::write_at(self.fd.as_fd(), OsStr::new(name), value.as_bytes()).map_err(|source| {
            Error::Write {
                path: self.path.join(name),
                value: value.to_string(),
                source,
            }
        })
    }

    /// Controllers available in this group (`cgroup.controllers`).
    ///
    /// ```no_run
    /// # use berth_cgroups::Cgroup;
    /// # let cg = Cgroup::builder("job-9").create()?;
    /// let c = cg.controllers()?; // cgroup.controllers
    /// println!("{c:?}");
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    #[doc(alias("cgroup.controllers"))]
    pub fn controllers(&self) -> Result<Controllers> {
        Ok(Controllers::parse(&self.read_file("cgroup.controllers")?))
    }

    /// Controllers enabled for this group's children (`cgroup.subtree_control`).
    ///
    /// ```no_run
    /// # use berth_cgroups::Cgroup;
    /// # let cg = Cgroup::builder("job-9").create()?;
    /// let c = cg.subtree_control()?; // what children get
    /// println!("{c:?}");
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    #[doc(alias("cgroup.subtree_control"))]
    pub fn subtree_control(&self) -> Result<Controllers> {
        Ok(Controllers::parse(
            &self.read_file("cgroup.subtree_control")?,
        ))
    }

    /// Enable `c` for this group's children. Fails with
    /// [`Error::InternalProcesses`] when the group has processes (cgroup v2's
    /// no-internal-processes rule; the root is exempt), and with
    /// [`Error::MissingController`] when the group itself lacks `c`.
    ///
    /// ```no_run
    /// # use berth_cgroups::Cgroup;
    /// # let cg = Cgroup::builder("job-9").create()?;
    /// cg.enable_for_children(berth_cgroups::Controller::Memory)?; // +memory in cgroup.subtree_control
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn enable_for_children(&self, c: Controller) -> Result<()> {
        if !self.controllers()?.contains(c) {
            return Err(Error::MissingController {
                controller: c.name().to_string(),
                cgroup: self.path.clone(),
                mount: self.hierarchy.mount_point().to_path_buf(),
                bound: self.hierarchy.where_bound(c, &self.path),
            });
        }
        enable_at(self.fd.as_fd(), &self.path, c)
    }

    /// Move process `pid` (all its threads) into the group (`cgroup.procs`).
    ///
    /// ```no_run
    /// # use berth_cgroups::Cgroup;
    /// # let cg = Cgroup::builder("job-9").create()?;
    /// cg.add_process(std::process::id())?; // echo $$ > cgroup.procs
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    #[doc(alias("cgroup.procs"))]
    pub fn add_process(&self, pid: u32) -> Result<()> {
        self.write_file("cgroup.procs", &pid.to_string())
    }

    /// Move the process behind `pidfd` into the group. The kernel takes pids
    /// only, so the pid is read from `/proc/self/fdinfo/<pidfd>` and the pidfd
    /// is checked with `pidfd_send_signal(2)` (5.1+) after the move, so a
    /// process that exited (and whose pid could be reused) is reported as ESRCH.
    ///
    /// ```no_run
    /// # use berth_cgroups::Cgroup;
    /// # let cg = Cgroup::builder("job-9").create()?;
    /// use std::os::fd::{AsFd, FromRawFd, OwnedFd};
    /// let pidfd = unsafe { OwnedFd::from_raw_fd(libc::syscall(libc::SYS_pidfd_open, std::process::id(), 0) as i32) };
    /// cg.add_pidfd(pidfd.as_fd())?;
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn add_pidfd(&self, pidfd: BorrowedFd<'_>) -> Result<()> {
        let info_path = format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd());
        let info = std::fs::read_to_string(&info_path).map_err(|source| Error::Read {
            path: info_path.clone().into(),
            source,
        })?;
        let pid: i64 = info
            .lines()
            .find_map(|l| l.strip_prefix("Pid:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| Error::Parse {
                what: format!("{info_path} (not a pidfd?)"),
                content: info.clone(),
            })?;
        if pid <= 0 {
            return Err(Error::Sys {
                call: "pidfd (process has exited)",
                path: self.path.clone(),
                source: io::Error::from_raw_os_error(libc::ESRCH),
            });
        }
        self.add_process(pid as u32)?;
        if let Err(source) = berth_sys::pidfd::send_signal(pidfd, 0) {
            return Err(Error::Sys {
                call: "pidfd_send_signal",
                path: self.path.clone(),
                source,
            });
        }
        Ok(())
    }

    fn read_ids(&self, file: &str) -> Result<Vec<u32>> {
        let t = self.read_file(file)?;
        t.lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                l.trim().parse().map_err(|_| Error::Parse {
                    what: self.path.join(file).display().to_string(),
                    content: l.to_string(),
                })
            })
            .collect()
    }

    /// Pids of the processes in the group itself (`cgroup.procs`).
    ///
    /// ```no_run
    /// # use berth_cgroups::Cgroup;
    /// # let cg = Cgroup::builder("job-9").create()?;
    /// println!("pids: {:?}", cg.procs()?);
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    #[doc(alias("cgroup.procs"))]
    pub fn procs(&self) -> Result<Vec<u32>> {
        self.read_ids("cgroup.procs")
    }

    /// Tids of the threads in the group itself (`cgroup.threads`).
    ///
    /// ```no_run
    /// # use berth_cgroups::Cgroup;
    /// # let cg = Cgroup::builder("job-9").create()?;
    /// println!("tids: {:?}", cg.threads()?);
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    #[doc(alias("cgroup.threads"))]
    pub fn threads(&self) -> Result<Vec<u32>> {
        self.read_ids("cgroup.threads")
    }

    /// Validate and write `resources`; fails with
    /// [`Error::MissingController`] before writing anything when a needed
    /// controller is not enabled for this group.
    ///
    /// ```no_run
    /// # use berth_cgroups::Cgroup;
    /// # let cg = Cgroup::builder("job-9").create()?;
    /// use berth_cgroups::{Limit, Resources};
    /// let report = cg.apply(&Resources::new().memory_max(Limit::Value(128 << 20)))?; // memory.max
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn apply(&self, resources: &Resources) -> Result<ApplyReport> {
        self.apply_with(resources, false)
    }

    /// Like [`apply`](Self::apply); with `ignore_unavailable` the settings of
    /// missing controllers are skipped and listed in the report.
    ///
    /// ```no_run
    /// # use berth_cgroups::Cgroup;
    /// # let cg = Cgroup::builder("job-9").create()?;
    /// use berth_cgroups::{Limit, Resources};
    /// let report = cg.apply_with(&Resources::new().pids_max(Limit::Value(32)), true)?;
    /// for s in &report.skipped {
    ///     eprintln!("not enforced: {s:?}");
    /// }
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn apply_with(
        &self,
        resources: &Resources,
        ignore_unavailable: bool,
    ) -> Result<ApplyReport> {
        let settings = resources.settings()?;
        let have = self.controllers()?;
        let mut skipped = Vec::new();
        let mut writable = Vec::with_capacity(settings.len());
        if !ignore_unavailable {
            let mut missing = Controllers::empty();
            for c in settings.iter().filter_map(|s| s.controller) {
                if !have.contains(c) {
                    missing.insert(c);
                }
            }
            if !missing.is_empty() {
                let bound = missing
                    .iter()
                    .map(|c| (c, self.hierarchy.where_bound(c, &self.path)));
                return Err(missing_controllers(
                    bound,
                    self.path.clone(),
                    self.hierarchy.mount_point().to_path_buf(),
                ));
            }
        }
        for s in settings {
            match s.controller {
                Some(c) if !have.contains(c) => {
                    let bound = self.hierarchy.where_bound(c, &self.path);
                    skipped.push(Skipped {
                        controller: c,
                        file: s.file,
                        value: s.value,
                        bound,
                    });
                }
                _ => writable.push(s),
            }
        }
        let applied = self.write_settings(&writable)?;
        Ok(ApplyReport { applied, skipped })
    }

    fn write_settings(&self, settings: &[Setting]) -> Result<Vec<(String, String)>> {
        let mut applied = Vec::with_capacity(settings.len());
        for s in settings {
            if let Err(source) =
                sys::write_at(self.fd.as_fd(), OsStr::new(&s.file), s.value.as_bytes())
            {
                return Err(Error::Apply {
                    cgroup: self.path.clone(),
                    file: s.file.clone(),
                    value: s.value.clone(),
                    applied,
                    source,
                });
            }
            applied.push((s.file.clone(), s.value.clone()));
        }
        Ok(applied)
    }

    /// The state in `cgroup.events` (populated, frozen).
    ///
    /// ```no_run
    /// # use berth_cgroups::Cgroup;
    /// # let cg = Cgroup::builder("job-9").create()?;
    /// println!("{:?}", cg.events()?); // populated, frozen
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    #[doc(alias("cgroup.events"))]
    pub fn events(&self) -> Result<CgroupEvents> {
        CgroupEvents::parse(&self.read_file("cgroup.events")?)
    }

    /// Read every statistics file the group has; parts whose controller is
    /// not enabled are `None`. For repeated reads of one group,
    /// [`stats_reader`](Self::stats_reader) keeps the files open.
    ///
    /// ```no_run
    /// # use berth_cgroups::Cgroup;
    /// # let cg = Cgroup::builder("job-9").create()?;
    /// let s = cg.stats()?;
    /// println!("{:?}", s.pids);
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    #[doc(alias("memory.stat", "cpu.stat", "io.stat"))]
    pub fn stats(&self) -> Result<Stats> {
        let mut buf = Vec::with_capacity(4096);
        collect_stats(&mut buf, |i, buf| self.read_opt(STAT_FILES[i], buf))
    }

    /// A reader that opens the group's statistics files once and re-reads
    /// them with `pread(2)` at offset 0 on each [`StatsReader::read`]
    /// (kernfs regenerates the content), saving the path lookups.
    ///
    /// ```no_run
    /// # use berth_cgroups::Cgroup;
    /// # let cg = Cgroup::builder("job-9").create()?;
    /// let mut r = cg.stats_reader()?;
    /// let first = r.read()?;
    /// let second = r.read()?; // no reopen
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn stats_reader(&self) -> Result<StatsReader> {
        let mut fds: Vec<Option<OwnedFd>> = Vec::with_capacity(STAT_FILES.len());
        for f in STAT_FILES {
            match sys::openat(self.fd.as_fd(), OsStr::new(f), sys::OFlag::O_RDONLY) {
                Ok(fd) => fds.push(Some(fd)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => fds.push(None),
                Err(source) => {
                    return Err(Error::Open {
                        path: self.path.join(f),
                        source,
                    })
                }
            }
        }
        Ok(StatsReader {
            path: self.path.clone(),
            fds,
            buf: Vec::with_capacity(4096),
        })
    }

    /// A watcher yielding typed events of this group (populated/empty,
    /// frozen, OOM...), driven by inotify; see [`EventWatcher`].
    ///
    /// ```no_run
    /// # use berth_cgroups::Cgroup;
    /// # let cg = Cgroup::builder("job-9").create()?;
    /// let mut w = cg.watch()?;
    /// let events = w.wait(Some(std::time::Duration::from_secs(1)))?;
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn watch(&self) -> Result<EventWatcher> {
        EventWatcher::new(self)
    }

    /// Wait until `cgroup.events` satisfies `done`, woken by kernfs
    /// notifications (`poll(2)` `POLLPRI` on the file), re-checking at least
    /// every 50 ms.
    fn wait_events(
        &self,
        state: &'static str,
        timeout: Duration,
        done: impl Fn(CgroupEvents) -> bool,
    ) -> Result<()> {
        let fd = sys::openat(
            self.fd.as_fd(),
            OsStr::new("cgroup.events"),
            sys::OFlag::O_RDONLY,
        )
        .map_err(|source| Error::Open {
            path: self.path.join("cgroup.events"),
            source,
        })?;
        let deadline = Instant::now() + timeout;
        let mut buf = Vec::new();
        loop {
            sys::pread_all(fd.as_fd(), &mut buf).map_err(|source| Error::Read {
                path: self.path.join("cgroup.events"),
                source,
            })?;
            if done(CgroupEvents::parse(&String::from_utf8_lossy(&buf))?) {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Timeout {
                    cgroup: self.path.clone(),
                    state,
                    timeout,
                });
            }
            let ms = (deadline - now).as_millis().min(50) as i32;
            let _ = berth_sys::poll::poll_one(
                fd.as_fd(),
                berth_sys::poll::PollFlags::POLLPRI,
                ms.max(1),
            );
        }
    }

    /// Freeze the group (`cgroup.freeze`, kernel 5.2+) and wait until
    /// `cgroup.events` says `frozen 1` (up to [`DEFAULT_TIMEOUT`]).
    ///
    /// ```no_run
    /// # use berth_cgroups::Cgroup;
    /// # let cg = Cgroup::builder("job-9").create()?;
    /// cg.freeze()?; // cgroup.freeze = 1, waits for frozen 1 in cgroup.events
    /// cg.thaw()?;
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    #[doc(alias("cgroup.freeze"))]
    pub fn freeze(&self) -> Result<()> {
        self.freeze_timeout(DEFAULT_TIMEOUT)
    }

    /// [`freeze`](Self::freeze) with a chosen timeout.
    ///
    /// ```no_run
    /// # use berth_cgroups::Cgroup;
    /// # let cg = Cgroup::builder("job-9").create()?;
    /// cg.freeze_timeout(std::time::Duration::from_secs(2))?;
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn freeze_timeout(&self, timeout: Duration) -> Result<()> {
        self.write_file("cgroup.freeze", "1")?;
        self.wait_events("frozen", timeout, |e| e.frozen)
    }

    /// Thaw the group and wait until `cgroup.events` says `frozen 0`.
    ///
    /// ```no_run
    /// # use berth_cgroups::Cgroup;
    /// # let cg = Cgroup::builder("job-9").create()?;
    /// cg.freeze()?;
    /// cg.thaw()?; // cgroup.freeze = 0
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn thaw(&self) -> Result<()> {
        self.thaw_timeout(DEFAULT_TIMEOUT)
    }

    /// [`thaw`](Self::thaw) with a chosen timeout.
    ///
    /// ```no_run
    /// # use berth_cgroups::Cgroup;
    /// # let cg = Cgroup::builder("job-9").create()?;
    /// cg.thaw_timeout(std::time::Duration::from_secs(2))?;
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    #[doc(alias("cgroup.freeze"))]
    pub fn thaw_timeout(&self, timeout: Duration) -> Result<()> {
        self.write_file("cgroup.freeze", "0")?;
        self.wait_events("thawed", timeout, |e| !e.frozen)
    }

    /// SIGKILL every process in the group and its descendants and wait until
    /// it is empty. Uses `cgroup.kill` (5.14+); on older kernels, freezes the
    /// group, kills each pid from `cgroup.procs` (recursively), thaws, and
    /// repeats until empty.
    ///
    /// ```no_run
    /// # use berth_cgroups::Cgroup;
    /// # let cg = Cgroup::builder("job-9").create()?;
    /// cg.kill()?; // cgroup.kill = 1, waits until empty
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    #[doc(alias("cgroup.kill"))]
    pub fn kill(&self) -> Result<()> {
        self.kill_timeout(DEFAULT_TIMEOUT)
    }

    /// [`kill`](Self::kill) with a chosen timeout.
    ///
    /// ```no_run
    /// # use berth_cgroups::Cgroup;
    /// # let cg = Cgroup::builder("job-9").create()?;
    /// cg.kill_timeout(std::time::Duration::from_secs(5))?;
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn kill_timeout(&self, timeout: Duration) -> Result<()> {
        self.refuse_root("killing every process of the root cgroup is refused")?;
        match sys::write_at(self.fd.as_fd(), OsStr::new("cgroup.kill"), b"1") {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::debug!(cgroup = %self.path.display(), "no cgroup.kill (kernel < 5.14): killing pid by pid");
                return self.kill_loop(timeout);
            }
            Err(source) => {
                return Err(Error::Write {
                    path: self.path.join("cgroup.kill"),
                    value: "1".into(),
                    source,
                })
            }
        }
        self.wait_events("empty", timeout, |e| !e.populated)
    }

    /// The kill path for kernels without `cgroup.kill` (before 5.14), used
    /// automatically by [`kill`](Self::kill) there: freeze the group (when
    /// `cgroup.freeze` exists), SIGKILL every pid in it and its descendants,
    /// thaw, and repeat until no process is left.
    ///
    /// ```no_run
    /// # use berth_cgroups::Cgroup;
    /// # let cg = Cgroup::builder("job-9").create()?;
    /// cg.kill_each(std::time::Duration::from_secs(5))?; // kernels without cgroup.kill
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn kill_each(&self, timeout: Duration) -> Result<()> {
        self.kill_loop(timeout)
    }

    fn kill_loop(&self, timeout: Duration) -> Result<()> {
        self.refuse_root("killing every process of the root cgroup is refused")?;
        let deadline = Instant::now() + timeout;
        let freezable = self.write_file("cgroup.freeze", "1").is_ok();
        // Thawed on every way out, an error too: frozen tasks die once
        // thawed, and a group must never be left frozen behind a failure.
        struct Thaw<'a>(Option<&'a Cgroup>);
        impl Drop for Thaw<'_> {
            fn drop(&mut self) {
                if let Some(cg) = self.0 {
                    let _ = cg.write_file("cgroup.freeze", "0");
                }
            }
        }
        let _thaw = Thaw(freezable.then_some(self));
        loop {
            let pids = self.all_procs()?;
            if pids.is_empty() {
                return Ok(());
            }
            for pid in pids {
                let _ = berth_sys::signal::kill(pid as i32, berth_sys::signal::Signal::SIGKILL);
            }
            if freezable {
                // SIGKILL is delivered regardless; the tasks die once thawed.
                let _ = self.write_file("cgroup.freeze", "0");
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    cgroup: self.path.clone(),
                    state: "empty",
                    timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(5));
            if freezable {
                let _ = self.write_file("cgroup.freeze", "1");
            }
        }
    }

    fn all_procs(&self) -> Result<Vec<u32>> {
        fn walk(fd: BorrowedFd<'_>, path: &Path, out: &mut Vec<u32>) -> Result<()> {
            let mut buf = Vec::new();
            sys::read_at(fd, OsStr::new("cgroup.procs"), &mut buf).map_err(|source| {
                Error::Read {
                    path: path.join("cgroup.procs"),
                    source,
                }
            })?;
            out.extend(
                String::from_utf8_lossy(&buf)
                    .lines()
                    .filter_map(|l| l.trim().parse::<u32>().ok()),
            );
            let subs = sys::subdirs(fd).map_err(|source| Error::Read {
                path: path.to_path_buf(),
                source,
            })?;
            for s in subs {
                if let Ok(child) = sys::open_subdir(fd, &s) {
                    walk(child.as_fd(), &path.join(&s), out)?;
                }
            }
            Ok(())
        }
        let mut out = Vec::new();
        walk(self.fd.as_fd(), &self.path, &mut out)?;
        Ok(out)
    }

    /// Kill what is left in the group, remove its descendants (deepest
    /// first) and the group itself, retrying `rmdir` while it drains (EBUSY).
    ///
    /// ```no_run
    /// # use berth_cgroups::Cgroup;
    /// # let cg = Cgroup::builder("job-9").create()?;
    /// cg.kill()?;
    /// cg.remove()?; // rmdir, reporting every error
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    #[doc(alias("rmdir"))]
    pub fn remove(mut self) -> Result<()> {
        self.remove_on_drop = false;
        self.remove_inner(DEFAULT_TIMEOUT)
    }

    fn remove_inner(&self, timeout: Duration) -> Result<()> {
        self.refuse_root("the root cgroup cannot be removed")?;
        let deadline = Instant::now() + timeout;
        let parent = sys::openat(self.fd.as_fd(), OsStr::new(".."), sys::OFlag::O_DIRECTORY)
            .map_err(|source| Error::Open {
                path: self.path.join(".."),
                source,
            })?;
        let name = self.path.file_name().ok_or_else(|| Error::InvalidPath {
            path: self.path.clone(),
            reason: "the root cgroup cannot be removed",
        })?;
        // Fast path: an empty leaf goes with one rmdir. EBUSY means processes
        // or child groups are left (cgroup_destroy_locked, kernel/cgroup/cgroup.c).
        match sys::rmdirat(parent.as_fd(), name) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
            Err(source) => {
                return Err(Error::Remove {
                    path: self.path.clone(),
                    source,
                })
            }
        }
        if self.events().map(|e| e.populated).unwrap_or(true) {
            self.kill_timeout(timeout)?;
        }
        remove_children(self.fd.as_fd(), &self.path, deadline)?;
        rmdir_retry(parent.as_fd(), name, &self.path, deadline)
    }
}

fn rmdir_retry(parent: BorrowedFd<'_>, name: &OsStr, path: &Path, deadline: Instant) -> Result<()> {
    let mut pause = Duration::from_micros(200);
    loop {
        match sys::rmdirat(parent, name) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(source) => {
                return Err(Error::Remove {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
    }
}

fn remove_children(fd: BorrowedFd<'_>, path: &Path, deadline: Instant) -> Result<()> {
    let subs = sys::subdirs(fd).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    for s in subs {
        let child_path = path.join(&s);
        match sys::open_subdir(fd, &s) {
            Ok(child) => remove_children(child.as_fd(), &child_path, deadline)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(Error::Open {
                    path: child_path,
                    source,
                })
            }
        }
        rmdir_retry(fd, &s, &child_path, deadline)?;
    }
    Ok(())
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if self.remove_on_drop {
            if let Err(e) = self.remove_inner(DEFAULT_TIMEOUT) {
                tracing::warn!(cgroup = %self.path.display(), error = %e, "could not remove cgroup on drop");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_paths_stay_inside_the_mount() {
        // Discovery needs no privilege (mountinfo and statfs).
        let Ok(h) = Hierarchy::discover() else {
            return;
        };
        let mount = h.mount_point().to_path_buf();
        assert_eq!(
            parent_path(None, &h).unwrap(),
            (h.own_cgroup_dir().join("berth"), true)
        );
        assert_eq!(
            parent_path(Some(Path::new("a/b")), &h).unwrap(),
            (mount.join("a/b"), false)
        );
        assert_eq!(
            parent_path(Some(&mount.join("x")), &h).unwrap(),
            (mount.join("x"), false)
        );
        for bad in [
            PathBuf::from("/etc"),
            mount.join("x/../../y"),
            PathBuf::from("a/../.."),
        ] {
            let e = parent_path(Some(&bad), &h).unwrap_err();
            assert!(matches!(e, Error::InvalidPath { .. }), "{bad:?}: {e}");
        }
    }

    #[test]
    fn needed_controllers_split_into_enable_and_missing() {
        let needed: Controllers = [Controller::Cpu, Controller::Memory, Controller::Pids]
            .into_iter()
            .collect();
        let root: Controllers = [Controller::Memory, Controller::Io].into_iter().collect();
        let (enable, missing) = split_available(needed, root);
        assert_eq!(enable, [Controller::Memory].into_iter().collect());
        assert_eq!(
            missing,
            [Controller::Cpu, Controller::Pids].into_iter().collect()
        );
        let (enable, missing) = split_available(Controllers::empty(), root);
        assert!(enable.is_empty() && missing.is_empty());
    }

    #[test]
    fn rejects_escaping_paths() {
        for p in ["..", "a/../b", "/abs", "", "./a", "a/./b"] {
            let e = check_rel_path(Path::new(p)).unwrap_err();
            assert!(matches!(e, Error::InvalidPath { .. }), "{p}: {e}");
        }
        assert_eq!(check_rel_path(Path::new("a/b")).unwrap().len(), 2);
        assert_eq!(check_rel_path(Path::new("a//b/")).unwrap().len(), 2);
    }
}

/// The statistics files, in the order [`collect_stats`] asks for them.
const STAT_FILES: [&str; 12] = [
    "cpu.stat",
    "memory.current",
    "memory.peak",
    "memory.stat",
    "memory.events",
    "io.stat",
    "pids.current",
    "pids.peak",
    "pids.events",
    "cpu.pressure",
    "memory.pressure",
    "io.pressure",
];

/// Build [`Stats`] from `read(index into STAT_FILES, buf) -> present?`.
fn collect_stats(
    buf: &mut Vec<u8>,
    mut read: impl FnMut(usize, &mut Vec<u8>) -> Result<bool>,
) -> Result<Stats> {
    let mut st = Stats::default();
    fn txt(b: &[u8]) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(b)
    }
    if read(0, buf)? {
        st.cpu = Some(CpuStat::parse(&txt(buf))?);
    }
    if read(1, buf)? {
        let mut m = MemoryStats {
            current: stats::parse_single("memory.current", &txt(buf))?.unwrap_or(u64::MAX),
            ..Default::default()
        };
        if read(2, buf)? {
            m.peak = stats::parse_single("memory.peak", &txt(buf))?;
        }
        if read(3, buf)? {
            m.stat = MemoryStats::parse_stat(&txt(buf))?;
        }
        if read(4, buf)? {
            m.events = MemoryEvents::parse(&txt(buf))?;
        }
        st.memory = Some(m);
    }
    if read(5, buf)? {
        st.io = Some(stats::parse_io_stat(&txt(buf))?);
    }
    if read(6, buf)? {
        let mut p = PidsStats {
            current: stats::parse_single("pids.current", &txt(buf))?.unwrap_or(0),
            ..Default::default()
        };
        if read(7, buf)? {
            p.peak = stats::parse_single("pids.peak", &txt(buf))?;
        }
        if read(8, buf)? {
            for l in txt(buf).lines() {
                if let Some(v) = l.strip_prefix("max ") {
                    p.max_events = v.trim().parse().unwrap_or(0);
                }
            }
        }
        st.pids = Some(p);
    }
    for (i, file) in [
        (9, "cpu.pressure"),
        (10, "memory.pressure"),
        (11, "io.pressure"),
    ] {
        if read(i, buf)? {
            let pr = Some(Pressure::parse(file, &txt(buf))?);
            match i {
                9 => st.cpu_pressure = pr,
                10 => st.memory_pressure = pr,
                _ => st.io_pressure = pr,
            }
        }
    }
    Ok(st)
}

/// Re-reads one group's statistics through files opened once; see
/// [`Cgroup::stats_reader`]. Files absent when it was made (controller not
/// enabled) stay absent.
///
/// ```no_run
/// let cg = berth_cgroups::Cgroup::builder("job-4").create()?;
/// let mut reader = cg.stats_reader()?; // files opened once
/// for _ in 0..3 {
///     let s = reader.read()?;
///     println!("{:?}", s.cpu);
/// }
/// # Ok::<(), berth_cgroups::Error>(())
/// ```
#[derive(Debug)]
pub struct StatsReader {
    path: PathBuf,
    fds: Vec<Option<OwnedFd>>,
    buf: Vec<u8>,
}

impl StatsReader {
    /// Read all statistics now.
    ///
    /// ```no_run
    /// # use berth_cgroups::Cgroup;
    /// # let cg = Cgroup::builder("job-9").create()?;
    /// let mut r = cg.stats_reader()?;
    /// let s = r.read()?;
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn read(&mut self) -> Result<Stats> {
        let fds = &self.fds;
        let path = &self.path;
        collect_stats(&mut self.buf, |i, buf| match &fds[i] {
            None => Ok(false),
            Some(fd) => sys::pread_all(fd.as_fd(), buf)
                .map(|()| true)
                .map_err(|source| Error::Read {
                    path: path.join(STAT_FILES[i]),
                    source,
                }),
        })
    }
}
