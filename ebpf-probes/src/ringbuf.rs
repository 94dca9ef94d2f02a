//! A consumer for `BPF_MAP_TYPE_RINGBUF` (Linux 5.8): the consumer
//! position page is mapped read-write, the producer position page and the
//! data area (mapped twice by the kernel so records never wrap) read-only.
//! Layout: `kernel/bpf/ringbuf.c`; record header `struct bpf_ringbuf_hdr`
//! (u32 length with BUSY bit 31 and DISCARD bit 30, u32 page offset).

use std::os::fd::{AsFd, BorrowedFd};

use berth_sys::mman::Mapping;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::sys::{Map, MapType};

const BUSY: u32 = 1 << 31;
const DISCARD: u32 = 1 << 30;
const HDR: usize = 8;

/// A BPF ring buffer map and its memory mappings; unmapped and closed on drop.
///
/// ```no_run
/// let mut rb = berth_ebpf_probes::ringbuf::RingBuf::new("events", 64 * 1024)?; // BPF_MAP_TYPE_RINGBUF
/// // ...load a program that bpf_ringbuf_output()s into rb.map()...
/// if rb.wait(std::time::Duration::from_secs(1))? {
///     rb.consume(|record| println!("{} bytes", record.len()));
/// }
/// # Ok::<(), berth_ebpf_probes::Error>(())
/// ```
#[derive(Debug)]
pub struct RingBuf {
    map: Map,
    /// The consumer position page (read-write).
    consumer: Mapping,
    /// The producer position page and the data area mapped twice
    /// (read-only).
    producer: Mapping,
    page: usize,
    size: usize,
}

impl RingBuf {
    /// Create a ring buffer of `size` bytes (rounded up to a power-of-two
    /// number of pages) and map it.
    pub fn new(name: &str, size: usize) -> Result<RingBuf> {
        let page = berth_sys::proc::page_size().max(4096);
        let size = size.max(page).next_power_of_two();
        let map = Map::create(MapType::RingBuf, name, 0, 0, size as u32)?;
        let mmap = |len: usize, writable: bool, off: usize| {
            Mapping::of_fd(map.as_fd(), len, writable, off as u64).map_err(|source| {
                Error::Syscall {
                    op: format!("mmap of ring buffer {name} ({len} bytes at {off})"),
                    source,
                }
            })
        };
        let consumer = mmap(page, true, 0)?;
        let producer = mmap(page + 2 * size, false, page)?;
        Ok(RingBuf {
            map,
            consumer,
            producer,
            page,
            size,
        })
    }

    /// The underlying map (its fd goes into programs via `ld_map_fd`).
    pub fn map(&self) -> &Map {
        &self.map
    }

    fn cons_pos(&self) -> &AtomicU64 {
        // SAFETY: the consumer page is mapped for our lifetime, the position
        // is an 8-byte aligned u64 at its start.
        unsafe { &*(self.consumer.as_ptr() as *const AtomicU64) }
    }

    fn prod_pos(&self) -> &AtomicU64 {
        // SAFETY: as above for the producer page.
        unsafe { &*(self.producer.as_ptr() as *const AtomicU64) }
    }

    /// Hand every complete record to `f`; returns how many were consumed.
    pub fn consume(&mut self, mut f: impl FnMut(&[u8])) -> usize {
        let mut n = 0;
        let data = self.producer.as_ptr().wrapping_add(self.page);
        let mask = (self.size - 1) as u64;
        let mut cons = self.cons_pos().load(Ordering::Acquire);
        loop {
            let prod = self.prod_pos().load(Ordering::Acquire);
            if cons >= prod {
                break;
            }
            let at = (cons & mask) as usize;
            // SAFETY: at < size and the data area is mapped twice, so a
            // header and its record (at most size bytes) are readable.
            let hdr = unsafe { &*(data.add(at) as *const AtomicU32) }.load(Ordering::Acquire);
            if hdr & BUSY != 0 {
                break;
            }
            let len = (hdr & !(BUSY | DISCARD)) as usize;
            if hdr & DISCARD == 0 {
                // SAFETY: see above; the record is committed (not BUSY).
                let rec = unsafe { std::slice::from_raw_parts(data.add(at + HDR), len) };
                f(rec);
                n += 1;
            }
            cons += ((len + HDR + 7) & !7) as u64;
            self.cons_pos().store(cons, Ordering::Release);
        }
        n
    }

    /// Wait up to `timeout` for data (`poll(2)` on the map fd); true when readable.
    pub fn wait(&self, timeout: Duration) -> Result<bool> {
        let prod = self.prod_pos().load(Ordering::Acquire);
        if prod > self.cons_pos().load(Ordering::Acquire) {
            return Ok(true);
        }
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        match berth_sys::poll::poll_one(self.map.as_fd(), berth_sys::poll::PollFlags::POLLIN, ms) {
            Ok(ready) => Ok(ready),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => Ok(false),
            Err(e) => Err(Error::Syscall {
                op: "poll on ring buffer".into(),
                source: e,
            }),
        }
    }
}

impl AsFd for RingBuf {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.map.as_fd()
    }
}
