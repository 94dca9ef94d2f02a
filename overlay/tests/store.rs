//! The layer store: streaming import with digest checks, atomic publication,
//! references and garbage collection, and refusal of bad streams.

mod common;

use std::fs;
use std::io::Read;
use std::path::Path;
use std::sync::mpsc;

use berth_overlay::{diff, Compression, Digest, Error, ImportOptions, LayerStore};
use common::{RawTar, Sandbox};

/// The busybox rootfs as a layer blob, made once per compression (debug-build
/// compression is slow).
fn busybox_layer(c: Compression) -> (Vec<u8>, berth_overlay::LayerBlob) {
    type Cache = std::sync::Mutex<Vec<(Compression, Vec<u8>, berth_overlay::LayerBlob)>>;
    static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut g = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, b, l)) = g.iter().find(|(k, _, _)| *k == c) {
        return (b.clone(), l.clone());
    }
    let mut out = Vec::new();
    let blob = diff(berth_testkit::busybox_rootfs(), &mut out, c).unwrap();
    g.push((c, out.clone(), blob.clone()));
    (out, blob)
}

fn store_is_empty(store: &LayerStore) {
    assert!(store.layers().unwrap().is_empty(), "a layer became visible");
    assert_eq!(
        fs::read_dir(store.root().join("layers/sha256"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        fs::read_dir(store.root().join("tmp")).unwrap().count(),
        0,
        "staging left behind"
    );
}

#[test]
fn import_each_compression_verifies_digests() {
    let tmp = tempfile::tempdir().unwrap();
    let store = LayerStore::open(tmp.path().join("store")).unwrap();
    for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let (bytes, blob) = busybox_layer(c);
        assert_eq!(blob.digest, Digest::of(&bytes));
        assert_eq!(blob.size, bytes.len() as u64);
        // Compression sniffed (None) and given explicitly.
        let opts = ImportOptions {
            digest: Some(blob.digest.clone()),
            diff_id: Some(blob.diff_id.clone()),
            ..Default::default()
        };
        let layer = store.import(&bytes[..], &opts).unwrap();
        assert_eq!(layer.digest, blob.digest);
        assert_eq!(layer.diff_id, blob.diff_id);
        assert_eq!(
            layer.dir,
            store
                .root()
                .join("layers/sha256")
                .join(blob.digest.hex())
                .join("diff")
        );
        if berth_testkit::is_root() {
            assert_eq!(
                common::tree(&layer.dir),
                common::tree(berth_testkit::busybox_rootfs())
            );
        }
        let out = std::process::Command::new(layer.dir.join("bin/busybox"))
            .args(["echo", "ok"])
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"ok\n");
        assert_eq!(store.get(&blob.digest).unwrap(), Some(layer));
    }
    assert_eq!(store.layers().unwrap().len(), 3);
    assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);
}

#[test]
fn digest_mismatch_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = LayerStore::open(tmp.path()).unwrap();
    let (bytes, blob) = busybox_layer(Compression::Gzip);
    let wrong = Digest::of(b"something else");
    let err = store
        .import(
            &bytes[..],
            &ImportOptions {
                digest: Some(wrong.clone()),
                ..Default::default()
            },
        )
        .unwrap_err();
    match &err {
        Error::DigestMismatch {
            expected, actual, ..
        } => {
            assert_eq!(expected, &wrong.to_string());
            assert_eq!(actual, &blob.digest.to_string());
        }
        other => panic!("unexpected {other:?}"),
    }
    store_is_empty(&store);
    let err = store
        .import(
            &bytes[..],
            &ImportOptions {
                diff_id: Some(wrong),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");
    store_is_empty(&store);
}

#[test]
fn truncated_and_corrupt_streams_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let store = LayerStore::open(tmp.path()).unwrap();
    for c in [Compression::Gzip, Compression::Zstd] {
        let (bytes, blob) = busybox_layer(c);
        let cut = &bytes[..bytes.len() / 2];
        let err = store
            .import(
                cut,
                &ImportOptions {
                    compression: Some(c),
                    digest: Some(Digest::of(cut)),
                    ..Default::default()
                },
            )
            .unwrap_err();
        assert!(
            matches!(err, Error::Stream { .. }),
            "truncated {c:?}: {err:?}"
        );
        store_is_empty(&store);
        let mut bad = bytes.clone();
        let mid = bad.len() / 3;
        for b in &mut bad[mid..mid + 64] {
            *b ^= 0x5a;
        }
        // gzip's CRC catches it in the stream; otherwise the digest does.
        let opts = ImportOptions {
            compression: Some(c),
            digest: Some(blob.digest.clone()),
            ..Default::default()
        };
        let err = store.import(&bad[..], &opts).unwrap_err();
        match c {
            Compression::Gzip => assert!(
                matches!(err, Error::Stream { what: "gzip", .. }),
                "corrupt {c:?}: {err:?}"
            ),
            _ => assert!(
                matches!(err, Error::Stream { .. } | Error::DigestMismatch { .. }),
                "corrupt {c:?}: {err:?}"
            ),
        }
        store_is_empty(&store);
    }
    // Not a tar at all.
    let err = store
        .import(
            &b"hello, this is not a tar archive"[..],
            &ImportOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Stream { .. }), "{err:?}");
    store_is_empty(&store);
}

#[test]
fn malicious_layer_in_store_writes_nothing_outside() {
    let sbx = Sandbox::new();
    let store = LayerStore::open(sbx.root()).unwrap();
    let before = sbx.outside_snapshot();
    let outside = sbx.dir.path().join("outside").display().to_string();
    let tars = [
        RawTar::new()
            .file("ok", b"fine")
            .file("../../canary", b"pwned")
            .finish(),
        RawTar::new()
            .symlink("l", &outside)
            .file("l/evil", b"pwned")
            .finish(),
        RawTar::new().hardlink("h", "../../canary").finish(),
    ];
    for t in tars {
        for data in [t.clone(), common::gzip(&t)] {
            let err = store
                .import(&data[..], &ImportOptions::default())
                .unwrap_err();
            assert!(matches!(err, Error::UnsafeEntry { .. }), "{err:?}");
            store_is_empty(&store);
        }
    }
    assert_eq!(sbx.outside_snapshot(), before);
    assert_eq!(fs::read(sbx.dir.path().join("canary")).unwrap(), b"canary");
}

/// A reader that stops half-way until told to go on.
struct Gate {
    data: Vec<u8>,
    pos: usize,
    half_reached: Option<mpsc::Sender<()>>,
    go: mpsc::Receiver<()>,
}

impl Read for Gate {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.data.len() / 2 {
            if let Some(tx) = self.half_reached.take() {
                tx.send(()).unwrap();
                self.go.recv().unwrap();
            }
        }
        let n = buf.len().min(self.data.len() - self.pos).min(4096);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn half_imported_layer_is_never_visible_and_gc_waits() {
    let tmp = tempfile::tempdir().unwrap();
    let store = LayerStore::open(tmp.path()).unwrap();
    let (bytes, blob) = busybox_layer(Compression::None);
    let (half_tx, half_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel();
    let gate = Gate {
        data: bytes,
        pos: 0,
        half_reached: Some(half_tx),
        go: go_rx,
    };
    std::thread::scope(|s| {
        let st = store.clone();
        let d = blob.digest.clone();
        let importer = s.spawn(move || {
            st.import(
                gate,
                &ImportOptions {
                    digest: Some(d),
                    ..Default::default()
                },
            )
        });
        half_rx.recv().unwrap();
        // Half-way: the layer is staged, not published.
        assert!(store.layers().unwrap().is_empty());
        assert_eq!(store.get(&blob.digest).unwrap(), None);
        assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 1);
        // gc must wait for the running import (shared lock) instead of deleting its staging.
        let st2 = store.clone();
        let gc = s.spawn(move || st2.gc());
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!gc.is_finished(), "gc ran during an import");
        go_tx.send(()).unwrap();
        let layer = importer.join().unwrap().unwrap();
        assert_eq!(layer.digest, blob.digest);
        // The layer was not referenced, so the waiting gc collects it.
        let report = gc.join().unwrap().unwrap();
        assert_eq!(report.removed, vec![blob.digest.clone()]);
    });
    assert!(store.layers().unwrap().is_empty());
}

#[test]
fn concurrent_imports_of_one_layer_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let store = LayerStore::open(tmp.path()).unwrap();
    let (bytes, blob) = busybox_layer(Compression::Gzip);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let (st, b) = (store.clone(), &bytes);
                // No expected digest: every thread unpacks and races to publish.
                s.spawn(move || st.import(&b[..], &ImportOptions::default()).unwrap())
            })
            .collect();
        for h in hs {
            assert_eq!(h.join().unwrap().digest, blob.digest);
        }
    });
    assert_eq!(store.layers().unwrap().len(), 1);
    assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);
}

#[test]
fn gc_keeps_referenced_layers_and_removes_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let store = LayerStore::open(tmp.path()).unwrap();
    let a = store
        .import(
            &RawTar::new().file("a", b"a").finish()[..],
            &ImportOptions::default(),
        )
        .unwrap();
    let b = store
        .import(
            &RawTar::new().file("b", b"b").finish()[..],
            &ImportOptions::default(),
        )
        .unwrap();
    // A stale staging dir from a crashed import.
    fs::create_dir_all(store.root().join("tmp/import-999999-0/diff")).unwrap();
    store
        .set_ref("docker.io/library/app:1", std::slice::from_ref(&a.digest))
        .unwrap();
    let r = store.gc().unwrap();
    assert_eq!(r.removed, vec![b.digest.clone()]);
    assert_eq!(r.stale_staging, 1);
    assert!(a.dir.join("a").is_file());
    assert!(!b.dir.exists());
    store.remove_ref("docker.io/library/app:1").unwrap();
    assert_eq!(store.gc().unwrap().removed, vec![a.digest.clone()]);
    assert!(!a.dir.exists());
    assert!(!Path::new(&store.root().join("layers/sha256").join(a.digest.hex())).exists());
}

#[test]
fn digests_are_validated() {
    for bad in [
        "sha256:xyz",
        "md5:abc",
        "sha256:../../etc",
        &format!("sha256:{}", "A".repeat(64)),
    ] {
        let e = bad.parse::<Digest>().unwrap_err();
        assert!(matches!(e, Error::InvalidDigest(_)), "{bad}");
    }
    assert!(format!("sha256:{}", "a".repeat(64))
        .parse::<Digest>()
        .is_ok());
}
