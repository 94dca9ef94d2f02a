//! Section 8.2 of the lesson: two containers talking over a bridge.
//!
//! With `berth-netsetup` the program creates a bridge with a gateway address
//! in the host's network namespace (no NAT, `ip_forward` untouched, IPAM
//! state in a temporary directory), starts two containers with
//! `berth-namespaces` (new network, UTS and PID namespaces, started in two
//! phases so they are attached before they run), and attaches each: a veth
//! pair whose container end is `eth0`, an address from IPAM, a default route
//! via the gateway. Container `c1` serves TCP, `c2` connects to `c1`'s
//! address. Each container prints its own routes (from `/proc/net/route`,
//! which shows its netns) and its side of the exchange. Traffic flows only
//! between the two containers' namespaces, through the bridge.
//!
//! At the end everything is torn down (veths, bridge, IPAM state) and the
//! program checks and prints that it is gone. Run as root (non-interactive):
//!
//! ```text
//! cargo run -p berth-examples --bin bridge
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;

use berth_namespaces::{Child, Namespaces, Spawner, Stdio};
use berth_netsetup::{Attach, BridgeNetwork, NetNs, Network};

type Res<T> = Result<T, Box<dyn std::error::Error>>;
const PORT: u16 = 7777;

/// This netns's routes, from `/proc/net/route` (hex, little-endian).
fn print_routes(me: &str) {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split_whitespace().collect();
        let ip = |s: &str| Ipv4Addr::from(u32::from_str_radix(s, 16).unwrap_or(0).swap_bytes());
        let (dest, gw, mask) = (ip(f[1]), ip(f[2]), ip(f[7]));
        if dest.is_unspecified() {
            println!("{me}: route default via {gw} dev {}", f[0]);
        } else {
            println!(
                "{me}: route {dest}/{} dev {}",
                mask.to_bits().count_ones(),
                f[0]
            );
        }
    }
}

/// Inside `c1`: accept one connection, answer it.
fn serve() -> Res<()> {
    print_routes("c1");
    let listener = TcpListener::bind(("0.0.0.0", PORT))?;
    println!("c1: listening on port {PORT}");
    let (mut conn, peer) = listener.accept()?;
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line)?;
    println!("c1: got {:?} from {peer}", line.trim());
    conn.write_all(b"pong from c1\n")?;
    Ok(())
}

/// Inside `c2`: connect to `c1`, send a line, print the answer.
fn connect(addr: &str) -> Res<()> {
    print_routes("c2");
    let mut conn = TcpStream::connect((addr, PORT))?;
    println!("c2: connected to {addr}:{PORT} from {}", conn.local_addr()?);
    conn.write_all(b"ping from c2\n")?;
    let mut reply = String::new();
    conn.read_to_string(&mut reply)?;
    println!("c2: got {:?}", reply.trim());
    Ok(())
}

/// Start a container in two phases: created, attached to `net`, then run.
fn start(
    net: &Network,
    name: &str,
    args: &[&str],
) -> Res<(Child, NetNs, berth_netsetup::Attachment)> {
    let exe = std::env::current_exe()?;
    let mut child = Spawner::new([exe.as_os_str()])
        .args(args)
        .namespaces(Namespaces::NET | Namespaces::UTS | Namespaces::PID)
        .hostname(name)
        .stdout(Stdio::Piped)
        .spawn_stopped()?;
    // Holding the netns keeps it alive after the container exits, so the
    // veth can be deleted explicitly at the end.
    let ns = NetNs::from_pidfd(child.pidfd())?;
    let id = format!("{name}-{}", std::process::id());
    let att = net.attach(&ns, &Attach::new(&id))?;
    println!(
        "{name}: eth0 {}/{} gateway {} (host side {})",
        att.address(),
        att.prefix_len(),
        att.gateway(),
        att.host_ifname()
    );
    child.start()?;
    Ok((child, ns, att))
}

/// A /24 in 10.213.0.0/16 that no host route uses yet.
fn free_subnet() -> Res<String> {
    let routes = std::fs::read_to_string("/proc/net/route")?;
    (0u8..=255)
        .map(|n| (n, format!("{:08X}", u32::from_le_bytes([10, 213, n, 0]))))
        .find(|(_, hex)| !routes.contains(hex.as_str()))
        .map(|(n, _)| format!("10.213.{n}.0/24"))
        .ok_or_else(|| "no free /24 in 10.213.0.0/16".into())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--serve") => return serve(),
        Some("--connect") => return connect(args.get(2).ok_or("--connect ADDR")?),
        _ => {}
    }
    let pid = std::process::id();
    let (name, bridge) = (format!("lesson-{pid}"), format!("brl{pid}"));
    let state = std::env::temp_dir().join(format!("berth-bridge-{pid}"));
    let subnet = free_subnet()?;
    let net = BridgeNetwork::new(&name)
        .bridge(&bridge)
        .subnet(&subnet)
        .state_dir(&state)
        .masquerade(false) // nothing leaves the subnet: no NAT
        .ip_forward(false) // and the host's ip_forward is left alone
        .ensure()?;
    println!(
        "bridge {bridge}: subnet {subnet}, gateway {}",
        net.gateway()
    );
    let mut veths = Vec::new();
    let result = exchange(&net, &mut veths);
    teardown(net, &bridge, &veths, &state)?;
    result
}

fn exchange(net: &Network, veths: &mut Vec<String>) -> Res<()> {
    let (mut c1, ns1, a1) = start(net, "c1", &["--serve"])?;
    veths.push(a1.host_ifname().to_string());
    // Wait until c1 listens before starting the client.
    let mut out1 = BufReader::new(c1.stdout.take().ok_or("no stdout")?);
    let mut line = String::new();
    while out1.read_line(&mut line)? > 0 {
        print!("{line}");
        if line.contains("listening") {
            break;
        }
        line.clear();
    }
    let (mut c2, ns2, a2) = start(net, "c2", &["--connect", &a1.address().to_string()])?;
    veths.push(a2.host_ifname().to_string());
    let mut rest = String::new();
    c2.stdout
        .take()
        .ok_or("no stdout")?
        .read_to_string(&mut rest)?;
    print!("{rest}");
    rest.clear();
    out1.read_to_string(&mut rest)?;
    print!("{rest}");
    let (s1, s2) = (c1.wait()?, c2.wait()?);
    println!("c1 exited with {s1}, c2 exited with {s2}");
    // Delete the veths while the namespaces still exist.
    a1.detach()?;
    a2.detach()?;
    drop((ns1, ns2));
    if !(s1.success() && s2.success()) {
        return Err("a container failed".into());
    }
    Ok(())
}

fn teardown(net: Network, bridge: &str, veths: &[String], state: &Path) -> Res<()> {
    net.remove()?;
    let _ = std::fs::remove_dir_all(state);
    let links = std::fs::read_dir("/sys/class/net")?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect::<Vec<_>>();
    let gone = |b: bool| if b { "yes" } else { "NO" };
    println!(
        "cleanup: bridge {bridge} removed: {}",
        gone(!links.iter().any(|l| l == bridge))
    );
    for v in veths {
        println!("cleanup: veth {v} removed: {}", gone(!links.contains(v)));
    }
    println!(
        "cleanup: IPAM state {} removed: {}",
        state.display(),
        gone(!state.exists())
    );
    if links.iter().any(|l| l == bridge || veths.contains(l)) || state.exists() {
        return Err("cleanup incomplete".into());
    }
    Ok(())
}
