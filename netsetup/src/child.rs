//! Actions safe in a child between `clone(2)` and `execve(2)`: raw
//! syscalls on stack data only, no allocation, no locks, no panics. A
//! runtime runs them as steps of its child (e.g. berth-namespaces'
//! `Step::hook`); each returns the errno.

/// Bring `lo` up in the calling thread's network namespace with two
/// ioctls on an `AF_INET` datagram socket (`SIOCGIFFLAGS`, then
/// `SIOCSIFFLAGS` with `IFF_UP`; netdevice(7)); when it is up already (a
/// pooled namespace) the second, which takes the rtnl_lock, is skipped.
/// The parent-side way is [`NetNs::set_lo_up`](crate::NetNs::set_lo_up)
/// (netlink).
///
/// ```no_run
/// // In a child of a new network namespace:
/// berth_netsetup::child::lo_up().map_err(std::io::Error::from_raw_os_error)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[doc(alias("SIOCSIFFLAGS", "IFF_UP"))]
pub fn lo_up() -> Result<(), i32> {
    // SAFETY: socket/ioctl/close are raw syscalls on a zeroed stack ifreq;
    // the socket is closed on every path.
    unsafe {
        let errno = || *libc::__errno_location();
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return Err(errno());
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        ifr.ifr_name[0] = b'l' as libc::c_char;
        ifr.ifr_name[1] = b'o' as libc::c_char;
        if libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr) < 0 {
            let e = errno();
            libc::close(s);
            return Err(e);
        }
        if ifr.ifr_ifru.ifru_flags & libc::IFF_UP as libc::c_short != 0 {
            libc::close(s);
            return Ok(());
        }
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        let r = libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr);
        let e = errno();
        libc::close(s);
        if r < 0 {
            return Err(e);
        }
        Ok(())
    }
}
