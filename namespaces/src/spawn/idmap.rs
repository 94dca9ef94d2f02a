//! User namespace id maps: checked before the spawn, written by the parent
//! while the child waits (user_namespaces(7)).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::IdMap;

use super::builder::Spawner;

/// Most lines a uid_map/gid_map accepts (Linux 4.15; 5 before).
const MAX_MAP_LINES: usize = 340;

/// A map the kernel would refuse, refused with what is wrong: too many
/// lines, a count of 0, ids past `u32::MAX - 1`, lines overlapping inside
/// or outside the namespace.
pub(super) fn validate_maps(what: &str, maps: &[IdMap]) -> Result<()> {
    if maps.len() > MAX_MAP_LINES {
        return Err(Error::invalid(format!(
            "{what} has {} lines, the kernel allows at most {MAX_MAP_LINES}",
            maps.len()
        )));
    }
    for (i, m) in maps.iter().enumerate() {
        if m.count == 0 {
            return Err(Error::invalid(format!("{what} line {m:?} has count 0")));
        }
        if m.inside as u64 + m.count as u64 > u32::MAX as u64
            || m.outside as u64 + m.count as u64 > u32::MAX as u64
        {
            return Err(Error::invalid(format!(
                "{what} line {m:?} runs past id 4294967294"
            )));
        }
        for o in &maps[..i] {
            let overlap = |a: u32, b: u32| {
                (a as u64) < b as u64 + o.count as u64 && (b as u64) < a as u64 + m.count as u64
            };
            if overlap(m.inside, o.inside) {
                return Err(Error::invalid(format!(
                    "{what} lines {o:?} and {m:?} overlap inside the namespace"
                )));
            }
            if overlap(m.outside, o.outside) {
                return Err(Error::invalid(format!(
                    "{what} lines {o:?} and {m:?} overlap outside the namespace"
                )));
            }
        }
    }
    Ok(())
}

/// The text of a map file: one `inside outside count` line per map.
pub(super) fn map_text(maps: &[IdMap]) -> Vec<u8> {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.inside, m.outside, m.count))
        .collect::<String>()
        .into_bytes()
}

/// The arguments of `newuidmap`/`newgidmap` after the pid: the maps' numbers.
fn map_tool_args(maps: &[IdMap]) -> Vec<String> {
    maps.iter()
        .flat_map(|m| [m.inside, m.outside, m.count])
        .map(|n| n.to_string())
        .collect()
}

/// The id the child takes in its new user namespace: root when mapped,
/// else the first mapped id (0 with no map).
fn first_id(maps: &[IdMap]) -> u32 {
    if maps.iter().any(|m| m.inside == 0) {
        0
    } else {
        maps.first().map_or(0, |m| m.inside)
    }
}

/// Whether the caller is unprivileged (not euid 0).
fn unprivileged() -> bool {
    berth_sys::fs::euid() != 0
}

/// Write a /proc id-map file in one `write(2)`, as the kernel requires
/// (user_namespaces(7)).
fn write_proc(path: &Path, data: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::setup_io(format!("open({path:?})"), e))?;
    let n = f.write(data).map_err(|e| {
        Error::setup_io(
            format!("write({path:?}, {:?})", String::from_utf8_lossy(data)),
            e,
        )
    })?;
    if n != data.len() {
        return Err(Error::setup(format!("short write to {path:?}"), libc::EIO));
    }
    Ok(())
}

fn run_map_tool(tool: &'static str, pid: i32, maps: &[IdMap]) -> Result<()> {
    let out = std::process::Command::new(tool)
        .arg(pid.to_string())
        .args(map_tool_args(maps))
        .output()
        .map_err(|e| Error::setup_io(format!("run {tool}"), e))?;
    if !out.status.success() {
        return Err(Error::IdMapTool {
            tool,
            pid,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

impl Spawner {
    /// Whether the parent writes id maps (a new user namespace with maps).
    pub(super) fn writes_maps(&self) -> bool {
        self.namespaces.contains(crate::Namespaces::USER)
            && (!self.uid_maps.is_empty() || !self.gid_maps.is_empty())
    }

    /// With id maps: the (uid, gid, clear supplementary groups) the child
    /// takes once they are written.
    pub(super) fn become_id(&self) -> Option<(libc::uid_t, libc::gid_t, bool)> {
        if !self.writes_maps() {
            return None;
        }
        let unprivileged = unprivileged();
        let denied = if self.map_tools {
            false
        } else {
            self.setgroups_deny
                .unwrap_or(unprivileged && !self.gid_maps.is_empty())
        };
        let clear = !denied && !self.gid_maps.is_empty() && !unprivileged;
        Some((first_id(&self.uid_maps), first_id(&self.gid_maps), clear))
    }

    /// Write the child's maps (with the helpers when asked), `setgroups`
    /// first where needed.
    pub(super) fn write_maps(&self, pid: i32) -> Result<()> {
        if self.map_tools {
            if !self.uid_maps.is_empty() {
                run_map_tool("newuidmap", pid, &self.uid_maps)?;
            }
            if !self.gid_maps.is_empty() {
                run_map_tool("newgidmap", pid, &self.gid_maps)?;
            }
            return Ok(());
        }
        let proc = PathBuf::from(format!("/proc/{pid}"));
        if !self.uid_maps.is_empty() {
            write_proc(&proc.join("uid_map"), &map_text(&self.uid_maps))?;
        }
        if !self.gid_maps.is_empty() {
            if self.setgroups_deny.unwrap_or(unprivileged()) {
                write_proc(&proc.join("setgroups"), b"deny")?;
            }
            write_proc(&proc.join("gid_map"), &map_text(&self.gid_maps))?;
        } else if self.setgroups_deny == Some(true) {
            write_proc(&proc.join("setgroups"), b"deny")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Namespaces;

    #[test]
    fn maps_are_checked() {
        assert!(validate_maps("uid_map", &[IdMap::new(0, 1000, 1)]).is_ok());
        let e = validate_maps(
            "uid_map",
            &[IdMap::new(0, 1000, 10), IdMap::new(5, 5000, 10)],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("overlap inside"), "{e}");
        let e = validate_maps(
            "gid_map",
            &[IdMap::new(0, 1000, 10), IdMap::new(50, 1005, 1)],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("overlap outside"), "{e}");
        assert!(validate_maps("uid_map", &[IdMap::new(0, 1, 0)]).is_err());
        assert!(validate_maps("uid_map", &[IdMap::new(u32::MAX - 1, 1, 5)]).is_err());
        let many: Vec<IdMap> = (0..341).map(|i| IdMap::new(i, i, 1)).collect();
        let e = validate_maps("uid_map", &many).unwrap_err().to_string();
        assert!(e.contains("341 lines"), "{e}");
        // Adjacent lines touch but do not overlap.
        assert!(validate_maps(
            "uid_map",
            &[IdMap::new(0, 1000, 1), IdMap::new(1, 100_000, 65_536)]
        )
        .is_ok());
    }

    #[test]
    fn map_files_and_tool_arguments() {
        let maps = [IdMap::new(0, 1000, 1), IdMap::new(1, 100_000, 65_536)];
        assert_eq!(map_text(&maps), b"0 1000 1\n1 100000 65536\n");
        assert_eq!(
            map_tool_args(&maps),
            ["0", "1000", "1", "1", "100000", "65536"]
        );
        assert_eq!(map_text(&[]), b"");
    }

    #[test]
    fn the_child_becomes_root_or_the_first_mapped_id() {
        let mut s = Spawner::new(["/bin/true"]);
        assert_eq!(s.become_id(), None);
        s.namespaces(Namespaces::USER)
            .uid_map(IdMap::new(5, 1000, 1))
            .uid_map(IdMap::new(0, 2000, 1))
            .gid_map(IdMap::new(7, 1000, 1))
            .setgroups_deny(true);
        let (uid, gid, clear) = s.become_id().unwrap();
        assert_eq!((uid, gid, clear), (0, 7, false));
        s.setgroups_deny(false);
        assert_eq!(s.become_id().unwrap().2, !unprivileged());
    }
}
