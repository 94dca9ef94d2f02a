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
