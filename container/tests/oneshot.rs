//! Privileged tier: one-shot runs like `std::process::Command` — output,
//! status, wait_with_output, a timeout that kills and leaves nothing behind,
//! typed signals (issue 22 item 3).

mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use berth::{Signal, Stdio};
use common::*;

/// Processes whose command line contains `tag`.
fn processes_with(tag: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(tag))
        .collect()
}

#[test]
fn output_captures_stdout_stderr_and_the_exit_code() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("out");
    // 300 kB on each stream: neither pipe may fill up and stall the other.
    let out = busybox(&id, &root)
        .command([
            "/bin/sh",
            "-c",
            "echo out; echo err >&2; head -c 300000 /dev/zero | tr '\\0' o; head -c 300000 /dev/zero | tr '\\0' e >&2; exit 3",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        out.stdout.starts_with(b"out\nooo"),
        "{:?}",
        &out.stdout[..16]
    );
    assert!(
        out.stderr.starts_with(b"err\neee"),
        "{:?}",
        &out.stderr[..16]
    );
    assert_eq!(out.stdout.len(), 4 + 300000);
    assert_eq!(out.stderr.len(), 4 + 300000);
    assert_no_footprint(root.path(), &id);

    let id = berth_testkit::unique_name("st");
    let st = busybox(&id, &root)
        .command(["/bin/sh", "-c", "exit 7"])
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(7));
    assert_no_footprint(root.path(), &id);
}

#[test]
fn wait_with_output_of_a_spawned_container() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("wwo");
    let c = busybox(&id, &root)
        .command(["/bin/sh", "-c", "echo hi; echo there >&2"])
        .stdout(Stdio::Piped)
        .stderr(Stdio::Piped)
        .spawn()
        .unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"hi\n");
    assert_eq!(out.stderr, b"there\n");
    assert_no_footprint(root.path(), &id);
}

#[test]
fn timeout_kills_the_container_and_leaves_nothing() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("tmo");
    let t = Instant::now();
    let e = busybox(&id, &root)
        .command([
            "/bin/sh",
            "-c",
            &format!("echo started; sleep 100; echo {id}"),
        ])
        .timeout(Duration::from_secs(1))
        .output()
        .unwrap_err();
    let took = t.elapsed();
    let berth::Error::Timeout {
        output, timeout, ..
    } = e
    else {
        panic!("not a timeout: {e}");
    };
    assert_eq!(timeout, Duration::from_secs(1));
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    assert_eq!(output.status.signal(), Some(libc::SIGKILL));
    assert_eq!(output.stdout, b"started\n");
    assert_eq!(processes_with(&id), Vec::<String>::new());
    assert_no_footprint(root.path(), &id);

    // status() and a command that ignores its output pipes.
    let id = berth_testkit::unique_name("tms");
    let t = Instant::now();
    let e = busybox(&id, &root)
        .command([
            "/bin/sh",
            "-c",
            &format!("exec >/dev/null 2>&1; sleep 100; echo {id}"),
        ])
        .timeout(Duration::from_millis(500))
        .status()
        .unwrap_err();
    assert!(matches!(e, berth::Error::Timeout { .. }), "{e}");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(processes_with(&id), Vec::<String>::new());
    assert_no_footprint(root.path(), &id);
}

#[test]
fn signals_are_typed() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("sig");
    let mut c = busybox(&id, &root)
        .command([
            "/bin/sh",
            "-c",
            "trap 'exit 42' USR1; while :; do sleep 0.05; done",
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    c.signal(Signal::SIGUSR1).unwrap();
    let st = c.wait_timeout(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!(st.code(), Some(42));
    c.destroy().unwrap();
}
