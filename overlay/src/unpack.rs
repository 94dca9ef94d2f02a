//! Safe unpacking of an OCI layer tar into a directory.
//!
//! Every entry is resolved inside the layer root: parent directories are
//! opened with `openat2(2)` and `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
//! RESOLVE_NO_MAGICLINKS` (Linux ≥ 5.6), and the last component is created
//! with `*at` syscalls that never follow a symlink (`O_NOFOLLOW`, `O_EXCL`,
//! `AT_SYMLINK_NOFOLLOW`). `..` and absolute paths are refused before any
//! syscall, so nothing can be written outside the root.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use std::path::Path;

use crate::sys;
use crate::{Error, Result};

/// How OCI whiteouts (`.wh.<name>`, `.wh..wh..opq`) are written for overlayfs.
///
/// ```
/// use berth_overlay::{UnpackOptions, WhiteoutFormat};
/// let opts = UnpackOptions { whiteouts: WhiteoutFormat::UserXattr, ..Default::default() }; // rootless overlay
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[doc(alias("whiteout", ".wh."))]
pub enum WhiteoutFormat {
    /// Whiteouts as 0:0 character devices and opaque directories as
    /// `trusted.overlay.opaque=y` (needs `CAP_SYS_ADMIN` for the xattr;
    /// the device is allowed unprivileged since Linux 5.8).
    #[default]
    Trusted,
    /// For overlays mounted with `userxattr` (rootless): whiteouts as 0:0
    /// character devices and opaque directories as `user.overlay.opaque=y`.
    UserXattr,
}

impl WhiteoutFormat {
    fn opaque_xattr(self) -> &'static std::ffi::CStr {
        match self {
            WhiteoutFormat::Trusted => c"trusted.overlay.opaque",
            WhiteoutFormat::UserXattr => c"user.overlay.opaque",
        }
    }
}

/// Options of [`unpack`].
///
/// ```
/// let opts = berth_overlay::UnpackOptions::default();
/// println!("{opts:?}");
/// ```
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    /// Whiteout format (default [`WhiteoutFormat::Trusted`]).
    pub whiteouts: WhiteoutFormat,
    /// Apply owners from the archive (default: when running as root).
    pub same_owner: bool,
    /// Create character and block devices (default: when running as root);
    /// otherwise they are skipped with a log line.
    pub devices: bool,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        let root = berth_sys::fs::euid() == 0;
        Self {
            whiteouts: WhiteoutFormat::Trusted,
            same_owner: root,
            devices: root,
        }
    }
}

/// What [`unpack`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Entries processed.
    pub entries: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Whiteouts created.
    pub whiteouts: u64,
}

/// Unpack the (uncompressed) layer tar read from `reader` into the existing
/// directory `root`, converting OCI whiteouts for overlayfs.
///
/// Refused with [`Error::UnsafeEntry`]: absolute paths, `..` components, paths
/// through a symlink, hardlinks to targets outside the root or missing.
/// The caller is expected to discard `root` on error (the layer store stages
/// into a temporary directory for that reason).
///
/// Modes are kept as the archive gives them, setuid and setgid bits
/// included, and device nodes are made when [`UnpackOptions::devices`] is
/// set: an image's setuid-root binary or `0666` device must work inside a
/// container. So `root` must be somewhere no other local user can reach
/// (the [`LayerStore`](crate::LayerStore) keeps every layer below a 0700
/// root), or those users get root through it.
///
/// ```no_run
/// let f = std::fs::File::open("layer.tar")?;
/// berth_overlay::unpack(f, std::path::Path::new("/tmp/layer"), &Default::default())?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn unpack<R: Read>(reader: R, root: &Path, opts: &UnpackOptions) -> Result<UnpackStats> {
    let rootfd = File::open(root).map_err(|e| Error::io("open layer root", root, e))?;
    let mut u = Unpacker {
        root: OwnedFd::from(rootfd),
        opts: opts.clone(),
        cache_path: Vec::new(),
        cache_fd: None,
        dirs: Vec::new(),
        stats: UnpackStats::default(),
        buf: vec![0u8; 256 * 1024],
    };
    let mut ar = tar::Archive::new(reader);
    let entries = ar.entries().map_err(|e| Error::Stream {
        what: "tar entries",
        source: e,
    })?;
    for entry in entries {
        let mut entry = entry.map_err(|e| Error::Stream {
            what: "tar entries",
            source: e,
        })?;
        u.entry(&mut entry)?;
        u.stats.entries += 1;
    }
    u.finish_dirs()?;
    Ok(u.stats)
}

struct DirMeta {
    path: Vec<u8>,
    mode: u32,
    mtime: i64,
}

/// What an entry's header says, read once before the entry is written.
struct Header<'a> {
    raw: &'a [u8],
    mode: u32,
    uid: libc::uid_t,
    gid: libc::gid_t,
    mtime: i64,
    xattrs: Vec<(CString, Vec<u8>)>,
}

struct Unpacker {
    root: OwnedFd,
    opts: UnpackOptions,
    cache_path: Vec<u8>,
    cache_fd: Option<OwnedFd>,
    dirs: Vec<DirMeta>,
    stats: UnpackStats,
    buf: Vec<u8>,
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Normalise an archive path into components: `.` and empty parts dropped,
/// `..` and absolute paths refused.
fn components<'a>(raw: &'a [u8], what: &str) -> Result<Vec<&'a [u8]>> {
    if raw.first() == Some(&b'/') {
        return Err(Error::UnsafeEntry {
            entry: lossy(raw),
            reason: format!("absolute {what}"),
        });
    }
    let mut out = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                return Err(Error::UnsafeEntry {
                    entry: lossy(raw),
                    reason: format!("{what} contains `..`"),
                })
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

fn join(parts: &[&[u8]]) -> Vec<u8> {
    parts.join(&b'/')
}

const RESOLVE: sys::ResolveFlags = sys::ResolveFlags::BENEATH
    .union(sys::ResolveFlags::NO_SYMLINKS)
    .union(sys::ResolveFlags::NO_MAGICLINKS);
// No O_NOFOLLOW: RESOLVE_NO_SYMLINKS already refuses a trailing symlink with ELOOP.
const DIR_FLAGS: libc::c_int = libc::O_RDONLY | libc::O_DIRECTORY;

impl Unpacker {
    fn unsafe_err(entry: &[u8], e: io::Error) -> Error {
        let reason = match e.raw_os_error() {
            Some(libc::ELOOP) => {
                "a path component is a symlink (refusing to follow it)".to_string()
            }
            Some(libc::EXDEV) => "path resolves outside the layer root".to_string(),
            Some(libc::ENOTDIR) => "a path component is not a directory".to_string(),
            _ => format!("cannot resolve parent directory: {e}"),
        };
        Error::UnsafeEntry {
            entry: lossy(entry),
            reason,
        }
    }

    /// Open (creating missing directories) the directory `parts` below the root.
    fn dir(&mut self, parts: &[&[u8]], entry: &[u8], create: bool) -> Result<BorrowedFd<'_>> {
        let key = join(parts);
        // A cached directory that a later entry removed (nlink 0) must be reopened.
        let stale = match &self.cache_fd {
            Some(fd) => self.cache_path != key || fstat_nlink(fd.as_fd()) == 0,
            None => true,
        };
        if stale {
            let fd = self.open_dir(parts, entry, create)?;
            self.cache_fd = Some(fd);
            self.cache_path = key;
        }
        match &self.cache_fd {
            Some(fd) => Ok(fd.as_fd()),
            // Unreachable: cache_fd was set just above.
            None => Err(Error::UnsafeEntry {
                entry: lossy(entry),
                reason: "internal".into(),
            }),
        }
    }

    fn open_dir(&self, parts: &[&[u8]], entry: &[u8], create: bool) -> Result<OwnedFd> {
        if parts.is_empty() {
            return self.root.try_clone().map_err(|e| Error::Unpack {
                entry: lossy(entry),
                op: "dup root fd",
                source: e,
            });
        }
        let path = to_c(&join(parts), entry)?;
        match sys::openat2(self.root.as_fd(), &path, DIR_FLAGS, 0, RESOLVE) {
            Ok(fd) => return Ok(fd),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create => {}
            Err(e) => return Err(Self::unsafe_err(entry, e)),
        }
        // Walk component by component, creating what is missing (0755, like GNU tar).
        let mut cur = self.root.try_clone().map_err(|e| Error::Unpack {
            entry: lossy(entry),
            op: "dup root fd",
            source: e,
        })?;
        for c in parts {
            let name = to_c(c, entry)?;
            let next = match sys::openat2(cur.as_fd(), &name, DIR_FLAGS, 0, RESOLVE) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    if let Err(e) = sys::mkdirat(cur.as_fd(), &name, 0o755) {
                        if e.raw_os_error() != Some(libc::EEXIST) {
                            return Err(Error::Unpack {
                                entry: lossy(entry),
                                op: "mkdirat (parent)",
                                source: e,
                            });
                        }
                    }
                    sys::openat2(cur.as_fd(), &name, DIR_FLAGS, 0, RESOLVE)
                        .map_err(|e| Self::unsafe_err(entry, e))?
                }
                Err(e) => return Err(Self::unsafe_err(entry, e)),
            };
            cur = next;
        }
        Ok(cur)
    }

    /// Remove whatever exists at `name` in `dir` unless it is a directory and `keep_dir`.
    /// Returns true if a directory was kept.
    fn clear(dir: BorrowedFd<'_>, name: &CString, keep_dir: bool, entry: &[u8]) -> Result<bool> {
        let st = match sys::lstatat(dir, name) {
            Ok(st) => st,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(false),
            Err(e) => {
                return Err(Error::Unpack {
                    entry: lossy(entry),
                    op: "fstatat",
                    source: e,
                })
            }
        };
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            if keep_dir {
                return Ok(true);
            }
            // Remove the directory tree through the verified parent fd (std's
            // remove_dir_all never follows symlinks inside the tree).
            let p = format!(
                "/proc/self/fd/{}/{}",
                dir.as_raw_fd(),
                String::from_utf8_lossy(name.as_bytes())
            );
            std::fs::remove_dir_all(&p).map_err(|e| Error::Unpack {
                entry: lossy(entry),
                op: "remove existing directory",
                source: e,
            })?;
            return Ok(false);
        }
        sys::unlinkat(dir.as_fd(), name).map_err(|e| Error::Unpack {
            entry: lossy(entry),
            op: "unlinkat existing",
            source: e,
        })?;
        Ok(false)
    }

    /// One archive entry: read its header, then dispatch on its kind.
    fn entry<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> Result<()> {
        let raw = e.path_bytes().into_owned();
        let hdr = e.header().clone();
        let kind = hdr.entry_type();
        let parts = components(&raw, "path")?;
        let h = Header {
            mode: hdr.mode().unwrap_or(0o644) & 0o7777,
            uid: hdr.uid().unwrap_or(0) as libc::uid_t,
            gid: hdr.gid().unwrap_or(0) as libc::gid_t,
            mtime: hdr.mtime().unwrap_or(0) as i64,
            xattrs: pax_xattrs(e).map_err(|err| Error::Stream {
                what: "pax header",
                source: err,
            })?,
            raw: &raw,
        };

        let Some((&name, parent)) = parts.split_last() else {
            // The root itself ("./"): only its metadata.
            if kind.is_dir() {
                self.dirs.push(DirMeta {
                    path: Vec::new(),
                    mode: h.mode,
                    mtime: h.mtime,
                });
            }
            return Ok(());
        };

        // OCI whiteouts.
        if let Some(rest) = name.strip_prefix(b".wh.") {
            return self.whiteout(parent, rest, &h);
        }

        let cname = to_c(name, h.raw)?;
        match kind {
            tar::EntryType::Directory => self.directory(&parts, &cname, &h),
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                self.regular(e, parent, &cname, &h)
            }
            tar::EntryType::Symlink => {
                let target = link_name(e);
                self.symlink(parent, &cname, &target, &h)
            }
            tar::EntryType::Link => {
                let target = link_name(e);
                self.hardlink(parent, &cname, &target, &h)
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                self.node(&hdr, parent, &cname, &h)
            }
            other => {
                tracing::debug!(entry = %lossy(h.raw), kind = ?other, "skipping unsupported tar entry type");
                Ok(())
            }
        }
    }

    /// An OCI whiteout `.wh.<rest>` in `parent`: the opaque marker, or a
    /// 0:0 character device replacing `<rest>`.
    fn whiteout(&mut self, parent: &[&[u8]], rest: &[u8], h: &Header<'_>) -> Result<()> {
        let fmt = self.opts.whiteouts;
        let same_owner = self.opts.same_owner;
        let pfd = self.dir(parent, h.raw, true)?;
        if rest == b".wh..opq" {
            sys::fsetxattr(pfd, fmt.opaque_xattr(), b"y")
                .map_err(|err| unpack_err(h.raw, "set opaque xattr", err))?;
        } else if rest.starts_with(b".wh.") || rest.is_empty() {
            tracing::debug!(entry = %lossy(h.raw), "ignoring special whiteout entry");
            return Ok(());
        } else {
            let target = to_c(rest, h.raw)?;
            Self::clear(pfd, &target, false, h.raw)?;
            sys::mknodat(
                pfd.as_fd(),
                &target,
                libc::S_IFCHR | (h.mode & 0o777),
                libc::makedev(0, 0),
            )
            .map_err(|err| unpack_err(h.raw, "mknodat whiteout", err))?;
            meta_at(pfd, &target, same_owner, h, None)?;
            self.stats.whiteouts += 1;
        }
        Ok(())
    }

    /// A directory: kept if it exists (else made 0700), owner and xattrs now,
    /// mode and mtime in [`Self::finish_dirs`].
    fn directory(&mut self, parts: &[&[u8]], cname: &CString, h: &Header<'_>) -> Result<()> {
        let same_owner = self.opts.same_owner;
        let parent = &parts[..parts.len() - 1];
        let pfd = self.dir(parent, h.raw, true)?;
        let kept = Self::clear(pfd, cname, true, h.raw)?;
        if !kept {
            sys::mkdirat(pfd.as_fd(), cname, 0o700)
                .map_err(|err| unpack_err(h.raw, "mkdirat", err))?;
        }
        let dfd = sys::openat2(pfd, cname, DIR_FLAGS, 0, RESOLVE)
            .map_err(|err| Self::unsafe_err(h.raw, err))?;
        if same_owner {
            sys::fchown(dfd.as_fd(), h.uid, h.gid)
                .map_err(|err| unpack_err(h.raw, "fchown", err))?;
        }
        set_xattrs(dfd.as_fd(), &h.xattrs, h.raw)?;
        self.dirs.push(DirMeta {
            path: join(parts),
            mode: h.mode,
            mtime: h.mtime,
        });
        Ok(())
    }

    /// A regular file: created `O_EXCL | O_NOFOLLOW`, its data copied, then
    /// owner, mode, xattrs and times.
    fn regular<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        parent: &[&[u8]],
        cname: &CString,
        h: &Header<'_>,
    ) -> Result<()> {
        let same_owner = self.opts.same_owner;
        let pfd = self.dir(parent, h.raw, true)?;
        Self::clear(pfd, cname, false, h.raw)?;
        let fd = sys::openat(
            pfd,
            cname,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
            0o600,
        )
        .map_err(|err| unpack_err(h.raw, "openat create", err))?;
        let mut f = File::from(fd);
        self.copy_data(e, &mut f, h.raw)?;
        // Order matters: chown clears setuid bits and writes clear
        // security.capability, so chown → chmod → xattrs → times.
        if same_owner {
            sys::fchown(f.as_fd(), h.uid, h.gid).map_err(|err| unpack_err(h.raw, "fchown", err))?;
        }
        sys::fchmod(f.as_fd(), h.mode).map_err(|err| unpack_err(h.raw, "fchmod", err))?;
        set_xattrs(f.as_fd(), &h.xattrs, h.raw)?;
        sys::futimens(f.as_fd(), h.mtime).map_err(|err| unpack_err(h.raw, "futimens", err))?;
        Ok(())
    }

    /// Copy the entry's data into `f`, counting the bytes.
    fn copy_data<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        f: &mut File,
        raw: &[u8],
    ) -> Result<()> {
        loop {
            let n = match e.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    return Err(Error::Stream {
                        what: "tar entry data",
                        source: err,
                    })
                }
            };
            f.write_all(&self.buf[..n])
                .map_err(|err| unpack_err(raw, "write", err))?;
            self.stats.bytes += n as u64;
        }
        Ok(())
    }

    /// A symlink, its text stored as is.
    fn symlink(
        &mut self,
        parent: &[&[u8]],
        cname: &CString,
        target: &[u8],
        h: &Header<'_>,
    ) -> Result<()> {
        let same_owner = self.opts.same_owner;
        let ctarget = to_c(target, h.raw)?;
        let pfd = self.dir(parent, h.raw, true)?;
        Self::clear(pfd, cname, false, h.raw)?;
        // The link text is stored as is (absolute targets are normal in
        // images); it is never followed while unpacking.
        sys::symlinkat(&ctarget, pfd.as_fd(), cname)
            .map_err(|err| unpack_err(h.raw, "symlinkat", err))?;
        meta_at(pfd, cname, same_owner, h, None)
    }

    /// A hardlink to `target`, which must already be in the layer and not be
    /// a directory.
    fn hardlink(
        &mut self,
        parent: &[&[u8]],
        cname: &CString,
        target: &[u8],
        h: &Header<'_>,
    ) -> Result<()> {
        let raw = h.raw;
        let tparts = components(target, "hardlink target")?;
        let Some((&tname, tparent)) = tparts.split_last() else {
            return Err(Error::UnsafeEntry {
                entry: lossy(raw),
                reason: "hardlink to the layer root".into(),
            });
        };
        let ctname = to_c(tname, raw)?;
        let tfd = self.open_dir(tparent, raw, false)?;
        match sys::lstatat(tfd.as_fd(), &ctname) {
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                return Err(Error::UnsafeEntry {
                    entry: lossy(raw),
                    reason: "hardlink to a directory".into(),
                })
            }
            Ok(_) => {}
            Err(err) => {
                return Err(Error::UnsafeEntry {
                    entry: lossy(raw),
                    reason: format!(
                        "hardlink target {:?} not in the layer: {err}",
                        lossy(target)
                    ),
                })
            }
        }
        let pfd = self.dir(parent, raw, true)?;
        Self::clear(pfd, cname, false, raw)?;
        // flags 0: never follow a symlink at the target.
        sys::linkat(tfd.as_fd(), &ctname, pfd.as_fd(), cname)
            .map_err(|err| unpack_err(raw, "linkat", err))?;
        Ok(())
    }

    /// A character or block device (only when [`UnpackOptions::devices`]) or a fifo.
    fn node(
        &mut self,
        hdr: &tar::Header,
        parent: &[&[u8]],
        cname: &CString,
        h: &Header<'_>,
    ) -> Result<()> {
        let kind = hdr.entry_type();
        let is_dev = !matches!(kind, tar::EntryType::Fifo);
        if is_dev && !self.opts.devices {
            tracing::debug!(entry = %lossy(h.raw), "skipping device node (unprivileged unpack)");
            return Ok(());
        }
        let same_owner = self.opts.same_owner;
        let fmt = match kind {
            tar::EntryType::Char => libc::S_IFCHR,
            tar::EntryType::Block => libc::S_IFBLK,
            _ => libc::S_IFIFO,
        };
        let dev = if is_dev {
            libc::makedev(
                hdr.device_major().ok().flatten().unwrap_or(0),
                hdr.device_minor().ok().flatten().unwrap_or(0),
            )
        } else {
            0
        };
        let pfd = self.dir(parent, h.raw, true)?;
        Self::clear(pfd, cname, false, h.raw)?;
        sys::mknodat(pfd.as_fd(), cname, fmt | h.mode, dev)
            .map_err(|err| unpack_err(h.raw, "mknodat", err))?;
        meta_at(pfd, cname, same_owner, h, Some(h.mode))
    }

    /// Apply directory modes and mtimes last (children would change the mtime;
    /// a read-only mode would block creating children when unprivileged).
    fn finish_dirs(&mut self) -> Result<()> {
        self.cache_fd = None;
        for d in self.dirs.iter().rev() {
            let fd = if d.path.is_empty() {
                self.root.try_clone().map_err(|e| Error::Unpack {
                    entry: ".".into(),
                    op: "dup root fd",
                    source: e,
                })?
            } else {
                let p = to_c(&d.path, &d.path)?;
                sys::openat2(self.root.as_fd(), &p, DIR_FLAGS, 0, RESOLVE)
                    .map_err(|e| Self::unsafe_err(&d.path, e))?
            };
            sys::fchmod(fd.as_fd(), d.mode).map_err(|e| Error::Unpack {
                entry: lossy(&d.path),
                op: "fchmod dir",
                source: e,
            })?;
            sys::futimens(fd.as_fd(), d.mtime).map_err(|e| Error::Unpack {
                entry: lossy(&d.path),
                op: "futimens dir",
                source: e,
            })?;
        }
        Ok(())
    }
}

fn fstat_nlink(fd: BorrowedFd<'_>) -> u64 {
    berth_sys::fs::fstat(fd).map_or(0, |st| st.st_nlink)
}

/// Owner (when `same_owner`), mode (when given) and mtime of `name` in `dir`,
/// never following a symlink.
fn meta_at(
    dir: BorrowedFd<'_>,
    name: &CString,
    same_owner: bool,
    h: &Header<'_>,
    mode: Option<u32>,
) -> Result<()> {
    let entry = h.raw;
    if same_owner {
        sys::lchownat(dir.as_fd(), name, h.uid, h.gid)
            .map_err(|e| unpack_err(entry, "fchownat", e))?;
    }
    if let Some(m) = mode {
        // Not a symlink here (devices and fifos), so following is moot; flags 0.
        sys::fchmodat(dir.as_fd(), name, m).map_err(|e| unpack_err(entry, "fchmodat", e))?;
    }
    sys::lutimensat(dir.as_fd(), name, h.mtime).map_err(|e| unpack_err(entry, "utimensat", e))?;
    Ok(())
}

/// `name` as a C string, or [`Error::UnsafeEntry`] for `entry` (a NUL inside).
fn to_c(name: &[u8], entry: &[u8]) -> Result<CString> {
    sys::cbytes(name).map_err(|e| Error::UnsafeEntry {
        entry: lossy(entry),
        reason: e.to_string(),
    })
}

/// [`Error::Unpack`] for `op` on `entry`.
fn unpack_err(entry: &[u8], op: &'static str, source: io::Error) -> Error {
    Error::Unpack {
        entry: lossy(entry),
        op,
        source,
    }
}

/// The link target of a symlink or hardlink entry (empty when it has none).
fn link_name<R: Read>(e: &tar::Entry<'_, R>) -> Vec<u8> {
    e.link_name_bytes()
        .map(|c| c.into_owned())
        .unwrap_or_default()
}

/// `SCHILY.xattr.<name>` records of the entry's PAX header.
fn pax_xattrs<R: Read>(e: &mut tar::Entry<'_, R>) -> io::Result<Vec<(CString, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Some(exts) = e.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            if let Some(name) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                if let Ok(c) = CString::new(name) {
                    out.push((c, ext.value_bytes().to_vec()));
                }
            }
        }
    }
    Ok(out)
}

fn set_xattrs(fd: BorrowedFd<'_>, xattrs: &[(CString, Vec<u8>)], entry: &[u8]) -> Result<()> {
    for (k, v) in xattrs {
        if k.as_bytes().starts_with(b"trusted.overlay.")
            || k.as_bytes().starts_with(b"user.overlay.")
        {
            // Overlay's own metadata must never come from an image.
            tracing::debug!(entry = %lossy(entry), xattr = %k.to_string_lossy(), "dropping overlay xattr from layer");
            continue;
        }
        if let Err(e) = sys::fsetxattr(fd, k, v) {
            match e.raw_os_error() {
                Some(libc::EPERM) | Some(libc::ENOTSUP) => {
                    tracing::warn!(entry = %lossy(entry), xattr = %k.to_string_lossy(), error = %e, "xattr not applied")
                }
                _ => {
                    return Err(Error::Unpack {
                        entry: lossy(entry),
                        op: "fsetxattr",
                        source: e,
                    })
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_refuse_escapes() {
        assert!(components(b"../../etc/passwd", "path").is_err());
        assert!(components(b"a/../../b", "path").is_err());
        assert!(components(b"/etc/passwd", "path").is_err());
        assert_eq!(
            components(b"./a//b/./c/", "path").unwrap(),
            vec![&b"a"[..], b"b", b"c"]
        );
        assert!(components(b"./", "path").unwrap().is_empty());
    }
}
