//! `berth-netsetup`: container networking over netlink.
//!
//! Everything section 8 of a "containers by hand" lesson does with
//! `ip netns`, `ip link add … type veth`, a bridge, addresses, a default route
//! and a MASQUERADE rule — as a library, over rtnetlink, fast, and cleaned up
//! reliably:
//!
//! - [`Netlink`]: a small blocking rtnetlink client (links, veth pairs with the
//!   peer created directly in another netns, bridges, addresses v4/v6, routes),
//!   everything addressed by ifindex.
//! - [`NetNs`]: network namespace handles — anonymous (an fd), named
//!   (`/run/netns/<name>`, compatible with `ip netns`), from a pid or pidfd.
//!   Work inside a namespace runs on a helper thread; the caller never moves.
//! - [`BridgeNetwork`] → [`Network`]: a bridge with a gateway address, IPAM,
//!   masquerade; [`Network::attach`] a container's netns (veth, `eth0`,
//!   address, default route, optional MAC, published ports) → [`Attachment`].
//! - [`VxlanNetwork`] → [`Overlay`]: a network spanning hosts — a local
//!   bridge per host joined by a VXLAN device with static peers, each host
//!   allocating from its own range of the subnet, MTU reduced by the
//!   encapsulation.
//! - [`MacvlanNetwork`] → [`Network`]: containers on a parent interface's
//!   segment through macvlan interfaces (bridge mode), IPAM and names as on
//!   a bridge network.
//! - [`Ipam`]: per-network address allocation persisted under a file lock.
//! - [`Firewall`]: NAT and published ports in nftables table `ip berth`
//!   (ports published on 127.0.0.1 included, as `docker run -p
//!   127.0.0.1:H:C`).
//! - User-defined networks: [`BridgeNetwork::persist`] records one,
//!   [`list_networks`] and [`BridgeNetwork::from_record`] find it again from
//!   any process; names on a network ([`Attach::name`],
//!   [`Attach::hosts_file`]): every member's hosts file lists the members.
//! - `net.ipv4.ip_forward`: turned on by the first network, put back by the
//!   last one removed ([`BridgeNetwork::ip_forward`]).
//! - `asynchronous` (cargo feature `tokio`): the same operations for tokio
//!   users.
//!
//! ```no_run
//! use berth_netsetup::{Attach, BridgeNetwork, NetNs, PortMapping};
//! # fn main() -> Result<(), berth_netsetup::Error> {
//! let net = BridgeNetwork::new("demo").bridge("berth0").subnet("10.88.0.0/16").ensure()?;
//! let ns = NetNs::new_anonymous()?; // or NetNs::from_pid(child_pid)
//! let att = net.attach(&ns, &Attach::new("web-1").publish(PortMapping::tcp(8080, 80)))?;
//! println!("container address {}", att.address());
//! att.release()?; // the netns is going away: the kernel removes the veth
//! # Ok(()) }
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

#[cfg(feature = "tokio")]
pub mod asynchronous;
pub mod child;
mod cidr;
mod error;
mod forward;
mod hosts;
mod ipam;
mod macvlan;
mod nat;
mod netlink;
mod netns;
mod network;
mod nftnl;
mod statedir;
mod vxlan;

pub use cidr::Ipv4Net;
pub use error::{Error, Result};
pub use ipam::{Allocation, Ipam};
pub use macvlan::{MacvlanMode, MacvlanNetwork, MacvlanSpec};
pub use nat::{Firewall, PortMapping, Protocol, NFT_TABLE};
pub use netlink::{LinkInfoSummary, Netlink, RouteSummary, VethSpec};
pub use netns::{NetNs, NETNS_RUN_DIR};
pub use network::{
    gc_container, list_networks, network_record, Attach, Attachment, BridgeNetwork, Network,
    NetworkRecord, VxlanRecord, DEFAULT_STATE_DIR, LEGACY_STATE_DIR,
};
pub use vxlan::{
    FdbEntry, Overlay, OverlayMember, VxlanNetwork, VxlanSpec, VXLAN_OVERHEAD, VXLAN_PORT,
};

/// Longest interface name: `IFNAMSIZ` (16) minus the NUL (include/uapi/linux/if.h).
pub const MAX_IFNAME_LEN: usize = 15;

/// Check an interface name the way the kernel does (`dev_valid_name`,
/// net/core/dev.c): 1–15 bytes, not `.`/`..`, no `/`, `:` or whitespace.
pub fn validate_ifname(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_IFNAME_LEN {
        return bad("longer than 15 bytes (IFNAMSIZ)");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not interface names");
    }
    if name
        .bytes()
        .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace())
    {
        return bad("contains '/', ':', NUL or whitespace");
    }
    Ok(())
}

pub(crate) fn validate_netns_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 255
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.contains('\0')
    {
        return Err(Error::InvalidArgument {
            what: "netns name",
            reason: format!("{name:?} must be 1-255 bytes without '/' or NUL, not '.'/'..'"),
        });
    }
    Ok(())
}

/// Container ids end up in file names and nft comments: 1–64 of `[A-Za-z0-9_.-]`.
pub(crate) fn validate_id(what: &'static str, id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > 64
        || id.starts_with('.')
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        return Err(Error::InvalidArgument {
            what,
            reason: format!(
                "{id:?} must be 1-64 characters of [A-Za-z0-9_.-], not starting with '.'"
            ),
        });
    }
    Ok(())
}

/// Parse a MAC address `aa:bb:cc:dd:ee:ff`. Multicast addresses (low bit of
/// the first byte) are refused: the kernel rejects them on an Ethernet device.
pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let bad = || Error::InvalidArgument {
        what: "MAC address",
        reason: format!("{s:?} is not six ':'-separated hex bytes of a unicast address"),
    };
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in out.iter_mut() {
        let p = parts.next().ok_or_else(bad)?;
        if p.len() != 2 {
            return Err(bad());
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() || out[0] & 1 == 1 || out == [0; 6] {
        return Err(bad());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifname_rules() {
        assert!(validate_ifname("eth0").is_ok());
        assert!(validate_ifname("abcdefghijklmno").is_ok());
        let e = validate_ifname("abcdefghijklmnop").unwrap_err();
        assert!(e.to_string().contains("longer than 15"), "{e}");
        assert!(validate_ifname("").is_err());
        assert!(validate_ifname("a/b").is_err());
        assert!(validate_ifname("a b").is_err());
        assert!(validate_ifname("..").is_err());
    }

    #[test]
    fn mac_parsing() {
        assert_eq!(
            parse_mac("02:42:ac:11:00:02").unwrap(),
            [2, 0x42, 0xac, 0x11, 0, 2]
        );
        assert!(parse_mac("01:00:5e:00:00:01").is_err(), "multicast");
        assert!(parse_mac("02:42:ac:11:00").is_err());
        assert!(parse_mac("02:42:ac:11:00:02:03").is_err());
        assert!(parse_mac("zz:42:ac:11:00:02").is_err());
    }

    #[test]
    fn id_rules() {
        assert!(validate_id("container id", "web-1.a_b").is_ok());
        assert!(validate_id("container id", "").is_err());
        assert!(validate_id("container id", "a b").is_err());
        assert!(validate_id("container id", "a\"b").is_err());
        assert!(validate_id("container id", ".hidden").is_err());
        assert!(validate_id("container id", &"x".repeat(65)).is_err());
    }
}
