//! A content-addressed layer store: `<root>/layers/sha256/<hex>/{diff/,layer.json}`.
//!
//! The store is private to its owner: its root and every directory it
//! makes above a layer's content are mode 0700 and its files 0600. A layer
//! keeps the modes its image gives (a setuid-root binary, a `0666` device
//! node: they must work inside a container), so a store others could enter
//! would hand them root (the CVE-2021-41091 class). Nothing but the owner
//! needs to traverse it: the overlay is mounted by the owner (root, or the
//! rootless user as root of its user namespace), and overlayfs then reaches
//! the lower layers with the mounter's credentials, whatever the
//! credentials of the container's process (Documentation/filesystems/
//! overlayfs.rst, "Permission model").

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;

use sha2::{Digest as _, Sha256};

use crate::digest::{Compression, Digest, HashingReader};
use crate::unpack::{unpack, UnpackOptions, UnpackStats, WhiteoutFormat};
use crate::{Error, Result};

/// A layer present in the store.
///
/// ```no_run
/// use berth_overlay::{ImportOptions, LayerStore};
/// let store = LayerStore::open("/var/lib/berth/layers")?;
/// let layer = store.import(std::fs::File::open("base.tar.gz")?, &ImportOptions::default())?;
/// println!("{} unpacked at {}", layer.digest, layer.dir.display());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Layer {
    /// Digest of the blob it was imported from (the OCI layer digest).
    pub digest: Digest,
    /// Digest of the uncompressed tar (the OCI `diff_id`).
    pub diff_id: Digest,
    /// Size of the imported blob in bytes.
    pub size: u64,
    /// The unpacked tree: use it as an overlay lower directory.
    #[serde(skip)]
    pub dir: PathBuf,
}

/// What to check and how to unpack in [`LayerStore::import`].
///
/// ```no_run
/// use berth_overlay::{Compression, ImportOptions, LayerStore};
/// let opts = ImportOptions { compression: Some(Compression::Gzip), ..Default::default() };
/// let store = LayerStore::open("/var/lib/berth/layers")?;
/// let layer = store.import(std::fs::File::open("base.tar.gz")?, &opts)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Compression of the stream; `None` = sniff the magic bytes.
    pub compression: Option<Compression>,
    /// The digest the blob must have (checked while streaming; the layer is
    /// discarded on mismatch). `None` = accept and name it by its own digest.
    pub digest: Option<Digest>,
    /// The `diff_id` the uncompressed tar must have, if known (from the image config).
    pub diff_id: Option<Digest>,
    /// Unpack options (whiteout format, owners, devices).
    pub unpack: UnpackOptions,
}

/// What [`LayerStore::gc`] removed.
///
/// ```no_run
/// let store = berth_overlay::LayerStore::open("/var/lib/berth/layers")?;
/// store.remove_ref("old-app")?;
/// let report = store.gc()?; // layers no reference names
/// println!("removed {} layers", report.removed.len());
/// # Ok::<(), berth_overlay::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Layers removed because no reference names them.
    pub removed: Vec<Digest>,
    /// Stale staging directories removed (from interrupted imports).
    pub stale_staging: usize,
}

/// A content-addressed store of unpacked layers, safe to share between
/// processes: imports stage into `<root>/tmp/` and appear with one atomic
/// `rename(2)`, importers hold a shared `flock(2)` on `<root>/lock`, and
/// [`gc`](LayerStore::gc) takes it exclusively.
///
/// ```no_run
/// use berth_overlay::{ImportOptions, LayerStore};
/// let store = LayerStore::open("/var/lib/berth/layers")?;
/// let layer = store.import(std::fs::File::open("base.tar")?, &ImportOptions::default())?;
/// store.set_ref("app", &[layer.digest.clone()])?; // keeps it from gc
/// assert!(store.get(&layer.digest)?.is_some());
/// println!("{} layers", store.layers()?.len());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct LayerStore {
    root: PathBuf,
}

static STAGE_COUNTER: AtomicU32 = AtomicU32::new(0);

/// A held `flock(2)` on the store's lock file (released on drop).
///
/// ```no_run
/// let store = berth_overlay::LayerStore::open("/var/lib/berth/layers")?;
/// let _lock = store.lock_shared()?; // gc waits while this is held
/// let layers = store.layers()?;
/// # Ok::<(), berth_overlay::Error>(())
/// ```
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

impl LayerStore {
    /// Open (creating as needed) a store rooted at `root`.
    ///
    /// ```no_run
    /// let store = berth_overlay::LayerStore::open("/var/lib/berth")?;
    /// # Ok::<(), berth_overlay::Error>(())
    /// ```
    ///
    /// The root (and any missing parent) is created mode 0700; an existing
    /// one must belong to the caller and not be writable by group or others
    /// ([`Error::UnsafeDir`] otherwise, nothing created in it), and one an
    /// older berth left 0755 is tightened to 0700 (logged).
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        private_dir(&root)?;
        for d in ["layers", "layers/sha256", "tmp", "refs"] {
            private_dir(&root.join(d))?;
        }
        let lock = root.join("lock");
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&lock)
            .map_err(|e| Error::io("create store lock file", &lock, e))?;
        let m = f
            .metadata()
            .map_err(|e| Error::io("stat store lock file", &lock, e))?;
        if m.mode() & 0o077 != 0 {
            f.set_permissions(fs::Permissions::from_mode(0o600))
                .map_err(|e| Error::io("chmod store lock file", &lock, e))?;
        }
        Ok(Self { root })
    }

    /// The store's root directory.
    ///
    /// ```no_run
    /// # let store = berth_overlay::LayerStore::open("/var/lib/berth/layers")?;
    /// assert_eq!(store.root(), std::path::Path::new("/var/lib/berth/layers"));
    /// # Ok::<(), berth_overlay::Error>(())
    /// ```
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn lock(&self, op: berth_sys::fs::FlockOp) -> Result<StoreLock> {
        let p = self.root.join("lock");
        let f = OpenOptions::new()
            .read(true)
            .open(&p)
            .map_err(|e| Error::io("open store lock", &p, e))?;
        loop {
            match berth_sys::fs::flock(f.as_fd(), op) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("flock store lock", &p, e)),
            }
        }
        Ok(StoreLock { _file: f })
    }

    /// Take the store's lock shared: while held, [`gc`](LayerStore::gc) waits.
    /// Hold it from importing layers until they are referenced ([`set_ref`](LayerStore::set_ref)).
    ///
    /// ```no_run
    /// # let store = berth_overlay::LayerStore::open("/var/lib/berth/layers")?;
    /// let _guard = store.lock_shared()?; // gc waits
    /// # Ok::<(), berth_overlay::Error>(())
    /// ```
    pub fn lock_shared(&self) -> Result<StoreLock> {
        self.lock(berth_sys::fs::FlockOp::Shared)
    }

    fn layer_dir(&self, d: &Digest) -> PathBuf {
        self.root.join("layers/sha256").join(d.hex())
    }

    /// The layer with blob digest `digest`, if present.
    ///
    /// ```no_run
    /// # let store = berth_overlay::LayerStore::open("/var/lib/berth/layers")?;
    /// let d: berth_overlay::Digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000".parse()?;
    /// assert!(store.get(&d)?.is_none());
    /// # Ok::<(), berth_overlay::Error>(())
    /// ```
    pub fn get(&self, digest: &Digest) -> Result<Option<Layer>> {
        let dir = self.layer_dir(digest);
        let meta = dir.join("layer.json");
        match fs::read(&meta) {
            Ok(b) => {
                let mut l: Layer = serde_json::from_slice(&b).map_err(|e| Error::Json {
                    what: "parse layer metadata",
                    path: meta,
                    source: e,
                })?;
                l.dir = dir.join("diff");
                Ok(Some(l))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read layer metadata", meta, e)),
        }
    }

    /// Every layer in the store, sorted by digest.
    ///
    /// ```no_run
    /// # let store = berth_overlay::LayerStore::open("/var/lib/berth/layers")?;
    /// for l in store.layers()? {
    ///     println!("{} {} bytes", l.digest, l.size);
    /// }
    /// # Ok::<(), berth_overlay::Error>(())
    /// ```
    pub fn layers(&self) -> Result<Vec<Layer>> {
        let dir = self.root.join("layers/sha256");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(|e| Error::io("list layers", &dir, e))? {
            let e = e.map_err(|e| Error::io("list layers", &dir, e))?;
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let Ok(d) = format!("sha256:{name}").parse::<Digest>() else {
                continue;
            };
            if let Some(l) = self.get(&d)? {
                out.push(l);
            }
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }

    /// Import a layer blob streamed from `reader`: decompress (gzip/zstd/none),
    /// hash the blob and the tar while streaming, unpack safely into a staging
    /// directory, verify the digests, then make it visible atomically under
    /// `layers/sha256/<hex>`. If a layer with the expected digest is already
    /// present it is returned without reading the stream.
    ///
    /// Decompression and hashing run on a second thread, unpacking on the
    /// caller's, so a gzip import uses two cores like `tar -xzf` does.
    ///
    /// ```no_run
    /// use berth_overlay::{ImportOptions, LayerStore};
    /// let store = LayerStore::open("/var/lib/berth")?;
    /// let f = std::fs::File::open("layer.tar.gz")?;
    /// let layer = store.import(f, &ImportOptions { digest: Some("sha256:…".parse()?), ..Default::default() })?;
    /// println!("unpacked at {}", layer.dir.display());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn import<R: Read + Send>(&self, reader: R, opts: &ImportOptions) -> Result<Layer> {
        let _lock = self.lock_shared()?;
        if let Some(d) = &opts.digest {
            if let Some(l) = self.get(d)? {
                tracing::debug!(digest = %d, "layer already in store");
                return Ok(l);
            }
        }
        let stage = self.root.join("tmp").join(format!(
            "import-{}-{}",
            std::process::id(),
            STAGE_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let diff = stage.join("diff");
        let res = (|| {
            // 0700: the layer directory it becomes is private too.
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&stage)
                .map_err(|e| Error::io("create staging directory", &stage, e))?;
            fs::create_dir(&diff).map_err(|e| Error::io("create staging directory", &diff, e))?;
            let (digest, diff_id, size, _stats) = stream_unpack(reader, opts, &diff)?;
            if let Some(exp) = &opts.digest {
                if *exp != digest {
                    return Err(Error::DigestMismatch {
                        what: "layer blob".into(),
                        expected: exp.to_string(),
                        actual: digest.to_string(),
                    });
                }
            }
            if let Some(exp) = &opts.diff_id {
                if *exp != diff_id {
                    return Err(Error::DigestMismatch {
                        what: format!("diff_id of layer {digest}"),
                        expected: exp.to_string(),
                        actual: diff_id.to_string(),
                    });
                }
            }
            let layer = Layer {
                digest,
                diff_id,
                size,
                dir: PathBuf::new(),
            };
            let meta = stage.join("layer.json");
            let json = serde_json::to_vec(&layer).map_err(|e| Error::Json {
                what: "write layer metadata",
                path: meta.clone(),
                source: e,
            })?;
            write_new(&meta, &json).map_err(|e| Error::io("write layer metadata", &meta, e))?;
            let dst = self.layer_dir(&layer.digest);
            match fs::rename(&stage, &dst) {
                Ok(()) => {}
                // Another importer won the race: theirs is identical (same digest).
                Err(e)
                    if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) =>
                {
                    remove_tree(&stage);
                }
                Err(e) => return Err(Error::io("move layer into place", dst, e)),
            }
            tracing::debug!(digest = %layer.digest, "layer imported");
            Ok(Layer {
                dir: dst.join("diff"),
                ..layer
            })
        })();
        if res.is_err() {
            remove_tree(&stage);
        }
        res
    }

    /// Record that reference `name` (an image, a container) uses `layers`;
    /// [`gc`](LayerStore::gc) keeps every layer some reference names. Written atomically.
    ///
    /// ```no_run
    /// # let store = berth_overlay::LayerStore::open("/var/lib/berth")?;
    /// # let digest: berth_overlay::Digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000".parse()?;
    /// store.set_ref("web-1", &[digest])?;
    /// # Ok::<(), berth_overlay::Error>(())
    /// ```
    pub fn set_ref(&self, name: &str, layers: &[Digest]) -> Result<()> {
        let file = self.ref_path(name)?;
        let tmp = self.root.join("tmp").join(format!(
            "ref-{}-{}",
            std::process::id(),
            STAGE_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let json = serde_json::to_vec(layers).map_err(|e| Error::Json {
            what: "write reference",
            path: file.clone(),
            source: e,
        })?;
        write_new(&tmp, &json).map_err(|e| Error::io("write reference", &tmp, e))?;
        fs::rename(&tmp, &file).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::io("write reference", &file, e)
        })
    }

    /// Remove reference `name` (no error if absent).
    ///
    /// ```no_run
    /// # let store = berth_overlay::LayerStore::open("/var/lib/berth/layers")?;
    /// store.remove_ref("old-app")?;
    /// store.gc()?; // its layers go unless another ref names them
    /// # Ok::<(), berth_overlay::Error>(())
    /// ```
    pub fn remove_ref(&self, name: &str) -> Result<()> {
        let file = self.ref_path(name)?;
        match fs::remove_file(&file) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(Error::io("remove reference", file, e))
            }
            _ => Ok(()),
        }
    }

    fn ref_path(&self, name: &str) -> Result<PathBuf> {
        if name.is_empty() || name.len() > 200 {
            return Err(Error::InvalidConfig(format!(
                "reference name {name:?} must be 1..=200 bytes"
            )));
        }
        // Encode so any reference (with '/' or ':') is one safe file name.
        Ok(self
            .root
            .join("refs")
            .join(format!("{}.json", hex::encode(name))))
    }

    /// Remove every layer no reference names, and leftovers of interrupted
    /// imports. Takes the store lock exclusively (waits for running imports).
    /// Layers are first renamed out of `layers/` so a removal is never half-visible.
    ///
    /// ```no_run
    /// # let store = berth_overlay::LayerStore::open("/var/lib/berth/layers")?;
    /// let report = store.gc()?;
    /// println!("{} layers, {} stale stagings removed", report.removed.len(), report.stale_staging);
    /// # Ok::<(), berth_overlay::Error>(())
    /// ```
    pub fn gc(&self) -> Result<GcReport> {
        let _lock = self.lock(berth_sys::fs::FlockOp::Exclusive)?;
        let mut keep = std::collections::HashSet::new();
        let refs = self.root.join("refs");
        for e in fs::read_dir(&refs).map_err(|e| Error::io("list references", &refs, e))? {
            let p = e
                .map_err(|e| Error::io("list references", &refs, e))?
                .path();
            if p.extension().is_some_and(|x| x == "json") {
                let b = fs::read(&p).map_err(|e| Error::io("read reference", &p, e))?;
                let ds: Vec<Digest> = serde_json::from_slice(&b).map_err(|e| Error::Json {
                    what: "parse reference",
                    path: p.clone(),
                    source: e,
                })?;
                keep.extend(ds);
            }
        }
        let mut report = GcReport::default();
        let tmp = self.root.join("tmp");
        // No importer runs while we hold the lock exclusively: all staging is stale.
        for e in fs::read_dir(&tmp).map_err(|e| Error::io("list staging", &tmp, e))? {
            let p = e.map_err(|e| Error::io("list staging", &tmp, e))?.path();
            remove_tree(&p);
            report.stale_staging += 1;
        }
        let dir = self.root.join("layers/sha256");
        for e in fs::read_dir(&dir).map_err(|e| Error::io("list layers", &dir, e))? {
            let e = e.map_err(|e| Error::io("list layers", &dir, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(d) = format!("sha256:{name}").parse::<Digest>() else {
                continue;
            };
            if keep.contains(&d) {
                continue;
            }
            let doomed = tmp.join(format!("gc-{name}"));
            fs::rename(e.path(), &doomed)
                .map_err(|err| Error::io("unpublish layer", e.path(), err))?;
            fs::remove_dir_all(&doomed).map_err(|err| Error::io("remove layer", &doomed, err))?;
            tracing::debug!(digest = %d, "layer collected");
            report.removed.push(d);
        }
        report.removed.sort();
        Ok(report)
    }
}

/// Create the temporary file `p` with `mode` (less the umask), for
/// writing: whatever is at `p` (a stale temporary of a dead process with
/// our pid, a planted symlink) is unlinked first (unlink(2) never follows),
/// then the file is made with `O_CREAT|O_EXCL|O_NOFOLLOW`, so a file or
/// symlink planted in between is an error, never followed (the rule for
/// every temporary berth writes).
pub(crate) fn create_fresh(p: &Path, mode: u32) -> io::Result<File> {
    let _ = fs::remove_file(p);
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(p)
}

/// Write the new file `p`, mode 0600 (see [`create_fresh`]).
fn write_new(p: &Path, data: &[u8]) -> io::Result<()> {
    create_fresh(p, 0o600)?.write_all(data)
}

/// Make `dir` a directory only the caller can enter: create it (and any
/// missing parent) mode 0700, or check an existing one: it must be a
/// directory the caller owns, not writable by group or others (refused
/// with [`Error::UnsafeDir`]: another user may have planted anything in
/// it); read or search bits for group and others are removed (logged).
/// A symlink to such a directory is accepted only from the caller or root.
/// The rule is berth-sys's ([`berth_sys::private::ensure_private_dir`]).
pub(crate) fn private_dir(dir: &Path) -> Result<()> {
    use berth_sys::private::{ensure_private_dir, PrivateDirError, PrivateDirOp};
    ensure_private_dir(dir, "layer store directory", true).map_err(|e| match e {
        PrivateDirError::Io { op, path, source } => Error::io(
            match op {
                PrivateDirOp::Inspect => "inspect layer store directory",
                PrivateDirOp::Create => "create layer store directory",
                PrivateDirOp::Tighten => "tighten layer store directory",
            },
            path,
            source,
        ),
        PrivateDirError::Unsafe { path, reason } => Error::UnsafeDir { path, reason },
    })
}

fn remove_tree(p: &Path) {
    let r = if p.is_dir() {
        fs::remove_dir_all(p)
    } else {
        fs::remove_file(p)
    };
    if let Err(e) = r {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!(path = %p.display(), error = %e, "remove staging");
        }
    }
}

const CHUNK: usize = 1 << 20;

/// Bytes handed from the decompressing thread to the unpacker.
struct ChanReader {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    back: mpsc::SyncSender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Read for ChanReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(v)) if v.is_empty() => self.done = true,
                Ok(Ok(v)) => {
                    let old = std::mem::replace(&mut self.cur, v);
                    let _ = self.back.try_send(old);
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "decompressor stopped",
                    ))
                }
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

enum StreamFail {
    Decode(&'static str, io::Error),
}

/// Decompress + hash on a helper thread, unpack on this one. Returns (blob digest, diff_id, blob size).
fn stream_unpack<R: Read + Send>(
    reader: R,
    opts: &ImportOptions,
    dir: &Path,
) -> Result<(Digest, Digest, u64, UnpackStats)> {
    let (tx, rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(8);
    let (back_tx, back_rx) = mpsc::sync_channel::<Vec<u8>>(10);
    std::thread::scope(|s| {
        let producer = s.spawn(move || -> Result<(Digest, Digest, u64, u64), StreamFail> {
            let mut br = io::BufReader::with_capacity(CHUNK, reader);
            let comp = match opts.compression {
                Some(c) => c,
                // Peek at the magic bytes without consuming them.
                None => Compression::sniff(
                    br.fill_buf()
                        .map_err(|e| StreamFail::Decode("layer blob", e))?,
                ),
            };
            pump(br, comp, &tx, &back_rx)
        });
        let mut cr = ChanReader {
            rx,
            back: back_tx,
            cur: Vec::new(),
            pos: 0,
            done: false,
        };
        let unpacked = unpack(&mut cr, dir, &opts.unpack).and_then(|stats| {
            // Drain what follows the end-of-archive blocks so the digests cover the whole blob.
            io::copy(&mut cr, &mut io::sink()).map_err(|e| Error::Stream {
                what: "tar trailer",
                source: e,
            })?;
            Ok(stats)
        });
        drop(cr);
        let produced = producer.join();
        let (digest, diff_id, size, tar_len) = match produced {
            Ok(Ok(v)) => v,
            Ok(Err(StreamFail::Decode(what, e))) => {
                // A decode error explains any unpack error it caused.
                if e.kind() == io::ErrorKind::BrokenPipe {
                    // Receiver gone: the unpacker failed first; report its error.
                    unpacked?;
                }
                return Err(Error::Stream { what, source: e });
            }
            Err(_) => {
                return Err(Error::Stream {
                    what: "decompressor thread",
                    source: io::Error::other("panicked"),
                })
            }
        };
        let stats = unpacked?;
        if tar_len == 0 || tar_len % 512 != 0 {
            return Err(Error::Stream {
                what: "tar",
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("not a tar stream: {tar_len} bytes is not a positive multiple of 512"),
                ),
            });
        }
        Ok((digest, diff_id, size, stats))
    })
}

fn pump<B: Read>(
    blob: B,
    comp: Compression,
    tx: &mpsc::SyncSender<io::Result<Vec<u8>>>,
    back: &mpsc::Receiver<Vec<u8>>,
) -> Result<(Digest, Digest, u64, u64), StreamFail> {
    // Keep a handle on the hashing reader to read the blob digest at the end.
    let mut hr = HashingReader::new(blob);
    let what = match comp {
        Compression::None => "tar",
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
    };
    let mut tar_hasher = Sha256::new();
    let mut tar_len = 0u64;
    {
        let mut dec: Box<dyn Read + '_> = match comp {
            Compression::None => Box::new(&mut hr),
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(
                io::BufReader::with_capacity(CHUNK, &mut hr),
            )),
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::new(&mut hr)
                    .map_err(|e| StreamFail::Decode("zstd", e))?,
            ),
        };
        loop {
            let mut buf = back.try_recv().unwrap_or_default();
            buf.resize(CHUNK, 0);
            let mut filled = 0;
            while filled < CHUNK {
                match dec.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.send(Err(io::Error::new(e.kind(), format!("{what}: {e}"))));
                        return Err(StreamFail::Decode(what, e));
                    }
                }
            }
            buf.truncate(filled);
            tar_hasher.update(&buf);
            tar_len += filled as u64;
            let end = filled == 0;
            if tx.send(Ok(buf)).is_err() {
                return Err(StreamFail::Decode(
                    what,
                    io::Error::new(io::ErrorKind::BrokenPipe, "unpacker stopped"),
                ));
            }
            if end {
                break;
            }
        }
    }
    // Read anything after the compressed stream too (it is part of the blob).
    io::copy(&mut hr, &mut io::sink()).map_err(|e| StreamFail::Decode("layer blob", e))?;
    let size = hr.count;
    Ok((
        Digest::from_hasher(hr.hasher),
        Digest::from_hasher(tar_hasher),
        size,
        tar_len,
    ))
}

impl From<WhiteoutFormat> for ImportOptions {
    fn from(w: WhiteoutFormat) -> Self {
        ImportOptions {
            unpack: UnpackOptions {
                whiteouts: w,
                ..Default::default()
            },
            ..Default::default()
        }
    }
}
