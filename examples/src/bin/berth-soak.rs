//! `berth-soak`: a leak soak. Runs N create → run → destroy cycles with
//! mixed options (overlay rootfs, bridge network with a published port,
//! cgroup limits where the hierarchy has the controller, exec into the
//! container, pause/resume, init, read-only root with a tmpfs) and every K
//! cycles checks that nothing grew: mounts in `/proc/self/mountinfo`,
//! cgroups under berth's parent, network namespaces, links on the soak's
//! bridge and veths, nft rules of the soak's network, IPAM entries, state
//! directories, open fds and RSS of this process, zombie children.
//!
//! ```text
//! berth-soak --rootfs DIR [--cycles N] [--check-every K] [--no-net] [--rss-slack-mib M]
//! ```
//!
//! Root only. The bridge network lives on the host (a bridge, berth's nft
//! table and `net.ipv4.ip_forward=1` while it runs); at the end the soak
//! removes its bridge, its nft rules (and the table when nothing else of
//! berth's is in it) and its IPAM state, and puts `ip_forward` back.
//! No packet leaves the host: the published port is only mapped, never used.
//! Exit status 0 when nothing leaked, 1 on a leak (the report says what), 2
//! on a usage or setup error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use berth::{Container, Limit, Mount, Network, PortMapping, Resources, Rootfs, Stdio};

/// Set by SIGINT/SIGTERM: stop cycling, tear down, report.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

struct Args {
    rootfs: PathBuf,
    cycles: u32,
    every: u32,
    net: bool,
    rss_slack_mib: u64,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        rootfs: PathBuf::new(),
        cycles: 300,
        every: 25,
        net: true,
        rss_slack_mib: 24,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = |k: &str| it.next().ok_or_else(|| format!("{k} needs a value"));
        match k.as_str() {
            "--rootfs" => a.rootfs = val(&k)?.into(),
            "--cycles" => a.cycles = val(&k)?.parse().map_err(|e| format!("--cycles: {e}"))?,
            "--check-every" => {
                a.every = val(&k)?
                    .parse()
                    .map_err(|e| format!("--check-every: {e}"))?
            }
            "--rss-slack-mib" => {
                a.rss_slack_mib = val(&k)?
                    .parse()
                    .map_err(|e| format!("--rss-slack-mib: {e}"))?
            }
            "--no-net" => a.net = false,
            _ => return Err(format!("unknown option {k}")),
        }
    }
    if !a.rootfs.join("bin/sh").exists() {
        return Err(format!(
            "--rootfs {:?} must be a rootfs with /bin/sh (a busybox one will do)",
            a.rootfs
        ));
    }
    if a.every == 0 || a.cycles < a.every * 2 {
        return Err("--check-every must be > 0 and --cycles at least twice that".into());
    }
    Ok(a)
}

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

struct Env<'a> {
    prefix: String,
    state_root: &'a Path,
    cgroup_parent: Option<PathBuf>,
    bridge: String,
    net_name: String,
    net_state: &'a Path,
}

/// One snapshot of everything that could leak.
fn snapshot(e: &Env<'_>) -> BTreeMap<&'static str, u64> {
    let mut m = BTreeMap::new();
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    m.insert(
        "mountinfo lines naming the soak",
        mi.lines()
            .filter(|l| l.contains(&e.prefix) || l.contains(&*e.state_root.to_string_lossy()))
            .count() as u64,
    );
    m.insert("mountinfo lines (all)", mi.lines().count() as u64);
    let cg = e
        .cgroup_parent
        .as_ref()
        .and_then(|p| std::fs::read_dir(p).ok())
        .map(|rd| {
            rd.flatten()
                .filter(|d| d.file_name().to_string_lossy().starts_with(&e.prefix))
                .count()
        })
        .unwrap_or(0);
    m.insert("cgroups under berth's parent", cg as u64);
    let netns: std::collections::BTreeSet<u64> = std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|d| {
                    std::fs::metadata(d.path().join("ns/net"))
                        .ok()
                        .map(|md| std::os::unix::fs::MetadataExt::ino(&md))
                })
                .collect()
        })
        .unwrap_or_default();
    m.insert("network namespaces in use (all)", netns.len() as u64);
    m.insert(
        "links on the soak bridge",
        sh("ip", &["-o", "link", "show", "master", &e.bridge])
            .lines()
            .count() as u64,
    );
    m.insert(
        "links (all)",
        sh("ip", &["-o", "link"]).lines().count() as u64,
    );
    let nft = sh(
        "nft",
        &["-a", "list", "table", "ip", berth_netsetup::NFT_TABLE],
    );
    m.insert(
        "nft rules naming the soak",
        nft.lines()
            .filter(|l| l.contains(&e.prefix) || l.contains(&e.net_name))
            .filter(|l| !l.contains("masquerade"))
            .count() as u64,
    );
    m.insert(
        "nft rules (berth table)",
        nft.lines().filter(|l| l.contains("# handle")).count() as u64,
    );
    let ipam: usize = std::fs::read_dir(e.net_state)
        .map(|rd| {
            rd.flatten()
                .filter_map(|d| std::fs::read_to_string(d.path()).ok())
                .map(|s| s.matches(&e.prefix).count())
                .sum()
        })
        .unwrap_or(0);
    m.insert("IPAM entries naming the soak", ipam as u64);
    m.insert(
        "state dirs",
        std::fs::read_dir(e.state_root)
            .map(|rd| rd.count())
            .unwrap_or(0) as u64,
    );
    m.insert(
        "open fds",
        std::fs::read_dir("/proc/self/fd")
            .map(|rd| rd.count())
            .unwrap_or(0) as u64,
    );
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    m.insert("RSS KiB", rss);
    let me = std::process::id().to_string();
    let mut zombies = 0;
    let mut children = 0;
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for d in rd.flatten() {
            if let Ok(st) = std::fs::read_to_string(d.path().join("stat")) {
                // pid (comm) state ppid ...
                if let Some(rest) = st.rsplit_once(") ").map(|x| x.1) {
                    let f: Vec<&str> = rest.split_whitespace().collect();
                    if f.len() > 1 && f[1] == me {
                        children += 1;
                        if f[0] == "Z" {
                            zombies += 1;
                        }
                    }
                }
            }
        }
    }
    m.insert("zombie children", zombies);
    m.insert("child processes", children);
    m
}

/// Counters that must not grow past the baseline.
const EXACT: [&str; 9] = [
    "mountinfo lines naming the soak",
    "cgroups under berth's parent",
    "links on the soak bridge",
    "nft rules naming the soak",
    "IPAM entries naming the soak",
    "state dirs",
    "open fds",
    "zombie children",
    "child processes",
];

fn cycle(e: &Env<'_>, a: &Args, i: u32, port: u16) -> Result<(), String> {
    let id = format!("{}-{i}", e.prefix);
    let variant = i % 4;
    let rootfs = if variant.is_multiple_of(2) {
        Rootfs::layers([a.rootfs.clone()])
    } else {
        Rootfs::dir(&a.rootfs)
    };
    let mut b = Container::builder(&id)
        .rootfs(rootfs)
        .state_root(e.state_root)
        .stdin(Stdio::Null)
        .stdout(Stdio::Null)
        .stderr(Stdio::Null)
        .ignore_unavailable(true)
        .resources(
            Resources::new()
                .pids_max(Limit::Value(64))
                .memory_max(Limit::Value(64 << 20)),
        )
        .command(["/bin/sleep", "30"]);
    if a.net && (variant == 1 || variant == 2) {
        let mut n = Network::bridge(&e.net_name)
            .bridge_ifname(&e.bridge)
            .subnet(&format!("10.231.{}.0/24", std::process::id() % 200 + 20))
            .state_dir(e.net_state);
        if variant == 1 {
            n = n.publish(PortMapping::tcp(port, 80));
        }
        b = b.network(n);
    }
    if variant == 2 {
        b = b
            .read_only_root(true)
            .mount(Mount::tmpfs("/scratch").size(1 << 20));
    }
    if variant == 3 {
        b = b.init(true);
    }
    let mut c = b.spawn().map_err(|e| format!("cycle {i}: spawn: {e}"))?;
    let out = c
        .exec(["/bin/sh", "-c", "echo soak-$((6*7))"])
        .stdin(Stdio::Null)
        .stdout(Stdio::Piped)
        .stderr(Stdio::Null)
        .output()
        .map_err(|e| format!("cycle {i}: exec: {e}"))?;
    if !String::from_utf8_lossy(&out.stdout).contains("soak-42") {
        return Err(format!("cycle {i}: exec printed {:?}", out.stdout));
    }
    if c.cgroup().is_some() && i.is_multiple_of(2) {
        c.pause().map_err(|e| format!("cycle {i}: pause: {e}"))?;
        c.resume().map_err(|e| format!("cycle {i}: resume: {e}"))?;
    }
    if i.is_multiple_of(3) {
        // Destroy a running container.
        c.destroy()
            .map_err(|e| format!("cycle {i}: destroy: {e}"))?;
    } else {
        c.kill().map_err(|e| format!("cycle {i}: kill: {e}"))?;
        c.wait().map_err(|e| format!("cycle {i}: wait: {e}"))?;
        c.destroy()
            .map_err(|e| format!("cycle {i}: destroy: {e}"))?;
    }
    Ok(())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(43210)
}

fn main() -> ExitCode {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("berth-soak: {e}");
            return ExitCode::from(2);
        }
    };
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("berth-soak: needs root (bridge networking, cgroups)");
        return ExitCode::from(2);
    }
    let (state_root, net_state) = match state_dirs() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("berth-soak: {e}");
            return ExitCode::from(2);
        }
    };
    let pid = std::process::id() % 100_000;
    let env = Env {
        prefix: format!("sk{pid}"),
        state_root: &state_root,
        cgroup_parent: berth_cgroups::Hierarchy::discover()
            .ok()
            .map(|h| h.own_cgroup_dir().join("berth")),
        bridge: format!("bsk{pid}"),
        net_name: format!("nsk{pid}"),
        net_state: &net_state,
    };
    let forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default();
    let port = free_port();

    let t0 = Instant::now();
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
    let (done, mut failures) = soak(&env, &a, port, t0);
    let elapsed = t0.elapsed();
    failures.extend(teardown(&env, &a, &forward));
    let per = elapsed.as_secs_f64() * 1000.0 / f64::from(done.max(1));
    println!(
        "{done} cycles in {:.1}s ({per:.1} ms/cycle), {} leak checks",
        elapsed.as_secs_f64(),
        done / a.every
    );
    if failures.is_empty() {
        println!("OK: nothing leaked");
        ExitCode::SUCCESS
    } else {
        for f in &failures {
            eprintln!("berth-soak: {f}");
        }
        ExitCode::from(1)
    }
}

/// The soak's container state root and network state directory, fresh
/// directories under `/run`.
fn state_dirs() -> Result<(PathBuf, PathBuf), String> {
    let state_root =
        tempfile_dir("/run", "berth-soak-state-").map_err(|e| format!("state root: {e}"))?;
    let net_state =
        tempfile_dir("/run", "berth-soak-net-").map_err(|e| format!("network state: {e}"))?;
    Ok((state_root, net_state))
}

/// Run the cycles, checking for leaks every `a.every` of them, until all
/// are done, one fails or a signal asks to stop: the cycles done and the
/// failures.
fn soak(e: &Env<'_>, a: &Args, port: u16, t0: Instant) -> (u32, Vec<String>) {
    let mut baseline = None;
    let mut failures = Vec::new();
    let mut done = 0;
    for i in 0..a.cycles {
        if STOP.load(Ordering::SeqCst) {
            failures.push(format!("interrupted after {done} cycles"));
            break;
        }
        if let Err(err) = cycle(e, a, i, port) {
            failures.push(err);
            break;
        }
        done += 1;
        if (i + 1) % a.every != 0 {
            continue;
        }
        match &baseline {
            // The first K cycles warm up berth's per-process caches
            // (seccomp filter, device-filter program, the bridge).
            None => baseline = Some(take_baseline(e, i)),
            Some(base) => {
                if let Some(grew) = leak_check(e, a, base, i, t0) {
                    failures.push(format!("after {} cycles: {grew}", i + 1));
                }
            }
        }
    }
    (done, failures)
}

/// The baseline snapshot, after cycle `i`.
fn take_baseline(e: &Env<'_>, i: u32) -> BTreeMap<&'static str, u64> {
    // The last cycle's veth may still be on the bridge (the kernel removes
    // it with the dead netns, asynchronously): let it go before taking the
    // baseline.
    let mut snap = snapshot(e);
    let settle = Instant::now();
    while snap["links on the soak bridge"] > 0 && settle.elapsed().as_millis() < 2000 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        snap = snapshot(e);
    }
    println!("baseline after {} cycles: {snap:?}", i + 1);
    snap
}

/// What grew from `base` to `snap`: only growth is a leak (a count below
/// the baseline means the baseline caught something in passing); RSS may
/// grow by `rss_slack_mib`.
fn grown(
    base: &BTreeMap<&'static str, u64>,
    snap: &BTreeMap<&'static str, u64>,
    rss_slack_mib: u64,
) -> Vec<String> {
    let mut grew = Vec::new();
    for k in EXACT {
        if snap[k] > base[k] {
            grew.push(format!("{k}: {} -> {}", base[k], snap[k]));
        }
    }
    let rss_base = base["RSS KiB"];
    if snap["RSS KiB"] > rss_base + rss_slack_mib * 1024 {
        grew.push(format!(
            "RSS KiB: {rss_base} -> {} (slack {rss_slack_mib} MiB)",
            snap["RSS KiB"]
        ));
    }
    grew
}

/// The leak check after cycle `i`: print it, and say what grew (`None`:
/// nothing).
fn leak_check(
    e: &Env<'_>,
    a: &Args,
    base: &BTreeMap<&'static str, u64>,
    i: u32,
    t0: Instant,
) -> Option<String> {
    // The kernel tears a network namespace down asynchronously
    // (cleanup_net workqueue), and the host end of the veth with it: give a
    // difference up to 2 s to settle before calling it a leak.
    let mut snap = snapshot(e);
    let mut grew = grown(base, &snap, a.rss_slack_mib);
    let settle = Instant::now();
    while !grew.is_empty() && settle.elapsed().as_millis() < 2000 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        snap = snapshot(e);
        grew = grown(base, &snap, a.rss_slack_mib);
    }
    if settle.elapsed().as_millis() >= 50 {
        println!(
            "  (settled for {} ms before the check)",
            settle.elapsed().as_millis()
        );
    }
    println!(
        "check after {:>6} cycles ({:.1}s): {}",
        i + 1,
        t0.elapsed().as_secs_f64(),
        if grew.is_empty() {
            format!(
                "nothing grew (fds {}, RSS {} KiB, mountinfo {}, links {}, nft {})",
                snap["open fds"],
                snap["RSS KiB"],
                snap["mountinfo lines (all)"],
                snap["links (all)"],
                snap["nft rules (berth table)"]
            )
        } else {
            grew.join("; ")
        }
    );
    (!grew.is_empty()).then(|| grew.join("; "))
}

/// Remove the soak's own network, put back the host setting it changed
/// (`ip_forward` as it was, `forward`), check nothing of it is left and
/// remove its state directories: what was left behind.
fn teardown(e: &Env<'_>, a: &Args, forward: &str) -> Vec<String> {
    let mut failures = Vec::new();
    if a.net {
        let r = berth_netsetup::BridgeNetwork::new(&e.net_name)
            .bridge(&e.bridge)
            .subnet(&format!("10.231.{}.0/24", std::process::id() % 200 + 20))
            .state_dir(e.net_state)
            .ip_forward(false)
            .masquerade(false)
            .ensure()
            .and_then(|n| n.remove());
        if let Err(err) = r {
            failures.push(format!("network teardown: {err}"));
        }
    }
    if !forward.is_empty() {
        let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", forward);
    }
    if sh("ip", &["-o", "link", "show", &e.bridge]).contains(&e.bridge) {
        failures.push(format!("bridge {} still there", e.bridge));
    }
    let left: Vec<_> = std::fs::read_dir(e.state_root)
        .map(|rd| rd.flatten().map(|d| d.path()).collect())
        .unwrap_or_default();
    if !left.is_empty() {
        failures.push(format!("state dirs left: {left:?}"));
    }
    let _ = std::fs::remove_dir_all(e.state_root);
    let _ = std::fs::remove_dir_all(e.net_state);
    failures
}

/// A fresh directory `<parent>/<prefix><pid>-<n>` (no tempfile dependency).
fn tempfile_dir(parent: &str, prefix: &str) -> std::io::Result<PathBuf> {
    for n in 0..1000 {
        let p = Path::new(parent).join(format!("{prefix}{}-{n}", std::process::id()));
        match std::fs::create_dir(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists))
}
