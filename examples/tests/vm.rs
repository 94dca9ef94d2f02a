//! VM tier (`scripts/vm-test -p berth-examples --test vm`): the `cgroup_limits`
//! program (exercise 2) on a real cgroup2 hierarchy with every controller.
//! Small limits and one-second loads: the VM is software-emulated.

use std::path::Path;

#[test]
fn cgroup_limits_observes_every_limit() {
    berth_testkit::vm_only!();
    let mut args = vec![
        "--cpu",
        "25",
        "--memory-mb",
        "16",
        "--pids",
        "8",
        "--seconds",
        "1",
    ];
    let scratch = std::env::var(berth_testkit::VM_SCRATCH_ENV).ok();
    if scratch.is_some() {
        args.extend(["--io-bps", "262144"]);
    }
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_cgroup_limits"))
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run cgroup_limits");
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |prefix: &str| -> String {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in\n{text}"))
            .to_string()
    };
    let num_after = |l: &str, key: &str| -> f64 {
        l.split(key)
            .nth(1)
            .unwrap_or_else(|| panic!("no {key:?} in {l}"))
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    // CPU: about a quarter of one CPU, and the group was throttled.
    let cpu = line("cpu: ");
    let share = num_after(&cpu, "got ");
    assert!((10.0..=40.0).contains(&share), "{cpu}");
    assert!(num_after(&cpu, "nr_throttled ") >= 1.0, "{cpu}");
    // Memory: the allocator was OOM-killed, and memory.events counted it.
    let mem = line("memory: ");
    assert!(mem.contains("signal: 9 (SIGKILL)"), "{mem}");
    assert!(num_after(&mem, "oom_kill ") >= 1.0, "{mem}");
    assert!(num_after(&mem, "touching ") < 32.0, "{mem}");
    // Pids: fork failed with EAGAIN below the limit, pids.events counted it.
    let pids = line("pids: fork failed after ");
    assert!(num_after(&pids, "after ") < 8.0, "{pids}");
    assert!(pids.contains("errno 11 "), "{pids}");
    assert!(
        num_after(&line("pids: pids.events"), "max ") >= 1.0,
        "{text}"
    );
    // I/O: O_DIRECT writes held near the limit.
    if scratch.is_some() {
        let io = line("io: writer");
        let rate = num_after(&io, " = ");
        assert!(rate > 0.0 && rate <= 1.5 * 262144.0, "{io}");
        assert!(
            num_after(&io, "wbytes ") >= num_after(&io, " wrote "),
            "{io}"
        );
    }
    // The groups are gone.
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let own = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap()
        .to_string();
    let dir = Path::new("/sys/fs/cgroup")
        .join(own.trim_start_matches('/'))
        .join("berth")
        .join(format!("limits-{pid}"));
    assert!(!dir.exists(), "{dir:?} left behind");
}
