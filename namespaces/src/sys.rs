//! Raw syscall numbers, kernel structs and tiny wrappers shared by the parent
//! and the child side. Every function here is async-signal-safe: a syscall
//! and an errno read, nothing else.
//!
//! The numbers are those of the unified syscall table (identical on every
//! architecture for syscalls numbered 424 and above).

use std::os::fd::RawFd;

/// The child's calls this crate's child and parent share, berth-sys's:
/// `close`, `close_range` (Linux 5.9), `setns` (Linux 3.0) and
/// `write_all` (write(2) until done, retried on `EINTR`).
pub(crate) use berth_sys::child::{close, close_range, setns, write_all};

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

pub(crate) use berth_sys::child::errno;
/// `_exit(2)`: end the process at once (no atexit handlers, no flushing),
/// as the child does after a report or when its parent is gone.
pub(crate) use berth_sys::process::exit_now;

/// Read exactly one byte (berth-sys's `child::read`, retried on `EINTR`);
/// `Ok(false)` on EOF.
pub(crate) fn read_byte(fd: RawFd) -> Result<bool, i32> {
    let mut b = [0u8];
    loop {
        match berth_sys::child::read(fd, &mut b) {
            Err(libc::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(n) => return Ok(n == 1),
        }
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
