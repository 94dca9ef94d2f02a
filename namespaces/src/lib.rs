//! `berth-namespaces`: spawn processes into new or existing Linux namespaces.
//!
//! This crate owns the heart of berth, the spawn path: `clone3` with
//! `CLONE_PIDFD` (and `CLONE_INTO_CGROUP` when given a cgroup fd), user
//! namespace id maps written by the parent, an ordered child plan executed
//! with raw syscalls only, errors reported over a CLOEXEC pipe as
//! (step, errno), joining namespaces with `setns`, and a minimal pid-1 reaper.
//!
//! ```no_run
//! use berth_namespaces::{IdMap, Namespaces, Spawner};
//!
//! let out = Spawner::new(["/bin/sh", "-c", "hostname; id -u"])
//!     .namespaces(Namespaces::USER | Namespaces::UTS | Namespaces::PID | Namespaces::NET)
//!     .uid_map(IdMap::new(0, 100_000, 65_536))
//!     .gid_map(IdMap::new(0, 100_000, 65_536))
//!     .hostname("c1")
//!     .output()?;
//! assert_eq!(String::from_utf8_lossy(&out.stdout), "c1\n0\n");
//! # Ok::<(), berth_namespaces::Error>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

mod child;
mod error;
mod handle;
mod owner;
mod pool;
mod protocol;
mod release;
mod spawn;
mod step;
mod sys;

pub use error::{Error, Result};
pub use handle::{Child, ChildRef};
pub use pool::{NetnsPool, PoolStats, SHARED_POOL_SIZE};
pub use release::release_in_background;
pub use spawn::{Spawner, Stdio};
pub use step::{open_in_root, proc_self_fd, HookFn, Step, StepFailure};

use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

bitflags::bitflags! {
    /// The eight namespace types, as their `CLONE_NEW*` flags (namespaces(7)).
    ///
    /// ```
    /// use berth_namespaces::Namespaces;
    /// let ns = Namespaces::MOUNT | Namespaces::PID | Namespaces::NET; // CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET
    /// assert!(ns.contains(Namespaces::NET));
    /// assert_eq!(Namespaces::NET.proc_name(), Some("net")); // /proc/<pid>/ns/net
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Namespaces: u64 {
        /// Mount namespace (`CLONE_NEWNS`, Linux 2.4.19).
        #[doc(alias("CLONE_NEWNS"))]
        const MOUNT = libc::CLONE_NEWNS as u64;
        /// UTS namespace: hostname and domainname (`CLONE_NEWUTS`, 2.6.19).
        #[doc(alias("CLONE_NEWUTS"))]
        const UTS = libc::CLONE_NEWUTS as u64;
        /// System V IPC and POSIX message queues (`CLONE_NEWIPC`, 2.6.19).
        #[doc(alias("CLONE_NEWIPC"))]
        const IPC = libc::CLONE_NEWIPC as u64;
        /// PID namespace: the child is pid 1 (`CLONE_NEWPID`, 2.6.24).
        #[doc(alias("CLONE_NEWPID"))]
        const PID = libc::CLONE_NEWPID as u64;
        /// Network namespace: only `lo` (`CLONE_NEWNET`, 2.6.29).
        #[doc(alias("CLONE_NEWNET"))]
        const NET = libc::CLONE_NEWNET as u64;
        /// User namespace (`CLONE_NEWUSER`, 3.8); see [`Spawner::uid_map`].
        #[doc(alias("CLONE_NEWUSER"))]
        const USER = libc::CLONE_NEWUSER as u64;
        /// Cgroup namespace (`CLONE_NEWCGROUP`, 4.6).
        #[doc(alias("CLONE_NEWCGROUP"))]
        const CGROUP = libc::CLONE_NEWCGROUP as u64;
        /// Time namespace (`CLONE_NEWTIME`, 5.6); see [`Spawner::time_offsets`].
        #[doc(alias("CLONE_NEWTIME"))]
        const TIME = libc::CLONE_NEWTIME as u64;
    }
}

impl Namespaces {
    /// The `/proc/<pid>/ns/<name>` file name of a single namespace type.
    pub fn proc_name(self) -> Option<&'static str> {
        Some(match self {
            Namespaces::MOUNT => "mnt",
            Namespaces::UTS => "uts",
            Namespaces::IPC => "ipc",
            Namespaces::PID => "pid",
            Namespaces::NET => "net",
            Namespaces::USER => "user",
            Namespaces::CGROUP => "cgroup",
            Namespaces::TIME => "time",
            _ => return None,
        })
    }
}

/// One line of a `uid_map`/`gid_map` (user_namespaces(7)): ids
/// `inside..inside+count` in the new namespace are `outside..outside+count`
/// in the parent's.
///
/// ```
/// use berth_namespaces::{IdMap, Namespaces, Spawner};
/// let mut s = Spawner::new(["/bin/id"]);
/// s.namespaces(Namespaces::USER).uid_map(IdMap::new(0, 100000, 65536)); // "0 100000 65536" in uid_map
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[doc(alias("uid_map", "gid_map"))]
pub struct IdMap {
    /// First id inside the new user namespace.
    pub inside: u32,
    /// First id in the parent user namespace.
    pub outside: u32,
    /// Number of ids (at least 1).
    pub count: u32,
}

impl IdMap {
    /// A map of `count` ids starting at `inside`/`outside`.
    ///
    /// ```
    /// let root_to_nobody = berth_namespaces::IdMap::new(0, 65534, 1);
    /// ```
    pub fn new(inside: u32, outside: u32, count: u32) -> Self {
        IdMap {
            inside,
            outside,
            count,
        }
    }
}

/// A detached copy of the mount tree at `path` (`open_tree(2)` with
/// `OPEN_TREE_CLONE`, plus `AT_RECURSIVE` when `recursive`; Linux 5.2),
/// to be attached in the child with [`Step::move_mount`].
///
/// ```no_run
/// let tree = berth_namespaces::detached_bind("/srv/data", false)?;
/// # Ok::<(), berth_namespaces::Error>(())
/// ```
pub fn detached_bind(path: impl AsRef<Path>, recursive: bool) -> Result<OwnedFd> {
    let path = path.as_ref();
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::invalid(format!("path {path:?} contains a NUL byte")))?;
    berth_sys::mount_api::open_tree_clone_rec(&c, recursive)
        .map_err(|e| Error::setup_io(format!("open_tree({path:?})"), e))
}
