//! The child side must not allocate or lock: spawn while other threads
//! hammer the allocator (a child inheriting a held malloc lock would hang).
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth_namespaces::{Namespaces, Spawner, Stdio, Step};

#[test]
fn spawn_while_threads_allocate() {
    berth_testkit::privileged!();
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for t in 0..3 {
        let stop = stop.clone();
        workers.push(std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let v: Vec<String> = (0..64).map(|i| format!("{t}-{i}-{n}")).collect();
                let mut b: Vec<Box<[u8]>> = v.iter().map(|s| s.as_bytes().into()).collect();
                b.sort();
                n += b.len() as u64;
            }
            n
        }));
    }
    // A second spawner thread, so spawns also race each other.
    let stop2 = stop.clone();
    let spawner = std::thread::spawn(move || {
        let mut n = 0;
        while !stop2.load(Ordering::Relaxed) {
            let st = Spawner::new(["/bin/busybox", "true"])
                .namespaces(Namespaces::UTS)
                .hostname("t2")
                .stdout(Stdio::Null)
                .status()
                .unwrap();
            assert!(st.success());
            n += 1;
        }
        n
    });
    for i in 0..150 {
        let mut s = Spawner::new(["/bin/busybox", "true"]);
        s.namespaces(Namespaces::PID | Namespaces::IPC | Namespaces::MOUNT)
            .step(Step::make_private("/", true))
            .step(Step::write_file("/proc/self/oom_score_adj", "10"))
            .stdin(Stdio::Null);
        if i % 2 == 0 {
            // A parent hook forces the clone3 (copied memory) path instead of
            // the CLONE_VM fast path: a malloc lock held by another thread at
            // clone time would be held forever in the child's copy.
            s.after_clone(|_| Ok(()));
        }
        let mut child = s.spawn().unwrap_or_else(|e| panic!("spawn {i}: {e}"));
        let st = child
            .wait_timeout(Duration::from_secs(20))
            .unwrap()
            .unwrap_or_else(|| panic!("spawn {i}: child hung (deadlocked after clone?)"));
        assert!(st.success(), "spawn {i}: {st}");
    }
    stop.store(true, Ordering::Relaxed);
    let allocated: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    let parallel = spawner.join().unwrap();
    assert!(allocated > 0 && parallel > 0);
}
