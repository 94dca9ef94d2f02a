//! The CNI protocol's data: the environment, the network configuration on
//! stdin, and the result printed on stdout (SPEC.md of
//! containernetworking/cni, versions 0.4.0, 1.0.0 and 1.1.0).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{code, Error, Result};

/// The spec versions this plugin speaks (`VERSION` lists them).
pub const SUPPORTED_VERSIONS: [&str; 3] = ["0.4.0", "1.0.0", "1.1.0"];

/// The newest supported version (used for answers when the request's is unknown).
pub const LATEST_VERSION: &str = "1.1.0";

/// `CNI_COMMAND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Attach the container.
    Add,
    /// Detach it (idempotent).
    Del,
    /// Verify the attachment is as ADD left it.
    Check,
    /// List the supported spec versions.
    Version,
    /// Is the plugin ready to ADD? (1.1.0)
    Status,
    /// Remove attachments not in `cni.dev/valid-attachments` (1.1.0).
    Gc,
}

impl Command {
    /// Parse a `CNI_COMMAND` value.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "ADD" => Self::Add,
            "DEL" => Self::Del,
            "CHECK" => Self::Check,
            "VERSION" => Self::Version,
            "STATUS" => Self::Status,
            "GC" => Self::Gc,
            other => {
                return Err(Error::new(
                    code::INVALID_ENV,
                    format!(
                        "CNI_COMMAND {other:?} is not one of ADD, DEL, CHECK, VERSION, STATUS, GC"
                    ),
                ))
            }
        })
    }
}

/// The `CNI_*` environment of one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// `CNI_CONTAINERID`.
    pub container_id: Option<String>,
    /// `CNI_NETNS`: path of the container's network namespace.
    pub netns: Option<String>,
    /// `CNI_IFNAME`: the interface to create inside the container.
    pub ifname: Option<String>,
    /// `CNI_ARGS` as `KEY=VALUE` pairs.
    pub args: Vec<(String, String)>,
    /// `CNI_PATH`: where plugins are looked up.
    pub path: Option<String>,
}

impl Env {
    /// Read the environment through `var` (e.g. `|k| std::env::var(k).ok()`).
    /// Empty values count as absent. A missing or unknown `CNI_COMMAND`, or
    /// a `CNI_ARGS` entry without `=`, is error 4.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |k: &str| var(k).filter(|v| !v.is_empty());
        let command = get("CNI_COMMAND")
            .ok_or_else(|| Error::new(code::INVALID_ENV, "CNI_COMMAND is not set"))?;
        let command = Command::parse(&command)?;
        let mut args = Vec::new();
        if let Some(a) = get("CNI_ARGS") {
            for kv in a.split(';').filter(|s| !s.is_empty()) {
                let (k, v) = kv.split_once('=').ok_or_else(|| {
                    Error::new(
                        code::INVALID_ENV,
                        format!("CNI_ARGS entry {kv:?} is not KEY=VALUE"),
                    )
                })?;
                args.push((k.to_string(), v.to_string()));
            }
        }
        Ok(Self {
            command,
            container_id: get("CNI_CONTAINERID"),
            netns: get("CNI_NETNS"),
            ifname: get("CNI_IFNAME"),
            args,
            path: get("CNI_PATH"),
        })
    }

    /// A `CNI_ARGS` value.
    pub fn arg(&self, key: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `CNI_CONTAINERID`, checked against the spec's alphabet
    /// (alphanumeric first, then alphanumerics, `_`, `.`, `-`); error 4.
    pub fn require_container_id(&self) -> Result<&str> {
        let id = self
            .container_id
            .as_deref()
            .ok_or_else(|| Error::new(code::INVALID_ENV, "CNI_CONTAINERID is not set"))?;
        let ok = id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !ok {
            return Err(Error::new(
                code::INVALID_ENV,
                format!("CNI_CONTAINERID {id:?} must be [A-Za-z0-9][A-Za-z0-9_.-]*"),
            ));
        }
        Ok(id)
    }

    /// `CNI_IFNAME`, a valid interface name (1–15 bytes, …); error 4.
    pub fn require_ifname(&self) -> Result<&str> {
        let n = self
            .ifname
            .as_deref()
            .ok_or_else(|| Error::new(code::INVALID_ENV, "CNI_IFNAME is not set"))?;
        berth_netsetup::validate_ifname(n)
            .map_err(|e| Error::new(code::INVALID_ENV, format!("CNI_IFNAME: {e}")))?;
        Ok(n)
    }

    /// `CNI_NETNS`; error 4 when unset.
    pub fn require_netns(&self) -> Result<&str> {
        self.netns
            .as_deref()
            .ok_or_else(|| Error::new(code::INVALID_ENV, "CNI_NETNS is not set"))
    }
}

/// A route (SPEC.md "Routes"): `dst` in CIDR form, optional next hop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination, CIDR.
    pub dst: String,
    /// Next hop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

/// DNS settings (SPEC.md "DNS"); passed through from the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// Local domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// Resolver options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    /// Nothing set.
    pub fn is_empty(&self) -> bool {
        self == &Dns::default()
    }
}

/// The `ipam` dictionary, for this plugin's own IPAM.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamConf {
    /// The IPAM plugin's executable name.
    #[serde(rename = "type", default)]
    pub plugin_type: String,
    /// IPv4 subnet, CIDR.
    #[serde(default)]
    pub subnet: Option<String>,
    /// Gateway (default: the subnet's first address).
    #[serde(default)]
    pub gateway: Option<String>,
    /// Routes to return (IPAM-only mode).
    #[serde(default)]
    pub routes: Vec<Route>,
    /// State directory.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
}

/// One `runtimeConfig.portMappings` entry (CONVENTIONS.md).
///
/// Keys are matched as Go's `encoding/json` (which the reference plugins
/// use) matches them: the exact key, else any key equal to it ignoring
/// ASCII case. containerd's CRI plugin sends `HostPort`, `ContainerPort`,
/// `Protocol`, `HostIP` (go-cni's `PortMapping` has no JSON tags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMappingConf {
    /// Port on the host.
    pub host_port: u16,
    /// Port in the container.
    pub container_port: u16,
    /// `tcp` (default) or `udp`.
    pub protocol: Option<String>,
    /// Only this host address (empty: any).
    pub host_ip: Option<String>,
}

impl<'de> Deserialize<'de> for PortMappingConf {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let m = serde_json::Map::<String, Value>::deserialize(d)?;
        fn field<T: serde::de::DeserializeOwned, E: serde::de::Error>(
            m: &serde_json::Map<String, Value>,
            key: &str,
        ) -> std::result::Result<Option<T>, E> {
            match go_field(m, key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => T::deserialize(v)
                    .map(Some)
                    .map_err(|e| E::custom(format!("portMappings {key}: {e}"))),
            }
        }
        let required = |key: &str| {
            field::<u16, D::Error>(&m, key)?
                .ok_or_else(|| D::Error::custom(format!("portMappings: missing field `{key}`")))
        };
        Ok(Self {
            host_port: required("hostPort")?,
            container_port: required("containerPort")?,
            protocol: field(&m, "protocol")?,
            host_ip: field(&m, "hostIP")?,
        })
    }
}

/// Field `key` of a JSON object as Go's `encoding/json` finds it: the key
/// itself, else the first key equal to it ignoring ASCII case.
fn go_field<'a>(m: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a Value> {
    m.get(key).or_else(|| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// The capability arguments in `runtimeConfig` that this plugin uses.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    /// Published ports (capability `portMappings`).
    #[serde(default)]
    pub port_mappings: Vec<PortMappingConf>,
    /// Requested addresses, CIDR or plain (capability `ips`).
    #[serde(default)]
    pub ips: Vec<String>,
}

/// One `cni.dev/valid-attachments` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GcAttachment {
    /// `CNI_CONTAINERID` of the attachment.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// `CNI_IFNAME` of the attachment.
    pub ifname: String,
}

/// The network configuration on stdin (one plugin's entry of a conf list,
/// with `name`, `cniVersion`, `runtimeConfig`, `prevResult` filled in by the
/// runtime). Unknown fields are ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    /// Spec version of this configuration.
    pub cni_version: String,
    /// Network name.
    pub name: String,
    /// The plugin's executable name.
    #[serde(rename = "type")]
    pub plugin_type: String,
    /// `bridge` (default) or `macvlan`.
    #[serde(default)]
    pub driver: Option<String>,
    /// macvlan: the parent interface on the host.
    #[serde(default)]
    pub master: Option<String>,
    /// macvlan: `bridge` (default), `private`, `vepa` or `passthru`.
    #[serde(default)]
    pub macvlan_mode: Option<String>,
    /// Bridge name (default: derived from the network name).
    #[serde(default)]
    pub bridge: Option<String>,
    /// IPv4 subnet, CIDR (or `ipam.subnet`).
    #[serde(default)]
    pub subnet: Option<String>,
    /// Gateway address on the bridge (default: the subnet's first address).
    #[serde(default)]
    pub gateway: Option<String>,
    /// Masquerade traffic leaving the subnet (default true).
    #[serde(default)]
    pub ip_masq: Option<bool>,
    /// MTU of the bridge and veth pairs.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// Hairpin mode on each pod's bridge port (default true): a pod
    /// reaches itself through its own published port or a Service address.
    #[serde(default)]
    pub hairpin_mode: Option<bool>,
    /// State directory (IPAM files, nft lock); default [`crate::DEFAULT_DATA_DIR`].
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// IPAM settings.
    #[serde(default)]
    pub ipam: Option<IpamConf>,
    /// DNS settings, returned in the result.
    #[serde(default)]
    pub dns: Option<Dns>,
    /// Capability arguments from the runtime.
    #[serde(default)]
    pub runtime_config: RuntimeConfig,
    /// The previous plugin's result (chained ADD; CHECK and DEL).
    #[serde(default)]
    pub prev_result: Option<Value>,
    /// GC: the attachments to keep.
    #[serde(default, rename = "cni.dev/valid-attachments")]
    pub valid_attachments: Option<Vec<GcAttachment>>,
    /// GC: the same list under the name an earlier draft used.
    #[serde(default, rename = "cni.dev/attachments")]
    pub attachments: Option<Vec<GcAttachment>>,
}

impl NetConf {
    /// Decode stdin: not JSON is error 6, JSON of the wrong shape error 7,
    /// an unsupported `cniVersion` error 1.
    pub fn parse(stdin: &[u8]) -> Result<Self> {
        Self::checked(serde_json::from_slice(stdin).map_err(decode_error)?)
    }

    /// [`NetConf::parse`] for DEL, which uses no capability argument: a
    /// `runtimeConfig` it cannot read is left out rather than refused,
    /// since a DEL that fails leaves the runtime unable ever to remove the
    /// sandbox (containerd retries StopPodSandbox forever).
    pub fn parse_for_del(stdin: &[u8]) -> Result<Self> {
        let err = match Self::parse(stdin) {
            Err(e) if e.code == code::INVALID_CONFIG => e,
            other => return other,
        };
        let mut v: Value = serde_json::from_slice(stdin).map_err(decode_error)?;
        if v.as_object_mut()
            .and_then(|m| m.remove("runtimeConfig"))
            .is_none()
        {
            return Err(err);
        }
        let conf = Self::checked(serde_json::from_value(v).map_err(decode_error)?)?;
        tracing::warn!(msg = %err.msg, "DEL: runtimeConfig left out");
        Ok(conf)
    }

    /// The checks after decoding: the version and the network name.
    fn checked(conf: NetConf) -> Result<Self> {
        check_version(&conf.cni_version)?;
        let name_ok = conf
            .name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
            && conf
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !name_ok || conf.name.len() > 64 {
            return Err(Error::new(
                code::INVALID_CONFIG,
                format!(
                    "network name {:?} must be 1-64 of [A-Za-z0-9_.-], starting alphanumeric",
                    conf.name
                ),
            ));
        }
        Ok(conf)
    }

    /// True for spec versions that have STATUS and GC (≥ 1.1.0).
    pub fn has_status_and_gc(&self) -> bool {
        self.cni_version == "1.1.0"
    }

    /// The GC keep list (`cni.dev/valid-attachments`, or the older name).
    pub fn keep_list(&self) -> Option<&[GcAttachment]> {
        self.valid_attachments
            .as_deref()
            .or(self.attachments.as_deref())
    }
}

/// Map a serde_json error: syntax → 6, shape → 7.
pub fn decode_error(e: serde_json::Error) -> Error {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data => Error::new(
            code::INVALID_CONFIG,
            format!("invalid network configuration: {e}"),
        ),
        _ => Error::new(
            code::DECODE_FAILURE,
            format!("network configuration on stdin is not JSON: {e}"),
        ),
    }
}

/// Error 1 unless `v` is one of [`SUPPORTED_VERSIONS`].
pub fn check_version(v: &str) -> Result<()> {
    if SUPPORTED_VERSIONS.contains(&v) {
        Ok(())
    } else {
        Err(Error::new(
            code::INCOMPATIBLE_VERSION,
            format!(
                "cniVersion {v:?} is not supported (supported: {})",
                SUPPORTED_VERSIONS.join(", ")
            ),
        ))
    }
}

/// The answer to `VERSION`.
pub fn version_result(request_version: Option<&str>) -> Value {
    let v = request_version
        .filter(|v| SUPPORTED_VERSIONS.contains(v))
        .unwrap_or(LATEST_VERSION);
    serde_json::json!({ "cniVersion": v, "supportedVersions": SUPPORTED_VERSIONS })
}

/// An interface in a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Interface {
    /// Name.
    pub name: String,
    /// MAC address `aa:bb:cc:dd:ee:ff`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// MTU (1.1.0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The netns path, for an interface inside the container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

/// An address in a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IpConfig {
    /// Address with prefix length.
    pub address: String,
    /// Gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces` (absent in an IPAM plugin's result).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// A plugin's own result, before it is merged with `prevResult` and
/// rendered for the configuration's version ([`CniResult::render`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniResult {
    /// Interfaces created.
    pub interfaces: Vec<Interface>,
    /// Addresses (their `interface` indexes count from this result's own list).
    pub ips: Vec<IpConfig>,
    /// Routes.
    pub routes: Vec<Route>,
    /// DNS.
    pub dns: Dns,
}

impl CniResult {
    /// The result JSON for `cni_version`, appended to `prev` (a chained
    /// plugin's `prevResult`, kept as is, with unknown fields): interfaces,
    /// ips (indexes shifted past `prev`'s interfaces) and routes are
    /// appended; `dns` is `prev`'s unless it had none. 0.4.0 results carry
    /// `"version": "4"|"6"` on every ip, 1.x results none.
    pub fn render(&self, cni_version: &str, prev: Option<&Value>) -> Result<Value> {
        let mut out = match prev {
            Some(Value::Object(m)) => Value::Object(m.clone()),
            Some(Value::Null) | None => Value::Object(Default::default()),
            Some(_) => {
                return Err(Error::new(
                    code::INVALID_CONFIG,
                    "prevResult is not a JSON object",
                ))
            }
        };
        let base = out
            .get("interfaces")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let mut append = |key: &str, items: Vec<Value>| -> Result<()> {
            if items.is_empty() {
                return Ok(());
            }
            let slot = out
                .as_object_mut()
                .map(|m| m.entry(key).or_insert_with(|| Value::Array(Vec::new())));
            match slot {
                Some(Value::Array(a)) => {
                    a.extend(items);
                    Ok(())
                }
                _ => Err(Error::new(
                    code::INVALID_CONFIG,
                    format!("prevResult.{key} is not a list"),
                )),
            }
        };
        // `mtu` on an interface is new in 1.1.0.
        let with_mtu = cni_version == "1.1.0";
        let interfaces = self
            .interfaces
            .iter()
            .map(|i| {
                let mut i = i.clone();
                if !with_mtu {
                    i.mtu = None;
                }
                to_value(&i)
            })
            .collect();
        append("interfaces", interfaces)?;
        let ips = self
            .ips
            .iter()
            .map(|ip| {
                let mut ip = ip.clone();
                ip.interface = ip.interface.map(|i| i + base);
                to_value(&ip)
            })
            .collect();
        append("ips", ips)?;
        append("routes", self.routes.iter().map(to_value).collect())?;
        if let Some(m) = out.as_object_mut() {
            if !self.dns.is_empty() && m.get("dns").is_none_or(|d| d == &serde_json::json!({})) {
                m.insert("dns".into(), to_value(&self.dns));
            }
            m.insert("cniVersion".into(), cni_version.into());
            if let Some(Value::Array(ips)) = m.get_mut("ips") {
                for ip in ips.iter_mut().filter_map(Value::as_object_mut) {
                    if cni_version == "0.4.0" {
                        let v6 = ip
                            .get("address")
                            .and_then(Value::as_str)
                            .is_some_and(|a| a.contains(':'));
                        ip.insert("version".into(), if v6 { "6" } else { "4" }.into());
                    } else {
                        ip.remove("version");
                    }
                }
            }
        }
        Ok(out)
    }
}

/// `serde_json::to_value` for the result types, which only hold strings,
/// numbers and addresses: serializing them cannot fail.
fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// A MAC address as the spec writes it.
pub fn format_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parse `a.b.c.d` or `a.b.c.d/len` (a requested address); anything else is error 7.
pub fn parse_requested_ip(s: &str) -> Result<(Ipv4Addr, Option<u8>)> {
    let bad = |why: &str| {
        Error::new(
            code::INVALID_CONFIG,
            format!("requested address {s:?}: {why}"),
        )
    };
    let (a, len) = match s.split_once('/') {
        Some((a, l)) => (
            a,
            Some(l.parse::<u8>().map_err(|_| bad("bad prefix length"))?),
        ),
        None => (s, None),
    };
    match a.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => Ok((v4, len)),
        Ok(IpAddr::V6(_)) => Err(Error::new(
            code::UNSUPPORTED_FIELD,
            format!("requested address {s:?}: IPv6 is not supported yet"),
        )),
        Err(_) => Err(bad("not an IP address")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn env_parsing() {
        let vars = |m: Vec<(&'static str, &'static str)>| {
            move |k: &str| m.iter().find(|(a, _)| *a == k).map(|(_, v)| v.to_string())
        };
        let e = Env::from_vars(vars(vec![
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_NETNS", "/run/netns/x"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "IgnoreUnknown=1;IP=10.1.0.9"),
        ]))
        .unwrap();
        assert_eq!(e.command, Command::Add);
        assert_eq!(e.arg("IP"), Some("10.1.0.9"));
        assert_eq!(e.require_container_id().unwrap(), "abc");
        let code_of = |m| Env::from_vars(vars(m)).unwrap_err().code;
        assert_eq!(code_of(vec![]), code::INVALID_ENV);
        assert_eq!(code_of(vec![("CNI_COMMAND", "FOO")]), code::INVALID_ENV);
        assert_eq!(
            code_of(vec![("CNI_COMMAND", "ADD"), ("CNI_ARGS", "novalue")]),
            code::INVALID_ENV
        );
        let e = Env::from_vars(vars(vec![
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "-bad"),
            ("CNI_IFNAME", "a/b"),
        ]))
        .unwrap();
        assert_eq!(e.require_container_id().unwrap_err().code, 4);
        assert_eq!(e.require_ifname().unwrap_err().code, 4);
        assert_eq!(e.require_netns().unwrap_err().code, 4);
    }

    #[test]
    fn conf_parsing_and_errors() {
        let c = NetConf::parse(
            br#"{"cniVersion":"1.1.0","name":"N","type":"berth-cni","subnet":"10.99.0.0/24",
                "runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],
                                 "ips":["10.99.0.7/24"]},
                "cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}],
                "somethingElse": 3}"#,
        )
        .unwrap();
        assert_eq!(c.subnet.as_deref(), Some("10.99.0.0/24"));
        assert_eq!(c.runtime_config.port_mappings[0].host_port, 8080);
        assert_eq!(c.runtime_config.ips, ["10.99.0.7/24"]);
        assert_eq!(c.keep_list().unwrap()[0].container_id, "c1");
        assert!(c.has_status_and_gc());
        let code_of = |s: &str| NetConf::parse(s.as_bytes()).unwrap_err().code;
        assert_eq!(code_of("{not json"), code::DECODE_FAILURE);
        assert_eq!(code_of(""), code::DECODE_FAILURE);
        assert_eq!(
            code_of(r#"{"cniVersion":"0.3.1","name":"n","type":"t"}"#),
            code::INCOMPATIBLE_VERSION
        );
        assert_eq!(
            code_of(r#"{"cniVersion":"1.0.0","name":"n","type":"t","mtu":"big"}"#),
            code::INVALID_CONFIG
        );
        assert_eq!(
            code_of(r#"{"cniVersion":"1.0.0","type":"t"}"#),
            code::INVALID_CONFIG
        );
        assert_eq!(
            code_of(r#"{"cniVersion":"1.0.0","name":"-x","type":"t"}"#),
            code::INVALID_CONFIG
        );
    }

    #[test]
    fn port_mapping_keys_match_as_in_go() {
        let pm = |entry: &str| {
            NetConf::parse(
                format!(
                    r#"{{"cniVersion":"1.0.0","name":"n","type":"berth-cni","runtimeConfig":{{"portMappings":[{entry}]}}}}"#
                )
                .as_bytes(),
            )
            .map(|c| c.runtime_config.port_mappings[0].clone())
        };
        // containerd's CRI plugin (go-cni's untagged Go struct).
        let c =
            pm(r#"{"HostPort":12000,"ContainerPort":80,"Protocol":"tcp","HostIP":""}"#).unwrap();
        assert_eq!(
            (
                c.host_port,
                c.container_port,
                c.protocol.as_deref(),
                c.host_ip.as_deref()
            ),
            (12000, 80, Some("tcp"), Some(""))
        );
        let c = pm(r#"{"hostport":1,"CONTAINERPORT":2,"hostIp":"127.0.0.1"}"#).unwrap();
        assert_eq!((c.host_port, c.container_port), (1, 2));
        assert_eq!(c.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(c.protocol, None);
        // The exact key wins over a case-insensitive one, as in Go.
        assert_eq!(
            pm(r#"{"HostPort":1,"hostPort":3,"containerPort":2}"#)
                .unwrap()
                .host_port,
            3
        );
        assert_eq!(
            pm(r#"{"containerPort":2}"#).unwrap_err().code,
            code::INVALID_CONFIG
        );
        assert_eq!(
            pm(r#"{"hostPort":"1","containerPort":2}"#)
                .unwrap_err()
                .code,
            code::INVALID_CONFIG
        );
        assert_eq!(
            pm(r#"{"hostPort":1,"containerPort":70000}"#)
                .unwrap_err()
                .code,
            7
        );
    }

    #[test]
    fn del_leaves_out_an_unreadable_runtime_config() {
        let bad = br#"{"cniVersion":"1.0.0","name":"n","type":"berth-cni","runtimeConfig":{"portMappings":[{"hostPort":"x"}]}}"#;
        assert_eq!(NetConf::parse(bad).unwrap_err().code, code::INVALID_CONFIG);
        let c = NetConf::parse_for_del(bad).unwrap();
        assert!(c.runtime_config.port_mappings.is_empty());
        // Anything else wrong is still an error for DEL.
        let bad = br#"{"cniVersion":"1.0.0","name":"n/x","type":"berth-cni","runtimeConfig":{"ips":[1]}}"#;
        assert_eq!(
            NetConf::parse_for_del(bad).unwrap_err().code,
            code::INVALID_CONFIG
        );
        let bad = br#"{"cniVersion":"1.0.0","name":"n","type":7}"#;
        assert_eq!(
            NetConf::parse_for_del(bad).unwrap_err().code,
            code::INVALID_CONFIG
        );
        assert_eq!(
            NetConf::parse_for_del(b"{x").unwrap_err().code,
            code::DECODE_FAILURE
        );
    }

    #[test]
    fn version_answer() {
        let v = version_result(Some("0.4.0"));
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(v["supportedVersions"], json!(["0.4.0", "1.0.0", "1.1.0"]));
        assert_eq!(version_result(Some("9.9.9"))["cniVersion"], "1.1.0");
    }

    fn sample() -> CniResult {
        CniResult {
            interfaces: vec![
                Interface {
                    name: "br".into(),
                    mac: Some("02:00:00:00:00:01".into()),
                    mtu: None,
                    sandbox: None,
                },
                Interface {
                    name: "eth0".into(),
                    mac: None,
                    mtu: Some(1500),
                    sandbox: Some("/run/netns/x".into()),
                },
            ],
            ips: vec![IpConfig {
                address: "10.99.0.2/24".into(),
                gateway: Some("10.99.0.1".parse().unwrap()),
                interface: Some(1),
            }],
            routes: vec![Route {
                dst: "0.0.0.0/0".into(),
                gw: Some("10.99.0.1".parse().unwrap()),
            }],
            dns: Dns {
                nameservers: vec!["10.99.0.1".into()],
                ..Dns::default()
            },
        }
    }

    #[test]
    fn result_rendering() {
        let v = sample().render("1.1.0", None).unwrap();
        assert_eq!(v["cniVersion"], "1.1.0");
        assert_eq!(v["interfaces"][1]["sandbox"], "/run/netns/x");
        assert_eq!(v["ips"][0]["interface"], 1);
        assert_eq!(v["ips"][0]["address"], "10.99.0.2/24");
        assert!(v["ips"][0].get("version").is_none());
        assert_eq!(v["routes"][0]["dst"], "0.0.0.0/0");
        assert_eq!(v["dns"]["nameservers"][0], "10.99.0.1");
        assert_eq!(v["interfaces"][1]["mtu"], 1500);
        let v = sample().render("0.4.0", None).unwrap();
        assert_eq!(v["ips"][0]["version"], "4");
        assert!(v["interfaces"][1].get("mtu").is_none(), "mtu is 1.1.0's");
    }

    #[test]
    fn result_appends_to_prev_result() {
        let prev = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "lo", "sandbox": "/run/netns/x", "pciID": "keep"}],
            "ips": [{"address": "127.0.0.1/8", "interface": 0, "version": "4"}],
            "dns": {"nameservers": ["1.1.1.1"]},
            "custom": true
        });
        let v = sample().render("1.0.0", Some(&prev)).unwrap();
        let ifs = v["interfaces"].as_array().unwrap();
        assert_eq!(ifs.len(), 3);
        assert_eq!(ifs[0]["pciID"], "keep");
        assert_eq!(v["ips"][0]["interface"], 0);
        assert_eq!(
            v["ips"][1]["interface"], 2,
            "shifted past prevResult's interfaces"
        );
        assert!(v["ips"][0].get("version").is_none());
        assert_eq!(
            v["dns"]["nameservers"][0], "1.1.1.1",
            "prevResult's dns kept"
        );
        assert_eq!(v["custom"], true);
        assert_eq!(
            sample()
                .render("1.0.0", Some(&json!([1])))
                .unwrap_err()
                .code,
            code::INVALID_CONFIG
        );
        assert_eq!(
            sample()
                .render("1.0.0", Some(&json!({"ips": 3})))
                .unwrap_err()
                .code,
            code::INVALID_CONFIG
        );
    }

    #[test]
    fn requested_ips() {
        assert_eq!(
            parse_requested_ip("10.0.0.5/24").unwrap(),
            ("10.0.0.5".parse().unwrap(), Some(24))
        );
        assert_eq!(
            parse_requested_ip("10.0.0.5").unwrap(),
            ("10.0.0.5".parse().unwrap(), None)
        );
        assert_eq!(parse_requested_ip("x").unwrap_err().code, 7);
        assert_eq!(parse_requested_ip("fd00::1/64").unwrap_err().code, 2);
    }
}
