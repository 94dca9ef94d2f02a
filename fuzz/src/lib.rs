//! berth's fuzz targets as plain functions: each takes arbitrary bytes and
//! must not panic; `layer_unpack` also asserts that nothing was written
//! outside the layer root. `stable-fuzz` (src/bin) drives them on stable
//! Rust: every seed of `corpus/<target>/`, then a mutation loop for a
//! bounded time; a panic is saved under `artifacts/<target>/` and becomes a
//! seed (a regression input) once fixed.

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

/// The Docker-format seccomp profile parser (and compiling what it accepts).
pub fn seccomp_profile(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(p) = berth_security::SeccompProfile::from_docker_json(&text) {
        let _ = format!("{p:?}");
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
}

/// Unpack a (possibly hostile) layer tar into `<tmp>/root`; assert that the
/// only thing in `<tmp>` besides `root` is the untouched `outside` sentinel.
/// Devices and owners are off: the harness must be safe to run as root.
pub fn layer_unpack(data: &[u8]) {
    let tmp = tempfile::TempDir::new().expect("tempdir");
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&root).expect("mkdir root");
    std::fs::create_dir(&outside).expect("mkdir outside");
    let opts = berth_overlay::UnpackOptions {
        whiteouts: berth_overlay::WhiteoutFormat::default(),
        same_owner: false,
        devices: false,
    };
    let _ = berth_overlay::unpack(data, &root, &opts);
    let mut names: Vec<String> = std::fs::read_dir(tmp.path())
        .expect("read tmp")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["outside", "root"], "unpack wrote outside the root");
    assert_eq!(
        std::fs::read_dir(&outside).expect("read outside").count(),
        0,
        "unpack wrote into a sibling of the root"
    );
    assert!(is_dir_no_follow(&root), "the root itself was replaced");
}

fn is_dir_no_follow(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())
}
