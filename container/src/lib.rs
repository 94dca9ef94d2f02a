//! `berth`: Linux containers as a library.
//!
//! This crate owns the `Container` builder and handle that compose the leaf
//! crates (namespaces, cgroups, overlay, netsetup, security, ebpf-probes),
//! the container lifecycle, its state directory, and OCI bundle import.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
