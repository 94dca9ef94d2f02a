//! Calls for a child between `clone(2)` and `execve(2)`: raw,
//! async-signal-safe system calls on data prepared by the parent — no
//! allocation, no locks, no panics. Each returns `Err(errno)` on failure.
//!
//! With the `fake` feature (tests only) each call first asks the fake
//! installed on the calling thread ([`crate::fake`]), so the code that
//! drives a child can be run and checked without root.

pub mod net;
