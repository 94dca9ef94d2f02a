//! Exec into a running container: the one path both [`Container::exec`]
//! (a handle in this process) and a runtime that only has the container's
//! [`State`] (an OCI runtime's `exec`) use.
//!
//! The process is cloned by berth-namespaces' join path: it makes itself
//! non-dumpable (`PR_SET_DUMPABLE 0`, prctl(2)) before `setns` into the
//! container's namespaces, so nothing in the container can ptrace it or
//! open its `/proc/<pid>/exe`, `/proc/<pid>/fd/*` or memory while it still
//! runs the caller's binary (the CVE-2019-5736 class); it is cloned
//! straight into the container's cgroup (`CLONE_INTO_CGROUP`, Linux 5.7)
//! rather than writing a held `cgroup.procs` fd; every fd but stdio and
//! the ones asked for is closed before `execve` (`close_range(2)`), and
//! `execve` resets dumpability for the container's own program.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Arc;

use berth_namespaces::{Namespaces, Spawner, Stdio, Step};
use berth_security::{CapSet, Capabilities, SecurityPolicy};

use crate::error::{Error, Result};
use crate::state::State;

/// The namespace files of `/proc/<pid>/ns` an exec may join, with their flag.
const NS_FILES: [(&str, Namespaces); 7] = [
    ("mnt", Namespaces::MOUNT),
    ("uts", Namespaces::UTS),
    ("ipc", Namespaces::IPC),
    ("net", Namespaces::NET),
    ("cgroup", Namespaces::CGROUP),
    ("pid", Namespaces::PID),
    ("user", Namespaces::USER),
];

/// The namespaces process `pid` is in that differ from ours (compared by
/// the `/proc/<pid>/ns/*` links, namespaces(7)).
fn differing_namespaces(pid: i32) -> Namespaces {
    let mut ns = Namespaces::empty();
    for (name, flag) in NS_FILES {
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{name}"));
        let ours = std::fs::read_link(format!("/proc/self/ns/{name}"));
        if let (Ok(t), Ok(o)) = (theirs, ours) {
            if t != o {
                ns |= flag;
            }
        }
    }
    ns
}

#[derive(Debug)]
enum Pidfd<'a> {
    Borrowed(BorrowedFd<'a>),
    Owned(OwnedFd),
}

/// A command to run inside a running container; see [`Container::exec`]
/// and [`Exec::in_state`].
///
/// [`Container::exec`]: crate::Container::exec
#[derive(Debug)]
pub struct Exec<'a> {
    id: String,
    /// None: the handle has no process any more (spawning reports ESRCH).
    pidfd: Option<Pidfd<'a>>,
    namespaces: Namespaces,
    cgroup: Option<std::io::Result<OwnedFd>>,
    cgroup_desc: PathBuf,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    cwd: PathBuf,
    policy: SecurityPolicy,
    stdin: Stdio,
    stdout: Stdio,
    stderr: Stdio,
    keep_fds: Vec<RawFd>,
    tty: bool,
    pdeathsig: i32,
}

impl<'a> Exec<'a> {
    /// Used by [`Container::exec`](crate::Container::exec).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn for_handle(
        id: &str,
        pidfd: Option<BorrowedFd<'a>>,
        namespaces: Namespaces,
        cgroup: Option<(std::io::Result<OwnedFd>, PathBuf)>,
        policy: SecurityPolicy,
        env: Vec<(String, String)>,
        cwd: PathBuf,
        argv: Vec<String>,
    ) -> Exec<'a> {
        let (cgroup, cgroup_desc) = match cgroup {
            Some((fd, p)) => (Some(fd), p),
            None => (None, PathBuf::new()),
        };
        Exec {
            id: id.to_string(),
            pidfd: pidfd.map(Pidfd::Borrowed),
            namespaces,
            cgroup,
            cgroup_desc,
            argv,
            env,
            cwd,
            policy,
            stdin: Stdio::Inherit,
            stdout: Stdio::Inherit,
            stderr: Stdio::Inherit,
            keep_fds: Vec::new(),
            tty: false,
            pdeathsig: libc::SIGKILL,
        }
    }
}

impl Exec<'static> {
    /// Run `argv` in the running container recorded by `state` (its init's
    /// pid and start time, its cgroup), from any process: the init is
    /// opened as a pidfd (pidfd_open(2), Linux 5.3) and checked to still be
    /// the recorded process; the process joins every namespace of the init
    /// that differs from the caller's (`setns` on the pidfd, Linux 5.8) and
    /// is cloned into the recorded cgroup.
    ///
    /// The security policy defaults to *no capabilities at all*, the
    /// environment to empty, the working directory to `/`, the parent
    /// death signal to none (the process outlives the caller): set them
    /// with [`policy`](Self::policy), [`env`](Self::env),
    /// [`current_dir`](Self::current_dir).
    ///
    /// ```no_run
    /// let st = berth::State::load(None, "web-1")?;
    /// let status = berth::Exec::in_state(&st, ["hostname"])?.status()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn in_state<I, S>(state: &State, argv: I) -> Result<Exec<'static>>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let pidfd = state.open_pidfd("exec")?;
        let pid = state.pid.unwrap_or(0);
        let cgroup = state.cgroup.as_ref().map(|p| {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
                .open(p)
                .map(OwnedFd::from)
        });
        Ok(Exec {
            id: state.id.clone(),
            pidfd: Some(Pidfd::Owned(pidfd)),
            namespaces: differing_namespaces(pid),
            cgroup,
            cgroup_desc: state.cgroup.clone().unwrap_or_default(),
            argv: argv.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            cwd: PathBuf::from("/"),
            policy: SecurityPolicy::new().capabilities(Capabilities::uniform(CapSet::empty())),
            stdin: Stdio::Inherit,
            stdout: Stdio::Inherit,
            stderr: Stdio::Inherit,
            keep_fds: Vec::new(),
            tty: false,
            pdeathsig: 0,
        })
    }
}

impl Exec<'_> {
    /// Its stdin (default inherit).
    ///
    /// ```no_run
    /// # let c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// let out = c.exec(["cat"]).stdin(berth::Stdio::Null).output()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn stdin(mut self, s: Stdio) -> Self {
        self.stdin = s;
        self
    }

    /// Its stdout (default inherit).
    ///
    /// ```no_run
    /// # let c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// let st = c.exec(["true"]).stdout(berth::Stdio::Null).status()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn stdout(mut self, s: Stdio) -> Self {
        self.stdout = s;
        self
    }

    /// Its stderr (default inherit).
    ///
    /// ```no_run
    /// # let c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// let st = c.exec(["true"]).stderr(berth::Stdio::Null).status()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn stderr(mut self, s: Stdio) -> Self {
        self.stderr = s;
        self
    }

    /// Replace the environment (`KEY=value` pairs).
    ///
    /// ```no_run
    /// # let c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// let st = c.exec(["env"]).envs([("PATH", "/bin")]).status()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn envs<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self
    }

    /// Add or replace one environment variable.
    ///
    /// ```no_run
    /// # let c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// let st = c.exec(["env"]).env("LANG", "C.UTF-8").status()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn env(mut self, key: impl Into<String>, val: impl Into<String>) -> Self {
        let key = key.into();
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, val.into()));
        self
    }

    /// Its working directory inside the container (entered after the
    /// security policy, as the target user).
    ///
    /// ```no_run
    /// # let c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// let st = c.exec(["pwd"]).current_dir("/tmp").status()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = dir.as_ref().to_path_buf();
        self
    }

    /// The security policy applied just before `execve` (user and groups,
    /// capabilities, rlimits, no_new_privs, AppArmor, seccomp). Replaces
    /// the default (the container's own for [`Container::exec`], no
    /// capabilities for [`in_state`](Exec::in_state)).
    ///
    /// ```no_run
    /// use berth_security::SecurityPolicy;
    /// # let c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// let st = c.exec(["id"]).policy(SecurityPolicy::new().user(1000, 1000)).status()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    ///
    /// [`Container::exec`]: crate::Container::exec
    pub fn policy(mut self, policy: SecurityPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Keep our fd `fd` open in the process under the same number (every
    /// other fd but stdio is closed before `execve`). `fd` must stay open
    /// until `spawn` returns.
    ///
    /// ```no_run
    /// # let c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// let st = c.exec(["ls", "-l", "/proc/self/fd/3"]).keep_fd(3).status()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn keep_fd(mut self, fd: RawFd) -> Self {
        self.keep_fds.push(fd);
        self
    }

    /// Give the process a terminal: a pty opened in the container's own
    /// devpts once it joined the container's mount namespace, its slave on
    /// fds 0-2 and as controlling terminal of a new session; the master
    /// comes back from [`spawn_tty`](Self::spawn_tty).
    ///
    /// ```no_run
    /// # let c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// let (child, master) = c.exec(["sh"]).tty(true).spawn_tty()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn tty(mut self, on: bool) -> Self {
        self.tty = on;
        self
    }

    /// The signal the process gets when the thread that spawned it dies
    /// (`PR_SET_PDEATHSIG`); 0 for none. [`Container::exec`] defaults to
    /// `SIGKILL`, [`in_state`](Exec::in_state) to none.
    ///
    /// ```no_run
    /// # let c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// let child = c.exec(["sleep", "5"]).parent_death_signal(0).spawn()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    ///
    /// [`Container::exec`]: crate::Container::exec
    pub fn parent_death_signal(mut self, sig: i32) -> Self {
        self.pdeathsig = sig;
        self
    }

    fn no_tty(&self, what: &str) -> Result<()> {
        if self.tty {
            return Err(Error::invalid(format!(
                "exec with a tty: use spawn_tty, not {what}"
            )));
        }
        Ok(())
    }

    fn spawner(&mut self) -> Result<(Spawner, Option<crate::pty::MasterReceiver>)> {
        let pidfd = match &self.pidfd {
            Some(Pidfd::Borrowed(b)) => *b,
            Some(Pidfd::Owned(o)) => o.as_fd(),
            None => {
                return Err(Error::Process {
                    what: "exec",
                    id: self.id.clone(),
                    source: std::io::Error::from_raw_os_error(libc::ESRCH),
                })
            }
        };
        if self.argv.is_empty() {
            return Err(Error::invalid("exec: empty command"));
        }
        let prepared = Arc::new(self.policy.prepare()?);
        let mut sp = Spawner::new(&self.argv);
        // Non-dumpable also when no namespace is joined (the join path sets
        // it itself before its first setns).
        // SAFETY: prctl is a raw syscall.
        sp.step(unsafe {
            Step::hook("prctl(PR_SET_DUMPABLE, 0)", || {
                if libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 {
                    return Err(*libc::__errno_location());
                }
                Ok(())
            })
        });
        sp.env_clear()
            .current_dir(&self.cwd)
            .parent_death_signal(self.pdeathsig)
            .stdin(std::mem::take(&mut self.stdin))
            .stdout(std::mem::take(&mut self.stdout))
            .stderr(std::mem::take(&mut self.stderr));
        if !self.namespaces.is_empty() {
            sp.join_pidfd(pidfd, self.namespaces);
        }
        for (k, v) in &self.env {
            sp.env(k, v);
        }
        match self.cgroup.take() {
            None => {}
            Some(Ok(fd)) => {
                sp.cgroup_fd(fd);
            }
            Some(Err(e)) => {
                return Err(Error::io("open cgroup directory", &self.cgroup_desc, e));
            }
        }
        for fd in &self.keep_fds {
            sp.keep_fd(*fd);
        }
        let mut rx = None;
        if self.tty {
            let (r, child_sock, step) = crate::pty::plan()?;
            sp.map_fd(child_sock, crate::pty::CHILD_SOCKET_FD)
                .step(step)
                .step(crate::builder::controlling_tty_step());
            rx = Some(r);
        }
        // A Landlock ruleset of the policy stays open for it (close-on-exec).
        if let Some(fd) = prepared.landlock_fd() {
            sp.step_fd(fd.as_raw_fd());
        }
        // SAFETY: berth-security's apply_in_child is allocation-free. The
        // final step: nothing but execve runs after its seccomp filter.
        sp.final_step(unsafe {
            Step::hook("apply security policy", move || {
                prepared.apply_in_child().map_err(|f| f.errno)
            })
        });
        Ok((sp, rx))
    }

    /// Start it; the returned process is not part of the container's
    /// lifetime accounting (it dies with the container's pid namespace).
    /// Dropping the returned [`Child`](berth_namespaces::Child) kills it:
    /// keep it, or release it with `into_pidfd`.
    ///
    /// ```no_run
    /// # let c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// let mut child = c.exec(["sleep", "1"]).spawn()?;
    /// child.wait()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn spawn(mut self) -> Result<berth_namespaces::Child> {
        self.no_tty("spawn")?;
        Ok(self.spawner()?.0.spawn()?)
    }

    /// Start it with a terminal ([`tty`](Self::tty)); returns the process
    /// and the pty master (close-on-exec).
    ///
    /// ```no_run
    /// # let c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// let (mut child, master) = c.exec(["sh"]).tty(true).spawn_tty()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn spawn_tty(mut self) -> Result<(berth_namespaces::Child, OwnedFd)> {
        self.tty = true;
        let (mut sp, rx) = self.spawner()?;
        let child = sp.spawn()?;
        let rx = rx.ok_or_else(|| Error::invalid("exec: no pty planned"))?;
        Ok((child, rx.receive()?))
    }

    /// Run it with stdout and stderr captured.
    ///
    /// ```no_run
    /// # let c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// let out = c.exec(["hostname"]).output()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn output(mut self) -> Result<std::process::Output> {
        self.no_tty("output")?;
        Ok(self.spawner()?.0.output()?)
    }

    /// Run it and return its exit status.
    ///
    /// ```no_run
    /// # let c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// let st = c.exec(["true"]).status()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn status(mut self) -> Result<ExitStatus> {
        self.no_tty("status")?;
        Ok(self.spawner()?.0.status()?)
    }
}
