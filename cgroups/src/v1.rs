//! cgroup v1 values on cgroup v2: the weight mappings runc and crun use.
//! Plain arithmetic, needed without the OCI runtime spec too (the `oci`
//! feature's `Resources::from_oci` uses them).

/// cgroup v1 `cpu.shares` (2..=262144) to cgroup v2 `cpu.weight` (1..=10000),
/// the linear mapping runc (≤ 1.2), crun and systemd use:
/// `1 + ((shares - 2) * 9999) / 262142`; 0 means "unset".
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

/// cgroup v1 `blkio.weight` (10..=1000) to cgroup v2 `io.weight` (1..=10000):
/// `1 + ((weight - 10) * 9999) / 990`, as runc converts it; 0 means "unset".
pub fn blkio_weight_to_io_weight(weight: u64) -> u64 {
    if weight == 0 {
        return 0;
    }
    let w = weight.clamp(10, 1000);
    1 + ((w - 10) * 9999) / 990
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_formulas() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1), 1);
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
    }
}
