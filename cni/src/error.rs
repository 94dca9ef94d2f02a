//! The crate's one error type: a CNI error object (SPEC.md, "Error") with
//! its well-known or plugin-specific code.

use serde::Serialize;

/// Well-known error codes of the CNI spec (0–99), and this plugin's own (100+).
pub mod code {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in the network configuration.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist (the runtime need not clean up).
    pub const CONTAINER_UNKNOWN: u32 = 3;
    /// Invalid necessary environment variables (`CNI_COMMAND`, `CNI_CONTAINERID`, …).
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure (netlink, nftables, the state files).
    pub const IO_FAILURE: u32 = 5;
    /// Failed to decode content (stdin is not JSON).
    pub const DECODE_FAILURE: u32 = 6;
    /// Invalid network configuration.
    pub const INVALID_CONFIG: u32 = 7;
    /// Try again later (a transient condition).
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// STATUS: the plugin is not available (cannot service ADD).
    pub const PLUGIN_NOT_AVAILABLE: u32 = 50;
    /// STATUS: not available, and existing containers may have limited connectivity.
    pub const LIMITED_CONNECTIVITY: u32 = 51;
    /// Plugin-specific: something is already in use (the interface name in
    /// the container, the address, the published port, the attachment).
    pub const CONFLICT: u32 = 100;
    /// Plugin-specific: the network's address pool is exhausted.
    pub const POOL_EXHAUSTED: u32 = 101;
    /// Plugin-specific: CHECK found the attachment not as ADD left it.
    pub const CHECK_FAILED: u32 = 102;
}

/// A CNI error: printed on stdout as the spec's error object, exit status 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("CNI error {code}: {msg}{}", details.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
pub struct Error {
    /// The error code (see [`code`]).
    pub code: u32,
    /// Short message.
    pub msg: String,
    /// Longer explanation (the underlying error chain).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with `code` and message `msg`.
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.into(),
            details: None,
        }
    }

    /// Add the long explanation.
    pub fn details(mut self, d: impl Into<String>) -> Self {
        self.details = Some(d.into());
        self
    }

    /// The spec's error object for a result of version `cni_version`.
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        let mut v = serde_json::json!({
            "cniVersion": cni_version,
            "code": self.code,
            "msg": self.msg,
        });
        if let Some(d) = &self.details {
            v["details"] = d.clone().into();
        }
        v
    }

    /// Map an error of berth-netsetup met while doing `what`.
    pub fn netsetup(what: &str, e: berth_netsetup::Error) -> Self {
        use berth_netsetup::Error as N;
        let c = match &e {
            N::InvalidName { .. }
            | N::InvalidCidr { .. }
            | N::InvalidArgument { .. }
            | N::NotABridge { .. }
            | N::SubnetOverlap { .. } => code::INVALID_CONFIG,
            N::LinkExists { .. }
            | N::AlreadyAttached { .. }
            | N::PortTaken { .. }
            | N::AddressUnavailable { .. } => code::CONFLICT,
            N::PoolExhausted { .. } => code::POOL_EXHAUSTED,
            _ if matches!(
                e.raw_os_error(),
                Some(libc::EAGAIN | libc::EBUSY | libc::EINTR)
            ) =>
            {
                code::TRY_AGAIN_LATER
            }
            _ => code::IO_FAILURE,
        };
        Error::new(c, format!("{what}: {e}")).details(error_chain(&e))
    }
}

/// `e` and its sources, joined by ": ".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_object_has_the_spec_fields() {
        let e = Error::new(code::INVALID_CONFIG, "bad subnet").details("10.0.0.0/33");
        let v = e.to_json("1.1.0");
        assert_eq!(v["cniVersion"], "1.1.0");
        assert_eq!(v["code"], 7);
        assert_eq!(v["msg"], "bad subnet");
        assert_eq!(v["details"], "10.0.0.0/33");
        let v = Error::new(code::IO_FAILURE, "x").to_json("0.4.0");
        assert!(v.get("details").is_none());
    }

    #[test]
    fn netsetup_errors_map_to_codes() {
        use berth_netsetup::Error as N;
        let m = |e| Error::netsetup("t", e).code;
        assert_eq!(
            m(N::InvalidCidr {
                cidr: "x".into(),
                reason: "r"
            }),
            code::INVALID_CONFIG
        );
        assert_eq!(
            m(N::PoolExhausted {
                network: "n".into(),
                subnet: "s".into()
            }),
            code::POOL_EXHAUSTED
        );
        assert_eq!(
            m(N::LinkExists {
                name: "eth0".into()
            }),
            code::CONFLICT
        );
        assert_eq!(
            m(N::Io {
                op: "read",
                path: "/x".into(),
                source: std::io::Error::from_raw_os_error(libc::EIO)
            }),
            code::IO_FAILURE
        );
        assert_eq!(
            m(N::Io {
                op: "flock",
                path: "/x".into(),
                source: std::io::Error::from_raw_os_error(libc::EAGAIN)
            }),
            code::TRY_AGAIN_LATER
        );
    }
}
