//! Criterion benchmarks of `berth-security`.
//!
//! - `seccomp_compile/default_profile`: compile the built-in default profile
//!   (already parsed) to BPF for Docker's 14 capabilities. Target < 1 ms.
//!   `seccomp_compile/parse_and_compile_default` adds the JSON parse;
//!   baseline `seccomp_compile/allow_all` compiles a profile with no rules.
//! - `seccomp_install/default_profile`: the `seccomp(SECCOMP_SET_MODE_FILTER)`
//!   call itself, timed with CLOCK_MONOTONIC inside a freshly forked child
//!   (one child per iteration; the fork, exit and wait are *not* counted) and
//!   reported through a pipe. Target < 50 µs. Baselines in the same run:
//!   `seccomp_install/tiny_program` (one ERRNO rule), `seccomp_install/allow_all`
//!   (the smallest program the crate emits: arch check and x32 split),
//!   `seccomp_install/one_instruction` (a raw `ret ALLOW` filter: the
//!   kernel's fixed cost) and `seccomp_install/getppid_floor` (a trivial
//!   syscall measured the same way: the timing floor). The instruction
//!   counts are printed first.
//!
//! Nothing here needs root (no_new_privs makes seccomp unprivileged).
use std::time::Duration;

use berth_security::{Action, CapSet, CompileContext, SeccompProfile, SeccompProgram, SyscallRule};
use criterion::{criterion_group, criterion_main, Criterion};

fn compile(c: &mut Criterion) {
    let ctx = CompileContext::new(CapSet::docker_default());
    let profile = SeccompProfile::docker_default();
    let empty = SeccompProfile::new(Action::Allow);
    let mut g = c.benchmark_group("seccomp_compile");
    g.bench_function("default_profile", |b| {
        b.iter(|| profile.compile(std::hint::black_box(&ctx)).unwrap())
    });
    g.bench_function("parse_and_compile_default", |b| {
        b.iter(|| {
            SeccompProfile::from_docker_json(berth_security::seccomp::DEFAULT_PROFILE_JSON)
                .unwrap()
                .compile(&ctx)
                .unwrap()
        })
    });
    g.bench_function("allow_all", |b| {
        b.iter(|| empty.compile(std::hint::black_box(&ctx)).unwrap())
    });
    g.finish();
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid timespec pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Fork a child that times `op` (async-signal-safe) and reports the nanoseconds.
fn time_in_child(op: &dyn Fn() -> bool) -> Option<Duration> {
    let mut fds = [0; 2];
    // SAFETY: valid array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return None;
    }
    // SAFETY: the child only makes raw syscalls and _exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: raw syscalls only in the child.
        unsafe {
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            let t0 = now_ns();
            let ok = op();
            let dt = now_ns() - t0;
            let v: u64 = if ok { dt } else { u64::MAX };
            libc::write(fds[1], (&v as *const u64).cast(), 8);
            libc::_exit(0);
        }
    }
    // SAFETY: closing our copy of the write end.
    unsafe { libc::close(fds[1]) };
    let mut v: u64 = u64::MAX;
    // SAFETY: reading at most 8 bytes into a u64.
    let n = unsafe { libc::read(fds[0], (&mut v as *mut u64).cast(), 8) };
    // SAFETY: closing our read end, used no more.
    unsafe { libc::close(fds[0]) };
    let mut st = 0;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    (n == 8 && v != u64::MAX).then(|| Duration::from_nanos(v))
}

fn install(c: &mut Criterion) {
    let ctx = CompileContext::new(CapSet::docker_default());
    let default: SeccompProgram = SeccompProfile::docker_default().compile(&ctx).unwrap();
    let tiny = SeccompProfile::new(Action::Allow)
        .rule(SyscallRule::new(["kexec_load"], Action::Errno(1)))
        .compile(&ctx)
        .unwrap();
    let allow_all = SeccompProfile::new(Action::Allow).compile(&ctx).unwrap();
    // `ret SECCOMP_RET_ALLOW`, nothing else.
    let one = [libc::sock_filter {
        code: 0x06,
        jt: 0,
        jf: 0,
        k: 0x7fff_0000,
    }];
    let one_prog = libc::sock_fprog {
        len: 1,
        filter: one.as_ptr() as *mut libc::sock_filter,
    };
    eprintln!(
        "seccomp_install: default_profile {} instructions, tiny_program {}, allow_all {}, one_instruction 1",
        default.len(),
        tiny.len(),
        allow_all.len()
    );
    // Probe once: if fork or seccomp is unavailable, say so and skip.
    // SAFETY: installing a filter in the forked child only.
    if time_in_child(&|| unsafe { default.install() }.is_ok()).is_none() {
        eprintln!("seccomp_install: cannot install a filter in a child here, skipped");
        return;
    }
    let mut g = c.benchmark_group("seccomp_install");
    for (name, prog) in [
        ("default_profile", &default),
        ("tiny_program", &tiny),
        ("allow_all", &allow_all),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // SAFETY: installing a filter in the forked child only.
                    total += time_in_child(&|| unsafe { prog.install() }.is_ok())
                        .expect("seccomp install in child");
                }
                total
            })
        });
    }
    g.bench_function("one_instruction", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // SAFETY: installing a valid one-instruction filter in the forked child only.
                total += time_in_child(&|| unsafe {
                    libc::syscall(
                        libc::SYS_seccomp,
                        1 as libc::c_ulong, // SECCOMP_SET_MODE_FILTER
                        0 as libc::c_ulong,
                        &one_prog as *const libc::sock_fprog,
                    ) == 0
                })
                .expect("seccomp install in child");
            }
            total
        })
    });
    g.bench_function("getppid_floor", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // SAFETY: a trivial syscall.
                total += time_in_child(&|| unsafe { libc::syscall(libc::SYS_getppid) } > 0)
                    .expect("child");
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, compile, install);
criterion_main!(benches);
