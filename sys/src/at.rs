//! The `*at(2)` calls on C-string names relative to a directory fd, and the
//! fd-based metadata calls, as a tar unpacker needs them: each exactly the
//! libc call (no flags added), safe, errno as `io::Error`.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use crate::errno::cvt;

/// `mkdirat(dir, name, mode)` (mkdirat(2); the umask applies).
pub fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: a borrowed (so open) fd and a C string.
    cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) }).map(drop)
}

/// `unlinkat(dir, name, 0)` (unlinkat(2)): remove a non-directory.
pub fn unlinkat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: a borrowed (so open) fd and a C string.
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) }).map(drop)
}

/// `mknodat(dir, name, mode, dev)` (mknodat(2)): `mode` carries the type
/// (`S_IFCHR`, `S_IFBLK`, `S_IFIFO`).
pub fn mknodat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    mode: libc::mode_t,
    dev: libc::dev_t,
) -> io::Result<()> {
    // SAFETY: a borrowed (so open) fd and a C string.
    cvt(unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), mode, dev) }).map(drop)
}

/// `symlinkat(target, dir, name)` (symlinkat(2)).
pub fn symlinkat(target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: two C strings and a borrowed (so open) fd.
    cvt(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) }).map(drop)
}

/// `linkat(olddir, oldname, newdir, newname, 0)` (linkat(2)): a hard link;
/// a symbolic link at `oldname` is linked itself, not followed.
pub fn linkat(
    olddir: BorrowedFd<'_>,
    oldname: &CStr,
    newdir: BorrowedFd<'_>,
    newname: &CStr,
) -> io::Result<()> {
    // SAFETY: borrowed (so open) fds and C strings.
    cvt(unsafe {
        libc::linkat(
            olddir.as_raw_fd(),
            oldname.as_ptr(),
            newdir.as_raw_fd(),
            newname.as_ptr(),
            0,
        )
    })
    .map(drop)
}

/// `fchown(fd, uid, gid)` (chown(2)).
pub fn fchown(fd: BorrowedFd<'_>, uid: libc::uid_t, gid: libc::gid_t) -> io::Result<()> {
    // SAFETY: a borrowed (so open) fd.
    cvt(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) }).map(drop)
}

/// `fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW)` (chown(2)): a
/// symbolic link's own owner.
pub fn lchownat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    uid: libc::uid_t,
    gid: libc::gid_t,
) -> io::Result<()> {
    // SAFETY: a borrowed (so open) fd and a C string.
    cvt(unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            name.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

/// `fchmod(fd, mode)` (chmod(2)).
pub fn fchmod(fd: BorrowedFd<'_>, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: a borrowed (so open) fd.
    cvt(unsafe { libc::fchmod(fd.as_raw_fd(), mode) }).map(drop)
}

/// `fchmodat(dir, name, mode, 0)` (chmod(2); follows a final symbolic link).
pub fn fchmodat(dir: BorrowedFd<'_>, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: a borrowed (so open) fd and a C string.
    cvt(unsafe { libc::fchmodat(dir.as_raw_fd(), name.as_ptr(), mode, 0) }).map(drop)
}

/// Access and modification time both `secs` seconds after the epoch.
fn times(secs: i64) -> [libc::timespec; 2] {
    let t = libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: 0,
    };
    [t, t]
}

/// `futimens(fd, {secs, secs})` (utimensat(2)): access and modification
/// time of `fd` both `secs` seconds after the epoch.
pub fn futimens(fd: BorrowedFd<'_>, secs: i64) -> io::Result<()> {
    let ts = times(secs);
    // SAFETY: a borrowed (so open) fd and an array of two timespecs.
    cvt(unsafe { libc::futimens(fd.as_raw_fd(), ts.as_ptr()) }).map(drop)
}

/// `utimensat(dir, name, {secs, secs}, AT_SYMLINK_NOFOLLOW)`
/// (utimensat(2)): a symbolic link's own times.
pub fn lutimensat(dir: BorrowedFd<'_>, name: &CStr, secs: i64) -> io::Result<()> {
    let ts = times(secs);
    // SAFETY: a borrowed (so open) fd, a C string and two timespecs.
    cvt(unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            name.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn make_link_chmod_time_and_remove_relative_to_a_dir() {
        let t = tempfile::tempdir().unwrap();
        let d = crate::fs::open_dir(t.path()).unwrap();
        let d = d.as_fd();
        mkdirat(d, c"sub", 0o700).unwrap();
        mknodat(d, c"fifo", libc::S_IFIFO | 0o600, 0).unwrap();
        symlinkat(c"fifo", d, c"l").unwrap();
        linkat(d, c"fifo", d, c"hard").unwrap();
        fchmodat(d, c"fifo", 0o640).unwrap();
        lutimensat(d, c"l", 1_000_000).unwrap();
        let m = std::fs::symlink_metadata(t.path().join("l")).unwrap();
        assert_eq!(m.mtime(), 1_000_000);
        let f = std::fs::metadata(t.path().join("hard")).unwrap();
        assert_eq!((f.mode() & 0o7777, f.nlink()), (0o640, 2));
        let sub = crate::fs::open_dir(&t.path().join("sub")).unwrap();
        fchmod(sub.as_fd(), 0o750).unwrap();
        futimens(sub.as_fd(), 42).unwrap();
        let s = std::fs::metadata(t.path().join("sub")).unwrap();
        assert_eq!((s.mode() & 0o7777, s.mtime()), (0o750, 42));
        let me = crate::fs::euid();
        fchown(sub.as_fd(), me, u32::MAX).unwrap();
        lchownat(d, c"l", me, u32::MAX).unwrap();
        unlinkat(d, c"hard").unwrap();
        assert_eq!(
            unlinkat(d, c"hard").unwrap_err().raw_os_error(),
            Some(libc::ENOENT)
        );
    }
}
