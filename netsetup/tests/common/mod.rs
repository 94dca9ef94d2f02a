//! Helpers for berth-netsetup's privileged tests: a private "host" netns per
//! test (so the real host's links, nftables and sysctls are never touched),
//! and TCP helpers that open sockets inside a namespace.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use berth_netsetup::{BridgeNetwork, NetNs};
use berth_testkit::{run, Netns};

/// A named test netns (removed on drop) plus a handle on it.
pub struct TestNs {
    pub handle: NetNs,
    pub named: Netns,
}

impl TestNs {
    pub fn new() -> Self {
        let named = Netns::new();
        let handle = NetNs::open_named(named.name()).expect("open test netns");
        Self { handle, named }
    }
    pub fn name(&self) -> &str {
        self.named.name()
    }
    /// `ip -n <ns> <args>`.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut a = vec!["-n", self.name()];
        a.extend_from_slice(args);
        run("ip", &a)
    }
    /// `ip -n <ns> -j <args>` parsed.
    pub fn ip_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["-j"];
        a.extend_from_slice(args);
        let out = self.ip(&a);
        if out.trim().is_empty() {
            return serde_json::Value::Array(vec![]);
        }
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("ip json {out:?}: {e}"))
    }
    /// Names of the links in the namespace.
    pub fn link_names(&self) -> Vec<String> {
        self.ip_json(&["link", "show"])
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["ifname"].as_str().unwrap().to_string())
            .collect()
    }
    /// Run a command inside the namespace (`ip netns exec`).
    pub fn exec(&self, cmd: &[&str]) -> String {
        let mut a = vec!["netns", "exec", self.name()];
        a.extend_from_slice(cmd);
        run("ip", &a)
    }
    /// Names of the nftables tables in the namespace (`family name`).
    pub fn nft_tables(&self) -> Vec<String> {
        let out = self.exec(&["nft", "-j", "list", "tables"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| !o["table"].is_null())
            .map(|o| {
                format!(
                    "{} {}",
                    o["table"]["family"].as_str().unwrap(),
                    o["table"]["name"].as_str().unwrap()
                )
            })
            .collect()
    }
    /// A veth pair from this namespace (`kh`, `<net>.1/24`) to `peer`
    /// (`kc`, `<net>.2/24`), both ends up: a link between the test's
    /// "host" and a client namespace (test plumbing, via ip).
    pub fn veth_to(&self, peer: &TestNs, net: &str) {
        self.ip(&[
            "link",
            "add",
            "kh",
            "type",
            "veth",
            "peer",
            "name",
            "kc",
            "netns",
            peer.name(),
        ]);
        self.ip(&["addr", "add", &format!("{net}.1/24"), "dev", "kh"]);
        self.ip(&["link", "set", "kh", "up"]);
        peer.ip(&["addr", "add", &format!("{net}.2/24"), "dev", "kc"]);
        peer.ip(&["link", "set", "kc", "up"]);
    }
    /// `ip_forward` inside.
    pub fn ip_forward(&self) -> String {
        self.exec(&["cat", "/proc/sys/net/ipv4/ip_forward"])
            .trim()
            .to_string()
    }
}

/// A TCP listener opened inside `ns` (usable from any thread).
pub fn listen_in(ns: &NetNs, addr: &str) -> TcpListener {
    let a: SocketAddr = addr.parse().unwrap();
    // A previous listener on the same port may live on for a moment in a
    // child that another test forked meanwhile (the fd copy goes at its
    // exec): retry EADDRINUSE briefly.
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        match ns.run(move || TcpListener::bind(a)).unwrap() {
            Ok(l) => return l,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("bind {addr} in netns: {e}"),
        }
    }
}

/// Serve one connection: read a line, answer `echo:<line>` plus the peer address.
pub fn serve_once(l: TcpListener) -> std::thread::JoinHandle<SocketAddr> {
    std::thread::spawn(move || {
        let (mut s, peer) = l.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).expect("server read");
        let reply = format!("echo:{}", String::from_utf8_lossy(&buf[..n]));
        s.write_all(reply.as_bytes()).unwrap();
        peer
    })
}

/// Connect from inside `ns` to `addr`, send `msg`, return the reply.
pub fn talk_from(ns: &NetNs, addr: &str, msg: &str) -> String {
    let a: SocketAddr = addr.parse().unwrap();
    let mut s = ns
        .run(move || TcpStream::connect_timeout(&a, Duration::from_secs(5)))
        .unwrap()
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(msg.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).expect("client read");
    out
}

/// Poll `f` until it is true or `secs` pass.
pub fn wait_for(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// JSON state files left in a state dir.
pub fn state_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".json"))
                .collect()
        })
        .unwrap_or_default()
}

/// The real host's `ip_forward` (tests must leave it as they found it).
pub fn host_ip_forward() -> String {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        .unwrap()
        .trim()
        .to_string()
}

/// Network `name` on bridge `br-<name>` in the test's "host" netns.
pub fn network(host: &TestNs, state: &Path, name: &str, subnet: &str) -> BridgeNetwork {
    BridgeNetwork::new(name)
        .bridge(&format!("br-{name}"))
        .subnet(subnet)
        .state_dir(state)
        .host_netns(&host.handle)
        .unwrap()
}
