//! The hybrid host's v1 accounting groups: engines (containerd's shim,
//! cAdvisor) read a container's memory, pids and cpu statistics from the
//! v1 hierarchies its init's `/proc/<pid>/cgroup` names when cgroup2 lacks
//! those controllers. So the container's processes also join their own
//! (limitless) v1 groups, as runc's v1 mode puts them, and never report
//! the session's numbers.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::{cgroup, log};

/// The v1 hierarchies a hybrid host binds the controllers engines read
/// statistics from, paired with the cgroup2 controller that makes a v1
/// group unnecessary.
const V1_STATS: [(berth_cgroups::Controller, &str); 3] = [
    (berth_cgroups::Controller::Memory, "memory"),
    (berth_cgroups::Controller::Pids, "pids"),
    (berth_cgroups::Controller::Cpu, "cpuacct"),
];

/// The cgroup2 parent berth-oci makes below its own group when a bundle
/// has no cgroupsPath (see `builder`).
pub const DEFAULT_PARENT: &str = "berth-oci";

/// Our own group in the v1 hierarchy of controller `name`, as
/// `/proc/self/cgroup` (`N:ctrl[,ctrl]:/path`) gives it, without the
/// leading `/`.
fn own_path<'a>(own: &'a str, name: &str) -> Option<&'a str> {
    own.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        ctrls
            .split(',')
            .any(|c| c == name)
            .then(|| path.trim_start_matches('/'))
    })
}

/// On a hybrid host, the container's own groups in the v1 hierarchies of
/// [`V1_STATS`] whose controller cgroup2 lacks (a v1 hierarchy has
/// `cgroup.procs` but no `cgroup.controllers`). A cgroupsPath (absolute,
/// the engine's choice) is used as is, from each hierarchy's root, as runc
/// does; berth-oci's default `<own>/berth-oci/<id>` nests under the
/// runtime's own v1 group, so the caller's v1 limits still hold. Which of
/// the two it is shows in the cgroup2 path: only the default lies below
/// `<own>/berth-oci` (the own cgroup2 group may be the root, which every
/// path lies below).
fn dirs(st: &berth::State) -> Vec<PathBuf> {
    let (Some(cg), Ok(h)) = (&st.cgroup, berth_cgroups::Hierarchy::discover()) else {
        return Vec::new();
    };
    let Ok(rel) = cg.strip_prefix(h.mount_point()) else {
        return Vec::new();
    };
    let own2 = h.own_cgroup_dir();
    let under_own = cg
        .strip_prefix(&own2)
        .ok()
        .filter(|rest| rest.starts_with(DEFAULT_PARENT));
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    hierarchies(Some(&h))
        .into_iter()
        .map(|name| {
            let m = Path::new("/sys/fs/cgroup").join(name);
            match (under_own, own_path(&own, name)) {
                (Some(rest), Some(mine)) => m.join(mine).join(rest),
                _ => m.join(rel),
            }
        })
        .collect()
}

/// The v1 hierarchies of [`V1_STATS`] a hybrid host binds a controller in
/// that cgroup2 (`h`, when there is one) lacks (the ones [`join`] will
/// write to).
fn hierarchies(h: Option<&berth_cgroups::Hierarchy>) -> Vec<&'static str> {
    let have = h.and_then(|h| h.root_controllers().ok());
    V1_STATS
        .iter()
        .filter(|(c, _)| !have.as_ref().is_some_and(|h| h.contains(*c)))
        .map(|(_, name)| *name)
        .filter(|name| {
            let m = Path::new("/sys/fs/cgroup").join(name);
            m.join("cgroup.procs").exists() && !m.join("cgroup.controllers").exists()
        })
        .collect()
}

/// Start, in the background, the wait [`join`]'s first `cgroup.procs`
/// write would otherwise do in line: a v1 attach takes the global
/// `cgroup_threadgroup_rwsem` for writing, and after a quiet spell that
/// first waits for an RCU grace period (`percpu_down_write` →
/// `rcu_sync_enter`, kernel/cgroup/cgroup.c `cgroup_attach_lock`,
/// kernel/rcu/sync.c): 8–28 ms here, then 0.1–0.2 ms for the writes that
/// follow within the grace period's hold-off. A thread rewrites this
/// process's pid into its own v1 group (a move to where it already is,
/// which changes nothing) while the container is built, so the wait
/// overlaps the child's setup instead of adding to `create`. runc pays
/// that wait in line. Nothing to do without a v1 hierarchy to join.
pub fn prewarm() {
    let h = berth_cgroups::Hierarchy::discover().ok();
    let Some(name) = hierarchies(h.as_ref()).into_iter().next() else {
        return;
    };
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let Some(mine) = own_path(&own, name) else {
        return;
    };
    let procs = Path::new("/sys/fs/cgroup")
        .join(name)
        .join(mine)
        .join("cgroup.procs");
    let pid = std::process::id().to_string();
    let spawned = std::thread::Builder::new()
        .name("v1-prewarm".into())
        .spawn(move || {
            // A failure costs only the overlap: join pays the wait itself.
            let _ = std::fs::write(&procs, pid);
        });
    if let Err(e) = spawned {
        log::warn(&format!("v1 prewarm thread: {e}"));
    }
}

/// Move the container's processes (its cgroup2 `cgroup.procs`; their
/// children follow) into its own v1 groups ([`dirs`]), made on demand, so
/// that the statistics engines read from v1 on a hybrid host are the
/// container's, never the session's (no limit is set there). A failure
/// is a warning: the container runs as before. Returns the groups joined,
/// for the record (`v1_cgroups`): `delete` and `events` use these,
/// whoever calls them.
pub fn join(id: &str, st: &berth::State) -> Vec<PathBuf> {
    let pids = cgroup::procs(st);
    let mut joined = Vec::new();
    for d in dirs(st) {
        let r = std::fs::create_dir_all(&d).and_then(|()| {
            pids.iter()
                .try_for_each(|p| std::fs::write(d.join("cgroup.procs"), p.to_string()))
        });
        match r {
            Ok(()) => joined.push(d),
            Err(e) => log::warn(&format!("{id}: join v1 cgroup {}: {e}", d.display())),
        }
    }
    joined
}

/// Our own groups in the v1 hierarchies of `dirs` (from
/// `/proc/self/cgroup`).
pub fn own_groups(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    dirs.iter()
        .filter_map(|d| {
            let name = d.strip_prefix("/sys/fs/cgroup").ok()?.components().next()?;
            let name = name.as_os_str().to_str()?;
            Some(
                Path::new("/sys/fs/cgroup")
                    .join(name)
                    .join(own_path(&own, name)?),
            )
        })
        .collect()
}

/// Move this process into the v1 groups `dirs` (a failure is a warning).
pub fn move_self(id: &str, dirs: &[PathBuf]) {
    for d in dirs {
        if let Err(e) = std::fs::write(d.join("cgroup.procs"), std::process::id().to_string()) {
            log::warn(&format!("{id}: move to v1 cgroup {}: {e}", d.display()));
        }
    }
}

/// Remove the container's v1 groups once their processes are gone
/// (rmdir(2) is EBUSY while a task remains; the init was just killed).
pub fn remove(dirs: &[PathBuf]) {
    for d in dirs {
        let t = Instant::now();
        while d.exists() && std::fs::remove_dir(d).is_err() && t.elapsed() < Duration::from_secs(2)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
