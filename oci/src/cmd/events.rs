//! `events [--stats] [--interval D] ID`: runc 1.1's stats events, from the
//! container's own groups (no OOM events).

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::cgroup;
use crate::cli::Args;
use crate::error::{Error, Result};
use crate::record::{Ctx, Record};

/// `--interval`: `5s`, `500ms` or seconds; positive.
fn interval(a: &Args) -> Result<Duration> {
    match a.get("interval").unwrap_or("5s") {
        v if v.ends_with("ms") => v
            .trim_end_matches("ms")
            .parse()
            .ok()
            .map(Duration::from_millis),
        v => v
            .trim_end_matches('s')
            .parse()
            .ok()
            .map(Duration::from_secs_f64),
    }
    .filter(|d| !d.is_zero())
    .ok_or_else(|| Error::Usage("--interval: a positive duration expected (5s, 500ms)".to_string()))
}

/// `events` as runc 1.1: `--stats` prints one stats event; otherwise a
/// stats event every interval (default 5s) until the container stops. A
/// stopped container is "container not running" with `--stats`.
pub fn cmd(ctx: &Ctx, a: &Args) -> Result<i32> {
    let id = a.id()?;
    let rec = ctx.load(&id)?;
    let interval = interval(a)?;
    let once = a.bool("stats");
    loop {
        let (s, st) = ctx.status(&id, &rec);
        let st = match st {
            Some(st) if s.is_alive() => st,
            _ if !once => return Ok(0),
            _ => {
                return Err(Error::NotRunning {
                    what: format!("events of container {id}"),
                })
            }
        };
        println!("{}", stats(&id, &st, &rec)?);
        if once {
            return Ok(0);
        }
        std::thread::sleep(interval);
    }
}

/// `events --stats` data in runc 1.1's shape (`types.Stats`), from the
/// container's own groups only: cpu from its cgroup2 `cpu.stat`; memory
/// and pids from cgroup2 when it has the controller, else from the
/// container's v1 groups (`v1::join`); pids without either is the count
/// of its cgroup2 `cgroup.threads`. Never the runtime's or the host's.
fn stats(id: &str, st: &berth::State, rec: &Record) -> Result<Value> {
    let cg = cgroup::open(id, st)?;
    let s = cg.stats().map_err(Error::layer(format!("stats of {id}")))?;
    let v1 = rec.v1_groups();
    let v1_dir = |name: &str| {
        v1.iter()
            .find(|d| d.starts_with(Path::new("/sys/fs/cgroup").join(name)))
            .cloned()
    };
    let mut data = json!({"blkio": {}, "hugetlb": {}, "intel_rdt": {}, "network_interfaces": null});
    if let Some(c) = &s.cpu {
        data["cpu"] = json!({
            "usage": {"total": c.usage_usec * 1000, "kernel": c.system_usec * 1000, "user": c.user_usec * 1000},
            "throttling": {"periods": c.nr_periods, "throttled_periods": c.nr_throttled, "throttled_time": c.throttled_usec * 1000},
        });
    }
    if let Some(m) = &s.memory {
        let limit = cgroup::num(&cg.path().join("memory.max")).unwrap_or(u64::MAX);
        data["memory"] = json!({
            "usage": {"usage": m.current, "max": m.peak.unwrap_or(0), "limit": limit, "failcnt": m.events.max},
            "raw": m.stat,
        });
    } else if let Some(d) = v1_dir("memory") {
        data["memory"] = v1_memory(&d);
    }
    data["pids"] = if let Some(p) = &s.pids {
        json!({"current": p.current, "limit": cgroup::num(&cg.path().join("pids.max")).unwrap_or(0)})
    } else if let Some(d) = v1_dir("pids") {
        json!({"current": cgroup::num(&d.join("pids.current")).unwrap_or(0), "limit": cgroup::num(&d.join("pids.max")).unwrap_or(0)})
    } else {
        let n = cg.threads().map(|t| t.len()).unwrap_or(0);
        json!({"current": n, "limit": 0})
    };
    Ok(json!({"type": "stats", "id": id, "data": data}))
}

/// runc's memory stats from a v1 memory group `d`.
fn v1_memory(d: &Path) -> Value {
    let raw: serde_json::Map<String, Value> = std::fs::read_to_string(d.join("memory.stat"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(k, v)| Some((k.to_string(), json!(v.parse::<u64>().ok()?))))
        .collect();
    json!({
        "usage": {
            "usage": cgroup::num(&d.join("memory.usage_in_bytes")).unwrap_or(0),
            "max": cgroup::num(&d.join("memory.max_usage_in_bytes")).unwrap_or(0),
            "limit": cgroup::num(&d.join("memory.limit_in_bytes")).unwrap_or(u64::MAX),
            "failcnt": cgroup::num(&d.join("memory.failcnt")).unwrap_or(0),
        },
        "cache": raw.get("cache").cloned().unwrap_or(json!(0)),
        "raw": raw,
    })
}
