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
