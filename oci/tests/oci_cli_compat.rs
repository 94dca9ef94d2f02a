//! `berth-oci` answers as runc where engines parse it (issue 21): exit
//! statuses and message classes of `kill`/`delete`/`start`/`state` per
//! container state (run side by side with runc when it is installed), the
//! runtime spec's hook lifecycle (failures of poststart/poststop are
//! warnings, a failing prestart still runs poststop), unix sockets under
//! paths deeper than `sockaddr_un` allows, nothing left in `--root` after
//! `delete`, and `events --stats`/`ps`/`features`/`update` (privileged
//! tier).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;

use common::*;

/// runc 1.1.5's answers (measured on the development host, and checked
/// against the installed runc by the test when there is one): per state
/// and command, the exit code and a text the message must contain
/// (containerd's shim matches "container not running" and "does not
/// exist"; the others are runc's words).
const RUNC_TABLE: &[(&str, &str, i32, &str)] = &[
    ("created", "kill X", 0, ""),
    ("created", "kill X KILL", 0, ""),
    ("created", "kill --all X KILL", 0, ""),
    ("created", "kill X 0", 0, ""),
    ("created", "delete X", 0, ""),
    ("created", "delete --force X", 0, ""),
    ("created", "state X", 0, ""),
    ("created", "start X", 0, ""),
    ("running", "kill X 0", 0, ""),
    ("running", "kill X KILL", 0, ""),
    ("running", "kill --all X KILL", 0, ""),
    ("running", "delete X", 1, "not stopped"),
    ("running", "delete --force X", 0, ""),
    ("running", "state X", 0, ""),
    (
        "running",
        "start X",
        1,
        "cannot start an already running container",
    ),
    ("stopped", "kill X", 1, "container not running"),
    ("stopped", "kill X KILL", 1, "container not running"),
    ("stopped", "kill --all X KILL", 0, ""),
    ("stopped", "kill X 0", 1, "container not running"),
    ("stopped", "delete X", 0, ""),
    ("stopped", "delete --force X", 0, ""),
    ("stopped", "state X", 0, ""),
    (
        "stopped",
        "start X",
        1,
        "cannot start a container that has stopped",
    ),
    ("missing", "kill X", 1, "does not exist"),
    ("missing", "kill X KILL", 1, "does not exist"),
    ("missing", "kill --all X KILL", 1, "does not exist"),
    ("missing", "kill X BOGUS", 1, "does not exist"),
    ("missing", "delete X", 1, "does not exist"),
    ("missing", "delete --force X", 0, ""),
    ("missing", "state X", 1, "does not exist"),
    ("missing", "start X", 1, "does not exist"),
    // libcontainer's Pause accepts running and created containers.
    ("created", "pause X", 0, ""),
    ("running", "pause X", 0, ""),
    ("stopped", "pause X", 1, "container not running"),
    ("missing", "pause X", 1, "does not exist"),
    ("created", "resume X", 1, "container not paused"),
    ("running", "resume X", 1, "container not paused"),
    ("missing", "resume X", 1, "does not exist"),
];

/// Every (state, command) of [`RUNC_TABLE`] against `rt`: the rows that
/// differ, as text.
fn table_differences(rt: &Rt, b: &Bundle) -> Vec<String> {
    let mut bad = Vec::new();
    for (i, (state, cmd, want_code, want_text)) in RUNC_TABLE.iter().enumerate() {
        let id = berth_testkit::unique_name(&format!("cc{i}"));
        rt.make(b, &id, state);
        let args: Vec<&str> = cmd
            .split(' ')
            .map(|a| if a == "X" { id.as_str() } else { a })
            .collect();
        let (code, _, err) = rt.run(&args);
        if code != *want_code || !err.contains(want_text) {
            bad.push(format!(
                "{state} `{cmd}`: exit {code} {:?} (runc: exit {want_code} {want_text:?})",
                err.trim()
            ));
        }
        rt.run(&["delete", "--force", &id]);
    }
    bad
}

#[test]
fn kill_delete_start_state_answer_as_runc() {
    berth_testkit::privileged!();
    let b = Bundle::new(&["sleep", "60"], json!({}));
    let berth = Rt::new(BIN, b.path().join("berth-root"));
    let bad = table_differences(&berth, &b);
    assert!(
        bad.is_empty(),
        "berth-oci differs from runc:\n{}",
        bad.join("\n")
    );
    assert!(
        berth.root_entries().is_empty(),
        "{:?}",
        berth.root_entries()
    );
    // The table is runc's: check it against the installed runc.
    if Command::new("runc").arg("--version").output().is_ok() {
        let runc = Rt::new("runc", b.path().join("runc-root"));
        let bad = table_differences(&runc, &b);
        assert!(
            bad.is_empty(),
            "the table is not runc's:\n{}",
            bad.join("\n")
        );
    } else {
        println!("runc not installed: the table was not re-checked against it");
    }
}

#[test]
fn kill_of_a_container_that_exited_by_itself_is_not_running() {
    berth_testkit::privileged!();
    // The pod sandbox case: the workload exits on its own, then the engine
    // sends KILL (containerd's StopPodSandbox) and must be told "not running".
    let b = Bundle::new(&["true"], json!({}));
    let berth = Rt::new(BIN, b.path().join("root"));
    let id = berth_testkit::unique_name("ccx");
    berth.create(&b, &id);
    berth.ok(&["start", &id]);
    berth.wait_status(&id, "stopped");
    let (code, _, err) = berth.run(&["kill", &id, "KILL"]);
    assert_eq!(code, 1);
    assert!(err.contains("container not running"), "{err}");
    assert_eq!(berth.run(&["kill", "--all", &id, "KILL"]).0, 0);
    berth.ok(&["delete", &id]);
    assert!(
        berth.root_entries().is_empty(),
        "{:?}",
        berth.root_entries()
    );
}

/// Whether the cgroup2 group of berth-oci's container `id` under `root` is
/// frozen, as the kernel says (`cgroup.events`: `frozen 1` once every task
/// stopped, Linux 5.2).
fn kernel_frozen(root: &Path, id: &str) -> bool {
    let st = berth::State::load(Some(root), id).unwrap();
    let events = std::fs::read_to_string(st.cgroup.unwrap().join("cgroup.events")).unwrap();
    events.lines().any(|l| l == "frozen 1")
}

/// `pause` of a created container freezes it, as runc 1.1 does
/// (libcontainer's Pause accepts Running and Created): `state` says
/// `paused`, the kernel says the group is frozen; `resume` brings it
/// back to `created`, and `start` then runs the workload.
#[test]
fn pause_of_a_created_container_freezes_it() {
    berth_testkit::privileged!();
    let b = Bundle::new(&["sleep", "60"], json!({}));
    let mut rts = vec![Rt::new(BIN, b.path().join("berth-root"))];
    if Command::new("runc").arg("--version").output().is_ok() {
        rts.push(Rt::new("runc", b.path().join("runc-root")));
    }
    for rt in &rts {
        let id = berth_testkit::unique_name("ccp");
        rt.create(&b, &id);
        let (code, _, err) = rt.run(&["pause", &id]);
        assert_eq!((code, err.as_str()), (0, ""), "{} pause of created", rt.bin);
        assert_eq!(rt.status(&id), "paused", "{}", rt.bin);
        if rt.bin == BIN {
            let t = Instant::now();
            while !kernel_frozen(&rt.root, &id) {
                assert!(t.elapsed() < Duration::from_secs(5), "not frozen");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let (code, _, err) = rt.run(&["start", &id]);
        assert_eq!(code, 1, "{} start of paused", rt.bin);
        assert!(err.contains("paused"), "{err}");
        rt.ok(&["resume", &id]);
        assert_eq!(rt.status(&id), "created", "{}", rt.bin);
        if rt.bin == BIN {
            assert!(!kernel_frozen(&rt.root, &id));
        }
        rt.ok(&["start", &id]);
        assert_eq!(rt.status(&id), "running", "{}", rt.bin);
        rt.ok(&["delete", "--force", &id]);
    }
    assert!(
        rts[0].root_entries().is_empty(),
        "{:?}",
        rts[0].root_entries()
    );
}

#[test]
fn sockets_under_paths_deeper_than_sun_len_work() {
    berth_testkit::privileged!();
    use std::io::Read;
    let b = Bundle::new(
        &["sh", "-c", "[ -t 1 ] && echo is-a-tty; sleep 60"],
        json!({}),
    );
    let cfg = b.path().join("config.json");
    let mut c: Value = serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    c["process"]["terminal"] = json!(true);
    std::fs::write(&cfg, c.to_string()).unwrap();
    let root = deep_dir(&b.path().join("r"), 200).join("root");
    let sockdir = deep_dir(&b.path().join("s"), 200);
    let sock = sockdir.join("console.sock");
    assert!(sock.as_os_str().len() > 200 && root.as_os_str().len() > 200);
    // The test's own listener binds through its directory's fd, the only
    // way to make a socket there.
    let dirf = std::fs::File::open(&sockdir).unwrap();
    let short = format!(
        "/proc/self/fd/{}/console.sock",
        std::os::fd::AsRawFd::as_raw_fd(&dirf)
    );
    let listener = std::os::unix::net::UnixListener::bind(&short).unwrap();
    let t = std::thread::spawn(move || berth_testkit::recv_fd(&listener));
    let berth = Rt::new(BIN, root);
    let id = berth_testkit::unique_name("ccs");
    let (code, _, err) = berth.run(&[
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        "--console-socket",
        sock.to_str().unwrap(),
        &id,
    ]);
    assert_eq!(code, 0, "create under a deep root: {err}");
    let master = t.join().unwrap();
    // start reaches the holder's socket under the deep root.
    berth.ok(&["start", &id]);
    let mut f = std::fs::File::from(master);
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&got).contains("is-a-tty") {
        let n = f.read(&mut buf).unwrap();
        assert!(n > 0, "{got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    berth.ok(&["delete", "--force", &id]);
    assert!(
        berth.root_entries().is_empty(),
        "{:?}",
        berth.root_entries()
    );
}

#[test]
fn delete_leaves_nothing_in_the_root() {
    berth_testkit::privileged!();
    let b = Bundle::new(&["sleep", "60"], json!({}));
    let berth = Rt::new(BIN, b.path().join("root"));
    let ids: Vec<String> = ["created", "running", "stopped"]
        .iter()
        .map(|s| {
            let id = berth_testkit::unique_name("ccd");
            berth.make(&b, &id, s);
            id
        })
        .collect();
    assert!(!berth.root_entries().is_empty());
    berth.ok(&["delete", &ids[0]]);
    berth.ok(&["delete", "--force", &ids[1]]);
    berth.ok(&["delete", &ids[2]]);
    // `run` and a failed create leave nothing either.
    let rb = Bundle::new(&["true"], json!({}));
    berth.ok(&["run", "--bundle", rb.path().to_str().unwrap(), "ccd-run"]);
    let bad = Bundle::new(
        &["true"],
        json!({ "hooks": { "prestart": [{ "path": "/bin/false" }] } }),
    );
    assert_ne!(
        berth
            .run(&[
                "create",
                "--bundle",
                bad.path().to_str().unwrap(),
                "ccd-bad"
            ])
            .0,
        0
    );
    assert!(
        berth.root_entries().is_empty(),
        "left in --root: {:?}",
        berth.root_entries()
    );
    // Nor a cgroup (cgroup2 or the v1 groups of a hybrid host).
    let mut ids = ids;
    ids.extend(["ccd-run".to_string(), "ccd-bad".to_string()]);
    for id in &ids {
        let out = Command::new("find")
            .args([
                "/sys/fs/cgroup",
                "-maxdepth",
                "8",
                "-type",
                "d",
                "-name",
                id,
            ])
            .output()
            .unwrap();
        let found = String::from_utf8_lossy(&out.stdout);
        assert!(found.trim().is_empty(), "cgroups left: {found}");
    }
}

/// A hook that appends `<name> <status> <pid>` (from the state on its
/// stdin) to `log`, then exits with `code`.
fn hook(log: &Path, name: &str, code: i32) -> Value {
    json!({
        "path": berth_testkit::busybox_binary(),
        "args": ["sh", "-c", format!(
            "s=$(cat); echo {name} $(echo \"$s\" | grep -o '\"status\":\"[a-z]*\"') \
             $(echo \"$s\" | grep -o '\"pid\":[0-9]*' | grep -v ':0$' | wc -l) >> {l}; exit {code}",
            l = log.display()
        )],
    })
}

#[test]
fn hooks_follow_the_runtime_spec_lifecycle() {
    berth_testkit::privileged!();
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("hooks.log");
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    // A failing poststart is a warning: the next poststart hook runs and
    // the container runs on; a failing poststop likewise.
    let b = Bundle::new(
        &["sleep", "60"],
        json!({ "hooks": {
            "poststart": [
                hook(&log, "poststart1", 1),
                { "path": berth_testkit::busybox_binary(), "args": ["sleep", "30"], "timeout": 1 },
                hook(&log, "poststart2", 0)
            ],
            "poststop": [hook(&log, "poststop1", 1), hook(&log, "poststop2", 0)],
        }}),
    );
    let berth = Rt::new(BIN, b.path().join("root"));
    let id = berth_testkit::unique_name("cch");
    berth.create(&b, &id);
    let t = Instant::now();
    let (code, _, err) = berth.run(&["start", &id]);
    assert_eq!(code, 0, "a failing poststart hook failed start: {err}");
    // The slow one was stopped at its timeout, with a warning.
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "timeout not honoured"
    );
    assert!(err.contains("timed out"), "{err}");
    assert!(
        err.contains("warning") && err.contains("poststart"),
        "{err}"
    );
    assert_eq!(
        read(),
        "poststart1 \"status\":\"running\" 1\npoststart2 \"status\":\"running\" 1\n"
    );
    assert_eq!(berth.status(&id), "running");
    let (code, _, err) = berth.run(&["delete", "--force", &id]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("warning") && err.contains("poststop"), "{err}");
    let after = read();
    assert!(
        after.ends_with("poststop1 \"status\":\"stopped\" 1\npoststop2 \"status\":\"stopped\" 1\n")
            || after.ends_with(
                "poststop1 \"status\":\"stopped\" 0\npoststop2 \"status\":\"stopped\" 0\n"
            ),
        "{after}"
    );

    // A failing prestart: create fails, the container is destroyed, the
    // later create hooks do not run, and poststop hooks run (the spec's
    // "continue the lifecycle at step 12"), with status "stopped".
    std::fs::remove_file(&log).unwrap();
    let b = Bundle::new(
        &["sleep", "60"],
        json!({ "hooks": {
            "prestart": [hook(&log, "prestart", 1)],
            "createRuntime": [hook(&log, "createRuntime", 0)],
            "poststop": [hook(&log, "poststop", 0)],
        }}),
    );
    let berth = Rt::new(BIN, b.path().join("root"));
    let (code, _, err) = berth.run(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert_ne!(code, 0);
    assert!(err.contains("prestart"), "{err}");
    let got = read();
    assert!(
        got.starts_with("prestart \"status\":\"creating\" 1\npoststop \"status\":\"stopped\""),
        "{got}"
    );
    assert!(!got.contains("createRuntime"), "{got}");

    // poststart of a workload that exits at once still gets "running" and
    // the init's pid (lifecycle step 9; the validation suite's hooks_stdin).
    std::fs::remove_file(&log).unwrap();
    let b = Bundle::new(
        &["true"],
        json!({ "hooks": { "poststart": [hook(&log, "poststart", 0)] }}),
    );
    let berth = Rt::new(BIN, b.path().join("root"));
    berth.create(&b, &id);
    let pid = serde_json::from_str::<Value>(&berth.ok(&["state", &id])).unwrap()["pid"].clone();
    berth.ok(&["start", &id]);
    assert_eq!(read(), "poststart \"status\":\"running\" 1\n");
    assert!(pid.as_i64().unwrap() > 0);
    berth.wait_status(&id, "stopped");
    berth.ok(&["delete", &id]);
    assert!(berth.run(&["state", &id]).2.contains("does not exist"));
    assert!(
        berth.root_entries().is_empty(),
        "{:?}",
        berth.root_entries()
    );
}

/// The memory usage of `pid`'s own memory cgroup, read from its file (v1
/// `memory.usage_in_bytes` on a hybrid host, else cgroup2
/// `memory.current`), and that cgroup's path.
fn memory_cgroup_usage(pid: i32) -> (String, u64) {
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let (file, path) = match cg
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p))
    {
        Some(p) => (
            format!("/sys/fs/cgroup/memory{p}/memory.usage_in_bytes"),
            p.to_string(),
        ),
        None => {
            let p = cg.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
            (format!("/sys/fs/cgroup{p}/memory.current"), p.to_string())
        }
    };
    let n = std::fs::read_to_string(&file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (path, n)
}

#[test]
fn events_stats_are_the_containers_own() {
    berth_testkit::privileged!();
    let b = Bundle::new(&["sleep", "60"], json!({}));
    let berth = Rt::new(BIN, b.path().join("root"));
    let id = berth_testkit::unique_name("cce");
    berth.make(&b, &id, "running");
    let st: Value = serde_json::from_str(&berth.ok(&["state", &id])).unwrap();
    let pid = st["pid"].as_i64().unwrap() as i32;
    let ev: Value = serde_json::from_str(&berth.ok(&["events", "--stats", &id])).unwrap();
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], id.as_str());
    let d = &ev["data"];
    // One idle process: its own pids count, not the host's.
    assert_eq!(d["pids"]["current"], 1, "{d}");
    // Memory: the container's own memory cgroup (never the runtime's or
    // the session's), and the number in its file.
    let (cg, usage) = memory_cgroup_usage(pid);
    let (mine, _) = memory_cgroup_usage(std::process::id() as i32);
    assert_ne!(cg, mine, "the container shares the test's memory cgroup");
    let got = d["memory"]["usage"]["usage"].as_u64().unwrap();
    assert!(got > 0 && got < 64 << 20, "{got} bytes for an idle sleep");
    assert!(
        got.abs_diff(usage) < 1 << 20,
        "stats {got}, cgroup file {usage}"
    );
    assert!(d["cpu"]["usage"]["total"].as_u64().unwrap() > 0, "{d}");
    // An exec'd process is counted with the container too (same memory
    // cgroup as the init; no cgroup namespace here, host paths).
    let out = berth.ok(&["exec", &id, "cat", "/proc/self/cgroup"]);
    let line = |t: &str| {
        t.lines()
            .find(|l| l.contains(":memory:"))
            .map(str::to_string)
    };
    let init = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(line(&out), line(&init), "{out}");
    // ... while the runtime's own exec process, waiting for it, is not.
    let mut waiter = Command::new(BIN)
        .arg("--root")
        .arg(&berth.root)
        .args(["exec", &id, "sleep", "2"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let w = std::fs::read_to_string(format!("/proc/{}/cgroup", waiter.id())).unwrap();
    assert_ne!(line(&w), line(&init), "{w}");
    assert!(waiter.wait().unwrap().success());
    // Streaming: a stats event per interval until the container stops.
    let child = Command::new(BIN)
        .arg("--root")
        .arg(&berth.root)
        .args(["events", "--interval", "100ms", &id])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    berth.ok(&["kill", &id, "KILL"]);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 2, "{lines:?}");
    assert!(lines
        .iter()
        .all(|l| l["type"] == "stats" && l["id"] == id.as_str()));
    berth.wait_status(&id, "stopped");
    let (code, _, err) = berth.run(&["events", "--stats", &id]);
    assert_eq!(code, 1);
    assert!(err.contains("container not running"), "{err}");
    berth.ok(&["delete", &id]);
    // The container's own groups went with it.
    assert!(!Path::new(&format!("/sys/fs/cgroup/memory{cg}")).exists() || cg == mine);
    assert!(
        berth.root_entries().is_empty(),
        "{:?}",
        berth.root_entries()
    );
}

#[test]
fn ps_runs_ps_and_keeps_the_containers_lines() {
    berth_testkit::privileged!();
    let b = Bundle::new(&["sleep", "61"], json!({}));
    let berth = Rt::new(BIN, b.path().join("root"));
    let id = berth_testkit::unique_name("ccp");
    berth.make(&b, &id, "running");
    let st: Value = serde_json::from_str(&berth.ok(&["state", &id])).unwrap();
    let pid = st["pid"].as_i64().unwrap();
    // runc's default: `ps -ef`, its header, the container's lines.
    let out = berth.ok(&["ps", &id]);
    let mut lines = out.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("UID") && header.contains("PID") && header.contains("CMD"),
        "{out}"
    );
    let rest: Vec<&str> = lines.collect();
    assert_eq!(rest.len(), 1, "{out}");
    assert_eq!(
        rest[0].split_whitespace().nth(1),
        Some(pid.to_string().as_str()),
        "{out}"
    );
    assert!(rest[0].ends_with("sleep 61"), "{out}");
    // ps arguments after the id.
    let out = berth.ok(&["ps", &id, "-o", "pid,comm"]);
    assert_eq!(
        out.lines()
            .nth(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec![pid.to_string().as_str(), "sleep"]),
        "{out}"
    );
    let js: Value = serde_json::from_str(&berth.ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(js, json!([pid]));
    berth.ok(&["delete", "--force", &id]);
}

#[test]
fn update_takes_runcs_flags_and_features_follow_the_spec() {
    berth_testkit::privileged!();
    let b = Bundle::new(&["sleep", "60"], json!({}));
    let berth = Rt::new(BIN, b.path().join("root"));
    let id = berth_testkit::unique_name("ccu");
    berth.make(&b, &id, "running");
    let (code, _, err) = berth.run(&["update", "--pids-limit", "42", &id]);
    let st = berth::State::load(Some(&berth.root), &id).unwrap();
    let pids_max = st.cgroup.unwrap().join("pids.max");
    if pids_max.exists() {
        assert_eq!(code, 0, "{err}");
        assert_eq!(std::fs::read_to_string(&pids_max).unwrap().trim(), "42");
    } else {
        // Hybrid host without pids in cgroup2: the flag was understood and
        // the answer names the controller.
        assert_ne!(code, 0);
        assert!(
            err.contains("pids") && !err.contains("unknown flag"),
            "{err}"
        );
    }
    let (code, _, err) = berth.run(&["update", "--memory", "12x", &id]);
    assert_ne!(code, 0);
    assert!(err.contains("--memory"), "{err}");
    // No flag: nothing to change, as runc.
    berth.ok(&["update", &id]);
    berth.ok(&["delete", "--force", &id]);

    let f: Value = serde_json::from_str(&berth.ok(&["features"])).unwrap();
    for k in [
        "ociVersionMin",
        "ociVersionMax",
        "hooks",
        "mountOptions",
        "linux",
        "annotations",
    ] {
        assert!(f.get(k).is_some(), "features lacks {k}: {f}");
    }
    for k in [
        "namespaces",
        "capabilities",
        "cgroup",
        "seccomp",
        "apparmor",
        "selinux",
    ] {
        assert!(f["linux"].get(k).is_some(), "features.linux lacks {k}");
    }
    assert!(f["linux"]["seccomp"]["operators"].as_array().is_some());
    // Annotations are berth-oci's own, not runc's.
    assert!(
        f["annotations"]
            .as_object()
            .unwrap()
            .keys()
            .all(|k| !k.contains("runc")),
        "{f}"
    );
}

#[test]
fn without_a_cgroup_namespace_only_the_own_cgroup_is_visible() {
    berth_testkit::privileged!();
    // No cgroup and no network namespace: /sys is the host's (read-only),
    // and /sys/fs/cgroup must not show the host's cgroup tree.
    let b = Bundle::new(
        &[
            "sh",
            "-c",
            "ls /sys/fs/cgroup; echo procs $(cat /sys/fs/cgroup/cgroup.procs)",
        ],
        json!({ "linux": { "namespaces": [
            { "type": "pid" }, { "type": "ipc" }, { "type": "uts" }, { "type": "mount" }
        ]}}),
    );
    let berth = Rt::new(BIN, b.path().join("root"));
    let (code, out, err) = berth.run(&["run", "--bundle", b.path().to_str().unwrap(), "ccg"]);
    assert_eq!(code, 0, "{err}");
    let names: Vec<&str> = out.lines().collect();
    for host in [
        "unified",
        "memory",
        "systemd",
        "berth-oci",
        "init.scope",
        "system.slice",
    ] {
        assert!(
            !names.contains(&host),
            "host cgroup tree visible: {names:?}"
        );
    }
    assert!(names.contains(&"cgroup.procs"), "{out}");
    // Its own group: the container's init (pid 1 in its pid namespace) is there.
    let procs = out.lines().find_map(|l| l.strip_prefix("procs ")).unwrap();
    assert!(procs.split(' ').any(|p| p == "1"), "{out}");
    assert!(
        berth.root_entries().is_empty(),
        "{:?}",
        berth.root_entries()
    );
}

/// An engine's absolute cgroupsPath (containerd: `/<namespace>/<id>`,
/// podman: `/libpod_parent/libpod-<id>`) names the container's v1
/// accounting groups on a hybrid host from each hierarchy's root, as runc
/// puts them — never below the calling process's own v1 group (the shim's
/// or conmon's), where `delete` would leave the intermediate directories.
#[test]
fn absolute_cgroups_path_v1_groups_are_from_the_root() {
    berth_testkit::privileged!();
    let mine = memory_cgroup_usage(std::process::id() as i32).0;
    if !Path::new("/sys/fs/cgroup/memory/cgroup.procs").exists() || mine == "/" {
        eprintln!("skipped: needs a v1 memory hierarchy and a test process below its root");
        return;
    }
    let parent = berth_testkit::unique_name("cgabs");
    let id = berth_testkit::unique_name("cga");
    let b = Bundle::new(
        &["sleep", "60"],
        json!({ "linux": { "cgroupsPath": format!("/{parent}/{id}") } }),
    );
    let berth = Rt::new(BIN, b.path().join("root"));
    berth.make(&b, &id, "running");
    let pid = serde_json::from_str::<Value>(&berth.ok(&["state", &id])).unwrap()["pid"]
        .as_i64()
        .unwrap() as i32;
    let (cg, _) = memory_cgroup_usage(pid);
    berth.ok(&["kill", &id, "KILL"]);
    berth.wait_status(&id, "stopped");
    berth.ok(&["delete", &id]);
    let nested = Path::new("/sys/fs/cgroup/memory")
        .join(mine.trim_start_matches('/'))
        .join(&parent);
    let nested_left = nested.exists();
    // What this test made, wherever it went (parents stay after delete, as
    // with runc: the engine owns them).
    for d in [
        Path::new("/sys/fs/cgroup/memory").join(&parent),
        nested.clone(),
    ] {
        let _ = std::fs::remove_dir(d.join(&id));
        let _ = std::fs::remove_dir(&d);
    }
    for h in ["pids", "cpu,cpuacct", "cpuacct", "unified"] {
        let d = Path::new("/sys/fs/cgroup").join(h).join(&parent);
        let _ = std::fs::remove_dir(d.join(&id));
        let _ = std::fs::remove_dir(&d);
    }
    assert_eq!(
        cg,
        format!("/{parent}/{id}"),
        "the container's v1 memory group"
    );
    assert!(
        !nested_left,
        "{} made below the runtime's own group",
        nested.display()
    );
}
