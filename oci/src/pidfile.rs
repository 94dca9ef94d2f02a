//! `--pid-file` (create, run, exec), written as runc writes it.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Write the pid file as runc does: a new file (`O_CREAT|O_EXCL|
/// O_NOFOLLOW`, mode 0644) with an unpredictable name in the pid file's
/// directory, renamed over the pid file; a symlink planted at either name
/// is never followed.
pub fn write(pf: &str, pid: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let p = Path::new(pf);
    let name = p
        .file_name()
        .ok_or_else(|| Error::Usage(format!("pid file {pf}: no file name")))?;
    let what = format!("write pid file {pf}");
    for _ in 0..16 {
        let mut r = [0u8; 8];
        berth_sys::fs::getrandom(&mut r).map_err(Error::io(what.clone()))?;
        let tmp = p.with_file_name(format!(
            ".{}.{:016x}",
            name.to_string_lossy(),
            u64::from_ne_bytes(r)
        ));
        let mut f = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(what)(e)),
        };
        let r = f
            .write_all(pid.as_bytes())
            .and_then(|()| std::fs::rename(&tmp, p));
        if let Err(e) = r {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::io(what)(e));
        }
        return Ok(());
    }
    Err(Error::Config(format!(
        "write pid file {pf}: no free temporary name"
    )))
}
