//! The crate's one error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in `berth-cgroups`. Each variant says what was
/// being done, to which cgroup/file, and carries the errno where there is one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No cgroup2 filesystem is mounted (per `/proc/self/mountinfo`).
    #[error("no cgroup2 mount found in /proc/self/mountinfo")]
    NoCgroup2Mount,

    /// A path that should be a cgroup2 filesystem is something else (e.g. the
    /// tmpfs at `/sys/fs/cgroup` on a hybrid host).
    #[error("{path} is not a cgroup2 filesystem (statfs f_type {fs_type:#x}, expected CGROUP2_SUPER_MAGIC 0x63677270)")]
    NotCgroup2 {
        /// The path that was checked.
        path: PathBuf,
        /// The filesystem magic found there.
        fs_type: i64,
    },

    /// Reading a kernel file (mountinfo, /proc/self/cgroup, a cgroup file) failed.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The errno.
        #[source]
        source: io::Error,
    },

    /// Writing a value into a cgroup interface file failed.
    #[error("writing {value:?} to {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The value that was written.
        value: String,
        /// The errno.
        #[source]
        source: io::Error,
    },

    /// Opening a cgroup directory failed.
    #[error("opening cgroup {path}: {source}")]
    Open {
        /// The cgroup directory.
        path: PathBuf,
        /// The errno.
        #[source]
        source: io::Error,
    },

    /// Creating a cgroup directory failed.
    #[error("creating cgroup {path}: {source}")]
    Create {
        /// The cgroup directory.
        path: PathBuf,
        /// The errno.
        #[source]
        source: io::Error,
    },

    /// Removing a cgroup directory failed (after retrying while it drained).
    #[error("removing cgroup {path}: {source}")]
    Remove {
        /// The cgroup directory.
        path: PathBuf,
        /// The errno of the last attempt.
        #[source]
        source: io::Error,
    },

    /// A kernel file did not have the expected format.
    #[error("parsing {what}: unexpected content {content:?}")]
    Parse {
        /// The file or value being parsed.
        what: String,
        /// The offending text (or line).
        content: String,
    },

    /// A cgroup path or name is not acceptable (absolute, `..`, empty, NUL...).
    #[error("invalid cgroup path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A resource value failed validation; nothing was written.
    #[error("invalid resource {field} = {value}: {reason}")]
    InvalidResource {
        /// The resource field (`cpu.weight`, `io.max`, ...).
        field: &'static str,
        /// The offending value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Controllers needed for the resources are not available in the
    /// cgroup: every missing one is named at once.
    #[error("controller {controller} is not available for cgroup {cgroup} on the cgroup2 mount {mount} ({bound})")]
    MissingController {
        /// The controller's name (`memory`, `cpu`, ...); several missing
        /// ones are listed comma-separated (`memory, pids, cpu`).
        controller: String,
        /// The cgroup where it was needed.
        cgroup: PathBuf,
        /// The cgroup2 mount point.
        mount: PathBuf,
        /// Where the controller is bound instead, as a sentence
        /// ("bound to the cgroup v1 hierarchy at /sys/fs/cgroup/memory" or
        /// "not enabled in the parent's cgroup.subtree_control" ...); with
        /// several controllers, one `name: sentence` per controller,
        /// separated by `; `.
        bound: String,
    },

    /// Enabling a domain controller (memory, io...) failed because the cgroup
    /// has processes of its own (the cgroup v2 "no internal processes" rule;
    /// the root and threaded controllers such as pids/cpu are exempt).
    #[error("cannot enable controller {controller} in {cgroup}/cgroup.subtree_control: the cgroup has processes of its own (no-internal-processes rule); create the group under a leaf-free parent")]
    InternalProcesses {
        /// The controller.
        controller: String,
        /// The cgroup whose `cgroup.subtree_control` refused it.
        cgroup: PathBuf,
    },

    /// Applying resources failed part-way: earlier files were written.
    #[error("applying resources to {cgroup}: writing {value:?} to {file} failed: {source} (already applied: {applied:?})")]
    Apply {
        /// The cgroup.
        cgroup: PathBuf,
        /// The interface file that failed.
        file: String,
        /// The value that was written.
        value: String,
        /// Files (and values) written successfully before the failure.
        applied: Vec<(String, String)>,
        /// The errno.
        #[source]
        source: io::Error,
    },

    /// A block device given for `io.max`/`io.weight` does not exist.
    #[error("block device {major}:{minor} does not exist (/sys/dev/block/{major}:{minor})")]
    NoSuchDevice {
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
    },

    /// Waiting for a cgroup state (frozen, thawed, empty) timed out.
    #[error("timed out after {timeout:?} waiting for cgroup {cgroup} to become {state}")]
    Timeout {
        /// The cgroup.
        cgroup: PathBuf,
        /// The state waited for.
        state: &'static str,
        /// How long was waited.
        timeout: std::time::Duration,
    },

    /// A system call failed.
    #[error("{call} on {path}: {source}")]
    Sys {
        /// The call (`inotify_init1`, `poll`, `fstat`, `pidfd_send_signal`...).
        call: &'static str,
        /// The path (cgroup or file) it was made for.
        path: PathBuf,
        /// The errno.
        #[source]
        source: io::Error,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    #[test]
    fn error_is_send_sync_static() {
        fn check<T: Send + Sync + 'static + std::error::Error>() {}
        check::<super::Error>();
    }
}
