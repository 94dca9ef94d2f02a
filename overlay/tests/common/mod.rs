//! Helpers shared by berth-overlay's integration tests.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A raw tar writer that allows any path (including `..` and absolute ones),
/// for building malicious archives the `tar` crate's builder would refuse.
pub struct RawTar {
    pub buf: Vec<u8>,
}

impl RawTar {
    pub fn new() -> Self {
        Self { buf: Vec::new() }
    }

    fn header(path: &[u8], kind: tar::EntryType, size: u64, link: &[u8], mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        {
            let old = h.as_old_mut();
            assert!(path.len() < 100 && link.len() < 100);
            old.name[..path.len()].copy_from_slice(path);
            old.linkname[..link.len()].copy_from_slice(link);
        }
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        h
    }

    pub fn file(mut self, path: &str, data: &[u8]) -> Self {
        let h = Self::header(
            path.as_bytes(),
            tar::EntryType::Regular,
            data.len() as u64,
            b"",
            0o644,
        );
        self.push(&h, data);
        self
    }

    pub fn dir(mut self, path: &str) -> Self {
        let h = Self::header(path.as_bytes(), tar::EntryType::Directory, 0, b"", 0o755);
        self.push(&h, b"");
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let h = Self::header(
            path.as_bytes(),
            tar::EntryType::Symlink,
            0,
            target.as_bytes(),
            0o777,
        );
        self.push(&h, b"");
        self
    }

    pub fn hardlink(mut self, path: &str, target: &str) -> Self {
        let h = Self::header(
            path.as_bytes(),
            tar::EntryType::Link,
            0,
            target.as_bytes(),
            0o644,
        );
        self.push(&h, b"");
        self
    }

    /// A regular file with `mode` (setuid bits included), owned by root.
    pub fn file_mode(mut self, path: &str, data: &[u8], mode: u32) -> Self {
        let h = Self::header(
            path.as_bytes(),
            tar::EntryType::Regular,
            data.len() as u64,
            b"",
            mode,
        );
        self.push(&h, data);
        self
    }

    /// A character device `major:minor` with `mode`, owned by root.
    pub fn chardev(mut self, path: &str, major: u32, minor: u32, mode: u32) -> Self {
        let mut h = Self::header(path.as_bytes(), tar::EntryType::Char, 0, b"", mode);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        h.set_cksum();
        self.push(&h, b"");
        self
    }

    fn push(&mut self, h: &tar::Header, data: &[u8]) {
        self.buf.extend_from_slice(h.as_bytes());
        self.buf.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.buf.extend(std::iter::repeat_n(0u8, pad));
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.buf.extend(std::iter::repeat_n(0u8, 1024));
        self.buf
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A sandbox: `parent/` holds `canary` (a file that must never change),
/// `root/` is where layers are unpacked, and `outside/` is empty.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("berth-ov-sbx")
            .tempdir()
            .unwrap();
        fs::create_dir(dir.path().join("root")).unwrap();
        fs::create_dir(dir.path().join("outside")).unwrap();
        fs::write(dir.path().join("canary"), b"canary").unwrap();
        Self { dir }
    }
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }
    /// Every path in the sandbox outside `root/`, with its content for files.
    pub fn outside_snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        snapshot(self.dir.path(), &self.root(), &mut out);
        out.sort();
        out
    }
}

fn snapshot(p: &Path, skip: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    for e in fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        let path = e.path();
        if path == skip {
            continue;
        }
        let md = fs::symlink_metadata(&path).unwrap();
        if md.is_dir() {
            out.push((path.clone(), Vec::new()));
            snapshot(&path, skip, out);
        } else if md.is_file() {
            out.push((path.clone(), fs::read(&path).unwrap()));
        } else {
            out.push((path.clone(), b"<special>".to_vec()));
        }
    }
}

/// The sha256 of a file's content, as a digest string.
pub fn sha256_file(p: &Path) -> berth_overlay::Digest {
    berth_overlay::Digest::of(&fs::read(p).unwrap())
}

/// Recursively list (relative path, type char, mode, uid, gid, size, symlink target).
pub fn tree(root: &Path) -> Vec<String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    fn go(base: &Path, p: &Path, out: &mut Vec<String>) {
        let mut names: Vec<_> = fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for path in names {
            let md = fs::symlink_metadata(&path).unwrap();
            let ft = md.file_type();
            let t = if ft.is_dir() {
                'd'
            } else if ft.is_symlink() {
                'l'
            } else if ft.is_char_device() {
                'c'
            } else if ft.is_fifo() {
                'p'
            } else {
                'f'
            };
            let link = if ft.is_symlink() {
                fs::read_link(&path).unwrap().display().to_string()
            } else {
                String::new()
            };
            let rel = path.strip_prefix(base).unwrap().display().to_string();
            let size = if ft.is_file() { md.len() } else { 0 };
            out.push(format!(
                "{rel} {t} {:o} {}:{} {size} {link}",
                md.mode() & 0o7777,
                md.uid(),
                md.gid()
            ));
            if ft.is_dir() {
                go(base, &path, out);
            }
        }
    }
    go(root, root, &mut out);
    out
}

fn cpath(p: &Path) -> std::ffi::CString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// `lsetxattr(2)`; panics on error.
pub fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    let n = std::ffi::CString::new(name).unwrap();
    let c = cpath(p);
    // SAFETY: valid C strings and buffer.
    let r = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        r,
        0,
        "setxattr {name} on {p:?}: {}",
        std::io::Error::last_os_error()
    );
}

/// `lgetxattr(2)`: the value, or None when absent.
pub fn get_xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let n = std::ffi::CString::new(name).unwrap();
    let c = cpath(p);
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid C strings and buffer.
    let r = unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        return None;
    }
    buf.truncate(r as usize);
    Some(buf)
}

/// `n` lower layers in `base`, each with a file of its own (`file-<i>`) and a
/// `who` naming it, under long directory names so that the classic option
/// string of 128 of them exceeds a page.
pub fn make_layers(base: &Path, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let p = base.join(format!(
                "layer-with-a-deliberately-long-directory-name-{i:04}"
            ));
            fs::create_dir(&p).unwrap();
            fs::write(p.join(format!("file-{i}")), format!("{i}\n")).unwrap();
            fs::write(p.join("who"), format!("{i}\n")).unwrap();
            p
        })
        .collect()
}
