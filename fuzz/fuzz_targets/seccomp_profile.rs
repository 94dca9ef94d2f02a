//! cargo-fuzz target: [`berth_fuzz::seccomp_profile`] under libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_fuzz::seccomp_profile(data));
