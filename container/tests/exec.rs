//! `Container::exec` as `docker exec`: user and groups (by name from the
//! container's own /etc/passwd), capabilities relative to the container's,
//! no_new_privs, detached processes, output capture.

mod common;

use std::time::{Duration, Instant};

use berth::{CapSet, Capabilities, Container, Rootfs, Stdio};
use common::state_root;

/// A running container on an overlay of `top` over busybox.
fn running(id: &str, root: &tempfile::TempDir, top: &std::path::Path) -> berth::ContainerBuilder {
    Container::builder(id)
        .rootfs(Rootfs::layers([
            top.to_path_buf(),
            berth_testkit::busybox_rootfs().to_path_buf(),
        ]))
        .state_root(root.path())
        .stdin(Stdio::Null)
        .command(["/bin/sleep", "60"])
}

fn out(o: std::process::Output) -> String {
    assert!(
        o.status.success(),
        "{:?}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// The `Cap*:` and `NoNewPrivs:` lines of the exec'd process's own status.
fn status_field(
    c: &Container,
    field: &str,
    f: impl FnOnce(berth::Exec<'_>) -> berth::Exec<'_>,
) -> String {
    let script = format!("grep ^{field}: /proc/self/status | cut -f2");
    out(f(c.exec(["/bin/sh", "-c", &script])).output().unwrap())
        .trim()
        .to_string()
}

fn mask(set: CapSet) -> String {
    format!("{:016x}", set.bits())
}

/// `user_name` is looked up in the container's own /etc/passwd and
/// /etc/group (supplementary groups included), `user`+`groups` are used as
/// given; a /etc/passwd that links to a host file is resolved inside the
/// container (where the target does not exist): the host's user is never
/// found, and nothing is started.
#[test]
fn exec_user_and_groups() {
    berth_testkit::privileged!();
    let root = state_root();
    let top = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(top.path().join("etc")).unwrap();
    std::fs::write(
        top.path().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nalice:x:1234:2345:A:/:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        top.path().join("etc/group"),
        "root:x:0:\nstaff:x:2345:\nextra:x:3456:bob,alice\n",
    )
    .unwrap();
    let id = berth_testkit::unique_name("exec-user");
    let c = running(&id, &root, top.path()).spawn().unwrap();
    let ids = |e: berth::Exec<'_>| out(e.output().unwrap());
    let sh = ["/bin/sh", "-c", "id -u; id -g; id -G"];
    assert_eq!(ids(c.exec(sh)), "0\n0\n0\n");
    assert_eq!(
        ids(c.exec(sh).user_name("alice")),
        "1234\n2345\n2345 3456\n"
    );
    assert_eq!(ids(c.exec(sh).user_name("alice:root")), "1234\n0\n0\n");
    assert_eq!(ids(c.exec(sh).user(7, 8).groups([9, 10])), "7\n8\n8 9 10\n");
    assert_eq!(ids(c.exec(sh).user(7, 8)), "7\n8\n8\n");
    let e = c.exec(sh).user_name("mallory").output().unwrap_err();
    assert!(e.to_string().contains("no user \"mallory\""), "{e}");
    c.destroy().unwrap();

    // /etc/passwd -> <host dir>/passwd (absolute): the host's file is never read.
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("passwd"), "evil:x:4242:4242::/:/bin/sh\n").unwrap();
    let top2 = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(top2.path().join("etc")).unwrap();
    std::os::unix::fs::symlink(host.path().join("passwd"), top2.path().join("etc/passwd")).unwrap();
    let id = berth_testkit::unique_name("exec-user2");
    let c = running(&id, &root, top2.path()).spawn().unwrap();
    let procs = |c: &Container| c.cgroup().map(|g| g.procs().unwrap().len());
    let before = procs(&c);
    let e = c.exec(sh).user_name("evil").output().unwrap_err();
    assert!(e.to_string().contains("no user \"evil\""), "{e}");
    assert_eq!(procs(&c), before, "a process was started");
    c.destroy().unwrap();
}

/// Capabilities are the container's, with `cap_add` (only from its bounding
/// set) and `cap_drop` (every set) applied; exceeding the bounding set is
/// refused unless the sets are given explicitly.
#[test]
fn exec_capabilities_relative_to_the_container() {
    berth_testkit::privileged!();
    let root = state_root();
    let top = tempfile::tempdir().unwrap();
    let docker = CapSet::docker_default();
    let net_raw = CapSet::from_names(["NET_RAW"]).unwrap();
    let kill = CapSet::from_names(["KILL"]).unwrap();

    let id = berth_testkit::unique_name("exec-caps");
    let c = running(&id, &root, top.path()).spawn().unwrap();
    assert_eq!(status_field(&c, "CapEff", |e| e), mask(docker));
    assert_eq!(status_field(&c, "CapBnd", |e| e), mask(docker));
    let dropped = docker.difference(net_raw);
    assert_eq!(
        status_field(&c, "CapEff", |e| e.cap_drop("NET_RAW")),
        mask(dropped)
    );
    assert_eq!(
        status_field(&c, "CapBnd", |e| e.cap_drop("NET_RAW")),
        mask(dropped)
    );
    assert_eq!(
        status_field(&c, "CapEff", |e| e.cap_drop("ALL").cap_add("KILL")),
        mask(CapSet::empty())
    );
    assert_eq!(
        status_field(&c, "CapEff", |e| e.cap_drop("ALL")),
        mask(CapSet::empty())
    );
    // SYS_ADMIN is not in the container's bounding set: refused, nothing runs.
    let e = c
        .exec(["/bin/true"])
        .cap_add("SYS_ADMIN")
        .status()
        .unwrap_err();
    assert!(e.to_string().contains("CAP_SYS_ADMIN"), "{e}");
    assert!(e.to_string().contains("bounding set"), "{e}");
    // Explicitly asked for: allowed.
    let more = docker.union(CapSet::from_names(["SYS_ADMIN"]).unwrap());
    assert_eq!(
        status_field(&c, "CapBnd", |e| e
            .capabilities(Capabilities::uniform(more))),
        mask(more)
    );
    c.destroy().unwrap();

    // A container with KILL in its bounding set only: cap_add raises it into
    // the effective set.
    let id = berth_testkit::unique_name("exec-caps2");
    let c = running(&id, &root, top.path())
        .capabilities(Capabilities {
            bounding: docker,
            effective: CapSet::empty(),
            permitted: CapSet::empty(),
            inheritable: CapSet::empty(),
            ambient: CapSet::empty(),
        })
        .spawn()
        .unwrap();
    assert_eq!(status_field(&c, "CapEff", |e| e), mask(CapSet::empty()));
    assert_eq!(
        status_field(&c, "CapEff", |e| e.cap_add("KILL")),
        mask(kill)
    );
    assert_eq!(
        status_field(&c, "CapPrm", |e| e.cap_add("KILL")),
        mask(kill)
    );
    assert_eq!(
        status_field(&c, "CapEff", |e| e.cap_add("ALL")),
        mask(docker)
    );
    c.destroy().unwrap();
}

/// `no_new_privs` defaults to the container's and can be set per exec.
#[test]
fn exec_no_new_privs() {
    berth_testkit::privileged!();
    let root = state_root();
    let top = tempfile::tempdir().unwrap();
    let id = berth_testkit::unique_name("exec-nnp");
    let c = running(&id, &root, top.path())
        .no_new_privs(false)
        .seccomp(berth::Seccomp::Unconfined)
        .spawn()
        .unwrap();
    assert_eq!(status_field(&c, "NoNewPrivs", |e| e), "0");
    assert_eq!(
        status_field(&c, "NoNewPrivs", |e| e.no_new_privs(true)),
        "1"
    );
    c.destroy().unwrap();
}

fn quiet(e: berth::Exec<'_>) -> berth::Exec<'_> {
    e.stdin(Stdio::Null).stdout(Stdio::Null).stderr(Stdio::Null)
}

fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let state = s.rsplit_once(") ").map(|x| x.1).unwrap_or("");
            !state.starts_with('Z')
        }
        Err(_) => false,
    }
}

/// A detached exec runs on when its handle is dropped (even from a thread
/// that then ends: no parent death signal), can be waited on, and dies with
/// the container; a non-detached one is killed with its handle.
#[test]
fn exec_detached() {
    berth_testkit::privileged!();
    let root = state_root();
    let top = tempfile::tempdir().unwrap();
    let id = berth_testkit::unique_name("exec-detach");
    let c = running(&id, &root, top.path()).spawn().unwrap();

    let pid = std::thread::scope(|s| {
        s.spawn(|| {
            let child = quiet(c.exec(["/bin/sleep", "60"]))
                .detach(true)
                .spawn()
                .unwrap();
            assert!(child.is_detached());
            child.pid()
        })
        .join()
        .unwrap()
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(pid), "the detached exec died with its handle");

    let child = quiet(c.exec(["/bin/sleep", "60"])).spawn().unwrap();
    let attached = child.pid();
    drop(child);
    assert!(!alive(attached), "the attached exec outlived its handle");

    let mut child = quiet(c.exec(["/bin/sh", "-c", "exit 3"]))
        .detach(true)
        .spawn()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(3));

    let child = c
        .exec(["/bin/sh", "-c", "echo out; echo err >&2"])
        .stdin(Stdio::Null)
        .stdout(Stdio::Piped)
        .stderr(Stdio::Piped)
        .spawn()
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        (&o.stdout[..], &o.stderr[..]),
        (&b"out\n"[..], &b"err\n"[..])
    );

    c.destroy().unwrap();
    let t0 = Instant::now();
    while alive(pid) && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(pid), "the detached exec outlived the container");
}
