//! The state directory: what another process needs to find, signal and
//! delete a container, and the garbage collector that reclaims containers
//! whose owner died.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Name of the JSON file inside a container's state directory.
pub const STATE_FILE: &str = "state.json";

/// The default root of state directories: `/run/berth` as root,
/// `$XDG_RUNTIME_DIR/berth` otherwise (as runc does), but only when
/// `$XDG_RUNTIME_DIR` is an absolute path to a directory the caller owns
/// with no access for group or others (the XDG base directory
/// specification's promise; another one is ignored, with a warning), else
/// `/tmp/berth-<uid>`. A spawn creates the root mode 0700 and refuses one
/// another user made (see [`ContainerBuilder::state_root`](crate::ContainerBuilder::state_root)).
pub fn default_state_root() -> PathBuf {
    let uid = berth_sys::fs::euid();
    if uid == 0 {
        return PathBuf::from("/run/berth");
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        let d = PathBuf::from(d);
        let ok = d.is_absolute()
            && std::fs::metadata(&d)
                .is_ok_and(|m| m.is_dir() && m.uid() == uid && m.mode() & 0o077 == 0);
        if ok {
            return d.join("berth");
        }
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            tracing::warn!(xdg_runtime_dir = %d.display(), "XDG_RUNTIME_DIR is not an absolute path to a 0700 directory of ours: not used for the state root");
        });
    }
    PathBuf::from(format!("/tmp/berth-{uid}"))
}

/// Make `root` a state root only the caller can enter. With `create`, the
/// root and any missing parent are created mode 0700 (an existing one is
/// checked); without, a missing root is fine (nothing to read in it).
/// An existing root must be a directory the caller owns and not writable
/// by group or others: refused otherwise with [`Error::UnsafeStateRoot`]
/// naming its owner and mode (another user may have planted records that
/// [`gc`] would act on, or redirect our writes). A symlink is accepted
/// only from the caller or root. Read or search bits for group and others
/// (an older berth's 0755) are removed, once, with a warning, as Docker
/// tightens its own root at start.
pub(crate) fn private_root(root: &Path, create: bool) -> Result<()> {
    use berth_sys::private::{ensure_private_dir, PrivateDirError, PrivateDirOp};
    ensure_private_dir(root, "state root", create).map_err(|e| match e {
        PrivateDirError::Io { op, path, source } => {
            let what = match op {
                PrivateDirOp::Inspect => "inspect state root",
                PrivateDirOp::Create => "create state root",
                PrivateDirOp::Tighten => "tighten state root",
            };
            Error::io(what, path, source)
        }
        PrivateDirError::Unsafe { path, reason } => Error::UnsafeStateRoot { path, reason },
    })
}

/// Open `path` for reading without following a symlink at its last
/// component, and read it whole.
fn read_nofollow(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    let mut b = Vec::new();
    f.read_to_end(&mut b)?;
    Ok(b)
}

/// The network part of a container's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkState {
    /// The bridge network's name.
    pub network: String,
    /// berth-netsetup's state directory (IPAM, firewall bookkeeping).
    pub state_dir: PathBuf,
}

/// The JSON record in `<state root>/<id>/state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The container id.
    pub id: String,
    /// The container's init pid (host pid namespace), once spawned.
    pub pid: Option<i32>,
    /// Start time of `pid` (field 22 of `/proc/<pid>/stat`, clock ticks since
    /// boot), to detect pid reuse.
    pub pid_start: Option<u64>,
    /// The process that owns the container (its handle lives there).
    pub owner_pid: i32,
    /// Start time of the owner, to detect pid reuse.
    pub owner_start: u64,
    /// Absolute path of the container's cgroup directory (recorded before
    /// the directory is made: see [`gc`]).
    pub cgroup: Option<PathBuf>,
    /// Host mounts the container made (none in this implementation: the
    /// root filesystem is mounted inside the container's mount namespace
    /// and vanishes with it), listed for tools that clean up.
    pub mounts: Vec<PathBuf>,
    /// The bridge network attachment, if any.
    pub network: Option<NetworkState>,
    /// The pasta daemon of a `Network::pasta` container (its pid), so `gc`
    /// can end it when the owner died without tearing down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pasta_pid: Option<i32>,
    /// Start time of `pasta_pid` (as [`State::pid_start`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pasta_start: Option<u64>,
    /// Created with two-phase start and not started yet.
    pub created: bool,
    /// The owner let the container run on without it; `gc` leaves it alone
    /// while its process lives.
    pub detached: bool,
    /// Creation time, seconds since the Unix epoch.
    pub created_at: u64,
}

impl State {
    /// Rewrite the state file in place: one `write(2)` at offset 0 of the
    /// existing file, never a rename over it and never a truncation.
    ///
    /// Why not write-then-rename: replacing a file by rename (or truncating
    /// it) makes ext4 allocate and start writing its data at once
    /// (`auto_da_alloc`, ext4(5)), and removing that file later waits for
    /// the write-back and, on a file system mounted with `discard`, for a
    /// synchronous discard of the freed block: milliseconds at destroy. A
    /// file only ever rewritten in place keeps its data delayed-allocated
    /// and is unlinked for free.
    ///
    /// Why it stays readable: a shorter record is padded with trailing
    /// spaces (valid JSON whitespace) up to the file's length, so the file
    /// is never cut and one write replaces the whole content; a record is
    /// far below a page, and a write within one page is either done whole
    /// or not at all when the writer is killed (the kernel checks for a
    /// fatal signal before copying each page). A reader racing with the
    /// write may see a mix and get invalid JSON, which [`gc`] treats as a
    /// container being created. A file that does not exist yet is created.
    pub(crate) fn write(&self, dir: &Path) -> Result<()> {
        use std::io::Write;
        let path = dir.join(STATE_FILE);
        let mut json = serde_json::to_vec_pretty(self).map_err(|e| Error::State {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        // O_NOFOLLOW: a symlink planted at `state.json` is an error (ELOOP),
        // never followed; 0600: the record is the owner's only.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| Error::io("open state file", &path, e))?;
        let len = f
            .metadata()
            .map_err(|e| Error::io("stat state file", &path, e))?
            .len();
        if let Some(pad) = usize::try_from(len)
            .ok()
            .and_then(|l| l.checked_sub(json.len()))
        {
            json.resize(json.len() + pad, b' ');
        }
        f.write_all(&json)
            .map_err(|e| Error::io("write state file", &path, e))
    }

    /// Read the state of container `id` under `root` (default root when `None`).
    ///
    /// ```no_run
    /// let st = berth::State::load(None, "web-1")?;
    /// println!("pid {:?}", st.pid);
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn load(root: Option<&Path>, id: &str) -> Result<State> {
        let root = root
            .map(Path::to_path_buf)
            .unwrap_or_else(default_state_root);
        private_root(&root, false)?;
        Self::read(&root.join(id).join(STATE_FILE))
    }

    fn read(path: &Path) -> Result<State> {
        let b = read_nofollow(path).map_err(|e| Error::io("read state file", path, e))?;
        serde_json::from_slice(&b).map_err(|e| Error::State {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// Is the container's init still the process recorded (alive and not a
    /// zombie, same start time)?
    pub fn is_running(&self) -> bool {
        match (self.pid, self.pid_start) {
            (Some(p), Some(s)) => proc_start_time(p) == Some(s) && !proc_is_zombie(p),
            _ => false,
        }
    }

    /// Send `signal` to the container's init from any process: the pid is
    /// opened as a pidfd (pidfd_open(2), Linux 5.3) and its start time
    /// checked again afterwards, so a reused pid is never signalled.
    ///
    /// ```no_run
    /// berth::State::load(None, "web-1")?.signal(libc::SIGTERM)?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn signal(&self, signal: i32) -> Result<()> {
        let fd = self.open_pidfd("signal")?;
        berth_sys::pidfd::send_signal(std::os::fd::AsFd::as_fd(&fd), signal).map_err(|source| {
            Error::Process {
                what: "pidfd_send_signal",
                id: self.id.clone(),
                source,
            }
        })
    }

    /// A pidfd of the init, checked to be the recorded process (alive, same
    /// start time) after it was opened, so a reused pid is never the one
    /// acted on (pidfd_open(2), Linux 5.3). `what` names the caller's
    /// operation in the ESRCH error.
    pub(crate) fn open_pidfd(&self, what: &'static str) -> Result<std::os::fd::OwnedFd> {
        let esrch = || Error::Process {
            what,
            id: self.id.clone(),
            source: std::io::Error::from_raw_os_error(libc::ESRCH),
        };
        let (Some(pid), true) = (self.pid, self.is_running()) else {
            return Err(esrch());
        };
        let fd = berth_sys::pidfd::open(pid, 0).map_err(|source| Error::Process {
            what: "pidfd_open",
            id: self.id.clone(),
            source,
        })?;
        if !self.is_running() {
            return Err(esrch());
        }
        Ok(fd)
    }

    /// Is the owner process still alive (same pid and start time)?
    pub fn owner_alive(&self) -> bool {
        proc_start_time(self.owner_pid) == Some(self.owner_start) && !proc_is_zombie(self.owner_pid)
    }
}

/// The state file as [`gc`] reads it: the [`State`] plus what only the
/// creating owner writes, in the very first record (see
/// [`create_state_dir`]).
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    #[serde(flatten)]
    state: State,
    /// `state.cgroup` is the path the owner was about to create, and it has
    /// not confirmed the creation yet (its next write of the [`State`]
    /// drops this key): the directory may be missing, or, if the name was
    /// taken, belong to someone else. So [`gc`] only `rmdir`s it, which
    /// fails on a populated cgroup (rmdir(2): EBUSY), and never kills what
    /// is inside. No process is cloned into the cgroup before the owner
    /// confirmed it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    cgroup_pending: bool,
}

impl Record {
    fn read(path: &Path) -> Result<Record> {
        let b = read_nofollow(path).map_err(|e| Error::io("read state file", path, e))?;
        serde_json::from_slice(&b).map_err(|e| Error::State {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }
}

/// Field 22 (`starttime`) of `/proc/<pid>/stat`: clock ticks after boot
/// (berth-sys's `proc::start_time`).
pub(crate) use berth_sys::proc::start_time as proc_start_time;

/// Field 3 (`state`) of `/proc/<pid>/stat` is `Z` (zombie) or `X` (dead),
/// or the process is gone (berth-sys's `proc::is_zombie`).
pub(crate) use berth_sys::proc::is_zombie as proc_is_zombie;

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Prefix of a state directory under construction: `.creating-<owner
/// pid>-<owner start time>-<sequence>-<id>` (ids never start with `.`).
const CREATING_PREFIX: &str = ".creating-";
/// Prefix of a state directory being deleted (same fields).
const REMOVING_PREFIX: &str = ".removing-";
/// Makes the names above unique within a process.
static SEQ: AtomicU64 = AtomicU64::new(0);

/// Create the state directory `<root>/<st.id>` with `st` already recorded
/// in it, before any other object of the container exists (a cgroup in
/// `st.cgroup` is recorded as not created yet, until the owner writes the
/// state again), atomically: the directory and its `state.json` are made under a
/// temporary name that carries the owner's pid and start time, then renamed
/// into place with `renameat2(RENAME_NOREPLACE)` (renameat2(2), Linux 3.15;
/// tmpfs since 3.17). So `<root>/<id>` never exists without a record, and
/// an owner killed before the rename leaves only a `.creating-…` directory,
/// which [`gc`] removes as soon as that owner is dead. On a file system
/// without `RENAME_NOREPLACE` (EINVAL) it falls back to `mkdir` then the
/// record, and [`gc`] removes an empty directory after a grace period.
///
/// An existing `<root>/<id>` is [`Error::AlreadyExists`].
pub(crate) fn create_state_dir(root: &Path, st: &State) -> Result<PathBuf> {
    let dir = root.join(&st.id);
    let tmp = root.join(format!(
        "{CREATING_PREFIX}{}-{}-{}-{}",
        st.owner_pid,
        st.owner_start,
        SEQ.fetch_add(1, Ordering::Relaxed),
        st.id
    ));
    let exists = || Error::AlreadyExists {
        id: st.id.clone(),
        path: dir.clone(),
    };
    // Cheap early answer for the common conflict (the rename decides).
    if dir.exists() {
        return Err(exists());
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&tmp)
        .map_err(|e| Error::io("create state directory", &tmp, e))?;
    let undo = |e: Error| {
        let _ = std::fs::remove_dir_all(&tmp);
        e
    };
    // A fresh directory: write the record straight in (no rename needed; a
    // half-written one goes with the whole `.creating-` directory).
    let rec = Record {
        state: st.clone(),
        cgroup_pending: st.cgroup.is_some(),
    };
    let json = serde_json::to_vec_pretty(&rec)
        .map_err(|e| Error::State {
            path: tmp.join(STATE_FILE),
            reason: e.to_string(),
        })
        .map_err(undo)?;
    // A new file in a directory just made: O_EXCL and O_NOFOLLOW all the same.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(tmp.join(STATE_FILE))
        .and_then(|mut f| std::io::Write::write_all(&mut f, &json))
        .map_err(|e| undo(Error::io("write state file", tmp.join(STATE_FILE), e)))?;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_encoded_bytes())
            .map_err(|_| Error::invalid(format!("state path {p:?} contains a NUL byte")))
    };
    c(&tmp).map_err(undo)?;
    c(&dir).map_err(undo)?;
    let Err(e) = berth_sys::fs::rename_noreplace(&tmp, &dir) else {
        return Ok(dir);
    };
    match e.raw_os_error() {
        Some(libc::EEXIST) | Some(libc::ENOTEMPTY) => Err(undo(exists())),
        Some(libc::EINVAL) | Some(libc::ENOSYS) => {
            // No RENAME_NOREPLACE here: mkdir (which refuses an existing
            // name), then move the record in.
            let r = match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {
                    std::fs::rename(tmp.join(STATE_FILE), dir.join(STATE_FILE)).map_err(|e| {
                        let _ = std::fs::remove_dir(&dir);
                        Error::io("write state file", dir.join(STATE_FILE), e)
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(exists()),
                Err(e) => Err(Error::io("create state directory", &dir, e)),
            };
            let _ = std::fs::remove_dir_all(&tmp);
            r.map(|()| dir)
        }
        _ => Err(undo(Error::io(
            "rename state directory into place",
            &dir,
            e,
        ))),
    }
}

/// The directory `berth_cgroups::CgroupBuilder` will create for a cgroup
/// called `name` under `parent` (absolute inside the mount, relative to
/// it, or by default `berth` under our own cgroup), so it can be recorded
/// before it is made.
pub(crate) fn planned_cgroup(
    h: &berth_cgroups::Hierarchy,
    parent: Option<&Path>,
    name: &Path,
) -> PathBuf {
    let parent = match parent {
        Some(p) if p.is_absolute() => p.to_path_buf(),
        Some(p) => h.join(p),
        None => h.own_cgroup_dir().join("berth"),
    };
    parent.join(name.strip_prefix("/").unwrap_or(name))
}

/// The owner pid, its start time and the container id encoded in the name
/// of a `.creating-…` or `.removing-…` directory.
fn parse_temp(name: &str) -> Option<(i32, u64, &str)> {
    let rest = name
        .strip_prefix(CREATING_PREFIX)
        .or_else(|| name.strip_prefix(REMOVING_PREFIX))?;
    let mut it = rest.splitn(4, '-');
    let pid = it.next()?.parse().ok()?;
    let start = it.next()?.parse().ok()?;
    let _seq: u64 = it.next()?.parse().ok()?;
    let id = it.next()?;
    Some((pid, start, id))
}

/// What [`gc`] did.
#[derive(Debug, Default)]
pub struct GcReport {
    /// Ids of containers whose resources were reclaimed.
    pub reclaimed: Vec<String>,
    /// Ids left alone (owner alive, or detached and still running).
    pub kept: Vec<String>,
    /// Errors met on the way (gc continues past them).
    pub errors: Vec<Error>,
}

/// Reclaim every container under `root` (default root when `None`) whose
/// owner process died: kill its processes (by cgroup, else by pid when the
/// start time still matches), remove its cgroup, its network attachment
/// (IPAM entry, veth, nft rules via `berth_netsetup::gc_container`) and its
/// state directory. Detached containers are reclaimed only once their init
/// has exited. Continues past errors and lists them in the report.
///
/// ```no_run
/// let report = berth::gc(None)?;
/// println!("reclaimed {:?}", report.reclaimed);
/// # Ok::<(), berth::Error>(())
/// ```
pub fn gc(root: Option<&Path>) -> Result<GcReport> {
    let root = root
        .map(Path::to_path_buf)
        .unwrap_or_else(default_state_root);
    // Records another user could plant are never acted on.
    private_root(&root, false)?;
    let mut report = GcReport::default();
    let rd = match std::fs::read_dir(&root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(report),
        Err(e) => return Err(Error::io("read state root", &root, e)),
    };
    for ent in rd.flatten() {
        let dir = ent.path();
        if !dir.is_dir() {
            continue;
        }
        let id = ent.file_name().to_string_lossy().into_owned();
        if let Some((pid, start, cid)) = parse_temp(&id) {
            // A state directory whose owner died before renaming it into
            // place (nothing else was created for it yet), or while
            // deleting it (everything else was gone already).
            if proc_start_time(pid) == Some(start) && !proc_is_zombie(pid) {
                report.kept.push(cid.to_string());
            } else {
                match std::fs::remove_dir_all(&dir) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => report
                        .errors
                        .push(Error::io("remove state directory", &dir, e)),
                    _ => report.reclaimed.push(cid.to_string()),
                }
            }
            continue;
        }
        let path = dir.join(STATE_FILE);
        if !path.exists() {
            // Not a container's directory (e.g. berth-netsetup's `net`), or
            // one an older berth (or a file system without
            // RENAME_NOREPLACE) left between mkdir and the first state
            // write: only an empty directory is removed, and only once it
            // is old enough not to be in creation.
            let ours = std::fs::read_dir(&dir).is_ok_and(|mut rd| rd.next().is_none());
            let old = std::fs::metadata(&dir)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|d| d.as_secs() >= 60);
            if ours && old {
                match remove_state_dir(&dir) {
                    Ok(()) => report.reclaimed.push(id),
                    Err(e) => report.errors.push(e),
                }
            }
            continue;
        }
        let rec = match Record::read(&path) {
            Ok(r) => r,
            // Deleted since we listed it (its owner destroyed it).
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                continue
            }
            Err(e) => {
                // A state file being rewritten can be caught half-written.
                let young = std::fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|d| d.as_secs() < 60);
                if young {
                    report.kept.push(id);
                } else {
                    report.errors.push(e);
                }
                continue;
            }
        };
        let st = &rec.state;
        if st.owner_alive() || (st.detached && st.is_running()) {
            report.kept.push(id);
            continue;
        }
        let errs = reclaim(&dir, st, rec.cgroup_pending);
        if errs.is_empty() {
            report.reclaimed.push(id);
        } else {
            report.errors.push(Error::Teardown { id, errors: errs });
        }
    }
    Ok(report)
}

/// Delete container `id` under `root` (default root when `None`) from any
/// process, e.g. a runtime's `delete` command: kill what is left, remove its
/// cgroup, network attachment and state directory. Reports every error.
///
/// ```no_run
/// berth::delete(None, "web-1")?;
/// # Ok::<(), berth::Error>(())
/// ```
pub fn delete(root: Option<&Path>, id: &str) -> Result<()> {
    crate::builder::validate_id(id)?;
    let root = root
        .map(Path::to_path_buf)
        .unwrap_or_else(default_state_root);
    private_root(&root, false)?;
    let dir = root.join(id);
    let rec = Record::read(&dir.join(STATE_FILE))?;
    let errors = reclaim(&dir, &rec.state, rec.cgroup_pending);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Teardown {
            id: id.to_string(),
            errors,
        })
    }
}

/// Tear down everything a state record names. Returns every error.
/// `cgroup_pending`: see [`Record::cgroup_pending`].
pub(crate) fn reclaim(dir: &Path, st: &State, cgroup_pending: bool) -> Vec<Error> {
    let mut errs = Vec::new();
    let mut cgroup_done = false;
    if let (Some(cg), true) = (&st.cgroup, cgroup_pending) {
        // Recorded before mkdir and never confirmed: the owner died before
        // or right after creating it, before any process was cloned into
        // it. Remove it only if it is an empty cgroup (rmdir(2) fails with
        // EBUSY on a populated one, which then is not ours).
        match std::fs::remove_dir(cg) {
            Ok(()) => cgroup_done = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => cgroup_done = true,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                tracing::warn!(container = %st.id, cgroup = %cg.display(), "gc: a populated cgroup under a name this container never confirmed: left alone");
                cgroup_done = true;
            }
            Err(e) => errs.push(Error::io("remove unconfirmed cgroup", cg, e)),
        }
    } else if let Some(cg) = &st.cgroup {
        match berth_cgroups::Hierarchy::discover() {
            Ok(h) => {
                let rel = cg.strip_prefix(h.mount_point()).unwrap_or(cg);
                match berth_cgroups::Cgroup::open(&h, rel) {
                    // remove() kills what is left inside and waits for it.
                    Ok(c) => match c.remove() {
                        Ok(()) => cgroup_done = true,
                        Err(e) => errs.push(e.into()),
                    },
                    Err(_) if !cg.exists() => cgroup_done = true,
                    Err(e) => errs.push(e.into()),
                }
            }
            Err(e) => errs.push(e.into()),
        }
    }
    if !cgroup_done && st.is_running() {
        if let Some(pid) = st.pid {
            // The start time matched just above.
            use berth_sys::signal::{kill, Signal};
            if let Err(source) = kill(pid, Signal::SIGKILL) {
                errs.push(Error::Process {
                    what: "kill",
                    id: st.id.clone(),
                    source,
                });
            }
        }
    }
    if let (Some(pid), Some(start)) = (st.pasta_pid, st.pasta_start) {
        if let Err(e) = crate::pasta::stop_recorded(pid, start) {
            errs.push(e);
        }
    }
    if let Some(n) = &st.network {
        if let Err(e) = berth_netsetup::gc_container(&n.state_dir, None, &st.id) {
            errs.push(e.into());
        }
    }
    for m in &st.mounts {
        let _ = berth_sys::ns::umount_detach(m);
    }
    if errs.is_empty() {
        if let Err(e) = remove_state_dir(dir) {
            errs.push(e);
        }
    }
    errs
}

/// Remove a state directory. It is first renamed out of the way, in one
/// `rename(2)`, to `.removing-<our pid>-<start time>-<seq>-<id>`: an owner
/// killed while deleting leaves either the whole record (gc acts on it) or
/// a tombstone [`gc`] removes once that owner is dead, never an emptied
/// `<id>` directory without a record, and the id is free again at once.
pub(crate) fn remove_state_dir(dir: &Path) -> Result<()> {
    let victim = match (dir.parent(), dir.file_name().and_then(|n| n.to_str())) {
        (Some(root), Some(name)) if !name.starts_with('.') => {
            let (pid, start) = own_start();
            let t = root.join(format!(
                "{REMOVING_PREFIX}{pid}-{start}-{}-{name}",
                SEQ.fetch_add(1, Ordering::Relaxed)
            ));
            match std::fs::rename(dir, &t) {
                Ok(()) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                // Remove in place then.
                Err(_) => dir.to_path_buf(),
            }
        }
        _ => dir.to_path_buf(),
    };
    // The usual content is the record alone: unlink it and remove the
    // directory (two syscalls); anything else there goes with remove_dir_all.
    match std::fs::remove_file(victim.join(STATE_FILE)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("remove state record", &victim, e)),
    }
    match std::fs::remove_dir(&victim) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    match std::fs::remove_dir_all(&victim) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove state directory", &victim, e)),
    }
}

/// Our pid and its start time (cached per pid: a forked child is another
/// process).
pub(crate) fn own_start() -> (i32, u64) {
    static CACHE: std::sync::Mutex<(i32, u64)> = std::sync::Mutex::new((0, 0));
    let pid = std::process::id() as i32;
    let mut c = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if c.0 != pid {
        *c = (pid, proc_start_time(pid).unwrap_or(0));
    }
    *c
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn start_time_of_self() {
        let me = std::process::id() as i32;
        let a = proc_start_time(me).unwrap();
        assert_eq!(proc_start_time(me), Some(a));
        assert_eq!(proc_start_time(i32::MAX), None);
    }

    #[test]
    fn gc_leaves_foreign_dirs_and_removes_old_half_made_ones() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("net")).unwrap();
        std::fs::write(d.path().join("net/x.json"), "{}").unwrap();
        for name in ["young", "old"] {
            std::fs::create_dir_all(d.path().join(name)).unwrap();
        }
        let past = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::open(d.path().join("old"))
            .unwrap()
            .set_modified(past)
            .unwrap();
        let r = gc(Some(d.path())).unwrap();
        assert_eq!(r.reclaimed, ["old"]);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert!(d.path().join("net/x.json").exists());
        assert!(d.path().join("young").exists());
    }

    fn record(id: &str, owner_pid: i32, owner_start: u64) -> State {
        State {
            id: id.into(),
            pid: None,
            pid_start: None,
            owner_pid,
            owner_start,
            cgroup: None,
            mounts: vec![],
            network: None,
            pasta_pid: None,
            pasta_start: None,
            created: false,
            detached: false,
            created_at: now_secs(),
        }
    }

    #[test]
    fn state_dir_appears_with_its_record_and_only_once() {
        let d = tempfile::tempdir().unwrap();
        let me = std::process::id() as i32;
        let st = record("c1", me, proc_start_time(me).unwrap());
        let dir = create_state_dir(d.path(), &st).unwrap();
        assert_eq!(State::read(&dir.join(STATE_FILE)).unwrap(), st);
        assert!(matches!(
            create_state_dir(d.path(), &st),
            Err(Error::AlreadyExists { .. })
        ));
        // An empty directory of that name (an older berth's half-made one)
        // is not replaced either.
        std::fs::create_dir(d.path().join("c2")).unwrap();
        assert!(matches!(
            create_state_dir(d.path(), &record("c2", me, 1)),
            Err(Error::AlreadyExists { .. })
        ));
        // Nothing but the two directories: no `.creating-` left over.
        assert!(!Record::read(&dir.join(STATE_FILE)).unwrap().cgroup_pending);
        let mut names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["c1", "c2"]);
        // A live owner's record is kept by gc.
        let r = gc(Some(d.path())).unwrap();
        assert!(r.kept.contains(&"c1".to_string()), "{r:?}");
        assert!(d.path().join("c1").exists());
    }

    #[test]
    fn gc_removes_a_dead_owners_creating_dir_and_keeps_a_live_ones() {
        let d = tempfile::tempdir().unwrap();
        let me = std::process::id() as i32;
        let start = proc_start_time(me).unwrap();
        let live = d
            .path()
            .join(format!("{CREATING_PREFIX}{me}-{start}-7-live.a-b"));
        // A start time that is not the process's: the owner is gone (pid reused).
        let dead = d
            .path()
            .join(format!("{CREATING_PREFIX}{me}-{}-8-dead-1", start + 1));
        let gone = d
            .path()
            .join(format!("{REMOVING_PREFIX}{}-5-9-gone", i32::MAX));
        for p in [&live, &dead, &gone] {
            std::fs::create_dir(p).unwrap();
        }
        std::fs::create_dir(gone.join("rootfs")).unwrap();
        std::fs::write(dead.join(STATE_FILE), b"{\"trunc").unwrap();
        assert_eq!(
            parse_temp(live.file_name().unwrap().to_str().unwrap()),
            Some((me, start, "live.a-b"))
        );
        let r = gc(Some(d.path())).unwrap();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        let mut rec = r.reclaimed.clone();
        rec.sort();
        assert_eq!(rec, ["dead-1", "gone"]);
        assert_eq!(r.kept, ["live.a-b"]);
        assert!(live.exists() && !dead.exists() && !gone.exists());
        // Removing goes through a tombstone and leaves nothing.
        let st = record("c9", me, start);
        let dir = create_state_dir(d.path(), &st).unwrap();
        std::fs::create_dir(dir.join("upper")).unwrap();
        remove_state_dir(&dir).unwrap();
        remove_state_dir(&dir).unwrap();
        std::fs::remove_dir(&live).unwrap();
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[test]
    fn gc_removes_an_unconfirmed_cgroup_only_when_empty() {
        // A plain directory stands in for the cgroup: gc must only rmdir
        // it (never recurse into it, never kill).
        let d = tempfile::tempdir().unwrap();
        let cg = tempfile::tempdir().unwrap();
        let empty = cg.path().join("empty");
        let full = cg.path().join("full");
        std::fs::create_dir(&empty).unwrap();
        std::fs::create_dir_all(full.join("child")).unwrap();
        for (id, path) in [("e", &empty), ("m", &cg.path().join("missing"))] {
            let mut st = record(id, i32::MAX, 1);
            st.cgroup = Some(path.clone());
            let dir = create_state_dir(d.path(), &st).unwrap();
            assert!(Record::read(&dir.join(STATE_FILE)).unwrap().cgroup_pending);
        }
        let r = gc(Some(d.path())).unwrap();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(r.reclaimed.len(), 2);
        assert!(!empty.exists());
        // Not empty (ENOTEMPTY, not EBUSY): an error, and it stays.
        let mut st = record("f", i32::MAX, 1);
        st.cgroup = Some(full.clone());
        create_state_dir(d.path(), &st).unwrap();
        let r = gc(Some(d.path())).unwrap();
        assert_eq!(r.errors.len(), 1, "{r:?}");
        assert!(full.join("child").exists());
        assert!(d.path().join("f").exists());
    }

    #[test]
    fn rewrite_in_place_pads_a_shorter_record_and_confirms_the_cgroup() {
        let d = tempfile::tempdir().unwrap();
        let mut st = record("p", 3, 4);
        st.cgroup = Some("/sys/fs/cgroup/unified/berth/p".into());
        st.network = Some(NetworkState {
            network: "a-long-network-name".into(),
            state_dir: "/run/berth/net/a-long-network-name".into(),
        });
        let dir = create_state_dir(d.path(), &st).unwrap();
        let path = dir.join(STATE_FILE);
        assert!(Record::read(&path).unwrap().cgroup_pending);
        let ino = std::fs::metadata(&path).unwrap().ino();
        let first_len = std::fs::metadata(&path).unwrap().len();
        // Shorter: no network any more, and the cgroup is confirmed.
        st.network = None;
        st.write(&dir).unwrap();
        let m = std::fs::metadata(&path).unwrap();
        assert_eq!(m.ino(), ino, "rewritten in place, not replaced");
        assert_eq!(m.len(), first_len, "padded, never truncated");
        let rec = Record::read(&path).unwrap();
        assert!(!rec.cgroup_pending);
        assert_eq!(rec.state, st);
        // Longer again: the padding is overwritten.
        st.pid = Some(123_456);
        st.pid_start = Some(u64::MAX);
        st.network = Some(NetworkState {
            network: "an-even-longer-network-name-than-before".into(),
            state_dir: "/run/berth/net/an-even-longer-network-name-than-before".into(),
        });
        st.write(&dir).unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() > first_len);
        assert_eq!(State::read(&path).unwrap(), st);
    }

    #[test]
    fn state_file_writes_never_follow_a_planted_symlink() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let dir = d.path().join("c");
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::symlink(&victim, dir.join(STATE_FILE)).unwrap();
        let e = record("c", 1, 2).write(&dir).unwrap_err();
        assert!(
            matches!(&e, Error::Io { source, .. } if source.raw_os_error() == Some(libc::ELOOP)),
            "{e}"
        );
        assert!(State::read(&dir.join(STATE_FILE)).is_err());
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        // A new record is 0600 in a 0700 directory.
        let st = record("n", 1, 2);
        let dir = create_state_dir(d.path(), &st).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o7777, 0o700);
        let m = std::fs::metadata(dir.join(STATE_FILE)).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o600);
    }

    #[test]
    fn state_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let st = State {
            id: "x".into(),
            pid: Some(1),
            pid_start: Some(2),
            owner_pid: 3,
            owner_start: 4,
            cgroup: Some("/sys/fs/cgroup/x".into()),
            mounts: vec![],
            network: Some(NetworkState {
                network: "n".into(),
                state_dir: "/run/n".into(),
            }),
            pasta_pid: None,
            pasta_start: None,
            created: true,
            detached: false,
            created_at: 5,
        };
        st.write(d.path()).unwrap();
        assert_eq!(State::read(&d.path().join(STATE_FILE)).unwrap(), st);
        assert!(!st.owner_alive());
    }
}
