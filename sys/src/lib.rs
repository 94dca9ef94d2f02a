//! berth's one kernel layer.
//!
//! The raw Linux ABI and system calls the berth crates use, each wrapped
//! once, typed, with the man page and the minimum kernel in its doc. In a
//! child after `clone`, only [`child`] (raw async-signal-safe calls,
//! `Err(errno)`, no allocation); everywhere else, the parent-side modules:
//!
//! - on [`nix`] where it has the call (safe, `OwnedFd`-based): `openat`,
//!   `statfs`, `flock`, `inotify`, `setns`, `socket`, ...;
//! - raw [`libc`] only where nix has none (pidfds, the netlink socket
//!   address, ...), with the constants and structs `libc` 0.2 defines
//!   rather than hand-copied ones.
//!
//! Parent-side errors are [`std::io::Error`] (errno kept): the calling
//! crate wraps them in its own `Error` naming what it was doing and to
//! which object.
//!
//! With the feature `fake` (tests only), `fake` holds a fake kernel the
//! wrappers ask first: see `fake::child::Recorder`.
//!
//! The leaf crates (cgroups, overlay, netsetup, security, ebpf-probes)
//! depend on this crate and on no other berth crate.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

pub mod at;
pub mod bpf_abi;
pub mod child;
pub mod cstr;
pub mod errno;
#[cfg(feature = "fake")]
pub mod fake;
pub mod fs;
pub mod inotify;
pub mod landlock;
pub mod magic;
pub mod memfd;
pub mod mman;
pub mod mount_api;
pub mod netlink;
pub mod nft_abi;
pub mod ns;
pub mod openat2;
pub mod perf;
pub mod pidfd;
pub mod poll;
pub mod private;
pub mod proc;
pub mod process;
pub mod scm;
pub mod signal;
pub mod time;
