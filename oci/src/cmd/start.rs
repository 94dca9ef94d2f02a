//! `start ID`: release a created container's workload (through its
//! holder's socket), then run the poststart hooks.

use std::io::{BufRead, BufReader, Write};

use crate::cli::Args;
use crate::error::{Error, Result};
use crate::hooks;
use crate::record::{Ctx, Status};
use crate::sock;

/// `start`, with runc's message for each state that cannot start.
pub fn cmd(ctx: &Ctx, a: &Args) -> Result<i32> {
    let id = a.id()?;
    let rec = ctx.load(&id)?;
    let (s, _) = ctx.status(&id, &rec);
    let why = match s {
        Status::Created => None,
        Status::Stopped => Some("cannot start a container that has stopped".to_string()),
        Status::Running => Some("cannot start an already running container".to_string()),
        _ => Some(format!("cannot start a container in the {s} state")),
    };
    if let Some(why) = why {
        return Err(Error::BadState {
            op: "start",
            id,
            why,
        });
    }
    let mut conn = sock::connect(&ctx.sock_path(&id), &format!("connect to holder of {id}"))?;
    conn.write_all(b"start\n")
        .map_err(Error::io(format!("send start to {id}")))?;
    let mut reply = String::new();
    let _ = BufReader::new(&conn).read_line(&mut reply);
    if reply.trim() != "ok" {
        return Err(Error::Holder(
            reply.trim().trim_start_matches("err ").to_string(),
        ));
    }
    if let Some(h) = ctx.snapshot_hooks(&id) {
        let st = hooks::poststart_state(ctx, &id, &rec);
        hooks::run_warn("poststart", h.poststart().as_ref(), &st);
    }
    Ok(0)
}
