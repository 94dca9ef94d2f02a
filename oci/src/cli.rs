//! runc 1.1's command line: global flags before the command, then the
//! command's own flags and positionals (`--flag value`, `--flag=value`,
//! `-f value`, booleans `--flag` or `--flag=false`, `--` ends flags).

use std::path::PathBuf;

use crate::error::{Error, Result};

/// The state root when `--root` is not given (runc's is `/run/runc`).
pub const DEFAULT_ROOT: &str = "/run/berth-oci";

/// The environment variable that allows unenforced limits, as the global
/// flag `--allow-unenforced-limits` does.
pub const ALLOW_UNENFORCED_ENV: &str = "BERTH_OCI_ALLOW_UNENFORCED_LIMITS";

/// What `--help` prints (and a missing or unknown command).
pub const USAGE: &str = "usage: berth-oci [--root DIR] [--log FILE] [--log-format text|json] [--debug] \
[--allow-unenforced-limits] COMMAND [OPTIONS] ID\ncommands: create start run state kill delete exec ps events pause resume update list features";

/// Global flags that take a value.
const GLOBAL_VALUED: [&str; 5] = ["root", "log", "log-format", "criu", "rootless"];

/// Global boolean flags.
const GLOBAL_BOOLEAN: [&str; 7] = [
    "debug",
    "systemd-cgroup",
    "version",
    "v",
    "help",
    "h",
    "allow-unenforced-limits",
];

/// A command's parsed flags and positionals.
pub struct Args {
    /// `(name, value)` in order; booleans have `"true"` (or their inline value).
    flags: Vec<(String, String)>,
    /// The positionals: the container id first.
    pub pos: Vec<String>,
}

impl Args {
    /// Parse `argv` given the flags that take a value; the rest are
    /// boolean. With `stop_at_pos`, everything after the first positional
    /// is positional (exec's command).
    pub fn parse(
        argv: &[String],
        valued: &[&str],
        boolean: &[&str],
        stop_at_pos: bool,
    ) -> Result<Args> {
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
            if !(a.starts_with('-') && a.len() > 1 && (!stop_at_pos || pos.is_empty())) {
                pos.push(a.clone());
                continue;
            }
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
                            .ok_or_else(|| Error::Usage(format!("flag --{name} needs a value")))?;
                        i += 1;
                        v
                    }
                };
                flags.push((name, v));
            } else if boolean.contains(&name.as_str()) {
                flags.push((name, inline.unwrap_or_else(|| "true".into())));
            } else {
                return Err(Error::Usage(format!("unknown flag {a}")));
            }
        }
        Ok(Args { flags, pos })
    }

    /// Parse the arguments of `cmd` with its flags ([`command_flags`]).
    pub fn for_command(cmd: &str, argv: &[String]) -> Result<Args> {
        let (valued, boolean, stop_at_pos) = command_flags(cmd)
            .ok_or_else(|| Error::Usage(format!("unknown command {cmd:?}\n{USAGE}")))?;
        Args::parse(argv, valued, boolean, stop_at_pos)
    }

    /// The last value of flag `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The last value of the first of `names` given (a flag and its short
    /// form: `["resources", "r"]`).
    pub fn get_any(&self, names: &[&str]) -> Option<&str> {
        names.iter().find_map(|n| self.get(n))
    }

    /// Every value of flag `name`, in order (`--env`, `--cap`).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.flags
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Whether boolean flag `name` is set (and not `=false`).
    pub fn bool(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| v != "false")
    }

    /// Whether any of `names` is set (a flag and its short form).
    pub fn any(&self, names: &[&str]) -> bool {
        names.iter().any(|n| self.bool(n))
    }

    /// The container id: the first positional, checked by
    /// [`berth::validate_id`].
    pub fn id(&self) -> Result<String> {
        let id = self
            .pos
            .first()
            .cloned()
            .ok_or_else(|| Error::Usage("container id is required".to_string()))?;
        berth::validate_id(&id)?;
        Ok(id)
    }
}

/// create's and run's flags that take a value.
const CREATE_VALUED: &[&str] = &["bundle", "b", "pid-file", "console-socket", "preserve-fds"];
/// create's and run's boolean flags (most accepted and ignored, as runc's
/// engines pass them).
const CREATE_BOOLEAN: &[&str] = &[
    "no-pivot",
    "no-new-keyring",
    "detach",
    "d",
    "keep",
    "no-subreaper",
];
/// update's flags (all take a value).
const UPDATE_VALUED: &[&str] = &[
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
];
/// exec's flags that take a value.
const EXEC_VALUED: &[&str] = &[
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
];
/// exec's boolean flags.
const EXEC_BOOLEAN: &[&str] = &["detach", "d", "tty", "t", "no-new-privs"];

/// A command's flags: (valued, boolean, stop at the first positional);
/// `None` for an unknown command.
type FlagSpec = (&'static [&'static str], &'static [&'static str], bool);

/// The flags each command takes (see [`FlagSpec`]).
fn command_flags(cmd: &str) -> Option<FlagSpec> {
    Some(match cmd {
        "create" | "run" => (CREATE_VALUED, CREATE_BOOLEAN, false),
        "start" | "state" | "pause" | "resume" => (&[], &[], false),
        "kill" => (&[], &["all", "a"], false),
        "delete" => (&[], &["force", "f"], false),
        "ps" => (&["format", "f"], &[], true),
        "update" => (UPDATE_VALUED, &[], false),
        "list" => (&["format", "f"], &["quiet", "q"], false),
        "events" => (&["interval"], &["stats"], false),
        "exec" => (EXEC_VALUED, EXEC_BOOLEAN, true),
        _ => return None,
    })
}

/// The global flags (before the command) and where the command is.
pub struct Global {
    /// The parsed global flags.
    args: Args,
    /// The command and its arguments (empty: none given).
    pub rest: Vec<String>,
}

impl Global {
    /// Split `argv` (without the program name) into global flags and the
    /// command with its arguments.
    pub fn parse(argv: &[String]) -> Result<Global> {
        let mut i = 0;
        let mut global = Vec::new();
        while i < argv.len() && argv[i].starts_with('-') {
            let a = &argv[i];
            global.push(a.clone());
            if GLOBAL_VALUED.contains(&a.trim_start_matches('-')) {
                i += 1;
                if let Some(v) = argv.get(i) {
                    global.push(v.clone());
                }
            }
            i += 1;
        }
        Ok(Global {
            args: Args::parse(&global, &GLOBAL_VALUED, &GLOBAL_BOOLEAN, false)?,
            rest: argv[i..].to_vec(),
        })
    }

    /// `--root` (default [`DEFAULT_ROOT`]).
    pub fn root(&self) -> PathBuf {
        PathBuf::from(self.args.get("root").unwrap_or(DEFAULT_ROOT))
    }

    /// `--log`.
    pub fn log(&self) -> Option<&str> {
        self.args.get("log")
    }

    /// `--log-format`: whether JSON (else text; anything else is an error).
    pub fn log_json(&self) -> Result<bool> {
        match self.args.get("log-format").unwrap_or("text") {
            "json" => Ok(true),
            "text" => Ok(false),
            other => Err(Error::Usage(format!(
                "--log-format {other:?}: text or json expected"
            ))),
        }
    }

    /// A boolean global flag (`debug`, `version`, `systemd-cgroup`, ...).
    pub fn flag(&self, name: &str) -> bool {
        self.args.bool(name)
    }

    /// `--allow-unenforced-limits` or [`ALLOW_UNENFORCED_ENV`]`=1`.
    pub fn allow_unenforced(&self) -> bool {
        self.args.bool("allow-unenforced-limits")
            || std::env::var(ALLOW_UNENFORCED_ENV).is_ok_and(|v| v == "1")
    }
}
