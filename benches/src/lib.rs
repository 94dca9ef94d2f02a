//! `berth-benches`: criterion benchmarks of berth's hot paths.
//!
//! The benchmarks live in `benches/`, one file per crate; `cargo bench -p
//! berth-benches` runs them all and `cargo bench -p berth-benches -- --quick`
//! runs them briefly (the CI smoke). This library target holds shared
//! helpers for the benchmarks.
#![warn(missing_docs)]
