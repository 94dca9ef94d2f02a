//! `berth-namespaces`: spawn processes into new or existing Linux namespaces.
//!
//! This crate owns the heart of berth, the spawn path: `clone3` with
//! `CLONE_PIDFD` (and `CLONE_INTO_CGROUP` when given a cgroup fd), user
//! namespace id maps written by the parent, an ordered child plan executed
//! with raw syscalls only, errors reported over a CLOEXEC pipe as
//! (step, errno), joining namespaces with `setns`, and a minimal pid-1 reaper.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
