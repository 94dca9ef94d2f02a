//! Helpers shared by the berth-run tests.

/// What berth-run left of container `name`: its state directory under
/// `/run/berth`, its cgroup below ours, mounts whose line names it.
pub fn left_behind(name: &str) -> Vec<String> {
    let mut v = Vec::new();
    let state = std::path::Path::new("/run/berth").join(name);
    if state.exists() {
        v.push(state.display().to_string());
    }
    if let Ok(h) = berth_cgroups::Hierarchy::discover() {
        let cg = h.own_cgroup_dir().join("berth").join(name);
        if cg.exists() {
            v.push(cg.display().to_string());
        }
    }
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    v.extend(mi.lines().filter(|l| l.contains(name)).map(String::from));
    v
}
