//! `berth-cgroups`: a complete cgroup v2 controller.
//!
//! - [`Hierarchy`]: discovery of the cgroup2 mount from `/proc/self/mountinfo`,
//!   verified with `statfs(2)` magic `CGROUP2_SUPER_MAGIC` (a tmpfs at
//!   `/sys/fs/cgroup` on a hybrid host is never taken for it), the process's
//!   own cgroup, the controllers offered at each level.
//! - [`Cgroup`] / [`CgroupBuilder`]: a handle over a directory fd (every
//!   operation is `openat`-relative): create nested groups, enable
//!   controllers down the tree, add processes (pid or pidfd), list
//!   procs/threads, freeze/thaw, kill, remove.
//! - [`Resources`]: typed cpu/cpuset/memory/io/pids/hugetlb settings,
//!   validated before anything is written, also from the OCI runtime spec
//!   (`Resources::from_oci`, cargo feature `oci`).
//! - [`Stats`]: `cpu.stat`, memory, `io.stat`, pids and PSI parsed into structs.
//! - [`EventWatcher`]: inotify on `cgroup.events`/`memory.events`, typed [`Event`]s.
//!
//! Kernel: cgroup v2 (4.5+); `cgroup.freeze` needs 5.2, `cgroup.kill` 5.14
//! (a pid-by-pid fallback is used before), `cpu.idle` 5.15, `memory.peak` 5.19.
//!
//! ```no_run
//! use berth_cgroups::{CgroupBuilder, Limit, Resources};
//! let cg = CgroupBuilder::new("demo")
//!     .resources(Resources::new().pids_max(Limit::Value(32)).memory_max(Limit::Value(64 << 20)))
//!     .create()?;
//! let child = std::process::Command::new("true").spawn().expect("spawn");
//! cg.add_process(child.id())?;
//! println!("{:?}", cg.stats()?.memory);
//! cg.remove()?;
//! # Ok::<(), berth_cgroups::Error>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

#[cfg(feature = "tokio")]
pub mod asynchronous;
mod cgroup;
mod error;
mod hierarchy;
#[cfg(feature = "oci")]
mod oci;
mod resources;
mod stats;
mod v1;
/// The kernel layer: every file system call of this crate is berth-sys's.
use berth_sys::fs as sys;
mod watch;

pub use cgroup::{ApplyReport, Cgroup, CgroupBuilder, Skipped, StatsReader, DEFAULT_TIMEOUT};
pub use error::{Error, Result};
pub use hierarchy::{
    parse_mountinfo, parse_proc_cgroup, verify_cgroup2, Controller, Controllers, Hierarchy,
    MountEntry,
};
pub use resources::{
    parse_cpu_list, Cpu, CpuMax, Cpuset, HugetlbLimit, Io, IoDeviceWeight, IoMax, Limit, Memory,
    Resources, Setting,
};
pub use stats::{
    parse_io_stat, parse_single, CgroupEvents, CpuStat, IoDeviceStat, MemoryEvents, MemoryStats,
    PidsStats, Pressure, PressureLine, Stats,
};
pub use v1::{blkio_weight_to_io_weight, shares_to_weight};
pub use watch::{Event, EventWatcher};
