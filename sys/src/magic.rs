//! File system magics (`statfs(2)` `f_type`, `<linux/magic.h>`), from libc.

use std::io;
use std::os::fd::BorrowedFd;

/// `CGROUP2_SUPER_MAGIC` (`include/uapi/linux/magic.h`): `f_type` of a
/// cgroup2 file system.
#[allow(clippy::unnecessary_cast)] // libc's type differs between targets
pub const CGROUP2_SUPER_MAGIC: i64 = libc::CGROUP2_SUPER_MAGIC as i64;

/// Whether `fd` is on a cgroup2 file system (`fstatfs(2)` `f_type ==
/// CGROUP2_SUPER_MAGIC`); `Err` when `fstatfs` fails, `Ok(Err(f_type))`
/// when it is another file system (e.g. the tmpfs at `/sys/fs/cgroup` of a
/// hybrid host).
pub fn check_cgroup2(fd: BorrowedFd<'_>) -> io::Result<Result<(), i64>> {
    let t = crate::fs::fs_type(fd)?;
    Ok(if t == CGROUP2_SUPER_MAGIC {
        Ok(())
    } else {
        Err(t)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn magic_is_the_kernels_and_a_tmp_dir_is_not_cgroup2() {
        assert_eq!(CGROUP2_SUPER_MAGIC, 0x6367_7270);
        let d = crate::fs::open_dir(std::path::Path::new("/")).unwrap();
        assert!(check_cgroup2(d.as_fd()).unwrap().is_err());
    }
}
