//! Tunnelled traffic for real: a VXLAN overlay between a client and a server namespace, the
//! kernel's own VXLAN devices encapsulating it, a gateway between them running `palisade inline`
//! on its FORWARD chain, nginx and dnsmasq behind the tunnel, curl and dig in front of it.
//! Needs root and those tools; with CI=true a missing one fails the test instead of skipping.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

mod common;
mod lab;

use lab::*;

/// What the application layer said of a capture: DNS query names, TLS SNIs, HTTP hosts and
/// URLs, as `palisade replay` logs them (no intel, so nothing blocked).
fn app_events(pcap: &str) -> BTreeSet<String> {
    let out = sh(&format!("{BIN} replay {pcap} --eve -"));
    assert!(
        out.status.success(),
        "{pcap}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|e| match e["event_type"].as_str()? {
            "dns" if e["dns"]["type"] == "request" => {
                Some(format!("dns {}", e["dns"]["queries"][0]["rrname"]))
            }
            "tls" => Some(format!("tls {}", e["tls"]["sni"])),
            "http" => Some(format!(
                "http {} {}",
                e["http"]["hostname"], e["http"]["url"]
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn vxlan_overlay_is_inspected_and_blocked_at_the_gateway_and_never_bypassed() {
    if !ready() || !tools(&["tcpdump", "tshark"]) {
        return;
    }
    let mut lab = Lab::new("vx");
    let (cli, gw, srv) = (lab.ns("c"), lab.ns("g"), lab.ns("s"));
    lab.link(&cli, &["10.79.1.1/24"], &gw, &["10.79.1.254/24"], "1");
    lab.link(&gw, &["10.79.2.254/24"], &srv, &["10.79.2.2/24"], "2");
    must(&format!("ip -n {cli} route add default via 10.79.1.254 && ip -n {srv} route add default via 10.79.2.254"));
    must(&format!(
        "ip netns exec {gw} sysctl -qw net.ipv4.ip_forward=1"
    ));
    // The overlay: VNI 42 between the two ends. The client's end sends every flow from one
    // source port (4789), so the whole overlay is one connection to the gateway's conntrack:
    // a bypass mark set for one inner flow would cover all the others.
    must(&format!(
        "ip -n {cli} link add vx0 type vxlan id 42 local 10.79.1.1 remote 10.79.2.2 dstport 4789 srcport 4789 4790 && ip -n {cli} addr add 192.168.79.1/24 dev vx0 && ip -n {cli} link set vx0 up"
    ));
    must(&format!(
        "ip -n {srv} link add vx0 type vxlan id 42 local 10.79.2.2 remote 10.79.1.1 dstport 4789 && ip -n {srv} addr add 192.168.79.2/24 dev vx0 && ip -n {srv} link set vx0 up"
    ));
    lab.servers(&srv, &["192.168.79.2"]);
    std::fs::write(lab.dir.join("block.txt"), "blocked.example\n").unwrap();
    must(&format!(
        "ip netns exec {gw} {BIN} firewall install --role gateway --queue 11 --fail closed"
    ));
    // The same traffic twice: encapsulated, as it reaches the gateway, and inside the tunnel,
    // as the client's VXLAN device sends it.
    let d = lab.dir.display().to_string();
    let dumps = [
        lab.spawn(
            &format!(
                "ip netns exec {gw} tcpdump -i vb1{} --immediate-mode -U -w {d}/outer.pcap",
                lab.tag
            ),
            "tcpdump-outer.log",
        ),
        lab.spawn(
            &format!("ip netns exec {cli} tcpdump -i vx0 --immediate-mode -U -w {d}/inner.pcap"),
            "tcpdump-inner.log",
        ),
    ];
    wait_until(Duration::from_secs(5), || {
        lab.file("tcpdump-outer.log").contains("listening")
            && lab.file("tcpdump-inner.log").contains("listening")
    });
    let p = lab.palisade(&gw, 11, "", "inline.log");
    let srv_ip = "192.168.79.2";
    // An allowed TLS connection first: once its hellos are parsed it needs no more inspection,
    // which for an untunnelled flow marks it for the kernel's bypass.
    for _ in 0..2 {
        let (rc, code, _) = curl(
            &cli,
            &format!("--resolve ok.example:443:{srv_ip} https://ok.example/"),
        );
        assert_eq!(
            (rc, code.as_str()),
            (0, "200"),
            "allowed name in the tunnel"
        );
    }
    // Then the listed names, inside the same outer connection. Nothing can be sent back into
    // the tunnel, so each is dropped: curl and dig time out.
    let (rc, _, _) = curl(
        &cli,
        &format!("--resolve www.blocked.example:443:{srv_ip} https://www.blocked.example/"),
    );
    assert_eq!(rc, 28, "blocked SNI in the tunnel is dropped");
    let (rc, _, _) = curl(
        &cli,
        &format!("-H 'Host: blocked.example' http://{srv_ip}/"),
    );
    assert_eq!(rc, 28, "blocked Host in the tunnel is dropped");
    let a = dig(&cli, srv_ip, "www.blocked.example");
    assert!(a.contains("timed out"), "no answer: {a}");
    assert_eq!(dig(&cli, srv_ip, "fine.example"), srv_ip, "allowed query");
    let log = lab.file("dnsmasq.log");
    assert!(log.contains("query[A] fine.example"), "{log}");
    assert!(
        !log.contains("blocked.example"),
        "dnsmasq never saw the blocked query: {log}"
    );
    let (rc, code, _) = curl(&cli, &format!("http://{srv_ip}/"));
    assert_eq!(
        (rc, code.as_str()),
        (0, "200"),
        "allowed HTTP in the tunnel"
    );
    // Metrics are published once a second.
    std::thread::sleep(Duration::from_millis(1200));
    let m = metrics(&gw, 9475);
    lab.kill(p);
    for t in dumps {
        lab.stop(t);
    }
    let mut kinds: Vec<String> = lab
        .alerts()
        .iter()
        .map(|a| {
            format!(
                "{} {} {}",
                a["palisade"]["field"].as_str().unwrap(),
                a["palisade"]["value"].as_str().unwrap(),
                a["alert"]["action"].as_str().unwrap()
            )
        })
        .collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(
        kinds,
        [
            "dns.query www.blocked.example blocked",
            "http.hostname blocked.example blocked",
            "tls.sni www.blocked.example blocked",
        ],
        "alerts at the gateway"
    );
    // Alerts name the inner addresses (the flow inside the tunnel is what was judged) and
    // the tunnel's endpoints.
    for a in lab.alerts() {
        assert_eq!(a["src_ip"], "192.168.79.1", "{a}");
        let t = &a["tunnel"];
        assert_eq!(
            (
                t["src_ip"].as_str(),
                t["dest_ip"].as_str(),
                t["kind"].as_str(),
                t["vni"].as_u64()
            ),
            (
                Some("10.79.1.1"),
                Some("10.79.2.2"),
                Some("vxlan"),
                Some(42)
            ),
            "{a}"
        );
    }
    // Every packet was read inside the tunnel, and none was handed to the kernel's bypass.
    let value = |needle: &str| metric(&m, needle);
    let packets = value("palisade_packets_total{queue=\"11\"}");
    assert!(packets > 20, "{m}");
    assert_eq!(
        value("palisade_tunnelled_packets_total{queue=\"11\"}"),
        packets,
        "{m}"
    );
    assert_eq!(value("palisade_bypass_marks_total{queue=\"11\"}"), 0, "{m}");
    assert_eq!(value("palisade_resets_sent_total{queue=\"11\"}"), 0, "{m}");
    assert_eq!(
        value("palisade_sinkhole_answers_total{queue=\"11\"}"),
        0,
        "{m}"
    );

    // Offline: the encapsulated capture gives the application events of the inner one, and
    // tshark reads the same names in it.
    let outer = app_events(&format!("{d}/outer.pcap"));
    let inner = app_events(&format!("{d}/inner.pcap"));
    assert!(outer.contains("tls \"www.blocked.example\""), "{outer:?}");
    assert!(outer.contains("dns \"fine.example\""), "{outer:?}");
    assert_eq!(outer, inner, "events from the tunnel and from inside it");
    let pcap = std::path::PathBuf::from(format!("{d}/outer.pcap"));
    assert_eq!(
        Some(common::palisade_names(&pcap)),
        common::tshark_names(&pcap),
        "tshark"
    );
    must(&format!("ip netns exec {gw} {BIN} firewall uninstall"));
}
