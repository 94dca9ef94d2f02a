//! `state ID`: the container's OCI state as JSON (runc's fields).

use crate::cli::Args;
use crate::error::{Error, Result};
use crate::record::Ctx;

/// `state`: pretty-printed, as runc prints it.
pub fn cmd(ctx: &Ctx, a: &Args) -> Result<i32> {
    let id = a.id()?;
    let rec = ctx.load(&id)?;
    let v = ctx.state(&id, &rec);
    let text = serde_json::to_string_pretty(&v).map_err(Error::json(format!("state of {id}")))?;
    println!("{text}");
    Ok(0)
}
