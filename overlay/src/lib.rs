//! `berth-overlay`: OverlayFS root filesystems from image layers.
//!
//! This crate owns overlay mounts (the new mount API, with many layers), a
//! content-addressed layer store, safe OCI layer unpacking and diffing, and
//! reading local OCI image layouts.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
