//! IPAM: per-network address allocation persisted as JSON in a state
//! directory, every read-modify-write under an exclusive `flock(2)` on a lock
//! file beside it, so several processes can allocate at once. The state file
//! is replaced atomically (write to a temp file, `rename(2)`): a crash leaves
//! either the old or the new state, and the lock dies with its holder.
//! The directory is private (0700, files 0600) and nothing in it is opened
//! through a symlink (see [`crate::statedir`]).

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cidr::Ipv4Net;
use crate::error::{Error, Result};
use crate::statedir::{open_private_file, private_dir};
use crate::validate_id;
use berth_sys::fs::OFlag;

/// One container's entry in a network.
///
/// ```no_run
/// let ipam = berth_netsetup::Ipam::new("/run/berth/net", "demo", "10.99.0.0/24".parse()?, "10.99.0.1".parse()?)?;
/// ipam.allocate("web-1", Some("veth1234"))?;
/// if let Some(a) = ipam.lookup("web-1")? {
///     println!("{} on {:?}", a.addr, a.host_ifname);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// The container's address.
    pub addr: Ipv4Addr,
    /// The host end of its veth, so leftovers can be found by container id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ifname: Option<String>,
    /// Names other members resolve to `addr` (container name, aliases).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// The container's hosts file, kept listing every member's names (see
    /// [`crate::Attach::hosts_file`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts_file: Option<PathBuf>,
}

#[derive(Debug, Serialize, Deserialize)]
struct State {
    subnet: String,
    gateway: Ipv4Addr,
    /// Last address handed out: the next search starts after it, so a freed
    /// address is not reused at once.
    #[serde(default)]
    last: Option<Ipv4Addr>,
    allocations: BTreeMap<String, Allocation>,
}

/// A member's names and hosts file (see hosts.rs).
#[derive(Debug, Default, Clone)]
pub(crate) struct Names {
    pub names: Vec<String>,
    pub hosts_file: Option<PathBuf>,
}

/// Address allocator of one network (see the module docs for the locking).
///
/// ```no_run
/// use berth_netsetup::Ipam;
/// let ipam = Ipam::new("/run/berth/net", "demo", "10.99.0.0/24".parse()?, "10.99.0.1".parse()?)?;
/// let ip = ipam.allocate("web-1", None)?;
/// assert_eq!(ipam.lookup("web-1")?.map(|a| a.addr), Some(ip));
/// ipam.release("web-1")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Ipam {
    network: String,
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    state: PathBuf,
    lock: PathBuf,
}

struct Locked {
    _file: LockGuard,
}

impl Ipam {
    /// The allocator of network `network` (state in `<state_dir>/<network>.json`).
    /// Refuses subnets with fewer than one usable address besides the
    /// gateway, and a gateway outside the subnet or on a reserved address.
    pub fn new(
        state_dir: impl AsRef<Path>,
        network: &str,
        subnet: Ipv4Net,
        gateway: Ipv4Addr,
    ) -> Result<Self> {
        validate_id("network name", network)?;
        if subnet.prefix_len() > 30 {
            return Err(Error::InvalidCidr {
                cidr: subnet.to_string(),
                reason:
                    "a network needs at least a /30 (network, gateway, one container, broadcast)",
            });
        }
        if !subnet.contains(gateway) || gateway == subnet.network() || gateway == subnet.broadcast()
        {
            return Err(Error::AddressUnavailable {
                network: network.to_string(),
                addr: IpAddr::V4(gateway),
                reason: "gateway must be a host address inside the subnet",
            });
        }
        let dir = state_dir.as_ref();
        Ok(Self {
            network: network.to_string(),
            subnet,
            gateway,
            state: dir.join(format!("{network}.json")),
            lock: dir.join(format!("{network}.lock")),
        })
    }

    /// The allocator of an existing network `network` whose state is in
    /// `<state_dir>/<network>.json`, with the subnet (this host's range, for
    /// an overlay) and gateway recorded there: for readers such as a name
    /// responder that do not know them. `ENOENT` when the network has no
    /// state (yet).
    ///
    /// ```no_run
    /// let ipam = berth_netsetup::Ipam::open("/run/berth/net", "demo")?;
    /// for (id, a) in ipam.allocations()? {
    ///     println!("{id} {} {:?}", a.addr, a.names);
    /// }
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    pub fn open(state_dir: impl AsRef<Path>, network: &str) -> Result<Self> {
        validate_id("network name", network)?;
        ipam_from_state_file(&state_dir.as_ref().join(format!("{network}.json")))
    }

    /// The network's subnet.
    pub fn subnet(&self) -> Ipv4Net {
        self.subnet
    }

    /// The state file.
    pub fn state_path(&self) -> &Path {
        &self.state
    }

    fn lock(&self) -> Result<Locked> {
        Ok(Locked {
            _file: lock_file(&self.lock)?,
        })
    }

    fn load(&self) -> Result<State> {
        match read_state_file(&self.state)? {
            Some(b) => {
                let s: State = serde_json::from_slice(&b).map_err(|e| Error::CorruptState {
                    path: self.state.clone(),
                    reason: e.to_string(),
                })?;
                if s.subnet != self.subnet.to_string() || s.gateway != self.gateway {
                    return Err(Error::InvalidArgument {
                        what: "network configuration",
                        reason: format!(
                            "network {:?} already exists with subnet {} gateway {}, not {} gateway {}",
                            self.network, s.subnet, s.gateway, self.subnet, self.gateway
                        ),
                    });
                }
                Ok(s)
            }
            None => Ok(State {
                subnet: self.subnet.to_string(),
                gateway: self.gateway,
                last: None,
                allocations: BTreeMap::new(),
            }),
        }
    }

    /// Replace the state file atomically (the caller holds the lock): write
    /// a fresh temp file, then swap it in with `renameat2(RENAME_EXCHANGE)`
    /// (Linux ≥ 3.15 on ext4, ≥ 3.18 on tmpfs; rename(2)) and unlink the old
    /// one. Not a plain `rename` over the existing file: ext4 (when `/run`
    /// is not a tmpfs) then flushes the new file's data first
    /// (`auto_da_alloc`, ext4(5)), milliseconds per container start on a
    /// busy disk; the swap costs microseconds. A plain `rename` remains the
    /// fallback (first write, or a filesystem without RENAME_EXCHANGE).
    fn store(&self, s: &State) -> Result<()> {
        let data = serde_json::to_vec(s).map_err(|e| Error::CorruptState {
            path: self.state.clone(),
            reason: e.to_string(),
        })?;
        replace_file(&self.state, &data)
    }

    fn reserved(&self, a: Ipv4Addr) -> Option<&'static str> {
        if !self.subnet.contains(a) {
            Some("outside the subnet")
        } else if a == self.subnet.network() {
            Some("the network address")
        } else if a == self.subnet.broadcast() {
            Some("the broadcast address")
        } else if a == self.gateway {
            Some("the gateway address")
        } else {
            None
        }
    }

    /// Create the state file if missing (checks an existing one matches this configuration).
    pub fn init(&self) -> Result<()> {
        let _l = self.lock()?;
        let s = self.load()?;
        if !self.state.exists() {
            self.store(&s)?;
        }
        Ok(())
    }

    /// Hand `container` the next free address (never the network, gateway or
    /// broadcast address). A container that already has one is
    /// [`Error::AlreadyAttached`]; a full pool is [`Error::PoolExhausted`].
    pub fn allocate(&self, container: &str, host_ifname: Option<&str>) -> Result<Ipv4Addr> {
        self.allocate_inner(container, host_ifname, None, &Names::default())
    }

    /// Give `container` exactly `addr` if it is free and not reserved.
    pub fn allocate_addr(
        &self,
        container: &str,
        addr: Ipv4Addr,
        host_ifname: Option<&str>,
    ) -> Result<Ipv4Addr> {
        self.allocate_inner(container, host_ifname, Some(addr), &Names::default())
    }

    /// Allocate (`want`: that address, else the next free one) with the
    /// member's names and hosts file; every member's hosts file is brought
    /// up to date under the lock (hosts.rs). When `container`'s own hosts
    /// file cannot be written, nothing is allocated.
    pub(crate) fn allocate_inner(
        &self,
        container: &str,
        host_ifname: Option<&str>,
        want: Option<Ipv4Addr>,
        names: &Names,
    ) -> Result<Ipv4Addr> {
        validate_id("container id", container)?;
        let _l = self.lock()?;
        let mut s = self.load()?;
        if s.allocations.contains_key(container) {
            return Err(Error::AlreadyAttached {
                network: self.network.clone(),
                container: container.to_string(),
            });
        }
        let used: std::collections::HashSet<Ipv4Addr> =
            s.allocations.values().map(|a| a.addr).collect();
        let addr = match want {
            Some(a) => {
                if let Some(reason) = self.reserved(a) {
                    return Err(Error::AddressUnavailable {
                        network: self.network.clone(),
                        addr: IpAddr::V4(a),
                        reason,
                    });
                }
                if used.contains(&a) {
                    return Err(Error::AddressUnavailable {
                        network: self.network.clone(),
                        addr: IpAddr::V4(a),
                        reason: "already allocated",
                    });
                }
                a
            }
            None => {
                let size = self.subnet.size();
                let base = u32::from(self.subnet.network());
                let start = s
                    .last
                    .filter(|l| self.subnet.contains(*l))
                    .map(|l| u64::from(u32::from(l) - base))
                    .unwrap_or(0);
                let mut found = None;
                for step in 1..=size {
                    let i = (start + step) % size;
                    let Some(a) = self.subnet.nth(i) else {
                        continue;
                    };
                    if self.reserved(a).is_none() && !used.contains(&a) {
                        found = Some(a);
                        break;
                    }
                }
                found.ok_or_else(|| Error::PoolExhausted {
                    network: self.network.clone(),
                    subnet: self.subnet.to_string(),
                })?
            }
        };
        s.last = Some(addr);
        s.allocations.insert(
            container.to_string(),
            Allocation {
                addr,
                host_ifname: host_ifname.map(str::to_string),
                names: names.names.clone(),
                hosts_file: names.hosts_file.clone(),
            },
        );
        if !names.names.is_empty() || names.hosts_file.is_some() {
            if let Err(e) = crate::hosts::sync(&self.network, &s.allocations, Some(container)) {
                s.allocations.remove(container);
                let _ = crate::hosts::sync(&self.network, &s.allocations, None);
                return Err(e);
            }
        }
        self.store(&s)?;
        tracing::debug!(network = %self.network, container, %addr, "ipam allocated");
        Ok(addr)
    }

    /// Free `container`'s address; returns what it had (`None`: nothing).
    pub fn release(&self, container: &str) -> Result<Option<Allocation>> {
        // No state: nothing to release, and no lock file to leave behind
        // (e.g. an Attachment dropped after its network was removed).
        if !self.state.exists() {
            return Ok(None);
        }
        let _l = self.lock()?;
        let mut s = self.load()?;
        let old = s.allocations.remove(container);
        if let Some(a) = &old {
            self.store(&s)?;
            if let Some(p) = &a.hosts_file {
                // Its own file goes with it (see Attach::hosts_file).
                match fs::remove_file(p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => tracing::warn!(path = %p.display(), error = %e, "remove hosts file"),
                }
            }
            if !a.names.is_empty() {
                // Its name disappears from every other member's hosts file.
                crate::hosts::sync(&self.network, &s.allocations, None)?;
            }
            tracing::debug!(network = %self.network, container, "ipam released");
        }
        Ok(old)
    }

    /// `container`'s allocation, if any.
    pub fn lookup(&self, container: &str) -> Result<Option<Allocation>> {
        if !self.state.exists() {
            return Ok(None);
        }
        let _l = self.lock()?;
        Ok(self.load()?.allocations.get(container).cloned())
    }

    /// Every allocation, by container id.
    pub fn allocations(&self) -> Result<BTreeMap<String, Allocation>> {
        if !self.state.exists() {
            return Ok(BTreeMap::new());
        }
        let _l = self.lock()?;
        Ok(self.load()?.allocations)
    }

    /// Remove the state and lock files (the network is gone).
    pub fn destroy(&self) -> Result<()> {
        let _l = self.lock()?;
        for p in [&self.state, &self.lock] {
            match fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", p, e)),
            }
        }
        Ok(())
    }
}

/// The contents of state file `path` (`None`: there is none), read without
/// following a symlink (see [`open_private_file`]).
pub(crate) fn read_state_file(path: &Path) -> Result<Option<Vec<u8>>> {
    let Some(mut f) = open_private_file(path, OFlag::O_RDONLY)? else {
        return Ok(None);
    };
    let mut b = Vec::new();
    f.read_to_end(&mut b)
        .map_err(|e| Error::io("read", path, e))?;
    Ok(Some(b))
}

/// Replace state file `path` with `data` atomically (the caller holds the
/// file's lock): write a fresh temp file, then swap it in with
/// `renameat2(RENAME_EXCHANGE)` (Linux ≥ 3.15 on ext4, ≥ 3.18 on tmpfs;
/// rename(2)) and unlink the old one. Not a plain `rename` over the existing
/// file: ext4 (when `/run` is not a tmpfs) then flushes the new file's data
/// first (`auto_da_alloc`, ext4(5)), milliseconds per container start on a
/// busy disk; the swap costs microseconds. A plain `rename` remains the
/// fallback (first write, or a filesystem without RENAME_EXCHANGE).
pub(crate) fn replace_file(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = {
        let mut t = path.as_os_str().to_owned();
        t.push(".tmp");
        PathBuf::from(t)
    };
    // A fresh file (not truncated: truncating one triggers the same
    // flush on close), 0600, O_CREAT|O_EXCL|O_NOFOLLOW: whatever sits
    // at the temp name (a leftover, a planted symlink) is unlinked,
    // never written through.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("remove", &tmp, e)),
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(|e| Error::io("create", &tmp, e))?;
    f.write_all(data).map_err(|e| Error::io("write", &tmp, e))?;
    drop(f);
    if exchange(&tmp, path).is_ok() {
        // The old state now sits at `tmp`; a leftover is removed on the next store.
        let _ = fs::remove_file(&tmp);
        return Ok(());
    }
    fs::rename(&tmp, path).map_err(|e| Error::io("rename into", path, e))
}

/// `renameat2(a, b, RENAME_EXCHANGE)`: swap two existing paths atomically.
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    berth_sys::fs::rename_exchange(a, b)
}

/// A held `flock(2)`; dropping it unlocks with `LOCK_UN` *before* closing.
/// Closing alone is not enough: a flock belongs to the open file
/// description, and a child cloned by another thread (between `clone` and
/// `execve`, e.g. a container waiting for its network to be attached) holds
/// a duplicate of every fd, so the lock would stay held by that child and
/// the next locker (the thread attaching that very child's network)
/// would wait forever.
#[derive(Debug)]
pub(crate) struct LockGuard(fs::File);

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = berth_sys::fs::flock(self.0.as_fd(), berth_sys::fs::FlockOp::Unlock);
    }
}

/// Open (creating it, 0600, and its directory, 0700) and `flock(LOCK_EX)` a
/// lock file; the lock is held until the returned guard is dropped (or the
/// process dies). The directory is checked first (see [`crate::statedir`]:
/// ours, private, not a symlink); the file is opened
/// `O_CREAT|O_NOFOLLOW`, so a symlink planted at its name is refused, never
/// followed. Not `O_EXCL` + rename as for the state file: a lock file must
/// keep its inode, or two processes would lock two different files.
pub(crate) fn lock_file(path: &Path) -> Result<LockGuard> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        private_dir(dir)?;
    }
    let f = open_private_file(path, OFlag::O_WRONLY | OFlag::O_CREAT)?.ok_or_else(|| {
        Error::io(
            "open lock",
            path,
            io::Error::from_raw_os_error(libc::ENOENT),
        )
    })?;
    loop {
        match berth_sys::fs::flock(f.as_fd(), berth_sys::fs::FlockOp::Exclusive) {
            Ok(()) => return Ok(LockGuard(f)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("flock", path, e)),
        }
    }
}

/// Open the [`Ipam`] of an existing state file (for garbage collection).
pub(crate) fn ipam_from_state_file(path: &Path) -> Result<Ipam> {
    let b = read_state_file(path)?
        .ok_or_else(|| Error::io("read", path, io::Error::from_raw_os_error(libc::ENOENT)))?;
    let s: State = serde_json::from_slice(&b).map_err(|e| Error::CorruptState {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let subnet: Ipv4Net = s.subnet.parse()?;
    let network = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| Error::CorruptState {
            path: path.to_path_buf(),
            reason: "state file name is not a network name".into(),
        })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    Ipam::new(dir, network, subnet, s.gateway)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipam(dir: &Path, cidr: &str) -> Ipam {
        let n: Ipv4Net = cidr.parse().unwrap();
        Ipam::new(dir, "t", n, n.nth(1).unwrap()).unwrap()
    }

    #[test]
    fn allocates_skipping_reserved_and_exhausts() {
        let d = tempfile::tempdir().unwrap();
        let ip = ipam(d.path(), "10.1.0.0/29"); // .0 net, .1 gw, .7 bcast → .2-.6
        let mut got = Vec::new();
        for i in 0..5 {
            got.push(ip.allocate(&format!("c{i}"), None).unwrap());
        }
        let want: Vec<Ipv4Addr> = (2..=6).map(|h| Ipv4Addr::new(10, 1, 0, h)).collect();
        assert_eq!(got, want);
        let e = ip.allocate("c9", None).unwrap_err();
        assert!(matches!(e, Error::PoolExhausted { .. }), "{e}");
        assert!(!ip.allocations().unwrap().contains_key("c9"));
        // release and reuse
        assert_eq!(
            ip.release("c2").unwrap().unwrap().addr,
            Ipv4Addr::new(10, 1, 0, 4)
        );
        assert_eq!(ip.allocate("c9", None).unwrap(), Ipv4Addr::new(10, 1, 0, 4));
        assert!(matches!(
            ip.allocate("c9", None),
            Err(Error::AlreadyAttached { .. })
        ));
        assert!(ip.release("nope").unwrap().is_none());
    }

    #[test]
    fn refuses_reserved_addresses() {
        let d = tempfile::tempdir().unwrap();
        let ip = ipam(d.path(), "10.2.0.0/24");
        for (a, why) in [
            (Ipv4Addr::new(10, 2, 0, 0), "network"),
            (Ipv4Addr::new(10, 2, 0, 1), "gateway"),
            (Ipv4Addr::new(10, 2, 0, 255), "broadcast"),
            (Ipv4Addr::new(10, 3, 0, 5), "outside"),
        ] {
            let e = ip.allocate_addr("x", a, None).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
        assert_eq!(
            ip.allocate_addr("x", Ipv4Addr::new(10, 2, 0, 9), Some("vethx"))
                .unwrap(),
            Ipv4Addr::new(10, 2, 0, 9)
        );
        assert!(ip
            .allocate_addr("y", Ipv4Addr::new(10, 2, 0, 9), None)
            .is_err());
        assert_eq!(
            ip.lookup("x").unwrap().unwrap().host_ifname.as_deref(),
            Some("vethx")
        );
    }

    #[test]
    fn state_survives_reopen_and_checks_config() {
        let d = tempfile::tempdir().unwrap();
        let a = ipam(d.path(), "10.4.0.0/24").allocate("a", None).unwrap();
        let again = ipam(d.path(), "10.4.0.0/24");
        assert_eq!(again.lookup("a").unwrap().unwrap().addr, a);
        let other = ipam(d.path(), "10.5.0.0/24");
        assert!(other.allocate("b", None).is_err());
        again.destroy().unwrap();
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
        // late releases/lookups on a removed network leave no file behind
        assert!(again.release("a").unwrap().is_none());
        assert!(again.lookup("a").unwrap().is_none());
        assert!(again.allocations().unwrap().is_empty());
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[test]
    fn corrupt_state_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let ip = ipam(d.path(), "10.6.0.0/24");
        fs::write(ip.state_path(), b"{not json").unwrap();
        assert!(matches!(
            ip.allocate("a", None),
            Err(Error::CorruptState { .. })
        ));
    }

    #[test]
    fn tiny_subnets_refused() {
        let n: Ipv4Net = "10.7.0.0/31".parse().unwrap();
        assert!(Ipam::new("/tmp", "t", n, Ipv4Addr::new(10, 7, 0, 1)).is_err());
    }
}
