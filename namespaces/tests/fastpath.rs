//! The `CLONE_VM | CLONE_VFORK` fast path with a cgroup fd (raw `clone3` on
//! a private stack, x86_64): the child starts inside the cgroup, the cgroup
//! namespace is rooted there, failures of plan steps and of `execve` still
//! come back precisely, and spawns race other spawning threads safely.
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use berth_namespaces::{Namespaces, Spawner, Stdio, Step};

fn cgroup_base() -> std::path::PathBuf {
    berth_testkit::cgroup2_mount().expect("a cgroup2 mount")
}

#[test]
fn cgroup_fd_spawn_starts_inside_and_reports_errors() {
    berth_testkit::privileged!();
    let cg = berth_testkit::CgroupDir::adopt(cgroup_base().join(berth_testkit::unique_name("bfp")));
    std::fs::create_dir(cg.path()).unwrap();
    // cat its own cgroup (rooted at ours by the new cgroup namespace), then
    // wait for stdin to close, so the parent can look at cgroup.procs.
    let mut child = Spawner::new([
        "/bin/busybox",
        "sh",
        "-c",
        "cat /proc/self/cgroup; read x || true",
    ])
    .namespaces(Namespaces::CGROUP | Namespaces::PID | Namespaces::MOUNT | Namespaces::UTS)
    .hostname("fast")
    .step(Step::make_private("/", true))
    .cgroup_path(cg.path())
    .stdin(Stdio::Piped)
    .stdout(Stdio::Piped)
    .spawn()
    .unwrap();
    let procs = std::fs::read_to_string(cg.path().join("cgroup.procs")).unwrap();
    assert!(
        procs
            .split_whitespace()
            .any(|p| p == child.pid().to_string()),
        "child {} not in {procs:?}",
        child.pid()
    );
    drop(child.stdin.take());
    let mut s = String::new();
    child.stdout.take().unwrap().read_to_string(&mut s).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(s.lines().any(|l| l == "0::/"), "cgroup ns root: {s}");

    // A failing step and a missing program: precise errors, nothing left.
    let err = Spawner::new(["/bin/true"])
        .namespaces(Namespaces::MOUNT)
        .step(Step::mkdir("/nonexistent-berth-dir/x", 0o755))
        .cgroup_path(cg.path())
        .spawn()
        .unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent-berth-dir/x"),
        "{err}"
    );
    assert_eq!(err.errno(), Some(libc::ENOENT));
    let err = Spawner::new(["/no/such/berth-binary"])
        .cgroup_path(cg.path())
        .spawn()
        .unwrap_err();
    assert!(err.to_string().contains("execve"), "{err}");
    let procs = std::fs::read_to_string(cg.path().join("cgroup.procs")).unwrap();
    assert_eq!(procs.trim(), "", "a failed child is left in the cgroup");
}

#[test]
fn cgroup_fd_spawns_race_allocating_threads() {
    berth_testkit::privileged!();
    let cg = berth_testkit::CgroupDir::adopt(cgroup_base().join(berth_testkit::unique_name("bfr")));
    std::fs::create_dir(cg.path()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for t in 0..2 {
        let stop = stop.clone();
        workers.push(std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let v: Vec<String> = (0..64).map(|i| format!("{t}-{i}-{n}")).collect();
                n += v.len() as u64;
            }
            n
        }));
    }
    for i in 0..100 {
        let st = Spawner::new(["/bin/busybox", "true"])
            .namespaces(Namespaces::PID | Namespaces::CGROUP)
            .cgroup_path(cg.path())
            .stdin(Stdio::Null)
            .status()
            .unwrap_or_else(|e| panic!("spawn {i}: {e}"));
        assert!(st.success(), "spawn {i}: {st:?}");
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        assert!(w.join().unwrap() > 0);
    }
}

/// A failed `clone3` of the fast path (its raw asm entry sets errno for the
/// parent) comes back as the clone's error with the kernel's errno: a
/// directory that is no cgroup v2 directory is `EBADF` (kernel/cgroup,
/// `cgroup_get_from_file`).
#[test]
fn a_failed_fast_path_clone_reports_its_errno() {
    berth_testkit::privileged!();
    let dir = tempfile::tempdir().unwrap();
    let e = Spawner::new(["/bin/true"])
        .namespaces(Namespaces::UTS)
        .cgroup_path(dir.path())
        .status()
        .unwrap_err();
    assert_eq!(e.errno(), Some(libc::EBADF), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("clone3(CLONE_PIDFD | CLONE_INTO_CGROUP"),
        "{msg}"
    );
}
