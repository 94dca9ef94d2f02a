//! The layer store is private to its owner (issue 20, item 3; the
//! CVE-2021-41091 class): a layer keeps an image's setuid binaries and
//! device nodes, so no local user may reach anything below the store root.

mod common;

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use berth_overlay::{ImportOptions, LayerStore};
use common::RawTar;

/// The unprivileged user the attacks run as.
const NOBODY: libc::uid_t = 65534;

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

fn set_mode(p: &Path, m: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// `f`'s errno (0 for success) when run as uid/gid 65534 (see
/// [`berth_testkit::as_user`]).
fn as_nobody(f: impl Fn() -> libc::c_int) -> libc::c_int {
    berth_testkit::as_user(NOBODY, NOBODY, f)
}

fn errno() -> libc::c_int {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn errname(e: libc::c_int) -> String {
    if e == 0 {
        "success".into()
    } else {
        std::io::Error::from_raw_os_error(e).to_string()
    }
}

#[test]
fn store_hides_setuid_binaries_and_device_nodes_from_local_users() {
    berth_testkit::privileged!();
    let tmp = tempfile::tempdir().unwrap();
    // Every user may walk up to the store, as anyone may walk /var/lib.
    set_mode(tmp.path(), 0o755);
    let root = tmp.path().join("store");
    // A store an older berth made: every directory 0755, the lock 0644.
    for d in ["layers/sha256", "tmp", "refs"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    for d in ["", "layers", "layers/sha256", "tmp", "refs"] {
        set_mode(&root.join(d), 0o755);
    }
    fs::write(root.join("lock"), b"").unwrap();
    set_mode(&root.join("lock"), 0o644);

    let store = LayerStore::open(&root).unwrap();
    // An image shipping a setuid-root busybox and a 0666 /dev/null twin
    // (1:3; 1:1 would be /dev/mem).
    let busybox = fs::read(berth_testkit::busybox_binary()).unwrap();
    let tar = RawTar::new()
        .dir("bin")
        .file_mode("bin/suid", &busybox, 0o4755)
        .dir("dev")
        .chardev("dev/null0", 1, 3, 0o666)
        .finish();
    let layer = store.import(&tar[..], &ImportOptions::default()).unwrap();
    let suid = layer.dir.join("bin/suid");
    let dev = layer.dir.join("dev/null0");

    // The layer's content keeps its modes: the image's setuid binary and
    // device still work inside a container.
    let m = fs::metadata(&suid).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid()), (0o4755, 0), "{suid:?}");
    let m = fs::symlink_metadata(&dev).unwrap();
    assert!(m.file_type().is_char_device(), "{dev:?}");
    assert_eq!((m.mode() & 0o7777, m.rdev()), (0o666, libc::makedev(1, 3)));

    // As an unprivileged local user, nothing below the store is reachable.
    let (c_suid, c_dev, c_root) = (cstr(&suid), cstr(&dev), cstr(&root));
    let argv = [c"true".as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null::<libc::c_char>()];
    let stat = as_nobody(|| {
        // SAFETY: a valid path and a stat buffer on the child's stack.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::stat(c_suid.as_ptr(), &mut st) } == 0 {
            0
        } else {
            errno()
        }
    });
    assert_eq!(
        stat,
        libc::EACCES,
        "stat {suid:?} as uid {NOBODY}: {}",
        errname(stat)
    );
    let exec = as_nobody(|| {
        // SAFETY: valid argv/envp arrays; returns only on failure.
        unsafe { libc::execve(c_suid.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        errno()
    });
    assert_eq!(
        exec,
        libc::EACCES,
        "execve {suid:?} (setuid root) as uid {NOBODY}: {}",
        errname(exec)
    );
    let open = as_nobody(|| {
        // SAFETY: a valid path; the fd dies with the child.
        if unsafe { libc::open(c_dev.as_ptr(), libc::O_RDWR) } >= 0 {
            0
        } else {
            errno()
        }
    });
    assert_eq!(
        open,
        libc::EACCES,
        "open {dev:?} (0666 char 1:3) as uid {NOBODY}: {}",
        errname(open)
    );
    let list = as_nobody(|| {
        // SAFETY: a valid path; the fd dies with the child.
        if unsafe { libc::open(c_root.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) } >= 0 {
            0
        } else {
            errno()
        }
    });
    assert_eq!(
        list,
        libc::EACCES,
        "open {root:?} as uid {NOBODY}: {}",
        errname(list)
    );

    // The pre-existing 0755 store was tightened on open, and what the
    // store made itself is private too.
    let layer_dir = layer.dir.parent().unwrap();
    for d in [
        root.clone(),
        root.join("layers"),
        root.join("layers/sha256"),
        root.join("tmp"),
        root.join("refs"),
        layer_dir.to_path_buf(),
    ] {
        assert_eq!(mode(&d), 0o700, "{d:?}");
    }
    assert_eq!(mode(&root.join("lock")), 0o600);
    assert_eq!(mode(&layer_dir.join("layer.json")), 0o600);
    store
        .set_ref("img", std::slice::from_ref(&layer.digest))
        .unwrap();
    for e in fs::read_dir(root.join("refs")).unwrap() {
        assert_eq!(mode(&e.unwrap().path()), 0o600);
    }
}

#[test]
fn store_of_another_user_is_refused() {
    berth_testkit::privileged!();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    fs::create_dir(&root).unwrap();
    std::os::unix::fs::chown(&root, Some(NOBODY), Some(NOBODY)).unwrap();
    let e = LayerStore::open(&root).unwrap_err().to_string();
    assert!(
        e.contains(&root.display().to_string()) && e.contains("uid 65534"),
        "{e}"
    );
    // Nothing was created in it.
    assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
    // Writable by others, even if ours: refused as well (anything in it
    // may have been planted).
    std::os::unix::fs::chown(&root, Some(0), Some(0)).unwrap();
    set_mode(&root, 0o777);
    let e = LayerStore::open(&root).unwrap_err().to_string();
    assert!(e.contains("0777") && e.contains("writable"), "{e}");
    assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
}
