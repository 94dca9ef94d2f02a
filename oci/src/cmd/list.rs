//! `list [--format table|json] [--quiet]`: the containers under the root.

use crate::cli::Args;
use crate::error::{Error, Result};
use crate::record::{Ctx, OciState};

/// The ids with a record under the root, sorted.
fn ids(ctx: &Ctx) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(ctx.meta_dir())
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.strip_suffix(".json")
                        .filter(|s| !s.starts_with('.'))
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

/// `list`: ids (`--quiet`), the states as a JSON array (`--format
/// json`), or a table.
pub fn cmd(ctx: &Ctx, a: &Args) -> Result<i32> {
    let rows: Vec<OciState> = ids(ctx)
        .iter()
        .filter_map(|id| Some(ctx.state(id, &ctx.load(id).ok()?)))
        .collect();
    if a.any(&["quiet", "q"]) {
        for r in &rows {
            println!("{}", r.id);
        }
    } else if a.get_any(&["format", "f"]) == Some("json") {
        let text = serde_json::to_string(&rows).map_err(Error::json("list"))?;
        println!("{text}");
    } else {
        println!("{:<20} {:>8} {:<10} BUNDLE", "ID", "PID", "STATUS");
        for r in &rows {
            println!(
                "{:<20} {:>8} {:<10} {}",
                r.id,
                r.pid,
                r.status.name(),
                r.bundle
            );
        }
    }
    Ok(0)
}
