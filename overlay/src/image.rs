//! Local OCI image layouts: read (resolve a reference, import its layers) and write.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};

use crate::config::ImageConfig;
use crate::diff::{diff, LayerBlob};
use crate::digest::{Compression, Digest, HashingReader};
use crate::store::{create_fresh, ImportOptions, Layer, LayerStore};
use crate::unpack::UnpackOptions;
use crate::{Error, Result};

/// The annotation naming a manifest in `index.json`.
///
/// ```
/// assert_eq!(berth_overlay::REF_NAME_ANNOTATION, "org.opencontainers.image.ref.name");
/// ```
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
const MANIFEST_MT: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST_MT: &str = "application/vnd.docker.distribution.manifest.v2+json";
const INDEX_MT: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST_MT: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const CONFIG_MT: &str = "application/vnd.oci.image.config.v1+json";

/// An image resolved from a layout and imported into a [`LayerStore`].
///
/// ```no_run
/// use berth_overlay::{ImageLayout, LayerStore, Overlay};
/// let store = LayerStore::open("/var/lib/berth/layers")?;
/// let image = ImageLayout::open("/images/busybox")?.import(&store, "latest", &Default::default())?;
/// println!("{} layers, argv {:?}", image.layers.len(), image.config.argv());
/// let rootfs = Overlay::new().lowers(&image.lower_dirs).upper("/c/u").work("/c/w").mount("/c/rootfs")?;
/// # Ok::<(), berth_overlay::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Image {
    /// Digest of the manifest.
    pub manifest_digest: Digest,
    /// The layers in manifest order (base first).
    pub layers: Vec<Layer>,
    /// Unpacked layer directories ordered **top to bottom**, ready for
    /// [`Overlay::lowers`](crate::Overlay::lowers).
    pub lower_dirs: Vec<PathBuf>,
    /// Env, Cmd, Entrypoint, WorkingDir, User.
    pub config: ImageConfig,
}

/// A local OCI image layout directory (`oci-layout`, `index.json`, `blobs/`).
///
/// ```no_run
/// let layout = berth_overlay::ImageLayout::open("/images/busybox")?; // oci-layout, index.json, blobs/
/// println!("{} holds {:?}", layout.dir().display(), layout.references());
/// # Ok::<(), berth_overlay::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ImageLayout {
    dir: PathBuf,
    index: ImageIndex,
}

fn spec_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(oci_spec::OciSpecError) -> Error + 'a {
    move |source| Error::Spec {
        what,
        path: path.to_path_buf(),
        source,
    }
}

impl ImageLayout {
    /// Open the layout at `dir`, checking `oci-layout` (`imageLayoutVersion` 1.x) and parsing `index.json`.
    ///
    /// ```no_run
    /// let layout = berth_overlay::ImageLayout::open("/images/busybox")?;
    /// # Ok::<(), berth_overlay::Error>(())
    /// ```
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        let lp = dir.join("oci-layout");
        let b = fs::read(&lp).map_err(|e| Error::io("read oci-layout", &lp, e))?;
        let v: serde_json::Value = serde_json::from_slice(&b).map_err(|e| Error::Json {
            what: "parse oci-layout",
            path: lp.clone(),
            source: e,
        })?;
        match v.get("imageLayoutVersion").and_then(|x| x.as_str()) {
            Some(ver) if ver.starts_with("1.") => {}
            other => {
                return Err(Error::InvalidLayout {
                    path: lp,
                    reason: format!("unsupported imageLayoutVersion {other:?}"),
                })
            }
        }
        let ip = dir.join("index.json");
        let f = File::open(&ip).map_err(|e| Error::io("open index.json", &ip, e))?;
        let index = ImageIndex::from_reader(f).map_err(spec_err("index.json", &ip))?;
        Ok(Self { dir, index })
    }

    /// The layout directory.
    ///
    /// ```no_run
    /// let layout = berth_overlay::ImageLayout::open("/images/busybox")?;
    /// assert!(layout.dir().join("index.json").exists());
    /// # Ok::<(), berth_overlay::Error>(())
    /// ```
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reference names (`org.opencontainers.image.ref.name`) in `index.json`.
    ///
    /// ```no_run
    /// let layout = berth_overlay::ImageLayout::open("/images/busybox")?;
    /// println!("{:?}", layout.references()); // org.opencontainers.image.ref.name of each manifest
    /// # Ok::<(), berth_overlay::Error>(())
    /// ```
    pub fn references(&self) -> Vec<String> {
        self.index
            .manifests()
            .iter()
            .filter_map(|d| {
                d.annotations()
                    .as_ref()
                    .and_then(|a| a.get(REF_NAME_ANNOTATION))
                    .cloned()
            })
            .collect()
    }

    fn blob_path(&self, d: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(d.hex())
    }

    fn digest_of(&self, d: &oci_spec::image::Descriptor) -> Result<Digest> {
        d.digest().to_string().parse()
    }

    /// Read a (small) blob fully and verify its digest and size.
    fn read_blob(&self, d: &Digest, size: u64, what: &str) -> Result<Vec<u8>> {
        let p = self.blob_path(d);
        let f = File::open(&p).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::MissingBlob {
                digest: d.to_string(),
                path: p.clone(),
            },
            _ => Error::io("open blob", &p, e),
        })?;
        let mut buf = Vec::new();
        // Bound the read: small JSON blobs only (size from the descriptor, capped at 16 MiB).
        f.take(size.min(16 << 20) + 1)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io("read blob", &p, e))?;
        let got = Digest::of(&buf);
        if got != *d || buf.len() as u64 != size {
            return Err(Error::DigestMismatch {
                what: format!("{what} blob ({} bytes, descriptor says {size})", buf.len()),
                expected: d.to_string(),
                actual: got.to_string(),
            });
        }
        Ok(buf)
    }

    /// Find the manifest for `reference`: a `sha256:` manifest digest, an exact
    /// `org.opencontainers.image.ref.name`, or its tag part (`latest` matches
    /// `docker.io/library/busybox:latest`). An index or manifest list is
    /// descended, picking the `linux` entry for this machine's architecture.
    /// Returns the manifest's digest, the manifest and the image configuration.
    ///
    /// ```no_run
    /// let layout = berth_overlay::ImageLayout::open("/images/busybox")?;
    /// let (digest, manifest, config) = layout.resolve("latest")?;
    /// # Ok::<(), berth_overlay::Error>(())
    /// ```
    pub fn resolve(&self, reference: &str) -> Result<(Digest, ImageManifest, ImageConfiguration)> {
        let mds = self.index.manifests();
        let tag_of = |name: &str| -> String {
            let last = name.rsplit('/').next().unwrap_or(name);
            last.rsplit_once(':')
                .map(|(_, t)| t.to_string())
                .unwrap_or_else(|| name.to_string())
        };
        let by_name = |exact: bool| {
            mds.iter().find(|d| {
                let name = d
                    .annotations()
                    .as_ref()
                    .and_then(|a| a.get(REF_NAME_ANNOTATION));
                name.is_some_and(|n| {
                    if exact {
                        n == reference
                    } else {
                        tag_of(n) == reference
                    }
                })
            })
        };
        let desc = if reference.starts_with("sha256:") {
            mds.iter().find(|d| d.digest().to_string() == reference)
        } else {
            by_name(true).or_else(|| by_name(false))
        };
        let desc = match desc {
            Some(d) => d.clone(),
            None if mds.len() == 1 && reference.is_empty() => mds[0].clone(),
            None => {
                return Err(Error::RefNotFound {
                    reference: reference.to_string(),
                    path: self.dir.clone(),
                    available: self.references(),
                })
            }
        };
        let mut desc = desc;
        for _ in 0..4 {
            let mt = desc.media_type().to_string();
            let digest = self.digest_of(&desc)?;
            match mt.as_str() {
                MANIFEST_MT | DOCKER_MANIFEST_MT => {
                    let b = self.read_blob(&digest, desc.size(), "manifest")?;
                    let p = self.blob_path(&digest);
                    let m = ImageManifest::from_reader(&b[..]).map_err(spec_err("manifest", &p))?;
                    let cd = m.config();
                    let cmt = cd.media_type().to_string();
                    if cmt != CONFIG_MT && cmt != "application/vnd.docker.container.image.v1+json" {
                        return Err(Error::UnknownMediaType {
                            media_type: cmt,
                            what: "image config".into(),
                        });
                    }
                    let cdig = self.digest_of(cd)?;
                    let cb = self.read_blob(&cdig, cd.size(), "image config")?;
                    let cp = self.blob_path(&cdig);
                    let c = ImageConfiguration::from_reader(&cb[..])
                        .map_err(spec_err("image config", &cp))?;
                    return Ok((digest, m, c));
                }
                INDEX_MT | DOCKER_LIST_MT => {
                    let b = self.read_blob(&digest, desc.size(), "index")?;
                    let p = self.blob_path(&digest);
                    let idx =
                        ImageIndex::from_reader(&b[..]).map_err(spec_err("nested index", &p))?;
                    let arch = match std::env::consts::ARCH {
                        "x86_64" => "amd64",
                        "aarch64" => "arm64",
                        a => a,
                    };
                    let pick = idx.manifests().iter().find(|d| {
                        d.platform().as_ref().is_some_and(|pl| {
                            pl.os().to_string() == "linux" && pl.architecture().to_string() == arch
                        })
                    });
                    desc = pick.cloned().ok_or_else(|| Error::InvalidLayout {
                        path: p,
                        reason: format!("no linux/{arch} manifest in index"),
                    })?;
                }
                other => {
                    return Err(Error::UnknownMediaType {
                        media_type: other.to_string(),
                        what: "manifest".into(),
                    })
                }
            }
        }
        Err(Error::InvalidLayout {
            path: self.dir.clone(),
            reason: "indexes nested too deep".into(),
        })
    }

    /// Resolve `reference`, import every layer into `store` (each verified
    /// against its digest while streaming and against the config's `diff_ids`),
    /// record a store reference so [`LayerStore::gc`] keeps them, and return
    /// the lower dirs (top to bottom) and the config.
    ///
    /// ```no_run
    /// use berth_overlay::{ImageLayout, LayerStore, Overlay};
    /// let store = LayerStore::open("/var/lib/berth")?;
    /// let img = ImageLayout::open("/images/busybox")?.import(&store, "latest", &Default::default())?;
    /// let m = Overlay::new().lowers(&img.lower_dirs).upper("/c/u").work("/c/w").mount("/c/rootfs")?;
    /// # Ok::<(), berth_overlay::Error>(())
    /// ```
    pub fn import(
        &self,
        store: &LayerStore,
        reference: &str,
        unpack: &UnpackOptions,
    ) -> Result<Image> {
        let (manifest_digest, manifest, config) = self.resolve(reference)?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != manifest.layers().len() {
            return Err(Error::InvalidLayout {
                path: self.blob_path(&manifest_digest),
                reason: format!(
                    "manifest has {} layers but config has {} diff_ids",
                    manifest.layers().len(),
                    diff_ids.len()
                ),
            });
        }
        // Resolve every descriptor before touching the store.
        let mut plan = Vec::new();
        for (i, l) in manifest.layers().iter().enumerate() {
            let mt = l.media_type().to_string();
            let comp =
                Compression::from_media_type(&mt).ok_or_else(|| Error::UnknownMediaType {
                    media_type: mt.clone(),
                    what: format!("layer {i}"),
                })?;
            let d = self.digest_of(l)?;
            let p = self.blob_path(&d);
            if !p.is_file() {
                return Err(Error::MissingBlob {
                    digest: d.to_string(),
                    path: p,
                });
            }
            let diff_id: Digest = diff_ids[i].parse()?;
            plan.push((d, p, comp, diff_id, l.size()));
        }
        let _lock = store.lock_shared()?;
        let mut layers = Vec::new();
        for (d, p, comp, diff_id, size) in plan {
            let f = File::open(&p).map_err(|e| Error::io("open layer blob", &p, e))?;
            let meta_len = f.metadata().map(|m| m.len()).unwrap_or(size);
            if meta_len != size {
                return Err(Error::DigestMismatch {
                    what: format!(
                        "size of layer blob {p:?} ({meta_len} bytes, descriptor says {size})"
                    ),
                    expected: d.to_string(),
                    actual: "(not hashed)".into(),
                });
            }
            let opts = ImportOptions {
                compression: Some(comp),
                digest: Some(d),
                diff_id: Some(diff_id),
                unpack: unpack.clone(),
            };
            layers.push(store.import(f, &opts)?);
        }
        store.set_ref(
            &format!("image:{manifest_digest}"),
            &layers.iter().map(|l| l.digest.clone()).collect::<Vec<_>>(),
        )?;
        let c = config.config().clone().unwrap_or_default();
        let image_config = ImageConfig {
            env: c.env().clone().unwrap_or_default(),
            cmd: c.cmd().clone().unwrap_or_default(),
            entrypoint: c.entrypoint().clone().unwrap_or_default(),
            working_dir: c.working_dir().clone().filter(|s| !s.is_empty()),
            user: c.user().clone().filter(|s| !s.is_empty()),
        };
        let lower_dirs = layers.iter().rev().map(|l| l.dir.clone()).collect();
        Ok(Image {
            manifest_digest,
            layers,
            lower_dirs,
            config: image_config,
        })
    }
}

enum LayerSource {
    Dir(PathBuf),
    Blob(PathBuf, Compression),
}

/// Builds a local OCI image layout from directories (or prebuilt layer blobs):
/// deterministic layer tars ([`crate::diff`]), the image config, the manifest,
/// `index.json` with a ref-name annotation, all sha256-addressed under `blobs/`.
/// Writing into an existing layout adds (or replaces) the named reference.
///
/// ```no_run
/// use berth_overlay::{Compression, ImageBuilder};
/// let m = ImageBuilder::new("latest")
///     .layer_dir("/tmp/busybox-rootfs")
///     .compression(Compression::Gzip)
///     .cmd(["/bin/sh"])
///     .env(["PATH=/bin"])
///     .write("/tmp/busybox-image")?;
/// # Ok::<(), berth_overlay::Error>(())
/// ```
pub struct ImageBuilder {
    ref_name: String,
    layers: Vec<LayerSource>,
    compression: Compression,
    config: ImageConfig,
}

/// What [`ImageBuilder::write`] produced.
///
/// ```no_run
/// let written = berth_overlay::ImageBuilder::new("latest")
///     .layer_dir("/build/rootfs")
///     .cmd(["/bin/sh"])
///     .write("/images/mine")?;
/// println!("manifest {} with {} layers", written.manifest_digest, written.layers.len());
/// # Ok::<(), berth_overlay::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct WrittenImage {
    /// Digest of the manifest.
    pub manifest_digest: Digest,
    /// Digest of the config blob.
    pub config_digest: Digest,
    /// The layer blobs, base first.
    pub layers: Vec<LayerBlob>,
}

impl ImageBuilder {
    /// A new image to be named `ref_name` in `index.json`.
    ///
    /// ```
    /// let b = berth_overlay::ImageBuilder::new("latest");
    /// ```
    pub fn new(ref_name: impl Into<String>) -> Self {
        Self {
            ref_name: ref_name.into(),
            layers: Vec::new(),
            compression: Compression::Gzip,
            config: ImageConfig::default(),
        }
    }

    /// Add a layer made from the directory `dir` (base first, like a Dockerfile).
    ///
    /// ```no_run
    /// let b = berth_overlay::ImageBuilder::new("latest").layer_dir("/tmp/rootfs");
    /// ```
    pub fn layer_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.layers.push(LayerSource::Dir(dir.into()));
        self
    }

    /// Add a prebuilt layer blob (a tar file, compressed as `compression`) as is.
    ///
    /// ```no_run
    /// use berth_overlay::{Compression, ImageBuilder};
    /// let b = ImageBuilder::new("latest").layer_blob("/tmp/layer.tar", Compression::None);
    /// ```
    pub fn layer_blob(mut self, file: impl Into<PathBuf>, compression: Compression) -> Self {
        self.layers
            .push(LayerSource::Blob(file.into(), compression));
        self
    }

    /// Compression of layers made from directories (default gzip).
    ///
    /// ```
    /// use berth_overlay::{Compression, ImageBuilder};
    /// let b = ImageBuilder::new("latest").compression(Compression::Zstd);
    /// ```
    pub fn compression(mut self, c: Compression) -> Self {
        self.compression = c;
        self
    }

    /// `Env` entries (`KEY=value`).
    ///
    /// ```
    /// let b = berth_overlay::ImageBuilder::new("latest").env(["PATH=/bin"]);
    /// ```
    pub fn env<I: IntoIterator<Item = S>, S: Into<String>>(mut self, env: I) -> Self {
        self.config.env.extend(env.into_iter().map(Into::into));
        self
    }

    /// `Cmd`.
    ///
    /// ```
    /// let b = berth_overlay::ImageBuilder::new("latest").cmd(["/bin/sh", "-c", "echo hi"]);
    /// ```
    pub fn cmd<I: IntoIterator<Item = S>, S: Into<String>>(mut self, cmd: I) -> Self {
        self.config.cmd = cmd.into_iter().map(Into::into).collect();
        self
    }

    /// `Entrypoint`.
    ///
    /// ```
    /// let b = berth_overlay::ImageBuilder::new("latest").entrypoint(["/bin/busybox"]);
    /// ```
    pub fn entrypoint<I: IntoIterator<Item = S>, S: Into<String>>(mut self, ep: I) -> Self {
        self.config.entrypoint = ep.into_iter().map(Into::into).collect();
        self
    }

    /// `WorkingDir`.
    ///
    /// ```
    /// let b = berth_overlay::ImageBuilder::new("latest").working_dir("/root");
    /// ```
    pub fn working_dir(mut self, dir: impl Into<String>) -> Self {
        self.config.working_dir = Some(dir.into());
        self
    }

    /// `User`.
    ///
    /// ```
    /// let b = berth_overlay::ImageBuilder::new("latest").user("65534:65534");
    /// ```
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.config.user = Some(user.into());
        self
    }

    /// Write the layout into `dir` (created if needed).
    pub fn write(self, dir: impl AsRef<Path>) -> Result<WrittenImage> {
        let dir = dir.as_ref();
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).map_err(|e| Error::io("create image layout", &blobs, e))?;
        let mut layers = Vec::new();
        for (i, src) in self.layers.iter().enumerate() {
            let tmp = blobs.join(format!(".tmp-layer-{}-{i}", std::process::id()));
            let res = self.write_layer(src, &tmp, &blobs);
            if res.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            layers.push(res?);
        }
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            a => a,
        };
        let config = self.config_json(arch, &layers);
        let (config_digest, config_size) = write_json_blob(&blobs, &config)?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MT,
            "config": { "mediaType": CONFIG_MT, "digest": config_digest.to_string(), "size": config_size },
            "layers": layers.iter().map(|l| serde_json::json!({
                "mediaType": l.compression.media_type(),
                "digest": l.digest.to_string(),
                "size": l.size,
            })).collect::<Vec<_>>(),
        });
        let (manifest_digest, manifest_size) = write_json_blob(&blobs, &manifest)?;
        write_atomic(
            &dir.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )?;
        // Merge into an existing index: replace the entry with the same ref name.
        let ip = dir.join("index.json");
        let existing = match fs::read(&ip) {
            Ok(b) => Some(
                serde_json::from_slice::<serde_json::Value>(&b).map_err(|e| Error::Json {
                    what: "parse existing index.json",
                    path: ip.clone(),
                    source: e,
                })?,
            ),
            Err(_) => None,
        };
        let entry = serde_json::json!({
            "mediaType": MANIFEST_MT,
            "digest": manifest_digest.to_string(),
            "size": manifest_size,
            "annotations": { REF_NAME_ANNOTATION: self.ref_name },
            "platform": { "architecture": arch, "os": "linux" },
        });
        let index = merged_index(existing.as_ref(), &self.ref_name, entry);
        let ib = serde_json::to_vec_pretty(&index).map_err(|e| Error::Json {
            what: "write index.json",
            path: ip.clone(),
            source: e,
        })?;
        write_atomic(&ip, &ib)?;
        Ok(WrittenImage {
            manifest_digest,
            config_digest,
            layers,
        })
    }

    /// One layer blob written to `tmp`, then renamed to its digest in `blobs`.
    fn write_layer(&self, src: &LayerSource, tmp: &Path, blobs: &Path) -> Result<LayerBlob> {
        let blob = match src {
            LayerSource::Dir(d) => {
                let f =
                    create_fresh(tmp, 0o644).map_err(|e| Error::io("create layer blob", tmp, e))?;
                let mut w = io::BufWriter::with_capacity(1 << 20, f);
                let b = diff(d, &mut w, self.compression)?;
                w.flush()
                    .map_err(|e| Error::io("write layer blob", tmp, e))?;
                b
            }
            LayerSource::Blob(p, c) => copy_blob(p, *c, tmp)?,
        };
        let dst = blobs.join(blob.digest.hex());
        fs::rename(tmp, &dst).map_err(|e| Error::io("store layer blob", &dst, e))?;
        Ok(blob)
    }

    /// The image configuration: architecture, `config` (Env, Entrypoint,
    /// Cmd, WorkingDir, User when set) and the layers' diff_ids.
    fn config_json(&self, arch: &str, layers: &[LayerBlob]) -> serde_json::Value {
        let mut cfg = serde_json::Map::new();
        let c = &self.config;
        if !c.env.is_empty() {
            cfg.insert("Env".into(), c.env.clone().into());
        }
        if !c.entrypoint.is_empty() {
            cfg.insert("Entrypoint".into(), c.entrypoint.clone().into());
        }
        if !c.cmd.is_empty() {
            cfg.insert("Cmd".into(), c.cmd.clone().into());
        }
        if let Some(w) = &c.working_dir {
            cfg.insert("WorkingDir".into(), w.clone().into());
        }
        if let Some(u) = &c.user {
            cfg.insert("User".into(), u.clone().into());
        }
        serde_json::json!({
            "architecture": arch,
            "os": "linux",
            "config": cfg,
            "rootfs": { "type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>() },
        })
    }
}

/// A prebuilt layer blob `p` (compressed as `c`) copied to `tmp`, with its
/// digest and the digest of what it decodes to (its diff_id).
fn copy_blob(p: &Path, c: Compression, tmp: &Path) -> Result<LayerBlob> {
    File::open(p)
        .and_then(|mut src| io::copy(&mut src, &mut create_fresh(tmp, 0o644)?))
        .map_err(|e| Error::io("copy layer blob", p, e))?;
    let f = File::open(tmp).map_err(|e| Error::io("read layer blob", tmp, e))?;
    let mut hr = HashingReader::new(io::BufReader::new(f));
    let mut tar_h = crate::digest::HashingWriter::new(io::sink());
    let res = match c {
        Compression::None => io::copy(&mut hr, &mut tar_h),
        Compression::Gzip => io::copy(&mut flate2::read::MultiGzDecoder::new(&mut hr), &mut tar_h),
        Compression::Zstd => {
            zstd::stream::read::Decoder::new(&mut hr).and_then(|mut d| io::copy(&mut d, &mut tar_h))
        }
    };
    // A corrupt blob is kept as is (tests build bad images on purpose);
    // its diff_id is then the digest of what could be decoded.
    if let Err(e) = res {
        tracing::debug!(blob = %p.display(), error = %e, "layer blob does not decode");
    }
    io::copy(&mut hr, &mut io::sink()).map_err(|e| Error::io("read layer blob", tmp, e))?;
    Ok(LayerBlob {
        digest: Digest::from_hasher(hr.hasher),
        diff_id: Digest::from_hasher(tar_h.hasher),
        size: hr.count,
        compression: c,
    })
}

/// The image index: the `existing` one's manifests (named ones by ref
/// name, replaced by `entry` for `ref_name`; unnamed ones first, kept).
fn merged_index(
    existing: Option<&serde_json::Value>,
    ref_name: &str,
    entry: serde_json::Value,
) -> serde_json::Value {
    let mut entries: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let mut unnamed = Vec::new();
    if let Some(v) = existing {
        for m in v
            .get("manifests")
            .and_then(|m| m.as_array())
            .cloned()
            .unwrap_or_default()
        {
            match m
                .pointer("/annotations/org.opencontainers.image.ref.name")
                .and_then(|n| n.as_str())
            {
                Some(n) => {
                    entries.insert(n.to_string(), m.clone());
                }
                None => unnamed.push(m),
            }
        }
    }
    entries.insert(ref_name.to_string(), entry);
    let mut all = unnamed;
    all.extend(entries.into_values());
    serde_json::json!({ "schemaVersion": 2, "mediaType": INDEX_MT, "manifests": all })
}

fn write_json_blob(blobs: &Path, v: &serde_json::Value) -> Result<(Digest, u64)> {
    let b = serde_json::to_vec(v).map_err(|e| Error::Json {
        what: "write blob",
        path: blobs.to_path_buf(),
        source: e,
    })?;
    let d = Digest::of(&b);
    write_atomic(&blobs.join(d.hex()), &b)?;
    Ok((d, b.len() as u64))
}

fn write_atomic(p: &Path, data: &[u8]) -> Result<()> {
    let tmp = p.with_extension(format!("tmp{}", std::process::id()));
    create_fresh(&tmp, 0o644)
        .and_then(|mut f| f.write_all(data))
        .map_err(|e| Error::io("write", &tmp, e))?;
    fs::rename(&tmp, p).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io("rename into place", p, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(n: &str, digest: &str) -> serde_json::Value {
        serde_json::json!({ "digest": digest, "annotations": { REF_NAME_ANNOTATION: n } })
    }

    #[test]
    fn the_index_replaces_the_same_ref_and_keeps_the_others() {
        let existing = serde_json::json!({
            "manifests": [
                named("b", "sha256:1"),
                { "digest": "sha256:unnamed" },
                named("a", "sha256:2"),
            ]
        });
        let index = merged_index(Some(&existing), "b", named("b", "sha256:3"));
        assert_eq!(index["schemaVersion"], 2);
        assert_eq!(index["mediaType"], INDEX_MT);
        let digests: Vec<_> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["digest"].as_str().unwrap())
            .collect();
        // Unnamed first, then by ref name.
        assert_eq!(digests, ["sha256:unnamed", "sha256:2", "sha256:3"]);
        let fresh = merged_index(None, "x", named("x", "sha256:4"));
        assert_eq!(fresh["manifests"].as_array().unwrap().len(), 1);
    }
}
