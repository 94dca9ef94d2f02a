//! A small typed BPF assembler: registers, instructions, labels resolved at
//! [`Asm::build`].
//!
//! The encoding is the kernel's `struct bpf_insn` (8 bytes: opcode, dst/src
//! register nibbles, signed 16-bit offset, signed 32-bit immediate),
//! documented in `Documentation/bpf/standardization/instruction-set.rst`.
//! A 64-bit immediate load (`BPF_LD | BPF_DW | BPF_IMM`, also used for map
//! fds) takes two instruction slots; jump offsets count slots, which the
//! label resolution here does for you.
//!
//! ```
//! use berth_ebpf_probes::asm::{Asm, Reg, JmpOp};
//! let mut a = Asm::new();
//! let deny = a.new_label();
//! a.load(berth_ebpf_probes::asm::Size::W, Reg::R2, Reg::R1, 4); // major
//! a.jmp_imm(JmpOp::Ne, Reg::R2, 1, deny);
//! a.mov64_imm(Reg::R0, 1);
//! a.exit();
//! a.bind(deny);
//! a.mov64_imm(Reg::R0, 0);
//! a.exit();
//! let prog = a.build().unwrap();
//! assert_eq!(prog.len(), 6);
//! ```

use crate::error::{Error, Result};

/// A BPF register. `R0` holds return values, `R1`–`R5` helper arguments
/// (clobbered by calls), `R6`–`R9` are callee-saved, `R10` is the read-only
/// frame pointer.
///
/// ```
/// use berth_ebpf_probes::asm::{Asm, Reg};
/// let mut a = Asm::new();
/// a.mov64_reg(Reg::R6, Reg::R1).mov64_imm(Reg::R0, 0).exit(); // keep the context in R6
/// assert_eq!(a.build().unwrap()[0].regs, 0x16); // dst R6, src R1
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum Reg {
    R0 = 0,
    R1,
    R2,
    R3,
    R4,
    R5,
    R6,
    R7,
    R8,
    R9,
    R10,
}

/// Width of a memory access.
///
/// ```
/// use berth_ebpf_probes::asm::{Asm, Reg, Size};
/// let mut a = Asm::new();
/// a.load(Size::W, Reg::R2, Reg::R1, 0).mov64_imm(Reg::R0, 0).exit(); // r2 = *(u32 *)(r1 + 0)
/// assert_eq!(a.build().unwrap()[0].code, 0x61); // BPF_LDX | BPF_W | BPF_MEM
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// 1 byte (`BPF_B`).
    B,
    /// 2 bytes (`BPF_H`).
    H,
    /// 4 bytes (`BPF_W`).
    W,
    /// 8 bytes (`BPF_DW`).
    DW,
}

impl Size {
    fn bits(self) -> u8 {
        match self {
            Size::W => 0x00,
            Size::H => 0x08,
            Size::B => 0x10,
            Size::DW => 0x18,
        }
    }
}

/// Arithmetic operations (`BPF_ALU` / `BPF_ALU64`).
///
/// ```
/// use berth_ebpf_probes::asm::{AluOp, Asm, Reg};
/// let mut a = Asm::new();
/// a.mov64_imm(Reg::R0, 6).alu64_imm(AluOp::Add, Reg::R0, 1).exit(); // r0 = 6 + 1
/// assert_eq!(a.build().unwrap().len(), 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum AluOp {
    Add,
    Sub,
    Mul,
    Div,
    Or,
    And,
    Lsh,
    Rsh,
    Mod,
    Xor,
    Mov,
    Arsh,
}

impl AluOp {
    fn bits(self) -> u8 {
        match self {
            AluOp::Add => 0x00,
            AluOp::Sub => 0x10,
            AluOp::Mul => 0x20,
            AluOp::Div => 0x30,
            AluOp::Or => 0x40,
            AluOp::And => 0x50,
            AluOp::Lsh => 0x60,
            AluOp::Rsh => 0x70,
            AluOp::Mod => 0x90,
            AluOp::Xor => 0xa0,
            AluOp::Mov => 0xb0,
            AluOp::Arsh => 0xc0,
        }
    }
}

/// Conditional jump comparisons (`BPF_JMP`, 64-bit operands).
///
/// ```
/// use berth_ebpf_probes::asm::{Asm, JmpOp, Reg};
/// let mut a = Asm::new();
/// let zero = a.new_label();
/// a.mov64_imm(Reg::R0, 1).jmp_imm(JmpOp::Eq, Reg::R1, 0, zero).exit();
/// a.bind(zero).mov64_imm(Reg::R0, 0).exit();
/// assert_eq!(a.build().unwrap()[1].off, 1); // skips the first exit
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// unsigned `>`
    Gt,
    /// unsigned `>=`
    Ge,
    /// unsigned `<`
    Lt,
    /// unsigned `<=`
    Le,
    /// `dst & src != 0`
    Set,
    /// signed `>`
    SGt,
    /// signed `>=`
    SGe,
    /// signed `<`
    SLt,
    /// signed `<=`
    SLe,
}

impl JmpOp {
    fn bits(self) -> u8 {
        match self {
            JmpOp::Eq => 0x10,
            JmpOp::Gt => 0x20,
            JmpOp::Ge => 0x30,
            JmpOp::Set => 0x40,
            JmpOp::Ne => 0x50,
            JmpOp::SGt => 0x60,
            JmpOp::SGe => 0x70,
            JmpOp::Lt => 0xa0,
            JmpOp::Le => 0xb0,
            JmpOp::SLt => 0xc0,
            JmpOp::SLe => 0xd0,
        }
    }
}

/// Kernel helper functions this crate calls, by their stable numbers
/// (`include/uapi/linux/bpf.h`, `___BPF_FUNC_MAPPER`).
///
/// ```
/// use berth_ebpf_probes::asm::{Asm, Helper};
/// let mut a = Asm::new();
/// a.call(Helper::GetCurrentCgroupId).exit(); // r0 = bpf_get_current_cgroup_id()
/// assert_eq!(a.build().unwrap()[0].imm, 80);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Helper {
    /// `bpf_map_lookup_elem(map, key)` → value pointer or NULL (Linux 3.19).
    MapLookupElem = 1,
    /// `bpf_map_update_elem(map, key, value, flags)` (Linux 3.19).
    MapUpdateElem = 2,
    /// `bpf_ktime_get_ns()` (Linux 4.1).
    KtimeGetNs = 5,
    /// `bpf_get_current_pid_tgid()` → `tgid << 32 | pid` (Linux 4.2).
    GetCurrentPidTgid = 14,
    /// `bpf_get_current_comm(buf, size)` (Linux 4.2).
    GetCurrentComm = 16,
    /// `bpf_get_current_cgroup_id()` → cgroup v2 id (Linux 4.18).
    GetCurrentCgroupId = 80,
    /// `bpf_probe_read_kernel_str(dst, size, unsafe_ptr)` (Linux 5.5, GPL only).
    ProbeReadKernelStr = 115,
    /// `bpf_ringbuf_output(ringbuf, data, size, flags)` (Linux 5.8).
    RingbufOutput = 130,
}

// Instruction fields, generated from <linux/bpf_common.h> and <linux/bpf.h>.
use berth_sys::bpf_abi;
const CLASS_LD: u8 = bpf_abi::BPF_LD;
const CLASS_LDX: u8 = bpf_abi::BPF_LDX;
const CLASS_ST: u8 = bpf_abi::BPF_ST;
const CLASS_STX: u8 = bpf_abi::BPF_STX;
const CLASS_ALU: u8 = bpf_abi::BPF_ALU;
const CLASS_JMP: u8 = bpf_abi::BPF_JMP;
const CLASS_ALU64: u8 = bpf_abi::BPF_ALU64;
const MODE_IMM: u8 = bpf_abi::BPF_IMM;
const MODE_MEM: u8 = bpf_abi::BPF_MEM;
const MODE_ATOMIC: u8 = bpf_abi::BPF_ATOMIC;
const SRC_K: u8 = bpf_abi::BPF_K;
const SRC_X: u8 = bpf_abi::BPF_X;
const OP_JA: u8 = bpf_abi::BPF_JA;
const OP_CALL: u8 = bpf_abi::BPF_CALL;
const OP_EXIT: u8 = bpf_abi::BPF_EXIT;
/// `BPF_PSEUDO_MAP_FD`: the src field of a 64-bit load that carries a map fd.
const PSEUDO_MAP_FD: u8 = bpf_abi::BPF_PSEUDO_MAP_FD;

/// One encoded instruction slot (`struct bpf_insn`).
///
/// ```
/// use berth_ebpf_probes::asm::{Asm, Reg};
/// let mut a = Asm::new();
/// a.mov64_imm(Reg::R0, 0).exit();
/// let insns = a.build().unwrap();
/// assert_eq!(insns[1].code, 0x95); // BPF_JMP | BPF_EXIT
/// assert_eq!(insns[0].to_bytes(), [0xb7, 0, 0, 0, 0, 0, 0, 0]); // r0 = 0
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct Insn {
    /// Opcode: class | size/op | mode/source.
    pub code: u8,
    /// `dst` register in the low nibble, `src` in the high nibble.
    pub regs: u8,
    /// Signed offset (memory displacement or jump distance in slots).
    pub off: i16,
    /// Signed immediate.
    pub imm: i32,
}

impl Insn {
    fn new(code: u8, dst: Reg, src: u8, off: i16, imm: i32) -> Self {
        Insn {
            code,
            regs: (dst as u8) | (src << 4),
            off,
            imm,
        }
    }

    /// The 8 bytes the kernel reads (little-endian host).
    ///
    /// ```
    /// use berth_ebpf_probes::asm::*;
    /// let mut a = Asm::new();
    /// a.exit();
    /// assert_eq!(a.build().unwrap()[0].to_bytes()[0], 0x95);
    /// ```
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = self.regs;
        b[2..4].copy_from_slice(&self.off.to_ne_bytes());
        b[4..8].copy_from_slice(&self.imm.to_ne_bytes());
        b
    }
}

/// A jump target, created by [`Asm::new_label`] and placed by [`Asm::bind`].
///
/// ```
/// use berth_ebpf_probes::asm::{Asm, Reg};
/// let mut a = Asm::new();
/// let end = a.new_label();
/// a.mov64_imm(Reg::R0, 1).ja(end).mov64_imm(Reg::R0, 0);
/// a.bind(end).exit();
/// let unbound = {
///     let mut b = Asm::new();
///     let l = b.new_label();
///     b.ja(l).exit();
///     b.build()
/// };
/// assert!(a.build().is_ok() && unbound.is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label(usize);

/// The assembler: append instructions, bind labels, then [`build`](Asm::build).
///
/// ```
/// use berth_ebpf_probes::asm::{Asm, Reg};
/// let mut a = Asm::new();
/// a.mov64_imm(Reg::R0, 1).exit(); // return 1: allow
/// assert_eq!(a.len(), 2);
/// let insns = a.build().unwrap();
/// // ready for berth_ebpf_probes::sys::Program::load
/// assert_eq!(insns.len(), 2);
/// ```
#[derive(Debug, Default, Clone)]
pub struct Asm {
    insns: Vec<Insn>,
    /// For each slot that is a jump to a label: (slot, label).
    fixups: Vec<(usize, Label)>,
    labels: Vec<Option<usize>>,
    errors: Vec<String>,
}

impl Asm {
    /// An empty program.
    ///
    /// ```
    /// use berth_ebpf_probes::asm::*;
    /// let mut a = Asm::new();
    /// assert!(a.is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of instruction slots so far.
    ///
    /// ```
    /// use berth_ebpf_probes::asm::*;
    /// let mut a = Asm::new();
    /// a.ld_imm64(Reg::R1, u64::MAX); // two slots
    /// assert_eq!(a.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    /// True when no instruction was emitted yet.
    ///
    /// ```
    /// use berth_ebpf_probes::asm::*;
    /// let mut a = Asm::new();
    /// assert!(a.is_empty());
    /// a.exit();
    /// assert!(!a.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }

    /// A fresh, unbound label.
    ///
    /// ```
    /// use berth_ebpf_probes::asm::*;
    /// let mut a = Asm::new();
    /// let done = a.new_label();
    /// a.ja(done).bind(done).exit();
    /// assert_eq!(a.build().unwrap()[0].off, 0);
    /// ```
    pub fn new_label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Place `label` at the next instruction. Binding twice is an error
    /// reported by [`build`](Asm::build).
    ///
    /// ```
    /// use berth_ebpf_probes::asm::*;
    /// let mut a = Asm::new();
    /// let l = a.new_label();
    /// a.mov64_imm(Reg::R0, 0).ja(l).mov64_imm(Reg::R0, 1);
    /// a.bind(l).exit(); // the jump lands here
    /// assert_eq!(a.build().unwrap()[1].off, 1);
    /// ```
    pub fn bind(&mut self, label: Label) -> &mut Self {
        match self.labels.get_mut(label.0) {
            Some(slot @ None) => *slot = Some(self.insns.len()),
            Some(Some(_)) => self.errors.push(format!("label {} bound twice", label.0)),
            None => self
                .errors
                .push(format!("label {} is not from this assembler", label.0)),
        }
        self
    }

    fn push(&mut self, i: Insn) -> &mut Self {
        self.insns.push(i);
        self
    }

    /// `dst = imm` (64-bit, sign-extended).
    ///
    /// ```
    /// use berth_ebpf_probes::asm::*;
    /// let mut a = Asm::new();
    /// a.mov64_imm(Reg::R0, -1).exit(); // r0 = -1
    /// assert_eq!(a.build().unwrap()[0].imm, -1);
    /// ```
    pub fn mov64_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.alu64_imm(AluOp::Mov, dst, imm)
    }

    /// `dst = src` (64-bit).
    ///
    /// ```
    /// use berth_ebpf_probes::asm::*;
    /// let mut a = Asm::new();
    /// a.mov64_reg(Reg::R0, Reg::R1).exit(); // r0 = r1
    /// assert_eq!(a.build().unwrap()[0].code, 0xbf);
    /// ```
    pub fn mov64_reg(&mut self, dst: Reg, src: Reg) -> &mut Self {
        self.alu64_reg(AluOp::Mov, dst, src)
    }

    /// `dst op= imm` (64-bit).
    ///
    /// ```
    /// use berth_ebpf_probes::asm::*;
    /// let mut a = Asm::new();
    /// a.mov64_imm(Reg::R0, 1).alu64_imm(AluOp::Lsh, Reg::R0, 4).exit(); // r0 = 1 << 4
    /// ```
    pub fn alu64_imm(&mut self, op: AluOp, dst: Reg, imm: i32) -> &mut Self {
        self.push(Insn::new(CLASS_ALU64 | op.bits() | SRC_K, dst, 0, 0, imm))
    }

    /// `dst op= src` (64-bit).
    ///
    /// ```
    /// use berth_ebpf_probes::asm::*;
    /// let mut a = Asm::new();
    /// a.mov64_imm(Reg::R0, 2).mov64_imm(Reg::R1, 3).alu64_reg(AluOp::Add, Reg::R0, Reg::R1).exit(); // r0 += r1
    /// ```
    pub fn alu64_reg(&mut self, op: AluOp, dst: Reg, src: Reg) -> &mut Self {
        self.push(Insn::new(
            CLASS_ALU64 | op.bits() | SRC_X,
            dst,
            src as u8,
            0,
            0,
        ))
    }

    /// `dst op= imm` (32-bit; the upper half of `dst` is zeroed).
    ///
    /// ```
    /// use berth_ebpf_probes::asm::*;
    /// let mut a = Asm::new();
    /// a.mov64_imm(Reg::R0, 0xff).alu32_imm(AluOp::And, Reg::R0, 0x0f).exit(); // w0 &= 0xf
    /// ```
    pub fn alu32_imm(&mut self, op: AluOp, dst: Reg, imm: i32) -> &mut Self {
        self.push(Insn::new(CLASS_ALU | op.bits() | SRC_K, dst, 0, 0, imm))
    }

    /// `dst = *(size *)(src + off)`.
    ///
    /// ```
    /// use berth_ebpf_probes::asm::*;
    /// let mut a = Asm::new();
    /// a.load(Size::W, Reg::R0, Reg::R1, 0).exit(); // r0 = *(u32 *)(r1 + 0): the first ctx field
    /// ```
    pub fn load(&mut self, size: Size, dst: Reg, src: Reg, off: i16) -> &mut Self {
        self.push(Insn::new(
            CLASS_LDX | size.bits() | MODE_MEM,
            dst,
            src as u8,
            off,
            0,
        ))
    }

    /// `*(size *)(dst + off) = src`.
    ///
    /// ```
    /// use berth_ebpf_probes::asm::*;
    /// let mut a = Asm::new();
    /// a.mov64_imm(Reg::R1, 7).store(Size::DW, Reg::R10, -8, Reg::R1); // *(u64 *)(fp - 8) = r1
    /// a.mov64_imm(Reg::R0, 0).exit();
    /// ```
    pub fn store(&mut self, size: Size, dst: Reg, off: i16, src: Reg) -> &mut Self {
        self.push(Insn::new(
            CLASS_STX | size.bits() | MODE_MEM,
            dst,
            src as u8,
            off,
            0,
        ))
    }

    /// `*(size *)(dst + off) = imm`.
    ///
    /// ```
    /// use berth_ebpf_probes::asm::*;
    /// let mut a = Asm::new();
    /// a.store_imm(Size::W, Reg::R10, -4, 0).mov64_imm(Reg::R0, 0).exit(); // *(u32 *)(fp - 4) = 0
    /// ```
    pub fn store_imm(&mut self, size: Size, dst: Reg, off: i16, imm: i32) -> &mut Self {
        self.push(Insn::new(
            CLASS_ST | size.bits() | MODE_MEM,
            dst,
            0,
            off,
            imm,
        ))
    }

    /// Atomic `*(size *)(dst + off) += src` (`BPF_ATOMIC | BPF_ADD`, the
    /// old `BPF_XADD`; `size` must be `W` or `DW`).
    ///
    /// ```
    /// use berth_ebpf_probes::asm::*;
    /// let mut a = Asm::new();
    /// a.mov64_imm(Reg::R1, 1).atomic_add(Size::DW, Reg::R0, 0, Reg::R1); // lock *(u64 *)(r0 + 0) += r1
    /// a.exit();
    /// ```
    pub fn atomic_add(&mut self, size: Size, dst: Reg, off: i16, src: Reg) -> &mut Self {
        if !matches!(size, Size::W | Size::DW) {
            self.errors
                .push("atomic add needs a 4- or 8-byte operand".to_string());
        }
        self.push(Insn::new(
            CLASS_STX | size.bits() | MODE_ATOMIC,
            dst,
            src as u8,
            off,
            0,
        ))
    }

    /// `dst = imm` (full 64-bit immediate; two slots).
    ///
    /// ```
    /// use berth_ebpf_probes::asm::*;
    /// let mut a = Asm::new();
    /// a.ld_imm64(Reg::R0, 1 << 40).exit();
    /// assert_eq!(a.build().unwrap().len(), 3); // two slots + exit
    /// ```
    pub fn ld_imm64(&mut self, dst: Reg, imm: u64) -> &mut Self {
        self.push(Insn::new(
            CLASS_LD | Size::DW.bits() | MODE_IMM,
            dst,
            0,
            0,
            imm as u32 as i32,
        ));
        self.push(Insn {
            imm: (imm >> 32) as u32 as i32,
            ..Insn::default()
        })
    }

    /// `dst = map` (the kernel replaces the fd by the map pointer; two slots).
    ///
    /// ```
    /// use berth_ebpf_probes::asm::*;
    /// let mut a = Asm::new();
    /// a.ld_map_fd(Reg::R1, 5); // BPF_PSEUDO_MAP_FD: the kernel swaps in the map
    /// a.mov64_imm(Reg::R0, 0).exit();
    /// assert_eq!(a.build().unwrap()[0].regs >> 4, 1);
    /// ```
    pub fn ld_map_fd(&mut self, dst: Reg, map_fd: i32) -> &mut Self {
        self.push(Insn::new(
            CLASS_LD | Size::DW.bits() | MODE_IMM,
            dst,
            PSEUDO_MAP_FD,
            0,
            map_fd,
        ));
        self.push(Insn::default())
    }

    /// `if dst op imm goto label`.
    ///
    /// ```
    /// use berth_ebpf_probes::asm::*;
    /// let mut a = Asm::new();
    /// let big = a.new_label();
    /// a.mov64_imm(Reg::R0, 0).jmp_imm(JmpOp::Gt, Reg::R1, 100, big).exit();
    /// a.bind(big).mov64_imm(Reg::R0, 1).exit();
    /// assert!(a.build().is_ok());
    /// ```
    pub fn jmp_imm(&mut self, op: JmpOp, dst: Reg, imm: i32, label: Label) -> &mut Self {
        self.fixups.push((self.insns.len(), label));
        self.push(Insn::new(CLASS_JMP | op.bits() | SRC_K, dst, 0, 0, imm))
    }

    /// `if dst op src goto label`.
    ///
    /// ```
    /// use berth_ebpf_probes::asm::*;
    /// let mut a = Asm::new();
    /// let same = a.new_label();
    /// a.mov64_imm(Reg::R0, 0).jmp_reg(JmpOp::Eq, Reg::R1, Reg::R2, same).exit();
    /// a.bind(same).mov64_imm(Reg::R0, 1).exit();
    /// assert!(a.build().is_ok());
    /// ```
    pub fn jmp_reg(&mut self, op: JmpOp, dst: Reg, src: Reg, label: Label) -> &mut Self {
        self.fixups.push((self.insns.len(), label));
        self.push(Insn::new(
            CLASS_JMP | op.bits() | SRC_X,
            dst,
            src as u8,
            0,
            0,
        ))
    }

    /// `goto label`.
    ///
    /// ```
    /// use berth_ebpf_probes::asm::*;
    /// let mut a = Asm::new();
    /// let end = a.new_label();
    /// a.mov64_imm(Reg::R0, 0).ja(end).mov64_imm(Reg::R0, 1);
    /// a.bind(end).exit();
    /// ```
    pub fn ja(&mut self, label: Label) -> &mut Self {
        self.fixups.push((self.insns.len(), label));
        self.push(Insn::new(CLASS_JMP | OP_JA, Reg::R0, 0, 0, 0))
    }

    /// Call a kernel helper; result in `R0`, `R1`–`R5` clobbered.
    ///
    /// ```
    /// use berth_ebpf_probes::asm::*;
    /// let mut a = Asm::new();
    /// a.call(Helper::KtimeGetNs).exit(); // r0 = bpf_ktime_get_ns()
    /// assert_eq!(a.build().unwrap()[0].imm, 5);
    /// ```
    pub fn call(&mut self, helper: Helper) -> &mut Self {
        self.push(Insn::new(CLASS_JMP | OP_CALL, Reg::R0, 0, 0, helper as i32))
    }

    /// Return `R0`.
    ///
    /// ```
    /// use berth_ebpf_probes::asm::*;
    /// let mut a = Asm::new();
    /// a.mov64_imm(Reg::R0, 1).exit(); // return r0
    /// assert_eq!(a.build().unwrap()[1].code, 0x95);
    /// ```
    pub fn exit(&mut self) -> &mut Self {
        self.push(Insn::new(CLASS_JMP | OP_EXIT, Reg::R0, 0, 0, 0))
    }

    /// Resolve labels and return the instruction slots.
    ///
    /// Fails on a label used but never bound, bound twice, bound past the
    /// last instruction, or a jump farther than ±32767 slots.
    ///
    /// ```
    /// use berth_ebpf_probes::asm::*;
    /// let mut a = Asm::new();
    /// let nowhere = a.new_label();
    /// a.ja(nowhere).exit();
    /// assert!(a.build().is_err()); // label never bound
    /// ```
    pub fn build(mut self) -> Result<Vec<Insn>> {
        if let Some(e) = self.errors.first() {
            return Err(Error::Asm(e.clone()));
        }
        for &(slot, label) in &self.fixups {
            let target = self
                .labels
                .get(label.0)
                .copied()
                .flatten()
                .ok_or_else(|| Error::Asm(format!("label {} used but never bound", label.0)))?;
            if target >= self.insns.len() {
                return Err(Error::Asm(format!(
                    "label {} is bound after the last instruction",
                    label.0
                )));
            }
            let delta = target as i64 - (slot as i64 + 1);
            let off = i16::try_from(delta)
                .map_err(|_| Error::Asm(format!("jump of {delta} slots is out of range")))?;
            self.insns[slot].off = off;
        }
        Ok(self.insns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(p: &[Insn]) -> Vec<[u8; 8]> {
        p.iter().map(|i| i.to_bytes()).collect()
    }

    #[test]
    fn encodes_known_bytes() {
        let mut a = Asm::new();
        a.mov64_imm(Reg::R0, 0)
            .load(Size::W, Reg::R1, Reg::R6, 4)
            .call(Helper::MapLookupElem)
            .store_imm(Size::DW, Reg::R10, -8, 0)
            .atomic_add(Size::DW, Reg::R0, 0, Reg::R1)
            .alu64_imm(AluOp::And, Reg::R2, 0xffff)
            .alu32_imm(AluOp::Rsh, Reg::R3, 16)
            .exit();
        let p = a.build().unwrap();
        assert_eq!(
            bytes(&p),
            vec![
                [0xb7, 0x00, 0, 0, 0, 0, 0, 0],
                [0x61, 0x61, 4, 0, 0, 0, 0, 0],
                [0x85, 0x00, 0, 0, 1, 0, 0, 0],
                [0x7a, 0x0a, 0xf8, 0xff, 0, 0, 0, 0],
                [0xdb, 0x10, 0, 0, 0, 0, 0, 0],
                [0x57, 0x02, 0, 0, 0xff, 0xff, 0, 0],
                [0x74, 0x03, 0, 0, 16, 0, 0, 0],
                [0x95, 0x00, 0, 0, 0, 0, 0, 0],
            ]
        );
    }

    #[test]
    fn wide_loads_take_two_slots_and_jumps_count_them() {
        let mut a = Asm::new();
        let end = a.new_label();
        a.jmp_imm(JmpOp::Eq, Reg::R1, 7, end);
        a.ld_map_fd(Reg::R1, 5);
        a.ld_imm64(Reg::R2, 0x1122_3344_5566_7788);
        a.bind(end);
        a.exit();
        let p = a.build().unwrap();
        assert_eq!(p.len(), 6);
        // The jump skips 4 slots (two 2-slot loads).
        assert_eq!(p[0].to_bytes(), [0x15, 0x01, 4, 0, 7, 0, 0, 0]);
        assert_eq!(p[1].to_bytes(), [0x18, 0x11, 0, 0, 5, 0, 0, 0]);
        assert_eq!(p[2].to_bytes(), [0; 8]);
        assert_eq!(p[3].to_bytes(), [0x18, 0x02, 0, 0, 0x88, 0x77, 0x66, 0x55]);
        assert_eq!(p[4].to_bytes(), [0, 0, 0, 0, 0x44, 0x33, 0x22, 0x11]);
    }

    #[test]
    fn backward_jump_and_reg_compare() {
        let mut a = Asm::new();
        let top = a.new_label();
        a.bind(top);
        a.alu64_imm(AluOp::Add, Reg::R1, 1);
        a.jmp_reg(JmpOp::Lt, Reg::R1, Reg::R2, top);
        a.ja(top);
        let p = a.build().unwrap();
        assert_eq!(p[1].to_bytes(), [0xad, 0x21, 0xfe, 0xff, 0, 0, 0, 0]);
        assert_eq!(p[2].to_bytes(), [0x05, 0x00, 0xfd, 0xff, 0, 0, 0, 0]);
    }

    #[test]
    fn label_errors_are_reported() {
        let mut a = Asm::new();
        let l = a.new_label();
        a.ja(l);
        assert!(matches!(a.build(), Err(Error::Asm(m)) if m.contains("never bound")));

        let mut a = Asm::new();
        let l = a.new_label();
        a.ja(l).bind(l);
        assert!(matches!(a.build(), Err(Error::Asm(m)) if m.contains("after the last")));

        let mut a = Asm::new();
        let l = a.new_label();
        a.bind(l).exit().bind(l);
        assert!(matches!(a.build(), Err(Error::Asm(m)) if m.contains("twice")));

        let mut a = Asm::new();
        a.atomic_add(Size::B, Reg::R1, 0, Reg::R2);
        assert!(a.build().is_err());
    }
}
