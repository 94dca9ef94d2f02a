//! Joining the namespaces of a running process, by pidfd and by path.
mod common;

use std::io::Read;

use berth_namespaces::{IdMap, Namespaces, Spawner, Stdio};
use common::*;

fn ns_of(pid: i32, name: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{name}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Wait for the target's "up" line.
fn wait_up(target: &mut berth_namespaces::Child) {
    let mut buf = [0u8; 3];
    target
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut buf)
        .unwrap();
}

const NAMES: [&str; 8] = ["mnt", "uts", "ipc", "pid", "net", "user", "cgroup", "time"];

#[test]
fn join_by_pidfd_lands_in_the_same_namespaces() {
    berth_testkit::privileged!();
    let mut target = sh_in_rootfs("echo up; exec sleep 30", Namespaces::all())
        .uid_map(IdMap::new(0, 0, 65536))
        .gid_map(IdMap::new(0, 0, 65536))
        .hostname("target-ns")
        .stdout(Stdio::Piped)
        .spawn()
        .unwrap();
    wait_up(&mut target);
    let script = NAMES
        .iter()
        .map(|n| format!("readlink /proc/self/ns/{n}"))
        .collect::<Vec<_>>()
        .join("; ")
        + "; hostname; echo pid=$$";
    let out = Spawner::new(["/bin/sh", "-c", &script])
        .env_clear()
        .env("PATH", "/bin")
        .join_pidfd(target.pidfd(), Namespaces::all())
        .output()
        .unwrap();
    let s = ok_stdout(&out);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines.len(), 10, "{s}");
    for (i, n) in NAMES.iter().enumerate() {
        assert_eq!(lines[i], ns_of(target.pid(), n), "{n}");
        assert_ne!(lines[i], own_ns(n), "{n}");
    }
    assert_eq!(lines[8], "target-ns");
    // In the target's pid namespace the target is pid 1, we are someone else.
    let pid: u32 = lines[9].strip_prefix("pid=").unwrap().parse().unwrap();
    assert!(pid > 1, "{s}");
    target.kill(libc::SIGKILL).unwrap();
    target.wait().unwrap();
}

#[test]
fn join_by_path_net_and_uts() {
    berth_testkit::privileged!();
    let mut target = Spawner::new(["/bin/busybox", "sleep", "30"])
        .namespaces(Namespaces::NET | Namespaces::UTS)
        .hostname("by-path")
        .spawn_stopped()
        .unwrap();
    let pid = target.pid();
    let out = Spawner::new([
        "/bin/busybox",
        "sh",
        "-c",
        "/bin/busybox readlink /proc/self/ns/net; /bin/busybox hostname",
    ])
    .join_path(format!("/proc/{pid}/ns/net"), Namespaces::NET)
    .join_path(format!("/proc/{pid}/ns/uts"), Namespaces::empty())
    .output()
    .unwrap();
    let s = ok_stdout(&out);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines, [ns_of(pid, "net").as_str(), "by-path"]);
    // A path of the wrong type is refused before anything is spawned.
    let err = Spawner::new(["/bin/true"])
        .join_path(format!("/proc/{pid}/ns/net"), Namespaces::UTS)
        .spawn()
        .unwrap_err();
    assert!(err.to_string().contains("not Namespaces(UTS)"), "{err}");
    target.start().unwrap();
    target.kill(libc::SIGKILL).unwrap();
    target.wait().unwrap();
}

#[test]
fn join_enters_the_cgroup_too() {
    berth_testkit::privileged!();
    let base = berth_testkit::cgroup2_mount().expect("a cgroup2 mount");
    let name = berth_testkit::unique_name("bnsj");
    let cg = berth_testkit::CgroupDir::adopt(base.join(&name));
    std::fs::create_dir(cg.path()).unwrap();
    let mut target = Spawner::new(["/bin/busybox", "sleep", "30"])
        .namespaces(Namespaces::NET | Namespaces::PID | Namespaces::MOUNT)
        .spawn()
        .unwrap();
    // Joining a pid namespace forks once more; the real process must still
    // be born in the cgroup (CLONE_INTO_CGROUP on the intermediate).
    let out = Spawner::new(["/bin/busybox", "cat", "/proc/self/cgroup"])
        .join_pidfd(target.pidfd(), Namespaces::NET | Namespaces::PID)
        .cgroup_path(cg.path())
        .output()
        .unwrap();
    let s = ok_stdout(&out);
    let v2 = s.lines().find(|l| l.starts_with("0::")).unwrap();
    assert_eq!(v2, format!("0::/{name}"), "{s}");
    target.kill(libc::SIGKILL).unwrap();
    target.wait().unwrap();
}

#[test]
fn joining_a_pid_namespace_while_creating_others() {
    berth_testkit::privileged!();
    let mut target = sh_in_rootfs("echo up; exec sleep 30", Namespaces::PID | Namespaces::NET)
        .stdout(Stdio::Piped)
        .spawn()
        .unwrap();
    wait_up(&mut target);
    // A pod's container: the sandbox's pid and network namespaces, a
    // mount and UTS namespace of its own.
    let out = Spawner::new([
        "/bin/sh",
        "-c",
        "for n in pid net mnt uts; do readlink /proc/self/ns/$n; done",
    ])
    .env_clear()
    .env("PATH", "/bin")
    .namespaces(Namespaces::MOUNT | Namespaces::UTS)
    .join_path(format!("/proc/{}/ns/pid", target.pid()), Namespaces::PID)
    .join_path(format!("/proc/{}/ns/net", target.pid()), Namespaces::NET)
    .output()
    .unwrap();
    let s = ok_stdout(&out);
    let l: Vec<&str> = s.lines().collect();
    assert_eq!(l.len(), 4, "{s}");
    assert_eq!(l[0], ns_of(target.pid(), "pid"));
    assert_eq!(l[1], ns_of(target.pid(), "net"));
    for (i, n) in [(2, "mnt"), (3, "uts")] {
        assert_ne!(l[i], own_ns(n), "{n}");
        assert_ne!(l[i], ns_of(target.pid(), n), "{n}");
    }
    target.kill(libc::SIGKILL).unwrap();
    target.wait().unwrap();
}

#[test]
fn namespaces_created_with_a_joined_user_namespace_belong_to_it() {
    berth_testkit::privileged!();
    // A user namespace (root inside = host 300000) held by a sleeping
    // process of this test.
    let mut holder = sh_in_rootfs("echo up; exec sleep 30", Namespaces::USER)
        .uid_map(IdMap::new(0, 300000, 65536))
        .gid_map(IdMap::new(0, 300000, 65536))
        .stdout(Stdio::Piped)
        .spawn()
        .unwrap();
    wait_up(&mut holder);
    let target = holder.pid();
    let want_user = ns_of(target, "user");
    // sethostname needs CAP_SYS_ADMIN over the owner of the new UTS
    // namespace: only if it was made inside the joined user namespace.
    let out = Spawner::new([
        "/bin/sh",
        "-c",
        "hostname; readlink /proc/self/ns/user; cat /proc/self/uid_map",
    ])
    .env_clear()
    .env("PATH", "/bin")
    .namespaces(Namespaces::UTS | Namespaces::MOUNT | Namespaces::IPC)
    .join_path(format!("/proc/{target}/ns/user"), Namespaces::USER)
    .hostname("in-joined-user")
    .output();
    holder.kill(libc::SIGKILL).unwrap();
    holder.wait().unwrap();
    let s = ok_stdout(&out.unwrap());
    let l: Vec<&str> = s.lines().collect();
    assert_eq!(l[0], "in-joined-user", "{s}");
    assert_eq!(l[1], want_user);
    assert_eq!(
        l[2].split_whitespace().collect::<Vec<_>>(),
        ["0", "300000", "65536"]
    );
}
