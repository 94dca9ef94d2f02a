//! nftables over netlink (`NETLINK_NETFILTER`, subsystem
//! `NFNL_SUBSYS_NFTABLES`): the few messages and expressions berth's table
//! needs, encoded by hand, framed with `netlink-packet-core`. No `nft`
//! process is ever started.
//!
//! Kernel facts: changes go in one batch per sendmsg
//! (`NFNL_MSG_BATCH_BEGIN` … `NFNL_MSG_BATCH_END`, res_id
//! `NFNL_SUBSYS_NFTABLES`), applied as one transaction: all or nothing
//! (include/uapi/linux/netfilter/nfnetlink.h, nf_tables.h; Linux ≥ 3.16 for
//! batches). The kernel handles the whole batch inside `sendmsg(2)`, so every
//! ACK, error and echo is queued on the socket when it returns. Integers in
//! nf_tables attributes are big-endian; register contents (`NFTA_DATA_VALUE`)
//! are raw bytes as the expressions load them (packet fields in network
//! order, `ct status`/`fib` results in host order). The rule comment is
//! libnftnl's userdata TLV (type 0 = comment, one length byte, NUL-terminated
//! text), so `nft list ruleset` shows it.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, OwnedFd};

use netlink_packet_core::{
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable,
    NlasIterator, NLA_F_NESTED, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_ECHO,
    NLM_F_REQUEST,
};

use crate::netlink::{open_socket, recv_datagram, send_datagram, split_messages};
use berth_sys::netlink::NETLINK_NETFILTER;
// Attribute types, generated from <linux/netfilter/nf_tables.h> (libc has none);
// the other numbers are libc's.
use berth_sys::nft_abi::{
    NFTA_BITWISE_DREG, NFTA_BITWISE_LEN, NFTA_BITWISE_MASK, NFTA_BITWISE_SREG, NFTA_BITWISE_XOR,
    NFTA_CHAIN_HOOK, NFTA_CHAIN_NAME, NFTA_CHAIN_POLICY, NFTA_CHAIN_TABLE, NFTA_CHAIN_TYPE,
    NFTA_CMP_DATA, NFTA_CMP_OP, NFTA_CMP_SREG, NFTA_CT_DREG, NFTA_CT_KEY, NFTA_DATA_VALUE,
    NFTA_DATA_VERDICT, NFTA_EXPR_DATA, NFTA_EXPR_NAME, NFTA_FIB_DREG, NFTA_FIB_FLAGS,
    NFTA_FIB_F_DADDR, NFTA_FIB_RESULT, NFTA_GEN_ID, NFTA_HOOK_HOOKNUM, NFTA_HOOK_PRIORITY,
    NFTA_IMMEDIATE_DATA, NFTA_IMMEDIATE_DREG, NFTA_LIST_ELEM, NFTA_META_DREG, NFTA_META_KEY,
    NFTA_NAT_FAMILY, NFTA_NAT_FLAGS, NFTA_NAT_REG_ADDR_MIN, NFTA_NAT_REG_PROTO_MIN, NFTA_NAT_TYPE,
    NFTA_PAYLOAD_BASE, NFTA_PAYLOAD_DREG, NFTA_PAYLOAD_LEN, NFTA_PAYLOAD_OFFSET, NFTA_RULE_CHAIN,
    NFTA_RULE_EXPRESSIONS, NFTA_RULE_HANDLE, NFTA_RULE_TABLE, NFTA_RULE_USERDATA, NFTA_TABLE_NAME,
    NFTA_VERDICT_CHAIN, NFTA_VERDICT_CODE, NFT_FIB_RESULT_ADDRTYPE,
};

/// `NFNL_SUBSYS_NFTABLES` (nfnetlink.h).
const NFNL_SUBSYS_NFTABLES: u16 = libc::NFNL_SUBSYS_NFTABLES as u16;
/// `NFNL_MSG_BATCH_BEGIN` = `NLMSG_MIN_TYPE`, `NFNL_MSG_BATCH_END` = +1.
const NFNL_MSG_BATCH_BEGIN: u16 = libc::NFNL_MSG_BATCH_BEGIN as u16;
const NFNL_MSG_BATCH_END: u16 = libc::NFNL_MSG_BATCH_END as u16;
/// `NFPROTO_IPV4` (linux/netfilter.h): the `ip` family.
pub(crate) const NFPROTO_IPV4: u8 = libc::NFPROTO_IPV4 as u8;

// enum nf_tables_msg_types
const NFT_MSG_NEWTABLE: u8 = libc::NFT_MSG_NEWTABLE as u8;
const NFT_MSG_GETTABLE: u8 = libc::NFT_MSG_GETTABLE as u8;
const NFT_MSG_DELTABLE: u8 = libc::NFT_MSG_DELTABLE as u8;
const NFT_MSG_NEWCHAIN: u8 = libc::NFT_MSG_NEWCHAIN as u8;
const NFT_MSG_NEWRULE: u8 = libc::NFT_MSG_NEWRULE as u8;
const NFT_MSG_GETRULE: u8 = libc::NFT_MSG_GETRULE as u8;
const NFT_MSG_DELRULE: u8 = libc::NFT_MSG_DELRULE as u8;
const NFT_MSG_NEWGEN: u8 = libc::NFT_MSG_NEWGEN as u8;
const NFT_MSG_GETGEN: u8 = libc::NFT_MSG_GETGEN as u8;
/// `NFNL_BATCH_GENID` (nfnetlink.h): the batch applies only if the ruleset
/// generation is still this one, else the kernel answers `ERESTART`
/// (Linux ≥ 4.19; older kernels ignore it).
const NFNL_BATCH_GENID: u16 = libc::NFNL_BATCH_GENID as u16;

// values
const NFT_REG_VERDICT: u32 = libc::NFT_REG_VERDICT as u32;
const NFT_REG_1: u32 = libc::NFT_REG_1 as u32;
const NFT_REG_2: u32 = libc::NFT_REG_2 as u32;
const NFT_JUMP: i32 = libc::NFT_JUMP;
const NFT_CMP_EQ: u32 = libc::NFT_CMP_EQ as u32;
const NFT_CMP_NEQ: u32 = libc::NFT_CMP_NEQ as u32;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = libc::NFT_PAYLOAD_NETWORK_HEADER as u32;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = libc::NFT_PAYLOAD_TRANSPORT_HEADER as u32;
const NFT_META_L4PROTO: u32 = libc::NFT_META_L4PROTO as u32;
/// `enum nft_meta_keys`: NFT_META_IIFNAME.
const NFT_META_IIFNAME: u32 = libc::NFT_META_IIFNAME as u32;
/// `NF_DROP` (linux/netfilter.h).
const NF_DROP: u32 = libc::NF_DROP as u32;
/// `IFNAMSIZ`: `meta iifname` compares the full 16 bytes, NUL-padded.
const IFNAMSIZ: usize = libc::IFNAMSIZ;
const NFT_CT_STATUS: u32 = libc::NFT_CT_STATUS as u32;
const NFT_NAT_DNAT: u32 = libc::NFT_NAT_DNAT as u32;
const NF_NAT_RANGE_PROTO_SPECIFIED: u32 = 1 << 1;
/// `RTN_LOCAL` (linux/rtnetlink.h), what `fib daddr type local` compares with.
const RTN_LOCAL: u32 = libc::RTN_LOCAL as u32;
/// `IPS_DST_NAT` (linux/netfilter/nf_conntrack_common.h): `ct status dnat`.
const IPS_DST_NAT: u32 = 1 << 5;
/// `NF_ACCEPT` (linux/netfilter.h): base chain policy.
const NF_ACCEPT: u32 = libc::NF_ACCEPT as u32;
/// libnftnl's `NFTNL_UDATA_RULE_COMMENT`.
const UDATA_RULE_COMMENT: u8 = 0;

/// Netfilter hooks (enum nf_inet_hooks, linux/netfilter.h).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Hook {
    Prerouting = libc::NF_INET_PRE_ROUTING as isize,
    Output = libc::NF_INET_LOCAL_OUT as isize,
    Postrouting = libc::NF_INET_POST_ROUTING as isize,
}

/// Netlink attributes, written in place (header, value, padding to 4).
#[derive(Debug, Default)]
pub(crate) struct Attrs(Vec<u8>);

impl Attrs {
    fn put(&mut self, kind: u16, val: &[u8]) {
        let len = 4 + val.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(val);
        self.pad();
    }
    fn pad(&mut self) {
        while !self.0.len().is_multiple_of(4) {
            self.0.push(0);
        }
    }
    fn strz(&mut self, kind: u16, s: &str) {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        self.put(kind, &v);
    }
    fn be32(&mut self, kind: u16, v: u32) {
        self.put(kind, &v.to_be_bytes());
    }
    fn be64(&mut self, kind: u16, v: u64) {
        self.put(kind, &v.to_be_bytes());
    }
    fn nest(&mut self, kind: u16, f: impl FnOnce(&mut Attrs)) {
        let start = self.0.len();
        self.0.extend_from_slice(&[0, 0, 0, 0]);
        f(self);
        let len = (self.0.len() - start) as u16;
        self.0[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self.0[start + 2..start + 4].copy_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    }
    fn data(&mut self, kind: u16, value: &[u8]) {
        self.nest(kind, |a| a.put(NFTA_DATA_VALUE, value));
    }
}

/// One nf_tables expression of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expr {
    /// Load `len` bytes at `offset` of the network (`transport`: L4) header into reg 1.
    Payload {
        transport: bool,
        offset: u32,
        len: u32,
    },
    /// reg 1 = (reg 1 & mask) ^ 0.
    Mask(Vec<u8>),
    /// Compare reg 1 with `data` (`eq`, else `neq`).
    Cmp { eq: bool, data: Vec<u8> },
    /// `meta l4proto` into reg 1.
    MetaL4Proto,
    /// `meta iifname` into reg 1.
    MetaIifname,
    /// Verdict `drop`.
    Drop,
    /// `ct status` into reg 1.
    CtStatus,
    /// `fib daddr type` into reg 1.
    FibDaddrType,
    /// Jump to a chain.
    Jump(String),
    /// reg `reg` = `data`.
    Immediate { reg: u32, data: Vec<u8> },
    /// `masquerade`.
    Masq,
    /// `dnat` to the address in reg 1 and the port in reg 2.
    Dnat,
}

impl Expr {
    fn name(&self) -> &'static str {
        match self {
            Expr::Payload { .. } => "payload",
            Expr::Mask(_) => "bitwise",
            Expr::Cmp { .. } => "cmp",
            Expr::MetaL4Proto | Expr::MetaIifname => "meta",
            Expr::Drop => "immediate",
            Expr::CtStatus => "ct",
            Expr::FibDaddrType => "fib",
            Expr::Jump(_) | Expr::Immediate { .. } => "immediate",
            Expr::Masq => "masq",
            Expr::Dnat => "nat",
        }
    }

    fn encode(&self, a: &mut Attrs) {
        a.strz(NFTA_EXPR_NAME, self.name());
        a.nest(NFTA_EXPR_DATA, |a| match self {
            Expr::Payload {
                transport,
                offset,
                len,
            } => {
                a.be32(NFTA_PAYLOAD_DREG, NFT_REG_1);
                a.be32(
                    NFTA_PAYLOAD_BASE,
                    if *transport {
                        NFT_PAYLOAD_TRANSPORT_HEADER
                    } else {
                        NFT_PAYLOAD_NETWORK_HEADER
                    },
                );
                a.be32(NFTA_PAYLOAD_OFFSET, *offset);
                a.be32(NFTA_PAYLOAD_LEN, *len);
            }
            Expr::Mask(mask) => {
                a.be32(NFTA_BITWISE_SREG, NFT_REG_1);
                a.be32(NFTA_BITWISE_DREG, NFT_REG_1);
                a.be32(NFTA_BITWISE_LEN, mask.len() as u32);
                a.data(NFTA_BITWISE_MASK, mask);
                a.data(NFTA_BITWISE_XOR, &vec![0; mask.len()]);
            }
            Expr::Cmp { eq, data } => {
                a.be32(NFTA_CMP_SREG, NFT_REG_1);
                a.be32(NFTA_CMP_OP, if *eq { NFT_CMP_EQ } else { NFT_CMP_NEQ });
                a.data(NFTA_CMP_DATA, data);
            }
            Expr::MetaL4Proto => {
                a.be32(NFTA_META_KEY, NFT_META_L4PROTO);
                a.be32(NFTA_META_DREG, NFT_REG_1);
            }
            Expr::MetaIifname => {
                a.be32(NFTA_META_KEY, NFT_META_IIFNAME);
                a.be32(NFTA_META_DREG, NFT_REG_1);
            }
            Expr::Drop => {
                a.be32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
                a.nest(NFTA_IMMEDIATE_DATA, |a| {
                    a.nest(NFTA_DATA_VERDICT, |a| a.be32(NFTA_VERDICT_CODE, NF_DROP))
                });
            }
            Expr::CtStatus => {
                a.be32(NFTA_CT_KEY, NFT_CT_STATUS);
                a.be32(NFTA_CT_DREG, NFT_REG_1);
            }
            Expr::FibDaddrType => {
                a.be32(NFTA_FIB_DREG, NFT_REG_1);
                a.be32(NFTA_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
                a.be32(NFTA_FIB_FLAGS, NFTA_FIB_F_DADDR);
            }
            Expr::Jump(chain) => {
                a.be32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
                a.nest(NFTA_IMMEDIATE_DATA, |a| {
                    a.nest(NFTA_DATA_VERDICT, |a| {
                        a.be32(NFTA_VERDICT_CODE, NFT_JUMP as u32);
                        a.strz(NFTA_VERDICT_CHAIN, chain);
                    })
                });
            }
            Expr::Immediate { reg, data } => {
                a.be32(NFTA_IMMEDIATE_DREG, *reg);
                a.data(NFTA_IMMEDIATE_DATA, data);
            }
            Expr::Masq => {}
            Expr::Dnat => {
                a.be32(NFTA_NAT_TYPE, NFT_NAT_DNAT);
                a.be32(NFTA_NAT_FAMILY, u32::from(NFPROTO_IPV4));
                a.be32(NFTA_NAT_REG_ADDR_MIN, NFT_REG_1);
                a.be32(NFTA_NAT_REG_PROTO_MIN, NFT_REG_2);
                a.be32(NFTA_NAT_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED);
            }
        });
    }
}

/// `ip saddr`/`ip daddr` (`daddr`) in `net/prefix`, or not in it (`eq` false),
/// as nft writes it: a byte-aligned prefix loads just its bytes, another one
/// loads the address and masks it.
pub(crate) fn match_ip_prefix(daddr: bool, net: Ipv4Addr, prefix: u8, eq: bool) -> Vec<Expr> {
    let offset = if daddr { 16 } else { 12 };
    let octets = net.octets();
    if prefix.is_multiple_of(8) && prefix > 0 {
        let n = usize::from(prefix / 8);
        vec![
            Expr::Payload {
                transport: false,
                offset,
                len: n as u32,
            },
            Expr::Cmp {
                eq,
                data: octets[..n].to_vec(),
            },
        ]
    } else {
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix.min(32)))
        };
        vec![
            Expr::Payload {
                transport: false,
                offset,
                len: 4,
            },
            Expr::Mask(mask.to_be_bytes().to_vec()),
            Expr::Cmp {
                eq,
                data: (u32::from(net) & mask).to_be_bytes().to_vec(),
            },
        ]
    }
}

/// `fib daddr type local`.
pub(crate) fn match_daddr_local() -> Vec<Expr> {
    vec![
        Expr::FibDaddrType,
        Expr::Cmp {
            eq: true,
            data: RTN_LOCAL.to_ne_bytes().to_vec(),
        },
    ]
}

/// `iifname "<ifname>"`.
pub(crate) fn match_iifname(ifname: &str) -> Vec<Expr> {
    let mut data = ifname.as_bytes().to_vec();
    data.resize(IFNAMSIZ, 0);
    vec![Expr::MetaIifname, Expr::Cmp { eq: true, data }]
}

/// `ct status dnat`.
pub(crate) fn match_ct_dnat() -> Vec<Expr> {
    vec![
        Expr::CtStatus,
        Expr::Mask(IPS_DST_NAT.to_ne_bytes().to_vec()),
        Expr::Cmp {
            eq: false,
            data: vec![0; 4],
        },
    ]
}

/// `<tcp|udp> dport <port>` (`proto`: IPPROTO_TCP 6 or IPPROTO_UDP 17).
pub(crate) fn match_dport(proto: u8, port: u16) -> Vec<Expr> {
    vec![
        Expr::MetaL4Proto,
        Expr::Cmp {
            eq: true,
            data: vec![proto],
        },
        Expr::Payload {
            transport: true,
            offset: 2,
            len: 2,
        },
        Expr::Cmp {
            eq: true,
            data: port.to_be_bytes().to_vec(),
        },
    ]
}

/// `dnat to addr:port`.
pub(crate) fn dnat_to(addr: Ipv4Addr, port: u16) -> Vec<Expr> {
    vec![
        Expr::Immediate {
            reg: NFT_REG_1,
            data: addr.octets().to_vec(),
        },
        Expr::Immediate {
            reg: NFT_REG_2,
            data: port.to_be_bytes().to_vec(),
        },
        Expr::Dnat,
    ]
}

/// One nf_tables message: type, family, attributes.
#[derive(Debug, Clone)]
pub(crate) struct NfMsg {
    msg: u8,
    family: u8,
    attrs: Vec<u8>,
    flags: u16,
    /// What it does, for error messages.
    pub(crate) what: String,
}

impl NetlinkSerializable for NfMsg {
    fn message_type(&self) -> u16 {
        (NFNL_SUBSYS_NFTABLES << 8) | u16::from(self.msg)
    }
    fn buffer_len(&self) -> usize {
        4 + self.attrs.len()
    }
    fn serialize(&self, buffer: &mut [u8]) {
        // struct nfgenmsg { u8 nfgen_family; u8 version (NFNETLINK_V0); __be16 res_id; }
        buffer[0] = self.family;
        buffer[1] = 0;
        buffer[2..4].copy_from_slice(&0u16.to_be_bytes());
        buffer[4..4 + self.attrs.len()].copy_from_slice(&self.attrs);
    }
}

/// A reply: message type (low byte), and the attributes after the nfgenmsg.
#[derive(Debug, Clone)]
pub(crate) struct NfReply {
    msg: u8,
    /// nfgenmsg `res_id`: in nf_tables replies, the low 16 bits of the
    /// ruleset generation the message was made at.
    res_id: u16,
    attrs: Vec<u8>,
}

impl NetlinkDeserializable for NfReply {
    type Error = io::Error;
    fn deserialize(header: &NetlinkHeader, payload: &[u8]) -> Result<Self, Self::Error> {
        if payload.len() < 4 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "nf_tables message shorter than its nfgenmsg",
            ));
        }
        Ok(Self {
            msg: (header.message_type & 0xff) as u8,
            res_id: u16::from_be_bytes([payload[2], payload[3]]),
            attrs: payload[4..].to_vec(),
        })
    }
}

impl NetlinkSerializable for NfReply {
    fn message_type(&self) -> u16 {
        (NFNL_SUBSYS_NFTABLES << 8) | u16::from(self.msg)
    }
    fn buffer_len(&self) -> usize {
        4 + self.attrs.len()
    }
    fn serialize(&self, buffer: &mut [u8]) {
        buffer[..4].fill(0);
        buffer[4..4 + self.attrs.len()].copy_from_slice(&self.attrs);
    }
}

/// Batch begin/end: an nfgenmsg with `res_id = NFNL_SUBSYS_NFTABLES`;
/// the begin message may carry the generation the batch was planned at.
#[derive(Debug)]
struct BatchMark(u16, Option<u32>);

impl NetlinkSerializable for BatchMark {
    fn message_type(&self) -> u16 {
        self.0
    }
    fn buffer_len(&self) -> usize {
        4 + if self.1.is_some() { 8 } else { 0 }
    }
    fn serialize(&self, buffer: &mut [u8]) {
        buffer[0] = libc::AF_UNSPEC as u8;
        buffer[1] = 0;
        buffer[2..4].copy_from_slice(&NFNL_SUBSYS_NFTABLES.to_be_bytes());
        if let Some(gen) = self.1 {
            let mut a = Attrs::default();
            a.be32(NFNL_BATCH_GENID, gen);
            buffer[4..12].copy_from_slice(&a.0);
        }
    }
}

/// A rule as read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RuleInfo {
    pub(crate) chain: String,
    pub(crate) handle: u64,
    pub(crate) comment: Option<String>,
}

fn cstr(v: &[u8]) -> String {
    let end = v.iter().position(|b| *b == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

fn parse_rule(attrs: &[u8]) -> RuleInfo {
    let mut r = RuleInfo {
        chain: String::new(),
        handle: 0,
        comment: None,
    };
    for nla in NlasIterator::new(attrs).flatten() {
        let v = nla.value();
        match nla.kind() & !NLA_F_NESTED {
            NFTA_RULE_CHAIN => r.chain = cstr(v),
            NFTA_RULE_HANDLE if v.len() == 8 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(v);
                r.handle = u64::from_be_bytes(b);
            }
            NFTA_RULE_USERDATA => {
                // TLVs: type u8, len u8, value.
                let mut i = 0;
                while i + 2 <= v.len() {
                    let (t, l) = (v[i], usize::from(v[i + 1]));
                    let Some(val) = v.get(i + 2..i + 2 + l) else {
                        break;
                    };
                    if t == UDATA_RULE_COMMENT {
                        r.comment = Some(cstr(val));
                    }
                    i += 2 + l;
                }
            }
            _ => {}
        }
    }
    r
}

/// Builds the messages of one transaction.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    msgs: Vec<NfMsg>,
}

impl Batch {
    fn push(&mut self, msg: u8, flags: u16, what: String, f: impl FnOnce(&mut Attrs)) {
        let mut a = Attrs::default();
        f(&mut a);
        self.msgs.push(NfMsg {
            msg,
            family: NFPROTO_IPV4,
            attrs: a.0,
            flags,
            what,
        });
    }

    /// Nothing queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    /// `add table ip <table>` (no error when it exists).
    pub(crate) fn add_table(&mut self, table: &str) {
        self.push(
            NFT_MSG_NEWTABLE,
            NLM_F_CREATE,
            format!("add table ip {table}"),
            |a| a.strz(NFTA_TABLE_NAME, table),
        );
    }

    /// `delete table ip <table>`.
    pub(crate) fn del_table(&mut self, table: &str) {
        self.push(
            NFT_MSG_DELTABLE,
            0,
            format!("delete table ip {table}"),
            |a| a.strz(NFTA_TABLE_NAME, table),
        );
    }

    /// `add chain` — a regular chain, or a nat base chain on `hook` with
    /// `priority` and policy accept (no error when it exists alike).
    pub(crate) fn add_chain(&mut self, table: &str, chain: &str, base: Option<(Hook, i32)>) {
        self.add_typed_chain(table, chain, base, "nat")
    }

    /// `add chain` — a base chain of type `kind` (`nat`, `filter`) when
    /// `base` is given, policy accept (no error when it exists alike).
    pub(crate) fn add_typed_chain(
        &mut self,
        table: &str,
        chain: &str,
        base: Option<(Hook, i32)>,
        kind: &str,
    ) {
        self.push(
            NFT_MSG_NEWCHAIN,
            NLM_F_CREATE,
            format!("add chain ip {table} {chain}"),
            |a| {
                a.strz(NFTA_CHAIN_TABLE, table);
                a.strz(NFTA_CHAIN_NAME, chain);
                if let Some((hook, prio)) = base {
                    a.nest(NFTA_CHAIN_HOOK, |a| {
                        a.be32(NFTA_HOOK_HOOKNUM, hook as u32);
                        a.be32(NFTA_HOOK_PRIORITY, prio as u32);
                    });
                    a.be32(NFTA_CHAIN_POLICY, NF_ACCEPT);
                    a.strz(NFTA_CHAIN_TYPE, kind);
                }
            },
        );
    }

    /// `flush chain` (a DELRULE naming only the chain).
    pub(crate) fn flush_chain(&mut self, table: &str, chain: &str) {
        self.push(
            NFT_MSG_DELRULE,
            0,
            format!("flush chain ip {table} {chain}"),
            |a| {
                a.strz(NFTA_RULE_TABLE, table);
                a.strz(NFTA_RULE_CHAIN, chain);
            },
        );
    }

    /// `add rule` (appended), with an optional comment. With `echo`, the
    /// kernel sends the new rule back, with its handle.
    pub(crate) fn add_rule(
        &mut self,
        table: &str,
        chain: &str,
        exprs: &[Expr],
        comment: Option<&str>,
        echo: bool,
    ) {
        let what = match comment {
            Some(c) => format!("add rule ip {table} {chain} (comment {c:?})"),
            None => format!("add rule ip {table} {chain}"),
        };
        let flags = NLM_F_CREATE | NLM_F_APPEND | if echo { NLM_F_ECHO } else { 0 };
        self.push(NFT_MSG_NEWRULE, flags, what, |a| {
            a.strz(NFTA_RULE_TABLE, table);
            a.strz(NFTA_RULE_CHAIN, chain);
            a.nest(NFTA_RULE_EXPRESSIONS, |a| {
                for e in exprs {
                    a.nest(NFTA_LIST_ELEM, |a| e.encode(a));
                }
            });
            if let Some(c) = comment {
                // NFT_USERDATA_MAXLEN is 256; berth's comments are far shorter
                // (ids ≤ 64 bytes), and validate_id keeps them ASCII.
                let n = c.len().min(250);
                let mut ud = vec![UDATA_RULE_COMMENT, (n + 1) as u8];
                ud.extend_from_slice(&c.as_bytes()[..n]);
                ud.push(0);
                a.put(NFTA_RULE_USERDATA, &ud);
            }
        });
    }

    /// `delete rule ip <table> <chain> handle <h>`.
    pub(crate) fn del_rule(&mut self, table: &str, chain: &str, handle: u64) {
        self.push(
            NFT_MSG_DELRULE,
            0,
            format!("delete rule ip {table} {chain} handle {handle}"),
            |a| {
                a.strz(NFTA_RULE_TABLE, table);
                a.strz(NFTA_RULE_CHAIN, chain);
                a.be64(NFTA_RULE_HANDLE, handle);
            },
        );
    }
}

/// An error of one message of a batch: what it did and the errno.
#[derive(Debug)]
pub(crate) struct BatchError {
    pub(crate) what: String,
    pub(crate) source: io::Error,
}

impl BatchError {
    /// The ruleset changed since the generation the batch was planned at.
    pub(crate) fn is_stale(&self) -> bool {
        self.source.raw_os_error() == Some(libc::ERESTART)
    }
}

/// A `NETLINK_NETFILTER` socket, bound to the netns it was opened in.
#[derive(Debug)]
pub(crate) struct NfSocket {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

fn frame<T: NetlinkSerializable>(out: &mut Vec<u8>, payload: T, flags: u16, seq: u32) {
    let mut h = NetlinkHeader::default();
    h.flags = NLM_F_REQUEST | flags;
    h.sequence_number = seq;
    let mut m = NetlinkMessage::new(h, NetlinkPayload::InnerMessage(payload));
    m.finalize();
    let start = out.len();
    out.resize(start + m.buffer_len(), 0);
    m.serialize(&mut out[start..]);
}

#[cfg(test)]
impl std::os::fd::AsRawFd for NfSocket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.fd)
    }
}

impl NfSocket {
    /// Open a `NETLINK_NETFILTER` socket in the calling thread's netns.
    pub(crate) fn open() -> io::Result<Self> {
        let fd = open_socket(NETLINK_NETFILTER).map_err(|(_, e)| e)?;
        Ok(Self {
            fd,
            seq: 0,
            buf: vec![0; 64 * 1024],
        })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn send(&self, data: &[u8]) -> io::Result<()> {
        send_datagram(self.fd.as_fd(), data)
    }

    /// One recv; `Ok(None)` when nothing is queued and `nonblock`.
    fn recv(&mut self, nonblock: bool) -> io::Result<Option<usize>> {
        recv_datagram(self.fd.as_fd(), &mut self.buf, nonblock)
    }

    /// Decode the messages of the last recv of `n` bytes.
    fn messages(&self, n: usize) -> io::Result<Vec<(u32, NetlinkPayload<NfReply>)>> {
        let mut out = Vec::new();
        for (seq, chunk) in split_messages(&self.buf[..n])? {
            match NetlinkMessage::<NfReply>::deserialize(chunk) {
                Ok(m) => out.push((seq, m.payload)),
                Err(e) => tracing::debug!(error = %e, "skipping undecodable nfnetlink message"),
            }
        }
        Ok(out)
    }

    /// A dump request; every reply message (generation, attributes) until `NLMSG_DONE`.
    fn dump(&mut self, msg: u8, table: &str) -> io::Result<Vec<(u16, Vec<u8>)>> {
        let seq = self.next_seq();
        let mut a = Attrs::default();
        a.strz(NFTA_RULE_TABLE, table);
        let m = NfMsg {
            msg,
            family: NFPROTO_IPV4,
            attrs: a.0,
            flags: 0,
            what: String::new(),
        };
        let mut out = Vec::new();
        frame(&mut out, m, NLM_F_DUMP, seq);
        self.send(&out)?;
        let mut res = Vec::new();
        loop {
            let Some(n) = self.recv(false)? else {
                continue;
            };
            for (s, p) in self.messages(n)? {
                if s != seq {
                    continue;
                }
                match p {
                    NetlinkPayload::Done(_) => return Ok(res),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(res),
                            Some(c) => Err(io::Error::from_raw_os_error(-c.get())),
                        }
                    }
                    NetlinkPayload::InnerMessage(r) => res.push((r.res_id, r.attrs)),
                    _ => {}
                }
            }
        }
    }

    /// True when table `ip <table>` exists (`NFT_MSG_GETTABLE`, `ENOENT` if not).
    pub(crate) fn table_exists(&mut self, table: &str) -> io::Result<bool> {
        let seq = self.next_seq();
        let mut a = Attrs::default();
        a.strz(NFTA_TABLE_NAME, table);
        let m = NfMsg {
            msg: NFT_MSG_GETTABLE,
            family: NFPROTO_IPV4,
            attrs: a.0,
            flags: 0,
            what: String::new(),
        };
        let mut out = Vec::new();
        frame(&mut out, m, NLM_F_ACK, seq);
        self.send(&out)?;
        loop {
            let Some(n) = self.recv(false)? else {
                continue;
            };
            for (s, p) in self.messages(n)? {
                if s != seq {
                    continue;
                }
                if let NetlinkPayload::Error(e) = p {
                    return match e.code {
                        None => Ok(true),
                        Some(c) if -c.get() == libc::ENOENT => Ok(false),
                        Some(c) => Err(io::Error::from_raw_os_error(-c.get())),
                    };
                }
            }
        }
    }

    /// Every rule of table `ip <table>` (empty when the table does not exist).
    /// Kernel: `NFTA_RULE_TABLE` filters a `NFT_MSG_GETRULE` dump (Linux ≥ 4.10).
    pub(crate) fn rules(&mut self, table: &str) -> io::Result<Vec<RuleInfo>> {
        Ok(self.rules_with_gen(table)?.0)
    }

    /// [`NfSocket::rules`], and the low 16 bits of the generation of every
    /// reply (`None` when there was none).
    fn rules_with_gen(&mut self, table: &str) -> io::Result<(Vec<RuleInfo>, Vec<u16>)> {
        match self.dump(NFT_MSG_GETRULE, table) {
            Ok(v) => Ok((
                v.iter().map(|(_, a)| parse_rule(a)).collect(),
                v.iter().map(|(g, _)| *g).collect(),
            )),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok((Vec::new(), Vec::new())),
            Err(e) => Err(e),
        }
    }

    /// The ruleset generation (`NFT_MSG_GETGEN`, Linux ≥ 3.19): it changes
    /// with every committed transaction in this netns.
    pub(crate) fn generation(&mut self) -> io::Result<u32> {
        let seq = self.next_seq();
        let m = NfMsg {
            msg: NFT_MSG_GETGEN,
            family: libc::AF_UNSPEC as u8,
            attrs: Vec::new(),
            flags: 0,
            what: String::new(),
        };
        let mut out = Vec::new();
        frame(&mut out, m, NLM_F_ACK, seq);
        self.send(&out)?;
        let mut gen = None;
        loop {
            let Some(n) = self.recv(false)? else {
                continue;
            };
            for (s, p) in self.messages(n)? {
                if s != seq {
                    continue;
                }
                match p {
                    NetlinkPayload::InnerMessage(r) if r.msg == NFT_MSG_NEWGEN => {
                        for nla in NlasIterator::new(&r.attrs[..]).flatten() {
                            let v = nla.value();
                            if nla.kind() & !NLA_F_NESTED == NFTA_GEN_ID && v.len() == 4 {
                                gen = Some(u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
                            }
                        }
                    }
                    NetlinkPayload::Error(e) => {
                        return match (e.code, gen) {
                            (Some(c), _) => Err(io::Error::from_raw_os_error(-c.get())),
                            (None, Some(g)) => Ok(g),
                            (None, None) => Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                "NFT_MSG_GETGEN answered without NFTA_GEN_ID",
                            )),
                        };
                    }
                    _ => {}
                }
            }
        }
    }

    /// A consistent snapshot: the generation and every rule of `table` at
    /// that generation (re-read when a transaction landed in between).
    pub(crate) fn snapshot(&mut self, table: &str) -> io::Result<(u32, Vec<RuleInfo>)> {
        for _ in 0..32 {
            let gen = self.generation()?;
            let (rules, gens) = self.rules_with_gen(table)?;
            if gens.iter().all(|g| *g == gen as u16) && self.generation()? == gen {
                return Ok((gen, rules));
            }
        }
        Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "the nftables ruleset kept changing while it was read",
        ))
    }

    /// Send `batch` as one transaction (one sendmsg) and check every ACK.
    /// Returns the rules the kernel echoed (with their handles), in order.
    ///
    /// With `gen`, the kernel applies the batch only if the ruleset is still
    /// at that generation; otherwise the error is `ERESTART`
    /// ([`BatchError::is_stale`]) and nothing changed.
    pub(crate) fn commit(
        &mut self,
        batch: Batch,
        gen: Option<u32>,
    ) -> Result<Vec<RuleInfo>, BatchError> {
        if batch.msgs.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(512);
        let begin = self.next_seq();
        frame(&mut out, BatchMark(NFNL_MSG_BATCH_BEGIN, gen), 0, begin);
        let mut pending: Vec<(u32, String)> = Vec::with_capacity(batch.msgs.len());
        for m in batch.msgs {
            let seq = self.next_seq();
            let flags = m.flags | NLM_F_ACK;
            pending.push((seq, m.what.clone()));
            frame(&mut out, m, flags, seq);
        }
        let end = self.next_seq();
        frame(&mut out, BatchMark(NFNL_MSG_BATCH_END, None), 0, end);
        let sock_err = |source| BatchError {
            what: "nftables batch".into(),
            source,
        };
        self.send(&out).map_err(sock_err)?;
        // The kernel processed the batch inside send(2): every reply is queued.
        let mut echoed = Vec::new();
        let mut acked = 0usize;
        let mut first_err: Option<BatchError> = None;
        while let Some(n) = self.recv(true).map_err(sock_err)? {
            for (seq, p) in self.messages(n).map_err(sock_err)? {
                let what = || {
                    pending
                        .iter()
                        .find(|(s, _)| *s == seq)
                        .map(|(_, w)| w.clone())
                };
                match p {
                    NetlinkPayload::Error(e) => match e.code {
                        None => acked += usize::from(what().is_some()),
                        Some(c) => {
                            if first_err.is_none() {
                                first_err = Some(BatchError {
                                    what: what().unwrap_or_else(|| "nftables batch".into()),
                                    source: io::Error::from_raw_os_error(-c.get()),
                                });
                            }
                        }
                    },
                    NetlinkPayload::InnerMessage(r)
                        if r.msg == NFT_MSG_NEWRULE && what().is_some() =>
                    {
                        echoed.push(parse_rule(&r.attrs));
                    }
                    _ => {}
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        if acked != pending.len() {
            return Err(BatchError {
                what: "nftables batch".into(),
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} of {} messages acknowledged", acked, pending.len()),
                ),
            });
        }
        Ok(echoed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attrs_are_aligned_and_nested() {
        let mut a = Attrs::default();
        a.strz(1, "abc");
        assert_eq!(a.0, [8, 0, 1, 0, b'a', b'b', b'c', 0]);
        let mut a = Attrs::default();
        a.nest(4, |a| a.be32(1, 0x0102_0304));
        assert_eq!(
            a.0,
            [12, 0, 4, 0x80, 8, 0, 1, 0, 1, 2, 3, 4],
            "nested flag and big-endian value"
        );
        let mut a = Attrs::default();
        a.put(7, &[1]);
        assert_eq!(a.0.len(), 8, "padded to 4");
        assert_eq!(&a.0[..2], &5u16.to_ne_bytes());
    }

    #[test]
    fn prefixes_like_nft() {
        let net = Ipv4Addr::new(10, 88, 0, 0);
        assert_eq!(
            match_ip_prefix(false, net, 16, true),
            vec![
                Expr::Payload {
                    transport: false,
                    offset: 12,
                    len: 2
                },
                Expr::Cmp {
                    eq: true,
                    data: vec![10, 88]
                }
            ]
        );
        let v = match_ip_prefix(true, Ipv4Addr::new(10, 88, 0, 0), 21, false);
        assert_eq!(v[1], Expr::Mask(vec![255, 255, 248, 0]));
        assert_eq!(
            v[2],
            Expr::Cmp {
                eq: false,
                data: vec![10, 88, 0, 0]
            }
        );
        assert_eq!(
            match_ip_prefix(true, net, 0, true)[1],
            Expr::Mask(vec![0; 4])
        );
    }

    #[test]
    fn a_batch_planned_at_an_old_generation_is_refused() {
        berth_testkit::privileged!();
        let ns = crate::NetNs::new_anonymous().unwrap();
        let mut a = ns.run(NfSocket::open).unwrap().unwrap();
        let (gen, rules) = a.snapshot("berthgen").unwrap();
        assert!(rules.is_empty());
        // another writer commits meanwhile
        let mut b = ns.run(NfSocket::open).unwrap().unwrap();
        let mut t = Batch::default();
        t.add_table("berthgen");
        b.commit(t, None).unwrap();
        // what `a` planned at `gen` is refused, and nothing of it applied
        let mut t = Batch::default();
        t.add_table("berthgen2");
        let e = a.commit(t, Some(gen)).unwrap_err();
        assert!(e.is_stale(), "{e:?}");
        assert!(!a.table_exists("berthgen2").unwrap());
        // planned again at the current generation, it applies
        let (gen2, _) = a.snapshot("berthgen").unwrap();
        assert_ne!(gen, gen2);
        let mut t = Batch::default();
        t.add_table("berthgen2");
        a.commit(t, Some(gen2)).unwrap();
        assert!(a.table_exists("berthgen2").unwrap());
    }

    #[test]
    fn rule_comment_round_trips_through_userdata() {
        let mut b = Batch::default();
        b.add_rule(
            "berth",
            "published",
            &dnat_to(Ipv4Addr::new(10, 0, 0, 2), 80),
            Some("berth ctr=x port=tcp/*:80"),
            true,
        );
        let m = &b.msgs[0];
        assert_eq!(m.msg, NFT_MSG_NEWRULE);
        assert_ne!(m.flags & NLM_F_ECHO, 0);
        let r = parse_rule(&m.attrs);
        assert_eq!(r.chain, "published");
        assert_eq!(r.comment.as_deref(), Some("berth ctr=x port=tcp/*:80"));
    }

    /// Golden bytes of the nftables encoder (no root, no kernel): the batch
    /// `add table ip t; add chain ip t prerouting { type nat hook prerouting
    /// priority -100; policy accept; }; add rule ip t prerouting meta
    /// l4proto tcp tcp dport 8080 dnat to 10.88.0.2:80`, sent by
    /// [`NfSocket::commit`] to a fake kernel (a Unix datagram socket pair
    /// that never answers: the commit then fails with "0 of 3 messages
    /// acknowledged"), against the batch nft sends for the same ruleset.
    ///
    /// How nft's bytes were obtained (nftables 1.0.6, Linux 6.18), in a
    /// network namespace made for the capture (`unshare -n`, gone
    /// afterwards), the three commands above in `golden.nft`:
    ///
    /// ```sh
    /// unshare -n strace -e trace=sendmsg -e write=3 nft -f golden.nft
    /// unshare -n nft --debug=netlink -f golden.nft   # the expressions, decoded
    /// ```
    ///
    /// (`-e write=3` dumps the bytes of the `sendmsg` on the netlink socket.)
    /// The expressions of the rule are byte for byte nft's; the table and
    /// chain carry the same attributes (nft adds `NFTA_TABLE_FLAGS` 0 and
    /// orders the chain's differently); berth asks for an ACK per message
    /// and creates the table with `NLM_F_CREATE` (no error when it exists).
    #[test]
    fn batch_is_golden_and_its_rule_is_byte_for_byte_nfts() {
        use std::os::unix::net::UnixDatagram;
        const NFT_BEGIN: &str = "140000001000010000000000000000000000000a";
        const NFT_TABLE: &str =
            "24000000000a010001000000000000000200000006000100740000000800020000000000";
        const NFT_CHAIN: &str = "50000000030a010402000000000000000200000006000100740000000f000300707265726f7574696e670000080007006e617400080005000000000114000480080001000000000008000200ffffff9c";
        const NFT_RULE: &str = "70010000060a010c03000000000000000200000006000100740000000f000200707265726f7574696e6700004401048024000180090001006d6574610000000014000280080002000000001008000100000000012c00018008000100636d700020000280080001000000000108000200000000000c0003800500010006000000340001800c0001007061796c6f6164002400028008000100000000010800020000000002080003000000000208000400000000022c00018008000100636d700020000280080001000000000108000200000000000c000380060001001f9000002c0001800e000100696d6d6564696174650000001800028008000100000000010c000280080001000a5800022c0001800e000100696d6d6564696174650000001800028008000100000000020c000280060001000050000038000180080001006e6174002c00028008000100000000010800020000000002080003000000000108000500000000020800070000000002";
        const NFT_END: &str = "140000001100010004000000000000000000000a";
        /// berth's batch, recorded from this encoder (sequence numbers 1 to 5).
        const BERTH: &str = "140000001000010001000000000000000000000a1c000000000a050402000000\
            0000000002000000060001007400000050000000030a05040300000000000000\
            0200000006000100740000000f000300707265726f7574696e67000014000480\
            080001000000000008000200ffffff9c0800050000000001080007006e617400\
            70010000060a050c04000000000000000200000006000100740000000f000200\
            707265726f7574696e6700004401048024000180090001006d65746100000000\
            14000280080002000000001008000100000000012c00018008000100636d7000\
            20000280080001000000000108000200000000000c0003800500010006000000\
            340001800c0001007061796c6f61640024000280080001000000000108000200\
            00000002080003000000000208000400000000022c00018008000100636d7000\
            20000280080001000000000108000200000000000c000380060001001f900000\
            2c0001800e000100696d6d656469617465000000180002800800010000000001\
            0c000280080001000a5800022c0001800e000100696d6d656469617465000000\
            1800028008000100000000020c00028006000100005000003800018008000100\
            6e6174002c000280080001000000000108000200000000020800030000000001\
            0800050000000002080007000000000214000000110001000500000000000000\
            0000000a";
        let unhex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let hex = |b: &[u8]| -> String { b.iter().map(|x| format!("{x:02x}")).collect() };

        let (ours, kernel) = UnixDatagram::pair().unwrap();
        let mut sock = NfSocket {
            fd: OwnedFd::from(ours),
            seq: 0,
            buf: vec![0; 64 * 1024],
        };
        let mut b = Batch::default();
        b.add_table("t");
        b.add_chain("t", "prerouting", Some((Hook::Prerouting, -100)));
        let mut rule = match_dport(libc::IPPROTO_TCP as u8, 8080);
        rule.extend(dnat_to(Ipv4Addr::new(10, 88, 0, 2), 80));
        b.add_rule("t", "prerouting", &rule, None, false);
        let e = sock.commit(b, None).unwrap_err();
        assert!(e.source.to_string().contains("0 of 3"), "{e:?}");
        let mut got = vec![0u8; 64 * 1024];
        let n = kernel.recv(&mut got).unwrap();
        got.truncate(n);
        assert_eq!(hex(&got), BERTH);

        let msgs = split_messages(&got).unwrap();
        assert_eq!(msgs.len(), 5);
        fn seq_flags(m: &[u8]) -> (u16, &[u8]) {
            (u16::from_ne_bytes([m[6], m[7]]), &m[16..])
        }
        // Batch begin and end: the same but for the sequence numbers.
        for (mine, theirs) in [(msgs[0].1, NFT_BEGIN), (msgs[4].1, NFT_END)] {
            let theirs = unhex(theirs);
            assert_eq!(mine[..8], theirs[..8]);
            assert_eq!(mine[16..], theirs[16..]);
        }
        // The table: NFTA_TABLE_NAME "t" (nft adds NFTA_TABLE_FLAGS 0).
        let table = unhex(NFT_TABLE);
        let (flags, body) = seq_flags(msgs[1].1);
        assert_eq!(flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE);
        assert_eq!(body, &table[16..28]);
        // The chain: nft's attributes, in another order.
        let chain = unhex(NFT_CHAIN);
        let (flags, body) = seq_flags(msgs[2].1);
        assert_eq!(flags, seq_flags(&chain).0 | NLM_F_ACK);
        let sorted = |b: &[u8]| {
            let mut v = Vec::new();
            let mut off = 4;
            while off < b.len() {
                let len = usize::from(u16::from_ne_bytes([b[off], b[off + 1]]));
                v.push(b[off..off + len].to_vec());
                off += (len + 3) & !3;
            }
            v.sort();
            v
        };
        assert_eq!(body[..4], chain[16..20]);
        assert_eq!(sorted(body), sorted(&chain[16..]));
        // The rule: byte for byte nft's but for the sequence number and ACK.
        let nft_rule = unhex(NFT_RULE);
        let (flags, body) = seq_flags(msgs[3].1);
        assert_eq!(flags, seq_flags(&nft_rule).0 | NLM_F_ACK);
        assert_eq!(msgs[3].1[..6], nft_rule[..6]);
        assert_eq!(hex(body), hex(&nft_rule[16..]));
    }
}
