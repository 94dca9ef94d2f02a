//! The `ContainerBuilder`: configuration, validation and the spawn path.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use berth_cgroups::Resources;
use berth_namespaces::{IdMap, Namespaces, Stdio, Step};
use berth_security::{
    CapSet, Capabilities, CompileContext, Resource, SeccompProfile, SeccompProgram, SecurityPolicy,
    DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS,
};

use crate::config::{DeviceNode, Mount, Network, Propagation, Rootfs, Seccomp};
use crate::container::Container;
use crate::error::{Error, Result};

/// Configures a container, shaped like [`std::process::Command`]: set
/// options, then [`spawn`](Self::spawn) (runs it) or [`create`](Self::create)
/// (two-phase: everything ready, stopped before `execve`).
///
/// Secure by default: new mount, UTS, IPC, pid, network (only `lo` up) and
/// cgroup namespaces (plus a user namespace when rootless); Docker's 14
/// default capabilities, its default seccomp profile, `no_new_privs`, the
/// eBPF device filter allowing only the standard nodes, masked and
/// read-only `/proc` paths, every fd but stdio closed. Each is relaxable.
///
/// ```no_run
/// use berth::{Container, Rootfs};
/// let mut c = Container::builder("hello")
///     .rootfs(Rootfs::dir("/var/lib/rootfs/busybox"))
///     .command(["/bin/echo", "hi"])
///     .spawn()?;
/// assert!(c.wait()?.success());
/// # Ok::<(), berth::Error>(())
/// ```
#[derive(Debug)]
pub struct ContainerBuilder {
    pub(crate) id: String,
    pub(crate) rootfs: Rootfs,
    pub(crate) read_only_root: bool,
    pub(crate) mounts: Vec<Mount>,
    pub(crate) hostname: Option<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) user: Option<(u32, u32)>,
    pub(crate) groups: Vec<u32>,
    pub(crate) command: Vec<String>,
    pub(crate) resources: Option<Resources>,
    pub(crate) cgroup_parent: Option<PathBuf>,
    pub(crate) cgroup_name: Option<PathBuf>,
    pub(crate) ignore_unavailable: bool,
    pub(crate) network: Network,
    pub(crate) cap_add: Vec<String>,
    pub(crate) cap_drop: Vec<String>,
    pub(crate) capabilities: Option<Capabilities>,
    pub(crate) seccomp: Seccomp,
    pub(crate) no_new_privs: bool,
    pub(crate) device_filter: Option<berth_ebpf_probes::DeviceFilter>,
    pub(crate) rlimits: Vec<(Resource, u64, u64)>,
    pub(crate) oom_score_adj: Option<i32>,
    pub(crate) apparmor: Option<String>,
    pub(crate) init: bool,
    pub(crate) stdin: Stdio,
    pub(crate) stdout: Stdio,
    pub(crate) stderr: Stdio,
    pub(crate) tty: bool,
    pub(crate) rootless: bool,
    pub(crate) uid_maps: Vec<IdMap>,
    pub(crate) gid_maps: Vec<IdMap>,
    pub(crate) state_root: Option<PathBuf>,
    pub(crate) masked: Vec<String>,
    pub(crate) readonly_paths: Vec<String>,
    pub(crate) sysctls: Vec<(String, String)>,
    pub(crate) joins: Vec<(PathBuf, Namespaces)>,
    pub(crate) skip_namespaces: Namespaces,
    pub(crate) kill_with_owner: bool,
    pub(crate) netns_pool: Option<bool>,
    pub(crate) inherit_fds: Vec<(OwnedFd, std::os::fd::RawFd)>,
    pub(crate) image_config: Option<berth_overlay::ImageConfig>,
    pub(crate) timeout: Option<std::time::Duration>,
    pub(crate) umask: u32,
    pub(crate) rootfs_propagation: Option<(Propagation, bool)>,
    pub(crate) devices: Vec<DeviceNode>,
}

/// Longest container id (it names a cgroup, a state directory, nft comments).
pub const MAX_ID_LEN: usize = 64;

/// Check a container id: 1–64 of `[A-Za-z0-9_.-]`, not starting with `.`.
pub fn validate_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > MAX_ID_LEN
        || id.starts_with('.')
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        return Err(Error::invalid(format!(
            "container id {id:?} must be 1-64 characters of [A-Za-z0-9_.-], not starting with '.'"
        )));
    }
    Ok(())
}

/// Sysctls that belong to a namespace the container owns (as runc allows).
pub(crate) fn sysctl_allowed(key: &str, own_netns: bool, own_ipcns: bool) -> bool {
    const IPC: [&str; 7] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
    ];
    (own_ipcns
        && (IPC.contains(&key) || key == "kernel.shm_rmid_forced" || key.starts_with("fs.mqueue.")))
        || (own_netns && key.starts_with("net."))
}

impl crate::Container {
    /// Start configuring container `id`; see [`ContainerBuilder`].
    ///
    /// ```
    /// let b = berth::Container::builder("web-1");
    /// ```
    pub fn builder(id: impl Into<String>) -> ContainerBuilder {
        ContainerBuilder::new(id)
    }
}

impl ContainerBuilder {
    /// A container called `id` with every default (see the type's docs).
    ///
    /// ```
    /// let b = berth::ContainerBuilder::new("web-1");
    /// ```
    pub fn new(id: impl Into<String>) -> Self {
        ContainerBuilder {
            id: id.into(),
            rootfs: Rootfs::host(),
            read_only_root: false,
            mounts: Vec::new(),
            hostname: None,
            env: Vec::new(),
            cwd: None,
            user: None,
            groups: Vec::new(),
            command: Vec::new(),
            resources: None,
            cgroup_parent: None,
            cgroup_name: None,
            ignore_unavailable: false,
            network: Network::loopback(),
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            capabilities: None,
            seccomp: Seccomp::Default,
            no_new_privs: true,
            device_filter: Some(berth_ebpf_probes::DeviceFilter::container_default()),
            rlimits: Vec::new(),
            oom_score_adj: None,
            apparmor: None,
            init: false,
            stdin: Stdio::Inherit,
            stdout: Stdio::Inherit,
            stderr: Stdio::Inherit,
            tty: false,
            rootless: berth_sys::fs::euid() != 0,
            uid_maps: Vec::new(),
            gid_maps: Vec::new(),
            state_root: None,
            masked: DEFAULT_MASKED_PATHS.iter().map(|s| s.to_string()).collect(),
            readonly_paths: DEFAULT_READONLY_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            sysctls: Vec::new(),
            joins: Vec::new(),
            skip_namespaces: Namespaces::empty(),
            kill_with_owner: true,
            netns_pool: None,
            inherit_fds: Vec::new(),
            image_config: None,
            timeout: None,
            umask: 0o022,
            rootfs_propagation: None,
            devices: Vec::new(),
        }
    }

    /// The root filesystem (default [`Rootfs::host`]). An image rootfs also
    /// supplies the default command, environment, working directory and user.
    ///
    /// ```
    /// let b = berth::Container::builder("c").rootfs(berth::Rootfs::dir("/srv/rootfs"));
    /// ```
    pub fn rootfs(mut self, rootfs: Rootfs) -> Self {
        self.rootfs = rootfs;
        self
    }

    /// Mount `/` read-only (other mounts keep their own flags). A
    /// [`Rootfs::dir`] is then never modified, not even by berth's own
    /// mount points.
    ///
    /// ```
    /// let b = berth::Container::builder("c").read_only_root(true);
    /// ```
    pub fn read_only_root(mut self, on: bool) -> Self {
        self.read_only_root = on;
        self
    }

    /// Add a bind or tmpfs mount.
    ///
    /// ```
    /// let b = berth::Container::builder("c").mount(berth::Mount::tmpfs("/scratch").size(1 << 20));
    /// ```
    pub fn mount(mut self, m: Mount) -> Self {
        self.mounts.push(m);
        self
    }

    /// The hostname (default: the id, cut to 63 bytes).
    ///
    /// ```
    /// let b = berth::Container::builder("c").hostname("web");
    /// ```
    #[doc(alias("sethostname", "CLONE_NEWUTS"))]
    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.hostname = Some(name.into());
        self
    }

    /// Set an environment variable (the environment starts empty, plus
    /// `PATH`, `HOSTNAME`, `HOME` defaults and the image's `Env`).
    ///
    /// ```
    /// let b = berth::Container::builder("c").env("LANG", "C.UTF-8");
    /// ```
    pub fn env(mut self, key: impl Into<String>, val: impl Into<String>) -> Self {
        self.env.push((key.into(), val.into()));
        self
    }

    /// The working directory inside (default: the image's, else `/`).
    ///
    /// ```
    /// let b = berth::Container::builder("c").current_dir("/tmp");
    /// ```
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Run as this uid and gid inside (default: the image's numeric `User`, else 0).
    ///
    /// ```
    /// let b = berth::Container::builder("c").user(1000, 1000);
    /// ```
    pub fn user(mut self, uid: u32, gid: u32) -> Self {
        self.user = Some((uid, gid));
        self
    }

    /// Supplementary groups.
    ///
    /// ```
    /// let b = berth::Container::builder("c").user(1000, 1000).groups([10]);
    /// ```
    pub fn groups(mut self, groups: impl IntoIterator<Item = u32>) -> Self {
        self.groups = groups.into_iter().collect();
        self
    }

    /// The command (default: the image's `Entrypoint` + `Cmd`, else `/bin/sh`).
    /// Without a `/`, `argv[0]` is searched in the container's `PATH`.
    ///
    /// ```
    /// let b = berth::Container::builder("c").command(["/bin/sh", "-c", "echo hi"]);
    /// ```
    pub fn command<I, S>(mut self, argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.command = argv.into_iter().map(Into::into).collect();
        self
    }

    /// cgroup v2 resources (berth-cgroups). A limit whose controller the
    /// host's cgroup2 does not offer is an error naming it, unless
    /// [`ignore_unavailable`](Self::ignore_unavailable).
    ///
    /// ```
    /// use berth_cgroups::{Limit, Resources};
    /// let b = berth::Container::builder("c")
    ///     .resources(Resources::new().memory_max(Limit::Value(256 << 20)).pids_max(Limit::Value(128)));
    /// ```
    #[doc(alias("memory.max", "pids.max", "cpu.max", "io.max", "cpu.weight"))]
    pub fn resources(mut self, r: Resources) -> Self {
        self.resources = Some(r);
        self
    }

    /// The parent cgroup (absolute inside the cgroup2 mount, or relative to
    /// it). Default: a `berth` group under the caller's own cgroup.
    ///
    /// ```
    /// let b = berth::Container::builder("c").cgroup_parent("/sys/fs/cgroup/unified/jobs");
    /// ```
    pub fn cgroup_parent(mut self, parent: impl Into<PathBuf>) -> Self {
        self.cgroup_parent = Some(parent.into());
        self
    }

    /// Skip limits whose controller is unavailable instead of failing: each
    /// is logged once (with where the controller is bound) and listed in
    /// [`Container::applied`]. Off (the default), a spawn asking for limits
    /// the host cannot enforce fails naming every missing controller.
    ///
    /// ```
    /// let b = berth::Container::builder("c").ignore_unavailable(true);
    /// ```
    pub fn ignore_unavailable(mut self, yes: bool) -> Self {
        self.ignore_unavailable = yes;
        self
    }

    /// The network (default [`Network::loopback`]).
    ///
    /// ```
    /// let b = berth::Container::builder("c").network(berth::Network::none());
    /// ```
    pub fn network(mut self, n: Network) -> Self {
        self.network = n;
        self
    }

    /// Add a capability to Docker's default set (`NET_ADMIN`, `CAP_SYS_TIME`,
    /// `ALL`…); unknown names are an error at spawn.
    ///
    /// ```
    /// let b = berth::Container::builder("c").cap_add("NET_ADMIN");
    /// ```
    pub fn cap_add(mut self, cap: impl Into<String>) -> Self {
        self.cap_add.push(cap.into());
        self
    }

    /// Drop a capability from the set (`ALL` drops every one not added).
    ///
    /// ```
    /// let b = berth::Container::builder("c").cap_drop("ALL");
    /// ```
    pub fn cap_drop(mut self, cap: impl Into<String>) -> Self {
        self.cap_drop.push(cap.into());
        self
    }

    /// Set all five capability sets explicitly (overrides add/drop).
    ///
    /// ```
    /// use berth_security::{CapSet, Capabilities};
    /// let b = berth::Container::builder("c").capabilities(Capabilities::uniform(CapSet::empty()));
    /// ```
    #[doc(alias("capset"))]
    pub fn capabilities(mut self, caps: Capabilities) -> Self {
        self.capabilities = Some(caps);
        self
    }

    /// The seccomp filter (default: Docker's profile).
    ///
    /// ```
    /// let b = berth::Container::builder("c").seccomp(berth::Seccomp::Unconfined);
    /// ```
    #[doc(alias("SECCOMP_SET_MODE_FILTER"))]
    pub fn seccomp(mut self, s: Seccomp) -> Self {
        self.seccomp = s;
        self
    }

    /// `no_new_privs` (default on).
    ///
    /// ```
    /// let b = berth::Container::builder("c").no_new_privs(false);
    /// ```
    #[doc(alias("PR_SET_NO_NEW_PRIVS"))]
    pub fn no_new_privs(mut self, on: bool) -> Self {
        self.no_new_privs = on;
        self
    }

    /// The eBPF device filter (default: the standard nodes only); `None`
    /// attaches none.
    ///
    /// ```
    /// let b = berth::Container::builder("c").device_filter(None);
    /// ```
    #[doc(alias("BPF_PROG_TYPE_CGROUP_DEVICE", "devices.allow"))]
    pub fn device_filter(mut self, f: Option<berth_ebpf_probes::DeviceFilter>) -> Self {
        self.device_filter = f;
        self
    }

    /// A resource limit (setrlimit(2)).
    ///
    /// ```
    /// let b = berth::Container::builder("c").rlimit(berth_security::Resource::Nofile, 1024, 1024);
    /// ```
    #[doc(alias("setrlimit"))]
    pub fn rlimit(mut self, resource: Resource, soft: u64, hard: u64) -> Self {
        self.rlimits.push((resource, soft, hard));
        self
    }

    /// `/proc/self/oom_score_adj` of the workload (-1000..=1000).
    ///
    /// ```
    /// let b = berth::Container::builder("c").oom_score_adj(500);
    /// ```
    pub fn oom_score_adj(mut self, v: i32) -> Self {
        self.oom_score_adj = Some(v);
        self
    }

    /// Confine the workload with this loaded AppArmor profile.
    ///
    /// ```
    /// let b = berth::Container::builder("c").apparmor_profile("docker-default");
    /// ```
    pub fn apparmor_profile(mut self, p: impl Into<String>) -> Self {
        self.apparmor = Some(p.into());
        self
    }

    /// Run a minimal init as pid 1 that reaps zombies and forwards signals
    /// (the workload is its child).
    ///
    /// ```
    /// let b = berth::Container::builder("c").init(true);
    /// ```
    pub fn init(mut self, on: bool) -> Self {
        self.init = on;
        self
    }

    /// The workload's stdin (default inherit).
    ///
    /// ```
    /// let b = berth::Container::builder("c").stdin(berth::Stdio::Null);
    /// ```
    pub fn stdin(mut self, s: Stdio) -> Self {
        self.stdin = s;
        self
    }

    /// The workload's stdout (default inherit).
    ///
    /// ```
    /// let b = berth::Container::builder("c").stdout(berth::Stdio::Piped);
    /// ```
    pub fn stdout(mut self, s: Stdio) -> Self {
        self.stdout = s;
        self
    }

    /// The workload's stderr (default inherit).
    ///
    /// ```
    /// let b = berth::Container::builder("c").stderr(berth::Stdio::Null);
    /// ```
    pub fn stderr(mut self, s: Stdio) -> Self {
        self.stderr = s;
        self
    }

    /// Give the workload a new pseudo-terminal as stdin/stdout/stderr and
    /// controlling terminal; the master is [`Container::pty`].
    ///
    /// ```
    /// let b = berth::Container::builder("c").tty(true);
    /// ```
    pub fn tty(mut self, on: bool) -> Self {
        self.tty = on;
        self
    }

    /// Rootless mode (default: on when not root): a user namespace mapping
    /// root inside to the caller, overlay with `userxattr`, `/dev` nodes
    /// bound from the host, no cgroup unless [`cgroup_parent`](Self::cgroup_parent)
    /// is a delegated, writable group.
    ///
    /// ```
    /// let b = berth::Container::builder("c").rootless(true);
    /// ```
    pub fn rootless(mut self, on: bool) -> Self {
        self.rootless = on;
        self
    }

    /// A uid map line for the user namespace (rootless, or OCI bundles).
    ///
    /// ```
    /// let b = berth::Container::builder("c").uid_map(berth_namespaces::IdMap::new(0, 100000, 65536));
    /// ```
    pub fn uid_map(mut self, m: IdMap) -> Self {
        self.uid_maps.push(m);
        self
    }

    /// A gid map line for the user namespace.
    ///
    /// ```
    /// let b = berth::Container::builder("c").gid_map(berth_namespaces::IdMap::new(0, 100000, 65536));
    /// ```
    pub fn gid_map(mut self, m: IdMap) -> Self {
        self.gid_maps.push(m);
        self
    }

    /// Where state directories live (default [`default_state_root`](crate::default_state_root)).
    ///
    /// The spawn creates it (and missing parents) mode 0700, tightens an
    /// existing one of the caller's to 0700, and refuses
    /// ([`Error::UnsafeStateRoot`](crate::Error::UnsafeStateRoot)) one
    /// another user owns or that group or others can write. Each
    /// container's directory is 0700 and its `state.json` 0600.
    ///
    /// ```
    /// let b = berth::Container::builder("c").state_root("/run/myruntime");
    /// ```
    pub fn state_root(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_root = Some(dir.into());
        self
    }

    /// Replace the masked paths (default: berth-security's list).
    ///
    /// ```
    /// let b = berth::Container::builder("c").masked_paths(["/proc/kcore"]);
    /// ```
    pub fn masked_paths<I, S>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.masked = paths.into_iter().map(Into::into).collect();
        self
    }

    /// Replace the read-only paths (default: berth-security's list).
    ///
    /// ```
    /// let b = berth::Container::builder("c").readonly_paths(["/proc/sys"]);
    /// ```
    pub fn readonly_paths<I, S>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.readonly_paths = paths.into_iter().map(Into::into).collect();
        self
    }

    /// Set a namespaced sysctl (`net.*` with an own network namespace,
    /// IPC and mqueue ones); others are refused.
    ///
    /// ```
    /// let b = berth::Container::builder("c").sysctl("net.ipv4.ip_unprivileged_port_start", "0");
    /// ```
    pub fn sysctl(mut self, key: impl Into<String>, val: impl Into<String>) -> Self {
        self.sysctls.push((key.into(), val.into()));
        self
    }

    /// The workload's file mode creation mask (default `0o022`; umask(2)),
    /// set last in the filesystem setup.
    ///
    /// ```
    /// let b = berth::Container::builder("c").umask(0o077);
    /// ```
    pub fn umask(mut self, mask: u32) -> Self {
        self.umask = mask;
        self
    }

    /// Propagation of the container's root mount (default private and
    /// recursive; runtime-spec `linux.rootfsPropagation`), `recursive` for
    /// the `r` forms. `Slave` and `Shared` make the mount namespace a
    /// slave of the host's first, so the host's mount events below the
    /// root filesystem reach the container; the container's own mounts
    /// reach the host only below a bind mount that asks for `shared`
    /// propagation too (Kubernetes' `Bidirectional`, written by
    /// containerd as a `rshared` root and an `rshared` bind): that bind
    /// stays a peer of its host source, as with runc. Elsewhere a
    /// `Shared` root is shared among the container's own mounts and a
    /// slave of the host's (runc's would also push mounts made on the
    /// root filesystem onto the host's copy of it).
    ///
    /// ```
    /// let b = berth::Container::builder("c").rootfs_propagation(berth::Propagation::Slave, true);
    /// ```
    pub fn rootfs_propagation(mut self, p: Propagation, recursive: bool) -> Self {
        self.rootfs_propagation = Some((p, recursive));
        self
    }

    /// Create a device node in the container (runtime-spec
    /// `linux.devices`) with its type, numbers, mode and owner, and allow
    /// it (read, write, mknod) in the device filter, after the filter's
    /// own rules. With a user namespace, where `mknod(2)` of a device is
    /// refused, the host's node at the same path is bind-mounted instead.
    /// `/dev/ptmx` stays the link to `pts/ptmx`, the container's own devpts
    /// instance, as runc leaves it.
    ///
    /// ```
    /// use berth::{DeviceNode, DeviceNodeKind};
    /// let b = berth::Container::builder("c")
    ///     .device_node(DeviceNode::new("/dev/fuse", DeviceNodeKind::Char, 10, 229).mode(0o666));
    /// ```
    pub fn device_node(mut self, d: DeviceNode) -> Self {
        self.devices.push(d);
        self
    }

    /// Join an existing namespace (`/proc/<pid>/ns/<type>` or a bind-mounted
    /// namespace file) instead of creating that type.
    ///
    /// ```
    /// let b = berth::Container::builder("c").join_namespace("/run/netns/web", berth_namespaces::Namespaces::NET);
    /// ```
    #[doc(alias("setns"))]
    pub fn join_namespace(mut self, path: impl Into<PathBuf>, ns: Namespaces) -> Self {
        self.joins.push((path.into(), ns));
        self
    }

    /// Do not create these namespace types (share the caller's). Without a
    /// mount namespace of its own nothing is mounted: the container is
    /// chrooted into a directory root filesystem as it is (no /proc, /dev,
    /// /sys), and extra mounts, a read-only root, device nodes, a terminal
    /// and image root filesystems are refused.
    ///
    /// ```
    /// let b = berth::Container::builder("c").share_namespaces(berth_namespaces::Namespaces::IPC);
    /// ```
    #[doc(alias("setns"))]
    pub fn share_namespaces(mut self, ns: Namespaces) -> Self {
        self.skip_namespaces |= ns;
        self
    }

    /// Kill the container's init (`SIGKILL`, `PR_SET_PDEATHSIG`) when the
    /// process that spawned it dies (default on): exits, is killed (even by
    /// SIGKILL) or `execve`s from another thread. The thread that called
    /// `spawn` may end first (a `tokio::task::spawn_blocking` or pool
    /// thread): the clone is done by the main thread or berth's own
    /// `berth-owner` thread, which live as long as the process (see
    /// [`berth_namespaces::Spawner::parent_death_signal`]). Turn it off for
    /// containers meant to outlive their creator, such as an OCI runtime's
    /// `create` followed by [`Container::detach`].
    ///
    /// ```
    /// let b = berth::Container::builder("c").kill_with_owner(false);
    /// ```
    pub fn kill_with_owner(mut self, on: bool) -> Self {
        self.kill_with_owner = on;
        self
    }

    /// Give the workload `fd` as its descriptor `child_fd` (every other
    /// fd but stdio is closed before `execve`), e.g. the listening sockets
    /// of socket activation or an OCI runtime's `--preserve-fds`.
    ///
    /// ```no_run
    /// let f = std::fs::File::open("/etc/hostname")?;
    /// let b = berth::Container::builder("c").inherit_fd(f.into(), 3);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn inherit_fd(mut self, fd: OwnedFd, child_fd: std::os::fd::RawFd) -> Self {
        self.inherit_fds.push((fd, child_fd));
        self
    }

    /// Take the container's network namespace from berth's process-wide
    /// pool of fresh namespaces made ahead of time by background threads
    /// ([`berth_namespaces::NetnsPool::shared`]) instead of creating it on
    /// the spawn path (about 1 ms of kernel time). Default: on from the
    /// second container a process starts (a process that starts one
    /// container never starts the pool's threads). Never used with a user
    /// namespace (rootless): the container's root must own its network
    /// namespace. The namespace is as fresh either way (only a `lo`, never
    /// used).
    ///
    /// ```
    /// let b = berth::Container::builder("c").netns_pool(false);
    /// ```
    pub fn netns_pool(mut self, on: bool) -> Self {
        self.netns_pool = Some(on);
        self
    }

    /// Create, start and return the running container.
    ///
    /// On error nothing is left behind: no process, cgroup, mount, netns,
    /// veth, IPAM entry or state directory.
    ///
    /// ```no_run
    /// let mut c = berth::Container::builder("c").command(["true"]).spawn()?;
    /// c.wait()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    #[doc(alias("clone3", "pivot_root", "execve"))]
    pub fn spawn(self) -> Result<Container> {
        self.build(false)
    }

    /// Two-phase start: everything is ready (namespaces, filesystem,
    /// cgroup, network, security) and the process waits just before
    /// `execve` until [`Container::start`].
    ///
    /// ```no_run
    /// let mut c = berth::Container::builder("c").command(["true"]).create()?;
    /// c.start()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn create(self) -> Result<Container> {
        self.build(true)
    }

    pub(crate) fn namespaces(&self) -> Namespaces {
        let mut ns = Namespaces::MOUNT
            | Namespaces::UTS
            | Namespaces::IPC
            | Namespaces::PID
            | Namespaces::CGROUP;
        if self.network.has_own_netns() {
            ns |= Namespaces::NET;
        }
        if self.rootless || !self.uid_maps.is_empty() {
            ns |= Namespaces::USER;
        }
        ns &= !self.skip_namespaces;
        for (_, j) in &self.joins {
            ns &= !*j;
        }
        ns
    }

    pub(crate) fn security_policy(
        &self,
        image_user: Option<(u32, u32, Vec<u32>)>,
    ) -> Result<SecurityPolicy> {
        let caps = match self.capabilities {
            Some(c) => c,
            None => Capabilities::uniform(CapSet::docker_with(&self.cap_add, &self.cap_drop)?),
        };
        let mut p = SecurityPolicy::new()
            .capabilities(caps)
            .no_new_privs(self.no_new_privs);
        p = match &self.seccomp {
            Seccomp::Unconfined => p.no_seccomp(),
            Seccomp::Default => p.seccomp_program(default_seccomp(caps.bounding)?),
            Seccomp::Profile(prof) => p.seccomp(prof.clone()),
        };
        if let Some((u, g)) = self.user {
            p = p.user(u, g);
            if !self.groups.is_empty() {
                p = p.groups(self.groups.iter().copied());
            }
        } else if let Some((u, g, image_groups)) = image_user {
            p = p.user(u, g);
            if !self.groups.is_empty() {
                p = p.groups(self.groups.iter().copied());
            } else if !image_groups.is_empty() {
                p = p.groups(image_groups);
            }
        } else if !self.groups.is_empty() {
            p = p.user(0, 0).groups(self.groups.iter().copied());
        }
        for (r, s, h) in &self.rlimits {
            p = p.rlimit(*r, *s, *h);
        }
        if let Some(v) = self.oom_score_adj {
            p = p.oom_score_adj(v);
        }
        if let Some(a) = &self.apparmor {
            p = p.apparmor_profile(a.clone());
        }
        Ok(p)
    }
}

/// Write `data` to file `path` (created 0644: the container's users read
/// it; a leftover of a crashed container of the same id is truncated),
/// never through a symlink.
pub(crate) fn write_world_readable(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Error::io("create", path, e))?;
    f.write_all(data).map_err(|e| Error::io("write", path, e))
}

/// The node name of our UTS namespace (uname(2)).
pub(crate) fn uts_nodename() -> String {
    use std::os::unix::ffi::OsStrExt;
    berth_sys::proc::nodename()
        .as_bytes()
        .iter()
        .map(|c| *c as char)
        .collect()
}

pub(crate) fn set_env(env: &mut Vec<(String, String)>, k: &str, v: &str) {
    match env.iter_mut().find(|(ek, _)| ek == k) {
        Some(e) => e.1 = v.to_string(),
        None => env.push((k.to_string(), v.to_string())),
    }
}

/// The image config's `User` when all numeric: `uid` or `uid:gid` (names
/// are looked up in the rootfs by `bundle::resolve_image_user`).
pub(crate) fn parse_image_user(u: &str) -> Result<(u32, u32)> {
    let bad = || {
        Error::invalid(format!(
            "image user {u:?}: only numeric uid[:gid] is supported"
        ))
    };
    match u.split_once(':') {
        Some((a, b)) => Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?)),
        None => {
            let uid = u.parse().map_err(|_| bad())?;
            Ok((uid, uid))
        }
    }
}

/// The cgroup2 hierarchy, discovered once per process (parsing
/// `/proc/self/mountinfo` and `/proc/self/cgroup` on every spawn is
/// measurable on the spawn path).
pub(crate) fn cached_hierarchy() -> Result<berth_cgroups::Hierarchy> {
    static H: OnceLock<berth_cgroups::Hierarchy> = OnceLock::new();
    if let Some(h) = H.get() {
        return Ok(h.clone());
    }
    let h = berth_cgroups::Hierarchy::discover()?;
    let _ = H.set(h.clone());
    Ok(h)
}

/// Docker's default seccomp profile compiled for `caps`, cached per
/// capability set for the life of the process.
pub(crate) fn default_seccomp(caps: CapSet) -> Result<SeccompProgram> {
    static CACHE: OnceLock<Mutex<Vec<(u64, SeccompProgram)>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(Vec::new()));
    if let Ok(c) = cache.lock() {
        if let Some((_, p)) = c.iter().find(|(b, _)| *b == caps.bits()) {
            return Ok(p.clone());
        }
    }
    let prog = SeccompProfile::docker_default_program(&CompileContext::new(caps))?;
    if let Ok(mut c) = cache.lock() {
        c.push((caps.bits(), prog.clone()));
    }
    Ok(prog)
}

/// Child step: bring `lo` up (berth-netsetup's child-safe action).
pub(crate) fn lo_up_step() -> Step {
    // SAFETY: berth_netsetup::child::lo_up makes raw syscalls on stack data
    // only (its contract): no allocation, no lock.
    unsafe { Step::hook("bring lo up (SIOCSIFFLAGS)", berth_netsetup::child::lo_up) }
}

/// Child step: new session with the pty on fd 0 as controlling terminal.
pub(crate) fn controlling_tty_step() -> Step {
    use berth_sys::child;
    // SAFETY: two raw system calls through berth_sys::child; no allocation.
    unsafe {
        Step::hook("setsid + TIOCSCTTY", || {
            child::setsid().and_then(|()| child::set_controlling_tty(0))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(validate_id("web-1.a_b").is_ok());
        assert!(validate_id("").is_err());
        assert!(validate_id(".x").is_err());
        assert!(validate_id("a/b").is_err());
        assert!(validate_id(&"x".repeat(65)).is_err());
    }

    #[test]
    fn image_users() {
        assert_eq!(parse_image_user("1000").unwrap(), (1000, 1000));
        assert_eq!(parse_image_user("1:2").unwrap(), (1, 2));
        assert!(parse_image_user("nobody").is_err());
    }

    #[test]
    fn sysctls() {
        assert!(sysctl_allowed("net.ipv4.ip_forward", true, false));
        assert!(!sysctl_allowed("net.ipv4.ip_forward", false, true));
        assert!(sysctl_allowed("kernel.shmmax", false, true));
        assert!(!sysctl_allowed("kernel.shmmax", true, false));
        assert!(!sysctl_allowed("kernel.panic", true, true));
    }
}
