//! `pause ID` and `resume ID`: freeze and thaw the container's cgroup
//! (`cgroup.freeze`, cgroup v2, Linux 5.2).

use crate::cli::Args;
use crate::error::{Error, Result};
use crate::record::{Ctx, Status};

/// `pause` (`pause` true) or `resume`, with runc's message classes
/// ("container not running" / "container not paused").
pub fn cmd(ctx: &Ctx, a: &Args, pause: bool) -> Result<i32> {
    let id = a.id()?;
    let rec = ctx.load(&id)?;
    let (s, st) = ctx.status(&id, &rec);
    let want = if pause {
        Status::Running
    } else {
        Status::Paused
    };
    let op = if pause { "pause" } else { "resume" };
    let st = match st {
        Some(st) if s == want => st,
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
