//! VM tier: Debian's stock 6.1 kernel has the new mount API but not
//! `lowerdir+` (Linux 6.8), so this is where the fallback to the classic
//! option string (with `/proc/self/fd/N` paths past a page) is observed.

mod common;

use std::fs;
use std::path::PathBuf;

use berth_overlay::{Error, MountMethod, Overlay};
use common::make_layers;

fn kernel_before_6_8() -> bool {
    let rel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut it = rel
        .trim()
        .split(['.', '-'])
        .map(|x| x.parse::<u32>().unwrap_or(0));
    let (maj, min) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    (maj, min) < (6, 8)
}

/// A tmpfs scratch area: the VM's / is itself an overlay, which cannot be an upper layer.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let p = std::env::temp_dir().join(berth_testkit::unique_name("ovvm"));
        fs::create_dir_all(&p).unwrap();
        berth_testkit::run("mount", &["-t", "tmpfs", "tmpfs", p.to_str().unwrap()]);
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        berth_testkit::run_ok("umount", &["-l", self.0.to_str().unwrap()]);
        let _ = fs::remove_dir(&self.0);
    }
}

#[test]
fn auto_falls_back_to_the_legacy_string_for_128_layers() {
    berth_testkit::vm_only!();
    assert!(
        kernel_before_6_8(),
        "the VM kernel is expected to lack lowerdir+"
    );
    let s = Scratch::new();
    let ls = make_layers(&s.0, 128);
    for d in ["upper", "work", "merged", "merged2"] {
        fs::create_dir(s.0.join(d)).unwrap();
    }
    // Append only: a clear error naming lowerdir+.
    let err = Overlay::new()
        .lowers(&ls)
        .method(MountMethod::Append)
        .mount(s.0.join("merged"))
        .unwrap_err();
    assert!(matches!(err, Error::Mount { .. }), "{err:?}");
    assert!(err.to_string().contains("lowerdir+"), "{err}");
    // Auto: falls back and works, attached and detached (open_tree clone).
    let m = Overlay::new()
        .lowers(&ls)
        .upper(s.0.join("upper"))
        .work(s.0.join("work"))
        .mount(s.0.join("merged"))
        .unwrap();
    assert_eq!(fs::read_to_string(s.0.join("merged/who")).unwrap(), "0\n");
    assert_eq!(
        fs::read_to_string(s.0.join("merged/file-127")).unwrap(),
        "127\n"
    );
    fs::write(s.0.join("merged/new"), "x").unwrap();
    assert!(s.0.join("upper/new").is_file());
    m.unmount().unwrap();
    let before = berth_testkit::mount_count();
    let det = Overlay::new().lowers(&ls).mount_detached().unwrap();
    assert_eq!(
        berth_testkit::mount_count(),
        before,
        "the temporary mount was removed"
    );
    let m = det.attach(s.0.join("merged2")).unwrap();
    assert_eq!(
        fs::read_to_string(s.0.join("merged2/file-64")).unwrap(),
        "64\n"
    );
    m.unmount().unwrap();
    assert_eq!(berth_testkit::mount_count(), before);
}
