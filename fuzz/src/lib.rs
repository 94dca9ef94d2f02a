//! berth's fuzz targets as plain functions: each takes arbitrary bytes and
//! must not panic. Beyond "no panic": `seccomp_profile` checks every
//! compiled program against the kernel's filter checks and, through
//! [`seccomp_oracle`], against the profile's meaning; `layer_unpack` checks
//! that nothing outside the layer root appeared or changed.
//!
//! Drivers: the cargo-fuzz targets in `fuzz_targets/` (libFuzzer, coverage
//! guided, stable Rust with `cargo fuzz run -s none`), the uninstrumented
//! fallback `examples/stable-fuzz.rs`, and this crate's unit test that
//! replays every seed of `corpus/<target>/` (the CI form). `scripts/fuzz`
//! runs them; a crash is saved under `artifacts/<target>/` and, once fixed,
//! becomes a seed plus a unit test in the crate that owns the code.

use std::path::Path;

/// A fuzz target: name and entry point.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: [Target; 5] = [
    ("run_args", run_args),
    ("seccomp_profile", seccomp_profile),
    ("oci_config", oci_config),
    ("cgroup_stats", cgroup_stats),
    ("layer_unpack", layer_unpack),
];

/// `berth-run`'s argument parser: NUL-separated arguments.
pub fn run_args(data: &[u8]) {
    let args: Vec<String> = String::from_utf8_lossy(data)
        .split('\0')
        .map(String::from)
        .collect();
    let _ = berth_examples::run_args::RunArgs::parse(args);
}

/// The seccomp profile parsers, both forms: Docker's JSON
/// (`from_docker_json`) and the OCI runtime spec's `LinuxSeccomp` (oci-spec
/// deserialization, then `from_oci`). Every profile either accepts is
/// compiled to BPF for six contexts, and the program must pass the kernel's
/// own structural checks ([`check_bpf`]) and give the verdicts the profile
/// means ([`seccomp_oracle::check`]).
pub fn seccomp_profile(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = berth_security::SeccompProfile::from_docker_json(text) {
        compile_checked(&p);
    }
    if let Ok(oci) = serde_json::from_str::<oci_spec::runtime::LinuxSeccomp>(text) {
        if let Ok(p) = berth_security::SeccompProfile::from_oci(&oci) {
            compile_checked(&p);
        }
    }
}

fn compile_checked(p: &berth_security::SeccompProfile) {
    use berth_security::{CapSet, CompileContext};
    // Fixed contexts keep a run reproducible (no `uname`): no caps, Docker's
    // 14, all caps; an old and a current kernel (for `minKernel`).
    for caps in [CapSet::empty(), CapSet::docker_default(), CapSet::all()] {
        for kernel in [(4, 14), (6, 18)] {
            let ctx = CompileContext { caps, kernel };
            if let Ok(prog) = p.compile(&ctx) {
                let insns = prog.instructions();
                if let Err(e) = check_bpf(&insns) {
                    panic!("compiled an invalid BPF program ({e}) from {p:?}");
                }
                seccomp_oracle::check(p, &ctx, &insns);
            }
        }
    }
}

/// The checks `bpf_check_classic()` (net/core/filter.c) and
/// `seccomp_check_filter()` (kernel/seccomp.c) make before they accept a
/// filter: 1..=4096 instructions (`BPF_MAXINSNS`), every jump lands inside
/// the program, the last instruction is a `BPF_RET`, and loads read aligned
/// words inside `struct seccomp_data` (64 bytes).
pub fn check_bpf(prog: &[(u16, u8, u8, u32)]) -> Result<(), String> {
    const BPF_MAXINSNS: usize = 4096;
    const SECCOMP_DATA_LEN: u32 = 64;
    if prog.is_empty() || prog.len() > BPF_MAXINSNS {
        return Err(format!("{} instructions", prog.len()));
    }
    for (i, &(code, jt, jf, k)) in prog.iter().enumerate() {
        let next = i + 1;
        // BPF_LD | BPF_W | BPF_ABS: an aligned word inside `seccomp_data`.
        if code == 0x20 && (k % 4 != 0 || k >= SECCOMP_DATA_LEN) {
            return Err(format!("insn {i}: load of offset {k}"));
        }
        // BPF_JMP: BPF_JA jumps k, the others jt / jf.
        if code & 0x07 == 0x05 {
            let targets: Vec<usize> = if code & 0xf0 == 0x00 {
                vec![next.saturating_add(k as usize)]
            } else {
                vec![next + jt as usize, next + jf as usize]
            };
            if let Some(t) = targets.iter().find(|&&t| t >= prog.len()) {
                return Err(format!("insn {i}: jump to {t} of {}", prog.len()));
            }
        }
    }
    match prog.last() {
        Some(&(code, ..)) if code & 0x07 == 0x06 => Ok(()),
        _ => Err("the last instruction is not a return".into()),
    }
}

/// OCI `config.json` import: `Bundle::load` and the builder mapping.
pub fn oci_config(data: &[u8]) {
    let dir = tempfile::TempDir::new().expect("tempdir");
    std::fs::write(dir.path().join("config.json"), data).expect("write config.json");
    std::fs::create_dir(dir.path().join("rootfs")).expect("mkdir rootfs");
    if let Ok(b) = berth::Bundle::load(dir.path()) {
        let _ = b.builder("fuzz");
    }
}

pub mod seccomp_oracle;

/// The cgroup v2 stats parsers, each fed the same text.
pub fn cgroup_stats(data: &[u8]) {
    let t = String::from_utf8_lossy(data);
    let _ = berth_cgroups::CpuStat::parse(&t);
    let _ = berth_cgroups::MemoryEvents::parse(&t);
    let _ = berth_cgroups::MemoryStats::parse_stat(&t);
    let _ = berth_cgroups::parse_io_stat(&t);
    let _ = berth_cgroups::parse_single("pids.max", &t);
    let _ = berth_cgroups::Pressure::parse("cpu.pressure", &t);
    let _ = berth_cgroups::parse_proc_cgroup(&t);
    let _ = berth_cgroups::parse_mountinfo(&t);
    let _ = berth_cgroups::CgroupEvents::parse(&t);
    let _ = berth_cgroups::Controllers::parse(&t);
    let _ = berth_cgroups::parse_cpu_list("cpuset.cpus", &t);
}

/// Unpack a (possibly hostile) layer tar into `<tmp>/l1/l2/l3/l4/root` and
/// assert that nothing outside `root` changed: `<tmp>` holds exactly the
/// chain of levels and an empty `outside` sentinel (so `../` escapes up to
/// five levels deep land where they are seen), the levels and the sentinel
/// keep their mode, owner and mtime (no chmod/chown/utime through a
/// symlink), `root` is still a directory, and the host's `/` gained no
/// entry (an absolute path or symlink followed out of the root).
/// Devices and owners are off: the harness must be safe to run as root.
pub fn layer_unpack(data: &[u8]) {
    let opts = berth_overlay::UnpackOptions {
        whiteouts: berth_overlay::WhiteoutFormat::default(),
        same_owner: false,
        devices: false,
    };
    check_confined(|root| {
        let _ = berth_overlay::unpack(data, root, &opts);
    });
}

/// The confinement checks of [`layer_unpack`] around any `unpack(root)`.
pub fn check_confined(unpack: impl FnOnce(&Path)) {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::TempDir::new().expect("tempdir");
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).expect("mkdir outside");
    let levels: Vec<std::path::PathBuf> = ["l1", "l1/l2", "l1/l2/l3", "l1/l2/l3/l4"]
        .iter()
        .map(|l| tmp.path().join(l))
        .collect();
    for l in &levels {
        std::fs::create_dir(l).expect("mkdir level");
    }
    let root = levels[3].join("root");
    std::fs::create_dir(&root).expect("mkdir root");
    let watched: Vec<&Path> = std::iter::once(tmp.path())
        .chain(std::iter::once(outside.as_path()))
        .chain(levels.iter().map(|l| l.as_path()))
        .collect();
    let stamp = |p: &Path| {
        std::fs::symlink_metadata(p)
            .map(|m| (m.mode(), m.uid(), m.gid(), m.mtime(), m.mtime_nsec()))
    };
    let before: Vec<_> = watched.iter().map(|p| stamp(p).expect("stat")).collect();
    let host_root = || -> Vec<std::ffi::OsString> {
        let mut v: Vec<_> = std::fs::read_dir("/")
            .expect("read /")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        v.sort();
        v
    };
    let host_before = host_root();

    unpack(&root);

    let mut found = Vec::new();
    walk_outside(tmp.path(), tmp.path(), &root, &mut found);
    found.sort();
    assert_eq!(
        found,
        [
            "l1",
            "l1/l2",
            "l1/l2/l3",
            "l1/l2/l3/l4",
            "l1/l2/l3/l4/root",
            "outside"
        ],
        "unpack wrote outside the root"
    );
    for (p, b) in watched.iter().zip(&before) {
        assert_eq!(
            &stamp(p).expect("stat"),
            b,
            "unpack changed {} outside the root",
            p.display()
        );
    }
    assert!(is_dir_no_follow(&root), "the root itself was replaced");
    let host_after = host_root();
    let new: Vec<_> = host_after
        .iter()
        .filter(|n| !host_before.contains(n))
        .collect();
    assert!(new.is_empty(), "unpack created {new:?} in the host's /");
}

/// Every path under `dir` relative to `base`, not following symlinks and not
/// descending into `root`.
fn walk_outside(base: &Path, dir: &Path, root: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        out.push(
            p.strip_prefix(base)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned(),
        );
        if p != root && e.file_type().is_ok_and(|t| t.is_dir()) {
            walk_outside(base, &p, root, out);
        }
    }
}

fn is_dir_no_follow(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())
}

/// `corpus/<target>/` of this crate.
pub fn corpus_dir(target: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}

/// Run every seed of `dir` (sorted by name) through `f`; returns the seeds
/// run, or the names of the seeds that panicked (the panic message is
/// printed by the panic hook).
pub fn replay(dir: &Path, f: fn(&[u8])) -> Result<usize, Vec<String>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    paths.sort();
    let mut failed = Vec::new();
    for p in &paths {
        let Ok(data) = std::fs::read(p) else {
            failed.push(format!("{} (unreadable)", p.display()));
            continue;
        };
        if std::panic::catch_unwind(|| f(&data)).is_err() {
            failed.push(p.display().to_string());
        }
    }
    if failed.is_empty() {
        Ok(paths.len())
    } else {
        Err(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CI short form: every checked-in seed (regression inputs included)
    /// through its target.
    #[test]
    fn every_seed_of_every_corpus_replays() {
        for (name, f) in TARGETS {
            match replay(&corpus_dir(name), f) {
                Ok(n) => assert!(n > 0, "corpus/{name} is empty"),
                Err(bad) => panic!("{name}: seeds that panic: {bad:?}"),
            }
        }
    }

    #[test]
    fn the_seccomp_oracle_catches_a_wrong_verdict() {
        use berth_security::{CapSet, CompileContext, SeccompProfile};
        let p = SeccompProfile::from_docker_json(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],
                "action":"SCMP_ACT_ERRNO","errnoRet":13,
                "args":[{"index":1,"value":448,"op":"SCMP_CMP_GT"}]}]}"#,
        )
        .unwrap();
        let ctx = CompileContext {
            caps: CapSet::empty(),
            kernel: (6, 18),
        };
        let mut insns = p.compile(&ctx).unwrap().instructions();
        seccomp_oracle::check(&p, &ctx, &insns);
        let mkdir = berth_security::seccomp::syscall_number("mkdir").unwrap();
        let errno13 = 0x0005_0000 | 13;
        let run = |i: &[(u16, u8, u8, u32)], mode: u64| {
            seccomp_oracle::run_bpf(i, 0xc000_003e, mkdir, [0, mode, 0, 0, 0, 0]).unwrap()
        };
        assert_eq!(run(&insns, 449), errno13);
        assert_eq!(run(&insns, 448), 0x7fff_0000);
        assert_eq!(run(&insns, 1 << 32), errno13, "64-bit compare");
        // A program that returns ALLOW where the rule says EACCES.
        for i in insns.iter_mut().filter(|i| i.0 == 0x06 && i.3 == errno13) {
            i.3 = 0x7fff_0000;
        }
        let caught = std::panic::catch_unwind(|| seccomp_oracle::check(&p, &ctx, &insns));
        assert!(
            caught.is_err(),
            "the oracle missed an ALLOW for an ERRNO rule"
        );
    }

    #[test]
    fn check_confined_catches_writes_outside_the_root() {
        use std::os::unix::fs::PermissionsExt;
        check_confined(|root| std::fs::write(root.join("inside"), b"ok").unwrap());
        type Escape = (&'static str, fn(&Path));
        let escapes: [Escape; 4] = [
            ("a sibling of a level", |r| {
                std::fs::write(r.join("../../x"), b"").unwrap()
            }),
            ("into the sentinel", |r| {
                std::fs::write(r.join("../../../../../outside/x"), b"").unwrap()
            }),
            ("chmod of a level", |r| {
                std::fs::set_permissions(r.join(".."), std::fs::Permissions::from_mode(0o700))
                    .unwrap()
            }),
            ("the root replaced", |r| {
                std::fs::remove_dir(r).unwrap();
                std::os::unix::fs::symlink("/", r).unwrap();
            }),
        ];
        for (what, f) in escapes {
            let caught = std::panic::catch_unwind(|| check_confined(f));
            assert!(caught.is_err(), "missed {what}");
        }
    }

    #[test]
    fn check_bpf_accepts_the_default_profile_and_rejects_broken_programs() {
        use berth_security::{CapSet, CompileContext, SeccompProfile};
        let ctx = CompileContext {
            caps: CapSet::docker_default(),
            kernel: (6, 18),
        };
        let prog = SeccompProfile::docker_default()
            .compile(&ctx)
            .unwrap()
            .instructions();
        assert_eq!(check_bpf(&prog), Ok(()));
        let ret = (0x06, 0, 0, 0x7fff_0000);
        assert!(check_bpf(&[]).is_err());
        assert!(check_bpf(&[(0x20, 0, 0, 0)]).is_err(), "no final return");
        assert!(
            check_bpf(&[(0x15, 0, 1, 0), ret]).is_err(),
            "jf past the end"
        );
        assert!(
            check_bpf(&[(0x05, 0, 0, 1), ret]).is_err(),
            "ja past the end"
        );
        assert!(
            check_bpf(&[(0x20, 0, 0, 64), ret]).is_err(),
            "load past seccomp_data"
        );
        assert!(
            check_bpf(&[(0x20, 0, 0, 2), ret]).is_err(),
            "unaligned load"
        );
        assert!(check_bpf(&vec![ret; 4097]).is_err(), "over BPF_MAXINSNS");
        assert_eq!(check_bpf(&[(0x15, 0, 0, 0), ret]), Ok(()));
    }
}
