//! OCI runtime bundles (placeholder replaced below).
use std::path::PathBuf;

/// An OCI bundle.
#[derive(Debug)]
pub struct Bundle {
    /// Its directory.
    pub dir: PathBuf,
}
