//! Process fds (pidfd_open(2), pidfd_send_signal(2), the pidfs ioctls):
//! nix has none of them, so these are raw `syscall(2)`s, with libc's numbers.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::errno::cvt_long;

/// `pidfd_open(pid, flags)` (pidfd_open(2), Linux 5.3+; `flags` 0 or
/// `PIDFD_NONBLOCK` 5.10+): an fd naming the process `pid` that never
/// names another process, even once the pid is reused.
pub fn open(pid: i32, flags: u32) -> io::Result<OwnedFd> {
    // SAFETY: a syscall with integer arguments only.
    let fd = cvt_long(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, flags) })?;
    // SAFETY: the kernel just returned this new fd; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `pidfd_send_signal(pidfd, sig, NULL, 0)` (pidfd_send_signal(2), Linux
/// 5.1+). Signal 0 only checks: `ESRCH` when the process has exited,
/// `EBADF` when `pidfd` is not a pidfd.
pub fn send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    // SAFETY: a syscall on a borrowed (so open) fd, with a null siginfo
    // (allowed: the kernel fills one in) and no flags.
    cvt_long(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })
    .map(drop)
}

/// True when `fd` is a pidfd of a live process ([`send_signal`] with
/// signal 0 succeeds: on any other kind of fd it fails with `EBADF`). Check
/// this before a pidfs ioctl, whose number could mean something else on
/// another kind of fd.
pub fn is_live_pidfd(fd: BorrowedFd<'_>) -> bool {
    send_signal(fd, 0).is_ok()
}

/// The network namespace of the process of `pidfd`, as a new nsfs fd
/// (`ioctl(pidfd, PIDFD_GET_NET_NAMESPACE)`, include/uapi/linux/pidfd.h,
/// Linux 6.11+; `ENOTTY` on older kernels). Checks [`is_live_pidfd`] first
/// (`EBADF` otherwise).
pub fn net_namespace(pidfd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    if !is_live_pidfd(pidfd) {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: an ioctl without argument on a pidfd (checked above); on
    // success it returns a new nsfs fd.
    let fd = crate::errno::cvt(unsafe {
        libc::ioctl(pidfd.as_raw_fd(), libc::PIDFD_GET_NET_NAMESPACE as _, 0)
    })?;
    // SAFETY: the kernel just returned this new fd; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `waitid(P_PIDFD, pidfd, &info, WEXITED [| WNOHANG])` (waitid(2), Linux
/// 5.4+): reap the process of `pidfd` and return its exit status; with
/// `nohang`, `Ok(None)` right away while it still runs. `EINTR` is retried;
/// `ECHILD` when it is not our child or was reaped already.
///
/// Raw `libc`: nix's `waitid` returns a `WaitStatus` whose `Signal` cannot
/// hold a realtime signal (a child killed by `SIGRTMIN+n` would be an
/// `EINVAL` there); this keeps every status, as `std` does.
pub fn wait(pidfd: BorrowedFd<'_>, nohang: bool) -> io::Result<Option<std::process::ExitStatus>> {
    use std::os::unix::process::ExitStatusExt;
    let flags = libc::WEXITED | if nohang { libc::WNOHANG } else { 0 };
    loop {
        // SAFETY: siginfo_t is plain old data: all zeroes is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid on a borrowed (so open) fd, writing only our
        // local siginfo.
        let r = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                pidfd.as_raw_fd() as libc::id_t,
                &mut info,
                flags,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        // SAFETY: waitid filled the SIGCHLD fields of `info`, or left it
        // zeroed (WNOHANG, still running: si_pid 0).
        let (pid, st) = unsafe { (info.si_pid(), info.si_status()) };
        if pid == 0 {
            return Ok(None);
        }
        // The wait(2) status word std's ExitStatus holds.
        let raw = match info.si_code {
            libc::CLD_EXITED => (st & 0xff) << 8,
            libc::CLD_KILLED => st & 0x7f,
            libc::CLD_DUMPED => (st & 0x7f) | 0x80,
            _ => st,
        };
        return Ok(Some(std::process::ExitStatus::from_raw(raw)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn own_pidfd_is_live_and_a_file_is_not_a_pidfd() {
        let me = open(std::process::id() as i32, 0).unwrap();
        assert!(is_live_pidfd(me.as_fd()));
        let f = std::fs::File::open("/").unwrap();
        assert!(!is_live_pidfd(f.as_fd()));
        let e = send_signal(f.as_fd(), 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF));
        assert_eq!(
            net_namespace(f.as_fd()).unwrap_err().raw_os_error(),
            Some(libc::EBADF)
        );
    }

    #[test]
    #[allow(clippy::zombie_processes)] // reaped through their pidfds
    fn wait_reports_exits_and_realtime_signal_deaths() {
        use std::os::unix::process::ExitStatusExt;
        let c = std::process::Command::new("/bin/sh")
            .args(["-c", "exit 3"])
            .spawn()
            .unwrap();
        let fd = open(c.id() as i32, 0).unwrap();
        let st = wait(fd.as_fd(), false).unwrap().unwrap();
        assert_eq!(st.code(), Some(3));
        // Reaped: nothing more to wait for.
        let e = wait(fd.as_fd(), true).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ECHILD));

        let c = std::process::Command::new("/bin/sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let fd = open(c.id() as i32, 0).unwrap();
        assert_eq!(wait(fd.as_fd(), true).unwrap(), None, "still running");
        // A realtime signal (nix's Signal cannot name it).
        let rt = libc::SIGRTMIN() + 1;
        send_signal(fd.as_fd(), rt).unwrap();
        let st = wait(fd.as_fd(), false).unwrap().unwrap();
        assert_eq!(st.signal(), Some(rt));
    }
}
