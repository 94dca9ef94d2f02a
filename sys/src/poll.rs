//! `poll(2)` on one fd.

use std::io;
use std::os::fd::BorrowedFd;

use nix::poll::{PollFd, PollTimeout};

pub use nix::poll::PollFlags;

/// Wait up to `timeout_ms` (negative: forever) until `fd` has one of
/// `events` (`POLLIN`, `POLLPRI` for a kernfs file's change notification,
/// see cgroups(7)/poll(2)); `Ok(true)` when it has, `Ok(false)` on timeout.
/// `EINTR` is returned as the error (the caller loops and re-checks its
/// deadline).
pub fn poll_one(fd: BorrowedFd<'_>, events: PollFlags, timeout_ms: i32) -> io::Result<bool> {
    let t = if timeout_ms < 0 {
        PollTimeout::NONE
    } else {
        PollTimeout::try_from(timeout_ms).unwrap_or(PollTimeout::MAX)
    };
    let mut fds = [PollFd::new(fd, events)];
    Ok(nix::poll::poll(&mut fds, t)? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;

    #[test]
    fn times_out_then_sees_data() {
        let (r, w) = std::io::pipe().unwrap();
        assert!(!poll_one(r.as_fd(), PollFlags::POLLIN, 1).unwrap());
        (&w).write_all(b"x").unwrap();
        assert!(poll_one(r.as_fd(), PollFlags::POLLIN, -1).unwrap());
    }
}
