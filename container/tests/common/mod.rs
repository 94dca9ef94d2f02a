//! Helpers shared by the container tests.
#![allow(dead_code)]

use std::path::PathBuf;

use berth::{Container, ContainerBuilder, Rootfs, Stdio};

/// A private state root per test, so tests never see each other's containers.
pub fn state_root() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("berth-state-")
        .tempdir_in("/run")
        .expect("state root")
}

/// A builder on the busybox rootfs (as a bind-mounted directory).
pub fn busybox(id: &str, root: &tempfile::TempDir) -> ContainerBuilder {
    Container::builder(id)
        .rootfs(Rootfs::dir(berth_testkit::busybox_rootfs()))
        .state_root(root.path())
        .stdin(Stdio::Null)
}

/// Run `sh -c script` in the container built by `b`, return (status, stdout, stderr).
pub fn sh(b: ContainerBuilder, script: &str) -> (std::process::ExitStatus, String, String) {
    use std::io::Read;
    let mut c = b
        .command(["/bin/sh", "-c", script])
        .stdout(Stdio::Piped)
        .stderr(Stdio::Piped)
        .spawn()
        .expect("spawn");
    let mut err = String::new();
    let mut errpipe = c.stderr.take().unwrap();
    let h = std::thread::spawn(move || {
        let _ = errpipe.read_to_string(&mut err);
        err
    });
    let mut out = String::new();
    c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let err = h.join().unwrap();
    let st = c.wait().expect("wait");
    c.destroy().expect("destroy");
    (st, out, err)
}

/// Everything a container could leave behind on the host.
#[derive(Debug, PartialEq, Eq)]
pub struct Footprint {
    pub mounts: Vec<String>,
    pub cgroups: Vec<String>,
    pub links: Vec<String>,
    pub state: Vec<PathBuf>,
}

pub fn cgroup_parent() -> PathBuf {
    let h = berth_cgroups::Hierarchy::discover().unwrap();
    h.own_cgroup_dir().join("berth")
}

pub fn footprint(root: &std::path::Path, id: &str) -> Footprint {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(id))
        .map(String::from)
        .collect();
    let cgroups = std::fs::read_dir(cgroup_parent())
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(id))
                .collect()
        })
        .unwrap_or_default();
    let links = berth_testkit::run("ip", &["-o", "link"])
        .lines()
        .filter(|l| l.contains(id))
        .map(String::from)
        .collect();
    let state = std::fs::read_dir(root)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    Footprint {
        mounts,
        cgroups,
        links,
        state,
    }
}

/// Assert the container `id` left nothing: no mount, cgroup, link or state.
pub fn assert_no_footprint(root: &std::path::Path, id: &str) {
    assert_eq!(
        footprint(root, id),
        Footprint {
            mounts: vec![],
            cgroups: vec![],
            links: vec![],
            state: vec![]
        }
    );
}

/// The body of an owner-helper test (run in a process of its own): spawn
/// `b` running `sleep 300`, print `ready <pid>`, wait to be killed.
pub fn own_until_killed(b: ContainerBuilder) {
    let c = b.command(["/bin/sleep", "300"]).spawn().unwrap();
    println!("ready {}", c.pid());
    std::thread::sleep(std::time::Duration::from_secs(300));
}

/// What a rootless test needs before it re-executes itself as uid/gid
/// 65534: a busybox rootfs owned by that user (as rootless images are
/// unpacked: files of an unmapped owner cannot be copied up, EOVERFLOW), a
/// copy of the test binary it can execute, and a state root it owns.
pub struct AsNobody {
    pub rootfs: tempfile::TempDir,
    pub dir: tempfile::TempDir,
    pub exe: PathBuf,
    pub state: PathBuf,
}

impl AsNobody {
    pub fn new() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let rootfs = berth_testkit::busybox_rootfs_copy();
        std::fs::set_permissions(rootfs.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(berth_testkit::run_ok(
            "chown",
            &["-R", "65534:65534", &rootfs.path().display().to_string()]
        ));
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let exe = dir.path().join("rootless-test");
        std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        // The state root belongs to the rootless user (one it does not own,
        // or others can write, is refused).
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
        Self {
            rootfs,
            dir,
            exe,
            state,
        }
    }

    /// Run test `test` of the copied binary as 65534 (after `prefix`, e.g.
    /// `ip netns exec NAME`) with `env_key` = `<state>:<rootfs>`; asserts it
    /// succeeded and printed `ok_marker`.
    pub fn run(&self, prefix: &[&str], test: &str, env_key: &str, ok_marker: &str) {
        let mut argv: Vec<&str> = prefix.to_vec();
        argv.extend([
            "setpriv",
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
        ]);
        let out = std::process::Command::new(argv[0])
            .args(&argv[1..])
            .arg(&self.exe)
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(
                env_key,
                format!("{}:{}", self.state.display(), self.rootfs.path().display()),
            )
            .env_remove("XDG_RUNTIME_DIR")
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains(ok_marker),
            "{test} as nobody failed: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Voluntary context switches of the calling thread (each sleep in a
/// syscall that was woken counts one): a waiter that polls on a timer
/// wakes many times, one asleep on its fds about once.
pub fn own_wakeups() -> u64 {
    std::fs::read_to_string("/proc/thread-self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}
