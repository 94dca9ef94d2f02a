//! The policy builder and its prepared, child-side form.

use std::os::fd::{AsFd, OwnedFd};

use crate::apply;
use crate::capabilities::{CapSet, Capabilities};
use crate::error::{ChildFailure, Error, Result};
use crate::landlock::Landlock;
use crate::lsm::{cstring, LsmLabel, PreparedLsm};
use crate::rlimit::{Resource, Rlimit};
use crate::seccomp::{CompileContext, SeccompProfile, SeccompProgram};

/// `/proc/sys/kernel/cap_last_cap`: the highest capability number of the running kernel (3.2+).
const CAP_LAST_CAP: &str = "/proc/sys/kernel/cap_last_cap";

/// uid, gid and supplementary groups the workload runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Real, effective and saved uid.
    pub uid: u32,
    /// Real, effective and saved gid.
    pub gid: u32,
    /// Supplementary groups (replaces the inherited list; empty clears it).
    pub groups: Vec<u32>,
}

/// Everything that hardens a workload: capabilities, seccomp, `no_new_privs`,
/// uid/gid/groups, rlimits, `oom_score_adj`, an LSM label and a Landlock ruleset.
///
/// Configure it, [`prepare`](SecurityPolicy::prepare) it in the parent (all
/// allocation, parsing, BPF compilation and validation happen there), then
/// call [`PreparedSecurity::apply_in_child`] in the child right before `execve`.
///
/// ```no_run
/// use berth_security::SecurityPolicy;
/// let prepared = SecurityPolicy::docker_default().user(1000, 1000).prepare()?;
/// // in a forked child: unsafe { prepared.apply_in_child() } then execve
/// # Ok::<(), berth_security::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct SecurityPolicy {
    capabilities: Option<Capabilities>,
    seccomp: Option<SeccompProfile>,
    seccomp_program: Option<SeccompProgram>,
    no_new_privs: bool,
    identity: Option<Identity>,
    rlimits: Vec<Rlimit>,
    oom_score_adj: Option<i32>,
    lsm: Option<LsmLabel>,
    landlock: Option<Landlock>,
}

impl SecurityPolicy {
    /// A policy that changes nothing (add what you need).
    ///
    /// ```
    /// let p = berth_security::SecurityPolicy::new();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Docker's defaults: the 14 default capabilities (uniform), the default
    /// seccomp profile and `no_new_privs`.
    ///
    /// ```
    /// let p = berth_security::SecurityPolicy::docker_default();
    /// ```
    pub fn docker_default() -> Self {
        SecurityPolicy::new()
            .capabilities(Capabilities::docker_default())
            .seccomp(SeccompProfile::docker_default())
            .no_new_privs(true)
    }

    #[cfg(feature = "oci")]
    /// Build a policy from the OCI runtime spec: `process.capabilities`,
    /// `rlimits`, `noNewPrivileges`, `user` (uid, gid, additionalGids),
    /// `apparmorProfile`, `selinuxLabel`, `oomScoreAdj`, and `linux.seccomp`.
    ///
    /// Absent capabilities leave the process' sets untouched (as runc does).
    ///
    /// ```
    /// let spec: oci_spec::runtime::Spec = serde_json::from_str(r#"{
    ///   "ociVersion": "1.0.2",
    ///   "process": {"cwd": "/", "user": {"uid": 1000, "gid": 1000},
    ///               "noNewPrivileges": true,
    ///               "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]}
    /// }"#).unwrap();
    /// let p = berth_security::SecurityPolicy::from_oci(&spec)?;
    /// # Ok::<(), berth_security::Error>(())
    /// ```
    pub fn from_oci(spec: &oci_spec::runtime::Spec) -> Result<Self> {
        let mut p = SecurityPolicy::new();
        if let Some(proc_) = spec.process() {
            if let Some(c) = proc_.capabilities() {
                p = p.capabilities(Capabilities::from_oci(c));
            }
            for r in proc_.rlimits().iter().flatten() {
                let r = Rlimit::from_oci(r)?;
                p = p.rlimit(r.resource, r.soft, r.hard);
            }
            p = p.no_new_privs(proc_.no_new_privileges().unwrap_or(false));
            let u = proc_.user();
            p = p
                .user(u.uid(), u.gid())
                .groups(u.additional_gids().clone().unwrap_or_default());
            if let Some(a) = proc_.apparmor_profile() {
                p = p.apparmor_profile(a.clone());
            }
            if let Some(l) = proc_.selinux_label() {
                p = p.selinux_label(l.clone());
            }
            if let Some(o) = proc_.oom_score_adj() {
                p = p.oom_score_adj(o);
            }
        }
        if let Some(s) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
            p = p.seccomp(SeccompProfile::from_oci(s)?);
        }
        Ok(p)
    }

    /// Set all five capability sets.
    ///
    /// ```
    /// use berth_security::{CapSet, Capabilities, SecurityPolicy};
    /// let caps = CapSet::docker_with(["NET_ADMIN"], ["MKNOD"])?;
    /// let p = SecurityPolicy::new().capabilities(Capabilities::uniform(caps));
    /// # Ok::<(), berth_security::Error>(())
    /// ```
    #[doc(alias("capset"))]
    pub fn capabilities(mut self, caps: Capabilities) -> Self {
        self.capabilities = Some(caps);
        self
    }

    /// The capability sets [`capabilities`](Self::capabilities) set, if any
    /// (`None`: the process' sets are left as they are). A runtime that
    /// derives a process from a container's policy (an exec adding or
    /// dropping capabilities) starts from these.
    ///
    /// ```
    /// use berth_security::{Capabilities, SecurityPolicy};
    /// let p = SecurityPolicy::new().capabilities(Capabilities::docker_default());
    /// assert_eq!(p.capability_sets(), Some(Capabilities::docker_default()));
    /// ```
    pub fn capability_sets(&self) -> Option<Capabilities> {
        self.capabilities
    }

    /// Install this seccomp profile (compiled against the bounding set at prepare).
    ///
    /// ```
    /// use berth_security::{SeccompProfile, SecurityPolicy};
    /// let p = SecurityPolicy::new().seccomp(SeccompProfile::docker_default());
    /// ```
    #[doc(alias("SECCOMP_SET_MODE_FILTER"))]
    pub fn seccomp(mut self, profile: SeccompProfile) -> Self {
        self.seccomp = Some(profile);
        self.seccomp_program = None;
        self
    }

    /// Install an already compiled program (compile once, reuse for many
    /// children; or compile against other capabilities than the bounding set).
    ///
    /// ```
    /// use berth_security::{CapSet, CompileContext, SeccompProfile, SecurityPolicy};
    /// let prog = SeccompProfile::docker_default()
    ///     .compile(&CompileContext::new(CapSet::docker_default()))?;
    /// let p = SecurityPolicy::new().no_new_privs(true).seccomp_program(prog);
    /// # Ok::<(), berth_security::Error>(())
    /// ```
    #[doc(alias("SECCOMP_SET_MODE_FILTER"))]
    pub fn seccomp_program(mut self, program: SeccompProgram) -> Self {
        self.seccomp_program = Some(program);
        self.seccomp = None;
        self
    }

    /// Do not install any seccomp filter (Docker's `seccomp=unconfined`).
    ///
    /// ```
    /// let p = berth_security::SecurityPolicy::docker_default().no_seccomp();
    /// ```
    pub fn no_seccomp(mut self) -> Self {
        self.seccomp = None;
        self.seccomp_program = None;
        self
    }

    /// Set `PR_SET_NO_NEW_PRIVS` (Linux 3.5): execve never grants privileges
    /// (setuid bits and file capabilities are ignored).
    ///
    /// ```
    /// let p = berth_security::SecurityPolicy::new().no_new_privs(true);
    /// ```
    #[doc(alias("PR_SET_NO_NEW_PRIVS"))]
    pub fn no_new_privs(mut self, on: bool) -> Self {
        self.no_new_privs = on;
        self
    }

    /// Run as this uid and gid (real, effective and saved).
    ///
    /// ```
    /// let p = berth_security::SecurityPolicy::new().user(1000, 1000);
    /// ```
    #[doc(alias("setresuid", "setresgid"))]
    pub fn user(mut self, uid: u32, gid: u32) -> Self {
        let groups = self.identity.take().map(|i| i.groups).unwrap_or_default();
        self.identity = Some(Identity { uid, gid, groups });
        self
    }

    /// Supplementary groups (needs [`user`](SecurityPolicy::user) too).
    ///
    /// ```
    /// let p = berth_security::SecurityPolicy::new().user(1000, 1000).groups([10, 20]);
    /// ```
    #[doc(alias("setgroups"))]
    pub fn groups(mut self, groups: impl IntoIterator<Item = u32>) -> Self {
        let groups: Vec<u32> = groups.into_iter().collect();
        match &mut self.identity {
            Some(i) => i.groups = groups,
            None => {
                self.identity = Some(Identity {
                    uid: u32::MAX,
                    gid: u32::MAX,
                    groups,
                })
            }
        }
        self
    }

    /// Add a resource limit (validated at prepare: soft ≤ hard).
    ///
    /// ```
    /// use berth_security::{Resource, SecurityPolicy};
    /// let p = SecurityPolicy::new().rlimit(Resource::Nofile, 1024, 4096);
    /// ```
    #[doc(alias("setrlimit", "prlimit"))]
    pub fn rlimit(mut self, resource: Resource, soft: u64, hard: u64) -> Self {
        self.rlimits.push(Rlimit {
            resource,
            soft,
            hard,
        });
        self
    }

    /// Set `/proc/self/oom_score_adj` (-1000..=1000).
    ///
    /// ```
    /// let p = berth_security::SecurityPolicy::new().oom_score_adj(500);
    /// ```
    pub fn oom_score_adj(mut self, value: i32) -> Self {
        self.oom_score_adj = Some(value);
        self
    }

    /// Confine the workload with this loaded AppArmor profile (error at
    /// prepare when AppArmor is not active).
    ///
    /// ```no_run
    /// let p = berth_security::SecurityPolicy::new().apparmor_profile("docker-default").prepare()?;
    /// # Ok::<(), berth_security::Error>(())
    /// ```
    pub fn apparmor_profile(mut self, profile: impl Into<String>) -> Self {
        self.lsm = Some(LsmLabel::AppArmor(profile.into()));
        self
    }

    /// Run the workload with this SELinux label (error at prepare when SELinux is not active).
    ///
    /// ```no_run
    /// let p = berth_security::SecurityPolicy::new()
    ///     .selinux_label("system_u:system_r:container_t:s0")
    ///     .prepare()?;
    /// # Ok::<(), berth_security::Error>(())
    /// ```
    pub fn selinux_label(mut self, label: impl Into<String>) -> Self {
        self.lsm = Some(LsmLabel::SeLinux(label.into()));
        self
    }

    /// Add a Landlock ruleset as an extra layer (Linux 5.13+).
    ///
    /// ```
    /// use berth_security::{FsAccess, Landlock, SecurityPolicy};
    /// let p = SecurityPolicy::new().no_new_privs(true)
    ///     .landlock(Landlock::new().allow("/", FsAccess::READ).allow("/tmp", FsAccess::ALL));
    /// ```
    #[doc(alias("landlock_restrict_self"))]
    pub fn landlock(mut self, ruleset: Landlock) -> Self {
        self.landlock = Some(ruleset);
        self
    }

    /// Validate everything and turn it into plain data for the child.
    ///
    /// Compiles the seccomp profile (against the bounding set, or the full
    /// set when capabilities are left alone), resolves capability sets to
    /// kernel masks, checks the LSM is active, creates the Landlock ruleset fd.
    /// Nothing is left behind on error (the Landlock fd is closed).
    ///
    /// ```
    /// use berth_security::{Resource, SecurityPolicy};
    /// assert!(SecurityPolicy::new().rlimit(Resource::Nofile, 10, 5).prepare().is_err());
    /// ```
    pub fn prepare(&self) -> Result<PreparedSecurity> {
        for r in &self.rlimits {
            Rlimit::new(r.resource, r.soft, r.hard)?;
        }
        if let Some(v) = self.oom_score_adj {
            if !(-1000..=1000).contains(&v) {
                return Err(Error::InvalidOomScoreAdj { value: v });
            }
        }
        if let Some(id) = &self.identity {
            if id.uid == u32::MAX || id.gid == u32::MAX {
                return Err(Error::InvalidIdentity {
                    reason: "supplementary groups need a uid and gid (call user())".into(),
                });
            }
            // NGROUPS_MAX (65536), <linux/limits.h>.
            if id.groups.len() > 65536 {
                return Err(Error::InvalidIdentity {
                    reason: format!(
                        "{} supplementary groups, the kernel allows 65536",
                        id.groups.len()
                    ),
                });
            }
        }
        let caps = match &self.capabilities {
            Some(c) => {
                c.validate()?;
                if !c.inheritable.is_subset(c.bounding) {
                    return Err(Error::InvalidCapabilities {
                        reason: format!(
                            "inheritable has {:?} which are not in bounding",
                            c.inheritable.difference(c.bounding)
                        ),
                    });
                }
                let last_cap = read_last_cap()?;
                Some(RawCaps::new(c, last_cap))
            }
            None => None,
        };
        let seccomp = match &self.seccomp {
            None => self.seccomp_program.clone(),
            Some(p) => {
                let granted = self.capabilities.map_or_else(CapSet::all, |c| c.bounding);
                Some(p.compile(&CompileContext::new(granted))?)
            }
        };
        let lsm = self.lsm.as_ref().map(LsmLabel::prepare).transpose()?;
        let oom = self.oom_score_adj.map(|v| PreparedLsm {
            path: cstring("/proc/self/oom_score_adj"),
            data: v.to_string().into_bytes(),
        });
        let rlimits = self
            .rlimits
            .iter()
            .map(|r| {
                (
                    r.resource.raw(),
                    libc::rlimit64 {
                        rlim_cur: r.soft,
                        rlim_max: r.hard,
                    },
                )
            })
            .collect();
        let landlock = self.landlock.as_ref().map(Landlock::prepare).transpose()?;
        tracing::debug!(
            caps = ?self.capabilities.map(|c| c.bounding),
            seccomp_insns = seccomp.as_ref().map(SeccompProgram::len),
            no_new_privs = self.no_new_privs,
            uid = self.identity.as_ref().map(|i| i.uid),
            "security policy prepared"
        );
        Ok(PreparedSecurity {
            rlimits,
            oom,
            lsm,
            caps,
            identity: self.identity.clone(),
            no_new_privs: self.no_new_privs,
            seccomp,
            landlock,
        })
    }
}

fn read_last_cap() -> Result<u32> {
    let s = std::fs::read_to_string(CAP_LAST_CAP).map_err(|source| Error::ReadKernelFile {
        path: CAP_LAST_CAP.into(),
        source,
    })?;
    s.trim().parse().map_err(|_| Error::ReadKernelFile {
        path: CAP_LAST_CAP.into(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{s:?}")),
    })
}

/// Capability sets as the kernel's `capset(2)` structs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawCaps {
    pub(crate) bounding: u64,
    pub(crate) last_cap: u32,
    pub(crate) data: [apply::CapUserData; 2],
    pub(crate) ambient: u64,
}

impl RawCaps {
    fn new(c: &Capabilities, last_cap: u32) -> Self {
        let half = |s: CapSet, i: u32| (s.bits() >> (32 * i)) as u32;
        let d = |i| apply::CapUserData {
            effective: half(c.effective, i),
            permitted: half(c.permitted, i),
            inheritable: half(c.inheritable, i),
        };
        RawCaps {
            bounding: c.bounding.bits(),
            last_cap,
            data: [d(0), d(1)],
            ambient: c.ambient.bits(),
        }
    }
}

/// A [`SecurityPolicy`] turned into plain data, ready for
/// [`apply_in_child`](PreparedSecurity::apply_in_child).
///
/// Owns the Landlock ruleset fd (close-on-exec; closed on drop in the parent).
///
/// ```no_run
/// let prepared = berth_security::SecurityPolicy::docker_default().no_new_privs(true).prepare()?;
/// // everything compiled and opened in the parent; the child only applies it
/// assert!(prepared.seccomp_program().is_some());
/// # Ok::<(), berth_security::Error>(())
/// ```
#[derive(Debug)]
pub struct PreparedSecurity {
    rlimits: Vec<(u32, libc::rlimit64)>,
    oom: Option<PreparedLsm>,
    lsm: Option<PreparedLsm>,
    caps: Option<RawCaps>,
    identity: Option<Identity>,
    no_new_privs: bool,
    seccomp: Option<SeccompProgram>,
    landlock: Option<OwnedFd>,
}

impl PreparedSecurity {
    /// The compiled seccomp program, if any.
    pub fn seccomp_program(&self) -> Option<&SeccompProgram> {
        self.seccomp.as_ref()
    }

    /// The Landlock ruleset fd, if any (the child must keep it open until apply).
    pub fn landlock_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.landlock.as_ref().map(|f| f.as_fd())
    }

    /// Apply everything to the calling process, in this order:
    ///
    /// 1. **oom_score_adj**: lowering the score needs `CAP_SYS_RESOURCE`,
    ///    so before caps go;
    /// 2. **LSM exec label** (`/proc/thread-self/attr/…/exec`): writing it
    ///    may need privileges we are about to drop; it takes effect at execve;
    /// 3. **rlimits** (`prlimit64`): raising a hard limit needs
    ///    `CAP_SYS_RESOURCE`, so before caps go; after the two files above
    ///    are written, so that a low `RLIMIT_NOFILE` (a soft limit of 3
    ///    leaves no fd beyond stdin, stdout and stderr) cannot refuse
    ///    their opens with `EMFILE` (runc sets the rlimits from the parent
    ///    once its init is ready, after writing oom_score_adj);
    /// 4. *without* `no_new_privs` only: **Landlock** and **seccomp** here,
    ///    while `CAP_SYS_ADMIN` still allows installing them (so the profile
    ///    must allow the id and capability syscalls that follow, as Docker's does);
    /// 5. **bounding set** drop (`PR_CAPBSET_DROP` needs `CAP_SETPCAP`, so
    ///    before the uid change);
    /// 6. **identity**: `PR_SET_KEEPCAPS`, then `setgroups`, `setresgid`,
    ///    `setresuid` (raw syscalls: glibc's wrappers broadcast to all threads
    ///    with signals, which is not async-signal-safe);
    /// 7. **capset** (effective/permitted/inheritable; the permitted set
    ///    survived the uid change thanks to keep-caps), then the **ambient**
    ///    set is cleared and raised, so a non-root workload keeps its caps across execve;
    /// 8. **no_new_privs**;
    /// 9. **Landlock** then **seccomp** last, so no syscall above needs to be
    ///    allowed by the filter; only `execve` remains, which must be.
    ///
    /// Allocation-free, lock-free, panic-free: only raw syscalls.
    ///
    /// # Safety
    /// Irreversibly changes the calling process' credentials and
    /// restrictions: call it only in a freshly forked/cloned child that will
    /// `execve` (or `_exit`) afterwards.
    pub unsafe fn apply_in_child(&self) -> Result<(), ChildFailure> {
        if let Some(o) = &self.oom {
            apply::write_file("write /proc/self/oom_score_adj", &o.path, &o.data)?;
        }
        if let Some(l) = &self.lsm {
            apply::write_file("write LSM exec label", &l.path, &l.data)?;
        }
        // After the opens above: a low RLIMIT_NOFILE would refuse them (EMFILE).
        for (res, lim) in &self.rlimits {
            apply::prlimit(*res, lim)?;
        }
        if !self.no_new_privs {
            self.restrict()?;
        }
        if let Some(c) = &self.caps {
            apply::drop_bounding(c.bounding, c.last_cap)?;
        }
        if let Some(id) = &self.identity {
            if self.caps.is_some() {
                apply::prctl("prctl(PR_SET_KEEPCAPS)", libc::PR_SET_KEEPCAPS, 1)?;
            }
            apply::set_identity(id.uid, id.gid, &id.groups)?;
        }
        if let Some(c) = &self.caps {
            apply::capset(&c.data)?;
            apply::set_ambient(c.ambient, c.last_cap)?;
        }
        if self.no_new_privs {
            apply::prctl("prctl(PR_SET_NO_NEW_PRIVS)", libc::PR_SET_NO_NEW_PRIVS, 1)?;
            self.restrict()?;
        }
        Ok(())
    }

    /// Landlock then seccomp.
    fn restrict(&self) -> Result<(), ChildFailure> {
        if let Some(fd) = &self.landlock {
            apply::landlock_restrict_self(fd.as_fd())?;
        }
        if let Some(p) = &self.seccomp {
            p.install_filter().map_err(|errno| ChildFailure {
                step: "seccomp(SECCOMP_SET_MODE_FILTER)",
                errno,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod child_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepared_policy_and_errors_are_send_sync() {
        fn ok<T: Send + Sync + 'static>() {}
        ok::<PreparedSecurity>();
        ok::<Error>();
    }

    #[cfg(feature = "oci")]
    #[test]
    fn from_oci_spec() {
        let spec: oci_spec::runtime::Spec = serde_json::from_str(
            r#"{"ociVersion": "1.0.2",
                "process": {"cwd": "/", "user": {"uid": 7, "gid": 8, "additionalGids": [9]},
                            "noNewPrivileges": true, "oomScoreAdj": 100,
                            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
                                             "permitted": ["CAP_KILL"]},
                            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 10, "soft": 5}]},
                "linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
                          "syscalls": [{"names": ["ptrace"], "action": "SCMP_ACT_ERRNO"}]}}}"#,
        )
        .unwrap();
        let p = SecurityPolicy::from_oci(&spec).unwrap();
        assert!(p.no_new_privs);
        assert_eq!(p.oom_score_adj, Some(100));
        assert_eq!(
            p.identity,
            Some(Identity {
                uid: 7,
                gid: 8,
                groups: vec![9]
            })
        );
        assert_eq!(p.capabilities.unwrap().bounding.names(), ["CAP_KILL"]);
        assert_eq!(p.rlimits, [Rlimit::new(Resource::Nofile, 5, 10).unwrap()]);
        assert_eq!(p.seccomp.as_ref().unwrap().rules.len(), 1);
        let prepared = p.prepare().unwrap();
        assert!(prepared.seccomp_program().is_some());
    }
}
