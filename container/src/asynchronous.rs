//! The async (tokio) API, feature `tokio`: the same containers, awaited
//! instead of blocked on.
//!
//! - Waiting is the readiness of the init's pidfd (a pidfd polls readable
//!   when its process exits, Linux 5.3; `pidfd_open(2)`), registered with
//!   tokio's reactor ([`AsyncFd`]): a thousand waits are a thousand epoll
//!   entries, not a thousand threads.
//! - Spawning (clone plus the setup plan, a few milliseconds) and teardown
//!   run on tokio's blocking pool (`spawn_blocking`). That is safe: a
//!   container's life is tied to the owning *process*, not to the pooled
//!   thread that spawned it (berth-namespaces' owner thread).
//! - Output is read from the stdio pipes through tokio's pipe type.
//! - Events are inotify on `cgroup.events`/`memory.events` plus the pidfd,
//!   both in the reactor: no polling interval.
//!
//! Cancel safety: dropping any of these futures at any await point leaves
//! a well-defined state. A future borrowing the container
//! (`wait_async`) leaves it as it was (running, or exited and not yet
//! reaped): `destroy` or `Drop` cleans it. A future owning it
//! (`output_async`, `wait_with_output_async`) drops it, and `Drop`
//! removes process, mounts, cgroup, network and state directory. A spawn
//! already running on the blocking pool finishes there and the container
//! it made is dropped, which removes it the same way.
//!
//! ```no_run
//! # async fn demo() -> Result<(), berth::Error> {
//! use berth::Container;
//! let out = Container::builder("job-1")
//!     .command(["/bin/sh", "-c", "echo hi"])
//!     .output_async()
//!     .await?;
//! assert_eq!(out.stdout, b"hi\n");
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::process::{ExitStatus, Output};
use std::task::{Context, Poll};
use std::time::Instant;

use berth_cgroups::asynchronous::AsyncEventWatcher;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::unix::pipe;

use crate::container::{container_event, Container, ContainerEvent};
use crate::error::{Error, Result};
use crate::exec::{Exec, ExecChild};
use crate::ContainerBuilder;

/// Run `f` on tokio's blocking pool. Dropped before it finishes, `f` still
/// runs to its end there and its result is dropped (a `Container` or
/// `ExecChild` made meanwhile is removed/killed by its `Drop`).
async fn blocking<T: Send + 'static>(
    id: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(Error::Process {
            what: "run on tokio's blocking pool",
            id: id.to_string(),
            source: io::Error::other(e.to_string()),
        }),
    }
}

/// A pidfd in tokio's reactor (a duplicate: the handle keeps its own).
fn register_pidfd(pidfd: BorrowedFd<'_>, id: &str) -> Result<AsyncFd<OwnedFd>> {
    let err = |source| Error::Process {
        what: "register the pidfd with tokio",
        id: id.to_string(),
        source,
    };
    // AsyncFd panics outside a runtime: say so as an error instead.
    if let Err(e) = tokio::runtime::Handle::try_current() {
        return Err(err(io::Error::other(e.to_string())));
    }
    let fd = pidfd.try_clone_to_owned().map_err(err)?;
    // SAFETY: the OwnedFd is moved into the AsyncFd and stays open, the
    // same fd, until the AsyncFd is dropped.
    unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
        .map_err(|e| err(e.into_parts().1))
}

/// Until the process of `pidfd` has exited (readable pidfd, Linux 5.3);
/// it is not reaped. Cancel-safe: nothing changes while it waits.
async fn exited(pidfd: BorrowedFd<'_>, id: &str) -> Result<()> {
    let fd = register_pidfd(pidfd, id)?;
    let ready = fd.readable().await.map_err(|source| Error::Process {
        what: "await the pidfd",
        id: id.to_string(),
        source,
    })?;
    // The registration goes with `fd`: nothing to clear.
    drop(ready);
    Ok(())
}

/// One output pipe being read.
struct Pipe {
    rx: pipe::Receiver,
    buf: Vec<u8>,
    open: bool,
}

/// The piped stdout (`[0]`) and stderr (`[1]`) of a process, read through
/// tokio pipes.
struct Captured {
    pipes: [Option<Pipe>; 2],
    id: String,
}

impl Captured {
    fn new(
        id: &str,
        stdout: Option<std::process::ChildStdout>,
        stderr: Option<std::process::ChildStderr>,
    ) -> Result<Captured> {
        let pipe = |fd: Option<OwnedFd>| -> Result<Option<Pipe>> {
            fd.map(|fd| {
                let rx = pipe::Receiver::from_owned_fd(fd).map_err(|e| pipe_error(id, e))?;
                Ok(Pipe {
                    rx,
                    buf: Vec::new(),
                    open: true,
                })
            })
            .transpose()
        };
        Ok(Captured {
            pipes: [
                pipe(stdout.map(OwnedFd::from))?,
                pipe(stderr.map(OwnedFd::from))?,
            ],
            id: id.to_string(),
        })
    }

    /// Read until both pipes reach EOF, or until `until` passes (then
    /// `Ok(true)`). Cancel-safe: what was read so far is in the buffers.
    async fn collect(&mut self, until: Option<Instant>) -> Result<bool> {
        let mut sleep = until.map(|d| Box::pin(tokio::time::sleep_until(d.into())));
        let mut chunk = vec![0u8; 16384];
        loop {
            if !self.pipes.iter().flatten().any(|p| p.open) {
                return Ok(false);
            }
            let pipes = &self.pipes;
            let ready = std::future::poll_fn(|cx| {
                for (i, p) in pipes.iter().enumerate() {
                    let Some(p) = p.as_ref().filter(|p| p.open) else {
                        continue;
                    };
                    if let Poll::Ready(r) = p.rx.poll_read_ready(cx) {
                        return Poll::Ready(r.map(|()| Some(i)));
                    }
                }
                if let Some(s) = sleep.as_mut() {
                    if s.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Ok(None));
                    }
                }
                Poll::Pending
            })
            .await;
            let p = match ready {
                Ok(Some(i)) => self.pipes[i].as_mut(),
                Ok(None) => return Ok(true),
                Err(source) => return Err(pipe_error(&self.id, source)),
            };
            let Some(p) = p else { continue };
            match p.rx.try_read(&mut chunk) {
                Ok(0) => p.open = false,
                Ok(n) => p.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(pipe_error(&self.id, source)),
            }
        }
    }

    /// The output with `status` and what was read.
    fn output(self, status: ExitStatus) -> Output {
        let [out, err] = self.pipes;
        Output {
            status,
            stdout: out.map(|p| p.buf).unwrap_or_default(),
            stderr: err.map(|p| p.buf).unwrap_or_default(),
        }
    }
}

fn pipe_error(id: &str, source: io::Error) -> Error {
    Error::Process {
        what: "read the output pipes",
        id: id.to_string(),
        source,
    }
}

impl ContainerBuilder {
    /// [`spawn`](Self::spawn) on tokio's blocking pool (the clone and the
    /// setup plan take a few milliseconds). Dropped before it completes,
    /// the spawn finishes on the pool and the container is removed.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), berth::Error> {
    /// let mut c = berth::Container::builder("svc")
    ///     .command(["sleep", "1"])
    ///     .spawn_async()
    ///     .await?;
    /// let status = c.wait_async().await?;
    /// c.destroy_async().await?;
    /// # Ok(()) }
    /// ```
    pub async fn spawn_async(self) -> Result<Container> {
        let id = self.id.clone();
        blocking(&id, move || self.spawn()).await
    }

    /// [`output`](Self::output), awaited: stdout and stderr captured
    /// through tokio pipes, the builder's [`timeout`](Self::timeout) a
    /// tokio timer (so with a timeout the runtime needs its timer:
    /// `enable_time` or `enable_all`), the container removed before it
    /// returns.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), berth::Error> {
    /// let out = berth::Container::builder("job")
    ///     .command(["/bin/sh", "-c", "echo hi; exit 3"])
    ///     .timeout(std::time::Duration::from_secs(10))
    ///     .output_async()
    ///     .await?;
    /// assert_eq!(out.status.code(), Some(3));
    /// # Ok(()) }
    /// ```
    pub async fn output_async(mut self) -> Result<Output> {
        self.output_stdio();
        self.spawn_async().await?.wait_with_output_async().await
    }

    /// [`status`](Self::status), awaited.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), berth::Error> {
    /// let st = berth::Container::builder("job").command(["true"]).status_async().await?;
    /// assert!(st.success());
    /// # Ok(()) }
    /// ```
    pub async fn status_async(self) -> Result<ExitStatus> {
        let c = self.spawn_async().await?;
        c.wait_with_output_async().await.map(|o| o.status)
    }
}

impl Container {
    /// [`wait`](Self::wait), awaited: sleeps on the init's pidfd in tokio's
    /// reactor (no thread per wait), then reaps it. Cancel-safe: dropped
    /// (say by `tokio::time::timeout`), the container is untouched;
    /// [`destroy`](Self::destroy) or `Drop` still removes it.
    ///
    /// ```no_run
    /// # async fn demo(mut c: berth::Container) -> Result<(), berth::Error> {
    /// use std::time::Duration;
    /// match tokio::time::timeout(Duration::from_secs(5), c.wait_async()).await {
    ///     Ok(status) => println!("exited: {:?}", status?),
    ///     Err(_) => c.kill()?,
    /// }
    /// c.destroy_async().await?;
    /// # Ok(()) }
    /// ```
    pub async fn wait_async(&mut self) -> Result<ExitStatus> {
        if let Some(s) = self.status {
            return Ok(s);
        }
        if let Some(child) = &self.child {
            exited(child.pidfd(), &self.id).await?;
        }
        // Exited: waitid returns at once.
        self.wait()
    }

    /// [`wait_with_output`](Self::wait_with_output), awaited: reads the
    /// piped stdout and stderr together, honours the builder's
    /// [`timeout`](ContainerBuilder::timeout) (kill, then
    /// [`Error::Timeout`] with what was captured), and removes the
    /// container on the blocking pool. Dropped midway, the container is
    /// dropped, which removes it.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), berth::Error> {
    /// use berth::{Container, Stdio};
    /// let c = Container::builder("c")
    ///     .command(["echo", "hi"])
    ///     .stdout(Stdio::Piped)
    ///     .spawn_async()
    ///     .await?;
    /// let out = c.wait_with_output_async().await?;
    /// # Ok(()) }
    /// ```
    pub async fn wait_with_output_async(mut self) -> Result<Output> {
        drop(self.stdin.take());
        let id = self.id.clone();
        let mut captured = Captured::new(&id, self.stdout.take(), self.stderr.take())?;
        let deadline = self.timeout.map(|(start, limit)| start + limit);
        let mut timed_out = captured.collect(deadline).await?;
        if timed_out {
            self.kill()?;
            let drain = Instant::now() + crate::output::DRAIN_AFTER_KILL;
            captured.collect(Some(drain)).await?;
        }
        let status = match deadline {
            Some(d) if !timed_out => {
                let left = d.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, self.wait_async()).await {
                    Ok(s) => s?,
                    Err(_) => {
                        timed_out = true;
                        self.kill()?;
                        self.wait_async().await?
                    }
                }
            }
            _ => self.wait_async().await?,
        };
        let output = captured.output(status);
        let limit = self.timeout.map(|(_, l)| l);
        self.destroy_async().await?;
        crate::output::timed_result(id, limit, timed_out, output)
    }

    /// [`destroy`](Self::destroy) on tokio's blocking pool (killing,
    /// reaping and removing the cgroup can take milliseconds). Dropped
    /// before it completes, the removal still finishes there.
    ///
    /// ```no_run
    /// # async fn demo(c: berth::Container) -> Result<(), berth::Error> {
    /// c.destroy_async().await?;
    /// # Ok(()) }
    /// ```
    pub async fn destroy_async(self) -> Result<()> {
        let id = self.id.clone();
        blocking(&id, move || self.destroy()).await
    }

    /// An async [`Stream`](futures_core::Stream) of the container's
    /// events: [`Started`](ContainerEvent::Started) first when its
    /// workload has been started, then as they happen
    /// [`Paused`](ContainerEvent::Paused)/[`Resumed`](ContainerEvent::Resumed)
    /// (`cgroup.events` `frozen`), [`OomKill`](ContainerEvent::OomKill) and
    /// [`MemoryMax`](ContainerEvent::MemoryMax) (`memory.events`), and
    /// [`Exited`](ContainerEvent::Exited) last (the pidfd readable), after
    /// which the stream ends. Nothing polls: inotify and the pidfd sit in
    /// tokio's reactor. Needs a tokio runtime with IO enabled. A container
    /// made with [`create`](ContainerBuilder::create) reports `Started`
    /// only if the stream is made after [`start`](Self::start).
    ///
    /// ```no_run
    /// # async fn demo(c: berth::Container) -> Result<(), berth::Error> {
    /// use berth::ContainerEvent;
    /// let mut events = c.events_async()?;
    /// while let Some(e) = events.next().await {
    ///     match e? {
    ///         ContainerEvent::OomKill { count } => eprintln!("{count} OOM kills"),
    ///         ContainerEvent::Exited => break,
    ///         _ => {}
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn events_async(&self) -> Result<AsyncEvents> {
        let watcher = match &self.cgroup {
            Some(c) => Some(AsyncEventWatcher::new(c.watch()?)?),
            None => None,
        };
        let mut pending = VecDeque::new();
        let pidfd = match (&self.child, self.status) {
            (Some(child), None) => {
                if !child.is_created_only() {
                    pending.push_back(ContainerEvent::Started);
                }
                Some(register_pidfd(child.pidfd(), &self.id)?)
            }
            _ => {
                // Already reaped: the stream says so and ends.
                pending.push_back(ContainerEvent::Exited);
                None
            }
        };
        Ok(AsyncEvents {
            watcher,
            pidfd,
            pending,
        })
    }
}

/// The async events of one container ([`Container::events_async`]): a
/// [`futures_core::Stream`] of `Result<ContainerEvent>`, and an inherent
/// [`next`](Self::next) so no extension trait is needed. It holds its own
/// duplicate of the pidfd and its own inotify watch: it outlives the
/// borrow of the container and may move to another task.
#[derive(Debug)]
pub struct AsyncEvents {
    watcher: Option<AsyncEventWatcher>,
    /// `None` once `Exited` was queued: the stream ends after it.
    pidfd: Option<AsyncFd<OwnedFd>>,
    pending: VecDeque<ContainerEvent>,
}

impl AsyncEvents {
    /// The next event; `None` after [`Exited`](ContainerEvent::Exited).
    /// Cancel-safe: an event is only taken from the queue when returned.
    ///
    /// ```no_run
    /// # async fn demo(c: berth::Container) -> Result<(), berth::Error> {
    /// let mut events = c.events_async()?;
    /// let first = events.next().await;
    /// # Ok(()) }
    /// ```
    pub async fn next(&mut self) -> Option<Result<ContainerEvent>> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<ContainerEvent>>> {
        if let Some(e) = self.pending.pop_front() {
            return Poll::Ready(Some(Ok(e)));
        }
        let Some(pidfd) = &self.pidfd else {
            return Poll::Ready(None);
        };
        // cgroup changes first: an OOM kill is counted before its victim exits.
        if let Some(w) = &mut self.watcher {
            // Until a reported change, or Pending (the waker registered):
            // changes berth does not report (populated, memory.high...)
            // are passed over.
            while self.pending.is_empty() {
                match w.poll_next(cx) {
                    Poll::Ready(Ok(events)) => self
                        .pending
                        .extend(events.into_iter().filter_map(container_event)),
                    Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                    Poll::Pending => break,
                }
            }
        }
        if let Poll::Ready(r) = pidfd.poll_read_ready(cx) {
            if let Err(e) = r {
                return Poll::Ready(Some(Err(Error::Process {
                    what: "await the pidfd",
                    id: String::new(),
                    source: e,
                })));
            }
            // The counters are updated before the victim dies, but their
            // inotify event comes from a work queue and can trail the
            // pidfd: read the files once more before the stream ends.
            if let Some(w) = &mut self.watcher {
                match w.read_now() {
                    Ok(events) => self
                        .pending
                        .extend(events.into_iter().filter_map(container_event)),
                    Err(e) => return Poll::Ready(Some(Err(e.into()))),
                }
            }
            self.pending.push_back(ContainerEvent::Exited);
            self.pidfd = None;
        }
        match self.pending.pop_front() {
            Some(e) => Poll::Ready(Some(Ok(e))),
            None => Poll::Pending,
        }
    }
}

impl futures_core::Stream for AsyncEvents {
    type Item = Result<ContainerEvent>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_event(cx)
    }
}

impl Exec<'_> {
    /// [`spawn`](Self::spawn) on tokio's blocking pool (the `setns` and
    /// clone). Dropped before it completes, the process it started is
    /// killed (unless [`detach`](Self::detach)ed).
    ///
    /// ```no_run
    /// # async fn demo(c: berth::Container) -> Result<(), berth::Error> {
    /// let mut child = c.exec(["sleep", "1"]).spawn_async().await?;
    /// child.wait_async().await?;
    /// # Ok(()) }
    /// ```
    pub async fn spawn_async(self) -> Result<ExecChild> {
        let exec = self.into_owned(false)?;
        let id = exec.id().to_string();
        blocking(&id, move || exec.spawn()).await
    }

    /// [`output`](Self::output), awaited: stdout and stderr piped and read
    /// through tokio pipes.
    ///
    /// ```no_run
    /// # async fn demo(c: berth::Container) -> Result<(), berth::Error> {
    /// let out = c.exec(["hostname"]).output_async().await?;
    /// # Ok(()) }
    /// ```
    pub async fn output_async(self) -> Result<Output> {
        let exec = self.into_owned(true)?;
        let id = exec.id().to_string();
        let child = blocking(&id, move || exec.spawn()).await?;
        child.wait_with_output_async().await
    }

    /// [`status`](Self::status), awaited.
    ///
    /// ```no_run
    /// # async fn demo(c: berth::Container) -> Result<(), berth::Error> {
    /// let st = c.exec(["true"]).status_async().await?;
    /// # Ok(()) }
    /// ```
    pub async fn status_async(self) -> Result<ExitStatus> {
        self.spawn_async().await?.wait_async().await
    }
}

impl ExecChild {
    /// [`wait`](Self::wait), awaited on the process's pidfd. Cancel-safe:
    /// dropped, the process is untouched (and killed when this handle is
    /// dropped, unless detached).
    ///
    /// ```no_run
    /// # async fn demo(c: berth::Container) -> Result<(), berth::Error> {
    /// let mut child = c.exec(["true"]).spawn_async().await?;
    /// let st = child.wait_async().await?;
    /// # Ok(()) }
    /// ```
    pub async fn wait_async(&mut self) -> Result<ExitStatus> {
        drop(self.stdin.take());
        if let Some(fd) = self.pidfd() {
            exited(fd, "exec").await?;
        }
        self.wait()
    }

    /// [`wait_with_output`](Self::wait_with_output), awaited: the piped
    /// stdout and stderr read together through tokio pipes.
    ///
    /// ```no_run
    /// # async fn demo(c: berth::Container) -> Result<(), berth::Error> {
    /// use berth::Stdio;
    /// let child = c.exec(["date"]).stdout(Stdio::Piped).spawn_async().await?;
    /// let out = child.wait_with_output_async().await?;
    /// # Ok(()) }
    /// ```
    pub async fn wait_with_output_async(mut self) -> Result<Output> {
        drop(self.stdin.take());
        let mut captured = Captured::new("exec", self.stdout.take(), self.stderr.take())?;
        captured.collect(None).await?;
        let status = self.wait_async().await?;
        Ok(captured.output(status))
    }
}

impl crate::NetworkBuilder {
    /// [`create`](Self::create) on tokio's blocking pool (netlink
    /// round-trips, nft rules, file locks). Dropped before it completes,
    /// the network is still made: remove it with
    /// [`Network::remove_async`](crate::Network::remove_async).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), berth::Error> {
    /// let net = berth::Network::create("mynet").subnet("10.89.0.0/24").create_async().await?;
    /// # Ok(()) }
    /// ```
    pub async fn create_async(self) -> Result<crate::Network> {
        blocking("network", move || self.create()).await
    }
}

impl crate::Network {
    /// [`remove`](Self::remove) on tokio's blocking pool; dropped before it
    /// completes, the removal still finishes there.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), berth::Error> {
    /// berth::Network::open(None, "mynet")?.remove_async().await?;
    /// # Ok(()) }
    /// ```
    pub async fn remove_async(self) -> Result<()> {
        blocking("network", move || self.remove()).await
    }
}
