//! End to end: the `berth-run` binary (privileged tier).

use std::process::Command;

fn berth_run(args: &[&str]) -> (i32, String, String) {
    berth_run_env(args, &[])
}

/// `berth-run args` with environment variables `env` added.
fn berth_run_env(args: &[&str], env: &[(&str, &std::path::Path)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_berth-run"))
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

fn left_behind(name: &str) -> Vec<String> {
    let mut v = Vec::new();
    let state = std::path::Path::new("/run/berth").join(name);
    if state.exists() {
        v.push(state.display().to_string());
    }
    if let Ok(h) = berth_cgroups::Hierarchy::discover() {
        let cg = h.own_cgroup_dir().join("berth").join(name);
        if cg.exists() {
            v.push(cg.display().to_string());
        }
    }
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    v.extend(mi.lines().filter(|l| l.contains(name)).map(String::from));
    v
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
    let (code, _, err) = run(&["network", "create", &net, "--driver", "macvlan"]);
    assert_eq!(code, 125);
    assert!(
        err.contains("macvlan") && err.contains("only bridge"),
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
    let ping = |target: &str| {
        run(&[
            "--rootfs",
            &r,
            "--network",
            &net,
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

/// Runs its closure when dropped (also while a failed assertion unwinds).
struct OnDrop<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}
