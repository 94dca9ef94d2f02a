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

/// A set of signals (sigsetops(3)), nix's: `SigSet::all()`,
/// `SigSet::empty()`, `add`, `contains`; `as_ref()` gives the
/// `libc::sigset_t`.
pub use nix::sys::signal::SigSet;

/// The calling thread's signal mask (`pthread_sigmask(SIG_BLOCK, NULL,
/// &cur)`, pthread_sigmask(3)).
pub fn thread_mask() -> io::Result<SigSet> {
    Ok(SigSet::thread_get_mask()?)
}

/// Make `set` the calling thread's signal mask (`pthread_sigmask(SIG_SETMASK,
/// set, &old)`, pthread_sigmask(3)); returns the mask it replaced, to be
/// restored with another call. `SIGKILL` and `SIGSTOP` stay unblocked
/// whatever `set` says.
pub fn swap_thread_mask(set: &SigSet) -> io::Result<SigSet> {
    Ok(set.thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_SETMASK)?)
}

/// Block every signal on the calling thread ([`swap_thread_mask`] with
/// `SigSet::all()`); returns the mask it replaced.
pub fn block_all_on_thread() -> io::Result<SigSet> {
    swap_thread_mask(&SigSet::all())
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

    #[test]
    fn a_thread_mask_is_swapped_and_restored() {
        std::thread::spawn(|| {
            let old = block_all_on_thread().unwrap();
            assert!(!old.contains(Signal::SIGUSR1));
            let now = thread_mask().unwrap();
            assert!(now.contains(Signal::SIGUSR1) && now.contains(Signal::SIGTERM));
            let all = swap_thread_mask(&old).unwrap();
            assert!(all.contains(Signal::SIGUSR1));
            assert!(!thread_mask().unwrap().contains(Signal::SIGUSR1));
        })
        .join()
        .unwrap();
    }
}
