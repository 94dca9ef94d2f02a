//! The `Spawner` builder: the public API that configures a spawn.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::error::{Error, Result};
use crate::handle::{Child, ChildRef};
use crate::pool::NetnsPool;
use crate::step::Step;
use crate::{IdMap, Namespaces};

/// Where a standard stream of the child goes, like [`std::process::Stdio`].
///
/// ```no_run
/// use berth_namespaces::{Namespaces, Spawner, Stdio};
/// let out = Spawner::new(["/bin/hostname"])
///     .namespaces(Namespaces::UTS)
///     .hostname("box")
///     .stdout(Stdio::Piped)
///     .output()?;
/// assert_eq!(out.stdout, b"box\n");
/// # Ok::<(), berth_namespaces::Error>(())
/// ```
#[derive(Debug, Default)]
pub enum Stdio {
    /// The parent's stream (default).
    #[default]
    Inherit,
    /// `/dev/null`.
    Null,
    /// A pipe; the parent's end is in [`Child::stdin`]/`stdout`/`stderr`.
    Piped,
    /// This fd (duplicated at spawn; the `Spawner` keeps its own copy).
    Fd(OwnedFd),
}

pub(super) type AfterClone = Box<
    dyn FnMut(ChildRef<'_>) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>
        + Send,
>;

pub(super) enum JoinSpec {
    Pidfd {
        fd: io::Result<OwnedFd>,
        ns: Namespaces,
    },
    Path {
        path: PathBuf,
        ns: Namespaces,
    },
}

pub(super) enum FdSource {
    Owned(OwnedFd),
    Borrowed(RawFd),
}

/// Builds and spawns a process in new or existing namespaces, shaped like
/// [`std::process::Command`]: configure, then [`spawn`](Self::spawn),
/// [`status`](Self::status) or [`output`](Self::output).
///
/// What happens in the child, in this order: (1) `PR_SET_PDEATHSIG`, (2)
/// wait for the parent to write the id maps and run the
/// [`after_clone`](Self::after_clone) hook, (3) joins (`setns`), (4) time
/// offsets, (5) hostname/domainname, (6) stdio and kept fds, (7) the plan's
/// [`Step`]s in order, (8) cwd, (9) the optional init forks the workload,
/// (10) every other fd is closed, (11) two-phase start waits, (12) `execve`.
///
/// ```no_run
/// use berth_namespaces::{Namespaces, Spawner};
/// let mut child = Spawner::new(["/bin/sh", "-c", "echo pid $$"]) // pid 1 in its namespace
///     .namespaces(Namespaces::PID | Namespaces::MOUNT | Namespaces::UTS)
///     .spawn()?; // clone3(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS), then execve
/// let status = child.wait()?;
/// # Ok::<(), berth_namespaces::Error>(())
/// ```
#[doc(alias("clone3", "clone", "CLONE_INTO_CGROUP", "unshare"))]
pub struct Spawner {
    pub(super) program: OsString,
    pub(super) args: Vec<OsString>,
    pub(super) env_clear: bool,
    pub(super) env: BTreeMap<OsString, Option<OsString>>,
    pub(super) cwd: Option<PathBuf>,
    pub(super) stdin: Stdio,
    pub(super) stdout: Stdio,
    pub(super) stderr: Stdio,
    pub(super) namespaces: Namespaces,
    pub(super) uid_maps: Vec<IdMap>,
    pub(super) gid_maps: Vec<IdMap>,
    pub(super) map_tools: bool,
    pub(super) setgroups_deny: Option<bool>,
    pub(super) hostname: Option<String>,
    pub(super) domainname: Option<String>,
    pub(super) time_offsets: Option<(i64, i64)>,
    pub(super) cgroup: Option<io::Result<OwnedFd>>,
    pub(super) cgroup_desc: String,
    pub(super) pdeathsig: i32,
    pub(super) fds: Vec<(FdSource, RawFd)>,
    pub(super) init: bool,
    pub(super) steps: Vec<Step>,
    /// How many of `steps` (at the end) are final steps ([`Spawner::final_step`]).
    pub(super) final_steps: usize,
    /// Fds steps use, spared by the close of inherited fds ([`Spawner::step_fd`]).
    pub(super) step_fds: Vec<RawFd>,
    pub(super) joins: Vec<JoinSpec>,
    pub(super) after_clone: Option<AfterClone>,
    pub(super) netns_pool: Option<NetnsPool>,
    pub(super) background_teardown: bool,
}

impl std::fmt::Debug for Spawner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spawner")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("namespaces", &self.namespaces)
            .field("steps", &self.steps)
            .finish_non_exhaustive()
    }
}

impl Spawner {
    /// A spawner for `argv` (`argv[0]` is the program; without a `/` it is
    /// searched in the child's `PATH`). An empty `argv` is reported by `spawn`.
    ///
    /// ```
    /// let s = berth_namespaces::Spawner::new(["/bin/true"]);
    /// ```
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = argv.into_iter().map(|a| a.as_ref().to_owned()).collect();
        Spawner {
            program: args.first().cloned().unwrap_or_default(),
            args,
            env_clear: false,
            env: BTreeMap::new(),
            cwd: None,
            stdin: Stdio::Inherit,
            stdout: Stdio::Inherit,
            stderr: Stdio::Inherit,
            namespaces: Namespaces::empty(),
            uid_maps: Vec::new(),
            gid_maps: Vec::new(),
            map_tools: false,
            setgroups_deny: None,
            hostname: None,
            domainname: None,
            time_offsets: None,
            cgroup: None,
            cgroup_desc: String::new(),
            pdeathsig: 0,
            fds: Vec::new(),
            init: false,
            steps: Vec::new(),
            final_steps: 0,
            step_fds: Vec::new(),
            joins: Vec::new(),
            after_clone: None,
            netns_pool: None,
            background_teardown: false,
        }
    }

    /// Execute `program` instead of `argv[0]` (which stays what the program sees).
    ///
    /// ```
    /// let s = berth_namespaces::Spawner::new(["sh", "-c", "true"]).program("/bin/busybox");
    /// ```
    pub fn program(&mut self, program: impl AsRef<OsStr>) -> &mut Self {
        self.program = program.as_ref().to_owned();
        self
    }

    /// Append an argument.
    ///
    /// ```
    /// let s = berth_namespaces::Spawner::new(["/bin/echo"]).arg("hi");
    /// ```
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Append arguments.
    ///
    /// ```
    /// let s = berth_namespaces::Spawner::new(["/bin/echo"]).args(["a", "b"]);
    /// ```
    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Set an environment variable (the rest is inherited unless [`env_clear`](Self::env_clear)).
    ///
    /// ```
    /// let s = berth_namespaces::Spawner::new(["/bin/env"]).env("LANG", "C");
    /// ```
    pub fn env(&mut self, key: impl AsRef<OsStr>, val: impl AsRef<OsStr>) -> &mut Self {
        self.env
            .insert(key.as_ref().to_owned(), Some(val.as_ref().to_owned()));
        self
    }

    /// Remove an inherited environment variable.
    ///
    /// ```
    /// let s = berth_namespaces::Spawner::new(["/bin/env"]).env_remove("HOME");
    /// ```
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Self {
        self.env.insert(key.as_ref().to_owned(), None);
        self
    }

    /// Start from an empty environment.
    ///
    /// ```
    /// let s = berth_namespaces::Spawner::new(["/bin/env"]).env_clear().env("PATH", "/bin");
    /// ```
    pub fn env_clear(&mut self) -> &mut Self {
        self.env_clear = true;
        self.env.clear();
        self
    }

    /// Working directory of the program, entered after the plan (so after `pivot_root`).
    ///
    /// ```
    /// let s = berth_namespaces::Spawner::new(["/bin/pwd"]).current_dir("/tmp");
    /// ```
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Self {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// Standard input.
    ///
    /// ```
    /// use berth_namespaces::{Spawner, Stdio};
    /// let s = Spawner::new(["/bin/cat"]).stdin(Stdio::Null);
    /// ```
    pub fn stdin(&mut self, s: Stdio) -> &mut Self {
        self.stdin = s;
        self
    }

    /// Standard output.
    ///
    /// ```
    /// use berth_namespaces::{Spawner, Stdio};
    /// let s = Spawner::new(["/bin/echo"]).stdout(Stdio::Piped);
    /// ```
    pub fn stdout(&mut self, s: Stdio) -> &mut Self {
        self.stdout = s;
        self
    }

    /// Standard error.
    ///
    /// ```
    /// use berth_namespaces::{Spawner, Stdio};
    /// let s = Spawner::new(["/bin/ls", "/nope"]).stderr(Stdio::Null);
    /// ```
    pub fn stderr(&mut self, s: Stdio) -> &mut Self {
        self.stderr = s;
        self
    }

    /// Create these namespaces (added to any set before) with `clone3`.
    ///
    /// ```
    /// use berth_namespaces::{Namespaces, Spawner};
    /// let s = Spawner::new(["/bin/true"]).namespaces(Namespaces::PID | Namespaces::NET);
    /// ```
    pub fn namespaces(&mut self, ns: Namespaces) -> &mut Self {
        self.namespaces |= ns;
        self
    }

    /// Add a line to the new user namespace's `uid_map` (needs
    /// [`Namespaces::USER`]). Written by the parent while the child waits.
    /// Without `CAP_SETUID` only a single id (your own) can be mapped,
    /// unless [`use_id_map_tools`](Self::use_id_map_tools).
    ///
    /// ```
    /// use berth_namespaces::{IdMap, Namespaces, Spawner};
    /// let s = Spawner::new(["/bin/id"]).namespaces(Namespaces::USER)
    ///     .uid_map(IdMap::new(0, 100_000, 65_536));
    /// ```
    pub fn uid_map(&mut self, map: IdMap) -> &mut Self {
        self.uid_maps.push(map);
        self
    }

    /// Add a line to the new user namespace's `gid_map`; see [`uid_map`](Self::uid_map).
    ///
    /// ```
    /// use berth_namespaces::{IdMap, Namespaces, Spawner};
    /// let s = Spawner::new(["/bin/id"]).namespaces(Namespaces::USER)
    ///     .gid_map(IdMap::new(0, 100_000, 65_536));
    /// ```
    pub fn gid_map(&mut self, map: IdMap) -> &mut Self {
        self.gid_maps.push(map);
        self
    }

    /// Write the maps with the setuid helpers `newuidmap`/`newgidmap`
    /// (package `uidmap`), which allow an unprivileged caller the ranges
    /// `/etc/subuid` and `/etc/subgid` grant it.
    ///
    /// ```
    /// use berth_namespaces::{IdMap, Namespaces, Spawner};
    /// let s = Spawner::new(["/bin/id"]).namespaces(Namespaces::USER)
    ///     .uid_map(IdMap::new(0, 1000, 1)).uid_map(IdMap::new(1, 100_000, 65_536))
    ///     .use_id_map_tools(true);
    /// ```
    pub fn use_id_map_tools(&mut self, yes: bool) -> &mut Self {
        self.map_tools = yes;
        self
    }

    /// Write `deny` to `/proc/<pid>/setgroups` (Linux 3.19) before the gid
    /// map. By default it is denied exactly when an unprivileged caller
    /// writes a gid map directly (the kernel requires it then).
    ///
    /// ```
    /// use berth_namespaces::{Namespaces, Spawner};
    /// let s = Spawner::new(["/bin/true"]).namespaces(Namespaces::USER).setgroups_deny(true);
    /// ```
    #[doc(alias("setgroups"))]
    pub fn setgroups_deny(&mut self, deny: bool) -> &mut Self {
        self.setgroups_deny = Some(deny);
        self
    }

    /// Hostname in the new UTS namespace (at most 64 bytes).
    ///
    /// ```
    /// use berth_namespaces::{Namespaces, Spawner};
    /// let s = Spawner::new(["/bin/hostname"]).namespaces(Namespaces::UTS).hostname("c1");
    /// ```
    pub fn hostname(&mut self, name: impl Into<String>) -> &mut Self {
        self.hostname = Some(name.into());
        self
    }

    /// NIS domainname in the new UTS namespace (at most 64 bytes).
    ///
    /// ```
    /// use berth_namespaces::{Namespaces, Spawner};
    /// let s = Spawner::new(["/bin/true"]).namespaces(Namespaces::UTS).domainname("lab");
    /// ```
    pub fn domainname(&mut self, name: impl Into<String>) -> &mut Self {
        self.domainname = Some(name.into());
        self
    }

    /// Offsets (seconds) of `CLOCK_MONOTONIC` and `CLOCK_BOOTTIME` in the
    /// new time namespace (needs [`Namespaces::TIME`]; time_namespaces(7),
    /// Linux 5.6, entering with setns 5.8).
    ///
    /// ```
    /// use berth_namespaces::{Namespaces, Spawner};
    /// let s = Spawner::new(["/bin/cat", "/proc/uptime"])
    ///     .namespaces(Namespaces::TIME).time_offsets(0, 86_400);
    /// ```
    #[doc(alias("timens_offsets"))]
    pub fn time_offsets(&mut self, monotonic_secs: i64, boottime_secs: i64) -> &mut Self {
        self.time_offsets = Some((monotonic_secs, boottime_secs));
        self
    }

    /// Start the child directly in this cgroup v2 directory
    /// (`CLONE_INTO_CGROUP`, Linux 5.7): no window where it runs elsewhere.
    ///
    /// ```no_run
    /// use berth_namespaces::Spawner;
    /// let dir = std::fs::File::open("/sys/fs/cgroup/unified/c1")?;
    /// let s = Spawner::new(["/bin/true"]).cgroup_fd(dir.into());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[doc(alias("CLONE_INTO_CGROUP"))]
    pub fn cgroup_fd(&mut self, dir: OwnedFd) -> &mut Self {
        self.cgroup_desc = format!("fd {}", dir.as_raw_fd());
        self.cgroup = Some(Ok(dir));
        self
    }

    /// Like [`cgroup_fd`](Self::cgroup_fd), opening the directory at `path`
    /// now (an error is reported by `spawn`).
    ///
    /// ```no_run
    /// use berth_namespaces::Spawner;
    /// let s = Spawner::new(["/bin/true"]).cgroup_path("/sys/fs/cgroup/unified/c1");
    /// ```
    #[doc(alias("CLONE_INTO_CGROUP"))]
    pub fn cgroup_path(&mut self, path: impl AsRef<Path>) -> &mut Self {
        let path = path.as_ref();
        self.cgroup_desc = format!("{path:?}");
        self.cgroup = Some(std::fs::File::open(path).map(OwnedFd::from));
        self
    }

    /// Signal the child (with [`init`](Self::init): the init, whose death
    /// ends the whole pid namespace) gets when the owning *process* dies
    /// (`PR_SET_PDEATHSIG`, prctl(2)). Set again after the plan because
    /// credential changes clear it.
    ///
    /// The kernel sends it when the parent *thread* exits, so with a
    /// signal set the clone is done by a thread that lives as long as the
    /// process: the main thread when called from it, else berth's own
    /// `berth-owner` thread while the caller waits (a spawn from
    /// `tokio::task::spawn_blocking` or a thread pool is not killed when
    /// that thread retires). That clone carries the caller's signal mask;
    /// per-thread state the caller set on itself alone (a `setns` of its
    /// own thread, CPU affinity) is not inherited there — join namespaces
    /// with [`join_path`](Self::join_path). An `execve` of the owning
    /// process from another thread also ends the owner thread (signal sent).
    ///
    /// ```
    /// let s = berth_namespaces::Spawner::new(["/bin/sleep", "60"]).parent_death_signal(libc::SIGKILL);
    /// ```
    #[doc(alias("PR_SET_PDEATHSIG"))]
    pub fn parent_death_signal(&mut self, sig: i32) -> &mut Self {
        self.pdeathsig = sig;
        self
    }

    /// Keep our fd `fd` open in the child under the same number (every fd
    /// not kept is closed before `execve` with `close_range(2)`). `fd` must
    /// stay open until `spawn` returns.
    ///
    /// ```
    /// let s = berth_namespaces::Spawner::new(["/bin/true"]).keep_fd(3);
    /// ```
    pub fn keep_fd(&mut self, fd: RawFd) -> &mut Self {
        self.fds.push((FdSource::Borrowed(fd), fd));
        self
    }

    /// Leave our fd `fd` open for the child's [steps](Self::step) (e.g. a
    /// Landlock ruleset a [final step](Self::final_step) applies): it is
    /// spared when the child closes inherited fds, under the same number,
    /// and keeps its close-on-exec flag, so `execve` closes it and the
    /// program never sees it (open it `O_CLOEXEC`). Unlike
    /// [`keep_fd`](Self::keep_fd) nothing is duplicated; `fd` must not be
    /// a target of [`map_fd`](Self::map_fd), and must stay open until
    /// `spawn` returns.
    ///
    /// ```no_run
    /// # let ruleset_fd = 3;
    /// let s = berth_namespaces::Spawner::new(["/bin/true"]).step_fd(ruleset_fd);
    /// ```
    pub fn step_fd(&mut self, fd: RawFd) -> &mut Self {
        self.step_fds.push(fd);
        self
    }

    /// Give the child `fd` as its descriptor number `child_fd`.
    ///
    /// ```no_run
    /// let f = std::fs::File::open("/etc/hostname")?;
    /// let s = berth_namespaces::Spawner::new(["/bin/cat", "/proc/self/fd/5"]).map_fd(f.into(), 5);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn map_fd(&mut self, fd: OwnedFd, child_fd: RawFd) -> &mut Self {
        self.fds.push((FdSource::Owned(fd), child_fd));
        self
    }

    /// Run a minimal init as the child (pid 1 of a new pid namespace): it
    /// forks the workload, forwards every signal it gets to it, reaps all
    /// zombies, and exits with the workload's exit code (128 + signal if it
    /// was killed), like `docker run --init`. Allocation-free.
    ///
    /// The init applies the [final steps](Self::final_step) too, so a
    /// seccomp filter among them must allow what the init itself calls
    /// after it: `rt_sigtimedwait`, `wait4`, `kill` and `exit_group` (as
    /// for `docker run --init`'s tini). Where the filter refuses waiting
    /// for signals, the init exits with status 255 at once, which ends the
    /// pid namespace and the workload with it (pid_namespaces(7)).
    ///
    /// ```
    /// use berth_namespaces::{Namespaces, Spawner};
    /// let s = Spawner::new(["/bin/sh"]).namespaces(Namespaces::PID).init(true);
    /// ```
    pub fn init(&mut self, yes: bool) -> &mut Self {
        self.init = yes;
        self
    }

    /// Append a step to the child plan (see [`Step`]).
    ///
    /// ```
    /// use berth_namespaces::{Namespaces, Spawner, Step};
    /// let s = Spawner::new(["/bin/true"]).namespaces(Namespaces::MOUNT)
    ///     .step(Step::make_private("/", true));
    /// ```
    pub fn step(&mut self, step: Step) -> &mut Self {
        // Plan steps stay before the final ones.
        let at = self.steps.len() - self.final_steps;
        self.steps.insert(at, step);
        self
    }

    /// Append a *final* step: it runs after every other part of the child's
    /// setup — the plan's steps, closing inherited fds, `chdir`, forking the
    /// init, the two-phase start's wait and the signal reset — so that the
    /// only system call after it is `execve(2)`. This is where a security
    /// policy goes (capabilities, `no_new_privs`, then the seccomp filter):
    /// a filter that allows little beyond `execve` then never sees berth's
    /// own setup calls (`close_range`, `chdir`, `read` of the start pipe).
    /// Final steps run in the order they were added; with
    /// [`init`](Self::init) the init applies them too, right after forking
    /// the program and before it closes its fds and starts forwarding
    /// signals, so that pid 1 holds no more privilege than the program.
    ///
    /// ```
    /// use berth_namespaces::{Namespaces, Spawner, Step};
    /// let s = Spawner::new(["/bin/true"]).namespaces(Namespaces::MOUNT)
    ///     .step(Step::make_private("/", true))
    ///     .final_step(Step::chdir("/"));
    /// ```
    pub fn final_step(&mut self, step: Step) -> &mut Self {
        self.steps.push(step);
        self.final_steps += 1;
        self
    }

    /// Append several steps.
    ///
    /// ```
    /// use berth_namespaces::{Namespaces, Spawner, Step};
    /// let s = Spawner::new(["/bin/true"]).namespaces(Namespaces::MOUNT)
    ///     .steps([Step::make_private("/", true), Step::chdir("/")]);
    /// ```
    pub fn steps(&mut self, steps: impl IntoIterator<Item = Step>) -> &mut Self {
        for step in steps {
            self.step(step);
        }
        self
    }

    /// Join the namespaces `ns` of the process behind `pidfd`
    /// (`setns(pidfd, flags)`, Linux 5.8), e.g. for `exec` into a running
    /// container. Joining a pid namespace forks once more so the program
    /// really is inside it; the joining process is made non-dumpable first.
    ///
    /// ```no_run
    /// use berth_namespaces::{Namespaces, Spawner};
    /// # fn f(target: &berth_namespaces::Child) -> berth_namespaces::Result<()> {
    /// let status = Spawner::new(["/bin/sh", "-c", "hostname"])
    ///     .join_pidfd(target.pidfd(), Namespaces::all())
    ///     .status()?;
    /// # Ok(()) }
    /// ```
    #[doc(alias("setns"))]
    pub fn join_pidfd(&mut self, pidfd: impl AsFd, ns: Namespaces) -> &mut Self {
        self.joins.push(JoinSpec::Pidfd {
            fd: pidfd.as_fd().try_clone_to_owned(),
            ns,
        });
        self
    }

    /// Join the namespace at `path` (`/proc/<pid>/ns/net`, a bind-mounted
    /// `/run/netns/x`, …); `ns` names its type (or is empty to accept any).
    /// The type is checked with `NS_GET_NSTYPE` (ioctl_ns(2), Linux 4.11).
    ///
    /// ```no_run
    /// use berth_namespaces::{Namespaces, Spawner};
    /// let s = Spawner::new(["/bin/ip", "link"]).join_path("/run/netns/blue", Namespaces::NET);
    /// ```
    #[doc(alias("setns"))]
    pub fn join_path(&mut self, path: impl AsRef<Path>, ns: Namespaces) -> &mut Self {
        self.joins.push(JoinSpec::Path {
            path: path.as_ref().to_owned(),
            ns,
        });
        self
    }

    /// A parent-side callback run after `clone3` and after the id maps are
    /// written, while the child still waits: set up its network from
    /// `/proc/<pid>/ns/net` or its pidfd, move it into cgroups, … An error
    /// kills and reaps the child and is returned as [`Error::Hook`].
    ///
    /// ```
    /// use berth_namespaces::{Namespaces, Spawner};
    /// let s = Spawner::new(["/bin/true"]).namespaces(Namespaces::NET)
    ///     .after_clone(|child| { println!("netns at /proc/{}/ns/net", child.pid()); Ok(()) });
    /// ```
    pub fn after_clone<F>(&mut self, hook: F) -> &mut Self
    where
        F: FnMut(ChildRef<'_>) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>
            + Send
            + 'static,
    {
        self.after_clone = Some(Box::new(hook));
        self
    }

    /// Take the new network namespace ([`Namespaces::NET`]) from `pool`, a
    /// [`NetnsPool`] whose threads made it ahead of time, instead of having
    /// `clone3(CLONE_NEWNET)` create it on the spawn path: the child enters
    /// it first thing with `setns(2)`. Creating a network namespace costs
    /// 1–2 ms of kernel time (every pernet init), which dominates a spawn
    /// in new namespaces; taking one from the pool costs a `setns`.
    ///
    /// Falls back to `CLONE_NEWNET` when the pool is empty, when its
    /// threads could not create namespaces, or when a new user namespace is
    /// created too (the pooled namespace belongs to our user namespace, so
    /// the child's root would not own it). The namespace is fresh either
    /// way: only a `lo` that is down, never entered by anything else.
    ///
    /// ```no_run
    /// use berth_namespaces::{Namespaces, NetnsPool, Spawner};
    /// let pool = NetnsPool::shared()?;
    /// let st = Spawner::new(["/bin/true"]).namespaces(Namespaces::NET).netns_pool(&pool).status()?;
    /// # Ok::<(), berth_namespaces::Error>(())
    /// ```
    pub fn netns_pool(&mut self, pool: &NetnsPool) -> &mut Self {
        self.netns_pool = Some(pool.clone());
        self
    }

    /// Tear the child's new mount namespace ([`Namespaces::MOUNT`]) down on
    /// a background thread instead of inside the child's exit. Normally the
    /// child's exit drops the last reference: the kernel then unmounts the
    /// namespace's whole tree and waits for an RCU grace period before the
    /// exit completes (`put_mnt_ns` → `namespace_unlock`, fs/namespace.c),
    /// and [`Child::wait`] waits for all of it. With this option the
    /// [`Child`] holds an fd of the namespace (`/proc/<pid>/ns/mnt`, opened
    /// right after the spawn) until the child has been reaped, then hands it
    /// to [`release_in_background`](crate::release_in_background): `wait`
    /// returns as soon as the process is gone, and the same unmount work
    /// runs on the other thread. It saves latency, not CPU. A child that
    /// exits before the fd is opened is torn down the usual way.
    ///
    /// ```no_run
    /// use berth_namespaces::{Namespaces, Spawner};
    /// let st = Spawner::new(["/bin/true"])
    ///     .namespaces(Namespaces::MOUNT | Namespaces::PID)
    ///     .background_teardown(true)
    ///     .status()?;
    /// # Ok::<(), berth_namespaces::Error>(())
    /// ```
    pub fn background_teardown(&mut self, on: bool) -> &mut Self {
        self.background_teardown = on;
        self
    }

    /// An fd of `pid`'s mount namespace when [`background_teardown`] asks
    /// for it and the child has a new one; `None` if it already exited.
    ///
    /// [`background_teardown`]: Self::background_teardown
    pub(super) fn hold_mount_ns(&self, pid: i32) -> Option<OwnedFd> {
        if !self.background_teardown || !self.namespaces.contains(Namespaces::MOUNT) {
            return None;
        }
        // open(2) with O_RDONLY | O_CLOEXEC.
        std::fs::File::open(format!("/proc/{pid}/ns/mnt"))
            .ok()
            .map(OwnedFd::from)
    }

    /// Spawn and wait for the exit status.
    ///
    /// ```no_run
    /// let st = berth_namespaces::Spawner::new(["/bin/true"]).status()?;
    /// assert!(st.success());
    /// # Ok::<(), berth_namespaces::Error>(())
    /// ```
    pub fn status(&mut self) -> Result<std::process::ExitStatus> {
        self.spawn()?.wait()
    }

    /// Spawn with stdout and stderr piped (stdin `/dev/null` unless set),
    /// collect both and wait.
    ///
    /// ```no_run
    /// let out = berth_namespaces::Spawner::new(["/bin/echo", "hi"]).output()?;
    /// assert_eq!(out.stdout, b"hi\n");
    /// # Ok::<(), berth_namespaces::Error>(())
    /// ```
    pub fn output(&mut self) -> Result<Output> {
        let saved_out = std::mem::replace(&mut self.stdout, Stdio::Piped);
        let saved_err = std::mem::replace(&mut self.stderr, Stdio::Piped);
        let stdin_default = matches!(self.stdin, Stdio::Inherit);
        if stdin_default {
            self.stdin = Stdio::Null;
        }
        let spawned = self.spawn();
        self.stdout = saved_out;
        self.stderr = saved_err;
        if stdin_default {
            self.stdin = Stdio::Inherit;
        }
        let mut child = spawned?;
        let err_reader = child.stderr.take().map(|mut e| {
            std::thread::spawn(move || {
                let mut v = Vec::new();
                let _ = e.read_to_end(&mut v);
                v
            })
        });
        let mut stdout = Vec::new();
        if let Some(mut o) = child.stdout.take() {
            o.read_to_end(&mut stdout)
                .map_err(|e| Error::setup_io("read the child's stdout", e))?;
        }
        let stderr = err_reader
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        let status = child.wait()?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    /// Spawn the process; returns once it has called `execve` (or with the
    /// precise error of the step that failed, after killing and reaping it).
    ///
    /// ```no_run
    /// use berth_namespaces::{Namespaces, Spawner};
    /// let mut child = Spawner::new(["/bin/sleep", "1"]).namespaces(Namespaces::PID).spawn()?;
    /// child.wait()?;
    /// # Ok::<(), berth_namespaces::Error>(())
    /// ```
    #[doc(alias("clone3", "execve"))]
    pub fn spawn(&mut self) -> Result<Child> {
        self.spawn_inner(false)
    }

    /// Two-phase start (OCI `create`): run the whole plan, then leave the
    /// child stopped just before `execve` until [`Child::start`].
    ///
    /// ```no_run
    /// use berth_namespaces::{Namespaces, Spawner};
    /// let mut child = Spawner::new(["/bin/true"]).namespaces(Namespaces::PID).spawn_stopped()?;
    /// println!("created {}", child.pid());
    /// child.start()?;
    /// # Ok::<(), berth_namespaces::Error>(())
    /// ```
    pub fn spawn_stopped(&mut self) -> Result<Child> {
        self.spawn_inner(true)
    }
}
