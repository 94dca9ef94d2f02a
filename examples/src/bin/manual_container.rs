//! Exercise 3 of the lesson: a container built by hand from its pieces.
//!
//! 1. a root filesystem: the host's static busybox and one symlink per
//!    applet (the read-only lower layer);
//! 2. `berth-overlay`: an overlay of that lower layer with a private upper
//!    and work directory, mounted as a *detached* mount (it never appears in
//!    the host's mount table) and attached inside the container;
//! 3. `berth-cgroups`: a cgroup with memory 256 MiB, half a CPU and 64 pids
//!    (controllers the host's cgroup2 lacks are reported and skipped);
//! 4. `berth-namespaces`: new mount, UTS, IPC, PID, network and cgroup
//!    namespaces, born directly in the cgroup (`CLONE_INTO_CGROUP`), a fresh
//!    `/proc`, and `pivot_root` into the overlay.
//!
//! It runs an interactive shell, or the command given; on exit it lists what
//! the upper layer captured (new and changed files, and whiteouts for
//! deleted ones) and checks the lower layer is unchanged. Run as root:
//!
//! ```text
//! cargo run -p berth-examples --bin manual_container
//! cargo run -p berth-examples --bin manual_container -- sh -c 'echo hi > /hi; rm /bin/ls'
//! ```

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use berth_cgroups::{CgroupBuilder, Limit, Resources};
use berth_namespaces::{Namespaces, Spawner, Step};
use berth_overlay::Overlay;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The busybox rootfs: `/bin/busybox` plus a symlink for every applet.
fn busybox_rootfs(dir: &Path) -> Res<()> {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or("busybox not found (apt-get install busybox-static)")?;
    for d in ["bin", "proc", "tmp", "etc", "root"] {
        std::fs::create_dir_all(dir.join(d))?;
    }
    std::fs::copy(busybox, dir.join("bin/busybox"))?;
    let list = Command::new(busybox).arg("--list").output()?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && !applet.contains('/') {
            std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet))?;
        }
    }
    std::fs::write(dir.join("etc/hostname"), "manual\n")?;
    Ok(())
}

/// Print every entry of the upper layer: what the container changed.
fn show_upper(upper: &Path, dir: &Path) -> Res<usize> {
    let mut n = 0;
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let meta = std::fs::symlink_metadata(e.path())?;
        let shown = Path::new("/").join(e.path().strip_prefix(upper)?);
        let t = meta.file_type();
        if t.is_char_device() && meta.rdev() == 0 {
            println!("  deleted  {} (whiteout)", shown.display());
        } else if t.is_dir() {
            n += show_upper(upper, &e.path())?;
            continue;
        } else if t.is_symlink() {
            println!("  symlink  {}", shown.display());
        } else {
            println!("  file     {} ({} bytes)", shown.display(), meta.len());
        }
        n += 1;
    }
    Ok(n)
}

fn main() -> Res<()> {
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.is_empty() {
        argv = vec!["/bin/sh".into()];
    }
    let base = std::env::temp_dir().join(format!("berth-manual-{}", std::process::id()));
    let result = run(&base, &argv);
    let _ = std::fs::remove_dir_all(&base);
    result
}

fn run(base: &Path, argv: &[String]) -> Res<()> {
    let (lower, upper, work, merged) = (
        base.join("lower"),
        base.join("upper"),
        base.join("work"),
        base.join("merged"),
    );
    for d in [&upper, &work, &merged] {
        std::fs::create_dir_all(d)?;
    }
    busybox_rootfs(&lower)?;
    let lower_files = std::fs::read_dir(lower.join("bin"))?.count();
    println!(
        "lower layer: {} ({lower_files} entries in /bin)",
        lower.display()
    );

    let overlay = Overlay::new()
        .lower(&lower)
        .upper(&upper)
        .work(&work)
        .mount_detached()?;
    println!("overlay: mounted detached, upper {}", upper.display());

    let name = format!("manual-{}", std::process::id());
    let limits = Resources::new()
        .memory_max(Limit::Value(256 << 20))
        .cpu_max(50_000, 100_000)
        .pids_max(Limit::Value(64));
    let (cgroup, report) = CgroupBuilder::new(&name)
        .resources(limits)
        .ignore_unavailable(true)
        .create_with_report()?;
    println!("cgroup: {}", cgroup.path().display());
    for (file, value) in &report.applied {
        println!("  set      {file} = {value}");
    }
    for s in &report.skipped {
        println!(
            "  skipped  {} = {} ({} controller missing: {})",
            s.file,
            s.value,
            s.controller.name(),
            s.bound
        );
    }

    let nosuid = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    let status = Spawner::new(argv)
        .namespaces(
            Namespaces::MOUNT
                | Namespaces::UTS
                | Namespaces::IPC
                | Namespaces::PID
                | Namespaces::NET
                | Namespaces::CGROUP,
        )
        .hostname("manual")
        .cgroup_path(cgroup.path())
        .env_clear()
        .env("PATH", "/bin")
        .env("HOME", "/root")
        .env("PS1", "manual# ")
        .steps([
            Step::make_private("/", true),
            Step::move_mount(overlay.into_fd(), &merged),
            Step::mount(
                Some("proc"),
                merged.join("proc"),
                Some("proc"),
                nosuid,
                None,
            ),
            Step::pivot_root(&merged),
            Step::chdir("/root"),
        ])
        .status()?;
    println!("container exited with {status}");
    cgroup.remove()?;

    println!("upper layer captured:");
    let n = show_upper(&upper, &upper)?;
    println!("{n} change(s) captured in the upper layer");
    let now = std::fs::read_dir(lower.join("bin"))?.count();
    println!(
        "lower layer unchanged: {} ({now} entries in /bin)",
        if now == lower_files { "yes" } else { "NO" }
    );
    Ok(())
}
