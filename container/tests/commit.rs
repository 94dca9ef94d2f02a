//! A container's changes as an OCI layer (`Container::diff`), a new image
//! from them (`Container::commit`), an image config without an image
//! (`ContainerBuilder::image_config`).

mod common;

use std::collections::BTreeSet;
use std::io::Read;

use berth::{Container, Rootfs, Stdio};
use berth_overlay::{Compression, ImageBuilder, ImageConfig, ImageLayout, LayerStore};
use common::{busybox, state_root};

/// Changes made inside: a new file, a new directory with a file, a deleted
/// file in an existing directory, a deleted directory.
const CHANGES: &str =
    "echo new > /newfile && mkdir /newdir && echo x > /newdir/f && rm /etc/group && rmdir /home";

/// Exactly what `CHANGES` makes the layer hold: the parent directory of a
/// deletion, whiteouts, the new entries; nothing of berth's own
/// (`etc/hostname`, `etc/hosts`).
const EXPECTED: [&str; 6] = [
    ".wh.home",
    "etc/",
    "etc/.wh.group",
    "newdir/",
    "newdir/f",
    "newfile",
];

/// A busybox image in a new layout (`busybox:latest`), imported into a store.
fn busybox_image(dir: &std::path::Path) -> (LayerStore, Rootfs) {
    let layout = dir.join("layout");
    ImageBuilder::new("busybox:latest")
        .layer_dir(berth_testkit::busybox_rootfs())
        .env(["FROM_IMAGE=yes"])
        .cmd(["/bin/sh"])
        .write(&layout)
        .unwrap();
    let store = LayerStore::open(dir.join("store")).unwrap();
    let rootfs = Rootfs::image(&store, &ImageLayout::open(&layout).unwrap(), "latest").unwrap();
    (store, rootfs)
}

/// The entry names of an uncompressed layer tar, directories with a `/`.
fn entries(tar: &[u8]) -> BTreeSet<String> {
    let mut a = tar::Archive::new(tar);
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let mut p = e.path().unwrap().to_string_lossy().into_owned();
            if e.header().entry_type().is_dir() && !p.ends_with('/') {
                p.push('/');
            }
            p
        })
        .collect()
}

fn expected() -> BTreeSet<String> {
    EXPECTED.iter().map(|s| s.to_string()).collect()
}

/// `diff` of a running container (changes made by an exec) and of one that
/// exited (its mount namespace gone) holds exactly the changes, with OCI
/// whiteouts for the deleted file and directory; the blob's digests are
/// those of what was written.
#[test]
fn diff_is_exactly_the_changes_while_running_and_after_exit() {
    berth_testkit::privileged!();
    let root = state_root();
    let dir = tempfile::tempdir().unwrap();
    let (_store, rootfs) = busybox_image(dir.path());

    let id = berth_testkit::unique_name("diff-run");
    let c = Container::builder(&id)
        .rootfs(rootfs.clone())
        .state_root(root.path())
        .stdin(Stdio::Null)
        .command(["/bin/sleep", "60"])
        .spawn()
        .unwrap();
    assert!(c
        .exec(["/bin/sh", "-c", CHANGES])
        .status()
        .unwrap()
        .success());
    let mut tar = Vec::new();
    let blob = c.diff(&mut tar, Compression::None).unwrap();
    assert_eq!(entries(&tar), expected());
    assert_eq!(blob.diff_id, blob.digest);
    assert_eq!(blob.size, tar.len() as u64);
    let mut a = tar::Archive::new(&tar[..]);
    let newfile = a
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().to_str() == Some("newfile"))
        .map(|mut e| {
            let mut s = String::new();
            e.read_to_string(&mut s).unwrap();
            s
        });
    assert_eq!(newfile.as_deref(), Some("new\n"));
    c.destroy().unwrap();

    let id = berth_testkit::unique_name("diff-exit");
    let mut c = Container::builder(&id)
        .rootfs(rootfs)
        .state_root(root.path())
        .stdin(Stdio::Null)
        .command(["/bin/sh", "-c", CHANGES])
        .spawn()
        .unwrap();
    assert!(c.wait().unwrap().success());
    // The container's processes are gone, and with them its mount namespace.
    assert!(!std::path::Path::new(&format!("/proc/{}/ns/mnt", c.pid())).exists());
    let mut tar = Vec::new();
    c.diff(&mut tar, Compression::None).unwrap();
    assert_eq!(entries(&tar), expected());
    c.destroy().unwrap();
}

/// `commit` writes an image (base layers + the changes, config with the
/// container's env, working directory and command) that runs with the
/// changes and that config; a directory rootfs has no layer to diff.
#[test]
fn commit_then_run_the_new_image() {
    berth_testkit::privileged!();
    let root = state_root();
    let dir = tempfile::tempdir().unwrap();
    let (store, rootfs) = busybox_image(dir.path());
    let id = berth_testkit::unique_name("commit");
    let mut c = Container::builder(&id)
        .rootfs(rootfs)
        .state_root(root.path())
        .stdin(Stdio::Null)
        .env("COMMITTED", "v1")
        .current_dir("/etc")
        .stdout(Stdio::Null)
        .command([
            "/bin/sh",
            "-c",
            &format!("{CHANGES}; echo default-cmd; echo $COMMITTED $FROM_IMAGE; pwd"),
        ])
        .spawn()
        .unwrap();
    assert!(c.wait().unwrap().success());
    let new_layout = dir.path().join("committed");
    let img = c.commit(&store, &new_layout, "snap").unwrap();
    c.destroy().unwrap();
    assert_eq!(img.layers.len(), 2);
    assert!(img.config.env.contains(&"COMMITTED=v1".to_string()));
    assert!(!img.config.env.iter().any(|e| e.starts_with("HOSTNAME=")));
    assert_eq!(img.config.working_dir.as_deref(), Some("/etc"));

    let l = ImageLayout::open(&new_layout).unwrap();
    let run = |cmd: Option<&str>| {
        let id = berth_testkit::unique_name("committed");
        let mut b = Container::builder(&id)
            .rootfs(Rootfs::image(&store, &l, "snap").unwrap())
            .state_root(root.path())
            .stdin(Stdio::Null)
            .stdout(Stdio::Piped)
            .stderr(Stdio::Null);
        if let Some(cmd) = cmd {
            b = b.command(["/bin/sh", "-c", cmd]);
        }
        let mut c = b.spawn().unwrap();
        let mut out = String::new();
        c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        let st = c.wait().unwrap();
        c.destroy().unwrap();
        (st, out)
    };
    let (st, out) = run(Some(
        "cat /newfile /newdir/f; test -e /etc/group || echo no-group; test -e /home || echo no-home; echo $COMMITTED $FROM_IMAGE; pwd",
    ));
    assert!(st.success(), "{out}");
    assert_eq!(out, "new\nx\nno-group\nno-home\nv1 yes\n/etc\n");
    // The image's Cmd is the container's command (its changes fail now,
    // they are there already; the rest runs, with the image's env and cwd).
    let (_, out) = run(None);
    assert_eq!(out, "default-cmd\nv1 yes\n/etc\n");
    let e = std::fs::read_dir(new_layout.join("blobs/sha256"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .count();
    assert_eq!(e, 0, "temporary files left in the layout");

    // A directory rootfs has no writable layer of its own.
    let id = berth_testkit::unique_name("diff-dir");
    let c = busybox(&id, &root).command(["/bin/true"]).spawn().unwrap();
    let err = c.diff(std::io::sink(), Compression::None).unwrap_err();
    assert!(err.to_string().contains("no writable layer"), "{err}");
    c.destroy().unwrap();
}

/// `image_config` on a directory rootfs supplies the command, environment
/// and working directory; explicit settings still win.
#[test]
fn image_config_applies_env_cwd_and_cmd_without_an_image() {
    berth_testkit::privileged!();
    let root = state_root();
    let cfg = ImageConfig {
        env: vec!["FROM_CONFIG=1".into(), "OVERRIDDEN=config".into()],
        cmd: vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo $FROM_CONFIG $OVERRIDDEN; pwd".into(),
        ],
        working_dir: Some("/bin".into()),
        ..Default::default()
    };
    let id = berth_testkit::unique_name("imgcfg");
    let mut c = busybox(&id, &root)
        .image_config(&cfg)
        .env("OVERRIDDEN", "builder")
        .stdout(Stdio::Piped)
        .spawn()
        .unwrap();
    let mut out = String::new();
    c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(c.wait().unwrap().success());
    c.destroy().unwrap();
    assert_eq!(out, "1 builder\n/bin\n");
}

/// A container on the host's `/` has a layer to diff, but is not committed
/// (that would copy the host), and the refusal writes nothing.
#[test]
fn host_rootfs_diffs_but_does_not_commit() {
    berth_testkit::privileged!();
    let root = state_root();
    let dir = tempfile::tempdir().unwrap();
    let id = berth_testkit::unique_name("diff-host");
    let mut c = Container::builder(&id)
        .rootfs(Rootfs::host())
        .state_root(root.path())
        .stdin(Stdio::Null)
        .command([
            "/bin/sh",
            "-c",
            "mkdir /berth-diff-probe && echo hi > /berth-diff-probe/f",
        ])
        .spawn()
        .unwrap();
    assert!(c.wait().unwrap().success());
    assert!(!std::path::Path::new("/berth-diff-probe").exists());
    let mut tar = Vec::new();
    c.diff(&mut tar, Compression::None).unwrap();
    let want: BTreeSet<String> = ["berth-diff-probe/", "berth-diff-probe/f"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(entries(&tar), want);
    let store = LayerStore::open(dir.path().join("store")).unwrap();
    let layout = dir.path().join("layout");
    let e = c.commit(&store, &layout, "host").unwrap_err();
    assert!(e.to_string().contains("host's /"), "{e}");
    assert!(!layout.exists());
    c.destroy().unwrap();
}
