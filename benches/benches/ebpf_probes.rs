//! Criterion benchmarks of `berth-ebpf-probes`:
//! - compile + load + attach + detach of a 20-rule device filter (target < 1 ms);
//! - a fork+exec loop of `/bin/true` inside a cgroup, without and with the
//!   exec probe attached to that cgroup, in the same run (target overhead < 5%).
//!
//! Needs root; skips with a message otherwise.
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use berth_ebpf_probes::{
    open_cgroup, DeviceAccess, DeviceFilter, DeviceKind, DeviceRule, ExecProbe,
};
use criterion::{criterion_group, criterion_main, Criterion};

fn cgroup2_root() -> Option<PathBuf> {
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| open_cgroup(p).is_ok())
}

fn twenty_rules() -> DeviceFilter {
    let mut f = DeviceFilter::new();
    f.rule(DeviceRule::deny(
        DeviceKind::All,
        None,
        None,
        DeviceAccess::all(),
    ));
    for i in 0..19u32 {
        let kind = if i % 3 == 0 {
            DeviceKind::Block
        } else {
            DeviceKind::Char
        };
        let minor = (i % 2 == 0).then_some(i);
        f.rule(DeviceRule::allow(
            kind,
            Some(1 + i),
            minor,
            DeviceAccess::READ | DeviceAccess::WRITE,
        ));
    }
    f
}

fn spawn_true_in(procs: &OwnedFd) {
    let fd = procs.as_raw_fd();
    let mut cmd = Command::new("/bin/true");
    // SAFETY: the hook only calls write(2), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let st = cmd.status().expect("spawn /bin/true");
    assert!(st.success());
}

fn benches(c: &mut Criterion) {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("ebpf_probes bench skipped: needs root (BPF program load and cgroup attach)");
        return;
    }
    let Some(root) = cgroup2_root() else {
        eprintln!("ebpf_probes bench skipped: no cgroup2 mount found");
        return;
    };
    let path = root.join(berth_testkit::unique_name("bbench"));
    std::fs::create_dir(&path).expect("create bench cgroup");
    let _guard = berth_testkit::CgroupDir::adopt(&path);
    let cg = open_cgroup(&path).expect("open bench cgroup");
    let procs: OwnedFd = std::fs::OpenOptions::new()
        .write(true)
        .open(path.join("cgroup.procs"))
        .expect("open cgroup.procs")
        .into();

    let filter = twenty_rules();
    let mut g = c.benchmark_group("ebpf_probes/device_filter_20_rules");
    g.bench_function("compile", |b| b.iter(|| filter.compile().unwrap()));
    g.bench_function("compile_load_attach_detach", |b| {
        b.iter(|| filter.attach(&cg).unwrap().detach().unwrap())
    });
    let mut h = filter.attach(&cg).unwrap();
    g.bench_function("replace", |b| b.iter(|| h.replace(&filter).unwrap()));
    h.detach().unwrap();
    g.finish();

    let mut g = c.benchmark_group("ebpf_probes/fork_exec_true_in_cgroup");
    g.sample_size(30);
    g.bench_function("baseline_no_probe", |b| b.iter(|| spawn_true_in(&procs)));
    let mut probe = ExecProbe::attach(&cg).expect("attach exec probe");
    let mut seen = 0usize;
    g.bench_function("exec_probe_attached", |b| {
        b.iter(|| {
            spawn_true_in(&procs);
            seen += probe.drain().len();
        })
    });
    drop(probe);
    // Again without the probe, to show the drift of a busy machine.
    g.bench_function("baseline_no_probe_again", |b| {
        b.iter(|| spawn_true_in(&procs))
    });
    g.finish();
    let _ = writeln!(std::io::stderr(), "exec probe reported {seen} execs");

    interleaved_overhead(&cg, &procs);
    filter_latency_distribution(&filter, &cg);
}

/// Criterion reports means over samples; on a loaded 2-core machine a few
/// preempted iterations (tens of ms) dominate them. This times single
/// compile+load+attach+detach operations and prints their distribution.
fn filter_latency_distribution(filter: &DeviceFilter, cg: &OwnedFd) {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 300 } else { 2000 };
    let mut v: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            filter.attach(cg).unwrap().detach().unwrap();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    v.sort_by(|a, b| a.total_cmp(b));
    let mean = v.iter().sum::<f64>() / n as f64;
    eprintln!(
        "20-rule device filter compile+load+attach+detach, {n} single operations: \
         median {:.0} µs, p10 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs, mean {mean:.0} µs",
        v[n / 2],
        v[n / 10],
        v[n * 9 / 10],
        v[n * 99 / 100]
    );
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// On a busy machine two criterion runs minutes apart drift by more than
/// the effect measured. This alternates short blocks with and without the
/// probe attached, compares the medians of the block means, and reads the
/// program's own run time from the kernel (`BPF_ENABLE_STATS`).
fn interleaved_overhead(cg: &OwnedFd, procs: &OwnedFd) {
    let quick = std::env::args().any(|a| a == "--quick");
    let (blocks, per_block) = if quick { (10, 10) } else { (40, 20) };
    let stats = berth_ebpf_probes::sys::enable_run_time_stats().ok();
    let mut without = Vec::new();
    let mut with = Vec::new();
    let (mut runs, mut run_ns, mut events) = (0u64, 0u64, 0usize);
    for b in 0..2 * blocks {
        let mut probe = (b % 2 == 1).then(|| ExecProbe::attach(cg).expect("attach exec probe"));
        let t = Instant::now();
        for _ in 0..per_block {
            spawn_true_in(procs);
        }
        let per_exec = t.elapsed().as_secs_f64() * 1e6 / per_block as f64;
        if let Some(p) = probe.as_mut() {
            events += p.drain().len();
            if let Ok((n, ns)) = p.program().run_stats() {
                runs += n;
                run_ns += ns;
            }
            with.push(per_exec);
        } else {
            without.push(per_exec);
        }
    }
    drop(stats);
    assert_eq!(
        events,
        blocks * per_block,
        "the exec probe must see exactly the execs made while attached"
    );
    let (a, b) = (median(&mut without), median(&mut with));
    eprintln!(
        "interleaved fork+exec of /bin/true in a cgroup ({blocks} blocks of {per_block} each way): \
         without probe {a:.0} µs, with exec probe {b:.0} µs, difference {:+.1}%; \
         the probe saw {events} execs",
        (b - a) / a * 100.0
    );
    if runs > 0 {
        let ns = run_ns as f64 / runs as f64;
        eprintln!(
            "exec probe program: {runs} runs, {ns:.0} ns per run = {:.3}% of a {a:.0} µs fork+exec",
            ns / (a * 1000.0) * 100.0
        );
    }
}

criterion_group!(ebpf, benches);
criterion_main!(ebpf);
