//! File system calls on directory fds (`*at(2)`), whole-file reads and
//! single-`write(2)` writes for kernfs files (cgroupfs, procfs, sysfs),
//! `stat`/`statfs`, `flock` — on nix, `OwnedFd`-based.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::sys::stat::Mode;

pub use nix::fcntl::OFlag;
pub use nix::sys::stat::FileStat;

/// With the feature `fake`: return what the fake kernel installed on this
/// thread answers for this call, if one is (`crate::fake::parent`).
/// Without it: nothing at all.
#[cfg(feature = "fake")]
macro_rules! fake {
    ($call:ident($($arg:expr),*)) => {
        if let Some(r) = crate::fake::parent::dispatch(|k| k.$call($($arg),*)) {
            return r;
        }
    };
}
#[cfg(not(feature = "fake"))]
macro_rules! fake {
    ($($t:tt)*) => {};
}

/// `open(path, O_DIRECTORY|O_RDONLY|O_CLOEXEC)` (open(2)).
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    fake!(open_dir(path));
    Ok(nix::fcntl::open(
        path,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?)
}

/// `open(path, O_PATH|O_CLOEXEC)` (open(2)): a handle naming the file
/// (following symbolic links), for `*at` calls and Landlock rules.
pub fn open_path(path: &Path) -> io::Result<OwnedFd> {
    Ok(nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?)
}

/// `open(path, flags|O_NOFOLLOW|O_CLOEXEC, mode)` (open(2)): a symbolic
/// link at the last component is never followed (`ELOOP`, or `ENOTDIR`
/// with `O_DIRECTORY`). `mode` matters only with `O_CREAT`.
pub fn open_nofollow(path: &Path, flags: OFlag, mode: u32) -> io::Result<OwnedFd> {
    Ok(nix::fcntl::open(
        path,
        flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(mode as libc::mode_t),
    )?)
}

/// `openat(dir, name, flags|O_CLOEXEC|O_NOFOLLOW)` (openat(2)).
pub fn openat(dir: BorrowedFd<'_>, name: &OsStr, flags: OFlag) -> io::Result<OwnedFd> {
    fake!(openat(dir, name, flags));
    Ok(nix::fcntl::openat(
        dir,
        name,
        flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )?)
}

/// Open the subdirectory `name` of `dir` ([`openat`] with
/// `O_DIRECTORY|O_RDONLY`).
pub fn open_subdir(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    fake!(open_subdir(dir, name));
    openat(dir, name, OFlag::O_DIRECTORY | OFlag::O_RDONLY)
}

/// `mkdirat(dir, name, mode)` (mkdirat(2); the umask applies).
pub fn mkdirat(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()> {
    fake!(mkdirat(dir, name, mode));
    Ok(nix::sys::stat::mkdirat(
        dir,
        name,
        Mode::from_bits_truncate(mode as libc::mode_t),
    )?)
}

/// `unlinkat(dir, name, AT_REMOVEDIR)` (unlinkat(2)).
pub fn rmdirat(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    fake!(rmdirat(dir, name));
    Ok(nix::unistd::unlinkat(
        dir,
        name,
        nix::unistd::UnlinkatFlags::RemoveDir,
    )?)
}

/// Read the whole (small) file `name` relative to `dir` into `buf`
/// (cleared first).
pub fn read_at(dir: BorrowedFd<'_>, name: &OsStr, buf: &mut Vec<u8>) -> io::Result<()> {
    fake!(read_at(dir, name, buf));
    let fd = openat(dir, name, OFlag::O_RDONLY)?;
    read_fd(fd.as_fd(), buf)
}

/// Read the whole (small) file `path` into `buf` (cleared first).
pub fn read_path(path: &Path, buf: &mut Vec<u8>) -> io::Result<()> {
    fake!(read_path(path, buf));
    let fd = nix::fcntl::open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())?;
    read_fd(fd.as_fd(), buf)
}

/// Read from `fd` until EOF into `buf` (cleared first; at least 4 KiB
/// reserved, so a kernfs file — which reports size 0 — is read in one
/// `read(2)`), retrying `EINTR`.
pub fn read_fd(fd: BorrowedFd<'_>, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    if buf.capacity() < 4096 {
        buf.reserve(4096);
    }
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity());
        }
        let len = buf.len();
        buf.resize(buf.capacity(), 0);
        match nix::unistd::read(fd, &mut buf[len..]) {
            Ok(0) => {
                buf.truncate(len);
                return Ok(());
            }
            Ok(n) => buf.truncate(len + n),
            Err(nix::errno::Errno::EINTR) => buf.truncate(len),
            Err(e) => {
                buf.truncate(len);
                return Err(e.into());
            }
        }
    }
}

/// `pread(fd, .., 0)` of a whole small file into `buf` (cleared first): re-reads
/// a kernfs file from offset 0 without seeking (pread(2)).
pub fn pread_all(fd: BorrowedFd<'_>, buf: &mut Vec<u8>) -> io::Result<()> {
    fake!(pread_all(fd, buf));
    buf.clear();
    buf.resize(4096, 0);
    let mut off = 0usize;
    loop {
        if off == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match nix::sys::uio::pread(fd, &mut buf[off..], off as libc::off_t) {
            Ok(0) => {
                buf.truncate(off);
                return Ok(());
            }
            Ok(n) => off += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Write `value` to the file `name` relative to `dir` in one `write(2)`
/// (cgroup interface files take one value per write; a short write is an
/// error), retrying `EINTR`.
pub fn write_at(dir: BorrowedFd<'_>, name: &OsStr, value: &[u8]) -> io::Result<()> {
    fake!(write_at(dir, name, value));
    let fd = openat(dir, name, OFlag::O_WRONLY)?;
    loop {
        match nix::unistd::write(&fd, value) {
            Ok(n) if n == value.len() => return Ok(()),
            Ok(_) => return Err(io::Error::new(io::ErrorKind::WriteZero, "short write")),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// `fstat(2)` of `fd`.
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<FileStat> {
    Ok(nix::sys::stat::fstat(fd)?)
}

/// `stat(2)` of `path` (follows symbolic links).
pub fn stat(path: &Path) -> io::Result<FileStat> {
    Ok(nix::sys::stat::stat(path)?)
}

/// `fstat(fd).st_ino`.
pub fn inode(fd: BorrowedFd<'_>) -> io::Result<u64> {
    fake!(inode(fd));
    Ok(fstat(fd)?.st_ino)
}

/// True when `a` and `b` are the same file (same `st_dev` and `st_ino`,
/// e.g. the same namespace for two nsfs fds); false when either `fstat`
/// fails.
pub fn same_file(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> bool {
    match (fstat(a), fstat(b)) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    }
}

/// `(st_dev, st_ino)` of `path` (stat(2), follows links), `None` when it
/// cannot be stat'ed.
pub fn dev_ino(path: &Path) -> Option<(u64, u64)> {
    stat(path).ok().map(|s| (s.st_dev, s.st_ino))
}

/// `(st_dev, st_ino)` of `fd` (fstat(2)), `None` when it fails.
pub fn fd_dev_ino(fd: BorrowedFd<'_>) -> Option<(u64, u64)> {
    fstat(fd).ok().map(|s| (s.st_dev, s.st_ino))
}

/// `fstatfs(fd).f_type`, the file system's magic (statfs(2),
/// `<linux/magic.h>`).
pub fn fs_type(fd: BorrowedFd<'_>) -> io::Result<i64> {
    fake!(fs_type(fd));
    let st = nix::sys::statfs::fstatfs(fd)?;
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between targets
    Ok(st.filesystem_type().0 as i64)
}

/// `fchmod(fd, mode)` (fchmod(2)).
pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    Ok(nix::sys::stat::fchmod(
        fd,
        Mode::from_bits_truncate(mode as libc::mode_t),
    )?)
}

/// Atomically exchange the files at `a` and `b`
/// (`renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)`, rename(2),
/// Linux 3.15+; both must exist).
pub fn rename_exchange(a: &Path, b: &Path) -> io::Result<()> {
    let cwd = nix::fcntl::AT_FDCWD;
    Ok(nix::fcntl::renameat2(
        cwd,
        a,
        cwd,
        b,
        nix::fcntl::RenameFlags::RENAME_EXCHANGE,
    )?)
}

/// Rename `from` to `to` unless `to` exists
/// (`renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE)`, rename(2),
/// Linux 3.15+: `EEXIST` when it does; `EINVAL` on a file system without
/// the flag).
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let cwd = nix::fcntl::AT_FDCWD;
    Ok(nix::fcntl::renameat2(
        cwd,
        from,
        cwd,
        to,
        nix::fcntl::RenameFlags::RENAME_NOREPLACE,
    )?)
}

/// An operation of [`flock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlockOp {
    /// `LOCK_SH`: shared, waits.
    Shared,
    /// `LOCK_EX`: exclusive, waits.
    Exclusive,
    /// `LOCK_UN`: release.
    Unlock,
}

/// `flock(fd, op)` (flock(2)): an advisory lock on the open file
/// description, released by [`FlockOp::Unlock`] or when its last fd
/// closes. Not retried on `EINTR` (the caller decides).
pub fn flock(fd: BorrowedFd<'_>, op: FlockOp) -> io::Result<()> {
    let op = match op {
        FlockOp::Shared => libc::LOCK_SH,
        FlockOp::Exclusive => libc::LOCK_EX,
        FlockOp::Unlock => libc::LOCK_UN,
    };
    // SAFETY: flock(2) on a borrowed (so open) fd; no memory is passed.
    crate::errno::cvt(unsafe { libc::flock(fd.as_raw_fd(), op) }).map(drop)
}

/// The effective user id of the calling process (geteuid(2), never fails).
pub fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// The effective group id of the calling process (getegid(2), never fails).
pub fn egid() -> u32 {
    nix::unistd::getegid().as_raw()
}

/// The real user id of the calling process (getuid(2), never fails).
pub fn uid() -> u32 {
    nix::unistd::getuid().as_raw()
}

/// The real group id of the calling process (getgid(2), never fails).
pub fn gid() -> u32 {
    nix::unistd::getgid().as_raw()
}

/// Fill `buf` from the kernel's random pool without blocking
/// (`getrandom(buf, GRND_NONBLOCK)`, getrandom(2), Linux 3.17+); the number
/// of bytes written.
pub fn getrandom_nonblock(buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is a valid writable buffer of buf.len() bytes.
    let n = unsafe {
        libc::getrandom(
            buf.as_mut_ptr().cast::<libc::c_void>(),
            buf.len(),
            libc::GRND_NONBLOCK,
        )
    };
    crate::errno::cvt_long(n as libc::c_long).map(|n| n as usize)
}

/// Names of the subdirectories of `dir` (`d_type == DT_DIR`, without `.`
/// and `..`), read through a fresh fd of `dir` so its offset stays intact
/// (getdents64(2)).
pub fn subdirs(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    fake!(subdirs(dir));
    let fd = openat(dir, OsStr::new("."), OFlag::O_DIRECTORY | OFlag::O_RDONLY)?;
    let mut d = nix::dir::Dir::from_fd(fd)?;
    let mut out = Vec::new();
    for ent in d.iter() {
        let ent = ent?;
        let b = ent.file_name().to_bytes();
        if ent.file_type() == Some(nix::dir::Type::Directory) && b != b"." && b != b".." {
            out.push(OsStr::from_bytes(b).to_os_string());
        }
    }
    Ok(out)
}

/// Whether this process may write to `path` (`access(path, W_OK)`,
/// access(2): the real uid's permission, as the kernel checks it).
pub fn access_writable(path: &Path) -> io::Result<()> {
    Ok(nix::unistd::access(path, nix::unistd::AccessFlags::W_OK)?)
}

/// Fill `buf` from the kernel's random pool (`getrandom(buf, 0)`,
/// getrandom(2), Linux 3.17+): blocks only until the pool is first
/// initialised at boot; a short read or `EINTR` is retried.
pub fn getrandom(buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: rest is a valid writable buffer of rest.len() bytes.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        match crate::errno::cvt_long(n as libc::c_long) {
            Ok(n) => done += n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether `fd`'s file is on a read-only mount (`fstatvfs(3)`
/// `ST_RDONLY`); an error is `false`.
pub fn on_readonly_mount(fd: BorrowedFd<'_>) -> bool {
    nix::sys::statvfs::fstatvfs(fd)
        .is_ok_and(|v| v.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

/// A close-on-exec duplicate, numbered 3 or above, of fd number `fd`
/// that this process was given by its parent (`fcntl(fd,
/// F_DUPFD_CLOEXEC, 3)`, fcntl(2)): how a runtime takes over inherited
/// fds it knows only by number (`--preserve-fds`). `EBADF` when `fd` is
/// not open.
pub fn dup_inherited(fd: std::os::fd::RawFd) -> io::Result<OwnedFd> {
    dup_cloexec_above(fd, 3)
}

/// Make fds 0, 1 and 2 copies of `fd` (dup2(2) onto each), e.g. of
/// `/dev/null` for a daemon that must hold no stdio of its caller's. All
/// three are tried; the first error is returned.
pub fn dup_onto_stdio(fd: BorrowedFd<'_>) -> io::Result<()> {
    let r = [
        nix::unistd::dup2_stdin(fd),
        nix::unistd::dup2_stdout(fd),
        nix::unistd::dup2_stderr(fd),
    ];
    Ok(r.into_iter().collect::<Result<Vec<()>, _>>().map(drop)?)
}

/// Close fd number `fd`, one this process was given by its parent and
/// owns through nothing else (an inherited fd passed on to a child that
/// has its own copy now); an error (`EBADF`: not open) is ignored.
pub fn close_inherited(fd: std::os::fd::RawFd) {
    // SAFETY: close(2) on an fd number no OwnedFd/File of this process
    // holds (the caller's contract above); a bad number is EBADF.
    unsafe { libc::close(fd) };
}

/// A close-on-exec duplicate of `fd` numbered `min` or above
/// (`fcntl(fd, F_DUPFD_CLOEXEC, min)`, fcntl(2), Linux 2.6.24+); `EBADF`
/// when `fd` is not open, `EINVAL` when `min` is out of range.
///
/// Takes a `RawFd` on purpose: the fds a spawner keeps for its child are
/// numbers its caller hands over (`Spawner::keep_fd`), which may not be
/// open — the kernel checks them, and a `BorrowedFd` cannot be made from
/// one soundly. So raw `libc` (nix's `fcntl` takes `AsFd`); the call only
/// reads the fd table, whatever the number.
pub fn dup_cloexec_above(fd: std::os::fd::RawFd, min: std::os::fd::RawFd) -> io::Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: fcntl on integers; touches no memory of ours.
    let r = crate::errno::cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) })?;
    // SAFETY: F_DUPFD_CLOEXEC just returned this new fd; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// Set the file status flags of `fd` to `O_NONBLOCK` alone
/// (`fcntl(fd, F_SETFL, O_NONBLOCK)`, fcntl(2); the access mode is not
/// changed by `F_SETFL`): reads then fail with `EAGAIN` instead of
/// waiting.
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    Ok(())
}

/// One `read(2)` from `fd` into `buf`: the number of bytes read, 0 at end
/// of file. `EINTR` is returned as the error (the caller retries).
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    Ok(nix::unistd::read(fd, buf)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_writable_names_a_missing_path() {
        let t = tempfile::tempdir().unwrap();
        access_writable(t.path()).unwrap();
        let e = access_writable(&t.path().join("none")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn getrandom_fills_the_whole_buffer() {
        let mut a = [0u8; 64];
        let mut b = [0u8; 64];
        getrandom(&mut a).unwrap();
        getrandom(&mut b).unwrap();
        assert_ne!(a, b);
        assert!(a.iter().any(|&x| x != 0));
    }

    #[test]
    fn a_temp_file_is_not_on_a_readonly_mount() {
        let f = tempfile::tempfile().unwrap();
        assert!(!on_readonly_mount(f.as_fd()));
    }

    #[test]
    fn inherited_fds_are_duplicated_and_closed_by_number() {
        use std::os::fd::{AsRawFd, IntoRawFd};
        let f = tempfile::tempfile().unwrap();
        let d = dup_inherited(f.as_raw_fd()).unwrap();
        assert!(d.as_raw_fd() >= 3);
        assert!(same_file(f.as_fd(), d.as_fd()));
        let n = d.into_raw_fd();
        // In a child, where no other thread can reuse the number meanwhile.
        // SAFETY: the child makes plain syscalls only, then _exit.
        let pid = unsafe { crate::process::fork() }.unwrap();
        if pid == 0 {
            close_inherited(n);
            // SAFETY: fcntl on a number only reads its flags.
            let r = unsafe { libc::fcntl(n, libc::F_GETFD) };
            let closed = r < 0 && crate::errno::errno() == libc::EBADF;
            crate::process::exit_now(if closed { 0 } else { 1 });
        }
        let st = crate::process::wait_pid(pid).unwrap();
        assert_eq!(
            st,
            nix::sys::wait::WaitStatus::Exited(nix::unistd::Pid::from_raw(pid), 0)
        );
        close_inherited(n);
        let e = dup_inherited(-1).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF));
    }

    #[test]
    fn dup_onto_stdio_makes_0_1_2_the_file() {
        let null = std::fs::File::open("/dev/null").unwrap();
        let want = fd_dev_ino(null.as_fd()).unwrap();
        // SAFETY: the child makes plain syscalls only, then _exit.
        let pid = unsafe { crate::process::fork() }.unwrap();
        if pid == 0 {
            let ok = dup_onto_stdio(null.as_fd()).is_ok()
                && (0..3).all(|fd| {
                    // SAFETY: fds 0-2 are open for the child's lifetime.
                    let b = unsafe { BorrowedFd::borrow_raw(fd) };
                    fd_dev_ino(b) == Some(want)
                });
            crate::process::exit_now(if ok { 0 } else { 1 });
        }
        let st = crate::process::wait_pid(pid).unwrap();
        assert_eq!(
            st,
            nix::sys::wait::WaitStatus::Exited(nix::unistd::Pid::from_raw(pid), 0)
        );
    }

    #[test]
    fn read_write_and_list_relative_to_a_dir_fd() {
        let t = tempfile::tempdir().unwrap();
        let d = open_dir(t.path()).unwrap();
        mkdirat(d.as_fd(), OsStr::new("a"), 0o755).unwrap();
        std::fs::write(t.path().join("f"), b"").unwrap();
        write_at(d.as_fd(), OsStr::new("f"), b"hello").unwrap();
        let mut b = Vec::new();
        read_at(d.as_fd(), OsStr::new("f"), &mut b).unwrap();
        assert_eq!(b, b"hello");
        read_path(&t.path().join("f"), &mut b).unwrap();
        assert_eq!(b, b"hello");
        let f = openat(d.as_fd(), OsStr::new("f"), OFlag::O_RDONLY).unwrap();
        pread_all(f.as_fd(), &mut b).unwrap();
        assert_eq!(b, b"hello");
        assert_eq!(subdirs(d.as_fd()).unwrap(), vec![OsString::from("a")]);
        rmdirat(d.as_fd(), OsStr::new("a")).unwrap();
        assert!(subdirs(d.as_fd()).unwrap().is_empty());
        let e = rmdirat(d.as_fd(), OsStr::new("a")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        assert!(same_file(d.as_fd(), open_dir(t.path()).unwrap().as_fd()));
        assert!(!same_file(d.as_fd(), f.as_fd()));
    }

    #[test]
    fn big_files_are_read_whole() {
        let t = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
        std::fs::write(t.path().join("big"), &data).unwrap();
        let mut b = Vec::new();
        read_path(&t.path().join("big"), &mut b).unwrap();
        assert_eq!(b, data);
        let f = open_nofollow(&t.path().join("big"), OFlag::O_RDONLY, 0).unwrap();
        pread_all(f.as_fd(), &mut b).unwrap();
        assert_eq!(b, data);
    }

    #[test]
    fn symlinks_are_not_followed_and_nul_is_einval() {
        let t = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/passwd", t.path().join("l")).unwrap();
        let d = open_dir(t.path()).unwrap();
        let e = openat(d.as_fd(), OsStr::new("l"), OFlag::O_RDONLY).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
        let e = open_nofollow(&t.path().join("l"), OFlag::O_RDONLY, 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
        let e = openat(d.as_fd(), OsStr::new("a\0b"), OFlag::O_RDONLY).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    }

    #[test]
    fn flock_and_exchange() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        std::fs::write(&a, b"A").unwrap();
        std::fs::write(&b, b"B").unwrap();
        rename_exchange(&a, &b).unwrap();
        let e = rename_noreplace(&a, &b).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
        rename_noreplace(&a, &t.path().join("c")).unwrap();
        rename_noreplace(&t.path().join("c"), &a).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), b"B");
        let f = std::fs::File::open(&a).unwrap();
        flock(f.as_fd(), FlockOp::Exclusive).unwrap();
        flock(f.as_fd(), FlockOp::Unlock).unwrap();
        let mut r = [0u8; 8];
        assert_eq!(getrandom_nonblock(&mut r).unwrap(), 8);
    }

    #[test]
    fn fds_are_duplicated_above_made_nonblocking_and_read() {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let (r, mut w) = std::io::pipe().unwrap();
        let high = dup_cloexec_above(r.as_raw_fd(), 100).unwrap();
        assert!(high.as_raw_fd() >= 100);
        let fdflags = nix::fcntl::fcntl(&high, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_eq!(fdflags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        let e = dup_cloexec_above(-1, 10).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF));

        set_nonblocking(high.as_fd()).unwrap();
        let mut buf = [0u8; 4];
        let e = read(high.as_fd(), &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        w.write_all(b"ab").unwrap();
        assert_eq!(read(high.as_fd(), &mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"ab");
        drop(w);
        assert_eq!(read(high.as_fd(), &mut buf).unwrap(), 0, "EOF");
    }
}
