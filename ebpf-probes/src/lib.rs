//! `berth-ebpf-probes`: eBPF device control and per-container observability.
//!
//! This crate owns a typed BPF instruction assembler, the `bpf(2)` layer
//! (maps, program load, attach, links, ring buffers), the cgroup device
//! filter, and exec/syscall/network probes keyed by cgroup id. No C
//! toolchain, no ELF objects.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

pub mod asm;
mod cgroup;
mod error;
pub mod ringbuf;
pub mod sys;
pub mod tracefs;

pub use cgroup::{cgroup_id, open_cgroup};
pub use error::{Error, Result};
mod device;
mod probes;
mod shared;

pub use device::{
    AttachedDeviceFilter, DeviceAccess, DeviceFilter, DeviceKind, DeviceRule, MAX_MAJOR, MAX_MINOR,
};
pub use probes::{
    load_all_programs, ExecEvent, ExecProbe, NetCounter, NetStats, SyscallCounter,
    EXEC_BUFFER_DEFAULT, EXEC_FILENAME_MAX, SYSCALL_SLOTS,
};
pub use sys::{check_privileges, privilege_diagnosis};
