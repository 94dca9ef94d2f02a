//! berth-cni fed exactly what containerd 1.6's CRI plugin sends it
//! (captured from a containerd run with berth-cni as its pod network):
//! `runtimeConfig.portMappings` with go-cni's Go field names (`HostPort`,
//! `ContainerPort`, `Protocol`, `HostIP`: its struct has no JSON tags, and
//! Go's decoder matches keys case-insensitively, so the reference `portmap`
//! plugin reads them), `CNI_ARGS` with the `K8S_POD_*` keys, and critest's
//! check of a host port through 127.0.0.1. Inside a test-made "host" netns.

mod common;

use common::*;
use serde_json::json;

/// containerd's `CNI_ARGS` for pod `name`.
fn k8s_args(id: &str) -> String {
    format!(
        "K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID={id};K8S_POD_UID=u1;IgnoreUnknown=1;K8S_POD_NAMESPACE=default"
    )
}

/// A pod published with containerd's key spelling: ADD succeeds, the host
/// port answers on the bridge address and on 127.0.0.1 (critest's
/// "port mapping with host port and container port"), DEL removes it all.
#[test]
fn containerd_port_mappings_publish_and_del_cleans_up() {
    berth_testkit::privileged!();
    let host = Host::new();
    let mut conf = host.conf("1.0.0");
    conf["ipMasq"] = json!(false);
    conf["capabilities"] = json!({"portMappings": true});
    conf["runtimeConfig"] = json!({"portMappings": [
        {"HostPort": 12000, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""}
    ]});
    let pod = Pod::new();
    let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let args = k8s_args(id);
    let mut env = Host::pod_env(id, &pod.path).to_vec();
    env.push(("CNI_ARGS", &args));
    let r = host.cni("ADD", &env, &conf);
    let ip = result_ip(r.ok());
    let host_ns = berth_netsetup::NetNs::open_named(host.ns.name()).unwrap();
    for (n, addr) in ["10.99.0.1:12000", "127.0.0.1:12000"].iter().enumerate() {
        let server = serve_once(listen_in(&pod.handle(), &format!("{ip}:80")));
        let msg = format!("m{n}");
        assert_eq!(
            talk_from(&host_ns, addr, &msg),
            format!("echo:{msg}"),
            "through {addr}"
        );
        server.join().unwrap();
    }
    host.cni("DEL", &env, &conf).ok_empty();
    host.assert_no_attachments("N");
}

/// DEL must not be refused over a capability argument it does not use: a
/// sandbox whose DEL fails can never be removed (containerd retries
/// StopPodSandbox forever). A `runtimeConfig` this plugin cannot read (here
/// a port given as a string) makes ADD fail with 7, and DEL still removes
/// what an earlier ADD made.
#[test]
fn del_ignores_an_unreadable_runtime_config() {
    berth_testkit::privileged!();
    let host = Host::new();
    let mut conf = host.conf("1.0.0");
    conf["capabilities"] = json!({"portMappings": true});
    conf["runtimeConfig"] = json!({"portMappings": [{"hostPort": 8083, "containerPort": 80}]});
    let pod = Pod::new();
    let env = Host::pod_env("c1", &pod.path);
    host.cni("ADD", &env, &conf).ok();
    let mut bad = conf.clone();
    bad["runtimeConfig"] = json!({"portMappings": [{"hostPort": "8083", "containerPort": 80}]});
    let pod2 = Pod::new();
    assert_eq!(
        host.cni("ADD", &Host::pod_env("c2", &pod2.path), &bad)
            .err_code(),
        u64::from(berth_cni::code::INVALID_CONFIG)
    );
    host.cni("DEL", &env, &bad).ok_empty();
    host.assert_no_attachments("N");
    assert!(pod.addrs("eth0").is_empty(), "eth0 left in the pod");
}

/// Hairpin: a pod reaches its own published port through the gateway (a
/// Kubernetes pod reaching itself through its Service), with `ipMasq` on
/// and off (a node whose pod network is routed). With the bridge netfilter
/// hooks on (as on this host), the DNATed frame is bridged back to the port
/// it came from, which the bridge refuses unless the port is in hairpin
/// mode; and the DNATed packet comes back to the pod with its own source address
/// unless the host masquerades it, and the pod drops it (a martian); the
/// reference `portmap` plugin masquerades it whatever the bridge's `ipMasq`.
#[test]
fn a_pod_reaches_its_own_published_port() {
    berth_testkit::privileged!();
    let host = Host::new();
    for masq in [true, false] {
        let mut conf = host.conf("1.0.0");
        conf["ipMasq"] = json!(masq);
        conf["capabilities"] = json!({"portMappings": true});
        conf["runtimeConfig"] = json!({"portMappings": [{"HostPort": 8084, "ContainerPort": 80}]});
        let pod = Pod::new();
        let env = Host::pod_env("self", &pod.path);
        let r = host.cni("ADD", &env, &conf);
        let ip = result_ip(r.ok());
        let port = r.ok()["interfaces"][1]["name"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            hairpin_of(&host, &port),
            Some(true),
            "hairpinMode defaults to on"
        );
        let server = serve_once(listen_in(&pod.handle(), &format!("{ip}:80")));
        // talk_from panics when the connection times out (the SYN dropped).
        let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            talk_from(&pod.handle(), "10.99.0.1:8084", "me")
        }));
        if got.is_err() {
            // Let the server's accept return.
            talk_from(&pod.handle(), &format!("{ip}:80"), "direct");
        }
        server.join().unwrap();
        host.cni("DEL", &env, &conf).ok_empty();
        assert_eq!(
            got.ok().as_deref(),
            Some("echo:me"),
            "ipMasq {masq}: pod {ip} to its own published port 8084 through the gateway"
        );
        host.assert_no_attachments("N");
    }
}

/// The hairpin flag of bridge port `port` in the test host (`ip -d link`).
fn hairpin_of(host: &Host, port: &str) -> Option<bool> {
    host.ip_json(&["-d", "link", "show", "dev", port])[0]["linkinfo"]["info_slave_data"]["hairpin"]
        .as_bool()
}

/// `"hairpinMode": false` leaves the pod's bridge port as the kernel makes it.
#[test]
fn hairpin_mode_can_be_turned_off() {
    berth_testkit::privileged!();
    let host = Host::new();
    let mut conf = host.conf("1.0.0");
    conf["hairpinMode"] = json!(false);
    let pod = Pod::new();
    let env = Host::pod_env("nohp", &pod.path);
    let r = host.cni("ADD", &env, &conf);
    let port = r.ok()["interfaces"][1]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(hairpin_of(&host, &port), Some(false));
    host.cni("DEL", &env, &conf).ok_empty();
    host.assert_no_attachments("N");
}
