//! CVE-2019-5736: the commands that put a berth-oci process into a
//! container (`create`, `run`, `exec`) re-execute berth-oci from a binary
//! no process can open for writing (a read-only bind mount of it, or a
//! sealed memfd copy), as runc 1.2 does.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use crate::error::{Error, Result};
use crate::log;

/// Set on the re-exec from the protected copy: if it is somehow not seen
/// as protected, fail instead of re-executing forever.
const SEALED_ENV: &str = "_BERTH_OCI_SEALED";

/// Every seal: nothing can ever write, grow, shrink or unseal the copy.
const ALL_SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// CVE-2019-5736: the commands that put a berth-oci process into a
/// container (`create`, `run`, `exec`) run from a binary no process can
/// ever open for writing, so a container process that reaches
/// `/proc/<pid>/exe` of one never finds a writable host file behind it
/// (the exec path is also non-dumpable; this is the second wall). As
/// runc 1.2, first choice is a read-only bind mount of the binary
/// ([`ro_bind_of_self`]: no copy, some µs), and the fallback (not root) a
/// sealed memfd copy ([`sealed_copy_of_self`]: costs a copy of the binary
/// per command). Already running from either (a read-only mount per
/// fstatvfs(3), or every seal per `F_GET_SEALS`): nothing to do.
pub fn run_from_sealed_copy() -> Result<()> {
    let exe = std::fs::File::open("/proc/self/exe").map_err(Error::io("open /proc/self/exe"))?;
    // SAFETY: fcntl on our own fd; EINVAL for a file that is not a memfd.
    let seals = unsafe { libc::fcntl(exe.as_raw_fd(), libc::F_GET_SEALS) };
    // SAFETY: statvfs is plain data; all zeroes is a valid value.
    let mut vfs: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: fstatvfs on our own open fd into a local struct.
    let ro = unsafe { libc::fstatvfs(exe.as_raw_fd(), &mut vfs) } == 0
        && vfs.f_flag & libc::ST_RDONLY != 0;
    if ro || (seals >= 0 && seals & ALL_SEALS == ALL_SEALS) {
        std::env::remove_var(SEALED_ENV);
        return Ok(());
    }
    if std::env::var_os(SEALED_ENV).is_some() {
        return Err(Error::Config(
            "re-executed from a protected copy of berth-oci, yet /proc/self/exe is writable".into(),
        ));
    }
    let fd = match ro_bind_of_self() {
        Ok(fd) => fd,
        Err(e) => {
            log::debug(&format!("{e}; falling back to a sealed memfd copy"));
            sealed_copy_of_self(&exe)?
        }
    };
    let cstr = |s: &std::ffi::OsStr| {
        std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(s))
            .map_err(|_| Error::Usage("NUL in an argument or the environment".to_string()))
    };
    let argv = std::env::args_os()
        .map(|a| cstr(&a))
        .collect::<Result<Vec<_>>>()?;
    let mut envp = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            cstr(&kv)
        })
        .collect::<Result<Vec<_>>>()?;
    envp.push(cstr(std::ffi::OsStr::new(&format!("{SEALED_ENV}=1")))?);
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|c| c.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    // SAFETY: NULL-terminated arrays of C strings that outlive the call;
    // execveat(2) with AT_EMPTY_PATH runs the file behind `fd` (an O_PATH
    // fd is fine, Linux 3.19); returns only on failure.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            argv_p.as_ptr(),
            envp_p.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Err(Error::last_os("execveat the protected copy of berth-oci"))
}

/// A detached, read-only bind mount of our own binary: `open_tree(2)`
/// with `OPEN_TREE_CLONE` on `/proc/self/exe` (Linux 5.2), then
/// `mount_setattr(2)` `MOUNT_ATTR_RDONLY` (5.12). It belongs to no mount
/// namespace and lives as long as a file refers to it; a write open of
/// the binary through it is EROFS, and only CAP_SYS_ADMIN in the host's
/// user namespace could make it writable again. Needs CAP_SYS_ADMIN.
fn ro_bind_of_self() -> Result<OwnedFd> {
    use berth_sys::mount_api::{mount_setattr, open_tree_clone, MountAttr};
    let fd = open_tree_clone(c"/proc/self/exe")
        .map_err(Error::io("open_tree(/proc/self/exe, OPEN_TREE_CLONE)"))?;
    mount_setattr(
        fd.as_fd(),
        c"",
        libc::AT_EMPTY_PATH as libc::c_uint,
        MountAttr::RDONLY | MountAttr::NOSUID | MountAttr::NODEV,
        MountAttr::empty(),
        0,
        None,
    )
    .map_err(Error::io(
        "mount_setattr(MOUNT_ATTR_RDONLY) on a clone of /proc/self/exe",
    ))?;
    Ok(fd)
}

/// A copy of our binary in a memfd with every seal (runc's way before
/// 1.2): memfd_create(2) `MFD_ALLOW_SEALING` (Linux 3.17; `MFD_EXEC`,
/// 6.3, asked for so `vm.memfd_noexec=1` hosts still run it), the copy by
/// sendfile(2), `F_ADD_SEALS` (fcntl(2)).
fn sealed_copy_of_self(exe: &std::fs::File) -> Result<OwnedFd> {
    const MFD_EXEC: libc::c_uint = 0x10;
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: a C string literal; the fd is owned right away.
    let mut fd = unsafe { libc::memfd_create(c"berth-oci".as_ptr(), flags | MFD_EXEC) };
    if fd < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // Before Linux 6.3 MFD_EXEC is unknown (and memfds are executable).
        // SAFETY: as above.
        fd = unsafe { libc::memfd_create(c"berth-oci".as_ptr(), flags) };
    }
    if fd < 0 {
        return Err(Error::last_os(
            "memfd_create for a sealed copy of berth-oci",
        ));
    }
    // SAFETY: a fresh fd.
    let mfd = unsafe { OwnedFd::from_raw_fd(fd) };
    loop {
        // SAFETY: sendfile between two fds we own, from the current offset.
        let n = unsafe {
            libc::sendfile(
                mfd.as_raw_fd(),
                exe.as_raw_fd(),
                std::ptr::null_mut(),
                1 << 30,
            )
        };
        match n {
            0 => break,
            n if n < 0 => return Err(Error::last_os("copy /proc/self/exe into the memfd")),
            _ => {}
        }
    }
    // SAFETY: fcntl on our own fd.
    if unsafe { libc::fcntl(mfd.as_raw_fd(), libc::F_ADD_SEALS, ALL_SEALS) } < 0 {
        return Err(Error::last_os("seal the copy of berth-oci"));
    }
    Ok(mfd)
}
