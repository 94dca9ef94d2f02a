//! `berth-ebpf-probes`: eBPF device control and per-container observability.
//!
//! This crate owns a typed BPF instruction assembler, the `bpf(2)` layer
//! (maps, program load, attach, links, ring buffers), the cgroup device
//! filter, and exec/syscall/network probes keyed by cgroup id. No C
//! toolchain, no ELF objects.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
