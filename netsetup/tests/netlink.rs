//! Privileged tests of the netlink layer and netns handles, each in
//! namespaces the test creates (checked from the outside with `ip`).

mod common;

use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use berth_netsetup::{Error, NetNs, Netlink, VethSpec};
use common::*;

fn ino(fd: &impl AsRawFd) -> (u64, u64) {
    // SAFETY: stat is plain data; all zeroes is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat on a valid fd into a writable struct.
    assert_eq!(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) }, 0);
    (st.st_dev, st.st_ino)
}

#[test]
fn links_addresses_and_routes_over_netlink() {
    berth_testkit::privileged!();
    let a = TestNs::new();
    let b = TestNs::new();
    let mut nl = a.handle.netlink().unwrap();
    // bridge with MTU
    let br = nl.create_bridge("nlbr0", Some(1400)).unwrap();
    nl.set_up(br).unwrap();
    let l = a.ip_json(&["-d", "link", "show", "nlbr0"]);
    assert_eq!(l[0]["mtu"], 1400);
    assert_eq!(l[0]["linkinfo"]["info_kind"], "bridge");
    assert!(matches!(
        nl.create_bridge("nlbr0", None),
        Err(Error::LinkExists { .. })
    ));
    // veth with the peer created directly in namespace b
    let (h, peer) = nl
        .create_veth(&VethSpec {
            host: "nlv0",
            peer: "inb0",
            peer_netns: Some(b.handle.as_fd()),
            controller: Some(br),
            peer_mac: Some([0x02, 0, 0, 0, 0, 0x42]),
            mtu: Some(1400),
        })
        .unwrap();
    assert_eq!(a.ip_json(&["link", "show", "nlv0"])[0]["master"], "nlbr0");
    let peer_ifindex = b.ip_json(&["link", "show", "inb0"])[0]["ifindex"]
        .as_u64()
        .unwrap();
    assert_eq!(peer, Some(peer_ifindex as u32), "IFLA_LINK names the peer");
    let inb = b.ip_json(&["link", "show", "inb0"]);
    assert_eq!(inb[0]["address"], "02:00:00:00:00:42");
    assert_eq!(inb[0]["mtu"], 1400);
    // v4 and v6 addresses, listed back
    nl.add_address(br, "10.77.0.1".parse().unwrap(), 24, false)
        .unwrap();
    nl.add_address(br, "fd00:77::1".parse().unwrap(), 64, false)
        .unwrap();
    nl.add_address(br, "10.77.0.1".parse().unwrap(), 24, true)
        .unwrap();
    assert!(nl
        .add_address(br, "10.77.0.1".parse().unwrap(), 24, false)
        .is_err());
    let addrs = a.ip_json(&["addr", "show", "nlbr0"]);
    let locals: Vec<String> = addrs[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| format!("{}/{}", x["local"].as_str().unwrap(), x["prefixlen"]))
        .collect();
    assert!(locals.contains(&"10.77.0.1/24".to_string()), "{locals:?}");
    assert!(locals.contains(&"fd00:77::1/64".to_string()), "{locals:?}");
    let mine = nl.addresses(br).unwrap();
    assert!(mine.contains(&(br, "fd00:77::1".parse::<IpAddr>().unwrap(), 64)));
    nl.del_address(br, "fd00:77::1".parse().unwrap(), 64)
        .unwrap();
    assert!(!a.ip(&["addr", "show", "nlbr0"]).contains("fd00:77::1"));
    // in b: address, up, default route; renamed while down; MAC change
    let mut bnl = b.handle.netlink().unwrap();
    let i = bnl.link_index("inb0").unwrap().unwrap();
    bnl.rename(i, "eth7").unwrap();
    bnl.set_mac(i, [0x02, 0, 0, 0, 0, 0x43]).unwrap();
    bnl.set_mtu(i, 1300).unwrap();
    bnl.set_up(i).unwrap();
    bnl.add_address(i, "10.77.0.2".parse().unwrap(), 24, false)
        .unwrap();
    bnl.add_default_route("10.77.0.1".parse().unwrap(), i)
        .unwrap();
    let l = b.ip_json(&["link", "show", "eth7"]);
    assert_eq!(l[0]["address"], "02:00:00:00:00:43");
    assert_eq!(l[0]["mtu"], 1300);
    let r = b.ip_json(&["route", "show", "default"]);
    assert_eq!(r[0]["gateway"], "10.77.0.1");
    let routes = bnl.routes(false).unwrap();
    assert!(routes
        .iter()
        .any(|r| r.prefix_len == 0 && r.gateway == Some("10.77.0.1".parse().unwrap())));
    assert!(routes
        .iter()
        .any(|r| r.prefix_len == 24 && r.oif == Some(i)));
    // traffic between a and b
    b.exec(&["busybox", "ping", "-c", "1", "-W", "3", "10.77.0.1"]);
    bnl.set_down(i).unwrap();
    assert!(!b.ip_json(&["link", "show", "eth7"])[0]["flags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f == "UP"));
    // move it back into a, then delete the pair
    bnl.move_to_netns(i, a.handle.as_fd()).unwrap();
    assert!(a.link_names().contains(&"eth7".to_string()));
    assert!(!b.link_names().contains(&"eth7".to_string()));
    nl.delete_link(h).unwrap();
    assert!(!a.link_names().contains(&"eth7".to_string()));
    nl.delete_link(br).unwrap();
    assert_eq!(a.link_names(), vec!["lo".to_string()]);
    // Deleting a link that is already gone (the kernel may take a veth with
    // its peer's namespace between a lookup and the delete) is not an error.
    nl.delete_link(br).unwrap();
    nl.delete_link(h).unwrap();
    assert_eq!(nl.link_index("nlbr0").unwrap(), None);
    // a name over 15 bytes never reaches the kernel
    assert!(matches!(
        nl.create_bridge("sixteen-bytes-xx", None),
        Err(Error::InvalidName { .. })
    ));
}

#[test]
fn netns_handles() {
    berth_testkit::privileged!();
    let me = NetNs::current().unwrap();
    let by_pid = NetNs::from_pid(std::process::id() as i32).unwrap();
    assert_eq!(ino(&me), ino(&by_pid));
    // from a pidfd (pidfd_open, Linux ≥ 5.3; setns on it ≥ 5.8)
    // SAFETY: a syscall with integer arguments.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, std::process::id(), 0) };
    assert!(pidfd >= 0);
    // SAFETY: the fresh pidfd is owned by nobody else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    let by_pidfd = NetNs::from_pidfd(pidfd.as_fd()).unwrap();
    assert_eq!(ino(&me), ino(&by_pidfd));

    // anonymous: a different namespace, lo down until set_lo_up
    let anon = NetNs::new_anonymous().unwrap();
    assert_ne!(ino(&anon), ino(&me));
    let mut nl = anon.netlink().unwrap();
    assert!(!nl.link_by_name("lo").unwrap().unwrap().up);
    anon.set_lo_up().unwrap();
    assert!(nl.link_by_name("lo").unwrap().unwrap().up);
    // the caller's thread never moved
    assert_eq!(ino(&NetNs::current().unwrap()), ino(&me));
    // loopback traffic inside the anonymous namespace
    let srv = serve_once(listen_in(&anon, "127.0.0.1:9000"));
    assert_eq!(talk_from(&anon, "127.0.0.1:9000", "lo"), "echo:lo");
    srv.join().unwrap();
    // ip_forward is per namespace (a new one starts with the initial netns's
    // value: devconf_inherit_init_net=0), and set_ip_forward reports the old value
    let host_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    anon.set_ip_forward(false).unwrap();
    assert!(!anon.ip_forward().unwrap());
    assert!(!anon.set_ip_forward(true).unwrap());
    assert!(anon.ip_forward().unwrap());
    assert!(anon.set_ip_forward(true).unwrap());
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_before,
        "only the test's namespace changed"
    );

    // named: visible to `ip netns`, removed by the handle
    let name = berth_testkit::unique_name("bns");
    let named = NetNs::create_named(&name).unwrap();
    let _guard = berth_testkit::Netns::adopt(name.clone()); // cleanup if we panic
    assert!(berth_testkit::run("ip", &["netns", "list"]).contains(&name));
    assert!(
        berth_testkit::run("ip", &["-n", &name, "-j", "link", "show", "lo"]).contains("\"lo\"")
    );
    let reopened = NetNs::open_named(&name).unwrap();
    assert_eq!(ino(&reopened), ino(&named));
    assert!(matches!(
        NetNs::create_named(&name),
        Err(Error::Netns { .. })
    ));
    named.remove().unwrap();
    assert!(!std::path::Path::new("/run/netns").join(&name).exists());
    assert!(matches!(NetNs::open_named(&name), Err(Error::Netns { .. })));
    assert!(NetNs::create_named("a/b").is_err());
}

#[test]
fn netlink_socket_opened_in_another_netns_stays_there() {
    berth_testkit::privileged!();
    let t = TestNs::new();
    let mut inside = t.handle.netlink().unwrap();
    let mut here = Netlink::open().unwrap();
    // only the test netns sees a link created through its socket
    let i = inside.create_bridge("onlythere0", None).unwrap();
    assert!(t.link_names().contains(&"onlythere0".to_string()));
    assert_eq!(here.link_index("onlythere0").unwrap(), None);
    inside.delete_link(i).unwrap();
}

#[test]
fn from_pidfd_refuses_an_fd_that_is_not_a_pidfd() {
    berth_testkit::privileged!();
    use std::os::fd::AsFd;
    let f = std::fs::File::open("/dev/null").unwrap();
    let e = NetNs::from_pidfd(f.as_fd()).unwrap_err();
    assert!(e.to_string().contains("setns(pidfd)"), "{e}");
    assert!(e.raw_os_error().is_some(), "{e:?}");
}
