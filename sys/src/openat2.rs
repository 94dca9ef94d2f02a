//! openat2(2) (Linux 5.6+) with `RESOLVE_*` restrictions, and the plain
//! `*at` calls on C-string names that go with it. nix has no openat2:
//! a raw `syscall(2)` with libc's `open_how`.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use bitflags::bitflags;

use crate::errno::{cvt, cvt_long};

bitflags! {
    /// `RESOLVE_*` (include/uapi/linux/openat2.h): how openat2(2) may
    /// resolve the path.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct ResolveFlags: u64 {
        /// No crossing of mount points.
        const NO_XDEV = libc::RESOLVE_NO_XDEV;
        /// No `/proc/<pid>/fd`-style magic links.
        const NO_MAGICLINKS = libc::RESOLVE_NO_MAGICLINKS;
        /// No symbolic links at all.
        const NO_SYMLINKS = libc::RESOLVE_NO_SYMLINKS;
        /// Never leave the directory (`..` or an absolute link out: `EXDEV`).
        const BENEATH = libc::RESOLVE_BENEATH;
        /// Treat the directory as the root (`..` and absolute links stay in).
        const IN_ROOT = libc::RESOLVE_IN_ROOT;
    }
}

/// `openat2(dir, path, {flags|O_CLOEXEC, mode, resolve})` (openat2(2),
/// Linux 5.6+), retried on `EAGAIN` (a rename raced the restricted lookup).
pub fn openat2(
    dir: BorrowedFd<'_>,
    path: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
    resolve: ResolveFlags,
) -> io::Result<OwnedFd> {
    // SAFETY: open_how is plain data; all zeroes is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = u64::from(mode);
    how.resolve = resolve.bits();
    loop {
        // SAFETY: how is a valid open_how of the size passed; path is a C string.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &raw const how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        match cvt_long(r) {
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
            // SAFETY: the kernel returned a new fd that nobody else owns.
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
            Err(e) => return Err(e),
        }
    }
}

/// `openat(dir, name, flags|O_CLOEXEC, mode)` (openat(2)); no resolution
/// restrictions: for single components only.
pub fn openat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    Ok(nix::fcntl::openat(
        dir,
        name,
        nix::fcntl::OFlag::from_bits_retain(flags | libc::O_CLOEXEC),
        nix::sys::stat::Mode::from_bits_retain(mode),
    )?)
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)` (stat(2)): a final symbolic
/// link is described, not followed.
pub fn lstatat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<libc::stat> {
    Ok(nix::sys::stat::fstatat(
        dir,
        name,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )?)
}

/// `fsetxattr(fd, name, value, 0)` (setxattr(2)).
pub fn fsetxattr(fd: BorrowedFd<'_>, name: &CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: name is a C string, value is valid for value.len() bytes.
    cvt(unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
    .map(drop)
}

/// All extended attributes of `path` (llistxattr(2), lgetxattr(2): a
/// final symbolic link's own), sorted by name; none where the file system
/// has no xattrs (`ENOTSUP`).
pub fn lxattrs(path: &CStr) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
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
        let cname = crate::cstr::bytes(name)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn beneath_refuses_dotdot_and_symlinks_and_xattrs_round_trip() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("d")).unwrap();
        std::os::unix::fs::symlink("/etc", t.path().join("l")).unwrap();
        let root = crate::fs::open_dir(t.path()).unwrap();
        let r = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        let flags = libc::O_DIRECTORY | libc::O_RDONLY;
        openat2(root.as_fd(), c"d", flags, 0, r).unwrap();
        let e = openat2(root.as_fd(), c"../", flags, 0, r).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EXDEV));
        let e = openat2(root.as_fd(), c"l", flags, 0, r).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
        let st = lstatat(root.as_fd(), c"l").unwrap();
        assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFLNK);
        let f = openat(root.as_fd(), c"f", libc::O_CREAT | libc::O_WRONLY, 0o600).unwrap();
        match fsetxattr(f.as_fd(), c"user.berth", b"v") {
            Ok(()) => {
                let p = crate::cstr::path(&t.path().join("f")).unwrap();
                assert_eq!(
                    lxattrs(&p).unwrap(),
                    vec![(b"user.berth".to_vec(), b"v".to_vec())]
                );
            }
            // tmpfs before 6.6 has no user xattrs.
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EOPNOTSUPP)),
        }
    }
}
