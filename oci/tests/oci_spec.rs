//! Conformance of `berth-oci` with the OCI runtime spec's operations and
//! state machine (runtime.md: create, start, state, kill, delete; hooks;
//! lifecycle), plus runc's CLI conventions engines depend on
//! (privileged tier).

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;

use common::*;

/// A bundle running `args` with these tests' defaults (hostname
/// `oci-test`, an annotation, `FOO=bar`, a cgroup namespace too), `extra`'s
/// top-level keys set.
fn bundle(args: &[&str], extra: Value) -> Oci {
    let mut cfg = config(args);
    merge(
        &mut cfg,
        json!({
            "hostname": "oci-test",
            "annotations": { "org.example.key": "value" },
        }),
    );
    cfg["process"]["env"] = json!(["PATH=/bin", "FOO=bar"]);
    cfg["linux"]["namespaces"] = json!([
        { "type": "pid" }, { "type": "ipc" }, { "type": "uts" },
        { "type": "mount" }, { "type": "cgroup" }, { "type": "network" }
    ]);
    merge(&mut cfg, extra);
    Oci::new("oci", cfg)
}

fn wait_file(p: &Path, want: &str) -> String {
    let t = Instant::now();
    loop {
        let s = std::fs::read_to_string(p).unwrap_or_default();
        if s.contains(want) {
            return s;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "{p:?}: {s:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pid_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let st = s[s.rfind(')').unwrap() + 1..]
                .split_whitespace()
                .next()
                .unwrap()
                .to_string();
            st != "Z" && st != "X"
        })
        .unwrap_or(false)
}

#[test]
fn lifecycle_create_start_state_kill_delete() {
    berth_testkit::privileged!();
    let env = bundle(
        &[
            "/bin/sh",
            "-c",
            "echo started $FOO $(hostname); exec sleep 60",
        ],
        json!({}),
    );
    let out = env.bundle().join("out");
    let pidfile = env.bundle().join("pidfile");
    let pf = pidfile.display().to_string();
    assert_eq!(env.create_to(&out, &["--pid-file", &pf]), 0);
    // create returned with the pid file written and the process waiting.
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let st = env.state();
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], env.id.as_str());
    assert_eq!(st["pid"], pid);
    assert_eq!(
        st["ociVersion"].as_str().unwrap().split('.').next(),
        Some("1")
    );
    assert_eq!(
        st["bundle"].as_str().unwrap(),
        std::fs::canonicalize(env.bundle())
            .unwrap()
            .to_str()
            .unwrap()
    );
    assert_eq!(st["annotations"]["org.example.key"], "value");
    assert!(pid_alive(pid));
    // The user program has not run yet.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "");
    let listed = env.ok(&["list", "--format", "json"]);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["id"], env.id.as_str());
    assert_eq!(env.ok(&["list", "-q"]).trim(), env.id);

    env.ok(&["start", &env.id]);
    // stdio is what create inherited.
    wait_file(&out, "started bar oci-test\n");
    assert_eq!(env.status(), "running");
    // ps lists the init's host pid.
    let ps: Value = serde_json::from_str(&env.ok(&["ps", "--format", "json", &env.id])).unwrap();
    assert!(ps.as_array().unwrap().contains(&json!(pid)), "{ps}");
    // The runtime is not the workload's parent, yet state sees it stop.
    env.ok(&["kill", &env.id, "KILL"]);
    env.wait_status("stopped");
    assert!(!pid_alive(pid));
    env.ok(&["delete", &env.id]);
    let (code, _, err) = env.run(&["state", &env.id]);
    assert_ne!(code, 0, "state after delete must fail");
    assert!(err.contains("does not exist"), "{err}");
    // Nothing left under the root.
    assert!(!env.root.join(&env.id).exists());
    // (`.meta` itself goes with the last container, as runc leaves nothing.)
    let meta: Vec<_> = std::fs::read_dir(env.root.join(".meta"))
        .map(|rd| rd.collect())
        .unwrap_or_default();
    assert!(meta.is_empty(), "{meta:?}");
}

#[test]
fn invalid_transitions_are_errors() {
    berth_testkit::privileged!();
    let env = bundle(&["/bin/sleep", "60"], json!({}));
    // Operations on a container that does not exist.
    for op in [
        &["start"][..],
        &["state"],
        &["kill"],
        &["delete"],
        &["pause"],
    ] {
        let mut a = op.to_vec();
        a.push(&env.id);
        let (code, _, err) = env.run(&a);
        assert_ne!(code, 0, "{a:?} on a missing container succeeded");
        assert!(err.contains("does not exist"), "{a:?}: {err}");
    }
    // delete --force on a missing container exits 0 (runc, engines rely on it).
    assert_eq!(env.run(&["delete", "--force", &env.id]).0, 0);

    let out = env.bundle().join("out");
    assert_eq!(env.create_to(&out, &[]), 0);
    // A second create with the same id fails and does not disturb the first.
    assert_ne!(env.create_to(&env.bundle().join("out2"), &[]), 0);
    assert_eq!(env.status(), "created");
    // resume is for paused containers only (pause of a created one
    // freezes it, as runc: oci_cli_compat.rs).
    assert_ne!(env.run(&["resume", &env.id]).0, 0);
    env.ok(&["start", &env.id]);
    assert_eq!(env.status(), "running");
    // start twice fails.
    let (code, _, err) = env.run(&["start", &env.id]);
    assert_ne!(code, 0);
    assert!(err.contains("already running"), "{err}");
    // delete of a running container without --force fails and leaves it.
    assert_ne!(env.run(&["delete", &env.id]).0, 0);
    assert_eq!(env.status(), "running");
    // pause / resume, observed in the state and in the cgroup freezer.
    env.ok(&["pause", &env.id]);
    assert_eq!(env.status(), "paused");
    assert_ne!(env.run(&["pause", &env.id]).0, 0);
    env.ok(&["resume", &env.id]);
    assert_eq!(env.status(), "running");
    // Bad signal names are errors; names with and without SIG and numbers work.
    assert_ne!(env.run(&["kill", &env.id, "NOSUCH"]).0, 0);
    env.ok(&["kill", &env.id, "SIGCONT"]);
    env.ok(&["kill", &env.id, "CONT"]);
    env.ok(&["kill", &env.id, "18"]);
    assert_eq!(env.status(), "running");
    // The default signal is TERM (sleep as pid 1 ignores it unless handled:
    // use --all so every process of the cgroup gets KILL).
    env.ok(&["kill", "--all", &env.id, "9"]);
    env.wait_status("stopped");
    // kill on a stopped container fails (spec: not created or running).
    assert_ne!(env.run(&["kill", &env.id, "KILL"]).0, 0);
    env.ok(&["delete", &env.id]);
}

#[test]
fn delete_force_kills_created_and_running() {
    berth_testkit::privileged!();
    let env = bundle(&["/bin/sleep", "60"], json!({}));
    let out = env.bundle().join("out");
    assert_eq!(env.create_to(&out, &[]), 0);
    let pid = env.state()["pid"].as_i64().unwrap() as i32;
    env.ok(&["delete", "--force", &env.id]);
    let t = Instant::now();
    while pid_alive(pid) {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "created init survived delete"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_ne!(env.run(&["state", &env.id]).0, 0);

    assert_eq!(env.create_to(&out, &[]), 0);
    env.ok(&["start", &env.id]);
    let pid = env.state()["pid"].as_i64().unwrap() as i32;
    env.ok(&["delete", "--force", &env.id]);
    let t = Instant::now();
    while pid_alive(pid) {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "running init survived delete"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!env.root.join(&env.id).exists());
}

#[test]
fn hooks_run_in_order_with_state_on_stdin() {
    berth_testkit::privileged!();
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("hooks.log");
    let bb = berth_testkit::busybox_binary().display().to_string();
    let hook = |name: &str| {
        json!({
            "path": bb,
            "args": ["sh", "-c", format!(
                "s=$(cat); case \"$s\" in *'\"status\":\"'*) ;; *) echo nostate >> {l};; esac; \
                 echo {name} $(echo \"$s\" | grep -o '\"status\":\"[a-z]*\"') >> {l}",
                l = log.display()
            )],
        })
    };
    let env = bundle(
        &["/bin/sh", "-c", "echo workload >> /w; sleep 60"],
        json!({ "hooks": {
            "prestart": [hook("prestart")],
            "createRuntime": [hook("createRuntime")],
            "createContainer": [hook("createContainer")],
            "startContainer": [hook("startContainer")],
            "poststart": [hook("poststart")],
            "poststop": [hook("poststop")],
        }}),
    );
    let out = env.bundle().join("out");
    assert_eq!(env.create_to(&out, &[]), 0);
    let after_create = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        after_create,
        "prestart \"status\":\"creating\"\ncreateRuntime \"status\":\"creating\"\ncreateContainer \"status\":\"creating\"\n"
    );
    env.ok(&["start", &env.id]);
    let after_start = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        after_start.strip_prefix(&after_create).unwrap(),
        "startContainer \"status\":\"created\"\npoststart \"status\":\"running\"\n"
    );
    env.ok(&["kill", &env.id, "KILL"]);
    env.wait_status("stopped");
    env.ok(&["delete", &env.id]);
    let all = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        all.strip_prefix(&after_start).unwrap(),
        "poststop \"status\":\"stopped\"\n"
    );
}

#[test]
fn failing_or_slow_hook_fails_create_and_leaves_nothing() {
    berth_testkit::privileged!();
    let bb = berth_testkit::busybox_binary().display().to_string();
    let env = bundle(
        &["/bin/true"],
        json!({ "hooks": { "createRuntime": [
            { "path": bb, "args": ["sleep", "30"], "timeout": 1 }
        ]}}),
    );
    let out = env.bundle().join("out");
    let t = Instant::now();
    let f = File::create(&out).unwrap();
    let res = env
        .cmd(&[
            "create",
            "--bundle",
            env.bundle().to_str().unwrap(),
            &env.id,
        ])
        .stdout(Stdio::null())
        .stderr(f)
        .status()
        .unwrap();
    assert!(!res.success());
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "timeout not honoured"
    );
    let err = std::fs::read_to_string(&out).unwrap();
    assert!(err.contains("timed out"), "{err}");
    assert_ne!(env.run(&["state", &env.id]).0, 0);
    assert!(!env.root.join(&env.id).exists());

    let env2 = bundle(
        &["/bin/true"],
        json!({ "hooks": { "prestart": [ { "path": bb, "args": ["false"] } ]}}),
    );
    assert_ne!(env2.create_to(&env2.bundle().join("out"), &[]), 0);
    assert_ne!(env2.run(&["state", &env2.id]).0, 0);
    assert!(!env2.root.join(&env2.id).exists());
}

#[test]
fn run_returns_the_exit_status_and_leaves_nothing() {
    berth_testkit::privileged!();
    let env = bundle(&["/bin/sh", "-c", "echo out $FOO; exit 7"], json!({}));
    let b = env.bundle().display().to_string();
    let (code, out, err) = env.run(&["run", "--bundle", &b, &env.id]);
    assert_eq!(code, 7, "{err}");
    assert_eq!(out, "out bar\n");
    assert!(!env.root.join(&env.id).exists());
    assert_ne!(env.run(&["state", &env.id]).0, 0);
    // Killed by a signal: 128 + N, like a shell (the signal comes from
    // outside: an init ignores KILL from inside its own pid namespace).
    let env = bundle(&["/bin/sleep", "60"], json!({}));
    let b = env.bundle().display().to_string();
    let mut run = env
        .cmd(&["run", &format!("--bundle={b}"), &env.id])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    env.wait_status("running");
    env.ok(&["kill", &env.id, "SIGKILL"]);
    let st = run.wait().unwrap();
    assert_eq!(st.code(), Some(128 + 9));
    assert!(!env.root.join(&env.id).exists());
}

#[test]
fn exec_joins_the_container() {
    berth_testkit::privileged!();
    let env = bundle(&["/bin/sleep", "60"], json!({}));
    let out = env.bundle().join("out");
    assert_eq!(env.create_to(&out, &[]), 0);
    // exec into a created (not running) container fails.
    assert_ne!(env.run(&["exec", &env.id, "/bin/true"]).0, 0);
    env.ok(&["start", &env.id]);
    let (code, o, err) = env.run(&[
        "exec",
        "--env",
        "BAZ=qux",
        "--cwd",
        "/bin",
        &env.id,
        "/bin/sh",
        "-c",
        "hostname; echo $FOO $BAZ; pwd; echo $$; exit 3",
    ]);
    assert_eq!(code, 3, "{err}");
    let lines: Vec<&str> = o.lines().collect();
    assert_eq!(lines[0], "oci-test");
    assert_eq!(lines[1], "bar qux");
    assert_eq!(lines[2], "/bin");
    // In the container's pid namespace (init is 1).
    assert_ne!(lines[3], "1");
    assert!(lines[3].parse::<u32>().unwrap() < 100, "{o}");
    // --process FILE with a detached process and a pid file, seen by ps.
    let proc_file = env.bundle().join("process.json");
    std::fs::write(
        &proc_file,
        json!({ "args": ["/bin/sleep", "50"], "cwd": "/", "env": ["PATH=/bin"],
                "user": {"uid": 0, "gid": 0} })
        .to_string(),
    )
    .unwrap();
    let pf = env.bundle().join("exec.pid");
    // The detached process keeps the stdio it inherited: give it none.
    let st = env
        .cmd(&[
            "exec",
            "--detach",
            "--pid-file",
            pf.to_str().unwrap(),
            "--process",
            proc_file.to_str().unwrap(),
            &env.id,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let epid: i32 = std::fs::read_to_string(&pf)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let ps: Value = serde_json::from_str(&env.ok(&["ps", "--format=json", &env.id])).unwrap();
    assert!(ps.as_array().unwrap().contains(&json!(epid)), "{ps}");
    env.ok(&["delete", "--force", &env.id]);
    let t = Instant::now();
    while pid_alive(epid) {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "exec'd process survived delete"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn json_log_version_features_and_systemd_cgroup() {
    berth_testkit::privileged!();
    let env = bundle(&["/bin/true"], json!({}));
    let logf = env.bundle().join("log.json");
    let out = Command::new(BIN)
        .arg(format!("--root={}", env.root.display()))
        .args(["--log", logf.to_str().unwrap(), "--log-format", "json"])
        .args(["start", "no-such-ctr"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = std::fs::read_to_string(&logf).unwrap();
    let line: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(line["level"], "error");
    assert!(
        line["msg"].as_str().unwrap().contains("no-such-ctr"),
        "{line}"
    );
    assert!(line["time"].as_str().unwrap().ends_with('Z'), "{line}");

    let v = env.ok(&["--version"]);
    assert!(
        v.contains("berth-oci version") && v.contains("spec: 1."),
        "{v}"
    );
    let f: Value = serde_json::from_str(&env.ok(&["features"])).unwrap();
    assert_eq!(f["ociVersionMin"], "1.0.0");
    assert!(f["hooks"].as_array().unwrap().contains(&json!("poststop")));
    let (code, _, err) = env.run(&["--systemd-cgroup", "list"]);
    assert_ne!(code, 0);
    assert!(err.contains("systemd"), "{err}");
    // An ociVersion outside 1.0-1.3 is refused with a clear error.
    let cfg = env.bundle().join("config.json");
    let mut c: Value = serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    c["ociVersion"] = json!("2.0.0");
    std::fs::write(&cfg, c.to_string()).unwrap();
    let (code, _, err) = env.run(&["run", "--bundle", env.bundle().to_str().unwrap(), &env.id]);
    assert_ne!(code, 0);
    assert!(err.contains("ociVersion"), "{err}");
}

#[test]
fn terminal_goes_over_the_console_socket() {
    berth_testkit::privileged!();
    use std::io::Read;
    let env = bundle(
        &[
            "/bin/sh",
            "-c",
            "[ -t 0 ] && [ -t 1 ] && echo is-a-tty $(tty); sleep 60",
        ],
        json!({}),
    );
    let cfg = env.bundle().join("config.json");
    let mut c: Value = serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    c["process"]["terminal"] = json!(true);
    std::fs::write(&cfg, c.to_string()).unwrap();
    // Without a console socket, create refuses a terminal process.
    assert_ne!(env.create_to(&env.bundle().join("o0"), &[]), 0);
    assert_ne!(env.run(&["state", &env.id]).0, 0);

    let sock = env.bundle().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let t = std::thread::spawn(move || berth_testkit::recv_fd(&listener));
    let s = sock.display().to_string();
    assert_eq!(
        env.create_to(&env.bundle().join("o1"), &["--console-socket", &s]),
        0
    );
    let master = t.join().unwrap();
    env.ok(&["start", &env.id]);
    let mut f = File::from(master);
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    let t0 = Instant::now();
    // The pty is the container's own (its devpts), as with runc.
    while !String::from_utf8_lossy(&got).contains("is-a-tty /dev/pts/0") {
        assert!(t0.elapsed() < Duration::from_secs(10), "{got:?}");
        let n = f.read(&mut buf).unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    // exec --tty: a second pty of the container's devpts, master over the
    // console socket.
    let sock2 = env.bundle().join("console2.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock2).unwrap();
    let t = std::thread::spawn(move || berth_testkit::recv_fd(&listener));
    let s2 = sock2.display().to_string();
    env.ok(&[
        "exec",
        "--detach",
        "--tty",
        "--console-socket",
        &s2,
        &env.id,
        "/bin/sh",
        "-c",
        "[ -t 0 ] && [ -t 1 ] && echo exec-tty $(tty); sleep 2",
    ]);
    let mut f = File::from(t.join().unwrap());
    let mut got = Vec::new();
    let t0 = Instant::now();
    while !String::from_utf8_lossy(&got).contains("exec-tty /dev/pts/1") {
        assert!(t0.elapsed() < Duration::from_secs(10), "{got:?}");
        let n = f.read(&mut buf).unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    env.ok(&["delete", "--force", &env.id]);
}

#[test]
fn update_applies_resources_or_says_why_not() {
    berth_testkit::privileged!();
    let env = bundle(&["/bin/sleep", "60"], json!({}));
    assert_eq!(env.create_to(&env.bundle().join("out"), &[]), 0);
    env.ok(&["start", &env.id]);
    let res = env.bundle().join("res.json");
    std::fs::write(&res, json!({ "pids": { "limit": 42 } }).to_string()).unwrap();
    let (code, _, err) = env.run(&["update", "--resources", res.to_str().unwrap(), &env.id]);
    let st = berth::State::load(Some(&env.root), &env.id).unwrap();
    let pids_max = st.cgroup.unwrap().join("pids.max");
    if pids_max.exists() {
        assert_eq!(code, 0, "{err}");
        assert_eq!(std::fs::read_to_string(&pids_max).unwrap().trim(), "42");
    } else {
        // Hybrid host without the pids controller in cgroup2: a clear error.
        assert_ne!(code, 0);
        assert!(err.contains("pids"), "{err}");
    }
    // A malformed resources document is an error naming the problem.
    std::fs::write(&res, "{ not json").unwrap();
    let (code, _, err) = env.run(&["update", "--resources", res.to_str().unwrap(), &env.id]);
    assert_ne!(code, 0);
    assert!(err.contains("parse resources"), "{err}");
    env.ok(&["delete", "--force", &env.id]);
}

#[test]
fn umask_is_honoured() {
    berth_testkit::privileged!();
    let env = bundle(&["/bin/sh", "-c", "umask"], json!({}));
    let cfg = env.bundle().join("config.json");
    let mut c: Value = serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    c["process"]["user"]["umask"] = json!(0o022);
    std::fs::write(&cfg, c.to_string()).unwrap();
    let b = env.bundle().display().to_string();
    let (code, out, err) = env.run(&["run", "--bundle", &b, &env.id]);
    assert_eq!((code, out.as_str()), (0, "0022\n"), "{err}");
    c["process"]["user"]["umask"] = json!(0o077);
    std::fs::write(&cfg, c.to_string()).unwrap();
    let (code, out, err) = env.run(&["run", "--bundle", &b, &env.id]);
    assert_eq!((code, out.as_str()), (0, "0077\n"), "{err}");
    assert!(!env.root.join(&env.id).exists());
}

#[test]
fn exec_gets_the_containers_security_policy() {
    berth_testkit::privileged!();
    let env = bundle(&["/bin/sleep", "60"], json!({}));
    let cfg = env.bundle().join("config.json");
    let mut c: Value = serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    let caps = json!(["CAP_KILL"]);
    c["process"]["capabilities"] = json!({
        "bounding": caps, "effective": caps, "permitted": caps
    });
    c["process"]["noNewPrivileges"] = json!(true);
    c["process"]["user"]["additionalGids"] = json!([7]);
    std::fs::write(&cfg, c.to_string()).unwrap();
    assert_eq!(env.create_to(&env.bundle().join("out"), &[]), 0);
    env.ok(&["start", &env.id]);
    let (code, out, err) = env.run(&[
        "exec",
        "--user",
        "1000:1000",
        &env.id,
        "/bin/sh",
        "-c",
        "grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status; id -u; id -G",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "CapEff:\t0000000000000000\nCapBnd:\t0000000000000020\nNoNewPrivs:\t1\n1000\n1000 7\n"
    );
    let (code, out, err) = env.run(&[
        "exec",
        &env.id,
        "/bin/sh",
        "-c",
        "grep -E '^(CapEff|CapBnd):' /proc/self/status",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "CapEff:\t0000000000000020\nCapBnd:\t0000000000000020\n"
    );
    // --cap adds to every set (CAP_CHOWN is bit 0).
    let (code, out, err) = env.run(&[
        "exec",
        "--cap",
        "CAP_CHOWN",
        &env.id,
        "/bin/sh",
        "-c",
        "grep -E '^CapEff:' /proc/self/status",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "CapEff:\t0000000000000021\n");
    env.ok(&["delete", "--force", &env.id]);
}

/// Make a pipe; (read end, write end) as `File`s.
fn pipe() -> (File, File) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: fresh fds.
    unsafe {
        use std::os::fd::FromRawFd;
        (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1]))
    }
}

/// Give the child `fds[i]` as fd `3 + i` (not close-on-exec).
fn with_fds(cmd: &mut Command, fds: Vec<std::os::fd::RawFd>) {
    use std::os::unix::process::CommandExt;
    // SAFETY: dup2/fcntl only (async-signal-safe).
    unsafe {
        cmd.pre_exec(move || {
            for (i, fd) in fds.iter().enumerate() {
                let to = 3 + i as i32;
                // Move high first so a source is never clobbered.
                let tmp = libc::fcntl(*fd, libc::F_DUPFD, 100);
                if tmp < 0 || libc::dup2(tmp, to) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(tmp);
            }
            Ok(())
        });
    }
}

/// `create --preserve-fds N`: the runtime's fds 3..3+N are the workload's
/// (a pipe at fd 3 written from inside reaches the caller, EOF once the
/// workload exits); fd 3+N is not passed; `exec --preserve-fds` likewise.
#[test]
fn preserve_fds_pass_the_runtimes_fds() {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    berth_testkit::privileged!();
    let env = bundle(
        &[
            "/bin/sh",
            "-c",
            "echo via-fd3 >&3; for f in 4 5; do [ -e /proc/$$/fd/$f ] && echo leak$f; done; \
             exec 3>&-; exec sleep 60",
        ],
        json!({}),
    );
    let out = env.bundle().join("out");
    let (mut r3, w3) = pipe();
    let (_r4, w4) = pipe();
    let b = env.bundle().display().to_string();
    let mut cmd = env.cmd(&["create", "--bundle", &b, "--preserve-fds", "1", &env.id]);
    let f = File::create(&out).unwrap();
    cmd.stdout(f.try_clone().unwrap()).stderr(f);
    with_fds(&mut cmd, vec![w3.as_raw_fd(), w4.as_raw_fd()]);
    let st = cmd.status().unwrap();
    drop((w3, w4));
    assert!(st.success(), "{}", std::fs::read_to_string(&out).unwrap());
    env.ok(&["start", &env.id]);
    // EOF comes when the workload closes fd 3: neither the runtime nor the
    // holder kept a copy.
    let mut got = String::new();
    r3.read_to_string(&mut got).unwrap();
    assert_eq!(got, "via-fd3\n");
    env.wait_status("running");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "", "fd 4 leaked");

    // exec --preserve-fds 1: the same for an exec'd process.
    let (mut r3, w3) = pipe();
    let (_r4, w4) = pipe();
    let mut cmd = env.cmd(&[
        "exec",
        "--preserve-fds",
        "1",
        &env.id,
        "/bin/sh",
        "-c",
        "echo exec-fd3 >&3; for f in 4 5; do [ -e /proc/$$/fd/$f ] && echo leak$f; done; true",
    ]);
    with_fds(&mut cmd, vec![w3.as_raw_fd(), w4.as_raw_fd()]);
    let o = cmd.output().unwrap();
    drop((w3, w4));
    assert!(o.status.success(), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "");
    let mut got = String::new();
    r3.read_to_string(&mut got).unwrap();
    assert_eq!(got, "exec-fd3\n");

    // A count naming a closed fd is a clear error; nothing is left.
    env.ok(&["delete", "--force", &env.id]);
    let (code, _, err) = env.run(&["create", "--bundle", &b, "--preserve-fds", "40", &env.id]);
    assert_ne!(code, 0);
    assert!(
        err.contains("--preserve-fds") && err.contains("not open"),
        "{err}"
    );
    assert!(!env.root.join(&env.id).exists());
}

/// Rootless: as uid/gid 65534 with a `--root` it owns, a bundle like
/// `runc spec --rootless` (user namespace, single-id maps, no network
/// namespace, /sys bound) goes through create/start/state/kill/delete;
/// the cgroupsPath under a cgroup it cannot write is skipped (no cgroup,
/// limits not applied).
#[test]
fn rootless_bundle_lifecycle_as_nobody() {
    berth_testkit::privileged!();
    let env = bundle(
        &[
            "/bin/sh",
            "-c",
            "echo started $(id -u) $(hostname); cat /proc/self/uid_map; exec sleep 60",
        ],
        json!({
            "hostname": "rootless",
            "mounts": [
                { "destination": "/proc", "type": "proc", "source": "proc" },
                { "destination": "/sys", "type": "none", "source": "/sys",
                  "options": ["rbind", "nosuid", "noexec", "nodev", "ro"] }
            ],
            "linux": {
                "namespaces": [
                    { "type": "pid" }, { "type": "ipc" }, { "type": "uts" },
                    { "type": "mount" }, { "type": "user" }
                ],
                "uidMappings": [{ "containerID": 0, "hostID": 65534, "size": 1 }],
                "gidMappings": [{ "containerID": 0, "hostID": 65534, "size": 1 }],
                "cgroupsPath": "/berth-oci-rootless-not-delegated/c",
                "resources": { "memory": { "limit": 67108864 } }
            }
        }),
    );
    // The bundle, the rootfs and the state root belong to nobody.
    assert!(Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(env.bundle())
        .status()
        .unwrap()
        .success());
    let nobody = |args: &[&str]| {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            BIN,
        ])
        .arg("--root")
        .arg(&env.root)
        .args(args)
        .stdin(Stdio::null());
        c
    };
    let run = |args: &[&str]| {
        let o = nobody(args).output().unwrap();
        assert!(
            o.status.success(),
            "berth-oci {args:?} as nobody: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let out = env.bundle().join("out");
    let f = File::create(&out).unwrap();
    let b = env.bundle().display().to_string();
    let st = nobody(&["create", "--bundle", &b, &env.id])
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .status()
        .unwrap();
    assert!(st.success(), "{}", std::fs::read_to_string(&out).unwrap());
    let state: Value = serde_json::from_str(&run(&["state", &env.id])).unwrap();
    assert_eq!(state["status"], "created");
    let pid = state["pid"].as_i64().unwrap() as i32;
    // Its user namespace maps only nobody; no cgroup was made.
    let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    assert_eq!(
        map.split_whitespace().collect::<Vec<_>>(),
        ["0", "65534", "1"]
    );
    let h = berth_cgroups::Hierarchy::discover().unwrap();
    assert!(!h
        .mount_point()
        .join("berth-oci-rootless-not-delegated")
        .exists());
    run(&["start", &env.id]);
    let text = wait_file(&out, " 65534 ");
    assert!(text.contains("started 0 rootless\n"), "{text}");
    let state: Value = serde_json::from_str(&run(&["state", &env.id])).unwrap();
    assert_eq!(state["status"], "running");
    // exec joins the user namespace (and the rest) as nobody too.
    let out = run(&["exec", &env.id, "/bin/sh", "-c", "id -u; hostname; echo $$"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["0", "rootless"], "{out}");
    assert_ne!(lines[2], "1", "{out}");
    run(&["kill", "--all", &env.id, "KILL"]);
    let t = Instant::now();
    loop {
        let state: Value = serde_json::from_str(&run(&["state", &env.id])).unwrap();
        if state["status"] == "stopped" {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "{state}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!pid_alive(pid));
    run(&["delete", &env.id]);
    assert!(!env.root.join(&env.id).exists());
    // (`.meta` itself goes with the last container, as runc leaves nothing.)
    let meta: Vec<_> = std::fs::read_dir(env.root.join(".meta"))
        .map(|rd| rd.collect())
        .unwrap_or_default();
    assert!(meta.is_empty(), "{meta:?}");
}

/// Rootless under a delegated cgroup (a directory, its `cgroup.procs`,
/// `cgroup.subtree_control` and `cgroup.threads` owned by nobody, with
/// the runtime started inside it, as a systemd user session delegates):
/// the container gets its cgroup `<delegated>/c` there (device rules
/// skipped: they need CAP_BPF), and delete removes it.
#[test]
fn rootless_under_a_delegated_cgroup() {
    berth_testkit::privileged!();
    let h = berth_cgroups::Hierarchy::discover().unwrap();
    let name = berth_testkit::unique_name("oci-deleg");
    let deleg = berth_testkit::CgroupDir::adopt(h.mount_point().join(&name));
    std::fs::create_dir(deleg.path()).unwrap();
    for f in [
        "",
        "cgroup.procs",
        "cgroup.subtree_control",
        "cgroup.threads",
    ] {
        std::os::unix::fs::chown(deleg.path().join(f), Some(65534), Some(65534)).unwrap();
    }
    let env = bundle(
        &["/bin/sh", "-c", "cat /proc/self/cgroup; exec sleep 60"],
        json!({
            "hostname": "rootless",
            "mounts": [{ "destination": "/proc", "type": "proc", "source": "proc" }],
            "linux": {
                "namespaces": [
                    { "type": "pid" }, { "type": "ipc" }, { "type": "uts" },
                    { "type": "mount" }, { "type": "user" }
                ],
                "uidMappings": [{ "containerID": 0, "hostID": 65534, "size": 1 }],
                "gidMappings": [{ "containerID": 0, "hostID": 65534, "size": 1 }],
                "cgroupsPath": format!("/{name}/c"),
                "resources": { "devices": [{ "allow": false, "access": "rwm" }] }
            }
        }),
    );
    assert!(Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(env.bundle())
        .status()
        .unwrap()
        .success());
    // The runtime runs inside the delegated group (root puts the shell
    // there, then becomes nobody).
    let nobody = |args: &[&str]| {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(
                r#"echo $$ > "$0" && exec setpriv --reuid 65534 --regid 65534 --clear-groups "$@""#,
            )
            .arg(deleg.path().join("cgroup.procs"))
            .arg(BIN)
            .arg("--root")
            .arg(&env.root)
            .args(args)
            .stdin(Stdio::null());
        c
    };
    let run = |args: &[&str]| {
        let o = nobody(args).output().unwrap();
        assert!(
            o.status.success(),
            "berth-oci {args:?} as nobody: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let out = env.bundle().join("out");
    let f = File::create(&out).unwrap();
    let b = env.bundle().display().to_string();
    let st = nobody(&["create", "--bundle", &b, &env.id])
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .status()
        .unwrap();
    assert!(st.success(), "{}", std::fs::read_to_string(&out).unwrap());
    let state: Value = serde_json::from_str(&run(&["state", &env.id])).unwrap();
    let pid = state["pid"].as_i64().unwrap() as i32;
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let want = format!("0::/{name}/c\n");
    assert!(cg.contains(&want), "{cg}");
    let procs = std::fs::read_to_string(deleg.path().join("c/cgroup.procs")).unwrap();
    assert!(procs.lines().any(|l| l == pid.to_string()), "{procs}");
    run(&["start", &env.id]);
    // The workload itself runs there.
    wait_file(&out, &want);
    // pause/resume work on the delegated group.
    run(&["pause", &env.id]);
    let state: Value = serde_json::from_str(&run(&["state", &env.id])).unwrap();
    assert_eq!(state["status"], "paused");
    run(&["resume", &env.id]);
    run(&["kill", "--all", &env.id, "KILL"]);
    let t = Instant::now();
    loop {
        let state: Value = serde_json::from_str(&run(&["state", &env.id])).unwrap();
        if state["status"] == "stopped" {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "{state}");
        std::thread::sleep(Duration::from_millis(20));
    }
    run(&["delete", &env.id]);
    assert!(!deleg.path().join("c").exists());
    assert!(!env.root.join(&env.id).exists());
}
