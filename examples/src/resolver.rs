//! Names across the hosts of a VXLAN overlay, for `berth-run`.
//!
//! On one host, members of a user-defined network find each other through
//! their own `/etc/hosts` (berth-netsetup keeps it listing every member of
//! the host's IPAM). A member on another host of an overlay is in that
//! host's IPAM, not this one's, so a hosts file cannot know it. Each host
//! therefore runs a small DNS responder per overlay (`berth-run network
//! serve NAME`, started by `network create`, ended by `network rm`) on its
//! gateway address, port 53/udp, and its members' `/etc/resolv.conf` names
//! that address. A query (after the hosts file missed) is answered:
//! - from this host's IPAM state (`<state>/<network>.json`: every member's
//!   names and address), read at each query, so a member that left is gone
//!   at once;
//! - else by asking the other hosts' responders, at their gateways (the
//!   first address of each member's range), over the overlay itself, with
//!   recursion off (RD = 0): they answer from their own IPAM only, so
//!   queries never loop;
//! - else, for a container's query (RD = 1), by forwarding it to the
//!   host's own resolvers (`/etc/resolv.conf`, loopback ones skipped) and
//!   relaying their answer;
//! - else NXDOMAIN.
//!
//! Answers carry TTL 0: nothing is cached, a name follows its member.
//! RFC 1035 §4 (message format); only A questions get addresses, other
//! types of a member's name get an empty NOERROR answer.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_netsetup::{network_record, Ipam, OverlayMember};

/// DNS port.
const PORT: u16 = 53;
/// How long a peer or a host resolver may take.
const PEER_TIMEOUT: Duration = Duration::from_secs(1);
const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);

/// The responder's pid file: `<state>/<network>.resolver`.
pub fn pid_file(state_dir: &Path, network: &str) -> PathBuf {
    state_dir.join(format!("{network}.resolver"))
}

/// The `resolv.conf` members of `network` get: `<state>/<network>.resolv.conf`.
pub fn resolv_conf(state_dir: &Path, network: &str) -> PathBuf {
    state_dir.join(format!("{network}.resolv.conf"))
}

/// This host's gateway and the other hosts' gateways on overlay `network`.
fn gateways(state_dir: &Path, network: &str) -> Result<(Ipv4Addr, Vec<Ipv4Addr>), String> {
    let r = network_record(state_dir, network)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no network named {network:?}"))?;
    let v = r
        .vxlan
        .as_ref()
        .ok_or_else(|| format!("network {network:?} is not a vxlan overlay"))?;
    let mut members =
        OverlayMember::parse_list(&v.members.join("\n")).map_err(|e| e.to_string())?;
    if let Some(f) = &v.members_file {
        let text = std::fs::read_to_string(f).map_err(|e| format!("read {}: {e}", f.display()))?;
        members.extend(OverlayMember::parse_list(&text).map_err(|e| e.to_string())?);
    }
    let peers = members
        .iter()
        .filter(|m| !m.range.contains(r.gateway))
        .filter_map(|m| m.range.nth(1))
        .collect();
    Ok((r.gateway, peers))
}

/// Start the responder of overlay `network` (`berth-run network serve`,
/// in its own session) and write the members' `resolv.conf`; returns once
/// it listens.
pub fn start(state_dir: &Path, network: &str) -> Result<(), String> {
    let (gateway, _) = gateways(state_dir, network)?;
    let conf = resolv_conf(state_dir, network);
    std::fs::write(&conf, format!("nameserver {gateway}\n"))
        .map_err(|e| format!("write {}: {e}", conf.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["network", "serve", network])
        .env("BERTH_NETWORK_STATE_DIR", state_dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    // SAFETY: setsid(2) is async-signal-safe; the responder outlives us.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("start the resolver: {e}"))?;
    let end = Instant::now() + Duration::from_secs(10);
    let pidfile = pid_file(state_dir, network);
    loop {
        if pidfile.exists() {
            return Ok(());
        }
        if let Ok(Some(st)) = child.try_wait() {
            let mut e = String::new();
            if let Some(mut p) = child.stderr.take() {
                use std::io::Read;
                let _ = p.read_to_string(&mut e);
            }
            let _ = std::fs::remove_file(&conf);
            return Err(format!(
                "the resolver of {network:?} exited ({st}): {}",
                e.trim()
            ));
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(&conf);
            return Err(format!("the resolver of {network:?} did not start"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// End the responder of `network` (only a process whose command line is
/// `… network serve <network>`) and remove its files. No responder is fine.
pub fn stop(state_dir: &Path, network: &str) -> Result<(), String> {
    let pidfile = pid_file(state_dir, network);
    if let Ok(text) = std::fs::read_to_string(&pidfile) {
        if let Ok(pid) = text.trim().parse::<i32>() {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let want = format!("\0network\0serve\0{network}\0");
            if cmdline.windows(want.len()).any(|w| w == want.as_bytes()) {
                // SAFETY: kill(2); the pid was just checked to be the responder.
                unsafe { libc::kill(pid, libc::SIGTERM) };
                let end = Instant::now() + Duration::from_secs(5);
                while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < end {
                    let st =
                        std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                    if st
                        .rsplit(')')
                        .next()
                        .is_some_and(|s| s.trim_start().starts_with('Z'))
                    {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    for p in [pidfile, resolv_conf(state_dir, network)] {
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("remove {}: {e}", p.display())),
        }
    }
    Ok(())
}

/// `berth-run network serve NAME`: answer on this host's gateway of
/// overlay `network` until killed.
pub fn serve(state_dir: &Path, network: &str) -> Result<(), String> {
    let (gateway, peers) = gateways(state_dir, network)?;
    let sock = UdpSocket::bind(SocketAddrV4::new(gateway, PORT))
        .map_err(|e| format!("bind {gateway}:{PORT}: {e}"))?;
    let pidfile = pid_file(state_dir, network);
    let tmp = pidfile.with_extension("resolver.tmp");
    std::fs::File::create(&tmp)
        .and_then(|mut f| writeln!(f, "{}", std::process::id()))
        .and_then(|()| std::fs::rename(&tmp, &pidfile))
        .map_err(|e| format!("write {}: {e}", pidfile.display()))?;
    let upstream = host_resolvers(gateway);
    let mut buf = [0u8; 512];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let q = &buf[..n];
        let Some(question) = Question::parse(q) else {
            continue;
        };
        let reply = match local_lookup(state_dir, network, &question.name) {
            Some(addr) => Some(answer(q, &question, Some(addr))),
            None if question.rd => ask(&peers, gateway, q, PEER_TIMEOUT, true)
                .or_else(|| ask(&upstream, gateway, q, FORWARD_TIMEOUT, false)),
            None => None,
        };
        let reply = reply.unwrap_or_else(|| answer(q, &question, None));
        let _ = sock.send_to(&reply, from);
    }
}

/// A parsed DNS question.
struct Question {
    /// Lower case, no trailing dot.
    name: String,
    qtype: u16,
    /// Offset just past the question.
    end: usize,
    /// RD: a container asking (peers ask with recursion off).
    rd: bool,
}

impl Question {
    fn parse(m: &[u8]) -> Option<Question> {
        // A standard query (QR = 0, opcode 0) with one question.
        if m.len() < 12 || m[2] & 0xf8 != 0 || u16::from_be_bytes([m[4], m[5]]) != 1 {
            return None;
        }
        let mut i = 12;
        let mut labels = Vec::new();
        loop {
            let len = *m.get(i)? as usize;
            i += 1;
            if len == 0 {
                break;
            }
            if len > 63 {
                return None;
            }
            labels.push(String::from_utf8_lossy(m.get(i..i + len)?).to_ascii_lowercase());
            i += len;
        }
        let qtype = u16::from_be_bytes([*m.get(i)?, *m.get(i + 1)?]);
        m.get(i + 3)?;
        Some(Question {
            name: labels.join("."),
            qtype,
            end: i + 4,
            rd: m[2] & 0x01 == 1,
        })
    }
}

/// `name`'s address among this host's members (the network's IPAM state,
/// opened and read under its lock at each query: members come and go).
fn local_lookup(state_dir: &Path, network: &str, name: &str) -> Option<Ipv4Addr> {
    let allocations = Ipam::open(state_dir, network).ok()?.allocations().ok()?;
    allocations
        .values()
        .find(|a| a.names.iter().any(|n| n.eq_ignore_ascii_case(name)))
        .map(|a| a.addr)
}

/// The reply to query `q`: `addr` as its A record (other types: no
/// record, NOERROR), or NXDOMAIN when `addr` is `None`.
fn answer(q: &[u8], question: &Question, addr: Option<Ipv4Addr>) -> Vec<u8> {
    let mut r = Vec::with_capacity(question.end + 16);
    r.extend_from_slice(&q[..2]); // id
    let rd = q[2] & 0x01;
    r.push(0x84 | rd); // QR, AA, RD as asked
    r.push(if addr.is_some() { 0x80 } else { 0x83 }); // RA; NXDOMAIN
    let a = u16::from(addr.is_some() && question.qtype == 1);
    for v in [1u16, a, 0, 0] {
        r.extend_from_slice(&v.to_be_bytes());
    }
    r.extend_from_slice(&q[12..question.end]);
    if let (Some(ip), 1) = (addr, a) {
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4]);
        r.extend_from_slice(&ip.octets());
    }
    r
}

/// Ask `servers` in turn (from `gateway`'s address for peers, any for the
/// host's resolvers; `local_only`: recursion off); the first answer that
/// is not NXDOMAIN (or any answer, for the host's resolvers).
fn ask(
    servers: &[Ipv4Addr],
    gateway: Ipv4Addr,
    q: &[u8],
    timeout: Duration,
    local_only: bool,
) -> Option<Vec<u8>> {
    if servers.is_empty() {
        return None;
    }
    let bind = if local_only {
        gateway
    } else {
        Ipv4Addr::UNSPECIFIED
    };
    let sock = UdpSocket::bind((bind, 0)).ok()?;
    sock.set_read_timeout(Some(timeout)).ok()?;
    let mut query = q.to_vec();
    if local_only {
        query[2] &= !0x01;
    }
    let mut buf = [0u8; 512];
    for s in servers {
        if sock.send_to(&query, (*s, PORT)).is_err() {
            continue;
        }
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                break;
            };
            if from.ip() != std::net::IpAddr::V4(*s) || n < 12 || buf[..2] != q[..2] {
                continue;
            }
            let nxdomain = buf[3] & 0x0f == 3;
            if local_only && nxdomain {
                break;
            }
            let mut reply = buf[..n].to_vec();
            // As the container asked: recursion desired.
            reply[2] = (reply[2] & !0x01) | (q[2] & 0x01);
            return Some(reply);
        }
    }
    None
}

/// The host's resolvers (IPv4, not loopback, not `gateway` itself).
fn host_resolvers(gateway: Ipv4Addr) -> Vec<Ipv4Addr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<Ipv4Addr>().ok())
        .filter(|a| !a.is_loopback() && *a != gateway)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for `name`, type `qtype`, id 0x1234, RD set.
    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        q
    }

    #[test]
    fn questions_parse_and_answers_follow_rfc1035() {
        let q = query("Web.Example", 1);
        let question = Question::parse(&q).unwrap();
        assert_eq!((question.name.as_str(), question.qtype), ("web.example", 1));
        assert!(question.rd);
        assert_eq!(question.end, q.len());
        let a = answer(&q, &question, Some(Ipv4Addr::new(10, 1, 2, 3)));
        assert_eq!(&a[..4], &[0x12, 0x34, 0x85, 0x80], "id, QR AA RD, RA");
        assert_eq!(&a[4..12], &[0, 1, 0, 1, 0, 0, 0, 0], "1 question, 1 answer");
        assert_eq!(&a[12..q.len()], &q[12..]);
        assert_eq!(
            &a[q.len()..],
            &[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 10, 1, 2, 3]
        );
        let nx = answer(&q, &question, None);
        assert_eq!((nx[3] & 0x0f, nx[7]), (3, 0), "NXDOMAIN, no answer");
        // A member's name asked for AAAA: NOERROR, no record.
        let q6 = query("web", 28);
        let a6 = answer(
            &q6,
            &Question::parse(&q6).unwrap(),
            Some([10, 1, 2, 3].into()),
        );
        assert_eq!((a6[3] & 0x0f, a6[7], a6.len()), (0, 0, q6.len()));
        // Responses and truncated messages are not questions.
        let mut resp = q.clone();
        resp[2] |= 0x80;
        assert!(Question::parse(&resp).is_none());
        assert!(Question::parse(&q[..q.len() - 1]).is_none());
    }

    #[test]
    fn members_are_found_by_any_of_their_names() {
        let dir = tempfile::tempdir().unwrap();
        // An overlay host's IPAM: its own range, not the overlay's subnet.
        std::fs::write(
            dir.path().join("ov.json"),
            r#"{"subnet":"10.9.1.0/24","gateway":"10.9.1.1","allocations":{"c1":{"addr":"10.9.1.2","names":["c1","www"]},"c2":{"addr":"10.9.1.3"}}}"#,
        )
        .unwrap();
        let d = dir.path();
        assert_eq!(
            local_lookup(d, "ov", "www"),
            Some(Ipv4Addr::new(10, 9, 1, 2))
        );
        assert_eq!(
            local_lookup(d, "ov", "C1"),
            Some(Ipv4Addr::new(10, 9, 1, 2))
        );
        assert_eq!(local_lookup(d, "ov", "c2"), None, "no names, no entry");
        assert_eq!(local_lookup(d, "none", "c1"), None);
    }
}
