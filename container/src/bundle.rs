//! OCI runtime bundles: `config.json` (runtime-spec) mapped onto the builder.

use std::path::{Path, PathBuf};

use berth_namespaces::{IdMap, Namespaces};
use berth_security::{Capabilities, Rlimit, SeccompProfile};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::builder::ContainerBuilder;
use crate::config::{Mount, Network, Propagation, Rootfs, Seccomp};
use crate::error::{Error, Result};

/// An OCI runtime bundle: a directory with `config.json` and (usually) the
/// root filesystem it names.
///
/// [`builder`](Self::builder) maps the spec onto a [`ContainerBuilder`]:
/// `process` (args, env, cwd, user and additional gids, capabilities,
/// rlimits, noNewPrivileges, apparmorProfile, oomScoreAdj, terminal),
/// `root` (path, readonly), `mounts` (bind/rbind with ro/rw/propagation
/// options, tmpfs with size/mode; the standard proc, sysfs, devpts, mqueue,
/// shm and cgroup mounts are the container's standard filesystem),
/// `hostname`, and `linux`: namespaces (created, joined by path, or shared
/// when absent), uid/gid mappings, resources (cgroup v2 via
/// `Resources::from_oci`, devices via the eBPF device filter),
/// cgroupsPath, sysctl, seccomp, maskedPaths, readonlyPaths,
/// rootfsPropagation (private only). Anything else that is set (an SELinux
/// label or mountLabel, io priority, scheduler, CPU affinity, devices to
/// create, intelRdt, personality, time offsets, memory policy, net devices,
/// a domainname, unknown mount types or options) is an [`Error::Bundle`]
/// naming it. Hooks are not run by the builder: they are returned by
/// [`hooks`](Self::hooks) for the runtime to run at the points the spec
/// defines.
#[derive(Debug, Clone)]
pub struct Bundle {
    dir: PathBuf,
    spec: Spec,
}

fn unsupported(path: &Path, what: &str) -> Error {
    Error::Bundle {
        path: path.to_path_buf(),
        reason: format!("{what} is not supported by berth"),
    }
}

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
        let cfg = self.dir.join("config.json");
        let p = &cfg;
        let spec = &self.spec;
        let mut b = ContainerBuilder::new(id)
            .masked_paths(Vec::<String>::new())
            .readonly_paths(Vec::<String>::new())
            .seccomp(Seccomp::Unconfined)
            .no_new_privs(false)
            .rootless(false);

        let root = spec.root().as_ref().ok_or_else(|| Error::Bundle {
            path: cfg.clone(),
            reason: "no root".into(),
        })?;
        let rp = if root.path().is_absolute() {
            root.path().clone()
        } else {
            self.dir.join(root.path())
        };
        b = b
            .rootfs(Rootfs::dir(rp))
            .read_only_root(root.readonly().unwrap_or(false));
        if let Some(h) = spec.hostname() {
            b = b.hostname(h.clone());
        }
        if spec.domainname().as_ref().is_some_and(|d| !d.is_empty()) {
            return Err(unsupported(p, "domainname"));
        }

        // process
        let proc_ = spec.process().as_ref().ok_or_else(|| Error::Bundle {
            path: cfg.clone(),
            reason: "no process".into(),
        })?;
        let args = proc_.args().clone().unwrap_or_default();
        if args.is_empty() {
            return Err(Error::Bundle {
                path: cfg.clone(),
                reason: "process.args is empty".into(),
            });
        }
        b = b.command(args);
        for kv in proc_.env().clone().unwrap_or_default() {
            match kv.split_once('=') {
                Some((k, v)) => b = b.env(k, v),
                None => {
                    return Err(Error::Bundle {
                        path: cfg.clone(),
                        reason: format!("process.env entry {kv:?} has no '='"),
                    })
                }
            }
        }
        b = b.current_dir(proc_.cwd().clone());
        let user = proc_.user();
        b = b.user(user.uid(), user.gid());
        if let Some(g) = user.additional_gids() {
            b = b.groups(g.iter().copied());
        }
        // berth always starts the workload with umask 0022 (the last step
        // of the plan), the value engines ask for by default.
        if user.umask().is_some_and(|m| m != 0o022) {
            return Err(unsupported(p, "process.user.umask other than 0022"));
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
        if proc_.selinux_label().is_some() {
            return Err(unsupported(p, "process.selinuxLabel"));
        }
        if proc_.io_priority().is_some() {
            return Err(unsupported(p, "process.ioPriority"));
        }
        if proc_.scheduler().is_some() {
            return Err(unsupported(p, "process.scheduler"));
        }
        if proc_.exec_cpu_affinity().is_some() {
            return Err(unsupported(p, "process.execCPUAffinity"));
        }

        // mounts
        for m in spec.mounts().clone().unwrap_or_default() {
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
                continue; // part of the standard filesystem
            }
            let is_bind = typ == "bind" || opts.iter().any(|o| o == "bind" || o == "rbind");
            if is_bind {
                let src = m.source().clone().ok_or_else(|| Error::Bundle {
                    path: cfg.clone(),
                    reason: format!("bind mount at {dst:?} has no source"),
                })?;
                let src = if src.is_absolute() {
                    src
                } else {
                    self.dir.join(src)
                };
                let mut mm = Mount::bind(src, &dst).recursive(opts.iter().any(|o| o == "rbind"));
                for o in &opts {
                    mm = match o.as_str() {
                        "bind" | "rbind" | "rw" | "nosuid" | "nodev" | "noexec" | "private"
                        | "rprivate" => mm,
                        "ro" => mm.read_only(),
                        "slave" | "rslave" => mm.propagation(Propagation::Slave),
                        "shared" | "rshared" => mm.propagation(Propagation::Shared),
                        other => {
                            return Err(unsupported(
                                p,
                                &format!("bind mount option {other:?} (at {dst:?})"),
                            ))
                        }
                    };
                }
                b = b.mount(mm);
            } else if typ == "tmpfs" {
                let mut mm = Mount::tmpfs(&dst);
                for o in &opts {
                    if let Some(s) = o.strip_prefix("size=") {
                        let bytes = parse_tmpfs_size(s).ok_or_else(|| Error::Bundle {
                            path: cfg.clone(),
                            reason: format!("tmpfs size {s:?} at {dst:?}"),
                        })?;
                        mm = mm.size(bytes);
                    } else if let Some(m) = o.strip_prefix("mode=") {
                        let mode = u32::from_str_radix(m, 8).map_err(|_| Error::Bundle {
                            path: cfg.clone(),
                            reason: format!("tmpfs mode {m:?} at {dst:?}"),
                        })?;
                        mm = mm.mode(mode);
                    } else if !matches!(
                        o.as_str(),
                        "nosuid" | "nodev" | "noexec" | "rw" | "strictatime" | "relatime"
                    ) {
                        return Err(unsupported(p, &format!("tmpfs option {o:?} (at {dst:?})")));
                    }
                }
                b = b.mount(mm);
            } else {
                return Err(unsupported(p, &format!("mount type {typ:?} at {dst:?}")));
            }
        }

        // linux
        let Some(linux) = spec.linux() else {
            return Err(Error::Bundle {
                path: cfg.clone(),
                reason: "no linux section".into(),
            });
        };
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
            return Err(unsupported(p, "a new time namespace"));
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
        if let Some(m) = linux.uid_mappings() {
            for x in m {
                b = b.uid_map(IdMap::new(x.container_id(), x.host_id(), x.size()));
            }
        }
        if let Some(m) = linux.gid_mappings() {
            for x in m {
                b = b.gid_map(IdMap::new(x.container_id(), x.host_id(), x.size()));
            }
        }
        if !created.contains(Namespaces::USER) && (!b.uid_maps.is_empty() || !b.gid_maps.is_empty())
        {
            return Err(Error::Bundle {
                path: cfg.clone(),
                reason: "uid/gid mappings without a new user namespace".into(),
            });
        }
        if let Some(r) = linux.resources() {
            b = b.resources(berth_cgroups::Resources::from_oci(r)?);
            if let Some(devs) = r.devices() {
                b = b.device_filter(Some(berth_ebpf_probes::DeviceFilter::from_oci(devs)?));
            }
        }
        if let Some(cp) = linux.cgroups_path() {
            let s = cp.to_string_lossy();
            if s.contains(':') {
                return Err(unsupported(
                    p,
                    "a systemd-style cgroupsPath (slice:prefix:name)",
                ));
            }
            let rel = cp.strip_prefix("/").unwrap_or(cp);
            let name = rel.file_name().ok_or_else(|| Error::Bundle {
                path: cfg.clone(),
                reason: format!("cgroupsPath {cp:?} has no name"),
            })?;
            let parent = rel.parent().unwrap_or(Path::new(""));
            b.cgroup_name = Some(PathBuf::from(name));
            b = b.cgroup_parent(parent.to_path_buf());
        }
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
        if let Some(rp) = linux.rootfs_propagation() {
            if !matches!(rp.as_str(), "private" | "rprivate" | "") {
                return Err(unsupported(p, &format!("rootfsPropagation {rp:?}")));
            }
        }
        if linux.mount_label().as_ref().is_some_and(|l| !l.is_empty()) {
            return Err(unsupported(p, "linux.mountLabel (SELinux)"));
        }
        if linux.devices().as_ref().is_some_and(|d| !d.is_empty()) {
            return Err(unsupported(p, "linux.devices (extra device nodes)"));
        }
        if linux.intel_rdt().is_some() {
            return Err(unsupported(p, "linux.intelRdt"));
        }
        if linux.personality().is_some() {
            return Err(unsupported(p, "linux.personality"));
        }
        if linux.time_offsets().is_some() {
            return Err(unsupported(p, "linux.timeOffsets"));
        }
        if linux.memory_policy().is_some() {
            return Err(unsupported(p, "linux.memoryPolicy"));
        }
        if linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
            return Err(unsupported(p, "linux.netDevices"));
        }
        Ok(b)
    }
}

fn parse_tmpfs_size(s: &str) -> Option<u64> {
    let (n, m) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1u64 << 10),
        'm' | 'M' => (&s[..s.len() - 1], 1 << 20),
        'g' | 'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    n.parse::<u64>().ok()?.checked_mul(m)
}
