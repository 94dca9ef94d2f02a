//! Clocks (clock_gettime(2)) on nix.

use nix::time::ClockId;

/// `CLOCK_MONOTONIC` now, in nanoseconds (clock_gettime(2); a vDSO call,
/// no system call). The same clock a child reads with its own raw
/// `clock_gettime`, so stamps from both compare. 0 if the clock cannot
/// be read (it always can on Linux).
pub fn monotonic_ns() -> u64 {
    match nix::time::clock_gettime(ClockId::CLOCK_MONOTONIC) {
        Ok(t) => t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64,
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_monotonic_clock_moves_forward() {
        let a = monotonic_ns();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = monotonic_ns();
        assert!(a > 0 && b >= a + 2_000_000, "{a} {b}");
    }
}
