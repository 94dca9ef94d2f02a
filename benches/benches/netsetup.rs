//! Criterion benchmarks of `berth-netsetup`: attach one network namespace to
//! a bridge (veth with the peer created in the netns, `lo` and `eth0` up,
//! address, default route) and detach it — with berth over netlink, and the
//! same steps with iproute2 commands in the same run as the baseline.
//!
//! Everything happens inside a private "host" netns made for the run, so the
//! real host's links, nftables and sysctls are untouched. Needs root; prints
//! why and returns otherwise.
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use std::os::fd::AsFd;

use berth_netsetup::{Attach, BridgeNetwork, NetNs, PortMapping, VethSpec};
use berth_testkit::{run, Netns};
use criterion::{criterion_group, criterion_main, Criterion};

static N: AtomicU32 = AtomicU32::new(0);

fn next() -> u32 {
    N.fetch_add(1, Ordering::Relaxed)
}

fn bench_netsetup(c: &mut Criterion) {
    if !berth_testkit::is_root() {
        eprintln!("netsetup bench skipped: needs root (creates netns, bridges, veth pairs)");
        return;
    }
    let host = Netns::new();
    let host_ns = NetNs::open_named(host.name()).expect("open bench host netns");
    // IPAM state on tmpfs, as with the default /run/berth-net on a usual
    // system (/run is tmpfs there; on this bench host it is not). On a busy
    // ext4 disk each IPAM write (create + rename) waits ~2 ms for the journal.
    // (berth_benches::Scratch: under /dev/shm, removed on drop, so a panic
    // midway leaves no directory behind either.)
    let scratch = berth_benches::Scratch::new("berth-nb").expect("bench state directory");
    let state_dir = scratch.path().join("ipam");
    let net = BridgeNetwork::new("bench")
        .bridge("bbench0")
        .subnet("10.210.0.0/16")
        .state_dir(&state_dir)
        .masquerade(false)
        .host_netns(&host_ns)
        .expect("host netns")
        .ensure()
        .expect("ensure bench network");

    let mut g = c.benchmark_group("netsetup");
    g.sample_size(30);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));

    // attach with berth. Untimed: creating the namespaces before, releasing
    // them after, and waiting until the kernel has destroyed them, so the
    // asynchronous netns cleanup of one sample does not compete (for the
    // rtnl lock) with the next one.
    g.bench_function("attach/berth", |b| {
        b.iter_custom(|iters| {
            batched(iters, |n| {
                let nss: Vec<NetNs> = (0..n)
                    .map(|_| NetNs::new_anonymous().expect("netns"))
                    .collect();
                let mut atts = Vec::with_capacity(nss.len());
                let t = Instant::now();
                for ns in &nss {
                    let id = format!("b{}", next());
                    atts.push(net.attach(ns, &Attach::new(&id)).expect("attach"));
                }
                let elapsed = t.elapsed();
                for a in atts {
                    a.release().expect("release");
                }
                drop(nss);
                settle(&host_ns, net.bridge_index());
                elapsed
            })
        })
    });

    // detach when the netns is going away: IPAM entry (and rules) now, the
    // veth left to the kernel, which deletes it with the namespace.
    g.bench_function("detach_release/berth", |b| {
        b.iter_custom(|iters| {
            batched(iters, |n| {
                let mut pairs = Vec::new();
                for _ in 0..n {
                    let ns = NetNs::new_anonymous().expect("netns");
                    let id = format!("b{}", next());
                    let att = net.attach(&ns, &Attach::new(&id)).expect("attach");
                    pairs.push((ns, att));
                }
                let t = Instant::now();
                for (ns, att) in pairs {
                    att.release().expect("release");
                    drop(ns);
                }
                let elapsed = t.elapsed();
                settle(&host_ns, net.bridge_index());
                elapsed
            })
        })
    });

    // detach deleting the veth synchronously (the netns stays)
    g.bench_function("detach_delete/berth", |b| {
        b.iter_custom(|iters| {
            batched(iters, |n| {
                let mut nss = Vec::new();
                let mut atts = Vec::new();
                for _ in 0..n {
                    let ns = NetNs::new_anonymous().expect("netns");
                    let id = format!("b{}", next());
                    atts.push(net.attach(&ns, &Attach::new(&id)).expect("attach"));
                    nss.push(ns);
                }
                let t = Instant::now();
                for att in atts {
                    att.detach().expect("detach");
                }
                let elapsed = t.elapsed();
                drop(nss);
                settle(&host_ns, net.bridge_index());
                elapsed
            })
        })
    });

    // the same attach with iproute2 commands
    let h = host.name().to_string();
    g.bench_function("attach/iproute2", |b| {
        b.iter_custom(|iters| {
            let named: Vec<(NetNs, String)> = (0..iters)
                .map(|_| {
                    let name = berth_testkit::unique_name("bip");
                    (NetNs::create_named(&name).expect("named netns"), name)
                })
                .collect();
            let t = Instant::now();
            for (_, cname) in &named {
                let i = next();
                let veth = format!("vi{i}");
                let addr = format!("10.210.{}.{}/16", 128 + (i / 250) % 120, 2 + i % 250);
                run(
                    "ip",
                    &[
                        "-n", &h, "link", "add", &veth, "type", "veth", "peer", "name", "eth0",
                        "netns", cname,
                    ],
                );
                run(
                    "ip",
                    &["-n", &h, "link", "set", &veth, "master", "bbench0", "up"],
                );
                run("ip", &["-n", cname, "link", "set", "lo", "up"]);
                run("ip", &["-n", cname, "link", "set", "eth0", "up"]);
                run("ip", &["-n", cname, "addr", "add", &addr, "dev", "eth0"]);
                run(
                    "ip",
                    &["-n", cname, "route", "add", "default", "via", "10.210.0.1"],
                );
            }
            let elapsed = t.elapsed();
            for (ns, _) in named {
                ns.remove().expect("remove named netns");
            }
            settle(&host_ns, net.bridge_index());
            elapsed
        })
    });

    // the same synchronous detach with iproute2
    g.bench_function("detach_delete/iproute2", |b| {
        b.iter_custom(|iters| {
            let mut nl = host_ns.netlink().expect("netlink");
            let mut nss = Vec::new();
            let mut veths = Vec::new();
            for _ in 0..iters {
                let ns = NetNs::new_anonymous().expect("netns");
                let veth = format!("vi{}", next());
                let _ = nl
                    .create_veth(&VethSpec {
                        host: &veth,
                        peer: "eth0",
                        peer_netns: Some(ns.as_fd()),
                        controller: Some(net.bridge_index()),
                        peer_mac: None,
                        mtu: None,
                    })
                    .expect("veth");
                nss.push(ns);
                veths.push(veth);
            }
            let t = Instant::now();
            for veth in &veths {
                run("ip", &["-n", &h, "link", "del", veth]);
            }
            let elapsed = t.elapsed();
            drop(nss);
            settle(&host_ns, net.bridge_index());
            elapsed
        })
    });
    // Firewall work per container start. A second network with masquerade
    // on, so berth's nft table exists in the bench's host netns.
    let fw_net = BridgeNetwork::new("benchfw")
        .bridge("bbenchfw0")
        .subnet("10.211.0.0/24")
        .state_dir(&state_dir)
        .host_netns(&host_ns)
        .expect("host netns")
        .ensure()
        .expect("ensure firewall bench network");
    let fw = fw_net.firewall();
    // `ensure` of an existing network (every container start does it):
    // bridge lookup, route check, address, ip_forward, and the masquerade
    // check — one read-only nftables dump over netlink.
    g.bench_function("ensure_existing/berth", |b| {
        b.iter(|| {
            BridgeNetwork::new("benchfw")
                .bridge("bbenchfw0")
                .subnet("10.211.0.0/24")
                .state_dir(&state_dir)
                .host_netns(&host_ns)
                .expect("host netns")
                .ensure()
                .expect("ensure")
        })
    });
    // the same masquerade check with nft(8): one `nft -j -a list table`
    // (the nft-based code ran three nft processes for it)
    g.bench_function("masquerade_check/nft", |b| {
        b.iter(|| {
            nft_in(
                &host_ns,
                &["-j", "-a", "list", "table", "ip", "berth"],
                None,
            )
        })
    });
    // publish one port and remove it again (netlink: dump + one batch each)
    let addr = std::net::Ipv4Addr::new(10, 211, 0, 9);
    g.bench_function("publish_unpublish/berth", |b| {
        b.iter(|| {
            let id = format!("p{}", next());
            fw.publish(&id, addr, &[PortMapping::tcp(18999, 80)])
                .expect("publish");
            assert_eq!(fw.unpublish(&id).expect("unpublish"), 1);
        })
    });
    // the same with nft(8): add the rule echoing its handle, delete it by handle
    g.bench_function("publish_unpublish/nft", |b| {
        b.iter(|| {
            let rule = "add rule ip berth published tcp dport 18999 dnat to 10.211.0.9:80 comment \"bench\"\n";
            let out = nft_in(&host_ns, &["-e", "-a", "-f", "-"], Some(rule));
            let handle = out
                .split("# handle ")
                .nth(1)
                .and_then(|h| h.split_whitespace().next())
                .and_then(|h| h.parse::<u64>().ok())
                .expect("handle in nft --echo output");
            nft_in(
                &host_ns,
                &["delete", "rule", "ip", "berth", "published", "handle", &handle.to_string()],
                None,
            );
        })
    });
    g.finish();
    fw_net.remove().expect("remove firewall bench network");
    net.remove().expect("remove bench network");
    drop(scratch);
    drop(host_ns);
    drop(host);
}

/// Run nft(8) inside `ns` (the child enters it before exec), optionally
/// with `script` on stdin; returns stdout. Panics on failure.
fn nft_in(ns: &NetNs, args: &[&str], script: Option<&str>) -> String {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let fd = ns.as_raw_fd();
    let mut cmd = Command::new("nft");
    cmd.args(args)
        .stdin(if script.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure only calls setns(2), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn nft");
    if let Some(s) = script {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(s.as_bytes())
            .expect("write nft script");
    }
    let out = child.wait_with_output().expect("wait nft");
    assert!(
        out.status.success(),
        "nft {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Wait (untimed) until no port is left on the bench bridge: the kernel has
/// finished destroying the namespaces of the last sample.
/// A bridge takes at most 1024 ports (BR_MAX_PORTS; more is EXFULL), and
/// criterion asks for as many iterations as fit its measurement time, which
/// for a 15 µs release is tens of thousands: run them in batches of at most
/// `BATCH` attachments alive at once (each batch settled before the next),
/// summing only the timed parts.
fn batched(iters: u64, mut f: impl FnMut(u64) -> Duration) -> Duration {
    const BATCH: u64 = 256;
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(BATCH);
        total += f(n);
        left -= n;
    }
    total
}

fn settle(host: &NetNs, bridge: u32) {
    let mut nl = host.netlink().expect("netlink");
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        let ports = nl
            .links()
            .expect("links")
            .iter()
            .filter(|l| l.controller == Some(bridge))
            .count();
        if ports == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

criterion_group!(benches, bench_netsetup);
criterion_main!(benches);
