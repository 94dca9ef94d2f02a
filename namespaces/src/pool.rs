//! A pool of fresh network namespaces made ahead of time, off the spawn path.
//!
//! Creating a network namespace is the single most expensive part of a
//! `clone3(CLONE_NEWNET | …)`: the kernel runs every registered pernet init
//! (`setup_net` in net/core/net_namespace.c: loopback device, the IPv4/IPv6
//! tables, netfilter, sysctl tables, …), about 1–2 ms on a small machine,
//! mostly sleeping on locks shared with other namespaces' setup and
//! teardown. A [`NetnsPool`] has background threads do that work before it
//! is needed: each thread `unshare(CLONE_NEWNET)`s (only the calling thread
//! moves, unshare(2)) and sleeps, its namespace kept alive by its own
//! membership — no file descriptor is held while the namespace waits. A
//! spawn configured with [`Spawner::netns_pool`](crate::Spawner::netns_pool)
//! opens `/proc/self/task/<tid>/ns/net` of a waiting thread, the thread
//! immediately `unshare`s again (leaving that namespace for a fresh one), and
//! the child enters the namespace first thing with `setns(fd, CLONE_NEWNET)`
//! instead of asking `clone3` for a new one.
//!
//! A pooled namespace is as fresh as one made by `clone3`: it belongs to the
//! same user namespace (ours), holds only a `lo` that is down, nothing but
//! the sleeping creator thread was ever in it (no socket, no address, no
//! route), and each namespace is handed out once.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use crate::error::{Error, Result};

/// Threads (so namespaces kept ready) of [`NetnsPool::shared`]: creation
/// mostly sleeps in the kernel, so several threads refill in parallel.
pub const SHARED_POOL_SIZE: usize = 3;

#[derive(Clone, Copy)]
struct Slot {
    /// The thread's id (`gettid`), 0 until it started.
    tid: libc::pid_t,
    /// The thread sits in a fresh, never handed out namespace.
    ready: bool,
}

struct State {
    slots: Vec<Slot>,
    shutdown: bool,
    /// The errno that stopped the threads (e.g. `EPERM` without
    /// `CAP_SYS_ADMIN`); the pool then stays empty and spawns fall back.
    failed: Option<i32>,
    handed_out: u64,
    misses: u64,
}

struct Inner {
    /// Bring `lo` up in each namespace before it is handed out.
    loopback_up: bool,
    state: Mutex<State>,
    /// Signalled when a namespace became ready or the threads stopped
    /// (for [`NetnsPool::wait_ready`]).
    wake: Condvar,
    /// One per thread: signalled when its namespace was taken or the pool
    /// stops. Separate, so that a take wakes only the thread that has to
    /// make the next namespace (a wake-up of every thread per spawn costs
    /// reschedule IPIs and CPU the spawn competes with).
    taken: Vec<Condvar>,
}

impl Inner {
    /// Wake everyone: the pool stops.
    fn wake_all(&self) {
        self.wake.notify_all();
        for c in &self.taken {
            c.notify_all();
        }
    }
}

/// Stops the threads when the last [`NetnsPool`] clone is dropped.
struct Owner {
    inner: Arc<Inner>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        if let Ok(mut s) = self.inner.state.lock() {
            s.shutdown = true;
        }
        self.inner.wake_all();
    }
}

/// A pool of fresh, never-used network namespaces, each kept by a
/// background thread sleeping inside it (see the module docs for how and
/// why). Cheap to clone; the threads exit and their namespaces are freed
/// when the last clone is dropped.
///
/// [`take`](Self::take) never blocks: when no namespace is ready (spawns
/// faster than the threads refill) or the threads failed (no
/// `CAP_SYS_ADMIN`), it returns `None` and the spawn creates the namespace
/// with `clone3` as usual.
///
/// ```no_run
/// use berth_namespaces::{Namespaces, NetnsPool, Spawner};
/// let pool = NetnsPool::new(2)?;
/// for _ in 0..10 {
///     Spawner::new(["/bin/true"])
///         .namespaces(Namespaces::NET | Namespaces::PID)
///         .netns_pool(&pool)
///         .status()?;
/// }
/// # Ok::<(), berth_namespaces::Error>(())
/// ```
#[derive(Clone)]
pub struct NetnsPool {
    owner: Arc<Owner>,
}

impl std::fmt::Debug for NetnsPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetnsPool")
            .field("stats", &self.stats())
            .finish()
    }
}

/// Counters of a [`NetnsPool`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Namespaces ready to be handed out now.
    pub ready: usize,
    /// Namespaces handed out so far.
    pub handed_out: u64,
    /// `take` calls that found none ready (the spawn made its own).
    pub misses: u64,
    /// The errno that stopped the threads, if they stopped.
    pub failed: Option<i32>,
}

impl NetnsPool {
    /// Start `size` (at least 1) background threads, each keeping one fresh
    /// network namespace ready.
    ///
    /// ```no_run
    /// let pool = berth_namespaces::NetnsPool::new(2)?;
    /// # Ok::<(), berth_namespaces::Error>(())
    /// ```
    pub fn new(size: usize) -> Result<NetnsPool> {
        Self::start(size, false)
    }

    /// Like [`new`](Self::new), but each thread also brings `lo` up
    /// (`SIOCSIFFLAGS`, netdevice(7)) in its namespace before offering it:
    /// that takes the kernel's `rtnl_lock`, which other namespaces' setup
    /// and teardown hold for long stretches, so it too is better done off
    /// the spawn path. For containers whose network is "loopback only".
    ///
    /// ```no_run
    /// let pool = berth_namespaces::NetnsPool::with_loopback_up(2)?;
    /// # Ok::<(), berth_namespaces::Error>(())
    /// ```
    pub fn with_loopback_up(size: usize) -> Result<NetnsPool> {
        Self::start(size, true)
    }

    fn start(size: usize, loopback_up: bool) -> Result<NetnsPool> {
        let size = size.max(1);
        let inner = Arc::new(Inner {
            loopback_up,
            state: Mutex::new(State {
                slots: vec![
                    Slot {
                        tid: 0,
                        ready: false
                    };
                    size
                ],
                shutdown: false,
                failed: None,
                handed_out: 0,
                misses: 0,
            }),
            wake: Condvar::new(),
            taken: (0..size).map(|_| Condvar::new()).collect(),
        });
        let owner = Arc::new(Owner {
            inner: inner.clone(),
        });
        for i in 0..size {
            let w = inner.clone();
            std::thread::Builder::new()
                .name(format!(
                    "berth-netns-{}{i}",
                    if loopback_up { "lo" } else { "" }
                ))
                // Sleeps in a syscall; a small stack is plenty.
                .stack_size(64 << 10)
                .spawn(move || keep_fresh(&w, i))
                .map_err(|e| Error::setup_io("start a netns pool thread", e))?;
        }
        Ok(NetnsPool { owner })
    }

    /// The process-wide pool ([`SHARED_POOL_SIZE`] threads), started on
    /// first use and kept for the life of the process.
    ///
    /// ```no_run
    /// let pool = berth_namespaces::NetnsPool::shared()?;
    /// # Ok::<(), berth_namespaces::Error>(())
    /// ```
    pub fn shared() -> Result<NetnsPool> {
        static SHARED: OnceLock<NetnsPool> = OnceLock::new();
        Self::shared_in(&SHARED, false)
    }

    /// The process-wide pool of namespaces with `lo` up
    /// ([`with_loopback_up`](Self::with_loopback_up), [`SHARED_POOL_SIZE`]
    /// threads), started on first use and kept for the life of the process.
    ///
    /// ```no_run
    /// let pool = berth_namespaces::NetnsPool::shared_loopback_up()?;
    /// # Ok::<(), berth_namespaces::Error>(())
    /// ```
    pub fn shared_loopback_up() -> Result<NetnsPool> {
        static SHARED: OnceLock<NetnsPool> = OnceLock::new();
        Self::shared_in(&SHARED, true)
    }

    fn shared_in(cell: &OnceLock<NetnsPool>, loopback_up: bool) -> Result<NetnsPool> {
        if let Some(p) = cell.get() {
            return Ok(p.clone());
        }
        let p = Self::start(SHARED_POOL_SIZE, loopback_up)?;
        // A racing caller may have won; use its pool (ours stops on drop).
        Ok(cell.get_or_init(|| p).clone())
    }

    /// Whether this pool's namespaces have `lo` up.
    ///
    /// ```no_run
    /// assert!(berth_namespaces::NetnsPool::with_loopback_up(1)?.loopback_up());
    /// # Ok::<(), berth_namespaces::Error>(())
    /// ```
    pub fn loopback_up(&self) -> bool {
        self.owner.inner.loopback_up
    }

    /// A fresh network namespace (an fd of it, `O_CLOEXEC`), or `None`
    /// right away when none is ready. The thread that kept it moves on to
    /// a new one.
    ///
    /// ```no_run
    /// let pool = berth_namespaces::NetnsPool::new(1)?;
    /// let ns = pool.take();
    /// # Ok::<(), berth_namespaces::Error>(())
    /// ```
    pub fn take(&self) -> Option<OwnedFd> {
        let inner = &self.owner.inner;
        let mut s = inner.state.lock().ok()?;
        let mut got = None;
        let mut woken = None;
        for i in 0..s.slots.len() {
            if !s.slots[i].ready {
                continue;
            }
            // The thread cannot leave while its slot is ready and we hold
            // the lock, so the path names its fresh namespace.
            // (open(2) with O_RDONLY | O_CLOEXEC.)
            let path = format!("/proc/self/task/{}/ns/net", s.slots[i].tid);
            let opened = std::fs::File::open(path);
            s.slots[i].ready = false;
            match opened {
                Ok(f) => {
                    got = Some(OwnedFd::from(f));
                    woken = Some(i);
                    break;
                }
                Err(e) => {
                    // That thread makes a new one too (woken under the
                    // lock: the loop goes on).
                    inner.taken[i].notify_one();
                    tracing::warn!(
                        tid = s.slots[i].tid,
                        errno = e.raw_os_error().unwrap_or(0),
                        "netns pool: open of a pooled namespace failed"
                    );
                }
            }
        }
        if got.is_some() {
            s.handed_out += 1;
        } else {
            s.misses += 1;
        }
        drop(s);
        // Only the thread whose namespace was taken has work to do.
        if let Some(i) = woken {
            inner.taken[i].notify_one();
        }
        got
    }

    /// Wait up to `timeout` until `n` namespaces (at most the pool's size)
    /// are ready; `true` when they are. For warm-up before a burst.
    ///
    /// ```no_run
    /// let pool = berth_namespaces::NetnsPool::new(2)?;
    /// pool.wait_ready(2, std::time::Duration::from_secs(1));
    /// # Ok::<(), berth_namespaces::Error>(())
    /// ```
    pub fn wait_ready(&self, n: usize, timeout: std::time::Duration) -> bool {
        let inner = &self.owner.inner;
        let deadline = std::time::Instant::now() + timeout;
        let Ok(mut s) = inner.state.lock() else {
            return false;
        };
        let n = n.min(s.slots.len());
        loop {
            if s.slots.iter().filter(|x| x.ready).count() >= n {
                return true;
            }
            if s.failed.is_some() {
                return false;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return false;
            }
            s = match inner.wake.wait_timeout(s, deadline - now) {
                Ok((g, _)) => g,
                Err(_) => return false,
            };
        }
    }

    /// Current counters.
    ///
    /// ```no_run
    /// let pool = berth_namespaces::NetnsPool::new(2)?;
    /// println!("{:?}", pool.stats());
    /// # Ok::<(), berth_namespaces::Error>(())
    /// ```
    pub fn stats(&self) -> PoolStats {
        match self.owner.inner.state.lock() {
            Ok(s) => PoolStats {
                ready: s.slots.iter().filter(|x| x.ready).count(),
                handed_out: s.handed_out,
                misses: s.misses,
                failed: s.failed,
            },
            Err(_) => PoolStats::default(),
        }
    }
}

/// Body of pool thread `i`: enter a fresh namespace, wait until it is
/// taken, repeat.
fn keep_fresh(inner: &Inner, i: usize) {
    let tid = berth_sys::proc::tid();
    loop {
        // unshare(2): CLONE_NEWNET moves only the calling thread (Linux
        // 2.6.24); the namespace we were in (the previous, handed-out one)
        // is now held only by whoever took it.
        let mut r = berth_sys::ns::unshare_net().map_err(|e| e.raw_os_error().unwrap_or(libc::EIO));
        if r.is_ok() && inner.loopback_up {
            // The child-safe ioctls berth-netsetup's `child::lo_up` runs.
            r = berth_sys::child::net::lo_up();
        }
        let Ok(mut s) = inner.state.lock() else {
            return;
        };
        if let Err(errno) = r {
            tracing::warn!(
                errno,
                "netns pool: unshare(CLONE_NEWNET) or lo up failed; spawns create their own namespaces"
            );
            s.failed = Some(errno);
            drop(s);
            inner.wake_all();
            return;
        }
        s.slots[i] = Slot { tid, ready: true };
        inner.wake.notify_all();
        while s.slots[i].ready && !s.shutdown && s.failed.is_none() {
            s = match inner.taken[i].wait(s) {
                Ok(g) => g,
                Err(_) => return,
            };
        }
        if s.shutdown || s.failed.is_some() {
            s.slots[i].ready = false;
            return;
        }
    }
}
