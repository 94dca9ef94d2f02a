//! Network actions for a child (its own network namespace).

use crate::errno::errno;

/// Bring `lo` up in the calling thread's network namespace with two
/// ioctls on an `AF_INET` datagram socket (`SIOCGIFFLAGS`, then
/// `SIOCSIFFLAGS` with `IFF_UP`; netdevice(7), any Linux); when it is up
/// already (a pooled namespace) the second, which takes the kernel's
/// `rtnl_lock`, is skipped. Needs `CAP_NET_ADMIN` in the namespace's user
/// namespace (`EPERM` otherwise).
///
/// Async-signal-safe: three or four raw syscalls on a zeroed `ifreq` on
/// the stack, no allocation, no lock, no panic; the socket is closed on
/// every path. So it runs in a child between `clone(2)` and `execve(2)`
/// as well as on a thread of the parent (berth-namespaces' `NetnsPool`).
/// Returns the errno of the call that failed. (With the `fake` feature,
/// the fake installed on the calling thread answers instead.)
///
/// ```no_run
/// // In a thread or child of its own network namespace:
/// berth_sys::child::net::lo_up().map_err(std::io::Error::from_raw_os_error)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[doc(alias("SIOCSIFFLAGS", "IFF_UP"))]
pub fn lo_up() -> Result<(), i32> {
    fake!(lo_up());
    // SAFETY: socket(2) on integer arguments; the fd is closed below on
    // every path.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        return Err(errno());
    }
    let r = set_up(s, b"lo");
    // SAFETY: `s` is the socket opened above, closed once.
    unsafe { libc::close(s) };
    r
}

/// `IFF_UP` on the interface `name` (shorter than `IFNAMSIZ`) through the
/// socket `s`, unless it is up already.
fn set_up(s: libc::c_int, name: &[u8]) -> Result<(), i32> {
    // SAFETY: ifreq is plain old data: all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, b) in ifr.ifr_name.iter_mut().zip(name) {
        *d = *b as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the name and writes the flags of our
    // local ifreq (netdevice(7)).
    if unsafe { libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr) } < 0 {
        return Err(errno());
    }
    // SAFETY: the kernel filled `ifru_flags`, the union's member
    // SIOCGIFFLAGS sets.
    let flags = unsafe { ifr.ifr_ifru.ifru_flags };
    if flags & libc::IFF_UP as libc::c_short != 0 {
        return Ok(());
    }
    ifr.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads our local ifreq (netdevice(7)).
    if unsafe { libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr) } < 0 {
        return Err(errno());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In a network namespace of its own (a thread that unshared one; as
    /// root), `lo` goes from down to up, and a second call finds it up.
    #[test]
    fn lo_goes_up_in_a_fresh_namespace() {
        let r = std::thread::spawn(|| {
            if crate::ns::unshare_net().is_err() {
                // No CAP_SYS_ADMIN: only the error path can be checked.
                return None;
            }
            let before = lo_flags();
            let first = lo_up();
            let after = lo_flags();
            let second = lo_up();
            Some((before, first, after, second))
        })
        .join()
        .unwrap();
        let Some((before, first, after, second)) = r else {
            return;
        };
        assert_eq!(before & libc::IFF_UP as libc::c_short, 0, "lo starts down");
        assert_eq!(first, Ok(()));
        assert_ne!(after & libc::IFF_UP as libc::c_short, 0, "lo is up");
        assert_eq!(second, Ok(()));
    }

    /// `lo`'s flags in the calling thread's network namespace.
    fn lo_flags() -> libc::c_short {
        // SAFETY: test-only raw calls on a local ifreq; the socket is closed.
        unsafe {
            let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
            assert!(s >= 0);
            let mut ifr: libc::ifreq = std::mem::zeroed();
            ifr.ifr_name[0] = b'l' as libc::c_char;
            ifr.ifr_name[1] = b'o' as libc::c_char;
            assert_eq!(libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr), 0);
            libc::close(s);
            ifr.ifr_ifru.ifru_flags
        }
    }
}
