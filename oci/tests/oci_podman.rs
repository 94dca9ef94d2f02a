//! podman drives `berth-oci` (`podman --runtime berth-oci run --network
//! none …`) with private storage, run and tmp dirs and a private
//! containers.conf (lower `default_ulimits`: podman's root defaults ask for
//! rlimits this host refuses), image loaded from an OCI archive built from
//! the busybox fixture (privileged tier; skipped with a message when
//! podman is not installed). podman's cleanup calls `delete --force`
//! without `--root`, so berth-oci's default root (`/run/berth-oci`) is used.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

mod common;

use common::*;

const IMAGE: &str = "localhost/berth-busybox:latest";

/// One podman test at a time: the battery compares the container cgroups
/// under podman's shared `libpod_parent` and berth-oci's default root
/// before and after, which another test's containers would change.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct Podman {
    dir: tempfile::TempDir,
    /// cgroup2 `libpod_parent` (podman's cgroupfs parent; berth-oci makes
    /// it as runc does) did not exist before: remove it at the end.
    remove_parent: Option<PathBuf>,
}

fn libpod_parent() -> Option<PathBuf> {
    berth_cgroups::Hierarchy::discover()
        .ok()
        .map(|h| h.mount_point().join("libpod_parent"))
}

impl Podman {
    fn new() -> Option<Podman> {
        if Command::new("podman").arg("--version").output().is_err() {
            println!("skipped: podman is not installed (apt-get install podman)");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("bpm")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::write(
            dir.path().join("containers.conf"),
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n\
             [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("registries.conf"),
            "unqualified-search-registries = []\n",
        )
        .unwrap();
        let remove_parent = libpod_parent().filter(|p| !p.exists());
        Some(Podman { dir, remove_parent })
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let d = self.dir.path();
        let mut c = Command::new("podman");
        berth_testkit::podman_private_store(&mut c, d, "overlay", BIN)
            // podman asks for a pids limit by default; on a hybrid host
            // (cgroup2 without pids) berth-oci refuses limits it cannot
            // enforce unless the operator opts in, as here.
            .args(["--runtime-flag", "allow-unenforced-limits"])
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.cmd(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Pull the busybox image ([`IMAGE`]) from an archive built in
    /// podman's directory.
    fn pull_image(&self) {
        let tar = image_archive(self.dir.path(), IMAGE);
        self.ok(&["pull", "-q", &format!("oci-archive:{}", tar.display())]);
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "podman {args:?}: {err}\n{out}");
        out
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cmd(&["rm", "-af", "-t", "0"]).output();
        let _ = self.cmd(&["system", "reset", "-f"]).output();
        if let Some(p) = &self.remove_parent {
            let _ = std::fs::remove_dir(p);
        }
        if let Ok(mi) = std::fs::read_to_string("/proc/self/mountinfo") {
            let d = self.dir.path().display().to_string();
            for l in mi.lines() {
                if let Some(m) = l.split(' ').nth(4).filter(|m| m.starts_with(&d)) {
                    let _ = Command::new("umount").arg("-l").arg(m).status();
                }
            }
        }
    }
}

/// Entries of berth-oci's default root and its metadata directory.
fn default_root_entries() -> Vec<String> {
    let mut v: Vec<String> = ["/run/berth-oci", "/run/berth-oci/.meta"]
        .iter()
        .flat_map(|d| std::fs::read_dir(d).into_iter().flatten())
        .filter_map(|e| e.ok())
        .map(|e| e.path().display().to_string())
        // The metadata directory itself appears with the first container.
        .filter(|p| p != "/run/berth-oci/.meta")
        .collect();
    v.sort();
    v
}

#[test]
fn podman_runs_the_battery_with_berth_oci() {
    berth_testkit::privileged!();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(p) = Podman::new() else { return };
    let before = default_root_entries();
    p.pull_image();
    let imgs = p.ok(&["images", "--format", "{{.Id}}"]);
    let img = imgs.lines().next().unwrap().trim().to_string();
    let mounts_before = mounts_under(&[p.dir.path(), Path::new("/run/berth-oci")]);
    let cgroups_before = container_cgroups();

    let run = |extra: &[&str], args: &[&str]| {
        let mut v = vec!["run", "--rm", "--network", "none"];
        v.extend_from_slice(extra);
        v.push(&img);
        v.extend_from_slice(args);
        p.run(&v)
    };
    let (code, out, err) = run(&["--env", "X=1"], &["sh", "-c", "echo hi $IMG $X"]);
    assert_eq!((code, out.as_str()), (0, "hi busybox 1\n"), "{err}");
    let (code, _, err) = run(&[], &["sh", "-c", "exit 5"]);
    assert_eq!(code, 5, "{err}");
    let (code, out, err) = run(&["--workdir", "/etc"], &["pwd"]);
    assert_eq!((code, out.as_str()), (0, "/etc\n"), "{err}");
    let (code, out, err) = run(&["--user", "1000:1000"], &["id", "-u"]);
    assert_eq!((code, out.as_str()), (0, "1000\n"), "{err}");
    // (--read-only-tmpfs=false: podman's tmpfs on /run, /tmp, /var/tmp use
    // runc's "tmpcopyup" extension, which berth does not implement.)
    let (code, out, err) = run(
        &["--read-only", "--read-only-tmpfs=false"],
        &["sh", "-c", "touch /x 2>/dev/null || echo ro"],
    );
    assert_eq!((code, out.as_str()), (0, "ro\n"), "{err}");
    // A detached container: exec (plain and with a tty), stop of a
    // process that ignores SIGTERM (podman escalates to SIGKILL).
    let name = berth_testkit::unique_name("pm");
    p.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &name,
        &img,
        "sh",
        "-c",
        "trap '' TERM; while :; do sleep 0.2; done",
    ]);
    let out = p.ok(&["exec", &name, "sh", "-c", "echo in-exec $IMG; hostname"]);
    assert!(out.starts_with("in-exec busybox\n"), "{out}");
    let (code, _, err) = p.run(&["exec", &name, "sh", "-c", "exit 6"]);
    assert_eq!(code, 6, "{err}");
    let out = p.ok(&["exec", "-t", &name, "sh", "-c", "[ -t 1 ] && echo exec-tty"]);
    assert!(out.contains("exec-tty"), "{out}");
    let t = std::time::Instant::now();
    p.ok(&["stop", "-t", "1", &name]);
    assert!(t.elapsed() < std::time::Duration::from_secs(15));
    let st = p.ok(&["inspect", "--format", "{{.State.Status}}", &name]);
    assert_eq!(st.trim(), "exited");
    p.ok(&["rm", &name]);

    // Nothing left: no containers, nothing new in berth-oci's default root.
    assert_eq!(p.ok(&["ps", "-aq"]).trim(), "");
    assert_eq!(default_root_entries(), before);
    // No container cgroup (libpod-<id>) and no mount (podman's storage, the
    // runtime's root) was left by the --rm runs, the stop and the rm.
    assert_eq!(container_cgroups(), cgroups_before);
    assert_eq!(
        mounts_under(&[p.dir.path(), Path::new("/run/berth-oci")]),
        mounts_before
    );
}

/// The container cgroups under podman's cgroupfs parent.
fn container_cgroups() -> Vec<String> {
    let mut v: Vec<String> = libpod_parent()
        .and_then(|p| std::fs::read_dir(p).ok())
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("libpod-"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// podman with a runtime root deeper than `sockaddr_un` allows (issue 21
/// item 6): `run` works (the holder's socket under the root is bound and
/// reached through its directory's fd), and what podman deletes with the
/// root leaves nothing in it. (podman's own `--runroot` is limited to 50
/// characters; its exit-command cleanup calls the runtime without
/// `--runtime-flag`s, with runc as with berth-oci, so the `--rm` run's
/// state is deleted here by hand with the same root.)
#[test]
fn podman_with_a_runtime_root_deeper_than_sun_len() {
    berth_testkit::privileged!();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(p) = Podman::new() else { return };
    p.pull_image();
    let mut root = p.dir.path().join("rt");
    while root.as_os_str().len() <= 120 {
        root = root.join("d".repeat(30));
    }
    let flag = format!("root={}", root.display());
    let (code, out, err) = p.run(&[
        "--runtime-flag",
        &flag,
        "run",
        "--rm",
        "--network",
        "none",
        IMAGE,
        "sh",
        "-c",
        "echo deep",
    ]);
    assert_eq!((code, out.as_str()), (0, "deep\n"), "{err}");
    let name = berth_testkit::unique_name("pmd");
    p.ok(&[
        "--runtime-flag",
        &flag,
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &name,
        IMAGE,
        "sleep",
        "60",
    ]);
    let out = p.ok(&[
        "--runtime-flag",
        &flag,
        "exec",
        &name,
        "sh",
        "-c",
        "echo in-deep",
    ]);
    assert_eq!(out, "in-deep\n");
    p.ok(&["--runtime-flag", &flag, "rm", "-f", "-t", "0", &name]);
    Rt::new(BIN, root.clone()).delete_all();
    let left: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left in the runtime root: {left:?}");
}

/// The namespaces (`net`, `pid`, `ipc`, `uts`) of process `pid`, as
/// `readlink /proc/PID/ns/*` gives them, one a line.
fn namespaces(pid: &str) -> String {
    ["net", "pid", "ipc", "uts"]
        .iter()
        .map(|n| {
            let l = std::fs::read_link(format!("/proc/{pid}/ns/{n}")).unwrap();
            format!("{}\n", l.display())
        })
        .collect()
}

/// Issue 21's items through podman with a runtime root deeper than
/// `sockaddr_un` allows (item 6): a container joining another's net,
/// pid, ipc and uts namespaces (`--network/--pid/--ipc/--uts
/// container:`, item 2), podman's default seccomp profile in place when
/// the workload runs (item 3), `--device` and an `rslave` bind of a
/// shared host mount (item 4), an OCI hook from `--hooks-dir` on the
/// spec's lifecycle with the state on stdin (item 5: prestart sees
/// `creating`, poststop `stopped`), `podman kill` (item 1); the root holds
/// nothing berth-oci made at the end (item 6). (podman's exit-command
/// cleanup calls the runtime without `--runtime-flag`s, so the state of
/// the stopped containers is deleted here by hand with the same root.)
#[test]
fn podman_items_with_a_runtime_root_deeper_than_sun_len() {
    berth_testkit::privileged!();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(p) = Podman::new() else { return };
    p.pull_image();
    let root = deep_dir(&p.dir.path().join("rt"), 120);
    let flag = format!("root={}", root.display());
    // Item 5: a hook for prestart and poststop, appending its stdin.
    let hooks = p.dir.path().join("hooks");
    std::fs::create_dir(&hooks).unwrap();
    let seen = p.dir.path().join("hook-states");
    let hook = json!({
        "version": "1.0.0",
        "hook": { "path": "/bin/sh",
                  "args": ["sh", "-c", format!("cat >> {}; echo >> {}", seen.display(), seen.display())] },
        "when": { "always": true },
        "stages": ["prestart", "poststop"]
    });
    std::fs::write(hooks.join("berth.json"), hook.to_string()).unwrap();
    let hd = hooks.display().to_string();
    let pm = |args: &[&str]| {
        let mut v = vec!["--runtime-flag", &flag, "--hooks-dir", &hd];
        v.extend_from_slice(args);
        p.run(&v)
    };
    let a = berth_testkit::unique_name("pmi");
    let (code, _, err) = pm(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &a,
        IMAGE,
        "sleep",
        "60",
    ]);
    assert_eq!(code, 0, "{err}");
    let (_, pid, _) = pm(&["inspect", "--format", "{{.State.Pid}}", &a]);
    let pid = pid.trim().to_string();
    // Item 2.
    let c = format!("container:{a}");
    let (code, out, err) = pm(&[
        "run",
        "--rm",
        "--network",
        &c,
        "--pid",
        &c,
        "--ipc",
        &c,
        "--uts",
        &c,
        IMAGE,
        "sh",
        "-c",
        "for n in net pid ipc uts; do readlink /proc/self/ns/$n; done",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, namespaces(&pid));
    // Item 3, and item 4: a device node and an rslave bind mount.
    let src = SharedSource::new();
    let m = format!(
        "type=bind,src={},dst=/m,bind-propagation=rslave",
        src.path().display()
    );
    let (code, out, err) = pm(&[
        "run", "--rm", "--network", "none", "--device", "/dev/zero:/dev/myzero", "--mount", &m,
        IMAGE, "sh", "-c",
        "grep Seccomp: /proc/self/status; head -c 3 /dev/myzero | wc -c; grep ' /m ' /proc/self/mountinfo",
    ]);
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    assert_eq!(
        lines.next().and_then(|l| l.split_whitespace().nth(1)),
        Some("2"),
        "{out}"
    );
    assert_eq!(lines.next().map(str::trim), Some("3"), "{out}");
    assert!(
        lines.next().is_some_and(|l| l.contains(" master:")),
        "{out}"
    );
    // Item 1.
    let (code, _, err) = pm(&["kill", &a]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = pm(&["wait", &a]);
    assert_eq!(code, 0, "{err}");
    // What podman's cleanup did not delete (another root), by hand: runs
    // the poststop hooks.
    Rt::new(BIN, root.clone()).delete_all();
    let (code, _, err) = pm(&["rm", "-f", &a]);
    assert_eq!(code, 0, "{err}");
    // Item 5: each container's prestart saw it creating, its poststop
    // stopped (one JSON state a line).
    let states: Vec<Value> = std::fs::read_to_string(&seen)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let status = |s: &str| states.iter().filter(|v| v["status"] == s).count();
    assert_eq!(
        (status("creating"), status("stopped")),
        (3, 3),
        "{states:?}"
    );
    // Item 6.
    let left: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left in the runtime root: {left:?}");
}
