//! Unpacking layers: malicious archives are refused and write nothing outside
//! the layer root; metadata, links, special files and whiteouts are faithful.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use berth_overlay::{unpack, Error, UnpackOptions, WhiteoutFormat};
use common::{RawTar, Sandbox};

fn assert_refused(tar: Vec<u8>, expect_reason: &str) {
    let sbx = Sandbox::new();
    let before = sbx.outside_snapshot();
    let err = unpack(&tar[..], &sbx.root(), &UnpackOptions::default()).unwrap_err();
    match &err {
        Error::UnsafeEntry { reason, .. } => {
            assert!(
                reason.contains(expect_reason),
                "reason {reason:?} lacks {expect_reason:?}"
            )
        }
        other => panic!("expected UnsafeEntry, got {other:?}"),
    }
    assert_eq!(
        sbx.outside_snapshot(),
        before,
        "something outside the root changed"
    );
    assert_eq!(fs::read(sbx.dir.path().join("canary")).unwrap(), b"canary");
    // Nothing named like the payload landed anywhere outside.
    assert!(!sbx.dir.path().join("evil").exists());
    assert!(!sbx.dir.path().join("outside/evil").exists());
}

#[test]
fn dotdot_path_is_refused() {
    assert_refused(RawTar::new().file("../canary", b"pwned").finish(), "`..`");
    assert_refused(
        RawTar::new()
            .dir("a")
            .file("a/../../outside/evil", b"pwned")
            .finish(),
        "`..`",
    );
}

#[test]
fn absolute_path_is_refused() {
    let sbx = Sandbox::new();
    let abs = format!("{}/evil", sbx.dir.path().join("outside").display());
    assert_refused(RawTar::new().file(&abs, b"pwned").finish(), "absolute");
}

#[test]
fn symlink_to_root_then_file_through_it_is_refused() {
    let sbx = Sandbox::new();
    // Link to the sandbox's outside dir by absolute path and to / ; then write through them.
    let outside = sbx.dir.path().join("outside").display().to_string();
    assert_refused(
        RawTar::new()
            .symlink("escape", &outside)
            .file("escape/evil", b"pwned")
            .finish(),
        "symlink",
    );
    assert_refused(
        RawTar::new()
            .symlink("rootlink", "/")
            .file("rootlink/tmp/evil", b"pwned")
            .finish(),
        "symlink",
    );
    // Relative symlink climbing out of the root.
    assert_refused(
        RawTar::new()
            .symlink("up", "../outside")
            .file("up/evil", b"pwned")
            .finish(),
        "symlink",
    );
}

#[test]
fn symlink_as_final_component_is_replaced_not_followed() {
    let sbx = Sandbox::new();
    let canary = sbx.dir.path().join("canary").display().to_string();
    let tar = RawTar::new()
        .symlink("c", &canary)
        .file("c", b"inside")
        .finish();
    unpack(&tar[..], &sbx.root(), &UnpackOptions::default()).unwrap();
    assert_eq!(fs::read(sbx.dir.path().join("canary")).unwrap(), b"canary");
    assert_eq!(fs::read(sbx.root().join("c")).unwrap(), b"inside");
    assert!(fs::symlink_metadata(sbx.root().join("c"))
        .unwrap()
        .is_file());
}

#[test]
fn hardlink_outside_is_refused() {
    let sbx = Sandbox::new();
    assert_refused(RawTar::new().hardlink("h", "../canary").finish(), "`..`");
    let canary = sbx.dir.path().join("canary").display().to_string();
    assert_refused(RawTar::new().hardlink("h", &canary).finish(), "absolute");
    // Through a symlink inside the layer that points outside.
    let outside = sbx.dir.path().display().to_string();
    assert_refused(
        RawTar::new()
            .symlink("s", &outside)
            .hardlink("h", "s/canary")
            .finish(),
        "symlink",
    );
    // To a missing target.
    assert_refused(
        RawTar::new().hardlink("h", "nope").finish(),
        "not in the layer",
    );
}

#[test]
fn metadata_links_and_special_files_are_faithful() {
    berth_testkit::privileged!();
    let src = tempfile::tempdir().unwrap();
    let s = src.path();
    fs::create_dir(s.join("bin")).unwrap();
    fs::write(s.join("bin/tool"), b"#!/bin/sh\n").unwrap();
    // chown first: it clears the setuid bit.
    std::os::unix::fs::chown(s.join("bin/tool"), Some(1000), Some(1000)).unwrap();
    fs::set_permissions(s.join("bin/tool"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::write(s.join("bin/capped"), b"x").unwrap();
    // security.capability v2 for cap_net_raw (bit 13) effective+permitted.
    let cap: [u8; 20] = [
        0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    common::set_xattr(&s.join("bin/capped"), "user.note", b"hello");
    common::set_xattr(&s.join("bin/capped"), "security.capability", &cap);
    fs::hard_link(s.join("bin/tool"), s.join("bin/tool2")).unwrap();
    std::os::unix::fs::symlink("/bin/tool", s.join("abs-link")).unwrap();
    berth_testkit::run("mkfifo", &[s.join("fifo").to_str().unwrap()]);
    berth_testkit::run("mknod", &[s.join("null").to_str().unwrap(), "c", "1", "3"]);
    berth_testkit::run(
        "touch",
        &[
            "-h",
            "-d",
            "@1600000000",
            s.join("abs-link").to_str().unwrap(),
        ],
    );
    berth_testkit::run(
        "touch",
        &["-d", "@1500000000", s.join("bin").to_str().unwrap()],
    );
    fs::set_permissions(s.join("bin"), fs::Permissions::from_mode(0o555)).unwrap();

    let mut tar = Vec::new();
    berth_overlay::diff(s, &mut tar, berth_overlay::Compression::None).unwrap();
    let dst = tempfile::tempdir().unwrap();
    let stats = unpack(&tar[..], dst.path(), &UnpackOptions::default()).unwrap();
    assert!(stats.entries >= 7);
    let d = dst.path();
    assert_eq!(common::tree(s), common::tree(d));
    let tool = fs::metadata(d.join("bin/tool")).unwrap();
    assert_eq!(tool.mode() & 0o7777, 0o4755, "setuid bit kept");
    assert_eq!((tool.uid(), tool.gid()), (1000, 1000));
    assert_eq!(
        tool.ino(),
        fs::metadata(d.join("bin/tool2")).unwrap().ino(),
        "hardlink"
    );
    assert_eq!(fs::metadata(d.join("bin")).unwrap().mtime(), 1_500_000_000);
    assert_eq!(
        fs::symlink_metadata(d.join("abs-link")).unwrap().mtime(),
        1_600_000_000
    );
    assert_eq!(
        fs::read_link(d.join("abs-link")).unwrap(),
        std::path::Path::new("/bin/tool")
    );
    assert!(fs::symlink_metadata(d.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let null = fs::symlink_metadata(d.join("null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), libc::makedev(1, 3));
    assert_eq!(
        common::get_xattr(&d.join("bin/capped"), "security.capability").as_deref(),
        Some(&cap[..])
    );
    assert_eq!(
        common::get_xattr(&d.join("bin/capped"), "user.note").as_deref(),
        Some(&b"hello"[..])
    );
}

#[test]
fn whiteouts_become_overlay_whiteouts() {
    berth_testkit::privileged!();
    let tar = RawTar::new()
        .dir("etc")
        .file("etc/.wh.passwd", b"")
        .dir("opt")
        .file("opt/.wh..wh..opq", b"")
        .file("opt/new", b"n")
        .finish();
    for fmt in [WhiteoutFormat::Trusted, WhiteoutFormat::UserXattr] {
        let d = tempfile::tempdir().unwrap();
        let opts = UnpackOptions {
            whiteouts: fmt,
            ..Default::default()
        };
        let st = unpack(&tar[..], d.path(), &opts).unwrap();
        assert_eq!(st.whiteouts, 1);
        let wh = fs::symlink_metadata(d.path().join("etc/passwd")).unwrap();
        assert!(wh.file_type().is_char_device());
        assert_eq!(wh.rdev(), 0);
        assert!(!d.path().join("etc/.wh.passwd").exists());
        assert!(!d.path().join("opt/.wh..wh..opq").exists());
        let name = match fmt {
            WhiteoutFormat::Trusted => "trusted.overlay.opaque",
            WhiteoutFormat::UserXattr => "user.overlay.opaque",
        };
        assert_eq!(
            common::get_xattr(&d.path().join("opt"), name).as_deref(),
            Some(&b"y"[..])
        );
    }
}

#[test]
fn overlay_xattrs_inside_a_layer_are_dropped() {
    berth_testkit::privileged!();
    let s = tempfile::tempdir().unwrap();
    fs::create_dir(s.path().join("d")).unwrap();
    // A crafted layer trying to smuggle a redirect: write the PAX record by hand.
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([("SCHILY.xattr.trusted.overlay.redirect", &b"/etc"[..])])
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    b.append_data(&mut h, "d", std::io::empty()).unwrap();
    let tar = b.into_inner().unwrap();
    let d = tempfile::tempdir().unwrap();
    unpack(&tar[..], d.path(), &UnpackOptions::default()).unwrap();
    assert!(d.path().join("d").is_dir());
    assert_eq!(
        common::get_xattr(&d.path().join("d"), "trusted.overlay.redirect"),
        None,
        "overlay xattr must not be applied"
    );
}

#[test]
fn later_entries_replace_earlier_ones() {
    let tar = RawTar::new()
        .dir("a")
        .file("a/x", b"x")
        .file("a", b"now a file")
        .dir("a")
        .file("a/y", b"y")
        .symlink("s", "a")
        .dir("s")
        .file("s/z", b"z")
        .finish();
    let d = tempfile::tempdir().unwrap();
    unpack(&tar[..], d.path(), &UnpackOptions::default()).unwrap();
    let mut names: Vec<_> = fs::read_dir(d.path().join("a"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["y"]);
    assert_eq!(fs::read(d.path().join("a/y")).unwrap(), b"y");
    // The symlink was replaced by a real directory, nothing written through it.
    assert!(fs::symlink_metadata(d.path().join("s")).unwrap().is_dir());
    assert_eq!(fs::read(d.path().join("s/z")).unwrap(), b"z");
    assert!(!d.path().join("a/z").exists());
}
