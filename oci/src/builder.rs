//! From a bundle to berth's `ContainerBuilder`, with what runc adds to the
//! bundle: its standard device rules, the parents of a cgroupsPath, our
//! own cgroup parent, `--preserve-fds`, and the refusal of limits the
//! host's cgroup2 cannot enforce.

use crate::cli::{Args, ALLOW_UNENFORCED_ENV};
use crate::error::{Error, Result};
use crate::record::Ctx;
use crate::{fds, log};

/// The bundle `--bundle`/`-b` (default: the current directory) names, of a
/// spec version berth-oci implements (1.0.x to 1.3.x).
pub fn load_bundle(a: &Args) -> Result<berth::Bundle> {
    let dir = a.get_any(&["bundle", "b"]).unwrap_or(".");
    let dir = std::fs::canonicalize(dir).map_err(Error::io(format!("bundle {dir}")))?;
    let b = berth::Bundle::load(&dir)?;
    let v = b.spec().version();
    if !["1.0.", "1.1.", "1.2.", "1.3."]
        .iter()
        .any(|p| v.starts_with(p))
    {
        return Err(Error::Config(format!(
            "unsupported ociVersion {v:?} (1.0.x to 1.3.x)"
        )));
    }
    Ok(b)
}

/// Whether berth-oci runs without root (rootless: no cgroup unless a
/// delegated one, no device cgroup).
pub fn rootless() -> bool {
    let euid = berth_sys::fs::euid();
    euid != 0
}

/// The builder of container `id` from `bundle`, under the state root.
pub fn builder_for(
    ctx: &Ctx,
    bundle: &berth::Bundle,
    id: &str,
    a: &Args,
) -> Result<berth::ContainerBuilder> {
    let mut b = bundle
        .builder(id)?
        .state_root(&ctx.root)
        .kill_with_owner(false);
    // --preserve-fds N: our fds 3 .. 3+N become the workload's under the
    // same numbers (runc's semantics; LISTEN_FDS is the caller's business).
    for fd in fds::preserved_fds(a)? {
        let dup = berth_sys::fs::dup_inherited(fd)
            .map_err(Error::io(format!("--preserve-fds: dup fd {fd}")))?;
        b = b.inherit_fd(dup, fd);
    }
    let linux = bundle.spec().linux().as_ref();
    let resources = linux.and_then(|l| l.resources().as_ref());
    let rootless = rootless();
    if let Some(devs) = resources
        .and_then(|r| r.devices().as_ref())
        .filter(|_| !rootless)
    {
        b = b.device_filter(Some(device_filter(devs)?));
    }
    let cpath = linux.and_then(|l| l.cgroups_path().clone());
    if !rootless {
        make_cgroups_path_parents(cpath.as_deref())?;
    }
    if rootless && resources.is_some() {
        log::warn(&format!(
            "{id}: rootless: resource limits apply only under a writable (delegated) cgroupsPath parent"
        ));
    }
    b = unenforced_limits(ctx, bundle, id, rootless, b)?;
    if let (Ok(h), false, None) = (berth_cgroups::Hierarchy::discover(), rootless, cpath) {
        // Our own parent, beside berth-run's `berth` (cgroupsPath: as given).
        let parent = h.own_cgroup_dir().join(crate::v1::DEFAULT_PARENT);
        std::fs::create_dir_all(&parent).map_err(Error::io(format!(
            "create cgroup parent {}",
            parent.display()
        )))?;
        b = b.cgroup_parent(parent);
    }
    Ok(b)
}

/// The bundle's device rules followed by runc's allowlist of standard
/// devices (null, zero, full, random, urandom, tty, console, ptmx, pts,
/// mknod of any), as runc appends it; engines rely on it (podman sends
/// only "deny all").
fn device_filter(
    devs: &[oci_spec::runtime::LinuxDeviceCgroup],
) -> Result<berth_ebpf_probes::DeviceFilter> {
    let mut f = berth_ebpf_probes::DeviceFilter::from_oci(devs)?;
    for r in berth_ebpf_probes::DeviceFilter::container_default()
        .rules()
        .iter()
        .skip(1)
    {
        f.rule(*r);
    }
    Ok(f)
}

/// runc creates the parents of an absolute cgroupsPath (engines name e.g.
/// `/<namespace>/<id>`); berth wants the parent to exist.
fn make_cgroups_path_parents(cpath: Option<&std::path::Path>) -> Result<()> {
    let (Some(cp), Ok(h)) = (cpath, berth_cgroups::Hierarchy::discover()) else {
        return Ok(());
    };
    if let (true, Some(parent)) = (cp.is_absolute(), cp.parent()) {
        let rel = parent.strip_prefix("/").unwrap_or(parent);
        if !rel.as_os_str().is_empty() && !rel.to_string_lossy().contains("..") {
            let dir = h.mount_point().join(rel);
            std::fs::create_dir_all(&dir)
                .map_err(Error::io(format!("create cgroup parent {}", dir.display())))?;
        }
    }
    Ok(())
}

/// The bundle's limits whose controllers the cgroup2 hierarchy does not
/// offer (a hybrid host: v1 controllers beside cgroup2; its root's
/// `cgroup.controllers`): an error naming each and where it is bound (the
/// runtime spec: a property that cannot be applied is an error), unless
/// the operator allowed unenforced limits (then a warning, and the
/// library skips them). Rootless without a delegated cgroup, the library
/// applies no limit at all, as runc does.
fn unenforced_limits(
    ctx: &Ctx,
    bundle: &berth::Bundle,
    id: &str,
    rootless: bool,
    b: berth::ContainerBuilder,
) -> Result<berth::ContainerBuilder> {
    let Some(r) = bundle
        .spec()
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
    else {
        return Ok(b);
    };
    let wanted = berth_cgroups::Resources::from_oci(r).and_then(|r| r.controllers())?;
    let h = berth_cgroups::Hierarchy::discover()?;
    let have = h.root_controllers()?;
    let missing: Vec<String> = wanted
        .iter()
        .filter(|c| !have.contains(*c))
        .map(|c| {
            let bound = h.where_bound(c, &h.own_cgroup_dir());
            format!("{} ({bound})", c.name())
        })
        .collect();
    if missing.is_empty() {
        return Ok(b);
    }
    let missing = missing.join(", ");
    let mount = h.mount_point().display();
    if ctx.allow_unenforced {
        log::warn(&format!("{id}: limits not enforced (allowed by --allow-unenforced-limits or {ALLOW_UNENFORCED_ENV}=1): the cgroup2 hierarchy at {mount} has no controller {missing}"));
        return Ok(b.ignore_unavailable(true));
    }
    if rootless {
        return Ok(b);
    }
    Err(Error::Config(format!(
        "container {id}: linux.resources cannot be applied: the cgroup2 hierarchy at {mount} has no controller {missing}; \
         to run without these limits, pass --allow-unenforced-limits or set {ALLOW_UNENFORCED_ENV}=1"
    )))
}
