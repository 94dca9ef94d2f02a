//! The crate's single error type.

use std::io;

use crate::sys::errno_name;

/// Everything that can go wrong while configuring, spawning, joining or
/// waiting for a process. `Send + Sync + 'static` so `berth::Error` can wrap
/// it with `#[from]`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration was rejected before any process was created.
    #[error("invalid spawn configuration: {what}")]
    InvalidConfig {
        /// What was wrong, naming the offending value.
        what: String,
    },
    /// A parent-side operation failed (pipe, open, clone3, writing an id map, …).
    #[error("{op}: {} ({source})", errno_label(source))]
    Setup {
        /// The operation and its object, e.g. `open("/proc/42/ns/net")`.
        op: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A step of the child plan (or of its fixed prologue/epilogue, such as
    /// `execve`) failed inside the child; reported over the error pipe.
    #[error("{step}: {} ({source})", errno_label(source))]
    Child {
        /// The step and its object, e.g. `pivot_root("/x/rootfs")`.
        step: String,
        /// Index of the step in the plan, when it was a plan step.
        index: Option<usize>,
        /// The errno the step failed with.
        #[source]
        source: io::Error,
    },
    /// `execve` of the program failed in the child (`ENOENT`: not found,
    /// `EACCES`: not executable, …); reported over the error pipe.
    #[error("execve({program:?}): {} ({source})", errno_label(source))]
    Exec {
        /// The program (`argv[0]` or [`Spawner::program`](crate::Spawner::program)).
        program: std::ffi::OsString,
        /// The errno `execve` failed with.
        #[source]
        source: io::Error,
    },
    /// A step (most likely a [`Step::hook`](crate::Step::hook)) or berth's
    /// own code panicked in the child. The panic was caught at the child's
    /// entry, which then ended: it never unwinds into the parent's frames.
    #[error("{step} panicked in the child (child-side code must not panic); the child exited")]
    ChildPanicked {
        /// The step, or the part of the child's setup, that panicked.
        step: String,
        /// Index of the step in the plan, when it was a plan step.
        index: Option<usize>,
    },
    /// `newuidmap`/`newgidmap` refused the mapping.
    #[error("{tool} for pid {pid} failed ({status}): {stderr}")]
    IdMapTool {
        /// `newuidmap` or `newgidmap`.
        tool: &'static str,
        /// The child the map was for.
        pid: i32,
        /// Exit status of the tool.
        status: String,
        /// What the tool printed.
        stderr: String,
    },
    /// The parent-side hook ([`Spawner::after_clone`](crate::Spawner::after_clone)) failed;
    /// the child was killed and reaped.
    #[error("after-clone hook failed for pid {pid}: {source}")]
    Hook {
        /// The child the hook ran for.
        pid: i32,
        /// The hook's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The child ended before reporting the outcome of its plan.
    #[error("child {pid} exited before finishing its plan ({status})")]
    ChildVanished {
        /// Its pid.
        pid: i32,
        /// How it ended.
        status: String,
    },
}

fn errno_label(e: &io::Error) -> &'static str {
    e.raw_os_error().map(errno_name).unwrap_or("error")
}

impl Error {
    /// The errno behind this error, when there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Setup { source, .. }
            | Error::Child { source, .. }
            | Error::Exec { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    pub(crate) fn setup(op: impl Into<String>, errno: i32) -> Self {
        Error::Setup {
            op: op.into(),
            source: io::Error::from_raw_os_error(errno),
        }
    }

    pub(crate) fn setup_io(op: impl Into<String>, source: io::Error) -> Self {
        Error::Setup {
            op: op.into(),
            source,
        }
    }

    pub(crate) fn invalid(what: impl Into<String>) -> Self {
        Error::InvalidConfig { what: what.into() }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
