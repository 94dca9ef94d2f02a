//! The child side of the spawn path: runs right after `clone3` in the new
//! process. Everything here is async-signal-safe: raw syscalls on data the
//! parent prepared (no allocation, no locks, no panics), because the parent
//! may be multi-threaded and the child owns a copy of its memory in whatever
//! state other threads left it.

use std::cell::Cell;
use std::ffi::{CStr, CString};
use std::os::fd::RawFd;
use std::panic::AssertUnwindSafe;

use crate::protocol::{self, At, ChildError, Phase, Report};
use crate::step::Step;
use crate::sys::{self, cvt};
use berth_sys::child;

/// Exit code of a child whose parent vanished before it could be told to go.
pub(crate) const EXIT_PARENT_GONE: i32 = 126;
/// Exit status of the init when it cannot wait for signals (see `run_init`).
pub(crate) const EXIT_INIT_CANNOT_WAIT: i32 = 255;
/// Exit code after a reported failure.
pub(crate) const EXIT_FAILED: i32 = 127;

/// Everything the child needs, borrowed from the parent's prepared plan.
pub(crate) struct ChildPlan<'a> {
    /// Every step; the last `final_steps` of them run just before `execve`.
    pub steps: &'a [Step],
    pub final_steps: usize,
    pub exec_paths: &'a [CString],
    pub argv: &'a [*const libc::c_char],
    pub envp: &'a [*const libc::c_char],
    pub fd_moves: &'a [(RawFd, RawFd)],
    pub close_ranges: &'a [(u32, u32)],
    pub err_w: RawFd,
    pub sync_r: RawFd,
    pub start_r: RawFd,
    pub pdeathsig: libc::c_int,
    pub hostname: Option<&'a CStr>,
    pub domainname: Option<&'a CStr>,
    pub time_offsets: Option<&'a [u8]>,
    pub joins: &'a [(RawFd, libc::c_int)],
    /// A fresh network namespace from a [`NetnsPool`](crate::NetnsPool) to
    /// enter instead of `CLONE_NEWNET` (-1: none).
    pub pooled_netns: RawFd,
    pub join_pid: bool,
    pub join_user: bool,
    /// `CLONE_NEW*` flags to unshare after the joins (with a joined user
    /// namespace, which then owns them), 0 for none.
    pub unshare_flags: libc::c_int,
    pub init: bool,
    pub cwd: Option<&'a CStr>,
    /// In a new user namespace with maps: (uid, gid, clear supplementary groups).
    pub become_id: Option<(libc::uid_t, libc::gid_t, bool)>,
    /// Step timer (`BERTH_STEP_TIMES`): a shared mapping of
    /// `steps.len() + 3` `CLOCK_MONOTONIC` stamps in ns, or null.
    pub times: *mut u64,
    /// The parent's signal mask when it blocked everything around a
    /// `CLONE_VM` clone: restored (after resetting handlers) just before exec.
    pub orig_mask: Option<libc::sigset_t>,
}

/// Slot of the step timer: child start (after clone), before the first
/// step, after step `i` (slot `2 + i`), right before `execve`.
pub(crate) const T_START: usize = 0;
pub(crate) const T_STEPS: usize = 1;

/// Store the monotonic clock into timer slot `slot` (no-op when off).
/// `clock_gettime` is async-signal-safe (signal-safety(7)).
#[inline]
fn stamp(plan: &ChildPlan<'_>, slot: usize) {
    if plan.times.is_null() {
        return;
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid timespec; the mapping has steps.len() + 3 slots and
    // every caller passes a slot below that.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
        *plan.times.add(slot) = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
    }
}

/// Report a failure at `at` and end the child.
fn fail(fd: RawFd, at: At, errno: i32) -> ! {
    fail_with(
        fd,
        &ChildError {
            at,
            errno,
            detail: "",
            panicked: false,
        },
    )
}

/// Report the failure of the fixed phase `phase` and end the child.
fn fail_phase(fd: RawFd, phase: Phase, errno: i32) -> ! {
    fail(fd, At::Phase(phase), errno)
}

fn fail_with(fd: RawFd, e: &ChildError<&str>) -> ! {
    protocol::send(fd, &Report::failure(e));
    sys::exit_now(EXIT_FAILED)
}

/// Plain fork as a raw syscall (no atfork handlers, no glibc locks).
fn raw_fork(extra_flags: libc::c_ulong) -> Result<libc::pid_t, i32> {
    // SAFETY: clone without CLONE_VM and with a null stack behaves like fork:
    // the child continues on a copy of this stack.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            extra_flags | libc::SIGCHLD as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    cvt(r).map(|p| p as libc::pid_t)
}

fn set_pdeathsig(sig: libc::c_int) -> Result<(), i32> {
    child::prctl(libc::PR_SET_PDEATHSIG, [sig as libc::c_ulong, 0, 0, 0]).map(drop)
}

/// Run the plan and exec; never returns.
///
/// The guard against unwinding: a panic anywhere in the child (berth's code
/// or a [`Step::hook`]) must never unwind into the frames it shares with
/// the parent — on the plain-fork path they are a copy of the spawning
/// thread's stack, so unwinding would run the parent's destructors and
/// `catch_unwind`s (a test harness's) in the child, which then went on as
/// a second copy of the program. It is caught here, at the child's entry,
/// reported as a panic at the step or phase it happened in, and the child
/// `_exit`s. `catch_unwind` rather than a drop guard, because it also
/// undoes the panic count, which on the `CLONE_VM` path lives in the
/// parent's memory (the global count) and thread-local storage (the
/// child runs on the parent thread's TLS). The panic hook (std prints the
/// message to stderr) runs before, and takes locks (std's backtrace lock,
/// malloc's): if another thread of the parent held one at the clone, the
/// plain-fork child blocks there for good and the spawn waits for it. A
/// panic in the child stays a bug; this only limits its harm.
///
/// # Safety
/// Must only be called in the child right after `clone3`; `plan` must point
/// at data that stays valid (it is the child's copy of the parent's memory).
pub(crate) unsafe fn run(plan: &ChildPlan<'_>) -> ! {
    let at = Cell::new(At::Phase(Phase::Setup));
    let caught = std::panic::catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the caller's contract, passed on.
        unsafe { run_plan(plan, &at) }
    }));
    // Only a panic gets here: run_plan execs or exits. Its payload is left
    // alone (no destructor of ours runs after a panic).
    if let Err(payload) = caught {
        std::mem::forget(payload);
    }
    fail_with(
        plan.err_w,
        &ChildError {
            at: at.get(),
            errno: 0,
            detail: "",
            panicked: true,
        },
    )
}

/// The child's whole run: prologue, steps, epilogue, `execve`. `at` tracks
/// the step running, for the report of a panic.
///
/// # Safety
/// As [`run`].
unsafe fn run_plan(plan: &ChildPlan<'_>, at: &Cell<At>) -> ! {
    let err = plan.err_w;
    stamp(plan, T_START);
    // SAFETY: (whole body) the functions called run raw syscalls with
    // pointers into `plan`, which the parent built before clone and which
    // the child owns a copy of.
    unsafe {
        enter_pooled_netns(plan);
        // Parent death: PR_SET_PDEATHSIG, prctl(2). Cleared by credential
        // changes and fork, so it is set again after the plan.
        if plan.pdeathsig != 0 {
            if let Err(e) = set_pdeathsig(plan.pdeathsig) {
                fail_phase(err, Phase::Pdeathsig, e);
            }
        }
        wait_for_parent(plan);
        become_ids(plan);
        if !plan.joins.is_empty() {
            join(plan);
        }
        if let Some(offsets) = plan.time_offsets {
            enter_time_ns(err, offsets);
        }
        set_uts_and_fds(plan);
        stamp(plan, T_STEPS);
        let first_final = plan.steps.len() - plan.final_steps;
        run_steps(plan, 0..first_final, at);
        // Close everything the workload must not inherit (close_range(2),
        // Linux 5.9): fds another thread opened without O_CLOEXEC, and fds of
        // other spawns in flight, whose EOF would otherwise be delayed.
        // Before chdir: a working directory of `/proc/self/fd/<n>` must not
        // resolve through an inherited host directory fd (CVE-2024-21626).
        for (first, last) in plan.close_ranges {
            if let Err(e) = sys::close_range(*first, *last, 0) {
                fail_phase(err, Phase::CloseFds, e);
            }
        }
        if let Some(cwd) = plan.cwd {
            if let Err(e) = child::chdir(cwd) {
                fail_phase(err, Phase::Cwd, e);
            }
        }
        if plan.init {
            run_init(plan, at);
        } else if plan.pdeathsig != 0 {
            if let Err(e) = set_pdeathsig(plan.pdeathsig) {
                fail_phase(err, Phase::Pdeathsig, e);
            }
        }
        wait_for_start(plan);
        reset_signals(plan);
        // The final steps (a security policy: its seccomp filter last of
        // all): after them, only execve.
        run_steps(plan, first_final..plan.steps.len(), at);
        stamp(plan, T_STEPS + 1 + plan.steps.len());
        exec(plan)
    }
}

/// First of all, so the parent's hook already finds us in it: setns(2)
/// into the pooled network namespace (Linux 3.0).
fn enter_pooled_netns(plan: &ChildPlan<'_>) {
    if plan.pooled_netns < 0 {
        return;
    }
    if let Err(e) = sys::setns(plan.pooled_netns, libc::CLONE_NEWNET) {
        fail_phase(plan.err_w, Phase::Netns, e);
    }
    sys::close(plan.pooled_netns);
    if plan.sync_r >= 0 {
        protocol::send(plan.err_w, &Report::netns());
    }
}

/// Wait until the parent wrote the id maps and ran its hook.
fn wait_for_parent(plan: &ChildPlan<'_>) {
    if plan.sync_r < 0 {
        return;
    }
    match sys::read_byte(plan.sync_r) {
        Ok(true) => {}
        Ok(false) => sys::exit_now(EXIT_PARENT_GONE),
        Err(e) => fail_phase(plan.err_w, Phase::Sync, e),
    }
    sys::close(plan.sync_r);
}

/// `setgroups([])` (when `clear`), `setresgid`, `setresuid` as raw
/// syscalls (glibc's wrappers would signal the parent's threads).
fn set_ids(uid: libc::uid_t, gid: libc::gid_t, clear: bool) -> Result<(), i32> {
    if clear {
        child::setgroups(&[])?;
    }
    child::setresgid(gid, gid, gid)?;
    child::setresuid(uid, uid, uid)
}

/// The maps are written: take ids of the new namespace, or the process
/// would keep the parent's (unmapped) kernel ids and run as "nobody"
/// inside while still being the parent's user on the host.
fn become_ids(plan: &ChildPlan<'_>) {
    if let Some((uid, gid, clear_groups)) = plan.become_id {
        if let Err(e) = set_ids(uid, gid, clear_groups) {
            fail_phase(plan.err_w, Phase::Setid, e);
        }
    }
}

/// Enter the joined namespaces (user first), unshare what is created in a
/// joined user namespace, and fork into a joined pid namespace.
unsafe fn join(plan: &ChildPlan<'_>) {
    let err = plan.err_w;
    // SAFETY: (whole body) raw syscalls on integers and fds the parent
    // prepared.
    unsafe {
        // Non-dumpable before entering a foreign pid namespace, so its
        // processes cannot ptrace us or read our memory via /proc.
        if let Err(e) = child::prctl(libc::PR_SET_DUMPABLE, [0; 4]) {
            fail_phase(err, Phase::Dumpable, e);
        }
        for (i, (fd, nstype)) in plan.joins.iter().enumerate() {
            // setns(2): a pidfd with several CLONE_NEW* flags needs Linux 5.8.
            if let Err(e) = child::setns(*fd, *nstype) {
                fail(err, At::Join(i), e);
            }
        }
        if plan.join_user {
            // Like nsenter: take uid/gid 0 of the joined user namespace
            // (dropping supplementary groups where setgroups is allowed).
            let _ = child::setgroups(&[]);
            if let Err(e) = set_ids(0, 0, false) {
                fail_phase(err, Phase::Setid, e);
            }
        }
        // unshare(2): the new namespaces, owned by the joined user one.
        if plan.unshare_flags != 0 {
            if let Err(e) = child::unshare(plan.unshare_flags) {
                fail_phase(err, Phase::Unshare, e);
            }
        }
        if plan.join_pid {
            // A pid namespace applies to children only: fork once more,
            // with CLONE_PARENT so the real process is the spawner's child.
            match raw_fork(libc::CLONE_PARENT as libc::c_ulong) {
                Err(e) => fail_phase(err, Phase::JoinFork, e),
                Ok(0) => {
                    if plan.pdeathsig != 0 {
                        if let Err(e) = set_pdeathsig(plan.pdeathsig) {
                            fail_phase(err, Phase::Pdeathsig, e);
                        }
                    }
                }
                Ok(pid) => {
                    protocol::send(err, &Report::pid(pid));
                    libc::_exit(0);
                }
            }
        }
    }
}

/// time_namespaces(7), Linux 5.6 (setns into a time ns 5.8): offsets can
/// only be written before a process enters the namespace, so unshare it
/// for children, write them, then enter it ourselves.
fn enter_time_ns(err: RawFd, offsets: &[u8]) {
    if let Err(e) = child::unshare(libc::CLONE_NEWTIME) {
        fail_phase(err, Phase::TimeUnshare, e);
    }
    let offsets_file = c"/proc/self/timens_offsets";
    let fd = match child::open(offsets_file, libc::O_WRONLY | libc::O_CLOEXEC, 0) {
        Ok(fd) => fd,
        Err(e) => fail_phase(err, Phase::TimeOffsets, e),
    };
    if let Err(e) = child::write_all(fd, offsets) {
        fail_phase(err, Phase::TimeOffsets, e);
    }
    child::close(fd);
    let ns_file = c"/proc/self/ns/time_for_children";
    let ns = match child::open(ns_file, libc::O_RDONLY | libc::O_CLOEXEC, 0) {
        Ok(fd) => fd,
        Err(e) => fail_phase(err, Phase::TimeSetns, e),
    };
    if let Err(e) = child::setns(ns, libc::CLONE_NEWTIME) {
        fail_phase(err, Phase::TimeSetns, e);
    }
    child::close(ns);
}

/// Hostname, domainname, then stdio and kept fds into place.
fn set_uts_and_fds(plan: &ChildPlan<'_>) {
    let err = plan.err_w;
    if let Some(h) = plan.hostname {
        if let Err(e) = child::sethostname(h) {
            fail_phase(err, Phase::Hostname, e);
        }
    }
    if let Some(d) = plan.domainname {
        if let Err(e) = child::setdomainname(d) {
            fail_phase(err, Phase::Domainname, e);
        }
    }
    // Sources were placed above every target by the parent, so no dup2
    // here can clobber a source or an internal fd.
    for (src, dst) in plan.fd_moves {
        if let Err(e) = child::dup2(*src, *dst) {
            fail_phase(err, Phase::Fds, e);
        }
    }
}

/// Two-phase start: report readiness, then wait for start().
fn wait_for_start(plan: &ChildPlan<'_>) {
    if plan.start_r < 0 {
        return;
    }
    protocol::send(plan.err_w, &Report::ready());
    match sys::read_byte(plan.start_r) {
        Ok(true) => {}
        Ok(false) => sys::exit_now(EXIT_PARENT_GONE),
        Err(e) => fail_phase(plan.err_w, Phase::Start, e),
    }
    sys::close(plan.start_r);
}

/// Signal dispositions for the program: the parent's handlers gone (on the
/// `CLONE_VM` path, then its mask restored) and SIGPIPE at its default.
fn reset_signals(plan: &ChildPlan<'_>) {
    if let Some(mask) = &plan.orig_mask {
        // We share the parent's memory: no handler of the parent may run
        // here. Reset caught signals to default, then unblock.
        for sig in 1..65 {
            if child::signal_handler(sig).is_ok_and(|h| h != libc::SIG_DFL && h != libc::SIG_IGN) {
                let _ = child::signal_default(sig);
            }
        }
        let _ = child::set_signal_mask(mask);
    }
    // SIGPIPE back to its default, as std::process::Command does: a
    // Rust parent ignores it, and an ignored signal stays ignored across
    // execve (signal(7)), so `yes | head` inside would not end.
    let _ = child::signal_default(libc::SIGPIPE);
}

/// `execve` each candidate path in turn (a `PATH` search): the first
/// error other than "not there" ends it; else `EACCES` if one was seen,
/// else the last error.
unsafe fn exec(plan: &ChildPlan<'_>) -> ! {
    let mut result = libc::ENOENT;
    let mut saw_eacces = false;
    for path in plan.exec_paths {
        // SAFETY: NULL-terminated argv/envp arrays of C strings the parent
        // built, alive for the call.
        let e = unsafe { child::execve(path, plan.argv, plan.envp) };
        match e {
            libc::EACCES => saw_eacces = true,
            libc::ENOENT | libc::ENOTDIR => {}
            _ => fail_phase(plan.err_w, Phase::Exec, e),
        }
        result = e;
    }
    if saw_eacces {
        result = libc::EACCES;
    }
    fail_phase(plan.err_w, Phase::Exec, result)
}

/// Run `plan.steps[range]`, stamping the timer after each; a failure is
/// reported as that step's (with the sub-step a hook names) and ends the
/// child.
fn run_steps(plan: &ChildPlan<'_>, range: std::ops::Range<usize>, at: &Cell<At>) {
    let ran = run_range(plan.steps, range, at, |i| stamp(plan, T_STEPS + 1 + i));
    if let Err(e) = ran {
        fail_with(plan.err_w, &e);
    }
}

/// Run `steps[range]` in order, calling `done(i)` after step `i`; stops
/// at the first failure and returns it as the child reports it (the
/// step's index, its errno, the part a hook names). `at` tracks the step
/// running, for the report of a panic.
pub(crate) fn run_range(
    steps: &[Step],
    range: std::ops::Range<usize>,
    at: &Cell<At>,
    mut done: impl FnMut(usize),
) -> Result<(), ChildError<&'static str>> {
    for i in range {
        if let Some(step) = steps.get(i) {
            at.set(At::Step(i));
            if let Err(f) = step.run() {
                return Err(ChildError {
                    at: At::Step(i),
                    errno: f.errno,
                    detail: f.step,
                    panicked: false,
                });
            }
        }
        done(i);
    }
    at.set(At::Phase(Phase::Setup));
    Ok(())
}

/// The minimal pid-1 init: forks the workload, then forwards every signal it
/// receives to it and reaps every child (orphans of the namespace too). Exits
/// with the workload's exit code, or 128 + signal number if it was killed
/// (an init cannot be killed by its own signal). Returns only in the
/// workload.
unsafe fn run_init(plan: &ChildPlan<'_>, at: &Cell<At>) {
    let err = plan.err_w;
    // SAFETY: (whole body) sigset operations on locals and raw syscalls.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        // Blocked signals are queued even for a pid-ns init with default
        // handlers (the kernel only drops unblocked ones), so sigwaitinfo sees them.
        if libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old) != 0 {
            fail_phase(err, Phase::Sigmask, libc::EINVAL);
        }
        // Orphans reparent to us also when we are not pid 1 (PR_SET_CHILD_SUBREAPER, 3.4).
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        let workload = match raw_fork(0) {
            Err(e) => fail_phase(err, Phase::InitFork, e),
            Ok(0) => {
                if libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) != 0 {
                    fail_phase(err, Phase::Sigmask, libc::EINVAL);
                }
                return;
            }
            Ok(pid) => pid,
        };
        // The init holds no more privilege than the workload: it applies the
        // final steps (the security policy) too, before closing its fds (a
        // step may use one, e.g. a Landlock ruleset).
        run_steps(
            plan,
            plan.steps.len() - plan.final_steps..plan.steps.len(),
            at,
        );
        // The init keeps no fds: the error pipe and stdio belong to the workload.
        let _ = sys::close_range(0, u32::MAX, 0);
        forward_and_reap(&all, workload)
    }
}

/// The init's loop: forward every signal to `workload`, reap every child,
/// exit with the workload's status.
unsafe fn forward_and_reap(all: &libc::sigset_t, workload: libc::pid_t) -> ! {
    // SAFETY: (whole body) raw syscalls on locals.
    unsafe {
        loop {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let sig = libc::sigwaitinfo(all, &mut info);
            if sig < 0 {
                if sys::errno() == libc::EINTR {
                    continue;
                }
                // Refused (a seccomp filter without rt_sigtimedwait): an
                // init that cannot wait must not spin; its exit ends the
                // namespace.
                libc::_exit(EXIT_INIT_CANNOT_WAIT);
            }
            if sig != libc::SIGCHLD {
                libc::kill(workload, sig);
                continue;
            }
            loop {
                let mut status = 0;
                let pid = libc::waitpid(-1, &mut status, libc::WNOHANG);
                if pid < 0 && sys::errno() != libc::ECHILD && sys::errno() != libc::EINTR {
                    // Refused (no wait4 in a seccomp filter): it could
                    // never see the workload end.
                    libc::_exit(EXIT_INIT_CANNOT_WAIT);
                }
                if pid <= 0 {
                    break;
                }
                if pid == workload {
                    let code = if libc::WIFEXITED(status) {
                        libc::WEXITSTATUS(status)
                    } else if libc::WIFSIGNALED(status) {
                        128 + libc::WTERMSIG(status)
                    } else {
                        255
                    };
                    libc::_exit(code);
                }
            }
        }
    }
}
