//! The step timer (`BERTH_STEP_TIMES`): the child stamps a mapping shared
//! with the parent, which writes one line per phase after `execve`. Its own
//! test binary: it sets an environment variable the spawner reads.

use berth_namespaces::{Namespaces, Spawner};

/// The (microseconds, what) lines of each block of the file.
fn blocks(text: &str) -> Vec<Vec<(f64, String)>> {
    text.split("--\n")
        .filter(|b| !b.trim().is_empty())
        .map(|b| {
            b.lines()
                .map(|l| {
                    let l = l.trim_start();
                    let (us, what) = l.split_once(' ').unwrap();
                    (us.parse::<f64>().unwrap(), what.to_owned())
                })
                .collect()
        })
        .collect()
}

#[test]
fn the_child_stamps_reach_the_parent() {
    berth_testkit::privileged!();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("times");
    std::env::set_var("BERTH_STEP_TIMES", &path);
    // The CLONE_VM fast path, and a plain clone3 (a pid namespace's init).
    for ns in [Namespaces::UTS, Namespaces::UTS | Namespaces::PID] {
        let st = Spawner::new(["/bin/true"])
            .namespaces(ns)
            .hostname("timed")
            .status()
            .unwrap();
        assert!(st.success());
    }
    std::env::remove_var("BERTH_STEP_TIMES");
    let text = std::fs::read_to_string(&path).unwrap();
    let b = blocks(&text);
    assert_eq!(b.len(), 2, "{text}");
    for block in &b {
        let (total, what) = block.last().unwrap();
        assert_eq!(what, "total clone -> EOF", "{text}");
        assert!(*total > 0.0, "{text}");
        assert_eq!(block[0].1, "clone -> child runs", "{text}");
        // Every stamp lies between the clone and EOF (a stamp the parent
        // did not see would be 0: its phase would outlast the total).
        let parts: f64 = block[..block.len() - 1].iter().map(|(us, _)| us).sum();
        for (us, what) in block {
            assert!(*us <= *total, "{what}: {us} > {total}\n{text}");
        }
        assert!((parts - total).abs() <= 1.0, "{parts} vs {total}\n{text}");
    }
}
