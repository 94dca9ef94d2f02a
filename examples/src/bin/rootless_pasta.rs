//! Section 5.4 of the lesson: networking for a rootless container, through
//! `pasta` (Debian package `passt`) as rootless podman does.
//!
//! Run as an unprivileged user, with a busybox root filesystem the user
//! owns. The program opens a TCP listener on the host's loopback and starts
//! a rootless container with `Network::pasta()` publishing host port 18080
//! to the container's port 80. The container sends `--mib` MiB to the
//! listener through its gateway address (pasta maps it to the host's
//! loopback), then receives as much on its published port from the host.
//! Both transfers are timed on the host side. Nothing leaves the machine:
//! the only addresses used are the host's loopback and the gateway address
//! pasta intercepts.
//!
//! ```text
//! cargo run -p berth-examples --bin rootless_pasta -- ROOTFS [--mib 256]
//! ```

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use berth::{Container, Network, PortMapping, Rootfs, Stdio};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const PUBLISHED: u16 = 18080;

/// The gateway of the host's default route (`/proc/net/route`): pasta gives
/// the container the same one and maps it to the host's loopback.
fn default_gateway() -> Res<Ipv4Addr> {
    let text = std::fs::read_to_string("/proc/net/route")?;
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() > 2 && f[1] == "00000000" {
            return Ok(Ipv4Addr::from(u32::from_str_radix(f[2], 16)?.swap_bytes()));
        }
    }
    Err("no default route: pasta needs an interface with one to copy".into())
}

fn mb_per_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let rootfs = args
        .next()
        .ok_or("usage: rootless_pasta ROOTFS [--mib N]")?;
    let mut mib = 256usize;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--mib" => mib = args.next().ok_or("--mib needs a number")?.parse()?,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let state = std::env::temp_dir().join(format!("berth-pasta-{}", std::process::id()));
    std::fs::create_dir(&state)?;
    // On error the container's Drop tears it down; its state root goes here.
    let r = run(&rootfs, mib, &state);
    let _ = std::fs::remove_dir_all(&state);
    r
}

fn run(rootfs: &str, mib: usize, state: &std::path::Path) -> Res<()> {
    let gw = default_gateway()?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    // Upload (in the background): dd into nc towards the gateway; its nc
    // may linger (Debian 12's pasta does not always pass the host's FIN on
    // to a container that half-closed first) and dies with the container's
    // init. Download: nc -l on port 80 runs wc -c on the connection, fed
    // from the published port, and answers with the count.
    let script = format!(
        "(dd if=/dev/zero bs=64k count={} 2>/dev/null | nc {gw} {port} >/dev/null 2>&1) & \
         nc -l -p 80 -e wc -c",
        mib * 16
    );
    let mut c = Container::builder("rootless-pasta")
        .rootfs(Rootfs::dir(rootfs))
        .rootless(true)
        .state_root(state)
        .network(Network::pasta().publish(PortMapping::tcp(PUBLISHED, 80)))
        .command(["/bin/sh", "-c", &script])
        .stdin(Stdio::Null)
        .stdout(Stdio::Null)
        .spawn()?;
    println!(
        "container pid {} runs with pasta; gateway {gw} = host loopback",
        c.pid()
    );
    let bytes = mib * 1024 * 1024;

    let (mut s, peer) = listener.accept()?;
    let start = Instant::now();
    let mut buf = vec![0u8; 128 * 1024];
    let mut got = 0;
    loop {
        match s.read(&mut buf)? {
            0 => break,
            n => got += n,
        }
    }
    let up = start.elapsed();
    drop(s);
    println!(
        "container -> host loopback (from {peer}): {got} bytes, {:.0} MB/s",
        mb_per_s(got, up)
    );

    // The container's nc -l is up once a connection gets through.
    let end = Instant::now() + Duration::from_secs(20);
    let mut conn = loop {
        let mut s = TcpStream::connect(("127.0.0.1", PUBLISHED))?;
        s.set_read_timeout(Some(Duration::from_millis(200)))?;
        // pasta accepts before the container listens, then closes: probe.
        let mut probe = [0u8; 1];
        match s.read(&mut probe) {
            Ok(0) if Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Ok(0) => return Err("published port never reached the container".into()),
            _ => break s,
        }
    };
    let chunk = vec![0x5au8; 128 * 1024];
    let start = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        conn.write_all(&chunk[..n])?;
        left -= n;
    }
    conn.shutdown(std::net::Shutdown::Write)?;
    conn.set_read_timeout(None)?;
    let mut count = String::new();
    conn.read_to_string(&mut count)?;
    let down = start.elapsed();
    let received: usize = count.trim().parse().unwrap_or(0);
    println!(
        "host -> published port {PUBLISHED} -> container:80: {received} bytes, {:.0} MB/s",
        mb_per_s(received, down)
    );
    let st = c.wait()?;
    c.destroy()?;
    println!("container {st}; pasta ended, state removed");
    Ok(())
}
