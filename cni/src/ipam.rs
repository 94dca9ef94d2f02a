//! IPAM mode: another plugin's `"ipam": {"type": "berth-cni", …}`. Only
//! addresses are allocated and returned (`ips`, `routes`, `dns`); no
//! interface, bridge or firewall rule is touched.

use std::net::IpAddr;

use serde_json::Value;

use crate::error::{code, Error, Result};
use crate::types::{CniResult, Command, Env, IpConfig, NetConf};
use crate::{attachment_key, release_stale, status_common, Settings};

pub(crate) fn run(env: &Env, conf: &NetConf, s: &Settings) -> Result<Option<Value>> {
    let ipam = s.ipam()?;
    let key = || -> Result<String> {
        Ok(attachment_key(
            env.require_container_id()?,
            env.require_ifname()?,
        ))
    };
    match env.command {
        Command::Add => {
            let key = key()?;
            let addr = match s.requested_ip(env, conf)? {
                Some(ip) => ipam.allocate_addr(&key, ip, None),
                None => ipam.allocate(&key, None),
            }
            .map_err(|e| Error::netsetup("allocate an address", e))?;
            let result = CniResult {
                interfaces: Vec::new(),
                ips: vec![IpConfig {
                    address: format!("{addr}/{}", s.subnet.prefix_len()),
                    gateway: Some(IpAddr::V4(s.gateway)),
                    interface: None,
                }],
                routes: conf
                    .ipam
                    .as_ref()
                    .map(|i| i.routes.clone())
                    .unwrap_or_default(),
                dns: conf.dns.clone().unwrap_or_default(),
            };
            tracing::info!(network = %s.network, key, %addr, "CNI IPAM ADD done");
            // An IPAM plugin's result is its own, never merged into prevResult.
            result.render(&conf.cni_version, None).map(Some)
        }
        Command::Del => {
            ipam.release(&key()?)
                .map_err(|e| Error::netsetup("release the address", e))?;
            Ok(None)
        }
        Command::Check => {
            let key = key()?;
            match ipam
                .lookup(&key)
                .map_err(|e| Error::netsetup("read IPAM state", e))?
            {
                Some(_) => Ok(None),
                None => Err(Error::new(
                    code::CHECK_FAILED,
                    format!("no address recorded for {key} on network {}", s.network),
                )),
            }
        }
        Command::Gc => release_stale(conf, s).map(|()| None),
        Command::Status => status_common(s).map(|_| None),
        Command::Version => Err(Error::new(code::INVALID_ENV, "VERSION is answered earlier")),
    }
}
