//! `exec [--process F] [flags] ID [COMMAND...]`: run a process in a
//! running container, through berth's exec path
//! ([`berth::Exec::in_state`]: cloned into the container's cgroup,
//! non-dumpable until its `execve` while it joins the init's namespaces,
//! no fd of ours but stdio and `--preserve-fds` ones reaching it). Its
//! settings come from the configuration snapshot taken at create.

use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;

use serde_json::{json, Value};

use crate::cli::Args;
use crate::error::{Error, Result};
use crate::record::{Ctx, Status};
use crate::{fds, pidfile, sock, v1};

/// What to run: the container's process, overridden by `--process` and
/// the flags.
struct Request {
    /// The command and its arguments.
    args: Vec<String>,
    /// `KEY=VALUE` entries.
    env: Vec<String>,
    /// The working directory.
    cwd: String,
    /// The user.
    uid: u32,
    /// The group.
    gid: u32,
    /// Whether it gets a terminal (`--tty`, or the process' `terminal`).
    tty: bool,
    /// The process (OCI `process`) whose security settings it gets
    /// (capabilities, rlimits, noNewPrivileges, AppArmor, gids): the
    /// `--process` file, else the container's own.
    process: Value,
}

/// `exec`: spawn, then (without `--detach`) wait and exit with its status
/// (128+signal when killed).
pub fn cmd(ctx: &Ctx, a: &Args) -> Result<i32> {
    let id = a.id()?;
    let rec = ctx.load(&id)?;
    let (s, st) = ctx.status(&id, &rec);
    let st = match st {
        Some(st) if s == Status::Running => st,
        _ => {
            return Err(Error::BadState {
                op: "exec in",
                id,
                why: format!("it is {s}, not running"),
            })
        }
    };
    // The exec'd process inherits our v1 groups: make them the
    // container's while it is spawned (hybrid host; see v1::join), as
    // runc's exec joins all; we go back to ours right after, so that only
    // the container's processes are left in them for delete.
    let groups = rec.v1_groups();
    let ours = v1::own_groups(&groups);
    v1::move_self(&id, &groups);
    let spec = ctx.load_config(&id)?;
    let req = request(&spec, a)?;
    let console = a.get("console-socket");
    if req.tty && console.is_none() {
        return Err(Error::Usage("--tty needs --console-socket".into()));
    }
    let policy = policy(&spec, &req)?;
    let env = req.env.iter().filter_map(|e| {
        e.split_once('=')
            .map(|(k, v)| (k.to_string(), v.to_string()))
    });
    let mut ex = berth::Exec::in_state(&st, req.args.iter().cloned())
        .map_err(Error::container(format!("exec in {id}")))?
        .envs(env)
        .current_dir(&req.cwd)
        .policy(policy);
    for fd in fds::preserved_fds(a)? {
        ex = ex.keep_fd(fd);
    }
    let spawn_err = Error::container(format!("exec {:?} in {id}", req.args[0]));
    let mut child = match console {
        // With a tty the exec'd process opens its pty in the container's
        // own devpts (as runc's exec does) and its master comes back to us;
        // we pass it on over the console socket.
        Some(cs) if req.tty => {
            let (child, master) = ex.tty(true).spawn_tty().map_err(spawn_err)?;
            sock::send_fd(cs, master.as_fd())?;
            child
        }
        _ => ex.spawn().map_err(spawn_err)?,
    };
    v1::move_self(&id, &ours);
    if let Some(pf) = a.get("pid-file") {
        pidfile::write(pf, &child.pid().to_string())?;
    }
    if a.any(&["detach", "d"]) {
        // Let it run on without us.
        drop(child.into_pidfd());
        return Ok(0);
    }
    let s = child.wait().map_err(Error::container("wait"))?;
    Ok(s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)))
}

/// The process to run: the container's, replaced by `--process`, then
/// the flags (`--env` adds, `--cwd`, `--user`, `--no-new-privs`,
/// `--apparmor`, `--cap`).
fn request(spec: &oci_spec::runtime::Spec, a: &Args) -> Result<Request> {
    let base = spec.process().clone();
    let mut req = Request {
        args: a.pos[1..].to_vec(),
        env: base
            .as_ref()
            .and_then(|p| p.env().clone())
            .unwrap_or_default(),
        cwd: base
            .as_ref()
            .map(|p| p.cwd().display().to_string())
            .unwrap_or_else(|| "/".into()),
        uid: base.as_ref().map(|p| p.user().uid()).unwrap_or(0),
        gid: base.as_ref().map(|p| p.user().gid()).unwrap_or(0),
        tty: a.any(&["tty", "t"]),
        process: serde_json::to_value(&base).unwrap_or(Value::Null),
    };
    if let Some(pf) = a.get_any(&["process", "p"]) {
        let text = std::fs::read_to_string(pf).map_err(Error::io(format!("read {pf}")))?;
        let p: oci_spec::runtime::Process =
            serde_json::from_str(&text).map_err(Error::json(format!("parse {pf}")))?;
        req.process = serde_json::from_str(&text).map_err(Error::json(format!("parse {pf}")))?;
        req.args = p.args().clone().unwrap_or_default();
        req.env = p.env().clone().unwrap_or_default();
        req.cwd = p.cwd().display().to_string();
        req.uid = p.user().uid();
        req.gid = p.user().gid();
        req.tty = p.terminal().unwrap_or(false);
    }
    if req.args.is_empty() {
        return Err(Error::Usage(
            "exec needs a command (args or --process)".into(),
        ));
    }
    req.env.extend(a.all("env"));
    req.env.extend(a.all("e"));
    if let Some(c) = a.get("cwd") {
        req.cwd = c.to_string();
    }
    if let Some(u) = a.get_any(&["user", "u"]) {
        let bad = || Error::Usage(format!("--user {u}: numeric uid[:gid] expected"));
        let (us, gs) = u.split_once(':').unwrap_or((u, ""));
        req.uid = us.parse().map_err(|_| bad())?;
        if !gs.is_empty() {
            req.gid = gs.parse().map_err(|_| bad())?;
        }
    }
    security_flags(&mut req.process, a)?;
    Ok(req)
}

/// `--no-new-privs`, `--apparmor`, `--cap` into the process; SELinux
/// labels are refused. A process without capabilities gets none, as the
/// container's init (bundle.rs): never the runtime's own.
fn security_flags(process: &mut Value, a: &Args) -> Result<()> {
    if !process.is_object() {
        return Ok(());
    }
    if a.bool("no-new-privs") {
        process["noNewPrivileges"] = json!(true);
    }
    if let Some(ap) = a.get("apparmor") {
        process["apparmorProfile"] = json!(ap);
    }
    if a.get("process-label").is_some() {
        return Err(Error::Config(
            "--process-label: SELinux labels are not supported by berth-oci".into(),
        ));
    }
    if process["capabilities"].is_null() {
        process["capabilities"] = json!({});
    }
    add_caps(process, a.all("cap").into_iter().chain(a.all("c")));
    Ok(())
}

/// The container's seccomp profile and the process' security settings,
/// applied in the child just before execve.
fn policy(spec: &oci_spec::runtime::Spec, req: &Request) -> Result<berth_security::SecurityPolicy> {
    let mut spec = serde_json::to_value(spec).map_err(Error::json("exec process"))?;
    if req.process.is_object() {
        let mut p = req.process.clone();
        p["user"]["uid"] = json!(req.uid);
        p["user"]["gid"] = json!(req.gid);
        p["args"] = json!(req.args);
        p["cwd"] = json!(req.cwd);
        spec["process"] = p;
    }
    let spec: oci_spec::runtime::Spec =
        serde_json::from_value(spec).map_err(Error::json("exec process"))?;
    berth_security::SecurityPolicy::from_oci(&spec).map_err(Error::layer("exec security policy"))
}

/// `exec --cap X`: add X to the bounding, effective and permitted sets
/// only. Never to inheritable or ambient: an unprivileged exec'd process
/// would keep them across `execve` (runc CVE-2022-29162).
fn add_caps(process: &mut Value, caps: impl Iterator<Item = String>) {
    for cap in caps {
        let cap = if cap.starts_with("CAP_") {
            cap
        } else {
            format!("CAP_{cap}")
        };
        for set in ["bounding", "effective", "permitted"] {
            let list = &mut process["capabilities"][set];
            if !list.is_array() {
                *list = json!([]);
            }
            if let Some(v) = list.as_array_mut() {
                if !v.contains(&json!(cap)) {
                    v.push(json!(cap));
                }
            }
        }
    }
}
