//! `berth-security`: container hardening as plain data.
//!
//! This crate owns capabilities, seccomp profiles compiled to BPF,
//! `no_new_privs`, LSM labels (AppArmor, SELinux), landlock rulesets, rlimits
//! and the default masked and read-only path policy. Everything is prepared
//! in the parent and applied by the child with raw syscalls.
//!
//! ```no_run
//! use berth_security::{CapSet, Capabilities, Resource, SecurityPolicy};
//!
//! let prepared = SecurityPolicy::docker_default()
//!     .capabilities(Capabilities::uniform(CapSet::docker_with(["NET_ADMIN"], ["MKNOD"])?))
//!     .user(1000, 1000)
//!     .rlimit(Resource::Nofile, 1024, 1024)
//!     .prepare()?; // in the parent: validation, BPF compilation, allocation
//! // in the child, after fork/clone3 and before execve:
//! // unsafe { prepared.apply_in_child() }.map_err(|f| (f.step, f.errno))?;
//! # Ok::<(), berth_security::Error>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

mod apply;
mod capabilities;
mod error;
mod landlock;
mod lsm;
mod paths;
mod policy;
mod rlimit;
pub mod seccomp;

pub use capabilities::{parse_capability, CapSet, Capabilities, DOCKER_DEFAULT_CAPS};
pub use caps::Capability;
pub use error::{ChildFailure, Error, Result};
pub use landlock::{FsAccess, Landlock};
pub use lsm::{apparmor_active, selinux_active, LsmLabel};
pub use paths::{DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS};
pub use policy::{Identity, PreparedSecurity, SecurityPolicy};
pub use rlimit::{Resource, Rlimit, RLIM_INFINITY};
pub use seccomp::{
    Action, ArgCmp, CmpOp, CompileContext, Conditions, SeccompProfile, SeccompProgram, SyscallRule,
    FLAG_LOG, FLAG_SPEC_ALLOW,
};
