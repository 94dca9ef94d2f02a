//! Issue 20 item 5 (CVE-2020-13401 class): a container on a bridge network
//! sends IPv6 router advertisements (it has `NET_RAW`). Neither the netns
//! holding the bridge nor another container may take a default route or an
//! autoconf address from them.
//!
//! Everything happens in namespaces this test made: a private "host" netns
//! holds the bridge, two namespaces are attached to it as containers are,
//! and a third, plain namespace plugged into the bridge by the test (not by
//! berth, so it keeps the kernel's default `accept_ra=1`) is the control: it
//! must take the route, which proves the advertisement was well formed and
//! crossed the bridge.

mod common;

use std::io;
use std::path::Path;

use berth_netsetup::{Attach, BridgeNetwork, NetNs};
use common::*;

const PREFIX: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
const PREFIX_TEXT: &str = "2001:db8:1:";

/// A router advertisement (RFC 4861 §4.2): router lifetime 1800 s, one
/// prefix information option 2001:db8:1::/64 with the on-link and
/// autonomous flags. The kernel fills in the ICMPv6 checksum of a raw
/// ICMPv6 socket (RFC 3542 §3.1).
fn ra_packet() -> Vec<u8> {
    let mut p = vec![
        134, 0, 0, 0, // type, code, checksum
        64, 0, // cur hop limit, flags
    ];
    p.extend_from_slice(&1800u16.to_be_bytes()); // router lifetime
    p.extend_from_slice(&[0; 8]); // reachable time, retrans timer
    p.extend_from_slice(&[3, 4, 64, 0xc0]); // PIO: type, len (×8), prefix len, L|A
    p.extend_from_slice(&86400u32.to_be_bytes()); // valid lifetime
    p.extend_from_slice(&14400u32.to_be_bytes()); // preferred lifetime
    p.extend_from_slice(&[0; 4]);
    p.extend_from_slice(&PREFIX);
    p
}

/// Send the RA to ff02::1 out of `ifname` from inside `ns`, hop limit 255
/// (receivers drop any other, RFC 4861 §6.1.2).
fn send_ra(ns: &NetNs, ifname: &str) {
    let name = std::ffi::CString::new(ifname).unwrap();
    // SAFETY: libc calls on a NUL-terminated name, a socket this closure
    // owns and closes, and local buffers of the sizes passed.
    ns.run(move || unsafe {
        let idx = libc::if_nametoindex(name.as_ptr());
        assert_ne!(idx, 0, "if_nametoindex: {}", io::Error::last_os_error());
        let s = libc::socket(
            libc::AF_INET6,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_ICMPV6,
        );
        assert!(s >= 0, "raw ICMPv6 socket: {}", io::Error::last_os_error());
        let hops: libc::c_int = 255;
        let ifi = idx as libc::c_int;
        for (opt, v) in [
            (libc::IPV6_MULTICAST_HOPS, &hops),
            (libc::IPV6_MULTICAST_IF, &ifi),
        ] {
            let r = libc::setsockopt(
                s,
                libc::IPPROTO_IPV6,
                opt,
                (v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
            assert_eq!(r, 0, "setsockopt {opt}: {}", io::Error::last_os_error());
        }
        let mut dst: libc::sockaddr_in6 = std::mem::zeroed();
        dst.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        dst.sin6_addr.s6_addr = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        dst.sin6_scope_id = idx;
        let pkt = ra_packet();
        let n = libc::sendto(
            s,
            pkt.as_ptr().cast(),
            pkt.len(),
            0,
            (&dst as *const libc::sockaddr_in6).cast(),
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        );
        let err = io::Error::last_os_error();
        libc::close(s);
        assert_eq!(n, pkt.len() as isize, "sendto ff02::1: {err}");
    })
    .unwrap();
}

/// `/proc/sys/...` as seen from inside `ns`.
fn sysctl(ns: &NetNs, path: &str) -> String {
    let p = path.to_string();
    ns.run(move || std::fs::read_to_string(&p))
        .unwrap()
        .unwrap_or_else(|e| panic!("read {path}: {e}"))
        .trim()
        .to_string()
}

fn set_sysctl(ns: &NetNs, path: &str, v: &str) {
    let (p, v) = (path.to_string(), v.to_string());
    ns.run(move || std::fs::write(&p, v)).unwrap().unwrap();
}

/// Default routes and addresses in 2001:db8:1::/64 that `ns` took.
fn taken(ns: &TestNs) -> (Vec<String>, Vec<String>) {
    let routes = ns
        .ip_json(&["-6", "route", "show", "default"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("default via {} dev {}", r["gateway"], r["dev"]))
        .collect();
    let addrs = ns
        .ip_json(&["-6", "addr", "show"])
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["local"].as_str().map(str::to_string))
        .filter(|a| a.starts_with(PREFIX_TEXT))
        .collect();
    (routes, addrs)
}

#[test]
fn router_advertisement_from_a_container_is_ignored_by_bridge_and_neighbours() {
    berth_testkit::privileged!();
    if !Path::new("/proc/sys/net/ipv6").exists() {
        eprintln!("skipped: IPv6 is disabled on this host");
        return;
    }
    let host = TestNs::new();
    let state = tempfile::tempdir().unwrap();
    let host_all = sysctl(&host.handle, "/proc/sys/net/ipv6/conf/all/accept_ra");
    let host_default = sysctl(&host.handle, "/proc/sys/net/ipv6/conf/default/accept_ra");
    let net = BridgeNetwork::new("ra")
        .bridge("br-ra")
        .subnet("10.202.0.0/24")
        .masquerade(false)
        .ip_forward(false)
        .state_dir(state.path())
        .host_netns(&host.handle)
        .unwrap()
        .ensure()
        .unwrap();

    let attacker = TestNs::new();
    let victim = TestNs::new();
    // The attacker's own namespace: skip DAD so its link-local source
    // address is usable at once (an RA from `::` is dropped).
    set_sysctl(
        &attacker.handle,
        "/proc/sys/net/ipv6/conf/default/accept_dad",
        "0",
    );
    let a1 = net
        .attach(&attacker.handle, &Attach::new("ra-attacker"))
        .unwrap();
    let a2 = net
        .attach(&victim.handle, &Attach::new("ra-victim"))
        .unwrap();

    // Control: a plain netns on the same bridge, plugged in by the test.
    let control = TestNs::new();
    host.ip(&[
        "link",
        "add",
        "ra-ctl",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        control.name(),
    ]);
    host.ip(&["link", "set", "ra-ctl", "master", "br-ra", "up"]);
    control.ip(&["link", "set", "eth0", "up"]);

    assert!(
        wait_for(10, || {
            let a = attacker.ip_json(&["-6", "addr", "show", "dev", "eth0", "scope", "link"]);
            a[0]["addr_info"].as_array().is_some_and(|i| {
                i.iter()
                    .any(|x| x["family"] == "inet6" && x.get("tentative").is_none())
            })
        }),
        "the attacker's eth0 got no usable link-local address"
    );
    for _ in 0..3 {
        send_ra(&attacker.handle, "eth0");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    assert!(
        wait_for(5, || !taken(&control).0.is_empty()),
        "control netns (accept_ra=1, not berth's) never took the RA: the test's RA is not working"
    );
    // The victims had the same time as the control; give a late RA a moment more.
    std::thread::sleep(std::time::Duration::from_millis(500));

    let mut failures = Vec::new();
    for (who, ns) in [("bridge netns", &host), ("other container", &victim)] {
        let (routes, addrs) = taken(ns);
        if !routes.is_empty() {
            failures.push(format!("{who} took a default route: {routes:?}"));
        }
        if !addrs.is_empty() {
            failures.push(format!("{who} took an autoconf address: {addrs:?}"));
        }
    }
    for ns in [&attacker, &victim] {
        for conf in ["all", "default", "eth0"] {
            let p = format!("/proc/sys/net/ipv6/conf/{conf}/accept_ra");
            let v = sysctl(&ns.handle, &p);
            if v != "0" {
                failures.push(format!("container {}: {p} = {v}", ns.name()));
            }
        }
    }
    for ifname in ["br-ra", a1.host_ifname(), a2.host_ifname()] {
        let p = format!("/proc/sys/net/ipv6/conf/{ifname}/accept_ra");
        let v = sysctl(&host.handle, &p);
        if v != "0" {
            failures.push(format!("host side: {p} = {v}"));
        }
    }
    // The host netns's global values are never changed.
    assert_eq!(
        sysctl(&host.handle, "/proc/sys/net/ipv6/conf/all/accept_ra"),
        host_all
    );
    assert_eq!(
        sysctl(&host.handle, "/proc/sys/net/ipv6/conf/default/accept_ra"),
        host_default
    );

    a1.detach().unwrap();
    a2.detach().unwrap();
    drop(control);
    net.remove().unwrap();
    assert!(
        wait_for(10, || host.link_names() == vec!["lo".to_string()]),
        "{:?}",
        host.link_names()
    );
    assert!(state_files(state.path()).is_empty());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
