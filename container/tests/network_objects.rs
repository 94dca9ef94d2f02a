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

/// A user-defined network of the test's own: a unique bridge, `subnet`, a
/// private state directory, no masquerade, `ip_forward` left alone.
struct TestNet {
    name: String,
    state: tempfile::TempDir,
    net: Network,
    _link: berth_testkit::Link,
}

fn test_network(prefix: &str, subnet: &str) -> TestNet {
    let state = tempfile::tempdir().unwrap();
    let name = berth_testkit::unique_name(prefix);
    let _link = berth_testkit::Link::adopt(name.clone());
    let net = Network::create(&name)
        .subnet(subnet)
        .masquerade(false)
        .ip_forward(false)
        .state_dir(state.path())
        .create()
        .unwrap();
    TestNet {
        name,
        state,
        net,
        _link,
    }
}

/// No IPAM state, record or hosts file left in `dir` (the firewall's lock stays).
fn assert_no_network_state(dir: &std::path::Path) {
    let left = berth_testkit::files_left(dir, &["nft.lock"]);
    assert!(left.is_empty(), "network state left: {left:?}");
}

#[test]
fn containers_resolve_each_other_by_name_and_alias_until_one_goes() {
    berth_testkit::privileged!();
    let root = state_root();
    let fwd_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let tn = test_network("nn", "10.231.9.0/24");
    let (name, net_state, net) = (tn.name.as_str(), tn.state.path(), tn.net.clone());
    // A second create of the same name is refused by name.
    let e = Network::create(name)
        .state_dir(net_state)
        .create()
        .unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    let list = Network::list(Some(net_state)).unwrap();
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
        .network(Network::named(name).state_dir(net_state))
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
    let e = Network::open(Some(net_state), name)
        .unwrap()
        .remove()
        .unwrap_err();
    assert!(e.to_string().contains(&one), "{e}");

    // One goes: its names stop resolving in two (the same running container).
    c1.kill().unwrap();
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

    Network::open(Some(net_state), name)
        .unwrap()
        .remove()
        .unwrap();
    assert!(Network::list(Some(net_state)).unwrap().is_empty());
    let links = berth_testkit::run("ip", &["-o", "link", "show"]);
    assert!(
        !links.contains(&format!(" {name}:")),
        "bridge left: {links}"
    );
    let e = Network::open(Some(net_state), name).unwrap_err();
    assert!(e.to_string().contains("no network named"), "{e}");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        fwd_before
    );
    assert_no_network_state(net_state);
}

#[test]
fn port_published_on_loopback_reaches_busybox_nc() {
    berth_testkit::privileged!();
    let root = state_root();
    let tn = test_network("nl", "10.231.10.0/24");
    let (name, net) = (tn.name.as_str(), tn.net.clone());
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
    assert!(!rules.contains(name), "nft rules left: {rules}");
}

/// Run by `names_go_when_a_crashed_owners_container_is_collected` in a
/// process of its own: start a container on network `BERTH_NET_OWNER`
/// (`root:netstate:network:id`), then wait to be killed.
#[test]
fn net_owner_helper() {
    let Ok(spec) = std::env::var("BERTH_NET_OWNER") else {
        return;
    };
    let v: Vec<&str> = spec.split(':').collect();
    let [root, netstate, net, id] = v[..] else {
        panic!("{spec}")
    };
    own_until_killed(
        busybox(id, &tempfile::TempDir::new().unwrap())
            .state_root(root)
            .network(Network::named(net).state_dir(netstate).alias("crashy")),
    );
}

#[test]
fn names_go_when_a_crashed_owners_container_is_collected() {
    berth_testkit::privileged!();
    let root = state_root();
    let tn = test_network("ng", "10.231.13.0/24");
    let (name, net_state, net) = (tn.name.as_str(), tn.state.path(), tn.net.clone());
    let watcher = berth_testkit::unique_name("w");
    let w = busybox(&watcher, &root)
        .network(net.clone())
        .command(["/bin/sleep", "60"])
        .spawn()
        .unwrap();
    let crashy = berth_testkit::unique_name("cr");
    let mut owner = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "net_owner_helper",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            "BERTH_NET_OWNER",
            format!(
                "{}:{}:{name}:{crashy}",
                root.path().display(),
                net_state.display()
            ),
        )
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let resolves = |target: &str| {
        let out = w
            .exec(["/bin/sh", "-c", &resolve_script(target)])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("PING")
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !resolves("crashy") {
        assert!(Instant::now() < deadline, "crashy never resolved");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The owner dies without destroying its container; gc collects it.
    owner.kill().unwrap();
    owner.wait().unwrap();
    let r = berth::gc(Some(root.path())).unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.reclaimed, vec![crashy.clone()]);
    assert!(
        !resolves("crashy") && !resolves(&crashy),
        "names outlived gc"
    );
    w.destroy().unwrap();
    net.remove().unwrap();
    assert_no_network_state(net_state);
}

/// Issue 23 item 3: a failure at the last phase of `build()` (the network
/// attach, run after the clone: the child, its cgroup, its state directory
/// and its hosts file exist) undoes everything. The published host port is
/// taken by a listener of the test's own, so the attach fails with
/// `PortTaken`.
#[test]
fn a_taken_published_port_fails_late_and_leaves_nothing() {
    berth_testkit::privileged!();
    let root = state_root();
    let tn = test_network("nt", "10.231.14.0/24");
    let (name, net) = (tn.name.as_str(), tn.net.clone());
    // Its firewall rules go even when an assertion below fails.
    let mut removal = RemoveOnDrop(Some(net.clone()));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let id = berth_testkit::unique_name("pt");
    let e = busybox(&id, &root)
        .network(
            net.clone()
                .publish(PortMapping::tcp(port, 8080).host_ip(std::net::Ipv4Addr::LOCALHOST)),
        )
        .command(["/bin/true"])
        .spawn()
        .unwrap_err();
    assert!(e.to_string().contains(&port.to_string()), "{e}");
    // (No process: its cgroup could not have been removed. The test's own
    // children are not counted: the other tests of this file run beside it.)
    assert_no_footprint(root.path(), &id);
    let rules = berth_testkit::run("nft", &["list", "ruleset"]);
    assert!(!rules.contains(&id), "nft rules left for {id}: {rules}");
    // No hosts file, record or address of the container in the network's state.
    for f in berth_testkit::files_left(tn.state.path(), &[]) {
        assert!(!f.contains(&id), "network state left: {f}");
        let text = std::fs::read_to_string(tn.state.path().join(&f)).unwrap_or_default();
        assert!(!text.contains(&id), "{f} still names {id}: {text}");
    }
    drop(taken);
    removal.0.take().unwrap().remove().unwrap();
    let rules = berth_testkit::run("nft", &["list", "ruleset"]);
    assert!(!rules.contains(name), "nft rules left: {rules}");
    assert_no_network_state(tn.state.path());
}

/// Removes a network (its bridge and firewall rules) when dropped.
struct RemoveOnDrop(Option<Network>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(n) = self.0.take() {
            let _ = n.remove();
        }
    }
}
