//! Calls for a child between `clone(2)` and `execve(2)`: raw,
//! async-signal-safe system calls on data prepared by the parent — no
//! allocation, no locks, no panics. Each returns `Err(errno)` on failure.
//!
//! Unlike the rest of berth-sys (parent side: `std::io::Error`, nix,
//! `OwnedFd`), these take the child's raw fds (`RawFd`: an fd opened here
//! is closed with [`close`] before the step ends, and `AT_FDCWD` is a
//! valid directory fd) and return the errno as a plain `i32`, which the
//! child reports to its parent without allocating. Each is one system
//! call (signal-safety(7) lists them async-signal-safe, or they are raw
//! `syscall(2)`s, which are), plus an errno read.
//!
//! With the `fake` feature (tests only) each call first asks the fake
//! installed on the calling thread (`berth_sys::fake::child`), so the code that
//! drives a child can be run and checked without root. Without the feature
//! the calls are the system calls alone.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use crate::mount_api::MountAttr;
use crate::openat2::ResolveFlags;

/// The fake installed on this thread answers instead of the kernel
/// (feature `fake` only; nothing at all without it).
macro_rules! fake {
    ($call:ident($($arg:expr),*)) => {
        #[cfg(feature = "fake")]
        if let Some(k) = crate::fake::child::installed() {
            return k.$call($($arg),*);
        }
    };
}

// After the macro, which it uses.
pub mod net;

/// The calling thread's errno (errno(3)): a read of thread-local memory,
/// async-signal-safe ([`crate::errno::errno`], the one helper).
pub use crate::errno::errno;

/// `Ok(r)` for a non-negative `int` return, else `Err(errno)`.
#[inline]
fn cvt(r: libc::c_int) -> Result<libc::c_int, i32> {
    cvt_long(r.into()).map(|_| r)
}

/// `Ok(r)` for a non-negative `long` return (`syscall(2)`), else `Err(errno)`.
#[inline]
fn cvt_long(r: libc::c_long) -> Result<libc::c_long, i32> {
    if r < 0 {
        Err(errno())
    } else {
        Ok(r)
    }
}

fn opt_ptr(c: Option<&CStr>) -> *const libc::c_char {
    c.map_or(std::ptr::null(), CStr::as_ptr)
}

/// `mount(source, target, fstype, flags, data)` (mount(2)): a new mount,
/// a bind (`MS_BIND`), a propagation change (`MS_PRIVATE`, ...) or a
/// remount; `None` passes NULL.
pub fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> Result<(), i32> {
    fake!(mount(source, target, fstype, flags, data));
    // SAFETY: NULL or C strings that outlive the call.
    cvt(unsafe {
        libc::mount(
            opt_ptr(source),
            target.as_ptr(),
            opt_ptr(fstype),
            flags,
            opt_ptr(data).cast(),
        )
    })
    .map(drop)
}

/// `umount2(target, flags)` (umount2(2), `MNT_DETACH` since Linux 2.4.11).
pub fn umount2(target: &CStr, flags: libc::c_int) -> Result<(), i32> {
    fake!(umount2(target, flags));
    // SAFETY: a C string that outlives the call.
    cvt(unsafe { libc::umount2(target.as_ptr(), flags) }).map(drop)
}

/// `move_mount(from_dir, from_path, to_dir, to_path, flags)`
/// (move_mount(2), Linux 5.2): attach a detached mount (`from_dir` with
/// `MOVE_MOUNT_F_EMPTY_PATH`) onto a path or, with
/// `MOVE_MOUNT_T_EMPTY_PATH`, onto the fd `to_dir` itself.
pub fn move_mount(
    from_dir: BorrowedFd<'_>,
    from_path: &CStr,
    to_dir: RawFd,
    to_path: &CStr,
    flags: libc::c_uint,
) -> Result<(), i32> {
    fake!(move_mount(from_dir, from_path, to_dir, to_path, flags));
    // SAFETY: fds and C strings valid for the call.
    cvt_long(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from_dir.as_raw_fd(),
            from_path.as_ptr(),
            to_dir,
            to_path.as_ptr(),
            flags,
        )
    })
    .map(drop)
}

/// `mount_setattr(dir, path, flags, {attr_set: set, attr_clr: clr})`
/// (mount_setattr(2), Linux 5.12): change the attributes of the mount at
/// `path` (`AT_EMPTY_PATH`: the mount `dir` is on; `AT_RECURSIVE`: its
/// submounts too). Propagation and idmapping are left alone.
pub fn mount_setattr(
    dir: RawFd,
    path: &CStr,
    flags: libc::c_uint,
    set: MountAttr,
    clr: MountAttr,
) -> Result<(), i32> {
    fake!(mount_setattr(dir, path, flags, set, clr));
    let attr = libc::mount_attr {
        attr_set: set.bits(),
        attr_clr: clr.bits(),
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: a C string and a mount_attr of the size passed, valid for the call.
    cvt_long(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dir,
            path.as_ptr(),
            flags,
            &raw const attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    })
    .map(drop)
}

/// `fsopen(fstype, flags)` (fsopen(2), Linux 5.2): a new file system
/// context; returns its fd, which the caller closes with [`close`].
/// Pass `FSOPEN_CLOEXEC`.
pub fn fsopen(fstype: &CStr, flags: libc::c_uint) -> Result<RawFd, i32> {
    fake!(fsopen(fstype, flags));
    // SAFETY: a C string valid for the call.
    cvt_long(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), flags) })
        .map(|fd| fd as RawFd)
}

/// `fsconfig(fd, cmd, key, value, aux)` (fsconfig(2), Linux 5.2): set a
/// parameter of the context `fd` (`FSCONFIG_SET_STRING` with `key` and
/// `value`, `FSCONFIG_SET_FLAG` with `key`) or create its superblock
/// (`FSCONFIG_CMD_CREATE`); `None` passes NULL.
pub fn fsconfig(
    fd: RawFd,
    cmd: libc::c_uint,
    key: Option<&CStr>,
    value: Option<&CStr>,
    aux: libc::c_int,
) -> Result<(), i32> {
    fake!(fsconfig(fd, cmd, key, value, aux));
    // SAFETY: NULL or C strings valid for the call, as `cmd` requires.
    cvt_long(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fd,
            cmd,
            opt_ptr(key),
            opt_ptr(value),
            aux,
        )
    })
    .map(drop)
}

/// `fsmount(fd, flags, attr)` (fsmount(2), Linux 5.2): a detached mount
/// of the created context `fd`; returns its fd, which the caller attaches
/// with [`move_mount`] and closes with [`close`]. Pass `FSMOUNT_CLOEXEC`.
pub fn fsmount(fd: RawFd, flags: libc::c_uint, attr: MountAttr) -> Result<RawFd, i32> {
    fake!(fsmount(fd, flags, attr));
    // SAFETY: integer arguments only.
    cvt_long(unsafe { libc::syscall(libc::SYS_fsmount, fd, flags, attr.bits() as libc::c_uint) })
        .map(|fd| fd as RawFd)
}

/// `pivot_root(new_root, put_old)` (pivot_root(2); `pivot_root(".", ".")`
/// with the old root detached after, since Linux 3.17).
pub fn pivot_root(new_root: &CStr, put_old: &CStr) -> Result<(), i32> {
    fake!(pivot_root(new_root, put_old));
    // SAFETY: C strings valid for the call.
    cvt_long(unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) })
        .map(drop)
}

/// `chdir(path)` (chdir(2)).
pub fn chdir(path: &CStr) -> Result<(), i32> {
    fake!(chdir(path));
    // SAFETY: a C string valid for the call.
    cvt(unsafe { libc::chdir(path.as_ptr()) }).map(drop)
}

/// `chroot(path)` (chroot(2)): only where the child has no mount
/// namespace of its own (else [`pivot_root`]).
pub fn chroot(path: &CStr) -> Result<(), i32> {
    fake!(chroot(path));
    // SAFETY: a C string valid for the call.
    cvt(unsafe { libc::chroot(path.as_ptr()) }).map(drop)
}

/// `mkdir(path, mode)` (mkdir(2)).
pub fn mkdir(path: &CStr, mode: libc::mode_t) -> Result<(), i32> {
    fake!(mkdir(path, mode));
    // SAFETY: a C string valid for the call.
    cvt(unsafe { libc::mkdir(path.as_ptr(), mode) }).map(drop)
}

/// `mkdirat(dir, name, mode)` (mkdirat(2), Linux 2.6.16).
pub fn mkdirat(dir: RawFd, name: &CStr, mode: libc::mode_t) -> Result<(), i32> {
    fake!(mkdirat(dir, name, mode));
    // SAFETY: a C string valid for the call.
    cvt(unsafe { libc::mkdirat(dir, name.as_ptr(), mode) }).map(drop)
}

/// `mknod(path, mode, dev)` (mknod(2)): `mode` holds the file type.
pub fn mknod(path: &CStr, mode: libc::mode_t, dev: libc::dev_t) -> Result<(), i32> {
    fake!(mknod(path, mode, dev));
    // SAFETY: a C string valid for the call.
    cvt(unsafe { libc::mknod(path.as_ptr(), mode, dev) }).map(drop)
}

/// `mknodat(dir, name, mode, dev)` (mknodat(2), Linux 2.6.16).
pub fn mknodat(dir: RawFd, name: &CStr, mode: libc::mode_t, dev: libc::dev_t) -> Result<(), i32> {
    fake!(mknodat(dir, name, mode, dev));
    // SAFETY: a C string valid for the call.
    cvt(unsafe { libc::mknodat(dir, name.as_ptr(), mode, dev) }).map(drop)
}

/// `symlink(target, link)` (symlink(2)): `link` points at `target`.
pub fn symlink(target: &CStr, link: &CStr) -> Result<(), i32> {
    fake!(symlink(target, link));
    // SAFETY: C strings valid for the call.
    cvt(unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) }).map(drop)
}

/// `symlinkat(target, dir, name)` (symlinkat(2), Linux 2.6.16).
pub fn symlinkat(target: &CStr, dir: RawFd, name: &CStr) -> Result<(), i32> {
    fake!(symlinkat(target, dir, name));
    // SAFETY: C strings valid for the call.
    cvt(unsafe { libc::symlinkat(target.as_ptr(), dir, name.as_ptr()) }).map(drop)
}

/// `unlinkat(dir, name, flags)` (unlinkat(2), Linux 2.6.16).
pub fn unlinkat(dir: RawFd, name: &CStr, flags: libc::c_int) -> Result<(), i32> {
    fake!(unlinkat(dir, name, flags));
    // SAFETY: a C string valid for the call.
    cvt(unsafe { libc::unlinkat(dir, name.as_ptr(), flags) }).map(drop)
}

/// `open(path, flags, mode)` (open(2)); returns the new fd, which the
/// caller closes with [`close`]. Pass `O_CLOEXEC` in `flags`.
pub fn open(path: &CStr, flags: libc::c_int, mode: libc::mode_t) -> Result<RawFd, i32> {
    fake!(open(path, flags, mode));
    // SAFETY: a C string valid for the call.
    cvt(unsafe { libc::open(path.as_ptr(), flags, libc::c_uint::from(mode)) })
}

/// `openat(dir, name, flags, mode)` (openat(2), Linux 2.6.16); returns the
/// new fd, which the caller closes with [`close`].
pub fn openat(
    dir: RawFd,
    name: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> Result<RawFd, i32> {
    fake!(openat(dir, name, flags, mode));
    // SAFETY: a C string valid for the call.
    cvt(unsafe { libc::openat(dir, name.as_ptr(), flags, libc::c_uint::from(mode)) })
}

/// `openat2(dir, path, {flags, mode 0, resolve})` (openat2(2), Linux 5.6),
/// once (an `EAGAIN` is returned, not retried); returns the new fd, which
/// the caller closes with [`close`]. `flags` is passed as is: add
/// `O_CLOEXEC`.
pub fn openat2(
    dir: RawFd,
    path: &CStr,
    flags: libc::c_int,
    resolve: ResolveFlags,
) -> Result<RawFd, i32> {
    fake!(openat2(dir, path, flags, resolve));
    // SAFETY: open_how is plain data (non-exhaustive in libc: no literal);
    // all zeroes is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.resolve = resolve.bits();
    // SAFETY: an open_how of the size passed and a C string, valid for the call.
    cvt_long(unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            path.as_ptr(),
            &raw const how,
            std::mem::size_of::<libc::open_how>(),
        )
    })
    .map(|fd| fd as RawFd)
}

/// `close(fd)` (close(2)) of an fd the caller owns; its error is ignored
/// (the fd is gone either way).
pub fn close(fd: RawFd) {
    fake!(close(fd));
    // SAFETY: a syscall on an integer; the caller owns the fd.
    unsafe { libc::close(fd) };
}

/// `close_range(first, last, flags)` (close_range(2), Linux 5.9;
/// `CLOSE_RANGE_CLOEXEC` 5.11): close (or mark close-on-exec) the fds
/// `first..=last` the caller owns.
#[inline]
pub fn close_range(first: u32, last: u32, flags: libc::c_uint) -> Result<(), i32> {
    fake!(close_range(first, last, flags));
    // SAFETY: a syscall on integers; the caller owns the fds.
    cvt_long(unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) }).map(drop)
}

/// `setns(fd, nstype)` (setns(2), Linux 3.0; a pidfd with several
/// `CLONE_NEW*` flags 5.8): enter the namespace behind `fd`.
pub fn setns(fd: RawFd, nstype: libc::c_int) -> Result<(), i32> {
    fake!(setns(fd, nstype));
    // SAFETY: a syscall on integers.
    cvt(unsafe { libc::setns(fd, nstype) }).map(drop)
}

/// `unshare(flags)` (unshare(2); `CLONE_NEWTIME` Linux 5.6): new
/// namespaces of the `CLONE_NEW*` kinds in `flags` for the caller (a pid
/// or time namespace for its children).
pub fn unshare(flags: libc::c_int) -> Result<(), i32> {
    fake!(unshare(flags));
    // SAFETY: a syscall on an integer.
    cvt(unsafe { libc::unshare(flags) }).map(drop)
}

/// `dup2(src, dst)` (dup2(2)): `dst` becomes a copy of `src` (closed
/// first if open), without close-on-exec.
pub fn dup2(src: RawFd, dst: RawFd) -> Result<(), i32> {
    fake!(dup2(src, dst));
    // SAFETY: a syscall on integers; the caller owns `dst`.
    cvt(unsafe { libc::dup2(src, dst) }).map(drop)
}

/// `execve(path, argv, envp)` (execve(2)): replace the process with the
/// program at `path`; returns only when that failed, with the errno.
///
/// # Safety
/// `argv` and `envp` are NULL-terminated arrays of pointers to C strings,
/// all valid until the call returns (they are read by the kernel).
pub unsafe fn execve(
    path: &CStr,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> i32 {
    fake!(execve(path, argv, envp));
    // SAFETY: a C string and the arrays the caller vouches for.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    errno()
}

/// The handler of signal `sig` (`sigaction(sig, NULL, &old)`,
/// sigaction(2)): `SIG_DFL`, `SIG_IGN` or a function's address.
pub fn signal_handler(sig: libc::c_int) -> Result<libc::sighandler_t, i32> {
    fake!(signal_handler(sig));
    // SAFETY: all zeroes is a valid sigaction.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: an out buffer valid for the call, and NULL for the new action.
    cvt(unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) })?;
    Ok(old.sa_sigaction)
}

/// Signal `sig` back to its default action (`sigaction(sig, {SIG_DFL,
/// empty mask, no flags}, NULL)`, sigaction(2)).
pub fn signal_default(sig: libc::c_int) -> Result<(), i32> {
    fake!(signal_default(sig));
    // SAFETY: all zeroes is a valid sigaction; SIG_DFL is 0.
    let mut dfl: libc::sigaction = unsafe { std::mem::zeroed() };
    dfl.sa_sigaction = libc::SIG_DFL;
    // SAFETY: a sigaction valid for the call, and NULL for the old one.
    cvt(unsafe { libc::sigaction(sig, &dfl, std::ptr::null_mut()) }).map(drop)
}

/// Set the calling thread's signal mask to `mask`
/// (`pthread_sigmask(SIG_SETMASK, mask, NULL)`, pthread_sigmask(3): the
/// `rt_sigprocmask` system call).
pub fn set_signal_mask(mask: &libc::sigset_t) -> Result<(), i32> {
    fake!(set_signal_mask(mask));
    // SAFETY: a sigset valid for the call, and NULL for the old one.
    match unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, mask, std::ptr::null_mut()) } {
        0 => Ok(()),
        e => Err(e),
    }
}

/// A set of every signal (sigfillset(3), async-signal-safe per
/// signal-safety(7)). No system call (it fills memory), so no fake.
pub fn full_signal_set() -> libc::sigset_t {
    // SAFETY: all zeroes is a valid sigset_t.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: a valid sigset_t to fill; it cannot fail on one.
    unsafe { libc::sigfillset(&mut set) };
    set
}

/// Set the calling thread's signal mask to `mask` and return the mask it
/// replaces (`pthread_sigmask(SIG_SETMASK, mask, &old)`,
/// pthread_sigmask(3): the `rt_sigprocmask` system call).
pub fn swap_signal_mask(mask: &libc::sigset_t) -> Result<libc::sigset_t, i32> {
    fake!(swap_signal_mask(mask));
    // SAFETY: all zeroes is a valid sigset_t.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: sigsets valid for the call.
    match unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, mask, &mut old) } {
        0 => Ok(old),
        e => Err(e),
    }
}

/// Wait for a signal of `set` (blocked by the caller) and take it from the
/// pending ones (`sigwaitinfo(set, &info)`, sigwaitinfo(2): the
/// `rt_sigtimedwait` system call, Linux 2.2): its number.
pub fn sigwaitinfo(set: &libc::sigset_t) -> Result<libc::c_int, i32> {
    fake!(sigwaitinfo(set));
    // SAFETY: all zeroes is a valid siginfo_t.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: a sigset and a siginfo valid for the call.
    cvt(unsafe { libc::sigwaitinfo(set, &mut info) })
}

/// Send signal `sig` to process `pid` (`kill(pid, sig)`, kill(2)).
pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> Result<(), i32> {
    fake!(kill(pid, sig));
    // SAFETY: a syscall on integers.
    cvt(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// `waitpid(pid, &status, flags)` (waitpid(2), the `wait4` system call):
/// the pid of the child that changed state (0 with `WNOHANG` when none
/// did) and its wait status.
pub fn waitpid(pid: libc::pid_t, flags: libc::c_int) -> Result<(libc::pid_t, libc::c_int), i32> {
    fake!(waitpid(pid, flags));
    let mut status = 0;
    // SAFETY: an int out-parameter valid for the call.
    let r = cvt(unsafe { libc::waitpid(pid, &mut status, flags) })?;
    Ok((r, status))
}

/// Start a new session with the caller as its leader (setsid(2));
/// `EPERM` for a process group leader.
pub fn setsid() -> Result<(), i32> {
    fake!(setsid());
    // SAFETY: a system call without arguments.
    cvt(unsafe { libc::setsid() }).map(drop)
}

/// Make the terminal on `fd` the caller's controlling terminal
/// (`ioctl(fd, TIOCSCTTY, 0)`, ioctl_tty(2)): the caller is a session
/// leader without one.
pub fn set_controlling_tty(fd: RawFd) -> Result<(), i32> {
    fake!(set_controlling_tty(fd));
    // SAFETY: an ioctl whose argument is the integer 0 (do not steal).
    cvt(unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) }).map(drop)
}

/// A plain fork as a raw system call: `clone(flags | SIGCHLD, NULL
/// stack)` (clone(2); `CLONE_PARENT` Linux 2.3.12). No atfork handlers,
/// no glibc locks (fork(3) runs both). The child's pid in the parent, 0
/// in the child.
pub fn fork(flags: libc::c_ulong) -> Result<libc::pid_t, i32> {
    fake!(fork(flags));
    // SAFETY: clone without CLONE_VM and with a null stack behaves like
    // fork: the child continues on a copy of this stack.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags | libc::SIGCHLD as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    cvt_long(r).map(|p| p as libc::pid_t)
}

/// The monotonic clock in nanoseconds (`clock_gettime(CLOCK_MONOTONIC)`,
/// clock_gettime(2): the vDSO, no system call on most architectures;
/// async-signal-safe per signal-safety(7)).
#[inline]
pub fn monotonic_ns() -> Result<u64, i32> {
    fake!(monotonic_ns());
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a timespec valid for the call.
    cvt(unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) })?;
    Ok(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// `read(fd, buf)` (read(2)): the number of bytes read, 0 at end of file.
pub fn read(fd: RawFd, buf: &mut [u8]) -> Result<usize, i32> {
    fake!(read(fd, buf));
    // SAFETY: buf is a valid writable slice.
    cvt_long(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } as libc::c_long)
        .map(|n| n as usize)
}

/// `write(fd, buf)` (write(2)): the number of bytes written.
pub fn write(fd: RawFd, buf: &[u8]) -> Result<usize, i32> {
    fake!(write(fd, buf));
    // SAFETY: buf is a valid readable slice.
    cvt_long(unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) } as libc::c_long)
        .map(|n| n as usize)
}

/// Write the whole of `buf` with [`write()`], retrying on `EINTR` and short
/// writes; a write of 0 bytes is `EIO`.
pub fn write_all(fd: RawFd, mut buf: &[u8]) -> Result<(), i32> {
    while !buf.is_empty() {
        match write(fd, buf) {
            Err(libc::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(0) => return Err(libc::EIO),
            // n <= buf.len(): the slice stays in bounds.
            Ok(n) => buf = buf.get(n..).unwrap_or(&[]),
        }
    }
    Ok(())
}

/// Unlock the pseudoterminal pair of the master `master`
/// (`ioctl(master, TIOCSPTLCK, &0)`, what unlockpt(3) does; pts(4)), so
/// its peer can be opened.
pub fn unlock_pty(master: RawFd) -> Result<(), i32> {
    fake!(unlock_pty(master));
    let unlock: libc::c_int = 0;
    // SAFETY: an ioctl whose argument is a pointer to an int on our stack.
    cvt(unsafe { libc::ioctl(master, libc::TIOCSPTLCK, &unlock) }).map(drop)
}

/// Open the peer (slave) of the pseudoterminal master `master` with
/// `flags` (`ioctl(master, TIOCGPTPEER, flags)`, ioctl_tty(2), Linux
/// 4.13): through the master's own devpts instance, never by a path a
/// container could swap.
pub fn open_pty_peer(master: RawFd, flags: libc::c_int) -> Result<RawFd, i32> {
    fake!(open_pty_peer(master, flags));
    /// `TIOCGPTPEER` (`_IO('T', 0x41)`, `<asm-generic/ioctls.h>`): libc has
    /// no constant for it.
    const TIOCGPTPEER: libc::c_ulong = 0x5441;
    // SAFETY: an ioctl whose argument is an integer.
    cvt(unsafe { libc::ioctl(master, TIOCGPTPEER as _, flags) })
}

/// Send `fd` over the connected Unix socket `sock` with one data byte
/// (`sendmsg(2)` with an `SCM_RIGHTS` message on the stack, unix(7);
/// `MSG_NOSIGNAL`: a closed peer is `EPIPE`). Closes neither fd.
pub fn send_fd(sock: RawFd, fd: RawFd) -> Result<(), i32> {
    fake!(send_fd(sock, fd));
    cvt_long(crate::scm::sendmsg_fd(sock, fd, &[0]) as libc::c_long).map(drop)
}

/// The `st_mode` of `fstatat(dir, name, flags)`, the call glibc (2.33+)
/// makes for stat(2) and fstat(2) too.
fn mode_at(dir: RawFd, name: &CStr, flags: libc::c_int) -> Result<libc::mode_t, i32> {
    // SAFETY: all zeroes is a valid stat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a C string and an out buffer valid for the call.
    cvt(unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, flags) })?;
    Ok(st.st_mode)
}

/// The `st_mode` of `stat(path)` (stat(2): `fstatat(AT_FDCWD, path, 0)`):
/// file type and permissions.
pub fn stat_mode(path: &CStr) -> Result<libc::mode_t, i32> {
    fake!(stat_mode(path));
    mode_at(libc::AT_FDCWD, path, 0)
}

/// The `st_mode` of `fstat(fd)` (fstat(2): `fstatat(fd, "",
/// AT_EMPTY_PATH)`, Linux 2.6.39).
pub fn fstat_mode(fd: RawFd) -> Result<libc::mode_t, i32> {
    fake!(fstat_mode(fd));
    mode_at(fd, c"", libc::AT_EMPTY_PATH)
}

/// The `st_mode` of `fstatat(dir, name, flags)` (fstatat(2), Linux
/// 2.6.16; `AT_SYMLINK_NOFOLLOW`: a link itself).
pub fn fstatat_mode(dir: RawFd, name: &CStr, flags: libc::c_int) -> Result<libc::mode_t, i32> {
    fake!(fstatat_mode(dir, name, flags));
    mode_at(dir, name, flags)
}

/// `sethostname(name)` (sethostname(2): at most 64 bytes, in a UTS
/// namespace of the caller's own).
pub fn sethostname(name: &CStr) -> Result<(), i32> {
    fake!(sethostname(name));
    // SAFETY: a buffer of the length passed.
    cvt(unsafe { libc::sethostname(name.as_ptr(), name.to_bytes().len()) }).map(drop)
}

/// `setdomainname(name)` (setdomainname(2): at most 64 bytes).
pub fn setdomainname(name: &CStr) -> Result<(), i32> {
    fake!(setdomainname(name));
    // SAFETY: a buffer of the length passed.
    cvt(unsafe { libc::setdomainname(name.as_ptr(), name.to_bytes().len()) }).map(drop)
}

/// `prlimit64(0, resource, {soft, hard}, NULL)` (prlimit(2), Linux
/// 2.6.36): set a limit of the calling process.
pub fn prlimit64(resource: libc::c_int, soft: u64, hard: u64) -> Result<(), i32> {
    fake!(prlimit64(resource, soft, hard));
    let lim = libc::rlimit64 {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: an rlimit64 valid for the call, and NULL for the old one.
    cvt_long(unsafe {
        libc::syscall(
            libc::SYS_prlimit64,
            0,
            resource,
            &raw const lim,
            std::ptr::null_mut::<libc::rlimit64>(),
        )
    })
    .map(drop)
}

/// `prctl(option, args...)` (prctl(2)) with integer arguments; its
/// non-negative return.
pub fn prctl(option: libc::c_int, args: [libc::c_ulong; 4]) -> Result<libc::c_int, i32> {
    fake!(prctl(option, args));
    // SAFETY: integer arguments only (no option berth passes takes a pointer).
    cvt(unsafe { libc::prctl(option, args[0], args[1], args[2], args[3]) })
}

/// `setgroups(groups)` as a raw syscall (setgroups(2)): glibc's wrapper
/// would signal the parent's threads to change theirs too (nptl's setxid).
pub fn setgroups(groups: &[libc::gid_t]) -> Result<(), i32> {
    fake!(setgroups(groups));
    let list = if groups.is_empty() {
        std::ptr::null()
    } else {
        groups.as_ptr()
    };
    // SAFETY: NULL or a list of the length passed.
    cvt_long(unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), list) }).map(drop)
}

/// `setresgid(r, e, s)` as a raw syscall (setresgid(2); see [`setgroups`]).
pub fn setresgid(r: libc::gid_t, e: libc::gid_t, s: libc::gid_t) -> Result<(), i32> {
    fake!(setresgid(r, e, s));
    // SAFETY: integer arguments only.
    cvt_long(unsafe { libc::syscall(libc::SYS_setresgid, r, e, s) }).map(drop)
}

/// `setresuid(r, e, s)` as a raw syscall (setresuid(2); see [`setgroups`]).
pub fn setresuid(r: libc::uid_t, e: libc::uid_t, s: libc::uid_t) -> Result<(), i32> {
    fake!(setresuid(r, e, s));
    // SAFETY: integer arguments only.
    cvt_long(unsafe { libc::syscall(libc::SYS_setresuid, r, e, s) }).map(drop)
}

/// The parent-death signal (`prctl(PR_GET_PDEATHSIG, &sig)`, prctl(2),
/// Linux 2.3.15); 0 when none is set.
pub fn get_pdeathsig() -> Result<libc::c_int, i32> {
    fake!(get_pdeathsig());
    let mut sig: libc::c_int = 0;
    // SAFETY: PR_GET_PDEATHSIG stores an int through the valid pointer.
    cvt(unsafe {
        libc::prctl(
            libc::PR_GET_PDEATHSIG,
            &raw mut sig as libc::c_ulong,
            0,
            0,
            0,
        )
    })?;
    Ok(sig)
}

/// `struct __user_cap_data_struct` (`<linux/capability.h>`): one 32-bit
/// half of the effective, permitted and inheritable capability sets
/// (`[0]` capabilities 0..=31, `[1]` 32..=63).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapData {
    /// Effective set (this half).
    pub effective: u32,
    /// Permitted set (this half).
    pub permitted: u32,
    /// Inheritable set (this half).
    pub inheritable: u32,
}

/// `struct __user_cap_header_struct` (`<linux/capability.h>`).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `_LINUX_CAPABILITY_VERSION_3` (Linux 2.6.26): two [`CapData`] halves.
const CAP_V3: u32 = 0x2008_0522;

/// `capset(v3 header for the calling thread, data)` (capget(2), Linux
/// 2.6.26 for version 3): set the effective, permitted and inheritable sets.
pub fn capset(data: &[CapData; 2]) -> Result<(), i32> {
    fake!(capset(data));
    let hdr = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    // SAFETY: a valid header and the two data structs version 3 reads.
    cvt_long(unsafe { libc::syscall(libc::SYS_capset, &raw const hdr, data.as_ptr()) }).map(drop)
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, &{len, filter})` (seccomp(2),
/// Linux 3.17): install a classic BPF filter on the calling thread. Needs
/// `no_new_privs` or `CAP_SYS_ADMIN`; a filter longer than `u16::MAX`
/// instructions is `EINVAL` without a call (the kernel's limit,
/// `BPF_MAXINSNS`, is 4096).
pub fn seccomp_set_mode_filter(
    flags: libc::c_uint,
    filter: &[libc::sock_filter],
) -> Result<(), i32> {
    fake!(seccomp_set_mode_filter(flags, filter));
    let len = u16::try_from(filter.len()).map_err(|_| libc::EINVAL)?;
    let prog = libc::sock_fprog {
        len,
        // The kernel only reads the program.
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `len` instructions that outlive the call.
    cvt_long(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &raw const prog,
        )
    })
    .map(drop)
}

/// `landlock_restrict_self(ruleset, flags)` (landlock_restrict_self(2),
/// Linux 5.13): enforce the ruleset on the calling thread. Needs
/// `no_new_privs` or `CAP_SYS_ADMIN`.
pub fn landlock_restrict_self(ruleset: BorrowedFd<'_>, flags: u32) -> Result<(), i32> {
    fake!(landlock_restrict_self(ruleset, flags));
    // SAFETY: an fd and integer flags.
    cvt_long(unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), flags) })
        .map(drop)
}

/// `umask(mask)` (umask(2), cannot fail): the previous mask.
pub fn umask(mask: libc::mode_t) -> libc::mode_t {
    fake!(umask(mask));
    // SAFETY: an integer argument.
    unsafe { libc::umask(mask) }
}

/// `lchown(path, uid, gid)` (lchown(2)): never through a last-component link.
pub fn lchown(path: &CStr, uid: libc::uid_t, gid: libc::gid_t) -> Result<(), i32> {
    fake!(lchown(path, uid, gid));
    // SAFETY: a C string valid for the call.
    cvt(unsafe { libc::lchown(path.as_ptr(), uid, gid) }).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_return_the_errno() {
        assert_eq!(mkdir(c"/nonexistent-berth-dir/x", 0o755), Err(libc::ENOENT));
        assert_eq!(stat_mode(c"/nonexistent-berth-file"), Err(libc::ENOENT));
        assert_eq!(stat_mode(c"/").map(|m| m & libc::S_IFMT), Ok(libc::S_IFDIR));
        let fd = open(c"/dev/null", libc::O_WRONLY | libc::O_CLOEXEC, 0).unwrap();
        assert_eq!(write_all(fd, b"abc"), Ok(()));
        assert_eq!(fstat_mode(fd).map(|m| m & libc::S_IFMT), Ok(libc::S_IFCHR));
        close(fd);
        let root = open(c"/", libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC, 0).unwrap();
        let dev = openat2(
            root,
            c"dev/null",
            libc::O_PATH | libc::O_CLOEXEC,
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
        .unwrap();
        close(dev);
        assert_eq!(
            fstatat_mode(root, c"dev", libc::AT_SYMLINK_NOFOLLOW).map(|m| m & libc::S_IFMT),
            Ok(libc::S_IFDIR)
        );
        close(root);
    }

    #[test]
    fn send_fd_passes_an_fd_and_fsopen_returns_the_errno() {
        use std::os::fd::AsFd;
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let f = std::fs::File::open("/dev/null").unwrap();
        assert_eq!(send_fd(a.as_raw_fd(), f.as_raw_fd()), Ok(()));
        let got = crate::scm::recv_fd(b.as_fd(), true).unwrap();
        assert_eq!(
            fstat_mode(got.as_raw_fd()).map(|m| m & libc::S_IFMT),
            Ok(libc::S_IFCHR)
        );
        assert_eq!(send_fd(a.as_raw_fd(), -1), Err(libc::EBADF));
        // No such file system type (ENODEV), or no CAP_SYS_ADMIN (EPERM).
        let e = fsopen(c"berth-no-such-fs", libc::FSOPEN_CLOEXEC).unwrap_err();
        assert!(e == libc::ENODEV || e == libc::EPERM, "{e}");
        // Not an fd: EBADF (EINVAL on kernels that check the flags first,
        // EPERM for fsmount without CAP_SYS_ADMIN).
        let bad = |r: Result<_, i32>| matches!(r, Err(libc::EBADF | libc::EINVAL | libc::EPERM));
        assert!(bad(fsconfig(-1, libc::FSCONFIG_CMD_CREATE, None, None, 0)));
        assert!(bad(fsmount(-1, 0, MountAttr::empty()).map(drop)));
    }

    #[test]
    fn process_calls_return_the_errno() {
        assert_eq!(unshare(0), Ok(()));
        let f = std::fs::File::open("/dev/null").unwrap();
        assert_eq!(dup2(f.as_raw_fd(), 987), Ok(()));
        assert_eq!(fstat_mode(987).map(|m| m & libc::S_IFMT), Ok(libc::S_IFCHR));
        assert_eq!(close_range(987, 987, 0), Ok(()));
        assert_eq!(fstat_mode(987), Err(libc::EBADF));
        assert_eq!(dup2(-1, 987), Err(libc::EBADF));
        assert_eq!(setns(-1, 0), Err(libc::EBADF));
        assert_eq!(signal_handler(libc::SIGUSR2), Ok(libc::SIG_DFL));
        assert_eq!(signal_handler(0), Err(libc::EINVAL));
        assert_eq!(signal_default(libc::SIGKILL), Err(libc::EINVAL));
        // SAFETY: an all-zeroes sigset is valid; it is then filled in.
        let mut mask: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: reading this thread's mask into a local.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, std::ptr::null(), &mut mask) };
        assert_eq!(set_signal_mask(&mask), Ok(()));
        let argv = [c"x".as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null()];
        // SAFETY: NULL-terminated arrays of C strings.
        let e = unsafe { execve(c"/nonexistent-berth-prog", &argv, &envp) };
        assert_eq!(e, libc::ENOENT);
    }

    #[test]
    fn security_calls_return_the_errno() {
        assert!(get_pdeathsig().is_ok());
        let nop = libc::sock_filter {
            code: 0,
            jt: 0,
            jf: 0,
            k: 0,
        };
        let long = vec![nop; usize::from(u16::MAX) + 1];
        assert_eq!(seccomp_set_mode_filter(0, &long), Err(libc::EINVAL));
        // Not a ruleset: EBADFD (or ENOSYS/EOPNOTSUPP without Landlock).
        let f = std::fs::File::open("/dev/null").unwrap();
        assert!(landlock_restrict_self(std::os::fd::AsFd::as_fd(&f), 0).is_err());
    }
}
