//! `kill [--all] ID [SIGNAL]`: signal the container's init (or, with
//! `--all`, every process in its cgroup).

use crate::cli::Args;
use crate::error::{Error, Result};
use crate::record::Ctx;
use crate::signal::Signal;

/// `kill ID [SIGNAL]` as runc 1.1: a missing container is "does not
/// exist" (checked before the signal is parsed); a stopped one is
/// "container not running" (exit 1), except with `--all`, which then
/// succeeds with nothing to signal; signal 0 probes.
pub fn cmd(ctx: &Ctx, a: &Args) -> Result<i32> {
    let id = a.id()?;
    let rec = ctx.load(&id)?;
    let sig: Signal = a.pos.get(1).map(String::as_str).unwrap_or("TERM").parse()?;
    let all = a.any(&["all", "a"]);
    let not_running = || Error::NotRunning {
        what: format!("cannot kill container {id}"),
    };
    let (s, st) = ctx.status(&id, &rec);
    let st = match st {
        Some(st) if s.is_alive() => st,
        _ if all => return Ok(0),
        _ => return Err(not_running()),
    };
    // Without a cgroup (rootless) --all signals the init, whose pid
    // namespace ends with it.
    if all && st.cgroup.is_some() {
        for p in crate::cgroup::procs(&st) {
            let _ = berth_sys::signal::kill_signo(p, sig.raw());
        }
        return Ok(0);
    }
    match st.signal(sig.raw()) {
        Ok(()) => Ok(0),
        // It exited between the status check and the signal.
        Err(_) if !st.is_running() => Err(not_running()),
        Err(e) => Err(Error::container(format!("kill {id}"))(e)),
    }
}
