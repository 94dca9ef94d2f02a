//! Resource limits (`RLIMIT_*`), applied with `prlimit64(2)` in the child.
//!
//! Kernel facts: `getrlimit(2)`; the limits show in `/proc/<pid>/limits`.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Value meaning "no limit" (`RLIM_INFINITY`).
pub const RLIM_INFINITY: u64 = u64::MAX;

/// A resource that can be limited (`RLIMIT_*`).
///
/// ```
/// use berth_security::Resource;
/// assert_eq!(Resource::Nofile.raw(), libc::RLIMIT_NOFILE as u32);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // the names are the kernel's
#[doc(alias("RLIMIT_NOFILE", "setrlimit"))]
pub enum Resource {
    Cpu,
    Fsize,
    Data,
    Stack,
    Core,
    Rss,
    Nproc,
    Nofile,
    Memlock,
    As,
    Locks,
    Sigpending,
    Msgqueue,
    Nice,
    Rtprio,
    Rttime,
}

const ALL: [(Resource, &str, u32); 16] = [
    (Resource::Cpu, "RLIMIT_CPU", 0),
    (Resource::Fsize, "RLIMIT_FSIZE", 1),
    (Resource::Data, "RLIMIT_DATA", 2),
    (Resource::Stack, "RLIMIT_STACK", 3),
    (Resource::Core, "RLIMIT_CORE", 4),
    (Resource::Rss, "RLIMIT_RSS", 5),
    (Resource::Nproc, "RLIMIT_NPROC", 6),
    (Resource::Nofile, "RLIMIT_NOFILE", 7),
    (Resource::Memlock, "RLIMIT_MEMLOCK", 8),
    (Resource::As, "RLIMIT_AS", 9),
    (Resource::Locks, "RLIMIT_LOCKS", 10),
    (Resource::Sigpending, "RLIMIT_SIGPENDING", 11),
    (Resource::Msgqueue, "RLIMIT_MSGQUEUE", 12),
    (Resource::Nice, "RLIMIT_NICE", 13),
    (Resource::Rtprio, "RLIMIT_RTPRIO", 14),
    (Resource::Rttime, "RLIMIT_RTTIME", 15),
];

impl Resource {
    /// The kernel's resource number (`<asm-generic/resource.h>`).
    pub fn raw(self) -> u32 {
        ALL.iter().find(|(r, _, _)| *r == self).map_or(0, |e| e.2)
    }

    /// The `RLIMIT_…` name.
    pub fn name(self) -> &'static str {
        ALL.iter().find(|(r, _, _)| *r == self).map_or("", |e| e.1)
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Resource {
    type Err = Error;
    /// `RLIMIT_NOFILE`, `nofile` (case-insensitive).
    fn from_str(s: &str) -> Result<Self> {
        let up = s.trim().to_ascii_uppercase();
        let full = if up.starts_with("RLIMIT_") {
            up
        } else {
            format!("RLIMIT_{up}")
        };
        ALL.iter()
            .find(|(_, n, _)| *n == full)
            .map(|e| e.0)
            .ok_or_else(|| Error::InvalidRlimit {
                resource: s.to_string(),
                reason: "unknown resource".into(),
            })
    }
}

/// One limit: soft ≤ hard ([`RLIM_INFINITY`] for none).
///
/// ```
/// use berth_security::{Resource, Rlimit};
/// let r = Rlimit::new(Resource::Nofile, 1024, 4096).unwrap();
/// assert!(Rlimit::new(Resource::Nofile, 8, 4).is_err()); // soft above hard
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    /// The resource.
    pub resource: Resource,
    /// Soft limit (what the process hits).
    pub soft: u64,
    /// Hard limit (ceiling for the soft limit).
    pub hard: u64,
}

impl Rlimit {
    /// A validated limit: errors when `soft > hard`.
    ///
    /// ```
    /// use berth_security::{Resource, Rlimit};
    /// assert!(Rlimit::new(Resource::Nofile, 1024, 4096).is_ok());
    /// assert!(Rlimit::new(Resource::Nofile, 4096, 1024).is_err());
    /// ```
    pub fn new(resource: Resource, soft: u64, hard: u64) -> Result<Self> {
        if soft > hard {
            return Err(Error::InvalidRlimit {
                resource: resource.name().to_string(),
                reason: format!("soft limit {soft} is above hard limit {hard}"),
            });
        }
        Ok(Rlimit {
            resource,
            soft,
            hard,
        })
    }

    #[cfg(feature = "oci")]
    /// From the OCI spec's `process.rlimits[]` entry.
    pub fn from_oci(r: &oci_spec::runtime::PosixRlimit) -> Result<Self> {
        let res: Resource = r.typ().to_string().parse()?;
        Rlimit::new(res, r.soft(), r.hard())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!("nofile".parse::<Resource>().unwrap(), Resource::Nofile);
        assert_eq!(Resource::Nofile.raw(), libc::RLIMIT_NOFILE);
        assert_eq!(Resource::Rttime.raw(), libc::RLIMIT_RTTIME);
        assert_eq!(Resource::As.raw(), libc::RLIMIT_AS);
        assert!("RLIMIT_BOGUS".parse::<Resource>().is_err());
    }

    #[cfg(feature = "oci")]
    #[test]
    fn oci_rlimit() {
        let r: oci_spec::runtime::PosixRlimit =
            serde_json::from_str(r#"{"type": "RLIMIT_NOFILE", "hard": 100, "soft": 50}"#).unwrap();
        assert_eq!(
            Rlimit::from_oci(&r).unwrap(),
            Rlimit::new(Resource::Nofile, 50, 100).unwrap()
        );
        let bad: oci_spec::runtime::PosixRlimit =
            serde_json::from_str(r#"{"type": "RLIMIT_NOFILE", "hard": 10, "soft": 50}"#).unwrap();
        assert!(Rlimit::from_oci(&bad)
            .unwrap_err()
            .to_string()
            .contains("above hard"));
    }
}
