//! What bundles may ask for (runtime-spec config.md / config-linux.md),
//! observed from inside the container berth-oci makes of them: the umask,
//! mount options and propagation, the root's propagation, `linux.devices`,
//! device nodes in a user namespace made by root, relative cgroupsPath,
//! and namespaces shared with the runtime or joined by path (privileged
//! tier).
//!
//! `BERTH_OCI_BIN` runs them against another build (to see them fail on
//! the code before a change).

use std::path::Path;
use std::process::Command;

use serde_json::json;

mod common;

use common::*;

/// A bundle running `sh -c script` (hostname `features`, a cgroup
/// namespace too); tests set more in `env.bundle.cfg` before
/// `run_bundle`/`run_ok`.
fn sh(script: &str) -> Oci {
    let mut cfg = config(&["/bin/sh", "-c", script]);
    cfg["hostname"] = json!("features");
    cfg["linux"]["namespaces"] = json!([
        { "type": "pid" }, { "type": "ipc" }, { "type": "uts" },
        { "type": "mount" }, { "type": "cgroup" }, { "type": "network" }
    ]);
    Oci::new("feat", cfg)
}

/// The mountinfo line (container's) whose mount point is `dst`.
fn mountinfo_line<'a>(mountinfo: &'a str, dst: &str) -> &'a str {
    mountinfo
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some(dst))
        .unwrap_or_else(|| panic!("no mount at {dst} in\n{mountinfo}"))
}

/// Per-mount options, optional fields (propagation), super options.
fn fields(line: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (pre, post) = line.split_once(" - ").unwrap();
    let f: Vec<&str> = pre.split(' ').collect();
    let opts = f[5].split(',').map(String::from).collect();
    let optional = f[6..].iter().map(|s| s.to_string()).collect();
    let sup = post
        .split(' ')
        .nth(2)
        .unwrap_or("")
        .split(',')
        .map(String::from)
        .collect();
    (opts, optional, sup)
}

fn has_prefix(v: &[String], p: &str) -> bool {
    v.iter().any(|s| s.starts_with(p))
}

#[test]
fn umask_comes_from_the_bundle() {
    berth_testkit::privileged!();
    let mut env = sh("umask; touch /tmp/f; mkdir /tmp/d; stat -c %a /tmp/f /tmp/d");
    env.bundle.cfg["process"]["user"]["umask"] = json!(0o027);
    assert_eq!(env.run_ok(), "0027\n640\n750\n");
}

#[test]
fn mount_options_and_propagation_are_applied() {
    berth_testkit::privileged!();
    let src = SharedSource::new();
    let s = src.path().display().to_string();
    let mut env = sh("cat /proc/self/mountinfo");
    env.bundle.cfg["mounts"] = json!([
        { "destination": "/proc", "type": "proc", "source": "proc" },
        { "destination": "/t/shared", "type": "tmpfs", "source": "tmpfs",
          "options": ["shared", "noexec", "nosymfollow", "dirsync", "strictatime", "nodiratime", "mode=700"] },
        { "destination": "/t/private", "type": "tmpfs", "source": "tmpfs",
          "options": ["private", "ro", "noatime", "nr_inodes=100"] },
        { "destination": "/t/unbindable", "type": "bind", "source": s,
          "options": ["bind", "unbindable", "ro", "nosuid", "nodev", "mode=755"] },
        { "destination": "/t/rslave", "source": s,
          "options": ["rbind", "rslave", "rro", "rnoexec"] },
        { "destination": "/t/shared-bind", "source": s,
          "options": ["bind", "shared", "rw", "suid"] },
    ]);
    let mi = env.run_ok();

    let (o, opt, sup) = fields(mountinfo_line(&mi, "/t/shared"));
    assert!(has_prefix(&opt, "shared:"), "shared tmpfs: {opt:?}");
    for w in ["noexec", "nosymfollow", "nodiratime", "nosuid", "nodev"] {
        assert!(o.contains(&w.to_string()), "/t/shared lacks {w}: {o:?}");
    }
    // strictatime: neither relatime nor noatime.
    assert!(
        !o.iter().any(|w| w == "relatime" || w == "noatime"),
        "{o:?}"
    );
    assert!(
        sup.contains(&"dirsync".to_string()),
        "super options {sup:?}"
    );
    assert!(
        sup.contains(&"mode=700".to_string()),
        "super options {sup:?}"
    );

    let (o, opt, sup) = fields(mountinfo_line(&mi, "/t/private"));
    assert!(opt.is_empty(), "private tmpfs has propagation {opt:?}");
    assert!(sup.contains(&"nr_inodes=100".to_string()), "{sup:?}");
    assert!(
        o.contains(&"ro".to_string()) && o.contains(&"noatime".to_string()),
        "{o:?}"
    );

    let (o, opt, _) = fields(mountinfo_line(&mi, "/t/unbindable"));
    assert!(opt.contains(&"unbindable".to_string()), "{opt:?}");
    for w in ["ro", "nosuid", "nodev"] {
        assert!(o.contains(&w.to_string()), "/t/unbindable lacks {w}: {o:?}");
    }

    let (o, opt, _) = fields(mountinfo_line(&mi, "/t/rslave"));
    assert!(
        has_prefix(&opt, "master:"),
        "rslave bind of a shared mount: {opt:?}"
    );
    assert!(!has_prefix(&opt, "shared:"), "{opt:?}");
    assert!(
        o.contains(&"ro".to_string()) && o.contains(&"noexec".to_string()),
        "{o:?}"
    );

    let (o, opt, _) = fields(mountinfo_line(&mi, "/t/shared-bind"));
    assert!(has_prefix(&opt, "shared:"), "{opt:?}");
    assert!(
        o.contains(&"rw".to_string()) && !o.contains(&"nosuid".to_string()),
        "{o:?}"
    );
}

#[test]
fn unknown_or_unsupported_mount_options_are_refused() {
    berth_testkit::privileged!();
    for bad in ["idmap", "tmpcopyup", "bogus"] {
        let mut env = sh("true");
        env.bundle.cfg["mounts"] = json!([
            { "destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": [bad] }
        ]);
        let (code, _, err) = env.run_bundle();
        assert_ne!(code, 0);
        assert!(err.contains(bad), "{bad}: {err}");
        assert!(!env.root.join(&env.id).exists());
    }
}

#[test]
fn rootfs_propagation_is_the_roots() {
    berth_testkit::privileged!();
    for (prop, want) in [
        ("unbindable", "unbindable"),
        ("shared", "shared:"),
        ("rslave", ""),
        ("private", ""),
    ] {
        let mut env = sh("cat /proc/self/mountinfo");
        env.bundle.cfg["linux"]["rootfsPropagation"] = json!(prop);
        let mi = env.run_ok();
        let (_, opt, _) = fields(mountinfo_line(&mi, "/"));
        if want.is_empty() {
            assert!(
                !has_prefix(&opt, "shared:") && !opt.contains(&"unbindable".to_string()),
                "{prop}: {opt:?}"
            );
        } else {
            assert!(has_prefix(&opt, want), "{prop}: {opt:?}");
        }
    }
}

#[test]
fn linux_devices_are_created_and_usable() {
    berth_testkit::privileged!();
    let mut env = sh(
        "stat -c '%F %t:%T %a %u:%g' /dev/mynull /dev/sub/myzero /dev/myfifo /dev/ptmx; \
         echo data > /dev/mynull && echo wrote; head -c 5 /dev/sub/myzero | wc -c",
    );
    env.bundle.cfg["linux"]["devices"] = json!([
        { "path": "/dev/mynull", "type": "c", "major": 1, "minor": 3,
          "fileMode": 0o646, "uid": 1, "gid": 2 },
        { "path": "/dev/sub/myzero", "type": "c", "major": 1, "minor": 5 },
        { "path": "/dev/myfifo", "type": "p", "major": 0, "minor": 0, "fileMode": 0o600 },
        // Standard nodes and links given again (engines list them for
        // privileged containers): the bundle's node wins, except /dev/ptmx,
        // which stays the pts/ptmx link, as with runc.
        { "path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666 },
        { "path": "/dev/ptmx", "type": "c", "major": 5, "minor": 2, "fileMode": 0o666 },
    ]);
    // Deny every device first, as engines do: the nodes asked for must be
    // allowed by the device filter all the same. (The workload has no
    // capabilities: the node's "other" bits let it write.)
    env.bundle.cfg["linux"]["resources"] =
        json!({ "devices": [{ "allow": false, "access": "rwm" }] });
    let out = env.run_ok();
    assert_eq!(
        out,
        "character special file 1:3 646 1:2\n\
         character special file 1:5 666 0:0\n\
         fifo 0:0 600 0:0\n\
         symbolic link 0:0 777 0:0\n\
         wrote\n5\n",
    );
}

#[test]
fn root_made_user_namespace_gets_the_hosts_device_nodes() {
    berth_testkit::privileged!();
    use std::os::unix::fs::PermissionsExt;
    let mut env = sh(
        "stat -c '%F %t:%T' /dev/null /dev/zero; echo x > /dev/null && head -c 3 /dev/zero | wc -c; \
         cat /proc/self/uid_map; cat /vol/f; touch /vol/g 2>/dev/null || echo read-only",
    );
    // A volume below a 0700 directory of the host's root: the mapped root
    // cannot search it, the runtime opens it for the container.
    let vol = tempfile::tempdir().unwrap();
    std::fs::create_dir(vol.path().join("v")).unwrap();
    std::fs::write(vol.path().join("v/f"), "volume\n").unwrap();
    std::fs::set_permissions(vol.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    env.bundle.cfg["mounts"] = json!([
        { "destination": "/proc", "type": "proc", "source": "proc" },
        { "destination": "/vol", "source": vol.path().join("v"), "options": ["rbind", "ro"] },
    ]);
    env.bundle.cfg["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "type": "user" }));
    // The --root's parent must be searchable by the container's root (its
    // own 0700 directory and the bundle's need not be).
    std::fs::set_permissions(env.bundle(), std::fs::Permissions::from_mode(0o755)).unwrap();
    env.bundle.cfg["linux"]["uidMappings"] =
        json!([{ "containerID": 0, "hostID": 200000, "size": 65536 }]);
    env.bundle.cfg["linux"]["gidMappings"] =
        json!([{ "containerID": 0, "hostID": 200000, "size": 65536 }]);
    let out = env.run_ok();
    let mut l = out.lines();
    assert_eq!(l.next(), Some("character special file 1:3"), "{out}");
    assert_eq!(l.next(), Some("character special file 1:5"), "{out}");
    assert_eq!(l.next(), Some("3"), "{out}");
    let map: Vec<&str> = l.next().unwrap().split_whitespace().collect();
    assert_eq!(map, ["0", "200000", "65536"]);
    assert_eq!(l.next(), Some("volume"), "{out}");
    assert_eq!(l.next(), Some("read-only"), "{out}");
}

/// The calling process's cgroup2 path (`0::` line of /proc/self/cgroup).
fn own_cgroup() -> String {
    std::fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("0::").map(String::from))
        .unwrap()
}

#[test]
fn relative_cgroups_path_is_made_below_the_runtimes_cgroup() {
    berth_testkit::privileged!();
    let mut env = sh("grep '^0::' /proc/self/cgroup");
    // No cgroup namespace: the path is the hierarchy's.
    env.bundle.cfg["linux"]["namespaces"] = json!([
        { "type": "pid" }, { "type": "ipc" }, { "type": "uts" },
        { "type": "mount" }, { "type": "network" }
    ]);
    let top = berth_testkit::unique_name("rel");
    env.bundle.cfg["linux"]["cgroupsPath"] = json!(format!("{top}/inner/c"));
    let out = env.run_ok();
    let own = own_cgroup();
    let base = Path::new(&own).parent().unwrap_or(Path::new("/"));
    let want = base.join(&top).join("inner/c");
    // The parents are left as runc leaves them: remove them.
    let h = berth_cgroups::Hierarchy::discover().unwrap();
    let _ = std::fs::remove_dir(h.join(&base.join(&top).join("inner")));
    let _ = std::fs::remove_dir(h.join(&base.join(&top)));
    assert_eq!(out.trim(), format!("0::{}", want.display()));
    assert!(!h.join(&want).exists(), "the container's cgroup was left");
}

/// `readlink /proc/<pid>/ns/<name>` (`net:[4026531992]`).
fn ns_of(pid: &str, name: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{name}"))
        .unwrap()
        .display()
        .to_string()
}

#[test]
fn omitted_namespaces_are_the_runtimes() {
    berth_testkit::privileged!();
    let env = sh("true");
    let mut env = env;
    env.bundle.cfg["process"]["args"] = json!(["/bin/sleep", "60"]);
    env.bundle.cfg["linux"]["namespaces"] = json!([]);
    env.bundle.cfg.as_object_mut().unwrap().remove("hostname");
    env.bundle.write();
    // Not a pipe: the created container keeps its stdio open.
    let log = env.bundle().join("create.log");
    let code = env.create_to(&log, &[]);
    assert_eq!(code, 0, "{}", std::fs::read_to_string(&log).unwrap());
    let pid = env.init_pid().to_string();
    for ns in ["mnt", "pid", "net", "ipc", "uts", "cgroup", "user"] {
        assert_eq!(ns_of(&pid, ns), ns_of("self", ns), "namespace {ns}");
    }
    // Nothing was mounted into the shared namespace; the root is the
    // bundle's (chroot).
    let rootfs = env.bundle().join("rootfs").display().to_string();
    let after = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !after.lines().any(|l| l.contains(&rootfs)),
        "mounts under the root in the runtime's namespace:\n{after}"
    );
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/root")).unwrap(),
        Path::new(&rootfs)
    );

    // What would need a mount in the shared namespace is refused.
    let mut env2 = sh("true");
    env2.bundle.cfg["linux"]["namespaces"] = json!([{ "type": "pid" }]);
    env2.bundle.cfg["mounts"] =
        json!([{ "destination": "/t", "type": "tmpfs", "source": "tmpfs" }]);
    env2.bundle.cfg.as_object_mut().unwrap().remove("hostname");
    let (code, _, err) = env2.run_bundle();
    assert_ne!(code, 0);
    assert!(
        err.contains("mount namespace of the container's own"),
        "{err}"
    );
    assert!(!env2.root.join(&env2.id).exists());
}

/// A pod sandbox's stand-in: new net, ipc, uts and pid namespaces held
/// by `sleep` (pid 1 there); killed on drop (with unshare, `--kill-child`).
struct Sandbox(std::process::Child);

impl Sandbox {
    fn new() -> Sandbox {
        Sandbox(
            Command::new("unshare")
                .args([
                    "--net",
                    "--ipc",
                    "--uts",
                    "--pid",
                    "--kill-child",
                    "sleep",
                    "60",
                ])
                .spawn()
                .unwrap(),
        )
    }

    /// The sleeping pid 1 of the sandbox's pid namespace (host pid).
    fn pid(&self) -> String {
        let p = self.0.id();
        for _ in 0..200 {
            let c =
                std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")).unwrap_or_default();
            if let Some(c) = c.split_whitespace().next() {
                // After its exec, the child holds the sandbox's namespaces.
                if std::fs::read_link(format!("/proc/{c}/exe"))
                    .is_ok_and(|e| e.to_string_lossy().contains("sleep"))
                {
                    return c.to_string();
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the sandbox's sleep did not start");
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn pod_containers_join_the_sandboxes_namespaces_by_path() {
    berth_testkit::privileged!();
    let sandbox = Sandbox::new();
    let sp = sandbox.pid();
    let mut env = sh(
        "for n in net ipc uts pid mnt; do readlink /proc/self/ns/$n; done; hostname; \
         echo $$; cat /proc/1/comm",
    );
    env.bundle.cfg["hostname"] = json!("pod-host");
    env.bundle.cfg["linux"]["namespaces"] = json!([
        { "type": "mount" }, { "type": "cgroup" },
        { "type": "network", "path": format!("/proc/{sp}/ns/net") },
        { "type": "ipc", "path": format!("/proc/{sp}/ns/ipc") },
        { "type": "uts", "path": format!("/proc/{sp}/ns/uts") },
        { "type": "pid", "path": format!("/proc/{sp}/ns/pid") },
    ]);
    let out = env.run_ok();
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l.len(), 8, "{out}");
    for (i, n) in ["net", "ipc", "uts", "pid"].iter().enumerate() {
        assert_eq!(l[i], ns_of(&sp, n), "namespace {n}");
    }
    // Its own mount namespace: neither the sandbox's nor the runtime's.
    assert_ne!(l[4], ns_of(&sp, "mnt"));
    assert_ne!(l[4], ns_of("self", "mnt"));
    // The hostname is set in the joined UTS namespace, as runc does.
    assert_eq!(l[5], "pod-host");
    let uts = Command::new("nsenter")
        .args(["-t", &sp, "-u", "hostname"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&uts.stdout).trim(), "pod-host");
    // A process of the sandbox's pid namespace, which it sees.
    assert_ne!(l[6], "1");
    assert_eq!(l[7], "sleep");
}

#[test]
fn joined_user_namespace_owns_the_created_ones() {
    berth_testkit::privileged!();
    // A user namespace (root inside = host 210000) held by `sleep`.
    let mut holder = berth_namespaces::Spawner::new(["/bin/sleep", "60"])
        .namespaces(berth_namespaces::Namespaces::USER)
        .uid_map(berth_namespaces::IdMap::new(0, 210000, 65536))
        .gid_map(berth_namespaces::IdMap::new(0, 210000, 65536))
        .spawn()
        .unwrap();
    let hp = holder.pid().to_string();
    let want_user = ns_of(&hp, "user");
    let mut env = sh(
        "readlink /proc/self/ns/user; hostname; cat /proc/self/uid_map; \
         stat -c '%t:%T' /dev/null; echo x > /dev/null && echo ok",
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(env.bundle(), std::fs::Permissions::from_mode(0o755)).unwrap();
    env.bundle.cfg["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "type": "user", "path": format!("/proc/{hp}/ns/user") }));
    let r = env.run_bundle();
    holder.kill(libc::SIGKILL).unwrap();
    holder.wait().unwrap();
    let (code, out, err) = r;
    assert_eq!(code, 0, "{err}");
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], want_user, "{out}");
    // The UTS namespace made in it is its own: the hostname could be set.
    assert_eq!(l[1], "features");
    assert_eq!(
        l[2].split_whitespace().collect::<Vec<_>>(),
        ["0", "210000", "65536"]
    );
    assert_eq!(&l[3..], ["1:3", "ok"]);
}

/// Issue 21 item 3 through berth-oci: a bundle whose seccomp profile
/// allows the workload's calls and nothing of the runtime's setup
/// (`close_range`, `chdir`, `fork`, signal resets, `setgroups`, `capset`,
/// ...) runs, by `run` and by `create` + `start`, and the workload runs
/// under the filter (`Seccomp: 2`). With `noNewPrivileges`, as runc: without
/// it the filter goes in before the identity and capability calls (only
/// CAP_SYS_ADMIN can install it then), which the profile must allow.
#[test]
fn seccomp_profile_allowing_only_the_workload_runs() {
    berth_testkit::privileged!();
    let seccomp = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{ "names": berth_testkit::BUSYBOX_CAT_SYSCALLS, "action": "SCMP_ACT_ALLOW" }]
    });
    let mut env = sh("");
    env.bundle.cfg["process"]["args"] = json!(["/bin/cat", "/proc/self/status"]);
    env.bundle.cfg["process"]["noNewPrivileges"] = json!(true);
    env.bundle.cfg["linux"]["seccomp"] = seccomp;
    let out = env.run_ok();
    assert!(out.lines().any(|l| l == "Seccomp:\t2"), "{out}");
    env.bundle.write();
    env.create_start();
    env.wait_status("stopped");
    assert!(
        env.output().lines().any(|l| l == "Seccomp:\t2"),
        "{}",
        env.output()
    );
    env.ok(&["delete", "ID"]);
}
