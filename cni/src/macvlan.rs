//! macvlan mode (`"driver": "macvlan"`, `"master": "<parent>"`): the
//! container's interface is a macvlan of a host interface, on the parent's
//! own L2 network (no bridge, no NAT, no published ports); addresses come
//! from berth's IPAM, the default route goes to `gateway` (a router on that
//! network; default the subnet's first address).

use std::net::IpAddr;
use std::os::fd::AsFd;

use berth_netsetup::{MacvlanMode, MacvlanSpec};
use serde_json::Value;

use crate::bridge::{
    check_in_netns, check_prev_result, check_record, host_netlink, mac_of, open_netns,
};
use crate::error::{code, Error, Result};
use crate::types::{CniResult, Command, Env, Interface, IpConfig, NetConf, Route};
use crate::{attachment_key, release_stale, status_common, Settings};

pub(crate) fn run(env: &Env, conf: &NetConf, s: &Settings) -> Result<Option<Value>> {
    let master = conf
        .master
        .as_deref()
        .ok_or_else(|| Error::new(code::INVALID_CONFIG, "driver macvlan needs \"master\""))?;
    berth_netsetup::validate_ifname(master)
        .map_err(|e| Error::new(code::INVALID_CONFIG, format!("master: {e}")))?;
    let mode = MacvlanMode::parse(conf.macvlan_mode.as_deref().unwrap_or("bridge"))
        .map_err(|e| Error::new(code::INVALID_CONFIG, e.to_string()))?;
    match env.command {
        Command::Add => add(env, conf, s, master, mode).map(Some),
        Command::Del => del(env, s).map(|()| None),
        Command::Check => check(env, conf, s).map(|()| None),
        // Stale addresses are released; their macvlans go with their netns.
        Command::Gc => release_stale(conf, s).map(|()| None),
        Command::Status => status(s, master).map(|()| None),
        Command::Version => Err(Error::new(code::INVALID_ENV, "VERSION is answered earlier")),
    }
}

/// The parent's ifindex in the host netns; missing is error 7.
fn parent_index(master: &str) -> Result<u32> {
    host_netlink()?
        .link_index(master)
        .map_err(|e| Error::netsetup("look up master", e))?
        .ok_or_else(|| {
            Error::new(
                code::INVALID_CONFIG,
                format!("master interface {master} does not exist"),
            )
        })
}

fn add(env: &Env, conf: &NetConf, s: &Settings, master: &str, mode: MacvlanMode) -> Result<Value> {
    let cid = env.require_container_id()?;
    let ifname = env.require_ifname()?;
    let netns_path = env.require_netns()?;
    if !conf.runtime_config.port_mappings.is_empty() {
        return Err(Error::new(
            code::UNSUPPORTED_FIELD,
            "portMappings: macvlan has no NAT; chain the portmap plugin or use the bridge driver",
        ));
    }
    let key = attachment_key(cid, ifname);
    let want = s.requested_ip(env, conf)?;
    let parent = parent_index(master)?;
    let ns = open_netns(netns_path)?;
    let ipam = s.ipam()?;
    let addr = match want {
        Some(ip) => ipam.allocate_addr(&key, ip, None),
        None => ipam.allocate(&key, None),
    }
    .map_err(|e| Error::netsetup("allocate an address", e))?;
    let undo_ipam = |e: Error| {
        if let Err(e2) = ipam.release(&key) {
            tracing::warn!(key, error = %e2, "undo: release the address");
        }
        e
    };
    host_netlink()
        .and_then(|mut nl| {
            nl.create_macvlan(&MacvlanSpec {
                name: ifname,
                parent,
                mode,
                netns: Some(ns.as_fd()),
                mac: None,
                mtu: conf.mtu,
            })
            .map_err(|e| Error::netsetup(&format!("create macvlan {ifname} on {master}"), e))
        })
        .map_err(undo_ipam)?;
    let configured = (|| -> Result<Interface> {
        let mut cnl = ns
            .netlink()
            .map_err(|e| Error::netsetup("open rtnetlink in CNI_NETNS", e))?;
        let index = cnl
            .link_index(ifname)
            .map_err(|e| Error::netsetup("look up the macvlan", e))?
            .ok_or_else(|| Error::new(code::IO_FAILURE, format!("{ifname} vanished")))?;
        cnl.configure_interface(
            index,
            IpAddr::V4(addr),
            s.subnet.prefix_len(),
            Some(IpAddr::V4(s.gateway)),
            true,
        )
        .map_err(|e| Error::netsetup("configure the macvlan", e))?;
        let (mac, mtu) = mac_of(&mut cnl, ifname)?;
        Ok(Interface {
            name: ifname.to_string(),
            mac,
            mtu,
            sandbox: Some(netns_path.to_string()),
        })
    })();
    let iface = match configured {
        Ok(i) => i,
        Err(e) => {
            delete_in_netns(netns_path, ifname);
            return Err(undo_ipam(e));
        }
    };
    let gw = IpAddr::V4(s.gateway);
    let result = CniResult {
        interfaces: vec![iface],
        ips: vec![IpConfig {
            address: format!("{addr}/{}", s.subnet.prefix_len()),
            gateway: Some(gw),
            interface: Some(0),
        }],
        routes: vec![Route {
            dst: "0.0.0.0/0".into(),
            gw: Some(gw),
        }],
        dns: conf.dns.clone().unwrap_or_default(),
    };
    tracing::info!(network = %s.network, container = cid, ifname, %addr, master, "CNI ADD (macvlan) done");
    result.render(&conf.cni_version, conf.prev_result.as_ref())
}

/// Delete macvlan `ifname` inside the netns at `path`, if both exist (best effort).
fn delete_in_netns(path: &str, ifname: &str) {
    let Ok(ns) = berth_netsetup::NetNs::from_path(path) else {
        return;
    };
    let res = ns
        .netlink()
        .and_then(|mut nl| match nl.link_by_name(ifname)? {
            Some(l) if l.kind.as_deref() == Some("macvlan") => nl.delete_link(l.index),
            _ => Ok(()),
        });
    if let Err(e) = res {
        tracing::warn!(path, ifname, error = %e, "delete the macvlan");
    }
}

fn del(env: &Env, s: &Settings) -> Result<()> {
    let key = attachment_key(env.require_container_id()?, env.require_ifname()?);
    let ipam = s.ipam()?;
    // Nothing recorded: nothing of ours to delete (the interface could be another plugin's).
    if ipam
        .lookup(&key)
        .map_err(|e| Error::netsetup("read IPAM state", e))?
        .is_none()
    {
        return Ok(());
    }
    // The macvlan dies with its netns; while the netns lives, delete it.
    if let (Some(path), Some(ifname)) = (env.netns.as_deref(), env.ifname.as_deref()) {
        if std::path::Path::new(path).exists() {
            delete_in_netns(path, ifname);
        }
    }
    ipam.release(&key)
        .map_err(|e| Error::netsetup("release the address", e))?;
    Ok(())
}

fn check(env: &Env, conf: &NetConf, s: &Settings) -> Result<()> {
    let (netns_path, ifname, alloc) = check_record(env, s)?;
    let ns = open_netns(netns_path)?;
    check_in_netns(&ns, netns_path, ifname, Some("macvlan"), alloc.addr, s)?;
    check_prev_result(conf, alloc.addr, s.subnet.prefix_len())
}

/// STATUS: [`status_common`] and the parent exists (else 50).
fn status(s: &Settings, master: &str) -> Result<()> {
    status_common(s)?;
    parent_index(master).map_err(|e| Error::new(code::PLUGIN_NOT_AVAILABLE, e.msg))?;
    Ok(())
}
