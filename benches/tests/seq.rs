//! `berth-seq` runs its containers and leaves nothing behind, also when one
//! fails; bad arguments are named.

use berth_benches::count_prefixed;
use std::process::{Command, Output};

fn seq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth-seq"))
        .args(args)
        .output()
        .unwrap()
}

/// `berth-seq` with three containers named `<id>-0..2`, state under `root`.
fn three(rootfs: &str, id: &str, root: &str, read_only: bool, cmd: &[&str]) -> Output {
    let mut a = vec![
        "--rootfs",
        rootfs,
        "-n",
        "3",
        "--name",
        id,
        "--state-root",
        root,
    ];
    if read_only {
        a.push("--read-only");
    }
    a.push("--");
    a.extend_from_slice(cmd);
    seq(&a)
}

/// Nothing at all in `dir` (the test's own state root: also no
/// `.creating-…`/`.removing-…` leftovers).
fn empty(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}

fn cgroup_parent() -> std::path::PathBuf {
    berth_cgroups::Hierarchy::discover()
        .unwrap()
        .own_cgroup_dir()
        .join("berth")
}

#[test]
fn runs_every_container_and_stops_at_a_failure() {
    berth_testkit::privileged!();
    let rootfs = berth_testkit::busybox_rootfs().to_str().unwrap().to_owned();
    let state = tempfile::tempdir().unwrap();
    let root = state.path().to_str().unwrap();
    let id = berth_testkit::unique_name("bseq");
    let mounts = berth_testkit::mount_count();

    // Each container prints its hostname (berth's default: the container's
    // id) on the inherited stdout: three lines, in order, show that three
    // containers ran one after another.
    let out = three(&rootfs, &id, root, true, &["/bin/hostname"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names = String::from_utf8_lossy(&out.stdout);
    let want: Vec<String> = (0..3).map(|i| format!("{id}-{i}")).collect();
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        want,
        "one container per line, in order"
    );
    assert!(empty(state.path()));
    assert!(count_prefixed(&cgroup_parent(), &id) == 0);

    // The second container fails: the run stops there, says which one and
    // how, and the failed container is gone too.
    let second = format!("{id}-1");
    let out = three(
        &rootfs,
        &id,
        root,
        false,
        &[
            "/bin/sh",
            "-c",
            "[ \"$(hostname)\" != \"$0\" ] || exit 3; hostname",
            &second,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("container {id}-1")) && err.contains("exit status: 3"),
        "{err}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{id}-0")
    );
    assert!(empty(state.path()), "state left after a failure");
    assert!(
        count_prefixed(&cgroup_parent(), &id) == 0,
        "cgroup left after a failure"
    );
    assert_eq!(berth_testkit::mount_count(), mounts);
}

#[test]
fn bad_arguments_are_named() {
    for (args, want) in [
        (&["-n", "3", "--", "/bin/true"][..], "--rootfs is required"),
        (
            &["--rootfs", "/", "-n", "x", "--", "/bin/true"][..],
            "-n: \"x\" is not a number",
        ),
        (&["--rootfs", "/"][..], "no command after --"),
        (
            &["--rootfs", "/", "--bogus"][..],
            "unknown argument \"--bogus\"",
        ),
    ] {
        let out = seq(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
