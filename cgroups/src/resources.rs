//! Typed, validated cgroup v2 resources (see the kernel's
//! `Documentation/admin-guide/cgroup-v2.rst` for every file named here).

use std::fmt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::hierarchy::{Controller, Controllers};

/// A limit that is either a number or the kernel's `max` (no limit).
///
/// ```
/// use berth_cgroups::Limit;
/// assert_eq!(Limit::Max.to_string(), "max"); // what memory.max, pids.max read when unlimited
/// assert_eq!(Limit::from(64u64).to_string(), "64");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[doc(alias("max"))]
pub enum Limit {
    /// No limit (`max`).
    Max,
    /// A value (bytes, pids, ...).
    Value(u64),
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Max => f.write_str("max"),
            Limit::Value(v) => write!(f, "{v}"),
        }
    }
}

impl From<u64> for Limit {
    fn from(v: u64) -> Self {
        Limit::Value(v)
    }
}

/// `cpu.max`: a bandwidth quota per period, both in microseconds.
///
/// ```
/// let r = berth_cgroups::Resources::new().cpu_max(50_000, 100_000); // half a CPU
/// let max = r.cpu.max.unwrap();
/// assert_eq!((max.quota_us, max.period_us), (Some(50_000), 100_000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[doc(alias("cpu.max"))]
pub struct CpuMax {
    /// Run time allowed per period (`None` = `max`, no limit); at least 1000 µs.
    pub quota_us: Option<u64>,
    /// The period, 1000..=1_000_000 µs (the kernel's default is 100_000).
    pub period_us: u64,
}

/// The `cpu` controller's settings.
///
/// ```
/// let r = berth_cgroups::Resources::new().cpu_weight(200).cpu_max(25_000, 100_000);
/// assert_eq!(r.cpu.weight, Some(200));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[doc(alias("cpu.max", "cpu.weight", "cpu.idle"))]
pub struct Cpu {
    /// `cpu.weight`, 1..=10000 (default 100).
    pub weight: Option<u64>,
    /// `cpu.max`.
    pub max: Option<CpuMax>,
    /// `cpu.idle` (kernel 5.15+): schedule the group as SCHED_IDLE.
    pub idle: Option<bool>,
}

/// The `cpuset` controller's settings (lists such as `0-3,6`).
///
/// ```
/// let r = berth_cgroups::Resources::new().cpuset_cpus("0-1").cpuset_mems("0");
/// assert_eq!(r.cpuset.cpus.as_deref(), Some("0-1"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[doc(alias("cpuset.cpus", "cpuset.mems"))]
pub struct Cpuset {
    /// `cpuset.cpus`.
    pub cpus: Option<String>,
    /// `cpuset.mems`.
    pub mems: Option<String>,
}

/// The `memory` controller's settings (bytes; the kernel rounds to pages).
///
/// ```
/// use berth_cgroups::{Limit, Resources};
/// let r = Resources::new().memory_max(Limit::Value(256 << 20)).memory_high(Limit::Value(200 << 20));
/// assert_eq!(r.memory.max, Some(Limit::Value(256 << 20)));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[doc(alias(
    "memory.max",
    "memory.high",
    "memory.low",
    "memory.min",
    "memory.swap.max"
))]
pub struct Memory {
    /// `memory.min`: hard protection.
    pub min: Option<Limit>,
    /// `memory.low`: best-effort protection.
    pub low: Option<Limit>,
    /// `memory.high`: throttle above this.
    pub high: Option<Limit>,
    /// `memory.max`: OOM-kill above this.
    pub max: Option<Limit>,
    /// `memory.swap.max` (swap only, not memory+swap as in cgroup v1).
    pub swap_max: Option<Limit>,
    /// `memory.oom.group` (4.19+): kill the whole group on OOM.
    pub oom_group: Option<bool>,
}

/// Per-device `io.max` limits (unset fields stay `max`).
///
/// ```
/// use berth_cgroups::{IoMax, Resources};
/// // 10 MB/s of writes to device 8:0
/// let r = Resources::new().io_max(IoMax { major: 8, minor: 0, wbps: Some(10 << 20), ..Default::default() });
/// assert_eq!(r.io.max.len(), 1);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[doc(alias("io.max"))]
pub struct IoMax {
    /// Device major number.
    pub major: u32,
    /// Device minor number.
    pub minor: u32,
    /// Read bytes per second.
    pub rbps: Option<u64>,
    /// Write bytes per second.
    pub wbps: Option<u64>,
    /// Read operations per second.
    pub riops: Option<u64>,
    /// Write operations per second.
    pub wiops: Option<u64>,
}

/// A per-device `io.weight` override.
///
/// ```
/// use berth_cgroups::{IoDeviceWeight, Resources};
/// let mut r = Resources::new().io_weight(100);
/// r.io.device_weights.push(IoDeviceWeight { major: 8, minor: 0, weight: 500 });
/// assert_eq!(r.io.weight, Some(100));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[doc(alias("io.weight"))]
pub struct IoDeviceWeight {
    /// Device major number.
    pub major: u32,
    /// Device minor number.
    pub minor: u32,
    /// Weight, 1..=10000.
    pub weight: u64,
}

/// The `io` controller's settings.
///
/// ```
/// let r = berth_cgroups::Resources::new().io_weight(50);
/// assert_eq!(r.io.weight, Some(50));
/// assert!(r.io.max.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[doc(alias("io.max", "io.weight"))]
pub struct Io {
    /// `io.weight` default, 1..=10000.
    pub weight: Option<u64>,
    /// Per-device `io.weight` lines.
    pub device_weights: Vec<IoDeviceWeight>,
    /// Per-device `io.max` lines.
    pub max: Vec<IoMax>,
}

/// A `hugetlb.<size>.max` limit.
///
/// ```
/// use berth_cgroups::{Limit, Resources};
/// let r = Resources::new().hugetlb("2MB", Limit::Value(0)); // hugetlb.2MB.max = 0
/// assert_eq!(r.hugetlb[0].page_size, "2MB");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[doc(alias("hugetlb"))]
pub struct HugetlbLimit {
    /// Page size as the kernel names it in the file: `2MB`, `1GB`, `64KB`.
    pub page_size: String,
    /// Limit in bytes.
    pub limit: Limit,
}

/// Everything this crate can set on a cgroup. Build it with the chained
/// setters or fill the public fields; [`Resources::settings`] validates it
/// (nothing is written when validation fails).
///
/// ```
/// use berth_cgroups::{Limit, Resources};
/// let r = Resources::new()
///     .cpu_weight(200)
///     .cpu_max(10_000, 100_000)
///     .memory_max(Limit::Value(64 << 20))
///     .pids_max(Limit::Value(64));
/// assert_eq!(r.settings().unwrap().len(), 4);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[doc(alias("memory.max", "pids.max", "cpu.max", "io.max", "cpu.weight"))]
pub struct Resources {
    /// `cpu.*`.
    pub cpu: Cpu,
    /// `cpuset.*`.
    pub cpuset: Cpuset,
    /// `memory.*`.
    pub memory: Memory,
    /// `io.*`.
    pub io: Io,
    /// `pids.max`.
    pub pids_max: Option<Limit>,
    /// `hugetlb.<size>.max`.
    pub hugetlb: Vec<HugetlbLimit>,
    /// Raw `file = value` pairs (the OCI `unified` map), written last. The
    /// controller is the part of the name before the first `.`.
    pub unified: Vec<(String, String)>,
}

/// One file to write: which controller it needs, the file name, the value.
///
/// ```
/// use berth_cgroups::{Limit, Resources};
/// let r = Resources::new().pids_max(Limit::Value(64));
/// let settings = r.settings().unwrap();
/// assert!(settings.iter().any(|s| s.file == "pids.max" && s.value == "64"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The controller that provides the file (`None` for core `cgroup.*` files).
    pub controller: Option<Controller>,
    /// The interface file, e.g. `memory.max`.
    pub file: String,
    /// The value written, e.g. `67108864`.
    pub value: String,
}

impl Resources {
    /// No settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set `cpu.weight` (1..=10000).
    ///
    /// ```
    /// let r = berth_cgroups::Resources::new().cpu_weight(50);
    /// ```
    #[doc(alias("cpu.weight"))]
    pub fn cpu_weight(mut self, w: u64) -> Self {
        self.cpu.weight = Some(w);
        self
    }

    /// Set `cpu.max` to `quota_us` per `period_us` (e.g. 10_000/100_000 = 10% of one CPU).
    ///
    /// ```
    /// let r = berth_cgroups::Resources::new().cpu_max(50_000, 100_000);
    /// ```
    #[doc(alias("cpu.max"))]
    pub fn cpu_max(mut self, quota_us: u64, period_us: u64) -> Self {
        self.cpu.max = Some(CpuMax {
            quota_us: Some(quota_us),
            period_us,
        });
        self
    }

    /// Set `cpu.idle` (kernel 5.15+).
    ///
    /// ```
    /// let r = berth_cgroups::Resources::new().cpu_idle(true);
    /// ```
    #[doc(alias("cpu.idle"))]
    pub fn cpu_idle(mut self, idle: bool) -> Self {
        self.cpu.idle = Some(idle);
        self
    }

    /// Set `cpuset.cpus` (a list such as `0-1,3`).
    ///
    /// ```
    /// let r = berth_cgroups::Resources::new().cpuset_cpus("0");
    /// ```
    #[doc(alias("cpuset.cpus"))]
    pub fn cpuset_cpus(mut self, cpus: impl Into<String>) -> Self {
        self.cpuset.cpus = Some(cpus.into());
        self
    }

    /// Set `cpuset.mems` (a list of NUMA nodes such as `0`).
    ///
    /// ```
    /// let r = berth_cgroups::Resources::new().cpuset_mems("0");
    /// ```
    #[doc(alias("cpuset.mems"))]
    pub fn cpuset_mems(mut self, mems: impl Into<String>) -> Self {
        self.cpuset.mems = Some(mems.into());
        self
    }

    /// Set `memory.max` (bytes).
    ///
    /// ```
    /// use berth_cgroups::{Limit, Resources};
    /// let r = Resources::new().memory_max(Limit::Value(256 << 20));
    /// ```
    #[doc(alias("memory.max"))]
    pub fn memory_max(mut self, l: Limit) -> Self {
        self.memory.max = Some(l);
        self
    }

    /// Set `memory.high` (bytes).
    ///
    /// ```
    /// use berth_cgroups::{Limit, Resources};
    /// let r = Resources::new().memory_high(Limit::Value(128 << 20));
    /// ```
    #[doc(alias("memory.high"))]
    pub fn memory_high(mut self, l: Limit) -> Self {
        self.memory.high = Some(l);
        self
    }

    /// Set `memory.low` (bytes).
    ///
    /// ```
    /// use berth_cgroups::{Limit, Resources};
    /// let r = Resources::new().memory_low(Limit::Value(16 << 20));
    /// ```
    #[doc(alias("memory.low"))]
    pub fn memory_low(mut self, l: Limit) -> Self {
        self.memory.low = Some(l);
        self
    }

    /// Set `memory.min` (bytes).
    ///
    /// ```
    /// use berth_cgroups::{Limit, Resources};
    /// let r = Resources::new().memory_min(Limit::Value(8 << 20));
    /// ```
    #[doc(alias("memory.min"))]
    pub fn memory_min(mut self, l: Limit) -> Self {
        self.memory.min = Some(l);
        self
    }

    /// Set `memory.swap.max` (bytes of swap).
    ///
    /// ```
    /// use berth_cgroups::{Limit, Resources};
    /// let r = Resources::new().memory_swap_max(Limit::Value(0));
    /// ```
    #[doc(alias("memory.swap.max"))]
    pub fn memory_swap_max(mut self, l: Limit) -> Self {
        self.memory.swap_max = Some(l);
        self
    }

    /// Set `memory.oom.group`.
    ///
    /// ```
    /// let r = berth_cgroups::Resources::new().memory_oom_group(true);
    /// ```
    #[doc(alias("memory.oom.group"))]
    pub fn memory_oom_group(mut self, on: bool) -> Self {
        self.memory.oom_group = Some(on);
        self
    }

    /// Set the default `io.weight` (1..=10000).
    ///
    /// ```
    /// let r = berth_cgroups::Resources::new().io_weight(100);
    /// ```
    #[doc(alias("io.weight"))]
    pub fn io_weight(mut self, w: u64) -> Self {
        self.io.weight = Some(w);
        self
    }

    /// Add an `io.max` line for one device.
    ///
    /// ```
    /// use berth_cgroups::{IoMax, Resources};
    /// let r = Resources::new().io_max(IoMax { major: 8, minor: 0, wbps: Some(1 << 20), ..Default::default() });
    /// ```
    #[doc(alias("io.max"))]
    pub fn io_max(mut self, m: IoMax) -> Self {
        self.io.max.push(m);
        self
    }

    /// Set `pids.max`.
    ///
    /// ```
    /// use berth_cgroups::{Limit, Resources};
    /// let r = Resources::new().pids_max(Limit::Value(100));
    /// ```
    #[doc(alias("pids.max"))]
    pub fn pids_max(mut self, l: Limit) -> Self {
        self.pids_max = Some(l);
        self
    }

    /// Add a `hugetlb.<page_size>.max` limit.
    ///
    /// ```
    /// use berth_cgroups::{Limit, Resources};
    /// let r = Resources::new().hugetlb("2MB", Limit::Value(0));
    /// ```
    pub fn hugetlb(mut self, page_size: impl Into<String>, limit: Limit) -> Self {
        self.hugetlb.push(HugetlbLimit {
            page_size: page_size.into(),
            limit,
        });
        self
    }

    /// Add a raw `file = value` setting (the OCI `unified` map).
    ///
    /// ```
    /// let r = berth_cgroups::Resources::new().unified("memory.reclaim", "0");
    /// ```
    pub fn unified(mut self, file: impl Into<String>, value: impl Into<String>) -> Self {
        self.unified.push((file.into(), value.into()));
        self
    }

    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == Resources::default()
    }

    /// The controllers these resources need.
    pub fn controllers(&self) -> Result<Controllers> {
        Ok(self
            .settings()?
            .iter()
            .filter_map(|s| s.controller)
            .collect())
    }

    /// Validate everything and return the files to write, in order. Nothing
    /// touches the kernel except checks that a device exists
    /// (`/sys/dev/block/MAJ:MIN`).
    pub fn settings(&self) -> Result<Vec<Setting>> {
        let mut out = Vec::new();
        // cpuset first: a later cpu/memory setting may depend on placement.
        self.cpuset_settings(&mut out)?;
        self.cpu_settings(&mut out)?;
        self.memory_settings(&mut out);
        self.io_settings(&mut out)?;
        if let Some(p) = self.pids_max {
            push(&mut out, Some(Controller::Pids), "pids.max", p.to_string());
        }
        for h in &self.hugetlb {
            check_page_size(&h.page_size)?;
            push(
                &mut out,
                Some(Controller::Hugetlb),
                &format!("hugetlb.{}.max", h.page_size),
                h.limit.to_string(),
            );
        }
        for (file, value) in &self.unified {
            let ctrl = check_unified_key(file)?;
            push(&mut out, ctrl, file, value.clone());
        }
        Ok(out)
    }

    /// `cpuset.cpus`, `cpuset.mems`.
    fn cpuset_settings(&self, out: &mut Vec<Setting>) -> Result<()> {
        if let Some(c) = &self.cpuset.cpus {
            parse_cpu_list("cpuset.cpus", c)?;
            push(
                out,
                Some(Controller::Cpuset),
                "cpuset.cpus",
                c.trim().to_string(),
            );
        }
        if let Some(m) = &self.cpuset.mems {
            parse_cpu_list("cpuset.mems", m)?;
            push(
                out,
                Some(Controller::Cpuset),
                "cpuset.mems",
                m.trim().to_string(),
            );
        }
        Ok(())
    }

    /// `cpu.weight`, `cpu.max`, `cpu.idle`.
    fn cpu_settings(&self, out: &mut Vec<Setting>) -> Result<()> {
        if let Some(w) = self.cpu.weight {
            check_weight("cpu.weight", w)?;
            push(out, Some(Controller::Cpu), "cpu.weight", w.to_string());
        }
        if let Some(m) = self.cpu.max {
            if !(1000..=1_000_000).contains(&m.period_us) {
                return Err(invalid(
                    "cpu.max",
                    m.period_us,
                    "period must be 1000..=1000000 µs",
                ));
            }
            let q = match m.quota_us {
                None => "max".to_string(),
                Some(q) if q < 1000 => {
                    return Err(invalid(
                        "cpu.max",
                        q,
                        "quota must be at least 1000 µs (and not zero)",
                    ))
                }
                Some(q) => q.to_string(),
            };
            push(
                out,
                Some(Controller::Cpu),
                "cpu.max",
                format!("{q} {}", m.period_us),
            );
        }
        if let Some(i) = self.cpu.idle {
            push(
                out,
                Some(Controller::Cpu),
                "cpu.idle",
                (i as u8).to_string(),
            );
        }
        Ok(())
    }

    /// `memory.{min,low,high,max,swap.max}`, `memory.oom.group`.
    fn memory_settings(&self, out: &mut Vec<Setting>) {
        let mem = [
            ("memory.min", self.memory.min),
            ("memory.low", self.memory.low),
            ("memory.high", self.memory.high),
            ("memory.max", self.memory.max),
            ("memory.swap.max", self.memory.swap_max),
        ];
        for (file, v) in mem {
            if let Some(v) = v {
                push(out, Some(Controller::Memory), file, v.to_string());
            }
        }
        if let Some(g) = self.memory.oom_group {
            push(
                out,
                Some(Controller::Memory),
                "memory.oom.group",
                (g as u8).to_string(),
            );
        }
    }

    /// `io.weight` (default, then per device), `io.max` per device.
    fn io_settings(&self, out: &mut Vec<Setting>) -> Result<()> {
        if let Some(w) = self.io.weight {
            check_weight("io.weight", w)?;
            push(
                out,
                Some(Controller::Io),
                "io.weight",
                format!("default {w}"),
            );
        }
        for d in &self.io.device_weights {
            check_weight("io.weight", d.weight)?;
            check_device(d.major, d.minor)?;
            push(
                out,
                Some(Controller::Io),
                "io.weight",
                format!("{}:{} {}", d.major, d.minor, d.weight),
            );
        }
        for m in &self.io.max {
            check_device(m.major, m.minor)?;
            let mut v = format!("{}:{}", m.major, m.minor);
            for (k, x) in [
                ("rbps", m.rbps),
                ("wbps", m.wbps),
                ("riops", m.riops),
                ("wiops", m.wiops),
            ] {
                match x {
                    Some(0) => {
                        return Err(invalid(
                            "io.max",
                            format!("{k}=0"),
                            "a rate must be > 0 (leave it unset for max)",
                        ))
                    }
                    Some(n) => v.push_str(&format!(" {k}={n}")),
                    None => v.push_str(&format!(" {k}=max")),
                }
            }
            push(out, Some(Controller::Io), "io.max", v);
        }
        Ok(())
    }
}

fn invalid(field: &'static str, value: impl fmt::Display, reason: &str) -> Error {
    Error::InvalidResource {
        field,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

fn check_weight(field: &'static str, w: u64) -> Result<()> {
    if !(1..=10000).contains(&w) {
        return Err(invalid(field, w, "weight must be in 1..=10000"));
    }
    Ok(())
}

/// The device must exist: `/sys/dev/block/MAJ:MIN` (sysfs-dev(5)).
fn check_device(major: u32, minor: u32) -> Result<()> {
    let p = format!("/sys/dev/block/{major}:{minor}");
    if Path::new(&p).exists() {
        Ok(())
    } else {
        Err(Error::NoSuchDevice { major, minor })
    }
}

fn check_page_size(s: &str) -> Result<()> {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &s[digits.len()..];
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || !matches!(unit, "KB" | "MB" | "GB")
    {
        return Err(invalid(
            "hugetlb",
            s,
            "page size must look like 64KB, 2MB or 1GB",
        ));
    }
    Ok(())
}

/// Check a raw interface file name; returns its controller.
fn check_unified_key(file: &str) -> Result<Option<Controller>> {
    let bad = |why: &str| invalid("unified", file, why);
    if file.is_empty() || file.contains('/') || file.contains('\0') || file.starts_with('.') {
        return Err(bad(
            "must be a plain interface file name such as memory.high",
        ));
    }
    let (prefix, _) = file
        .split_once('.')
        .ok_or_else(|| bad("must be <controller>.<file>"))?;
    if prefix == "cgroup" {
        if matches!(
            file,
            "cgroup.procs" | "cgroup.threads" | "cgroup.subtree_control" | "cgroup.kill"
        ) {
            return Err(bad(
                "membership and control files cannot be set as resources",
            ));
        }
        return Ok(None);
    }
    match Controller::from_name(prefix) {
        Some(c) => Ok(Some(c)),
        None => Err(bad("unknown controller prefix")),
    }
}

/// Parse a kernel cpu/node list (`0-3,5,7-8`, see `cpuset(7)` "List format")
/// into its members; `field` names it in errors.
pub fn parse_cpu_list(field: &'static str, s: &str) -> Result<Vec<u32>> {
    let t = s.trim();
    let mut out = Vec::new();
    if t.is_empty() {
        // An empty list is valid in the kernel (inherit from the parent).
        return Ok(out);
    }
    for part in t.split(',') {
        let bad = || invalid(field, s, "not a list like 0-3,5");
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let a: u32 = a.trim().parse().map_err(|_| bad())?;
        let b: u32 = b.trim().parse().map_err(|_| bad())?;
        if a > b || b > 65535 {
            return Err(bad());
        }
        out.extend(a..=b);
    }
    Ok(out)
}

/// Append the setting `file = value` of controller `c` to `out`.
fn push(out: &mut Vec<Setting>, c: Option<Controller>, file: &str, value: String) {
    out.push(Setting {
        controller: c,
        file: file.to_string(),
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_in_order_and_formatted() {
        let r = Resources::new()
            .cpuset_cpus("0-1")
            .cpu_weight(200)
            .cpu_max(10_000, 100_000)
            .memory_max(Limit::Value(1 << 20))
            .memory_swap_max(Limit::Max)
            .memory_oom_group(true)
            .pids_max(Limit::Value(10))
            .hugetlb("2MB", Limit::Value(0))
            .unified("memory.high", "max");
        let s = r.settings().unwrap();
        let files: Vec<_> = s
            .iter()
            .map(|s| (s.file.as_str(), s.value.as_str()))
            .collect();
        assert_eq!(
            files,
            vec![
                ("cpuset.cpus", "0-1"),
                ("cpu.weight", "200"),
                ("cpu.max", "10000 100000"),
                ("memory.max", "1048576"),
                ("memory.swap.max", "max"),
                ("memory.oom.group", "1"),
                ("pids.max", "10"),
                ("hugetlb.2MB.max", "0"),
                ("memory.high", "max"),
            ]
        );
        let c = r.controllers().unwrap();
        assert!(c.contains(Controller::Cpuset) && c.contains(Controller::Hugetlb));
        assert!(!c.contains(Controller::Io));
    }

    #[test]
    fn rejects_bad_values() {
        let bad = [
            Resources::new().cpu_weight(0),
            Resources::new().cpu_weight(10001),
            Resources::new().io_weight(0),
            Resources::new().cpu_max(0, 100_000),
            Resources::new().cpu_max(999, 100_000),
            Resources::new().cpu_max(10_000, 10),
            Resources::new().cpuset_cpus("0-"),
            Resources::new().cpuset_cpus("3-1"),
            Resources::new().cpuset_mems("a"),
            Resources::new().hugetlb("2XB", Limit::Max),
            Resources::new().unified("../escape", "1"),
            Resources::new().unified("cgroup.procs", "1"),
            Resources::new().unified("nosuch.file", "1"),
        ];
        for r in bad {
            let e = r.settings().unwrap_err();
            assert!(matches!(e, Error::InvalidResource { .. }), "{r:?}: {e}");
        }
    }

    #[test]
    fn rejects_missing_device_and_zero_rate() {
        let e = Resources::new()
            .io_max(IoMax {
                major: 4095,
                minor: 1_000_000,
                wbps: Some(1),
                ..Default::default()
            })
            .settings()
            .unwrap_err();
        assert!(matches!(e, Error::NoSuchDevice { major: 4095, .. }), "{e}");
        assert!(e.to_string().contains("4095:1000000"));
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("c", "0-2,5").unwrap(), vec![0, 1, 2, 5]);
        assert_eq!(parse_cpu_list("c", "7\n").unwrap(), vec![7]);
        assert!(parse_cpu_list("c", "").unwrap().is_empty());
        assert!(parse_cpu_list("c", "1,,2").is_err());
    }

    #[test]
    fn cpu_memory_and_io_settings_in_order() {
        let mut r = Resources::new()
            .io_weight(50)
            .memory_high(Limit::Value(3))
            .memory_min(Limit::Value(1))
            .memory_low(Limit::Value(2))
            .cpu_idle(true)
            .cpuset_mems("0");
        r.cpu.max = Some(CpuMax {
            quota_us: None,
            period_us: 100_000,
        });
        let files: Vec<_> = r
            .settings()
            .unwrap()
            .into_iter()
            .map(|s| (s.controller, s.file, s.value))
            .collect();
        let want = |c, f: &str, v: &str| (Some(c), f.to_string(), v.to_string());
        assert_eq!(
            files,
            vec![
                want(Controller::Cpuset, "cpuset.mems", "0"),
                want(Controller::Cpu, "cpu.max", "max 100000"),
                want(Controller::Cpu, "cpu.idle", "1"),
                want(Controller::Memory, "memory.min", "1"),
                want(Controller::Memory, "memory.low", "2"),
                want(Controller::Memory, "memory.high", "3"),
                want(Controller::Io, "io.weight", "default 50"),
            ]
        );
        // io.max per device: only a block device of this machine.
        let Some(dev) = std::fs::read_dir("/sys/dev/block")
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
        else {
            return;
        };
        let name = dev.file_name().into_string().unwrap();
        let (major, minor) = name.split_once(':').unwrap();
        let (major, minor) = (major.parse().unwrap(), minor.parse().unwrap());
        let m = IoMax {
            major,
            minor,
            rbps: Some(7),
            wiops: Some(9),
            ..Default::default()
        };
        let s = Resources::new().io_max(m.clone()).settings().unwrap();
        assert_eq!(s[0].file, "io.max");
        assert_eq!(
            s[0].value,
            format!("{name} rbps=7 wbps=max riops=max wiops=9")
        );
        let e = Resources::new()
            .io_max(IoMax { wbps: Some(0), ..m })
            .settings()
            .unwrap_err();
        assert!(e.to_string().contains("wbps=0"), "{e}");
    }
}
