//! Landlock rulesets, built in the parent (landlock(7), Linux 5.13+):
//! landlock_create_ruleset(2) and landlock_add_rule(2). The child's
//! landlock_restrict_self(2) stays in its async-signal-safe path
//! (berth-security's `apply`). nix has none of these, and libc only their
//! numbers: the two structs are include/uapi/linux/landlock.h's.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::errno::cvt_long;

/// `LANDLOCK_CREATE_RULESET_VERSION`: ask for the ABI version.
const CREATE_RULESET_VERSION: u32 = 1 << 0;
/// `LANDLOCK_RULE_PATH_BENEATH`.
const RULE_PATH_BENEATH: u32 = 1;

/// `struct landlock_ruleset_attr` (its first field, ABI v1+; the size
/// passed tells the kernel which fields follow).
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
}

/// `struct landlock_path_beneath_attr` (packed in the UAPI header).
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The running kernel's Landlock ABI version
/// (`landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)`);
/// `EOPNOTSUPP` when Landlock is built but disabled, `ENOSYS` before 5.13.
pub fn abi_version() -> io::Result<i64> {
    // SAFETY: the version query takes no attr pointer.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    Ok(cvt_long(r)? as i64)
}

/// A new ruleset handling the file system rights `handled_access_fs`
/// (`LANDLOCK_ACCESS_FS_*` bits; anything handled and not allowed by a rule
/// is denied once restricted), close-on-exec.
pub fn create_ruleset(handled_access_fs: u64) -> io::Result<OwnedFd> {
    let attr = RulesetAttr { handled_access_fs };
    // SAFETY: attr is a valid landlock_ruleset_attr of the size passed.
    let fd = cvt_long(unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &raw const attr,
            std::mem::size_of::<RulesetAttr>(),
            0u32,
        )
    })?;
    // SAFETY: the kernel just returned this fd and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Allow `allowed_access` beneath the file or directory `parent` (an
/// `O_PATH` fd is enough) in `ruleset` (`LANDLOCK_RULE_PATH_BENEATH`).
pub fn add_path_beneath(
    ruleset: BorrowedFd<'_>,
    allowed_access: u64,
    parent: BorrowedFd<'_>,
) -> io::Result<()> {
    let attr = PathBeneathAttr {
        allowed_access,
        parent_fd: parent.as_raw_fd(),
    };
    // SAFETY: valid ruleset fd and a valid, packed landlock_path_beneath_attr.
    cvt_long(unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset.as_raw_fd(),
            RULE_PATH_BENEATH,
            &raw const attr,
            0u32,
        )
    })
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_ruleset_takes_a_rule_where_landlock_is_enabled() {
        let Ok(v) = abi_version() else {
            eprintln!("SKIPPED: Landlock not enabled on this kernel");
            return;
        };
        assert!(v >= 1);
        // LANDLOCK_ACCESS_FS_READ_FILE | _READ_DIR.
        let rs = create_ruleset((1 << 2) | (1 << 3)).unwrap();
        let dir = crate::fs::open_path(std::path::Path::new("/usr")).unwrap();
        add_path_beneath(rs.as_fd(), 1 << 2, dir.as_fd()).unwrap();
        let e = add_path_beneath(rs.as_fd(), 1 << 20, dir.as_fd()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "an unhandled right");
    }
}
