//! The `service` program (berth as a library), privileged tier: a service
//! on a user-defined network answers the host on a port published on
//! 127.0.0.1 and a client container by name; an exec runs as `nobody` with
//! its own environment and directory; paused it does not answer, resumed it
//! does; SIGTERM ends it with an exit event; and the network, its bridge,
//! its nft rules and every container's state are gone afterwards, with the
//! host's `ip_forward` unchanged.

mod leftovers;

use leftovers::{leftovers, run_lesson};

#[test]
fn service_answers_by_port_and_name_then_everything_goes() {
    berth_testkit::privileged!();
    let forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let rootfs = berth_testkit::busybox_rootfs().to_str().unwrap();
    let (text, pid) = run_lesson(env!("CARGO_BIN_EXE_service"), &[rootfs]);

    let hello = format!("hello from web-{pid}");
    for line in [
        format!("host got: {hello}"),
        format!("client got: {hello} (exit status: 0)"),
        "exec: uid=65534(nobody) gid=65534(nogroup)".to_string(),
        "exec: /www".to_string(),
        "exec: hi from exec".to_string(),
        format!("after resume: {hello}"),
        "event: Exited".to_string(),
        format!("network bsvc{pid} removed: yes"),
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    assert!(text.contains("while paused: no answer"), "{text}");
    // httpd ended by the SIGTERM the init forwarded (128 + 15).
    assert!(text.contains("service exited: exit status: 143"), "{text}");

    for marker in [
        format!("web-{pid}"),
        format!("client-{pid}"),
        format!("bsvc{pid}"),
    ] {
        let left = leftovers(&marker);
        assert!(left.is_empty(), "left behind: {left:#?}");
    }
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        forward
    );
}
