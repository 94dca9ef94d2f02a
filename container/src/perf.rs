//! Spawn-path speed-ups that are policy, not mechanism: when to use the
//! process-wide pool of network namespaces, and moving the teardown of a
//! container's mount namespace off `wait`/`destroy`.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};

use berth_namespaces::{Namespaces, NetnsPool, Spawner};

/// Containers with a new network namespace this process has spawned.
static NET_SPAWNS: AtomicUsize = AtomicUsize::new(0);

/// Have `sp` take its network namespace from a process-wide pool when
/// `choice` says so (`None`: from the second such container of this process
/// on, so a one-shot program such as `berth-run` never starts the pool's
/// threads): [`NetnsPool::shared_loopback_up`] for a loopback-only network
/// (`lo` is then already up, and the plan's lo-up step finds nothing to
/// do), [`NetnsPool::shared`] otherwise. Never with a new user namespace
/// (see [`Spawner::netns_pool`]).
pub(crate) fn use_netns_pool(sp: &mut Spawner, ns: Namespaces, choice: Option<bool>, lo_up: bool) {
    if !ns.contains(Namespaces::NET) || ns.contains(Namespaces::USER) {
        return;
    }
    let earlier = NET_SPAWNS.fetch_add(1, Ordering::Relaxed);
    if !choice.unwrap_or(earlier >= 1) {
        return;
    }
    let pool = if lo_up {
        NetnsPool::shared_loopback_up()
    } else {
        NetnsPool::shared()
    };
    match pool {
        Ok(p) => {
            sp.netns_pool(&p);
        }
        Err(e) => tracing::debug!(error = %e, "no network namespace pool; clone3 creates it"),
    }
}

/// Containers this process has spawned (for [`hold_mount_ns`]).
static SPAWNS: AtomicUsize = AtomicUsize::new(0);

/// An fd of the mount namespace of `pid` (`/proc/<pid>/ns/mnt`), or `None`
/// if it already exited. Holding it keeps the namespace alive after the
/// container's last process exits: the kernel then does not unmount the
/// container's tree (every mount, with an RCU grace period for the lazy
/// unmounts, namespace_unlock() in fs/namespace.c) inside the init's exit,
/// which `Container::wait` would wait for. Only from the second container
/// of a process on: a one-shot program (`berth-run`) gains nothing from it
/// and would pay for starting the releasing thread.
pub(crate) fn hold_mount_ns(pid: i32) -> Option<OwnedFd> {
    if SPAWNS.fetch_add(1, Ordering::Relaxed) == 0 {
        return None;
    }
    std::fs::File::open(format!("/proc/{pid}/ns/mnt"))
        .ok()
        .map(OwnedFd::from)
}
