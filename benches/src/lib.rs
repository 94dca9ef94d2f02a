//! `berth-benches`: criterion benchmarks of berth's hot paths.
//!
//! The benchmarks live in `benches/`, one file per crate; `cargo bench -p
//! berth-benches` runs them all and `cargo bench -p berth-benches -- --quick`
//! runs them briefly (the CI smoke). The `berth-scale` binary
//! (`src/bin/scale.rs`) measures what criterion fits badly: a thousand
//! containers alive at once. This library target holds the helpers they
//! share: quick-mode detection, a scratch directory that removes itself, and
//! snapshots of the kernel objects and memory a run could leave behind.
#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use berth::{Container, Rootfs, Stdio};

/// An image rootfs for the container benches: an OCI layout made in `dir`
/// from the busybox fixture (one layer), imported into a layer store there.
/// Panics on failure (bench setup).
///
/// ```no_run
/// let dir = std::env::temp_dir().join("berth-bench-image");
/// let rootfs = berth_benches::busybox_image_rootfs(&dir);
/// ```
pub fn busybox_image_rootfs(dir: &Path) -> Rootfs {
    let layout = dir.join("layout");
    berth_overlay::ImageBuilder::new("busybox:latest")
        .layer_dir(berth_testkit::busybox_rootfs())
        .write(&layout)
        .expect("write image layout");
    let store = berth_overlay::LayerStore::open(dir.join("store")).expect("store");
    let l = berth_overlay::ImageLayout::open(&layout).expect("layout");
    Rootfs::image(&store, &l, "latest").expect("import image")
}

/// One full default container running `/bin/true` on `rootfs`, state under
/// `state`: spawn, wait (it must succeed), destroy. Ids are unique per
/// process. Panics on failure (a bench must not time a broken run).
///
/// ```no_run
/// # let rootfs = berth::Rootfs::host();
/// berth_benches::true_container(&rootfs, std::path::Path::new("/run/berth-bench"));
/// ```
pub fn true_container(rootfs: &Rootfs, state: &Path) {
    static N: AtomicU64 = AtomicU64::new(0);
    let id = format!(
        "bench-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let mut c = Container::builder(id)
        .rootfs(rootfs.clone())
        .state_root(state)
        .command(["/bin/true"])
        .stdin(Stdio::Null)
        .stdout(Stdio::Null)
        .stderr(Stdio::Null)
        .spawn()
        .expect("spawn");
    let st = c.wait().expect("wait");
    assert!(st.success(), "true exited with {st}");
    c.destroy().expect("destroy");
}

/// Is this a short run? True when the command line has `--quick` (what
/// `cargo bench -p berth-benches -- --quick` passes to every bench) or the
/// environment has `BERTH_BENCH_QUICK` set to anything but empty or `0`.
///
/// ```
/// let samples = if berth_benches::quick() { 3 } else { 20 };
/// assert!(samples > 0);
/// ```
pub fn quick() -> bool {
    std::env::args().any(|a| a == "--quick")
        || std::env::var("BERTH_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// A scratch directory, removed with everything in it on drop.
///
/// It is made under `/dev/shm` when that exists (tmpfs: berth's state and
/// IPAM files are written there without waiting for a disk journal, as under
/// a tmpfs `/run` on a usual system), else under the system temp directory.
#[derive(Debug)]
pub struct Scratch(PathBuf);

impl Scratch {
    /// A new, empty directory named `<prefix><pid>-<n>`.
    ///
    /// ```no_run
    /// let s = berth_benches::Scratch::new("bscale")?;
    /// assert!(s.path().is_dir());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new(prefix: &str) -> std::io::Result<Scratch> {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        for n in 0..1000 {
            let p = base.join(format!("{prefix}{}-{n}", std::process::id()));
            match std::fs::create_dir(&p) {
                Ok(()) => return Ok(Scratch(p)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            if e.kind() != std::io::ErrorKind::NotFound {
                eprintln!("berth-benches: removing {}: {e}", self.0.display());
            }
        }
    }
}

/// `/proc/meminfo` as KiB per field (`MemAvailable`, `Slab`, `SUnreclaim`,
/// `KernelStack`, `PageTables`, `Shmem`, `Percpu`, …). Machine-wide: every
/// other process's activity shows in it too. proc_meminfo(5).
///
/// ```
/// let m = berth_benches::meminfo();
/// assert!(m.get("MemTotal").copied().unwrap_or(0) > 0);
/// ```
pub fn meminfo() -> BTreeMap<String, i64> {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let kib = v.split_whitespace().next()?.parse().ok()?;
            Some((k.to_string(), kib))
        })
        .collect()
}

/// A field of `/proc/self/status` in KiB (`VmRSS`, `RssAnon`, …) or as a
/// plain number (`Threads`); 0 when absent. proc_pid_status(5).
///
/// ```
/// assert!(berth_benches::self_status("VmRSS") > 0);
/// ```
pub fn self_status(field: &str) -> i64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Number of distinct network namespaces in use by any process
/// (`/proc/<pid>/ns/net` inodes; a namespace held only by an fd or a bind
/// mount is not seen).
///
/// ```
/// assert!(berth_benches::netns_in_use() >= 1);
/// ```
pub fn netns_in_use() -> usize {
    let mut set = std::collections::BTreeSet::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for d in rd.flatten() {
            if let Ok(md) = std::fs::metadata(d.path().join("ns/net")) {
                set.insert(std::os::unix::fs::MetadataExt::ino(&md));
            }
        }
    }
    set.len()
}

/// This process's children over all its threads: `(processes, zombies)`.
///
/// ```
/// let (children, zombies) = berth_benches::children();
/// assert!(zombies <= children);
/// ```
pub fn children() -> (usize, usize) {
    let pids = berth_testkit::child_pids();
    let zombies = pids
        .iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(") ")
                        .and_then(|(_, r)| r.split_whitespace().next().map(|st| st == "Z"))
                })
                .unwrap_or(false)
        })
        .count();
    (pids.len(), zombies)
}

/// Entries of `dir` whose name starts with `prefix` (0 when `dir` is absent).
///
/// ```
/// use std::path::Path;
/// assert_eq!(berth_benches::count_prefixed(Path::new("/nonexistent"), "x"), 0);
/// ```
pub fn count_prefixed(dir: &Path, prefix: &str) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|d| d.file_name().to_string_lossy().starts_with(prefix))
                .count()
        })
        .unwrap_or(0)
}

/// Lines of `/proc/self/mountinfo` that contain `needle`.
///
/// ```
/// assert!(berth_benches::mounts_naming("/") > 0);
/// ```
pub fn mounts_naming(needle: &str) -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|s| s.lines().filter(|l| l.contains(needle)).count())
        .unwrap_or(0)
}

/// The median of `v` (sorts it; 0 when empty).
///
/// ```
/// assert_eq!(berth_benches::median(&mut [3.0, 1.0, 2.0]), 2.0);
/// ```
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(&mut []), 0.0);
        assert_eq!(median(&mut [5.0]), 5.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn meminfo_and_status_parse() {
        let m = meminfo();
        assert!(m["MemTotal"] > m["MemFree"]);
        assert!(self_status("Threads") >= 1);
        assert_eq!(self_status("NoSuchField"), 0);
    }

    #[test]
    fn scratch_is_removed_on_drop() {
        let s = Scratch::new("bbtest").unwrap();
        let p = s.path().to_path_buf();
        std::fs::write(p.join("f"), b"x").unwrap();
        drop(s);
        assert!(!p.exists());
    }
}
