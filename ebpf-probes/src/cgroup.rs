//! Cgroup v2 directory helpers: open a cgroup directory and compute its id.
//!
//! This crate never depends on `berth-cgroups`: callers hand it the cgroup
//! as a directory fd (anything [`AsFd`]) or a path.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use crate::error::{Error, Result};

/// Open a cgroup v2 directory (`O_RDONLY | O_DIRECTORY | O_CLOEXEC`) and
/// check with `fstatfs(2)` that it is on cgroup2 (a tmpfs at
/// `/sys/fs/cgroup` on hybrid hosts is refused).
///
/// ```no_run
/// let fd = berth_ebpf_probes::open_cgroup("/sys/fs/cgroup/unified/web-1")?;
/// # Ok::<(), berth_ebpf_probes::Error>(())
/// ```
pub fn open_cgroup(path: impl AsRef<Path>) -> Result<OwnedFd> {
    let path = path.as_ref();
    let file_err = |what, source| Error::File {
        what,
        path: path.to_path_buf(),
        source,
    };
    let fd = berth_sys::fs::open_dir(path).map_err(|e| file_err("opening cgroup", e))?;
    let is_cgroup2 = berth_sys::magic::check_cgroup2(fd.as_fd())
        .map_err(|e| file_err("fstatfs of cgroup", e))?;
    if is_cgroup2.is_err() {
        return Err(file_err(
            "not a cgroup v2 directory (fstatfs magic differs from CGROUP2_SUPER_MAGIC)",
            io::Error::from_raw_os_error(libc::ENOTDIR),
        ));
    }
    Ok(fd)
}

/// The cgroup id of a cgroup v2 directory: its inode number (`fstat(2)`),
/// which is what `bpf_get_current_cgroup_id()` returns for tasks inside it
/// (kernfs node id, 64-bit since Linux 5.5; helper since 4.18).
pub fn cgroup_id(cgroup: impl AsFd) -> Result<u64> {
    let fd = cgroup.as_fd();
    berth_sys::fs::inode(fd).map_err(|source| Error::File {
        what: "fstat of cgroup",
        path: format!("/proc/self/fd/{}", fd.as_raw_fd()).into(),
        source,
    })
}
