//! Spawn-path speed-ups that are policy, not mechanism: when to use the
//! process-wide pool of network namespaces.

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
