//! Memory mappings (mmap(2), mprotect(2), munmap(2)) on nix, owned:
//! unmapped on drop ([`Mapping`]): anonymous ones and shared mappings of
//! an fd.

use std::io;
use std::num::NonZeroUsize;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::sys::mman::{MapFlags, ProtFlags};

/// A memory mapping owned by this value: `munmap(2)` on drop. Anonymous
/// ([`shared`](Self::shared), [`stack`](Self::stack)) or of an fd
/// ([`of_fd`](Self::of_fd)). Hands out a raw pointer (for a child process or a `clone(2)`
/// stack); whoever writes through it keeps within [`len`](Self::len) and
/// stops before the mapping is dropped.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<libc::c_void>,
    len: usize,
}

// SAFETY: a Mapping is an address range it owns; moving it to another
// thread moves that ownership (what is read or written through the
// pointers it hands out is their users' business, as for any raw pointer).
unsafe impl Send for Mapping {}

impl Mapping {
    /// `mmap(NULL, len, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_ANONYMOUS)`:
    /// zeroed memory that a child forked (or cloned without `CLONE_VM`)
    /// afterwards shares with us, e.g. for timestamps it stores.
    /// `EINVAL` when `len` is 0.
    pub fn shared(len: usize) -> io::Result<Mapping> {
        Self::map(len, MapFlags::MAP_SHARED)
    }

    /// A stack for a `clone(2)` child: `mmap(NULL, len,
    /// PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_STACK)` (only
    /// touched pages cost memory), its lowest page made a guard
    /// (`mprotect(PROT_NONE)`) so an overflow faults instead of writing
    /// whatever is mapped below. The stack grows down from
    /// `as_ptr() + len()`.
    pub fn stack(len: usize) -> io::Result<Mapping> {
        let m = Self::map(len, MapFlags::MAP_PRIVATE | MapFlags::MAP_STACK)?;
        let guard = crate::proc::page_size().min(len);
        // SAFETY: the first page of our own fresh mapping, not handed out
        // yet. A failure leaves the page writable: the stack still works,
        // without the guard (as mmap'd stacks without one do).
        let _ = unsafe { nix::sys::mman::mprotect(m.ptr, guard, ProtFlags::PROT_NONE) };
        Ok(m)
    }

    /// A shared mapping of a file or kernel object behind `fd`: `len`
    /// bytes from `offset` (a multiple of the page size), read-only or
    /// read-write (`mmap(NULL, len, prot, MAP_SHARED, fd, offset)`). The
    /// mapping keeps the object alive by itself (the fd may be closed).
    /// For memory another party writes too (a BPF ring buffer's pages):
    /// read it through atomics or volatile loads. `EINVAL` when `len` is 0.
    pub fn of_fd(
        fd: BorrowedFd<'_>,
        len: usize,
        writable: bool,
        offset: u64,
    ) -> io::Result<Mapping> {
        let n = NonZeroUsize::new(len).ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        let prot = if writable {
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE
        } else {
            ProtFlags::PROT_READ
        };
        let off = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: a new mapping at an address the kernel picks (no
        // MAP_FIXED), so nothing of ours is replaced; owned from here.
        let ptr = unsafe { nix::sys::mman::mmap(None, n, prot, MapFlags::MAP_SHARED, fd, off)? };
        Ok(Mapping { ptr, len })
    }

    fn map(len: usize, kind: MapFlags) -> io::Result<Mapping> {
        let n = NonZeroUsize::new(len).ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: a new mapping at an address the kernel picks (no
        // MAP_FIXED), so nothing of ours is replaced; owned from here.
        let ptr = unsafe {
            nix::sys::mman::mmap_anonymous(
                None,
                n,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                kind | MapFlags::MAP_ANONYMOUS,
            )?
        };
        Ok(Mapping { ptr, len })
    }

    /// The first byte of the mapping.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr().cast()
    }

    /// The mapping's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a mapping has at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `i`th `u64` of the mapping (an atomic load: a process sharing
    /// the mapping may be storing it), `None` past its end.
    pub fn load_u64(&self, i: usize) -> Option<u64> {
        if i.checked_add(1)?.checked_mul(8)? > self.len {
            return None;
        }
        // SAFETY: in bounds (checked above) and 8-byte aligned (a mapping
        // starts on a page); the memory lives as long as `self`, and is
        // only ever accessed as whole u64s.
        let a = unsafe { AtomicU64::from_ptr(self.as_ptr().cast::<u64>().add(i)) };
        Some(a.load(Ordering::Relaxed))
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once; its users are done with
        // it (the type's contract).
        if let Err(e) = unsafe { nix::sys::mman::munmap(self.ptr, self.len) } {
            tracing::warn!(error = %e, len = self.len, "munmap of an anonymous mapping failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_map_is_zeroed_and_seen_by_a_forked_child() {
        let m = Mapping::shared(3 * 8).unwrap();
        assert_eq!(m.len(), 24);
        assert_eq!(m.load_u64(2), Some(0));
        assert_eq!(m.load_u64(3), None);
        assert!(Mapping::shared(0).is_err());
        let p = m.as_ptr().cast::<u64>();
        // SAFETY: fork in a test; the child only stores to the mapping
        // and _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: in bounds of the shared mapping.
            unsafe {
                p.add(1).write_volatile(42);
                libc::_exit(0);
            }
        }
        let mut st = 0;
        // SAFETY: reaping our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut st, 0) }, pid);
        assert_eq!(m.load_u64(1), Some(42));
    }

    #[test]
    fn a_stack_has_a_guard_page() {
        let m = Mapping::stack(1 << 20).unwrap();
        let page = crate::proc::page_size();
        // SAFETY: the top of our own mapping, writable.
        unsafe { m.as_ptr().add(m.len() - 8).write(7) };
        // /proc/self/maps shows the first page ---p (the rest rw-p).
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let start = format!(
            "{:x}-{:x} ---p",
            m.as_ptr() as usize,
            m.as_ptr() as usize + page
        );
        assert!(maps.contains(&start), "{start} not in\n{maps}");
    }

    #[test]
    fn an_fd_map_shows_the_file_and_writes_through() {
        use std::io::{Read, Seek, Write};
        use std::os::fd::AsFd;
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&[7u8; 8192]).unwrap();
        let ro = Mapping::of_fd(f.as_fd(), 4096, false, 4096).unwrap();
        assert_eq!(ro.len(), 4096);
        // SAFETY: in bounds of the mapping.
        assert_eq!(unsafe { ro.as_ptr().read_volatile() }, 7);
        let rw = Mapping::of_fd(f.as_fd(), 4096, true, 0).unwrap();
        // SAFETY: in bounds of the writable mapping.
        unsafe { rw.as_ptr().write_volatile(9) };
        drop(rw);
        let mut b = [0u8; 1];
        f.rewind().unwrap();
        f.read_exact(&mut b).unwrap();
        assert_eq!(b[0], 9);
        assert!(Mapping::of_fd(f.as_fd(), 0, false, 0).is_err());
        assert_eq!(
            Mapping::of_fd(f.as_fd(), 4096, false, 100)
                .unwrap_err()
                .raw_os_error(),
            Some(libc::EINVAL)
        );
    }
}
