//! berth-oci's files, modes and limits (issue 20, items 7, 8, 10, 11):
//! no file written through a planted symlink, a private state root, its
//! own cgroup parent, an empty inheritable set, and limits the host
//! cannot enforce refused unless the operator opts in (privileged tier).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

const OCI: &str = env!("CARGO_BIN_EXE_berth-oci");

/// A bundle over a copy of the busybox rootfs running `args`, with
/// `linux` merged into the default namespaces, and a private `--root`
/// (inside the bundle's directory); `delete --force` on drop.
struct Bundle {
    dir: tempfile::TempDir,
    root: PathBuf,
    id: String,
}

impl Bundle {
    fn new(args: &[&str], process: Value, linux: Value) -> Bundle {
        let dir = tempfile::tempdir().unwrap();
        assert!(Command::new("cp")
            .arg("-a")
            .arg(berth_testkit::busybox_rootfs())
            .arg(dir.path().join("rootfs"))
            .status()
            .unwrap()
            .success());
        let mut proc_ = json!({ "args": args, "env": ["PATH=/bin"], "cwd": "/",
            "user": { "uid": 0, "gid": 0 } });
        let mut lin = json!({ "namespaces": [{ "type": "pid" }, { "type": "ipc" },
            { "type": "uts" }, { "type": "mount" }, { "type": "network" }] });
        for (dst, src) in [(&mut proc_, process), (&mut lin, linux)] {
            for (k, v) in src.as_object().unwrap() {
                dst[k] = v.clone();
            }
        }
        let cfg = json!({ "ociVersion": "1.0.2", "root": { "path": "rootfs" },
            "process": proc_, "linux": lin,
            "mounts": [{ "destination": "/proc", "type": "proc", "source": "proc" }] });
        std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
        Bundle {
            root: dir.path().join("state"),
            id: berth_testkit::unique_name("ocif"),
            dir,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `berth-oci --root <root> <global…> <args…>` with `{}` in `args`
    /// replaced by the bundle directory and `ID` by the container id.
    fn cmd(&self, global: &[&str], args: &[&str]) -> Command {
        let mut c = Command::new(OCI);
        c.arg("--root").arg(&self.root).args(global);
        for a in args {
            match *a {
                "{}" => c.arg(self.path()),
                "ID" => c.arg(&self.id),
                a => c.arg(a),
            };
        }
        c.stdin(Stdio::null());
        c
    }

    /// Its output; `create`'s stdio (the container's) goes to null, so
    /// that the reader is not held open by the container.
    fn out(&self, global: &[&str], args: &[&str]) -> Output {
        let mut c = self.cmd(global, args);
        if args.first() == Some(&"create") {
            let err = self.path().join("create.err");
            c.stdout(Stdio::null())
                .stderr(std::fs::File::create(&err).unwrap());
            let st = c.status().unwrap();
            let stderr = std::fs::read(&err).unwrap();
            return Output {
                status: st,
                stdout: Vec::new(),
                stderr,
            };
        }
        c.output().unwrap()
    }

    fn ok(&self, global: &[&str], args: &[&str]) -> String {
        let o = self.out(global, args);
        assert!(
            o.status.success(),
            "berth-oci {args:?}: {}",
            text(&o.stderr)
        );
        text(&o.stdout)
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = self.out(&[], &["delete", "--force", "ID"]);
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Run `argv` as nobody (uid/gid 65534, no groups); its output.
fn as_nobody(argv: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(argv)
        .output()
        .unwrap()
}

/// A victim file (content and mtime) that must stay untouched.
struct Victim {
    path: PathBuf,
    mtime: i64,
}

impl Victim {
    fn new(dir: &Path, name: &str) -> Victim {
        let path = dir.join(name);
        std::fs::write(&path, "victim\n").unwrap();
        // An old mtime, so any write shows.
        assert!(Command::new("touch")
            .args(["-d", "2001-01-01"])
            .arg(&path)
            .status()
            .unwrap()
            .success());
        let mtime = std::fs::metadata(&path).unwrap().mtime();
        Victim { path, mtime }
    }

    fn assert_untouched(&self, what: &str) {
        assert_eq!(
            std::fs::read_to_string(&self.path).unwrap(),
            "victim\n",
            "{what}: victim {:?} was written",
            self.path
        );
        assert_eq!(
            std::fs::metadata(&self.path).unwrap().mtime(),
            self.mtime,
            "{what}: victim {:?} was modified",
            self.path
        );
    }
}

/// Plant, in `dir`, a symlink at `name` to the victim and one at the
/// temporary name the old code wrote the pid file under (`.<name>.tmp`)
/// to `tmp_target`.
fn plant(dir: &Path, name: &str, victim: &Victim, tmp_target: &Path) {
    std::os::unix::fs::symlink(&victim.path, dir.join(name)).unwrap();
    std::os::unix::fs::symlink(tmp_target, dir.join(format!(".{name}.tmp"))).unwrap();
}

/// Item 7: `--pid-file` (create, run, exec) and `--log` never write
/// through a symlink planted at the file's name or at the temporary name
/// the pid file was written under; the pid file itself becomes a regular
/// file holding the pid.
#[test]
fn pid_file_and_log_never_follow_planted_symlinks() {
    berth_testkit::privileged!();
    let b = Bundle::new(&["/bin/sleep", "60"], json!({}), json!({}));
    let victims = tempfile::tempdir().unwrap();
    let victim = Victim::new(victims.path(), "victim");
    // A dangling target too: nothing may be created where it points.
    let dangling = victims.path().join("dangling-target");
    let d = b.path().join("pids");
    std::fs::create_dir(&d).unwrap();
    plant(&d, "create.pid", &victim, &victim.path);
    plant(&d, "exec.pid", &victim, &victim.path);
    plant(&d, "run.pid", &victim, &dangling);
    let log = b.path().join("log.json");
    std::os::unix::fs::symlink(&victim.path, &log).unwrap();

    // --log through a symlink: refused, victim untouched.
    let o = b.out(
        &["--log", log.to_str().unwrap()],
        &["create", "--bundle", "{}", "ID"],
    );
    assert!(!o.status.success(), "--log through a symlink was accepted");
    assert!(text(&o.stderr).contains("log"), "{}", text(&o.stderr));
    victim.assert_untouched("--log symlink");
    assert!(!b.root.join(&b.id).exists());

    let pf = |n: &str| d.join(n).display().to_string();
    b.ok(
        &[],
        &[
            "create",
            "--bundle",
            "{}",
            "--pid-file",
            &pf("create.pid"),
            "ID",
        ],
    );
    victim.assert_untouched("create --pid-file");
    let state: Value = serde_json::from_str(&b.ok(&[], &["state", "ID"])).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    assert!(!std::fs::symlink_metadata(d.join("create.pid"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        std::fs::read_to_string(d.join("create.pid")).unwrap(),
        pid.to_string()
    );
    b.ok(&[], &["start", "ID"]);
    b.ok(
        &[],
        &[
            "exec",
            "--detach",
            "--pid-file",
            &pf("exec.pid"),
            "ID",
            "/bin/sleep",
            "1",
        ],
    );
    victim.assert_untouched("exec --pid-file");
    let epid = std::fs::read_to_string(d.join("exec.pid")).unwrap();
    assert!(epid.parse::<i32>().is_ok(), "{epid:?}");
    b.ok(&[], &["delete", "--force", "ID"]);

    let r = Bundle::new(&["/bin/true"], json!({}), json!({}));
    r.ok(
        &[],
        &["run", "--bundle", "{}", "--pid-file", &pf("run.pid"), "ID"],
    );
    victim.assert_untouched("run --pid-file");
    assert!(
        !dangling.exists(),
        "a file was created through a dangling link"
    );
    // No temporary left beside the pid files (only the planted links).
    for e in std::fs::read_dir(&d).unwrap() {
        let e = e.unwrap();
        let n = e.file_name().to_string_lossy().into_owned();
        assert!(
            n.ends_with(".pid") || e.file_type().unwrap().is_symlink(),
            "left behind: {n}"
        );
    }
}

/// Item 8: the state root (even one that existed with mode 0755: it is
/// tightened, and the log says so), `.meta`, the container's directory
/// are 0700 and the metadata 0600; nobody can list the root nor read the
/// metadata or the state.
#[test]
fn state_root_is_private_and_tightened() {
    berth_testkit::privileged!();
    let b = Bundle::new(&["/bin/sleep", "60"], json!({}), json!({}));
    // Only the state root itself may stop nobody.
    std::fs::set_permissions(b.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(&b.root).unwrap();
    std::fs::set_permissions(&b.root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = b.path().join("log");
    b.ok(
        &["--log", log.to_str().unwrap()],
        &["create", "--bundle", "{}", "ID"],
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("tightened"), "{logged}");
    let meta = b.root.join(".meta").join(format!("{}.json", b.id));
    let state = b.root.join(&b.id).join("state.json");
    assert_eq!(mode(&b.root), 0o700, "state root");
    assert_eq!(mode(&b.root.join(".meta")), 0o700, ".meta");
    assert_eq!(mode(&b.root.join(&b.id)), 0o700, "container directory");
    assert_eq!(mode(&meta), 0o600, "metadata");
    // The path a local user would need is closed at the root.
    let root = b.root.display().to_string();
    for argv in [
        vec!["ls", &root],
        vec!["cat", meta.to_str().unwrap()],
        vec!["cat", state.to_str().unwrap()],
    ] {
        let o = as_nobody(&argv);
        assert!(
            !o.status.success(),
            "nobody ran {argv:?}: {}",
            text(&o.stdout)
        );
        assert!(
            text(&o.stderr).contains("Permission denied"),
            "{argv:?}: {}",
            text(&o.stderr)
        );
    }
    b.ok(&[], &["delete", "--force", "ID"]);
}
