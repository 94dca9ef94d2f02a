//! Raw syscall numbers, kernel structs and tiny wrappers shared by the parent
//! and the child side. Every function here is async-signal-safe: a syscall
//! and an errno read, nothing else.
//!
//! The numbers are those of the unified syscall table (identical on every
//! architecture for syscalls numbered 424 and above).

use std::os::fd::RawFd;

/// `CLONE_INTO_CGROUP` (Linux 5.7), a clone3-only flag above 32 bits
/// (`<linux/sched.h>`). Ours: libc's (glibc targets) is a deprecated
/// `c_int` that overflows (libc 0.2.188+ warns so, rust-lang/libc#3584).
pub(crate) const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` from `<linux/sched.h>` (include/uapi/linux/sched.h,
/// size `CLONE_ARGS_SIZE_VER2` = 88 bytes), for `clone3(2)` (Linux 5.3).
/// Ours: `libc` defines `clone_args` for musl targets only.
#[repr(C)]
#[derive(Default)]
pub(crate) struct CloneArgs {
    pub flags: u64,
    pub pidfd: u64,
    pub child_tid: u64,
    pub parent_tid: u64,
    pub exit_signal: u64,
    pub stack: u64,
    pub stack_size: u64,
    pub tls: u64,
    pub set_tid: u64,
    pub set_tid_size: u64,
    pub cgroup: u64,
}

// CLONE_ARGS_SIZE_VER2.
const _: () = assert!(std::mem::size_of::<CloneArgs>() == 88);

/// The calling thread's errno.
#[inline]
pub(crate) fn errno() -> i32 {
    // SAFETY: __errno_location returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() }
}

/// Turn a raw syscall return into `Ok(value)` or `Err(errno)`.
#[inline]
pub(crate) fn cvt(r: libc::c_long) -> Result<libc::c_long, i32> {
    if r < 0 {
        Err(errno())
    } else {
        Ok(r)
    }
}

/// Same as [`cvt`] for `c_int` returning libc wrappers.
#[inline]
pub(crate) fn cvt_i(r: libc::c_int) -> Result<libc::c_int, i32> {
    if r < 0 {
        Err(errno())
    } else {
        Ok(r)
    }
}

/// `close_range(first, last, flags)` (close_range(2), Linux 5.9;
/// `CLOSE_RANGE_CLOEXEC` 5.11): raw, as the child calls it after `clone`.
#[inline]
pub(crate) fn close_range(first: u32, last: u32, flags: libc::c_uint) -> Result<(), i32> {
    // SAFETY: plain syscall on integers.
    cvt(unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) }).map(|_| ())
}

/// `_exit(2)`: end the process at once (no atexit handlers, no flushing),
/// as the child does after a report or when its parent is gone.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no memory of ours.
    unsafe { libc::_exit(code) }
}

/// `close(2)` of an fd the caller owns (in the child: its copies of the
/// parent's pipe ends and namespace fds, used once).
pub(crate) fn close(fd: RawFd) {
    // SAFETY: a syscall on an integer; the caller owns the fd.
    unsafe { libc::close(fd) };
}

/// `setns(2)` into the namespace behind `fd` (Linux 3.0; a pidfd 5.8).
pub(crate) fn setns(fd: RawFd, nstype: libc::c_int) -> Result<(), i32> {
    // SAFETY: a syscall on integers.
    cvt_i(unsafe { libc::setns(fd, nstype) }).map(drop)
}

/// Write the whole buffer, retrying on EINTR and short writes.
pub(crate) fn write_all(fd: RawFd, mut buf: &[u8]) -> Result<(), i32> {
    while !buf.is_empty() {
        // SAFETY: buf is a valid readable slice.
        let r = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if r < 0 {
            let e = errno();
            if e == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        if r == 0 {
            return Err(libc::EIO);
        }
        // r > 0 and r <= buf.len(), so the slice is in bounds.
        buf = buf.get(r as usize..).unwrap_or(&[]);
    }
    Ok(())
}

/// Read exactly one byte; `Ok(false)` on EOF.
pub(crate) fn read_byte(fd: RawFd) -> Result<bool, i32> {
    let mut b = 0u8;
    loop {
        // SAFETY: reading one byte into a local.
        let r = unsafe { libc::read(fd, (&mut b as *mut u8).cast(), 1) };
        if r < 0 {
            let e = errno();
            if e == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        return Ok(r == 1);
    }
}

/// Symbolic name of an errno value (`EINVAL`), for error messages.
pub(crate) fn errno_name(e: i32) -> &'static str {
    match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::E2BIG => "E2BIG",
        libc::ENOEXEC => "ENOEXEC",
        libc::EBADF => "EBADF",
        libc::ECHILD => "ECHILD",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ETXTBSY => "ETXTBSY",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::EMLINK => "EMLINK",
        libc::EPIPE => "EPIPE",
        libc::ERANGE => "ERANGE",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ELOOP => "ELOOP",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EUSERS => "EUSERS",
        _ => "E?",
    }
}
