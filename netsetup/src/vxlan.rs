//! VXLAN overlay networks: one layer-2 network spanning several hosts. Each
//! host keeps its containers on a local bridge (the [`BridgeNetwork`]
//! engine) and joins that bridge to the other hosts' through a VXLAN device
//! with static peers; every host hands out addresses from its own part of
//! the subnet, so no two hosts give out the same one.
//!
//! Kernel: `CONFIG_VXLAN` (drivers/net/vxlan/), ip-link(8) `type vxlan`,
//! bridge(8) `fdb append`. Broadcast, unknown unicast and multicast frames
//! are replicated to every peer by the all-zero FDB entries
//! (`00:00:00:00:00:00 dst <peer>`, head-end replication, Linux ≥ 3.11 for
//! several default destinations); learning is off by default, so a host on
//! the underlay that is not a member cannot redirect traffic by sending
//! VXLAN packets with forged inner source MACs.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use netlink_packet_core::{NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkInfo, LinkMessage,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::cidr::Ipv4Net;
use crate::error::{Error, Result};
use crate::netlink::{map_exists, LinkInfoSummary, Netlink};
use crate::netns::{refuse_router_advertisements, NetNs};
use crate::network::{
    host_netns_or_current, Attach, Attachment, BridgeNetwork, Network, NetworkRecord, VxlanRecord,
};
use crate::{validate_id, validate_ifname};

/// The IANA VXLAN port (RFC 7348). The kernel's own default is still the
/// pre-standard 8472 when `IFLA_VXLAN_PORT` is absent, so berth always sets it.
pub const VXLAN_PORT: u16 = 4789;

/// Bytes a VXLAN packet over IPv4 adds to the inner frame's IP packet:
/// inner Ethernet header 14 + VXLAN 8 + UDP 8 + outer IPv4 20 (the
/// kernel's `VXLAN_HEADROOM`, include/net/vxlan.h).
pub const VXLAN_OVERHEAD: u32 = 50;

/// The all-zero MAC of the default (flood) FDB entries.
const ZERO_MAC: [u8; 6] = [0; 6];

/// What [`Netlink::create_vxlan`] creates.
#[derive(Debug, Clone, Copy)]
pub struct VxlanSpec<'a> {
    /// Interface name.
    pub name: &'a str,
    /// VXLAN network identifier (24 bits).
    pub vni: u32,
    /// Source address of the outer packets (this host's underlay address).
    pub local: Ipv4Addr,
    /// Underlay interface (`IFLA_VXLAN_LINK`), if any.
    pub underlay: Option<u32>,
    /// UDP destination port (and the port it listens on).
    pub port: u16,
    /// Learn remote MAC → VTEP from received packets.
    pub learning: bool,
    /// MTU.
    pub mtu: Option<u32>,
}

/// One forwarding entry of a VXLAN device, as read by [`Netlink::vxlan_fdb`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbEntry {
    /// The (inner) MAC address; all zero for the default (flood) entries.
    pub mac: [u8; 6],
    /// The remote VTEP it is sent to.
    pub dst: Option<Ipv4Addr>,
}

impl Netlink {
    /// Create a VXLAN device (down) and return its ifindex. A taken name
    /// is [`Error::LinkExists`]; a VNI already used on the same port and
    /// local address is `EEXIST` from the kernel too.
    ///
    /// ```no_run
    /// use berth_netsetup::{Netlink, VxlanSpec, VXLAN_PORT};
    /// use std::net::Ipv4Addr;
    /// # fn main() -> Result<(), berth_netsetup::Error> {
    /// let mut nl = Netlink::open()?;
    /// let index = nl.create_vxlan(&VxlanSpec {
    ///     name: "vx42",
    ///     vni: 42,
    ///     local: Ipv4Addr::new(192, 0, 2, 1),
    ///     underlay: None,
    ///     port: VXLAN_PORT,
    ///     learning: false,
    ///     mtu: Some(1450),
    /// })?;
    /// nl.fdb_append(index, [0; 6], Ipv4Addr::new(192, 0, 2, 2))?;
    /// # Ok(()) }
    /// ```
    pub fn create_vxlan(&mut self, spec: &VxlanSpec<'_>) -> Result<u32> {
        validate_ifname(spec.name)?;
        if spec.vni > 0x00ff_ffff {
            return Err(Error::InvalidArgument {
                what: "VXLAN id",
                reason: format!("{} does not fit in 24 bits", spec.vni),
            });
        }
        let mut m = LinkMessage::default();
        m.attributes
            .push(LinkAttribute::IfName(spec.name.to_string()));
        if let Some(mtu) = spec.mtu {
            m.attributes.push(LinkAttribute::Mtu(mtu));
        }
        let mut data = vec![
            InfoVxlan::Id(spec.vni),
            InfoVxlan::Local(spec.local),
            InfoVxlan::Port(spec.port),
            InfoVxlan::Learning(spec.learning),
        ];
        if let Some(link) = spec.underlay {
            data.push(InfoVxlan::Link(link));
        }
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Vxlan),
            LinkInfo::Data(InfoData::Vxlan(data)),
        ]));
        if let Err(e) = self.request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL) {
            // EEXIST also means "this VNI is taken on this port and local
            // address" (vxlan_vni_in_use, drivers/net/vxlan/vxlan_core.c).
            if e.raw_os_error() == Some(libc::EEXIST) && self.link_index(spec.name)?.is_none() {
                return Err(Error::InvalidArgument {
                    what: "VXLAN id",
                    reason: format!(
                        "{} is already used by another VXLAN device on {}:{} ({})",
                        spec.vni, spec.local, spec.port, spec.name
                    ),
                });
            }
            return Err(map_exists(e, "RTM_NEWLINK vxlan", spec.name));
        }
        self.link_index(spec.name)?.ok_or_else(|| {
            Error::netlink(
                "RTM_GETLINK after create",
                spec.name,
                std::io::Error::from_raw_os_error(libc::ENODEV),
            )
        })
    }

    /// The VNI, local address and port of VXLAN device `name`, or `None`
    /// when there is no such link or it is not a VXLAN device.
    pub fn vxlan_config(&mut self, name: &str) -> Result<Option<(u32, Option<Ipv4Addr>, u16)>> {
        validate_ifname(name)?;
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        let replies = match self.request(RouteNetlinkMessage::GetLink(m), 0) {
            Ok(v) => v,
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Ok(None),
            Err(e) => return Err(Error::netlink("RTM_GETLINK", name, e)),
        };
        for r in replies {
            let RouteNetlinkMessage::NewLink(l) = r else {
                continue;
            };
            for a in &l.attributes {
                let LinkAttribute::LinkInfo(infos) = a else {
                    continue;
                };
                for i in infos {
                    let LinkInfo::Data(InfoData::Vxlan(data)) = i else {
                        continue;
                    };
                    let (mut vni, mut local, mut port) = (None, None, VXLAN_PORT);
                    for d in data {
                        match d {
                            InfoVxlan::Id(v) => vni = Some(*v),
                            InfoVxlan::Local(a) => local = Some(*a),
                            InfoVxlan::Port(p) => port = *p,
                            _ => {}
                        }
                    }
                    return Ok(vni.map(|v| (v, local, port)));
                }
            }
        }
        Ok(None)
    }

    fn fdb_message(index: u32, mac: [u8; 6], dst: Ipv4Addr) -> NeighbourMessage {
        let mut m = NeighbourMessage::default();
        m.header.family = AddressFamily::Bridge;
        m.header.ifindex = index;
        // What `bridge fdb append … dst …` sends: permanent, on the device
        // itself (NTF_SELF), not on the bridge it is a port of.
        m.header.state = NeighbourState::Permanent;
        m.header.flags = NeighbourFlags::Own;
        m.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        m.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(dst)));
        m
    }

    /// `bridge fdb append MAC dev <index> dst DST`: send frames for `mac`
    /// (all zero: broadcast, multicast and unknown unicast) to the VTEP
    /// `dst` as well. An entry that is already there is not an error.
    pub fn fdb_append(&mut self, index: u32, mac: [u8; 6], dst: Ipv4Addr) -> Result<()> {
        let m = Self::fdb_message(index, mac, dst);
        match self.request(
            RouteNetlinkMessage::NewNeighbour(m),
            NLM_F_CREATE | NLM_F_APPEND,
        ) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(Error::netlink(
                "RTM_NEWNEIGH fdb append",
                format!("dst {dst} on ifindex {index}"),
                e,
            )),
        }
    }

    /// `bridge fdb del MAC dev <index> dst DST`: remove that one
    /// destination. One that is already gone is not an error.
    pub fn fdb_delete(&mut self, index: u32, mac: [u8; 6], dst: Ipv4Addr) -> Result<()> {
        let m = Self::fdb_message(index, mac, dst);
        match self.request(RouteNetlinkMessage::DelNeighbour(m), 0) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            Err(e) => Err(Error::netlink(
                "RTM_DELNEIGH fdb",
                format!("dst {dst} on ifindex {index}"),
                e,
            )),
        }
    }

    /// The forwarding entries of VXLAN device `index` (one per destination).
    pub fn vxlan_fdb(&mut self, index: u32) -> Result<Vec<FdbEntry>> {
        let mut q = NeighbourMessage::default();
        q.header.family = AddressFamily::Bridge;
        let v = self
            .dump(RouteNetlinkMessage::GetNeighbour(q))
            .map_err(|e| Error::netlink("RTM_GETNEIGH dump", "bridge fdb", e))?;
        let mut out = Vec::new();
        for m in v {
            let RouteNetlinkMessage::NewNeighbour(n) = m else {
                continue;
            };
            if n.header.ifindex != index {
                continue;
            }
            let mut e = FdbEntry {
                mac: ZERO_MAC,
                dst: None,
            };
            for a in &n.attributes {
                match a {
                    NeighbourAttribute::LinkLayerAddress(l) if l.len() == 6 => {
                        e.mac.copy_from_slice(l)
                    }
                    // AF_BRIDGE messages carry NDA_DST undecoded.
                    NeighbourAttribute::Destination(NeighbourAddress::Other(b)) if b.len() == 4 => {
                        e.dst = Some(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(d)) => e.dst = Some(*d),
                    _ => {}
                }
            }
            out.push(e);
        }
        Ok(out)
    }
}

/// One host of an overlay: its underlay (VTEP) address and the part of the
/// overlay subnet it hands out addresses from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverlayMember {
    /// The host's underlay address (source and destination of VXLAN packets).
    pub vtep: Ipv4Addr,
    /// Its address range inside the overlay subnet.
    pub range: Ipv4Net,
}

impl OverlayMember {
    /// Parse a members file: one host per line, `VTEP-ADDRESS RANGE-CIDR`,
    /// `#` starts a comment, blank lines are skipped. The operator gives
    /// every host the same file; each finds itself by its own address.
    ///
    /// ```
    /// use berth_netsetup::OverlayMember;
    /// let m = OverlayMember::parse_list("# ov1\n192.0.2.1 10.200.1.0/24\n192.0.2.2 10.200.2.0/24\n")?;
    /// assert_eq!(m.len(), 2);
    /// assert_eq!(m[1].range.to_string(), "10.200.2.0/24");
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    pub fn parse_list(text: &str) -> Result<Vec<OverlayMember>> {
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad = |reason: String| Error::InvalidArgument {
                what: "overlay members",
                reason: format!("line {}: {reason}", n + 1),
            };
            let mut words = line.split_whitespace();
            let (Some(vtep), Some(range), None) = (words.next(), words.next(), words.next()) else {
                return Err(bad(format!("{line:?} is not \"VTEP-ADDRESS RANGE-CIDR\"")));
            };
            let vtep: Ipv4Addr = vtep
                .parse()
                .map_err(|_| bad(format!("{vtep:?} is not an IPv4 address")))?;
            let range: Ipv4Net = range.parse().map_err(|e: Error| bad(e.to_string()))?;
            out.push(OverlayMember { vtep, range });
        }
        Ok(out)
    }
}

/// Check a member list against the overlay subnet: every range inside it,
/// with room for a gateway and a container; no two ranges overlapping; no
/// VTEP twice.
fn check_members(subnet: Ipv4Net, members: &[OverlayMember]) -> Result<()> {
    let bad = |reason: String| Error::InvalidArgument {
        what: "overlay members",
        reason,
    };
    if members.is_empty() {
        return Err(bad("no member hosts".into()));
    }
    for (i, m) in members.iter().enumerate() {
        if m.range.prefix_len() < subnet.prefix_len() || !subnet.contains(m.range.network()) {
            return Err(bad(format!(
                "range {} of {} is not inside the subnet {subnet}",
                m.range, m.vtep
            )));
        }
        if m.range.prefix_len() > 30 {
            return Err(bad(format!(
                "range {} of {} is smaller than a /30",
                m.range, m.vtep
            )));
        }
        for o in &members[..i] {
            if o.vtep == m.vtep {
                return Err(bad(format!("{} is listed twice", m.vtep)));
            }
            if o.range.overlaps(&m.range) {
                return Err(bad(format!(
                    "ranges {} ({}) and {} ({}) overlap: two hosts would hand out the same addresses",
                    o.range, o.vtep, m.range, m.vtep
                )));
            }
        }
    }
    Ok(())
}

/// Builder of a VXLAN overlay network on this host; [`VxlanNetwork::ensure`]
/// makes it exist.
///
/// ```no_run
/// use berth_netsetup::{Attach, NetNs, VxlanNetwork};
/// # fn main() -> Result<(), berth_netsetup::Error> {
/// // The same members file on every host: "192.0.2.1 10.200.1.0/24" …
/// let ov = VxlanNetwork::new("ov1", 4200)
///     .subnet("10.200.0.0/16")
///     .members_file("/etc/berth/ov1.members")
///     .ensure()?;
/// let att = ov.attach(&NetNs::from_pid(4242)?, &Attach::new("web-1"))?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct VxlanNetwork {
    name: String,
    vni: u32,
    subnet: String,
    local: Option<Ipv4Addr>,
    members: Vec<OverlayMember>,
    members_file: Option<PathBuf>,
    port: u16,
    learning: bool,
    bridge: Option<String>,
    vxlan_ifname: Option<String>,
    underlay_mtu: Option<u32>,
    state_dir: Option<PathBuf>,
    host: Option<NetNs>,
    masquerade: bool,
    ip_forward: bool,
    persist: bool,
}

impl VxlanNetwork {
    /// Record the overlay as a user-defined network (driver `vxlan`, see
    /// [`BridgeNetwork::persist`]): [`crate::list_networks`] shows it,
    /// [`VxlanNetwork::from_record`] rebuilds it in another process,
    /// [`Overlay::remove`] deletes the record. Default off.
    ///
    /// ```
    /// let b = berth_netsetup::VxlanNetwork::new("ov1", 4200).persist(true);
    /// ```
    pub fn persist(mut self, on: bool) -> Self {
        self.persist = on;
        self
    }

    /// The builder of a recorded overlay (driver `vxlan`), ready for
    /// [`state_dir`](Self::state_dir) and [`ensure`](Self::ensure); a
    /// record without its overlay part, or with a bad member line, is an
    /// error naming the network.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), berth_netsetup::Error> {
    /// let dir = berth_netsetup::DEFAULT_STATE_DIR;
    /// if let Some(r) = berth_netsetup::network_record(dir, "ov1")? {
    ///     let ov = berth_netsetup::VxlanNetwork::from_record(&r)?.state_dir(dir).ensure()?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn from_record(r: &NetworkRecord) -> Result<Self> {
        let v = r.vxlan.as_ref().ok_or_else(|| Error::InvalidArgument {
            what: "network record",
            reason: format!("network {:?} (driver vxlan) has no overlay part", r.name),
        })?;
        let mut b = Self::new(&r.name, v.vni)
            .subnet(&r.subnet)
            .bridge(&r.bridge)
            .vxlan_ifname(&v.ifname)
            .port(v.port)
            .masquerade(r.masquerade)
            .ip_forward(r.ip_forward)
            .persist(true);
        if let Some(l) = v.local {
            b = b.local(l);
        }
        if let Some(f) = &v.members_file {
            b = b.members_file(f);
        }
        b.members = OverlayMember::parse_list(&v.members.join("\n"))?;
        if let Some(mtu) = r.mtu {
            b.underlay_mtu = Some(mtu + VXLAN_OVERHEAD);
        }
        Ok(b)
    }

    /// Overlay `name` (1–64 of `[A-Za-z0-9_.-]`) with VXLAN id `vni`; by
    /// default subnet `10.200.0.0/16`, bridge `name`, VXLAN device
    /// `vx<vni>`, port [`VXLAN_PORT`], learning off, masquerade on.
    ///
    /// ```
    /// let b = berth_netsetup::VxlanNetwork::new("ov1", 4200);
    /// ```
    pub fn new(name: &str, vni: u32) -> Self {
        Self {
            name: name.to_string(),
            vni,
            subnet: "10.200.0.0/16".to_string(),
            local: None,
            members: Vec::new(),
            members_file: None,
            port: VXLAN_PORT,
            learning: false,
            bridge: None,
            vxlan_ifname: None,
            underlay_mtu: None,
            state_dir: None,
            host: None,
            masquerade: true,
            ip_forward: true,
            persist: false,
        }
    }

    /// The overlay's whole subnet (the same on every host).
    ///
    /// ```
    /// let b = berth_netsetup::VxlanNetwork::new("ov1", 4200).subnet("10.201.0.0/16");
    /// ```
    pub fn subnet(mut self, cidr: &str) -> Self {
        self.subnet = cidr.to_string();
        self
    }

    /// Add a member host: its underlay address and its address range.
    ///
    /// ```
    /// use std::net::Ipv4Addr;
    /// let b = berth_netsetup::VxlanNetwork::new("ov1", 4200)
    ///     .member(Ipv4Addr::new(192, 0, 2, 1), "10.200.1.0/24".parse().unwrap())
    ///     .member(Ipv4Addr::new(192, 0, 2, 2), "10.200.2.0/24".parse().unwrap());
    /// ```
    pub fn member(mut self, vtep: Ipv4Addr, range: Ipv4Net) -> Self {
        self.members.push(OverlayMember { vtep, range });
        self
    }

    /// Read the members from a file the operator distributes to every host
    /// (format: [`OverlayMember::parse_list`]), in addition to those given
    /// with [`VxlanNetwork::member`].
    ///
    /// ```
    /// let b = berth_netsetup::VxlanNetwork::new("ov1", 4200).members_file("/etc/berth/ov1.members");
    /// ```
    pub fn members_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.members_file = Some(path.into());
        self
    }

    /// This host's underlay address (default: the member address that is
    /// configured on an interface of the host netns).
    ///
    /// ```
    /// let b = berth_netsetup::VxlanNetwork::new("ov1", 4200)
    ///     .local(std::net::Ipv4Addr::new(192, 0, 2, 1));
    /// ```
    pub fn local(mut self, addr: Ipv4Addr) -> Self {
        self.local = Some(addr);
        self
    }

    /// UDP port (default [`VXLAN_PORT`], 4789).
    ///
    /// ```
    /// let b = berth_netsetup::VxlanNetwork::new("ov1", 4200).port(8472);
    /// ```
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Let the VXLAN device learn which VTEP a MAC lives behind from the
    /// packets it receives (default off: frames to a remote container go to
    /// every peer, and only members' packets can steer traffic).
    ///
    /// ```
    /// let b = berth_netsetup::VxlanNetwork::new("ov1", 4200).learning(true);
    /// ```
    pub fn learning(mut self, on: bool) -> Self {
        self.learning = on;
        self
    }

    /// Name of the local bridge (default: the network name).
    ///
    /// ```
    /// let b = berth_netsetup::VxlanNetwork::new("ov1", 4200).bridge("br-ov1");
    /// ```
    pub fn bridge(mut self, ifname: &str) -> Self {
        self.bridge = Some(ifname.to_string());
        self
    }

    /// Name of the VXLAN device (default `vx<vni>`).
    ///
    /// ```
    /// let b = berth_netsetup::VxlanNetwork::new("ov1", 4200).vxlan_ifname("vx-ov1");
    /// ```
    pub fn vxlan_ifname(mut self, ifname: &str) -> Self {
        self.vxlan_ifname = Some(ifname.to_string());
        self
    }

    /// MTU of the underlay (default: the MTU of the interface holding the
    /// local address). The VXLAN device, the bridge and the containers'
    /// veths get this minus [`VXLAN_OVERHEAD`].
    ///
    /// ```
    /// let b = berth_netsetup::VxlanNetwork::new("ov1", 4200).underlay_mtu(9000);
    /// ```
    pub fn underlay_mtu(mut self, mtu: u32) -> Self {
        self.underlay_mtu = Some(mtu);
        self
    }

    /// IPAM state directory (see [`BridgeNetwork::state_dir`]).
    ///
    /// ```
    /// let b = berth_netsetup::VxlanNetwork::new("ov1", 4200).state_dir("/var/lib/myapp/net");
    /// ```
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// Build the overlay in namespace `ns` instead of the caller's.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), berth_netsetup::Error> {
    /// let host = berth_netsetup::NetNs::from_path("/run/netns/host1")?;
    /// let b = berth_netsetup::VxlanNetwork::new("ov1", 4200).host_netns(&host)?;
    /// # Ok(()) }
    /// ```
    pub fn host_netns(mut self, ns: &NetNs) -> Result<Self> {
        self.host = Some(ns.try_clone()?);
        Ok(self)
    }

    /// Masquerade traffic leaving the overlay subnet (default on).
    ///
    /// ```
    /// let b = berth_netsetup::VxlanNetwork::new("ov1", 4200).masquerade(false);
    /// ```
    pub fn masquerade(mut self, on: bool) -> Self {
        self.masquerade = on;
        self
    }

    /// Set `net.ipv4.ip_forward = 1` in the host netns (default on).
    ///
    /// ```
    /// let b = berth_netsetup::VxlanNetwork::new("ov1", 4200).ip_forward(false);
    /// ```
    pub fn ip_forward(mut self, on: bool) -> Self {
        self.ip_forward = on;
        self
    }

    fn all_members(&self) -> Result<Vec<OverlayMember>> {
        let mut members = self.members.clone();
        if let Some(p) = &self.members_file {
            let text = std::fs::read_to_string(p).map_err(|e| Error::io("read", p, e))?;
            members.extend(OverlayMember::parse_list(&text)?);
        }
        Ok(members)
    }

    /// Make the overlay exist on this host, idempotently: check the members
    /// (ranges inside the subnet, none overlapping, this host among them —
    /// before anything is created), then the local bridge network with this
    /// host's range as its IPAM pool and gateway on its first address
    /// ([`BridgeNetwork::ip_range`]), the VXLAN device enslaved to the
    /// bridge, MTUs (underlay − 50), and one flood FDB entry per peer
    /// (entries of hosts no longer listed are removed). On error, what this
    /// call created is removed again.
    pub fn ensure(&self) -> Result<Overlay> {
        let (subnet, members) = self.checked_members()?;
        let bridge = self.bridge.clone().unwrap_or_else(|| self.name.clone());
        validate_ifname(&bridge)?;
        let vx_name = self
            .vxlan_ifname
            .clone()
            .unwrap_or_else(|| format!("vx{}", self.vni));
        validate_ifname(&vx_name)?;
        let host = host_netns_or_current(self.host.as_ref())?;
        let mut nl = host.netlink()?;
        // Which member is this host: the given address, or the member
        // address configured here. Its interface is the underlay.
        let addrs = nl.addresses(0)?;
        let (me, underlay) = local_member(self.local, &members, &addrs)?;
        let underlay_mtu = match self.underlay_mtu {
            Some(m) => m,
            None => nl
                .links()?
                .into_iter()
                .find(|l| l.index == underlay)
                .and_then(|l| l.mtu)
                .unwrap_or(1500),
        };
        let mtu = overlay_mtu(underlay_mtu)?;
        let existing_vx = self.existing_vxlan(&mut nl, &vx_name, me)?;
        let bridge_existed = nl.link_index(&bridge)?.is_some();

        let network = self.bridge_network(&bridge, me, mtu, &host)?;
        let peers: Vec<Ipv4Addr> = members
            .iter()
            .filter(|m| m.vtep != me.vtep)
            .map(|m| m.vtep)
            .collect();
        let mut created_vx = None;
        let dev = VxlanDevice {
            name: &vx_name,
            me,
            underlay,
            mtu,
        };
        let res = self.attach_vxlan(
            &mut nl,
            &host,
            existing_vx.as_ref().map(|l| l.index),
            &dev,
            &network,
            &peers,
            &mut created_vx,
        );
        let vxlan_index = match res {
            Ok(i) => i,
            Err(e) => {
                if let Some(i) = created_vx {
                    let _ = nl.delete_link(i);
                }
                // The bridge network goes too if this call made it — and no
                // concurrent ensure of the same overlay made it work since
                // (its VXLAN device would be there).
                if !bridge_existed && matches!(nl.link_index(&vx_name), Ok(None)) {
                    if network.ip_forward_was() == Some(false) {
                        let _ = host.set_ip_forward(false);
                    }
                    let _ = network.remove();
                }
                return Err(e);
            }
        };
        if self.persist {
            let r = self.record(&bridge, subnet, &network, mtu, &vx_name);
            if let Err(e) = crate::network::write_record(network.state_dir(), &r) {
                if created_vx.is_some() {
                    let _ = nl.delete_link(vxlan_index);
                }
                if !bridge_existed {
                    let _ = network.remove();
                }
                return Err(e);
            }
        }
        tracing::info!(network = %self.name, vni = self.vni, local = %me.vtep, range = %me.range, peers = peers.len(), mtu, "vxlan overlay ready");
        Ok(Overlay {
            network,
            vxlan_ifname: vx_name,
            vxlan_index,
            me,
            members,
            mtu,
        })
    }

    /// The name, VNI, subnet and member list checked before anything is
    /// looked up or created.
    fn checked_members(&self) -> Result<(Ipv4Net, Vec<OverlayMember>)> {
        validate_id("network name", &self.name)?;
        if self.vni > 0x00ff_ffff {
            return Err(Error::InvalidArgument {
                what: "VXLAN id",
                reason: format!("{} does not fit in 24 bits", self.vni),
            });
        }
        let subnet: Ipv4Net = self.subnet.parse()?;
        let members = self.all_members()?;
        check_members(subnet, &members)?;
        Ok((subnet, members))
    }

    /// The VXLAN device `vx_name` if it exists: refused unless it is a VXLAN
    /// device of this overlay (from an earlier ensure).
    fn existing_vxlan(
        &self,
        nl: &mut Netlink,
        vx_name: &str,
        me: OverlayMember,
    ) -> Result<Option<LinkInfoSummary>> {
        let existing_vx = nl.link_by_name(vx_name)?;
        if let Some(l) = &existing_vx {
            if l.kind.as_deref() != Some("vxlan") {
                return Err(Error::LinkExists {
                    name: vx_name.to_string(),
                });
            }
            // Ours from an earlier ensure only if it is the same overlay.
            let want = (self.vni, Some(me.vtep), self.port);
            if let Some(have) = nl.vxlan_config(vx_name)? {
                if have != want {
                    return Err(Error::InvalidArgument {
                        what: "VXLAN device",
                        reason: format!(
                            "{vx_name} exists with VNI {} local {:?} port {}, not VNI {} local {} port {}",
                            have.0, have.1, have.2, self.vni, me.vtep, self.port
                        ),
                    });
                }
            }
        }
        Ok(existing_vx)
    }

    /// The local bridge network: this host's range as its IPAM pool, the
    /// overlay's MTU.
    fn bridge_network(
        &self,
        bridge: &str,
        me: OverlayMember,
        mtu: u32,
        host: &NetNs,
    ) -> Result<Network> {
        let mut b = BridgeNetwork::new(&self.name)
            .bridge(bridge)
            .subnet(&self.subnet)
            .ip_range(&me.range.to_string())
            .mtu(mtu)
            .masquerade(self.masquerade)
            .ip_forward(self.ip_forward)
            .host_netns(host)?;
        if let Some(d) = &self.state_dir {
            b = b.state_dir(d);
        }
        b.ensure()
    }

    /// The VXLAN device (made unless `existing`; its index in `created`
    /// when this call made it) as a bridge port, up, with one flood entry
    /// per peer. Returns its index.
    #[allow(clippy::too_many_arguments)]
    fn attach_vxlan(
        &self,
        nl: &mut Netlink,
        host: &NetNs,
        existing: Option<u32>,
        dev: &VxlanDevice<'_>,
        network: &Network,
        peers: &[Ipv4Addr],
        created: &mut Option<u32>,
    ) -> Result<u32> {
        let vx_name = dev.name;
        let index = match existing {
            Some(i) => i,
            None => {
                let made = nl.create_vxlan(&VxlanSpec {
                    name: vx_name,
                    vni: self.vni,
                    local: dev.me.vtep,
                    underlay: Some(dev.underlay),
                    port: self.port,
                    learning: self.learning,
                    mtu: Some(dev.mtu),
                });
                match made {
                    Ok(i) => {
                        *created = Some(i);
                        i
                    }
                    // A concurrent ensure of the same overlay made it meanwhile.
                    Err(Error::LinkExists { .. })
                        if nl.vxlan_config(vx_name)?
                            == Some((self.vni, Some(dev.me.vtep), self.port)) =>
                    {
                        nl.link_index(vx_name)?.ok_or(Error::LinkExists {
                            name: vx_name.to_string(),
                        })?
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        // A bridge port: it must not take routes or addresses from
        // router advertisements that containers send.
        host.run_local(|| refuse_router_advertisements(&[vx_name]))??;
        nl.set_controller(index, network.bridge_index())?;
        nl.set_up(index)?;
        sync_peers(nl, index, peers)?;
        Ok(index)
    }

    /// The state record of this overlay.
    fn record(
        &self,
        bridge: &str,
        subnet: Ipv4Net,
        network: &Network,
        mtu: u32,
        vx_name: &str,
    ) -> NetworkRecord {
        NetworkRecord {
            name: self.name.clone(),
            driver: "vxlan".into(),
            bridge: bridge.to_string(),
            subnet: subnet.to_string(),
            gateway: network.gateway(),
            masquerade: self.masquerade,
            ip_forward: self.ip_forward,
            mtu: Some(mtu),
            vxlan: Some(VxlanRecord {
                vni: self.vni,
                local: self.local,
                members: self
                    .members
                    .iter()
                    .map(|m| format!("{} {}", m.vtep, m.range))
                    .collect(),
                members_file: self.members_file.clone(),
                port: self.port,
                ifname: vx_name.to_string(),
            }),
        }
    }
}

/// Make the flood entries of VXLAN device `index` exactly `peers`.
fn sync_peers(nl: &mut Netlink, index: u32, peers: &[Ipv4Addr]) -> Result<()> {
    let have: Vec<Ipv4Addr> = nl
        .vxlan_fdb(index)?
        .into_iter()
        .filter(|e| e.mac == ZERO_MAC)
        .filter_map(|e| e.dst)
        .collect();
    for gone in have.iter().filter(|d| !peers.contains(d)) {
        nl.fdb_delete(index, ZERO_MAC, *gone)?;
    }
    for new in peers.iter().filter(|p| !have.contains(p)) {
        nl.fdb_append(index, ZERO_MAC, *new)?;
    }
    Ok(())
}

/// A VXLAN overlay as it exists on this host (see [`VxlanNetwork::ensure`]).
/// Dropping it leaves the overlay in place; [`Overlay::remove`] tears this
/// host's part down.
#[derive(Debug, Clone)]
pub struct Overlay {
    network: Network,
    vxlan_ifname: String,
    vxlan_index: u32,
    me: OverlayMember,
    members: Vec<OverlayMember>,
    mtu: u32,
}

impl Overlay {
    /// The local bridge network (attach, IPAM, gc by container id).
    pub fn network(&self) -> &Network {
        &self.network
    }
    /// The VXLAN device's name.
    pub fn vxlan_ifname(&self) -> &str {
        &self.vxlan_ifname
    }
    /// The VXLAN device's ifindex.
    pub fn vxlan_index(&self) -> u32 {
        self.vxlan_index
    }
    /// This host's underlay address.
    pub fn local(&self) -> Ipv4Addr {
        self.me.vtep
    }
    /// This host's address range (its IPAM pool).
    pub fn range(&self) -> Ipv4Net {
        self.me.range
    }
    /// Every member host, this one included.
    pub fn members(&self) -> &[OverlayMember] {
        &self.members
    }
    /// MTU of the VXLAN device, the bridge and the containers' interfaces.
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    /// Attach a container to the overlay, as [`Network::attach`] does: it
    /// gets an address from this host's range, the overlay's prefix length
    /// and MTU, and a default route via this host's gateway.
    ///
    /// ```no_run
    /// use berth_netsetup::{Attach, NetNs, VxlanNetwork};
    /// # fn main() -> Result<(), berth_netsetup::Error> {
    /// let ov = VxlanNetwork::new("ov1", 4200).members_file("/etc/berth/ov1.members").ensure()?;
    /// let att = ov.attach(&NetNs::from_pid(4242)?, &Attach::new("web-1"))?;
    /// # Ok(()) }
    /// ```
    pub fn attach(&self, netns: &NetNs, opts: &Attach) -> Result<Attachment> {
        self.network.attach(netns, opts)
    }

    /// The peers the VXLAN device floods to now (read from the kernel).
    pub fn peers(&self) -> Result<Vec<Ipv4Addr>> {
        let mut nl = self.network.host_netns().netlink()?;
        Ok(nl
            .vxlan_fdb(self.vxlan_index)?
            .into_iter()
            .filter(|e| e.mac == ZERO_MAC)
            .filter_map(|e| e.dst)
            .collect())
    }

    /// Apply a new member list (e.g. the operator distributed a new file):
    /// flood entries for new hosts are added, those of hosts no longer
    /// listed removed. This host's own entry and range must not change.
    pub fn update_members(&mut self, members: Vec<OverlayMember>) -> Result<()> {
        check_members(self.network.subnet(), &members)?;
        if !members.contains(&self.me) {
            return Err(Error::InvalidArgument {
                what: "overlay members",
                reason: format!(
                    "this host ({} {}) must stay a member with the same range",
                    self.me.vtep, self.me.range
                ),
            });
        }
        let peers: Vec<Ipv4Addr> = members
            .iter()
            .filter(|m| m.vtep != self.me.vtep)
            .map(|m| m.vtep)
            .collect();
        let mut nl = self.network.host_netns().netlink()?;
        sync_peers(&mut nl, self.vxlan_index, &peers)?;
        self.members = members;
        Ok(())
    }

    /// Re-read a members file and apply it ([`Overlay::update_members`]).
    pub fn reload_members_file(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let p = path.as_ref();
        let text = std::fs::read_to_string(p).map_err(|e| Error::io("read", p, e))?;
        self.update_members(OverlayMember::parse_list(&text)?)
    }

    /// Tear this host's part down: the VXLAN device (with its FDB), then
    /// the bridge network ([`Network::remove`]: bridge, masquerade, IPAM
    /// state). Continues past errors and reports them all.
    pub fn remove(self) -> Result<()> {
        let mut errs = Vec::new();
        match self.network.host_netns().netlink() {
            Ok(mut nl) => match nl.link_by_name(&self.vxlan_ifname) {
                Ok(Some(l)) if l.kind.as_deref() == Some("vxlan") => {
                    if let Err(e) = nl.delete_link(l.index) {
                        errs.push(e);
                    }
                }
                Ok(_) => {}
                Err(e) => errs.push(e),
            },
            Err(e) => errs.push(e),
        }
        if let Err(e) = self.network.remove() {
            errs.push(e);
        }
        match errs.len() {
            0 => Ok(()),
            1 => Err(errs.remove(0)),
            _ => Err(Error::Teardown(errs)),
        }
    }
}

/// The VXLAN device of this host: its name, this host's member, the
/// underlay interface, the overlay MTU.
struct VxlanDevice<'a> {
    name: &'a str,
    me: OverlayMember,
    underlay: u32,
    mtu: u32,
}

/// This host's member and the index of its underlay interface: the member
/// whose VTEP is `local` when given, else the only member whose VTEP is
/// among `addrs` (the host's `(ifindex, address, prefix)`s).
fn local_member(
    local: Option<Ipv4Addr>,
    members: &[OverlayMember],
    addrs: &[(u32, IpAddr, u8)],
) -> Result<(OverlayMember, u32)> {
    let on_host = |a: Ipv4Addr| {
        addrs
            .iter()
            .find(|(_, ip, _)| *ip == IpAddr::V4(a))
            .map(|(i, _, _)| *i)
    };
    let me = match local {
        Some(l) => members
            .iter()
            .find(|m| m.vtep == l)
            .copied()
            .ok_or_else(|| Error::InvalidArgument {
                what: "overlay members",
                reason: format!("the local address {l} is not a member"),
            })?,
        None => {
            let mine: Vec<_> = members
                .iter()
                .filter(|m| on_host(m.vtep).is_some())
                .collect();
            match mine.as_slice() {
                [m] => **m,
                [] => {
                    return Err(Error::InvalidArgument {
                        what: "overlay members",
                        reason: "no member address is configured on this host".into(),
                    })
                }
                _ => {
                    return Err(Error::InvalidArgument {
                        what: "overlay members",
                        reason: "several member addresses are on this host: give .local()".into(),
                    })
                }
            }
        }
    };
    let underlay = on_host(me.vtep).ok_or_else(|| Error::InvalidArgument {
        what: "overlay local address",
        reason: format!("{} is not configured on an interface here", me.vtep),
    })?;
    Ok((me, underlay))
}

/// The MTU inside VXLAN over an underlay of `underlay_mtu`: at least 576.
fn overlay_mtu(underlay_mtu: u32) -> Result<u32> {
    underlay_mtu
        .checked_sub(VXLAN_OVERHEAD)
        .filter(|m| *m >= 576)
        .ok_or_else(|| Error::InvalidArgument {
            what: "underlay MTU",
            reason: format!("{underlay_mtu} leaves less than 576 bytes inside VXLAN"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn member_lists_parse_and_bad_lines_are_named() {
        let m = OverlayMember::parse_list(
            "# hosts of ov1\n\n192.0.2.1 10.200.1.0/24  # first\n 192.0.2.2\t10.200.2.0/24\n",
        )
        .unwrap();
        assert_eq!(
            m,
            vec![
                OverlayMember {
                    vtep: Ipv4Addr::new(192, 0, 2, 1),
                    range: net("10.200.1.0/24")
                },
                OverlayMember {
                    vtep: Ipv4Addr::new(192, 0, 2, 2),
                    range: net("10.200.2.0/24")
                },
            ]
        );
        let e = OverlayMember::parse_list("192.0.2.1 10.200.1.0/24\n192.0.2.x 10.200.2.0/24")
            .unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(OverlayMember::parse_list("192.0.2.1").is_err());
        assert!(OverlayMember::parse_list("192.0.2.1 10.200.1.0/24 extra").is_err());
        assert!(OverlayMember::parse_list("192.0.2.1 10.200.1.1/24").is_err());
    }

    #[test]
    fn member_ranges_must_be_disjoint_and_inside_the_subnet() {
        let s = net("10.200.0.0/16");
        let m = |v: u8, r: &str| OverlayMember {
            vtep: Ipv4Addr::new(192, 0, 2, v),
            range: net(r),
        };
        assert!(check_members(s, &[m(1, "10.200.1.0/24"), m(2, "10.200.2.0/24")]).is_ok());
        let e = check_members(s, &[m(1, "10.200.0.0/23"), m(2, "10.200.1.0/24")]).unwrap_err();
        assert!(e.to_string().contains("overlap"), "{e}");
        let e = check_members(s, &[m(1, "10.201.1.0/24")]).unwrap_err();
        assert!(e.to_string().contains("not inside"), "{e}");
        let e = check_members(s, &[m(1, "10.200.1.0/24"), m(1, "10.200.2.0/24")]).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
        assert!(check_members(s, &[m(1, "10.200.1.0/31")]).is_err());
        assert!(check_members(s, &[]).is_err());
    }

    #[test]
    fn the_local_member_is_found_by_address_or_given() {
        let m = |v: u8, r: &str| OverlayMember {
            vtep: Ipv4Addr::new(192, 0, 2, v),
            range: net(r),
        };
        let members = [m(1, "10.200.1.0/24"), m(2, "10.200.2.0/24")];
        let addr = |i: u32, v: u8| (i, IpAddr::V4(Ipv4Addr::new(192, 0, 2, v)), 24);
        assert_eq!(
            local_member(None, &members, &[addr(7, 2)]).unwrap(),
            (members[1], 7)
        );
        assert_eq!(
            local_member(
                Some(Ipv4Addr::new(192, 0, 2, 1)),
                &members,
                &[addr(3, 1), addr(4, 2)]
            )
            .unwrap(),
            (members[0], 3)
        );
        let e = local_member(None, &members, &[]).unwrap_err();
        assert!(e.to_string().contains("no member address"), "{e}");
        let e = local_member(None, &members, &[addr(3, 1), addr(4, 2)]).unwrap_err();
        assert!(e.to_string().contains("several member"), "{e}");
        let e = local_member(Some(Ipv4Addr::new(192, 0, 2, 9)), &members, &[]).unwrap_err();
        assert!(e.to_string().contains("not a member"), "{e}");
        let e =
            local_member(Some(Ipv4Addr::new(192, 0, 2, 1)), &members, &[addr(4, 2)]).unwrap_err();
        assert!(e.to_string().contains("not configured"), "{e}");
    }

    #[test]
    fn the_overlay_mtu_leaves_room_for_vxlan() {
        assert_eq!(overlay_mtu(1500).unwrap(), 1450);
        assert_eq!(overlay_mtu(626).unwrap(), 576);
        assert!(overlay_mtu(625).is_err());
        assert!(overlay_mtu(10).is_err());
    }
}
