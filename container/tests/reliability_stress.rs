//! Privileged tier: concurrency and fault injection.
//!
//! - 32 threads create and destroy containers at once on one bridge
//!   network, in rounds where all 32 are alive together: no deadlock, no
//!   duplicate address, nothing left.
//! - The owning process is SIGKILLed at random points of spawn, network
//!   attach, exec and destroy; `berth::gc` then leaves nothing behind and a
//!   container with the same name works again.
//!
//! - 16 threads `ensure()` a new bridge network at once (the race behind
//!   the 32-thread test's hang).
//! - `gc` in a loop never takes a live owner's container.
//!
//! CI forms are short: 96 containers, 40 SIGKILLs, 30 ensure races.
//! `BERTH_STRESS_TOTAL` (e.g. 2000), `BERTH_FAULT_TRIALS` (e.g. 250),
//! `BERTH_ENSURE_RACES` and `BERTH_GC_RACE_CYCLES` raise them; the figures of long runs are in the
//! root README.
//! The networks use `masquerade(false)` and `ip_forward(false)`: no nft
//! rule and no host setting changes; the bridges are removed at the end.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use berth::{Network, Stdio};
use common::*;

fn env_num(k: &str, default: u32) -> u32 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn net(br: &str, subnet: &str, dir: &Path) -> Network {
    Network::bridge(br)
        .subnet(subnet)
        .masquerade(false)
        .ip_forward(false)
        .state_dir(dir)
}

fn ipam_text(dir: &Path) -> String {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

fn ports_on(br: &str) -> Vec<String> {
    berth_testkit::run("ip", &["-o", "link", "show", "master", br])
        .lines()
        .map(String::from)
        .collect()
}

/// Field 22 of `/proc/<pid>/stat` (start time), `None` when gone.
fn start_time(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s[s.rfind(')')? + 1..]
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// Small deterministic PRNG (xorshift), seeded from the clock; the seed is
/// printed so a failing sequence can be replayed with `BERTH_FAULT_SEED`.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// (container id, its address) of one round.
type Round = Vec<(String, std::net::Ipv4Addr)>;

/// A barrier that breaks instead of hanging: when a thread panics (its
/// [`Breaker`] drops while unwinding) or a wait times out, every waiter
/// gets an error. (A `std::sync::Barrier` waits forever for a thread that
/// died: one failed spawn hung the whole test with all threads in
/// `futex_do_wait`.)
struct Gate {
    n: usize,
    m: Mutex<(usize, u64, Option<String>)>,
    cv: Condvar,
}

impl Gate {
    fn new(n: usize) -> Self {
        Gate {
            n,
            m: Mutex::new((0, 0, None)),
            cv: Condvar::new(),
        }
    }

    fn wait(&self, timeout: Duration) -> Result<(), String> {
        let mut g = self.m.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(why) = &g.2 {
            return Err(why.clone());
        }
        let gen = g.1;
        g.0 += 1;
        if g.0 == self.n {
            g.0 = 0;
            g.1 += 1;
            self.cv.notify_all();
            return Ok(());
        }
        let deadline = Instant::now() + timeout;
        while g.1 == gen {
            if let Some(why) = &g.2 {
                return Err(why.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let why = format!(
                    "gate timed out after {timeout:?} ({} of {} arrived)",
                    g.0, self.n
                );
                g.2 = Some(why.clone());
                self.cv.notify_all();
                return Err(why);
            }
            g = self
                .cv
                .wait_timeout(g, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        Ok(())
    }

    fn break_with(&self, why: String) {
        let mut g = self.m.lock().unwrap_or_else(|p| p.into_inner());
        g.2.get_or_insert(why);
        self.cv.notify_all();
    }
}

/// Breaks the gate when its thread unwinds.
struct Breaker(Arc<Gate>, usize);

impl Drop for Breaker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.break_with(format!("thread {} panicked", self.1));
        }
    }
}

/// Every thread's stack (gdb, else the kernel's wait channels): what a
/// hang looks like, printed before the test fails instead of hanging.
fn dump_threads() -> String {
    let pid = std::process::id().to_string();
    let gdb = std::process::Command::new("gdb")
        .args(["-p", &pid, "-batch", "-ex", "thread apply all bt 12"])
        .output();
    let mut out = match gdb {
        Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
        Err(e) => format!("(gdb: {e})\n"),
    };
    if let Ok(rd) = std::fs::read_dir("/proc/self/task") {
        for t in rd.flatten() {
            let w = std::fs::read_to_string(t.path().join("wchan")).unwrap_or_default();
            out.push_str(&format!("task {:?}: {w}\n", t.file_name()));
        }
    }
    out
}

/// `BERTH_STRESS_TOTAL` containers (CI: 96; the long form: 2000)
/// by 32 threads on one bridge, in rounds where all 32 are alive at once:
/// every round's addresses are distinct, nothing is left afterwards. A
/// failure in any thread fails the test (never a hang); a test still
/// running after its deadline prints every thread's stack and fails.
#[test]
fn concurrent_32_threads_one_bridge() {
    berth_testkit::privileged!();
    let root = Arc::new(state_root());
    let net_state = Arc::new(tempfile::tempdir().unwrap());
    let br = berth_testkit::unique_name("brx");
    let _link = berth_testkit::Link::adopt(br.clone());
    let subnet = format!("10.232.{}.0/24", std::process::id() % 200 + 20);
    let threads = 32usize;
    let total = std::env::var("BERTH_STRESS_TOTAL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(env_num("BERTH_STRESS_ROUNDS", 3) as usize * threads);
    let rounds = total.div_ceil(threads);
    let gate = Arc::new(Gate::new(threads));
    let addrs: Arc<Mutex<Vec<Round>>> = Arc::new(Mutex::new(vec![Vec::new(); rounds]));
    let ids = Arc::new(Mutex::new(Vec::new()));
    let pids = Arc::new(Mutex::new(Vec::new()));
    // Generous: under CI load a container takes up to ~100 ms; the 2,000
    // form takes ~20 s on the idle 2-core host.
    let budget = Duration::from_secs(120) + Duration::from_millis(200) * total as u32;
    let gate_timeout = Duration::from_secs(120);
    let t0 = Instant::now();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let hs: Vec<_> = (0..threads)
        .map(|t| {
            let (root, net_state, br, subnet, gate, addrs, ids, pids, done_tx) = (
                root.clone(),
                net_state.clone(),
                br.clone(),
                subnet.clone(),
                gate.clone(),
                addrs.clone(),
                ids.clone(),
                pids.clone(),
                done_tx.clone(),
            );
            std::thread::spawn(move || {
                let _b = Breaker(gate.clone(), t);
                for r in 0..rounds {
                    let mine = r * threads + t < total;
                    let c = mine.then(|| {
                        let id = berth_testkit::unique_name(&format!("c{t}r{r}"));
                        ids.lock().unwrap().push(id.clone());
                        let c = busybox(&id, &root)
                            .network(net(&br, &subnet, net_state.path()))
                            .stdout(Stdio::Null)
                            .stderr(Stdio::Null)
                            .command(["/bin/sleep", "600"])
                            .spawn()
                            .unwrap_or_else(|e| panic!("thread {t} round {r}: spawn {id}: {e}"));
                        pids.lock().unwrap().push((c.pid(), c.state().pid_start));
                        let a = c.address().expect("a bridge address");
                        addrs.lock().unwrap()[r].push((id, a));
                        c
                    });
                    // All of the round alive at once.
                    gate.wait(gate_timeout).unwrap();
                    if let Some(c) = c {
                        let id = c.id().to_string();
                        c.destroy()
                            .unwrap_or_else(|e| panic!("thread {t} round {r}: destroy {id}: {e}"));
                    }
                    gate.wait(gate_timeout).unwrap();
                }
                let _ = done_tx.send(t);
            })
        })
        .collect();
    drop(done_tx);
    // Wait for every thread, but never forever: a deadlock inside berth
    // shows up as threads that stop reporting.
    let mut finished = 0;
    while finished < threads {
        match done_rx.recv_timeout(budget.saturating_sub(t0.elapsed())) {
            Ok(_) => finished += 1,
            // A thread panicked (its sender dropped without a message):
            // the join below reports why.
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let stacks = dump_threads();
                gate.break_with("the test timed out".into());
                panic!(
                    "{finished} of {threads} threads done after {:?}: hung?\n{stacks}",
                    t0.elapsed()
                );
            }
        }
    }
    // Report the first real failure, not the gate errors it caused.
    let mut failures = Vec::new();
    for h in hs {
        if let Err(p) = h.join() {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(msg);
        }
    }
    failures.sort_by_key(|m| m.contains("gate") || m.contains("panicked"));
    assert!(
        failures.is_empty(),
        "{} threads failed: {failures:#?}",
        failures.len()
    );
    let elapsed = t0.elapsed();
    let addrs = addrs.lock().unwrap();
    for (r, round) in addrs.iter().enumerate() {
        let want = threads.min(total - r * threads);
        let uniq: BTreeSet<_> = round.iter().map(|x| x.1).collect();
        assert_eq!(round.len(), want, "round {r}");
        assert_eq!(uniq.len(), want, "round {r}: duplicate address: {round:?}");
    }
    println!(
        "{total} containers by {threads} threads in {:.1}s ({rounds} rounds, up to {threads} alive at once, {:.1} ms a container), no duplicate address",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1000.0 / total as f64
    );
    let ipam = ipam_text(net_state.path());
    for id in ids.lock().unwrap().iter() {
        let f = footprint(root.path(), id);
        assert!(
            f.mounts.is_empty() && f.cgroups.is_empty() && f.links.is_empty() && f.state.is_empty(),
            "{id}: {f:?}"
        );
        assert!(!ipam.contains(id.as_str()), "IPAM still holds {id}");
    }
    // Every init was reaped: no zombie, no survivor (same pid and start
    // time as recorded at spawn).
    for (pid, start) in pids.lock().unwrap().iter() {
        assert!(start.is_some(), "no start time recorded for {pid}");
        assert_ne!(start_time(*pid), *start, "container init {pid} still there");
    }
    // The host ends of the veths go with the namespaces (asynchronously).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ports_on(&br).is_empty() {
        assert!(Instant::now() < deadline, "ports left: {:?}", ports_on(&br));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Not a test on its own: the owner process of `owner_sigkilled_then_gc`.
/// Loops spawn (bridge network) → exec → destroy on one id until killed.
#[test]
fn fault_owner_helper() {
    let Ok(spec) = std::env::var("BERTH_FAULT_OWNER") else {
        return;
    };
    let v: Vec<&str> = spec.split('|').collect();
    let (root, id, br, subnet, dir) = (v[0], v[1], v[2], v[3], v[4]);
    let with_net = v[5] == "1";
    // No TempDir here: it is killed, and would leave it behind.
    loop {
        let mut b = berth::Container::builder(id)
            .rootfs(berth::Rootfs::dir(berth_testkit::busybox_rootfs()))
            .state_root(root)
            .stdin(Stdio::Null)
            .stdout(Stdio::Null)
            .stderr(Stdio::Null)
            .command(["/bin/sleep", "60"]);
        if with_net {
            b = b.network(net(br, subnet, Path::new(dir)));
        }
        let c = b.spawn().unwrap();
        let _ = c.exec(["/bin/true"]).status().unwrap();
        c.destroy().unwrap();
    }
}

/// What one SIGKILL of the owner left behind, by the phase it hit.
#[derive(Debug, Default)]
struct Left {
    /// Nothing of the container (killed before it began, or after destroy).
    nothing: u32,
    /// A `.creating-…` state directory (killed before it was in place).
    creating: u32,
    /// A `.removing-…` tombstone (killed while deleting the directory).
    removing: u32,
    /// A record naming a cgroup not confirmed yet.
    cgroup_pending: u32,
    /// A record without a pid (cgroup made, network, clone in flight).
    spawning: u32,
    /// A record with a pid (running, exec, destroy).
    spawned: u32,
    /// A state directory without a record (none since the atomic create).
    no_record: u32,
    /// Kills that left an IPAM entry (network attach or destroy hit).
    ipam: u32,
    /// Kernel objects with no state directory at all: gc cannot see them.
    orphans: u32,
}

impl Left {
    fn count(&mut self, root: &Path, id: &str, net_state: &Path) {
        let mut any = false;
        for e in std::fs::read_dir(root).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".creating-") && name.ends_with(id) {
                self.creating += 1;
                any = true;
            } else if name.starts_with(".removing-") && name.ends_with(id) {
                self.removing += 1;
                any = true;
            } else if name == id {
                any = true;
                match std::fs::read(e.path().join(berth::STATE_FILE)) {
                    Err(_) => self.no_record += 1,
                    Ok(b) => {
                        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
                        if v["cgroup_pending"] == true {
                            self.cgroup_pending += 1;
                        } else if v["pid"].is_null() {
                            self.spawning += 1;
                        } else {
                            self.spawned += 1;
                        }
                    }
                }
            }
        }
        let in_ipam = ipam_text(net_state).contains(id);
        if in_ipam {
            self.ipam += 1;
        }
        let f = footprint(root, id);
        if !any {
            if f.cgroups.is_empty() && !in_ipam {
                self.nothing += 1;
            } else {
                self.orphans += 1;
            }
        }
    }
}

/// The owner is SIGKILLed at a random point of spawn, network attach, exec
/// or destroy (`BERTH_FAULT_TRIALS` times, CI: 40), then `berth::gc`: every
/// object must be gone and the same name must work again.
#[test]
fn owner_sigkilled_then_gc() {
    berth_testkit::privileged!();
    let root = state_root();
    let net_state = tempfile::tempdir().unwrap();
    let br = berth_testkit::unique_name("brf");
    let _link = berth_testkit::Link::adopt(br.clone());
    let subnet = format!("10.233.{}.0/24", std::process::id() % 200 + 20);
    let trials = env_num("BERTH_FAULT_TRIALS", 40);
    let seed = std::env::var("BERTH_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("BERTH_FAULT_SEED={seed}");
    let mut rng = Rng(seed);
    let mut left = Left::default();
    let mut reclaimed = 0;
    let (mut veth_waits, mut veth_wait_max) = (0, Duration::ZERO);
    let t0 = Instant::now();
    for trial in 0..trials {
        let id = berth_testkit::unique_name(&format!("f{trial}"));
        let with_net = trial % 2 == 0;
        // /proc/self/exe, not current_exe(): a rebuild in the shared target
        // directory may have replaced the file meanwhile.
        let mut owner = std::process::Command::new("/proc/self/exe")
            .args([
                "fault_owner_helper",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(
                "BERTH_FAULT_OWNER",
                format!(
                    "{}|{id}|{br}|{subnet}|{}|{}",
                    root.path().display(),
                    net_state.path().display(),
                    if with_net { 1 } else { 0 }
                ),
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait until the owner has started working on the id (its state
        // directory appears), then kill it 0-120 ms later.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !root.path().join(&id).exists() {
            assert!(Instant::now() < deadline, "owner never started");
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_micros(rng.next() % 120_000));
        owner.kill().unwrap();
        owner.wait().unwrap();
        left.count(root.path(), &id, net_state.path());
        let r = berth::gc(Some(root.path())).unwrap();
        assert!(
            r.errors.is_empty(),
            "trial {trial}: gc errors {:?}",
            r.errors
        );
        reclaimed += r.reclaimed.len();
        // gc took everything at once: no grace period needed any more (the
        // state directory appears atomically with its record).
        let f = footprint(root.path(), &id);
        assert!(
            f.mounts.is_empty() && f.cgroups.is_empty() && f.links.is_empty() && f.state.is_empty(),
            "trial {trial}: {f:?}"
        );
        assert!(
            !ipam_text(net_state.path()).contains(id.as_str()),
            "trial {trial}: IPAM still holds {id}"
        );
        // The same name works again. Known limit (see the README): the
        // host end of the old veth, named after the id, goes away with the
        // old network namespace, which the kernel tears down
        // asynchronously; until then attaching the same id is EEXIST. Retry
        // for up to 3 s and count how often that was needed.
        let t = Instant::now();
        let mut retried = None;
        let mut c = loop {
            let mut b = busybox(&id, &root).command(["/bin/true"]);
            if with_net {
                b = b.network(net(&br, &subnet, net_state.path()));
            }
            match b.spawn() {
                Ok(c) => break c,
                Err(e)
                    if e.to_string().contains("already exists")
                        && t.elapsed() < Duration::from_secs(3) =>
                {
                    retried = Some(e.to_string());
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("trial {trial}: respawn: {e}"),
            }
        };
        if let Some(e) = retried {
            veth_waits += 1;
            veth_wait_max = veth_wait_max.max(t.elapsed());
            println!("trial {trial}: respawn waited {:?}: {e}", t.elapsed());
        }
        assert!(c.wait().unwrap().success());
        c.destroy().unwrap();
        assert_eq!(footprint(root.path(), &id).state.len(), 0);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ports_on(&br).is_empty() {
        assert!(Instant::now() < deadline, "ports left: {:?}", ports_on(&br));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(left.orphans, 0, "{left:?}");
    println!(
        "{trials} SIGKILLs of the owner in {:.1}s: left behind {left:?}; gc reclaimed {reclaimed}, all clean, names reusable ({veth_waits} respawns waited for the old veth, longest {veth_wait_max:?})",
        t0.elapsed().as_secs_f64()
    );
}

/// `gc` running in a loop never touches containers of a live owner at any
/// point of their life (creation, network attach, exec, destroy): it
/// reclaims nothing, reports no error, and every spawn and destroy
/// succeeds.
#[test]
fn gc_never_takes_a_live_owners_container() {
    berth_testkit::privileged!();
    let root = Arc::new(state_root());
    let net_state = Arc::new(tempfile::tempdir().unwrap());
    let br = berth_testkit::unique_name("brg");
    let _link = berth_testkit::Link::adopt(br.clone());
    let subnet = format!("10.235.{}.0/24", std::process::id() % 200 + 20);
    let cycles = env_num("BERTH_GC_RACE_CYCLES", 15);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gcs = {
        let (root, stop) = (root.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut runs = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = berth::gc(Some(root.path())).unwrap();
                assert!(r.errors.is_empty(), "gc errors: {:?}", r.errors);
                assert!(r.reclaimed.is_empty(), "gc took a live container: {r:?}");
                runs += 1;
            }
            runs
        })
    };
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let (root, net_state, br, subnet) =
                (root.clone(), net_state.clone(), br.clone(), subnet.clone());
            std::thread::spawn(move || {
                for i in 0..cycles {
                    let id = berth_testkit::unique_name(&format!("g{t}"));
                    let mut b = busybox(&id, &root)
                        .stdout(Stdio::Null)
                        .stderr(Stdio::Null)
                        .command(["/bin/sleep", "60"]);
                    if i % 2 == 0 {
                        b = b.network(net(&br, &subnet, net_state.path()));
                    }
                    let c = b.spawn().unwrap_or_else(|e| panic!("{id}: {e}"));
                    assert!(c.exec(["/bin/true"]).status().unwrap().success());
                    c.destroy().unwrap_or_else(|e| panic!("{id}: {e}"));
                }
            })
        })
        .collect();
    let mut failed = Vec::new();
    for w in workers {
        if let Err(p) = w.join() {
            failed.push(p);
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let runs = gcs.join().unwrap();
    assert!(failed.is_empty(), "{} workers failed", failed.len());
    assert!(runs > 0);
    println!(
        "{runs} gc runs alongside {} live containers: none taken",
        4 * cycles
    );
    assert!(footprint(root.path(), "g").state.is_empty());
}

/// A workload that ignores SIGTERM is still gone after `destroy`.
#[test]
fn destroy_kills_a_sigterm_ignoring_workload() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("term");
    let mut c = busybox(&id, &root)
        .stdout(Stdio::Piped)
        .command([
            "/bin/sh",
            "-c",
            "trap '' TERM; echo ready; while true; do sleep 1; done",
        ])
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(c.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "ready");
    let pid = c.pid();
    c.signal(berth::Signal::SIGTERM).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        c.try_wait().unwrap().is_none(),
        "the workload should have ignored SIGTERM"
    );
    let t = Instant::now();
    c.destroy().unwrap();
    println!(
        "destroy of a SIGTERM-ignoring workload took {:?}",
        t.elapsed()
    );
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "pid {pid} survived"
    );
    let f = footprint(root.path(), &id);
    assert!(f.cgroups.is_empty() && f.state.is_empty(), "{f:?}");
}

/// Writing past a size-limited tmpfs fails with ENOSPC inside the
/// container, and the limit is the one asked for.
#[test]
fn tmpfs_size_limit_gives_enospc() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("enosp");
    let (st, out, err) = sh(
        busybox(&id, &root).mount(berth::Mount::tmpfs("/small").size(1 << 20)),
        "dd if=/dev/zero of=/small/fill bs=4096 count=1024 2>&1; echo rc=$?; echo size=$(wc -c < /small/fill)",
    );
    assert!(st.success(), "{out}{err}");
    assert!(out.contains("No space left on device"), "{out}");
    assert!(out.contains("rc=1"), "{out}");
    // At most the 1 MiB limit was written.
    let size: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("size="))
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(size <= 1 << 20 && size > 0, "{out}");
}

/// Regression for the hang of `concurrent_32_threads_one_bridge`: the first
/// containers on a new bridge network all `ensure()` it at once. A thread
/// that found no bridge yet, then listed the routes after another thread
/// had created it and set its address, saw the bridge's own route as an
/// overlapping subnet and failed (`SubnetOverlap`). Provoked here directly:
/// 16 threads released together on a fresh bridge, `BERTH_ENSURE_RACES`
/// times (CI: 30).
#[test]
fn concurrent_first_ensure_of_a_bridge() {
    berth_testkit::privileged!();
    let races = env_num("BERTH_ENSURE_RACES", 30);
    let threads = 16;
    let mut failures = Vec::new();
    for race in 0..races {
        let br = berth_testkit::unique_name("bre");
        let _link = berth_testkit::Link::adopt(br.clone());
        let dir = tempfile::tempdir().unwrap();
        // A /28 of its own per race (4,096 of them in 10.234.0.0/16).
        let k = (std::process::id() * 97 + race) % 4096;
        let subnet = format!("10.234.{}.{}/28", k / 16, (k % 16) * 16);
        let barrier = Arc::new(std::sync::Barrier::new(threads));
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                let (br, subnet, dir, barrier) = (
                    br.clone(),
                    subnet.clone(),
                    dir.path().to_path_buf(),
                    barrier.clone(),
                );
                std::thread::spawn(move || {
                    let n = berth_netsetup::BridgeNetwork::new(&br)
                        .subnet(&subnet)
                        .masquerade(false)
                        .ip_forward(false)
                        .state_dir(dir);
                    barrier.wait();
                    n.ensure().map(drop).map_err(|e| e.to_string())
                })
            })
            .collect();
        for h in hs {
            if let Err(e) = h.join().unwrap() {
                failures.push(format!("race {race}: {e}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} ensure() calls failed: {failures:#?}",
        failures.len(),
        races * threads as u32
    );
}
