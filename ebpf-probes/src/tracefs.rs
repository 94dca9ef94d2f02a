//! tracefs discovery (a detached instance of our own when none is mounted),
//! tracepoint ids and field offsets from `events/<group>/<name>/format`, and
//! classic tracepoint attachment through `perf_event_open(2)` +
//! `PERF_EVENT_IOC_SET_BPF`.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::sys::{syscall_error, Program};

/// Where tracefs is mounted by default (Linux 4.1); `tracefs(5)`-less
/// systems keep it under debugfs at `/sys/kernel/debug/tracing`.
pub const TRACEFS_DEFAULT: &str = "/sys/kernel/tracing";

static TRACEFS: Mutex<Option<PathBuf>> = Mutex::new(None);

fn mounted_tracefs() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    for line in info.lines() {
        // mountinfo(5): fields…, " - ", fstype, source, options
        let (pre, post) = line.split_once(" - ")?;
        let fstype = post.split_whitespace().next()?;
        let mnt = pre.split_whitespace().nth(4)?;
        if fstype == "tracefs" {
            return Some(PathBuf::from(unescape_mountinfo(mnt)));
        }
    }
    let dbg = Path::new("/sys/kernel/debug/tracing/events");
    dbg.is_dir()
        .then(|| PathBuf::from("/sys/kernel/debug/tracing"))
}

fn unescape_mountinfo(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// The tracefs directory to read. When tracefs is mounted (normally at
/// [`TRACEFS_DEFAULT`], or under debugfs), that mount. When it is not, a
/// tracefs instance of our own that is mounted nowhere: `fsopen("tracefs")`,
/// `FSCONFIG_CMD_CREATE`, `fsmount` (the new mount API, Linux 5.2; needs
/// `CAP_SYS_ADMIN`) give a detached mount reachable only through its fd,
/// which the process keeps, and the path returned is `/proc/self/fd/<fd>`.
/// No mount table is changed: the host's stays as it was, and the instance
/// goes away with the process.
pub fn tracefs_root() -> Result<PathBuf> {
    let mut g = TRACEFS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = g.as_ref() {
        return Ok(p.clone());
    }
    let root = match mounted_tracefs() {
        Some(p) => p,
        None => {
            let fd = detached_tracefs().map_err(|source| Error::Tracefs {
                what: "not mounted, and making a detached tracefs mount (fsopen/fsmount) failed"
                    .to_string(),
                path: PathBuf::from(TRACEFS_DEFAULT),
                source,
            })?;
            let p = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
            // Kept for the life of the process: the path above names it.
            std::mem::forget(fd);
            tracing::debug!(path = %p.display(), "tracefs not mounted: using a detached instance");
            p
        }
    };
    *g = Some(root.clone());
    Ok(root)
}

/// A new tracefs superblock mounted nowhere (fsopen(2), fsconfig(2),
/// fsmount(2), Linux 5.2), `nosuid,nodev,noexec`; `O_CLOEXEC`.
fn detached_tracefs() -> io::Result<OwnedFd> {
    use berth_sys::mount_api::{fsconfig_create, fsmount, fsopen, MountAttr};
    let fs = fsopen(c"tracefs")?;
    fsconfig_create(fs.as_fd())?;
    fsmount(
        fs.as_fd(),
        MountAttr::NOSUID | MountAttr::NODEV | MountAttr::NOEXEC,
    )
}

/// A classic tracepoint's id and field layout, from tracefs.
#[derive(Debug, Clone)]
pub struct TracepointFormat {
    /// `group/name`.
    pub name: String,
    /// The id (`events/<group>/<name>/id`), `perf_event_attr.config`.
    pub id: u64,
    /// Each field: (name, offset, size).
    pub fields: Vec<(String, u32, u32)>,
    path: PathBuf,
}

impl TracepointFormat {
    /// Read `events/<group>/<name>/{id,format}`.
    pub fn read(group: &str, name: &str) -> Result<TracepointFormat> {
        let root = tracefs_root()?;
        let dir = root.join("events").join(group).join(name);
        let read = |f: &str| {
            let p = dir.join(f);
            std::fs::read_to_string(&p).map_err(|source| Error::Tracefs {
                what: format!("reading tracepoint {group}/{name}"),
                path: p,
                source,
            })
        };
        let id_text = read("id")?;
        let id = id_text.trim().parse::<u64>().map_err(|_| Error::Tracefs {
            what: format!("tracepoint id {:?} is not a number", id_text.trim()),
            path: dir.join("id"),
            source: io::Error::from_raw_os_error(libc::EINVAL),
        })?;
        let fields = parse_format(&read("format")?);
        Ok(TracepointFormat {
            name: format!("{group}/{name}"),
            id,
            fields,
            path: dir.join("format"),
        })
    }

    /// Offset and size of `field`.
    pub fn field(&self, field: &str) -> Result<(u32, u32)> {
        self.fields
            .iter()
            .find(|(n, _, _)| n == field)
            .map(|(_, o, s)| (*o, *s))
            .ok_or_else(|| Error::TracepointFormat {
                tracepoint: self.name.clone(),
                field: field.to_string(),
                path: self.path.clone(),
            })
    }
}

/// Parse the `field:<decl>; offset:N; size:N; signed:N;` lines of a format file.
pub(crate) fn parse_format(text: &str) -> Vec<(String, u32, u32)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("field:") else {
            continue;
        };
        let mut parts = rest.split(';').map(str::trim);
        let decl = parts.next().unwrap_or("");
        let mut off = None;
        let mut size = None;
        for p in parts {
            if let Some(v) = p.strip_prefix("offset:") {
                off = v.parse().ok();
            } else if let Some(v) = p.strip_prefix("size:") {
                size = v.parse().ok();
            }
        }
        // The name is the last word once array brackets (`char[]`, `u8 x[16]`) are dropped.
        let mut plain = String::with_capacity(decl.len());
        let mut depth = 0u32;
        for ch in decl.chars() {
            match ch {
                '[' => depth += 1,
                ']' => depth = depth.saturating_sub(1),
                c if depth == 0 => plain.push(c),
                _ => {}
            }
        }
        let name = plain
            .split_whitespace()
            .last()
            .unwrap_or("")
            .trim_start_matches('*')
            .to_string();
        if let (Some(o), Some(s)) = (off, size) {
            if !name.is_empty() {
                out.push((name, o, s));
            }
        }
    }
    out
}

/// A BPF program attached to a classic tracepoint through a perf event
/// (Linux 4.7); closing the perf event fd detaches it.
#[derive(Debug)]
pub struct TracepointLink {
    perf: OwnedFd,
}

impl TracepointLink {
    /// Open the tracepoint as a perf event on CPU 0 for all processes
    /// (the attached program runs on every CPU), attach `prog`, enable.
    pub fn attach(tp: &TracepointFormat, prog: &Program) -> Result<TracepointLink> {
        let perf = berth_sys::perf::open_tracepoint(tp.id).map_err(|e| {
            syscall_error(
                format!("perf_event_open(tracepoint {} id {})", tp.name, tp.id),
                e,
            )
        })?;
        berth_sys::perf::set_bpf(perf.as_fd(), prog.as_fd()).map_err(|e| {
            syscall_error(
                format!("PERF_EVENT_IOC_SET_BPF({} on {})", prog.name(), tp.name),
                e,
            )
        })?;
        berth_sys::perf::enable(perf.as_fd())
            .map_err(|e| syscall_error(format!("PERF_EVENT_IOC_ENABLE({})", tp.name), e))?;
        Ok(TracepointLink { perf })
    }
}

impl AsRawFd for TracepointLink {
    fn as_raw_fd(&self) -> i32 {
        self.perf.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exec_format() {
        let text = "name: sched_process_exec\nID: 312\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;\n\tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;\n\tfield:pid_t old_pid;\toffset:16;\tsize:4;\tsigned:1;\n\nprint fmt: \"filename=%s\"\n";
        let f = parse_format(text);
        assert_eq!(
            f,
            vec![
                ("common_type".to_string(), 0, 2),
                ("common_pid".to_string(), 4, 4),
                ("filename".to_string(), 8, 4),
                ("pid".to_string(), 12, 4),
                ("old_pid".to_string(), 16, 4),
            ]
        );
    }
}
