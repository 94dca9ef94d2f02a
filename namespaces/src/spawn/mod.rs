//! The spawn path's parent side: [`Spawner`] (the builder), its checks,
//! what is prepared before the clone, the clone, the id maps written
//! after it, and the reading of the child's reports.
//!
//! One spawn, in order: [`validate`](Spawner::validate) →
//! [`prepare`](Spawner::prepare) (all allocation) → clone ([`clone`]) →
//! the child runs [`child::run`](crate::child::run) while the parent
//! drops its copies of the child's fds, writes id maps and runs the
//! `after_clone` hook ([`Spawner::release_child`]) → the parent reads the
//! error pipe until EOF (exec'd) or a report ([`Spawner::await_exec`]).

mod builder;
mod clone;
mod decode;
mod fds;
mod idmap;
mod prepare;
mod timer;
mod validate;

pub use builder::{Spawner, Stdio};
pub(crate) use decode::{exec_error, step_error};

use std::io::{self, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};

use crate::error::{Error, Result};
use crate::handle::{self, AfterStart, Child, ChildRef, Pending};
use crate::protocol::{self, Message};
use crate::sys;

use prepare::Prepared;
use timer::{monotonic_ns, StepTimer};

impl Spawner {
    pub(super) fn spawn_inner(&mut self, stopped: bool) -> Result<Child> {
        if self.pdeathsig == 0 {
            return self.spawn_here(stopped);
        }
        // The death signal follows the thread that clones: clone on one
        // that lives as long as the process (owner.rs).
        crate::owner::run_on_owner_thread(|| self.spawn_here(stopped)).unwrap_or_else(|()| {
            Err(Error::setup_io(
                "hand the spawn to the berth-owner thread",
                io::Error::from_raw_os_error(libc::ESRCH),
            ))
        })
    }

    /// The whole spawn on the calling thread.
    pub(crate) fn spawn_here(&mut self, stopped: bool) -> Result<Child> {
        self.validate()?;
        let mut p = self.prepare(stopped)?;
        let timer = StepTimer::from_env(self.steps.len());
        let vfork = p.vfork_ok(self.init);
        let t_clone = monotonic_ns();
        // From here every early return drops `c`, which kills and reaps
        // the child (Child's Drop).
        let mut c = self.clone_child(&p, &timer, vfork)?;
        tracing::debug!(pid = c.pid, namespaces = ?self.namespaces, steps = self.steps.len(), "cloned child");

        // The child has its copies now: drop ours so EOF means "exec'd".
        drop(std::mem::take(&mut p.fds.child_side));
        let err_r = p.err_r;
        drop(p.err_w);
        drop(p.sync_r);
        drop(p.start_r);
        let pooled = p.pooled_netns.take().is_some();
        if let Some(w) = p.sync_w {
            self.release_child(&c, w, &err_r, pooled, p.user_maps, &p.joins.desc)?;
        }
        let ready = self.await_exec(&mut c, &err_r, vfork, &p.joins.desc)?;
        if !ready {
            if let Some(t) = &timer {
                t.write(t_clone, monotonic_ns(), &self.steps);
            }
        }
        if stopped && !ready {
            // EOF without READY: the child died during its plan.
            let st = handle::waitid_pidfd(c.pidfd(), false)
                .ok()
                .flatten()
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown".into());
            let pid = c.pid;
            // Reaped (or beyond reach): nothing to kill.
            drop(c.into_pidfd());
            return Err(Error::ChildVanished { pid, status: st });
        }
        let pending = if ready {
            let start_w = p
                .start_w
                .ok_or_else(|| Error::invalid("unexpected READY"))?;
            let first_final = self.steps.len() - self.final_steps;
            Some(Pending {
                start_w,
                err_r,
                after_start: AfterStart {
                    program: self.program.clone(),
                    first_final,
                    final_steps: self.steps[first_final..]
                        .iter()
                        .map(|s| s.describe())
                        .collect(),
                },
            })
        } else {
            None
        };
        c.held_mnt_ns = self.hold_mount_ns(c.pid);
        c.pending = pending;
        c.stdin = p.fds.stdin;
        c.stdout = p.fds.stdout;
        c.stderr = p.fds.stderr;
        Ok(c)
    }

    /// `clone3` the child (on the `CLONE_VM` fast path when `vfork`), which
    /// runs the plan of `p`. Its handle owns the pidfd: dropped before
    /// the spawn is done (an error), it kills and reaps the child.
    fn clone_child(&self, p: &Prepared, timer: &Option<StepTimer>, vfork: bool) -> Result<Child> {
        let mut plan = p.plan(
            self,
            timer
                .as_ref()
                .map_or(std::ptr::null_mut(), |t| t.slots_ptr()),
        );
        let mut pidfd_out: RawFd = -1;
        let mut args = sys::CloneArgs {
            flags: libc::CLONE_PIDFD as u64 | p.ns_flags.bits(),
            pidfd: &mut pidfd_out as *mut RawFd as u64,
            exit_signal: libc::SIGCHLD as u64,
            ..Default::default()
        };
        if let Some(fd) = p.cgroup_fd {
            args.flags |= sys::CLONE_INTO_CGROUP;
            args.cgroup = fd as u64;
        }
        let ret = if vfork {
            // SAFETY: see vfork_spawn.
            unsafe { clone::vfork_spawn(&mut plan, &mut args, &mut pidfd_out) }
        } else {
            // SAFETY: see fork_spawn; `args` is a valid clone.
            unsafe { clone::fork_spawn(&plan, &mut args) }
        };
        let ret = ret.map_err(|e| Error::setup(clone::clone_op(args.flags, e), e))?;
        // SAFETY: CLONE_PIDFD stored a fresh pidfd for us.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd_out) };
        Ok(Child {
            pid: ret as i32,
            pidfd: Some(pidfd),
            status: None,
            held_mnt_ns: None,
            pending: None,
            stdin: None,
            stdout: None,
            stderr: None,
        })
    }

    /// The parent's work while the child waits: (with a pooled network
    /// namespace) wait until it entered it, write its id maps, run the
    /// `after_clone` hook, then let it go on.
    fn release_child(
        &mut self,
        c: &Child,
        sync_w: OwnedFd,
        err_r: &OwnedFd,
        pooled_netns: bool,
        user_maps: bool,
        join_desc: &[String],
    ) -> Result<()> {
        let pid = c.pid;
        if pooled_netns {
            // The hook must find the child in its network namespace.
            let r = protocol::read(err_r.as_fd())
                .map_err(|e| Error::setup_io("read the child's error pipe", e))?;
            match r {
                Some(Message::Netns) => {}
                Some(Message::Failed(e)) => return Err(self.report_error(&e, join_desc)),
                Some(m) => return Err(unexpected(pid, &m)),
                None => {
                    return Err(Error::ChildVanished {
                        pid,
                        status: "before entering its network namespace".into(),
                    })
                }
            }
        }
        if user_maps {
            self.write_maps(pid)?;
        }
        if let Some(hook) = self.after_clone.as_mut() {
            hook(ChildRef {
                pid,
                pidfd: c.pidfd(),
            })
            .map_err(|source| Error::Hook { pid, source })?;
        }
        // One byte lets it go; our end is closed right after.
        std::io::PipeWriter::from(sync_w)
            .write_all(&[1])
            .map_err(|e| Error::setup_io(format!("release child {pid}"), e))
    }

    /// Read the child's reports until EOF (it exec'd: `Ok(false)`) or
    /// READY (two-phase start: `Ok(true)`); a failure report becomes the
    /// step's error. Follows the child into a joined pid namespace.
    fn await_exec(
        &self,
        c: &mut Child,
        err_r: &OwnedFd,
        vfork: bool,
        join_desc: &[String],
    ) -> Result<bool> {
        if vfork {
            // CLONE_VFORK returned: the child either exited (a failure report,
            // written before _exit, is in the pipe already) or its execve
            // released our memory, which happens past exec's point of no
            // return (begin_new_exec, fs/exec.c). No need to wait for the
            // rest of exec (its close-on-exec of the pipe): an empty pipe
            // means success.
            // (Fails only on a closed fd: then the read below says so.)
            let _ = berth_sys::fs::set_nonblocking(err_r.as_fd());
        }
        loop {
            let msg = match protocol::read(err_r.as_fd()) {
                Err(e) if vfork && e.kind() == io::ErrorKind::WouldBlock => None,
                r => r.map_err(|e| Error::setup_io("read the child's error pipe", e))?,
            };
            match msg {
                None => return Ok(false),
                Some(Message::Ready) => return Ok(true),
                Some(Message::Pid(real)) => {
                    // The intermediate forked into the joined pid namespace:
                    // reap it and own the real process from here on.
                    let _ = handle::waitid_pidfd(c.pidfd(), false);
                    // Reaped: its pidfd goes (nothing to kill should the
                    // open fail), the real process's takes its place.
                    drop(c.pidfd.take());
                    c.pidfd = Some(
                        handle::pidfd_open(real)
                            .map_err(|e| Error::setup_io(format!("pidfd_open({real})"), e))?,
                    );
                    c.pid = real;
                }
                Some(Message::Failed(e)) => {
                    tracing::debug!(pid = c.pid, at = ?e.at, errno = e.errno, detail = %e.detail, panicked = e.panicked, "child plan failed");
                    return Err(self.report_error(&e, join_desc));
                }
                Some(m @ Message::Netns) => return Err(unexpected(c.pid, &m)),
            }
        }
    }
}

/// A report the child sends only when asked, arriving unasked.
fn unexpected(pid: i32, m: &Message) -> Error {
    Error::setup_io(
        format!("read the error pipe of child {pid}"),
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected report {m:?}"),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::Step;

    #[test]
    fn public_types_are_thread_safe() {
        fn send_sync<T: Send + Sync + 'static>() {}
        fn send<T: Send + 'static>() {}
        send_sync::<Error>();
        send_sync::<Step>();
        send::<Spawner>();
        send::<Child>();
    }

    #[test]
    fn clone_errors_say_what_is_missing() {
        let ns = crate::Namespaces::NET.bits();
        let op = clone::clone_op(ns, libc::EPERM);
        assert!(
            op.starts_with("clone3(CLONE_PIDFD, namespaces Namespaces(NET))"),
            "{op}"
        );
        assert!(op.contains("CAP_SYS_ADMIN"), "{op}");
        let op = clone::clone_op(sys::CLONE_INTO_CGROUP, libc::ENOSYS);
        assert!(
            op.contains("| CLONE_INTO_CGROUP") && op.contains("Linux 5.3"),
            "{op}"
        );
    }
}
