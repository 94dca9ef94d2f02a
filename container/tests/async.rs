//! Privileged tier, feature `tokio`: the async API (issue 22 item 2) —
//! output, many waits on one thread, cancel safety, the events stream,
//! exec. Run: `cargo test -p berth --features tokio --test async`.
#![cfg(feature = "tokio")]

mod common;

use std::time::Duration;

use berth::{ContainerEvent, Signal, Stdio};
use common::*;

/// The next event, within 10 s.
async fn next(e: &mut berth::AsyncEvents) -> Option<berth::Result<ContainerEvent>> {
    tokio::time::timeout(Duration::from_secs(10), e.next())
        .await
        .expect("an event within 10 s")
}

/// Processes whose command line contains `tag`.
fn processes_with(tag: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| String::from_utf8_lossy(c).contains(tag))
        .count()
}

/// Threads of this test process.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[tokio::test(flavor = "current_thread")]
async fn async_output_captures_stdout_stderr_and_the_exit_code() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("aout");
    let out = busybox(&id, &root)
        .command([
            "/bin/sh",
            "-c",
            "echo out; echo err >&2; head -c 300000 /dev/zero | tr '\\0' o; exit 3",
        ])
        .output_async()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.starts_with(b"out\nooo"));
    assert_eq!(out.stdout.len(), 4 + 300000);
    assert_eq!(out.stderr, b"err\n");
    assert_no_footprint(root.path(), &id);

    let id2 = berth_testkit::unique_name("ast");
    let st = busybox(&id2, &root)
        .command(["/bin/sh", "-c", "exit 5"])
        .status_async()
        .await
        .unwrap();
    assert_eq!(st.code(), Some(5));
    assert_no_footprint(root.path(), &id2);
}

/// 50 containers awaited at once on a current-thread runtime: the waits
/// are pidfds in the reactor, so the process gains no thread while they
/// are pending.
#[tokio::test(flavor = "current_thread")]
async fn fifty_containers_awaited_concurrently_on_one_thread() {
    berth_testkit::privileged!();
    let root = state_root();
    let mut containers = Vec::new();
    let mut states = Vec::new();
    for i in 0..50 {
        let id = berth_testkit::unique_name(&format!("a50-{i}"));
        let c = busybox(&id, &root)
            .command(["/bin/sleep", "1000"])
            .spawn_async()
            .await
            .unwrap();
        states.push(c.state().clone());
        containers.push(c);
    }
    let before = threads();
    let mut set = tokio::task::JoinSet::new();
    for mut c in containers {
        set.spawn(async move {
            let st = c.wait_async().await.unwrap();
            c.destroy_async().await.unwrap();
            st
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = threads();
    assert_eq!(set.len(), 50);
    assert!(
        set.try_join_next().is_none(),
        "a wait returned while every container still sleeps"
    );
    assert!(
        during <= before,
        "50 pending waits added threads: {before} before, {during} during"
    );
    for s in &states {
        s.signal(Signal::SIGKILL as i32).unwrap();
    }
    let all = tokio::time::timeout(Duration::from_secs(60), async {
        let mut n = 0;
        while let Some(st) = set.join_next().await {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(st.unwrap().signal(), Some(9));
            n += 1;
        }
        n
    })
    .await
    .expect("every wait completes after the kill");
    assert_eq!(all, 50);
    for s in &states {
        assert_no_footprint(root.path(), &s.id);
    }
}

/// `tokio::time::timeout` drops the wait future; the container is intact
/// and `destroy` removes every trace of it.
#[tokio::test(flavor = "current_thread")]
async fn timeout_drops_the_wait_and_destroy_leaves_nothing() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("ato");
    let mut c = busybox(&id, &root)
        .command(["/bin/sleep", "1000"])
        .spawn_async()
        .await
        .unwrap();
    let pid = c.pid();
    let r = tokio::time::timeout(Duration::from_millis(200), c.wait_async()).await;
    assert!(r.is_err(), "the wait should have timed out: {r:?}");
    // Well-defined after the drop: still running, still ours.
    assert!(c.try_wait().unwrap().is_none());
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    c.destroy_async().await.unwrap();
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert_no_footprint(root.path(), &id);

    // A dropped output_async owns its container: dropping it removes it.
    let id2 = berth_testkit::unique_name("ato2");
    let r = tokio::time::timeout(
        Duration::from_millis(1500),
        busybox(&id2, &root)
            .command(["/bin/sleep", "1000"])
            .output_async(),
    )
    .await;
    assert!(r.is_err(), "output_async should have timed out: {r:?}");
    assert_no_footprint(root.path(), &id2);
}

/// The builder's timeout, awaited: killed, removed, `Error::Timeout`.
#[tokio::test(flavor = "current_thread")]
async fn builder_timeout_kills_an_async_output() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("abt");
    let t0 = std::time::Instant::now();
    let r = busybox(&id, &root)
        .command(["/bin/sh", "-c", "echo started; exec sleep 1000"])
        .timeout(Duration::from_millis(500))
        .output_async()
        .await;
    match r {
        Err(berth::Error::Timeout { output, .. }) => {
            assert_eq!(output.stdout, b"started\n")
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_no_footprint(root.path(), &id);
}

#[tokio::test(flavor = "current_thread")]
async fn events_stream_yields_start_pause_resume_and_exit() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("aev");
    let mut c = busybox(&id, &root)
        .command(["/bin/sleep", "1000"])
        .spawn_async()
        .await
        .unwrap();
    let mut events = c.events_async().unwrap();
    assert_eq!(
        next(&mut events).await.unwrap().unwrap(),
        ContainerEvent::Started
    );
    match c.pause() {
        Err(e) => println!("skipping pause/resume events: this host cannot freeze: {e}"),
        Ok(()) => {
            assert_eq!(
                next(&mut events).await.unwrap().unwrap(),
                ContainerEvent::Paused
            );
            c.resume().unwrap();
            assert_eq!(
                next(&mut events).await.unwrap().unwrap(),
                ContainerEvent::Resumed
            );
        }
    }
    // Nothing else is pending: the next event waits, asleep in the
    // reactor (no timer waking the runtime's one thread every few ms).
    let before = own_wakeups();
    assert!(tokio::time::timeout(Duration::from_secs(1), events.next())
        .await
        .is_err());
    let wakeups = own_wakeups() - before;
    assert!(wakeups <= 3, "{wakeups} wake-ups in 1 s of quiet: polling");
    c.kill().unwrap();
    assert_eq!(
        next(&mut events).await.unwrap().unwrap(),
        ContainerEvent::Exited
    );
    assert!(next(&mut events).await.is_none(), "ends after Exited");
    c.wait_async().await.unwrap();
    c.destroy_async().await.unwrap();
    assert_no_footprint(root.path(), &id);
}

#[tokio::test(flavor = "current_thread")]
async fn async_exec_output_status_and_wait() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("aex");
    let mut c = busybox(&id, &root)
        .command(["/bin/sleep", "1000"])
        .hostname("async-host")
        .spawn_async()
        .await
        .unwrap();
    let out = c
        .exec(["/bin/sh", "-c", "hostname; echo err >&2; exit 4"])
        .output_async()
        .await
        .unwrap();
    assert_eq!(out.stdout, b"async-host\n");
    assert_eq!(out.stderr, b"err\n");
    assert_eq!(out.status.code(), Some(4));
    let st = c.exec(["/bin/true"]).status_async().await.unwrap();
    assert!(st.success());
    let mut child = c
        .exec(["/bin/sh", "-c", "echo piped"])
        .stdout(Stdio::Piped)
        .spawn_async()
        .await
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let st = child.wait_async().await.unwrap();
    assert!(st.success());
    let mut s = String::new();
    std::io::Read::read_to_string(&mut out, &mut s).unwrap();
    assert_eq!(s, "piped\n");
    // A dropped exec wait leaves the process to its handle.
    let mut long = c.exec(["/bin/sleep", "1000"]).spawn_async().await.unwrap();
    let pid = long.pid();
    assert!(
        tokio::time::timeout(Duration::from_millis(200), long.wait_async())
            .await
            .is_err()
    );
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    drop(long);
    assert!(!std::path::Path::new(&format!("/proc/{pid}/exe")).exists());
    c.kill().unwrap();
    c.wait_async().await.unwrap();
    c.destroy_async().await.unwrap();
    assert_no_footprint(root.path(), &id);
}

/// A `spawn_async` dropped while the clone and setup run on the blocking
/// pool: the spawn finishes there and the container it made is removed —
/// no process, mount, cgroup or state directory stays. The pool has one
/// thread, so a no-op queued after the drop completes only once the spawn
/// (and the drop of its result) is done.
#[test]
fn dropped_spawn_leaves_nothing() {
    berth_testkit::privileged!();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(1)
        .build()
        .unwrap();
    let root = state_root();
    rt.block_on(async {
        for i in 0..3 {
            let id = berth_testkit::unique_name(&format!("asp{i}"));
            let tag = format!("tag-{id}");
            // Zero: the spawn is dropped at its await point, while it
            // runs on the pool (tokio's timeout polls the future first).
            let r = tokio::time::timeout(
                Duration::ZERO,
                busybox(&id, &root)
                    .command(["/bin/sh", "-c", &format!("sleep 1000; : {tag}")])
                    .spawn_async(),
            )
            .await;
            assert!(r.is_err(), "the spawn finished at its first poll");
            tokio::task::spawn_blocking(|| ()).await.unwrap();
            assert_eq!(processes_with(&tag), 0, "a dropped spawn left its process");
            assert_no_footprint(root.path(), &id);
        }
    });
}

/// Outside a tokio runtime the async stream is an error naming the cause,
/// not a panic in tokio.
#[test]
fn events_async_outside_a_runtime_is_an_error() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("anrt");
    let c = busybox(&id, &root)
        .command(["/bin/sleep", "1000"])
        .spawn()
        .unwrap();
    let e = c.events_async().unwrap_err();
    assert!(e.to_string().contains("tokio"), "{e}");
    c.destroy().unwrap();
    assert_no_footprint(root.path(), &id);
}

/// A network made and removed from async code: the bridge exists between,
/// and nothing of it (link, state) is left after.
#[tokio::test(flavor = "current_thread")]
async fn network_create_and_remove_async() {
    berth_testkit::privileged!();
    let state = tempfile::tempdir().unwrap();
    let name = berth_testkit::unique_name("anet");
    let _link = berth_testkit::Link::adopt(name.clone());
    let net = berth::Network::create(&name)
        .subnet("10.231.77.0/24")
        .masquerade(false)
        .ip_forward(false)
        .state_dir(state.path())
        .create_async()
        .await
        .unwrap();
    assert!(std::path::Path::new(&format!("/sys/class/net/{name}")).exists());
    net.remove_async().await.unwrap();
    assert!(!std::path::Path::new(&format!("/sys/class/net/{name}")).exists());
    let left = berth_testkit::files_left(state.path(), &["nft.lock"]);
    assert!(left.is_empty(), "network state left: {left:?}");
}
