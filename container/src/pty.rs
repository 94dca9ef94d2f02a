//! `tty: true`: a pseudo-terminal from the container's own devpts instance.
//!
//! A pty opened in the caller's devpts would be unreachable from inside
//! (the container's `/dev/pts` is a new instance), so `tty` would print
//! "not a tty" and programs that reopen their terminal would fail. Instead
//! a step of the child plan, after `pivot_root`, opens `/dev/pts/ptmx` of
//! the container's devpts (pty(7)), unlocks it (`TIOCSPTLCK`), opens the
//! peer with `TIOCGPTPEER` (Linux 4.13; no path lookup), makes it fd 0, 1
//! and 2, and sends the master back to the parent over a socketpair with
//! `SCM_RIGHTS` (unix(7)). Raw syscalls on stack buffers only.

use std::os::fd::{AsFd, OwnedFd, RawFd};

use berth_namespaces::Step;

use crate::error::{Error, Result};

/// The child's end of the socketpair sits at this fd from the prologue
/// (`Spawner::map_fd`) until the pty step closes it.
pub(crate) const CHILD_SOCKET_FD: RawFd = 255;

/// The parent's end: receives the master once the child ran the step.
#[derive(Debug)]
pub(crate) struct MasterReceiver {
    sock: OwnedFd,
    what: &'static str,
}

/// A socketpair: the parent keeps the receiver, the child's end goes to
/// `Spawner::map_fd(child, CHILD_SOCKET_FD)`; plus the step to run after
/// `pivot_root`.
pub(crate) fn plan() -> Result<(MasterReceiver, OwnedFd, Step)> {
    let (rx, child) = fd_channel("the pty master")?;
    // SAFETY: the hook makes raw syscalls on stack data only.
    let step = unsafe {
        Step::hook(
            "open a pty in the container's devpts (/dev/pts/ptmx, TIOCGPTPEER) and send its master",
            || open_pty_and_send_master(CHILD_SOCKET_FD),
        )
    };
    Ok((rx, child, step))
}

/// A socketpair to pass one fd from the child to the parent: the parent
/// keeps the receiver, the child's end goes to `Spawner::map_fd` and a
/// step sends the fd with `berth_sys::child::send_fd`.
pub(crate) fn fd_channel(what: &'static str) -> Result<(MasterReceiver, OwnedFd)> {
    let (parent, child) = berth_sys::scm::seqpacket_pair()
        .map_err(|e| Error::io("socketpair to receive an fd", what, e))?;
    Ok((MasterReceiver { sock: parent, what }, child))
}

/// Open a pseudo-terminal in the devpts mounted at `/dev/pts` of the
/// calling process's mount namespace, make its slave fds 0, 1 and 2, and
/// send the master over the unix socket `sock` with `SCM_RIGHTS`; `sock` is
/// closed. The container's own `tty: true` runs this as a step after
/// `pivot_root`; a runtime that execs into a running container (e.g. an OCI
/// runtime's `exec --tty`) calls it in the child once it has joined the
/// container's mount namespace. Making the slave the controlling terminal
/// (`setsid`, then `TIOCSCTTY` on fd 0) is the caller's choice.
///
/// Async-signal-safe: raw syscalls on constants and stack buffers only, so
/// it may run after `fork` (in `CommandExt::pre_exec`). `Err` carries the
/// errno. Needs `TIOCGPTPEER` (Linux 4.13, ioctl_tty(2)) and pty(7),
/// unix(7).
///
/// ```no_run
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixDatagram;
/// use std::os::unix::process::CommandExt;
/// let (parent, child) = UnixDatagram::pair()?;
/// let child = child.as_raw_fd();
/// let mut cmd = std::process::Command::new("/bin/sh");
/// // SAFETY: only async-signal-safe calls after fork.
/// unsafe {
///     cmd.pre_exec(move || {
///         // (join the container's namespaces here)
///         berth::open_pty_and_send_master(child).map_err(std::io::Error::from_raw_os_error)
///     });
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn open_pty_and_send_master(sock: RawFd) -> std::result::Result<(), i32> {
    use berth_sys::child;
    let m = child::open(
        c"/dev/pts/ptmx",
        libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        0,
    )?;
    let fail = |e: i32| {
        child::close(m);
        child::close(sock);
        Err(e)
    };
    if let Err(e) = child::unlock_pty(m) {
        return fail(e);
    }
    let s = match child::open_pty_peer(m, libc::O_RDWR | libc::O_NOCTTY) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    for target in 0..3 {
        if let Err(e) = child::dup2(s, target) {
            child::close(s);
            return fail(e);
        }
    }
    if s > 2 {
        child::close(s);
    }
    if let Err(e) = child::send_fd(sock, m) {
        return fail(e);
    }
    child::close(m);
    child::close(sock);
    Ok(())
}

impl MasterReceiver {
    /// The fd the child sent (call after `spawn`/`spawn_stopped`
    /// returned: the step has run by then). Close-on-exec.
    pub(crate) fn receive(self) -> Result<OwnedFd> {
        let what = self.what;
        let err = |e: std::io::Error| Error::io("receive over a socketpair", what, e);
        berth_sys::scm::recv_fd(self.sock.as_fd(), true).map_err(err)
    }
}
