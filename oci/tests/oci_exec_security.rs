//! Security of `berth-oci exec` and of the configuration a container keeps
//! after `create` (issue 20, items 1 and 9; privileged tier).
//!
//! Item 1 (CVE-2019-5736 class): this test binary re-executes itself as the
//! init of a container (`BERTH_OCI_WATCH=1`, the host's `/usr/lib` bound
//! read-only so it can run) and watches `/proc` while the host runs
//! hundreds of `berth-oci exec`: for every process it sees that is not its
//! own it opens `/proc/<pid>/exe` for reading and writing, opens every
//! `/proc/<pid>/fd/*`, and attaches with `PTRACE_SEIZE`. Reaching anything
//! that is not the container's own busybox or the exec'd process' stdio
//! (`/dev/null`) is printed as a `HIT|` line; the host side fails on any.
//!
//! Item 9: `exec`, `start` and `delete` use the configuration snapshot taken
//! at `create`, never the bundle's `config.json` as edited afterwards; an
//! exec'd process never gets more capabilities than the container's init,
//! and `exec --cap` never fills the inheritable or ambient sets
//! (runc CVE-2022-29162).

use std::ffi::CString;
use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const WATCH: &str = "BERTH_OCI_WATCH";

mod common;

use common::*;

// ------------------------------------------------------------- helpers --

/// A bundle whose process is `process` (hostname `sec`), `extra`'s
/// top-level keys set.
fn oci(process: Value, extra: Value) -> Oci {
    let mut cfg = config(&[]);
    merge(&mut cfg, json!({ "hostname": "sec", "process": process }));
    merge(&mut cfg, extra);
    Oci::new("osec", cfg)
}

/// The `Cap*:` lines of a `/proc/<pid>/status` text, as (name, hex).
fn caps(status: &str) -> Vec<(String, String)> {
    status
        .lines()
        .filter(|l| l.starts_with("Cap"))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

fn cap(status: &str, name: &str) -> String {
    caps(status)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {name} in {status:?}"))
}

/// `grep Cap /proc/self/status` run by `berth-oci exec [extra] <id>`.
fn exec_caps(c: &Oci, extra: &[&str]) -> String {
    let mut args = vec!["exec"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[&c.id, "/bin/grep", "Cap", "/proc/self/status"]);
    c.ok(&args)
}

const DOCKER_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

// -------------------------------------------------- item 1: the watcher --

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn devino(fd: i32) -> (u64, u64) {
    // SAFETY: fstat into a zeroed struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
    unsafe { libc::fstat(fd, &mut st) };
    (st.st_dev, st.st_ino)
}

fn path_devino(p: &str) -> (u64, u64) {
    // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
    let fd = unsafe { libc::open(c(p).as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    assert!(fd >= 0, "open {p}: errno {}", errno());
    let r = devino(fd);
    // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
    unsafe { libc::close(fd) };
    r
}

struct Watcher {
    /// Our own threads (`/proc/<tid>` works for threads too).
    me: Vec<i32>,
    /// What an exec'd process legitimately runs: the container's busybox.
    busybox: (u64, u64),
    /// The character device an exec'd process' stdio is (`/dev/null`).
    null_rdev: u64,
    hits: u32,
    exe_opened: u32,
    attached: u32,
    seen: std::collections::BTreeSet<i32>,
}

impl Watcher {
    fn hit(&mut self, what: String) {
        self.hits += 1;
        println!("HIT|{what}");
    }

    /// Everything we can reach of process `p`; false when it does not exist.
    fn probe(&mut self, p: i32) -> bool {
        if p <= 0 || self.me.contains(&p) {
            return false;
        }
        let exe = format!("/proc/{p}/exe");
        let exe_c = c(&exe);
        // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
        let fd = unsafe { libc::open(exe_c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            let e = errno();
            let dir = c(&format!("/proc/{p}"));
            // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
            if e == libc::ENOENT && unsafe { libc::access(dir.as_ptr(), libc::F_OK) } < 0 {
                return false;
            }
        } else {
            self.exe_opened += 1;
            let di = devino(fd);
            if di != self.busybox {
                let target = std::fs::read_link(&exe).unwrap_or_default();
                self.hit(format!(
                    "opened /proc/{p}/exe for reading: {} (dev {} ino {})",
                    target.display(),
                    di.0,
                    di.1
                ));
                // The CVE-2019-5736 step: reopen the binary for writing.
                let again = c(&format!("/proc/self/fd/{fd}"));
                // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
                let w = unsafe { libc::open(again.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
                if w >= 0 {
                    self.hit(format!("reopened /proc/{p}/exe for writing"));
                    // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
                    unsafe { libc::close(w) };
                }
            }
            // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
            unsafe { libc::close(fd) };
        }
        self.seen.insert(p);
        // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
        let w = unsafe { libc::open(exe_c.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if w >= 0 {
            let di = devino(w);
            if di != self.busybox {
                self.hit(format!("opened /proc/{p}/exe for writing"));
            }
            // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
            unsafe { libc::close(w) };
        }
        if let Ok(rd) = std::fs::read_dir(format!("/proc/{p}/fd")) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                let path = format!("/proc/{p}/fd/{n}");
                let pc = c(&path);
                // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
                let mut f = unsafe {
                    libc::open(
                        pc.as_ptr(),
                        libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC,
                    )
                };
                if f < 0 {
                    // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
                    f = unsafe { libc::open(pc.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
                }
                if f < 0 {
                    continue;
                }
                // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
                let mut st: libc::stat = unsafe { std::mem::zeroed() };
                // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
                unsafe { libc::fstat(f, &mut st) };
                // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
                unsafe { libc::close(f) };
                let stdio_null = n.parse::<i32>().is_ok_and(|n| n <= 2)
                    && st.st_mode & libc::S_IFMT == libc::S_IFCHR
                    && st.st_rdev == self.null_rdev;
                if !stdio_null {
                    let target = std::fs::read_link(&path).unwrap_or_default();
                    self.hit(format!("opened {path} -> {}", target.display()));
                }
            }
        }
        // SAFETY: ptrace on a pid; detached again below.
        let r = unsafe { libc::ptrace(libc::PTRACE_SEIZE, p, 0, 0) };
        if r == 0 {
            self.attached += 1;
            // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
            unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, p, 0, 0) };
            let mut status = 0;
            // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
            unsafe { libc::waitpid(p, &mut status, libc::__WALL) };
            // Stopped (or gone): what is it running?
            // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
            let fd = unsafe { libc::open(exe_c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
            if fd >= 0 {
                let di = devino(fd);
                // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
                unsafe { libc::close(fd) };
                if di != self.busybox {
                    let target = std::fs::read_link(&exe).unwrap_or_default();
                    self.hit(format!(
                        "ptrace-attached to {p} running {}",
                        target.display()
                    ));
                }
            }
            // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
            unsafe { libc::ptrace(libc::PTRACE_DETACH, p, 0, 0) };
        }
        true
    }

    fn pids() -> Vec<i32> {
        std::fs::read_dir("/proc")
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Inside the container: watch until `/tmp/stop` appears.
fn watch() {
    let mut w = Watcher {
        me: std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect(),
        busybox: path_devino("/bin/busybox"),
        null_rdev: libc::makedev(1, 3),
        hits: 0,
        exe_opened: 0,
        attached: 0,
        seen: Default::default(),
    };
    println!("WATCHING");
    // Pids in a pid namespace are handed out in order: hammer the next few
    // ones so an exec'd process is probed for all of its short life.
    let mut lo = Watcher::pids()
        .into_iter()
        .chain(w.me.iter().copied())
        .max()
        .unwrap_or(1)
        + 1;
    let mut i = 0u64;
    loop {
        i += 1;
        if i.is_multiple_of(512) {
            if Path::new("/tmp/stop").exists() {
                break;
            }
            for p in Watcher::pids() {
                w.probe(p);
            }
        }
        let mut live = [false; 4];
        for (k, l) in live.iter_mut().enumerate() {
            *l = w.probe(lo + k as i32);
        }
        // Move past pids that came and went (or were skipped).
        if !live[0] && (w.seen.contains(&lo) || live[1..].iter().any(|l| *l)) {
            lo += 1;
        }
        if let Some(&max) = w.seen.iter().next_back() {
            if max > lo + 3 && !live[0] {
                lo = max;
            }
        }
    }
    println!(
        "DONE|{}|{}|{}|{}",
        w.seen.len(),
        w.exe_opened,
        w.attached,
        w.hits
    );
}

/// The watcher's entry point inside the container (skipped on the host).
#[test]
fn watcher_inside() {
    if std::env::var(WATCH).as_deref() == Ok("1") {
        watch();
    }
}

#[test]
fn exec_never_exposes_the_runtime_to_the_container() {
    berth_testkit::privileged!();
    let me = std::env::current_exe().unwrap();
    let mut caps_all = json!(DOCKER_CAPS);
    caps_all
        .as_array_mut()
        .unwrap()
        .sort_by_key(|v| v.to_string());
    let c = oci(
        json!({
            "args": ["/watcher", "watcher_inside", "--exact", "--nocapture",
                     "--test-threads=1", "-q"],
            "env": ["PATH=/bin", format!("{WATCH}=1")],
            "cwd": "/",
            "user": { "uid": 0, "gid": 0 },
            "capabilities": { "bounding": caps_all, "effective": caps_all,
                              "permitted": caps_all }
        }),
        json!({
            "mounts": [
                { "destination": "/proc", "type": "proc", "source": "proc" },
                { "destination": "/usr/lib", "type": "bind", "source": "/usr/lib",
                  "options": ["rbind", "ro"] },
                { "destination": "/usr/lib64", "type": "bind", "source": "/usr/lib64",
                  "options": ["rbind", "ro"] },
                { "destination": "/watcher", "type": "bind",
                  "source": me.to_str().unwrap(), "options": ["bind", "ro"] }
            ]
        }),
    );
    let rootfs = c.bundle().join("rootfs");
    std::fs::create_dir_all(rootfs.join("usr/lib")).unwrap();
    std::fs::create_dir_all(rootfs.join("usr/lib64")).unwrap();
    std::os::unix::fs::symlink("usr/lib", rootfs.join("lib")).unwrap();
    std::os::unix::fs::symlink("usr/lib64", rootfs.join("lib64")).unwrap();
    std::fs::write(rootfs.join("watcher"), "").unwrap();
    c.create_start();
    let t = Instant::now();
    while !c.output().contains("WATCHING") {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "watcher did not start: {}",
            c.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let n = 300;
    let t = Instant::now();
    for i in 0..n {
        let st = c
            .cmd(&["exec", &c.id, "/bin/true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "exec {i} failed");
    }
    let took = t.elapsed();
    std::fs::write(rootfs.join("tmp/stop"), "").unwrap();
    let t = Instant::now();
    let out = loop {
        let o = c.output();
        if o.contains("DONE|") {
            break o;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "watcher never finished: {o}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let done: Vec<u32> = out
        .lines()
        .find_map(|l| l.strip_prefix("DONE|"))
        .unwrap()
        .split('|')
        .map(|v| v.parse().unwrap())
        .collect();
    let hits: Vec<&str> = out.lines().filter(|l| l.starts_with("HIT|")).collect();
    eprintln!(
        "{n} execs in {took:?}; the watcher saw {} pids, opened {} exe (the container's busybox after execve), attached {} times, {} hits",
        done[0], done[1], done[2], done[3]
    );
    for h in hits.iter().take(20) {
        eprintln!("  {h}");
    }
    // The watcher really watched: it saw (nearly) every exec'd process and
    // reached some after their execve.
    assert!(
        done[0] >= n / 4,
        "the watcher saw only {} processes",
        done[0]
    );
    assert!(done[1] > 0, "the watcher never opened an exe");
    assert!(
        hits.is_empty(),
        "a process in the container reached the runtime during exec: {} hits, first {:?}",
        hits.len(),
        hits.first()
    );
}

/// The second wall of item 1: whatever reaches a berth-oci process'
/// `/proc/<pid>/exe` (here the host test itself, which may) finds a file
/// that can never be opened for writing, also once berth-oci has exited
/// (the CVE-2019-5736 attack reopens it then). Opens only, never writes.
#[test]
fn runtime_binary_behind_proc_exe_is_never_writable() {
    berth_testkit::privileged!();
    let oci = oci(sleeper(None), json!({}));
    oci.create_start();
    let mut child = oci
        .cmd(&["exec", &oci.id, "/bin/sleep", "1"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until it runs the exec'd sleep (its child), so that our pid is
    // the re-executed berth-oci.
    let t = Instant::now();
    while std::fs::read_to_string(format!("/proc/{}/task/{}/children", child.id(), child.id()))
        .unwrap_or_default()
        .trim()
        .is_empty()
    {
        assert!(t.elapsed() < Duration::from_secs(10), "exec never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    let exe = std::fs::File::open(format!("/proc/{}/exe", child.id())).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&exe);
    assert!(child.wait().unwrap().success());
    let again = c(&format!("/proc/self/fd/{fd}"));
    // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
    let w = unsafe { libc::open(again.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    let e = errno();
    if w >= 0 {
        // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
        unsafe { libc::close(w) };
    }
    assert!(
        w < 0,
        "berth-oci's binary reopened for writing through /proc/<pid>/exe after it exited ({:?})",
        std::fs::read_link(format!("/proc/self/fd/{fd}"))
    );
    // Refused for good, not only while some berth-oci runs the same file
    // (ETXTBSY): the mount behind it is read-only, or it is a sealed memfd.
    // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
    let mut vfs: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
    assert_eq!(unsafe { libc::fstatvfs(fd, &mut vfs) }, 0);
    let ro_mount = vfs.f_flag & libc::ST_RDONLY != 0;
    // SAFETY: a probe's raw syscall on live C strings, locals or its own fds.
    let seals = unsafe { libc::fcntl(fd, libc::F_GET_SEALS) };
    let sealed = seals >= 0 && seals & libc::F_SEAL_WRITE != 0;
    assert!(
        ro_mount || sealed,
        "the binary behind /proc/<pid>/exe is on a writable mount and not sealed (reopen: errno {e})"
    );
}

// ------------------------------------------- item 9: config and caps --

/// Reads `/proc/<pid>/status` of the init.
fn init_status(c: &Oci) -> String {
    let mut s = String::new();
    std::fs::File::open(format!("/proc/{}/status", c.init_pid()))
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    s
}

fn sleeper(caps: Option<Value>) -> Value {
    let mut p = json!({
        "args": ["/bin/sleep", "60"],
        "env": ["PATH=/bin"],
        "cwd": "/",
        "user": { "uid": 0, "gid": 0 }
    });
    if let Some(c) = caps {
        p["capabilities"] = c;
    }
    p
}

/// A started container whose init has CAP_KILL only (bit 5).
fn kill_only_sleeper() -> Oci {
    let kill = json!(["CAP_KILL"]);
    let c = oci(
        sleeper(Some(
            json!({ "bounding": kill, "effective": kill, "permitted": kill }),
        )),
        json!({}),
    );
    c.create_start();
    c
}

#[test]
fn exec_ignores_a_bundle_edited_after_create() {
    berth_testkit::privileged!();
    let mut c = kill_only_sleeper();
    // The snapshot is the runtime's alone.
    let snap = c.root.join(".meta").join(format!("{}.config", c.id));
    let mode = std::os::unix::fs::PermissionsExt::mode(&snap.metadata().unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "{snap:?}");
    let marker = c.bundle().join("poststop-ran");
    c.edit_config(|cfg| {
        let more = json!(["CAP_KILL", "CAP_SYS_ADMIN"]);
        for set in [
            "bounding",
            "effective",
            "permitted",
            "inheritable",
            "ambient",
        ] {
            cfg["process"]["capabilities"][set] = more.clone();
        }
        cfg["hooks"] = json!({ "poststop": [{ "path": "/bin/sh",
            "args": ["sh", "-c", format!("touch {}", marker.display())] }] });
    });
    let init = init_status(&c);
    let out = exec_caps(&c, &[]);
    for k in ["CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"] {
        assert_eq!(
            cap(&out, k),
            cap(&init, k),
            "{k} of the exec'd process differs from the init's after the bundle was edited:\n{out}"
        );
    }
    assert_eq!(cap(&out, "CapEff"), "0000000000000020");
    c.ok(&["delete", "--force", &c.id]);
    assert!(
        !marker.exists(),
        "delete ran a poststop hook added to config.json after create"
    );
}

#[test]
fn exec_without_bundle_capabilities_gets_the_inits_none() {
    berth_testkit::privileged!();
    let c = oci(sleeper(None), json!({}));
    c.create_start();
    let init = init_status(&c);
    let out = exec_caps(&c, &[]);
    for k in ["CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"] {
        assert_eq!(cap(&init, k), "0000000000000000", "init {k}: {init}");
        assert_eq!(
            cap(&out, k),
            "0000000000000000",
            "{k} of the exec'd process (the init has none):\n{out}"
        );
    }
}

#[test]
fn exec_cap_never_fills_inheritable_or_ambient() {
    berth_testkit::privileged!();
    let c = kill_only_sleeper();
    let out = exec_caps(&c, &["--cap", "CAP_NET_ADMIN"]);
    // CAP_KILL is bit 5, CAP_NET_ADMIN bit 12.
    for k in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(cap(&out, k), "0000000000001020", "{k}:\n{out}");
    }
    for k in ["CapInh", "CapAmb"] {
        assert_eq!(cap(&out, k), "0000000000000000", "{k} after --cap:\n{out}");
    }
}
