//! A differential oracle for the seccomp compiler: run the compiled classic
//! BPF program in an interpreter on probe `seccomp_data` and compare each
//! verdict with the profile's meaning evaluated directly.
//!
//! The meaning (berth-security's documented semantics, as runc/libseccomp):
//! a non-x86_64 `arch` or an x32 syscall number (`__X32_SYSCALL_BIT`) is
//! `SECCOMP_RET_KILL_PROCESS`; otherwise, of the rules that apply in the
//! context (`includes`/`excludes`) and name the syscall, the matching one
//! with the highest kernel precedence wins, profile order among equals; two
//! comparisons of one argument in a rule are OR-ed, all others AND-ed;
//! comparisons are unsigned 64-bit; no match gives the default action.

use std::collections::HashMap;

use berth_security::seccomp::{max_syscall_number, syscall_number};
use berth_security::{Action, ArgCmp, CmpOp, CompileContext, SeccompProfile, SyscallRule};

/// `AUDIT_ARCH_X86_64` (`<linux/audit.h>`).
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// `AUDIT_ARCH_I386`.
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
/// `__X32_SYSCALL_BIT` (`<asm/unistd.h>`).
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// `SECCOMP_RET_KILL_PROCESS`.
const RET_KILL_PROCESS: u32 = 0x8000_0000;
/// At most this many probes per compiled program (keeps an execution fast).
const MAX_PROBES: usize = 4000;

/// Run `insns` on one `seccomp_data`; `Err` on anything the kernel's
/// checker would reject at run time (it never should, after [`crate::check_bpf`]).
pub fn run_bpf(
    insns: &[(u16, u8, u8, u32)],
    arch: u32,
    nr: u32,
    args: [u64; 6],
) -> Result<u32, String> {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_le_bytes());
    data[4..8].copy_from_slice(&arch.to_le_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
    }
    let (mut acc, mut x, mut pc) = (0u32, 0u32, 0usize);
    // Classic BPF only jumps forward, so a program ends within len steps.
    for _ in 0..=insns.len() {
        let &(code, jt, jf, k) = insns
            .get(pc)
            .ok_or_else(|| format!("pc {pc} out of the program"))?;
        pc += 1;
        match code {
            0x20 => {
                let o = k as usize;
                let w = data.get(o..o + 4).ok_or_else(|| format!("load at {o}"))?;
                acc = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            }
            0x80 => acc = 64,                  // BPF_LD | BPF_W | BPF_LEN
            0x00 => acc = k,                   // BPF_LD | BPF_IMM
            0x01 => x = k,                     // BPF_LDX | BPF_IMM
            0x54 => acc &= k,                  // BPF_ALU | BPF_AND | BPF_K
            0x5c => acc &= x,                  // BPF_ALU | BPF_AND | BPF_X
            0x44 => acc |= k,                  // BPF_ALU | BPF_OR | BPF_K
            0x74 => acc = acc.wrapping_shr(k), // BPF_ALU | BPF_RSH | BPF_K
            0x64 => acc = acc.wrapping_shl(k), // BPF_ALU | BPF_LSH | BPF_K
            0x87 => acc = x,                   // BPF_MISC | BPF_TXA
            0x07 => x = acc,                   // BPF_MISC | BPF_TAX
            0x06 => return Ok(k),              // BPF_RET | BPF_K
            0x16 => return Ok(acc),            // BPF_RET | BPF_A
            0x05 => pc += k as usize,          // BPF_JMP | BPF_JA
            0x15 | 0x25 | 0x35 | 0x45 | 0x1d | 0x2d | 0x3d | 0x4d => {
                let v = if code & 0x08 != 0 { x } else { k };
                let t = match code & 0xf0 {
                    0x10 => acc == v,
                    0x20 => acc > v,
                    0x30 => acc >= v,
                    _ => acc & v != 0,
                };
                pc += usize::from(if t { jt } else { jf });
            }
            c => return Err(format!("opcode {c:#x} at {}", pc - 1)),
        }
    }
    Err("no return within the program's length".into())
}

fn precedence(a: Action) -> u8 {
    match a {
        Action::KillProcess => 7,
        Action::KillThread => 6,
        Action::Trap(_) => 5,
        Action::Errno(_) => 4,
        Action::Trace(_) => 3,
        Action::Log => 2,
        Action::Allow => 1,
    }
}

fn native_arch(a: &str) -> bool {
    matches!(
        a,
        "amd64" | "x86_64" | "SCMP_ARCH_X86_64" | "SCMP_ARCH_NATIVE"
    )
}

fn applies(r: &SyscallRule, ctx: &CompileContext) -> bool {
    let (inc, exc) = (&r.includes, &r.excludes);
    inc.caps.is_subset(ctx.caps)
        && (inc.arches.is_empty() || inc.arches.iter().any(|a| native_arch(a)))
        && inc.min_kernel.is_none_or(|k| ctx.kernel >= k)
        && exc.caps.intersection(ctx.caps).is_empty()
        && !exc.arches.iter().any(|a| native_arch(a))
        && exc.min_kernel.is_none_or(|k| ctx.kernel < k)
}

fn holds(c: &ArgCmp, args: &[u64; 6]) -> bool {
    let a = args[usize::from(c.index)];
    match c.op {
        CmpOp::Eq => a == c.value,
        CmpOp::Ne => a != c.value,
        CmpOp::Lt => a < c.value,
        CmpOp::Le => a <= c.value,
        CmpOp::Gt => a > c.value,
        CmpOp::Ge => a >= c.value,
        CmpOp::MaskedEq => a & c.value == c.value_two,
    }
}

fn rule_matches(r: &SyscallRule, args: &[u64; 6]) -> bool {
    let mut seen = [false; 6];
    let same_index = r.args.iter().any(|a| {
        let i = usize::from(a.index);
        std::mem::replace(&mut seen[i], true)
    });
    if same_index {
        r.args.iter().any(|c| holds(c, args))
    } else {
        r.args.iter().all(|c| holds(c, args))
    }
}

/// The rules that apply in `ctx`, per syscall number they name, in profile order.
pub fn rules_by_nr<'a>(
    p: &'a SeccompProfile,
    ctx: &CompileContext,
) -> HashMap<u32, Vec<&'a SyscallRule>> {
    let mut m: HashMap<u32, Vec<&SyscallRule>> = HashMap::new();
    for r in p.rules.iter().filter(|r| applies(r, ctx)) {
        for n in &r.names {
            if let Some(nr) = syscall_number(n) {
                let v = m.entry(nr).or_default();
                if !v.last().is_some_and(|l| std::ptr::eq(*l, r)) {
                    v.push(r);
                }
            }
        }
    }
    m
}

/// The verdict the profile means for one `seccomp_data` (`by_nr` from [`rules_by_nr`]).
pub fn expected(
    default: Action,
    by_nr: &HashMap<u32, Vec<&SyscallRule>>,
    arch: u32,
    nr: u32,
    args: &[u64; 6],
) -> u32 {
    if arch != AUDIT_ARCH_X86_64 || nr >= X32_SYSCALL_BIT {
        return RET_KILL_PROCESS;
    }
    let mut best: Option<Action> = None;
    for r in by_nr.get(&nr).into_iter().flatten() {
        if rule_matches(r, args) && best.is_none_or(|b| precedence(r.action) > precedence(b)) {
            best = Some(r.action);
        }
    }
    best.unwrap_or(default).ret()
}

/// Values around a comparison's boundary, in both 32-bit halves.
fn boundary(c: &ArgCmp) -> Vec<u64> {
    let v = c.value;
    let mut out = vec![
        v,
        v.wrapping_add(1),
        v.wrapping_sub(1),
        v ^ (1 << 32),
        v.wrapping_add(1 << 32),
        v.wrapping_sub(1 << 32),
        v & 0xffff_ffff,
        v | 0xffff_ffff_0000_0000,
    ];
    if c.op == CmpOp::MaskedEq {
        let w = c.value_two;
        out.extend([w, w | !v, w ^ 1, w ^ (1 << 32), w ^ (1 << 63)]);
    }
    out
}

/// A value for which `c` holds, if an easy one exists.
fn satisfying(c: &ArgCmp) -> u64 {
    match c.op {
        CmpOp::Eq | CmpOp::Le | CmpOp::Ge => c.value,
        CmpOp::Ne | CmpOp::Gt => c.value.wrapping_add(1),
        CmpOp::Lt => c.value.wrapping_sub(1),
        CmpOp::MaskedEq => c.value_two,
    }
}

/// Compare the program with the profile's meaning on probes built from the
/// profile: every syscall it names (and neighbours, the x32 and i386 ABIs,
/// numbers past the table), with argument values at each comparison's
/// boundary and argument vectors that satisfy each rule. Panics on the
/// first difference.
pub fn check(p: &SeccompProfile, ctx: &CompileContext, insns: &[(u16, u8, u8, u32)]) {
    let by_nr = rules_by_nr(p, ctx);
    let mut nrs: Vec<u32> = vec![0, max_syscall_number() + 1, X32_SYSCALL_BIT - 1, u32::MAX];
    for &nr in by_nr.keys() {
        nrs.extend([nr, nr.wrapping_sub(1), nr + 1, nr | X32_SYSCALL_BIT]);
    }
    // Names of rules that do not apply in `ctx` must get the default too.
    nrs.extend(
        p.rules
            .iter()
            .flat_map(|r| &r.names)
            .filter_map(|n| syscall_number(n)),
    );
    nrs.sort_unstable();
    nrs.dedup();
    let mut probes = 0usize;
    let mut probe = |arch: u32, nr: u32, args: [u64; 6]| {
        probes += 1;
        if probes > MAX_PROBES {
            return;
        }
        let want = expected(p.default_action, &by_nr, arch, nr, &args);
        match run_bpf(insns, arch, nr, args) {
            Ok(got) if got == want => {}
            got => panic!(
                "seccomp verdict differs for arch {arch:#x} nr {nr} args {args:x?}: \
                 program gives {got:x?}, the profile means {want:#x}\nprofile: {p:?}\ncontext: {ctx:?}"
            ),
        }
    };
    for &nr in &nrs {
        probe(AUDIT_ARCH_X86_64, nr, [0; 6]);
        probe(AUDIT_ARCH_X86_64, nr, [u64::MAX; 6]);
        let rules = by_nr.get(&nr).map(Vec::as_slice).unwrap_or_default();
        for r in rules {
            // Everything in the rule satisfied at once, then each argument
            // moved across its boundary in turn.
            let mut base = [0u64; 6];
            for c in &r.args {
                base[usize::from(c.index)] = satisfying(c);
            }
            probe(AUDIT_ARCH_X86_64, nr, base);
            for c in &r.args {
                for v in boundary(c) {
                    let mut a = base;
                    a[usize::from(c.index)] = v;
                    probe(AUDIT_ARCH_X86_64, nr, a);
                    let mut z = [0u64; 6];
                    z[usize::from(c.index)] = v;
                    probe(AUDIT_ARCH_X86_64, nr, z);
                }
            }
        }
    }
    if let Some(&nr) = nrs.first() {
        probe(AUDIT_ARCH_I386, nr, [0; 6]);
    }
}
