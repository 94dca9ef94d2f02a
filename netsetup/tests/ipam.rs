//! IPAM under concurrent allocation from several processes (this test binary
//! re-executed as workers) hands out no duplicate address.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::process::Command;

use berth_netsetup::{Ipam, Ipv4Net};

const DIR_ENV: &str = "BERTH_NETSETUP_IPAM_WORKER_DIR";
const ID_ENV: &str = "BERTH_NETSETUP_IPAM_WORKER_ID";
const PER_WORKER: usize = 30;
const WORKERS: usize = 5;

fn ipam(dir: &std::path::Path) -> Ipam {
    let n: Ipv4Net = "10.123.0.0/24".parse().unwrap();
    Ipam::new(dir, "conc", n, Ipv4Addr::new(10, 123, 0, 1)).unwrap()
}

/// Worker half: does nothing unless started by the test below.
#[test]
fn ipam_worker() {
    let (Ok(dir), Ok(id)) = (std::env::var(DIR_ENV), std::env::var(ID_ENV)) else {
        return;
    };
    let ip = ipam(std::path::Path::new(&dir));
    for i in 0..PER_WORKER {
        ip.allocate(&format!("w{id}-c{i}"), None).unwrap();
    }
    // release and re-allocate a few, to mix writes
    for i in 0..5 {
        ip.release(&format!("w{id}-c{i}")).unwrap();
        ip.allocate(&format!("w{id}-r{i}"), None).unwrap();
    }
}

#[test]
fn concurrent_processes_get_no_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..WORKERS)
        .map(|i| {
            Command::new(&exe)
                .args(["--exact", "ipam_worker", "--test-threads=1", "--quiet"])
                .env(DIR_ENV, dir.path())
                .env(ID_ENV, i.to_string())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "an IPAM worker failed");
    }
    let allocs = ipam(dir.path()).allocations().unwrap();
    assert_eq!(allocs.len(), WORKERS * PER_WORKER);
    let addrs: HashSet<Ipv4Addr> = allocs.values().map(|a| a.addr).collect();
    assert_eq!(addrs.len(), allocs.len(), "duplicate address handed out");
    let net: Ipv4Net = "10.123.0.0/24".parse().unwrap();
    for a in &addrs {
        assert!(net.contains(*a));
        assert_ne!(*a, Ipv4Addr::new(10, 123, 0, 0));
        assert_ne!(*a, Ipv4Addr::new(10, 123, 0, 1));
        assert_ne!(*a, Ipv4Addr::new(10, 123, 0, 255));
    }
}
