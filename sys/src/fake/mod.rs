//! A fake kernel for tests (feature `fake`): a test installs a fake on its
//! thread, and the wrappers of this crate ask it before the kernel, so the
//! logic above them — step execution, mount ordering, cgroup writes — runs
//! and is checked without root. Never enabled in a build that ships: the
//! crates that use it enable the feature from `[dev-dependencies]` only.

pub mod child;
pub mod parent;
