//! Privileged tests of the per-cgroup probes: each effect is produced by a
//! child inside a test cgroup and compared with what happens outside.

mod common;

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::time::Duration;

use berth_ebpf_probes::{ExecProbe, NetCounter, SyscallCounter};
use common::{run_in_cgroup, test_cgroup};

/// Fork a child that enters the cgroup and execs `path` (`argv[0]` = path).
fn exec_in_cgroup(cg: &common::TestCgroup, path: &CString) -> (i32, i32) {
    let argv = [path.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null::<libc::c_char>()];
    run_in_cgroup(cg, || {
        // SAFETY: valid NULL-terminated argv/envp.
        unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        99
    })
}

fn true_path() -> CString {
    let p = ["/bin/true", "/usr/bin/true"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("true(1) not found");
    CString::new(p).unwrap()
}

#[test]
fn exec_probe_sees_exactly_the_execs_inside_its_cgroup() {
    berth_testkit::privileged!();
    let cg = test_cgroup("bexe");
    let mut probe = ExecProbe::attach(&cg.fd).unwrap();
    let t = true_path();
    let mut inside = Vec::new();
    for _ in 0..3 {
        let (pid, code) = exec_in_cgroup(&cg, &t);
        assert_eq!(code, 0);
        inside.push(pid as u32);
        // Execs outside the cgroup, interleaved, must not be reported.
        assert!(std::process::Command::new(t.to_str().unwrap())
            .status()
            .unwrap()
            .success());
    }
    let mut events = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while events.len() < 3 && std::time::Instant::now() < deadline {
        events.extend(probe.read(Duration::from_millis(200)).unwrap());
    }
    // Anything late would show up here.
    std::thread::sleep(Duration::from_millis(100));
    events.extend(probe.drain());
    assert_eq!(events.len(), 3, "{events:#?}");
    for (ev, pid) in events.iter().zip(&inside) {
        assert_eq!(ev.pid, *pid);
        assert_eq!(ev.old_pid, *pid);
        assert_eq!(ev.filename, t.to_str().unwrap());
        assert_eq!(ev.comm, "true");
        assert!(ev.timestamp_ns > 0);
    }
    assert!(events
        .windows(2)
        .all(|w| w[0].timestamp_ns <= w[1].timestamp_ns));
    probe.detach().unwrap();
}

#[test]
fn syscall_counter_counts_only_its_cgroup() {
    berth_testkit::privileged!();
    let cg = test_cgroup("bsys");
    let counter = SyscallCounter::attach(&cg.fd).unwrap();
    let nr = libc::SYS_getppid as u32;
    let (_, code) = run_in_cgroup(&cg, || {
        for _ in 0..1000 {
            // SAFETY: getppid cannot fail.
            unsafe { libc::getppid() };
        }
        0
    });
    assert_eq!(code, 0);
    // Calls outside the cgroup (this process) are not counted.
    for _ in 0..500 {
        // SAFETY: as above.
        unsafe { libc::getppid() };
    }
    assert_eq!(counter.count(nr).unwrap(), 1000);
    // The child's only other call was exit_group.
    let counts = counter.counts().unwrap();
    let mut expected = vec![(libc::SYS_exit_group as u32, 1), (nr, 1000)];
    expected.sort_unstable();
    assert_eq!(counts, expected);
    assert_eq!(counter.total().unwrap(), 1001);
    counter.detach().unwrap();
}

#[test]
fn net_counter_matches_datagrams_in_a_test_netns() {
    berth_testkit::privileged!();
    let cg = test_cgroup("bnet");
    let ns = berth_testkit::Netns::new();
    let nsfile = std::fs::File::open(ns.path()).unwrap();
    let nsfd = nsfile.as_raw_fd();
    let net = NetCounter::attach(&cg.fd).unwrap();
    const N: usize = 25;
    const PAYLOAD: usize = 300;
    let (_, code) = run_in_cgroup(&cg, || {
        // Raw syscalls only (forked from a multi-threaded parent).
        // SAFETY: plain socket calls on local buffers; loopback of our own netns.
        unsafe {
            if libc::setns(nsfd, libc::CLONE_NEWNET) != 0 {
                return 40;
            }
            let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
            if s < 0 {
                return 41;
            }
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::AF_INET as u16;
            addr.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
            let alen = std::mem::size_of::<libc::sockaddr_in>() as u32;
            if libc::bind(s, (&addr as *const libc::sockaddr_in).cast(), alen) != 0 {
                return 42;
            }
            let mut len = alen;
            if libc::getsockname(s, (&mut addr as *mut libc::sockaddr_in).cast(), &mut len) != 0 {
                return 43;
            }
            let buf = [7u8; PAYLOAD];
            let mut rbuf = [0u8; 2048];
            for _ in 0..N {
                let n = libc::sendto(
                    s,
                    buf.as_ptr().cast(),
                    PAYLOAD,
                    0,
                    (&addr as *const libc::sockaddr_in).cast(),
                    alen,
                );
                if n != PAYLOAD as isize {
                    return 44;
                }
                if libc::recv(s, rbuf.as_mut_ptr().cast(), rbuf.len(), 0) != PAYLOAD as isize {
                    return 45;
                }
            }
            libc::close(s);
        }
        0
    });
    assert_eq!(code, 0);
    let st = net.stats().unwrap();
    // Each datagram: 20-byte IPv4 header + 8-byte UDP header + payload.
    let bytes = (N * (PAYLOAD + 28)) as u64;
    assert_eq!(st.tx_packets, N as u64, "{st:?}");
    assert_eq!(st.tx_bytes, bytes, "{st:?}");
    assert_eq!(st.rx_packets, N as u64, "{st:?}");
    assert_eq!(st.rx_bytes, bytes, "{st:?}");
    net.detach().unwrap();
}

#[test]
fn run_time_stats_count_probe_runs() {
    berth_testkit::privileged!();
    let cg = test_cgroup("bsta");
    let mut probe = ExecProbe::attach(&cg.fd).unwrap();
    let stats = berth_ebpf_probes::sys::enable_run_time_stats().unwrap();
    let (before, _) = probe.program().run_stats().unwrap();
    let t = true_path();
    for _ in 0..3 {
        assert_eq!(exec_in_cgroup(&cg, &t).1, 0);
    }
    // The program runs on every exec on the host (it filters by cgroup
    // inside), so at least our three.
    let (after, ns) = probe.program().run_stats().unwrap();
    assert!(after >= before + 3, "{before} -> {after}");
    assert!(ns > 0);
    drop(stats);
    assert_eq!(probe.read(Duration::from_secs(5)).unwrap().len(), 3);
}

#[test]
fn exec_probe_counts_events_lost_to_a_full_buffer() {
    berth_testkit::privileged!();
    let cg = test_cgroup("blos");
    let id = berth_ebpf_probes::cgroup_id(&cg.fd).unwrap();
    // One page: 4096 bytes hold 13 records of 304 bytes (8-byte header each).
    let mut probe = ExecProbe::attach_id_with_buffer(id, 4096).unwrap();
    let t = true_path();
    for _ in 0..20 {
        assert_eq!(exec_in_cgroup(&cg, &t).1, 0);
    }
    let got = probe.drain().len() as u64;
    let lost = probe.lost().unwrap();
    assert_eq!(got + lost, 20, "got {got}, lost {lost}");
    assert!(lost > 0 && got > 0, "got {got}, lost {lost}");
    // Once drained, the buffer takes events again.
    assert_eq!(exec_in_cgroup(&cg, &t).1, 0);
    assert_eq!(probe.drain().len(), 1);
    assert_eq!(probe.lost().unwrap(), lost);
}
