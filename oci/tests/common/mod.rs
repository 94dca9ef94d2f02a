//! The bundle harness of berth-oci's tests: a bundle directory with its
//! own copy of the busybox rootfs and a `config.json` ([`Bundle`]), a
//! runtime binary with a private `--root` ([`Rt`]: berth-oci, or runc to
//! compare), and both with a container id ([`Oci`]). Everything is
//! removed on drop (`delete --force`, then the directories), so a failing
//! test leaves nothing behind.
//!
//! `BERTH_OCI_BIN` runs the tests against another build of berth-oci (to
//! see them fail on the code before a change).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The berth-oci this test binary was built with.
pub const BIN: &str = env!("CARGO_BIN_EXE_berth-oci");

/// The berth-oci under test: `BERTH_OCI_BIN`, else [`BIN`].
pub fn bin() -> String {
    std::env::var("BERTH_OCI_BIN").unwrap_or_else(|_| BIN.into())
}

/// The default `config.json`: `args` as the process (PATH=/bin, cwd `/`,
/// root), `/proc` mounted, new pid, ipc, uts, mount and network
/// namespaces, the rootfs at `rootfs` in the bundle.
pub fn config(args: &[&str]) -> Value {
    json!({
        "ociVersion": "1.0.2",
        "root": { "path": "rootfs" },
        "process": {
            "args": args, "env": ["PATH=/bin"], "cwd": "/",
            "user": { "uid": 0, "gid": 0 }
        },
        "mounts": [{ "destination": "/proc", "type": "proc", "source": "proc" }],
        "linux": { "namespaces": [
            { "type": "pid" }, { "type": "ipc" }, { "type": "uts" },
            { "type": "mount" }, { "type": "network" }
        ]}
    })
}

/// `extra`'s keys set in `cfg` (each replacing the whole value).
pub fn merge(cfg: &mut Value, extra: Value) {
    for (k, v) in extra.as_object().expect("an object").iter() {
        cfg[k] = v.clone();
    }
}

/// Output bytes as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A bundle directory under `/tmp`: `rootfs/` (a copy of the busybox
/// rootfs) and `config.json`.
pub struct Bundle {
    /// The directory (removed on drop).
    dir: tempfile::TempDir,
    /// The configuration last written.
    pub cfg: Value,
}

impl Bundle {
    /// [`config`]`(args)` with `extra`'s top-level keys set.
    pub fn new(args: &[&str], extra: Value) -> Bundle {
        let mut cfg = config(args);
        merge(&mut cfg, extra);
        Bundle::with_config(cfg)
    }

    /// A bundle of configuration `cfg` (its `root.path` should be
    /// `rootfs`).
    pub fn with_config(cfg: Value) -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("boci")
            .tempdir_in("/tmp")
            .unwrap();
        berth_testkit::copy_busybox_rootfs_to(&dir.path().join("rootfs"));
        let b = Bundle { dir, cfg };
        b.write();
        b
    }

    /// The bundle directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write [`Bundle::cfg`] as `config.json`.
    pub fn write(&self) {
        std::fs::write(self.path().join("config.json"), self.cfg.to_string()).unwrap();
    }

    /// Rewrite `config.json` through `f` (also in [`Bundle::cfg`]).
    pub fn edit(&mut self, f: impl FnOnce(&mut Value)) {
        f(&mut self.cfg);
        self.write();
    }
}

/// One runtime binary with its own `--root` (and global flags); on drop,
/// `delete --force` of every container its `list` names.
pub struct Rt {
    /// The runtime binary.
    pub bin: String,
    /// Its `--root`.
    pub root: PathBuf,
    /// Global flags after `--root`.
    pub global: Vec<String>,
}

impl Rt {
    /// `bin --root root`.
    pub fn new(bin: &str, root: PathBuf) -> Rt {
        Rt {
            bin: bin.to_string(),
            root,
            global: Vec::new(),
        }
    }

    /// `bin --root R GLOBAL… ARGS…`, stdin from /dev/null.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root")
            .arg(&self.root)
            .args(&self.global)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// Run `c`; (exit code, stdout, stderr). Output goes through files,
    /// not pipes: a created container keeps the stdio `create` was given.
    pub fn outcome(mut c: Command) -> (i32, String, String) {
        let (mut o, mut e) = (tempfile::tempfile().unwrap(), tempfile::tempfile().unwrap());
        let st = c
            .stdout(o.try_clone().unwrap())
            .stderr(e.try_clone().unwrap())
            .status()
            .unwrap();
        let read = |f: &mut std::fs::File| {
            use std::io::{Read, Seek};
            let mut s = String::new();
            f.rewind().unwrap();
            f.read_to_string(&mut s).unwrap();
            s
        };
        (st.code().unwrap_or(-1), read(&mut o), read(&mut e))
    }

    /// Run; (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        Rt::outcome(self.cmd(args))
    }

    /// Run, which must succeed; stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "{} {args:?}: {err}", self.bin);
        out
    }

    /// `create --bundle B ID`, which must succeed.
    pub fn create(&self, b: &Bundle, id: &str) {
        self.ok(&["create", "--bundle", b.path().to_str().unwrap(), id]);
    }

    /// `state ID` as JSON (panics if it fails).
    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    /// `state ID`'s status, or its error text when it fails.
    pub fn status(&self, id: &str) -> String {
        let (code, out, err) = self.run(&["state", id]);
        if code != 0 {
            return err;
        }
        let v: Value = serde_json::from_str(&out).unwrap();
        v["status"].as_str().unwrap().to_string()
    }

    /// Poll `state` until its status (or error text) is `want`, for up to
    /// 10 s; the last state (`null` when `state` failed).
    pub fn wait_status(&self, id: &str, want: &str) -> Value {
        let t = Instant::now();
        loop {
            let (code, out, err) = self.run(&["state", id]);
            let (now, v) = if code == 0 {
                let v: Value = serde_json::from_str(&out).unwrap();
                (v["status"].as_str().unwrap().to_string(), v)
            } else {
                (err, Value::Null)
            };
            if now == want {
                return v;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "{id}: still {now} (want {want})"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Bring a new container `id` to `state` (`missing`: nothing).
    pub fn make(&self, b: &Bundle, id: &str, state: &str) {
        match state {
            "missing" => {}
            "created" => self.create(b, id),
            _ => {
                self.create(b, id);
                self.ok(&["start", id]);
                if state == "stopped" {
                    self.ok(&["kill", id, "KILL"]);
                    self.wait_status(id, "stopped");
                }
            }
        }
    }

    /// The names in `--root` (runc and berth-oci make it on first use).
    pub fn root_entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.root)
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Rt {
    /// `delete --force` of every container `list` names, each of which
    /// must succeed.
    pub fn delete_all(&self) {
        let (_, out, _) = self.run(&["list", "-q"]);
        for id in out.lines() {
            self.ok(&["delete", "--force", id]);
        }
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        let (_, out, _) = self.run(&["list", "-q"]);
        for id in out.lines() {
            self.run(&["delete", "--force", id]);
        }
    }
}

/// A bundle, berth-oci with a private `--root` (`state/` in the bundle
/// directory) and a container id: the usual test subject.
pub struct Oci {
    /// The runtime (dropped first: its containers go before the bundle).
    pub rt: Rt,
    /// The bundle.
    pub bundle: Bundle,
    /// The container id.
    pub id: String,
    /// `--root`, as [`Rt::root`].
    pub root: PathBuf,
}

impl Oci {
    /// A container `id` (a unique name from `prefix`) of `cfg` (see
    /// [`Bundle::with_config`]).
    pub fn new(prefix: &str, cfg: Value) -> Oci {
        let bundle = Bundle::with_config(cfg);
        let root = bundle.path().join("state");
        Oci {
            rt: Rt::new(&bin(), root.clone()),
            bundle,
            id: berth_testkit::unique_name(prefix),
            root,
        }
    }

    /// Global flags for every command (after `--root`).
    pub fn with_global(mut self, global: &[&str]) -> Oci {
        self.rt.global = global.iter().map(|s| s.to_string()).collect();
        self
    }

    /// The bundle directory.
    pub fn bundle(&self) -> &Path {
        self.bundle.path()
    }

    /// `berth-oci --root R ARGS…`, with `{}` in `args` replaced by the
    /// bundle directory and `ID` by the container id.
    pub fn cmd(&self, args: &[&str]) -> Command {
        self.cmd_with(&[], args)
    }

    /// [`Oci::cmd`] with more global flags (after `--root`).
    pub fn cmd_with(&self, global: &[&str], args: &[&str]) -> Command {
        let b = self.bundle().to_str().unwrap();
        let mut all = global.to_vec();
        all.extend(args.iter().map(|a| match *a {
            "{}" => b,
            "ID" => self.id.as_str(),
            a => a,
        }));
        self.rt.cmd(&all)
    }

    /// Run with more global flags; its [`std::process::Output`] (through
    /// files, see [`Rt::outcome`]).
    pub fn out(&self, global: &[&str], args: &[&str]) -> std::process::Output {
        let (code, out, err) = Rt::outcome(self.cmd_with(global, args));
        use std::os::unix::process::ExitStatusExt;
        std::process::Output {
            status: std::process::ExitStatus::from_raw((code & 0xff) << 8),
            stdout: out.into_bytes(),
            stderr: err.into_bytes(),
        }
    }

    /// Run with more global flags, which must succeed; stdout.
    pub fn ok_with(&self, global: &[&str], args: &[&str]) -> String {
        let (code, out, err) = Rt::outcome(self.cmd_with(global, args));
        assert_eq!(code, 0, "berth-oci {args:?}: {err}");
        out
    }

    /// Run; (exit code, stdout, stderr) (see [`Rt::outcome`]).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        Rt::outcome(self.cmd(args))
    }

    /// Run, which must succeed; stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "berth-oci {args:?} failed: {err}");
        out
    }

    /// `create --bundle B EXTRA… ID` with the container's stdout and
    /// stderr going to `out`; the exit code.
    pub fn create_to(&self, out: &Path, extra: &[&str]) -> i32 {
        let f = std::fs::File::create(out).unwrap();
        let e = f.try_clone().unwrap();
        let mut args = vec!["create", "--bundle", "{}"];
        args.extend_from_slice(extra);
        args.push("ID");
        let st = self.cmd(&args).stdout(f).stderr(e).status().unwrap();
        st.code().unwrap_or(-1)
    }

    /// `create` (the container's output to `<bundle>/out`) and `start`.
    pub fn create_start(&self) {
        let code = self.create_to(&self.bundle().join("out"), &[]);
        assert_eq!(code, 0, "create: {}", self.output());
        self.ok(&["start", "ID"]);
    }

    /// What the container wrote to `<bundle>/out`.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.bundle().join("out")).unwrap_or_default()
    }

    /// `state` as JSON.
    pub fn state(&self) -> Value {
        self.rt.state(&self.id)
    }

    /// `state`'s status.
    pub fn status(&self) -> String {
        self.state()["status"].as_str().unwrap().to_string()
    }

    /// See [`Rt::wait_status`].
    pub fn wait_status(&self, want: &str) -> Value {
        self.rt.wait_status(&self.id, want)
    }

    /// The init's pid from `state`.
    pub fn init_pid(&self) -> i32 {
        self.state()["pid"].as_i64().unwrap() as i32
    }

    /// Rewrite the bundle's `config.json` through `f`.
    pub fn edit_config(&mut self, f: impl FnOnce(&mut Value)) {
        self.bundle.edit(f);
    }

    /// Write [`Bundle::cfg`], then `run --bundle B ID`: (exit code,
    /// stdout, stderr).
    pub fn run_bundle(&self) -> (i32, String, String) {
        self.bundle.write();
        self.run(&["run", "--bundle", "{}", "ID"])
    }

    /// [`Oci::run_bundle`], which must succeed and leave no state; stdout.
    pub fn run_ok(&self) -> String {
        let (code, out, err) = self.run_bundle();
        assert_eq!(code, 0, "berth-oci run failed: {err}\nstdout: {out}");
        assert!(!self.root.join(&self.id).exists(), "state left after run");
        out
    }
}

impl Drop for Oci {
    fn drop(&mut self) {
        let _ = self.run(&["delete", "--force", "ID"]);
    }
}

/// An OCI image archive of the busybox fixture (one layer, `PATH`, `IMG`,
/// `/bin/sh`) named `image`, written in `dir`: what `ctr images import`
/// and podman's `oci-archive:` read.
pub fn image_archive(dir: &Path, image: &str) -> PathBuf {
    let layout = dir.join("layout");
    berth_overlay::ImageBuilder::new(image)
        .layer_dir(berth_testkit::busybox_rootfs())
        .env(["PATH=/bin:/usr/bin", "IMG=busybox"])
        .cmd(["/bin/sh"])
        .write(&layout)
        .unwrap();
    let tar = dir.join("image.tar");
    berth_testkit::tar_dir(&layout, &tar);
    tar
}

/// Mount points in our mount namespace under any of `dirs`, sorted.
pub fn mounts_under(dirs: &[&Path]) -> Vec<String> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut v: Vec<String> = mi
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| dirs.iter().any(|d| Path::new(m).starts_with(d)))
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// A tmpfs of this test made shared on the host (the source of the
/// slave/shared bind mounts); unmounted on drop.
pub struct SharedSource(tempfile::TempDir);

impl SharedSource {
    pub fn new() -> SharedSource {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().to_str().unwrap().to_string();
        assert!(Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "berth-test", &p])
            .status()
            .unwrap()
            .success());
        assert!(Command::new("mount")
            .args(["--make-shared", &p])
            .status()
            .unwrap()
            .success());
        std::fs::create_dir(d.path().join("sub")).unwrap();
        SharedSource(d)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for SharedSource {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

/// A directory more than `len` bytes deep under `base`.
pub fn deep_dir(base: &Path, len: usize) -> PathBuf {
    let mut p = base.to_path_buf();
    let mut i = 0;
    while p.as_os_str().len() <= len {
        p = p.join(format!("{i:02}{}", "d".repeat(40)));
        i += 1;
    }
    std::fs::create_dir_all(&p).unwrap();
    p
}
