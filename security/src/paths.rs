//! Default path policy for the container crate: what to mask and what to
//! mount read-only inside a container (as Docker and runc do).

/// Paths hidden from the container: directories get an empty read-only
/// tmpfs, files get `/dev/null` bind-mounted over them. They expose host
/// kernel memory, keys, timers or hardware.
pub const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
];

/// Paths bind-mounted read-only over themselves: writing there would
/// change the host kernel (sysctls, IRQ affinity, SysRq).
pub const DEFAULT_READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];
