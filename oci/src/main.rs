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
//!   `pause` of a created container freezes it, as runc's does; `state`
//!   says `paused`, and after `resume` it is `created` again.
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
//!
//! # Layout
//!
//! `main` only dispatches: [`cli`] parses the command line, [`cmd`] has
//! one module per subcommand, and they share [`record`] (the typed
//! container record and OCI state under `--root`), [`error`], [`log`],
//! [`signal`], [`hooks`], [`builder`] (bundle to container builder),
//! [`cgroup`] and [`v1`] (the hybrid host's v1 accounting groups),
//! [`reexec`] (read-only bind / sealed memfd of the binary), [`sock`]
//! (sockets under deep paths, the console socket), [`fds`] and
//! [`pidfile`].
#![deny(missing_docs)]
#![warn(clippy::missing_docs_in_private_items)]

mod builder;
mod cgroup;
mod cli;
mod cmd;
mod error;
mod fds;
mod hooks;
mod log;
mod pidfile;
mod record;
mod reexec;
mod signal;
mod sock;
mod v1;

use cli::{Args, Global, USAGE};
use error::{Error, Result};
use record::{Ctx, OCI_VERSION};

/// Parse the global flags, set up the log, and run the command.
fn real_main() -> Result<i32> {
    fds::record_start_fds();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let g = Global::parse(&argv)?;
    let file = g.log().map(log::open).transpose()?;
    log::init(file, g.log_json()?, g.flag("debug"));
    if g.flag("version") || g.flag("v") {
        println!(
            "berth-oci version {}\nspec: {OCI_VERSION}",
            env!("CARGO_PKG_VERSION")
        );
        return Ok(0);
    }
    if g.flag("help") || g.flag("h") {
        println!("{USAGE}");
        return Ok(0);
    }
    if g.flag("systemd-cgroup") {
        return Err(Error::Config(
            "--systemd-cgroup is not supported by berth-oci (cgroupfs driver only)".into(),
        ));
    }
    let ctx = Ctx {
        root: g.root(),
        allow_unenforced: g.allow_unenforced(),
    };
    let Some((cmd, rest)) = g.rest.split_first() else {
        return Err(Error::Usage(USAGE.into()));
    };
    if matches!(cmd.as_str(), "create" | "run" | "exec") {
        reexec::run_from_sealed_copy()?;
    }
    log::debug(&format!("command {cmd} {rest:?}"));
    if cmd == "features" {
        return cmd::features::cmd();
    }
    let a = Args::for_command(cmd, rest)?;
    match cmd.as_str() {
        "create" => cmd::create::cmd(&ctx, &a),
        "run" => cmd::run::cmd(&ctx, &a),
        "start" => cmd::start::cmd(&ctx, &a),
        "state" => cmd::state::cmd(&ctx, &a),
        "kill" => cmd::kill::cmd(&ctx, &a),
        "delete" => cmd::delete::cmd(&ctx, &a),
        "pause" => cmd::pause::cmd(&ctx, &a, true),
        "resume" => cmd::pause::cmd(&ctx, &a, false),
        "ps" => cmd::ps::cmd(&ctx, &a),
        "update" => cmd::update::cmd(&ctx, &a),
        "list" => cmd::list::cmd(&ctx, &a),
        "events" => cmd::events::cmd(&ctx, &a),
        "exec" => cmd::exec::cmd(&ctx, &a),
        other => Err(Error::Usage(format!("unknown command {other:?}\n{USAGE}"))),
    }
}

/// Run, print an error as runc does (`berth-oci: MESSAGE` on stderr, and
/// in the log), exit with the command's status (1 on an error).
fn main() {
    let code = match real_main() {
        Ok(c) => c,
        Err(e) => {
            log::log(log::Level::Error, &e.to_string());
            eprintln!("berth-oci: {e}");
            1
        }
    };
    std::process::exit(code);
}
