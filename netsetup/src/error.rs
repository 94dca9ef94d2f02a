//! The crate's one error type.

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;

/// Everything that can go wrong in `berth-netsetup`. Each variant says what was
/// being done and to which interface, namespace, network or file, and carries
/// the errno (`std::io::Error`) where the kernel refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An interface name is empty, longer than 15 bytes (`IFNAMSIZ` - 1), or
    /// contains `/`, whitespace or NUL.
    #[error("invalid interface name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A CIDR string could not be parsed or is unusable for a network.
    #[error("invalid CIDR {cidr:?}: {reason}")]
    InvalidCidr {
        /// The rejected text.
        cidr: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// Any other invalid argument (container id, MAC, port, …).
    #[error("invalid {what}: {reason}")]
    InvalidArgument {
        /// What argument.
        what: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// An interface of that name already exists where we wanted to create one.
    #[error("interface {name:?} already exists")]
    LinkExists {
        /// The interface name.
        name: String,
    },
    /// An existing interface with the bridge's name is not a bridge.
    #[error("interface {name:?} exists but is not a bridge")]
    NotABridge {
        /// The interface name.
        name: String,
    },
    /// The network's subnet overlaps a route that already exists in the host netns.
    #[error("subnet {subnet} of network {network:?} overlaps the existing route {route} (dev index {ifindex})")]
    SubnetOverlap {
        /// The network name.
        network: String,
        /// The requested subnet.
        subnet: String,
        /// The conflicting route's destination.
        route: String,
        /// The interface the conflicting route points at.
        ifindex: u32,
    },
    /// Every usable address of the network is allocated.
    #[error("address pool of network {network:?} ({subnet}) is exhausted")]
    PoolExhausted {
        /// The network name.
        network: String,
        /// Its subnet.
        subnet: String,
    },
    /// A requested address is outside the subnet, reserved, or already taken.
    #[error("address {addr} is not available in network {network:?}: {reason}")]
    AddressUnavailable {
        /// The network name.
        network: String,
        /// The requested address.
        addr: IpAddr,
        /// Why it cannot be handed out.
        reason: &'static str,
    },
    /// The container id already has an address in this network.
    #[error("container {container:?} is already attached to network {network:?}")]
    AlreadyAttached {
        /// The network name.
        network: String,
        /// The container id.
        container: String,
    },
    /// A published host port is already in use (a listening socket, or
    /// another container's published port).
    #[error("host port {proto}/{host_ip}:{port} is already taken: {by}")]
    PortTaken {
        /// `tcp` or `udp`.
        proto: &'static str,
        /// Host address (0.0.0.0 = any).
        host_ip: IpAddr,
        /// Host port.
        port: u16,
        /// Who holds it.
        by: String,
    },
    /// A netlink request was refused by the kernel.
    #[error("netlink {op} on {target}: {source}")]
    Netlink {
        /// The operation (e.g. `RTM_NEWLINK veth`).
        op: &'static str,
        /// Interface name/index or address it was about.
        target: String,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// A network namespace operation (open, setns, unshare, bind mount) failed.
    #[error("netns {op} {target}: {source}")]
    Netns {
        /// What was being done.
        op: &'static str,
        /// Path, pid or name.
        target: String,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// Reading or writing a file (IPAM state, sysctl) failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// A state directory or a state/lock file in it is not safe to use: a
    /// symbolic link (never followed), not a directory or regular file,
    /// owned by another user, or a file with several hard links.
    #[error("refusing {path}: {reason}")]
    UnsafeState {
        /// The directory or file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The IPAM state file is not valid JSON of the expected shape.
    #[error("corrupt IPAM state {path}: {reason}")]
    CorruptState {
        /// The state file.
        path: PathBuf,
        /// The parse error.
        reason: String,
    },
    /// Running `nft` failed. No longer produced: nftables is programmed over
    /// netlink, and its errors are [`Error::Netlink`] naming the message.
    #[error("nft {op}: {reason}")]
    Nft {
        /// What was being done.
        op: String,
        /// nft's stderr or the spawn error.
        reason: String,
    },
    /// A background (tokio blocking-pool) task running a netsetup operation
    /// panicked or was cancelled.
    #[error("netsetup task did not complete: {reason}")]
    Task {
        /// The join error.
        reason: String,
    },
    /// Teardown went on past several failures; all of them are here.
    #[error("{} teardown error(s): {}", .0.len(), .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Teardown(Vec<Error>),
}

/// Short alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn netlink(op: &'static str, target: impl ToString, source: io::Error) -> Self {
        Error::Netlink {
            op,
            target: target.to_string(),
            source,
        }
    }
    pub(crate) fn netns(op: &'static str, target: impl ToString, source: io::Error) -> Self {
        Error::Netns {
            op,
            target: target.to_string(),
            source,
        }
    }
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
    /// The errno behind this error, if the kernel reported one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Netlink { source, .. }
            | Error::Netns { source, .. }
            | Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_is_send_sync_static() {
        fn check<T: Send + Sync + 'static + std::error::Error>() {}
        check::<super::Error>();
    }
}
