//! `berth-overlay`: OverlayFS root filesystems from image layers.
//!
//! This crate owns overlay mounts (the new mount API, with many layers), a
//! content-addressed layer store, safe OCI layer unpacking and diffing, and
//! reading and writing local OCI image layouts.
//!
//! - [`Overlay`]: builder of an overlay mount (`fsopen("overlay")`, one
//!   `lowerdir+` per layer, `fsmount`, `move_mount`), attached at a path
//!   ([`OverlayMount`] guard) or detached ([`DetachedOverlay`], an `OwnedFd`).
//! - [`unpack`]: a layer tar into a directory, every entry confined with
//!   `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`; OCI whiteouts converted.
//! - [`diff`]: a directory (an overlay upper) back into a deterministic layer tar.
//! - [`LayerStore`]: `<root>/layers/sha256/<hex>/diff`, streaming import with
//!   digest verification, staged and published atomically, references and GC.
//! - `ImageLayout` / `ImageBuilder` (cargo feature `oci`, which brings in
//!   oci-spec): read and write local OCI image layouts. Stacking layers
//!   (the store, unpack, diff, mounts) needs no feature; [`ImageConfig`]
//!   (an image's argv, env, working dir, user) is plain data, always here.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

mod config;
mod diff;
mod digest;
mod error;
#[cfg(feature = "oci")]
mod image;
mod mount;
mod store;
/// The kernel layer: berth-sys's calls, under the names this crate uses.
mod sys {
    pub(crate) use berth_sys::at::{
        fchmod, fchmodat, fchown, futimens, lchownat, linkat, lutimensat, mkdirat, mknodat,
        symlinkat, unlinkat,
    };
    pub(crate) use berth_sys::cstr::{bytes as cbytes, path as cpath};
    pub(crate) use berth_sys::mount_api::{
        fs_log, fsconfig_create, fsconfig_fd, fsconfig_flag, fsconfig_string, fsmount, fsopen,
        mount_fs, move_mount_to, open_tree_clone, umount, MountAttr,
    };
    pub(crate) use berth_sys::openat2::{
        fsetxattr, lstatat, lxattrs, openat, openat2, ResolveFlags,
    };
}
mod unpack;

pub use config::ImageConfig;
pub use diff::{diff, diff_excluding, LayerBlob};
pub use digest::{Compression, Digest};
pub use error::{Error, Result};
#[cfg(feature = "oci")]
pub use image::{Image, ImageBuilder, ImageLayout, WrittenImage, REF_NAME_ANNOTATION};
pub use mount::{ChildOverlay, DetachedOverlay, MountMethod, Overlay, OverlayMount, RedirectDir};
pub use store::{GcReport, ImportOptions, Layer, LayerStore, StoreLock};
pub use unpack::{unpack, UnpackOptions, UnpackStats, WhiteoutFormat};
