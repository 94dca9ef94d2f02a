//! `berth-oci`: an OCI runtime with runc's command line, built on berth.
//!
//! The container crate creates the container two-phase (stopped just before
//! `execve`); its start pipe lives in the process that created it. So
//! `create` forks a small *holder* process that owns the `Container` handle
//! until `start` (it listens on `<root>/.meta/<id>.sock`), then releases the
//! container and detaches it; the container's init is then reparented to
//! the engine's subreaper (containerd's shim, conmon) as with runc.
//! Everything else (`state`, `kill`, `delete`, `pause`, …) works from the
//! state files under `--root` (default `/run/berth-oci`).
//!
//! Deliberate differences from runc:
//! - `delete` of a *created* container works without `--force` (as runc;
//!   the spec asks for an error unless stopped); running/paused need it.
//! - Hooks all run in the runtime's namespaces (createContainer and
//!   startContainer are meant for the container's mount namespace);
//!   prestart/createRuntime/createContainer run once `create` has built
//!   the container (berth prepares namespaces and pivots in one step),
//!   startContainer just before the workload is released, poststart after
//!   it, poststop on `delete` (and after `run`). Timeouts are honoured.
//!   As the runtime spec's lifecycle says (runc 1.1 differs): a failing
//!   poststart or poststop hook is a warning and the remaining hooks run;
//!   a failing prestart/createRuntime/createContainer hook fails `create`,
//!   destroys the container, then runs the poststop hooks.
//! - `kill`, `delete`, `start` answer as runc 1.1 (exit 1 with "container
//!   not running", "does not exist", "that is not stopped", ...: engines
//!   match these texts); `kill --all` of a stopped container succeeds.
//!   `pause` of a created container is refused (runc freezes it).
//! - Unix sockets (the holder's, `--console-socket`) work under paths of
//!   any depth (see `SockPath`); `delete` of the last container removes
//!   `.meta`, so the root holds nothing berth-oci made (as runc).
//! - Limits for controllers the cgroup2 hierarchy lacks (a hybrid host:
//!   v1 controllers beside a cgroup2 mount) are an error (runc would use
//!   cgroup v1), unless the operator opts in (see Security).
//! - `exec` uses berth's exec path (`berth::Exec::in_state`: cloned into
//!   the container's cgroup, non-dumpable until its `execve`) and applies
//!   the process' security policy with berth-security (capabilities,
//!   rlimits, noNewPrivileges, gids, AppArmor, the container's seccomp);
//!   SELinux labels are refused. Its fds: stdio and `--preserve-fds`
//!   ones, as runc. A process without capabilities gets none (as the
//!   init); `--cap` adds to bounding/effective/permitted only. `exec`,
//!   `start` and `delete` read the configuration snapshot `create` saved
//!   (`<root>/.meta/<id>.config`), never the bundle again; `create`,
//!   `run` and `exec` run from a read-only bind mount of the binary (a
//!   sealed memfd copy when not root), as runc 1.2.
//! - `ps` runs `ps(1)` (`-ef` or the arguments after the id) and keeps
//!   the header and the container's lines, as runc; `--format json` is
//!   the pid list. `events [--stats] [--interval D]` prints runc 1.1's
//!   stats events (no OOM events) from the container's own groups. On a
//!   hybrid host the container and exec'd processes also join their own
//!   (limitless) v1 memory/pids/cpuacct groups, as runc's v1 mode, so
//!   engines reading v1 statistics see the container's numbers; a
//!   container without a cgroup namespace sees only its own cgroup2
//!   group at /sys/fs/cgroup.
//! - Only the cgroupfs driver: `--systemd-cgroup` is an error.
//! - `--preserve-fds N` (create, run, exec) checks that fds 3..3+N were
//!   open when berth-oci started and fails otherwise (runc passes on
//!   whatever is there). As runc, the workload gets exactly stdio and
//!   those fds; `LISTEN_FDS`/`LISTEN_PID` are left to the caller.
//! - Rootless (not root): the bundle's user namespace must map the
//!   caller, with single-id maps written directly (others go through
//!   newuidmap/newgidmap and /etc/subuid); no cgroup is made unless the
//!   cgroupsPath's parent is writable (delegated), so limits are then not
//!   applied (a warning), and `kill --all` signals the init (its pid
//!   namespace ends with it) instead of walking a cgroup; `pause` needs a
//!   cgroup and fails without one.
//! - A `hostname` without a new UTS namespace is refused, as runc does
//!   ("unable to set hostname without a private UTS namespace"); with a
//!   *joined* UTS namespace it is set there, as runc does (containerd
//!   gives every container of a pod the sandbox's hostname). Without a
//!   hostname the container shares or joins the UTS namespace given.
//! - A namespace omitted from `linux.namespaces` is the runtime's; without
//!   a mount namespace of its own the container is chrooted into its
//!   rootfs and nothing is mounted (runc mounts `/proc` and the rest into
//!   the shared namespace and leaves them there); options that need mounts
//!   are then refused.
//! - `rootfsPropagation` `shared` makes `/` shared *and* a slave of the
//!   host's mounts, so the container's mounts never reach the host.
//! - Without a `linux.cgroupsPath` the container's cgroup is
//!   `berth-oci/<id>` under the runtime's own cgroup (berth-run's are
//!   `berth/<id>`, so one id can run in both); a cgroupsPath is used as
//!   given.
//!
//! # Security
//!
//! - The state root (`--root`, default `/run/berth-oci`) and its `.meta`
//!   directory are mode 0700, each container's directory too, and the
//!   files in them 0600 (`.meta/<id>.json` holds the bundle path and
//!   annotations). A root that already exists with looser modes is
//!   tightened to 0700 by `create`/`run`, with a warning in the log; a
//!   root or `.meta` owned by another user is an error.
//! - `--pid-file` (create, run, exec) is written as runc does: a new file
//!   with an unpredictable name in the pid file's directory, opened with
//!   `O_CREAT|O_EXCL|O_NOFOLLOW` (mode 0644), then renamed over the pid
//!   file. A symlink planted at either name is never followed (one at the
//!   pid file's name is replaced).
//! - `--log` is opened `O_APPEND|O_CREAT|O_NOFOLLOW` (mode 0644): a
//!   symbolic link as the log file is an error. `--console-socket` is only
//!   connected to, never created or written as a file.
//! - A limit in `linux.resources` whose controller the cgroup2 hierarchy
//!   does not offer makes `create`/`run` fail, naming every such
//!   controller and where it is bound, and leaving nothing behind (the
//!   runtime spec: a property that cannot be applied is an error). An
//!   operator who accepts unenforced limits on such a host opts in with
//!   the global flag `--allow-unenforced-limits` or the environment
//!   variable `BERTH_OCI_ALLOW_UNENFORCED_LIMITS=1`; the limits not
//!   enforced are then named in a warning in the log. (Rootless without a
//!   writable cgroupsPath parent, no cgroup is made and limits are not
//!   applied, as runc does.)
//! - The workload's inheritable capability set is the bundle's
//!   `process.capabilities.inheritable` (empty when absent; CVE-2022-24769).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const OCI_VERSION: &str = "1.2.0";
const DEFAULT_ROOT: &str = "/run/berth-oci";

type Res<T> = Result<T, String>;

// ---------------------------------------------------------------- logging

#[derive(Default)]
struct Log {
    file: Option<std::fs::File>,
    json: bool,
    debug: bool,
}

static mut LOG: Option<Log> = None;

fn log_mut() -> &'static mut Option<Log> {
    // SAFETY: the program is single-threaded; LOG is set once in main.
    unsafe { &mut *std::ptr::addr_of_mut!(LOG) }
}

/// RFC 3339 UTC time from the system clock.
fn now_rfc3339() -> String {
    rfc3339(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

/// RFC 3339 UTC time, nanoseconds, of `d` since the epoch (civil-from-days,
/// H. Hinnant); Go's `time.RFC3339Nano` parses it (runc's `created`).
fn rfc3339(d: Duration) -> String {
    let secs = d.as_secs() as i64;
    let (days, sod) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60,
        d.subsec_nanos()
    )
}

fn log(level: &str, msg: &str) {
    let Some(l) = log_mut().as_mut() else { return };
    if level == "debug" && !l.debug {
        return;
    }
    let line = if l.json {
        json!({"level": level, "msg": msg, "time": now_rfc3339()}).to_string()
    } else {
        format!("time=\"{}\" level={level} msg={msg:?}", now_rfc3339())
    };
    if let Some(f) = l.file.as_mut() {
        let _ = writeln!(f, "{line}");
    } else if level != "error" {
        eprintln!("{line}");
    }
}

// ---------------------------------------------------------------- args

struct Args {
    flags: Vec<(String, String)>,
    pos: Vec<String>,
}

impl Args {
    /// Parse `argv` given the flags that take a value; the rest are
    /// boolean. With `stop_at_pos`, everything after the first positional
    /// is positional (exec's command).
    fn parse(argv: &[String], valued: &[&str], boolean: &[&str], stop_at_pos: bool) -> Res<Args> {
        let mut flags = Vec::new();
        let mut pos = Vec::new();
        let mut i = 0;
        while i < argv.len() {
            let a = &argv[i];
            i += 1;
            if a == "--" {
                pos.extend(argv[i..].iter().cloned());
                break;
            }
            if a.starts_with('-') && a.len() > 1 && (!stop_at_pos || pos.is_empty()) {
                let body = a.trim_start_matches('-');
                let (name, inline) = match body.split_once('=') {
                    Some((n, v)) => (n.to_string(), Some(v.to_string())),
                    None => (body.to_string(), None),
                };
                if valued.contains(&name.as_str()) {
                    let v = match inline {
                        Some(v) => v,
                        None => {
                            let v = argv
                                .get(i)
                                .cloned()
                                .ok_or_else(|| format!("flag --{name} needs a value"))?;
                            i += 1;
                            v
                        }
                    };
                    flags.push((name, v));
                } else if boolean.contains(&name.as_str()) {
                    let v = inline.unwrap_or_else(|| "true".into());
                    flags.push((name, v));
                } else {
                    return Err(format!("unknown flag {a}"));
                }
            } else {
                pos.push(a.clone());
            }
        }
        Ok(Args { flags, pos })
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    fn all(&self, name: &str) -> Vec<String> {
        self.flags
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
    fn bool(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| v != "false")
    }
    fn id(&self) -> Res<String> {
        let id = self
            .pos
            .first()
            .cloned()
            .ok_or_else(|| "container id is required".to_string())?;
        berth::validate_id(&id).map_err(|e| e.to_string())?;
        Ok(id)
    }
}

// ---------------------------------------------------------------- metadata

struct Ctx {
    root: PathBuf,
}

impl Ctx {
    fn meta_dir(&self) -> PathBuf {
        self.root.join(".meta")
    }
    fn meta_path(&self, id: &str) -> PathBuf {
        self.meta_dir().join(format!("{id}.json"))
    }
    fn sock_path(&self, id: &str) -> PathBuf {
        self.meta_dir().join(format!("{id}.sock"))
    }
    /// The configuration snapshot taken at create (see [`save_config`]).
    fn config_path(&self, id: &str) -> PathBuf {
        self.meta_dir().join(format!("{id}.config"))
    }
    fn load_meta(&self, id: &str) -> Res<Value> {
        let p = self.meta_path(id);
        let b = std::fs::read(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                format!("container {id} does not exist")
            } else {
                format!("read {}: {e}", p.display())
            }
        })?;
        serde_json::from_slice(&b).map_err(|e| format!("parse {}: {e}", p.display()))
    }
    /// Prepare the root and write `id`'s first metadata. A concurrent
    /// `delete` may remove `.meta` while it is empty ([`Ctx::remove_meta`]),
    /// so a write that finds it gone prepares it again.
    fn first_meta(&self, id: &str, v: &Value) -> Res<()> {
        let mut tries = 0;
        loop {
            self.prepare_root()?;
            match self.write_meta(id, v) {
                Err(_) if tries < 8 && !self.meta_dir().exists() => tries += 1,
                r => return r,
            }
        }
    }
    /// Remove `id`'s metadata (record, configuration snapshot, holder
    /// socket), and `.meta` itself once empty, so that the root holds
    /// nothing berth-oci made once every container is deleted (as runc).
    fn remove_meta(&self, id: &str) {
        for p in [self.sock_path(id), self.config_path(id), self.meta_path(id)] {
            let _ = std::fs::remove_file(p);
        }
        // rmdir(2) fails (ENOTEMPTY) while another container has a record.
        let _ = std::fs::remove_dir(self.meta_dir());
    }
    fn write_meta(&self, id: &str, v: &Value) -> Res<()> {
        let p = self.meta_path(id);
        let tmp = self.meta_dir().join(format!(".{id}.tmp"));
        write_private(&tmp, v.to_string().as_bytes())
            .map_err(|e| format!("write {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &p).map_err(|e| format!("write {}: {e}", p.display()))
    }

    /// Create the state root and `.meta` (mode 0700), or tighten existing
    /// ones open to others (logged); either owned by another user is an
    /// error. (A container init in a user namespace that does not map us
    /// could not reach `<root>/<id>` to mount its tmpfs there; such
    /// bundles fail anyway as root today (mknod in a user namespace,
    /// EPERM). Docker's answer when that is supported: a root of 0711.)
    fn prepare_root(&self) -> Res<()> {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
        for dir in [self.root.clone(), self.meta_dir()] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| format!("create {}: {e}", dir.display()))?;
            // The root may be reached through a symlink (the operator's
            // choice); `.meta`, inside it, must be our own directory.
            let md = if dir == self.root {
                std::fs::metadata(&dir)
            } else {
                std::fs::symlink_metadata(&dir)
            }
            .map_err(|e| format!("stat {}: {e}", dir.display()))?;
            // SAFETY: geteuid cannot fail.
            let me = unsafe { libc::geteuid() };
            if !md.is_dir() || md.uid() != me {
                return Err(format!(
                    "state directory {} is not a directory owned by uid {me}",
                    dir.display()
                ));
            }
            let mode = md.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(|e| format!("chmod 0700 {}: {e}", dir.display()))?;
                log(
                    "warning",
                    &format!(
                        "state directory {} had mode {mode:04o}: tightened to 0700",
                        dir.display()
                    ),
                );
            }
        }
        Ok(())
    }
}

/// Write `data` to a new or truncated regular file at `p`, mode 0600,
/// never through a symbolic link (`O_NOFOLLOW`).
fn write_private(p: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(p)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(data)
}

/// Field 22 of `/proc/<pid>/stat` (start time), to detect pid reuse.
fn start_time(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    if matches!(f.first(), Some(&"Z") | Some(&"X")) {
        return None;
    }
    f.get(19)?.parse().ok()
}

fn holder_alive(meta: &Value) -> bool {
    let pid = meta["holder_pid"].as_i64().unwrap_or(0) as i32;
    pid > 0 && start_time(pid) == meta["holder_start"].as_u64()
}

/// The OCI status of a container and its berth state (if written yet).
fn status(ctx: &Ctx, id: &str, meta: &Value) -> (&'static str, Option<berth::State>) {
    let st = berth::State::load(Some(&ctx.root), id).ok();
    let s = match &st {
        None => {
            if holder_alive(meta) {
                "creating"
            } else {
                "stopped"
            }
        }
        Some(st) if st.created => {
            if holder_alive(meta) && st.is_running() {
                "created"
            } else {
                "stopped"
            }
        }
        Some(st) if st.is_running() => {
            let frozen = st
                .cgroup
                .as_ref()
                .and_then(|c| std::fs::read_to_string(c.join("cgroup.freeze")).ok())
                .is_some_and(|v| v.trim() == "1");
            if frozen {
                "paused"
            } else {
                "running"
            }
        }
        Some(_) => "stopped",
    };
    (s, st)
}

fn state_json(ctx: &Ctx, id: &str, meta: &Value) -> Value {
    let (s, st) = status(ctx, id, meta);
    let pid = match (s, &st) {
        ("stopped", _) | (_, None) => 0,
        (_, Some(st)) => st.pid.unwrap_or(0),
    };
    // runc's fields: go-runc (containerd's shim) reads `rootfs` and
    // `created`; `owner` is empty in runc's `state`. A record made before
    // `created` was kept falls back to berth's whole-second creation time.
    let created = match (meta["created"].as_str(), &st) {
        (Some(c), _) => c.to_string(),
        (None, Some(st)) => rfc3339(Duration::from_secs(st.created_at)),
        (None, None) => String::new(),
    };
    json!({
        "ociVersion": OCI_VERSION,
        "id": id,
        "status": s,
        "pid": pid,
        "bundle": meta["bundle"],
        "rootfs": meta["rootfs"].as_str().unwrap_or_default(),
        "created": created,
        "owner": "",
        "annotations": meta["annotations"],
    })
}

// ---------------------------------------------------------------- hooks

fn run_hooks(kind: &str, hooks: Option<&Vec<oci_spec::runtime::Hook>>, state: &Value) -> Res<()> {
    for h in hooks.into_iter().flatten() {
        log(
            "debug",
            &format!("running {kind} hook {}", h.path().display()),
        );
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
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("{kind} hook {}: {e}", h.path().display()))?;
        if let Some(mut i) = child.stdin.take() {
            let _ = i.write_all(state.to_string().as_bytes());
        }
        let deadline = h
            .timeout()
            .map(|t| Instant::now() + Duration::from_secs(t.max(1) as u64));
        let st = loop {
            if let Some(st) = child
                .try_wait()
                .map_err(|e| format!("wait for {kind} hook: {e}"))?
            {
                break st;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{kind} hook {} timed out after {}s",
                    h.path().display(),
                    h.timeout().unwrap_or(0)
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        if !st.success() {
            return Err(format!("{kind} hook {} failed: {st}", h.path().display()));
        }
    }
    Ok(())
}

/// Run poststart or poststop hooks as the runtime spec's lifecycle asks:
/// a hook that fails (or times out) is logged as a warning and the
/// remaining hooks and the lifecycle go on as if it had succeeded.
fn run_hooks_warn(kind: &str, hooks: Option<&Vec<oci_spec::runtime::Hook>>, state: &Value) {
    for h in hooks.into_iter().flatten() {
        if let Err(e) = run_hooks(kind, Some(&vec![h.clone()]), state) {
            log("warning", &e);
        }
    }
}

/// The state poststart hooks get: the runtime spec's lifecycle step 9
/// comes after the workload started, so `running` with the init's pid,
/// also when a short workload has already exited (the validation suite's
/// hooks_stdin expects this).
fn poststart_state(ctx: &Ctx, id: &str, meta: &Value) -> Value {
    let mut v = state_json(ctx, id, meta);
    if v["status"] == "stopped" {
        v["status"] = json!("running");
        if let Some(pid) = berth::State::load(Some(&ctx.root), id)
            .ok()
            .and_then(|s| s.pid)
        {
            v["pid"] = json!(pid);
        }
    }
    v
}

/// The hooks of the configuration snapshot of `id` (never the bundle's
/// `config.json`, which may have changed since create).
fn snapshot_hooks(ctx: &Ctx, id: &str) -> Option<oci_spec::runtime::Hooks> {
    load_config(ctx, id).ok().and_then(|s| s.hooks().clone())
}

// ---------------------------------------------------------------- snapshot

/// Save the configuration `create` (or `run`) builds the container from as
/// `<root>/.meta/<id>.config` (mode 0600, created exclusively, never
/// through a symlink): `exec`, `start` and `delete` (hooks, capabilities,
/// seccomp) read only this snapshot, so editing the bundle after create
/// changes nothing (runc keeps its own copy in state.json likewise).
fn save_config(ctx: &Ctx, id: &str, spec: &oci_spec::runtime::Spec) -> Res<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let p = ctx.config_path(id);
    let text = serde_json::to_vec(spec).map_err(|e| format!("snapshot config of {id}: {e}"))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&p)
        .map_err(|e| format!("create {}: {e}", p.display()))?;
    f.write_all(&text)
        .map_err(|e| format!("write {}: {e}", p.display()))
}

/// The configuration snapshot of `id` (see [`save_config`]).
fn load_config(ctx: &Ctx, id: &str) -> Res<oci_spec::runtime::Spec> {
    use std::os::unix::fs::OpenOptionsExt;
    let p = ctx.config_path(id);
    let mut text = Vec::new();
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&p)
        .and_then(|mut f| f.read_to_end(&mut text))
        .map_err(|e| format!("read the configuration snapshot {}: {e}", p.display()))?;
    serde_json::from_slice(&text).map_err(|e| format!("parse {}: {e}", p.display()))
}

// ---------------------------------------------------------------- console

/// A unix socket path short enough for `sockaddr_un` (108 bytes with its
/// NUL, unix(7)) whatever the depth of `path`: a longer one is reached as
/// `/proc/self/fd/<fd>/<name>` through an `O_PATH` fd of its directory,
/// held by the returned value for as long as the path is used (as crun
/// does; a `chdir` would change the whole process' directory).
struct SockPath {
    path: PathBuf,
    _dir: Option<OwnedFd>,
}

impl SockPath {
    fn new(path: &Path) -> Res<SockPath> {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::OpenOptionsExt;
        if path.as_os_str().as_bytes().len() < 100 {
            return Ok(SockPath {
                path: path.to_path_buf(),
                _dir: None,
            });
        }
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(format!("socket path {}: no file name", path.display()));
        };
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(dir)
            .map_err(|e| format!("open the directory of socket {}: {e}", path.display()))?;
        let dir = OwnedFd::from(dir);
        Ok(SockPath {
            path: PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name),
            _dir: Some(dir),
        })
    }
}

/// Send `fd` over the unix socket at `path` (SCM_RIGHTS), as runc does for
/// `--console-socket`; any path depth works ([`SockPath`]).
fn send_fd(path: &str, fd: RawFd) -> Res<()> {
    let sp = SockPath::new(Path::new(path))?;
    let s =
        UnixStream::connect(&sp.path).map_err(|e| format!("connect console socket {path}: {e}"))?;
    let name = b"/dev/ptmx";
    let mut iov = libc::iovec {
        iov_base: name.as_ptr() as *mut libc::c_void,
        iov_len: name.len(),
    };
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut buf = vec![0u8; space];
    // SAFETY: zeroed msghdr is valid; pointers below point into live buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = buf.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = space;
    // SAFETY: msg_control has room for one cmsg with one fd.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut RawFd, fd);
    }
    // SAFETY: valid socket and msghdr.
    if unsafe { libc::sendmsg(s.as_raw_fd(), &msg, 0) } < 0 {
        return Err(format!(
            "send pty over {path}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------- commands

fn builder_for(
    ctx: &Ctx,
    bundle: &berth::Bundle,
    id: &str,
    a: &Args,
) -> Res<berth::ContainerBuilder> {
    let mut b = bundle
        .builder(id)
        .map_err(|e| e.to_string())?
        .state_root(&ctx.root)
        .kill_with_owner(false);
    // --preserve-fds N: our fds 3 .. 3+N become the workload's under the
    // same numbers (runc's semantics; LISTEN_FDS is the caller's business).
    for fd in preserved_fds(a)? {
        // SAFETY: F_DUPFD_CLOEXEC on an fd number; checked below.
        let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
        if dup < 0 {
            return Err(format!(
                "--preserve-fds: dup fd {fd}: {}",
                std::io::Error::last_os_error()
            ));
        }
        // SAFETY: a fresh fd.
        b = b.inherit_fd(unsafe { OwnedFd::from_raw_fd(dup) }, fd);
    }
    let has_resources = bundle
        .spec()
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .is_some();
    // runc appends its allowlist of standard devices (null, zero, full,
    // random, urandom, tty, console, ptmx, pts, mknod of any) after the
    // spec's device rules; engines rely on it (podman sends only
    // "deny all").
    // SAFETY: geteuid cannot fail.
    let rootless = unsafe { libc::geteuid() } != 0;
    if let Some(devs) = bundle
        .spec()
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().as_ref())
        .filter(|_| !rootless)
    {
        let mut f = berth_ebpf_probes::DeviceFilter::from_oci(devs).map_err(|e| e.to_string())?;
        for r in berth_ebpf_probes::DeviceFilter::container_default()
            .rules()
            .iter()
            .skip(1)
        {
            f.rule(*r);
        }
        b = b.device_filter(Some(f));
    }
    // runc creates the parents of an absolute cgroupsPath (engines name
    // e.g. /<namespace>/<id>); berth wants the parent to exist.
    let cpath = bundle
        .spec()
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone());
    if let (Some(cp), Ok(h), false) = (cpath, berth_cgroups::Hierarchy::discover(), rootless) {
        if let (true, Some(parent)) = (cp.is_absolute(), cp.parent()) {
            let rel = parent.strip_prefix("/").unwrap_or(parent);
            if !rel.as_os_str().is_empty() && !rel.to_string_lossy().contains("..") {
                let dir = h.mount_point().join(rel);
                std::fs::create_dir_all(&dir)
                    .map_err(|e| format!("create cgroup parent {}: {e}", dir.display()))?;
            }
        }
    }
    if rootless && has_resources {
        log(
            "warning",
            &format!("{id}: rootless: resource limits apply only under a writable (delegated) cgroupsPath parent"),
        );
    }
    b = unenforced_limits(bundle, id, rootless, b)?;
    if let (Ok(h), false) = (berth_cgroups::Hierarchy::discover(), rootless) {
        // Our own parent, beside berth-run's `berth` (cgroupsPath: as given).
        if bundle
            .spec()
            .linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().as_ref())
            .is_none()
        {
            let parent = h.own_cgroup_dir().join("berth-oci");
            std::fs::create_dir_all(&parent)
                .map_err(|e| format!("create cgroup parent {}: {e}", parent.display()))?;
            b = b.cgroup_parent(parent);
        }
    }
    Ok(b)
}

/// Set by `--allow-unenforced-limits` or `BERTH_OCI_ALLOW_UNENFORCED_LIMITS=1`.
static ALLOW_UNENFORCED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// The environment variable that allows unenforced limits.
const ALLOW_UNENFORCED_ENV: &str = "BERTH_OCI_ALLOW_UNENFORCED_LIMITS";

/// The bundle's limits whose controllers the cgroup2 hierarchy does not
/// offer (a hybrid host: v1 controllers beside cgroup2; its root's
/// `cgroup.controllers`): an error naming each and where it is bound (the
/// runtime spec: a property that cannot be applied is an error), unless
/// the operator allowed unenforced limits (then a warning, and the
/// library skips them). Rootless without a delegated cgroup, the library
/// applies no limit at all, as runc does.
fn unenforced_limits(
    bundle: &berth::Bundle,
    id: &str,
    rootless: bool,
    b: berth::ContainerBuilder,
) -> Res<berth::ContainerBuilder> {
    let Some(r) = bundle
        .spec()
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
    else {
        return Ok(b);
    };
    let wanted = berth_cgroups::Resources::from_oci(r)
        .and_then(|r| r.controllers())
        .map_err(|e| e.to_string())?;
    let h = berth_cgroups::Hierarchy::discover().map_err(|e| e.to_string())?;
    let have = h.root_controllers().map_err(|e| e.to_string())?;
    let missing: Vec<String> = wanted
        .iter()
        .filter(|c| !have.contains(*c))
        .map(|c| {
            let bound = h.where_bound(c, &h.own_cgroup_dir());
            format!("{} ({bound})", c.name())
        })
        .collect();
    if missing.is_empty() {
        return Ok(b);
    }
    let missing = missing.join(", ");
    let mount = h.mount_point().display();
    if ALLOW_UNENFORCED.load(std::sync::atomic::Ordering::Relaxed) {
        log(
            "warning",
            &format!("{id}: limits not enforced (allowed by --allow-unenforced-limits or {ALLOW_UNENFORCED_ENV}=1): the cgroup2 hierarchy at {mount} has no controller {missing}"),
        );
        return Ok(b.ignore_unavailable(true));
    }
    if rootless {
        return Ok(b);
    }
    Err(format!(
        "container {id}: linux.resources cannot be applied: the cgroup2 hierarchy at {mount} has no controller {missing}; \
         to run without these limits, pass --allow-unenforced-limits or set {ALLOW_UNENFORCED_ENV}=1"
    ))
}

/// The fds open when the program started (before it opened any itself).
static START_FDS: std::sync::OnceLock<Vec<RawFd>> = std::sync::OnceLock::new();

fn record_start_fds() {
    let fds = std::fs::read_dir("/proc/self/fd")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let _ = START_FDS.set(fds);
}

/// The fds `--preserve-fds N` names: 3 .. 3+N, each open when we started
/// (so never one of our own, such as the log file).
fn preserved_fds(a: &Args) -> Res<std::ops::Range<RawFd>> {
    let n: RawFd = match a.get("preserve-fds") {
        None => 0,
        Some(v) => v
            .parse()
            .ok()
            .filter(|n| (0..=65536).contains(n))
            .ok_or_else(|| format!("--preserve-fds {v:?}: a count expected"))?,
    };
    let start = START_FDS.get().map(Vec::as_slice).unwrap_or_default();
    if let Some(fd) = (3..3 + n).find(|fd| !start.contains(fd)) {
        return Err(format!(
            "--preserve-fds {n}: fd {fd} is not open in the runtime"
        ));
    }
    Ok(3..3 + n)
}

/// Close our copies of the preserved fds once the workload has its own, so
/// that e.g. the reader of a pipe passed in sees EOF when the workload
/// closes it (as with runc, whose `create` exits).
fn close_preserved(a: &Args) {
    for fd in preserved_fds(a).unwrap_or(3..3) {
        // SAFETY: closing fds this process was given to pass on.
        unsafe { libc::close(fd) };
    }
}

fn new_meta(bundle: &berth::Bundle, id: &str) -> Value {
    let ann = bundle.spec().annotations().clone().unwrap_or_default();
    // The rootfs as runc reports it: `root.path` against the bundle.
    let rootfs = bundle
        .spec()
        .root()
        .as_ref()
        .map(|r| bundle.dir().join(r.path()).display().to_string())
        .unwrap_or_default();
    json!({
        "id": id,
        "bundle": bundle.dir().display().to_string(),
        "rootfs": rootfs,
        "created": now_rfc3339(),
        "annotations": ann,
        "holder_pid": 0,
        "holder_start": 0,
    })
}

fn load_bundle(a: &Args) -> Res<berth::Bundle> {
    let dir = a.get("bundle").or(a.get("b")).unwrap_or(".");
    let dir = std::fs::canonicalize(dir).map_err(|e| format!("bundle {dir}: {e}"))?;
    let b = berth::Bundle::load(&dir).map_err(|e| e.to_string())?;
    let v = b.spec().version();
    if !(v.starts_with("1.0.")
        || v.starts_with("1.1.")
        || v.starts_with("1.2.")
        || v.starts_with("1.3."))
    {
        return Err(format!("unsupported ociVersion {v:?} (1.0.x to 1.3.x)"));
    }
    Ok(b)
}

fn cmd_create(ctx: &Ctx, a: &Args) -> Res<i32> {
    let id = a.id()?;
    preserved_fds(a)?;
    let bundle = load_bundle(a)?;
    if ctx.meta_path(&id).exists() || ctx.root.join(&id).exists() {
        return Err(format!("container {id} already exists"));
    }
    let mut meta = new_meta(&bundle, &id);
    ctx.first_meta(&id, &meta)?;
    if let Err(e) = save_config(ctx, &id, bundle.spec()) {
        ctx.remove_meta(&id);
        return Err(e);
    }
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        ctx.remove_meta(&id);
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: fresh fds from pipe2.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the program is single-threaded, so the child may run Rust code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        ctx.remove_meta(&id);
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        drop(r);
        let code = holder(ctx, a, &id, &bundle, &mut meta, w);
        // SAFETY: leave without running the parent's atexit handlers twice.
        unsafe { libc::_exit(code) };
    }
    drop(w);
    let mut f = std::fs::File::from(r);
    let mut msg = String::new();
    let _ = f.read_to_string(&mut msg);
    if let Some(p) = msg.strip_prefix("ok ") {
        let cpid = p.trim();
        if let Some(pf) = a.get("pid-file") {
            write_pid_file(pf, cpid)?;
        }
        Ok(0)
    } else {
        // The holder failed before handing over: reap it and clean up.
        let mut st = 0;
        // SAFETY: our own child.
        unsafe { libc::waitpid(pid, &mut st, 0) };
        ctx.remove_meta(&id);
        Err(if msg.is_empty() {
            "create failed (holder exited)".into()
        } else {
            msg.trim_start_matches("err ").to_string()
        })
    }
}

/// Write the pid file as runc does: a new file (`O_CREAT|O_EXCL|
/// O_NOFOLLOW`, mode 0644) with an unpredictable name in the pid file's
/// directory, renamed over the pid file; a symlink planted at either name
/// is never followed.
fn write_pid_file(pf: &str, pid: &str) -> Res<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let p = Path::new(pf);
    let name = p
        .file_name()
        .ok_or_else(|| format!("pid file {pf}: no file name"))?;
    let err = |e: std::io::Error| format!("write pid file {pf}: {e}");
    for _ in 0..16 {
        let mut r = [0u8; 8];
        // SAFETY: getrandom(2) (Linux 3.17) into a live buffer.
        if unsafe { libc::getrandom(r.as_mut_ptr().cast(), r.len(), 0) } != r.len() as isize {
            return Err(err(std::io::Error::last_os_error()));
        }
        let tmp = p.with_file_name(format!(
            ".{}.{:016x}",
            name.to_string_lossy(),
            u64::from_ne_bytes(r)
        ));
        let mut f = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(err(e)),
        };
        let r = f
            .write_all(pid.as_bytes())
            .and_then(|()| std::fs::rename(&tmp, p));
        if let Err(e) = r {
            let _ = std::fs::remove_file(&tmp);
            return Err(err(e));
        }
        return Ok(());
    }
    Err(format!("write pid file {pf}: no free temporary name"))
}

/// The holder: creates the container, reports to `create`, then waits for
/// `start` on the socket.
fn holder(
    ctx: &Ctx,
    a: &Args,
    id: &str,
    bundle: &berth::Bundle,
    meta: &mut Value,
    w: OwnedFd,
) -> i32 {
    let mut w = std::fs::File::from(w);
    let fail = |w: &mut std::fs::File, msg: String| {
        let _ = w.write_all(format!("err {msg}").as_bytes());
        1
    };
    // SAFETY: setsid in a fresh child.
    unsafe { libc::setsid() };
    meta["holder_pid"] = json!(std::process::id());
    meta["holder_start"] = json!(start_time(std::process::id() as i32).unwrap_or(0));
    if let Err(e) = ctx.write_meta(id, meta) {
        return fail(&mut w, e);
    }
    let listener = match SockPath::new(&ctx.sock_path(id))
        .and_then(|p| UnixListener::bind(&p.path).map_err(|e| e.to_string()))
    {
        Ok(l) => l,
        Err(e) => return fail(&mut w, format!("bind {}: {e}", ctx.sock_path(id).display())),
    };
    let tty = bundle
        .spec()
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    if tty && a.get("console-socket").is_none() {
        return fail(
            &mut w,
            "process.terminal is set but no --console-socket given".into(),
        );
    }
    let b = match builder_for(ctx, bundle, id, a) {
        Ok(b) => b,
        Err(e) => return fail(&mut w, e),
    };
    // The library makes the container's state directory 0700 and its
    // state file 0600 (O_EXCL|O_NOFOLLOW) itself.
    let mut c = match b.create() {
        Ok(c) => c,
        Err(e) => return fail(&mut w, format!("create container {id}: {e}")),
    };
    close_preserved(a);
    if tty {
        let cs = a.get("console-socket").unwrap_or_default();
        let Some(m) = c.pty() else {
            let _ = c.destroy();
            return fail(&mut w, "no pty master".into());
        };
        if let Err(e) = send_fd(cs, m.as_raw_fd()) {
            let _ = c.destroy();
            return fail(&mut w, e);
        }
    }
    let hooks = bundle.hooks().cloned();
    let mut st = state_json(ctx, id, meta);
    st["status"] = json!("creating");
    if let Some(h) = &hooks {
        #[allow(deprecated)]
        let r = run_hooks("prestart", h.prestart().as_ref(), &st)
            .and_then(|_| run_hooks("createRuntime", h.create_runtime().as_ref(), &st))
            .and_then(|_| run_hooks("createContainer", h.create_container().as_ref(), &st));
        if let Err(e) = r {
            // The spec's lifecycle: error, stop, destroy, then poststop.
            let _ = c.destroy();
            st["status"] = json!("stopped");
            run_hooks_warn("poststop", h.poststop().as_ref(), &st);
            return fail(&mut w, e);
        }
    }
    // Joined last, once nothing can fail before the hand-over.
    if let Ok(st) = berth::State::load(Some(&ctx.root), id) {
        meta["v1_cgroups"] = json!(v1_join(id, &st));
        if let Err(e) = ctx.write_meta(id, meta) {
            let _ = c.destroy();
            v1_remove(&v1_recorded(meta));
            return fail(&mut w, e);
        }
    }
    let _ = w.write_all(format!("ok {}", c.pid()).as_bytes());
    drop(w);
    // Hold no stdio of the engine's: only the container has it.
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard fds.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
    st["status"] = json!("created");
    for conn in listener.incoming() {
        let Ok(mut s) = conn else { continue };
        let mut line = String::new();
        let _ = BufReader::new(&s).read_line(&mut line);
        if line.trim() != "start" {
            continue;
        }
        let r = hooks
            .as_ref()
            .map(|h| run_hooks("startContainer", h.start_container().as_ref(), &st))
            .unwrap_or(Ok(()))
            .and_then(|_| c.start().map_err(|e| format!("start container {id}: {e}")));
        match r {
            Ok(()) => {
                let _ = s.write_all(b"ok\n");
                let _ = std::fs::remove_file(ctx.sock_path(id));
                let _ = c.detach();
                return 0;
            }
            Err(e) => {
                let _ = s.write_all(format!("err {e}\n").as_bytes());
                // The workload could not be started: the container is stopped
                // (its process is gone); delete reclaims the rest.
                let _ = std::fs::remove_file(ctx.sock_path(id));
                let _ = c.detach();
                return 1;
            }
        }
    }
    0
}

fn cmd_start(ctx: &Ctx, a: &Args) -> Res<i32> {
    let id = a.id()?;
    let meta = ctx.load_meta(&id)?;
    let (s, _) = status(ctx, &id, &meta);
    // runc's messages for each state.
    match s {
        "created" => {}
        "stopped" => {
            return Err(format!(
                "cannot start container {id}: cannot start a container that has stopped"
            ))
        }
        "running" => {
            return Err(format!(
                "cannot start container {id}: cannot start an already running container"
            ))
        }
        _ => {
            return Err(format!(
                "cannot start container {id}: cannot start a container in the {s} state"
            ))
        }
    }
    let mut sock = SockPath::new(&ctx.sock_path(&id))
        .and_then(|p| UnixStream::connect(&p.path).map_err(|e| e.to_string()))
        .map_err(|e| format!("connect to holder of {id}: {e}"))?;
    sock.write_all(b"start\n")
        .map_err(|e| format!("send start to {id}: {e}"))?;
    let mut reply = String::new();
    let _ = BufReader::new(&sock).read_line(&mut reply);
    if reply.trim() != "ok" {
        return Err(reply.trim().trim_start_matches("err ").to_string());
    }
    if let Some(h) = snapshot_hooks(ctx, &id) {
        let st = poststart_state(ctx, &id, &meta);
        run_hooks_warn("poststart", h.poststart().as_ref(), &st);
    }
    Ok(0)
}

fn cmd_run(ctx: &Ctx, a: &Args) -> Res<i32> {
    if a.bool("detach") {
        cmd_create(ctx, a)?;
        return cmd_start(ctx, a);
    }
    let id = a.id()?;
    preserved_fds(a)?;
    let bundle = load_bundle(a)?;
    if ctx.meta_path(&id).exists() || ctx.root.join(&id).exists() {
        return Err(format!("container {id} already exists"));
    }
    let mut meta = new_meta(&bundle, &id);
    meta["holder_pid"] = json!(std::process::id());
    meta["holder_start"] = json!(start_time(std::process::id() as i32).unwrap_or(0));
    ctx.first_meta(&id, &meta)?;
    let r =
        save_config(ctx, &id, bundle.spec()).and_then(|_| run_inner(ctx, a, &id, &bundle, &meta));
    ctx.remove_meta(&id);
    r
}

fn run_inner(ctx: &Ctx, a: &Args, id: &str, bundle: &berth::Bundle, meta: &Value) -> Res<i32> {
    let tty = bundle
        .spec()
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let mut c = builder_for(ctx, bundle, id, a)?
        .kill_with_owner(true)
        .create()
        .map_err(|e| format!("create container {id}: {e}"))?;
    close_preserved(a);
    if let Some(pf) = a.get("pid-file") {
        write_pid_file(pf, &c.pid().to_string())?;
    }
    if tty {
        if let (Some(cs), Some(m)) = (a.get("console-socket"), c.pty()) {
            send_fd(cs, m.as_raw_fd())?;
        }
    }
    let hooks = bundle.hooks().cloned();
    let mut st = state_json(ctx, id, meta);
    st["status"] = json!("creating");
    if let Some(h) = &hooks {
        #[allow(deprecated)]
        let r = run_hooks("prestart", h.prestart().as_ref(), &st)
            .and_then(|_| run_hooks("createRuntime", h.create_runtime().as_ref(), &st))
            .and_then(|_| run_hooks("createContainer", h.create_container().as_ref(), &st))
            .and_then(|_| {
                st["status"] = json!("created");
                run_hooks("startContainer", h.start_container().as_ref(), &st)
            });
        if let Err(e) = r {
            // The spec's lifecycle: error, stop, destroy, then poststop.
            let _ = c.destroy();
            st["status"] = json!("stopped");
            run_hooks_warn("poststop", h.poststop().as_ref(), &st);
            return Err(e);
        }
    }
    // Joined last before the start (see v1_join); left on any failure.
    let mut meta = meta.clone();
    if let Ok(st) = berth::State::load(Some(&ctx.root), id) {
        meta["v1_cgroups"] = json!(v1_join(id, &st));
    }
    let meta = &meta;
    let r = ctx
        .write_meta(id, meta)
        .and_then(|()| c.start().map_err(|e| format!("start container {id}: {e}")));
    if let Err(e) = r {
        let _ = c.destroy();
        v1_remove(&v1_recorded(meta));
        return Err(e);
    }
    if let Some(h) = &hooks {
        let st = poststart_state(ctx, id, meta);
        run_hooks_warn("poststart", h.poststart().as_ref(), &st);
    }
    let s = c.wait().map_err(|e| format!("wait for {id}: {e}"))?;
    let stopped = state_json(ctx, id, meta);
    c.destroy().map_err(|e| format!("destroy {id}: {e}"))?;
    v1_remove(&v1_recorded(meta));
    if let Some(h) = &hooks {
        run_hooks_warn("poststop", h.poststop().as_ref(), &stopped);
    }
    Ok(s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)))
}

fn cmd_state(ctx: &Ctx, a: &Args) -> Res<i32> {
    let id = a.id()?;
    let meta = ctx.load_meta(&id)?;
    let v = state_json(ctx, &id, &meta);
    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    Ok(0)
}

fn parse_signal(s: &str) -> Res<i32> {
    if let Ok(n) = s.parse::<i32>() {
        // 0 probes (kill(2)), as runc accepts.
        if (0..=64).contains(&n) {
            return Ok(n);
        }
        return Err(format!("invalid signal number {n}"));
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => return Err(format!("unknown signal {s:?}")),
    };
    Ok(n)
}

fn cgroup_procs(st: &berth::State) -> Vec<i32> {
    st.cgroup
        .as_ref()
        .and_then(|c| std::fs::read_to_string(c.join("cgroup.procs")).ok())
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// runc's message for a container whose init is gone: containerd's shim
/// (`checkKillError`) and conmon match this text and treat it as "already
/// finished", not as a failure.
const NOT_RUNNING: &str = "container not running";

/// `kill ID [SIGNAL]` as runc 1.1: a missing container is "does not
/// exist" (checked before the signal is parsed); a stopped one is
/// "container not running" (exit 1), except with `--all`, which then
/// succeeds with nothing to signal; signal 0 probes.
fn cmd_kill(ctx: &Ctx, a: &Args) -> Res<i32> {
    let id = a.id()?;
    let meta = ctx.load_meta(&id)?;
    let sig = parse_signal(a.pos.get(1).map(String::as_str).unwrap_or("TERM"))?;
    let all = a.bool("all") || a.bool("a");
    let (s, st) = status(ctx, &id, &meta);
    let st = match (s, st) {
        ("created" | "running" | "paused", Some(st)) => st,
        _ if all => return Ok(0),
        _ => return Err(format!("cannot kill container {id}: {NOT_RUNNING}")),
    };
    // Without a cgroup (rootless) --all signals the init, whose pid
    // namespace ends with it.
    if all && st.cgroup.is_some() {
        for p in cgroup_procs(&st) {
            // SAFETY: kill(2) on a pid read from the container's cgroup.
            unsafe { libc::kill(p, sig) };
        }
        return Ok(0);
    }
    match st.signal(sig) {
        Ok(()) => Ok(0),
        // It exited between the status check and the signal.
        Err(_) if !st.is_running() => Err(format!("cannot kill container {id}: {NOT_RUNNING}")),
        Err(e) => Err(format!("kill {id}: {e}")),
    }
}

fn cmd_delete(ctx: &Ctx, a: &Args) -> Res<i32> {
    let id = a.id()?;
    let force = a.bool("force") || a.bool("f");
    let meta = match ctx.load_meta(&id) {
        Ok(m) => m,
        Err(e) => {
            ctx.remove_meta(&id);
            if ctx.root.join(&id).join(berth::STATE_FILE).exists() {
                // berth state without metadata (interrupted create).
                let _ = berth::delete(Some(&ctx.root), &id);
                return Ok(0);
            }
            return if force { Ok(0) } else { Err(e) };
        }
    };
    let (s, st) = status(ctx, &id, &meta);
    if (s == "running" || s == "paused") && !force {
        // runc's words (engines match "not stopped").
        return Err(format!(
            "cannot delete container {id} that is not stopped: {s} (use --force)"
        ));
    }
    let stopped_state = {
        let mut v = state_json(ctx, &id, &meta);
        v["status"] = json!("stopped");
        v
    };
    if holder_alive(&meta) {
        let hp = meta["holder_pid"].as_i64().unwrap_or(0) as i32;
        // SAFETY: the holder's start time was just checked.
        unsafe { libc::kill(hp, libc::SIGKILL) };
        let t = Instant::now();
        while holder_alive(&meta) && t.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    if let Some(st) = st {
        if s == "paused" {
            if let Some(c) = &st.cgroup {
                let _ = std::fs::write(c.join("cgroup.freeze"), "0");
            }
        }
        berth::delete(Some(&ctx.root), &id).map_err(|e| format!("delete {id}: {e}"))?;
        v1_remove(&v1_recorded(&meta));
    }
    let hooks = snapshot_hooks(ctx, &id);
    ctx.remove_meta(&id);
    if let Some(h) = hooks {
        run_hooks_warn("poststop", h.poststop().as_ref(), &stopped_state);
    }
    Ok(0)
}

fn open_cgroup(id: &str, st: &berth::State) -> Res<berth_cgroups::Cgroup> {
    let cg = st
        .cgroup
        .as_ref()
        .ok_or_else(|| format!("container {id} has no cgroup"))?;
    let h = berth_cgroups::Hierarchy::discover().map_err(|e| e.to_string())?;
    let rel = cg.strip_prefix(h.mount_point()).unwrap_or(cg);
    berth_cgroups::Cgroup::open(&h, rel).map_err(|e| e.to_string())
}

/// The v1 hierarchies a hybrid host binds the controllers engines read
/// statistics from (containerd's shim and cAdvisor read the init's
/// `/proc/<pid>/cgroup`), paired with the cgroup2 controller that makes a
/// v1 group unnecessary.
const V1_STATS: [(berth_cgroups::Controller, &str); 3] = [
    (berth_cgroups::Controller::Memory, "memory"),
    (berth_cgroups::Controller::Pids, "pids"),
    (berth_cgroups::Controller::Cpu, "cpuacct"),
];

/// On a hybrid host, the container's own groups in the v1 hierarchies of
/// [`V1_STATS`] whose controller cgroup2 lacks (a v1 hierarchy has
/// `cgroup.procs` but no `cgroup.controllers`). A cgroupsPath (absolute,
/// the engine's choice) is used as is, as runc does; berth-oci's default
/// `<own>/berth-oci/<id>` nests under the runtime's own v1 group, so the
/// caller's v1 limits still hold.
fn v1_dirs(st: &berth::State) -> Vec<PathBuf> {
    let (Some(cg), Ok(h)) = (&st.cgroup, berth_cgroups::Hierarchy::discover()) else {
        return Vec::new();
    };
    let Ok(rel) = cg.strip_prefix(h.mount_point()) else {
        return Vec::new();
    };
    let own2 = h.own_cgroup_dir();
    let under_own = cg.strip_prefix(&own2).ok();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let have = h.root_controllers().ok();
    V1_STATS
        .iter()
        .filter(|(c, _)| !have.as_ref().is_some_and(|h| h.contains(*c)))
        .filter_map(|(_, name)| {
            let m = Path::new("/sys/fs/cgroup").join(name);
            if !m.join("cgroup.procs").exists() || m.join("cgroup.controllers").exists() {
                return None;
            }
            // `N:ctrl[,ctrl]:/path` of ours for this hierarchy.
            let mine = own.lines().find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
                ctrls
                    .split(',')
                    .any(|c| c == *name)
                    .then(|| path.trim_start_matches('/'))
            });
            Some(match (under_own, mine) {
                (Some(rest), Some(mine)) => m.join(mine).join(rest),
                _ => m.join(rel),
            })
        })
        .collect()
}

/// Move the container's processes (its cgroup2 `cgroup.procs`; their
/// children follow) into its own v1 groups ([`v1_dirs`]), made on
/// demand, so that the statistics engines read from v1 on a hybrid host
/// are the container's, never the session's (no limit is set there). A
/// failure is a warning: the container runs as before. Returns the groups
/// joined, for the metadata (`v1_cgroups`): `delete` and `events` use
/// these, whoever calls them.
fn v1_join(id: &str, st: &berth::State) -> Vec<PathBuf> {
    let pids = cgroup_procs(st);
    let mut joined = Vec::new();
    for d in v1_dirs(st) {
        let r = std::fs::create_dir_all(&d).and_then(|()| {
            pids.iter()
                .try_for_each(|p| std::fs::write(d.join("cgroup.procs"), p.to_string()))
        });
        match r {
            Ok(()) => joined.push(d),
            Err(e) => log(
                "warning",
                &format!("{id}: join v1 cgroup {}: {e}", d.display()),
            ),
        }
    }
    joined
}

/// Our own groups in the v1 hierarchies of `dirs` (from
/// `/proc/self/cgroup`).
fn v1_own_groups(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    dirs.iter()
        .filter_map(|d| {
            let name = d.strip_prefix("/sys/fs/cgroup").ok()?.components().next()?;
            let name = name.as_os_str().to_str()?;
            own.lines().find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
                ctrls.split(',').any(|c| c == name).then(|| {
                    Path::new("/sys/fs/cgroup")
                        .join(name)
                        .join(path.trim_start_matches('/'))
                })
            })
        })
        .collect()
}

/// Move this process into the v1 groups `dirs` (a failure is a warning).
fn v1_move_self(id: &str, dirs: &[PathBuf]) {
    for d in dirs {
        if let Err(e) = std::fs::write(d.join("cgroup.procs"), std::process::id().to_string()) {
            log(
                "warning",
                &format!("{id}: move to v1 cgroup {}: {e}", d.display()),
            );
        }
    }
}

/// The v1 groups recorded in a container's metadata (see [`v1_join`]),
/// only ones under `/sys/fs/cgroup`.
fn v1_recorded(meta: &Value) -> Vec<PathBuf> {
    meta["v1_cgroups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(PathBuf::from))
        .filter(|p| {
            p.starts_with("/sys/fs/cgroup")
                && !p.components().any(|c| c == std::path::Component::ParentDir)
        })
        .collect()
}

/// Remove the container's v1 groups once their processes are gone
/// (rmdir(2) is EBUSY while a task remains; the init was just killed).
fn v1_remove(dirs: &[PathBuf]) {
    for d in dirs {
        let t = Instant::now();
        while d.exists() && std::fs::remove_dir(d).is_err() && t.elapsed() < Duration::from_secs(2)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A number from a cgroup file (`max` and absent: `None`).
fn cg_num(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// `events --stats` data in runc 1.1's shape (`types.Stats`), from the
/// container's own groups only: cpu from its cgroup2 `cpu.stat`; memory
/// and pids from cgroup2 when it has the controller, else from the
/// container's v1 groups ([`v1_dirs`]); pids without either is the count
/// of its cgroup2 `cgroup.threads`. Never the runtime's or the host's.
fn stats_json(id: &str, st: &berth::State, meta: &Value) -> Res<Value> {
    let cg = open_cgroup(id, st)?;
    let s = cg.stats().map_err(|e| format!("stats of {id}: {e}"))?;
    let v1 = v1_recorded(meta);
    let v1_dir = |name: &str| {
        v1.iter()
            .find(|d| d.starts_with(Path::new("/sys/fs/cgroup").join(name)))
            .cloned()
    };
    let mut data = json!({"blkio": {}, "hugetlb": {}, "intel_rdt": {}, "network_interfaces": null});
    if let Some(c) = &s.cpu {
        data["cpu"] = json!({
            "usage": {"total": c.usage_usec * 1000, "kernel": c.system_usec * 1000, "user": c.user_usec * 1000},
            "throttling": {"periods": c.nr_periods, "throttled_periods": c.nr_throttled, "throttled_time": c.throttled_usec * 1000},
        });
    }
    if let Some(m) = &s.memory {
        let limit = cg_num(&cg.path().join("memory.max")).unwrap_or(u64::MAX);
        data["memory"] = json!({
            "usage": {"usage": m.current, "max": m.peak.unwrap_or(0), "limit": limit, "failcnt": m.events.max},
            "raw": m.stat,
        });
    } else if let Some(d) = v1_dir("memory") {
        let raw: serde_json::Map<String, Value> = std::fs::read_to_string(d.join("memory.stat"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter_map(|(k, v)| Some((k.to_string(), json!(v.parse::<u64>().ok()?))))
            .collect();
        data["memory"] = json!({
            "usage": {
                "usage": cg_num(&d.join("memory.usage_in_bytes")).unwrap_or(0),
                "max": cg_num(&d.join("memory.max_usage_in_bytes")).unwrap_or(0),
                "limit": cg_num(&d.join("memory.limit_in_bytes")).unwrap_or(u64::MAX),
                "failcnt": cg_num(&d.join("memory.failcnt")).unwrap_or(0),
            },
            "cache": raw.get("cache").cloned().unwrap_or(json!(0)),
            "raw": raw,
        });
    }
    data["pids"] = if let Some(p) = &s.pids {
        json!({"current": p.current, "limit": cg_num(&cg.path().join("pids.max")).unwrap_or(0)})
    } else if let Some(d) = v1_dir("pids") {
        json!({"current": cg_num(&d.join("pids.current")).unwrap_or(0), "limit": cg_num(&d.join("pids.max")).unwrap_or(0)})
    } else {
        let n = cg.threads().map(|t| t.len()).unwrap_or(0);
        json!({"current": n, "limit": 0})
    };
    Ok(json!({"type": "stats", "id": id, "data": data}))
}

/// `events [--stats] [--interval D] ID` as runc 1.1: `--stats` prints one
/// stats event; otherwise a stats event every interval (default 5s; `5s`,
/// `500ms` or seconds) until the container stops. A stopped container is
/// "container not running".
fn cmd_events(ctx: &Ctx, a: &Args) -> Res<i32> {
    let id = a.id()?;
    let meta = ctx.load_meta(&id)?;
    let interval = match a.get("interval").unwrap_or("5s") {
        v if v.ends_with("ms") => v
            .trim_end_matches("ms")
            .parse()
            .ok()
            .map(Duration::from_millis),
        v => v
            .trim_end_matches('s')
            .parse()
            .ok()
            .map(Duration::from_secs_f64),
    }
    .filter(|d| !d.is_zero())
    .ok_or_else(|| "--interval: a positive duration expected (5s, 500ms)".to_string())?;
    loop {
        let (s, st) = status(ctx, &id, &meta);
        let st = match (s, st) {
            ("created" | "running" | "paused", Some(st)) => st,
            _ if !a.bool("stats") => return Ok(0),
            _ => return Err(format!("events of container {id}: {NOT_RUNNING}")),
        };
        println!("{}", stats_json(&id, &st, &meta)?);
        if a.bool("stats") {
            return Ok(0);
        }
        std::thread::sleep(interval);
    }
}

fn cmd_pause_resume(ctx: &Ctx, a: &Args, pause: bool) -> Res<i32> {
    let id = a.id()?;
    let meta = ctx.load_meta(&id)?;
    let (s, st) = status(ctx, &id, &meta);
    let want = if pause { "running" } else { "paused" };
    let st = match st {
        Some(st) if s == want => st,
        // runc's classes: "container not running" / "container not paused".
        _ => {
            return Err(format!(
                "cannot {} container {id}: it is {s}: container not {want}",
                if pause { "pause" } else { "resume" }
            ))
        }
    };
    let cg = open_cgroup(&id, &st)?;
    if pause {
        cg.freeze().map_err(|e| format!("pause {id}: {e}"))?;
    } else {
        cg.thaw().map_err(|e| format!("resume {id}: {e}"))?;
    }
    Ok(0)
}

/// `ps [--format table|json] ID [PS_ARGS...]` as runc 1.1: `ps(1)` with
/// the given arguments (default `-ef`), its header and the lines whose
/// `PID` column is one of the container's processes (its cgroup's
/// `cgroup.procs`); `--format json` is the list of those pids.
fn cmd_ps(ctx: &Ctx, a: &Args) -> Res<i32> {
    let id = a.id()?;
    let meta = ctx.load_meta(&id)?;
    let (_, st) = status(ctx, &id, &meta);
    let pids = st.as_ref().map(cgroup_procs).unwrap_or_default();
    match a.get("format").or(a.get("f")).unwrap_or("table") {
        "json" => {
            println!("{}", json!(pids));
            return Ok(0);
        }
        "table" => {}
        other => return Err(format!("invalid format option {other:?}: table or json")),
    }
    let ps_args: Vec<&str> = match a.pos.get(1..) {
        Some(rest) if !rest.is_empty() => rest.iter().map(String::as_str).collect(),
        _ => vec!["-ef"],
    };
    let out = Command::new("ps")
        .args(&ps_args)
        .output()
        .map_err(|e| format!("run ps {ps_args:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ps {ps_args:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|c| c == "PID")
        .ok_or_else(|| format!("ps {ps_args:?}: no PID column in {header:?}"))?;
    println!("{header}");
    for l in lines {
        let pid = l
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{l}");
        }
    }
    Ok(0)
}

/// runc 1.1's `update` flags as a `linux.resources` document (only the
/// flags given; sizes take k/m/g suffixes, `-1` is unlimited).
fn update_flags(a: &Args) -> Res<Value> {
    fn num(flag: &str, v: &str, sized: bool) -> Res<i64> {
        let t = v.trim().to_ascii_lowercase();
        let t = t.strip_suffix('b').unwrap_or(&t);
        let (n, mul) = match t.chars().last() {
            Some('k') if sized => (&t[..t.len() - 1], 1 << 10),
            Some('m') if sized => (&t[..t.len() - 1], 1 << 20),
            Some('g') if sized => (&t[..t.len() - 1], 1 << 30),
            _ => (t, 1),
        };
        n.parse::<i64>()
            .ok()
            .and_then(|n| if n < 0 { Some(n) } else { n.checked_mul(mul) })
            .ok_or_else(|| format!("--{flag} {v:?}: a number expected"))
    }
    let mut r = json!({});
    let table: [(&str, &str, &str, bool); 11] = [
        ("memory", "memory", "limit", true),
        ("memory-reservation", "memory", "reservation", true),
        ("memory-swap", "memory", "swap", true),
        ("cpu-share", "cpu", "shares", false),
        ("cpu-quota", "cpu", "quota", false),
        ("cpu-period", "cpu", "period", false),
        ("cpu-rt-runtime", "cpu", "realtimeRuntime", false),
        ("cpu-rt-period", "cpu", "realtimePeriod", false),
        ("blkio-weight", "blockIO", "weight", false),
        ("pids-limit", "pids", "limit", false),
        ("kernel-memory", "memory", "kernel", true),
    ];
    for (flag, group, key, sized) in table {
        if let Some(v) = a.get(flag) {
            r[group][key] = json!(num(flag, v, sized)?);
        }
    }
    for (flag, key) in [("cpuset-cpus", "cpus"), ("cpuset-mems", "mems")] {
        if let Some(v) = a.get(flag) {
            r["cpu"][key] = json!(v);
        }
    }
    Ok(r)
}

fn cmd_update(ctx: &Ctx, a: &Args) -> Res<i32> {
    let id = a.id()?;
    let meta = ctx.load_meta(&id)?;
    let (s, st) = status(ctx, &id, &meta);
    let Some(st) = st.filter(|_| s != "stopped") else {
        return Err(format!("cannot update container {id}: it is {s}"));
    };
    let Some(src) = a.get("resources").or(a.get("r")) else {
        let r = update_flags(a)?;
        if r.as_object().is_some_and(|o| o.is_empty()) {
            return Ok(0);
        }
        let r: oci_spec::runtime::LinuxResources =
            serde_json::from_value(r).map_err(|e| format!("parse resources: {e}"))?;
        let res = berth::Resources::from_oci(&r).map_err(|e| e.to_string())?;
        let cg = open_cgroup(&id, &st)?;
        cg.apply(&res).map_err(|e| format!("update {id}: {e}"))?;
        return Ok(0);
    };
    let text = if src == "-" {
        let mut t = String::new();
        std::io::stdin()
            .read_to_string(&mut t)
            .map_err(|e| format!("read resources from stdin: {e}"))?;
        t
    } else {
        std::fs::read_to_string(src).map_err(|e| format!("read {src}: {e}"))?
    };
    let r: oci_spec::runtime::LinuxResources =
        serde_json::from_str(&text).map_err(|e| format!("parse resources: {e}"))?;
    let res = berth::Resources::from_oci(&r).map_err(|e| e.to_string())?;
    let cg = open_cgroup(&id, &st)?;
    cg.apply(&res).map_err(|e| format!("update {id}: {e}"))?;
    Ok(0)
}

fn cmd_list(ctx: &Ctx, a: &Args) -> Res<i32> {
    let mut ids: Vec<String> = std::fs::read_dir(ctx.meta_dir())
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.strip_suffix(".json")
                        .filter(|s| !s.starts_with('.'))
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    let json_out = a.get("format").or(a.get("f")) == Some("json");
    let mut rows = Vec::new();
    for id in &ids {
        let Ok(meta) = ctx.load_meta(id) else {
            continue;
        };
        rows.push(state_json(ctx, id, &meta));
    }
    if a.bool("quiet") || a.bool("q") {
        for r in &rows {
            println!("{}", r["id"].as_str().unwrap_or(""));
        }
    } else if json_out {
        println!("{}", Value::Array(rows));
    } else {
        println!("{:<20} {:>8} {:<10} BUNDLE", "ID", "PID", "STATUS");
        for r in &rows {
            println!(
                "{:<20} {:>8} {:<10} {}",
                r["id"].as_str().unwrap_or(""),
                r["pid"],
                r["status"].as_str().unwrap_or(""),
                r["bundle"].as_str().unwrap_or("")
            );
        }
    }
    Ok(0)
}

fn cmd_features() -> Res<i32> {
    let v = json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.3.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": ["ro", "rw", "bind", "rbind", "nosuid", "nodev", "noexec",
            "private", "rprivate", "shared", "rshared", "slave", "rslave",
            "size", "mode", "strictatime", "relatime", "noatime"],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "capabilities": berth::CapSet::all().names(),
            "cgroup": {"v1": false, "v2": true, "systemd": false, "systemdUser": false},
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP", "SCMP_ACT_LOG"],
                "operators": ["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"],
                "archs": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
                "knownFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
                "supportedFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
            },
            "apparmor": {"enabled": true},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": false}}
        },
        // The spec leaves annotation keys to the runtime (runc's are
        // org.opencontainers.runc.*): ours name berth-oci.
        "annotations": {"org.berth.oci.version": env!("CARGO_PKG_VERSION")}
    });
    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    Ok(0)
}

/// Run a process in a running container, through berth's exec path
/// ([`berth::Exec::in_state`]): cloned into the container's cgroup,
/// non-dumpable until its `execve` while it joins the init's namespaces,
/// no fd of ours but stdio and `--preserve-fds` ones reaching it. Its
/// settings come from the configuration snapshot taken at create.
fn cmd_exec(ctx: &Ctx, a: &Args) -> Res<i32> {
    let id = a.id()?;
    let meta = ctx.load_meta(&id)?;
    let (s, st) = status(ctx, &id, &meta);
    let st = match st {
        Some(st) if s == "running" => st,
        _ => {
            return Err(format!(
                "cannot exec in container {id}: it is {s}, not running"
            ))
        }
    };
    // The exec'd process inherits our v1 groups: make them the
    // container's while it is spawned (hybrid host; see v1_join), as
    // runc's exec joins all; we go back to ours right after, so that only
    // the container's processes are left in them for delete.
    let v1 = v1_recorded(&meta);
    let ours = v1_own_groups(&v1);
    v1_move_self(id.as_str(), &v1);
    let spec = load_config(ctx, &id)?;
    let base = spec.process().clone();
    let mut args: Vec<String> = a.pos[1..].to_vec();
    let mut env: Vec<String> = base
        .as_ref()
        .and_then(|p| p.env().clone())
        .unwrap_or_default();
    let mut cwd = base
        .as_ref()
        .map(|p| p.cwd().display().to_string())
        .unwrap_or_else(|| "/".into());
    let (mut uid, mut gid) = base
        .as_ref()
        .map(|p| (p.user().uid(), p.user().gid()))
        .unwrap_or((0, 0));
    let mut tty = a.bool("tty") || a.bool("t");
    // The process whose security settings (capabilities, rlimits,
    // noNewPrivileges, apparmor, additional gids) the exec'd process gets:
    // the --process file, else the container's own process.
    let mut proc_json = serde_json::to_value(&base).unwrap_or(Value::Null);
    if let Some(pf) = a.get("process").or(a.get("p")) {
        let text = std::fs::read_to_string(pf).map_err(|e| format!("read {pf}: {e}"))?;
        let p: oci_spec::runtime::Process =
            serde_json::from_str(&text).map_err(|e| format!("parse {pf}: {e}"))?;
        proc_json = serde_json::from_str(&text).map_err(|e| format!("parse {pf}: {e}"))?;
        args = p.args().clone().unwrap_or_default();
        env = p.env().clone().unwrap_or_default();
        cwd = p.cwd().display().to_string();
        uid = p.user().uid();
        gid = p.user().gid();
        tty = p.terminal().unwrap_or(false);
    }
    if args.is_empty() {
        return Err("exec needs a command (args or --process)".into());
    }
    env.extend(a.all("env"));
    env.extend(a.all("e"));
    if let Some(c) = a.get("cwd") {
        cwd = c.to_string();
    }
    if let Some(u) = a.get("user").or(a.get("u")) {
        let (us, gs) = u.split_once(':').unwrap_or((u, ""));
        uid = us
            .parse()
            .map_err(|_| format!("--user {u}: numeric uid[:gid] expected"))?;
        if !gs.is_empty() {
            gid = gs
                .parse()
                .map_err(|_| format!("--user {u}: numeric uid[:gid] expected"))?;
        }
    }
    let console = a.get("console-socket");
    if tty && console.is_none() {
        return Err("--tty needs --console-socket".into());
    }
    if proc_json.is_object() {
        if a.bool("no-new-privs") {
            proc_json["noNewPrivileges"] = json!(true);
        }
        if let Some(ap) = a.get("apparmor") {
            proc_json["apparmorProfile"] = json!(ap);
        }
        if a.get("process-label").is_some() {
            return Err("--process-label: SELinux labels are not supported by berth-oci".into());
        }
        // A process without capabilities gets none, as the container's
        // init (bundle.rs): never the runtime's own.
        if proc_json["capabilities"].is_null() {
            proc_json["capabilities"] = json!({});
        }
        add_exec_caps(&mut proc_json, a.all("cap").into_iter().chain(a.all("c")));
    }
    // The container's seccomp profile and the process' security settings,
    // applied in the child just before execve.
    let policy = {
        let mut spec = serde_json::to_value(&spec).map_err(|e| e.to_string())?;
        if proc_json.is_object() {
            proc_json["user"]["uid"] = json!(uid);
            proc_json["user"]["gid"] = json!(gid);
            proc_json["args"] = json!(args);
            proc_json["cwd"] = json!(cwd);
            spec["process"] = proc_json;
        }
        let spec: oci_spec::runtime::Spec =
            serde_json::from_value(spec).map_err(|e| format!("exec process: {e}"))?;
        berth_security::SecurityPolicy::from_oci(&spec)
            .map_err(|e| format!("exec security policy: {e}"))?
    };
    let env = env.iter().filter_map(|e| {
        e.split_once('=')
            .map(|(k, v)| (k.to_string(), v.to_string()))
    });
    let mut ex = berth::Exec::in_state(&st, args.iter().cloned())
        .map_err(|e| format!("exec in {id}: {e}"))?
        .envs(env)
        .current_dir(&cwd)
        .policy(policy);
    for fd in preserved_fds(a)? {
        ex = ex.keep_fd(fd);
    }
    let spawn_err = |e: berth::Error| format!("exec {:?} in {id}: {e}", args[0]);
    let mut child = match console {
        // With a tty the exec'd process opens its pty in the container's
        // own devpts (as runc's exec does) and its master comes back to us;
        // we pass it on over the console socket.
        Some(cs) if tty => {
            let (child, master) = ex.tty(true).spawn_tty().map_err(spawn_err)?;
            send_fd(cs, master.as_raw_fd())?;
            child
        }
        _ => ex.spawn().map_err(spawn_err)?,
    };
    v1_move_self(id.as_str(), &ours);
    if let Some(pf) = a.get("pid-file") {
        write_pid_file(pf, &child.pid().to_string())?;
    }
    if a.bool("detach") || a.bool("d") {
        // Let it run on without us.
        drop(child.into_pidfd());
        return Ok(0);
    }
    let s = child.wait().map_err(|e| format!("wait: {e}"))?;
    Ok(s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)))
}

/// `exec --cap X`: add X to the bounding, effective and permitted sets
/// only. Never to inheritable or ambient: an unprivileged exec'd process
/// would keep them across `execve` (runc CVE-2022-29162).
fn add_exec_caps(proc_json: &mut Value, caps: impl Iterator<Item = String>) {
    for cap in caps {
        let cap = if cap.starts_with("CAP_") {
            cap
        } else {
            format!("CAP_{cap}")
        };
        for set in ["bounding", "effective", "permitted"] {
            let list = &mut proc_json["capabilities"][set];
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

/// Set on the re-exec from the protected copy: if it is somehow not seen
/// as protected, fail instead of re-executing forever.
const SEALED_ENV: &str = "_BERTH_OCI_SEALED";

/// Every seal: nothing can ever write, grow, shrink or unseal the copy.
const ALL_SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// CVE-2019-5736: the commands that put a berth-oci process into a
/// container (`create`, `run`, `exec`) run from a binary no process can
/// ever open for writing, so a container process that reaches
/// `/proc/<pid>/exe` of one never finds a writable host file behind it
/// (the exec path is also non-dumpable; this is the second wall). As
/// runc 1.2, first choice is a read-only bind mount of the binary
/// ([`ro_bind_of_self`]: no copy, some µs), and the fallback (not root) a
/// sealed memfd copy ([`sealed_copy_of_self`]: costs a copy of the binary
/// per command). Already running from either (a read-only mount per
/// fstatvfs(3), or every seal per `F_GET_SEALS`): nothing to do.
fn run_from_sealed_copy() -> Res<()> {
    let exe =
        std::fs::File::open("/proc/self/exe").map_err(|e| format!("open /proc/self/exe: {e}"))?;
    // SAFETY: fcntl on our own fd; EINVAL for a file that is not a memfd.
    let seals = unsafe { libc::fcntl(exe.as_raw_fd(), libc::F_GET_SEALS) };
    // SAFETY: fstatvfs into a zeroed struct.
    let mut vfs: libc::statvfs = unsafe { std::mem::zeroed() };
    let ro = unsafe { libc::fstatvfs(exe.as_raw_fd(), &mut vfs) } == 0
        && vfs.f_flag & libc::ST_RDONLY != 0;
    if ro || (seals >= 0 && seals & ALL_SEALS == ALL_SEALS) {
        std::env::remove_var(SEALED_ENV);
        return Ok(());
    }
    if std::env::var_os(SEALED_ENV).is_some() {
        return Err(
            "re-executed from a protected copy of berth-oci, yet /proc/self/exe is writable".into(),
        );
    }
    let fd = match ro_bind_of_self() {
        Ok(fd) => fd,
        Err(e) => {
            log(
                "debug",
                &format!("{e}; falling back to a sealed memfd copy"),
            );
            sealed_copy_of_self(&exe)?
        }
    };
    let cstr = |s: &std::ffi::OsStr| {
        std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(s))
            .map_err(|_| "NUL in an argument or the environment".to_string())
    };
    let argv = std::env::args_os()
        .map(|a| cstr(&a))
        .collect::<Res<Vec<_>>>()?;
    let mut envp = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            cstr(&kv)
        })
        .collect::<Res<Vec<_>>>()?;
    envp.push(cstr(std::ffi::OsStr::new(&format!("{SEALED_ENV}=1")))?);
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|c| c.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    // SAFETY: NULL-terminated arrays of C strings that outlive the call;
    // execveat(2) with AT_EMPTY_PATH runs the file behind `fd` (an O_PATH
    // fd is fine, Linux 3.19); returns only on failure.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            argv_p.as_ptr(),
            envp_p.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Err(format!(
        "execveat the protected copy of berth-oci: {}",
        std::io::Error::last_os_error()
    ))
}

/// A detached, read-only bind mount of our own binary: `open_tree(2)`
/// with `OPEN_TREE_CLONE` on `/proc/self/exe` (Linux 5.2), then
/// `mount_setattr(2)` `MOUNT_ATTR_RDONLY` (5.12). It belongs to no mount
/// namespace and lives as long as a file refers to it; a write open of
/// the binary through it is EROFS, and only CAP_SYS_ADMIN in the host's
/// user namespace could make it writable again. Needs CAP_SYS_ADMIN.
fn ro_bind_of_self() -> Res<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const MOUNT_ATTR_RDONLY: u64 = 1;
    const MOUNT_ATTR_NOSUID: u64 = 2;
    const MOUNT_ATTR_NODEV: u64 = 4;
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    // SAFETY: a C string literal; the fd is owned right away.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c"/proc/self/exe".as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(format!(
            "open_tree(/proc/self/exe, OPEN_TREE_CLONE): {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: a fresh fd.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr on our detached mount with a valid struct.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(format!(
            "mount_setattr(MOUNT_ATTR_RDONLY) on a clone of /proc/self/exe: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(fd)
}

/// A copy of our binary in a memfd with every seal (runc's way before
/// 1.2): memfd_create(2) `MFD_ALLOW_SEALING` (Linux 3.17; `MFD_EXEC`,
/// 6.3, asked for so `vm.memfd_noexec=1` hosts still run it), the copy by
/// sendfile(2), `F_ADD_SEALS` (fcntl(2)).
fn sealed_copy_of_self(exe: &std::fs::File) -> Res<OwnedFd> {
    let err = |what: &str| format!("{what}: {}", std::io::Error::last_os_error());
    const MFD_EXEC: libc::c_uint = 0x10;
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: a C string literal; the fd is owned right away.
    let mut fd = unsafe { libc::memfd_create(c"berth-oci".as_ptr(), flags | MFD_EXEC) };
    if fd < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // Before Linux 6.3 MFD_EXEC is unknown (and memfds are executable).
        // SAFETY: as above.
        fd = unsafe { libc::memfd_create(c"berth-oci".as_ptr(), flags) };
    }
    if fd < 0 {
        return Err(err("memfd_create for a sealed copy of berth-oci"));
    }
    // SAFETY: a fresh fd.
    let mfd = unsafe { OwnedFd::from_raw_fd(fd) };
    loop {
        // SAFETY: sendfile between two fds we own, from the current offset.
        let n = unsafe {
            libc::sendfile(
                mfd.as_raw_fd(),
                exe.as_raw_fd(),
                std::ptr::null_mut(),
                1 << 30,
            )
        };
        match n {
            0 => break,
            n if n < 0 => return Err(err("copy /proc/self/exe into the memfd")),
            _ => {}
        }
    }
    // SAFETY: fcntl on our own fd.
    if unsafe { libc::fcntl(mfd.as_raw_fd(), libc::F_ADD_SEALS, ALL_SEALS) } < 0 {
        return Err(err("seal the copy of berth-oci"));
    }
    Ok(mfd)
}

// ---------------------------------------------------------------- main

const USAGE: &str = "usage: berth-oci [--root DIR] [--log FILE] [--log-format text|json] [--debug] \
[--allow-unenforced-limits] COMMAND [OPTIONS] ID\ncommands: create start run state kill delete exec ps events pause resume update list features";

fn real_main() -> Res<i32> {
    record_start_fds();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    // Global flags come before the command.
    let mut i = 0;
    let mut global = Vec::new();
    while i < argv.len() && argv[i].starts_with('-') {
        let a = &argv[i];
        global.push(a.clone());
        let name = a.trim_start_matches('-');
        if ["root", "log", "log-format", "criu", "rootless"].contains(&name) {
            i += 1;
            if let Some(v) = argv.get(i) {
                global.push(v.clone());
            }
        }
        i += 1;
    }
    let g = Args::parse(
        &global,
        &["root", "log", "log-format", "criu", "rootless"],
        &[
            "debug",
            "systemd-cgroup",
            "version",
            "v",
            "help",
            "h",
            "allow-unenforced-limits",
        ],
        false,
    )?;
    ALLOW_UNENFORCED.store(
        g.bool("allow-unenforced-limits")
            || std::env::var(ALLOW_UNENFORCED_ENV).is_ok_and(|v| v == "1"),
        std::sync::atomic::Ordering::Relaxed,
    );
    // As runc (O_CREAT|O_APPEND, 0644), but never through a symlink.
    let file = match g.get("log") {
        Some(p) => {
            use std::os::unix::fs::OpenOptionsExt;
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o644)
                .custom_flags(libc::O_NOFOLLOW)
                .open(p)
                .map_err(|e| match e.raw_os_error() {
                    Some(libc::ELOOP) => format!("open log {p}: is a symbolic link (refused)"),
                    _ => format!("open log {p}: {e}"),
                })?;
            Some(f)
        }
        None => None,
    };
    let json_fmt = match g.get("log-format").unwrap_or("text") {
        "json" => true,
        "text" => false,
        other => return Err(format!("--log-format {other:?}: text or json expected")),
    };
    *log_mut() = Some(Log {
        file,
        json: json_fmt,
        debug: g.bool("debug"),
    });
    if g.bool("version") || g.bool("v") {
        println!(
            "berth-oci version {}\nspec: {OCI_VERSION}",
            env!("CARGO_PKG_VERSION")
        );
        return Ok(0);
    }
    if g.bool("help") || g.bool("h") {
        println!("{USAGE}");
        return Ok(0);
    }
    if g.bool("systemd-cgroup") {
        return Err("--systemd-cgroup is not supported by berth-oci (cgroupfs driver only)".into());
    }
    let ctx = Ctx {
        root: PathBuf::from(g.get("root").unwrap_or(DEFAULT_ROOT)),
    };
    let Some(cmd) = argv.get(i) else {
        return Err(USAGE.into());
    };
    let rest = &argv[i + 1..];
    if matches!(cmd.as_str(), "create" | "run" | "exec") {
        run_from_sealed_copy()?;
    }
    log("debug", &format!("command {cmd} {rest:?}"));
    let create_v = ["bundle", "b", "pid-file", "console-socket", "preserve-fds"];
    let create_b = [
        "no-pivot",
        "no-new-keyring",
        "detach",
        "d",
        "keep",
        "no-subreaper",
    ];
    match cmd.as_str() {
        "create" => cmd_create(&ctx, &Args::parse(rest, &create_v, &create_b, false)?),
        "run" => cmd_run(&ctx, &Args::parse(rest, &create_v, &create_b, false)?),
        "start" => cmd_start(&ctx, &Args::parse(rest, &[], &[], false)?),
        "state" => cmd_state(&ctx, &Args::parse(rest, &[], &[], false)?),
        "kill" => cmd_kill(&ctx, &Args::parse(rest, &[], &["all", "a"], false)?),
        "delete" => cmd_delete(&ctx, &Args::parse(rest, &[], &["force", "f"], false)?),
        "pause" => cmd_pause_resume(&ctx, &Args::parse(rest, &[], &[], false)?, true),
        "resume" => cmd_pause_resume(&ctx, &Args::parse(rest, &[], &[], false)?, false),
        "ps" => cmd_ps(&ctx, &Args::parse(rest, &["format", "f"], &[], true)?),
        "update" => cmd_update(
            &ctx,
            &Args::parse(
                rest,
                &[
                    "resources",
                    "r",
                    "memory",
                    "memory-reservation",
                    "memory-swap",
                    "kernel-memory",
                    "cpu-share",
                    "cpu-quota",
                    "cpu-period",
                    "cpu-rt-runtime",
                    "cpu-rt-period",
                    "cpuset-cpus",
                    "cpuset-mems",
                    "blkio-weight",
                    "pids-limit",
                ],
                &[],
                false,
            )?,
        ),
        "list" => cmd_list(
            &ctx,
            &Args::parse(rest, &["format", "f"], &["quiet", "q"], false)?,
        ),
        "features" => cmd_features(),
        "events" => cmd_events(&ctx, &Args::parse(rest, &["interval"], &["stats"], false)?),
        "exec" => cmd_exec(
            &ctx,
            &Args::parse(
                rest,
                &[
                    "process",
                    "p",
                    "pid-file",
                    "console-socket",
                    "cwd",
                    "env",
                    "e",
                    "user",
                    "u",
                    "process-label",
                    "apparmor",
                    "cap",
                    "c",
                    "preserve-fds",
                ],
                &["detach", "d", "tty", "t", "no-new-privs"],
                true,
            )?,
        ),
        other => Err(format!("unknown command {other:?}\n{USAGE}")),
    }
}

fn main() {
    let code = match real_main() {
        Ok(c) => c,
        Err(e) => {
            log("error", &e);
            eprintln!("berth-oci: {e}");
            1
        }
    };
    std::process::exit(code);
}
