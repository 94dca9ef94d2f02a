//! Criterion benchmarks of `berth`: spawn → exit of the busybox fixture's
//! `true` in a full default container (mount, uts, ipc, pid, net and cgroup
//! namespaces; an overlay rootfs from the busybox layer imported with
//! berth-overlay; the standard filesystem; Docker's default capabilities and
//! seccomp profile; no_new_privs; the eBPF device filter; its own cgroup),
//! against plain fork+exec (`std::process::Command::status`) of the same
//! binary in the same run. Also `berth-run` as a whole process, and
//! `crun run` on the same rootfs when crun is installed.
//!
//! State directories live on a tmpfs (`/dev/shm`), as `/run` is on a
//! standard host; `berth/full-default-overlay-state-on-disk` puts them in
//! `/run`, which on the shared development VM is the ext4 root mounted with
//! `discard` (every file and directory removed there costs a TRIM).
//!
//! Target (issue 9): under 3 ms median in-process. Run:
//! `cargo bench -p berth-benches --bench container` (add `-- --quick`).
//! Needs root; skips otherwise.
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;

use criterion::{criterion_group, criterion_main, Criterion};

fn berth_run_binary() -> Option<PathBuf> {
    // target/<profile>/deps/container-xxx → target/<profile>/berth-run
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("berth-run");
    p.exists().then_some(p)
}

fn crun_bundle(dir: &Path) -> Option<PathBuf> {
    if !Command::new("crun")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return None;
    }
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(&bundle).ok()?;
    let out = Command::new("crun")
        .arg("spec")
        .current_dir(&bundle)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let cfg = bundle.join("config.json");
    let text = std::fs::read_to_string(&cfg).ok()?;
    let text = text
        .replace("\"terminal\": true", "\"terminal\": false")
        .replace("\"sh\"", "\"/bin/true\"")
        .replace(
            "\"path\": \"rootfs\"",
            &format!(
                "\"path\": \"{}\"",
                berth_testkit::busybox_rootfs().display()
            ),
        );
    std::fs::write(&cfg, text).ok()?;
    Some(bundle)
}

/// Removes the bench's scratch directories.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn benches(c: &mut Criterion) {
    if !berth_testkit::is_root() {
        eprintln!("SKIPPED container bench: containers need root");
        return;
    }
    let tmp = PathBuf::from(format!("/tmp/berth-bench-{}", std::process::id()));
    let state = PathBuf::from(format!("/dev/shm/berth-bench-{}", std::process::id()));
    let state_disk = PathBuf::from(format!("/run/berth-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("scratch dir");
    std::fs::create_dir_all(&state).expect("state root");
    std::fs::create_dir_all(&state_disk).expect("state root");
    let _cleanup = Cleanup(vec![tmp.clone(), state.clone(), state_disk.clone()]);
    let rootfs = berth_benches::busybox_image_rootfs(&tmp);
    let bin = berth_testkit::busybox_rootfs().join("bin/true");
    let mut g = c.benchmark_group("container");
    g.bench_function("baseline/std-command", |b| {
        b.iter(|| {
            let st = Command::new(black_box(&bin)).status().expect("spawn");
            assert!(st.success());
        })
    });
    g.bench_function("berth/full-default-overlay", |b| {
        b.iter(|| berth_benches::true_container(black_box(&rootfs), &state))
    });
    g.bench_function("berth/full-default-overlay-state-on-disk", |b| {
        b.iter(|| berth_benches::true_container(black_box(&rootfs), &state_disk))
    });
    if let Some(br) = berth_run_binary() {
        let r = berth_testkit::busybox_rootfs().display().to_string();
        g.bench_function("process/berth-run", |b| {
            b.iter(|| {
                let st = Command::new(&br)
                    .args(["--rootfs", &r, "--", "/bin/true"])
                    .status()
                    .expect("berth-run");
                assert!(st.success());
            })
        });
    } else {
        eprintln!("berth-run not built next to the bench (cargo build --release -p berth-examples); skipping process/berth-run");
    }
    if let Some(bundle) = crun_bundle(&tmp) {
        // crun refuses hybrid cgroup hosts; run it in a private mount
        // namespace with an empty tmpfs over the cgroup2 mount point.
        let script = format!(
            "mount --make-rprivate / && mount -t tmpfs none /sys/fs/cgroup/unified 2>/dev/null; \
             exec crun run -b {} bench-crun-$$",
            bundle.display()
        );
        let ok = Command::new("unshare")
            .args(["-m", "sh", "-c", &script])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            g.bench_function("process/crun-run", |b| {
                b.iter(|| {
                    let st = Command::new("unshare")
                        .args(["-m", "sh", "-c", &script])
                        .status()
                        .expect("crun");
                    assert!(st.success());
                })
            });
        } else {
            eprintln!("crun run failed on this host; skipping process/crun-run");
        }
    } else {
        eprintln!("crun not installed; skipping process/crun-run");
    }
    g.finish();
}

criterion_group!(container, benches);
criterion_main!(container);
