//! `berth-seq`: N containers one after another, all from this one process
//! through the `berth` library, the way a job runner or test harness that
//! links berth runs them (no container runtime process per container).
//!
//! ```text
//! berth-seq --rootfs DIR [-n N] [--read-only] [--name PREFIX]
//!           [--state-root DIR] -- CMD [ARG...]
//! ```
//!
//! Each container gets the same settings `berth-run --rootfs DIR
//! [--read-only] -- CMD` gives its one container (berth's defaults
//! otherwise: mount/uts/ipc/pid/net/cgroup namespaces with `lo` up, Docker's
//! capabilities and seccomp profile, the eBPF device filter, a cgroup under
//! berth's parent), and is spawned, waited for and destroyed before the next
//! one starts. From the second container on, the library's multi-container
//! policies apply (network namespaces from the process-wide pool, the mount
//! namespace's teardown off the wait). `benches/compare` times the whole
//! program next to shell loops of `crun run` and `berth-run`.
//!
//! Exits 0 when every container exited 0; otherwise prints what failed and
//! exits 1 (the container that failed is destroyed first). Root only.

use std::path::PathBuf;
use std::process::ExitCode;

use berth::{Container, Rootfs};

const USAGE: &str = "usage: berth-seq --rootfs DIR [-n N] [--read-only] [--name PREFIX] \
     [--state-root DIR] -- CMD [ARG...]";

struct Args {
    rootfs: PathBuf,
    n: usize,
    read_only: bool,
    prefix: String,
    state_root: Option<PathBuf>,
    command: Vec<String>,
}

fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut rootfs = None;
    let mut n = 100;
    let mut read_only = false;
    let mut prefix = format!("berth-seq-{}", std::process::id());
    let mut state_root = None;
    while let Some(k) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{k}: needs a value"));
        match k.as_str() {
            "--rootfs" => rootfs = Some(PathBuf::from(val()?)),
            "-n" => {
                let v = val()?;
                n = v
                    .parse()
                    .map_err(|_| format!("-n: {v:?} is not a number"))?;
            }
            "--name" => prefix = val()?,
            "--state-root" => state_root = Some(PathBuf::from(val()?)),
            "--read-only" => read_only = true,
            "--" => break,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let command: Vec<String> = it.collect();
    if command.is_empty() {
        return Err(format!("no command after --\n{USAGE}"));
    }
    Ok(Args {
        rootfs: rootfs.ok_or_else(|| format!("--rootfs is required\n{USAGE}"))?,
        n,
        read_only,
        prefix,
        state_root,
        command,
    })
}

fn run(a: &Args) -> Result<(), String> {
    for i in 0..a.n {
        let id = format!("{}-{i}", a.prefix);
        let mut b = Container::builder(id.as_str())
            .rootfs(Rootfs::dir(&a.rootfs))
            .read_only_root(a.read_only)
            .command(a.command.clone());
        if let Some(r) = &a.state_root {
            b = b.state_root(r);
        }
        let mut c = b
            .spawn()
            .map_err(|e| format!("container {id}: spawn: {e}"))?;
        // `c` is destroyed on drop if anything below fails.
        let status = c.wait().map_err(|e| format!("container {id}: wait: {e}"))?;
        c.destroy()
            .map_err(|e| format!("container {id}: destroy: {e}"))?;
        if !status.success() {
            return Err(format!("container {id}: {} failed: {status}", a.command[0]));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let a = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("berth-seq: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth-seq: {e}");
            ExitCode::FAILURE
        }
    }
}
