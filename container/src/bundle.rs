//! OCI runtime bundles: `config.json` (runtime-spec) mapped onto the builder.

use std::path::{Path, PathBuf};

#[cfg(feature = "oci")]
use berth_namespaces::{IdMap, Namespaces};
#[cfg(feature = "oci")]
use berth_security::{Capabilities, Rlimit, SeccompProfile};
#[cfg(feature = "oci")]
use oci_spec::runtime::{Linux, LinuxDevice, LinuxNamespaceType, Mount as OciMount, Process, Spec};

#[cfg(feature = "oci")]
use crate::builder::ContainerBuilder;
#[cfg(feature = "oci")]
use crate::config::{DeviceNode, DeviceNodeKind, Mount, Network, Propagation, Rootfs, Seccomp};
use crate::error::{Error, Result};

#[cfg(feature = "oci")]
/// An OCI runtime bundle: a directory with `config.json` and (usually) the
/// root filesystem it names.
///
/// [`builder`](Self::builder) maps the spec onto a [`ContainerBuilder`]:
/// `process` (args, env, cwd, user, additional gids and umask,
/// capabilities (ambient ones the kernel cannot raise are left out, as
/// runc: [`Capabilities::from_oci`](crate::Capabilities::from_oci)), rlimits, noNewPrivileges, apparmorProfile, oomScoreAdj,
/// terminal), `root` (path, readonly), `mounts` (bind/rbind and tmpfs
/// with every option of the spec's Linux mount-options table that
/// [`Mount::options`] takes, tmpfs size/mode; the standard proc, sysfs,
/// devpts, mqueue, shm and cgroup mounts are the container's standard
/// filesystem), `hostname` (set in a new or joined UTS namespace, as
/// runc; an error with the runtime's, as runc's), and `linux`: namespaces
/// (created, joined by path, or the runtime's when absent: see
/// [`ContainerBuilder::share_namespaces`]), uid/gid mappings, resources (cgroup v2 via
/// `Resources::from_oci`, devices via the eBPF device filter, followed,
/// as runc appends its default devices, by the standard nodes' allowlist
/// of [`DeviceFilter::container_default`](crate::DeviceFilter::container_default)), devices
/// (nodes made, or the host's bound with a user namespace, and allowed in
/// the device filter), cgroupsPath (absolute: below the cgroup2 root;
/// relative: below the parent of the runtime's own cgroup, as runc's
/// cgroupfs driver; missing parents are made), sysctl, seccomp,
/// maskedPaths, readonlyPaths, rootfsPropagation. Anything else that is
/// set (an SELinux label or mountLabel, io priority, scheduler, CPU
/// affinity, intelRdt, personality, time offsets, memory policy, net
/// devices, a domainname, unknown mount types or options, `idmap` mounts)
/// is an [`Error::Bundle`] naming it. Hooks are not run by the builder:
/// they are returned by [`hooks`](Self::hooks) for the runtime to run at
/// the points the spec defines.
///
/// Loaded by a user other than root the bundle is rootless: its user
/// namespace maps the caller (single-id maps of the caller's own ids are
/// written directly; others need newuidmap/newgidmap), and the container
/// gets a cgroup only when the cgroupsPath's parent is writable
/// (delegated); otherwise no cgroup and the limits are not applied (a
/// warning), and no eBPF device rules (they need CAP_BPF on the host; a
/// rootless container cannot make device nodes), as runc does rootless.
#[derive(Debug, Clone)]
pub struct Bundle {
    dir: PathBuf,
    spec: Spec,
}

#[cfg(feature = "oci")]
/// An [`Error::Bundle`] for `config.json` at `path` carrying `e`'s text.
fn bundle_err(path: &Path, e: Error) -> Error {
    let reason = match e {
        Error::InvalidConfig { what } => what,
        other => other.to_string(),
    };
    Error::Bundle {
        path: path.to_path_buf(),
        reason,
    }
}

#[cfg(feature = "oci")]
fn unsupported(path: &Path, what: &str) -> Error {
    Error::Bundle {
        path: path.to_path_buf(),
        reason: format!("{what} is not supported by berth"),
    }
}

#[cfg(feature = "oci")]
impl Bundle {
    /// Read `<dir>/config.json`.
    ///
    /// ```no_run
    /// let b = berth::Bundle::load("/srv/bundles/web")?;
    /// let c = b.builder("web-1")?.spawn()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn load(dir: impl AsRef<Path>) -> Result<Bundle> {
        let dir = dir.as_ref().to_path_buf();
        let cfg = dir.join("config.json");
        let spec = Spec::load(&cfg).map_err(|e| Error::Bundle {
            path: cfg.clone(),
            reason: e.to_string(),
        })?;
        Ok(Bundle { dir, spec })
    }

    /// The bundle directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The parsed spec.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The spec's hooks, for the runtime to run (berth does not run them).
    pub fn hooks(&self) -> Option<&oci_spec::runtime::Hooks> {
        self.spec.hooks().as_ref()
    }

    /// A builder for container `id` configured from the spec.
    pub fn builder(&self, id: &str) -> Result<ContainerBuilder> {
        let spec = &self.spec;
        let b = ContainerBuilder::new(id)
            .masked_paths(Vec::<String>::new())
            .readonly_paths(Vec::<String>::new())
            .seccomp(Seccomp::Unconfined)
            .no_new_privs(false)
            // Not root: rootless (the bundle's user namespace maps the
            // caller; no cgroup unless a delegated one is writable).
            .rootless(berth_sys::fs::euid() != 0);
        let b = self.root(b)?;
        let proc_ = spec
            .process()
            .as_ref()
            .ok_or_else(|| self.bad("no process"))?;
        let mut b = self.process(b, proc_)?;
        for m in spec.mounts().clone().unwrap_or_default() {
            b = self.mount(b, &m)?;
        }
        let Some(linux) = spec.linux() else {
            return Err(self.bad("no linux section"));
        };
        let b = self.namespaces(b, linux)?;
        let b = self.resources(b, linux)?;
        let b = self.cgroups_path(b, linux)?;
        let b = self.linux_paths(b, linux)?;
        let b = self.devices(b, linux)?;
        self.linux_unsupported(linux)?;
        Ok(b)
    }

    /// `<dir>/config.json`, named in errors.
    fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// An [`Error::Bundle`] for this bundle's config.json.
    fn bad(&self, reason: impl Into<String>) -> Error {
        Error::Bundle {
            path: self.config_path(),
            reason: reason.into(),
        }
    }

    fn unsupported(&self, what: &str) -> Error {
        unsupported(&self.config_path(), what)
    }

    /// `root`, `hostname`, `domainname`.
    fn root(&self, mut b: ContainerBuilder) -> Result<ContainerBuilder> {
        let spec = &self.spec;
        let root = spec.root().as_ref().ok_or_else(|| self.bad("no root"))?;
        let rp = if root.path().is_absolute() {
            root.path().clone()
        } else {
            self.dir.join(root.path())
        };
        b = b
            .rootfs(Rootfs::dir(rp))
            .read_only_root(root.readonly().unwrap_or(false));
        // An empty hostname is no hostname (engines send "" with a shared
        // UTS namespace). A hostname without a new UTS namespace is an
        // error (the builder's), as runc's.
        if let Some(h) = spec.hostname().as_ref().filter(|h| !h.is_empty()) {
            b = b.hostname(h.clone());
        }
        if spec.domainname().as_ref().is_some_and(|d| !d.is_empty()) {
            return Err(self.unsupported("domainname"));
        }
        Ok(b)
    }

    /// `process`: args, env, cwd, user, terminal, capabilities, rlimits,
    /// noNewPrivileges, apparmorProfile, oomScoreAdj.
    fn process(&self, mut b: ContainerBuilder, proc_: &Process) -> Result<ContainerBuilder> {
        let args = proc_.args().clone().unwrap_or_default();
        if args.is_empty() {
            return Err(self.bad("process.args is empty"));
        }
        b = b.command(args);
        for kv in proc_.env().clone().unwrap_or_default() {
            match kv.split_once('=') {
                Some((k, v)) => b = b.env(k, v),
                None => return Err(self.bad(format!("process.env entry {kv:?} has no '='"))),
            }
        }
        b = b.current_dir(proc_.cwd().clone());
        let user = proc_.user();
        b = b.user(user.uid(), user.gid());
        if let Some(g) = user.additional_gids() {
            b = b.groups(g.iter().copied());
        }
        if let Some(m) = user.umask() {
            b = b.umask(m);
        }
        b = b.tty(proc_.terminal().unwrap_or(false));
        if let Some(c) = proc_.capabilities() {
            b = b.capabilities(Capabilities::from_oci(c));
        } else {
            b = b.capabilities(Capabilities::uniform(berth_security::CapSet::empty()));
        }
        for r in proc_.rlimits().clone().unwrap_or_default() {
            let l = Rlimit::from_oci(&r)?;
            b = b.rlimit(l.resource, l.soft, l.hard);
        }
        b = b.no_new_privs(proc_.no_new_privileges().unwrap_or(false));
        if let Some(a) = proc_.apparmor_profile() {
            b = b.apparmor_profile(a.clone());
        }
        if let Some(o) = proc_.oom_score_adj() {
            b = b.oom_score_adj(o);
        }
        self.process_unsupported(proc_)?;
        Ok(b)
    }

    fn process_unsupported(&self, proc_: &Process) -> Result<()> {
        let set = [
            (proc_.selinux_label().is_some(), "process.selinuxLabel"),
            (proc_.io_priority().is_some(), "process.ioPriority"),
            (proc_.scheduler().is_some(), "process.scheduler"),
            (
                proc_.exec_cpu_affinity().is_some(),
                "process.execCPUAffinity",
            ),
        ];
        match set.iter().find(|(is_set, _)| *is_set) {
            Some((_, what)) => Err(self.unsupported(what)),
            None => Ok(()),
        }
    }

    /// One of `mounts`: a standard one (the container's standard
    /// filesystem), a bind or a tmpfs.
    fn mount(&self, b: ContainerBuilder, m: &OciMount) -> Result<ContainerBuilder> {
        let dst = m.destination().clone();
        let typ = m.typ().clone().unwrap_or_default();
        let opts = m.options().clone().unwrap_or_default();
        let standard: &[(&str, &str)] = &[
            ("/proc", "proc"),
            ("/dev", "tmpfs"),
            ("/dev/pts", "devpts"),
            ("/dev/shm", "tmpfs"),
            ("/dev/mqueue", "mqueue"),
            ("/sys", "sysfs"),
            ("/sys/fs/cgroup", "cgroup"),
            ("/sys/fs/cgroup", "cgroup2"),
        ];
        if standard
            .iter()
            .any(|(d, t)| dst == Path::new(d) && typ == *t)
        {
            return Ok(b); // part of the standard filesystem
        }
        let is_bind = typ == "bind" || opts.iter().any(|o| o == "bind" || o == "rbind");
        let mm = if is_bind {
            self.bind_mount(m, &dst, &opts)?
        } else if typ == "tmpfs" {
            self.tmpfs_mount(&dst, &opts)?
        } else {
            return Err(self.unsupported(&format!("mount type {typ:?} at {dst:?}")));
        };
        Ok(b.mount(mm))
    }

    fn bind_mount(&self, m: &OciMount, dst: &Path, opts: &[String]) -> Result<Mount> {
        let src = m
            .source()
            .clone()
            .ok_or_else(|| self.bad(format!("bind mount at {dst:?} has no source")))?;
        let src = if src.is_absolute() {
            src
        } else {
            self.dir.join(src)
        };
        let words: Vec<&String> = opts
            .iter()
            .filter(|o| !matches!(o.as_str(), "bind" | "rbind"))
            .collect();
        Mount::bind(src, dst)
            .recursive(opts.iter().any(|o| o == "rbind"))
            .options(words)
            .map_err(|e| bundle_err(&self.config_path(), e))
    }

    fn tmpfs_mount(&self, dst: &Path, opts: &[String]) -> Result<Mount> {
        let mut mm = Mount::tmpfs(dst);
        let mut words = Vec::new();
        for o in opts {
            if let Some(s) = o.strip_prefix("size=") {
                let bytes = parse_tmpfs_size(s)
                    .ok_or_else(|| self.bad(format!("tmpfs size {s:?} at {dst:?}")))?;
                mm = mm.size(bytes);
            } else if let Some(m) = o.strip_prefix("mode=") {
                let mode = u32::from_str_radix(m, 8)
                    .map_err(|_| self.bad(format!("tmpfs mode {m:?} at {dst:?}")))?;
                mm = mm.mode(mode);
            } else {
                words.push(o);
            }
        }
        mm.options(words)
            .map_err(|e| bundle_err(&self.config_path(), e))
    }

    /// `linux.namespaces` (created, joined by path, else the runtime's) and
    /// the uid/gid mappings.
    fn namespaces(&self, mut b: ContainerBuilder, linux: &Linux) -> Result<ContainerBuilder> {
        let mut created = Namespaces::empty();
        let mut has_net = false;
        for ns in linux.namespaces().clone().unwrap_or_default() {
            let flag = match ns.typ() {
                LinuxNamespaceType::Mount => Namespaces::MOUNT,
                LinuxNamespaceType::Cgroup => Namespaces::CGROUP,
                LinuxNamespaceType::Uts => Namespaces::UTS,
                LinuxNamespaceType::Ipc => Namespaces::IPC,
                LinuxNamespaceType::User => Namespaces::USER,
                LinuxNamespaceType::Pid => Namespaces::PID,
                LinuxNamespaceType::Network => Namespaces::NET,
                LinuxNamespaceType::Time => Namespaces::TIME,
            };
            if flag == Namespaces::NET {
                has_net = true;
            }
            match ns.path() {
                Some(path) => b = b.join_namespace(path.clone(), flag),
                None => created |= flag,
            }
        }
        if created.contains(Namespaces::TIME) {
            return Err(self.unsupported("a new time namespace"));
        }
        b = b.network(if has_net {
            Network::loopback()
        } else {
            Network::host()
        });
        let all = Namespaces::MOUNT
            | Namespaces::UTS
            | Namespaces::IPC
            | Namespaces::PID
            | Namespaces::CGROUP;
        let joined: Namespaces = b.joins.iter().fold(Namespaces::empty(), |a, (_, n)| a | *n);
        b = b.share_namespaces(all & !created & !joined);
        for x in linux.uid_mappings().iter().flatten() {
            b = b.uid_map(IdMap::new(x.container_id(), x.host_id(), x.size()));
        }
        for x in linux.gid_mappings().iter().flatten() {
            b = b.gid_map(IdMap::new(x.container_id(), x.host_id(), x.size()));
        }
        if !created.contains(Namespaces::USER) && (!b.uid_maps.is_empty() || !b.gid_maps.is_empty())
        {
            return Err(self.bad("uid/gid mappings without a new user namespace"));
        }
        Ok(b)
    }

    /// `linux.resources`: cgroup limits and the device rules.
    fn resources(&self, mut b: ContainerBuilder, linux: &Linux) -> Result<ContainerBuilder> {
        if let Some(r) = linux.resources() {
            b = b.resources(berth_cgroups::Resources::from_oci(r)?);
            if let Some(devs) = r.devices() {
                use berth_ebpf_probes::DeviceFilter;
                let mut f = DeviceFilter::from_oci(devs)?;
                // The standard nodes stay usable whatever the rules deny
                // (`runc spec`'s bundle denies every device and lists no
                // node): runc appends its default allowed devices after the
                // spec's rules (libcontainer/specconv, AllowedDevices);
                // berth's allowlist is the same without /dev/net/tun
                // (DeviceFilter::container_default).
                for rule in DeviceFilter::container_default().rules() {
                    if rule.allow {
                        f.rule(*rule);
                    }
                }
                b = b.device_filter(Some(f));
            }
        }
        if b.rootless {
            // Loading the eBPF device program needs CAP_BPF and
            // CAP_SYS_ADMIN in the initial user namespace (bpf(2)); a
            // rootless container cannot make device nodes anyway (mknod
            // in a user namespace: EPERM) and gets the host's bound with
            // the caller's access. runc skips device rules rootless too.
            b = b.device_filter(None);
        }
        Ok(b)
    }

    /// `linux.cgroupsPath`: absolute below the cgroup2 root, relative
    /// below the parent of the runtime's own cgroup; rootless only when
    /// delegated.
    fn cgroups_path(&self, mut b: ContainerBuilder, linux: &Linux) -> Result<ContainerBuilder> {
        let Some(cp) = linux.cgroups_path() else {
            if b.rootless && b.resources.as_ref().is_some_and(|r| !r.is_empty()) {
                tracing::warn!(bundle = %self.dir.display(),
                    "rootless without cgroupsPath: no cgroup, limits not applied");
                b = b.ignore_unavailable(true);
            }
            return Ok(b);
        };
        if cp.to_string_lossy().contains(':') {
            return Err(self.unsupported("a systemd-style cgroupsPath (slice:prefix:name)"));
        }
        let rel = cp.strip_prefix("/").unwrap_or(cp);
        let name = rel
            .file_name()
            .ok_or_else(|| self.bad(format!("cgroupsPath {cp:?} has no name")))?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        if b.rootless && !delegated(parent) {
            // Rootless without a writable (delegated) cgroup: no cgroup
            // and no limits, as runc does for rootless containers.
            tracing::warn!(bundle = %self.dir.display(), cgroups_path = %cp.display(),
                "rootless: the cgroup parent is not writable; no cgroup, limits not applied");
            return Ok(b.ignore_unavailable(true));
        }
        if cp.is_absolute() {
            b.cgroup_name = Some(PathBuf::from(name));
            return Ok(b.cgroup_parent(parent.to_path_buf()));
        }
        // Relative: below the parent of the runtime's own cgroup (its own
        // has processes, so no controllers could be enabled below it), as
        // runc's cgroupfs v2 driver (libcontainer/cgroups/fs2/defaultpath.go);
        // missing parents are created (and, as runc's, left on delete).
        let h = crate::builder::cached_hierarchy()?;
        let own = h.own_cgroup_dir();
        b.cgroup_name = Some(rel.to_path_buf());
        let base = match own.parent() {
            Some(up) if own != h.mount_point() => up.to_path_buf(),
            _ => own.clone(),
        };
        Ok(b.cgroup_parent(base))
    }

    /// `linux.sysctl`, `seccomp`, `maskedPaths`, `readonlyPaths`,
    /// `rootfsPropagation`, `mountLabel`.
    fn linux_paths(&self, mut b: ContainerBuilder, linux: &Linux) -> Result<ContainerBuilder> {
        if let Some(sys) = linux.sysctl() {
            let mut keys: Vec<_> = sys.iter().collect();
            keys.sort();
            for (k, v) in keys {
                b = b.sysctl(k.clone(), v.clone());
            }
        }
        if let Some(s) = linux.seccomp() {
            b = b.seccomp(Seccomp::Profile(SeccompProfile::from_oci(s)?));
        }
        if let Some(m) = linux.masked_paths() {
            b = b.masked_paths(m.clone());
        }
        if let Some(r) = linux.readonly_paths() {
            b = b.readonly_paths(r.clone());
        }
        if let Some(rp) = linux
            .rootfs_propagation()
            .as_deref()
            .filter(|r| !r.is_empty())
        {
            let (rec, w) = match rp.strip_prefix('r') {
                Some(w) => (true, w),
                None => (false, rp),
            };
            let prop = match w {
                "private" => Propagation::Private,
                "slave" => Propagation::Slave,
                "shared" => Propagation::Shared,
                "unbindable" => Propagation::Unbindable,
                _ => {
                    return Err(self.bad(format!(
                        "rootfsPropagation {rp:?} is not a propagation type"
                    )))
                }
            };
            b = b.rootfs_propagation(prop, rec);
        }
        if linux.mount_label().as_ref().is_some_and(|l| !l.is_empty()) {
            return Err(self.unsupported("linux.mountLabel (SELinux)"));
        }
        Ok(b)
    }

    /// `linux.devices`: nodes made (or the host's bound).
    fn devices(&self, mut b: ContainerBuilder, linux: &Linux) -> Result<ContainerBuilder> {
        for d in linux.devices().iter().flatten() {
            b = b.device_node(self.device(d)?);
        }
        Ok(b)
    }

    fn device(&self, d: &LinuxDevice) -> Result<DeviceNode> {
        use oci_spec::runtime::LinuxDeviceType;
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => DeviceNodeKind::Char,
            LinuxDeviceType::B => DeviceNodeKind::Block,
            LinuxDeviceType::P => DeviceNodeKind::Fifo,
            LinuxDeviceType::A => {
                return Err(self.bad(format!(
                    "linux.devices {:?}: type \"a\" is not a node type",
                    d.path()
                )))
            }
        };
        let num = |n: i64, what: &str| {
            u32::try_from(n)
                .map_err(|_| self.bad(format!("linux.devices {:?}: {what} {n}", d.path())))
        };
        let mut node = DeviceNode::new(
            d.path().clone(),
            kind,
            num(d.major(), "major")?,
            num(d.minor(), "minor")?,
        );
        // runtime-spec: fileMode defaults to 0666 for runc (0o666 here too).
        if let Some(m) = d.file_mode() {
            node = node.mode(m & 0o7777);
        }
        Ok(node.owner(d.uid().unwrap_or(0), d.gid().unwrap_or(0)))
    }

    /// What berth does not do: an error naming it.
    fn linux_unsupported(&self, linux: &Linux) -> Result<()> {
        let set = [
            (linux.intel_rdt().is_some(), "linux.intelRdt"),
            (linux.personality().is_some(), "linux.personality"),
            (linux.time_offsets().is_some(), "linux.timeOffsets"),
            (linux.memory_policy().is_some(), "linux.memoryPolicy"),
            (
                linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()),
                "linux.netDevices",
            ),
        ];
        match set.iter().find(|(is_set, _)| *is_set) {
            Some((_, what)) => Err(self.unsupported(what)),
            None => Ok(()),
        }
    }
}

#[cfg(feature = "oci")]
/// Whether the cgroup2 directory `parent` (relative to the hierarchy)
/// exists and is writable by us (access(2) W_OK): a delegated cgroup.
fn delegated(parent: &Path) -> bool {
    let Ok(h) = crate::builder::cached_hierarchy() else {
        return false;
    };
    let dir = h.mount_point().join(parent);
    berth_sys::fs::access_writable(&dir).is_ok()
}

#[cfg(feature = "oci")]
fn parse_tmpfs_size(s: &str) -> Option<u64> {
    let (n, m) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1u64 << 10),
        'm' | 'M' => (&s[..s.len() - 1], 1 << 20),
        'g' | 'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    n.parse::<u64>().ok()?.checked_mul(m)
}

/// Read `rel` (e.g. `etc/passwd`) inside the root directory `root`,
/// resolving every symlink inside it (`openat2` with `RESOLVE_IN_ROOT`):
/// an image's `/etc/passwd -> /../../host/file` never reads the host's.
/// `Ok(None)` when the root has no such regular file.
fn read_in_root(root: &Path, rel: &str) -> Result<Option<Vec<u8>>> {
    use std::io::Read;
    let dir = match std::fs::File::open(root) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open root to read users", root, e)),
    };
    let c = std::ffi::CString::new(rel)
        .map_err(|_| Error::invalid(format!("path {rel:?} contains NUL")))?;
    let r = open_in_root(&dir, &c, libc::O_RDONLY | libc::O_NOCTTY | libc::O_NONBLOCK);
    let path = root.join(rel);
    let mut f = match r {
        Ok(fd) => std::fs::File::from(fd),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
            return Ok(None)
        }
        Err(e) => return Err(Error::io("open in root", path, e)),
    };
    let md = f
        .metadata()
        .map_err(|e| Error::io("stat in root", &path, e))?;
    if !md.is_file() {
        // A FIFO or device must not be read (and an overlay whiteout is a
        // 0:0 character device: the file is deleted in that layer).
        return Ok(None);
    }
    let mut buf = Vec::new();
    // /etc/passwd and /etc/group are small; cap what an image can make us read.
    f.by_ref()
        .take(16 << 20)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io("read in root", &path, e))?;
    Ok(Some(buf))
}

/// `rel` inside `root` (symlinks resolved in it, not the last one) is a
/// character device.
fn is_char_device_in_root(root: &Path, rel: &str) -> bool {
    use std::os::unix::fs::FileTypeExt;
    let (Ok(dir), Ok(c)) = (std::fs::File::open(root), std::ffi::CString::new(rel)) else {
        return false;
    };
    match open_in_root(&dir, &c, libc::O_PATH | libc::O_NOFOLLOW) {
        Ok(fd) => std::fs::File::from(fd)
            .metadata()
            .is_ok_and(|m| m.file_type().is_char_device()),
        Err(_) => false,
    }
}

/// `path` opened under the directory `root` as its root (openat2(2)
/// `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`, Linux 5.6): every symlink,
/// `..` and absolute link stays inside it.
fn open_in_root(
    root: &std::fs::File,
    path: &std::ffi::CStr,
    flags: libc::c_int,
) -> std::io::Result<std::os::fd::OwnedFd> {
    use berth_sys::openat2::{openat2, ResolveFlags};
    use std::os::fd::AsFd;
    openat2(
        root.as_fd(),
        path,
        flags,
        0,
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
}

/// The first of `roots` (top layer first) that has `rel`.
fn read_in_layers(roots: &[PathBuf], rel: &str) -> Result<Option<Vec<u8>>> {
    for r in roots {
        // A whiteout (0:0 char device) hides the file of lower layers;
        // looked up inside the layer too (a layer's `etc -> /host/dir`
        // must not make berth even stat a host path).
        if is_char_device_in_root(r, rel) {
            return Ok(None);
        }
        if let Some(b) = read_in_root(r, rel)? {
            return Ok(Some(b));
        }
    }
    Ok(None)
}

/// The user an OCI image config's `User` names when it is not all numeric
/// (`user`, `user:group`, `uid:group`, `user:gid`), looked up the way runc
/// and Docker do in the container's own `/etc/passwd` and `/etc/group`,
/// read in the parent with every symlink resolved inside the root
/// filesystem (top layer first): the uid, the primary gid (the group if
/// given, else the passwd entry's), and, when no group was given, the
/// supplementary gids of the `/etc/group` entries listing the user.
pub(crate) fn resolve_image_user(roots: &[PathBuf], spec: &str) -> Result<(u32, u32, Vec<u32>)> {
    let bad = |why: String| Error::invalid(format!("image user {spec:?}: {why}"));
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if u.is_empty() || g == Some("") {
        return Err(bad("empty user or group".into()));
    }
    let numeric = |s: &str| s.parse::<u32>().ok();
    let passwd = read_in_layers(roots, "etc/passwd")?
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    // name:password:uid:gid:gecos:home:shell
    let entries: Vec<(&str, u32, u32)> = passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((
                *f.first()?,
                f.get(2)?.parse().ok()?,
                f.get(3)?.parse().ok()?,
            ))
        })
        .collect();
    let entry = match numeric(u) {
        Some(n) => entries.iter().find(|e| e.1 == n).copied(),
        None => Some(
            entries
                .iter()
                .find(|e| e.0 == u)
                .copied()
                .ok_or_else(|| bad(format!("no user {u:?} in the image's /etc/passwd")))?,
        ),
    };
    let uid = numeric(u).or(entry.map(|e| e.1)).unwrap_or(0);
    let need_groups = g.is_some_and(|g| numeric(g).is_none()) || g.is_none();
    let group = if need_groups {
        read_in_layers(roots, "etc/group")?
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    } else {
        String::new()
    };
    // name:password:gid:member,member
    let groups: Vec<(&str, u32, Vec<&str>)> = group
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let members = f
                .get(3)
                .map(|m| m.split(',').filter(|s| !s.is_empty()).collect())
                .unwrap_or_default();
            Some((*f.first()?, f.get(2)?.parse().ok()?, members))
        })
        .collect();
    match g {
        Some(g) => {
            let gid = match numeric(g) {
                Some(n) => n,
                None => groups
                    .iter()
                    .find(|e| e.0 == g)
                    .map(|e| e.1)
                    .ok_or_else(|| bad(format!("no group {g:?} in the image's /etc/group")))?,
            };
            Ok((uid, gid, Vec::new()))
        }
        None => {
            let gid = entry.map(|e| e.2).unwrap_or(0);
            let mut sup: Vec<u32> = match entry {
                Some((name, _, _)) => groups
                    .iter()
                    .filter(|e| e.2.contains(&name) && e.1 != gid)
                    .map(|e| e.1)
                    .collect(),
                None => Vec::new(),
            };
            sup.dedup();
            Ok((uid, gid, sup))
        }
    }
}
