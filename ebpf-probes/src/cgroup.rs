//! Cgroup v2 directory helpers: open a cgroup directory and compute its id.
//!
//! This crate never depends on `berth-cgroups`: callers hand it the cgroup
//! as a directory fd (anything [`AsFd`]) or a path.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::error::{Error, Result};

/// `CGROUP2_SUPER_MAGIC` from `include/uapi/linux/magic.h` (`statfs(2)`).
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

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
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| file_err("opening cgroup", io::Error::from_raw_os_error(libc::EINVAL)))?;
    // SAFETY: c is a valid NUL-terminated path.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(file_err("opening cgroup", io::Error::last_os_error()));
    }
    // SAFETY: open returned a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: statfs is plain old data.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open, st is writable.
    if unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(file_err("fstatfs of cgroup", io::Error::last_os_error()));
    }
    if st.f_type as i64 != CGROUP2_SUPER_MAGIC {
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
    // SAFETY: stat is plain old data.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd is a live descriptor, st is writable.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(Error::File {
            what: "fstat of cgroup",
            path: format!("/proc/self/fd/{}", fd.as_raw_fd()).into(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(st.st_ino)
}
