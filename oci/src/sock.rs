//! Unix sockets under paths of any depth: the holder's socket and
//! `--console-socket`, over which the pty master goes as runc sends it.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A unix socket path short enough for `sockaddr_un` (108 bytes with its
/// NUL, unix(7)) whatever the depth of `path`: a longer one is reached as
/// `/proc/self/fd/<fd>/<name>` through an `O_PATH` fd of its directory,
/// held by the returned value for as long as the path is used (as crun
/// does; a `chdir` would change the whole process' directory).
pub struct SockPath {
    /// The path to bind or connect to.
    path: PathBuf,
    /// The directory's `O_PATH` fd the path goes through, if it does.
    _dir: Option<OwnedFd>,
}

impl SockPath {
    /// A short path to `path`.
    pub fn new(path: &Path) -> Result<SockPath> {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::OpenOptionsExt;
        if path.as_os_str().as_bytes().len() < 100 {
            return Ok(SockPath {
                path: path.to_path_buf(),
                _dir: None,
            });
        }
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(Error::Config(format!(
                "socket path {}: no file name",
                path.display()
            )));
        };
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(dir)
            .map_err(Error::io(format!(
                "open the directory of socket {}",
                path.display()
            )))?;
        let dir = OwnedFd::from(dir);
        Ok(SockPath {
            path: PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name),
            _dir: Some(dir),
        })
    }
}

/// Listen on a new unix socket at `path` (any depth).
pub fn bind(path: &Path) -> Result<UnixListener> {
    let sp = SockPath::new(path)?;
    UnixListener::bind(&sp.path).map_err(Error::io(format!("bind {}", path.display())))
}

/// Connect to the unix socket at `path` (any depth); `what` names it in
/// an error.
pub fn connect(path: &Path, what: &str) -> Result<UnixStream> {
    let sp = SockPath::new(path)?;
    UnixStream::connect(&sp.path).map_err(Error::io(what))
}

/// Send `fd` over the unix socket at `path` (SCM_RIGHTS), as runc does for
/// `--console-socket`; any path depth works ([`SockPath`]).
pub fn send_fd(path: &str, fd: BorrowedFd<'_>) -> Result<()> {
    let s = connect(Path::new(path), &format!("connect console socket {path}"))?;
    berth_sys::scm::send_fd_with(s.as_fd(), fd, b"/dev/ptmx")
        .map_err(Error::io(format!("send pty over {path}")))
}
