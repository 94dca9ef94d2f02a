//! Async (tokio) event watching: the [`EventWatcher`]'s inotify fd
//! registered with tokio's reactor ([`AsyncFd`]), so a task sleeps until
//! the kernel modifies `cgroup.events` or `memory.events` (kernfs
//! `IN_MODIFY`, `inotify(7)`): no thread per watcher, no polling.
//!
//! ```no_run
//! # async fn demo() -> Result<(), berth_cgroups::Error> {
//! use berth_cgroups::{asynchronous::AsyncEventWatcher, CgroupBuilder, Event};
//! let cg = CgroupBuilder::new("demo").create()?;
//! let mut w = AsyncEventWatcher::new(cg.watch()?)?;
//! cg.freeze()?;
//! let events = w.next().await?;
//! assert!(events.contains(&Event::Frozen));
//! # Ok(()) }
//! ```

use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::error::{Error, Result};
use crate::watch::{Event, EventWatcher};

/// An [`EventWatcher`] driven by tokio: [`next`](Self::next) awaits the
/// inotify fd's readiness. Needs a tokio runtime with IO enabled
/// (`enable_io`, or `enable_all`).
///
/// ```no_run
/// # async fn demo(cg: berth_cgroups::Cgroup) -> Result<(), berth_cgroups::Error> {
/// let mut w = berth_cgroups::asynchronous::AsyncEventWatcher::new(cg.watch()?)?;
/// for event in w.next().await? {
///     println!("{event:?}");
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AsyncEventWatcher {
    fd: AsyncFd<EventWatcher>,
    path: std::path::PathBuf,
}

impl AsyncEventWatcher {
    /// Register `watcher`'s inotify fd (non-blocking) with the current
    /// tokio runtime's reactor; an error outside a runtime. (A runtime
    /// built without IO, no `enable_io`, panics in tokio.)
    ///
    /// ```no_run
    /// # async fn demo(cg: berth_cgroups::Cgroup) -> Result<(), berth_cgroups::Error> {
    /// let w = berth_cgroups::asynchronous::AsyncEventWatcher::new(cg.watch()?)?;
    /// # Ok(()) }
    /// ```
    pub fn new(watcher: EventWatcher) -> Result<Self> {
        let path = watcher.path().to_path_buf();
        // AsyncFd panics outside a runtime: say so as an error instead.
        if let Err(e) = tokio::runtime::Handle::try_current() {
            return Err(Error::Sys {
                call: "register the inotify fd with tokio (no runtime)",
                path,
                source: std::io::Error::other(e.to_string()),
            });
        }
        // SAFETY: the watcher owns its inotify fd for its whole life and
        // `as_raw_fd` always returns that same fd.
        let fd = unsafe { AsyncFd::register_with_interest(watcher, Interest::READABLE) }.map_err(
            |e| Error::Sys {
                call: "register the inotify fd with tokio (AsyncFd::register)",
                path: path.clone(),
                source: e.into_parts().1,
            },
        )?;
        Ok(AsyncEventWatcher { fd, path })
    }

    /// The changes since the last call, waiting (without blocking the
    /// thread) until there is at least one. Cancel-safe: dropped at its
    /// await point, nothing is lost — the changes are computed from the
    /// files' state, so the next call reports them.
    ///
    /// ```no_run
    /// # async fn demo(mut w: berth_cgroups::asynchronous::AsyncEventWatcher) -> Result<(), berth_cgroups::Error> {
    /// let events: Vec<berth_cgroups::Event> = w.next().await?;
    /// # Ok(()) }
    /// ```
    pub async fn next(&mut self) -> Result<Vec<Event>> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// The poll form of [`next`](Self::next), for hand-written futures
    /// and streams: `Ready` with at least one change, or `Pending` with
    /// `cx`'s waker registered on the inotify fd.
    ///
    /// ```no_run
    /// # async fn demo(mut w: berth_cgroups::asynchronous::AsyncEventWatcher) -> Result<(), berth_cgroups::Error> {
    /// let events = std::future::poll_fn(|cx| w.poll_next(cx)).await?;
    /// # Ok(()) }
    /// ```
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<Vec<Event>>> {
        loop {
            let mut guard = match self.fd.poll_read_ready_mut(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(g)) => g,
                Poll::Ready(Err(source)) => {
                    return Poll::Ready(Err(Error::Sys {
                        call: "await the inotify fd (AsyncFd::poll_read_ready)",
                        path: self.path.clone(),
                        source,
                    }))
                }
            };
            // Drains the inotify queue to EAGAIN, then diffs the files: a
            // change after the drain queues a new inotify event, and tokio
            // keeps the readiness that event brings (clear_ready only
            // clears the readiness this guard saw).
            let events = guard.get_inner_mut().wait(Some(Duration::ZERO))?;
            guard.clear_ready();
            if !events.is_empty() {
                return Poll::Ready(Ok(events));
            }
        }
    }

    /// The changes since the last call, read now from the files without
    /// waiting for a notification (kernfs sends those from a work queue,
    /// so one can trail the change it reports).
    ///
    /// ```no_run
    /// # fn demo(mut w: berth_cgroups::asynchronous::AsyncEventWatcher) -> Result<(), berth_cgroups::Error> {
    /// let events = w.read_now()?;
    /// # Ok(()) }
    /// ```
    pub fn read_now(&mut self) -> Result<Vec<Event>> {
        self.fd.get_mut().wait(Some(Duration::ZERO))
    }

    /// The inner blocking watcher (for [`EventWatcher::state`] and
    /// [`EventWatcher::memory_events`]).
    ///
    /// ```no_run
    /// # fn demo(w: &berth_cgroups::asynchronous::AsyncEventWatcher) {
    /// let frozen = w.get_ref().state().frozen;
    /// # }
    /// ```
    pub fn get_ref(&self) -> &EventWatcher {
        self.fd.get_ref()
    }
}
