//! Names on a network: every member's `/etc/hosts` lists every member that
//! has names (its address, container name, aliases), kept current as members
//! come and go.
//!
//! Why `/etc/hosts` and not a resolver on the bridge address: berth is a
//! library without a daemon. A resolver must outlive whichever process
//! started the first container (each `berth-run` is its own process), be
//! supervised, forward every other name to the host's resolvers, and be
//! reachable from each container through the firewall. A hosts file needs
//! none of that: the resolver every libc already has reads it, other names
//! go through the container's `resolv.conf` (a copy of the host's) as
//! before, and no packet is sent to resolve a member.
//!
//! The file is bind-mounted read-only into the container from its state
//! directory, so it cannot be replaced by `rename(2)` (the mount holds the
//! old inode): it is updated in place, one line per member, under the
//! network's IPAM lock (so updates from several processes never interleave).
//! A member's line is written at its own offset and never moves: a member
//! leaving has its line overwritten with spaces (a blank line, skipped by
//! every hosts parser), a member joining takes a blank slot long enough or
//! is appended. Each change is one `pwrite(2)` of one line: a reader racing
//! it sees that one line old or new (or, within the copy, mixed), and every
//! other line exactly as it was — no reader ever sees the file truncated or
//! another member missing.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{Error, Result};
use crate::ipam::Allocation;

/// The line that starts a network's section of a hosts file.
fn marker(network: &str) -> String {
    format!("# berth network {network}\n")
}

/// The hosts line of a member (`None`: it has no names).
fn line(a: &Allocation) -> Option<String> {
    (!a.names.is_empty()).then(|| format!("{}\t{}", a.addr, a.names.join(" ")))
}

/// Bring the hosts file of every member of `network` in `allocs` up to date.
/// Errors for `must` (the member being attached) are returned; the others'
/// are logged (a member being destroyed may have lost its file already).
pub(crate) fn sync(
    network: &str,
    allocs: &BTreeMap<String, Allocation>,
    must: Option<&str>,
) -> Result<()> {
    let entries: Vec<String> = allocs.values().filter_map(line).collect();
    for (id, a) in allocs {
        let Some(p) = &a.hosts_file else { continue };
        match update(p, network, &entries) {
            Ok(()) => {}
            Err(e) if must == Some(id.as_str()) => return Err(e),
            Err(e) => {
                tracing::warn!(container = %id, path = %p.display(), error = %e, "hosts file not updated")
            }
        }
    }
    Ok(())
}

/// Make the section of `network` in hosts file `path` list exactly `entries`
/// (see the module docs for how it is written).
pub(crate) fn update(path: &Path, network: &str, entries: &[String]) -> Result<()> {
    let io = |op, e| Error::io(op, path, e);
    // Never through a symlink; a regular file only. Its mode is left alone:
    // the container's users read it.
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| io("open", e))?;
    let meta = f.metadata().map_err(|e| io("fstat", e))?;
    if !meta.file_type().is_file() {
        return Err(io(
            "open",
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    let mut text = Vec::new();
    f.read_to_end(&mut text).map_err(|e| io("read", e))?;
    let mark = marker(network);
    let mut end = text.len() as u64;
    let start = match find(&text, mark.as_bytes()) {
        Some(i) => i + mark.len(),
        None => {
            let mut add = Vec::new();
            if !text.is_empty() && !text.ends_with(b"\n") {
                add.push(b'\n');
            }
            add.extend_from_slice(mark.as_bytes());
            f.write_all_at(&add, end).map_err(|e| io("write", e))?;
            text.extend_from_slice(&add);
            end = text.len() as u64;
            text.len()
        }
    };
    // (offset, length without the newline, trimmed text) of each line.
    let mut lines = Vec::new();
    let mut off = start;
    for l in text[start..].split_inclusive(|b| *b == b'\n') {
        let body = l.strip_suffix(b"\n").unwrap_or(l);
        lines.push((
            off as u64,
            body.len(),
            String::from_utf8_lossy(body).trim().to_string(),
        ));
        off += l.len();
    }
    let mut free = Vec::new();
    for (o, len, t) in &lines {
        if t.is_empty() {
            free.push((*o, *len));
        } else if !entries.contains(t) {
            f.write_all_at(&vec![b' '; *len], *o)
                .map_err(|e| io("write", e))?;
            free.push((*o, *len));
        }
    }
    // A last line without a newline is never reused (it would need one).
    let tail_open = !text.is_empty() && !text.ends_with(b"\n");
    for e in entries {
        if lines.iter().any(|(_, _, t)| t == e) {
            continue;
        }
        let slot = free
            .iter()
            .position(|(o, len)| *len >= e.len() && !(tail_open && *o + *len as u64 == end));
        match slot {
            Some(i) => {
                let (o, len) = free.remove(i);
                let mut b = e.clone().into_bytes();
                b.resize(len, b' ');
                f.write_all_at(&b, o).map_err(|e| io("write", e))?;
            }
            None => {
                let mut b = Vec::new();
                if tail_open && end == text.len() as u64 {
                    b.push(b'\n');
                }
                b.extend_from_slice(e.as_bytes());
                b.push(b'\n');
                f.write_all_at(&b, end).map_err(|e| io("write", e))?;
                end += b.len() as u64;
            }
        }
    }
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap()
    }

    #[test]
    fn members_come_and_go_without_moving_the_others() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("hosts");
        std::fs::write(&p, "127.0.0.1\tlocalhost\n").unwrap();
        let a = "10.0.0.2\tweb www".to_string();
        let b = "10.0.0.3\tdb".to_string();
        let c = "10.0.0.4\tcache".to_string();
        update(&p, "n", &[a.clone(), b.clone()]).unwrap();
        assert_eq!(
            read(&p),
            "127.0.0.1\tlocalhost\n# berth network n\n10.0.0.2\tweb www\n10.0.0.3\tdb\n"
        );
        let b_at = read(&p).find("10.0.0.3").unwrap();
        // a leaves: blanked in place, b does not move.
        update(&p, "n", std::slice::from_ref(&b)).unwrap();
        assert_eq!(read(&p).find("10.0.0.3").unwrap(), b_at);
        assert!(!read(&p).contains("web"));
        // c joins: takes a's slot (long enough), padded.
        update(&p, "n", &[b.clone(), c.clone()]).unwrap();
        let t = read(&p);
        assert_eq!(t.find("10.0.0.3").unwrap(), b_at);
        assert!(t.contains("10.0.0.4\tcache  \n"), "{t:?}");
        // Idempotent; a longer newcomer is appended.
        let long = "10.0.0.5\ta-much-longer-name alias".to_string();
        update(&p, "n", &[b.clone(), c.clone(), long.clone()]).unwrap();
        update(&p, "n", &[b.clone(), c.clone(), long.clone()]).unwrap();
        let t = read(&p);
        assert!(t.ends_with(&format!("{long}\n")), "{t:?}");
        assert_eq!(t.matches("10.0.0.5").count(), 1);
        // Everyone leaves: only blank lines after the marker.
        update(&p, "n", &[]).unwrap();
        let t = read(&p);
        let section = t.split("# berth network n\n").nth(1).unwrap();
        assert!(section.lines().all(|l| l.trim().is_empty()), "{t:?}");
    }
}
