//! The cgroup device filter: OCI `linux.resources.devices` rules compiled
//! into a `BPF_PROG_TYPE_CGROUP_DEVICE` program (Linux 4.15; the cgroup v2
//! replacement for the v1 `devices` controller), attached to a cgroup with
//! `BPF_F_ALLOW_MULTI` and replaced atomically with `BPF_F_REPLACE`
//! (Linux 5.6) so repeated updates never pile up programs.
//!
//! Semantics: rules are checked last to first and the last matching rule
//! decides (allow → 1, deny → 0); a request no rule matches is denied.
//! A rule matches when the device type matches (`a` matches both), the
//! major and minor match (`None` is a wildcard), and every requested access
//! bit is in the rule's access set. Program context: `struct
//! bpf_cgroup_dev_ctx { u32 access_type /* access << 16 | type */; u32
//! major; u32 minor; }` (`include/uapi/linux/bpf.h`).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

#[cfg(feature = "oci")]
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::asm::{AluOp, Asm, Insn, JmpOp, Reg, Size};
use crate::error::{Error, Result};
use crate::sys::{self, AttachType, ProgType, Program, BPF_F_ALLOW_MULTI, BPF_F_REPLACE};

bitflags::bitflags! {
    /// Device access bits, valued as the kernel's `BPF_DEVCG_ACC_*`.
    ///
    /// ```
    /// use berth_ebpf_probes::DeviceAccess;
    /// let a = DeviceAccess::parse("rwm").unwrap(); // as in devices.allow
    /// assert_eq!(a, DeviceAccess::READ | DeviceAccess::WRITE | DeviceAccess::MKNOD);
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    #[doc(alias("BPF_DEVCG_ACC_READ", "BPF_DEVCG_ACC_WRITE", "BPF_DEVCG_ACC_MKNOD"))]
    pub struct DeviceAccess: u32 {
        /// `m`: mknod(2) of the device node.
        const MKNOD = berth_sys::bpf_abi::BPF_DEVCG_ACC_MKNOD;
        /// `r`: open for reading.
        const READ = berth_sys::bpf_abi::BPF_DEVCG_ACC_READ;
        /// `w`: open for writing.
        const WRITE = berth_sys::bpf_abi::BPF_DEVCG_ACC_WRITE;
    }
}

impl DeviceAccess {
    /// Parse an OCI/cgroup v1 access string made of `r`, `w`, `m`.
    ///
    /// ```
    /// use berth_ebpf_probes::DeviceAccess;
    /// assert_eq!(DeviceAccess::parse("rw").unwrap(), DeviceAccess::READ | DeviceAccess::WRITE);
    /// assert!(DeviceAccess::parse("rx").is_err());
    /// ```
    pub fn parse(s: &str) -> std::result::Result<DeviceAccess, String> {
        if s.is_empty() {
            return Err("empty access string (use a subset of \"rwm\")".into());
        }
        let mut a = DeviceAccess::empty();
        for c in s.chars() {
            a |= match c {
                'r' => DeviceAccess::READ,
                'w' => DeviceAccess::WRITE,
                'm' => DeviceAccess::MKNOD,
                other => {
                    return Err(format!(
                        "access {s:?} has {other:?}, only 'r', 'w' and 'm' are allowed"
                    ))
                }
            };
        }
        Ok(a)
    }
}

/// Which device nodes a rule covers.
///
/// ```
/// use berth_ebpf_probes::{DeviceAccess, DeviceKind, DeviceRule};
/// let null = DeviceRule::allow(DeviceKind::Char, Some(1), Some(3), DeviceAccess::READ | DeviceAccess::WRITE);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[doc(alias("BPF_DEVCG_DEV_CHAR", "BPF_DEVCG_DEV_BLOCK"))]
pub enum DeviceKind {
    /// `a`: character and block devices.
    All,
    /// `c` (and OCI `u`): character devices (`BPF_DEVCG_DEV_CHAR` = 2).
    Char,
    /// `b`: block devices (`BPF_DEVCG_DEV_BLOCK` = 1).
    Block,
}

/// Largest major number (`MAJOR()` is 12 bits in `include/linux/kdev_t.h`).
pub const MAX_MAJOR: u32 = (1 << 12) - 1;
/// Largest minor number (20 bits).
pub const MAX_MINOR: u32 = (1 << 20) - 1;

/// One device rule: allow or deny `access` to devices of `kind`, `major`, `minor`.
///
/// ```
/// use berth_ebpf_probes::{DeviceAccess, DeviceFilter, DeviceKind, DeviceRule};
/// let mut f = DeviceFilter::new();
/// f.rule(DeviceRule::allow(DeviceKind::Char, Some(1), Some(3), DeviceAccess::READ | DeviceAccess::WRITE)); // /dev/null
/// let insns = f.compile().unwrap(); // a BPF_PROG_TYPE_CGROUP_DEVICE program
/// assert!(!insns.is_empty());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceRule {
    /// Allow (true) or deny (false).
    pub allow: bool,
    /// Device type.
    pub kind: DeviceKind,
    /// Major number, `None` for any.
    pub major: Option<u32>,
    /// Minor number, `None` for any.
    pub minor: Option<u32>,
    /// The accesses the rule covers.
    pub access: DeviceAccess,
}

impl DeviceRule {
    /// An allow rule.
    ///
    /// ```
    /// use berth_ebpf_probes::{DeviceAccess, DeviceKind, DeviceRule};
    /// // /dev/null: character device 1:3, read and write.
    /// let r = DeviceRule::allow(DeviceKind::Char, Some(1), Some(3), DeviceAccess::READ | DeviceAccess::WRITE);
    /// assert!(r.allow);
    /// ```
    pub fn allow(
        kind: DeviceKind,
        major: Option<u32>,
        minor: Option<u32>,
        access: DeviceAccess,
    ) -> Self {
        DeviceRule {
            allow: true,
            kind,
            major,
            minor,
            access,
        }
    }

    /// A deny rule.
    ///
    /// ```
    /// use berth_ebpf_probes::{DeviceAccess, DeviceKind, DeviceRule};
    /// let deny_all = DeviceRule::deny(DeviceKind::All, None, None, DeviceAccess::all());
    /// assert!(!deny_all.allow);
    /// ```
    pub fn deny(
        kind: DeviceKind,
        major: Option<u32>,
        minor: Option<u32>,
        access: DeviceAccess,
    ) -> Self {
        DeviceRule {
            allow: false,
            ..Self::allow(kind, major, minor, access)
        }
    }

    #[cfg(feature = "oci")]
    /// Convert one OCI rule (`type` absent means `a`, `access` absent means
    /// `rwm`, a missing or negative major/minor is a wildcard). FIFOs (`p`)
    /// are not device-cgroup objects and are refused.
    pub fn from_oci(index: usize, r: &LinuxDeviceCgroup) -> Result<DeviceRule> {
        let bad = |reason: String| Error::InvalidDeviceRule { index, reason };
        let kind = match r.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => DeviceKind::All,
            LinuxDeviceType::C | LinuxDeviceType::U => DeviceKind::Char,
            LinuxDeviceType::B => DeviceKind::Block,
            LinuxDeviceType::P => {
                return Err(bad(
                    "type 'p' (FIFO) is not controlled by the device cgroup; use a, b, c or u"
                        .into(),
                ))
            }
        };
        let num = |v: Option<i64>, what: &str, max: u32| -> Result<Option<u32>> {
            match v {
                None => Ok(None),
                Some(n) if n < 0 => Ok(None),
                Some(n) if n > max as i64 => Err(bad(format!("{what} {n} exceeds {max}"))),
                Some(n) => Ok(Some(n as u32)),
            }
        };
        let access = match r.access().as_deref() {
            None => DeviceAccess::all(),
            Some(s) => DeviceAccess::parse(s).map_err(bad)?,
        };
        let rule = DeviceRule {
            allow: r.allow(),
            kind,
            major: num(r.major(), "major", MAX_MAJOR)?,
            minor: num(r.minor(), "minor", MAX_MINOR)?,
            access,
        };
        Ok(rule)
    }

    fn validate(&self, index: usize) -> Result<()> {
        let bad = |reason: String| Error::InvalidDeviceRule { index, reason };
        if self.access.is_empty() {
            return Err(bad("empty access set".into()));
        }
        if let Some(m) = self.major.filter(|m| *m > MAX_MAJOR) {
            return Err(bad(format!("major {m} exceeds {MAX_MAJOR}")));
        }
        if let Some(m) = self.minor.filter(|m| *m > MAX_MINOR) {
            return Err(bad(format!("minor {m} exceeds {MAX_MINOR}")));
        }
        Ok(())
    }
}

/// A device filter: a list of rules, last match wins, default deny.
///
/// ```no_run
/// use berth_ebpf_probes::{open_cgroup, DeviceFilter};
/// let cg = open_cgroup("/sys/fs/cgroup/unified/web-1")?;
/// let handle = DeviceFilter::container_default().attach(&cg)?;
/// // ... the container runs; its /dev allowlist is enforced ...
/// handle.detach()?;
/// # Ok::<(), berth_ebpf_probes::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[doc(alias("BPF_PROG_TYPE_CGROUP_DEVICE", "BPF_CGROUP_DEVICE", "devices.allow"))]
pub struct DeviceFilter {
    rules: Vec<DeviceRule>,
}

impl DeviceFilter {
    /// An empty filter: denies every device access.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append a rule (later rules take precedence).
    ///
    /// ```
    /// use berth_ebpf_probes::{DeviceAccess, DeviceFilter, DeviceKind, DeviceRule};
    /// let mut f = DeviceFilter::new();
    /// f.rule(DeviceRule::allow(DeviceKind::Char, Some(1), Some(3), DeviceAccess::all()));
    /// assert_eq!(f.rules().len(), 1);
    /// ```
    pub fn rule(&mut self, rule: DeviceRule) -> &mut Self {
        self.rules.push(rule);
        self
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[DeviceRule] {
        &self.rules
    }

    #[cfg(feature = "oci")]
    /// Build from OCI `linux.resources.devices`; an invalid rule is an
    /// error naming its index.
    ///
    /// ```
    /// use berth_ebpf_probes::DeviceFilter;
    /// use oci_spec::runtime::LinuxDeviceCgroup;
    /// let rules: Vec<LinuxDeviceCgroup> = vec![Default::default()]; // deny all
    /// let f = DeviceFilter::from_oci(&rules).unwrap();
    /// assert_eq!(f.rules().len(), 1);
    /// ```
    pub fn from_oci(rules: &[LinuxDeviceCgroup]) -> Result<Self> {
        let rules = rules
            .iter()
            .enumerate()
            .map(|(i, r)| DeviceRule::from_oci(i, r))
            .collect::<Result<Vec<_>>>()?;
        Ok(DeviceFilter { rules })
    }

    /// The default allowlist of a container's `/dev`: runc's
    /// (`libcontainer/specconv` `AllowedDevices`) without tun/tap, as runc
    /// 1.2.0 to 1.2.3 shipped it: deny all, then `mknod` (only) of any char
    /// and block device, and read, write, mknod of null (1:3), zero (1:5),
    /// full (1:7), random (1:8), urandom (1:9), tty (5:0), ptmx (5:2) and
    /// pts (136:*). Nothing else: not `/dev/console` (5:1, the host's
    /// console; runc dropped it in 1.0) and not `/dev/net/tun` (10:200),
    /// which runc removed in 1.2.0 to shrink the device attack surface and
    /// re-added in 1.2.4 only for workloads that `mknod` it; berth keeps it
    /// out (add a rule for it with [`rule`](Self::rule)). Major/minor
    /// numbers: the kernel's Documentation/admin-guide/devices.txt.
    ///
    /// ```
    /// let f = berth_ebpf_probes::DeviceFilter::container_default();
    /// assert_eq!(f.rules().len(), 11);
    /// ```
    pub fn container_default() -> Self {
        use DeviceKind::{All, Block, Char};
        let rwm = DeviceAccess::all();
        let mut f = DeviceFilter::new();
        f.rule(DeviceRule::deny(All, None, None, rwm));
        f.rule(DeviceRule::allow(Char, None, None, DeviceAccess::MKNOD));
        f.rule(DeviceRule::allow(Block, None, None, DeviceAccess::MKNOD));
        for (maj, min) in [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 2)] {
            f.rule(DeviceRule::allow(Char, Some(maj), Some(min), rwm));
        }
        f.rule(DeviceRule::allow(Char, Some(136), None, rwm));
        f
    }

    /// Compile to BPF instructions (validating every rule first).
    ///
    /// ```
    /// let insns = berth_ebpf_probes::DeviceFilter::container_default().compile().unwrap();
    /// assert!(insns.len() < 200);
    /// ```
    pub fn compile(&self) -> Result<Vec<Insn>> {
        for (i, r) in self.rules.iter().enumerate() {
            r.validate(i)?;
        }
        let mut a = Asm::new();
        // r7 = access << 16 | type, r8 = major, r9 = minor, loaded once and
        // never compared directly. Each rule folds its tests into one
        // mismatch word in r1 (xor with the wanted value, or-ed together)
        // and branches once: the verifier then never learns a constant in a
        // long-lived register, every path reaching a rule has the same state
        // and is pruned, and there is one branch per rule, which keeps
        // verification linear and cheap.
        a.load(Size::W, Reg::R7, Reg::R1, 0)
            .load(Size::W, Reg::R8, Reg::R1, 4)
            .load(Size::W, Reg::R9, Reg::R1, 8);
        // One shared exit per verdict, jumped to by every rule that decides
        // (the registers but r0 are dead there, so the verifier prunes the
        // paths into it): two instructions less per rule than an exit each.
        let (allow, deny) = (a.new_label(), a.new_label());
        let (mut used_allow, mut used_deny) = (false, false);
        // The verdict of the instructions after the last rule: deny (no rule
        // matched) unless a rule without conditions decided, which ends the
        // program there (nothing after it is reachable, and the verifier
        // rejects unreachable instructions).
        let mut fallthrough_allows = false;
        for r in self.rules.iter().rev() {
            // Type and access in one term on `access << 16 | type`: the type
            // must be equal and no requested access bit outside the rule's.
            let deny_bits = (!r.access.bits() & DeviceAccess::all().bits()) << 16;
            let (type_mask, type_value) = match r.kind {
                DeviceKind::All => (0, 0),
                DeviceKind::Char => (0xffff, berth_sys::bpf_abi::BPF_DEVCG_DEV_CHAR as i32),
                DeviceKind::Block => (0xffff, berth_sys::bpf_abi::BPF_DEVCG_DEV_BLOCK as i32),
            };
            let mask = deny_bits | type_mask;
            // (source register, and-mask or None, value to xor); values fit
            // in i32 (validated ≤ MAX_MAJOR / MAX_MINOR).
            let mut terms: Vec<(Reg, Option<i32>, i32)> = Vec::with_capacity(3);
            if mask != 0 {
                terms.push((Reg::R7, Some(mask as i32), type_value));
            }
            if let Some(m) = r.major {
                terms.push((Reg::R8, None, m as i32));
            }
            if let Some(m) = r.minor {
                terms.push((Reg::R9, None, m as i32));
            }
            if terms.is_empty() {
                fallthrough_allows = r.allow;
                break;
            }
            for (i, (src, and, value)) in terms.iter().enumerate() {
                let dst = if i == 0 { Reg::R1 } else { Reg::R2 };
                a.mov64_reg(dst, *src);
                if let Some(m) = and {
                    a.alu64_imm(AluOp::And, dst, *m);
                }
                if *value != 0 || and.is_none() {
                    a.alu64_imm(AluOp::Xor, dst, *value);
                }
                if i > 0 {
                    a.alu64_reg(AluOp::Or, Reg::R1, Reg::R2);
                }
            }
            if r.allow {
                used_allow = true;
                a.jmp_imm(JmpOp::Eq, Reg::R1, 0, allow);
            } else {
                used_deny = true;
                a.jmp_imm(JmpOp::Eq, Reg::R1, 0, deny);
            }
        }
        // The fallthrough verdict's exit first, then the other one if any
        // rule jumps to it.
        let exits = if fallthrough_allows {
            [(allow, 1, true), (deny, 0, used_deny)]
        } else {
            [(deny, 0, true), (allow, 1, used_allow)]
        };
        for (label, verdict, needed) in exits {
            if needed {
                a.bind(label).mov64_imm(Reg::R0, verdict).exit();
            }
        }
        a.build()
    }

    /// Compile and load (`BPF_PROG_LOAD`) without attaching.
    ///
    /// ```no_run
    /// let prog = berth_ebpf_probes::DeviceFilter::container_default().load()?;
    /// println!("verified as program {}", prog.id()?);
    /// # Ok::<(), berth_ebpf_probes::Error>(())
    /// ```
    #[doc(alias("BPF_PROG_LOAD"))]
    pub fn load(&self) -> Result<Program> {
        sys::require_kernel(
            "cgroup device programs (BPF_PROG_TYPE_CGROUP_DEVICE)",
            (4, 15),
        )?;
        let insns = self.compile()?;
        Program::load(
            ProgType::CgroupDevice,
            "berth_devices",
            &insns,
            "Apache-2.0 OR MIT",
            None,
        )
    }

    /// Compile, load and attach to the cgroup directory `cgroup` with
    /// `BPF_F_ALLOW_MULTI`. The handle keeps a duplicate of the cgroup fd.
    ///
    /// ```no_run
    /// use berth_ebpf_probes::{open_cgroup, DeviceFilter};
    /// let cg = open_cgroup("/sys/fs/cgroup/web-1")?;
    /// let filter = DeviceFilter::container_default().attach(&cg)?;
    /// filter.keep_attached(); // lives as long as the cgroup
    /// # Ok::<(), berth_ebpf_probes::Error>(())
    /// ```
    #[doc(alias("BPF_PROG_ATTACH"))]
    pub fn attach(&self, cgroup: impl AsFd) -> Result<AttachedDeviceFilter> {
        let cgroup = dup(cgroup.as_fd())?;
        let prog = self.load()?;
        sys::attach_cgroup(
            cgroup.as_fd(),
            &prog,
            AttachType::CgroupDevice,
            BPF_F_ALLOW_MULTI,
            None,
        )?;
        tracing::debug!(
            cgroup_fd = cgroup.as_raw_fd(),
            rules = self.rules.len(),
            "device filter attached"
        );
        Ok(AttachedDeviceFilter {
            cgroup,
            prog: Some(prog),
        })
    }
}

pub(crate) fn dup(fd: BorrowedFd<'_>) -> Result<OwnedFd> {
    fd.try_clone_to_owned().map_err(|source| Error::Syscall {
        op: format!("dup of cgroup fd {}", fd.as_raw_fd()),
        source,
    })
}

/// A device filter attached to a cgroup; detached on drop (best effort)
/// or by [`detach`](Self::detach), which reports the error.
///
/// ```no_run
/// use berth_ebpf_probes::DeviceFilter;
/// let cg = std::fs::File::open("/sys/fs/cgroup/my-job")?;
/// let attached = DeviceFilter::container_default().attach(&cg)?; // BPF_PROG_ATTACH
/// println!("program id {}", attached.program_id()?);
/// attached.detach()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[doc(alias("BPF_CGROUP_DEVICE", "BPF_PROG_ATTACH"))]
pub struct AttachedDeviceFilter {
    cgroup: OwnedFd,
    prog: Option<Program>,
}

impl AttachedDeviceFilter {
    /// Swap in `filter` atomically: `BPF_F_REPLACE` (Linux 5.6) replaces the
    /// old program in place, so the cgroup is never without a filter and
    /// never has two. On older kernels the new program is attached first and
    /// the old one detached after. On error the old filter stays attached.
    ///
    /// ```no_run
    /// use berth_ebpf_probes::{open_cgroup, DeviceFilter};
    /// let cg = open_cgroup("/sys/fs/cgroup/unified/web-1")?;
    /// let mut h = DeviceFilter::new().attach(&cg)?;
    /// h.replace(&DeviceFilter::container_default())?;
    /// # Ok::<(), berth_ebpf_probes::Error>(())
    /// ```
    pub fn replace(&mut self, filter: &DeviceFilter) -> Result<()> {
        let new = filter.load()?;
        let old = self.prog.as_ref();
        let atomic = sys::kernel_version().0 >= (5, 6);
        if atomic {
            sys::attach_cgroup(
                self.cgroup.as_fd(),
                &new,
                AttachType::CgroupDevice,
                BPF_F_ALLOW_MULTI | if old.is_some() { BPF_F_REPLACE } else { 0 },
                old,
            )?;
        } else {
            sys::attach_cgroup(
                self.cgroup.as_fd(),
                &new,
                AttachType::CgroupDevice,
                BPF_F_ALLOW_MULTI,
                None,
            )?;
            if let Some(old) = old {
                if let Err(e) =
                    sys::detach_cgroup(self.cgroup.as_fd(), old, AttachType::CgroupDevice)
                {
                    // Roll back: keep exactly one program attached.
                    let _ = sys::detach_cgroup(self.cgroup.as_fd(), &new, AttachType::CgroupDevice);
                    return Err(e);
                }
            }
        }
        self.prog = Some(new);
        Ok(())
    }

    /// The attached program's kernel id (as `BPF_PROG_QUERY` lists it).
    pub fn program_id(&self) -> Result<u32> {
        match &self.prog {
            Some(p) => p.id(),
            None => Err(Error::Syscall {
                op: "program id of a detached device filter".into(),
                source: std::io::Error::from_raw_os_error(libc::ENOENT),
            }),
        }
    }

    /// The cgroup directory fd the filter is attached to.
    pub fn cgroup(&self) -> BorrowedFd<'_> {
        self.cgroup.as_fd()
    }

    /// Detach now, reporting failure.
    pub fn detach(mut self) -> Result<()> {
        self.detach_inner()
    }

    /// Leave the filter attached after this handle is gone: it then lives
    /// as long as the cgroup (for a runtime process that exits while its
    /// container keeps running).
    pub fn keep_attached(mut self) {
        self.prog = None;
    }

    fn detach_inner(&mut self) -> Result<()> {
        match self.prog.take() {
            Some(p) => sys::detach_cgroup(self.cgroup.as_fd(), &p, AttachType::CgroupDevice),
            None => Ok(()),
        }
    }
}

impl Drop for AttachedDeviceFilter {
    fn drop(&mut self) {
        if let Err(e) = self.detach_inner() {
            tracing::warn!(error = %e, "detaching device filter on drop failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(feature = "oci")]
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    /// Interpret a compiled device program on one request (a tiny BPF
    /// interpreter for the instructions `compile` emits).
    fn run(prog: &[Insn], kind: u32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [(access << 16) | kind, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let dst = (i.regs & 0xf) as usize;
            let src = (i.regs >> 4) as usize;
            pc += 1;
            match i.code {
                0x61 => r[dst] = ctx[(i.off / 4) as usize] as u64,
                0xbf => r[dst] = r[src],
                0xb7 => r[dst] = i.imm as i64 as u64,
                0x57 => r[dst] &= i.imm as i64 as u64,
                0xa7 => r[dst] ^= i.imm as i64 as u64,
                0x4f => r[dst] |= r[src],
                0x77 => r[dst] >>= i.imm,
                0x55 => {
                    if r[dst] != i.imm as i64 as u64 {
                        pc = (pc as i64 + i.off as i64) as usize;
                    }
                }
                0x15 => {
                    if r[dst] == i.imm as i64 as u64 {
                        pc = (pc as i64 + i.off as i64) as usize;
                    }
                }
                0x05 => pc = (pc as i64 + i.off as i64) as usize,
                0x95 => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    const R: u32 = 2;
    const W: u32 = 4;
    const M: u32 = 1;
    const CHR: u32 = 2;
    const BLK: u32 = 1;

    #[test]
    fn default_allowlist_semantics() {
        let p = DeviceFilter::container_default().compile().unwrap();
        assert_eq!(run(&p, CHR, R | W, 1, 3), 1, "null rw");
        assert_eq!(run(&p, CHR, R, 1, 9), 1, "urandom r");
        assert_eq!(run(&p, CHR, R | W, 136, 42), 1, "pts");
        assert_eq!(run(&p, CHR, R, 1, 1), 0, "/dev/mem denied");
        assert_eq!(run(&p, CHR, R | W, 5, 1), 0, "/dev/console denied");
        assert_eq!(run(&p, CHR, M, 5, 1), 1, "mknod of console allowed");
        assert_eq!(run(&p, CHR, R | W, 5, 2), 1, "ptmx");
        assert_eq!(run(&p, CHR, R | W, 10, 200), 0, "tun denied");
        assert_eq!(run(&p, CHR, R | W, 10, 229), 0, "fuse denied");
        assert_eq!(run(&p, BLK, R, 8, 0), 0, "sda read denied");
        assert_eq!(run(&p, BLK, M, 8, 0), 1, "mknod of block allowed");
        assert_eq!(
            run(&p, CHR, M | R, 4, 1),
            0,
            "mknod+read of other char denied"
        );
    }

    #[test]
    fn last_match_wins_and_default_deny() {
        let mut f = DeviceFilter::new();
        f.rule(DeviceRule::allow(
            DeviceKind::All,
            None,
            None,
            DeviceAccess::all(),
        ));
        f.rule(DeviceRule::deny(
            DeviceKind::Char,
            Some(1),
            None,
            DeviceAccess::WRITE,
        ));
        let p = f.compile().unwrap();
        assert_eq!(run(&p, CHR, W, 1, 3), 0);
        assert_eq!(run(&p, CHR, R, 1, 3), 1, "read not covered by the deny");
        assert_eq!(
            run(&p, CHR, R | W, 1, 3),
            1,
            "rw is not a subset of w: deny does not match"
        );
        assert_eq!(run(&p, BLK, W, 1, 3), 1);
        let empty = DeviceFilter::new().compile().unwrap();
        assert_eq!(run(&empty, CHR, R, 1, 3), 0);
        assert_eq!(empty.len(), 5);
    }

    #[test]
    fn unconditional_rule_cuts_dead_code() {
        let mut f = DeviceFilter::new();
        f.rule(DeviceRule::allow(
            DeviceKind::Char,
            Some(1),
            Some(3),
            DeviceAccess::all(),
        ));
        f.rule(DeviceRule::deny(
            DeviceKind::All,
            None,
            None,
            DeviceAccess::all(),
        ));
        let p = f.compile().unwrap();
        // 3 ctx loads + mov + exit: the earlier rule is unreachable and not emitted.
        assert_eq!(p.len(), 5);
        assert_eq!(run(&p, CHR, R, 1, 3), 0);
    }

    #[cfg(feature = "oci")]
    #[test]
    fn oci_rules_convert_and_bad_ones_are_named() {
        let ok = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(1)
            .minor(-1)
            .access("rw")
            .build()
            .unwrap();
        let f = DeviceFilter::from_oci(&[Default::default(), ok]).unwrap();
        assert_eq!(
            f.rules()[1],
            DeviceRule::allow(
                DeviceKind::Char,
                Some(1),
                None,
                DeviceAccess::READ | DeviceAccess::WRITE
            )
        );
        assert_eq!(
            f.rules()[0],
            DeviceRule::deny(DeviceKind::All, None, None, DeviceAccess::all())
        );
        let bad = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .access("rwx")
            .build()
            .unwrap();
        let e = DeviceFilter::from_oci(&[Default::default(), bad]).unwrap_err();
        assert!(
            matches!(e, Error::InvalidDeviceRule { index: 1, .. }),
            "{e}"
        );
        let fifo = LinuxDeviceCgroupBuilder::default()
            .typ(LinuxDeviceType::P)
            .build()
            .unwrap();
        assert!(DeviceFilter::from_oci(&[fifo]).is_err());
        let huge = LinuxDeviceCgroupBuilder::default()
            .major(5000)
            .build()
            .unwrap();
        assert!(DeviceFilter::from_oci(&[huge])
            .unwrap_err()
            .to_string()
            .contains("major 5000"));
        let mut f = DeviceFilter::new();
        f.rule(DeviceRule::allow(
            DeviceKind::Char,
            None,
            None,
            DeviceAccess::empty(),
        ));
        assert!(matches!(
            f.compile(),
            Err(Error::InvalidDeviceRule { index: 0, .. })
        ));
    }
}
