//! The state directory: what another process needs to find, signal and
//! delete a container, and the garbage collector that reclaims containers
//! whose owner died.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Name of the JSON file inside a container's state directory.
pub const STATE_FILE: &str = "state.json";

/// The default root of state directories: `/run/berth` as root,
/// `$XDG_RUNTIME_DIR/berth` otherwise (`/tmp/berth-<uid>` without it).
pub fn default_state_root() -> PathBuf {
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    if uid == 0 {
        return PathBuf::from("/run/berth");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) => PathBuf::from(d).join("berth"),
        None => PathBuf::from(format!("/tmp/berth-{uid}")),
    }
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
    /// Absolute path of the container's cgroup directory.
    pub cgroup: Option<PathBuf>,
    /// Host mounts the container made (none in this implementation: the
    /// root filesystem is mounted inside the container's mount namespace
    /// and vanishes with it), listed for tools that clean up.
    pub mounts: Vec<PathBuf>,
    /// The bridge network attachment, if any.
    pub network: Option<NetworkState>,
    /// Created with two-phase start and not started yet.
    pub created: bool,
    /// The owner let the container run on without it; `gc` leaves it alone
    /// while its process lives.
    pub detached: bool,
    /// Creation time, seconds since the Unix epoch.
    pub created_at: u64,
}

impl State {
    pub(crate) fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(STATE_FILE);
        let tmp = dir.join(".state.json.tmp");
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::State {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        std::fs::write(&tmp, json).map_err(|e| Error::io("write state file", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("write state file", &path, e))
    }

    /// Rewrite the state file in place, without truncating or renaming
    /// first: replacing a file by rename (or truncating it) makes ext4 flush
    /// its data (`auto_da_alloc`, ext4(5)), which costs milliseconds on the
    /// spawn path. The new record is never shorter (it only gains fields),
    /// and a reader that races with the write sees invalid JSON, which
    /// [`gc`] treats as a container being created.
    pub(crate) fn update(&self, dir: &Path) -> Result<()> {
        use std::io::Write;
        let path = dir.join(STATE_FILE);
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::State {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open state file", &path, e))?;
        f.write_all(&json)
            .map_err(|e| Error::io("write state file", &path, e))?;
        let len = f
            .metadata()
            .map_err(|e| Error::io("stat state file", &path, e))?
            .len();
        if len > json.len() as u64 {
            f.set_len(json.len() as u64)
                .map_err(|e| Error::io("truncate state file", &path, e))?;
        }
        Ok(())
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
        Self::read(&root.join(id).join(STATE_FILE))
    }

    fn read(path: &Path) -> Result<State> {
        let b = std::fs::read(path).map_err(|e| Error::io("read state file", path, e))?;
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
        let esrch = || Error::Process {
            what: "signal",
            id: self.id.clone(),
            source: std::io::Error::from_raw_os_error(libc::ESRCH),
        };
        let (Some(pid), true) = (self.pid, self.is_running()) else {
            return Err(esrch());
        };
        // SAFETY: plain syscall; the fd is owned right away.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(Error::Process {
                what: "pidfd_open",
                id: self.id.clone(),
                source: std::io::Error::last_os_error(),
            });
        }
        // SAFETY: fresh fd from pidfd_open.
        let fd =
            unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
        if !self.is_running() {
            return Err(esrch());
        }
        // SAFETY: pidfd_send_signal(2) on our pidfd.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if r < 0 {
            return Err(Error::Process {
                what: "pidfd_send_signal",
                id: self.id.clone(),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// Is the owner process still alive (same pid and start time)?
    pub fn owner_alive(&self) -> bool {
        proc_start_time(self.owner_pid) == Some(self.owner_start) && !proc_is_zombie(self.owner_pid)
    }
}

/// Field 22 (`starttime`) of `/proc/<pid>/stat`: clock ticks after boot.
pub(crate) fn proc_start_time(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: skip
    // to the last ')'.
    let rest = &s[s.rfind(')')? + 1..];
    // After ')': field 3 is state; starttime is field 22 → index 19 here.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Field 3 (`state`) of `/proc/<pid>/stat` is `Z` (zombie) or `X` (dead).
pub(crate) fn proc_is_zombie(pid: i32) -> bool {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    let state = s
        .rfind(')')
        .and_then(|i| s[i + 1..].split_whitespace().next().map(str::to_string));
    matches!(state.as_deref(), Some("Z") | Some("X") | None)
}

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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
        let path = dir.join(STATE_FILE);
        if !path.exists() {
            // Not a container's directory (e.g. berth-netsetup's `net`), or
            // one whose creator died between mkdir and the first state
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
        let st = match State::read(&path) {
            Ok(s) => s,
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
        if st.owner_alive() || (st.detached && st.is_running()) {
            report.kept.push(id);
            continue;
        }
        let errs = reclaim(&dir, &st);
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
    let dir = root.join(id);
    let st = State::read(&dir.join(STATE_FILE))?;
    let errors = reclaim(&dir, &st);
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
pub(crate) fn reclaim(dir: &Path, st: &State) -> Vec<Error> {
    let mut errs = Vec::new();
    let mut cgroup_done = false;
    if let Some(cg) = &st.cgroup {
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
            // SAFETY: plain kill(2); the start time matched just above.
            if unsafe { libc::kill(pid, libc::SIGKILL) } != 0 {
                errs.push(Error::Process {
                    what: "kill",
                    id: st.id.clone(),
                    source: std::io::Error::last_os_error(),
                });
            }
        }
    }
    if let Some(n) = &st.network {
        if let Err(e) = berth_netsetup::gc_container(&n.state_dir, None, &st.id) {
            errs.push(e.into());
        }
    }
    for m in &st.mounts {
        if let Ok(c) = std::ffi::CString::new(m.as_os_str().as_encoded_bytes()) {
            // SAFETY: valid C string.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
    if errs.is_empty() {
        if let Err(e) = remove_state_dir(dir) {
            errs.push(e);
        }
    }
    errs
}

pub(crate) fn remove_state_dir(dir: &Path) -> Result<()> {
    // Everything but state.json first, state.json last: an owner killed
    // half-way leaves either a state.json for gc to act on, or an empty
    // directory gc removes after its grace period — never a non-empty
    // directory without state.json, which gc must leave alone.
    if let Ok(rd) = std::fs::read_dir(dir) {
        for ent in rd.flatten() {
            if ent.file_name() == STATE_FILE {
                continue;
            }
            let p = ent.path();
            let r = if ent.file_type().is_ok_and(|t| t.is_dir()) {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            match r {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove state directory entry", &p, e)),
            }
        }
    }
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove state directory", dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            created: true,
            detached: false,
            created_at: 5,
        };
        st.write(d.path()).unwrap();
        assert_eq!(State::read(&d.path().join(STATE_FILE)).unwrap(), st);
        assert!(!st.owner_alive());
    }
}
