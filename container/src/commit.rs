//! A container's changes as an OCI layer ([`Container::diff`]), a new image
//! from them ([`Container::commit`]), and an image config without an image
//! ([`ContainerBuilder::image_config`]).
//!
//! The writable layer (the overlay's upper directory) lives on the tmpfs
//! the child mounts over the state directory in the container's own mount
//! namespace (fs.rs), which `pivot_root` then detaches: no path reaches it
//! from the host, nor from inside. So a step of the child plan, right after
//! the overlay mount, opens the upper directory and sends the fd to the
//! parent over a socketpair (`SCM_RIGHTS`, unix(7)). The container handle
//! holds that fd: it keeps the tmpfs alive after the container's processes
//! exited and its mount namespace is gone (an open file pins its mount and
//! superblock), until `destroy`/drop. The export reads the tree below that
//! fd only, every entry as one component below a held directory fd
//! (`berth_overlay::diff`), so a container rewriting its files while it is
//! exported cannot make the host read its own files into the layer.

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
#[cfg(feature = "oci")]
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use berth_namespaces::Step;
use berth_overlay::{Compression, ImageConfig, LayerBlob};
#[cfg(feature = "oci")]
use berth_overlay::{ImageBuilder, ImageLayout, LayerStore};
use berth_sys::child;

use crate::builder::ContainerBuilder;
use crate::container::Container;
use crate::error::{Error, Result};

/// The child's end of the upper-directory socketpair sits at this fd
/// (`Spawner::map_fd`) until the step closes it (the pty's is 255).
pub(crate) const UPPER_SOCKET_FD: RawFd = 254;

/// What `diff` and `commit` need of a container with a writable layer.
// `lowers` and `config` are commit's (feature `oci`).
#[cfg_attr(not(feature = "oci"), allow(dead_code))]
#[derive(Debug)]
pub(crate) struct WritableLayer {
    /// The overlay's upper directory (an `O_RDONLY | O_DIRECTORY` fd).
    pub upper: OwnedFd,
    /// The lower layers, top first; `None` for the host's `/`.
    pub lowers: Option<Vec<PathBuf>>,
    /// Files berth itself wrote into the writable layer (`etc/hostname`…).
    pub exclude: Vec<PathBuf>,
    /// The image config a commit records: the container's env, cwd, argv, user.
    pub config: ImageConfig,
}

/// Child step: open `upper` (a directory on the state directory's tmpfs,
/// a path berth made) and send it over [`UPPER_SOCKET_FD`], which is
/// closed either way. Raw syscalls on data prepared here only.
pub(crate) fn send_upper_step(upper: &Path) -> Result<Step> {
    let path = CString::new(upper.as_os_str().as_bytes())
        .map_err(|_| Error::invalid(format!("path {upper:?} contains a NUL byte")))?;
    // SAFETY: the hook makes only berth_sys::child calls (raw syscalls)
    // on a C string prepared here; it allocates nothing.
    Ok(unsafe {
        Step::hook(
            format!("send the writable layer {} to the parent", upper.display()),
            move || {
                let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
                let r = child::open(&path, flags, 0).and_then(|fd| {
                    let r = child::send_fd(UPPER_SOCKET_FD, fd);
                    child::close(fd);
                    r
                });
                child::close(UPPER_SOCKET_FD);
                r
            },
        )
    })
}

impl Container {
    fn writable_layer(&self, what: &'static str) -> Result<&WritableLayer> {
        self.layer.as_ref().ok_or_else(|| Error::Process {
            what,
            id: self.id.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "the container has no writable layer of its own (a Rootfs::dir root is changed in place)",
            ),
        })
    }

    /// The container's changes, its writable layer, as an OCI layer tar
    /// written to `out` (compressed as `compression`): new and changed
    /// files, a `.wh.<name>` whiteout for each deleted one, `.wh..wh..opq`
    /// for a directory replaced as a whole; returns its digest and
    /// `diff_id`. Works while the container runs and after it exited (until
    /// [`destroy`](Self::destroy)). Files berth itself writes into the layer
    /// (`/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf`) are left out, as
    /// Docker's init layer keeps them out of `docker diff`. Only for a
    /// container on layers, an image or the host's `/`
    /// ([`Rootfs::layers`](crate::Rootfs::layers),
    /// [`Rootfs::image`](crate::Rootfs::image),
    /// [`Rootfs::host`](crate::Rootfs::host)).
    ///
    /// A running container may change files while they are exported: each
    /// file is read whole or as it is at that moment (pause it for a
    /// consistent layer, as [`commit`](Self::commit) does).
    ///
    /// ```no_run
    /// use berth_overlay::Compression;
    /// # let c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// let blob = c.diff(std::fs::File::create("/tmp/changes.tar")?, Compression::None)?;
    /// println!("{}", blob.diff_id);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn diff<W: Write>(&self, out: W, compression: Compression) -> Result<LayerBlob> {
        let l = self.writable_layer("diff")?;
        let dir = format!("/proc/self/fd/{}", l.upper.as_raw_fd());
        Ok(berth_overlay::diff_excluding(
            dir,
            out,
            compression,
            &l.exclude,
        )?)
    }

    #[cfg(feature = "oci")]
    /// A new image `reference` in the OCI image layout `layout` (created if
    /// needed, other references kept): the container's lower layers
    /// (exported from their directories), its changes ([`diff`](Self::diff))
    /// on top, and a config with the container's environment (without
    /// `HOSTNAME`), working directory, command (as `Cmd`) and user. The
    /// container is paused while its layer is read when it runs and has a
    /// cgroup (`docker commit`'s default). The image is imported into
    /// `store` and returned, ready for [`Rootfs::image`](crate::Rootfs::image).
    /// Not for a container on the host's `/` (it would copy the host).
    ///
    /// ```no_run
    /// use berth_overlay::{ImageLayout, LayerStore};
    /// # let c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// let store = LayerStore::open("/var/lib/berth/store")?;
    /// c.commit(&store, "/images/mine", "snapshot")?;
    /// let rootfs = berth::Rootfs::image(&store, &ImageLayout::open("/images/mine")?, "snapshot")?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn commit(
        &self,
        store: &LayerStore,
        layout: impl AsRef<Path>,
        reference: &str,
    ) -> Result<berth_overlay::Image> {
        let layout = layout.as_ref();
        let l = self.writable_layer("commit")?;
        let Some(lowers) = &l.lowers else {
            return Err(Error::invalid(format!(
                "commit of container {:?}: its root is the host's / (committing would copy the host); diff() exports its changes",
                self.id
            )));
        };
        let blobs = layout.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).map_err(|e| Error::io("create image layout", &blobs, e))?;
        let tmp = TempFile(blobs.join(format!(".commit-{}-{}", std::process::id(), self.id)));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp.0)
            .map_err(|e| Error::io("create a temporary layer file", &tmp.0, e))?;
        let paused = self.status.is_none() && self.cgroup.is_some() && self.pause().is_ok();
        let mut w = std::io::BufWriter::new(file);
        let res = self.diff(&mut w, Compression::Gzip);
        if paused {
            if let Err(e) = self.resume() {
                tracing::warn!(container = %self.id, error = %e, "resume after commit");
            }
        }
        res?;
        w.flush()
            .map_err(|e| Error::io("write the layer", &tmp.0, e))?;
        drop(w);
        let c = &l.config;
        let mut b = ImageBuilder::new(reference).env(c.env.iter().cloned());
        for dir in lowers.iter().rev() {
            b = b.layer_dir(dir);
        }
        b = b
            .layer_blob(&tmp.0, Compression::Gzip)
            .cmd(c.cmd.iter().cloned());
        if let Some(w) = &c.working_dir {
            b = b.working_dir(w.clone());
        }
        if let Some(u) = &c.user {
            b = b.user(u.clone());
        }
        b.write(layout)?;
        drop(tmp);
        let img = ImageLayout::open(layout)?.import(
            store,
            reference,
            &berth_overlay::UnpackOptions::default(),
        )?;
        Ok(img)
    }
}

#[cfg(feature = "oci")]
/// Removed on drop.
struct TempFile(PathBuf);

#[cfg(feature = "oci")]
impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl ContainerBuilder {
    /// Take the command (`Entrypoint` + `Cmd`), environment, working
    /// directory and user (a name is looked up in the rootfs's
    /// `/etc/passwd`) from `config`, as an image rootfs supplies them, for
    /// a root without an image ([`Rootfs::dir`](crate::Rootfs::dir),
    /// [`Rootfs::layers`](crate::Rootfs::layers)); replaces an image
    /// rootfs's own config. Explicit [`command`](Self::command),
    /// [`env`](Self::env), [`current_dir`](Self::current_dir) and
    /// [`user`](Self::user) still win.
    ///
    /// ```
    /// let cfg = berth_overlay::ImageConfig {
    ///     env: vec!["APP=1".into()],
    ///     cmd: vec!["/bin/app".into()],
    ///     working_dir: Some("/srv".into()),
    ///     ..Default::default()
    /// };
    /// let b = berth::Container::builder("c")
    ///     .rootfs(berth::Rootfs::dir("/srv/rootfs"))
    ///     .image_config(&cfg);
    /// ```
    pub fn image_config(mut self, config: &ImageConfig) -> Self {
        self.image_config = Some(config.clone());
        self
    }
}
