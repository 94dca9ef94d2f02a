//! Everything the child needs, computed and allocated in the parent before
//! the clone: C strings and pointer arrays for `execve`, the fds it moves,
//! joins, pipes, namespace flags and the fd ranges it closes.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::process::{ChildStderr, ChildStdin, ChildStdout};

use crate::child::ChildPlan;
use crate::error::{Error, Result};
use crate::step::StepKind;
use crate::Namespaces;

use super::builder::{FdSource, JoinSpec, Spawner, Stdio};
use super::fds::{copy_io_error, dup_above, gaps, lift, open_devnull, pipe};

/// The default `PATH` when neither the child's environment nor ours has one.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What `execve` gets: owned C strings and the pointer arrays into them.
pub(super) struct ExecData {
    _argv_c: Vec<CString>,
    _envp_c: Vec<CString>,
    pub paths: Vec<CString>,
    pub argv: Vec<*const libc::c_char>,
    pub envp: Vec<*const libc::c_char>,
}

/// The namespaces to join, in the order the child enters them.
#[derive(Default)]
pub(super) struct Joins {
    /// (fd, `CLONE_NEW*` type) per join, a user namespace first.
    pub fds: Vec<(RawFd, libc::c_int)>,
    /// How each join is named in an error.
    pub desc: Vec<String>,
    /// A pid namespace is joined: the child forks once more.
    pub pid: bool,
}

/// The child's stdio and mapped fds: what it `dup2`s, and the parent's ends.
#[derive(Default)]
pub(super) struct FdPlan {
    /// (source above every target, target) per fd.
    pub moves: Vec<(RawFd, RawFd)>,
    /// The sources, closed in the parent once the child has its copies.
    pub child_side: Vec<OwnedFd>,
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<ChildStdout>,
    pub stderr: Option<ChildStderr>,
}

/// Everything prepared for one spawn.
pub(super) struct Prepared {
    pub exec: ExecData,
    pub cwd: Option<CString>,
    pub hostname: Option<CString>,
    pub domainname: Option<CString>,
    pub time_offsets: Option<Vec<u8>>,
    pub fds: FdPlan,
    pub joins: Joins,
    /// The error pipe: the child reports on `err_w`, EOF means it exec'd.
    pub err_r: OwnedFd,
    pub err_w: OwnedFd,
    /// The go signal after id maps and hook (when the parent has work).
    pub sync_r: Option<OwnedFd>,
    pub sync_w: Option<OwnedFd>,
    /// The two-phase start's pipe.
    pub start_r: Option<OwnedFd>,
    pub start_w: Option<OwnedFd>,
    /// What `clone3` creates.
    pub ns_flags: Namespaces,
    /// What the child unshares after joining a user namespace.
    pub unshare_after_joins: Namespaces,
    pub join_user: bool,
    pub pooled_netns: Option<OwnedFd>,
    pub close_ranges: Vec<(u32, u32)>,
    pub become_id: Option<(libc::uid_t, libc::gid_t, bool)>,
    pub cgroup_fd: Option<RawFd>,
    /// The parent writes id maps before letting the child go.
    pub user_maps: bool,
}

fn cstr(what: &str, s: &OsStr) -> Result<CString> {
    CString::new(s.as_bytes())
        .map_err(|_| Error::invalid(format!("{what} {s:?} contains a NUL byte")))
}

/// The candidates `execve` tries: `program` itself when it has a `/`, else
/// `program` in each directory of `path` (the child's `PATH`, else ours,
/// else [`DEFAULT_PATH`]; an empty entry is `.`).
pub(super) fn exec_candidates(program: &OsStr, path: Option<&OsString>) -> Result<Vec<CString>> {
    let bytes = program.as_bytes();
    let c = |b: Vec<u8>| {
        CString::new(b)
            .map_err(|_| Error::invalid(format!("program {program:?} contains a NUL byte")))
    };
    if bytes.contains(&b'/') {
        return Ok(vec![c(bytes.to_vec())?]);
    }
    let default_path = std::env::var_os("PATH");
    let path = path
        .or(default_path.as_ref())
        .map(|p| p.as_bytes().to_vec())
        .unwrap_or_else(|| DEFAULT_PATH.as_bytes().to_vec());
    let mut out = Vec::new();
    for dir in path.split(|b| *b == b':') {
        let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
        let mut full = dir.to_vec();
        full.push(b'/');
        full.extend_from_slice(bytes);
        out.push(c(full)?);
    }
    Ok(out)
}

/// A null-terminated array of pointers into `strings`.
fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
    let mut v: Vec<*const libc::c_char> = strings.iter().map(|c| c.as_ptr()).collect();
    v.push(std::ptr::null());
    v
}

impl Spawner {
    /// The child's environment: ours unless cleared, with the changes.
    pub(super) fn child_env(&self) -> BTreeMap<OsString, OsString> {
        let mut env: BTreeMap<OsString, OsString> = if self.env_clear {
            BTreeMap::new()
        } else {
            std::env::vars_os().collect()
        };
        for (k, v) in &self.env {
            match v {
                Some(v) => {
                    env.insert(k.clone(), v.clone());
                }
                None => {
                    env.remove(k);
                }
            }
        }
        env
    }

    /// argv, envp and the paths to try, as C data.
    pub(super) fn exec_data(&self) -> Result<ExecData> {
        let argv_c: Vec<CString> = self
            .args
            .iter()
            .map(|a| cstr("argument", a))
            .collect::<Result<_>>()?;
        let env = self.child_env();
        let envp_c: Vec<CString> = env
            .iter()
            .map(|(k, v)| {
                let mut kv = k.clone().into_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                CString::new(kv).map_err(|_| {
                    Error::invalid(format!("environment variable {k:?} contains a NUL byte"))
                })
            })
            .collect::<Result<_>>()?;
        let paths = exec_candidates(&self.program, env.get(OsStr::new("PATH")))?;
        Ok(ExecData {
            argv: pointers(&argv_c),
            envp: pointers(&envp_c),
            _argv_c: argv_c,
            _envp_c: envp_c,
            paths,
        })
    }

    /// Stdio and mapped fds, each source placed at `min_free` or above so
    /// that no `dup2` in the child clobbers another source.
    fn fd_plan(&self, min_free: RawFd) -> Result<FdPlan> {
        let mut p = FdPlan::default();
        for (i, which) in [&self.stdin, &self.stdout, &self.stderr]
            .into_iter()
            .enumerate()
        {
            let src = match which {
                Stdio::Inherit => continue,
                Stdio::Null => open_devnull()?,
                Stdio::Piped => {
                    let (r, w) = pipe()?;
                    let (mine, theirs) = if i == 0 { (w, r) } else { (r, w) };
                    match i {
                        0 => p.stdin = Some(ChildStdin::from(mine)),
                        1 => p.stdout = Some(ChildStdout::from(mine)),
                        _ => p.stderr = Some(ChildStderr::from(mine)),
                    }
                    theirs
                }
                Stdio::Fd(fd) => dup_above(fd.as_raw_fd(), min_free)?,
            };
            let src = lift(src, min_free)?;
            p.moves.push((src.as_raw_fd(), i as RawFd));
            p.child_side.push(src);
        }
        for (src, dst) in &self.fds {
            let raw = match src {
                FdSource::Owned(f) => f.as_raw_fd(),
                FdSource::Borrowed(f) => *f,
            };
            let dup = dup_above(raw, min_free)
                .map_err(|e| Error::invalid(format!("fd {raw} for child fd {dst}: {e}")))?;
            p.moves.push((dup.as_raw_fd(), *dst));
            p.child_side.push(dup);
        }
        Ok(p)
    }

    /// Step-owned fds (move_mount) must not sit where a target goes.
    fn lift_step_fds(&mut self, min_free: RawFd) -> Result<()> {
        for s in &mut self.steps {
            if let StepKind::MoveMount { fd, .. } = &mut s.kind {
                if fd.as_raw_fd() < min_free {
                    let taken = std::mem::replace(fd, dup_above(fd.as_raw_fd(), min_free)?);
                    drop(taken);
                }
            }
        }
        Ok(())
    }

    /// Open (or duplicate) each namespace to join, check its type, and
    /// order them: joining a user namespace must come first, or the others
    /// are refused. The fds go to `child_side`.
    fn open_joins(&self, min_free: RawFd, child_side: &mut Vec<OwnedFd>) -> Result<Joins> {
        let mut j = Joins::default();
        for spec in &self.joins {
            let (fd, t, desc) = match spec {
                JoinSpec::Pidfd { fd, ns } => {
                    let fd = fd.as_ref().map_err(|e| {
                        Error::setup_io(
                            "duplicate the pidfd to join",
                            io::Error::new(e.kind(), e.to_string()),
                        )
                    })?;
                    if ns.is_empty() {
                        return Err(Error::invalid("join_pidfd with no namespaces"));
                    }
                    let fd = dup_above(fd.as_raw_fd(), min_free)?;
                    (fd, *ns, format!("setns(pidfd, {ns:?})"))
                }
                JoinSpec::Path { path, ns } => {
                    let f = std::fs::File::open(path)
                        .map_err(|e| Error::setup_io(format!("open namespace file {path:?}"), e))?;
                    let fd = lift(OwnedFd::from(f), min_free)?;
                    let t = ns_type(&fd).map_err(|e| {
                        Error::setup_io(
                            format!("ioctl(NS_GET_NSTYPE) on {path:?}: not a namespace file"),
                            e,
                        )
                    })?;
                    if !ns.is_empty() && *ns != t {
                        return Err(Error::invalid(format!(
                            "{path:?} is a {t:?} namespace, not {ns:?}"
                        )));
                    }
                    (fd, t, format!("setns({path:?}, {t:?})"))
                }
            };
            j.pid |= t.contains(Namespaces::PID);
            j.fds.push((fd.as_raw_fd(), t.bits() as libc::c_int));
            j.desc.push(desc);
            child_side.push(fd);
        }
        let mut order: Vec<usize> = (0..j.fds.len()).collect();
        order.sort_by_key(|&i| {
            if j.fds[i].1 == libc::CLONE_NEWUSER {
                0
            } else {
                1
            }
        });
        j.fds = order.iter().map(|&i| j.fds[i]).collect();
        j.desc = order.iter().map(|&i| j.desc[i].clone()).collect();
        Ok(j)
    }

    /// The fds the child keeps open (targets, the error and start pipes,
    /// step fds); it closes every other one before `execve`.
    fn close_ranges(&self, err_w: RawFd, start_r: Option<RawFd>) -> Result<Vec<(u32, u32)>> {
        let mut keep: Vec<u32> = (0..=2u32).collect();
        keep.extend(self.fds.iter().map(|(_, d)| *d as u32));
        keep.push(err_w as u32);
        if let Some(s) = start_r {
            keep.push(s as u32);
        }
        for fd in &self.step_fds {
            if self.fds.iter().any(|(_, d)| d == fd) {
                return Err(Error::invalid(format!(
                    "step fd {fd} is also the target of a mapped fd"
                )));
            }
            keep.push(*fd as u32);
        }
        Ok(gaps(keep))
    }

    /// The cgroup directory fd for `CLONE_INTO_CGROUP`, or the error of
    /// opening it.
    fn cgroup_raw_fd(&self) -> Result<Option<RawFd>> {
        match &self.cgroup {
            None => Ok(None),
            Some(Ok(fd)) => Ok(Some(fd.as_raw_fd())),
            Some(Err(e)) => Err(Error::setup_io(
                format!("open cgroup directory {}", self.cgroup_desc),
                copy_io_error(e),
            )),
        }
    }

    /// What the clone creates and what the child unshares after its joins;
    /// with a pool, a pooled network namespace replaces `CLONE_NEWNET`.
    fn namespace_plan(
        &self,
        join_user: bool,
        min_free: RawFd,
    ) -> Result<(Namespaces, Namespaces, Option<OwnedFd>)> {
        let mut ns_flags = self.namespaces;
        // Joining a user namespace: the namespaces to create must belong
        // to it (runtime-spec: a joined namespace is entered before
        // anything is created in it), so they are unshared after the
        // joins instead of made by clone (not a time namespace: the clone
        // makes it, as setns(2) into a user namespace leaves it alone).
        let unshare_after_joins = if join_user {
            ns_flags & !Namespaces::TIME
        } else {
            Namespaces::empty()
        };
        ns_flags.remove(unshare_after_joins);
        // A pooled network namespace replaces CLONE_NEWNET (not with a new
        // user namespace: its root must own the network namespace).
        let pooled_netns = match &self.netns_pool {
            Some(pool)
                if ns_flags.contains(Namespaces::NET) && !ns_flags.contains(Namespaces::USER) =>
            {
                match pool.take() {
                    Some(fd) => Some(lift(fd, min_free)?),
                    None => None,
                }
            }
            _ => None,
        };
        if pooled_netns.is_some() {
            ns_flags.remove(Namespaces::NET);
        }
        if self.time_offsets.is_some() {
            // The child unshares the time namespace itself to set offsets first.
            ns_flags.remove(Namespaces::TIME);
        }
        Ok((ns_flags, unshare_after_joins, pooled_netns))
    }

    /// Prepare everything for one spawn (`stopped`: two-phase start).
    pub(super) fn prepare(&mut self, stopped: bool) -> Result<Prepared> {
        let exec = self.exec_data()?;
        let os = |s: &Option<String>, what: &str| {
            s.as_ref().map(|h| cstr(what, OsStr::new(h))).transpose()
        };
        let cwd = self
            .cwd
            .as_ref()
            .map(|p| cstr("current_dir", p.as_os_str()))
            .transpose()?;
        let hostname = os(&self.hostname, "hostname")?;
        let domainname = os(&self.domainname, "domainname")?;
        let time_offsets = self
            .time_offsets
            .map(|(mono, boot)| format!("monotonic {mono} 0\nboottime {boot} 0\n").into_bytes());
        // Fd targets in the child: 0, 1, 2 and every mapped fd. Every fd the
        // child reads from must live above the highest target.
        let max_target = self.fds.iter().map(|(_, d)| *d).max().unwrap_or(2).max(2);
        let min_free = max_target + 1;
        let mut fds = self.fd_plan(min_free)?;
        self.lift_step_fds(min_free)?;
        let mut joins = self.open_joins(min_free, &mut fds.child_side)?;
        let (err_r, err_w) = pipe()?;
        let err_w = lift(err_w, min_free)?;
        let user_maps = self.writes_maps();
        let (sync_r, sync_w) = if user_maps || self.after_clone.is_some() {
            let (r, w) = pipe()?;
            (Some(lift(r, min_free)?), Some(w))
        } else {
            (None, None)
        };
        let (start_r, start_w) = if stopped {
            let (r, w) = pipe()?;
            (Some(lift(r, min_free)?), Some(w))
        } else {
            (None, None)
        };
        let join_user = joins.fds.iter().any(|(_, t)| t & libc::CLONE_NEWUSER != 0);
        let (ns_flags, unshare_after_joins, pooled_netns) =
            self.namespace_plan(join_user, min_free)?;
        // A pid namespace unshared applies to children: fork as for a join.
        joins.pid |= unshare_after_joins.contains(Namespaces::PID);
        let close_ranges =
            self.close_ranges(err_w.as_raw_fd(), start_r.as_ref().map(|f| f.as_raw_fd()))?;
        Ok(Prepared {
            exec,
            cwd,
            hostname,
            domainname,
            time_offsets,
            fds,
            joins,
            err_r,
            err_w,
            sync_r,
            sync_w,
            start_r,
            start_w,
            ns_flags,
            unshare_after_joins,
            join_user,
            pooled_netns,
            close_ranges,
            become_id: self.become_id(),
            cgroup_fd: self.cgroup_raw_fd()?,
            user_maps,
        })
    }
}

/// The `CLONE_NEW*` type of a namespace fd (`NS_GET_NSTYPE`).
fn ns_type(fd: &OwnedFd) -> io::Result<Namespaces> {
    let t = berth_sys::ns::ns_type(fd.as_fd())?;
    Ok(Namespaces::from_bits_truncate(t as u64))
}

impl Prepared {
    /// The parent waits for a go signal: it writes id maps or runs a hook.
    pub(super) fn needs_sync(&self) -> bool {
        self.sync_w.is_some()
    }

    /// The child's view of it, borrowing `steps` and this preparation.
    pub(super) fn plan<'a>(&'a self, sp: &'a Spawner, times: *mut u64) -> ChildPlan<'a> {
        let raw = |f: &Option<OwnedFd>| f.as_ref().map_or(-1, |f| f.as_raw_fd());
        ChildPlan {
            steps: &sp.steps,
            final_steps: sp.final_steps,
            exec_paths: &self.exec.paths,
            argv: &self.exec.argv,
            envp: &self.exec.envp,
            fd_moves: &self.fds.moves,
            close_ranges: &self.close_ranges,
            err_w: self.err_w.as_raw_fd(),
            sync_r: raw(&self.sync_r),
            start_r: raw(&self.start_r),
            pdeathsig: sp.pdeathsig,
            hostname: self.hostname.as_deref(),
            domainname: self.domainname.as_deref(),
            time_offsets: self.time_offsets.as_deref(),
            joins: &self.joins.fds,
            pooled_netns: raw(&self.pooled_netns),
            join_pid: self.joins.pid,
            join_user: self.join_user,
            unshare_flags: self.unshare_after_joins.bits() as libc::c_int,
            init: sp.init,
            cwd: self.cwd.as_deref(),
            become_id: self.become_id,
            times,
            orig_mask: None,
        }
    }

    /// Whether the `CLONE_VM | CLONE_VFORK` fast path can be used: the
    /// parent has nothing to do between clone and exec (no id maps, no
    /// hook, no two-phase start), so it shares its memory with the child
    /// and sleeps until it execs (as posix_spawn does): no page tables are
    /// copied, nothing is copied on write, and exec has no copied mm to
    /// tear down. With a cgroup fd it needs clone3 on a private stack,
    /// which is done in assembly on x86_64 only. Not with the init (it
    /// never execs: the parent would sleep forever), nor with joins or
    /// time offsets: setns into a user or time namespace and
    /// unshare(CLONE_NEWTIME) refuse a process sharing its mm
    /// (EUSERS/EINVAL).
    pub(super) fn vfork_ok(&self, init: bool) -> bool {
        !self.needs_sync()
            && self.start_r.is_none()
            && !init
            && self.joins.fds.is_empty()
            && self.time_offsets.is_none()
            && (self.cgroup_fd.is_none() || cfg!(target_arch = "x86_64"))
            && !self.ns_flags.contains(Namespaces::TIME)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn path_search_candidates() {
        let c = exec_candidates(OsStr::new("sh"), Some(&OsString::from("/a:/b"))).unwrap();
        assert_eq!(
            c,
            vec![
                CString::new("/a/sh").unwrap(),
                CString::new("/b/sh").unwrap()
            ]
        );
        let c = exec_candidates(OsStr::new("/bin/sh"), None).unwrap();
        assert_eq!(c, vec![CString::new("/bin/sh").unwrap()]);
        let c = exec_candidates(OsStr::new("sh"), Some(&OsString::from("/a::/b"))).unwrap();
        assert_eq!(c[1], CString::new("./sh").unwrap());
        let e = exec_candidates(OsStr::new("s\0h"), None).unwrap_err();
        assert!(e.to_string().contains("NUL byte"), "{e}");
    }

    #[test]
    fn exec_data_is_null_terminated_c() {
        let mut s = Spawner::new(["/bin/echo", "a b"]);
        s.env_clear()
            .env("A", "1")
            .env("PATH", "/x")
            .env_remove("A");
        let d = s.exec_data().unwrap();
        assert_eq!(d.argv.len(), 3);
        assert!(d.argv[2].is_null());
        // SAFETY: pointers into d's own C strings.
        let arg1 = unsafe { CStr::from_ptr(d.argv[1]) };
        assert_eq!(arg1.to_bytes(), b"a b");
        assert_eq!(d.envp.len(), 2);
        // SAFETY: as above.
        let env0 = unsafe { CStr::from_ptr(d.envp[0]) };
        assert_eq!(env0.to_bytes(), b"PATH=/x");
        assert_eq!(d.paths, vec![CString::new("/bin/echo").unwrap()]);
        let mut s = Spawner::new(["/bin/echo", "a\0"]);
        assert!(s.exec_data().is_err());
        s.args.pop();
        s.env("K", "v\0");
        let e = s.exec_data().err().unwrap().to_string();
        assert!(e.contains("environment variable \"K\""), "{e}");
    }
}
