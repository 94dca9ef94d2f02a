//! `net.ipv4.ip_forward` as berth's networks share it: the first network
//! that turns forwarding on records the value it found, every network that
//! relies on it is listed beside it, and the last one removed puts the
//! original value back. The record is `ip_forward.state` in the network
//! state directory (under `ip_forward.lock`), keyed by the namespace's
//! `(st_dev, st_ino)`, so it holds across processes: `berth-run network
//! create` in one, `network rm` in another.
//!
//! When forwarding was already on before berth's first network (someone
//! else's policy), nothing is recorded and nothing is ever turned off.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ipam::{lock_file, read_state_file, replace_file};
use crate::netns::NetNs;

const STATE: &str = "ip_forward.state";
const LOCK: &str = "ip_forward.lock";

/// What berth turned on in one namespace.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Entry {
    /// The value before berth's first network turned it on.
    was: bool,
    /// Networks relying on it.
    networks: BTreeSet<String>,
}

/// Namespace id (`"<st_dev>:<st_ino>"` of its nsfs file) → entry.
type Record = BTreeMap<String, Entry>;

fn key(ns: &NetNs) -> Result<String> {
    let (dev, ino) = crate::nat::ns_id_of(ns).ok_or_else(|| {
        Error::io(
            "fstat",
            "network namespace",
            std::io::Error::last_os_error(),
        )
    })?;
    Ok(format!("{dev}:{ino}"))
}

fn load(path: &Path) -> Result<Record> {
    match read_state_file(path)? {
        None => Ok(Record::new()),
        Some(b) => serde_json::from_slice(&b).map_err(|e| Error::CorruptState {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

/// Store `r`, or remove the record and its lock when it is empty (the
/// caller holds the lock).
fn store(dir: &Path, r: &Record) -> Result<()> {
    let path = dir.join(STATE);
    if r.is_empty() {
        for p in [path, dir.join(LOCK)] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", &p, e)),
            }
        }
        return Ok(());
    }
    let data = serde_json::to_vec(r).map_err(|e| Error::CorruptState {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    replace_file(&path, &data)
}

/// Turn forwarding on in `ns` for `network`; returns the value before.
/// `now` is the value read in `ns` (None: read it here).
pub(crate) fn acquire(dir: &Path, ns: &NetNs, network: &str, now: Option<bool>) -> Result<bool> {
    let now = match now {
        Some(v) => v,
        None => ns.ip_forward()?,
    };
    // On, and berth recorded nothing here: someone else's policy; no lock
    // (no lock file) and no write on this path, the common one when
    // containers start. A network ensured while another process records
    // its first network at that very moment is not listed: that one then
    // turns forwarding off when it is removed (documented race).
    if now && !dir.join(STATE).exists() {
        return Ok(true);
    }
    let _l = lock_file(&dir.join(LOCK))?;
    let mut r = load(&dir.join(STATE))?;
    let k = key(ns)?;
    match r.get_mut(&k) {
        Some(e) => {
            if !e.networks.insert(network.to_string()) && now {
                // Listed already, forwarding on: nothing to write.
                return Ok(true);
            }
        }
        // Already on and not by berth: not ours to record or restore.
        None if now => {
            store(dir, &r)?;
            return Ok(true);
        }
        None => {
            r.insert(
                k,
                Entry {
                    was: false,
                    networks: [network.to_string()].into(),
                },
            );
        }
    }
    store(dir, &r)?;
    if !now {
        ns.set_ip_forward(true)?;
        tracing::info!(network, "net.ipv4.ip_forward turned on");
    }
    Ok(now)
}

/// `network` no longer relies on forwarding in `ns`; the last one puts
/// the original value back.
pub(crate) fn release(dir: &Path, ns: &NetNs, network: &str) -> Result<()> {
    let path = dir.join(STATE);
    if !path.exists() {
        return Ok(());
    }
    let _l = lock_file(&dir.join(LOCK))?;
    let mut r = load(&path)?;
    let k = key(ns)?;
    let Some(e) = r.get_mut(&k) else {
        return Ok(());
    };
    if !e.networks.remove(network) {
        return Ok(());
    }
    let restore = e.networks.is_empty().then_some(e.was);
    if restore.is_some() {
        r.remove(&k);
    }
    store(dir, &r)?;
    if let Some(was) = restore {
        ns.set_ip_forward(was)?;
        tracing::info!(network, was, "net.ipv4.ip_forward restored");
    }
    Ok(())
}
