//! VM tier: the bridge/veth/nftables path on Debian's stock 6.1 kernel
//! (`scripts/vm-test -p berth-netsetup --test vm`). One focused test: the
//! emulated VM is slow.

mod common;

use berth_netsetup::{Attach, BridgeNetwork, PortMapping};
use common::*;

#[test]
fn attach_and_published_port_on_the_vm_kernel() {
    berth_testkit::vm_only!();
    // The VM's kernel does not auto-load modules on demand (request_module):
    // load what a bridge network needs by hand.
    for m in [
        "veth",
        "bridge",
        "nf_tables",
        "nft_chain_nat",
        "nft_nat",
        "nft_masq",
        "nft_fib_ipv4",
        "nft_fib_inet",
        "nft_ct",
    ] {
        berth_testkit::run_ok("modprobe", &[m]);
    }
    let host = TestNs::new();
    let client = TestNs::new();
    let state = tempfile::tempdir().unwrap();
    host.veth_to(&client, "192.168.78");

    let net = BridgeNetwork::new("vm")
        .bridge("br-vm")
        .subnet("10.206.0.0/24")
        .state_dir(state.path())
        .host_netns(&host.handle)
        .unwrap()
        .ensure()
        .unwrap();
    let ctr = TestNs::new();
    let att = net
        .attach(
            &ctr.handle,
            &Attach::new("vm-web").publish(PortMapping::tcp(18080, 80)),
        )
        .unwrap();
    let addrs = ctr.ip_json(&["addr", "show", "dev", "eth0"]);
    assert!(addrs[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["local"] == "10.206.0.2"));
    let srv = serve_once(listen_in(&ctr.handle, "0.0.0.0:80"));
    assert_eq!(
        talk_from(&client.handle, "192.168.78.1:18080", "vm"),
        "echo:vm"
    );
    assert_eq!(srv.join().unwrap().ip().to_string(), "192.168.78.2");
    let h = att.host_ifname().to_string();
    att.detach().unwrap();
    assert!(!host.link_names().contains(&h));
    net.remove().unwrap();
    assert!(host.nft_tables().is_empty());
    assert!(state_files(state.path()).is_empty());
}

#[test]
fn netns_from_a_pidfd_on_the_vm_kernel() {
    berth_testkit::vm_only!();
    // Debian's 6.1 has no PIDFD_GET_NET_NAMESPACE (6.11): the setns fallback runs.
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};
    // SAFETY: pidfd_open(2) on our own pid; the fd is owned below.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, std::process::id(), 0) };
    assert!(pidfd >= 0);
    // SAFETY: a fresh fd returned by the kernel.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    let ns = berth_netsetup::NetNs::from_pidfd(pidfd.as_fd()).unwrap();
    assert!(ns.is_current());
}
