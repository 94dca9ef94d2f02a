//! Criterion benchmarks of `berth-cgroups`:
//! - `create_apply_remove`: create one cgroup, apply cpu/memory/pids limits
//!   (those the hierarchy offers; the rest are skipped via
//!   `ignore_unavailable`), remove it. Baseline in the same run: a bare
//!   `mkdir` + `rmdir` of a cgroup directory with `std::fs`.
//! - `stats`: a full `Cgroup::stats()` read; `stats_reader`: the same through
//!   a `StatsReader` (files opened once, re-read with `pread`). Baseline:
//!   `std::fs::read_to_string` of `cpu.stat` alone.
//!
//! Needs root (prints why and returns otherwise). On a hybrid host the
//! cgroup2 mount lacks cpu/memory/pids, so there the apply step writes only
//! the core file `cgroup.max.depth`; run the binary in the VM runner
//! (`scripts/vm-test --exec <bench binary> --bench --quick`) for the full
//! apply (emulated CPU: absolute numbers there are 15-30x slower).
use std::hint::black_box;

use berth_cgroups::{CgroupBuilder, Controller, Hierarchy, Limit, Resources};
use criterion::{criterion_group, criterion_main, Criterion};

fn resources() -> Resources {
    Resources::new()
        .cpu_weight(200)
        .cpu_max(50_000, 100_000)
        .memory_max(Limit::Value(256 << 20))
        .memory_high(Limit::Value(192 << 20))
        .pids_max(Limit::Value(128))
        .unified("cgroup.max.depth", "4")
}

fn bench(c: &mut Criterion) {
    if !berth_testkit::is_root() {
        eprintln!("cgroups bench skipped: needs root to create cgroups");
        return;
    }
    let h = match Hierarchy::discover() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("cgroups bench skipped: {e}");
            return;
        }
    };
    let root = h.root_controllers().unwrap_or_default();
    let full = [Controller::Cpu, Controller::Memory, Controller::Pids]
        .iter()
        .all(|c| root.contains(*c));
    eprintln!(
        "cgroups bench: hierarchy {} offers [{}]; cpu/memory/pids limits {}",
        h.mount_point().display(),
        root,
        if full {
            "applied"
        } else {
            "unavailable here: skipped, only cgroup.max.depth written"
        }
    );
    let parent_name = berth_testkit::unique_name("bbench");
    let parent_path = h.mount_point().join(&parent_name);
    let _guard = berth_testkit::CgroupDir::adopt(&parent_path);
    let parent = CgroupBuilder::new(&parent_name)
        .hierarchy(h.clone())
        .parent(h.mount_point())
        .enable(Controller::Cpu)
        .enable(Controller::Memory)
        .enable(Controller::Pids)
        .ignore_unavailable(true)
        .create()
        .expect("create the bench parent cgroup");
    // Let children of the parent get the controllers.
    for c in [Controller::Cpu, Controller::Memory, Controller::Pids] {
        if root.contains(c) {
            parent.enable_for_children(c).expect("enable controller");
        }
    }

    let r = resources();
    let mut g = c.benchmark_group("cgroups");
    g.bench_function("create_apply_remove", |b| {
        b.iter(|| {
            let (cg, report) = CgroupBuilder::new("b")
                .hierarchy(h.clone())
                .parent(parent.path())
                .resources(r.clone())
                .ignore_unavailable(true)
                .create_with_report()
                .expect("create");
            black_box(&report);
            cg.remove().expect("remove");
        })
    });
    let bare = parent.path().join("bare");
    g.bench_function("baseline_mkdir_rmdir", |b| {
        b.iter(|| {
            std::fs::create_dir(&bare).expect("mkdir");
            std::fs::remove_dir(&bare).expect("rmdir");
        })
    });

    let cg = CgroupBuilder::new("stats")
        .hierarchy(h.clone())
        .parent(parent.path())
        .resources(r.clone())
        .ignore_unavailable(true)
        .create()
        .expect("create stats cgroup");
    g.bench_function("stats", |b| {
        b.iter(|| black_box(cg.stats().expect("stats")))
    });
    let mut reader = cg.stats_reader().expect("stats reader");
    g.bench_function("stats_reader", |b| {
        b.iter(|| black_box(reader.read().expect("stats")))
    });
    let cpu_stat = cg.path().join("cpu.stat");
    g.bench_function("baseline_read_cpu_stat", |b| {
        b.iter(|| black_box(std::fs::read_to_string(&cpu_stat).expect("read")))
    });
    g.finish();
    drop(cg);
    drop(parent);
}

criterion_group!(benches, bench);
criterion_main!(benches);
