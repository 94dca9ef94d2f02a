//! berth-cni driven as a runtime drives it: the binary exec'd with `CNI_*`
//! variables and the configuration on stdin, inside a test-made "host"
//! netns (bridge, nftables, ip_forward all stay in there), pods in their own
//! test-made netns. Traffic only between those namespaces.

mod common;

use std::collections::BTreeSet;

use berth_cni::code;
use common::*;
use serde_json::{json, Value};

/// ADD two pods with the minimal conf list entry: the result in the
/// spec's JSON, the address on eth0, TCP between the pods by address, CHECK
/// ok, CHECK after the veth is deleted fails, DEL twice ok, nothing left.
#[test]
fn add_two_pods_talk_check_and_del() {
    berth_testkit::privileged!();
    let host = Host::new();
    let conf = host.conf("1.1.0");
    let (a, b) = (Pod::new(), Pod::new());
    let ra = host.cni("ADD", &Host::pod_env("pod-a", &a.path), &conf);
    let ra = ra.ok().clone();
    assert_eq!(ra["cniVersion"], "1.1.0");
    let ifs = ra["interfaces"].as_array().unwrap();
    assert_eq!(ifs.len(), 3, "{ra}");
    assert_eq!(ifs[0]["name"], "cni-N", "bridge named after the network");
    assert_eq!(ifs[2]["name"], "eth0");
    assert_eq!(ifs[2]["sandbox"], a.path.as_str());
    assert!(ifs[2]["mac"].as_str().unwrap().len() == 17, "{ra}");
    assert_eq!(ra["ips"][0]["interface"], 2);
    assert_eq!(ra["ips"][0]["gateway"], "10.99.0.1");
    assert_eq!(
        ra["routes"][0],
        json!({"dst": "0.0.0.0/0", "gw": "10.99.0.1"})
    );
    let ip_a = result_ip(&ra);
    assert_eq!(a.addrs("eth0"), [ra["ips"][0]["address"].as_str().unwrap()]);
    let rb = host.cni("ADD", &Host::pod_env("pod-b", &b.path), &conf);
    let ip_b = result_ip(rb.ok());
    assert_ne!(ip_a, ip_b);
    assert_eq!(
        host.ip_forward(),
        "1",
        "ensure enabled forwarding in the test host"
    );
    assert!(
        host.nft_ruleset()
            .contains("masquerade comment \"berth net=N\""),
        "masquerade by default:\n{}",
        host.nft_ruleset()
    );

    // Traffic between the two pods, over the bridge, by address.
    let l = listen_in(&b.handle(), &format!("{ip_b}:7000"));
    let server = serve_once(l);
    assert_eq!(
        talk_from(&a.handle(), &format!("{ip_b}:7000"), "hi"),
        "echo:hi"
    );
    assert_eq!(
        server.join().unwrap().ip().to_string(),
        ip_a,
        "not NATed inside the subnet"
    );

    // CHECK (with the ADD result as prevResult, as the runtime sends it).
    let mut check_conf = conf.clone();
    check_conf["prevResult"] = ra.clone();
    host.cni("CHECK", &Host::pod_env("pod-a", &a.path), &check_conf)
        .ok_empty();
    host.cni("CHECK", &Host::pod_env("pod-b", &b.path), &conf)
        .ok_empty();
    // A prevResult that does not list the address: CHECK fails.
    let mut wrong = conf.clone();
    wrong["prevResult"] = json!({"cniVersion": "1.1.0", "ips": [{"address": "10.99.0.200/24"}]});
    assert_eq!(
        host.cni("CHECK", &Host::pod_env("pod-a", &a.path), &wrong)
            .err_code(),
        u64::from(code::CHECK_FAILED)
    );
    // The veth deleted behind the plugin's back: CHECK reports it.
    run_ip(&["-n", a.ns.name(), "link", "del", "eth0"]);
    let r = host.cni("CHECK", &Host::pod_env("pod-a", &a.path), &conf);
    assert_eq!(r.err_code(), u64::from(code::CHECK_FAILED), "{:?}", r.json);

    // DEL twice each: success both times.
    for _ in 0..2 {
        host.cni("DEL", &Host::pod_env("pod-a", &a.path), &conf)
            .ok_empty();
        host.cni("DEL", &Host::pod_env("pod-b", &b.path), &conf)
            .ok_empty();
    }
    assert_eq!(
        b.addrs("eth0"),
        Vec::<String>::new(),
        "pod b's eth0 went with DEL"
    );
    host.assert_no_attachments("N");
    // CHECK after DEL: nothing recorded.
    assert_eq!(
        host.cni("CHECK", &Host::pod_env("pod-b", &b.path), &conf)
            .err_code(),
        u64::from(code::CHECK_FAILED)
    );
}

fn run_ip(args: &[&str]) {
    berth_testkit::run("ip", args);
}

/// Every error code the plugin returns, each leaving nothing behind.
#[test]
fn error_codes() {
    berth_testkit::privileged!();
    let host = Host::new();
    let pod = Pod::new();
    let env = Host::pod_env("c1", &pod.path);
    let conf = host.conf("1.1.0");
    let raw =
        |cmd: &str, env: &[(&str, &str)], stdin: &str| host.run_plugin(PLUGIN, cmd, env, stdin);
    // 6: not JSON.
    assert_eq!(raw("ADD", &env, "{not json").err_code(), 6);
    // 1: a version we do not speak; STATUS/GC before 1.1.0.
    let mut c = conf.clone();
    c["cniVersion"] = "0.3.1".into();
    let r = host.cni("ADD", &env, &c);
    assert_eq!(r.err_code(), 1);
    assert_eq!(host.cni("STATUS", &[], &host.conf("1.0.0")).err_code(), 1);
    assert_eq!(host.cni("GC", &[], &host.conf("0.4.0")).err_code(), 1);
    // 4: missing or bad environment.
    assert_eq!(
        host.cni(
            "ADD",
            &[("CNI_NETNS", &pod.path), ("CNI_IFNAME", "eth0")],
            &conf
        )
        .err_code(),
        4
    );
    assert_eq!(
        host.cni(
            "ADD",
            &[("CNI_CONTAINERID", "c1"), ("CNI_IFNAME", "eth0")],
            &conf
        )
        .err_code(),
        4
    );
    assert_eq!(
        host.cni("DEL", &[("CNI_CONTAINERID", "c1")], &conf)
            .err_code(),
        4
    );
    assert_eq!(
        host.cni(
            "ADD",
            &[
                ("CNI_CONTAINERID", "c/1"),
                ("CNI_NETNS", &pod.path),
                ("CNI_IFNAME", "eth0")
            ],
            &conf
        )
        .err_code(),
        4
    );
    assert_eq!(
        host.cni(
            "ADD",
            &[
                ("CNI_CONTAINERID", "c1"),
                ("CNI_NETNS", &pod.path),
                ("CNI_IFNAME", "way-too-long-ifname")
            ],
            &conf
        )
        .err_code(),
        4
    );
    assert_eq!(host.cni("FROB", &env, &conf).err_code(), 4);
    // 7: invalid configuration (no subnet, bad subnet, wrong shape, gateway outside).
    let mut c = conf.clone();
    c.as_object_mut().unwrap().remove("subnet");
    assert_eq!(host.cni("ADD", &env, &c).err_code(), 7);
    let mut c = conf.clone();
    c["subnet"] = "10.99.0.0/33".into();
    assert_eq!(host.cni("ADD", &env, &c).err_code(), 7);
    let mut c = conf.clone();
    c["mtu"] = "big".into();
    assert_eq!(host.cni("ADD", &env, &c).err_code(), 7);
    let mut c = conf.clone();
    c["gateway"] = "10.1.0.1".into();
    assert_eq!(host.cni("ADD", &env, &c).err_code(), 7);
    // 2: unsupported fields (delegated IPAM, IPv6, sctp).
    let mut c = conf.clone();
    c["ipam"] = json!({"type": "host-local", "subnet": "10.99.0.0/24"});
    assert_eq!(host.cni("ADD", &env, &c).err_code(), 2);
    let mut c = conf.clone();
    c["subnet"] = "fd00:99::/64".into();
    assert_eq!(host.cni("ADD", &env, &c).err_code(), 2);
    let mut c = conf.clone();
    c["runtimeConfig"] =
        json!({"portMappings": [{"hostPort": 80, "containerPort": 80, "protocol": "sctp"}]});
    assert_eq!(host.cni("ADD", &env, &c).err_code(), 2);
    // 3: the netns does not exist.
    let gone = format!("{}-gone", pod.path);
    assert_eq!(
        host.cni("ADD", &Host::pod_env("c1", &gone), &conf)
            .err_code(),
        3
    );
    // None of the failures above created anything.
    assert_eq!(host.links(), ["lo"], "no bridge or veth after refused ADDs");
    assert!(host.allocations("N").is_empty());

    // 100: the same (container, ifname) twice; a requested address taken.
    host.cni("ADD", &env, &conf).ok();
    assert_eq!(host.cni("ADD", &env, &conf).err_code(), 100);
    let pod2 = Pod::new();
    let mut c = conf.clone();
    c["runtimeConfig"] = json!({"ips": ["10.99.0.2/24"]});
    assert_eq!(
        host.cni("ADD", &Host::pod_env("c2", &pod2.path), &c)
            .err_code(),
        100
    );
    // 100: ifname already exists in the pod.
    pod2.occupy_eth0();
    assert_eq!(
        host.cni("ADD", &Host::pod_env("c2", &pod2.path), &conf)
            .err_code(),
        100
    );
    run_ip(&["-n", pod2.ns.name(), "link", "del", "eth0"]);
    assert_eq!(
        host.allocations("N").len(),
        1,
        "the refused ADDs allocated nothing"
    );
    // Published port taken by c1, requested by c2: 100, and c2 leaves nothing.
    host.cni("DEL", &env, &conf).ok_empty();
    let mut c = conf.clone();
    c["runtimeConfig"] =
        json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]});
    host.cni("ADD", &env, &c).ok();
    assert_eq!(
        host.cni("ADD", &Host::pod_env("c2", &pod2.path), &c)
            .err_code(),
        100
    );
    assert_eq!(host.allocations("N").len(), 1);
    assert!(pod2.addrs("eth0").is_empty());
    host.cni("DEL", &env, &c).ok_empty();
    host.assert_no_attachments("N");

    // 101 pool exhausted, STATUS 50: a /30 has room for one pod.
    let mut small = conf.clone();
    small["name"] = "tiny".into();
    small["subnet"] = "10.98.0.0/30".into();
    host.cni("STATUS", &[], &small).ok_empty();
    host.cni("ADD", &env, &small).ok();
    assert_eq!(
        host.cni("ADD", &Host::pod_env("c2", &pod2.path), &small)
            .err_code(),
        101
    );
    let r = host.cni("STATUS", &[], &small);
    assert_eq!(r.err_code(), 50, "{:?}", r.json);
    host.cni("DEL", &env, &small).ok_empty();
    host.cni("STATUS", &[], &small).ok_empty();
    // 51: attachments recorded but their bridge is gone.
    host.assert_no_attachments("tiny");
    host.cni("ADD", &env, &conf).ok();
    host.cni("STATUS", &[], &conf).ok_empty();
    run_ip(&["-n", host.ns.name(), "link", "del", "cni-N"]);
    assert_eq!(host.cni("STATUS", &[], &conf).err_code(), 51);
    host.cni("DEL", &env, &conf).ok_empty();
    host.cni("STATUS", &[], &conf).ok_empty();
    host.assert_no_attachments("N");
    // The error object answers in the request's version.
    let mut c = conf.clone();
    c["cniVersion"] = "1.0.0".into();
    c.as_object_mut().unwrap().remove("subnet");
    assert_eq!(
        host.cni("ADD", &env, &c).json.unwrap()["cniVersion"],
        "1.0.0"
    );
}

/// VERSION lists the three versions; STATUS on a fresh network; 0.4.0
/// results carry "version" on their ips; the configuration's options.
#[test]
fn version_status_and_options() {
    berth_testkit::privileged!();
    let host = Host::new();
    for (req, want) in [("0.4.0", "0.4.0"), ("1.1.0", "1.1.0"), ("0.3.1", "1.1.0")] {
        let r = host.run_plugin(
            PLUGIN,
            "VERSION",
            &[],
            &json!({"cniVersion": req}).to_string(),
        );
        let v = r.ok();
        assert_eq!(v["cniVersion"], want);
        assert_eq!(v["supportedVersions"], json!(["0.4.0", "1.0.0", "1.1.0"]));
    }
    host.cni("STATUS", &[], &host.conf("1.1.0")).ok_empty();
    assert_eq!(host.links(), ["lo"], "STATUS creates no bridge");
    let pod = Pod::new();
    let r = host.cni("ADD", &Host::pod_env("old", &pod.path), &host.conf("0.4.0"));
    let v = r.ok();
    assert_eq!(v["cniVersion"], "0.4.0");
    assert_eq!(v["ips"][0]["version"], "4");
    host.cni("DEL", &Host::pod_env("old", &pod.path), &host.conf("0.4.0"))
        .ok_empty();
    host.assert_no_attachments("N");

    // A requested address through CNI_ARGS (IP=, as host-local takes it),
    // another bridge name, no masquerade, an MTU, DNS passed through.
    let mut conf = host.conf("1.1.0");
    conf["name"] = "opts".into();
    conf["bridge"] = "br-opts".into();
    conf["subnet"] = "10.95.0.0/24".into();
    conf["ipMasq"] = false.into();
    conf["mtu"] = 1400.into();
    conf["dns"] = json!({"nameservers": ["10.95.0.1"], "search": ["svc.local"]});
    let env = [
        ("CNI_CONTAINERID", "opt1"),
        ("CNI_NETNS", pod.path.as_str()),
        ("CNI_IFNAME", "net1"),
        ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.95.0.50"),
    ];
    let r = host.cni("ADD", &env, &conf);
    let v = r.ok();
    assert_eq!(v["ips"][0]["address"], "10.95.0.50/24");
    assert_eq!(v["interfaces"][0]["name"], "br-opts");
    assert_eq!(v["interfaces"][2]["name"], "net1");
    assert_eq!(v["interfaces"][2]["mtu"], 1400);
    assert_eq!(v["dns"]["search"][0], "svc.local");
    assert_eq!(pod.addrs("net1"), ["10.95.0.50/24"]);
    assert!(
        !host.nft_ruleset().contains("berth net=opts"),
        "ipMasq false: no masquerade\n{}",
        host.nft_ruleset()
    );
    host.cni("CHECK", &env, &conf).ok_empty();
    // GC under the list's earlier name keeps it.
    let mut gc = conf.clone();
    gc["cni.dev/attachments"] = json!([{"containerID": "opt1", "ifname": "net1"}]);
    host.cni("GC", &[], &gc).ok_empty();
    assert_eq!(host.allocations("opts").len(), 1);
    host.cni("DEL", &env, &conf).ok_empty();
    host.assert_no_attachments("opts");
}

/// DEL with nothing ever added, after the netns is gone, and after ADD was
/// SIGKILLed at various points: success, and nothing left behind.
#[test]
fn del_is_idempotent_and_cleans_up_after_crashes() {
    berth_testkit::privileged!();
    let host = Host::new();
    let mut conf = host.conf("1.1.0");
    // With a published port, so the crash leftovers include nft rules.
    conf["runtimeConfig"] = json!({"portMappings": [{"hostPort": 8081, "containerPort": 80}]});
    // Never added: DEL succeeds and creates nothing.
    let pod = Pod::new();
    host.cni("DEL", &Host::pod_env("never", &pod.path), &conf)
        .ok_empty();
    host.cni(
        "DEL",
        &[("CNI_CONTAINERID", "never"), ("CNI_IFNAME", "eth0")],
        &conf,
    )
    .ok_empty();
    assert_eq!(host.links(), ["lo"]);
    assert!(
        std::fs::read_dir(host.dir.path()).unwrap().next().is_none(),
        "DEL of nothing wrote no state"
    );

    // The netns is gone before DEL.
    let gone = Pod::new();
    let path = gone.path.clone();
    host.cni("ADD", &Host::pod_env("gone", &path), &conf).ok();
    drop(gone);
    host.cni("DEL", &Host::pod_env("gone", &path), &conf)
        .ok_empty();
    host.cni("DEL", &Host::pod_env("gone", &path), &conf)
        .ok_empty();
    assert!(
        wait_for(5, || host.links() == ["lo", "cni-N"]),
        "links {:?}",
        host.links()
    );
    host.assert_no_attachments("N");

    // ADD killed midway, at points spread over its run time; then DEL.
    let pod = Pod::new();
    let env = Host::pod_env("timing", &pod.path);
    let t0 = std::time::Instant::now();
    host.cni("ADD", &env, &conf).ok();
    let full = t0.elapsed();
    host.cni("DEL", &env, &conf).ok_empty();
    drop(pod);
    // Kill points cycle over 0–110 % of that time until three kills left
    // state behind (at least 12 tries, at most 48: the machine's load
    // moves the window where a kill lands after the allocation).
    let mut left_state = 0;
    let mut tries = 0;
    while tries < 12 || (left_state < 3 && tries < 48) {
        let tenth = (tries * 5) % 12;
        tries += 1;
        let pod = Pod::new();
        let env = Host::pod_env("crash", &pod.path);
        let mut child = host.spawn_plugin(PLUGIN, "ADD", &env, &conf.to_string());
        std::thread::sleep(full * tenth / 10);
        let _ = child.kill();
        let r = wait_reply(child);
        let leftovers =
            !host.allocations("N").is_empty() || host.links().iter().any(|l| l.starts_with("vb"));
        if r.code == -1 && leftovers {
            left_state += 1;
        }
        host.cni("DEL", &env, &conf).ok_empty();
        host.assert_no_attachments("N");
        assert!(pod.addrs("eth0").is_empty(), "eth0 left in the pod");
        // The id can be used again at once.
        host.cni("ADD", &env, &conf).ok();
        host.cni("DEL", &env, &conf).ok_empty();
        host.assert_no_attachments("N");
    }
    eprintln!("a full ADD took {full:?}; {left_state} of {tries} killed ADDs left state for DEL");
    assert!(
        left_state > 0,
        "no ADD was killed midway (after it allocated)"
    );
}

/// 32 ADDs at once (32 processes): all succeed, 32 distinct addresses;
/// then 32 DELs at once leave nothing.
#[test]
fn concurrent_adds_get_distinct_addresses() {
    berth_testkit::privileged!();
    let host = Host::new();
    let conf = host.conf("1.1.0").to_string();
    let pods: Vec<Pod> = (0..32).map(|_| Pod::new()).collect();
    let ids: Vec<String> = (0..32).map(|i| format!("par-{i}")).collect();
    let children: Vec<_> = pods
        .iter()
        .zip(&ids)
        .map(|(p, id)| host.spawn_plugin(PLUGIN, "ADD", &Host::pod_env(id, &p.path), &conf))
        .collect();
    let mut addrs = BTreeSet::new();
    for (c, p) in children.into_iter().zip(&pods) {
        let r = wait_reply(c);
        let ip = result_ip(r.ok());
        assert_eq!(p.addrs("eth0"), [format!("{ip}/24")]);
        assert!(addrs.insert(ip.clone()), "address {ip} handed out twice");
    }
    assert_eq!(addrs.len(), 32);
    assert_eq!(host.allocations("N").len(), 32);
    assert!(!addrs.contains("10.99.0.1") && !addrs.contains("10.99.0.0"));
    let children: Vec<_> = pods
        .iter()
        .zip(&ids)
        .map(|(p, id)| host.spawn_plugin(PLUGIN, "DEL", &Host::pod_env(id, &p.path), &conf))
        .collect();
    for c in children {
        wait_reply(c).ok_empty();
    }
    host.assert_no_attachments("N");
}

/// GC removes the attachments not in cni.dev/valid-attachments and keeps the others.
#[test]
fn gc_removes_stale_attachments() {
    berth_testkit::privileged!();
    let host = Host::new();
    let conf = host.conf("1.1.0");
    let pods: Vec<Pod> = (0..3).map(|_| Pod::new()).collect();
    for (i, p) in pods.iter().enumerate() {
        host.cni("ADD", &Host::pod_env(&format!("gc{i}"), &p.path), &conf)
            .ok();
    }
    assert_eq!(host.allocations("N").len(), 3);
    // No list: refused, nothing removed.
    assert_eq!(host.cni("GC", &[], &conf).err_code(), 7);
    assert_eq!(host.allocations("N").len(), 3);
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([
        {"containerID": "gc0", "ifname": "eth0"},
        {"containerID": "gc1", "ifname": "eth1"},   // another ifname: not this attachment
        {"containerID": "other", "ifname": "eth0"}
    ]);
    host.cni("GC", &[], &gc).ok_empty();
    assert_eq!(host.allocations("N").len(), 1);
    host.cni("CHECK", &Host::pod_env("gc0", &pods[0].path), &conf)
        .ok_empty();
    assert!(pods[1].addrs("eth0").is_empty() && pods[2].addrs("eth0").is_empty());
    let links = host.links();
    assert_eq!(links.len(), 3, "lo, bridge, gc0's veth: {links:?}");
    gc["cni.dev/valid-attachments"] = json!([]);
    host.cni("GC", &[], &gc).ok_empty();
    host.assert_no_attachments("N");
}

/// A published port from the portMappings capability: DNAT from the host
/// to the pod, gone after DEL.
#[test]
fn port_mappings_capability_publishes() {
    berth_testkit::privileged!();
    let host = Host::new();
    let mut conf = host.conf("1.1.0");
    conf["capabilities"] = json!({"portMappings": true});
    conf["runtimeConfig"] = json!({"portMappings": [{"hostPort": 8082, "containerPort": 80, "protocol": "tcp", "hostIP": ""}]});
    let pod = Pod::new();
    let r = host.cni("ADD", &Host::pod_env("web", &pod.path), &conf);
    let ip = result_ip(r.ok());
    let server = serve_once(listen_in(&pod.handle(), &format!("{ip}:80")));
    // From the test host itself to its own bridge address: output-chain DNAT.
    let host_ns = berth_netsetup::NetNs::open_named(host.ns.name()).unwrap();
    assert_eq!(talk_from(&host_ns, "10.99.0.1:8082", "pub"), "echo:pub");
    server.join().unwrap();
    host.cni("DEL", &Host::pod_env("web", &pod.path), &conf)
        .ok_empty();
    host.assert_no_attachments("N");
}

/// IPAM-only mode: as another plugin's ipam it returns ips and creates no
/// interface; driven by Debian's reference `bridge` plugin it gives the pod
/// its address.
#[test]
fn ipam_mode_alone_and_under_the_reference_bridge() {
    berth_testkit::privileged!();
    let host = Host::new();
    let conf = json!({
        "cniVersion": "1.0.0",
        "name": "ipamnet",
        "type": "bridge",
        "bridge": "refbr0",
        "isGateway": true,
        "ipam": {
            "type": "berth-cni",
            "subnet": "10.97.0.0/24",
            "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": host.data_dir(),
        }
    });
    let pod = Pod::new();
    let env = Host::pod_env("ip1", &pod.path);
    let r = host.cni("ADD", &env, &conf);
    let v = r.ok();
    assert_eq!(v["ips"][0]["address"], "10.97.0.2/24");
    assert_eq!(v["ips"][0]["gateway"], "10.97.0.1");
    assert!(v["ips"][0].get("interface").is_none(), "{v}");
    assert!(v.get("interfaces").is_none(), "{v}");
    assert_eq!(v["routes"][0]["dst"], "0.0.0.0/0");
    assert_eq!(host.links(), ["lo"], "IPAM mode creates no interface");
    assert!(pod.addrs("eth0").is_empty());
    host.cni("CHECK", &env, &conf).ok_empty();
    host.cni("DEL", &env, &conf).ok_empty();
    host.cni("DEL", &env, &conf).ok_empty();
    assert_eq!(host.cni("CHECK", &env, &conf).err_code(), 102);
    assert!(host.allocations("ipamnet").is_empty());
    // GC in IPAM mode.
    host.cni("ADD", &env, &conf).ok();
    let mut gc = conf.clone();
    gc["cniVersion"] = "1.1.0".into();
    gc["cni.dev/valid-attachments"] = json!([]);
    host.cni("GC", &[], &gc).ok_empty();
    assert!(host.allocations("ipamnet").is_empty());

    // Under the reference bridge plugin (it finds berth-cni on CNI_PATH).
    let Some(bridge) = reference_plugin("bridge") else {
        return;
    };
    let bridge = bridge.display().to_string();
    let r = host.run_plugin(&bridge, "ADD", &env, &conf.to_string());
    let v = r.ok();
    let addr = v["ips"][0]["address"].as_str().unwrap();
    assert!(addr.starts_with("10.97.0.") && addr.ends_with("/24"), "{v}");
    assert_eq!(pod.addrs("eth0"), [addr]);
    assert_eq!(
        host.allocations("ipamnet")
            .into_values()
            .collect::<Vec<_>>(),
        [addr.trim_end_matches("/24")],
        "the address came from berth-cni's IPAM"
    );
    assert_eq!(host.allocations("ipamnet").len(), 1);
    let mut check = conf.clone();
    check["prevResult"] = v.clone();
    host.run_plugin(&bridge, "CHECK", &env, &check.to_string())
        .ok_empty();
    host.run_plugin(&bridge, "DEL", &env, &check.to_string())
        .ok_empty();
    assert!(host.allocations("ipamnet").is_empty());
    assert!(
        wait_for(5, || host.links() == ["lo", "refbr0"]),
        "{:?}",
        host.links()
    );
}

/// A conf list chaining the reference `loopback`, berth-cni and the
/// reference `firewall`, `bandwidth` and `portmap`, run as libcni runs a
/// list: ADD in order with each result as the next prevResult, CHECK in
/// order, DEL in reverse.
#[test]
fn chains_with_reference_plugins() {
    berth_testkit::privileged!();
    let types = ["loopback", "firewall", "bandwidth", "portmap"];
    if types.iter().any(|t| reference_plugin(t).is_none()) {
        return;
    }
    let host = Host::new();
    let version = "1.0.0"; // Debian's plugins (1.1.x) speak up to 1.0.0
    let list = json!({
        "cniVersion": version,
        "name": "chain",
        "plugins": [
            {"type": "loopback"},
            {"type": "berth-cni", "subnet": "10.96.0.0/24", "dataDir": host.data_dir(),
             "dns": {"nameservers": ["10.96.0.1"]}},
            {"type": "firewall", "backend": "iptables"},
            {"type": "bandwidth", "capabilities": {"bandwidth": true}},
            {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
        ]
    });
    // Bandwidth into the pod only: a tbf on the host veth, no ifb device.
    let runtime_config = json!({
        "portMappings": [{"hostPort": 8083, "containerPort": 80, "protocol": "tcp"}],
        "bandwidth": {"ingressRate": 100_000_000, "ingressBurst": 1_000_000}
    });
    let program = |t: &str| match t {
        "berth-cni" => PLUGIN.to_string(),
        other => format!("{REF_PLUGINS}/{other}"),
    };
    let entry = |p: &Value, prev: Option<&Value>| {
        let mut c = p.clone();
        c["cniVersion"] = version.into();
        c["name"] = "chain".into();
        if p.get("capabilities").is_some() {
            c["runtimeConfig"] = runtime_config.clone();
        }
        if let Some(prev) = prev {
            c["prevResult"] = prev.clone();
        }
        c
    };
    let pod = Pod::new();
    let env = Host::pod_env("chained", &pod.path);
    let plugins = list["plugins"].as_array().unwrap();
    let mut prev: Option<Value> = None;
    for p in plugins {
        let t = p["type"].as_str().unwrap();
        let r = host.run_plugin(
            &program(t),
            "ADD",
            &env,
            &entry(p, prev.as_ref()).to_string(),
        );
        prev = Some(r.ok().clone());
    }
    let result = prev.unwrap();
    // loopback's lo, then berth-cni's three interfaces; ips index the pod's eth0.
    let ifs = result["interfaces"].as_array().unwrap();
    assert_eq!(ifs.len(), 4, "{result}");
    assert_eq!(ifs[0]["name"], "lo");
    assert_eq!(ifs[3]["name"], "eth0");
    let eth0_ip = result["ips"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["interface"] == 3)
        .expect("an ip on eth0");
    assert_eq!(eth0_ip["address"], "10.96.0.2/24");
    assert_eq!(result["dns"]["nameservers"][0], "10.96.0.1");
    // bandwidth found berth-cni's host veth in the result and shaped it.
    let veth = ifs[2]["name"].as_str().unwrap();
    let qdisc = berth_testkit::run("tc", &["-n", host.ns.name(), "qdisc", "show", "dev", veth]);
    assert!(qdisc.contains("tbf"), "{qdisc}");
    // firewall allowed the pod's address in its chain.
    let fw = berth_testkit::run(
        "ip",
        &[
            "netns",
            "exec",
            host.ns.name(),
            "iptables",
            "-S",
            "CNI-FORWARD",
        ],
    );
    assert!(fw.contains("10.96.0.2"), "{fw}");
    // portmap's DNAT reaches the pod from the test host.
    let server = serve_once(listen_in(&pod.handle(), "10.96.0.2:80"));
    let host_ns = berth_netsetup::NetNs::open_named(host.ns.name()).unwrap();
    assert_eq!(talk_from(&host_ns, "10.96.0.1:8083", "pm"), "echo:pm");
    server.join().unwrap();
    // CHECK in order; not portmap's: Debian's 1.1.1 fails CHECK on an
    // IPv4-only result looking for ip6tables rules it never made
    // (containernetworking/plugins#819) — a runtime sets disableCheck for it.
    for p in plugins.iter().filter(|p| p["type"] != "portmap") {
        let t = p["type"].as_str().unwrap();
        host.run_plugin(
            &program(t),
            "CHECK",
            &env,
            &entry(p, Some(&result)).to_string(),
        )
        .ok_empty();
    }
    for _ in 0..2 {
        for p in plugins.iter().rev() {
            let t = p["type"].as_str().unwrap();
            host.run_plugin(
                &program(t),
                "DEL",
                &env,
                &entry(p, Some(&result)).to_string(),
            )
            .ok_empty();
        }
    }
    host.assert_no_attachments("chain");
}

/// macvlan mode: two pods on a parent interface of the test host (a veth
/// whose other end is in a "router" netns holding the gateway address)
/// reach each other and the router; CHECK, DEL, GC, STATUS, errors.
#[test]
fn macvlan_pods_reach_each_other_and_the_router() {
    berth_testkit::privileged!();
    let host = Host::new();
    let router = berth_testkit::Netns::new();
    run_ip(&[
        "-n",
        host.ns.name(),
        "link",
        "add",
        "mvup",
        "type",
        "veth",
        "peer",
        "name",
        "mvrt",
        "netns",
        router.name(),
    ]);
    run_ip(&["-n", host.ns.name(), "link", "set", "mvup", "up"]);
    run_ip(&[
        "-n",
        router.name(),
        "addr",
        "add",
        "10.94.0.1/24",
        "dev",
        "mvrt",
    ]);
    run_ip(&["-n", router.name(), "link", "set", "mvrt", "up"]);
    let mut conf = host.conf("1.1.0");
    conf["name"] = "mv".into();
    conf["driver"] = "macvlan".into();
    conf["master"] = "mvup".into();
    conf["subnet"] = "10.94.0.0/24".into();
    let (a, b) = (Pod::new(), Pod::new());
    let ra = host.cni("ADD", &Host::pod_env("mva", &a.path), &conf);
    let ra = ra.ok().clone();
    assert_eq!(ra["interfaces"].as_array().unwrap().len(), 1, "{ra}");
    assert_eq!(ra["interfaces"][0]["name"], "eth0");
    assert_eq!(ra["interfaces"][0]["sandbox"], a.path.as_str());
    assert_eq!(ra["ips"][0]["interface"], 0);
    assert_eq!(ra["ips"][0]["gateway"], "10.94.0.1");
    let ip_a = result_ip(&ra);
    let rb = host.cni("ADD", &Host::pod_env("mvb", &b.path), &conf);
    let ip_b = result_ip(rb.ok());
    let kind = berth_testkit::run(
        "ip",
        &["-n", a.ns.name(), "-d", "-j", "link", "show", "eth0"],
    );
    assert!(kind.contains("\"info_kind\":\"macvlan\""), "{kind}");
    let mut links = host.links();
    links.sort();
    assert_eq!(links, ["lo", "mvup"], "no bridge, no veth in the host");
    assert!(!host.nft_ruleset().contains("berth"), "no NAT for macvlan");

    // Pod to pod (macvlan bridge mode), pod to the router (the gateway).
    let server = serve_once(listen_in(&b.handle(), &format!("{ip_b}:7001")));
    assert_eq!(
        talk_from(&a.handle(), &format!("{ip_b}:7001"), "mv"),
        "echo:mv"
    );
    assert_eq!(server.join().unwrap().ip().to_string(), ip_a);
    let router_ns = berth_netsetup::NetNs::open_named(router.name()).unwrap();
    let server = serve_once(listen_in(&router_ns, "10.94.0.1:7002"));
    assert_eq!(talk_from(&b.handle(), "10.94.0.1:7002", "gw"), "echo:gw");
    assert_eq!(server.join().unwrap().ip().to_string(), ip_b);

    host.cni("CHECK", &Host::pod_env("mva", &a.path), &conf)
        .ok_empty();
    run_ip(&["-n", a.ns.name(), "link", "del", "eth0"]);
    assert_eq!(
        host.cni("CHECK", &Host::pod_env("mva", &a.path), &conf)
            .err_code(),
        102
    );
    for _ in 0..2 {
        host.cni("DEL", &Host::pod_env("mva", &a.path), &conf)
            .ok_empty();
    }
    // Errors: no master, a missing master, published ports.
    let pod = Pod::new();
    let env = Host::pod_env("mvc", &pod.path);
    let mut c = conf.clone();
    c.as_object_mut().unwrap().remove("master");
    assert_eq!(host.cni("ADD", &env, &c).err_code(), 7);
    let mut c = conf.clone();
    c["master"] = "nosuchif".into();
    assert_eq!(host.cni("ADD", &env, &c).err_code(), 7);
    assert_eq!(host.cni("STATUS", &[], &c).err_code(), 50);
    let mut c = conf.clone();
    c["runtimeConfig"] = json!({"portMappings": [{"hostPort": 8084, "containerPort": 80}]});
    assert_eq!(host.cni("ADD", &env, &c).err_code(), 2);
    // The name taken in the pod: 100, and the address is released again.
    pod.occupy_eth0();
    assert_eq!(host.cni("ADD", &env, &conf).err_code(), 100);
    assert_eq!(host.allocations("mv").len(), 1, "only mvb's address");
    host.cni("STATUS", &[], &conf).ok_empty();
    // GC keeps nothing; then DEL of a pod whose netns is gone.
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    host.cni("GC", &[], &gc).ok_empty();
    assert!(host.allocations("mv").is_empty());
    let path = b.path.clone();
    drop(b);
    host.cni("DEL", &Host::pod_env("mvb", &path), &conf)
        .ok_empty();
    let mut links = host.links();
    links.sort();
    assert_eq!(links, ["lo", "mvup"]);
}
