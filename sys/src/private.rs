//! The "private directory" rule for berth's own state (the layer store's
//! root, the container state root): a directory only the caller can enter,
//! as Docker keeps its root.

use std::fs;
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What [`ensure_private_dir`] was doing when a call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivateDirOp {
    /// `lstat(2)`/`stat(2)` of the directory or a parent.
    Inspect,
    /// `mkdir(2)` of the directory or a missing parent.
    Create,
    /// `chmod(2)` taking group and other bits off.
    Tighten,
}

/// Why [`ensure_private_dir`] failed.
#[derive(Debug)]
pub enum PrivateDirError {
    /// A system call failed.
    Io {
        /// What was being done.
        op: PrivateDirOp,
        /// To which directory.
        path: PathBuf,
        /// The errno.
        source: io::Error,
    },
    /// The directory exists but is not private: another user may have
    /// planted anything in it. `reason` names its owner and mode.
    Unsafe {
        /// The directory.
        path: PathBuf,
        /// Its owner and mode, and what is wrong with them.
        reason: String,
    },
}

/// Make `dir` a directory only the caller can enter. With `create`, it (and
/// any missing parent) is made mode 0700; without, a missing `dir` is fine.
/// An existing one must be a directory the caller owns, not writable by
/// group or others ([`PrivateDirError::Unsafe`]); read or search bits for
/// group and others are removed, logged with `what` ("layer store
/// directory", "state root"). A symlink to such a directory is accepted
/// only from the caller or root. A parent made by another process in
/// between must pass the same checks (it is not tightened).
pub fn ensure_private_dir(dir: &Path, what: &str, create: bool) -> Result<(), PrivateDirError> {
    if create {
        let mut missing = Vec::new();
        let mut p = dir;
        while let Err(e) = fs::symlink_metadata(p) {
            if e.kind() != io::ErrorKind::NotFound {
                return Err(io_err(PrivateDirOp::Inspect, p, e));
            }
            missing.push(p);
            match p.parent() {
                Some(q) if !q.as_os_str().is_empty() => p = q,
                _ => break,
            }
        }
        for d in missing.iter().rev() {
            match fs::DirBuilder::new().mode(0o700).create(d) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                    return Err(io_err(PrivateDirOp::Create, d, e))
                }
                // Made by another process in between: it must be private too.
                Err(_) if *d != dir => check_private(d, what, false)?,
                _ => {}
            }
        }
    }
    match fs::symlink_metadata(dir) {
        Err(e) if !create && e.kind() == io::ErrorKind::NotFound => Ok(()),
        _ => check_private(dir, what, true),
    }
}

fn io_err(op: PrivateDirOp, path: &Path, source: io::Error) -> PrivateDirError {
    PrivateDirError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The checks of [`ensure_private_dir`] on the existing `dir`; `tighten`
/// removes read and search bits of group and others.
fn check_private(dir: &Path, what: &str, tighten: bool) -> Result<(), PrivateDirError> {
    let me = crate::fs::euid();
    let refuse = |reason: String| PrivateDirError::Unsafe {
        path: dir.to_path_buf(),
        reason,
    };
    let l = fs::symlink_metadata(dir).map_err(|e| io_err(PrivateDirOp::Inspect, dir, e))?;
    if l.file_type().is_symlink() && l.uid() != me && l.uid() != 0 {
        return Err(refuse(format!(
            "a symlink owned by uid {}, not by the caller (uid {me}) or root",
            l.uid()
        )));
    }
    let m = fs::metadata(dir).map_err(|e| io_err(PrivateDirOp::Inspect, dir, e))?;
    let mode = m.mode() & 0o7777;
    if !m.is_dir() {
        return Err(refuse("not a directory".into()));
    }
    if m.uid() != me {
        return Err(refuse(format!(
            "owned by uid {} (mode {mode:04o}), not by the caller (uid {me})",
            m.uid()
        )));
    }
    if mode & 0o022 != 0 {
        return Err(refuse(format!(
            "owner uid {} but mode {mode:04o} is writable by group or others \
             (anything in it may have been planted)",
            m.uid()
        )));
    }
    if tighten && mode & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode & 0o7700))
            .map_err(|e| io_err(PrivateDirOp::Tighten, dir, e))?;
        tracing::warn!(path = %dir.display(), old_mode = format!("{mode:04o}"), "{what} was open to other users: tightened to 0700");
    }
    Ok(())
}

/// What [`check_fd_owner`] expects the open file to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory (`S_IFDIR`).
    Dir,
    /// A regular file (`S_IFREG`) with a single link.
    File,
}

/// Why [`check_fd_owner`] refused, or that `fstat(2)` failed.
#[derive(Debug)]
pub enum OwnerCheckError {
    /// `fstat(2)` failed.
    Io(io::Error),
    /// The file is not private to the caller; the reason, e.g. `owned by
    /// uid 1000, not by the caller (uid 0)`.
    Unsafe(String),
}

/// The fd-based check of a private state file or directory already opened
/// without following links (see [`crate::fs::open_nofollow`]): it must be
/// of `kind`, owned by the caller, and (a file) have a single link — a
/// second hard link could name a file elsewhere, planted while the
/// directory was open to others. Returns its permission bits (`& 0o7777`),
/// for the caller to tighten (or not) by its own rule.
pub fn check_fd_owner(fd: BorrowedFd<'_>, kind: Kind) -> Result<u32, OwnerCheckError> {
    let st = crate::fs::fstat(fd).map_err(OwnerCheckError::Io)?;
    let (want, what) = match kind {
        Kind::Dir => (libc::S_IFDIR, "not a directory"),
        Kind::File => (libc::S_IFREG, "not a regular file"),
    };
    if st.st_mode & libc::S_IFMT != want {
        return Err(OwnerCheckError::Unsafe(what.into()));
    }
    let euid = crate::fs::euid();
    if st.st_uid != euid {
        return Err(OwnerCheckError::Unsafe(format!(
            "owned by uid {}, not by the caller (uid {euid})",
            st.st_uid
        )));
    }
    if kind == Kind::File && st.st_nlink != 1 {
        return Err(OwnerCheckError::Unsafe(format!(
            "has {} hard links, expected 1",
            st.st_nlink
        )));
    }
    Ok(st.st_mode & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_owner_check_refuses_the_wrong_kind_and_a_second_link() {
        use crate::fs::{open_nofollow, OFlag};
        use std::os::fd::AsFd;
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        fs::write(&f, b"").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
        let fd = open_nofollow(&f, OFlag::O_RDONLY, 0).unwrap();
        assert_eq!(check_fd_owner(fd.as_fd(), Kind::File).unwrap(), 0o640);
        match check_fd_owner(fd.as_fd(), Kind::Dir) {
            Err(OwnerCheckError::Unsafe(r)) => assert_eq!(r, "not a directory"),
            other => panic!("{other:?}"),
        }
        fs::hard_link(&f, t.path().join("g")).unwrap();
        match check_fd_owner(fd.as_fd(), Kind::File) {
            Err(OwnerCheckError::Unsafe(r)) => assert_eq!(r, "has 2 hard links, expected 1"),
            other => panic!("{other:?}"),
        }
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn creates_missing_parents_0700_and_tightens_0755() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("a/b");
        ensure_private_dir(&d, "test dir", true).unwrap();
        assert_eq!(mode(&d), 0o700);
        assert_eq!(mode(&t.path().join("a")), 0o700);
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        ensure_private_dir(&d, "test dir", true).unwrap();
        assert_eq!(mode(&d), 0o700);
    }

    #[test]
    fn missing_without_create_is_fine_and_writable_or_file_is_refused() {
        let t = tempfile::tempdir().unwrap();
        ensure_private_dir(&t.path().join("none"), "test dir", false).unwrap();
        assert!(!t.path().join("none").exists());
        let w = t.path().join("w");
        fs::create_dir(&w).unwrap();
        fs::set_permissions(&w, fs::Permissions::from_mode(0o777)).unwrap();
        match ensure_private_dir(&w, "test dir", true) {
            Err(PrivateDirError::Unsafe { reason, .. }) => {
                assert!(reason.contains("writable by group or others"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(mode(&w), 0o777, "a refused directory is left as it was");
        let f = t.path().join("f");
        fs::write(&f, b"").unwrap();
        match ensure_private_dir(&f, "test dir", true) {
            Err(PrivateDirError::Unsafe { reason, .. }) => assert_eq!(reason, "not a directory"),
            other => panic!("{other:?}"),
        }
    }
}
