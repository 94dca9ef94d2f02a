//! Helpers for berth-cni's privileged tests: the plugin binary driven as a
//! runtime drives it (environment + stdin), run *inside* a test-made
//! network namespace that stands in for the host (`setns` before `exec`),
//! so the bridge, nftables and `ip_forward` it changes are the test's own.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use berth_netsetup::NetNs;
use berth_testkit::{run, Netns};
use serde_json::Value;

// TCP helpers (listen_in, serve_once, talk_from, wait_for) shared with
// berth-netsetup's tests.
#[path = "../../../netsetup/tests/common/mod.rs"]
mod net;
#[allow(unused_imports)]
pub use net::{listen_in, serve_once, talk_from, wait_for};

pub const PLUGIN: &str = env!("CARGO_BIN_EXE_berth-cni");

/// Where Debian's containernetworking-plugins live.
pub const REF_PLUGINS: &str = "/usr/lib/cni";

/// The reference plugin `name`, if the package is installed.
pub fn reference_plugin(name: &str) -> Option<PathBuf> {
    let p = Path::new(REF_PLUGINS).join(name);
    if p.is_file() {
        Some(p)
    } else {
        eprintln!(
            "SKIPPED part: {} not installed (containernetworking-plugins)",
            p.display()
        );
        None
    }
}

/// The test's "host": a named netns (lo up), a state dir, the real host's
/// `ip_forward` to compare with at the end.
pub struct Host {
    pub ns: Netns,
    file: File,
    pub dir: tempfile::TempDir,
    real_ip_forward: String,
}

/// What a plugin run returned.
#[derive(Debug)]
pub struct Reply {
    pub code: i32,
    pub json: Option<Value>,
    pub stderr: String,
}

impl Reply {
    /// The error code of an error object (panics on success).
    pub fn err_code(&self) -> u64 {
        assert_ne!(self.code, 0, "expected an error, got {:?}", self.json);
        let j = self.json.as_ref().expect("error object on stdout");
        assert!(j["msg"].is_string(), "{j}");
        assert!(j["cniVersion"].is_string(), "{j}");
        j["code"].as_u64().expect("code")
    }
    /// The result (panics on an error).
    pub fn ok(&self) -> &Value {
        assert_eq!(
            self.code, 0,
            "plugin failed: {:?} {}",
            self.json, self.stderr
        );
        self.json.as_ref().expect("result on stdout")
    }
    /// Success without output (DEL, CHECK, STATUS, GC).
    pub fn ok_empty(&self) {
        assert_eq!(
            self.code, 0,
            "plugin failed: {:?} {}",
            self.json, self.stderr
        );
        assert!(self.json.is_none(), "unexpected output {:?}", self.json);
    }
}

pub fn real_ip_forward() -> String {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        .unwrap()
        .trim()
        .to_string()
}

impl Host {
    pub fn new() -> Self {
        let real_ip_forward = real_ip_forward();
        let ns = Netns::new();
        let file = File::open(ns.path()).expect("open host netns");
        Self {
            ns,
            file,
            dir: tempfile::tempdir().unwrap(),
            real_ip_forward,
        }
    }

    pub fn data_dir(&self) -> String {
        self.dir.path().display().to_string()
    }

    /// The minimal conf of the issue, plus this host's data dir.
    pub fn conf(&self, version: &str) -> Value {
        serde_json::json!({
            "cniVersion": version,
            "name": "N",
            "type": "berth-cni",
            "subnet": "10.99.0.0/24",
            "dataDir": self.data_dir(),
        })
    }

    /// A command whose process enters this host netns before exec.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        let fd = self.file.as_raw_fd();
        // SAFETY: only the raw setns(2) syscall runs between fork and exec.
        unsafe {
            c.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        c
    }

    /// Start `program` as a CNI plugin: `CNI_COMMAND=cmd`, `env`, `stdin`.
    pub fn spawn_plugin(
        &self,
        program: &str,
        cmd: &str,
        env: &[(&str, &str)],
        stdin: &str,
    ) -> Child {
        let mut c = self.command(program);
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CNI_COMMAND", cmd)
            .env("CNI_PATH", cni_path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("spawn plugin");
        let mut si = child.stdin.take().unwrap();
        // The plugin may die before reading (killed-midway tests): ignore EPIPE.
        let _ = si.write_all(stdin.as_bytes());
        drop(si);
        child
    }

    /// Run `program` to completion.
    pub fn run_plugin(&self, program: &str, cmd: &str, env: &[(&str, &str)], stdin: &str) -> Reply {
        wait_reply(self.spawn_plugin(program, cmd, env, stdin))
    }

    /// Run berth-cni.
    pub fn cni(&self, cmd: &str, env: &[(&str, &str)], conf: &Value) -> Reply {
        self.run_plugin(PLUGIN, cmd, env, &conf.to_string())
    }

    /// ADD/DEL/CHECK env of container `id` in `pod` as `eth0`.
    pub fn pod_env<'a>(id: &'a str, pod: &'a str) -> [(&'a str, &'a str); 3] {
        [
            ("CNI_CONTAINERID", id),
            ("CNI_NETNS", pod),
            ("CNI_IFNAME", "eth0"),
        ]
    }

    /// `ip -n <host> -j <args>` parsed.
    pub fn ip_json(&self, args: &[&str]) -> Value {
        let mut a = vec!["-n", self.ns.name(), "-j"];
        a.extend_from_slice(args);
        let out = run("ip", &a);
        if out.trim().is_empty() {
            return Value::Array(vec![]);
        }
        serde_json::from_str(&out).unwrap()
    }

    /// Link names in the host netns.
    pub fn links(&self) -> Vec<String> {
        link_names(&self.ip_json(&["link", "show"]))
    }

    /// `nft list ruleset` inside the host netns.
    pub fn nft_ruleset(&self) -> String {
        run(
            "ip",
            &["netns", "exec", self.ns.name(), "nft", "list", "ruleset"],
        )
    }

    /// `ip_forward` inside the host netns.
    pub fn ip_forward(&self) -> String {
        run(
            "ip",
            &[
                "netns",
                "exec",
                self.ns.name(),
                "cat",
                "/proc/sys/net/ipv4/ip_forward",
            ],
        )
        .trim()
        .to_string()
    }

    /// The IPAM allocations of network `net`: key → address.
    pub fn allocations(&self, net: &str) -> BTreeMap<String, String> {
        let p = self.dir.path().join(format!("{net}.json"));
        let Ok(s) = std::fs::read_to_string(&p) else {
            return BTreeMap::new();
        };
        let v: Value = serde_json::from_str(&s).unwrap();
        v["allocations"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, a)| (k.clone(), a["addr"].as_str().unwrap().to_string()))
            .collect()
    }

    /// Nothing of the network's attachments left: no link in the host
    /// netns but `lo` and bridges, no IPAM entry, no published-port rule.
    pub fn assert_no_attachments(&self, net: &str) {
        // No veth at all (another network's bridge may be there).
        let links = self.ip_json(&["-d", "link", "show"]);
        let veths: Vec<&Value> = links
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["linkinfo"]["info_kind"] != "bridge" && l["ifname"] != "lo")
            .collect();
        assert!(
            veths.is_empty(),
            "leftover links in the host netns: {veths:?}"
        );
        assert_eq!(
            self.allocations(net),
            BTreeMap::new(),
            "leftover IPAM entries"
        );
        let rules = self.nft_ruleset();
        assert!(
            !rules.contains("berth ctr="),
            "leftover published-port rules:\n{rules}"
        );
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert_eq!(
                real_ip_forward(),
                self.real_ip_forward,
                "the real host's ip_forward changed"
            );
        }
    }
}

pub fn link_names(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect()
}

/// `CNI_PATH`: this build's plugin directory, then the reference plugins.
pub fn cni_path() -> String {
    let own = Path::new(PLUGIN).parent().unwrap().display().to_string();
    format!("{own}:{REF_PLUGINS}")
}

pub fn wait_reply(child: Child) -> Reply {
    let out = child.wait_with_output().expect("wait plugin");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = if stdout.trim().is_empty() {
        None
    } else {
        Some(
            serde_json::from_str(&stdout)
                .unwrap_or_else(|e| panic!("plugin stdout is not JSON ({e}): {stdout:?}")),
        )
    };
    Reply {
        code: out.status.code().unwrap_or(-1),
        json,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A pod: a named netns (lo up) and its path.
pub struct Pod {
    pub ns: Netns,
    pub path: String,
}

impl Pod {
    pub fn new() -> Self {
        let ns = Netns::new();
        let path = ns.path().display().to_string();
        Self { ns, path }
    }
    pub fn handle(&self) -> NetNs {
        NetNs::open_named(self.ns.name()).unwrap()
    }
    /// Take the name `eth0` inside (a veth pair `eth0`/`eth0p`).
    pub fn occupy_eth0(&self) {
        run(
            "ip",
            &[
                "-n",
                self.ns.name(),
                "link",
                "add",
                "eth0",
                "type",
                "veth",
                "peer",
                "name",
                "eth0p",
            ],
        );
    }
    /// IPv4 addresses of `ifname` inside, as `a.b.c.d/len`.
    pub fn addrs(&self, ifname: &str) -> Vec<String> {
        // A missing device is no address (not a failure).
        let out = Command::new("ip")
            .args([
                "-n",
                self.ns.name(),
                "-j",
                "-4",
                "addr",
                "show",
                "dev",
                ifname,
            ])
            .output()
            .expect("run ip");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Array(vec![]));
        v.as_array()
            .unwrap()
            .iter()
            .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
            .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
            .collect()
    }
}

/// The address part of a result's first ip.
pub fn result_ip(result: &Value) -> String {
    let a = result["ips"][0]["address"]
        .as_str()
        .expect("ips[0].address");
    a.split('/').next().unwrap().to_string()
}
