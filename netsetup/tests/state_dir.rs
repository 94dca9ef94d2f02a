//! Issue 20 items 7 and 8, network state: the IPAM state directory (and its
//! IPAM and nft lock files) is private to its owner, an existing looser one
//! is tightened, one owned by another user is refused, and a symlink planted
//! at a lock or state file name is never followed. Each network lives in a
//! private "host" netns made by the test; the unprivileged user is uid/gid
//! 65534 (`setpriv`).

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use berth_netsetup::{BridgeNetwork, Network};
use common::*;

const NOBODY: u32 = 65534;

fn ensure(
    host: &TestNs,
    state: &Path,
    name: &str,
    subnet: &str,
) -> berth_netsetup::Result<Network> {
    BridgeNetwork::new(name)
        .bridge(&format!("br-{name}"))
        .subnet(subnet)
        .ip_forward(false)
        .state_dir(state)
        .host_netns(&host.handle)
        .unwrap()
        .ensure()
}

/// Run `args` as uid/gid 65534 without supplementary groups.
fn as_nobody(args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            "--",
        ])
        .args(args)
        .output()
        .expect("spawn setpriv")
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

/// Make directory `dir` with mode `m`.
fn mkdir(dir: &Path, m: u32) {
    fs::create_dir(dir).unwrap();
    fs::set_permissions(dir, fs::Permissions::from_mode(m)).unwrap();
}

/// A directory others may traverse, so only the state dir's own mode decides.
fn open_parent() -> tempfile::TempDir {
    let parent = tempfile::tempdir().unwrap();
    fs::set_permissions(parent.path(), fs::Permissions::from_mode(0o755)).unwrap();
    parent
}

#[test]
fn ipam_state_is_unreadable_by_other_users() {
    berth_testkit::privileged!();
    let host = TestNs::new();
    let parent = open_parent();
    let state = parent.path().join("net");
    let net = ensure(&host, &state, "sd1", "10.203.1.0/24").unwrap();
    let json = state.join("sd1.json");
    assert!(json.is_file());

    let mut failures = Vec::new();
    let ls = as_nobody(&["ls", "-a", state.to_str().unwrap()]);
    if ls.status.success() {
        failures.push(format!(
            "uid {NOBODY} listed the IPAM dir: {}",
            String::from_utf8_lossy(&ls.stdout).replace('\n', " ")
        ));
    }
    let cat = as_nobody(&["cat", json.to_str().unwrap()]);
    if cat.status.success() {
        failures.push(format!(
            "uid {NOBODY} read the IPAM state: {}",
            String::from_utf8_lossy(&cat.stdout)
        ));
    }
    if mode(&state) != 0o700 {
        failures.push(format!("state dir mode {:o}", mode(&state)));
    }
    for f in fs::read_dir(&state).unwrap().flatten() {
        let m = mode(&f.path());
        if m != 0o600 {
            failures.push(format!("{} mode {m:o}", f.path().display()));
        }
    }
    net.remove().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn existing_loose_state_dir_is_tightened() {
    berth_testkit::privileged!();
    let host = TestNs::new();
    let parent = open_parent();
    let state = parent.path().join("net");
    mkdir(&state, 0o755);
    let net = ensure(&host, &state, "sd2", "10.203.2.0/24").unwrap();
    let m = mode(&state);
    net.remove().unwrap();
    assert_eq!(m, 0o700, "a 0755 state dir was left {m:o}");

    // A shared directory given by mistake (other files in it, or sticky
    // like /tmp) is refused, not re-moded.
    let shared = parent.path().join("shared");
    mkdir(&shared, 0o755);
    fs::write(shared.join("notes.txt"), b"x").unwrap();
    let sticky = parent.path().join("sticky");
    mkdir(&sticky, 0o1777);
    for (dir, m) in [(&shared, 0o755), (&sticky, 0o1777)] {
        let e = ensure(&host, dir, "sd2", "10.203.2.0/24").unwrap_err();
        assert!(e.to_string().contains("not tightened"), "{e}");
        assert_eq!(mode(dir), m, "{}", dir.display());
    }
    assert_eq!(host.link_names(), vec!["lo".to_string()]);
}

#[test]
fn state_dir_owned_by_another_user_is_refused() {
    berth_testkit::privileged!();
    let host = TestNs::new();
    let parent = open_parent();
    let state = parent.path().join("net");
    mkdir(&state, 0o700);
    std::os::unix::fs::chown(&state, Some(NOBODY), Some(NOBODY)).unwrap();
    let res = ensure(&host, &state, "sd3", "10.203.3.0/24");
    let left: Vec<_> = fs::read_dir(&state)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    let links = host.link_names();
    if let Ok(net) = res {
        net.remove().unwrap();
        panic!("a state dir owned by uid {NOBODY} was used (files made in it: {left:?})");
    }
    let e = res.unwrap_err().to_string();
    assert!(
        e.contains(state.to_str().unwrap()) && e.contains("owned by uid 65534"),
        "{e}"
    );
    assert!(
        left.is_empty(),
        "files created in the refused dir: {left:?}"
    );
    assert_eq!(
        links,
        vec!["lo".to_string()],
        "nothing left in the host netns"
    );
}

#[test]
fn planted_symlinks_at_lock_and_state_names_are_not_followed() {
    berth_testkit::privileged!();
    let mut failures = Vec::new();
    for planted in ["nft.lock", "sd4.lock", "sd4.json"] {
        let host = TestNs::new();
        let parent = open_parent();
        let state = parent.path().join("net");
        mkdir(&state, 0o700);
        let victims = tempfile::tempdir().unwrap();
        let absent = victims.path().join("absent");
        std::os::unix::fs::symlink(&absent, state.join(planted)).unwrap();
        match ensure(&host, &state, "sd4", "10.203.4.0/24") {
            Ok(net) => {
                failures.push(format!("{planted} -> {}: ensure went on", absent.display()));
                net.remove().unwrap();
            }
            Err(e) => {
                let msg = e.to_string();
                if !msg.contains(planted) {
                    failures.push(format!("{planted}: error does not name the file: {msg}"));
                }
                if host.link_names() != vec!["lo".to_string()] {
                    failures.push(format!("{planted}: left {:?}", host.link_names()));
                }
            }
        }
        if absent.exists() || fs::symlink_metadata(&absent).is_ok() {
            failures.push(format!(
                "{planted} was followed: {} was created",
                absent.display()
            ));
        }
        // An existing victim: neither changed nor re-moded.
        let existing = victims.path().join("existing");
        fs::write(&existing, b"victim\n").unwrap();
        fs::set_permissions(&existing, fs::Permissions::from_mode(0o644)).unwrap();
        fs::remove_file(state.join(planted)).unwrap_or(());
        for f in fs::read_dir(&state).unwrap().flatten() {
            fs::remove_file(f.path()).unwrap();
        }
        std::os::unix::fs::symlink(&existing, state.join(planted)).unwrap();
        if let Ok(net) = ensure(&host, &state, "sd4", "10.203.4.0/24") {
            failures.push(format!(
                "{planted} -> {}: ensure went on",
                existing.display()
            ));
            net.remove().unwrap();
        }
        if fs::read(&existing).unwrap() != b"victim\n" || mode(&existing) != 0o644 {
            failures.push(format!("{planted}: {} was changed", existing.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
