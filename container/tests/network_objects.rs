//! Networks as objects (issue 22 item 5) and names on them (issue 24 item
//! 2): create, list, join by handle or name, resolve members by container
//! id and alias, names gone with the container, remove with nothing left;
//! a port published on 127.0.0.1 reachable from the host's loopback. Each
//! test uses its own bridge name, subnet and network state directory, and
//! leaves `ip_forward` alone (`ip_forward(false)`).

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use berth::{Network, PortMapping, Stdio};
use common::*;

/// The busybox address of `name` as the container sees it (`ping`'s first line).
fn resolve_script(name: &str) -> String {
    format!("ping -c1 -W2 {name} | head -n1")
}

#[test]
fn containers_resolve_each_other_by_name_and_alias_until_one_goes() {
    berth_testkit::privileged!();
    let root = state_root();
    let net_state = tempfile::tempdir().unwrap();
    let name = berth_testkit::unique_name("nn");
    let _link = berth_testkit::Link::adopt(name.clone());
    let fwd_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let net = Network::create(&name)
        .subnet("10.231.9.0/24")
        .masquerade(false)
        .ip_forward(false)
        .state_dir(net_state.path())
        .create()
        .unwrap();
    // A second create of the same name is refused by name.
    let e = Network::create(&name)
        .state_dir(net_state.path())
        .create()
        .unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    let list = Network::list(Some(net_state.path())).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].name, name);
    assert_eq!(list[0].subnet, "10.231.9.0/24");

    // Member one joins by handle, with an alias; it stays up.
    let one = berth_testkit::unique_name("one");
    let mut c1 = busybox(&one, &root)
        .network(net.clone().alias("db"))
        .command(["/bin/sleep", "60"])
        .spawn()
        .unwrap();
    let a1 = c1.address().unwrap();
    // Member two joins by name and pings one by id and by alias. Its root
    // is a writable overlay (one's is a bound directory): /etc/hosts is
    // bound over the file written into the root.
    let two = berth_testkit::unique_name("two");
    let c2 = busybox(&two, &root)
        .rootfs(berth::Rootfs::layers([berth_testkit::busybox_rootfs()]))
        .network(Network::named(&name).state_dir(net_state.path()))
        .command(["/bin/sleep", "60"])
        .spawn()
        .unwrap();
    let ping = |target: &str| {
        let out = c2
            .exec(["/bin/sh", "-c", &resolve_script(target)])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    for target in [one.as_str(), "db"] {
        let out = ping(target);
        let hosts = c2.exec(["/bin/cat", "/etc/hosts"]).output().unwrap();
        assert!(
            out.contains(&format!("({a1})")),
            "ping {target}: {out}\n/etc/hosts: {}",
            String::from_utf8_lossy(&hosts.stdout)
        );
    }
    // And one sees two by id.
    let out = c1
        .exec(["/bin/sh", "-c", &resolve_script(&two)])
        .output()
        .unwrap();
    let a2 = c2.address().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("({a2})")),
        "{out:?}"
    );
    assert_eq!(net.containers().unwrap().len(), 2);
    // The network cannot go while containers are on it.
    let e = Network::open(Some(net_state.path()), &name)
        .unwrap()
        .remove()
        .unwrap_err();
    assert!(e.to_string().contains(&one), "{e}");

    // One goes: its names stop resolving in two (the same running container).
    c1.kill(libc::SIGKILL).unwrap();
    c1.wait().unwrap();
    c1.destroy().unwrap();
    for target in [one.as_str(), "db"] {
        let out = ping(target);
        assert!(
            out.contains("bad address"),
            "ping {target} after destroy: {out}"
        );
    }
    c2.destroy().unwrap();

    Network::open(Some(net_state.path()), &name)
        .unwrap()
        .remove()
        .unwrap();
    assert!(Network::list(Some(net_state.path())).unwrap().is_empty());
    let links = berth_testkit::run("ip", &["-o", "link", "show"]);
    assert!(
        !links.contains(&format!(" {name}:")),
        "bridge left: {links}"
    );
    let e = Network::open(Some(net_state.path()), &name).unwrap_err();
    assert!(e.to_string().contains("no network named"), "{e}");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        fwd_before
    );
    // No IPAM state, record or hosts file left (the firewall's lock stays).
    let left: Vec<_> = std::fs::read_dir(net_state.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "nft.lock")
        .collect();
    assert!(left.is_empty(), "network state left: {left:?}");
}

#[test]
fn port_published_on_loopback_reaches_busybox_nc() {
    berth_testkit::privileged!();
    let root = state_root();
    let net_state = tempfile::tempdir().unwrap();
    let name = berth_testkit::unique_name("nl");
    let _link = berth_testkit::Link::adopt(name.clone());
    let net = Network::create(&name)
        .subnet("10.231.10.0/24")
        .masquerade(false)
        .ip_forward(false)
        .state_dir(net_state.path())
        .create()
        .unwrap();
    // A free host port: bind, note, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let id = berth_testkit::unique_name("nc");
    let mut c = busybox(&id, &root)
        .network(
            net.clone()
                .publish(PortMapping::tcp(port, 8080).host_ip(std::net::Ipv4Addr::LOCALHOST)),
        )
        .command(["/bin/sh", "-c", "echo hello-from-nc | nc -l -p 8080"])
        .stdout(Stdio::Null)
        .spawn()
        .unwrap();
    // The listener starts a moment after the container: retry.
    let end = Instant::now() + Duration::from_secs(10);
    let got = loop {
        let mut s = match std::net::TcpStream::connect_timeout(
            &format!("127.0.0.1:{port}").parse().unwrap(),
            Duration::from_secs(2),
        ) {
            Ok(s) => s,
            Err(e) => {
                assert!(Instant::now() < end, "127.0.0.1:{port}: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(b"x\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        if !out.is_empty() {
            break out;
        }
        assert!(Instant::now() < end, "no answer on 127.0.0.1:{port}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(got.trim(), "hello-from-nc");
    let _ = c.wait();
    c.destroy().unwrap();
    net.remove().unwrap();
    let rules = berth_testkit::run("nft", &["list", "ruleset"]);
    assert!(!rules.contains(&name), "nft rules left: {rules}");
}
