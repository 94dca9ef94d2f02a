//! Raw, async-signal-safe syscalls used in the child. No allocation, no
//! locks, no panics: each returns the failing step and errno.

use std::ffi::CStr;

use crate::error::ChildFailure;

/// The calling thread's errno (async-signal-safe).
pub(crate) fn errno() -> i32 {
    // SAFETY: __errno_location always returns a valid thread-local pointer.
    unsafe { *libc::__errno_location() }
}

fn fail(step: &'static str) -> ChildFailure {
    ChildFailure {
        step,
        errno: errno(),
    }
}

/// `struct __user_cap_data_struct` (`<linux/capability.h>`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct CapUserData {
    pub(crate) effective: u32,
    pub(crate) permitted: u32,
    pub(crate) inheritable: u32,
}

#[repr(C)]
struct CapUserHeader {
    version: u32,
    pid: i32,
}

/// `_LINUX_CAPABILITY_VERSION_3` (Linux 2.6.26): two 32-bit data structs.
const CAP_V3: u32 = 0x2008_0522;

pub(crate) unsafe fn prlimit(res: u32, lim: &libc::rlimit64) -> Result<(), ChildFailure> {
    // SAFETY: pid 0 = ourselves, valid pointer, no old-limit output.
    let r = unsafe {
        libc::syscall(
            libc::SYS_prlimit64,
            0,
            res as libc::c_ulong,
            lim as *const libc::rlimit64,
            std::ptr::null_mut::<libc::rlimit64>(),
        )
    };
    if r != 0 {
        return Err(fail("prlimit64"));
    }
    Ok(())
}

pub(crate) unsafe fn write_file(
    step: &'static str,
    path: &CStr,
    data: &[u8],
) -> Result<(), ChildFailure> {
    // SAFETY: valid NUL-terminated path.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(fail(step));
    }
    // SAFETY: valid buffer of data.len() bytes.
    let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    let e = if n < 0 || n as usize != data.len() {
        Some(if n < 0 { errno() } else { libc::EIO })
    } else {
        None
    };
    // SAFETY: closing the fd we opened.
    unsafe { libc::close(fd) };
    match e {
        Some(errno) => Err(ChildFailure { step, errno }),
        None => Ok(()),
    }
}

pub(crate) unsafe fn prctl(
    step: &'static str,
    option: libc::c_int,
    arg: libc::c_ulong,
) -> Result<(), ChildFailure> {
    // SAFETY: a prctl with integer arguments only.
    let r = unsafe {
        libc::prctl(
            option,
            arg,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if r != 0 {
        return Err(fail(step));
    }
    Ok(())
}

pub(crate) unsafe fn drop_bounding(keep: u64, last_cap: u32) -> Result<(), ChildFailure> {
    for cap in 0..=last_cap.min(63) {
        if keep & (1u64 << cap) == 0 {
            // SAFETY: integer prctl.
            unsafe {
                prctl(
                    "prctl(PR_CAPBSET_DROP)",
                    libc::PR_CAPBSET_DROP,
                    cap as libc::c_ulong,
                )?
            };
        }
    }
    Ok(())
}

/// Take `uid`/`gid` and the supplementary `groups`. A parent-death signal
/// set before survives: the kernel clears it on any change of the effective
/// or filesystem uid/gid (prctl(2), `PR_SET_PDEATHSIG`), so it is read
/// first and set again afterwards.
pub(crate) unsafe fn set_identity(uid: u32, gid: u32, groups: &[u32]) -> Result<(), ChildFailure> {
    let mut pdeathsig: libc::c_int = 0;
    // SAFETY: PR_GET_PDEATHSIG stores an int through the valid pointer.
    unsafe {
        libc::prctl(
            libc::PR_GET_PDEATHSIG,
            &mut pdeathsig as *mut libc::c_int as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    // SAFETY: raw syscalls with a valid groups pointer and length.
    unsafe {
        if libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) != 0 {
            // In a user namespace whose /proc/<pid>/setgroups is "deny",
            // clearing the list is impossible and harmless to skip (runc does).
            if !(groups.is_empty() && errno() == libc::EPERM) {
                return Err(fail("setgroups"));
            }
        }
        if libc::syscall(libc::SYS_setresgid, gid, gid, gid) != 0 {
            return Err(fail("setresgid"));
        }
        if libc::syscall(libc::SYS_setresuid, uid, uid, uid) != 0 {
            return Err(fail("setresuid"));
        }
        if pdeathsig != 0
            && libc::prctl(libc::PR_SET_PDEATHSIG, pdeathsig as libc::c_ulong, 0, 0, 0) != 0
        {
            return Err(fail("prctl(PR_SET_PDEATHSIG)"));
        }
    }
    Ok(())
}

pub(crate) unsafe fn capset(data: &[CapUserData; 2]) -> Result<(), ChildFailure> {
    let hdr = CapUserHeader {
        version: CAP_V3,
        pid: 0,
    };
    // SAFETY: valid header and two data structs, as version 3 requires.
    let r = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &hdr as *const CapUserHeader,
            data.as_ptr(),
        )
    };
    if r != 0 {
        return Err(fail("capset"));
    }
    Ok(())
}

pub(crate) unsafe fn set_ambient(ambient: u64, last_cap: u32) -> Result<(), ChildFailure> {
    // SAFETY: integer prctls (PR_CAP_AMBIENT, Linux 4.3).
    unsafe {
        let r = libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        );
        if r != 0 {
            // Kernels before 4.3 have no ambient set: fine unless we need one.
            if ambient == 0 && errno() == libc::EINVAL {
                return Ok(());
            }
            return Err(fail("prctl(PR_CAP_AMBIENT_CLEAR_ALL)"));
        }
        for cap in 0..=last_cap.min(63) {
            if ambient & (1u64 << cap) != 0 {
                let r = libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    cap as libc::c_ulong,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                );
                if r != 0 {
                    return Err(fail("prctl(PR_CAP_AMBIENT_RAISE)"));
                }
            }
        }
    }
    Ok(())
}

pub(crate) unsafe fn landlock_restrict_self(fd: i32) -> Result<(), ChildFailure> {
    // SAFETY: a ruleset fd and no flags (landlock_restrict_self(2), Linux 5.13).
    let r = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32) };
    if r != 0 {
        return Err(fail("landlock_restrict_self"));
    }
    Ok(())
}
