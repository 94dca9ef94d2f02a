//! `poll(2)` on one fd or several.

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
    let mut fds = [PollFd::new(fd, events)];
    Ok(nix::poll::poll(&mut fds, timeout(timeout_ms))? > 0)
}

/// nix's timeout for `ms` milliseconds (negative: forever).
fn timeout(ms: i32) -> PollTimeout {
    if ms < 0 {
        PollTimeout::NONE
    } else {
        PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
    }
}

/// Wait up to `timeout_ms` (negative: forever) until one of `fds` has one
/// of `events` (poll(2)); what each fd has, in order (`revents`: empty on
/// a timeout; `POLLHUP`/`POLLERR` come without being asked). `EINTR` is
/// returned as the error (the caller loops and re-checks its deadline).
pub fn poll_many(
    fds: &[BorrowedFd<'_>],
    events: PollFlags,
    timeout_ms: i32,
) -> io::Result<Vec<PollFlags>> {
    let mut p: Vec<PollFd<'_>> = fds.iter().map(|&fd| PollFd::new(fd, events)).collect();
    nix::poll::poll(&mut p, timeout(timeout_ms))?;
    Ok(p.iter()
        .map(|p| p.revents().unwrap_or(PollFlags::empty()))
        .collect())
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

    #[test]
    fn poll_many_says_which_fd_is_ready() {
        let (r1, _w1) = std::io::pipe().unwrap();
        let (r2, w2) = std::io::pipe().unwrap();
        let fds = [r1.as_fd(), r2.as_fd()];
        let none = poll_many(&fds, PollFlags::POLLIN, 1).unwrap();
        assert!(none.iter().all(|r| r.is_empty()), "{none:?}");
        (&w2).write_all(b"x").unwrap();
        let ready = poll_many(&fds, PollFlags::POLLIN, -1).unwrap();
        assert!(
            ready[0].is_empty() && ready[1].contains(PollFlags::POLLIN),
            "{ready:?}"
        );
        drop(w2);
        drop(_w1);
        let hup = poll_many(&fds[..1], PollFlags::POLLIN, -1).unwrap();
        assert!(hup[0].contains(PollFlags::POLLHUP), "{hup:?}");
    }
}
