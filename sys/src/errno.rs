//! errno helpers: one shape for every crate (`std::io::Error`, the errno
//! kept), instead of one per crate.

use std::io;

pub use nix::errno::Errno;

/// `Ok(r)` for a non-negative return of a libc call, else the thread's
/// errno as an [`io::Error`] (the convention of most system calls, see
/// errno(3)).
pub fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// [`cvt`] for calls returning `long` (`syscall(2)`) or `ssize_t`.
pub fn cvt_long(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// The calling thread's errno now (errno(3)).
pub fn errno() -> i32 {
    Errno::last_raw()
}

/// An [`io::Error`] for the errno `e` (e.g. `libc::EINVAL`).
pub fn err(e: i32) -> io::Error {
    io::Error::from_raw_os_error(e)
}

/// `Errno` from nix to `io::Error`, for `map_err`.
pub fn from_nix(e: Errno) -> io::Error {
    io::Error::from(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cvt_keeps_values_and_errno() {
        assert_eq!(cvt(3).unwrap(), 3);
        assert_eq!(cvt_long(0).unwrap(), 0);
        Errno::set_raw(libc::ENOENT);
        assert_eq!(cvt(-1).unwrap_err().raw_os_error(), Some(libc::ENOENT));
        assert_eq!(err(libc::EINVAL).raw_os_error(), Some(libc::EINVAL));
        assert_eq!(from_nix(Errno::EBADF).raw_os_error(), Some(libc::EBADF));
    }
}
