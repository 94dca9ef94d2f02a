//! Privileged tier: containers on the busybox rootfs, every option observed from inside.

mod common;

use std::io::Read;
use std::time::Duration;

use berth::{Container, Limit, Mount, Network, Resources, Rootfs, Seccomp, Stdio};
use common::*;

fn ok(b: berth::ContainerBuilder, script: &str) -> String {
    let (st, out, err) = sh(b, script);
    assert!(st.success(), "status {st:?}\nstdout {out}\nstderr {err}");
    out
}

#[test]
fn smoke_isolation() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("smoke");
    let out = ok(
        busybox(&id, &root).hostname("inside"),
        "hostname; echo pid=$$; ls /sys/class/net | tr '\\n' ' '; echo; grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status; grep ^0:: /proc/self/cgroup",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "inside", "{out}");
    assert_eq!(lines[1], "pid=1", "{out}");
    assert_eq!(lines[2].trim(), "lo", "{out}");
    assert!(out.contains("CapEff:\t00000000a80425fb"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("0::/\n"), "own cgroup namespace: {out}");
    assert!(footprint(root.path(), &id).state.is_empty());
}

#[test]
fn standard_filesystem() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("stdfs");
    let out = ok(
        busybox(&id, &root),
        "ls -l /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty | cut -c1-10 | tr '\\n' ' '; echo;\
         ls -ld /dev/ptmx /dev/fd | cut -c1 | tr -d '\\n'; echo;\
         grep -E ' /(dev/pts|dev/shm|dev/mqueue|sys|proc) ' /proc/self/mountinfo | awk '{for(i=7;$i!=\"-\";i++);print $5,$6,$(i+1)}';\
         cat /proc/kcore | wc -c; echo x > /proc/sys/kernel/hostname 2>/dev/null || echo sysro;\
         touch /sys/x 2>/dev/null || echo sysfsro; cat /etc/hostname; grep -c localhost /etc/hosts",
    );
    assert!(
        out.starts_with("crw-rw-rw- crw-rw-rw- crw-rw-rw- crw-rw-rw- crw-rw-rw- crw-rw-rw-"),
        "{out}"
    );
    assert!(out.contains("\nll\n"), "ptmx and fd are symlinks: {out}");
    assert!(
        out.contains("/dev/pts rw,nosuid,noexec,relatime devpts"),
        "{out}"
    );
    assert!(
        out.contains("/dev/shm rw,nosuid,nodev,noexec,relatime tmpfs"),
        "{out}"
    );
    assert!(
        out.contains("/dev/mqueue rw,nosuid,nodev,noexec,relatime mqueue"),
        "{out}"
    );
    assert!(
        out.contains("/sys ro,nosuid,nodev,noexec,relatime sysfs"),
        "{out}"
    );
    assert!(
        out.contains("/proc rw,nosuid,nodev,noexec,relatime proc"),
        "{out}"
    );
    assert!(
        out.contains("\n0\nsysro\nsysfsro\n"),
        "kcore masked, /proc/sys and /sys read-only: {out}"
    );
    assert!(out.ends_with(&format!("{id}\n2\n")), "{out}");
    // The busybox dir's own /etc/hostname is untouched (ours is bound over it).
    let on_host = std::fs::read_to_string(berth_testkit::busybox_rootfs().join("etc/hostname"))
        .unwrap_or_default();
    assert!(!on_host.contains(&id));
}

#[test]
fn host_rootfs_overlay_is_private() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("host");
    let marker = format!("/tmp/berth-host-{id}");
    let out = ok(
        Container::builder(&id)
            .state_root(root.path())
            .stdin(Stdio::Null)
            .hostname("h1"),
        &format!("echo written > {marker}; cat {marker}; cat /etc/hostname; test -e /etc/os-release && echo hostfiles"),
    );
    assert_eq!(out, "written\nh1\nhostfiles\n");
    assert!(
        !std::path::Path::new(&marker).exists(),
        "write leaked to the host"
    );
    let host_hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    assert_ne!(host_hostname, "h1\n");
}

#[test]
fn read_only_root_bind_and_tmpfs_mounts() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("mnts");
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("f"), "hello").unwrap();
    let ro = tempfile::tempdir().unwrap();
    let out = ok(
        busybox(&id, &root)
            .read_only_root(true)
            .mount(Mount::bind(src.path(), "/data"))
            .mount(Mount::bind(ro.path(), "/ro").read_only())
            .mount(Mount::tmpfs("/scratch").size(1 << 20).mode(0o700)),
        "touch /newfile 2>/dev/null || echo rootro; cat /data/f; echo; echo new > /data/g;\
         touch /ro/x 2>/dev/null || echo bindro; grep ' /scratch ' /proc/self/mountinfo | grep -o 'size=[0-9]*k,mode=700';\
         stat -c %a /scratch; dd if=/dev/zero of=/scratch/big bs=1k count=2048 2>/dev/null || echo full",
    );
    assert_eq!(
        out,
        "rootro\nhello\nbindro\nsize=1024k,mode=700\n700\nfull\n"
    );
    assert_eq!(
        std::fs::read_to_string(src.path().join("g")).unwrap(),
        "new\n"
    );
}

#[test]
fn env_cwd_user_and_rlimits() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("envu");
    let out = ok(
        busybox(&id, &root)
            .env("FOO", "bar")
            .current_dir("/tmp")
            .user(1234, 4321)
            .groups([77])
            .rlimit(berth::Resource::Nofile, 99, 99),
        "echo $FOO $HOSTNAME; pwd; id -u; id -g; id -G; ulimit -n; grep CapEff /proc/self/status",
    );
    let expect = format!("bar {id}\n/tmp\n1234\n4321\n4321 77\n99\nCapEff:\t0000000000000000\n");
    assert_eq!(out, expect);
}

/// A container with a very low `RLIMIT_NOFILE` (3/3: stdin, stdout and
/// stderr, no more) still starts, with the limit and its `oom_score_adj`:
/// the child opens `/proc/self/oom_score_adj` (and an LSM label file), so
/// it must not do so under the container's limit (runc sets the rlimits
/// from the parent once its init is ready, after writing oom_score_adj).
/// The workload can open no file, so it shows its limits with shell
/// builtins (busybox ash's redirections need a spare fd too) and the
/// host reads its `/proc/<pid>` files while it waits on stdin.
#[test]
fn very_low_nofile_limit_with_oom_score_adj() {
    use std::io::{BufRead, BufReader};
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("nofile");
    let mut c = busybox(&id, &root)
        .rlimit(berth::Resource::Nofile, 3, 3)
        .oom_score_adj(321)
        .command(["/bin/sh", "-c", "ulimit -n; ulimit -Hn; read x; exit 0"])
        .stdin(Stdio::Piped)
        .stdout(Stdio::Piped)
        .spawn()
        .expect("spawn");
    let mut out = BufReader::new(c.stdout.take().unwrap());
    let mut inside = String::new();
    for _ in 0..2 {
        out.read_line(&mut inside).unwrap();
    }
    assert_eq!(inside, "3\n3\n", "soft and hard limit seen inside");
    let proc_file = |f: &str| std::fs::read_to_string(format!("/proc/{}/{f}", c.pid())).unwrap();
    assert_eq!(proc_file("oom_score_adj"), "321\n");
    let limits = proc_file("limits");
    let files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or_else(|| panic!("no open files row in {limits}"));
    assert_eq!(
        files.split_whitespace().skip(3).take(2).collect::<Vec<_>>(),
        ["3", "3"],
        "{limits}"
    );
    drop(c.stdin.take());
    assert!(c.wait().expect("wait").success());
    c.destroy().expect("destroy");
    assert!(footprint(root.path(), &id).state.is_empty());
}

#[test]
fn capabilities_seccomp_and_no_new_privs_are_relaxable() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("caps");
    let out = ok(
        busybox(&id, &root)
            .cap_drop("ALL")
            .cap_add("NET_ADMIN")
            .seccomp(Seccomp::Unconfined)
            .no_new_privs(false),
        "grep -E '^(CapEff|CapBnd|Seccomp|NoNewPrivs):' /proc/self/status",
    );
    assert_eq!(
        out,
        "CapEff:\t0000000000001000\nCapBnd:\t0000000000001000\nNoNewPrivs:\t0\nSeccomp:\t0\n"
    );
    // The default seccomp profile refuses what Docker's refuses (e.g. a new
    // user namespace from `unshare -U`).
    let id2 = berth_testkit::unique_name("secc");
    let out = ok(
        busybox(&id2, &root),
        "unshare -U true 2>/dev/null && echo allowed || echo denied",
    );
    assert_eq!(out, "denied\n");
}

#[test]
fn device_filter_allows_only_standard_nodes() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("devf");
    let out = ok(
        busybox(&id, &root),
        "mknod /dev/tun2 c 10 200 && echo mknod-ok; (exec 3<>/dev/tun2) 2>/dev/null || echo tun-denied;\
         mknod /dev/null2 c 1 3 && head -c1 /dev/null2 && echo null-ok",
    );
    assert_eq!(out, "mknod-ok\ntun-denied\nnull-ok\n");
    // Without the filter, opening /dev/mem-like nodes is up to the caps alone.
    let id2 = berth_testkit::unique_name("devn");
    let out = ok(
        busybox(&id2, &root).device_filter(None),
        "mknod /dev/tun2 c 10 200 && (exec 3<>/dev/tun2) && echo tun-open",
    );
    assert_eq!(out, "tun-open\n");
}

#[test]
fn networks() {
    berth_testkit::privileged!();
    let root = state_root();
    let ifaces = "cat /sys/class/net/lo/operstate; ls /sys/class/net | tr '\\n' ' '";
    let id = berth_testkit::unique_name("netn");
    let out = ok(busybox(&id, &root).network(Network::none()), ifaces);
    assert_eq!(out, "down\nlo ");
    let id = berth_testkit::unique_name("netl");
    let out = ok(
        busybox(&id, &root),
        "ping -c1 -W2 127.0.0.1 >/dev/null && echo pong",
    );
    assert_eq!(out, "pong\n");
    let id = berth_testkit::unique_name("neth");
    let out = ok(
        busybox(&id, &root).network(Network::host()),
        "readlink /proc/self/ns/net",
    );
    // The host's own network namespace (comparing link counts would race
    // with parallel tests creating links).
    let host_ns = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_eq!(out.trim(), host_ns.to_string_lossy());
}

#[test]
fn init_reaps_and_workload_is_its_child() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("init");
    let out = ok(
        busybox(&id, &root).init(true),
        "echo $$; cat /proc/1/cmdline | wc -c",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "2", "the workload is pid 2 under the init: {out}");
}

#[test]
fn exit_status_and_signals() {
    berth_testkit::privileged!();
    use std::os::unix::process::ExitStatusExt;
    let root = state_root();
    let id = berth_testkit::unique_name("exit");
    let (st, _, _) = sh(busybox(&id, &root), "exit 7");
    assert_eq!(st.code(), Some(7));
    let id = berth_testkit::unique_name("sig");
    let mut c = busybox(&id, &root)
        .command(["/bin/sleep", "30"])
        .spawn()
        .unwrap();
    c.kill().unwrap();
    assert_eq!(c.wait().unwrap().signal(), Some(libc::SIGKILL));
    c.destroy().unwrap();
    // A pid-1 workload ignores SIGTERM (no handler); the init forwards it.
    let id = berth_testkit::unique_name("sigi");
    let mut c = busybox(&id, &root)
        .init(true)
        .command(["/bin/sleep", "30"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    c.signal(berth::Signal::SIGTERM).unwrap();
    let st = c
        .wait_timeout(Duration::from_secs(10))
        .unwrap()
        .expect("init exits");
    assert!(
        st.signal() == Some(libc::SIGTERM) || st.code() == Some(128 + libc::SIGTERM),
        "{st:?}"
    );
    c.destroy().unwrap();
}

#[test]
fn tty_gives_a_controlling_terminal() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("tty");
    let mut c = busybox(&id, &root)
        .tty(true)
        .command([
            "/bin/sh",
            "-c",
            "test -t 0 && test -t 1 && echo isatty; cut -d' ' -f7 /proc/self/stat; tty; echo $(ls /dev/pts)",
        ])
        .spawn()
        .unwrap();
    let master = c.pty().unwrap().try_clone_to_owned().unwrap();
    c.wait().unwrap();
    let mut f = std::fs::File::from(master);
    // Everything the workload wrote (EIO once the slave side is gone).
    let mut all = Vec::new();
    let mut buf = vec![0u8; 4096];
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    let s = String::from_utf8_lossy(&all).to_string();
    let tty_nr: u64 = s.lines().nth(1).unwrap().trim().parse().unwrap();
    assert!(
        s.starts_with("isatty") && tty_nr != 0,
        "controlling tty: {s:?}"
    );
    // The pty comes from the container's own devpts: `tty` names it and
    // it is the only one there.
    let lines: Vec<&str> = s.lines().map(|l| l.trim()).collect();
    assert_eq!(lines.get(2), Some(&"/dev/pts/0"), "{s:?}");
    assert_eq!(lines.get(3), Some(&"0 ptmx"), "{s:?}");
    c.destroy().unwrap();
}

#[test]
fn two_phase_create_then_start() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("2ph");
    let flag = tempfile::tempdir().unwrap();
    let mut c = busybox(&id, &root)
        .mount(Mount::bind(flag.path(), "/flag"))
        .command(["/bin/sh", "-c", "touch /flag/ran"])
        .create()
        .unwrap();
    assert!(c.state().created);
    let on_disk = berth::State::load(Some(root.path()), &id).unwrap();
    assert!(on_disk.created && on_disk.is_running());
    std::thread::sleep(Duration::from_millis(200));
    assert!(!flag.path().join("ran").exists(), "ran before start");
    c.start().unwrap();
    assert!(c.wait().unwrap().success());
    assert!(flag.path().join("ran").exists());
    c.destroy().unwrap();
    assert!(footprint(root.path(), &id).state.is_empty());
}

#[test]
fn exec_joins_pid_namespace_and_cgroup() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("exec");
    let c = busybox(&id, &root)
        .hostname("exec-host")
        .env("E", "1")
        .command(["/bin/sleep", "30"])
        .spawn()
        .unwrap();
    let out = c
        .exec(["/bin/sh", "-c", "hostname; echo $E; grep ^0:: /proc/self/cgroup; ps -o comm | grep -c sleep; grep Seccomp: /proc/self/status"])
        .stdin(Stdio::Null)
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{s} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s, "exec-host\n1\n0::/\n1\nSeccomp:\t2\n");
    // Both processes are in the container's cgroup on the host.
    let procs = c.cgroup().unwrap().procs().unwrap();
    assert!(procs.contains(&(c.pid() as u32)), "{procs:?}");
    c.destroy().unwrap();
}

#[test]
fn pause_and_resume() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("pause");
    let out = tempfile::tempdir().unwrap();
    let c = busybox(&id, &root)
        .mount(Mount::bind(out.path(), "/out"))
        .command([
            "/bin/sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i > /out/n; sleep 0.02; done",
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    c.pause().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let a = std::fs::read_to_string(out.path().join("n")).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let b = std::fs::read_to_string(out.path().join("n")).unwrap();
    assert_eq!(a, b, "counter moved while paused");
    c.resume().unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let d = std::fs::read_to_string(out.path().join("n")).unwrap();
    assert_ne!(b, d, "counter stuck after resume");
    let stats = c.stats().unwrap();
    assert!(stats.cgroup.unwrap().cpu.is_some());
    assert!(stats.interfaces.iter().any(|i| i.name == "lo"));
    c.destroy().unwrap();
}

#[test]
fn destroy_after_kill_9_of_the_workload() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("k9");
    let mut c = busybox(&id, &root)
        .command(["/bin/sleep", "30"])
        .spawn()
        .unwrap();
    let cg = c.cgroup().unwrap().path().to_path_buf();
    assert!(cg.exists());
    // SAFETY: kill(2) of the container's init.
    assert_eq!(unsafe { libc::kill(c.pid(), libc::SIGKILL) }, 0);
    std::thread::sleep(Duration::from_millis(100));
    assert!(c.try_wait().unwrap().is_some());
    c.destroy().unwrap();
    assert!(!cg.exists());
    assert!(
        footprint(root.path(), &id)
            == Footprint {
                mounts: vec![],
                cgroups: vec![],
                links: vec![],
                state: vec![]
            }
    );
}

#[test]
fn resources_on_this_host() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("res");
    let h = berth_cgroups::Hierarchy::discover().unwrap();
    let has_pids = h
        .root_controllers()
        .unwrap()
        .contains(berth_cgroups::Controller::Pids);
    let r = Resources::new().pids_max(Limit::Value(16));
    let res = busybox(&id, &root)
        .resources(r.clone())
        .command(["/bin/true"])
        .spawn();
    if has_pids {
        let mut c = res.unwrap();
        assert_eq!(
            c.cgroup().unwrap().read_file("pids.max").unwrap().trim(),
            "16"
        );
        c.wait().unwrap();
        c.destroy().unwrap();
    } else {
        let e = res.unwrap_err().to_string();
        assert!(e.contains("pids"), "{e}");
        assert_eq!(
            footprint(root.path(), &id),
            Footprint {
                mounts: vec![],
                cgroups: vec![],
                links: vec![],
                state: vec![]
            }
        );
        // ignore_unavailable: runs, in its own cgroup, without the limit.
        let out = ok(
            busybox(&id, &root).resources(r).ignore_unavailable(true),
            "grep ^0:: /proc/self/cgroup",
        );
        assert_eq!(out, "0::/\n");
    }
}

#[test]
fn duplicate_id_is_a_clear_error() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("dup");
    let c = busybox(&id, &root)
        .command(["/bin/sleep", "30"])
        .spawn()
        .unwrap();
    let e = busybox(&id, &root)
        .command(["/bin/true"])
        .spawn()
        .unwrap_err();
    assert!(matches!(e, berth::Error::AlreadyExists { .. }), "{e}");
    assert!(e.to_string().contains("already exists"));
    // The first one is untouched.
    assert!(std::path::Path::new(&format!("/proc/{}", c.pid())).exists());
    c.destroy().unwrap();
}

#[cfg(feature = "oci")]
#[test]
fn image_rootfs_from_a_layout() {
    berth_testkit::privileged!();
    let root = state_root();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    berth_overlay::ImageBuilder::new("busybox:latest")
        .layer_dir(berth_testkit::busybox_rootfs())
        .env(["FROM_IMAGE=yes"])
        .cmd([
            "/bin/sh",
            "-c",
            "echo $FROM_IMAGE; pwd; echo > /newfile && echo writable",
        ])
        .working_dir("/bin")
        .write(&layout)
        .unwrap();
    let store = berth_overlay::LayerStore::open(dir.path().join("store")).unwrap();
    let l = berth_overlay::ImageLayout::open(&layout).unwrap();
    let rootfs = Rootfs::image(&store, &l, "latest").unwrap();
    let id = berth_testkit::unique_name("img");
    let mut c = Container::builder(&id)
        .rootfs(rootfs)
        .state_root(root.path())
        .stdout(Stdio::Piped)
        .spawn()
        .unwrap();
    let mut out = String::new();
    c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(c.wait().unwrap().success());
    c.destroy().unwrap();
    assert_eq!(out, "yes\n/bin\nwritable\n");
    // A reference that is not in the layout.
    let e = Rootfs::image(&store, &l, "nope").unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
}

#[test]
fn stdio_fd_and_exit_event() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("fdev");
    let out = tempfile::NamedTempFile::new().unwrap();
    let f = out.reopen().unwrap();
    let mut c = busybox(&id, &root)
        .stdout(Stdio::Fd(f.into()))
        .command(["/bin/sh", "-c", "echo to-fd; sleep 0.2"])
        .spawn()
        .unwrap();
    let mut ev = c.events().unwrap();
    let got = ev.next(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(got, vec![berth::ContainerEvent::Exited]);
    assert!(c.wait().unwrap().success());
    c.destroy().unwrap();
    assert_eq!(std::fs::read_to_string(out.path()).unwrap(), "to-fd\n");
}

/// The network namespace pool (on by default from a process's second
/// container): forced on and off, a loopback-only container has `lo` up and
/// only `lo`, a `Network::none()` one has `lo` down, each gets a namespace
/// of its own, never the host's.
#[test]
fn network_namespace_pool() {
    berth_testkit::privileged!();
    let root = state_root();
    let host_ns = std::fs::read_link("/proc/self/ns/net").unwrap();
    let host_ns = host_ns.to_string_lossy();
    let probe = "readlink /proc/self/ns/net; cat /sys/class/net/lo/operstate; ls /sys/class/net | tr '\\n' ' '";
    let mut seen = Vec::new();
    for (pool, net, lo) in [
        (true, Network::loopback(), "unknown"),
        (true, Network::none(), "down"),
        (false, Network::loopback(), "unknown"),
        (true, Network::loopback(), "unknown"),
    ] {
        let id = berth_testkit::unique_name("pool");
        let out = ok(busybox(&id, &root).netns_pool(pool).network(net), probe);
        let lines: Vec<&str> = out.lines().collect();
        assert_ne!(lines[0], host_ns, "the host's netns: {out}");
        assert!(!seen.contains(&lines[0].to_string()), "netns reused: {out}");
        seen.push(lines[0].to_string());
        // lo up shows as "unknown" (it has no carrier state).
        assert_eq!(lines[1], lo, "pool {pool}: {out}");
        assert_eq!(lines[2].trim(), "lo", "{out}");
    }
    let id = berth_testkit::unique_name("poolp");
    let out = ok(
        busybox(&id, &root).netns_pool(true),
        "ping -c1 -W2 127.0.0.1 >/dev/null && echo pong",
    );
    assert_eq!(out, "pong\n");
}

/// An image of 128 layers: the classic overlay option string (about 13 KB
/// here) exceeds the page mount(2) takes, so the layers go in one
/// `fsconfig("lowerdir+")` each; every layer is visible, the top one wins,
/// and a write lands in the private upper layer only.
#[test]
fn many_layers_beyond_one_page() {
    berth_testkit::privileged!();
    let root = state_root();
    let layers_dir = tempfile::tempdir().unwrap();
    // Top to bottom: 127 small layers, then the busybox rootfs.
    let mut layers = Vec::new();
    for i in (1..128).rev() {
        let l = layers_dir.path().join(format!("{i:03}-{}", "f".repeat(64)));
        std::fs::create_dir_all(l.join("layers")).unwrap();
        std::fs::write(l.join("layers").join(format!("{i:03}")), "").unwrap();
        std::fs::write(l.join("which"), format!("{i}\n")).unwrap();
        layers.push(l);
    }
    layers.push(berth_testkit::busybox_rootfs().to_path_buf());
    let len: usize = layers.iter().map(|l| l.as_os_str().len() + 1).sum();
    assert!(len > 4096, "the test needs a string beyond one page: {len}");
    let id = berth_testkit::unique_name("layers");
    let out = ok(
        busybox(&id, &root).rootfs(Rootfs::layers(layers.clone())),
        "ls /layers | wc -l; cat /which; echo new > /which; cat /which; grep ' / / ' /proc/self/mountinfo | sed 's/.* - //' | cut -d' ' -f1",
    );
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(lines, ["127", "127", "new", "overlay"], "{out}");
    // The layer itself was not written.
    assert_eq!(
        std::fs::read_to_string(layers[0].join("which")).unwrap(),
        "127\n"
    );
}

/// `Events::next` sleeps on the inotify fd and the pidfd, not on a timer:
/// a second of waiting on a quiet container wakes its thread about once
/// (it used to wake every 50 ms, 20 times).
#[test]
fn events_wait_without_polling() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("evq");
    let mut c = busybox(&id, &root)
        .command(["/bin/sleep", "1000"])
        .spawn()
        .unwrap();
    let mut ev = c.events().unwrap();
    let before = own_wakeups();
    let got = ev.next(Some(Duration::from_secs(1))).unwrap();
    let wakeups = own_wakeups() - before;
    assert!(got.is_empty(), "{got:?}");
    assert!(
        wakeups <= 3,
        "{wakeups} wake-ups in 1 s of waiting for events: polling"
    );
    c.kill().unwrap();
    let got = ev.next(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(got, vec![berth::ContainerEvent::Exited]);
    c.destroy().unwrap();
}
