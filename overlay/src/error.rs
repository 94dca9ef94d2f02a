//! The crate's one error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in `berth-overlay`. Each variant says what was
/// being done and to which path, layer or image, and carries the errno (as an
/// [`io::Error`]) or the underlying parse error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A filesystem operation failed.
    #[error("{op} {path:?}: {source}")]
    Io {
        /// What was being done (e.g. `"create layer store directory"`).
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// A step of mounting the overlay failed; `kernel` holds what the kernel
    /// logged on the filesystem context (`fsopen(2)` log), if anything.
    #[error("overlay {step} ({target}): {source}{}", if kernel.is_empty() { String::new() } else { format!(" [kernel: {kernel}]") })]
    Mount {
        /// The syscall or option being applied (e.g. `"fsconfig lowerdir+"`).
        step: String,
        /// The mount point, or `"detached"`.
        target: String,
        /// Messages the kernel left in the fs context log.
        kernel: String,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// Unmounting an overlay failed.
    #[error("unmount overlay {target:?}: {source}")]
    Unmount {
        /// The mount point.
        target: PathBuf,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// The overlay configuration is invalid (checked before any syscall).
    #[error("invalid overlay configuration: {0}")]
    InvalidConfig(String),
    /// A lower (or upper/work) directory does not exist or is not a directory.
    #[error("overlay {role} directory {path:?} is missing or not a directory")]
    MissingDir {
        /// `"lower"`, `"upper"` or `"work"`.
        role: &'static str,
        /// The path given.
        path: PathBuf,
    },
    /// A tar entry tried to escape the layer root or is otherwise unsafe; nothing was written for it.
    #[error("unsafe layer entry {entry:?}: {reason}")]
    UnsafeEntry {
        /// The entry's path as found in the archive (lossy UTF-8).
        entry: String,
        /// Why it was refused.
        reason: String,
    },
    /// Writing one tar entry into the layer directory failed.
    #[error("unpack entry {entry:?} ({op}): {source}")]
    Unpack {
        /// The entry's path as found in the archive (lossy UTF-8).
        entry: String,
        /// The syscall or step that failed.
        op: &'static str,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// The layer stream could not be read: corrupt or truncated tar, gzip or zstd data.
    #[error("read layer stream ({what}): {source}")]
    Stream {
        /// What was being read (e.g. `"gzip"`, `"tar entries"`).
        what: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The content did not hash to the expected digest.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was hashed (`"layer blob"`, `"layer diff_id"`, `"manifest"`…).
        what: String,
        /// The digest that was expected.
        expected: String,
        /// The digest actually computed.
        actual: String,
    },
    /// A digest string is not `sha256:<64 lowercase hex>`.
    #[error("invalid digest {0:?}: expected sha256:<64 hex digits>")]
    InvalidDigest(String),
    /// A descriptor has a media type this crate cannot handle.
    #[error("unsupported media type {media_type:?} for {what}")]
    UnknownMediaType {
        /// The media type found.
        media_type: String,
        /// Where it was found.
        what: String,
    },
    /// A blob named by a descriptor is missing from the image layout.
    #[error("missing blob {digest} ({path:?})")]
    MissingBlob {
        /// The digest of the missing blob.
        digest: String,
        /// Where it was expected.
        path: PathBuf,
    },
    /// The image layout directory is malformed.
    #[error("invalid OCI image layout {path:?}: {reason}")]
    InvalidLayout {
        /// The layout directory or file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No manifest in the image layout matches the reference.
    #[error(
        "reference {reference:?} not found in image layout {path:?} (available: {available:?})"
    )]
    RefNotFound {
        /// The reference asked for.
        reference: String,
        /// The layout directory.
        path: PathBuf,
        /// Reference names present in `index.json`.
        available: Vec<String>,
    },
    /// An OCI JSON document could not be parsed.
    #[cfg(feature = "oci")]
    #[error("parse {what} {path:?}: {source}")]
    Spec {
        /// Which document (`"index.json"`, `"manifest"`, `"image config"`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: oci_spec::OciSpecError,
    },
    /// A JSON document of the layer store could not be read or written.
    #[error("{what} {path:?}: {source}")]
    Json {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
    /// An upper directory contains overlay features that cannot be expressed in an OCI layer.
    #[error("cannot export {path:?}: {reason}")]
    Unexportable {
        /// The offending path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A layer referenced by the store or an image is not present in the store.
    #[error("layer {0} is not in the store")]
    LayerNotFound(String),
    /// A directory of the layer store is not private to the caller (another
    /// owner, writable by group or others, not a directory): refused, as
    /// anything in it may have been planted by another user.
    #[error("refusing layer store directory {path:?}: {reason}")]
    UnsafeDir {
        /// The directory.
        path: PathBuf,
        /// Its owner and mode, and what is wrong with them.
        reason: String,
    },
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
