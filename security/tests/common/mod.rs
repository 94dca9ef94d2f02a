//! Helpers for the privileged tests: fork a real child, apply a prepared
//! policy in it, then exec a program or run raw-syscall checks.
#![allow(dead_code)]

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use berth_security::PreparedSecurity;

/// What the child does after `apply_in_child` succeeded.
pub enum Then<'a> {
    /// execve this program with these argv (argv[0] included) and an empty env.
    Exec(&'a Path, &'a [&'a str]),
    /// execve with these environment entries.
    ExecEnv(&'a Path, &'a [&'a str], &'a [&'a str]),
    /// Run this async-signal-safe function (writes results to fd 1), then _exit(its value).
    Call(fn() -> i32),
}

/// The outcome of a child.
#[derive(Debug)]
pub struct Outcome {
    /// Raw wait status.
    pub status: i32,
    /// Everything the child wrote to fd 1.
    pub stdout: Vec<u8>,
    /// `(step, errno)` when apply_in_child (or execve) failed.
    pub failure: Option<(String, i32)>,
}

impl Outcome {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn exit_code(&self) -> Option<i32> {
        libc::WIFEXITED(self.status).then(|| libc::WEXITSTATUS(self.status))
    }
    pub fn signal(&self) -> Option<i32> {
        libc::WIFSIGNALED(self.status).then(|| libc::WTERMSIG(self.status))
    }
    /// The value of a `Key:\tvalue` line of /proc/self/status output.
    pub fn status_field(&self, key: &str) -> String {
        let t = self.text();
        t.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}:")))
            .unwrap_or_else(|| panic!("no {key} in {t}"))
            .trim()
            .to_string()
    }
    pub fn assert_ok(&self) {
        assert_eq!(self.failure, None, "apply_in_child failed");
        assert_eq!(
            self.exit_code(),
            Some(0),
            "child status {:#x}: {}",
            self.status,
            self.text()
        );
    }
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: valid array for two fds.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: fresh fds we own.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// Fork, apply `sec` (if any) in the child, then do `then`.
pub fn run_child(sec: Option<&PreparedSecurity>, then: Then<'_>) -> Outcome {
    use std::os::fd::AsRawFd;
    // Everything the child needs is allocated here, before fork.
    let (prog, argv, envp): (Option<CString>, Vec<CString>, Vec<CString>) = match &then {
        Then::Exec(p, a) => (
            Some(CString::new(p.as_os_str().as_bytes()).unwrap()),
            a.iter().map(|s| cstr(s)).collect(),
            vec![cstr("PATH=/bin")],
        ),
        Then::ExecEnv(p, a, e) => (
            Some(CString::new(p.as_os_str().as_bytes()).unwrap()),
            a.iter().map(|s| cstr(s)).collect(),
            e.iter().map(|s| cstr(s)).collect(),
        ),
        Then::Call(_) => (None, vec![], vec![]),
    };
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|c| c.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    let call = match &then {
        Then::Call(f) => Some(*f),
        _ => None,
    };
    let (out_r, out_w) = pipe();
    let (err_r, err_w) = pipe();
    // SAFETY: the child only makes raw syscalls (apply_in_child is async-signal-safe).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // Child: no allocation from here on.
        // SAFETY: async-signal-safe raw calls on fds this process owns.
        unsafe {
            libc::dup2(out_w.as_raw_fd(), 1);
            let report = |step: &str, errno: i32| {
                let e = errno.to_ne_bytes();
                libc::write(err_w.as_raw_fd(), e.as_ptr().cast(), 4);
                libc::write(err_w.as_raw_fd(), step.as_ptr().cast(), step.len());
                libc::_exit(120);
            };
            if let Some(sec) = sec {
                if let Err(f) = sec.apply_in_child() {
                    report(f.step, f.errno);
                }
            }
            match (call, &prog) {
                (Some(f), _) => libc::_exit(f()),
                (None, Some(p)) => {
                    libc::execve(p.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr());
                    report("execve", *libc::__errno_location());
                }
                _ => libc::_exit(122),
            }
        }
    }
    drop(out_w);
    drop(err_w);
    let mut stdout = Vec::new();
    std::fs::File::from(out_r).read_to_end(&mut stdout).unwrap();
    let mut err = Vec::new();
    std::fs::File::from(err_r).read_to_end(&mut err).unwrap();
    let mut status = 0;
    // SAFETY: waiting for our own child.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid);
    let failure = (err.len() >= 4).then(|| {
        (
            String::from_utf8_lossy(&err[4..]).into_owned(),
            i32::from_ne_bytes(err[..4].try_into().unwrap()),
        )
    });
    Outcome {
        status,
        stdout,
        failure,
    }
}

/// `<busybox rootfs>/bin/busybox`.
pub fn busybox() -> PathBuf {
    berth_testkit::busybox_rootfs().join("bin/busybox")
}

/// Exec `busybox <applet> args...` after applying `sec`.
pub fn busybox_run(sec: Option<&PreparedSecurity>, args: &[&str]) -> Outcome {
    let bb = busybox();
    run_child(sec, Then::Exec(&bb, args))
}

/// The last errno (child side, async-signal-safe).
pub fn errno() -> i32 {
    // SAFETY: __errno_location always returns a valid thread-local pointer.
    unsafe { *libc::__errno_location() }
}

/// Write raw bytes to fd 1 (child side, async-signal-safe).
pub fn out(bytes: &[u8]) {
    // SAFETY: bytes is valid for its length.
    unsafe { libc::write(1, bytes.as_ptr().cast(), bytes.len()) };
}

/// Result byte of a raw syscall: 0 on success, the errno (truncated to u8) on failure.
pub fn res(r: libc::c_long) -> u8 {
    if r < 0 {
        errno() as u8
    } else {
        0
    }
}
