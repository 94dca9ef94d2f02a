//! Plain configuration values given to the builder: root filesystems,
//! networks, extra mounts and the seccomp choice.

use std::path::{Path, PathBuf};

use berth_netsetup::PortMapping;
use berth_overlay::{ImageConfig, ImageLayout, LayerStore, UnpackOptions};

use crate::error::{Error, Result};

/// The container's root filesystem.
#[derive(Debug, Clone)]
#[doc(alias("pivot_root", "rootfs"))]
pub struct Rootfs {
    pub(crate) kind: RootfsKind,
    pub(crate) config: Option<ImageConfig>,
    pub(crate) image_ref: Option<(LayerStore, String, Vec<berth_overlay::Digest>)>,
}

#[derive(Debug, Clone)]
pub(crate) enum RootfsKind {
    /// A directory: bind-mounted when writable, the lower layer of a
    /// private overlay when the root is read-only (fs.rs).
    Dir(PathBuf),
    /// Overlay of these lower directories (top to bottom) with a private
    /// writable layer in memory.
    Layers(Vec<PathBuf>),
    /// Overlay over the host's `/` with a private writable layer.
    Host,
}

impl Rootfs {
    /// An existing directory as `/`. Writable, it is bind-mounted and the
    /// container's changes (and the mount points berth makes) are written
    /// to it. With [`read_only_root`](crate::ContainerBuilder::read_only_root)
    /// it is never modified: it is the lower layer of an overlay whose
    /// writable layer is private and in memory, which receives the mount
    /// points and berth's `/etc/hosts` and `/etc/hostname` (present even
    /// when the directory has none; rootless, those two are only bound
    /// over files the directory has). Mounts below the directory are not
    /// seen through the overlay, and its path must not contain `:` or `,`.
    ///
    /// ```
    /// let r = berth::Rootfs::dir("/var/lib/rootfs/busybox");
    /// ```
    pub fn dir(path: impl Into<PathBuf>) -> Rootfs {
        Rootfs {
            kind: RootfsKind::Dir(path.into()),
            config: None,
            image_ref: None,
        }
    }

    /// The host's own `/` as a read-only lower layer under a private,
    /// in-memory writable layer: the container sees the host's files, every
    /// change stays inside it. The default; needs no image at all.
    ///
    /// ```
    /// let r = berth::Rootfs::host();
    /// ```
    pub fn host() -> Rootfs {
        Rootfs {
            kind: RootfsKind::Host,
            config: None,
            image_ref: None,
        }
    }

    /// An overlay of these directories, given top to bottom, under a private
    /// in-memory writable layer.
    ///
    /// ```
    /// let r = berth::Rootfs::layers(["/layers/app", "/layers/base"]);
    /// ```
    #[doc(alias("overlay", "lowerdir"))]
    pub fn layers<I, P>(dirs: I) -> Rootfs
    where
        I: IntoIterator<Item = P>,
        P: Into<PathBuf>,
    {
        Rootfs {
            kind: RootfsKind::Layers(dirs.into_iter().map(Into::into).collect()),
            config: None,
            image_ref: None,
        }
    }

    /// The image `reference` (a tag such as `latest`, or a full ref name) of
    /// the local OCI image layout `layout`, its layers imported into `store`
    /// (layers already there are reused). The image config supplies the
    /// default command, environment, working directory and user.
    ///
    /// ```no_run
    /// use berth_overlay::{ImageLayout, LayerStore};
    /// let store = LayerStore::open("/var/lib/berth/store")?;
    /// let layout = ImageLayout::open("/images/busybox")?;
    /// let r = berth::Rootfs::image(&store, &layout, "latest")?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn image(store: &LayerStore, layout: &ImageLayout, reference: &str) -> Result<Rootfs> {
        let img = layout.import(store, reference, &UnpackOptions::default())?;
        let digests = img.layers.iter().map(|l| l.digest.clone()).collect();
        Ok(Rootfs {
            kind: RootfsKind::Layers(img.lower_dirs),
            config: Some(img.config),
            image_ref: Some((store.clone(), reference.to_string(), digests)),
        })
    }

    /// Like [`image`](Self::image), opening the layout directory `layout`
    /// and using the default layer store ([`default_store_dir`]).
    ///
    /// ```no_run
    /// let r = berth::Rootfs::image_layout("/images/busybox", "latest")?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn image_layout(layout: impl AsRef<Path>, reference: &str) -> Result<Rootfs> {
        let layout = ImageLayout::open(layout.as_ref())?;
        let store = LayerStore::open(default_store_dir())?;
        Rootfs::image(&store, &layout, reference)
    }

    /// The image config (command, env, working dir, user) when the rootfs
    /// came from an image.
    pub fn image_config(&self) -> Option<&ImageConfig> {
        self.config.as_ref()
    }
}

/// The default layer store: `/var/lib/berth/store` as root,
/// `$XDG_DATA_HOME/berth/store` (or `$HOME/.local/share/berth/store`)
/// otherwise, each only when absolute (the XDG base directory
/// specification ignores a relative one), else `/tmp/berth-store-<uid>`
/// (never a directory shared with other users, as `/tmp/.local` would be).
/// [`LayerStore::open`] creates it 0700 and refuses one another user made:
/// its layers keep their images' setuid binaries and device nodes.
pub fn default_store_dir() -> PathBuf {
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    if uid == 0 {
        return PathBuf::from("/var/lib/berth/store");
    }
    let abs = |v: &str| {
        std::env::var_os(v)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if let Some(d) = abs("XDG_DATA_HOME") {
        return d.join("berth/store");
    }
    if let Some(h) = abs("HOME") {
        return h.join(".local/share/berth/store");
    }
    PathBuf::from(format!("/tmp/berth-store-{uid}"))
}

/// The container's network.
#[derive(Debug, Clone)]
pub struct Network {
    pub(crate) kind: NetKind,
}

#[derive(Debug, Clone)]
pub(crate) enum NetKind {
    None,
    Loopback,
    Host,
    Bridge(BridgeSpec),
    /// A user-defined network (network.rs).
    User(crate::network::UserSpec),
    /// Rootless networking through pasta, with these published ports.
    Pasta(Vec<PortMapping>),
}

#[derive(Debug, Clone)]
pub(crate) struct BridgeSpec {
    pub name: String,
    pub bridge: Option<String>,
    pub subnet: Option<String>,
    pub masquerade: bool,
    pub ip_forward: bool,
    pub state_dir: Option<PathBuf>,
    pub ports: Vec<PortMapping>,
}

impl Network {
    /// A new network namespace with nothing configured: not even `lo` is up.
    ///
    /// ```
    /// let n = berth::Network::none();
    /// ```
    pub fn none() -> Network {
        Network {
            kind: NetKind::None,
        }
    }

    /// A new network namespace with only `lo` up (the default).
    ///
    /// ```
    /// let n = berth::Network::loopback();
    /// ```
    pub fn loopback() -> Network {
        Network {
            kind: NetKind::Loopback,
        }
    }

    /// The host's network namespace (no isolation).
    ///
    /// ```
    /// let n = berth::Network::host();
    /// ```
    pub fn host() -> Network {
        Network {
            kind: NetKind::Host,
        }
    }

    /// A veth pair to the bridge network `name` (berth-netsetup: bridge,
    /// IPAM, masquerade), `eth0` inside with an address and a default route.
    /// The bridge interface defaults to the network name.
    ///
    /// ```
    /// let n = berth::Network::bridge("berth0").publish(berth_netsetup::PortMapping::tcp(8080, 80));
    /// ```
    pub fn bridge(name: &str) -> Network {
        Network {
            kind: NetKind::Bridge(BridgeSpec {
                name: name.to_string(),
                bridge: None,
                subnet: None,
                masquerade: true,
                ip_forward: true,
                state_dir: None,
                ports: Vec::new(),
            }),
        }
    }

    /// Rootless networking through `pasta` (Debian package `passt`), as
    /// rootless podman does: a tap interface with the host's address and
    /// routes, outbound TCP/UDP as sockets of the calling user (connections
    /// to the gateway address reach the host's loopback), and published
    /// ports ([`Network::publish`]) forwarded by pasta. Needs no privilege;
    /// pasta is ended when the container is destroyed.
    ///
    /// ```
    /// let n = berth::Network::pasta().publish(berth_netsetup::PortMapping::tcp(8080, 80));
    /// ```
    pub fn pasta() -> Network {
        Network {
            kind: NetKind::Pasta(Vec::new()),
        }
    }

    /// Bridge networks only: the bridge interface name (default: the network name).
    ///
    /// ```
    /// let n = berth::Network::bridge("web").bridge_ifname("br-web");
    /// ```
    pub fn bridge_ifname(mut self, ifname: &str) -> Network {
        if let NetKind::Bridge(b) = &mut self.kind {
            b.bridge = Some(ifname.to_string());
        }
        self
    }

    /// Bridge networks only: the subnet (default: netsetup's).
    ///
    /// ```
    /// let n = berth::Network::bridge("web").subnet("10.89.0.0/24");
    /// ```
    pub fn subnet(mut self, cidr: &str) -> Network {
        if let NetKind::Bridge(b) = &mut self.kind {
            b.subnet = Some(cidr.to_string());
        }
        self
    }

    /// Bridge networks only: masquerade outgoing traffic (default on).
    ///
    /// ```
    /// let n = berth::Network::bridge("web").masquerade(false);
    /// ```
    pub fn masquerade(mut self, on: bool) -> Network {
        if let NetKind::Bridge(b) = &mut self.kind {
            b.masquerade = on;
        }
        self
    }

    /// Bridge networks only: set `net.ipv4.ip_forward=1` on the host (default
    /// on, needed for masquerade and published ports; the original value
    /// comes back when the last network that turned it on is removed).
    ///
    /// ```
    /// let n = berth::Network::bridge("web").ip_forward(false);
    /// ```
    pub fn ip_forward(mut self, on: bool) -> Network {
        if let NetKind::Bridge(b) = &mut self.kind {
            b.ip_forward = on;
        }
        self
    }

    /// Bridge networks and [`Network::named`] ones: berth-netsetup's state
    /// directory (IPAM and firewall bookkeeping, network records; default
    /// `berth_netsetup::DEFAULT_STATE_DIR`).
    ///
    /// ```
    /// let n = berth::Network::bridge("web").state_dir("/run/my-nets");
    /// ```
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Network {
        match &mut self.kind {
            NetKind::Bridge(b) => b.state_dir = Some(dir.into()),
            NetKind::User(u) if u.handle.is_none() => u.state_dir = Some(dir.into()),
            _ => {}
        }
        self
    }

    /// Bridge, user-defined and pasta networks: publish a port (DNAT from
    /// the host for a bridge; `host_ip` 127.0.0.1 publishes on the host's
    /// loopback only, as `docker run -p 127.0.0.1:8080:80` does; a forward
    /// by pasta). A host port that a socket is bound to, or another
    /// container published, is an error naming it.
    ///
    /// ```
    /// let n = berth::Network::bridge("web").publish(berth_netsetup::PortMapping::tcp(8080, 80));
    /// ```
    pub fn publish(mut self, port: PortMapping) -> Network {
        match &mut self.kind {
            NetKind::Bridge(b) => b.ports.push(port),
            NetKind::User(u) => u.ports.push(port),
            NetKind::Pasta(ports) => ports.push(port),
            _ => {}
        }
        self
    }

    pub(crate) fn has_own_netns(&self) -> bool {
        !matches!(self.kind, NetKind::Host)
    }
}

/// Mount propagation of a bind mount (mount_namespaces(7)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// `MS_PRIVATE` (the default): no events either way.
    Private,
    /// `MS_SLAVE`: host mount events arrive, nothing goes back.
    Slave,
    /// `MS_SHARED`: events go both ways.
    Shared,
}

/// An extra mount inside the container: a bind mount or a tmpfs.
#[derive(Debug, Clone)]
pub struct Mount {
    pub(crate) dst: PathBuf,
    pub(crate) kind: MountKind,
}

#[derive(Debug, Clone)]
pub(crate) enum MountKind {
    Bind {
        src: PathBuf,
        readonly: bool,
        recursive: bool,
        propagation: Propagation,
    },
    Tmpfs {
        size: Option<u64>,
        mode: u32,
    },
}

impl Mount {
    /// Bind-mount host path `src` at `dst` inside (read-write, recursive, private).
    ///
    /// ```
    /// let m = berth::Mount::bind("/srv/data", "/data").read_only();
    /// ```
    pub fn bind(src: impl Into<PathBuf>, dst: impl Into<PathBuf>) -> Mount {
        Mount {
            dst: dst.into(),
            kind: MountKind::Bind {
                src: src.into(),
                readonly: false,
                recursive: true,
                propagation: Propagation::Private,
            },
        }
    }

    /// A tmpfs at `dst` (mode 1777, no size limit beyond the kernel's default).
    ///
    /// ```
    /// let m = berth::Mount::tmpfs("/run").size(16 << 20).mode(0o755);
    /// ```
    pub fn tmpfs(dst: impl Into<PathBuf>) -> Mount {
        Mount {
            dst: dst.into(),
            kind: MountKind::Tmpfs {
                size: None,
                mode: 0o1777,
            },
        }
    }

    /// Bind mounts: make it read-only (`MOUNT_ATTR_RDONLY`).
    ///
    /// ```
    /// let m = berth::Mount::bind("/srv", "/srv").read_only();
    /// ```
    pub fn read_only(mut self) -> Mount {
        if let MountKind::Bind { readonly, .. } = &mut self.kind {
            *readonly = true;
        }
        self
    }

    /// Bind mounts: include submounts (`MS_REC`, the default) or not.
    ///
    /// ```
    /// let m = berth::Mount::bind("/srv", "/srv").recursive(false);
    /// ```
    pub fn recursive(mut self, on: bool) -> Mount {
        if let MountKind::Bind { recursive, .. } = &mut self.kind {
            *recursive = on;
        }
        self
    }

    /// Bind mounts: the propagation type.
    ///
    /// ```
    /// let m = berth::Mount::bind("/mnt", "/mnt").propagation(berth::Propagation::Slave);
    /// ```
    pub fn propagation(mut self, p: Propagation) -> Mount {
        if let MountKind::Bind { propagation, .. } = &mut self.kind {
            *propagation = p;
        }
        self
    }

    /// Tmpfs mounts: size limit in bytes.
    ///
    /// ```
    /// let m = berth::Mount::tmpfs("/tmp").size(64 << 20);
    /// ```
    pub fn size(mut self, bytes: u64) -> Mount {
        if let MountKind::Tmpfs { size, .. } = &mut self.kind {
            *size = Some(bytes);
        }
        self
    }

    /// Tmpfs mounts: permission bits of the root directory.
    ///
    /// ```
    /// let m = berth::Mount::tmpfs("/tmp").mode(0o700);
    /// ```
    pub fn mode(mut self, mode: u32) -> Mount {
        if let MountKind::Tmpfs { mode: m, .. } = &mut self.kind {
            *m = mode;
        }
        self
    }

    /// The mount point inside the container.
    pub fn destination(&self) -> &Path {
        &self.dst
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if !self.dst.is_absolute()
            || self.dst.components().any(|c| {
                matches!(
                    c,
                    std::path::Component::ParentDir | std::path::Component::CurDir
                )
            })
        {
            return Err(Error::invalid(format!(
                "mount destination {:?} must be an absolute path without `.` or `..`",
                self.dst
            )));
        }
        if self.dst == Path::new("/") {
            return Err(Error::invalid("a mount cannot replace `/`"));
        }
        if let MountKind::Bind { src, .. } = &self.kind {
            if std::fs::symlink_metadata(src).is_err() {
                return Err(Error::VolumeSourceMissing { path: src.clone() });
            }
        }
        if let MountKind::Tmpfs { mode, .. } = &self.kind {
            if *mode > 0o7777 {
                return Err(Error::invalid(format!(
                    "tmpfs mode {mode:o} is not a permission mode"
                )));
            }
        }
        Ok(())
    }
}

/// Which seccomp filter the workload gets.
#[derive(Debug, Clone, Default)]
#[doc(alias("SECCOMP_SET_MODE_FILTER"))]
pub enum Seccomp {
    /// Docker's default profile (compiled once per capability set and cached).
    #[default]
    Default,
    /// No filter (`seccomp=unconfined`).
    Unconfined,
    /// This profile.
    Profile(berth_security::SeccompProfile),
}
