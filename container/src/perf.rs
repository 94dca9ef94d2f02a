//! Spawn-path speed-ups that are policy, not mechanism: when to use the
//! process-wide pool of network namespaces, and moving the teardown of a
//! container's mount namespace off `wait`/`destroy`.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Mutex, OnceLock};

use berth_namespaces::{Namespaces, NetnsPool, Spawner};

/// Containers with a new network namespace this process has spawned.
static NET_SPAWNS: AtomicUsize = AtomicUsize::new(0);

/// Have `sp` take its network namespace from a process-wide pool when
/// `choice` says so (`None`: from the second such container of this process
/// on, so a one-shot program such as `berth-run` never starts the pool's
/// threads): [`NetnsPool::shared_loopback_up`] for a loopback-only network
/// (`lo` is then already up, and the plan's lo-up step finds nothing to
/// do), [`NetnsPool::shared`] otherwise. Never with a new user namespace
/// (see [`Spawner::netns_pool`]).
pub(crate) fn use_netns_pool(sp: &mut Spawner, ns: Namespaces, choice: Option<bool>, lo_up: bool) {
    if !ns.contains(Namespaces::NET) || ns.contains(Namespaces::USER) {
        return;
    }
    let earlier = NET_SPAWNS.fetch_add(1, Ordering::Relaxed);
    if !choice.unwrap_or(earlier >= 1) {
        return;
    }
    let pool = if lo_up {
        NetnsPool::shared_loopback_up()
    } else {
        NetnsPool::shared()
    };
    match pool {
        Ok(p) => {
            sp.netns_pool(&p);
        }
        Err(e) => tracing::debug!(error = %e, "no network namespace pool; clone3 creates it"),
    }
}

/// Containers this process has spawned (for [`hold_mount_ns`]).
static SPAWNS: AtomicUsize = AtomicUsize::new(0);

/// An fd of the mount namespace of `pid` (`/proc/<pid>/ns/mnt`), or `None`
/// if it already exited. Holding it keeps the namespace alive after the
/// container's last process exits: the kernel then does not unmount the
/// container's tree (every mount, with an RCU grace period for the lazy
/// unmounts, namespace_unlock() in fs/namespace.c) inside the init's exit,
/// which `Container::wait` would wait for. Only from the second container
/// of a process on: a one-shot program (`berth-run`) gains nothing from it
/// and would pay for starting the releasing thread.
pub(crate) fn hold_mount_ns(pid: i32) -> Option<OwnedFd> {
    if SPAWNS.fetch_add(1, Ordering::Relaxed) == 0 {
        return None;
    }
    std::fs::File::open(format!("/proc/{pid}/ns/mnt"))
        .ok()
        .map(OwnedFd::from)
}

type Request = (RawFd, std::sync::mpsc::SyncSender<()>);

/// Drop `fd` (a held namespace: the last reference) so that the teardown it
/// triggers runs on a background thread, off the caller's path. That thread
/// has a private fd table (`unshare(CLONE_FILES)`, unshare(2)), copies the
/// fd into it with `pidfd_getfd(2)` (Linux 5.6) while we wait, and closes
/// it there; ours is closed right away, so the process's fd table never
/// holds anything for it. Falls back to dropping it here.
pub(crate) fn release_later(fd: OwnedFd) {
    static TX: OnceLock<Option<Mutex<Sender<Request>>>> = OnceLock::new();
    if let Some(tx) = TX.get_or_init(start_releaser) {
        let (ack_tx, ack_rx) = std::sync::mpsc::sync_channel(1);
        let sent = tx
            .lock()
            .ok()
            .is_some_and(|t| t.send((fd.as_raw_fd(), ack_tx)).is_ok());
        if sent {
            // Ours may only go once the thread has its copy.
            let _ = ack_rx.recv();
        }
    }
    drop(fd);
}

/// `pidfd_open(2)` and `pidfd_getfd(2)`, unified syscall table.
const SYS_PIDFD_OPEN: libc::c_long = 434;
const SYS_PIDFD_GETFD: libc::c_long = 438;

/// Start the releasing thread.
fn start_releaser() -> Option<Mutex<Sender<Request>>> {
    let (tx, rx) = std::sync::mpsc::channel::<Request>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<bool>();
    // SAFETY: getpid cannot fail.
    let pid = unsafe { libc::getpid() };
    std::thread::Builder::new()
        .name("berth-release".into())
        .stack_size(64 << 10)
        .spawn(move || {
            // SAFETY: unshare/close_range/pidfd syscalls/close on fds of
            // this thread's own (private) table.
            let pidfd = unsafe {
                if libc::unshare(libc::CLONE_FILES) < 0 {
                    let _ = ready_tx.send(false);
                    return;
                }
                // Nothing of the process's table stays held here.
                libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
                libc::syscall(SYS_PIDFD_OPEN, pid, 0) as libc::c_int
            };
            let _ = ready_tx.send(pidfd >= 0);
            if pidfd < 0 {
                return;
            }
            for (fd, ack) in rx {
                // SAFETY: see above.
                let copy =
                    unsafe { libc::syscall(SYS_PIDFD_GETFD, pidfd, fd, 0u32) } as libc::c_int;
                let _ = ack.send(());
                if copy >= 0 {
                    // SAFETY: our copy, closed once.
                    unsafe { libc::close(copy) };
                }
            }
        })
        .ok()?;
    ready_rx.recv().ok()?.then(|| Mutex::new(tx))
}
