//! VM tier: real limits on a unified cgroup2 hierarchy with every controller
//! (run with `scripts/vm-test -p berth-cgroups --test vm`). Code runs 15–30×
//! slower there: small workloads, generous timeouts.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_cgroups::{
    Cgroup, CgroupBuilder, Controller, Error, Event, Hierarchy, IoMax, Limit, Resources,
};
use berth_testkit::{unique_name, CgroupDir};

/// Environment variable that turns this test binary into a helper process.
const HELPER_ENV: &str = "BERTH_CG_HELPER";

/// Helper mode: when this binary is re-executed with `BERTH_CG_HELPER` set,
/// the `helper_entry` test does the named job once the parent has placed it
/// in its cgroup (it waits for a line on stdin), prints the outcome, and exits.
#[test]
fn helper_entry() {
    let Ok(job) = std::env::var(HELPER_ENV) else {
        return;
    };
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    match job.as_str() {
        "fork" => {
            // Fork up to 8 children that pause; report each fork's result.
            let mut kids = Vec::new();
            for _ in 0..8 {
                // SAFETY: the child only calls async-signal-safe pause/_exit.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    // SAFETY: async-signal-safe calls only, in the forked child.
                    unsafe {
                        libc::pause();
                        libc::_exit(0)
                    }
                }
                if pid < 0 {
                    let e = std::io::Error::last_os_error();
                    println!("fork-failed errno={}", e.raw_os_error().unwrap_or(0));
                } else {
                    println!("fork-ok");
                    kids.push(pid);
                }
            }
            for k in kids {
                // SAFETY: kill(2) of a child this test forked.
                unsafe { libc::kill(k, libc::SIGKILL) };
            }
        }
        "hugetlb" => {
            // Map and touch one 2 MiB huge page: SIGBUS when the cgroup's
            // hugetlb.2MB.max forbids the charge.
            let len = 2 << 20;
            // SAFETY: anonymous mapping, checked below.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_HUGETLB,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                println!("mmap-failed {}", std::io::Error::last_os_error());
                return;
            }
            // SAFETY: p is a valid writable mapping of len bytes.
            unsafe { std::ptr::write_volatile(p.cast::<u8>(), 1) };
            println!("touched");
        }
        other => panic!("unknown helper job {other}"),
    }
    std::process::exit(0);
}

/// Start this test binary as a helper doing `job`, gated on stdin.
fn helper(job: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "helper_entry", "--nocapture", "--test-threads=1"])
        .env(HELPER_ENV, job)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn helper")
}

/// A shell running `script` once released (first line on stdin), so the
/// caller can move it into a cgroup before it does anything.
fn gated_sh(script: &str) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(format!("read _go; {script}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sh")
}

fn release(child: &mut Child) {
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
}

fn output(mut child: Child) -> (std::process::ExitStatus, String, String) {
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (child.wait().unwrap(), out, err)
}

fn hierarchy() -> Hierarchy {
    Hierarchy::discover().unwrap()
}

/// A unique group directly under the root, removed even on panic.
fn group(h: &Hierarchy, r: Resources) -> (CgroupDir, Cgroup) {
    let name = unique_name("bvm");
    let guard = CgroupDir::adopt(h.mount_point().join(&name));
    let cg = CgroupBuilder::new(&name)
        .hierarchy(h.clone())
        .parent(h.mount_point())
        .resources(r)
        .create()
        .expect("create cgroup");
    (guard, cg)
}

#[test]
fn memory_max_oom_kills_and_watcher_reports_it() {
    berth_testkit::vm_only!();
    let h = hierarchy();
    assert!(h.root_controllers().unwrap().contains(Controller::Memory));
    let (_g, cg) = group(
        &h,
        Resources::new()
            .memory_max(Limit::Value(16 << 20))
            .memory_swap_max(Limit::Value(0))
            .memory_oom_group(true),
    );
    assert_eq!(cg.read_file("memory.max").unwrap().trim(), "16777216");
    let mut w = cg.watch().unwrap();
    // A bystander: with memory.oom.group the OOM kill takes it too.
    let mut bystander = gated_sh("sleep 60");
    cg.add_process(bystander.id()).unwrap();
    // dd's 64 MiB buffer is filled from /dev/zero: 64 MiB of anonymous memory.
    let mut child = gated_sh("exec dd if=/dev/zero of=/dev/null bs=64M count=1");
    cg.add_process(child.id()).unwrap();
    release(&mut child);
    let (st, _, err) = output(child);
    assert_eq!(
        st.signal(),
        Some(libc::SIGKILL),
        "dd was not OOM-killed: {st:?} {err}"
    );
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen.iter().any(|e| matches!(e, Event::OomKill { .. })) {
        assert!(Instant::now() < deadline, "no OomKill event; saw {seen:?}");
        seen.extend(w.wait(Some(Duration::from_secs(5))).unwrap());
    }
    assert!(
        seen.iter().any(|e| matches!(e, Event::MemoryMax { .. })),
        "{seen:?}"
    );
    assert_eq!(
        bystander.wait().unwrap().signal(),
        Some(libc::SIGKILL),
        "memory.oom.group did not kill the whole group"
    );
    let m = cg.stats().unwrap().memory.unwrap();
    assert!(m.events.oom_kill >= 2, "{:?}", m.events);
    assert!(m.events.oom_group_kill >= 1, "{:?}", m.events);
    if let Some(peak) = m.peak {
        assert!(peak <= 16 << 20, "peak {peak}");
    }
}

#[test]
fn cpu_max_throttles_a_busy_loop() {
    berth_testkit::vm_only!();
    let h = hierarchy();
    let (_g, cg) = group(&h, Resources::new().cpu_max(10_000, 50_000).cpu_weight(100));
    let mut child = gated_sh("while :; do :; done");
    cg.add_process(child.id()).unwrap();
    release(&mut child);
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(2000));
    let cpu = cg.stats().unwrap().cpu.unwrap();
    let wall = start.elapsed();
    cg.kill().unwrap();
    child.wait().unwrap();
    assert!(cpu.nr_periods > 0, "{cpu:?}");
    assert!(cpu.nr_throttled > 0, "{cpu:?}");
    assert!(cpu.throttled_usec > 0, "{cpu:?}");
    // 20% of one CPU, plus slack for the period in flight.
    let wall_us = wall.as_micros() as u64;
    assert!(
        cpu.usage_usec < wall_us * 35 / 100,
        "usage {} µs over {} µs wall",
        cpu.usage_usec,
        wall_us
    );
}

#[test]
fn pids_max_makes_fork_fail_with_eagain() {
    berth_testkit::vm_only!();
    let h = hierarchy();
    let (_g, cg) = group(&h, Resources::new().pids_max(Limit::Value(3)));
    let mut child = helper("fork");
    cg.add_process(child.id()).unwrap();
    release(&mut child);
    let (st, out, err) = output(child);
    assert!(st.success(), "{st:?} {out} {err}");
    let ok = out.lines().filter(|l| *l == "fork-ok").count();
    let failed: Vec<_> = out
        .lines()
        .filter(|l| l.starts_with("fork-failed"))
        .collect();
    // The helper is 1 task (the test harness thread may be a 2nd): at most 2 forks succeed.
    assert!(ok <= 2, "{out}");
    assert!(!failed.is_empty(), "{out}");
    assert!(
        failed
            .iter()
            .all(|l| *l == format!("fork-failed errno={}", libc::EAGAIN)),
        "{out}"
    );
    let p = cg.stats().unwrap().pids.unwrap();
    assert!(p.max_events >= failed.len() as u64, "{p:?}");
    if let Some(peak) = p.peak {
        assert!(peak <= 3, "{p:?}");
    }
}

/// Seconds a direct 1 MiB write to the scratch disk takes from inside `cg`.
fn timed_direct_write(cg: &Cgroup, dev: &str) -> f64 {
    let mut child = gated_sh(&format!(
        "exec dd if=/dev/zero of={dev} bs=64k count=16 oflag=direct conv=notrunc status=none"
    ));
    cg.add_process(child.id()).unwrap();
    let start = Instant::now();
    release(&mut child);
    let (st, _, err) = output(child);
    assert!(st.success(), "dd failed: {err}");
    start.elapsed().as_secs_f64()
}

fn dev_numbers(dev: &str) -> (u32, u32) {
    let name = Path::new(dev).file_name().unwrap().to_str().unwrap();
    let t = std::fs::read_to_string(format!("/sys/class/block/{name}/dev")).unwrap();
    let (a, b) = t.trim().split_once(':').unwrap();
    (a.parse().unwrap(), b.parse().unwrap())
}

#[test]
fn io_max_slows_direct_writes() {
    berth_testkit::vm_only!();
    let dev = std::env::var(berth_testkit::VM_SCRATCH_ENV).expect("scratch disk");
    let (major, minor) = dev_numbers(&dev);
    let h = hierarchy();
    let (_g1, free) = group(&h, Resources::new().io_weight(100));
    let (_g2, slow) = group(
        &h,
        Resources::new().io_max(IoMax {
            major,
            minor,
            wbps: Some(256 << 10),
            ..Default::default()
        }),
    );
    assert!(slow
        .read_file("io.max")
        .unwrap()
        .contains(&format!("{major}:{minor} rbps=max wbps=262144")));
    let t_free = timed_direct_write(&free, &dev);
    let t_slow = timed_direct_write(&slow, &dev);
    // 1 MiB at 256 KiB/s: about 4 s (the first slice may pass at once).
    assert!(
        t_slow > 2.0,
        "throttled write took only {t_slow:.2}s (free {t_free:.2}s)"
    );
    assert!(
        t_slow > t_free * 2.0,
        "throttled {t_slow:.2}s vs free {t_free:.2}s"
    );
    let io = slow.stats().unwrap().io.unwrap();
    let d = io
        .iter()
        .find(|d| d.major == major && d.minor == minor)
        .expect("io.stat line for the scratch disk");
    assert!(d.wbytes >= 1 << 20, "{d:?}");
}

#[test]
fn cpuset_pins_the_process() {
    berth_testkit::vm_only!();
    let h = hierarchy();
    let ncpu = std::thread::available_parallelism().unwrap().get();
    let cpu = if ncpu > 1 { "1" } else { "0" };
    let (_g, cg) = group(&h, Resources::new().cpuset_cpus(cpu).cpuset_mems("0"));
    let mut child = gated_sh("grep Cpus_allowed_list /proc/self/status");
    cg.add_process(child.id()).unwrap();
    release(&mut child);
    let (st, out, _) = output(child);
    assert!(st.success());
    assert_eq!(out.split_whitespace().nth(1), Some(cpu), "{out}");
    assert_eq!(cg.read_file("cpuset.cpus.effective").unwrap().trim(), cpu);
}

#[test]
fn freeze_thaw_kill_and_pressure_with_all_controllers() {
    berth_testkit::vm_only!();
    let h = hierarchy();
    let (_g, cg) = group(
        &h,
        Resources::new()
            .memory_high(Limit::Value(256 << 20))
            .pids_max(Limit::Value(64))
            .cpu_weight(50)
            .io_weight(100),
    );
    // A counter printed every 50 ms.
    let mut child = gated_sh("i=0; while :; do i=$((i+1)); echo $i; sleep 0.05; done");
    cg.add_process(child.id()).unwrap();
    release(&mut child);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    cg.freeze().unwrap();
    // Drain whatever was printed before the freeze took hold, then expect silence.
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let c2 = counter.clone();
    std::thread::spawn(move || {
        let mut l = String::new();
        while out.read_line(&mut l).map(|n| n > 0).unwrap_or(false) {
            c2.store(
                l.trim().parse().unwrap_or(0),
                std::sync::atomic::Ordering::SeqCst,
            );
            l.clear();
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let at_freeze = counter.load(std::sync::atomic::Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        counter.load(std::sync::atomic::Ordering::SeqCst),
        at_freeze,
        "advanced while frozen"
    );
    cg.thaw().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while counter.load(std::sync::atomic::Ordering::SeqCst) <= at_freeze + 2 {
        assert!(Instant::now() < deadline, "counter did not resume");
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = cg.stats().unwrap();
    assert!(s.cpu_pressure.is_some() && s.memory_pressure.is_some() && s.io_pressure.is_some());
    assert!(s.memory.as_ref().unwrap().current > 0);
    assert!(s.memory.as_ref().unwrap().stat.contains_key("anon"));
    assert!(s.pids.unwrap().current >= 1);
    cg.kill().unwrap();
    assert!(cg.procs().unwrap().is_empty());
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
}

#[test]
fn hugetlb_limit_is_enforced() {
    berth_testkit::vm_only!();
    let h = hierarchy();
    // Reserve two 2 MiB pages in the (throwaway) VM kernel.
    std::fs::write("/proc/sys/vm/nr_hugepages", "2").unwrap();
    if std::fs::read_to_string("/proc/sys/vm/nr_hugepages")
        .unwrap()
        .trim()
        == "0"
    {
        panic!("the VM could not reserve huge pages");
    }
    let run = |limit: Limit| {
        let (_g, cg) = group(&h, Resources::new().hugetlb("2MB", limit));
        let mut child = helper("hugetlb");
        cg.add_process(child.id()).unwrap();
        release(&mut child);
        output(child)
    };
    let (st, out, _) = run(Limit::Value(0));
    assert_eq!(st.signal(), Some(libc::SIGBUS), "{st:?} {out}");
    let (st, out, err) = run(Limit::Value(2 << 20));
    assert!(
        st.success() && out.contains("touched"),
        "{st:?} {out} {err}"
    );
}

#[test]
fn default_parent_enables_controllers_and_respects_no_internal_processes() {
    berth_testkit::vm_only!();
    let h = hierarchy();
    let name = unique_name("bvd");
    let _guard = CgroupDir::adopt(h.own_cgroup_dir().join("berth").join(&name));
    let cg = CgroupBuilder::new(format!("{name}/leaf"))
        .hierarchy(h.clone())
        .resources(Resources::new().memory_max(Limit::Value(32 << 20)))
        .create()
        .unwrap();
    assert_eq!(
        cg.path(),
        h.own_cgroup_dir().join("berth").join(&name).join("leaf")
    );
    let berth = h.own_cgroup_dir().join("berth");
    assert!(h
        .subtree_control_at(&berth)
        .unwrap()
        .contains(Controller::Memory));
    assert!(h
        .subtree_control_at(&berth.join(&name))
        .unwrap()
        .contains(Controller::Memory));
    assert!(cg.controllers().unwrap().contains(Controller::Memory));
    // A process in `leaf` forbids enabling domain controllers (memory, io)
    // for leaf's children; threaded ones (pids, cpu) are exempt.
    let mut child = gated_sh("sleep 30");
    cg.add_process(child.id()).unwrap();
    let e = CgroupBuilder::new("child")
        .hierarchy(h.clone())
        .parent(cg.path())
        .enable(Controller::Memory)
        .create()
        .unwrap_err();
    assert!(matches!(e, Error::InternalProcesses { .. }), "{e}");
    assert!(!cg.path().join("child").exists());
    release(&mut child);
    cg.remove().unwrap();
    child.wait().unwrap();
}

#[test]
fn cpu_weight_shares_one_cpu_by_weight() {
    berth_testkit::vm_only!();
    let h = hierarchy();
    // Both loops on CPU 0 in one parent; children weighted 100 and 400.
    let (_g, parent) = group(&h, Resources::new().cpuset_cpus("0").cpuset_mems("0"));
    parent.enable_for_children(Controller::Cpu).unwrap();
    parent.enable_for_children(Controller::Cpuset).unwrap();
    let make = |name: &str, w: u64| {
        CgroupBuilder::new(name)
            .hierarchy(h.clone())
            .parent(parent.path())
            .resources(Resources::new().cpu_weight(w))
            .create()
            .unwrap()
    };
    let light = make("light", 100);
    let heavy = make("heavy", 400);
    // cpu.idle (5.15+): the group is scheduled like SCHED_IDLE (weight ~3).
    let idle = CgroupBuilder::new("idle")
        .hierarchy(h.clone())
        .parent(parent.path())
        .resources(Resources::new().cpu_idle(true))
        .create()
        .unwrap();
    let mut a = gated_sh("while :; do :; done");
    let mut b = gated_sh("while :; do :; done");
    let mut c = gated_sh("while :; do :; done");
    light.add_process(a.id()).unwrap();
    heavy.add_process(b.id()).unwrap();
    idle.add_process(c.id()).unwrap();
    release(&mut a);
    release(&mut b);
    release(&mut c);
    std::thread::sleep(Duration::from_millis(3000));
    let ul = light.stats().unwrap().cpu.unwrap().usage_usec;
    let uh = heavy.stats().unwrap().cpu.unwrap().usage_usec;
    let ui = idle.stats().unwrap().cpu.unwrap().usage_usec;
    parent.kill().unwrap();
    a.wait().unwrap();
    b.wait().unwrap();
    c.wait().unwrap();
    assert!(ul > 0 && uh > 0, "light {ul} heavy {uh}");
    // Ideal ratios 4 and ~33; accept anything clearly weighted.
    assert!(uh as f64 > 2.0 * ul as f64, "light {ul} µs, heavy {uh} µs");
    assert!(ui * 3 < ul, "idle {ui} µs vs light {ul} µs");
    drop(idle);
    drop(light);
    drop(heavy);
}

#[test]
fn memory_high_throttles_without_killing_and_watcher_reports_it() {
    berth_testkit::vm_only!();
    let h = hierarchy();
    let (_g, cg) = group(
        &h,
        Resources::new()
            .memory_high(Limit::Value(8 << 20))
            .memory_swap_max(Limit::Value(0)),
    );
    let mut w = cg.watch().unwrap();
    // 12 MiB of anonymous memory in one read(2): over memory.high, no max.
    let mut child = gated_sh("exec dd if=/dev/zero of=/dev/null bs=12M count=1 status=none");
    cg.add_process(child.id()).unwrap();
    release(&mut child);
    let (st, _, err) = output(child);
    assert!(
        st.success(),
        "dd over memory.high (no max) must survive: {st:?} {err}"
    );
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen.iter().any(|e| matches!(e, Event::MemoryHigh { .. })) {
        assert!(
            Instant::now() < deadline,
            "no MemoryHigh event; saw {seen:?}"
        );
        seen.extend(w.wait(Some(Duration::from_secs(5))).unwrap());
    }
    assert!(
        !seen.iter().any(|e| matches!(e, Event::OomKill { .. })),
        "{seen:?}"
    );
    let ev = cg.stats().unwrap().memory.unwrap().events;
    assert!(ev.high >= 1 && ev.oom_kill == 0, "{ev:?}");
}
