//! Privileged tier: the escape battery. Every attempt runs *inside* a
//! container this test made (never on the host): the test binary re-executes
//! itself in a default (root-in-container) container on `Rootfs::host()`
//! and one of the `probe_*` functions below, selected by the test-name
//! filter and enabled by `BERTH_ESCAPE_INSIDE=1`, runs raw syscalls and
//! prints one `ROW|name|denied|detail` line per attempt. The host side
//! prints the rows as a table and asserts every one was denied.
//!
//! Positive controls keep the battery honest: the same probe binary opens a
//! raw socket in a default container (Docker's default set keeps
//! `NET_RAW`), which must succeed, before the `cap_drop NET_RAW` row must fail.

mod common;

use std::ffi::CString;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use berth::{Container, Mount, Rootfs, Stdio};
use common::*;

const INSIDE: &str = "BERTH_ESCAPE_INSIDE";

// ---------------------------------------------------------------- inside --

fn inside() -> bool {
    std::env::var(INSIDE).as_deref() == Ok("1")
}

fn var(k: &str) -> String {
    std::env::var(k).unwrap_or_default()
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn ename(e: i32) -> String {
    let s = std::io::Error::from_raw_os_error(e).to_string();
    format!("errno {e} ({s})")
}

fn row(name: &str, denied: bool, detail: &str) {
    println!("ROW|{name}|{}|{detail}", if denied { 1 } else { 0 });
}

/// Run `f` in a forked, single-threaded child (unshare(CLONE_NEWUSER) is
/// EINVAL in a threaded process, which would be a false "denied"); returns
/// `Ok(())` when the syscall succeeded, `Err(errno)` otherwise.
fn forked(f: impl FnOnce() -> libc::c_long) -> Result<(), i32> {
    // SAFETY: the child only makes raw syscalls and calls _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        let r = f();
        let code = if r < 0 { errno().clamp(1, 254) } else { 0 };
        // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
        unsafe { libc::_exit(code) };
    }
    let mut st = 0;
    // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    assert!(libc::WIFEXITED(st), "probe child died: {st:#x}");
    match libc::WEXITSTATUS(st) {
        0 => Ok(()),
        e => Err(e),
    }
}

/// A syscall attempt that must fail with one of `want` (EPERM is what both
/// a missing capability and Docker's seccomp profile return; an argument
/// error would mean the call got past both, so it does not count).
fn sys_row(name: &str, want: &[i32], f: impl FnOnce() -> libc::c_long) {
    match forked(f) {
        Ok(()) => row(name, false, "SUCCEEDED"),
        Err(e) => row(name, want.contains(&e), &ename(e)),
    }
}

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn probe_raw_socket(name: &str, want_denied: bool) {
    // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
    let res = if fd >= 0 {
        // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
        unsafe { libc::close(fd) };
        Ok(())
    } else {
        Err(errno())
    };
    match (res, want_denied) {
        (Ok(()), true) => row(name, false, "raw socket opened"),
        (Err(e), true) => row(name, e == libc::EPERM, &ename(e)),
        // The control row: "denied" here means "behaved as required".
        (Ok(()), false) => row(name, true, "control: opened as expected"),
        (Err(e), false) => row(name, false, &format!("control failed: {}", ename(e))),
    }
}

fn probe_fds_and_cwd(tag: &str) {
    let mut extra = Vec::new();
    let dir = std::fs::read_dir("/proc/self/fd").unwrap();
    for e in dir.flatten() {
        let n: i32 = e.file_name().to_string_lossy().parse().unwrap_or(-1);
        if n > 2 {
            if let Ok(t) = std::fs::read_link(e.path()) {
                // read_dir's own directory fd shows as /proc/<pid>/fd.
                let t = t.to_string_lossy().into_owned();
                if !(t.starts_with("/proc/") && t.ends_with("/fd")) {
                    extra.push(format!("{n}->{t}"));
                }
            }
        }
    }
    row(
        &format!("{tag}: no host fd leaked (CVE-2024-21626)"),
        extra.is_empty(),
        &if extra.is_empty() {
            "only stdio open".to_string()
        } else {
            extra.join(" ")
        },
    );
    let link = std::fs::read_link("/proc/self/cwd")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|e| format!("error {e}"));
    let cwd = std::env::current_dir();
    let ok = cwd.is_ok() && !link.contains("(unreachable)") && !link.starts_with("error");
    row(
        &format!("{tag}: cwd inside the container (CVE-2024-21626)"),
        ok,
        &format!("cwd {link}"),
    );
}

fn walk_release_agents(dir: &Path, depth: u32, out: &mut Vec<std::path::PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let n = e.file_name();
        if n == "release_agent" || n == "notify_on_release" {
            out.push(p);
        } else if depth > 0 && e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            walk_release_agents(&p, depth - 1, out);
        }
    }
}

fn battery() {
    let host_pid: i32 = var("ESC_HOST_PID").parse().unwrap();
    let victim_pid: i32 = var("ESC_VICTIM_PID").parse().unwrap();
    let _ = std::fs::create_dir_all("/tmp/esc");

    let (src, tgt, fst) = (c("none"), c("/tmp/esc"), c("tmpfs"));
    // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
    sys_row("mount(2) a tmpfs", &[libc::EPERM], || unsafe {
        libc::syscall(
            libc::SYS_mount,
            src.as_ptr(),
            tgt.as_ptr(),
            fst.as_ptr(),
            0,
            0,
        )
    });

    sys_row(
        "unshare(CLONE_NEWUSER)",
        &[libc::EPERM, libc::ENOSPC, libc::EUSERS],
        // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
        || unsafe { libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER) },
    );
    sys_row(
        "unshare(CLONE_NEWNS + CLONE_NEWCGROUP)",
        &[libc::EPERM],
        // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
        || unsafe { libc::syscall(libc::SYS_unshare, libc::CLONE_NEWNS | libc::CLONE_NEWCGROUP) },
    );

    // setns into pid 1's (the container init's) mount namespace: needs
    // CAP_SYS_ADMIN. A host process's namespaces are not even reachable.
    let p1 = c("/proc/1/ns/mnt");
    // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
    sys_row("setns(/proc/1/ns/mnt)", &[libc::EPERM], || unsafe {
        let fd = libc::open(p1.as_ptr(), libc::O_RDONLY);
        if fd < 0 {
            return -1;
        }
        libc::syscall(libc::SYS_setns, fd, 0)
    });
    let other = c(&format!("/proc/{victim_pid}/ns/net"));
    sys_row(
        "setns(another container's netns by host pid)",
        &[libc::ENOENT, libc::EPERM, libc::EACCES],
        // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
        || unsafe {
            let fd = libc::open(other.as_ptr(), libc::O_RDONLY);
            if fd < 0 {
                return -1;
            }
            libc::syscall(libc::SYS_setns, fd, 0)
        },
    );

    // Never write anything: opening for writing is the attempt.
    match std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/sysrq-trigger")
    {
        Ok(_) => row("open /proc/sysrq-trigger for writing", false, "OPENED"),
        Err(e) => row("open /proc/sysrq-trigger for writing", true, &e.to_string()),
    }

    match std::fs::File::open("/proc/kcore") {
        Err(e) => row("read /proc/kcore", true, &e.to_string()),
        Ok(mut f) => {
            let mut b = [0u8; 64];
            match f.read(&mut b) {
                Ok(0) => row("read /proc/kcore", true, "masked: 0 bytes"),
                Ok(n) => row("read /proc/kcore", false, &format!("read {n} bytes")),
                Err(e) => row("read /proc/kcore", true, &e.to_string()),
            }
        }
    }

    match std::fs::read_dir("/sys/firmware") {
        Err(e) => row("list /sys/firmware", true, &e.to_string()),
        Ok(rd) => {
            let v: Vec<_> = rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            row(
                "list /sys/firmware",
                v.is_empty(),
                &format!("{} entries {v:?}", v.len()),
            );
        }
    }

    let (maj, min) = var("ESC_BLKDEV")
        .split_once(':')
        .map_or((7, 0), |(a, b)| (a.parse().unwrap(), b.parse().unwrap()));
    let node = c("/tmp/esc-blk");
    // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
    let r = unsafe {
        libc::mknod(
            node.as_ptr(),
            libc::S_IFBLK | 0o600,
            libc::makedev(maj, min),
        )
    };
    let name = format!("mknod + open block device {maj}:{min}");
    if r < 0 {
        row(&name, true, &format!("mknod: {}", ename(errno())));
    } else {
        // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
        let fd = unsafe { libc::open(node.as_ptr(), libc::O_RDONLY) };
        if fd >= 0 {
            // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
            unsafe { libc::close(fd) };
            row(&name, false, "mknod ok, OPENED");
        } else {
            row(&name, true, &format!("mknod ok, open: {}", ename(errno())));
        }
    }

    let empty = c("");
    // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
    sys_row("init_module", &[libc::EPERM], || unsafe {
        libc::syscall(libc::SYS_init_module, 0usize, 0usize, empty.as_ptr())
    });
    let devnull = c("/dev/null");
    // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
    sys_row("finit_module(/dev/null)", &[libc::EPERM], || unsafe {
        let fd = libc::open(devnull.as_ptr(), libc::O_RDONLY);
        libc::syscall(libc::SYS_finit_module, fd, empty.as_ptr(), 0)
    });
    // Invalid flags: were it allowed, the kernel would say EINVAL.
    // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
    sys_row("kexec_load", &[libc::EPERM], || unsafe {
        libc::syscall(
            libc::SYS_kexec_load,
            0usize,
            0usize,
            0usize,
            0xdead_0000usize,
        )
    });
    // cmd 0 is invalid: were it allowed, the kernel would say EINVAL.
    // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
    sys_row("reboot", &[libc::EPERM], || unsafe {
        libc::syscall(
            libc::SYS_reboot,
            libc::LINUX_REBOOT_MAGIC1,
            libc::LINUX_REBOOT_MAGIC2,
            0,
            0usize,
        )
    });
    // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
    sys_row("swapon(/dev/null)", &[libc::EPERM], || unsafe {
        libc::syscall(libc::SYS_swapon, devnull.as_ptr(), 0)
    });
    // An invalid timespec: were it allowed, the kernel would say EINVAL.
    // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
    sys_row("clock_settime(CLOCK_REALTIME)", &[libc::EPERM], || unsafe {
        let ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 2_000_000_000,
        };
        libc::syscall(libc::SYS_clock_settime, libc::CLOCK_REALTIME, &ts)
    });
    let (kt, kd) = (c("user"), c("berth-escape"));
    // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
    sys_row("add_key", &[libc::EPERM], || unsafe {
        libc::syscall(
            libc::SYS_add_key,
            kt.as_ptr(),
            kd.as_ptr(),
            kd.as_ptr(),
            3usize,
            -2i32, // KEY_SPEC_PROCESS_KEYRING
        )
    });
    // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
    sys_row("keyctl(GET_KEYRING_ID)", &[libc::EPERM], || unsafe {
        libc::syscall(libc::SYS_keyctl, 0, -3i32, 0)
    });
    // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
    sys_row("bpf(BPF_MAP_CREATE)", &[libc::EPERM], || unsafe {
        let attr = [0u8; 128];
        libc::syscall(libc::SYS_bpf, 0, attr.as_ptr(), attr.len())
    });
    // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
    sys_row("perf_event_open", &[libc::EPERM, libc::EACCES], || unsafe {
        let mut attr = [0u8; 128];
        attr[4..8].copy_from_slice(&128u32.to_ne_bytes());
        libc::syscall(libc::SYS_perf_event_open, attr.as_ptr(), 0, -1, -1, 0)
    });
    // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
    sys_row("userfaultfd", &[libc::EPERM], || unsafe {
        libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC)
    });
    let root = c("/");
    // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
    sys_row("open_by_handle_at (shocker)", &[libc::EPERM], || unsafe {
        let mfd = libc::open(root.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
        // struct file_handle { u32 handle_bytes; i32 handle_type; u8 f_handle[] }
        // with the root inode of an ext4 filesystem (ino 2, generation 0).
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&8u32.to_ne_bytes());
        h[4..8].copy_from_slice(&1i32.to_ne_bytes());
        h[8..12].copy_from_slice(&2u32.to_ne_bytes());
        libc::syscall(
            libc::SYS_open_by_handle_at,
            mfd,
            h.as_mut_ptr(),
            libc::O_RDONLY,
        )
    });
    sys_row(
        &format!("ptrace(PTRACE_SEIZE) host pid {host_pid}"),
        &[libc::ESRCH, libc::EPERM],
        // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
        || unsafe { libc::syscall(libc::SYS_ptrace, libc::PTRACE_SEIZE, host_pid, 0, 0) },
    );
    sys_row(
        &format!("kill(host pid {host_pid}, 0)"),
        &[libc::ESRCH],
        // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
        || unsafe { libc::syscall(libc::SYS_kill, host_pid, 0) },
    );

    // CVE-2022-0492: a cgroup v1 mount (for release_agent) needs
    // CAP_SYS_ADMIN; any release_agent/notify_on_release file visible must
    // not be writable.
    let _ = std::fs::create_dir_all("/tmp/esc-cg");
    let (cgs, cgt, cgo) = (c("cgroup"), c("/tmp/esc-cg"), c("rdma"));
    sys_row(
        "mount cgroup v1 (release_agent)",
        &[libc::EPERM],
        // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
        || unsafe {
            libc::syscall(
                libc::SYS_mount,
                cgs.as_ptr(),
                cgt.as_ptr(),
                cgs.as_ptr(),
                0,
                cgo.as_ptr(),
            )
        },
    );
    let mut agents = Vec::new();
    walk_release_agents(Path::new("/sys/fs/cgroup"), 2, &mut agents);
    let writable: Vec<_> = agents
        .iter()
        .filter(|p| std::fs::OpenOptions::new().write(true).open(p).is_ok())
        .collect();
    row(
        "write release_agent/notify_on_release",
        writable.is_empty(),
        &format!(
            "{} such files visible, {} writable",
            agents.len(),
            writable.len()
        ),
    );
    // The container's own cgroup files are read-only (ro /sys).
    match std::fs::OpenOptions::new()
        .write(true)
        .open("/sys/fs/cgroup/cgroup.procs")
    {
        Ok(_) => row("write /sys/fs/cgroup/cgroup.procs", false, "OPENED"),
        Err(e) => row("write /sys/fs/cgroup/cgroup.procs", true, &e.to_string()),
    }

    // Another container's files through /proc: its host pid and every pid
    // visible here.
    let secret = var("ESC_SECRET");
    let rel = var("ESC_SECRET_PATH");
    let mut found = Vec::new();
    let mut paths = vec![format!("/proc/{victim_pid}/root{rel}")];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.chars().all(|c| c.is_ascii_digit()) {
            paths.push(format!("/proc/{n}/root{rel}"));
        }
    }
    for p in &paths {
        if let Ok(s) = std::fs::read_to_string(p) {
            if s.contains(&secret) {
                found.push(p.clone());
            }
        }
    }
    row(
        "read another container's file via /proc/<pid>/root",
        found.is_empty(),
        &format!("tried {} paths, found {found:?}", paths.len()),
    );

    probe_raw_socket("raw socket with default caps (control)", false);
    probe_fds_and_cwd("init");
}

/// CVE-2019-5736 class: while the host runs `exec` into this container,
/// watch for the exec'd process before its `execve` (it then still runs
/// the host's binary) and try to reach that binary through
/// `/proc/<pid>/exe`. Never writes anything.
fn watch_exe(dur: Duration) {
    let want: (u64, u64) = {
        let v = var("ESC_EXE_DEVINO");
        let (d, i) = v.split_once(':').unwrap();
        (d.parse().unwrap(), i.parse().unwrap())
    };
    let me = std::process::id().to_string();
    let mut seen = std::collections::BTreeSet::new();
    let (mut opened, mut host_binary, mut writable) = (0, 0, 0);
    let end = Instant::now() + dur;
    while Instant::now() < end {
        let Ok(rd) = std::fs::read_dir("/proc") else {
            continue;
        };
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n == "1" || n == me || !n.chars().all(|c| c.is_ascii_digit()) {
                continue;
            }
            seen.insert(n.clone());
            let p = c(&format!("/proc/{n}/exe"));
            // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
            let fd = unsafe { libc::open(p.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
            if fd < 0 {
                continue;
            }
            opened += 1;
            // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
            unsafe { libc::fstat(fd, &mut st) };
            if (st.st_dev, st.st_ino) == want {
                host_binary += 1;
                // The runc attack reopens it for writing through the fd.
                let again = c(&format!("/proc/self/fd/{fd}"));
                // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
                let w = unsafe { libc::open(again.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
                if w >= 0 {
                    writable += 1;
                    // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
                    unsafe { libc::close(w) };
                }
            }
            // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
            unsafe { libc::close(fd) };
        }
    }
    row(
        "reach the runtime's binary via /proc/<pid>/exe during exec (CVE-2019-5736)",
        host_binary == 0 && writable == 0,
        &format!(
            "{} exec'd pids seen, {opened} exe opened (after execve), {host_binary} were the host binary, {writable} writable",
            seen.len()
        ),
    );
}

/// Inside the prober container: the battery, then the exec watcher.
#[test]
fn probe_serve() {
    if !inside() {
        return;
    }
    if var("ESC_SET") == "nonetraw" {
        probe_raw_socket("raw socket after cap_drop NET_RAW", true);
        return;
    }
    battery();
    println!("WATCH");
    watch_exe(Duration::from_secs(4));
    println!("DONE");
    // Stay alive for the exec probes; the host destroys us.
    std::thread::sleep(Duration::from_secs(120));
}

/// Inside, via `exec` or as a container's command: fds and cwd.
#[test]
fn probe_exec_fds() {
    if !inside() {
        return;
    }
    probe_fds_and_cwd(&var("ESC_TAG"));
}

// ------------------------------------------------------------------ host --

fn probe_argv(test: &str) -> Vec<String> {
    vec![
        std::env::current_exe()
            .unwrap()
            .to_string_lossy()
            .into_owned(),
        test.into(),
        "--exact".into(),
        "--nocapture".into(),
        "--test-threads=1".into(),
        "-q".into(),
    ]
}

fn rows_of(out: &str) -> Vec<(String, bool, String)> {
    out.lines()
        .filter_map(|l| l.strip_prefix("ROW|"))
        .map(|l| {
            let mut it = l.splitn(3, '|');
            let n = it.next().unwrap().to_string();
            let d = it.next().unwrap() == "1";
            (n, d, it.next().unwrap_or("").to_string())
        })
        .collect()
}

fn print_table(rows: &[(String, bool, String)]) {
    println!("\n{:<72} {:<7} detail", "escape attempt", "result");
    println!("{}", "-".repeat(120));
    for (n, d, det) in rows {
        println!("{n:<72} {:<7} {det}", if *d { "DENIED" } else { "ESCAPED" });
    }
    println!();
}

/// A host block device (major:minor) for the mknod attempt.
trait StatusLike {
    fn status_like(self) -> String;
}

impl StatusLike for berth::ContainerBuilder {
    /// Spawn, wait, destroy; a short description of what happened.
    fn status_like(self) -> String {
        match self.stdout(Stdio::Null).stderr(Stdio::Null).spawn() {
            Err(e) => format!("refused: {e}"),
            Ok(mut c) => {
                let st = c.wait().unwrap();
                c.destroy().unwrap();
                format!("ran: {st}")
            }
        }
    }
}

fn host_block_device() -> String {
    std::fs::read_dir("/sys/block")
        .ok()
        .and_then(|rd| {
            let mut v: Vec<_> = rd.flatten().map(|e| e.path()).collect();
            v.sort();
            // Prefer a real disk over loop devices.
            v.sort_by_key(|p| p.to_string_lossy().contains("loop"));
            v.into_iter()
                .find_map(|p| std::fs::read_to_string(p.join("dev")).ok())
        })
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "7:0".into())
}

#[test]
fn escape_battery() {
    berth_testkit::privileged!();
    let root = state_root();
    let exe = std::env::current_exe().unwrap();
    let md = std::fs::metadata(&exe).unwrap();

    // A host process the container will try to ptrace and signal.
    let mut host_proc = std::process::Command::new("sleep")
        .arg("120")
        .spawn()
        .unwrap();

    // The victim: another container with a secret in its private tmpfs.
    let secret = format!("TOPSECRET-{}", berth_testkit::unique_name("s"));
    let vid = berth_testkit::unique_name("escv");
    let victim = busybox(&vid, &root)
        .mount(Mount::tmpfs("/secret"))
        .command([
            "/bin/sh",
            "-c",
            &format!("echo {secret} > /secret/s; exec sleep 120"),
        ])
        .spawn()
        .unwrap();
    let vpid = victim.pid();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(format!("/proc/{vpid}/root/secret/s"))
        .map_or(true, |s| !s.contains(&secret))
    {
        assert!(Instant::now() < deadline, "victim never wrote its secret");
        std::thread::sleep(Duration::from_millis(20));
    }

    // A host directory fd deliberately left inheritable (no O_CLOEXEC), the
    // way runc leaked one: berth must not pass it on to init or exec.
    let leak_dir = tempfile::TempDir::new().unwrap();
    let cpath = CString::new(leak_dir.path().to_str().unwrap()).unwrap();
    // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
    let leaked = unsafe { libc::open(cpath.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
    assert!(leaked > 2);

    let id = berth_testkit::unique_name("escp");
    let mut prober = Container::builder(&id)
        .rootfs(Rootfs::host())
        .state_root(root.path())
        .stdin(Stdio::Null)
        .stdout(Stdio::Piped)
        .stderr(Stdio::Inherit)
        .env(INSIDE, "1")
        .env("ESC_HOST_PID", host_proc.id().to_string())
        .env("ESC_VICTIM_PID", vpid.to_string())
        .env("ESC_BLKDEV", host_block_device())
        .env("ESC_EXE_DEVINO", format!("{}:{}", md.dev(), md.ino()))
        .env("ESC_SECRET", &secret)
        .env("ESC_SECRET_PATH", "/secret/s")
        .env("ESC_TAG", "exec")
        .command(probe_argv("probe_serve"))
        .spawn()
        .unwrap();
    let mut out = BufReader::new(prober.stdout.take().unwrap());
    let mut text = String::new();
    loop {
        let mut l = String::new();
        assert!(
            out.read_line(&mut l).unwrap() > 0,
            "prober ended early:\n{text}"
        );
        text.push_str(&l);
        if l.trim() == "WATCH" {
            break;
        }
    }
    // Exec into the container repeatedly while it watches /proc.
    let mut execs = 0;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(3000) {
        let st = prober
            .exec(["/bin/true"])
            .stdout(Stdio::Null)
            .stderr(Stdio::Null)
            .status()
            .unwrap();
        assert!(st.success());
        execs += 1;
    }
    loop {
        let mut l = String::new();
        assert!(
            out.read_line(&mut l).unwrap() > 0,
            "prober ended early:\n{text}"
        );
        text.push_str(&l);
        if l.trim() == "DONE" {
            break;
        }
    }
    // CVE-2024-21626: the exec'd process (same leaked fd still open here).
    let o = prober
        .exec(probe_argv("probe_exec_fds"))
        .stdout(Stdio::Piped)
        .stderr(Stdio::Null)
        .output()
        .unwrap();
    text.push_str(&String::from_utf8_lossy(&o.stdout));
    prober.destroy().unwrap();

    // The runc exploit's own shape: cwd set to /proc/self/fd/<leaked fd>.
    let id2 = berth_testkit::unique_name("escw");
    let r = Container::builder(&id2)
        .rootfs(Rootfs::host())
        .state_root(root.path())
        .stdin(Stdio::Null)
        .stdout(Stdio::Piped)
        .stderr(Stdio::Null)
        .env(INSIDE, "1")
        .env("ESC_TAG", format!("cwd=/proc/self/fd/{leaked}"))
        .current_dir(format!("/proc/self/fd/{leaked}"))
        .command(probe_argv("probe_exec_fds"))
        .spawn();
    match r {
        Err(e) => text.push_str(&format!(
            "ROW|spawn with cwd /proc/self/fd/{leaked} (CVE-2024-21626)|1|refused: {e}\n"
        )),
        Ok(mut c2) => {
            let mut s = String::new();
            c2.stdout.take().unwrap().read_to_string(&mut s).unwrap();
            c2.wait().unwrap();
            c2.destroy().unwrap();
            text.push_str(&s);
        }
    }

    // Raw socket after cap_drop NET_RAW.
    let id3 = berth_testkit::unique_name("escr");
    let mut c3 = Container::builder(&id3)
        .rootfs(Rootfs::host())
        .state_root(root.path())
        .stdin(Stdio::Null)
        .stdout(Stdio::Piped)
        .stderr(Stdio::Inherit)
        .env(INSIDE, "1")
        .env("ESC_SET", "nonetraw")
        .cap_drop("NET_RAW")
        .command(probe_argv("probe_serve"))
        .spawn()
        .unwrap();
    let mut s = String::new();
    c3.stdout.take().unwrap().read_to_string(&mut s).unwrap();
    c3.wait().unwrap();
    c3.destroy().unwrap();
    text.push_str(&s);
    // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.

    unsafe { libc::close(leaked) };
    victim.destroy().unwrap();
    host_proc.kill().unwrap();
    host_proc.wait().unwrap();

    let rows = rows_of(&text);
    print_table(&rows);
    println!("{execs} execs ran during the /proc/<pid>/exe watch");
    let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    for must in [
        "mount(2) a tmpfs",
        "unshare(CLONE_NEWUSER)",
        "read /proc/kcore",
        "list /sys/firmware",
        "bpf(BPF_MAP_CREATE)",
        "raw socket after cap_drop NET_RAW",
        "raw socket with default caps (control)",
        "exec: no host fd leaked (CVE-2024-21626)",
        "init: cwd inside the container (CVE-2024-21626)",
    ] {
        assert!(names.contains(&must), "row {must:?} missing:\n{text}");
    }
    assert!(rows.len() >= 30, "only {} rows:\n{text}", rows.len());
    let escaped: Vec<_> = rows.iter().filter(|r| !r.1).collect();
    assert!(escaped.is_empty(), "not denied: {escaped:#?}");
    assert!(execs >= 5, "only {execs} execs");
}

/// CVE-2021-30465 class: a bind-mount target inside the rootfs that is (or
/// is raced into) a symlink pointing outside — to `/`, to a relative path
/// climbing out, to `/etc`. The mount must land inside the container's root
/// (or be refused); the container must never see a host file, and the
/// host's own tree must not change.
#[test]
fn escape_symlink_swapped_bind_target() {
    berth_testkit::privileged!();
    let root = state_root();
    let host_dir = tempfile::TempDir::new().unwrap();
    let secret = format!("HOSTSECRET-{}", berth_testkit::unique_name("h"));
    std::fs::write(host_dir.path().join("host-secret"), &secret).unwrap();
    let vol = tempfile::TempDir::new().unwrap();
    std::fs::write(vol.path().join("vol-marker"), "VOLMARKER").unwrap();
    let rootfs = berth_testkit::busybox_rootfs_copy();
    let r = rootfs.path().to_path_buf();
    let probe = format!(
        "cat {}/host-secret 2>/dev/null; cat /a/vol-marker /etc/vol-marker 2>/dev/null; true",
        host_dir.path().display()
    );
    let run = |id: &str| -> Result<String, String> {
        let b = Container::builder(id)
            .rootfs(Rootfs::dir(&r))
            .state_root(root.path())
            .stdin(Stdio::Null)
            .mount(Mount::bind(vol.path(), "/a"));
        match b
            .command(["/bin/sh", "-c", &probe])
            .stdout(Stdio::Piped)
            .stderr(Stdio::Null)
            .spawn()
        {
            Err(e) => Err(e.to_string()),
            Ok(mut c) => {
                let mut s = String::new();
                c.stdout.take().unwrap().read_to_string(&mut s).unwrap();
                c.wait().unwrap();
                c.destroy().unwrap();
                Ok(s)
            }
        }
    };
    let a = r.join("a");
    let mut rows = Vec::new();
    let climb = format!("../../../../../../../..{}", host_dir.path().display());
    for target in ["/", climb.as_str(), "/etc"] {
        let _ = std::fs::remove_dir(&a);
        let _ = std::fs::remove_file(&a);
        std::os::unix::fs::symlink(target, &a).unwrap();
        let id = berth_testkit::unique_name("escl");
        let out = run(&id);
        let ok = match &out {
            Err(_) => true,
            Ok(s) => !s.contains(&secret) && s.contains("VOLMARKER"),
        };
        rows.push((
            format!("bind target symlink -> {target:.40}"),
            ok,
            format!("{out:?}"),
        ));
        assert_eq!(
            footprint(root.path(), &id).state,
            Vec::<std::path::PathBuf>::new()
        );
    }
    assert!(!host_dir.path().join("vol-marker").exists());
    assert!(!Path::new("/etc/vol-marker").exists());

    // mkdir -p of a mount point through the symlink must not create a
    // directory on the host (a write outside the rootfs).
    let _ = std::fs::remove_file(&a);
    std::os::unix::fs::symlink(host_dir.path(), &a).unwrap();
    let id = berth_testkit::unique_name("escm");
    let out = Container::builder(&id)
        .rootfs(Rootfs::dir(&r))
        .state_root(root.path())
        .stdin(Stdio::Null)
        .mount(Mount::bind(vol.path(), "/a/made-by-berth"))
        .command(["/bin/true"])
        .status_like();
    let made = host_dir.path().join("made-by-berth").exists();
    rows.push((
        "mkdir of a bind target through a symlink out of the rootfs".into(),
        !made,
        format!("{out}; host dir created: {made}"),
    ));

    // The race: a thread swaps /a between a directory and a symlink to `/`.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (stop, a) = (stop.clone(), a.clone());
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::remove_file(&a);
                let _ = std::fs::remove_dir(&a);
                let _ = std::fs::create_dir(&a);
                let _ = std::fs::remove_dir(&a);
                let _ = std::os::unix::fs::symlink("/", &a);
                swaps += 1;
            }
            swaps
        })
    };
    let (mut refused, mut ran, mut leaked) = (0, 0, 0);
    for _ in 0..20 {
        let id = berth_testkit::unique_name("escr");
        match run(&id) {
            Err(_) => refused += 1,
            Ok(s) => {
                ran += 1;
                if s.contains(&secret) {
                    leaked += 1;
                }
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    rows.push((
        "bind target raced dir <-> symlink to /".into(),
        leaked == 0,
        format!(
            "{swaps} swaps, 20 spawns: {ran} ran, {refused} refused, {leaked} saw the host file"
        ),
    ));
    print_table(&rows);
    assert!(!host_dir.path().join("vol-marker").exists());
    assert!(!Path::new("/vol-marker").exists());
    let escaped: Vec<_> = rows.iter().filter(|r| !r.1).collect();
    assert!(escaped.is_empty(), "not denied: {escaped:#?}");
}
