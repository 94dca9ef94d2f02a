//! The `image_commit` program (berth as a library), privileged tier: a
//! base image built from busybox lacks the changes; a container from it
//! changes files; its diff lists exactly them (a whiteout for the deleted
//! file); the committed image has two layers and the container's env and
//! working directory; containers of the new image see the changes; and no
//! container state, mount or work directory is left.

mod leftovers;

use leftovers::{leftovers, run_lesson};

#[test]
fn image_commit_carries_the_changes_into_a_new_image() {
    berth_testkit::privileged!();
    let rootfs = berth_testkit::busybox_rootfs().to_str().unwrap();
    let (text, pid) = run_lesson(env!("CARGO_BIN_EXE_image_commit"), &[rootfs]);
    let lines: Vec<&str> = text.lines().collect();
    let with = |prefix: &str| -> Vec<&str> {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix(prefix))
            .collect()
    };

    assert_eq!(
        with("base image: "),
        ["no /app/run.sh", "/etc/group present"],
        "{text}"
    );
    assert_eq!(
        with("build: "),
        ["app (prod) version 2 in /root (exit status: 0)"],
        "{text}"
    );
    let diff: Vec<&str> = with("diff: ").into_iter().skip(1).collect();
    assert_eq!(
        diff,
        [
            "app",
            "app/run.sh",
            "etc",
            "etc/app-version",
            "etc/.wh.group"
        ],
        "{text}"
    );
    let committed = with("committed app:v2: ");
    assert_eq!(committed.len(), 1, "{text}");
    assert!(committed[0].starts_with("2 layers, "), "{text}");
    assert!(committed[0].contains("\"APP_MODE=prod\""), "{text}");
    assert!(committed[0].ends_with("cwd Some(\"/root\")"), "{text}");
    assert_eq!(
        with("new image: "),
        ["app (prod) version 2 in /root", "/etc/group gone"],
        "{text}"
    );
    assert_eq!(
        with("new image, default command: "),
        ["app (prod) version 2 in /root"],
        "{text}"
    );

    let work = with("working in ")[0];
    assert!(
        work.ends_with(&format!("/berth-image-commit-{pid}")),
        "{text}"
    );
    assert!(text.contains(&format!("removed {work}")), "{text}");
    assert!(!std::path::Path::new(work).exists(), "{work} left behind");
    for id in ["probe", "build", "show", "default"] {
        let left = leftovers(&format!("{id}-{pid}"));
        assert!(left.is_empty(), "left behind: {left:#?}");
    }
}
