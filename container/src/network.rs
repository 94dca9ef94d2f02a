//! User-defined networks as objects: [`Network::create`] makes one (a
//! bridge, its IPAM state, its nft rules, a record in berth-netsetup's state
//! directory), [`Network::list`] and [`Network::open`] find them again from
//! any process, [`Network::remove`] tears one down; containers join one by
//! handle or by name ([`Network::named`]) and resolve each other by
//! container name and alias (berth-netsetup's hosts files: each member's
//! `/etc/hosts` is bound from its state directory and kept listing every
//! member).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use berth_netsetup::{
    BridgeNetwork, Ipv4Net, MacvlanNetwork, NetworkRecord, PortMapping, VxlanNetwork,
};

use crate::config::{NetKind, Network};
use crate::error::{Error, Result};

/// `dir`, or berth-netsetup's default state directory.
fn state_dir_or_default(dir: Option<&Path>) -> PathBuf {
    dir.map_or_else(
        || PathBuf::from(berth_netsetup::DEFAULT_STATE_DIR),
        Path::to_path_buf,
    )
}

/// A user-defined network as a container's network: its name, where its
/// record lives, the handle when the caller has one, ports and aliases.
#[derive(Debug, Clone)]
pub(crate) struct UserSpec {
    pub name: String,
    pub state_dir: Option<PathBuf>,
    pub handle: Option<berth_netsetup::Network>,
    pub ports: Vec<PortMapping>,
    pub aliases: Vec<String>,
}

impl UserSpec {
    fn state_dir(&self) -> PathBuf {
        state_dir_or_default(self.state_dir.as_deref())
    }

    /// The network's handle: the one given, or rebuilt from its record
    /// (idempotent `ensure`: the bridge and rules are there already).
    pub(crate) fn resolve(&self) -> Result<berth_netsetup::Network> {
        if let Some(h) = &self.handle {
            return Ok(h.clone());
        }
        open_handle(&self.state_dir(), &self.name)
    }
}

fn open_handle(state_dir: &Path, name: &str) -> Result<berth_netsetup::Network> {
    let r = berth_netsetup::network_record(state_dir, name)?.ok_or_else(|| {
        Error::invalid(format!(
            "no network named {name:?} (none recorded in {})",
            state_dir.display()
        ))
    })?;
    Ok(match r.driver.as_str() {
        "macvlan" => MacvlanNetwork::from_record(&r)
            .state_dir(state_dir)
            .ensure()?,
        "vxlan" => VxlanNetwork::from_record(&r)?
            .state_dir(state_dir)
            .ensure()?
            .network()
            .clone(),
        _ => BridgeNetwork::from_record(&r)
            .state_dir(state_dir)
            .ensure()?,
    })
}

/// A user-defined network with its handle.
fn user_network(name: String, dir: PathBuf, handle: berth_netsetup::Network) -> Network {
    Network {
        kind: NetKind::User(UserSpec {
            name,
            state_dir: Some(dir),
            handle: Some(handle),
            ports: Vec::new(),
            aliases: Vec::new(),
        }),
    }
}

/// berth-netsetup's default subnet (`BridgeNetwork::new`'s).
const DEFAULT_SUBNET: &str = "10.88.0.0/16";

/// The drivers [`NetworkBuilder::driver`] knows.
const DRIVERS: &[&str] = &["bridge", "macvlan", "vxlan"];

/// Builder of a user-defined network; [`NetworkBuilder::create`] makes it.
///
/// ```no_run
/// let net = berth::Network::create("mynet").subnet("10.89.0.0/24").create()?;
/// # Ok::<(), berth::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct NetworkBuilder {
    name: String,
    driver: String,
    bridge: Option<String>,
    subnet: Option<String>,
    masquerade: bool,
    ip_forward: bool,
    state_dir: Option<PathBuf>,
    parent: Option<String>,
    vxlan: VxlanOpts,
}

/// The `vxlan` driver's options.
#[derive(Debug, Clone, Default)]
struct VxlanOpts {
    vni: Option<u32>,
    local: Option<Ipv4Addr>,
    range: Option<String>,
    peers: Vec<(Ipv4Addr, String)>,
    members_file: Option<PathBuf>,
}

impl VxlanOpts {
    fn is_empty(&self) -> bool {
        self.vni.is_none()
            && self.local.is_none()
            && self.range.is_none()
            && self.peers.is_empty()
            && self.members_file.is_none()
    }
}

impl NetworkBuilder {
    /// The driver: `bridge` (the default: a bridge, veth pairs, NAT),
    /// `macvlan` (containers on a parent interface's segment through
    /// macvlan interfaces in bridge mode; needs [`parent`](Self::parent))
    /// or `vxlan` (an overlay spanning hosts: a local bridge joined to the
    /// other hosts' by a VXLAN device with static peers, each host handing
    /// out addresses from its own range; needs [`vni`](Self::vni) and the
    /// members: [`local`](Self::local) + [`range`](Self::range) +
    /// [`peer`](Self::peer)s, or a [`members_file`](Self::members_file)).
    /// Any other is refused by [`create`](Self::create).
    ///
    /// ```
    /// let b = berth::Network::create("lan").driver("macvlan").parent("eth0");
    /// ```
    pub fn driver(mut self, driver: &str) -> Self {
        self.driver = driver.to_string();
        self
    }

    /// macvlan: the parent interface (in the host's network namespace),
    /// e.g. `eth0`. Containers can reach each other and the rest of the
    /// parent's segment, but not the host through the parent's own address
    /// (the macvlan bridge-mode rule).
    ///
    /// ```
    /// let b = berth::Network::create("lan").driver("macvlan").parent("eth0");
    /// ```
    pub fn parent(mut self, ifname: &str) -> Self {
        self.parent = Some(ifname.to_string());
        self
    }

    /// vxlan: the VXLAN network identifier (24 bits; required), the same
    /// on every host of the overlay.
    ///
    /// ```
    /// let b = berth::Network::create("ov").driver("vxlan").vni(4242);
    /// ```
    pub fn vni(mut self, vni: u32) -> Self {
        self.vxlan.vni = Some(vni);
        self
    }

    /// vxlan: this host's underlay address (default: the member address
    /// configured on this host).
    ///
    /// ```
    /// let b = berth::Network::create("ov").driver("vxlan").local([192, 0, 2, 1].into());
    /// ```
    pub fn local(mut self, addr: Ipv4Addr) -> Self {
        self.vxlan.local = Some(addr);
        self
    }

    /// vxlan: this host's slice of the subnet, the addresses its containers
    /// get (needs [`local`](Self::local); or list this host in the
    /// [`members_file`](Self::members_file)).
    ///
    /// ```
    /// let b = berth::Network::create("ov").driver("vxlan").range("10.200.1.0/24");
    /// ```
    pub fn range(mut self, cidr: &str) -> Self {
        self.vxlan.range = Some(cidr.to_string());
        self
    }

    /// vxlan: another host of the overlay, a static peer: its underlay
    /// address and its slice of the subnet.
    ///
    /// ```
    /// let b = berth::Network::create("ov").driver("vxlan").peer([192, 0, 2, 2].into(), "10.200.2.0/24");
    /// ```
    pub fn peer(mut self, vtep: Ipv4Addr, range: &str) -> Self {
        self.vxlan.peers.push((vtep, range.to_string()));
        self
    }

    /// vxlan: the members file the operator distributes to every host (one
    /// `VTEP-ADDRESS RANGE-CIDR` line per host, this one included; see
    /// `berth_netsetup::OverlayMember::parse_list`).
    ///
    /// ```
    /// let b = berth::Network::create("ov").driver("vxlan").members_file("/etc/berth/ov.members");
    /// ```
    pub fn members_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.vxlan.members_file = Some(path.into());
        self
    }

    /// The bridge interface (≤ 15 bytes; default: the network name).
    ///
    /// ```
    /// let b = berth::Network::create("mynet").bridge_ifname("br-mynet");
    /// ```
    pub fn bridge_ifname(mut self, ifname: &str) -> Self {
        self.bridge = Some(ifname.to_string());
        self
    }

    /// The IPv4 subnet (default: berth-netsetup's, `10.88.0.0/16`).
    ///
    /// ```
    /// let b = berth::Network::create("mynet").subnet("10.89.0.0/24");
    /// ```
    pub fn subnet(mut self, cidr: &str) -> Self {
        self.subnet = Some(cidr.to_string());
        self
    }

    /// Masquerade traffic leaving the subnet (default on).
    ///
    /// ```
    /// let b = berth::Network::create("mynet").masquerade(false);
    /// ```
    pub fn masquerade(mut self, on: bool) -> Self {
        self.masquerade = on;
        self
    }

    /// Turn `net.ipv4.ip_forward` on (default on; the original value comes
    /// back when the last network that turned it on is removed).
    ///
    /// ```
    /// let b = berth::Network::create("mynet").ip_forward(false);
    /// ```
    pub fn ip_forward(mut self, on: bool) -> Self {
        self.ip_forward = on;
        self
    }

    /// berth-netsetup's state directory (default
    /// `berth_netsetup::DEFAULT_STATE_DIR`): the record, IPAM, locks.
    ///
    /// ```
    /// let b = berth::Network::create("mynet").state_dir("/run/my-nets");
    /// ```
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// Make the network: for `bridge`, the bridge, its address, its nft
    /// rules; for `macvlan`, nothing on the host (the parent must exist);
    /// for `vxlan`, this host's part of the overlay (bridge, VXLAN device,
    /// flood entries for the peers, MTU underlay − 50); then its IPAM
    /// state and its record. A network of that name that
    /// exists already, an unknown driver, a macvlan without a parent or
    /// with one that does not exist, a subnet overlapping another recorded
    /// network's: each an error naming it, and nothing is left.
    pub fn create(self) -> Result<Network> {
        if !DRIVERS.contains(&self.driver.as_str()) {
            return Err(Error::invalid(format!(
                "network driver {:?} is not one of {}",
                self.driver,
                DRIVERS.join(", ")
            )));
        }
        if self.driver == "macvlan" && self.parent.is_none() {
            return Err(Error::invalid(format!(
                "network {:?}: the macvlan driver needs a parent interface",
                self.name
            )));
        }
        if self.driver != "macvlan" && self.parent.is_some() {
            return Err(Error::invalid(format!(
                "network {:?}: a parent interface is for the macvlan driver only",
                self.name
            )));
        }
        if self.driver == "vxlan" && self.vxlan.vni.is_none() {
            return Err(Error::invalid(format!(
                "network {:?}: the vxlan driver needs a VNI",
                self.name
            )));
        }
        if self.driver != "vxlan" && !self.vxlan.is_empty() {
            return Err(Error::invalid(format!(
                "network {:?}: VNI, local address, range, peers and members file are for the vxlan driver only",
                self.name
            )));
        }
        let dir = state_dir_or_default(self.state_dir.as_deref());
        if berth_netsetup::network_record(&dir, &self.name)?.is_some() {
            return Err(Error::invalid(format!(
                "network {:?} already exists",
                self.name
            )));
        }
        // Another recorded network's subnet (a macvlan subnet has no route
        // on the host for the bridge driver's own check to find).
        let subnet = self.subnet.as_deref().unwrap_or(DEFAULT_SUBNET);
        let net: Ipv4Net = subnet.parse()?;
        for other in berth_netsetup::list_networks(&dir)? {
            let theirs: std::result::Result<Ipv4Net, _> = other.subnet.parse();
            if theirs.is_ok_and(|t| t.overlaps(&net)) {
                return Err(Error::invalid(format!(
                    "network {:?}: subnet {subnet} overlaps {} of network {:?}",
                    self.name, other.subnet, other.name
                )));
            }
        }
        if let Some(vni) = self.vxlan.vni {
            let v = &self.vxlan;
            let mut b = VxlanNetwork::new(&self.name, vni)
                .subnet(subnet)
                .masquerade(self.masquerade)
                .ip_forward(self.ip_forward)
                .state_dir(&dir)
                .persist(true);
            if let Some(br) = &self.bridge {
                b = b.bridge(br);
            }
            if let Some(l) = v.local {
                b = b.local(l);
            }
            match (v.local, &v.range) {
                (Some(l), Some(r)) => b = b.member(l, r.parse()?),
                (None, Some(r)) => {
                    return Err(Error::invalid(format!(
                        "network {:?}: the range {r} needs the local address it belongs to",
                        self.name
                    )))
                }
                _ => {}
            }
            for (vtep, r) in &v.peers {
                let range: Ipv4Net = r.parse()?;
                b = b.member(*vtep, range);
            }
            if let Some(f) = &v.members_file {
                b = b.members_file(f);
            }
            let handle = b.ensure()?.network().clone();
            return Ok(user_network(self.name, dir, handle));
        }
        if let Some(parent) = &self.parent {
            let handle = MacvlanNetwork::new(&self.name)
                .parent(parent)
                .subnet(subnet)
                .state_dir(&dir)
                .persist(true)
                .ensure()?;
            return Ok(user_network(self.name, dir, handle));
        }
        let mut b = BridgeNetwork::new(&self.name)
            .bridge(self.bridge.as_deref().unwrap_or(&self.name))
            .masquerade(self.masquerade)
            .ip_forward(self.ip_forward)
            .state_dir(&dir)
            .persist(true);
        if let Some(s) = &self.subnet {
            b = b.subnet(s);
        }
        let handle = b.ensure()?;
        Ok(user_network(self.name, dir, handle))
    }
}

impl Network {
    /// Start building user-defined network `name` (1–64 of
    /// `[A-Za-z0-9_.-]`); [`NetworkBuilder::create`] makes it.
    ///
    /// ```no_run
    /// let net = berth::Network::create("mynet").create()?;
    /// let c = berth::Container::builder("web").network(net.clone().alias("www"));
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn create(name: &str) -> NetworkBuilder {
        NetworkBuilder {
            name: name.to_string(),
            driver: "bridge".to_string(),
            bridge: None,
            subnet: None,
            masquerade: true,
            ip_forward: true,
            state_dir: None,
            parent: None,
            vxlan: VxlanOpts::default(),
        }
    }

    /// User-defined network `name`, found by name when a container spawns
    /// (in berth-netsetup's default state directory; see
    /// [`Network::state_dir`]). Containers on it resolve each other by
    /// container id and aliases.
    ///
    /// ```
    /// let n = berth::Network::named("mynet").alias("db");
    /// ```
    pub fn named(name: &str) -> Network {
        Network {
            kind: NetKind::User(UserSpec {
                name: name.to_string(),
                state_dir: None,
                handle: None,
                ports: Vec::new(),
                aliases: Vec::new(),
            }),
        }
    }

    /// A handle on existing user-defined network `name` in `state_dir`
    /// (`None`: berth-netsetup's default); an unknown name is an error.
    ///
    /// ```no_run
    /// let net = berth::Network::open(None, "mynet")?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn open(state_dir: Option<&Path>, name: &str) -> Result<Network> {
        let dir = state_dir_or_default(state_dir);
        let handle = open_handle(&dir, name)?;
        Ok(user_network(name.to_string(), dir, handle))
    }

    /// Every user-defined network recorded in `state_dir` (`None`:
    /// berth-netsetup's default), by name.
    ///
    /// ```no_run
    /// for n in berth::Network::list(None)? {
    ///     println!("{} {} {}", n.name, n.driver, n.subnet);
    /// }
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn list(state_dir: Option<&Path>) -> Result<Vec<NetworkRecord>> {
        let dir = state_dir.unwrap_or(Path::new(berth_netsetup::DEFAULT_STATE_DIR));
        Ok(berth_netsetup::list_networks(dir)?)
    }

    /// User-defined networks: another name this container answers to on
    /// the network (besides its id).
    ///
    /// ```
    /// let n = berth::Network::named("mynet").alias("db").alias("primary");
    /// ```
    pub fn alias(mut self, name: &str) -> Network {
        if let NetKind::User(u) = &mut self.kind {
            u.aliases.push(name.to_string());
        }
        self
    }

    /// User-defined networks: its record (name, driver, bridge, subnet,
    /// gateway, ...); `None` for the other kinds or an unknown name.
    pub fn record(&self) -> Result<Option<NetworkRecord>> {
        match &self.kind {
            NetKind::User(u) => Ok(berth_netsetup::network_record(u.state_dir(), &u.name)?),
            _ => Ok(None),
        }
    }

    /// User-defined networks: the containers attached, with their addresses.
    pub fn containers(&self) -> Result<BTreeMap<String, Ipv4Addr>> {
        match &self.kind {
            NetKind::User(u) => Ok(u
                .resolve()?
                .ipam()
                .allocations()?
                .into_iter()
                .map(|(id, a)| (id, a.addr))
                .collect()),
            _ => Ok(BTreeMap::new()),
        }
    }

    /// Remove a user-defined network: its bridge, nft rules, IPAM state and
    /// record (and `ip_forward` back to its original value when it was the
    /// last network relying on it). Refused, naming them, while containers
    /// are attached. Reports every teardown error.
    ///
    /// ```no_run
    /// berth::Network::open(None, "mynet")?.remove()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn remove(self) -> Result<()> {
        let NetKind::User(u) = &self.kind else {
            return Err(Error::invalid(
                "only a user-defined network (Network::create/open/named) can be removed",
            ));
        };
        let h = u.resolve()?;
        let members = h.ipam().allocations()?;
        if !members.is_empty() {
            let ids: Vec<&str> = members.keys().map(String::as_str).collect();
            return Err(Error::invalid(format!(
                "network {:?} has containers attached: {}",
                u.name,
                ids.join(", ")
            )));
        }
        // An overlay: its VXLAN device goes too (Overlay::remove).
        let dir = u.state_dir();
        match berth_netsetup::network_record(&dir, &u.name)? {
            Some(r) if r.driver == "vxlan" => Ok(VxlanNetwork::from_record(&r)?
                .state_dir(&dir)
                .ensure()?
                .remove()?),
            _ => Ok(h.remove()?),
        }
    }
}
