//! `berth-security`: container hardening as plain data.
//!
//! This crate owns capabilities, seccomp profiles compiled to BPF,
//! `no_new_privs`, LSM labels (AppArmor, SELinux), landlock rulesets, rlimits
//! and the default masked and read-only path policy. Everything is prepared
//! in the parent and applied by the child with raw syscalls.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
