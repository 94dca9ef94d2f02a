//! Landlock: an unprivileged, stackable filesystem sandbox (Linux 5.13+,
//! `landlock(7)`). The ruleset is built in the parent (an fd); the child
//! calls `landlock_restrict_self(2)` on it.
//!
//! Access rights handled are every filesystem right the running kernel's
//! Landlock ABI knows (v1: 13 rights, v2 `REFER` 5.19, v3 `TRUNCATE` 6.2,
//! v5 `IOCTL_DEV` 6.10); anything not allowed by a rule is denied.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A set of Landlock filesystem access rights (`LANDLOCK_ACCESS_FS_*`).
///
/// ```
/// use berth_security::{FsAccess, Landlock};
/// let rw = FsAccess::READ_FILE.union(FsAccess::WRITE_FILE); // LANDLOCK_ACCESS_FS_READ_FILE | _WRITE_FILE
/// let ruleset = Landlock::new().allow("/data", rw);
/// assert_eq!(ruleset.rules().len(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsAccess(u64);

#[allow(missing_docs)]
impl FsAccess {
    pub const EXECUTE: FsAccess = FsAccess(1 << 0);
    pub const WRITE_FILE: FsAccess = FsAccess(1 << 1);
    pub const READ_FILE: FsAccess = FsAccess(1 << 2);
    pub const READ_DIR: FsAccess = FsAccess(1 << 3);
    pub const REMOVE_DIR: FsAccess = FsAccess(1 << 4);
    pub const REMOVE_FILE: FsAccess = FsAccess(1 << 5);
    pub const MAKE_CHAR: FsAccess = FsAccess(1 << 6);
    pub const MAKE_DIR: FsAccess = FsAccess(1 << 7);
    pub const MAKE_REG: FsAccess = FsAccess(1 << 8);
    pub const MAKE_SOCK: FsAccess = FsAccess(1 << 9);
    pub const MAKE_FIFO: FsAccess = FsAccess(1 << 10);
    pub const MAKE_BLOCK: FsAccess = FsAccess(1 << 11);
    pub const MAKE_SYM: FsAccess = FsAccess(1 << 12);
    pub const REFER: FsAccess = FsAccess(1 << 13);
    pub const TRUNCATE: FsAccess = FsAccess(1 << 14);
    pub const IOCTL_DEV: FsAccess = FsAccess(1 << 15);

    /// Read and execute: `EXECUTE | READ_FILE | READ_DIR`.
    pub const READ: FsAccess = FsAccess(0b1101);
    /// Everything (read, write, create, remove, refer, truncate, ioctl).
    pub const ALL: FsAccess = FsAccess((1 << 16) - 1);
    /// Rights that make sense on a regular file (not only on directories).
    const FILE_ONLY: u64 = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 14) | (1 << 15);

    /// The raw mask.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Union of two sets.
    pub const fn union(self, o: FsAccess) -> FsAccess {
        FsAccess(self.0 | o.0)
    }
}

/// Rights each Landlock ABI version handles.
fn handled_for_abi(abi: i64) -> u64 {
    match abi {
        ..=0 => 0,
        1 => (1 << 13) - 1,
        2 => (1 << 14) - 1,
        3 | 4 => (1 << 15) - 1,
        _ => (1 << 16) - 1,
    }
}

/// A Landlock ruleset: paths beneath which some accesses are allowed.
///
/// ```
/// use berth_security::{FsAccess, Landlock};
/// let l = Landlock::new().allow("/usr", FsAccess::READ).allow("/tmp", FsAccess::ALL);
/// assert_eq!(l.rules().len(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[doc(alias("landlock_create_ruleset", "landlock_add_rule"))]
pub struct Landlock {
    rules: Vec<(PathBuf, FsAccess)>,
}

impl Landlock {
    /// An empty ruleset (denies every handled access everywhere).
    ///
    /// ```
    /// let l = berth_security::Landlock::new();
    /// assert!(l.rules().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Allow `access` beneath `path` (the path must exist at prepare time).
    ///
    /// ```
    /// use berth_security::{FsAccess, Landlock};
    /// let l = Landlock::new()
    ///     .allow("/usr", FsAccess::READ)
    ///     .allow("/var/lib/app", FsAccess::READ.union(FsAccess::WRITE_FILE));
    /// ```
    pub fn allow(mut self, path: impl Into<PathBuf>, access: FsAccess) -> Self {
        self.rules.push((path.into(), access));
        self
    }

    /// The rules.
    pub fn rules(&self) -> &[(PathBuf, FsAccess)] {
        &self.rules
    }

    /// The running kernel's Landlock ABI version (`LANDLOCK_CREATE_RULESET_VERSION`).
    pub fn abi_version() -> Result<i64> {
        berth_sys::landlock::abi_version().map_err(|source| Error::LandlockUnsupported { source })
    }

    /// Create the ruleset fd and add the rules (in the parent).
    pub(crate) fn prepare(&self) -> Result<OwnedFd> {
        let handled = handled_for_abi(Self::abi_version()?);
        let ruleset = berth_sys::landlock::create_ruleset(handled)
            .map_err(|source| Error::LandlockUnsupported { source })?;
        for (path, access) in &self.rules {
            add_rule(&ruleset, path, access.bits() & handled)?;
        }
        Ok(ruleset)
    }
}

fn add_rule(ruleset: &OwnedFd, path: &Path, access: u64) -> Result<()> {
    use std::os::fd::AsFd;
    let err = |source| Error::LandlockRule {
        path: path.to_path_buf(),
        source,
    };
    let fd = berth_sys::fs::open_path(path).map_err(err)?;
    let is_dir = std::fs::metadata(path).is_ok_and(|m| m.is_dir());
    let allowed = if is_dir {
        access
    } else {
        access & FsAccess::FILE_ONLY
    };
    berth_sys::landlock::add_path_beneath(ruleset.as_fd(), allowed, fd.as_fd()).map_err(err)
}
