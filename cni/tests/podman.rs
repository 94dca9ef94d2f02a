//! podman 4's CNI backend (`network_backend = "cni"`) runs containers on a
//! berth-cni network: a conf list in a private config dir, berth-cni on
//! `cni_plugin_dirs`, private storage/run/tmp dirs, `berth-oci` as the OCI
//! runtime (crun refuses this host's hybrid cgroup layout), an image
//! imported from a busybox tar. podman runs inside a test-made "host"
//! netns (setns before exec, no mount namespace change), so the bridge,
//! nft table and ip_forward are the test's own.
//!
//! Skipped with a message when podman or the berth-oci binary (built by
//! `cargo build -p berth-oci`, or named by `BERTH_OCI`)
//! is missing.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const IMAGE: &str = "localhost/berth-cni-busybox:latest";

fn berth_oci() -> Option<PathBuf> {
    let p = std::env::var_os("BERTH_OCI")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(PLUGIN).parent().unwrap().join("berth-oci"));
    if p.is_file() {
        Some(p)
    } else {
        println!(
            "skipped: {} not built (cargo build -p berth-oci)",
            p.display()
        );
        None
    }
}

struct Podman<'h> {
    host: &'h Host,
    dir: tempfile::TempDir,
    runtime: PathBuf,
    /// Made by this test's containers (did not exist before): removed at the end.
    remove_after: Vec<PathBuf>,
}

impl<'h> Podman<'h> {
    fn new(host: &'h Host, runtime: PathBuf) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("bcp")
            .tempdir_in("/tmp")
            .unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("net.d")).unwrap();
        let plugin_dir = Path::new(PLUGIN).parent().unwrap();
        std::fs::write(
            d.join("containers.conf"),
            format!(
                "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n\
                 [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
                 [network]\nnetwork_backend = \"cni\"\n\
                 cni_plugin_dirs = [\"{}\", \"{REF_PLUGINS}\"]\n\
                 network_config_dir = \"{}\"\n",
                plugin_dir.display(),
                d.join("net.d").display()
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("registries.conf"),
            "unqualified-search-registries = []\n",
        )
        .unwrap();
        // libcni's result cache (podman does not move it); and the cgroup parent.
        let mut remove_after: Vec<PathBuf> = vec![PathBuf::from("/var/lib/cni")];
        remove_after.extend(berth_testkit::cgroup2_mount().map(|m| m.join("libpod_parent")));
        remove_after.retain(|p| !p.exists());
        Self {
            host,
            dir,
            runtime,
            remove_after,
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let d = self.dir.path();
        let mut c = self.host.command("podman");
        berth_testkit::podman_private_store(&mut c, d, "vfs", &self.runtime)
            // podman asks for a pids limit by default; on a hybrid host
            // (cgroup2 without pids) berth-oci refuses limits it cannot
            // enforce unless the operator opts in, as here.
            .args(["--runtime-flag", "allow-unenforced-limits"])
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().unwrap();
        assert!(
            out.status.success(),
            "podman {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn ip_of(&self, name: &str) -> String {
        self.ok(&[
            "inspect",
            name,
            "--format",
            "{{.NetworkSettings.Networks.bnet.IPAddress}}",
        ])
    }
}

impl Drop for Podman<'_> {
    fn drop(&mut self) {
        let _ = self.cmd(&["rm", "-af", "-t", "0"]).output();
        let _ = self.cmd(&["system", "reset", "-f"]).output();
        for p in &self.remove_after {
            // Only empty directories: never anything someone else put there since.
            let _ = std::fs::remove_dir(p.join("results"));
            let _ = std::fs::remove_dir(p);
        }
        if let Ok(mi) = std::fs::read_to_string("/proc/self/mountinfo") {
            let d = self.dir.path().display().to_string();
            for l in mi.lines() {
                if let Some(m) = l.split(' ').nth(4).filter(|m| m.starts_with(&d)) {
                    let _ = Command::new("umount").arg("-l").arg(m).status();
                }
            }
        }
    }
}

/// Read from `addr` (connecting from the test host netns) until EOF or 5 s;
/// empty when nothing listens there yet.
fn read_from(host: &Host, addr: &str) -> String {
    let a: SocketAddr = addr.parse().unwrap();
    let ns = berth_netsetup::NetNs::open_named(host.ns.name()).unwrap();
    // Not listening yet: nothing read (the caller polls).
    let Ok(mut s) = ns
        .run(move || TcpStream::connect_timeout(&a, Duration::from_secs(5)))
        .unwrap()
    else {
        return String::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn podman_cni_backend_runs_containers_on_a_berth_cni_network() {
    berth_testkit::privileged!();
    if Command::new("podman").arg("--version").output().is_err() {
        println!("skipped: podman is not installed");
        return;
    }
    let Some(runtime) = berth_oci() else {
        return;
    };
    let host = Host::new();
    let pm = Podman::new(&host, runtime);
    let d = pm.dir.path();
    std::fs::write(
        d.join("net.d/10-bnet.conflist"),
        serde_json::json!({
            "cniVersion": "1.0.0",
            "name": "bnet",
            "plugins": [{
                "type": "berth-cni",
                "subnet": "10.93.0.0/24",
                "dataDir": host.data_dir(),
                "capabilities": {"portMappings": true}
            }]
        })
        .to_string(),
    )
    .unwrap();
    let tar = d.join("busybox.tar");
    berth_testkit::tar_dir(berth_testkit::busybox_rootfs(), &tar);
    pm.ok(&["import", "-q", tar.to_str().unwrap(), IMAGE]);
    let nets = pm.ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    assert!(nets.lines().any(|l| l == "bnet berth-cni"), "{nets}");

    // A published port (the portMappings capability), reached from the host.
    pm.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "bnet",
        "-p",
        "8086:80",
        IMAGE,
        "sh",
        "-c",
        "echo hello-from-web | nc -l -p 80",
    ]);
    let web_ip = pm.ip_of("web");
    assert!(web_ip.starts_with("10.93.0."), "{web_ip}");
    assert_eq!(host.allocations("bnet").len(), 1);
    assert!(
        wait_for(20, || read_from(&host, "10.93.0.1:8086")
            .contains("hello-from-web")),
        "published port 8086 did not answer"
    );

    // Container to container, by address.
    pm.ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        "--network",
        "bnet",
        IMAGE,
        "nc",
        "-l",
        "-p",
        "81",
    ]);
    let srv_ip = pm.ip_of("srv");
    assert_ne!(srv_ip, web_ip);
    // `podman run -d` returns before srv's nc listens: retry the connect.
    let script = format!(
        "for i in $(seq 40); do echo from-client | nc -w 2 {srv_ip} 81 && exit 0; sleep 0.25; done; exit 1"
    );
    pm.ok(&[
        "run",
        "--rm",
        "--network",
        "bnet",
        IMAGE,
        "sh",
        "-c",
        &script,
    ]);
    assert!(
        wait_for(20, || pm.ok(&["logs", "srv"]).contains("from-client")),
        "srv did not receive the client's line"
    );

    // Removing the containers runs DEL: nothing of theirs is left.
    pm.ok(&["rm", "-af", "-t", "0"]);
    host.assert_no_attachments("bnet");
    assert!(
        host.nft_ruleset()
            .contains("masquerade comment \"berth net=bnet\""),
        "the network itself stays (as with the reference bridge plugin)"
    );
}
