//! berth-oci's one error type.
//!
//! Every command returns [`Result`]; `main` prints an error as
//! `berth-oci: <message>` on stderr (and as an `error` line in `--log`)
//! and exits with status 1, as runc does. containerd's shim (go-runc) and
//! conmon read these lines: the texts of [`Error::NotFound`],
//! [`Error::NotRunning`], [`Error::BadState`] and [`Error::NotStopped`]
//! are runc 1.1's and must not change (`tests/oci_cli_compat.rs` checks
//! them against runc's table).

use std::path::PathBuf;
use std::process::ExitStatus;

use crate::record::Status;

/// What a berth-oci command can fail with: what was being done, to which
/// container, path or hook, and the cause (an errno through
/// [`std::io::Error`], or the library's error, which carries its own).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line is wrong: an unknown flag or command, a missing
    /// value, a value that does not parse.
    #[error("{0}")]
    Usage(String),
    /// The bundle or a request asks for something berth-oci refuses or
    /// this host cannot give (named in the text).
    #[error("{0}")]
    Config(String),
    /// No container of this id under the state root (runc's words).
    #[error("container {0} does not exist")]
    NotFound(String),
    /// A container of this id exists already.
    #[error("container {0} already exists")]
    Exists(String),
    /// runc's "container not running" class: containerd's shim
    /// (`checkKillError`) and conmon treat it as "already finished".
    #[error("{what}: container not running")]
    NotRunning {
        /// What was asked, e.g. `cannot kill container ID`.
        what: String,
    },
    /// An operation the container's state does not allow, in runc's
    /// words (`cannot start container ID: cannot start a container that
    /// has stopped`).
    #[error("cannot {op} container {id}: {why}")]
    BadState {
        /// The operation (`start`, `pause`, `exec in`, ...).
        op: &'static str,
        /// The container.
        id: String,
        /// Why not, naming the state.
        why: String,
    },
    /// `delete` without `--force` of a container that is not stopped
    /// (engines match "not stopped").
    #[error("cannot delete container {id} that is not stopped: {status} (use --force)")]
    NotStopped {
        /// The container.
        id: String,
        /// Its state.
        status: Status,
    },
    /// A file, socket or system call failed: what was done, to which
    /// path, and the errno.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, naming the path or object.
        what: String,
        /// The cause (its errno).
        #[source]
        source: std::io::Error,
    },
    /// A JSON document did not parse (or serialise).
    #[error("{what}: {source}")]
    Json {
        /// Which document, from where.
        what: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The berth library failed at a named step of a named container.
    #[error("{what}: {source}")]
    Container {
        /// What was being done (`create container ID`, `delete ID`, ...).
        what: String,
        /// The library's error (it names its own path and errno); boxed,
        /// as it is large.
        #[source]
        source: Box<berth::Error>,
    },
    /// The berth library (or one of its layers) failed; its error says
    /// what and where.
    #[error(transparent)]
    Berth(Box<berth::Error>),
    /// A hook could not be started.
    #[error("{kind} hook {}: {source}", path.display())]
    HookSpawn {
        /// Its lifecycle point (`prestart`, `poststop`, ...).
        kind: &'static str,
        /// Its executable.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A hook exited unsuccessfully.
    #[error("{kind} hook {} failed: {status}", path.display())]
    HookFailed {
        /// Its lifecycle point.
        kind: &'static str,
        /// Its executable.
        path: PathBuf,
        /// How it ended.
        status: ExitStatus,
    },
    /// A hook outlived its `timeout` (it was killed).
    #[error("{kind} hook {} timed out after {secs}s", path.display())]
    HookTimeout {
        /// Its lifecycle point.
        kind: &'static str,
        /// Its executable.
        path: PathBuf,
        /// The bundle's timeout.
        secs: i64,
    },
    /// The error another berth-oci process (the holder of a created
    /// container) reported over its pipe or socket, as it rendered it.
    #[error("{0}")]
    Holder(String),
}

/// berth-oci's result.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An [`Error::Io`] for a `map_err`: `.map_err(Error::io(format!("read
    /// {}", p.display())))`.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }

    /// An [`Error::Json`] for a `map_err`.
    pub fn json(what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> Error {
        let what = what.into();
        move |source| Error::Json { what, source }
    }

    /// An [`Error::Container`] for a `map_err`.
    pub fn container(what: impl Into<String>) -> impl FnOnce(berth::Error) -> Error {
        let what = what.into();
        move |source| Error::Container {
            what,
            source: Box::new(source),
        }
    }

    /// An [`Error::Container`] for a `map_err` on a layer's error (the
    /// cgroups, security or eBPF crate; berth wraps each transparently).
    pub fn layer<E: Into<berth::Error>>(what: impl Into<String>) -> impl FnOnce(E) -> Error {
        let what = what.into();
        move |e| Error::Container {
            what,
            source: Box::new(e.into()),
        }
    }
}

impl From<berth::Error> for Error {
    fn from(e: berth::Error) -> Error {
        Error::Berth(Box::new(e))
    }
}

impl From<berth_cgroups::Error> for Error {
    fn from(e: berth_cgroups::Error) -> Error {
        Error::Berth(Box::new(e.into()))
    }
}

impl From<berth_security::Error> for Error {
    fn from(e: berth_security::Error) -> Error {
        Error::Berth(Box::new(e.into()))
    }
}

impl From<berth_ebpf_probes::Error> for Error {
    fn from(e: berth_ebpf_probes::Error) -> Error {
        Error::Berth(Box::new(e.into()))
    }
}
