//! Rootless networking through pasta: the test binary re-executes itself as
//! uid/gid 65534 inside a network namespace the test made (so pasta's
//! sockets can only reach that namespace: its loopback and a veth pair with
//! a default route to nowhere), and runs a rootless container with
//! `Network::pasta()`. The container reaches TCP and UDP listeners the test
//! opened on the namespace's loopback (through the gateway address, which
//! pasta maps to the host's loopback), and a published port reaches a
//! server inside the container.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

mod common;

use berth::{Container, Network, PortMapping, Rootfs, Stdio};

const INNER: &str = "BERTH_ROOTLESS_PASTA_INNER";
/// The gateway the test namespace's default route names (TEST-NET-2):
/// pasta gives it to the container and maps it to the host's loopback.
const GATEWAY: &str = "198.51.100.1";
const PUBLISHED: u16 = 18080;
/// Set for the third-level process that starts a container and dies
/// without tearing it down.
const CRASH: &str = "BERTH_ROOTLESS_PASTA_CRASH";

/// Processes of the calling user whose name starts with `passt` (pasta
/// runs as `passt` or `passt.avx2`).
fn pasta_processes() -> Vec<u32> {
    // SAFETY: getuid cannot fail.
    let me = unsafe { libc::getuid() };
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
        let uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|u| u.parse::<u32>().ok());
        if comm.starts_with("passt") && uid == Some(me) {
            out.push(pid);
        }
    }
    out
}

/// The run state of `pid` (`S`, `R`, `Z`, …), `None` once it is gone.
fn run_state(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .next()
        .map(str::to_string)
}

/// Gone, or a zombie its new parent (init) has not reaped yet.
fn ended(pid: u32) -> bool {
    matches!(run_state(pid).as_deref(), None | Some("Z") | Some("X"))
}

/// Runs as uid 65534 (only when started by `pasta_inner`): start a
/// container with pasta, print pasta's pid, exit without any teardown.
#[test]
fn pasta_crash_owner() {
    let Some(spec) = std::env::var_os(CRASH) else {
        return;
    };
    let spec = spec.to_string_lossy().into_owned();
    let (state, rootfs) = spec.split_once(':').unwrap();
    let before = pasta_processes();
    let c = Container::builder("pasta-crash")
        .rootfs(Rootfs::dir(rootfs))
        .state_root(state)
        .network(Network::pasta())
        .command(["/bin/sleep", "1000"])
        .spawn()
        .unwrap();
    let mine: Vec<u32> = pasta_processes()
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    println!("PASTA-PID={}", mine[0]);
    std::mem::forget(c);
    std::process::exit(0);
}

/// A TCP server on the loopback: answers one line with `pong:<line>`,
/// returns the peer's address.
fn tcp_server() -> (u16, std::thread::JoinHandle<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let (mut s, peer) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap();
        let line = String::from_utf8_lossy(&buf[..n]).trim().to_string();
        s.write_all(format!("pong:{line}\n").as_bytes()).unwrap();
        peer.ip().to_string()
    });
    (port, h)
}

/// A one-file TFTP server on the loopback (RFC 1350, busybox's `tftp -g`
/// is the container's UDP client): answers a read request with one DATA
/// block and waits for its ACK. Returns the requested name and the peer.
fn udp_server() -> (u16, std::thread::JoinHandle<(String, String)>) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = s.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = [0u8; 512];
        let (n, peer) = s.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..2], &[0, 1], "a read request");
        let name = buf[2..n].split(|b| *b == 0).next().unwrap();
        let name = String::from_utf8_lossy(name).into_owned();
        let mut data = vec![0, 3, 0, 1];
        data.extend_from_slice(format!("udp-ok:{name}\n").as_bytes());
        s.send_to(&data, peer).unwrap();
        let (n, _) = s.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n.min(4)], &[0, 4, 0, 1], "ACK of block 1");
        (name, peer.ip().to_string())
    });
    (port, h)
}

/// Runs as uid 65534 inside the test's netns (only when re-executed by
/// `rootless_container_gets_network_through_pasta`).
#[test]
fn pasta_inner() {
    let Some(spec) = std::env::var_os(INNER) else {
        return;
    };
    let spec = spec.to_string_lossy().into_owned();
    let (state, rootfs) = spec.split_once(':').unwrap();
    // SAFETY: geteuid cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 65534);
    let before = pasta_processes();
    let (tcp_port, tcp) = tcp_server();
    let (udp_port, udp) = udp_server();
    // nc's input stays open until the server has answered and closed:
    // bookworm's pasta (2023-03) does not pass the server's FIN on to a
    // container that half-closed first, and nc would wait for it forever.
    let script = format!(
        "ip route | grep -o 'src [0-9.]*'; \
         (echo out-tcp; sleep 2) | nc {GATEWAY} {tcp_port}; \
         tftp -g -r out-udp -l - {GATEWAY} {udp_port}; \
         echo pub-reply | nc -l -p 80"
    );
    let mut c = Container::builder("pasta-c")
        .rootfs(Rootfs::dir(rootfs))
        .state_root(state)
        .network(Network::pasta().publish(PortMapping::tcp(PUBLISHED, 80)))
        .command(["/bin/sh", "-c", &script])
        .stdin(Stdio::Null)
        .stdout(Stdio::Piped)
        .spawn()
        .unwrap();
    let serving: Vec<u32> = pasta_processes()
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert_eq!(serving.len(), 1, "one pasta serves the container");
    // The published port: pasta listens on the "host" and forwards to the
    // container's port 80 once its server is up (before that, pasta
    // accepts and closes: retry until the answer comes).
    let end = Instant::now() + Duration::from_secs(20);
    let reply = loop {
        let mut got = String::new();
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", PUBLISHED)) {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = s.write_all(b"pub-in\n");
            let _ = s.shutdown(std::net::Shutdown::Write);
            let _ = s.read_to_string(&mut got);
        }
        if !got.is_empty() || Instant::now() > end {
            break got;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(reply, "pub-reply\n");
    let mut out = String::new();
    c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let st = c.wait().unwrap();
    assert!(st.success(), "{st:?}: {out}");
    // pasta copied the namespace's address; the loopback servers saw
    // pasta's own sockets (127.0.0.1), never an outside address.
    assert_eq!(
        out, "src 198.51.100.2\npong:out-tcp\nudp-ok:out-udp\npub-in\n",
        "{out}"
    );
    assert_eq!(tcp.join().unwrap(), "127.0.0.1");
    assert_eq!(
        udp.join().unwrap(),
        ("out-udp".to_string(), "127.0.0.1".to_string())
    );
    c.destroy().unwrap();
    assert!(ended(serving[0]), "pasta ended with the container");
    assert_eq!(std::fs::read_dir(state).unwrap().count(), 0);
    // An owner that dies without teardown: gc ends its pasta.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "pasta_crash_owner",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_remove(INNER)
        .env(CRASH, &spec)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let orphan: u32 = text
        .lines()
        .find_map(|l| l.split("PASTA-PID=").nth(1))
        .unwrap_or_else(|| panic!("{text}{}", String::from_utf8_lossy(&out.stderr)))
        .parse()
        .unwrap();
    assert!(!ended(orphan), "pasta outlives its dead owner until gc");
    let report = berth::gc(Some(std::path::Path::new(state))).unwrap();
    assert_eq!(report.reclaimed, ["pasta-crash"], "{report:?}");
    assert!(ended(orphan), "gc ended the orphaned pasta");
    assert_eq!(std::fs::read_dir(state).unwrap().count(), 0);
    // No pasta to run: a clear error, and nothing left behind.
    std::env::set_var("PATH", "/nonexistent");
    let e = Container::builder("pasta-missing")
        .rootfs(Rootfs::dir(rootfs))
        .state_root(state)
        .network(Network::pasta())
        .command(["/bin/true"])
        .spawn()
        .unwrap_err();
    assert!(e.to_string().contains("cannot run pasta"), "{e}");
    assert_eq!(std::fs::read_dir(state).unwrap().count(), 0);
    println!("ROOTLESS-PASTA-OK");
}

#[test]
fn rootless_container_gets_network_through_pasta() {
    berth_testkit::privileged!();
    if std::env::var_os(INNER).is_some() {
        return;
    }
    if !berth_testkit::run_ok("sh", &["-c", "command -v pasta"]) {
        panic!("pasta is missing: install Debian's passt (scripts/install-deps)");
    }
    // The "host": a netns with only loopback and a veth pair whose end has
    // an address and a default route (pasta copies them); the other end
    // has no address, so nothing sent there goes anywhere.
    let ns = berth_testkit::Netns::new();
    ns.add_uplink("198.51.100.2/24", GATEWAY);

    common::AsNobody::new().run(
        &["ip", "netns", "exec", ns.name()],
        "pasta_inner",
        INNER,
        "ROOTLESS-PASTA-OK",
    );
}
