//! Exercise 1 of the lesson: every namespace type, seen from both sides.
//!
//! The program starts a child in all eight new namespaces (mount, UTS, IPC,
//! PID, network, user, cgroup, time) with `berth-namespaces`, and prints the
//! host's view and the child's view side by side: hostname, pid, network
//! interfaces, number of mounts, SysV shared-memory segments, uid and uid map,
//! and the `/proc/self/ns/*` inodes. Then a second process joins the child's
//! namespaces through its pidfd (what `nsenter -t PID --all` does) and prints
//! its own view in a third column, so you can check it landed in the same
//! namespaces.
//!
//! Run as root (it is non-interactive):
//!
//! ```text
//! cargo run -p berth-examples --bin namespace_lab
//! ```
//!
//! Every value is read by the process whose view it is: the program
//! re-executes itself with `--view` inside the namespaces.

use std::io::{BufRead, BufReader, Read};

use berth_namespaces::{IdMap, Namespaces, Spawner, Stdio, Step};

/// The `/proc/self/ns/*` names, in the order printed.
const NS: [&str; 8] = ["mnt", "uts", "ipc", "pid", "net", "user", "cgroup", "time"];

/// What one process sees, as (row name, value) pairs.
fn view() -> Vec<(String, String)> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_else(|e| format!("({e})"));
    let interfaces: Vec<String> = read("/proc/net/dev")
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(|s| s.trim().to_string()))
        .collect();
    let mut rows = vec![
        (
            "hostname".into(),
            read("/proc/sys/kernel/hostname").trim().into(),
        ),
        ("pid".into(), std::process::id().to_string()),
        ("interfaces".into(), interfaces.join(",")),
        (
            "mounts".into(),
            read("/proc/self/mountinfo").lines().count().to_string(),
        ),
        // The first line of /proc/sysvipc/shm is a header.
        (
            "shm segments".into(),
            (read("/proc/sysvipc/shm").lines().count().saturating_sub(1)).to_string(),
        ),
        // SAFETY: geteuid cannot fail.
        ("euid".into(), unsafe { libc::geteuid() }.to_string()),
        (
            "uid_map".into(),
            read("/proc/self/uid_map")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        ),
    ];
    for ns in NS {
        let link = std::fs::read_link(format!("/proc/self/ns/{ns}"));
        let value = link
            .map(|l| l.display().to_string())
            .unwrap_or_else(|e| format!("({e})"));
        rows.push((format!("ns/{ns}"), value));
    }
    rows
}

/// Parse the `name\tvalue` lines a `--view` process printed.
fn parse(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--view") {
        // Inside: print our view, then stay alive until stdin closes so the
        // parent can join us.
        for (k, v) in view() {
            println!("{k}\t{v}");
        }
        println!("--end--");
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        return Ok(());
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err("namespace_lab needs root (it maps 65536 ids into a user namespace)".into());
    }
    let exe = std::env::current_exe()?;

    // A SysV shared-memory segment on the host: the IPC namespace hides it.
    // SAFETY: plain syscall; the segment is removed below.
    let shm = unsafe { libc::shmget(libc::IPC_PRIVATE, 4096, libc::IPC_CREAT | 0o600) };
    if shm < 0 {
        return Err(format!("shmget: {}", std::io::Error::last_os_error()).into());
    }
    let host = view();

    // 1. The child: every namespace type, root inside = uid 100000 outside,
    //    its own hostname, and a fresh /proc for its pid namespace.
    let mut child = Spawner::new([exe.as_os_str(), "--view".as_ref()])
        .namespaces(Namespaces::all())
        .uid_map(IdMap::new(0, 100_000, 65_536))
        .gid_map(IdMap::new(0, 100_000, 65_536))
        .hostname("lab")
        .steps([
            Step::make_private("/", true),
            Step::mount(
                Some("proc"),
                "/proc",
                Some("proc"),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                None,
            ),
        ])
        .stdin(Stdio::Piped)
        .stdout(Stdio::Piped)
        .spawn()?;
    let mut inside = String::new();
    let mut out = BufReader::new(child.stdout.take().ok_or("no stdout pipe")?);
    loop {
        let mut line = String::new();
        if out.read_line(&mut line)? == 0 || line == "--end--\n" {
            break;
        }
        inside.push_str(&line);
    }
    let inside = parse(&inside);

    // 2. A second process joins all of the child's namespaces via its pidfd.
    let joined = Spawner::new([exe.as_os_str(), "--view".as_ref()])
        .join_pidfd(child.pidfd(), Namespaces::all())
        .stdin(Stdio::Null)
        .output()?;
    let joined = parse(&String::from_utf8_lossy(&joined.stdout));

    drop(child.stdin.take()); // the child reads EOF and exits
    let status = child.wait()?;
    // SAFETY: removes the segment created above.
    unsafe { libc::shmctl(shm, libc::IPC_RMID, std::ptr::null_mut()) };

    println!(
        "host pid of the child: {}, it exited with {status}",
        child.pid()
    );
    let header = ["", "host", "container", "joined (nsenter)"];
    println!(
        "{:<13} | {:<22} | {:<22} | {}",
        header[0], header[1], header[2], header[3]
    );
    let get = |rows: &[(String, String)], k: &str| {
        rows.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| "?".into())
    };
    let mut same = 0;
    for (k, h) in &host {
        let (c, j) = (get(&inside, k), get(&joined, k));
        println!("{k:<13} | {h:<22} | {c:<22} | {j}");
        if k.starts_with("ns/") && c == j && c != *h {
            same += 1;
        }
    }
    println!("the joined process shares {same} of {} namespaces with the container (all new, none the host's)", NS.len());
    if same != NS.len() {
        return Err("the join did not land in every namespace of the container".into());
    }
    Ok(())
}
