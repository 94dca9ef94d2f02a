use super::bpf::{kernel_const_allow, run, FORCE_TRAMPOLINES, TEST_ARCH};
use super::*;

fn nr(name: &str) -> u32 {
    syscall_number(name).unwrap()
}

const ALLOW: u32 = 0x7fff_0000;
const EPERM: u32 = 0x0005_0001;

#[test]
fn default_profile_parses_and_compiles_small() {
    let p = SeccompProfile::docker_default();
    assert_eq!(p.default_action, Action::Errno(1));
    let prog = p
        .compile(&CompileContext::new(CapSet::docker_default()))
        .unwrap();
    assert!(prog.len() < 4096 && prog.len() > 50, "{}", prog.len());
}

#[test]
fn default_profile_semantics() {
    let ctx = CompileContext {
        caps: CapSet::docker_default(),
        kernel: (6, 1),
    };
    let prog = SeccompProfile::docker_default().compile(&ctx).unwrap();
    let r = |name: &str, args: [u64; 6]| run(&prog, TEST_ARCH, nr(name), args);
    for s in [
        "read",
        "write",
        "execve",
        "openat",
        "exit_group",
        "rt_sigreturn",
        "ptrace",
        "arch_prctl",
    ] {
        assert_eq!(r(s, [0; 6]), ALLOW, "{s}");
    }
    for s in [
        "unshare",
        "mount",
        "keyctl",
        "add_key",
        "kexec_load",
        "init_module",
        "reboot",
        "bpf",
        "setns",
        "io_uring_setup",
    ] {
        assert_eq!(r(s, [0; 6]), EPERM, "{s}");
    }
    // clone: plain fork flags allowed, any CLONE_NEW* denied.
    assert_eq!(r("clone", [0x01200011, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(r("clone", [0x01200011 | 0x10000000, 0, 0, 0, 0, 0]), EPERM);
    assert_eq!(r("clone", [0x20000, 0, 0, 0, 0, 0]), EPERM);
    // clone3 is ENOSYS so libc falls back to clone.
    assert_eq!(r("clone3", [0; 6]), 0x0005_0000 | 38);
    // socket: everything but AF_VSOCK.
    assert_eq!(r("socket", [2, 1, 0, 0, 0, 0]), ALLOW);
    assert_eq!(r("socket", [40, 1, 0, 0, 0, 0]), EPERM);
    assert_eq!(
        r("socket", [40 | (1 << 32), 1, 0, 0, 0, 0]),
        ALLOW,
        "64-bit compare"
    );
    // personality: the allowed personas only.
    for v in [0u64, 8, 0x20000, 0x20008, 0xffff_ffff] {
        assert_eq!(r("personality", [v, 0, 0, 0, 0, 0]), ALLOW, "{v:#x}");
    }
    assert_eq!(r("personality", [0x0040000, 0, 0, 0, 0, 0]), EPERM);
    // unknown syscall number and foreign ABIs
    assert_eq!(run(&prog, TEST_ARCH, 1000, [0; 6]), EPERM);
    assert_eq!(
        run(&prog, TEST_ARCH, nr("read") | 0x4000_0000, [0; 6]),
        0x8000_0000,
        "x32"
    );
    assert_eq!(run(&prog, 0x4000_0003, 3, [0; 6]), 0x8000_0000, "i386");
}

#[test]
fn capabilities_unlock_syscalls() {
    let mut caps = CapSet::docker_default();
    caps.insert(caps::Capability::CAP_SYS_ADMIN);
    caps.insert(caps::Capability::CAP_SYS_BOOT);
    let ctx = CompileContext {
        caps,
        kernel: (6, 1),
    };
    let prog = SeccompProfile::docker_default().compile(&ctx).unwrap();
    for s in ["unshare", "mount", "setns", "reboot", "clone3"] {
        assert_eq!(run(&prog, TEST_ARCH, nr(s), [0; 6]), ALLOW, "{s}");
    }
    assert_eq!(
        run(&prog, TEST_ARCH, nr("clone"), [0x10000000, 0, 0, 0, 0, 0]),
        ALLOW
    );
    assert_eq!(run(&prog, TEST_ARCH, nr("init_module"), [0; 6]), EPERM);
    // minKernel: ptrace only from 4.8 on
    let old = SeccompProfile::docker_default()
        .compile(&CompileContext {
            caps: CapSet::docker_default(),
            kernel: (4, 4),
        })
        .unwrap();
    assert_eq!(run(&old, TEST_ARCH, nr("ptrace"), [0; 6]), EPERM);
}

#[test]
fn all_operators_64_bit() {
    let vals: [u64; 9] = [
        0,
        1,
        5,
        0xffff_ffff,
        0x1_0000_0000,
        0x1_0000_0005,
        0x2_0000_0000,
        u64::MAX - 1,
        u64::MAX,
    ];
    let ops = [
        CmpOp::Ne,
        CmpOp::Lt,
        CmpOp::Le,
        CmpOp::Eq,
        CmpOp::Ge,
        CmpOp::Gt,
    ];
    for op in ops {
        for &v in &vals {
            let p = SeccompProfile::new(Action::Errno(7)).rule(
                SyscallRule::new(["read"], Action::Allow)
                    .arg(3, op, v, 0)
                    .unwrap(),
            );
            let prog = p
                .compile(&CompileContext {
                    caps: CapSet::empty(),
                    kernel: (6, 1),
                })
                .unwrap();
            for &x in &vals {
                let want = match op {
                    CmpOp::Ne => x != v,
                    CmpOp::Lt => x < v,
                    CmpOp::Le => x <= v,
                    CmpOp::Eq => x == v,
                    CmpOp::Ge => x >= v,
                    CmpOp::Gt => x > v,
                    CmpOp::MaskedEq => unreachable!(),
                };
                let got = run(&prog, TEST_ARCH, 0, [0, 0, 0, x, 0, 0]) == ALLOW;
                assert_eq!(got, want, "{op:?} {x:#x} vs {v:#x}");
            }
        }
    }
    let p = SeccompProfile::new(Action::Errno(7)).rule(
        SyscallRule::new(["read"], Action::Allow)
            .arg(0, CmpOp::MaskedEq, 0xff00_0000_00ff, 0x1200_0000_0034)
            .unwrap(),
    );
    let prog = p
        .compile(&CompileContext {
            caps: CapSet::empty(),
            kernel: (6, 1),
        })
        .unwrap();
    assert_eq!(
        run(&prog, TEST_ARCH, 0, [0x1234_5678_9a34, 0, 0, 0, 0, 0]),
        ALLOW
    );
    assert_eq!(
        run(&prog, TEST_ARCH, 0, [0x1334_5678_9a34, 0, 0, 0, 0, 0]),
        0x0005_0007
    );
}

#[test]
fn mixed_actions_precedence_and_or_of_same_index() {
    let json = r#"{
      "defaultAction": "SCMP_ACT_ALLOW",
      "syscalls": [
        {"names": ["write"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["write"], "action": "SCMP_ACT_ERRNO", "errnoRet": 28,
         "args": [{"index": 0, "value": 99, "op": "SCMP_CMP_EQ"}]},
        {"names": ["write"], "action": "SCMP_ACT_KILL_PROCESS",
         "args": [{"index": 0, "value": 98, "op": "SCMP_CMP_EQ"}]},
        {"names": ["mkdir"], "action": "SCMP_ACT_TRAP"},
        {"names": ["rmdir"], "action": "SCMP_ACT_LOG"},
        {"names": ["getpid"], "action": "SCMP_ACT_TRACE", "errnoRet": 5},
        {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"},
                  {"index": 1, "value": 15, "op": "SCMP_CMP_EQ"}]},
        {"names": ["no_such_syscall_xyz"], "action": "SCMP_ACT_KILL"}
      ]
    }"#;
    let p = SeccompProfile::from_docker_json(json).unwrap();
    let prog = p
        .compile(&CompileContext {
            caps: CapSet::empty(),
            kernel: (6, 1),
        })
        .unwrap();
    let w = nr("write");
    assert_eq!(run(&prog, TEST_ARCH, w, [1, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(
        run(&prog, TEST_ARCH, w, [99, 0, 0, 0, 0, 0]),
        0x0005_0000 | 28
    );
    assert_eq!(run(&prog, TEST_ARCH, w, [98, 0, 0, 0, 0, 0]), 0x8000_0000);
    assert_eq!(run(&prog, TEST_ARCH, nr("mkdir"), [0; 6]), 0x0003_0000);
    assert_eq!(run(&prog, TEST_ARCH, nr("rmdir"), [0; 6]), 0x7ffc_0000);
    assert_eq!(run(&prog, TEST_ARCH, nr("getpid"), [0; 6]), 0x7ff0_0005);
    let k = nr("kill");
    assert_eq!(run(&prog, TEST_ARCH, k, [1, 9, 0, 0, 0, 0]), EPERM);
    assert_eq!(run(&prog, TEST_ARCH, k, [1, 15, 0, 0, 0, 0]), EPERM);
    assert_eq!(run(&prog, TEST_ARCH, k, [1, 2, 0, 0, 0, 0]), ALLOW);
}

#[test]
fn bad_profiles_are_clear_errors() {
    let cases = [
        (r#"{"defaultAction": "SCMP_ACT_BOGUS"}"#, "SCMP_ACT_BOGUS"),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_FOO"}]}"#,
            "SCMP_ACT_FOO",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
            "index is 6",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_LIKE"}]}]}"#,
            "SCMP_CMP_LIKE",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "op": "SCMP_CMP_EQ"}]}]}"#,
            "value",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}"#,
            "70000",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}"#,
            "SCMP_ARCH_Z80",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_FLY"]}}]}"#,
            "CAP_FLY",
        ),
        (r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#, "SCMP_ACT_NOTIFY"),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ALLOW"}]}"#,
            "names no syscall",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_BOGUS"]}"#,
            "SECCOMP_FILTER_FLAG_BOGUS",
        ),
        (r#"{"defaultAction": "#, "parse"),
    ];
    for (json, needle) in cases {
        let e = SeccompProfile::from_docker_json(json)
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "{json}: {e}");
    }
}

#[cfg(feature = "oci")]
#[test]
fn oci_profile_converts() {
    let json = r#"{
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "architectures": ["SCMP_ARCH_X86_64"],
        "flags": ["SECCOMP_FILTER_FLAG_LOG"],
        "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                     {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]
    }"#;
    let oci: oci_spec::runtime::LinuxSeccomp = serde_json::from_str(json).unwrap();
    let p = SeccompProfile::from_oci(&oci).unwrap();
    assert_eq!(p.default_action, Action::Errno(38));
    assert_eq!(p.flags, FLAG_LOG);
    assert_eq!(p.rules.len(), 2);
    let prog = p
        .compile(&CompileContext {
            caps: CapSet::empty(),
            kernel: (6, 1),
        })
        .unwrap();
    assert_eq!(prog.flags(), FLAG_LOG);
    assert_eq!(run(&prog, TEST_ARCH, nr("read"), [0; 6]), ALLOW);
    assert_eq!(
        run(&prog, TEST_ARCH, nr("personality"), [8, 0, 0, 0, 0, 0]),
        ALLOW
    );
    assert_eq!(
        run(&prog, TEST_ARCH, nr("personality"), [9, 0, 0, 0, 0, 0]),
        0x0005_0000 | 38
    );
}

#[test]
fn syscall_table_is_consistent() {
    assert_eq!(nr("read"), libc::SYS_read as u32);
    assert_eq!(nr("seccomp"), libc::SYS_seccomp as u32);
    assert_eq!(nr("clone3"), libc::SYS_clone3 as u32);
    assert_eq!(nr("io_pgetevents"), 333);
    let mut last = None;
    for (_, n) in table_x86_64::X86_64 {
        assert!(last.is_none_or(|l| l < *n));
        last = Some(*n);
    }
}

#[test]
fn program_size_of_default_profile() {
    let prog = SeccompProfile::docker_default()
        .compile(&CompileContext::new(CapSet::docker_default()))
        .unwrap();
    // Runs of neighbouring syscalls with one result share a leaf: ~170
    // instructions instead of ~2 per syscall.
    eprintln!("default profile: {} instructions", prog.len());
    assert!(prog.len() < 300, "{}", prog.len());
}

/// Reference semantics, straight from the profile: the matching rule with
/// the highest precedence wins (earliest among equals), else the default.
fn reference(p: &SeccompProfile, ctx: &CompileContext, nr: u32, args: [u64; 6]) -> u32 {
    let holds = |c: &ArgCmp| {
        let x = args[c.index as usize];
        match c.op {
            CmpOp::Ne => x != c.value,
            CmpOp::Lt => x < c.value,
            CmpOp::Le => x <= c.value,
            CmpOp::Eq => x == c.value,
            CmpOp::Ge => x >= c.value,
            CmpOp::Gt => x > c.value,
            CmpOp::MaskedEq => x & c.value == c.value_two,
        }
    };
    let mut best: Option<Action> = None;
    for r in &p.rules {
        if !rule_applies(r, ctx) || !r.names.iter().any(|n| syscall_number(n) == Some(nr)) {
            continue;
        }
        let mut seen = [false; 6];
        let same = r
            .args
            .iter()
            .any(|a| std::mem::replace(&mut seen[a.index as usize], true));
        let m = if same {
            r.args.iter().any(holds)
        } else {
            r.args.iter().all(holds)
        };
        if m && best.is_none_or(|b| r.action.precedence() > b.precedence()) {
            best = Some(r.action);
        }
    }
    best.unwrap_or(p.default_action).ret()
}

/// Reference decision for any `seccomp_data`: foreign arches and x32 are
/// killed, then [`reference`].
fn reference_full(
    p: &SeccompProfile,
    ctx: &CompileContext,
    arch: u32,
    nr: u32,
    args: [u64; 6],
) -> u32 {
    if arch != TEST_ARCH || nr >= 0x4000_0000 {
        return Action::KillProcess.ret();
    }
    reference(p, ctx, nr, args)
}

/// Compile `p` both ways: the compact layout (the default) and the
/// trampoline layout (the fallback for profiles too large for 8-bit jumps).
fn both_layouts(p: &SeccompProfile, ctx: &CompileContext) -> [SeccompProgram; 2] {
    let compact = p.compile(ctx).unwrap();
    FORCE_TRAMPOLINES.with(|f| f.set(true));
    let tramp = p.compile(ctx);
    FORCE_TRAMPOLINES.with(|f| f.set(false));
    [compact, tramp.unwrap()]
}

/// Every syscall number up to past the table's end, the x32 and other-arch
/// edges, and a spread of argument values (each argument position, both
/// 32-bit halves): the program's decision equals the reference's.
fn assert_matches_reference(p: &SeccompProfile, ctx: &CompileContext, extra_args: &[[u64; 6]]) {
    let mut arg_sets: Vec<[u64; 6]> = vec![
        [0; 6],
        [8, 1, 0, 0, 0, 0],
        [40, 0, 0, 0, 0, 0],
        [40 | (1 << 32), 0, 0, 0, 0, 0],
        [0x10000000 | 17, 0, 0, 0, 0, 0],
        [0x01200011, 0, 0, 0, 0, 0],
        [0x20000, 0x20008, 0xffff_ffff, 0x1_0000_0000, 5, 6],
        [0xffff_ffff, 9, 15, 99, 98, 97],
        [u64::MAX, u64::MAX, 3, 4, 5, 6],
    ];
    arg_sets.extend_from_slice(extra_args);
    let max = max_syscall_number();
    let mut nrs: Vec<u32> = (0..=max + 70).collect();
    nrs.extend([
        0x3fff_ffff,
        0x4000_0000,
        0x4000_0001,
        0x4000_0000 | 59,
        0x7fff_ffff,
        0xffff_fffe,
        u32::MAX,
    ]);
    for prog in both_layouts(p, ctx) {
        for &nr in &nrs {
            for args in &arg_sets {
                // Foreign arches on a sample of numbers (each check is cheap, the reference is not).
                let arches: &[u32] = if nr % 16 == 0 || nr > max {
                    &[
                        TEST_ARCH,
                        0x4000_0003, /* i386 */
                        0xc000_00b7, /* aarch64 */
                    ]
                } else {
                    &[TEST_ARCH]
                };
                for &arch in arches {
                    assert_eq!(
                        run(&prog, arch, nr, *args),
                        reference_full(p, ctx, arch, nr, *args),
                        "nr {nr:#x} arch {arch:#x} args {args:?} caps {:?} ({} insns)",
                        ctx.caps,
                        prog.len()
                    );
                }
            }
        }
    }
}

#[test]
fn bpf_matches_reference_for_every_syscall_number() {
    let mut admin = CapSet::docker_default();
    admin.insert(caps::Capability::CAP_SYS_ADMIN);
    for caps in [
        CapSet::empty(),
        CapSet::docker_default(),
        admin,
        CapSet::all(),
    ] {
        for kernel in [(4, 4), (6, 1)] {
            let ctx = CompileContext { caps, kernel };
            assert_matches_reference(&SeccompProfile::docker_default(), &ctx, &[]);
        }
    }
}

#[test]
fn mixed_action_profile_matches_reference() {
    // Every action, singletons between equal neighbours (compiled as `jeq`
    // exceptions), runs of `==` rules on one argument with different high
    // halves and duplicates (grouped), a 32-bit masked compare (high half
    // elided), conditional rules that beat unconditional ones, OR-ed
    // comparisons of one argument, and rules on the first and last numbers.
    let json = r#"{
      "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 13,
      "syscalls": [
        {"names": ["read", "write", "open", "close", "stat", "fstat", "lstat", "poll"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["mmap", "munmap", "brk", "rt_sigaction", "ioctl", "pread64"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["mprotect"], "action": "SCMP_ACT_LOG"},
        {"names": ["pwrite64"], "action": "SCMP_ACT_TRAP", "errnoRet": 3},
        {"names": ["readv"], "action": "SCMP_ACT_KILL_PROCESS"},
        {"names": ["writev"], "action": "SCMP_ACT_KILL_THREAD"},
        {"names": ["access"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
        {"names": ["pipe"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        {"names": ["getpid", "getppid"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 4294967296, "op": "SCMP_CMP_EQ"}]},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 4294967295, "op": "SCMP_CMP_EQ"}]},
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22, "args": [{"index": 0, "value": 9, "op": "SCMP_CMP_EQ"}]},
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22, "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 2, "value": 18446744069414584320, "valueTwo": 4294967296, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["kill"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
         "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 15, "op": "SCMP_CMP_EQ"}]},
        {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}, {"index": 1, "value": 5, "op": "SCMP_CMP_LT"}]},
        {"names": ["setns"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, "value": 98, "op": "SCMP_CMP_GE"}]},
        {"names": ["unshare"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 97, "op": "SCMP_CMP_GT"}, {"index": 2, "value": 3, "op": "SCMP_CMP_LE"}]},
        {"names": ["exit_group"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["file_setattr"], "action": "SCMP_ACT_ALLOW"}
      ]
    }"#;
    let p = SeccompProfile::from_docker_json(json).unwrap();
    let ctx = CompileContext {
        caps: CapSet::empty(),
        kernel: (6, 1),
    };
    assert_matches_reference(
        &p,
        &ctx,
        &[
            [1, 15, 0, 0, 0, 0],
            [1, 2, 0, 0, 0, 0],
            [0x7e020000, 0, 1 << 32, 0, 0, 0],
            [0, 0, (1 << 32) | 7, 0, 0, 0],
            [8 | (1 << 32), 9, 0, 0, 0, 0],
            [1 << 32, 0, 0, 0, 0, 0],
            [39, 4, 0, 0, 0, 0],
            [98, 98, 3, 0, 0, 0],
        ],
    );
    // An allow-all profile and one whose default is to kill (it merges with
    // the x32 range).
    assert_matches_reference(&SeccompProfile::new(Action::Allow), &ctx, &[]);
    let kill = SeccompProfile::new(Action::KillProcess)
        .rule(SyscallRule::new(
            ["read", "write", "exit_group"],
            Action::Allow,
        ))
        .rule(SyscallRule::new(["getpid"], Action::Errno(1)));
    assert_matches_reference(&kill, &ctx, &[]);
}

#[test]
fn action_cache_still_proves_unconditional_allows() {
    // Exactly the syscalls allowed whatever their arguments must be provable
    // by the kernel's cache emulator; for the others (argument rules, other
    // actions) the filter has to run. Foreign ABIs are never cached as allowed.
    let ctx = CompileContext {
        caps: CapSet::docker_default(),
        kernel: (6, 1),
    };
    let p = SeccompProfile::docker_default();
    for prog in both_layouts(&p, &ctx) {
        let mut cached = 0;
        for nr in 0..=max_syscall_number() + 70 {
            let rules: Vec<&SyscallRule> = p
                .rules
                .iter()
                .filter(|r| rule_applies(r, &ctx))
                .filter(|r| r.names.iter().any(|n| syscall_number(n) == Some(nr)))
                .collect();
            let unconditional_allow =
                rules.iter().all(|r| r.args.is_empty()) && reference(&p, &ctx, nr, [0; 6]) == ALLOW;
            assert_eq!(
                kernel_const_allow(&prog, TEST_ARCH, nr),
                unconditional_allow,
                "nr {nr} ({} insns)",
                prog.len()
            );
            cached += usize::from(unconditional_allow);
            assert!(!kernel_const_allow(&prog, 0x4000_0003, nr), "i386 {nr}");
            assert!(
                !kernel_const_allow(&prog, TEST_ARCH, nr | 0x4000_0000),
                "x32 {nr}"
            );
        }
        assert!(cached > 250, "{cached}");
    }
}

#[test]
fn compact_layout_is_much_smaller() {
    let ctx = CompileContext {
        caps: CapSet::docker_default(),
        kernel: (6, 1),
    };
    let [compact, tramp] = both_layouts(&SeccompProfile::docker_default(), &ctx);
    eprintln!(
        "default profile: compact {} instructions, trampoline layout {}",
        compact.len(),
        tramp.len()
    );
    assert!(
        compact.len() * 10 < tramp.len() * 6,
        "{} vs {}",
        compact.len(),
        tramp.len()
    );
}

#[test]
fn large_alternating_profile_uses_long_jumps_correctly() {
    // Every other syscall gets a different action: ~400 ranges, a tree far
    // longer than an 8-bit jump, plus argument blocks at the end.
    let mut p = SeccompProfile::new(Action::Errno(1));
    for (i, (name, _)) in table_x86_64::X86_64.iter().enumerate() {
        let action = match i % 3 {
            0 => Action::Allow,
            1 => Action::Errno(i as u16 % 100 + 2),
            _ => Action::Log,
        };
        let mut rule = SyscallRule::new([*name], action);
        if i % 7 == 0 {
            rule = rule.arg(0, CmpOp::Gt, 5, 0).unwrap();
        }
        p = p.rule(rule);
    }
    let ctx = CompileContext {
        caps: CapSet::empty(),
        kernel: (6, 1),
    };
    let prog = p.compile(&ctx).unwrap();
    assert!(prog.len() > 600, "{}", prog.len());
    // Too large for the compact layout's 8-bit jumps: the trampoline layout is used.
    let [_, tramp] = both_layouts(&p, &ctx);
    assert_eq!(prog.instructions(), tramp.instructions());
    for nr in 0..500 {
        for args in [[0u64; 6], [6, 0, 0, 0, 0, 0]] {
            assert_eq!(
                run(&prog, TEST_ARCH, nr, args),
                reference(&p, &ctx, nr, args),
                "nr {nr}"
            );
        }
    }
}

#[test]
fn rules_built_in_code_are_checked_at_compile() {
    let ctx = CompileContext {
        caps: CapSet::empty(),
        kernel: (6, 1),
    };
    let mut rule = SyscallRule::new(["read"], Action::Allow);
    rule.args.push(ArgCmp {
        index: 9,
        op: CmpOp::Eq,
        value: 0,
        value_two: 0,
    });
    let e = SeccompProfile::new(Action::Allow)
        .rule(rule)
        .compile(&ctx)
        .unwrap_err();
    assert!(e.to_string().contains("index 9"), "{e}");
    let e = SeccompProfile::new(Action::Errno(5000))
        .compile(&ctx)
        .unwrap_err();
    assert!(e.to_string().contains("5000"), "{e}");
}

#[test]
fn default_profile_names_are_all_known() {
    // Every name is either an x86_64 syscall or a known other-arch name, so
    // compiling the default profile never logs a warning.
    let p = SeccompProfile::docker_default();
    for r in &p.rules {
        for n in &r.names {
            assert!(
                syscall_number(n).is_some() || OTHER_ARCH_NAMES.contains(&n.as_str()),
                "{n}"
            );
        }
    }
}

/// The program generated ahead of time into `default_x86_64.rs` is exactly
/// what the compiler makes of the default profile for Docker's default
/// capabilities on every kernel from `MIN_KERNEL` on, and `MIN_KERNEL`
/// covers every `minKernel` condition of the profile. When the profile or
/// the compiler changes, regenerate the file with
/// `BERTH_REGENERATE_SECCOMP=1 cargo test -p berth-security precompiled`.
#[test]
fn precompiled_default_program_is_current() {
    let profile = SeccompProfile::docker_default();
    let newest = profile
        .rules
        .iter()
        .flat_map(|r| [r.includes.min_kernel, r.excludes.min_kernel])
        .flatten()
        .max()
        .unwrap_or((0, 0));
    let caps = CapSet::docker_default();
    let compiled = |kernel| profile.compile(&CompileContext { caps, kernel }).unwrap();
    let prog = compiled(newest);
    assert_eq!(
        prog.instructions(),
        compiled((u32::MAX, u32::MAX)).instructions(),
        "the default program differs between kernels newer than every minKernel"
    );
    let current = default_x86_64::MIN_KERNEL == newest
        && default_x86_64::FLAGS == prog.flags()
        && default_x86_64::PROGRAM == prog.instructions().as_slice();
    if current {
        return;
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/seccomp/default_x86_64.rs");
    if std::env::var_os("BERTH_REGENERATE_SECCOMP").is_some() {
        let mut out = String::from(
            "//! Docker's default seccomp profile (`default.json`) compiled for x86_64,\n\
             //! Docker's default capabilities and any kernel from `MIN_KERNEL` on.\n\
             //! GENERATED: `BERTH_REGENERATE_SECCOMP=1 cargo test -p berth-security\n\
             //! precompiled` rewrites it; the test `precompiled_default_program_is_current`\n\
             //! fails while it is stale. Used by `SeccompProfile::docker_default_program`.\n\n",
        );
        out += "/// The newest `minKernel` of the profile's conditions.\n";
        out += &format!("pub(crate) const MIN_KERNEL: (u32, u32) = {newest:?};\n");
        out += "/// `SECCOMP_FILTER_FLAG_*` of the program.\n";
        out += &format!("pub(crate) const FLAGS: u32 = {};\n", prog.flags());
        out += "/// The instructions, `(code, jt, jf, k)`.\n";
        out += "#[rustfmt::skip]\npub(crate) static PROGRAM: &[(u16, u8, u8, u32)] = &[\n";
        for (code, jt, jf, k) in prog.instructions() {
            out += &format!("    (0x{code:04x}, {jt}, {jf}, 0x{k:08x}),\n");
        }
        out += "];\n";
        std::fs::write(path, out).unwrap();
        return;
    }
    panic!(
        "{path} is stale (the default profile or the compiler changed): \
         regenerate it with BERTH_REGENERATE_SECCOMP=1 cargo test -p berth-security precompiled"
    );
}

#[test]
fn docker_default_program_falls_back_to_compiling() {
    let ctx = |caps, kernel| CompileContext { caps, kernel };
    let default = CapSet::docker_default();
    let fewer = CapSet::from_names(["CAP_CHOWN"]).unwrap();
    let more = default.union(CapSet::from_names(["CAP_SYS_ADMIN"]).unwrap());
    for c in [
        ctx(default, (6, 1)),
        ctx(default, (4, 4)),
        ctx(fewer, (6, 1)),
        ctx(more, (6, 1)),
    ] {
        assert_eq!(
            SeccompProfile::docker_default_program(&c)
                .unwrap()
                .instructions(),
            SeccompProfile::docker_default()
                .compile(&c)
                .unwrap()
                .instructions(),
            "{:?}",
            c.kernel
        );
    }
    // Granting CAP_SYS_ADMIN changes the program (mount etc. allowed).
    assert_ne!(
        SeccompProfile::docker_default_program(&ctx(more, (6, 1)))
            .unwrap()
            .instructions(),
        SeccompProfile::docker_default_program(&ctx(default, (6, 1)))
            .unwrap()
            .instructions()
    );
}
