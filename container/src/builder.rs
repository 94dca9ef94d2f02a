//! The `ContainerBuilder`: configuration, validation and the spawn path.

use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use berth_cgroups::{CgroupBuilder, Resources};
use berth_namespaces::{IdMap, Namespaces, Spawner, Stdio, Step};
use berth_netsetup::{Attach, BridgeNetwork, NetNs};
use berth_security::{
    CapSet, Capabilities, CompileContext, Resource, SeccompProfile, SeccompProgram, SecurityPolicy,
    DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS,
};

use crate::config::{
    DeviceNode, Mount, NetKind, Network, Propagation, Rootfs, RootfsKind, Seccomp,
};
use crate::container::{Container, ExecConfig};
use crate::error::{Error, Result};
use crate::fs::{self, FsPlan};
use crate::state::{self, NetworkState, State};

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
fn sysctl_allowed(key: &str, own_netns: bool, own_ipcns: bool) -> bool {
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
            // SAFETY: geteuid cannot fail.
            rootless: unsafe { libc::geteuid() } != 0,
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

    fn namespaces(&self) -> Namespaces {
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

    fn security_policy(&self, image_user: Option<(u32, u32, Vec<u32>)>) -> Result<SecurityPolicy> {
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

    fn build(mut self, stopped: bool) -> Result<Container> {
        // ---- Validation: nothing is created before all of it passed. ----
        validate_id(&self.id)?;
        let image = self
            .image_config
            .clone()
            .or_else(|| self.rootfs.config.clone())
            .unwrap_or_default();
        match &self.rootfs.kind {
            RootfsKind::Dir(d) if !d.is_dir() => {
                return Err(Error::RootfsMissing { path: d.clone() })
            }
            RootfsKind::Layers(ls) => {
                for l in ls {
                    if !l.is_dir() {
                        return Err(Error::RootfsMissing { path: l.clone() });
                    }
                }
            }
            _ => {}
        }
        let mut argv = self.command.clone();
        if argv.is_empty() {
            argv = image.argv();
        }
        if argv.is_empty() {
            argv = vec!["/bin/sh".to_string()];
        }
        if argv[0].is_empty() {
            return Err(Error::invalid("empty program name"));
        }
        for m in &self.mounts {
            m.validate()?;
        }
        for d in &self.devices {
            d.validate()?;
        }
        if self.umask > 0o777 {
            return Err(Error::invalid(format!(
                "umask {:o} is not a permission mask",
                self.umask
            )));
        }
        // The device nodes asked for are usable: allowed after the
        // filter's own rules (as runc appends linux.devices to the rules).
        if let Some(f) = &mut self.device_filter {
            use berth_ebpf_probes::{DeviceAccess, DeviceKind, DeviceRule};
            for d in &self.devices {
                let kind = match d.kind {
                    crate::DeviceNodeKind::Char => DeviceKind::Char,
                    crate::DeviceNodeKind::Block => DeviceKind::Block,
                    crate::DeviceNodeKind::Fifo => continue,
                };
                f.rule(DeviceRule::allow(
                    kind,
                    Some(d.major),
                    Some(d.minor),
                    DeviceAccess::all(),
                ));
            }
        }
        let ns = self.namespaces();
        // Without a UTS namespace of its own the container shares (or
        // joins) one whose name is not ours to change: refuse a hostname
        // then (as runc: "unable to set hostname without a private UTS
        // namespace") and report the shared one (uname(2)).
        let own_uts = ns.contains(Namespaces::UTS);
        let joined: Namespaces = self
            .joins
            .iter()
            .fold(Namespaces::empty(), |a, (_, n)| a | *n);
        // A hostname is set in a UTS namespace of the container's own or
        // one it joins (as runc, which sets it in a joined one: a pod's
        // containers carry the sandbox's); with the runtime's (host's) it
        // is an error, as runc's "unable to set hostname without a private
        // UTS namespace".
        let set_hostname = own_uts || (joined.contains(Namespaces::UTS) && self.hostname.is_some());
        let hostname = match &self.hostname {
            Some(h) if !set_hostname => {
                return Err(Error::invalid(format!(
                    "hostname {h:?} needs a UTS namespace of the container's own or joined (it shares the runtime's)"
                )))
            }
            Some(h) => h.clone(),
            None if own_uts => self.id.chars().take(63).collect(),
            None => uts_nodename(),
        };
        if hostname.is_empty() || hostname.len() > 64 || hostname.contains(['\0', '/']) {
            return Err(Error::invalid(format!(
                "hostname {hostname:?} is not valid"
            )));
        }
        if let Some(r) = &self.resources {
            r.settings()?;
        }
        // Without a mount namespace of its own (the runtime's, or one
        // joined) berth mounts nothing: the container is chrooted into its
        // root filesystem as it is (fs::plan_without_mount_ns).
        let own_mnt = ns.contains(Namespaces::MOUNT);
        if !own_mnt {
            let why = if !self.mounts.is_empty() {
                Some("extra mounts")
            } else if self.read_only_root {
                Some("a read-only root")
            } else if !self.devices.is_empty() {
                Some("device nodes")
            } else if self.tty {
                Some("a terminal (its devpts)")
            } else if matches!(self.rootfs.kind, RootfsKind::Layers(_)) {
                Some("an image root filesystem (an overlay mount)")
            } else {
                None
            };
            if let Some(what) = why {
                return Err(Error::invalid(format!(
                    "{what} need a mount namespace of the container's own; berth never mounts into the runtime's or a joined one"
                )));
            }
        }
        for (k, _) in &self.sysctls {
            // A namespace of the container's own or joined, never the
            // runtime's (host's).
            let net = (ns | joined).contains(Namespaces::NET);
            let ipc = (ns | joined).contains(Namespaces::IPC);
            if !sysctl_allowed(k, net, ipc) {
                return Err(Error::invalid(format!(
                    "sysctl {k:?} is not namespaced for this container; refusing to change the host's"
                )));
            }
        }
        let image_user = match image.user.as_deref() {
            None | Some("") => None,
            Some(u) if u.split(':').all(|p| p.parse::<u32>().is_ok()) => {
                let (uid, gid) = parse_image_user(u)?;
                Some((uid, gid, Vec::new()))
            }
            // Names: looked up in the rootfs's /etc/passwd and /etc/group.
            Some(u) => {
                let roots = match &self.rootfs.kind {
                    RootfsKind::Dir(d) => vec![d.clone()],
                    RootfsKind::Layers(l) => l.clone(),
                    RootfsKind::Host => vec![PathBuf::from("/")],
                };
                Some(crate::bundle::resolve_image_user(&roots, u)?)
            }
        };
        let cwd = self
            .cwd
            .clone()
            .or_else(|| {
                image
                    .working_dir
                    .clone()
                    .filter(|w| !w.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| PathBuf::from("/"));
        if !cwd.is_absolute() {
            return Err(Error::invalid(format!(
                "working directory {cwd:?} must be absolute"
            )));
        }
        if self.rootless && matches!(self.network.kind, NetKind::Bridge(_) | NetKind::User(_)) {
            return Err(Error::invalid(
                "bridge networking needs root (rootless containers get loopback or Network::pasta())",
            ));
        }
        let bridge = match &self.network.kind {
            NetKind::Bridge(b) => Some(b.clone()),
            _ => None,
        };
        let user_net = match &self.network.kind {
            NetKind::User(u) => Some(u.clone()),
            _ => None,
        };
        let policy = self.security_policy(image_user)?;
        let prepared = Arc::new(policy.prepare()?);

        // Environment: defaults, the image's, then the caller's.
        let mut env: Vec<(String, String)> = vec![
            (
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ),
            ("HOSTNAME".into(), hostname.clone()),
            ("HOME".into(), "/root".into()),
        ];
        if self.tty {
            env.push(("TERM".into(), "xterm".into()));
        }
        for kv in &image.env {
            if let Some((k, v)) = kv.split_once('=') {
                set_env(&mut env, k, v);
            }
        }
        for (k, v) in &self.env {
            if k.is_empty() || k.contains('=') {
                return Err(Error::invalid(format!("environment variable name {k:?}")));
            }
            set_env(&mut env, k, v);
        }

        // What Container::commit records as the new image's config.
        let commit_config = berth_overlay::ImageConfig {
            env: env
                .iter()
                .filter(|(k, _)| k != "HOSTNAME")
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            cmd: argv.clone(),
            entrypoint: Vec::new(),
            working_dir: Some(cwd.to_string_lossy().into_owned()),
            user: self
                .user
                .map(|(u, g)| format!("{u}:{g}"))
                .or_else(|| image.user.clone()),
        };

        // ---- Side effects start here; the guard undoes them on error. ----
        let state_root = self
            .state_root
            .clone()
            .unwrap_or_else(state::default_state_root);
        // 0700, ours, not writable by others (state.rs).
        state::private_root(&state_root, true)?;
        // Every kernel object is recorded before it is made, and the state
        // directory appears atomically with the first record (which names
        // the cgroup about to be created): an owner killed at any point
        // leaves a record `gc` acts on (state.rs).
        let want_cgroup = !self.rootless || self.cgroup_parent.is_some();
        let cgroup_name: PathBuf = self
            .cgroup_name
            .clone()
            .unwrap_or_else(|| self.id.clone().into());
        let planned_cgroup = if want_cgroup {
            Some(state::planned_cgroup(
                &cached_hierarchy()?,
                self.cgroup_parent.as_deref(),
                &cgroup_name,
            ))
        } else {
            None
        };
        // Cached per process: a CLI pays one /proc read for create and destroy.
        let (owner, owner_start) = state::own_start();
        let mut st = State {
            id: self.id.clone(),
            pid: None,
            pid_start: None,
            owner_pid: owner,
            owner_start,
            cgroup: planned_cgroup,
            mounts: Vec::new(),
            network: None,
            pasta_pid: None,
            pasta_start: None,
            created: stopped,
            detached: false,
            created_at: state::now_secs(),
        };
        let state_dir = state::create_state_dir(&state_root, &st)?;
        let mut guard = StateDirGuard(Some(state_dir.clone()));

        // /etc files.
        let mut etc: Vec<(&'static str, Vec<u8>)> = vec![
            ("/etc/hostname", format!("{hostname}\n").into_bytes()),
            (
                "/etc/hosts",
                format!(
                    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
                )
                .into_bytes(),
            ),
        ];
        if bridge.is_some() || user_net.is_some() || matches!(self.network.kind, NetKind::Pasta(_))
        {
            if let Ok(r) = std::fs::read("/etc/resolv.conf") {
                etc.push(("/etc/resolv.conf", r));
            }
        }
        if matches!(self.network.kind, NetKind::Host) {
            etc.clear();
        }

        // cgroup: created (with its limits) before the process, which is
        // cloned straight into it.
        let mut applied = crate::limits::AppliedLimits::default();
        let cgroup = if want_cgroup {
            let mut b = CgroupBuilder::new(cgroup_name)
                .hierarchy(cached_hierarchy()?)
                .ignore_unavailable(self.ignore_unavailable);
            if let Some(p) = &self.cgroup_parent {
                b = b.parent(p.clone());
            }
            if let Some(r) = &self.resources {
                b = b.resources(r.clone());
            }
            // berth-cgroups logs each skipped limit (once) with where its
            // controller is bound; the program gets them in `applied`.
            let (cg, report) = b.create_with_report()?;
            applied = crate::limits::AppliedLimits::from_report(report);
            st.cgroup = Some(cg.path().to_path_buf());
            Some(cg)
        } else {
            if let Some(r) = self.resources.as_ref().filter(|r| !r.is_empty()) {
                const NO_CGROUP: &str =
                    "rootless containers get cgroup limits only under a delegated cgroup_parent";
                if !self.ignore_unavailable {
                    return Err(Error::invalid(NO_CGROUP));
                }
                applied = crate::limits::AppliedLimits::all_skipped(&self.id, r, NO_CGROUP)?;
            }
            None
        };
        if cgroup.is_some() {
            // Confirms the cgroup (the first record had it as planned only).
            st.write(&state_dir)?;
        }
        if let (Some(cg), Some(f)) = (&cgroup, &self.device_filter) {
            attach_device_filter(cg, f)?;
        }

        // ---- The spawn plan. ----
        // An overlay root's writable layer, for Container::diff/commit.
        let send_upper = !matches!(self.rootfs.kind, RootfsKind::Dir(_));
        // A user-defined network: its handle now (rebuilt from its record
        // when given by name), and the host file bound at /etc/hosts.
        let user_handle = user_net.as_ref().map(|u| u.resolve()).transpose()?;
        let hosts_src = user_handle.as_ref().map(|n| n.hosts_path(&self.id));
        let fs_plan = FsPlan {
            state_dir: &state_dir,
            rootfs: &self.rootfs.kind,
            read_only_root: self.read_only_root,
            rootless: self.rootless,
            own_netns: ns.contains(Namespaces::NET),
            cgroupns: ns.contains(Namespaces::CGROUP) && cgroup.is_some(),
            cgroup_dir: cgroup.as_ref().map(|c| c.path()),
            mounts: &self.mounts,
            masked: &self.masked,
            readonly: &self.readonly_paths,
            sysctls: &self.sysctls,
            etc_files: &etc,
            send_upper,
            hosts_bound: hosts_src.as_deref(),
            umask: self.umask,
            root_propagation: self.rootfs_propagation,
            devices: &self.devices,
            // mknod(2) of a device needs CAP_MKNOD in the initial user
            // namespace: with a user namespace the host's nodes are bound.
            bind_devices: self.rootless
                || ns.contains(Namespaces::USER)
                || self.joins.iter().any(|(_, n)| n.contains(Namespaces::USER)),
            // SAFETY: geteuid cannot fail.
            userns_by_root: (ns | joined).contains(Namespaces::USER)
                && unsafe { libc::geteuid() } == 0,
        };
        let mut steps = if own_mnt {
            fs::plan(&fs_plan)?
        } else {
            fs::plan_without_mount_ns(&fs_plan)?
        };
        if matches!(self.network.kind, NetKind::Loopback) && ns.contains(Namespaces::NET) {
            steps.push(lo_up_step());
        }
        // tty: a pty of the container's own devpts, opened by a step after
        // pivot_root; its slave becomes fds 0-2 (pty.rs).
        let mut pty_plan = None;
        if self.tty {
            let (rx, child_sock, step) = crate::pty::plan()?;
            self.stdin = Stdio::Inherit;
            self.stdout = Stdio::Inherit;
            self.stderr = Stdio::Inherit;
            steps.push(step);
            steps.push(controlling_tty_step());
            pty_plan = Some((rx, child_sock));
        }
        let sec = prepared.clone();
        // SAFETY: apply_in_child only runs raw syscalls on data prepared
        // above (berth-security's contract). It is the final step: after
        // the start wait, right before execve, so the seccomp filter sees
        // nothing of berth's own setup (runtime-spec: seccomp is the last
        // thing before the user's process starts).
        let policy_step = unsafe {
            Step::hook_detailed(
                "apply security policy (rlimits, capabilities, no_new_privs, seccomp)",
                move || sec.apply_in_child().map_err(crate::error::step_failure),
            )
        };

        let mut sp = Spawner::new(&argv);
        sp.env_clear()
            .namespaces(ns)
            .current_dir(&cwd)
            .init(self.init)
            .stdin(std::mem::take(&mut self.stdin))
            .stdout(std::mem::take(&mut self.stdout))
            .stderr(std::mem::take(&mut self.stderr))
            .steps(steps)
            .final_step(policy_step);
        if self.kill_with_owner {
            sp.parent_death_signal(libc::SIGKILL);
        }
        let pty_rx = pty_plan.map(|(rx, child_sock)| {
            sp.map_fd(child_sock, crate::pty::CHILD_SOCKET_FD);
            rx
        });
        let upper_rx = if send_upper {
            let (rx, child_sock) = crate::pty::fd_channel("the writable layer")?;
            sp.map_fd(child_sock, crate::commit::UPPER_SOCKET_FD);
            Some(rx)
        } else {
            None
        };
        let lo_up = matches!(self.network.kind, NetKind::Loopback);
        crate::perf::use_netns_pool(&mut sp, ns, self.netns_pool, lo_up);
        if set_hostname {
            sp.hostname(&hostname);
        }
        for (fd, child_fd) in std::mem::take(&mut self.inherit_fds) {
            sp.map_fd(fd, child_fd);
        }
        for (k, v) in &env {
            sp.env(k, v);
        }
        for (p, n) in &self.joins {
            sp.join_path(p, *n);
        }
        if ns.contains(Namespaces::USER) {
            if self.uid_maps.is_empty() {
                // SAFETY: getuid/getgid cannot fail.
                sp.uid_map(IdMap::new(0, unsafe { libc::getuid() }, 1));
                // SAFETY: as above.
                sp.gid_map(IdMap::new(0, unsafe { libc::getgid() }, 1));
                sp.setgroups_deny(true);
            } else {
                for m in &self.uid_maps {
                    sp.uid_map(*m);
                }
                for m in &self.gid_maps {
                    sp.gid_map(*m);
                }
                // An unprivileged caller may write one single-id line
                // mapping its own uid (gid, with setgroups denied) itself
                // (user_namespaces(7)); anything else needs the setuid
                // helpers and /etc/subuid.
                // SAFETY: geteuid/getegid cannot fail.
                let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
                let own = |maps: &[IdMap], id: u32| {
                    maps.len() == 1 && maps[0].count == 1 && maps[0].outside == id
                };
                let direct = own(&self.uid_maps, euid) && own(&self.gid_maps, egid);
                sp.use_id_map_tools(euid != 0 && !direct);
            }
        }
        if let Some(cg) = &cgroup {
            let fd = cg
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| Error::io("dup cgroup fd", cg.path(), e))?;
            sp.cgroup_fd(fd);
        }
        let attachment: Arc<Mutex<Option<berth_netsetup::Attachment>>> = Arc::new(Mutex::new(None));
        let pasta: Arc<Mutex<Option<crate::pasta::Pasta>>> = Arc::new(Mutex::new(None));
        if let NetKind::Pasta(ports) = &self.network.kind {
            let (ports, dir, slot) = (ports.clone(), state_dir.clone(), pasta.clone());
            sp.after_clone(move |child| {
                let p = crate::pasta::Pasta::start(child.pid(), &ports, &dir)?;
                if let Ok(mut s) = slot.lock() {
                    *s = Some(p);
                }
                Ok(())
            });
        }
        // The network to attach (bridge or user-defined) and how.
        let user = user_net.zip(user_handle);
        let to_attach = match (&bridge, &user) {
            (Some(b), _) => {
                let mut bn = BridgeNetwork::new(&b.name)
                    .bridge(b.bridge.as_deref().unwrap_or(&b.name))
                    .masquerade(b.masquerade)
                    .ip_forward(b.ip_forward);
                if let Some(d) = &b.state_dir {
                    bn = bn.state_dir(d.clone());
                }
                if let Some(s) = &b.subnet {
                    bn = bn.subnet(s);
                }
                Some((bn.ensure()?, Attach::new(&self.id), &b.ports))
            }
            (None, Some((u, net))) => {
                // Names: the hosts file is written here, before the child
                // binds it at /etc/hosts, and kept listing every member of
                // the network by berth-netsetup (in place: the bind holds
                // its inode; it deletes the file when the container goes).
                let hosts = net.hosts_path(&self.id);
                let base = etc
                    .iter()
                    .find(|(p, _)| *p == "/etc/hosts")
                    .map(|(_, d)| d.as_slice())
                    .unwrap_or_default();
                write_world_readable(&hosts, base)?;
                let mut attach = Attach::new(&self.id).name(&self.id).hosts_file(hosts);
                for a in &u.aliases {
                    attach = attach.name(a);
                }
                Some((net.clone(), attach, &u.ports))
            }
            (None, None) => None,
        };
        if let Some((net, mut attach, ports)) = to_attach {
            st.network = Some(NetworkState {
                network: net.name().to_string(),
                state_dir: net.state_dir().to_path_buf(),
            });
            st.write(&state_dir)?;
            for p in ports {
                attach = attach.publish(*p);
            }
            // A container reaches its own published ports through the
            // gateway or a host address: the DNATed frame goes back out of
            // the port it came in on when the bridge netfilter hooks are on
            // (br_netfilter), which the bridge allows only in hairpin mode.
            attach = attach.hairpin(!ports.is_empty());
            let slot = attachment.clone();
            sp.after_clone(move |child| {
                let netns = NetNs::from_pidfd(child.pidfd())?;
                let att = net.attach(&netns, &attach)?;
                if let Ok(mut s) = slot.lock() {
                    *s = Some(att);
                }
                Ok(())
            });
        }
        let spawned_at = std::time::Instant::now();
        let spawned = if stopped {
            sp.spawn_stopped()
        } else {
            sp.spawn()
        };
        drop(sp);
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let e = if e.errno() == Some(libc::ENOENT)
                    && matches!(&e, berth_namespaces::Error::Exec { .. })
                {
                    Error::CommandNotFound {
                        program: argv[0].clone(),
                        source: e,
                    }
                } else {
                    e.into()
                };
                // Undo in reverse: pasta and attachment (if the hook got that far), cgroup, state.
                if let Some(p) = pasta.lock().ok().and_then(|mut s| s.take()) {
                    if let Err(e2) = p.stop() {
                        tracing::warn!(container = %self.id, error = %e2, "undo: stop pasta");
                    }
                }
                if let Some(a) = attachment.lock().ok().and_then(|mut s| s.take()) {
                    if let Err(e2) = a.release() {
                        tracing::warn!(container = %self.id, error = %e2, "undo: release network");
                    }
                }
                if let Some(n) = &st.network {
                    let _ = berth_netsetup::gc_container(&n.state_dir, None, &self.id);
                }
                if let Some(h) = &hosts_src {
                    let _ = std::fs::remove_file(h);
                }
                drop(cgroup);
                return Err(e);
            }
        };
        let attachment = attachment.lock().ok().and_then(|mut s| s.take());
        let pasta = pasta.lock().ok().and_then(|mut s| s.take());
        let mount_ns = crate::perf::hold_mount_ns(child.pid());
        let received = pty_rx
            .map(|rx| rx.receive())
            .transpose()
            .and_then(|m| Ok((m, upper_rx.map(|rx| rx.receive()).transpose()?)));
        let (pty_master, upper) = match received {
            Ok(m) => m,
            Err(e) => {
                let _ = child.kill(libc::SIGKILL);
                let _ = child.wait();
                drop(attachment);
                drop(cgroup);
                return Err(e);
            }
        };
        st.pid = Some(child.pid());
        st.pid_start = state::proc_start_time(child.pid());
        if let Some(p) = &pasta {
            st.pasta_pid = Some(p.pid());
            st.pasta_start = state::proc_start_time(p.pid());
        }
        if let Err(e) = st.write(&state_dir) {
            let _ = child.kill(libc::SIGKILL);
            let _ = child.wait();
            drop(attachment);
            drop(cgroup);
            return Err(e);
        }
        if let Some((store, _, digests)) = &self.rootfs.image_ref {
            // Keep the layers from the store's gc while the container lives.
            if let Err(e) = store.set_ref(&format!("container-{}", self.id), digests) {
                tracing::warn!(container = %self.id, error = %e, "could not reference the image layers");
            }
        }
        guard.0 = None;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        Ok(Container {
            id: self.id,
            state_dir,
            state: st,
            child: Some(child),
            status: None,
            cgroup,
            attachment,
            pasta,
            exec: ExecConfig {
                policy,
                namespaces: ns,
                env,
                cwd,
            },
            image_ref: self.rootfs.image_ref.map(|(s, _, _)| s),
            pty: pty_master,
            stdin,
            stdout,
            stderr,
            destroyed: false,
            mount_ns,
            layer: upper.map(|upper| crate::commit::WritableLayer {
                upper,
                lowers: match &self.rootfs.kind {
                    RootfsKind::Layers(l) => Some(l.clone()),
                    _ => None,
                },
                exclude: etc
                    .iter()
                    .map(|(p, _)| p.trim_start_matches('/').into())
                    .collect(),
                config: commit_config,
            }),
            applied,
            timeout: self.timeout.map(|t| (spawned_at, t)),
        })
    }
}

/// Write `data` to file `path` (created 0644: the container's users read
/// it; a leftover of a crashed container of the same id is truncated),
/// never through a symlink.
fn write_world_readable(path: &Path, data: &[u8]) -> Result<()> {
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
fn uts_nodename() -> String {
    // SAFETY: uname fills a zeroed utsname.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer; uname cannot fail with one.
    unsafe { libc::uname(&mut u) };
    u.nodename
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8 as char)
        .collect()
}

fn set_env(env: &mut Vec<(String, String)>, k: &str, v: &str) {
    match env.iter_mut().find(|(ek, _)| ek == k) {
        Some(e) => e.1 = v.to_string(),
        None => env.push((k.to_string(), v.to_string())),
    }
}

/// The image config's `User` when all numeric: `uid` or `uid:gid` (names
/// are looked up in the rootfs by `bundle::resolve_image_user`).
fn parse_image_user(u: &str) -> Result<(u32, u32)> {
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

/// Removes a half-made state directory on error.
struct StateDirGuard(Option<PathBuf>);

impl Drop for StateDirGuard {
    fn drop(&mut self) {
        if let Some(d) = self.0.take() {
            if let Err(e) = state::remove_state_dir(&d) {
                tracing::warn!(error = %e, "undo: remove state directory");
            }
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

/// Attach `filter`: the default allowlist is loaded once per process and
/// the same program attached to every container's cgroup. Removing the
/// cgroup detaches it (cgroup-bpf(7)), so no handle is kept.
fn attach_device_filter(
    cg: &berth_cgroups::Cgroup,
    filter: &berth_ebpf_probes::DeviceFilter,
) -> Result<()> {
    use berth_ebpf_probes::sys::{attach_cgroup, AttachType, Program, BPF_F_ALLOW_MULTI};
    static DEFAULT: OnceLock<Mutex<Option<Program>>> = OnceLock::new();
    let default = berth_ebpf_probes::DeviceFilter::container_default();
    if filter.rules() == default.rules() {
        let slot = DEFAULT.get_or_init(|| Mutex::new(None));
        let mut g = slot
            .lock()
            .map_err(|_| Error::invalid("device filter cache poisoned"))?;
        if g.is_none() {
            *g = Some(default.load()?);
        }
        if let Some(p) = g.as_ref() {
            attach_cgroup(
                cg.as_fd(),
                p,
                AttachType::CgroupDevice,
                BPF_F_ALLOW_MULTI,
                None,
            )?;
        }
        return Ok(());
    }
    filter.attach(cg.as_fd())?.keep_attached();
    Ok(())
}

/// Child step: bring `lo` up with two ioctls (netdevice(7)).
fn lo_up_step() -> Step {
    // SAFETY: socket/ioctl/close are raw syscalls on stack data.
    unsafe {
        Step::hook("bring lo up (SIOCSIFFLAGS)", || {
            let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
            if s < 0 {
                return Err(*libc::__errno_location());
            }
            let mut ifr: libc::ifreq = std::mem::zeroed();
            ifr.ifr_name[0] = b'l' as libc::c_char;
            ifr.ifr_name[1] = b'o' as libc::c_char;
            if libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr) < 0 {
                let e = *libc::__errno_location();
                libc::close(s);
                return Err(e);
            }
            if ifr.ifr_ifru.ifru_flags & libc::IFF_UP as libc::c_short != 0 {
                // Already up (a pooled namespace): skip the rtnl_lock.
                libc::close(s);
                return Ok(());
            }
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            let r = libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr);
            let e = *libc::__errno_location();
            libc::close(s);
            if r < 0 {
                return Err(e);
            }
            Ok(())
        })
    }
}

/// Child step: new session with the pty on fd 0 as controlling terminal.
pub(crate) fn controlling_tty_step() -> Step {
    // SAFETY: setsid/ioctl are raw syscalls.
    unsafe {
        Step::hook("setsid + TIOCSCTTY", || {
            if libc::setsid() < 0 {
                return Err(*libc::__errno_location());
            }
            if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(*libc::__errno_location());
            }
            Ok(())
        })
    }
}

#[allow(dead_code)]
fn _os(s: &str) -> OsString {
    s.into()
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
