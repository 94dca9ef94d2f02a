//! cargo-fuzz target: [`berth_fuzz::oci_config`] under libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_fuzz::oci_config(data));
