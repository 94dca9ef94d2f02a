//! `berth-testkit`: shared fixtures for berth's tests (dev-only, not published).
//!
//! - [`busybox_rootfs`]: a minimal root filesystem built from the host's
//!   `busybox-static`, created once per test run and reused by every test
//!   binary of that run.
//! - [`privileged!`] / [`require_root`]: skip a privileged test with a printed
//!   reason when not root, or fail when `BERTH_REQUIRE_PRIVILEGED=1` (CI).
//! - [`vm_only!`] / [`in_vm`]: run a test only inside the project's VM runner
//!   (`scripts/vm-test`), where cgroup2 is the unified hierarchy with every
//!   controller enabled.
//! - [`unique_name`]: names for cgroups, interfaces, netns and mount points
//!   that never clash between parallel tests (and fit `IFNAMSIZ`).
//! - RAII guards that remove what a test created even when it panics:
//!   [`CgroupDir`], [`Netns`], [`Link`], [`Mount`], [`NftTable`].
//! - Leak counters: [`open_fds`], [`child_pids`], [`mount_count`].
#![deny(missing_docs)]

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// Environment variable that turns a privileged-test skip into a failure (set by CI).
pub const REQUIRE_PRIVILEGED_ENV: &str = "BERTH_REQUIRE_PRIVILEGED";
/// Environment variable set to `1` by the VM runner's init inside the guest.
pub const IN_VM_ENV: &str = "BERTH_VM";
/// Environment variable naming the VM's scratch block device (e.g. `/dev/vda`), when one was requested.
pub const VM_SCRATCH_ENV: &str = "BERTH_VM_SCRATCH";

fn require_privileged() -> bool {
    std::env::var(REQUIRE_PRIVILEGED_ENV).is_ok_and(|v| v == "1")
}

/// True when the effective uid is 0.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Guard for a privileged test. Returns `true` when the test may run (we are
/// root). Otherwise prints why the test is skipped and returns `false`, or
/// panics when `BERTH_REQUIRE_PRIVILEGED=1`.
pub fn require_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    let euid = unsafe { libc::geteuid() };
    let msg = format!("{test}: needs root (euid 0), running as euid {euid}");
    if require_privileged() {
        panic!("{msg}, and {REQUIRE_PRIVILEGED_ENV}=1 forbids skipping");
    }
    eprintln!("SKIPPED {msg}");
    false
}

/// True inside the project's VM runner (`scripts/vm-test`).
pub fn in_vm() -> bool {
    std::env::var(IN_VM_ENV).is_ok_and(|v| v == "1")
}

/// Guard for a VM-tier test: `true` inside the VM runner; otherwise prints
/// that the test belongs to the VM tier and returns `false`. VM tests are run
/// by `scripts/vm-test` (and `scripts/test`), never skipped there.
pub fn require_vm(test: &str) -> bool {
    if in_vm() {
        return true;
    }
    eprintln!("SKIPPED {test}: VM tier; run it with scripts/vm-test");
    false
}

/// Skip (return from) the current test unless running as root; see [`require_root`].
///
/// ```
/// fn mounts_something() {
///     // In a `#[test]` function: returns early (skips) unless root.
///     berth_testkit::privileged!();
///     // ... root-only work ...
/// }
/// # mounts_something();
/// ```
#[macro_export]
macro_rules! privileged {
    () => {
        if !$crate::require_root(module_path!()) {
            return;
        }
    };
}

/// Skip (return from) the current test unless inside the VM runner; see [`require_vm`].
#[macro_export]
macro_rules! vm_only {
    () => {
        if !$crate::require_vm(module_path!()) {
            return;
        }
    };
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call, `prefix` followed by the pid and a
/// counter in hex, at most 15 bytes (so it is a valid interface name). The
/// prefix is cut to fit.
pub fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let suffix = format!("{:x}x{:x}", std::process::id(), n);
    let keep = 15usize.saturating_sub(suffix.len()).min(prefix.len());
    format!("{}{}", &prefix[..keep], suffix)
}

/// The host's busybox-static binary.
pub fn busybox_binary() -> PathBuf {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("busybox not found: install busybox-static (scripts/test does)")
}

/// Applets linked in the fixture rootfs: what berth's tests run inside containers.
pub const APPLETS: &[&str] = &[
    "sh",
    "true",
    "false",
    "echo",
    "cat",
    "ls",
    "id",
    "hostname",
    "sleep",
    "mount",
    "umount",
    "ip",
    "ps",
    "grep",
    "sed",
    "awk",
    "head",
    "tail",
    "wc",
    "env",
    "test",
    "[",
    "touch",
    "mkdir",
    "rm",
    "ln",
    "stat",
    "readlink",
    "nc",
    "wget",
    "ping",
    "dd",
    "kill",
    "uname",
    "whoami",
    "chmod",
    "chown",
    "mknod",
    "cp",
    "mv",
    "tr",
    "cut",
    "sort",
    "date",
    "printf",
    "seq",
    "nproc",
    "df",
    "find",
    "xargs",
    "sync",
    "yes",
    "tee",
    "basename",
    "dirname",
    "pwd",
    "unshare",
    "nsenter",
    "chroot",
    "ifconfig",
    "route",
    "hexdump",
    "od",
    "md5sum",
    "sha256sum",
    "tar",
    "gzip",
    "stty",
    "timeout",
    "usleep",
    "init",
    "watch",
    "free",
    "top",
    "mkfifo",
    "ln",
    "su",
    "login",
];

fn build_rootfs(dst: &Path) -> io::Result<()> {
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root",
        "var/tmp", "run", "home",
    ] {
        fs::create_dir_all(dst.join(d))?;
    }
    fs::copy(busybox_binary(), dst.join("bin/busybox"))?;
    for a in APPLETS {
        let link = dst.join("bin").join(a);
        if !link.exists() {
            symlink("busybox", &link)?;
        }
    }
    fs::write(dst.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nuser:x:1000:1000:user:/home:/bin/sh\n")?;
    fs::write(
        dst.join("etc/group"),
        "root:x:0:\nnogroup:x:65534:\nuser:x:1000:\n",
    )?;
    fs::write(dst.join("etc/hostname"), "busybox\n")?;
    fs::write(
        dst.join("etc/hosts"),
        "127.0.0.1 localhost\n::1 localhost\n",
    )?;
    set_mode(&dst.join("tmp"), 0o1777)?;
    Ok(())
}

fn set_mode(p: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
}

/// A minimal root filesystem from the host's busybox-static: `/bin/busybox`
/// with the [`APPLETS`] as symlinks, `/etc/passwd` (root, nobody, user 1000),
/// `/etc/group`, empty `/proc`, `/sys`, `/dev`, `/tmp` (1777).
///
/// Built once per test run: the first caller (in any process) builds it in a
/// temp dir and renames it into place at `$TMPDIR/berth-rootfs-<uid>-<size>`,
/// later callers reuse it. Treat it as read-only: mount an overlay on it or
/// copy it ([`busybox_rootfs_copy`]) to write.
pub fn busybox_rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let bb = busybox_binary();
        let size = fs::metadata(&bb).map(|m| m.len()).unwrap_or(0);
        // SAFETY: getuid cannot fail.
        let uid = unsafe { libc::getuid() };
        let tmp = std::env::temp_dir();
        let dst = tmp.join(format!("berth-rootfs-{uid}-{size}-v1"));
        if dst.join("bin/busybox").exists() {
            return dst;
        }
        let staging = tempfile::Builder::new()
            .prefix(".berth-rootfs-staging")
            .tempdir_in(&tmp)
            .expect("create staging dir for the busybox rootfs");
        let root = staging.path().join("root");
        fs::create_dir(&root).expect("mkdir staging root");
        build_rootfs(&root).expect("build the busybox rootfs");
        set_mode(&root, 0o755).expect("chmod rootfs");
        // Another process may have won the race: then ours is dropped with the staging dir.
        let _ = fs::rename(&root, &dst);
        assert!(
            dst.join("bin/busybox").exists(),
            "busybox rootfs missing at {}",
            dst.display()
        );
        dst
    })
}

/// A private, writable copy of the busybox rootfs in a new temp dir (removed on drop).
pub fn busybox_rootfs_copy() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("berth-rootfs-copy")
        .tempdir()
        .expect("tempdir");
    let st = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", busybox_rootfs().display()))
        .arg(dir.path())
        .status()
        .expect("run cp");
    assert!(st.success(), "cp -a of the busybox rootfs failed");
    dir
}

/// Copy the busybox rootfs to `dest` (a new directory, e.g. an OCI
/// bundle's `rootfs`), preserving modes and links.
pub fn copy_busybox_rootfs_to(dest: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(busybox_rootfs())
        .arg(dest)
        .status()
        .expect("run cp");
    assert!(
        st.success(),
        "cp -a of the busybox rootfs to {dest:?} failed"
    );
}

/// A finished command's exit code (-1 when killed by a signal), stdout and
/// stderr (lossy UTF-8).
pub fn outcome(out: std::process::Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Accept one connection on `listener` and receive the fd sent on it with
/// SCM_RIGHTS (a `--console-socket` peer: the pty master).
pub fn recv_fd(listener: &std::os::unix::net::UnixListener) -> std::os::fd::OwnedFd {
    use std::os::fd::{AsRawFd, FromRawFd};
    let (s, _) = listener.accept().unwrap();
    let mut data = [0u8; 64];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut cbuf = [0u8; 64];
    // SAFETY: zeroed msghdr; pointers into live buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = cbuf.len();
    // SAFETY: valid socket and msghdr.
    let n = unsafe { libc::recvmsg(s.as_raw_fd(), &mut msg, 0) };
    assert!(n >= 0, "recvmsg: {}", std::io::Error::last_os_error());
    // SAFETY: the kernel filled the control buffer.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        assert!(!c.is_null(), "no control message");
        assert_eq!((*c).cmsg_type, libc::SCM_RIGHTS);
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const i32);
        std::os::fd::OwnedFd::from_raw_fd(fd)
    }
}

/// Run a command (test helper); panics with its output when it fails.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The names of the entries of `dir` other than `except` (what a test
/// left behind in a state directory).
pub fn files_left(dir: &Path, except: &[&str]) -> Vec<String> {
    fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !except.contains(&n.as_str()))
                .collect()
        })
        .unwrap_or_default()
}

/// What static busybox needs to run `cat FILE` (from `strace -f`), and
/// `execve` itself: the allow list of the seccomp profiles that permit the
/// workload's calls and nothing of the runtime's setup (berth's
/// `seccomp_last` tests and berth-oci's bundle features).
pub const BUSYBOX_CAT_SYSCALLS: &[&str] = &[
    "execve",
    "arch_prctl",
    "brk",
    "close",
    "exit",
    "exit_group",
    "getrandom",
    "getuid",
    "mmap",
    "mprotect",
    "munmap",
    "openat",
    "prctl",
    "prlimit64",
    "read",
    "readlink",
    "rseq",
    "sendfile",
    "set_robust_list",
    "set_tid_address",
    "write",
    "fstat",
    "newfstatat",
    "lseek",
];

/// Make `cmd` (a `podman` command) use a private store in `dir`: its
/// `containers.conf` and `registries.conf` (the caller writes them), and
/// `--root`, `--runroot`, `--tmpdir` below it, with the storage `driver`
/// and the OCI `runtime` given (a path or a name).
pub fn podman_private_store<'a>(
    cmd: &'a mut Command,
    dir: &Path,
    driver: &str,
    runtime: impl AsRef<std::ffi::OsStr>,
) -> &'a mut Command {
    cmd.env("CONTAINERS_CONF", dir.join("containers.conf"))
        .env("CONTAINERS_REGISTRIES_CONF", dir.join("registries.conf"))
        .arg("--root")
        .arg(dir.join("root"))
        .arg("--runroot")
        .arg(dir.join("run"))
        .arg("--tmpdir")
        .arg(dir.join("tmp"))
        .args(["--storage-driver", driver, "--runtime"])
        .arg(runtime)
}

/// Archive the contents of `dir` into the tar file `tar` (`tar -C dir -cf tar .`).
pub fn tar_dir(dir: &Path, tar: &Path) {
    let st = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(tar)
        .arg(".")
        .status()
        .expect("run tar");
    assert!(st.success(), "tar of {dir:?} into {tar:?} failed");
}

/// Run a command and report only whether it succeeded (used in cleanup paths).
pub fn run_ok(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The cgroup2 mount: `/sys/fs/cgroup/unified` on a hybrid host,
/// `/sys/fs/cgroup` on a unified one (the VM); `None` when neither is a
/// cgroup2 filesystem (`statfs(2)` `f_type` `CGROUP2_SUPER_MAGIC`,
/// `<linux/magic.h>`).
pub fn cgroup2_mount() -> Option<PathBuf> {
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .find(|p| {
            berth_sys::fs::open_dir(Path::new(p))
                .and_then(|d| berth_sys::magic::check_cgroup2(d.as_fd()))
                .is_ok_and(|r| r.is_ok())
        })
        .map(PathBuf::from)
}

/// A cgroup directory a test created; removed (children first) on drop.
#[derive(Debug)]
pub struct CgroupDir {
    path: PathBuf,
}

impl CgroupDir {
    /// Take ownership of `path` (created or not): removed on drop.
    pub fn adopt(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn remove_cgroup_tree(p: &Path) {
    if let Ok(rd) = fs::read_dir(p) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    // Kill what is left so the directory can go, then retry rmdir while it drains.
    let _ = fs::write(p.join("cgroup.kill"), "1");
    for _ in 0..200 {
        match fs::remove_dir(p) {
            Ok(()) => return,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
        }
    }
    eprintln!("testkit: could not remove cgroup {}", p.display());
}

impl Drop for CgroupDir {
    fn drop(&mut self) {
        remove_cgroup_tree(&self.path);
    }
}

/// A named network namespace (`/run/netns/<name>`, as `ip netns add` makes); deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Create a named netns with a unique name (via `ip netns add`), `lo` up.
    pub fn new() -> Self {
        let name = unique_name("btk");
        run("ip", &["netns", "add", &name]);
        run("ip", &["-n", &name, "link", "set", "lo", "up"]);
        Self { name }
    }
    /// Adopt a named netns created elsewhere: deleted on drop.
    pub fn adopt(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Its path under `/run/netns`.
    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }
    /// Run `ip -n <name> ARGS` (panics with its output when it fails).
    pub fn ip(&self, args: &[&str]) -> String {
        let mut a = vec!["-n", self.name.as_str()];
        a.extend_from_slice(args);
        run("ip", &a)
    }
    /// Give the namespace a "host" uplink that goes nowhere: a veth pair
    /// `d0`/`d1` inside it, both up, `d0` with `addr` (CIDR) and the default
    /// route via `gateway`, `d1` without an address, so nothing sent there
    /// leaves the namespace (what pasta copies from a host).
    pub fn add_uplink(&self, addr: &str, gateway: &str) {
        self.ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"]);
        self.ip(&["addr", "add", addr, "dev", "d0"]);
        self.ip(&["link", "set", "d0", "up"]);
        self.ip(&["link", "set", "d1", "up"]);
        self.ip(&["route", "add", "default", "via", gateway, "dev", "d0"]);
    }
}

impl Default for Netns {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        run_ok("ip", &["netns", "del", &self.name]);
    }
}

/// A network link in the host netns; deleted on drop (`ip link del`).
#[derive(Debug)]
pub struct Link {
    name: String,
}

impl Link {
    /// Adopt a link by name: deleted on drop.
    pub fn adopt(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        run_ok("ip", &["link", "del", &self.name]);
    }
}

/// An nftables table; deleted on drop (`nft delete table <family> <name>`).
#[derive(Debug)]
pub struct NftTable {
    family: String,
    name: String,
}

impl NftTable {
    /// Adopt a table: deleted on drop.
    pub fn adopt(family: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            family: family.into(),
            name: name.into(),
        }
    }
}

impl Drop for NftTable {
    fn drop(&mut self) {
        run_ok("nft", &["delete", "table", &self.family, &self.name]);
    }
}

/// A mount point; lazily unmounted (`MNT_DETACH`) on drop.
#[derive(Debug)]
pub struct Mount {
    target: PathBuf,
}

impl Mount {
    /// Adopt a mount point: unmounted on drop.
    pub fn adopt(target: impl Into<PathBuf>) -> Self {
        Self {
            target: target.into(),
        }
    }
    /// The mount point.
    pub fn target(&self) -> &Path {
        &self.target
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Ok(c) = CString::new(self.target.as_os_str().as_bytes()) {
            // SAFETY: c is a valid NUL-terminated path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Number of open file descriptors of this process (for leak checks).
pub fn open_fds() -> usize {
    fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Pids of this process's children, over all its threads (for leak checks).
pub fn child_pids() -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            if let Ok(s) = fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    out.sort_unstable();
    out
}

/// Number of lines in `/proc/self/mountinfo` (for leak checks).
pub fn mount_count() -> usize {
    fs::read_to_string("/proc/self/mountinfo")
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// Run `f` in a forked child as `uid`/`gid` (no supplementary groups) and
/// return what it returns, by convention an errno (0 for success): how a
/// test checks what an unprivileged local user can reach. `f` runs after
/// `fork(2)` in a multithreaded process, so it may only make raw syscalls
/// on data prepared before the call (no allocation, no locks). Panics if
/// the child could not take the ids or did not exit normally.
pub fn as_user(uid: u32, gid: u32, f: impl Fn() -> i32) -> i32 {
    // SAFETY: the child makes raw syscalls only, then _exit(2)s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: plain syscalls in the forked child.
        unsafe {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                libc::_exit(255);
            }
            libc::_exit(f());
        }
    }
    let mut st = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut st, 0) }, pid);
    assert!(libc::WIFEXITED(st), "child as uid {uid}: status {st:#x}");
    assert_ne!(libc::WEXITSTATUS(st), 255, "could not become uid {uid}");
    libc::WEXITSTATUS(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_fit_ifnamsiz_and_differ() {
        let a = unique_name("averylongprefixname");
        let b = unique_name("averylongprefixname");
        assert!(a.len() <= 15, "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn rootfs_has_busybox_and_applets() {
        let r = busybox_rootfs();
        assert!(r.join("bin/busybox").is_file());
        assert_eq!(
            fs::read_link(r.join("bin/sh")).unwrap(),
            Path::new("busybox")
        );
        let out = Command::new(r.join("bin/sh"))
            .args(["-c", "echo hi"])
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"hi\n");
    }
}
