//! A small blocking rtnetlink client: one `NETLINK_ROUTE` socket, requests
//! encoded with `netlink-packet-route`, every object addressed by ifindex.
//!
//! Kernel facts: rtnetlink(7), netlink(7). A netlink socket stays bound to the
//! network namespace it was created in (kernel ≥ 2.6.24, `sk->sk_net`), so a
//! socket opened by a helper thread that entered another netns keeps working
//! in that netns from any thread: that is how [`crate::NetNs::netlink`] works.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_ECHO,
    NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind, InfoVeth, LinkAttribute,
    LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::{Error, Result};
use crate::validate_ifname;

/// Receive buffer: a dump chunk from the kernel is at most ~32 KiB per `recv`.
const RECV_BUF: usize = 64 * 1024;

/// A blocking rtnetlink socket, bound to the network namespace it was opened in.
///
/// ```no_run
/// use berth_netsetup::Netlink;
/// let mut nl = Netlink::open()?; // rtnetlink in the caller's network namespace
/// let lo = nl.link_index("lo")?.expect("every netns has lo");
/// nl.set_up(lo)?;
/// for link in nl.links()? {
///     println!("{} {} up={}", link.index, link.name, link.up);
/// }
/// # Ok::<(), berth_netsetup::Error>(())
/// ```
#[derive(Debug)]
#[doc(alias("rtnetlink", "NETLINK_ROUTE"))]
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

/// A link as seen by [`Netlink::links`].
///
/// ```no_run
/// let mut nl = berth_netsetup::Netlink::open()?;
/// if let Some(lo) = nl.link_by_name("lo")? {
///     assert_eq!(lo.name, "lo");
///     println!("lo: index {} mtu {:?}", lo.index, lo.mtu);
/// }
/// # Ok::<(), berth_netsetup::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfoSummary {
    /// ifindex.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// `IFLA_INFO_KIND` (`"bridge"`, `"veth"`, …), if any.
    pub kind: Option<String>,
    /// ifindex of the bridge this link is enslaved to, if any.
    pub controller: Option<u32>,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// MTU.
    pub mtu: Option<u32>,
    /// Hardware address.
    pub mac: Option<Vec<u8>>,
    /// `IFLA_LINK`: for a veth, the peer's ifindex (in the peer's netns).
    pub link: Option<u32>,
}

/// An IPv4/IPv6 route as seen by [`Netlink::routes`] (main table only).
///
/// ```no_run
/// let mut nl = berth_netsetup::Netlink::open()?;
/// for r in nl.routes(false)? {
///     println!("{}/{} via {:?} dev {:?}", r.destination, r.prefix_len, r.gateway, r.oif);
/// }
/// # Ok::<(), berth_netsetup::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSummary {
    /// Destination network (`0.0.0.0` with prefix 0 for a default route).
    pub destination: IpAddr,
    /// Destination prefix length.
    pub prefix_len: u8,
    /// Gateway, if any.
    pub gateway: Option<IpAddr>,
    /// Output interface.
    pub oif: Option<u32>,
}

/// The netlink socket calls (open and bind, send, recv), shared by the
/// rtnetlink and nftables clients: berth-sys's.
pub(crate) use berth_sys::netlink::{open_socket, recv as recv_datagram, send as send_datagram};

/// The netlink messages of one received datagram, each with its sequence
/// number (netlink(7): a 16-byte `nlmsghdr` whose first word is the
/// message length, messages padded to 4 bytes).
pub(crate) fn split_messages(buf: &[u8]) -> io::Result<Vec<(u32, &[u8])>> {
    let word = |at: usize| u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
    let mut out = Vec::new();
    let mut off = 0usize;
    while off + 16 <= buf.len() {
        let len = word(off) as usize;
        if len < 16 || off + len > buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "truncated netlink message",
            ));
        }
        out.push((word(off + 8), &buf[off..off + len]));
        off += (len + 3) & !3;
    }
    Ok(out)
}

fn family_of(ip: &IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

impl Netlink {
    /// Open a `NETLINK_ROUTE` socket in the calling thread's network namespace.
    ///
    /// ```no_run
    /// let mut nl = berth_netsetup::Netlink::open()?; // the caller's network namespace
    /// let n = nl.links()?.len();
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    pub fn open() -> Result<Self> {
        let fd = open_socket(berth_sys::netlink::NETLINK_ROUTE)
            .map_err(|(op, e)| Error::netlink(op, "NETLINK_ROUTE", e))?;
        Ok(Self {
            fd,
            seq: 0,
            buf: vec![0; RECV_BUF],
        })
    }

    /// Wrap an already open `NETLINK_ROUTE` socket (e.g. one received from a
    /// helper that opened it inside another netns).
    ///
    /// ```no_run
    /// use std::os::fd::{FromRawFd, OwnedFd};
    /// let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
    /// assert!(fd >= 0);
    /// let mut nl = berth_netsetup::Netlink::from_fd(unsafe { OwnedFd::from_raw_fd(fd) });
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    pub fn from_fd(fd: OwnedFd) -> Self {
        Self {
            fd,
            seq: 0,
            buf: vec![0; RECV_BUF],
        }
    }

    fn send(&mut self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        nl.finalize();
        let mut out = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut out);
        send_datagram(self.fd.as_fd(), &out)?;
        Ok(self.seq)
    }

    /// Receive replies to `seq` until an ACK/error (non-dump) or `NLMSG_DONE` (dump).
    fn recv_until_done(&mut self, seq: u32, dump: bool) -> io::Result<Vec<RouteNetlinkMessage>> {
        let mut out = Vec::new();
        loop {
            let n = recv_datagram(self.fd.as_fd(), &mut self.buf, false)?.unwrap_or(0);
            for (msg_seq, chunk) in split_messages(&self.buf[..n])? {
                if msg_seq != seq {
                    continue; // a stale reply to an earlier request
                }
                let parsed = match NetlinkMessage::<RouteNetlinkMessage>::deserialize(chunk) {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::debug!(error = %e, "skipping undecodable netlink message");
                        continue;
                    }
                };
                match parsed.payload {
                    NetlinkPayload::Error(err) => {
                        return match err.code {
                            None => Ok(out),
                            Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::InnerMessage(m) => {
                        out.push(m);
                        if !dump {
                            // A GET without DUMP answers with one message and then the ACK.
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    pub(crate) fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        let seq = self.send(msg, NLM_F_ACK | flags)?;
        self.recv_until_done(seq, false)
    }

    pub(crate) fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        let seq = self.send(msg, NLM_F_DUMP)?;
        self.recv_until_done(seq, true)
    }

    /// Send `msgs` in one `sendmsg(2)` — rtnetlink handles the messages of
    /// one skb in order (netlink_rcv_skb) and acknowledges each — and wait for
    /// every ACK. Returns the index and error of the first request that failed.
    fn request_many(
        &mut self,
        msgs: Vec<(RouteNetlinkMessage, u16)>,
    ) -> std::result::Result<(), (usize, io::Error)> {
        let n = msgs.len();
        let first = self.seq.wrapping_add(1);
        let mut out = Vec::with_capacity(256);
        for (msg, flags) in msgs {
            self.seq = self.seq.wrapping_add(1);
            let mut header = NetlinkHeader::default();
            header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
            header.sequence_number = self.seq;
            let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
            nl.finalize();
            let start = out.len();
            out.resize(start + nl.buffer_len(), 0);
            nl.serialize(&mut out[start..]);
        }
        send_datagram(self.fd.as_fd(), &out).map_err(|e| (0, e))?;
        let mut results: Vec<Option<Option<i32>>> = vec![None; n];
        let mut left = n;
        while left > 0 {
            let got = recv_datagram(self.fd.as_fd(), &mut self.buf, false)
                .map_err(|e| (0, e))?
                .unwrap_or(0);
            for (seq, chunk) in split_messages(&self.buf[..got]).map_err(|e| (0, e))? {
                let i = seq.wrapping_sub(first) as usize;
                if i >= n || results[i].is_some() {
                    continue; // a stale reply to an earlier request
                }
                if let Ok(m) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(chunk) {
                    if let NetlinkPayload::Error(err) = m.payload {
                        results[i] = Some(err.code.map(|c| -c.get()));
                        left -= 1;
                    }
                }
            }
        }
        for (i, r) in results.into_iter().enumerate() {
            if let Some(Some(errno)) = r {
                return Err((i, io::Error::from_raw_os_error(errno)));
            }
        }
        Ok(())
    }

    /// Configure a container's interface in one round trip: `lo` up (when
    /// `with_lo`), link `index` up, address `ip/prefix_len`, and a default
    /// route via `gateway` out of it — in that order (the route needs the
    /// address's prefix route, which needs the link up).
    ///
    /// ```no_run
    /// # let ns = berth_netsetup::NetNs::new_anonymous()?;
    /// # let mut nl = ns.netlink()?; // a throwaway netns: nothing touches the host
    /// let eth0 = nl.create_bridge("eth0", None)?; // any link will do
    /// nl.configure_interface(eth0, "10.88.0.2".parse().unwrap(), 16, Some("10.88.0.1".parse().unwrap()), true)?;
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    pub fn configure_interface(
        &mut self,
        index: u32,
        ip: IpAddr,
        prefix_len: u8,
        gateway: Option<IpAddr>,
        with_lo: bool,
    ) -> Result<()> {
        let up = |i: u32| {
            let mut m = LinkMessage::default();
            m.header.index = i;
            m.header.flags = LinkFlags::Up;
            m.header.change_mask = LinkFlags::Up;
            (RouteNetlinkMessage::SetLink(m), 0u16)
        };
        let mut msgs = Vec::with_capacity(4);
        let mut ops: Vec<(&'static str, String)> = Vec::with_capacity(4);
        if with_lo {
            // ifindex 1 is always `lo` (net/core/dev.c, loopback_net_init).
            msgs.push(up(1));
            ops.push(("RTM_SETLINK up", "lo".into()));
        }
        msgs.push(up(index));
        ops.push(("RTM_SETLINK up", format!("ifindex {index}")));
        msgs.push((
            RouteNetlinkMessage::NewAddress(Self::addr_message(index, ip, prefix_len)),
            NLM_F_CREATE | NLM_F_EXCL,
        ));
        ops.push((
            "RTM_NEWADDR",
            format!("{ip}/{prefix_len} on ifindex {index}"),
        ));
        if let Some(gw) = gateway {
            msgs.push((
                RouteNetlinkMessage::NewRoute(Self::default_route_message(gw, index)),
                NLM_F_CREATE | NLM_F_EXCL,
            ));
            ops.push((
                "RTM_NEWROUTE default",
                format!("via {gw} dev ifindex {index}"),
            ));
        }
        self.request_many(msgs).map_err(|(i, e)| {
            let (op, target) = ops.get(i).cloned().unwrap_or(("rtnetlink", String::new()));
            Error::netlink(op, target, e)
        })
    }

    /// ifindex of the interface `name`, or `None` when it does not exist.
    ///
    /// ```no_run
    /// # let ns = berth_netsetup::NetNs::new_anonymous()?;
    /// # let mut nl = ns.netlink()?; // a throwaway netns: nothing touches the host
    /// assert!(nl.link_index("lo")?.is_some());
    /// assert_eq!(nl.link_index("nope0")?, None);
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    #[doc(alias("if_nametoindex", "RTM_GETLINK"))]
    pub fn link_index(&mut self, name: &str) -> Result<Option<u32>> {
        Ok(self.link_by_name(name)?.map(|l| l.index))
    }

    /// The interface `name`, or `None` when it does not exist (`RTM_GETLINK`).
    ///
    /// ```no_run
    /// # let ns = berth_netsetup::NetNs::new_anonymous()?;
    /// # let mut nl = ns.netlink()?; // a throwaway netns: nothing touches the host
    /// let lo = nl.link_by_name("lo")?.expect("lo exists");
    /// println!("lo up: {}", lo.up);
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    pub fn link_by_name(&mut self, name: &str) -> Result<Option<LinkInfoSummary>> {
        validate_ifname(name)?;
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(RouteNetlinkMessage::GetLink(m), 0) {
            Ok(v) => Ok(v.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(summarize_link(&l)),
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(Error::netlink("RTM_GETLINK", name, e)),
        }
    }

    /// Every link of this namespace (`RTM_GETLINK` dump).
    ///
    /// ```no_run
    /// # let ns = berth_netsetup::NetNs::new_anonymous()?;
    /// # let mut nl = ns.netlink()?; // a throwaway netns: nothing touches the host
    /// for l in nl.links()? {
    ///     println!("{}: {} kind {:?}", l.index, l.name, l.kind);
    /// }
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    pub fn links(&mut self) -> Result<Vec<LinkInfoSummary>> {
        let v = self
            .dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))
            .map_err(|e| Error::netlink("RTM_GETLINK dump", "all links", e))?;
        Ok(v.iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(summarize_link(l)),
                _ => None,
            })
            .collect())
    }

    /// Create a bridge named `name` (down; see [`Netlink::set_up`]).
    /// Kernel: `CONFIG_BRIDGE`, ip-link(8) `type bridge`.
    ///
    /// ```no_run
    /// # let ns = berth_netsetup::NetNs::new_anonymous()?;
    /// # let mut nl = ns.netlink()?; // a throwaway netns: nothing touches the host
    /// let br = nl.create_bridge("br-demo", Some(1500))?;
    /// nl.set_up(br)?;
    /// nl.delete_link(br)?;
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    #[doc(alias("RTM_NEWLINK", "IFLA_INFO_KIND", "bridge"))]
    pub fn create_bridge(&mut self, name: &str, mtu: Option<u32>) -> Result<u32> {
        validate_ifname(name)?;
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        if let Some(mtu) = mtu {
            m.attributes.push(LinkAttribute::Mtu(mtu));
        }
        m.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL)
            .map_err(|e| map_exists(e, "RTM_NEWLINK bridge", name))?;
        self.link_index(name)?.ok_or_else(|| {
            Error::netlink(
                "RTM_GETLINK after create",
                name,
                io::Error::from_raw_os_error(libc::ENODEV),
            )
        })
    }

    /// Create a veth pair in one request: `host` here (enslaved to
    /// `controller` if given, up), and `peer` created directly inside the
    /// namespace `peer_netns` (an fd of `/proc/<pid>/ns/net` or a netns
    /// file), with optional MAC and MTU, down. Returns the ifindex of the
    /// host end and, when the kernel reports it (`IFLA_LINK`), of the peer in
    /// its namespace.
    ///
    /// Kernel: `CONFIG_VETH`; the peer's `IFLA_NET_NS_FD` is honoured since
    /// Linux 3.0 (veth(4), rtnetlink(7)).
    ///
    /// ```no_run
    /// # let ns = berth_netsetup::NetNs::new_anonymous()?;
    /// # let mut nl = ns.netlink()?; // a throwaway netns: nothing touches the host
    /// use berth_netsetup::VethSpec;
    /// let (host, peer) = nl.create_veth(&VethSpec {
    ///     host: "veth-a", peer: "veth-b", peer_netns: None, controller: None, peer_mac: None, mtu: None,
    /// })?;
    /// nl.delete_link(host)?; // the peer goes with it
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    #[doc(alias("RTM_NEWLINK", "veth", "VETH_INFO_PEER"))]
    pub fn create_veth(&mut self, spec: &VethSpec<'_>) -> Result<(u32, Option<u32>)> {
        validate_ifname(spec.host)?;
        validate_ifname(spec.peer)?;
        // The peer cannot be created up: veth_open() fails with ENOTCONN
        // while its partner is not registered yet (drivers/net/veth.c). Bring
        // it up afterwards from inside its namespace.
        let mut peer = LinkMessage::default();
        peer.attributes
            .push(LinkAttribute::IfName(spec.peer.to_string()));
        if let Some(fd) = spec.peer_netns {
            peer.attributes.push(LinkAttribute::NetNsFd(fd.as_raw_fd()));
        }
        if let Some(mac) = spec.peer_mac {
            peer.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        if let Some(mtu) = spec.mtu {
            peer.attributes.push(LinkAttribute::Mtu(mtu));
        }
        // One TX and one RX queue on each end, said up front. Without them
        // veth allocates one per possible CPU and then cuts the real number
        // down to 1 (veth_init_queues → netif_set_real_num_tx_queues), which
        // waits for an expedited RCU grace period per end while holding the
        // rtnl lock (drivers/net/veth.c; `ip link add … numtxqueues 1
        // numrxqueues 1`). Same queues in use, two grace periods less.
        peer.attributes.push(LinkAttribute::NumTxQueues(1));
        peer.attributes.push(LinkAttribute::NumRxQueues(1));
        let mut m = LinkMessage::default();
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        m.attributes
            .push(LinkAttribute::IfName(spec.host.to_string()));
        if let Some(mtu) = spec.mtu {
            m.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(c) = spec.controller {
            m.attributes.push(LinkAttribute::Controller(c));
        }
        m.attributes.push(LinkAttribute::NumTxQueues(1));
        m.attributes.push(LinkAttribute::NumRxQueues(1));
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        // NLM_F_ECHO: the kernel sends the new host end back (ifindex and
        // IFLA_LINK = the peer's ifindex) before the ACK, saving an
        // RTM_GETLINK round trip (rtnl_newlink honours it since Linux 6.3;
        // older kernels ignore the flag and the lookup below answers).
        let replies = self
            .request(
                RouteNetlinkMessage::NewLink(m),
                NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO,
            )
            .map_err(|e| {
                let both = format!(
                    "{} or its peer {} in the target netns",
                    spec.host, spec.peer
                );
                map_exists(e, "RTM_NEWLINK veth", &both)
            })?;
        let echoed = replies.iter().find_map(|r| match r {
            RouteNetlinkMessage::NewLink(l) => {
                let s = summarize_link(l);
                (s.name == spec.host && s.index != 0).then_some(s)
            }
            _ => None,
        });
        if let Some(l) = echoed {
            return Ok((l.index, l.link));
        }
        let l = self.link_by_name(spec.host)?.ok_or_else(|| {
            Error::netlink(
                "RTM_GETLINK after create",
                spec.host,
                io::Error::from_raw_os_error(libc::ENODEV),
            )
        })?;
        Ok((l.index, l.link))
    }

    fn set_link(
        &mut self,
        index: u32,
        op: &'static str,
        f: impl FnOnce(&mut LinkMessage),
    ) -> Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        f(&mut m);
        self.request(RouteNetlinkMessage::SetLink(m), 0)
            .map(|_| ())
            .map_err(|e| Error::netlink(op, format!("ifindex {index}"), e))
    }

    /// Bring a link up (`IFF_UP`).
    ///
    /// ```no_run
    /// # let ns = berth_netsetup::NetNs::new_anonymous()?;
    /// # let mut nl = ns.netlink()?; // a throwaway netns: nothing touches the host
    /// let lo = nl.link_index("lo")?.unwrap();
    /// nl.set_up(lo)?;
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    #[doc(alias("IFF_UP", "RTM_NEWLINK"))]
    pub fn set_up(&mut self, index: u32) -> Result<()> {
        self.set_link(index, "RTM_SETLINK up", |m| {
            m.header.flags = LinkFlags::Up;
            m.header.change_mask = LinkFlags::Up;
        })
    }

    /// Bring a link down.
    ///
    /// ```no_run
    /// # let ns = berth_netsetup::NetNs::new_anonymous()?;
    /// # let mut nl = ns.netlink()?; // a throwaway netns: nothing touches the host
    /// let br = nl.create_bridge("br-demo", None)?;
    /// nl.set_up(br)?;
    /// nl.set_down(br)?;
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    #[doc(alias("IFF_UP", "RTM_NEWLINK"))]
    pub fn set_down(&mut self, index: u32) -> Result<()> {
        self.set_link(index, "RTM_SETLINK down", |m| {
            m.header.flags = LinkFlags::empty();
            m.header.change_mask = LinkFlags::Up;
        })
    }

    /// Set a link's MTU.
    ///
    /// ```no_run
    /// # let ns = berth_netsetup::NetNs::new_anonymous()?;
    /// # let mut nl = ns.netlink()?; // a throwaway netns: nothing touches the host
    /// let br = nl.create_bridge("br-demo", None)?;
    /// nl.set_mtu(br, 1400)?;
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    #[doc(alias("IFLA_MTU"))]
    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<()> {
        self.set_link(index, "RTM_SETLINK mtu", |m| {
            m.attributes.push(LinkAttribute::Mtu(mtu))
        })
    }

    /// Set a link's hardware address.
    ///
    /// ```no_run
    /// # let ns = berth_netsetup::NetNs::new_anonymous()?;
    /// # let mut nl = ns.netlink()?; // a throwaway netns: nothing touches the host
    /// let br = nl.create_bridge("br-demo", None)?;
    /// nl.set_mac(br, [0x02, 0, 0, 0, 0, 1])?; // locally administered
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    #[doc(alias("IFLA_ADDRESS"))]
    pub fn set_mac(&mut self, index: u32, mac: [u8; 6]) -> Result<()> {
        self.set_link(index, "RTM_SETLINK address", |m| {
            m.attributes.push(LinkAttribute::Address(mac.to_vec()))
        })
    }

    /// Rename a link (it must be down).
    ///
    /// ```no_run
    /// # let ns = berth_netsetup::NetNs::new_anonymous()?;
    /// # let mut nl = ns.netlink()?; // a throwaway netns: nothing touches the host
    /// let br = nl.create_bridge("br-old", None)?;
    /// nl.rename(br, "br-new")?; // the link must be down
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    #[doc(alias("IFLA_IFNAME"))]
    pub fn rename(&mut self, index: u32, new_name: &str) -> Result<()> {
        validate_ifname(new_name)?;
        self.set_link(index, "RTM_SETLINK ifname", |m| {
            m.attributes
                .push(LinkAttribute::IfName(new_name.to_string()))
        })
    }

    /// Enslave a link to a bridge.
    ///
    /// ```no_run
    /// # let ns = berth_netsetup::NetNs::new_anonymous()?;
    /// # let mut nl = ns.netlink()?; // a throwaway netns: nothing touches the host
    /// use berth_netsetup::VethSpec;
    /// let br = nl.create_bridge("br-demo", None)?;
    /// let (host, _) = nl.create_veth(&VethSpec {
    ///     host: "veth-a", peer: "veth-b", peer_netns: None, controller: None, peer_mac: None, mtu: None,
    /// })?;
    /// nl.set_controller(host, br)?; // ip link set veth-a master br-demo
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    #[doc(alias("IFLA_MASTER"))]
    pub fn set_controller(&mut self, index: u32, bridge: u32) -> Result<()> {
        self.set_link(index, "RTM_SETLINK master", |m| {
            m.attributes.push(LinkAttribute::Controller(bridge))
        })
    }

    /// Set the hairpin mode of a bridge port (`ip link set <port> type
    /// bridge_slave hairpin on`): the bridge may send a frame back out of
    /// the port it came in on, which a container needs to reach itself
    /// through an address the host DNATs back to it (its own published
    /// port). Kernel: `IFLA_BRPORT_MODE` in `IFLA_INFO_SLAVE_DATA` of
    /// RTM_NEWLINK on an existing port (Linux ≥ 3.19,
    /// `br_port_slave_changelink`); the link must be enslaved to a bridge.
    ///
    /// ```no_run
    /// # let ns = berth_netsetup::NetNs::new_anonymous()?;
    /// # let mut nl = ns.netlink()?; // a throwaway netns: nothing touches the host
    /// use berth_netsetup::VethSpec;
    /// let br = nl.create_bridge("br-demo", None)?;
    /// let (host, _) = nl.create_veth(&VethSpec {
    ///     host: "veth-a", peer: "veth-b", peer_netns: None, controller: Some(br), peer_mac: None, mtu: None,
    /// })?;
    /// nl.set_hairpin(host, true)?;
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    #[doc(alias("IFLA_BRPORT_MODE", "hairpin_mode"))]
    pub fn set_hairpin(&mut self, index: u32, on: bool) -> Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
                on,
            )])),
        ]));
        self.request(RouteNetlinkMessage::NewLink(m), 0)
            .map(|_| ())
            .map_err(|e| Error::netlink("RTM_NEWLINK hairpin", format!("ifindex {index}"), e))
    }

    /// Move a link into another network namespace (by netns fd).
    ///
    /// ```no_run
    /// # let ns = berth_netsetup::NetNs::new_anonymous()?;
    /// # let mut nl = ns.netlink()?; // a throwaway netns: nothing touches the host
    /// use berth_netsetup::{NetNs, VethSpec};
    /// use std::os::fd::AsFd;
    /// let other = NetNs::new_anonymous()?;
    /// let (host, _) = nl.create_veth(&VethSpec {
    ///     host: "veth-a", peer: "veth-b", peer_netns: None, controller: None, peer_mac: None, mtu: None,
    /// })?;
    /// nl.move_to_netns(host, other.as_fd())?;
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    #[doc(alias("IFLA_NET_NS_FD"))]
    pub fn move_to_netns(&mut self, index: u32, netns: BorrowedFd<'_>) -> Result<()> {
        self.set_link(index, "RTM_SETLINK netns", |m| {
            m.attributes.push(LinkAttribute::NetNsFd(netns.as_raw_fd()))
        })
    }

    /// Delete a link (for a veth, both ends go). Synchronous in the kernel:
    /// it waits for an RCU grace period, tens of milliseconds on a busy host.
    ///
    /// A link that is already gone (`ENODEV`) is not an error: callers look
    /// a link up and then delete it, and in between the kernel may delete
    /// it itself — a veth goes with its peer when the container's network
    /// namespace is torn down (`cleanup_net`, asynchronous to the exit of
    /// the container's last process).
    ///
    /// ```no_run
    /// # let ns = berth_netsetup::NetNs::new_anonymous()?;
    /// # let mut nl = ns.netlink()?; // a throwaway netns: nothing touches the host
    /// let br = nl.create_bridge("br-demo", None)?;
    /// nl.delete_link(br)?;
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    #[doc(alias("RTM_DELLINK"))]
    pub fn delete_link(&mut self, index: u32) -> Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        match self.request(RouteNetlinkMessage::DelLink(m), 0) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => {
                tracing::debug!(index, "RTM_DELLINK: link already gone");
                Ok(())
            }
            Err(e) => Err(Error::netlink("RTM_DELLINK", format!("ifindex {index}"), e)),
        }
    }

    fn addr_message(index: u32, ip: IpAddr, prefix_len: u8) -> AddressMessage {
        let mut m = AddressMessage::default();
        m.header.family = family_of(&ip);
        m.header.prefix_len = prefix_len;
        m.header.index = index;
        match ip {
            IpAddr::V4(v4) => {
                m.attributes.push(AddressAttribute::Local(ip));
                m.attributes.push(AddressAttribute::Address(ip));
                if prefix_len < 31 {
                    let host_bits = 32 - u32::from(prefix_len);
                    let bcast = u32::from(v4) | ((1u64 << host_bits) - 1) as u32;
                    m.attributes
                        .push(AddressAttribute::Broadcast(Ipv4Addr::from(bcast)));
                }
            }
            IpAddr::V6(_) => {
                m.attributes.push(AddressAttribute::Address(ip));
                // No duplicate address detection: the address is ours by IPAM,
                // and DAD would keep it "tentative" (unusable) for ~1 s.
                m.attributes
                    .push(AddressAttribute::Flags(AddressFlags::Nodad));
            }
        }
        m
    }

    /// Add an IPv4 or IPv6 address to a link. With `exist_ok`, an address
    /// that is already there (`EEXIST`) is not an error.
    ///
    /// ```no_run
    /// # let ns = berth_netsetup::NetNs::new_anonymous()?;
    /// # let mut nl = ns.netlink()?; // a throwaway netns: nothing touches the host
    /// let br = nl.create_bridge("br-demo", None)?;
    /// nl.add_address(br, "10.99.0.1".parse().unwrap(), 24, false)?; // ip addr add 10.99.0.1/24 dev br-demo
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    #[doc(alias("RTM_NEWADDR"))]
    pub fn add_address(
        &mut self,
        index: u32,
        ip: IpAddr,
        prefix_len: u8,
        exist_ok: bool,
    ) -> Result<()> {
        let m = Self::addr_message(index, ip, prefix_len);
        match self.request(
            RouteNetlinkMessage::NewAddress(m),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Ok(_) => Ok(()),
            Err(e) if exist_ok && e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(Error::netlink(
                "RTM_NEWADDR",
                format!("{ip}/{prefix_len} on ifindex {index}"),
                e,
            )),
        }
    }

    /// Remove an address from a link.
    ///
    /// ```no_run
    /// # let ns = berth_netsetup::NetNs::new_anonymous()?;
    /// # let mut nl = ns.netlink()?; // a throwaway netns: nothing touches the host
    /// let br = nl.create_bridge("br-demo", None)?;
    /// let ip = "10.99.0.1".parse().unwrap();
    /// nl.add_address(br, ip, 24, false)?;
    /// nl.del_address(br, ip, 24)?;
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    #[doc(alias("RTM_DELADDR"))]
    pub fn del_address(&mut self, index: u32, ip: IpAddr, prefix_len: u8) -> Result<()> {
        let m = Self::addr_message(index, ip, prefix_len);
        self.request(RouteNetlinkMessage::DelAddress(m), 0)
            .map(|_| ())
            .map_err(|e| {
                Error::netlink(
                    "RTM_DELADDR",
                    format!("{ip}/{prefix_len} on ifindex {index}"),
                    e,
                )
            })
    }

    /// Addresses of a link (or all links with `index` = 0), as (ifindex, address, prefix).
    ///
    /// ```no_run
    /// # let ns = berth_netsetup::NetNs::new_anonymous()?;
    /// # let mut nl = ns.netlink()?; // a throwaway netns: nothing touches the host
    /// ns.set_lo_up()?;
    /// let lo = nl.link_index("lo")?.unwrap();
    /// for (_, ip, prefix) in nl.addresses(lo)? {
    ///     println!("{ip}/{prefix}"); // 127.0.0.1/8, ::1/128
    /// }
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    #[doc(alias("RTM_GETADDR"))]
    pub fn addresses(&mut self, index: u32) -> Result<Vec<(u32, IpAddr, u8)>> {
        let v = self
            .dump(RouteNetlinkMessage::GetAddress(AddressMessage::default()))
            .map_err(|e| Error::netlink("RTM_GETADDR dump", "all addresses", e))?;
        let mut out = Vec::new();
        for m in v {
            if let RouteNetlinkMessage::NewAddress(a) = m {
                if index != 0 && a.header.index != index {
                    continue;
                }
                let ip = a.attributes.iter().find_map(|at| match at {
                    AddressAttribute::Local(ip) => Some(*ip),
                    _ => None,
                });
                let ip = ip.or_else(|| {
                    a.attributes.iter().find_map(|at| match at {
                        AddressAttribute::Address(ip) => Some(*ip),
                        _ => None,
                    })
                });
                if let Some(ip) = ip {
                    out.push((a.header.index, ip, a.header.prefix_len));
                }
            }
        }
        Ok(out)
    }

    fn default_route_message(gateway: IpAddr, oif: u32) -> RouteMessage {
        let mut m = RouteMessage::default();
        m.header.address_family = family_of(&gateway);
        m.header.destination_prefix_length = 0;
        m.header.table = RouteHeader::RT_TABLE_MAIN;
        m.header.protocol = RouteProtocol::Boot;
        m.header.scope = RouteScope::Universe;
        m.header.kind = RouteType::Unicast;
        let gw = match gateway {
            IpAddr::V4(v) => RouteAddress::Inet(v),
            IpAddr::V6(v) => RouteAddress::Inet6(v),
        };
        m.attributes.push(RouteAttribute::Gateway(gw));
        m.attributes.push(RouteAttribute::Oif(oif));
        m
    }

    /// Add a default route via `gateway` out of `oif` (main table).
    ///
    /// ```no_run
    /// # let ns = berth_netsetup::NetNs::new_anonymous()?;
    /// # let mut nl = ns.netlink()?; // a throwaway netns: nothing touches the host
    /// let br = nl.create_bridge("br-demo", None)?;
    /// nl.set_up(br)?;
    /// nl.add_address(br, "10.99.0.2".parse().unwrap(), 24, false)?;
    /// nl.add_default_route("10.99.0.1".parse().unwrap(), br)?; // ip route add default via 10.99.0.1
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    #[doc(alias("RTM_NEWROUTE"))]
    pub fn add_default_route(&mut self, gateway: IpAddr, oif: u32) -> Result<()> {
        let m = Self::default_route_message(gateway, oif);
        self.request(RouteNetlinkMessage::NewRoute(m), NLM_F_CREATE | NLM_F_EXCL)
            .map(|_| ())
            .map_err(|e| {
                Error::netlink(
                    "RTM_NEWROUTE default",
                    format!("via {gateway} dev ifindex {oif}"),
                    e,
                )
            })
    }

    /// Routes of the main table for one family.
    ///
    /// ```no_run
    /// # let ns = berth_netsetup::NetNs::new_anonymous()?;
    /// # let mut nl = ns.netlink()?; // a throwaway netns: nothing touches the host
    /// for r in nl.routes(false)? {
    ///     println!("{}/{} via {:?}", r.destination, r.prefix_len, r.gateway);
    /// }
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    #[doc(alias("RTM_GETROUTE"))]
    pub fn routes(&mut self, v6: bool) -> Result<Vec<RouteSummary>> {
        let mut q = RouteMessage::default();
        q.header.address_family = if v6 {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        let v = self
            .dump(RouteNetlinkMessage::GetRoute(q))
            .map_err(|e| Error::netlink("RTM_GETROUTE dump", "main table", e))?;
        let mut out = Vec::new();
        for m in v {
            let RouteNetlinkMessage::NewRoute(r) = m else {
                continue;
            };
            let mut table = u32::from(r.header.table);
            let mut dst = None;
            let mut gw = None;
            let mut oif = None;
            for a in &r.attributes {
                match a {
                    RouteAttribute::Table(t) => table = *t,
                    RouteAttribute::Destination(RouteAddress::Inet(d)) => {
                        dst = Some(IpAddr::V4(*d))
                    }
                    RouteAttribute::Destination(RouteAddress::Inet6(d)) => {
                        dst = Some(IpAddr::V6(*d))
                    }
                    RouteAttribute::Gateway(RouteAddress::Inet(g)) => gw = Some(IpAddr::V4(*g)),
                    RouteAttribute::Gateway(RouteAddress::Inet6(g)) => gw = Some(IpAddr::V6(*g)),
                    RouteAttribute::Oif(o) => oif = Some(*o),
                    _ => {}
                }
            }
            if table != u32::from(RouteHeader::RT_TABLE_MAIN) || r.header.kind != RouteType::Unicast
            {
                continue;
            }
            let destination = dst.unwrap_or(if v6 {
                IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            });
            out.push(RouteSummary {
                destination,
                prefix_len: r.header.destination_prefix_length,
                gateway: gw,
                oif,
            });
        }
        Ok(out)
    }
}

impl AsFd for Netlink {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Netlink {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// What [`Netlink::create_veth`] creates.
///
/// ```no_run
/// use berth_netsetup::{NetNs, VethSpec};
/// let ns = NetNs::new_anonymous()?;
/// let mut nl = berth_netsetup::Netlink::open()?;
/// let (host, _) = nl.create_veth(&VethSpec {
///     host: "veth-demo",
///     peer: "eth0",
///     peer_netns: Some(std::os::fd::AsFd::as_fd(&ns)),
///     controller: None,
///     peer_mac: None,
///     mtu: Some(1500),
/// })?;
/// nl.delete_link(host)?; // removes both ends
/// # Ok::<(), berth_netsetup::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
#[doc(alias("veth", "VETH_INFO_PEER"))]
pub struct VethSpec<'a> {
    /// Name of the end that stays in this netns.
    pub host: &'a str,
    /// Name of the other end (e.g. `eth0`).
    pub peer: &'a str,
    /// Namespace to create the peer in (`None`: this one).
    pub peer_netns: Option<BorrowedFd<'a>>,
    /// Bridge ifindex to enslave the host end to.
    pub controller: Option<u32>,
    /// Peer's MAC address.
    pub peer_mac: Option<[u8; 6]>,
    /// MTU of both ends.
    pub mtu: Option<u32>,
}

pub(crate) fn map_exists(e: io::Error, op: &'static str, name: &str) -> Error {
    if e.raw_os_error() == Some(libc::EEXIST) {
        Error::LinkExists {
            name: name.to_string(),
        }
    } else {
        Error::netlink(op, name, e)
    }
}

fn summarize_link(l: &LinkMessage) -> LinkInfoSummary {
    let mut s = LinkInfoSummary {
        index: l.header.index,
        name: String::new(),
        kind: None,
        controller: None,
        up: l.header.flags.contains(LinkFlags::Up),
        mtu: None,
        mac: None,
        link: None,
    };
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => s.name = n.clone(),
            LinkAttribute::Controller(c) => s.controller = Some(*c),
            LinkAttribute::Mtu(m) => s.mtu = Some(*m),
            LinkAttribute::Link(l) => s.link = Some(*l),
            LinkAttribute::Address(m) => s.mac = Some(m.clone()),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        s.kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::split_messages;

    fn header(len: u32, seq: u32) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(&len.to_ne_bytes());
        h.extend_from_slice(&[0; 4]); // type, flags
        h.extend_from_slice(&seq.to_ne_bytes());
        h.extend_from_slice(&[0; 4]); // port id
        h
    }

    #[test]
    fn messages_are_split_at_their_padded_lengths() {
        // A 17-byte message (padded to 20), then a bare 16-byte header.
        let mut buf = header(17, 7);
        buf.extend_from_slice(&[0xaa, 0, 0, 0]);
        buf.extend_from_slice(&header(16, 8));
        let m = split_messages(&buf).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].0, m[0].1.len(), m[0].1[16]), (7, 17, 0xaa));
        assert_eq!((m[1].0, m[1].1.len()), (8, 16));
        assert!(split_messages(&[]).unwrap().is_empty());
    }

    #[test]
    fn a_truncated_or_short_length_is_an_error() {
        let buf = header(32, 1); // claims 32 bytes, has 16
        assert!(split_messages(&buf).is_err());
        let buf = header(8, 1); // shorter than its own header
        assert!(split_messages(&buf).is_err());
    }
}
