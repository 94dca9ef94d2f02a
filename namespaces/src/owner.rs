//! The owner thread: where a spawn with a parent-death signal clones when
//! it is called from any thread but the main one.
//!
//! `PR_SET_PDEATHSIG` (prctl(2)) fires when the child's parent *thread*
//! exits, not its process: the kernel sends it from `exit_notify` of the
//! thread that called `clone` (kernel/exit.c, `forget_original_parent`),
//! even when a sibling thread becomes the new parent. A child spawned from
//! a pooled thread (tokio's `spawn_blocking`, a rayon or thread-pool worker)
//! was SIGKILLed when that thread retired, silently.
//!
//! So the clone is done by a thread that lives as long as the process:
//! the main thread itself (its exit is the process's exit: returning from
//! `main` calls `exit_group`), or else one berth-owned thread, started on
//! first use, that performs every such clone and never exits. The death
//! signal then fires exactly when the owning process dies (`exit`, a fatal
//! signal, SIGKILL: every thread exits) or when it `execve`s another
//! program from a thread other than the owner thread (`de_thread` ends the
//! others).
//!
//! The caller blocks while its spawn runs there; the clone inherits the
//! caller's signal mask (carried over) and its tracing span. What the
//! child does not inherit is per-thread state the caller set on itself
//! alone: namespaces it entered with `setns`/`unshare` on that thread only
//! (use [`Spawner::join_path`](crate::Spawner::join_path) instead), CPU
//! affinity, scheduling policy, a per-thread seccomp filter. Costs one
//! hand-off (a channel send and a wake-up, some microseconds); a spawn
//! from the main thread is unchanged. A spawn made on the owner thread
//! itself (from an `after_clone` hook) runs there directly. In a child
//! forked (without exec) from a process that had started the owner thread,
//! the thread is absent: spawns clone on the calling thread again.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::OnceLock;

use berth_sys::proc::on_main_thread;
use berth_sys::signal::{self, SigSet};

type Job = Box<dyn FnOnce() + Send + 'static>;

thread_local! {
    /// Set on the owner thread: a spawn from one of its jobs (a hook that
    /// spawns) runs right there instead of waiting for itself.
    static ON_OWNER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The owner thread's queue, started on first use. `None` if the thread
/// could not be started, or in a child forked (without exec) from a process
/// that had started it (the thread is not copied by fork(2)): then the
/// calling thread clones, and the signal follows it.
fn queue() -> Option<&'static mpsc::Sender<Job>> {
    static QUEUE: OnceLock<Option<(u32, mpsc::Sender<Job>)>> = OnceLock::new();
    let q = QUEUE.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let started = std::thread::Builder::new()
            .name("berth-owner".into())
            .spawn(move || {
                ON_OWNER.with(|o| o.set(true));
                // Process-directed signals go to other threads; each job
                // runs with its caller's mask.
                block_all_signals();
                while let Ok(job) = rx.recv() {
                    job();
                }
            });
        match started {
            Ok(_) => Some((std::process::id(), tx)),
            Err(e) => {
                tracing::warn!(error = %e, "could not start the berth-owner thread: a parent-death signal follows the spawning thread");
                None
            }
        }
    });
    match q {
        Some((pid, tx)) if *pid == std::process::id() => Some(tx),
        Some(_) => {
            tracing::debug!("forked child: the berth-owner thread is the parent's; cloning here");
            None
        }
        None => None,
    }
}

fn block_all_signals() {
    // pthread_sigmask(3) fails only on a bad `how`: nothing to handle.
    let _ = signal::block_all_on_thread();
}

/// The calling thread's signal mask (empty if it could not be read, which
/// pthread_sigmask(3) never fails to do).
fn current_mask() -> SigSet {
    signal::thread_mask().unwrap_or(SigSet::empty())
}

/// Run `f` (a spawn whose child gets a parent-death signal) on a thread
/// that lives as long as the process: here on the main thread, else on the
/// owner thread while the caller waits. `Err(())` only if the owner thread
/// is gone with the job unrun (it never exits; a dying process).
pub(crate) fn run_on_owner_thread<R, F>(f: F) -> Result<R, ()>
where
    R: Send,
    F: FnOnce() -> R + Send,
{
    if on_main_thread() || ON_OWNER.with(|o| o.get()) {
        return Ok(f());
    }
    let Some(queue) = queue() else {
        return Ok(f());
    };
    let mask = current_mask();
    let span = tracing::Span::current();
    let (tx, rx) = mpsc::sync_channel::<std::thread::Result<R>>(1);
    let job: Box<dyn FnOnce() + Send + '_> = Box::new(move || {
        let _entered = span.enter();
        let own = signal::swap_thread_mask(&mask).unwrap_or(SigSet::empty());
        let r = std::panic::catch_unwind(AssertUnwindSafe(f));
        let _ = signal::swap_thread_mask(&own);
        let _ = tx.send(r);
    });
    // SAFETY: only the lifetime is erased. The caller blocks on `rx` below
    // until the job has sent its result (after `f` was consumed) or was
    // dropped unrun (its sender dropped): either way nothing the job
    // borrows is used after this function returns.
    let job: Job = unsafe { std::mem::transmute::<Box<dyn FnOnce() + Send + '_>, Job>(job) };
    if let Err(mpsc::SendError(job)) = queue.send(job) {
        job();
    }
    match rx.recv() {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// (p10, median) of `v`.
    fn median(mut v: Vec<Duration>) -> (Duration, Duration) {
        v.sort();
        (v[v.len() / 10], v[v.len() / 2])
    }

    /// The hand-off's own cost, and 200 spawns of `/bin/true` from this
    /// (non-main) test thread cloned here vs. on the owner thread,
    /// interleaved so both see the same machine load. By hand:
    /// `cargo test -p berth-namespaces --lib owner -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn handoff_cost() {
        let mut v = Vec::new();
        for _ in 0..1000 {
            let t = Instant::now();
            run_on_owner_thread(|| 1).unwrap();
            v.push(t.elapsed());
        }
        println!("empty hand-off: (p10, median) {:?}", median(v));
        if berth_sys::fs::euid() != 0 {
            return;
        }
        let (mut here, mut owner) = (Vec::new(), Vec::new());
        for i in 0..220 {
            let mut s = crate::Spawner::new(["/bin/true"]);
            s.namespaces(crate::Namespaces::PID | crate::Namespaces::UTS | crate::Namespaces::IPC)
                .stdin(crate::Stdio::Null)
                .parent_death_signal(libc::SIGKILL);
            let t = Instant::now();
            let mut c = if i % 2 == 0 {
                s.spawn_here(false).unwrap()
            } else {
                s.spawn().unwrap()
            };
            let d = t.elapsed();
            c.wait().unwrap();
            if i >= 20 {
                if i % 2 == 0 {
                    here.push(d)
                } else {
                    owner.push(d)
                }
            }
        }
        println!(
            "spawn /bin/true (pid+uts+ipc), 100 each: (p10, median) cloned here {:?}, on the owner thread {:?}",
            median(here),
            median(owner)
        );
    }
}
