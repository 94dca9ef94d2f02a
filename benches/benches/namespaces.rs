//! Criterion benchmarks of `berth-namespaces`: spawn + wait of the busybox
//! fixture's `/bin/true` in new mount, uts, ipc, pid, net and cgroup
//! namespaces, against plain fork+exec (`std::process::Command::status`) of
//! the same binary in the same run.
//!
//! Target (issue 3): median of `berth/mnt+uts+ipc+pid+net+cgroup` at most
//! 1.5x `baseline/std-command`. Run: `cargo bench -p berth-benches --bench namespaces`
//! (add `-- --quick` for a short run). Needs root; skips otherwise.
use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;

use berth_namespaces::{Namespaces, Spawner, Stdio};
use criterion::{criterion_group, criterion_main, Criterion};

fn true_binary() -> PathBuf {
    berth_testkit::busybox_rootfs().join("bin/true")
}

fn berth_spawn(bin: &PathBuf, ns: Namespaces) {
    let st = Spawner::new([bin])
        .namespaces(ns)
        .stdin(Stdio::Null)
        .status()
        .expect("spawn");
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
        b.iter(|| berth_spawn(black_box(&bin), Namespaces::empty()))
    });
    g.bench_function("berth/mnt+uts+ipc+pid+cgroup", |b| {
        b.iter(|| berth_spawn(black_box(&bin), all6 - Namespaces::NET))
    });
    g.bench_function("berth/mnt+uts+ipc+pid+net+cgroup", |b| {
        b.iter(|| berth_spawn(black_box(&bin), all6))
    });
    g.finish();
}

criterion_group!(benches, spawn_benches);
criterion_main!(benches);
