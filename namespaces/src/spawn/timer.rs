//! The step timer (`BERTH_STEP_TIMES`): where a spawn's time goes.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

use berth_sys::mman::Mapping;

use crate::child;
use crate::step::Step;

/// `CLOCK_MONOTONIC` in ns (the clock the child's stamps read).
pub(super) use berth_sys::time::monotonic_ns;

/// The step timer, on when the environment variable `BERTH_STEP_TIMES`
/// names a file: the child stores a `CLOCK_MONOTONIC` stamp after each
/// phase and step into a shared anonymous mapping (no allocation, no
/// syscall but the vDSO clock read), and after `execve` the parent appends
/// one line per step to that file: microseconds spent, then the step.
pub(super) struct StepTimer {
    /// `slots` u64s shared with the child (`MAP_SHARED`), which stores
    /// into them before `execve`.
    map: Mapping,
    slots: usize,
    path: PathBuf,
}

impl StepTimer {
    pub(super) fn from_env(steps: usize) -> Option<StepTimer> {
        let path = PathBuf::from(std::env::var_os("BERTH_STEP_TIMES")?);
        let slots = steps + 3;
        let map = match Mapping::shared(slots * 8) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "BERTH_STEP_TIMES: mmap failed; no step times");
                return None;
            }
        };
        Some(StepTimer { map, slots, path })
    }

    /// Where the child stores its stamps.
    pub(super) fn slots_ptr(&self) -> *mut u64 {
        self.map.as_ptr().cast()
    }

    pub(super) fn write(&self, t_clone: u64, t_eof: u64, steps: &[Step]) {
        // The child has exec'd (or stopped before exec): the stamps are all in.
        let v: Vec<u64> = (0..self.slots)
            .map(|i| self.map.load_u64(i).unwrap_or(0))
            .collect();
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
