//! What became of the cgroup limits a container asked for.

use berth_cgroups::{ApplyReport, Resources};

/// The cgroup limits of a container as they were applied
/// ([`Container::applied`](crate::Container::applied)): each one written, and
/// each one skipped under
/// [`ignore_unavailable`](crate::ContainerBuilder::ignore_unavailable) with
/// the reason. Without `ignore_unavailable` nothing is ever skipped: a
/// missing controller fails the spawn, naming every missing one.
///
/// ```no_run
/// use berth::{Container, Limit, Resources};
/// let c = Container::builder("c")
///     .resources(Resources::new().memory_max(Limit::Value(64 << 20)))
///     .ignore_unavailable(true)
///     .command(["sleep", "1"])
///     .spawn()?;
/// for s in &c.applied().skipped {
///     eprintln!("{} = {} not enforced: {}", s.file, s.value, s.reason);
/// }
/// # Ok::<(), berth::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedLimits {
    /// `(file, value)` written into the container's cgroup, in order
    /// (`memory.max`, `67108864`).
    pub applied: Vec<(String, String)>,
    /// The limits that are not enforced.
    pub skipped: Vec<SkippedLimit>,
}

/// One limit that was not applied ([`AppliedLimits::skipped`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedLimit {
    /// The interface file that was not written (`memory.max`).
    pub file: String,
    /// The value that was not written.
    pub value: String,
    /// The controller it needs (`memory`), `None` for core `cgroup.*` files.
    pub controller: Option<String>,
    /// Why, as a sentence ("controller memory: bound to the cgroup v1
    /// hierarchy at /sys/fs/cgroup/memory").
    pub reason: String,
}

impl AppliedLimits {
    /// From berth-cgroups' report of the group's creation.
    pub(crate) fn from_report(r: ApplyReport) -> Self {
        AppliedLimits {
            applied: r.applied,
            skipped: r
                .skipped
                .into_iter()
                .map(|s| SkippedLimit {
                    controller: Some(s.controller.name().to_string()),
                    reason: format!("controller {}: {}", s.controller.name(), s.bound),
                    file: s.file,
                    value: s.value,
                })
                .collect(),
        }
    }

    /// Every limit of `r` skipped for one `reason` (no cgroup at all),
    /// logged once per limit.
    pub(crate) fn all_skipped(id: &str, r: &Resources, reason: &str) -> crate::Result<Self> {
        let skipped: Vec<SkippedLimit> = r
            .settings()?
            .into_iter()
            .map(|s| SkippedLimit {
                controller: s.controller.map(|c| c.name().to_string()),
                file: s.file,
                value: s.value,
                reason: reason.to_string(),
            })
            .collect();
        for s in &skipped {
            tracing::warn!(container = %id, file = %s.file, reason, "limit skipped");
        }
        Ok(AppliedLimits {
            applied: Vec::new(),
            skipped,
        })
    }
}
