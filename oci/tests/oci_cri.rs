//! `berth-oci` driven the way containerd's runc v2 shim drives it for the
//! CRI plugin (Kubernetes' `critest` through containerd 1.6): the global
//! `--root`, `--log <bundle>/log.json --log-format json`, `create --bundle
//! … --pid-file <bundle>/init.pid`, then `state`, `start`, `kill`,
//! `delete`; what the shim reads back is checked field by field against
//! what runc 1.1 gives it (privileged tier; no critest needed).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

mod common;

use common::*;

/// A bundle as the shim lays it out (config.json, rootfs/, log.json and
/// init.pid beside them, a sandbox's annotation), and berth-oci with the
/// shim's global flags (`--log <bundle>/log.json --log-format json`).
fn shim(args: &[&str]) -> Oci {
    let mut cfg = config(args);
    cfg["ociVersion"] = json!("1.0.2-dev");
    cfg["annotations"] = json!({ "io.kubernetes.cri.container-type": "sandbox" });
    let s = Oci::new("cri", cfg);
    let log = s.bundle().join("log.json").display().to_string();
    s.with_global(&["--log", &log, "--log-format", "json"])
}

/// `create --pid-file <bundle>/init.pid`, the container's stdio on a file
/// as the shim's pipes (a pipe read to EOF here would wait for the
/// container's end, as with runc, whose init holds it too).
fn create(s: &Oci) {
    let b = s.bundle();
    let pf = b.join("init.pid").display().to_string();
    let code = s.create_to(&b.join("stdio"), &["--pid-file", &pf]);
    assert_eq!(
        code,
        0,
        "create: {}",
        std::fs::read_to_string(b.join("log.json")).unwrap_or_default()
    );
}

/// Seconds since the epoch of an RFC 3339 UTC time as Go's
/// `time.RFC3339Nano` writes it and parses it (`2006-01-02T15:04:05.999999999Z`,
/// fraction optional): what go-runc's `Container.Created` accepts.
fn parse_rfc3339_utc(s: &str) -> Option<f64> {
    let (date, time) = s.strip_suffix('Z')?.split_once('T')?;
    let d: Vec<i64> = date
        .split('-')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    if d.len() != 3 || t.len() != 3 || frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // days from civil (H. Hinnant)
    let (y, m, day) = (if d[1] <= 2 { d[0] - 1 } else { d[0] }, d[1], d[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + t[0] * 3600 + t[1] * 60 + t[2];
    Some(secs as f64 + format!("0.{frac}").parse::<f64>().ok()?)
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// go-runc (containerd's shim) decodes `state` into `{id, pid, status,
/// bundle, rootfs, created, annotations}`; runc 1.1 also prints `owner`.
/// berth-oci printed neither `rootfs` nor `created` (the shim then saw an
/// empty rootfs and the zero time, 0001-01-01).
#[test]
fn state_has_the_fields_go_runc_reads() {
    berth_testkit::privileged!();
    let s = shim(&["/bin/sleep", "60"]);
    let before = now();
    create(&s);
    let after = now();
    let pid: i64 = std::fs::read_to_string(s.bundle().join("init.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let st = s.state();
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(st["pid"], pid, "{st}");
    assert_eq!(st["id"], s.id.as_str());
    assert_eq!(st["bundle"], s.bundle().to_str().unwrap());
    assert_eq!(
        st["rootfs"],
        s.bundle().join("rootfs").to_str().unwrap(),
        "state must name the absolute rootfs as runc does: {st}"
    );
    assert_eq!(st["owner"], "", "{st}");
    let created = st["created"]
        .as_str()
        .unwrap_or_else(|| panic!("state has no created time: {st}"));
    let t = parse_rfc3339_utc(created).unwrap_or_else(|| panic!("created {created:?}"));
    assert!(
        t >= before - 0.001 && t <= after + 0.001,
        "created {created} ({t}) is not the create time ({before}..{after})"
    );
    // The same fields, unchanged, through the life cycle.
    s.ok(&["start", &s.id]);
    let running = s.wait_status("running");
    s.ok(&["kill", &s.id, "KILL"]);
    let stopped = s.wait_status("stopped");
    for v in [&running, &stopped] {
        assert_eq!(v["created"], st["created"], "{v}");
        assert_eq!(v["rootfs"], st["rootfs"], "{v}");
    }
    // `list --format json` is an array of the same objects.
    let listed: Value = serde_json::from_str(&s.ok(&["list", "--format", "json"])).unwrap();
    assert_eq!(listed[0]["created"], st["created"], "{listed}");
    assert_eq!(listed[0]["rootfs"], st["rootfs"], "{listed}");
    s.ok(&["delete", &s.id]);
    assert!(!Path::new(&s.root).join(&s.id).exists());
}

/// The shim's error contract (containerd 1.6 `getLastRuntimeError`): when
/// a command fails it decodes `--log` as a stream of JSON objects
/// `{level, msg, time}` (`time` as Go's `time.Time`, RFC 3339) and takes
/// the `msg` of the last one whose level is exactly `error`; that is the
/// message Kubernetes shows (`OCI runtime create failed: <msg>`). A guard
/// (it passed when written): a failing create leaves such a line naming
/// the cause, and nothing behind.
#[test]
fn a_failing_create_leaves_the_error_line_the_shim_reads() {
    berth_testkit::privileged!();
    let s = shim(&["/bin/true"]);
    let cfg = s.bundle().join("config.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    v["process"]["cwd"] = json!("relative/cwd");
    std::fs::write(&cfg, v.to_string()).unwrap();
    let b = s.bundle();
    let (code, _, _) = s.run(&["create", "--bundle", b.to_str().unwrap(), &s.id]);
    assert_ne!(code, 0, "create with a relative cwd must fail");
    let log = std::fs::read_to_string(b.join("log.json")).unwrap();
    let mut last_error = None;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let e: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("log line is not one JSON object ({e}): {line}"));
        let t = e["time"].as_str().unwrap_or_default();
        assert!(parse_rfc3339_utc(t).is_some(), "time {t:?} in {line}");
        if e["level"] == "error" {
            last_error = e["msg"].as_str().map(str::to_string);
        }
    }
    let msg = last_error.unwrap_or_else(|| panic!("no level=error line in {log:?}"));
    assert!(
        msg.contains("cwd"),
        "the error does not name the cause: {msg}"
    );
    // Nothing left: no state, no record.
    let (code, _, err) = s.run(&["state", &s.id]);
    assert_ne!(code, 0);
    assert!(err.contains("does not exist"), "{err}");
    assert!(!s.root.join(&s.id).exists());
}
