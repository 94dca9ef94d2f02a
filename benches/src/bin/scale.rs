//! `berth-scale`: how berth scales, measured through the library (one
//! process owning every container), printed as markdown.
//!
//! ```text
//! berth-scale [--quick] [--alive N] [--spawns N] [--samples N] [--threads 1,2,4,8]
//!             [--only tput,layers,alive,ports,bridge]
//! ```
//!
//! Sections (each container is a full default berth container: an overlay
//! rootfs imported from the busybox fixture, mount/uts/ipc/pid/net/cgroup
//! namespaces with `lo` up, Docker's capabilities and seccomp profile,
//! no_new_privs, the eBPF device filter, its own cgroup under berth's parent):
//!
//! - `tput`: spawn → exit → destroy of `/bin/true`, `--spawns` containers
//!   shared by 1, 2, 4, 8 threads, containers per second; fork+exec of the
//!   same binary from as many threads in the same run as the floor.
//! - `layers`: one container's spawn → exit → destroy with an image of 1, 16
//!   and 64 layers (busybox plus tiny layers, imported into berth-overlay's
//!   store), with the store's layer paths and with the same layers through
//!   short symlinks (the overlay option string is limited to one page).
//! - `alive`: `--alive` containers running `sleep` at once, all created by
//!   this one process: the host-side memory berth keeps per container (this
//!   process's RSS growth plus the kernel memory the containers add over the
//!   same number of plain `sleep` processes: `Slab`, `KernelStack`,
//!   `PageTables`, `Shmem`, `Percpu` of /proc/meminfo), the kernel objects
//!   per container (fds, mounts, namespaces, cgroups), the time to destroy
//!   them all, and a check that nothing is left.
//! - `ports`: spawn → exit → destroy on a bridge network publishing 0, 1, 8,
//!   32 ports (DNAT rules only: nothing is ever sent).
//! - `bridge`: the same with 1, 10, 100 containers already on the bridge,
//!   and the time each of those took to join it.
//!
//! `--quick` (or `BERTH_BENCH_QUICK=1`) runs a short version: 100 alive, 16
//! spawns per thread count, 3 samples, bridges of 1 and 10. Root only.
//!
//! Everything it makes is owned by RAII guards (containers, plain `sleep`
//! processes, the bridge network and its nft rules, `ip_forward`, the
//! scratch directory with the state root, layer store and IPAM files), so a
//! failure or Ctrl-C midway still cleans up; at the end it checks that no
//! container cgroup, state directory, child process, fd, link, nft rule or
//! bridge of its own is left, and exits 1 if anything is.
//!
//! The bridge network lives on the host while it runs (a bridge, berth's nft
//! table, `net.ipv4.ip_forward=1`); it is removed and `ip_forward` restored.
//! No packet leaves the host: ports are only mapped, containers run `true`
//! or `sleep`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use berth::{Container, ContainerBuilder, Network, PortMapping, Rootfs, Stdio};
use berth_benches::{
    children, count_prefixed, median, meminfo, mounts_naming, netns_in_use, self_status, Scratch,
};
use berth_overlay::{Compression, ImageBuilder, ImageLayout, LayerStore, UnpackOptions};

/// Set by SIGINT/SIGTERM: stop, clean up, report.
static STOP: AtomicBool = AtomicBool::new(false);
/// Container id counter.
static SEQ: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

type Res<T> = Result<T, String>;

fn check_stop() -> Res<()> {
    if STOP.load(Ordering::SeqCst) {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}

const SECTIONS: [&str; 5] = ["tput", "layers", "alive", "ports", "bridge"];

struct Opts {
    quick: bool,
    alive: usize,
    spawns: usize,
    samples: usize,
    threads: Vec<usize>,
    layers: Vec<usize>,
    ports: Vec<usize>,
    bridge: Vec<usize>,
    only: Vec<String>,
}

fn usage() -> &'static str {
    "berth-scale [--quick] [--alive N] [--spawns N] [--samples N] [--threads 1,2,4,8] \
     [--only tput,layers,alive,ports,bridge]"
}

fn list(v: &str, what: &str) -> Res<Vec<usize>> {
    v.split(',')
        .map(|x| {
            x.trim()
                .parse::<usize>()
                .map_err(|e| format!("{what}: {x:?}: {e}"))
        })
        .collect()
}

fn parse() -> Res<Opts> {
    let quick = berth_benches::quick();
    let mut o = Opts {
        quick,
        alive: if quick { 100 } else { 1000 },
        spawns: if quick { 16 } else { 100 },
        samples: if quick { 3 } else { 10 },
        threads: vec![1, 2, 4, 8],
        layers: vec![1, 16, 64],
        ports: vec![0, 1, 8, 32],
        bridge: if quick { vec![1, 10] } else { vec![1, 10, 100] },
        only: SECTIONS.iter().map(|s| s.to_string()).collect(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = |k: &str| it.next().ok_or_else(|| format!("{k} needs a value"));
        let num = |v: String, k: &str| {
            v.parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{k}: {v:?} is not a positive number"))
        };
        match k.as_str() {
            "--quick" | "--bench" => {} // --bench: what `cargo bench` passes
            "--alive" => o.alive = num(val(&k)?, &k)?,
            "--spawns" => o.spawns = num(val(&k)?, &k)?,
            "--samples" => o.samples = num(val(&k)?, &k)?,
            "--threads" => o.threads = list(&val(&k)?, &k)?,
            "--only" => {
                o.only = val(&k)?.split(',').map(|s| s.trim().to_string()).collect();
                if let Some(bad) = o.only.iter().find(|s| !SECTIONS.contains(&s.as_str())) {
                    return Err(format!(
                        "--only: unknown section {bad:?} (one of {SECTIONS:?})"
                    ));
                }
            }
            "-h" | "--help" => return Err(usage().into()),
            _ => return Err(format!("unknown argument {k:?}\nusage: {}", usage())),
        }
    }
    if o.threads.contains(&0) {
        return Err("--threads: 0 threads".into());
    }
    Ok(o)
}

// ------------------------------------------------------------------ guards

/// Plain processes (the workload baseline), killed and reaped on drop.
struct Procs(Vec<std::process::Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
}

/// The bridge network of the run: on drop its bridge, nft rules and IPAM
/// state are removed and `net.ipv4.ip_forward` is put back.
struct NetGuard {
    name: String,
    bridge: String,
    subnet: String,
    state_dir: PathBuf,
    forward: Option<String>,
}

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

impl NetGuard {
    fn new(scratch: &Path) -> NetGuard {
        let pid = std::process::id();
        NetGuard {
            name: format!("nsc{pid}"),
            bridge: format!("bsc{}", pid % 1_000_000),
            subnet: format!("10.233.{}.0/24", pid % 200 + 20),
            state_dir: scratch.join("net"),
            forward: std::fs::read_to_string(IP_FORWARD).ok(),
        }
    }

    fn network(&self) -> Network {
        Network::bridge(&self.name)
            .bridge_ifname(&self.bridge)
            .subnet(&self.subnet)
            .state_dir(&self.state_dir)
    }
}

impl Drop for NetGuard {
    fn drop(&mut self) {
        let r = berth_netsetup::BridgeNetwork::new(&self.name)
            .bridge(&self.bridge)
            .subnet(&self.subnet)
            .state_dir(&self.state_dir)
            .ip_forward(false)
            .masquerade(false)
            .ensure()
            .and_then(|n| n.remove());
        if let Err(e) = r {
            eprintln!("berth-scale: removing network {}: {e}", self.name);
        }
        if let Some(f) = &self.forward {
            if std::fs::read_to_string(IP_FORWARD).ok().as_deref() != Some(f) {
                if let Err(e) = std::fs::write(IP_FORWARD, f) {
                    eprintln!("berth-scale: restoring {IP_FORWARD}: {e}");
                }
            }
        }
    }
}

/// Containers destroyed on drop (in order), errors reported.
struct Fleet(Vec<Container>);

impl Fleet {
    fn destroy_all(&mut self) -> Vec<String> {
        self.0
            .drain(..)
            .filter_map(|c| {
                let id = c.id().to_string();
                c.destroy().err().map(|e| format!("destroy {id}: {e}"))
            })
            .collect()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for e in self.destroy_all() {
            eprintln!("berth-scale: {e}");
        }
    }
}

// ------------------------------------------------------------------ environment

struct Env {
    // Fields drop in order: the network before the scratch dir holding its state.
    net: Option<NetGuard>,
    prefix: String,
    state_root: PathBuf,
    cgroup_parent: Option<PathBuf>,
    cgroup_parent_existed: bool,
    rootfs: Rootfs,
    busybox: PathBuf,
    scratch: Scratch,
}

impl Drop for Env {
    fn drop(&mut self) {
        // berth's parent cgroup, when this run created it and left it empty.
        if let (Some(p), false) = (&self.cgroup_parent, self.cgroup_parent_existed) {
            let _ = std::fs::remove_dir(p);
        }
    }
}

impl Env {
    fn new() -> Res<Env> {
        let scratch = Scratch::new("bscale").map_err(|e| format!("scratch dir: {e}"))?;
        let state_root = scratch.path().join("state");
        std::fs::create_dir_all(&state_root).map_err(|e| format!("state root: {e}"))?;
        let cgroup_parent = berth_cgroups::Hierarchy::discover()
            .ok()
            .map(|h| h.own_cgroup_dir().join("berth"));
        let cgroup_parent_existed = cgroup_parent.as_ref().is_some_and(|p| p.is_dir());
        let busybox = berth_testkit::busybox_rootfs().to_path_buf();
        let rootfs = image_rootfs(scratch.path(), "busybox", &busybox, 1)?.0;
        Ok(Env {
            net: None,
            prefix: format!("bsc{}", std::process::id()),
            state_root,
            cgroup_parent,
            cgroup_parent_existed,
            rootfs,
            busybox,
            scratch,
        })
    }

    /// A full default container named `<prefix>-<tag>-<n>` in the run's state root.
    fn builder(&self, tag: &str, rootfs: &Rootfs) -> ContainerBuilder {
        let id = format!(
            "{}-{tag}-{}",
            self.prefix,
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        Container::builder(id)
            .rootfs(rootfs.clone())
            .state_root(&self.state_root)
            .stdin(Stdio::Null)
            .stdout(Stdio::Null)
            .stderr(Stdio::Null)
            .command(["/bin/true"])
    }

    fn net(&mut self) -> &NetGuard {
        let scratch = self.scratch.path().to_path_buf();
        self.net.get_or_insert_with(|| NetGuard::new(&scratch))
    }

    fn cgroups_ours(&self) -> usize {
        self.cgroup_parent
            .as_ref()
            .map(|p| count_prefixed(p, &self.prefix))
            .unwrap_or(0)
    }
}

/// An OCI image of `n` layers (the busybox fixture, then `n - 1` tiny
/// layers of one file each) written as a layout and imported into the run's
/// store. Returns the rootfs and the unpacked layer directories, top first.
fn image_rootfs(
    scratch: &Path,
    name: &str,
    busybox: &Path,
    n: usize,
) -> Res<(Rootfs, Vec<PathBuf>)> {
    let layout = scratch.join(format!("layout-{name}"));
    let mut b = ImageBuilder::new(name)
        .compression(Compression::None)
        .layer_dir(busybox);
    for i in 1..n {
        let d = scratch.join("layer-src").join(format!("l{i}"));
        let etc = d.join("etc");
        std::fs::create_dir_all(&etc).map_err(|e| format!("{}: {e}", etc.display()))?;
        std::fs::write(etc.join(format!("layer-{i}")), format!("{i}\n"))
            .map_err(|e| format!("layer {i}: {e}"))?;
        b = b.layer_dir(d);
    }
    b.write(&layout)
        .map_err(|e| format!("write image {name}: {e}"))?;
    let store = LayerStore::open(scratch.join("store")).map_err(|e| format!("layer store: {e}"))?;
    let l = ImageLayout::open(&layout).map_err(|e| format!("open layout {name}: {e}"))?;
    let img = l
        .import(&store, name, &UnpackOptions::default())
        .map_err(|e| format!("import {name}: {e}"))?;
    let rootfs = Rootfs::image(&store, &l, name).map_err(|e| format!("rootfs {name}: {e}"))?;
    Ok((rootfs, img.lower_dirs))
}

/// spawn → exit → destroy of one container; its wall time.
fn cycle(b: ContainerBuilder) -> Res<Duration> {
    check_stop()?;
    let t = Instant::now();
    let mut c = b.spawn().map_err(|e| format!("spawn: {e}"))?;
    let st = c.wait().map_err(|e| format!("wait: {e}"))?;
    c.destroy().map_err(|e| format!("destroy: {e}"))?;
    let d = t.elapsed();
    if !st.success() {
        return Err(format!("/bin/true in the container exited with {st}"));
    }
    Ok(d)
}

/// Median of `n` cycles in ms, after one unmeasured cycle.
fn median_cycle(n: usize, mut make: impl FnMut() -> ContainerBuilder) -> Res<f64> {
    cycle(make())?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(cycle(make())?.as_secs_f64() * 1e3);
    }
    Ok(median(&mut v))
}

// ------------------------------------------------------------------ sections

fn tput(env: &Env, o: &Opts, out: &mut String) -> Res<()> {
    eprintln!(
        "berth-scale: throughput, {} containers per thread count",
        o.spawns
    );
    // Warm berth's per-process caches (seccomp program, device filter,
    // netns pool) before anything is timed.
    cycle(env.builder("w", &env.rootfs))?;
    cycle(env.builder("w", &env.rootfs))?;
    let true_bin = env.busybox.join("bin/true");
    for _ in 0..20 {
        let _ = Command::new(&true_bin).status();
    }
    let mut rows = Vec::new();
    for &t in &o.threads {
        let per = o.spawns.div_ceil(t);
        let run = |job: &(dyn Fn() -> Res<()> + Sync)| -> Res<f64> {
            let start = Instant::now();
            std::thread::scope(|s| {
                let hs: Vec<_> = (0..t)
                    .map(|_| {
                        s.spawn(|| -> Res<()> {
                            for _ in 0..per {
                                job()?;
                            }
                            Ok(())
                        })
                    })
                    .collect();
                hs.into_iter()
                    .map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into())))
                    .collect::<Res<Vec<()>>>()
            })?;
            Ok((per * t) as f64 / start.elapsed().as_secs_f64())
        };
        let floor = run(&|| {
            check_stop()?;
            let st = Command::new(&true_bin)
                .status()
                .map_err(|e| format!("{}: {e}", true_bin.display()))?;
            st.success()
                .then_some(())
                .ok_or_else(|| format!("true exited with {st}"))
        })?;
        let berth = run(&|| cycle(env.builder("t", &env.rootfs)).map(|_| ()))?;
        eprintln!("  {t} thread(s): berth {berth:.1}/s, fork+exec {floor:.1}/s");
        rows.push((t, per * t, berth, floor));
    }
    let one = rows.first().map(|r| r.2).unwrap_or(1.0);
    let _ = writeln!(out, "### Spawn throughput\n");
    let _ = writeln!(
        out,
        "spawn → exit → destroy of `/bin/true` in a full default container (overlay rootfs from the \
         busybox image, six namespaces, `lo` up, seccomp, capabilities, device filter, cgroup), the \
         containers shared by N threads of one process; fork+exec of the same `true` from as many \
         threads as the floor, in the same run.\n"
    );
    let _ = writeln!(
        out,
        "| threads | containers | berth containers/s | × 1 thread | fork+exec /s (floor) | berth ÷ floor |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|");
    for (t, n, b, f) in rows {
        let _ = writeln!(
            out,
            "| {t} | {n} | {b:.1} | {:.2} | {f:.0} | {:.3} |",
            b / one,
            b / f
        );
    }
    let _ = writeln!(out);
    Ok(())
}

fn layers(env: &Env, o: &Opts, out: &mut String) -> Res<()> {
    eprintln!("berth-scale: layers {:?}", o.layers);
    let links = env.scratch.path().join("l");
    let mut rows = Vec::new();
    for &n in &o.layers {
        check_stop()?;
        let (rootfs, lowers) =
            image_rootfs(env.scratch.path(), &format!("layers{n}"), &env.busybox, n)?;
        let opt_len: usize = lowers.iter().map(|p| p.as_os_str().len() + 1).sum();
        let store = median_cycle(o.samples, || env.builder("l", &rootfs));
        // The same layers through short symlinks: the option string shrinks
        // to a few bytes per layer.
        let dir = links.join(n.to_string());
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut short = Vec::new();
        for (i, l) in lowers.iter().enumerate() {
            let s = dir.join(i.to_string());
            std::os::unix::fs::symlink(l, &s).map_err(|e| format!("{}: {e}", s.display()))?;
            short.push(s);
        }
        let short_rootfs = Rootfs::layers(short);
        let linked = median_cycle(o.samples, || env.builder("l", &short_rootfs));
        eprintln!("  {n} layer(s): store paths {store:?}, short links {linked:?}");
        rows.push((n, opt_len, store, linked));
    }
    let _ = writeln!(out, "### Image layers\n");
    let _ = writeln!(
        out,
        "spawn → exit → destroy of `/bin/true` (median of {} after one warm-up) with an image of N \
         layers: the busybox fixture plus N − 1 one-file layers, imported into berth-overlay's store \
         (`Rootfs::image`), and the same layer directories given as short symlinks \
         (`Rootfs::layers`). berth mounts the overlay with the legacy option string, at most one page.\n",
        o.samples
    );
    let _ = writeln!(out, "| layers | lowerdir bytes (store paths) | image from the store, ms | same layers via short symlinks, ms |");
    let _ = writeln!(out, "|---:|---:|---:|---:|");
    let cell = |r: &Res<f64>| match r {
        Ok(ms) => format!("{ms:.2}"),
        Err(e) => format!("fails: {}", e.replace('|', "\\|")),
    };
    for (n, len, s, l) in &rows {
        let _ = writeln!(out, "| {n} | {len} | {} | {} |", cell(s), cell(l));
    }
    let _ = writeln!(out);
    // A failure of the short form is a real failure; the store form may hit
    // the page limit (reported in the table).
    for (n, _, _, l) in rows {
        l.map_err(|e| format!("{n} layers via symlinks: {e}"))?;
    }
    Ok(())
}

/// Everything `alive` compares before and after.
#[derive(Debug, Clone)]
struct Snap {
    mem: BTreeMap<String, i64>,
    slab: BTreeMap<String, i64>,
    rss: i64,
    rss_anon: i64,
    threads: i64,
    fds: usize,
    children: usize,
    zombies: usize,
    netns: usize,
    cgroups: usize,
    state_dirs: usize,
    mounts_all: usize,
    mounts_ours: usize,
    fd_kinds: BTreeMap<String, i64>,
}

fn snap(env: &Env) -> Snap {
    let (children, zombies) = children();
    Snap {
        mem: meminfo(),
        slab: slabinfo(),
        rss: self_status("VmRSS"),
        rss_anon: self_status("RssAnon"),
        threads: self_status("Threads"),
        fds: berth_testkit::open_fds(),
        children,
        zombies,
        netns: netns_in_use(),
        cgroups: env.cgroups_ours(),
        state_dirs: std::fs::read_dir(&env.state_root)
            .map(|r| r.count())
            .unwrap_or(0),
        mounts_all: berth_testkit::mount_count(),
        mounts_ours: mounts_naming(&env.scratch.path().to_string_lossy()),
        fd_kinds: fd_kinds(),
    }
}

/// This process's open fds by kind: `pidfd`, `pipe`, `socket`, another
/// anonymous inode, or the directory a file is in (a container's cgroup
/// directory shows as its parent, berth's cgroup parent).
fn fd_kinds() -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir("/proc/self/fd") {
        for d in rd.flatten() {
            let Ok(t) = std::fs::read_link(d.path()) else {
                continue;
            };
            let t = t.to_string_lossy().into_owned();
            let kind = if let Some(a) = t.strip_prefix("anon_inode:") {
                a.trim_matches(['[', ']']).to_string()
            } else if let Some((k, _)) = t.split_once(":[") {
                k.to_string()
            } else {
                Path::new(&t)
                    .parent()
                    .map(|p| p.display().to_string())
                    .unwrap_or(t)
            };
            *m.entry(kind).or_insert(0) += 1;
        }
    }
    m
}

/// Bytes in use per slab cache (`active_objs × objsize` of /proc/slabinfo,
/// root only; SLUB merges caches of one size, so a name may stand for
/// several). slabinfo(5).
fn slabinfo() -> BTreeMap<String, i64> {
    let text = std::fs::read_to_string("/proc/slabinfo").unwrap_or_default();
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let active: i64 = f.get(1)?.parse().ok()?;
            let size: i64 = f.get(3)?.parse().ok()?;
            Some((f[0].to_string(), active * size))
        })
        .collect()
}

/// The kernel fields of /proc/meminfo counted as host-side memory.
const KERNEL: [&str; 5] = ["Slab", "KernelStack", "PageTables", "Shmem", "Percpu"];

fn delta(a: &Snap, b: &Snap, k: &str) -> i64 {
    b.mem.get(k).copied().unwrap_or(0) - a.mem.get(k).copied().unwrap_or(0)
}

/// Let RCU-deferred frees and the netns cleanup workqueue finish.
fn settle() {
    std::thread::sleep(Duration::from_millis(1500));
}

/// One measured population: snapshots before (0), while alive (1) and after
/// it is gone (2), and what was seen while it lived.
struct Population {
    label: String,
    s0: Snap,
    s1: Snap,
    s2: Snap,
    start_all: Duration,
    destroy_all: Duration,
    running: usize,
    ns_own: Vec<&'static str>,
    ctr_mounts: usize,
    left: Vec<String>,
}

/// `n` plain `sleep` processes: the workload's own cost.
fn plain_sleepers(env: &Env, n: usize) -> Res<Population> {
    let sleep_bin = env.busybox.join("bin/sleep");
    settle();
    let s0 = snap(env);
    let mut plain = Procs(Vec::with_capacity(n));
    let t = Instant::now();
    for _ in 0..n {
        check_stop()?;
        plain.0.push(
            Command::new(&sleep_bin)
                .arg("3600")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .map_err(|e| format!("{}: {e}", sleep_bin.display()))?,
        );
    }
    let start_all = t.elapsed();
    settle();
    let s1 = snap(env);
    let t = Instant::now();
    drop(plain);
    let destroy_all = t.elapsed();
    settle();
    let s2 = snap(env);
    Ok(Population {
        label: format!("{n} plain `sleep`"),
        s0,
        s1,
        s2,
        start_all,
        destroy_all,
        running: n,
        ns_own: Vec::new(),
        ctr_mounts: 0,
        left: Vec::new(),
    })
}

/// `n` containers made by `make`, all alive at once, then destroyed; what
/// is left is checked.
fn containers(
    env: &Env,
    n: usize,
    label: &str,
    make: impl Fn() -> ContainerBuilder,
) -> Res<Population> {
    settle();
    let s0 = snap(env);
    let mut fleet = Fleet(Vec::with_capacity(n));
    let t = Instant::now();
    for i in 0..n {
        check_stop()?;
        let c = make()
            .command(["/bin/sleep", "3600"])
            .spawn()
            .map_err(|e| format!("container {} of {n}: {e}", i + 1))?;
        fleet.0.push(c);
        if (i + 1) % 250 == 0 {
            eprintln!("  {} running ({:.1} s)", i + 1, t.elapsed().as_secs_f64());
        }
    }
    let start_all = t.elapsed();
    settle();
    let s1 = snap(env);
    // One container's own objects, seen from the host.
    let pid = fleet.0.first().map(|c| c.pid()).unwrap_or(0);
    let ns_own: Vec<&'static str> = ["mnt", "uts", "ipc", "pid", "net", "cgroup", "user", "time"]
        .into_iter()
        .filter(|ns| {
            let a = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).ok();
            let b = std::fs::read_link(format!("/proc/self/ns/{ns}")).ok();
            a.is_some() && a != b
        })
        .collect();
    let ctr_mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .map(|s| s.lines().count())
        .unwrap_or(0);
    let mut running = 0;
    for c in fleet.0.iter_mut() {
        if matches!(c.try_wait(), Ok(None)) {
            running += 1;
        }
    }
    let t = Instant::now();
    let errors = fleet.destroy_all();
    let destroy_all = t.elapsed();
    if let Some(e) = errors.first() {
        return Err(format!("{} destroy errors, first: {e}", errors.len()));
    }
    // What is left: poll up to 5 s (the kernel frees a netns asynchronously).
    let deadline = Instant::now() + Duration::from_secs(5);
    let left = loop {
        let s = snap(env);
        let mut left = Vec::new();
        if s.cgroups > 0 {
            left.push(format!("{} cgroups under berth's parent", s.cgroups));
        }
        if s.state_dirs > 0 {
            left.push(format!("{} state dirs", s.state_dirs));
        }
        if s.mounts_ours > 0 || s.mounts_all > s0.mounts_all {
            left.push(format!(
                "mounts: {} naming the run, {} → {} in all",
                s.mounts_ours, s0.mounts_all, s.mounts_all
            ));
        }
        if s.fds > s0.fds {
            left.push(format!("fds {} → {}", s0.fds, s.fds));
        }
        if s.children > s0.children || s.zombies > 0 {
            left.push(format!("{} children ({} zombies)", s.children, s.zombies));
        }
        if s.netns > s0.netns {
            left.push(format!("network namespaces {} → {}", s0.netns, s.netns));
        }
        if left.is_empty() || Instant::now() >= deadline {
            break left;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    settle();
    let s2 = snap(env);
    Ok(Population {
        label: label.to_string(),
        s0,
        s1,
        s2,
        start_all,
        destroy_all,
        running,
        ns_own,
        ctr_mounts,
        left,
    })
}

fn alive(env: &Env, o: &Opts, out: &mut String) -> Res<()> {
    let n = o.alive;
    eprintln!("berth-scale: {n} containers alive at once");
    // Warm-up: berth's caches and the netns pool exist before the baseline.
    for _ in 0..3 {
        cycle(env.builder("w", &env.rootfs))?;
    }
    let plain = plain_sleepers(env, n)?;
    let full = containers(env, n, &format!("{n} containers"), || {
        env.builder("a", &env.rootfs)
    })?;
    eprintln!(
        "  {n} containers: started in {:.2} s, destroyed in {:.2} s",
        full.start_all.as_secs_f64(),
        full.destroy_all.as_secs_f64()
    );
    // The same without a network namespace of their own: what the netns costs.
    let hostnet = containers(env, n, &format!("{n} containers, host network"), || {
        env.builder("h", &env.rootfs).network(Network::host())
    })?;
    let pops = [&full, &hostnet, &plain];

    let per = |x: i64| x as f64 / n as f64;
    let d = |p: &Population, k: &str| per(delta(&p.s0, &p.s1, k));
    let rss = per(full.s1.rss - full.s0.rss);
    let _ = writeln!(
        out,
        "### {n} containers alive at once, one owning process\n"
    );
    let _ = writeln!(
        out,
        "{n} full default containers running `sleep 3600` (busybox), created one after another by \
         this one process through the `berth` library: all running after {:.2} s ({:.1} ms each), \
         {} still running when measured; destroyed (`Container::destroy`: SIGKILL, wait, cgroup, \
         state directory) one after another in {:.2} s ({:.2} ms each). The same with \
         `Network::host()` (no network namespace): {:.2} s and {:.2} s. {n} plain `sleep` \
         processes (fork+exec): {:.2} s and {:.2} s.\n",
        full.start_all.as_secs_f64(),
        full.start_all.as_secs_f64() * 1e3 / n as f64,
        full.running,
        full.destroy_all.as_secs_f64(),
        full.destroy_all.as_secs_f64() * 1e3 / n as f64,
        hostnet.start_all.as_secs_f64(),
        hostnet.destroy_all.as_secs_f64(),
        plain.start_all.as_secs_f64(),
        plain.destroy_all.as_secs_f64(),
    );
    let _ = writeln!(
        out,
        "Host-side memory per container: the owning process's RSS growth, plus the growth of the \
         kernel's memory (/proc/meminfo, machine-wide) while the {n} containers run, minus its \
         growth with {n} plain `sleep` processes of the same binary (the workload's own task, \
         stack, page tables), each population measured alone after a 1.5 s settle. Other \
         processes on the machine add noise to the kernel rows; *after destroy* is the full \
         population's residue 1.5 s after it was destroyed (noise plus slab caches that shrink \
         later).\n"
    );
    let _ = writeln!(
        out,
        "| per container, KiB | {} | {} | {} | berth's share | berth's share, host network | after destroy |",
        full.label, hostnet.label, plain.label
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        out,
        "| owning process RSS growth (anonymous) | {rss:.1} ({:.1}) | {:.1} | – | **{rss:.1}** | {:.1} | {:.1} |",
        per(full.s1.rss_anon - full.s0.rss_anon),
        per(hostnet.s1.rss - hostnet.s0.rss),
        per(hostnet.s1.rss - hostnet.s0.rss),
        per(full.s2.rss - full.s0.rss)
    );
    let mut kernel = [0.0f64; 2];
    for k in KERNEL.iter().copied().chain(["SUnreclaim", "MemAvailable"]) {
        let sign = if k == "MemAvailable" { -1.0 } else { 1.0 };
        let v: Vec<f64> = pops.iter().map(|p| sign * d(p, k)).collect();
        let share = [v[0] - v[2], v[1] - v[2]];
        if KERNEL.contains(&k) {
            kernel[0] += share[0];
            kernel[1] += share[1];
        }
        let name = match k {
            "SUnreclaim" => "(of `Slab`: `SUnreclaim`)".to_string(),
            "MemAvailable" => "(`MemAvailable` drop, for reference)".to_string(),
            _ => format!("kernel `{k}`"),
        };
        let _ = writeln!(
            out,
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            v[0],
            v[1],
            v[2],
            share[0],
            share[1],
            sign * per(delta(&full.s0, &full.s2, k))
        );
    }
    let total = rss + kernel[0];
    let total_host = per(hostnet.s1.rss - hostnet.s0.rss) + kernel[1];
    let _ = writeln!(
        out,
        "| **host-side total** (RSS growth + {}) | | | | **{total:.1}** | {total_host:.1} | |",
        KERNEL.map(|k| format!("`{k}`")).join(" + ")
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Target (issue 11): under 256 KiB per container: **{}** ({total:.0} KiB; without a network \
         namespace of its own {total_host:.0} KiB, so the netns accounts for about {:.0} KiB).\n",
        if total < 256.0 { "met" } else { "missed" },
        total - total_host
    );

    // Which slab caches grew (containers minus plain), top 10.
    let grow = |p: &Population| -> BTreeMap<String, i64> {
        p.s1.slab
            .iter()
            .map(|(k, v)| (k.clone(), v - p.s0.slab.get(k).copied().unwrap_or(0)))
            .collect()
    };
    let (gf, gh, gp) = (grow(&full), grow(&hostnet), grow(&plain));
    let mut top: Vec<(String, f64, f64)> = gf
        .iter()
        .map(|(k, v)| {
            let p = gp.get(k).copied().unwrap_or(0);
            let h = gh.get(k).copied().unwrap_or(0);
            (
                k.clone(),
                (v - p) as f64 / 1024.0 / n as f64,
                (h - p) as f64 / 1024.0 / n as f64,
            )
        })
        .collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    if !top.is_empty() {
        let _ = writeln!(
            out,
            "Slab caches that grew most (/proc/slabinfo `active_objs × objsize`, containers minus \
             plain `sleep`, KiB per container; SUnreclaim and SReclaimable alike; SLUB merges \
             caches of one size):\n"
        );
        let _ = writeln!(out, "| cache | default | host network |");
        let _ = writeln!(out, "|---|---:|---:|");
        for (k, f, h) in top.iter().take(12) {
            let _ = writeln!(out, "| `{k}` | {f:.1} | {h:.1} |");
        }
        let _ = writeln!(out);
    }

    let _ = writeln!(out, "Kernel objects per container, seen from the host:\n");
    let _ = writeln!(out, "| object | per container |");
    let _ = writeln!(out, "|---|---:|");
    let pc = |a: usize, b: usize| (b as f64 - a as f64) / n as f64;
    let (s0, s1) = (&full.s0, &full.s1);
    let _ = writeln!(
        out,
        "| fds held by the owning process | {:.2} |",
        pc(s0.fds, s1.fds)
    );
    let kinds: Vec<String> = s1
        .fd_kinds
        .iter()
        .filter_map(|(k, v)| {
            let g = v - s0.fd_kinds.get(k).copied().unwrap_or(0);
            (g != 0).then(|| format!("{:.2} `{k}`", g as f64 / n as f64))
        })
        .collect();
    let _ = writeln!(out, "| of them, by kind | {} |", kinds.join(", "));
    let _ = writeln!(
        out,
        "| threads of the owning process (its total: before → with the containers) | {:.2} ({} → {}) |",
        (s1.threads - s0.threads) as f64 / n as f64,
        s0.threads,
        s1.threads
    );
    let _ = writeln!(
        out,
        "| child processes of the owner | {:.2} |",
        pc(s0.children, s1.children)
    );
    let _ = writeln!(
        out,
        "| mounts in the host's mount namespace | {:.2} |",
        pc(s0.mounts_all, s1.mounts_all)
    );
    let _ = writeln!(
        out,
        "| mounts in the container's own mount namespace | {} |",
        full.ctr_mounts
    );
    let _ = writeln!(
        out,
        "| namespaces of its own | {} ({}) |",
        full.ns_own.len(),
        full.ns_own.join(", ")
    );
    let _ = writeln!(
        out,
        "| network namespaces in use (machine-wide growth) | {:.2} |",
        pc(s0.netns, s1.netns)
    );
    let _ = writeln!(
        out,
        "| cgroups under berth's parent | {:.2} |",
        pc(s0.cgroups, s1.cgroups)
    );
    let _ = writeln!(
        out,
        "| state directories | {:.2} |",
        pc(s0.state_dirs, s1.state_dirs)
    );
    let _ = writeln!(out);
    let left: Vec<String> = [&full, &hostnet]
        .iter()
        .flat_map(|p| p.left.iter().map(move |l| format!("{}: {l}", p.label)))
        .collect();
    let _ = writeln!(
        out,
        "After each destroy: {}.\n",
        if left.is_empty() {
            "nothing left (no cgroup under berth's parent, state directory, mount, fd, child, \
             zombie or network namespace of the run; checked within 5 s)"
                .to_string()
        } else {
            format!("**left behind**: {}", left.join("; "))
        }
    );
    if !left.is_empty() {
        return Err(format!("left after destroying: {}", left.join("; ")));
    }
    Ok(())
}

fn ports(env: &mut Env, o: &Opts, out: &mut String) -> Res<()> {
    eprintln!("berth-scale: published ports {:?}", o.ports);
    let base = 20000 + (std::process::id() % 1000) as u16 * 40;
    let net = env.net().network();
    let env = &*env;
    let nets: Vec<Network> = o
        .ports
        .iter()
        .map(|&k| {
            (0..k).fold(net.clone(), |n, i| {
                n.publish(PortMapping::tcp(base + i as u16, 80))
            })
        })
        .collect();
    // The port counts in interleaved rounds (each once per round, after one
    // unmeasured cycle each), so the machine's drift hits every count alike.
    for n in &nets {
        cycle(env.builder("p", &env.rootfs).network(n.clone()))?;
    }
    let mut samples = vec![Vec::with_capacity(o.samples); nets.len()];
    for _ in 0..o.samples {
        for (n, v) in nets.iter().zip(samples.iter_mut()) {
            v.push(cycle(env.builder("p", &env.rootfs).network(n.clone()))?.as_secs_f64() * 1e3);
        }
    }
    let mut rows = Vec::new();
    for (&k, v) in o.ports.iter().zip(samples.iter_mut()) {
        let ms = median(v);
        eprintln!("  {k} port(s): {ms:.2} ms");
        rows.push((k, ms));
    }
    let zero = rows.first().map(|r| r.1).unwrap_or(0.0);
    let _ = writeln!(out, "### Published ports\n");
    let _ = writeln!(
        out,
        "spawn → exit → destroy of `/bin/true` on a bridge network (veth, address, route, \
         masquerade), publishing N TCP ports (nft DNAT rules; nothing is sent), median of {} \
         interleaved rounds (every port count once per round).\n",
        o.samples
    );
    let _ = writeln!(out, "| ports | ms | + ms over 0 ports |");
    let _ = writeln!(out, "|---:|---:|---:|");
    for (k, ms) in rows {
        let _ = writeln!(out, "| {k} | {ms:.2} | {:+.2} |", ms - zero);
    }
    let _ = writeln!(out);
    Ok(())
}

fn bridge(env: &mut Env, o: &Opts, out: &mut String) -> Res<()> {
    eprintln!("berth-scale: containers on one bridge {:?}", o.bridge);
    let net = env.net().network();
    let env = &*env;
    let mut fleet = Fleet(Vec::new());
    let mut rows = Vec::new();
    let mut sizes = o.bridge.clone();
    sizes.sort_unstable();
    for k in sizes {
        let t = Instant::now();
        let before = fleet.0.len();
        while fleet.0.len() < k {
            check_stop()?;
            let c = env
                .builder("b", &env.rootfs)
                .network(net.clone())
                .command(["/bin/sleep", "3600"])
                .spawn()
                .map_err(|e| format!("container {} on the bridge: {e}", fleet.0.len() + 1))?;
            fleet.0.push(c);
        }
        let added = fleet.0.len() - before;
        let join_ms = if added > 0 {
            t.elapsed().as_secs_f64() * 1e3 / added as f64
        } else {
            0.0
        };
        let ms = median_cycle(o.samples, || {
            env.builder("bt", &env.rootfs).network(net.clone())
        })?;
        eprintln!("  {k} on the bridge: one more {ms:.2} ms (joining {join_ms:.2} ms each)");
        rows.push((k, added, join_ms, ms));
    }
    let n = fleet.0.len();
    let t = Instant::now();
    let errors = fleet.destroy_all();
    let destroy_ms = t.elapsed().as_secs_f64() * 1e3 / n.max(1) as f64;
    if let Some(e) = errors.first() {
        return Err(format!("{} destroy errors, first: {e}", errors.len()));
    }
    let _ = writeln!(out, "### Containers on one bridge\n");
    let _ = writeln!(
        out,
        "With N `sleep` containers already attached to the bridge network: the spawn → exit → \
         destroy of one more `/bin/true` container on it (median of {}), and how long each of the \
         N took to start and join while the bridge filled up. Destroying the {n} took {destroy_ms:.2} ms each.\n",
        o.samples
    );
    let _ = writeln!(
        out,
        "| containers on the bridge | one more, ms | start + join of the ones added (count), ms each |"
    );
    let _ = writeln!(out, "|---:|---:|---:|");
    for (k, added, join, ms) in rows {
        let _ = writeln!(out, "| {k} | {ms:.2} | {join:.2} ({added}) |");
    }
    let _ = writeln!(out);
    Ok(())
}

// ------------------------------------------------------------------ main

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn header(o: &Opts) -> String {
    let mut h = String::new();
    let commit = sh("git", &["rev-parse", "--short", "HEAD"]);
    let dirty = sh("git", &["status", "--porcelain", "--untracked-files=no"])
        .lines()
        .count();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let _ = writeln!(
        h,
        "## Scale (library: `berth-scale{}`)\n",
        if o.quick { " --quick" } else { "" }
    );
    let _ = writeln!(
        h,
        "Measured {} on {} CPUs, Linux {}, at commit {} ({} modified tracked file(s) in the tree); \
         load average at the start {}.\n",
        sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        sh("uname", &["-r"]),
        if commit.is_empty() { "?" } else { &commit },
        dirty,
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    h
}

/// Raise the soft fd limit to the hard one: a thousand containers need two
/// fds each in their owner (pidfd, cgroup directory). getrlimit(2).
fn raise_nofile() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointer to an rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } == 0 && r.rlim_cur < r.rlim_max {
        r.rlim_cur = r.rlim_max;
        // SAFETY: as above.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) };
    }
}

/// What the run's bridge network left on the host (after its guard ran).
fn net_left(name: &str, bridge: &str, prefix: &str) -> Vec<String> {
    let mut left = Vec::new();
    if sh("ip", &["-o", "link", "show", bridge]).contains(bridge) {
        left.push(format!("bridge {bridge}"));
    }
    let nft = sh("nft", &["list", "table", "ip", berth_netsetup::NFT_TABLE]);
    let rules = nft
        .lines()
        .filter(|l| l.contains(&format!("net={name}\"")) || l.contains(&format!("ctr={prefix}")))
        .count();
    if rules > 0 {
        left.push(format!("{rules} nft rule(s)"));
    }
    left
}

fn main() -> ExitCode {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("berth-scale: {e}");
            return ExitCode::from(2);
        }
    };
    if !berth_testkit::is_root() {
        eprintln!("berth-scale: needs root (namespaces, cgroups, mounts, bridge networking)");
        return ExitCode::from(2);
    }
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
    raise_nofile();
    let mut out = header(&o);
    let mut failures = Vec::new();
    let t0 = Instant::now();
    let mut env = match Env::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("berth-scale: setup: {e}");
            return ExitCode::from(2);
        }
    };
    let prefix = env.prefix.clone();
    for s in SECTIONS {
        if !o.only.iter().any(|x| x == s) {
            continue;
        }
        if STOP.load(Ordering::SeqCst) {
            failures.push(format!("{s}: not run (interrupted)"));
            continue;
        }
        let r = match s {
            "tput" => tput(&env, &o, &mut out),
            "layers" => layers(&env, &o, &mut out),
            "alive" => alive(&env, &o, &mut out),
            "ports" => ports(&mut env, &o, &mut out),
            _ => bridge(&mut env, &o, &mut out),
        };
        if let Err(e) = r {
            eprintln!("berth-scale: {s}: {e}");
            let _ = writeln!(out, "**{s} failed**: {}\n", e.replace('|', "\\|"));
            failures.push(format!("{s}: {e}"));
        }
    }
    let net = env.net.as_ref().map(|n| (n.name.clone(), n.bridge.clone()));
    let state_root = env.state_root.clone();
    let cgroups = env.cgroups_ours();
    drop(env);
    // Everything of the run is gone?
    let mut left = Vec::new();
    if cgroups > 0 {
        left.push(format!("{cgroups} container cgroup(s)"));
    }
    if state_root.exists() {
        left.push(format!("{}", state_root.display()));
    }
    let (ch, z) = children();
    if ch > 0 || z > 0 {
        left.push(format!("{ch} child process(es), {z} zombie(s)"));
    }
    if let Some((name, bridge)) = &net {
        left.extend(net_left(name, bridge, &prefix));
    }
    let _ = writeln!(
        out,
        "Run took {:.1} s; after it: {}.",
        t0.elapsed().as_secs_f64(),
        if left.is_empty() {
            "nothing of it left (container cgroups, state, children, bridge, nft rules)".to_string()
        } else {
            format!("**left behind**: {}", left.join(", "))
        }
    );
    print!("{out}");
    if !left.is_empty() {
        failures.push(format!("left behind: {}", left.join(", ")));
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        for f in &failures {
            eprintln!("berth-scale: {f}");
        }
        ExitCode::from(1)
    }
}
