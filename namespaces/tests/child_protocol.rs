//! The child → parent protocol seen from outside, as any user (no
//! namespaces, so no root needed): a panic in the child fails the spawn
//! and never unwinds into the parent's frames, and a failure after
//! `start()` names its step.

use std::path::PathBuf;

use berth_namespaces::Spawner;
use berth_namespaces::Step;

/// Every test here takes it: the panic hook std runs in a panicking child
/// takes locks (std's backtrace lock, malloc's) that a concurrently
/// running test thread may have held at the clone, which would then stay
/// locked in the child forever (a panicking hook is a bug for exactly this
/// reason; the guard only keeps it from unwinding into the parent).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes the pid of any process that unwinds through the frame holding
/// it: the test's own frame, which a child must never unwind through.
struct UnwindWitness {
    path: PathBuf,
}

impl Drop for UnwindWitness {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = std::fs::write(&self.path, std::process::id().to_string());
        }
    }
}

fn panicking_hook() -> Step {
    // SAFETY: deliberately not async-signal-safe: it panics (the bug the
    // child's guard contains).
    unsafe { Step::hook("boom", || panic!("a hook panicked in the child")) }
}

/// The plain-fork path (the parent has an `after_clone` hook, so it is not
/// the `CLONE_VM` one): the child runs on a copy of this thread's stack,
/// so an unwinding panic would run this test's frames in the child.
#[test]
fn a_panicking_hook_on_the_fork_path_fails_the_spawn_and_unwinds_nothing() {
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let witness = UnwindWitness {
        path: dir.path().join("unwound"),
    };
    let mut sp = Spawner::new(["/bin/true"]);
    sp.after_clone(|_| Ok(())).step(panicking_hook());
    let r = sp.spawn();
    let unwound = std::fs::read_to_string(&witness.path).ok();
    assert_eq!(
        unwound, None,
        "process {unwound:?} (the child) unwound through the test's frame"
    );
    let e = r.expect_err("the spawn succeeded although its hook panicked");
    let msg = e.to_string();
    assert!(
        msg.starts_with("hook(\"boom\") panicked in the child"),
        "{msg}"
    );
    drop(witness);
}

/// The `CLONE_VM` path: the child shares this process's memory and this
/// thread's TLS, where std keeps the panic count; it must come back to 0.
#[test]
fn a_panicking_hook_on_the_vfork_path_leaves_the_parent_sound() {
    let _serial = one_at_a_time();
    let r = Spawner::new(["/bin/true"]).step(panicking_hook()).spawn();
    let parent_panicking = std::thread::panicking();
    let msg = match &r {
        Ok(_) => "spawn succeeded".to_string(),
        Err(e) => e.to_string(),
    };
    // Not assert!: with the count leaked, a panic here would be taken for
    // a double panic and abort the test binary.
    if parent_panicking || !msg.starts_with("hook(\"boom\") panicked in the child") {
        eprintln!("parent thread panicking: {parent_panicking}; spawn: {msg}");
        std::process::exit(101);
    }
}

/// A final step runs after `start()`: its failure names it, not `execve`.
#[test]
fn a_final_step_failing_after_start_is_named() {
    let _serial = one_at_a_time();
    let mut sp = Spawner::new(["/bin/true"]);
    // SAFETY: returns an errno, nothing else.
    sp.final_step(unsafe { Step::hook("refuse", || Err(libc::EPERM)) });
    let mut child = sp.spawn_stopped().unwrap();
    let e = child.start().unwrap_err();
    assert!(e.to_string().starts_with("hook(\"refuse\"): EPERM"), "{e}");
}

/// A hook that names the part of it that failed (berth-security's
/// `ChildFailure.step`): the error names the hook, then that part, also
/// for a final step failing after `start()`.
#[test]
fn a_detailed_hook_names_its_failing_part() {
    let _serial = one_at_a_time();
    use berth_namespaces::StepFailure;
    let refuse = || {
        // SAFETY: returns a constant, nothing else.
        unsafe {
            Step::hook_detailed("policy", || {
                Err(StepFailure {
                    step: "capset",
                    errno: libc::EPERM,
                })
            })
        }
    };
    let e = Spawner::new(["/bin/true"])
        .step(refuse())
        .spawn()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "hook(\"policy\"): capset: EPERM (Operation not permitted (os error 1))"
    );
    let mut child = Spawner::new(["/bin/true"])
        .final_step(refuse())
        .spawn_stopped()
        .unwrap();
    let e = child.start().unwrap_err();
    assert!(
        e.to_string().starts_with("hook(\"policy\"): capset: EPERM"),
        "{e}"
    );
}

/// A failed `execve` is its own typed error, with the text it always had.
#[test]
fn exec_failure_is_typed() {
    let _serial = one_at_a_time();
    let e = Spawner::new(["/nonexistent/berth-prog"])
        .spawn()
        .unwrap_err();
    assert!(matches!(e, berth_namespaces::Error::Exec { .. }), "{e:?}");
    assert_eq!(e.errno(), Some(libc::ENOENT));
    assert!(
        e.to_string()
            .starts_with("execve(\"/nonexistent/berth-prog\"): ENOENT"),
        "{e}"
    );
}
