//! Host tier: the real (hybrid) hierarchy of this machine, as root, with no
//! controllers. Every group is uniquely named and removed even on panic.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_cgroups::{Cgroup, CgroupBuilder, Controller, Error, Event, Hierarchy, Limit, Resources};
use berth_testkit::{unique_name, CgroupDir};

/// The tests count this process's fds, so they run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn hierarchy() -> Hierarchy {
    Hierarchy::discover().expect("discover the cgroup2 hierarchy")
}

/// A uniquely named group directly under the mount, plus the guard that
/// removes it even when the test panics.
fn scratch(h: &Hierarchy) -> (CgroupDir, Cgroup) {
    let name = unique_name("bcg");
    let guard = CgroupDir::adopt(h.mount_point().join(&name));
    let cg = CgroupBuilder::new(&name)
        .hierarchy(h.clone())
        .parent(h.mount_point())
        .create()
        .expect("create scratch cgroup");
    (guard, cg)
}

fn sleeper() -> Child {
    Command::new("sleep")
        .arg("30")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sleep")
}

fn proc_cgroup(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap()
}

#[test]
fn discovery_finds_cgroup2_and_refuses_tmpfs() {
    berth_testkit::privileged!();
    let _serial = serial();
    let h = hierarchy();
    berth_cgroups::verify_cgroup2(h.mount_point()).unwrap();
    // On this hybrid host /sys/fs/cgroup is a tmpfs: it must not be chosen, and
    // verification must refuse it.
    let usual = Path::new("/sys/fs/cgroup");
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let usual_is_tmpfs = berth_cgroups::parse_mountinfo(&mi)
        .unwrap()
        .iter()
        .any(|m| m.mount_point == usual && m.fs_type == "tmpfs");
    if usual_is_tmpfs {
        assert_eq!(h.mount_point(), Path::new("/sys/fs/cgroup/unified"));
        let e = berth_cgroups::verify_cgroup2(usual).unwrap_err();
        assert!(matches!(e, Error::NotCgroup2 { .. }), "{e}");
        assert!(e.to_string().contains("0x1021994"), "{e}"); // TMPFS_MAGIC
                                                             // A mountinfo lying that the tmpfs is cgroup2 is refused by statfs.
        let fake = "31 23 0:28 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw\n";
        let e = Hierarchy::from_texts(fake, "0::/\n").unwrap_err();
        assert!(matches!(e, Error::NotCgroup2 { .. }), "{e}");
    }
    // The root handle can be read but never killed or removed.
    let root = Cgroup::open(&h, "/").unwrap();
    assert!(root.is_root());
    assert!(!root.procs().unwrap().is_empty());
    assert!(matches!(root.kill(), Err(Error::InvalidPath { .. })));
    assert!(matches!(
        root.kill_each(Duration::from_secs(1)),
        Err(Error::InvalidPath { .. })
    ));
    assert!(matches!(root.remove(), Err(Error::InvalidPath { .. })));
    // No cgroup2 line at all.
    let e = Hierarchy::from_texts(
        "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n",
        "0::/\n",
    )
    .unwrap_err();
    assert!(matches!(e, Error::NoCgroup2Mount), "{e}");
    // Our own cgroup exists in it and lists us.
    let own = h.own_cgroup_dir();
    let procs = std::fs::read_to_string(own.join("cgroup.procs")).unwrap();
    assert!(procs
        .lines()
        .any(|l| l.trim() == std::process::id().to_string()));
}

#[test]
fn create_nested_add_list_and_remove() {
    berth_testkit::privileged!();
    let _serial = serial();
    let h = hierarchy();
    let (_g, parent) = scratch(&h);
    let fds_before = berth_testkit::open_fds();
    let cg = CgroupBuilder::new("a/b/c")
        .hierarchy(h.clone())
        .parent(parent.path())
        .create()
        .unwrap();
    assert_eq!(cg.path(), parent.path().join("a/b/c"));
    assert!(cg.path().is_dir());
    // The id is the directory's inode (what bpf_get_current_cgroup_id returns).
    assert_eq!(cg.id(), std::fs::metadata(cg.path()).unwrap().ino());

    let mut child = sleeper();
    cg.add_process(child.id()).unwrap();
    assert_eq!(cg.procs().unwrap(), vec![child.id()]);
    assert_eq!(cg.threads().unwrap(), vec![child.id()]);
    let rel = cg.path().strip_prefix(h.mount_point()).unwrap();
    assert!(
        proc_cgroup(child.id()).contains(&format!("0::/{}", rel.display())),
        "{}",
        proc_cgroup(child.id())
    );
    assert!(cg.events().unwrap().populated);

    // Re-open by path: same group, and it is not removed when dropped.
    let rel_s = rel.to_path_buf();
    let again = Cgroup::open(&h, &rel_s).unwrap();
    assert_eq!(again.id(), cg.id());
    drop(again);
    assert!(cg.path().exists());

    // Removing the middle group kills the process and removes b/c and b.
    let b = Cgroup::open(&h, rel_s.parent().unwrap()).unwrap();
    let b_path = b.path().to_path_buf();
    drop(cg);
    b.remove().unwrap();
    let st = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(libc::SIGKILL));
    assert!(!b_path.exists());
    assert!(parent.path().join("a").is_dir());
    assert_eq!(berth_testkit::open_fds(), fds_before, "fd leak");
}

#[test]
fn drop_removes_created_group_with_its_processes() {
    berth_testkit::privileged!();
    let _serial = serial();
    let h = hierarchy();
    let (_g, parent) = scratch(&h);
    let cg = Cgroup::builder("dropme")
        .hierarchy(h.clone())
        .parent(parent.path())
        .create()
        .unwrap();
    let mut child = sleeper();
    cg.add_process(child.id()).unwrap();
    let p = cg.path().to_path_buf();
    drop(cg);
    assert!(!p.exists());
    assert!(child.wait().unwrap().code().is_none());
}

#[test]
fn add_by_pidfd() {
    berth_testkit::privileged!();
    let _serial = serial();
    let h = hierarchy();
    let (_g, cg) = scratch(&h);
    let mut child = sleeper();
    // SAFETY: pidfd_open(2) returns a new fd we own.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
    assert!(raw >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
    // SAFETY: the fresh pidfd is owned by nobody else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
    cg.add_pidfd(std::os::fd::AsFd::as_fd(&pidfd)).unwrap();
    assert_eq!(cg.procs().unwrap(), vec![child.id()]);
    cg.kill().unwrap();
    child.wait().unwrap();
    // The process is gone (reaped): the pidfd now refers to nothing.
    let e = cg.add_pidfd(std::os::fd::AsFd::as_fd(&pidfd)).unwrap_err();
    assert!(
        e.to_string().contains("ESRCH")
            || e.to_string().contains("No such process")
            || e.to_string().contains("exited"),
        "{e}"
    );
    // A non-pidfd is refused with a clear error.
    let f = std::fs::File::open("/proc/self/status").unwrap();
    let e = cg
        // SAFETY: f stays open for the call.
        .add_pidfd(unsafe { std::os::fd::BorrowedFd::borrow_raw(f.as_raw_fd()) })
        .unwrap_err();
    assert!(matches!(e, Error::Parse { .. }), "{e}");
}

/// A shell that appends a line to `file` every 20 ms.
fn ticker(file: &Path) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while :; do echo x >> {}; sleep 0.02; done",
            file.display()
        ))
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn ticker")
}

fn lines(file: &Path) -> usize {
    std::fs::read_to_string(file)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn freeze_stops_and_thaw_resumes_a_counter() {
    berth_testkit::privileged!();
    let _serial = serial();
    let h = hierarchy();
    let (_g, cg) = scratch(&h);
    let dir = tempfile_dir();
    let file = dir.join("ticks");
    let mut w = cg.watch().unwrap();
    let mut child = ticker(&file);
    cg.add_process(child.id()).unwrap();
    assert_eq!(
        w.wait(Some(Duration::from_secs(20))).unwrap(),
        vec![Event::Populated]
    );
    wait_for("ticks", Duration::from_secs(20), || lines(&file) >= 3);

    cg.freeze().unwrap();
    assert!(cg.events().unwrap().frozen);
    assert_eq!(
        w.wait(Some(Duration::from_secs(20))).unwrap(),
        vec![Event::Frozen]
    );
    let frozen_at = lines(&file);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(lines(&file), frozen_at, "counter advanced while frozen");

    cg.thaw().unwrap();
    assert_eq!(
        w.wait(Some(Duration::from_secs(20))).unwrap(),
        vec![Event::Thawed]
    );
    wait_for("ticks after thaw", Duration::from_secs(20), || {
        lines(&file) > frozen_at + 2
    });

    cg.kill().unwrap();
    assert!(!cg.events().unwrap().populated);
    assert!(cg.procs().unwrap().is_empty());
    assert_eq!(
        w.wait(Some(Duration::from_secs(20))).unwrap(),
        vec![Event::Empty]
    );
    // Nothing more happens: the wait times out empty.
    assert!(w.wait(Some(Duration::from_millis(50))).unwrap().is_empty());
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> PathBuf {
    let d = std::env::temp_dir().join(unique_name("bcgt"));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn kill_empties_group_with_children_and_descendant_groups() {
    berth_testkit::privileged!();
    let _serial = serial();
    let h = hierarchy();
    let (_g, cg) = scratch(&h);
    let sub = CgroupBuilder::new("sub")
        .hierarchy(h.clone())
        .parent(cg.path())
        .create()
        .unwrap();
    // A shell with its own children, and another process in the child group.
    let mut a = Command::new("sh")
        .args(["-c", "read _go; sleep 30 & sleep 30 & wait"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut b = sleeper();
    sub.add_process(b.id()).unwrap();
    // cgroup v2 has no internal-process rule without controllers, so the
    // parent may hold a process too. Released only once inside, so its
    // children are born in the group.
    cg.add_process(a.id()).unwrap();
    std::io::Write::write_all(&mut a.stdin.take().unwrap(), b"go\n").unwrap();
    wait_for("grandchildren", Duration::from_secs(20), || {
        std::fs::read_to_string(format!("/proc/{}/task/{}/children", a.id(), a.id()))
            .map(|s| s.split_whitespace().count() == 2)
            .unwrap_or(false)
    });
    cg.kill().unwrap();
    a.wait().unwrap();
    b.wait().unwrap();
    assert!(!cg.events().unwrap().populated);
    assert!(!sub.events().unwrap().populated);
}

#[test]
fn missing_controller_is_a_clear_error_and_leaves_nothing() {
    berth_testkit::privileged!();
    let _serial = serial();
    let h = hierarchy();
    if h.root_controllers().unwrap().contains(Controller::Memory) {
        eprintln!("SKIPPED: this host's cgroup2 offers memory; the error path is for hybrid hosts");
        return;
    }
    let (_g, parent) = scratch(&h);
    let fds = berth_testkit::open_fds();
    let e = CgroupBuilder::new("limited")
        .hierarchy(h.clone())
        .parent(parent.path())
        .resources(Resources::new().memory_max(Limit::Value(64 << 20)))
        .create()
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, Error::MissingController { ref controller, .. } if controller == "memory"),
        "{msg}"
    );
    assert!(msg.contains("controller memory"), "{msg}");
    assert!(
        msg.contains(&h.mount_point().display().to_string()),
        "{msg}"
    );
    // On this hybrid host memory is bound to the v1 hierarchy.
    if Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists() {
        assert!(
            msg.contains("cgroup v1 hierarchy at /sys/fs/cgroup/memory"),
            "{msg}"
        );
    }
    assert!(
        !parent.path().join("limited").exists(),
        "left a directory behind"
    );
    assert_eq!(berth_testkit::open_fds(), fds);

    // Same through apply() on an existing group: nothing is written.
    let e = parent
        .apply(&Resources::new().pids_max(Limit::Value(5)))
        .unwrap_err();
    assert!(e.to_string().contains("controller pids"), "{e}");
    // Several missing controllers are named at once (issue 22 item 7).
    if !h.root_controllers().unwrap().contains(Controller::Pids) {
        let e = parent
            .apply(
                &Resources::new()
                    .memory_max(Limit::Value(64 << 20))
                    .pids_max(Limit::Value(5)),
            )
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("memory") && msg.contains("pids"), "{msg}");
        assert!(msg.contains("memory: ") && msg.contains("pids: "), "{msg}");
    }

    // With ignore_unavailable the group is created and the skip is reported.
    let (cg, report) = CgroupBuilder::new("lenient")
        .hierarchy(h.clone())
        .parent(parent.path())
        .resources(
            Resources::new()
                .memory_max(Limit::Value(64 << 20))
                .cpu_weight(50),
        )
        .ignore_unavailable(true)
        .create_with_report()
        .unwrap();
    assert!(report.applied.is_empty());
    let skipped: Vec<_> = report.skipped.iter().map(|s| s.file.as_str()).collect();
    assert_eq!(skipped, vec!["cpu.weight", "memory.max"]);
    assert!(report.skipped[1].bound.contains("memory") || report.skipped[1].bound.contains("not"));
    cg.remove().unwrap();
}

#[test]
fn bad_input_writes_nothing() {
    berth_testkit::privileged!();
    let _serial = serial();
    let h = hierarchy();
    let (_g, parent) = scratch(&h);
    let before: Vec<_> = std::fs::read_dir(parent.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    let fds = berth_testkit::open_fds();
    let cases: Vec<(CgroupBuilder, &str)> = vec![
        (CgroupBuilder::new("../escape"), "`..`"),
        (CgroupBuilder::new("ok/../../escape"), "`..`"),
        (CgroupBuilder::new("/abs"), "relative"),
        (
            CgroupBuilder::new("w").resources(Resources::new().cpu_weight(0)),
            "1..=10000",
        ),
        (
            CgroupBuilder::new("q").resources(Resources::new().cpu_max(0, 100_000)),
            "quota",
        ),
        (
            CgroupBuilder::new("c").resources(Resources::new().cpuset_cpus("1-x")),
            "cpuset.cpus",
        ),
        (
            CgroupBuilder::new("d").resources(Resources::new().io_max(berth_cgroups::IoMax {
                major: 4000,
                minor: 4000,
                rbps: Some(1),
                ..Default::default()
            })),
            "4000:4000 does not exist",
        ),
    ];
    for (b, want) in cases {
        let e = b
            .hierarchy(h.clone())
            .parent(parent.path())
            .create()
            .unwrap_err();
        assert!(e.to_string().contains(want), "{e} (wanted {want:?})");
    }
    // A write the kernel refuses part-way: the error names the file, the
    // value, the errno and what was already written; the group is removed.
    let e = CgroupBuilder::new("partial")
        .hierarchy(h.clone())
        .parent(parent.path())
        .resources(
            Resources::new()
                .unified("cgroup.max.depth", "3")
                .unified("cgroup.max.descendants", "-5"),
        )
        .create()
        .unwrap_err();
    match &e {
        Error::Apply {
            file,
            value,
            applied,
            source,
            ..
        } => {
            assert_eq!(file, "cgroup.max.descendants");
            assert_eq!(value, "-5");
            assert_eq!(
                applied,
                &vec![("cgroup.max.depth".to_string(), "3".to_string())]
            );
            assert!(
                matches!(source.raw_os_error(), Some(libc::EINVAL | libc::ERANGE)),
                "{source}"
            );
        }
        other => panic!("expected Error::Apply, got {other}"),
    }
    assert!(!parent.path().join("partial").exists());
    // A parent outside the mount or escaping it.
    let e = CgroupBuilder::new("x")
        .hierarchy(h.clone())
        .parent("/tmp")
        .create()
        .unwrap_err();
    assert!(e.to_string().contains("outside"), "{e}");
    let e = CgroupBuilder::new("x")
        .hierarchy(h.clone())
        .parent(h.mount_point().join("../.."))
        .create()
        .unwrap_err();
    assert!(matches!(e, Error::InvalidPath { .. }), "{e}");
    let after: Vec<_> = std::fs::read_dir(parent.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(before, after);
    assert_eq!(berth_testkit::open_fds(), fds);
    // Creating an existing leaf is an error, and does not remove it.
    let e = CgroupBuilder::new(parent.path().file_name().unwrap())
        .hierarchy(h.clone())
        .parent(h.mount_point())
        .create()
        .unwrap_err();
    assert!(matches!(e, Error::Create { .. }), "{e}");
    assert!(parent.path().exists());
}

#[test]
fn stats_read_what_exists() {
    berth_testkit::privileged!();
    let _serial = serial();
    let h = hierarchy();
    let (_g, cg) = scratch(&h);
    let mut child = Command::new("sh")
        .args([
            "-c",
            "read _go; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 30",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    cg.add_process(child.id()).unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"go\n").unwrap();
    wait_for("cpu usage", Duration::from_secs(30), || {
        cg.stats().unwrap().cpu.unwrap().usage_usec > 1000
    });
    let mut reader = cg.stats_reader().unwrap();
    let first = reader.read().unwrap().cpu.unwrap().usage_usec;
    let s = cg.stats().unwrap();
    let cpu = s.cpu.clone().unwrap();
    // The reader's open files are re-read, not cached: it sees the same
    // kinds of data as stats(), and usage never goes back.
    let again = reader.read().unwrap();
    assert!(again.cpu.unwrap().usage_usec >= first);
    assert_eq!(again.memory.is_some(), s.memory.is_some());
    assert_eq!(again.cpu_pressure.is_some(), s.cpu_pressure.is_some());
    assert!(cpu.user_usec + cpu.system_usec > 0);
    // Gated on stdin so it cannot finish before it is in the group.
    let mut burner = Command::new("sh")
        .args([
            "-c",
            "read _go; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    cg.add_process(burner.id()).unwrap();
    std::io::Write::write_all(&mut burner.stdin.take().unwrap(), b"go\n").unwrap();
    burner.wait().unwrap();
    wait_for(
        "usage seen through the reader",
        Duration::from_secs(30),
        || reader.read().unwrap().cpu.unwrap().usage_usec > cpu.usage_usec,
    );
    let have = cg.controllers().unwrap();
    assert_eq!(s.memory.is_some(), have.contains(Controller::Memory));
    assert_eq!(s.pids.is_some(), have.contains(Controller::Pids));
    if Path::new("/proc/pressure/cpu").exists() {
        assert!(s.cpu_pressure.is_some());
    }
    cg.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn unified_raw_core_file_is_applied() {
    berth_testkit::privileged!();
    let _serial = serial();
    let h = hierarchy();
    let (_g, cg) = scratch(&h);
    // cgroup.max.descendants is a core file: present without controllers.
    let r = cg
        .apply(&Resources::new().unified("cgroup.max.descendants", "1"))
        .unwrap();
    assert_eq!(
        r.applied,
        vec![("cgroup.max.descendants".into(), "1".into())]
    );
    let _one = CgroupBuilder::new("one")
        .hierarchy(h.clone())
        .parent(cg.path())
        .create()
        .unwrap();
    // The kernel now refuses a second child: the limit is in effect.
    let e = CgroupBuilder::new("two")
        .hierarchy(h.clone())
        .parent(cg.path())
        .create()
        .unwrap_err();
    assert!(matches!(e, Error::Create { .. }), "{e}");
    assert!(e.to_string().contains("two"), "{e}");
}

#[test]
fn pid_by_pid_kill_fallback_empties_the_group() {
    berth_testkit::privileged!();
    let _serial = serial();
    let h = hierarchy();
    let (_g, cg) = scratch(&h);
    let sub = CgroupBuilder::new("sub")
        .hierarchy(h.clone())
        .parent(cg.path())
        .create()
        .unwrap();
    let mut a = sleeper();
    let mut b = sleeper();
    cg.add_process(a.id()).unwrap();
    sub.add_process(b.id()).unwrap();
    cg.kill_each(Duration::from_secs(20)).unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(a.wait().unwrap().signal(), Some(libc::SIGKILL));
    assert_eq!(b.wait().unwrap().signal(), Some(libc::SIGKILL));
    wait_for("empty", Duration::from_secs(20), || {
        !cg.events().unwrap().populated
    });
    // The fallback thaws what it froze.
    assert!(!cg.events().unwrap().frozen);
    assert_eq!(cg.read_file("cgroup.freeze").unwrap().trim(), "0");
}
