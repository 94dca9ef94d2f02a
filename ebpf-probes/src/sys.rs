//! The `bpf(2)` layer: maps, program load (with the verifier log on
//! failure), cgroup attach/detach/query, raw tracepoints, all through
//! `libc::syscall(SYS_bpf, …)`; every kernel object is an [`OwnedFd`].
//!
//! Man page: `bpf(2)`; attribute layouts: `union bpf_attr` in
//! `include/uapi/linux/bpf.h`. The kernel accepts a shorter `bpf_attr`
//! than its own as long as the bytes it knows beyond ours would be zero.

use std::ffi::CString;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::asm::Insn;
// bpf(2) commands, generated from <linux/bpf.h> (libc has none).
use crate::error::{Error, Result};
use berth_sys::bpf_abi::{
    BPF_ENABLE_STATS, BPF_LINK_CREATE, BPF_MAP_CREATE, BPF_MAP_DELETE_ELEM, BPF_MAP_GET_NEXT_KEY,
    BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM, BPF_OBJ_GET_INFO_BY_FD, BPF_PROG_ATTACH,
    BPF_PROG_DETACH, BPF_PROG_LOAD, BPF_PROG_QUERY, BPF_RAW_TRACEPOINT_OPEN,
};

/// `BPF_F_ALLOW_MULTI`: several programs per cgroup and attach type (Linux 4.15).
///
/// ```
/// assert_eq!(berth_ebpf_probes::sys::BPF_F_ALLOW_MULTI, 2);
/// ```
pub const BPF_F_ALLOW_MULTI: u32 = berth_sys::bpf_abi::BPF_F_ALLOW_MULTI;
/// `BPF_F_REPLACE`: atomically swap `replace_bpf_fd` for the new program (Linux 5.6).
///
/// ```
/// assert_eq!(berth_ebpf_probes::sys::BPF_F_REPLACE, 4);
/// ```
pub const BPF_F_REPLACE: u32 = berth_sys::bpf_abi::BPF_F_REPLACE;

/// Map types this crate creates (`enum bpf_map_type`).
///
/// ```
/// use berth_ebpf_probes::sys::MapType;
/// assert_eq!(MapType::Hash as u32, 1); // BPF_MAP_TYPE_HASH
/// assert_eq!(MapType::RingBuf as u32, 27);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum MapType {
    /// `BPF_MAP_TYPE_HASH` (Linux 3.19).
    #[doc(alias("BPF_MAP_TYPE_HASH"))]
    Hash = berth_sys::bpf_abi::BPF_MAP_TYPE_HASH,
    /// `BPF_MAP_TYPE_ARRAY` (Linux 3.19).
    #[doc(alias("BPF_MAP_TYPE_ARRAY"))]
    Array = berth_sys::bpf_abi::BPF_MAP_TYPE_ARRAY,
    /// `BPF_MAP_TYPE_RINGBUF` (Linux 5.8); key and value size 0, size a power-of-2 number of pages.
    #[doc(alias("BPF_MAP_TYPE_RINGBUF"))]
    RingBuf = berth_sys::bpf_abi::BPF_MAP_TYPE_RINGBUF,
}

/// Program types this crate loads (`enum bpf_prog_type`).
///
/// ```
/// use berth_ebpf_probes::sys::ProgType;
/// assert_eq!(ProgType::CgroupDevice as u32, 15); // BPF_PROG_TYPE_CGROUP_DEVICE
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ProgType {
    /// `BPF_PROG_TYPE_TRACEPOINT` (Linux 4.7).
    #[doc(alias = "BPF_PROG_TYPE_TRACEPOINT")]
    Tracepoint = berth_sys::bpf_abi::BPF_PROG_TYPE_TRACEPOINT,
    /// `BPF_PROG_TYPE_CGROUP_SKB` (Linux 4.10).
    #[doc(alias = "BPF_PROG_TYPE_CGROUP_SKB")]
    CgroupSkb = berth_sys::bpf_abi::BPF_PROG_TYPE_CGROUP_SKB,
    /// `BPF_PROG_TYPE_CGROUP_DEVICE` (Linux 4.15).
    #[doc(alias = "BPF_PROG_TYPE_CGROUP_DEVICE")]
    CgroupDevice = berth_sys::bpf_abi::BPF_PROG_TYPE_CGROUP_DEVICE,
    /// `BPF_PROG_TYPE_RAW_TRACEPOINT` (Linux 4.17).
    #[doc(alias = "BPF_PROG_TYPE_RAW_TRACEPOINT")]
    RawTracepoint = berth_sys::bpf_abi::BPF_PROG_TYPE_RAW_TRACEPOINT,
}

/// Cgroup attach points (`enum bpf_attach_type`).
///
/// ```
/// use berth_ebpf_probes::sys::AttachType;
/// assert_eq!(AttachType::CgroupDevice as u32, 6); // BPF_CGROUP_DEVICE
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum AttachType {
    /// `BPF_CGROUP_INET_INGRESS` (Linux 4.10).
    #[doc(alias("BPF_CGROUP_INET_INGRESS"))]
    CgroupInetIngress = berth_sys::bpf_abi::BPF_CGROUP_INET_INGRESS,
    /// `BPF_CGROUP_INET_EGRESS` (Linux 4.10).
    #[doc(alias("BPF_CGROUP_INET_EGRESS"))]
    CgroupInetEgress = berth_sys::bpf_abi::BPF_CGROUP_INET_EGRESS,
    /// `BPF_CGROUP_DEVICE` (Linux 4.15).
    #[doc(alias("BPF_CGROUP_DEVICE"))]
    CgroupDevice = berth_sys::bpf_abi::BPF_CGROUP_DEVICE,
}

#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct ProgQueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct RawTpAttr {
    name: u64,
    prog_fd: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The leading fields of `struct bpf_prog_info` (the kernel fills what fits).
#[repr(C)]
#[derive(Default)]
struct ProgInfo {
    prog_type: u32,
    id: u32,
    tag: [u8; 8],
}

fn bpf<T>(cmd: i32, attr: &mut T) -> io::Result<i64> {
    // SAFETY: attr points to a live, initialised repr(C) struct of the given
    // size, laid out as the prefix of `union bpf_attr` for this command.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn bpf_fd<T>(cmd: i32, attr: &mut T) -> io::Result<OwnedFd> {
    let fd = bpf(cmd, attr)?;
    // SAFETY: these commands return a new fd that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn name16(name: &str) -> [u8; 16] {
    // Object names: at most 15 bytes of [A-Za-z0-9_.].
    let mut out = [0u8; 16];
    for (o, c) in out
        .iter_mut()
        .zip(
            name.bytes()
                .filter(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'.'),
        )
        .take(15)
    {
        *o = c;
    }
    out
}

/// Turn an errno from `op` into this crate's error, diagnosing EPERM/EACCES.
pub(crate) fn syscall_error(op: impl Into<String>, source: io::Error) -> Error {
    let op = op.into();
    match source.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => Error::PermissionDenied {
            op,
            hint: privilege_diagnosis(),
            source,
        },
        _ => Error::Syscall { op, source },
    }
}

/// `CAP_SYS_ADMIN` and `CAP_BPF` (Linux 5.8) bit numbers, `capabilities(7)`.
use berth_sys::bpf_abi::{CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON, CAP_SYS_ADMIN};

/// The effective capability mask of this process (`CapEff` in `/proc/self/status`).
fn cap_eff() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).ok()
}

/// A one-line explanation of why BPF may be refused here: euid, effective
/// capabilities, and `/proc/sys/kernel/unprivileged_bpf_disabled`.
///
/// ```
/// let why = berth_ebpf_probes::privilege_diagnosis();
/// assert!(!why.is_empty());
/// ```
pub fn privilege_diagnosis() -> String {
    let euid = berth_sys::fs::euid();
    let caps = cap_eff().unwrap_or(0);
    let has = |bit: u32| caps & (1u64 << bit) != 0;
    let unpriv = std::fs::read_to_string("/proc/sys/kernel/unprivileged_bpf_disabled")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let mut missing = Vec::new();
    if !has(CAP_BPF) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_BPF (or CAP_SYS_ADMIN on kernels before 5.8)");
    }
    if !has(CAP_PERFMON) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_PERFMON for tracing programs");
    }
    if !has(CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN for cgroup attach");
    }
    let mut s = format!("euid {euid}");
    if missing.is_empty() {
        s.push_str(", capabilities present (an LSM or seccomp may be refusing)");
    } else {
        s.push_str(", missing ");
        s.push_str(&missing.join(", "));
    }
    s.push_str(&format!(", kernel.unprivileged_bpf_disabled={unpriv}"));
    if euid != 0 && unpriv != "0" {
        s.push_str(" (unprivileged BPF is disabled: run as root or grant CAP_BPF)");
    }
    s
}

/// Check up front that this process may use BPF at all: root or `CAP_BPF`
/// / `CAP_SYS_ADMIN` effective, or unprivileged BPF enabled
/// (`/proc/sys/kernel/unprivileged_bpf_disabled` = 0). Returns a
/// [`Error::PermissionDenied`] naming what is missing.
///
/// ```no_run
/// berth_ebpf_probes::check_privileges()?; // CAP_BPF (or CAP_SYS_ADMIN) and CAP_PERFMON
/// # Ok::<(), berth_ebpf_probes::Error>(())
/// ```
pub fn check_privileges() -> Result<()> {
    let caps = cap_eff().unwrap_or(0);
    if caps & ((1 << CAP_BPF) | (1 << CAP_SYS_ADMIN)) != 0 {
        return Ok(());
    }
    Err(Error::PermissionDenied {
        op: "using bpf(2)".into(),
        hint: privilege_diagnosis(),
        source: io::Error::from_raw_os_error(libc::EPERM),
    })
}

/// The running kernel's `(major, minor)` from `uname(2)`, and the full release string.
///
/// ```
/// let ((major, minor), release) = berth_ebpf_probes::sys::kernel_version();
/// assert!(major >= 3, "{release}");
/// ```
pub fn kernel_version() -> ((u32, u32), String) {
    let rel = berth_sys::proc::kernel_release();
    if rel.is_empty() {
        return ((0, 0), "unknown".into());
    }
    let mut it = rel
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    let maj = it.next().unwrap_or(0);
    let min = it.next().unwrap_or(0);
    ((maj, min), rel)
}

/// Fail with [`Error::KernelTooOld`] when the kernel is older than `needed`.
pub(crate) fn require_kernel(feature: &'static str, needed: (u32, u32)) -> Result<()> {
    static NEEDED_STR: &[((u32, u32), &str)] = &[
        ((4, 15), "4.15"),
        ((4, 17), "4.17"),
        ((4, 18), "4.18"),
        ((5, 5), "5.5"),
        ((5, 6), "5.6"),
        ((5, 7), "5.7"),
        ((5, 8), "5.8"),
    ];
    let (have, running) = kernel_version();
    if have >= needed {
        return Ok(());
    }
    let needed = NEEDED_STR
        .iter()
        .find(|(v, _)| *v == needed)
        .map(|(_, s)| *s)
        .unwrap_or("a newer version");
    Err(Error::KernelTooOld {
        feature,
        needed,
        running,
    })
}

/// A BPF map, closed on drop.
///
/// ```no_run
/// use berth_ebpf_probes::sys::{Map, MapType};
/// let map = Map::create(MapType::Hash, "demo", 4, 8, 16)?; // BPF_MAP_CREATE
/// map.update(&7u32.to_ne_bytes(), &42u64.to_ne_bytes())?;
/// assert_eq!(map.lookup(&7u32.to_ne_bytes())?, Some(42u64.to_ne_bytes().to_vec()));
/// assert_eq!(map.keys()?.len(), 1);
/// assert!(map.delete(&7u32.to_ne_bytes())?);
/// # Ok::<(), berth_ebpf_probes::Error>(())
/// ```
#[derive(Debug)]
#[doc(alias("BPF_MAP_CREATE"))]
pub struct Map {
    fd: OwnedFd,
    map_type: MapType,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
}

impl Map {
    /// `BPF_MAP_CREATE`. `name` is truncated to 15 bytes.
    ///
    /// ```no_run
    /// use berth_ebpf_probes::sys::{Map, MapType};
    /// let counts = Map::create(MapType::Array, "counts", 4, 8, 512)?; // u32 -> u64, 512 slots
    /// # Ok::<(), berth_ebpf_probes::Error>(())
    /// ```
    pub fn create(
        map_type: MapType,
        name: &str,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
    ) -> Result<Map> {
        if map_type == MapType::RingBuf {
            require_kernel("BPF ring buffer (BPF_MAP_TYPE_RINGBUF)", (5, 8))?;
        }
        let mut attr = MapCreateAttr {
            map_type: map_type as u32,
            key_size,
            value_size,
            max_entries,
            map_name: name16(name),
            ..Default::default()
        };
        let fd = bpf_fd(BPF_MAP_CREATE, &mut attr)
            .map_err(|e| syscall_error(format!("BPF_MAP_CREATE({map_type:?} {name})"), e))?;
        tracing::debug!(
            map = name,
            ?map_type,
            fd = fd.as_raw_fd(),
            "created BPF map"
        );
        Ok(Map {
            fd,
            map_type,
            key_size,
            value_size,
            max_entries,
        })
    }

    /// The map's type.
    ///
    /// ```no_run
    /// # use berth_ebpf_probes::sys::{Map, MapType};
    /// # let map = Map::create(MapType::Hash, "demo", 4, 8, 16)?;
    /// assert_eq!(map.map_type(), MapType::Hash);
    /// # Ok::<(), berth_ebpf_probes::Error>(())
    /// ```
    pub fn map_type(&self) -> MapType {
        self.map_type
    }

    /// Maximum number of entries (bytes for a ring buffer).
    ///
    /// ```no_run
    /// # use berth_ebpf_probes::sys::{Map, MapType};
    /// # let map = Map::create(MapType::Hash, "demo", 4, 8, 16)?;
    /// assert_eq!(map.max_entries(), 16);
    /// # Ok::<(), berth_ebpf_probes::Error>(())
    /// ```
    pub fn max_entries(&self) -> u32 {
        self.max_entries
    }

    fn check(&self, key: &[u8], value: usize) -> Result<()> {
        if key.len() != self.key_size as usize || value != self.value_size as usize {
            return Err(Error::Syscall {
                op: format!(
                    "map access with key {} / value {} bytes on a map of {} / {}",
                    key.len(),
                    value,
                    self.key_size,
                    self.value_size
                ),
                source: io::Error::from_raw_os_error(libc::EINVAL),
            });
        }
        Ok(())
    }

    /// `BPF_MAP_LOOKUP_ELEM`: the value for `key`, `None` when absent.
    ///
    /// ```no_run
    /// # use berth_ebpf_probes::sys::{Map, MapType};
    /// # let map = Map::create(MapType::Hash, "demo", 4, 8, 16)?;
    /// assert_eq!(map.lookup(&1u32.to_ne_bytes())?, None);
    /// # Ok::<(), berth_ebpf_probes::Error>(())
    /// ```
    #[doc(alias("BPF_MAP_LOOKUP_ELEM"))]
    pub fn lookup(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.check(key, self.value_size as usize)?;
        let mut value = vec![0u8; self.value_size as usize];
        let mut attr = MapElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            value: value.as_mut_ptr() as u64,
            ..Default::default()
        };
        match bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) {
            Ok(_) => Ok(Some(value)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(syscall_error("BPF_MAP_LOOKUP_ELEM", e)),
        }
    }

    /// `BPF_MAP_UPDATE_ELEM` with `BPF_ANY`.
    ///
    /// ```no_run
    /// # use berth_ebpf_probes::sys::{Map, MapType};
    /// # let map = Map::create(MapType::Hash, "demo", 4, 8, 16)?;
    /// map.update(&1u32.to_ne_bytes(), &5u64.to_ne_bytes())?;
    /// # Ok::<(), berth_ebpf_probes::Error>(())
    /// ```
    #[doc(alias("BPF_MAP_UPDATE_ELEM"))]
    pub fn update(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.check(key, value.len())?;
        let mut attr = MapElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            value: value.as_ptr() as u64,
            ..Default::default()
        };
        bpf(BPF_MAP_UPDATE_ELEM, &mut attr)
            .map(|_| ())
            .map_err(|e| syscall_error("BPF_MAP_UPDATE_ELEM", e))
    }

    /// `BPF_MAP_DELETE_ELEM`; `Ok(false)` when the key was absent.
    ///
    /// ```no_run
    /// # use berth_ebpf_probes::sys::{Map, MapType};
    /// # let map = Map::create(MapType::Hash, "demo", 4, 8, 16)?;
    /// map.update(&1u32.to_ne_bytes(), &5u64.to_ne_bytes())?;
    /// assert!(map.delete(&1u32.to_ne_bytes())?);
    /// assert!(!map.delete(&1u32.to_ne_bytes())?);
    /// # Ok::<(), berth_ebpf_probes::Error>(())
    /// ```
    #[doc(alias("BPF_MAP_DELETE_ELEM"))]
    pub fn delete(&self, key: &[u8]) -> Result<bool> {
        self.check(key, self.value_size as usize)?;
        let mut attr = MapElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            ..Default::default()
        };
        match bpf(BPF_MAP_DELETE_ELEM, &mut attr) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(syscall_error("BPF_MAP_DELETE_ELEM", e)),
        }
    }

    /// All keys, by `BPF_MAP_GET_NEXT_KEY` iteration.
    ///
    /// ```no_run
    /// # use berth_ebpf_probes::sys::{Map, MapType};
    /// # let map = Map::create(MapType::Hash, "demo", 4, 8, 16)?;
    /// for key in map.keys()? {
    ///     println!("{key:?}");
    /// }
    /// # Ok::<(), berth_ebpf_probes::Error>(())
    /// ```
    #[doc(alias("BPF_MAP_GET_NEXT_KEY"))]
    pub fn keys(&self) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut cur: Option<Vec<u8>> = None;
        loop {
            let mut next = vec![0u8; self.key_size as usize];
            let mut attr = MapElemAttr {
                map_fd: self.fd.as_raw_fd() as u32,
                key: cur.as_ref().map_or(0, |k| k.as_ptr() as u64),
                value: next.as_mut_ptr() as u64,
                ..Default::default()
            };
            match bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) {
                Ok(_) => {
                    out.push(next.clone());
                    cur = Some(next);
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(out),
                Err(e) => return Err(syscall_error("BPF_MAP_GET_NEXT_KEY", e)),
            }
        }
    }
}

impl AsFd for Map {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Map {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// A loaded BPF program, unloaded when its last reference (this fd, an
/// attachment, a link) goes.
///
/// ```no_run
/// use berth_ebpf_probes::asm::{Asm, Reg};
/// use berth_ebpf_probes::sys::{attach_cgroup, detach_cgroup, AttachType, ProgType, Program};
/// use std::os::fd::AsFd;
/// // A device filter that allows everything: return 1.
/// let mut a = Asm::new();
/// a.mov64_imm(Reg::R0, 1).exit();
/// let insns = a.build()?;
/// let prog = Program::load(ProgType::CgroupDevice, "allow_all", &insns, "GPL", Some(AttachType::CgroupDevice))?;
/// println!("loaded {} as id {}", prog.name(), prog.id()?);
/// let cg = std::fs::File::open("/sys/fs/cgroup/my-job")?;
/// attach_cgroup(cg.as_fd(), &prog, AttachType::CgroupDevice, 0, None)?;
/// detach_cgroup(cg.as_fd(), &prog, AttachType::CgroupDevice)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[doc(alias("BPF_PROG_LOAD"))]
pub struct Program {
    fd: OwnedFd,
    name: String,
    prog_type: ProgType,
}

/// Size of the verifier log buffer requested on a failed load.
const LOG_SIZE: usize = 1 << 20;

impl Program {
    /// `BPF_PROG_LOAD`. On failure the load is retried with a level-1
    /// verifier log, returned in [`Error::Verifier`].
    ///
    /// ```no_run
    /// # use berth_ebpf_probes::asm::{Asm, Reg};
    /// # use berth_ebpf_probes::sys::{AttachType, ProgType, Program};
    /// # let mut a = Asm::new();
    /// # a.mov64_imm(Reg::R0, 1).exit();
    /// # let insns = a.build()?;
    /// let prog = Program::load(ProgType::CgroupDevice, "allow_all", &insns, "GPL", Some(AttachType::CgroupDevice))?;
    /// # Ok::<(), berth_ebpf_probes::Error>(())
    /// ```
    pub fn load(
        prog_type: ProgType,
        name: &str,
        insns: &[Insn],
        license: &str,
        expected_attach_type: Option<AttachType>,
    ) -> Result<Program> {
        let lic = CString::new(license).map_err(|_| Error::Syscall {
            op: format!("BPF_PROG_LOAD({name}): license string contains NUL"),
            source: io::Error::from_raw_os_error(libc::EINVAL),
        })?;
        let mut attr = ProgLoadAttr {
            prog_type: prog_type as u32,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: lic.as_ptr() as u64,
            prog_name: name16(name),
            expected_attach_type: expected_attach_type.map_or(0, |a| a as u32),
            ..Default::default()
        };
        let first = match bpf_fd(BPF_PROG_LOAD, &mut attr) {
            Ok(fd) => {
                tracing::debug!(
                    program = name,
                    ?prog_type,
                    insns = insns.len(),
                    "loaded BPF program"
                );
                return Ok(Program {
                    fd,
                    name: name.to_string(),
                    prog_type,
                });
            }
            Err(e) => e,
        };
        if matches!(first.raw_os_error(), Some(libc::EPERM)) {
            return Err(syscall_error(format!("BPF_PROG_LOAD({name})"), first));
        }
        let mut log = vec![0u8; LOG_SIZE];
        attr.log_level = 1;
        attr.log_size = LOG_SIZE as u32;
        attr.log_buf = log.as_mut_ptr() as u64;
        match bpf_fd(BPF_PROG_LOAD, &mut attr) {
            // Loaded with a log when it failed without one: take it anyway.
            Ok(fd) => Ok(Program {
                fd,
                name: name.to_string(),
                prog_type,
            }),
            Err(e) => {
                let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
                let text = String::from_utf8_lossy(&log[..end]).into_owned();
                tracing::warn!(program = name, error = %e, "verifier rejected BPF program");
                Err(Error::Verifier {
                    program: name.to_string(),
                    source: e,
                    log: text,
                })
            }
        }
    }

    /// Load like [`load`](Self::load), always with a verifier log at
    /// `log_level` (1 = verdicts per instruction, 2 = full states, 4 =
    /// statistics only; they combine), and return the log with the program.
    ///
    /// ```no_run
    /// # use berth_ebpf_probes::asm::{Asm, Reg};
    /// # use berth_ebpf_probes::sys::{AttachType, ProgType, Program};
    /// # let mut a = Asm::new();
    /// # a.mov64_imm(Reg::R0, 1).exit();
    /// # let insns = a.build()?;
    /// let (prog, log) = Program::load_with_log(ProgType::CgroupDevice, "allow_all", &insns, "GPL", Some(AttachType::CgroupDevice), 4)?;
    /// println!("verifier: {log}");
    /// # Ok::<(), berth_ebpf_probes::Error>(())
    /// ```
    pub fn load_with_log(
        prog_type: ProgType,
        name: &str,
        insns: &[Insn],
        license: &str,
        expected_attach_type: Option<AttachType>,
        log_level: u32,
    ) -> Result<(Program, String)> {
        let lic = CString::new(license).map_err(|_| Error::Syscall {
            op: format!("BPF_PROG_LOAD({name}): license string contains NUL"),
            source: io::Error::from_raw_os_error(libc::EINVAL),
        })?;
        let mut log = vec![0u8; LOG_SIZE];
        let mut attr = ProgLoadAttr {
            prog_type: prog_type as u32,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: lic.as_ptr() as u64,
            prog_name: name16(name),
            expected_attach_type: expected_attach_type.map_or(0, |a| a as u32),
            log_level,
            log_size: LOG_SIZE as u32,
            log_buf: log.as_mut_ptr() as u64,
            ..Default::default()
        };
        let res = bpf_fd(BPF_PROG_LOAD, &mut attr);
        let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
        let text = String::from_utf8_lossy(&log[..end]).into_owned();
        match res {
            Ok(fd) => Ok((
                Program {
                    fd,
                    name: name.to_string(),
                    prog_type,
                },
                text,
            )),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                Err(syscall_error(format!("BPF_PROG_LOAD({name})"), e))
            }
            Err(e) => Err(Error::Verifier {
                program: name.to_string(),
                source: e,
                log: text,
            }),
        }
    }

    /// The name given at load.
    ///
    /// ```no_run
    /// # use berth_ebpf_probes::asm::{Asm, Reg};
    /// # use berth_ebpf_probes::sys::{AttachType, ProgType, Program};
    /// # let mut a = Asm::new();
    /// # a.mov64_imm(Reg::R0, 1).exit();
    /// # let insns = a.build()?;
    /// # let prog = Program::load(ProgType::CgroupDevice, "allow_all", &insns, "GPL", Some(AttachType::CgroupDevice))?;
    /// assert_eq!(prog.name(), "allow_all");
    /// # Ok::<(), berth_ebpf_probes::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The program type.
    ///
    /// ```no_run
    /// # use berth_ebpf_probes::asm::{Asm, Reg};
    /// # use berth_ebpf_probes::sys::{AttachType, ProgType, Program};
    /// # let mut a = Asm::new();
    /// # a.mov64_imm(Reg::R0, 1).exit();
    /// # let insns = a.build()?;
    /// # let prog = Program::load(ProgType::CgroupDevice, "allow_all", &insns, "GPL", Some(AttachType::CgroupDevice))?;
    /// assert_eq!(prog.prog_type(), ProgType::CgroupDevice);
    /// # Ok::<(), berth_ebpf_probes::Error>(())
    /// ```
    pub fn prog_type(&self) -> ProgType {
        self.prog_type
    }

    /// The kernel's id for this program (`BPF_OBJ_GET_INFO_BY_FD`), as
    /// [`query_cgroup`] and `bpftool prog` list it.
    ///
    /// ```no_run
    /// # use berth_ebpf_probes::asm::{Asm, Reg};
    /// # use berth_ebpf_probes::sys::{AttachType, ProgType, Program};
    /// # let mut a = Asm::new();
    /// # a.mov64_imm(Reg::R0, 1).exit();
    /// # let insns = a.build()?;
    /// # let prog = Program::load(ProgType::CgroupDevice, "allow_all", &insns, "GPL", Some(AttachType::CgroupDevice))?;
    /// println!("bpftool prog show id {}", prog.id()?);
    /// # Ok::<(), berth_ebpf_probes::Error>(())
    /// ```
    #[doc(alias("BPF_OBJ_GET_INFO_BY_FD"))]
    pub fn id(&self) -> Result<u32> {
        let mut info = ProgInfo::default();
        let mut attr = InfoAttr {
            bpf_fd: self.fd.as_raw_fd() as u32,
            info_len: size_of::<ProgInfo>() as u32,
            info: &mut info as *mut ProgInfo as u64,
        };
        bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)
            .map_err(|e| syscall_error(format!("BPF_OBJ_GET_INFO_BY_FD({})", self.name), e))?;
        Ok(info.id)
    }
}

impl Program {
    /// (runs, total nanoseconds) accounted while statistics are enabled
    /// ([`enable_run_time_stats`]), from `/proc/self/fdinfo/<fd>`
    /// (`run_cnt`, `run_time_ns`; Linux 5.1).
    ///
    /// ```no_run
    /// # use berth_ebpf_probes::asm::{Asm, Reg};
    /// # use berth_ebpf_probes::sys::{AttachType, ProgType, Program};
    /// # let mut a = Asm::new();
    /// # a.mov64_imm(Reg::R0, 1).exit();
    /// # let insns = a.build()?;
    /// # let prog = Program::load(ProgType::CgroupDevice, "allow_all", &insns, "GPL", Some(AttachType::CgroupDevice))?;
    /// let _on = berth_ebpf_probes::sys::enable_run_time_stats()?;
    /// let (runs, run_ns) = prog.run_stats()?;
    /// # Ok::<(), berth_ebpf_probes::Error>(())
    /// ```
    #[doc(alias("BPF_ENABLE_STATS"))]
    pub fn run_stats(&self) -> Result<(u64, u64)> {
        let path = format!("/proc/self/fdinfo/{}", self.fd.as_raw_fd());
        let text = std::fs::read_to_string(&path).map_err(|source| Error::File {
            what: "reading program fdinfo",
            path: path.clone().into(),
            source,
        })?;
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok((field("run_cnt:"), field("run_time_ns:")))
    }
}

impl AsFd for Program {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Program {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// `BPF_PROG_ATTACH` of `prog` to the cgroup directory `cgroup`.
/// `replace`: with [`BPF_F_REPLACE`], the program to swap out atomically.
///
/// ```no_run
/// use berth_ebpf_probes::sys::{attach_cgroup, AttachType, BPF_F_ALLOW_MULTI};
/// use std::os::fd::AsFd;
/// let prog = berth_ebpf_probes::DeviceFilter::container_default().load()?;
/// let cg = std::fs::File::open("/sys/fs/cgroup/my-job")?;
/// attach_cgroup(cg.as_fd(), &prog, AttachType::CgroupDevice, BPF_F_ALLOW_MULTI, None)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(alias("BPF_PROG_ATTACH"))]
pub fn attach_cgroup(
    cgroup: BorrowedFd<'_>,
    prog: &Program,
    attach_type: AttachType,
    flags: u32,
    replace: Option<&Program>,
) -> Result<()> {
    let mut attr = ProgAttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: attach_type as u32,
        attach_flags: flags,
        replace_bpf_fd: replace.map_or(0, |p| p.as_raw_fd() as u32),
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map(|_| ()).map_err(|e| {
        syscall_error(
            format!(
                "BPF_PROG_ATTACH({} as {attach_type:?}, flags {flags:#x}) to cgroup fd {}",
                prog.name,
                cgroup.as_raw_fd()
            ),
            e,
        )
    })
}

/// `BPF_PROG_DETACH` of `prog` from the cgroup directory `cgroup`.
///
/// ```no_run
/// use berth_ebpf_probes::sys::{attach_cgroup, detach_cgroup, AttachType};
/// use std::os::fd::AsFd;
/// let prog = berth_ebpf_probes::DeviceFilter::container_default().load()?;
/// let cg = std::fs::File::open("/sys/fs/cgroup/my-job")?;
/// attach_cgroup(cg.as_fd(), &prog, AttachType::CgroupDevice, 0, None)?;
/// detach_cgroup(cg.as_fd(), &prog, AttachType::CgroupDevice)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(alias("BPF_PROG_DETACH"))]
pub fn detach_cgroup(
    cgroup: BorrowedFd<'_>,
    prog: &Program,
    attach_type: AttachType,
) -> Result<()> {
    let mut attr = ProgAttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: attach_type as u32,
        ..Default::default()
    };
    bpf(BPF_PROG_DETACH, &mut attr).map(|_| ()).map_err(|e| {
        syscall_error(
            format!(
                "BPF_PROG_DETACH({} as {attach_type:?}) from cgroup fd {}",
                prog.name,
                cgroup.as_raw_fd()
            ),
            e,
        )
    })
}

/// `BPF_PROG_QUERY`: ids of the programs attached directly to `cgroup` at
/// `attach_type` (Linux 4.15).
///
/// ```no_run
/// use berth_ebpf_probes::sys::{query_cgroup, AttachType};
/// use std::os::fd::AsFd;
/// let cg = std::fs::File::open("/sys/fs/cgroup/my-job")?;
/// let ids = query_cgroup(cg.as_fd(), AttachType::CgroupDevice)?;
/// println!("device programs attached: {ids:?}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(alias("BPF_PROG_QUERY"))]
pub fn query_cgroup(cgroup: BorrowedFd<'_>, attach_type: AttachType) -> Result<Vec<u32>> {
    let mut ids = vec![0u32; 256];
    loop {
        let mut attr = ProgQueryAttr {
            target_fd: cgroup.as_raw_fd() as u32,
            attach_type: attach_type as u32,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            ..Default::default()
        };
        match bpf(BPF_PROG_QUERY, &mut attr) {
            Ok(_) => {
                ids.truncate(attr.prog_cnt as usize);
                return Ok(ids);
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                ids = vec![0u32; attr.prog_cnt as usize + 16];
            }
            Err(e) => {
                return Err(syscall_error(
                    format!(
                        "BPF_PROG_QUERY({attach_type:?}) on cgroup fd {}",
                        cgroup.as_raw_fd()
                    ),
                    e,
                ))
            }
        }
    }
}

/// `BPF_ENABLE_STATS(BPF_STATS_RUN_TIME)` (Linux 5.8): while the returned
/// fd is open the kernel accounts each program's run count and run time
/// ([`Program::run_stats`]); closing it turns accounting off again (unlike
/// the `kernel.bpf_stats_enabled` sysctl, nothing global is left changed).
///
/// ```no_run
/// let stats_on = berth_ebpf_probes::sys::enable_run_time_stats()?;
/// let prog = berth_ebpf_probes::DeviceFilter::container_default().load()?;
/// let (runs, ns) = prog.run_stats()?;
/// drop(stats_on); // accounting off again
/// # Ok::<(), berth_ebpf_probes::Error>(())
/// ```
#[doc(alias("BPF_ENABLE_STATS"))]
pub fn enable_run_time_stats() -> Result<OwnedFd> {
    require_kernel("BPF run-time statistics (BPF_ENABLE_STATS)", (5, 8))?;
    #[repr(C)]
    #[derive(Default)]
    struct StatsAttr {
        type_: u32,
    }
    let mut attr = StatsAttr::default();
    bpf_fd(BPF_ENABLE_STATS, &mut attr).map_err(|e| syscall_error("BPF_ENABLE_STATS", e))
}

/// `BPF_LINK_CREATE` of `prog` on the cgroup directory `cgroup` (Linux
/// 5.7): the returned link fd is the attachment, and closing it detaches
/// the program, so nothing outlives its owner even on a crash. Links
/// coexist with `BPF_F_ALLOW_MULTI` attachments.
///
/// ```no_run
/// use berth_ebpf_probes::sys::{link_cgroup, AttachType};
/// use std::os::fd::AsFd;
/// let prog = berth_ebpf_probes::DeviceFilter::container_default().load()?;
/// let cg = std::fs::File::open("/sys/fs/cgroup/my-job")?;
/// let link = link_cgroup(cg.as_fd(), &prog, AttachType::CgroupDevice)?;
/// drop(link); // detaches
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(alias("BPF_LINK_CREATE"))]
pub fn link_cgroup(
    cgroup: BorrowedFd<'_>,
    prog: &Program,
    attach_type: AttachType,
) -> Result<OwnedFd> {
    require_kernel("cgroup BPF links (BPF_LINK_CREATE)", (5, 7))?;
    let mut attr = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: attach_type as u32,
        flags: 0,
    };
    bpf_fd(BPF_LINK_CREATE, &mut attr).map_err(|e| {
        syscall_error(
            format!(
                "BPF_LINK_CREATE({} as {attach_type:?}) on cgroup fd {}",
                prog.name,
                cgroup.as_raw_fd()
            ),
            e,
        )
    })
}

/// `BPF_RAW_TRACEPOINT_OPEN`: attach a raw tracepoint program to the
/// tracepoint `name` (e.g. `sys_enter`); the returned fd is the attachment
/// and detaches on close (Linux 4.17).
///
/// ```no_run
/// use berth_ebpf_probes::sys::raw_tracepoint_open;
/// let (prog, _counts) = berth_ebpf_probes::SyscallCounter::load(0)?;
/// let attachment = raw_tracepoint_open("sys_enter", &prog)?;
/// drop(attachment); // detaches
/// # Ok::<(), berth_ebpf_probes::Error>(())
/// ```
#[doc(alias("BPF_RAW_TRACEPOINT_OPEN"))]
pub fn raw_tracepoint_open(name: &str, prog: &Program) -> Result<OwnedFd> {
    require_kernel("raw tracepoints (BPF_RAW_TRACEPOINT_OPEN)", (4, 17))?;
    let c = CString::new(name).map_err(|_| Error::Syscall {
        op: format!("raw tracepoint name {name:?} contains NUL"),
        source: io::Error::from_raw_os_error(libc::EINVAL),
    })?;
    let mut attr = RawTpAttr {
        name: c.as_ptr() as u64,
        prog_fd: prog.as_raw_fd() as u32,
        ..Default::default()
    };
    bpf_fd(BPF_RAW_TRACEPOINT_OPEN, &mut attr)
        .map_err(|e| syscall_error(format!("BPF_RAW_TRACEPOINT_OPEN({name}, {})", prog.name), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_kernel_is_a_clear_error() {
        assert!(require_kernel("cgroup device programs", (4, 15)).is_ok());
        let e = require_kernel("a feature from the future", (99, 0)).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("a feature from the future needs Linux a newer version"),
            "{msg}"
        );
        assert!(msg.contains(&kernel_version().1), "{msg}");
    }

    #[test]
    fn error_is_send_sync_static() {
        fn check<T: Send + Sync + 'static>() {}
        check::<Error>();
    }

    #[test]
    fn names_are_sanitised_and_truncated() {
        assert_eq!(&name16("berth-devices_filter.x"), b"berthdevices_fi\0");
    }

    #[test]
    fn permission_errors_carry_a_diagnosis() {
        let e = syscall_error(
            "BPF_PROG_LOAD(x)",
            io::Error::from_raw_os_error(libc::EPERM),
        );
        let msg = e.to_string();
        assert!(msg.contains("euid"), "{msg}");
        assert!(msg.contains("kernel.unprivileged_bpf_disabled="), "{msg}");
        assert!(matches!(
            syscall_error("x", io::Error::from_raw_os_error(libc::EINVAL)),
            Error::Syscall { .. }
        ));
    }
}
