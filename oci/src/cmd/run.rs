//! `run [--detach] ID`: create and start in one process, which (without
//! `--detach`) waits for the workload and exits with its status.

use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;

use crate::builder::builder_for;
use crate::cli::Args;
use crate::cmd::create::{self, new_container, wants_tty};
use crate::error::{Error, Result};
use crate::record::{Ctx, Record, Status};
use crate::{fds, hooks, pidfile, sock, v1};

/// `run`: `create` + `start` with `--detach`; else this process holds the
/// container, waits for it and removes it (exit status: the workload's,
/// 128+signal when killed).
pub fn cmd(ctx: &Ctx, a: &Args) -> Result<i32> {
    if a.any(&["detach"]) {
        create::cmd(ctx, a)?;
        return crate::cmd::start::cmd(ctx, a);
    }
    let (id, bundle, rec) = new_container(ctx, a, true)?;
    let r = run_inner(ctx, a, &id, &bundle, rec);
    ctx.remove_meta(&id);
    r
}

/// Build, start, wait for and remove the container, with every hook in
/// its place of the lifecycle.
fn run_inner(
    ctx: &Ctx,
    a: &Args,
    id: &str,
    bundle: &berth::Bundle,
    mut rec: Record,
) -> Result<i32> {
    v1::prewarm();
    let mut c = builder_for(ctx, bundle, id, a)?
        .kill_with_owner(true)
        .create()
        .map_err(Error::container(format!("create container {id}")))?;
    fds::close_preserved(a);
    if let Some(pf) = a.get("pid-file") {
        pidfile::write(pf, &c.pid().to_string())?;
    }
    if wants_tty(bundle) {
        if let (Some(cs), Some(m)) = (a.get("console-socket"), c.pty()) {
            sock::send_fd(cs, m.as_fd())?;
        }
    }
    let hooks = bundle.hooks();
    let mut st = ctx.state(id, &rec);
    if let Some(h) = hooks {
        c = hooks::on_create(h, &mut st, c)?;
        st.status = Status::Created;
        if let Err(e) = hooks::run("startContainer", h.start_container().as_ref(), &st) {
            hooks::failed(h, &mut st, c);
            return Err(e);
        }
    }
    // Joined last before the start (see v1::join); left on any failure.
    if let Ok(bst) = berth::State::load(Some(&ctx.root), id) {
        rec.v1_cgroups = v1::join(id, &bst);
    }
    let r = ctx.write(&rec).and_then(|()| {
        c.start()
            .map_err(Error::container(format!("start container {id}")))
    });
    if let Err(e) = r {
        let _ = c.destroy();
        v1::remove(&rec.v1_groups());
        return Err(e);
    }
    if let Some(h) = hooks {
        let st = hooks::poststart_state(ctx, id, &rec);
        hooks::run_warn("poststart", h.poststart().as_ref(), &st);
    }
    let s = c
        .wait()
        .map_err(Error::container(format!("wait for {id}")))?;
    let stopped = ctx.state(id, &rec);
    c.destroy()
        .map_err(Error::container(format!("destroy {id}")))?;
    v1::remove(&rec.v1_groups());
    if let Some(h) = hooks {
        hooks::run_warn("poststop", h.poststop().as_ref(), &stopped);
    }
    Ok(s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)))
}
