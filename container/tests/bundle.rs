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

#[test]
fn bundle_is_mapped_and_observed() {
    berth_testkit::privileged!();
    let root = state_root();
    let dir = tempfile::tempdir().unwrap();
    let vol = tempfile::tempdir().unwrap();
    std::fs::write(vol.path().join("f"), "from-vol\n").unwrap();
    let cfg = config(
        &berth_testkit::busybox_rootfs().display().to_string(),
        &vol.path().display().to_string(),
    );
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    let id = berth_testkit::unique_name("oci");
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
