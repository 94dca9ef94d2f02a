//! `demo`: berth's main command. As root, with no arguments, it starts a
//! container on `Rootfs::host()` (the host's `/` as a read-only lower layer
//! with a private writable layer), memory and pids limits where the host's
//! cgroup2 offers them, and a loopback-only network, then prints what the
//! container sees beside the host's view.
//!
//! ```text
//! sudo cargo run --release -p berth-examples --bin demo
//! ```
use std::io::Read;
use std::process::ExitCode;

use berth::{Container, Limit, Resources, Rootfs, Stdio};
use berth_cgroups::{Controller, Hierarchy};

/// What the script prints, one `key=value` per line; run on both sides.
const PROBE: &str = r#"
echo "hostname=$(cat /proc/sys/kernel/hostname)"
echo "pid=$$"
n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; echo "procs=$n"
echo "interfaces=$(ls /sys/class/net | tr '\n' ' ')"
while read k v; do case "$k" in CapEff:) echo "caps=$v";; Seccomp:) echo "seccomp=$v";; NoNewPrivs:) echo "nnp=$v";; esac; done < /proc/self/status
while IFS=: read a b c; do [ "$a" = 0 ] && echo "cgroup=$c"; done < /proc/self/cgroup
for f in memory.max pids.max; do if [ -r /sys/fs/cgroup/$f ]; then echo "$f=$(cat /sys/fs/cgroup/$f)"; else echo "$f=-"; fi; done
while read dev mnt fs rest; do [ "$mnt" = / ] && echo "rootfs=$fs"; done < /proc/self/mounts
echo "uid=$(id -u 2>/dev/null)"
"#;

fn parse(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

fn get<'a>(v: &'a [(String, String)], k: &str) -> &'a str {
    v.iter()
        .rev()
        .find(|(kk, _)| kk == k)
        .map(|(_, v)| v.as_str())
        .unwrap_or("?")
}

fn caps(hex: &str) -> String {
    match u64::from_str_radix(hex, 16) {
        Ok(v) => format!("{hex} ({} capabilities)", v.count_ones()),
        Err(_) => hex.to_string(),
    }
}

fn seccomp(mode: &str) -> String {
    match mode {
        "0" => "0 (disabled)".into(),
        "1" => "1 (strict)".into(),
        "2" => "2 (filter)".into(),
        m => m.into(),
    }
}

fn run() -> Result<(), String> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(
            "the demo needs root (try: sudo cargo run --release -p berth-examples --bin demo)"
                .into(),
        );
    }
    let h = Hierarchy::discover().map_err(|e| e.to_string())?;
    let offered = h.root_controllers().map_err(|e| e.to_string())?;
    let mut res = Resources::new();
    let mut notes = Vec::new();
    for (c, what) in [(Controller::Memory, "memory"), (Controller::Pids, "pids")] {
        if offered.contains(c) {
            res = match c {
                Controller::Memory => res.memory_max(Limit::Value(256 << 20)),
                _ => res.pids_max(Limit::Value(128)),
            };
        } else {
            notes.push(format!(
                "note: the cgroup2 hierarchy at {} offers no {what} controller ({}), so no {what} limit is set",
                h.mount_point().display(),
                h.where_bound(c, h.own_cgroup())
            ));
        }
    }
    let id = format!("berth-demo-{}", std::process::id());
    let t0 = std::time::Instant::now();
    let mut c = Container::builder(&id)
        .rootfs(Rootfs::host())
        .hostname("berth-demo")
        .resources(res)
        .command(["/bin/sh", "-c", PROBE])
        .stdin(Stdio::Null)
        .stdout(Stdio::Piped)
        .spawn()
        .map_err(|e| e.to_string())?;
    let spawned = t0.elapsed();
    let cgroup_on_host = c
        .cgroup()
        .map(|g| g.path().display().to_string())
        .unwrap_or_else(|| "-".into());
    let mut out = String::new();
    if let Some(mut o) = c.stdout.take() {
        o.read_to_string(&mut out).map_err(|e| e.to_string())?;
    }
    let st = c.wait().map_err(|e| e.to_string())?;
    c.destroy().map_err(|e| e.to_string())?;
    if !st.success() {
        return Err(format!("the probe inside the container failed: {st}"));
    }
    let inside = parse(&out);
    let host_out = std::process::Command::new("/bin/sh")
        .args(["-c", PROBE])
        .output()
        .map_err(|e| format!("host probe: {e}"))?;
    let host = parse(&String::from_utf8_lossy(&host_out.stdout));

    println!("berth demo: container {id} on Rootfs::host(), loopback network (spawned in {spawned:.1?})\n");
    println!("{:<14} {:<44} container", "", "host");
    let row = |k: &str, a: String, b: String| println!("{k:<14} {a:<44} {b}");
    row(
        "hostname",
        get(&host, "hostname").into(),
        get(&inside, "hostname").into(),
    );
    row(
        "shell pid",
        get(&host, "pid").into(),
        get(&inside, "pid").into(),
    );
    row(
        "processes",
        get(&host, "procs").into(),
        get(&inside, "procs").into(),
    );
    row(
        "interfaces",
        get(&host, "interfaces").into(),
        get(&inside, "interfaces").into(),
    );
    row("uid", get(&host, "uid").into(), get(&inside, "uid").into());
    row(
        "capabilities",
        caps(get(&host, "caps")),
        caps(get(&inside, "caps")),
    );
    row(
        "seccomp",
        seccomp(get(&host, "seccomp")),
        seccomp(get(&inside, "seccomp")),
    );
    row(
        "no_new_privs",
        get(&host, "nnp").into(),
        get(&inside, "nnp").into(),
    );
    row(
        "root fs",
        get(&host, "rootfs").into(),
        get(&inside, "rootfs").into(),
    );
    row(
        "cgroup",
        get(&host, "cgroup").into(),
        format!("{} (on the host: {cgroup_on_host})", get(&inside, "cgroup")),
    );
    row("memory.max", "-".into(), get(&inside, "memory.max").into());
    row("pids.max", "-".into(), get(&inside, "pids.max").into());
    println!();
    for n in notes {
        println!("{n}");
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}
