//! The handle of a created or running container.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{ChildStderr, ChildStdin, ChildStdout, ExitStatus};
use std::time::Duration;

use berth_cgroups::{Cgroup, Stats};
use berth_namespaces::Namespaces;
use berth_security::SecurityPolicy;

use crate::error::{Error, Result};
pub use crate::exec::{Exec, ExecChild};
use crate::state::{self, State};

/// What `exec` needs to enter the container the same way as its workload.
#[derive(Debug)]
pub(crate) struct ExecConfig {
    pub policy: SecurityPolicy,
    pub namespaces: Namespaces,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
}

/// Byte and packet counters of one interface inside the container
/// (`/proc/<pid>/net/dev`, seen from the container's network namespace).
///
/// ```no_run
/// # let mut c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
/// for i in c.stats()?.interfaces {
///     println!("{}: rx {} tx {}", i.name, i.rx_bytes, i.tx_bytes);
/// }
/// # Ok::<(), berth::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InterfaceStats {
    /// Interface name.
    pub name: String,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
}

/// [`Container::stats`]: the cgroup's statistics and the network counters.
///
/// ```no_run
/// # let mut c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
/// let s = c.stats()?;
/// if let Some(cg) = s.cgroup {
///     println!("{:?}", cg.memory);
/// }
/// # Ok::<(), berth::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ContainerStats {
    /// cgroup statistics (parts whose controller is absent are `None`).
    pub cgroup: Option<Stats>,
    /// Per-interface counters of the container's network namespace.
    pub interfaces: Vec<InterfaceStats>,
}

/// Something that happened to a container ([`Container::events`]).
///
/// ```no_run
/// # let mut c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
/// let mut events = c.events()?;
/// for e in events.next(Some(std::time::Duration::from_secs(1)))? {
///     match e {
///         berth::ContainerEvent::OomKill { count } => eprintln!("{count} OOM kills"),
///         berth::ContainerEvent::Exited => break,
///         other => eprintln!("{other:?}"),
///     }
/// }
/// # Ok::<(), berth::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContainerEvent {
    /// `count` more processes were killed by the OOM killer (memory.events).
    OomKill {
        /// New kills since the last report.
        count: u64,
    },
    /// The memory limit was hit `count` more times.
    MemoryMax {
        /// New occurrences since the last report.
        count: u64,
    },
    /// The container's init exited (reap it with [`Container::wait`]).
    Exited,
    /// The workload runs: yielded first by the async stream
    /// (`Container::events_async`, feature `tokio`) of a started container.
    Started,
    /// Every process was frozen ([`Container::pause`]; `cgroup.events`
    /// `frozen 1`).
    Paused,
    /// The container was thawed ([`Container::resume`]; `frozen 0`).
    Resumed,
}

/// A stream of [`ContainerEvent`]s: cgroup notifications (inotify on
/// `memory.events`/`cgroup.events`) plus the init's pidfd becoming readable.
///
/// ```no_run
/// # let mut c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
/// let mut events = c.events()?;
/// loop {
///     let batch = events.next(None)?;
///     if batch.contains(&berth::ContainerEvent::Exited) {
///         break;
///     }
/// }
/// c.wait()?;
/// # Ok::<(), berth::Error>(())
/// ```
#[derive(Debug)]
pub struct Events {
    watcher: Option<berth_cgroups::EventWatcher>,
    pidfd: OwnedFd,
    exited: bool,
}

impl Events {
    /// Wait up to `timeout` (forever with `None`) for events; an empty
    /// vector means the timeout passed.
    ///
    /// ```no_run
    /// # let mut c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// let mut events = c.events()?;
    /// let none_yet = events.next(Some(std::time::Duration::ZERO))?.is_empty();
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn next(&mut self, timeout: Option<Duration>) -> Result<Vec<ContainerEvent>> {
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        loop {
            let mut out = Vec::new();
            if let Some(w) = &mut self.watcher {
                out.extend(
                    w.wait(Some(Duration::ZERO))?
                        .into_iter()
                        .filter_map(container_event),
                );
            }
            if !self.exited && poll_in(&self.pidfd, 0) {
                self.exited = true;
                out.push(ContainerEvent::Exited);
            }
            if !out.is_empty() {
                return Ok(out);
            }
            let ms = match deadline {
                Some(d) => {
                    let now = std::time::Instant::now();
                    if now >= d {
                        return Ok(out);
                    }
                    (d - now).as_millis().clamp(1, i32::MAX as u128) as i32
                }
                None => -1,
            };
            // Sleep on the inotify fd and the pidfd together: woken by the
            // next change, never by a timer.
            let mut fds = Vec::with_capacity(2);
            if let Some(w) = &self.watcher {
                fds.push(w.as_fd());
            }
            if !self.exited {
                fds.push(self.pidfd.as_fd());
            }
            // An error (EINTR) just loops: the deadline is checked again.
            let _ = berth_sys::poll::poll_many(&fds, berth_sys::poll::PollFlags::POLLIN, ms);
        }
    }
}

/// A cgroup event as a container event (`None`: not reported).
pub(crate) fn container_event(e: berth_cgroups::Event) -> Option<ContainerEvent> {
    use berth_cgroups::Event as E;
    match e {
        E::OomKill { count } | E::OomGroupKill { count } => Some(ContainerEvent::OomKill { count }),
        E::MemoryMax { count } => Some(ContainerEvent::MemoryMax { count }),
        E::Frozen => Some(ContainerEvent::Paused),
        E::Thawed => Some(ContainerEvent::Resumed),
        _ => None,
    }
}

/// Whether `fd` is readable within `ms` (poll(2) `POLLIN`).
fn poll_in(fd: &OwnedFd, ms: i32) -> bool {
    use berth_sys::poll::{poll_many, PollFlags};
    poll_many(&[fd.as_fd()], PollFlags::POLLIN, ms).is_ok_and(|r| r[0].contains(PollFlags::POLLIN))
}

/// A created or running container. Owns its process, cgroup, network
/// attachment and state directory; [`destroy`](Self::destroy) removes them
/// all and reports every error, `Drop` does the same best effort.
///
/// ```no_run
/// use berth::{Container, Rootfs};
/// let mut c = Container::builder("job-7")
///     .rootfs(Rootfs::host())
///     .command(["/bin/sleep", "5"])
///     .spawn()?;
/// println!("{} runs as pid {}", c.id(), c.pid());
/// c.pause()?;
/// c.resume()?;
/// c.kill()?;
/// c.wait()?;
/// c.destroy()?;
/// # Ok::<(), berth::Error>(())
/// ```
#[derive(Debug)]
pub struct Container {
    pub(crate) id: String,
    pub(crate) state_dir: PathBuf,
    pub(crate) state: State,
    pub(crate) child: Option<berth_namespaces::Child>,
    pub(crate) status: Option<ExitStatus>,
    pub(crate) cgroup: Option<Cgroup>,
    pub(crate) attachment: Option<berth_netsetup::Attachment>,
    /// pasta serving a [`Network::pasta`](crate::Network::pasta) container.
    pub(crate) pasta: Option<crate::pasta::Pasta>,
    pub(crate) exec: ExecConfig,
    pub(crate) image_ref: Option<berth_overlay::LayerStore>,
    pub(crate) pty: Option<OwnedFd>,
    /// The workload's stdin when [`Stdio::Piped`](crate::Stdio::Piped).
    pub stdin: Option<ChildStdin>,
    /// The workload's stdout when [`Stdio::Piped`](crate::Stdio::Piped).
    pub stdout: Option<ChildStdout>,
    /// The workload's stderr when [`Stdio::Piped`](crate::Stdio::Piped).
    pub stderr: Option<ChildStderr>,
    pub(crate) destroyed: bool,
    /// The container's mount namespace, held so the kernel does not tear
    /// its ~25 mounts down in the init's exit path (which `wait` would wait
    /// for); released to a background thread by `destroy` (perf.rs).
    pub(crate) mount_ns: Option<OwnedFd>,
    /// The writable layer, for `diff` and `commit` (commit.rs).
    pub(crate) layer: Option<crate::commit::WritableLayer>,
    /// The cgroup limits written and skipped at spawn.
    pub(crate) applied: crate::limits::AppliedLimits,
    /// The spawn time and the builder's `timeout` (output.rs).
    pub(crate) timeout: Option<(std::time::Instant, Duration)>,
}

impl Container {
    /// The container id.
    ///
    /// ```no_run
    /// # let mut c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// assert_eq!(c.id(), "c");
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The init's pid in the caller's pid namespace.
    ///
    /// ```no_run
    /// # let mut c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// println!("/proc/{}/status", c.pid());
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn pid(&self) -> i32 {
        self.state.pid.unwrap_or(0)
    }

    /// The state directory (`state.json` inside).
    ///
    /// ```no_run
    /// # let mut c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// assert!(c.state_dir().join("state.json").exists());
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The recorded state.
    ///
    /// ```no_run
    /// # let mut c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// assert_eq!(c.state().id, "c");
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The container's cgroup, when it has one.
    ///
    /// ```no_run
    /// # let mut c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// if let Some(cg) = c.cgroup() {
    ///     println!("cgroup {}", cg.path().display());
    /// }
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn cgroup(&self) -> Option<&Cgroup> {
        self.cgroup.as_ref()
    }

    /// The cgroup limits as applied at spawn: each one written, and each
    /// one skipped under
    /// [`ignore_unavailable`](crate::ContainerBuilder::ignore_unavailable)
    /// with the reason (see [`AppliedLimits`](crate::AppliedLimits)).
    ///
    /// ```no_run
    /// # let c = berth::Container::builder("c").command(["true"]).spawn()?;
    /// let enforced = c.applied().skipped.is_empty();
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn applied(&self) -> &crate::limits::AppliedLimits {
        &self.applied
    }

    /// The container's address on its bridge network.
    ///
    /// ```no_run
    /// let c = berth::Container::builder("web")
    ///     .network(berth::Network::bridge("berth0"))
    ///     .command(["sleep", "10"])
    ///     .spawn()?;
    /// println!("reach it at {:?}", c.address());
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn address(&self) -> Option<std::net::Ipv4Addr> {
        self.attachment.as_ref().map(|a| a.address())
    }

    /// The pty master when created with [`tty`](crate::ContainerBuilder::tty).
    ///
    /// ```no_run
    /// let c = berth::Container::builder("sh").tty(true).command(["/bin/sh"]).spawn()?;
    /// let master = c.pty().expect("tty(true) gives a pty");
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn pty(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.pty.as_ref().map(|f| f.as_fd())
    }

    fn child(&mut self) -> Result<&mut berth_namespaces::Child> {
        let id = self.id.clone();
        self.child.as_mut().ok_or_else(|| Error::Process {
            what: "access the process",
            id,
            source: std::io::Error::from_raw_os_error(libc::ESRCH),
        })
    }

    /// Release a container made with [`create`](crate::ContainerBuilder::create):
    /// it calls `execve` now.
    ///
    /// ```no_run
    /// let mut c = berth::Container::builder("c").command(["true"]).create()?; // created, not started
    /// c.start()?; // execve now
    /// c.wait()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn start(&mut self) -> Result<()> {
        self.child()?.start()?;
        self.state.created = false;
        self.state.write(&self.state_dir)
    }

    /// Wait for the init to exit (the workload's status; 128+N style
    /// signals are in `ExitStatusExt::signal`).
    ///
    /// ```no_run
    /// # let mut c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// let status = c.wait()?;
    /// println!("exited: {status}");
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn wait(&mut self) -> Result<ExitStatus> {
        if let Some(s) = self.status {
            return Ok(s);
        }
        let s = self.child()?.wait()?;
        self.status = Some(s);
        Ok(s)
    }

    /// The exit status if the init has exited, without blocking.
    ///
    /// ```no_run
    /// # let mut c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// if c.try_wait()?.is_none() {
    ///     println!("still running");
    /// }
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if let Some(s) = self.status {
            return Ok(Some(s));
        }
        let s = self.child()?.try_wait()?;
        self.status = s;
        Ok(s)
    }

    /// Wait at most `timeout`; `None` when it is still running.
    ///
    /// ```no_run
    /// # let mut c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// if c.wait_timeout(std::time::Duration::from_secs(1))?.is_none() {
    ///     c.kill()?;
    ///     c.wait()?;
    /// }
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        if let Some(s) = self.status {
            return Ok(Some(s));
        }
        let s = self.child()?.wait_timeout(timeout)?;
        self.status = s;
        Ok(s)
    }

    /// Send `signal` to the init (pidfd_send_signal(2): never a reused
    /// pid). A no-op once the init has been reaped. nix's [`Signal`](crate::Signal)
    /// has no real-time signals: send those by number with
    /// [`State::signal`](crate::State::signal) (`c.state().signal(n)`).
    ///
    /// ```no_run
    /// use berth::Signal;
    /// # let mut c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// c.signal(Signal::SIGTERM)?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    #[doc(alias("pidfd_send_signal"))]
    pub fn signal(&mut self, signal: crate::Signal) -> Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        self.child()?.kill(signal as i32)?;
        Ok(())
    }

    /// Kill the container: `SIGKILL` to its init, which ends every process
    /// of its pid namespace (like [`std::process::Child::kill`]). Reap it
    /// with [`wait`](Self::wait). Other signals: [`signal`](Self::signal).
    ///
    /// ```no_run
    /// # let mut c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// c.kill()?;
    /// c.wait()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn kill(&mut self) -> Result<()> {
        self.signal(crate::Signal::SIGKILL)
    }

    /// Run `argv` inside the running container: it joins every namespace of
    /// the init through its pidfd (`setns`, Linux 5.8), is cloned straight
    /// into the container's cgroup (`CLONE_INTO_CGROUP`) and gets the same
    /// security policy, environment and working directory, each of which
    /// the returned [`Exec`] can change as `docker exec` does (user and
    /// groups, by name from the container's `/etc/passwd` too, capabilities
    /// relative to the container's, `no_new_privs`, env, working
    /// directory, tty, detach).
    ///
    /// ```no_run
    /// # let mut c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// let out = c.exec(["hostname"]).output()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn exec<I, S>(&self, argv: I) -> Exec<'_>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let argv = argv.into_iter().map(Into::into).collect();
        let cgroup = self
            .cgroup
            .as_ref()
            .map(|cg| (cg.as_fd().try_clone_to_owned(), cg.path().to_path_buf()));
        Exec::for_handle(
            &self.id,
            self.pid(),
            self.child.as_ref().map(|c| c.pidfd()),
            self.exec.namespaces,
            cgroup,
            self.exec.policy.clone(),
            self.exec.env.clone(),
            self.exec.cwd.clone(),
            argv,
        )
    }

    /// Freeze every process of the container (cgroup.freeze, Linux 5.2).
    ///
    /// ```no_run
    /// # let mut c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// c.pause()?; // every process frozen
    /// c.resume()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    #[doc(alias("cgroup.freeze", "freeze"))]
    pub fn pause(&self) -> Result<()> {
        self.cgroup_ref("pause")?.freeze()?;
        Ok(())
    }

    /// Thaw a paused container.
    ///
    /// ```no_run
    /// # let mut c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// c.pause()?;
    /// c.resume()?; // running again
    /// # Ok::<(), berth::Error>(())
    /// ```
    #[doc(alias("thaw", "unpause"))]
    pub fn resume(&self) -> Result<()> {
        self.cgroup_ref("resume")?.thaw()?;
        Ok(())
    }

    fn cgroup_ref(&self, what: &'static str) -> Result<&Cgroup> {
        self.cgroup.as_ref().ok_or_else(|| Error::Process {
            what,
            id: self.id.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "the container has no cgroup (rootless without a delegated parent)",
            ),
        })
    }

    /// cgroup statistics plus per-interface network counters.
    ///
    /// ```no_run
    /// # let mut c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// let stats = c.stats()?;
    /// println!("{:?}", stats.cgroup.and_then(|s| s.pids));
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn stats(&self) -> Result<ContainerStats> {
        let cgroup = match &self.cgroup {
            Some(c) => Some(c.stats()?),
            None => None,
        };
        let mut interfaces = Vec::new();
        if self.status.is_none() {
            let p = format!("/proc/{}/net/dev", self.pid());
            let text =
                std::fs::read_to_string(&p).map_err(|e| Error::io("read", PathBuf::from(&p), e))?;
            interfaces = parse_net_dev(&text);
        }
        Ok(ContainerStats { cgroup, interfaces })
    }

    /// A stream of OOM-kill, memory-limit and exit events.
    ///
    /// ```no_run
    /// # let mut c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// let mut events = c.events()?;
    /// let batch = events.next(Some(std::time::Duration::from_secs(5)))?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn events(&mut self) -> Result<Events> {
        let watcher = match &self.cgroup {
            Some(c) => Some(c.watch()?),
            None => None,
        };
        let id = self.id.clone();
        let pidfd = self
            .child()?
            .pidfd()
            .try_clone_to_owned()
            .map_err(|source| Error::Process {
                what: "dup pidfd",
                id,
                source,
            })?;
        Ok(Events {
            watcher,
            pidfd,
            exited: false,
        })
    }

    /// Let the container run on after this handle is dropped: the state is
    /// marked detached (so [`gc`](crate::gc) leaves it while it runs) and
    /// its cgroup and network are kept. Returns the state directory.
    ///
    /// ```no_run
    /// let c = berth::Container::builder("daemon").command(["sleep", "1000"]).spawn()?;
    /// let state_dir = c.detach()?; // keeps running; berth::delete or berth::gc later
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn detach(mut self) -> Result<PathBuf> {
        self.state.detached = true;
        self.state.write(&self.state_dir)?;
        if let Some(c) = self.child.take() {
            drop(c.into_pidfd());
        }
        if let Some(mut cg) = self.cgroup.take() {
            cg.set_remove_on_drop(false);
        }
        drop(self.mount_ns.take());
        if let Some(a) = self.attachment.take() {
            std::mem::forget(a);
        }
        if let Some(p) = self.pasta.take() {
            p.leave();
        }
        self.destroyed = true;
        Ok(self.state_dir.clone())
    }

    /// Kill every process, then remove the cgroup, the network attachment
    /// and the state directory. Continues past errors and reports them all.
    ///
    /// ```no_run
    /// # let mut c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// c.kill()?;
    /// c.wait()?;
    /// c.destroy()?; // cgroup, mounts, network, state directory
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn destroy(mut self) -> Result<()> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<()> {
        if self.destroyed {
            return Ok(());
        }
        self.destroyed = true;
        let mut errors: Vec<Error> = Vec::new();
        if let Some(child) = self.child.as_mut() {
            if self.status.is_none() {
                match child.try_wait() {
                    Ok(Some(s)) => self.status = Some(s),
                    _ => {
                        if let Err(e) = child.kill(libc::SIGKILL) {
                            errors.push(e.into());
                        }
                        match child.wait() {
                            Ok(s) => self.status = Some(s),
                            Err(e) => errors.push(e.into()),
                        }
                    }
                }
            }
        }
        if let Some(ns) = self.mount_ns.take() {
            // The last reference: the mounts go on a background thread.
            berth_namespaces::release_in_background(ns);
        }
        if let Some(a) = self.attachment.take() {
            if let Err(e) = a.release() {
                errors.push(e.into());
            }
        }
        if let Some(p) = self.pasta.take() {
            if let Err(e) = p.stop() {
                errors.push(e);
            }
        }
        if let Some(cg) = self.cgroup.take() {
            // Kills whatever is left (an exec'd process) and removes the directory.
            if let Err(e) = cg.remove() {
                errors.push(e.into());
            }
        }
        if let Some(store) = self.image_ref.take() {
            if let Err(e) = store.remove_ref(&format!("container-{}", self.id)) {
                errors.push(e.into());
            }
        }
        if let Err(e) = state::remove_state_dir(&self.state_dir) {
            errors.push(e);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Teardown {
                id: self.id.clone(),
                errors,
            })
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            tracing::warn!(container = %self.id, error = %e, "teardown on drop failed");
        }
    }
}

/// Parse `/proc/net/dev`.
pub(crate) fn parse_net_dev(text: &str) -> Vec<InterfaceStats> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let f: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            if f.len() < 10 {
                return None;
            }
            Some(InterfaceStats {
                name: name.trim().to_string(),
                rx_bytes: f[0],
                rx_packets: f[1],
                tx_bytes: f[8],
                tx_packets: f[9],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev() {
        let t = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:     140       2    0    0    0     0          0         0      140       2    0    0    0     0       0          0\n";
        let v = parse_net_dev(t);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].name, "lo");
        assert_eq!(v[0].rx_bytes, 140);
        assert_eq!(v[0].tx_packets, 2);
    }
}
