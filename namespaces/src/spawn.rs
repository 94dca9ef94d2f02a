//! The `Spawner` builder and the parent side of the spawn path.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::{ChildStderr, ChildStdin, ChildStdout, Output};

use crate::child::{self, ChildPlan, Report};
use crate::error::{Error, Result};
use crate::handle::{self, Child, ChildRef, Pending};
use crate::pool::NetnsPool;
use crate::step::{Step, StepKind};
use crate::sys;
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

type AfterClone = Box<
    dyn FnMut(ChildRef<'_>) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>
        + Send,
>;

enum JoinSpec {
    Pidfd {
        fd: io::Result<OwnedFd>,
        ns: Namespaces,
    },
    Path {
        path: PathBuf,
        ns: Namespaces,
    },
}

enum FdSource {
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
    program: OsString,
    args: Vec<OsString>,
    env_clear: bool,
    env: BTreeMap<OsString, Option<OsString>>,
    cwd: Option<PathBuf>,
    stdin: Stdio,
    stdout: Stdio,
    stderr: Stdio,
    namespaces: Namespaces,
    uid_maps: Vec<IdMap>,
    gid_maps: Vec<IdMap>,
    map_tools: bool,
    setgroups_deny: Option<bool>,
    hostname: Option<String>,
    domainname: Option<String>,
    time_offsets: Option<(i64, i64)>,
    cgroup: Option<io::Result<OwnedFd>>,
    cgroup_desc: String,
    pdeathsig: i32,
    fds: Vec<(FdSource, RawFd)>,
    init: bool,
    steps: Vec<Step>,
    /// How many of `steps` (at the end) are final steps ([`Spawner::final_step`]).
    final_steps: usize,
    /// Fds steps use, spared by the close of inherited fds ([`Spawner::step_fd`]).
    step_fds: Vec<RawFd>,
    joins: Vec<JoinSpec>,
    after_clone: Option<AfterClone>,
    netns_pool: Option<NetnsPool>,
    background_teardown: bool,
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

/// The default `PATH` when neither the child's environment nor ours has one.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// HOST_NAME_MAX (and the domainname limit), uname(2).
const HOST_NAME_MAX: usize = 64;
/// Most lines a uid_map/gid_map accepts (Linux 4.15; 5 before).
const MAX_MAP_LINES: usize = 340;
/// `NS_GET_NSTYPE` ioctl on a namespace fd (ioctl_ns(2), Linux 4.11).
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

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
    fn hold_mount_ns(&self, pid: i32) -> Option<OwnedFd> {
        if !self.background_teardown || !self.namespaces.contains(Namespaces::MOUNT) {
            return None;
        }
        let path = format!("/proc/{pid}/ns/mnt\0");
        // SAFETY: NUL-terminated path; the fd is owned right away.
        let fd = unsafe { libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC) };
        // SAFETY: a fresh fd when non-negative.
        (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
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

    fn validate(&self) -> Result<()> {
        if self.args.is_empty() || self.program.is_empty() {
            return Err(Error::invalid("empty argv: no program to execute"));
        }
        for s in &self.steps {
            if let Some(why) = &s.invalid {
                return Err(Error::invalid(format!("step {}: {why}", s.describe())));
            }
        }
        let mut uts_names: Vec<(&str, &str)> = Vec::new();
        if let Some(h) = &self.hostname {
            uts_names.push(("hostname", h));
        }
        if let Some(d) = &self.domainname {
            uts_names.push(("domainname", d));
        }
        for (what, n) in &uts_names {
            if n.len() > HOST_NAME_MAX {
                return Err(Error::invalid(format!(
                    "{what} {n:?} is {} bytes, the kernel allows at most {HOST_NAME_MAX}",
                    n.len()
                )));
            }
        }
        let mut uts_steps = false;
        for s in &self.steps {
            if let StepKind::Sethostname(n) | StepKind::Setdomainname(n) = &s.kind {
                uts_steps = true;
                if n.as_bytes().len() > HOST_NAME_MAX {
                    return Err(Error::invalid(format!(
                        "{}: longer than {HOST_NAME_MAX} bytes",
                        s.describe()
                    )));
                }
            }
        }
        let joined: Namespaces = self
            .joins
            .iter()
            .map(|j| match j {
                JoinSpec::Pidfd { ns, .. } | JoinSpec::Path { ns, .. } => *ns,
            })
            .fold(Namespaces::empty(), |a, b| a | b);
        if (!uts_names.is_empty() || uts_steps)
            && !self.namespaces.contains(Namespaces::UTS)
            && !joined.contains(Namespaces::UTS)
        {
            return Err(Error::invalid(
                "setting a hostname or domainname needs Namespaces::UTS (it would change the host's)",
            ));
        }
        let user = self.namespaces.contains(Namespaces::USER);
        if !user && (!self.uid_maps.is_empty() || !self.gid_maps.is_empty()) {
            return Err(Error::invalid(
                "uid/gid maps given without Namespaces::USER",
            ));
        }
        validate_maps("uid_map", &self.uid_maps)?;
        validate_maps("gid_map", &self.gid_maps)?;
        if user {
            for s in &self.steps {
                let (kind, id, maps) = match &s.kind {
                    StepKind::SetUid(u) => ("uid", *u, &self.uid_maps),
                    StepKind::SetGid(g) => ("gid", *g, &self.gid_maps),
                    _ => continue,
                };
                if !maps.is_empty()
                    && !maps
                        .iter()
                        .any(|m| id >= m.inside && (id as u64) < m.inside as u64 + m.count as u64)
                {
                    return Err(Error::invalid(format!(
                        "{}: {kind} {id} is not mapped in the new user namespace ({kind}_map {maps:?})",
                        s.describe()
                    )));
                }
            }
        }
        if self.time_offsets.is_some() && !self.namespaces.contains(Namespaces::TIME) {
            return Err(Error::invalid("time offsets need Namespaces::TIME"));
        }
        let both = self.namespaces & joined;
        if !both.is_empty() {
            return Err(Error::invalid(format!(
                "namespaces {both:?} are both created and joined"
            )));
        }
        // Joining a pid namespace forks once more after the joins (the
        // grandchild shares the namespaces the clone made), except that a
        // new user namespace leaves no capability over the joined pid
        // namespace's owner (setns(2): EPERM).
        if joined.contains(Namespaces::PID) && self.namespaces.contains(Namespaces::USER) {
            return Err(Error::invalid(
                "joining a pid namespace cannot be combined with creating a user namespace",
            ));
        }
        if joined.contains(Namespaces::PID) && self.init {
            return Err(Error::invalid(
                "an init cannot be started when joining an existing pid namespace",
            ));
        }
        let mut seen = Vec::new();
        for (_, dst) in &self.fds {
            if *dst < 0 || seen.contains(dst) {
                return Err(Error::invalid(format!(
                    "child fd {dst} is negative or given twice"
                )));
            }
            seen.push(*dst);
        }
        Ok(())
    }

    fn spawn_inner(&mut self, stopped: bool) -> Result<Child> {
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

    pub(crate) fn spawn_here(&mut self, stopped: bool) -> Result<Child> {
        self.validate()?;

        // --- Everything the child needs, allocated here, before clone. ---
        let cstr = |what: &str, s: &OsStr| {
            CString::new(s.as_bytes())
                .map_err(|_| Error::invalid(format!("{what} {s:?} contains a NUL byte")))
        };
        let argv_c: Vec<CString> = self
            .args
            .iter()
            .map(|a| cstr("argument", a))
            .collect::<Result<_>>()?;
        let mut env: BTreeMap<OsString, OsString> = if self.env_clear {
            BTreeMap::new()
        } else {
            std::env::vars_os().collect()
        };
        for (k, v) in &self.env {
            match v {
                Some(v) => {
                    env.insert(k.clone(), v.clone());
                }
                None => {
                    env.remove(k);
                }
            }
        }
        let envp_c: Vec<CString> = env
            .iter()
            .map(|(k, v)| {
                let mut kv = k.clone().into_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                CString::new(kv).map_err(|_| {
                    Error::invalid(format!("environment variable {k:?} contains a NUL byte"))
                })
            })
            .collect::<Result<_>>()?;
        let exec_paths = exec_candidates(&self.program, env.get(OsStr::new("PATH")))?;
        let mut argv: Vec<*const libc::c_char> = argv_c.iter().map(|c| c.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = envp_c.iter().map(|c| c.as_ptr()).collect();
        envp.push(std::ptr::null());
        let cwd = self
            .cwd
            .as_ref()
            .map(|p| cstr("current_dir", p.as_os_str()))
            .transpose()?;
        let hostname = self
            .hostname
            .as_ref()
            .map(|h| cstr("hostname", OsStr::new(h)))
            .transpose()?;
        let domainname = self
            .domainname
            .as_ref()
            .map(|h| cstr("domainname", OsStr::new(h)))
            .transpose()?;
        let time_offsets = self
            .time_offsets
            .map(|(mono, boot)| format!("monotonic {mono} 0\nboottime {boot} 0\n").into_bytes());

        // Fd targets in the child: 0, 1, 2 and every mapped fd. Every fd the
        // child reads from must live above the highest target.
        let max_target = self.fds.iter().map(|(_, d)| *d).max().unwrap_or(2).max(2);
        let min_free = max_target + 1;
        let mut child_side: Vec<OwnedFd> = Vec::new();
        let mut fd_moves: Vec<(RawFd, RawFd)> = Vec::new();
        let mut parent_stdin = None;
        let mut parent_stdout = None;
        let mut parent_stderr = None;
        for (i, which) in [&self.stdin, &self.stdout, &self.stderr]
            .into_iter()
            .enumerate()
        {
            let src = match which {
                Stdio::Inherit => continue,
                Stdio::Null => open_devnull()?,
                Stdio::Piped => {
                    let (r, w) = pipe()?;
                    let (mine, theirs) = if i == 0 { (w, r) } else { (r, w) };
                    match i {
                        0 => parent_stdin = Some(ChildStdin::from(mine)),
                        1 => parent_stdout = Some(ChildStdout::from(mine)),
                        _ => parent_stderr = Some(ChildStderr::from(mine)),
                    }
                    theirs
                }
                Stdio::Fd(fd) => dup_above(fd.as_raw_fd(), min_free)?,
            };
            let src = lift(src, min_free)?;
            fd_moves.push((src.as_raw_fd(), i as RawFd));
            child_side.push(src);
        }
        for (src, dst) in &self.fds {
            let raw = match src {
                FdSource::Owned(f) => f.as_raw_fd(),
                FdSource::Borrowed(f) => *f,
            };
            let dup = dup_above(raw, min_free)
                .map_err(|e| Error::invalid(format!("fd {raw} for child fd {dst}: {e}")))?;
            fd_moves.push((dup.as_raw_fd(), *dst));
            child_side.push(dup);
        }
        // Step-owned fds (move_mount) must not sit where a target goes.
        for s in &mut self.steps {
            if let StepKind::MoveMount { fd, .. } = &mut s.kind {
                if fd.as_raw_fd() < min_free {
                    let taken = std::mem::replace(fd, dup_above(fd.as_raw_fd(), min_free)?);
                    drop(taken);
                }
            }
        }
        let mut join_fds: Vec<(RawFd, libc::c_int)> = Vec::new();
        let mut join_desc: Vec<String> = Vec::new();
        let mut join_pid = false;
        for j in &self.joins {
            match j {
                JoinSpec::Pidfd { fd, ns } => {
                    let fd = fd.as_ref().map_err(|e| {
                        Error::setup_io(
                            "duplicate the pidfd to join",
                            io::Error::new(e.kind(), e.to_string()),
                        )
                    })?;
                    if ns.is_empty() {
                        return Err(Error::invalid("join_pidfd with no namespaces"));
                    }
                    let fd = dup_above(fd.as_raw_fd(), min_free)?;
                    join_pid |= ns.contains(Namespaces::PID);
                    join_fds.push((fd.as_raw_fd(), ns.bits() as libc::c_int));
                    join_desc.push(format!("setns(pidfd, {ns:?})"));
                    child_side.push(fd);
                }
                JoinSpec::Path { path, ns } => {
                    let f = std::fs::File::open(path)
                        .map_err(|e| Error::setup_io(format!("open namespace file {path:?}"), e))?;
                    let fd = lift(OwnedFd::from(f), min_free)?;
                    // SAFETY: ioctl on an fd we own.
                    let t = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE as _) };
                    if t < 0 {
                        return Err(Error::setup_io(
                            format!("ioctl(NS_GET_NSTYPE) on {path:?}: not a namespace file"),
                            io::Error::last_os_error(),
                        ));
                    }
                    let t = Namespaces::from_bits_truncate(t as u64);
                    if !ns.is_empty() && *ns != t {
                        return Err(Error::invalid(format!(
                            "{path:?} is a {t:?} namespace, not {ns:?}"
                        )));
                    }
                    join_pid |= t.contains(Namespaces::PID);
                    join_fds.push((fd.as_raw_fd(), t.bits() as libc::c_int));
                    join_desc.push(format!("setns({path:?}, {t:?})"));
                    child_side.push(fd);
                }
            }
        }
        // Joining a user namespace must come first, or the others are refused.
        let order: Vec<usize> = {
            let mut idx: Vec<usize> = (0..join_fds.len()).collect();
            idx.sort_by_key(|&i| {
                if join_fds[i].1 == libc::CLONE_NEWUSER {
                    0
                } else {
                    1
                }
            });
            idx
        };
        let join_fds: Vec<(RawFd, libc::c_int)> = order.iter().map(|&i| join_fds[i]).collect();
        let join_desc: Vec<String> = order.iter().map(|&i| join_desc[i].clone()).collect();

        let (err_r, err_w) = pipe()?;
        let err_w = lift(err_w, min_free)?;
        let user_maps = self.namespaces.contains(Namespaces::USER)
            && (!self.uid_maps.is_empty() || !self.gid_maps.is_empty());
        let need_sync = user_maps || self.after_clone.is_some();
        let (sync_r, sync_w) = if need_sync {
            let (r, w) = pipe()?;
            (Some(lift(r, min_free)?), Some(w))
        } else {
            (None, None)
        };
        let (start_r, start_w) = if stopped {
            let (r, w) = pipe()?;
            (Some(lift(r, min_free)?), Some(w))
        } else {
            (None, None)
        };
        // A pooled network namespace replaces CLONE_NEWNET (not with a new
        // user namespace: its root must own the network namespace).
        let mut ns_flags = self.namespaces;
        // Joining a user namespace: the namespaces to create must belong
        // to it (runtime-spec: a joined namespace is entered before
        // anything is created in it), so they are unshared after the
        // joins instead of made by clone (not a time namespace: the clone
        // makes it, as setns(2) into a user namespace leaves it alone).
        let join_user = join_fds.iter().any(|(_, t)| t & libc::CLONE_NEWUSER != 0);
        let unshare_after_joins = if join_user {
            ns_flags & !Namespaces::TIME
        } else {
            Namespaces::empty()
        };
        ns_flags.remove(unshare_after_joins);
        // A pid namespace unshared applies to children: fork as for a join.
        join_pid |= unshare_after_joins.contains(Namespaces::PID);
        let pooled_netns = match &self.netns_pool {
            Some(pool)
                if ns_flags.contains(Namespaces::NET) && !ns_flags.contains(Namespaces::USER) =>
            {
                match pool.take() {
                    Some(fd) => Some(lift(fd, min_free)?),
                    None => None,
                }
            }
            _ => None,
        };
        if pooled_netns.is_some() {
            ns_flags.remove(Namespaces::NET);
        }
        // Close every fd the workload does not keep: all except the targets,
        // the error pipe and the start pipe.
        let mut keep: Vec<u32> = (0..=2u32).collect();
        keep.extend(self.fds.iter().map(|(_, d)| *d as u32));
        keep.push(err_w.as_raw_fd() as u32);
        if let Some(s) = &start_r {
            keep.push(s.as_raw_fd() as u32);
        }
        for fd in &self.step_fds {
            if self.fds.iter().any(|(_, d)| d == fd) {
                return Err(Error::invalid(format!(
                    "step fd {fd} is also the target of a mapped fd"
                )));
            }
            keep.push(*fd as u32);
        }
        let close_ranges = gaps(keep);

        // In the new user namespace become root (or the first mapped id).
        let become_id = if user_maps {
            let pick = |maps: &[IdMap]| {
                if maps.iter().any(|m| m.inside == 0) {
                    0
                } else {
                    maps.first().map_or(0, |m| m.inside)
                }
            };
            // SAFETY: geteuid cannot fail.
            let unprivileged = unsafe { libc::geteuid() } != 0;
            let denied = if self.map_tools {
                false
            } else {
                self.setgroups_deny
                    .unwrap_or(unprivileged && !self.gid_maps.is_empty())
            };
            let clear = !denied && !self.gid_maps.is_empty() && !unprivileged;
            Some((pick(&self.uid_maps), pick(&self.gid_maps), clear))
        } else {
            None
        };
        let cgroup_fd = match &self.cgroup {
            None => None,
            Some(Ok(fd)) => Some(fd.as_raw_fd()),
            Some(Err(e)) => {
                return Err(Error::setup_io(
                    format!("open cgroup directory {}", self.cgroup_desc),
                    copy_io_error(e),
                ))
            }
        };

        let timer = StepTimer::from_env(self.steps.len());
        let mut plan = ChildPlan {
            steps: &self.steps,
            final_steps: self.final_steps,
            exec_paths: &exec_paths,
            argv: &argv,
            envp: &envp,
            fd_moves: &fd_moves,
            close_ranges: &close_ranges,
            err_w: err_w.as_raw_fd(),
            sync_r: sync_r.as_ref().map_or(-1, |f| f.as_raw_fd()),
            start_r: start_r.as_ref().map_or(-1, |f| f.as_raw_fd()),
            pdeathsig: self.pdeathsig,
            hostname: hostname.as_deref(),
            domainname: domainname.as_deref(),
            time_offsets: time_offsets.as_deref(),
            joins: &join_fds,
            pooled_netns: pooled_netns.as_ref().map_or(-1, |f| f.as_raw_fd()),
            join_pid,
            join_user,
            unshare_flags: unshare_after_joins.bits() as libc::c_int,
            init: self.init,
            cwd: cwd.as_deref(),
            become_id,
            times: timer.as_ref().map_or(std::ptr::null_mut(), |t| t.map),
            orig_mask: None,
        };

        if self.time_offsets.is_some() {
            // The child unshares the time namespace itself to set offsets first.
            ns_flags.remove(Namespaces::TIME);
        }
        let mut pidfd_out: RawFd = -1;
        let mut args = sys::CloneArgs {
            flags: libc::CLONE_PIDFD as u64 | ns_flags.bits(),
            pidfd: &mut pidfd_out as *mut RawFd as u64,
            exit_signal: libc::SIGCHLD as u64,
            ..Default::default()
        };
        if let Some(fd) = cgroup_fd {
            args.flags |= sys::CLONE_INTO_CGROUP;
            args.cgroup = fd as u64;
        }
        // Fast path: when the parent has nothing to do between clone and
        // exec (no id maps, no hook, no two-phase start, no time namespace
        // flag), share our memory with the child and sleep until it execs
        // (CLONE_VM | CLONE_VFORK, as posix_spawn does): no page tables are
        // copied, nothing is copied on write, and exec has no copied mm to
        // tear down. With a cgroup fd it needs clone3 on a private stack,
        // which is done in assembly on x86_64 only.
        // Not with the init (it never execs: the parent would sleep forever),
        // nor with joins or time offsets: setns into a user or time namespace
        // and unshare(CLONE_NEWTIME) refuse a process sharing its mm (EUSERS/EINVAL).
        let vfork = !need_sync
            && !stopped
            && !self.init
            && join_fds.is_empty()
            && time_offsets.is_none()
            && (cgroup_fd.is_none() || cfg!(target_arch = "x86_64"))
            && !ns_flags.contains(Namespaces::TIME);
        let t_clone = monotonic_ns();
        let ret = if vfork {
            // SAFETY: see vfork_spawn.
            unsafe { vfork_spawn(&mut plan, &mut args, &mut pidfd_out) }
        } else {
            // SAFETY: clone3 without CLONE_VM forks this process; the child gets
            // a copy of our memory and runs only async-signal-safe code on it.
            let ret = unsafe {
                libc::syscall(
                    sys::SYS_CLONE3,
                    &mut args as *mut sys::CloneArgs,
                    std::mem::size_of::<sys::CloneArgs>(),
                )
            };
            if ret == 0 {
                // SAFETY: we are the child, right after clone3.
                unsafe { child::run(&plan) }
            }
            if ret < 0 {
                Err(sys::errno())
            } else {
                Ok(ret)
            }
        };
        let ret = ret.map_err(|e| Error::setup(clone_op(args.flags, e), e))?;
        let mut pid = ret as i32;
        // SAFETY: CLONE_PIDFD stored a fresh pidfd for us.
        let mut pidfd = unsafe { OwnedFd::from_raw_fd(pidfd_out) };
        tracing::debug!(pid, namespaces = ?self.namespaces, steps = self.steps.len(), "cloned child");

        // The child has its copies now: drop ours so EOF means "exec'd".
        drop(child_side);
        drop(err_w);
        drop(sync_r);
        drop(start_r);
        drop(pooled_netns);

        let mut guard = KillGuard {
            pidfd: Some(pidfd.as_raw_fd()),
        };
        let exec_desc = format!("execve({:?})", self.program);
        if let Some(w) = sync_w {
            if plan.pooled_netns >= 0 {
                // The hook must find the child in its network namespace.
                let r = read_report(err_r.as_raw_fd())
                    .map_err(|e| Error::setup_io("read the child's error pipe", e))?;
                match r {
                    Some(r) if r.kind == child::R_NETNS => {}
                    Some(r) => return Err(self.report_error(&r, &join_desc, &exec_desc)),
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
                    pidfd: pidfd.as_fd(),
                })
                .map_err(|source| Error::Hook { pid, source })?;
            }
            sys::write_all(w.as_raw_fd(), &[1])
                .map_err(|e| Error::setup(format!("release child {pid}"), e))?;
        }
        if vfork {
            // CLONE_VFORK returned: the child either exited (a failure report,
            // written before _exit, is in the pipe already) or its execve
            // released our memory, which happens past exec's point of no
            // return (begin_new_exec, fs/exec.c). No need to wait for the
            // rest of exec (its close-on-exec of the pipe): an empty pipe
            // means success.
            // SAFETY: fcntl on our own fd.
            unsafe { libc::fcntl(err_r.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        }
        loop {
            let report = match read_report(err_r.as_raw_fd()) {
                Err(e) if vfork && e.kind() == io::ErrorKind::WouldBlock => None,
                r => r.map_err(|e| Error::setup_io("read the child's error pipe", e))?,
            };
            let Some(r) = report else { break };
            match r.kind {
                child::R_PID => {
                    // The intermediate forked into the joined pid namespace:
                    // reap it and own the real process from here on.
                    let _ = handle::waitid_pidfd(pidfd.as_raw_fd(), 0);
                    let real = handle::pidfd_open(r.value)
                        .map_err(|e| Error::setup_io(format!("pidfd_open({})", r.value), e))?;
                    pid = r.value;
                    pidfd = real;
                    guard.pidfd = Some(pidfd.as_raw_fd());
                }
                child::R_READY => {
                    guard.pidfd = None;
                    let start_w = start_w.ok_or_else(|| Error::invalid("unexpected READY"))?;
                    return Ok(Child {
                        pid,
                        pidfd: Some(pidfd),
                        status: None,
                        held_mnt_ns: self.hold_mount_ns(pid),
                        pending: Some(Pending {
                            start_w,
                            err_r,
                            exec_desc,
                        }),
                        stdin: parent_stdin,
                        stdout: parent_stdout,
                        stderr: parent_stderr,
                    });
                }
                _ => {
                    tracing::debug!(
                        pid,
                        kind = r.kind,
                        index = r.index,
                        errno = r.value,
                        "child plan failed"
                    );
                    return Err(self.report_error(&r, &join_desc, &exec_desc));
                }
            }
        }
        if let Some(t) = &timer {
            t.write(t_clone, monotonic_ns(), &self.steps);
        }
        if stopped {
            // EOF without READY: the child died during its plan.
            let st = handle::waitid_pidfd(pidfd.as_raw_fd(), 0)
                .ok()
                .flatten()
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown".into());
            guard.pidfd = None;
            return Err(Error::ChildVanished { pid, status: st });
        }
        guard.pidfd = None;
        Ok(Child {
            pid,
            pidfd: Some(pidfd),
            status: None,
            held_mnt_ns: self.hold_mount_ns(pid),
            pending: None,
            stdin: parent_stdin,
            stdout: parent_stdout,
            stderr: parent_stderr,
        })
    }

    /// The precise error for a failure report of the child.
    fn report_error(&self, r: &Report, join_desc: &[String], exec_desc: &str) -> Error {
        let (step, index) = match r.kind {
            child::R_STEP => (
                self.steps
                    .get(r.index as usize)
                    .map(|s| s.describe())
                    .unwrap_or_else(|| format!("step {}", r.index)),
                Some(r.index as usize),
            ),
            child::R_JOIN => (
                join_desc
                    .get(r.index as usize)
                    .cloned()
                    .unwrap_or_else(|| "setns".into()),
                None,
            ),
            _ => (self.phase_desc(r.index, exec_desc), None),
        };
        Error::Child {
            step,
            index,
            source: io::Error::from_raw_os_error(r.value),
        }
    }

    fn phase_desc(&self, phase: u32, exec_desc: &str) -> String {
        match phase {
            child::P_PDEATHSIG => format!("prctl(PR_SET_PDEATHSIG, {})", self.pdeathsig),
            child::P_SYNC => "read the parent's go signal".into(),
            child::P_DUMPABLE => "prctl(PR_SET_DUMPABLE, 0)".into(),
            child::P_JOIN_FORK => "fork into the joined pid namespace".into(),
            child::P_UNSHARE => "unshare the new namespaces in the joined user namespace".into(),
            child::P_TIME_UNSHARE => "unshare(CLONE_NEWTIME)".into(),
            child::P_TIME_OFFSETS => "write(\"/proc/self/timens_offsets\")".into(),
            child::P_TIME_SETNS => "setns(\"/proc/self/ns/time_for_children\")".into(),
            child::P_HOSTNAME => {
                format!("sethostname({:?})", self.hostname.as_deref().unwrap_or(""))
            }
            child::P_DOMAINNAME => {
                format!(
                    "setdomainname({:?})",
                    self.domainname.as_deref().unwrap_or("")
                )
            }
            child::P_FDS => "dup2 of stdio and kept fds".into(),
            child::P_CWD => format!("chdir({:?})", self.cwd.as_deref().unwrap_or(Path::new(""))),
            child::P_INIT_FORK => "init: fork of the workload".into(),
            child::P_CLOSE_FDS => "close_range of inherited fds".into(),
            child::P_START => "wait for start()".into(),
            child::P_SIGMASK => "init: sigprocmask".into(),
            child::P_NETNS => "setns(pooled network namespace, CLONE_NEWNET)".into(),
            child::P_SETID => {
                "setgroups/setresgid/setresuid to the new user namespace's root".into()
            }
            _ => exec_desc.to_owned(),
        }
    }

    fn write_maps(&self, pid: i32) -> Result<()> {
        if self.map_tools {
            if !self.uid_maps.is_empty() {
                run_map_tool("newuidmap", pid, &self.uid_maps)?;
            }
            if !self.gid_maps.is_empty() {
                run_map_tool("newgidmap", pid, &self.gid_maps)?;
            }
            return Ok(());
        }
        let proc = PathBuf::from(format!("/proc/{pid}"));
        if !self.uid_maps.is_empty() {
            write_proc(&proc.join("uid_map"), &map_text(&self.uid_maps))?;
        }
        if !self.gid_maps.is_empty() {
            // SAFETY: geteuid cannot fail.
            let unprivileged = unsafe { libc::geteuid() } != 0;
            if self.setgroups_deny.unwrap_or(unprivileged) {
                write_proc(&proc.join("setgroups"), b"deny")?;
            }
            write_proc(&proc.join("gid_map"), &map_text(&self.gid_maps))?;
        } else if self.setgroups_deny == Some(true) {
            write_proc(&proc.join("setgroups"), b"deny")?;
        }
        Ok(())
    }
}

/// `CLOCK_MONOTONIC` in ns.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid timespec pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The step timer, on when the environment variable `BERTH_STEP_TIMES`
/// names a file: the child stores a `CLOCK_MONOTONIC` stamp after each
/// phase and step into a shared anonymous mapping (no allocation, no
/// syscall but the vDSO clock read), and after `execve` the parent appends
/// one line per step to that file: microseconds spent, then the step.
struct StepTimer {
    map: *mut u64,
    slots: usize,
    path: PathBuf,
}

impl StepTimer {
    fn from_env(steps: usize) -> Option<StepTimer> {
        let path = PathBuf::from(std::env::var_os("BERTH_STEP_TIMES")?);
        let slots = steps + 3;
        // SAFETY: a fresh shared anonymous mapping, owned by the timer.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                slots * 8,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            tracing::warn!("BERTH_STEP_TIMES: mmap failed; no step times");
            return None;
        }
        Some(StepTimer {
            map: map.cast(),
            slots,
            path,
        })
    }

    fn write(&self, t_clone: u64, t_eof: u64, steps: &[Step]) {
        // SAFETY: the mapping holds `slots` u64s; the child has exec'd (or
        // stopped before exec), so nobody writes it any more.
        let v = unsafe { std::slice::from_raw_parts(self.map, self.slots) };
        let us = |a: u64, b: u64| b.saturating_sub(a) as f64 / 1000.0;
        let mut out = String::new();
        out.push_str(&format!(
            "{:9.1} clone -> child runs\n",
            us(t_clone, v[child::T_START])
        ));
        out.push_str(&format!(
            "{:9.1} prologue (pdeathsig, sync, ids, joins, hostname, fds)\n",
            us(v[child::T_START], v[child::T_STEPS])
        ));
        let mut prev = v[child::T_STEPS];
        for (i, st) in steps.iter().enumerate() {
            let t = v[child::T_STEPS + 1 + i];
            out.push_str(&format!("{:9.1} {}\n", us(prev, t), st.describe()));
            prev = t;
        }
        let pre_exec = v[child::T_STEPS + 1 + steps.len()];
        out.push_str(&format!(
            "{:9.1} epilogue (close_range, cwd, pdeathsig)\n",
            us(prev, pre_exec)
        ));
        out.push_str(&format!(
            "{:9.1} execve -> parent knows it succeeded\n",
            us(pre_exec, t_eof)
        ));
        out.push_str(&format!(
            "{:9.1} total clone -> EOF\n--\n",
            us(t_clone, t_eof)
        ));
        let r = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| f.write_all(out.as_bytes()));
        if let Err(e) = r {
            tracing::warn!(path = ?self.path, error = %e, "BERTH_STEP_TIMES: write failed");
        }
    }
}

impl Drop for StepTimer {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once.
        unsafe { libc::munmap(self.map.cast(), self.slots * 8) };
    }
}

/// Size of the child's stack in the `CLONE_VM` fast path (only touched pages cost memory).
const VFORK_STACK: usize = 1 << 20;

/// The `CLONE_VM` child's stack, mapped once per spawning thread and
/// reused: its parent thread sleeps in `CLONE_VFORK` while the child runs
/// on it, so one thread's spawns never share it. Mapping and unmapping it
/// per spawn cost two syscalls, page faults for every touched page, and,
/// once the process has more than one thread, a TLB shootdown IPI to every
/// other CPU the process ran on at each `munmap` (expensive in a VM).
struct VforkStack(*mut libc::c_void);

impl VforkStack {
    /// This thread's stack, mapped on first use; the errno if `mmap`
    /// fails (`EAGAIN` while the thread's locals are being destroyed).
    fn get() -> std::result::Result<*mut libc::c_void, i32> {
        thread_local! {
            static STACK: std::cell::RefCell<Option<VforkStack>> = const { std::cell::RefCell::new(None) };
        }
        STACK
            .try_with(|s| {
                let mut s = s.borrow_mut();
                if let Some(v) = s.as_ref() {
                    return Ok(v.0);
                }
                // SAFETY: a fresh private anonymous mapping we own.
                let p = unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        VFORK_STACK,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                        -1,
                        0,
                    )
                };
                if p == libc::MAP_FAILED {
                    return Err(sys::errno());
                }
                // A guard page at the bottom: overflow faults instead of
                // writing whatever is mapped below.
                // SAFETY: the first page of our own mapping.
                unsafe { libc::mprotect(p, 4096, libc::PROT_NONE) };
                *s = Some(VforkStack(p));
                Ok(p)
            })
            .unwrap_or(Err(libc::EAGAIN))
    }
}

impl Drop for VforkStack {
    fn drop(&mut self) {
        // SAFETY: our mapping; no child runs on it (this thread's spawns
        // returned, and the thread is exiting).
        unsafe { libc::munmap(self.0, VFORK_STACK) };
    }
}

extern "C" fn vfork_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: arg is the &ChildPlan passed by vfork_spawn, alive while the
    // parent sleeps in CLONE_VFORK.
    unsafe { child::run(&*(arg as *const ChildPlan<'_>)) }
}

/// `clone3` with `args` on a new stack (`args.stack`/`stack_size`), running
/// `entry(arg)` in the child, which never returns from it (it execs or
/// exits; should it return, the child `_exit`s with its value). Returns
/// the child's pid, or -1 with errno set. glibc has no public clone3
/// wrapper, and a child of `CLONE_VM` must not return through the parent's
/// stack frames, so the switch to `entry` happens in the same asm block as
/// the syscall (x86_64 syscall ABI: number in rax, args in rdi/rsi, rcx and
/// r11 clobbered; the child starts with rax = 0 and rsp = stack top).
///
/// # Safety
/// `args` must describe a valid clone with a mapped stack; `entry` must not
/// return into anything but the code here.
#[cfg(target_arch = "x86_64")]
unsafe fn clone3_on_stack(
    args: &mut sys::CloneArgs,
    entry: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    arg: *mut libc::c_void,
) -> libc::c_long {
    let ret: libc::c_long;
    // SAFETY: see the function's contract; the child path never falls
    // through (exit syscall, then ud2).
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            // Child: new stack (16-byte aligned top), no frame to return to.
            "xor ebp, ebp",
            "mov rdi, r12",
            "call r13",
            "mov edi, eax",
            "mov eax, 60", // SYS_exit
            "syscall",
            "ud2",
            "2:",
            inlateout("rax") sys::SYS_CLONE3 => ret,
            in("rdi") args as *mut sys::CloneArgs,
            in("rsi") std::mem::size_of::<sys::CloneArgs>(),
            in("r12") arg,
            in("r13") entry,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    if ret < 0 {
        // SAFETY: this thread's errno.
        unsafe { *libc::__errno_location() = -ret as i32 };
        return -1;
    }
    ret
}

/// `CLONE_VM | CLONE_VFORK` added to `args` (pidfd, namespaces, cgroup) on
/// the calling thread's private stack ([`VforkStack`]); returns once the
/// child has exec'd or exited (so the next spawn of this thread may use the
/// stack again). All signals are blocked around it so no handler of ours
/// can run on the shared memory; the child resets handlers and restores the
/// mask just before `execve`.
///
/// # Safety
/// The child only runs async-signal-safe code that writes to nothing of ours
/// but its own stack.
unsafe fn vfork_spawn(
    plan: &mut ChildPlan<'_>,
    args: &mut sys::CloneArgs,
    pidfd_out: &mut RawFd,
) -> std::result::Result<libc::c_long, i32> {
    // SAFETY (whole body): sigmask on locals, and clone with this thread's
    // private stack (VforkStack) and a valid argument.
    unsafe {
        let stack = VforkStack::get()?;
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        plan.orig_mask = Some(old);
        let arg = (plan as *const ChildPlan<'_>)
            .cast_mut()
            .cast::<libc::c_void>();
        #[cfg(target_arch = "x86_64")]
        let r = {
            let _ = &pidfd_out; // args.pidfd already points at it
            args.flags |= (libc::CLONE_VM | libc::CLONE_VFORK) as u64;
            args.stack = stack as u64;
            args.stack_size = VFORK_STACK as u64;
            clone3_on_stack(args, vfork_entry, arg)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let r = {
            // No cgroup fd here (checked by the caller): glibc's clone suffices.
            let flags = libc::CLONE_VM
                | libc::CLONE_VFORK
                | (args.flags as libc::c_int & !(libc::CLONE_VM | libc::CLONE_VFORK))
                | libc::SIGCHLD;
            let top = (stack as *mut u8).add(VFORK_STACK).cast::<libc::c_void>();
            libc::clone(vfork_entry, top, flags, arg, pidfd_out as *mut RawFd) as libc::c_long
        };
        let e = sys::errno();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if r < 0 {
            Err(e)
        } else {
            Ok(r)
        }
    }
}

/// Kills and reaps the child unless disarmed (every early return after clone).
struct KillGuard {
    pidfd: Option<RawFd>,
}

impl Drop for KillGuard {
    fn drop(&mut self) {
        if let Some(fd) = self.pidfd {
            let _ = handle::pidfd_signal(fd, libc::SIGKILL);
            let _ = handle::waitid_pidfd(fd, 0);
        }
    }
}

fn validate_maps(what: &str, maps: &[IdMap]) -> Result<()> {
    if maps.len() > MAX_MAP_LINES {
        return Err(Error::invalid(format!(
            "{what} has {} lines, the kernel allows at most {MAX_MAP_LINES}",
            maps.len()
        )));
    }
    for (i, m) in maps.iter().enumerate() {
        if m.count == 0 {
            return Err(Error::invalid(format!("{what} line {m:?} has count 0")));
        }
        if m.inside as u64 + m.count as u64 > u32::MAX as u64
            || m.outside as u64 + m.count as u64 > u32::MAX as u64
        {
            return Err(Error::invalid(format!(
                "{what} line {m:?} runs past id 4294967294"
            )));
        }
        for o in &maps[..i] {
            let overlap = |a: u32, b: u32| {
                (a as u64) < b as u64 + o.count as u64 && (b as u64) < a as u64 + m.count as u64
            };
            if overlap(m.inside, o.inside) {
                return Err(Error::invalid(format!(
                    "{what} lines {o:?} and {m:?} overlap inside the namespace"
                )));
            }
            if overlap(m.outside, o.outside) {
                return Err(Error::invalid(format!(
                    "{what} lines {o:?} and {m:?} overlap outside the namespace"
                )));
            }
        }
    }
    Ok(())
}

fn map_text(maps: &[IdMap]) -> Vec<u8> {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.inside, m.outside, m.count))
        .collect::<String>()
        .into_bytes()
}

/// Write a /proc id-map file in one `write(2)`, as the kernel requires
/// (user_namespaces(7)).
fn write_proc(path: &Path, data: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::setup_io(format!("open({path:?})"), e))?;
    let n = f.write(data).map_err(|e| {
        Error::setup_io(
            format!("write({path:?}, {:?})", String::from_utf8_lossy(data)),
            e,
        )
    })?;
    if n != data.len() {
        return Err(Error::setup(format!("short write to {path:?}"), libc::EIO));
    }
    Ok(())
}

fn run_map_tool(tool: &'static str, pid: i32, maps: &[IdMap]) -> Result<()> {
    let mut cmd = std::process::Command::new(tool);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([
            m.inside.to_string(),
            m.outside.to_string(),
            m.count.to_string(),
        ]);
    }
    let out = cmd
        .output()
        .map_err(|e| Error::setup_io(format!("run {tool}"), e))?;
    if !out.status.success() {
        return Err(Error::IdMapTool {
            tool,
            pid,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

fn exec_candidates(program: &OsStr, path: Option<&OsString>) -> Result<Vec<CString>> {
    let bytes = program.as_bytes();
    let c = |b: Vec<u8>| {
        CString::new(b)
            .map_err(|_| Error::invalid(format!("program {program:?} contains a NUL byte")))
    };
    if bytes.contains(&b'/') {
        return Ok(vec![c(bytes.to_vec())?]);
    }
    let default_path = std::env::var_os("PATH");
    let path = path
        .or(default_path.as_ref())
        .map(|p| p.as_bytes().to_vec())
        .unwrap_or_else(|| DEFAULT_PATH.as_bytes().to_vec());
    let mut out = Vec::new();
    for dir in path.split(|b| *b == b':') {
        let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
        let mut full = dir.to_vec();
        full.push(b'/');
        full.extend_from_slice(bytes);
        out.push(c(full)?);
    }
    Ok(out)
}

/// The complement of `keep` in `0..=u32::MAX`, as inclusive ranges.
fn gaps(mut keep: Vec<u32>) -> Vec<(u32, u32)> {
    keep.sort_unstable();
    keep.dedup();
    let mut out = Vec::new();
    let mut next = 0u32;
    for k in keep {
        if k > next {
            out.push((next, k - 1));
        }
        next = k.saturating_add(1);
        if k == u32::MAX {
            return out;
        }
    }
    out.push((next, u32::MAX));
    out
}

fn clone_op(flags: u64, errno: i32) -> String {
    let ns = Namespaces::from_bits_truncate(flags);
    let hint = match errno {
        libc::ENOSYS => " (clone3 needs Linux 5.3)",
        libc::EINVAL => " (CLONE_PIDFD needs 5.2, CLONE_INTO_CGROUP 5.7 and a cgroup v2 directory, CLONE_NEWTIME 5.6)",
        libc::EPERM => " (creating these namespaces needs CAP_SYS_ADMIN or Namespaces::USER)",
        libc::ENOSPC | libc::EUSERS => " (a namespace count limit in /proc/sys/user/max_*_namespaces was hit)",
        _ => "",
    };
    let cg = if flags & sys::CLONE_INTO_CGROUP != 0 {
        " | CLONE_INTO_CGROUP"
    } else {
        ""
    };
    format!("clone3(CLONE_PIDFD{cg}, namespaces {ns:?}){hint}")
}

pub(crate) fn read_report(fd: RawFd) -> io::Result<Option<Report>> {
    let mut r = Report::default();
    let size = std::mem::size_of::<Report>();
    let mut got = 0usize;
    while got < size {
        // SAFETY: writing into the bytes of a plain-old-data struct we own.
        let n = unsafe {
            libc::read(
                fd,
                (&mut r as *mut Report).cast::<u8>().add(got).cast(),
                size - got,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "truncated report",
                ))
            };
        }
        got += n as usize;
    }
    Ok(Some(r))
}

fn copy_io_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(n) => io::Error::from_raw_os_error(n),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 fills two fds we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(Error::setup_io(
            "pipe2(O_CLOEXEC)",
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: fresh fds from pipe2.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn open_devnull() -> Result<OwnedFd> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| Error::setup_io("open(\"/dev/null\")", e))?;
    Ok(f.into())
}

fn dup_above(fd: RawFd, min: RawFd) -> Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a caller-supplied fd; the result is ours.
    let r = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) };
    if r < 0 {
        return Err(Error::setup_io(
            format!("fcntl({fd}, F_DUPFD_CLOEXEC, {min})"),
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

fn lift(fd: OwnedFd, min: RawFd) -> Result<OwnedFd> {
    if fd.as_raw_fd() >= min {
        Ok(fd)
    } else {
        dup_above(fd.as_raw_fd(), min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn gaps_cover_everything_but_kept() {
        assert_eq!(gaps(vec![0, 1, 2, 7]), vec![(3, 6), (8, u32::MAX)]);
        assert_eq!(gaps(vec![2, 0, 1]), vec![(3, u32::MAX)]);
        assert_eq!(gaps(vec![0, 1, 2, 3, 5]), vec![(4, 4), (6, u32::MAX)]);
    }

    #[test]
    fn maps_are_checked() {
        assert!(validate_maps("uid_map", &[IdMap::new(0, 1000, 1)]).is_ok());
        let e = validate_maps(
            "uid_map",
            &[IdMap::new(0, 1000, 10), IdMap::new(5, 5000, 10)],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("overlap inside"), "{e}");
        let e = validate_maps(
            "gid_map",
            &[IdMap::new(0, 1000, 10), IdMap::new(50, 1005, 1)],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("overlap outside"), "{e}");
        assert!(validate_maps("uid_map", &[IdMap::new(0, 1, 0)]).is_err());
        assert!(validate_maps("uid_map", &[IdMap::new(u32::MAX - 1, 1, 5)]).is_err());
    }

    #[test]
    fn path_search_candidates() {
        let c = exec_candidates(OsStr::new("sh"), Some(&OsString::from("/a:/b"))).unwrap();
        assert_eq!(
            c,
            vec![
                CString::new("/a/sh").unwrap(),
                CString::new("/b/sh").unwrap()
            ]
        );
        let c = exec_candidates(OsStr::new("/bin/sh"), None).unwrap();
        assert_eq!(c, vec![CString::new("/bin/sh").unwrap()]);
    }
}
