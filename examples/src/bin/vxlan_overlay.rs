//! Section 8.3 of the lesson: an overlay network spanning hosts, and what
//! the encapsulation costs.
//!
//! Network namespaces stand in for hosts: a "switch" namespace with a
//! bridge, and two (or three, `--hosts 3`) "host" namespaces plugged into
//! it by veth pairs with underlay addresses 192.0.2.N/24. On every host
//! `berth-netsetup` builds the overlay `10.210.0.0/16` (VNI 4300): a local
//! bridge, a VXLAN device with the other hosts as static peers, host N
//! handing out addresses from 10.210.N.0/24, MTU underlay − 50. One
//! container namespace on host 1 and one on host 2 are attached.
//!
//! Then a bulk TCP transfer (`--mib` MiB, `--runs` times; median reported):
//! - `underlay`: host 1 → host 2 over the plain veth path (192.0.2.1 → .2);
//! - `overlay`: container on host 1 → container on host 2, through veth,
//!   bridge, VXLAN, the underlay, VXLAN, bridge, veth.
//!
//! With three hosts and learning off (the default), frames to a remote
//! container are replicated to every peer; `--learning` lets the VXLAN
//! devices learn where each MAC lives. Everything happens inside namespaces
//! the program created (no packet leaves them, the real host's links,
//! nftables and sysctls are untouched) and is removed at the end. Run as
//! root:
//!
//! ```text
//! cargo run -p berth-examples --bin vxlan_overlay -- [--hosts 3] [--learning] [--mib 512] [--runs 5]
//! ```

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use berth_netsetup::{Attach, NetNs, Netlink, Overlay, VethSpec, VxlanNetwork};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const CHUNK: usize = 128 * 1024;

struct Opts {
    hosts: u8,
    learning: bool,
    mib: usize,
    runs: usize,
}

fn opts() -> Res<Opts> {
    let mut o = Opts {
        hosts: 2,
        learning: false,
        mib: 512,
        runs: 5,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |what: &str| -> Res<usize> {
            Ok(args
                .next()
                .ok_or(format!("{what} needs a number"))?
                .parse()?)
        };
        match a.as_str() {
            "--hosts" => o.hosts = num("--hosts")?.clamp(2, 3) as u8,
            "--learning" => o.learning = true,
            "--mib" => o.mib = num("--mib")?.max(1),
            "--runs" => o.runs = num("--runs")?.max(1),
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    Ok(o)
}

/// Send `bytes` from a socket made in `from` to a listener made in `to` at
/// `addr`; the time until the receiver has read everything, in MB/s.
fn transfer(from: &NetNs, to: &NetNs, addr: Ipv4Addr, bytes: usize) -> Res<f64> {
    let sa = SocketAddr::from((addr, 7300));
    // Sockets stay in the netns they were made in, usable from any thread.
    let listener = to.run(move || TcpListener::bind(sa))??;
    let receiver = std::thread::spawn(move || -> std::io::Result<usize> {
        let (mut s, _) = listener.accept()?;
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0;
        loop {
            match s.read(&mut buf)? {
                0 => return Ok(total),
                n => total += n,
            }
        }
    });
    let mut s = from.run(move || TcpStream::connect_timeout(&sa, Duration::from_secs(5)))??;
    let buf = vec![0x5au8; CHUNK];
    let start = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(CHUNK);
        s.write_all(&buf[..n])?;
        left -= n;
    }
    drop(s);
    let got = receiver.join().map_err(|_| "receiver panicked")??;
    let secs = start.elapsed().as_secs_f64();
    if got != bytes {
        return Err(format!("received {got} of {bytes} bytes").into());
    }
    Ok(bytes as f64 / secs / 1e6)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Res<()> {
    let o = opts()?;
    // The underlay: a switch namespace with a bridge, hosts plugged into it.
    let switch = NetNs::new_anonymous()?;
    let mut snl = switch.netlink()?;
    let sw = snl.create_bridge("sw", None)?;
    snl.set_up(sw)?;
    let mut hosts = Vec::new();
    for n in 1..=o.hosts {
        let h = NetNs::new_anonymous()?;
        let port = format!("p{n}");
        let (p, _) = snl.create_veth(&VethSpec {
            host: &port,
            peer: "ul0",
            peer_netns: Some(h.as_fd()),
            controller: Some(sw),
            peer_mac: None,
            mtu: None,
        })?;
        snl.set_up(p)?;
        let mut hnl: Netlink = h.netlink()?;
        let ul0 = hnl.link_index("ul0")?.ok_or("ul0 missing")?;
        hnl.configure_interface(ul0, Ipv4Addr::new(192, 0, 2, n).into(), 24, None, true)?;
        hosts.push(h);
    }
    // The overlay on every host, each with its own IPAM state directory.
    let state_root: PathBuf =
        std::env::temp_dir().join(format!("berth-vxlan-overlay-{}", std::process::id()));
    let mut overlays: Vec<Overlay> = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        let mut b = VxlanNetwork::new("ovbench", 4300)
            .subnet("10.210.0.0/16")
            .bridge("br-ov")
            .learning(o.learning)
            .masquerade(false)
            .ip_forward(false)
            .state_dir(state_root.join(format!("host{}", i + 1)))
            .host_netns(h)?;
        for n in 1..=o.hosts {
            b = b.member(
                Ipv4Addr::new(192, 0, 2, n),
                format!("10.210.{n}.0/24").parse()?,
            );
        }
        let ov = b.ensure()?;
        println!(
            "host {}: {} range {} vxlan {} mtu {} peers {:?}",
            i + 1,
            ov.local(),
            ov.range(),
            ov.vxlan_ifname(),
            ov.mtu(),
            ov.peers()?
        );
        overlays.push(ov);
    }
    let c1 = NetNs::new_anonymous()?;
    let c2 = NetNs::new_anonymous()?;
    let a1 = overlays[0].attach(&c1, &Attach::new("c1"))?;
    let a2 = overlays[1].attach(&c2, &Attach::new("c2"))?;
    println!(
        "c1 {} on host 1, c2 {} on host 2; {} x {} MiB each way, learning {}",
        a1.address(),
        a2.address(),
        o.runs,
        o.mib,
        if o.learning { "on" } else { "off" }
    );
    let bytes = o.mib * 1024 * 1024;
    let (mut under, mut over) = (Vec::new(), Vec::new());
    for _ in 0..o.runs {
        // Interleaved, so both see the same load.
        under.push(transfer(
            &hosts[0],
            &hosts[1],
            Ipv4Addr::new(192, 0, 2, 2),
            bytes,
        )?);
        over.push(transfer(&c1, &c2, a2.address(), bytes)?);
    }
    println!("underlay (plain veth): {under:.0?} MB/s");
    println!("overlay (vxlan):       {over:.0?} MB/s");
    let (u, v) = (median(under), median(over));
    println!(
        "median: underlay {u:.0} MB/s, overlay {v:.0} MB/s ({:.0}%)",
        100.0 * v / u
    );

    a1.release()?;
    a2.release()?;
    for ov in overlays {
        ov.remove()?;
    }
    std::fs::remove_dir_all(&state_root)?;
    println!("removed: overlays, IPAM state; the namespaces go with this process");
    Ok(())
}
