//! `--preserve-fds N` (create, run, exec): the fds 3 .. 3+N the runtime
//! was started with become the workload's under the same numbers (runc's
//! semantics; `LISTEN_FDS` is the caller's business).

use std::os::fd::RawFd;

use crate::cli::Args;
use crate::error::{Error, Result};

/// The fds open when the program started (before it opened any itself).
static START_FDS: std::sync::OnceLock<Vec<RawFd>> = std::sync::OnceLock::new();

/// Note the fds open now (`/proc/self/fd`); called first thing in `main`.
pub fn record_start_fds() {
    let fds = std::fs::read_dir("/proc/self/fd")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let _ = START_FDS.set(fds);
}

/// The fds `--preserve-fds N` names: 3 .. 3+N, each open when we started
/// (so never one of our own, such as the log file).
pub fn preserved_fds(a: &Args) -> Result<std::ops::Range<RawFd>> {
    let n: RawFd = match a.get("preserve-fds") {
        None => 0,
        Some(v) => v
            .parse()
            .ok()
            .filter(|n| (0..=65536).contains(n))
            .ok_or_else(|| Error::Usage(format!("--preserve-fds {v:?}: a count expected")))?,
    };
    let start = START_FDS.get().map(Vec::as_slice).unwrap_or_default();
    if let Some(fd) = (3..3 + n).find(|fd| !start.contains(fd)) {
        return Err(Error::Usage(format!(
            "--preserve-fds {n}: fd {fd} is not open in the runtime"
        )));
    }
    Ok(3..3 + n)
}

/// Close our copies of the preserved fds once the workload has its own, so
/// that e.g. the reader of a pipe passed in sees EOF when the workload
/// closes it (as with runc, whose `create` exits).
pub fn close_preserved(a: &Args) {
    for fd in preserved_fds(a).unwrap_or(3..3) {
        berth_sys::fs::close_inherited(fd);
    }
}
