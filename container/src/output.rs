//! One-shot runs like [`std::process::Command`]: `output`, `status`,
//! `wait_with_output`, with an optional timeout that kills the container.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};

use berth_sys::poll::{poll_many, PollFlags};
use std::process::{ExitStatus, Output};
use std::time::{Duration, Instant};

use crate::container::Container;
use crate::error::{Error, Result};
use crate::{ContainerBuilder, Stdio};

/// How long the pipes are still drained after a timeout killed the
/// container (its last writers die with its pid namespace).
pub(crate) const DRAIN_AFTER_KILL: Duration = Duration::from_secs(2);

impl ContainerBuilder {
    /// A deadline for [`output`](Self::output), [`status`](Self::status)
    /// and [`Container::wait_with_output`], counted from the spawn: when it
    /// passes, the container is killed (`SIGKILL` to its init, which ends
    /// its whole pid namespace), removed like
    /// [`Container::destroy`] (no process, cgroup, mount or state
    /// directory left), and they return [`Error::Timeout`] carrying what
    /// was captured so far. [`Container::wait`] ignores it.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// let r = berth::Container::builder("c")
    ///     .command(["sleep", "100"])
    ///     .timeout(Duration::from_secs(1))
    ///     .output();
    /// assert!(matches!(r, Err(berth::Error::Timeout { .. })));
    /// ```
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// Run the container to completion and collect its output, like
    /// [`std::process::Command::output`]: stdout and stderr are captured
    /// (unless set to something else than the default
    /// [`Stdio::Inherit`]), stdin is `/dev/null` unless set. The container
    /// is removed before this returns. See [`timeout`](Self::timeout).
    ///
    /// ```no_run
    /// let out = berth::Container::builder("c")
    ///     .command(["/bin/sh", "-c", "echo hi; echo oops >&2; exit 3"])
    ///     .output()?;
    /// assert_eq!(out.stdout, b"hi\n");
    /// assert_eq!(out.stderr, b"oops\n");
    /// assert_eq!(out.status.code(), Some(3));
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn output(mut self) -> Result<Output> {
        self.output_stdio();
        self.spawn()?.wait_with_output()
    }

    /// What `output` captures: stdout and stderr piped and stdin
    /// `/dev/null` unless set.
    pub(crate) fn output_stdio(&mut self) {
        if matches!(self.stdin, Stdio::Inherit) {
            self.stdin = Stdio::Null;
        }
        if matches!(self.stdout, Stdio::Inherit) {
            self.stdout = Stdio::Piped;
        }
        if matches!(self.stderr, Stdio::Inherit) {
            self.stderr = Stdio::Piped;
        }
    }

    /// Run the container to completion and return its exit status, like
    /// [`std::process::Command::status`] (stdio as configured, inherited
    /// by default). The container is removed before this returns. See
    /// [`timeout`](Self::timeout).
    ///
    /// ```no_run
    /// let st = berth::Container::builder("c").command(["true"]).status()?;
    /// assert!(st.success());
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn status(self) -> Result<ExitStatus> {
        self.spawn()?.wait_with_output().map(|o| o.status)
    }
}

impl Container {
    /// Wait for the container to exit, collecting whatever of its stdout
    /// and stderr is [`Stdio::Piped`] (both read at once, so neither pipe
    /// can fill up and block it), then remove it
    /// ([`destroy`](Self::destroy)). Like
    /// [`std::process::Child::wait_with_output`]; honours the builder's
    /// [`timeout`](ContainerBuilder::timeout).
    ///
    /// ```no_run
    /// use berth::{Container, Stdio};
    /// let c = Container::builder("c")
    ///     .command(["echo", "hi"])
    ///     .stdout(Stdio::Piped)
    ///     .spawn()?;
    /// let out = c.wait_with_output()?;
    /// assert_eq!(out.stdout, b"hi\n");
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn wait_with_output(mut self) -> Result<Output> {
        drop(self.stdin.take());
        let deadline = self.timeout.map(|(start, limit)| start + limit);
        let mut timed_out = false;
        // Each pipe as a File (the same fd, read(2) the same way), which
        // both reads and lends its fd to poll.
        let mut streams: Vec<(std::fs::File, Vec<u8>)> = Vec::new();
        let mut out_ix = None;
        let mut err_ix = None;
        if let Some(s) = self.stdout.take() {
            out_ix = Some(streams.len());
            streams.push((OwnedFd::from(s).into(), Vec::new()));
        }
        if let Some(s) = self.stderr.take() {
            err_ix = Some(streams.len());
            streams.push((OwnedFd::from(s).into(), Vec::new()));
        }
        let mut open: Vec<usize> = (0..streams.len()).collect();
        let mut drain_until = None;
        while !open.is_empty() {
            let now = Instant::now();
            if !timed_out && deadline.is_some_and(|d| now >= d) {
                timed_out = true;
                self.kill()?;
                drain_until = Some(now + DRAIN_AFTER_KILL);
            }
            if drain_until.is_some_and(|d| now >= d) {
                break;
            }
            let until = drain_until.or(if timed_out { None } else { deadline });
            let ms = until.map_or(-1, |d| {
                d.saturating_duration_since(now)
                    .as_millis()
                    .min(i32::MAX as u128) as i32
            });
            let fds: Vec<_> = open.iter().map(|&i| streams[i].0.as_fd()).collect();
            let ready = match poll_many(&fds, PollFlags::POLLIN, ms) {
                Ok(r) => r,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.process_error("poll the output pipes", e)),
            };
            let mut closed = Vec::new();
            for (revents, &i) in ready.iter().zip(&open) {
                if revents.is_empty() {
                    continue;
                }
                let (r, buf) = &mut streams[i];
                let mut chunk = [0u8; 16384];
                match r.read(&mut chunk) {
                    Ok(0) => closed.push(i),
                    Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(self.process_error("read the output pipes", e)),
                }
            }
            open.retain(|i| !closed.contains(i));
        }
        let status = match deadline {
            Some(d) if !timed_out => {
                match self.wait_timeout(d.saturating_duration_since(Instant::now()))? {
                    Some(s) => s,
                    None => {
                        timed_out = true;
                        self.kill()?;
                        self.wait()?
                    }
                }
            }
            _ => self.wait()?,
        };
        let mut take = |ix: Option<usize>| {
            ix.map(|i| std::mem::take(&mut streams[i].1))
                .unwrap_or_default()
        };
        let output = Output {
            status,
            stdout: take(out_ix),
            stderr: take(err_ix),
        };
        let id = self.id.clone();
        let limit = self.timeout.map(|(_, l)| l);
        self.destroy()?;
        timed_result(id, limit, timed_out, output)
    }

    fn process_error(&self, what: &'static str, source: std::io::Error) -> Error {
        Error::Process {
            what,
            id: self.id.clone(),
            source,
        }
    }
}

/// `output`, or [`Error::Timeout`] carrying it when the builder's `limit`
/// passed and the container was killed.
pub(crate) fn timed_result(
    id: String,
    limit: Option<Duration>,
    timed_out: bool,
    output: Output,
) -> Result<Output> {
    match limit {
        Some(timeout) if timed_out => Err(Error::Timeout {
            id,
            timeout,
            output: Box::new(output),
        }),
        _ => Ok(output),
    }
}
