//! Capability sets as plain bitmasks, parsed from names with the `caps` crate.
//!
//! Kernel facts: `capabilities(7)`; the highest capability the running kernel
//! knows is in `/proc/sys/kernel/cap_last_cap` (Linux 3.2+); ambient
//! capabilities need Linux 4.3 (`PR_CAP_AMBIENT`).

use std::fmt;
use std::str::FromStr;

use caps::Capability;

use crate::error::{Error, Result};

/// A set of capabilities, stored as the kernel's 64-bit mask (bit `n` is capability `n`).
///
/// ```
/// use berth_security::CapSet;
/// let set = CapSet::from_names(["CAP_NET_BIND_SERVICE", "CAP_CHOWN"]).unwrap();
/// assert!(set.is_subset(CapSet::docker_default()));
/// assert_eq!(set.names().len(), 2);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[doc(alias("capset", "cap_user_data_t"))]
pub struct CapSet(u64);

/// The 14 capabilities Docker grants a container by default.
pub const DOCKER_DEFAULT_CAPS: [Capability; 14] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

/// Parse one capability name: `CAP_NET_ADMIN`, `NET_ADMIN` or `net_admin`.
pub fn parse_capability(name: &str) -> Result<Capability> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    Capability::from_str(&full).map_err(|_| Error::UnknownCapability {
        name: name.to_string(),
    })
}

impl CapSet {
    /// The empty set.
    pub const fn empty() -> Self {
        CapSet(0)
    }

    /// Every capability the `caps` crate knows (CAP_CHOWN ..= CAP_CHECKPOINT_RESTORE).
    pub fn all() -> Self {
        caps::all().into_iter().collect()
    }

    /// Docker's default 14 ([`DOCKER_DEFAULT_CAPS`]).
    pub fn docker_default() -> Self {
        DOCKER_DEFAULT_CAPS.into_iter().collect()
    }

    /// A set from a raw kernel mask.
    pub const fn from_bits(bits: u64) -> Self {
        CapSet(bits)
    }

    /// The raw kernel mask (as in `CapEff:` of `/proc/<pid>/status`).
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Parse names (`CAP_` prefix optional, case-insensitive); `ALL` means [`CapSet::all`].
    ///
    /// ```
    /// use berth_security::CapSet;
    /// let s = CapSet::from_names(["CAP_CHOWN", "net_admin"]).unwrap();
    /// assert_eq!(s.bits(), (1 << 0) | (1 << 12));
    /// assert!(CapSet::from_names(["CAP_MAKE_COFFEE"]).is_err());
    /// ```
    pub fn from_names<I, S>(names: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = CapSet::empty();
        for n in names {
            let n = n.as_ref();
            if n.trim().eq_ignore_ascii_case("ALL") {
                set = set.union(CapSet::all());
            } else {
                set.insert(parse_capability(n)?);
            }
        }
        Ok(set)
    }

    /// Add one capability.
    pub fn insert(&mut self, cap: Capability) {
        self.0 |= cap.bitmask();
    }

    /// Remove one capability.
    pub fn remove(&mut self, cap: Capability) {
        self.0 &= !cap.bitmask();
    }

    /// Whether `cap` is in the set.
    pub fn contains(self, cap: Capability) -> bool {
        self.0 & cap.bitmask() != 0
    }

    /// Set union.
    pub const fn union(self, other: CapSet) -> CapSet {
        CapSet(self.0 | other.0)
    }

    /// Set difference.
    pub const fn difference(self, other: CapSet) -> CapSet {
        CapSet(self.0 & !other.0)
    }

    /// Set intersection.
    pub const fn intersection(self, other: CapSet) -> CapSet {
        CapSet(self.0 & other.0)
    }

    /// Whether every member of `self` is in `other`.
    pub const fn is_subset(self, other: CapSet) -> bool {
        self.0 & !other.0 == 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The members, lowest number first.
    pub fn iter(self) -> impl Iterator<Item = Capability> {
        let mut v: Vec<Capability> = caps::all()
            .into_iter()
            .filter(move |c| self.contains(*c))
            .collect();
        v.sort_by_key(|c| c.index());
        v.into_iter()
    }

    /// The names of the members (`CAP_…`), lowest number first.
    pub fn names(self) -> Vec<String> {
        self.iter().map(|c| c.to_string()).collect()
    }

    /// Docker's `--cap-add`/`--cap-drop` semantics on top of the default 14:
    /// `ALL` in `add` starts from every capability; `ALL` in `drop` starts from
    /// none; otherwise defaults + add − drop (a capability in both is dropped).
    ///
    /// ```
    /// use berth_security::CapSet;
    /// let s = CapSet::docker_with(["NET_ADMIN"], ["MKNOD"]).unwrap();
    /// assert_eq!(s.names().len(), 14);
    /// let only = CapSet::docker_with(["CHOWN"], ["ALL"]).unwrap();
    /// assert_eq!(only.names(), ["CAP_CHOWN"]);
    /// ```
    pub fn docker_with<A, D, S1, S2>(add: A, drop: D) -> Result<Self>
    where
        A: IntoIterator<Item = S1>,
        D: IntoIterator<Item = S2>,
        S1: AsRef<str>,
        S2: AsRef<str>,
    {
        let add: Vec<String> = add.into_iter().map(|s| s.as_ref().to_string()).collect();
        let drop: Vec<String> = drop.into_iter().map(|s| s.as_ref().to_string()).collect();
        let is_all = |v: &Vec<String>| v.iter().any(|s| s.trim().eq_ignore_ascii_case("ALL"));
        let add_set = CapSet::from_names(&add)?;
        let drop_set = CapSet::from_names(&drop)?;
        if is_all(&drop) {
            // `--cap-drop ALL --cap-add X` keeps exactly the added ones.
            return Ok(add_set);
        }
        let base = if is_all(&add) {
            CapSet::all()
        } else {
            CapSet::docker_default().union(add_set)
        };
        Ok(base.difference(drop_set))
    }
}

impl FromIterator<Capability> for CapSet {
    fn from_iter<T: IntoIterator<Item = Capability>>(iter: T) -> Self {
        let mut s = CapSet::empty();
        for c in iter {
            s.insert(c);
        }
        s
    }
}

impl fmt::Debug for CapSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

/// The five capability sets of a process, as in the OCI spec's `process.capabilities`.
///
/// Semantics at execve (`capabilities(7)`): a root workload gets
/// permitted = inheritable ∪ bounding; a non-root workload gets
/// permitted = effective = ambient. Set ambient (⊆ permitted ∩ inheritable)
/// to let a non-root workload keep granted capabilities.
///
/// ```
/// use berth_security::{CapSet, Capabilities};
/// let caps = Capabilities::uniform(CapSet::from_names(["CAP_NET_BIND_SERVICE"]).unwrap());
/// caps.validate().unwrap(); // effective ⊆ permitted, ambient ⊆ permitted ∩ inheritable
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[doc(alias("capset", "PR_CAP_AMBIENT", "PR_CAPBSET_DROP"))]
pub struct Capabilities {
    /// Bounding set: everything outside it is dropped with `PR_CAPBSET_DROP`.
    pub bounding: CapSet,
    /// Effective set (must be ⊆ permitted).
    pub effective: CapSet,
    /// Permitted set.
    pub permitted: CapSet,
    /// Inheritable set.
    pub inheritable: CapSet,
    /// Ambient set (Linux 4.3+; must be ⊆ permitted ∩ inheritable).
    pub ambient: CapSet,
}

impl Capabilities {
    /// Bounding, effective and permitted equal to `set`; inheritable and
    /// ambient empty: what Docker (since 20.10.14) and runc give a root
    /// container. An empty inheritable set keeps a file's inheritable
    /// capabilities from granting anything across `execve` to a non-root
    /// workload (CVE-2022-24769; `capabilities(7)`: P'(permitted) =
    /// (P(inheritable) & F(inheritable)) | (F(permitted) & P(bounding))).
    ///
    /// ```
    /// use berth_security::{CapSet, Capabilities};
    /// let c = Capabilities::uniform(CapSet::docker_default());
    /// assert!(c.inheritable.is_empty() && c.ambient.is_empty());
    /// assert_eq!(c.permitted, CapSet::docker_default());
    /// ```
    pub fn uniform(set: CapSet) -> Self {
        Capabilities {
            bounding: set,
            effective: set,
            permitted: set,
            inheritable: CapSet::empty(),
            ambient: CapSet::empty(),
        }
    }

    /// Like [`Capabilities::uniform`] plus `set` as the ambient and
    /// inheritable sets (ambient must be ⊆ permitted ∩ inheritable), so a
    /// non-root workload keeps every capability in `set` across execve.
    ///
    /// ```
    /// use berth_security::{CapSet, Capabilities};
    /// let c = Capabilities::uniform_with_ambient(CapSet::from_names(["NET_BIND_SERVICE"]).unwrap());
    /// assert_eq!(c.inheritable, c.ambient);
    /// ```
    pub fn uniform_with_ambient(set: CapSet) -> Self {
        Capabilities {
            ambient: set,
            inheritable: set,
            ..Capabilities::uniform(set)
        }
    }

    /// Docker's default: the 14 of [`DOCKER_DEFAULT_CAPS`] in bounding,
    /// effective and permitted; inheritable and ambient empty
    /// ([`Capabilities::uniform`]).
    pub fn docker_default() -> Self {
        Capabilities::uniform(CapSet::docker_default())
    }

    #[cfg(feature = "oci")]
    /// From the OCI runtime spec's `process.capabilities`.
    ///
    /// Ambient capabilities that are not both permitted and inheritable
    /// are left out, with a warning: the kernel cannot raise them
    /// (`PR_CAP_AMBIENT_RAISE` is `EPERM`, prctl(2)), and runc 1.1 tries,
    /// ignores the refusal and runs the process without them. `runc
    /// spec`'s default bundle asks for three ambient capabilities and no
    /// inheritable ones; it runs with empty ambient and inheritable sets,
    /// as under runc. (Sets built by hand keep the strict check of
    /// [`validate`](Self::validate): there an ambient set the kernel
    /// cannot give is a mistake to report, not a spec to follow.)
    ///
    /// ```
    /// let oci: oci_spec::runtime::LinuxCapabilities = serde_json::from_str(
    ///     r#"{"permitted": ["CAP_KILL"], "effective": ["CAP_KILL"], "ambient": ["CAP_KILL"]}"#,
    /// ).unwrap();
    /// let c = berth_security::Capabilities::from_oci(&oci);
    /// assert!(c.ambient.is_empty() && c.validate().is_ok());
    /// ```
    pub fn from_oci(c: &oci_spec::runtime::LinuxCapabilities) -> Self {
        let conv = |s: &Option<oci_spec::runtime::Capabilities>| -> CapSet {
            let mut out = CapSet::empty();
            if let Some(s) = s {
                for cap in s {
                    // oci-spec's capability names are the kernel's (`CAP_…`).
                    if let Ok(c) = parse_capability(&cap.to_string()) {
                        out.insert(c);
                    }
                }
            }
            out
        };
        let (permitted, inheritable) = (conv(c.permitted()), conv(c.inheritable()));
        let asked = conv(c.ambient());
        let ambient = asked.intersection(permitted.intersection(inheritable));
        if ambient != asked {
            tracing::warn!(
                dropped = ?asked.difference(ambient).names(),
                "ambient capabilities that are not both permitted and inheritable cannot be raised; left out, as runc"
            );
        }
        Capabilities {
            bounding: conv(c.bounding()),
            effective: conv(c.effective()),
            permitted,
            inheritable,
            ambient,
        }
    }

    /// Check the sets are consistent: effective ⊆ permitted, ambient ⊆ permitted ∩ inheritable.
    pub fn validate(&self) -> Result<()> {
        if !self.effective.is_subset(self.permitted) {
            return Err(Error::InvalidCapabilities {
                reason: format!(
                    "effective has {:?} which are not in permitted",
                    self.effective.difference(self.permitted)
                ),
            });
        }
        let pi = self.permitted.intersection(self.inheritable);
        if !self.ambient.is_subset(pi) {
            return Err(Error::InvalidCapabilities {
                reason: format!(
                    "ambient has {:?} which are not in both permitted and inheritable",
                    self.ambient.difference(pi)
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_reject() {
        assert_eq!(
            CapSet::from_names(["chown", "CAP_KILL"]).unwrap(),
            [Capability::CAP_CHOWN, Capability::CAP_KILL]
                .into_iter()
                .collect()
        );
        let e = CapSet::from_names(["CAP_NOPE"]).unwrap_err();
        assert!(e.to_string().contains("CAP_NOPE"), "{e}");
        assert_eq!(CapSet::from_names(["all"]).unwrap(), CapSet::all());
    }

    #[test]
    fn docker_default_is_the_14() {
        let d = CapSet::docker_default();
        assert_eq!(d.bits().count_ones(), 14);
        assert_eq!(d.bits(), 0x00000000a80425fb);
    }

    #[test]
    fn cap_add_drop_semantics() {
        let s = CapSet::docker_with(["SYS_ADMIN"], Vec::<String>::new()).unwrap();
        assert!(s.contains(Capability::CAP_SYS_ADMIN));
        assert_eq!(s.bits().count_ones(), 15);
        let s = CapSet::docker_with(["ALL"], ["NET_RAW"]).unwrap();
        assert_eq!(
            s,
            CapSet::all().difference(CapSet::from_names(["NET_RAW"]).unwrap())
        );
        let s = CapSet::docker_with(["CHOWN", "KILL"], ["ALL"]).unwrap();
        assert_eq!(s.names(), ["CAP_CHOWN", "CAP_KILL"]);
        let s = CapSet::docker_with(["KILL"], ["KILL"]).unwrap();
        assert!(!s.contains(Capability::CAP_KILL));
        assert!(CapSet::docker_with(["BOGUS"], Vec::<String>::new()).is_err());
    }

    #[cfg(feature = "oci")]
    #[test]
    fn from_oci_capabilities() {
        let oci: oci_spec::runtime::LinuxCapabilities = serde_json::from_str(
            r#"{"bounding": ["CAP_CHOWN", "CAP_NET_ADMIN"], "effective": ["CAP_CHOWN"],
                "permitted": ["CAP_CHOWN", "CAP_NET_ADMIN"], "ambient": []}"#,
        )
        .unwrap();
        let c = Capabilities::from_oci(&oci);
        assert_eq!(c.bounding.names(), ["CAP_CHOWN", "CAP_NET_ADMIN"]);
        assert_eq!(c.effective.names(), ["CAP_CHOWN"]);
        assert_eq!(c.permitted, c.bounding);
        assert!(c.inheritable.is_empty() && c.ambient.is_empty());
    }

    #[test]
    fn validate_catches_inconsistent_sets() {
        let mut c = Capabilities::docker_default();
        c.effective.insert(Capability::CAP_SYS_ADMIN);
        assert!(c.validate().is_err());
        let mut c = Capabilities::docker_default();
        c.ambient.insert(Capability::CAP_SYS_ADMIN);
        assert!(c.validate().is_err());
        assert!(Capabilities::uniform_with_ambient(CapSet::docker_default())
            .validate()
            .is_ok());
    }
}
