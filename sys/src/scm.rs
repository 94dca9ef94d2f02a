//! Passing a file descriptor over a Unix socket (`SCM_RIGHTS`, unix(7)),
//! from the parent side: one byte of data carries one fd. (A child after
//! `clone` sends with [`crate::child::send_fd`], the same stack-only
//! sendmsg; nix's `sendmsg` needs its `socket` feature and allocates.)

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Control buffer for one fd: `CMSG_SPACE(sizeof(int))` is 24 bytes on
/// 64-bit Linux; 64 bytes, 8-aligned, leave room on every target.
#[repr(C, align(8))]
struct CmsgBuf([u8; 64]);

/// Send `fd` with one data byte `0` over the connected Unix socket `sock`
/// (`sendmsg(2)`, `MSG_NOSIGNAL`: a closed peer is `EPIPE`, not SIGPIPE).
pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    send_fd_with(sock, fd, &[0])
}

/// [`send_fd`] with `data` (at least one byte: Linux sends no control
/// message without data on a stream socket) as the message's data, e.g.
/// the name of the file (`/dev/ptmx` for runc's `--console-socket`).
pub fn send_fd_with(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>, data: &[u8]) -> io::Result<()> {
    crate::errno::cvt_long(sendmsg_fd(sock.as_raw_fd(), fd.as_raw_fd(), data) as libc::c_long)
        .map(drop)
}

/// `sendmsg(sock, {data, SCM_RIGHTS fd}, MSG_NOSIGNAL)` on stack buffers
/// only: async-signal-safe, also the child's
/// ([`crate::child::send_fd`]). Returns sendmsg's return value.
pub(crate) fn sendmsg_fd(sock: RawFd, fd: RawFd, data: &[u8]) -> libc::ssize_t {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr().cast_mut().cast(),
        iov_len: data.len(),
    };
    let mut cbuf = CmsgBuf([0; 64]);
    // SAFETY: CMSG_SPACE is arithmetic on its argument.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
    // SAFETY: msghdr is plain data; all zeroes is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.0.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: msg_control points to `space` (≤ 64) writable, aligned bytes,
    // so CMSG_FIRSTHDR is non-null and its data holds one int; sendmsg
    // only reads the iovec (`data`) and control buffer, alive for the call.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>(), fd);
        libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL)
    }
}

/// Receive one fd sent by [`send_fd`] (or a child's equivalent) from
/// `sock`, close-on-exec (`recvmsg(2)`, `MSG_CMSG_CLOEXEC`); `nonblock`:
/// `MSG_DONTWAIT` (`EAGAIN` when nothing is queued). A message without an
/// fd is an error ("no fd in the message").
pub fn recv_fd(sock: BorrowedFd<'_>, nonblock: bool) -> io::Result<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut cbuf = CmsgBuf([0; 64]);
    // SAFETY: msghdr is plain data; all zeroes is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.0.as_mut_ptr().cast();
    msg.msg_controllen = cbuf.0.len() as _;
    let flags = libc::MSG_CMSG_CLOEXEC | if nonblock { libc::MSG_DONTWAIT } else { 0 };
    // SAFETY: msg points to a live iovec and control buffer of the sizes given.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, flags) };
    crate::errno::cvt_long(n as libc::c_long)?;
    // SAFETY: the kernel filled msg_controllen bytes of the control buffer;
    // CMSG_FIRSTHDR checks that a header fits, and an SCM_RIGHTS header's
    // data holds at least one int.
    let fd = unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        if c.is_null() || (*c).cmsg_level != libc::SOL_SOCKET || (*c).cmsg_type != libc::SCM_RIGHTS
        {
            return Err(io::Error::other("no fd in the message"));
        }
        std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>())
    };
    // SAFETY: the kernel installed this fd in our table for us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A connected pair of Unix sockets to pass fds over (`socketpair(2)`
/// `AF_UNIX`, `SOCK_SEQPACKET`, close-on-exec; unix(7)).
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: socketpair fills the two-int array it is given.
    crate::errno::cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: two fresh fds from socketpair that nobody else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn an_fd_crosses_a_socket_pair_close_on_exec() {
        let (a, b) = UnixStream::pair().unwrap();
        let e = recv_fd(b.as_fd(), true).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"sent").unwrap();
        send_fd(a.as_fd(), f.as_fd()).unwrap();
        let got = recv_fd(b.as_fd(), false).unwrap();
        let flags = nix::fcntl::fcntl(&got, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
        let mut g = std::fs::File::from(got);
        g.rewind().unwrap();
        let mut s = String::new();
        g.read_to_string(&mut s).unwrap();
        assert_eq!(s, "sent");
        send_fd_with(a.as_fd(), f.as_fd(), b"/dev/ptmx").unwrap();
        let mut buf = [0u8; 9];
        let got = recv_fd(b.as_fd(), false).unwrap();
        assert!(crate::fs::same_file(got.as_fd(), f.as_fd()));
        (&b).read_exact(&mut buf[1..]).unwrap();
        assert_eq!(&buf[1..], b"dev/ptmx", "the rest of the data stays queued");
        (&a).write_all(b"x").unwrap();
        assert_eq!(
            recv_fd(b.as_fd(), false).unwrap_err().to_string(),
            "no fd in the message"
        );
    }
}
