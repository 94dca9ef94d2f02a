//! A service on a network of its own, on berth as a library.
//!
//! The program creates a user-defined bridge network ([`berth::Network`]:
//! no masquerade, `ip_forward` left alone, so nothing leaves the host), and
//! starts a web service on it (busybox `httpd` with a read-only root and a
//! tmpfs for its pages) under the alias `web`, its port 8080 published on
//! the host's `127.0.0.1` only. Then:
//!
//! - the host fetches the page through the published port;
//! - a client container on the same network fetches it by name
//!   (`http://web:8080/`, resolved through the `/etc/hosts` berth keeps);
//! - an `exec` into the service runs a command as user `nobody`, with its
//!   own environment and working directory;
//! - the service is paused (the host's request gets no answer) and resumed
//!   (it answers again);
//! - `SIGTERM` stops it, seen as an exit event, and the network is removed.
//!
//! Run as root with a busybox root filesystem (its directory is never
//! written; the network's name, bridge and subnet come from this process's
//! pid):
//!
//! ```text
//! cargo run -p berth-examples --bin service -- /path/to/busybox-rootfs
//! ```

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use berth::{Container, Mount, Network, PortMapping, Rootfs, Signal};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// `GET /` on the host's `127.0.0.1:port`: the response body, or the error
/// (a read timeout while the service is paused).
fn http_get(port: u16, timeout: Duration) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    match resp.split_once("\r\n\r\n") {
        Some((_, body)) => Ok(body.trim().to_string()),
        None => Err(std::io::Error::other(format!("no HTTP response: {resp:?}"))),
    }
}

fn main() -> Res<()> {
    let rootfs = std::env::args()
        .nth(1)
        .ok_or("usage: service ROOTFS (a busybox root filesystem)")?;
    let pid = std::process::id();
    let net_name = format!("bsvc{pid}");
    let net = Network::create(&net_name)
        .subnet(&format!("10.213.{}.0/24", pid % 256))
        .masquerade(false)
        .ip_forward(false)
        .create()?;
    let rec = net.record()?.ok_or("the network has no record")?;
    println!(
        "network {} bridge {} subnet {}",
        rec.name, rec.bridge, rec.subnet
    );
    // Run the demo, then remove the network whatever happened.
    let result = demo(&rootfs, &net);
    net.remove()?;
    let listed = Network::list(None)?.iter().any(|n| n.name == net_name);
    println!(
        "network {net_name} removed: {}",
        if listed { "no" } else { "yes" }
    );
    result
}

fn demo(rootfs: &str, net: &Network) -> Res<()> {
    let pid = std::process::id();
    // A free port on the host's loopback: bind, note, close.
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut web = Container::builder(format!("web-{pid}"))
        .rootfs(Rootfs::dir(rootfs))
        .read_only_root(true)
        .mount(Mount::tmpfs("/www"))
        .network(
            net.clone()
                .alias("web")
                .publish(PortMapping::tcp(port, 8080).host_ip(Ipv4Addr::LOCALHOST)),
        )
        .init(true) // forwards SIGTERM to httpd (pid 1 ignores it)
        .command([
            "/bin/sh",
            "-c",
            "echo \"hello from $(hostname)\" > /www/index.html; exec /bin/busybox httpd -f -p 8080 -h /www",
        ])
        .spawn()?;
    let addr = web.address().ok_or("the service has no address")?;
    println!(
        "service {} at {addr} published on 127.0.0.1:{port}",
        web.id()
    );

    // The host, through the published port (httpd starts a moment later).
    let deadline = Instant::now() + Duration::from_secs(10);
    let page = loop {
        match http_get(port, Duration::from_secs(2)) {
            Ok(page) => break page,
            Err(e) if Instant::now() > deadline => return Err(e.into()),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    println!("host got: {page}");

    // A client container on the same network, by name.
    let out = Container::builder(format!("client-{pid}"))
        .rootfs(Rootfs::dir(rootfs))
        .read_only_root(true)
        .network(net.clone())
        .command(["/bin/wget", "-qO-", "http://web:8080/"])
        .timeout(Duration::from_secs(10))
        .output()?;
    let body = String::from_utf8_lossy(&out.stdout);
    println!("client got: {} ({})", body.trim(), out.status);

    // exec into the service: another user, environment and directory.
    let out = web
        .exec(["/bin/sh", "-c", "id; pwd; echo $GREETING"])
        .user(65534, 65534)
        .env("GREETING", "hi from exec")
        .current_dir("/www")
        .output()?;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        println!("exec: {line}");
    }

    // Paused, it cannot answer; resumed, it does.
    web.pause()?;
    match http_get(port, Duration::from_secs(1)) {
        Ok(page) => println!("while paused: answered {page:?}"),
        Err(e) => println!("while paused: no answer ({e})"),
    }
    web.resume()?;
    println!("after resume: {}", http_get(port, Duration::from_secs(5))?);

    // Stop it: SIGTERM, seen as an exit event.
    let mut events = web.events()?;
    web.signal(Signal::SIGTERM)?;
    for e in events.next(Some(Duration::from_secs(10)))? {
        println!("event: {e:?}");
    }
    println!("service exited: {}", web.wait()?);
    web.destroy()?;
    Ok(())
}
