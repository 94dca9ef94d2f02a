//! Signal names and numbers as `kill` takes them (runc 1.1: a number, or a
//! name with or without `SIG`, any case), from one table.

use crate::error::{Error, Result};

/// Every name `kill` accepts (without `SIG`), with its number; aliases
/// (`IOT`, `POLL`) after the name `signal(7)` lists first.
const SIGNALS: [(&str, libc::c_int); 33] = [
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGIO),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// A signal number `kill` sends: 0 (a probe, kill(2)) to 64 (`SIGRTMAX`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signal(libc::c_int);

impl Signal {
    /// The number, for kill(2).
    pub fn raw(self) -> libc::c_int {
        self.0
    }
}

impl std::str::FromStr for Signal {
    type Err = Error;

    /// `9`, `KILL`, `SIGKILL`, `sigkill`.
    fn from_str(s: &str) -> Result<Signal> {
        if let Ok(n) = s.parse::<i32>() {
            // 0 probes (kill(2)), as runc accepts.
            return if (0..=64).contains(&n) {
                Ok(Signal(n))
            } else {
                Err(Error::Usage(format!("invalid signal number {n}")))
            };
        }
        let up = s.to_ascii_uppercase();
        let name = up.strip_prefix("SIG").unwrap_or(&up);
        SIGNALS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, n)| Signal(n))
            .ok_or_else(|| Error::Usage(format!("unknown signal {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::Signal;

    #[test]
    fn names_numbers_and_aliases() {
        let p = |s: &str| s.parse::<Signal>().map(Signal::raw).ok();
        assert_eq!(p("9"), Some(libc::SIGKILL));
        assert_eq!(p("0"), Some(0));
        assert_eq!(p("KILL"), Some(libc::SIGKILL));
        assert_eq!(p("sigterm"), Some(libc::SIGTERM));
        assert_eq!(p("IOT"), Some(libc::SIGABRT));
        assert_eq!(p("poll"), Some(libc::SIGIO));
        assert_eq!(p("65"), None);
        assert_eq!(p("NOPE"), None);
    }
}
