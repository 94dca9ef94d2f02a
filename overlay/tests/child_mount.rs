//! `Overlay::prepare_child_mount`: the mount made by a forked child in a
//! mount namespace of its own (raw syscalls only), by each method; the
//! layers are visible, a write lands in the upper layer, the source is
//! named `overlay`, and the host sees no mount.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use berth_overlay::{MountMethod, Overlay};

fn c(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// In a forked child: a private mount namespace, the prepared mount, then
/// checks on the merged tree. Returns the child's exit code (0: all good).
fn mount_in_child(
    m: &berth_overlay::ChildOverlay,
    lower_file: &CString,
    new_file: &CString,
) -> i32 {
    // SAFETY: the child makes raw syscalls only (ChildOverlay::mount's
    // contract; a stack buffer) and leaves with _exit.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0);
        if pid == 0 {
            if libc::unshare(libc::CLONE_NEWNS) < 0
                || libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) < 0
            {
                libc::_exit(10);
            }
            if m.mount().is_err() {
                libc::_exit(11);
            }
            if libc::access(lower_file.as_ptr(), libc::R_OK) < 0 {
                libc::_exit(12);
            }
            let fd = libc::open(new_file.as_ptr(), libc::O_WRONLY | libc::O_CREAT, 0o644);
            if fd < 0 {
                libc::_exit(13);
            }
            libc::close(fd);
            let mi = libc::open(c"/proc/self/mountinfo".as_ptr(), libc::O_RDONLY);
            let mut buf = [0u8; 65536];
            let mut len = 0usize;
            loop {
                let n = libc::read(mi, buf[len..].as_mut_ptr().cast(), buf.len() - len);
                if n <= 0 {
                    break;
                }
                len += n as usize;
            }
            let want = b" - overlay overlay ";
            if !buf[..len].windows(want.len()).any(|w| w == want) {
                libc::_exit(14);
            }
            libc::_exit(0);
        }
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        libc::WEXITSTATUS(status)
    }
}

#[test]
fn each_method_mounts_in_a_child() {
    berth_testkit::privileged!();
    for method in [MountMethod::Auto, MountMethod::Legacy, MountMethod::Append] {
        let tmp = tempfile::tempdir().unwrap();
        for d in ["lower", "upper", "work", "merged"] {
            fs::create_dir(tmp.path().join(d)).unwrap();
        }
        fs::write(tmp.path().join("lower/from-lower"), "x").unwrap();
        let merged = tmp.path().join("merged");
        let m = Overlay::new()
            .lower(tmp.path().join("lower"))
            .upper(tmp.path().join("upper"))
            .work(tmp.path().join("work"))
            .method(method)
            .prepare_child_mount(&merged)
            .unwrap();
        let code = mount_in_child(&m, &c(&merged.join("from-lower")), &c(&merged.join("new")));
        assert_eq!(code, 0, "{method:?}: child failed at check {code}");
        assert!(tmp.path().join("upper/new").exists(), "{method:?}");
        let host = fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !host.contains(merged.to_str().unwrap()),
            "{method:?}: a host mount"
        );
    }
}
