//! Stable-Rust fuzz driver: for each target (or the one named), run every
//! seed in `corpus/<target>/`, then mutate seeds (bit flips, byte sets,
//! inserts, deletes, chunk duplication, splices of two seeds) for
//! `--seconds` per target. A panic saves the input to
//! `artifacts/<target>/crash-<n>` and makes the run exit 1. `--replay`
//! runs the seeds only. No coverage feedback (the code is not instrumented):
//! `scripts/fuzz` uses cargo-fuzz (libFuzzer) and falls back to this driver
//! only when cargo-fuzz cannot be installed, or with `--stable`.
//!
//! ```text
//! stable-fuzz [--seconds N | --replay] [--seed S] [TARGET...]
//! ```

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const MAX_LEN: usize = 64 * 1024;
/// Bytes that matter to the parsers: separators, digits, JSON and tar syntax.
const INTERESTING: &[u8] = b"\0\n\t /.:=,-_{}[]\"0123456789kmgKMG\xff";

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], input: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(len + 1);
                let b = INTERESTING[rng.below(INTERESTING.len())];
                input.insert(i, b);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(16));
                input.drain(i..i + n);
            }
            4 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                let chunk = input[i..i + n].to_vec();
                let at = rng.below(input.len() + 1);
                input.splice(at..at, chunk);
            }
            5 if !seeds.is_empty() => {
                let other = &seeds[rng.below(seeds.len())];
                if !other.is_empty() {
                    let cut = rng.below(len + 1);
                    let from = rng.below(other.len());
                    input.truncate(cut);
                    input.extend_from_slice(&other[from..]);
                }
            }
            _ if len > 0 => {
                // Overwrite a 4-byte window with a boundary number (tar
                // sizes and octal fields, JSON numbers).
                let i = rng.below(len);
                let v: &[u8] = [b"0000", b"7777", b"\xff\xff\xff\xff", b"-1\0\0"][rng.below(4)];
                for (k, b) in v.iter().enumerate() {
                    if i + k < len {
                        input[i + k] = *b;
                    }
                }
            }
            _ => input.push(rng.next() as u8),
        }
    }
    input.truncate(MAX_LEN);
}

fn load(dir: &Path) -> Vec<Vec<u8>> {
    let mut v: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| std::fs::read(e.path()).ok().map(|b| (e.path(), b)))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.into_iter().map(|x| x.1).collect()
}

fn main() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seconds = 10u64;
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    let mut only = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => seconds = it.next().and_then(|v| v.parse().ok()).expect("--seconds N"),
            "--replay" => seconds = 0,
            "--seed" => seed = it.next().and_then(|v| v.parse().ok()).expect("--seed S"),
            t => only.push(t.to_string()),
        }
    }
    // Panics are the findings: keep their messages short and ours.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("panic: {info}");
    }));
    println!("seed {seed}, {seconds} s per target");
    let mut failed = false;
    for (name, f) in berth_fuzz::TARGETS {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        let seeds = load(&here.join("corpus").join(name));
        let mut rng = Rng(seed ^ (name.len() as u64 * 0x9e37_79b9_7f4a_7c15));
        let mut execs = 0u64;
        let mut crashes = 0;
        let run = |input: &[u8], execs: &mut u64| -> bool {
            *execs += 1;
            catch_unwind(AssertUnwindSafe(|| f(input))).is_ok()
        };
        let save = |input: &[u8], n: usize| {
            let d = here.join("artifacts").join(name);
            let _ = std::fs::create_dir_all(&d);
            let p = d.join(format!("crash-{n}"));
            let _ = std::fs::write(&p, input);
            eprintln!("{name}: crash saved to {}", p.display());
        };
        for s in &seeds {
            if !run(s, &mut execs) {
                crashes += 1;
                save(s, crashes);
            }
        }
        let t0 = Instant::now();
        let mut input = Vec::new();
        while t0.elapsed() < Duration::from_secs(seconds) && crashes < 5 {
            if execs.is_multiple_of(64) || input.is_empty() {
                input = if seeds.is_empty() {
                    Vec::new()
                } else {
                    seeds[rng.below(seeds.len())].clone()
                };
            }
            mutate(&mut rng, &seeds, &mut input);
            if !run(&input, &mut execs) {
                crashes += 1;
                save(&input, crashes);
            }
        }
        println!(
            "{name:<16} {} seeds, {execs} executions in {:.1}s ({:.0}/s), {crashes} crashes",
            seeds.len(),
            t0.elapsed().as_secs_f64(),
            execs as f64 / t0.elapsed().as_secs_f64().max(0.001)
        );
        failed |= crashes > 0;
    }
    if failed {
        std::process::exit(1);
    }
}
