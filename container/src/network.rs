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

use berth_netsetup::{BridgeNetwork, MacvlanNetwork, NetworkRecord, PortMapping};

use crate::config::{NetKind, Network};
use crate::error::{Error, Result};

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
        self.state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(berth_netsetup::DEFAULT_STATE_DIR))
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
const DRIVERS: &[&str] = &["bridge", "macvlan"];

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
}

impl NetworkBuilder {
    /// The driver: `bridge` (the default: a bridge, veth pairs, NAT) or
    /// `macvlan` (containers on a parent interface's segment through
    /// macvlan interfaces in bridge mode; needs [`parent`](Self::parent)).
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
    /// then its IPAM state and its record. A network of that name that
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
        let dir = self
            .state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(berth_netsetup::DEFAULT_STATE_DIR));
        if berth_netsetup::network_record(&dir, &self.name)?.is_some() {
            return Err(Error::invalid(format!(
                "network {:?} already exists",
                self.name
            )));
        }
        // Another recorded network's subnet (a macvlan subnet has no route
        // on the host for the bridge driver's own check to find).
        let subnet = self.subnet.as_deref().unwrap_or(DEFAULT_SUBNET);
        let net: berth_netsetup::Ipv4Net = subnet.parse()?;
        for other in berth_netsetup::list_networks(&dir)? {
            let theirs: std::result::Result<berth_netsetup::Ipv4Net, _> = other.subnet.parse();
            if theirs.is_ok_and(|t| t.overlaps(&net)) {
                return Err(Error::invalid(format!(
                    "network {:?}: subnet {subnet} overlaps {} of network {:?}",
                    self.name, other.subnet, other.name
                )));
            }
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
        let dir = state_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(berth_netsetup::DEFAULT_STATE_DIR));
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
        Ok(h.remove()?)
    }
}
