//! The `--log` file, as runc writes it: one line per message, logfmt
//! (`time="…" level=warning msg="…"`) or JSON (`--log-format json`, what
//! containerd's shim reads back after a failed command), and the RFC 3339
//! timestamps of log lines and container records.
//!
//! Set once by `main` ([`init`]); until then (and without `--log` for
//! errors, which `main` prints itself) nothing is written.

use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::error::{Error, Result};

/// Where and how messages go.
struct Log {
    /// The `--log` file (`None`: stderr, errors left to `main`).
    file: Option<std::fs::File>,
    /// `--log-format json`.
    json: bool,
    /// `--debug`: write debug messages too.
    debug: bool,
}

/// The log, set once by [`init`]. A `Mutex` although berth-oci is
/// single-threaded (the holder is a forked copy, which gets its own).
static LOG: OnceLock<Mutex<Log>> = OnceLock::new();

/// A message's level, as runc names them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Level {
    /// Written only with `--debug`.
    Debug,
    /// Something not applied or not cleaned up; the command goes on.
    Warning,
    /// The command failed (its exit status is 1).
    Error,
}

impl Level {
    /// The name in a log line.
    fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

/// Open the `--log` file as runc does (`O_CREAT|O_APPEND`, mode 0644) but
/// never through a symbolic link (`O_NOFOLLOW`: ELOOP is refused).
pub fn open(path: &str) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => {
                Error::Config(format!("open log {path}: is a symbolic link (refused)"))
            }
            _ => Error::Io {
                what: format!("open log {path}"),
                source: e,
            },
        })
}

/// Start logging (once; a second call changes nothing).
pub fn init(file: Option<std::fs::File>, json: bool, debug: bool) {
    let _ = LOG.set(Mutex::new(Log { file, json, debug }));
}

/// Write `msg` at `level` (see the module's doc).
pub fn log(level: Level, msg: &str) {
    let Some(l) = LOG.get() else { return };
    // A poisoned lock (a panic while writing) still holds a usable file.
    let mut l = l.lock().unwrap_or_else(|p| p.into_inner());
    if level == Level::Debug && !l.debug {
        return;
    }
    let name = level.name();
    let line = if l.json {
        serde_json::json!({"level": name, "msg": msg, "time": now_rfc3339()}).to_string()
    } else {
        format!("time=\"{}\" level={name} msg={msg:?}", now_rfc3339())
    };
    if let Some(f) = l.file.as_mut() {
        let _ = writeln!(f, "{line}");
    } else if level != Level::Error {
        eprintln!("{line}");
    }
}

/// [`log`] at [`Level::Warning`].
pub fn warn(msg: &str) {
    log(Level::Warning, msg);
}

/// [`log`] at [`Level::Debug`].
pub fn debug(msg: &str) {
    log(Level::Debug, msg);
}

/// RFC 3339 UTC time from the system clock.
pub fn now_rfc3339() -> String {
    rfc3339(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

/// RFC 3339 UTC time, nanoseconds, of `d` since the epoch (civil-from-days,
/// H. Hinnant); Go's `time.RFC3339Nano` parses it (runc's `created`).
pub fn rfc3339(d: Duration) -> String {
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
