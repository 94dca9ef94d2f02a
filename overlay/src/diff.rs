//! Export a directory (an overlay upper layer, or any tree) as an OCI layer tar.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::digest::{Compression, Digest, HashingWriter};
use crate::sys;
use crate::{Error, Result};

/// The result of writing a layer: digests and size of what was written.
///
/// ```no_run
/// use berth_overlay::{diff, Compression};
/// let out = std::fs::File::create("/tmp/layer.tar.gz").unwrap();
/// let blob = diff("/c/upper", out, Compression::Gzip)?; // the upper dir as an OCI layer
/// println!("{} ({} bytes), diff_id {}", blob.digest, blob.size, blob.diff_id);
/// # Ok::<(), berth_overlay::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBlob {
    /// sha256 of the blob as written (compressed): the OCI layer digest.
    pub digest: Digest,
    /// sha256 of the uncompressed tar: the OCI `diff_id`.
    pub diff_id: Digest,
    /// Size in bytes of the blob as written.
    pub size: u64,
    /// Compression used.
    pub compression: Compression,
}

/// Write `dir` as a layer tar to `out`, optionally compressed.
///
/// The output is deterministic: entries sorted by name, headers only from the
/// file's type, mode, uid, gid, size, mtime (seconds), link target and device
/// numbers (no user/group names, atime or ctime), xattrs as PAX
/// `SCHILY.xattr.*` records sorted by name, gzip with no name and mtime 0 —
/// so the same tree gives the same digest.
///
/// Overlay upper directories are converted back to OCI form: a 0:0 character
/// device becomes `.wh.<name>`, a directory with `trusted.overlay.opaque=y`
/// or `user.overlay.opaque=y` gets a `.wh..wh..opq` entry, and overlay's own
/// xattrs are never exported. Redirect (`overlay.redirect`) and metacopy
/// (`overlay.metacopy`) entries cannot be expressed in a layer and are
/// refused with [`Error::Unexportable`]: mount uppers you want to diff with
/// `redirect_dir` off and `metacopy` off.
///
/// ```no_run
/// use berth_overlay::{diff, Compression};
/// let out = std::fs::File::create("/tmp/layer.tar.gz")?;
/// let blob = diff("/c/upper", out, Compression::Gzip)?;
/// println!("{} (diff_id {})", blob.digest, blob.diff_id);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn diff<W: Write>(
    dir: impl AsRef<Path>,
    out: W,
    compression: Compression,
) -> Result<LayerBlob> {
    diff_excluding(dir, out, compression, &[])
}

/// [`diff`] leaving out the entries at the paths `exclude` (relative to
/// `dir`, e.g. `etc/hostname`), and a directory whose only entries are
/// excluded ones (copied up or made for them alone): what a runtime wrote
/// into a container's writable layer itself (Docker keeps those in a
/// separate "init" layer) stays out of the container's changes.
///
/// ```no_run
/// use berth_overlay::{diff_excluding, Compression};
/// let out = std::fs::File::create("/tmp/layer.tar")?;
/// let blob = diff_excluding("/c/upper", out, Compression::None, &["etc/hostname".into()])?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn diff_excluding<W: Write>(
    dir: impl AsRef<Path>,
    out: W,
    compression: Compression,
    exclude: &[PathBuf],
) -> Result<LayerBlob> {
    let dir = dir.as_ref();
    let outer = HashingWriter::new(out);
    let stream_err = |e: io::Error| Error::Stream {
        what: "write layer",
        source: e,
    };
    let (tar_hasher, outer) = match compression {
        Compression::None => {
            let mut inner = HashingWriter::new(outer);
            write_tar(dir, exclude, &mut inner)?;
            (inner.hasher, inner.inner)
        }
        Compression::Gzip => {
            let gz = flate2::GzBuilder::new()
                .mtime(0)
                .write(outer, flate2::Compression::fast());
            let mut inner = HashingWriter::new(gz);
            write_tar(dir, exclude, &mut inner)?;
            let outer = inner.inner.finish().map_err(stream_err)?;
            (inner.hasher, outer)
        }
        Compression::Zstd => {
            let mut z = zstd::stream::write::Encoder::new(outer, 3).map_err(stream_err)?;
            z.include_checksum(true).map_err(stream_err)?;
            let mut inner = HashingWriter::new(z);
            write_tar(dir, exclude, &mut inner)?;
            let outer = inner.inner.finish().map_err(stream_err)?;
            (inner.hasher, outer)
        }
    };
    let mut outer = outer;
    outer.flush().map_err(stream_err)?;
    Ok(LayerBlob {
        digest: Digest::from_hasher(outer.hasher),
        diff_id: Digest::from_hasher(tar_hasher),
        size: outer.count,
        compression,
    })
}

fn write_tar<W: Write>(dir: &Path, exclude: &[PathBuf], out: W) -> Result<()> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    // The walk below never resolves a path of the tree from its top again:
    // each directory is opened relative to its parent's fd (O_NOFOLLOW), each
    // entry examined as one component below a held directory fd, each file
    // read through the fd it was examined by. A tree another party changes
    // while it is exported (a running container's writable layer) can swap
    // a directory for a symlink but never make the export read a file
    // outside the tree.
    let top = File::open(dir).map_err(|e| Error::io("open directory", dir, e))?;
    let md = top
        .metadata()
        .map_err(|e| Error::io("stat directory", dir, e))?;
    if !md.is_dir() {
        return Err(Error::io(
            "open directory",
            dir,
            io::Error::from_raw_os_error(libc::ENOTDIR),
        ));
    }
    let mut w = Walk {
        base: dir,
        exclude,
        links: HashMap::new(),
    };
    w.walk(top.as_fd(), Path::new(""), &mut b)?;
    b.into_inner().map_err(|e| Error::Stream {
        what: "finish tar",
        source: e,
    })?;
    Ok(())
}

/// `/proc/self/fd/<dir>/<name>`: `name` looked up as a single component of
/// the directory `dir` holds (for the `l*` calls that do not follow it).
fn at(dir: BorrowedFd<'_>, name: &OsStr) -> PathBuf {
    Path::new(&format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name)
}

/// The sorted names in the directory `dir` holds.
fn names_in(dir: BorrowedFd<'_>, abs: &Path) -> Result<Vec<std::ffi::OsString>> {
    let here = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    let mut names: Vec<_> = fs::read_dir(&here)
        .map_err(|e| Error::io("read directory", abs, e))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()
        .map_err(|e| Error::io("read directory", abs, e))?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

/// One export: the tree's root path (for messages), what to leave out,
/// the hard links seen.
struct Walk<'a> {
    base: &'a Path,
    exclude: &'a [PathBuf],
    links: HashMap<(u64, u64), PathBuf>,
}

impl Walk<'_> {
    /// Whether the directory `relp` (open as `fd`) holds excluded entries only.
    fn only_excluded(&self, fd: BorrowedFd<'_>, relp: &Path) -> Result<bool> {
        if !self.exclude.iter().any(|e| e.parent() == Some(relp)) {
            return Ok(false);
        }
        let names = names_in(fd, &self.base.join(relp))?;
        Ok(names
            .iter()
            .all(|n| self.exclude.iter().any(|e| *e == relp.join(n))))
    }

    /// Export the directory `rel` (open as `dir`), its entries in name order.
    fn walk<W: Write>(
        &mut self,
        dir: BorrowedFd<'_>,
        rel: &Path,
        b: &mut tar::Builder<W>,
    ) -> Result<()> {
        let abs = self.base.join(rel);
        for name in names_in(dir, &abs)? {
            let relp = rel.join(&name);
            if self.exclude.contains(&relp) {
                continue;
            }
            self.entry(dir, rel, &name, relp, b)?;
        }
        Ok(())
    }

    /// Export `name` of the directory `rel` (open as `dir`): examined once
    /// through `dir`, then written by its kind.
    fn entry<W: Write>(
        &mut self,
        dir: BorrowedFd<'_>,
        rel: &Path,
        name: &OsStr,
        relp: PathBuf,
        b: &mut tar::Builder<W>,
    ) -> Result<()> {
        let absp = self.base.join(&relp);
        let one = at(dir, name);
        let cname = sys::cbytes(name.as_bytes()).map_err(|e| Error::io("path", &absp, e))?;
        let md = fs::symlink_metadata(&one).map_err(|e| Error::io("lstat", &absp, e))?;
        let cpath = sys::cpath(&one).map_err(|e| Error::io("path", &absp, e))?;
        let xattrs = sys::lxattrs(&cpath).map_err(|e| Error::io("read xattrs", &absp, e))?;
        let (opaque, keep) = split_xattrs(xattrs, &absp)?;
        let ft = md.file_type();

        if ft.is_char_device() && md.rdev() == 0 {
            // Overlay whiteout → OCI `.wh.<name>`.
            let mut h = header(&md);
            let mut wh = OsStr::new(".wh.").to_os_string();
            wh.push(name);
            h.set_entry_type(tar::EntryType::Regular);
            return b
                .append_data(&mut h, rel.join(wh), io::empty())
                .map_err(werr);
        }
        let (file, md) = if ft.is_file() {
            let (f, pmd) = open_regular(dir, &cname, &absp)?;
            (Some(f), pmd)
        } else {
            (None, md)
        };
        let mut h = header(&md);
        if ft.is_dir() {
            // Its xattrs go with it, after it is known to be written.
            return self.directory(dir, &cname, h, (opaque, &keep), &relp, &absp, b);
        }
        append_xattrs(b, &keep)?;
        if ft.is_symlink() {
            let target = fs::read_link(&one).map_err(|e| Error::io("readlink", &absp, e))?;
            h.set_entry_type(tar::EntryType::Symlink);
            b.append_link(&mut h, &relp, &target).map_err(werr)
        } else if let Some(f) = file {
            self.regular(f, &md, h, relp, b)
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            h.set_entry_type(if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else {
                tar::EntryType::Fifo
            });
            if !ft.is_fifo() {
                h.set_device_major(libc::major(md.rdev())).map_err(werr)?;
                h.set_device_minor(libc::minor(md.rdev())).map_err(werr)?;
            }
            b.append_data(&mut h, &relp, io::empty()).map_err(werr)
        } else {
            tracing::debug!(path = %absp.display(), "skipping socket in layer export");
            Ok(())
        }
    }

    /// A directory (unless it holds excluded entries only), its opaque
    /// marker, then its entries.
    #[allow(clippy::too_many_arguments)]
    fn directory<W: Write>(
        &mut self,
        dir: BorrowedFd<'_>,
        cname: &std::ffi::CStr,
        mut h: tar::Header,
        (opaque, xattrs): (bool, &[Xattr]),
        relp: &Path,
        absp: &Path,
        b: &mut tar::Builder<W>,
    ) -> Result<()> {
        let sub = sys::openat(
            dir,
            cname,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )
        .map_err(|e| Error::io("open directory", absp, e))?;
        if self.only_excluded(sub.as_fd(), relp)? {
            // Left out, its xattrs too: a PAX header written before this
            // check would apply to the next entry of the archive.
            return Ok(());
        }
        append_xattrs(b, xattrs)?;
        h.set_entry_type(tar::EntryType::Directory);
        b.append_data(&mut h, relp, io::empty()).map_err(werr)?;
        if opaque {
            let mut o = tar::Header::new_gnu();
            o.set_entry_type(tar::EntryType::Regular);
            o.set_mode(0);
            o.set_mtime(0);
            o.set_size(0);
            b.append_data(&mut o, relp.join(".wh..wh..opq"), io::empty())
                .map_err(werr)?;
        }
        self.walk(sub.as_fd(), relp, b)
    }

    /// A regular file: a hard link to the first path of its inode already
    /// written, else its data.
    fn regular<W: Write>(
        &mut self,
        f: File,
        md: &fs::Metadata,
        mut h: tar::Header,
        relp: PathBuf,
        b: &mut tar::Builder<W>,
    ) -> Result<()> {
        if md.nlink() > 1 {
            if let Some(first) = self.links.get(&(md.dev(), md.ino())) {
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                return b.append_link(&mut h, &relp, first).map_err(werr);
            }
            self.links.insert((md.dev(), md.ino()), relp.clone());
        }
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(md.len());
        // Exactly the size in the header, even if the file changes
        // size while it is read (zeros past a shrunk end).
        let data = f.take(md.len()).chain(io::repeat(0)).take(md.len());
        b.append_data(&mut h, &relp, data).map_err(werr)
    }
}

/// An xattr: name and value.
type Xattr = (Vec<u8>, Vec<u8>);

/// A tar write error.
fn werr(e: io::Error) -> Error {
    Error::Stream {
        what: "write tar entry",
        source: e,
    }
}

/// Overlay's own xattrs of the entry at `absp` taken out of `xattrs`:
/// whether it is an opaque directory, and the xattrs to export. A redirect
/// or metacopy xattr cannot be exported.
fn split_xattrs(xattrs: Vec<Xattr>, absp: &Path) -> Result<(bool, Vec<Xattr>)> {
    let mut opaque = false;
    let mut keep = Vec::new();
    for (k, v) in xattrs {
        let overlay_key = k
            .strip_prefix(b"trusted.overlay.")
            .or_else(|| k.strip_prefix(b"user.overlay."));
        match overlay_key {
            Some(b"opaque") if v == b"y" => opaque = true,
            Some(b"redirect") | Some(b"metacopy") => {
                return Err(Error::Unexportable {
                    path: absp.to_path_buf(),
                    reason: format!(
                        "has {}; mount with redirect_dir=off and metacopy=off to diff",
                        String::from_utf8_lossy(&k)
                    ),
                })
            }
            Some(_) => {}
            None => keep.push((k, v)),
        }
    }
    Ok((opaque, keep))
}

/// A regular file `name` of `dir` opened through the fd it is examined by
/// (O_PATH, reopened through /proc/self/fd: the same inode, never a path
/// looked up again), with that fd's metadata for the header.
fn open_regular(
    dir: BorrowedFd<'_>,
    cname: &std::ffi::CStr,
    absp: &Path,
) -> Result<(File, fs::Metadata)> {
    let p = sys::openat(dir, cname, libc::O_PATH | libc::O_NOFOLLOW, 0)
        .map_err(|e| Error::io("open", absp, e))?;
    let pmd = File::from(p.try_clone().map_err(|e| Error::io("dup", absp, e))?)
        .metadata()
        .map_err(|e| Error::io("fstat", absp, e))?;
    if !pmd.is_file() {
        return Err(Error::io(
            "open (replaced while exported)",
            absp,
            io::Error::from_raw_os_error(libc::ESTALE),
        ));
    }
    let f = File::open(format!("/proc/self/fd/{}", p.as_raw_fd()))
        .map_err(|e| Error::io("open", absp, e))?;
    Ok((f, pmd))
}

/// The exported xattrs as one PAX header of `SCHILY.xattr.<name>` records
/// (nothing when there are none).
fn append_xattrs<W: Write>(b: &mut tar::Builder<W>, keep: &[Xattr]) -> Result<()> {
    if keep.is_empty() {
        return Ok(());
    }
    let recs: Vec<(String, Vec<u8>)> = keep
        .iter()
        .map(|(k, v)| {
            (
                format!("SCHILY.xattr.{}", String::from_utf8_lossy(k)),
                v.clone(),
            )
        })
        .collect();
    b.append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
        .map_err(werr)
}

/// A tar header from the entry's mode, owner and mtime (size 0).
fn header(md: &fs::Metadata) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_mode(md.mode() & 0o7777);
    h.set_uid(md.uid() as u64);
    h.set_gid(md.gid() as u64);
    h.set_mtime(md.mtime().max(0) as u64);
    h.set_size(0);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x(k: &str, v: &str) -> (Vec<u8>, Vec<u8>) {
        (k.as_bytes().to_vec(), v.as_bytes().to_vec())
    }

    #[test]
    fn overlay_xattrs_are_taken_out_and_opaque_is_seen() {
        let (opaque, keep) = split_xattrs(
            vec![
                x("user.overlay.opaque", "y"),
                x("trusted.overlay.origin", "o"),
                x("security.capability", "c"),
                x("user.mine", "m"),
            ],
            Path::new("/l/d"),
        )
        .unwrap();
        assert!(opaque);
        assert_eq!(
            keep,
            vec![x("security.capability", "c"), x("user.mine", "m")]
        );
        let (opaque, keep) =
            split_xattrs(vec![x("trusted.overlay.opaque", "n")], Path::new("/l/d")).unwrap();
        assert!(!opaque);
        assert!(keep.is_empty());
    }

    #[test]
    fn redirect_and_metacopy_cannot_be_exported() {
        for k in ["trusted.overlay.redirect", "user.overlay.metacopy"] {
            let err = split_xattrs(vec![x(k, "")], Path::new("/l/f")).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(k) && msg.contains("/l/f"), "{msg}");
        }
    }
}
