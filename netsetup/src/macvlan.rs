//! macvlan links: a container interface with its own MAC address on a
//! parent (host) interface, created directly inside the container's netns.
//!
//! Kernel: `CONFIG_MACVLAN` (drivers/net/macvlan.c), ip-link(8) `type
//! macvlan`. The parent (`IFLA_LINK`) is looked up in the namespace of the
//! socket that sends the request, the new link is registered in the one of
//! `IFLA_NET_NS_FD` (rtnl_newlink, Linux ≥ 3.0), so no move is needed.

use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoMacVlan, LinkAttribute, LinkInfo, LinkMessage, MacVlanMode,
};
use netlink_packet_route::RouteNetlinkMessage;

use crate::error::{Error, Result};
use crate::netlink::{map_exists, Netlink};
use crate::validate_ifname;

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
