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
//! Kernel: Linux 5.8 or newer (`clone3` with `CLONE_INTO_CGROUP` 5.7,
//! `setns` on a pidfd 5.8, `mount_setattr` 5.12 for read-only binds),
//! cgroup v2 for resources, overlayfs; rootless overlay needs 5.11.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

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

pub use builder::{validate_id, ContainerBuilder, MAX_ID_LEN};
pub use bundle::Bundle;
pub use config::{default_store_dir, Mount, Network, Propagation, Rootfs, Seccomp};
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
pub use berth_overlay::{Compression, Image, ImageConfig, ImageLayout, LayerBlob, LayerStore};
pub use berth_security::{CapSet, Capabilities, Resource};
/// A signal for [`Container::signal`] (nix's typed enum: `Signal::SIGTERM`).
pub use nix::sys::signal::Signal;
