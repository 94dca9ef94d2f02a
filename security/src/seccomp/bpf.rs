//! Classic BPF generation for seccomp filters.
//!
//! Layout of a generated program:
//! 1. load `seccomp_data.arch`; anything but `AUDIT_ARCH_X86_64` is killed
//!    (`SECCOMP_RET_KILL_PROCESS`): the i386 ABI (`int 0x80`) has other
//!    syscall numbers and must not slip through a table built for x86_64;
//! 2. load `seccomp_data.nr` and find its range with a binary search (`jge`
//!    splits) over ranges of neighbouring numbers with the same result; the
//!    last range, numbers with `__X32_SYSCALL_BIT` (0x40000000, the x32 ABI,
//!    which shares `AUDIT_ARCH_X86_64`), is killed like a foreign arch. A
//!    single number whose neighbours share a result is a `jeq` exception
//!    inside their range instead of two more splits. The splits jump
//!    straight to one shared `ret` per distinct result, or to the block of a
//!    syscall with argument rules; the tree is balanced by how many syscall
//!    numbers each range covers (see [`EMULATED_NR`]);
//! 3. per-syscall blocks: the rules in kernel precedence order, each a chain
//!    of 64-bit argument comparisons done as two 32-bit halves (x86_64 is
//!    little-endian: low half at `16 + 8*i`, high half at `20 + 8*i`); the
//!    first rule whose comparisons all hold returns its action, and the end
//!    of the block returns the default action. A run of same-action rules
//!    that each test one argument for equality shares the high-half check.
//!
//! Only `ld` of `nr`/`arch`, `jeq`/`jge`/`ja` and `ret` are used before a
//! block, so the kernel's action cache (Linux 5.11) can still prove every
//! unconditionally allowed syscall allowed and skip the filter for it.
//!
//! Install cost (kernel 6.18, measured in `benches/benches/security.rs`):
//! a fixed part, then per instruction (classic → eBPF conversion, x86 JIT;
//! a classic jump with both targets taken becomes two eBPF instructions, so
//! one side falls through where it can), then one emulated walk of the
//! filter per syscall number for the action cache.
//!
//! Conditional jumps have 8-bit offsets. The compact layout needs every
//! target within 255 instructions; a profile too large for that is emitted
//! with one leaf instruction per range and `ja` trampolines (any size up to
//! `BPF_MAXINSNS`). The resolver checks every offset.

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
/// At most this many single-number exceptions (`jeq`) inside one range of
/// the dispatch tree, so no path gets long (each is one more step for every
/// syscall in that range).
const MAX_EXCEPTIONS: usize = 3;
/// `BPF_MAXINSNS` (`<linux/bpf_common.h>`).
const BPF_MAXINSNS: usize = libc::BPF_MAXINSNS as usize;

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
///
/// ```
/// use berth_security::{Action, CapSet, CompileContext, SeccompProfile, SyscallRule};
/// let program = SeccompProfile::new(Action::Errno(1))
///     .rule(SyscallRule::new(["getpid"], Action::Allow))
///     .compile(&CompileContext::new(CapSet::empty()))
///     .unwrap();
/// assert!(!program.is_empty()); // classic BPF: struct sock_filter[]
/// for (code, jt, jf, k) in program.instructions().iter().take(3) {
///     println!("{code:#06x} {jt} {jf} {k:#x}");
/// }
/// ```
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
        self.install_filter()
    }

    /// [`install`](Self::install) without its `unsafe` contract, for the
    /// crate's own child path (`PreparedSecurity::apply_in_child`).
    pub(crate) fn install_filter(&self) -> std::result::Result<(), i32> {
        berth_sys::child::seccomp_set_mode_filter(self.flags, &self.filter)
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

/// Why [`Asm::finish`] failed.
#[derive(Debug)]
enum AsmError {
    /// More than `BPF_MAXINSNS` instructions.
    TooLarge(usize),
    /// A conditional jump farther than 255 instructions (8-bit offset), or backwards.
    OutOfRange,
}

impl From<AsmError> for Error {
    fn from(e: AsmError) -> Error {
        match e {
            AsmError::TooLarge(len) => Error::ProgramTooLarge { len },
            AsmError::OutOfRange => Error::InvalidProfile {
                reason: "internal: BPF jump out of range".into(),
            },
        }
    }
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

    fn finish(self) -> std::result::Result<Vec<libc::sock_filter>, AsmError> {
        let mut pos = vec![usize::MAX; self.labels];
        let mut n = 0usize;
        for i in &self.ins {
            match i {
                Ins::Bind(l) => pos[l.0] = n,
                _ => n += 1,
            }
        }
        if n > BPF_MAXINSNS {
            return Err(AsmError::TooLarge(n));
        }
        let mut out = Vec::with_capacity(n);
        let mut at = 0usize;
        let too_far = || AsmError::OutOfRange;
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
                    let off = |t: Tgt| -> std::result::Result<u8, AsmError> {
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
            // A half with mask 0 and expected value 0 always holds (Docker's
            // clone filter has a 32-bit mask): no instructions for it.
            if (mh, wh) != (0, 0) {
                a.ld(off_arg_hi(c.index));
                a.and(mh);
                a.cond(BPF_JEQ_K, wh, n, f);
            }
            if (ml, wl) != (0, 0) {
                a.ld(off_arg_lo(c.index));
                a.and(ml);
                a.cond(BPF_JEQ_K, wl, n, f);
            }
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

/// One range of the compact dispatch tree: numbers from `start` up to the
/// next range's start get `leaf`, except the single numbers in `exc`
/// (tested with `jeq` before the leaf).
struct Seg {
    start: u32,
    leaf: Leaf,
    exc: Vec<(u32, Leaf)>,
    /// How many numbers below [`EMULATED_NR`] the range covers (plus one):
    /// the kernel emulates the filter once per such number at install.
    weight: u64,
}

/// The kernel's seccomp action cache (Linux 5.11, `seccomp_cache_prepare`)
/// runs the filter at install time for every syscall number below the
/// native table size (`NR_syscalls`, about 470 on x86_64 in 6.x), to find
/// those always allowed. A tree balanced by how many of these numbers each
/// range covers keeps that install-time walk short.
const EMULATED_NR: u64 = 512;

/// Fold single-number ranges whose neighbours share a result into that
/// neighbour as an exception: `[a, b) X, [b] Y, [b+1, c) X` becomes
/// `[a, c) X` with `b → Y`. One `jeq` replaces two `jge` splits.
fn with_exceptions(ranges: &[(u32, Leaf)]) -> Vec<Seg> {
    let end = |i: usize| ranges.get(i + 1).map_or(1u64 << 32, |r| u64::from(r.0));
    let weight = |from: u32, to: u64| to.min(EMULATED_NR).saturating_sub(u64::from(from));
    let mut segs: Vec<Seg> = Vec::new();
    let mut i = 0;
    while i < ranges.len() {
        let (start, leaf) = ranges[i];
        if let Some(last) = segs.last_mut() {
            if end(i) - u64::from(start) == 1
                && last.exc.len() < MAX_EXCEPTIONS
                && ranges.get(i + 1).is_some_and(|r| r.1 == last.leaf)
            {
                last.exc.push((start, leaf));
                last.weight += weight(start, end(i + 1));
                i += 2;
                continue;
            }
        }
        segs.push(Seg {
            start,
            leaf,
            exc: Vec::new(),
            weight: 1 + weight(start, end(i)),
        });
        i += 1;
    }
    segs
}

/// Where a leaf lives in the compact layout: returns are shared (one `ret`
/// per distinct value after the tree), blocks are their own label.
fn leaf_target(a: &mut Asm, rets: &mut BTreeMap<u32, Label>, leaf: Leaf) -> Label {
    match leaf {
        Leaf::Ret(k) => *rets.entry(k).or_insert_with(|| a.label()),
        Leaf::Block(l) => l,
    }
}

/// A range emitted in place: its exceptions, then its leaf.
fn emit_seg(a: &mut Asm, rets: &mut BTreeMap<u32, Label>, seg: &Seg) {
    for &(nr, leaf) in &seg.exc {
        let t = leaf_target(a, rets, leaf);
        a.cond(BPF_JEQ_K, nr, Tgt::L(t), Tgt::Next);
    }
    match seg.leaf {
        Leaf::Ret(k) => a.ret(k),
        Leaf::Block(l) => a.ja(l),
    }
}

/// Compact binary search: the splits jump straight to the shared returns
/// and blocks, so a leaf costs no instruction of its own. Conditional jumps
/// are arranged so that one side falls through whenever it can: the kernel
/// turns a cBPF jump with both targets taken into two eBPF instructions.
fn emit_compact(a: &mut Asm, rets: &mut BTreeMap<u32, Label>, segs: &[Seg]) {
    if let [seg] = segs {
        emit_seg(a, rets, seg);
        return;
    }
    // Split where the covered numbers balance (at least one range a side).
    let total: u64 = segs.iter().map(|s| s.weight).sum();
    let mut acc = 0u64;
    let mut mid = 1;
    let mut best = u64::MAX;
    for (i, seg) in segs[..segs.len() - 1].iter().enumerate() {
        acc += seg.weight;
        let diff = (2 * acc).abs_diff(total);
        if diff < best {
            best = diff;
            mid = i + 1;
        }
    }
    let (left, right) = segs.split_at(mid);
    let k = right[0].start;
    let direct = |s: &[Seg]| match s {
        [seg] if seg.exc.is_empty() => Some(seg.leaf),
        _ => None,
    };
    match (direct(left), direct(right)) {
        (Some(l), Some(r)) => {
            let (lt, rt) = (leaf_target(a, rets, l), leaf_target(a, rets, r));
            a.cond(BPF_JGE_K, k, Tgt::L(rt), Tgt::L(lt));
        }
        (Some(l), None) => {
            let lt = leaf_target(a, rets, l);
            a.cond(BPF_JGE_K, k, Tgt::Next, Tgt::L(lt));
            emit_compact(a, rets, right);
        }
        (None, Some(r)) => {
            let rt = leaf_target(a, rets, r);
            a.cond(BPF_JGE_K, k, Tgt::L(rt), Tgt::Next);
            emit_compact(a, rets, left);
        }
        (None, None) => {
            let rl = a.label();
            a.cond(BPF_JGE_K, k, Tgt::L(rl), Tgt::Next);
            emit_compact(a, rets, left);
            a.bind(rl);
            emit_compact(a, rets, right);
        }
    }
}

/// A run of rules with one action whose only condition is `arg[index] == v`
/// (Docker's `personality` list): one high-half check per distinct high
/// half, then one `jeq` per value instead of a full 64-bit compare per rule.
fn emit_eq_group(a: &mut Asm, act: Action, index: u8, values: &[u64]) {
    let mut by_hi: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for v in values {
        let los = by_hi.entry((v >> 32) as u32).or_default();
        if !los.contains(&(*v as u32)) {
            los.push(*v as u32);
        }
    }
    let hit = a.label();
    let after = a.label();
    let groups = by_hi.len();
    for (g, (hi, los)) in by_hi.into_iter().enumerate() {
        let last_group = g + 1 == groups;
        let next = if last_group { after } else { a.label() };
        a.ld(off_arg_hi(index));
        a.cond(BPF_JEQ_K, hi, Tgt::Next, Tgt::L(next));
        a.ld(off_arg_lo(index));
        for (i, lo) in los.iter().enumerate() {
            if last_group && i + 1 == los.len() {
                a.cond(BPF_JEQ_K, *lo, Tgt::Next, Tgt::L(after));
            } else {
                a.cond(BPF_JEQ_K, *lo, Tgt::L(hit), Tgt::Next);
            }
        }
        if !last_group {
            a.bind(next);
        }
    }
    a.bind(hit);
    a.ret(act.ret());
    a.bind(after);
}

/// The rules of one syscall in precedence order; the end returns `default`.
fn emit_block(a: &mut Asm, rules: &Rules, default: u32, compact: bool) {
    let single_eq = |r: &(Action, Vec<ArgCmp>)| match r.1.as_slice() {
        [c] if c.op == CmpOp::Eq => Some((r.0, c.index)),
        _ => None,
    };
    let mut i = 0;
    while i < rules.len() {
        if compact {
            if let Some(key) = single_eq(&rules[i]) {
                let n = rules[i..]
                    .iter()
                    .take_while(|r| single_eq(r) == Some(key))
                    .count();
                if n >= 2 {
                    let values: Vec<u64> = rules[i..i + n].iter().map(|r| r.1[0].value).collect();
                    emit_eq_group(a, key.0, key.1, &values);
                    i += n;
                    continue;
                }
            }
        }
        let (act, args) = &rules[i];
        let fail = a.label();
        for c in args {
            emit_cmp(a, c, fail);
        }
        a.ret(act.ret());
        a.bind(fail);
        i += 1;
    }
    a.ret(default);
}

/// What one syscall number compiles to.
enum Entry {
    /// An unconditional result.
    Ret(u32),
    /// Rules with argument conditions, in precedence order.
    Rules(Rules),
}

/// Assemble the program. `compact`: splits jump straight to shared returns,
/// single-number exceptions, grouped `==` rules (about 40% fewer
/// instructions for the default profile); it needs every conditional jump
/// within 255 instructions. Otherwise: a leaf instruction per range and `ja`
/// trampolines, which fits any profile up to `BPF_MAXINSNS`.
fn assemble(
    default_action: Action,
    entries: &[(u32, Entry)],
    compact: bool,
) -> std::result::Result<Vec<libc::sock_filter>, AsmError> {
    let default = default_action.ret();
    let mut a = Asm::default();
    let bad_arch = Action::KillProcess.ret();

    // 1. architecture
    a.ld(OFF_ARCH);
    let arch_ok = a.label();
    a.cond(BPF_JEQ_K, AUDIT_ARCH_X86_64, Tgt::L(arch_ok), Tgt::Next);
    a.ret(bad_arch);
    a.bind(arch_ok);
    // 2. syscall number; the x32 ABI (numbers from `X32_SYSCALL_BIT` on) is
    // the last range of the dispatch tree.
    a.ld(OFF_NR);

    let mut leaves: Vec<(u32, Leaf)> = Vec::new();
    let mut blocks: Vec<(Label, &Rules)> = Vec::new();
    for (nr, entry) in entries {
        match entry {
            Entry::Ret(k) => leaves.push((*nr, Leaf::Ret(*k))),
            Entry::Rules(rules) => {
                let l = a.label();
                leaves.push((*nr, Leaf::Block(l)));
                blocks.push((l, rules));
            }
        }
    }
    // Cover every number with ranges, merging equal neighbours; x32 last.
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
    push(X32_SYSCALL_BIT, Leaf::Ret(bad_arch));
    if compact {
        let mut rets = BTreeMap::new();
        emit_compact(&mut a, &mut rets, &with_exceptions(&ranges));
        for (k, l) in rets {
            a.bind(l);
            a.ret(k);
        }
    } else {
        emit_tree(&mut a, &ranges);
    }
    for (label, rules) in blocks {
        a.bind(label);
        emit_block(&mut a, rules, default, compact);
    }
    a.finish()
}

pub(super) fn compile(
    default_action: Action,
    flags: u32,
    by_nr: BTreeMap<u32, Rules>,
) -> Result<SeccompProgram> {
    // Sort each syscall's rules by precedence (stable: profile order among equals)
    // and drop what follows an unconditional rule, it can never be reached.
    let entries: Vec<(u32, Entry)> = by_nr
        .into_iter()
        .map(|(nr, mut rules)| {
            rules.sort_by_key(|(act, _)| std::cmp::Reverse(act.precedence()));
            if let Some(i) = rules.iter().position(|(_, args)| args.is_empty()) {
                rules.truncate(i + 1);
            }
            match rules.as_slice() {
                [(act, args)] if args.is_empty() => (nr, Entry::Ret(act.ret())),
                _ => (nr, Entry::Rules(rules)),
            }
        })
        .collect();
    #[cfg(test)]
    if FORCE_TRAMPOLINES.with(|f| f.get()) {
        let filter = assemble(default_action, &entries, false)?;
        return Ok(SeccompProgram { filter, flags });
    }
    let filter = match assemble(default_action, &entries, true) {
        Err(AsmError::OutOfRange) => assemble(default_action, &entries, false)?,
        other => other?,
    };
    Ok(SeccompProgram { filter, flags })
}

#[cfg(test)]
thread_local! {
    /// Tests set this to compile with the trampoline layout only.
    pub(crate) static FORCE_TRAMPOLINES: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
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

/// The kernel's action-cache emulator (`seccomp_is_const_allow` in
/// kernel/seccomp.c, Linux 5.11): runs `prog` knowing only `nr` and `arch`;
/// true when it provably returns `SECCOMP_RET_ALLOW` (the syscall then
/// skips the filter at run time), false as soon as anything else is loaded.
#[cfg(test)]
pub(crate) fn kernel_const_allow(prog: &SeccompProgram, arch: u32, nr: u32) -> bool {
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    while pc < prog.filter.len() {
        let i = prog.filter[pc];
        match i.code {
            BPF_LD_W_ABS => match i.k {
                OFF_NR => acc = nr,
                OFF_ARCH => acc = arch,
                _ => return false,
            },
            BPF_RET_K => return i.k == Action::Allow.ret(),
            BPF_JMP_JA => pc += i.k as usize,
            BPF_JEQ_K | BPF_JGT_K | BPF_JGE_K => {
                let t = match i.code {
                    BPF_JEQ_K => acc == i.k,
                    BPF_JGT_K => acc > i.k,
                    _ => acc >= i.k,
                };
                pc += if t { i.jt as usize } else { i.jf as usize };
            }
            BPF_AND_K => acc &= i.k,
            _ => return false,
        }
        pc += 1;
    }
    false
}
