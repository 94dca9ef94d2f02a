//! cargo-fuzz target: [`berth_fuzz::layer_unpack`] under libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_fuzz::layer_unpack(data));
