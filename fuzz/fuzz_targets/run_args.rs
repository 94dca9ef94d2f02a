//! cargo-fuzz target: [`berth_fuzz::run_args`] under libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_fuzz::run_args(data));
