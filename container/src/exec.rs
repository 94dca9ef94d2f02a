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
use std::process::{ChildStderr, ChildStdin, ChildStdout, ExitStatus, Output};
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
    /// The init's pid, whose `/proc/<pid>/root` a user name is looked up in.
    pid: i32,
    /// What was asked for on top of the policy.
    ask: Overrides,
}

/// The user, groups, capabilities, `no_new_privs` and detaching asked for
/// on top of the container's policy.
#[derive(Debug, Default)]
struct Overrides {
    user: Option<UserSpec>,
    groups: Option<Vec<u32>>,
    cap_add: Vec<String>,
    cap_drop: Vec<String>,
    capabilities: Option<Capabilities>,
    no_new_privs: Option<bool>,
    detach: bool,
}

#[derive(Debug)]
enum UserSpec {
    Ids(u32, u32),
    /// `name`, `name:group`, `uid:group`…, looked up in the container.
    Name(String),
}

impl<'a> Exec<'a> {
    /// Used by [`Container::exec`](crate::Container::exec).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn for_handle(
        id: &str,
        pid: i32,
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
            pid,
            ask: Overrides::default(),
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
            pid,
            ask: Overrides::default(),
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

    /// The signal the process gets when the process that spawned it dies
    /// (`PR_SET_PDEATHSIG`, tied to the owning process as for containers);
    /// `None` for none. [`Container::exec`] defaults to `SIGKILL`,
    /// [`in_state`](Exec::in_state) to none.
    ///
    /// ```no_run
    /// # let c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// let child = c.exec(["sleep", "5"]).parent_death_signal(None).spawn()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    ///
    /// [`Container::exec`]: crate::Container::exec
    #[doc(alias("PR_SET_PDEATHSIG"))]
    pub fn parent_death_signal(mut self, sig: Option<crate::Signal>) -> Self {
        self.pdeathsig = sig.map_or(0, |s| s as i32);
        self
    }

    /// Run as this uid and gid (real, effective and saved), with no
    /// supplementary groups unless [`groups`](Self::groups) names some
    /// (`docker exec --user uid:gid`). Default: the container's user.
    ///
    /// ```no_run
    /// # let c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// let out = c.exec(["id"]).user(1000, 1000).groups([10]).output()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn user(mut self, uid: u32, gid: u32) -> Self {
        self.ask.user = Some(UserSpec::Ids(uid, gid));
        self
    }

    /// Run as the user `spec` names (`name`, `name:group`, `uid:group`,
    /// `name:gid`), looked up when the process is spawned in the
    /// container's own `/etc/passwd` and `/etc/group` as runc and Docker
    /// do: read through the init's `/proc/<pid>/root` with every path
    /// component, symlinks included, resolved inside the container's root
    /// (`openat2(RESOLVE_IN_ROOT)`, Linux 5.6), so an `/etc/passwd` linked
    /// to a host path never makes berth read the host's file. Without a
    /// group the supplementary groups are those of the `/etc/group` entries
    /// listing the user (unless [`groups`](Self::groups) is set). An
    /// unknown name is an error and nothing is started.
    ///
    /// ```no_run
    /// # let c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// let out = c.exec(["id"]).user_name("nobody").output()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn user_name(mut self, spec: impl Into<String>) -> Self {
        self.ask.user = Some(UserSpec::Name(spec.into()));
        self
    }

    /// Supplementary groups (replacing the container's or the looked-up
    /// user's).
    ///
    /// ```no_run
    /// # let c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// let out = c.exec(["id", "-G"]).groups([10, 20]).output()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn groups(mut self, groups: impl IntoIterator<Item = u32>) -> Self {
        self.ask.groups = Some(groups.into_iter().collect());
        self
    }

    /// Add a capability (`NET_ADMIN`, `CAP_KILL`, `ALL`…) to the
    /// container's sets (bounding, effective, permitted; never inheritable
    /// or ambient, runc CVE-2022-29162). Only capabilities of the
    /// container's bounding set can be added (`ALL` means all of those):
    /// another one fails the spawn naming it; exceeding the container's
    /// bounding set takes an explicit [`capabilities`](Self::capabilities).
    ///
    /// ```no_run
    /// # let c = berth::Container::builder("c").cap_add("NET_ADMIN").command(["sleep", "10"]).spawn()?;
    /// let st = c.exec(["ip", "link"]).cap_drop("ALL").cap_add("NET_ADMIN").status()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn cap_add(mut self, cap: impl Into<String>) -> Self {
        self.ask.cap_add.push(cap.into());
        self
    }

    /// Drop a capability (`ALL`: every one) from every set of the
    /// container's, the bounding set included; a capability both added and
    /// dropped is dropped.
    ///
    /// ```no_run
    /// # let c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// let st = c.exec(["ping", "-c1", "127.0.0.1"]).cap_drop("NET_RAW").status()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn cap_drop(mut self, cap: impl Into<String>) -> Self {
        self.ask.cap_drop.push(cap.into());
        self
    }

    /// Set all five capability sets explicitly, whatever the container's
    /// (the only way to exceed its bounding set; overrides
    /// [`cap_add`](Self::cap_add)/[`cap_drop`](Self::cap_drop)). The
    /// container's seccomp filter still applies, as compiled for the
    /// container's capabilities (Docker's profile allows e.g. `mount` only
    /// with `CAP_SYS_ADMIN`): give a [`policy`](Self::policy) for another.
    ///
    /// ```no_run
    /// use berth::{CapSet, Capabilities};
    /// # let c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// let st = c.exec(["id"]).capabilities(Capabilities::uniform(CapSet::empty())).status()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn capabilities(mut self, caps: Capabilities) -> Self {
        self.ask.capabilities = Some(caps);
        self
    }

    /// `no_new_privs` for this process (prctl(2) `PR_SET_NO_NEW_PRIVS`,
    /// Linux 3.5). Default: the container's.
    ///
    /// ```no_run
    /// # let c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// let st = c.exec(["true"]).no_new_privs(true).status()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn no_new_privs(mut self, on: bool) -> Self {
        self.ask.no_new_privs = Some(on);
        self
    }

    /// Detached (`docker exec --detach`): no parent death signal, and the
    /// [`ExecChild`] [`spawn`](Self::spawn) returns can be waited on, or
    /// dropped without killing the process (a background thread then reaps
    /// it). It still dies with the container (its pid namespace and
    /// cgroup).
    ///
    /// ```no_run
    /// # let c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// let child = c.exec(["sleep", "5"]).stdin(berth::Stdio::Null).detach(true).spawn()?;
    /// drop(child); // still running
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn detach(mut self, on: bool) -> Self {
        self.ask.detach = on;
        self
    }

    /// The security policy with the user, groups, capabilities and
    /// `no_new_privs` asked for applied on top.
    fn effective_policy(&self) -> Result<SecurityPolicy> {
        let mut p = self.policy.clone();
        let groups = self.ask.groups.clone();
        match &self.ask.user {
            None => {
                if let Some(g) = groups {
                    p = p.groups(g);
                }
            }
            Some(UserSpec::Ids(u, g)) => p = p.user(*u, *g).groups(groups.unwrap_or_default()),
            Some(UserSpec::Name(spec)) => {
                let root = PathBuf::from(format!("/proc/{}/root", self.pid));
                let (u, g, sup) = crate::bundle::resolve_image_user(&[root], spec)?;
                p = p.user(u, g).groups(groups.unwrap_or(sup));
            }
        }
        if let Some(c) = self.ask.capabilities {
            p = p.capabilities(c);
        } else if !self.ask.cap_add.is_empty() || !self.ask.cap_drop.is_empty() {
            // A policy that leaves capabilities alone keeps every one.
            let base = p
                .capability_sets()
                .unwrap_or_else(|| Capabilities::uniform(CapSet::all()));
            p = p.capabilities(relative_caps(base, &self.ask.cap_add, &self.ask.cap_drop)?);
        }
        if let Some(n) = self.ask.no_new_privs {
            p = p.no_new_privs(n);
        }
        Ok(p)
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
        let prepared = Arc::new(self.effective_policy()?.prepare()?);
        let mut sp = Spawner::new(&self.argv);
        // Non-dumpable also when no namespace is joined (the join path sets
        // it itself before its first setns).
        // SAFETY: one raw system call through berth_sys::child.
        sp.step(unsafe {
            Step::hook("prctl(PR_SET_DUMPABLE, 0)", || {
                berth_sys::child::prctl(libc::PR_SET_DUMPABLE, [0; 4]).map(drop)
            })
        });
        sp.env_clear()
            .current_dir(&self.cwd)
            .parent_death_signal(if self.ask.detach { 0 } else { self.pdeathsig })
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
            Step::hook_detailed("apply security policy", move || {
                prepared
                    .apply_in_child()
                    .map_err(crate::error::step_failure)
            })
        });
        Ok((sp, rx))
    }

    /// Start it; the returned process is not part of the container's
    /// lifetime accounting (it dies with the container's pid namespace).
    /// Dropping the returned [`ExecChild`] kills it unless
    /// [`detach`](Self::detach)ed: keep it, or release it with
    /// [`ExecChild::into_pidfd`].
    ///
    /// ```no_run
    /// # let c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// let mut child = c.exec(["sleep", "1"]).spawn()?;
    /// child.wait()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn spawn(mut self) -> Result<ExecChild> {
        self.no_tty("spawn")?;
        let child = self.spawner()?.0.spawn()?;
        Ok(ExecChild::new(child, self.ask.detach))
    }

    /// Start it with a terminal ([`tty`](Self::tty)); returns the process
    /// and the pty master (close-on-exec).
    ///
    /// ```no_run
    /// # let c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// let (mut child, master) = c.exec(["sh"]).tty(true).spawn_tty()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn spawn_tty(mut self) -> Result<(ExecChild, OwnedFd)> {
        self.tty = true;
        let (mut sp, rx) = self.spawner()?;
        let child = ExecChild::new(sp.spawn()?, self.ask.detach);
        let rx = rx.ok_or_else(|| Error::invalid("exec: no pty planned"))?;
        Ok((child, rx.receive()?))
    }

    /// Run it with stdout and stderr piped and collected (stdin
    /// `/dev/null` unless set), like [`std::process::Command::output`].
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

/// Hooks for the async API (asynchronous.rs).
#[cfg(feature = "tokio")]
impl Exec<'_> {
    /// The container id.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// This exec owning a duplicate of the init's pidfd, so it can move to
    /// tokio's blocking pool. `capture`: stdout and stderr piped, stdin
    /// `/dev/null` unless set (what [`output`](Self::output) does).
    pub(crate) fn into_owned(self, capture: bool) -> Result<Exec<'static>> {
        let pidfd = match self.pidfd {
            None => None,
            Some(Pidfd::Owned(o)) => Some(Pidfd::Owned(o)),
            Some(Pidfd::Borrowed(b)) => {
                Some(Pidfd::Owned(b.try_clone_to_owned().map_err(|source| {
                    Error::Process {
                        what: "dup the init's pidfd for exec",
                        id: self.id.clone(),
                        source,
                    }
                })?))
            }
        };
        let (mut stdin, mut stdout, mut stderr) = (self.stdin, self.stdout, self.stderr);
        if capture {
            stdout = Stdio::Piped;
            stderr = Stdio::Piped;
            if matches!(stdin, Stdio::Inherit) {
                stdin = Stdio::Null;
            }
        }
        Ok(Exec {
            id: self.id,
            pidfd,
            namespaces: self.namespaces,
            cgroup: self.cgroup,
            cgroup_desc: self.cgroup_desc,
            argv: self.argv,
            env: self.env,
            cwd: self.cwd,
            policy: self.policy,
            stdin,
            stdout,
            stderr,
            keep_fds: self.keep_fds,
            tty: self.tty,
            pdeathsig: self.pdeathsig,
            pid: self.pid,
            ask: self.ask,
        })
    }
}

/// `base` with `add` added to the bounding, effective and permitted sets
/// and `drop` removed from all five; an added capability outside `base`'s
/// bounding set is refused (`ALL` in `add`: every one of the bounding set).
fn relative_caps(base: Capabilities, add: &[String], drop: &[String]) -> Result<Capabilities> {
    let is_all = |s: &String| s.trim().eq_ignore_ascii_case("ALL");
    let named = CapSet::from_names(add.iter().filter(|s| !is_all(s)))?;
    let beyond = named.difference(base.bounding);
    if !beyond.is_empty() {
        return Err(Error::invalid(format!(
            "exec cap_add {}: not in the container's bounding set {:?}; \
             only Exec::capabilities may exceed it",
            beyond.names().join(", "),
            base.bounding.names()
        )));
    }
    let add = if add.iter().any(is_all) {
        base.bounding
    } else {
        named
    };
    let drop = CapSet::from_names(drop)?;
    Ok(Capabilities {
        bounding: base.bounding.difference(drop),
        effective: base.effective.union(add).difference(drop),
        permitted: base.permitted.union(add).difference(drop),
        inheritable: base.inheritable.difference(drop),
        ambient: base.ambient.difference(drop),
    })
}

/// A process started in a container by [`Exec::spawn`] or
/// [`Exec::spawn_tty`], owning its pidfd (race-free `wait` and `kill`).
///
/// Dropped before it was waited for, it is killed (`SIGKILL`) and reaped,
/// unless the exec was [`detach`](Exec::detach)ed: then it runs on and a
/// background thread reaps it when it exits.
#[derive(Debug)]
pub struct ExecChild {
    child: Option<berth_namespaces::Child>,
    detached: bool,
    /// Its stdin when [`Stdio::Piped`].
    pub stdin: Option<ChildStdin>,
    /// Its stdout when [`Stdio::Piped`].
    pub stdout: Option<ChildStdout>,
    /// Its stderr when [`Stdio::Piped`].
    pub stderr: Option<ChildStderr>,
}

impl ExecChild {
    fn new(mut child: berth_namespaces::Child, detached: bool) -> ExecChild {
        ExecChild {
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
            child: Some(child),
            detached,
        }
    }

    /// The process (only `into_pidfd` and `Drop`, which consume the
    /// handle, take it out).
    fn inner(&mut self) -> Result<&mut berth_namespaces::Child> {
        self.child.as_mut().ok_or_else(|| Error::Process {
            what: "access the exec'd process",
            id: String::new(),
            source: std::io::Error::from_raw_os_error(libc::ESRCH),
        })
    }

    /// The process id in the caller's pid namespace.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.pid())
    }

    /// Whether the exec was [`detach`](Exec::detach)ed.
    pub fn is_detached(&self) -> bool {
        self.detached
    }

    /// Wait for it to exit.
    pub fn wait(&mut self) -> Result<ExitStatus> {
        drop(self.stdin.take());
        Ok(self.inner()?.wait()?)
    }

    /// Its exit status if it has exited, without blocking.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        Ok(self.inner()?.try_wait()?)
    }

    /// Wait at most `timeout`; `None` while it still runs.
    pub fn wait_timeout(&mut self, timeout: std::time::Duration) -> Result<Option<ExitStatus>> {
        Ok(self.inner()?.wait_timeout(timeout)?)
    }

    /// Send it `signal` (pidfd_send_signal(2): never a reused pid).
    ///
    /// ```no_run
    /// # let c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// let mut child = c.exec(["sleep", "60"]).spawn()?;
    /// child.signal(berth::Signal::SIGTERM)?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    #[doc(alias("pidfd_send_signal"))]
    pub fn signal(&mut self, signal: crate::Signal) -> Result<()> {
        Ok(self.inner()?.kill(signal as i32)?)
    }

    /// Kill it: `SIGKILL`, like [`std::process::Child::kill`].
    ///
    /// ```no_run
    /// # let c = berth::Container::builder("c").command(["sleep", "10"]).spawn()?;
    /// let mut child = c.exec(["sleep", "60"]).spawn()?;
    /// child.kill()?;
    /// child.wait()?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn kill(&mut self) -> Result<()> {
        self.signal(crate::Signal::SIGKILL)
    }

    /// Close its stdin, read its piped stdout and stderr to the end, wait
    /// for it: like [`std::process::Child::wait_with_output`].
    pub fn wait_with_output(mut self) -> Result<Output> {
        use std::io::Read;
        drop(self.stdin.take());
        let err = self.stderr.take().map(|mut e| {
            std::thread::spawn(move || {
                let mut v = Vec::new();
                e.read_to_end(&mut v).map(|_| v)
            })
        });
        let mut stdout = Vec::new();
        if let Some(mut o) = self.stdout.take() {
            o.read_to_end(&mut stdout)
                .map_err(|e| Error::io("read the exec's stdout", "pipe", e))?;
        }
        let stderr = match err.map(|h| h.join()) {
            None => Vec::new(),
            Some(Ok(r)) => r.map_err(|e| Error::io("read the exec's stderr", "pipe", e))?,
            Some(Err(_)) => return Err(Error::invalid("the stderr reader panicked")),
        };
        let status = self.wait()?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    /// Its pidfd while this handle owns the process (async wait).
    #[cfg(feature = "tokio")]
    pub(crate) fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.child.as_ref().map(|c| c.pidfd())
    }

    /// Give up ownership: it is neither killed nor reaped by this handle.
    /// Returns its pidfd.
    pub fn into_pidfd(mut self) -> Option<OwnedFd> {
        self.child.take().and_then(|c| c.into_pidfd())
    }
}

impl Drop for ExecChild {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if !self.detached {
            return; // berth_namespaces::Child kills and reaps on drop.
        }
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        // Reap it when it exits, without killing it.
        let spawned = std::thread::Builder::new()
            .name("berth-exec-reaper".into())
            .spawn(move || {
                if let Err(e) = child.wait() {
                    tracing::warn!(error = %e, "reaping a detached exec failed");
                }
            });
        if let Err(e) = spawned {
            // The closure, and the process with it, was dropped: killed.
            tracing::warn!(error = %e, "no thread to reap a detached exec: it was killed");
        }
    }
}
