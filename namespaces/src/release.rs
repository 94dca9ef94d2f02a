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

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
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
        if let Err(e) = send_fd(tx.as_raw_fd(), fd.as_raw_fd()) {
            tracing::debug!(errno = e, "release thread gone; dropping the fd here");
        }
    }
    drop(fd);
}

/// `sendmsg` of one fd with `SCM_RIGHTS` on a datagram socket.
fn send_fd(sock: RawFd, fd: RawFd) -> Result<(), i32> {
    let mut byte = 0u8;
    let mut iov = libc::iovec {
        iov_base: (&mut byte as *mut u8).cast(),
        iov_len: 1,
    };
    // Room for one cmsghdr carrying one int, 8-byte aligned.
    let mut cbuf = [0u64; 4];
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    // SAFETY: msghdr is plain data; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space;
    // SAFETY: `msg` has a control buffer of `space` bytes (<= 32), so the
    // first header exists; its data holds exactly one fd.
    let r = unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), fd);
        libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL)
    };
    if r < 0 {
        Err(crate::sys::errno())
    } else {
        Ok(())
    }
}

/// Start the releasing thread; returns our end of the socket pair.
fn start_releaser() -> Option<OwnedFd> {
    let mut pair = [0; 2];
    // SAFETY: socketpair fills two fds on success.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            0,
            pair.as_mut_ptr(),
        )
    } < 0
    {
        return None;
    }
    // SAFETY: fresh fds, owned once each.
    let (tx, rx) = unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<bool>();
    let rx_fd = rx.as_raw_fd();
    std::thread::Builder::new()
        .name("berth-release".into())
        .stack_size(64 << 10)
        .spawn(move || {
            // SAFETY: unshare and close_range on this thread's own
            // (private, after unshare) fd table; `rx_fd` is kept.
            let ok = unsafe {
                libc::unshare(libc::CLONE_FILES) == 0 && {
                    // Nothing of the process's table stays held here.
                    if rx_fd > 0 {
                        libc::syscall(libc::SYS_close_range, 0u32, (rx_fd - 1) as u32, 0u32);
                    }
                    libc::syscall(libc::SYS_close_range, (rx_fd + 1) as u32, u32::MAX, 0u32);
                    true
                }
            };
            let _ = ready_tx.send(ok);
            if !ok {
                return;
            }
            loop {
                let mut byte = 0u8;
                let mut iov = libc::iovec {
                    iov_base: (&mut byte as *mut u8).cast(),
                    iov_len: 1,
                };
                let mut cbuf = [0u64; 4];
                // SAFETY: plain data; pointers outlive the call.
                let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
                msg.msg_iov = &mut iov;
                msg.msg_iovlen = 1;
                msg.msg_control = cbuf.as_mut_ptr().cast();
                msg.msg_controllen = std::mem::size_of_val(&cbuf);
                // SAFETY: valid msghdr; received fds land in our private table.
                let r = unsafe { libc::recvmsg(rx_fd, &mut msg, libc::MSG_CMSG_CLOEXEC) };
                if r < 0 {
                    if crate::sys::errno() == libc::EINTR {
                        continue;
                    }
                    return;
                }
                if r == 0 {
                    return;
                }
                // SAFETY: walking the control messages the kernel wrote.
                unsafe {
                    let mut c = libc::CMSG_FIRSTHDR(&msg);
                    while !c.is_null() {
                        if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS
                        {
                            let data = libc::CMSG_DATA(c).cast::<RawFd>();
                            let n = ((*c).cmsg_len - libc::CMSG_LEN(0) as usize)
                                / std::mem::size_of::<RawFd>();
                            for k in 0..n {
                                // The last reference goes here: the teardown runs now.
                                libc::close(std::ptr::read_unaligned(data.add(k)));
                            }
                        }
                        c = libc::CMSG_NXTHDR(&msg, c);
                    }
                }
            }
        })
        .ok()?;
    let ok = ready_rx.recv().ok()?;
    // The thread has its own copy of `rx` (or failed): ours goes.
    drop(rx);
    ok.then_some(tx)
}
