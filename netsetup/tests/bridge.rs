//! Privileged tests of bridge networks. Every test builds its own private
//! "host" netns and attaches its own container namespaces to it: traffic only
//! flows between namespaces the test created, and the real host's links,
//! nftables and sysctls are never touched.

mod common;

use std::net::Ipv4Addr;

use berth_netsetup::{gc_container, Attach, BridgeNetwork, Error, NetNs, PortMapping};
use common::*;

#[test]
fn two_containers_talk_over_the_bridge_and_teardown_leaves_nothing() {
    berth_testkit::privileged!();
    let host_fwd = host_ip_forward();
    let host = TestNs::new();
    let state = tempfile::tempdir().unwrap();
    // A new netns inherits IPv4 sysctls from the initial one
    // (net.core.devconf_inherit_init_net=0): start from 0 inside the test netns.
    host.handle.set_ip_forward(false).unwrap();
    assert_eq!(host.ip_forward(), "0");
    let net = network(&host, state.path(), "t1", "10.201.0.0/24")
        .ensure()
        .unwrap();
    assert_eq!(net.ip_forward_was(), Some(false));
    assert_eq!(
        host.ip_forward(),
        "1",
        "ensure enables ip_forward in its host netns"
    );
    // ensure is idempotent
    let again = network(&host, state.path(), "t1", "10.201.0.0/24")
        .ensure()
        .unwrap();
    assert_eq!(again.bridge_index(), net.bridge_index());

    let c1 = TestNs::new();
    let c2 = TestNs::new();
    let mac = [0x02, 0x42, 0xac, 0x11, 0x00, 0x99];
    let a1 = net
        .attach(&c1.handle, &Attach::new("ctr-one").mac(mac))
        .unwrap();
    let a2 = net.attach(&c2.handle, &Attach::new("ctr-two")).unwrap();
    assert_eq!(a1.address(), Ipv4Addr::new(10, 201, 0, 2));
    assert_eq!(a2.address(), Ipv4Addr::new(10, 201, 0, 3));

    // eth0 inside has the address, the MAC, is up, and the default route goes via the gateway.
    let addrs = c1.ip_json(&["addr", "show", "dev", "eth0"]);
    let eth0 = &addrs[0];
    assert_eq!(eth0["address"], "02:42:ac:11:00:99");
    assert!(eth0["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
    let inet: Vec<_> = eth0["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["family"] == "inet")
        .collect();
    assert_eq!(inet.len(), 1);
    assert_eq!(inet[0]["local"], "10.201.0.2");
    assert_eq!(inet[0]["prefixlen"], 24);
    let routes = c1.ip_json(&["route", "show", "default"]);
    assert_eq!(routes[0]["gateway"], "10.201.0.1");
    assert_eq!(routes[0]["dev"], "eth0");
    // lo is up too
    let lo = c1.ip_json(&["link", "show", "lo"]);
    assert!(lo[0]["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
    // host ends are enslaved to the bridge
    let hl = host.ip_json(&["link", "show", a1.host_ifname()]);
    assert_eq!(hl[0]["master"], "br-t1");

    // ping and TCP between the two containers
    c1.exec(&["busybox", "ping", "-c", "1", "-W", "3", "10.201.0.3"]);
    let srv = serve_once(listen_in(&c2.handle, "10.201.0.3:7000"));
    let reply = talk_from(&c1.handle, "10.201.0.3:7000", "hello");
    assert_eq!(reply, "echo:hello");
    assert_eq!(srv.join().unwrap().ip().to_string(), "10.201.0.2");

    // IPAM state shows both
    let allocs = net.ipam().allocations().unwrap();
    assert_eq!(allocs.len(), 2);

    // c1: full detach (the netns lives on) → veth gone on both sides at once
    let h1 = a1.host_ifname().to_string();
    a1.detach().unwrap();
    assert!(!host.link_names().contains(&h1));
    assert!(!c1.link_names().contains(&"eth0".to_string()));
    // c2: release, then the netns goes away and the kernel removes the veth
    let h2 = a2.host_ifname().to_string();
    a2.release().unwrap();
    assert!(net.ipam().allocations().unwrap().is_empty());
    drop(c2);
    assert!(
        wait_for(30, || !host.link_names().contains(&h2)),
        "kernel removes the veth with the netns"
    );

    drop(again);
    net.remove().unwrap();
    assert_eq!(host.link_names(), vec!["lo".to_string()]);
    assert!(host.nft_tables().is_empty(), "{:?}", host.nft_tables());
    assert!(state_files(state.path()).is_empty());
    assert_eq!(
        host_ip_forward(),
        host_fwd,
        "the real host's ip_forward is untouched"
    );
}

#[test]
fn published_port_reaches_container_from_another_netns() {
    berth_testkit::privileged!();
    let host_fwd = host_ip_forward();
    let host = TestNs::new();
    let client = TestNs::new();
    let state = tempfile::tempdir().unwrap();
    // A link between the test's "host" and "client" namespaces (test plumbing, via ip).
    host.veth_to(&client, "192.168.77");

    let net = network(&host, state.path(), "t2", "10.202.0.0/24")
        .ensure()
        .unwrap();
    let ctr = TestNs::new();
    let att = net
        .attach(
            &ctr.handle,
            &Attach::new("web").publish(PortMapping::tcp(18080, 80)),
        )
        .unwrap();
    assert_eq!(host.nft_tables(), vec!["ip berth".to_string()]);
    let ruleset = host.exec(&["nft", "list", "table", "ip", "berth"]);
    // programmed over netlink, read back by nft(8) as the same readable rules
    for line in [
        "type nat hook prerouting priority dstnat; policy accept;",
        "type nat hook output priority -100; policy accept;",
        "type nat hook postrouting priority srcnat; policy accept;",
        "fib daddr type local jump published",
        "tcp dport 18080 dnat to 10.202.0.2:80 comment \"berth ctr=web port=tcp/*:18080\"",
        "ip saddr 10.202.0.0/24 ip daddr != 10.202.0.0/24 masquerade comment \"berth net=t2\"",
        "ip saddr 10.202.0.0/24 ip daddr 10.202.0.0/24 ct status dnat masquerade comment \"berth net=t2\"",
    ] {
        assert!(ruleset.contains(line), "{line:?} missing in {ruleset}");
    }
    assert_eq!(
        ruleset
            .matches("fib daddr type local jump published")
            .count(),
        2,
        "{ruleset}"
    );
    // ensure again (another container start): no rule is touched (same handles)
    let with_handles = host.exec(&["nft", "-a", "list", "table", "ip", "berth"]);
    network(&host, state.path(), "t2", "10.202.0.0/24")
        .ensure()
        .unwrap();
    assert_eq!(
        host.exec(&["nft", "-a", "list", "table", "ip", "berth"]),
        with_handles
    );

    // from the client netns, through prerouting DNAT
    let srv = serve_once(listen_in(&ctr.handle, "0.0.0.0:80"));
    assert_eq!(
        talk_from(&client.handle, "192.168.77.1:18080", "from-client"),
        "echo:from-client"
    );
    assert_eq!(srv.join().unwrap().ip().to_string(), "192.168.77.2");
    // from the "host" itself, through output DNAT
    let srv = serve_once(listen_in(&ctr.handle, "0.0.0.0:80"));
    assert_eq!(
        talk_from(&host.handle, "192.168.77.1:18080", "from-host"),
        "echo:from-host"
    );
    srv.join().unwrap();

    // the same host port for another container: taken, nothing left behind
    let ctr2 = TestNs::new();
    let links_before = host.link_names();
    let e = net
        .attach(
            &ctr2.handle,
            &Attach::new("web2").publish(PortMapping::tcp(18080, 81)),
        )
        .unwrap_err();
    assert!(matches!(e, Error::PortTaken { port: 18080, .. }), "{e}");
    assert!(e.to_string().contains("web"), "{e}");
    assert_eq!(host.link_names(), links_before);
    assert_eq!(ctr2.link_names(), vec!["lo".to_string()]);
    assert!(net.ipam().lookup("web2").unwrap().is_none());
    // a port a socket in the host netns is bound to: taken as well
    let busy = listen_in(&host.handle, "0.0.0.0:18081");
    let e = net
        .attach(
            &ctr2.handle,
            &Attach::new("web2").publish(PortMapping::tcp(18081, 81)),
        )
        .unwrap_err();
    assert!(matches!(e, Error::PortTaken { port: 18081, .. }), "{e}");
    drop(busy);
    assert_eq!(host.link_names(), links_before);
    assert!(net.ipam().lookup("web2").unwrap().is_none());

    // a port bound to one host address only
    let ctr3 = TestNs::new();
    let att3 = net
        .attach(
            &ctr3.handle,
            &Attach::new("web3")
                .publish(PortMapping::tcp(18082, 8000).host_ip("192.168.77.1".parse().unwrap())),
        )
        .unwrap();
    let ruleset = host.exec(&["nft", "list", "table", "ip", "berth"]);
    assert!(
        ruleset.contains(&format!(
            "ip daddr 192.168.77.1 tcp dport 18082 dnat to {}:8000",
            att3.address()
        )),
        "{ruleset}"
    );
    let srv = serve_once(listen_in(&ctr3.handle, "0.0.0.0:8000"));
    assert_eq!(
        talk_from(&client.handle, "192.168.77.1:18082", "three"),
        "echo:three"
    );
    srv.join().unwrap();
    // hairpin: container 3 reaches container 1's published port via the host address
    let srv = serve_once(listen_in(&ctr.handle, "0.0.0.0:80"));
    assert_eq!(
        talk_from(&ctr3.handle, "192.168.77.1:18080", "hairpin"),
        "echo:hairpin"
    );
    assert_eq!(
        srv.join().unwrap().ip().to_string(),
        "10.202.0.1",
        "hairpin traffic is masqueraded to the gateway"
    );
    att3.detach().unwrap();

    // releasing the container removes its DNAT rule
    att.release().unwrap();
    let ruleset = host.exec(&["nft", "list", "table", "ip", "berth"]);
    assert!(!ruleset.contains("dnat to"), "{ruleset}");
    net.remove().unwrap();
    assert!(host.nft_tables().is_empty());
    assert_eq!(host_ip_forward(), host_fwd);
}

#[test]
fn bad_input_is_refused_and_leaves_nothing() {
    berth_testkit::privileged!();
    let host = TestNs::new();
    let state = tempfile::tempdir().unwrap();
    let clean = |host: &TestNs| {
        assert_eq!(host.link_names().len(), 3, "{:?}", host.link_names()); // lo + d0 + d1
        assert!(host.nft_tables().is_empty());
        assert!(state_files(state.path()).is_empty());
    };
    // a route that a new subnet would overlap
    // (veth rather than dummy: the dummy module may be missing)
    host.ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"]);
    host.ip(&["addr", "add", "10.50.0.1/24", "dev", "d0"]);
    host.ip(&["link", "set", "d0", "up"]);

    let e = network(&host, state.path(), "x", "10.50.0.0/16")
        .ensure()
        .unwrap_err();
    assert!(matches!(e, Error::SubnetOverlap { .. }), "{e}");
    assert!(e.to_string().contains("10.50.0.0/24"), "{e}");
    clean(&host);

    let e = BridgeNetwork::new("x")
        .bridge("a-very-long-bridge")
        .state_dir(state.path())
        .host_netns(&host.handle)
        .unwrap()
        .ensure()
        .unwrap_err();
    assert!(matches!(e, Error::InvalidName { .. }), "{e}");
    clean(&host);

    for bad in [
        "10.60.0.0",
        "10.60.0.1/24",
        "10.60.0.0/33",
        "banana/8",
        "10.60.0.0/31",
    ] {
        let e = network(&host, state.path(), "x", bad).ensure().unwrap_err();
        assert!(matches!(e, Error::InvalidCidr { .. }), "{bad}: {e}");
    }
    clean(&host);

    // the bridge name is taken by something that is not a bridge
    let e = BridgeNetwork::new("x")
        .bridge("d0")
        .subnet("10.61.0.0/24")
        .state_dir(state.path())
        .host_netns(&host.handle)
        .unwrap()
        .ensure()
        .unwrap_err();
    assert!(matches!(e, Error::NotABridge { .. }), "{e}");
    clean(&host);

    // a /30 holds exactly one container
    let net = network(&host, state.path(), "tiny", "10.62.0.0/30")
        .ensure()
        .unwrap();
    let c1 = TestNs::new();
    let c2 = TestNs::new();
    let a1 = net.attach(&c1.handle, &Attach::new("one")).unwrap();
    assert_eq!(a1.address(), Ipv4Addr::new(10, 62, 0, 2));
    let links = host.link_names();
    let e = net.attach(&c2.handle, &Attach::new("two")).unwrap_err();
    assert!(matches!(e, Error::PoolExhausted { .. }), "{e}");
    assert_eq!(host.link_names(), links);
    assert_eq!(c2.link_names(), vec!["lo".to_string()]);

    // host-side name that exists: refused, IPAM entry released, no veth anywhere
    let net2 = network(&host, state.path(), "t3", "10.63.0.0/24")
        .ensure()
        .unwrap();
    let links = host.link_names();
    let e = net2
        .attach(&c2.handle, &Attach::new("two").host_ifname("d0"))
        .unwrap_err();
    assert!(matches!(e, Error::LinkExists { .. }), "{e}");
    assert_eq!(host.link_names(), links);
    assert_eq!(c2.link_names(), vec!["lo".to_string()]);
    assert!(net2.ipam().allocations().unwrap().is_empty());
    // interface names over 15 bytes, bad ids, bad addresses
    let e = net2
        .attach(&c2.handle, &Attach::new("two").ifname("sixteen-bytes-xx"))
        .unwrap_err();
    assert!(matches!(e, Error::InvalidName { .. }), "{e}");
    let e = net2
        .attach(&c2.handle, &Attach::new("no spaces"))
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    let e = net2
        .attach(
            &c2.handle,
            &Attach::new("two").address(Ipv4Addr::new(10, 63, 0, 1)),
        )
        .unwrap_err();
    assert!(matches!(e, Error::AddressUnavailable { .. }), "{e}");
    // the container's eth0 name taken inside the container: the veth is undone
    c2.ip(&["link", "add", "eth0", "type", "veth", "peer", "name", "e1"]);
    let e = net2.attach(&c2.handle, &Attach::new("two")).unwrap_err();
    assert!(
        matches!(e, Error::LinkExists { .. }) && e.to_string().contains("eth0"),
        "{e}"
    );
    assert_eq!(host.link_names(), links);
    assert!(net2.ipam().allocations().unwrap().is_empty());

    a1.detach().unwrap();
    net.remove().unwrap();
    net2.remove().unwrap();
    clean(&host);
}

#[test]
fn gc_removes_leftovers_by_container_id() {
    berth_testkit::privileged!();
    let host = TestNs::new();
    let state = tempfile::tempdir().unwrap();
    let net = network(&host, state.path(), "t4", "10.204.0.0/24")
        .mtu(1400)
        .ensure()
        .unwrap();
    let ctr = TestNs::new();
    let att = net
        .attach(
            &ctr.handle,
            &Attach::new("crashy").publish(PortMapping::udp(5353, 53)),
        )
        .unwrap();
    let hif = att.host_ifname().to_string();
    assert_eq!(ctr.ip_json(&["link", "show", "eth0"])[0]["mtu"], 1400);
    assert_eq!(host.ip_json(&["link", "show", &hif])[0]["mtu"], 1400);
    std::mem::forget(att); // the owner "crashed"
    assert!(host
        .exec(&["nft", "list", "table", "ip", "berth"])
        .contains("udp dport 5353"));
    gc_container(state.path(), Some(&host.handle), "crashy").unwrap();
    assert!(!host.link_names().contains(&hif));
    assert_eq!(ctr.link_names(), vec!["lo".to_string()]);
    assert!(net.ipam().lookup("crashy").unwrap().is_none());
    assert!(!host
        .exec(&["nft", "list", "table", "ip", "berth"])
        .contains("dport"));
    // gc of an unknown id is a no-op
    gc_container(state.path(), Some(&host.handle), "never-was").unwrap();
    net.remove().unwrap();
    assert!(host.nft_tables().is_empty());
}

#[cfg(feature = "tokio")]
#[test]
fn async_api_attaches_and_releases() {
    berth_testkit::privileged!();
    let host = TestNs::new();
    let state = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let b = network(&host, state.path(), "t5", "10.205.0.0/24");
    rt.block_on(async {
        use berth_netsetup::asynchronous as a;
        let net = a::ensure(b).await.unwrap();
        let ns = a::loopback_only(NetNs::new_anonymous().unwrap())
            .await
            .unwrap();
        let (ns, att) = a::attach(net.clone(), ns, Attach::new("async-1"))
            .await
            .unwrap();
        assert_eq!(att.address(), Ipv4Addr::new(10, 205, 0, 2));
        let mut nl = ns.netlink().unwrap();
        assert!(nl.link_by_name("lo").unwrap().unwrap().up);
        let eth0 = nl.link_by_name("eth0").unwrap().unwrap();
        assert!(eth0.up);
        let addrs = nl.addresses(eth0.index).unwrap();
        assert!(addrs
            .iter()
            .any(|(_, ip, p)| ip.to_string() == "10.205.0.2" && *p == 24));
        a::release(att).await.unwrap();
        drop(ns);
        a::remove(net).await.unwrap();
    });
    assert!(host.nft_tables().is_empty());
    assert!(state_files(state.path()).is_empty());
}

#[test]
fn attach_a_child_process_by_pid_and_pidfd_then_let_it_exit() {
    berth_testkit::privileged!();
    use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    let host = TestNs::new();
    let state = tempfile::tempdir().unwrap();
    let net = network(&host, state.path(), "t6", "10.207.0.0/24")
        .ensure()
        .unwrap();
    // a "container": a child in its own network namespace, as the container
    // crate will hand it over between clone and the child's go signal
    let mut cmd = std::process::Command::new("sleep");
    cmd.arg("60");
    // SAFETY: the pre_exec closure calls only unshare(2) (async-signal-safe).
    unsafe {
        cmd.pre_exec(|| {
            if libc::unshare(libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    /// Kills and reaps the child even when an assertion fails.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let child = Reap(cmd.spawn().unwrap());
    let pid = child.0.id() as i32;
    let by_pid = NetNs::from_pid(pid).unwrap();
    // SAFETY: a syscall with integer arguments.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    assert!(pidfd >= 0);
    // SAFETY: the fresh pidfd is owned by nobody else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    let by_pidfd = NetNs::from_pidfd(pidfd.as_fd()).unwrap();
    let ino = |fd: i32| {
        // SAFETY: stat is plain data; all zeroes is a valid value.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat on a valid fd into a writable struct.
        assert_eq!(unsafe { libc::fstat(fd, &mut st) }, 0);
        st.st_ino
    };
    assert_eq!(ino(by_pid.as_raw_fd()), ino(by_pidfd.as_raw_fd()));
    drop(by_pid);

    let att = net.attach(&by_pidfd, &Attach::new("child")).unwrap();
    // seen from inside the child's namespace
    let pid_s = pid.to_string();
    let inside = berth_testkit::run(
        "nsenter",
        &[
            "-t", &pid_s, "-n", "ip", "-j", "addr", "show", "dev", "eth0",
        ],
    );
    assert!(inside.contains("\"local\":\"10.207.0.2\""), "{inside}");
    berth_testkit::run(
        "nsenter",
        &[
            "-t",
            &pid_s,
            "-n",
            "busybox",
            "ping",
            "-c",
            "1",
            "-W",
            "3",
            "10.207.0.1",
        ],
    );
    // the container exits: release (no synchronous veth deletion), and the
    // kernel removes the veth with the namespace
    let hif = att.host_ifname().to_string();
    att.release().unwrap();
    drop(child);
    drop(by_pidfd);
    assert!(
        wait_for(30, || !host.link_names().contains(&hif)),
        "veth gone with the child's netns"
    );
    assert!(net.ipam().allocations().unwrap().is_empty());
    net.remove().unwrap();
    assert_eq!(host.link_names(), vec!["lo".to_string()]);
}

#[test]
fn quick_reuse_of_a_container_id_gets_a_fresh_host_veth() {
    berth_testkit::privileged!();
    let host = TestNs::new();
    let state = tempfile::tempdir().unwrap();
    let net = network(&host, state.path(), "t9", "10.209.0.0/24")
        .masquerade(false)
        .ensure()
        .unwrap();
    let me = NetNs::current().unwrap();
    let mut names = Vec::new();
    for _ in 0..3 {
        // The previous netns is gone from our side, but the kernel deletes it
        // (and the old veth with it) asynchronously: the old host end may
        // still exist while the same id attaches again.
        let ctr = NetNs::new_anonymous().unwrap();
        let att = net.attach(&ctr, &Attach::new("same")).unwrap();
        names.push(att.host_ifname().to_string());
        assert!(me.is_current(), "the caller's thread never changes netns");
        // one queue each way on both ends, set at creation
        let d = host.ip_json(&["-d", "link", "show", att.host_ifname()]);
        assert_eq!(d[0]["num_tx_queues"], 1, "{d}");
        assert_eq!(d[0]["num_rx_queues"], 1, "{d}");
        let d = ctr_ip_details(&ctr);
        assert_eq!(d[0]["num_tx_queues"], 1, "{d}");
        att.release().unwrap();
        drop(ctr);
    }
    names.dedup();
    assert_eq!(names.len(), 3, "{names:?}");
    // no published port and no masquerade: the firewall was never touched
    assert!(host.nft_tables().is_empty(), "{:?}", host.nft_tables());
    net.remove().unwrap();
}

#[test]
fn a_refused_nftables_transaction_names_the_message_and_changes_nothing() {
    berth_testkit::privileged!();
    let host = TestNs::new();
    let state = tempfile::tempdir().unwrap();
    let net = network(&host, state.path(), "t10", "10.210.5.0/24")
        .masquerade(false)
        .ensure()
        .unwrap();
    assert!(host.nft_tables().is_empty());
    // Someone else's chain where berth wants its nat prerouting chain: the
    // kernel refuses the whole batch of the first published port.
    host.exec(&["nft", "add", "table", "ip", "berth"]);
    host.exec(&[
        "nft",
        "add chain ip berth prerouting { type filter hook input priority 0; }",
    ]);
    let before = host.exec(&["nft", "-a", "list", "table", "ip", "berth"]);
    let links = host.link_names();
    let ctr = TestNs::new();
    let e = net
        .attach(
            &ctr.handle,
            &Attach::new("refused").publish(PortMapping::tcp(18090, 80)),
        )
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("nftables transaction"), "{msg}");
    assert!(msg.contains("add chain ip berth prerouting"), "{msg}");
    assert!(e.raw_os_error().is_some(), "errno kept: {e:?}");
    // all or nothing: no chain or rule of the batch was added
    assert_eq!(
        host.exec(&["nft", "-a", "list", "table", "ip", "berth"]),
        before
    );
    // and the attach was undone: no veth, no address
    assert_eq!(host.link_names(), links);
    assert_eq!(ctr.link_names(), vec!["lo".to_string()]);
    assert!(net.ipam().lookup("refused").unwrap().is_none());
    net.remove().unwrap();
}

#[test]
fn masquerade_of_a_non_byte_aligned_subnet_reads_back_as_nft_writes_it() {
    berth_testkit::privileged!();
    let host = TestNs::new();
    let state = tempfile::tempdir().unwrap();
    let net = network(&host, state.path(), "t11", "10.212.8.0/21")
        .ensure()
        .unwrap();
    let ruleset = host.exec(&["nft", "list", "table", "ip", "berth"]);
    for line in [
        "ip saddr 10.212.8.0/21 ip daddr != 10.212.8.0/21 masquerade comment \"berth net=t11\"",
        "ip saddr 10.212.8.0/21 ip daddr 10.212.8.0/21 ct status dnat masquerade comment \"berth net=t11\"",
    ] {
        assert!(ruleset.contains(line), "{line:?} missing in {ruleset}");
    }
    net.remove().unwrap();
    assert!(host.nft_tables().is_empty());
}

/// `ip -d -j link show eth0` inside an anonymous netns (through nsenter on its fd).
fn ctr_ip_details(ns: &NetNs) -> serde_json::Value {
    use std::os::fd::AsRawFd;
    let out = berth_testkit::run(
        "nsenter",
        &[
            &format!("--net=/proc/{}/fd/{}", std::process::id(), ns.as_raw_fd()),
            "ip",
            "-d",
            "-j",
            "link",
            "show",
            "eth0",
        ],
    );
    serde_json::from_str(&out).unwrap()
}
