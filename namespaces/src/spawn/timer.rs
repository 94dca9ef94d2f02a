//! The step timer (`BERTH_STEP_TIMES`): where a spawn's time goes.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

use crate::child;
use crate::step::Step;

/// `CLOCK_MONOTONIC` in ns.
pub(super) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid timespec pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The step timer, on when the environment variable `BERTH_STEP_TIMES`
/// names a file: the child stores a `CLOCK_MONOTONIC` stamp after each
/// phase and step into a shared anonymous mapping (no allocation, no
/// syscall but the vDSO clock read), and after `execve` the parent appends
/// one line per step to that file: microseconds spent, then the step.
pub(super) struct StepTimer {
    pub(super) map: *mut u64,
    slots: usize,
    path: PathBuf,
}

impl StepTimer {
    pub(super) fn from_env(steps: usize) -> Option<StepTimer> {
        let path = PathBuf::from(std::env::var_os("BERTH_STEP_TIMES")?);
        let slots = steps + 3;
        // SAFETY: a fresh shared anonymous mapping, owned by the timer.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                slots * 8,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            tracing::warn!("BERTH_STEP_TIMES: mmap failed; no step times");
            return None;
        }
        Some(StepTimer {
            map: map.cast(),
            slots,
            path,
        })
    }

    pub(super) fn write(&self, t_clone: u64, t_eof: u64, steps: &[Step]) {
        // SAFETY: the mapping holds `slots` u64s; the child has exec'd (or
        // stopped before exec), so nobody writes it any more.
        let v = unsafe { std::slice::from_raw_parts(self.map, self.slots) };
        let us = |a: u64, b: u64| b.saturating_sub(a) as f64 / 1000.0;
        let mut out = String::new();
        out.push_str(&format!(
            "{:9.1} clone -> child runs\n",
            us(t_clone, v[child::T_START])
        ));
        out.push_str(&format!(
            "{:9.1} prologue (pdeathsig, sync, ids, joins, hostname, fds)\n",
            us(v[child::T_START], v[child::T_STEPS])
        ));
        let mut prev = v[child::T_STEPS];
        for (i, st) in steps.iter().enumerate() {
            let t = v[child::T_STEPS + 1 + i];
            out.push_str(&format!("{:9.1} {}\n", us(prev, t), st.describe()));
            prev = t;
        }
        let pre_exec = v[child::T_STEPS + 1 + steps.len()];
        out.push_str(&format!(
            "{:9.1} epilogue (close_range, cwd, pdeathsig)\n",
            us(prev, pre_exec)
        ));
        out.push_str(&format!(
            "{:9.1} execve -> parent knows it succeeded\n",
            us(pre_exec, t_eof)
        ));
        out.push_str(&format!(
            "{:9.1} total clone -> EOF\n--\n",
            us(t_clone, t_eof)
        ));
        let r = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| f.write_all(out.as_bytes()));
        if let Err(e) = r {
            tracing::warn!(path = ?self.path, error = %e, "BERTH_STEP_TIMES: write failed");
        }
    }
}

impl Drop for StepTimer {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once.
        unsafe { libc::munmap(self.map.cast(), self.slots * 8) };
    }
}
