//! Helpers shared by this crate's privileged tests.
#![allow(dead_code)]

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use berth_testkit::CgroupDir;

/// The cgroup2 mount: `/sys/fs/cgroup/unified` on this hybrid host,
/// `/sys/fs/cgroup` in the VM.
pub fn cgroup2_root() -> PathBuf {
    berth_testkit::cgroup2_mount().expect("no cgroup2 mount found")
}

/// A fresh, uniquely named cgroup (removed on drop), its dir fd, and an
/// open `cgroup.procs` fd for children to move themselves in.
pub struct TestCgroup {
    pub procs: OwnedFd,
    pub fd: OwnedFd,
    pub dir: CgroupDir,
}

pub fn test_cgroup(prefix: &str) -> TestCgroup {
    let path = cgroup2_root().join(berth_testkit::unique_name(prefix));
    std::fs::create_dir(&path).unwrap();
    let dir = CgroupDir::adopt(&path);
    let fd = berth_ebpf_probes::open_cgroup(&path).unwrap();
    let procs = std::fs::OpenOptions::new()
        .write(true)
        .open(path.join("cgroup.procs"))
        .unwrap()
        .into();
    TestCgroup { procs, fd, dir }
}

/// Fork a child that moves itself into the cgroup (writes "0" to
/// `cgroup.procs`), runs `f` (raw syscalls only: the parent may be
/// multi-threaded) and exits with its result. Returns (pid, exit status).
pub fn run_in_cgroup(cg: &TestCgroup, f: impl FnOnce() -> i32) -> (i32, i32) {
    let procs = cg.procs.as_raw_fd();
    // SAFETY: the child only calls async-signal-safe functions before _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: writing a static buffer to an open fd, then _exit.
        unsafe {
            if libc::write(procs, b"0".as_ptr().cast(), 1) != 1 {
                libc::_exit(100);
            }
            libc::_exit(f());
        }
    }
    (pid, wait(pid))
}

/// Wait for `pid`; its exit code (or 128 + signal).
pub fn wait(pid: i32) -> i32 {
    let mut st = 0;
    // SAFETY: waiting for our own child.
    let r = unsafe { libc::waitpid(pid, &mut st, 0) };
    assert_eq!(r, pid, "waitpid: {}", std::io::Error::last_os_error());
    if libc::WIFEXITED(st) {
        libc::WEXITSTATUS(st)
    } else {
        128 + libc::WTERMSIG(st)
    }
}

/// open(2) a path; 0 on success (fd closed), else errno.
pub fn try_open(path: &CString, flags: i32) -> i32 {
    // SAFETY: valid NUL-terminated path.
    let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return std::io::Error::last_os_error().raw_os_error().unwrap_or(-1);
    }
    // SAFETY: fd was just opened.
    unsafe { libc::close(fd) };
    0
}

/// errno after a failed libc call, readable in a forked child.
pub fn errno() -> i32 {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

/// A device filter that allows only `/dev/null` (char 1:3, every access).
pub fn only_null() -> berth_ebpf_probes::DeviceFilter {
    use berth_ebpf_probes::{DeviceAccess, DeviceFilter, DeviceKind, DeviceRule};
    let mut f = DeviceFilter::new();
    f.rule(DeviceRule::allow(
        DeviceKind::Char,
        Some(1),
        Some(3),
        DeviceAccess::all(),
    ));
    f
}
