//! The crate's one error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while building or preparing a security policy.
///
/// Variants say what was being done and to what; kernel failures carry the
/// `std::io::Error` (errno) as their source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A capability name that the `caps` crate (and the kernel) does not know.
    #[error("unknown capability name {name:?}")]
    UnknownCapability {
        /// The name as given.
        name: String,
    },
    /// The capability sets contradict each other (e.g. ambient not in permitted).
    #[error("invalid capability sets: {reason}")]
    InvalidCapabilities {
        /// What is inconsistent.
        reason: String,
    },
    /// The seccomp profile JSON could not be parsed.
    #[error("parse seccomp profile: {source}")]
    ProfileJson {
        /// The serde error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// The seccomp profile is well-formed JSON but says something invalid.
    #[error("invalid seccomp profile: {reason}")]
    InvalidProfile {
        /// What is wrong, naming the offending field or value.
        reason: String,
    },
    /// The compiled BPF program is too large for the kernel (`BPF_MAXINSNS` = 4096).
    #[error("seccomp program has {len} instructions, more than the kernel's limit of 4096")]
    ProgramTooLarge {
        /// Instruction count of the generated program.
        len: usize,
    },
    /// An rlimit whose soft value exceeds its hard value, or an unknown resource.
    #[error("invalid rlimit {resource}: {reason}")]
    InvalidRlimit {
        /// The resource name (e.g. `RLIMIT_NOFILE`).
        resource: String,
        /// What is wrong.
        reason: String,
    },
    /// `oom_score_adj` outside -1000..=1000.
    #[error("oom_score_adj {value} is outside -1000..=1000")]
    InvalidOomScoreAdj {
        /// The value given.
        value: i32,
    },
    /// A requested Linux security module is not active on this kernel.
    #[error("{lsm} is not active on this kernel ({detail})")]
    LsmInactive {
        /// `"AppArmor"` or `"SELinux"`.
        lsm: &'static str,
        /// What was checked.
        detail: String,
    },
    /// A label or profile name that cannot be passed to the kernel.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidLabel {
        /// What kind of label.
        what: &'static str,
        /// The value given.
        value: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// Landlock is not supported by the running kernel (needs Linux 5.13).
    #[error("landlock is not available: {source}")]
    LandlockUnsupported {
        /// The errno of `landlock_create_ruleset`.
        #[source]
        source: io::Error,
    },
    /// A landlock rule could not be added (path missing, access not allowed for a file, ...).
    #[error("landlock rule for {path}: {source}")]
    LandlockRule {
        /// The path of the rule.
        path: PathBuf,
        /// The errno of `open` or `landlock_add_rule`.
        #[source]
        source: io::Error,
    },
    /// Reading a kernel fact (e.g. `/proc/sys/kernel/cap_last_cap`) failed.
    #[error("read {path}: {source}")]
    ReadKernelFile {
        /// The file read.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A uid/gid or supplementary group setting that cannot work.
    #[error("invalid identity: {reason}")]
    InvalidIdentity {
        /// What is wrong.
        reason: String,
    },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failure inside the child, reported as the step that failed and its errno.
///
/// Plain data (no allocation) so the child can write it to an error pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildFailure {
    /// The step that failed, e.g. `"capset"` or `"seccomp(SECCOMP_SET_MODE_FILTER)"`.
    pub step: &'static str,
    /// The `errno` the syscall returned.
    pub errno: i32,
}

impl std::fmt::Display for ChildFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}",
            self.step,
            io::Error::from_raw_os_error(self.errno)
        )
    }
}

impl std::error::Error for ChildFailure {}
