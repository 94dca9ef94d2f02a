//! `berth-netsetup`: container networking over netlink.
//!
//! This crate owns links (bridges, veth pairs), addresses and routes over
//! netlink, network namespace handles, IPAM, NAT and published ports with
//! nftables, in a table of berth's own.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
