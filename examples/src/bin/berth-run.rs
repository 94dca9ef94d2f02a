//! `berth-run`: a docker-run-like command line on `berth::Container`.
//!
//! ```text
//! sudo berth-run --rootfs /srv/busybox --memory 64m --pids 32 -- /bin/sh -c 'echo hi'
//! sudo berth-run -- /bin/sh          # the host's / as a private read-only overlay
//! sudo berth-run network create mynet --subnet 10.89.0.0/24
//! sudo berth-run --network mynet --name db --network-alias primary --rootfs /srv/bb -- sleep 600 &
//! sudo berth-run --network mynet --rootfs /srv/bb -- ping -c1 primary
//! ```
//!
//! Exit status: the workload's (128+N when it was killed by signal N); berth's
//! own errors print one line on stderr and exit 125. See `--help`.
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use berth::{Container, Limit, Mount, Network, PortMapping, Resources, Rootfs, Seccomp};
use berth_examples::resolver;
use berth_examples::run_args::{Net, NetworkCmd, RunArgs, SeccompArg, USAGE};

/// The container init's pid, for the signal forwarder.
static INIT_PID: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = INIT_PID.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// `dns`: a `resolv.conf` listing `--dns` servers, bound at the
/// container's `/etc/resolv.conf` (removed by `run` afterwards).
fn build(a: &RunArgs, dns: Option<&Path>) -> Result<berth::ContainerBuilder, berth::Error> {
    let id = a
        .name
        .clone()
        .unwrap_or_else(|| format!("berth-run-{}", std::process::id()));
    // SAFETY: geteuid cannot fail.
    let rootless = a.rootless || unsafe { libc::geteuid() } != 0;
    let mut b = Container::builder(id).rootless(rootless);
    b = match (&a.rootfs, &a.image) {
        (Some(d), _) => b.rootfs(Rootfs::dir(d)),
        (None, Some((layout, reference))) => b.rootfs(Rootfs::image_layout(layout, reference)?),
        (None, None) => b.rootfs(Rootfs::host()),
    };
    if let Some(h) = &a.hostname {
        b = b.hostname(h);
    }
    let mut r = Resources::new();
    let mut limited = false;
    if let Some(m) = a.memory {
        r = r.memory_max(Limit::Value(m));
        limited = true;
    }
    if let Some(c) = a.cpus {
        r = r.cpu_max((c * 100_000.0) as u64, 100_000);
        limited = true;
    }
    if let Some(p) = a.pids {
        r = r.pids_max(Limit::Value(p));
        limited = true;
    }
    if let Some(c) = &a.cpuset {
        r = r.cpuset_cpus(c.clone());
        limited = true;
    }
    if limited {
        b = b.resources(r);
    }
    let publish = |mut n: Network| {
        for p in &a.publish {
            let mut m = if p.udp {
                PortMapping::udp(p.host, p.container)
            } else {
                PortMapping::tcp(p.host, p.container)
            };
            if let Some(ip) = p.host_ip {
                m = m.host_ip(ip);
            }
            n = n.publish(m);
        }
        n
    };
    // An overlay's members ask its responder for names on other hosts.
    if let Some(f) = dns {
        b = b.mount(Mount::bind(f, "/etc/resolv.conf").read_only());
    } else if let Some(name) = &a.network {
        let dir = net_state_dir();
        if berth_netsetup::network_record(&dir, name)?.is_some_and(|r| r.driver == "vxlan") {
            let conf = resolver::resolv_conf(&dir, name);
            b = b.mount(Mount::bind(&conf, "/etc/resolv.conf").read_only());
        }
    }
    b = b.network(match (&a.network, a.net) {
        (Some(name), _) => {
            let mut n = Network::named(name).state_dir(net_state_dir());
            for alias in &a.network_aliases {
                n = n.alias(alias);
            }
            publish(n)
        }
        (None, Net::None) => Network::none(),
        (None, Net::Loopback) => Network::loopback(),
        (None, Net::Host) => Network::host(),
        (None, Net::Bridge) => publish(default_network(&net_state_dir())?),
        (None, Net::Pasta) => publish(Network::pasta()),
    });
    b = b.read_only_root(a.read_only);
    for t in &a.tmpfs {
        b = b.mount(Mount::tmpfs(t));
    }
    for v in &a.volumes {
        let mut m = Mount::bind(&v.src, &v.dst);
        if v.read_only {
            m = m.read_only();
        }
        b = b.mount(m);
    }
    if let Some((u, g)) = a.user {
        b = b.user(u, g);
    }
    for c in &a.cap_add {
        b = b.cap_add(c);
    }
    for c in &a.cap_drop {
        b = b.cap_drop(c);
    }
    b = b.seccomp(match &a.seccomp {
        SeccompArg::Default => Seccomp::Default,
        SeccompArg::Unconfined => Seccomp::Unconfined,
        SeccompArg::File(f) => {
            let text = std::fs::read_to_string(f).map_err(|e| berth::Error::Io {
                what: "read seccomp profile",
                path: f.clone(),
                source: e,
            })?;
            Seccomp::Profile(berth_security::SeccompProfile::from_docker_json(&text)?)
        }
    });
    for (k, v) in &a.env {
        b = b.env(k, v);
    }
    if let Some(w) = &a.workdir {
        b = b.current_dir(w);
    }
    b = b.init(a.init);
    if !a.command.is_empty() {
        b = b.command(a.command.clone());
    }
    Ok(b)
}

/// Where user-defined networks live: `$BERTH_NETWORK_STATE_DIR`, else
/// berth-netsetup's default.
fn net_state_dir() -> PathBuf {
    std::env::var_os("BERTH_NETWORK_STATE_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(berth_netsetup::DEFAULT_STATE_DIR))
}

/// The network `--net bridge` joins.
const DEFAULT_NETWORK: &str = "berth0";

/// `--net bridge`: the default network `berth0` (bridge `berth0`, subnet
/// `10.88.0.0/16`), made on first use and recorded like a user-defined
/// network, so `network ls` shows it and `network rm berth0` removes its
/// bridge, nft rules and IPAM state and puts `ip_forward` back. A `berth0`
/// bridge of an earlier release (never recorded) is adopted on first use.
fn default_network(dir: &Path) -> Result<Network, berth::Error> {
    if berth_netsetup::network_record(dir, DEFAULT_NETWORK)?.is_none() {
        if let Err(e) = Network::create(DEFAULT_NETWORK).state_dir(dir).create() {
            // Another berth-run made it meanwhile: join that one.
            if berth_netsetup::network_record(dir, DEFAULT_NETWORK)?.is_none() {
                return Err(e);
            }
        }
    }
    Ok(Network::named(DEFAULT_NETWORK).state_dir(dir))
}

/// `berth-run network ...`.
fn network(cmd: &NetworkCmd) -> Result<(), String> {
    let e = |e: berth::Error| e.to_string();
    let dir = net_state_dir();
    match cmd {
        NetworkCmd::Create {
            name,
            driver,
            subnet,
            parent,
            vxlan,
        } => {
            let mut b = Network::create(name).driver(driver).state_dir(&dir);
            if let Some(s) = subnet {
                b = b.subnet(s);
            }
            if let Some(p) = parent {
                b = b.parent(p);
            }
            if let Some(v) = vxlan.vni {
                b = b.vni(v);
            }
            if let Some(l) = vxlan.local {
                b = b.local(l);
            }
            if let Some(r) = &vxlan.range {
                b = b.range(r);
            }
            for (vtep, r) in &vxlan.peers {
                b = b.peer(*vtep, r);
            }
            if let Some(f) = &vxlan.peers_file {
                b = b.members_file(f);
            }
            b.create().map_err(e)?;
            // An overlay's members on other hosts are not in this host's
            // IPAM: names across hosts go through a responder (resolver.rs).
            if driver == "vxlan" {
                if let Err(why) = resolver::start(&dir, name) {
                    let _ = Network::open(Some(&dir), name).and_then(Network::remove);
                    return Err(why);
                }
            }
            println!("{name}");
        }
        NetworkCmd::Ls => {
            // BRIDGE: the bridge, or macvlan's parent interface.
            println!("NAME\tDRIVER\tBRIDGE\tSUBNET\tGATEWAY");
            for n in Network::list(Some(&dir)).map_err(e)? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    n.name, n.driver, n.bridge, n.subnet, n.gateway
                );
            }
        }
        NetworkCmd::Rm(names) => {
            for name in names {
                Network::open(Some(&dir), name)
                    .and_then(Network::remove)
                    .map_err(e)?;
                resolver::stop(&dir, name)?;
                println!("{name}");
            }
        }
        NetworkCmd::Serve(name) => resolver::serve(&dir, name)?,
    }
    Ok(())
}

fn run(a: &RunArgs) -> Result<i32, berth::Error> {
    if a.dns.is_empty() {
        return run_with(a, None);
    }
    let conf = std::env::temp_dir().join(format!("berth-run-{}.resolv.conf", std::process::id()));
    let text: String = a.dns.iter().map(|d| format!("nameserver {d}\n")).collect();
    // A new file (O_EXCL: never through something planted at the name).
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&conf)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
        .map_err(|e| berth::Error::Io {
            what: "write --dns resolv.conf",
            path: conf.clone(),
            source: e,
        })?;
    let res = run_with(a, Some(&conf));
    let _ = std::fs::remove_file(&conf);
    res
}

fn run_with(a: &RunArgs, dns: Option<&Path>) -> Result<i32, berth::Error> {
    let mut c = build(a, dns)?.spawn()?;
    INIT_PID.store(c.pid(), Ordering::SeqCst);
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
        // SAFETY: installing a handler that only calls kill(2).
        unsafe { libc::signal(sig, forward as *const () as libc::sighandler_t) };
    }
    let status = match a.timeout {
        Some(t) => match c.wait_timeout(Duration::from_secs_f64(t))? {
            Some(s) => s,
            None => {
                eprintln!("berth-run: timeout after {t}s, killing the container");
                c.kill()?;
                c.wait()?
            }
        },
        None => c.wait()?,
    };
    INIT_PID.store(0, Ordering::SeqCst);
    c.destroy()?;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        _ => 125,
    })
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("network") {
        let res = NetworkCmd::parse(std::env::args().skip(2))
            .map_err(|e| format!("{e}\n{USAGE}"))
            .and_then(|cmd| network(&cmd));
        return match res {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("berth-run: {e}");
                ExitCode::from(125)
            }
        };
    }
    let args = match RunArgs::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("berth-run: {e}\n{USAGE}");
            return ExitCode::from(125);
        }
    };
    if args.help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    match run(&args) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("berth-run: {e}");
            ExitCode::from(125)
        }
    }
}
