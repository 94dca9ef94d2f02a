//! Privileged tests of the spawn path: every namespace seen from inside.
mod common;

use std::io::Read;
use std::time::Duration;

use berth_namespaces::{Error, IdMap, Namespaces, Spawner, Stdio, Step};
use common::*;

#[test]
fn plain_spawn_and_status() {
    berth_testkit::privileged!();
    let st = Spawner::new([berth_testkit::busybox_binary().to_str().unwrap(), "true"])
        .status()
        .unwrap();
    assert!(st.success());
    let st = Spawner::new(["sh", "-c", "exit 7"]).status().unwrap();
    assert_eq!(st.code(), Some(7));
}

#[test]
fn pid_uts_net_ipc_mount_seen_from_inside() {
    berth_testkit::privileged!();
    // A SysV shm segment on the host: it must not be visible inside.
    // SAFETY: plain syscalls.
    let shmid = unsafe { libc::shmget(libc::IPC_PRIVATE, 4096, libc::IPC_CREAT | 0o600) };
    assert!(shmid >= 0);
    let host_sysv = std::fs::read_to_string("/proc/sysvipc/shm").unwrap();
    let id_field = format!(" {shmid} ");
    assert!(host_sysv.contains(&id_field));
    let out = sh_in_rootfs(
        "echo pid=$$; hostname; cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '; \
         mkdir -p /tmp/m && mount -t tmpfs marker-fs /tmp/m && grep -c marker-fs /proc/self/mountinfo; \
         cat /proc/sysvipc/shm | wc -l",
        Namespaces::PID | Namespaces::UTS | Namespaces::NET | Namespaces::IPC,
    )
    .hostname("inside-c1")
    .output()
    .unwrap();
    // SAFETY: removing the segment we made.
    unsafe { libc::shmctl(shmid, libc::IPC_RMID, std::ptr::null_mut()) };
    let s = ok_stdout(&out);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines[0], "pid=1", "{s}");
    assert_eq!(lines[1], "inside-c1");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_ne!(host.trim(), "inside-c1");
    assert_eq!(lines[2], "lo", "only lo in the new netns: {s}");
    assert_eq!(lines[3], "1", "the tmpfs is mounted inside: {s}");
    // Only the header line: no segment in the new ipc namespace.
    assert_eq!(lines[4], "1", "sysvipc inside: {s}");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo.contains("marker-fs"),
        "the mount leaked to the host"
    );
}

#[test]
fn ns_inodes_differ_for_all_eight() {
    berth_testkit::privileged!();
    let names = ["mnt", "uts", "ipc", "pid", "net", "user", "cgroup", "time"];
    let script = names
        .iter()
        .map(|n| format!("readlink /proc/self/ns/{n}"))
        .collect::<Vec<_>>()
        .join("; ");
    let out = sh_in_rootfs(&script, Namespaces::all())
        .uid_map(IdMap::new(0, 0, 65536))
        .gid_map(IdMap::new(0, 0, 65536))
        .output()
        .unwrap();
    let s = ok_stdout(&out);
    let inside: Vec<&str> = s.lines().collect();
    assert_eq!(inside.len(), 8, "{s}");
    for (n, got) in names.iter().zip(inside) {
        assert!(got.starts_with(&format!("{n}:[")), "{got}");
        assert_ne!(got, own_ns(n), "{n} namespace not new");
    }
}

#[test]
fn user_namespace_maps_root_to_chosen_id() {
    berth_testkit::privileged!();
    let mut child = sh_in_rootfs(
        "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map",
        Namespaces::USER | Namespaces::PID,
    )
    .uid_map(IdMap::new(0, 200_000, 65_536))
    .gid_map(IdMap::new(0, 300_000, 65_536))
    .stdout(Stdio::Piped)
    .spawn_stopped()
    .unwrap();
    // From the host the created-but-not-started child runs as 200000/300000.
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.pid())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let gid_line = status.lines().find(|l| l.starts_with("Gid:")).unwrap();
    assert!(
        uid_line.split_whitespace().skip(1).all(|f| f == "200000"),
        "{uid_line}"
    );
    assert!(
        gid_line.split_whitespace().skip(1).all(|f| f == "300000"),
        "{gid_line}"
    );
    assert!(child.is_created_only());
    child.start().unwrap();
    let mut s = String::new();
    child.stdout.take().unwrap().read_to_string(&mut s).unwrap();
    assert!(child.wait().unwrap().success());
    let norm: Vec<String> = s
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(norm, ["0", "0", "0 200000 65536", "0 300000 65536"], "{s}");
}

#[test]
fn time_namespace_offsets_shift_boottime() {
    berth_testkit::privileged!();
    let out = Spawner::new(["/bin/busybox", "cat", "/proc/uptime"])
        .namespaces(Namespaces::TIME)
        .time_offsets(0, 1_000_000)
        .output()
        .unwrap();
    let s = ok_stdout(&out);
    let inside: f64 = s.split_whitespace().next().unwrap().parse().unwrap();
    let host: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(inside > host + 999_000.0, "inside {inside}, host {host}");
    assert!(inside < host + 1_001_000.0, "inside {inside}, host {host}");
}

#[test]
fn missing_binary_is_an_error_from_spawn() {
    berth_testkit::privileged!();
    let err = Spawner::new(["/nonexistent/prog"])
        .namespaces(Namespaces::PID)
        .spawn()
        .unwrap_err();
    assert_eq!(err.errno(), Some(libc::ENOENT), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("execve(\"/nonexistent/prog\"): ENOENT"),
        "{msg}"
    );
    let err = Spawner::new(["no-such-program-berth"]).spawn().unwrap_err();
    assert_eq!(err.errno(), Some(libc::ENOENT), "{err}");
}

#[test]
fn failing_step_names_step_and_path() {
    berth_testkit::privileged!();
    let err = Spawner::new(["/bin/true"])
        .namespaces(Namespaces::MOUNT)
        .step(Step::make_private("/", true))
        .step(Step::pivot_root("/nonexistent-berth-root"))
        .spawn()
        .unwrap_err();
    let msg = err.to_string();
    assert_eq!(
        msg,
        "pivot_root(\"/nonexistent-berth-root\"): ENOENT (No such file or directory (os error 2))",
    );
    match err {
        Error::Child { index, .. } => assert_eq!(index, Some(1)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn init_reaps_forwards_and_returns_status() {
    berth_testkit::privileged!();
    // The workload is pid 2 under our init; an orphan zombie gets reaped.
    let out = sh_in_rootfs(
        "echo $$; (sleep 0.1 &); sleep 1; ps -o pid,stat,comm | grep -c ' Z ' ; exit 3",
        Namespaces::PID,
    )
    .init(true)
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let s = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines, ["2", "0"], "{s}");

    // SIGTERM to the init is forwarded to the workload, which traps it.
    let mut child = sh_in_rootfs(
        "trap 'exit 42' TERM; echo ready; while true; do sleep 0.05; done",
        Namespaces::PID,
    )
    .init(true)
    .stdout(Stdio::Piped)
    .spawn()
    .unwrap();
    let mut buf = [0u8; 6];
    child.stdout.as_mut().unwrap().read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ready\n");
    child.kill(libc::SIGTERM).unwrap();
    let st = child
        .wait_timeout(Duration::from_secs(10))
        .unwrap()
        .unwrap();
    assert_eq!(st.code(), Some(42));
}

#[test]
fn kill_try_wait_and_drop() {
    berth_testkit::privileged!();
    let mut child = Spawner::new(["/bin/busybox", "sleep", "30"])
        .namespaces(Namespaces::PID)
        .spawn()
        .unwrap();
    assert!(child.try_wait().unwrap().is_none());
    assert!(child
        .wait_timeout(Duration::from_millis(50))
        .unwrap()
        .is_none());
    child.kill(libc::SIGKILL).unwrap();
    let st = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(libc::SIGKILL));
    // Dropping an unwaited child kills and reaps it.
    let child = Spawner::new(["/bin/busybox", "sleep", "30"])
        .spawn()
        .unwrap();
    let pid = child.pid();
    drop(child);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}

#[test]
fn id_map_tools_are_used_and_their_errors_surface() {
    berth_testkit::privileged!();
    // Without an /etc/subuid range for root (this machine has none) the
    // setuid helper refuses, and its message must reach the caller.
    let r = Spawner::new(["/bin/busybox", "cat", "/proc/self/uid_map"])
        .namespaces(Namespaces::USER)
        .uid_map(IdMap::new(0, 0, 1))
        .uid_map(IdMap::new(1, 300_000, 10))
        .use_id_map_tools(true)
        .output();
    match r {
        Err(Error::IdMapTool { tool, stderr, .. }) => {
            assert_eq!(tool, "newuidmap");
            assert!(!stderr.is_empty());
        }
        Ok(out) => {
            let s = ok_stdout(&out);
            assert!(s.contains("300000"), "{s}");
        }
        Err(other) => panic!("{other:?}"),
    }
}
