//! Privileged tests of networks as objects (issue 22 item 5): `ip_forward`
//! restored after the last network, ports published on 127.0.0.1 reachable
//! from the host's loopback, a port in use refused by name. Every test builds
//! its own "host" netns: the real host is never touched.

mod common;

use std::net::Ipv4Addr;

use berth_netsetup::{Attach, PortMapping};
use common::*;

/// Only the firewall's lock file stays in `dir` (its inode must not change
/// under a concurrent locker): no IPAM, record or ip_forward state.
fn assert_no_state_left(dir: &std::path::Path) {
    let left = berth_testkit::files_left(dir, &["nft.lock"]);
    assert!(left.is_empty(), "state left: {left:?}");
}

/// berth turns `ip_forward` on with the first network and puts the original
/// value back when the last one goes, whichever handle (or process) removes it.
#[test]
fn ip_forward_is_restored_after_the_last_network() {
    berth_testkit::privileged!();
    let host_fwd = host_ip_forward();
    let host = TestNs::new();
    let state = tempfile::tempdir().unwrap();
    host.handle.set_ip_forward(false).unwrap();
    let a = network(&host, state.path(), "fa", "10.202.1.0/24")
        .ensure()
        .unwrap();
    assert_eq!(host.ip_forward(), "1");
    let b = network(&host, state.path(), "fb", "10.202.2.0/24")
        .ensure()
        .unwrap();
    assert_eq!(b.ip_forward_was(), Some(true));
    // Another "process": a fresh handle of b, the original ones dropped.
    drop(b);
    a.remove().unwrap();
    assert_eq!(host.ip_forward(), "1", "network fb still needs forwarding");
    let b = network(&host, state.path(), "fb", "10.202.2.0/24")
        .ensure()
        .unwrap();
    b.remove().unwrap();
    assert_eq!(
        host.ip_forward(),
        "0",
        "the original ip_forward is back after the last network"
    );
    assert_eq!(host.link_names(), vec!["lo".to_string()]);
    assert!(host.nft_tables().is_empty(), "{:?}", host.nft_tables());
    assert_no_state_left(state.path());

    // Forwarding that was already on stays on.
    host.handle.set_ip_forward(true).unwrap();
    let c = network(&host, state.path(), "fc", "10.202.3.0/24")
        .ensure()
        .unwrap();
    c.remove().unwrap();
    assert_eq!(host.ip_forward(), "1");
    assert_no_state_left(state.path());
    assert_eq!(host_ip_forward(), host_fwd, "the real host is untouched");
}

/// `-p 127.0.0.1:H:C`: a client on the host's loopback reaches the
/// container's listener (and so does one on 127.0.0.1 for a port published
/// on every address).
#[test]
fn port_published_on_loopback_is_reachable_from_the_hosts_loopback() {
    berth_testkit::privileged!();
    let host = TestNs::new();
    host.handle.set_lo_up().unwrap();
    let state = tempfile::tempdir().unwrap();
    let net = network(&host, state.path(), "lo1", "10.202.4.0/24")
        .ensure()
        .unwrap();
    let c = TestNs::new();
    let att = net
        .attach(
            &c.handle,
            &Attach::new("web")
                .publish(PortMapping::tcp(18081, 8081).host_ip(Ipv4Addr::LOCALHOST))
                .publish(PortMapping::tcp(18082, 8082)),
        )
        .unwrap();
    for (host_port, port) in [(18081, 8081), (18082, 8082)] {
        let srv = serve_once(listen_in(&c.handle, &format!("0.0.0.0:{port}")));
        let reply = talk_from(&host.handle, &format!("127.0.0.1:{host_port}"), "hi");
        assert_eq!(reply, "echo:hi", "127.0.0.1:{host_port}");
        // The container sees the bridge's address (masqueraded), not 127.0.0.1.
        assert_eq!(
            srv.join().unwrap().ip(),
            std::net::IpAddr::V4(net.gateway())
        );
    }
    // A container cannot use the bridge's route_localnet to reach the
    // host's loopback: it routes 127.0.0.0/8 to the gateway (its own netns,
    // its own rules: what CAP_NET_ADMIN or a raw socket allows) and tries a
    // listener on the host's 127.0.0.1.
    let gw = net.gateway().to_string();
    c.exec(&["ip", "addr", "flush", "dev", "lo"]);
    c.exec(&["ip", "route", "add", "127.0.0.0/8", "via", &gw]);
    for conf in ["all", "eth0"] {
        c.exec(&[
            "sysctl",
            "-qw",
            &format!("net.ipv4.conf.{conf}.route_localnet=1"),
        ]);
    }
    let secret = listen_in(&host.handle, "127.0.0.1:18085");
    secret.set_nonblocking(true).unwrap();
    let try_secret = || {
        c.handle
            .run(|| {
                std::net::TcpStream::connect_timeout(
                    &"127.0.0.1:18085".parse().unwrap(),
                    std::time::Duration::from_secs(2),
                )
                .is_ok()
            })
            .unwrap()
    };
    assert!(!try_secret(), "a container reached the host's 127.0.0.1");
    // The same path without the guard does reach it: the check above can fail.
    host.exec(&["nft", "flush", "chain", "ip", "berth", "guard"]);
    assert!(try_secret(), "without the guard the path should be open");
    drop(secret);
    att.release().unwrap();
    drop(c);
    net.remove().unwrap();
    assert_eq!(host.link_names(), vec!["lo".to_string()]);
    assert!(host.nft_tables().is_empty(), "{:?}", host.nft_tables());
}

/// A host port with a listening socket on it is refused, naming the port,
/// and the failed attach leaves nothing (veth, IPAM entry, nft rule). A
/// guard: the bind check already refused it before networks were objects.
#[test]
fn port_in_use_is_an_error_naming_it_and_leaves_nothing() {
    berth_testkit::privileged!();
    let host = TestNs::new();
    host.handle.set_lo_up().unwrap();
    let state = tempfile::tempdir().unwrap();
    let net = network(&host, state.path(), "pu1", "10.202.5.0/24")
        .ensure()
        .unwrap();
    let rules_before = net.firewall().rules().unwrap();
    for (listen, publish) in [
        ("127.0.0.1:18090", PortMapping::tcp(18090, 80)),
        (
            "127.0.0.1:18091",
            PortMapping::tcp(18091, 80).host_ip(Ipv4Addr::LOCALHOST),
        ),
        (
            "0.0.0.0:18092",
            PortMapping::tcp(18092, 80).host_ip(Ipv4Addr::LOCALHOST),
        ),
    ] {
        let _l = listen_in(&host.handle, listen);
        let c = TestNs::new();
        let e = net
            .attach(&c.handle, &Attach::new("busy").publish(publish))
            .unwrap_err();
        let port = publish.host_port.to_string();
        assert!(e.to_string().contains(&port), "{listen}: {e}");
        assert_eq!(host.link_names(), vec!["lo".to_string(), "br-pu1".into()]);
        assert!(net.ipam().allocations().unwrap().is_empty());
        assert_eq!(net.firewall().rules().unwrap(), rules_before);
    }
    net.remove().unwrap();
    assert!(host.nft_tables().is_empty(), "{:?}", host.nft_tables());
}

/// A user-defined network is recorded, listed, rebuilt from its record in
/// "another process", and removed with nothing left: bridge, nft rules,
/// IPAM state, record.
#[test]
fn user_defined_network_is_listed_rebuilt_and_removed_without_leftovers() {
    berth_testkit::privileged!();
    let host = TestNs::new();
    let state = tempfile::tempdir().unwrap();
    host.handle.set_ip_forward(false).unwrap();
    assert!(berth_netsetup::list_networks(state.path())
        .unwrap()
        .is_empty());
    let net = network(&host, state.path(), "ud1", "10.202.6.0/24")
        .persist(true)
        .ensure()
        .unwrap();
    // An ordinary (not persisted) network is not listed.
    let other = network(&host, state.path(), "ud2", "10.202.7.0/24")
        .ensure()
        .unwrap();
    let list = berth_netsetup::list_networks(state.path()).unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    let r = &list[0];
    assert_eq!(
        (r.name.as_str(), r.driver.as_str(), r.bridge.as_str()),
        ("ud1", "bridge", "br-ud1")
    );
    assert_eq!(r.subnet, "10.202.6.0/24");
    assert_eq!(r.gateway, Ipv4Addr::new(10, 202, 6, 1));
    drop(net);
    let again = berth_netsetup::BridgeNetwork::from_record(r)
        .state_dir(state.path())
        .host_netns(&host.handle)
        .unwrap()
        .ensure()
        .unwrap();
    assert_eq!(again.bridge(), "br-ud1");
    let c = TestNs::new();
    let att = again.attach(&c.handle, &Attach::new("m1")).unwrap();
    assert_eq!(att.address(), Ipv4Addr::new(10, 202, 6, 2));
    att.detach().unwrap();
    again.remove().unwrap();
    other.remove().unwrap();
    assert!(berth_netsetup::list_networks(state.path())
        .unwrap()
        .is_empty());
    assert!(berth_netsetup::network_record(state.path(), "ud1")
        .unwrap()
        .is_none());
    assert_eq!(host.link_names(), vec!["lo".to_string()]);
    assert!(host.nft_tables().is_empty(), "{:?}", host.nft_tables());
    assert_eq!(host.ip_forward(), "0");
    assert_no_state_left(state.path());
}

/// Members' hosts files list every named member, and a member's names
/// disappear from the others' files when it detaches.
#[test]
fn hosts_files_follow_the_members() {
    berth_testkit::privileged!();
    let host = TestNs::new();
    let state = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let net = network(&host, state.path(), "nm1", "10.202.8.0/24")
        .masquerade(false)
        .ip_forward(false)
        .ensure()
        .unwrap();
    let hosts = |n: &str| {
        let p = files.path().join(n);
        std::fs::write(&p, "127.0.0.1\tlocalhost\n").unwrap();
        p
    };
    let (h1, h2) = (hosts("one"), hosts("two"));
    let (c1, c2) = (TestNs::new(), TestNs::new());
    let a1 = net
        .attach(&c1.handle, &Attach::new("one").name("one").hosts_file(&h1))
        .unwrap();
    let a2 = net
        .attach(
            &c2.handle,
            &Attach::new("two").name("two").name("db").hosts_file(&h2),
        )
        .unwrap();
    let want = format!("{}\tone\n{}\ttwo db\n", a1.address(), a2.address());
    for h in [&h1, &h2] {
        let t = std::fs::read_to_string(h).unwrap();
        assert!(t.starts_with("127.0.0.1\tlocalhost\n"), "{t}");
        assert!(t.ends_with(&want), "{t}");
    }
    // A bad name is refused before anything is made.
    let c3 = TestNs::new();
    let e = net
        .attach(&c3.handle, &Attach::new("three").name("no/slash"))
        .unwrap_err();
    assert!(e.to_string().contains("no/slash"), "{e}");
    assert_eq!(net.ipam().allocations().unwrap().len(), 2);
    a2.detach().unwrap();
    let t = std::fs::read_to_string(&h1).unwrap();
    assert!(!t.contains("\ttwo") && !t.contains(" db"), "{t:?}");
    assert!(t.contains(&format!("{}\tone", a1.address())), "{t}");
    a1.detach().unwrap();
    net.remove().unwrap();
}
