//! `berth-cgroups`: a complete cgroup v2 controller.
//!
//! This crate owns cgroup v2 discovery (the cgroup2 mount from
//! `/proc/self/mountinfo`, verified with `CGROUP2_SUPER_MAGIC`), the `Cgroup`
//! handle over a directory fd, typed and validated resources, stats and PSI
//! parsers, an event watcher, and freeze/thaw/kill.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
