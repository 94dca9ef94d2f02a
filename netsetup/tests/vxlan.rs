//! Privileged tests of VXLAN overlays. Three network namespaces stand in for
//! three hosts, joined by a veth "underlay" (192.0.2.0/24, TEST-NET-1) through
//! a fourth namespace acting as the switch; in each "host" the overlay's
//! bridge and VXLAN device, and containers (namespaces attached as berth
//! attaches them). Every packet stays inside namespaces the test created.

mod common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::Path;

use berth_netsetup::{Attach, Attachment, BridgeNetwork, Overlay, OverlayMember, VxlanNetwork};
use berth_testkit::run_ok;
use common::*;

const VNI: u32 = 4242;
const VX: &str = "vx4242";
const MEMBERS: &str = "# overlay ov: one line per host, VTEP and its range\n\
                       192.0.2.1 10.200.1.0/24\n\
                       192.0.2.2 10.200.2.0/24\n\
                       192.0.2.3 10.200.3.0/24\n";

/// The underlay: a switch netns with a bridge, and host `i` plugged into it
/// by a veth whose host end is `ul0` with 192.0.2.`i`/24.
struct Lab {
    switch: TestNs,
    hosts: Vec<TestNs>,
}

impl Lab {
    fn new(n: u8) -> Self {
        let switch = TestNs::new();
        switch.ip(&["link", "add", "sw", "type", "bridge"]);
        switch.ip(&["link", "set", "sw", "up"]);
        let mut hosts = Vec::new();
        for i in 1..=n {
            let h = TestNs::new();
            let port = format!("p{i}");
            switch.ip(&[
                "link",
                "add",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                "ul0",
                "netns",
                h.name(),
            ]);
            switch.ip(&["link", "set", &port, "master", "sw", "up"]);
            h.ip(&["addr", "add", &format!("192.0.2.{i}/24"), "dev", "ul0"]);
            h.ip(&["link", "set", "ul0", "up"]);
            hosts.push(h);
        }
        Self { switch, hosts }
    }
}

fn overlay(host: &TestNs, state: &Path, members: &Path) -> VxlanNetwork {
    VxlanNetwork::new("ov", VNI)
        .subnet("10.200.0.0/16")
        .bridge("br-ov")
        .members_file(members)
        .state_dir(state)
        .host_netns(&host.handle)
        .unwrap()
}

/// One busybox ping from inside `ns`; true when answered.
fn ping(ns: &TestNs, extra: &[&str], to: Ipv4Addr) -> bool {
    let to = to.to_string();
    let mut a = vec!["netns", "exec", ns.name(), "busybox", "ping", "-c", "1"];
    a.extend_from_slice(extra);
    a.push(&to);
    run_ok("ip", &a)
}

fn mtu_of(ns: &TestNs, dev: &str) -> u64 {
    ns.ip_json(&["link", "show", dev])[0]["mtu"]
        .as_u64()
        .unwrap()
}

#[test]
fn three_hosts_share_one_overlay_and_teardown_leaves_nothing() {
    berth_testkit::privileged!();
    let host_fwd = host_ip_forward();
    let lab = Lab::new(3);
    let dir = tempfile::tempdir().unwrap();
    let members = dir.path().join("ov.members");
    std::fs::write(&members, MEMBERS).unwrap();
    // Each "host" keeps its own IPAM state, as separate machines would.
    let states: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let ovs: Vec<Overlay> = lab
        .hosts
        .iter()
        .zip(&states)
        .map(|(h, s)| overlay(h, s.path(), &members).ensure().unwrap())
        .collect();
    // ensure is idempotent
    let again = overlay(&lab.hosts[0], states[0].path(), &members)
        .ensure()
        .unwrap();
    assert_eq!(again.vxlan_index(), ovs[0].vxlan_index());

    for (i, (h, ov)) in lab.hosts.iter().zip(&ovs).enumerate() {
        let n = i as u8 + 1;
        // each host found itself in the members file
        assert_eq!(ov.local(), Ipv4Addr::new(192, 0, 2, n));
        assert_eq!(ov.range().to_string(), format!("10.200.{n}.0/24"));
        // the VXLAN device as iproute2 sees it
        let d = &h.ip_json(&["-d", "link", "show", VX])[0];
        let info = &d["linkinfo"]["info_data"];
        assert_eq!(d["linkinfo"]["info_kind"], "vxlan");
        assert_eq!(info["id"], VNI);
        assert_eq!(info["local"], format!("192.0.2.{n}"));
        assert_eq!(info["port"], 4789);
        assert_eq!(info["learning"], false);
        assert_eq!(d["master"], "br-ov");
        assert!(d["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
        // static peers: one flood entry per other host
        let mut peers = ov.peers().unwrap();
        peers.sort();
        let want: Vec<Ipv4Addr> = (1..=3u8)
            .filter(|&p| p != n)
            .map(|p| Ipv4Addr::new(192, 0, 2, p))
            .collect();
        assert_eq!(peers, want);
        let fdb = h.exec(&["bridge", "-j", "fdb", "show", "dev", VX]);
        let fdb: serde_json::Value = serde_json::from_str(&fdb).unwrap();
        let dsts: BTreeSet<String> = fdb
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["mac"] == "00:00:00:00:00:00")
            .map(|e| e["dst"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(dsts.len(), 2, "{fdb}");
        assert!(!dsts.contains(&format!("192.0.2.{n}")));
        // MTU: underlay 1500 − 50 on the VXLAN device and the bridge
        assert_eq!(mtu_of(h, "ul0"), 1500);
        assert_eq!(ov.mtu(), 1450);
        assert_eq!(mtu_of(h, VX), 1450);
        assert_eq!(mtu_of(h, "br-ov"), 1450);
        // the gateway is the first address of the host's range, with the overlay's prefix
        let a = h.ip_json(&["addr", "show", "dev", "br-ov"]);
        let inet = a[0]["addr_info"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["family"] == "inet")
            .unwrap()
            .clone();
        assert_eq!(inet["local"], format!("10.200.{n}.1"));
        assert_eq!(inet["prefixlen"], 16);
    }

    // Containers: three per host; every address distinct and from its host's range.
    let mut ctrs: Vec<(usize, TestNs, Attachment)> = Vec::new();
    for (i, ov) in ovs.iter().enumerate() {
        for k in 0..3 {
            let ns = TestNs::new();
            let att = ov
                .attach(&ns.handle, &Attach::new(&format!("c{}-{k}", i + 1)))
                .unwrap();
            assert!(ov.range().contains(att.address()), "{}", att.address());
            assert_eq!(att.prefix_len(), 16);
            assert_eq!(att.gateway(), Ipv4Addr::new(10, 200, i as u8 + 1, 1));
            ctrs.push((i, ns, att));
        }
    }
    let addrs: BTreeSet<Ipv4Addr> = ctrs.iter().map(|(_, _, a)| a.address()).collect();
    assert_eq!(addrs.len(), ctrs.len(), "duplicate address: {addrs:?}");
    // MTU on both ends of every veth
    for (i, ns, att) in &ctrs {
        assert_eq!(mtu_of(ns, "eth0"), 1450);
        assert_eq!(mtu_of(&lab.hosts[*i], att.host_ifname()), 1450);
    }

    // Across hosts: ping, then TCP both ways between every pair of hosts.
    let (c1, c2, c3) = (&ctrs[0], &ctrs[3], &ctrs[6]);
    assert!(ping(&c1.1, &["-W", "3"], c3.2.address()));
    for (from, to) in [(c1, c2), (c2, c3), (c3, c1), (c2, c1)] {
        let dst = format!("{}:7100", to.2.address());
        let srv = serve_once(listen_in(&to.1.handle, &dst));
        let msg = format!("from {}", from.2.container_id());
        assert_eq!(talk_from(&from.1.handle, &dst, &msg), format!("echo:{msg}"));
        // no NAT inside the overlay: the server sees the client's own address
        assert_eq!(srv.join().unwrap().ip(), from.2.address());
    }
    // A full-size packet (1450 bytes on the wire inside) crosses without fragmentation.
    assert!(ping(&c2.1, &["-W", "3", "-s", "1422"], c1.2.address()));
    // … and the underlay never fragments: every encapsulated packet fits its MTU
    for h in &lab.hosts {
        let snmp = h.exec(&["cat", "/proc/net/snmp"]);
        let mut ip = snmp.lines().filter(|l| l.starts_with("Ip:"));
        let (names, values) = (ip.next().unwrap(), ip.next().unwrap());
        let at = names
            .split_whitespace()
            .position(|n| n == "FragCreates")
            .unwrap();
        assert_eq!(values.split_whitespace().nth(at), Some("0"), "{snmp}");
    }
    // the traffic went through the VXLAN devices
    let tx = lab.hosts[0].ip_json(&["-s", "link", "show", VX])[0]["stats64"]["tx"]["packets"]
        .as_u64()
        .unwrap();
    assert!(tx > 0);

    // A host leaves the members list: the others stop flooding to it and
    // its containers become unreachable; back in, reachable again.
    let two: Vec<OverlayMember> = OverlayMember::parse_list(MEMBERS).unwrap()[..2].to_vec();
    let mut ov1 = ovs[0].clone();
    ov1.update_members(two).unwrap();
    assert_eq!(ov1.peers().unwrap(), vec![Ipv4Addr::new(192, 0, 2, 2)]);
    assert!(!ping(&c1.1, &["-W", "1"], ctrs[7].2.address()));
    ov1.reload_members_file(&members).unwrap();
    assert_eq!(ov1.peers().unwrap().len(), 2);
    assert!(ping(&c1.1, &["-W", "3"], ctrs[7].2.address()));

    // Teardown: containers, then each host's part of the overlay.
    for (_, ns, att) in ctrs {
        att.release().unwrap();
        drop(ns);
    }
    drop((again, ov1));
    for ov in ovs {
        ov.remove().unwrap();
    }
    for (h, s) in lab.hosts.iter().zip(&states) {
        assert!(
            wait_for(30, || h.link_names() == ["lo", "ul0"]),
            "{:?}",
            h.link_names()
        );
        assert!(h.nft_tables().is_empty(), "{:?}", h.nft_tables());
        assert!(state_files(s.path()).is_empty());
    }
    assert_eq!(lab.switch.link_names().len(), 5, "lo, sw, p1-p3");
    drop(lab);
    assert_eq!(host_ip_forward(), host_fwd, "the real host's ip_forward");
}

#[test]
fn bad_member_lists_are_refused_and_leave_nothing() {
    berth_testkit::privileged!();
    let (lab, dir, state) = (
        Lab::new(1),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (h, members) = (&lab.hosts[0], dir.path().join("ov.members"));
    for (text, want) in [
        (
            "192.0.2.1 10.200.0.0/23\n192.0.2.2 10.200.1.0/24\n",
            "overlap",
        ),
        ("192.0.2.1 10.201.1.0/24\n", "not inside the subnet"),
        ("192.0.2.9 10.200.9.0/24\n", "no member address"),
        ("192.0.2.1 10.200.1.0/24 x\n", "line 1"),
        ("", "no member hosts"),
    ] {
        std::fs::write(&members, text).unwrap();
        let e = overlay(h, state.path(), &members).ensure().unwrap_err();
        assert!(e.to_string().contains(want), "{text:?}: {e}");
        assert_eq!(h.link_names(), ["lo", "ul0"]);
        assert!(h.nft_tables().is_empty());
        assert!(state_files(state.path()).is_empty());
    }
    // a missing file names the file
    let e = overlay(h, state.path(), &dir.path().join("nope"))
        .ensure()
        .unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    // the VXLAN device's name taken by something else: refused up front
    std::fs::write(&members, MEMBERS).unwrap();
    h.ip(&["link", "add", VX, "type", "bridge"]);
    let e = overlay(h, state.path(), &members).ensure().unwrap_err();
    assert!(e.to_string().contains(VX), "{e}");
    h.ip(&["link", "del", VX]);
    // a VXLAN device of that name but another VNI: not reused
    h.ip(&[
        "link",
        "add",
        VX,
        "type",
        "vxlan",
        "id",
        "7",
        "local",
        "192.0.2.1",
        "dstport",
        "4789",
    ]);
    let e = overlay(h, state.path(), &members).ensure().unwrap_err();
    assert!(e.to_string().contains("VNI 7"), "{e}");
    assert_eq!(h.link_names(), ["lo", "ul0", VX]);
    h.ip(&["link", "del", VX]);
    // the VNI already used on this port by another device: found only when
    // the bridge network exists; it is removed again, ip_forward restored
    h.handle.set_ip_forward(false).unwrap();
    h.ip(&[
        "link",
        "add",
        "other",
        "type",
        "vxlan",
        "id",
        "4242",
        "local",
        "192.0.2.1",
        "dstport",
        "4789",
    ]);
    let e = overlay(h, state.path(), &members).ensure().unwrap_err();
    assert!(e.to_string().contains("already used"), "{e}");
    assert_eq!(h.link_names(), ["lo", "ul0", "other"]);
    assert!(h.nft_tables().is_empty(), "{:?}", h.nft_tables());
    assert!(state_files(state.path()).is_empty());
    assert_eq!(h.ip_forward(), "0");
    h.ip(&["link", "del", "other"]);
    std::fs::write(&members, "192.0.2.1 10.200.1.0/24\n").unwrap();
    let e = VxlanNetwork::new("ov", VNI)
        .subnet("10.200.0.0/16")
        .bridge("br-ov")
        .members_file(&members)
        .underlay_mtu(600)
        .state_dir(state.path())
        .host_netns(&h.handle)
        .unwrap()
        .ensure()
        .unwrap_err();
    assert!(e.to_string().contains("576"), "{e}");
    // BridgeNetwork::ip_range outside the subnet
    let e = BridgeNetwork::new("ov")
        .subnet("10.200.0.0/16")
        .ip_range("10.201.0.0/24")
        .state_dir(state.path())
        .host_netns(&h.handle)
        .unwrap()
        .ensure()
        .unwrap_err();
    assert!(e.to_string().contains("inside the subnet"), "{e}");
    assert_eq!(h.link_names(), ["lo", "ul0"]);
    assert!(h.nft_tables().is_empty());
    assert!(state_files(state.path()).is_empty());
}

#[test]
fn concurrent_ensures_of_one_overlay_agree() {
    berth_testkit::privileged!();
    let (lab, dir, state) = (
        Lab::new(1),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (h, members) = (&lab.hosts[0], dir.path().join("ov.members"));
    std::fs::write(&members, MEMBERS).unwrap();
    let indexes: Vec<u32> = std::thread::scope(|s| {
        let ts: Vec<_> = (0..4)
            .map(|_| s.spawn(|| overlay(h, state.path(), &members).ensure().unwrap()))
            .collect();
        ts.into_iter()
            .map(|t| t.join().unwrap().vxlan_index())
            .collect()
    });
    assert!(indexes.iter().all(|i| *i == indexes[0]), "{indexes:?}");
    let ov = overlay(h, state.path(), &members).ensure().unwrap();
    let mut peers = ov.peers().unwrap();
    peers.sort();
    assert_eq!(
        peers,
        [Ipv4Addr::new(192, 0, 2, 2), Ipv4Addr::new(192, 0, 2, 3)],
        "each peer once"
    );
    ov.remove().unwrap();
    assert_eq!(h.link_names(), ["lo", "ul0"]);
    assert!(state_files(state.path()).is_empty());
}
