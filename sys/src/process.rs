//! Process calls of a runtime that daemonizes and re-executes itself:
//! fork(2), setsid(2), waitpid(2), _exit(2), execveat(2). nix has them
//! behind its `process` feature, which berth-sys does not enable; these
//! are raw `libc`, each wrapped once.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `fork()` (fork(2)): `Ok(0)` in the child, the child's pid in the
/// parent.
///
/// # Safety
///
/// As for any fork: the child of a multi-threaded process may only make
/// async-signal-safe calls until it execs or exits (signal-safety(7)). A
/// single-threaded caller's child may run any code.
pub unsafe fn fork() -> io::Result<i32> {
    // SAFETY: the caller's contract above.
    crate::errno::cvt(unsafe { libc::fork() })
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
    // SAFETY: setsid(2) touches no memory of ours.
    crate::errno::cvt(unsafe { libc::setsid() }).map(drop)
}

/// Wait for (and reap) the child `pid` (waitpid(2), retried on `EINTR`);
/// its wait status.
pub fn wait_pid(pid: i32) -> io::Result<i32> {
    let mut status = 0;
    loop {
        // SAFETY: status is a valid int to write.
        match crate::errno::cvt(unsafe { libc::waitpid(pid, &mut status, 0) }) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r.map(|_| status),
        }
    }
}

/// Run the program behind `fd` (an `O_PATH` fd is fine) with `argv` and
/// `envp` (`execveat(fd, "", argv, envp, AT_EMPTY_PATH)`, execveat(2),
/// Linux 3.19); returns only on failure, with its error.
pub fn execveat_fd(fd: BorrowedFd<'_>, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|c| c.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    // SAFETY: NULL-terminated arrays of C strings that outlive the call;
    // an empty path with AT_EMPTY_PATH runs the file behind fd.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            argv_p.as_ptr(),
            envp_p.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    io::Error::last_os_error()
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
        assert!(libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 7, "{st:#x}");
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
