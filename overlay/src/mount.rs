//! Overlay mounts with the new mount API (`fsopen`/`fsconfig`/`fsmount`/`move_mount`).

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

use crate::sys;
use crate::{Error, Result};

mod child;
pub use child::ChildOverlay;

/// Page size the kernel allows for legacy `mount(2)` option data (one page).
const LEGACY_DATA_MAX: usize = 4095;
/// `fsconfig(2)` copies at most 255 bytes of a string value (fs/fsopen.c).
const FSCONFIG_STRING_MAX: usize = 255;

/// 0 = unknown, 1 = `lowerdir+` works, 2 = it does not (kernel < 6.8).
static LOWERDIR_APPEND: AtomicU8 = AtomicU8::new(0);
/// 0 = unknown, 1 = overlayfs takes `O_PATH` descriptors with
/// `FSCONFIG_SET_FD` (Linux ≥ 6.15), 2 = it does not.
static SET_FD_OPATH: AtomicU8 = AtomicU8::new(0);

/// How [`Overlay`] talks to the kernel.
///
/// ```
/// use berth_overlay::{MountMethod, Overlay};
/// let o = Overlay::new().lower("/l").upper("/u").work("/w").method(MountMethod::Legacy); // mount(2), not fsopen
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MountMethod {
    /// The new mount API appending each layer with `lowerdir+` (Linux ≥ 6.8),
    /// falling back to [`MountMethod::Legacy`] when the kernel rejects `lowerdir+`.
    #[default]
    Auto,
    /// Only the new mount API with `lowerdir+` (Linux ≥ 6.8); an error on older kernels.
    Append,
    /// The classic option string through `mount(2)` (Linux ≥ 3.18; `userxattr` ≥ 5.11).
    /// When the string would exceed a page, each directory is passed as
    /// `/proc/self/fd/N` of an `O_PATH` descriptor held for the duration of the call,
    /// which keeps 128 layers (and up to about 200) within the page.
    Legacy,
}

/// The `redirect_dir=` overlay option (see the kernel's overlayfs documentation).
///
/// ```
/// use berth_overlay::{Overlay, RedirectDir};
/// let o = Overlay::new().lower("/l").upper("/u").work("/w").redirect_dir(RedirectDir::Off);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectDir {
    /// `redirect_dir=on`: create and follow redirects.
    On,
    /// `redirect_dir=follow`: follow existing redirects only.
    Follow,
    /// `redirect_dir=nofollow`: neither create nor follow.
    NoFollow,
    /// `redirect_dir=off`: do not create, follow if found.
    Off,
}

impl RedirectDir {
    fn as_str(self) -> &'static str {
        match self {
            RedirectDir::On => "on",
            RedirectDir::Follow => "follow",
            RedirectDir::NoFollow => "nofollow",
            RedirectDir::Off => "off",
        }
    }
}

/// Builder of an overlay mount, shaped like [`std::process::Command`]:
/// configure the layers and options, then [`mount`](Overlay::mount) it at a
/// path or make a detached mount with [`mount_detached`](Overlay::mount_detached).
///
/// Kernel: overlayfs (`CONFIG_OVERLAY_FS`), the new mount API needs Linux ≥ 5.2,
/// `lowerdir+` Linux ≥ 6.8 (older kernels use the legacy string, see [`MountMethod`]).
/// man: fsopen(2), fsconfig(2), fsmount(2), move_mount(2); Documentation/filesystems/overlayfs.rst.
///
/// ```no_run
/// use berth_overlay::Overlay;
/// // mount -t overlay overlay -o lowerdir=/img/top:/img/base,upperdir=/c/upper,workdir=/c/work /c/rootfs
/// let m = Overlay::new()
///     .lowers(["/img/top", "/img/base"])
///     .upper("/c/upper")
///     .work("/c/work")
///     .mount("/c/rootfs")?;
/// m.unmount()?;
/// # Ok::<(), berth_overlay::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
#[doc(alias("overlay", "overlayfs"))]
pub struct Overlay {
    lowers: Vec<PathBuf>,
    upper: Option<PathBuf>,
    work: Option<PathBuf>,
    userxattr: bool,
    volatile: bool,
    index: Option<bool>,
    metacopy: Option<bool>,
    redirect_dir: Option<RedirectDir>,
    read_only: bool,
    method: MountMethod,
}

impl Overlay {
    /// An empty configuration; add at least one lower layer.
    ///
    /// ```
    /// let ov = berth_overlay::Overlay::new();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Append a lower layer. Layers are given top to bottom: the first call is
    /// the uppermost lower layer (overlay's `lowerdir=top:…:bottom` order).
    ///
    /// ```no_run
    /// let m = berth_overlay::Overlay::new()
    ///     .lower("/layers/app")
    ///     .lower("/layers/base")
    ///     .read_only()
    ///     .mount("/mnt/rootfs")?;
    /// # Ok::<(), berth_overlay::Error>(())
    /// ```
    #[doc(alias("lowerdir"))]
    pub fn lower(mut self, dir: impl Into<PathBuf>) -> Self {
        self.lowers.push(dir.into());
        self
    }

    /// Append several lower layers, top to bottom.
    ///
    /// ```no_run
    /// let m = berth_overlay::Overlay::new()
    ///     .lowers(["/layers/app", "/layers/base"])
    ///     .mount("/mnt/rootfs")?;
    /// # Ok::<(), berth_overlay::Error>(())
    /// ```
    #[doc(alias("lowerdir"))]
    pub fn lowers<I, P>(mut self, dirs: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<PathBuf>,
    {
        self.lowers.extend(dirs.into_iter().map(Into::into));
        self
    }

    /// The writable upper directory (needs [`work`](Overlay::work) on the same filesystem).
    ///
    /// ```no_run
    /// let m = berth_overlay::Overlay::new()
    ///     .lower("/layers/base")
    ///     .upper("/c/upper")
    ///     .work("/c/work")
    ///     .mount("/c/rootfs")?;
    /// # Ok::<(), berth_overlay::Error>(())
    /// ```
    #[doc(alias("upperdir"))]
    pub fn upper(mut self, dir: impl Into<PathBuf>) -> Self {
        self.upper = Some(dir.into());
        self
    }

    /// The work directory overlayfs needs next to the upper directory (empty, same filesystem).
    ///
    /// ```no_run
    /// let ov = berth_overlay::Overlay::new().lower("/l").upper("/c/upper").work("/c/work");
    /// ```
    #[doc(alias("workdir"))]
    pub fn work(mut self, dir: impl Into<PathBuf>) -> Self {
        self.work = Some(dir.into());
        self
    }

    /// `userxattr`: keep overlay metadata in `user.overlay.*` xattrs, which lets
    /// an unprivileged user mount inside a user namespace (Linux ≥ 5.11).
    ///
    /// ```no_run
    /// let ov = berth_overlay::Overlay::new().lower("/l").upper("/u").work("/w").userxattr();
    /// ```
    pub fn userxattr(mut self) -> Self {
        self.userxattr = true;
        self
    }

    /// `volatile`: skip all syncs of the upper layer (Linux ≥ 5.10); the upper
    /// layer is unusable after a crash. Requires an upper directory.
    ///
    /// ```no_run
    /// let ov = berth_overlay::Overlay::new().lower("/l").upper("/u").work("/w").volatile();
    /// ```
    pub fn volatile(mut self) -> Self {
        self.volatile = true;
        self
    }

    /// `index=on|off` (Linux ≥ 4.13).
    ///
    /// ```no_run
    /// let ov = berth_overlay::Overlay::new().lower("/l").upper("/u").work("/w").index(false);
    /// ```
    pub fn index(mut self, on: bool) -> Self {
        self.index = Some(on);
        self
    }

    /// `metacopy=on|off` (Linux ≥ 4.19). Note that [`crate::diff`] refuses metacopy uppers.
    ///
    /// ```no_run
    /// let ov = berth_overlay::Overlay::new().lower("/l").upper("/u").work("/w").metacopy(false);
    /// ```
    pub fn metacopy(mut self, on: bool) -> Self {
        self.metacopy = Some(on);
        self
    }

    /// `redirect_dir=` (Linux ≥ 4.10).
    ///
    /// ```no_run
    /// use berth_overlay::{Overlay, RedirectDir};
    /// let ov = Overlay::new().lower("/l").upper("/u").work("/w").redirect_dir(RedirectDir::Off);
    /// ```
    pub fn redirect_dir(mut self, mode: RedirectDir) -> Self {
        self.redirect_dir = Some(mode);
        self
    }

    /// Mount read-only (`MOUNT_ATTR_RDONLY`). Without an upper directory the
    /// overlay is always read-only.
    ///
    /// ```no_run
    /// let ov = berth_overlay::Overlay::new().lower("/a").lower("/b").read_only();
    /// ```
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Choose how to talk to the kernel (default [`MountMethod::Auto`]).
    ///
    /// ```no_run
    /// use berth_overlay::{MountMethod, Overlay};
    /// let ov = Overlay::new().lower("/a").lower("/b").method(MountMethod::Legacy);
    /// ```
    pub fn method(mut self, method: MountMethod) -> Self {
        self.method = method;
        self
    }

    /// The lower layers, top to bottom.
    pub fn lower_dirs(&self) -> &[PathBuf] {
        &self.lowers
    }

    fn validate(&self) -> Result<()> {
        if self.lowers.is_empty() {
            return Err(Error::InvalidConfig("no lower layer given".into()));
        }
        if self.upper.is_none() && self.lowers.len() < 2 {
            // Kernels before 6.x refuse a single lower without upper; be uniform.
            return Err(Error::InvalidConfig(
                "a read-only overlay (no upper) needs at least 2 lower layers; bind-mount a single layer instead".into(),
            ));
        }
        if self.upper.is_some() != self.work.is_some() {
            return Err(Error::InvalidConfig(
                "upper and work directories must be given together".into(),
            ));
        }
        if self.volatile && self.upper.is_none() {
            return Err(Error::InvalidConfig(
                "volatile needs an upper directory".into(),
            ));
        }
        if self.lowers.len() > 500 {
            return Err(Error::InvalidConfig(format!(
                "{} lower layers; overlayfs allows at most 500",
                self.lowers.len()
            )));
        }
        Ok(())
    }

    /// Which configured directory is missing. Only run after the kernel
    /// refused the mount, to keep per-layer stat(2) calls off the hot path.
    fn check_dirs(&self) -> Result<()> {
        for l in &self.lowers {
            if !l.is_dir() {
                return Err(Error::MissingDir {
                    role: "lower",
                    path: l.clone(),
                });
            }
        }
        if let Some(u) = &self.upper {
            if !u.is_dir() {
                return Err(Error::MissingDir {
                    role: "upper",
                    path: u.clone(),
                });
            }
        }
        if let Some(w) = &self.work {
            if !w.is_dir() {
                return Err(Error::MissingDir {
                    role: "work",
                    path: w.clone(),
                });
            }
        }
        Ok(())
    }

    /// Turn a kernel error caused by a missing directory into [`Error::MissingDir`].
    fn explain(&self, e: Error) -> Error {
        match e {
            Error::Mount { .. } => self.check_dirs().err().unwrap_or(e),
            e => e,
        }
    }

    /// Mount the overlay at `target` and return a guard that unmounts it on drop.
    ///
    /// Errors: [`Error::MissingDir`] for a lower/upper/work directory that does
    /// not exist, [`Error::InvalidConfig`], or [`Error::Mount`] with the kernel's
    /// own message. Nothing is left mounted on error.
    ///
    /// ```no_run
    /// let m = berth_overlay::Overlay::new()
    ///     .lower("/layers/base")
    ///     .upper("/c/upper")
    ///     .work("/c/work")
    ///     .mount("/c/rootfs")?;
    /// // ... use /c/rootfs ...
    /// m.unmount()?;
    /// # Ok::<(), berth_overlay::Error>(())
    /// ```
    #[doc(alias("fsopen", "fsconfig", "fsmount"))]
    pub fn mount(&self, target: impl AsRef<Path>) -> Result<OverlayMount> {
        self.validate()?;
        self.mount_inner(target.as_ref())
            .map_err(|e| self.explain(e))
    }

    fn mount_inner(&self, target: &Path) -> Result<OverlayMount> {
        let ctarget =
            sys::cpath(target).map_err(|e| mount_err("target path", target, String::new(), e))?;
        if self.use_append()? {
            let fd = self.create_new_api(&target.display().to_string())?;
            sys::move_mount_to(fd.as_fd(), &ctarget)
                .map_err(|e| mount_err("move_mount", target, String::new(), e))?;
            tracing::debug!(target = %target.display(), layers = self.lowers.len(), "overlay mounted (lowerdir+)");
            return Ok(OverlayMount {
                target: target.to_path_buf(),
                active: true,
            });
        }
        self.mount_legacy(target, &ctarget)?;
        tracing::debug!(target = %target.display(), layers = self.lowers.len(), "overlay mounted (legacy)");
        Ok(OverlayMount {
            target: target.to_path_buf(),
            active: true,
        })
    }

    /// Create the overlay as a detached mount (not attached anywhere yet): the
    /// returned fd can be attached later with [`DetachedOverlay::attach`] or
    /// `move_mount(fd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH)`, e.g.
    /// inside a container's new mount namespace. Dropping it unattached releases the mount.
    ///
    /// With [`MountMethod::Legacy`] (kernels < 6.8), the overlay is mounted on
    /// a private temporary directory, cloned with `open_tree(OPEN_TREE_CLONE)`,
    /// and the temporary mount is removed.
    ///
    /// ```no_run
    /// let det = berth_overlay::Overlay::new()
    ///     .lower("/layers/a")
    ///     .lower("/layers/b")
    ///     .mount_detached()?;
    /// let fd: std::os::fd::OwnedFd = det.into_fd();
    /// # Ok::<(), berth_overlay::Error>(())
    /// ```
    #[doc(alias("fsmount", "open_tree"))]
    pub fn mount_detached(&self) -> Result<DetachedOverlay> {
        self.validate()?;
        self.detached_inner().map_err(|e| self.explain(e))
    }

    fn detached_inner(&self) -> Result<DetachedOverlay> {
        if self.use_append()? {
            return Ok(DetachedOverlay {
                fd: self.create_new_api("detached")?,
            });
        }
        // Legacy: mount on a private temporary directory, clone it, drop the original.
        let tmp = std::env::temp_dir().join(format!(
            ".berth-overlay-{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&tmp)
            .map_err(|e| Error::io("create temporary mount point", &tmp, e))?;
        let result = (|| {
            let ct =
                sys::cpath(&tmp).map_err(|e| mount_err("target path", &tmp, String::new(), e))?;
            self.mount_legacy(&tmp, &ct)?;
            let cloned = sys::open_tree_clone(&ct)
                .map_err(|e| mount_err("open_tree(OPEN_TREE_CLONE)", &tmp, String::new(), e));
            if let Err(e) = sys::umount(&ct, true) {
                tracing::warn!(path = %tmp.display(), error = %e, "unmount temporary overlay");
            }
            cloned
        })();
        if let Err(e) = std::fs::remove_dir(&tmp) {
            tracing::warn!(path = %tmp.display(), error = %e, "remove temporary mount point");
        }
        Ok(DetachedOverlay { fd: result? })
    }

    fn use_append(&self) -> Result<bool> {
        Ok(match self.method {
            MountMethod::Legacy => false,
            MountMethod::Append => true,
            MountMethod::Auto => lowerdir_append_supported(),
        })
    }

    /// New mount API: fsopen, one `lowerdir+` per layer, options, create, fsmount.
    fn create_new_api(&self, target: &str) -> Result<OwnedFd> {
        let fs =
            sys::fsopen(c"overlay").map_err(|e| mount_err_s("fsopen", target, String::new(), e))?;
        let fail = |step: &str, e: io::Error| mount_err_s(step, target, sys::fs_log(fs.as_fd()), e);
        if !lowerdir_append_supported() {
            return Err(mount_err_s(
                "fsconfig lowerdir+",
                target,
                "lowerdir+ needs Linux >= 6.8; use MountMethod::Auto or Legacy".into(),
                io::Error::from_raw_os_error(libc::EOPNOTSUPP),
            ));
        }
        let mut held = Vec::new();
        // A path the kernel can copy (≤ 255 bytes) goes as a string: one
        // lookup in the kernel, nothing opened here. A longer one is opened
        // here (`O_PATH`) and passed by descriptor where the kernel takes
        // that, else as a `/proc/self/fd/N` string (a magic-link lookup).
        let add = |key: &CStr, dir: &Path, held: &mut Vec<File>| -> Result<()> {
            let step = || format!("fsconfig {}", key.to_string_lossy());
            if dir.as_os_str().len() > FSCONFIG_STRING_MAX && set_fd_opath_supported() {
                let f = open_path(dir).map_err(|e| fail(&format!("open {}", dir.display()), e))?;
                return sys::fsconfig_fd(fs.as_fd(), key, f.as_fd()).map_err(|e| fail(&step(), e));
            }
            let v = short_path(dir, FSCONFIG_STRING_MAX, held)
                .map_err(|e| fail(&format!("open {}", dir.display()), e))?;
            sys::fsconfig_string(fs.as_fd(), key, &v).map_err(|e| fail(&step(), e))
        };
        for l in &self.lowers {
            add(c"lowerdir+", l, &mut held)?;
        }
        for (key, dir) in [(c"upperdir", &self.upper), (c"workdir", &self.work)] {
            if let Some(d) = dir {
                add(key, d, &mut held)?;
            }
        }
        for (flag, on) in [(c"userxattr", self.userxattr), (c"volatile", self.volatile)] {
            if on {
                sys::fsconfig_flag(fs.as_fd(), flag)
                    .map_err(|e| fail(&format!("fsconfig {}", flag.to_string_lossy()), e))?;
            }
        }
        for (key, val) in self.string_options() {
            let k = CString::new(key)
                .map_err(|_| fail("option", io::Error::from(io::ErrorKind::InvalidInput)))?;
            let v = CString::new(val)
                .map_err(|_| fail("option", io::Error::from(io::ErrorKind::InvalidInput)))?;
            sys::fsconfig_string(fs.as_fd(), &k, &v)
                .map_err(|e| fail(&format!("fsconfig {key}={val}"), e))?;
        }
        sys::fsconfig_create(fs.as_fd()).map_err(|e| fail("fsconfig create", e))?;
        let attr = if self.read_only || self.upper.is_none() {
            sys::MountAttr::RDONLY
        } else {
            sys::MountAttr::empty()
        };
        let m = sys::fsmount(fs.as_fd(), attr).map_err(|e| fail("fsmount", e))?;
        drop(held);
        Ok(m)
    }

    fn string_options(&self) -> Vec<(&'static str, &'static str)> {
        let onoff = |b: bool| if b { "on" } else { "off" };
        let mut v = Vec::new();
        if let Some(i) = self.index {
            v.push(("index", onoff(i)));
        }
        if let Some(m) = self.metacopy {
            v.push(("metacopy", onoff(m)));
        }
        if let Some(r) = self.redirect_dir {
            v.push(("redirect_dir", r.as_str()));
        }
        v
    }

    /// Legacy `mount(2)` with the classic option string (one page at most).
    fn mount_legacy(&self, target: &Path, ctarget: &CStr) -> Result<()> {
        let mut held = Vec::new();
        let data = match self.legacy_data(false, &mut held) {
            Some(d) if d.len() <= LEGACY_DATA_MAX => d,
            _ => {
                held.clear();
                self.legacy_data(true, &mut held).ok_or_else(|| {
                    mount_err(
                        "open layer",
                        target,
                        String::new(),
                        io::Error::last_os_error(),
                    )
                })?
            }
        };
        if data.len() > LEGACY_DATA_MAX {
            return Err(Error::InvalidConfig(format!(
                "{} layers do not fit the legacy mount option page ({} bytes); this kernel lacks lowerdir+ (Linux ≥ 6.8)",
                self.lowers.len(),
                data.len()
            )));
        }
        let cdata = CString::new(data).map_err(|_| {
            mount_err(
                "option string",
                target,
                String::new(),
                io::Error::from(io::ErrorKind::InvalidInput),
            )
        })?;
        let read_only = self.read_only || self.upper.is_none();
        let r = sys::mount_fs(c"overlay", ctarget, c"overlay", read_only, &cdata);
        drop(held);
        r.map_err(|e| mount_err("mount(2)", target, String::new(), e))
    }

    /// The classic option string; with `by_fd`, each directory as `/proc/self/fd/N`.
    fn legacy_data(&self, by_fd: bool, held: &mut Vec<File>) -> Option<Vec<u8>> {
        let mut s = b"lowerdir=".to_vec();
        let enc = |p: &Path, s: &mut Vec<u8>, held: &mut Vec<File>| -> Option<()> {
            let bytes = p.as_os_str().as_bytes();
            if by_fd
                || bytes
                    .iter()
                    .any(|b| matches!(b, b',' | b':' | b'\\' | b'='))
            {
                let f = open_path(p).ok()?;
                s.extend_from_slice(format!("/proc/self/fd/{}", f.as_raw_fd()).as_bytes());
                held.push(f);
            } else {
                s.extend_from_slice(bytes);
            }
            Some(())
        };
        for (i, l) in self.lowers.iter().enumerate() {
            if i > 0 {
                s.push(b':');
            }
            enc(l, &mut s, held)?;
        }
        if let (Some(u), Some(w)) = (&self.upper, &self.work) {
            s.extend_from_slice(b",upperdir=");
            enc(u, &mut s, held)?;
            s.extend_from_slice(b",workdir=");
            enc(w, &mut s, held)?;
        }
        if self.userxattr {
            s.extend_from_slice(b",userxattr");
        }
        if self.volatile {
            s.extend_from_slice(b",volatile");
        }
        for (k, v) in self.string_options() {
            s.extend_from_slice(format!(",{k}={v}").as_bytes());
        }
        Some(s)
    }
}

/// Whether overlayfs takes `lowerdir+` (Linux ≥ 6.8), probed once per process.
///
/// Before 6.5 overlayfs has no fs_context parser: `fsconfig(2)` accepts any
/// key into a legacy option string and only `FSCONFIG_CMD_CREATE` fails. So
/// the probe checks both that `lowerdir+` is accepted and that a bogus key is
/// rejected (a real parser is present).
fn lowerdir_append_supported() -> bool {
    match LOWERDIR_APPEND.load(Ordering::Relaxed) {
        1 => return true,
        2 => return false,
        _ => {}
    }
    let supported = (|| {
        let fs = sys::fsopen(c"overlay").ok()?;
        sys::fsconfig_string(fs.as_fd(), c"lowerdir+", c"/").ok()?;
        let bogus = sys::fsconfig_flag(fs.as_fd(), c"berth-probe-no-such-option");
        Some(bogus.is_err())
    })()
    .unwrap_or(false);
    tracing::debug!(supported, "probed overlayfs lowerdir+");
    LOWERDIR_APPEND.store(if supported { 1 } else { 2 }, Ordering::Relaxed);
    supported
}

/// Whether overlayfs takes `O_PATH` directory descriptors through
/// `FSCONFIG_SET_FD` (`lowerdir+` by fd since Linux 6.13, `O_PATH` fds
/// since 6.15), probed once per process with `/`.
fn set_fd_opath_supported() -> bool {
    match SET_FD_OPATH.load(Ordering::Relaxed) {
        1 => return true,
        2 => return false,
        _ => {}
    }
    let supported = (|| {
        let fs = sys::fsopen(c"overlay").ok()?;
        let root = open_path(Path::new("/")).ok()?;
        Some(sys::fsconfig_fd(fs.as_fd(), c"lowerdir+", root.as_fd()).is_ok())
    })()
    .unwrap_or(false);
    tracing::debug!(supported, "probed overlayfs FSCONFIG_SET_FD with O_PATH");
    SET_FD_OPATH.store(if supported { 1 } else { 2 }, Ordering::Relaxed);
    supported
}

static TMP_COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn open_path(p: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(p)
}

/// The path as a C string, or `/proc/self/fd/N` of an `O_PATH` fd (kept in `held`) when too long.
fn short_path(p: &Path, max: usize, held: &mut Vec<File>) -> io::Result<CString> {
    let b = p.as_os_str().as_bytes();
    if b.len() <= max {
        return sys::cpath(p);
    }
    let f = open_path(p)?;
    let s = CString::new(format!("/proc/self/fd/{}", f.as_raw_fd()))
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    held.push(f);
    Ok(s)
}

fn mount_err(step: &str, target: &Path, kernel: String, source: io::Error) -> Error {
    mount_err_s(step, &target.display().to_string(), kernel, source)
}

fn mount_err_s(step: &str, target: &str, kernel: String, source: io::Error) -> Error {
    Error::Mount {
        step: step.to_string(),
        target: target.to_string(),
        kernel,
        source,
    }
}

/// A mounted overlay. Unmounted (lazily, `MNT_DETACH`) on drop with errors
/// logged; call [`unmount`](OverlayMount::unmount) to see errors.
///
/// ```no_run
/// let m = berth_overlay::Overlay::new().lower("/img").read_only().mount("/mnt/ro")?;
/// assert_eq!(m.target(), std::path::Path::new("/mnt/ro"));
/// m.unmount()?; // also on drop, best effort
/// # Ok::<(), berth_overlay::Error>(())
/// ```
#[derive(Debug)]
#[must_use = "dropping the guard unmounts the overlay"]
pub struct OverlayMount {
    target: PathBuf,
    active: bool,
}

impl OverlayMount {
    /// The mount point.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Unmount now (`umount2(target, 0)`), reporting the error (e.g. `EBUSY`).
    /// On error the guard still tries a lazy unmount when dropped.
    pub fn unmount(mut self) -> Result<()> {
        let c = sys::cpath(&self.target).map_err(|e| Error::Unmount {
            target: self.target.clone(),
            source: e,
        })?;
        sys::umount(&c, false).map_err(|source| Error::Unmount {
            target: self.target.clone(),
            source,
        })?;
        self.active = false;
        Ok(())
    }

    /// Give up ownership: the overlay stays mounted and is no longer unmounted on drop.
    pub fn leak(mut self) -> PathBuf {
        self.active = false;
        std::mem::take(&mut self.target)
    }
}

impl Drop for OverlayMount {
    fn drop(&mut self) {
        if !self.active {
            return;
        }
        match sys::cpath(&self.target) {
            Ok(c) => {
                if let Err(e) = sys::umount(&c, true) {
                    tracing::warn!(target = %self.target.display(), error = %e, "unmount overlay on drop");
                }
            }
            Err(e) => {
                tracing::warn!(target = %self.target.display(), error = %e, "unmount overlay on drop")
            }
        }
    }
}

/// A detached overlay mount (from `fsmount(2)` or `open_tree(2)`), not yet
/// attached to any mount point. Closing it unattached releases the overlay.
///
/// ```no_run
/// let d = berth_overlay::Overlay::new().lower("/img").upper("/c/u").work("/c/w").mount_detached()?;
/// let m = d.attach("/c/rootfs")?; // move_mount
/// # Ok::<(), berth_overlay::Error>(())
/// ```
#[derive(Debug)]
#[doc(alias("move_mount"))]
pub struct DetachedOverlay {
    fd: OwnedFd,
}

impl DetachedOverlay {
    /// Attach it at `target` with `move_mount(2)` in the caller's mount namespace.
    ///
    /// ```no_run
    /// let det = berth_overlay::Overlay::new().lower("/a").lower("/b").mount_detached()?;
    /// let m = det.attach("/mnt/rootfs")?;
    /// # Ok::<(), berth_overlay::Error>(())
    /// ```
    pub fn attach(self, target: impl AsRef<Path>) -> Result<OverlayMount> {
        let target = target.as_ref();
        let c =
            sys::cpath(target).map_err(|e| mount_err("target path", target, String::new(), e))?;
        sys::move_mount_to(self.fd.as_fd(), &c)
            .map_err(|e| mount_err("move_mount", target, String::new(), e))?;
        Ok(OverlayMount {
            target: target.to_path_buf(),
            active: true,
        })
    }

    /// The mount fd, e.g. to `move_mount` it inside another mount namespace.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

impl AsFd for DetachedOverlay {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
