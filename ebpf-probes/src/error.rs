//! The crate's single error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in `berth-ebpf-probes`.
///
/// Each variant says what was being done and, where the kernel answered,
/// carries its errno as an [`io::Error`] source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A `bpf(2)`, `perf_event_open(2)`, `ioctl(2)` or `mmap(2)` call failed.
    #[error("{op}: {source}")]
    Syscall {
        /// The call and its subject, e.g. `BPF_PROG_ATTACH(device filter) to cgroup fd 7`.
        op: String,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// The kernel refused a BPF operation for lack of privilege.
    #[error("{op}: {source} ({hint})")]
    PermissionDenied {
        /// The refused operation.
        op: String,
        /// A diagnosis: euid, whether `CAP_BPF`/`CAP_SYS_ADMIN` are effective,
        /// and `kernel.unprivileged_bpf_disabled`.
        hint: String,
        /// The errno (EPERM or EACCES).
        #[source]
        source: io::Error,
    },
    /// The verifier rejected a program; `log` is its full verdict.
    #[error("loading BPF program {program} failed: {source}\nverifier log:\n{log}")]
    Verifier {
        /// The program's name.
        program: String,
        /// The errno (usually EACCES or EINVAL).
        #[source]
        source: io::Error,
        /// The verifier log (level 1).
        log: String,
    },
    /// The running kernel is older than a feature needs.
    #[error("{feature} needs Linux {needed} or newer, this kernel is {running}")]
    KernelTooOld {
        /// The feature, e.g. `BPF ring buffer (BPF_MAP_TYPE_RINGBUF)`.
        feature: &'static str,
        /// The minimum version, e.g. `5.8`.
        needed: &'static str,
        /// `uname -r` of this host.
        running: String,
    },
    /// tracefs is not mounted and could not be mounted.
    #[error("tracefs is not available ({what}) at {path}: {source}")]
    Tracefs {
        /// What was being done.
        what: String,
        /// The path concerned.
        path: PathBuf,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// A tracepoint's `format` file lacks a field this crate reads.
    #[error("tracepoint {tracepoint}: field {field} not found in {path}")]
    TracepointFormat {
        /// `group/name`.
        tracepoint: String,
        /// The missing field.
        field: String,
        /// The `format` file read.
        path: PathBuf,
    },
    /// Reading or writing a file (cgroup, /proc, tracefs) failed.
    #[error("{what} {path}: {source}")]
    File {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// A device rule is invalid; the index is its position in the list.
    #[error("device rule #{index}: {reason}")]
    InvalidDeviceRule {
        /// Position of the rule in the list given.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The assembler could not build a program (label errors, offsets out of range).
    #[error("assembling BPF program: {0}")]
    Asm(String),
    /// Detaching or tearing down failed; every failure is listed.
    #[error("teardown of {what} failed: {}", .errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Teardown {
        /// What was being torn down.
        what: String,
        /// Each failure, in order.
        errors: Vec<Error>,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
