//! The command line of `berth-run`, parsed by hand (no dependency).

use std::path::PathBuf;

/// Usage text of `berth-run`.
pub const USAGE: &str =
    "usage: berth-run [--rootfs DIR | --image LAYOUT[:REF]] [--name ID] [--hostname H] \
[--memory SIZE] [--cpus N] [--pids N] [--cpuset LIST] [--net none|loopback|bridge|host|pasta] \
[--network NAME [--network-alias A]] [--dns ADDR] [--publish [IP:]HOST:CONT[/tcp|/udp]] [--read-only] \
[--tmpfs PATH] [--volume SRC:DST[:ro]] \
[--user UID[:GID]] [--cap-add CAP] [--cap-drop CAP] [--seccomp default|unconfined|FILE] \
[--env K=V] [--workdir DIR] [--init] [--rootless] [--timeout SECS] -- CMD [ARG...]
       berth-run network create NAME [--driver bridge|macvlan|vxlan] [--subnet CIDR]
           [--parent IF] (macvlan)
           [--vni N --local ADDR --range CIDR --peer ADDR=CIDR... | --peers FILE] (vxlan)
       berth-run network ls
       berth-run network rm NAME...
(user-defined networks live in $BERTH_NETWORK_STATE_DIR, default /run/berth-net;
 --net bridge joins the network berth0, made on first use; not root: --rootless is implied)";

/// `network create --driver vxlan` options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VxlanArgs {
    /// `--vni`.
    pub vni: Option<u32>,
    /// `--local`: this host's underlay address.
    pub local: Option<std::net::Ipv4Addr>,
    /// `--range`: this host's slice of the subnet.
    pub range: Option<String>,
    /// `--peer ADDR=CIDR`: other hosts and their slices.
    pub peers: Vec<(std::net::Ipv4Addr, String)>,
    /// `--peers FILE`: the members file (`ADDR CIDR` lines, every host).
    pub peers_file: Option<PathBuf>,
}

/// `berth-run network ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkCmd {
    /// `network create NAME [--driver D] [--subnet CIDR] [--parent IF]`.
    Create {
        /// Network name.
        name: String,
        /// `--driver` (`bridge` or `macvlan`; checked by `berth::Network`).
        driver: String,
        /// `--subnet`.
        subnet: Option<String>,
        /// `--parent`: macvlan's parent interface.
        parent: Option<String>,
        /// vxlan's options.
        vxlan: VxlanArgs,
    },
    /// `network ls`.
    Ls,
    /// `network rm NAME...`.
    Rm(Vec<String>),
    /// `network serve NAME`: the name responder of overlay NAME (started
    /// by `network create --driver vxlan`; see `resolver`).
    Serve(String),
}

impl NetworkCmd {
    /// Parse the arguments after `network`.
    pub fn parse<I, S>(args: I) -> Result<NetworkCmd, String>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut it = args.into_iter().map(Into::into);
        let sub = it.next().ok_or("network: expected create, ls or rm")?;
        let rest: Vec<String> = it.collect();
        match sub.as_str() {
            "create" => {
                let (mut name, mut driver, mut subnet, mut parent) =
                    (None, "bridge".to_string(), None, None);
                let mut vx = VxlanArgs::default();
                let mut it = rest.into_iter();
                while let Some(arg) = it.next() {
                    let (flag, inline) = match arg.split_once('=') {
                        Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
                        _ => (arg.clone(), None),
                    };
                    let mut value = || {
                        inline
                            .clone()
                            .or_else(|| it.next())
                            .ok_or_else(|| format!("network create: {flag} needs a value"))
                    };
                    match flag.as_str() {
                        "--driver" => driver = value()?,
                        "--subnet" => subnet = Some(value()?),
                        "--parent" => parent = Some(value()?),
                        "--vni" => {
                            let v = value()?;
                            vx.vni = Some(v.parse().map_err(|_| {
                                format!("network create: invalid --vni {v:?}: expected a number")
                            })?);
                        }
                        "--local" => {
                            let v = value()?;
                            vx.local = Some(v.parse().map_err(|_| {
                                format!("network create: invalid --local {v:?}: expected an IPv4 address")
                            })?);
                        }
                        "--range" => vx.range = Some(value()?),
                        "--peer" => {
                            let v = value()?;
                            let bad = || {
                                format!(
                                    "network create: invalid --peer {v:?}: expected ADDRESS=CIDR"
                                )
                            };
                            let (a, r) = v.split_once('=').ok_or_else(bad)?;
                            vx.peers
                                .push((a.parse().map_err(|_| bad())?, r.to_string()));
                        }
                        "--peers" => vx.peers_file = Some(value()?.into()),
                        f if f.starts_with('-') => {
                            return Err(format!("network create: unknown option {f}"))
                        }
                        _ if name.is_none() => name = Some(arg),
                        _ => return Err(format!("network create: unexpected argument {arg:?}")),
                    }
                }
                Ok(NetworkCmd::Create {
                    name: name.ok_or("network create: a NAME is required")?,
                    driver,
                    subnet,
                    parent,
                    vxlan: vx,
                })
            }
            "ls" | "list" => match rest.first() {
                None => Ok(NetworkCmd::Ls),
                Some(a) => Err(format!("network ls: unexpected argument {a:?}")),
            },
            "serve" => match rest.as_slice() {
                [name] => Ok(NetworkCmd::Serve(name.clone())),
                _ => Err("network serve: exactly one NAME".into()),
            },
            "rm" | "remove" => {
                if rest.is_empty() {
                    return Err("network rm: at least one NAME is required".into());
                }
                Ok(NetworkCmd::Rm(rest))
            }
            other => Err(format!(
                "network: unknown command {other:?} (create, ls or rm)"
            )),
        }
    }
}

/// `--net`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Net {
    /// New netns, nothing up.
    None,
    /// New netns, `lo` up (default).
    #[default]
    Loopback,
    /// veth to the default network `berth0` (a bridge, recorded like a
    /// user-defined network, so `network rm berth0` removes it).
    Bridge,
    /// The host's netns.
    Host,
    /// Rootless networking through `pasta` (Debian's `passt`).
    Pasta,
}

impl Net {
    fn parse(v: &str) -> Option<Net> {
        Some(match v {
            "none" => Net::None,
            "loopback" => Net::Loopback,
            "bridge" => Net::Bridge,
            "host" => Net::Host,
            "pasta" => Net::Pasta,
            _ => return None,
        })
    }
}

/// `--seccomp`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SeccompArg {
    /// Docker's default profile.
    #[default]
    Default,
    /// No filter.
    Unconfined,
    /// A Docker-format JSON profile file.
    File(PathBuf),
}

/// A `--publish` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publish {
    /// Only on this host address (`127.0.0.1:8080:80`).
    pub host_ip: Option<std::net::Ipv4Addr>,
    /// Port on the host.
    pub host: u16,
    /// Port in the container.
    pub container: u16,
    /// UDP instead of TCP.
    pub udp: bool,
}

/// A `--volume` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Host path.
    pub src: PathBuf,
    /// Path inside.
    pub dst: PathBuf,
    /// `:ro`.
    pub read_only: bool,
}

/// Everything `berth-run` was asked to do.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunArgs {
    /// `--rootfs`.
    pub rootfs: Option<PathBuf>,
    /// `--image`: layout directory and reference.
    pub image: Option<(PathBuf, String)>,
    /// `--name`.
    pub name: Option<String>,
    /// `--hostname`.
    pub hostname: Option<String>,
    /// `--memory`, bytes.
    pub memory: Option<u64>,
    /// `--cpus`.
    pub cpus: Option<f64>,
    /// `--pids`.
    pub pids: Option<u64>,
    /// `--cpuset`.
    pub cpuset: Option<String>,
    /// `--net`.
    pub net: Net,
    /// `--network NAME`: a user-defined network (`none`, `loopback`,
    /// `bridge` and `host` set [`RunArgs::net`] instead).
    pub network: Option<String>,
    /// `--network-alias`.
    pub network_aliases: Vec<String>,
    /// `--dns`: the container's resolvers (its `/etc/resolv.conf`).
    pub dns: Vec<std::net::Ipv4Addr>,
    /// `--publish`.
    pub publish: Vec<Publish>,
    /// `--read-only`.
    pub read_only: bool,
    /// `--tmpfs`.
    pub tmpfs: Vec<PathBuf>,
    /// `--volume`.
    pub volumes: Vec<Volume>,
    /// `--user`.
    pub user: Option<(u32, u32)>,
    /// `--cap-add`.
    pub cap_add: Vec<String>,
    /// `--cap-drop`.
    pub cap_drop: Vec<String>,
    /// `--seccomp`.
    pub seccomp: SeccompArg,
    /// `--env`.
    pub env: Vec<(String, String)>,
    /// `--workdir`.
    pub workdir: Option<PathBuf>,
    /// `--init`.
    pub init: bool,
    /// `--rootless`.
    pub rootless: bool,
    /// `--timeout`, seconds.
    pub timeout: Option<f64>,
    /// The command.
    pub command: Vec<String>,
    /// `--help` was given.
    pub help: bool,
}

/// Parse a size: bytes, or a number with `k`, `m`, `g` (binary units, `b` optional).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: u64 = num.parse().map_err(|_| {
        format!("invalid size {s:?}: expected a number with an optional k, m or g suffix")
    })?;
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("invalid size {s:?}: zero or too large"))
}

fn parse_publish(s: &str) -> Result<Publish, String> {
    let bad = || format!("invalid --publish {s:?}: expected [IP:]HOST:CONTAINER[/tcp|/udp]");
    let (ports, proto) = match s.split_once('/') {
        Some((p, "tcp")) => (p, false),
        Some((p, "udp")) => (p, true),
        Some(_) => return Err(bad()),
        None => (s, false),
    };
    let (ip, ports) = match ports.matches(':').count() {
        2 => {
            let (ip, rest) = ports.split_once(':').ok_or_else(bad)?;
            (Some(ip.parse().map_err(|_| bad())?), rest)
        }
        _ => (None, ports),
    };
    let (h, c) = ports.split_once(':').ok_or_else(bad)?;
    Ok(Publish {
        host_ip: ip,
        host: h.parse().map_err(|_| bad())?,
        container: c.parse().map_err(|_| bad())?,
        udp: proto,
    })
}

fn parse_volume(s: &str) -> Result<Volume, String> {
    let bad = || format!("invalid --volume {s:?}: expected SRC:DST[:ro|:rw]");
    let parts: Vec<&str> = s.split(':').collect();
    let (src, dst, ro) = match parts.as_slice() {
        [a, b] => (a, b, false),
        [a, b, "ro"] => (a, b, true),
        [a, b, "rw"] => (a, b, false),
        _ => return Err(bad()),
    };
    if src.is_empty() || !dst.starts_with('/') {
        return Err(bad());
    }
    Ok(Volume {
        src: src.into(),
        dst: dst.into(),
        read_only: ro,
    })
}

fn parse_user(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("invalid --user {s:?}: expected UID[:GID] (numbers)");
    match s.split_once(':') {
        Some((u, g)) => Ok((u.parse().map_err(|_| bad())?, g.parse().map_err(|_| bad())?)),
        None => {
            let u = s.parse().map_err(|_| bad())?;
            Ok((u, u))
        }
    }
}

fn parse_image(s: &str) -> (PathBuf, String) {
    // LAYOUT[:REF]: a ':' after the last '/' starts the reference.
    let slash = s.rfind('/').map(|i| i + 1).unwrap_or(0);
    match s[slash..].rfind(':') {
        Some(i) => (s[..slash + i].into(), s[slash + i + 1..].to_string()),
        None => (s.into(), "latest".to_string()),
    }
}

impl RunArgs {
    /// Parse the arguments after the program name.
    pub fn parse<I, S>(args: I) -> Result<RunArgs, String>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut a = RunArgs::default();
        let mut it = args.into_iter().map(Into::into);
        while let Some(arg) = it.next() {
            if arg == "--" {
                a.command.extend(it.by_ref());
                break;
            }
            if !arg.starts_with("--") {
                a.command.push(arg);
                a.command.extend(it.by_ref());
                break;
            }
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) => (f.to_string(), Some(v.to_string())),
                None => (arg.clone(), None),
            };
            if a.set_switch(&flag) {
                if inline.is_some() {
                    return Err(format!("{flag} takes no value"));
                }
                continue;
            }
            let v = match inline {
                Some(v) => v,
                None => it.next().ok_or_else(|| format!("{flag} needs a value"))?,
            };
            a.set_option(&flag, v)?;
        }
        a.check()?;
        Ok(a)
    }

    /// A flag without a value (`--init`): set it and say true, or false
    /// when `flag` is not one of them.
    fn set_switch(&mut self, flag: &str) -> bool {
        match flag {
            "--read-only" => self.read_only = true,
            "--init" => self.init = true,
            "--rootless" => self.rootless = true,
            "--help" => self.help = true,
            _ => return false,
        }
        true
    }

    /// An option with its value `v` (`--name c1` or `--name=c1`).
    fn set_option(&mut self, flag: &str, v: String) -> Result<(), String> {
        match flag {
            "--rootfs" => self.rootfs = Some(v.into()),
            "--image" => self.image = Some(parse_image(&v)),
            "--name" => self.name = Some(v),
            "--hostname" => self.hostname = Some(v),
            "--memory" => self.memory = Some(parse_size(&v).map_err(|e| format!("--memory: {e}"))?),
            "--cpus" => self.cpus = Some(parse_cpus(&v)?),
            "--pids" => {
                self.pids = Some(
                    v.parse()
                        .map_err(|_| format!("invalid --pids {v:?}: expected a number"))?,
                )
            }
            "--cpuset" => self.cpuset = Some(v),
            "--net" | "--network" | "--network-alias" | "--dns" | "--publish" => {
                self.set_network_option(flag, v)?
            }
            "--tmpfs" => {
                if !v.starts_with('/') {
                    return Err(format!("invalid --tmpfs {v:?}: must be an absolute path"));
                }
                self.tmpfs.push(v.into())
            }
            "--volume" => self.volumes.push(parse_volume(&v)?),
            "--user" => self.user = Some(parse_user(&v)?),
            "--cap-add" => self.cap_add.push(v),
            "--cap-drop" => self.cap_drop.push(v),
            "--seccomp" => {
                self.seccomp = match v.as_str() {
                    "default" => SeccompArg::Default,
                    "unconfined" => SeccompArg::Unconfined,
                    f => SeccompArg::File(f.into()),
                }
            }
            "--env" => self.env.push(parse_env(&v)?),
            "--workdir" => self.workdir = Some(v.into()),
            "--timeout" => self.timeout = Some(parse_timeout(&v)?),
            _ => return Err(format!("unknown option {flag}")),
        }
        Ok(())
    }

    /// The networking options: `--net`, `--network`, `--network-alias`,
    /// `--dns`, `--publish`.
    fn set_network_option(&mut self, flag: &str, v: String) -> Result<(), String> {
        match flag {
            "--net" => {
                self.net = Net::parse(&v).ok_or_else(|| {
                    format!("invalid --net {v:?}: none, loopback, bridge, host or pasta")
                })?
            }
            "--network" => match Net::parse(&v) {
                Some(n) => self.net = n,
                None => self.network = Some(v),
            },
            "--network-alias" => self.network_aliases.push(v),
            "--dns" => self.dns.push(
                v.parse()
                    .map_err(|_| format!("invalid --dns {v:?}: expected an IPv4 address"))?,
            ),
            _ => self.publish.push(parse_publish(&v)?),
        }
        Ok(())
    }

    /// The rules between options, once all are read.
    fn check(&self) -> Result<(), String> {
        if self.rootfs.is_some() && self.image.is_some() {
            return Err("--rootfs and --image are mutually exclusive".into());
        }
        if !self.publish.is_empty()
            && !matches!(self.net, Net::Bridge | Net::Pasta)
            && self.network.is_none()
        {
            return Err("--publish needs --net bridge, --net pasta or --network NAME".into());
        }
        if !self.network_aliases.is_empty() && self.network.is_none() {
            return Err("--network-alias needs --network NAME (a user-defined network)".into());
        }
        if self.command.is_empty() && self.image.is_none() && !self.help {
            return Err("no command given".into());
        }
        Ok(())
    }
}

/// `--cpus`: a number of CPUs above 0 (at most 1024).
fn parse_cpus(v: &str) -> Result<f64, String> {
    let c: f64 = v
        .parse()
        .map_err(|_| format!("invalid --cpus {v:?}: expected a number"))?;
    if !(c > 0.0 && c <= 1024.0) {
        return Err(format!("invalid --cpus {v:?}: must be above 0"));
    }
    Ok(c)
}

/// `--env K=V`: a non-empty name and a value.
fn parse_env(v: &str) -> Result<(String, String), String> {
    let (k, val) = v
        .split_once('=')
        .ok_or_else(|| format!("invalid --env {v:?}: expected K=V"))?;
    if k.is_empty() {
        return Err(format!("invalid --env {v:?}: empty name"));
    }
    Ok((k.into(), val.into()))
}

/// `--timeout`: seconds above 0.
fn parse_timeout(v: &str) -> Result<f64, String> {
    let t: f64 = v
        .parse()
        .map_err(|_| format!("invalid --timeout {v:?}: expected seconds"))?;
    if t.is_nan() || t <= 0.0 {
        return Err(format!("invalid --timeout {v:?}: must be above 0"));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_command_line() {
        let a = RunArgs::parse([
            "--rootfs",
            "/r",
            "--name",
            "c1",
            "--hostname=h",
            "--memory",
            "512m",
            "--cpus",
            "0.5",
            "--pids",
            "64",
            "--cpuset",
            "0-1",
            "--net",
            "bridge",
            "--publish",
            "8080:80",
            "--publish",
            "53:53/udp",
            "--read-only",
            "--tmpfs",
            "/run",
            "--volume",
            "/a:/b:ro",
            "--volume",
            "/c:/d",
            "--user",
            "1000:100",
            "--cap-add",
            "NET_ADMIN",
            "--cap-drop",
            "MKNOD",
            "--seccomp",
            "unconfined",
            "--env",
            "A=b=c",
            "--workdir",
            "/tmp",
            "--init",
            "--rootless",
            "--timeout",
            "2.5",
            "--",
            "sh",
            "-c",
            "echo --not-a-flag",
        ])
        .unwrap();
        assert_eq!(a.rootfs, Some("/r".into()));
        assert_eq!(a.name.as_deref(), Some("c1"));
        assert_eq!(a.hostname.as_deref(), Some("h"));
        assert_eq!(a.memory, Some(512 << 20));
        assert_eq!(a.cpus, Some(0.5));
        assert_eq!(a.pids, Some(64));
        assert_eq!(a.cpuset.as_deref(), Some("0-1"));
        assert_eq!(a.net, Net::Bridge);
        assert_eq!(
            a.publish,
            vec![
                Publish {
                    host_ip: None,
                    host: 8080,
                    container: 80,
                    udp: false
                },
                Publish {
                    host_ip: None,
                    host: 53,
                    container: 53,
                    udp: true
                }
            ]
        );
        assert!(a.read_only && a.init && a.rootless);
        assert_eq!(a.tmpfs, vec![PathBuf::from("/run")]);
        assert_eq!(
            a.volumes[0],
            Volume {
                src: "/a".into(),
                dst: "/b".into(),
                read_only: true
            }
        );
        assert!(!a.volumes[1].read_only);
        assert_eq!(a.user, Some((1000, 100)));
        assert_eq!(a.cap_add, ["NET_ADMIN"]);
        assert_eq!(a.cap_drop, ["MKNOD"]);
        assert_eq!(a.seccomp, SeccompArg::Unconfined);
        assert_eq!(a.env, vec![("A".to_string(), "b=c".to_string())]);
        assert_eq!(a.workdir, Some("/tmp".into()));
        assert_eq!(a.timeout, Some(2.5));
        assert_eq!(a.command, ["sh", "-c", "echo --not-a-flag"]);
    }

    #[test]
    fn defaults_and_positional_command() {
        let a = RunArgs::parse(["echo", "--x"]).unwrap();
        assert_eq!(a.command, ["echo", "--x"]);
        assert_eq!(a.net, Net::Loopback);
        assert_eq!(a.seccomp, SeccompArg::Default);
        assert!(a.rootfs.is_none() && a.image.is_none());
    }

    #[test]
    fn images() {
        assert_eq!(parse_image("/img/bb"), ("/img/bb".into(), "latest".into()));
        assert_eq!(
            parse_image("/img/bb:1.36"),
            ("/img/bb".into(), "1.36".into())
        );
        assert_eq!(parse_image("./a:b/c"), ("./a:b/c".into(), "latest".into()));
        let a = RunArgs::parse(["--image", "/img:v1"]).unwrap();
        assert_eq!(a.image, Some(("/img".into(), "v1".into())));
    }

    #[test]
    fn user_networks_and_loopback_publish() {
        let a = RunArgs::parse([
            "--network",
            "mynet",
            "--name",
            "web",
            "--network-alias",
            "www",
            "--publish",
            "127.0.0.1:8080:80",
            "x",
        ])
        .unwrap();
        assert_eq!(a.network.as_deref(), Some("mynet"));
        assert_eq!(a.network_aliases, ["www"]);
        let d = RunArgs::parse(["--dns", "127.0.0.1", "--dns=10.0.0.53", "x"]).unwrap();
        assert_eq!(
            d.dns,
            [[127, 0, 0, 1], [10, 0, 0, 53]].map(std::net::Ipv4Addr::from)
        );
        assert!(RunArgs::parse(["--dns", "ns1", "x"])
            .unwrap_err()
            .contains("ns1"));
        assert_eq!(a.publish[0].host_ip, Some(std::net::Ipv4Addr::LOCALHOST));
        assert_eq!((a.publish[0].host, a.publish[0].container), (8080, 80));
        // The --net values work as --network too.
        let a = RunArgs::parse(["--network", "host", "x"]).unwrap();
        assert_eq!((a.net, a.network), (Net::Host, None));
        // Rootless networking, with a published port.
        let a = RunArgs::parse(["--net", "pasta", "--publish", "8080:80", "x"]).unwrap();
        assert_eq!((a.net, a.publish.len()), (Net::Pasta, 1));
        let a = RunArgs::parse(["--network", "pasta", "x"]).unwrap();
        assert_eq!((a.net, a.network), (Net::Pasta, None));
        assert_eq!(
            NetworkCmd::parse(["create", "n1", "--subnet", "10.9.0.0/24"]).unwrap(),
            NetworkCmd::Create {
                name: "n1".into(),
                driver: "bridge".into(),
                subnet: Some("10.9.0.0/24".into()),
                parent: None,
                vxlan: VxlanArgs::default(),
            }
        );
        assert_eq!(
            NetworkCmd::parse(["create", "lan", "--driver=macvlan", "--parent", "eth0"]).unwrap(),
            NetworkCmd::Create {
                name: "lan".into(),
                driver: "macvlan".into(),
                subnet: None,
                parent: Some("eth0".into()),
                vxlan: VxlanArgs::default(),
            }
        );
        let NetworkCmd::Create { driver, vxlan, .. } = NetworkCmd::parse([
            "create",
            "ov",
            "--driver",
            "vxlan",
            "--vni",
            "42",
            "--local",
            "192.0.2.1",
            "--range",
            "10.9.1.0/24",
            "--peer",
            "192.0.2.2=10.9.2.0/24",
            "--peers=/etc/ov.members",
        ])
        .unwrap() else {
            panic!("not create")
        };
        assert_eq!(driver, "vxlan");
        assert_eq!(
            vxlan,
            VxlanArgs {
                vni: Some(42),
                local: Some([192, 0, 2, 1].into()),
                range: Some("10.9.1.0/24".into()),
                peers: vec![([192, 0, 2, 2].into(), "10.9.2.0/24".into())],
                peers_file: Some("/etc/ov.members".into()),
            }
        );
        for (bad, needle) in [
            (["--vni", "x"], "--vni"),
            (["--local", "h1"], "h1"),
            (["--peer", "192.0.2.2"], "ADDRESS=CIDR"),
        ] {
            let mut a = vec!["create", "ov"];
            a.extend(bad);
            let e = NetworkCmd::parse(a).unwrap_err();
            assert!(e.contains(needle), "{e}");
        }
        assert_eq!(NetworkCmd::parse(["ls"]).unwrap(), NetworkCmd::Ls);
        assert_eq!(
            NetworkCmd::parse(["rm", "a", "b"]).unwrap(),
            NetworkCmd::Rm(vec!["a".into(), "b".into()])
        );
        assert!(NetworkCmd::parse(["create"]).unwrap_err().contains("NAME"));
        assert!(NetworkCmd::parse(["rm"]).unwrap_err().contains("NAME"));
        assert!(NetworkCmd::parse(["frob"]).unwrap_err().contains("frob"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100").unwrap(), 100);
        assert_eq!(parse_size("4k").unwrap(), 4096);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("16mb").unwrap(), 16 << 20);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("-1m").is_err());
        assert!(parse_size("99999999999t").is_err());
    }

    #[test]
    fn errors_are_clear() {
        let e = |v: &[&str]| RunArgs::parse(v.iter().copied()).unwrap_err();
        assert!(e(&["--memory", "lots", "true"]).contains("lots"));
        assert!(e(&["--net", "wifi", "true"]).contains("wifi"));
        assert!(e(&["--bogus", "true"]).contains("--bogus"));
        assert!(e(&["--name"]).contains("needs a value"));
        assert!(e(&[]).contains("no command"));
        assert!(e(&["--publish", "80", "--net", "bridge", "x"]).contains("80"));
        assert!(e(&["--publish", "1:2", "x"]).contains("--net bridge"));
        assert!(e(&["--network-alias", "a", "x"]).contains("--network NAME"));
        assert!(e(&["--publish", "nope:1:2", "--network", "n", "x"]).contains("nope"));
        assert!(e(&["--volume", "/a", "x"]).contains("/a"));
        assert!(e(&["--user", "bob", "x"]).contains("bob"));
        assert!(e(&["--rootfs", "/a", "--image", "/b", "x"]).contains("exclusive"));
        assert!(e(&["--init=1", "x"]).contains("no value"));
        assert!(e(&["--cpus", "0", "x"]).contains("0"));
        assert!(e(&["--timeout", "soon", "x"]).contains("soon"));
    }
}
