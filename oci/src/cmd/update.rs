//! `update [--resources FILE|-] [runc's limit flags] ID`: change a
//! container's cgroup limits (podman `update`).

use std::io::Read;

use serde_json::{json, Value};

use crate::cli::Args;
use crate::error::{Error, Result};
use crate::record::{Ctx, Status};

/// runc 1.1's `update` flags: (flag, `linux.resources` group, key, takes
/// a size suffix).
const FLAGS: [(&str, &str, &str, bool); 11] = [
    ("memory", "memory", "limit", true),
    ("memory-reservation", "memory", "reservation", true),
    ("memory-swap", "memory", "swap", true),
    ("cpu-share", "cpu", "shares", false),
    ("cpu-quota", "cpu", "quota", false),
    ("cpu-period", "cpu", "period", false),
    ("cpu-rt-runtime", "cpu", "realtimeRuntime", false),
    ("cpu-rt-period", "cpu", "realtimePeriod", false),
    ("blkio-weight", "blockIO", "weight", false),
    ("pids-limit", "pids", "limit", false),
    ("kernel-memory", "memory", "kernel", true),
];

/// A number flag's value: sizes take k/m/g (and a `b`) suffix, a
/// negative number (`-1`: unlimited) is kept as is.
fn num(flag: &str, v: &str, sized: bool) -> Result<i64> {
    let t = v.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (n, mul) = match t.chars().last() {
        Some('k') if sized => (&t[..t.len() - 1], 1 << 10),
        Some('m') if sized => (&t[..t.len() - 1], 1 << 20),
        Some('g') if sized => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    n.parse::<i64>()
        .ok()
        .and_then(|n| if n < 0 { Some(n) } else { n.checked_mul(mul) })
        .ok_or_else(|| Error::Usage(format!("--{flag} {v:?}: a number expected")))
}

/// runc 1.1's `update` flags as a `linux.resources` document (only the
/// flags given).
fn from_flags(a: &Args) -> Result<Value> {
    let mut r = json!({});
    for (flag, group, key, sized) in FLAGS {
        if let Some(v) = a.get(flag) {
            r[group][key] = json!(num(flag, v, sized)?);
        }
    }
    for (flag, key) in [("cpuset-cpus", "cpus"), ("cpuset-mems", "mems")] {
        if let Some(v) = a.get(flag) {
            r["cpu"][key] = json!(v);
        }
    }
    Ok(r)
}

/// The `linux.resources` document of `--resources` (a file, or `-` for
/// stdin), or of the flags (`None`: no flag given, nothing to do).
fn requested(a: &Args) -> Result<Option<Value>> {
    let Some(src) = a.get_any(&["resources", "r"]) else {
        let r = from_flags(a)?;
        return Ok(r.as_object().is_some_and(|o| !o.is_empty()).then_some(r));
    };
    let text = if src == "-" {
        let mut t = String::new();
        std::io::stdin()
            .read_to_string(&mut t)
            .map_err(Error::io("read resources from stdin"))?;
        t
    } else {
        std::fs::read_to_string(src).map_err(Error::io(format!("read {src}")))?
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(Error::json("parse resources"))
}

/// `update`: apply the limits to the container's cgroup now.
pub fn cmd(ctx: &Ctx, a: &Args) -> Result<i32> {
    let id = a.id()?;
    let rec = ctx.load(&id)?;
    let (s, st) = ctx.status(&id, &rec);
    let Some(st) = st.filter(|_| s != Status::Stopped) else {
        return Err(Error::BadState {
            op: "update",
            id,
            why: format!("it is {s}"),
        });
    };
    let Some(r) = requested(a)? else {
        return Ok(0);
    };
    let r: oci_spec::runtime::LinuxResources =
        serde_json::from_value(r).map_err(Error::json("parse resources"))?;
    let res = berth::Resources::from_oci(&r)?;
    let cg = crate::cgroup::open(&id, &st)?;
    cg.apply(&res)
        .map_err(Error::layer(format!("update {id}")))?;
    Ok(0)
}
