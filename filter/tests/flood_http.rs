//! A flood of flows that pipeline long HTTP requests and never get answers: the requests waiting
//! for their responses are charged to the memory budget, so the process stays under 512 MB
//! (about 2.6 GB of request text is sent). Its own test binary, so the peak RSS is its own.

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

#[test]
fn pipelined_requests_without_answers_stay_under_512_mb() {
    let mut e = Engine::new(Config::default(), IntelSet::empty());
    let mut req = b"GET /".to_vec();
    req.extend(std::iter::repeat_n(b'a', 4000));
    req.extend_from_slice(b" HTTP/1.1\r\nHost: flood.example\r\n\r\n");
    let eight: Vec<u8> = req.iter().copied().cycle().take(req.len() * 8).collect();
    let mut pkt = 0u64;
    for i in 0..20_000u32 {
        let src = (0x0a00_0000u32 | i).to_be_bytes();
        let mut seq = 1000u32;
        let mut frame = Vec::with_capacity(40_000);
        PacketBuilder::ipv4(src, [192, 0, 2, 80], 64)
            .tcp(40000, 80, seq, 1024)
            .syn()
            .write(&mut frame, &[])
            .unwrap();
        pkt += 1;
        e.handle(1_000_000_000, pkt, 101, &frame);
        seq += 1;
        for _ in 0..4 {
            frame.clear();
            PacketBuilder::ipv4(src, [192, 0, 2, 80], 64)
                .tcp(40000, 80, seq, 1024)
                .write(&mut frame, &eight)
                .unwrap();
            seq = seq.wrapping_add(eight.len() as u32);
            pkt += 1;
            e.handle(1_000_000_000, pkt, 101, &frame);
        }
        e.take_events(|_| {});
    }
    let (used, cap) = e.memory();
    let rss = peak_rss_mb();
    eprintln!("http flood: peak RSS {rss} MB, budget {used} of {cap}, flows whose app buffers were dropped: {}", e.stats.app_memcap);
    assert!(used <= cap);
    assert!(rss < 512, "peak RSS {rss} MB");
}
