//! VM tier: the generated programs load and work on Debian's stock 6.1
//! kernel too (run with `scripts/vm-test -p berth-ebpf-probes --test vm`).

mod common;

use std::ffi::CString;
use std::time::Duration;

use berth_ebpf_probes::ExecProbe;
use common::{only_null, run_in_cgroup, test_cgroup, try_open};

#[test]
fn vm_every_program_loads() {
    berth_testkit::vm_only!();
    let cg = test_cgroup("bvml");
    let id = berth_ebpf_probes::cgroup_id(&cg.fd).unwrap();
    let names = berth_ebpf_probes::load_all_programs(id).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(names.len(), 5);
}

#[test]
fn vm_device_filter_and_exec_probe() {
    berth_testkit::vm_only!();
    let cg = test_cgroup("bvmd");
    let f = only_null();
    let mut h = f.attach(&cg.fd).unwrap();
    let null = CString::new("/dev/null").unwrap();
    let zero = CString::new("/dev/zero").unwrap();
    let (_, code) = run_in_cgroup(&cg, || {
        if try_open(&null, libc::O_WRONLY) != 0 {
            return 10;
        }
        if try_open(&zero, libc::O_RDONLY) != libc::EPERM {
            return 11;
        }
        0
    });
    assert_eq!(code, 0, "inside: /dev/null ok, /dev/zero EPERM");
    assert_eq!(try_open(&zero, libc::O_RDONLY), 0, "outside unaffected");
    for _ in 0..10 {
        h.replace(&f).unwrap();
    }
    assert_eq!(
        berth_ebpf_probes::sys::query_cgroup(
            std::os::fd::AsFd::as_fd(&cg.fd),
            berth_ebpf_probes::sys::AttachType::CgroupDevice
        )
        .unwrap()
        .len(),
        1
    );
    h.detach().unwrap();

    let mut probe = ExecProbe::attach(&cg.fd).unwrap();
    let t = CString::new("/bin/true").unwrap();
    let argv = [t.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null::<libc::c_char>()];
    let (pid, code) = run_in_cgroup(&cg, || {
        // SAFETY: valid NULL-terminated argv/envp.
        unsafe { libc::execve(t.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        99
    });
    assert_eq!(code, 0);
    let evs = probe.read(Duration::from_secs(20)).unwrap();
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(evs[0].pid, pid as u32);
    assert_eq!(evs[0].filename, "/bin/true");
}
