//! End to end: the `berth-run` binary (privileged tier).

mod common;

use std::process::Command;

use common::left_behind;

fn berth_run(args: &[&str]) -> (i32, String, String) {
    berth_run_env(args, &[])
}

/// `berth-run args` with environment variables `env` added.
fn berth_run_env(args: &[&str], env: &[(&str, &std::path::Path)]) -> (i32, String, String) {
    berth_run_in(&[], args, env)
}

/// `prefix berth-run args` (e.g. `ip netns exec NS`), environment `env` added.
fn berth_run_in(
    prefix: &[&str],
    args: &[&str],
    env: &[(&str, &std::path::Path)],
) -> (i32, String, String) {
    let exe = env!("CARGO_BIN_EXE_berth-run");
    let argv: Vec<&str> = prefix.iter().copied().chain([exe]).collect();
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run berth-run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn rootfs() -> String {
    berth_testkit::busybox_rootfs().display().to_string()
}

#[test]
fn exit_status_is_the_workloads() {
    berth_testkit::privileged!();
    let r = rootfs();
    let name = berth_testkit::unique_name("br-exit");
    let (code, out, err) = berth_run(&[
        "--rootfs",
        &r,
        "--name",
        &name,
        "--hostname",
        "box",
        "--env",
        "A=1",
        "--workdir",
        "/tmp",
        "--user",
        "1000:1000",
        "--",
        "/bin/sh",
        "-c",
        "echo $(hostname) $A $(pwd) $(id -u); exit 42",
    ]);
    assert_eq!(code, 42, "{err}");
    assert_eq!(out, "box 1 /tmp 1000\n");
    assert!(left_behind(&name).is_empty(), "{:?}", left_behind(&name));
    // Killed by a signal: 128+N (with --init the shell is not pid 1).
    let name = berth_testkit::unique_name("br-sig");
    let (code, _, err) = berth_run(&[
        "--rootfs",
        &r,
        "--name",
        &name,
        "--init",
        "--",
        "/bin/sh",
        "-c",
        "kill -9 $$",
    ]);
    assert_eq!(code, 128 + 9, "{err}");
    assert!(left_behind(&name).is_empty());
}

#[test]
fn options_are_applied() {
    berth_testkit::privileged!();
    let r = rootfs();
    let vol = tempfile::tempdir().unwrap();
    std::fs::write(vol.path().join("in"), "vol").unwrap();
    let v = format!("{}:/vol:ro", vol.path().display());
    let (code, out, err) = berth_run(&[
        "--rootfs",
        &r,
        "--read-only",
        "--tmpfs",
        "/scratch",
        "--volume",
        &v,
        "--net",
        "none",
        "--cap-drop",
        "ALL",
        "--seccomp",
        "unconfined",
        "--",
        "/bin/sh",
        "-c",
        "cat /vol/in; echo; touch /x 2>/dev/null || echo ro; touch /scratch/x && echo tmpfs-ok; \
         touch /vol/y 2>/dev/null || echo volro; cat /sys/class/net/lo/operstate; \
         grep -E '^(CapEff|Seccomp):' /proc/self/status",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "vol\nro\ntmpfs-ok\nvolro\ndown\nCapEff:\t0000000000000000\nSeccomp:\t0\n"
    );
}

#[test]
fn timeout_kills_the_workload() {
    berth_testkit::privileged!();
    let r = rootfs();
    let name = berth_testkit::unique_name("br-to");
    let t = std::time::Instant::now();
    let (code, _, err) = berth_run(&[
        "--rootfs",
        &r,
        "--name",
        &name,
        "--timeout",
        "0.5",
        "--",
        "/bin/sleep",
        "30",
    ]);
    assert_eq!(code, 128 + 9, "{err}");
    assert!(err.contains("timeout"), "{err}");
    assert!(t.elapsed().as_secs() < 10);
    assert!(left_behind(&name).is_empty());
}

#[test]
fn bad_input_exits_125_and_leaves_nothing() {
    berth_testkit::privileged!();
    let r = rootfs();
    let layout = tempfile::tempdir().unwrap();
    berth_overlay::ImageBuilder::new("bb:latest")
        .layer_dir(berth_testkit::busybox_rootfs())
        .write(layout.path())
        .unwrap();
    let image_missing_ref = format!("{}:nope", layout.path().display());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--rootfs", "/nonexistent/rootfs", "--", "true"],
            "/nonexistent/rootfs",
        ),
        (vec!["--image", &image_missing_ref, "--", "true"], "nope"),
        (vec!["--rootfs", &r, "--", "/no/such/cmd"], "/no/such/cmd"),
        (
            vec!["--rootfs", &r, "--memory", "lots", "--", "true"],
            "lots",
        ),
        (
            vec![
                "--rootfs",
                &r,
                "--volume",
                "/nonexistent/src:/v",
                "--",
                "true",
            ],
            "/nonexistent/src",
        ),
        (
            vec!["--rootfs", &r, "--cap-add", "BOGUS", "--", "true"],
            "BOGUS",
        ),
    ];
    for (args, needle) in cases {
        let name = berth_testkit::unique_name("br-bad");
        let mut full = vec!["--name", name.as_str()];
        full.extend(args.iter().copied());
        let (code, _, err) = berth_run(&full);
        assert_eq!(code, 125, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(err
            .trim()
            .lines()
            .next()
            .unwrap()
            .starts_with("berth-run: "));
        assert!(
            left_behind(&name).is_empty(),
            "{args:?}: {:?}",
            left_behind(&name)
        );
    }
}

/// Issue 20 item 10: berth-run's default capabilities leave the
/// inheritable set empty (CVE-2022-24769), the other three hold Docker's 14.
#[test]
fn default_inheritable_capabilities_are_empty() {
    berth_testkit::privileged!();
    let r = rootfs();
    let name = berth_testkit::unique_name("br-capinh");
    let (code, out, err) = berth_run(&[
        "--rootfs",
        &r,
        "--name",
        &name,
        "--",
        "/bin/sh",
        "-c",
        "grep -E '^Cap(Inh|Prm|Eff|Bnd):' /proc/self/status",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "CapInh:\t0000000000000000\nCapPrm:\t00000000a80425fb\n\
         CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\n"
    );
    assert!(left_behind(&name).is_empty(), "{:?}", left_behind(&name));
}

/// `berth-run network create/ls/rm`, and `--network NAME --name X
/// --network-alias A`: members resolve each other by name and alias, the
/// name goes with its container, `rm` leaves nothing and puts `ip_forward`
/// back. The networks live in a state directory of the test's own.
#[test]
fn network_subcommands_and_names() {
    berth_testkit::privileged!();
    let state = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| berth_run_env(args, &[("BERTH_NETWORK_STATE_DIR", state.path())]);
    let fwd = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let net = berth_testkit::unique_name("rn");
    let _link = berth_testkit::Link::adopt(net.clone());
    // On a failed assertion: end the member, remove the network (its nft
    // rules) and put ip_forward back, so a failure leaves the host as it was.
    let member = std::sync::Arc::new(std::sync::atomic::AtomicI32::new(0));
    let _cleanup = {
        let (member, net, fwd) = (member.clone(), net.clone(), fwd.clone());
        let dir = state.path().to_path_buf();
        OnDrop(Some(move || {
            let pid = member.load(std::sync::atomic::Ordering::SeqCst);
            if pid > 0 {
                // SAFETY: kill(2) on our own child, not yet reaped (its pid
                // is cleared once the test reaps it).
                unsafe { libc::kill(pid, libc::SIGTERM) };
                for _ in 0..100 {
                    let st =
                        std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                    if st.is_empty() || st.contains(") Z ") {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            }
            let _ = berth_run_env(
                &["network", "rm", &net],
                &[("BERTH_NETWORK_STATE_DIR", dir.as_path())],
            );
            let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", &fwd);
        }))
    };
    let (code, _, err) = run(&["network", "create", &net, "--driver", "ipvlan"]);
    assert_eq!(code, 125);
    assert!(
        err.contains("ipvlan") && err.contains("not one of"),
        "{err}"
    );
    let (code, out, err) = run(&["network", "create", &net, "--subnet", "10.231.12.0/24"]);
    assert_eq!((code, out.trim()), (0, net.as_str()), "{err}");
    let (code, _, err) = run(&["network", "create", &net]);
    assert_eq!(code, 125);
    assert!(err.contains("already exists"), "{err}");
    let (code, out, _) = run(&["network", "ls"]);
    assert_eq!(code, 0);
    assert!(
        out.lines().any(|l| l.starts_with(&format!(
            "{net}\tbridge\t{net}\t10.231.12.0/24\t10.231.12.1"
        ))),
        "{out}"
    );

    // A member with a name and an alias, kept running.
    let r = rootfs();
    let db = berth_testkit::unique_name("rdb");
    let mut first = Command::new(env!("CARGO_BIN_EXE_berth-run"))
        .args([
            "--rootfs",
            &r,
            "--network",
            &net,
            "--name",
            &db,
            "--network-alias",
            "primary",
            "--init",
            "--",
            "/bin/sleep",
            "60",
        ])
        .env("BERTH_NETWORK_STATE_DIR", state.path())
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    member.store(first.id() as i32, std::sync::atomic::Ordering::SeqCst);
    // --dns 127.0.0.1: a name that is not a member is looked up on the
    // container's own loopback, never sent to the host's resolvers (the
    // network forwards and masquerades).
    let ping = |target: &str| {
        run(&[
            "--rootfs",
            &r,
            "--network",
            &net,
            "--dns",
            "127.0.0.1",
            "--",
            "/bin/ping",
            "-c1",
            "-W2",
            target,
        ])
    };
    // Generous: a loaded machine (CI with parallel test binaries) starts
    // the member slowly; a member that failed is reported at once.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (code, out, err) = ping("primary");
        if code == 0 {
            assert!(out.contains("10.231.12."), "{out}");
            break;
        }
        if let Some(st) = first.try_wait().unwrap() {
            let mut e = String::new();
            if let Some(mut p) = first.stderr.take() {
                use std::io::Read;
                let _ = p.read_to_string(&mut e);
            }
            panic!("the member exited early ({st}): {e}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ping primary: {out}{err}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (code, out, err) = ping(&db);
    assert_eq!(code, 0, "ping {db}: {out}{err}");
    // The network cannot go while a container is on it.
    let (code, _, err) = run(&["network", "rm", &net]);
    assert_eq!(code, 125);
    assert!(err.contains(&db), "{err}");
    // The member goes: its names stop resolving.
    // SAFETY: kill(2) on the child we spawned.
    unsafe { libc::kill(first.id() as i32, libc::SIGTERM) };
    first.wait().unwrap();
    member.store(0, std::sync::atomic::Ordering::SeqCst);
    for target in ["primary", db.as_str()] {
        let (code, out, err) = ping(target);
        assert_ne!(code, 0, "{target} still resolves: {out}");
        assert!(err.contains("bad address"), "{target}: {out}{err}");
    }
    let (code, out, err) = run(&["network", "rm", &net]);
    assert_eq!((code, out.trim()), (0, net.as_str()), "{err}");
    let (_, out, _) = run(&["network", "ls"]);
    assert!(!out.contains(&net), "{out}");
    let links = berth_testkit::run("ip", &["-o", "link", "show"]);
    assert!(!links.contains(&format!(" {net}:")), "bridge left: {links}");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        fwd,
        "ip_forward restored"
    );
    assert!(left_behind(&db).is_empty(), "{:?}", left_behind(&db));
}

/// A `berth-run` member kept running in the background: ended (SIGTERM,
/// reaped) on drop, also when an assertion fails.
struct Member(std::process::Child);

impl Member {
    /// `prefix berth-run args` in the background, with `env`.
    fn start(prefix: &[&str], args: &[&str], env: &[(&str, &std::path::Path)]) -> Member {
        let exe = env!("CARGO_BIN_EXE_berth-run");
        let argv: Vec<&str> = prefix.iter().copied().chain([exe]).collect();
        Member(
            Command::new(argv[0])
                .args(&argv[1..])
                .args(args)
                .envs(env.iter().copied())
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        )
    }

    /// Panics with its stderr if it has exited.
    fn check_running(&mut self) {
        if let Some(st) = self.0.try_wait().unwrap() {
            let mut e = String::new();
            if let Some(mut p) = self.0.stderr.take() {
                use std::io::Read;
                let _ = p.read_to_string(&mut e);
            }
            panic!("the member exited early ({st}): {e}");
        }
    }

    /// End it and wait for it.
    fn stop(&mut self) {
        if self.0.try_wait().unwrap().is_none() {
            // SAFETY: kill(2) on our own, not yet reaped child.
            unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
            let _ = self.0.wait();
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Retry `f` (a ping, say) until it succeeds, for up to 60 s (a loaded
/// machine starts a member slowly); `member` must stay up meanwhile.
fn until_ok(member: &mut Member, f: impl Fn() -> (i32, String, String)) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (code, out, err) = f();
        if code == 0 {
            return out;
        }
        member.check_running();
        assert!(std::time::Instant::now() < deadline, "{out}{err}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Links of network namespace `ns`, by name.
fn links_in(ns: &berth_testkit::Netns) -> Vec<String> {
    berth_testkit::run("ip", &["-n", ns.name(), "-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
        .collect()
}

/// `network create --driver macvlan --parent IF`: members on the parent's
/// segment through macvlan interfaces find each other by name and alias;
/// the names go with the member; `rm` leaves the parent and nothing else.
/// Bad input (unknown driver, no parent, a parent that does not exist, a
/// subnet overlapping another network's) is an error naming it and leaves
/// nothing. The "host" is a network namespace the test made (berth-run
/// enters it with nsenter), the parent a link in it.
#[test]
fn macvlan_network_members_resolve_each_other() {
    berth_testkit::privileged!();
    let ns = berth_testkit::Netns::new();
    // The parent: one end of a veth pair (this kernel has no dummy driver,
    // CONFIG_DUMMY); the other end, up, gives it a carrier.
    berth_testkit::run(
        "ip",
        &[
            "-n",
            ns.name(),
            "link",
            "add",
            "dm0",
            "type",
            "veth",
            "peer",
            "name",
            "dm1",
        ],
    );
    for l in ["dm0", "dm1"] {
        berth_testkit::run("ip", &["-n", ns.name(), "link", "set", l, "up"]);
    }
    let state = tempfile::tempdir().unwrap();
    let env = [("BERTH_NETWORK_STATE_DIR", state.path())];
    let netns_arg = format!("--net={}", ns.path().display());
    let prefix = ["nsenter", netns_arg.as_str()];
    let run = |args: &[&str]| berth_run_in(&prefix, args, &env);
    let links = links_in(&ns);
    for (args, needle) in [
        (vec!["--driver", "ipvlan", "--parent", "dm0"], "ipvlan"),
        (vec!["--driver", "macvlan"], "parent"),
        (
            vec!["--driver", "macvlan", "--parent", "nosuch0"],
            "nosuch0",
        ),
    ] {
        let mut full = vec!["network", "create", "mvbad", "--subnet", "10.231.41.0/24"];
        full.extend(args.iter().copied());
        let (code, _, err) = run(&full);
        assert_eq!(code, 125, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(
            berth_testkit::files_left(state.path(), &["nft.lock"]),
            Vec::<String>::new(),
            "{args:?}"
        );
        assert_eq!(links_in(&ns), links, "{args:?}");
    }
    let (code, out, err) = run(&[
        "network",
        "create",
        "mv",
        "--driver",
        "macvlan",
        "--parent",
        "dm0",
        "--subnet",
        "10.231.40.0/24",
    ]);
    assert_eq!((code, out.trim()), (0, "mv"), "{err}");
    let files = berth_testkit::files_left(state.path(), &[]);
    let (code, _, err) = run(&[
        "network",
        "create",
        "mv2",
        "--driver",
        "macvlan",
        "--parent",
        "dm0",
        "--subnet",
        "10.231.40.128/25",
    ]);
    assert_eq!(code, 125);
    assert!(err.contains("overlaps") && err.contains("\"mv\""), "{err}");
    assert_eq!(berth_testkit::files_left(state.path(), &[]), files);
    let (_, out, _) = run(&["network", "ls"]);
    assert!(
        out.lines()
            .any(|l| l == "mv\tmacvlan\tdm0\t10.231.40.0/24\t10.231.40.1"),
        "{out}"
    );
    let r = rootfs();
    let db = berth_testkit::unique_name("mvdb");
    let mut member = Member::start(
        &prefix,
        &[
            "--rootfs",
            &r,
            "--network",
            "mv",
            "--name",
            &db,
            "--network-alias",
            "primary",
            "--init",
            "--",
            "/bin/sleep",
            "60",
        ],
        &env,
    );
    let ping = |target: &str| {
        run(&[
            "--rootfs",
            &r,
            "--network",
            "mv",
            "--",
            "/bin/sh",
            "-c",
            &format!("cat /sys/class/net/eth0/address >/dev/null && ping -c1 -W2 {target}"),
        ])
    };
    let out = until_ok(&mut member, || ping("primary"));
    assert!(out.contains("10.231.40."), "{out}");
    let (code, out, err) = ping(&db);
    assert_eq!(code, 0, "ping {db}: {out}{err}");
    // No bridge, no veth: the members hang off dm0 inside their own netns.
    assert_eq!(links_in(&ns), links);
    // No NAT on macvlan: a published port is refused, naming the driver.
    let (code, _, err) = run(&[
        "--rootfs",
        &r,
        "--network",
        "mv",
        "--publish",
        "8080:80",
        "--",
        "/bin/true",
    ]);
    assert_eq!(code, 125);
    assert!(
        err.contains("macvlan") && err.contains("published"),
        "{err}"
    );
    member.stop();
    for target in ["primary", db.as_str()] {
        let (code, out, err) = ping(target);
        assert_ne!(code, 0, "{target} still resolves: {out}");
        assert!(err.contains("bad address"), "{target}: {out}{err}");
    }
    let (code, out, err) = run(&["network", "rm", "mv"]);
    assert_eq!((code, out.trim()), (0, "mv"), "{err}");
    assert_eq!(
        berth_testkit::files_left(state.path(), &["nft.lock"]),
        Vec::<String>::new()
    );
    assert_eq!(links_in(&ns), links, "the parent stays, nothing else");
    assert!(left_behind(&db).is_empty(), "{:?}", left_behind(&db));
}

/// `network create --driver vxlan`: an overlay spanning two "hosts" —
/// network namespaces the test made, joined by a veth underlay — each with
/// berth-run's network state in a directory of its own (static peers on
/// one, the members file on the other). A container on host 2 reaches a
/// member on host 1 by address through the VXLAN device (MTU 1500 − 50)
/// and by name and alias (host 2's name responder asks host 1's over the
/// overlay), members on one host resolve each other by name; the names go
/// with the member, on both hosts; `network rm` removes the bridge, the
/// VXLAN device, the nft table, the responder and the state and puts
/// `ip_forward` back on both. Bad input (no VNI, a local address that is
/// not on the host) is an error naming it and leaves nothing.
#[test]
fn vxlan_network_spans_two_hosts() {
    berth_testkit::privileged!();
    let hosts = [berth_testkit::Netns::new(), berth_testkit::Netns::new()];
    berth_testkit::run(
        "ip",
        &[
            "-n",
            hosts[0].name(),
            "link",
            "add",
            "u1",
            "type",
            "veth",
            "peer",
            "name",
            "u2",
            "netns",
            hosts[1].name(),
        ],
    );
    for (i, h) in hosts.iter().enumerate() {
        let (dev, addr) = (format!("u{}", i + 1), format!("198.18.0.{}/24", i + 1));
        berth_testkit::run("ip", &["-n", h.name(), "addr", "add", &addr, "dev", &dev]);
        berth_testkit::run("ip", &["-n", h.name(), "link", "set", &dev, "up"]);
        berth_testkit::run(
            "ip",
            &[
                "netns",
                "exec",
                h.name(),
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=0",
            ],
        );
    }
    let states = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    // The members file the operator distributes (outside the state dirs).
    let etc = tempfile::tempdir().unwrap();
    let members = etc.path().join("ov.members");
    std::fs::write(
        &members,
        "# overlay ov\n198.18.0.1 10.231.1.0/24\n198.18.0.2 10.231.2.0/24\n",
    )
    .unwrap();
    let args: Vec<[String; 2]> = hosts
        .iter()
        .map(|h| ["nsenter".into(), format!("--net={}", h.path().display())])
        .collect();
    let on = |i: usize, a: &[&str]| {
        let prefix: Vec<&str> = args[i].iter().map(String::as_str).collect();
        berth_run_in(&prefix, a, &[("BERTH_NETWORK_STATE_DIR", states[i].path())])
    };
    let links: Vec<Vec<String>> = hosts.iter().map(links_in).collect();
    let base = [
        "network",
        "create",
        "ov",
        "--driver",
        "vxlan",
        "--subnet",
        "10.231.0.0/16",
    ];
    for (extra, needle) in [
        (
            vec!["--local", "198.18.0.1", "--range", "10.231.1.0/24"],
            "VNI",
        ),
        (
            vec![
                "--vni",
                "4242",
                "--local",
                "198.18.0.9",
                "--range",
                "10.231.1.0/24",
            ],
            "198.18.0.9",
        ),
    ] {
        let a: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).collect();
        let (code, _, err) = on(0, &a);
        assert_eq!(code, 125, "{extra:?}: {err}");
        assert!(err.contains(needle), "{extra:?}: {err}");
        assert_eq!(links_in(&hosts[0]), links[0], "{extra:?}");
        assert_eq!(
            berth_testkit::files_left(states[0].path(), &["nft.lock"]),
            Vec::<String>::new()
        );
    }
    let one = [
        "--vni",
        "4242",
        "--local",
        "198.18.0.1",
        "--range",
        "10.231.1.0/24",
        "--peer",
        "198.18.0.2=10.231.2.0/24",
    ];
    let members_arg = members.display().to_string();
    let two = ["--vni", "4242", "--peers", members_arg.as_str()];
    for (i, extra) in [&one[..], &two[..]].into_iter().enumerate() {
        let a: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).collect();
        let (code, out, err) = on(i, &a);
        assert_eq!((code, out.trim()), (0, "ov"), "host {}: {err}", i + 1);
    }
    let (_, out, _) = on(0, &["network", "ls"]);
    assert!(
        out.lines()
            .any(|l| l == "ov\tvxlan\tov\t10.231.0.0/16\t10.231.1.1"),
        "{out}"
    );
    let r = rootfs();
    let web = berth_testkit::unique_name("vxweb");
    let prefix0: Vec<&str> = args[0].iter().map(String::as_str).collect();
    let mut member = Member::start(
        &prefix0,
        &[
            "--rootfs",
            &r,
            "--network",
            "ov",
            "--name",
            &web,
            "--network-alias",
            "www",
            "--init",
            "--",
            "/bin/sleep",
            "60",
        ],
        &[("BERTH_NETWORK_STATE_DIR", states[0].path())],
    );
    let ping = |i: usize, target: &str| {
        on(
            i,
            &[
                "--rootfs",
                &r,
                "--network",
                "ov",
                "--",
                "/bin/sh",
                "-c",
                &format!("cat /sys/class/net/eth0/mtu && ping -c1 -W2 {target}"),
            ],
        )
    };
    // Same host: by name and alias.
    let out = until_ok(&mut member, || ping(0, "www"));
    assert!(out.starts_with("1450\n"), "MTU 1500 - 50: {out}");
    assert!(out.contains("10.231.1."), "{out}");
    let (code, out, err) = ping(0, &web);
    assert_eq!(code, 0, "{out}{err}");
    // The other host: through the overlay, to the address host 1 gave it.
    let ipam: serde_json::Value =
        serde_json::from_slice(&std::fs::read(states[0].path().join("ov.json")).unwrap()).unwrap();
    let addr = ipam["allocations"][&web]["addr"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(addr.starts_with("10.231.1."), "{ipam}");
    let out = until_ok(&mut member, || ping(1, &addr));
    assert!(out.starts_with("1450\n") && out.contains(&addr), "{out}");
    // ... and by name and alias: host 2's responder asks host 1's.
    // (Retried as the address above: under load the first lookups, which
    // cross the overlay to host 1's responder, may outlast its timeout.)
    for target in [web.as_str(), "www"] {
        let out = until_ok(&mut member, || ping(1, target));
        assert!(out.contains(&format!("({addr})")), "{target}: {out}");
    }
    let responders: Vec<i32> = states
        .iter()
        .map(|s| {
            let p = s.path().join("ov.resolver");
            std::fs::read_to_string(p).unwrap().trim().parse().unwrap()
        })
        .collect();
    member.stop();
    // Gone from both hosts' view with the member.
    for (i, target) in [(0, "www"), (1, "www"), (1, web.as_str())] {
        let (code, out, err) = ping(i, target);
        assert_ne!(code, 0, "{target} still resolves on host {}: {out}", i + 1);
        assert!(err.contains("bad address"), "{target}: {out}{err}");
    }
    for (i, h) in hosts.iter().enumerate() {
        let (code, out, err) = on(i, &["network", "rm", "ov"]);
        assert_eq!((code, out.trim()), (0, "ov"), "host {}: {err}", i + 1);
        assert_eq!(links_in(h), links[i], "host {}", i + 1);
        assert_eq!(ip_forward_in(h), "0", "host {}", i + 1);
        let tables =
            berth_testkit::run("ip", &["netns", "exec", h.name(), "nft", "list", "tables"]);
        assert!(!tables.contains("berth"), "nft table left: {tables}");
        assert_eq!(
            berth_testkit::files_left(states[i].path(), &["nft.lock"]),
            Vec::<String>::new()
        );
    }
    for pid in responders {
        let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            st.is_empty() || st.contains(") Z "),
            "responder {pid} left: {st}"
        );
    }
    assert!(left_behind(&web).is_empty(), "{:?}", left_behind(&web));
}

/// `net.ipv4.ip_forward` inside network namespace `ns`.
fn ip_forward_in(ns: &berth_testkit::Netns) -> String {
    berth_testkit::run(
        "ip",
        &[
            "netns",
            "exec",
            ns.name(),
            "cat",
            "/proc/sys/net/ipv4/ip_forward",
        ],
    )
    .trim()
    .to_string()
}

/// Issue 24 (#24 brief item 3): the default network `--net bridge` makes
/// (`berth0`) has a record, so `network ls` shows it and `network rm
/// berth0` removes its bridge, nft table and state and puts `ip_forward`
/// back. berth-run runs inside a network namespace the test made (standing
/// in for the host: the bridge, nft table and ip_forward are its own), its
/// network state in a directory of the test's.
#[test]
fn default_bridge_network_can_be_removed() {
    berth_testkit::privileged!();
    let ns = berth_testkit::Netns::new();
    let state = tempfile::tempdir().unwrap();
    let env = [("BERTH_NETWORK_STATE_DIR", state.path())];
    // nsenter, not `ip netns exec`: that one mounts a new /sys, hiding the
    // cgroup2 mount under /sys/fs/cgroup that berth-run needs.
    let netns_arg = format!("--net={}", ns.path().display());
    let prefix = ["nsenter", &netns_arg];
    let r = rootfs();
    // A new namespace copies the host's value: start from "off".
    berth_testkit::run(
        "ip",
        &[
            "netns",
            "exec",
            ns.name(),
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=0",
        ],
    );
    assert_eq!(ip_forward_in(&ns), "0");
    let name = berth_testkit::unique_name("br-def");
    let (code, out, err) = berth_run_in(
        &prefix,
        &[
            "--rootfs",
            &r,
            "--name",
            &name,
            "--net",
            "bridge",
            "--",
            "/bin/sh",
            "-c",
            "ip -4 -o addr show eth0 | grep -o 'inet [0-9./]*'",
        ],
        &env,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("inet 10.88."), "{out}");
    assert_eq!(ip_forward_in(&ns), "1", "the bridge network turned it on");
    let (code, out, err) = berth_run_in(&prefix, &["network", "ls"], &env);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("berth0\tbridge\tberth0\t10.88.0.0/16\t")),
        "berth0 listed: {out}"
    );
    let (code, out, err) = berth_run_in(&prefix, &["network", "rm", "berth0"], &env);
    assert_eq!(
        (code, out.trim()),
        (0, "berth0"),
        "network rm berth0: {err}"
    );
    assert_eq!(ip_forward_in(&ns), "0", "ip_forward restored");
    let links = berth_testkit::run("ip", &["-n", ns.name(), "-o", "link", "show"]);
    assert!(!links.contains(" berth0:"), "bridge left: {links}");
    let tables = berth_testkit::run("ip", &["netns", "exec", ns.name(), "nft", "list", "tables"]);
    assert!(!tables.contains("berth"), "nft table left: {tables}");
    assert_eq!(
        berth_testkit::files_left(state.path(), &["nft.lock"]),
        Vec::<String>::new()
    );
    assert!(left_behind(&name).is_empty(), "{:?}", left_behind(&name));
}

/// A container reaches its own published port through its gateway
/// (hairpin): the gateway's DNAT sends the packet back out of the bridge
/// port it came in on, which the bridge refuses unless that port is in
/// hairpin mode (with the bridge netfilter hooks on, as on Docker,
/// containerd and podman hosts). berth-run runs inside a network namespace
/// the test made, so the bridge, its nft table and `ip_forward` (routing
/// the DNATed packet needs it; the default network turns it on) are that
/// namespace's.
#[test]
fn a_container_reaches_its_own_published_port() {
    berth_testkit::privileged!();
    let ns = berth_testkit::Netns::new();
    let state = tempfile::tempdir().unwrap();
    let env = [("BERTH_NETWORK_STATE_DIR", state.path())];
    let netns_arg = format!("--net={}", ns.path().display());
    let prefix = ["nsenter", &netns_arg];
    let r = rootfs();
    let name = berth_testkit::unique_name("hairpin");
    // A listener in the background, then the container dials its own
    // published port at the gateway until it answers (or ~10 s pass).
    let script = "while :; do echo hello-self | nc -l -p 8080; done & \
         i=0; while [ $i -lt 100 ]; do \
           out=$(nc -w 1 10.88.0.1 18080 </dev/null); \
           [ -n \"$out\" ] && { echo \"$out\"; exit 0; }; \
           i=$((i+1)); sleep 0.1; \
         done; echo unreachable; exit 1";
    let (code, out, err) = berth_run_in(
        &prefix,
        &[
            "--rootfs",
            &r,
            "--name",
            &name,
            "--net",
            "bridge",
            "--publish",
            "18080:8080",
            "--",
            "/bin/sh",
            "-c",
            script,
        ],
        &env,
    );
    let (rm, _, rm_err) = berth_run_in(&prefix, &["network", "rm", "berth0"], &env);
    assert_eq!(
        (code, out.trim()),
        (0, "hello-self"),
        "the container could not reach its own published port at the gateway: {err}"
    );
    assert_eq!(rm, 0, "network rm berth0: {rm_err}");
    assert!(left_behind(&name).is_empty(), "{:?}", left_behind(&name));
}

/// `--net pasta`: rootless networking for berth-run. berth-run runs as
/// uid/gid 65534 inside a network namespace the test made (its loopback, and
/// a veth with an address and a default route to nowhere, which pasta
/// copies); the container reaches a TCP listener the test opened on that
/// namespace's loopback through the gateway address (pasta maps it to the
/// loopback), and a port published with `--publish 127.0.0.1:H:80` reaches
/// a server in the container.
#[test]
fn net_pasta_rootless() {
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;
    berth_testkit::privileged!();
    assert!(
        berth_testkit::run_ok("sh", &["-c", "command -v pasta"]),
        "pasta is missing: install Debian's passt"
    );
    const GATEWAY: &str = "198.51.100.1";
    let ns = berth_testkit::Netns::new();
    ns.add_uplink("198.51.100.2/24", GATEWAY);
    let netns = berth_netsetup::NetNs::from_path(ns.path()).unwrap();
    let bind = |port: u16| {
        netns
            .run(move || std::net::TcpListener::bind(("127.0.0.1", port)))
            .unwrap()
            .unwrap()
    };
    // The listener on the "host's" loopback: answers `pong:<line>` and
    // reports the peer address it saw.
    let listener = bind(0);
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, peer) = listener.accept().unwrap();
        let mut line = String::new();
        let mut b = [0u8; 1];
        while s.read(&mut b).unwrap_or(0) == 1 && b[0] != b'\n' {
            line.push(b[0] as char);
        }
        s.write_all(format!("pong:{line}\n").as_bytes()).unwrap();
        peer.ip().to_string()
    });
    // A free port in the namespace for the published one.
    let published = bind(0).local_addr().unwrap().port();
    // What the rootless user needs: a rootfs it owns, berth-run where it
    // can execute it, a private runtime dir for the container state.
    let rootfs = berth_testkit::busybox_rootfs_copy();
    std::fs::set_permissions(rootfs.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    berth_testkit::run(
        "chown",
        &["-R", "65534:65534", &rootfs.path().display().to_string()],
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = dir.path().join("berth-run");
    std::fs::copy(env!("CARGO_BIN_EXE_berth-run"), &exe).unwrap();
    let runtime = dir.path().join("xdg");
    std::fs::create_dir(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&runtime, Some(65534), Some(65534)).unwrap();
    // nc's input stays open until the server has answered (bookworm's
    // pasta does not pass the server's FIN on to a half-closed container).
    let script =
        format!("(echo out-tcp; sleep 2) | nc {GATEWAY} {port}; echo pub-reply | nc -l -p 80");
    let spec = format!("127.0.0.1:{published}:80");
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns.name()])
        .args([
            "setpriv",
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--",
        ])
        .arg(&exe)
        .args([
            "--rootfs",
            &rootfs.path().display().to_string(),
            "--net",
            "pasta",
            "--publish",
            &spec,
            "--timeout",
            "60",
            "--",
            "/bin/sh",
            "-c",
            &script,
        ])
        .env("XDG_RUNTIME_DIR", &runtime)
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The published port: pasta accepts and closes until the container's
    // server is up; retry until the answer comes.
    let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let reply = loop {
        let mut got = String::new();
        let conn = netns
            .run(move || std::net::TcpStream::connect(("127.0.0.1", published)))
            .unwrap();
        if let Ok(mut s) = conn {
            s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let _ = s.write_all(b"pub-in\n");
            let _ = s.shutdown(std::net::Shutdown::Write);
            let _ = s.read_to_string(&mut got);
        }
        if !got.is_empty() || std::time::Instant::now() > end {
            break got;
        }
        if child.try_wait().unwrap().is_some() {
            break got;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{}: {stdout}{stderr}", out.status);
    assert_eq!(reply, "pub-reply\n", "{stdout}{stderr}");
    assert_eq!(stdout, "pong:out-tcp\npub-in\n", "{stderr}");
    // The listener saw pasta's own socket on the loopback.
    assert_eq!(server.join().unwrap(), "127.0.0.1");
    // Nothing left: no container state, no pasta of the rootless user.
    let state = runtime.join("berth");
    let left: Vec<_> = std::fs::read_dir(&state)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    // pasta keeps the namespace it was started in (the test's) as its
    // outside: any passt process still there is one berth-run left.
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(ns.path()).unwrap().ino();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        let in_ns = std::fs::metadata(e.path().join("ns/net")).is_ok_and(|m| m.ino() == ino);
        assert!(
            !(comm.starts_with("passt") && in_ns),
            "pasta left running: {}",
            e.path().display()
        );
    }
}

/// Runs its closure when dropped (also while a failed assertion unwinds).
struct OnDrop<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}
