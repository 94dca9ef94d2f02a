//! CVE-2019-5736: the commands that put a berth-oci process into a
//! container (`create`, `run`, `exec`) re-execute berth-oci from a binary
//! no process can open for writing (a read-only bind mount of it, or a
//! sealed memfd copy), as runc 1.2 does.

use std::os::fd::{AsFd, OwnedFd};

use berth_sys::memfd::{self, ALL_SEALS};

use crate::error::{Error, Result};
use crate::log;

/// Set on the re-exec from the protected copy: if it is somehow not seen
/// as protected, fail instead of re-executing forever.
const SEALED_ENV: &str = "_BERTH_OCI_SEALED";

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
    // A file that is not a memfd has no seals (EINVAL).
    let sealed = memfd::seals(exe.as_fd()).is_ok_and(|s| s.contains(ALL_SEALS));
    if berth_sys::fs::on_readonly_mount(exe.as_fd()) || sealed {
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
    // execveat(2) with AT_EMPTY_PATH runs the file behind `fd` (an O_PATH
    // fd is fine, Linux 3.19); returns only on failure.
    let e = berth_sys::process::execveat_fd(fd.as_fd(), &argv, &envp);
    Err(Error::io("execveat the protected copy of berth-oci")(e))
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
    let mfd = memfd::create_sealable_exec(c"berth-oci")
        .map_err(Error::io("memfd_create for a sealed copy of berth-oci"))?;
    memfd::copy_all(mfd.as_fd(), exe.as_fd())
        .map_err(Error::io("copy /proc/self/exe into the memfd"))?;
    memfd::add_seals(mfd.as_fd(), ALL_SEALS).map_err(Error::io("seal the copy of berth-oci"))?;
    Ok(mfd)
}
