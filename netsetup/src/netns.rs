//! Network namespace handles: anonymous (held by an fd) or named (bind-mounted
//! under `/run/netns/<name>`, the layout `ip netns` uses), opened from a path,
//! a pid or a pidfd. Work inside a namespace runs on a short-lived helper
//! thread that entered it with `setns(2)`; the caller's thread never moves.
//!
//! Kernel facts: setns(2) with `CLONE_NEWNET` (Linux 3.0), a pidfd as setns
//! argument (Linux 5.8), `/proc/<pid>/ns/net` and `/proc/thread-self/ns/net`
//! (namespaces(7), proc(5)).

use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::netlink::Netlink;
use crate::validate_netns_name;

/// Directory where named namespaces are bind-mounted (compatible with `ip netns`).
///
/// ```
/// assert_eq!(berth_netsetup::NETNS_RUN_DIR, "/run/netns"); // where `ip netns` puts names
/// ```
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// A handle on a network namespace. The namespace lives at least as long as
/// the handle (an open nsfs fd keeps it alive). A handle made by
/// [`NetNs::create_named`] also owns the bind mount and removes it on drop
/// (best effort) unless [`NetNs::keep`] was called.
///
/// ```no_run
/// use berth_netsetup::NetNs;
/// let ns = NetNs::new_anonymous()?; // unshare(CLONE_NEWNET), held by its fd
/// ns.set_lo_up()?;
/// let links = ns.netlink()?.links()?; // rtnetlink inside it
/// assert_eq!(links.len(), 1); // just lo
/// let inside = ns.run(|| std::fs::read_to_string("/proc/net/dev"))?; // setns in a helper thread
/// # Ok::<(), berth_netsetup::Error>(())
/// ```
#[derive(Debug)]
#[doc(alias("CLONE_NEWNET", "setns", "netns"))]
pub struct NetNs {
    fd: OwnedFd,
    label: String,
    owned_mount: Option<PathBuf>,
}

fn open_ns_file(path: &Path) -> io::Result<OwnedFd> {
    Ok(fs::File::open(path)?.into())
}

/// setns(2) and unshare(2) of `CLONE_NEWNET`: only ever on a helper
/// thread (or one that exits afterwards).
use berth_sys::ns::{setns_net, unshare_net};

/// Run `f` on a fresh helper thread (scoped, so `f` may borrow).
fn on_helper<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    })
}

impl NetNs {
    /// The calling thread's current network namespace.
    ///
    /// ```no_run
    /// let here = berth_netsetup::NetNs::current()?;
    /// assert!(here.is_current());
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    pub fn current() -> Result<Self> {
        Self::from_path("/proc/thread-self/ns/net")
    }

    /// Open a namespace file (`/proc/<pid>/ns/net`, `/run/netns/<name>`, …).
    ///
    /// ```no_run
    /// let ns = berth_netsetup::NetNs::from_path("/proc/1/ns/net")?; // the host's (pid 1's)
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let fd = open_ns_file(path).map_err(|e| Error::netns("open", path.display(), e))?;
        Ok(Self {
            fd,
            label: path.display().to_string(),
            owned_mount: None,
        })
    }

    /// The network namespace of process `pid` (`/proc/<pid>/ns/net`).
    ///
    /// ```no_run
    /// let ns = berth_netsetup::NetNs::from_pid(1)?; // /proc/1/ns/net
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    pub fn from_pid(pid: i32) -> Result<Self> {
        Self::from_path(format!("/proc/{pid}/ns/net"))
    }

    /// The network namespace of the process behind `pidfd`, race-free:
    /// `ioctl(pidfd, PIDFD_GET_NET_NAMESPACE)` (Linux ≥ 6.11, pidfd_open(2)),
    /// or on older kernels a helper thread that does
    /// `setns(pidfd, CLONE_NEWNET)` (Linux ≥ 5.8) and opens its own
    /// `/proc/thread-self/ns/net`.
    ///
    /// ```no_run
    /// use std::os::fd::{AsFd, FromRawFd, OwnedFd};
    /// let pidfd = unsafe { OwnedFd::from_raw_fd(libc::syscall(libc::SYS_pidfd_open, 1, 0) as i32) };
    /// let ns = berth_netsetup::NetNs::from_pidfd(pidfd.as_fd())?; // setns-able, no /proc lookup race
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    pub fn from_pidfd(pidfd: BorrowedFd<'_>) -> Result<Self> {
        let raw = pidfd.as_raw_fd();
        // PIDFD_GET_NET_NAMESPACE (Linux 6.11), sent only to a live pidfd
        // (on another kind of fd the number could mean something else);
        // else setns(2) into the pidfd (5.8) on a helper thread.
        if let Ok(fd) = berth_sys::pidfd::net_namespace(pidfd) {
            return Ok(Self {
                fd,
                label: format!("pidfd {raw}"),
                owned_mount: None,
            });
        }
        let fd = on_helper(move || -> io::Result<OwnedFd> {
            setns_net(pidfd)?;
            open_ns_file(Path::new("/proc/thread-self/ns/net"))
        })
        .map_err(|e| Error::netns("setns(pidfd)", format!("pidfd {raw}"), e))?;
        Ok(Self {
            fd,
            label: format!("pidfd {raw}"),
            owned_mount: None,
        })
    }

    /// Wrap an already open nsfs fd.
    ///
    /// ```no_run
    /// let fd: std::os::fd::OwnedFd = std::fs::File::open("/proc/self/ns/net").unwrap().into();
    /// let ns = berth_netsetup::NetNs::from_fd(fd);
    /// assert!(ns.is_current());
    /// ```
    pub fn from_fd(fd: OwnedFd) -> Self {
        let label = format!("fd {}", fd.as_raw_fd());
        Self {
            fd,
            label,
            owned_mount: None,
        }
    }

    /// A new, anonymous network namespace held only by this handle (it
    /// disappears with the last fd or process in it). Only `lo` (down) exists.
    ///
    /// ```no_run
    /// let ns = berth_netsetup::NetNs::new_anonymous()?; // gone when dropped
    /// assert!(!ns.is_current());
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    #[doc(alias("unshare", "CLONE_NEWNET"))]
    pub fn new_anonymous() -> Result<Self> {
        let fd = on_helper(|| -> io::Result<OwnedFd> {
            unshare_net()?;
            open_ns_file(Path::new("/proc/thread-self/ns/net"))
        })
        .map_err(|e| Error::netns("unshare(CLONE_NEWNET)", "anonymous", e))?;
        Ok(Self {
            label: format!("anonymous fd {}", fd.as_raw_fd()),
            fd,
            owned_mount: None,
        })
    }

    /// A new namespace bind-mounted at `/run/netns/<name>` (what
    /// `ip netns add <name>` makes, so `ip netns exec` sees it). The handle
    /// owns the mount: dropped or [`NetNs::remove`]d, it unmounts and unlinks.
    /// A name that exists is [`Error::LinkExists`]-like: [`Error::Netns`] with `EEXIST`.
    ///
    /// ```no_run
    /// let ns = berth_netsetup::NetNs::create_named("demo")?; // /run/netns/demo, like `ip netns add demo`
    /// ns.remove()?;
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    #[doc(alias("/run/netns"))]
    pub fn create_named(name: &str) -> Result<Self> {
        validate_netns_name(name)?;
        let dir = Path::new(NETNS_RUN_DIR);
        fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
        make_run_dir_shared()?;
        let path = dir.join(name);
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::netns("create", path.display(), e))?;
        if path.as_os_str().as_bytes().contains(&0) {
            return Err(Error::InvalidArgument {
                what: "netns name",
                reason: "contains NUL".into(),
            });
        }
        let res = on_helper(|| -> io::Result<OwnedFd> {
            unshare_net()?;
            // A bind mount of the nsfs file pins the namespace.
            berth_sys::ns::bind_mount(Path::new("/proc/thread-self/ns/net"), &path)?;
            open_ns_file(Path::new("/proc/thread-self/ns/net"))
        });
        match res {
            Ok(fd) => Ok(Self {
                fd,
                label: path.display().to_string(),
                owned_mount: Some(path),
            }),
            Err(e) => {
                let _ = fs::remove_file(&path);
                Err(Error::netns("bind mount", path.display(), e))
            }
        }
    }

    /// Open the named namespace `/run/netns/<name>` (not owned: never removed by this handle).
    ///
    /// ```no_run
    /// let ns = berth_netsetup::NetNs::open_named("demo")?; // /run/netns/demo
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    pub fn open_named(name: &str) -> Result<Self> {
        validate_netns_name(name)?;
        Self::from_path(Path::new(NETNS_RUN_DIR).join(name))
    }

    /// Another handle on the same namespace (a dup'ed fd; it never owns a bind mount).
    ///
    /// ```no_run
    /// let ns = berth_netsetup::NetNs::new_anonymous()?;
    /// let again = ns.try_clone()?; // dup(2): the netns lives while either is open
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    pub fn try_clone(&self) -> Result<Self> {
        let fd = self
            .fd
            .try_clone()
            .map_err(|e| Error::netns("dup", &self.label, e))?;
        Ok(Self {
            fd,
            label: self.label.clone(),
            owned_mount: None,
        })
    }

    /// Give up ownership of the bind mount: it stays after this handle is dropped.
    ///
    /// ```no_run
    /// let ns = berth_netsetup::NetNs::create_named("kept")?.keep(); // /run/netns/kept stays after drop
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    pub fn keep(mut self) -> Self {
        self.owned_mount = None;
        self
    }

    /// The bind mount path, for a handle from [`NetNs::create_named`].
    ///
    /// ```no_run
    /// let ns = berth_netsetup::NetNs::create_named("demo")?;
    /// assert_eq!(ns.path(), Some(std::path::Path::new("/run/netns/demo")));
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    pub fn path(&self) -> Option<&Path> {
        self.owned_mount.as_deref()
    }

    /// Unmount and unlink a named namespace this handle owns (the namespace
    /// itself goes when the last fd/process leaves it); reports the error.
    ///
    /// ```no_run
    /// let ns = berth_netsetup::NetNs::create_named("demo")?;
    /// ns.remove()?; // unmount and unlink /run/netns/demo
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    pub fn remove(mut self) -> Result<()> {
        match self.owned_mount.take() {
            Some(p) => remove_bind(&p),
            None => Ok(()),
        }
    }

    /// Run `f` on a helper thread that entered this namespace, and return its result.
    ///
    /// ```no_run
    /// let ns = berth_netsetup::NetNs::new_anonymous()?;
    /// let devs = ns.run(|| std::fs::read_to_string("/proc/thread-self/net/dev"))?; // only lo in there
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    #[doc(alias("setns"))]
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        let fd = self.fd.as_fd();
        on_helper(move || -> Result<T> {
            setns_net(fd).map_err(|e| Error::netns("setns", &self.label, e))?;
            Ok(f())
        })
    }

    /// True when this is the calling thread's own network namespace (same
    /// nsfs inode as `/proc/thread-self/ns/net`; namespaces(7)).
    ///
    /// ```no_run
    /// let ns = berth_netsetup::NetNs::new_anonymous()?;
    /// assert!(!ns.is_current());
    /// assert!(berth_netsetup::NetNs::current()?.is_current());
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    pub fn is_current(&self) -> bool {
        let a = berth_sys::fs::fd_dev_ino(self.fd.as_fd());
        a.is_some() && a == berth_sys::fs::dev_ino(Path::new("/proc/thread-self/ns/net"))
    }

    /// True when both handles name the same namespace (same nsfs inode).
    pub(crate) fn same_as(&self, other: &NetNs) -> bool {
        berth_sys::fs::same_file(self.fd.as_fd(), other.fd.as_fd())
    }

    /// Like [`NetNs::run`], but when this is already the calling thread's
    /// namespace `f` runs right here (no helper thread to start).
    pub(crate) fn run_local<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        if self.is_current() {
            Ok(f())
        } else {
            self.run(f)
        }
    }

    /// A netlink socket opened inside this namespace; usable from any thread.
    /// (Opened on the calling thread when that is already in this namespace.)
    ///
    /// ```no_run
    /// let ns = berth_netsetup::NetNs::new_anonymous()?;
    /// let mut nl = ns.netlink()?; // an rtnetlink socket opened inside
    /// assert_eq!(nl.links()?.len(), 1);
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    pub fn netlink(&self) -> Result<Netlink> {
        self.run_local(Netlink::open)?
    }

    /// Open a netlink socket in this namespace *from the calling thread*,
    /// which it moves into the namespace for good: only for a helper thread
    /// that exits afterwards (see [`crate::Network::attach`]).
    pub(crate) fn netlink_moving_this_thread(&self) -> Result<Netlink> {
        setns_net(self.fd.as_fd()).map_err(|e| Error::netns("setns", &self.label, e))?;
        Netlink::open()
    }

    /// Bring the loopback interface up (all a loopback-only container needs).
    ///
    /// ```no_run
    /// let ns = berth_netsetup::NetNs::new_anonymous()?;
    /// ns.set_lo_up()?;
    /// assert!(ns.netlink()?.link_by_name("lo")?.unwrap().up);
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    pub fn set_lo_up(&self) -> Result<()> {
        let mut nl = self.netlink()?;
        lo_up(&mut nl)
    }

    /// Read `net.ipv4.ip_forward` of this namespace.
    ///
    /// ```no_run
    /// let ns = berth_netsetup::NetNs::new_anonymous()?;
    /// assert!(!ns.ip_forward()?); // net.ipv4.ip_forward starts off in a new netns
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    #[doc(alias("net.ipv4.ip_forward"))]
    pub fn ip_forward(&self) -> Result<bool> {
        self.run_local(read_ip_forward)?
    }

    /// Set `net.ipv4.ip_forward` of this namespace; returns the previous value.
    ///
    /// ```no_run
    /// let ns = berth_netsetup::NetNs::new_anonymous()?;
    /// let was = ns.set_ip_forward(true)?; // returns the previous value, to restore later
    /// ns.set_ip_forward(was)?;
    /// # Ok::<(), berth_netsetup::Error>(())
    /// ```
    pub fn set_ip_forward(&self, on: bool) -> Result<bool> {
        self.run_local(|| write_ip_forward(on))?
    }
}

/// Like `ip netns add`: make `/run/netns` a shared mount point (bind-mounting
/// it onto itself first if it is not a mount point), so namespaces
/// bind-mounted there later show up in every mount namespace that has a copy
/// of it (mount_namespaces(7), shared subtrees).
fn make_run_dir_shared() -> Result<()> {
    let dir = Path::new(NETNS_RUN_DIR);
    match berth_sys::ns::make_shared_rec(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.raw_os_error() != Some(libc::EINVAL) => {
            return Err(Error::netns("make shared", NETNS_RUN_DIR, e))
        }
        // EINVAL: not a mount point yet.
        Err(_) => {}
    }
    berth_sys::ns::bind_self_rec(dir).map_err(|e| Error::netns("bind mount", NETNS_RUN_DIR, e))?;
    berth_sys::ns::make_shared_rec(dir).map_err(|e| Error::netns("make shared", NETNS_RUN_DIR, e))
}

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// `/proc/sys/net/ipv4/ip_forward` of the calling thread's netns (the sysctl
/// file resolves against the opener's namespace; proc_sys(5)).
pub(crate) fn read_ip_forward() -> Result<bool> {
    let s = fs::read_to_string(IP_FORWARD).map_err(|e| Error::io("read", IP_FORWARD, e))?;
    Ok(s.trim() != "0")
}

pub(crate) fn write_ip_forward(on: bool) -> Result<bool> {
    let prev = read_ip_forward()?;
    if prev != on {
        fs::write(IP_FORWARD, if on { "1\n" } else { "0\n" })
            .map_err(|e| Error::io("write", IP_FORWARD, e))?;
    }
    Ok(prev)
}

/// Per-netns IPv6 settings, one directory per interface plus `all` and
/// `default` (ip-sysctl.rst). Absent when IPv6 is disabled at boot
/// (`ipv6.disable=1`); an interface without IPv6 (MTU below 1280) has none.
const IPV6_CONF: &str = "/proc/sys/net/ipv6/conf";

/// Set `accept_ra = 0` on each of `confs` (`all`, `default` or an interface
/// name) in the calling thread's network namespace (the sysctl files
/// resolve against the opener's netns; proc_sys(5)), so router
/// advertisements give it neither a default route nor an autoconfigured
/// address (CVE-2020-13401: a container with `CAP_NET_RAW` can send them).
/// `default` is what interfaces created later start with; `all` is set as
/// Docker does. A missing file is not an error: IPv6 is off there, nothing
/// accepts RAs. Per interface only when asked: callers never pass the
/// host's `all`/`default`.
pub(crate) fn refuse_router_advertisements(confs: &[&str]) -> Result<()> {
    for conf in confs {
        let path = format!("{IPV6_CONF}/{conf}/accept_ra");
        let res = fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| io::Write::write_all(&mut f, b"0"));
        match res {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("write", path, e)),
        }
    }
    Ok(())
}

/// Set `net.ipv4.conf.<ifname>.route_localnet = 1` in the calling thread's
/// netns: loopback addresses routed to and from `ifname` are not martians
/// (ip-sysctl.rst, Linux ≥ 3.6).
pub(crate) fn set_route_localnet(ifname: &str) -> Result<()> {
    let path = format!("/proc/sys/net/ipv4/conf/{ifname}/route_localnet");
    fs::write(&path, b"1").map_err(|e| Error::io("write", path, e))
}

pub(crate) fn lo_up(nl: &mut Netlink) -> Result<()> {
    // ifindex 1 is always `lo` in every network namespace (net/core/dev.c, loopback_net_init).
    nl.set_up(1)
}

fn remove_bind(p: &Path) -> Result<()> {
    if p.as_os_str().as_bytes().contains(&0) {
        return Err(Error::InvalidArgument {
            what: "netns path",
            reason: "contains NUL".into(),
        });
    }
    if let Err(e) = berth_sys::ns::umount_detach(p) {
        if e.raw_os_error() != Some(libc::EINVAL) && e.raw_os_error() != Some(libc::ENOENT) {
            return Err(Error::netns("umount", p.display(), e));
        }
    }
    match fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("unlink", p, e)),
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if let Some(p) = self.owned_mount.take() {
            if let Err(e) = remove_bind(&p) {
                tracing::warn!(netns = %p.display(), error = %e, "could not remove named netns");
            }
        }
    }
}

impl AsFd for NetNs {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for NetNs {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusing_ras_where_there_is_no_ipv6_is_a_no_op() {
        // No such interface (as with IPv6 disabled: no file): nothing is
        // written, nothing fails.
        let name = "berth-no-if0";
        assert!(!Path::new(IPV6_CONF).join(name).exists());
        refuse_router_advertisements(&[name]).unwrap();
        assert!(!Path::new(IPV6_CONF).join(name).exists());
    }
}
