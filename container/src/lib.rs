//! `berth`: Linux containers as a library.
//!
//! [`Container::builder`] composes the leaf crates — berth-namespaces (the
//! spawn path), berth-cgroups, berth-overlay, berth-netsetup,
//! berth-security, berth-ebpf-probes — into a hardened container, shaped
//! like [`std::process::Command`]:
//!
//! ```no_run
//! use berth::{Container, Rootfs, Stdio};
//! use berth_cgroups::{Limit, Resources};
//!
//! let mut c = Container::builder("web-1")
//!     .rootfs(Rootfs::host()) // the host's `/` read-only, private writable layer
//!     .hostname("web-1")
//!     .resources(Resources::new().pids_max(Limit::Value(128)))
//!     .ignore_unavailable(true)
//!     .command(["/bin/sh", "-c", "echo hi from $(hostname)"])
//!     .stdout(Stdio::Piped)
//!     .spawn()?;
//! let status = c.wait()?;
//! c.destroy()?;
//! # Ok::<(), berth::Error>(())
//! ```
//!
//! The container's process is cloned with `clone3(CLONE_INTO_CGROUP |
//! CLONE_NEW*)`, runs a step plan prepared in the parent (root filesystem,
//! `/proc`, `/dev`, `/sys`, masked and read-only paths, extra mounts,
//! `pivot_root`), then applies the security policy and calls `execve`.
//! A state directory (default `/run/berth/<id>`) records what [`gc`] needs
//! to reclaim a container whose owner died.
//!
//! With the cargo feature `tokio`, every blocking call has an awaited
//! twin — `ContainerBuilder::spawn_async`, `output_async`,
//! `status_async`, `Container::wait_async`, `wait_with_output_async`,
//! `destroy_async`, `Exec::output_async` — and
//! `Container::events_async` is a `Stream` of [`ContainerEvent`]s. Waits
//! are the init's pidfd in tokio's reactor (no thread per container),
//! events are inotify on the cgroup's files, and every future is
//! cancel-safe: dropped, it leaves the container running and whole, or
//! removed (see the `asynchronous` module's source for the rules).
//!
//! ```no_run
//! # #[cfg(feature = "tokio")]
//! # async fn demo() -> Result<(), berth::Error> {
//! let out = berth::Container::builder("job-1")
//!     .command(["/bin/sh", "-c", "echo hi"])
//!     .timeout(std::time::Duration::from_secs(30))
//!     .output_async()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Kernel: Linux 5.8 or newer (`clone3` with `CLONE_INTO_CGROUP` 5.7,
//! `setns` on a pidfd 5.8, `mount_setattr` 5.12 for read-only binds),
//! cgroup v2 for resources, overlayfs; rootless overlay needs 5.11.
//!
//! # Finding your way
//!
//! Every type `berth`'s API takes or returns is re-exported here, so these
//! pages link all of them. The layers underneath are here whole too, for
//! what `berth` does not wrap: [`namespaces`] (`clone3`, `setns`, the step
//! plan), [`cgroups`], [`overlay`] (mounts, layer store, OCI layouts),
//! [`netsetup`] ([`netsetup::Netlink`], [`netsetup::NetNs`], nftables),
//! [`security`] and [`ebpf`] (the `bpf(2)` layer [`ebpf::sys`] and its
//! assembler [`ebpf::asm`]). Search by the kernel's word: `CLONE_NEWNET`,
//! `pivot_root`, `memory.max`, `cgroup.freeze`, `SECCOMP_SET_MODE_FILTER`,
//! `PR_SET_NO_NEW_PRIVS`, `lowerdir`, `RTM_NEWLINK`, `NFT_MSG_NEWRULE`,
//! `BPF_PROG_TYPE_CGROUP_DEVICE`… each finds the item that does it.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

#[cfg(feature = "tokio")]
mod asynchronous;
mod build;
mod builder;
mod bundle;
mod commit;
mod config;
mod container;
mod error;
mod exec;
mod fs;
mod limits;
mod network;
mod output;
mod pasta;
mod perf;
mod pty;
mod state;
mod undo;

#[cfg(feature = "tokio")]
pub use asynchronous::AsyncEvents;
pub use builder::{validate_id, ContainerBuilder, MAX_ID_LEN};
#[cfg(feature = "oci")]
pub use bundle::Bundle;
pub use config::{
    default_store_dir, DeviceNode, DeviceNodeKind, Mount, Network, Propagation, Rootfs, Seccomp,
};
pub use container::{
    Container, ContainerEvent, ContainerStats, Events, Exec, ExecChild, InterfaceStats,
};
pub use error::{Error, Result};
pub use limits::{AppliedLimits, SkippedLimit};
pub use network::NetworkBuilder;
pub use pty::open_pty_and_send_master;
pub use state::{default_state_root, delete, gc, GcReport, NetworkState, State, STATE_FILE};

/// What [`ExecChild::wait`] and [`Exec::output`] return (std's types).
pub use std::process::{ExitStatus, Output};

pub use berth_cgroups::{Limit, Resources};
pub use berth_namespaces::{IdMap, Namespaces, Stdio};
pub use berth_netsetup::{NetworkRecord, PortMapping};
/// What [`Container::diff`], [`Container::commit`] and
/// [`ContainerBuilder::image_config`] take and return (berth-overlay's).
pub use berth_overlay::{Compression, ImageConfig, LayerBlob, LayerStore};
/// What [`Container::commit`] returns and [`Rootfs::image`] reads (cargo
/// feature `oci`).
#[cfg(feature = "oci")]
pub use berth_overlay::{Image, ImageLayout};
pub use berth_security::{CapSet, Capabilities, Resource};
/// A signal for [`Container::signal`] (nix's typed enum: `Signal::SIGTERM`).
pub use nix::sys::signal::Signal;

// Every type `berth`'s own API names, re-exported so that `cargo doc -p
// berth` links each one (issue 22 item 9). One block, kept apart from the
// re-exports above so parallel branches do not collide.

/// berth-namespaces' error, wrapped by [`Error::Namespaces`].
pub use berth_namespaces::Error as NamespacesError;

/// What applying [`Resources`] did: the settings written and those skipped.
pub use berth_cgroups::ApplyReport;
/// The container's cgroup v2 directory, from [`Container::cgroup`].
pub use berth_cgroups::Cgroup;
/// How a [`Cgroup`] is created (parent, name, resources, ownership).
pub use berth_cgroups::CgroupBuilder;
/// `cgroup.events` (`populated`, `frozen`) of a [`Cgroup`].
pub use berth_cgroups::CgroupEvents;
/// One cgroup v2 controller (`memory`, `cpu`, `io`, `pids`, …).
pub use berth_cgroups::Controller;
/// The controllers a cgroup has (`cgroup.controllers`), named by
/// [`Resources`] when one is missing.
pub use berth_cgroups::Controllers;
/// `cpu.max` (quota and period), the bandwidth part of [`Cpu`].
pub use berth_cgroups::CpuMax;
/// berth-cgroups' error, wrapped by [`Error::Cgroups`].
pub use berth_cgroups::Error as CgroupsError;
/// What an [`EventWatcher`] reports (populated, frozen, an OOM kill, …).
pub use berth_cgroups::Event as CgroupEvent;
/// A watcher of a cgroup's `cgroup.events` and `memory.events` (inotify).
pub use berth_cgroups::EventWatcher;
/// The cgroup v2 mount a [`Cgroup`] lives in.
pub use berth_cgroups::Hierarchy;
/// One device's `io.weight`, part of [`Io`].
pub use berth_cgroups::IoDeviceWeight;
/// `memory.events` (`low`, `high`, `max`, `oom`, `oom_kill`).
pub use berth_cgroups::MemoryEvents;
/// One line (`some` or `full`) of a PSI file, part of [`Pressure`].
pub use berth_cgroups::PressureLine;
/// One limit an [`ApplyReport`] skipped, and why.
pub use berth_cgroups::Skipped;
/// A cgroup's usage (`memory.stat`, `cpu.stat`, `io.stat`, `pids.current`,
/// PSI), the `cgroup` part of [`ContainerStats`].
pub use berth_cgroups::Stats;
/// A reader of a cgroup's stat files that keeps them open between reads.
pub use berth_cgroups::StatsReader;
/// The parts of [`Resources`]: `memory.*`, `cpu.*`, `cpuset.*`, `io.*`,
/// `hugetlb.*` settings and one raw `file = value` [`Setting`].
pub use berth_cgroups::{Cpu, Cpuset, HugetlbLimit, Io, IoMax, Memory, Setting};
/// The parts of [`Stats`]: `cpu.stat`, `io.stat` per device, `memory.stat`,
/// `pids.current`/`pids.max`, and PSI (`*.pressure`).
pub use berth_cgroups::{CpuStat, IoDeviceStat, MemoryStats, PidsStats, Pressure};

/// A content digest (`sha256:…`) naming a layer or blob.
pub use berth_overlay::Digest;
/// berth-overlay's error, wrapped by [`Error::Overlay`].
pub use berth_overlay::Error as OverlayError;
/// What [`LayerStore::gc`] removed (the layer store's, not [`gc`]'s
/// [`GcReport`]).
pub use berth_overlay::GcReport as LayerGcReport;
/// One unpacked layer of a [`LayerStore`].
pub use berth_overlay::Layer;
/// An overlay mount (`mount -t overlay -o lowerdir=…,upperdir=…,workdir=…`)
/// of an [`Image`].
pub use berth_overlay::Overlay;
/// The lock a [`LayerStore`] holds while it changes.
pub use berth_overlay::StoreLock;
/// How whiteouts are written when a layer is unpacked (OCI `.wh.` files or
/// overlayfs character devices), part of [`UnpackOptions`].
pub use berth_overlay::WhiteoutFormat;
/// The parts of an [`Overlay`]: how it mounts (`fsopen` or `mount(2)`), its
/// `redirect_dir` option, a mounted overlay and one detached with `open_tree`.
pub use berth_overlay::{DetachedOverlay, MountMethod, OverlayMount, RedirectDir};
/// Options of [`LayerStore::import`] and of unpacking an [`ImageLayout`].
pub use berth_overlay::{ImportOptions, UnpackOptions};

/// berth-netsetup's error, wrapped by [`Error::Netsetup`].
pub use berth_netsetup::Error as NetsetupError;
/// The transport of a [`PortMapping`] (tcp or udp).
pub use berth_netsetup::Protocol;

/// Why the child failed to apply a [`PreparedSecurity`] (step and errno).
pub use berth_security::ChildFailure;
/// berth-security's error, wrapped by [`Error::Security`].
pub use berth_security::Error as SecurityError;
/// The file-system rights of a [`Landlock`] rule (`LANDLOCK_ACCESS_FS_*`).
pub use berth_security::FsAccess;
/// A Landlock ruleset, part of a [`SecurityPolicy`].
pub use berth_security::Landlock;
/// A [`SecurityPolicy`] prepared in the parent, applied in the child.
pub use berth_security::PreparedSecurity;
/// A seccomp filter profile, what [`Seccomp::Profile`] carries.
pub use berth_security::SeccompProfile;
/// The whole security setup of a process (capabilities, seccomp,
/// `no_new_privs`, rlimits, LSM labels), as [`Exec::policy`] takes it.
pub use berth_security::SecurityPolicy;
/// The capabilities Docker grants by default, the base of [`Capabilities`].
pub use berth_security::DOCKER_DEFAULT_CAPS;
/// The parts of a [`SeccompProfile`]: a rule, its action, what it compiles
/// with, and the compiled classic BPF program.
pub use berth_security::{Action, CompileContext, SeccompProgram, SyscallRule};
/// The argument conditions of a [`SyscallRule`] (`SCMP_CMP_*`).
pub use berth_security::{ArgCmp, CmpOp, Conditions};

/// One eBPF instruction, what a [`DeviceFilter`] compiles to.
pub use berth_ebpf_probes::asm::Insn;
/// A loaded eBPF program (its fd), what a [`DeviceFilter`] loads.
pub use berth_ebpf_probes::sys::Program;
/// A [`Program`]'s type (`BPF_PROG_TYPE_*`) and where it attaches
/// (`BPF_CGROUP_*`, …).
pub use berth_ebpf_probes::sys::{AttachType, ProgType};
/// A `BPF_PROG_TYPE_CGROUP_DEVICE` allow-list, as
/// [`ContainerBuilder::device_filter`] takes it.
pub use berth_ebpf_probes::DeviceFilter;
/// berth-ebpf-probes' error, wrapped by [`Error::Ebpf`].
pub use berth_ebpf_probes::Error as EbpfError;
/// One rule of a [`DeviceFilter`] and the filter once attached to a cgroup.
pub use berth_ebpf_probes::{AttachedDeviceFilter, DeviceRule};
/// The device type and access (`BPF_DEVCG_DEV_*`, `BPF_DEVCG_ACC_*`) of a
/// [`DeviceRule`].
pub use berth_ebpf_probes::{DeviceAccess, DeviceKind};

/// The leaf crates, whole, for what `berth` does not name itself (the
/// lower layers: [`netsetup::Netlink`], [`netsetup::NetNs`], the bpf
/// layer [`ebpf::sys`] and its assembler [`ebpf::asm`], …).
pub use berth_cgroups as cgroups;
/// berth-ebpf-probes, whole.
pub use berth_ebpf_probes as ebpf;
/// berth-namespaces, whole.
pub use berth_namespaces as namespaces;
/// berth-netsetup, whole.
pub use berth_netsetup as netsetup;
/// berth-overlay, whole.
pub use berth_overlay as overlay;
/// berth-security, whole.
pub use berth_security as security;
