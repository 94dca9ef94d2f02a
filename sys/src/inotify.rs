//! inotify(7) for change notification of kernfs files (`cgroup.events`,
//! `memory.events`: the kernel sends `IN_MODIFY` on a change, cgroups(7)).

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use nix::sys::inotify::{AddWatchFlags, InitFlags};

/// A non-blocking, close-on-exec inotify instance
/// (`inotify_init1(IN_CLOEXEC|IN_NONBLOCK)`, inotify_init(2), Linux 2.6.27+).
#[derive(Debug)]
pub struct Inotify(nix::sys::inotify::Inotify);

impl Inotify {
    /// A new instance, watching nothing yet.
    pub fn new_nonblock() -> io::Result<Self> {
        Ok(Self(nix::sys::inotify::Inotify::init(
            InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK,
        )?))
    }

    /// Watch `path` for `IN_MODIFY` (inotify_add_watch(2)). A path through
    /// `/proc/self/fd/<dirfd>/<file>` follows an open directory, not a name.
    pub fn watch_modify(&self, path: &Path) -> io::Result<()> {
        self.0.add_watch(path, AddWatchFlags::IN_MODIFY)?;
        Ok(())
    }

    /// Read and discard every queued event (until `EAGAIN`); the caller
    /// re-reads the watched files' state instead.
    pub fn drain(&self) {
        let mut b = [0u8; 4096];
        while let Ok(n) = nix::unistd::read(self.0.as_fd(), &mut b) {
            if n == 0 {
                return;
            }
        }
    }
}

impl AsFd for Inotify {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_is_seen_then_drained() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        std::fs::write(&f, b"a").unwrap();
        let i = Inotify::new_nonblock().unwrap();
        i.watch_modify(&f).unwrap();
        let poll = |ms| crate::poll::poll_one(i.as_fd(), crate::poll::PollFlags::POLLIN, ms);
        assert!(!poll(0).unwrap());
        std::fs::write(&f, b"b").unwrap();
        assert!(poll(1000).unwrap());
        i.drain();
        assert!(!poll(0).unwrap());
    }
}
