//! Golden bytes of the rtnetlink encoder (no root, no kernel): the exact
//! requests [`Netlink`] sends for a veth pair, an address and a default
//! route, checked against the requests iproute2 sends for the same change.
//!
//! The "kernel" is a fake: [`Netlink::from_fd`] gets one end of a Unix
//! datagram socket pair; a thread at the other end records each request and
//! answers it with an `NLMSG_ERROR` of `EPERM`, so every call sends exactly
//! one message and returns.
//!
//! How the iproute2 bytes were obtained (iproute2 6.1, Linux 6.18), in a
//! network namespace made for the capture (`unshare -n`, gone afterwards):
//!
//! ```sh
//! unshare -n sh -c '
//!   strace -e trace=sendmsg -e write=3 ip link add vh0 numtxqueues 1 numrxqueues 1 up \
//!       type veth peer name vp0 numtxqueues 1 numrxqueues 1
//!   strace -e trace=sendmsg -e write=3 ip addr add 10.99.0.1/24 brd + dev vh0   # vh0 is ifindex 3
//!   ip link set vh0 up; ip link set vp0 up
//!   strace -e trace=sendmsg -e write=3 ip route add default via 10.99.0.2 dev vh0 proto boot'
//! ```
//!
//! (`-e write=3` dumps the bytes of each `sendmsg` on the netlink socket;
//! the hex below is that dump, with iproute2's time-based sequence number
//! `0x6b143410` in bytes 8..12.)

use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixDatagram;
use std::sync::mpsc;

use berth_netsetup::{Netlink, VethSpec};

/// `ip link add vh0 … up type veth peer name vp0 …` (116 bytes).
const IP_VETH: &str = "74000000100005061034146b000000000000000000000000010000000100000008001f0001000000080020000100000008000300766830003c0012000800010076657468300002002c0001000000000000000000000000000000000008001f000100000008002000010000000800030076703000";
/// `ip addr add 10.99.0.1/24 brd + dev vh0` (ifindex 3).
const IP_ADDR: &str = "30000000140005061034146b000000000218000003000000080002000a630001080001000a630001080004000a6300ff";
/// `ip route add default via 10.99.0.2 dev vh0 proto boot` (ifindex 3).
const IP_ROUTE: &str =
    "2c000000180005061034146b0000000002000000fe03000100000000080005000a6300020800040003000000";

/// berth's `create_veth` request for the same pair (sequence number 1),
/// recorded from this encoder; 4 bytes longer than iproute2's: the
/// `IFLA_INFO_KIND` string carries its NUL (netlink-packet-route's
/// encoding; the kernel reads it with `nla_strscpy`, fine either way).
const BERTH_VETH: &str = "7800000010000d0601000000000000000000000000000000010000000100000008000300\
76683000\
08001f0001000000080020000100000040001200090001007665746800000000300002002c000100\
00000000000000000000000000000000080003007670300008001f000100000008002000\
01000000";

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Run `f` against the fake kernel; the one request it sent.
fn capture(f: impl FnOnce(&mut Netlink)) -> Vec<u8> {
    let (ours, kernel) = UnixDatagram::pair().unwrap();
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let n = kernel.recv(&mut buf).unwrap();
        let req = buf[..n].to_vec();
        // struct nlmsgerr: nlmsghdr (NLMSG_ERROR, same seq) + -EPERM + the
        // request's header.
        let mut reply = Vec::with_capacity(36);
        reply.extend_from_slice(&36u32.to_ne_bytes());
        reply.extend_from_slice(&2u16.to_ne_bytes()); // NLMSG_ERROR
        reply.extend_from_slice(&0u16.to_ne_bytes());
        reply.extend_from_slice(&req[8..12]); // seq
        reply.extend_from_slice(&0u32.to_ne_bytes()); // port id
        reply.extend_from_slice(&(-1i32).to_ne_bytes()); // -EPERM
        reply.extend_from_slice(&req[..16]);
        kernel.send(&reply).unwrap();
        tx.send(req).unwrap();
    });
    let mut nl = Netlink::from_fd(OwnedFd::from(ours));
    f(&mut nl);
    t.join().unwrap();
    rx.recv().unwrap()
}

/// `bytes` with the sequence number (bytes 8..12 of the nlmsghdr) set to `seq`.
fn with_seq(mut bytes: Vec<u8>, seq: u32) -> Vec<u8> {
    bytes[8..12].copy_from_slice(&seq.to_ne_bytes());
    bytes
}

#[test]
fn address_add_is_byte_for_byte_iproute2s() {
    let got = capture(|nl| {
        let e = nl
            .add_address(3, "10.99.0.1".parse().unwrap(), 24, false)
            .unwrap_err();
        assert!(e.to_string().contains("RTM_NEWADDR"), "{e}");
    });
    assert_eq!(hex(&got), hex(&with_seq(unhex(IP_ADDR), 1)));
}

#[test]
fn default_route_add_is_byte_for_byte_iproute2s() {
    let gw: IpAddr = "10.99.0.2".parse().unwrap();
    let got = capture(|nl| {
        nl.add_default_route(gw, 3).unwrap_err();
    });
    assert_eq!(hex(&got), hex(&with_seq(unhex(IP_ROUTE), 1)));
}

/// A netlink attribute stream as (type, payload) pairs, nested ones
/// (`nested(type)`: how many header bytes precede their attributes, e.g.
/// the peer's 16-byte ifinfomsg) decoded recursively, each level sorted: the
/// kernel reads attributes by type, so their order carries no meaning.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Attr {
    Leaf(u16, Vec<u8>),
    Nest(u16, Vec<u8>, Vec<Attr>),
}

fn attrs(b: &[u8], nested: &dyn Fn(&[u16]) -> Option<usize>, path: &mut Vec<u16>) -> Vec<Attr> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 4 <= b.len() {
        let len = u16::from_ne_bytes([b[off], b[off + 1]]) as usize;
        let kind = u16::from_ne_bytes([b[off + 2], b[off + 3]]) & 0x3fff;
        let val = &b[off + 4..off + len];
        path.push(kind);
        out.push(match nested(path) {
            Some(skip) => Attr::Nest(
                kind,
                val[..skip].to_vec(),
                attrs(&val[skip..], nested, path),
            ),
            // IFLA_INFO_KIND: a string, compared without its NUL.
            None if path[..] == [18, 1] => {
                Attr::Leaf(kind, val.strip_suffix(&[0]).unwrap_or(val).to_vec())
            }
            None => Attr::Leaf(kind, val.to_vec()),
        });
        path.pop();
        off += (len + 3) & !3;
    }
    out.sort();
    out
}

/// IFLA_LINKINFO (18) › IFLA_INFO_DATA (2) › VETH_INFO_PEER (1, after an ifinfomsg).
fn veth_nesting(path: &[u16]) -> Option<usize> {
    match path {
        [18] | [18, 2] => Some(0),
        [18, 2, 1] => Some(16),
        _ => None,
    }
}

#[test]
fn veth_create_is_golden_and_has_iproute2s_attributes() {
    let got = capture(|nl| {
        nl.create_veth(&VethSpec {
            host: "vh0",
            peer: "vp0",
            peer_netns: None,
            controller: None,
            peer_mac: None,
            mtu: None,
        })
        .unwrap_err();
    });
    assert_eq!(hex(&got), hex(&unhex(BERTH_VETH)));
    let ip = unhex(IP_VETH);
    // nlmsghdr: the type is RTM_NEWLINK (16); berth's flags are
    // iproute2's REQUEST|ACK|EXCL|CREATE plus NLM_F_ECHO (0x8: the kernel
    // sends the new link back, saving an RTM_GETLINK).
    assert_eq!(got[4..6], ip[4..6]);
    let flags = |b: &[u8]| u16::from_ne_bytes([b[6], b[7]]);
    assert_eq!(flags(&got), flags(&ip) | 0x8);
    // ifinfomsg: AF_UNSPEC, IFF_UP set and in the change mask.
    assert_eq!(got[16..32], ip[16..32]);
    // The same attributes, nested ones included, order aside.
    assert_eq!(
        attrs(&got[32..], &veth_nesting, &mut Vec::new()),
        attrs(&ip[32..], &veth_nesting, &mut Vec::new())
    );
}
