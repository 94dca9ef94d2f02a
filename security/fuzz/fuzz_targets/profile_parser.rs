//! Fuzz the seccomp profile parser and compiler: any input must give a
//! profile or a clear error, never a panic, and every compiled program must
//! fit the kernel's limit and start with the architecture check.
#![no_main]

use berth_security::{CapSet, CompileContext, SeccompProfile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(profile) = SeccompProfile::from_docker_json(text) else {
        return;
    };
    for caps in [CapSet::empty(), CapSet::docker_default(), CapSet::all()] {
        let ctx = CompileContext {
            caps,
            kernel: (6, 1),
        };
        if let Ok(prog) = profile.compile(&ctx) {
            assert!(prog.len() <= 4096);
            // ld [4] (seccomp_data.arch) comes first.
            assert_eq!(prog.instructions()[0], (0x20, 0, 0, 4));
        }
    }
});
