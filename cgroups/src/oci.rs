//! Conversion from the OCI runtime spec's `LinuxResources` (oci-spec crate),
//! including cgroup v1-style values, as runc/crun do on cgroup v2.

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources, LinuxThrottleDevice};

use crate::error::{Error, Result};
use crate::resources::{CpuMax, HugetlbLimit, IoDeviceWeight, IoMax, Limit, Resources};
use crate::v1::{blkio_weight_to_io_weight, shares_to_weight};

fn bad(field: &'static str, value: impl ToString, reason: &str) -> Error {
    Error::InvalidResource {
        field,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

fn dev(field: &'static str, major: i64, minor: i64) -> Result<(u32, u32)> {
    match (u32::try_from(major), u32::try_from(minor)) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        _ => Err(bad(
            field,
            format!("{major}:{minor}"),
            "negative or too large device number",
        )),
    }
}

fn bytes_limit(field: &'static str, v: i64) -> Result<Limit> {
    match v {
        -1 => Ok(Limit::Max),
        v if v >= 0 => Ok(Limit::Value(v as u64)),
        v => Err(bad(field, v, "must be -1 (unlimited) or >= 0")),
    }
}

/// The v1 memory+swap total `swap` (with the memory `limit`) as cgroup v2's
/// `memory.swap.max` (swap alone).
fn swap_max(swap: i64, limit: Option<i64>) -> Result<Limit> {
    Ok(match (swap, limit) {
        (-1, _) => Limit::Max,
        (s, _) if s < 0 => return Err(bad("memory.swap", s, "must be -1 or >= 0")),
        (0, Some(0)) | (0, None) => Limit::Value(0),
        (s, Some(l)) if l >= 0 => {
            if s < l {
                return Err(bad(
                    "memory.swap",
                    s,
                    "memory+swap must not be below memory.limit",
                ));
            }
            Limit::Value((s - l) as u64)
        }
        (s, _) => {
            return Err(bad(
                "memory.swap",
                s,
                "needs a finite memory.limit to convert memory+swap to swap",
            ))
        }
    })
}

impl Resources {
    /// Convert the OCI `linux.resources` object. cgroup v1-only fields
    /// (`kernel`, `kernelTCP`, `swappiness`, `realtime*`, `leafWeight`,
    /// `devices`, `network`) are ignored: the device list belongs to the
    /// eBPF device filter, not to cgroupfs files. `memory.swap` is the v1
    /// memory+swap total and becomes `memory.swap.max = swap - limit`.
    ///
    /// ```
    /// use oci_spec::runtime::{LinuxCpuBuilder, LinuxResourcesBuilder};
    /// let oci = LinuxResourcesBuilder::default()
    ///     .cpu(LinuxCpuBuilder::default().shares(1024u64).build().unwrap())
    ///     .build()
    ///     .unwrap();
    /// let r = berth_cgroups::Resources::from_oci(&oci)?;
    /// assert_eq!(r.cpu.weight, Some(39));
    /// # Ok::<(), berth_cgroups::Error>(())
    /// ```
    pub fn from_oci(oci: &LinuxResources) -> Result<Resources> {
        let mut r = Resources::default();
        if let Some(cpu) = oci.cpu() {
            r.cpu_from_oci(cpu)?;
        }
        if let Some(mem) = oci.memory() {
            r.memory_from_oci(mem)?;
        }
        if let Some(p) = oci.pids() {
            r.pids_max = Some(if p.limit() > 0 {
                Limit::Value(p.limit() as u64)
            } else {
                Limit::Max
            });
        }
        if let Some(b) = oci.block_io() {
            r.block_io_from_oci(b)?;
        }
        for h in oci.hugepage_limits().iter().flatten() {
            r.hugetlb.push(HugetlbLimit {
                page_size: h.page_size().clone(),
                limit: bytes_limit("hugepageLimits.limit", h.limit())?,
            });
        }
        if let Some(u) = oci.unified() {
            let mut kv: Vec<_> = u.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            kv.sort();
            r.unified = kv;
        }
        // Validate now so a bad spec fails here, not at apply time.
        r.settings()?;
        Ok(r)
    }

    /// OCI `cpu`: shares → `cpu.weight`, quota/period → `cpu.max`, idle,
    /// and the cpuset's cpus and mems.
    fn cpu_from_oci(&mut self, cpu: &LinuxCpu) -> Result<()> {
        let r = self;
        if let Some(s) = cpu.shares() {
            let w = shares_to_weight(s);
            if w != 0 {
                r.cpu.weight = Some(w);
            }
        }
        match (cpu.quota(), cpu.period()) {
            (None, None) => {}
            (q, p) => {
                let period = p.unwrap_or(100_000);
                let quota = match q {
                    None => None,
                    Some(q) if q < 0 => None,
                    Some(0) => {
                        return Err(bad(
                            "cpu.quota",
                            0,
                            "a zero quota would stop the container; use -1 for unlimited",
                        ))
                    }
                    Some(q) => Some(q as u64),
                };
                r.cpu.max = Some(CpuMax {
                    quota_us: quota,
                    period_us: period,
                });
            }
        }
        if let Some(i) = cpu.idle() {
            r.cpu.idle = Some(i != 0);
        }
        if let Some(c) = cpu.cpus() {
            r.cpuset.cpus = Some(c.clone());
        }
        if let Some(m) = cpu.mems() {
            r.cpuset.mems = Some(m.clone());
        }
        Ok(())
    }

    /// OCI `memory`: limit → `memory.max`, reservation → `memory.low`, the
    /// v1 memory+swap total → `memory.swap.max`.
    fn memory_from_oci(&mut self, mem: &LinuxMemory) -> Result<()> {
        let r = self;
        if let Some(l) = mem.limit() {
            r.memory.max = Some(bytes_limit("memory.limit", l)?);
        }
        if let Some(l) = mem.reservation() {
            r.memory.low = Some(bytes_limit("memory.reservation", l)?);
        }
        if let Some(swap) = mem.swap() {
            r.memory.swap_max = Some(swap_max(swap, mem.limit())?);
        }
        if mem.disable_oom_killer() == Some(true) {
            tracing::warn!("OCI memory.disableOOMKiller has no cgroup v2 equivalent; ignored");
        }
        Ok(())
    }

    /// OCI `blockIO`: weights → `io.weight`, throttles → `io.max` (one
    /// entry per device).
    fn block_io_from_oci(&mut self, b: &LinuxBlockIo) -> Result<()> {
        let r = self;
        if let Some(w) = b.weight() {
            let w = blkio_weight_to_io_weight(w as u64);
            if w != 0 {
                r.io.weight = Some(w);
            }
        }
        if let Some(ws) = b.weight_device() {
            for d in ws {
                if let Some(w) = d.weight() {
                    let (major, minor) = dev("blockIO.weightDevice", d.major(), d.minor())?;
                    r.io.device_weights.push(IoDeviceWeight {
                        major,
                        minor,
                        weight: blkio_weight_to_io_weight(w as u64).max(1),
                    });
                }
            }
        }
        r.throttle(b.throttle_read_bps_device(), 0)?;
        r.throttle(b.throttle_write_bps_device(), 1)?;
        r.throttle(b.throttle_read_iops_device(), 2)?;
        r.throttle(b.throttle_write_iops_device(), 3)?;
        Ok(())
    }

    /// One OCI throttle list into `io.max`: `which` is rbps, wbps, riops,
    /// wiops (0..=3); a rate of 0 is unlimited.
    fn throttle(&mut self, list: &Option<Vec<LinuxThrottleDevice>>, which: u8) -> Result<()> {
        let r = self;
        for d in list.iter().flatten() {
            let (major, minor) = dev("blockIO.throttle", d.major(), d.minor())?;
            let idx = match r
                .io
                .max
                .iter()
                .position(|m| m.major == major && m.minor == minor)
            {
                Some(i) => i,
                None => {
                    r.io.max.push(IoMax {
                        major,
                        minor,
                        ..Default::default()
                    });
                    r.io.max.len() - 1
                }
            };
            let m = &mut r.io.max[idx];
            let rate = if d.rate() == 0 { None } else { Some(d.rate()) };
            match which {
                0 => m.rbps = rate,
                1 => m.wbps = rate,
                2 => m.riops = rate,
                _ => m.wiops = rate,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder,
        LinuxResourcesBuilder, LinuxThrottleDeviceBuilder,
    };

    /// A block device of this machine (`/sys/dev/block`), for io.max conversions.
    fn some_block_device() -> (i64, i64) {
        let e = std::fs::read_dir("/sys/dev/block")
            .unwrap()
            .flatten()
            .next()
            .expect("a block device in /sys/dev/block");
        let n = e.file_name().into_string().unwrap();
        let (a, b) = n.split_once(':').unwrap();
        (a.parse().unwrap(), b.parse().unwrap())
    }

    #[test]
    fn converts_a_full_spec() {
        let (major, minor) = some_block_device();
        let oci = LinuxResourcesBuilder::default()
            .cpu(
                LinuxCpuBuilder::default()
                    .shares(512u64)
                    .quota(20_000i64)
                    .period(100_000u64)
                    .cpus("0")
                    .mems("0")
                    .build()
                    .unwrap(),
            )
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(64i64 << 20)
                    .swap(96i64 << 20)
                    .reservation(16i64 << 20)
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(0i64).build().unwrap())
            .block_io(
                LinuxBlockIoBuilder::default()
                    .weight(100u16)
                    .throttle_write_bps_device(vec![LinuxThrottleDeviceBuilder::default()
                        .major(major)
                        .minor(minor)
                        .rate(1_048_576u64)
                        .build()
                        .unwrap()])
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let r = Resources::from_oci(&oci).unwrap();
        assert_eq!(r.cpu.weight, Some(shares_to_weight(512)));
        assert_eq!(
            r.cpu.max,
            Some(CpuMax {
                quota_us: Some(20_000),
                period_us: 100_000
            })
        );
        assert_eq!(r.cpuset.cpus.as_deref(), Some("0"));
        assert_eq!(r.memory.max, Some(Limit::Value(64 << 20)));
        assert_eq!(r.memory.swap_max, Some(Limit::Value(32 << 20)));
        assert_eq!(r.memory.low, Some(Limit::Value(16 << 20)));
        assert_eq!(r.pids_max, Some(Limit::Max));
        assert_eq!(r.io.weight, Some(blkio_weight_to_io_weight(100)));
        assert_eq!(r.io.max.len(), 1);
        assert_eq!(r.io.max[0].wbps, Some(1_048_576));
        assert_eq!(r.io.max[0].rbps, None);
        let io_line = r
            .settings()
            .unwrap()
            .into_iter()
            .find(|s| s.file == "io.max")
            .unwrap();
        assert_eq!(
            io_line.value,
            format!("{major}:{minor} rbps=max wbps=1048576 riops=max wiops=max")
        );
    }

    #[test]
    fn rejects_bad_specs() {
        let zero_quota = LinuxResourcesBuilder::default()
            .cpu(LinuxCpuBuilder::default().quota(0i64).build().unwrap())
            .build()
            .unwrap();
        assert!(Resources::from_oci(&zero_quota).is_err());
        let swap_below = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(100i64)
                    .swap(50i64)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        assert!(Resources::from_oci(&swap_below).is_err());
        let bad_cpus = LinuxResourcesBuilder::default()
            .cpu(LinuxCpuBuilder::default().cpus("x-y").build().unwrap())
            .build()
            .unwrap();
        assert!(matches!(
            Resources::from_oci(&bad_cpus),
            Err(Error::InvalidResource {
                field: "cpuset.cpus",
                ..
            })
        ));
    }
}
