//! `ContainerBuilder::build` in phases: validate (no side effects), record
//! the state directory, cgroup, the child's steps, the spawner, the
//! network, spawn, record the process. Every phase that makes something
//! pushes its removal on one [`Undo`] stack, so a failure at any later
//! phase leaves nothing behind.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_cgroups::{Cgroup, CgroupBuilder};
use berth_namespaces::{Child, IdMap, Namespaces, Spawner, Stdio, Step};
use berth_netsetup::{Attach, Attachment, BridgeNetwork, NetNs};
use berth_security::{PreparedSecurity, SecurityPolicy};

use crate::builder::{
    cached_hierarchy, controlling_tty_step, lo_up_step, parse_image_user, set_env, sysctl_allowed,
    uts_nodename, validate_id, write_world_readable, ContainerBuilder,
};
use crate::config::{BridgeSpec, NetKind, RootfsKind};
use crate::container::{Container, ExecConfig};
use crate::error::{Error, Result};
use crate::fs::{self, FsPlan};
use crate::limits::AppliedLimits;
use crate::network::UserSpec;
use crate::pasta::Pasta;
use crate::pty::MasterReceiver;
use crate::state::{self, NetworkState, State};
use crate::undo::{Slot, Undo};

/// The files berth writes into the container's `/etc` (path, content).
type EtcFiles = Vec<(&'static str, Vec<u8>)>;

/// What validation worked out; nothing exists yet.
struct Validated {
    argv: Vec<String>,
    ns: Namespaces,
    /// Namespaces joined with `join_namespace`.
    joined: Namespaces,
    /// The hostname is set (a UTS namespace of the container's own or joined).
    set_hostname: bool,
    hostname: String,
    cwd: PathBuf,
    env: Vec<(String, String)>,
    commit_config: berth_overlay::ImageConfig,
    policy: SecurityPolicy,
    prepared: Arc<PreparedSecurity>,
    bridge: Option<BridgeSpec>,
    user_net: Option<UserSpec>,
}

/// The parent's ends of the fd channels from the child.
struct Channels {
    pty: Option<MasterReceiver>,
    upper: Option<MasterReceiver>,
}

/// What the network phase made (filled by `after_clone` hooks).
struct NetworkSlots {
    attachment: Slot<Attachment>,
    pasta: Slot<Pasta>,
}

impl ContainerBuilder {
    pub(crate) fn build(mut self, stopped: bool) -> Result<Container> {
        let v = self.validate()?;
        // ---- Side effects start here; `undo` removes them on error. ----
        let mut undo = Undo::new(&self.id);
        let (state_dir, mut st) = self.record_state(stopped, &mut undo)?;
        let etc = self.etc_files(&v.hostname);
        let (cgroup, applied) = self.make_cgroup(&mut st, &state_dir, &mut undo)?;
        // A user-defined network: its handle now (rebuilt from its record
        // when given by name), and the host file bound at /etc/hosts.
        let user_handle = v.user_net.as_ref().map(|u| u.resolve()).transpose()?;
        let hosts_src = user_handle.as_ref().map(|n| n.hosts_path(&self.id));
        let cgroup_dir = cgroup.with(|c| c.path().to_path_buf());
        let steps = self.child_steps(&v, &state_dir, &etc, cgroup_dir.as_deref(), &hosts_src)?;
        let (mut sp, channels) = self.spawner(&v, steps, &cgroup)?;
        let net = self.attach_network(
            &v,
            &mut sp,
            user_handle,
            &etc,
            &mut st,
            &state_dir,
            &mut undo,
        )?;
        let spawned_at = std::time::Instant::now();
        let child = spawn_child(sp, stopped, &v.argv[0], &mut undo)?;
        let mount_ns = child
            .with(|c| crate::perf::hold_mount_ns(c.pid()))
            .flatten();
        let pty = channels.pty.map(MasterReceiver::receive).transpose()?;
        let upper = channels.upper.map(MasterReceiver::receive).transpose()?;
        record_process(&mut st, &state_dir, &child, &net.pasta)?;
        self.reference_layers();
        undo.disarm();
        // ---- Done: the objects go to the handle. ----
        let mut child = child
            .take()
            .ok_or_else(|| Error::invalid("the container's process went missing"))?;
        Ok(Container {
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
            id: self.id,
            state_dir,
            state: st,
            child: Some(child),
            status: None,
            cgroup: cgroup.take(),
            attachment: net.attachment.take(),
            pasta: net.pasta.take(),
            exec: ExecConfig {
                policy: v.policy,
                namespaces: v.ns,
                env: v.env,
                cwd: v.cwd,
            },
            pty,
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
                config: v.commit_config,
            }),
            image_ref: self.rootfs.image_ref.map(|(s, _, _)| s),
            applied,
            timeout: self.timeout.map(|t| (spawned_at, t)),
        })
    }

    // ---- Phase 1: validation. Nothing is created before all of it passed. ----

    fn validate(&mut self) -> Result<Validated> {
        validate_id(&self.id)?;
        let image = self
            .image_config
            .clone()
            .or_else(|| self.rootfs.config.clone())
            .unwrap_or_default();
        self.check_rootfs()?;
        let argv = self.argv(&image)?;
        self.check_mounts_and_devices()?;
        self.allow_device_nodes();
        let ns = self.namespaces();
        let joined: Namespaces = self
            .joins
            .iter()
            .fold(Namespaces::empty(), |a, (_, n)| a | *n);
        let (set_hostname, hostname) = self.resolve_hostname(ns, joined)?;
        if let Some(r) = &self.resources {
            r.settings()?;
        }
        self.check_mount_ns_needs(ns)?;
        self.check_sysctls(ns | joined)?;
        let image_user = self.image_user(&image)?;
        let cwd = self.working_dir(&image)?;
        if self.rootless && matches!(self.network.kind, NetKind::Bridge(_) | NetKind::User(_)) {
            return Err(Error::invalid(
                "bridge networking needs root (rootless containers get loopback or Network::pasta())",
            ));
        }
        let (bridge, user_net) = match &self.network.kind {
            NetKind::Bridge(b) => (Some(b.clone()), None),
            NetKind::User(u) => (None, Some(u.clone())),
            _ => (None, None),
        };
        let policy = self.security_policy(image_user)?;
        let prepared = Arc::new(policy.prepare()?);
        let env = self.environment(&image, &hostname)?;
        let commit_config = self.commit_config(&image, &env, &argv, &cwd);
        Ok(Validated {
            argv,
            ns,
            joined,
            set_hostname,
            hostname,
            cwd,
            env,
            commit_config,
            policy,
            prepared,
            bridge,
            user_net,
        })
    }

    fn check_rootfs(&self) -> Result<()> {
        let missing = |d: &PathBuf| Error::RootfsMissing { path: d.clone() };
        match &self.rootfs.kind {
            RootfsKind::Dir(d) if !d.is_dir() => Err(missing(d)),
            RootfsKind::Layers(ls) => match ls.iter().find(|l| !l.is_dir()) {
                Some(l) => Err(missing(l)),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// The command, else the image's, else `/bin/sh`.
    fn argv(&self, image: &berth_overlay::ImageConfig) -> Result<Vec<String>> {
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
        Ok(argv)
    }

    fn check_mounts_and_devices(&self) -> Result<()> {
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
        Ok(())
    }

    /// The device nodes asked for are usable: allowed after the filter's
    /// own rules (as runc appends linux.devices to the rules).
    fn allow_device_nodes(&mut self) {
        use berth_ebpf_probes::{DeviceAccess, DeviceKind, DeviceRule};
        let Some(f) = &mut self.device_filter else {
            return;
        };
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

    /// Whether the hostname is set, and which: without a UTS namespace of
    /// its own the container shares (or joins) one whose name is not ours
    /// to change.
    fn resolve_hostname(&self, ns: Namespaces, joined: Namespaces) -> Result<(bool, String)> {
        let own_uts = ns.contains(Namespaces::UTS);
        // A hostname is set in a UTS namespace of the container's own or
        // one it joins (as runc, which sets it in a joined one: a pod's
        // containers carry the sandbox's); with the runtime's (host's) it
        // is an error, as runc's "unable to set hostname without a private
        // UTS namespace"; the shared one is reported then (uname(2)).
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
        Ok((set_hostname, hostname))
    }

    /// Without a mount namespace of its own (the runtime's, or one joined)
    /// berth mounts nothing: the container is chrooted into its root
    /// filesystem as it is (fs::plan_without_mount_ns). Refuse what needs a
    /// mount.
    fn check_mount_ns_needs(&self, ns: Namespaces) -> Result<()> {
        if ns.contains(Namespaces::MOUNT) {
            return Ok(());
        }
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
        match why {
            Some(what) => Err(Error::invalid(format!(
                "{what} need a mount namespace of the container's own; berth never mounts into the runtime's or a joined one"
            ))),
            None => Ok(()),
        }
    }

    /// Sysctls only of a namespace of the container's own or joined
    /// (`ns_or_joined`), never the runtime's (host's).
    fn check_sysctls(&self, ns_or_joined: Namespaces) -> Result<()> {
        let net = ns_or_joined.contains(Namespaces::NET);
        let ipc = ns_or_joined.contains(Namespaces::IPC);
        match self
            .sysctls
            .iter()
            .find(|(k, _)| !sysctl_allowed(k, net, ipc))
        {
            Some((k, _)) => Err(Error::invalid(format!(
                "sysctl {k:?} is not namespaced for this container; refusing to change the host's"
            ))),
            None => Ok(()),
        }
    }

    /// The image's `User`: numeric, or names looked up in the rootfs's
    /// /etc/passwd and /etc/group.
    fn image_user(
        &self,
        image: &berth_overlay::ImageConfig,
    ) -> Result<Option<(u32, u32, Vec<u32>)>> {
        match image.user.as_deref() {
            None | Some("") => Ok(None),
            Some(u) if u.split(':').all(|p| p.parse::<u32>().is_ok()) => {
                let (uid, gid) = parse_image_user(u)?;
                Ok(Some((uid, gid, Vec::new())))
            }
            Some(u) => {
                let roots = match &self.rootfs.kind {
                    RootfsKind::Dir(d) => vec![d.clone()],
                    RootfsKind::Layers(l) => l.clone(),
                    RootfsKind::Host => vec![PathBuf::from("/")],
                };
                Ok(Some(crate::bundle::resolve_image_user(&roots, u)?))
            }
        }
    }

    /// The working directory: the caller's, the image's, else `/`; absolute.
    fn working_dir(&self, image: &berth_overlay::ImageConfig) -> Result<PathBuf> {
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
        Ok(cwd)
    }

    /// Environment: defaults, the image's, then the caller's.
    fn environment(
        &self,
        image: &berth_overlay::ImageConfig,
        hostname: &str,
    ) -> Result<Vec<(String, String)>> {
        let mut env: Vec<(String, String)> = vec![
            (
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ),
            ("HOSTNAME".into(), hostname.into()),
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
        Ok(env)
    }

    /// What Container::commit records as the new image's config.
    fn commit_config(
        &self,
        image: &berth_overlay::ImageConfig,
        env: &[(String, String)],
        argv: &[String],
        cwd: &Path,
    ) -> berth_overlay::ImageConfig {
        berth_overlay::ImageConfig {
            env: env
                .iter()
                .filter(|(k, _)| k != "HOSTNAME")
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            cmd: argv.to_vec(),
            entrypoint: Vec::new(),
            working_dir: Some(cwd.to_string_lossy().into_owned()),
            user: self
                .user
                .map(|(u, g)| format!("{u}:{g}"))
                .or_else(|| image.user.clone()),
        }
    }

    // ---- Phase 2: the state directory. ----

    /// A cgroup of the container's own (rootless: only under a delegated parent).
    fn wants_cgroup(&self) -> bool {
        !self.rootless || self.cgroup_parent.is_some()
    }

    fn cgroup_name(&self) -> PathBuf {
        self.cgroup_name
            .clone()
            .unwrap_or_else(|| self.id.clone().into())
    }

    /// Every kernel object is recorded before it is made, and the state
    /// directory appears atomically with the first record (which names the
    /// cgroup about to be created): an owner killed at any point leaves a
    /// record `gc` acts on (state.rs).
    fn record_state(&self, stopped: bool, undo: &mut Undo) -> Result<(PathBuf, State)> {
        let state_root = self
            .state_root
            .clone()
            .unwrap_or_else(state::default_state_root);
        // 0700, ours, not writable by others (state.rs).
        state::private_root(&state_root, true)?;
        let planned_cgroup = if self.wants_cgroup() {
            Some(state::planned_cgroup(
                &cached_hierarchy()?,
                self.cgroup_parent.as_deref(),
                &self.cgroup_name(),
            ))
        } else {
            None
        };
        // Cached per process: a CLI pays one /proc read for create and destroy.
        let (owner, owner_start) = state::own_start();
        let st = State {
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
        let dir = state_dir.clone();
        undo.push("remove state directory", move || {
            state::remove_state_dir(&dir)
        });
        Ok((state_dir, st))
    }

    /// /etc/hostname, /etc/hosts, and the host's /etc/resolv.conf with a
    /// network beyond loopback; none with the host's network.
    fn etc_files(&self, hostname: &str) -> EtcFiles {
        if matches!(self.network.kind, NetKind::Host) {
            return Vec::new();
        }
        let mut etc: EtcFiles = vec![
            ("/etc/hostname", format!("{hostname}\n").into_bytes()),
            (
                "/etc/hosts",
                format!(
                    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
                )
                .into_bytes(),
            ),
        ];
        if matches!(
            self.network.kind,
            NetKind::Bridge(_) | NetKind::User(_) | NetKind::Pasta(_)
        ) {
            if let Ok(r) = std::fs::read("/etc/resolv.conf") {
                etc.push(("/etc/resolv.conf", r));
            }
        }
        etc
    }

    // ---- Phase 3: the cgroup, created (with its limits) before the
    // process, which is cloned straight into it. ----

    fn make_cgroup(
        &self,
        st: &mut State,
        state_dir: &Path,
        undo: &mut Undo,
    ) -> Result<(Slot<Cgroup>, AppliedLimits)> {
        if !self.wants_cgroup() {
            let mut applied = AppliedLimits::default();
            if let Some(r) = self.resources.as_ref().filter(|r| !r.is_empty()) {
                const NO_CGROUP: &str =
                    "rootless containers get cgroup limits only under a delegated cgroup_parent";
                if !self.ignore_unavailable {
                    return Err(Error::invalid(NO_CGROUP));
                }
                applied = AppliedLimits::all_skipped(&self.id, r, NO_CGROUP)?;
            }
            return Ok((Slot::new(None), applied));
        }
        let mut b = CgroupBuilder::new(self.cgroup_name())
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
        let applied = AppliedLimits::from_report(report);
        st.cgroup = Some(cg.path().to_path_buf());
        let cgroup = undo.adopt("remove cgroup", cg, |cg| Ok(cg.remove()?));
        // Confirms the cgroup (the first record had it as planned only).
        st.write(state_dir)?;
        if let Some(f) = &self.device_filter {
            // The default allowlist is loaded once per process.
            cgroup.with(|cg| f.attach_shared(cg)).transpose()?;
        }
        Ok((cgroup, applied))
    }

    // ---- Phase 4: the child's steps (filesystem, lo, tty). ----

    fn child_steps(
        &mut self,
        v: &Validated,
        state_dir: &Path,
        etc: &EtcFiles,
        cgroup_dir: Option<&Path>,
        hosts_src: &Option<PathBuf>,
    ) -> Result<Vec<Step>> {
        let ns = v.ns;
        let fs_plan = FsPlan {
            state_dir,
            rootfs: &self.rootfs.kind,
            read_only_root: self.read_only_root,
            rootless: self.rootless,
            own_netns: ns.contains(Namespaces::NET),
            cgroupns: ns.contains(Namespaces::CGROUP) && cgroup_dir.is_some(),
            cgroup_dir,
            mounts: &self.mounts,
            masked: &self.masked,
            readonly: &self.readonly_paths,
            sysctls: &self.sysctls,
            etc_files: etc,
            // An overlay root's writable layer, for Container::diff/commit.
            send_upper: self.sends_upper(),
            hosts_bound: hosts_src.as_deref(),
            umask: self.umask,
            root_propagation: self.rootfs_propagation,
            devices: &self.devices,
            // mknod(2) of a device needs CAP_MKNOD in the initial user
            // namespace: with a user namespace the host's nodes are bound.
            bind_devices: self.rootless
                || ns.contains(Namespaces::USER)
                || v.joined.contains(Namespaces::USER),
            userns_by_root: (ns | v.joined).contains(Namespaces::USER)
                && berth_sys::fs::euid() == 0,
        };
        let mut steps = if ns.contains(Namespaces::MOUNT) {
            fs::plan(&fs_plan)?
        } else {
            fs::plan_without_mount_ns(&fs_plan)?
        };
        if matches!(self.network.kind, NetKind::Loopback) && ns.contains(Namespaces::NET) {
            steps.push(lo_up_step());
        }
        Ok(steps)
    }

    /// An overlay root sends its writable layer to the parent (commit.rs).
    fn sends_upper(&self) -> bool {
        !matches!(self.rootfs.kind, RootfsKind::Dir(_))
    }

    // ---- Phase 5: the spawner. ----

    fn spawner(
        &mut self,
        v: &Validated,
        mut steps: Vec<Step>,
        cgroup: &Slot<Cgroup>,
    ) -> Result<(Spawner, Channels)> {
        // tty: a pty of the container's own devpts, opened by a step after
        // pivot_root; its slave becomes fds 0-2 (pty.rs).
        let mut pty = None;
        if self.tty {
            let (rx, child_sock, step) = crate::pty::plan()?;
            self.stdin = Stdio::Inherit;
            self.stdout = Stdio::Inherit;
            self.stderr = Stdio::Inherit;
            steps.push(step);
            steps.push(controlling_tty_step());
            pty = Some((rx, child_sock));
        }
        let sec = v.prepared.clone();
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
        let mut sp = Spawner::new(&v.argv);
        sp.env_clear()
            .namespaces(v.ns)
            .current_dir(&v.cwd)
            .init(self.init)
            .stdin(std::mem::take(&mut self.stdin))
            .stdout(std::mem::take(&mut self.stdout))
            .stderr(std::mem::take(&mut self.stderr))
            .steps(steps)
            .final_step(policy_step);
        if self.kill_with_owner {
            sp.parent_death_signal(libc::SIGKILL);
        }
        let pty = pty.map(|(rx, child_sock)| {
            sp.map_fd(child_sock, crate::pty::CHILD_SOCKET_FD);
            rx
        });
        let upper = if self.sends_upper() {
            let (rx, child_sock) = crate::pty::fd_channel("the writable layer")?;
            sp.map_fd(child_sock, crate::commit::UPPER_SOCKET_FD);
            Some(rx)
        } else {
            None
        };
        let lo_up = matches!(self.network.kind, NetKind::Loopback);
        crate::perf::use_netns_pool(&mut sp, v.ns, self.netns_pool, lo_up);
        if v.set_hostname {
            sp.hostname(&v.hostname);
        }
        for (fd, child_fd) in std::mem::take(&mut self.inherit_fds) {
            sp.map_fd(fd, child_fd);
        }
        for (k, val) in &v.env {
            sp.env(k, val);
        }
        for (p, n) in &self.joins {
            sp.join_path(p, *n);
        }
        if v.ns.contains(Namespaces::USER) {
            self.id_maps(&mut sp);
        }
        if let Some(fd) = cgroup.with(dup_cgroup_fd).transpose()? {
            sp.cgroup_fd(fd);
        }
        Ok((sp, Channels { pty, upper }))
    }

    /// The user namespace's id maps: the caller's uid and gid as root
    /// unless maps were given.
    fn id_maps(&self, sp: &mut Spawner) {
        if self.uid_maps.is_empty() {
            sp.uid_map(IdMap::new(0, berth_sys::fs::uid(), 1));
            sp.gid_map(IdMap::new(0, berth_sys::fs::gid(), 1));
            sp.setgroups_deny(true);
            return;
        }
        for m in &self.uid_maps {
            sp.uid_map(*m);
        }
        for m in &self.gid_maps {
            sp.gid_map(*m);
        }
        // An unprivileged caller may write one single-id line mapping its
        // own uid (gid, with setgroups denied) itself (user_namespaces(7));
        // anything else needs the setuid helpers and /etc/subuid.
        let (euid, egid) = (berth_sys::fs::euid(), berth_sys::fs::egid());
        let own = |maps: &[IdMap], id: u32| {
            maps.len() == 1 && maps[0].count == 1 && maps[0].outside == id
        };
        let direct = own(&self.uid_maps, euid) && own(&self.gid_maps, egid);
        sp.use_id_map_tools(euid != 0 && !direct);
    }

    // ---- Phase 6: the network, attached by hooks right after the clone. ----

    #[allow(clippy::too_many_arguments)]
    fn attach_network(
        &self,
        v: &Validated,
        sp: &mut Spawner,
        user_handle: Option<berth_netsetup::Network>,
        etc: &EtcFiles,
        st: &mut State,
        state_dir: &Path,
        undo: &mut Undo,
    ) -> Result<NetworkSlots> {
        let slots = NetworkSlots {
            attachment: Slot::new(None),
            pasta: Slot::new(None),
        };
        if let NetKind::Pasta(ports) = &self.network.kind {
            undo.release("stop pasta", &slots.pasta, Pasta::stop);
            let (ports, dir, slot) = (ports.clone(), state_dir.to_path_buf(), slots.pasta.clone());
            sp.after_clone(move |child| {
                slot.put(Pasta::start(child.pid(), &ports, &dir)?);
                Ok(())
            });
        }
        let Some((net, mut attach, ports)) = self.to_attach(v, user_handle, etc, undo)? else {
            return Ok(slots);
        };
        st.network = Some(NetworkState {
            network: net.name().to_string(),
            state_dir: net.state_dir().to_path_buf(),
        });
        let (net_state, id) = (net.state_dir().to_path_buf(), self.id.clone());
        undo.push("forget the container in the network's records", move || {
            let _ = berth_netsetup::gc_container(&net_state, None, &id);
            Ok(())
        });
        st.write(state_dir)?;
        for p in ports {
            attach = attach.publish(*p);
        }
        // (With published ports berth-netsetup puts the bridge port in
        // hairpin mode: the container reaches them through its gateway.)
        undo.release("release network", &slots.attachment, |a| Ok(a.release()?));
        let slot = slots.attachment.clone();
        sp.after_clone(move |child| {
            let netns = NetNs::from_pidfd(child.pidfd())?;
            slot.put(net.attach(&netns, &attach)?);
            Ok(())
        });
        Ok(slots)
    }

    /// The network to attach (bridge or user-defined), how, and the ports
    /// to publish.
    fn to_attach<'a>(
        &'a self,
        v: &'a Validated,
        user_handle: Option<berth_netsetup::Network>,
        etc: &EtcFiles,
        undo: &mut Undo,
    ) -> Result<Option<(berth_netsetup::Network, Attach, &'a [crate::PortMapping])>> {
        if let Some(b) = &v.bridge {
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
            return Ok(Some((bn.ensure()?, Attach::new(&self.id), &b.ports)));
        }
        let (Some(u), Some(net)) = (&v.user_net, user_handle) else {
            return Ok(None);
        };
        // Names: the hosts file is written here, before the child binds it
        // at /etc/hosts, and kept listing every member of the network by
        // berth-netsetup (in place: the bind holds its inode; it deletes
        // the file when the container goes).
        let hosts = net.hosts_path(&self.id);
        let base = etc
            .iter()
            .find(|(p, _)| *p == "/etc/hosts")
            .map(|(_, d)| d.as_slice())
            .unwrap_or_default();
        write_world_readable(&hosts, base)?;
        let h = hosts.clone();
        undo.push("remove the hosts file", move || {
            let _ = std::fs::remove_file(&h);
            Ok(())
        });
        let mut attach = Attach::new(&self.id).name(&self.id).hosts_file(hosts);
        for a in &u.aliases {
            attach = attach.name(a);
        }
        Ok(Some((net, attach, &u.ports)))
    }

    /// Keep the image's layers from the store's gc while the container lives.
    fn reference_layers(&self) {
        if let Some((store, _, digests)) = &self.rootfs.image_ref {
            if let Err(e) = store.set_ref(&format!("container-{}", self.id), digests) {
                tracing::warn!(container = %self.id, error = %e, "could not reference the image layers");
            }
        }
    }
}

fn dup_cgroup_fd(cg: &Cgroup) -> Result<OwnedFd> {
    cg.as_fd()
        .try_clone_to_owned()
        .map_err(|e| Error::io("dup cgroup fd", cg.path(), e))
}

// ---- Phase 7: spawn; the child is killed if a later phase fails. ----

fn spawn_child(
    mut sp: Spawner,
    stopped: bool,
    program: &str,
    undo: &mut Undo,
) -> Result<Slot<Child>> {
    let spawned = if stopped {
        sp.spawn_stopped()
    } else {
        sp.spawn()
    };
    drop(sp);
    let child = spawned.map_err(|e| spawn_error(e, program))?;
    Ok(undo.adopt("kill the container's process", child, |mut c| {
        let _ = c.kill(libc::SIGKILL);
        c.wait()?;
        Ok(())
    }))
}

/// A spawn failure as the caller's error: a program that does not exist is
/// [`Error::CommandNotFound`].
fn spawn_error(e: berth_namespaces::Error, program: &str) -> Error {
    if e.errno() == Some(libc::ENOENT) && matches!(&e, berth_namespaces::Error::Exec { .. }) {
        Error::CommandNotFound {
            program: program.to_string(),
            source: e,
        }
    } else {
        e.into()
    }
}

// ---- Phase 8: the process in the record. ----

fn record_process(
    st: &mut State,
    state_dir: &Path,
    child: &Slot<Child>,
    pasta: &Slot<Pasta>,
) -> Result<()> {
    st.pid = child.with(|c| c.pid());
    st.pid_start = st.pid.and_then(state::proc_start_time);
    st.pasta_pid = pasta.with(|p| p.pid());
    st.pasta_start = st.pasta_pid.and_then(state::proc_start_time);
    st.write(state_dir)
}
