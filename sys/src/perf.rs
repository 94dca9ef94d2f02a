//! perf events for classic tracepoints (perf_event_open(2), Linux 2.6.31+)
//! and attaching a BPF program to one (`PERF_EVENT_IOC_SET_BPF`, Linux
//! 4.7+). nix has none; libc has neither the struct nor the ioctl numbers:
//! they are include/uapi/linux/perf_event.h's.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::errno::{cvt, cvt_long};

/// `struct perf_event_attr` up to `PERF_ATTR_SIZE_VER0` (64 bytes): enough
/// for a tracepoint; `size` tells the kernel so.
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    type_: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
}

/// `PERF_TYPE_TRACEPOINT`.
const PERF_TYPE_TRACEPOINT: u32 = 2;
/// `PERF_FLAG_FD_CLOEXEC` (Linux 3.14+).
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
/// `PERF_EVENT_IOC_SET_BPF` = `_IOW('$', 8, __u32)`.
const PERF_EVENT_IOC_SET_BPF: libc::c_ulong = 0x4004_2408;
/// `PERF_EVENT_IOC_ENABLE` = `_IO('$', 0)`.
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;

/// A perf event counting the tracepoint `id` (its
/// `events/<group>/<name>/id` in tracefs) on every CPU for all processes
/// (`pid -1, cpu 0`), sample period 1, close-on-exec.
pub fn open_tracepoint(id: u64) -> io::Result<OwnedFd> {
    let attr = PerfEventAttr {
        type_: PERF_TYPE_TRACEPOINT,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        config: id,
        sample_period: 1,
        wakeup_events: 1,
        ..Default::default()
    };
    // SAFETY: attr is a valid perf_event_attr prefix with its size set.
    let fd = cvt_long(unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &raw const attr,
            -1 as libc::pid_t,
            0 as libc::c_int,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    })?;
    // SAFETY: the kernel just returned this fd and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Attach the BPF program `prog` to the perf event `perf`
/// (`PERF_EVENT_IOC_SET_BPF`).
pub fn set_bpf(perf: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: an ioctl whose argument is an fd number, on a borrowed (so open) fd.
    cvt(unsafe { libc::ioctl(perf.as_raw_fd(), PERF_EVENT_IOC_SET_BPF, prog.as_raw_fd()) })
        .map(drop)
}

/// Enable the perf event (`PERF_EVENT_IOC_ENABLE`).
pub fn enable(perf: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: an ioctl without argument on a borrowed (so open) fd.
    cvt(unsafe { libc::ioctl(perf.as_raw_fd(), PERF_EVENT_IOC_ENABLE, 0) }).map(drop)
}
