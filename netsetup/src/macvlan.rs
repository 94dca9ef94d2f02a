//! macvlan links: a container interface with its own MAC address on a
//! parent (host) interface, created directly inside the container's netns.
//!
//! Kernel: `CONFIG_MACVLAN` (drivers/net/macvlan.c), ip-link(8) `type
//! macvlan`. The parent (`IFLA_LINK`) is looked up in the namespace of the
//! socket that sends the request, the new link is registered in the one of
//! `IFLA_NET_NS_FD` (rtnl_newlink, Linux ≥ 3.0), so no move is needed.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::PathBuf;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoMacVlan, LinkAttribute, LinkInfo, LinkMessage, MacVlanMode,
};
use netlink_packet_route::RouteNetlinkMessage;

use crate::cidr::Ipv4Net;
use crate::error::{Error, Result};
use crate::ipam::Ipam;
use crate::netlink::{map_exists, Netlink};
use crate::netns::NetNs;
use crate::network::{host_netns_or_current, Network, NetworkRecord};
use crate::{validate_id, validate_ifname};

/// How macvlan interfaces of one parent reach each other (ip-link(8)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacvlanMode {
    /// Siblings talk directly, inside the kernel (the usual choice).
    Bridge,
    /// No traffic between siblings.
    Private,
    /// Sibling traffic goes out to the switch (which must hairpin it).
    Vepa,
    /// One macvlan takes over the parent.
    Passthru,
}

impl MacvlanMode {
    /// Parse `bridge`, `private`, `vepa` or `passthru`.
    ///
    /// ```
    /// use berth_netsetup::MacvlanMode;
    /// assert_eq!(MacvlanMode::parse("bridge").unwrap(), MacvlanMode::Bridge);
    /// assert!(MacvlanMode::parse("source").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "bridge" => Self::Bridge,
            "private" => Self::Private,
            "vepa" => Self::Vepa,
            "passthru" => Self::Passthru,
            other => {
                return Err(Error::InvalidArgument {
                    what: "macvlan mode",
                    reason: format!("{other:?} is not one of bridge, private, vepa, passthru"),
                })
            }
        })
    }

    fn to_netlink(self) -> MacVlanMode {
        match self {
            Self::Bridge => MacVlanMode::Bridge,
            Self::Private => MacVlanMode::Private,
            Self::Vepa => MacVlanMode::Vepa,
            Self::Passthru => MacVlanMode::Passthrough,
        }
    }
}

/// What [`Netlink::create_macvlan`] creates.
#[derive(Debug, Clone, Copy)]
pub struct MacvlanSpec<'a> {
    /// Name of the new interface (in `netns`).
    pub name: &'a str,
    /// ifindex of the parent, in the socket's namespace.
    pub parent: u32,
    /// Mode.
    pub mode: MacvlanMode,
    /// Namespace to create it in (`None`: the socket's).
    pub netns: Option<BorrowedFd<'a>>,
    /// MAC address (default: random).
    pub mac: Option<[u8; 6]>,
    /// MTU (at most the parent's).
    pub mtu: Option<u32>,
}

impl Netlink {
    /// Create a macvlan interface on `spec.parent`, directly inside
    /// `spec.netns`, down (bring it up from inside its namespace, e.g. with
    /// [`Netlink::configure_interface`]). A taken name is
    /// [`Error::LinkExists`].
    ///
    /// ```no_run
    /// use berth_netsetup::{MacvlanMode, MacvlanSpec, NetNs, Netlink};
    /// use std::os::fd::AsFd;
    /// # fn main() -> Result<(), berth_netsetup::Error> {
    /// let mut nl = Netlink::open()?;
    /// let parent = nl.link_index("eth0")?.expect("eth0");
    /// let ns = NetNs::from_path("/run/netns/c1")?;
    /// nl.create_macvlan(&MacvlanSpec {
    ///     name: "eth0",
    ///     parent,
    ///     mode: MacvlanMode::Bridge,
    ///     netns: Some(ns.as_fd()),
    ///     mac: None,
    ///     mtu: None,
    /// })?;
    /// # Ok(()) }
    /// ```
    pub fn create_macvlan(&mut self, spec: &MacvlanSpec<'_>) -> Result<()> {
        validate_ifname(spec.name)?;
        let mut m = LinkMessage::default();
        m.attributes
            .push(LinkAttribute::IfName(spec.name.to_string()));
        m.attributes.push(LinkAttribute::Link(spec.parent));
        if let Some(fd) = spec.netns {
            m.attributes.push(LinkAttribute::NetNsFd(fd.as_raw_fd()));
        }
        if let Some(mac) = spec.mac {
            m.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        if let Some(mtu) = spec.mtu {
            m.attributes.push(LinkAttribute::Mtu(mtu));
        }
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::MacVlan),
            LinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(
                spec.mode.to_netlink(),
            )])),
        ]));
        self.request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL)
            .map(|_| ())
            .map_err(|e| map_exists(e, "RTM_NEWLINK macvlan", spec.name))
    }
}

/// Builder of a macvlan network: containers get a macvlan interface (bridge
/// mode) of a parent interface of the host, an address from the network's
/// IPAM and a default route via its gateway; they sit on the parent's
/// segment themselves (no bridge, no NAT, no published ports).
/// [`MacvlanNetwork::ensure`] makes it exist → a [`Network`] to
/// [`Network::attach`] containers to, with names as on a bridge network.
///
/// The bridge-mode rule (drivers/net/macvlan.c): macvlans of one parent
/// reach each other inside the kernel, but frames between a macvlan and
/// the parent itself are never switched — the host cannot reach its
/// containers through the parent's own address, nor they the host.
///
/// ```no_run
/// use berth_netsetup::{Attach, MacvlanNetwork, NetNs};
/// let net = MacvlanNetwork::new("lan").parent("eth0").subnet("192.168.1.0/24").ensure()?;
/// let att = net.attach(&NetNs::from_pid(4242)?, &Attach::new("web-1").name("web"))?;
/// # Ok::<(), berth_netsetup::Error>(())
/// ```
#[derive(Debug)]
#[doc(alias("macvlan", "docker network create -d macvlan"))]
pub struct MacvlanNetwork {
    name: String,
    parent: Option<String>,
    subnet: String,
    gateway: Option<Ipv4Addr>,
    state_dir: Option<PathBuf>,
    host: Option<NetNs>,
    persist: bool,
}

impl MacvlanNetwork {
    /// A macvlan network called `name` (1–64 of `[A-Za-z0-9_.-]`), subnet
    /// `10.88.0.0/16` by default; [`MacvlanNetwork::parent`] is required.
    ///
    /// ```
    /// let b = berth_netsetup::MacvlanNetwork::new("lan");
    /// ```
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            parent: None,
            subnet: "10.88.0.0/16".to_string(),
            gateway: None,
            state_dir: None,
            host: None,
            persist: false,
        }
    }

    /// The parent interface (in the host netns), e.g. `eth0`.
    ///
    /// ```
    /// let b = berth_netsetup::MacvlanNetwork::new("lan").parent("eth0");
    /// ```
    pub fn parent(mut self, ifname: &str) -> Self {
        self.parent = Some(ifname.to_string());
        self
    }

    /// The IPv4 subnet (the parent segment's, usually).
    ///
    /// ```
    /// let b = berth_netsetup::MacvlanNetwork::new("lan").subnet("192.168.1.0/24");
    /// ```
    pub fn subnet(mut self, cidr: &str) -> Self {
        self.subnet = cidr.to_string();
        self
    }

    /// The gateway containers route through (default: the subnet's first
    /// address; IPAM never hands it out).
    ///
    /// ```
    /// let b = berth_netsetup::MacvlanNetwork::new("lan").gateway([192, 168, 1, 254].into());
    /// ```
    pub fn gateway(mut self, ip: Ipv4Addr) -> Self {
        self.gateway = Some(ip);
        self
    }

    /// IPAM state directory (see [`crate::BridgeNetwork::state_dir`]).
    ///
    /// ```
    /// let b = berth_netsetup::MacvlanNetwork::new("lan").state_dir("/var/lib/myapp/net");
    /// ```
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// Look the parent up in namespace `ns` instead of the caller's.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), berth_netsetup::Error> {
    /// let host = berth_netsetup::NetNs::from_path("/run/netns/lab")?;
    /// let b = berth_netsetup::MacvlanNetwork::new("lan").host_netns(&host)?;
    /// # Ok(()) }
    /// ```
    pub fn host_netns(mut self, ns: &NetNs) -> Result<Self> {
        self.host = Some(ns.try_clone()?);
        Ok(self)
    }

    /// Record it as a user-defined network (see [`crate::BridgeNetwork::persist`]).
    ///
    /// ```
    /// let b = berth_netsetup::MacvlanNetwork::new("lan").persist(true);
    /// ```
    pub fn persist(mut self, on: bool) -> Self {
        self.persist = on;
        self
    }

    /// The builder of a recorded macvlan network (driver `macvlan`, its
    /// parent in [`NetworkRecord::bridge`]), state directory `state_dir`.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), berth_netsetup::Error> {
    /// let dir = berth_netsetup::DEFAULT_STATE_DIR;
    /// if let Some(r) = berth_netsetup::network_record(dir, "lan")? {
    ///     let net = berth_netsetup::MacvlanNetwork::from_record(&r).state_dir(dir).ensure()?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn from_record(r: &NetworkRecord) -> Self {
        Self::new(&r.name)
            .parent(&r.bridge)
            .subnet(&r.subnet)
            .gateway(r.gateway)
            .persist(true)
    }

    /// Make the network exist, idempotently: check the parent exists in
    /// the host netns, then the IPAM state and (with
    /// [`persist`](Self::persist)) the record. Nothing is created on the
    /// host: the parent is not touched, no nft rule, no `ip_forward`. A
    /// missing parent is an error naming it and creates nothing.
    pub fn ensure(&self) -> Result<Network> {
        validate_id("network name", &self.name)?;
        let parent = self
            .parent
            .as_deref()
            .ok_or_else(|| Error::InvalidArgument {
                what: "macvlan parent",
                reason: format!("network {:?}: a parent interface is required", self.name),
            })?;
        validate_ifname(parent)?;
        let subnet: Ipv4Net = self.subnet.parse()?;
        let gateway = match self.gateway {
            Some(g) => g,
            None => subnet.nth(1).ok_or(Error::InvalidCidr {
                cidr: subnet.to_string(),
                reason: "no room for a gateway",
            })?,
        };
        let state_dir = self
            .state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(crate::DEFAULT_STATE_DIR));
        let ipam = Ipam::new(&state_dir, &self.name, subnet, gateway)?;
        let host = host_netns_or_current(self.host.as_ref())?;
        let mut nl = host.netlink()?;
        let link = nl
            .link_by_name(parent)?
            .ok_or_else(|| Error::InvalidArgument {
                what: "macvlan parent",
                reason: format!("network {:?}: no interface {parent:?} here", self.name),
            })?;
        crate::statedir::private_dir(&state_dir)?;
        ipam.init()?;
        if self.persist {
            let r = NetworkRecord {
                name: self.name.clone(),
                driver: "macvlan".into(),
                bridge: parent.to_string(),
                subnet: subnet.to_string(),
                gateway,
                masquerade: false,
                ip_forward: false,
                mtu: None,
                vxlan: None,
            };
            if let Err(e) = crate::network::write_record(&state_dir, &r) {
                let _ = ipam.destroy();
                return Err(e);
            }
        }
        tracing::info!(network = %self.name, parent, %subnet, %gateway, "macvlan network ready");
        Network::macvlan_parts(
            &self.name, parent, link.index, subnet, gateway, ipam, nl, state_dir, host,
        )
    }
}
