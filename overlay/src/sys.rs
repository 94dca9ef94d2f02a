//! Thin, checked wrappers over the raw syscalls this crate needs and that
//! `std` does not offer: the new mount API and `openat2(2)`.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

// Values from include/uapi/linux/mount.h (stable kernel ABI).
pub(crate) const FSCONFIG_SET_FLAG: libc::c_uint = 0;
pub(crate) const FSCONFIG_SET_STRING: libc::c_uint = 1;
/// `FSCONFIG_SET_FD` (`<linux/mount.h>`): the value is a file descriptor.
const FSCONFIG_SET_FD: libc::c_uint = 5;
pub(crate) const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSOPEN_CLOEXEC: libc::c_uint = 0x1;
const FSMOUNT_CLOEXEC: libc::c_uint = 0x1;
pub(crate) const MOUNT_ATTR_RDONLY: libc::c_uint = 0x1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const OPEN_TREE_CLONE: libc::c_uint = 0x1;
const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;

// include/uapi/linux/openat2.h
pub(crate) const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub(crate) const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub(crate) const RESOLVE_BENEATH: u64 = 0x08;

/// A path as a C string (a NUL inside is an `InvalidInput` error).
pub(crate) fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

pub(crate) fn cbytes(b: &[u8]) -> io::Result<CString> {
    CString::new(b)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))
}

fn check(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn check_fd(r: libc::c_long) -> io::Result<OwnedFd> {
    let fd = check(r)?;
    // SAFETY: the syscall returned a new file descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `fsopen(2)` (Linux ≥ 5.2): a filesystem context for `fstype`.
pub(crate) fn fsopen(fstype: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: fstype is a valid C string; flags are valid.
    check_fd(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) })
}

/// `fsconfig(2)` (Linux ≥ 5.2). `value` may be NULL for flags and commands.
/// Note: the kernel caps string values at 256 bytes (`strndup_user(_value, 256)` in fs/fsopen.c).
pub(crate) fn fsconfig(
    fd: BorrowedFd<'_>,
    cmd: libc::c_uint,
    key: Option<&CStr>,
    value: Option<&CStr>,
) -> io::Result<()> {
    let k = key.map_or(std::ptr::null(), |k| k.as_ptr());
    let v = value.map_or(std::ptr::null(), |v| v.as_ptr());
    // SAFETY: pointers are NULL or valid C strings that outlive the call.
    check(unsafe { libc::syscall(libc::SYS_fsconfig, fd.as_raw_fd(), cmd, k, v, 0) })?;
    Ok(())
}

/// `fsconfig(fd, FSCONFIG_SET_FD, key, NULL, value)`: pass a directory by
/// file descriptor. Overlayfs takes `lowerdir+`, `upperdir` and `workdir`
/// this way since Linux 6.13 and `O_PATH` descriptors since 6.15; the kernel
/// keeps its own reference, the caller may close `value` afterwards.
pub(crate) fn fsconfig_fd(fd: BorrowedFd<'_>, key: &CStr, value: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: key is a valid C string; the value pointer is NULL as the command requires.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fd.as_raw_fd(),
            FSCONFIG_SET_FD,
            key.as_ptr(),
            std::ptr::null::<libc::c_char>(),
            value.as_raw_fd(),
        )
    })?;
    Ok(())
}

/// `fsmount(2)` (Linux ≥ 5.2): a detached mount from a created context.
pub(crate) fn fsmount(fd: BorrowedFd<'_>, attr: libc::c_uint) -> io::Result<OwnedFd> {
    // SAFETY: plain integer arguments.
    check_fd(unsafe { libc::syscall(libc::SYS_fsmount, fd.as_raw_fd(), FSMOUNT_CLOEXEC, attr) })
}

/// `move_mount(2)` (Linux ≥ 5.2) of the detached mount `fd` onto `target`.
pub(crate) fn move_mount_to(fd: BorrowedFd<'_>, target: &CStr) -> io::Result<()> {
    // SAFETY: the empty path and target are valid C strings.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    })?;
    Ok(())
}

/// `open_tree(2)` with `OPEN_TREE_CLONE` (Linux ≥ 5.2): a detached copy of the mount at `path`.
pub(crate) fn open_tree_clone(path: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: path is a valid C string.
    check_fd(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC,
        )
    })
}

/// Drain the messages the kernel logged on an fs context (read(2) on the fsopen fd).
pub(crate) fn fs_log(fd: BorrowedFd<'_>) -> String {
    let mut out = String::new();
    let mut buf = [0u8; 512];
    for _ in 0..16 {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(String::from_utf8_lossy(&buf[..n as usize]).trim_end());
    }
    out
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2(2)` (Linux ≥ 5.6) with the given `RESOLVE_*` flags.
pub(crate) fn openat2(
    dir: BorrowedFd<'_>,
    path: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: mode as u64,
        resolve,
    };
    loop {
        // SAFETY: how is a valid open_how of the size passed; path is a C string.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        match check_fd(r) {
            // openat2 may return EAGAIN under RESOLVE_* when a rename raced the lookup.
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
            other => return other,
        }
    }
}

/// `openat(2)` relative to `dir` (no resolution restrictions: use for single components only).
pub(crate) fn openat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    // SAFETY: name is a valid C string.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    };
    check_fd(fd as libc::c_long)
}

/// `fstatat(2)` without following a final symlink.
pub(crate) fn lstatat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<libc::stat> {
    // SAFETY: zeroed stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: name is a valid C string, st is writable.
    let r = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    check(r as libc::c_long)?;
    Ok(st)
}

pub(crate) fn ret(r: libc::c_int) -> io::Result<()> {
    check(r as libc::c_long).map(|_| ())
}

/// `fsetxattr(2)`.
pub(crate) fn fsetxattr(fd: BorrowedFd<'_>, name: &CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: name is a C string, value is valid for value.len() bytes.
    ret(unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
}

/// All extended attributes of `path` (not following symlinks), sorted by name.
pub(crate) fn lxattrs(path: &CStr) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut names = vec![0u8; 1024];
    let n = loop {
        // SAFETY: buffer valid for its length.
        let n = unsafe { libc::llistxattr(path.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ERANGE) => names.resize(names.len() * 4, 0),
            Some(libc::ENOTSUP) => return Ok(Vec::new()),
            _ => return Err(e),
        }
    };
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let cname = cbytes(name)?;
        let mut val = vec![0u8; 256];
        let m = loop {
            // SAFETY: buffer valid for its length; names are C strings.
            let m = unsafe {
                libc::lgetxattr(
                    path.as_ptr(),
                    cname.as_ptr(),
                    val.as_mut_ptr().cast(),
                    val.len(),
                )
            };
            if m >= 0 {
                break m as usize;
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ERANGE) => val.resize(val.len() * 4, 0),
                _ => return Err(e),
            }
        };
        val.truncate(m);
        out.push((name.to_vec(), val));
    }
    out.sort();
    Ok(out)
}

/// `flock(2)` on an open lock file.
pub(crate) fn flock(fd: BorrowedFd<'_>, op: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: plain syscall on a valid fd.
        let r = unsafe { libc::flock(fd.as_raw_fd(), op) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}
