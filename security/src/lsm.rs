//! Linux security module exec labels: AppArmor profiles and SELinux contexts.
//!
//! Both are written to a `/proc/thread-self/attr/…/exec` file in the child and
//! take effect at the next `execve` (`proc(5)`, "/proc/pid/attr").

use std::ffi::CString;
use std::path::Path;

use crate::error::{Error, Result};

/// `/sys/module/apparmor/parameters/enabled`: `Y` when AppArmor is enabled at boot.
const APPARMOR_ENABLED: &str = "/sys/module/apparmor/parameters/enabled";
/// securityfs directory AppArmor registers when it is active.
const APPARMOR_SECURITYFS: &str = "/sys/kernel/security/apparmor";
/// Per-LSM attr file (Linux 5.1+); older kernels only have the shared `attr/exec`.
const APPARMOR_EXEC_ATTR: &str = "/proc/thread-self/attr/apparmor/exec";
/// Shared attr file, used by SELinux and by AppArmor before Linux 5.1.
const SHARED_EXEC_ATTR: &str = "/proc/thread-self/attr/exec";
/// selinuxfs: present when SELinux is active.
const SELINUX_FS: &str = "/sys/fs/selinux/enforce";

/// An exec label for a Linux security module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LsmLabel {
    /// An AppArmor profile name (must already be loaded, e.g. by `apparmor_parser`).
    AppArmor(String),
    /// An SELinux context such as `system_u:system_r:container_t:s0`.
    SeLinux(String),
}

/// Whether AppArmor is active: enabled at boot and registered in securityfs.
pub fn apparmor_active() -> bool {
    std::fs::read_to_string(APPARMOR_ENABLED).is_ok_and(|s| s.trim_start().starts_with('Y'))
        && Path::new(APPARMOR_SECURITYFS).exists()
}

/// Whether SELinux is active (selinuxfs mounted with an `enforce` file).
pub fn selinux_active() -> bool {
    Path::new(SELINUX_FS).exists()
}

/// A label ready to write in the child: the attr file and the bytes.
#[derive(Debug)]
pub(crate) struct PreparedLsm {
    pub(crate) path: CString,
    pub(crate) data: Vec<u8>,
}

fn check_label(what: &'static str, v: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidLabel {
            what,
            value: v.to_string(),
            reason,
        })
    };
    if v.is_empty() {
        return bad("it is empty");
    }
    if v.bytes().any(|b| b == 0 || b == b'\n') {
        return bad("it contains a NUL byte or a newline");
    }
    if v.len() > 4000 {
        return bad("it is longer than 4000 bytes");
    }
    Ok(())
}

impl LsmLabel {
    pub(crate) fn prepare(&self) -> Result<PreparedLsm> {
        match self {
            LsmLabel::AppArmor(p) => {
                check_label("AppArmor profile", p)?;
                if !apparmor_active() {
                    return Err(Error::LsmInactive {
                        lsm: "AppArmor",
                        detail: format!(
                            "{APPARMOR_ENABLED} is not Y or {APPARMOR_SECURITYFS} is missing"
                        ),
                    });
                }
                let path = if Path::new(APPARMOR_EXEC_ATTR).exists() {
                    APPARMOR_EXEC_ATTR
                } else {
                    SHARED_EXEC_ATTR
                };
                Ok(PreparedLsm {
                    path: cstring(path),
                    data: format!("exec {p}").into_bytes(),
                })
            }
            LsmLabel::SeLinux(l) => {
                check_label("SELinux label", l)?;
                if !selinux_active() {
                    return Err(Error::LsmInactive {
                        lsm: "SELinux",
                        detail: format!("{SELINUX_FS} is missing"),
                    });
                }
                Ok(PreparedLsm {
                    path: cstring(SHARED_EXEC_ATTR),
                    data: l.clone().into_bytes(),
                })
            }
        }
    }
}

/// A CString from a constant path without NUL bytes.
pub(crate) fn cstring(s: &str) -> CString {
    // Callers pass compile-time constants without NUL bytes; fall back to an
    // empty path (open fails with ENOENT, reported in the child) otherwise.
    CString::new(s).unwrap_or_default()
}
