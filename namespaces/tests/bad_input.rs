//! Bad input: a clear error, and nothing left behind (fds, children, mounts).
//! One test on purpose: the counters are process-wide.
mod common;

use berth_namespaces::{Error, IdMap, Namespaces, Spawner, Step};

fn invalid(s: &mut Spawner) -> String {
    match s.spawn() {
        Err(e @ Error::InvalidConfig { .. }) => e.to_string(),
        Err(other) => panic!("expected InvalidConfig, got {other:?}"),
        Ok(_) => panic!("spawn accepted bad input"),
    }
}

#[test]
fn bad_input_is_rejected_and_leaves_nothing() {
    berth_testkit::privileged!();
    // Warm up lazily opened things (the rootfs fixture, /dev/null paths).
    let _ = berth_testkit::busybox_rootfs();
    let fds = berth_testkit::open_fds();
    let kids = berth_testkit::child_pids();
    let mounts = berth_testkit::mount_count();

    let empty: [&str; 0] = [];
    let e = invalid(&mut Spawner::new(empty));
    assert!(e.contains("empty argv"), "{e}");

    let e = invalid(
        Spawner::new(["/bin/true"])
            .namespaces(Namespaces::USER)
            .uid_map(IdMap::new(0, 100_000, 0)),
    );
    assert!(e.contains("count 0"), "{e}");

    let e = invalid(
        Spawner::new(["/bin/true"])
            .namespaces(Namespaces::USER)
            .uid_map(IdMap::new(0, 100_000, 1000))
            .uid_map(IdMap::new(500, 200_000, 10)),
    );
    assert!(e.contains("overlap inside"), "{e}");

    let e = invalid(
        Spawner::new(["/bin/true"])
            .namespaces(Namespaces::USER)
            .gid_map(IdMap::new(0, 100_000, 1000))
            .gid_map(IdMap::new(2000, 100_500, 10)),
    );
    assert!(e.contains("overlap outside"), "{e}");

    let e = invalid(
        Spawner::new(["/bin/true"])
            .namespaces(Namespaces::USER)
            .uid_map(IdMap::new(0, 100_000, 1000))
            .step(Step::set_uid(5000)),
    );
    assert!(e.contains("uid 5000 is not mapped"), "{e}");

    let long = "h".repeat(65);
    let e = invalid(
        Spawner::new(["/bin/true"])
            .namespaces(Namespaces::UTS)
            .hostname(long),
    );
    assert!(e.contains("65 bytes"), "{e}");

    let e = invalid(Spawner::new(["/bin/true"]).hostname("x"));
    assert!(e.contains("needs Namespaces::UTS"), "{e}");

    let e = invalid(Spawner::new(["/bin/true"]).uid_map(IdMap::new(0, 0, 1)));
    assert!(e.contains("without Namespaces::USER"), "{e}");

    let e = invalid(Spawner::new(["/bin/true"]).step(Step::mkdir("/tmp/a\0b", 0o755)));
    assert!(e.contains("NUL"), "{e}");

    let e = invalid(
        Spawner::new(["/bin/true"])
            .namespaces(Namespaces::NET)
            .join_path("/proc/self/ns/net", Namespaces::NET),
    );
    assert!(e.contains("both created and joined"), "{e}");

    // A namespace path that does not exist.
    let e = Spawner::new(["/bin/true"])
        .join_path("/proc/999999999/ns/net", Namespaces::NET)
        .spawn()
        .unwrap_err();
    assert_eq!(e.errno(), Some(libc::ENOENT), "{e}");
    assert!(e.to_string().contains("/proc/999999999/ns/net"), "{e}");

    // Failures inside the child: reported, child killed and reaped.
    let e = Spawner::new(["/no/such/binary"])
        .namespaces(Namespaces::PID | Namespaces::NET)
        .spawn()
        .unwrap_err();
    assert_eq!(e.errno(), Some(libc::ENOENT));
    let e = Spawner::new(["/bin/true"])
        .namespaces(Namespaces::MOUNT)
        .step(Step::make_private("/", true))
        .step(Step::mount(
            Some("none"),
            "/nonexistent-berth-target",
            Some("tmpfs"),
            0,
            None,
        ))
        .spawn()
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("mount(\"none\" -> \"/nonexistent-berth-target\""),
        "{e}"
    );
    let e = Spawner::new(["/bin/true"])
        .namespaces(Namespaces::NET)
        .after_clone(|_| Err("no network for you".into()))
        .spawn()
        .unwrap_err();
    assert!(matches!(e, Error::Hook { .. }), "{e:?}");
    let e = Spawner::new(["/bin/true"])
        .namespaces(Namespaces::PID)
        .spawn_stopped()
        .and_then(|mut c| {
            c.kill(libc::SIGKILL)?;
            c.wait()
        });
    assert!(e.is_ok());
    // Dropping a created-only child cleans it up too.
    drop(
        Spawner::new(["/bin/true"])
            .namespaces(Namespaces::PID)
            .spawn_stopped()
            .unwrap(),
    );

    assert_eq!(berth_testkit::open_fds(), fds, "fd leak");
    assert_eq!(berth_testkit::child_pids(), kids, "child leak");
    assert_eq!(berth_testkit::mount_count(), mounts, "mount leak");
}
