//! The child's steps, on `berth_sys::child`'s raw, async-signal-safe
//! calls. No allocation, no locks, no panics: each returns the failing
//! step and errno.

use std::ffi::CStr;

use berth_sys::child;

use crate::error::ChildFailure;

/// `struct __user_cap_data_struct` (`<linux/capability.h>`).
pub(crate) use berth_sys::child::CapData as CapUserData;

/// The `ChildFailure` of `step` for `errno`.
fn at(step: &'static str) -> impl FnOnce(i32) -> ChildFailure {
    move |errno| ChildFailure { step, errno }
}

/// `prlimit64` on ourselves: resource `res` to `lim`.
pub(crate) fn prlimit(res: u32, lim: &libc::rlimit64) -> Result<(), ChildFailure> {
    child::prlimit64(res as libc::c_int, lim.rlim_cur, lim.rlim_max).map_err(at("prlimit64"))
}

/// Write `data` to the file at `path` in one `write` (a short write is
/// `EIO`); the fd is closed on every path.
pub(crate) fn write_file(step: &'static str, path: &CStr, data: &[u8]) -> Result<(), ChildFailure> {
    let fd = child::open(path, libc::O_WRONLY | libc::O_CLOEXEC, 0).map_err(at(step))?;
    let r = match child::write(fd, data) {
        Ok(n) if n == data.len() => Ok(()),
        Ok(_) => Err(libc::EIO),
        Err(e) => Err(e),
    };
    child::close(fd);
    r.map_err(at(step))
}

/// `prctl(option, arg, 0, 0, 0)`.
pub(crate) fn prctl(
    step: &'static str,
    option: libc::c_int,
    arg: libc::c_ulong,
) -> Result<(), ChildFailure> {
    child::prctl(option, [arg, 0, 0, 0])
        .map(drop)
        .map_err(at(step))
}

/// Drop every capability up to `last_cap` not in `keep` from the bounding set.
pub(crate) fn drop_bounding(keep: u64, last_cap: u32) -> Result<(), ChildFailure> {
    for cap in 0..=last_cap.min(63) {
        if keep & (1u64 << cap) == 0 {
            prctl("prctl(PR_CAPBSET_DROP)", libc::PR_CAPBSET_DROP, cap.into())?;
        }
    }
    Ok(())
}

/// Take `uid`/`gid` and the supplementary `groups`. A parent-death signal
/// set before survives: the kernel clears it on any change of the effective
/// or filesystem uid/gid (prctl(2), `PR_SET_PDEATHSIG`), so it is read
/// first and set again afterwards.
pub(crate) fn set_identity(uid: u32, gid: u32, groups: &[u32]) -> Result<(), ChildFailure> {
    // A failed read leaves nothing to restore.
    let pdeathsig = child::get_pdeathsig().unwrap_or(0);
    if let Err(e) = child::setgroups(groups) {
        // In a user namespace whose /proc/<pid>/setgroups is "deny",
        // clearing the list is impossible and harmless to skip (runc does).
        if !(groups.is_empty() && e == libc::EPERM) {
            return Err(at("setgroups")(e));
        }
    }
    child::setresgid(gid, gid, gid).map_err(at("setresgid"))?;
    child::setresuid(uid, uid, uid).map_err(at("setresuid"))?;
    if pdeathsig != 0 {
        prctl(
            "prctl(PR_SET_PDEATHSIG)",
            libc::PR_SET_PDEATHSIG,
            pdeathsig as libc::c_ulong,
        )?;
    }
    Ok(())
}

/// `capset` (version 3) of the effective, permitted and inheritable sets.
pub(crate) fn capset(data: &[CapUserData; 2]) -> Result<(), ChildFailure> {
    child::capset(data).map_err(at("capset"))
}

/// Clear the ambient set, then raise the capabilities in `ambient`
/// (`PR_CAP_AMBIENT`, Linux 4.3).
pub(crate) fn set_ambient(ambient: u64, last_cap: u32) -> Result<(), ChildFailure> {
    let clear = [libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0, 0, 0];
    if let Err(e) = child::prctl(libc::PR_CAP_AMBIENT, clear) {
        // Kernels before 4.3 have no ambient set: fine unless we need one.
        if ambient == 0 && e == libc::EINVAL {
            return Ok(());
        }
        return Err(at("prctl(PR_CAP_AMBIENT_CLEAR_ALL)")(e));
    }
    for cap in 0..=last_cap.min(63) {
        if ambient & (1u64 << cap) != 0 {
            let raise = [
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                cap.into(),
                0,
                0,
            ];
            child::prctl(libc::PR_CAP_AMBIENT, raise).map_err(at("prctl(PR_CAP_AMBIENT_RAISE)"))?;
        }
    }
    Ok(())
}

/// Enforce the Landlock ruleset `fd` (landlock_restrict_self(2), Linux 5.13).
pub(crate) fn landlock_restrict_self(fd: std::os::fd::BorrowedFd<'_>) -> Result<(), ChildFailure> {
    child::landlock_restrict_self(fd, 0).map_err(at("landlock_restrict_self"))
}
