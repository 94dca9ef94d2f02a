//! The new mount API (Linux 5.2+, mount(2)'s successors: fsopen(2),
//! fsconfig(2), fsmount(2), move_mount(2), open_tree(2), mount_setattr(2)
//! 5.12+) and the classic umount2(2). nix has none of the new calls: raw
//! `syscall(2)`s with libc's numbers, flags and structs.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use bitflags::bitflags;

use crate::errno::cvt_long;

bitflags! {
    /// `MOUNT_ATTR_*` (include/uapi/linux/mount.h): attributes of a mount
    /// for fsmount(2) and mount_setattr(2).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct MountAttr: u64 {
        /// Read-only.
        const RDONLY = libc::MOUNT_ATTR_RDONLY;
        /// Ignore set-user/group-id bits and file capabilities.
        const NOSUID = libc::MOUNT_ATTR_NOSUID;
        /// No device nodes.
        const NODEV = libc::MOUNT_ATTR_NODEV;
        /// No execution.
        const NOEXEC = libc::MOUNT_ATTR_NOEXEC;
        /// Do not update access times.
        const NOATIME = libc::MOUNT_ATTR_NOATIME;
        /// Always update access times.
        const STRICTATIME = libc::MOUNT_ATTR_STRICTATIME;
        /// Do not update directory access times.
        const NODIRATIME = libc::MOUNT_ATTR_NODIRATIME;
        /// An idmapped mount (mount_setattr(2) with a user namespace fd, 5.12+).
        const IDMAP = libc::MOUNT_ATTR_IDMAP;
        /// Do not follow symbolic links (5.14+).
        const NOSYMFOLLOW = libc::MOUNT_ATTR_NOSYMFOLLOW;
    }
}

fn owned(r: libc::c_long) -> io::Result<OwnedFd> {
    let fd = cvt_long(r)?;
    // SAFETY: the syscall returned a new file descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `fsopen(fstype, FSOPEN_CLOEXEC)` (fsopen(2), Linux 5.2+): a file
/// system context for `fstype`.
pub fn fsopen(fstype: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: fstype is a valid C string; the flag is valid.
    owned(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), libc::FSOPEN_CLOEXEC) })
}

fn fsconfig(
    fd: BorrowedFd<'_>,
    cmd: libc::c_uint,
    key: Option<&CStr>,
    value: Option<&CStr>,
    aux: libc::c_int,
) -> io::Result<()> {
    let k = key.map_or(std::ptr::null(), CStr::as_ptr);
    let v = value.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: the pointers are NULL or valid C strings that outlive the call,
    // as `cmd` requires (fsconfig(2)).
    cvt_long(unsafe { libc::syscall(libc::SYS_fsconfig, fd.as_raw_fd(), cmd, k, v, aux) }).map(drop)
}

/// `fsconfig(fd, FSCONFIG_SET_FLAG, key, NULL, 0)`: set a flag option.
pub fn fsconfig_flag(fd: BorrowedFd<'_>, key: &CStr) -> io::Result<()> {
    fsconfig(fd, libc::FSCONFIG_SET_FLAG as _, Some(key), None, 0)
}

/// `fsconfig(fd, FSCONFIG_SET_STRING, key, value, 0)`. The kernel caps
/// string values at 256 bytes (`strndup_user(_value, 256)`, fs/fsopen.c).
pub fn fsconfig_string(fd: BorrowedFd<'_>, key: &CStr, value: &CStr) -> io::Result<()> {
    fsconfig(
        fd,
        libc::FSCONFIG_SET_STRING as _,
        Some(key),
        Some(value),
        0,
    )
}

/// `fsconfig(fd, FSCONFIG_SET_FD, key, NULL, value)`: pass a file (a
/// directory) by descriptor. Overlayfs takes `lowerdir+`, `upperdir` and
/// `workdir` so since Linux 6.13 and `O_PATH` descriptors since 6.15; the
/// kernel keeps its own reference, `value` may be closed afterwards.
pub fn fsconfig_fd(fd: BorrowedFd<'_>, key: &CStr, value: BorrowedFd<'_>) -> io::Result<()> {
    fsconfig(
        fd,
        libc::FSCONFIG_SET_FD as _,
        Some(key),
        None,
        value.as_raw_fd(),
    )
}

/// `fsconfig(fd, FSCONFIG_CMD_CREATE, NULL, NULL, 0)`: create the superblock.
pub fn fsconfig_create(fd: BorrowedFd<'_>) -> io::Result<()> {
    fsconfig(fd, libc::FSCONFIG_CMD_CREATE as _, None, None, 0)
}

/// `fsmount(fd, FSMOUNT_CLOEXEC, attr)` (fsmount(2), Linux 5.2+): a
/// detached mount of a created context.
pub fn fsmount(fd: BorrowedFd<'_>, attr: MountAttr) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments only.
    owned(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fd.as_raw_fd(),
            libc::FSMOUNT_CLOEXEC,
            attr.bits() as libc::c_uint,
        )
    })
}

/// `move_mount(fd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH)`
/// (move_mount(2), Linux 5.2+): attach the detached mount `fd` at `target`.
pub fn move_mount_to(fd: BorrowedFd<'_>, target: &CStr) -> io::Result<()> {
    // SAFETY: the empty path and target are valid C strings.
    cvt_long(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH,
        )
    })
    .map(drop)
}

/// `open_tree(AT_FDCWD, path, OPEN_TREE_CLONE|OPEN_TREE_CLOEXEC)`
/// (open_tree(2), Linux 5.2+): a detached copy of the mount at `path`.
pub fn open_tree_clone(path: &CStr) -> io::Result<OwnedFd> {
    open_tree_clone_rec(path, false)
}

/// [`open_tree_clone`]; `recursive`: with `AT_RECURSIVE`, the mounts
/// below `path` are copied too (a recursive bind).
pub fn open_tree_clone_rec(path: &CStr, recursive: bool) -> io::Result<OwnedFd> {
    let rec = if recursive {
        libc::AT_RECURSIVE as libc::c_uint
    } else {
        0
    };
    // SAFETY: path is a valid C string; the flags are integers.
    owned(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | rec,
        )
    })
}

/// The messages the kernel logged on a file system context (read(2) on the
/// fsopen fd, up to 16 of them), joined with "; "; empty when none.
pub fn fs_log(fd: BorrowedFd<'_>) -> String {
    let mut out = String::new();
    let mut buf = [0u8; 512];
    for _ in 0..16 {
        match nix::unistd::read(fd, &mut buf) {
            Ok(n) if n > 0 => {
                if !out.is_empty() {
                    out.push_str("; ");
                }
                out.push_str(String::from_utf8_lossy(&buf[..n]).trim_end());
            }
            _ => break,
        }
    }
    out
}

/// `mount_setattr(dir, path, flags, {set, clr, propagation, userns})`
/// (mount_setattr(2), Linux 5.12+): change the mount at `path` relative to
/// `dir` (`AT_EMPTY_PATH` with `c""`: the mount `dir` is on;
/// `AT_RECURSIVE`: its submounts too). `propagation` is `MS_SHARED`,
/// `MS_SLAVE`, `MS_PRIVATE` or 0; `userns` (with [`MountAttr::IDMAP`]) the
/// user namespace of an idmapped mount.
pub fn mount_setattr(
    dir: BorrowedFd<'_>,
    path: &CStr,
    flags: libc::c_uint,
    set: MountAttr,
    clr: MountAttr,
    propagation: u64,
    userns: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    // SAFETY: mount_attr is plain data; all zeroes is a valid value.
    let mut attr: libc::mount_attr = unsafe { std::mem::zeroed() };
    attr.attr_set = set.bits();
    attr.attr_clr = clr.bits();
    attr.propagation = propagation;
    attr.userns_fd = userns.map_or(0, |u| u.as_raw_fd() as u64);
    // SAFETY: a C string and a mount_attr of the size passed, both alive
    // for the call.
    cvt_long(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dir.as_raw_fd(),
            path.as_ptr(),
            flags,
            &raw const attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    })
    .map(drop)
}

/// `umount2(target, flags)` (umount(2)); `detach`: `MNT_DETACH` (lazy).
pub fn umount(target: &CStr, detach: bool) -> io::Result<()> {
    let flags = if detach {
        nix::mount::MntFlags::MNT_DETACH
    } else {
        nix::mount::MntFlags::empty()
    };
    Ok(nix::mount::umount2(target, flags)?)
}

/// `mount(source, target, fstype, flags, data)` (mount(2)) of a new file
/// system with an option string; `read_only`: `MS_RDONLY`. The option page
/// holds at most one page (4096 bytes) of `data`.
pub fn mount_fs(
    source: &CStr,
    target: &CStr,
    fstype: &CStr,
    read_only: bool,
    data: &CStr,
) -> io::Result<()> {
    let flags = if read_only {
        nix::mount::MsFlags::MS_RDONLY
    } else {
        nix::mount::MsFlags::empty()
    };
    Ok(nix::mount::mount(
        Some(source),
        target,
        Some(fstype),
        flags,
        Some(data),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_setattr_refuses_unknown_flags_and_changes_nothing() {
        use std::os::fd::AsFd;
        let t = tempfile::tempdir().unwrap();
        let d = crate::fs::open_dir(t.path()).unwrap();
        // Unknown AT_* flags: EINVAL before anything is looked at.
        let e = mount_setattr(
            d.as_fd(),
            c"",
            0x8000_0000,
            MountAttr::RDONLY,
            MountAttr::empty(),
            0,
            None,
        )
        .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        std::fs::write(t.path().join("still-writable"), b"").unwrap();
    }

    #[test]
    fn mount_attr_bits_are_the_kernels() {
        assert_eq!(MountAttr::RDONLY.bits(), 0x1);
        assert_eq!(MountAttr::IDMAP.bits(), 0x0010_0000);
        assert_eq!(
            (MountAttr::NOSUID | MountAttr::NODEV | MountAttr::NOEXEC).bits(),
            0x2 | 0x4 | 0x8
        );
    }
}
