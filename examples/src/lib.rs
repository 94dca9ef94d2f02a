//! `berth-examples`: runnable programs built on berth.
//!
//! Each program lives in `src/bin/` (or `examples/`) with a doc comment at the
//! top saying what it shows and how to run it: the container-internals
//! lesson's exercises, the `demo`, `berth-run` and `berth-oci`. This library
//! target holds only code the programs share.
#![warn(missing_docs)]

pub mod resolver;
pub mod run_args;
