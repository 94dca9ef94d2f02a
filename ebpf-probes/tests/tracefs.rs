//! tracefs lookup never changes a mount table: when tracefs is not mounted
//! the crate reads a detached instance of its own (`/proc/self/fd/<n>`).
//! One test in its own binary: it compares the whole mount table.

use berth_ebpf_probes::tracefs::{tracefs_root, TracepointFormat};

#[test]
fn reading_a_tracepoint_mounts_nothing() {
    berth_testkit::privileged!();
    let mounts = |p: &str| std::fs::read_to_string(p).unwrap();
    let before = (mounts("/proc/self/mountinfo"), mounts("/proc/1/mountinfo"));
    let was_mounted = before.0.contains(" - tracefs ");
    let root = tracefs_root().unwrap();
    let f = TracepointFormat::read("sched", "sched_process_exec").unwrap();
    assert!(f.id > 0, "{f:?}");
    assert!(f.field("pid").is_ok(), "{f:?}");
    if !was_mounted {
        assert!(
            root.starts_with("/proc/self/fd/"),
            "tracefs was not mounted, yet {} was used",
            root.display()
        );
    }
    let after = (mounts("/proc/self/mountinfo"), mounts("/proc/1/mountinfo"));
    assert_eq!(before, after, "reading a tracepoint changed a mount table");
}
