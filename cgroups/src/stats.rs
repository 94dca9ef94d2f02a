//! Parsers for cgroup v2 statistics files into typed structs. Unknown keys
//! (newer kernels add some) are kept in `other` maps or ignored, never an error.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

fn bad(what: &str, content: &str) -> Error {
    Error::Parse {
        what: what.to_string(),
        content: content.to_string(),
    }
}

/// Iterate a flat-keyed file (`key value` per line, see cgroup-v2.rst "Conventions").
fn flat_keyed<'a>(
    what: &'a str,
    text: &'a str,
) -> impl Iterator<Item = Result<(&'a str, u64)>> + 'a {
    text.lines().filter(|l| !l.trim().is_empty()).map(move |l| {
        let mut it = l.split_whitespace();
        match (it.next(), it.next(), it.next()) {
            (Some(k), Some(v), None) => v.parse::<u64>().map(|v| (k, v)).map_err(|_| bad(what, l)),
            _ => Err(bad(what, l)),
        }
    })
}

/// `cpu.stat` (usage is always there; throttling fields need the cpu controller).
///
/// ```
/// let s = berth_cgroups::CpuStat::parse("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n").unwrap(); // cpu.stat
/// assert_eq!(s.usage_usec, 1500);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[doc(alias("cpu.stat"))]
pub struct CpuStat {
    /// Total CPU time, µs.
    pub usage_usec: u64,
    /// User CPU time, µs.
    pub user_usec: u64,
    /// System CPU time, µs.
    pub system_usec: u64,
    /// Elapsed enforcement periods (`cpu.max`).
    pub nr_periods: u64,
    /// Periods in which the group was throttled.
    pub nr_throttled: u64,
    /// Total throttled time, µs.
    pub throttled_usec: u64,
    /// Other keys (e.g. `nice_usec`, `nr_bursts`, `burst_usec`), as found.
    pub other: BTreeMap<String, u64>,
}

impl CpuStat {
    /// Parse the text of `cpu.stat`.
    pub fn parse(text: &str) -> Result<Self> {
        let mut s = CpuStat::default();
        for kv in flat_keyed("cpu.stat", text) {
            let (k, v) = kv?;
            match k {
                "usage_usec" => s.usage_usec = v,
                "user_usec" => s.user_usec = v,
                "system_usec" => s.system_usec = v,
                "nr_periods" => s.nr_periods = v,
                "nr_throttled" => s.nr_throttled = v,
                "throttled_usec" => s.throttled_usec = v,
                _ => {
                    s.other.insert(k.to_string(), v);
                }
            }
        }
        Ok(s)
    }
}

/// `memory.events` counters (also the shape of `memory.events.local`).
///
/// ```
/// let e = berth_cgroups::MemoryEvents::parse("low 0\nhigh 2\nmax 5\noom 1\noom_kill 1\n").unwrap(); // memory.events
/// assert_eq!((e.max, e.oom_kill), (5, 1));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[doc(alias("memory.events"))]
pub struct MemoryEvents {
    /// Times usage went under `memory.low` protection pressure.
    pub low: u64,
    /// Times usage crossed `memory.high` (throttled).
    pub high: u64,
    /// Times usage hit `memory.max`.
    pub max: u64,
    /// Times the OOM killer was invoked for the group.
    pub oom: u64,
    /// Processes killed by the OOM killer.
    pub oom_kill: u64,
    /// Whole-group OOM kills (`memory.oom.group`, 5.18+).
    pub oom_group_kill: u64,
}

impl MemoryEvents {
    /// Parse the text of `memory.events`.
    pub fn parse(text: &str) -> Result<Self> {
        let mut e = MemoryEvents::default();
        for kv in flat_keyed("memory.events", text) {
            let (k, v) = kv?;
            match k {
                "low" => e.low = v,
                "high" => e.high = v,
                "max" => e.max = v,
                "oom" => e.oom = v,
                "oom_kill" => e.oom_kill = v,
                "oom_group_kill" => e.oom_group_kill = v,
                _ => {}
            }
        }
        Ok(e)
    }
}

/// Memory statistics: `memory.current`, `memory.peak` (5.19+), `memory.stat`, `memory.events`.
///
/// ```
/// let stat = berth_cgroups::MemoryStats::parse_stat("anon 4096\nfile 8192\n").unwrap(); // memory.stat
/// assert_eq!(stat["file"], 8192);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[doc(alias("memory.stat"))]
pub struct MemoryStats {
    /// Current usage, bytes.
    pub current: u64,
    /// Peak usage, bytes (`None` before 5.19).
    pub peak: Option<u64>,
    /// `memory.stat`, every key (`anon`, `file`, `kernel`, `shmem`, `pgfault`...).
    pub stat: BTreeMap<String, u64>,
    /// `memory.events`.
    pub events: MemoryEvents,
}

impl MemoryStats {
    /// Parse the text of `memory.stat` into a map.
    pub fn parse_stat(text: &str) -> Result<BTreeMap<String, u64>> {
        flat_keyed("memory.stat", text)
            .map(|kv| kv.map(|(k, v)| (k.to_string(), v)))
            .collect()
    }
}

/// One device's line of `io.stat`.
///
/// ```
/// let devs = berth_cgroups::parse_io_stat("8:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n").unwrap(); // io.stat
/// assert_eq!((devs[0].major, devs[0].rbytes), (8, 4096));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[doc(alias("io.stat"))]
pub struct IoDeviceStat {
    /// Device major.
    pub major: u32,
    /// Device minor.
    pub minor: u32,
    /// Bytes read.
    pub rbytes: u64,
    /// Bytes written.
    pub wbytes: u64,
    /// Read operations.
    pub rios: u64,
    /// Write operations.
    pub wios: u64,
    /// Bytes discarded.
    pub dbytes: u64,
    /// Discard operations.
    pub dios: u64,
    /// Other `key=value` fields (e.g. iocost's `cost.*`).
    pub other: BTreeMap<String, u64>,
}

/// Parse `io.stat` (nested keyed: `MAJ:MIN key=value ...`).
pub fn parse_io_stat(text: &str) -> Result<Vec<IoDeviceStat>> {
    let mut out = Vec::new();
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut it = l.split_whitespace();
        let dev = it.next().ok_or_else(|| bad("io.stat", l))?;
        let (ma, mi) = dev.split_once(':').ok_or_else(|| bad("io.stat", l))?;
        let mut d = IoDeviceStat {
            major: ma.parse().map_err(|_| bad("io.stat", l))?,
            minor: mi.parse().map_err(|_| bad("io.stat", l))?,
            ..Default::default()
        };
        for kv in it {
            let (k, v) = kv.split_once('=').ok_or_else(|| bad("io.stat", l))?;
            // Some iocost fields are decimals; keep only integer ones in `other`.
            let n = match v.parse::<u64>() {
                Ok(n) => n,
                Err(_) => continue,
            };
            match k {
                "rbytes" => d.rbytes = n,
                "wbytes" => d.wbytes = n,
                "rios" => d.rios = n,
                "wios" => d.wios = n,
                "dbytes" => d.dbytes = n,
                "dios" => d.dios = n,
                _ => {
                    d.other.insert(k.to_string(), n);
                }
            }
        }
        out.push(d);
    }
    Ok(out)
}

/// `pids.current`, `pids.peak` (6.1+) and `pids.events` `max`.
///
/// ```
/// // pids.current and pids.max are single-value files
/// assert_eq!(berth_cgroups::parse_single("pids.current", "12\n").unwrap(), Some(12));
/// assert_eq!(berth_cgroups::parse_single("pids.max", "max\n").unwrap(), None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[doc(alias("pids.current", "pids.max"))]
pub struct PidsStats {
    /// Current number of tasks.
    pub current: u64,
    /// Peak number of tasks (`None` when the kernel lacks `pids.peak`).
    pub peak: Option<u64>,
    /// Times a fork failed because of `pids.max` (`pids.events` `max`).
    pub max_events: u64,
}

/// Parse a single-value file (`memory.current`, `pids.current`...): a number or `max`.
pub fn parse_single(what: &str, text: &str) -> Result<Option<u64>> {
    let t = text.trim();
    if t == "max" {
        return Ok(None);
    }
    t.parse().map(Some).map_err(|_| bad(what, text))
}

/// One line of a PSI file.
///
/// ```
/// let p = berth_cgroups::Pressure::parse("memory.pressure", "some avg10=1.50 avg60=0.20 avg300=0.00 total=12345\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n").unwrap();
/// assert_eq!(p.some.total, 12345);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PressureLine {
    /// Share of time stalled over 10 s, percent.
    pub avg10: f64,
    /// Over 60 s, percent.
    pub avg60: f64,
    /// Over 300 s, percent.
    pub avg300: f64,
    /// Total stall time, µs.
    pub total: u64,
}

/// A PSI file (`cpu.pressure`, `memory.pressure`, `io.pressure`; kernel 4.20+, `CONFIG_PSI`).
///
/// ```
/// let p = berth_cgroups::Pressure::parse("cpu.pressure", "some avg10=0.00 avg60=0.00 avg300=0.00 total=7\n").unwrap();
/// assert!(p.full.is_none());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[doc(alias("PSI", "memory.pressure", "cpu.pressure", "io.pressure"))]
pub struct Pressure {
    /// Some tasks stalled.
    pub some: PressureLine,
    /// All non-idle tasks stalled (`cpu` got the `full` line in 5.13).
    pub full: Option<PressureLine>,
}

impl Pressure {
    /// Parse a PSI file.
    pub fn parse(what: &str, text: &str) -> Result<Self> {
        let mut p = Pressure::default();
        let mut saw_some = false;
        for l in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut it = l.split_whitespace();
            let kind = it.next().ok_or_else(|| bad(what, l))?;
            let mut line = PressureLine::default();
            for kv in it {
                let (k, v) = kv.split_once('=').ok_or_else(|| bad(what, l))?;
                match k {
                    "avg10" => line.avg10 = v.parse().map_err(|_| bad(what, l))?,
                    "avg60" => line.avg60 = v.parse().map_err(|_| bad(what, l))?,
                    "avg300" => line.avg300 = v.parse().map_err(|_| bad(what, l))?,
                    "total" => line.total = v.parse().map_err(|_| bad(what, l))?,
                    _ => {}
                }
            }
            match kind {
                "some" => {
                    p.some = line;
                    saw_some = true;
                }
                "full" => p.full = Some(line),
                _ => {}
            }
        }
        if !saw_some {
            return Err(bad(what, text));
        }
        Ok(p)
    }
}

/// Everything [`Cgroup::stats`](crate::Cgroup::stats) reads; a group whose
/// controller is not enabled has `None` for that part.
///
/// ```no_run
/// let cg = berth_cgroups::Cgroup::builder("job-5").create()?;
/// let s = cg.stats()?;
/// println!("memory {:?}\ncpu {:?}\npids {:?}", s.memory, s.cpu, s.pids);
/// # Ok::<(), berth_cgroups::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// `cpu.stat`.
    pub cpu: Option<CpuStat>,
    /// `memory.*`.
    pub memory: Option<MemoryStats>,
    /// `io.stat`.
    pub io: Option<Vec<IoDeviceStat>>,
    /// `pids.*`.
    pub pids: Option<PidsStats>,
    /// `cpu.pressure`.
    pub cpu_pressure: Option<Pressure>,
    /// `memory.pressure`.
    pub memory_pressure: Option<Pressure>,
    /// `io.pressure`.
    pub io_pressure: Option<Pressure>,
}

/// The state in `cgroup.events`.
///
/// ```no_run
/// let cg = berth_cgroups::Cgroup::builder("job-6").create()?;
/// let ev = cg.events()?; // cgroup.events
/// println!("{ev:?}");
/// # Ok::<(), berth_cgroups::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[doc(alias("cgroup.events"))]
pub struct CgroupEvents {
    /// Some process is in the group or a descendant.
    pub populated: bool,
    /// The group is frozen (5.2+).
    pub frozen: bool,
}

impl CgroupEvents {
    /// Parse `cgroup.events`.
    pub fn parse(text: &str) -> Result<Self> {
        let mut e = CgroupEvents::default();
        for kv in flat_keyed("cgroup.events", text) {
            let (k, v) = kv?;
            match k {
                "populated" => e.populated = v != 0,
                "frozen" => e.frozen = v != 0,
                _ => {}
            }
        }
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIX_CPU_ROOT: &str = include_str!("../tests/fixtures/host-root-cpu.stat");
    const FIX_CPU_PRESSURE: &str = include_str!("../tests/fixtures/host-cpu.pressure");
    const FIX_IO_PRESSURE: &str = include_str!("../tests/fixtures/host-io.pressure");
    const FIX_CPU_THROTTLED: &str = include_str!("../tests/fixtures/vm-cpu.stat");
    const FIX_MEM_STAT: &str = include_str!("../tests/fixtures/vm-memory.stat");
    const FIX_MEM_EVENTS: &str = include_str!("../tests/fixtures/vm-memory.events");
    const FIX_IO_STAT: &str = include_str!("../tests/fixtures/vm-io.stat");
    const FIX_CG_EVENTS: &str = include_str!("../tests/fixtures/vm-cgroup.events");
    const FIX_VM_CPU_PRESSURE: &str = include_str!("../tests/fixtures/vm-cpu.pressure");
    const FIX_VM_MEM_PRESSURE: &str = include_str!("../tests/fixtures/vm-memory.pressure");

    #[test]
    fn cpu_stat_host_root() {
        let s = CpuStat::parse(FIX_CPU_ROOT).unwrap();
        assert!(s.usage_usec > 0);
        assert!(s.user_usec > 0 && s.usage_usec.abs_diff(s.user_usec + s.system_usec) <= 1);
        assert!(s.other.contains_key("nice_usec"));
    }

    #[test]
    fn cpu_stat_with_throttling() {
        let s = CpuStat::parse(FIX_CPU_THROTTLED).unwrap();
        assert_eq!((s.nr_periods, s.nr_throttled), (186, 173));
        assert_eq!(s.throttled_usec, 7_017_841);
        assert!(s.other.contains_key("nr_bursts"));
        assert!(CpuStat::parse("usage_usec x\n").is_err());
    }

    #[test]
    fn pressure_files() {
        let p = Pressure::parse("cpu.pressure", FIX_CPU_PRESSURE).unwrap();
        assert!(p.full.is_some());
        assert!(p.some.avg10 >= 0.0 && p.some.total > 0);
        let vm = Pressure::parse("cpu.pressure", FIX_VM_CPU_PRESSURE).unwrap();
        assert_eq!(vm.some.avg10, 39.63);
        assert_eq!(vm.full.unwrap().total, 6_675_201);
        let mem = Pressure::parse("memory.pressure", FIX_VM_MEM_PRESSURE).unwrap();
        assert_eq!(mem.some.total, 275_241);
        let io = Pressure::parse("io.pressure", FIX_IO_PRESSURE).unwrap();
        assert!(io.full.unwrap().total <= io.some.total);
        let old = Pressure::parse(
            "cpu.pressure",
            "some avg10=1.50 avg60=0.00 avg300=0.00 total=12\n",
        )
        .unwrap();
        assert_eq!(old.some.avg10, 1.5);
        assert_eq!(old.full, None);
        assert!(Pressure::parse("x", "").is_err());
        assert!(Pressure::parse("x", "some avg10=abc\n").is_err());
    }

    #[test]
    fn memory_files() {
        let m = MemoryStats::parse_stat(FIX_MEM_STAT).unwrap();
        assert!(m.contains_key("anon") && m.contains_key("file") && m.contains_key("pgfault"));
        let e = MemoryEvents::parse(FIX_MEM_EVENTS).unwrap();
        assert_eq!((e.oom, e.oom_kill, e.max, e.high), (1, 1, 41, 0));
        assert_eq!(m["pgfault"], 627);
        assert_eq!(parse_single("memory.max", "max\n").unwrap(), None);
        assert_eq!(
            parse_single("memory.current", "4096\n").unwrap(),
            Some(4096)
        );
        assert!(parse_single("memory.current", "x").is_err());
    }

    #[test]
    fn io_stat() {
        let d = parse_io_stat(FIX_IO_STAT).unwrap();
        assert!(!d.is_empty());
        assert_eq!(
            (d[0].major, d[0].minor, d[0].wbytes, d[0].wios),
            (254, 0, 262_144, 4)
        );
        let d = parse_io_stat(
            "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=5 dios=6 cost.vrate=100.00 newkey=7\n",
        )
        .unwrap();
        assert_eq!((d[0].major, d[0].minor, d[0].rios, d[0].dios), (8, 0, 3, 6));
        assert_eq!(d[0].other.get("newkey"), Some(&7));
        assert!(parse_io_stat("garbage\n").is_err());
    }

    #[test]
    fn cgroup_events() {
        let e = CgroupEvents::parse(FIX_CG_EVENTS).unwrap();
        assert!(e.populated);
        assert!(
            !CgroupEvents::parse("populated 0\nfrozen 0\n")
                .unwrap()
                .frozen
        );
        assert!(
            CgroupEvents::parse("populated 0\nfrozen 1\n")
                .unwrap()
                .frozen
        );
    }
}
