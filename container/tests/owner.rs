//! Privileged tier: `kill_with_owner` ties a container to the owning
//! process, not to the thread that spawned it (issue 22 item 1).

mod common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use common::*;

/// A pidfd for `pid` (pidfd_open(2), Linux 5.3).
fn pidfd(pid: i32) -> OwnedFd {
    // SAFETY: plain syscall; the fd is owned on success.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    assert!(
        fd >= 0,
        "pidfd_open({pid}): {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: a fresh fd we own.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Whether the process behind `fd` exited within `ms` (a pidfd polls
/// readable once its process has exited).
fn exits_within(fd: &OwnedFd, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, ms) > 0 }
}

#[test]
fn container_outlives_the_thread_that_spawned_it() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("thr");
    // As from tokio's spawn_blocking: a pooled thread spawns, then exits.
    let b = busybox(&id, &root).command(["/bin/sleep", "100"]);
    let mut c = std::thread::spawn(move || b.spawn().unwrap())
        .join()
        .unwrap();
    let fd = pidfd(c.pid());
    assert!(
        !exits_within(&fd, 1000),
        "the container was killed when its spawning thread exited: {:?}",
        c.try_wait()
    );
    assert_eq!(c.try_wait().unwrap(), None);
    c.destroy().unwrap();
    assert!(exits_within(&fd, 0));
}

/// Not a test on its own: the body of the re-executed owner process of
/// `container_dies_with_its_owner_process`.
#[test]
fn owner_process_helper() {
    let Ok(spec) = std::env::var("BERTH_OWNER_HELPER") else {
        return;
    };
    let (root, id) = spec.split_once(':').unwrap();
    let (root, id) = (root.to_string(), id.to_string());
    // Spawned from a thread that exits at once: only the process holds it.
    let c = std::thread::spawn(move || {
        busybox(&id, &tempfile::TempDir::new().unwrap())
            .state_root(root)
            .command(["/bin/sleep", "300"])
            .spawn()
            .unwrap()
    })
    .join()
    .unwrap();
    println!("ready {}", c.pid());
    std::thread::sleep(Duration::from_secs(300));
}

#[test]
fn container_dies_with_its_owner_process() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("own");
    let mut owner = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "owner_process_helper",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            "BERTH_OWNER_HELPER",
            format!("{}:{id}", root.path().display()),
        )
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let pid = loop {
        if let Ok(st) = berth::State::load(Some(root.path()), &id) {
            if let Some(pid) = st.pid {
                break pid;
            }
        }
        assert!(
            Instant::now() < deadline,
            "owner never started the container"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let fd = pidfd(pid);
    // Alive past the helper thread's exit.
    assert!(!exits_within(&fd, 500), "container died with its thread");
    owner.kill().unwrap();
    owner.wait().unwrap();
    assert!(
        exits_within(&fd, 5000),
        "container {pid} still alive 5 s after its owner process was SIGKILLed"
    );
    let r = berth::gc(Some(root.path())).unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(
        footprint(root.path(), &id).state,
        Vec::<std::path::PathBuf>::new()
    );
}
