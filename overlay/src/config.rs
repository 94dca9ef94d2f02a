//! What a container needs from an image's config, as plain data: no OCI
//! parsing here (the `oci` feature's `ImageLayout` fills it from an image
//! config; `berth` takes it from its caller too).

/// The parts of an image config a container needs to start the image's process.
///
/// ```
/// let cfg = berth_overlay::ImageConfig {
///     entrypoint: vec!["/bin/sh".into(), "-c".into()],
///     cmd: vec!["echo hi".into()],
///     ..Default::default()
/// };
/// assert_eq!(cfg.argv(), ["/bin/sh", "-c", "echo hi"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// `Env`: `KEY=value` strings.
    pub env: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `WorkingDir` (empty = `/`).
    pub working_dir: Option<String>,
    /// `User` (`uid`, `uid:gid`, `name`…, empty = root).
    pub user: Option<String>,
}

impl ImageConfig {
    /// The process argv the image asks for: `Entrypoint` followed by `Cmd`.
    pub fn argv(&self) -> Vec<String> {
        self.entrypoint
            .iter()
            .chain(self.cmd.iter())
            .cloned()
            .collect()
    }
}
