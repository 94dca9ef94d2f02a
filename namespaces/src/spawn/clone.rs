//! The clone itself: `clone3` as a plain fork, or `CLONE_VM | CLONE_VFORK`
//! on a private stack (the fast path), and the child's entry on it.

use std::os::fd::RawFd;

use berth_sys::mman::Mapping;
use berth_sys::signal::{self, SigSet};

use crate::child::{self, ChildPlan};
use crate::sys;
use crate::Namespaces;

/// `clone3` as a fork (no `CLONE_VM`): the child runs [`child::run`] on a
/// copy of this thread's stack and memory; returns the child's pid or the
/// errno.
///
/// # Safety
/// `args` must describe a valid clone; the child only runs
/// async-signal-safe code on its copy of our memory.
pub(super) unsafe fn fork_spawn(
    plan: &ChildPlan<'_>,
    args: &mut sys::CloneArgs,
) -> Result<libc::c_long, i32> {
    // SAFETY: clone3 without CLONE_VM forks this process; the child gets
    // a copy of our memory and runs only async-signal-safe code on it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            args as *mut sys::CloneArgs,
            std::mem::size_of::<sys::CloneArgs>(),
        )
    };
    if ret == 0 {
        // SAFETY: we are the child, right after clone3.
        unsafe { child::run(plan) }
    }
    if ret < 0 {
        Err(sys::errno())
    } else {
        Ok(ret)
    }
}

/// The error text of a failed `clone3`, with the likely reason.
pub(super) fn clone_op(flags: u64, errno: i32) -> String {
    let ns = Namespaces::from_bits_truncate(flags);
    let hint = match errno {
        libc::ENOSYS => " (clone3 needs Linux 5.3)",
        libc::EINVAL => " (CLONE_PIDFD needs 5.2, CLONE_INTO_CGROUP 5.7 and a cgroup v2 directory, CLONE_NEWTIME 5.6)",
        libc::EPERM => " (creating these namespaces needs CAP_SYS_ADMIN or Namespaces::USER)",
        libc::ENOSPC | libc::EUSERS => " (a namespace count limit in /proc/sys/user/max_*_namespaces was hit)",
        _ => "",
    };
    let cg = if flags & sys::CLONE_INTO_CGROUP != 0 {
        " | CLONE_INTO_CGROUP"
    } else {
        ""
    };
    format!("clone3(CLONE_PIDFD{cg}, namespaces {ns:?}){hint}")
}

/// Size of the child's stack in the `CLONE_VM` fast path (only touched pages cost memory).
const VFORK_STACK: usize = 1 << 20;

/// The `CLONE_VM` child's stack, mapped once per spawning thread and
/// reused: its parent thread sleeps in `CLONE_VFORK` while the child runs
/// on it, so one thread's spawns never share it. Mapping and unmapping it
/// per spawn cost two syscalls, page faults for every touched page, and,
/// once the process has more than one thread, a TLB shootdown IPI to every
/// other CPU the process ran on at each `munmap` (expensive in a VM). It
/// has a guard page at the bottom (berth-sys's `Mapping::stack`) and is
/// unmapped when the thread exits (no child runs on it then: this thread's
/// spawns returned).
struct VforkStack;

impl VforkStack {
    /// This thread's stack (its lowest byte), mapped on first use; the
    /// errno if `mmap` fails (`EAGAIN` while the thread's locals are being
    /// destroyed).
    fn get() -> std::result::Result<*mut u8, i32> {
        thread_local! {
            static STACK: std::cell::RefCell<Option<Mapping>> = const { std::cell::RefCell::new(None) };
        }
        STACK
            .try_with(|s| {
                let mut s = s.borrow_mut();
                if let Some(m) = s.as_ref() {
                    return Ok(m.as_ptr());
                }
                let m = Mapping::stack(VFORK_STACK)
                    .map_err(|e| e.raw_os_error().unwrap_or(libc::ENOMEM))?;
                let p = m.as_ptr();
                *s = Some(m);
                Ok(p)
            })
            .unwrap_or(Err(libc::EAGAIN))
    }
}

extern "C" fn vfork_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: arg is the &ChildPlan passed by vfork_spawn, alive while the
    // parent sleeps in CLONE_VFORK.
    unsafe { child::run(&*(arg as *const ChildPlan<'_>)) }
}

// The outermost frame of the `CLONE_VM` child, where `clone3_on_stack`'s
// child jumps: `entry(arg)` (r13, r12), then `exit` with its value. Its
// unwind info marks the end of the stack (`.cfi_undefined rip`, as glibc's
// clone does), so an unwinder walking the child's stack — a panic's
// backtrace (RUST_BACKTRACE=1) — stops here instead of reading the
// parent's frame layout past the top of the stack (where it faulted).
#[cfg(target_arch = "x86_64")]
std::arch::global_asm!(
    ".pushsection .text.berth_namespaces_vfork_start,\"ax\",@progbits",
    ".globl berth_namespaces_vfork_start",
    ".hidden berth_namespaces_vfork_start",
    ".type berth_namespaces_vfork_start,@function",
    "berth_namespaces_vfork_start:",
    ".cfi_startproc",
    ".cfi_undefined rip",
    "xor ebp, ebp",
    "mov rdi, r12",
    "call r13",
    "mov edi, eax",
    "mov eax, 60", // SYS_exit
    "syscall",
    "ud2",
    ".cfi_endproc",
    ".size berth_namespaces_vfork_start, .-berth_namespaces_vfork_start",
    ".popsection",
);

#[cfg(target_arch = "x86_64")]
extern "C" {
    /// The child's entry above; never called from Rust, only jumped to.
    fn berth_namespaces_vfork_start() -> !;
}

/// `clone3` with `args` on a new stack (`args.stack`/`stack_size`), running
/// `entry(arg)` in the child, which never returns from it (it execs or
/// exits; should it return, the child `_exit`s with its value). Returns
/// the child's pid, or -1 with errno set. glibc has no public clone3
/// wrapper, and a child of `CLONE_VM` must not return through the parent's
/// stack frames, so the child leaves the syscall's asm block straight for
/// `berth_namespaces_vfork_start` (x86_64 syscall ABI: number in rax, args
/// in rdi/rsi, rcx and r11 clobbered; the child starts with rax = 0 and
/// rsp = stack top, r12/r13 preserved).
///
/// # Safety
/// `args` must describe a valid clone with a mapped stack; `entry` must not
/// return into anything but the code here.
#[cfg(target_arch = "x86_64")]
unsafe fn clone3_on_stack(
    args: &mut sys::CloneArgs,
    entry: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    arg: *mut libc::c_void,
) -> libc::c_long {
    let ret: libc::c_long;
    // SAFETY: see the function's contract; the child path never falls
    // through (exit syscall, then ud2).
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            // Child: new stack (16-byte aligned top), no frame to return to.
            "jz {start}",
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") args as *mut sys::CloneArgs,
            in("rsi") std::mem::size_of::<sys::CloneArgs>(),
            in("r12") arg,
            in("r13") entry,
            lateout("rcx") _,
            lateout("r11") _,
            start = sym berth_namespaces_vfork_start,
            options(nostack),
        );
    }
    if ret < 0 {
        // (The parent: the child never gets here.)
        berth_sys::errno::Errno::set_raw(-ret as i32);
        return -1;
    }
    ret
}

/// `CLONE_VM | CLONE_VFORK` added to `args` (pidfd, namespaces, cgroup) on
/// the calling thread's private stack ([`VforkStack`]); returns once the
/// child has exec'd or exited (so the next spawn of this thread may use the
/// stack again). All signals are blocked around it so no handler of ours
/// can run on the shared memory; the child resets handlers and restores the
/// mask just before `execve`.
///
/// # Safety
/// The child only runs async-signal-safe code that writes to nothing of ours
/// but its own stack.
pub(super) unsafe fn vfork_spawn(
    plan: &mut ChildPlan<'_>,
    args: &mut sys::CloneArgs,
    pidfd_out: &mut RawFd,
) -> std::result::Result<libc::c_long, i32> {
    let stack = VforkStack::get()?;
    // No handler of ours may run on the memory the child shares. (Blocking
    // fails only on a bad `how`; the mask given back is then empty.)
    let old = signal::block_all_on_thread().unwrap_or(SigSet::empty());
    plan.orig_mask = Some(*old.as_ref());
    let arg = (plan as *const ChildPlan<'_>)
        .cast_mut()
        .cast::<libc::c_void>();
    #[cfg(target_arch = "x86_64")]
    let r = {
        let _ = &pidfd_out; // args.pidfd already points at it
        args.flags |= (libc::CLONE_VM | libc::CLONE_VFORK) as u64;
        args.stack = stack as u64;
        args.stack_size = VFORK_STACK as u64;
        // SAFETY: a valid clone with this thread's private stack
        // (VforkStack, mapped) and an entry that never returns into our
        // frames; the child runs only async-signal-safe code (the
        // function's contract).
        unsafe { clone3_on_stack(args, vfork_entry, arg) }
    };
    #[cfg(not(target_arch = "x86_64"))]
    let r = {
        // No cgroup fd here (checked by the caller): glibc's clone suffices.
        let flags = libc::CLONE_VM
            | libc::CLONE_VFORK
            | (args.flags as libc::c_int & !(libc::CLONE_VM | libc::CLONE_VFORK))
            | libc::SIGCHLD;
        // SAFETY: the top of this thread's private stack (VforkStack), a
        // valid entry and argument; the child runs only async-signal-safe
        // code (the function's contract).
        unsafe {
            let top = stack.add(VFORK_STACK).cast::<libc::c_void>();
            libc::clone(vfork_entry, top, flags, arg, pidfd_out as *mut RawFd) as libc::c_long
        }
    };
    let e = sys::errno();
    let _ = signal::swap_thread_mask(&old);
    if r < 0 {
        Err(e)
    } else {
        Ok(r)
    }
}
