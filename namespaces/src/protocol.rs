//! The child → parent protocol over the `O_CLOEXEC` error pipe, shared by
//! the child that writes a [`Report`] and the parent that decodes it.
//!
//! The child writes at most one failure report and then `_exit`s; on
//! success the pipe is closed by `execve` (close-on-exec) and the parent
//! reads EOF. Each report is one `write(2)` of [`Report::SIZE`] bytes,
//! below `PIPE_BUF`, so it arrives whole (pipe(7)). Encoding and decoding
//! allocate nothing on the child's side.

use std::io;
use std::os::fd::{BorrowedFd, RawFd};

/// What a report is about: its first word on the wire.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReportKind {
    /// Plan step `index` failed (or panicked).
    Step = 1,
    /// A fixed [`Phase`] of the child (`index`) failed (or panicked).
    Phase = 2,
    /// Join `index` (`setns`) failed.
    Join = 3,
    /// The intermediate forked into the joined pid namespace: `value` is
    /// the pid of the real process.
    Pid = 4,
    /// Two-phase start: the plan ran, the child waits for `start()`.
    Ready = 5,
    /// The child entered its pooled network namespace (sent only when the
    /// parent waits for it before running its hook).
    Netns = 6,
}

impl ReportKind {
    fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => ReportKind::Step,
            2 => ReportKind::Phase,
            3 => ReportKind::Join,
            4 => ReportKind::Pid,
            5 => ReportKind::Ready,
            6 => ReportKind::Netns,
            _ => return None,
        })
    }
}

/// The fixed parts of the child's run, around the plan's steps (the
/// parent names each in its error, see `spawn::decode`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// `prctl(PR_SET_PDEATHSIG)`.
    Pdeathsig = 0,
    /// Reading the parent's go signal (id maps written, hook run).
    Sync = 1,
    /// `prctl(PR_SET_DUMPABLE, 0)` before joining.
    Dumpable = 2,
    /// Forking into the joined pid namespace.
    JoinFork = 3,
    /// `unshare(CLONE_NEWTIME)`.
    TimeUnshare = 4,
    /// Writing `/proc/self/timens_offsets`.
    TimeOffsets = 5,
    /// Entering `/proc/self/ns/time_for_children`.
    TimeSetns = 6,
    /// `sethostname`.
    Hostname = 7,
    /// `setdomainname`.
    Domainname = 8,
    /// `dup2` of stdio and kept fds.
    Fds = 9,
    /// `chdir` to the working directory.
    Cwd = 10,
    /// The init's fork of the workload.
    InitFork = 11,
    /// `close_range` of inherited fds.
    CloseFds = 12,
    /// Waiting for `start()` (two-phase start).
    Start = 13,
    /// `execve` of the program.
    Exec = 14,
    /// The init's `sigprocmask`.
    Sigmask = 15,
    /// Taking the new user namespace's root ids.
    Setid = 16,
    /// `setns` into the pooled network namespace.
    Netns = 17,
    /// `unshare` of the namespaces created in a joined user namespace.
    Unshare = 18,
    /// berth's own child code outside any step (only a panic reports it).
    Setup = 19,
}

impl Phase {
    fn from_u32(v: u32) -> Option<Self> {
        use Phase::*;
        const ALL: [Phase; 20] = [
            Pdeathsig,
            Sync,
            Dumpable,
            JoinFork,
            TimeUnshare,
            TimeOffsets,
            TimeSetns,
            Hostname,
            Domainname,
            Fds,
            Cwd,
            InitFork,
            CloseFds,
            Start,
            Exec,
            Sigmask,
            Setid,
            Netns,
            Unshare,
            Setup,
        ];
        ALL.get(v as usize).copied()
    }
}

/// Where in the child something failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum At {
    /// Plan step `i` (an index into the spawner's steps).
    Step(usize),
    /// Join `i` (in the order the joins are entered).
    Join(usize),
    /// A fixed phase.
    Phase(Phase),
}

/// A failure in the child: where, the errno, and (for a hook that names
/// its own sub-step, such as berth-security's `ChildFailure.step`) which
/// part of it. `panicked` when the child code there panicked instead
/// (`errno` is then 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChildError<D> {
    pub at: At,
    pub errno: i32,
    /// The sub-step a hook named (empty when none).
    pub detail: D,
    pub panicked: bool,
}

/// What the parent reads from the pipe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Message {
    /// The child failed and exits.
    Failed(ChildError<String>),
    /// [`ReportKind::Pid`].
    Pid(i32),
    /// [`ReportKind::Ready`].
    Ready,
    /// [`ReportKind::Netns`].
    Netns,
}

/// Bytes of a hook's sub-step name carried in a report (longer names are cut).
pub(crate) const DETAIL_MAX: usize = 64;
/// `Report::flags`: the child panicked at the place the report names.
const PANICKED: u32 = 1;

/// The wire form: plain old data, written in one `write(2)`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Report {
    kind: u32,
    index: u32,
    value: i32,
    flags: u32,
    detail_len: u32,
    detail: [u8; DETAIL_MAX],
}

impl Report {
    /// Size on the wire (84 bytes, below `PIPE_BUF`: written atomically).
    pub(crate) const SIZE: usize = std::mem::size_of::<Report>();

    const fn new(kind: ReportKind, index: u32, value: i32) -> Report {
        Report {
            kind: kind as u32,
            index,
            value,
            flags: 0,
            detail_len: 0,
            detail: [0; DETAIL_MAX],
        }
    }

    /// A failure (child side: no allocation).
    pub(crate) fn failure(e: &ChildError<&str>) -> Report {
        let (kind, index) = match e.at {
            At::Step(i) => (ReportKind::Step, i as u32),
            At::Join(i) => (ReportKind::Join, i as u32),
            At::Phase(p) => (ReportKind::Phase, p as u32),
        };
        let mut r = Report::new(kind, index, e.errno);
        if e.panicked {
            r.flags |= PANICKED;
        }
        let n = e.detail.len().min(DETAIL_MAX);
        r.detail[..n].copy_from_slice(&e.detail.as_bytes()[..n]);
        r.detail_len = n as u32;
        r
    }

    /// [`ReportKind::Pid`] with the real process's pid.
    pub(crate) const fn pid(pid: i32) -> Report {
        Report::new(ReportKind::Pid, 0, pid)
    }

    /// [`ReportKind::Ready`].
    pub(crate) const fn ready() -> Report {
        Report::new(ReportKind::Ready, 0, 0)
    }

    /// [`ReportKind::Netns`].
    pub(crate) const fn netns() -> Report {
        Report::new(ReportKind::Netns, 0, 0)
    }

    /// The bytes to write (child side: on the stack, no allocation), laid
    /// out as [`from_bytes`](Self::from_bytes) reads them: five native-endian
    /// words, then the detail.
    pub(crate) fn to_bytes(self) -> [u8; Report::SIZE] {
        let mut b = [0u8; Report::SIZE];
        let (words, detail) = b.split_at_mut(20);
        let fields = [
            self.kind,
            self.index,
            self.value as u32,
            self.flags,
            self.detail_len,
        ];
        for (w, f) in words.chunks_exact_mut(4).zip(fields) {
            w.copy_from_slice(&f.to_ne_bytes());
        }
        detail.copy_from_slice(&self.detail);
        b
    }

    /// Parse the bytes of one report (parent side).
    pub(crate) fn from_bytes(b: &[u8; Report::SIZE]) -> Report {
        let word = |i: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&b[i * 4..i * 4 + 4]);
            u32::from_ne_bytes(w)
        };
        let mut detail = [0u8; DETAIL_MAX];
        detail.copy_from_slice(&b[20..20 + DETAIL_MAX]);
        Report {
            kind: word(0),
            index: word(1),
            value: word(2) as i32,
            flags: word(3),
            detail_len: word(4),
            detail,
        }
    }

    /// The typed message, or `InvalidData` for a report no child writes.
    pub(crate) fn decode(&self) -> io::Result<Message> {
        let bad = || {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unknown child report {self:?}"),
            )
        };
        let kind = ReportKind::from_u32(self.kind).ok_or_else(bad)?;
        let at = match kind {
            ReportKind::Pid => return Ok(Message::Pid(self.value)),
            ReportKind::Ready => return Ok(Message::Ready),
            ReportKind::Netns => return Ok(Message::Netns),
            ReportKind::Step => At::Step(self.index as usize),
            ReportKind::Join => At::Join(self.index as usize),
            ReportKind::Phase => At::Phase(Phase::from_u32(self.index).ok_or_else(bad)?),
        };
        let n = (self.detail_len as usize).min(DETAIL_MAX);
        Ok(Message::Failed(ChildError {
            at,
            errno: self.value,
            detail: String::from_utf8_lossy(&self.detail[..n]).into_owned(),
            panicked: self.flags & PANICKED != 0,
        }))
    }
}

// One write(2) of a report is atomic (pipe(7): up to PIPE_BUF bytes), and
// the five words before the detail leave no padding.
const _: () = assert!(Report::SIZE == 20 + DETAIL_MAX && Report::SIZE <= libc::PIPE_BUF);

/// Write `r` to the error pipe (child side; a failed write is ignored:
/// the parent then sees EOF, or the exit, instead).
pub(crate) fn send(fd: RawFd, r: &Report) {
    let _ = crate::sys::write_all(fd, &r.to_bytes());
}

/// Read one whole report; `Ok(None)` at EOF (the child exec'd or exited
/// without a report), `UnexpectedEof` if it stopped mid-report.
pub(crate) fn read(fd: BorrowedFd<'_>) -> io::Result<Option<Message>> {
    let mut buf = [0u8; Report::SIZE];
    let mut got = 0usize;
    while got < Report::SIZE {
        let n = match berth_sys::fs::read(fd, &mut buf[got..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "truncated report",
                ))
            };
        }
        got += n;
    }
    Report::from_bytes(&buf).decode().map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(r: &Report) -> Message {
        let b: [u8; Report::SIZE] = r.to_bytes();
        Report::from_bytes(&b).decode().unwrap()
    }

    /// The wire format is the `repr(C)` struct's memory, as it was when
    /// reports were written by viewing the struct as bytes.
    #[test]
    fn wire_bytes_are_the_struct_in_memory() {
        let e = ChildError {
            at: At::Join(2),
            errno: -5,
            detail: "capset",
            panicked: true,
        };
        for r in [Report::failure(&e), Report::pid(7), Report::ready()] {
            // SAFETY: Report is repr(C) plain old data without padding.
            let mem = unsafe {
                std::slice::from_raw_parts((&r as *const Report).cast::<u8>(), Report::SIZE)
            };
            assert_eq!(&r.to_bytes()[..], mem);
        }
    }

    #[test]
    fn failures_round_trip() {
        for at in [At::Step(3), At::Join(1), At::Phase(Phase::Exec)] {
            let e = ChildError {
                at,
                errno: libc::ENOENT,
                detail: "",
                panicked: false,
            };
            let want = ChildError {
                at,
                errno: libc::ENOENT,
                detail: String::new(),
                panicked: false,
            };
            assert_eq!(roundtrip(&Report::failure(&e)), Message::Failed(want));
        }
    }

    #[test]
    fn hook_detail_and_panic_survive() {
        let e = ChildError {
            at: At::Step(0),
            errno: libc::EPERM,
            detail: "seccomp(SECCOMP_SET_MODE_FILTER)",
            panicked: false,
        };
        let Message::Failed(got) = roundtrip(&Report::failure(&e)) else {
            panic!("not a failure")
        };
        assert_eq!(got.detail, "seccomp(SECCOMP_SET_MODE_FILTER)");
        assert_eq!(got.errno, libc::EPERM);
        let long = "x".repeat(DETAIL_MAX + 10);
        let e = ChildError {
            at: At::Phase(Phase::Setup),
            errno: 0,
            detail: long.as_str(),
            panicked: true,
        };
        let Message::Failed(got) = roundtrip(&Report::failure(&e)) else {
            panic!("not a failure")
        };
        assert!(got.panicked);
        assert_eq!(got.at, At::Phase(Phase::Setup));
        assert_eq!(got.detail.len(), DETAIL_MAX);
    }

    #[test]
    fn control_messages_round_trip() {
        assert_eq!(roundtrip(&Report::pid(42)), Message::Pid(42));
        assert_eq!(roundtrip(&Report::ready()), Message::Ready);
        assert_eq!(roundtrip(&Report::netns()), Message::Netns);
    }

    #[test]
    fn every_phase_decodes_to_itself() {
        for v in 0..=Phase::Setup as u32 {
            assert_eq!(Phase::from_u32(v).map(|p| p as u32), Some(v));
        }
        assert_eq!(Phase::from_u32(Phase::Setup as u32 + 1), None);
    }

    #[test]
    fn unknown_reports_are_errors() {
        let mut r = Report::ready();
        r.kind = 99;
        assert_eq!(r.decode().unwrap_err().kind(), io::ErrorKind::InvalidData);
        let mut r = Report::new(ReportKind::Phase, 999, libc::EIO);
        r.flags = 0;
        assert!(r.decode().is_err());
    }

    #[test]
    fn pipe_read_whole_truncated_and_eof() {
        use std::os::fd::{AsFd, AsRawFd};
        let (rd, wr) = std::io::pipe().unwrap();
        let r = Report::pid(7);
        crate::sys::write_all(wr.as_raw_fd(), &r.to_bytes()).unwrap();
        crate::sys::write_all(wr.as_raw_fd(), &r.to_bytes()[..5]).unwrap();
        drop(wr);
        assert_eq!(read(rd.as_fd()).unwrap(), Some(Message::Pid(7)));
        assert_eq!(
            read(rd.as_fd()).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        assert_eq!(read(rd.as_fd()).unwrap(), None);
    }
}
