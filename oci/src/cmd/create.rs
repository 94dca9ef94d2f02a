//! `create [--bundle DIR] [--pid-file F] [--console-socket S]
//! [--preserve-fds N] ID`: build the container, stopped just before its
//! `execve`, and return.
//!
//! berth's container is two-phase and its start pipe lives in the process
//! that created it, so `create` forks a *holder* that builds the container
//! and owns its handle until `start` (it listens on `.meta/<id>.sock`),
//! then releases and detaches it: the init is reparented to the engine's
//! subreaper (containerd's shim, conmon), as with runc.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;

use crate::builder::{builder_for, load_bundle};
use crate::cli::Args;
use crate::error::{Error, Result};
use crate::record::{Ctx, OciState, Record, Status};
use crate::{fds, hooks, pidfile, sock, v1};
use berth_sys::process;

/// `create`: fork the holder, wait for its word (`ok PID` or `err MSG` on
/// a pipe), write the pid file.
pub fn cmd(ctx: &Ctx, a: &Args) -> Result<i32> {
    let (id, bundle, mut rec) = new_container(ctx, a, false)?;
    // The pipe is close-on-exec (std's pipe(2) sets O_CLOEXEC).
    let (r, w) = match std::io::pipe() {
        Ok((r, w)) => (OwnedFd::from(r), OwnedFd::from(w)),
        Err(e) => {
            ctx.remove_meta(&id);
            return Err(Error::io("pipe")(e));
        }
    };
    // SAFETY: the program is single-threaded, so the child may run Rust code.
    let pid = match unsafe { process::fork() } {
        Ok(pid) => pid,
        Err(e) => {
            ctx.remove_meta(&id);
            return Err(Error::io("fork")(e));
        }
    };
    if pid == 0 {
        drop(r);
        let code = holder(ctx, a, &id, &bundle, &mut rec, w);
        // Leave without running the parent's atexit handlers twice.
        process::exit_now(code);
    }
    drop(w);
    let mut f = std::fs::File::from(r);
    let mut msg = String::new();
    let _ = f.read_to_string(&mut msg);
    if let Some(p) = msg.strip_prefix("ok ") {
        if let Some(pf) = a.get("pid-file") {
            pidfile::write(pf, p.trim())?;
        }
        return Ok(0);
    }
    // The holder failed before handing over: reap it and clean up.
    let _ = process::wait_pid(pid);
    ctx.remove_meta(&id);
    Err(Error::Holder(if msg.is_empty() {
        "create failed (holder exited)".into()
    } else {
        msg.trim_start_matches("err ").to_string()
    }))
}

/// The start of `create` and `run`: the id, the bundle, and the container's
/// first record and configuration snapshot written (this process its
/// holder with `hold_here`); nothing left behind on an error.
pub fn new_container(
    ctx: &Ctx,
    a: &Args,
    hold_here: bool,
) -> Result<(String, berth::Bundle, Record)> {
    let id = a.id()?;
    fds::preserved_fds(a)?;
    let bundle = load_bundle(a)?;
    if ctx.exists(&id) {
        return Err(Error::Exists(id));
    }
    let mut rec = Record::new(&bundle, &id);
    if hold_here {
        rec.hold_here();
    }
    ctx.first_write(&rec)?;
    if let Err(e) = ctx.save_config(&id, bundle.spec()) {
        ctx.remove_meta(&id);
        return Err(e);
    }
    Ok((id, bundle, rec))
}

/// Whether the bundle's process wants a terminal.
pub fn wants_tty(bundle: &berth::Bundle) -> bool {
    bundle
        .spec()
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false)
}

/// The holder: creates the container, reports to `create` over `w`, then
/// waits for `start` on the socket. Returns its exit status.
fn holder(
    ctx: &Ctx,
    a: &Args,
    id: &str,
    bundle: &berth::Bundle,
    rec: &mut Record,
    w: OwnedFd,
) -> i32 {
    let mut w = std::fs::File::from(w);
    let _ = process::setsid();
    let (c, listener, mut st) = match build(ctx, a, id, bundle, rec) {
        Ok(x) => x,
        Err(e) => {
            let _ = w.write_all(format!("err {e}").as_bytes());
            return 1;
        }
    };
    let _ = w.write_all(format!("ok {}", c.pid()).as_bytes());
    drop(w);
    // Hold no stdio of the engine's: only the container has it.
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let _ = berth_sys::fs::dup_onto_stdio(null.as_fd());
    }
    st.status = Status::Created;
    serve(ctx, id, bundle.hooks(), c, &listener, &st)
}

/// The holder's work before it answers `create`: its record, its socket,
/// the container built, the console, the create-phase hooks, the v1
/// groups. On an error nothing of the container is left (the caller
/// removes the record).
fn build(
    ctx: &Ctx,
    a: &Args,
    id: &str,
    bundle: &berth::Bundle,
    rec: &mut Record,
) -> Result<(berth::Container, UnixListener, OciState)> {
    rec.hold_here();
    // The holder is a forked copy: threads may start here, not before.
    v1::prewarm();
    ctx.write(rec)?;
    let listener = sock::bind(&ctx.sock_path(id))?;
    let tty = wants_tty(bundle);
    if tty && a.get("console-socket").is_none() {
        return Err(Error::Config(
            "process.terminal is set but no --console-socket given".into(),
        ));
    }
    // The library makes the container's state directory 0700 and its
    // state file 0600 (O_EXCL|O_NOFOLLOW) itself.
    let mut c = builder_for(ctx, bundle, id, a)?
        .create()
        .map_err(Error::container(format!("create container {id}")))?;
    fds::close_preserved(a);
    if tty {
        let cs = a.get("console-socket").unwrap_or_default();
        let r = match c.pty() {
            Some(m) => sock::send_fd(cs, m.as_fd()),
            None => Err(Error::Config("no pty master".into())),
        };
        if let Err(e) = r {
            let _ = c.destroy();
            return Err(e);
        }
    }
    let mut st = ctx.state(id, rec);
    if let Some(h) = bundle.hooks() {
        c = hooks::on_create(h, &mut st, c)?;
    }
    // Joined last, once nothing can fail before the hand-over.
    if let Ok(bst) = berth::State::load(Some(&ctx.root), id) {
        rec.v1_cgroups = v1::join(id, &bst);
        if let Err(e) = ctx.write(rec) {
            let _ = c.destroy();
            v1::remove(&rec.v1_groups());
            return Err(e);
        }
    }
    Ok((c, listener, st))
}

/// The holder after `create` returned: wait for `start` on the socket,
/// run the startContainer hooks, release the workload, answer `ok` (or
/// `err MSG`), detach the container and return the holder's exit status.
fn serve(
    ctx: &Ctx,
    id: &str,
    hooks: Option<&oci_spec::runtime::Hooks>,
    mut c: berth::Container,
    listener: &UnixListener,
    st: &OciState,
) -> i32 {
    for conn in listener.incoming() {
        let Ok(mut s) = conn else { continue };
        let mut line = String::new();
        let _ = BufReader::new(&s).read_line(&mut line);
        if line.trim() != "start" {
            continue;
        }
        let r = hooks
            .map(|h| hooks::run("startContainer", h.start_container().as_ref(), st))
            .unwrap_or(Ok(()))
            .and_then(|_| {
                c.start()
                    .map_err(Error::container(format!("start container {id}")))
            });
        let _ = std::fs::remove_file(ctx.sock_path(id));
        return match r {
            Ok(()) => {
                let _ = s.write_all(b"ok\n");
                let _ = c.detach();
                0
            }
            Err(e) => {
                let _ = s.write_all(format!("err {e}\n").as_bytes());
                // The workload could not be started: the container is
                // stopped (its process is gone); delete reclaims the rest.
                let _ = c.detach();
                1
            }
        };
    }
    0
}
