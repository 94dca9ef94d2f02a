//! The success path of `use_id_map_tools`: an unprivileged caller maps a
//! whole subordinate id range through the setuid `newuidmap`/`newgidmap`.
//!
//! The host has no `/etc/subuid` entry to use, and a test must not edit the
//! host's files, so the test re-executes itself inside a private mount
//! namespace (`unshare --mount --propagation private`) in which `/etc/subuid`
//! and `/etc/subgid` are bind mounts of temporary files granting uid/gid
//! 65534 the range 400000–465535, and from there drops to 65534 with
//! `setpriv`. The mounts vanish with that namespace.
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

use berth_namespaces::{IdMap, Namespaces, Spawner};

const INNER: &str = "BERTH_NS_SUBID_INNER";
const DIR: &str = "BERTH_NS_SUBID_DIR";
const BASE: u32 = 400_000;
const COUNT: u32 = 65_536;

/// Runs as uid 65534 inside the private mount namespace (only when
/// re-executed by `newuidmap_maps_a_subordinate_range`).
#[test]
fn subid_inner() {
    if std::env::var_os(INNER).is_none() {
        return;
    }
    let dir = PathBuf::from(std::env::var_os(DIR).unwrap());
    // SAFETY: getters cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 65534);
    // Root inside is 65534 outside; ids 1.. are the subordinate range.
    // Inside, root creates a file and gives it to uid/gid 1000: outside it
    // must belong to BASE + 999.
    let script = "cat /proc/self/uid_map /proc/self/gid_map; \
                  echo x > \"$D/owned\" && chown 1000:1000 \"$D/owned\" && echo chowned";
    let out = Spawner::new(["/bin/busybox", "sh", "-c", script])
        .namespaces(Namespaces::USER)
        .uid_map(IdMap::new(0, 65534, 1))
        .uid_map(IdMap::new(1, BASE, COUNT))
        .gid_map(IdMap::new(0, 65534, 1))
        .gid_map(IdMap::new(1, BASE, COUNT))
        .use_id_map_tools(true)
        .env("D", &dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}: {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let want_map = ["0 65534 1".to_string(), format!("1 {BASE} {COUNT}")];
    assert_eq!(&lines[..2], &want_map, "uid_map: {stdout}");
    assert_eq!(&lines[2..4], &want_map, "gid_map: {stdout}");
    assert_eq!(
        lines.get(4).map(String::as_str),
        Some("chowned"),
        "{stdout}"
    );
    let md = std::fs::metadata(dir.join("owned")).unwrap();
    assert_eq!((md.uid(), md.gid()), (BASE + 999, BASE + 999));

    // A range the files do not grant is refused by the helper, and its
    // message reaches the caller before any workload runs.
    let err = Spawner::new(["/bin/true"])
        .namespaces(Namespaces::USER)
        .uid_map(IdMap::new(0, 65534, 1))
        .uid_map(IdMap::new(1, BASE + COUNT, 10))
        .use_id_map_tools(true)
        .spawn()
        .unwrap_err();
    assert!(
        matches!(err, berth_namespaces::Error::IdMapTool { tool, .. } if tool == "newuidmap"),
        "{err:?}"
    );
    println!("SUBID-INNER-OK");
}

#[test]
fn newuidmap_maps_a_subordinate_range() {
    berth_testkit::privileged!();
    if std::env::var_os(INNER).is_some() {
        return;
    }
    for tool in ["newuidmap", "newgidmap"] {
        assert!(
            std::path::Path::new("/usr/bin").join(tool).exists(),
            "{tool} missing: scripts/install-deps installs the uidmap package"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let exe = dir.path().join("subid-test");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let grant = format!("65534:{BASE}:{COUNT}\n");
    let (subuid, subgid) = (dir.path().join("subuid"), dir.path().join("subgid"));
    std::fs::write(&subuid, &grant).unwrap();
    std::fs::write(&subgid, &grant).unwrap();
    let script = r#"set -e
mount --bind "$1" /etc/subuid
mount --bind "$2" /etc/subgid
shift 2
exec setpriv --reuid 65534 --regid 65534 --clear-groups "$@""#;
    let out = std::process::Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(&subuid)
        .arg(&subgid)
        .arg(&exe)
        .args(["subid_inner", "--exact", "--nocapture", "--test-threads=1"])
        .env(INNER, "1")
        .env(DIR, dir.path())
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("SUBID-INNER-OK"),
        "subid run failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // The host's files were never touched.
    assert!(!std::fs::read_to_string("/etc/subuid")
        .unwrap_or_default()
        .contains(&grant));
}
