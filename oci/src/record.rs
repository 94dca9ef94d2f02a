//! What berth-oci keeps about each container under the state root
//! (`--root`): the typed [`Record`] (`.meta/<id>.json`), the configuration
//! snapshot (`.meta/<id>.config`), the holder's socket (`.meta/<id>.sock`),
//! and the OCI state ([`OciState`]) computed from them and berth's own
//! state file (`<root>/<id>/state.json`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::log;

/// The OCI runtime spec version berth-oci implements (`state`'s
/// `ociVersion`, `--version`).
pub const OCI_VERSION: &str = "1.2.0";

/// The state root and the global settings every command uses.
pub struct Ctx {
    /// `--root` (default `/run/berth-oci`).
    pub root: PathBuf,
    /// `--allow-unenforced-limits` or its environment variable.
    pub allow_unenforced: bool,
}

/// berth-oci's record of one container (`.meta/<id>.json`, mode 0600).
/// Fields added later default, so records of an older berth-oci load.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Record {
    /// The container id.
    pub id: String,
    /// The bundle directory (absolute).
    pub bundle: String,
    /// `root.path` against the bundle, as runc reports it.
    #[serde(default)]
    pub rootfs: String,
    /// When `create` began (RFC 3339, nanoseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The bundle's annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The process holding the created container until `start` (`create`'s
    /// holder, or `run` itself); 0 once there is none.
    #[serde(default)]
    pub holder_pid: i32,
    /// The holder's start time (`/proc/<pid>/stat` field 22): a reused pid
    /// is not the holder.
    #[serde(default)]
    pub holder_start: u64,
    /// The container's own v1 groups on a hybrid host (see `v1::join`).
    #[serde(default)]
    pub v1_cgroups: Vec<PathBuf>,
}

impl Record {
    /// A new record of `bundle`'s container `id`, created now.
    pub fn new(bundle: &berth::Bundle, id: &str) -> Record {
        let annotations = bundle
            .spec()
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        // The rootfs as runc reports it: `root.path` against the bundle.
        let rootfs = bundle
            .spec()
            .root()
            .as_ref()
            .map(|r| bundle.dir().join(r.path()).display().to_string())
            .unwrap_or_default();
        Record {
            id: id.to_string(),
            bundle: bundle.dir().display().to_string(),
            rootfs,
            created: Some(log::now_rfc3339()),
            annotations,
            ..Record::default()
        }
    }

    /// Make this process the holder.
    pub fn hold_here(&mut self) {
        let me = std::process::id() as i32;
        self.holder_pid = me;
        self.holder_start = start_time(me).unwrap_or(0);
    }

    /// Whether the holder still runs.
    pub fn holder_alive(&self) -> bool {
        self.holder_pid > 0 && start_time(self.holder_pid) == Some(self.holder_start)
    }

    /// The recorded v1 groups, only ones under `/sys/fs/cgroup` without
    /// `..` (the record is ours, but never trusted to name other paths).
    pub fn v1_groups(&self) -> Vec<PathBuf> {
        self.v1_cgroups
            .iter()
            .filter(|p| {
                p.starts_with("/sys/fs/cgroup")
                    && !p.components().any(|c| c == std::path::Component::ParentDir)
            })
            .cloned()
            .collect()
    }
}

/// A container's OCI status (runtime spec, runtime.md "State").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// `create` is building it.
    Creating,
    /// Built, its process waiting for `start`.
    Created,
    /// Its process runs.
    Running,
    /// Its cgroup is frozen (`pause`).
    Paused,
    /// Its process is gone.
    Stopped,
}

impl Status {
    /// The spec's name.
    pub fn name(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }

    /// Created, running or paused: a process to signal.
    pub fn is_alive(self) -> bool {
        matches!(self, Status::Created | Status::Running | Status::Paused)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The state `state` prints and hooks read on stdin, with runc's fields:
/// go-runc (containerd's shim) reads `rootfs` and `created`; `owner` is
/// empty in runc's `state`. Fields in alphabetical order (runc's JSON
/// and ours before this type: a sorted map).
#[derive(Clone, Debug, Serialize)]
pub struct OciState {
    /// The bundle's annotations.
    pub annotations: BTreeMap<String, String>,
    /// The bundle directory.
    pub bundle: String,
    /// Creation time, RFC 3339.
    pub created: String,
    /// The container id.
    pub id: String,
    /// [`OCI_VERSION`].
    #[serde(rename = "ociVersion")]
    pub oci_version: &'static str,
    /// Always empty, as runc's.
    pub owner: String,
    /// The init's pid (0 once stopped).
    pub pid: i32,
    /// The rootfs path.
    pub rootfs: String,
    /// The status.
    pub status: Status,
}

impl OciState {
    /// The JSON text (hooks' stdin, `list --format json`).
    pub fn to_json(&self) -> String {
        // A struct of strings and numbers: serialisation cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Ctx {
    /// `.meta`: berth-oci's own files under the root.
    pub fn meta_dir(&self) -> PathBuf {
        self.root.join(".meta")
    }

    /// `id`'s [`Record`].
    pub fn meta_path(&self, id: &str) -> PathBuf {
        self.meta_dir().join(format!("{id}.json"))
    }

    /// The holder's socket of `id` (created containers only).
    pub fn sock_path(&self, id: &str) -> PathBuf {
        self.meta_dir().join(format!("{id}.sock"))
    }

    /// The configuration snapshot taken at create (see [`Ctx::save_config`]).
    pub fn config_path(&self, id: &str) -> PathBuf {
        self.meta_dir().join(format!("{id}.config"))
    }

    /// Whether `id` is taken (a record, or berth state of that id).
    pub fn exists(&self, id: &str) -> bool {
        self.meta_path(id).exists() || self.root.join(id).exists()
    }

    /// `id`'s record; "container ID does not exist" without one.
    pub fn load(&self, id: &str) -> Result<Record> {
        let p = self.meta_path(id);
        let b = std::fs::read(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::NotFound(id.to_string())
            } else {
                Error::io(format!("read {}", p.display()))(e)
            }
        })?;
        serde_json::from_slice(&b).map_err(Error::json(format!("parse {}", p.display())))
    }

    /// Prepare the root and write `id`'s first record. A concurrent
    /// `delete` may remove `.meta` while it is empty ([`Ctx::remove_meta`]),
    /// so a write that finds it gone prepares it again.
    pub fn first_write(&self, rec: &Record) -> Result<()> {
        let mut tries = 0;
        loop {
            self.prepare_root()?;
            match self.write(rec) {
                Err(_) if tries < 8 && !self.meta_dir().exists() => tries += 1,
                r => return r,
            }
        }
    }

    /// Replace `rec`'s record (a temporary file renamed over it).
    pub fn write(&self, rec: &Record) -> Result<()> {
        let p = self.meta_path(&rec.id);
        let tmp = self.meta_dir().join(format!(".{}.tmp", rec.id));
        let text = serde_json::to_vec(rec).map_err(Error::json(format!("record of {}", rec.id)))?;
        write_private(&tmp, &text).map_err(Error::io(format!("write {}", tmp.display())))?;
        std::fs::rename(&tmp, &p).map_err(Error::io(format!("write {}", p.display())))
    }

    /// Remove `id`'s files (record, configuration snapshot, holder
    /// socket), and `.meta` itself once empty, so that the root holds
    /// nothing berth-oci made once every container is deleted (as runc).
    pub fn remove_meta(&self, id: &str) {
        for p in [self.sock_path(id), self.config_path(id), self.meta_path(id)] {
            let _ = std::fs::remove_file(p);
        }
        // rmdir(2) fails (ENOTEMPTY) while another container has a record.
        let _ = std::fs::remove_dir(self.meta_dir());
    }

    /// Create the state root and `.meta` (mode 0700), or tighten existing
    /// ones open to others (logged); either owned by another user is an
    /// error. (A container init in a user namespace that does not map us
    /// could not reach `<root>/<id>` to mount its tmpfs there; such
    /// bundles fail anyway as root today (mknod in a user namespace,
    /// EPERM). Docker's answer when that is supported: a root of 0711.)
    pub fn prepare_root(&self) -> Result<()> {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
        for dir in [self.root.clone(), self.meta_dir()] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(Error::io(format!("create {}", dir.display())))?;
            // The root may be reached through a symlink (the operator's
            // choice); `.meta`, inside it, must be our own directory.
            let md = if dir == self.root {
                std::fs::metadata(&dir)
            } else {
                std::fs::symlink_metadata(&dir)
            }
            .map_err(Error::io(format!("stat {}", dir.display())))?;
            let me = berth_sys::fs::euid();
            if !md.is_dir() || md.uid() != me {
                return Err(Error::Config(format!(
                    "state directory {} is not a directory owned by uid {me}",
                    dir.display()
                )));
            }
            let mode = md.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(Error::io(format!("chmod 0700 {}", dir.display())))?;
                log::warn(&format!(
                    "state directory {} had mode {mode:04o}: tightened to 0700",
                    dir.display()
                ));
            }
        }
        Ok(())
    }

    /// Save the configuration `create` (or `run`) builds the container from
    /// as `<root>/.meta/<id>.config` (mode 0600, created exclusively, never
    /// through a symlink): `exec`, `start` and `delete` (hooks,
    /// capabilities, seccomp) read only this snapshot, so editing the
    /// bundle after create changes nothing (runc keeps its own copy in
    /// state.json likewise).
    pub fn save_config(&self, id: &str, spec: &oci_spec::runtime::Spec) -> Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let p = self.config_path(id);
        let text =
            serde_json::to_vec(spec).map_err(Error::json(format!("snapshot config of {id}")))?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&p)
            .map_err(Error::io(format!("create {}", p.display())))?;
        f.write_all(&text)
            .map_err(Error::io(format!("write {}", p.display())))
    }

    /// The configuration snapshot of `id` (see [`Ctx::save_config`]).
    pub fn load_config(&self, id: &str) -> Result<oci_spec::runtime::Spec> {
        use std::os::unix::fs::OpenOptionsExt;
        let p = self.config_path(id);
        let mut text = Vec::new();
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&p)
            .and_then(|mut f| f.read_to_end(&mut text))
            .map_err(Error::io(format!(
                "read the configuration snapshot {}",
                p.display()
            )))?;
        serde_json::from_slice(&text).map_err(Error::json(format!("parse {}", p.display())))
    }

    /// The hooks of the configuration snapshot of `id` (never the bundle's
    /// `config.json`, which may have changed since create).
    pub fn snapshot_hooks(&self, id: &str) -> Option<oci_spec::runtime::Hooks> {
        self.load_config(id).ok().and_then(|s| s.hooks().clone())
    }

    /// The OCI status of a container and its berth state (if written yet).
    pub fn status(&self, id: &str, rec: &Record) -> (Status, Option<berth::State>) {
        let st = berth::State::load(Some(&self.root), id).ok();
        let s = match &st {
            None if rec.holder_alive() => Status::Creating,
            None => Status::Stopped,
            // A created container can be paused too (as runc's).
            Some(st) if st.created => match (rec.holder_alive() && st.is_running(), frozen(st)) {
                (false, _) => Status::Stopped,
                (true, true) => Status::Paused,
                (true, false) => Status::Created,
            },
            Some(st) if st.is_running() => {
                if frozen(st) {
                    Status::Paused
                } else {
                    Status::Running
                }
            }
            Some(_) => Status::Stopped,
        };
        (s, st)
    }

    /// The OCI state of a container.
    pub fn state(&self, id: &str, rec: &Record) -> OciState {
        let (s, st) = self.status(id, rec);
        let pid = match (s, &st) {
            (Status::Stopped, _) | (_, None) => 0,
            (_, Some(st)) => st.pid.unwrap_or(0),
        };
        // A record made before `created` was kept falls back to berth's
        // whole-second creation time.
        let created = match (&rec.created, &st) {
            (Some(c), _) => c.clone(),
            (None, Some(st)) => log::rfc3339(Duration::from_secs(st.created_at)),
            (None, None) => String::new(),
        };
        OciState {
            annotations: rec.annotations.clone(),
            bundle: rec.bundle.clone(),
            created,
            id: id.to_string(),
            oci_version: OCI_VERSION,
            owner: String::new(),
            pid,
            rootfs: rec.rootfs.clone(),
            status: s,
        }
    }
}

/// Whether the container's cgroup is frozen (`cgroup.freeze`, cgroup v2,
/// Linux 5.2).
fn frozen(st: &berth::State) -> bool {
    st.cgroup
        .as_ref()
        .and_then(|c| std::fs::read_to_string(c.join("cgroup.freeze")).ok())
        .is_some_and(|v| v.trim() == "1")
}

/// Write `data` to a new or truncated regular file at `p`, mode 0600,
/// never through a symbolic link (`O_NOFOLLOW`).
fn write_private(p: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(p)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(data)
}

// Field 22 of `/proc/<pid>/stat` (start time), to detect pid reuse;
// `None` for a zombie.
use berth_sys::proc::live_start_time as start_time;
