//! The `CLONE_VM | CLONE_VFORK` child runs on a stack mapped once per
//! spawning thread: two spawns of one thread use the same stack, and the
//! mapping is gone from the process once that thread has exited. Observed
//! from inside the child (the address of a local of a plan step, sent over
//! a pipe) and in /proc/self/maps.
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use berth_namespaces::{Namespaces, Spawner, Step};

/// Spawn `/bin/true` in a new uts namespace (the vfork path) with a step
/// that writes the address of one of its locals to a pipe; that address.
fn child_stack_address() -> usize {
    let mut fds = [0; 2];
    // SAFETY: pipe fills two fds, each owned once below.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: fresh fds.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let wfd = w.as_raw_fd();
    let hook = move || {
        let local = 0u8;
        let addr = (&local as *const u8 as usize).to_ne_bytes();
        // SAFETY: write(2) of a local buffer.
        if unsafe { libc::write(wfd, addr.as_ptr().cast(), addr.len()) } == addr.len() as isize {
            Ok(())
        } else {
            Err(libc::EIO)
        }
    };
    // SAFETY: the hook only calls write(2) on stack data.
    let step = unsafe { Step::hook("report a stack address", hook) };
    let st = Spawner::new(["/bin/true"])
        .namespaces(Namespaces::UTS)
        .step(step)
        .status()
        .unwrap();
    assert!(st.success());
    drop(w);
    let mut buf = Vec::new();
    std::fs::File::from(r).read_to_end(&mut buf).unwrap();
    usize::from_ne_bytes(buf.as_slice().try_into().expect("one address"))
}

/// Whether `addr` lies in a mapping of this process.
fn mapped(addr: usize) -> bool {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.split_once('-'))
        .any(|(a, b)| {
            let (a, b) = (
                usize::from_str_radix(a, 16).unwrap(),
                usize::from_str_radix(b, 16).unwrap(),
            );
            (a..b).contains(&addr)
        })
}

#[test]
fn one_stack_per_thread_reused_and_unmapped_at_thread_exit() {
    berth_testkit::privileged!();
    let here = child_stack_address();
    let again = child_stack_address();
    assert_eq!(
        here / 4096,
        again / 4096,
        "second spawn of a thread on another stack"
    );
    assert!(mapped(here), "this thread's stack must stay mapped");

    let there = std::thread::spawn(|| {
        let a = child_stack_address();
        assert!(mapped(a));
        a
    })
    .join()
    .unwrap();
    assert_ne!(here / 4096, there / 4096, "two threads shared a stack");
    assert!(
        !mapped(there),
        "an exited thread's child stack is still mapped"
    );
}
