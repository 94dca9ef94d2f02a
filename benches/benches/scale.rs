//! Criterion benchmark of berth's spawn throughput with several spawning
//! threads in one process: each iteration is spawn → exit → destroy of
//! `/bin/true` in a full default container (overlay rootfs from the busybox
//! fixture imported with berth-overlay, six namespaces, `lo` up, Docker's
//! capabilities and seccomp profile, the eBPF device filter, its own
//! cgroup) on each of N threads at once, so criterion's throughput line is
//! containers per second. The baseline, in the same run, is fork+exec of the
//! same `true` from as many threads.
//!
//! The rest of the scale numbers (1000 containers alive, memory per
//! container, layers, ports, bridge size) come from the `berth-scale`
//! binary (`cargo run --release -p berth-benches --bin berth-scale`), since
//! a thousand live containers fit criterion's repeat-and-time model badly.
//!
//! `cargo bench -p berth-benches --bench scale` (add `-- --quick`, or set
//! `BERTH_BENCH_QUICK=1`, for a short run: 1 s per measurement). Needs root;
//! skips otherwise.
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// `iters` rounds of `job` on each of `threads` threads at once; the wall time.
fn on_threads(threads: usize, iters: u64, job: &(dyn Fn() + Sync)) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..iters {
                    job();
                }
            });
        }
    });
    start.elapsed()
}

fn benches(c: &mut Criterion) {
    if !berth_testkit::is_root() {
        eprintln!("SKIPPED scale bench: containers need root");
        return;
    }
    let scratch = berth_benches::Scratch::new("bbscale").expect("scratch dir");
    let state: PathBuf = scratch.path().join("state");
    std::fs::create_dir_all(&state).expect("state root");
    let rootfs = berth_benches::busybox_image_rootfs(scratch.path());
    let true_bin = berth_testkit::busybox_rootfs().join("bin/true");
    // Warm berth's per-process caches (seccomp program, device filter,
    // network namespace pool) before anything is timed.
    for _ in 0..2 {
        berth_benches::true_container(&rootfs, &state);
    }
    let mut g = c.benchmark_group("scale");
    if berth_benches::quick() {
        g.measurement_time(Duration::from_secs(1));
    } else {
        g.sample_size(10);
        g.measurement_time(Duration::from_secs(10));
    }
    for threads in [1usize, 2, 4, 8] {
        g.throughput(Throughput::Elements(threads as u64));
        g.bench_with_input(
            BenchmarkId::new("fork-exec-true", threads),
            &threads,
            |b, &t| {
                b.iter_custom(|iters| {
                    on_threads(t, iters, &|| {
                        let st = Command::new(&true_bin).status().expect("spawn true");
                        assert!(st.success());
                    })
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("berth-spawn-wait-destroy", threads),
            &threads,
            |b, &t| {
                b.iter_custom(|iters| {
                    on_threads(t, iters, &|| berth_benches::true_container(&rootfs, &state))
                })
            },
        );
    }
    g.finish();
    // Nothing of the bench is left: every container was destroyed.
    let left = std::fs::read_dir(&state).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "state directories left in {}", state.display());
}

criterion_group!(scale, benches);
criterion_main!(scale);
