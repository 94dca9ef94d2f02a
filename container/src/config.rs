//! Plain configuration values given to the builder: root filesystems,
//! networks, extra mounts and the seccomp choice.

use std::path::{Path, PathBuf};

use berth_netsetup::PortMapping;
use berth_overlay::{ImageConfig, LayerStore};
#[cfg(feature = "oci")]
use berth_overlay::{ImageLayout, UnpackOptions};

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

    #[cfg(feature = "oci")]
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

    #[cfg(feature = "oci")]
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
    let uid = berth_sys::fs::euid();
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
    /// `MS_SHARED`: events go both ways when the root's propagation is
    /// shared too ([`ContainerBuilder::rootfs_propagation`], as runc):
    /// the bind stays a peer of a shared host source, so mounts made
    /// below it in the container appear on the host. Otherwise (and
    /// always in a user namespace) host events arrive and the container's
    /// stay inside ("slave and shared").
    ///
    /// [`ContainerBuilder::rootfs_propagation`]: crate::ContainerBuilder::rootfs_propagation
    Shared,
    /// `MS_UNBINDABLE`: private, and the mount cannot be bind-mounted.
    Unbindable,
}

impl Propagation {
    /// The `mount(2)` propagation flag (`MS_PRIVATE`, `MS_SLAVE`,
    /// `MS_SHARED`, `MS_UNBINDABLE`).
    pub(crate) fn ms_flag(self) -> libc::c_ulong {
        match self {
            Propagation::Private => libc::MS_PRIVATE,
            Propagation::Slave => libc::MS_SLAVE,
            Propagation::Shared => libc::MS_SHARED,
            Propagation::Unbindable => libc::MS_UNBINDABLE,
        }
    }
}

/// `mount_setattr(2)` attributes (Linux 5.12, include/uapi/linux/mount.h).
pub(crate) mod attr {
    pub const RDONLY: u64 = 0x1;
    pub const NOSUID: u64 = 0x2;
    pub const NODEV: u64 = 0x4;
    pub const NOEXEC: u64 = 0x8;
    /// The atime mode mask: relatime (0), noatime, strictatime.
    pub const ATIME: u64 = 0x70;
    pub const NOATIME: u64 = 0x10;
    pub const STRICTATIME: u64 = 0x20;
    pub const NODIRATIME: u64 = 0x80;
    /// Linux 5.10.
    pub const NOSYMFOLLOW: u64 = 0x0020_0000;
}

/// What a mount's option words (the runtime-spec's Linux mount options,
/// fstab(5) words) ask for beyond its kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct MountOpts {
    /// Superblock flags for the `mount(2)` of a new filesystem (sync,
    /// dirsync, mand, lazytime, iversion, silent). Ignored for bind
    /// mounts: their superblock is the source's (the host's).
    pub sb_flags: libc::c_ulong,
    /// Per-mount attributes set/cleared on the mount itself.
    pub attr_set: u64,
    pub attr_clr: u64,
    /// Per-mount attributes set/cleared on the mount and every submount
    /// (the `r` forms: `rro`, `rnosuid`, ...; `AT_RECURSIVE`).
    pub rattr_set: u64,
    pub rattr_clr: u64,
    /// `MS_SHARED`/`MS_SLAVE`/`MS_PRIVATE`/`MS_UNBINDABLE` (with `MS_REC`
    /// for the `r` forms), or 0 for the kind's default.
    pub propagation: libc::c_ulong,
}

impl MountOpts {
    /// Apply one option word; `Ok(false)` when the word is not a mount
    /// option this parser knows (the caller decides: data, or an error).
    pub(crate) fn apply(&mut self, word: &str) -> std::result::Result<bool, String> {
        use attr::*;
        let (rec, w) = match word.strip_prefix('r') {
            // `r` forms of per-mount attributes and propagation; not
            // "ro", "rw", "relatime", "remount" (words of their own).
            Some(rest) if !matches!(word, "ro" | "rw" | "relatime" | "remount") => (true, rest),
            _ => (false, word),
        };
        // (set, clear) of per-mount attributes.
        let a: Option<(u64, u64)> = match w {
            "ro" => Some((RDONLY, 0)),
            "rw" => Some((0, RDONLY)),
            "nosuid" => Some((NOSUID, 0)),
            "suid" => Some((0, NOSUID)),
            "nodev" => Some((NODEV, 0)),
            "dev" => Some((0, NODEV)),
            "noexec" => Some((NOEXEC, 0)),
            "exec" => Some((0, NOEXEC)),
            "noatime" => Some((NOATIME, ATIME)),
            "strictatime" | "norelatime" => Some((STRICTATIME, ATIME)),
            "relatime" | "atime" | "nostrictatime" => Some((0, ATIME)),
            "nodiratime" => Some((NODIRATIME, 0)),
            "diratime" => Some((0, NODIRATIME)),
            "nosymfollow" => Some((NOSYMFOLLOW, 0)),
            "symfollow" => Some((0, NOSYMFOLLOW)),
            _ => None,
        };
        if let Some((set, clr)) = a {
            let (s, c) = if rec {
                (&mut self.rattr_set, &mut self.rattr_clr)
            } else {
                (&mut self.attr_set, &mut self.attr_clr)
            };
            // A later word wins over an earlier one.
            *s = (*s & !clr & !set) | set;
            *c = (*c & !set) | clr;
            return Ok(true);
        }
        let prop = match w {
            "shared" => Some(libc::MS_SHARED),
            "slave" => Some(libc::MS_SLAVE),
            "private" => Some(libc::MS_PRIVATE),
            "unbindable" => Some(libc::MS_UNBINDABLE),
            _ => None,
        };
        if let Some(p) = prop {
            self.propagation = p | if rec { libc::MS_REC } else { 0 };
            return Ok(true);
        }
        if rec {
            return Ok(false);
        }
        let sb: Option<(libc::c_ulong, bool)> = match w {
            "sync" => Some((libc::MS_SYNCHRONOUS, true)),
            "async" => Some((libc::MS_SYNCHRONOUS, false)),
            "dirsync" => Some((libc::MS_DIRSYNC, true)),
            "mand" => Some((libc::MS_MANDLOCK, true)),
            "nomand" => Some((libc::MS_MANDLOCK, false)),
            "lazytime" => Some((libc::MS_LAZYTIME, true)),
            "nolazytime" => Some((libc::MS_LAZYTIME, false)),
            "iversion" => Some((libc::MS_I_VERSION, true)),
            "noiversion" => Some((libc::MS_I_VERSION, false)),
            "silent" => Some((libc::MS_SILENT, true)),
            "loud" => Some((libc::MS_SILENT, false)),
            "defaults" => Some((0, true)),
            _ => None,
        };
        if let Some((f, on)) = sb {
            if on {
                self.sb_flags |= f;
            } else {
                self.sb_flags &= !f;
            }
            return Ok(true);
        }
        match w {
            "idmap" | "ridmap" => Err(format!(
                "{word:?} (an id-mapped mount needs the container's user namespace at mount time; not supported)"
            )),
            "tmpcopyup" => Err(format!("{word:?} (a crun extension; not supported)")),
            "remount" => Err(format!("{word:?} (a new mount is not a remount)")),
            _ => Ok(false),
        }
    }
}

/// An extra mount inside the container: a bind mount or a tmpfs.
#[derive(Debug, Clone)]
pub struct Mount {
    pub(crate) dst: PathBuf,
    pub(crate) kind: MountKind,
    pub(crate) opts: MountOpts,
    /// Filesystem data words (`key=value`) of a tmpfs, after size and mode.
    pub(crate) data: Vec<String>,
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
            opts: MountOpts::default(),
            data: Vec::new(),
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
            opts: MountOpts::default(),
            data: Vec::new(),
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

    /// Mount options as words of the runtime-spec's Linux mount-options
    /// table (fstab(5)): `ro`/`rw`, `[no]suid`, `[no]dev`, `[no]exec`,
    /// `noatime`/`relatime`/`strictatime`/`atime` and their `no` forms,
    /// `[no]diratime`, `[no]symfollow` (Linux 5.10) on the mount itself,
    /// or on it and every submount with an `r` prefix (`rro`, `rnosuid`,
    /// ...; `mount_setattr(2)`, Linux 5.12); propagation `shared`,
    /// `slave`, `private`, `unbindable` and the `r` forms; superblock
    /// flags `sync`, `dirsync`, `mand`, `lazytime`, `iversion`, `silent`
    /// and their negations (a tmpfs's own; ignored for bind mounts, whose
    /// superblock is the host's); `defaults`; `key=value` words are a
    /// tmpfs's data (`nr_inodes=`, `uid=`, ...; ignored for bind mounts,
    /// as `mount(2)` ignores data with `MS_BIND`). Later words win. `idmap`,
    /// `ridmap`, `tmpcopyup`, `remount` and unknown words are errors.
    ///
    /// ```
    /// let m = berth::Mount::tmpfs("/scratch").options(["noexec", "shared"])?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn options<I, S>(mut self, words: I) -> Result<Mount>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for w in words {
            let w = w.as_ref();
            if w.contains('=') {
                // Filesystem data: a tmpfs's (nr_inodes=, uid=, ...);
                // a bind mount has none (mount(2) ignores data with
                // MS_BIND, as runc passes it).
                if w.contains([',', '\0']) {
                    return Err(Error::invalid(format!(
                        "mount option {w:?} at {:?} contains ',' or NUL",
                        self.dst
                    )));
                }
                if matches!(self.kind, MountKind::Tmpfs { .. }) {
                    self.data.push(w.to_string());
                } else {
                    tracing::debug!(option = w, dst = %self.dst.display(), "filesystem data of a bind mount ignored");
                }
                continue;
            }
            match self.opts.apply(w) {
                Ok(true) => {}
                Ok(false) => {
                    return Err(Error::invalid(format!(
                        "mount option {w:?} at {:?} is not a known mount option",
                        self.dst
                    )))
                }
                Err(why) => {
                    return Err(Error::invalid(format!(
                        "mount option {why} at {:?}",
                        self.dst
                    )))
                }
            }
        }
        Ok(self)
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

    /// Slave or shared propagation: the mount should keep receiving the
    /// host's mount events (its namespace then starts as a slave of the
    /// host's rather than private).
    pub(crate) fn wants_host_events(&self) -> bool {
        let legacy = matches!(
            self.kind,
            MountKind::Bind {
                propagation: Propagation::Slave | Propagation::Shared,
                ..
            }
        );
        legacy || self.opts.propagation & (libc::MS_SLAVE | libc::MS_SHARED) != 0
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

/// The type of a [`DeviceNode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceNodeKind {
    /// A character device (`S_IFCHR`; OCI `c` and `u`).
    Char,
    /// A block device (`S_IFBLK`; OCI `b`).
    Block,
    /// A FIFO (`S_IFIFO`; OCI `p`): no numbers, no device-filter rule.
    Fifo,
}

/// A device node created in the container (runtime-spec `linux.devices`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNode {
    pub(crate) path: PathBuf,
    pub(crate) kind: DeviceNodeKind,
    pub(crate) major: u32,
    pub(crate) minor: u32,
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

impl DeviceNode {
    /// Node `path` (absolute, inside the container) of `kind` with these
    /// numbers, mode 0666, owned by root.
    ///
    /// ```
    /// let d = berth::DeviceNode::new("/dev/fuse", berth::DeviceNodeKind::Char, 10, 229);
    /// ```
    pub fn new(path: impl Into<PathBuf>, kind: DeviceNodeKind, major: u32, minor: u32) -> Self {
        DeviceNode {
            path: path.into(),
            kind,
            major,
            minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        }
    }

    /// Permission bits (default 0666).
    ///
    /// ```
    /// let d = berth::DeviceNode::new("/dev/fuse", berth::DeviceNodeKind::Char, 10, 229).mode(0o600);
    /// ```
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Owner (uid and gid inside the container; default 0).
    ///
    /// ```
    /// let d = berth::DeviceNode::new("/dev/fuse", berth::DeviceNodeKind::Char, 10, 229).owner(1000, 1000);
    /// ```
    pub fn owner(mut self, uid: u32, gid: u32) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }

    /// `S_IF*` type bits for mknod(2).
    pub(crate) fn type_bits(&self) -> u32 {
        match self.kind {
            DeviceNodeKind::Char => libc::S_IFCHR,
            DeviceNodeKind::Block => libc::S_IFBLK,
            DeviceNodeKind::Fifo => libc::S_IFIFO,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let p = &self.path;
        if !p.is_absolute()
            || p == Path::new("/")
            || p.components().any(|c| {
                matches!(
                    c,
                    std::path::Component::ParentDir | std::path::Component::CurDir
                )
            })
        {
            return Err(Error::invalid(format!(
                "device node path {p:?} must be an absolute path without `.` or `..`"
            )));
        }
        if self.mode > 0o7777 {
            return Err(Error::invalid(format!(
                "device node {p:?}: mode {:o} is not a permission mode",
                self.mode
            )));
        }
        Ok(())
    }
}
