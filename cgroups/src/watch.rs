//! The event watcher: inotify on `cgroup.events` and `memory.events`.
//!
//! The kernel sends `IN_MODIFY` for these files when a value changes (kernfs
//! `file_modified` notification, cgroup v2 since 4.5; `inotify(7)`), so the
//! watcher sleeps in `poll(2)` until something happens: no periodic polling.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::cgroup::Cgroup;
use crate::error::{Error, Result};
use crate::stats::{CgroupEvents, MemoryEvents};
use crate::sys;

/// A change observed in a cgroup.
///
/// ```no_run
/// use berth_cgroups::{Cgroup, Event};
/// let cg = Cgroup::builder("job-12").create()?;
/// let mut w = cg.watch()?;
/// for e in w.wait(None)? {
///     if let Event::Empty = e {
///         println!("last process gone");
///     }
/// }
/// # Ok::<(), berth_cgroups::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The group (or a descendant) got its first process (`populated 1`).
    Populated,
    /// The group and its descendants became empty (`populated 0`).
    Empty,
    /// The group finished freezing (`frozen 1`).
    Frozen,
    /// The group was thawed (`frozen 0`).
    Thawed,
    /// Usage crossed `memory.high` `count` more times.
    MemoryHigh {
        /// New occurrences since the last report.
        count: u64,
    },
    /// Usage hit `memory.max` `count` more times.
    MemoryMax {
        /// New occurrences since the last report.
        count: u64,
    },
    /// Reclaim dipped into `memory.low` protection `count` more times.
    MemoryLow {
        /// New occurrences since the last report.
        count: u64,
    },
    /// The OOM killer was invoked for the group `count` more times.
    Oom {
        /// New occurrences since the last report.
        count: u64,
    },
    /// `count` more processes of the group were OOM-killed.
    OomKill {
        /// New occurrences since the last report.
        count: u64,
    },
    /// The whole group was OOM-killed `count` more times (`memory.oom.group`).
    OomGroupKill {
        /// New occurrences since the last report.
        count: u64,
    },
}

/// Watches one cgroup; see [`Cgroup::watch`]. The inotify fd is exposed
/// ([`AsFd`], [`AsRawFd`]) for use in an event loop: when it is readable, call
/// [`wait`](Self::wait) with a zero timeout.
///
/// ```no_run
/// let cg = berth_cgroups::Cgroup::builder("job-8").create()?;
/// let mut w = cg.watch()?; // inotify on cgroup.events and memory.events
/// println!("{w:?}");
/// # Ok::<(), berth_cgroups::Error>(())
/// ```
#[derive(Debug)]
#[doc(alias("inotify", "memory.events", "cgroup.events"))]
pub struct EventWatcher {
    inotify: berth_sys::inotify::Inotify,
    events_fd: OwnedFd,
    memory_fd: Option<OwnedFd>,
    path: PathBuf,
    last: CgroupEvents,
    last_mem: MemoryEvents,
    buf: Vec<u8>,
}

impl AsRawFd for EventWatcher {
    fn as_raw_fd(&self) -> RawFd {
        self.inotify.as_fd().as_raw_fd()
    }
}

/// The inotify fd, borrowed (for `poll(2)` beside other fds).
impl AsFd for EventWatcher {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.inotify.as_fd()
    }
}

impl EventWatcher {
    /// Start watching `cg`; the current state is the baseline (only changes
    /// after this call are reported).
    pub fn new(cg: &Cgroup) -> Result<Self> {
        let path = cg.path().to_path_buf();
        let sys_err = |call, source| Error::Sys {
            call,
            path: path.clone(),
            source,
        };
        let inotify =
            berth_sys::inotify::Inotify::new_nonblock().map_err(|e| sys_err("inotify_init1", e))?;
        let dirfd = cg.as_fd().as_raw_fd();
        let add = |file: &str| -> io::Result<()> {
            // Through /proc/self/fd so the watch follows our directory fd, not a path.
            inotify.watch_modify(std::path::Path::new(&format!(
                "/proc/self/fd/{dirfd}/{file}"
            )))
        };
        add("cgroup.events").map_err(|e| sys_err("inotify_add_watch(cgroup.events)", e))?;
        let events_fd = sys::openat(
            cg.as_fd(),
            OsStr::new("cgroup.events"),
            sys::OFlag::O_RDONLY,
        )
        .map_err(|source| Error::Open {
            path: path.join("cgroup.events"),
            source,
        })?;
        let memory_fd = match sys::openat(
            cg.as_fd(),
            OsStr::new("memory.events"),
            sys::OFlag::O_RDONLY,
        ) {
            Ok(fd) => {
                add("memory.events").map_err(|e| sys_err("inotify_add_watch(memory.events)", e))?;
                Some(fd)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(Error::Open {
                    path: path.join("memory.events"),
                    source,
                })
            }
        };
        let mut w = EventWatcher {
            inotify,
            events_fd,
            memory_fd,
            path,
            last: CgroupEvents::default(),
            last_mem: MemoryEvents::default(),
            buf: Vec::with_capacity(4096),
        };
        let (e, m) = w.read_state()?;
        w.last = e;
        w.last_mem = m;
        Ok(w)
    }

    fn read_state(&mut self) -> Result<(CgroupEvents, MemoryEvents)> {
        sys::pread_all(self.events_fd.as_fd(), &mut self.buf).map_err(|source| Error::Read {
            path: self.path.join("cgroup.events"),
            source,
        })?;
        let e = CgroupEvents::parse(&String::from_utf8_lossy(&self.buf))?;
        let m = match &self.memory_fd {
            Some(fd) => {
                sys::pread_all(fd.as_fd(), &mut self.buf).map_err(|source| Error::Read {
                    path: self.path.join("memory.events"),
                    source,
                })?;
                MemoryEvents::parse(&String::from_utf8_lossy(&self.buf))?
            }
            None => MemoryEvents::default(),
        };
        Ok((e, m))
    }

    fn diff(&mut self) -> Result<Vec<Event>> {
        let (e, m) = self.read_state()?;
        let mut out = Vec::new();
        if e.populated != self.last.populated {
            out.push(if e.populated {
                Event::Populated
            } else {
                Event::Empty
            });
        }
        if e.frozen != self.last.frozen {
            out.push(if e.frozen {
                Event::Frozen
            } else {
                Event::Thawed
            });
        }
        let o = self.last_mem;
        let d = |new: u64, old: u64| new.saturating_sub(old);
        if d(m.low, o.low) > 0 {
            out.push(Event::MemoryLow {
                count: d(m.low, o.low),
            });
        }
        if d(m.high, o.high) > 0 {
            out.push(Event::MemoryHigh {
                count: d(m.high, o.high),
            });
        }
        if d(m.max, o.max) > 0 {
            out.push(Event::MemoryMax {
                count: d(m.max, o.max),
            });
        }
        if d(m.oom, o.oom) > 0 {
            out.push(Event::Oom {
                count: d(m.oom, o.oom),
            });
        }
        if d(m.oom_kill, o.oom_kill) > 0 {
            out.push(Event::OomKill {
                count: d(m.oom_kill, o.oom_kill),
            });
        }
        if d(m.oom_group_kill, o.oom_group_kill) > 0 {
            out.push(Event::OomGroupKill {
                count: d(m.oom_group_kill, o.oom_group_kill),
            });
        }
        self.last = e;
        self.last_mem = m;
        Ok(out)
    }

    fn drain(&mut self) {
        self.inotify.drain();
    }

    /// Return the changes since the last call (or since creation), waiting
    /// up to `timeout` for one (`None`: wait forever). An empty vector means
    /// the timeout passed without a change.
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<Vec<Event>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            self.drain();
            let ev = self.diff()?;
            if !ev.is_empty() {
                return Ok(ev);
            }
            let ms: i32 = match deadline {
                None => -1,
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(Vec::new());
                    }
                    (d - now).as_millis().clamp(1, i32::MAX as u128) as i32
                }
            };
            let r = berth_sys::poll::poll_one(
                self.inotify.as_fd(),
                berth_sys::poll::PollFlags::POLLIN,
                ms,
            );
            if let Err(e) = r {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(Error::Sys {
                        call: "poll(inotify)",
                        path: self.path.clone(),
                        source: e,
                    });
                }
            }
        }
    }

    /// The watched cgroup's directory.
    ///
    /// ```no_run
    /// # fn demo(cg: berth_cgroups::Cgroup) -> Result<(), berth_cgroups::Error> {
    /// let w = cg.watch()?;
    /// assert_eq!(w.path(), cg.path());
    /// # Ok(()) }
    /// ```
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The memory counters as of the last [`wait`](Self::wait).
    pub fn memory_events(&self) -> MemoryEvents {
        self.last_mem
    }

    /// The `cgroup.events` state as of the last [`wait`](Self::wait).
    pub fn state(&self) -> CgroupEvents {
        self.last
    }
}
