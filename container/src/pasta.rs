//! Rootless networking through `pasta` (Debian package `passt`), as rootless
//! podman does: a user-space network stack that gives the container's
//! namespace a tap interface with the host's address and routes, turns the
//! container's connections into ordinary sockets of the unprivileged
//! caller, and forwards published host ports into the container. No
//! privilege is needed: pasta joins the container's user namespace (its
//! owner, the caller, has every capability there, user_namespaces(7)) and
//! network namespace, creates the tap with `--config-net`, then
//! daemonizes — its parent's exit is the "network is ready" signal.
//!
//! Connections to the namespace's gateway address reach the host's
//! loopback (pasta's default `--map-gw`). pasta does not notice that the
//! container is gone (it holds the network namespace itself): berth ends it
//! at teardown through a pidfd.

use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

use berth_netsetup::{PortMapping, Protocol};

use crate::error::{Error, Result};

/// The pasta binary (found on `PATH`).
const PASTA: &str = "pasta";

/// How long pasta may take to configure the namespace.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running pasta daemon serving one container. Dropped without
/// [`Pasta::leave`], it is stopped (best effort).
#[derive(Debug)]
pub(crate) struct Pasta {
    pid: i32,
    pidfd: OwnedFd,
    done: bool,
}

/// pasta's port spec for one mapping: `[ADDR/]HOST:CONTAINER`.
fn port_spec(p: &PortMapping) -> String {
    match p.host_ip {
        Some(ip) => format!("{ip}/{}:{}", p.host_port, p.container_port),
        None => format!("{}:{}", p.host_port, p.container_port),
    }
}

/// The command line for the container whose init is `pid`: configure the
/// tap, forward exactly the published ports (pasta's default `auto` would
/// forward whatever the container binds), nothing from the namespace to
/// the host's loopback.
fn args(pid: i32, ports: &[PortMapping], pidfile: &Path) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec!["--config-net".into(), "--quiet".into()];
    a.push("--pid".into());
    a.push(pidfile.into());
    for (flag, proto) in [("-t", Protocol::Tcp), ("-u", Protocol::Udp)] {
        let mine: Vec<_> = ports.iter().filter(|p| p.proto == proto).collect();
        if mine.is_empty() {
            a.push(flag.into());
            a.push("none".into());
        }
        for p in mine {
            a.push(flag.into());
            a.push(port_spec(p).into());
        }
    }
    for a2 in ["-T", "none", "-U", "none"] {
        a.push(a2.into());
    }
    a.push(pid.to_string().into());
    a
}

impl Pasta {
    /// Start pasta for the container whose init is `pid` (its user and
    /// network namespaces), publishing `ports`; returns once the namespace
    /// is configured. `dir` (the container's state directory) holds the
    /// pid file and pasta's messages while it starts.
    pub(crate) fn start(pid: i32, ports: &[PortMapping], dir: &Path) -> Result<Pasta> {
        let pidfile = dir.join("pasta.pid");
        let log = dir.join("pasta.log");
        let log_file = std::fs::File::create(&log).map_err(|e| Error::io("create", &log, e))?;
        let mut cmd = std::process::Command::new(PASTA);
        cmd.args(args(pid, ports, &pidfile))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log_file);
        // The daemon lives as long as the container: it must not keep any
        // other fd of the caller open (a pipe's write end would keep its
        // reader from ever seeing EOF). Marked close-on-exec rather than
        // closed, so the pipe Command reports an exec failure through
        // stays usable.
        // SAFETY: close_range(2) is async-signal-safe and touches no
        // memory; on a kernel without CLOSE_RANGE_CLOEXEC (< 5.11) it fails
        // and the fds stay as they are.
        unsafe {
            cmd.pre_exec(|| {
                libc::syscall(
                    libc::SYS_close_range,
                    3u32,
                    u32::MAX,
                    libc::CLOSE_RANGE_CLOEXEC,
                );
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| Error::Pasta {
            pid,
            reason: format!("cannot run {PASTA} (Debian package passt): {e}"),
        })?;
        let end = Instant::now() + SETUP_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Ok(s),
                Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(2)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Err(format!("no answer within {SETUP_TIMEOUT:?}"));
                }
                Err(e) => break Err(e.to_string()),
            }
        };
        let messages = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        let fail = |why: String| Error::Pasta {
            pid,
            reason: format!("{why}: {}", messages.trim()),
        };
        let status = status.map_err(fail)?;
        if !status.success() {
            return Err(fail(status.to_string()));
        }
        // The daemon's pid, written by pasta's parent before it exited.
        let text = std::fs::read_to_string(&pidfile).map_err(|e| Error::io("read", &pidfile, e))?;
        let _ = std::fs::remove_file(&pidfile);
        let daemon: i32 = text
            .trim()
            .parse()
            .map_err(|_| fail(format!("pid file holds {text:?}")))?;
        let pidfd =
            open_pasta(daemon)?.ok_or_else(|| fail(format!("pid {daemon} is not pasta")))?;
        tracing::debug!(container_pid = pid, pasta = daemon, "pasta network ready");
        Ok(Pasta {
            pid: daemon,
            pidfd,
            done: false,
        })
    }

    /// The daemon's pid (recorded in the state, for `gc`).
    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// Let pasta run on (a detached container keeps its network).
    pub(crate) fn leave(mut self) {
        self.done = true;
    }

    /// End pasta (SIGTERM, then SIGKILL after a second) and wait until it
    /// has exited, so its hold on the network namespace is gone.
    pub(crate) fn stop(mut self) -> Result<()> {
        self.terminate()
    }

    fn terminate(&mut self) -> Result<()> {
        self.done = true;
        let signal = |sig: i32| {
            if let Err(e) = berth_sys::pidfd::send_signal(self.pidfd.as_fd(), sig) {
                if e.raw_os_error() != Some(libc::ESRCH) {
                    return Err(Error::io(
                        "pidfd_send_signal pasta",
                        format!("/proc/{}", self.pid),
                        e,
                    ));
                }
            }
            Ok(())
        };
        // A pidfd polls readable once the process exits.
        let exited = |ms: i32| {
            berth_sys::poll::poll_one(self.pidfd.as_fd(), berth_sys::poll::PollFlags::POLLIN, ms)
                .unwrap_or(false)
        };
        signal(libc::SIGTERM)?;
        if !exited(1000) {
            signal(libc::SIGKILL)?;
            exited(5000);
        }
        Ok(())
    }
}

/// A pidfd of `pid` if it is a pasta process (`passt`, `passt.avx2`, …;
/// checked after the pidfd pins the pid), `None` if it is gone or another
/// program.
fn open_pasta(pid: i32) -> Result<Option<OwnedFd>> {
    let pidfd = match berth_sys::pidfd::open(pid, 0) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(None),
        Err(e) => return Err(Error::io("pidfd_open pasta", format!("/proc/{pid}"), e)),
    };
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    Ok((comm.starts_with("passt") || comm.starts_with("pasta")).then_some(pidfd))
}

/// End the pasta daemon a state record names (`gc` after the owner died):
/// only if `pid` still is pasta started at `start` (field 22 of
/// `/proc/<pid>/stat`), so a reused pid is never signalled.
pub(crate) fn stop_recorded(pid: i32, start: u64) -> Result<()> {
    let Some(pidfd) = open_pasta(pid)? else {
        return Ok(());
    };
    if crate::state::proc_start_time(pid) != Some(start) {
        return Ok(());
    }
    Pasta {
        pid,
        pidfd,
        done: false,
    }
    .stop()
}

impl Drop for Pasta {
    fn drop(&mut self) {
        if !self.done {
            if let Err(e) = self.terminate() {
                tracing::warn!(pasta = self.pid, error = %e, "stopping pasta on drop");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_ports_become_pasta_forwards_and_nothing_else_is_forwarded() {
        let a = args(
            42,
            &[
                PortMapping::tcp(8080, 80),
                PortMapping::udp(5353, 53),
                PortMapping {
                    host_ip: Some(std::net::Ipv4Addr::LOCALHOST),
                    ..PortMapping::tcp(8443, 443)
                },
            ],
            Path::new("/s/pasta.pid"),
        );
        let a: Vec<String> = a.iter().map(|s| s.to_string_lossy().into_owned()).collect();
        assert_eq!(
            a.join(" "),
            "--config-net --quiet --pid /s/pasta.pid -t 8080:80 -t 127.0.0.1/8443:443 \
             -u 5353:53 -T none -U none 42"
        );
        let a = args(7, &[], Path::new("/p"));
        let a: Vec<String> = a.iter().map(|s| s.to_string_lossy().into_owned()).collect();
        assert_eq!(
            a.join(" "),
            "--config-net --quiet --pid /p -t none -u none -T none -U none 7"
        );
    }
}
