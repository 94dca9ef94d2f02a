//! Checks of a [`Spawner`]'s configuration before anything is created:
//! each names what was wrong, and nothing exists yet to clean up.

use crate::error::{Error, Result};
use crate::step::StepKind;
use crate::Namespaces;

use super::builder::{JoinSpec, Spawner};
use super::idmap::validate_maps;

/// HOST_NAME_MAX (and the domainname limit), uname(2).
pub(super) const HOST_NAME_MAX: usize = 64;

impl Spawner {
    /// Every check of the configuration, in a fixed order.
    pub(super) fn validate(&self) -> Result<()> {
        if self.args.is_empty() || self.program.is_empty() {
            return Err(Error::invalid("empty argv: no program to execute"));
        }
        for s in &self.steps {
            if let Some(why) = &s.invalid {
                return Err(Error::invalid(format!("step {}: {why}", s.describe())));
            }
        }
        let joined = self.joined();
        self.validate_uts(joined)?;
        self.validate_ids()?;
        if self.time_offsets.is_some() && !self.namespaces.contains(Namespaces::TIME) {
            return Err(Error::invalid("time offsets need Namespaces::TIME"));
        }
        self.validate_joins(joined)?;
        self.validate_fds()
    }

    /// The namespace types joined, all joins together.
    pub(super) fn joined(&self) -> Namespaces {
        self.joins
            .iter()
            .map(|j| match j {
                JoinSpec::Pidfd { ns, .. } | JoinSpec::Path { ns, .. } => *ns,
            })
            .fold(Namespaces::empty(), |a, b| a | b)
    }

    /// Host and domain names: short enough, and only in a UTS namespace of
    /// the child's own (created or joined), never the host's.
    fn validate_uts(&self, joined: Namespaces) -> Result<()> {
        let mut uts_names: Vec<(&str, &str)> = Vec::new();
        if let Some(h) = &self.hostname {
            uts_names.push(("hostname", h));
        }
        if let Some(d) = &self.domainname {
            uts_names.push(("domainname", d));
        }
        for (what, n) in &uts_names {
            if n.len() > HOST_NAME_MAX {
                return Err(Error::invalid(format!(
                    "{what} {n:?} is {} bytes, the kernel allows at most {HOST_NAME_MAX}",
                    n.len()
                )));
            }
        }
        let mut uts_steps = false;
        for s in &self.steps {
            if let StepKind::Sethostname(n) | StepKind::Setdomainname(n) = &s.kind {
                uts_steps = true;
                if n.as_bytes().len() > HOST_NAME_MAX {
                    return Err(Error::invalid(format!(
                        "{}: longer than {HOST_NAME_MAX} bytes",
                        s.describe()
                    )));
                }
            }
        }
        if (!uts_names.is_empty() || uts_steps)
            && !self.namespaces.contains(Namespaces::UTS)
            && !joined.contains(Namespaces::UTS)
        {
            return Err(Error::invalid(
                "setting a hostname or domainname needs Namespaces::UTS (it would change the host's)",
            ));
        }
        Ok(())
    }

    /// Id maps only with a new user namespace, well formed, and every
    /// uid/gid a step takes mapped in it.
    fn validate_ids(&self) -> Result<()> {
        let user = self.namespaces.contains(Namespaces::USER);
        if !user && (!self.uid_maps.is_empty() || !self.gid_maps.is_empty()) {
            return Err(Error::invalid(
                "uid/gid maps given without Namespaces::USER",
            ));
        }
        validate_maps("uid_map", &self.uid_maps)?;
        validate_maps("gid_map", &self.gid_maps)?;
        if !user {
            return Ok(());
        }
        for s in &self.steps {
            let (kind, id, maps) = match &s.kind {
                StepKind::SetUid(u) => ("uid", *u, &self.uid_maps),
                StepKind::SetGid(g) => ("gid", *g, &self.gid_maps),
                _ => continue,
            };
            if !maps.is_empty()
                && !maps
                    .iter()
                    .any(|m| id >= m.inside && (id as u64) < m.inside as u64 + m.count as u64)
            {
                return Err(Error::invalid(format!(
                    "{}: {kind} {id} is not mapped in the new user namespace ({kind}_map {maps:?})",
                    s.describe()
                )));
            }
        }
        Ok(())
    }

    /// Joins that can work together with what is created.
    fn validate_joins(&self, joined: Namespaces) -> Result<()> {
        let both = self.namespaces & joined;
        if !both.is_empty() {
            return Err(Error::invalid(format!(
                "namespaces {both:?} are both created and joined"
            )));
        }
        // Joining a pid namespace forks once more after the joins (the
        // grandchild shares the namespaces the clone made), except that a
        // new user namespace leaves no capability over the joined pid
        // namespace's owner (setns(2): EPERM).
        if joined.contains(Namespaces::PID) && self.namespaces.contains(Namespaces::USER) {
            return Err(Error::invalid(
                "joining a pid namespace cannot be combined with creating a user namespace",
            ));
        }
        if joined.contains(Namespaces::PID) && self.init {
            return Err(Error::invalid(
                "an init cannot be started when joining an existing pid namespace",
            ));
        }
        Ok(())
    }

    /// Child fd numbers: each given once, none negative.
    fn validate_fds(&self) -> Result<()> {
        let mut seen = Vec::new();
        for (_, dst) in &self.fds {
            if *dst < 0 || seen.contains(dst) {
                return Err(Error::invalid(format!(
                    "child fd {dst} is negative or given twice"
                )));
            }
            seen.push(*dst);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{IdMap, Namespaces, Spawner, Step};

    fn err(s: &Spawner) -> String {
        s.validate().unwrap_err().to_string()
    }

    #[test]
    fn a_plain_spawn_is_valid() {
        let mut s = Spawner::new(["/bin/true"]);
        s.namespaces(Namespaces::UTS | Namespaces::USER)
            .hostname("c1")
            .uid_map(IdMap::new(0, 1000, 1))
            .step(Step::set_uid(0));
        assert!(s.validate().is_ok());
    }

    #[test]
    fn empty_argv_is_refused() {
        let e = err(&Spawner::new(Vec::<&str>::new()));
        assert!(e.contains("empty argv"), "{e}");
    }

    #[test]
    fn a_step_with_a_nul_byte_is_refused() {
        let mut s = Spawner::new(["/bin/true"]);
        s.namespaces(Namespaces::MOUNT)
            .step(Step::mkdir("/a\0b", 0o755));
        let e = err(&s);
        assert!(e.contains("mkdir path") && e.contains("NUL"), "{e}");
    }

    #[test]
    fn names_need_uts_and_fit() {
        let mut s = Spawner::new(["/bin/true"]);
        s.hostname("c1");
        assert!(err(&s).contains("needs Namespaces::UTS"));
        let mut s = Spawner::new(["/bin/true"]);
        s.step(Step::setdomainname("lab"));
        assert!(err(&s).contains("needs Namespaces::UTS"));
        let mut s = Spawner::new(["/bin/true"]);
        s.namespaces(Namespaces::UTS).domainname("d".repeat(65));
        assert!(err(&s).contains("is 65 bytes"), "{}", err(&s));
        let mut s = Spawner::new(["/bin/true"]);
        s.namespaces(Namespaces::UTS)
            .step(Step::sethostname(&"h".repeat(65)));
        assert!(err(&s).contains("longer than 64 bytes"), "{}", err(&s));
        // A joined UTS namespace is the child's own too.
        let mut s = Spawner::new(["/bin/true"]);
        s.join_path("/proc/self/ns/uts", Namespaces::UTS)
            .hostname("c1");
        assert!(s.validate().is_ok());
    }

    #[test]
    fn ids_need_a_user_namespace_and_a_mapping() {
        let mut s = Spawner::new(["/bin/true"]);
        s.uid_map(IdMap::new(0, 1000, 1));
        assert!(err(&s).contains("without Namespaces::USER"));
        let mut s = Spawner::new(["/bin/true"]);
        s.namespaces(Namespaces::USER)
            .gid_map(IdMap::new(0, 1000, 1))
            .step(Step::set_gid(5));
        let e = err(&s);
        assert!(e.contains("gid 5 is not mapped"), "{e}");
        let mut s = Spawner::new(["/bin/true"]);
        s.namespaces(Namespaces::USER)
            .uid_map(IdMap::new(0, 1000, 0));
        assert!(err(&s).contains("count 0"));
    }

    #[test]
    fn time_offsets_need_a_time_namespace() {
        let mut s = Spawner::new(["/bin/true"]);
        s.time_offsets(0, 10);
        assert!(err(&s).contains("Namespaces::TIME"));
    }

    #[test]
    fn joins_must_fit_what_is_created() {
        let mut s = Spawner::new(["/bin/true"]);
        s.namespaces(Namespaces::NET)
            .join_path("/proc/self/ns/net", Namespaces::NET);
        assert!(err(&s).contains("both created and joined"));
        let mut s = Spawner::new(["/bin/true"]);
        s.namespaces(Namespaces::USER)
            .join_path("/proc/self/ns/pid", Namespaces::PID);
        assert!(err(&s).contains("creating a user namespace"));
        let mut s = Spawner::new(["/bin/true"]);
        s.init(true).join_path("/proc/self/ns/pid", Namespaces::PID);
        assert!(err(&s).contains("an init cannot be started"));
    }

    #[test]
    fn child_fds_are_unique_and_not_negative() {
        let mut s = Spawner::new(["/bin/true"]);
        s.keep_fd(5).keep_fd(5);
        assert!(err(&s).contains("child fd 5 is negative or given twice"));
        let mut s = Spawner::new(["/bin/true"]);
        s.keep_fd(-1);
        assert!(err(&s).contains("child fd -1"));
    }
}
