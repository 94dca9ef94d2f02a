//! Section 7.4 of the lesson: an execsnoop for one container, in eBPF.
//!
//! The program creates a cgroup (`berth-cgroups`), attaches the exec probe
//! of `berth-ebpf-probes` to it (a tracepoint program that keeps only
//! events whose `bpf_get_current_cgroup_id()` is that cgroup's, sent through
//! a BPF ring buffer), then starts a container born in that cgroup
//! (`berth-namespaces`, `CLONE_INTO_CGROUP`, new pid/UTS/IPC/mount
//! namespaces) and prints its exec events live: pid, comm, filename. While
//! it runs, the program also execs `/bin/echo` *outside* the cgroup: that
//! exec is not reported. With `--stats` it also counts the container's
//! system calls and network bytes (the workload then makes one loopback TCP
//! connection attempt) and prints them at the end. With `--cgroup PATH
//! --seconds N` it attaches to an existing cgroup instead of starting one.
//!
//! Run as root:
//!
//! ```text
//! cargo run -p berth-examples --bin execsnoop
//! cargo run -p berth-examples --bin execsnoop -- --stats
//! cargo run -p berth-examples --bin execsnoop -- --cgroup /sys/fs/cgroup/unified/x --seconds 10
//! ```

use std::process::Command;
use std::time::{Duration, Instant};

use berth_cgroups::CgroupBuilder;
use berth_ebpf_probes::{open_cgroup, ExecEvent, ExecProbe, NetCounter, SyscallCounter};
use berth_namespaces::{Namespaces, Spawner};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// What the container runs: three execs of known binaries.
const WORKLOAD: &str = "/bin/true; /bin/ls / > /dev/null; /bin/cat /proc/sys/kernel/hostname";
/// With `--stats`: also try one TCP connection to a closed port on loopback.
const NET_WORKLOAD: &str = "; echo hello | /bin/busybox nc -w 1 127.0.0.1 9; true";

fn print_event(ev: &ExecEvent) {
    println!(
        "exec  pid={:<7} comm={:<16} filename={}",
        ev.pid, ev.comm, ev.filename
    );
}

fn syscall_name(nr: u32) -> &'static str {
    match i64::from(nr) {
        libc::SYS_read => "read",
        libc::SYS_write => "write",
        libc::SYS_openat => "openat",
        libc::SYS_close => "close",
        libc::SYS_mmap => "mmap",
        libc::SYS_execve => "execve",
        libc::SYS_newfstatat => "newfstatat",
        libc::SYS_rt_sigaction => "rt_sigaction",
        libc::SYS_wait4 => "wait4",
        libc::SYS_connect => "connect",
        libc::SYS_brk => "brk",
        _ => "",
    }
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let stats = args.iter().any(|a| a == "--stats");
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    if let Some(path) = opt("--cgroup") {
        let secs: u64 = opt("--seconds")
            .map(|s| s.parse())
            .transpose()?
            .unwrap_or(10);
        let mut probe = ExecProbe::attach(open_cgroup(path)?)?;
        println!(
            "watching {path} for {secs} s (cgroup id {})",
            probe.cgroup_id()
        );
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            probe
                .read(Duration::from_millis(200))?
                .iter()
                .for_each(print_event);
        }
        return Ok(());
    }

    let cgroup = CgroupBuilder::new(format!("execsnoop-{}", std::process::id())).create()?;
    let fd = open_cgroup(cgroup.path())?;
    let mut probe = ExecProbe::attach(&fd)?;
    let counters = if stats {
        Some((SyscallCounter::attach(&fd)?, NetCounter::attach(&fd)?))
    } else {
        None
    };
    println!(
        "cgroup {} (id {}), exec probe attached",
        cgroup.path().display(),
        probe.cgroup_id()
    );

    let script = if stats {
        format!("{WORKLOAD}{NET_WORKLOAD}")
    } else {
        WORKLOAD.to_string()
    };
    let mut child = Spawner::new(["/bin/sh", "-c", &script])
        .namespaces(Namespaces::PID | Namespaces::UTS | Namespaces::IPC | Namespaces::MOUNT)
        .hostname("snooped")
        .cgroup_path(cgroup.path())
        .spawn()?;
    println!("container started: host pid {}", child.pid());
    // The same kind of exec, outside the cgroup: the probe must not see it.
    let outside = Command::new("/bin/echo")
        .arg("(outside the container)")
        .spawn()?;
    println!("outside: /bin/echo is pid {}", outside.id());
    let outside_pid = outside.id();
    outside.wait_with_output()?;

    let mut events = Vec::new();
    let mut status = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while status.is_none() && Instant::now() < deadline {
        let got = probe.read(Duration::from_millis(100))?;
        got.iter().for_each(print_event);
        events.extend(got);
        status = child.try_wait()?;
    }
    let status = match status {
        Some(s) => s,
        None => {
            child.kill(libc::SIGKILL)?;
            child.wait()?
        }
    };
    let last = probe.read(Duration::from_millis(200))?;
    last.iter().for_each(print_event);
    events.extend(last);
    println!("container exited with {status}");
    let from_outside = events
        .iter()
        .filter(|e| e.pid == outside_pid || e.filename == "/bin/echo")
        .count();
    println!(
        "{} exec events from the container, {from_outside} from outside it, {} lost",
        events.len(),
        probe.lost()?
    );

    if let Some((sys, net)) = counters {
        let mut counts = sys.counts()?;
        counts.sort_by_key(|c| std::cmp::Reverse(c.1));
        println!("syscalls: {} in total; most frequent:", sys.total()?);
        for (nr, n) in counts.iter().take(8) {
            println!("  {nr:>4} {:<14} {n}", syscall_name(*nr));
        }
        let execve = sys.count(libc::SYS_execve as u32)?;
        println!("  execve calls: {execve}");
        let s = net.stats()?;
        println!(
            "network: tx {} bytes in {} packets, rx {} bytes in {} packets",
            s.tx_bytes, s.tx_packets, s.rx_bytes, s.rx_packets
        );
    }
    cgroup.remove()?;
    if from_outside != 0 {
        return Err("the probe reported an exec from outside the cgroup".into());
    }
    Ok(())
}
