//! Privileged tier on this host (cgroup2 with almost no controllers): what
//! was applied is told to the program, logged once, and strict mode names
//! every missing controller at once (issue 22 item 7).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use berth::{Limit, Resources};
use common::*;

fn limits() -> Resources {
    Resources::new()
        .memory_max(Limit::Value(64 << 20))
        .pids_max(Limit::Value(64))
        .cpu_weight(50)
}

/// The controllers of `limits()` this host's cgroup2 root lacks.
fn missing_here() -> Vec<&'static str> {
    let h = berth_cgroups::Hierarchy::discover().unwrap();
    let have = h.root_controllers().unwrap();
    ["memory", "pids", "cpu"]
        .into_iter()
        .filter(|n| !have.iter().any(|c| c.name() == *n))
        .collect()
}

#[test]
fn strict_mode_names_every_missing_controller() {
    berth_testkit::privileged!();
    let missing = missing_here();
    assert!(
        missing.len() >= 2,
        "this test needs a cgroup2 without most controllers (missing: {missing:?})"
    );
    let root = state_root();
    let id = berth_testkit::unique_name("strict");
    let e = busybox(&id, &root)
        .resources(limits())
        .command(["/bin/true"])
        .spawn()
        .unwrap_err();
    let msg = e.to_string();
    for c in &missing {
        assert!(msg.contains(c), "{c} not named: {msg}");
    }
    assert_no_footprint(root.path(), &id);
}

/// Counts `tracing` events whose message mentions "skipped".
struct CountSkips(Arc<AtomicUsize>);

impl tracing::Subscriber for CountSkips {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, e: &tracing::Event<'_>) {
        struct Msg(bool);
        impl tracing::field::Visit for Msg {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                if f.name() == "message" && format!("{v:?}").contains("skipped") {
                    self.0 = true;
                }
            }
        }
        let mut m = Msg(false);
        e.record(&mut m);
        if m.0 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn skipped_limits_are_returned_and_logged_once() {
    berth_testkit::privileged!();
    let missing = missing_here();
    let root = state_root();
    let id = berth_testkit::unique_name("skip");
    let logged = Arc::new(AtomicUsize::new(0));
    let mut c = tracing::subscriber::with_default(CountSkips(logged.clone()), || {
        busybox(&id, &root)
            .resources(limits())
            .ignore_unavailable(true)
            .command(["/bin/true"])
            .spawn()
            .unwrap()
    });
    let report = c.applied().clone();
    let mut skipped: Vec<&str> = report
        .skipped
        .iter()
        .map(|s| s.controller.as_deref().unwrap())
        .collect();
    skipped.sort();
    let mut missing = missing;
    missing.sort();
    assert_eq!(skipped, missing, "{report:?}");
    for s in &report.skipped {
        assert!(s.reason.contains("controller"), "{s:?}");
    }
    assert_eq!(report.applied.len() + report.skipped.len(), 3, "{report:?}");
    assert_eq!(
        logged.load(Ordering::SeqCst),
        missing.len(),
        "each skipped limit is logged exactly once"
    );
    assert!(c.wait().unwrap().success());
    c.destroy().unwrap();
}
