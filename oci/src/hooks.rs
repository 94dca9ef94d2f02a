//! The bundle's hooks, on the runtime spec 1.2 lifecycle: each gets the
//! container's state on stdin, a clean environment (the hook's `env`), its
//! `timeout` (killed after it). A failing prestart, createRuntime,
//! createContainer or startContainer hook fails the command; a failing
//! poststart or poststop hook is a warning and the rest still run.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Hooks};

use crate::error::{Error, Result};
use crate::log;
use crate::record::{Ctx, OciState, Record, Status};

/// Run `hooks` in order with `state` on their stdin; the first failure
/// stops them and is returned.
pub fn run(kind: &'static str, hooks: Option<&Vec<Hook>>, state: &OciState) -> Result<()> {
    let text = state.to_json();
    for h in hooks.into_iter().flatten() {
        run_one(kind, h, &text)?;
    }
    Ok(())
}

/// Run one hook with `state` (JSON) on its stdin, within its timeout.
fn run_one(kind: &'static str, h: &Hook, state: &str) -> Result<()> {
    log::debug(&format!("running {kind} hook {}", h.path().display()));
    let mut cmd = Command::new(h.path());
    if let Some(args) = h.args() {
        if let Some(a0) = args.first() {
            cmd.arg0(a0);
        }
        cmd.args(args.iter().skip(1));
    }
    cmd.env_clear();
    for e in h.env().iter().flatten() {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(std::process::Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| Error::HookSpawn {
        kind,
        path: h.path().clone(),
        source,
    })?;
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(state.as_bytes());
    }
    let deadline = h
        .timeout()
        .map(|t| Instant::now() + Duration::from_secs(t.max(1) as u64));
    let st = loop {
        if let Some(st) = child
            .try_wait()
            .map_err(Error::io(format!("wait for {kind} hook")))?
        {
            break st;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::HookTimeout {
                kind,
                path: h.path().clone(),
                secs: h.timeout().unwrap_or(0),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if !st.success() {
        return Err(Error::HookFailed {
            kind,
            path: h.path().clone(),
            status: st,
        });
    }
    Ok(())
}

/// Run poststart or poststop hooks as the runtime spec's lifecycle asks:
/// a hook that fails (or times out) is logged as a warning and the
/// remaining hooks and the lifecycle go on as if it had succeeded.
pub fn run_warn(kind: &'static str, hooks: Option<&Vec<Hook>>, state: &OciState) {
    let text = state.to_json();
    for h in hooks.into_iter().flatten() {
        if let Err(e) = run_one(kind, h, &text) {
            log::warn(&e.to_string());
        }
    }
}

/// The hooks that run once the container is built, before `create`
/// returns: prestart (deprecated, as runc still runs it), createRuntime,
/// createContainer, all with the state `creating`. On a failure, the
/// spec's lifecycle: the error, the container destroyed, then the
/// poststop hooks with the state `stopped`. Returns the container.
pub fn on_create(h: &Hooks, st: &mut OciState, c: berth::Container) -> Result<berth::Container> {
    st.status = Status::Creating;
    #[allow(deprecated)]
    let r = run("prestart", h.prestart().as_ref(), st)
        .and_then(|_| run("createRuntime", h.create_runtime().as_ref(), st))
        .and_then(|_| run("createContainer", h.create_container().as_ref(), st));
    match r {
        Ok(()) => Ok(c),
        Err(e) => {
            failed(h, st, c);
            Err(e)
        }
    }
}

/// After a create-phase hook failed: destroy the container, then the
/// poststop hooks with the state `stopped` (a warning each).
pub fn failed(h: &Hooks, st: &mut OciState, c: berth::Container) {
    let _ = c.destroy();
    st.status = Status::Stopped;
    run_warn("poststop", h.poststop().as_ref(), st);
}

/// The state poststart hooks get: the runtime spec's lifecycle step 9
/// comes after the workload started, so `running` with the init's pid,
/// also when a short workload has already exited (the validation suite's
/// hooks_stdin expects this).
pub fn poststart_state(ctx: &Ctx, id: &str, rec: &Record) -> OciState {
    let mut v = ctx.state(id, rec);
    if v.status == Status::Stopped {
        v.status = Status::Running;
        if let Some(pid) = berth::State::load(Some(&ctx.root), id)
            .ok()
            .and_then(|s| s.pid)
        {
            v.pid = pid;
        }
    }
    v
}
