//! The plan's primitive steps, each observed from inside the child.
mod common;

use std::io::Read;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use berth_namespaces::{detached_bind, Error, Namespaces, Spawner, Stdio, Step};
use common::*;

#[test]
fn container_filesystem_steps() {
    berth_testkit::privileged!();
    let copy = berth_testkit::busybox_rootfs_copy();
    let root = copy.path();
    std::fs::create_dir(root.join("mnt")).unwrap();
    let shared = tempfile::tempdir().unwrap();
    std::fs::write(shared.path().join("marker"), "from-the-host\n").unwrap();
    let tree = detached_bind(shared.path(), false).unwrap();
    // SAFETY: umask is async-signal-safe and cannot fail.
    let umask_hook = unsafe {
        Step::hook("umask", || {
            libc::umask(0o027);
            Ok(())
        })
    };
    let script = "ls -l /dev/null | cut -c1; readlink /dev/fd; cat /mnt/marker; \
        wc -c < /etc/hostname; ls -A /home | wc -l; \
        touch /etc/x 2>/dev/null && echo rw || echo ro; touch /tmp/y && echo tmp-rw; \
        ulimit -n; grep NoNewPrivs /proc/self/status | tr -d '\\t'; id -u; id -g; id -G; umask; pwd; cat /tmp/f";
    let mut s = Spawner::new(["/bin/sh", "-c", script]);
    s.namespaces(Namespaces::MOUNT | Namespaces::PID)
        .env_clear()
        .env("PATH", "/bin")
        .current_dir("/tmp")
        .steps([
            Step::make_private("/", true),
            Step::bind(root, root, true, false),
            Step::mount(
                Some("proc"),
                root.join("proc"),
                Some("proc"),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                None,
            ),
            Step::mount(
                Some("tmpfs"),
                root.join("dev"),
                Some("tmpfs"),
                libc::MS_NOSUID,
                Some("mode=755"),
            ),
            Step::mount(
                Some("tmpfs"),
                root.join("tmp"),
                Some("tmpfs"),
                0,
                Some("mode=1777"),
            ),
            Step::mknod(
                root.join("dev/null"),
                libc::S_IFCHR | 0o666,
                libc::makedev(1, 3),
            ),
            Step::symlink("/proc/self/fd", root.join("dev/fd")),
            Step::mkdir(root.join("dev/pts"), 0o755),
            Step::mkdir(root.join("dev/pts"), 0o755), // existing dir: fine
            Step::move_mount(tree, root.join("mnt")),
            Step::write_file(root.join("tmp/f"), "written-by-plan\n"),
            Step::mask(root.join("etc/hostname")),
            Step::mask(root.join("home")),
            Step::mask(root.join("does-not-exist")),
            Step::read_only(root.join("etc")),
            Step::pivot_root(root),
            Step::setrlimit(libc::RLIMIT_NOFILE as i32, 123, 123),
            Step::prctl(libc::PR_SET_NO_NEW_PRIVS, [1, 0, 0, 0]),
            Step::set_groups(&[]),
            Step::set_gid(1000),
            Step::set_uid(1000),
            umask_hook,
        ]);
    let out = s.output().unwrap();
    let text = ok_stdout(&out);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    assert_eq!(
        lines,
        [
            "c",
            "/proc/self/fd",
            "from-the-host",
            "0",
            "0",
            "ro",
            "tmp-rw",
            "123",
            "NoNewPrivs:1",
            "1000",
            "1000",
            "1000",
            "0027",
            "/tmp",
            "written-by-plan",
        ],
        "{text}"
    );
    // Nothing of it is visible on the host.
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mi.contains(root.to_str().unwrap()));
}

/// `Step::in_root`: on a rootfs full of links pointing out of it, every
/// kind resolves inside the root; the host files the links name stay as
/// they were, and refusals say ELOOP/EINVAL with the step named.
#[test]
fn in_root_steps_never_leave_the_root() {
    berth_testkit::privileged!();
    let copy = berth_testkit::busybox_rootfs_copy();
    let root = copy.path();
    let host = tempfile::tempdir().unwrap();
    let victim = host.path().join("victim");
    std::fs::write(&victim, "host\n").unwrap();
    let h = host.path().display().to_string();
    let link = |target: &str, at: &str| std::os::unix::fs::symlink(target, root.join(at)).unwrap();
    link(&format!("{h}/victim"), "etc/abs"); // dangling inside the root: replaced
    link(&format!("{}{h}/victim", "../".repeat(20)), "etc/rel");
    link("/etc/real", "etc/inroot"); // inside the root: followed
    std::fs::write(root.join("etc/real"), "image\n").unwrap();
    link(&h, "hostdir"); // a directory link out
    link(&h, "mnt2");
    std::fs::create_dir(root.join("mnt")).unwrap();
    let fifo =
        std::ffi::CString::new(root.join("etc/fifo").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let script = "cat /etc/abs /etc/rel /etc/real; ls -A /hostdir-made 2>&1; cat /mnt/marker; \
                  ls -l /dev/n | cut -c1; readlink /dev/l";
    let marker = tempfile::tempdir().unwrap();
    std::fs::write(marker.path().join("marker"), "bound\n").unwrap();
    let r = |s: Step| s.in_root(root);
    let mut s = Spawner::new(["/bin/sh", "-c", script]);
    s.namespaces(Namespaces::MOUNT | Namespaces::PID)
        .env_clear()
        .env("PATH", "/bin")
        .steps([
            Step::make_private("/", true),
            Step::bind(root, root, true, false),
            r(Step::write_file("/etc/abs", "abs\n")).follow_symlink(),
            r(Step::write_file("etc/rel", "rel\n")).follow_symlink(),
            r(Step::write_file("/etc/inroot", "inroot\n")).follow_symlink(),
            r(Step::mkdir("/hostdir-made", 0o755)),
            r(Step::mount(Some("tmpfs"), "/dev", Some("tmpfs"), 0, None)),
            r(Step::mknod(
                "/dev/n",
                libc::S_IFCHR | 0o666,
                libc::makedev(1, 3),
            )),
            r(Step::symlink("/proc/self/fd", "/dev/l")),
            r(Step::bind(marker.path(), "/mnt", false, true)),
            r(Step::mask("/hostdir/victim"))
                .follow_symlink()
                .skip_missing(),
            Step::pivot_root(root),
        ]);
    let out = s.output().unwrap();
    let text = ok_stdout(&out);
    assert_eq!(
        text, "abs\nrel\ninroot\nbound\nc\n/proc/self/fd\n",
        "{text}"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "host\n");
    assert_eq!(std::fs::read_dir(host.path()).unwrap().count(), 1);
    // The links the image had were replaced in the root, not followed out.
    assert!(root.join("etc/abs").is_file() && !root.join("etc/abs").is_symlink());

    // Refusals: a mount onto a link, a write into a FIFO, a mkdir over a link.
    let cases: [(Step, &str); 6] = [
        (
            Step::mkdir("/x", 0o755).follow_symlink(),
            "needs in_root() first",
        ),
        (
            Step::chdir("/").in_root(root),
            "cannot be resolved inside a root",
        ),
        (
            r(Step::mount(Some("tmpfs"), "/mnt2", Some("tmpfs"), 0, None)),
            "ELOOP",
        ),
        (
            r(Step::write_file("/etc/fifo", "x")).follow_symlink(),
            "EINVAL",
        ),
        (r(Step::mkdir("/hostdir", 0o755)), "ELOOP"),
        (r(Step::write_file("/etc/abs/../x", "x")), "contains \"..\""),
    ];
    for (step, want) in cases {
        let e = Spawner::new(["/bin/true"])
            .namespaces(Namespaces::MOUNT)
            .steps([Step::make_private("/", true), step])
            .spawn()
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{e}");
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "host\n");
    assert_eq!(std::fs::read_dir(host.path()).unwrap().count(), 1);
}

#[test]
fn hook_step_error_names_the_hook() {
    berth_testkit::privileged!();
    // SAFETY: returns a constant.
    let hook = unsafe { Step::hook("apply-seccomp", || Err(libc::EACCES)) };
    let err = Spawner::new(["/bin/true"]).step(hook).spawn().unwrap_err();
    assert_eq!(
        err.to_string(),
        "hook(\"apply-seccomp\"): EACCES (Permission denied (os error 13))"
    );
    assert!(matches!(err, Error::Child { index: Some(0), .. }));
}

#[test]
fn after_clone_hook_sees_the_child_before_it_runs() {
    berth_testkit::privileged!();
    let seen = Arc::new(Mutex::new(String::new()));
    let seen2 = seen.clone();
    let out = Spawner::new(["/bin/busybox", "readlink", "/proc/self/ns/net"])
        .namespaces(Namespaces::NET)
        .after_clone(move |child| {
            let l = std::fs::read_link(format!("/proc/{}/ns/net", child.pid()))?;
            // The child is still waiting: it has not exec'd busybox yet.
            let exe = std::fs::read_link(format!("/proc/{}/exe", child.pid()))?;
            assert_ne!(exe, std::path::Path::new("/bin/busybox"));
            *seen2.lock().unwrap() = l.to_string_lossy().into_owned();
            Ok(())
        })
        .output()
        .unwrap();
    let inside = ok_stdout(&out);
    assert_eq!(inside.trim(), seen.lock().unwrap().as_str());
    assert_ne!(inside.trim(), own_ns("net"));
}

#[test]
fn fds_env_and_stdio() {
    berth_testkit::privileged!();
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), "via-fd-50\n").unwrap();
    let file = std::fs::File::open(f.path()).unwrap();
    let keep = std::fs::File::open(f.path()).unwrap();
    let keep_no = keep.as_raw_fd();
    // A leaked fd without CLOEXEC must not reach the child.
    // SAFETY: dup of an fd we own; closed below.
    let leaky = unsafe { libc::dup(keep_no) };
    let script = format!("cat <&50; cat <&{keep_no}; echo $GREETING; exec ls /proc/self/fd");
    let out = Spawner::new(["/bin/busybox", "sh", "-c", &script])
        .env_clear()
        .env("GREETING", "hello")
        .map_fd(file.into(), 50)
        .keep_fd(keep_no)
        .output()
        .unwrap();
    // SAFETY: closing our own dup.
    unsafe { libc::close(leaky) };
    let s = ok_stdout(&out);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines[0], "via-fd-50");
    assert_eq!(lines[1], "via-fd-50");
    assert_eq!(lines[2], "hello");
    let mut expect: Vec<i32> = vec![0, 1, 2, 50, keep_no];
    expect.sort();
    expect.dedup();
    // `exec ls` lists its own fds: what the spawned shell got, plus ls's
    // directory handle.
    let mut got: Vec<i32> = lines[3..].iter().map(|x| x.parse().unwrap()).collect();
    got.sort();
    // ls itself holds one more fd (its directory handle): the lowest free one.
    let lowest_free = (0..).find(|n| !expect.contains(n)).unwrap();
    let mut with_ls = expect.clone();
    with_ls.push(lowest_free);
    with_ls.sort();
    assert!(
        got == expect || got == with_ls,
        "{got:?} vs {expect:?} (leaked fd {leaky}?)"
    );

    // Piped stdin/stdout.
    let mut child = Spawner::new(["/bin/busybox", "tr", "a-z", "A-Z"])
        .stdin(Stdio::Piped)
        .stdout(Stdio::Piped)
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"shout\n").unwrap();
    let mut s = String::new();
    child.stdout.take().unwrap().read_to_string(&mut s).unwrap();
    assert_eq!(s, "SHOUT\n");
    assert!(child.wait().unwrap().success());
}

#[test]
fn clone_into_cgroup_with_cgroup_namespace() {
    berth_testkit::privileged!();
    let base = berth_testkit::cgroup2_mount().expect("a cgroup2 mount");
    let cg = berth_testkit::CgroupDir::adopt(base.join(berth_testkit::unique_name("bns")));
    std::fs::create_dir(cg.path()).unwrap();
    let mut child = Spawner::new(["/bin/busybox", "cat", "/proc/self/cgroup"])
        .namespaces(Namespaces::CGROUP)
        .cgroup_path(cg.path())
        .stdout(Stdio::Piped)
        .spawn_stopped()
        .unwrap();
    let procs = std::fs::read_to_string(cg.path().join("cgroup.procs")).unwrap();
    assert_eq!(
        procs.trim(),
        child.pid().to_string(),
        "started inside the cgroup"
    );
    child.start().unwrap();
    let mut s = String::new();
    child.stdout.take().unwrap().read_to_string(&mut s).unwrap();
    assert!(child.wait().unwrap().success());
    let v2 = s.lines().find(|l| l.starts_with("0::")).unwrap();
    assert_eq!(
        v2, "0::/",
        "the cgroup namespace is rooted at our cgroup: {s}"
    );
    // A missing cgroup directory is an error before anything is cloned.
    let err = Spawner::new(["/bin/true"])
        .cgroup_path(base.join("berth-no-such-cgroup"))
        .spawn()
        .unwrap_err();
    assert_eq!(err.errno(), Some(libc::ENOENT), "{err}");
}

/// A final step runs after the close of inherited fds and `chdir` (it sees
/// the working directory already set), a `step_fd` survives until it and
/// is closed by `execve`, and an fd nobody kept is gone before it.
#[test]
fn final_steps_run_last_and_step_fds_reach_them_only() {
    berth_testkit::privileged!();
    let kept = std::fs::File::open("/dev/null").unwrap(); // O_CLOEXEC (std)
    let stray = std::fs::File::open("/dev/null").unwrap();
    let (kept_fd, stray_fd) = (kept.as_raw_fd(), stray.as_raw_fd());
    // SAFETY: fcntl and getcwd on stack buffers only; no allocation.
    let check = unsafe {
        Step::hook("check fds and cwd", move || {
            if libc::fcntl(kept_fd, libc::F_GETFD) < 0 {
                return Err(libc::ENOTRECOVERABLE); // the step fd was closed
            }
            if libc::fcntl(stray_fd, libc::F_GETFD) >= 0 {
                return Err(libc::EEXIST); // an unkept fd survived
            }
            let mut buf = [0u8; 8];
            if libc::getcwd(buf.as_mut_ptr().cast(), buf.len()).is_null() || &buf[..5] != b"/tmp\0"
            {
                return Err(libc::ENOTDIR); // ran before chdir
            }
            Ok(())
        })
    };
    let script = format!("test -e /proc/self/fd/{kept_fd} && echo leaked || echo closed");
    let mut s = Spawner::new(["/bin/sh", "-c", &script]);
    s.current_dir("/tmp")
        .stdout(Stdio::Piped)
        .step_fd(kept_fd)
        .final_step(check);
    let out = s.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "closed\n");
    // A step fd may not also be the target of a mapped fd.
    let mut s = Spawner::new(["/bin/true"]);
    s.map_fd(std::fs::File::open("/dev/null").unwrap().into(), 9)
        .step_fd(9);
    assert!(matches!(s.output(), Err(Error::InvalidConfig { .. })));
    drop((kept, stray));
}

/// A Rust parent ignores SIGPIPE; the child gets it back at its default,
/// as with std::process::Command (bit 13 of SigIgn is clear).
#[test]
fn sigpipe_is_back_to_default_in_the_child() {
    berth_testkit::privileged!();
    let mut s = Spawner::new(["/bin/sh", "-c", "grep SigIgn /proc/self/status"]);
    s.stdout(Stdio::Piped);
    let out = s.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let mask = u64::from_str_radix(text.trim().trim_start_matches("SigIgn:").trim(), 16).unwrap();
    assert_eq!(
        mask & (1 << (libc::SIGPIPE - 1)),
        0,
        "SIGPIPE ignored: {text}"
    );
}
