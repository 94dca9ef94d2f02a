//! State roots are private (issue 20, items 6 and 8): no other local user
//! can list the state root or read a container's `state.json`, an existing
//! root left open is tightened, and a rootless state root another user
//! made (or could write) is refused.

mod common;

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use berth::{Container, Rootfs, Stdio};

/// The unprivileged local user the checks run as.
const NOBODY: libc::uid_t = 65534;
/// The rootless user of the default-root tests: a uid of its own, so its
/// `/tmp/berth-<uid>` is no other test's.
const ROOTLESS_UID: libc::uid_t = 64520;
/// Set (to the busybox rootfs) when the test binary is re-executed as
/// [`ROOTLESS_UID`].
const INNER: &str = "BERTH_PRIVATE_STATE_INNER";

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

fn set_mode(p: &Path, m: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
}

/// `f`'s errno (0 for success) when run as uid/gid 65534 (see
/// [`berth_testkit::as_user`]).
fn as_nobody(f: impl Fn() -> libc::c_int) -> libc::c_int {
    berth_testkit::as_user(NOBODY, NOBODY, f)
}

/// `open(path, flags)` as uid 65534: the errno, or 0 when it opened.
fn open_as_nobody(path: &Path, flags: libc::c_int) -> String {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    let e = as_nobody(|| {
        // SAFETY: a valid path; the fd dies with the child.
        if unsafe { libc::open(c.as_ptr(), flags) } >= 0 {
            0
        } else {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
        }
    });
    if e == 0 {
        "opened".into()
    } else {
        std::io::Error::from_raw_os_error(e).to_string()
    }
}

fn eacces() -> String {
    std::io::Error::from_raw_os_error(libc::EACCES).to_string()
}

/// Item 8: a state root an older berth left 0755 is tightened to 0700 at
/// spawn, the container's directory is 0700 and its `state.json` 0600, and
/// another local user can neither list the root nor read the record.
#[test]
fn state_root_and_records_are_private_to_their_owner() {
    berth_testkit::privileged!();
    let root = common::state_root();
    set_mode(root.path(), 0o755);
    let id = berth_testkit::unique_name("priv");
    let mut c = common::busybox(&id, &root)
        .command(["/bin/sleep", "30"])
        .spawn()
        .unwrap();
    let dir = root.path().join(&id);
    let record = dir.join(berth::STATE_FILE);
    let list = open_as_nobody(root.path(), libc::O_RDONLY | libc::O_DIRECTORY);
    let read = open_as_nobody(&record, libc::O_RDONLY);
    let modes = (mode(root.path()), mode(&dir), mode(&record));
    c.kill().unwrap();
    c.wait().unwrap();
    c.destroy().unwrap();
    assert_eq!(
        list,
        eacces(),
        "uid {NOBODY} listing the state root {:?}",
        root.path()
    );
    assert_eq!(read, eacces(), "uid {NOBODY} reading {record:?}");
    assert_eq!(
        modes,
        (0o700, 0o700, 0o600),
        "root, container dir, state.json"
    );
    assert_eq!(fs::read_dir(root.path()).unwrap().count(), 0);
}

/// Item 8: the default root (`/run/berth` as root) is 0700 after a spawn.
#[test]
fn default_state_root_is_0700_after_a_spawn() {
    berth_testkit::privileged!();
    let id = berth_testkit::unique_name("privdef");
    let mut c = Container::builder(&id)
        .rootfs(Rootfs::dir(berth_testkit::busybox_rootfs()))
        .stdin(Stdio::Null)
        .command(["/bin/true"])
        .spawn()
        .unwrap();
    let root = berth::default_state_root();
    assert_eq!(root, Path::new("/run/berth"));
    let m = mode(&root);
    let rec = mode(&c.state_dir().join(berth::STATE_FILE));
    c.wait().unwrap();
    c.destroy().unwrap();
    assert_eq!((m, rec), (0o700, 0o600), "{root:?} and its record");
}

/// What the re-executed test prints: the default root, then whether a
/// rootless spawn with it worked.
#[test]
fn rootless_default_root_inner() {
    let Some(rootfs) = std::env::var_os(INNER) else {
        return;
    };
    // SAFETY: geteuid cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, ROOTLESS_UID);
    println!("ROOT {}", berth::default_state_root().display());
    println!("STORE {}", berth::default_store_dir().display());
    let r = Container::builder("private-rl")
        .rootless(true)
        .rootfs(Rootfs::dir(PathBuf::from(rootfs)))
        .stdin(Stdio::Null)
        .command(["/bin/true"])
        .spawn();
    match r {
        Ok(mut c) => {
            let st = c.wait().unwrap();
            c.destroy().unwrap();
            println!("SPAWNED {st:?}");
        }
        Err(e) => println!("REFUSED {e}"),
    }
}

/// Runs [`rootless_default_root_inner`] as [`ROOTLESS_UID`] with HOME
/// unset and `XDG_RUNTIME_DIR` as given; returns its stdout.
fn inner(exe: &Path, xdg: Option<&Path>) -> String {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid", &ROOTLESS_UID.to_string()])
        .args(["--regid", &ROOTLESS_UID.to_string(), "--clear-groups"])
        .arg(exe)
        .args([
            "rootless_default_root_inner",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INNER, berth_testkit::busybox_rootfs())
        .env_remove("HOME")
        .env_remove("XDG_RUNTIME_DIR")
        .current_dir("/");
    if let Some(x) = xdg {
        cmd.env("XDG_RUNTIME_DIR", x);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "inner run failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Removes `/tmp/berth-<uid>` (and the test's other paths) on drop.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = fs::remove_file(p);
            let _ = fs::remove_dir_all(p);
        }
    }
}

/// Item 6: without `XDG_RUNTIME_DIR` a rootless user's default root is
/// `/tmp/berth-<uid>`; one another user made (or one anyone can write, or
/// a symlink another user planted) is refused with an error naming the
/// path, owner and mode, and nothing is written in it; one of the user's
/// own left 0755 is tightened to 0700. `$XDG_RUNTIME_DIR` is used only
/// when it is the user's own and 0700.
#[test]
fn rootless_default_root_refuses_a_directory_another_user_made() {
    berth_testkit::privileged!();
    if std::env::var_os(INNER).is_some() {
        return;
    }
    let tmp = PathBuf::from(format!("/tmp/berth-{ROOTLESS_UID}"));
    let real = PathBuf::from(format!("/tmp/berth-{ROOTLESS_UID}-real"));
    let work = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup(vec![tmp.clone(), real.clone()]);
    let _ = fs::remove_dir_all(&tmp);
    let _ = fs::remove_file(&tmp);
    set_mode(work.path(), 0o755);
    let exe = work.path().join("private-state-test");
    fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    set_mode(&exe, 0o755);
    let own = |p: &Path, uid: u32| std::os::unix::fs::lchown(p, Some(uid), Some(uid)).unwrap();
    let tmp_s = tmp.display().to_string();
    let refused = |out: &str, what: &[&str]| {
        let line = out
            .lines()
            .find(|l| l.starts_with("REFUSED "))
            .unwrap_or_else(|| panic!("spawn was not refused: {out}"));
        for w in what {
            assert!(line.contains(w), "{w:?} not in {line:?}");
        }
    };

    // 1. Made by root, 0777: refused, nothing written in it.
    fs::create_dir(&tmp).unwrap();
    set_mode(&tmp, 0o777);
    let out = inner(&exe, None);
    assert!(out.contains(&format!("ROOT {tmp_s}\n")), "{out}");
    refused(&out, &[&tmp_s, "uid 0", "0777"]);
    // Without HOME the layer store is not under a shared /tmp/.local either.
    assert!(
        out.contains(&format!("STORE /tmp/berth-store-{ROOTLESS_UID}\n")),
        "{out}"
    );
    assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);

    // 2. The user's own but writable by others: refused too.
    own(&tmp, ROOTLESS_UID);
    let out = inner(&exe, None);
    refused(&out, &[&tmp_s, "0777", "writable"]);
    assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
    fs::remove_dir(&tmp).unwrap();

    // 3. A symlink another user planted, to a directory of the victim's.
    fs::create_dir(&real).unwrap();
    own(&real, ROOTLESS_UID);
    set_mode(&real, 0o700);
    std::os::unix::fs::symlink(&real, &tmp).unwrap();
    own(&tmp, NOBODY);
    let out = inner(&exe, None);
    refused(&out, &[&tmp_s, "symlink", "uid 65534"]);
    assert_eq!(fs::read_dir(&real).unwrap().count(), 0);
    fs::remove_file(&tmp).unwrap();

    // 4. The user's own, left 0755: tightened to 0700, and it works.
    fs::create_dir(&tmp).unwrap();
    own(&tmp, ROOTLESS_UID);
    set_mode(&tmp, 0o755);
    let out = inner(&exe, None);
    assert!(out.contains("SPAWNED"), "{out}");
    assert_eq!(mode(&tmp), 0o700);
    fs::remove_dir_all(&tmp).unwrap();

    // 5. Missing: created 0700, the user's.
    let out = inner(&exe, None);
    assert!(out.contains("SPAWNED"), "{out}");
    let m = fs::symlink_metadata(&tmp).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o7777), (ROOTLESS_UID, 0o700));
    assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);

    // 6. XDG_RUNTIME_DIR another user owns is not used; the user's own
    //    0700 one is.
    let xdg = work.path().join("xdg");
    fs::create_dir(&xdg).unwrap();
    set_mode(&xdg, 0o755);
    let out = inner(&exe, Some(&xdg));
    assert!(out.contains(&format!("ROOT {tmp_s}\n")), "{out}");
    own(&xdg, ROOTLESS_UID);
    set_mode(&xdg, 0o700);
    let out = inner(&exe, Some(&xdg));
    assert!(
        out.contains(&format!("ROOT {}\n", xdg.join("berth").display())),
        "{out}"
    );
    assert!(out.contains("SPAWNED"), "{out}");
    assert_eq!(mode(&xdg.join("berth")), 0o700);
}
