//! Process calls of a runtime that daemonizes and re-executes itself:
//! fork(2), setsid(2), waitpid(2), _exit(2), execveat(2): nix's (its
//! `process` feature), but `_exit`, which nix does not wrap.

use std::ffi::CString;
use std::io;
use std::os::fd::BorrowedFd;

/// `fork()` (fork(2)): `Ok(0)` in the child, the child's pid in the
/// parent.
///
/// # Safety
///
/// As for any fork: the child of a multi-threaded process may only make
/// async-signal-safe calls until it execs or exits (signal-safety(7)). A
/// single-threaded caller's child may run any code.
pub unsafe fn fork() -> io::Result<i32> {
    use nix::unistd::ForkResult;
    // SAFETY: the caller's contract above.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Child => Ok(0),
        ForkResult::Parent { child } => Ok(child.as_raw()),
    }
}

/// Leave at once with `code` (`_exit(2)`): no atexit handlers, no
/// flushing of stdio buffers, what a forked child that must not run its
/// parent's handlers a second time wants.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) never returns and touches no memory of ours.
    unsafe { libc::_exit(code) }
}

/// Start a new session with this process as its leader (setsid(2));
/// `EPERM` for a process group leader.
pub fn setsid() -> io::Result<()> {
    nix::unistd::setsid()?;
    Ok(())
}

/// Wait for (and reap) the child `pid` (waitpid(2), retried on `EINTR`);
/// how it ended.
pub fn wait_pid(pid: i32) -> io::Result<nix::sys::wait::WaitStatus> {
    loop {
        match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => return Ok(r?),
        }
    }
}

/// Run the program behind `fd` (an `O_PATH` fd is fine) with `argv` and
/// `envp` (`execveat(fd, "", argv, envp, AT_EMPTY_PATH)`, execveat(2),
/// Linux 3.19); returns only on failure, with its error.
pub fn execveat_fd(fd: BorrowedFd<'_>, argv: &[CString], envp: &[CString]) -> io::Error {
    match nix::unistd::execveat(fd, c"", argv, envp, nix::fcntl::AtFlags::AT_EMPTY_PATH) {
        Err(e) => e.into(),
        Ok(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forked_child_is_reaped_with_its_status() {
        // SAFETY: the child only calls _exit.
        let pid = unsafe { fork() }.unwrap();
        if pid == 0 {
            exit_now(7);
        }
        let st = wait_pid(pid).unwrap();
        assert_eq!(
            st,
            nix::sys::wait::WaitStatus::Exited(nix::unistd::Pid::from_raw(pid), 7)
        );
        assert_eq!(
            wait_pid(pid).unwrap_err().raw_os_error(),
            Some(libc::ECHILD)
        );
    }

    #[test]
    fn execveat_of_a_bad_fd_is_an_error() {
        let f = std::fs::File::open("/proc/self/status").unwrap();
        let e = execveat_fd(std::os::fd::AsFd::as_fd(&f), &[], &[]);
        assert_eq!(e.raw_os_error(), Some(libc::EACCES));
    }
}
