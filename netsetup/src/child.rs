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
/// The one implementation is berth-sys's
/// [`child::net::lo_up`](berth_sys::child::net::lo_up) (shared with
/// berth-namespaces' `NetnsPool::with_loopback_up`); this is its name in
/// berth-netsetup.
///
/// ```no_run
/// // In a child of a new network namespace:
/// berth_netsetup::child::lo_up().map_err(std::io::Error::from_raw_os_error)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[doc(alias("SIOCSIFFLAGS", "IFF_UP"))]
#[inline]
pub fn lo_up() -> Result<(), i32> {
    berth_sys::child::net::lo_up()
}
