//! cargo-fuzz target: [`berth_fuzz::cgroup_stats`] under libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_fuzz::cgroup_stats(data));
