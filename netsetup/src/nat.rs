//! NAT and published ports with nftables, in a table of berth's own
//! (`ip berth`); no other table is ever read for changes or touched.
//!
//! Rules are written as nft scripts piped to `nft -f -` (one atomic
//! transaction each) and read back with `nft -j`. `nft` runs inside the
//! firewall's network namespace: the child does `setns(2)` before `exec`,
//! which is why this module drives `nft` itself instead of through a helper
//! that cannot choose the namespace. Kernel: nf_tables with the nat, fib and
//! masquerade expressions (Linux ≥ 4.18 for `fib` in nat chains; nft(8)).
//!
//! Layout:
//! ```text
//! table ip berth {
//!   chain published   { tcp dport 8080 dnat to 10.88.0.2:80 comment "berth ctr=web-1 port=tcp/*:8080" }
//!   chain prerouting  { type nat hook prerouting priority dstnat; fib daddr type local jump published }
//!   chain output      { type nat hook output priority -100;      fib daddr type local jump published }
//!   chain postrouting { type nat hook postrouting priority srcnat;
//!                       ip saddr 10.88.0.0/16 ip daddr != 10.88.0.0/16 masquerade comment "berth net=demo"
//!                       ip saddr 10.88.0.0/16 ip daddr 10.88.0.0/16 ct status dnat masquerade comment "berth net=demo" }
//! }
//! ```
//! Published ports answer on every local address of the host (`fib daddr
//! type local`), or only on `host_ip` when one is given: from other hosts and
//! other netns (prerouting) and from the host itself (output). Loopback
//! addresses (`127.0.0.0/8`) are *not* forwarded: the kernel refuses to route
//! them off `lo` unless `route_localnet` is set, which berth does not do.
//! Containers reach published ports of their own network through a host
//! address too (hairpin: masqueraded, so replies come back through the host).

use std::fmt;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::cidr::Ipv4Net;
use crate::error::{Error, Result};
use crate::ipam::lock_file;
use crate::netns::NetNs;
use crate::validate_id;

/// The nftables table berth owns (family `ip`).
pub const NFT_TABLE: &str = "berth";

/// Transport protocol of a published port.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// One rule of berth's table, as read back from `nft -j`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftRule {
    /// Chain name.
    pub chain: String,
    /// Rule handle.
    pub handle: u64,
    /// Rule comment (berth tags every rule).
    pub comment: Option<String>,
}

/// The nftables driver for one network namespace (normally the host's).
#[derive(Debug)]
pub struct Firewall {
    netns: Option<NetNs>,
    lock: PathBuf,
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

impl Firewall {
    /// The firewall of the caller's network namespace; `state_dir` holds its lock file.
    pub fn new(state_dir: impl AsRef<Path>) -> Self {
        Self {
            netns: None,
            lock: state_dir.as_ref().join("nft.lock"),
        }
    }

    /// The firewall of network namespace `netns` (`nft` runs inside it).
    pub fn in_netns(netns: &NetNs, state_dir: impl AsRef<Path>) -> Result<Self> {
        Ok(Self {
            netns: Some(netns.try_clone()?),
            lock: state_dir.as_ref().join("nft.lock"),
        })
    }

    fn nft(&self, args: &[&str], script: Option<&str>) -> Result<String> {
        let op = || match script {
            Some(s) => format!(
                "-f - <<{:?}",
                s.lines().take(3).collect::<Vec<_>>().join("; ")
            ),
            None => args.join(" "),
        };
        let mut cmd = Command::new(nft_binary());
        cmd.args(args)
            .stdin(if script.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(ns) = &self.netns {
            let fd = ns.as_raw_fd();
            // SAFETY: the closure only calls setns(2), which is async-signal-safe.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setns(fd, libc::CLONE_NEWNET) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().map_err(|e| Error::Nft {
            op: op(),
            reason: format!("cannot run nft: {e}"),
        })?;
        if let Some(s) = script {
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(s.as_bytes()).map_err(|e| Error::Nft {
                    op: op(),
                    reason: format!("writing the script to nft: {e}"),
                })?;
            }
        }
        let out = child.wait_with_output().map_err(|e| Error::Nft {
            op: op(),
            reason: format!("waiting for nft: {e}"),
        })?;
        if !out.status.success() {
            return Err(Error::Nft {
                op: op(),
                reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn apply(&self, script: &str) -> Result<()> {
        tracing::debug!(script, "nft -f -");
        self.nft(&["-f", "-"], Some(script)).map(|_| ())
    }

    /// True when table `ip berth` exists.
    pub fn table_exists(&self) -> Result<bool> {
        let out = self.nft(&["-j", "list", "tables", "ip"], None)?;
        let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| Error::Nft {
            op: "-j list tables".into(),
            reason: format!("unparsable output: {e}"),
        })?;
        Ok(v["nftables"].as_array().is_some_and(|a| {
            a.iter()
                .any(|o| o["table"]["name"] == NFT_TABLE && o["table"]["family"] == "ip")
        }))
    }

    /// Every rule of berth's table (empty when the table does not exist).
    pub fn rules(&self) -> Result<Vec<NftRule>> {
        if !self.table_exists()? {
            return Ok(Vec::new());
        }
        let out = self.nft(&["-j", "-a", "list", "table", "ip", NFT_TABLE], None)?;
        let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| Error::Nft {
            op: "-j list table ip berth".into(),
            reason: format!("unparsable output: {e}"),
        })?;
        let mut rules = Vec::new();
        for o in v["nftables"].as_array().into_iter().flatten() {
            let r = &o["rule"];
            if r.is_null() {
                continue;
            }
            rules.push(NftRule {
                chain: r["chain"].as_str().unwrap_or_default().to_string(),
                handle: r["handle"].as_u64().unwrap_or_default(),
                comment: r["comment"].as_str().map(str::to_string),
            });
        }
        Ok(rules)
    }

    /// Create the table and its base chains (idempotent: the two jump rules
    /// are flushed and re-added in the same transaction).
    pub fn ensure_base(&self) -> Result<()> {
        let t = NFT_TABLE;
        self.apply(&format!(
            "add table ip {t}\n\
             add chain ip {t} published\n\
             add chain ip {t} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}\n\
             flush chain ip {t} prerouting\n\
             add rule ip {t} prerouting fib daddr type local jump published\n\
             add chain ip {t} output {{ type nat hook output priority -100; policy accept; }}\n\
             flush chain ip {t} output\n\
             add rule ip {t} output fib daddr type local jump published\n\
             add chain ip {t} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}\n"
        ))
    }

    /// Masquerade traffic from `subnet` leaving it (idempotent per network).
    pub fn add_masquerade(&self, network: &str, subnet: Ipv4Net) -> Result<()> {
        validate_id("network name", network)?;
        let _l = lock_file(&self.lock)?;
        self.ensure_base()?;
        let c = net_comment(network);
        if self
            .rules()?
            .iter()
            .any(|r| r.comment.as_deref() == Some(&c))
        {
            return Ok(());
        }
        // Second rule: hairpin — a container reaching a published port of a
        // container on the same network through a host address; without
        // masquerade the reply would bypass the host and miss the DNAT state.
        self.apply(&format!(
            "add rule ip {NFT_TABLE} postrouting ip saddr {subnet} ip daddr != {subnet} masquerade comment \"{c}\"\n\
             add rule ip {NFT_TABLE} postrouting ip saddr {subnet} ip daddr {subnet} ct status dnat masquerade comment \"{c}\"\n"
        ))
    }

    /// Remove the masquerade rule of `network`, and the table when nothing of berth's is left in it.
    pub fn remove_network(&self, network: &str) -> Result<()> {
        let _l = lock_file(&self.lock)?;
        let c = net_comment(network);
        self.delete_where(|r| r.comment.as_deref() == Some(&c))?;
        self.remove_table_if_unused()
    }

    fn delete_where(&self, pred: impl Fn(&NftRule) -> bool) -> Result<usize> {
        let doomed: Vec<NftRule> = self.rules()?.into_iter().filter(|r| pred(r)).collect();
        if doomed.is_empty() {
            return Ok(0);
        }
        let script: String = doomed
            .iter()
            .map(|r| {
                format!(
                    "delete rule ip {NFT_TABLE} {} handle {}\n",
                    r.chain, r.handle
                )
            })
            .collect();
        self.apply(&script)?;
        Ok(doomed.len())
    }

    fn remove_table_if_unused(&self) -> Result<()> {
        let rules = self.rules()?;
        let ours = rules
            .iter()
            .filter(|r| r.chain == "published" || r.chain == "postrouting")
            .count();
        if ours == 0 && self.table_exists()? {
            self.apply(&format!("delete table ip {NFT_TABLE}\n"))?;
        }
        Ok(())
    }

    /// Publish `ports` of `container` (address `addr`). A port already
    /// published by another container, or bound by a socket in this
    /// namespace, is [`Error::PortTaken`]; then nothing is added.
    pub fn publish(&self, container: &str, addr: Ipv4Addr, ports: &[PortMapping]) -> Result<()> {
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
            return Ok(());
        }
        let _l = lock_file(&self.lock)?;
        self.ensure_base()?;
        let rules = self.rules()?;
        for p in ports {
            for r in &rules {
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
        let mut script = String::new();
        for p in ports {
            let daddr = p
                .host_ip
                .map(|ip| format!("ip daddr {ip} "))
                .unwrap_or_default();
            script.push_str(&format!(
                "add rule ip {NFT_TABLE} published {daddr}{proto} dport {hp} dnat to {addr}:{cp} comment \"{c}\"\n",
                proto = p.proto,
                hp = p.host_port,
                cp = p.container_port,
                c = port_comment(container, p),
            ));
        }
        self.apply(&script)
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
            Some(ns) => ns.run(try_bind)?,
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

    /// Remove every rule tagged with `container`; returns how many went.
    pub fn unpublish(&self, container: &str) -> Result<usize> {
        let _l = lock_file(&self.lock)?;
        let n = self
            .delete_where(|r| r.comment.as_deref().and_then(ctr_of_comment) == Some(container))?;
        self.remove_table_if_unused()?;
        Ok(n)
    }
}

/// `nft` from the usual sbin directories (a service's PATH may lack them), else from PATH.
fn nft_binary() -> &'static str {
    ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("nft")
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
