//! `pause ID` and `resume ID`: freeze and thaw the container's cgroup
//! (`cgroup.freeze`, cgroup v2, Linux 5.2).

use crate::cli::Args;
use crate::error::{Error, Result};
use crate::record::{Ctx, Status};

/// `pause` (`pause` true) or `resume`, with runc's message classes
/// ("container not running" / "container not paused"). As runc 1.1
/// (libcontainer's Pause accepts Running and Created), a created
/// container is paused too; resumed, it is created again.
pub fn cmd(ctx: &Ctx, a: &Args, pause: bool) -> Result<i32> {
    let id = a.id()?;
    let rec = ctx.load(&id)?;
    let (s, st) = ctx.status(&id, &rec);
    let (op, allowed, want) = if pause {
        (
            "pause",
            s == Status::Running || s == Status::Created,
            "running",
        )
    } else {
        ("resume", s == Status::Paused, "paused")
    };
    let st = match st {
        Some(st) if allowed => st,
        _ => {
            return Err(Error::BadState {
                op,
                id,
                why: format!("it is {s}: container not {want}"),
            })
        }
    };
    let cg = crate::cgroup::open(&id, &st)?;
    if pause {
        cg.freeze().map_err(Error::layer(format!("pause {id}")))?;
    } else {
        cg.thaw().map_err(Error::layer(format!("resume {id}")))?;
    }
    Ok(0)
}
