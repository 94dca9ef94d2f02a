//! Overlay mounts: lower/upper semantics, 128 layers, detached mounts,
//! options, errors that leave nothing behind, and a rootless mount.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_overlay::{Error, MountMethod, Overlay, RedirectDir};
use common::make_layers;

/// Tests in this binary count mounts and fds of the whole process: run them one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

struct Dirs {
    tmp: tempfile::TempDir,
}

impl Dirs {
    fn new() -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("berth-ov-mnt")
            .tempdir()
            .unwrap();
        for d in ["lower", "upper", "work", "merged"] {
            fs::create_dir(tmp.path().join(d)).unwrap();
        }
        Self { tmp }
    }
    fn p(&self, s: &str) -> PathBuf {
        self.tmp.path().join(s)
    }
}

fn mountinfo_line(target: &Path) -> Option<String> {
    let t = target.display().to_string();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(t.as_str()))
        .map(str::to_string)
}

#[test]
fn lower_upper_semantics() {
    berth_testkit::privileged!();
    let _serial = serial();
    let d = Dirs::new();
    fs::write(d.p("lower/from-lower"), "lower\n").unwrap();
    fs::write(d.p("lower/shadowed"), "lower version\n").unwrap();
    fs::write(d.p("lower/doomed"), "bye\n").unwrap();
    fs::write(d.p("upper/shadowed"), "upper version\n").unwrap();
    let before = berth_testkit::mount_count();
    let m = Overlay::new()
        .lower(d.p("lower"))
        .upper(d.p("upper"))
        .work(d.p("work"))
        .mount(d.p("merged"))
        .unwrap();
    assert!(mountinfo_line(&d.p("merged"))
        .unwrap()
        .contains(" - overlay "));
    let mg = d.p("merged");
    assert_eq!(
        fs::read_to_string(mg.join("from-lower")).unwrap(),
        "lower\n"
    );
    assert_eq!(
        fs::read_to_string(mg.join("shadowed")).unwrap(),
        "upper version\n"
    );
    fs::write(mg.join("new"), "new\n").unwrap();
    fs::remove_file(mg.join("doomed")).unwrap();
    assert!(!mg.join("doomed").exists());
    // Writes land in upper; the lower is untouched; the deletion is a whiteout.
    assert_eq!(fs::read_to_string(d.p("upper/new")).unwrap(), "new\n");
    assert!(!d.p("lower/new").exists());
    assert_eq!(fs::read_to_string(d.p("lower/doomed")).unwrap(), "bye\n");
    let wh = fs::symlink_metadata(d.p("upper/doomed")).unwrap();
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "whiteout is a 0:0 char device"
    );
    m.unmount().unwrap();
    assert_eq!(berth_testkit::mount_count(), before);
    assert!(!mg.join("from-lower").exists());
}

fn check_128(method: MountMethod, detached: bool) {
    let d = Dirs::new();
    let layers = make_layers(d.tmp.path(), 128);
    let classic: usize = layers.iter().map(|l| l.as_os_str().len() + 1).sum();
    assert!(
        classic > 4096,
        "the classic lowerdir string ({classic} bytes) must exceed a page"
    );
    let before = berth_testkit::mount_count();
    let ov = Overlay::new()
        .lowers(&layers)
        .upper(d.p("upper"))
        .work(d.p("work"))
        .method(method);
    let m = if detached {
        ov.mount_detached().unwrap().attach(d.p("merged")).unwrap()
    } else {
        ov.mount(d.p("merged")).unwrap()
    };
    let mg = d.p("merged");
    for i in 0..128 {
        assert_eq!(
            fs::read_to_string(mg.join(format!("file-{i}"))).unwrap(),
            format!("{i}\n")
        );
    }
    assert_eq!(
        fs::read_to_string(mg.join("who")).unwrap(),
        "0\n",
        "first lower is the top one"
    );
    m.unmount().unwrap();
    assert_eq!(berth_testkit::mount_count(), before);
}

#[test]
fn mount_128_layers_new_api() {
    berth_testkit::privileged!();
    let _serial = serial();
    check_128(MountMethod::Auto, false);
}

#[test]
fn mount_128_layers_legacy_string() {
    berth_testkit::privileged!();
    let _serial = serial();
    check_128(MountMethod::Legacy, false);
}

/// Layer, upper and work paths longer than the 255 bytes `fsconfig(2)`
/// copies of a string: passed by `O_PATH` descriptor (`FSCONFIG_SET_FD`,
/// Linux ≥ 6.15) or as `/proc/self/fd/N`, and through `mount(2)` likewise.
fn check_long_paths(method: MountMethod) {
    let d = Dirs::new();
    let mut deep = d.tmp.path().to_path_buf();
    for i in 0..4 {
        deep.push(format!("{i}-{}", "d".repeat(70)));
    }
    fs::create_dir_all(&deep).unwrap();
    let layers = make_layers(&deep, 3);
    let (upper, work) = (deep.join("upper"), deep.join("work"));
    fs::create_dir(&upper).unwrap();
    fs::create_dir(&work).unwrap();
    for p in layers.iter().chain([&upper, &work]) {
        assert!(p.as_os_str().len() > 255, "{}", p.display());
    }
    let before = berth_testkit::mount_count();
    let fds_before = berth_testkit::open_fds();
    let m = Overlay::new()
        .lowers(&layers)
        .upper(&upper)
        .work(&work)
        .method(method)
        .mount(d.p("merged"))
        .unwrap();
    let mg = d.p("merged");
    for i in 0..3 {
        assert_eq!(
            fs::read_to_string(mg.join(format!("file-{i}"))).unwrap(),
            format!("{i}\n")
        );
    }
    assert_eq!(fs::read_to_string(mg.join("who")).unwrap(), "0\n");
    fs::write(mg.join("new"), "new\n").unwrap();
    assert_eq!(fs::read_to_string(upper.join("new")).unwrap(), "new\n");
    // The descriptors opened for the long paths are closed again.
    assert_eq!(berth_testkit::open_fds(), fds_before);
    m.unmount().unwrap();
    assert_eq!(berth_testkit::mount_count(), before);
}

#[test]
fn long_paths_new_api() {
    berth_testkit::privileged!();
    let _serial = serial();
    check_long_paths(MountMethod::Auto);
}

#[test]
fn long_paths_legacy_string() {
    berth_testkit::privileged!();
    let _serial = serial();
    check_long_paths(MountMethod::Legacy);
}

#[test]
fn detached_mount_attached_later() {
    berth_testkit::privileged!();
    let _serial = serial();
    check_128(MountMethod::Auto, true);
    check_128(MountMethod::Legacy, true);
    // A detached mount that is never attached leaves nothing mounted.
    let d = Dirs::new();
    let layers = make_layers(d.tmp.path(), 2);
    let before = berth_testkit::mount_count();
    let fds = berth_testkit::open_fds();
    let det = Overlay::new().lowers(&layers).mount_detached().unwrap();
    drop(det.into_fd());
    assert_eq!(berth_testkit::mount_count(), before);
    assert_eq!(berth_testkit::open_fds(), fds);
}

#[test]
fn read_only_overlay_refuses_writes() {
    berth_testkit::privileged!();
    let _serial = serial();
    let d = Dirs::new();
    let layers = make_layers(d.tmp.path(), 2);
    let m = Overlay::new().lowers(&layers).mount(d.p("merged")).unwrap();
    assert_eq!(fs::read_to_string(d.p("merged/who")).unwrap(), "0\n");
    let err = fs::write(d.p("merged/x"), "x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    m.unmount().unwrap();
}

#[test]
fn options_reach_the_kernel() {
    berth_testkit::privileged!();
    let _serial = serial();
    let d = Dirs::new();
    let m = Overlay::new()
        .lower(d.p("lower"))
        .upper(d.p("upper"))
        .work(d.p("work"))
        .volatile()
        .index(true)
        .metacopy(false)
        .redirect_dir(RedirectDir::NoFollow)
        .mount(d.p("merged"))
        .unwrap();
    let line = mountinfo_line(&d.p("merged")).unwrap();
    // Linux ≥ 6.x shows `volatile` as `fsync=volatile`.
    for opt in ["volatile", "index=on", "redirect_dir=nofollow"] {
        assert!(line.contains(opt), "{opt} missing in {line}");
    }
    assert!(!line.contains("metacopy=on"), "{line}");
    m.unmount().unwrap();
}

#[test]
fn bad_config_is_a_clear_error_and_leaves_nothing() {
    berth_testkit::privileged!();
    let _serial = serial();
    let d = Dirs::new();
    let (mounts, fds) = (berth_testkit::mount_count(), berth_testkit::open_fds());
    let missing = d.p("no-such-layer");
    let err = Overlay::new()
        .lower(d.p("lower"))
        .lower(&missing)
        .upper(d.p("upper"))
        .work(d.p("work"))
        .mount(d.p("merged"))
        .unwrap_err();
    match &err {
        Error::MissingDir {
            role: "lower",
            path,
        } => assert_eq!(path, &missing),
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("no-such-layer"), "{err}");
    for method in [MountMethod::Legacy, MountMethod::Append] {
        let err = Overlay::new()
            .lower(&missing)
            .lower(d.p("lower"))
            .method(method)
            .mount_detached()
            .unwrap_err();
        assert!(
            matches!(&err, Error::MissingDir { role: "lower", path } if *path == missing),
            "{method:?}: {err:?}"
        );
    }
    let err = Overlay::new()
        .lower(d.p("lower"))
        .upper(d.p("upper"))
        .mount(d.p("merged"))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
    let err = Overlay::new().mount(d.p("merged")).unwrap_err();
    assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
    // The kernel refuses: work dir on another filesystem than upper (/dev/shm is tmpfs).
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    let err = Overlay::new()
        .lower(d.p("lower"))
        .upper(d.p("upper"))
        .work(shm.path())
        .mount(d.p("merged"))
        .unwrap_err();
    assert!(matches!(err, Error::Mount { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("merged"), "{msg}");
    assert_eq!(berth_testkit::mount_count(), mounts);
    assert_eq!(berth_testkit::open_fds(), fds);
}

#[test]
fn unmount_reports_busy_and_drop_cleans_up() {
    berth_testkit::privileged!();
    let _serial = serial();
    let d = Dirs::new();
    fs::write(d.p("lower/f"), "x").unwrap();
    let before = berth_testkit::mount_count();
    let m = Overlay::new()
        .lower(d.p("lower"))
        .upper(d.p("upper"))
        .work(d.p("work"))
        .mount(d.p("merged"))
        .unwrap();
    let busy = fs::File::open(d.p("merged/f")).unwrap();
    let err = m.unmount().unwrap_err();
    match &err {
        Error::Unmount { source, .. } => assert_eq!(source.raw_os_error(), Some(libc::EBUSY)),
        other => panic!("unexpected {other:?}"),
    }
    // The guard was dropped on error: it detached the mount lazily.
    assert_eq!(berth_testkit::mount_count(), before);
    drop(busy);
    let m = Overlay::new()
        .lower(d.p("lower"))
        .upper(d.p("upper"))
        .work(d.p("work"))
        .mount(d.p("merged"))
        .unwrap();
    drop(m);
    assert_eq!(berth_testkit::mount_count(), before);
}

const HELPER_ENV: &str = "BERTH_OVERLAY_ROOTLESS_DIR";

/// Run by `rootless_mount_in_user_namespace` inside `unshare -Urm` as uid 65534.
#[test]
#[ignore = "helper: run by rootless_mount_in_user_namespace"]
fn rootless_helper() {
    let dir = PathBuf::from(std::env::var(HELPER_ENV).expect("helper env"));
    let uid_map = fs::read_to_string("/proc/self/uid_map").unwrap();
    assert_eq!(
        uid_map.split_whitespace().collect::<Vec<_>>(),
        ["0", "65534", "1"],
        "not in the expected user namespace"
    );
    let m = Overlay::new()
        .lower(dir.join("lower"))
        .upper(dir.join("upper"))
        .work(dir.join("work"))
        .userxattr()
        .mount(dir.join("merged"))
        .unwrap();
    let mg = dir.join("merged");
    assert_eq!(
        fs::read_to_string(mg.join("from-lower")).unwrap(),
        "lower\n"
    );
    fs::write(mg.join("new"), "rootless\n").unwrap();
    fs::remove_file(mg.join("doomed")).unwrap();
    fs::create_dir(mg.join("newdir")).unwrap();
    m.unmount().unwrap();

    // Unpack a layer with user.* whiteout metadata inside the user namespace
    // and stack it with userxattr: its whiteout and opaque dir take effect.
    let tar = common::RawTar::new()
        .file(".wh.doomed", b"")
        .dir("opq")
        .file("opq/.wh..wh..opq", b"")
        .file("opq/mine", b"mine\n")
        .finish();
    let opts = berth_overlay::UnpackOptions {
        whiteouts: berth_overlay::WhiteoutFormat::UserXattr,
        ..Default::default()
    };
    berth_overlay::unpack(&tar[..], &dir.join("layer2"), &opts).unwrap();
    let m = Overlay::new()
        .lower(dir.join("layer2"))
        .lower(dir.join("lower"))
        .upper(dir.join("upper2"))
        .work(dir.join("work2"))
        .userxattr()
        .mount(dir.join("merged2"))
        .unwrap();
    let mg = dir.join("merged2");
    assert!(
        !mg.join("doomed").exists(),
        "whiteout from the unpacked layer hides the lower file"
    );
    assert!(mg.join("from-lower").exists());
    let names: Vec<_> = fs::read_dir(mg.join("opq"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        ["mine"],
        "user.overlay.opaque hides the lower directory's content"
    );
    m.unmount().unwrap();
}

#[test]
fn rootless_mount_in_user_namespace() {
    berth_testkit::privileged!();
    let _serial = serial();
    let d = Dirs::new();
    fs::set_permissions(d.tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(d.p("lower/from-lower"), "lower\n").unwrap();
    fs::write(d.p("lower/doomed"), "bye\n").unwrap();
    fs::create_dir(d.p("lower/opq")).unwrap();
    fs::write(d.p("lower/opq/hidden"), "h\n").unwrap();
    for s in [
        "upper", "work", "merged", "layer2", "upper2", "work2", "merged2",
    ] {
        fs::create_dir_all(d.p(s)).unwrap();
        std::os::unix::fs::chown(d.p(s), Some(65534), Some(65534)).unwrap();
    }
    // A copy of this test binary that uid 65534 can execute.
    let exe = d.p("helper");
    fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "unshare",
            "-Urm",
            "--",
        ])
        .arg(&exe)
        .args([
            "--exact",
            "rootless_helper",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_ENV, d.tmp.path())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "helper failed: {text}");
    assert!(text.contains("1 passed"), "helper did not run: {text}");
    // Seen from the host: the change is in upper, owned by the unprivileged user,
    // with a whiteout for the deleted file and user.* (not trusted.*) xattrs.
    let newf = fs::metadata(d.p("upper/new")).unwrap();
    assert_eq!(newf.uid(), 65534);
    assert_eq!(fs::read_to_string(d.p("upper/new")).unwrap(), "rootless\n");
    let wh = fs::symlink_metadata(d.p("upper/doomed")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
    assert!(d.p("upper/newdir").is_dir());
    assert_eq!(fs::read_to_string(d.p("lower/doomed")).unwrap(), "bye\n");
    // No mount leaked into the host namespace.
    assert!(mountinfo_line(&d.p("merged")).is_none());
}

const MOVE_FD_ENV: &str = "BERTH_OVERLAY_MOVE_FD";

/// Run by `detached_mount_moves_into_another_mount_namespace` inside `unshare -m`.
#[test]
#[ignore = "helper: run by detached_mount_moves_into_another_mount_namespace"]
fn move_helper() {
    use std::os::unix::ffi::OsStrExt;
    let fd: i32 = std::env::var(MOVE_FD_ENV)
        .expect("helper env")
        .parse()
        .unwrap();
    let target = PathBuf::from(std::env::var(HELPER_ENV).unwrap());
    let c = std::ffi::CString::new(target.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid fd and C strings; MOVE_MOUNT_F_EMPTY_PATH = 4.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            fd,
            c"".as_ptr(),
            libc::AT_FDCWD,
            c.as_ptr(),
            4u32,
        )
    };
    assert_eq!(r, 0, "move_mount: {}", std::io::Error::last_os_error());
    assert_eq!(fs::read_to_string(target.join("who")).unwrap(), "0\n");
}

#[test]
fn detached_mount_moves_into_another_mount_namespace() {
    berth_testkit::privileged!();
    let _serial = serial();
    use std::os::fd::AsRawFd;
    let d = Dirs::new();
    let layers = make_layers(d.tmp.path(), 2);
    let fd = Overlay::new()
        .lowers(&layers)
        .mount_detached()
        .unwrap()
        .into_fd();
    // Let the child inherit it (fsmount made it CLOEXEC).
    // SAFETY: valid fd; clearing FD_CLOEXEC.
    assert_eq!(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, 0) }, 0);
    let out = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "--"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "move_helper",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(MOVE_FD_ENV, fd.as_raw_fd().to_string())
        .env(HELPER_ENV, d.p("merged"))
        .output()
        .unwrap();
    drop(fd);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "helper failed: {text}"
    );
    // Attached only in the child's namespace, gone with it.
    assert!(mountinfo_line(&d.p("merged")).is_none());
    assert!(!d.p("merged/who").exists());
}
