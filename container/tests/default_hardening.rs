//! Privileged tier: the defaults a container gets without asking (issue 20,
//! items 4 and 10), observed from inside a default container.

mod common;

use common::*;

/// Item 10: the inheritable set is empty (Docker >= 20.10.14,
/// CVE-2022-24769); bounding, permitted and effective hold Docker's 14.
#[test]
fn default_inheritable_capabilities_are_empty() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("capinh");
    let (st, out, err) = sh(
        busybox(&id, &root),
        "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb):' /proc/self/status",
    );
    assert!(st.success(), "{out}{err}");
    // The 14 of berth_security::DOCKER_DEFAULT_CAPS.
    let docker14 = "00000000a80425fb";
    assert_eq!(
        out,
        format!(
            "CapInh:\t0000000000000000\nCapPrm:\t{docker14}\nCapEff:\t{docker14}\n\
             CapBnd:\t{docker14}\nCapAmb:\t0000000000000000\n"
        )
    );
    assert!(footprint(root.path(), &id).state.is_empty());
}

/// Item 4: in a default container (root, CAP_MKNOD) every node outside
/// the allowlist (runc's, without tun) can be made (the wildcard `m`
/// rules) but not opened (EPERM from the cgroup device program), and every
/// allowed node opens (or fails with anything but EPERM: /dev/tty without
/// a controlling terminal is ENXIO). The nodes are made in the container's
/// /dev tmpfs.
#[test]
fn default_device_allowlist_is_runcs() {
    berth_testkit::privileged!();
    let root = state_root();
    let id = berth_testkit::unique_name("devallow");
    // name, type, major, minor, allowed
    let nodes: &[(&str, &str, u32, u32, bool)] = &[
        ("console", "c", 5, 1, false),
        ("sda", "b", 8, 0, false),
        ("loop0", "b", 7, 0, false),
        ("mem", "c", 1, 1, false),
        ("kmsg", "c", 1, 11, false),
        ("tty1", "c", 4, 1, false),
        ("fuse", "c", 10, 229, false),
        ("tun", "c", 10, 200, false),
        ("null", "c", 1, 3, true),
        ("zero", "c", 1, 5, true),
        ("full", "c", 1, 7, true),
        ("random", "c", 1, 8, true),
        ("urandom", "c", 1, 9, true),
        ("tty", "c", 5, 0, true),
        ("ptmx", "c", 5, 2, true),
        ("pts0", "c", 136, 0, true),
    ];
    let mut script = String::new();
    for (name, ty, maj, min, _) in nodes {
        // Write-only: no capability check on opening these for writing
        // (but /dev/mem's CAP_SYS_RAWIO, denied either way), so EPERM comes
        // from the device program.
        script.push_str(&format!(
            "n=/dev/t-{name}; if mknod $n {ty} {maj} {min}; then \
             if (exec 3>$n) 2>/dev/e; then echo {name} open; \
             elif grep -q 'not permitted' /dev/e; then echo {name} EPERM; \
             else echo {name} other; fi; else echo {name} nomknod; fi\n"
        ));
    }
    let (st, out, err) = sh(busybox(&id, &root), &script);
    assert!(st.success(), "{out}{err}");
    let mut bad = Vec::new();
    for ((name, _, maj, min, allowed), line) in nodes.iter().zip(out.lines()) {
        let verdict = line.strip_prefix(&format!("{name} ")).unwrap_or(line);
        let ok = if *allowed {
            verdict == "open" || verdict == "other"
        } else {
            verdict == "EPERM"
        };
        if !ok {
            bad.push(format!(
                "{name} {maj}:{min} (allowed: {allowed}): {verdict}"
            ));
        }
    }
    assert!(
        bad.is_empty() && out.lines().count() == nodes.len(),
        "{bad:?}\n{out}{err}"
    );
}
