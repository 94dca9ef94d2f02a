//! `parent_death_signal` follows the owning process, not the spawning
//! thread (issue 22 item 1).

use std::time::Duration;

use berth_namespaces::{Namespaces, Spawner, Stdio};

fn spawner(argv: &[&str]) -> Spawner {
    let mut s = Spawner::new(argv);
    s.namespaces(Namespaces::PID | Namespaces::UTS | Namespaces::IPC)
        .stdin(Stdio::Null)
        .parent_death_signal(libc::SIGKILL);
    s
}

#[test]
fn child_outlives_the_spawning_thread() {
    berth_testkit::privileged!();
    let mut child = std::thread::spawn(|| spawner(&["/bin/sleep", "100"]).spawn().unwrap())
        .join()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        child.try_wait().unwrap(),
        None,
        "killed when the thread that spawned it exited"
    );
    child.kill(libc::SIGKILL).unwrap();
    child.wait().unwrap();
}

/// Not a test on its own: the owner process of
/// `parent_death_signal_kills_the_child_when_the_owner_dies`. Spawns from a
/// thread that exits, prints the child's pid, sleeps.
#[test]
fn owner_helper() {
    if std::env::var_os("BERTH_NS_OWNER_HELPER").is_none() {
        return;
    }
    let child = std::thread::spawn(|| spawner(&["/bin/sleep", "300"]).spawn().unwrap())
        .join()
        .unwrap();
    println!("pid {}", child.pid());
    std::thread::sleep(Duration::from_secs(300));
}

#[test]
fn parent_death_signal_kills_the_child_when_the_owner_dies() {
    berth_testkit::privileged!();
    use std::io::BufRead;
    let mut owner = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["owner_helper", "--exact", "--nocapture", "--test-threads=1"])
        .env("BERTH_NS_OWNER_HELPER", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = std::io::BufReader::new(owner.stdout.take().unwrap());
    let pid: i32 = out
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.split("pid ").nth(1).map(|p| p.trim().parse().unwrap()))
        .expect("the owner printed no pid");
    // SAFETY: plain syscall; the fd is ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    assert!(fd >= 0);
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let early = unsafe { libc::poll(&mut p, 1, 500) };
    assert_eq!(early, 0, "the child died with its spawning thread");
    owner.kill().unwrap();
    owner.wait().unwrap();
    // SAFETY: as above.
    let gone = unsafe { libc::poll(&mut p, 1, 5000) };
    // SAFETY: our fd.
    unsafe { libc::close(fd) };
    assert_eq!(gone, 1, "child {pid} outlived its SIGKILLed owner process");
}

#[test]
fn a_spawn_from_a_hook_on_the_owner_thread_does_not_wait_for_itself() {
    berth_testkit::privileged!();
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let mut outer = spawner(&["/bin/true"]);
        outer.after_clone(move |_| {
            // Runs on the owner thread: a nested spawn must not queue behind it.
            let inner = spawner(&["/bin/true"]).spawn()?;
            let _ = tx.send(inner);
            Ok(())
        });
        outer.spawn().unwrap().wait().unwrap()
    });
    let mut inner = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the nested spawn deadlocked");
    assert!(t.join().unwrap().success());
    assert!(inner.wait().unwrap().success());
}

/// The child's `SigBlk` (its blocked signals, proc(5)) when `s` is spawned
/// from a new thread that blocks `SIGUSR1` and `SIGUSR2` first.
fn child_sigblk_from_a_masking_thread(mut s: Spawner) -> u64 {
    std::thread::spawn(move || {
        let mut set = berth_sys::signal::SigSet::empty();
        set.add(berth_sys::signal::Signal::SIGUSR1);
        set.add(berth_sys::signal::Signal::SIGUSR2);
        berth_sys::signal::swap_thread_mask(&set).unwrap();
        let out = s.stdout(Stdio::Piped).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let hex = text.trim().strip_prefix("SigBlk:").unwrap().trim();
        u64::from_str_radix(hex, 16).unwrap()
    })
    .join()
    .unwrap()
}

/// The spawning thread's signal mask is the child's, whether the clone ran
/// on the owner thread (with a parent-death signal: the mask is carried
/// over there and put back after) or on the calling thread (the
/// `CLONE_VM` path blocks every signal around the clone and the child
/// restores the caller's mask before `execve`).
#[test]
fn the_callers_signal_mask_reaches_the_child() {
    berth_testkit::privileged!();
    let usr = 1u64 << (libc::SIGUSR1 - 1) | 1u64 << (libc::SIGUSR2 - 1);
    let argv = ["/bin/busybox", "grep", "SigBlk", "/proc/self/status"];
    let on_owner = child_sigblk_from_a_masking_thread(spawner(&argv));
    assert_eq!(on_owner, usr, "spawned on the owner thread: {on_owner:#x}");
    let mut here = Spawner::new(argv);
    here.namespaces(Namespaces::UTS).stdin(Stdio::Null);
    let here = child_sigblk_from_a_masking_thread(here);
    assert_eq!(here, usr, "spawned on the calling thread: {here:#x}");
}
