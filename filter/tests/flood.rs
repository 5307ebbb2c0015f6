//! Floods: millions of new flows, and flows whose holes are never filled. With default settings
//! the whole process stays under 512 MB, and the eviction and refusal counters say what happened.
//! (Its own test binary, so the peak RSS it reads is this flood's.)

#![allow(clippy::unwrap_used)]

use etherparse::PacketBuilder;
use palisade::engine::{Config, Engine};
use palisade_rules::IntelSet;

fn peak_rss_mb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

fn syn(i: u32, seq: u32, payload: &[u8], flags_syn: bool) -> Vec<u8> {
    let src = (0x0a00_0000u32 | (i & 0x00ff_ffff)).to_be_bytes();
    let mut b = PacketBuilder::ipv4(src, [192, 0, 2, 1], 64).tcp(
        1024 + (i >> 24) as u16 * 7 + (i % 50000) as u16,
        443,
        seq,
        1024,
    );
    if flags_syn {
        b = b.syn();
    }
    let mut v = Vec::with_capacity(60 + payload.len());
    b.write(&mut v, payload).unwrap();
    v
}

#[test]
fn floods_stay_under_512_mb() {
    let mut e = Engine::new(Config::default(), IntelSet::empty());
    let mut pkt = 0u64;
    let mut sink = 0usize;
    // 1) 2.5 million new flows (SYNs from distinct sources), within one second of capture time.
    for i in 0..2_500_000u32 {
        pkt += 1;
        let f = syn(i, 1000, &[], true);
        e.handle(1_000_000_000 + i as i64 * 400, pkt, 101, &f);
        if pkt.is_multiple_of(4096) {
            e.take_events(|b| sink += b.len());
        }
    }
    // 2) 300 k flows that open a hole and never fill it: 1400 bytes each, 1 KiB past the start.
    let payload = vec![0x41u8; 1400];
    for i in 0..300_000u32 {
        pkt += 2;
        let id = 0x00c0_0000 + i;
        e.handle(2_000_000_000, pkt - 1, 101, &syn(id, 5000, &[], true));
        e.handle(
            2_000_000_000,
            pkt,
            101,
            &syn(id, 5000 + 1 + 1024, &payload, false),
        );
        if pkt.is_multiple_of(4096) {
            e.take_events(|b| sink += b.len());
        }
    }
    let (used, cap) = e.memory();
    let st = e.stats.clone();
    e.stats_event(3_000_000_000);
    let mut stats_line = String::new();
    e.take_events(|b| {
        stats_line = String::from_utf8_lossy(b)
            .lines()
            .last()
            .unwrap_or("")
            .to_string()
    });
    let rss = peak_rss_mb();
    eprintln!("flood: peak RSS {rss} MB, memory used {used} of {cap}, flows {}, refused segments {}, stats: {stats_line}", e.flow_count(), st.tcp_refused);
    assert!(rss < 512, "peak RSS {rss} MB");
    assert!(used <= cap);
    let v: serde_json::Value = serde_json::from_str(&stats_line).unwrap();
    assert!(
        v["stats"]["flow"]["evicted"].as_u64().unwrap() > 0,
        "flows were evicted: {stats_line}"
    );
    assert!(v["stats"]["flow"]["total"].as_u64().unwrap() >= 2_800_000);
    assert!(v["stats"]["memory"]["refusals"].as_u64().unwrap() + st.tcp_refused > 0);
    // Under the flow flood, reassembly still had room: holes were buffered until the budget ran out.
    assert!(
        st.tcp_refused < 300_000,
        "some hole segments were buffered: {}",
        st.tcp_refused
    );
    assert!(sink > 0);
}
