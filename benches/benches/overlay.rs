//! Criterion benchmarks of `berth-overlay`.
//!
//! - `overlay_mount/{api}/{n}`: mount + unmount of an overlay with n = 1, 16,
//!   128 lower layers plus upper/work (`volatile`), through the new mount API
//!   (`lowerdir+`) and, as the baseline, classic `mount(2)`
//!   (`MountMethod::Legacy`); the mount alone and the unmount alone; and a
//!   read-only stack (16, 128). Target: 128 layers < 1 ms. Baseline
//!   `tmpfs mount+unmount`: the cheapest mount and unmount at the same place.
//! - `layer_import/{berth,gnu_tar}`: import of a gzip layer made from real
//!   files (copies of files under /usr/lib and /usr/share, generated once in a
//!   temp dir) into a fresh store with digest and diff_id verification, against
//!   GNU `tar -xzf` of the same file in the same run, both unpacking into
//!   tmpfs (`/dev/shm`) so disk writeback does not dominate. The full run uses a
//!   ~100 MB gzip layer; `--quick` uses a ~20 MB one to stay short.
//!
//! Needs root (mounts, owners); prints why and returns otherwise.
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_overlay::{Compression, ImportOptions, LayerStore, MountMethod, Overlay};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A temp dir removed on drop (the bench crate has no tempfile dependency).
struct Tmp(PathBuf);

impl Tmp {
    fn new(prefix: &str) -> Self {
        Self::new_in(&std::env::temp_dir(), prefix)
    }
    fn new_in(dir: &Path, prefix: &str) -> Self {
        let p = dir.join(berth_testkit::unique_name(prefix));
        fs::create_dir_all(&p).unwrap();
        Tmp(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn quick() -> bool {
    std::env::args().any(|a| a == "--quick")
}

fn mount_bench(c: &mut Criterion) {
    if !is_root() {
        eprintln!("overlay bench skipped: needs root to mount");
        return;
    }
    let tmp = Tmp::new("bbench-ov");
    let mut g = c.benchmark_group("overlay_mount");
    let counter = std::cell::Cell::new(0u64);
    for n in [1usize, 16, 128] {
        let base = tmp.path().join(format!("n{n}"));
        let layers: Vec<PathBuf> = (0..n)
            .map(|i| {
                let p = base.join(format!("layer-{i:04}"));
                fs::create_dir_all(&p).unwrap();
                fs::write(p.join(format!("f{i}")), b"x").unwrap();
                p
            })
            .collect();
        for d in ["upper", "merged"] {
            fs::create_dir_all(base.join(d)).unwrap();
        }
        let target = base.join("merged");
        // A writable overlay as a container gets it: lowers + upper + work,
        // `volatile` (no syncfs of the upper filesystem at unmount, which would
        // otherwise flush every dirty page of the disk). volatile leaves a
        // marker in the work dir, so each iteration gets a fresh work dir
        // (created outside the timed part).
        for (name, method) in [
            ("lowerdir+", MountMethod::Append),
            ("mount(2)", MountMethod::Legacy),
        ] {
            g.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter_batched(
                    || {
                        counter.set(counter.get() + 1);
                        let work = base.join(format!("w{}", counter.get()));
                        fs::create_dir(&work).unwrap();
                        Overlay::new()
                            .lowers(&layers)
                            .upper(base.join("upper"))
                            .work(work)
                            .volatile()
                            .method(method)
                    },
                    |ov| ov.mount(&target).unwrap().unmount().unwrap(),
                    BatchSize::PerIteration,
                )
            });
        }
        // The mount alone (unmount outside the timed part): unmount waits for
        // an RCU grace period, which dominates on a loaded machine.
        g.bench_with_input(BenchmarkId::new("lowerdir+ mount only", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut t = Duration::ZERO;
                for _ in 0..iters {
                    counter.set(counter.get() + 1);
                    let work = base.join(format!("w{}", counter.get()));
                    fs::create_dir(&work).unwrap();
                    let ov = Overlay::new()
                        .lowers(&layers)
                        .upper(base.join("upper"))
                        .work(work)
                        .volatile()
                        .method(MountMethod::Append);
                    let start = Instant::now();
                    let m = ov.mount(&target).unwrap();
                    t += start.elapsed();
                    m.unmount().unwrap();
                }
                t
            })
        });
        // The unmount alone (mount outside the timed part): `umount2(2)` waits
        // for two expedited RCU grace periods (namespace_unlock, then the
        // overlay's private layer clones in ovl_free_fs), whatever the layer count.
        g.bench_with_input(BenchmarkId::new("lowerdir+ unmount only", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut t = Duration::ZERO;
                for _ in 0..iters {
                    counter.set(counter.get() + 1);
                    let work = base.join(format!("w{}", counter.get()));
                    fs::create_dir(&work).unwrap();
                    let m = Overlay::new()
                        .lowers(&layers)
                        .upper(base.join("upper"))
                        .work(work)
                        .volatile()
                        .method(MountMethod::Append)
                        .mount(&target)
                        .unwrap();
                    let start = Instant::now();
                    m.unmount().unwrap();
                    t += start.elapsed();
                }
                t
            })
        });
        // Read-only stack of the same lowers (no upper, nothing to sync).
        if n > 1 {
            let ov = Overlay::new().lowers(&layers).method(MountMethod::Append);
            g.bench_with_input(BenchmarkId::new("lowerdir+ read-only", n), &n, |b, _| {
                b.iter(|| ov.mount(&target).unwrap().unmount().unwrap())
            });
        }
    }
    // Baseline: the cheapest mount there is (an empty tmpfs) mounted and
    // unmounted at the same place; its unmount waits for one expedited RCU
    // grace period, which shows what the machine's load does to that wait.
    let target = tmp.path().join("n1").join("merged");
    let ctarget = std::ffi::CString::new(target.as_os_str().as_encoded_bytes()).unwrap();
    g.bench_function("tmpfs mount+unmount (baseline)", |b| {
        b.iter(|| {
            // SAFETY: valid C strings; the mount is removed right away.
            unsafe {
                assert_eq!(
                    libc::mount(
                        c"tmpfs".as_ptr(),
                        ctarget.as_ptr(),
                        c"tmpfs".as_ptr(),
                        0,
                        std::ptr::null()
                    ),
                    0
                );
                assert_eq!(libc::umount2(ctarget.as_ptr(), 0), 0);
            }
        })
    });
    g.finish();
}

/// Copy regular files from /usr/lib and /usr/share into `dst` until `limit` bytes.
fn fill(dst: &Path, limit: u64) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![PathBuf::from("/usr/lib"), PathBuf::from("/usr/share")];
    let mut n = 0u64;
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        let mut entries: Vec<_> = rd.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                let Ok(md) = e.metadata() else { continue };
                if md.len() > 32 << 20 {
                    continue;
                }
                let sub = dst.join(format!("d{:03}", n % 200));
                fs::create_dir_all(&sub).unwrap();
                let name = format!("{n}-{}", e.file_name().to_string_lossy());
                if fs::copy(e.path(), sub.join(name)).is_ok() {
                    total += md.len();
                    n += 1;
                }
                if total >= limit {
                    return total;
                }
            }
        }
    }
    total
}

fn import_bench(c: &mut Criterion) {
    if !is_root() {
        eprintln!("layer import bench skipped: needs root (owners, devices)");
        return;
    }
    // Unpack into tmpfs when there is one: this machine's disk is shared and
    // writeback stalls would swamp the difference between the two tools.
    let shm = Path::new("/dev/shm");
    let tmp = if shm.is_dir() {
        Tmp::new_in(shm, "bbench-imp")
    } else {
        Tmp::new("bbench-imp")
    };
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    // /usr/lib + /usr/share files compress about 1.9:1 at gzip level 1:
    // ~190 MB of files give the ~100 MB gzip layer.
    let raw_target: u64 = if quick() { 60 << 20 } else { 190 << 20 };
    let raw = fill(&src, raw_target);
    let blob_path = tmp.path().join("layer.tar.gz");
    let blob = berth_overlay::diff(
        &src,
        std::io::BufWriter::new(fs::File::create(&blob_path).unwrap()),
        Compression::Gzip,
    )
    .unwrap();
    fs::remove_dir_all(&src).unwrap();
    eprintln!(
        "layer_import: {} MB of files → {:.1} MB gzip layer ({})",
        raw >> 20,
        blob.size as f64 / (1 << 20) as f64,
        blob.digest
    );
    let mut g = c.benchmark_group("layer_import");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(if quick() { 5 } else { 20 }));
    g.throughput(criterion::Throughput::Bytes(blob.size));
    let work = tmp.path().join("work");
    g.bench_function("berth", |b| {
        b.iter_custom(|iters| {
            let mut t = Duration::ZERO;
            for _ in 0..iters {
                let store = LayerStore::open(&work).unwrap();
                let opts = ImportOptions {
                    compression: Some(Compression::Gzip),
                    digest: Some(blob.digest.clone()),
                    diff_id: Some(blob.diff_id.clone()),
                    ..Default::default()
                };
                let f = fs::File::open(&blob_path).unwrap();
                let start = Instant::now();
                store.import(f, &opts).unwrap();
                t += start.elapsed();
                fs::remove_dir_all(&work).unwrap();
            }
            t
        })
    });
    g.bench_function("gnu_tar", |b| {
        b.iter_custom(|iters| {
            let mut t = Duration::ZERO;
            for _ in 0..iters {
                fs::create_dir(&work).unwrap();
                let start = Instant::now();
                let st = std::process::Command::new("tar")
                    .arg("-xzf")
                    .arg(&blob_path)
                    .arg("-C")
                    .arg(&work)
                    .status()
                    .unwrap();
                t += start.elapsed();
                assert!(st.success());
                fs::remove_dir_all(&work).unwrap();
            }
            t
        })
    });
    g.finish();
}

criterion_group!(benches, mount_bench, import_bench);
criterion_main!(benches);
