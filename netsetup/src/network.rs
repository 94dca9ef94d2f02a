//! Bridge networks: a bridge with a gateway address, IPAM, masquerade, and
//! containers attached to it by veth pairs.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::cidr::Ipv4Net;
use crate::error::{Error, Result};
use crate::ipam::{ipam_from_state_file, Ipam};
use crate::nat::{Firewall, PortMapping};
use crate::netlink::{Netlink, VethSpec};
use crate::netns::{read_ip_forward, refuse_router_advertisements, set_route_localnet, NetNs};
use crate::nftnl::NfSocket;
use crate::{validate_id, validate_ifname};

/// Default state directory (IPAM files and the nft lock). Outside berth's
/// container state root `/run/berth`, where a container named `net` would
/// collide with it.
pub const DEFAULT_STATE_DIR: &str = "/run/berth-net";

/// The default state directory of earlier releases. A network whose IPAM
/// state is still there (and not yet in [`DEFAULT_STATE_DIR`]) keeps using
/// it, so containers attached before an upgrade keep their addresses.
pub const LEGACY_STATE_DIR: &str = "/run/berth/net";

/// The state directory of network `name` when none was given.
fn default_state_dir(name: &str) -> PathBuf {
    let file = format!("{name}.json");
    let new = Path::new(DEFAULT_STATE_DIR);
    let old = Path::new(LEGACY_STATE_DIR);
    if !new.join(&file).exists() && old.join(&file).is_file() {
        tracing::info!(
            network = name,
            dir = LEGACY_STATE_DIR,
            "using the legacy state directory"
        );
        return old.to_path_buf();
    }
    new.to_path_buf()
}

/// The host namespace a network builder works in: the one given to its
/// `host_netns`, or the caller's.
pub(crate) fn host_netns_or_current(host: Option<&NetNs>) -> Result<NetNs> {
    match host {
        Some(ns) => ns.try_clone(),
        None => NetNs::current(),
    }
}

/// Builder of a bridge network; [`BridgeNetwork::ensure`] makes it exist.
///
/// ```no_run
/// use berth_netsetup::BridgeNetwork;
/// let net = BridgeNetwork::new("demo").bridge("berth0").subnet("10.88.0.0/16").ensure()?;
/// # Ok::<(), berth_netsetup::Error>(())
/// ```
#[derive(Debug)]
#[doc(alias("bridge", "RTM_NEWLINK", "docker0"))]
pub struct BridgeNetwork {
    name: String,
    bridge: Option<String>,
    subnet: String,
    ip_range: Option<String>,
    gateway: Option<Ipv4Addr>,
    state_dir: Option<PathBuf>,
    host: Option<NetNs>,
    masquerade: bool,
    ip_forward: bool,
    mtu: Option<u32>,
    persist: bool,
}

/// The configuration of a user-defined network, recorded in its state
/// directory as `<name>.network` by [`BridgeNetwork::persist`]: what
/// [`list_networks`] shows and [`BridgeNetwork::from_record`] rebuilds.
///
/// ```no_run
/// for net in berth_netsetup::list_networks(berth_netsetup::DEFAULT_STATE_DIR)? {
///     println!("{} {} on {}", net.name, net.subnet, net.bridge);
/// }
/// # Ok::<(), berth_netsetup::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetworkRecord {
    /// Network name.
    pub name: String,
    /// Driver (`bridge`, `macvlan` or `vxlan`).
    pub driver: String,
    /// Bridge interface (`macvlan`: the parent interface).
    pub bridge: String,
    /// Subnet (CIDR).
    pub subnet: String,
    /// Gateway (bridge) address.
    pub gateway: Ipv4Addr,
    /// Masquerade traffic leaving the subnet.
    pub masquerade: bool,
    /// `ip_forward` turned on for it.
    pub ip_forward: bool,
    /// MTU, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// `vxlan`: the overlay's configuration on this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vxlan: Option<VxlanRecord>,
}

/// The overlay part of a `vxlan` network's [`NetworkRecord`]: what
/// [`crate::VxlanNetwork::from_record`] rebuilds it from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VxlanRecord {
    /// VXLAN network identifier.
    pub vni: u32,
    /// This host's underlay address, if given (else found among the members).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<Ipv4Addr>,
    /// Members given one by one, as `VTEP RANGE` lines.
    #[serde(default)]
    pub members: Vec<String>,
    /// The members file the operator distributes, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members_file: Option<PathBuf>,
    /// UDP port.
    pub port: u16,
    /// The VXLAN device's name.
    pub ifname: String,
}

fn record_path(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join(format!("{name}.network"))
}

/// Write `r` as the record of its network in `state_dir` (atomically),
/// unless it is there already: every `ensure` of a recorded network
/// (each container start) would rewrite it otherwise. Written under the
/// network's IPAM lock, so concurrent writers never share the temp file.
pub(crate) fn write_record(state_dir: &Path, r: &NetworkRecord) -> Result<()> {
    if network_record(state_dir, &r.name)?.as_ref() == Some(r) {
        return Ok(());
    }
    let _lock = crate::ipam::lock_file(&state_dir.join(format!("{}.lock", r.name)))?;
    let p = record_path(state_dir, &r.name);
    let data = serde_json::to_vec(r).map_err(|e| Error::CorruptState {
        path: p.clone(),
        reason: e.to_string(),
    })?;
    crate::ipam::replace_file(&p, &data)
}

/// The record of user-defined network `name` in `state_dir` (`None`: there
/// is no such network).
pub fn network_record(state_dir: impl AsRef<Path>, name: &str) -> Result<Option<NetworkRecord>> {
    validate_id("network name", name)?;
    let p = record_path(state_dir.as_ref(), name);
    let Some(b) = crate::ipam::read_state_file(&p)? else {
        return Ok(None);
    };
    serde_json::from_slice(&b)
        .map(Some)
        .map_err(|e| Error::CorruptState {
            path: p,
            reason: e.to_string(),
        })
}

/// Every user-defined network recorded in `state_dir`, by name.
pub fn list_networks(state_dir: impl AsRef<Path>) -> Result<Vec<NetworkRecord>> {
    let dir = state_dir.as_ref();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read dir", dir, e)),
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(n) = name.to_str().and_then(|n| n.strip_suffix(".network")) else {
            continue;
        };
        if let Some(r) = network_record(dir, n)? {
            out.push(r);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

impl BridgeNetwork {
    /// The builder of a recorded network (see [`network_record`]), its
    /// state directory `state_dir`, ready to [`ensure`](Self::ensure).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), berth_netsetup::Error> {
    /// let dir = berth_netsetup::DEFAULT_STATE_DIR;
    /// if let Some(r) = berth_netsetup::network_record(dir, "mynet")? {
    ///     let net = berth_netsetup::BridgeNetwork::from_record(&r).state_dir(dir).ensure()?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn from_record(r: &NetworkRecord) -> Self {
        let mut b = Self::new(&r.name)
            .bridge(&r.bridge)
            .subnet(&r.subnet)
            .gateway(r.gateway)
            .masquerade(r.masquerade)
            .ip_forward(r.ip_forward)
            .persist(true);
        b.mtu = r.mtu;
        b
    }

    /// Record the network's configuration in its state directory
    /// (`<name>.network`), as a user-defined network: [`list_networks`]
    /// shows it, [`BridgeNetwork::from_record`] rebuilds it in another
    /// process, [`Network::remove`] deletes the record. Default off.
    ///
    /// ```
    /// let b = berth_netsetup::BridgeNetwork::new("mynet").persist(true);
    /// ```
    pub fn persist(mut self, on: bool) -> Self {
        self.persist = on;
        self
    }

    /// A network called `name` (1–64 of `[A-Za-z0-9_.-]`), by default on
    /// bridge `name`, subnet `10.88.0.0/16`, gateway the first address,
    /// masquerade on, state in [`DEFAULT_STATE_DIR`], in the caller's netns.
    ///
    /// ```
    /// let b = berth_netsetup::BridgeNetwork::new("demo");
    /// ```
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            bridge: None,
            subnet: "10.88.0.0/16".to_string(),
            ip_range: None,
            gateway: None,
            state_dir: None,
            host: None,
            masquerade: true,
            ip_forward: true,
            mtu: None,
            persist: false,
        }
    }

    /// Name of the bridge interface (≤ 15 bytes).
    ///
    /// ```
    /// let b = berth_netsetup::BridgeNetwork::new("demo").bridge("berth0");
    /// ```
    pub fn bridge(mut self, ifname: &str) -> Self {
        self.bridge = Some(ifname.to_string());
        self
    }

    /// The IPv4 subnet in CIDR form, e.g. `"10.88.0.0/16"`.
    ///
    /// ```
    /// let b = berth_netsetup::BridgeNetwork::new("demo").subnet("10.89.0.0/24");
    /// ```
    pub fn subnet(mut self, cidr: &str) -> Self {
        self.subnet = cidr.to_string();
        self
    }

    /// Hand out container addresses only from `cidr`, a part of the subnet
    /// (`docker network create --ip-range`); interfaces and routes still
    /// use the whole subnet. An overlay spanning hosts gives each host its
    /// own range, so no two hosts allocate the same address. The default
    /// gateway is then the range's first address.
    ///
    /// ```
    /// let b = berth_netsetup::BridgeNetwork::new("ov")
    ///     .subnet("10.200.0.0/16")
    ///     .ip_range("10.200.2.0/24");
    /// ```
    pub fn ip_range(mut self, cidr: &str) -> Self {
        self.ip_range = Some(cidr.to_string());
        self
    }

    /// The bridge's (gateway) address; default: the subnet's first address.
    ///
    /// ```
    /// use std::net::Ipv4Addr;
    /// let b = berth_netsetup::BridgeNetwork::new("demo")
    ///     .subnet("10.89.0.0/24")
    ///     .gateway(Ipv4Addr::new(10, 89, 0, 254));
    /// ```
    pub fn gateway(mut self, ip: Ipv4Addr) -> Self {
        self.gateway = Some(ip);
        self
    }

    /// Where IPAM state and the nft lock live (default [`DEFAULT_STATE_DIR`],
    /// or [`LEGACY_STATE_DIR`] for a network whose state is only there).
    /// It must be a directory of its own: created 0700 (files 0600); an
    /// existing one owned by another user or a symlink is refused, a looser
    /// one tightened to 0700 when it holds network state only (refused
    /// otherwise, e.g. `/tmp`).
    ///
    /// ```
    /// let b = berth_netsetup::BridgeNetwork::new("demo").state_dir("/var/lib/myapp/net");
    /// ```
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// Build the network in namespace `ns` instead of the caller's (bridge,
    /// nftables and `ip_forward` all live there). Tests use this to keep
    /// the real host untouched.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), berth_netsetup::Error> {
    /// let host = berth_netsetup::NetNs::from_path("/run/netns/lab")?;
    /// let b = berth_netsetup::BridgeNetwork::new("demo").host_netns(&host)?;
    /// # Ok(()) }
    /// ```
    pub fn host_netns(mut self, ns: &NetNs) -> Result<Self> {
        self.host = Some(ns.try_clone()?);
        Ok(self)
    }

    /// Masquerade traffic leaving the subnet (default on).
    ///
    /// ```
    /// let b = berth_netsetup::BridgeNetwork::new("internal").masquerade(false);
    /// ```
    pub fn masquerade(mut self, on: bool) -> Self {
        self.masquerade = on;
        self
    }

    /// Set `net.ipv4.ip_forward = 1` in the host netns (default on; needed
    /// for masquerade and published ports). The first network that turns it
    /// on records the value it found in the state directory; the last such
    /// network [`Network::remove`]d (by any process) puts it back. When it
    /// was on before berth's first network, berth never turns it off. The
    /// previous value is in [`Network::ip_forward_was`].
    ///
    /// ```
    /// let b = berth_netsetup::BridgeNetwork::new("demo").ip_forward(false);
    /// ```
    pub fn ip_forward(mut self, on: bool) -> Self {
        self.ip_forward = on;
        self
    }

    /// MTU of the bridge and of the veth pairs attached later.
    ///
    /// ```
    /// let b = berth_netsetup::BridgeNetwork::new("demo").mtu(1400);
    /// ```
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// Make the network exist, idempotently: the bridge (created if missing,
    /// refused if the name is taken by a non-bridge), its gateway address, up,
    /// `accept_ra = 0` on it (containers on it can send IPv6 router
    /// advertisements; the host netns's `all`/`default` are left alone);
    /// `ip_forward`; the masquerade rule; the IPAM state. A subnet that
    /// overlaps an existing route (other than the bridge's own) is
    /// [`Error::SubnetOverlap`]. On any error, what this call created is
    /// removed again.
    pub fn ensure(&self) -> Result<Network> {
        validate_id("network name", &self.name)?;
        let bridge = self.bridge.clone().unwrap_or_else(|| self.name.clone());
        validate_ifname(&bridge)?;
        let (subnet, pool, gateway) = self.addressing()?;
        let state_dir = self
            .state_dir
            .clone()
            .unwrap_or_else(|| default_state_dir(&self.name));
        let ipam = Ipam::new(&state_dir, &self.name, pool, gateway)?;
        // Refuse (or tighten) the state directory before creating anything.
        crate::statedir::private_dir(&state_dir)?;
        let host = host_netns_or_current(self.host.as_ref())?;
        // Everything that must happen inside the host netns, in one go (one
        // helper thread when that is not the caller's netns, none when it is):
        // the rtnetlink and nftables sockets, and `ip_forward`.
        // The nftables socket a previous network of this process left open
        // (Firewall's drop parks it), or a new one.
        let parked = crate::nat::parked_socket(&host);
        let need_nf = parked.is_none();
        let (nl, nf, forwarding) = host.run_local(|| {
            (
                Netlink::open(),
                need_nf.then(NfSocket::open).transpose(),
                self.ip_forward.then(read_ip_forward),
            )
        })?;
        let mut nl = nl?;
        let forwarding = forwarding.transpose()?;
        let existing = nl.link_by_name(&bridge)?;
        if let Some(l) = &existing {
            if l.kind.as_deref() != Some("bridge") {
                return Err(Error::NotABridge { name: bridge });
            }
        }
        let own_index = existing.as_ref().map(|l| l.index);
        let already_up = existing.as_ref().is_some_and(|l| l.up);
        self.check_routes(&mut nl, &bridge, subnet, own_index)?;
        let firewall = Firewall::in_netns(&host, &state_dir)?;
        if let Some(sock) = parked.or(nf.ok().flatten()) {
            firewall.adopt_socket(sock);
        }
        let mut created = existing.is_none();
        let mut prev_forward = None;
        let setup = (|| -> Result<u32> {
            let index = match own_index {
                Some(i) => i,
                None => create_bridge(&mut nl, &bridge, self.mtu, &mut created)?,
            };
            // The bridge's own IPv6 stack receives what containers send to
            // ff02::1: it must not take a route or an address from their RAs.
            // Set on every ensure (a bridge of an older release has 1).
            host.run_local(|| refuse_router_advertisements(&[&bridge]))??;
            nl.add_address(index, IpAddr::V4(gateway), subnet.prefix_len(), true)?;
            if !already_up {
                nl.set_up(index)?;
            }
            if self.ip_forward {
                prev_forward = Some(crate::forward::acquire(
                    &state_dir, &host, &self.name, forwarding,
                )?);
            }
            // Without masquerade the firewall is left alone until a port is
            // published (see Network::attach).
            if self.masquerade {
                firewall.add_network_rules(&self.name, &bridge, subnet, true)?;
            }
            ipam.init()?;
            if self.persist {
                write_record(&state_dir, &self.record(&bridge, subnet, gateway))?;
            }
            Ok(index)
        })();
        let bridge_index = match setup {
            Ok(i) => i,
            Err(e) => {
                if created {
                    if let Ok(Some(i)) = nl.link_index(&bridge) {
                        let _ = nl.delete_link(i);
                    }
                    let _ = firewall.remove_network(&self.name);
                    if prev_forward.is_some() {
                        let _ = crate::forward::release(&state_dir, &host, &self.name);
                    }
                }
                return Err(e);
            }
        };
        tracing::info!(network = %self.name, bridge = %bridge, %subnet, %gateway, created, "bridge network ready");
        Ok(Network {
            inner: Arc::new(Inner {
                name: self.name.clone(),
                bridge,
                bridge_index,
                subnet,
                gateway,
                mtu: self.mtu,
                masquerade: self.masquerade,
                ipam,
                firewall,
                host_nl: Mutex::new(nl),
                state_dir,
                host,
                macvlan: false,
            }),
            ip_forward_was: prev_forward,
        })
    }

    /// The subnet, IPAM's pool (the whole subnet, or the part given by
    /// ip_range) and the gateway (the pool's first address unless given).
    fn addressing(&self) -> Result<(Ipv4Net, Ipv4Net, Ipv4Addr)> {
        let subnet: Ipv4Net = self.subnet.parse()?;
        let pool: Ipv4Net = match &self.ip_range {
            None => subnet,
            Some(r) => {
                let pool: Ipv4Net = r.parse()?;
                if pool.prefix_len() < subnet.prefix_len() || !subnet.contains(pool.network()) {
                    return Err(Error::InvalidCidr {
                        cidr: r.clone(),
                        reason: "the IP range must lie inside the subnet",
                    });
                }
                pool
            }
        };
        let gateway = match self.gateway {
            Some(g) => g,
            None => pool.nth(1).ok_or(Error::InvalidCidr {
                cidr: pool.to_string(),
                reason: "no room for a gateway",
            })?,
        };
        Ok((subnet, pool, gateway))
    }

    /// [`Error::SubnetOverlap`] if a route of the host (other than a default
    /// route or the bridge's own) overlaps `subnet`.
    fn check_routes(
        &self,
        nl: &mut Netlink,
        bridge: &str,
        subnet: Ipv4Net,
        own_index: Option<u32>,
    ) -> Result<()> {
        for r in nl.routes(false)? {
            let IpAddr::V4(d) = r.destination else {
                continue;
            };
            if r.prefix_len == 0 || (own_index.is_some() && r.oif == own_index) {
                continue;
            }
            let Ok(rn) = Ipv4Net::new(Ipv4Addr::from(u32::from(d)), r.prefix_len) else {
                continue;
            };
            if rn.overlaps(&subnet) {
                // The bridge may have been created (with its address, hence
                // this route) by a concurrent ensure() of the same network
                // since we looked it up: then the route is its own.
                if own_index.is_none() {
                    if let Some(l) = nl.link_by_name(bridge)? {
                        if l.kind.as_deref() == Some("bridge") && r.oif == Some(l.index) {
                            continue;
                        }
                    }
                }
                return Err(Error::SubnetOverlap {
                    network: self.name.clone(),
                    subnet: subnet.to_string(),
                    route: rn.to_string(),
                    ifindex: r.oif.unwrap_or(0),
                });
            }
        }
        Ok(())
    }

    /// The state record of this bridge network.
    fn record(&self, bridge: &str, subnet: Ipv4Net, gateway: Ipv4Addr) -> NetworkRecord {
        NetworkRecord {
            name: self.name.clone(),
            driver: "bridge".into(),
            bridge: bridge.to_string(),
            subnet: subnet.to_string(),
            gateway,
            masquerade: self.masquerade,
            ip_forward: self.ip_forward,
            mtu: self.mtu,
            vxlan: None,
        }
    }
}

/// Create the bridge `bridge`; if another process made it meanwhile, use
/// that bridge (and `created` becomes false). Returns its index.
fn create_bridge(
    nl: &mut Netlink,
    bridge: &str,
    mtu: Option<u32>,
    created: &mut bool,
) -> Result<u32> {
    match nl.create_bridge(bridge, mtu) {
        Ok(i) => Ok(i),
        // Another process ensured the same network meanwhile: use its bridge.
        Err(Error::LinkExists { .. }) => {
            *created = false;
            match nl.link_by_name(bridge)? {
                Some(l) if l.kind.as_deref() == Some("bridge") => Ok(l.index),
                _ => Err(Error::NotABridge {
                    name: bridge.to_string(),
                }),
            }
        }
        Err(e) => Err(e),
    }
}

#[derive(Debug)]
struct Inner {
    name: String,
    bridge: String,
    bridge_index: u32,
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    mtu: Option<u32>,
    masquerade: bool,
    ipam: Ipam,
    firewall: Firewall,
    host_nl: Mutex<Netlink>,
    state_dir: PathBuf,
    host: NetNs,
    /// `bridge`/`bridge_index` name the parent of the containers' macvlan
    /// interfaces, not a bridge of ours (macvlan.rs).
    macvlan: bool,
}

impl Inner {
    fn nl(&self) -> MutexGuard<'_, Netlink> {
        // A poisoned lock only means another thread panicked mid-request; the
        // socket itself is still usable (each request waits for its own reply).
        self.host_nl.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A bridge network that exists (see [`BridgeNetwork::ensure`]). Dropping it
/// leaves the network in place; [`Network::remove`] tears it down.
///
/// ```no_run
/// use berth_netsetup::{Attach, BridgeNetwork, NetNs};
/// let net = BridgeNetwork::new("demo").subnet("10.99.0.0/24").ensure()?; // bridge, IPAM, nft rules
/// let ns = NetNs::new_anonymous()?;
/// let att = net.attach(&ns, &Attach::new("web-1"))?; // veth pair, address, route
/// println!("web-1 at {}", att.address());
/// att.detach()?;
/// net.remove()?;
/// # Ok::<(), berth_netsetup::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Network {
    inner: Arc<Inner>,
    ip_forward_was: Option<bool>,
}

/// How to attach a container to a network; see [`Network::attach`].
///
/// ```no_run
/// use berth_netsetup::{Attach, BridgeNetwork, NetNs, PortMapping};
/// let net = BridgeNetwork::new("demo").ensure()?;
/// let ns = NetNs::new_anonymous()?;
/// let att = net.attach(&ns, &Attach::new("web-1").ifname("eth0").publish(PortMapping::tcp(8080, 80)))?;
/// # Ok::<(), berth_netsetup::Error>(())
/// ```
#[derive(Debug, Clone)]
#[doc(alias("veth", "RTM_NEWLINK"))]
pub struct Attach {
    container: String,
    ifname: String,
    host_ifname: Option<String>,
    mac: Option<[u8; 6]>,
    address: Option<Ipv4Addr>,
    ports: Vec<PortMapping>,
    names: Vec<String>,
    hosts_file: Option<PathBuf>,
    /// `None`: on exactly when ports are published.
    hairpin: Option<bool>,
}

impl Attach {
    /// Attach container `id` (1–64 of `[A-Za-z0-9_.-]`) as `eth0`.
    ///
    /// ```
    /// let a = berth_netsetup::Attach::new("web-1");
    /// ```
    pub fn new(container_id: &str) -> Self {
        Self {
            container: container_id.to_string(),
            ifname: "eth0".to_string(),
            host_ifname: None,
            mac: None,
            address: None,
            ports: Vec::new(),
            names: Vec::new(),
            hosts_file: None,
            hairpin: None,
        }
    }

    /// Interface name inside the container (default `eth0`).
    ///
    /// ```
    /// let a = berth_netsetup::Attach::new("web-1").ifname("net0");
    /// ```
    pub fn ifname(mut self, name: &str) -> Self {
        self.ifname = name.to_string();
        self
    }

    /// Name of the host end (default `vb` + 6 hex digits of a hash of the
    /// network and container id + 7 random hex digits: unique per attach, so
    /// reusing a container id at once cannot collide with the previous veth
    /// that the kernel may still be deleting).
    ///
    /// ```
    /// let a = berth_netsetup::Attach::new("web-1").host_ifname("veth-web1");
    /// ```
    pub fn host_ifname(mut self, name: &str) -> Self {
        self.host_ifname = Some(name.to_string());
        self
    }

    /// MAC address of the container's interface.
    ///
    /// ```
    /// let a = berth_netsetup::Attach::new("web-1").mac([0x02, 0x42, 0xac, 0x11, 0, 2]);
    /// ```
    pub fn mac(mut self, mac: [u8; 6]) -> Self {
        self.mac = Some(mac);
        self
    }

    /// A fixed address instead of the next free one.
    ///
    /// ```
    /// use std::net::Ipv4Addr;
    /// let a = berth_netsetup::Attach::new("web-1").address(Ipv4Addr::new(10, 88, 0, 10));
    /// ```
    pub fn address(mut self, ip: Ipv4Addr) -> Self {
        self.address = Some(ip);
        self
    }

    /// A name other members of the network resolve to this container's
    /// address (its name, then aliases; 1–64 of `[A-Za-z0-9_.-]`). Names
    /// are listed in the hosts file of every member that has one (see
    /// [`Attach::hosts_file`]) and disappear when the container detaches.
    ///
    /// ```
    /// let a = berth_netsetup::Attach::new("web-1").name("web-1").name("www");
    /// ```
    pub fn name(mut self, name: &str) -> Self {
        self.names.push(name.to_string());
        self
    }

    /// The container's hosts file, as seen from the host (e.g. the file
    /// bind-mounted at its `/etc/hosts`; [`Network::hosts_path`] is a place
    /// for it): berth keeps a section in it listing every named member of
    /// the network, updated in place as members come and go (never
    /// replaced: a bind mount holds its inode). It must exist; it is
    /// deleted when the container's entry is released (detach, release,
    /// garbage collection).
    ///
    /// ```
    /// let a = berth_netsetup::Attach::new("web-1").hosts_file("/run/berth/web-1/hosts");
    /// ```
    pub fn hosts_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.hosts_file = Some(path.into());
        self
    }

    /// Hairpin mode on the host end's bridge port (default: on when the
    /// attachment publishes ports, off otherwise): the container can reach
    /// itself through an address the host DNATs back
    /// to it — its own published port at the gateway or a host address, a
    /// Kubernetes Service that picks this pod. With the bridge netfilter
    /// hooks on (`br_netfilter`, `bridge-nf-call-iptables = 1`) such a
    /// DNATed frame is bridged back towards the port it came from, which a
    /// bridge refuses unless the port is in hairpin mode. (The network's
    /// rules masquerade that traffic, so the container does not get a
    /// packet from its own address; see nat.rs.) Flooded frames are sent
    /// back to the container too: IPv6 DAD copes with its own looped-back
    /// probes since Linux 4.16 (`enhanced_dad`, RFC 7527).
    ///
    /// ```
    /// let a = berth_netsetup::Attach::new("web-1").hairpin(true);
    /// ```
    pub fn hairpin(mut self, on: bool) -> Self {
        self.hairpin = Some(on);
        self
    }

    /// Publish a port (DNAT from the host to the container).
    ///
    /// ```
    /// use berth_netsetup::{Attach, PortMapping};
    /// let a = Attach::new("web-1").publish(PortMapping::tcp(8080, 80));
    /// ```
    pub fn publish(mut self, port: PortMapping) -> Self {
        self.ports.push(port);
        self
    }
}

/// FNV-1a, for short stable interface names.
fn fnv(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// 28 bits that differ between calls: getrandom(2) (Linux ≥ 3.17), else a
/// hash of the pid, a process-wide counter and the clock.
fn unique_bits() -> u64 {
    let mut b = [0u8; 8];
    if let Ok(8) = berth_sys::fs::getrandom_nonblock(&mut b) {
        return u64::from_ne_bytes(b);
    }
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let c = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    fnv(format!("{}\0{c}\0{t}", std::process::id()).as_bytes())
}

/// Default host-side veth name of `container` on `network`: `vb`, 6 hex
/// digits naming the container, 7 unique ones (15 bytes, IFNAMSIZ - 1).
fn default_host_ifname(network: &str, container: &str) -> String {
    let h = fnv(format!("{network}\0{container}").as_bytes());
    format!("vb{:06x}{:07x}", h & 0xff_ffff, unique_bits() & 0xfff_ffff)
}

impl Network {
    /// A macvlan network (see [`crate::MacvlanNetwork`]): containers get a
    /// macvlan of `parent` (ifindex `parent_index` in `host`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn macvlan_parts(
        name: &str,
        parent: &str,
        parent_index: u32,
        subnet: Ipv4Net,
        gateway: Ipv4Addr,
        ipam: Ipam,
        nl: Netlink,
        state_dir: PathBuf,
        host: NetNs,
    ) -> Result<Network> {
        let firewall = Firewall::in_netns(&host, &state_dir)?;
        Ok(Network {
            inner: Arc::new(Inner {
                name: name.to_string(),
                bridge: parent.to_string(),
                bridge_index: parent_index,
                subnet,
                gateway,
                mtu: None,
                masquerade: false,
                ipam,
                firewall,
                host_nl: Mutex::new(nl),
                state_dir,
                host,
                macvlan: true,
            }),
            ip_forward_was: None,
        })
    }

    /// The driver: `"bridge"` (veth pairs to a bridge) or `"macvlan"`
    /// (macvlan interfaces of a parent).
    pub fn driver(&self) -> &'static str {
        if self.inner.macvlan {
            "macvlan"
        } else {
            "bridge"
        }
    }

    /// Network name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }
    /// Bridge interface name.
    pub fn bridge(&self) -> &str {
        &self.inner.bridge
    }
    /// Bridge ifindex (in the host netns).
    pub fn bridge_index(&self) -> u32 {
        self.inner.bridge_index
    }
    /// Subnet.
    pub fn subnet(&self) -> Ipv4Net {
        self.inner.subnet
    }
    /// Gateway (bridge) address.
    pub fn gateway(&self) -> Ipv4Addr {
        self.inner.gateway
    }
    /// The IPAM of this network.
    pub fn ipam(&self) -> &Ipam {
        &self.inner.ipam
    }
    /// The firewall (nftables) of the host netns.
    pub fn firewall(&self) -> &Firewall {
        &self.inner.firewall
    }
    /// The state directory (IPAM files, nft lock).
    pub fn state_dir(&self) -> &Path {
        &self.inner.state_dir
    }
    /// A place for `container`'s hosts file (see [`Attach::hosts_file`]):
    /// `<state_dir>/<network>.<container>.hosts`, in the private state
    /// directory, outside anything the container's own mounts hide.
    pub fn hosts_path(&self, container: &str) -> PathBuf {
        self.inner
            .state_dir
            .join(format!("{}.{container}.hosts", self.inner.name))
    }
    /// The namespace the network lives in (the host's, unless
    /// [`BridgeNetwork::host_netns`] said otherwise).
    pub fn host_netns(&self) -> &NetNs {
        &self.inner.host
    }
    /// `net.ipv4.ip_forward` before [`BridgeNetwork::ensure`] set it (`None`
    /// when it was not asked to). Restore it with [`NetNs::set_ip_forward`]
    /// if you own the host policy.
    pub fn ip_forward_was(&self) -> Option<bool> {
        self.ip_forward_was
    }

    /// Attach the container whose network namespace is `netns`: a veth pair
    /// whose container end is created directly inside `netns` (named `eth0`,
    /// optional MAC, up) and whose host end is enslaved to the bridge and up;
    /// `lo` up; an address from IPAM; a default route via the gateway; DNAT
    /// rules for published ports. Router advertisements are refused on both
    /// sides: `net.ipv6.conf.{all,default,<ifname>}.accept_ra = 0` in the
    /// container's netns, `accept_ra = 0` on the host end (see
    /// [`BridgeNetwork::ensure`] for the bridge). On error everything
    /// created is removed again (veth, IPAM entry, nft rules).
    ///
    /// Kernel: veth(4), `IFLA_NET_NS_FD` in the peer (Linux ≥ 3.0).
    ///
    /// ```no_run
    /// use berth_netsetup::{Attach, BridgeNetwork, NetNs};
    /// # fn main() -> Result<(), berth_netsetup::Error> {
    /// let net = BridgeNetwork::new("demo").ensure()?;
    /// let ns = NetNs::from_pid(4242)?;
    /// let att = net.attach(&ns, &Attach::new("c1"))?;
    /// # Ok(()) }
    /// ```
    pub fn attach(&self, netns: &NetNs, opts: &Attach) -> Result<Attachment> {
        let inner = &self.inner;
        validate_id("container id", &opts.container)?;
        validate_ifname(&opts.ifname)?;
        if inner.macvlan {
            return self.attach_macvlan(netns, opts);
        }
        let host_ifname = opts
            .host_ifname
            .clone()
            .unwrap_or_else(|| default_host_ifname(&inner.name, &opts.container));
        validate_ifname(&host_ifname)?;
        let spec = VethSpec {
            host: &host_ifname,
            peer: &opts.ifname,
            peer_netns: Some(netns.as_fd()),
            controller: Some(inner.bridge_index),
            peer_mac: opts.mac,
            mtu: inner.mtu,
        };
        // A netlink socket inside the container's netns needs a thread that
        // entered it: start that thread first and let it run while this one
        // allocates the address and creates the veth pair. That thread also
        // sets `accept_ra = 0` in the container's netns (`all`, `default`,
        // then the new interface once it exists; it is still down), so a
        // neighbour's router advertisements cannot give this container a
        // route or an address.
        // Never `all`/`default` of the host's own netns (or the caller's),
        // should one be attached as if it were a container's.
        let own_netns = !netns.is_current() && !netns.same_as(&inner.host);
        let names = opts
            .names
            .iter()
            .try_for_each(|n| validate_id("container name or alias", n))
            .map(|()| crate::ipam::Names {
                names: opts.names.clone(),
                hosts_file: opts.hosts_file.clone(),
            });
        let (allocated, veth, cnl) = std::thread::scope(|s| {
            let (made_tx, made_rx) = std::sync::mpsc::channel::<bool>();
            let opener = s.spawn(move || -> Result<Netlink> {
                let nl = netns.netlink_moving_this_thread()?;
                if own_netns {
                    refuse_router_advertisements(&["all", "default"])?;
                }
                if made_rx.recv() == Ok(true) {
                    refuse_router_advertisements(&[&opts.ifname])?;
                }
                Ok(nl)
            });
            let allocated = names.and_then(|names| {
                inner
                    .ipam
                    .allocate_inner(&opts.container, Some(&host_ifname), opts.address, &names)
            });
            let veth = allocated.is_ok().then(|| inner.nl().create_veth(&spec));
            let _ = made_tx.send(matches!(veth, Some(Ok(_))));
            let cnl = match opener.join() {
                Ok(r) => r,
                Err(p) => std::panic::resume_unwind(p),
            };
            (allocated, veth, cnl)
        });
        let addr = allocated?;
        let mut host_index = None;
        let mut rules = Vec::new();
        let res = (|| -> Result<()> {
            let (hi, peer_index) = veth.ok_or_else(|| Error::InvalidArgument {
                what: "attach",
                reason: "veth pair not created".into(),
            })??;
            host_index = Some(hi);
            // The host end too: enslaved, it hands frames to the bridge, but
            // if the bridge goes while the container lives it becomes a
            // plain host interface facing the container.
            inner
                .host
                .run_local(|| refuse_router_advertisements(&[&host_ifname]))??;
            if opts.hairpin.unwrap_or(!opts.ports.is_empty()) {
                inner.nl().set_hairpin(hi, true)?;
            }
            // The container netns socket stays open until the ports are published.
            let mut cnl = cnl?;
            configure_container_end(&mut cnl, peer_index, opts, addr, inner)?;
            // No published port: no firewall work at all.
            if !opts.ports.is_empty() {
                rules = publish_ports(inner, opts, addr)?;
            }
            Ok(())
        })();
        if let Err(e) = res {
            tracing::warn!(container = %opts.container, error = %e, "attach failed, undoing");
            if let Some(i) = host_index {
                if let Err(e2) = inner.nl().delete_link(i) {
                    tracing::warn!(ifname = %host_ifname, error = %e2, "undo: delete veth");
                }
            }
            if let Err(e2) = inner.ipam.release(&opts.container) {
                tracing::warn!(container = %opts.container, error = %e2, "undo: ipam release");
            }
            return Err(e);
        }
        tracing::debug!(network = %inner.name, container = %opts.container, %addr, host_ifname = %host_ifname, "attached");
        Ok(Attachment {
            net: inner.clone(),
            container: opts.container.clone(),
            host_ifname,
            host_index: host_index.unwrap_or(0),
            ifname: opts.ifname.clone(),
            addr,
            has_ports: !opts.ports.is_empty(),
            rules,
            macvlan_netns: None,
            done: false,
        })
    }

    /// [`Network::attach`] on a macvlan network: an address from IPAM (with
    /// the names), a macvlan of the parent created directly inside
    /// `netns` (bridge mode), `lo` and it up, the address, a default route
    /// via the gateway. No published ports: a macvlan container is on the
    /// parent's segment itself, there is no NAT. On error, what was made
    /// is removed again.
    fn attach_macvlan(&self, netns: &NetNs, opts: &Attach) -> Result<Attachment> {
        let inner = &self.inner;
        if !opts.ports.is_empty() {
            return Err(Error::InvalidArgument {
                what: "published ports",
                reason: format!(
                    "network {:?} is a macvlan network (no NAT): publish ports on a bridge network",
                    inner.name
                ),
            });
        }
        for n in &opts.names {
            validate_id("container name or alias", n)?;
        }
        let names = crate::ipam::Names {
            names: opts.names.clone(),
            hosts_file: opts.hosts_file.clone(),
        };
        let addr = inner
            .ipam
            .allocate_inner(&opts.container, None, opts.address, &names)?;
        let res = (|| -> Result<()> {
            inner.nl().create_macvlan(&crate::MacvlanSpec {
                name: &opts.ifname,
                parent: inner.bridge_index,
                mode: crate::MacvlanMode::Bridge,
                netns: Some(netns.as_fd()),
                mac: opts.mac,
                mtu: None,
            })?;
            let own_netns = !netns.is_current() && !netns.same_as(&inner.host);
            let ifname = opts.ifname.clone();
            let subnet = inner.subnet;
            let gateway = inner.gateway;
            netns.run(move || -> Result<()> {
                if own_netns {
                    refuse_router_advertisements(&["all", "default"])?;
                }
                refuse_router_advertisements(&[&ifname])?;
                let mut nl = Netlink::open()?;
                let index = nl.link_index(&ifname)?.ok_or_else(|| {
                    Error::netlink(
                        "RTM_GETLINK",
                        &ifname,
                        std::io::Error::from_raw_os_error(libc::ENODEV),
                    )
                })?;
                nl.configure_interface(
                    index,
                    IpAddr::V4(addr),
                    subnet.prefix_len(),
                    Some(IpAddr::V4(gateway)),
                    true,
                )
            })?
        })();
        if let Err(e) = res {
            tracing::warn!(container = %opts.container, error = %e, "macvlan attach failed, undoing");
            delete_macvlan(netns, &opts.ifname);
            if let Err(e2) = inner.ipam.release(&opts.container) {
                tracing::warn!(container = %opts.container, error = %e2, "undo: ipam release");
            }
            return Err(e);
        }
        tracing::debug!(network = %inner.name, container = %opts.container, %addr, parent = %inner.bridge, "attached (macvlan)");
        Ok(Attachment {
            net: inner.clone(),
            container: opts.container.clone(),
            host_ifname: String::new(),
            host_index: 0,
            ifname: opts.ifname.clone(),
            addr,
            has_ports: false,
            rules: Vec::new(),
            macvlan_netns: Some(netns.try_clone()?),
            done: false,
        })
    }

    /// Remove every trace of `container` on this network (IPAM entry, nft
    /// rules, host veth if still there) without an [`Attachment`] — for
    /// garbage collection after a crash. Continues past errors and reports all.
    pub fn gc_container(&self, container: &str) -> Result<()> {
        let inner = &self.inner;
        let mut errs = Vec::new();
        // The host veth's name is unique per attach: only the IPAM record knows it.
        let ifname = match inner.ipam.lookup(container) {
            Ok(a) => a.and_then(|a| a.host_ifname),
            Err(e) => {
                errs.push(e);
                None
            }
        };
        if let Some(ifname) = ifname {
            let mut nl = inner.nl();
            match nl.link_by_name(&ifname) {
                Ok(Some(l)) if l.controller == Some(inner.bridge_index) => {
                    if let Err(e) = nl.delete_link(l.index) {
                        errs.push(e)
                    }
                }
                Ok(_) => {}
                Err(e) => errs.push(e),
            }
        }
        if let Err(e) = inner.firewall.unpublish(container) {
            errs.push(e);
        }
        if let Err(e) = inner.ipam.release(container) {
            errs.push(e);
        }
        teardown_result(errs)
    }

    /// Tear the network down: delete the bridge (the kernel drops its
    /// routes and detaches remaining ports), its nft rules (and berth's
    /// nft table when nothing else of berth's is in it), its IPAM state and
    /// its record. When it is the last network that relied on the
    /// `ip_forward` berth turned on, the original value is put back (see
    /// [`BridgeNetwork::ip_forward`]). Continues past errors and reports
    /// them all.
    pub fn remove(self) -> Result<()> {
        let inner = &self.inner;
        let mut errs = Vec::new();
        if inner.macvlan {
            // The parent is the host's interface, never ours to delete; no
            // nft rules, no ip_forward. The containers' macvlans are theirs.
            if let Err(e) = inner.ipam.destroy() {
                errs.push(e);
            }
            remove_record(&inner.state_dir, &inner.name, &mut errs);
            tracing::info!(network = %inner.name, errors = errs.len(), "macvlan network removed");
            return teardown_result(errs);
        }
        {
            let mut nl = inner.nl();
            match nl.link_by_name(&inner.bridge) {
                Ok(Some(l)) => {
                    if let Err(e) = nl.delete_link(l.index) {
                        errs.push(e)
                    }
                }
                Ok(None) => {}
                Err(e) => errs.push(e),
            }
        }
        if let Err(e) = inner.firewall.remove_network(&inner.name) {
            errs.push(e);
        }
        if let Err(e) = inner.ipam.destroy() {
            errs.push(e);
        }
        if let Err(e) = crate::forward::release(&inner.state_dir, &inner.host, &inner.name) {
            errs.push(e);
        }
        remove_record(&inner.state_dir, &inner.name, &mut errs);
        tracing::info!(network = %inner.name, errors = errs.len(), "network removed");
        teardown_result(errs)
    }
}

/// The container's end of the veth pair (`peer_index`, else looked up by
/// name) through `cnl`, a socket in its netns: `lo` and it up, its
/// address, the default route via the gateway.
fn configure_container_end(
    cnl: &mut Netlink,
    peer_index: Option<u32>,
    opts: &Attach,
    addr: Ipv4Addr,
    inner: &Inner,
) -> Result<()> {
    // The host end's IFLA_LINK names the peer's ifindex; fall back to a lookup.
    let eth_index = match peer_index {
        Some(i) if i != 0 => i,
        _ => cnl.link_index(&opts.ifname)?.ok_or_else(|| {
            Error::netlink(
                "RTM_GETLINK",
                &opts.ifname,
                std::io::Error::from_raw_os_error(libc::ENODEV),
            )
        })?,
    };
    // veth peers are created down (see Netlink::create_veth): `lo`
    // up, `eth0` up, address, default route — one sendmsg.
    cnl.configure_interface(
        eth_index,
        IpAddr::V4(addr),
        inner.subnet.prefix_len(),
        Some(IpAddr::V4(inner.gateway)),
        true,
    )?;
    Ok(())
}

/// The network's rules (masquerade of loopback sources), `route_localnet`
/// on the bridge, then the container's published ports. Returns the
/// rules' handles.
fn publish_ports(inner: &Inner, opts: &Attach, addr: Ipv4Addr) -> Result<Vec<u64>> {
    // Ports published on 127.0.0.1 (`-p 127.0.0.1:H:C`, and
    // every port published on all addresses): the DNAT in the
    // output chain sends a packet with a loopback source out
    // the bridge, which the kernel refuses (and the reply to a
    // loopback address coming in) unless `route_localnet` is set
    // on the bridge (ip-sysctl.rst, `conf/<if>/route_localnet`,
    // Linux ≥ 3.6). Set only after the network's rules are in
    // place: they masquerade 127.0.0.0/8 towards the subnet and
    // drop what containers send to 127.0.0.0/8 through the
    // bridge, so the host's loopback services stay out of the
    // containers' reach (nat.rs). The setting goes with the bridge.
    inner
        .firewall
        .add_network_rules(&inner.name, &inner.bridge, inner.subnet, inner.masquerade)?;
    inner
        .host
        .run_local(|| set_route_localnet(&inner.bridge))??;
    Ok(inner
        .firewall
        .publish_rules(&opts.container, addr, &opts.ports)?
        .into_iter()
        .map(|r| r.handle)
        .collect())
}

/// Delete the record of network `name` (a missing one is fine).
fn remove_record(state_dir: &Path, name: &str, errs: &mut Vec<Error>) {
    let rec = record_path(state_dir, name);
    match std::fs::remove_file(&rec) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => errs.push(Error::io("remove", rec, e)),
    }
}

/// Delete macvlan `ifname` inside `netns` if it is there (best effort:
/// undo paths and detach).
fn delete_macvlan(netns: &NetNs, ifname: &str) -> Option<Error> {
    let r = netns.run(|| -> Result<()> {
        let mut nl = Netlink::open()?;
        match nl.link_by_name(ifname)? {
            Some(l) if l.kind.as_deref() == Some("macvlan") => nl.delete_link(l.index),
            _ => Ok(()),
        }
    });
    match r {
        Ok(Ok(())) => None,
        Ok(Err(e)) | Err(e) => {
            tracing::warn!(ifname, error = %e, "delete macvlan");
            Some(e)
        }
    }
}

fn teardown_result(errs: Vec<Error>) -> Result<()> {
    match errs.len() {
        0 => Ok(()),
        1 => Err(errs
            .into_iter()
            .next()
            .unwrap_or(Error::Teardown(Vec::new()))),
        _ => Err(Error::Teardown(errs)),
    }
}

/// A container attached to a [`Network`]. Release it with
/// [`Attachment::release`] when the container's netns is going away (the
/// kernel deletes the veth with the namespace), or [`Attachment::detach`]
/// when the netns lives on. Dropped without either, it detaches fully (best
/// effort, errors logged).
///
/// ```no_run
/// use berth_netsetup::{Attach, BridgeNetwork, NetNs};
/// let net = BridgeNetwork::new("demo").ensure()?;
/// let ns = NetNs::new_anonymous()?;
/// let att = net.attach(&ns, &Attach::new("web-1"))?;
/// println!("{}/{}", att.address(), att.prefix_len());
/// att.detach()?; // veth, address, published ports
/// # Ok::<(), berth_netsetup::Error>(())
/// ```
#[derive(Debug)]
pub struct Attachment {
    net: Arc<Inner>,
    container: String,
    host_ifname: String,
    host_index: u32,
    ifname: String,
    addr: Ipv4Addr,
    has_ports: bool,
    /// Handles of its published-port rules.
    rules: Vec<u64>,
    /// A macvlan attachment: the container's netns (the link lives only there).
    macvlan_netns: Option<NetNs>,
    done: bool,
}

impl Attachment {
    /// The container's address.
    pub fn address(&self) -> Ipv4Addr {
        self.addr
    }
    /// Prefix length of the network.
    pub fn prefix_len(&self) -> u8 {
        self.net.subnet.prefix_len()
    }
    /// The gateway (default route) address.
    pub fn gateway(&self) -> Ipv4Addr {
        self.net.gateway
    }
    /// The container id.
    pub fn container_id(&self) -> &str {
        &self.container
    }
    /// Host end of the veth pair.
    pub fn host_ifname(&self) -> &str {
        &self.host_ifname
    }
    /// Host end's ifindex.
    pub fn host_index(&self) -> u32 {
        self.host_index
    }
    /// Interface name inside the container.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    fn teardown(&mut self, delete_veth: bool) -> Result<()> {
        self.done = true;
        let mut errs = Vec::new();
        if self.has_ports {
            if let Err(e) = self
                .net
                .firewall
                .unpublish_rules(&self.container, &self.rules)
            {
                errs.push(e);
            }
        }
        if let Some(ns) = self.macvlan_netns.take() {
            if delete_veth {
                errs.extend(delete_macvlan(&ns, &self.ifname));
            }
        } else if delete_veth {
            let mut nl = self.net.nl();
            // Only delete what is still ours: same index, same name.
            match nl.link_by_name(&self.host_ifname) {
                Ok(Some(l)) if l.index == self.host_index => {
                    if let Err(e) = nl.delete_link(l.index) {
                        errs.push(e);
                    }
                }
                Ok(_) => {}
                Err(e) => errs.push(e),
            }
        }
        if let Err(e) = self.net.ipam.release(&self.container) {
            errs.push(e);
        }
        teardown_result(errs)
    }

    /// Detach and delete the veth pair now (synchronous in the kernel: it
    /// waits for an RCU grace period, ~tens of ms on a busy host). Then the
    /// IPAM entry and nft rules go. Reports every error.
    pub fn detach(mut self) -> Result<()> {
        self.teardown(true)
    }

    /// Detach for a container whose network namespace is about to disappear:
    /// the IPAM entry and nft rules go now, the veth pair is left to the
    /// kernel (it deletes both ends when the namespace is destroyed, after
    /// the last process and fd are gone). Fast: no link deletion is waited for.
    pub fn release(mut self) -> Result<()> {
        self.teardown(false)
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        if !self.done {
            if let Err(e) = self.teardown(true) {
                tracing::warn!(container = %self.container, error = %e, "detach on drop failed");
            }
        }
    }
}

/// Garbage-collect `container` on every network recorded in `state_dir`
/// (IPAM entries, the host veths they name when still enslaved to a bridge,
/// nft rules tagged with the id), in host namespace `host` (`None`: the
/// caller's). Continues past errors and reports all.
pub fn gc_container(
    state_dir: impl AsRef<Path>,
    host: Option<&NetNs>,
    container: &str,
) -> Result<()> {
    validate_id("container id", container)?;
    let dir = state_dir.as_ref();
    let host = match host {
        Some(h) => h.try_clone()?,
        None => NetNs::current()?,
    };
    let mut errs = Vec::new();
    let mut nl = host.netlink()?;
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd.flatten().map(|e| e.path()).collect::<Vec<_>>(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io("read dir", dir, e)),
    };
    for p in entries {
        if p.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let ipam = match ipam_from_state_file(&p) {
            Ok(i) => i,
            Err(e) => {
                errs.push(e);
                continue;
            }
        };
        match ipam.release(container) {
            Ok(Some(a)) => {
                if let Some(ifn) = a.host_ifname {
                    match nl.link_by_name(&ifn) {
                        Ok(Some(l))
                            if l.kind.as_deref() == Some("veth") && l.controller.is_some() =>
                        {
                            if let Err(e) = nl.delete_link(l.index) {
                                errs.push(e);
                            }
                        }
                        Ok(_) => {}
                        Err(e) => errs.push(e),
                    }
                }
            }
            Ok(None) => {}
            Err(e) => errs.push(e),
        }
    }
    let fw = Firewall::in_netns(&host, dir)?;
    if let Err(e) = fw.unpublish(container) {
        errs.push(e);
    }
    teardown_result(errs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Network>();
        check::<Attachment>();
        check::<NetNs>();
        check::<Firewall>();
        check::<Ipam>();
    }

    #[test]
    fn host_ifnames_are_valid_and_unique_per_attach() {
        let a = default_host_ifname("net", "web-1");
        let b = default_host_ifname("net", "web-1");
        assert_ne!(a, b, "a quick reuse of the id gets another name");
        assert_eq!(a[..8], b[..8], "same container prefix");
        assert_ne!(a[..8], default_host_ifname("net", "web-2")[..8]);
        assert_ne!(a[..8], default_host_ifname("net2", "web-1")[..8]);
        for n in [a, b] {
            assert_eq!(n.len(), 15, "{n}");
            assert!(validate_ifname(&n).is_ok(), "{n}");
        }
    }

    #[test]
    fn state_dir_is_outside_berths_state_root() {
        assert!(!Path::new(DEFAULT_STATE_DIR).starts_with("/run/berth/"));
        assert_eq!(
            default_state_dir("no-such-network-xyz"),
            Path::new(DEFAULT_STATE_DIR)
        );
    }

    #[test]
    fn pool_and_gateway_come_from_the_subnet_and_range() {
        let (s, p, g) = BridgeNetwork::new("n")
            .subnet("10.88.0.0/16")
            .addressing()
            .unwrap();
        assert_eq!(
            (s.to_string(), p.to_string()),
            ("10.88.0.0/16".into(), "10.88.0.0/16".into())
        );
        assert_eq!(g, Ipv4Addr::new(10, 88, 0, 1));
        let (_, p, g) = BridgeNetwork::new("n")
            .subnet("10.88.0.0/16")
            .ip_range("10.88.3.0/24")
            .addressing()
            .unwrap();
        assert_eq!(p.to_string(), "10.88.3.0/24");
        assert_eq!(g, Ipv4Addr::new(10, 88, 3, 1));
        let (_, _, g) = BridgeNetwork::new("n")
            .subnet("10.88.0.0/16")
            .gateway(Ipv4Addr::new(10, 88, 9, 9))
            .addressing()
            .unwrap();
        assert_eq!(g, Ipv4Addr::new(10, 88, 9, 9));
        for range in ["10.89.0.0/24", "10.0.0.0/8"] {
            let e = BridgeNetwork::new("n")
                .subnet("10.88.0.0/16")
                .ip_range(range)
                .addressing()
                .unwrap_err();
            assert!(e.to_string().contains("inside the subnet"), "{e}");
        }
        assert!(BridgeNetwork::new("n")
            .subnet("10.88.0.x/16")
            .addressing()
            .is_err());
    }
}
