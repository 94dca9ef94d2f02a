//! Sealed memory files: memfd_create(2) and the file seals of fcntl(2)
//! (`F_ADD_SEALS`/`F_GET_SEALS`, Linux 3.17), and copying a file into one
//! (sendfile(2)).

use std::ffi::CStr;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use nix::fcntl::{fcntl, FcntlArg};
use nix::sys::memfd::{memfd_create, MFdFlags};

pub use nix::fcntl::SealFlag;

/// Every seal: nothing can ever write, grow, shrink or unseal the file.
pub const ALL_SEALS: SealFlag = SealFlag::F_SEAL_SEAL
    .union(SealFlag::F_SEAL_SHRINK)
    .union(SealFlag::F_SEAL_GROW)
    .union(SealFlag::F_SEAL_WRITE);

/// `MFD_EXEC` (Linux 6.3, memfd_create(2)): executable even where
/// `vm.memfd_noexec` says otherwise.
const MFD_EXEC: libc::c_uint = 0x10;

/// A new, empty, close-on-exec memfd called `name` that allows sealing
/// and may be executed (`MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC`;
/// before Linux 6.3, which does not know `MFD_EXEC`, without it: memfds
/// are executable there).
pub fn create_sealable_exec(name: &CStr) -> io::Result<OwnedFd> {
    let flags = MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING;
    match memfd_create(name, flags | MFdFlags::from_bits_retain(MFD_EXEC)) {
        Err(nix::errno::Errno::EINVAL) => Ok(memfd_create(name, flags)?),
        r => Ok(r?),
    }
}

/// The seals of `fd` (`F_GET_SEALS`; `EINVAL` for a file that is not a
/// memfd).
pub fn seals(fd: BorrowedFd<'_>) -> io::Result<SealFlag> {
    Ok(SealFlag::from_bits_retain(fcntl(
        fd,
        FcntlArg::F_GET_SEALS,
    )?))
}

/// Add `seals` to the memfd `fd` (`F_ADD_SEALS`).
pub fn add_seals(fd: BorrowedFd<'_>, seals: SealFlag) -> io::Result<()> {
    fcntl(fd, FcntlArg::F_ADD_SEALS(seals))?;
    Ok(())
}

/// Copy the rest of `src` (from its offset) to `dst` in the kernel
/// (sendfile(2) until it returns 0).
pub fn copy_all(dst: BorrowedFd<'_>, src: BorrowedFd<'_>) -> io::Result<()> {
    loop {
        match nix::sys::sendfile::sendfile(dst, src, None, 1 << 30) {
            Ok(0) => return Ok(()),
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsFd;

    #[test]
    fn a_sealed_copy_reads_back_and_refuses_writes() {
        let mut src = tempfile::tempfile().unwrap();
        src.write_all(b"berth").unwrap();
        src.rewind().unwrap();
        let m = create_sealable_exec(c"berth-test").unwrap();
        assert!(seals(m.as_fd()).unwrap().is_empty());
        copy_all(m.as_fd(), src.as_fd()).unwrap();
        add_seals(m.as_fd(), ALL_SEALS).unwrap();
        assert!(seals(m.as_fd()).unwrap().contains(ALL_SEALS));
        let mut f = std::fs::File::from(m);
        assert_eq!(f.write(b"x").unwrap_err().raw_os_error(), Some(libc::EPERM));
        f.rewind().unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert_eq!(s, "berth");
        assert_eq!(
            seals(src.as_fd()).unwrap_err().raw_os_error(),
            Some(libc::EINVAL)
        );
    }
}
