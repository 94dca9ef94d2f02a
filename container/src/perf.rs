//! Spawn-path speed-ups that are policy, not mechanism: when to use the
//! process-wide pool of network namespaces, and moving the teardown of a
//! container's mount namespace off `wait`/`destroy`.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

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

/// An fd of the mount namespace of `pid` (`/proc/<pid>/ns/mnt`), or `None`
/// if it already exited. Holding it keeps the namespace alive after the
/// container's last process exits: the kernel then does not unmount the
/// container's tree (every mount, with an RCU grace period for the lazy
/// unmounts, namespace_unlock() in fs/namespace.c) inside the init's exit,
/// which `Container::wait` would wait for.
pub(crate) fn hold_mount_ns(pid: i32) -> Option<OwnedFd> {
    // The releasing thread (and its one socket fd) starts with the first
    // container, not at some later destroy.
    releaser();
    std::fs::File::open(format!("/proc/{pid}/ns/mnt"))
        .ok()
        .map(OwnedFd::from)
}

/// Drop `fd` (a held namespace: the last reference) on a background
/// thread, so the teardown it triggers runs off the caller's path. The fd
/// leaves this process's fd table right away: it travels with
/// `SCM_RIGHTS` (unix(7)) over a socketpair to a thread that has a private
/// fd table (`unshare(CLONE_FILES)`, unshare(2)) and closes it there. Falls
/// back to dropping it here when that thread cannot be started.
pub(crate) fn release_later(fd: OwnedFd) {
    if let Some(sock) = releaser() {
        // A failed send (queue full) just drops it here.
        let _ = send_fd(sock.as_raw_fd(), fd.as_raw_fd());
    }
    drop(fd);
}

/// Our end of the releasing thread's socketpair, started on first use.
fn releaser() -> Option<&'static OwnedFd> {
    static SOCK: OnceLock<Option<OwnedFd>> = OnceLock::new();
    SOCK.get_or_init(start_releaser).as_ref()
}

/// Start the releasing thread; returns our end of its socketpair.
fn start_releaser() -> Option<OwnedFd> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: socketpair fills two fds we own right away.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } < 0
    {
        return None;
    }
    // SAFETY: fresh fds from socketpair.
    let (ours, theirs) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let theirs_raw = theirs.as_raw_fd();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<bool>();
    let spawned = std::thread::Builder::new()
        .name("berth-release".into())
        .stack_size(64 << 10)
        .spawn(move || {
            // SAFETY: unshare/close_range/recvmsg/close on our own fds.
            unsafe {
                // A private copy of the fd table: from here on nothing this
                // thread holds shows in the process's table.
                if libc::unshare(libc::CLONE_FILES) < 0 {
                    let _ = ready_tx.send(false);
                    return;
                }
                let t = theirs_raw as libc::c_uint;
                if t > 0 {
                    libc::syscall(libc::SYS_close_range, 0u32, t - 1, 0u32);
                }
                libc::syscall(libc::SYS_close_range, t + 1, u32::MAX, 0u32);
                let _ = ready_tx.send(true);
                loop {
                    match recv_fd(theirs_raw) {
                        Some(fd) => {
                            if fd >= 0 {
                                libc::close(fd);
                            }
                        }
                        None => {
                            if *libc::__errno_location() != libc::EINTR {
                                return;
                            }
                        }
                    }
                }
            }
        });
    if spawned.is_err() {
        return None;
    }
    let ok = ready_rx.recv().unwrap_or(false);
    // The thread has its own copy of `theirs` now (or failed): close ours.
    drop(theirs);
    ok.then_some(ours)
}

/// Send `fd` as one `SCM_RIGHTS` datagram (cmsg(3)).
fn send_fd(sock: RawFd, fd: RawFd) -> std::io::Result<()> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut buf = [0u64; 4];
    // SAFETY: msghdr and cmsg over local buffers large enough for one fd.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = buf.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as _;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), fd);
        if libc::sendmsg(sock, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Receive one fd sent by [`send_fd`] (blocking); `None` on error.
fn recv_fd(sock: RawFd) -> Option<RawFd> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut buf = [0u64; 4];
    // SAFETY: msghdr over local buffers.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = buf.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&buf) as _;
        if libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) < 0 {
            return None;
        }
        let c = libc::CMSG_FIRSTHDR(&msg);
        if c.is_null() || (*c).cmsg_type != libc::SCM_RIGHTS {
            // Nothing to close; keep going.
            return Some(-1);
        }
        Some(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<RawFd>()))
    }
}
