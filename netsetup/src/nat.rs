//! NAT and published ports with nftables, in a table of berth's own
//! (`ip berth`); no other table is ever read for changes or touched.
//!
//! The table is programmed over netlink (`NETLINK_NETFILTER`, see the
//! `nftnl` module): every change is one batch — one `sendmsg(2)`, one atomic
//! transaction, every ACK checked — and rules are read back with one
//! `NFT_MSG_GETRULE` dump. No `nft` process is started. The socket is opened
//! inside the firewall's network namespace (a netlink socket stays bound to
//! the netns it was created in). Changes are planned from a snapshot taken at
//! one ruleset generation and committed only if the ruleset is still at it
//! (`NFNL_BATCH_GENID`), else planned again, so processes with different lock
//! files never act on a stale view. The rules are encoded the way nft(8) encodes
//! the same text, so `nft list ruleset` shows them as below. Kernel:
//! nf_tables with the nat, fib and masquerade expressions (Linux ≥ 4.18 for
//! `fib` in nat chains; nft(8)).
//!
//! Layout:
//! ```text
//! table ip berth {
//!   chain published   { tcp dport 8080 dnat to 10.88.0.2:80 comment "berth ctr=web-1 port=tcp/*:8080" }
//!   chain prerouting  { type nat hook prerouting priority dstnat; fib daddr type local jump published }
//!   chain output      { type nat hook output priority -100;      fib daddr type local jump published }
//!   chain postrouting { type nat hook postrouting priority srcnat;
//!                       ip saddr 10.88.0.0/16 ip daddr != 10.88.0.0/16 masquerade comment "berth net=demo"
//!                       ip saddr 10.88.0.0/16 ip daddr 10.88.0.0/16 ct status dnat masquerade comment "berth net=demo"
//!                       ip saddr 127.0.0.0/8 ip daddr 10.88.0.0/16 masquerade comment "berth net=demo" }
//!   chain guard       { type filter hook prerouting priority raw;
//!                       iifname "demo" ip daddr 127.0.0.0/8 drop comment "berth net=demo" }
//! }
//! ```
//! Published ports answer on every local address of the host (`fib daddr
//! type local`), or only on `host_ip` when one is given: from other hosts and
//! other netns (prerouting) and from the host itself (output), loopback
//! included, as `docker run -p 127.0.0.1:8080:80` does. A connection to
//! 127.0.0.1 is DNATed in the output chain and leaves through the bridge
//! with a loopback source: the bridge has `route_localnet = 1` (set by
//! [`crate::BridgeNetwork::ensure`]; without it the kernel refuses that
//! route and the reply), and the third postrouting rule masquerades the
//! loopback source to the bridge address, so the container answers the
//! gateway. This is Docker's kernel path (`userland-proxy: false`), not its
//! `docker-proxy`: berth is a library without a daemon, a proxy would be a
//! process per port that must outlive the program that started the
//! container, copy every byte, and hide the client's address.
//! `route_localnet` would also let a container send to the host's
//! 127.0.0.0/8 through the bridge (the CVE-2020-8558 pattern); the `guard`
//! chain drops that before routing (priority raw, before the NAT of the
//! replies, whose destination is still the bridge address there).
//! Containers reach published ports of their own network through a host
//! address too (hairpin: masqueraded, so replies come back through the host;
//! the hairpin rule is there whether or not the network masquerades what
//! leaves it, and a container reaching its own port also needs its bridge
//! port in hairpin mode, [`crate::Attach::hairpin`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::cidr::Ipv4Net;
use crate::error::{Error, Result};
use crate::ipam::lock_file;
use crate::netns::NetNs;
use crate::nftnl::{
    dnat_to, match_ct_dnat, match_daddr_local, match_dport, match_iifname, match_ip_prefix, Batch,
    BatchError, Expr, Hook, NfSocket, RuleInfo,
};
use crate::validate_id;

/// The nftables table berth owns (family `ip`).
pub const NFT_TABLE: &str = "berth";

/// Transport protocol of a published port.
///
/// ```
/// use berth_netsetup::{PortMapping, Protocol};
/// assert_eq!(PortMapping::udp(5353, 53).proto, Protocol::Udp);
/// assert_eq!(Protocol::Tcp.as_str(), "tcp");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// `"tcp"` or `"udp"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A published port: host `[host_ip:]host_port` → container `container_port`.
///
/// ```
/// use berth_netsetup::PortMapping;
/// // docker run -p 127.0.0.1:8080:80
/// let p = PortMapping::tcp(8080, 80).host_ip("127.0.0.1".parse().unwrap());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[doc(alias("DNAT", "publish"))]
pub struct PortMapping {
    /// TCP or UDP.
    pub proto: Protocol,
    /// Only traffic to this host address (`None`: any local address).
    pub host_ip: Option<Ipv4Addr>,
    /// Port on the host.
    pub host_port: u16,
    /// Port inside the container.
    pub container_port: u16,
}

impl PortMapping {
    /// TCP `host_port` → `container_port`.
    ///
    /// ```
    /// let p = berth_netsetup::PortMapping::tcp(8080, 80);
    /// assert_eq!(p.host_port, 8080);
    /// ```
    pub fn tcp(host_port: u16, container_port: u16) -> Self {
        Self {
            proto: Protocol::Tcp,
            host_ip: None,
            host_port,
            container_port,
        }
    }
    /// UDP `host_port` → `container_port`.
    ///
    /// ```
    /// let p = berth_netsetup::PortMapping::udp(5353, 53);
    /// assert_eq!(p.proto, berth_netsetup::Protocol::Udp);
    /// ```
    pub fn udp(host_port: u16, container_port: u16) -> Self {
        Self {
            proto: Protocol::Udp,
            ..Self::tcp(host_port, container_port)
        }
    }
    /// Only for traffic to `ip` on the host.
    ///
    /// ```
    /// use std::net::Ipv4Addr;
    /// let p = berth_netsetup::PortMapping::tcp(8080, 80).host_ip(Ipv4Addr::new(192, 0, 2, 1));
    /// assert_eq!(p.host_ip, Some(Ipv4Addr::new(192, 0, 2, 1)));
    /// ```
    pub fn host_ip(mut self, ip: Ipv4Addr) -> Self {
        self.host_ip = Some(ip);
        self
    }

    fn host_ip_text(&self) -> String {
        self.host_ip
            .map_or_else(|| "*".to_string(), |i| i.to_string())
    }

    fn validate(&self) -> Result<()> {
        if self.host_port == 0 || self.container_port == 0 {
            return Err(Error::InvalidArgument {
                what: "published port",
                reason: format!("{self:?}: port 0 cannot be published"),
            });
        }
        Ok(())
    }
}

/// One rule of berth's table, as read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftRule {
    /// Chain name.
    pub chain: String,
    /// Rule handle.
    pub handle: u64,
    /// Rule comment (berth tags every rule).
    pub comment: Option<String>,
}

impl From<RuleInfo> for NftRule {
    fn from(r: RuleInfo) -> Self {
        Self {
            chain: r.chain,
            handle: r.handle,
            comment: r.comment,
        }
    }
}

/// The nftables driver for one network namespace (normally the host's).
/// It keeps one `NETLINK_NETFILTER` socket, opened inside that namespace on
/// first use.
///
/// When a `Firewall` of the process's own network namespace is dropped, its
/// socket is kept open for the next one (one per process): the kernel makes the
/// release of a `NETLINK_NETFILTER` socket wait for nftables' pending
/// destroy work, i.e. for an RCU grace period after any rule deletion
/// (`nft_rcv_nl_event` → `nf_tables_trans_destroy_flush_work`,
/// net/netfilter/nf_tables_api.c), about 10 ms here. A process that starts
/// containers with published ports one after another then pays that once,
/// when it exits, not per container.
///
/// ```no_run
/// use berth_netsetup::{Firewall, PortMapping};
/// let fw = Firewall::new("/run/berth/net");
/// fw.ensure_base()?; // table inet berth
/// fw.publish("web-1", "10.88.0.2".parse().unwrap(), &[PortMapping::tcp(8080, 80)])?; // NFT_MSG_NEWRULE
/// for rule in fw.rules()? {
///     println!("{rule:?}");
/// }
/// fw.unpublish("web-1")?;
/// # Ok::<(), berth_netsetup::Error>(())
/// ```
#[derive(Debug)]
#[doc(alias("nftables", "NFT_MSG_NEWRULE", "NETLINK_NETFILTER"))]
pub struct Firewall {
    netns: Option<NetNs>,
    /// `(st_dev, st_ino)` of the namespace the socket is (to be) opened in.
    netns_id: Option<(u64, u64)>,
    lock: PathBuf,
    sock: Mutex<Option<NfSocket>>,
}

/// `(pid that parked it, netns id, socket)`.
type Parked = (u32, (u64, u64), NfSocket);

/// A socket of a dropped [`Firewall`] of the process's own network
/// namespace. One slot: a process normally drives one host firewall.
static PARKED: Mutex<Option<Parked>> = Mutex::new(None);

/// `(st_dev, st_ino)` of the nsfs file at `path` (namespaces(7)).
fn ns_id_of_path(path: &str) -> Option<(u64, u64)> {
    berth_sys::fs::dev_ino(std::path::Path::new(path))
}

/// `(st_dev, st_ino)` of the namespace file `ns`.
pub(crate) fn ns_id_of(ns: &NetNs) -> Option<(u64, u64)> {
    berth_sys::fs::fd_dev_ino(std::os::fd::AsFd::as_fd(ns))
}

/// Keep `sock` (healthy: every reply read) for the next [`Firewall`] of the
/// same namespace, if that is the process's own network namespace — never a
/// namespace of its own: the socket would keep that namespace alive after
/// whoever made it deleted it. Kept per process (pid): a forked child must
/// not share the socket with its parent.
fn park(id: Option<(u64, u64)>, sock: NfSocket) {
    let Some(id) = id else { return };
    if ns_id_of_path("/proc/self/ns/net") != Some(id) {
        return;
    }
    let mut g = PARKED.lock().unwrap_or_else(|p| p.into_inner());
    *g = Some((std::process::id(), id, sock));
}

/// The parked socket of namespace `id`, if any (and parked by this process).
fn unpark(id: Option<(u64, u64)>) -> Option<NfSocket> {
    let id = id?;
    let mut g = PARKED.lock().unwrap_or_else(|p| p.into_inner());
    match g.take() {
        Some((pid, pid_ns, s)) if pid == std::process::id() && pid_ns == id => Some(s),
        other => {
            *g = other;
            None
        }
    }
}

/// The socket a dropped [`Firewall`] of namespace `ns` left open, if any.
pub(crate) fn parked_socket(ns: &NetNs) -> Option<NfSocket> {
    unpark(ns_id_of(ns))
}

impl Drop for Firewall {
    fn drop(&mut self) {
        let sock = self
            .sock
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(s) = sock {
            park(self.netns_id, s);
        }
    }
}

fn port_comment(container: &str, p: &PortMapping) -> String {
    format!(
        "berth ctr={container} port={}/{}:{}",
        p.proto,
        p.host_ip_text(),
        p.host_port
    )
}

fn net_comment(network: &str) -> String {
    format!("berth net={network}")
}

fn ctr_of_comment(c: &str) -> Option<&str> {
    c.strip_prefix("berth ctr=")?.split(' ').next()
}

/// Parse `port=<proto>/<ip|*>:<port>` out of a berth rule comment.
fn port_of_comment(c: &str) -> Option<(String, Option<Ipv4Addr>, u16)> {
    let rest = c.split(" port=").nth(1)?;
    let (proto, rest) = rest.split_once('/')?;
    let (ip, port) = rest.rsplit_once(':')?;
    let ip = if ip == "*" {
        None
    } else {
        Some(ip.parse().ok()?)
    };
    Some((proto.to_string(), ip, port.parse().ok()?))
}

/// The base chains are in place: each hook chain has its jump rule.
fn base_present(rules: &[RuleInfo]) -> bool {
    rules.iter().any(|r| r.chain == "prerouting") && rules.iter().any(|r| r.chain == "output")
}

/// Rules that keep berth's table alive: published ports, masquerades and
/// loopback guards.
fn is_ours(r: &RuleInfo) -> bool {
    r.chain == "published" || r.chain == "postrouting" || r.chain == "guard"
}

/// The loopback range, 127.0.0.0/8.
const LOOPBACK: (Ipv4Addr, u8) = (Ipv4Addr::new(127, 0, 0, 0), 8);

/// The batch that gives network comment `c` exactly its rules (see the
/// module docs): nothing when they are all there, else the ones it has
/// replaced by the full set in one transaction. Planned from `rules`.
fn network_batch(
    rules: &[RuleInfo],
    c: &str,
    bridge: &str,
    subnet: Ipv4Net,
    masquerade: bool,
) -> Batch {
    let mine: Vec<&RuleInfo> = rules
        .iter()
        .filter(|r| r.comment.as_deref() == Some(c))
        .collect();
    let want = 3 + usize::from(masquerade);
    let guards = mine.iter().filter(|r| r.chain == "guard").count();
    let mut b = Batch::default();
    if mine.len() == want && guards == 1 && base_present(rules) {
        return b;
    }
    if !base_present(rules) {
        base_into(&mut b);
    }
    // priority raw = -300 (nft(8)): before conntrack's NAT of replies.
    b.add_typed_chain(NFT_TABLE, "guard", Some((Hook::Prerouting, -300)), "filter");
    for r in &mine {
        b.del_rule(NFT_TABLE, &r.chain, r.handle);
    }
    if masquerade {
        outside_masquerade_into(&mut b, c, subnet);
    }
    // Hairpin whether or not traffic leaving the subnet is masqueraded:
    // published ports are reached from the network itself too.
    hairpin_masquerade_into(&mut b, c, subnet);
    let (net, len) = (subnet.network(), subnet.prefix_len());
    let lo_src: Vec<Expr> = match_ip_prefix(false, LOOPBACK.0, LOOPBACK.1, true)
        .into_iter()
        .chain(match_ip_prefix(true, net, len, true))
        .chain([Expr::Masq])
        .collect();
    b.add_rule(NFT_TABLE, "postrouting", &lo_src, Some(c), false);
    let guard: Vec<Expr> = match_iifname(bridge)
        .into_iter()
        .chain(match_ip_prefix(true, LOOPBACK.0, LOOPBACK.1, true))
        .chain([Expr::Drop])
        .collect();
    b.add_rule(NFT_TABLE, "guard", &guard, Some(c), false);
    b
}

/// Queue table, chains and jump rules (idempotent: the two jump rules are
/// flushed and re-added in the same transaction).
fn base_into(b: &mut Batch) {
    let t = NFT_TABLE;
    b.add_table(t);
    b.add_chain(t, "published", None);
    // priority dstnat = -100, srcnat = 100 (nft(8), "STANDARD PRIORITY NAMES").
    b.add_chain(t, "prerouting", Some((Hook::Prerouting, -100)));
    b.flush_chain(t, "prerouting");
    let jump: Vec<Expr> = match_daddr_local()
        .into_iter()
        .chain([Expr::Jump("published".into())])
        .collect();
    b.add_rule(t, "prerouting", &jump, None, false);
    b.add_chain(t, "output", Some((Hook::Output, -100)));
    b.flush_chain(t, "output");
    b.add_rule(t, "output", &jump, None, false);
    b.add_chain(t, "postrouting", Some((Hook::Postrouting, 100)));
}

/// The batch that gives network comment `c` its two masquerade rules (and
/// the base chains when missing), planned from `rules`.
fn masquerade_batch(rules: &[RuleInfo], c: &str, subnet: Ipv4Net) -> Batch {
    let mut b = Batch::default();
    if !base_present(rules) {
        base_into(&mut b);
    }
    if !rules.iter().any(|r| r.comment.as_deref() == Some(c)) {
        masquerade_into(&mut b, c, subnet);
    }
    b
}

/// Queue the two masquerade rules of network comment `c`.
fn masquerade_into(b: &mut Batch, c: &str, subnet: Ipv4Net) {
    outside_masquerade_into(b, c, subnet);
    hairpin_masquerade_into(b, c, subnet);
}

/// Queue the masquerade of traffic from `subnet` leaving it.
fn outside_masquerade_into(b: &mut Batch, c: &str, subnet: Ipv4Net) {
    let (net, len) = (subnet.network(), subnet.prefix_len());
    let outside: Vec<Expr> = match_ip_prefix(false, net, len, true)
        .into_iter()
        .chain(match_ip_prefix(true, net, len, false))
        .chain([Expr::Masq])
        .collect();
    b.add_rule(NFT_TABLE, "postrouting", &outside, Some(c), false);
}

/// Queue the hairpin masquerade: a container reaching a published port of
/// a container on the same network (itself included) through a host
/// address. Without it the reply would bypass the host and miss the DNAT
/// state, and a container reaching itself would get a packet from its own
/// address, which it drops as a martian.
fn hairpin_masquerade_into(b: &mut Batch, c: &str, subnet: Ipv4Net) {
    let (net, len) = (subnet.network(), subnet.prefix_len());
    let hairpin: Vec<Expr> = match_ip_prefix(false, net, len, true)
        .into_iter()
        .chain(match_ip_prefix(true, net, len, true))
        .chain(match_ct_dnat())
        .chain([Expr::Masq])
        .collect();
    b.add_rule(NFT_TABLE, "postrouting", &hairpin, Some(c), false);
}

impl Firewall {
    /// The firewall of the caller's network namespace; `state_dir` holds its lock file.
    pub fn new(state_dir: impl AsRef<Path>) -> Self {
        Self {
            netns: None,
            netns_id: ns_id_of_path("/proc/thread-self/ns/net"),
            lock: state_dir.as_ref().join("nft.lock"),
            sock: Mutex::new(None),
        }
    }

    /// The firewall of network namespace `netns` (its netlink socket is opened inside it).
    pub fn in_netns(netns: &NetNs, state_dir: impl AsRef<Path>) -> Result<Self> {
        Ok(Self {
            netns: Some(netns.try_clone()?),
            netns_id: ns_id_of(netns),
            lock: state_dir.as_ref().join("nft.lock"),
            sock: Mutex::new(None),
        })
    }

    /// Use `sock` (opened inside the firewall's netns) instead of opening one.
    pub(crate) fn adopt_socket(&self, sock: NfSocket) {
        let mut g = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        *g = Some(sock);
    }

    /// Run `f` on the firewall's socket (opened on first use, inside the
    /// firewall's netns; dropped after an error, reopened next time).
    fn with_sock<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut NfSocket) -> std::result::Result<T, BatchError>,
    ) -> Result<T> {
        // A poisoned lock only means a panic elsewhere; the socket is reset below on error.
        let mut g = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        let sock = match g.take().or_else(|| unpark(self.netns_id)) {
            Some(s) => s,
            None => match &self.netns {
                Some(ns) => ns.run_local(NfSocket::open)?,
                None => NfSocket::open(),
            }
            .map_err(|e| Error::netlink("socket(NETLINK_NETFILTER)", "nftables", e))?,
        };
        let mut sock = sock;
        match f(&mut sock) {
            Ok(v) => {
                *g = Some(sock);
                Ok(v)
            }
            Err(e) => Err(Error::Netlink {
                op,
                target: e.what,
                source: e.source,
            }),
        }
    }

    fn raw_rules(&self) -> Result<Vec<RuleInfo>> {
        self.with_sock("NFT_MSG_GETRULE dump", |s| {
            s.rules(NFT_TABLE).map_err(|source| BatchError {
                what: format!("table ip {NFT_TABLE}"),
                source,
            })
        })
    }

    fn commit(&self, b: Batch) -> Result<Vec<RuleInfo>> {
        if b.is_empty() {
            return Ok(Vec::new());
        }
        self.with_sock("nftables transaction", |s| s.commit(b, None))
    }

    /// Plan a change from a consistent snapshot of berth's table and commit
    /// it at that snapshot's ruleset generation (`NFNL_BATCH_GENID`); when
    /// another process changed the ruleset in between, the kernel refuses
    /// the batch (`ERESTART`) and the change is planned again. Check-then-act
    /// is atomic even between processes that do not share a lock file (two
    /// state directories, one netns). Returns the rules the kernel echoed
    /// and what `plan` returned.
    fn transact<T>(
        &self,
        mut plan: impl FnMut(&[RuleInfo]) -> Result<(Batch, T)>,
    ) -> Result<(Vec<RuleInfo>, T)> {
        for _ in 0..32 {
            let (gen, rules) = self.with_sock("NFT_MSG_GETGEN + NFT_MSG_GETRULE dump", |s| {
                s.snapshot(NFT_TABLE).map_err(|source| BatchError {
                    what: format!("table ip {NFT_TABLE}"),
                    source,
                })
            })?;
            let (batch, out) = plan(&rules)?;
            if batch.is_empty() {
                return Ok((Vec::new(), out));
            }
            let mut stale = false;
            let echoed = self.with_sock("nftables transaction", |s| {
                match s.commit(batch, Some(gen)) {
                    Err(e) if e.is_stale() => {
                        stale = true;
                        Ok(Vec::new())
                    }
                    r => r,
                }
            })?;
            if !stale {
                return Ok((echoed, out));
            }
            tracing::debug!(gen, "nftables ruleset changed meanwhile, planning again");
        }
        Err(Error::Netlink {
            op: "nftables transaction",
            target: format!("table ip {NFT_TABLE}"),
            source: std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                "the ruleset kept changing under 32 attempts",
            ),
        })
    }

    /// True when table `ip berth` exists (`NFT_MSG_GETTABLE`).
    pub fn table_exists(&self) -> Result<bool> {
        self.with_sock("NFT_MSG_GETTABLE", |s| {
            s.table_exists(NFT_TABLE).map_err(|source| BatchError {
                what: format!("table ip {NFT_TABLE}"),
                source,
            })
        })
    }

    /// Every rule of berth's table (empty when the table does not exist).
    #[doc(alias("NFT_MSG_GETRULE"))]
    pub fn rules(&self) -> Result<Vec<NftRule>> {
        Ok(self.raw_rules()?.into_iter().map(NftRule::from).collect())
    }

    /// Create the table and its base chains (idempotent: the two jump rules
    /// are flushed and re-added in the same transaction).
    pub fn ensure_base(&self) -> Result<()> {
        let mut b = Batch::default();
        base_into(&mut b);
        self.commit(b).map(drop)
    }

    /// Masquerade traffic from `subnet` leaving it (idempotent per network).
    /// When the rules are already there this is one read-only netlink dump:
    /// no lock, no transaction.
    #[doc(alias("masquerade", "SNAT", "NFT_MSG_NEWRULE"))]
    pub fn add_masquerade(&self, network: &str, subnet: Ipv4Net) -> Result<()> {
        validate_id("network name", network)?;
        let c = net_comment(network);
        let present = |rules: &[RuleInfo]| {
            base_present(rules)
                && rules
                    .iter()
                    .any(|r| r.chain == "postrouting" && r.comment.as_deref() == Some(&c))
        };
        if present(&self.raw_rules()?) {
            return Ok(());
        }
        let _l = lock_file(&self.lock)?;
        self.transact(|rules| Ok((masquerade_batch(rules, &c, subnet), ())))
            .map(drop)
    }

    /// The rules of `network` on bridge `bridge`: the hairpin and loopback
    /// masquerades and the guard (see the module docs), plus the
    /// masquerade of what leaves `subnet` when `masquerade`. Idempotent: when they are all there this is one
    /// read-only netlink dump; otherwise they are replaced in one
    /// transaction.
    pub fn add_network_rules(
        &self,
        network: &str,
        bridge: &str,
        subnet: Ipv4Net,
        masquerade: bool,
    ) -> Result<()> {
        validate_id("network name", network)?;
        crate::validate_ifname(bridge)?;
        let c = net_comment(network);
        if network_batch(&self.raw_rules()?, &c, bridge, subnet, masquerade).is_empty() {
            return Ok(());
        }
        let _l = lock_file(&self.lock)?;
        self.transact(|rules| Ok((network_batch(rules, &c, bridge, subnet, masquerade), ())))
            .map(drop)
    }

    /// Remove the rules of `network`, and the table when nothing of berth's is left in it.
    #[doc(alias("NFT_MSG_DELRULE"))]
    pub fn remove_network(&self, network: &str) -> Result<()> {
        let _l = lock_file(&self.lock)?;
        let c = net_comment(network);
        self.delete_where(|r| r.comment.as_deref() == Some(&c))
            .map(drop)
    }

    /// Delete the rules matching `pred` in one transaction — or the whole
    /// table when no published port or masquerade would be left in it.
    /// Returns the rules deleted. The caller holds the lock.
    fn delete_where(&self, pred: impl Fn(&RuleInfo) -> bool) -> Result<Vec<RuleInfo>> {
        let (_, doomed) = self.transact(|rules| {
            let (doomed, kept): (Vec<RuleInfo>, Vec<RuleInfo>) =
                rules.iter().cloned().partition(|r| pred(r));
            let mut b = Batch::default();
            if !kept.iter().any(is_ours) {
                if !doomed.is_empty() || !kept.is_empty() || self.table_exists()? {
                    b.del_table(NFT_TABLE);
                }
            } else {
                for r in &doomed {
                    b.del_rule(NFT_TABLE, &r.chain, r.handle);
                }
            }
            Ok((b, doomed))
        })?;
        Ok(doomed)
    }

    /// Publish `ports` of `container` (address `addr`). A port already
    /// published by another container, or bound by a socket in this
    /// namespace, is [`Error::PortTaken`]; then nothing is added.
    #[doc(alias("DNAT", "NFT_MSG_NEWRULE"))]
    pub fn publish(&self, container: &str, addr: Ipv4Addr, ports: &[PortMapping]) -> Result<()> {
        self.publish_rules(container, addr, ports).map(drop)
    }

    /// [`Firewall::publish`], returning the rules added (their handles, as
    /// the kernel echoed them back).
    pub fn publish_rules(
        &self,
        container: &str,
        addr: Ipv4Addr,
        ports: &[PortMapping],
    ) -> Result<Vec<NftRule>> {
        validate_id("container id", container)?;
        for (i, p) in ports.iter().enumerate() {
            p.validate()?;
            if ports[..i].iter().any(|q| {
                q.proto == p.proto
                    && q.host_port == p.host_port
                    && ips_overlap(q.host_ip, p.host_ip)
            }) {
                return Err(Error::InvalidArgument {
                    what: "published ports",
                    reason: format!("{}/{} is listed twice", p.proto, p.host_port),
                });
            }
        }
        if ports.is_empty() {
            return Ok(Vec::new());
        }
        let _l = lock_file(&self.lock)?;
        let (added, ()) = self.transact(|rules| {
            for p in ports {
                for r in rules {
                    let Some(c) = r.comment.as_deref() else {
                        continue;
                    };
                    if let Some((proto, ip, port)) = port_of_comment(c) {
                        if proto == p.proto.as_str()
                            && port == p.host_port
                            && ips_overlap(ip, p.host_ip)
                        {
                            return Err(Error::PortTaken {
                                proto: p.proto.as_str(),
                                host_ip: IpAddr::V4(p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED)),
                                port: p.host_port,
                                by: format!(
                                    "published by container {:?}",
                                    ctr_of_comment(c).unwrap_or("?")
                                ),
                            });
                        }
                    }
                }
                self.check_bindable(p)?;
            }
            let mut b = Batch::default();
            if !base_present(rules) {
                base_into(&mut b);
            }
            for p in ports {
                let mut e = Vec::new();
                if let Some(ip) = p.host_ip {
                    e.extend(match_ip_prefix(true, ip, 32, true));
                }
                let proto = match p.proto {
                    Protocol::Tcp => libc::IPPROTO_TCP as u8,
                    Protocol::Udp => libc::IPPROTO_UDP as u8,
                };
                e.extend(match_dport(proto, p.host_port));
                e.extend(dnat_to(addr, p.container_port));
                b.add_rule(
                    NFT_TABLE,
                    "published",
                    &e,
                    Some(&port_comment(container, p)),
                    true,
                );
            }
            Ok((b, ()))
        })?;
        tracing::debug!(container, handles = ?added.iter().map(|r| r.handle).collect::<Vec<_>>(), "published");
        Ok(added.into_iter().map(NftRule::from).collect())
    }

    /// A socket bound to the port means a server already answers there.
    fn check_bindable(&self, p: &PortMapping) -> Result<()> {
        let ip = p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let port = p.host_port;
        let proto = p.proto;
        let try_bind = move || -> std::io::Result<()> {
            match proto {
                // std sets SO_REUSEADDR on listeners, so TIME_WAIT leftovers do not count.
                Protocol::Tcp => std::net::TcpListener::bind((ip, port)).map(drop),
                Protocol::Udp => std::net::UdpSocket::bind((ip, port)).map(drop),
            }
        };
        let res = match &self.netns {
            Some(ns) => ns.run_local(try_bind)?,
            None => try_bind(),
        };
        match res {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => Err(Error::PortTaken {
                proto: p.proto.as_str(),
                host_ip: IpAddr::V4(ip),
                port,
                by: "a socket on the host is bound to it".into(),
            }),
            // EADDRNOTAVAIL (host_ip not local) and the like: report, do not guess.
            Err(e) => Err(Error::InvalidArgument {
                what: "published port",
                reason: format!("cannot bind {}/{ip}:{port} on the host: {e}", p.proto),
            }),
        }
    }

    /// Remove every rule tagged with `container` (deleted by handle in one
    /// transaction, or with the table when nothing else of berth's is left);
    /// returns how many went.
    #[doc(alias("NFT_MSG_DELRULE"))]
    pub fn unpublish(&self, container: &str) -> Result<usize> {
        self.unpublish_rules(container, &[])
    }

    /// [`Firewall::unpublish`], also checking that the rules `expected`
    /// (handles from [`Firewall::publish_rules`]) were still there: a missing
    /// one is logged (someone else deleted it).
    pub(crate) fn unpublish_rules(&self, container: &str, expected: &[u64]) -> Result<usize> {
        let _l = lock_file(&self.lock)?;
        let gone = self
            .delete_where(|r| r.comment.as_deref().and_then(ctr_of_comment) == Some(container))?;
        for h in expected {
            if !gone.iter().any(|r| r.handle == *h) {
                tracing::warn!(
                    container,
                    handle = h,
                    "published-port rule was already gone"
                );
            }
        }
        Ok(gone.len())
    }
}

fn ips_overlap(a: Option<Ipv4Addr>, b: Option<Ipv4Addr>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::os::fd::AsRawFd;

    /// The socket of a dropped Firewall of our own netns is kept and reused
    /// by the next one; one of another netns is closed (it would keep that
    /// namespace alive). Root only (NETLINK_NETFILTER); read-only requests.
    #[test]
    fn own_netns_socket_is_parked_and_reused_other_netns_is_not() {
        if berth_sys::fs::euid() != 0 {
            eprintln!("SKIPPED: needs root");
            return;
        }
        let dir = std::env::temp_dir();
        let generation = |fw: &Firewall| {
            fw.with_sock("NFT_MSG_GETGEN", |s| {
                s.generation().map_err(|source| BatchError {
                    what: "generation".into(),
                    source,
                })
            })
            .unwrap()
        };
        let fd_of = |fw: &Firewall| {
            fw.sock
                .lock()
                .unwrap()
                .as_ref()
                .map(|s| s.as_raw_fd())
                .unwrap()
        };
        let link = |fd: i32| std::fs::read_link(format!("/proc/self/fd/{fd}")).ok();

        // Another namespace: its socket goes with its Firewall.
        let ns = NetNs::new_anonymous().unwrap();
        let other = Firewall::in_netns(&ns, &dir).unwrap();
        generation(&other);
        let other_sock = link(fd_of(&other)).unwrap();
        drop(other);
        assert!(
            PARKED.lock().unwrap().is_none(),
            "a foreign netns's socket was kept"
        );
        let open: Vec<_> = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .collect();
        assert!(!open.contains(&other_sock), "{other_sock:?} still open");

        // Our own namespace: parked on drop, taken by the next Firewall.
        let first = Firewall::new(&dir);
        generation(&first);
        let fd = fd_of(&first);
        let sock = link(fd).unwrap();
        drop(first);
        assert_eq!(link(fd), Some(sock.clone()), "the parked socket was closed");
        assert!(PARKED.lock().unwrap().is_some());
        let second = Firewall::new(&dir);
        generation(&second);
        assert_eq!(
            fd_of(&second),
            fd,
            "the second Firewall opened a new socket"
        );
        assert!(PARKED.lock().unwrap().is_none());
        drop(second);
        // Leave nothing parked for other tests of this binary.
        drop(PARKED.lock().unwrap().take());
    }

    #[test]
    fn comments_round_trip() {
        let p = PortMapping::tcp(8080, 80);
        let c = port_comment("web-1", &p);
        assert_eq!(c, "berth ctr=web-1 port=tcp/*:8080");
        assert_eq!(ctr_of_comment(&c), Some("web-1"));
        assert_eq!(port_of_comment(&c), Some(("tcp".into(), None, 8080)));
        let q = PortMapping::udp(53, 53).host_ip(Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(
            port_of_comment(&port_comment("x", &q)),
            Some(("udp".into(), Some(Ipv4Addr::new(10, 0, 0, 1)), 53))
        );
        assert_eq!(ctr_of_comment(&net_comment("n")), None);
    }

    #[test]
    fn overlap_rules() {
        let a = Some(Ipv4Addr::new(1, 2, 3, 4));
        assert!(ips_overlap(None, a));
        assert!(ips_overlap(a, a));
        assert!(!ips_overlap(a, Some(Ipv4Addr::new(1, 2, 3, 5))));
    }

    #[test]
    fn port_zero_refused() {
        assert!(PortMapping::tcp(0, 80).validate().is_err());
        assert!(PortMapping::tcp(80, 0).validate().is_err());
    }
}
