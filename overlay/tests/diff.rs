//! Exporting a tree that changes while it is read (a running container's
//! writable layer) never reads outside the tree.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_overlay::{diff, Compression};

/// The contents of every regular entry of an uncompressed layer tar.
fn contents(tar: &[u8]) -> Vec<Vec<u8>> {
    let mut a = tar::Archive::new(tar);
    let mut out = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let mut v = Vec::new();
        e.read_to_end(&mut v).unwrap();
        out.push(v);
    }
    out
}

/// A directory of the tree is swapped for a symlink to a host directory
/// holding a file of the same name, over and over, while the tree is
/// exported: no export ever contains the host file's content.
#[test]
fn a_directory_swapped_for_a_symlink_never_exports_the_host_file() {
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("f"), b"HOST-SECRET").unwrap();
    let tree = tempfile::tempdir().unwrap();
    let d = tree.path().join("d");
    let real = tree.path().join("d.real");
    let link = tree.path().join("d.link");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("f"), b"in-tree").unwrap();
    std::os::unix::fs::symlink(host.path(), &link).unwrap();
    // d.real and d.link exist only for an instant each round; rename(2)
    // swaps d between the directory and the link atomically.
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, d, real, link) = (stop.clone(), d.clone(), real.clone(), link.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::fs::rename(&d, &real).unwrap();
                std::fs::rename(&link, &d).unwrap();
                std::fs::rename(&d, &link).unwrap();
                std::fs::rename(&real, &d).unwrap();
            }
        })
    };
    let t0 = Instant::now();
    let mut rounds = 0;
    let mut leaked = 0;
    while t0.elapsed() < Duration::from_secs(3) {
        let mut out = Vec::new();
        // Errors (an entry vanished between listing and reading) are fine;
        // reading the host's file is not.
        if diff(tree.path(), &mut out, Compression::None).is_ok()
            && contents(&out).iter().any(|c| c == b"HOST-SECRET")
        {
            leaked += 1;
        }
        rounds += 1;
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    assert_eq!(leaked, 0, "{leaked} of {rounds} exports read the host file");
}

/// `diff_excluding` leaves out the excluded entries and a directory that
/// holds nothing else, and keeps a directory that holds more.
#[test]
fn excluded_entries_and_directories_holding_only_them_are_left_out() {
    let tree = tempfile::tempdir().unwrap();
    let t = tree.path();
    std::fs::create_dir_all(t.join("etc")).unwrap();
    std::fs::create_dir_all(t.join("var")).unwrap();
    std::fs::write(t.join("etc/hostname"), b"h").unwrap();
    std::fs::write(t.join("etc/hosts"), b"h").unwrap();
    std::fs::write(t.join("var/hosts"), b"h").unwrap();
    std::fs::write(t.join("var/log"), b"l").unwrap();
    let exclude = [
        "etc/hostname".into(),
        "etc/hosts".into(),
        "var/hosts".into(),
    ];
    let mut out = Vec::new();
    berth_overlay::diff_excluding(t, &mut out, Compression::None, &exclude).unwrap();
    let mut a = tar::Archive::new(&out[..]);
    let names: Vec<String> = a
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["var", "var/log"]);
}

/// The xattrs of a directory left out (it holds excluded entries only)
/// are left out with it: they never land on the entry written next.
#[test]
fn a_left_out_directorys_xattrs_do_not_go_to_the_next_entry() {
    let tree = tempfile::tempdir().unwrap();
    let t = tree.path();
    std::fs::create_dir_all(t.join("etc")).unwrap();
    std::fs::create_dir_all(t.join("var")).unwrap();
    std::fs::write(t.join("etc/hostname"), b"h").unwrap();
    std::fs::write(t.join("var/log"), b"l").unwrap();
    let path = std::ffi::CString::new(t.join("etc").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid C strings and a buffer of the given length.
    let r = unsafe {
        libc::setxattr(
            path.as_ptr(),
            c"user.berth-test".as_ptr(),
            b"etc".as_ptr().cast(),
            3,
            0,
        )
    };
    if r != 0 {
        eprintln!(
            "skipped: no user xattrs on {}: {}",
            t.display(),
            std::io::Error::last_os_error()
        );
        return;
    }
    let mut out = Vec::new();
    berth_overlay::diff_excluding(t, &mut out, Compression::None, &["etc/hostname".into()])
        .unwrap();
    let mut a = tar::Archive::new(&out[..]);
    let mut seen = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let xattrs: Vec<String> = e
            .pax_extensions()
            .unwrap()
            .into_iter()
            .flatten()
            .map(|x| x.unwrap().key().unwrap().to_string())
            .filter(|k| k.contains("xattr"))
            .collect();
        seen.push((name, xattrs));
    }
    assert_eq!(
        seen,
        [
            ("var".to_string(), Vec::<String>::new()),
            ("var/log".to_string(), Vec::new())
        ]
    );
}
