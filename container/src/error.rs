//! The crate's single error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while configuring, creating, running or
/// tearing down a container. Wraps each leaf crate's error with `#[from]`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Spawning or joining namespaces failed (a child step names itself).
    #[error(transparent)]
    Namespaces(#[from] berth_namespaces::Error),
    /// A cgroup operation failed.
    #[error(transparent)]
    Cgroups(#[from] berth_cgroups::Error),
    /// An overlay, layer store or image layout operation failed.
    #[error(transparent)]
    Overlay(#[from] berth_overlay::Error),
    /// A network operation failed.
    #[error(transparent)]
    Netsetup(#[from] berth_netsetup::Error),
    /// Preparing the security policy failed (bad capability, seccomp profile…).
    #[error(transparent)]
    Security(#[from] berth_security::Error),
    /// Loading or attaching an eBPF program failed.
    #[error(transparent)]
    Ebpf(#[from] berth_ebpf_probes::Error),
    /// `pasta` (rootless networking) could not be started or did not
    /// configure the container's network namespace.
    #[error("rootless network (pasta) for container pid {pid}: {reason}")]
    Pasta {
        /// The container's init.
        pid: i32,
        /// What went wrong, with pasta's own messages.
        reason: String,
    },
    /// The configuration was rejected before anything was created.
    #[error("invalid container configuration: {what}")]
    InvalidConfig {
        /// What was wrong, naming the offending value.
        what: String,
    },
    /// A container with this id already has a state directory.
    #[error("container {id:?} already exists (state directory {path:?})")]
    AlreadyExists {
        /// The id.
        id: String,
        /// Its state directory.
        path: PathBuf,
    },
    /// The root filesystem directory does not exist or is not a directory.
    #[error("root filesystem {path:?} does not exist or is not a directory")]
    RootfsMissing {
        /// The path given.
        path: PathBuf,
    },
    /// A bind-mount source does not exist.
    #[error("volume source {path:?} does not exist")]
    VolumeSourceMissing {
        /// The path given.
        path: PathBuf,
    },
    /// The program was not found inside the container (`execve`: ENOENT).
    #[error("command {program:?} not found inside the container ({source})")]
    CommandNotFound {
        /// `argv[0]`.
        program: String,
        /// The spawn error that reported it.
        #[source]
        source: berth_namespaces::Error,
    },
    /// A one-shot run ([`ContainerBuilder::output`](crate::ContainerBuilder::output),
    /// [`status`](crate::ContainerBuilder::status),
    /// [`Container::wait_with_output`](crate::Container::wait_with_output))
    /// passed its [`timeout`](crate::ContainerBuilder::timeout): the
    /// container was killed and removed.
    #[error("container {id:?} timed out after {timeout:?}: killed and removed")]
    Timeout {
        /// The container.
        id: String,
        /// The limit that passed.
        timeout: std::time::Duration,
        /// What was captured before the kill; the status is the kill's.
        output: Box<std::process::Output>,
    },
    /// A file or directory operation of the container itself failed.
    #[error("{what} {path:?}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// An operation on the running container failed.
    #[error("{what} of container {id:?}: {source}")]
    Process {
        /// What was being done (`kill`, `wait`…).
        what: &'static str,
        /// The container.
        id: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The state file is unreadable or malformed.
    #[error("state file {path:?}: {reason}")]
    State {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The OCI bundle could not be mapped onto the builder.
    #[error("OCI bundle {path:?}: {reason}")]
    Bundle {
        /// The bundle directory or its `config.json`.
        path: PathBuf,
        /// What is wrong or unsupported.
        reason: String,
    },
    /// A state root is not private to the caller (another owner, writable by
    /// group or others, a symlink another user made): refused, since anything
    /// in it may have been planted, or redirected, by another user.
    #[error("refusing state root {path:?}: {reason}")]
    UnsafeStateRoot {
        /// The directory.
        path: PathBuf,
        /// Its owner and mode, and what is wrong with them.
        reason: String,
    },
    /// Several steps of a teardown failed; every error is listed.
    #[error("tearing down container {id:?} failed: {}", list(.errors))]
    Teardown {
        /// The container.
        id: String,
        /// Every error, in the order they happened.
        errors: Vec<Error>,
    },
}

fn list(errors: &[Error]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    pub(crate) fn invalid(what: impl Into<String>) -> Self {
        Error::InvalidConfig { what: what.into() }
    }

    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }
}

/// berth-security's failure in the child as berth-namespaces reports it:
/// the part of the policy that failed (`capset`,
/// `seccomp(SECCOMP_SET_MODE_FILTER)`, …) and its errno, so the spawn's
/// error names it after the hook.
pub(crate) fn step_failure(f: berth_security::ChildFailure) -> berth_namespaces::StepFailure {
    berth_namespaces::StepFailure {
        step: f.step,
        errno: f.errno,
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[allow(dead_code)]
fn _assert_send_sync() {
    fn ok<T: Send + Sync + 'static>() {}
    ok::<Error>();
}
