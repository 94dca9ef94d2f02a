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
use crate::sys;
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

/// Store the monotonic clock into timer slot `slot` (no-op when off; 0
/// if the clock cannot be read). `clock_gettime` is async-signal-safe
/// (signal-safety(7)).
#[inline]
fn stamp(plan: &ChildPlan<'_>, slot: usize) {
    if plan.times.is_null() {
        return;
    }
    let now = child::monotonic_ns().unwrap_or(0);
    // SAFETY: the mapping has steps.len() + 3 slots and every caller
    // passes a slot below that.
    unsafe { *plan.times.add(slot) = now };
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
        match child::fork(libc::CLONE_PARENT as libc::c_ulong) {
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
                sys::exit_now(0);
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
    let all = child::full_signal_set();
    // Blocked signals are queued even for a pid-ns init with default
    // handlers (the kernel only drops unblocked ones), so sigwaitinfo sees them.
    let Ok(old) = child::swap_signal_mask(&all) else {
        fail_phase(err, Phase::Sigmask, libc::EINVAL)
    };
    // Orphans reparent to us also when we are not pid 1 (PR_SET_CHILD_SUBREAPER, 3.4).
    let _ = child::prctl(libc::PR_SET_CHILD_SUBREAPER, [1, 0, 0, 0]);
    let workload = match child::fork(0) {
        Err(e) => fail_phase(err, Phase::InitFork, e),
        Ok(0) => {
            if child::set_signal_mask(&old).is_err() {
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
    sys::exit_now(forward_and_reap(&all, workload))
}

/// The init's loop: forward every signal to `workload`, reap every child;
/// the init's exit code once the workload ended (its exit code, or 128 +
/// the signal that killed it), or [`EXIT_INIT_CANNOT_WAIT`].
fn forward_and_reap(all: &libc::sigset_t, workload: libc::pid_t) -> i32 {
    loop {
        match child::sigwaitinfo(all) {
            Err(libc::EINTR) => continue,
            // Refused (a seccomp filter without rt_sigtimedwait): an init
            // that cannot wait must not spin; its exit ends the namespace.
            Err(_) => return EXIT_INIT_CANNOT_WAIT,
            Ok(libc::SIGCHLD) => {}
            Ok(sig) => {
                let _ = child::kill(workload, sig);
                continue;
            }
        }
        loop {
            match child::waitpid(-1, libc::WNOHANG) {
                Err(libc::ECHILD | libc::EINTR) | Ok((0, _)) => break,
                // Refused (no wait4 in a seccomp filter): it could never
                // see the workload end.
                Err(_) => return EXIT_INIT_CANNOT_WAIT,
                Ok((pid, status)) if pid == workload => {
                    return if libc::WIFEXITED(status) {
                        libc::WEXITSTATUS(status)
                    } else if libc::WIFSIGNALED(status) {
                        128 + libc::WTERMSIG(status)
                    } else {
                        255
                    };
                }
                Ok(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The init's loop against a scripted kernel (berth-sys's fake):
    //! what `sigwaitinfo` and `waitpid` return, in order; what it sends.

    use std::cell::RefCell;
    use std::collections::VecDeque;

    use berth_sys::fake::child::{install, ChildKernel};

    use super::*;

    const WORKLOAD: libc::pid_t = 7;

    /// `sigwaitinfo` and `waitpid` answer from their scripts (an empty
    /// script ends the test: the loop would block there); `kill` records.
    #[derive(Default)]
    struct InitKernel {
        signals: RefCell<VecDeque<Result<libc::c_int, i32>>>,
        waits: RefCell<VecDeque<Result<(libc::pid_t, libc::c_int), i32>>>,
        kills: RefCell<Vec<(libc::pid_t, libc::c_int)>>,
        waitpid_calls: RefCell<Vec<(libc::pid_t, libc::c_int)>>,
    }

    impl ChildKernel for InitKernel {
        fn sigwaitinfo(&self, set: &libc::sigset_t) -> Result<libc::c_int, i32> {
            // SAFETY: a valid, filled sigset.
            assert_eq!(unsafe { libc::sigismember(set, libc::SIGTERM) }, 1);
            let next = self.signals.borrow_mut().pop_front();
            next.expect("sigwaitinfo past the script: the loop did not end")
        }
        fn kill(&self, pid: libc::pid_t, sig: libc::c_int) -> Result<(), i32> {
            self.kills.borrow_mut().push((pid, sig));
            Ok(())
        }
        fn waitpid(
            &self,
            pid: libc::pid_t,
            flags: libc::c_int,
        ) -> Result<(libc::pid_t, libc::c_int), i32> {
            self.waitpid_calls.borrow_mut().push((pid, flags));
            let next = self.waits.borrow_mut().pop_front();
            next.expect("waitpid past the script: the loop did not end")
        }
    }

    /// Run the loop on the scripts; its exit code and the kernel.
    fn run_loop(
        signals: &[Result<libc::c_int, i32>],
        waits: &[Result<(libc::pid_t, libc::c_int), i32>],
    ) -> (i32, &'static InitKernel) {
        let k: &'static InitKernel = Box::leak(Box::default());
        k.signals.borrow_mut().extend(signals.iter().copied());
        k.waits.borrow_mut().extend(waits.iter().copied());
        let _fake = install(k);
        let code = forward_and_reap(&child::full_signal_set(), WORKLOAD);
        assert!(k.signals.borrow().is_empty(), "every signal taken");
        assert!(k.waits.borrow().is_empty(), "every wait made");
        (code, k)
    }

    /// A wait status: exited with `code`.
    fn exited(code: i32) -> libc::c_int {
        code << 8
    }

    #[test]
    fn signals_are_forwarded_orphans_reaped_and_the_exit_code_mirrored() {
        let (code, k) = run_loop(
            &[
                Ok(libc::SIGTERM),
                Err(libc::EINTR),
                Ok(libc::SIGHUP),
                // An orphan ends; no more children changed state.
                Ok(libc::SIGCHLD),
                // The workload ends after another orphan.
                Ok(libc::SIGCHLD),
            ],
            &[
                Ok((40, exited(0))),
                Ok((0, 0)),
                Ok((41, exited(9))),
                Ok((WORKLOAD, exited(3))),
            ],
        );
        assert_eq!(code, 3, "the workload's exit code, not an orphan's");
        assert_eq!(
            *k.kills.borrow(),
            [(WORKLOAD, libc::SIGTERM), (WORKLOAD, libc::SIGHUP)],
            "every signal but SIGCHLD forwarded to the workload, once"
        );
        assert!(k
            .waitpid_calls
            .borrow()
            .iter()
            .all(|&w| w == (-1, libc::WNOHANG)));
    }

    #[test]
    fn a_killed_workload_is_128_plus_the_signal() {
        let (code, _) = run_loop(&[Ok(libc::SIGCHLD)], &[Ok((WORKLOAD, libc::SIGKILL))]);
        assert_eq!(code, 128 + libc::SIGKILL);
    }

    #[test]
    fn no_child_left_or_an_interrupted_wait_waits_for_the_next_signal() {
        let (code, k) = run_loop(
            &[Ok(libc::SIGCHLD), Ok(libc::SIGCHLD), Ok(libc::SIGCHLD)],
            &[
                Err(libc::ECHILD),
                Err(libc::EINTR),
                Ok((WORKLOAD, exited(0))),
            ],
        );
        assert_eq!(code, 0);
        assert!(k.kills.borrow().is_empty());
    }

    #[test]
    fn an_init_that_cannot_wait_exits_instead_of_spinning() {
        // sigwaitinfo refused (a seccomp filter without rt_sigtimedwait).
        let (code, _) = run_loop(&[Err(libc::EPERM)], &[]);
        assert_eq!(code, EXIT_INIT_CANNOT_WAIT);
        // waitpid refused (no wait4).
        let (code, _) = run_loop(&[Ok(libc::SIGCHLD)], &[Err(libc::ENOSYS)]);
        assert_eq!(code, EXIT_INIT_CANNOT_WAIT);
    }
}
