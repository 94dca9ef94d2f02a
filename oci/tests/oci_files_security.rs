//! berth-oci's files, modes and limits (issue 20, items 7, 8, 10, 11):
//! no file written through a planted symlink, a private state root, its
//! own cgroup parent, an empty inheritable set, and limits the host
//! cannot enforce refused unless the operator opts in (privileged tier).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

mod common;

use common::*;

/// berth-run, from the package berth-examples: built next to berth-oci in
/// the same target directory (`cargo build -p berth-examples --bin
/// berth-run`), or named by `BERTH_RUN`.
fn berth_run() -> Option<PathBuf> {
    let p = std::env::var_os("BERTH_RUN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(BIN).with_file_name("berth-run"));
    p.exists().then_some(p)
}

/// A bundle running `args`, with `process` and `linux` keys set in the
/// default process and `linux` sections, and a private `--root`.
fn bundle(args: &[&str], process: Value, linux: Value) -> Oci {
    let mut cfg = config(args);
    merge(&mut cfg["process"], process);
    merge(&mut cfg["linux"], linux);
    Oci::new("ocif", cfg)
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
    let b = bundle(&["/bin/sleep", "60"], json!({}), json!({}));
    let victims = tempfile::tempdir().unwrap();
    let victim = Victim::new(victims.path(), "victim");
    // A dangling target too: nothing may be created where it points.
    let dangling = victims.path().join("dangling-target");
    let d = b.bundle().join("pids");
    std::fs::create_dir(&d).unwrap();
    plant(&d, "create.pid", &victim, &victim.path);
    plant(&d, "exec.pid", &victim, &victim.path);
    plant(&d, "run.pid", &victim, &dangling);
    let log = b.bundle().join("log.json");
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
    b.ok_with(
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
    let state: Value = serde_json::from_str(&b.ok_with(&[], &["state", "ID"])).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    assert!(!std::fs::symlink_metadata(d.join("create.pid"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        std::fs::read_to_string(d.join("create.pid")).unwrap(),
        pid.to_string()
    );
    b.ok_with(&[], &["start", "ID"]);
    b.ok_with(
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
    b.ok_with(&[], &["delete", "--force", "ID"]);

    let r = bundle(&["/bin/true"], json!({}), json!({}));
    r.ok_with(
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
    let b = bundle(&["/bin/sleep", "60"], json!({}), json!({}));
    // Only the state root itself may stop nobody.
    std::fs::set_permissions(b.bundle(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(&b.root).unwrap();
    std::fs::set_permissions(&b.root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = b.bundle().join("log");
    b.ok_with(
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
    assert_eq!(mode(&state), 0o600, "state file");
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
    b.ok_with(&[], &["delete", "--force", "ID"]);
}

/// Item 8: berth-run and berth-oci each have their own cgroup parent, so
/// the same id runs in both at once.
#[test]
fn same_id_in_berth_run_and_berth_oci() {
    berth_testkit::privileged!();
    let Some(run) = berth_run() else {
        println!("skipped: berth-run not built (cargo build -p berth-examples --bin berth-run)");
        return;
    };
    let b = bundle(&["/bin/sleep", "60"], json!({}), json!({}));
    b.ok_with(&[], &["create", "--bundle", "{}", "ID"]);
    b.ok_with(&[], &["start", "ID"]);
    let o = Command::new(run)
        .arg("--name")
        .arg(&b.id)
        .arg("--rootfs")
        .arg(berth_testkit::busybox_rootfs())
        .args(["--", "/bin/cat", "/proc/self/cgroup"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "berth-run with berth-oci's id: {}",
        text(&o.stderr)
    );
    let st = berth::State::load(Some(&b.root), &b.id).unwrap();
    let cg = st.cgroup.unwrap();
    assert!(
        cg.ends_with(format!("berth-oci/{}", b.id)),
        "berth-oci's cgroup: {cg:?}"
    );
    b.ok_with(&[], &["delete", "--force", "ID"]);
}

/// The `CapInh:` mask of `/proc/self/status` printed by a container whose
/// bundle's process has these fields (`capabilities`, or none).
fn cap_inh(process: Value) -> String {
    let b = bundle(
        &["/bin/grep", "CapInh", "/proc/self/status"],
        process,
        json!({}),
    );
    b.ok_with(&[], &["run", "--bundle", "{}", "ID"])
        .trim()
        .to_string()
}

/// Item 10: no inheritable capabilities unless the bundle asks for them
/// (CVE-2022-24769), whether the bundle lists other sets, an empty
/// inheritable set, or no capabilities at all. A guard: berth-oci already
/// passed the bundle's set through before issue 20 (the library's default
/// was what filled it, tested in container/tests/default_hardening.rs).
#[test]
fn inheritable_set_is_empty_unless_asked() {
    berth_testkit::privileged!();
    let some = json!(["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    for process in [
        json!({ "capabilities": { "bounding": some, "effective": some, "permitted": some } }),
        json!({ "capabilities": { "bounding": some, "effective": some, "permitted": some,
            "inheritable": [] } }),
        json!({ "capabilities": {} }),
        json!({}),
    ] {
        assert_eq!(
            cap_inh(process.clone()),
            "CapInh:\t0000000000000000",
            "{process}"
        );
    }
    // Asked for: given (CAP_KILL is bit 5).
    let asked = json!({ "capabilities": { "bounding": some, "effective": some,
        "permitted": some, "inheritable": ["CAP_KILL"] } });
    assert_eq!(cap_inh(asked), "CapInh:\t0000000000000020");
}

/// The cgroup2 mount and whether its root offers `pids`.
fn cgroup2_has_pids() -> (PathBuf, bool) {
    let h = berth_cgroups::Hierarchy::discover().unwrap();
    let has = h
        .root_controllers()
        .unwrap()
        .contains(berth_cgroups::Controller::Pids);
    (h.mount_point().to_path_buf(), has)
}

/// Every directory under `dir` whose name is `name`.
fn find_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    let out = Command::new("find")
        .arg(dir)
        .args(["-name", name, "-type", "d"])
        .output()
        .unwrap();
    text(&out.stdout).lines().map(PathBuf::from).collect()
}

/// Item 11: a bundle with a pids limit on a host whose cgroup2 has no
/// pids controller: `create` fails naming the controller and where it is
/// bound, leaving nothing; with `--allow-unenforced-limits` or
/// `BERTH_OCI_ALLOW_UNENFORCED_LIMITS=1` it runs, with a warning.
#[test]
fn unenforceable_limits_are_refused_unless_allowed() {
    berth_testkit::privileged!();
    let (mount, has_pids) = cgroup2_has_pids();
    if has_pids {
        println!("skipped: this host's cgroup2 offers pids (the limit is enforced)");
        return;
    }
    let b = bundle(
        &["/bin/echo", "ran"],
        json!({}),
        json!({ "resources": { "pids": { "limit": 20 }, "memory": { "limit": 67108864 } } }),
    );
    let children = berth_testkit::child_pids();
    let o = b.out(&[], &["create", "--bundle", "{}", "ID"]);
    let err = text(&o.stderr);
    assert!(
        !o.status.success(),
        "create with an unenforceable pids limit ran"
    );
    assert!(err.contains("pids") && err.contains("memory"), "{err}");
    assert!(err.contains("--allow-unenforced-limits"), "{err}");
    assert!(err.contains("cgroup v1") || err.contains("bound"), "{err}");
    // Nothing left: no state, no metadata, no cgroup, no process.
    assert!(!b.root.join(&b.id).exists());
    let meta: Vec<_> = std::fs::read_dir(b.root.join(".meta"))
        .map(|rd| rd.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(meta.is_empty(), "{meta:?}");
    assert_eq!(find_named(&mount, &b.id), Vec::<PathBuf>::new());
    // (Other tests' berth-oci commands may be children of this process
    // too, at any moment: only ours, named by the id, count.)
    let ours = |pids: Vec<u32>| -> Vec<String> {
        pids.iter()
            .map(|p| std::fs::read_to_string(format!("/proc/{p}/cmdline")).unwrap_or_default())
            .filter(|c| c.contains(b.id.as_str()))
            .collect()
    };
    assert_eq!(ours(berth_testkit::child_pids()), ours(children));
    let holders = Command::new("pgrep").args(["-f", &b.id]).output().unwrap();
    assert!(holders.stdout.is_empty(), "{}", text(&holders.stdout));

    // The flag: runs, and the log names what is not enforced.
    let log = b.bundle().join("log");
    let out = b.ok_with(
        &["--allow-unenforced-limits", "--log", log.to_str().unwrap()],
        &["run", "--bundle", "{}", "ID"],
    );
    assert_eq!(out, "ran\n");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("not enforced") && logged.contains("pids"),
        "{logged}"
    );
    // The environment variable: runs.
    let o = b
        .cmd_with(&[], &["run", "--bundle", "{}", "ID"])
        .env("BERTH_OCI_ALLOW_UNENFORCED_LIMITS", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "ran\n");
    // Any other value is not an opt-in.
    let o = b
        .cmd_with(&[], &["run", "--bundle", "{}", "ID"])
        .env("BERTH_OCI_ALLOW_UNENFORCED_LIMITS", "0")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(!b.root.join(&b.id).exists());
    assert_eq!(find_named(&mount, &b.id), Vec::<PathBuf>::new());
}
