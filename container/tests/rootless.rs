//! Rootless tier: the test binary re-executes itself as uid/gid 65534
//! (setpriv) and runs containers with a user namespace.

mod common;

use std::io::Read;

use berth::{Container, Rootfs, Stdio};

const INNER: &str = "BERTH_CONTAINER_ROOTLESS_INNER";

fn run(b: berth::ContainerBuilder, script: &str) -> String {
    let mut c = b
        .command(["/bin/sh", "-c", script])
        .stdin(Stdio::Null)
        .stdout(Stdio::Piped)
        .spawn()
        .unwrap();
    let mut out = String::new();
    c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let st = c.wait().unwrap();
    c.destroy().unwrap();
    assert!(st.success(), "{st:?}: {out}");
    out
}

/// Runs as uid 65534 (only when re-executed by `rootless_container_as_nobody`).
#[test]
fn rootless_inner() {
    let Some(spec) = std::env::var_os(INNER) else {
        return;
    };
    let spec = spec.to_string_lossy().into_owned();
    let (state, rootfs) = spec.split_once(':').unwrap();
    // SAFETY: geteuid cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 65534);
    let script = "id -u; cat /proc/self/uid_map | tr -s ' '; hostname; echo pid=$$; \
                  cat /sys/class/net/lo/flags; echo x > /dev/null && echo devnull; \
                  grep Seccomp: /proc/self/status";
    let dir_out = run(
        Container::builder("rootless-dir")
            .rootfs(Rootfs::dir(rootfs))
            .state_root(state)
            .hostname("rl"),
        script,
    );
    assert_eq!(
        dir_out,
        "0\n 0 65534 1\nrl\npid=1\n0x9\ndevnull\nSeccomp:\t2\n"
    );
    let ovl_out = run(
        Container::builder("rootless-ovl")
            .rootfs(Rootfs::layers([rootfs]))
            .state_root(state)
            .hostname("rl"),
        &format!("{script}; echo w > /tmp/rootless-w && cat /tmp/rootless-w"),
    );
    assert_eq!(
        ovl_out,
        "0\n 0 65534 1\nrl\npid=1\n0x9\ndevnull\nSeccomp:\t2\nw\n"
    );
    // The write went to the private overlay layer, not the shared rootfs.
    assert!(!std::path::Path::new(rootfs).join("tmp/rootless-w").exists());
    // The host's network namespace: /sys is the host's (bound), but its
    // /sys/fs/cgroup tree is not shown; the container has no cgroup of its
    // own (none delegated) and sees an empty directory.
    let sys_out = run(
        Container::builder("rootless-hostnet")
            .rootfs(Rootfs::dir(rootfs))
            .state_root(state)
            .network(berth::Network::host()),
        "ls -A /sys/fs/cgroup | wc -l; ls /sys/class/net | grep -c .",
    );
    let (cg, links) = sys_out.split_once('\n').unwrap();
    assert_eq!(cg, "0", "the host's cgroup tree is visible: {sys_out}");
    assert_ne!(links.trim(), "0", "/sys is not the host's: {sys_out}");
    assert_eq!(std::fs::read_dir(state).unwrap().count(), 0);
    println!("ROOTLESS-CONTAINER-OK");
}

#[test]
fn rootless_container_as_nobody() {
    berth_testkit::privileged!();
    if std::env::var_os(INNER).is_some() {
        return;
    }
    common::AsNobody::new().run(&[], "rootless_inner", INNER, "ROOTLESS-CONTAINER-OK");
}
