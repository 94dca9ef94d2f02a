//! Criterion benchmarks of `berth-namespaces`: spawn + wait of the busybox
//! fixture's `/bin/true` in new mount, uts, ipc, pid, net and cgroup
//! namespaces, against plain fork+exec (`std::process::Command::status`) of
//! the same binary in the same run.
//!
//! The network namespace comes either from `clone3(CLONE_NEWNET)`
//! (`…+net+…`) or from berth's pool of namespaces made ahead of time by
//! background threads (`…+pooled-net+…`, `Spawner::netns_pool`). Rows
//! ending in `,bg-teardown` also hand the child's mount namespace to a
//! background thread once it is reaped (`Spawner::background_teardown`), so
//! `wait` does not wait for the kernel to unmount its tree.
//!
//! Target (issue 3): median of `berth/mnt+uts+ipc+pid+pooled-net+cgroup` at most
//! 1.5x `baseline/std-command`. Run: `cargo bench -p berth-benches --bench namespaces`
//! (add `-- --quick` for a short run). Needs root; skips otherwise.
//!
//! Criterion's estimates are of per-sample means (each sample times a batch
//! of iterations), so its "median" is a median of means. The spawns have a
//! long tail (the pool's threads and the kernel's `cleanup_net` compete with
//! the spawning thread for 2 CPUs), so after the criterion rows the bench
//! also times every spawn on its own, baseline and pooled in alternating
//! blocks, and prints the median, p90 and mean of each and the ratio of the
//! medians (`per-spawn:` lines).
use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;

use berth_namespaces::{Namespaces, NetnsPool, Spawner, Stdio};
use criterion::{criterion_group, criterion_main, Criterion};

fn true_binary() -> PathBuf {
    berth_testkit::busybox_rootfs().join("bin/true")
}

fn berth_spawn(bin: &PathBuf, ns: Namespaces, pool: Option<&NetnsPool>, bg_teardown: bool) {
    let mut sp = Spawner::new([bin]);
    sp.namespaces(ns)
        .stdin(Stdio::Null)
        .background_teardown(bg_teardown);
    if let Some(p) = pool {
        sp.netns_pool(p);
    }
    let st = sp.status().expect("spawn");
    assert!(st.success());
}

fn spawn_benches(c: &mut Criterion) {
    if !berth_testkit::is_root() {
        eprintln!("SKIPPED namespaces bench: creating namespaces needs root");
        return;
    }
    let bin = true_binary();
    let all6 = Namespaces::MOUNT
        | Namespaces::UTS
        | Namespaces::IPC
        | Namespaces::PID
        | Namespaces::NET
        | Namespaces::CGROUP;
    let mut g = c.benchmark_group("spawn_wait_true");
    g.bench_function("baseline/std-command", |b| {
        b.iter(|| {
            let st = Command::new(black_box(&bin))
                .stdin(std::process::Stdio::null())
                .status()
                .expect("spawn");
            assert!(st.success());
        })
    });
    g.bench_function("berth/no-namespaces", |b| {
        b.iter(|| berth_spawn(black_box(&bin), Namespaces::empty(), None, false))
    });
    g.bench_function("berth/mnt+uts+ipc+pid+cgroup", |b| {
        b.iter(|| berth_spawn(black_box(&bin), all6 - Namespaces::NET, None, false))
    });
    g.bench_function("berth/mnt+uts+ipc+pid+cgroup,bg-teardown", |b| {
        b.iter(|| berth_spawn(black_box(&bin), all6 - Namespaces::NET, None, true))
    });
    g.bench_function("berth/mnt+uts+ipc+pid+net+cgroup", |b| {
        b.iter(|| berth_spawn(black_box(&bin), all6, None, false))
    });
    let pool = NetnsPool::shared().expect("netns pool");
    pool.wait_ready(usize::MAX, std::time::Duration::from_secs(2));
    g.bench_function("berth/mnt+uts+ipc+pid+pooled-net+cgroup", |b| {
        b.iter(|| berth_spawn(black_box(&bin), all6, Some(&pool), false))
    });
    g.bench_function("berth/mnt+uts+ipc+pid+pooled-net+cgroup,bg-teardown", |b| {
        b.iter(|| berth_spawn(black_box(&bin), all6, Some(&pool), true))
    });
    g.finish();
    per_spawn(&bin, all6, &pool);
    let st = pool.stats();
    eprintln!(
        "netns pool: {} handed out, {} misses (spawns that made their own)",
        st.handed_out, st.misses
    );
}

/// Time single spawns: `rounds` × (a block of baseline spawns, a block of
/// pooled six-namespace spawns), so a change of load hits both alike, then
/// print the median, p90 and mean of each and the ratio of the medians.
fn per_spawn(bin: &PathBuf, all6: Namespaces, pool: &NetnsPool) {
    // `--list` and criterion's `--test` mode only enumerate or smoke-run.
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let (rounds, block) = if berth_benches::quick() {
        (3, 300)
    } else {
        (5, 1000)
    };
    let mut base = Vec::with_capacity(rounds * block);
    let mut pooled = Vec::with_capacity(rounds * block);
    for _ in 0..rounds {
        for _ in 0..block {
            let t = std::time::Instant::now();
            let st = Command::new(bin)
                .stdin(std::process::Stdio::null())
                .status()
                .expect("spawn");
            base.push(t.elapsed());
            assert!(st.success());
        }
        for _ in 0..block {
            let t = std::time::Instant::now();
            berth_spawn(bin, all6, Some(pool), false);
            pooled.push(t.elapsed());
        }
    }
    let stats = |v: &mut Vec<std::time::Duration>| {
        v.sort();
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        let mean = v.iter().map(|d| ms(*d)).sum::<f64>() / v.len() as f64;
        (ms(v[v.len() / 2]), ms(v[v.len() * 9 / 10]), mean)
    };
    let (bm, b90, bmean) = stats(&mut base);
    let (pm, p90, pmean) = stats(&mut pooled);
    println!(
        "per-spawn: {} spawns each, {rounds} rounds of blocks of {block}",
        base.len()
    );
    println!(
        "per-spawn: baseline/std-command median {bm:.3} ms, p90 {b90:.3} ms, mean {bmean:.3} ms"
    );
    println!(
        "per-spawn: berth/mnt+uts+ipc+pid+pooled-net+cgroup median {pm:.3} ms, p90 {p90:.3} ms, \
         mean {pmean:.3} ms"
    );
    println!(
        "per-spawn: ratio of medians {:.2}x (target 1.5x), of means {:.2}x",
        pm / bm,
        pmean / bmean
    );
}

criterion_group!(benches, spawn_benches);
criterion_main!(benches);
