//! Dropping the last reference to a namespace on a background thread.
//!
//! When the last reference to a mount namespace goes, the kernel unmounts
//! its whole tree right there, in the task that dropped it, and waits for an
//! RCU grace period before it returns (`put_mnt_ns` → `namespace_unlock` →
//! `synchronize_rcu_expedited`, fs/namespace.c). If that task is a
//! container's last process, the work sits inside its exit, and whoever
//! waits for the exit waits for it too. Holding an fd of the namespace until
//! the process was reaped, then dropping it here, moves that work off the
//! waiter's path (it still costs the same CPU, on another thread).

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::sync::OnceLock;

/// Drop `fd` (typically the last reference to a namespace) so that the
/// teardown it triggers runs on a background thread, off the caller's path.
///
/// The fd is sent (`SCM_RIGHTS`, unix(7)) over a socket pair to a thread
/// with a private fd table (`unshare(CLONE_FILES)`, unshare(2)), which
/// receives it into that table and closes it. Ours is closed right away: in
/// flight, the reference is held by the socket, so the caller neither waits
/// for the thread nor keeps anything in the process's fd table (a
/// concurrent fork cannot inherit it). Falls back to dropping it here when
/// the thread cannot be started or is gone.
///
/// ```no_run
/// let ns = std::fs::File::open("/proc/self/ns/mnt")?;
/// berth_namespaces::release_in_background(ns.into());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn release_in_background(fd: OwnedFd) {
    static TX: OnceLock<Option<OwnedFd>> = OnceLock::new();
    if let Some(tx) = TX.get_or_init(start_releaser) {
        if let Err(e) = berth_sys::scm::send_fd(tx.as_fd(), fd.as_fd()) {
            tracing::debug!(error = %e, "release thread gone; dropping the fd here");
        }
    }
    drop(fd);
}

/// Start the releasing thread; returns our end of the socket pair.
fn start_releaser() -> Option<OwnedFd> {
    let (tx, rx) = UnixDatagram::pair().ok()?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<bool>();
    let rx_fd = rx.as_raw_fd();
    std::thread::Builder::new()
        .name("berth-release".into())
        .stack_size(64 << 10)
        .spawn(move || {
            let ok = berth_sys::ns::unshare_files().is_ok();
            let _ = ready_tx.send(ok);
            if !ok {
                return;
            }
            // Nothing of the process's table stays held here; `rx_fd` is kept.
            if rx_fd > 0 {
                let _ = crate::sys::close_range(0, (rx_fd - 1) as u32, 0);
            }
            let _ = crate::sys::close_range((rx_fd + 1) as u32, u32::MAX, 0);
            // SAFETY: after unshare(CLONE_FILES) `rx_fd` names this thread's
            // own copy in its private table: owned here alone.
            let rx = unsafe { OwnedFd::from_raw_fd(rx_fd) };
            loop {
                match berth_sys::scm::recv_fd(rx.as_fd(), false) {
                    // The last reference goes here: the teardown runs now.
                    Ok(fd) => drop(fd),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => return,
                }
            }
        })
        .ok()?;
    let ok = ready_rx.recv().ok()?;
    // The thread has its own copy of `rx` (or failed): ours goes.
    drop(rx);
    ok.then(|| tx.into())
}
