//! Exercise 4 of the lesson: a hardened container, and what it refuses.
//!
//! `berth-security` prepares the policy in the parent: only the
//! `NET_BIND_SERVICE` capability, Docker's default seccomp profile,
//! `no_new_privs`, uid/gid 1000, and a Landlock ruleset (read everywhere in
//! the container, write only beneath `/tmp`) when the kernel has Landlock.
//! `berth-namespaces` starts the child in new mount, pid, UTS, IPC, network
//! and cgroup namespaces on a read-only root (the host's `/usr`, read-only)
//! with a tmpfs `/tmp` and a second tmpfs `/scratch` that Landlock does not
//! allow; the policy is applied as the last step before `execve`.
//!
//! Inside, the program re-executes itself (`--probe`) and tries a list of
//! operations, printing for each `allowed` or `refused` with the errno the
//! kernel returned. Run as root (non-interactive):
//!
//! ```text
//! cargo run -p berth-examples --bin hardened
//! ```

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;

use berth_namespaces::{Namespaces, Spawner, Step};
use berth_security::{CapSet, Capabilities, FsAccess, Landlock, SecurityPolicy};

/// The errno of the last failed libc call, as `NAME (description)`.
fn errno_text() -> String {
    let e = std::io::Error::last_os_error();
    let name = match e.raw_os_error() {
        Some(libc::EPERM) => "EPERM",
        Some(libc::EACCES) => "EACCES",
        Some(libc::EROFS) => "EROFS",
        Some(libc::ENOSYS) => "ENOSYS",
        Some(libc::EINVAL) => "EINVAL",
        Some(libc::ENOENT) => "ENOENT",
        _ => "errno",
    };
    format!("{name} ({e})")
}

/// Print how one attempt ended: `r` is the libc return value.
fn report(what: &str, r: i64) {
    if r < 0 {
        println!("refused  {what}: {}", errno_text());
    } else {
        println!("allowed  {what}");
    }
}

/// Inside the container: who we are, then the forbidden (and two allowed)
/// operations.
fn probe() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for key in ["Uid:", "CapEff:", "CapBnd:", "NoNewPrivs:", "Seccomp:"] {
        if let Some(l) = status.lines().find(|l| l.starts_with(key)) {
            println!(
                "status   {}",
                l.split_whitespace().collect::<Vec<_>>().join(" ")
            );
        }
    }
    let c = |s: &str| CString::new(s).unwrap_or_default();
    let create = |p: &str| {
        // SAFETY: valid C string; the fd is closed right away.
        let fd = unsafe { libc::open(c(p).as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o644) };
        if fd >= 0 {
            // SAFETY: our own fd.
            unsafe { libc::close(fd) };
        }
        fd as i64
    };
    // SAFETY: (for every block below) plain syscalls with valid arguments;
    // the ones that succeed only change this short-lived process.
    unsafe {
        report("create /hello (read-only root)", create("/hello"));
        report("create /tmp/ok (tmpfs, Landlock allows)", create("/tmp/ok"));
        report(
            "create /scratch/x (tmpfs outside the Landlock rules)",
            create("/scratch/x"),
        );
        report(
            "chown /tmp/ok to root (no CAP_CHOWN)",
            libc::chown(c("/tmp/ok").as_ptr(), 0, 0) as i64,
        );
        report("setuid(0) (no CAP_SETUID)", libc::setuid(0) as i64);
        let tmpfs = c("tmpfs");
        report(
            "mount a tmpfs (no CAP_SYS_ADMIN, seccomp)",
            libc::mount(
                tmpfs.as_ptr(),
                c("/tmp").as_ptr(),
                tmpfs.as_ptr(),
                0,
                std::ptr::null(),
            ) as i64,
        );
        report(
            "unshare(CLONE_NEWUSER) (seccomp)",
            libc::unshare(libc::CLONE_NEWUSER) as i64,
        );
        report(
            "sethostname (no CAP_SYS_ADMIN)",
            libc::sethostname(c("evil").as_ptr(), 4) as i64,
        );
        report(
            "raw socket (no CAP_NET_RAW)",
            libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) as i64,
        );
        report(
            "reboot (no CAP_SYS_BOOT, seccomp)",
            libc::reboot(libc::LINUX_REBOOT_CMD_CAD_OFF) as i64,
        );
        let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as u16;
        addr.sin_port = 80u16.to_be();
        let r = libc::bind(
            s,
            &addr as *const _ as *const libc::sockaddr,
            std::mem::size_of_val(&addr) as u32,
        );
        report("bind TCP port 80 (CAP_NET_BIND_SERVICE kept)", r as i64);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().nth(1).as_deref() == Some("--probe") {
        probe();
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    // The container's root: empty directories the child mounts onto, and
    // Debian's merged-/usr symlinks so the dynamic loader is found.
    let root = std::env::temp_dir().join(format!("berth-hardened-{}", std::process::id()));
    for d in ["usr", "proc", "tmp", "scratch"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    for l in ["bin", "lib", "lib64"] {
        if Path::new("/usr").join(l).exists() {
            std::os::unix::fs::symlink(format!("usr/{l}"), root.join(l))?;
        }
    }
    std::fs::write(root.join("probe"), b"")?;
    // The container's /tmp: a tmpfs the parent mounts (so the Landlock rule
    // can name its root directory) and the child binds onto <root>/tmp.
    let tmp = root.with_extension("tmp");
    std::fs::create_dir_all(&tmp)?;
    let c = |p: &Path| CString::new(p.as_os_str().as_encoded_bytes()).unwrap_or_default();
    let (fs, data) = (CString::new("tmpfs")?, CString::new("size=1m,mode=1777")?);
    // SAFETY: valid C strings; unmounted below.
    let r = unsafe {
        libc::mount(
            fs.as_ptr(),
            c(&tmp).as_ptr(),
            fs.as_ptr(),
            0,
            data.as_ptr().cast(),
        )
    };
    let result = if r < 0 {
        Err(format!(
            "mount tmpfs on {tmp:?}: {}",
            std::io::Error::last_os_error()
        )
        .into())
    } else {
        let result = run(&root, &tmp, &exe);
        // SAFETY: valid C string; our own mount.
        unsafe { libc::umount2(c(&tmp).as_ptr(), libc::MNT_DETACH) };
        result
    };
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir(&tmp);
    result
}

fn run(root: &Path, tmp: &Path, exe: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let mut policy = SecurityPolicy::docker_default()
        .capabilities(Capabilities::uniform_with_ambient(CapSet::from_names([
            "NET_BIND_SERVICE",
        ])?))
        .user(1000, 1000);
    match Landlock::abi_version() {
        Ok(v) => {
            println!("landlock ABI {v}: read everywhere, write only beneath /tmp");
            // Rules name inodes: the read-only root directory and the tmpfs.
            policy = policy.landlock(
                Landlock::new()
                    .allow(root, FsAccess::READ)
                    .allow(tmp, FsAccess::ALL),
            );
        }
        Err(e) => println!("landlock not available ({e}); running without it"),
    }
    let prepared = Arc::new(policy.prepare()?);
    let apply = prepared.clone();
    let nosuid = libc::MS_NOSUID | libc::MS_NODEV;
    let mut sp = Spawner::new(["/probe", "--probe"]);
    sp.namespaces(
        Namespaces::MOUNT
            | Namespaces::PID
            | Namespaces::UTS
            | Namespaces::IPC
            | Namespaces::NET
            | Namespaces::CGROUP,
    )
    .hostname("hardened")
    .env_clear()
    .steps([
        Step::make_private("/", true),
        Step::bind(root, root, false, true), // read-only root
        Step::bind("/usr", root.join("usr"), true, true),
        Step::bind(exe, root.join("probe"), false, true),
        Step::mount(
            Some("proc"),
            root.join("proc"),
            Some("proc"),
            nosuid | libc::MS_NOEXEC,
            None,
        ),
        Step::bind(tmp, root.join("tmp"), false, false),
        Step::mount(
            Some("tmpfs"),
            root.join("scratch"),
            Some("tmpfs"),
            nosuid,
            Some("size=1m"),
        ),
        Step::pivot_root(root),
    ]);
    // The Landlock ruleset stays open for the policy step (it is
    // close-on-exec: the probe never sees it).
    if let Some(fd) = prepared.landlock_fd() {
        sp.step_fd(fd.as_raw_fd());
    }
    // The security policy is the final step: only execve runs after its
    // seccomp filter.
    // SAFETY: apply_in_child makes raw syscalls on data prepared above.
    sp.final_step(unsafe {
        Step::hook("security", move || {
            apply.apply_in_child().map_err(|f| f.errno)
        })
    });
    let status = sp.status()?;
    drop(prepared);
    println!("container exited with {status}");
    if !status.success() {
        return Err("the probe failed".into());
    }
    Ok(())
}
