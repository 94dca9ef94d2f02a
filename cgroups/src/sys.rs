//! Thin, checked wrappers over the `*at` system calls this crate uses.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `CGROUP2_SUPER_MAGIC` from `<linux/magic.h>` (`statfs(2)` `f_type` of cgroup2).
pub(crate) const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

pub(crate) fn cstr(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// `open(path, O_DIRECTORY|O_RDONLY|O_CLOEXEC)`.
pub(crate) fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let c = cstr(path.as_os_str())?;
    // SAFETY: c is a valid NUL-terminated string.
    let fd = cvt(unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_DIRECTORY | libc::O_RDONLY | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: fd was just returned by open and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat(dir, name, flags|O_CLOEXEC|O_NOFOLLOW)`.
pub(crate) fn openat(dir: BorrowedFd<'_>, name: &OsStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    let c = cstr(name)?;
    // SAFETY: valid dirfd and NUL-terminated name.
    let fd = cvt(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            flags | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        )
    })?;
    // SAFETY: fd was just returned by openat and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Open a subdirectory of `dir`.
pub(crate) fn open_subdir(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    openat(dir, name, libc::O_DIRECTORY | libc::O_RDONLY)
}

/// `mkdirat(dir, name, 0755)`.
pub(crate) fn mkdirat(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: valid dirfd and NUL-terminated name.
    cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), 0o755) }).map(drop)
}

/// `unlinkat(dir, name, AT_REMOVEDIR)`.
pub(crate) fn rmdirat(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: valid dirfd and NUL-terminated name.
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), libc::AT_REMOVEDIR) }).map(drop)
}

/// Read a whole (small) file relative to `dir` into `buf` (cleared first).
pub(crate) fn read_at(dir: BorrowedFd<'_>, name: &OsStr, buf: &mut Vec<u8>) -> io::Result<()> {
    let fd = openat(dir, name, libc::O_RDONLY)?;
    read_fd(fd.as_raw_fd(), buf)
}

/// Read a whole (small) file by path into `buf` (cleared first).
pub(crate) fn read_path(path: &Path, buf: &mut Vec<u8>) -> io::Result<()> {
    let c = cstr(path.as_os_str())?;
    // SAFETY: c is a valid NUL-terminated string.
    let fd = cvt(unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) })?;
    // SAFETY: fd was just returned by open and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    read_fd(fd.as_raw_fd(), buf)
}

/// Read from `fd` until EOF into `buf` (cleared first).
pub(crate) fn read_fd(fd: RawFd, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    if buf.capacity() < 4096 {
        buf.reserve(4096);
    }
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity());
        }
        let spare = buf.capacity() - buf.len();
        // SAFETY: writing at most `spare` bytes into the vector's spare capacity.
        let n = unsafe {
            libc::read(
                fd,
                buf.as_mut_ptr().add(buf.len()).cast::<libc::c_void>(),
                spare,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Ok(());
        }
        // SAFETY: the kernel initialised n bytes past len.
        unsafe { buf.set_len(buf.len() + n as usize) };
    }
}

/// `pread(fd, 0)` of a whole small file (re-reads a kernfs file from offset 0).
pub(crate) fn pread_all(fd: RawFd, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    buf.resize(4096, 0);
    let mut off = 0usize;
    loop {
        if off == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        // SAFETY: reading into buf[off..], which is within the vector's length.
        let n = unsafe {
            libc::pread(
                fd,
                buf.as_mut_ptr().add(off).cast::<libc::c_void>(),
                buf.len() - off,
                off as libc::off_t,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            buf.truncate(off);
            return Ok(());
        }
        off += n as usize;
    }
}

/// Write `value` to the file `name` relative to `dir` in one `write(2)`
/// (cgroup interface files take one value per write).
pub(crate) fn write_at(dir: BorrowedFd<'_>, name: &OsStr, value: &[u8]) -> io::Result<()> {
    let fd = openat(dir, name, libc::O_WRONLY)?;
    loop {
        // SAFETY: value is a valid slice for the duration of the call.
        let n = unsafe {
            libc::write(
                fd.as_raw_fd(),
                value.as_ptr().cast::<libc::c_void>(),
                value.len(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if (n as usize) != value.len() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "short write"));
        }
        return Ok(());
    }
}

/// `fstat(fd).st_ino`.
pub(crate) fn inode(fd: BorrowedFd<'_>) -> io::Result<u64> {
    // SAFETY: zeroed stat is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and out pointer.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st.st_ino)
}

/// `fstatfs(fd).f_type`.
pub(crate) fn fs_type(fd: BorrowedFd<'_>) -> io::Result<i64> {
    // SAFETY: zeroed statfs is a valid out-parameter.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and out pointer.
    cvt(unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) })?;
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between targets
    Ok(st.f_type as i64)
}

/// Names of the subdirectories of `dir` (via a dup of the fd, so `dir` stays intact).
pub(crate) fn subdirs(dir: BorrowedFd<'_>) -> io::Result<Vec<std::ffi::OsString>> {
    let fd = openat(dir, OsStr::new("."), libc::O_DIRECTORY | libc::O_RDONLY)?;
    let raw = fd.as_raw_fd();
    // SAFETY: raw is a valid directory fd; fdopendir takes ownership of it.
    let dp = unsafe { libc::fdopendir(raw) };
    if dp.is_null() {
        return Err(io::Error::last_os_error());
    }
    std::mem::forget(fd); // owned by the DIR stream now, closed by closedir
    let mut out = Vec::new();
    loop {
        // SAFETY: dp is a valid DIR stream.
        let ent = unsafe { libc::readdir64(dp) };
        if ent.is_null() {
            break;
        }
        // SAFETY: ent points to a valid dirent64 until the next readdir.
        let (ty, name) = unsafe {
            (
                (*ent).d_type,
                std::ffi::CStr::from_ptr((*ent).d_name.as_ptr()),
            )
        };
        let b = name.to_bytes();
        if ty == libc::DT_DIR && b != b"." && b != b".." {
            out.push(OsStr::from_bytes(b).to_os_string());
        }
    }
    // SAFETY: dp is valid and closed exactly once.
    unsafe { libc::closedir(dp) };
    Ok(out)
}
