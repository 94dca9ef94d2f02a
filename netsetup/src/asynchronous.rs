//! Async (tokio) API: the blocking operations run on tokio's blocking pool
//! (`spawn_blocking`), so netlink round-trips and file locks never stall the
//! async executor. Needs a tokio runtime.
//!
//! ```no_run
//! # async fn demo() -> Result<(), berth_netsetup::Error> {
//! use berth_netsetup::{asynchronous, Attach, BridgeNetwork, NetNs};
//! let net = asynchronous::ensure(BridgeNetwork::new("demo")).await?;
//! let ns = NetNs::new_anonymous()?;
//! let (ns, att) = asynchronous::attach(net.clone(), ns, Attach::new("c1")).await?;
//! asynchronous::release(att).await?;
//! # drop(ns); Ok(()) }
//! ```

use crate::error::{Error, Result};
use crate::netns::NetNs;
use crate::network::{Attach, Attachment, BridgeNetwork, Network};

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(Error::Task {
            reason: e.to_string(),
        }),
    }
}

/// [`BridgeNetwork::ensure`] on the blocking pool.
pub async fn ensure(builder: BridgeNetwork) -> Result<Network> {
    blocking(move || builder.ensure()).await
}

/// [`Network::attach`] on the blocking pool; gives the netns handle back.
pub async fn attach(net: Network, netns: NetNs, opts: Attach) -> Result<(NetNs, Attachment)> {
    blocking(move || {
        let a = net.attach(&netns, &opts)?;
        Ok((netns, a))
    })
    .await
}

/// [`Attachment::detach`] on the blocking pool.
pub async fn detach(att: Attachment) -> Result<()> {
    blocking(move || att.detach()).await
}

/// [`Attachment::release`] on the blocking pool.
pub async fn release(att: Attachment) -> Result<()> {
    blocking(move || att.release()).await
}

/// [`Network::remove`] on the blocking pool.
pub async fn remove(net: Network) -> Result<()> {
    blocking(move || net.remove()).await
}

/// [`NetNs::set_lo_up`] on the blocking pool (loopback-only containers).
pub async fn loopback_only(netns: NetNs) -> Result<NetNs> {
    blocking(move || {
        netns.set_lo_up()?;
        Ok(netns)
    })
    .await
}
