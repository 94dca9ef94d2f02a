//! A job runner on berth as a library: 20 jobs, 4 at a time.
//!
//! Each job is a container with cpu, memory and pids limits (skipped, and
//! said so once, where the host's cgroup2 lacks the controllers:
//! `ignore_unavailable(true)` and [`berth::Container::applied`]), a
//! read-only root with a writable tmpfs `/tmp`, a 3 s timeout that kills
//! it, and its stdout and stderr captured
//! ([`berth::Container::wait_with_output`]). Four worker threads take jobs
//! from a shared counter; a container spawned from any thread lives as
//! long as this process, not the thread. Job 7 sleeps past its timeout and
//! every fifth job fails, to show both in the summary table:
//!
//! ```text
//! job  exit  duration  out  err  timed out
//!   0     0    0.02 s   16    0  no
//! ```
//!
//! Run as root with a root filesystem holding `/bin/sh` (a busybox tree,
//! say); its directory is never written:
//!
//! ```text
//! cargo run -p berth-examples --bin job_runner -- /path/to/rootfs
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use berth::{Container, Error, Limit, Mount, Resources, Rootfs};

const JOBS: usize = 20;
const WORKERS: usize = 4;

/// One line of the summary.
struct Row {
    job: usize,
    exit: Option<i32>,
    took: Duration,
    out: usize,
    err: usize,
    timed_out: bool,
}

/// The shell script of job `n`: writes to `/tmp`, prints, sometimes fails
/// or hangs.
fn script(n: usize) -> String {
    let hang = if n == 7 { "sleep 30;" } else { "" };
    let fail = if n % 5 == 4 {
        "echo job failed >&2; exit 3"
    } else {
        "exit 0"
    };
    format!("{hang} seq 1 {n} > /tmp/out; echo job {n} counted $(wc -l < /tmp/out); {fail}")
}

fn run(rootfs: &str, n: usize) -> Result<Row, Error> {
    let start = Instant::now();
    let c = Container::builder(format!("job-{}-{n}", std::process::id()))
        .rootfs(Rootfs::dir(rootfs))
        .read_only_root(true)
        .mount(Mount::tmpfs("/tmp").size(16 << 20))
        .resources(
            Resources::new()
                .cpu_max(50_000, 100_000)
                .memory_max(Limit::Value(64 << 20))
                .pids_max(Limit::Value(32)),
        )
        .ignore_unavailable(true)
        .timeout(Duration::from_secs(3))
        .command(["/bin/sh", "-c", &script(n)])
        .stdout(berth::Stdio::Piped)
        .stderr(berth::Stdio::Piped)
        .spawn()?;
    if n == 0 {
        let a = c.applied();
        println!("limits applied: {:?}", a.applied);
        for s in &a.skipped {
            println!("limit skipped: {} = {} ({})", s.file, s.value, s.reason);
        }
    }
    let (out, timed_out) = match c.wait_with_output() {
        Ok(out) => (out, false),
        Err(Error::Timeout { output, .. }) => (*output, true),
        Err(e) => return Err(e),
    };
    Ok(Row {
        job: n,
        exit: out.status.code(),
        took: start.elapsed(),
        out: out.stdout.len(),
        err: out.stderr.len(),
        timed_out,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rootfs = std::env::args()
        .nth(1)
        .ok_or("usage: job_runner ROOTFS (a directory with /bin/sh)")?;
    let next = AtomicUsize::new(0);
    // Each worker returns the rows of the jobs it ran (no shared lock).
    let mut rows: Vec<Row> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= JOBS {
                            return mine;
                        }
                        match run(&rootfs, n) {
                            Ok(row) => mine.push(row),
                            Err(e) => eprintln!("job {n}: {e}"),
                        }
                    }
                })
            })
            .collect();
        // A worker that panicked contributes no rows: the count below says so.
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    rows.sort_by_key(|r| r.job);
    println!("job  exit  duration  out  err  timed out");
    for r in &rows {
        let exit = r.exit.map_or("-".to_string(), |c| c.to_string());
        let t = r.took.as_secs_f64();
        let to = if r.timed_out { "yes" } else { "no" };
        println!(
            "{:>3}  {exit:>4}  {t:>6.2} s  {:>3}  {:>3}  {to}",
            r.job, r.out, r.err
        );
    }
    if rows.len() != JOBS {
        return Err(format!("{} of {JOBS} jobs could not run", JOBS - rows.len()).into());
    }
    Ok(())
}
