//! OCI image layouts built from the busybox fixture: write, open, resolve,
//! import, mount and run; the unpack → mount → diff round trip; bad images.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use berth_overlay::{
    diff, Compression, Error, ImageBuilder, ImageLayout, ImportOptions, LayerStore, Overlay,
};

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// An upper layer on top of busybox: adds /etc/motd, deletes /bin/wget,
/// replaces /home by an opaque directory. Made through a real overlay mount.
fn second_layer(tmp: &Path) -> PathBuf {
    for d in ["upper", "work", "merged"] {
        fs::create_dir(tmp.join(d)).unwrap();
    }
    let m = Overlay::new()
        .lower(berth_testkit::busybox_rootfs())
        .upper(tmp.join("upper"))
        .work(tmp.join("work"))
        .redirect_dir(berth_overlay::RedirectDir::Off)
        .metacopy(false)
        .mount(tmp.join("merged"))
        .unwrap();
    let mg = tmp.join("merged");
    fs::write(mg.join("etc/motd"), "hello from layer 2\n").unwrap();
    fs::remove_file(mg.join("bin/wget")).unwrap();
    fs::remove_dir(mg.join("home")).unwrap();
    fs::create_dir(mg.join("home")).unwrap();
    fs::write(mg.join("home/note"), "n\n").unwrap();
    m.unmount().unwrap();
    tmp.join("upper")
}

fn build_image(tmp: &Path) -> (PathBuf, berth_overlay::WrittenImage) {
    let upper = second_layer(tmp);
    let layout = tmp.join("layout");
    let w = ImageBuilder::new("example.org/berth/busybox:latest")
        .layer_dir(berth_testkit::busybox_rootfs())
        .layer_dir(&upper)
        .env(["PATH=/bin", "GREETING=hi"])
        .entrypoint(["/bin/sh", "-c"])
        .cmd(["echo $GREETING"])
        .working_dir("/root")
        .user("0:0")
        .write(&layout)
        .unwrap();
    (layout, w)
}

#[test]
fn build_import_mount_and_run_an_image() {
    berth_testkit::privileged!();
    let _s = serial();
    let tmp = tempfile::tempdir().unwrap();
    let (layout_dir, written) = build_image(tmp.path());
    assert!(layout_dir.join("oci-layout").is_file());
    for l in &written.layers {
        assert_eq!(
            common::sha256_file(&layout_dir.join("blobs/sha256").join(l.digest.hex())),
            l.digest
        );
    }
    let layout = ImageLayout::open(&layout_dir).unwrap();
    assert_eq!(
        layout.references(),
        vec!["example.org/berth/busybox:latest".to_string()]
    );
    // By tag, by full name, by manifest digest.
    for r in [
        "latest",
        "example.org/berth/busybox:latest",
        &written.manifest_digest.to_string(),
    ] {
        let (d, m, _) = layout.resolve(r).unwrap();
        assert_eq!(d, written.manifest_digest);
        assert_eq!(m.layers().len(), 2);
    }
    let store = LayerStore::open(tmp.path().join("store")).unwrap();
    let img = layout
        .import(&store, "latest", &Default::default())
        .unwrap();
    assert_eq!(img.config.env, vec!["PATH=/bin", "GREETING=hi"]);
    assert_eq!(img.config.argv(), vec!["/bin/sh", "-c", "echo $GREETING"]);
    assert_eq!(img.config.working_dir.as_deref(), Some("/root"));
    assert_eq!(img.config.user.as_deref(), Some("0:0"));
    assert_eq!(img.layers.len(), 2);
    assert_eq!(
        img.lower_dirs[0], img.layers[1].dir,
        "lower dirs are top first"
    );
    // A second import finds the layers in the store.
    let again = layout
        .import(&store, "latest", &Default::default())
        .unwrap();
    assert_eq!(again.lower_dirs, img.lower_dirs);

    let c = tmp.path().join("c");
    for d in ["upper", "work", "rootfs"] {
        fs::create_dir_all(c.join(d)).unwrap();
    }
    let m = Overlay::new()
        .lowers(&img.lower_dirs)
        .upper(c.join("upper"))
        .work(c.join("work"))
        .mount(c.join("rootfs"))
        .unwrap();
    // Absolute path: the image's PATH (set below) is used to find the program.
    let chroot = ["/usr/sbin/chroot", "/usr/bin/chroot", "/sbin/chroot"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap();
    let mut cmd = std::process::Command::new(chroot);
    cmd.arg(c.join("rootfs"));
    cmd.args(img.config.argv());
    cmd.env_clear();
    for kv in &img.config.env {
        let (k, v) = kv.split_once('=').unwrap();
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n", "{out:?}");
    let out = std::process::Command::new(chroot)
        .arg(c.join("rootfs"))
        .args([
            "/bin/sh",
            "-c",
            "cat /etc/motd; test -e /bin/wget || echo wget-gone; ls /home",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from layer 2\nwget-gone\nnote\n",
        "{out:?}"
    );
    m.unmount().unwrap();
}

#[test]
fn unpack_mount_diff_round_trip_reproduces_the_digest() {
    berth_testkit::privileged!();
    let _s = serial();
    let tmp = tempfile::tempdir().unwrap();
    let upper = second_layer(tmp.path());
    let mut t1 = Vec::new();
    let b1 = diff(&upper, &mut t1, Compression::Gzip).unwrap();
    // The layer carries OCI whiteouts, not overlay ones.
    let mut names = Vec::new();
    let mut flat = Vec::new();
    flate2::read::GzDecoder::new(&t1[..]).read_to_end_into(&mut flat);
    for e in tar::Archive::new(&flat[..]).entries().unwrap() {
        names.push(e.unwrap().path().unwrap().display().to_string());
    }
    assert!(names.contains(&"bin/.wh.wget".to_string()), "{names:?}");
    assert!(
        names.contains(&"home/.wh..wh..opq".to_string()),
        "{names:?}"
    );

    // Import (unpack) it, use it as the upper of a new overlay, then diff again.
    let store = LayerStore::open(tmp.path().join("store")).unwrap();
    let layer = store
        .import(
            &t1[..],
            &ImportOptions {
                digest: Some(b1.digest.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    let work = tmp.path().join("work2");
    let merged = tmp.path().join("merged2");
    fs::create_dir(&work).unwrap();
    fs::create_dir(&merged).unwrap();
    let m = Overlay::new()
        .lower(berth_testkit::busybox_rootfs())
        .upper(&layer.dir)
        .work(&work)
        .mount(&merged)
        .unwrap();
    assert!(
        !merged.join("bin/wget").exists(),
        "whiteout hides the lower file"
    );
    assert!(merged.join("bin/sh").exists());
    assert_eq!(
        fs::read_dir(merged.join("home")).unwrap().count(),
        1,
        "opaque dir hides lower content"
    );
    assert_eq!(
        fs::read_to_string(merged.join("etc/motd")).unwrap(),
        "hello from layer 2\n"
    );
    m.unmount().unwrap();
    let mut t2 = Vec::new();
    let b2 = diff(&layer.dir, &mut t2, Compression::Gzip).unwrap();
    assert_eq!(b2.diff_id, b1.diff_id);
    assert_eq!(b2.digest, b1.digest);
    assert_eq!(t1, t2);
}

trait ReadAll {
    fn read_to_end_into(self, out: &mut Vec<u8>);
}

impl<R: std::io::Read> ReadAll for R {
    fn read_to_end_into(mut self, out: &mut Vec<u8>) {
        self.read_to_end(out).unwrap();
    }
}

fn small_image(tmp: &Path, blob: Option<(Vec<u8>, Compression)>) -> PathBuf {
    let layout = tmp.join("layout");
    let mut b = ImageBuilder::new("latest").compression(Compression::None);
    match blob {
        Some((data, c)) => {
            let p = tmp.join("layer.blob");
            fs::write(&p, data).unwrap();
            b = b.layer_blob(p, c);
        }
        None => {
            let d = tmp.join("rootfs");
            fs::create_dir_all(d.join("etc")).unwrap();
            fs::write(d.join("etc/hostname"), "x\n").unwrap();
            b = b.layer_dir(d);
        }
    }
    b.write(&layout).unwrap();
    layout
}

/// Rewrite a JSON blob of the layout (and every reference to its digest).
fn edit_blob(
    layout: &Path,
    find: impl Fn(&serde_json::Value) -> bool,
    edit: impl Fn(&mut serde_json::Value),
) {
    let blobs = layout.join("blobs/sha256");
    let mut old = None;
    for e in fs::read_dir(&blobs).unwrap() {
        let p = e.unwrap().path();
        if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&fs::read(&p).unwrap()) {
            if find(&v) {
                edit(&mut v);
                let b = serde_json::to_vec(&v).unwrap();
                let d = berth_overlay::Digest::of(&b);
                fs::write(blobs.join(d.hex()), &b).unwrap();
                old = Some((
                    p.file_name().unwrap().to_str().unwrap().to_string(),
                    d,
                    b.len(),
                ));
            }
        }
    }
    let (old_hex, new, len) = old.expect("blob to edit");
    let idx = layout.join("index.json");
    let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&idx).unwrap()).unwrap();
    for m in v["manifests"].as_array_mut().unwrap() {
        if m["digest"] == format!("sha256:{old_hex}") {
            m["digest"] = new.to_string().into();
            m["size"] = len.into();
        }
    }
    fs::write(&idx, serde_json::to_vec(&v).unwrap()).unwrap();
}

#[test]
fn bad_images_are_clear_errors_and_leave_the_store_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let store = LayerStore::open(tmp.path().join("store")).unwrap();
    let empty = |store: &LayerStore| {
        assert!(store.layers().unwrap().is_empty());
        assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);
    };

    // Unknown reference: the error lists what exists.
    let t = tempfile::tempdir().unwrap();
    let layout = ImageLayout::open(small_image(t.path(), None)).unwrap();
    match layout
        .import(&store, "nope", &Default::default())
        .unwrap_err()
    {
        Error::RefNotFound {
            reference,
            available,
            ..
        } => {
            assert_eq!(reference, "nope");
            assert_eq!(available, vec!["latest".to_string()]);
        }
        other => panic!("unexpected {other:?}"),
    }

    // Unknown layer media type.
    let t = tempfile::tempdir().unwrap();
    let dir = small_image(t.path(), None);
    edit_blob(
        &dir,
        |v| v.get("layers").is_some(),
        |v| v["layers"][0]["mediaType"] = "application/x-foo".into(),
    );
    let err = ImageLayout::open(&dir)
        .unwrap()
        .import(&store, "latest", &Default::default())
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnknownMediaType { media_type, .. } if media_type == "application/x-foo"),
        "{err:?}"
    );
    empty(&store);

    // Missing layer blob.
    let t = tempfile::tempdir().unwrap();
    let dir = small_image(t.path(), None);
    let layout = ImageLayout::open(&dir).unwrap();
    let (_, m, _) = layout.resolve("latest").unwrap();
    let layer_digest = m.layers()[0].digest().to_string();
    fs::remove_file(
        dir.join("blobs/sha256")
            .join(layer_digest.trim_start_matches("sha256:")),
    )
    .unwrap();
    let err = layout
        .import(&store, "latest", &Default::default())
        .unwrap_err();
    assert!(
        matches!(&err, Error::MissingBlob { digest, .. } if *digest == layer_digest),
        "{err:?}"
    );
    empty(&store);

    // Layer blob content corrupted (same size): digest mismatch while streaming.
    let t = tempfile::tempdir().unwrap();
    let dir = small_image(t.path(), None);
    let layout = ImageLayout::open(&dir).unwrap();
    let (_, m, _) = layout.resolve("latest").unwrap();
    let p = dir.join("blobs/sha256").join(
        m.layers()[0]
            .digest()
            .to_string()
            .trim_start_matches("sha256:"),
    );
    let mut data = fs::read(&p).unwrap();
    let pos = data.iter().position(|&b| b == b'x').unwrap();
    data[pos] = b'y';
    fs::write(&p, data).unwrap();
    let err = layout
        .import(&store, "latest", &Default::default())
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");
    empty(&store);

    // A malicious layer inside a well-formed image.
    let sbx = common::Sandbox::new();
    let before = sbx.outside_snapshot();
    let evil = common::RawTar::new()
        .file("../../../canary", b"pwned")
        .finish();
    let dir = small_image(
        sbx.dir.path().join("outside").as_path(),
        Some((evil, Compression::None)),
    );
    let before_with_layout = sbx.outside_snapshot();
    assert_ne!(before, before_with_layout);
    let store2 = LayerStore::open(sbx.root()).unwrap();
    let err = ImageLayout::open(&dir)
        .unwrap()
        .import(&store2, "latest", &Default::default())
        .unwrap_err();
    assert!(matches!(err, Error::UnsafeEntry { .. }), "{err:?}");
    empty(&store2);
    assert_eq!(sbx.outside_snapshot(), before_with_layout);
    assert_eq!(fs::read(sbx.dir.path().join("canary")).unwrap(), b"canary");

    // Not a layout at all.
    let err = ImageLayout::open(tmp.path()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Io {
                op: "read oci-layout",
                ..
            }
        ),
        "{err:?}"
    );
}
