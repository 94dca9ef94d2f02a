//! The `job_runner` program (berth as a library), privileged tier: 20 jobs
//! run 4 at a time with limits, a read-only root and a timeout; the table
//! shows each job's exit code, captured bytes and whether it timed out, and
//! no state directory, cgroup or mount of a job is left, nor anything in the
//! root filesystem's directory.

mod leftovers;

use leftovers::{leftovers, run_lesson};

#[test]
fn job_runner_runs_twenty_jobs_and_reports_each() {
    berth_testkit::privileged!();
    let rootfs = berth_testkit::busybox_rootfs().to_str().unwrap();
    let before = berth_testkit::run("find", &[rootfs]);
    let (text, pid) = run_lesson(env!("CARGO_BIN_EXE_job_runner"), &[rootfs]);

    assert!(text.contains("limits applied: "), "{text}");
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip_while(|l| !l.starts_with("job  exit"))
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 20, "{text}");
    for (n, r) in rows.iter().enumerate() {
        // job, exit, duration, "s", out, err, timed out
        assert_eq!(r[0], n.to_string(), "{text}");
        let (exit, out, err, timed_out) = (r[1], r[4], r[5], r[6]);
        if n == 7 {
            assert_eq!((exit, timed_out), ("-", "yes"), "job 7 hangs: {text}");
            let secs: f64 = r[2].parse().unwrap();
            assert!(
                (3.0..15.0).contains(&secs),
                "killed at its 3 s timeout: {text}"
            );
            continue;
        }
        assert_eq!(timed_out, "no", "{text}");
        // "job N counted N\n" went through the writable /tmp.
        let counted = format!("job {n} counted {n}\n").len();
        assert_eq!(out, counted.to_string(), "job {n}: {text}");
        if n % 5 == 4 {
            assert_eq!(
                (exit, err),
                ("3", "job failed\n".len().to_string().as_str()),
                "{text}"
            );
        } else {
            assert_eq!((exit, err), ("0", "0"), "{text}");
        }
    }

    let left = leftovers(&format!("job-{pid}-"));
    assert!(left.is_empty(), "left behind: {left:#?}");
    assert_eq!(
        berth_testkit::run("find", &[rootfs]),
        before,
        "the rootfs directory changed"
    );
}
