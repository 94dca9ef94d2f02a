//! `berth-cni`: a [CNI] 1.1 plugin built on berth-netsetup.
//!
//! The runtime (containerd's CRI plugin, CRI-O, podman's CNI backend, …)
//! execs the `berth-cni` binary once per pod and command, with `CNI_*`
//! environment variables and the network configuration on stdin; the
//! binary answers on stdout with a result or an error object. This crate is
//! that protocol ([`execute`]) over berth-netsetup's engine:
//!
//! - **bridge mode** (`"type": "berth-cni"`): a bridge named after the
//!   network (or `bridge`), gateway on it, a veth pair whose container end
//!   is `CNI_IFNAME` inside `CNI_NETNS`, an address from berth's IPAM, a
//!   default route, masquerade NAT (`ipMasq`, default on) and published
//!   ports from the `portMappings` capability — [`berth_netsetup::Network`].
//! - **IPAM mode** (another plugin's `"ipam": {"type": "berth-cni", …}`):
//!   only allocates, and returns `ips`/`routes`; no interface is touched.
//!
//! Commands ADD, DEL (idempotent), CHECK, VERSION, STATUS, GC; spec
//! versions 0.4.0, 1.0.0, 1.1.0. Addresses are keyed by
//! (`CNI_CONTAINERID`, `CNI_IFNAME`) and allocated under berth-netsetup's
//! `flock(2)`, so parallel invocations (one process per pod) never hand out
//! one address twice.
//!
//! ```no_run
//! // What the binary does: read the environment and stdin, answer on stdout.
//! use std::io::Read;
//! let mut stdin = Vec::new();
//! std::io::stdin().read_to_end(&mut stdin).unwrap();
//! let out = berth_cni::execute(|k| std::env::var(k).ok(), &stdin, "berth-cni");
//! if let Some(json) = out.stdout {
//!     println!("{json}");
//! }
//! std::process::exit(out.exit_code);
//! ```
//!
//! [CNI]: https://github.com/containernetworking/cni/blob/main/SPEC.md
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

mod bridge;
mod error;
mod ipam;
mod macvlan;
mod types;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use berth_netsetup::{Ipv4Net, PortMapping};
use serde_json::Value;

pub use error::{code, Error, Result};
pub use types::{
    check_version, decode_error, format_mac, parse_requested_ip, version_result, CniResult,
    Command, Dns, Env, GcAttachment, Interface, IpConfig, IpamConf, NetConf, PortMappingConf,
    Route, RuntimeConfig, LATEST_VERSION, SUPPORTED_VERSIONS,
};

/// State directory when the configuration names none (`dataDir`): IPAM
/// files `<network>.json`/`.lock` and the nft lock. Apart from berth-run's
/// `/run/berth-net`, so a CNI network and a berth-run network of the same
/// name never share an IPAM file.
pub const DEFAULT_DATA_DIR: &str = "/run/berth-cni";

/// The name this plugin is installed under (its `type`).
pub const PLUGIN_NAME: &str = "berth-cni";

/// What to print on stdout and the exit status.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// The result or error object (`None`: print nothing, e.g. after DEL).
    pub stdout: Option<Value>,
    /// 0 on success, 1 with an error object.
    pub exit_code: i32,
}

/// Run one invocation: `var` reads the environment, `stdin` is the network
/// configuration, `self_name` the executable's name (what a configuration's
/// `type` or `ipam.type` calls this plugin). Never panics on bad input:
/// every failure is an error object with its code.
///
/// ```
/// let out = berth_cni::execute(
///     |k| (k == "CNI_COMMAND").then(|| "VERSION".to_string()),
///     br#"{"cniVersion":"1.0.0"}"#,
///     "berth-cni",
/// );
/// assert_eq!(out.exit_code, 0);
/// assert_eq!(out.stdout.unwrap()["supportedVersions"][2], "1.1.0");
/// ```
pub fn execute(var: impl Fn(&str) -> Option<String>, stdin: &[u8], self_name: &str) -> Output {
    match dispatch(&var, stdin, self_name) {
        Ok(stdout) => Output {
            stdout,
            exit_code: 0,
        },
        Err(e) => {
            tracing::warn!(code = e.code, msg = %e.msg, "CNI request failed");
            Output {
                stdout: Some(e.to_json(&answer_version(stdin))),
                exit_code: 1,
            }
        }
    }
}

/// The version to answer an error in: the request's if it is one we speak.
fn answer_version(stdin: &[u8]) -> String {
    serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| {
            v.get("cniVersion")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| LATEST_VERSION.to_string())
}

/// Which role a configuration asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bridge,
    Macvlan,
    Ipam,
}

fn mode_of(conf: &NetConf, self_name: &str) -> Result<Mode> {
    let ours = |t: &str| t == self_name || t == PLUGIN_NAME;
    if let Some(i) = &conf.ipam {
        if ours(&i.plugin_type) && !ours(&conf.plugin_type) {
            return Ok(Mode::Ipam);
        }
    }
    match conf.driver.as_deref() {
        None | Some("bridge") => Ok(Mode::Bridge),
        Some("macvlan") => Ok(Mode::Macvlan),
        Some(other) => Err(Error::new(
            code::INVALID_CONFIG,
            format!("driver {other:?} is not one of bridge, macvlan"),
        )),
    }
}

fn dispatch(
    var: &dyn Fn(&str) -> Option<String>,
    stdin: &[u8],
    self_name: &str,
) -> Result<Option<Value>> {
    let env = Env::from_vars(var)?;
    if env.command == Command::Version {
        // The runtime sends {"cniVersion": "<its version>"}; an empty stdin is tolerated.
        let req = if stdin.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            Some(serde_json::from_slice::<Value>(stdin).map_err(|e| {
                Error::new(
                    code::DECODE_FAILURE,
                    format!("VERSION: stdin is not JSON: {e}"),
                )
            })?)
        };
        let v = req
            .as_ref()
            .and_then(|r| r.get("cniVersion"))
            .and_then(Value::as_str);
        return Ok(Some(version_result(v)));
    }
    let conf = if env.command == Command::Del {
        NetConf::parse_for_del(stdin)?
    } else {
        NetConf::parse(stdin)?
    };
    if matches!(env.command, Command::Status | Command::Gc) && !conf.has_status_and_gc() {
        return Err(Error::new(
            code::INCOMPATIBLE_VERSION,
            format!(
                "{:?} needs cniVersion 1.1.0, the configuration says {}",
                env.command, conf.cni_version
            ),
        ));
    }
    let mode = mode_of(&conf, self_name)?;
    let settings = Settings::of(&conf, mode)?;
    tracing::debug!(command = ?env.command, ?mode, network = %conf.name, "CNI request");
    match mode {
        Mode::Bridge => bridge::run(&env, &conf, &settings),
        Mode::Macvlan => macvlan::run(&env, &conf, &settings),
        Mode::Ipam => ipam::run(&env, &conf, &settings),
    }
}

/// A network's resolved settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    network: String,
    bridge: String,
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    data_dir: PathBuf,
}

impl Settings {
    fn of(conf: &NetConf, mode: Mode) -> Result<Self> {
        let ipam = conf.ipam.as_ref();
        if mode != Mode::Ipam {
            if let Some(i) = ipam {
                if !i.plugin_type.is_empty()
                    && i.plugin_type != conf.plugin_type
                    && i.plugin_type != PLUGIN_NAME
                {
                    return Err(Error::new(
                        code::UNSUPPORTED_FIELD,
                        format!(
                            "ipam.type {:?}: delegating IPAM to another plugin is not supported; \
                             leave ipam out or use {PLUGIN_NAME:?}",
                            i.plugin_type
                        ),
                    ));
                }
            }
        }
        let pick = |top: &Option<String>, sub: Option<&Option<String>>| match mode {
            Mode::Bridge | Mode::Macvlan => top.clone().or_else(|| sub.cloned().flatten()),
            Mode::Ipam => sub.cloned().flatten(),
        };
        let subnet_s = pick(&conf.subnet, ipam.map(|i| &i.subnet)).ok_or_else(|| {
            Error::new(
                code::INVALID_CONFIG,
                match mode {
                    Mode::Bridge | Mode::Macvlan => {
                        "no subnet: set \"subnet\" (e.g. \"10.99.0.0/24\")"
                    }
                    Mode::Ipam => "no ipam.subnet (e.g. \"10.99.0.0/24\")",
                },
            )
        })?;
        if subnet_s.contains(':') {
            return Err(Error::new(
                code::UNSUPPORTED_FIELD,
                format!("subnet {subnet_s:?}: IPv6 is not supported yet"),
            ));
        }
        let subnet: Ipv4Net = subnet_s
            .parse()
            .map_err(|e| Error::new(code::INVALID_CONFIG, format!("subnet: {e}")))?;
        let gateway = match pick(&conf.gateway, ipam.map(|i| &i.gateway)) {
            Some(g) => match g.parse::<IpAddr>() {
                Ok(IpAddr::V4(g)) if subnet.contains(g) => g,
                _ => {
                    return Err(Error::new(
                        code::INVALID_CONFIG,
                        format!("gateway {g:?} is not an IPv4 address inside {subnet}"),
                    ))
                }
            },
            None => subnet.nth(1).ok_or_else(|| {
                Error::new(
                    code::INVALID_CONFIG,
                    format!("subnet {subnet} is too small"),
                )
            })?,
        };
        let data_dir = conf
            .data_dir
            .clone()
            .or_else(|| ipam.and_then(|i| i.data_dir.clone()))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let bridge = match &conf.bridge {
            Some(b) => {
                berth_netsetup::validate_ifname(b)
                    .map_err(|e| Error::new(code::INVALID_CONFIG, format!("bridge: {e}")))?;
                b.clone()
            }
            None => default_bridge_name(&conf.name),
        };
        Ok(Self {
            network: conf.name.clone(),
            bridge,
            subnet,
            gateway,
            data_dir,
        })
    }

    /// The network's IPAM (its state file need not exist).
    fn ipam(&self) -> Result<berth_netsetup::Ipam> {
        berth_netsetup::Ipam::new(&self.data_dir, &self.network, self.subnet, self.gateway)
            .map_err(|e| Error::netsetup("network configuration", e))
    }

    /// The address to request, from the `ips` capability or `CNI_ARGS` `IP=`
    /// (at most one IPv4 address, inside the subnet).
    fn requested_ip(&self, env: &Env, conf: &NetConf) -> Result<Option<Ipv4Addr>> {
        let mut all: Vec<&str> = conf.runtime_config.ips.iter().map(String::as_str).collect();
        all.extend(env.arg("IP"));
        let Some(first) = all.first() else {
            return Ok(None);
        };
        if all.len() > 1 {
            return Err(Error::new(
                code::UNSUPPORTED_FIELD,
                format!("requested addresses {all:?}: only one IPv4 address is supported"),
            ));
        }
        let (ip, len) = parse_requested_ip(first)?;
        if !self.subnet.contains(ip) || len.is_some_and(|l| l != self.subnet.prefix_len()) {
            return Err(Error::new(
                code::INVALID_CONFIG,
                format!("requested address {first:?} is not in {}", self.subnet),
            ));
        }
        Ok(Some(ip))
    }
}

/// `cni-<name>` when that fits in 15 bytes, else `cni-` and 11 hex digits
/// of a hash of the name (stable across versions: FNV-1a).
pub fn default_bridge_name(network: &str) -> String {
    let n = format!("cni-{network}");
    if n.len() <= berth_netsetup::MAX_IFNAME_LEN {
        return n;
    }
    format!("cni-{:011x}", fnv1a(network.as_bytes()) & 0x7ff_ffff_ffff)
}

/// The IPAM (and nft comment) key of an attachment: at most 47 bytes of the
/// container id, `-`, 16 hex digits of a hash of (container id, ifname) —
/// 1–64 of `[A-Za-z0-9_.-]`, as berth-netsetup requires, and distinct for
/// every (container, ifname) pair (a plain `id.ifname` would make `a.b`+`c`
/// and `a`+`b.c` one key).
pub fn attachment_key(container_id: &str, ifname: &str) -> String {
    let h = fnv1a(format!("{container_id}\0{ifname}").as_bytes());
    let keep = container_id
        .char_indices()
        .take_while(|(i, _)| *i < 47)
        .last()
        .map_or(0, |(i, c)| i + c.len_utf8());
    format!("{}-{h:016x}", &container_id[..keep])
}

/// FNV-1a, 64 bits.
fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Published ports from the `portMappings` capability (tcp/udp, IPv4 host addresses).
fn port_mappings(conf: &NetConf) -> Result<Vec<PortMapping>> {
    conf.runtime_config
        .port_mappings
        .iter()
        .map(|p| {
            let proto = p.protocol.as_deref().unwrap_or("tcp").to_ascii_lowercase();
            let mut m = match proto.as_str() {
                "tcp" => PortMapping::tcp(p.host_port, p.container_port),
                "udp" => PortMapping::udp(p.host_port, p.container_port),
                other => {
                    return Err(Error::new(
                        code::UNSUPPORTED_FIELD,
                        format!("portMappings protocol {other:?}: only tcp and udp"),
                    ))
                }
            };
            match p.host_ip.as_deref().filter(|s| !s.is_empty()) {
                None => {}
                Some(s) => match s.parse::<IpAddr>() {
                    Ok(IpAddr::V4(ip)) if !ip.is_unspecified() => m = m.host_ip(ip),
                    Ok(IpAddr::V4(_)) => {}
                    Ok(IpAddr::V6(_)) => {
                        return Err(Error::new(
                            code::UNSUPPORTED_FIELD,
                            format!("portMappings hostIP {s:?}: IPv6 is not supported yet"),
                        ))
                    }
                    Err(_) => {
                        return Err(Error::new(
                            code::INVALID_CONFIG,
                            format!("portMappings hostIP {s:?} is not an IP address"),
                        ))
                    }
                },
            }
            if p.host_port == 0 || p.container_port == 0 {
                return Err(Error::new(
                    code::INVALID_CONFIG,
                    format!("portMappings {p:?}: port 0"),
                ));
            }
            Ok(m)
        })
        .collect()
}

/// Keys of the attachments GC must keep; error 7 when the runtime sent no list.
fn keep_keys(conf: &NetConf) -> Result<std::collections::HashSet<String>> {
    let list = conf.keep_list().ok_or_else(|| {
        Error::new(
            code::INVALID_CONFIG,
            "GC needs cni.dev/valid-attachments (an empty list removes everything)",
        )
    })?;
    Ok(list
        .iter()
        .map(|a| attachment_key(&a.container_id, &a.ifname))
        .collect())
}

/// GC where only IPAM state is ours (IPAM and macvlan modes): release the
/// addresses of attachments not in the keep list.
fn release_stale(conf: &NetConf, s: &Settings) -> Result<()> {
    let keep = keep_keys(conf)?;
    let ipam = s.ipam()?;
    let all = ipam
        .allocations()
        .map_err(|e| Error::netsetup("read IPAM state", e))?;
    for k in all.keys().filter(|k| !keep.contains(*k)) {
        ipam.release(k)
            .map_err(|e| Error::netsetup("release the address", e))?;
    }
    Ok(())
}

/// STATUS checks shared by every mode: the state directory can be created
/// and the IPAM state read (else 50), and the pool is not full (else 50).
/// Returns the number of attachments recorded.
fn status_common(s: &Settings) -> Result<usize> {
    let unavailable = |what: String| Error::new(code::PLUGIN_NOT_AVAILABLE, what);
    std::fs::create_dir_all(&s.data_dir)
        .map_err(|e| unavailable(format!("state directory {}: {e}", s.data_dir.display())))?;
    let allocs = s
        .ipam()?
        .allocations()
        .map_err(|e| unavailable(format!("IPAM state of {}: {e}", s.network)))?;
    // Usable: all but the network, broadcast and gateway addresses.
    let usable = s.subnet.size().saturating_sub(3);
    if allocs.len() as u64 >= usable {
        return Err(unavailable(format!(
            "address pool {} of network {} is exhausted ({} attachments)",
            s.subnet,
            s.network,
            allocs.len()
        )));
    }
    Ok(allocs.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(s: &str) -> NetConf {
        NetConf::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn keys_are_valid_ids_and_distinct() {
        let a = attachment_key("a.b", "c");
        let b = attachment_key("a", "b.c");
        assert_ne!(a, b);
        let long = "f".repeat(64);
        let k = attachment_key(&long, "eth0");
        assert_eq!(k.len(), 47 + 1 + 16);
        assert_ne!(k, attachment_key(&long, "eth1"));
        assert_eq!(attachment_key("c1", "eth0"), attachment_key("c1", "eth0"));
    }

    #[test]
    fn bridge_names() {
        assert_eq!(default_bridge_name("N"), "cni-N");
        let b = default_bridge_name("a-rather-long-network-name");
        assert_eq!(b.len(), 15);
        assert!(berth_netsetup::validate_ifname(&b).is_ok());
        assert_ne!(b, default_bridge_name("a-rather-long-network-name2"));
    }

    #[test]
    fn modes_and_settings() {
        let c =
            conf(r#"{"cniVersion":"1.1.0","name":"N","type":"berth-cni","subnet":"10.99.0.0/24"}"#);
        assert_eq!(mode_of(&c, "berth-cni").unwrap(), Mode::Bridge);
        let s = Settings::of(&c, Mode::Bridge).unwrap();
        assert_eq!(s.bridge, "cni-N");
        assert_eq!(s.gateway, Ipv4Addr::new(10, 99, 0, 1));
        assert_eq!(s.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        let c = conf(
            r#"{"cniVersion":"1.0.0","name":"N","type":"bridge",
                "ipam":{"type":"berth-cni","subnet":"10.98.0.0/16","gateway":"10.98.0.254","dataDir":"/tmp/x"}}"#,
        );
        assert_eq!(mode_of(&c, "berth-cni").unwrap(), Mode::Ipam);
        let s = Settings::of(&c, Mode::Ipam).unwrap();
        assert_eq!(s.gateway, Ipv4Addr::new(10, 98, 0, 254));
        assert_eq!(s.data_dir, PathBuf::from("/tmp/x"));
        let c = conf(
            r#"{"cniVersion":"1.1.0","name":"N","type":"berth-cni","driver":"macvlan","master":"eth0"}"#,
        );
        assert_eq!(mode_of(&c, "berth-cni").unwrap(), Mode::Macvlan);
        let c = conf(r#"{"cniVersion":"1.1.0","name":"N","type":"berth-cni","driver":"vxlan"}"#);
        assert_eq!(
            mode_of(&c, "berth-cni").unwrap_err().code,
            code::INVALID_CONFIG
        );
        let err = |s: &str, m| Settings::of(&conf(s), m).unwrap_err().code;
        assert_eq!(
            err(
                r#"{"cniVersion":"1.1.0","name":"N","type":"berth-cni"}"#,
                Mode::Bridge
            ),
            code::INVALID_CONFIG
        );
        assert_eq!(
            err(
                r#"{"cniVersion":"1.1.0","name":"N","type":"berth-cni","subnet":"10.0.0.0/33"}"#,
                Mode::Bridge
            ),
            code::INVALID_CONFIG
        );
        assert_eq!(
            err(
                r#"{"cniVersion":"1.1.0","name":"N","type":"berth-cni","subnet":"fd00::/64"}"#,
                Mode::Bridge
            ),
            code::UNSUPPORTED_FIELD
        );
        assert_eq!(
            err(
                r#"{"cniVersion":"1.1.0","name":"N","type":"berth-cni","subnet":"10.0.0.0/24","gateway":"10.1.0.1"}"#,
                Mode::Bridge
            ),
            code::INVALID_CONFIG
        );
        assert_eq!(
            err(
                r#"{"cniVersion":"1.1.0","name":"N","type":"berth-cni","subnet":"10.0.0.0/24","ipam":{"type":"host-local"}}"#,
                Mode::Bridge
            ),
            code::UNSUPPORTED_FIELD
        );
    }

    #[test]
    fn ports_and_requested_ips() {
        let c = conf(
            r#"{"cniVersion":"1.1.0","name":"N","type":"berth-cni","subnet":"10.99.0.0/24",
                "runtimeConfig":{"portMappings":[
                    {"hostPort":8080,"containerPort":80,"protocol":"tcp","hostIP":""},
                    {"hostPort":5353,"containerPort":53,"protocol":"UDP","hostIP":"192.0.2.1"}],
                 "ips":["10.99.0.9/24"]}}"#,
        );
        let p = port_mappings(&c).unwrap();
        assert_eq!(p[0], PortMapping::tcp(8080, 80));
        assert_eq!(
            p[1],
            PortMapping::udp(5353, 53).host_ip(Ipv4Addr::new(192, 0, 2, 1))
        );
        let s = Settings::of(&c, Mode::Bridge).unwrap();
        let env = Env::from_vars(|k| (k == "CNI_COMMAND").then(|| "ADD".into())).unwrap();
        assert_eq!(
            s.requested_ip(&env, &c).unwrap(),
            Some(Ipv4Addr::new(10, 99, 0, 9))
        );
        let bad = |pm: &str| {
            let c = conf(&format!(
                r#"{{"cniVersion":"1.1.0","name":"N","type":"berth-cni","runtimeConfig":{{"portMappings":[{pm}]}}}}"#
            ));
            port_mappings(&c).unwrap_err().code
        };
        assert_eq!(
            bad(r#"{"hostPort":1,"containerPort":1,"protocol":"sctp"}"#),
            code::UNSUPPORTED_FIELD
        );
        assert_eq!(
            bad(r#"{"hostPort":1,"containerPort":1,"hostIP":"::1"}"#),
            code::UNSUPPORTED_FIELD
        );
        assert_eq!(
            bad(r#"{"hostPort":1,"containerPort":1,"hostIP":"x"}"#),
            code::INVALID_CONFIG
        );
        assert_eq!(
            bad(r#"{"hostPort":0,"containerPort":1}"#),
            code::INVALID_CONFIG
        );
        let c = conf(
            r#"{"cniVersion":"1.1.0","name":"N","type":"berth-cni","subnet":"10.99.0.0/24","runtimeConfig":{"ips":["10.1.0.9"]}}"#,
        );
        assert_eq!(
            s.requested_ip(&env, &c).unwrap_err().code,
            code::INVALID_CONFIG
        );
    }

    #[test]
    fn execute_maps_protocol_errors() {
        let run = |cmd: &'static str, stdin: &str| {
            execute(
                move |k| (k == "CNI_COMMAND").then(|| cmd.to_string()),
                stdin.as_bytes(),
                "berth-cni",
            )
        };
        let o = run("ADD", "{oops");
        assert_eq!(o.exit_code, 1);
        assert_eq!(o.stdout.as_ref().unwrap()["code"], 6);
        assert_eq!(o.stdout.as_ref().unwrap()["cniVersion"], "1.1.0");
        let o = run(
            "ADD",
            r#"{"cniVersion":"0.2.0","name":"n","type":"berth-cni"}"#,
        );
        assert_eq!(o.stdout.unwrap()["code"], 1);
        let o = run(
            "STATUS",
            r#"{"cniVersion":"1.0.0","name":"n","type":"berth-cni","subnet":"10.0.0.0/24"}"#,
        );
        assert_eq!(o.stdout.unwrap()["code"], 1, "STATUS is 1.1.0 only");
        let o = run(
            "ADD",
            r#"{"cniVersion":"1.0.0","name":"n","type":"berth-cni","subnet":"10.0.0.0/24"}"#,
        );
        let v = o.stdout.unwrap();
        assert_eq!(v["code"], 4, "{v}");
        assert_eq!(
            v["cniVersion"], "1.0.0",
            "errors answer in the request's version"
        );
        let o = execute(|_| None, b"{}", "berth-cni");
        assert_eq!(o.stdout.unwrap()["code"], 4);
        let o = run("VERSION", "");
        assert_eq!(o.exit_code, 0);
        assert_eq!(o.stdout.unwrap()["cniVersion"], "1.1.0");
        assert_eq!(run("VERSION", "{x").stdout.unwrap()["code"], 6);
    }
}
