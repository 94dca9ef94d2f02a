//! The device filter's load-once cache, for a runtime that attaches the
//! same allowlist to every container's cgroup.

use std::os::fd::AsFd;
use std::sync::{Mutex, OnceLock};

use crate::device::DeviceFilter;
use crate::error::Result;
use crate::sys::{attach_cgroup, AttachType, Program, BPF_F_ALLOW_MULTI};

/// The [`DeviceFilter::container_default`] program, loaded once per process.
static DEFAULT: OnceLock<Mutex<Option<Program>>> = OnceLock::new();

impl DeviceFilter {
    /// Attach to `cgroup` for the cgroup's lifetime, without a handle:
    /// removing the cgroup detaches it (cgroup-bpf, Linux 4.15). The
    /// [`container_default`](Self::container_default) allowlist is loaded
    /// (and verified) once per process and that one program attached to
    /// every cgroup given (`BPF_F_ALLOW_MULTI`); any other filter is
    /// loaded for this cgroup ([`attach`](Self::attach) +
    /// [`keep_attached`](crate::AttachedDeviceFilter::keep_attached)).
    ///
    /// ```no_run
    /// use berth_ebpf_probes::{open_cgroup, DeviceFilter};
    /// let cg = open_cgroup("/sys/fs/cgroup/web-1")?;
    /// DeviceFilter::container_default().attach_shared(&cg)?; // loads once
    /// let cg2 = open_cgroup("/sys/fs/cgroup/web-2")?;
    /// DeviceFilter::container_default().attach_shared(&cg2)?; // the same program
    /// # Ok::<(), berth_ebpf_probes::Error>(())
    /// ```
    #[doc(alias("BPF_PROG_ATTACH"))]
    pub fn attach_shared(&self, cgroup: impl AsFd) -> Result<()> {
        if self.rules() != DeviceFilter::container_default().rules() {
            self.attach(cgroup)?.keep_attached();
            return Ok(());
        }
        let slot = DEFAULT.get_or_init(|| Mutex::new(None));
        // A panic elsewhere while holding it leaves a loaded program or none: both usable.
        let mut loaded = slot.lock().unwrap_or_else(|p| p.into_inner());
        let prog = match &mut *loaded {
            Some(p) => p,
            None => loaded.insert(self.load()?),
        };
        attach_cgroup(
            cgroup.as_fd(),
            prog,
            AttachType::CgroupDevice,
            BPF_F_ALLOW_MULTI,
            None,
        )
    }
}
