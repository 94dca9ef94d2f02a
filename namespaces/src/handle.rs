//! The handle of a spawned process: owns its pidfd.

use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::{ChildStderr, ChildStdin, ChildStdout, ExitStatus};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::protocol::{At, ChildError};
use berth_sys::poll::PollFlags;

/// A borrowed view of a just-cloned child, given to the
/// [`after_clone`](crate::Spawner::after_clone) hook.
#[derive(Debug, Clone, Copy)]
pub struct ChildRef<'a> {
    pub(crate) pid: i32,
    pub(crate) pidfd: BorrowedFd<'a>,
}

impl ChildRef<'_> {
    /// The child's pid (in the spawner's pid namespace), e.g. for
    /// `/proc/<pid>/ns/net` or moving a veth peer into its netns.
    pub fn pid(&self) -> i32 {
        self.pid
    }
    /// The child's pidfd (`setns(pidfd, CLONE_NEWNET)` works on it, Linux 5.8).
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd
    }
}

pub(crate) struct Pending {
    pub start_w: OwnedFd,
    pub err_r: OwnedFd,
    /// What can fail after `start()`, for its error.
    pub after_start: AfterStart,
}

/// What runs in a two-phase child after `start()`: the final steps, then
/// `execve`, described for the error of a failure.
pub(crate) struct AfterStart {
    /// The program to `execve`.
    pub program: std::ffi::OsString,
    /// Index of the first final step in the plan.
    pub first_final: usize,
    /// The final steps, described.
    pub final_steps: Vec<String>,
}

/// A spawned process, owning a pidfd for race-free `wait`/`kill`
/// (pidfd_open(2), Linux 5.3).
///
/// Dropping a `Child` that was not waited for kills it with `SIGKILL` and
/// reaps it, so no process outlives its handle by accident; use
/// [`into_pidfd`](Self::into_pidfd) to let it run on.
///
/// ```no_run
/// use berth_namespaces::{Namespaces, Spawner};
/// let mut child = Spawner::new(["/bin/sleep", "10"]).namespaces(Namespaces::PID).spawn()?;
/// println!("pid {} (pidfd held)", child.pid());
/// child.kill(libc::SIGTERM)?;
/// let status = child.wait()?;
/// # Ok::<(), berth_namespaces::Error>(())
/// ```
#[derive(Debug)]
pub struct Child {
    pub(crate) pid: i32,
    pub(crate) pidfd: Option<OwnedFd>,
    pub(crate) status: Option<ExitStatus>,
    pub(crate) pending: Option<Pending>,
    /// The child's new mount namespace, held until it is reaped
    /// ([`Spawner::background_teardown`](crate::Spawner::background_teardown)).
    pub(crate) held_mnt_ns: Option<OwnedFd>,
    /// The child's stdin when [`Stdio::Piped`](crate::Stdio::Piped).
    pub stdin: Option<ChildStdin>,
    /// The child's stdout when [`Stdio::Piped`](crate::Stdio::Piped).
    pub stdout: Option<ChildStdout>,
    /// The child's stderr when [`Stdio::Piped`](crate::Stdio::Piped).
    pub stderr: Option<ChildStderr>,
}

impl AfterStart {
    /// The error of a failure after `start()`: a final step's (the plan's
    /// last `final_steps.len()` steps), else `execve`'s.
    fn error(&self, e: &ChildError<String>) -> Error {
        if let At::Step(i) = e.at {
            if let Some(desc) = i
                .checked_sub(self.first_final)
                .and_then(|k| self.final_steps.get(k))
            {
                return crate::spawn::step_error(desc.clone(), Some(i), e);
            }
        }
        crate::spawn::exec_error(&self.program, e.errno)
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("program", &self.after_start.program)
            .finish()
    }
}

/// `waitid(P_PIDFD, fd, WEXITED [| WNOHANG])` (Linux 5.4, berth-sys's
/// `pidfd::wait`): `Ok(None)` when `nohang` found it still running.
pub(crate) use berth_sys::pidfd::wait as waitid_pidfd;

/// `pidfd_send_signal(2)`, Linux 5.1 (berth-sys's `pidfd::send_signal`).
pub(crate) use berth_sys::pidfd::send_signal as pidfd_signal;

/// `pidfd_open(2)`, Linux 5.3 (berth-sys's `pidfd::open`, no flags).
pub(crate) fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    berth_sys::pidfd::open(pid, 0)
}

impl Child {
    fn fd(&self) -> Result<BorrowedFd<'_>> {
        self.pidfd
            .as_ref()
            .map(|f| f.as_fd())
            .ok_or_else(|| Error::invalid("the child's pidfd was given away"))
    }

    /// The process id, in the spawner's pid namespace. With
    /// [`Spawner::init`](crate::Spawner::init) this is the init; the
    /// workload is its child.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The pidfd (for `poll`, `setns`, [`Spawner::join_pidfd`](crate::Spawner::join_pidfd)).
    ///
    /// # Panics
    /// Never: the pidfd is only taken by [`into_pidfd`](Self::into_pidfd), which consumes `self`.
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        match &self.pidfd {
            Some(fd) => fd.as_fd(),
            // Unreachable: into_pidfd consumes self and Drop is the only other taker.
            None => unreachable!("pidfd taken"),
        }
    }

    /// True while the child waits (two-phase start) for [`start`](Self::start).
    pub fn is_created_only(&self) -> bool {
        self.pending.is_some()
    }

    /// Two-phase start: let a child spawned with
    /// [`Spawner::spawn_stopped`](crate::Spawner::spawn_stopped) call
    /// `execve`. Returns the exec error (e.g. `ENOENT`) if that fails.
    pub fn start(&mut self) -> Result<()> {
        let p = self
            .pending
            .take()
            .ok_or_else(|| Error::invalid(format!("child {} is already started", self.pid)))?;
        // One byte lets it go; our end is closed right after.
        std::io::PipeWriter::from(p.start_w)
            .write_all(&[1])
            .map_err(|e| Error::setup_io(format!("start child {}", self.pid), e))?;
        // After start() the child sends nothing but the failure of its
        // final steps or of execve.
        match crate::protocol::read(p.err_r.as_fd())
            .map_err(|e| Error::setup_io("read the child's error pipe", e))?
        {
            None => Ok(()),
            Some(crate::protocol::Message::Failed(e)) => Err(p.after_start.error(&e)),
            Some(m) => Err(Error::setup_io(
                format!("read the error pipe of child {}", self.pid),
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unexpected report {m:?}"),
                ),
            )),
        }
    }

    /// Wait for the child to exit (`waitid(P_PIDFD)`, Linux 5.4).
    pub fn wait(&mut self) -> Result<ExitStatus> {
        if let Some(st) = self.status {
            return Ok(st);
        }
        let fd = self.fd()?;
        let st = waitid_pidfd(fd, false)
            .map_err(|e| Error::setup_io(format!("waitid(pidfd of {})", self.pid), e))?
            .ok_or_else(|| Error::invalid("waitid returned no status"))?;
        self.reaped(st);
        Ok(st)
    }

    /// Record the exit status of the reaped child and let go of its held
    /// mount namespace on the background thread.
    fn reaped(&mut self, st: ExitStatus) {
        self.status = Some(st);
        if let Some(ns) = self.held_mnt_ns.take() {
            crate::release::release_in_background(ns);
        }
    }

    /// The exit status if the child has exited, without blocking.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if let Some(st) = self.status {
            return Ok(Some(st));
        }
        let fd = self.fd()?;
        let st = waitid_pidfd(fd, true)
            .map_err(|e| Error::setup_io(format!("waitid(pidfd of {})", self.pid), e))?;
        if let Some(st) = st {
            self.reaped(st);
        }
        Ok(st)
    }

    /// Wait at most `timeout` (poll(2) on the pidfd); `Ok(None)` if still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        if let Some(st) = self.status {
            return Ok(Some(st));
        }
        self.fd()?;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            let ready = match self
                .fd()
                .map(|fd| berth_sys::poll::poll_one(fd, PollFlags::POLLIN, ms))?
            {
                Ok(ready) => ready,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::setup_io(format!("poll(pidfd of {})", self.pid), e)),
            };
            if ready {
                return self.try_wait();
            }
            if left.is_zero() {
                return Ok(None);
            }
        }
    }

    /// Send `sig` with `pidfd_send_signal(2)` (Linux 5.1): never hits a
    /// recycled pid. `ESRCH` once the child has been reaped.
    pub fn kill(&mut self, sig: i32) -> Result<()> {
        if self.status.is_some() {
            return Err(Error::setup(
                format!("pidfd_send_signal({}, {sig})", self.pid),
                libc::ESRCH,
            ));
        }
        let fd = self.fd()?;
        pidfd_signal(fd, sig)
            .map_err(|e| Error::setup_io(format!("pidfd_send_signal({}, {sig})", self.pid), e))
    }

    /// Give up ownership: the child is neither killed nor reaped on drop.
    /// Returns its pidfd.
    pub fn into_pidfd(mut self) -> Option<OwnedFd> {
        self.pending = None;
        if let Some(ns) = self.held_mnt_ns.take() {
            crate::release::release_in_background(ns);
        }
        self.pidfd.take()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let held = self.held_mnt_ns.take();
        let Some(fd) = self.pidfd.take() else { return };
        if self.status.is_some() {
            return;
        }
        // Closing the start pipe makes a created-only child exit by itself; kill anyway.
        self.pending = None;
        if let Err(e) = pidfd_signal(fd.as_fd(), libc::SIGKILL) {
            tracing::warn!(pid = self.pid, error = %e, "killing dropped child failed");
        }
        if let Err(e) = waitid_pidfd(fd.as_fd(), false) {
            tracing::warn!(pid = self.pid, error = %e, "reaping dropped child failed");
        }
        if let Some(ns) = held {
            crate::release::release_in_background(ns);
        }
    }
}
