//! Netlink sockets (netlink(7)): open and bind, send one request buffer,
//! receive one datagram. Raw libc: nix's socket API has no way to name an
//! arbitrary netlink protocol number.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `NETLINK_ROUTE` (rtnetlink(7)).
pub const NETLINK_ROUTE: i32 = libc::NETLINK_ROUTE;
/// `NETLINK_NETFILTER` (nfnetlink, nftables).
pub const NETLINK_NETFILTER: i32 = libc::NETLINK_NETFILTER;

/// A `socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol)` in the
/// calling thread's network namespace, bound with port id 0 (the kernel
/// assigns one; netlink(7)). On failure, the call that failed and its
/// error.
pub fn open_socket(protocol: i32) -> Result<OwnedFd, (&'static str, io::Error)> {
    // SAFETY: plain socket(2) call with integer arguments.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            protocol,
        )
    };
    if fd < 0 {
        return Err(("socket(AF_NETLINK)", io::Error::last_os_error()));
    }
    // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_nl is plain data; zeroed is a valid value (pid 0 = kernel assigns).
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as u16;
    // SAFETY: sa is a valid sockaddr_nl of the size passed.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sa).cast::<libc::sockaddr>(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if r < 0 {
        return Err(("bind(AF_NETLINK)", io::Error::last_os_error()));
    }
    Ok(fd)
}

/// `send(2)` of one whole request buffer (one or more messages) to the
/// kernel on a netlink socket.
pub fn send(fd: BorrowedFd<'_>, data: &[u8]) -> io::Result<()> {
    // SAFETY: data is a valid buffer of data.len() bytes; the kernel is the peer.
    let n = unsafe {
        libc::send(
            fd.as_raw_fd(),
            data.as_ptr().cast::<libc::c_void>(),
            data.len(),
            0,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One `recv(2)` on the netlink socket `fd` into `buf`, retrying `EINTR`;
/// `Ok(None)` when `nonblock` (`MSG_DONTWAIT`) and nothing is queued.
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8], nonblock: bool) -> io::Result<Option<usize>> {
    loop {
        // SAFETY: buf is a valid writable buffer of its length.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast::<libc::c_void>(),
                buf.len(),
                if nonblock { libc::MSG_DONTWAIT } else { 0 },
            )
        };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock if nonblock => return Ok(None),
            _ => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_route_socket_opens_and_nothing_is_queued() {
        let fd = open_socket(NETLINK_ROUTE).unwrap();
        let mut b = [0u8; 64];
        assert_eq!(recv(fd.as_fd(), &mut b, true).unwrap(), None);
    }
}
