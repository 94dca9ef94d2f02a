//! File descriptor helpers of the parent side: pipes, `/dev/null`, fds
//! moved above the child's targets, and the ranges the child closes.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::error::{Error, Result};

/// An `O_CLOEXEC` pipe: (read end, write end) (std's `pipe2(O_CLOEXEC)`).
pub(super) fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let (r, w) = io::pipe().map_err(|e| Error::setup_io("pipe2(O_CLOEXEC)", e))?;
    Ok((r.into(), w.into()))
}

/// `/dev/null`, read-write.
pub(super) fn open_devnull() -> Result<OwnedFd> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| Error::setup_io("open(\"/dev/null\")", e))?;
    Ok(f.into())
}

/// A close-on-exec duplicate of `fd` numbered `min` or above (`fd` may be
/// a number the caller handed over: `EBADF` if it is not open).
pub(super) fn dup_above(fd: RawFd, min: RawFd) -> Result<OwnedFd> {
    berth_sys::fs::dup_cloexec_above(fd, min)
        .map_err(|e| Error::setup_io(format!("fcntl({fd}, F_DUPFD_CLOEXEC, {min})"), e))
}

/// `fd` itself when numbered `min` or above, else a duplicate that is.
pub(super) fn lift(fd: OwnedFd, min: RawFd) -> Result<OwnedFd> {
    if fd.as_raw_fd() >= min {
        Ok(fd)
    } else {
        dup_above(fd.as_raw_fd(), min)
    }
}

/// The complement of `keep` in `0..=u32::MAX`, as inclusive ranges.
pub(super) fn gaps(mut keep: Vec<u32>) -> Vec<(u32, u32)> {
    keep.sort_unstable();
    keep.dedup();
    let mut out = Vec::new();
    let mut next = 0u32;
    for k in keep {
        if k > next {
            out.push((next, k - 1));
        }
        next = k.saturating_add(1);
        if k == u32::MAX {
            return out;
        }
    }
    out.push((next, u32::MAX));
    out
}

/// A copy of an `io::Error` we cannot move out of (kept for a later spawn).
pub(super) fn copy_io_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(n) => io::Error::from_raw_os_error(n),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_cover_everything_but_kept() {
        assert_eq!(gaps(vec![0, 1, 2, 7]), vec![(3, 6), (8, u32::MAX)]);
        assert_eq!(gaps(vec![2, 0, 1]), vec![(3, u32::MAX)]);
        assert_eq!(gaps(vec![0, 1, 2, 3, 5]), vec![(4, 4), (6, u32::MAX)]);
        assert_eq!(gaps(vec![0, u32::MAX]), vec![(1, u32::MAX - 1)]);
        assert_eq!(gaps(vec![]), vec![(0, u32::MAX)]);
        assert_eq!(gaps(vec![4, 4, 4]), vec![(0, 3), (5, u32::MAX)]);
    }

    #[test]
    fn fds_are_lifted_above_the_targets() {
        let (r, w) = pipe().unwrap();
        let high = lift(r, 100).unwrap();
        assert!(high.as_raw_fd() >= 100);
        let same = w.as_raw_fd();
        assert_eq!(lift(w, 0).unwrap().as_raw_fd(), same);
        // SAFETY: querying the flags of our own fd.
        let flags = unsafe { libc::fcntl(high.as_raw_fd(), libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        let e = dup_above(-1, 10).unwrap_err().to_string();
        assert!(e.contains("F_DUPFD_CLOEXEC") && e.contains("EBADF"), "{e}");
    }

    #[test]
    fn io_errors_are_copied() {
        let e = copy_io_error(&io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        let e = copy_io_error(&io::Error::other("custom"));
        assert_eq!(e.to_string(), "custom");
    }
}
