//! IPv4 subnets.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use crate::error::Error;

/// An IPv4 network `a.b.c.d/len` with the host bits zero.
///
/// ```
/// use berth_netsetup::Ipv4Net;
/// let net: Ipv4Net = "10.88.0.0/16".parse().unwrap();
/// assert!(net.contains("10.88.3.4".parse().unwrap()));
/// assert_eq!(net.nth(1), Some("10.88.0.1".parse().unwrap()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix_len: u8,
}

impl Ipv4Net {
    /// Build from a network address and prefix length (host bits must be zero).
    pub fn new(addr: Ipv4Addr, prefix_len: u8) -> Result<Self, Error> {
        let text = format!("{addr}/{prefix_len}");
        if prefix_len > 32 {
            return Err(Error::InvalidCidr {
                cidr: text,
                reason: "prefix length above 32",
            });
        }
        let n = Self { addr, prefix_len };
        if u32::from(addr) & !n.mask() != 0 {
            return Err(Error::InvalidCidr {
                cidr: text,
                reason: "host bits are set (give the network address)",
            });
        }
        Ok(n)
    }
    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        self.addr
    }
    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }
    /// The netmask as a number.
    pub fn mask(&self) -> u32 {
        if self.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix_len))
        }
    }
    /// The broadcast (last) address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }
    /// True when `ip` is inside this network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }
    /// True when the two networks share at least one address.
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }
    /// Number of addresses in the network.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix_len))
    }
    /// The `i`-th address of the network (0 = network address).
    pub fn nth(&self, i: u64) -> Option<Ipv4Addr> {
        (i < self.size()).then(|| Ipv4Addr::from(u32::from(self.addr).wrapping_add(i as u32)))
    }
}

impl FromStr for Ipv4Net {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |reason| Error::InvalidCidr {
            cidr: s.to_string(),
            reason,
        };
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| bad("missing '/<prefix length>'"))?;
        let addr: Ipv4Addr = a.parse().map_err(|_| {
            if a.contains(':') {
                bad("only IPv4 subnets are supported for bridge networks")
            } else {
                bad("not an IPv4 address")
            }
        })?;
        if l.is_empty() || l.len() > 2 || !l.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("prefix length is not a number"));
        }
        let len: u8 = l
            .parse()
            .map_err(|_| bad("prefix length is not a number"))?;
        Ipv4Net::new(addr, len).map_err(|e| match e {
            Error::InvalidCidr { reason, .. } => bad(reason),
            other => other,
        })
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_math() {
        let n: Ipv4Net = "10.88.0.0/16".parse().unwrap();
        assert_eq!(n.broadcast(), Ipv4Addr::new(10, 88, 255, 255));
        assert!(n.contains(Ipv4Addr::new(10, 88, 3, 4)));
        assert!(!n.contains(Ipv4Addr::new(10, 89, 0, 1)));
        assert_eq!(n.nth(1), Some(Ipv4Addr::new(10, 88, 0, 1)));
        assert_eq!(n.size(), 65536);
        let m: Ipv4Net = "10.88.4.0/24".parse().unwrap();
        assert!(n.overlaps(&m) && m.overlaps(&n));
        let o: Ipv4Net = "10.89.0.0/16".parse().unwrap();
        assert!(!n.overlaps(&o));
        assert_eq!(n.to_string(), "10.88.0.0/16");
    }

    #[test]
    fn invalid_cidrs() {
        for (s, why) in [
            ("10.88.0.0", "missing"),
            ("10.88.0.1/16", "host bits"),
            ("10.88.0.0/33", "above 32"),
            ("10.300.0.0/16", "not an IPv4"),
            ("fd00::/64", "only IPv4"),
            ("10.88.0.0/x", "not a number"),
            ("10.88.0.0/", "not a number"),
        ] {
            let e = s.parse::<Ipv4Net>().unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(s), "{s}: {e}");
        }
    }
}
