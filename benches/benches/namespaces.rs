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
    let st = pool.stats();
    eprintln!(
        "netns pool: {} handed out, {} misses (spawns that made their own)",
        st.handed_out, st.misses
    );
    g.finish();
}

criterion_group!(benches, spawn_benches);
criterion_main!(benches);
