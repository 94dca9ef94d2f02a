//! Per-cgroup probes: exec events through a ring buffer, syscall counts,
//! network bytes/packets. Each is keyed by a cgroup v2 id (the directory's
//! inode, compared with `bpf_get_current_cgroup_id()`, Linux 4.18) and
//! detached when dropped. Matching is exact: tasks in descendant cgroups
//! are not counted.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::asm::{AluOp, Asm, Helper, Insn, JmpOp, Reg, Size};
use crate::cgroup::cgroup_id;
use crate::device::dup;
use crate::error::{Error, Result};
use crate::ringbuf::RingBuf;
use crate::sys::{self, AttachType, Map, MapType, ProgType, Program, BPF_F_ALLOW_MULTI};
use crate::tracefs::{TracepointFormat, TracepointLink};

/// License string of the tracing programs: `bpf_probe_read_kernel_str` is
/// GPL-only, so the program must declare a GPL-compatible license.
const TRACING_LICENSE: &str = "Dual MIT/GPL";

/// Bytes of one exec record: ts u64, pid u32, old_pid u32, tid u32, pad
/// u32, comm [16], filename [256].
const EXEC_RECORD: i32 = 296;
const COMM_LEN: i32 = 16;
/// Longest filename kept (bytes including the NUL); longer ones are cut.
pub const EXEC_FILENAME_MAX: usize = 256;

/// One `execve(2)` seen inside the probed cgroup.
///
/// ```no_run
/// let cg = berth_ebpf_probes::open_cgroup("/sys/fs/cgroup/unified/web-1")?;
/// let mut probe = berth_ebpf_probes::ExecProbe::attach(&cg)?;
/// for ev in probe.read(std::time::Duration::from_secs(1))? {
///     println!("{} {} {}", ev.pid, ev.comm, ev.filename);
/// }
/// # Ok::<(), berth_ebpf_probes::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecEvent {
    /// `CLOCK_MONOTONIC` nanoseconds (`bpf_ktime_get_ns`).
    pub timestamp_ns: u64,
    /// Process id (tgid) after the exec.
    pub pid: u32,
    /// The thread id that called exec (differs from `pid` when a non-leader thread execs).
    pub old_pid: u32,
    /// The new command name (`comm`, at most 15 bytes).
    pub comm: String,
    /// The path given to exec, at most [`EXEC_FILENAME_MAX`]` - 1` bytes.
    pub filename: String,
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

impl ExecEvent {
    fn parse(rec: &[u8]) -> Option<ExecEvent> {
        if rec.len() < EXEC_RECORD as usize {
            return None;
        }
        let u32_at = |o: usize| u32::from_ne_bytes([rec[o], rec[o + 1], rec[o + 2], rec[o + 3]]);
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&rec[0..8]);
        Some(ExecEvent {
            timestamp_ns: u64::from_ne_bytes(ts),
            pid: u32_at(8),
            old_pid: u32_at(12),
            comm: cstr(&rec[24..40]),
            filename: cstr(&rec[40..296]),
        })
    }
}

/// Build the exec probe program for tracepoint `sched/sched_process_exec`
/// with the given field offsets.
fn exec_program(
    cgroup: u64,
    ringbuf_fd: i32,
    lost_fd: i32,
    tp: &TracepointFormat,
) -> Result<Vec<Insn>> {
    let (filename_off, _) = tp.field("filename")?;
    let (old_pid_off, _) = tp.field("old_pid")?;
    let base: i16 = -(EXEC_RECORD as i16);
    let mut a = Asm::new();
    let out = a.new_label();
    a.mov64_reg(Reg::R6, Reg::R1)
        .call(Helper::GetCurrentCgroupId)
        .ld_imm64(Reg::R1, cgroup)
        .jmp_reg(JmpOp::Ne, Reg::R0, Reg::R1, out)
        .call(Helper::KtimeGetNs)
        .store(Size::DW, Reg::R10, base, Reg::R0)
        .call(Helper::GetCurrentPidTgid)
        .alu64_imm(AluOp::Rsh, Reg::R0, 32)
        .store(Size::W, Reg::R10, base + 8, Reg::R0)
        .load(Size::W, Reg::R1, Reg::R6, old_pid_off as i16)
        .store(Size::W, Reg::R10, base + 12, Reg::R1)
        .store_imm(Size::DW, Reg::R10, base + 16, 0)
        .mov64_reg(Reg::R1, Reg::R10)
        .alu64_imm(AluOp::Add, Reg::R1, (base + 24) as i32)
        .mov64_imm(Reg::R2, COMM_LEN)
        .call(Helper::GetCurrentComm)
        // __data_loc: low 16 bits offset from the record start, high 16 length.
        .load(Size::W, Reg::R7, Reg::R6, filename_off as i16)
        .alu64_imm(AluOp::And, Reg::R7, 0xffff)
        .mov64_reg(Reg::R3, Reg::R6)
        .alu64_reg(AluOp::Add, Reg::R3, Reg::R7)
        .mov64_reg(Reg::R1, Reg::R10)
        .alu64_imm(AluOp::Add, Reg::R1, (base + 40) as i32)
        .mov64_imm(Reg::R2, EXEC_FILENAME_MAX as i32)
        .call(Helper::ProbeReadKernelStr)
        .ld_map_fd(Reg::R1, ringbuf_fd)
        .mov64_reg(Reg::R2, Reg::R10)
        .alu64_imm(AluOp::Add, Reg::R2, base as i32)
        .mov64_imm(Reg::R3, EXEC_RECORD)
        .mov64_imm(Reg::R4, 0)
        .call(Helper::RingbufOutput)
        // A full buffer makes the output fail: count the lost record.
        .jmp_imm(JmpOp::Eq, Reg::R0, 0, out)
        .store_imm(Size::W, Reg::R10, base - 8, 0)
        .ld_map_fd(Reg::R1, lost_fd)
        .mov64_reg(Reg::R2, Reg::R10)
        .alu64_imm(AluOp::Add, Reg::R2, (base - 8) as i32)
        .call(Helper::MapLookupElem)
        .jmp_imm(JmpOp::Eq, Reg::R0, 0, out)
        .mov64_imm(Reg::R1, 1)
        .atomic_add(Size::DW, Reg::R0, 0, Reg::R1)
        .bind(out)
        .mov64_imm(Reg::R0, 0)
        .exit();
    a.build()
}

/// An `execsnoop` for one cgroup: every exec by a task in the cgroup is
/// streamed through a BPF ring buffer.
///
/// Needs Linux 5.8 (ring buffer; `bpf_probe_read_kernel_str` 5.5), tracefs
/// (mounted at `/sys/kernel/tracing` when missing), and root or
/// `CAP_BPF` + `CAP_PERFMON`. Attached to the classic tracepoint
/// `sched/sched_process_exec` via `perf_event_open(2)`.
///
/// ```no_run
/// use berth_ebpf_probes::{open_cgroup, ExecProbe};
/// use std::time::Duration;
/// let cg = open_cgroup("/sys/fs/cgroup/unified/web-1")?;
/// let mut probe = ExecProbe::attach(&cg)?;
/// for ev in probe.read(Duration::from_secs(1))? {
///     println!("{} {} {}", ev.pid, ev.comm, ev.filename);
/// }
/// # Ok::<(), berth_ebpf_probes::Error>(())
/// ```
#[derive(Debug)]
#[doc(alias(
    "BPF_PROG_TYPE_TRACEPOINT",
    "sched_process_exec",
    "BPF_MAP_TYPE_RINGBUF"
))]
pub struct ExecProbe {
    // Field order is drop order: detach first, then the program and buffer.
    link: TracepointLink,
    prog: Program,
    ring: RingBuf,
    lost: Map,
    cgroup: u64,
}

/// Default ring buffer size of [`ExecProbe`]: 256 KiB, about 880 events
/// between two reads.
pub const EXEC_BUFFER_DEFAULT: usize = 256 * 1024;

impl ExecProbe {
    /// Attach to the cgroup directory `cgroup`.
    pub fn attach(cgroup: impl AsFd) -> Result<ExecProbe> {
        Self::attach_id(cgroup_id(cgroup)?)
    }

    /// Attach for the cgroup with id `cgroup` (see [`cgroup_id`](crate::cgroup_id)).
    pub fn attach_id(cgroup: u64) -> Result<ExecProbe> {
        Self::attach_id_with_buffer(cgroup, EXEC_BUFFER_DEFAULT)
    }

    /// Attach with a ring buffer of `bytes` (rounded up to a power-of-two
    /// number of pages; each event takes 304 bytes). Events that do not fit
    /// before the next read are counted by [`lost`](Self::lost).
    ///
    /// ```no_run
    /// use berth_ebpf_probes::{cgroup_id, open_cgroup, ExecProbe};
    /// let cg = open_cgroup("/sys/fs/cgroup/web-1")?;
    /// let probe = ExecProbe::attach_id_with_buffer(cgroup_id(&cg)?, 1 << 20)?;
    /// # Ok::<(), berth_ebpf_probes::Error>(())
    /// ```
    pub fn attach_id_with_buffer(cgroup: u64, bytes: usize) -> Result<ExecProbe> {
        let (prog, ring, lost, tp) = Self::build(cgroup, bytes)?;
        let link = TracepointLink::attach(&tp, &prog)?;
        Ok(ExecProbe {
            link,
            prog,
            ring,
            lost,
            cgroup,
        })
    }

    fn build(cgroup: u64, bytes: usize) -> Result<(Program, RingBuf, Map, TracepointFormat)> {
        sys::require_kernel("the exec probe (BPF ring buffer)", (5, 8))?;
        let tp = TracepointFormat::read("sched", "sched_process_exec")?;
        let ring = RingBuf::new("berth_exec", bytes)?;
        let lost = Map::create(MapType::Array, "berth_exec_lost", 4, 8, 1)?;
        let insns = exec_program(cgroup, ring.map().as_raw_fd(), lost.as_raw_fd(), &tp)?;
        let prog = Program::load(
            ProgType::Tracepoint,
            "berth_exec",
            &insns,
            TRACING_LICENSE,
            None,
        )?;
        Ok((prog, ring, lost, tp))
    }

    /// Load the program (and its maps) without attaching: a verifier check.
    pub fn load(cgroup: u64) -> Result<Program> {
        Ok(Self::build(cgroup, EXEC_BUFFER_DEFAULT)?.0)
    }

    /// Events dropped so far because the ring buffer was full.
    pub fn lost(&self) -> Result<u64> {
        let v = self.lost.lookup(&0u32.to_ne_bytes())?.unwrap_or_default();
        Ok(v.try_into().map(u64::from_ne_bytes).unwrap_or(0))
    }

    /// The cgroup id probed.
    pub fn cgroup_id(&self) -> u64 {
        self.cgroup
    }

    /// The events available now, without waiting.
    pub fn drain(&mut self) -> Vec<ExecEvent> {
        let mut out = Vec::new();
        self.ring.consume(|rec| {
            if let Some(e) = ExecEvent::parse(rec) {
                out.push(e);
            }
        });
        out
    }

    /// Wait up to `timeout` for at least one event, then return all available.
    pub fn read(&mut self, timeout: Duration) -> Result<Vec<ExecEvent>> {
        let deadline = Instant::now() + timeout;
        loop {
            let evs = self.drain();
            if !evs.is_empty() {
                return Ok(evs);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(evs);
            }
            self.ring.wait(left)?;
        }
    }

    /// Detach now (closing the perf event detaches the program).
    pub fn detach(self) -> Result<()> {
        drop(self.link);
        Ok(())
    }

    /// The loaded program (for inspection).
    pub fn program(&self) -> &Program {
        &self.prog
    }
}

/// Array slots for syscall numbers: 0..512 covers every architecture's table.
pub const SYSCALL_SLOTS: u32 = 512;

fn syscall_program(cgroup: u64, map_fd: i32) -> Result<Vec<Insn>> {
    let mut a = Asm::new();
    let out = a.new_label();
    // Raw tracepoint sys_enter: ctx = u64 args[] { struct pt_regs *regs, long id }.
    a.mov64_reg(Reg::R6, Reg::R1)
        .call(Helper::GetCurrentCgroupId)
        .ld_imm64(Reg::R1, cgroup)
        .jmp_reg(JmpOp::Ne, Reg::R0, Reg::R1, out)
        .load(Size::DW, Reg::R1, Reg::R6, 8)
        .jmp_imm(JmpOp::Ge, Reg::R1, SYSCALL_SLOTS as i32, out)
        .store(Size::W, Reg::R10, -4, Reg::R1)
        .ld_map_fd(Reg::R1, map_fd)
        .mov64_reg(Reg::R2, Reg::R10)
        .alu64_imm(AluOp::Add, Reg::R2, -4)
        .call(Helper::MapLookupElem)
        .jmp_imm(JmpOp::Eq, Reg::R0, 0, out)
        .mov64_imm(Reg::R1, 1)
        .atomic_add(Size::DW, Reg::R0, 0, Reg::R1)
        .bind(out)
        .mov64_imm(Reg::R0, 0)
        .exit();
    a.build()
}

/// Counts the system calls made by tasks in one cgroup, per syscall number.
///
/// Raw tracepoint `sys_enter` (Linux 4.17; cgroup id helper 4.18); needs
/// root or `CAP_BPF` + `CAP_PERFMON`. Numbers are the architecture's
/// syscall table (`libc::SYS_*`).
///
/// ```no_run
/// use berth_ebpf_probes::{open_cgroup, SyscallCounter};
/// let cg = open_cgroup("/sys/fs/cgroup/unified/web-1")?;
/// let counter = SyscallCounter::attach(&cg)?;
/// // ...
/// println!("{} reads", counter.count(libc::SYS_read as u32)?);
/// # Ok::<(), berth_ebpf_probes::Error>(())
/// ```
#[derive(Debug)]
#[doc(alias("BPF_PROG_TYPE_RAW_TRACEPOINT", "sys_enter", "BPF_RAW_TRACEPOINT_OPEN"))]
pub struct SyscallCounter {
    link: OwnedFd,
    prog: Program,
    map: Map,
    cgroup: u64,
}

impl SyscallCounter {
    /// Attach to the cgroup directory `cgroup`.
    pub fn attach(cgroup: impl AsFd) -> Result<SyscallCounter> {
        Self::attach_id(cgroup_id(cgroup)?)
    }

    /// Attach for the cgroup with id `cgroup`.
    pub fn attach_id(cgroup: u64) -> Result<SyscallCounter> {
        let (prog, map) = Self::load(cgroup)?;
        let link = sys::raw_tracepoint_open("sys_enter", &prog)?;
        Ok(SyscallCounter {
            link,
            prog,
            map,
            cgroup,
        })
    }

    /// Load without attaching.
    pub fn load(cgroup: u64) -> Result<(Program, Map)> {
        sys::require_kernel("bpf_get_current_cgroup_id", (4, 18))?;
        let map = Map::create(MapType::Array, "berth_sysc", 4, 8, SYSCALL_SLOTS)?;
        let insns = syscall_program(cgroup, map.as_raw_fd())?;
        let prog = Program::load(
            ProgType::RawTracepoint,
            "berth_sysc",
            &insns,
            TRACING_LICENSE,
            None,
        )?;
        Ok((prog, map))
    }

    /// The cgroup id counted.
    pub fn cgroup_id(&self) -> u64 {
        self.cgroup
    }

    /// Calls of syscall `nr` so far.
    pub fn count(&self, nr: u32) -> Result<u64> {
        if nr >= SYSCALL_SLOTS {
            return Ok(0);
        }
        let v = self.map.lookup(&nr.to_ne_bytes())?.unwrap_or_default();
        Ok(v.try_into().map(u64::from_ne_bytes).unwrap_or(0))
    }

    /// Every syscall number with a non-zero count, ascending.
    pub fn counts(&self) -> Result<Vec<(u32, u64)>> {
        let mut out = Vec::new();
        for nr in 0..SYSCALL_SLOTS {
            let c = self.count(nr)?;
            if c > 0 {
                out.push((nr, c));
            }
        }
        Ok(out)
    }

    /// Sum over all syscalls.
    pub fn total(&self) -> Result<u64> {
        Ok(self.counts()?.iter().map(|(_, c)| c).sum())
    }

    /// Detach now.
    pub fn detach(self) -> Result<()> {
        drop(self.link);
        Ok(())
    }

    /// The loaded program.
    pub fn program(&self) -> &Program {
        &self.prog
    }
}

/// Bytes and packets through one cgroup's sockets.
///
/// ```no_run
/// let cg = berth_ebpf_probes::open_cgroup("/sys/fs/cgroup/unified/web-1")?;
/// let counter = berth_ebpf_probes::NetCounter::attach(&cg)?;
/// let stats = counter.stats()?;
/// println!("{stats:?}");
/// # Ok::<(), berth_ebpf_probes::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Bytes received (IP header included, as `skb->len` at cgroup ingress).
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes sent (IP header included).
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
}

fn skb_program(map_fd: i32, slot: i32) -> Result<Vec<Insn>> {
    let mut a = Asm::new();
    let out = a.new_label();
    // __sk_buff.len is at offset 0.
    a.load(Size::W, Reg::R6, Reg::R1, 0)
        .store_imm(Size::W, Reg::R10, -4, slot)
        .ld_map_fd(Reg::R1, map_fd)
        .mov64_reg(Reg::R2, Reg::R10)
        .alu64_imm(AluOp::Add, Reg::R2, -4)
        .call(Helper::MapLookupElem)
        .jmp_imm(JmpOp::Eq, Reg::R0, 0, out)
        .atomic_add(Size::DW, Reg::R0, 0, Reg::R6)
        .mov64_imm(Reg::R1, 1)
        .atomic_add(Size::DW, Reg::R0, 8, Reg::R1)
        .bind(out)
        // cgroup_skb: 1 lets the packet pass.
        .mov64_imm(Reg::R0, 1)
        .exit();
    a.build()
}

/// Counts bytes and packets in and out of one cgroup's sockets with two
/// `BPF_PROG_TYPE_CGROUP_SKB` programs (ingress, egress; Linux 4.10),
/// attached with `BPF_F_ALLOW_MULTI` so they coexist with other programs.
/// Packets are attributed to the cgroup of the socket's creator.
///
/// ```no_run
/// use berth_ebpf_probes::{open_cgroup, NetCounter};
/// let cg = open_cgroup("/sys/fs/cgroup/unified/web-1")?;
/// let net = NetCounter::attach(&cg)?;
/// let s = net.stats()?;
/// println!("rx {} B, tx {} B", s.rx_bytes, s.tx_bytes);
/// # Ok::<(), berth_ebpf_probes::Error>(())
/// ```
#[derive(Debug)]
#[doc(alias(
    "BPF_PROG_TYPE_CGROUP_SKB",
    "BPF_CGROUP_INET_INGRESS",
    "BPF_CGROUP_INET_EGRESS"
))]
pub struct NetCounter {
    cgroup: OwnedFd,
    ingress: Option<Program>,
    egress: Option<Program>,
    map: Map,
}

impl NetCounter {
    /// Load both programs and attach them to the cgroup directory `cgroup`.
    pub fn attach(cgroup: impl AsFd) -> Result<NetCounter> {
        let cgroup = dup(cgroup.as_fd())?;
        let (ingress, egress, map) = Self::load()?;
        sys::attach_cgroup(
            cgroup.as_fd(),
            &ingress,
            AttachType::CgroupInetIngress,
            BPF_F_ALLOW_MULTI,
            None,
        )?;
        let mut me = NetCounter {
            cgroup,
            ingress: Some(ingress),
            egress: None,
            map,
        };
        // On failure `me` drops and detaches the ingress program.
        sys::attach_cgroup(
            me.cgroup.as_fd(),
            &egress,
            AttachType::CgroupInetEgress,
            BPF_F_ALLOW_MULTI,
            None,
        )?;
        me.egress = Some(egress);
        Ok(me)
    }

    /// Load the (ingress, egress) programs and their counter map without attaching.
    pub fn load() -> Result<(Program, Program, Map)> {
        let map = Map::create(MapType::Array, "berth_net", 4, 16, 2)?;
        let fd = map.as_raw_fd();
        let ingress = Program::load(
            ProgType::CgroupSkb,
            "berth_net_in",
            &skb_program(fd, 0)?,
            TRACING_LICENSE,
            Some(AttachType::CgroupInetIngress),
        )?;
        let egress = Program::load(
            ProgType::CgroupSkb,
            "berth_net_out",
            &skb_program(fd, 1)?,
            TRACING_LICENSE,
            Some(AttachType::CgroupInetEgress),
        )?;
        Ok((ingress, egress, map))
    }

    /// The counters now.
    pub fn stats(&self) -> Result<NetStats> {
        let slot = |k: u32| -> Result<(u64, u64)> {
            let v = self
                .map
                .lookup(&k.to_ne_bytes())?
                .unwrap_or_else(|| vec![0; 16]);
            let word = |o: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&v[o..o + 8]);
                u64::from_ne_bytes(b)
            };
            Ok((word(0), word(8)))
        };
        let (rx_bytes, rx_packets) = slot(0)?;
        let (tx_bytes, tx_packets) = slot(1)?;
        Ok(NetStats {
            rx_bytes,
            rx_packets,
            tx_bytes,
            tx_packets,
        })
    }

    /// Detach both programs, reporting every failure.
    pub fn detach(mut self) -> Result<()> {
        self.detach_inner()
    }

    fn detach_inner(&mut self) -> Result<()> {
        let mut errors = Vec::new();
        if let Some(p) = self.ingress.take() {
            if let Err(e) =
                sys::detach_cgroup(self.cgroup.as_fd(), &p, AttachType::CgroupInetIngress)
            {
                errors.push(e);
            }
        }
        if let Some(p) = self.egress.take() {
            if let Err(e) =
                sys::detach_cgroup(self.cgroup.as_fd(), &p, AttachType::CgroupInetEgress)
            {
                errors.push(e);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Teardown {
                what: "network counter".into(),
                errors,
            })
        }
    }
}

impl Drop for NetCounter {
    fn drop(&mut self) {
        if let Err(e) = self.detach_inner() {
            tracing::warn!(error = %e, "detaching network counter on drop failed");
        }
    }
}

/// Every program this crate can generate, loaded without attaching (a
/// verifier check). Returns their names. `cgroup` is the id baked into the
/// probes.
pub fn load_all_programs(cgroup: u64) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let dev = crate::DeviceFilter::container_default().load()?;
    names.push(dev.name().to_string());
    let p = ExecProbe::load(cgroup)?;
    names.push(p.name().to_string());
    let (p, _map) = SyscallCounter::load(cgroup)?;
    names.push(p.name().to_string());
    let (i, e, _map) = NetCounter::load()?;
    names.push(i.name().to_string());
    names.push(e.name().to_string());
    Ok(names)
}
