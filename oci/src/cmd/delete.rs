//! `delete [--force] ID`: remove a stopped (or created) container, and
//! with `--force` a running or paused one; then its poststop hooks.

use std::time::{Duration, Instant};

use crate::cli::Args;
use crate::error::{Error, Result};
use crate::record::{Ctx, Status};
use crate::{hooks, v1};

/// `delete`: a missing container is an error without `--force` (berth
/// state left by an interrupted create is removed either way).
pub fn cmd(ctx: &Ctx, a: &Args) -> Result<i32> {
    let id = a.id()?;
    let force = a.any(&["force", "f"]);
    let rec = match ctx.load(&id) {
        Ok(r) => r,
        Err(e) => {
            ctx.remove_meta(&id);
            if ctx.root.join(&id).join(berth::STATE_FILE).exists() {
                // berth state without a record (interrupted create).
                let _ = berth::delete(Some(&ctx.root), &id);
                return Ok(0);
            }
            return if force { Ok(0) } else { Err(e) };
        }
    };
    let (s, st) = ctx.status(&id, &rec);
    if matches!(s, Status::Running | Status::Paused) && !force {
        // runc's words (engines match "not stopped").
        return Err(Error::NotStopped { id, status: s });
    }
    let mut stopped_state = ctx.state(&id, &rec);
    stopped_state.status = Status::Stopped;
    if rec.holder_alive() {
        // The holder's start time was just checked.
        let _ = berth_sys::signal::kill(rec.holder_pid, berth_sys::signal::Signal::SIGKILL);
        let t = Instant::now();
        while rec.holder_alive() && t.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    if let Some(st) = st {
        if s == Status::Paused {
            if let Some(c) = &st.cgroup {
                let _ = std::fs::write(c.join("cgroup.freeze"), "0");
            }
        }
        berth::delete(Some(&ctx.root), &id).map_err(Error::container(format!("delete {id}")))?;
        v1::remove(&rec.v1_groups());
    }
    let hooks = ctx.snapshot_hooks(&id);
    ctx.remove_meta(&id);
    if let Some(h) = hooks {
        hooks::run_warn("poststop", h.poststop().as_ref(), &stopped_state);
    }
    Ok(0)
}
