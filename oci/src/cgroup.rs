//! The container's cgroup2 group, as berth's state file names it.

use std::path::Path;

use crate::error::{Error, Result};

/// The container's cgroup2 group (an error naming the container when it
/// has none: rootless without a delegated parent).
pub fn open(id: &str, st: &berth::State) -> Result<berth_cgroups::Cgroup> {
    let cg = st
        .cgroup
        .as_ref()
        .ok_or_else(|| Error::Config(format!("container {id} has no cgroup")))?;
    let h = berth_cgroups::Hierarchy::discover()?;
    let rel = cg.strip_prefix(h.mount_point()).unwrap_or(cg);
    Ok(berth_cgroups::Cgroup::open(&h, rel)?)
}

/// The pids in the container's cgroup2 group (`cgroup.procs`; none
/// without a group).
pub fn procs(st: &berth::State) -> Vec<i32> {
    st.cgroup
        .as_ref()
        .and_then(|c| std::fs::read_to_string(c.join("cgroup.procs")).ok())
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// A number from a cgroup file (`max` and absent: `None`).
pub fn num(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}
