//! The network state directory ([`crate::DEFAULT_STATE_DIR`] or the one a
//! network was given: IPAM state, IPAM and nft lock files) is private to its
//! owner, as Docker keeps its own root: the directory 0700, files 0600. A
//! directory that exists with looser bits is tightened (and logged, which
//! happens once: it is 0700 afterwards); one owned by another user, or a
//! symbolic link, is refused. Files are opened with `O_NOFOLLOW`, so a
//! symlink planted at a lock or state file name (when the directory was
//! still open to others) is never followed: the open fails with `ELOOP`
//! (open(2)) and the error names the file.

use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use berth_sys::fs::OFlag;

use crate::error::{Error, Result};

fn unsafe_state(path: &Path, reason: impl Into<String>) -> Error {
    Error::UnsafeState {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// `open(path, flags | O_NOFOLLOW | O_CLOEXEC, 0600)`; a path with a NUL
/// byte is an invalid argument (the outer error).
fn open_nofollow(path: &Path, flags: OFlag) -> Result<io::Result<OwnedFd>> {
    if path.as_os_str().as_bytes().contains(&0) {
        return Err(Error::InvalidArgument {
            what: "state path",
            reason: format!("{} contains NUL", path.display()),
        });
    }
    Ok(berth_sys::fs::open_nofollow(path, flags, 0o600))
}

/// Check the type (`kind`, `S_IFDIR` or `S_IFREG`) and owner of `fd`
/// (`path` for errors), a single link for a file, and take group and other
/// bits off its mode (0700/0600), logging when that changed anything.
fn check_owner_and_tighten(fd: &OwnedFd, path: &Path, kind: libc::mode_t) -> Result<()> {
    use berth_sys::private::{check_fd_owner, Kind, OwnerCheckError};
    let k = if kind == libc::S_IFDIR {
        Kind::Dir
    } else {
        Kind::File
    };
    let mode = check_fd_owner(fd.as_fd(), k).map_err(|e| match e {
        OwnerCheckError::Io(e) => Error::io("fstat", path, e),
        OwnerCheckError::Unsafe(reason) => unsafe_state(path, reason),
    })?;
    if mode & 0o077 != 0 {
        if kind == libc::S_IFDIR {
            dedicated(path, mode)?;
        }
        let private = if kind == libc::S_IFDIR { 0o700 } else { 0o600 };
        berth_sys::fs::fchmod(fd.as_fd(), private).map_err(|e| Error::io("chmod", path, e))?;
        tracing::warn!(
            path = %path.display(),
            was = format!("{mode:o}"),
            now = format!("{private:o}"),
            "network state was open to other users: mode tightened"
        );
    }
    Ok(())
}

/// Names berth's network state uses: `<network>.json` (IPAM),
/// `<network>.network` (a user-defined network's record),
/// `ip_forward.state` (see `forward.rs`), their `.tmp` files,
/// `<network>.<container>.hosts` (see [`crate::Network::hosts_path`]),
/// `<network>.lock`, `nft.lock`, `ip_forward.lock`.
fn is_state_name(name: &std::ffi::OsStr) -> bool {
    let n = name.as_bytes();
    [
        &b".json"[..],
        b".network",
        b".state",
        b".hosts",
        b".tmp",
        b".lock",
    ]
    .iter()
    .any(|ext| n.ends_with(ext))
}

/// Before tightening `dir` (mode `mode`): it must be a directory of network
/// state only, never a shared one handed as state directory by mistake
/// (`/tmp`, `/run`, an application's data directory), whose mode is not
/// berth's to change.
fn dedicated(dir: &Path, mode: u32) -> Result<()> {
    let shared = |what: &str| {
        Err(unsafe_state(
            dir,
            format!(
                "open to other users (mode {mode:o}) and {what}: not tightened; \
                 give networks a state directory of their own (or chmod 700 it)"
            ),
        ))
    };
    if mode & libc::S_ISVTX != 0 {
        return shared("sticky (a shared directory)");
    }
    let entries = fs::read_dir(dir).map_err(|e| Error::io("read dir", dir, e))?;
    for e in entries {
        let e = e.map_err(|e| Error::io("read dir", dir, e))?;
        if !is_state_name(&e.file_name()) {
            return shared(&format!("holds {:?}, not network state", e.file_name()));
        }
    }
    Ok(())
}

/// Make sure `dir` is a private state directory of the caller: created
/// 0700 (with missing parents, also 0700) when missing; refused when it is
/// a symbolic link, not a directory, or owned by another user; group and
/// other bits taken off an existing one that holds network state only
/// (another looser directory, e.g. `/tmp` given by mistake, is refused).
pub(crate) fn private_dir(dir: &Path) -> Result<()> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY;
    let mut res = open_nofollow(dir, flags)?;
    if matches!(&res, Err(e) if e.kind() == io::ErrorKind::NotFound) {
        match fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
        {
            Ok(()) => {}
            Err(e) => return Err(Error::io("create state dir", dir, e)),
        }
        res = open_nofollow(dir, flags)?;
    }
    let fd = match res {
        Ok(fd) => fd,
        // O_DIRECTORY | O_NOFOLLOW on a symlink: ENOTDIR (do_open, fs/namei.c).
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTDIR | libc::ELOOP)) => {
            let link = fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink());
            return Err(unsafe_state(
                dir,
                if link {
                    "the state directory is a symbolic link (not followed)"
                } else {
                    "not a directory"
                },
            ));
        }
        Err(e) => return Err(Error::io("open state dir", dir, e)),
    };
    check_owner_and_tighten(&fd, dir, libc::S_IFDIR)?;
    Ok(())
}

/// Open the state or lock file `path` with `flags` (`O_CREAT` creates it
/// 0600), never through a symbolic link; check it is a regular file of the
/// caller with a single link (a hard link could name another file), and
/// tighten a looser mode to 0600. `Ok(None)`: it does not exist.
pub(crate) fn open_private_file(path: &Path, flags: OFlag) -> Result<Option<fs::File>> {
    let fd = match open_nofollow(path, flags)? {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(unsafe_state(path, "a symbolic link (not followed)"))
        }
        Err(e) => return Err(Error::io("open", path, e)),
    };
    check_owner_and_tighten(&fd, path, libc::S_IFREG)?;
    Ok(Some(fs::File::from(fd)))
}
