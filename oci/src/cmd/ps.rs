//! `ps [--format table|json] ID [PS_ARGS...]`: the container's processes.

use std::process::Command;

use crate::cli::Args;
use crate::error::{Error, Result};
use crate::record::Ctx;

/// `ps` as runc 1.1: `ps(1)` with the given arguments (default `-ef`),
/// its header and the lines whose `PID` column is one of the container's
/// processes (its cgroup's `cgroup.procs`); `--format json` is the list
/// of those pids.
pub fn cmd(ctx: &Ctx, a: &Args) -> Result<i32> {
    let id = a.id()?;
    let rec = ctx.load(&id)?;
    let (_, st) = ctx.status(&id, &rec);
    let pids = st.as_ref().map(crate::cgroup::procs).unwrap_or_default();
    match a.get_any(&["format", "f"]).unwrap_or("table") {
        "json" => {
            println!("{}", serde_json::json!(pids));
            return Ok(0);
        }
        "table" => {}
        other => {
            return Err(Error::Usage(format!(
                "invalid format option {other:?}: table or json"
            )))
        }
    }
    let ps_args: Vec<&str> = match a.pos.get(1..) {
        Some(rest) if !rest.is_empty() => rest.iter().map(String::as_str).collect(),
        _ => vec!["-ef"],
    };
    let out = Command::new("ps")
        .args(&ps_args)
        .output()
        .map_err(Error::io(format!("run ps {ps_args:?}")))?;
    if !out.status.success() {
        return Err(Error::Config(format!(
            "ps {ps_args:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|c| c == "PID")
        .ok_or_else(|| Error::Config(format!("ps {ps_args:?}: no PID column in {header:?}")))?;
    println!("{header}");
    for l in lines {
        let pid = l
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{l}");
        }
    }
    Ok(0)
}
