//! For every capture in `../shared/data/pcaps`, the distinct DNS query names, TLS SNI values and
//! HTTP Host values Palisade emits equal what live tshark extracts, except the differences listed
//! below with their reasons. SNI values inside QUIC Initials are compared as a fourth kind.
//! tshark runs with out-of-order reassembly on, as Wireshark's own reassembly tests do.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use palisade::engine::Config;
use palisade_rules::IntelSet;

use common::{palisade_names, tshark_names};

/// Known, explained differences: (file suffix, kind, value, "only in" side, reason).
const EXPECTED_DIFFS: &[(&str, &str, &str, &str, &str)] = &[
    ("tcpdump/dns-badlabel.pcap", "dns", "<Name too long>", "tshark",
     "a label type 0x40/0x80 is invalid; Palisade raises dns.malformed_data instead of a placeholder name"),
    ("tcpdump/dns_fwdptr.pcap", "dns", "<Name too long>", "tshark",
     "a compression pointer pointing forward is rejected (loop protection); anomaly instead of a placeholder"),
    ("tcpdump/ipv4_invalid_total_length.pcap", "dns", "www.tcpdump.org", "tshark",
     "IPv4 total length 85 exceeds the 84 captured bytes: decoder.ipv4.trunc_pkt, the datagram is not parsed (as Suricata)"),
    ("wireshark/challenge01_ooo_stream.pcapng.gz", "host", "25th.syn-bit.nl", "tshark",
     "HTTP inside TLS 1.3, which tshark decrypts with the keys in the file's Decryption Secrets Block"),
    ("wireshark/communityid.pcap.gz", "dns", "sh1.iijlab.net", "tshark",
     "the DNS packet is quoted inside an ICMPv6 Destination Unreachable; quoted packets are not traffic"),
    ("suricata-verify/uricontent__detect-uricontent-04/input.pcap", "host", "www.ExAmPlE.cOM", "palisade",
     "an HTTP request sent from port 53: tshark dissects it as DNS by port, Palisade detects HTTP by content (Suricata's case expects the request)"),
    ("tcpdump/quic_vn.pcap", "qsni", "localhost", "palisade",
     "after Version Negotiation the client retries with a v1 Initial; tshark keeps the connection's first (grease) version and does not decrypt it"),
    ("wireshark/dns_port.pcap", "dns", "us.pool.ntp.org", "tshark",
     "DNS on UDP ports 65282/65333, found by tshark's heuristic; Palisade parses DNS on 53/5353/5355 (Suricata's default is 53)"),
];

#[test]
fn names_equal_tshark_on_every_capture() {
    let Some(data) = common::shared_data() else {
        return;
    };
    if !common::have_tool("tshark") {
        return;
    }
    let files = common::captures(&data.join("pcaps"));
    assert!(files.len() > 100, "{} captures", files.len());
    let mut diffs = Vec::new();
    let mut compared = [0usize; 4];
    for f in &files {
        let Some(t) = tshark_names(f) else { continue };
        let p = palisade_names(f);
        for (i, k) in ["dns", "sni", "host", "qsni"].into_iter().enumerate() {
            let empty = BTreeSet::new();
            let (a, b) = (t.get(k).unwrap_or(&empty), p.get(k).unwrap_or(&empty));
            compared[i] += a.len();
            let rel = f.strip_prefix(&data).unwrap_or(f).display().to_string();
            for v in a.difference(b) {
                diffs.push((rel.clone(), k, v.clone(), "tshark"));
            }
            for v in b.difference(a) {
                diffs.push((rel.clone(), k, v.clone(), "palisade"));
            }
        }
    }
    let unexplained: Vec<_> = diffs
        .iter()
        .filter(|(f, k, v, side)| {
            !EXPECTED_DIFFS
                .iter()
                .any(|(ef, ek, ev, es, _)| f.ends_with(ef) && k == ek && v == ev && side == es)
        })
        .collect();
    let stale: Vec<_> = EXPECTED_DIFFS
        .iter()
        .filter(|(ef, ek, ev, es, _)| {
            !diffs
                .iter()
                .any(|(f, k, v, side)| f.ends_with(ef) && k == ek && v == ev && side == es)
        })
        .collect();
    eprintln!(
        "compared {} files: {} dns names, {} SNI, {} hosts, {} QUIC SNI; {} listed differences",
        files.len(),
        compared[0],
        compared[1],
        compared[2],
        compared[3],
        diffs.len()
    );
    assert!(
        unexplained.is_empty(),
        "unexplained differences (file, kind, value, only in):\n{unexplained:#?}"
    );
    assert!(
        stale.is_empty(),
        "listed differences that no longer occur: {stale:#?}"
    );
    assert!(
        compared[0] > 100 && compared[1] > 5 && compared[2] > 5 && compared[3] > 5,
        "{compared:?}"
    );
}

/// Encapsulations no shared capture holds (MPLS, PPPoE, VXLAN, Geneve; the kernel here makes
/// only VXLAN, tested live in `tunnels_netns`): one DNS query inside each, written to a pcap
/// that tshark and Palisade read independently. Each must find every name, and Palisade
/// must log which tunnel carried the ones inside a tunnel.
#[test]
fn encapsulated_queries_read_as_tshark_reads_them() {
    if !common::have_tool("tshark") {
        return;
    }
    let query = |name: &str, v6: bool| {
        let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        let mut v = Vec::new();
        let b = if v6 {
            etherparse::PacketBuilder::ipv6(
                [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53],
                64,
            )
        } else {
            etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 53], 64)
        };
        // A source port of its own, so each query is a flow of its own.
        b.udp(40000 + name.len() as u16, 53)
            .write(&mut v, &q)
            .unwrap();
        v
    };
    let eth = |et: u16, body: &[u8]| {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        f.extend_from_slice(&et.to_be_bytes());
        f.extend_from_slice(body);
        f
    };
    let udp_tunnel = |port: u16, body: &[u8]| {
        let mut v = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([172, 16, 0, 1], [172, 16, 0, 2], 64)
            .udp(50000, port)
            .write(&mut v, body)
            .unwrap();
        v
    };
    let cat = |a: &[u8], b: &[u8]| [a, b].concat();
    let mut frames: Vec<(&str, Vec<u8>)> = Vec::new();
    // Two labels, IPv4 read from the nibble; one IPv6 explicit-null label; behind a VLAN tag.
    frames.push((
        "mpls-v4.example",
        eth(
            0x8847,
            &cat(
                &[0, 0x10, 0x00, 0xff, 0, 0x20, 0x01, 0xff],
                &query("mpls-v4.example", false),
            ),
        ),
    ));
    frames.push((
        "mpls-v6.example",
        eth(
            0x8847,
            &cat(&[0, 0, 0x21, 0xff], &query("mpls-v6.example", true)),
        ),
    ));
    frames.push((
        "vlan-mpls.example",
        eth(
            0x8100,
            &cat(
                &[0, 7, 0x88, 0x47, 0, 0x10, 0x01, 0xff],
                &query("vlan-mpls.example", false),
            ),
        ),
    ));
    // PPPoE sessions carrying IPv4 and IPv6.
    for (name, v6) in [("pppoe-v4.example", false), ("pppoe-v6.example", true)] {
        let ip = query(name, v6);
        let len = (ip.len() + 2) as u16;
        let mut h = vec![0x11, 0x00, 0x00, 0x2a];
        h.extend_from_slice(&len.to_be_bytes());
        h.extend_from_slice(if v6 { &[0x00, 0x57] } else { &[0x00, 0x21] });
        frames.push((name, eth(0x8864, &cat(&h, &ip))));
    }
    frames.push((
        "vxlan.example",
        udp_tunnel(
            4789,
            &cat(
                &[0x08, 0, 0, 0, 0, 0, 42, 0],
                &eth(0x0800, &query("vxlan.example", false)),
            ),
        ),
    ));
    frames.push((
        "geneve.example",
        udp_tunnel(
            6081,
            &cat(
                &[0x00, 0x00, 0x65, 0x58, 0, 0, 42, 0],
                &eth(0x86dd, &query("geneve.example", true)),
            ),
        ),
    ));
    let dir = std::env::temp_dir().join(format!("palisade-encap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("encapsulated.pcap");
    let mut pcap = Vec::new();
    pcap.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    pcap.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    pcap.extend_from_slice(&65535u32.to_le_bytes());
    pcap.extend_from_slice(&1u32.to_le_bytes());
    for (i, (_, f)) in frames.iter().enumerate() {
        pcap.extend_from_slice(&(1_700_000_000u32 + i as u32).to_le_bytes());
        pcap.extend_from_slice(&0u32.to_le_bytes());
        pcap.extend_from_slice(&(f.len() as u32).to_le_bytes());
        pcap.extend_from_slice(&(f.len() as u32).to_le_bytes());
        pcap.extend_from_slice(f);
    }
    std::fs::write(&file, &pcap).unwrap();
    let want: BTreeSet<String> = frames.iter().map(|(n, _)| n.to_string()).collect();
    let t = tshark_names(&file).expect("tshark runs");
    assert_eq!(t.get("dns"), Some(&want), "tshark reads each frame's query");
    let (_, s) = common::replay_files(
        std::slice::from_ref(&file),
        Config::default(),
        IntelSet::empty(),
    );
    let events = common::events(&s);
    let _ = std::fs::remove_dir_all(&dir);
    let mut got = BTreeSet::new();
    for e in events.iter().filter(|e| e["event_type"] == "dns") {
        let name = e["dns"]["queries"][0]["rrname"]
            .as_str()
            .unwrap()
            .to_string();
        let kind = e["tunnel"]["kind"].as_str();
        let want_kind = match name.as_str() {
            "vxlan.example" => Some("vxlan"),
            "geneve.example" => Some("geneve"),
            _ => None,
        };
        assert_eq!(kind, want_kind, "{name}: {e}");
        got.insert(name);
    }
    assert_eq!(got, want, "Palisade reads each frame's query");
    assert!(
        events.iter().all(|e| e["event_type"] != "anomaly"),
        "{events:?}"
    );
}
