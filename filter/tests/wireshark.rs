//! Wireshark's reassembly cases (`../shared/data/pcaps/wireshark/suite_follow.py` and
//! `suite_dissection.py`): the streams and names Palisade reassembles equal what those suites
//! expect from tshark.

#![allow(clippy::unwrap_used)]

mod common;

use palisade::engine::{Config, Engine};
use palisade::replay::{self, EveOut, ReplayOpts};
use palisade_rules::IntelSet;

/// Parses the hex dump that suite_follow.py expects for `tcp-badsegments.pcap`.
fn expected_follow(suite: &str) -> Vec<u8> {
    let start = suite.find("Node 1: 10.0.0.2:80\n").expect("expected block")
        + "Node 1: 10.0.0.2:80\n".len();
    let end = start + suite[start..].find("=====").expect("end of block");
    let mut out = Vec::new();
    for line in suite[start..end].lines() {
        // "00000000  47 45 54 20 ...  GET / HT TP/1.1..": offset, then up to 16 hex bytes.
        let hex = &line[10..line.len().min(10 + 49)];
        for h in hex.split_whitespace() {
            out.push(u8::from_str_radix(h, 16).expect("hex byte"));
        }
    }
    out
}

#[test]
fn tcp_badsegments_follows_like_tshark() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let dir = data.join("pcaps/wireshark");
    let suite = std::fs::read_to_string(dir.join("suite_follow.py")).unwrap();
    let want = expected_follow(&suite);
    assert!(want.len() > 300);
    let cfg = Config {
        tap_streams: true,
        ..Config::default()
    };
    let mut e = Engine::new(cfg, IntelSet::empty());
    let opts = ReplayOpts {
        files: vec![dir.join("tcp-badsegments.pcap")],
        eve: EveOut::Memory,
        stats_interval_s: 0,
        progress: false,
    };
    replay::run(&mut e, &opts).unwrap();
    // tshark marks each gap as "[N bytes missing in capture file]\0".
    let mut got = Vec::new();
    for r in e.stream_tap.iter().filter(|r| r.dir == 0) {
        match &r.data {
            Ok(d) => got.extend_from_slice(d),
            Err(n) => {
                got.extend_from_slice(format!("[{n} bytes missing in capture file]").as_bytes());
                got.push(0);
            }
        }
    }
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want)
    );
    // The bad overlap (different bytes) was seen and counted.
    assert!(e.stats.tcp_overlap_diff >= 1, "{:?}", e.stats);
}

#[test]
fn http_ooo_gives_the_five_requests() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let (_, s) = common::replay_files(
        &[data.join("pcaps/wireshark/http-ooo.pcap")],
        Config::default(),
        IntelSet::empty(),
    );
    let reqs: Vec<String> = common::events(&s)
        .iter()
        .filter(|e| e["event_type"] == "http")
        .map(|e| {
            format!(
                "{} {}",
                e["http"]["http_method"].as_str().unwrap(),
                e["http"]["url"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(reqs, ["PUT /1", "GET /2", "PUT /3", "PUT /4", "PUT /5"]);
}

#[test]
fn dns_ooo_first_data_segment_out_of_order() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let (_, s) = common::replay_files(
        &[data.join("pcaps/wireshark/dns-ooo.pcap")],
        Config::default(),
        IntelSet::empty(),
    );
    let names: Vec<String> = common::events(&s)
        .iter()
        .filter(|e| e["event_type"] == "dns")
        .flat_map(|e| e["dns"]["queries"].as_array().cloned().unwrap_or_default())
        .map(|q| q["rrname"].as_str().unwrap().to_string())
        .collect();
    assert!(!names.is_empty());
    assert!(names.iter().all(|n| n == "example.com"), "{names:?}");
}
