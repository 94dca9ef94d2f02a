//! The parent's side of the child protocol: a report turned into the
//! precise [`Error`], naming the step, join or phase and the errno.

use std::ffi::OsString;
use std::io;
use std::path::Path;

use crate::error::Error;
use crate::protocol::{At, ChildError, Phase};

use super::builder::Spawner;

impl Spawner {
    /// The error for a failure the child reported; `join_desc` names the
    /// joins in the order the child entered them.
    pub(super) fn report_error(&self, e: &ChildError<String>, join_desc: &[String]) -> Error {
        let (step, index) = match e.at {
            At::Step(i) => (
                self.steps
                    .get(i)
                    .map(|s| s.describe())
                    .unwrap_or_else(|| format!("step {i}")),
                Some(i),
            ),
            At::Join(i) => (
                join_desc.get(i).cloned().unwrap_or_else(|| "setns".into()),
                None,
            ),
            At::Phase(Phase::Exec) if !e.panicked => {
                return exec_error(&self.program, e.errno);
            }
            At::Phase(p) => (self.phase_desc(p), None),
        };
        step_error(step, index, e)
    }

    /// How a fixed phase of the child is named in an error.
    fn phase_desc(&self, phase: Phase) -> String {
        match phase {
            Phase::Pdeathsig => format!("prctl(PR_SET_PDEATHSIG, {})", self.pdeathsig),
            Phase::Sync => "read the parent's go signal".into(),
            Phase::Dumpable => "prctl(PR_SET_DUMPABLE, 0)".into(),
            Phase::JoinFork => "fork into the joined pid namespace".into(),
            Phase::Unshare => "unshare the new namespaces in the joined user namespace".into(),
            Phase::TimeUnshare => "unshare(CLONE_NEWTIME)".into(),
            Phase::TimeOffsets => "write(\"/proc/self/timens_offsets\")".into(),
            Phase::TimeSetns => "setns(\"/proc/self/ns/time_for_children\")".into(),
            Phase::Hostname => {
                format!("sethostname({:?})", self.hostname.as_deref().unwrap_or(""))
            }
            Phase::Domainname => {
                format!(
                    "setdomainname({:?})",
                    self.domainname.as_deref().unwrap_or("")
                )
            }
            Phase::Fds => "dup2 of stdio and kept fds".into(),
            Phase::Cwd => format!("chdir({:?})", self.cwd.as_deref().unwrap_or(Path::new(""))),
            Phase::InitFork => "init: fork of the workload".into(),
            Phase::CloseFds => "close_range of inherited fds".into(),
            Phase::Start => "wait for start()".into(),
            Phase::Sigmask => "init: sigprocmask".into(),
            Phase::Netns => "setns(pooled network namespace, CLONE_NEWNET)".into(),
            Phase::Setid => "setgroups/setresgid/setresuid to the new user namespace's root".into(),
            Phase::Exec => format!("execve({:?})", self.program),
            Phase::Setup => "the child's setup (berth-namespaces' own code)".into(),
        }
    }
}

/// The error of a failure at `step` (a step, join or phase named so),
/// naming the part a hook reported after it.
pub(crate) fn step_error(mut step: String, index: Option<usize>, e: &ChildError<String>) -> Error {
    if !e.detail.is_empty() {
        step = format!("{step}: {}", e.detail);
    }
    if e.panicked {
        return Error::ChildPanicked { step, index };
    }
    Error::Child {
        step,
        index,
        source: io::Error::from_raw_os_error(e.errno),
    }
}

/// The error of a failed `execve` of `program`.
pub(crate) fn exec_error(program: &OsString, errno: i32) -> Error {
    Error::Exec {
        program: program.clone(),
        source: io::Error::from_raw_os_error(errno),
    }
}

#[cfg(test)]
mod tests {
    use crate::protocol::{At, ChildError, Phase};
    use crate::{Error, Namespaces, Spawner, Step};

    fn failure(at: At, errno: i32, detail: &str, panicked: bool) -> ChildError<String> {
        ChildError {
            at,
            errno,
            detail: detail.into(),
            panicked,
        }
    }

    fn spawner() -> Spawner {
        let mut s = Spawner::new(["/nonexistent/prog"]);
        s.namespaces(Namespaces::UTS)
            .hostname("c1")
            .step(Step::mkdir("/x", 0o755))
            .step(Step::chdir("/"));
        s
    }

    #[test]
    fn a_step_failure_names_the_step_and_its_index() {
        let e = spawner().report_error(&failure(At::Step(1), libc::ENOENT, "", false), &[]);
        assert!(matches!(e, Error::Child { index: Some(1), .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "chdir(\"/\"): ENOENT (No such file or directory (os error 2))"
        );
        assert_eq!(e.errno(), Some(libc::ENOENT));
    }

    #[test]
    fn a_hook_names_the_part_that_failed() {
        let mut s = Spawner::new(["/bin/true"]);
        // SAFETY: never run.
        s.step(unsafe { Step::hook("apply security policy", || Ok(())) });
        let e = s.report_error(&failure(At::Step(0), libc::EPERM, "capset", false), &[]);
        assert_eq!(
            e.to_string(),
            "hook(\"apply security policy\"): capset: EPERM (Operation not permitted (os error 1))"
        );
    }

    #[test]
    fn exec_failures_are_typed_with_the_old_text() {
        let e = spawner().report_error(
            &failure(At::Phase(Phase::Exec), libc::ENOENT, "", false),
            &[],
        );
        assert!(matches!(e, Error::Exec { .. }), "{e:?}");
        assert!(
            e.to_string()
                .starts_with("execve(\"/nonexistent/prog\"): ENOENT"),
            "{e}"
        );
        assert_eq!(e.errno(), Some(libc::ENOENT));
    }

    #[test]
    fn phases_and_joins_are_named() {
        let s = spawner();
        let e = s.report_error(
            &failure(At::Phase(Phase::Hostname), libc::EPERM, "", false),
            &[],
        );
        assert!(
            e.to_string().starts_with("sethostname(\"c1\"): EPERM"),
            "{e}"
        );
        let joins = ["setns(\"/run/netns/x\", NET)".to_string()];
        let e = s.report_error(&failure(At::Join(0), libc::EINVAL, "", false), &joins);
        assert!(
            e.to_string()
                .starts_with("setns(\"/run/netns/x\", NET): EINVAL"),
            "{e}"
        );
        assert!(matches!(e, Error::Child { index: None, .. }));
        let e = s.report_error(&failure(At::Join(5), libc::EINVAL, "", false), &joins);
        assert!(e.to_string().starts_with("setns: EINVAL"), "{e}");
    }

    #[test]
    fn a_panic_is_its_own_error() {
        let s = spawner();
        let e = s.report_error(&failure(At::Step(0), 0, "", true), &[]);
        assert!(
            matches!(e, Error::ChildPanicked { index: Some(0), .. }),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains("mkdir(\"/x\", 0o755)") && msg.contains("panicked"),
            "{msg}"
        );
        assert_eq!(e.errno(), None);
        let e = s.report_error(&failure(At::Phase(Phase::Setup), 0, "", true), &[]);
        assert!(e.to_string().contains("the child's setup"), "{e}");
    }
}
