//! Signals to processes by pid (kill(2)); by pidfd see [`crate::pidfd`].

use std::io;

pub use nix::sys::signal::Signal;

/// `kill(pid, sig)` (kill(2)). A pid may be reused once its process is
/// reaped: prefer [`crate::pidfd::send_signal`] when a pidfd is at hand.
pub fn kill(pid: i32, sig: Signal) -> io::Result<()> {
    Ok(nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        sig,
    )?)
}

/// `kill(pid, signo)` with a signal number (kill(2)): the real-time
/// signals (`SIGRTMIN`..`SIGRTMAX`, signal(7)) have no [`Signal`] value.
/// The pid-reuse caveat of [`kill`] holds.
pub fn kill_signo(pid: i32, signo: i32) -> io::Result<()> {
    // SAFETY: kill(2) touches no memory of ours.
    crate::errno::cvt(unsafe { libc::kill(pid, signo) }).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_signo_zero_checks_a_pid() {
        kill_signo(std::process::id() as i32, 0).unwrap();
        let e = kill_signo(i32::MAX, 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ESRCH));
    }
}
