//! OCI bundles: config.json mapped onto the builder, observed from inside.

mod common;

use std::io::Read;

use berth::{Bundle, Stdio};
use common::*;

fn config(rootfs: &str, vol: &str) -> serde_json::Value {
    serde_json::json!({
        "ociVersion": "1.0.2",
        "root": { "path": rootfs, "readonly": true },
        "hostname": "oci-box",
        "process": {
            "terminal": false,
            "user": { "uid": 1000, "gid": 1000, "additionalGids": [5] },
            "args": ["/bin/sh", "-c", "hostname; id -u; id -G; echo $FOO; pwd; ulimit -n; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; cat /vol/f; touch /x 2>/dev/null || echo rootro; grep ' /scratch ' /proc/self/mountinfo | grep -o 'size=[0-9]*k'; mkdir /scratch/d 2>/dev/null || echo mkdir-denied; cat /proc/kcore | wc -c; cat /proc/sys/net/ipv4/ip_forward"],
            "env": ["PATH=/bin:/usr/bin", "FOO=bar"],
            "cwd": "/tmp",
            "capabilities": {
                "bounding": ["CAP_CHOWN", "CAP_KILL"],
                "effective": ["CAP_CHOWN", "CAP_KILL"],
                "permitted": ["CAP_CHOWN", "CAP_KILL"],
                "ambient": ["CAP_CHOWN", "CAP_KILL"],
                "inheritable": ["CAP_CHOWN", "CAP_KILL"]
            },
            "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 123, "soft": 123 }],
            "noNewPrivileges": true
        },
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "size=2048k", "mode=1777"] },
            { "destination": "/vol", "type": "bind", "source": vol, "options": ["rbind", "ro"] }
        ],
        "linux": {
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
                { "type": "uts" }, { "type": "mount" }, { "type": "cgroup" }
            ],
            "sysctl": { "net.ipv4.ip_forward": "1" },
            "maskedPaths": ["/proc/kcore"],
            "readonlyPaths": ["/proc/sys"],
            "seccomp": { "defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                { "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO" }
            ]}
        }
    })
}

/// Write `cfg` as a bundle's `config.json`, run it under berth (state in
/// `root`), return its stdout once it exited successfully and was destroyed.
fn run_bundle(cfg: &serde_json::Value, root: &std::path::Path, prefix: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    let id = berth_testkit::unique_name(prefix);
    let mut c = Bundle::load(dir.path())
        .unwrap()
        .builder(&id)
        .unwrap()
        .state_root(root)
        .stdin(Stdio::Null)
        .stdout(Stdio::Piped)
        .spawn()
        .unwrap_or_else(|e| panic!("bundle refused: {e}"));
    let mut out = String::new();
    c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(c.wait().unwrap().success(), "{out}");
    c.destroy().unwrap();
    out
}

#[test]
fn bundle_is_mapped_and_observed() {
    berth_testkit::privileged!();
    let root = state_root();
    let vol = tempfile::tempdir().unwrap();
    std::fs::write(vol.path().join("f"), "from-vol\n").unwrap();
    let cfg = config(
        &berth_testkit::busybox_rootfs().display().to_string(),
        &vol.path().display().to_string(),
    );
    let out = run_bundle(&cfg, root.path(), "oci");
    assert_eq!(
        out,
        "oci-box\n1000\n1000 5\nbar\n/tmp\n123\nCapEff:\t0000000000000021\nCapBnd:\t0000000000000021\nNoNewPrivs:\t1\nSeccomp:\t2\nfrom-vol\nrootro\nsize=2048k\nmkdir-denied\n0\n1\n"
    );
}

#[test]
fn unsupported_fields_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config("/nonexistent", "/tmp");
    cfg["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({ "destination": "/n", "type": "nfs", "source": "srv:/x" }));
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    let e = Bundle::load(dir.path()).unwrap().builder("x").unwrap_err();
    assert!(e.to_string().contains("nfs"), "{e}");

    let mut cfg = config("/nonexistent", "/tmp");
    cfg["process"]["selinuxLabel"] = "system_u:system_r:container_t:s0".into();
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    let e = Bundle::load(dir.path()).unwrap().builder("x").unwrap_err();
    assert!(e.to_string().contains("selinuxLabel"), "{e}");

    let mut cfg = config("/nonexistent", "/tmp");
    cfg["linux"]["cgroupsPath"] = "system.slice:berth:x".into();
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    let e = Bundle::load(dir.path()).unwrap().builder("x").unwrap_err();
    assert!(e.to_string().contains("cgroupsPath"), "{e}");

    std::fs::write(dir.path().join("config.json"), "{ not json").unwrap();
    let e = Bundle::load(dir.path()).unwrap_err();
    assert!(e.to_string().contains("config.json"), "{e}");
}

/// Without a UTS namespace in the bundle the container shares the host's
/// (its hostname is the host's); a hostname then is an error, as runc's
/// ("unable to set hostname without a private UTS namespace"), and nothing
/// is left behind.
#[test]
fn bundle_without_uts_namespace() {
    berth_testkit::privileged!();
    let root = state_root();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(
        &berth_testkit::busybox_rootfs().display().to_string(),
        "/tmp",
    );
    cfg["mounts"] =
        serde_json::json!([{ "destination": "/proc", "type": "proc", "source": "proc" }]);
    cfg["process"]["args"] =
        serde_json::json!(["/bin/sh", "-c", "hostname; readlink /proc/self/ns/uts"]);
    cfg["linux"]["namespaces"] = serde_json::json!([
        { "type": "pid" }, { "type": "network" }, { "type": "ipc" }, { "type": "mount" }
    ]);
    cfg["linux"]["sysctl"] = serde_json::json!({});
    cfg.as_object_mut().unwrap().remove("hostname");
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    let id = berth_testkit::unique_name("oci-uts");
    let mut c = Bundle::load(dir.path())
        .unwrap()
        .builder(&id)
        .unwrap()
        .state_root(root.path())
        .stdin(Stdio::Null)
        .stdout(Stdio::Piped)
        .spawn()
        .unwrap();
    let mut out = String::new();
    c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(c.wait().unwrap().success(), "{out}");
    c.destroy().unwrap();
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let host_uts = std::fs::read_link("/proc/self/ns/uts").unwrap();
    assert_eq!(out, format!("{}{}\n", host_name, host_uts.display()));

    // A hostname without a UTS namespace of its own: refused, nothing left.
    cfg["hostname"] = "would-rename-the-host".into();
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    let e = Bundle::load(dir.path())
        .unwrap()
        .builder(&id)
        .unwrap()
        .state_root(root.path())
        .spawn()
        .unwrap_err();
    assert!(e.to_string().contains("UTS namespace"), "{e}");
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host_name
    );
}

/// An image whose busybox base is topped by a layer with these files.
fn image_with_top_layer(
    dir: &std::path::Path,
    user: &str,
    files: &[(&str, &str)],
    links: &[(&str, &str)],
) -> berth::Rootfs {
    let top = dir.join("top");
    std::fs::create_dir_all(top.join("etc")).unwrap();
    for (p, text) in files {
        std::fs::write(top.join(p), text).unwrap();
    }
    for (p, target) in links {
        std::os::unix::fs::symlink(target, top.join(p)).unwrap();
    }
    let layout = dir.join("layout");
    berth_overlay::ImageBuilder::new("users:latest")
        .layer_dir(berth_testkit::busybox_rootfs())
        .layer_dir(&top)
        .cmd(["/bin/sh", "-c", "id -u; id -g; id -G"])
        .user(user)
        .write(&layout)
        .unwrap();
    let store = berth_overlay::LayerStore::open(dir.join("store")).unwrap();
    let l = berth_overlay::ImageLayout::open(&layout).unwrap();
    berth::Rootfs::image(&store, &l, "latest").unwrap()
}

/// The image config's `User` by name is looked up in the image's own
/// /etc/passwd and /etc/group (top layer first), with supplementary groups;
/// a symlinked /etc/passwd never reads the host's file; an unknown name is
/// an error leaving nothing.
#[test]
fn image_user_names_resolve_in_the_rootfs() {
    berth_testkit::privileged!();
    let root = state_root();
    let passwd = "root:x:0:0:root:/root:/bin/sh\nalice:x:1234:2345:A:/:/bin/sh\n";
    let group = "root:x:0:\nstaff:x:2345:\nextra:x:3456:bob,alice\nother:x:4567:\n";
    let files = [("etc/passwd", passwd), ("etc/group", group)];
    let run = |user: &str, files: &[(&str, &str)], links: &[(&str, &str)]| {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = image_with_top_layer(dir.path(), user, files, links);
        let id = berth_testkit::unique_name("img-user");
        let r = berth::Container::builder(&id)
            .rootfs(rootfs)
            .state_root(root.path())
            .stdin(Stdio::Null)
            .stdout(Stdio::Piped)
            .spawn();
        match r {
            Ok(mut c) => {
                let mut out = String::new();
                c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
                assert!(c.wait().unwrap().success(), "{out}");
                c.destroy().unwrap();
                Ok(out)
            }
            Err(e) => Err(e.to_string()),
        }
    };
    assert_eq!(
        run("alice", &files, &[]).unwrap(),
        "1234\n2345\n2345 3456\n"
    );
    assert_eq!(
        run("alice:other", &files, &[]).unwrap(),
        "1234\n4567\n4567\n"
    );
    assert_eq!(
        run("1234:staff", &files, &[]).unwrap(),
        "1234\n2345\n2345\n"
    );
    assert_eq!(run("alice:7", &files, &[]).unwrap(), "1234\n7\n7\n");
    // The busybox layer's own passwd when the top layer has none.
    assert_eq!(run("user", &[], &[]).unwrap(), "1000\n1000\n1000\n");
    let e = run("mallory", &files, &[]).unwrap_err();
    assert!(e.contains("no user \"mallory\""), "{e}");
    let e = run("alice:wheel", &files, &[]).unwrap_err();
    assert!(e.contains("no group \"wheel\""), "{e}");

    // /etc/passwd -> ../../..../<host dir>/passwd: resolved inside the
    // rootfs (where that path does not exist), never on the host.
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("passwd"), "evil:x:4242:4242::/:/bin/sh\n").unwrap();
    let target = format!("../../../../../../../../..{}/passwd", host.path().display());
    let e = run("evil", &[], &[("etc/passwd", &target)]).unwrap_err();
    assert!(e.contains("no user \"evil\""), "{e}");
    let abs = format!("{}/passwd", host.path().display());
    let e = run("evil", &[], &[("etc/passwd", &abs)]).unwrap_err();
    assert!(e.contains("no user \"evil\""), "{e}");
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
}

/// `config.json` as `runc spec` (runc 1.1) writes it, with `terminal`
/// off, the root at `rootfs` and `uid`: ambient capabilities without
/// inheritable ones.
fn runc_spec_config(rootfs: &std::path::Path, uid: u32, args: &[&str]) -> serde_json::Value {
    let caps = serde_json::json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    serde_json::json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false, "user": { "uid": uid, "gid": uid }, "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": { "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps },
            "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
            "noNewPrivileges": true
        },
        "root": { "path": rootfs, "readonly": true },
        "hostname": "runc",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"] },
            { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }
        ],
        "linux": {
            "resources": { "devices": [{ "allow": false, "access": "rwm" }] },
            "namespaces": [{ "type": "pid" }, { "type": "network" }, { "type": "ipc" }, { "type": "uts" }, { "type": "mount" }],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

/// The installed runc, if any (`/usr/sbin/runc` on Debian).
fn runc_binary() -> Option<std::path::PathBuf> {
    [
        "/usr/sbin/runc",
        "/usr/bin/runc",
        "/usr/local/sbin/runc",
        "/usr/local/bin/runc",
    ]
    .iter()
    .map(std::path::PathBuf::from)
    .find(|p| p.exists())
}

/// Run `cfg` with runc (its own state root), return its stdout.
fn run_with_runc(runc: &std::path::Path, cfg: &serde_json::Value) -> String {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    let id = berth_testkit::unique_name("runc-ref");
    let out = std::process::Command::new(runc)
        .arg("--root")
        .arg(state.path())
        .args(["run", "--bundle"])
        .arg(dir.path())
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "runc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `runc spec`'s default bundle asks for ambient capabilities it gives no
/// inheritable ones for. The kernel raises an ambient capability only when
/// it is permitted and inheritable (PR_CAP_AMBIENT_RAISE, prctl(2)); runc
/// 1.1 tries, ignores the refusal and runs the container: root gets the
/// three in permitted and effective (execve as uid 0), uid 1000 none, and
/// the ambient and inheritable sets stay empty. berth runs it with the
/// same sets (compared with runc when it is installed, else with the
/// values runc 1.1.5 showed on this host). The bundle also denies every
/// device and lists no node: the standard nodes are made all the same,
/// as runc appends its default allowed devices to the spec's rules.
#[test]
fn runc_spec_default_bundle_runs_with_runcs_capabilities() {
    berth_testkit::privileged!();
    let root = state_root();
    let rootfs = berth_testkit::busybox_rootfs();
    let args = ["/bin/grep", "^Cap", "/proc/self/status"];
    for (uid, measured) in [
        (
            0,
            "CapInh:\t0000000000000000\nCapPrm:\t0000000020000420\nCapEff:\t0000000020000420\n\
             CapBnd:\t0000000020000420\nCapAmb:\t0000000000000000\n",
        ),
        (
            1000,
            "CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n\
             CapBnd:\t0000000020000420\nCapAmb:\t0000000000000000\n",
        ),
    ] {
        let cfg = runc_spec_config(rootfs, uid, &args);
        let out = run_bundle(&cfg, root.path(), "oci-runc-spec");
        let want = match runc_binary() {
            Some(runc) => run_with_runc(&runc, &cfg),
            None => measured.to_string(),
        };
        assert_eq!(out, want, "uid {uid}: berth's sets, then runc's");
    }
}

/// critest's Privileged specs list `/dev/ptmx` (char 5:2) in
/// `linux.devices`. runc 1.1 makes the node, then replaces it with the
/// `pts/ptmx` link when it sets up `/dev` (setupPtmx), so `/dev/ptmx`
/// always opens the container's own devpts instance; berth does the same.
/// Inside: what `/dev/ptmx` is, and a pty opened through it (busybox
/// telnetd in inetd mode: posix_openpt("/dev/ptmx"), grantpt, unlockpt,
/// the peer opened by name, its login program prints its tty). runc 1.1.5
/// printed exactly this on this host.
#[test]
fn ptmx_in_linux_devices_is_the_devpts_link_and_openpty_works() {
    berth_testkit::privileged!();
    let root = state_root();
    let script = "stat -c %F /dev/ptmx; readlink /dev/ptmx; ln -s /bin/busybox /dev/shm/tty; \
                  (sleep 1) | busybox telnetd -i -l /dev/shm/tty 2>&1 | tr -cd '[:alnum:]/\\n' | grep pts";
    let mut cfg = runc_spec_config(
        berth_testkit::busybox_rootfs(),
        0,
        &["/bin/sh", "-c", script],
    );
    cfg["linux"]["devices"] = serde_json::json!([
        { "path": "/dev/ptmx", "type": "c", "major": 5, "minor": 2, "fileMode": 0o666, "uid": 0, "gid": 0 }
    ]);
    let out = run_bundle(&cfg, root.path(), "oci-ptmx");
    assert_eq!(out, "symbolic link\npts/ptmx\n/dev/pts/0\n");
}
