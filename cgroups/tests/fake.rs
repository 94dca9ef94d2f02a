//! Unit tier without root: cgroup writes — creation, controller enabling,
//! limits, freeze, kill, removal and their rollback — against berth-sys's
//! fake cgroup2 hierarchy (`berth_sys::fake::parent::CgroupFs`, a temp
//! directory emulating cgroupfs' rules). Each test installs the fake on its
//! own thread; `Hierarchy::from_texts` points berth at it as the mount.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

use berth_cgroups::{
    Cgroup, CgroupBuilder, Controller, Error, Hierarchy, IoDeviceWeight, IoMax, Limit, Resources,
};
use berth_sys::fake::parent::{CgroupFs, Installed, Op};

/// Every controller berth configures.
const ALL: &str = "cpuset cpu io memory hugetlb pids";

/// A fake hierarchy offering `controllers` at its root, installed on this
/// thread, and berth's `Hierarchy` on it (the process's own cgroup is the
/// root). Declared first in a test, the guard outlives every handle.
fn fake(controllers: &str) -> (Rc<CgroupFs>, Installed, Hierarchy) {
    let fs = CgroupFs::new(controllers).expect("fake cgroupfs");
    let on = fs.install();
    let mountinfo = format!(
        "36 25 0:31 / {} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
        fs.root().display()
    );
    let h = Hierarchy::from_texts(&mountinfo, "0::/\n").expect("hierarchy on the fake");
    (fs, on, h)
}

/// A group `job` created (no resources) right under the fake's root.
fn job(fs: &CgroupFs, h: Hierarchy) -> Cgroup {
    CgroupBuilder::new("job")
        .hierarchy(h)
        .parent(fs.root())
        .create()
        .unwrap()
}

/// `(op, path)` of the calls whose op is in `ops`, successful or not.
fn ops(fs: &CgroupFs, ops: &[Op]) -> Vec<(Op, String)> {
    fs.calls()
        .into_iter()
        .filter(|c| ops.contains(&c.op))
        .map(|c| (c.op, c.path))
        .collect()
}

fn w(path: &str, value: &str) -> (String, String) {
    (path.to_string(), value.to_string())
}

fn sleeper() -> Child {
    Command::new("sleep")
        .arg("30")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sleep")
}

/// A block device of this machine as `(major, minor)` (io.max/io.weight
/// settings are checked against `/sys/dev/block`).
fn block_device() -> Option<(u32, u32)> {
    let e = std::fs::read_dir("/sys/dev/block").ok()?.next()?.ok()?;
    let name = e.file_name().into_string().ok()?;
    let (a, b) = name.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

#[test]
fn nested_create_enables_controllers_in_each_ancestor_before_the_limits() {
    let (fs, _on, h) = fake(ALL);
    let (cg, report) = CgroupBuilder::new("a/b/c")
        .hierarchy(h)
        .parent(fs.root())
        .resources(
            Resources::new()
                .memory_max(Limit::Value(1 << 20))
                .pids_max(Limit::Value(64)),
        )
        .create_with_report()
        .unwrap();
    assert_eq!(cg.path(), fs.root().join("a/b/c"));
    assert_eq!(
        cg.id(),
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(cg.path()).unwrap())
    );
    // Each level enables memory and pids for its children before the next
    // level is made; the limits come last, in the leaf.
    let order: Vec<(Op, String)> = ops(&fs, &[Op::Mkdir, Op::Write]);
    let sc = |p: &str| (Op::Write, format!("{p}cgroup.subtree_control"));
    assert_eq!(
        order,
        [
            sc(""),
            sc(""),
            (Op::Mkdir, "a".into()),
            sc("a/"),
            sc("a/"),
            (Op::Mkdir, "a/b".into()),
            sc("a/b/"),
            sc("a/b/"),
            (Op::Mkdir, "a/b/c".into()),
            (Op::Write, "a/b/c/memory.max".into()),
            (Op::Write, "a/b/c/pids.max".into()),
        ]
    );
    assert_eq!(
        fs.writes(),
        [
            w("cgroup.subtree_control", "+memory"),
            w("cgroup.subtree_control", "+pids"),
            w("a/cgroup.subtree_control", "+memory"),
            w("a/cgroup.subtree_control", "+pids"),
            w("a/b/cgroup.subtree_control", "+memory"),
            w("a/b/cgroup.subtree_control", "+pids"),
            w("a/b/c/memory.max", "1048576"),
            w("a/b/c/pids.max", "64"),
        ]
    );
    assert_eq!(
        report.applied,
        [w("memory.max", "1048576"), w("pids.max", "64")]
    );
    assert!(report.skipped.is_empty());
    assert_eq!(fs.read("a/b/c/cgroup.controllers"), "memory pids\n");
    assert_eq!(fs.read("a/b/c/memory.max"), "1048576\n");
    assert_eq!(fs.read("a/b/c/pids.max"), "64\n");
    // Dropping the handle removes the leaf; the levels above it stay.
    drop(cg);
    assert_eq!(fs.groups(), ["a", "a/b"]);
}

#[test]
fn existing_parent_is_reused_and_only_what_lacks_a_controller_is_written() {
    let (fs, _on, h) = fake(ALL);
    fs.write("cgroup.subtree_control", "+memory").unwrap();
    fs.mkdir("p").unwrap();
    fs.mkdir("p/a").unwrap();
    fs.clear_calls();
    let cg = CgroupBuilder::new("a/job")
        .hierarchy(h)
        .parent("p")
        .resources(Resources::new().memory_max(Limit::Max))
        .create()
        .unwrap();
    assert_eq!(
        fs.writes(),
        [
            w("p/cgroup.subtree_control", "+memory"),
            w("p/a/cgroup.subtree_control", "+memory"),
            w("p/a/job/memory.max", "max"),
        ]
    );
    // The existing `a` was reused (its mkdir failed EEXIST), `job` made.
    let mk: Vec<_> = fs
        .calls()
        .into_iter()
        .filter(|c| c.op == Op::Mkdir)
        .map(|c| (c.path, c.errno))
        .collect();
    assert_eq!(
        mk,
        [("p/a".into(), Some(libc::EEXIST)), ("p/a/job".into(), None)]
    );
    cg.remove().unwrap();
    assert_eq!(fs.groups(), ["p", "p/a"]);
}

#[test]
fn every_resource_lands_in_its_file_in_the_kernels_format() {
    let (fs, _on, h) = fake(ALL);
    let mut r = Resources::new()
        .cpuset_cpus("0-1")
        .cpuset_mems("0")
        .cpu_weight(200)
        .cpu_max(50_000, 100_000)
        .cpu_idle(true)
        .memory_min(Limit::Value(4096))
        .memory_low(Limit::Value(8192))
        .memory_high(Limit::Value(1 << 30))
        .memory_max(Limit::Max)
        .memory_swap_max(Limit::Value(0))
        .memory_oom_group(true)
        .io_weight(50)
        .pids_max(Limit::Value(32))
        .hugetlb("2MB", Limit::Value(4 << 20))
        .unified("memory.high", "max");
    let dev = block_device();
    if let Some((major, minor)) = dev {
        r.io.device_weights.push(IoDeviceWeight {
            major,
            minor,
            weight: 70,
        });
        r = r.io_max(IoMax {
            major,
            minor,
            rbps: Some(1 << 20),
            wiops: Some(100),
            ..Default::default()
        });
    }
    let (cg, report) = CgroupBuilder::new("job")
        .hierarchy(h)
        .parent(fs.root())
        .resources(r)
        .create_with_report()
        .unwrap();
    let written: Vec<(String, String)> = fs
        .writes()
        .into_iter()
        .filter_map(|(p, v)| Some((p.strip_prefix("job/")?.to_string(), v)))
        .collect();
    assert_eq!(written, report.applied, "written in order, as reported");
    // What the (emulated) kernel shows after parsing each value.
    let mut want = vec![
        ("cpuset.cpus", "0-1"),
        ("cpuset.mems", "0"),
        ("cpu.weight", "200"),
        ("cpu.max", "50000 100000"),
        ("cpu.idle", "1"),
        ("memory.min", "4096"),
        ("memory.low", "8192"),
        ("memory.high", "max"), // the unified entry, written last, wins
        ("memory.max", "max"),
        ("memory.swap.max", "0"),
        ("memory.oom.group", "1"),
        ("pids.max", "32"),
        ("hugetlb.2MB.max", "4194304"),
    ];
    let (dw, dm);
    if let Some((major, minor)) = dev {
        dw = format!("default 50\n{major}:{minor} 70");
        dm = format!("{major}:{minor} rbps=1048576 wbps=max riops=max wiops=100");
        want.push(("io.weight", &dw));
        want.push(("io.max", &dm));
    } else {
        want.push(("io.weight", "default 50"));
    }
    for (file, shown) in want {
        assert_eq!(fs.read(&format!("job/{file}")).trim_end(), shown, "{file}");
    }
    let files: Vec<&str> = report.applied.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        files[..5],
        [
            "cpuset.cpus",
            "cpuset.mems",
            "cpu.weight",
            "cpu.max",
            "cpu.idle"
        ]
    );
    assert_eq!(files.last(), Some(&"memory.high"));
    drop(cg);
    assert!(fs.groups().is_empty());
}

#[test]
fn a_quota_without_limit_is_max_and_period() {
    let (fs, _on, h) = fake(ALL);
    let mut r = Resources::new();
    r.cpu.max = Some(berth_cgroups::CpuMax {
        quota_us: None,
        period_us: 20_000,
    });
    let cg = CgroupBuilder::new("job")
        .hierarchy(h)
        .parent(fs.root())
        .resources(r)
        .create()
        .unwrap();
    assert_eq!(fs.writes().last().unwrap(), &w("job/cpu.max", "max 20000"));
    assert_eq!(fs.read("job/cpu.max"), "max 20000\n");
    drop(cg);
}

/// The kernel rejecting a limit: a clear error naming file and value, and
/// every directory the create made is gone again.
#[test]
fn a_rejected_limit_names_file_and_value_and_removes_what_was_made() {
    let (fs, _on, h) = fake(ALL);
    fs.mkdir("p").unwrap();
    fs.fail(Op::Write, "memory.max", libc::EINVAL);
    let e = CgroupBuilder::new("a/b")
        .hierarchy(h.clone())
        .parent("p")
        .resources(
            Resources::new()
                .cpu_weight(300)
                .memory_max(Limit::Value(1 << 20))
                .pids_max(Limit::Value(8)),
        )
        .create()
        .unwrap_err();
    match &e {
        Error::Apply {
            cgroup,
            file,
            value,
            applied,
            source,
        } => {
            assert_eq!(cgroup, &fs.root().join("p/a/b"));
            assert_eq!((file.as_str(), value.as_str()), ("memory.max", "1048576"));
            assert_eq!(applied, &[w("cpu.weight", "300")]);
            assert_eq!(source.raw_os_error(), Some(libc::EINVAL));
        }
        other => panic!("expected Error::Apply, got {other:?}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("memory.max") && msg.contains("\"1048576\"") && msg.contains("p/a/b"),
        "{msg}"
    );
    // Nothing after the failure was written; b then a were removed.
    assert_eq!(fs.writes().last().unwrap(), &w("p/a/b/cpu.weight", "300"));
    assert_eq!(
        ops(&fs, &[Op::Rmdir]),
        [(Op::Rmdir, "p/a/b".into()), (Op::Rmdir, "p/a".into())]
    );
    assert_eq!(fs.groups(), ["p"]);
    // What berth does today (as runc and crun): the controllers it enabled
    // in the groups that existed before stay enabled; undoing them could
    // take them from a sibling created meanwhile.
    assert_eq!(fs.read("p/cgroup.subtree_control"), "cpu memory pids\n");

    // The same with a value the (emulated) kernel's parser refuses.
    let e = CgroupBuilder::new("c")
        .hierarchy(h)
        .parent("p")
        .resources(Resources::new().unified("memory.high", "lots"))
        .create()
        .unwrap_err();
    assert!(
        matches!(&e, Error::Apply { file, value, .. } if file == "memory.high" && value == "lots"),
        "{e}"
    );
    assert_eq!(fs.groups(), ["p"]);
}

#[test]
fn a_failed_mkdir_open_enable_or_fstat_removes_the_levels_already_made() {
    let (fs, _on, h) = fake(ALL);
    let create = |name: &str| {
        CgroupBuilder::new(name)
            .hierarchy(h.clone())
            .parent(fs.root())
            .resources(Resources::new().memory_max(Limit::Value(1 << 30)))
            .create()
    };
    fs.fail_times(Op::Mkdir, "a/b", libc::EACCES, 1);
    let e = create("a/b/c").unwrap_err();
    assert!(
        matches!(&e, Error::Create { path, source } if path == &fs.root().join("a/b") && source.raw_os_error() == Some(libc::EACCES)),
        "{e}"
    );
    assert!(fs.groups().is_empty());

    fs.fail_times(Op::OpenSubdir, "a/b", libc::EMFILE, 1);
    let e = create("a/b/c").unwrap_err();
    assert!(
        matches!(&e, Error::Open { path, .. } if path == &fs.root().join("a/b")),
        "{e}"
    );
    assert!(fs.groups().is_empty());

    // A busy subtree_control (a process of its own, per the kernel) on the
    // second level: the first level goes again.
    fs.fail_times(Op::Write, "a/cgroup.subtree_control", libc::EBUSY, 1);
    let e = create("a/b").unwrap_err();
    assert!(
        matches!(&e, Error::InternalProcesses { controller, cgroup } if controller == "memory" && cgroup == &fs.root().join("a")),
        "{e}"
    );
    assert!(fs.groups().is_empty());

    fs.fail_times(Op::Inode, "a/b", libc::EIO, 1);
    let e = create("a/b").unwrap_err();
    assert!(matches!(&e, Error::Sys { call: "fstat", .. }), "{e}");
    assert!(fs.groups().is_empty());

    // An existing leaf is an error and is left alone (as is its parent).
    fs.mkdir("a").unwrap();
    fs.mkdir("a/b").unwrap();
    let e = create("a/b").unwrap_err();
    assert!(
        matches!(&e, Error::Create { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists),
        "{e}"
    );
    assert_eq!(fs.groups(), ["a", "a/b"]);
}

/// The kernel's no-internal-processes rule, emulated: a parent with a
/// process of its own cannot pass memory down.
#[test]
fn a_parent_with_processes_cannot_enable_a_domain_controller() {
    let (fs, _on, h) = fake(ALL);
    fs.mkdir("p").unwrap();
    let mut child = sleeper();
    fs.write("p/cgroup.procs", &child.id().to_string()).unwrap();
    let e = CgroupBuilder::new("job")
        .hierarchy(h.clone())
        .parent("p")
        .resources(Resources::new().memory_max(Limit::Value(1 << 30)))
        .create()
        .unwrap_err();
    assert!(
        matches!(&e, Error::InternalProcesses { controller, .. } if controller == "memory"),
        "{e}"
    );
    assert!(e.to_string().contains("no-internal-processes"), "{e}");
    // pids is a threaded controller: allowed.
    let cg = CgroupBuilder::new("job")
        .hierarchy(h)
        .parent("p")
        .resources(Resources::new().pids_max(Limit::Value(4)))
        .create()
        .unwrap();
    assert_eq!(fs.read("p/job/pids.max"), "4\n");
    drop(cg);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(fs.groups(), ["p"]);
}

#[test]
fn missing_controllers_fail_before_anything_is_made_or_are_skipped() {
    let (fs, _on, h) = fake("memory");
    let e = CgroupBuilder::new("job")
        .hierarchy(h.clone())
        .parent(fs.root())
        .resources(
            Resources::new()
                .memory_max(Limit::Value(1 << 30))
                .pids_max(Limit::Value(4))
                .cpu_weight(10),
        )
        .create()
        .unwrap_err();
    assert!(
        matches!(&e, Error::MissingController { controller, .. } if controller == "cpu, pids"),
        "{e}"
    );
    assert!(ops(&fs, &[Op::Mkdir, Op::Write]).is_empty());
    let (cg, report) = CgroupBuilder::new("job")
        .hierarchy(h)
        .parent(fs.root())
        .resources(
            Resources::new()
                .memory_max(Limit::Value(1 << 30))
                .pids_max(Limit::Value(4)),
        )
        .ignore_unavailable(true)
        .create_with_report()
        .unwrap();
    assert_eq!(report.applied, [w("memory.max", "1073741824")]);
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].controller, Controller::Pids);
    assert_eq!(report.skipped[0].file, "pids.max");
    // apply() on the handle: refused before any write.
    fs.clear_calls();
    let e = cg
        .apply(&Resources::new().pids_max(Limit::Value(1)))
        .unwrap_err();
    assert!(matches!(e, Error::MissingController { .. }), "{e}");
    assert!(fs.writes().is_empty());
}

#[test]
fn the_default_parent_is_made_on_first_use_and_kept() {
    let (fs, _on, h) = fake(ALL);
    let cg = CgroupBuilder::new("job").hierarchy(h).create().unwrap();
    assert_eq!(cg.path(), fs.root().join("berth/job"));
    drop(cg);
    assert_eq!(fs.groups(), ["berth"]);
}

#[test]
fn removing_an_empty_group_is_one_rmdir() {
    let (fs, _on, h) = fake(ALL);
    let cg = job(&fs, h);
    fs.clear_calls();
    cg.remove().unwrap();
    let calls: Vec<String> = fs.calls().iter().map(|c| c.to_string()).collect();
    assert_eq!(calls, ["OpenAt ", "Rmdir job"]);
    assert!(fs.groups().is_empty());
}

/// A populated group: rmdir is EBUSY, so berth kills through cgroup.kill,
/// waits for cgroup.events to say empty, then removes children deepest
/// first and the group.
#[test]
fn removing_a_populated_group_kills_then_removes_children_first() {
    let (fs, _on, h) = fake(ALL);
    let cg = job(&fs, h);
    fs.mkdir("job/x").unwrap();
    fs.mkdir("job/x/y").unwrap();
    let mut child = sleeper();
    cg.add_process(child.id()).unwrap();
    assert_eq!(cg.procs().unwrap(), [child.id()]);
    assert!(cg.events().unwrap().populated);
    fs.clear_calls();
    cg.remove().unwrap();
    let calls: Vec<String> = fs
        .calls()
        .iter()
        .filter(|c| matches!(c.op, Op::Rmdir | Op::Write | Op::Read))
        .map(|c| c.to_string())
        .collect();
    assert_eq!(
        calls,
        [
            "Rmdir job -> Device or resource busy (os error 16)",
            "Read job/cgroup.events",
            "Write job/cgroup.kill = \"1\"",
            "Rmdir job/x/y",
            "Rmdir job/x",
            "Rmdir job",
        ]
    );
    assert!(fs.groups().is_empty());
    // The fake never signals: the process is the test's to end.
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn rmdir_retries_while_busy_and_fails_clearly_otherwise() {
    let (fs, _on, h) = fake(ALL);
    let make = |name: &str| {
        CgroupBuilder::new(name)
            .hierarchy(h.clone())
            .parent(fs.root())
            .create()
            .unwrap()
    };
    // Busy a few times (draining): retried until it goes; not populated,
    // so nothing is killed.
    let cg = make("drain");
    fs.fail_times(Op::Rmdir, "drain", libc::EBUSY, 3);
    fs.clear_calls();
    cg.remove().unwrap();
    assert_eq!(ops(&fs, &[Op::Rmdir]).len(), 4);
    assert!(fs.writes().is_empty());
    assert!(fs.groups().is_empty());

    // Another errno: one attempt, an error naming the group.
    let mut cg = make("denied");
    fs.fail_times(Op::Rmdir, "denied", libc::EACCES, 1);
    fs.clear_calls();
    cg.set_remove_on_drop(false);
    let e = Cgroup::open(cg.hierarchy(), "denied")
        .unwrap()
        .remove()
        .unwrap_err();
    assert!(
        matches!(&e, Error::Remove { path, source } if path == &fs.root().join("denied") && source.raw_os_error() == Some(libc::EACCES)),
        "{e}"
    );
    assert_eq!(ops(&fs, &[Op::Rmdir]).len(), 1);
    assert!(e.to_string().contains("removing cgroup"), "{e}");
    drop(cg);
    assert_eq!(fs.groups(), ["denied"]);

    // Busy for good: retried for DEFAULT_TIMEOUT, then the last errno.
    let cg = make("stuck");
    fs.fail(Op::Rmdir, "stuck", libc::EBUSY);
    let e = cg.remove().unwrap_err();
    assert!(
        matches!(&e, Error::Remove { source, .. } if source.raw_os_error() == Some(libc::EBUSY)),
        "{e}"
    );
}

#[test]
fn the_root_is_never_killed_or_removed() {
    let (fs, _on, h) = fake(ALL);
    let root = Cgroup::open(&h, "").unwrap();
    assert!(root.is_root());
    fs.clear_calls();
    assert!(matches!(root.kill(), Err(Error::InvalidPath { .. })));
    assert!(matches!(root.remove(), Err(Error::InvalidPath { .. })));
    assert!(fs.calls().is_empty());
}

#[test]
fn freeze_and_thaw_wait_on_cgroup_events() {
    let (fs, _on, h) = fake(ALL);
    let cg = job(&fs, h);
    fs.clear_calls();
    cg.freeze().unwrap();
    assert!(cg.events().unwrap().frozen);
    cg.thaw().unwrap();
    assert!(!cg.events().unwrap().frozen);
    let calls: Vec<String> = fs
        .calls()
        .iter()
        .filter(|c| matches!(c.op, Op::Write | Op::Pread))
        .map(|c| c.to_string())
        .collect();
    assert_eq!(
        calls,
        [
            "Write job/cgroup.freeze = \"1\"",
            "Pread job/cgroup.events",
            "Write job/cgroup.freeze = \"0\"",
            "Pread job/cgroup.events",
        ]
    );
    // Tasks that never stop: a timeout naming the state.
    fs.hold("job");
    let e = cg.freeze_timeout(Duration::from_millis(120)).unwrap_err();
    assert!(
        matches!(&e, Error::Timeout { state: "frozen", cgroup, .. } if cgroup == &fs.root().join("job")),
        "{e}"
    );
    assert!(fs.calls().iter().filter(|c| c.op == Op::Pread).count() > 3);
}

#[test]
fn kill_waits_for_empty_and_times_out_clearly() {
    let (fs, _on, h) = fake(ALL);
    let cg = job(&fs, h);
    let mut child = sleeper();
    cg.add_process(child.id()).unwrap();
    cg.kill().unwrap();
    assert!(!cg.events().unwrap().populated);
    assert!(fs.writes().contains(&w("job/cgroup.kill", "1")));
    // A group whose tasks do not die.
    cg.add_process(child.id()).unwrap();
    fs.hold("job");
    let e = cg.kill_timeout(Duration::from_millis(120)).unwrap_err();
    assert!(matches!(&e, Error::Timeout { state: "empty", .. }), "{e}");
    child.kill().unwrap();
    child.wait().unwrap();
    // The fake sees it gone: the group is empty and goes.
    assert!(!cg.events().unwrap().populated);
    cg.remove().unwrap();
    assert!(fs.groups().is_empty());
}

/// Before 5.14 there is no cgroup.kill: berth freezes, SIGKILLs every pid
/// it lists (here a process of this test), thaws, until none is left.
#[test]
fn without_cgroup_kill_each_pid_is_killed() {
    let (fs, _on, h) = fake(ALL);
    let cg = job(&fs, h);
    fs.mkdir("job/sub").unwrap();
    let mut child = sleeper();
    fs.write("job/sub/cgroup.procs", &child.id().to_string())
        .unwrap();
    fs.fail(Op::Write, "job/cgroup.kill", libc::ENOENT);
    fs.clear_calls();
    cg.kill().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    let writes = fs.writes();
    assert_eq!(writes.first(), Some(&w("job/cgroup.freeze", "1")));
    assert_eq!(writes.last(), Some(&w("job/cgroup.freeze", "0")));
    assert!(fs
        .calls()
        .iter()
        .any(|c| c.op == Op::Read && c.path == "job/sub/cgroup.procs"));
    cg.remove().unwrap();
    assert!(fs.groups().is_empty());
}

#[test]
fn the_fake_is_cgroup2_only_for_its_own_directory() {
    let (fs, _on, h) = fake(ALL);
    assert_eq!(h.mount_point(), fs.root());
    berth_cgroups::verify_cgroup2(fs.root()).unwrap();
    let e = berth_cgroups::verify_cgroup2(Path::new("/")).unwrap_err();
    assert!(matches!(e, Error::NotCgroup2 { .. }), "{e}");
    assert_eq!(
        h.root_controllers().unwrap().to_string(),
        "cpu cpuset io memory pids hugetlb"
    );
}

/// The pid-by-pid kill freezes the group first: when listing its pids
/// fails, the group must not be left frozen.
#[test]
fn a_failed_kill_without_cgroup_kill_does_not_leave_the_group_frozen() {
    let (fs, _on, h) = fake(ALL);
    let cg = job(&fs, h);
    fs.mkdir("job/sub").unwrap();
    let mut child = sleeper();
    cg.add_process(child.id()).unwrap();
    fs.fail(Op::Write, "job/cgroup.kill", libc::ENOENT);
    fs.fail_times(Op::Read, "job/sub/cgroup.procs", libc::EIO, 1);
    let e = cg.kill().unwrap_err();
    assert!(
        matches!(&e, Error::Read { path, .. } if path == &fs.root().join("job/sub/cgroup.procs")),
        "{e}"
    );
    assert_eq!(fs.read("job/cgroup.freeze"), "0\n", "left frozen after {e}");
    assert!(!cg.events().unwrap().frozen);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn the_fakes_files_read_back_through_stats() {
    let (fs, _on, h) = fake(ALL);
    let cg = CgroupBuilder::new("job")
        .hierarchy(h)
        .parent(fs.root())
        .enable(Controller::Memory)
        .enable(Controller::Pids)
        .enable(Controller::Cpu)
        .enable(Controller::Io)
        .create()
        .unwrap();
    let s = cg.stats().unwrap();
    assert_eq!(s.memory.as_ref().unwrap().current, 0);
    assert_eq!(s.pids.as_ref().unwrap().current, 0);
    assert!(s.cpu.is_some() && s.io.is_some());
    assert_eq!(s, cg.stats_reader().unwrap().read().unwrap());
}

/// The fake against this machine's kernel (root only): the same writes and
/// removals on a real scratch group and on the fake give the same errnos
/// and the same `cgroup.events`. The host's cgroup2 offers few controllers,
/// so these are the core rules.
#[test]
fn the_fake_agrees_with_the_kernel() {
    berth_testkit::privileged!();
    use std::os::fd::AsFd;
    let mount = Hierarchy::discover().unwrap().mount_point().to_path_buf();
    let name = berth_testkit::unique_name("bfk");
    let _guard = berth_testkit::CgroupDir::adopt(mount.join(&name));
    std::fs::create_dir(mount.join(&name)).unwrap();
    std::fs::create_dir(mount.join(&name).join("sub")).unwrap();
    let text = |p: &Path| std::fs::read_to_string(p).unwrap();
    let fs = CgroupFs::new(&text(&mount.join("cgroup.controllers"))).unwrap();
    for c in text(&mount.join("cgroup.subtree_control")).split_whitespace() {
        fs.write("cgroup.subtree_control", &format!("+{c}"))
            .unwrap();
    }
    fs.mkdir(&name).unwrap();
    fs.mkdir(&format!("{name}/sub")).unwrap();
    let _on = fs.install();
    let roots = [mount.clone(), fs.root().to_path_buf()];
    // Run `f` on the real group and on the fake one, the results side by side.
    let both = |rel: &str, f: &dyn Fn(&Path) -> Option<i32>| -> [Option<i32>; 2] {
        [f(&roots[0].join(rel)), f(&roots[1].join(rel))]
    };
    let write = |file: &'static str, value: &'static str| {
        move |dir: &Path| {
            let d = berth_sys::fs::open_dir(dir).unwrap();
            berth_sys::fs::write_at(d.as_fd(), file.as_ref(), value.as_bytes())
                .err()
                .map(|e| e.raw_os_error().unwrap())
        }
    };
    let rmdir = |dir: &Path| {
        let parent = berth_sys::fs::open_dir(dir.parent().unwrap()).unwrap();
        berth_sys::fs::rmdirat(parent.as_fd(), dir.file_name().unwrap())
            .err()
            .map(|e| e.raw_os_error().unwrap())
    };
    for (file, value) in [
        ("cgroup.subtree_control", "+nosuch"),
        ("cgroup.subtree_control", "memory"),
        ("cgroup.subtree_control", "+memory"),
        ("cgroup.subtree_control", "-memory"),
        ("cgroup.freeze", "2"),
        ("cgroup.freeze", "x"),
        ("cgroup.kill", "0"),
        ("cgroup.events", "populated 0"),
        ("cgroup.type", "domain"),
        ("cgroup.procs", "999999999"),
        ("cgroup.procs", "abc"),
        ("cgroup.stat", "x"),
        ("cgroup.controllers", "x"),
        ("cpu.stat", "x"),
        ("nosuch.file", "1"),
    ] {
        let [real, fake] = both(&name, &write(file, value));
        assert_eq!(fake, real, "{file} = {value:?}: fake vs kernel");
    }
    let sub = format!("{name}/sub");
    let events = |rel: &str| {
        roots
            .clone()
            .map(|r| text(&r.join(rel).join("cgroup.events")))
    };
    let same_events = |rel: &str| {
        let [real, fake] = events(rel);
        assert_eq!(fake, real, "{rel}/cgroup.events: fake vs kernel");
    };
    assert_eq!(both(&name, &rmdir), [Some(libc::EBUSY); 2], "a child group");
    let mut child = sleeper();
    let pid: &'static str = child.id().to_string().leak();
    assert_eq!(both(&sub, &write("cgroup.procs", pid)), [None, None]);
    same_events(&name);
    assert_eq!(both(&sub, &rmdir), [Some(libc::EBUSY); 2], "populated");
    // hugetlb, a domain controller, where this host's cgroup2 offers it.
    if text(&mount.join("cgroup.subtree_control")).contains("hugetlb") {
        let rows = [
            (&name, "cgroup.subtree_control", "+hugetlb"),
            (&sub, "cgroup.subtree_control", "+hugetlb"), // a process of its own
            (&name, "cgroup.procs", pid),                 // controllers for children
            (&sub, "hugetlb.2MB.max", "3M"),
            (&sub, "hugetlb.2MB.max", "lots"),
            (&name, "cgroup.subtree_control", "-hugetlb"),
        ];
        let mut checked = 0;
        for (rel, file, value) in rows {
            if !mount.join(rel).join(file).exists() && file.starts_with("hugetlb") {
                continue;
            }
            let [real, fake] = both(rel, &write(file, value));
            assert_eq!(fake, real, "{rel}/{file} = {value:?}: fake vs kernel");
            let [real, fake] = roots
                .clone()
                .map(|r| std::fs::read_to_string(r.join(rel).join(file)).ok());
            assert_eq!(fake, real, "{rel}/{file} after {value:?}: fake vs kernel");
            checked += 1;
        }
        eprintln!("hugetlb rows checked against the kernel: {checked}");
        assert!(checked >= 4);
    }
    assert_eq!(both(&sub, &write("cgroup.freeze", "1")), [None, None]);
    let settle = |want: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while events(&sub)[0] != want && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    settle("populated 1\nfrozen 1\n");
    same_events(&sub);
    assert_eq!(both(&sub, &write("cgroup.kill", "1")), [None, None]);
    settle("populated 0\nfrozen 1\n");
    same_events(&sub);
    same_events(&name);
    assert_eq!(both(&sub, &rmdir), [None, None]);
    assert_eq!(both(&name, &rmdir), [None, None]);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
}
