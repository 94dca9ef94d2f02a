//! Namespaces of the calling thread (setns(2), unshare(2)) and the mounts
//! that pin a network namespace (mount(2), umount(2)), on nix. For a
//! helper thread of the parent; the child after `clone` has its own
//! async-signal-safe calls in berth-namespaces.

use std::io;
use std::os::fd::BorrowedFd;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

/// `setns(fd, CLONE_NEWNET)` (setns(2), Linux 3.0+): move the calling
/// thread into the network namespace of the nsfs fd (or pidfd, 5.8+) `fd`.
pub fn setns_net(fd: BorrowedFd<'_>) -> io::Result<()> {
    Ok(nix::sched::setns(fd, CloneFlags::CLONE_NEWNET)?)
}

/// `unshare(CLONE_FILES)` (unshare(2)): the calling thread gets its own
/// copy of the fd table; what it opens or closes afterwards is not seen by
/// the process's other threads.
pub fn unshare_files() -> io::Result<()> {
    Ok(nix::sched::unshare(CloneFlags::CLONE_FILES)?)
}

/// `unshare(CLONE_NEWNET)` (unshare(2)): the calling thread gets a new
/// network namespace.
pub fn unshare_net() -> io::Result<()> {
    Ok(nix::sched::unshare(CloneFlags::CLONE_NEWNET)?)
}

/// `mount(src, target, NULL, MS_BIND, NULL)` (mount(2)): bind-mount a file
/// or directory (e.g. an nsfs file, to pin a namespace).
pub fn bind_mount(src: &Path, target: &Path) -> io::Result<()> {
    Ok(nix::mount::mount(
        Some(src),
        target,
        None::<&Path>,
        MsFlags::MS_BIND,
        None::<&Path>,
    )?)
}

/// `mount("none", dir, "none", MS_SHARED|MS_REC, NULL)`: make `dir`'s mount
/// (and those below) shared (mount_namespaces(7)); `EINVAL` when `dir` is
/// not a mount point.
pub fn make_shared_rec(dir: &Path) -> io::Result<()> {
    Ok(nix::mount::mount(
        Some("none"),
        dir,
        Some("none"),
        MsFlags::MS_SHARED | MsFlags::MS_REC,
        None::<&Path>,
    )?)
}

/// `mount(dir, dir, "none", MS_BIND|MS_REC, NULL)`: make `dir` a mount
/// point by bind-mounting it onto itself.
pub fn bind_self_rec(dir: &Path) -> io::Result<()> {
    Ok(nix::mount::mount(
        Some(dir),
        dir,
        Some("none"),
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&Path>,
    )?)
}

/// `umount2(target, MNT_DETACH)` (umount(2)): lazy unmount.
pub fn umount_detach(target: &Path) -> io::Result<()> {
    Ok(nix::mount::umount2(target, MntFlags::MNT_DETACH)?)
}

/// The `CLONE_NEW*` type of the namespace fd `fd` (`ioctl(fd,
/// NS_GET_NSTYPE)`, ioctl_ns(2), Linux 4.11+; `ENOTTY`/`EINVAL` on an fd
/// that is no namespace). Raw `libc`: nix has no nsfs ioctls.
pub fn ns_type(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    use std::os::fd::AsRawFd;
    // SAFETY: an ioctl without argument on a borrowed (so open) fd.
    crate::errno::cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::NS_GET_NSTYPE as _) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

    #[test]
    fn a_thread_with_its_own_fd_table_closes_nothing_of_ours() {
        let f = std::fs::File::open("/").unwrap();
        let raw = f.as_raw_fd();
        std::thread::spawn(move || {
            unshare_files().unwrap();
            // SAFETY: after unshare(CLONE_FILES) this thread's table holds
            // its own copy of `raw`: closing it is ours alone.
            drop(unsafe { OwnedFd::from_raw_fd(raw) });
        })
        .join()
        .unwrap();
        assert!(crate::fs::fstat(f.as_fd()).is_ok(), "our fd is still open");
    }

    #[test]
    fn a_namespace_file_has_its_type() {
        let f = std::fs::File::open("/proc/self/ns/net").unwrap();
        assert_eq!(ns_type(f.as_fd()).unwrap(), libc::CLONE_NEWNET);
        let f = std::fs::File::open("/proc/self/ns/uts").unwrap();
        assert_eq!(ns_type(f.as_fd()).unwrap(), libc::CLONE_NEWUTS);
        let f = std::fs::File::open("/").unwrap();
        assert!(ns_type(f.as_fd()).is_err(), "a directory is no namespace");
    }
}
