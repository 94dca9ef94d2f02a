//! Exercise 2 of the lesson: cgroup v2 limits, and what they do to a load.
//!
//! With `berth-cgroups` the program makes one group per limit, moves a load
//! generator into it (`cgroup.procs`) and prints what the kernel measured:
//!
//! - `cpu.max` (25% by default) on a busy loop: the CPU share from
//!   `cpu.stat` `usage_usec` over wall time, and `nr_throttled`;
//! - `memory.max` (256 MB) on an allocator that touches twice that: the
//!   SIGKILL and `oom_kill` in `memory.events`;
//! - `io.max` (1 MB/s written) on a writer using `O_DIRECT` on the block
//!   device given by `--device` (or `$BERTH_VM_SCRATCH`) — its contents are
//!   overwritten! — bytes/s as the writer saw it and `io.stat` `wbytes`;
//! - `pids.max` (32) on a fork loop: the `fork` errno, `pids.events` `max`.
//!
//! It needs a cgroup2 hierarchy that offers the cpu, memory, io and pids
//! controllers to this process's cgroup; otherwise it says which ones are
//! missing (and where they are bound instead) and exits with status 2.
//! Run as root, e.g. in the project's VM:
//!
//! ```text
//! cargo run -p berth-examples --bin cgroup_limits -- --seconds 3
//! cargo run -p berth-examples --bin cgroup_limits -- --cpu 25 --memory-mb 256 \
//!     --io-bps 1048576 --device /dev/vdb --pids 32 --seconds 3
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_cgroups::{
    Cgroup, CgroupBuilder, Controller, Controllers, Hierarchy, IoMax, Limit, Resources,
};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// One `key value` line of a cgroup file such as `cpu.stat`.
fn field(cg: &Cgroup, file: &str, key: &str) -> u64 {
    let text = cg.read_file(file).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Start `self --load KIND ARGS` waiting on stdin, move it into `cg`, let it go.
fn start_load(cg: &Cgroup, args: &[String]) -> Res<Child> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("--load")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    cg.add_process(child.id())?;
    child.stdin.take().ok_or("no stdin")?.write_all(b"go")?; // dropped: EOF
    Ok(child)
}

// ---- the load generators, running inside the cgroups ----

fn load(kind: &str, arg: u64, secs: f64) -> Res<()> {
    std::io::stdin().read_exact(&mut [0u8; 2])?; // wait until moved into the cgroup
    let end = Instant::now() + Duration::from_secs_f64(secs);
    match kind {
        "cpu" => {
            let mut x = 0u64;
            while Instant::now() < end {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        }
        "memory" => {
            // Touch `arg` MiB one MiB at a time, reporting progress.
            let mut kept = Vec::new();
            for mib in 1..=arg {
                kept.push(vec![1u8; 1 << 20]);
                println!("{mib}");
            }
        }
        "io" => {
            let device = std::env::var("LOAD_DEVICE")?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_DIRECT)
                .open(&device)?;
            // O_DIRECT needs an aligned buffer: 64 KiB aligned to 4 KiB.
            let layout = std::alloc::Layout::from_size_align(64 << 10, 4096)?;
            // SAFETY: non-zero size; freed below; zeroed so it is initialised.
            let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
            if ptr.is_null() {
                return Err("out of memory".into());
            }
            // SAFETY: ptr is a live allocation of layout.size() bytes.
            let buf = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            let (start, mut written) = (Instant::now(), 0u64);
            let size = arg.max(64 << 10);
            while Instant::now() < end {
                if written + buf.len() as u64 > size {
                    std::io::Seek::rewind(&mut f)?;
                    written = 0;
                }
                f.write_all(buf)?;
                written += buf.len() as u64;
                println!("{} {}", buf.len(), start.elapsed().as_micros());
            }
            // SAFETY: allocated above with the same layout.
            unsafe { std::alloc::dealloc(ptr, layout) };
        }
        "fork" => {
            let mut children = Vec::new();
            loop {
                // SAFETY: this process is single-threaded; the child only
                // calls pause (async-signal-safe) until it is killed.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    loop {
                        // SAFETY: plain syscall.
                        unsafe { libc::pause() };
                    }
                }
                if pid < 0 {
                    let e = std::io::Error::last_os_error();
                    println!(
                        "fork failed after {} children: errno {} ({e})",
                        children.len(),
                        e.raw_os_error().unwrap_or(0)
                    );
                    break;
                }
                children.push(pid);
            }
            for pid in children {
                // SAFETY: our own children.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                }
            }
        }
        _ => return Err(format!("unknown load {kind}").into()),
    }
    Ok(())
}

// ---- the parent ----

struct Opts {
    cpu_percent: u64,
    memory_mb: u64,
    io_bps: u64,
    device: Option<String>,
    pids: u64,
    secs: f64,
}

fn parse_opts(args: &[String]) -> Res<Opts> {
    let get = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let num = |name: &str, default: u64| -> Res<u64> {
        Ok(get(name)
            .map(|v| v.parse())
            .transpose()
            .map_err(|e| format!("{name}: {e}"))?
            .unwrap_or(default))
    };
    Ok(Opts {
        cpu_percent: num("--cpu", 25)?,
        memory_mb: num("--memory-mb", 256)?,
        io_bps: num("--io-bps", 1 << 20)?,
        device: get("--device")
            .cloned()
            .or_else(|| std::env::var("BERTH_VM_SCRATCH").ok()),
        pids: num("--pids", 32)?,
        secs: get("--seconds")
            .map(|v| v.parse())
            .transpose()?
            .unwrap_or(3.0),
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if args.first().map(String::as_str) == Some("--load") {
        let n = |i: usize| args.get(i).and_then(|v| v.parse().ok()).unwrap_or(0);
        load(
            &args[1],
            n(2),
            args.get(3).and_then(|v| v.parse().ok()).unwrap_or(1.0),
        )
    } else {
        run(&args)
    };
    if let Err(e) = result {
        eprintln!("cgroup_limits: {e}");
        std::process::exit(1);
    }
}

fn run(args: &[String]) -> Res<()> {
    let o = parse_opts(args)?;
    let h = Hierarchy::discover()?;
    let own = h.own_cgroup_dir();
    let have = h.controllers_at(&own)?;
    println!(
        "cgroup2 at {}, this process in {}",
        h.mount_point().display(),
        own.display()
    );
    require_controllers(&h, &own, have);
    let secs = o.secs.to_string();
    cpu_limit(&o, &secs)?;
    memory_limit(&o, &secs)?;
    match &o.device {
        None => println!("io: skipped (no --device and no $BERTH_VM_SCRATCH)"),
        Some(dev) => io_limit(&o, dev, &secs)?,
    }
    pids_limit(&o, &secs)?;
    // The parent group made by the builder.
    let _ = std::fs::remove_dir(
        own.join("berth")
            .join(format!("limits-{}", std::process::id())),
    );
    Ok(())
}

/// Exit with status 2, saying where they are bound instead, unless the
/// cpu, memory, io and pids controllers are all offered to `own`.
fn require_controllers(h: &Hierarchy, own: &std::path::Path, have: Controllers) {
    let missing: Vec<Controller> = [
        Controller::Cpu,
        Controller::Memory,
        Controller::Io,
        Controller::Pids,
    ]
    .into_iter()
    .filter(|c| !have.contains(*c))
    .collect();
    if missing.is_empty() {
        return;
    }
    for c in &missing {
        println!(
            "missing controller {}: {}",
            c.name(),
            h.where_bound(*c, own)
        );
    }
    let names: Vec<&str> = missing.iter().map(|c| c.name()).collect();
    eprintln!(
        "cgroup_limits: controllers missing in {}: {}",
        own.display(),
        names.join(" ")
    );
    std::process::exit(2);
}

/// The group `limits-<pid>/<what>` with resources `r`.
fn group(what: &str, r: Resources) -> Result<Cgroup, berth_cgroups::Error> {
    CgroupBuilder::new(format!("limits-{}/{what}", std::process::id()))
        .resources(r)
        .create()
}

/// CPU: quota/period in cpu.max, and a busy loop.
fn cpu_limit(o: &Opts, secs: &str) -> Res<()> {
    let cg = group(
        "cpu",
        Resources::new().cpu_max(o.cpu_percent * 1000, 100_000),
    )?;
    println!("cpu.max = {}", cg.read_file("cpu.max")?.trim());
    let (t0, u0) = (Instant::now(), field(&cg, "cpu.stat", "usage_usec"));
    start_load(&cg, &["cpu".into(), "0".into(), secs.into()])?.wait()?;
    let wall = t0.elapsed().as_micros() as f64;
    let used = (field(&cg, "cpu.stat", "usage_usec") - u0) as f64;
    println!(
        "cpu: busy loop got {:.1}% of one CPU over {:.2} s (limit {}%), nr_throttled {}, throttled_usec {}",
        100.0 * used / wall,
        wall / 1e6,
        o.cpu_percent,
        field(&cg, "cpu.stat", "nr_throttled"),
        field(&cg, "cpu.stat", "throttled_usec")
    );
    cg.remove()?;
    Ok(())
}

/// Memory: memory.max, and the allocator wants twice as much.
fn memory_limit(o: &Opts, secs: &str) -> Res<()> {
    let cg = group(
        "memory",
        Resources::new().memory_max(Limit::Value(o.memory_mb << 20)),
    )?;
    println!("memory.max = {}", cg.read_file("memory.max")?.trim());
    let mut child = start_load(
        &cg,
        &["memory".into(), (2 * o.memory_mb).to_string(), secs.into()],
    )?;
    let touched = BufReader::new(child.stdout.take().ok_or("no stdout")?)
        .lines()
        .map_while(Result::ok)
        .last();
    let status = child.wait()?;
    println!(
        "memory: allocator ended with {status} after touching {} MiB (limit {} MiB); memory.events oom {} oom_kill {}",
        touched.unwrap_or_else(|| "0".into()),
        o.memory_mb,
        field(&cg, "memory.events", "oom"),
        field(&cg, "memory.events", "oom_kill")
    );
    cg.remove()?;
    Ok(())
}

/// I/O: io.max on the block device `dev`, O_DIRECT writes so the page
/// cache cannot absorb them.
fn io_limit(o: &Opts, dev: &str, secs: &str) -> Res<()> {
    let meta = std::fs::metadata(dev)?;
    if !meta.file_type().is_block_device() {
        return Err(format!("{dev} is not a block device").into());
    }
    let (major, minor) = (libc::major(meta.rdev()), libc::minor(meta.rdev()));
    let cg = group(
        "io",
        Resources::new().io_max(IoMax {
            major,
            minor,
            wbps: Some(o.io_bps),
            ..Default::default()
        }),
    )?;
    println!("io.max = {}", cg.read_file("io.max")?.trim());
    std::env::set_var("LOAD_DEVICE", dev);
    let size = (o.io_bps * 4).to_string();
    let mut child = start_load(&cg, &["io".into(), size, secs.into()])?;
    // The writer prints `BYTES MICROSECONDS-SINCE-START` per write.
    let (mut bytes, mut last_us) = (0u64, 0u64);
    for l in BufReader::new(child.stdout.take().ok_or("no stdout")?)
        .lines()
        .map_while(Result::ok)
    {
        let mut it = l.split(' ').filter_map(|v| v.parse::<u64>().ok());
        bytes += it.next().unwrap_or(0);
        last_us = it.next().unwrap_or(last_us);
    }
    let status = child.wait()?;
    let wbytes = io_stat_wbytes(&cg, major, minor)?;
    println!(
        "io: writer ({status}) wrote {bytes} bytes to {dev} in {:.2} s = {:.0} bytes/s (limit {} bytes/s); io.stat wbytes {wbytes}",
        last_us as f64 / 1e6,
        bytes as f64 / (last_us.max(1) as f64 / 1e6),
        o.io_bps
    );
    cg.remove()?;
    Ok(())
}

/// The `wbytes=` of device `major:minor` in `cg`'s `io.stat`.
fn io_stat_wbytes(cg: &Cgroup, major: u32, minor: u32) -> Res<u64> {
    Ok(cg
        .read_file("io.stat")?
        .lines()
        .filter(|l| l.starts_with(&format!("{major}:{minor} ")))
        .flat_map(|l| {
            l.split(' ')
                .filter_map(|kv| kv.strip_prefix("wbytes="))
                .map(|v| v.parse().unwrap_or(0))
                .collect::<Vec<u64>>()
        })
        .sum())
}

/// Pids: pids.max, and a fork loop.
fn pids_limit(o: &Opts, secs: &str) -> Res<()> {
    let cg = group("pids", Resources::new().pids_max(Limit::Value(o.pids)))?;
    println!("pids.max = {}", cg.read_file("pids.max")?.trim());
    let out = start_load(&cg, &["fork".into(), "0".into(), secs.into()])?.wait_with_output()?;
    print!("pids: {}", String::from_utf8_lossy(&out.stdout));
    println!("pids: pids.events max {}", field(&cg, "pids.events", "max"));
    cg.remove()?;
    Ok(())
}
