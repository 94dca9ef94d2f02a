//! VM tier smoke tests: the runner (`scripts/vm-test -p berth-testkit --test vm`)
//! gives cgroup2 as the unified hierarchy with its controllers, and a failing
//! test fails the run.

use std::fs;
use std::path::Path;

#[test]
fn vm_has_cgroup_v2_controllers_and_memory_max_works() {
    berth_testkit::vm_only!();
    let root = Path::new("/sys/fs/cgroup");
    let controllers = fs::read_to_string(root.join("cgroup.controllers")).unwrap();
    let have: Vec<&str> = controllers.split_whitespace().collect();
    for c in ["cpu", "io", "memory", "pids"] {
        assert!(have.contains(&c), "controller {c} missing from {have:?}");
    }
    let enabled = fs::read_to_string(root.join("cgroup.subtree_control")).unwrap();
    assert!(
        enabled.split_whitespace().any(|c| c == "memory"),
        "memory not enabled: {enabled}"
    );

    let name = berth_testkit::unique_name("vmsmoke");
    let dir = berth_testkit::CgroupDir::adopt(root.join(&name));
    fs::create_dir(dir.path()).unwrap();
    fs::write(dir.path().join("memory.max"), "67108864").unwrap();
    assert_eq!(
        fs::read_to_string(dir.path().join("memory.max"))
            .unwrap()
            .trim(),
        "67108864"
    );
    fs::write(dir.path().join("pids.max"), "7").unwrap();
    assert_eq!(
        fs::read_to_string(dir.path().join("pids.max"))
            .unwrap()
            .trim(),
        "7"
    );
}

#[test]
fn vm_scratch_disk_is_present() {
    berth_testkit::vm_only!();
    let dev = std::env::var(berth_testkit::VM_SCRATCH_ENV).expect("BERTH_VM_SCRATCH set in the VM");
    let meta = fs::metadata(&dev).unwrap();
    use std::os::unix::fs::FileTypeExt;
    assert!(
        meta.file_type().is_block_device(),
        "{dev} is not a block device"
    );
}

/// Kept behind `BERTH_VM_DELIBERATE_FAILURE=1` to show that a failing VM test
/// makes `scripts/vm-test` exit non-zero.
#[test]
fn vm_deliberate_failure_when_asked() {
    berth_testkit::vm_only!();
    if std::env::var("BERTH_VM_DELIBERATE_FAILURE").is_ok_and(|v| v == "1") {
        panic!("deliberate failure (BERTH_VM_DELIBERATE_FAILURE=1)");
    }
}
