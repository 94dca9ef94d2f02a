//! Bridge mode: berth-netsetup's bridge network as a CNI plugin.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use berth_netsetup::{Attach, BridgeNetwork, Firewall, NetNs, Netlink};
use serde_json::Value;

use crate::error::{code, Error, Result};
use crate::types::{format_mac, CniResult, Command, Env, Interface, IpConfig, NetConf, Route};
use crate::{attachment_key, keep_keys, port_mappings, status_common, Settings};

pub(crate) fn run(env: &Env, conf: &NetConf, s: &Settings) -> Result<Option<Value>> {
    match env.command {
        Command::Add => add(env, conf, s).map(Some),
        Command::Del => del(env, s).map(|()| None),
        Command::Check => check(env, conf, s).map(|()| None),
        Command::Status => status(s).map(|()| None),
        Command::Gc => gc(conf, s).map(|()| None),
        Command::Version => Err(Error::new(code::INVALID_ENV, "VERSION is answered earlier")),
    }
}

/// The container's network namespace; a path that does not exist is error 3.
pub(crate) fn open_netns(path: &str) -> Result<NetNs> {
    if !Path::new(path).exists() {
        return Err(Error::new(
            code::CONTAINER_UNKNOWN,
            format!("network namespace {path} does not exist"),
        ));
    }
    NetNs::from_path(path).map_err(|e| Error::netsetup("open CNI_NETNS", e))
}

/// The rtnetlink socket of the plugin's own (the host's) netns.
pub(crate) fn host_netlink() -> Result<Netlink> {
    Netlink::open().map_err(|e| Error::netsetup("open rtnetlink", e))
}

pub(crate) fn mac_of(nl: &mut Netlink, name: &str) -> Result<(Option<String>, Option<u32>)> {
    let l = nl
        .link_by_name(name)
        .map_err(|e| Error::netsetup("look up interface", e))?;
    Ok(l.map_or((None, None), |l| (l.mac.as_deref().map(format_mac), l.mtu)))
}

fn add(env: &Env, conf: &NetConf, s: &Settings) -> Result<Value> {
    let cid = env.require_container_id()?;
    let ifname = env.require_ifname()?;
    let netns_path = env.require_netns()?;
    let key = attachment_key(cid, ifname);
    let want = s.requested_ip(env, conf)?;
    let ports = port_mappings(conf)?;
    // Validate the prevResult shape before changing anything.
    if let Some(p) = &conf.prev_result {
        CniResult::default().render(&conf.cni_version, Some(p))?;
    }
    let ns = open_netns(netns_path)?;
    let mut b = BridgeNetwork::new(&s.network)
        .bridge(&s.bridge)
        .subnet(&s.subnet.to_string())
        .gateway(s.gateway)
        .state_dir(&s.data_dir)
        .masquerade(conf.ip_masq.unwrap_or(true));
    if let Some(m) = conf.mtu {
        b = b.mtu(m);
    }
    let net = b
        .ensure()
        .map_err(|e| Error::netsetup("set up the bridge network", e))?;
    let mut a = Attach::new(&key)
        .ifname(ifname)
        .hairpin(conf.hairpin_mode.unwrap_or(true));
    if let Some(ip) = want {
        a = a.address(ip);
    }
    for p in ports {
        a = a.publish(p);
    }
    let att = net
        .attach(&ns, &a)
        .map_err(|e| Error::netsetup(&format!("attach {cid} as {ifname}"), e))?;
    // From here on an error drops `att`, which detaches fully again.
    let mut host = host_netlink()?;
    let (br_mac, br_mtu) = mac_of(&mut host, &s.bridge)?;
    let (veth_mac, veth_mtu) = mac_of(&mut host, att.host_ifname())?;
    let mut cnl = ns
        .netlink()
        .map_err(|e| Error::netsetup("open rtnetlink in CNI_NETNS", e))?;
    let (c_mac, c_mtu) = mac_of(&mut cnl, ifname)?;
    let gw = IpAddr::V4(att.gateway());
    let result = CniResult {
        interfaces: vec![
            Interface {
                name: s.bridge.clone(),
                mac: br_mac,
                mtu: br_mtu,
                sandbox: None,
            },
            Interface {
                name: att.host_ifname().to_string(),
                mac: veth_mac,
                mtu: veth_mtu,
                sandbox: None,
            },
            Interface {
                name: ifname.to_string(),
                mac: c_mac,
                mtu: c_mtu,
                sandbox: Some(netns_path.to_string()),
            },
        ],
        ips: vec![IpConfig {
            address: format!("{}/{}", att.address(), att.prefix_len()),
            gateway: Some(gw),
            interface: Some(2),
        }],
        routes: vec![Route {
            dst: "0.0.0.0/0".into(),
            gw: Some(gw),
        }],
        dns: conf.dns.clone().unwrap_or_default(),
    };
    let out = result.render(&conf.cni_version, conf.prev_result.as_ref())?;
    tracing::info!(network = %s.network, container = cid, ifname, addr = %att.address(), "CNI ADD done");
    // The attachment outlives this process: DEL (by key) takes it down.
    std::mem::forget(att);
    Ok(out)
}

/// Remove everything of attachment `key` on the host side: the host veth
/// (the kernel deletes its peer in the container with it), the nft rules
/// of its published ports, the IPAM entry — in that order, so a DEL that
/// dies midway is finished by the next one. Nothing recorded: nothing to do.
fn del_key(s: &Settings, ipam: &berth_netsetup::Ipam, key: &str) -> Result<()> {
    let Some(alloc) = ipam
        .lookup(key)
        .map_err(|e| Error::netsetup("read IPAM state", e))?
    else {
        return Ok(());
    };
    if let Some(ifn) = &alloc.host_ifname {
        let mut nl = host_netlink()?;
        match nl.link_by_name(ifn) {
            Ok(Some(l)) if l.kind.as_deref() == Some("veth") => match nl.delete_link(l.index) {
                Ok(()) => {}
                // Gone meanwhile (its netns was destroyed): fine.
                Err(e) if e.raw_os_error() == Some(libc::ENODEV) => {}
                Err(e) => return Err(Error::netsetup(&format!("delete veth {ifn}"), e)),
            },
            Ok(_) => {}
            Err(e) => return Err(Error::netsetup("look up the host veth", e)),
        }
    }
    Firewall::new(&s.data_dir)
        .unpublish(key)
        .map_err(|e| Error::netsetup("remove published ports", e))?;
    ipam.release(key)
        .map_err(|e| Error::netsetup("release the address", e))?;
    Ok(())
}

fn del(env: &Env, s: &Settings) -> Result<()> {
    // CNI_NETNS may be absent or gone: DEL works from the host side only.
    let key = attachment_key(env.require_container_id()?, env.require_ifname()?);
    let ipam = s.ipam()?;
    del_key(s, &ipam, &key)?;
    tracing::info!(network = %s.network, key, "CNI DEL done");
    Ok(())
}

/// CHECK's start in every mode: the environment it needs, and the
/// attachment's IPAM record (none is error 102). Returns `CNI_NETNS`,
/// `CNI_IFNAME` and the record.
pub(crate) fn check_record<'e>(
    env: &'e Env,
    s: &Settings,
) -> Result<(&'e str, &'e str, berth_netsetup::Allocation)> {
    let cid = env.require_container_id()?;
    let ifname = env.require_ifname()?;
    let netns_path = env.require_netns()?;
    let alloc = s
        .ipam()?
        .lookup(&attachment_key(cid, ifname))
        .map_err(|e| Error::netsetup("read IPAM state", e))?
        .ok_or_else(|| {
            Error::new(
                code::CHECK_FAILED,
                format!(
                    "no address recorded for container {cid} interface {ifname} on network {}",
                    s.network
                ),
            )
        })?;
    Ok((netns_path, ifname, alloc))
}

fn check(env: &Env, conf: &NetConf, s: &Settings) -> Result<()> {
    let (netns_path, ifname, alloc) = check_record(env, s)?;
    let failed = |what: String| Error::new(code::CHECK_FAILED, what);
    let ns = open_netns(netns_path)?;
    let mut nl = host_netlink()?;
    let lookup = |nl: &mut Netlink, name: &str| {
        nl.link_by_name(name)
            .map_err(|e| Error::netsetup("look up interface", e))
    };
    let br = lookup(&mut nl, &s.bridge)?
        .filter(|l| l.kind.as_deref() == Some("bridge"))
        .ok_or_else(|| failed(format!("bridge {} is missing", s.bridge)))?;
    if let Some(h) = &alloc.host_ifname {
        match lookup(&mut nl, h)? {
            Some(l) if l.controller == Some(br.index) && l.up => {}
            Some(_) => {
                return Err(failed(format!(
                    "host veth {h} is not up on bridge {}",
                    s.bridge
                )))
            }
            None => return Err(failed(format!("host veth {h} is missing"))),
        }
    }
    check_in_netns(&ns, netns_path, ifname, Some("veth"), alloc.addr, s)?;
    check_prev_result(conf, alloc.addr, s.subnet.prefix_len())
}

/// CHECK inside the container: `ifname` exists (of `kind`, if given), is
/// up, has `addr` with the subnet's prefix, and a default route via the
/// gateway goes out of it; else error 102.
pub(crate) fn check_in_netns(
    ns: &NetNs,
    netns_path: &str,
    ifname: &str,
    kind: Option<&str>,
    addr: Ipv4Addr,
    s: &Settings,
) -> Result<()> {
    let failed = |what: String| Error::new(code::CHECK_FAILED, what);
    let mut cnl = ns
        .netlink()
        .map_err(|e| Error::netsetup("open rtnetlink in CNI_NETNS", e))?;
    let link = cnl
        .link_by_name(ifname)
        .map_err(|e| Error::netsetup("look up interface", e))?
        .ok_or_else(|| failed(format!("{ifname} is missing in {netns_path}")))?;
    if kind.is_some() && link.kind.as_deref() != kind {
        return Err(failed(format!(
            "{ifname} in {netns_path} is a {:?}, not a {kind:?}",
            link.kind
        )));
    }
    if !link.up {
        return Err(failed(format!("{ifname} in {netns_path} is down")));
    }
    let prefix = s.subnet.prefix_len();
    let addrs = cnl
        .addresses(link.index)
        .map_err(|e| Error::netsetup("list addresses", e))?;
    if !addrs
        .iter()
        .any(|(_, a, l)| *a == IpAddr::V4(addr) && *l == prefix)
    {
        return Err(failed(format!(
            "{ifname} in {netns_path} lacks {addr}/{prefix}"
        )));
    }
    let routes = cnl
        .routes(false)
        .map_err(|e| Error::netsetup("list routes", e))?;
    if !routes.iter().any(|r| {
        r.prefix_len == 0 && r.gateway == Some(IpAddr::V4(s.gateway)) && r.oif == Some(link.index)
    }) {
        return Err(failed(format!(
            "no default route via {} on {ifname} in {netns_path}",
            s.gateway
        )));
    }
    Ok(())
}

/// CHECK with a `prevResult`: it must list this attachment's address.
pub(crate) fn check_prev_result(conf: &NetConf, addr: Ipv4Addr, prefix: u8) -> Result<()> {
    let Some(prev) = &conf.prev_result else {
        return Ok(());
    };
    let want = format!("{addr}/{prefix}");
    let listed = prev
        .get("ips")
        .and_then(Value::as_array)
        .is_some_and(|ips| {
            ips.iter()
                .any(|i| i.get("address") == Some(&want.as_str().into()))
        });
    if listed {
        Ok(())
    } else {
        Err(Error::new(
            code::CHECK_FAILED,
            format!("prevResult does not list the attachment's address {want}"),
        ))
    }
}

fn gc(conf: &NetConf, s: &Settings) -> Result<()> {
    let keep = keep_keys(conf)?;
    let ipam = s.ipam()?;
    let all = ipam
        .allocations()
        .map_err(|e| Error::netsetup("read IPAM state", e))?;
    let mut errs = Vec::new();
    for key in all.keys().filter(|k| !keep.contains(*k)) {
        tracing::info!(network = %s.network, key, "GC: removing a stale attachment");
        if let Err(e) = del_key(s, &ipam, key) {
            errs.push(e.msg);
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(Error::new(
            code::IO_FAILURE,
            format!("GC could not remove {} attachment(s)", errs.len()),
        )
        .details(errs.join("; ")))
    }
}

/// STATUS: [`status_common`], rtnetlink usable and the bridge name not
/// taken by another kind of link (else 50); attachments recorded while
/// the bridge is gone is 51 (those containers lost their network).
fn status(s: &Settings) -> Result<()> {
    let attached = status_common(s)?;
    let mut nl = Netlink::open()
        .map_err(|e| Error::new(code::PLUGIN_NOT_AVAILABLE, format!("rtnetlink: {e}")))?;
    let br = nl
        .link_by_name(&s.bridge)
        .map_err(|e| Error::new(code::PLUGIN_NOT_AVAILABLE, format!("rtnetlink: {e}")))?;
    match br {
        Some(l) if l.kind.as_deref() != Some("bridge") => Err(Error::new(
            code::PLUGIN_NOT_AVAILABLE,
            format!("interface {} exists and is not a bridge", s.bridge),
        )),
        None if attached > 0 => Err(Error::new(
            code::LIMITED_CONNECTIVITY,
            format!(
                "bridge {} is gone while {attached} attachment(s) of network {} are recorded",
                s.bridge, s.network
            ),
        )),
        _ => Ok(()),
    }
}
