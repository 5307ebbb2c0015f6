//! The whole engine (decode, defrag, flows, reassembly, app layer, intel, signatures at every
//! hook, name scoring and NXDOMAIN bursts) on arbitrary frames.
//! Input: repeated [linktype selector u8][time step u8][len u16 le][frame]. Invariants: the
//! memory budget is never exceeded, every event line is valid JSON-ish (starts `{`, ends `}`),
//! and after `finish` all traffic-derived memory is released.
#![no_main]
use libfuzzer_sys::fuzz_target;
use palisade::engine::{Beacon, Burst, Config, DnsTunnel, Engine, NameScoring};
use palisade_rules::sig::{SigSet, SigSetBuilder};
use palisade_rules::{Action, IntelBuilder};

/// Rules for every hook, with the keywords that walk buffers (relative chains, pcre, byte_jump,
/// base64, transforms, flowbits, thresholds).
const RULES: &str = concat!(
    "alert tcp any any -> any any (content:\"GET\"; content:\"HTTP\"; distance:0; within:64; pcre:\"/^.{0,8}\\x0d\\x0a/R\"; sid:1;)\n",
    "drop tcp-pkt any any -> any any (dsize:<64; content:\"|00 01|\"; byte_jump:1,0,relative; isdataat:!1,relative; sid:2;)\n",
    "alert udp any any -> any any (content:\"|01 00|\"; offset:2; depth:2; byte_test:2,>,0,4; flowbits:set,u; sid:3;)\n",
    "alert dns any any -> any any (dns.query; dotprefix; content:\".example\"; endswith; flowbits:isset,u; sid:4;)\n",
    "reject tls any any -> any any (tls.sni; content:\"example\"; ja3.hash; bsize:32; sid:5;)\n",
    "alert tls any any -> any any (tls.cert_subject; content:\"CN=\"; tls.subjectaltname; content:\".\"; sid:6;)\n",
    "alert http any any -> any any (http.method; content:\"POST\"; http.request_body; content:\"=\"; base64_decode:relative; base64_data; content:\"a\"; sid:7;)\n",
    "alert http any any -> any any (flow:to_client; http.stat_code; content:\"200\"; file.data; content:\"<\"; threshold:type limit,track by_src,count 2,seconds 10; sid:8;)\n",
    "alert quic any any -> any any (quic.sni; content:\"a\"; quic.version; bsize:4; sid:9;)\n",
    "alert ip any any -> [10.0.0.0/8,!10.1.0.0/16] any (ip_proto:17; sid:10;)\n",
    "drop pkthdr any any -> any any (decode-event:ipv4.trunc_pkt; sid:11;)\n",
    "alert udp any any -> any any (decode-event:udp.hlen_too_small; sid:12;)\n",
    "alert dns any any -> any any (app-layer-event:dns.malformed_data; sid:13;)\n",
    "alert http any any -> any any (app-layer-event:http.invalid_chunklen; content:\"a\"; sid:14;)\n",
    "alert tcp any any -> any any (stream-event:reassembly_overlap_different_data; sid:15;)\n",
);

/// Built once: building takes far longer than one input.
fn sigs() -> &'static SigSet {
    static S: std::sync::OnceLock<SigSet> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let mut r = SigSetBuilder::default();
        r.add_text("fuzz.rules", RULES);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        r.build()
    })
}

/// The domain model, loaded once (names are scored, and NXDOMAIN answers feed the bursts).
fn names() -> &'static NameScoring {
    static N: std::sync::OnceLock<NameScoring> = std::sync::OnceLock::new();
    N.get_or_init(NameScoring::bundled)
}

fuzz_target!(|data: &[u8]| {
    let mut b = IntelBuilder::new();
    let _ = b.add_bytes("fuzz", b"example.com\n10.0.0.0/8\n192.168.0.0/16\n", Action::Block);
    // Exceptions inside the blocked ranges, and one range listed with both actions.
    let _ = b.add_bytes("allow", b"www.example.com\n10.1.0.0/16\n192.168.0.0/16\n", Action::Allow);
    // Bursts of two names within a long window, so short inputs reach the alert.
    let burst = Some(Burst { count: 2, window_ns: 1 << 50, block: data.len() % 2 == 1 });
    // Beacons from the 4th connection a second apart, likewise (blocking like the tunnels).
    let beacon = Some(Beacon { count: 4, min_interval_ns: 1_000_000_000, block: data.len() % 2 == 1 });
    // DNS tunnels at the least payload the setting takes, likewise, blocking after the alert
    // (and so counting and noting the blocked queries) for inputs whose length is odd.
    let dns_tunnel = Some(DnsTunnel { bytes: 256, window_ns: 1 << 50, block: data.len() % 2 == 1 });
    let cfg = Config { memcap: 4 << 20, max_flows: 64, name_burst: burst, beacon, dns_tunnel, ..Config::default() };
    let mut e = Engine::new(cfg, b.build());
    e.set_sigs(sigs().clone());
    e.set_names(Some(names().clone()));
    let mut rest = data;
    let mut now = 1_000_000_000i64;
    let mut n = 0;
    while rest.len() >= 4 {
        let lt = [1u32, 101, 113, 276, 0, 239, 228, 229][(rest[0] & 7) as usize];
        // Time moves on by up to 12.7 s, or (255) jumps anywhere, backward too, as a hostile
        // pcapng timestamp can.
        now = if rest[1] == 255 {
            now.wrapping_mul(-3).wrapping_add(i64::MAX / 7)
        } else {
            now.saturating_add(rest[1] as i64 * 50_000_000)
        };
        let len = (u16::from_le_bytes([rest[2], rest[3]]) as usize).min(rest.len() - 4);
        let frame = &rest[4..4 + len];
        rest = &rest[4 + len..];
        n += 1;
        e.handle(now, n, lt, frame);
        let (used, cap) = e.memory();
        assert!(used <= cap);
    }
    e.finish();
    assert_eq!(e.memory().0, 0, "memory not released after finish");
    e.take_events(|ev| {
        for line in ev.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
            assert!(line.starts_with(b"{") && line.ends_with(b"}"));
        }
    });
});
