//! `/proc/<pid>/stat` fields (proc_pid_stat(5)): a process's start time
//! (to tell a reused pid from the process recorded) and its state.

/// `/proc/<pid>/stat` read with a 1 KiB first read: the file reports size
/// 0, so `read_to_string` starts with a 32-byte read and doubles, six
/// `read(2)`s for a ~300-byte line; here one read gets it all (proc(5): the
/// line is bounded, the command name at most 64 bytes).
pub fn read_stat(pid: i32) -> Option<String> {
    let mut buf = Vec::with_capacity(1024);
    crate::fs::read_path(std::path::Path::new(&format!("/proc/{pid}/stat")), &mut buf).ok()?;
    String::from_utf8(buf).ok()
}

/// The fields after the command name (field 2, which may contain spaces
/// and parentheses: everything after the last `)`), starting with field 3.
fn after_comm(stat: &str) -> Option<std::str::SplitWhitespace<'_>> {
    Some(stat[stat.rfind(')')? + 1..].split_whitespace())
}

/// Field 22 (`starttime`) of a `/proc/<pid>/stat` line: clock ticks after boot.
pub fn parse_start_time(stat: &str) -> Option<u64> {
    // After ')': field 3 is state; starttime is field 22 → index 19 here.
    after_comm(stat)?.nth(19)?.parse().ok()
}

/// Field 22 (`starttime`) of `/proc/<pid>/stat`: clock ticks after boot;
/// `None` when the process is gone (or the line unreadable).
pub fn start_time(pid: i32) -> Option<u64> {
    parse_start_time(&read_stat(pid)?)
}

/// [`start_time`] of a process that runs: `None` also when it is a zombie
/// or dead (field 3 `Z` or `X`), from one read of the line.
pub fn live_start_time(pid: i32) -> Option<u64> {
    let stat = read_stat(pid)?;
    if matches!(after_comm(&stat)?.next(), Some("Z") | Some("X")) {
        return None;
    }
    parse_start_time(&stat)
}

/// Field 3 (`state`) of `/proc/<pid>/stat` is `Z` (zombie) or `X` (dead),
/// or the process is gone.
pub fn is_zombie(pid: i32) -> bool {
    let state = read_stat(pid).and_then(|s| after_comm(&s)?.next().map(str::to_string));
    matches!(state.as_deref(), Some("Z") | Some("X") | None)
}

/// The running kernel's release (`uname(2)` `release`, e.g. `6.1.0-18-amd64`).
pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The node name of the caller's UTS namespace (`uname(2)` `nodename`,
/// the hostname); empty if unknown.
pub fn nodename() -> std::ffi::OsString {
    nix::sys::utsname::uname()
        .map(|u| u.nodename().to_os_string())
        .unwrap_or_default()
}

/// The memory page size (`sysconf(_SC_PAGESIZE)`, sysconf(3)); 4096 if
/// unknown.
pub fn page_size() -> usize {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE) {
        Ok(Some(n)) if n > 0 => n as usize,
        _ => 4096,
    }
}

/// The calling thread's id (gettid(2), never fails); the process's pid on
/// its main thread.
pub fn tid() -> i32 {
    nix::unistd::gettid().as_raw()
}

/// Whether the calling thread is its process's main thread (its [`tid`] is
/// the pid, gettid(2)).
pub fn on_main_thread() -> bool {
    tid() == nix::unistd::getpid().as_raw()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_skips_a_command_name_with_spaces_and_parens() {
        let line = "42 (a b) c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start_time(line), Some(987654));
        assert_eq!(parse_start_time("42 (x"), None);
    }

    #[test]
    fn own_process_has_a_start_time_and_is_not_a_zombie() {
        let me = std::process::id() as i32;
        assert!(start_time(me).is_some());
        assert_eq!(live_start_time(me), start_time(me));
        assert_eq!(live_start_time(i32::MAX), None);
        assert!(!is_zombie(me));
        assert!(is_zombie(i32::MAX));
        assert!(kernel_release().starts_with(|c: char| c.is_ascii_digit()));
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(nodename().to_str(), Some(host.trim_end()));
        assert!(page_size().is_power_of_two() && page_size() >= 4096);
    }

    #[test]
    fn thread_ids() {
        let (tid, on_main) = std::thread::spawn(|| (tid(), on_main_thread()))
            .join()
            .unwrap();
        assert!(!on_main, "a spawned thread is not the main thread");
        assert_ne!(tid, std::process::id() as i32);
        assert!(tid > 0);
    }
}
