//! containerd drives `berth-oci` through `ctr run --runc-binary` (the
//! io.containerd.runc.v2 shim calls it exactly as it calls runc), against
//! a private containerd (config, root, state and sockets in a temp dir)
//! started and stopped by the test; the image is an OCI archive built from
//! the busybox fixture with berth-overlay's `ImageBuilder` (privileged
//! tier; skipped with a message when containerd is not installed).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;

use common::*;

const IMAGE: &str = "docker.io/library/berth-busybox:latest";

struct Daemon {
    dir: tempfile::TempDir,
    child: Child,
    ns: String,
}

impl Daemon {
    fn start() -> Option<Daemon> {
        if Command::new("containerd")
            .arg("--version")
            .output()
            .is_err()
        {
            println!("skipped: containerd is not installed (apt-get install containerd)");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("bctr")
            .tempdir_in("/tmp")
            .unwrap();
        let d = dir.path().display().to_string();
        let cfg = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{d}/c.sock\"\n[ttrpc]\n  address = \"{d}/t.sock\"\n\
             [debug]\n  address = \"{d}/d.sock\"\n"
        );
        std::fs::write(dir.path().join("config.toml"), cfg).unwrap();
        let log = std::fs::File::create(dir.path().join("containerd.log")).unwrap();
        // containerd's default spec asks for cpu shares; on a hybrid host
        // (cgroup2 without cpu) berth-oci refuses limits it cannot
        // enforce unless the operator opts in, as here: the shim passes
        // the daemon's environment on to the runtime.
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .env("BERTH_OCI_ALLOW_UNENFORCED_LIMITS", "1")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let d = Daemon {
            dir,
            child,
            ns: berth_testkit::unique_name("bo"),
        };
        let t = Instant::now();
        while d.ctr(&["version"]).0 != 0 {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "containerd did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(d)
    }

    fn sock(&self) -> PathBuf {
        self.dir.path().join("c.sock")
    }

    fn ctr_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("-a")
            .arg(self.sock())
            .arg("-n")
            .arg(&self.ns)
            .args(args);
        c.stdin(Stdio::null());
        c
    }

    fn ctr(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.ctr_cmd(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ctr_ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.ctr(args);
        assert_eq!(code, 0, "ctr {args:?}: {err}\n{out}\n{}", self.log());
        out
    }

    /// Import the busybox image ([`IMAGE`]) from an archive built in the
    /// daemon's directory.
    fn import_image(&self) {
        let tar = image_archive(self.dir.path(), IMAGE);
        self.ctr_ok(&["images", "import", tar.to_str().unwrap()]);
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// `ctr run --rm --runc-binary berth-oci IMAGE ID ARGS…`
    fn run(&self, extra: &[&str], args: &[&str]) -> (i32, String, String) {
        let id = berth_testkit::unique_name("c");
        let mut a = vec!["run", "--rm", "--runc-binary", BIN];
        a.extend_from_slice(extra);
        a.push(IMAGE);
        a.push(&id);
        a.extend_from_slice(args);
        self.ctr(&a)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Remove whatever is left in our namespace, then stop the daemon.
        let (_, tasks, _) = self.ctr(&["tasks", "ls", "-q"]);
        for t in tasks.lines() {
            let _ = self.ctr(&["tasks", "kill", "-s", "KILL", t]);
            let _ = self.ctr(&["tasks", "delete", "-f", t]);
        }
        let (_, cs, _) = self.ctr(&["containers", "ls", "-q"]);
        for c in cs.lines() {
            let _ = self.ctr(&["containers", "delete", c]);
        }
        // SAFETY: SIGTERM to the daemon we spawned.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Snapshots are overlay mounts under our root: unmount what is left.
        if let Ok(mi) = std::fs::read_to_string("/proc/self/mountinfo") {
            let d = self.dir.path().display().to_string();
            for l in mi.lines() {
                if let Some(m) = l.split(' ').nth(4).filter(|m| m.starts_with(&d)) {
                    let _ = Command::new("umount").arg("-l").arg(m).status();
                }
            }
        }
        let _ = std::fs::remove_dir_all(format!("/run/containerd/runc/{}", self.ns));
        if let Ok(h) = berth_cgroups::Hierarchy::discover() {
            let _ = std::fs::remove_dir(h.mount_point().join(&self.ns));
        }
    }
}

#[test]
fn ctr_runs_the_battery_with_berth_oci() {
    berth_testkit::privileged!();
    let Some(d) = Daemon::start() else { return };
    d.import_image();
    let imgs = d.ctr_ok(&["images", "ls", "-q"]);
    assert!(imgs.contains(IMAGE), "{imgs}");
    let mounts_before = mounts_under(&[d.dir.path(), Path::new("/run/containerd/runc")]);

    // Output, env from the image plus --env, exit codes.
    let (code, out, err) = d.run(
        &["--env", "X=1"],
        &["sh", "-c", "echo hi $IMG $X; hostname"],
    );
    assert_eq!(code, 0, "{err}\n{}", d.log());
    assert!(out.starts_with("hi busybox 1\n"), "{out}");
    let (code, _, _) = d.run(&[], &["sh", "-c", "exit 3"]);
    assert_eq!(code, 3);
    // cwd
    let (code, out, err) = d.run(&["--cwd", "/etc"], &["pwd"]);
    assert_eq!((code, out.as_str()), (0, "/etc\n"), "{err}");
    // --tty: ctr wants a terminal on its own stdin; script(1) gives it one.
    let id = berth_testkit::unique_name("c");
    let line = format!(
        "ctr -a {} -n {} run --rm -t --runc-binary {BIN} {IMAGE} {id} sh -c '[ -t 0 ] && [ -t 1 ] && echo stdio-tty; tty; stty size'",
        d.sock().display(),
        d.ns
    );
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let o = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{o}");
    // The pty is the container's own (its devpts), as with runc.
    assert!(o.contains("stdio-tty"), "{o}");
    assert!(o.contains("/dev/pts/0"), "{o}");

    // A detached task: exec, pause/resume, kill.
    let id = berth_testkit::unique_name("c");
    d.ctr_ok(&["run", "-d", "--runc-binary", BIN, IMAGE, &id, "sleep", "60"]);
    let tasks = d.ctr_ok(&["tasks", "ls"]);
    assert!(
        tasks
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("RUNNING")),
        "{tasks}"
    );
    let (code, out, err) = d.ctr(&[
        "tasks",
        "exec",
        "--exec-id",
        "e1",
        &id,
        "sh",
        "-c",
        "echo in-exec $IMG; hostname; exit 4",
    ]);
    assert_eq!(code, 4, "{err}");
    assert!(out.starts_with("in-exec busybox\n"), "{out}");
    d.ctr_ok(&["tasks", "pause", &id]);
    let tasks = d.ctr_ok(&["tasks", "ls"]);
    assert!(
        tasks
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("PAUSED")),
        "{tasks}"
    );
    d.ctr_ok(&["tasks", "resume", &id]);
    let tasks = d.ctr_ok(&["tasks", "ls"]);
    assert!(
        tasks
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("RUNNING")),
        "{tasks}"
    );
    d.ctr_ok(&["tasks", "kill", "-s", "KILL", &id]);
    let t = Instant::now();
    loop {
        let tasks = d.ctr_ok(&["tasks", "ls"]);
        if tasks
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("STOPPED"))
        {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "{tasks}");
        std::thread::sleep(Duration::from_millis(50));
    }
    d.ctr_ok(&["tasks", "delete", &id]);
    d.ctr_ok(&["containers", "delete", &id]);

    // --rm left nothing: no containers, tasks or runtime state.
    assert_eq!(d.ctr_ok(&["containers", "ls", "-q"]).trim(), "");
    let runc_root = PathBuf::from(format!("/run/containerd/runc/{}", d.ns));
    let left: Vec<_> = std::fs::read_dir(&runc_root)
        .map(|r| r.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.iter().all(|n| n.to_string_lossy().starts_with('.')),
        "{left:?}"
    );
    // Every container's cgroup (cgroupsPath /<namespace>/<id>) is gone.
    let h = berth_cgroups::Hierarchy::discover().unwrap();
    let cgs: Vec<_> = std::fs::read_dir(h.mount_point().join(&d.ns))
        .map(|r| {
            r.filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name())
                .collect()
        })
        .unwrap_or_default();
    assert!(cgs.is_empty(), "{cgs:?}");
    // No mount is left under the daemon's root (snapshots) or the runtime
    // state: the rootfs mounts lived in the containers' mount namespaces.
    assert_eq!(
        mounts_under(&[d.dir.path(), Path::new("/run/containerd/runc")]),
        mounts_before
    );
}

/// The shim's kill of a task whose process already exited (containerd's
/// StopPodSandbox: KILL to all of the sandbox's processes): berth-oci's
/// answer must be one the shim reads as "already finished" (issue 21
/// item 1), as runc's: `kill --all` succeeds, a plain kill is "process
/// already finished: not found", never "unknown error after kill".
#[test]
fn ctr_kill_of_an_exited_task_is_already_finished() {
    berth_testkit::privileged!();
    let Some(d) = Daemon::start() else { return };
    d.import_image();
    let id = berth_testkit::unique_name("ck");
    d.ctr_ok(&[
        "run",
        "-d",
        "--runc-binary",
        BIN,
        IMAGE,
        &id,
        "sh",
        "-c",
        "exit 0",
    ]);
    let t = Instant::now();
    while !d.ctr_ok(&["tasks", "ls"]).contains("STOPPED") {
        assert!(t.elapsed() < Duration::from_secs(10), "{}", d.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, _, err) = d.ctr(&["tasks", "kill", "--all", "-s", "KILL", &id]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = d.ctr(&["tasks", "kill", "-s", "KILL", &id]);
    assert_ne!(code, 0);
    assert!(
        err.contains("already finished") && !err.contains("unknown error"),
        "{err}"
    );
    d.ctr_ok(&["tasks", "delete", &id]);
    d.ctr_ok(&["containers", "rm", &id]);
}

/// The pid of task `id` (`ctr tasks ls`: TASK PID STATUS).
fn task_pid(d: &Daemon, id: &str) -> i32 {
    let tasks = d.ctr_ok(&["tasks", "ls"]);
    tasks
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&id)).then(|| f[1].parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no task {id} in {tasks}"))
}

/// Issue 21's items through the shim with a runc root deeper than
/// `sockaddr_un` allows (`ctr run --runc-root`, item 6; the holder's
/// socket lives under it): a container joining another's network
/// namespace by path (`--with-ns`, item 2), the default seccomp profile
/// installed (`--seccomp`, item 3: `Seccomp: 2` seen by the workload,
/// which ran), an `rslave` bind mount of a shared host mount (item 4: a
/// slave, `master:` in the container's mountinfo), `ctr tasks ps` (the
/// shim's `ps --format json`, item 7) and kill of the task (item 1); the
/// root holds nothing berth-oci made at the end (item 6).
#[test]
fn ctr_items_with_a_runc_root_deeper_than_sun_len() {
    berth_testkit::privileged!();
    let Some(d) = Daemon::start() else { return };
    d.import_image();
    let root = deep_dir(&d.dir.path().join("rr"), 120);
    let rr = format!("--runc-root={}", root.display());
    let a = berth_testkit::unique_name("cd");
    d.ctr_ok(&[
        "run",
        "-d",
        "--runc-binary",
        BIN,
        &rr,
        IMAGE,
        &a,
        "sleep",
        "60",
    ]);
    let pid = task_pid(&d, &a);
    // The shim passes `--root <runc root>/<namespace>` (and makes that
    // directory itself): berth-oci's record of `a` is there.
    let rt_root = root.join(&d.ns);
    assert!(rt_root.join(".meta").join(format!("{a}.json")).exists());
    // Item 2: the network namespace of `a`, joined by path.
    let net = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let with = format!("network:/proc/{pid}/ns/net");
    let (code, out, err) = d.run(
        &[&rr, "--with-ns", &with],
        &["readlink", "/proc/self/ns/net"],
    );
    assert_eq!(code, 0, "{err}\n{}", d.log());
    assert_eq!(out.trim(), net.to_str().unwrap());
    // Item 3: seccomp (filter mode) is in place when the workload runs.
    let (code, out, err) = d.run(
        &[&rr, "--seccomp"],
        &["grep", "Seccomp:", "/proc/self/status"],
    );
    assert_eq!(
        (code, out.split_whitespace().nth(1)),
        (0, Some("2")),
        "{out}{err}"
    );
    // Item 4: rslave bind of a shared mount.
    let src = SharedSource::new();
    let m = format!(
        "type=bind,src={},dst=/m,options=rbind:rslave:ro",
        src.path().display()
    );
    let (code, out, err) = d.run(&[&rr, "--mount", &m], &["cat", "/proc/self/mountinfo"]);
    assert_eq!(code, 0, "{err}");
    let line = out
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/m"))
        .unwrap_or_else(|| panic!("no /m in {out}"));
    assert!(line.contains(" master:"), "not a slave: {line}");
    // Item 7: the shim's ps (`berth-oci ps --format json`) lists the init.
    let ps = d.ctr_ok(&["tasks", "ps", &a]);
    assert!(
        ps.lines()
            .any(|l| l.split_whitespace().next() == Some(&pid.to_string())),
        "{ps}"
    );
    // Item 1: kill, stopped, deleted.
    d.ctr_ok(&["tasks", "kill", "-s", "KILL", &a]);
    let t = Instant::now();
    while !d.ctr_ok(&["tasks", "ls"]).contains("STOPPED") {
        assert!(t.elapsed() < Duration::from_secs(10), "{}", d.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    d.ctr_ok(&["tasks", "delete", &a]);
    d.ctr_ok(&["containers", "rm", &a]);
    // Item 6: nothing of berth-oci's left in its root.
    let left: Vec<_> = std::fs::read_dir(&rt_root)
        .map(|r| r.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in the runtime root: {left:?}");
}

/// Hooks through containerd (issue 21 item 5): `ctr run --config` hands
/// berth-oci a configuration of ours (with a runtime root deeper than
/// `sockaddr_un` allows); every hook runs once, in the spec's order, with
/// the state on stdin: prestart, createRuntime and createContainer see
/// `creating`, startContainer `created`, poststart `running`, poststop
/// `stopped`.
#[test]
fn ctr_runs_the_hooks_in_the_spec_order() {
    berth_testkit::privileged!();
    let Some(d) = Daemon::start() else { return };
    let root = deep_dir(&d.dir.path().join("rr"), 120);
    let rr = format!("--runc-root={}", root.display());
    let b = Bundle::new(&["/bin/echo", "ran"], json!({}));
    let seen = b.path().join("hooks.log");
    let hook = |kind: &str| {
        let script = format!(
            "printf '{kind} ' >> {s}; cat >> {s}; echo >> {s}",
            s = seen.display()
        );
        json!([{ "path": "/bin/sh", "args": ["sh", "-c", script] }])
    };
    let kinds = [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ];
    let mut cfg = b.cfg.clone();
    cfg["root"]["path"] = json!(b.path().join("rootfs"));
    for k in kinds {
        cfg["hooks"][k] = hook(k);
    }
    let spec = b.path().join("spec.json");
    std::fs::write(&spec, cfg.to_string()).unwrap();
    let id = berth_testkit::unique_name("ch");
    let (code, out, err) = d.ctr(&[
        "run",
        "--rm",
        "--runc-binary",
        BIN,
        &rr,
        "--config",
        spec.to_str().unwrap(),
        &id,
    ]);
    assert_eq!((code, out.as_str()), (0, "ran\n"), "{err}\n{}", d.log());
    let log = std::fs::read_to_string(&seen).unwrap();
    let got: Vec<(String, String)> = log
        .lines()
        .map(|l| {
            let (k, st) = l.split_once(' ').unwrap();
            let st: Value = serde_json::from_str(st).unwrap();
            assert_eq!(st["id"], id.as_str(), "{l}");
            (k.to_string(), st["status"].as_str().unwrap().to_string())
        })
        .collect();
    let want: Vec<(String, String)> = kinds
        .iter()
        .zip([
            "creating", "creating", "creating", "created", "running", "stopped",
        ])
        .map(|(k, s)| (k.to_string(), s.to_string()))
        .collect();
    assert_eq!(got, want, "{log}");
    let left: Vec<_> = std::fs::read_dir(root.join(&d.ns))
        .map(|r| r.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in the runtime root: {left:?}");
}
