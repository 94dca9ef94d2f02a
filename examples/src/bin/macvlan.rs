//! Section 8.3 of the lesson: macvlan networks, where containers sit on the
//! host's segment with MAC addresses of their own, and the one thing they
//! cannot reach: the host, through the parent's own address.
//!
//! Network namespaces stand in for the machines: a "host" with the parent
//! interface `lan0` (address 10.215.0.254/24), a "neighbour" on the other
//! end of the wire (`lan1`, 10.215.0.253/24; the wire is a veth pair, this
//! kernel has no dummy driver). `berth_netsetup::MacvlanNetwork` makes the
//! network `10.215.0.0/24` on parent `lan0` in the host namespace (IPAM
//! state in a temporary directory; nothing is created on the host: no
//! bridge, no nft rule, no `ip_forward`), and two container namespaces are
//! attached: each gets a macvlan of `lan0` in bridge mode, created directly
//! inside it, with an address from IPAM and a default route.
//!
//! Then TCP connections, each with a 1 s timeout, and what happened:
//! - container `c2` → container `c1`: macvlans of one parent are switched
//!   inside the kernel (bridge mode);
//! - `c1` → the neighbour: out through the parent, over the wire;
//! - `c1` → the host's own address on `lan0`, and the host → `c1`: no
//!   answer. The macvlan bridge-mode rule (drivers/net/macvlan.c): frames
//!   from a macvlan are delivered to its siblings or sent out of the parent,
//!   never up the parent's own stack, and frames the parent sends go out
//!   the wire, never to its macvlans — ARP for the other side is never
//!   answered. (The usual remedy: give the host a macvlan of its own and
//!   its address there.)
//!
//! At the end the attachments and the network are removed; the program
//! checks and prints that the macvlans and the IPAM state are gone and the
//! parent is still there. Everything happens inside namespaces the program
//! created. Run as root:
//!
//! ```text
//! cargo run -p berth-examples --bin macvlan
//! ```

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

use berth_netsetup::{Attach, MacvlanNetwork, NetNs, Netlink, VethSpec};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const PORT: u16 = 7400;
const HOST: Ipv4Addr = Ipv4Addr::new(10, 215, 0, 254);
const NEIGHBOUR: Ipv4Addr = Ipv4Addr::new(10, 215, 0, 253);

/// One TCP exchange from a socket made in `from` to a listener made in
/// `to` on `addr`: "answered" with the peer address the listener saw, or
/// why not.
fn exchange(from: &NetNs, to: &NetNs, addr: Ipv4Addr) -> Res<String> {
    let sa = SocketAddr::from((addr, PORT));
    // Sockets stay in the netns they were made in, usable from any thread.
    let listener = to.run(|| TcpListener::bind(("0.0.0.0", PORT)))??;
    let server = std::thread::spawn(move || -> std::io::Result<String> {
        let (mut s, peer) = listener.accept()?;
        s.write_all(b"hi\n")?;
        Ok(peer.ip().to_string())
    });
    let conn = from.run(move || TcpStream::connect_timeout(&sa, Duration::from_secs(1)))?;
    let result = match conn {
        Ok(mut s) => {
            let mut got = String::new();
            s.read_to_string(&mut got)?;
            let peer = server.join().map_err(|_| "server panicked")??;
            format!("answered (the listener saw {peer})")
        }
        Err(e) => {
            // Unblock the listener's accept with a connection of its own
            // namespace, so its thread ends.
            to.run(move || TcpStream::connect(("127.0.0.1", PORT)))??;
            let _ = server.join();
            format!("no answer ({e})")
        }
    };
    Ok(result)
}

fn main() -> Res<()> {
    // The host and its neighbour on the wire.
    let host = NetNs::new_anonymous()?;
    let neighbour = NetNs::new_anonymous()?;
    let mut hnl: Netlink = host.netlink()?;
    let (lan0, _) = hnl.create_veth(&VethSpec {
        host: "lan0",
        peer: "lan1",
        peer_netns: Some(neighbour.as_fd()),
        controller: None,
        peer_mac: None,
        mtu: None,
    })?;
    hnl.configure_interface(lan0, HOST.into(), 24, None, true)?;
    let mut nnl = neighbour.netlink()?;
    let lan1 = nnl.link_index("lan1")?.ok_or("lan1 missing")?;
    nnl.configure_interface(lan1, NEIGHBOUR.into(), 24, None, true)?;
    println!("host: lan0 {HOST}/24; neighbour: lan1 {NEIGHBOUR}/24 (the wire: a veth pair)");

    let state = std::env::temp_dir().join(format!("berth-macvlan-{}", std::process::id()));
    let net = MacvlanNetwork::new("mvlesson")
        .parent("lan0")
        .subnet("10.215.0.0/24")
        .state_dir(&state)
        .host_netns(&host)?
        .ensure()?;
    println!(
        "network {} driver {} parent {} subnet {} gateway {}",
        net.name(),
        net.driver(),
        net.bridge(),
        net.subnet(),
        net.gateway()
    );
    let c1 = NetNs::new_anonymous()?;
    let c2 = NetNs::new_anonymous()?;
    let a1 = net.attach(&c1, &Attach::new("c1"))?;
    let a2 = net.attach(&c2, &Attach::new("c2"))?;
    for (name, ns, a) in [("c1", &c1, &a1), ("c2", &c2, &a2)] {
        let links = ns.netlink()?.links()?;
        let eth0 = links
            .iter()
            .find(|l| l.name == "eth0")
            .ok_or("no eth0 in the container")?;
        println!(
            "{name}: eth0 {}/{} kind {}",
            a.address(),
            a.prefix_len(),
            eth0.kind.as_deref().unwrap_or("?")
        );
    }
    let host_links: Vec<String> = hnl.links()?.into_iter().map(|l| l.name).collect();
    println!("host links: {}", host_links.join(" "));

    let c1a = a1.address();
    println!("c2 -> c1 {c1a}: {}", exchange(&c2, &c1, c1a)?);
    println!(
        "c1 -> neighbour {NEIGHBOUR}: {}",
        exchange(&c1, &neighbour, NEIGHBOUR)?
    );
    println!(
        "c1 -> host {HOST} (the parent's own address): {}",
        exchange(&c1, &host, HOST)?
    );
    println!("host -> c1 {c1a}: {}", exchange(&host, &c1, c1a)?);

    a1.detach()?;
    a2.detach()?;
    net.remove()?;
    for (name, ns) in [("c1", &c1), ("c2", &c2)] {
        let gone = ns.netlink()?.link_index("eth0")?.is_none();
        println!("cleanup: {name}'s macvlan removed: {}", yes(gone));
    }
    let ipam_gone = std::fs::read_dir(&state)?
        .flatten()
        .all(|e| e.file_name().to_string_lossy().ends_with(".lock"));
    println!("cleanup: IPAM state and record removed: {}", yes(ipam_gone));
    std::fs::remove_dir_all(&state)?;
    let parent = hnl.link_index("lan0")?.is_some();
    println!("cleanup: parent lan0 still there: {}", yes(parent));
    println!("the namespaces go with this process");
    Ok(())
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
