//! Seccomp profiles (Docker's JSON format and the OCI runtime spec's
//! `linux.seccomp`) and their compilation to a classic BPF program.
//!
//! Kernel facts: `seccomp(2)` (Linux 3.17; `SECCOMP_RET_KILL_PROCESS` 4.14,
//! `SECCOMP_RET_LOG` and `SECCOMP_FILTER_FLAG_LOG` 4.14,
//! `SECCOMP_FILTER_FLAG_SPEC_ALLOW` 4.17); the installed mode shows as
//! `Seccomp: 2` in `/proc/<pid>/status`.

mod bpf;
mod default_x86_64;
mod table_x86_64;

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::capabilities::CapSet;
use crate::error::{Error, Result};

pub use bpf::SeccompProgram;

/// The built-in default profile (Docker's JSON format), kept readable in
/// `src/seccomp/default.json`: an allowlist whose default action is
/// `SCMP_ACT_ERRNO` with EPERM, equivalent in effect to Docker's default.
pub const DEFAULT_PROFILE_JSON: &str = include_str!("default.json");

/// `SECCOMP_FILTER_FLAG_LOG`: log every action except `RET_ALLOW` (Linux 4.14).
#[doc(alias("SECCOMP_FILTER_FLAG_LOG"))]
pub const FLAG_LOG: u32 = 2;
/// `SECCOMP_FILTER_FLAG_SPEC_ALLOW`: keep speculative store bypass mitigation off (Linux 4.17).
#[doc(alias("SECCOMP_FILTER_FLAG_SPEC_ALLOW"))]
pub const FLAG_SPEC_ALLOW: u32 = 4;
/// `SECCOMP_FILTER_FLAG_TSYNC`: accepted in profiles but never passed to the
/// kernel, the child is single-threaded when it installs the filter.
const FLAG_TSYNC: u32 = 1;

/// What the kernel does when a rule matches (`SECCOMP_RET_*`).
///
/// ```
/// use berth_security::Action;
/// assert_eq!(Action::Allow.ret(), 0x7fff_0000); // SECCOMP_RET_ALLOW
/// assert_eq!(Action::Errno(1).ret(), 0x0005_0001); // SECCOMP_RET_ERRNO | EPERM
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `SCMP_ACT_KILL` / `SCMP_ACT_KILL_THREAD`: kill the calling thread.
    #[doc(alias("SECCOMP_RET_KILL_THREAD"))]
    KillThread,
    /// `SCMP_ACT_KILL_PROCESS`: kill the whole process with SIGSYS (Linux 4.14).
    #[doc(alias("SECCOMP_RET_KILL_PROCESS"))]
    KillProcess,
    /// `SCMP_ACT_TRAP`: send SIGSYS with this value in `si_errno`.
    #[doc(alias("SECCOMP_RET_TRAP"))]
    Trap(u16),
    /// `SCMP_ACT_ERRNO`: fail the syscall with this errno.
    #[doc(alias("SECCOMP_RET_ERRNO"))]
    Errno(u16),
    /// `SCMP_ACT_TRACE`: notify a ptrace tracer with this value.
    #[doc(alias("SECCOMP_RET_TRACE"))]
    Trace(u16),
    /// `SCMP_ACT_LOG`: allow and log (Linux 4.14).
    #[doc(alias("SECCOMP_RET_LOG"))]
    Log,
    /// `SCMP_ACT_ALLOW`: allow.
    #[doc(alias("SECCOMP_RET_ALLOW"))]
    Allow,
}

impl Action {
    /// The 32-bit value a seccomp filter returns for this action.
    pub fn ret(self) -> u32 {
        match self {
            Action::KillThread => 0x0000_0000,
            Action::KillProcess => 0x8000_0000,
            Action::Trap(d) => 0x0003_0000 | u32::from(d),
            Action::Errno(e) => 0x0005_0000 | u32::from(e),
            Action::Trace(d) => 0x7ff0_0000 | u32::from(d),
            Action::Log => 0x7ffc_0000,
            Action::Allow => 0x7fff_0000,
        }
    }

    /// Kernel precedence (higher wins), `seccomp(2)`: KILL_PROCESS > KILL_THREAD
    /// > TRAP > ERRNO > USER_NOTIF > TRACE > LOG > ALLOW.
    fn precedence(self) -> u8 {
        match self {
            Action::KillProcess => 7,
            Action::KillThread => 6,
            Action::Trap(_) => 5,
            Action::Errno(_) => 4,
            Action::Trace(_) => 3,
            Action::Log => 2,
            Action::Allow => 1,
        }
    }

    /// Parse an OCI/libseccomp action name with its `errnoRet`.
    fn parse(name: &str, errno_ret: Option<u32>, default_errno: u32) -> Result<Action> {
        let data = |what: &str| -> Result<u16> {
            let v = errno_ret.unwrap_or(default_errno);
            // MAX_ERRNO is 4095: larger values are not errnos to libc.
            if v > 4095 {
                return Err(Error::InvalidProfile {
                    reason: format!("{what} return value {v} is larger than 4095"),
                });
            }
            Ok(v as u16)
        };
        Ok(match name {
            "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
            "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
            "SCMP_ACT_TRAP" => Action::Trap(errno_ret.map(|_| data("SCMP_ACT_TRAP")).transpose()?.unwrap_or(0)),
            "SCMP_ACT_ERRNO" => Action::Errno(data("SCMP_ACT_ERRNO")?),
            "SCMP_ACT_TRACE" => Action::Trace(data("SCMP_ACT_TRACE")?),
            "SCMP_ACT_LOG" => Action::Log,
            "SCMP_ACT_ALLOW" => Action::Allow,
            "SCMP_ACT_NOTIFY" => {
                return Err(Error::InvalidProfile {
                    reason: "SCMP_ACT_NOTIFY needs a seccomp listener fd and agent, which berth does not provide".into(),
                })
            }
            other => {
                return Err(Error::InvalidProfile {
                    reason: format!("unknown action {other:?}"),
                })
            }
        })
    }
}

/// Comparison operator of an argument filter (`SCMP_CMP_*`), unsigned 64-bit.
///
/// ```
/// use berth_security::{Action, CmpOp, SyscallRule};
/// // allow personality(0xffffffff) only (a query)
/// let rule = SyscallRule::new(["personality"], Action::Allow).arg(0, CmpOp::Eq, 0xffff_ffff, 0).unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[doc(alias("SCMP_CMP_EQ", "SCMP_CMP_MASKED_EQ"))]
pub enum CmpOp {
    /// `arg != value`
    Ne,
    /// `arg < value`
    Lt,
    /// `arg <= value`
    Le,
    /// `arg == value`
    Eq,
    /// `arg >= value`
    Ge,
    /// `arg > value`
    Gt,
    /// `arg & value == value_two`
    MaskedEq,
}

impl CmpOp {
    fn parse(s: &str) -> Result<CmpOp> {
        Ok(match s {
            "SCMP_CMP_NE" => CmpOp::Ne,
            "SCMP_CMP_LT" => CmpOp::Lt,
            "SCMP_CMP_LE" => CmpOp::Le,
            "SCMP_CMP_EQ" => CmpOp::Eq,
            "SCMP_CMP_GE" => CmpOp::Ge,
            "SCMP_CMP_GT" => CmpOp::Gt,
            "SCMP_CMP_MASKED_EQ" => CmpOp::MaskedEq,
            other => {
                return Err(Error::InvalidProfile {
                    reason: format!("unknown argument operator {other:?}"),
                })
            }
        })
    }
}

/// One argument comparison: syscall argument `index` (0..=5) compared with `value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArgCmp {
    /// Argument index, 0..=5.
    pub index: u8,
    /// The operator.
    pub op: CmpOp,
    /// The operand (the mask for [`CmpOp::MaskedEq`]).
    pub value: u64,
    /// The expected masked value for [`CmpOp::MaskedEq`]; unused otherwise.
    pub value_two: u64,
}

/// Conditions that include or exclude a rule (Docker's `includes`/`excludes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    /// Capabilities (all must be granted for `includes`; any excludes).
    pub caps: CapSet,
    /// Architecture names (`amd64`, `SCMP_ARCH_X86_64`, ...).
    pub arches: Vec<String>,
    /// Minimum kernel `(major, minor)`.
    pub min_kernel: Option<(u32, u32)>,
}

/// One syscall rule: these syscalls, with these argument conditions (all
/// must hold), get this action.
///
/// ```
/// use berth_security::{Action, SeccompProfile, SyscallRule};
/// let profile = SeccompProfile::new(Action::Errno(1)).rule(SyscallRule::new(["read", "write", "exit_group"], Action::Allow));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyscallRule {
    /// Syscall names (unknown names are skipped with a warning at compile time).
    pub names: Vec<String>,
    /// Action when the rule matches.
    pub action: Action,
    /// Argument comparisons: all must hold. If two compare the same argument
    /// they are OR-ed instead (each becomes its own rule), as runc does.
    pub args: Vec<ArgCmp>,
    /// The rule applies only when these hold.
    pub includes: Conditions,
    /// The rule is skipped when any of these hold.
    pub excludes: Conditions,
}

/// A seccomp profile: a default action and syscall rules.
///
/// Parsed from Docker's JSON ([`SeccompProfile::from_docker_json`]) or the OCI
/// spec (`SeccompProfile::from_oci`, cargo feature `oci`), then
/// [`compile`](SeccompProfile::compile)d to BPF in the parent.
///
/// ```
/// use berth_security::{Action, CapSet, CompileContext, SeccompProfile, SyscallRule};
/// let profile = SeccompProfile::new(Action::Errno(1))
///     .rule(SyscallRule::new(["read", "write", "exit_group"], Action::Allow));
/// let program = profile.compile(&CompileContext::new(CapSet::empty())).unwrap(); // for SECCOMP_SET_MODE_FILTER
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[doc(alias("SECCOMP_SET_MODE_FILTER", "seccomp"))]
pub struct SeccompProfile {
    /// Action for syscalls no rule matches.
    pub default_action: Action,
    /// `SECCOMP_FILTER_FLAG_*` to pass when installing ([`FLAG_LOG`], [`FLAG_SPEC_ALLOW`]).
    pub flags: u32,
    /// The rules, in profile order.
    pub rules: Vec<SyscallRule>,
}

/// What a profile is compiled against: the capabilities the container gets
/// (for `includes.caps`/`excludes.caps`) and the kernel version (for `minKernel`).
///
/// ```
/// use berth_security::{CapSet, CompileContext, SeccompProfile};
/// let program = SeccompProfile::docker_default_program(&CompileContext::new(CapSet::docker_default())).unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileContext {
    /// Granted capabilities (the bounding set, as Docker uses).
    pub caps: CapSet,
    /// Running kernel `(major, minor)`.
    pub kernel: (u32, u32),
}

impl CompileContext {
    /// Granted `caps` on the running kernel (from `uname(2)`).
    pub fn new(caps: CapSet) -> Self {
        CompileContext {
            caps,
            kernel: running_kernel(),
        }
    }
}

/// The running kernel's `(major, minor)` from `uname(2)`; `(0, 0)` if unparsable.
pub fn running_kernel() -> (u32, u32) {
    parse_kernel_version(&berth_sys::proc::kernel_release()).unwrap_or((0, 0))
}

fn parse_kernel_version(s: &str) -> Option<(u32, u32)> {
    let mut it = s.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next().unwrap_or("0").parse().unwrap_or(0);
    Some((major, minor))
}

// ---- Docker / OCI JSON ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonProfile {
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Option<Vec<String>>,
    #[serde(default)]
    arch_map: Option<Vec<JsonArchMap>>,
    #[serde(default)]
    flags: Option<Vec<String>>,
    #[serde(default)]
    listener_path: Option<String>,
    #[serde(default)]
    syscalls: Option<Vec<JsonSyscall>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonArchMap {
    architecture: String,
    #[serde(default)]
    sub_architectures: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonSyscall {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    names: Option<Vec<String>>,
    action: String,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<JsonArg>>,
    #[serde(default)]
    includes: Option<JsonFilter>,
    #[serde(default)]
    excludes: Option<JsonFilter>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonArg {
    index: u64,
    value: u64,
    #[serde(default)]
    value_two: Option<u64>,
    op: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct JsonFilter {
    #[serde(default)]
    caps: Option<Vec<String>>,
    #[serde(default)]
    arches: Option<Vec<String>>,
    #[serde(default)]
    min_kernel: Option<String>,
}

const KNOWN_ARCHES: &[&str] = &[
    "SCMP_ARCH_NATIVE",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_SH",
    "SCMP_ARCH_SHEB",
];

fn check_arch(a: &str) -> Result<()> {
    if KNOWN_ARCHES.contains(&a) {
        Ok(())
    } else {
        Err(Error::InvalidProfile {
            reason: format!("unknown architecture {a:?}"),
        })
    }
}

fn conditions(f: Option<JsonFilter>) -> Result<Conditions> {
    let f = f.unwrap_or_default();
    let min_kernel = match f.min_kernel {
        Some(s) => Some(
            parse_kernel_version(&s).ok_or_else(|| Error::InvalidProfile {
                reason: format!("minKernel {s:?} is not a kernel version"),
            })?,
        ),
        None => None,
    };
    Ok(Conditions {
        caps: CapSet::from_names(f.caps.unwrap_or_default())?,
        arches: f.arches.unwrap_or_default(),
        min_kernel,
    })
}

impl SeccompProfile {
    /// The built-in default profile ([`DEFAULT_PROFILE_JSON`]).
    ///
    /// ```
    /// use berth_security::{CapSet, CompileContext, SeccompProfile};
    /// let p = SeccompProfile::docker_default();
    /// let prog = p.compile(&CompileContext::new(CapSet::docker_default())).unwrap();
    /// assert!(prog.len() > 50);
    /// ```
    pub fn docker_default() -> Self {
        // The embedded file is tested by `default_profile_parses`, so parsing cannot fail.
        match Self::from_docker_json(DEFAULT_PROFILE_JSON) {
            Ok(p) => p,
            Err(e) => unreachable!("embedded default.json is invalid: {e}"),
        }
    }

    /// The built-in default profile compiled for `ctx`: the same program as
    /// `SeccompProfile::docker_default().compile(ctx)`, but without parsing
    /// or compiling anything in the common case, Docker's default
    /// capabilities on a kernel that satisfies every `minKernel` condition
    /// of the profile: that program is generated ahead of time into
    /// `src/seccomp/default_x86_64.rs` (a test recompiles it and fails when
    /// the file is stale). Parsing and compiling cost about 0.18 ms in a
    /// freshly started process (page faults, JSON, the name table), about
    /// 5% of a whole `berth-run -- /bin/true`.
    ///
    /// ```
    /// use berth_security::{CapSet, CompileContext, SeccompProfile};
    /// let ctx = CompileContext::new(CapSet::docker_default());
    /// let fast = SeccompProfile::docker_default_program(&ctx).unwrap();
    /// let slow = SeccompProfile::docker_default().compile(&ctx).unwrap();
    /// assert_eq!(fast.instructions(), slow.instructions());
    /// ```
    pub fn docker_default_program(ctx: &CompileContext) -> Result<SeccompProgram> {
        if ctx.caps == CapSet::docker_default() && ctx.kernel >= default_x86_64::MIN_KERNEL {
            return Ok(SeccompProgram {
                filter: default_x86_64::PROGRAM
                    .iter()
                    .map(|&(code, jt, jf, k)| libc::sock_filter { code, jt, jf, k })
                    .collect(),
                flags: default_x86_64::FLAGS,
            });
        }
        Self::docker_default().compile(ctx)
    }

    /// Parse Docker's seccomp JSON format (also accepts the OCI `linux.seccomp` object).
    ///
    /// Errors on malformed JSON, an unknown action, operator or architecture,
    /// an argument index beyond 5, an unknown capability or an errno above 4095.
    ///
    /// ```
    /// use berth_security::SeccompProfile;
    /// let p = SeccompProfile::from_docker_json(r#"{
    ///   "defaultAction": "SCMP_ACT_ALLOW",
    ///   "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
    /// }"#).unwrap();
    /// assert_eq!(p.rules.len(), 1);
    /// assert!(SeccompProfile::from_docker_json(r#"{"defaultAction": "SCMP_ACT_NOPE"}"#).is_err());
    /// ```
    pub fn from_docker_json(json: &str) -> Result<Self> {
        let j: JsonProfile =
            serde_json::from_str(json).map_err(|source| Error::ProfileJson { source })?;
        Self::from_json_profile(j)
    }

    #[cfg(feature = "oci")]
    /// Convert the OCI runtime spec's `linux.seccomp` (oci-spec crate).
    pub fn from_oci(s: &oci_spec::runtime::LinuxSeccomp) -> Result<Self> {
        // The OCI object uses the same field names as Docker's format.
        let v = serde_json::to_value(s).map_err(|source| Error::ProfileJson { source })?;
        let j: JsonProfile =
            serde_json::from_value(v).map_err(|source| Error::ProfileJson { source })?;
        Self::from_json_profile(j)
    }

    fn from_json_profile(j: JsonProfile) -> Result<Self> {
        let default_errno = j.default_errno_ret.unwrap_or(libc::EPERM as u32);
        let default_action = Action::parse(&j.default_action, j.default_errno_ret, default_errno)?;
        for a in j.architectures.iter().flatten() {
            check_arch(a)?;
        }
        for m in j.arch_map.iter().flatten() {
            check_arch(&m.architecture)?;
            for a in m.sub_architectures.iter().flatten() {
                check_arch(a)?;
            }
        }
        if j.listener_path.is_some() {
            return Err(Error::InvalidProfile {
                reason: "listenerPath (SCMP_ACT_NOTIFY agents) is not supported".into(),
            });
        }
        let mut flags = 0;
        for f in j.flags.iter().flatten() {
            flags |= match f.as_str() {
                "SECCOMP_FILTER_FLAG_LOG" => FLAG_LOG,
                "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => FLAG_SPEC_ALLOW,
                "SECCOMP_FILTER_FLAG_TSYNC" => FLAG_TSYNC,
                other => {
                    return Err(Error::InvalidProfile {
                        reason: format!("unknown flag {other:?}"),
                    })
                }
            };
        }
        let mut rules = Vec::new();
        for (i, s) in j.syscalls.into_iter().flatten().enumerate() {
            let mut names = s.names.unwrap_or_default();
            names.extend(s.name);
            if names.is_empty() {
                return Err(Error::InvalidProfile {
                    reason: format!("syscalls[{i}] names no syscall"),
                });
            }
            // libseccomp/runc: an ERRNO rule without errnoRet returns EPERM.
            let action = Action::parse(&s.action, s.errno_ret, libc::EPERM as u32)?;
            let mut args = Vec::new();
            for (k, a) in s.args.into_iter().flatten().enumerate() {
                if a.index > 5 {
                    return Err(Error::InvalidProfile {
                        reason: format!(
                            "syscalls[{i}].args[{k}].index is {}, but syscalls have 6 arguments (0..=5)",
                            a.index
                        ),
                    });
                }
                let op = CmpOp::parse(&a.op).map_err(|e| Error::InvalidProfile {
                    reason: format!("syscalls[{i}].args[{k}]: {e}"),
                })?;
                args.push(ArgCmp {
                    index: a.index as u8,
                    op,
                    value: a.value,
                    value_two: a.value_two.unwrap_or(0),
                });
            }
            rules.push(SyscallRule {
                names,
                action,
                args,
                includes: conditions(s.includes)?,
                excludes: conditions(s.excludes)?,
            });
        }
        Ok(SeccompProfile {
            default_action,
            flags,
            rules,
        })
    }

    /// Compile to a BPF program for the native architecture (x86_64).
    ///
    /// Rules excluded by `ctx` are dropped; unknown syscall names are skipped
    /// with a `tracing` warning (as runc does; names that exist only on other
    /// architectures are skipped at debug level). Within one syscall, the
    /// matching rule with the highest kernel precedence wins (a conditional
    /// ERRNO beats an unconditional ALLOW); no match gives the default action.
    pub fn compile(&self, ctx: &CompileContext) -> Result<SeccompProgram> {
        // Rules built in code (public fields) get the same checks as parsed ones.
        let check_action = |a: Action| match a {
            Action::Errno(e) if e > 4095 => Err(Error::InvalidProfile {
                reason: format!("errno {e} is larger than 4095"),
            }),
            _ => Ok(()),
        };
        check_action(self.default_action)?;
        for rule in &self.rules {
            check_action(rule.action)?;
            if let Some(a) = rule.args.iter().find(|a| a.index > 5) {
                return Err(Error::InvalidProfile {
                    reason: format!(
                        "rule for {:?}: argument index {} is beyond 5",
                        rule.names, a.index
                    ),
                });
            }
        }
        let mut by_nr: BTreeMap<u32, Vec<(Action, Vec<ArgCmp>)>> = BTreeMap::new();
        for rule in &self.rules {
            if !rule_applies(rule, ctx) {
                continue;
            }
            // Two comparisons of the same argument are OR-ed (runc's behaviour).
            let mut seen = [false; 6];
            let same_index = rule.args.iter().any(|a| {
                let dup = seen[a.index as usize];
                seen[a.index as usize] = true;
                dup
            });
            let alternatives: Vec<Vec<ArgCmp>> = if same_index {
                rule.args.iter().map(|a| vec![*a]).collect()
            } else {
                vec![rule.args.clone()]
            };
            for name in &rule.names {
                let Some(nr) = syscall_number(name) else {
                    if OTHER_ARCH_NAMES.contains(&name.as_str()) {
                        tracing::debug!(syscall = %name, "seccomp: syscall not on x86_64, skipped");
                    } else {
                        tracing::warn!(syscall = %name, "seccomp: unknown syscall name skipped");
                    }
                    continue;
                };
                let entry = by_nr.entry(nr).or_default();
                for alt in &alternatives {
                    entry.push((rule.action, alt.clone()));
                }
            }
        }
        bpf::compile(self.default_action, self.flags & !FLAG_TSYNC, by_nr)
    }
}

impl Default for SeccompProfile {
    fn default() -> Self {
        Self::docker_default()
    }
}

fn native_arch_matches(a: &str) -> bool {
    matches!(
        a,
        "amd64" | "x86_64" | "SCMP_ARCH_X86_64" | "SCMP_ARCH_NATIVE"
    )
}

fn rule_applies(rule: &SyscallRule, ctx: &CompileContext) -> bool {
    let inc = &rule.includes;
    if !inc.caps.is_subset(ctx.caps) {
        return false;
    }
    if !inc.arches.is_empty() && !inc.arches.iter().any(|a| native_arch_matches(a)) {
        return false;
    }
    if let Some(k) = inc.min_kernel {
        if ctx.kernel < k {
            return false;
        }
    }
    let exc = &rule.excludes;
    if !exc.caps.intersection(ctx.caps).is_empty() {
        return false;
    }
    if exc.arches.iter().any(|a| native_arch_matches(a)) {
        return false;
    }
    if let Some(k) = exc.min_kernel {
        if ctx.kernel >= k {
            return false;
        }
    }
    true
}

/// The x86_64 number of a syscall name, if known.
pub fn syscall_number(name: &str) -> Option<u32> {
    static BY_NAME: std::sync::OnceLock<std::collections::HashMap<&'static str, u32>> =
        std::sync::OnceLock::new();
    BY_NAME
        .get_or_init(|| table_x86_64::X86_64.iter().copied().collect())
        .get(name)
        .copied()
}

/// The highest syscall number this crate knows on x86_64.
pub fn max_syscall_number() -> u32 {
    table_x86_64::X86_64
        .iter()
        .map(|(_, n)| *n)
        .max()
        .unwrap_or(0)
}

impl SyscallRule {
    /// An unconditional rule for `names`.
    ///
    /// ```
    /// use berth_security::{Action, SyscallRule};
    /// let r = SyscallRule::new(["mkdir", "mkdirat"], Action::Errno(13));
    /// assert_eq!(r.names.len(), 2);
    /// ```
    pub fn new<I, S>(names: I, action: Action) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        SyscallRule {
            names: names.into_iter().map(Into::into).collect(),
            action,
            args: Vec::new(),
            includes: Conditions::default(),
            excludes: Conditions::default(),
        }
    }

    /// Add an argument comparison (all comparisons must hold).
    ///
    /// ```
    /// use berth_security::{Action, CmpOp, SyscallRule};
    /// let r = SyscallRule::new(["personality"], Action::Allow).arg(0, CmpOp::Eq, 8, 0).unwrap();
    /// assert!(SyscallRule::new(["read"], Action::Allow).arg(6, CmpOp::Eq, 0, 0).is_err());
    /// ```
    pub fn arg(mut self, index: u8, op: CmpOp, value: u64, value_two: u64) -> Result<Self> {
        if index > 5 {
            return Err(Error::InvalidProfile {
                reason: format!("argument index {index} is beyond 5"),
            });
        }
        self.args.push(ArgCmp {
            index,
            op,
            value,
            value_two,
        });
        Ok(self)
    }

    /// A rule naming a syscall by number, checked against the x86_64 table.
    ///
    /// ```
    /// use berth_security::{Action, SyscallRule};
    /// assert!(SyscallRule::by_number(0, Action::Allow).is_ok()); // read
    /// assert!(SyscallRule::by_number(100_000, Action::Allow).is_err());
    /// ```
    pub fn by_number(nr: u32, action: Action) -> Result<Self> {
        let name = table_x86_64::X86_64
            .iter()
            .find(|(_, n)| *n == nr)
            .map(|(n, _)| *n)
            .ok_or_else(|| Error::InvalidProfile {
                reason: format!(
                    "syscall number {nr} does not exist on x86_64 (highest known is {})",
                    max_syscall_number()
                ),
            })?;
        Ok(SyscallRule::new([name], action))
    }
}

impl SeccompProfile {
    /// A profile with `default_action` and no rules; add rules with [`SeccompProfile::rule`].
    ///
    /// ```
    /// use berth_security::{Action, SeccompProfile, SyscallRule};
    /// let p = SeccompProfile::new(Action::Allow)
    ///     .rule(SyscallRule::new(["ptrace"], Action::KillProcess));
    /// assert_eq!(p.rules.len(), 1);
    /// ```
    pub fn new(default_action: Action) -> Self {
        SeccompProfile {
            default_action,
            flags: 0,
            rules: Vec::new(),
        }
    }

    /// Append a rule.
    ///
    /// ```
    /// use berth_security::{Action, CmpOp, SeccompProfile, SyscallRule};
    /// // Deny AF_VSOCK sockets with EACCES, allow everything else.
    /// let p = SeccompProfile::new(Action::Allow)
    ///     .rule(SyscallRule::new(["socket"], Action::Errno(13)).arg(0, CmpOp::Eq, 40, 0)?);
    /// # Ok::<(), berth_security::Error>(())
    /// ```
    pub fn rule(mut self, rule: SyscallRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Set the `SECCOMP_FILTER_FLAG_*` flags ([`FLAG_LOG`], [`FLAG_SPEC_ALLOW`]).
    ///
    /// ```
    /// use berth_security::{Action, SeccompProfile, FLAG_LOG};
    /// let p = SeccompProfile::new(Action::Log).flags(FLAG_LOG);
    /// assert_eq!(p.flags, FLAG_LOG);
    /// ```
    pub fn flags(mut self, flags: u32) -> Self {
        self.flags = flags;
        self
    }
}

/// Names in Docker-style profiles that exist only on other architectures
/// (32-bit variants, multiplexers): skipped quietly on x86_64.
const OTHER_ARCH_NAMES: &[&str] = &[
    "_llseek",
    "_newselect",
    "chown32",
    "clock_adjtime64",
    "clock_getres_time64",
    "clock_gettime64",
    "clock_nanosleep_time64",
    "clock_settime64",
    "fadvise64_64",
    "fchown32",
    "fcntl64",
    "fstat64",
    "fstatat64",
    "fstatfs64",
    "ftruncate64",
    "futex_time64",
    "getegid32",
    "geteuid32",
    "getgid32",
    "getgroups32",
    "getresgid32",
    "getresuid32",
    "getuid32",
    "io_pgetevents_time64",
    "ipc",
    "lchown32",
    "lstat64",
    "mmap2",
    "mq_timedreceive_time64",
    "mq_timedsend_time64",
    "ppoll_time64",
    "pselect6_time64",
    "recv",
    "recvmmsg_time64",
    "rt_sigtimedwait_time64",
    "sched_rr_get_interval_time64",
    "semtimedop_time64",
    "send",
    "sendfile64",
    "setfsgid32",
    "setfsuid32",
    "setgid32",
    "setgroups32",
    "setregid32",
    "setresgid32",
    "setresuid32",
    "setreuid32",
    "setuid32",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "stat64",
    "statfs64",
    "stime",
    "timer_gettime64",
    "timer_settime64",
    "timerfd_gettime64",
    "timerfd_settime64",
    "truncate64",
    "ugetrlimit",
    "umount",
    "utimensat_time64",
    "waitpid",
    "sync_file_range2",
    "swapcontext",
    "arm_fadvise64_64",
    "arm_sync_file_range",
    "breakpoint",
    "cacheflush",
    "set_tls",
    "s390_pci_mmio_read",
    "s390_pci_mmio_write",
    "s390_runtime_instr",
    "riscv_flush_icache",
    "sigaction",
    "signal",
    "sigpending",
    "sigsuspend",
    "oldstat",
    "oldfstat",
    "oldlstat",
    "olduname",
    "nice",
    "sgetmask",
    "ssetmask",
    "fstatfs64",
    "vm86",
    "vm86old",
    "umount",
];

#[cfg(test)]
mod tests;
