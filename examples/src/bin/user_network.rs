//! Section 8.3 of the lesson: a user-defined network, where containers find
//! each other by name (`docker network create mynet`, `docker run --network
//! mynet --name db …`, then `ping db` from another container).
//!
//! With `berth::Network` the program creates a network (a bridge with a
//! subnet of its own, no NAT, `ip_forward` untouched) and starts three
//! containers on it: `db-<pid>` with the alias `primary`, `web-<pid>` with
//! the alias `www`, and `cache-<pid>`. From inside `db` it looks up every
//! member's name and alias (busybox `ping`, which prints the address it
//! resolved) and prints the network's section of `db`'s `/etc/hosts`.
//! Then `web` leaves (killed and destroyed): its name and alias disappear
//! from the others' view, looked up again from `db` and `cache`.
//!
//! The names come from each member's own `/etc/hosts`, bound read-only from
//! berth-netsetup's state directory and rewritten in place, line by line,
//! as members come and go (no resolver process; see berth-netsetup's
//! hosts.rs for why). Everything is removed at the end. Run as root with a
//! busybox root filesystem:
//!
//! ```text
//! cargo run -p berth-examples --bin user_network -- /path/to/busybox-rootfs
//! ```

use std::time::Duration;

use std::path::Path;

use berth::{Container, Mount, Network, Rootfs};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let rootfs = std::env::args()
        .nth(1)
        .ok_or("usage: user_network ROOTFS (a busybox root filesystem)")?;
    let pid = std::process::id();
    let net_name = format!("bun{pid}");
    let net = Network::create(&net_name)
        .subnet(&format!("10.214.{}.0/24", pid % 256))
        .masquerade(false)
        .ip_forward(false)
        .create()?;
    let rec = net.record()?.ok_or("the network has no record")?;
    println!(
        "network {} driver {} bridge {} subnet {}",
        rec.name, rec.driver, rec.bridge, rec.subnet
    );
    let resolv = std::env::temp_dir().join(format!("bun{pid}.resolv.conf"));
    std::fs::write(&resolv, "nameserver 127.0.0.1\n")?;
    let result = demo(&rootfs, &net, &resolv);
    let _ = std::fs::remove_file(&resolv);
    net.remove()?;
    let listed = Network::list(None)?.iter().any(|n| n.name == net_name);
    println!(
        "network {net_name} removed: {}",
        if listed { "no" } else { "yes" }
    );
    result
}

/// Start member `id` (with `aliases`) on `net`, idle until killed. Its
/// `/etc/resolv.conf` is `resolv` (names that are not members go to its
/// own loopback, where nothing answers: no query leaves the network).
fn member(
    rootfs: &str,
    net: &Network,
    resolv: &Path,
    id: &str,
    aliases: &[&str],
) -> Res<Container> {
    let mut n = net.clone();
    for a in aliases {
        n = n.alias(a);
    }
    let c = Container::builder(id)
        .rootfs(Rootfs::dir(rootfs))
        .read_only_root(true)
        .mount(Mount::bind(resolv, "/etc/resolv.conf").read_only())
        .network(n)
        .init(true)
        .command(["/bin/sleep", "600"])
        .spawn()?;
    let addr = c.address().ok_or("no address")?;
    println!("started {id} at {addr} aliases [{}]", aliases.join(" "));
    Ok(c)
}

/// From inside `from`: what each of `names` resolves to (`-`: nothing).
fn lookups(from: &Container, who: &str, names: &[&str]) -> Res<()> {
    // busybox ping prints "PING name (address): …" once it has resolved
    // the name, "ping: bad address 'name'" when it could not.
    let script = names
        .iter()
        .map(|n| {
            format!(
                "a=$(ping -c1 -W1 {n} 2>&1 | sed -n 's/^PING [^ ]* (\\([0-9.]*\\)).*/\\1/p'); \
                 echo \"{n} ${{a:--}}\""
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let out = from.exec(["/bin/sh", "-c", &script]).output()?;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        println!("{who} resolves {line}");
    }
    Ok(())
}

/// From inside `from`: the network's section of its `/etc/hosts`.
fn hosts_view(from: &Container, who: &str, network: &str) -> Res<()> {
    let out = from.exec(["/bin/cat", "/etc/hosts"]).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let section = text
        .split_once(&format!("# berth network {network}\n"))
        .map(|(_, s)| s)
        .unwrap_or("");
    for l in section.lines().filter(|l| !l.trim().is_empty()) {
        println!("{who} /etc/hosts: {}", l.replace('\t', " "));
    }
    Ok(())
}

fn demo(rootfs: &str, net: &Network, resolv: &Path) -> Res<()> {
    let pid = std::process::id();
    let (db_id, web_id, cache_id) = (
        format!("db-{pid}"),
        format!("web-{pid}"),
        format!("cache-{pid}"),
    );
    let db = member(rootfs, net, resolv, &db_id, &["primary"])?;
    let mut web = member(rootfs, net, resolv, &web_id, &["www"])?;
    let cache = member(rootfs, net, resolv, &cache_id, &[])?;
    let network = net.record()?.ok_or("no record")?.name;
    let names = [
        web_id.as_str(),
        "www",
        cache_id.as_str(),
        db_id.as_str(),
        "primary",
    ];
    lookups(&db, "db", &names)?;
    hosts_view(&db, "db", &network)?;

    // web leaves: its lines go from every other member's hosts file.
    web.kill()?;
    web.wait_timeout(Duration::from_secs(10))?;
    web.destroy()?;
    println!("{web_id} left");
    lookups(&db, "db", &names)?;
    lookups(&cache, "cache", &[web_id.as_str(), "www", "primary"])?;
    hosts_view(&db, "db", &network)?;
    for mut c in [db, cache] {
        c.kill()?;
        c.wait_timeout(Duration::from_secs(10))?;
        c.destroy()?;
    }
    Ok(())
}
