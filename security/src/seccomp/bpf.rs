//! Classic BPF generation for seccomp filters.
//!
//! Layout of a generated program:
//! 1. load `seccomp_data.arch`; anything but `AUDIT_ARCH_X86_64` is killed
//!    (`SECCOMP_RET_KILL_PROCESS`): the i386 ABI (`int 0x80`) has other
//!    syscall numbers and must not slip through a table built for x86_64;
//! 2. load `seccomp_data.nr`; numbers with `__X32_SYSCALL_BIT` (0x40000000,
//!    the x32 ABI, which shares `AUDIT_ARCH_X86_64`) are killed the same way;
//! 3. a binary search over the syscall numbers that have rules (`jge` splits,
//!    `jeq` leaves); a syscall whose only rule is unconditional returns its
//!    action right in the leaf, others jump to their block;
//! 4. per-syscall blocks: the rules in kernel precedence order, each a chain
//!    of 64-bit argument comparisons done as two 32-bit halves (x86_64 is
//!    little-endian: low half at `16 + 8*i`, high half at `20 + 8*i`); the
//!    first rule whose comparisons all hold returns its action, and the end
//!    of the block returns the default action.
//!
//! Conditional jumps have 8-bit offsets, so every long jump goes through a
//! `ja` (32-bit offset); the resolver checks every offset.

use std::collections::BTreeMap;
use std::fmt;

use super::{Action, ArgCmp, CmpOp};
use crate::error::{Error, Result};

const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD (0) | BPF_W (0) | BPF_ABS (0x20)
const BPF_JMP_JA: u16 = 0x05; // BPF_JMP (5) | BPF_JA (0)
const BPF_JEQ_K: u16 = 0x05 | 0x10; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_JGT_K: u16 = 0x05 | 0x20;
const BPF_JGE_K: u16 = 0x05 | 0x30;
const BPF_AND_K: u16 = 0x04 | 0x50; // BPF_ALU | BPF_AND | BPF_K
const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K

/// `AUDIT_ARCH_X86_64` (`<linux/audit.h>`): EM_X86_64 | 64BIT | LE.
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// `__X32_SYSCALL_BIT` (`<asm/unistd.h>`).
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// `BPF_MAXINSNS` (`<linux/bpf_common.h>`).
const BPF_MAXINSNS: usize = 4096;

/// Offsets into `struct seccomp_data` (`<linux/seccomp.h>`).
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
fn off_arg_lo(i: u8) -> u32 {
    16 + 8 * u32::from(i)
}
fn off_arg_hi(i: u8) -> u32 {
    off_arg_lo(i) + 4
}

/// A compiled seccomp filter, ready to install in a child.
#[derive(Clone)]
pub struct SeccompProgram {
    pub(crate) filter: Vec<libc::sock_filter>,
    pub(crate) flags: u32,
}

impl fmt::Debug for SeccompProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeccompProgram")
            .field("instructions", &self.filter.len())
            .field("flags", &self.flags)
            .finish()
    }
}

impl SeccompProgram {
    /// Number of BPF instructions.
    pub fn len(&self) -> usize {
        self.filter.len()
    }

    /// Whether the program is empty (never true for a compiled profile).
    pub fn is_empty(&self) -> bool {
        self.filter.is_empty()
    }

    /// The `SECCOMP_FILTER_FLAG_*` flags passed at install.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// The instructions as `(code, jt, jf, k)` tuples (for inspection and tests).
    pub fn instructions(&self) -> Vec<(u16, u8, u8, u32)> {
        self.filter
            .iter()
            .map(|i| (i.code, i.jt, i.jf, i.k))
            .collect()
    }

    /// Install the filter on the calling thread with
    /// `seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog)` (Linux 3.17).
    ///
    /// Needs `no_new_privs` or `CAP_SYS_ADMIN`. Async-signal-safe: one raw
    /// syscall, no allocation. Returns the errno on failure.
    ///
    /// # Safety
    /// Irreversibly restricts the calling thread (and its future children);
    /// call it in a child that is about to `execve`, or a thread you own.
    pub unsafe fn install(&self) -> std::result::Result<(), i32> {
        let prog = libc::sock_fprog {
            // Length checked against BPF_MAXINSNS at compile time, fits u16.
            len: self.filter.len() as u16,
            filter: self.filter.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `prog` points at a valid program that outlives the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                1 as libc::c_ulong, // SECCOMP_SET_MODE_FILTER
                self.flags as libc::c_ulong,
                &prog as *const libc::sock_fprog,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(crate::apply::errno())
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Label(usize);

#[derive(Clone, Copy, Debug)]
enum Tgt {
    Next,
    L(Label),
}

#[derive(Debug)]
enum Ins {
    Stmt(u16, u32),
    Cond(u16, u32, Tgt, Tgt),
    Ja(Label),
    Bind(Label),
}

#[derive(Default)]
struct Asm {
    ins: Vec<Ins>,
    labels: usize,
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }
    fn ld(&mut self, off: u32) {
        self.ins.push(Ins::Stmt(BPF_LD_W_ABS, off));
    }
    fn and(&mut self, k: u32) {
        self.ins.push(Ins::Stmt(BPF_AND_K, k));
    }
    fn ret(&mut self, k: u32) {
        self.ins.push(Ins::Stmt(BPF_RET_K, k));
    }
    fn cond(&mut self, code: u16, k: u32, jt: Tgt, jf: Tgt) {
        self.ins.push(Ins::Cond(code, k, jt, jf));
    }
    fn ja(&mut self, l: Label) {
        self.ins.push(Ins::Ja(l));
    }
    fn bind(&mut self, l: Label) {
        self.ins.push(Ins::Bind(l));
    }

    fn finish(self) -> Result<Vec<libc::sock_filter>> {
        let mut pos = vec![usize::MAX; self.labels];
        let mut n = 0usize;
        for i in &self.ins {
            match i {
                Ins::Bind(l) => pos[l.0] = n,
                _ => n += 1,
            }
        }
        if n > BPF_MAXINSNS {
            return Err(Error::ProgramTooLarge { len: n });
        }
        let mut out = Vec::with_capacity(n);
        let mut at = 0usize;
        let too_far = || Error::InvalidProfile {
            reason: "internal: BPF jump out of range".into(),
        };
        for i in &self.ins {
            let insn = match *i {
                Ins::Bind(_) => continue,
                Ins::Stmt(code, k) => libc::sock_filter {
                    code,
                    jt: 0,
                    jf: 0,
                    k,
                },
                Ins::Cond(code, k, jt, jf) => {
                    let off = |t: Tgt| -> Result<u8> {
                        match t {
                            Tgt::Next => Ok(0),
                            Tgt::L(l) => {
                                let d = pos[l.0].checked_sub(at + 1).ok_or_else(too_far)?;
                                u8::try_from(d).map_err(|_| too_far())
                            }
                        }
                    };
                    libc::sock_filter {
                        code,
                        jt: off(jt)?,
                        jf: off(jf)?,
                        k,
                    }
                }
                Ins::Ja(l) => {
                    let d = pos[l.0].checked_sub(at + 1).ok_or_else(too_far)?;
                    libc::sock_filter {
                        code: BPF_JMP_JA,
                        jt: 0,
                        jf: 0,
                        k: u32::try_from(d).map_err(|_| too_far())?,
                    }
                }
            };
            out.push(insn);
            at += 1;
        }
        Ok(out)
    }
}

type Rules = Vec<(Action, Vec<ArgCmp>)>;

/// Emit the checks for one comparison: fall through when it holds, jump to `fail` when not.
fn emit_cmp(a: &mut Asm, c: &ArgCmp, fail: Label) {
    let (vh, vl) = ((c.value >> 32) as u32, c.value as u32);
    let pass = a.label();
    let f = Tgt::L(fail);
    let p = Tgt::L(pass);
    let n = Tgt::Next;
    match c.op {
        CmpOp::Eq => {
            a.ld(off_arg_hi(c.index));
            a.cond(BPF_JEQ_K, vh, n, f);
            a.ld(off_arg_lo(c.index));
            a.cond(BPF_JEQ_K, vl, n, f);
        }
        CmpOp::Ne => {
            a.ld(off_arg_hi(c.index));
            a.cond(BPF_JEQ_K, vh, n, p);
            a.ld(off_arg_lo(c.index));
            a.cond(BPF_JEQ_K, vl, f, n);
        }
        CmpOp::MaskedEq => {
            let (mh, ml) = ((c.value >> 32) as u32, c.value as u32);
            let (wh, wl) = ((c.value_two >> 32) as u32, c.value_two as u32);
            a.ld(off_arg_hi(c.index));
            a.and(mh);
            a.cond(BPF_JEQ_K, wh, n, f);
            a.ld(off_arg_lo(c.index));
            a.and(ml);
            a.cond(BPF_JEQ_K, wl, n, f);
        }
        CmpOp::Gt | CmpOp::Ge => {
            // hi > vh: pass; hi == vh: decide on the low half; else fail.
            a.ld(off_arg_hi(c.index));
            a.cond(BPF_JGT_K, vh, p, n);
            a.cond(BPF_JEQ_K, vh, n, f);
            a.ld(off_arg_lo(c.index));
            let code = if c.op == CmpOp::Gt {
                BPF_JGT_K
            } else {
                BPF_JGE_K
            };
            a.cond(code, vl, n, f);
        }
        CmpOp::Lt | CmpOp::Le => {
            // Lt is "not Ge", Le is "not Gt".
            a.ld(off_arg_hi(c.index));
            a.cond(BPF_JGT_K, vh, f, n);
            a.cond(BPF_JEQ_K, vh, n, p);
            a.ld(off_arg_lo(c.index));
            let code = if c.op == CmpOp::Lt {
                BPF_JGE_K
            } else {
                BPF_JGT_K
            };
            a.cond(code, vl, f, n);
        }
    }
    a.bind(pass);
}

/// What a leaf of the dispatch tree does for a range of syscall numbers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Leaf {
    Ret(u32),
    Block(Label),
}

/// Instructions [`emit_tree`] emits for `ranges`.
fn tree_size(ranges: &[(u32, Leaf)]) -> usize {
    if ranges.len() <= 1 {
        return ranges.len();
    }
    let mid = ranges.len() / 2;
    let left = tree_size(&ranges[..mid]);
    // One `jge`, plus a `ja` trampoline when the left side is too long for
    // an 8-bit jump offset.
    1 + usize::from(left > 255) + left + tree_size(&ranges[mid..])
}

/// Binary search over ranges: `ranges[i]` covers `[ranges[i].0, ranges[i+1].0)`.
/// Neighbouring numbers with the same unconditional result share one range,
/// so the tree has one leaf per run, not per syscall.
fn emit_tree(a: &mut Asm, ranges: &[(u32, Leaf)]) {
    if let [(_, leaf)] = ranges {
        match *leaf {
            Leaf::Ret(k) => a.ret(k),
            Leaf::Block(l) => a.ja(l),
        }
        return;
    }
    let mid = ranges.len() / 2;
    let right = a.label();
    if tree_size(&ranges[..mid]) <= 255 {
        a.cond(BPF_JGE_K, ranges[mid].0, Tgt::L(right), Tgt::Next);
    } else {
        let left = a.label();
        a.cond(BPF_JGE_K, ranges[mid].0, Tgt::Next, Tgt::L(left));
        a.ja(right);
        a.bind(left);
    }
    emit_tree(a, &ranges[..mid]);
    a.bind(right);
    emit_tree(a, &ranges[mid..]);
}

pub(super) fn compile(
    default_action: Action,
    flags: u32,
    by_nr: BTreeMap<u32, Rules>,
) -> Result<SeccompProgram> {
    let default = default_action.ret();
    let mut a = Asm::default();
    let bad_arch = Action::KillProcess.ret();

    // 1. architecture
    a.ld(OFF_ARCH);
    let arch_ok = a.label();
    a.cond(BPF_JEQ_K, AUDIT_ARCH_X86_64, Tgt::L(arch_ok), Tgt::Next);
    a.ret(bad_arch);
    a.bind(arch_ok);
    // 2. syscall number, x32 ABI
    a.ld(OFF_NR);
    let native = a.label();
    a.cond(BPF_JGE_K, X32_SYSCALL_BIT, Tgt::Next, Tgt::L(native));
    a.ret(bad_arch);
    a.bind(native);

    // Sort each syscall's rules by precedence (stable: profile order among equals)
    // and drop what follows an unconditional rule, it can never be reached.
    let mut leaves: Vec<(u32, Leaf)> = Vec::new();
    let mut blocks: Vec<(Label, Rules)> = Vec::new();
    for (nr, mut rules) in by_nr {
        rules.sort_by_key(|(act, _)| std::cmp::Reverse(act.precedence()));
        if let Some(i) = rules.iter().position(|(_, args)| args.is_empty()) {
            rules.truncate(i + 1);
        }
        match rules.as_slice() {
            [(act, args)] if args.is_empty() => {
                leaves.push((nr, Leaf::Ret(act.ret())));
            }
            _ => {
                let l = a.label();
                leaves.push((nr, Leaf::Block(l)));
                blocks.push((l, rules));
            }
        }
    }
    // Cover [0, X32_SYSCALL_BIT) with ranges, merging equal neighbours.
    let mut ranges: Vec<(u32, Leaf)> = vec![(0, Leaf::Ret(default))];
    let mut push = |start: u32, leaf: Leaf| {
        if ranges.last().map(|r| r.1) != Some(leaf) {
            if ranges.last().map(|r| r.0) == Some(start) {
                ranges.pop();
            }
            if ranges.last().map(|r| r.1) != Some(leaf) {
                ranges.push((start, leaf));
            }
        }
    };
    for (nr, leaf) in &leaves {
        push(*nr, *leaf);
        push(nr + 1, Leaf::Ret(default));
    }
    emit_tree(&mut a, &ranges);

    for (label, rules) in blocks {
        a.bind(label);
        for (act, args) in rules {
            let fail = a.label();
            for c in &args {
                emit_cmp(&mut a, c, fail);
            }
            a.ret(act.ret());
            a.bind(fail);
        }
        a.ret(default);
    }
    Ok(SeccompProgram {
        filter: a.finish()?,
        flags,
    })
}

/// A tiny classic-BPF interpreter for tests: runs `prog` on a `seccomp_data`.
#[cfg(test)]
pub(crate) fn run(prog: &SeccompProgram, arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_le_bytes());
    data[4..8].copy_from_slice(&arch.to_le_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
    }
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    loop {
        let i = prog.filter[pc];
        pc += 1;
        match i.code {
            BPF_LD_W_ABS => {
                let o = i.k as usize;
                acc = u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
            }
            BPF_AND_K => acc &= i.k,
            BPF_RET_K => return i.k,
            BPF_JMP_JA => pc += i.k as usize,
            BPF_JEQ_K | BPF_JGT_K | BPF_JGE_K => {
                let t = match i.code {
                    BPF_JEQ_K => acc == i.k,
                    BPF_JGT_K => acc > i.k,
                    _ => acc >= i.k,
                };
                pc += if t { i.jt as usize } else { i.jf as usize };
            }
            c => panic!("unexpected opcode {c:#x}"),
        }
    }
}

#[cfg(test)]
pub(crate) const TEST_ARCH: u32 = AUDIT_ARCH_X86_64;
