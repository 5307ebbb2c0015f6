//! Verdicts and their explanations: where an inline filter acts, on what, and why.

#![allow(clippy::unwrap_used)]

use etherparse::PacketBuilder;
use palisade::app::tls::{client_hello_record, client_hello_record_ech};
use palisade::engine::{Config, EchPolicy, Engine, Mode, QuicPolicy, Verdict};
use palisade_rules::{Action, IntelBuilder, IntelSet};
use serde_json::Value;

fn intel() -> IntelSet {
    let mut b = IntelBuilder::new();
    b.add_bytes(
        "block.txt",
        b"evil.example\n198.51.100.66\nhttp://shop.example/gate.php\ncloak.example\n",
        Action::Block,
    )
    .unwrap();
    b.add_bytes("allow.txt", b"good.evil.example\n", Action::Allow)
        .unwrap();
    b.add_bytes("audit.txt", b"watch.example\n", Action::Audit)
        .unwrap();
    b.build()
}

fn tcp(
    c: [u8; 4],
    s: [u8; 4],
    from_client: bool,
    seq: u32,
    ack: u32,
    syn: bool,
    p: &[u8],
) -> Vec<u8> {
    let (a, b, sp, dp) = if from_client {
        (c, s, 41000, 443)
    } else {
        (s, c, 443, 41000)
    };
    let mut pb = PacketBuilder::ipv4(a, b, 64).tcp(sp, dp, seq, 65535);
    if syn {
        pb = pb.syn();
    }
    if ack != 0 {
        pb = pb.ack(ack);
    }
    let mut v = Vec::new();
    pb.write(&mut v, p).unwrap();
    v
}

fn dns_query(id: u8, name: &str) -> Vec<u8> {
    let mut q = vec![0, id, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for l in name.split('.') {
        q.push(l.len() as u8);
        q.extend_from_slice(l.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    let mut v = Vec::new();
    PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 53], 64)
        .udp(33000, 53)
        .write(&mut v, &q)
        .unwrap();
    v
}

struct Run {
    verdicts: Vec<Verdict>,
    events: Vec<Value>,
}

fn run(mode: Mode, frames: &[Vec<u8>]) -> Run {
    run_cfg(
        Config {
            mode,
            ..Config::default()
        },
        frames,
    )
}

fn alerts(r: &Run) -> Vec<&Value> {
    r.events
        .iter()
        .filter(|e| e["event_type"] == "alert")
        .collect()
}

fn tls_flow(sni: &str, server: [u8; 4]) -> Vec<Vec<u8>> {
    let c = [10, 0, 0, 1];
    vec![
        tcp(c, server, true, 100, 0, true, &[]),
        tcp(c, server, false, 900, 101, true, &[]),
        tcp(c, server, true, 101, 901, false, &[]),
        tcp(c, server, true, 101, 901, false, &client_hello_record(sni)),
        tcp(
            c,
            server,
            false,
            901,
            400,
            false,
            b"\x16\x03\x03\x00\x05hello",
        ),
    ]
}

#[test]
fn blocked_sni_resets_at_the_client_hello() {
    let r = run(Mode::Block, &tls_flow("www.evil.example", [192, 0, 2, 10]));
    assert_eq!(
        r.verdicts,
        [
            Verdict::Accept,
            Verdict::Accept,
            Verdict::Accept,
            Verdict::Reset,
            Verdict::Reset
        ]
    );
    let a = alerts(&r);
    assert_eq!(a.len(), 1);
    let p = &a[0]["palisade"];
    assert_eq!(
        (
            p["indicator"].as_str(),
            p["list"].as_str(),
            p["line"].as_u64()
        ),
        (Some("evil.example"), Some("block.txt"), Some(1))
    );
    assert_eq!(
        (
            p["field"].as_str(),
            p["value"].as_str(),
            p["precedence"].as_str()
        ),
        (
            Some("tls.sni"),
            Some("www.evil.example"),
            Some("most-specific")
        )
    );
    assert_eq!(p["inline"]["action"], "reset");
    assert_eq!(p["inline"]["pcap_cnt"], 4);
    assert_eq!(p["inline"]["before_server_payload"], true);
    assert_eq!(a[0]["alert"]["action"], "blocked");
}

#[test]
fn allow_list_exception_beats_the_parent_block() {
    let r = run(Mode::Block, &tls_flow("good.evil.example", [192, 0, 2, 10]));
    assert!(r.verdicts.iter().all(|v| *v == Verdict::Accept));
    assert!(alerts(&r).is_empty());
}

#[test]
fn audit_mode_alerts_but_never_blocks() {
    let r = run(Mode::Audit, &tls_flow("www.evil.example", [192, 0, 2, 10]));
    assert!(r.verdicts.iter().all(|v| *v == Verdict::Accept));
    let a = alerts(&r);
    assert_eq!(a[0]["alert"]["action"], "allowed");
    assert_eq!(a[0]["palisade"]["inline"]["enforced"], false);
    // An audit-list hit is `allowed` even in block mode.
    let r = run(Mode::Block, &tls_flow("watch.example", [192, 0, 2, 10]));
    assert!(r.verdicts.iter().all(|v| *v == Verdict::Accept));
    assert_eq!(alerts(&r)[0]["alert"]["action"], "allowed");
    assert_eq!(alerts(&r)[0]["palisade"]["list_action"], "audit");
}

#[test]
fn listed_address_drops_from_the_syn() {
    let r = run(
        Mode::Block,
        &tls_flow("www.fine.example", [198, 51, 100, 66]),
    );
    assert!(
        r.verdicts.iter().all(|v| *v == Verdict::Drop),
        "{:?}",
        r.verdicts
    );
    let a = alerts(&r);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0]["palisade"]["field"], "dest_ip");
    assert_eq!(a[0]["palisade"]["indicator"], "198.51.100.66/32");
    assert_eq!(a[0]["palisade"]["inline"]["pcap_cnt"], 1);
    assert_eq!(a[0]["alert"]["signature_id"], 9_100_005);
}

#[test]
fn dns_sinkhole_acts_on_the_query_only() {
    let r = run(
        Mode::Block,
        &[
            dns_query(1, "a.evil.example"),
            dns_query(2, "fine.example"),
            dns_query(3, "EVIL.example."),
        ],
    );
    assert_eq!(
        r.verdicts,
        [Verdict::Sinkhole, Verdict::Accept, Verdict::Sinkhole]
    );
    let a = alerts(&r);
    assert_eq!(a.len(), 2);
    assert_eq!(a[0]["palisade"]["inline"]["action"], "sinkhole");
    assert_eq!(
        a[1]["palisade"]["value"], "EVIL.example",
        "matched case-insensitively, logged as sent"
    );
    assert_eq!(
        r.events.iter().filter(|e| e["event_type"] == "dns").count(),
        3
    );
}

#[test]
fn cname_cloaking_in_answers_alerts() {
    // Response: www.tracker.example CNAME x.cloak.example, A 192.0.2.1.
    let mut m = vec![0, 9, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
    let q = b"\x03www\x07tracker\x07example\x00";
    m.extend_from_slice(q);
    m.extend_from_slice(&[0, 1, 0, 1]);
    m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 17]);
    m.extend_from_slice(b"\x01x\x05cloak\x07example\x00");
    m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
    let mut v = Vec::new();
    PacketBuilder::ipv4([10, 0, 0, 53], [10, 0, 0, 1], 64)
        .udp(53, 33000)
        .write(&mut v, &m)
        .unwrap();
    let r = run(Mode::Block, &[v]);
    let a = alerts(&r);
    assert_eq!(a.len(), 1);
    assert_eq!(
        (
            a[0]["palisade"]["field"].as_str(),
            a[0]["palisade"]["value"].as_str()
        ),
        (Some("dns.answer"), Some("x.cloak.example"))
    );
}

#[test]
fn http_host_and_url_indicators_reset_the_request() {
    let c = [10, 0, 0, 1];
    let s = [192, 0, 2, 20];
    let req = b"GET /gate.php?id=7 HTTP/1.1\r\nHost: Shop.Example\r\nUser-Agent: x\r\n\r\n";
    let frames = vec![
        tcp(c, s, true, 100, 0, true, &[]),
        tcp(c, s, false, 900, 101, true, &[]),
        tcp(c, s, true, 101, 901, false, req),
    ];
    let r = run(Mode::Block, &frames);
    assert_eq!(r.verdicts[2], Verdict::Reset);
    let a = alerts(&r);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0]["palisade"]["field"], "http.url");
    assert_eq!(a[0]["palisade"]["indicator"], "shop.example/gate.php");
    let http: Vec<_> = r
        .events
        .iter()
        .filter(|e| e["event_type"] == "http")
        .collect();
    assert_eq!(http[0]["http"]["hostname"], "Shop.Example");
}

#[test]
fn quic_sni_in_a_listed_domain_drops_the_initial() {
    let d = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/pcaps/suricata-verify/quic-ietf/input.pcap");
    if !d.exists() {
        assert!(
            std::env::var("CI").is_err(),
            "CI=true but {} is missing",
            d.display()
        );
        return;
    }
    let mut b = IntelBuilder::new();
    b.add_bytes("quic.txt", b"msquic.net\n", Action::Block)
        .unwrap();
    let mut e = Engine::new(Config::default(), b.build());
    let mut r = palisade::capture::CaptureReader::open(&d).unwrap();
    let mut verdicts = Vec::new();
    let mut n = 0;
    while let Some(p) = r.next_packet().unwrap() {
        n += 1;
        verdicts.push(e.handle(p.ts_ns, n, p.linktype, p.data));
    }
    e.finish();
    let mut alerts = Vec::new();
    e.take_events(|b| {
        for l in b.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
            let v: Value = serde_json::from_slice(l).unwrap();
            if v["event_type"] == "alert" {
                alerts.push(v);
            }
        }
    });
    assert_eq!(alerts.len(), 1);
    let p = &alerts[0]["palisade"];
    assert_eq!(
        (
            p["field"].as_str(),
            p["value"].as_str(),
            p["inline"]["action"].as_str()
        ),
        (Some("quic.sni"), Some("msquic.net"), Some("drop"))
    );
    // The Initial that carried the ClientHello is the first dropped packet.
    let first_drop = verdicts.iter().position(|v| *v == Verdict::Drop).unwrap() as u64 + 1;
    assert_eq!(p["inline"]["pcap_cnt"].as_u64(), Some(first_drop));
    assert_eq!(p["inline"]["before_server_payload"], true);
}

fn run_cfg(cfg: Config, frames: &[Vec<u8>]) -> Run {
    let mut e = Engine::new(cfg, intel());
    let verdicts = frames
        .iter()
        .enumerate()
        .map(|(i, f)| e.handle(1_000_000_000 + i as i64, i as u64 + 1, 101, f))
        .collect();
    e.finish();
    let mut events = Vec::new();
    e.take_events(|b| {
        for l in b.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
            events.push(serde_json::from_slice(l).unwrap());
        }
    });
    Run { verdicts, events }
}

#[test]
fn ech_policy_audits_or_resets() {
    let c = [10, 0, 0, 1];
    let s = [192, 0, 2, 10];
    let frames = vec![
        tcp(c, s, true, 100, 0, true, &[]),
        tcp(c, s, false, 900, 101, true, &[]),
        tcp(c, s, true, 101, 901, false, &[]),
        tcp(
            c,
            s,
            true,
            101,
            901,
            false,
            &client_hello_record_ech("public.example"),
        ),
    ];
    let r = run_cfg(Config::default(), &frames);
    assert!(alerts(&r).is_empty(), "ech=allow: nothing to say");
    let r = run_cfg(
        Config {
            ech: EchPolicy::Audit,
            ..Config::default()
        },
        &frames,
    );
    let a = alerts(&r);
    assert_eq!(
        (a.len(), a[0]["alert"]["action"].as_str()),
        (1, Some("allowed"))
    );
    assert_eq!(
        (
            a[0]["palisade"]["policy"].as_str(),
            a[0]["palisade"]["value"].as_str()
        ),
        (Some("ech=audit"), Some("public.example"))
    );
    assert!(r.verdicts.iter().all(|v| *v == Verdict::Accept));
    let r = run_cfg(
        Config {
            ech: EchPolicy::Block,
            ..Config::default()
        },
        &frames,
    );
    assert_eq!(r.verdicts[3], Verdict::Reset);
    assert_eq!(alerts(&r)[0]["palisade"]["policy"], "ech=block");
    let tls: Vec<_> = r
        .events
        .iter()
        .filter(|e| e["event_type"] == "tls")
        .collect();
    assert_eq!(tls[0]["tls"]["ech"], true);
}

fn quic_capture() -> Option<Vec<Vec<u8>>> {
    let d = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/pcaps/suricata-verify/quic-ietf/input.pcap");
    if !d.exists() {
        assert!(
            std::env::var("CI").is_err(),
            "CI=true but {} is missing",
            d.display()
        );
        return None;
    }
    let mut r = palisade::capture::CaptureReader::open(&d).unwrap();
    let mut frames = Vec::new();
    while let Some(p) = r.next_packet().unwrap() {
        // Strip Ethernet so the frames replay as raw IP.
        frames.push(p.data[14..].to_vec());
    }
    Some(frames)
}

#[test]
fn quic_policies() {
    let Some(frames) = quic_capture() else { return };
    // allow: nothing listed, nothing dropped.
    let r = run_cfg(Config::default(), &frames);
    assert!(r.verdicts.iter().all(|v| *v == Verdict::Accept) && alerts(&r).is_empty());
    // downgrade-unknown: this Initial's name is readable, so it passes.
    let r = run_cfg(
        Config {
            quic: QuicPolicy::DowngradeUnknown,
            ..Config::default()
        },
        &frames,
    );
    assert!(r.verdicts.iter().all(|v| *v == Verdict::Accept) && alerts(&r).is_empty());
    // block: the first Initial is dropped and the alert names the policy.
    let r = run_cfg(
        Config {
            quic: QuicPolicy::Block,
            ..Config::default()
        },
        &frames,
    );
    assert_eq!(r.verdicts[0], Verdict::Drop);
    assert_eq!(alerts(&r)[0]["palisade"]["policy"], "quic=block");
    // downgrade-unknown drops a version it cannot read (here 0x1a2a3a4a, a grease version).
    let mut unknown = frames[0].clone();
    let udp = 20 + 8;
    unknown[udp + 1..udp + 5].copy_from_slice(&[0x1a, 0x2a, 0x3a, 0x4a]);
    let r = run_cfg(
        Config {
            quic: QuicPolicy::DowngradeUnknown,
            ..Config::default()
        },
        &[unknown.clone()],
    );
    assert_eq!(r.verdicts, [Verdict::Drop]);
    let a = alerts(&r);
    assert_eq!(
        (
            a[0]["palisade"]["policy"].as_str(),
            a[0]["palisade"]["field"].as_str()
        ),
        (Some("quic=downgrade-unknown"), Some("quic.version"))
    );
    let r = run_cfg(Config::default(), &[unknown]);
    assert_eq!(r.verdicts, [Verdict::Accept], "allow lets it pass");
}
