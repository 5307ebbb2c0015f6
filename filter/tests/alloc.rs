//! The warm packet path allocates nothing: once flows exist, in-order TCP data, DNS queries and
//! responses on existing flows, and their eve events, run without a single heap allocation.
#![allow(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use etherparse::PacketBuilder;
use palisade::engine::{Config, Engine};
use palisade_rules::sig::SigSetBuilder;
use palisade_rules::{Action, IntelBuilder};

struct Counting;
static COUNT: AtomicU64 = AtomicU64::new(0);
thread_local! {
    /// Counting is on for the measuring thread only (the test harness allocates on its own).
    static ON: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn counting() -> bool {
    ON.try_with(std::cell::Cell::get).unwrap_or(false)
}

// SAFETY: forwards to the system allocator; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if counting() {
            COUNT.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if counting() {
            COUNT.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn tcp(cli: bool, i: u8, seq: u32, ack: u32, syn: bool, p: &[u8]) -> Vec<u8> {
    let (s, d, sp, dp) = if cli {
        ([10, 0, 1, i], [10, 0, 2, 1], 40000, 9000)
    } else {
        ([10, 0, 2, 1], [10, 0, 1, i], 9000, 40000)
    };
    let mut b = PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4(s, d, 64)
        .tcp(sp, dp, seq, 65535);
    if syn {
        b = b.syn();
    }
    if ack != 0 {
        b = b.ack(ack);
    }
    let mut v = Vec::new();
    b.write(&mut v, p).unwrap();
    v
}

fn dns(resp: bool, i: u8, name: &str) -> Vec<u8> {
    let mut q = vec![
        0x12,
        i,
        if resp { 0x81 } else { 1 },
        if resp { 0x80 } else { 0 },
        0,
        1,
        0,
        if resp { 1 } else { 0 },
        0,
        0,
        0,
        0,
    ];
    for l in name.split('.') {
        q.push(l.len() as u8);
        q.extend_from_slice(l.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    if resp {
        q.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]);
    }
    let (s, d, sp, dp) = if resp {
        ([10, 0, 2, 53], [10, 0, 1, i], 53, 30000)
    } else {
        ([10, 0, 1, i], [10, 0, 2, 53], 30000, 53)
    };
    let mut v = Vec::new();
    PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4(s, d, 64)
        .udp(sp, dp)
        .write(&mut v, &q)
        .unwrap();
    v
}

/// Handshakes for 16 TCP flows, then 250 rounds of in-order data on them and DNS queries and
/// responses on 16 DNS flows; returns allocations counted after the warm-up, the packets
/// measured and the engine.
/// The counter is process-wide, so the tests of this file run one at a time (set-up included).
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn run(e: Engine) -> (u64, usize, Engine) {
    run_with(e, "www.allowed.example", false)
}

/// [`run`] with the DNS lookups asking for `name`, answered NXDOMAIN when `nx`.
fn run_with(mut e: Engine, name: &str, nx: bool) -> (u64, usize, Engine) {
    let mut frames = Vec::new();
    for i in 1..=16u8 {
        frames.push(tcp(true, i, 100, 0, true, &[]));
        frames.push(tcp(false, i, 500, 101, true, &[]));
        frames.push(tcp(true, i, 101, 501, false, &[]));
    }
    let mut warm = Vec::new();
    for round in 0..250u32 {
        for i in 1..=16u8 {
            let seq = 101 + round * 100;
            let mut p = [b'x'; 100];
            p[40..46].copy_from_slice(b"MARKER");
            warm.push(tcp(true, i, seq, 501, false, &p));
            warm.push(tcp(false, i, 501, seq + 100, false, &[]));
        }
        for i in 1..=16u8 {
            if round % 4 == 0 {
                warm.push(dns(false, i, name));
                let mut r = dns(true, i, name);
                if nx {
                    // rcode 3 in the DNS header after the Ethernet, IPv4 and UDP headers.
                    r[14 + 20 + 8 + 3] |= 3;
                }
                warm.push(r);
            }
        }
    }
    let mut sink = 0usize;
    let mut n = 0u64;
    let mut t = 1_000_000_000i64;
    // Warm up: handshakes and a first pass (buffers reach their working size).
    for f in frames.iter().chain(warm.iter().take(2000)) {
        n += 1;
        t += 1000;
        e.handle(t, n, 1, f);
        e.take_events(|b| sink += b.len());
    }
    COUNT.store(0, Ordering::SeqCst);
    ON.with(|o| o.set(true));
    for f in warm.iter().skip(2000) {
        n += 1;
        t += 1000;
        e.handle(t, n, 1, f);
        e.take_events(|b| sink += b.len());
    }
    ON.with(|o| o.set(false));
    let allocs = COUNT.load(Ordering::SeqCst);
    let measured = warm.len() - 2000;
    eprintln!("warm path: {allocs} allocations over {measured} packets; {sink} event bytes");
    (allocs, measured, e)
}

fn intel() -> palisade_rules::IntelSet {
    let mut b = IntelBuilder::new();
    b.add_bytes("l", b"blocked.example\n192.0.2.99\n", Action::Block)
        .unwrap();
    b.build()
}

#[test]
fn warm_packet_path_does_not_allocate() {
    let _serial = one_at_a_time();
    let (allocs, measured, e) = run(Engine::new(Config::default(), intel()));
    assert!(measured >= 8000, "{measured}");
    assert!(e.stats.events[1] > 1000, "DNS events were written");
    assert_eq!(allocs, 0);
}

/// The same with signatures at the packet, stream and DNS hooks, matching and not, with pcre,
/// flowbits and thresholds: matching allocates nothing once warm either.
#[test]
fn warm_packet_path_with_signatures_does_not_allocate() {
    let _serial = one_at_a_time();
    let mut b = SigSetBuilder::default();
    b.add_text(
        "t.rules",
        concat!(
            "alert tcp any any -> any any (content:\"MARKER\"; pcre:\"/^x{10}/R\"; flowbits:set,m; sid:1;)\n",
            "alert tcp-pkt any any -> any 9000 (dsize:100; content:\"xxMARKERxx\"; flowbits:isset,m; threshold:type limit,track by_src,count 1,seconds 3600; sid:2;)\n",
            "alert dns any any -> any any (dns.query; content:\"allowed\"; endswith:; sid:3;)\n",
            "alert dns any any -> any any (dns.query; dotprefix; content:\".allowed.example\"; endswith; sid:4;)\n",
            "alert tcp any any -> any any (content:\"never-there\"; sid:5;)\n",
            "alert ip [10.0.1.0/24] any -> any any (ip_proto:17; threshold:type both,track by_src,count 100000,seconds 3600; sid:6;)\n",
        ),
    );
    // `endswith:` with a value is a syntax error; the rest load.
    assert_eq!(b.problems.len(), 1, "{:?}", b.problems);
    let mut e = Engine::new(Config::default(), intel());
    e.set_sigs(b.build());
    let (allocs, measured, e) = run(e);
    assert!(measured >= 8000, "{measured}");
    assert!(
        e.stats.sig_matches > 1000,
        "signatures matched: {}",
        e.stats.sig_matches
    );
    assert_eq!(allocs, 0);
}

/// The same with the domain model scoring every DNS name (events carry the score): the score
/// cache and the model allocate nothing once warm (the model's own no-allocation test scores
/// many different names; `classifiers/tests/model.rs`).
#[test]
fn warm_packet_path_with_name_scoring_does_not_allocate() {
    let _serial = one_at_a_time();
    let mut e = Engine::new(Config::default(), intel());
    e.set_names(Some(palisade::engine::NameScoring::bundled()));
    let (allocs, measured, e) = run(e);
    assert!(measured >= 8000, "{measured}");
    assert!(
        e.stats.names_scored > 1000,
        "names scored: {}",
        e.stats.names_scored
    );
    assert_eq!(allocs, 0);
}

/// Pipelined HTTP: each client segment carries ten requests and each server segment their ten
/// responses (some with bodies), on 16 connections, with signatures at the HTTP hooks. The
/// parser hands the engine a few messages at a time, so a segment's twenty events need no
/// queue: once warm, nothing allocates, and every transaction is logged.
#[test]
fn warm_pipelined_http_does_not_allocate() {
    let _serial = one_at_a_time();
    let mut b = SigSetBuilder::default();
    b.add_text(
        "h.rules",
        concat!(
            "alert http any any -> any any (http.uri; content:\"/item/7\"; sid:1;)\n",
            "alert http any any -> any any (http.response_body; content:\"body-4\"; sid:2;)\n",
        ),
    );
    assert!(b.problems.is_empty(), "{:?}", b.problems);
    let mut e = Engine::new(Config::default(), intel());
    e.set_sigs(b.build());
    let mut req = Vec::new();
    let mut resp = Vec::new();
    for k in 0..10 {
        req.extend_from_slice(
            format!("GET /item/{k} HTTP/1.1\r\nHost: shop.example\r\n\r\n").as_bytes(),
        );
        let body = format!("body-{k}");
        let body = if k % 3 == 0 { String::new() } else { body };
        resp.extend_from_slice(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
    }
    let (rq, rs) = (req.len() as u32, resp.len() as u32);
    let mut frames = Vec::new();
    for i in 1..=16u8 {
        frames.push(tcp(true, i, 100, 0, true, &[]));
        frames.push(tcp(false, i, 500, 101, true, &[]));
        frames.push(tcp(true, i, 101, 501, false, &[]));
    }
    for round in 0..60u32 {
        for i in 1..=16u8 {
            let (cs, ss) = (101 + round * rq, 501 + round * rs);
            frames.push(tcp(true, i, cs, ss, false, &req));
            frames.push(tcp(false, i, ss, cs + rq, false, &resp));
        }
    }
    let warm = 3 * 16 + 10 * 32;
    let mut t = 1_000_000_000i64;
    let mut sink = 0usize;
    let mut http_before = 0;
    let mut sigs_before = 0;
    for (n, f) in frames.iter().enumerate() {
        if n == warm {
            http_before = e.stats.events[3];
            sigs_before = e.stats.sig_matches;
            COUNT.store(0, Ordering::SeqCst);
            ON.with(|o| o.set(true));
        }
        t += 1000;
        e.handle(t, n as u64 + 1, 1, f);
        e.take_events(|b| sink += b.len());
    }
    ON.with(|o| o.set(false));
    let allocs = COUNT.load(Ordering::SeqCst);
    eprintln!("pipelined http: {allocs} allocations; {sink} event bytes");
    // Fifty measured rounds of 16 connections and ten transactions, each logged once, and each
    // round's two matching transactions alerted.
    assert_eq!(e.stats.events[3] - http_before, 50 * 16 * 10);
    assert_eq!(e.stats.sig_matches - sigs_before, 50 * 16 * 2);
    assert_eq!(allocs, 0);
}

/// NXDOMAIN answers for a name at or above the burst threshold: each is recorded for its
/// client (one registered domain per client, so no burst and no alert) without an allocation.
#[test]
fn warm_nxdomain_answers_for_suspicious_names_do_not_allocate() {
    let _serial = one_at_a_time();
    // Between the burst threshold and the alert threshold: no per-name alert either (alerts
    // build their signature text).
    let model = palisade_classifiers::DomainModel::bundled();
    let (lo, hi) = (
        model.threshold_at_fpr("1e-3").unwrap(),
        model.threshold_at_fpr("1e-4").unwrap(),
    );
    let name = [
        "kq3zr9x.example",
        "qxzvbk.example",
        "kxq9zv2.example",
        "vbkq3z.example",
    ]
    .into_iter()
    .find(|n| (lo..hi).contains(&model.score(n.as_bytes())))
    .expect("a candidate name between the two thresholds");
    let mut e = Engine::new(Config::default(), intel());
    e.set_names(Some(palisade::engine::NameScoring::bundled()));
    let (allocs, measured, e) = run_with(e, name, true);
    assert!(measured >= 8000, "{measured}");
    assert!(
        e.stats.name_burst_names > 500,
        "NXDOMAIN names recorded: {}",
        e.stats.name_burst_names
    );
    assert_eq!(e.stats.name_bursts, 0);
    assert_eq!(allocs, 0);
}

/// Real captures of single connections (suricata-verify's, in `../shared/data/pcaps`): DNS over
/// TCP, HTTP over IPv6, a fragmented IPv4 SYN, a ClientHello cut at an MTU of 300, a QUIC
/// Initial in unordered fragments, SMB with overlapping segments, a TLS 1.2 handshake with its
/// certificate chain, a TLS 1.3 one from Chrome whose ClientHello spans segments, an HTTP request
/// and response, a QUIC handshake whose Initial is fragmented, a CONNECT proxy carrying TLS, and
/// a DNS lookup; and Wireshark's out-of-order TCP captures (five HTTP requests with segments
/// swapped, DNS over TCP whose first data segment comes late, and overlapping, swapped and
/// rewritten segments), whose early segments are held until the bytes before them come.
const NEW_FLOW_CAPTURES: [&str; 16] = [
    "suricata-verify/dns__dns-tcp-www-google-com/dns.pcap",
    "suricata-verify/http-ipv6/input.pcap",
    "suricata-verify/defrag__bug-6887-defrag-ipv4-tcp-syn/frag-ip-tcp-syn.pcap",
    "suricata-verify/tls__tls-client-hello-frag-01/dump_mtu300.pcap",
    "suricata-verify/quic-frag-unordered/input.pcap",
    "suricata-verify/smb-eicar-overlap/input.pcap",
    "suricata-verify/tls-alpn-log-detect-02/input.pcap",
    "suricata-verify/tls__tls-fin-close-data-01/debug-s13.pcap",
    "suricata-verify/cond-log-http-testmyids/input.pcap",
    "suricata-verify/quic-frag/input.pcap",
    "suricata-verify/bug-2430/backwards.pcap",
    "suricata-verify/cond-log-dns-dig/input.pcap",
    "wireshark/http-ooo.pcap",
    "wireshark/http-ooo2.pcap",
    "wireshark/dns-ooo.pcap",
    "wireshark/tcp-badsegments.pcap",
];

/// Segments the out-of-order captures hold per round: http-ooo 4, http-ooo2 1, dns-ooo 1,
/// tcp-badsegments 8 (the engine's `tcp.out_of_order` counter, each capture replayed alone).
const OUT_OF_ORDER_PER_ROUND: u64 = 14;

fn capture_frames(rel: &str) -> Vec<(i64, u32, Vec<u8>)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/pcaps")
        .join(rel);
    let mut r = palisade::capture::CaptureReader::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
    let mut out = Vec::new();
    while let Some(p) = r.next_packet().unwrap() {
        out.push((p.ts_ns, p.linktype, p.data.to_vec()));
    }
    assert!(!out.is_empty(), "{rel}");
    out
}

/// Plays one capture through `e` from `clock` (packet numbers from `n`), events to `out`;
/// returns a clock past every flow timeout, where the next packet ends these flows.
fn play(
    e: &mut Engine,
    cap: &[(i64, u32, Vec<u8>)],
    clock: i64,
    n: &mut u64,
    out: &mut impl FnMut(&[u8]),
) -> i64 {
    let t0 = cap[0].0;
    let mut last = clock;
    for (ts, lt, f) in cap {
        *n += 1;
        last = clock + (ts - t0).max(0);
        e.handle(last, *n, *lt, f);
        e.take_events(|b| out(b));
    }
    last + 3_600_000_000_000
}

/// Replays the captures `rounds` times, each connection again after every flow has timed out
/// (so each round's flows are new ones and the previous round's have ended); returns the
/// allocations of the rounds after `warm`, the flows they created, and the engine.
fn replay_rounds(mut e: Engine, warm: usize, rounds: usize) -> (u64, u64, Engine) {
    let caps: Vec<_> = NEW_FLOW_CAPTURES
        .iter()
        .map(|c| capture_frames(c))
        .collect();
    let mut clock = 1_000_000_000_000i64;
    let mut n = 0u64;
    let mut sink = 0usize;
    let mut created = 0;
    for round in 0..rounds {
        if round == warm {
            created = e.flows_created();
            COUNT.store(0, Ordering::SeqCst);
            ON.with(|o| o.set(true));
        }
        for cap in &caps {
            clock = play(&mut e, cap, clock, &mut n, &mut |b| sink += b.len());
        }
    }
    ON.with(|o| o.set(false));
    let allocs = COUNT.load(Ordering::SeqCst);
    let flows = e.flows_created() - created;
    eprintln!("new flows: {allocs} allocations over {flows} flows; {sink} event bytes");
    (allocs, flows, e)
}

#[test]
fn new_flows_allocate_nothing_once_pools_are_warm() {
    let _serial = one_at_a_time();
    let mut e = Engine::new(Config::default(), intel());
    e.set_names(Some(palisade::engine::NameScoring::bundled()));
    let (allocs, flows, e) = replay_rounds(e, 4, 24);
    assert!(flows >= 20 * 16, "{flows}");
    assert!(e.stats.events[1] > 0);
    assert_eq!(e.stats.tcp_out_of_order, 24 * OUT_OF_ORDER_PER_ROUND);
    assert_eq!(allocs, 0);
    // The pools now hold the ended flows' objects: within the README's bound of about 14 MiB.
    let p = palisade::pool::thread_stats();
    assert!(p.held > 16 && p.held_bytes > 0, "{p:?}");
    assert!(p.held_bytes < 14 << 20, "{p:?}");
}

/// The same with signatures at the TLS, certificate, HTTP, QUIC and DNS hooks (matching and
/// not), with flowbits: per-flow signature state comes from a pool too.
#[test]
fn new_flows_with_signatures_allocate_nothing_once_pools_are_warm() {
    let _serial = one_at_a_time();
    let mut e = Engine::new(Config::default(), intel());
    e.set_sigs(app_sigs());
    e.set_names(Some(palisade::engine::NameScoring::bundled()));
    let (allocs, flows, e) = replay_rounds(e, 4, 24);
    assert!(flows >= 20 * 16, "{flows}");
    assert_eq!(e.stats.tcp_out_of_order, 24 * OUT_OF_ORDER_PER_ROUND);
    assert!(e.stats.sig_matches >= 20 * 5, "{}", e.stats.sig_matches);
    assert_eq!(allocs, 0);
}

/// Signatures at the TLS, certificate, HTTP, QUIC and DNS hooks, with flowbits.
fn app_sigs() -> palisade_rules::sig::SigSet {
    let mut b = SigSetBuilder::default();
    b.add_text(
        "t.rules",
        concat!(
            "alert tls any any -> any any (tls.sni; content:\"googlevideo\"; flowbits:set,g; sid:11;)\n",
            "alert tls any any -> any any (tls.cert_subject; content:\"Apple\"; sid:12;)\n",
            "alert tls any any -> any any (ja3.hash; content:\"0000\"; sid:13;)\n",
            "alert http any any -> any any (http.host; content:\"testmyids\"; sid:14;)\n",
            "alert http any any -> any any (http.user_agent; content:\"curl\"; http.uri; content:\"/\"; sid:15;)\n",
            "alert http any any -> any any (http.response_body; content:\"uid=0\"; sid:16;)\n",
            "alert quic any any -> any any (quic.sni; content:\"mozilla\"; sid:17;)\n",
            "alert dns any any -> any any (dns.query; content:\"suricata\"; sid:18;)\n",
            "alert tcp any any -> any any (content:\"never-there\"; sid:19;)\n",
            // Fires only where sid 11 set its flowbit: a bit left over from another flow's
            // state would make it fire on every TLS flow.
            "alert tls any any -> any any (flowbits:isset,g; tls.sni; content:\".\"; sid:20;)\n",
        ),
    );
    assert!(b.problems.is_empty(), "{:?}", b.problems);
    b.build()
}

/// What a replay logged of the application layer and of each flow, without times and flow ids:
/// one line per event (its type and its protocol object, the alert's signature id and message,
/// or the flow's counters, state and scores).
fn app_events(eve: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for line in eve.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_slice(line).unwrap();
        let t = v["event_type"].as_str().unwrap().to_string();
        let body = match t.as_str() {
            "alert" => serde_json::json!([v["alert"]["signature_id"], v["alert"]["signature"]]),
            "tls" | "http" | "quic" | "dns" | "anomaly" => v[t.as_str()].clone(),
            "flow" => {
                // Counters, state and scores; the times, and whether the flow timed out or the
                // input ended, depend on where the replay put it.
                let mut f = v["flow"].clone();
                if let Some(o) = f.as_object_mut() {
                    for k in ["start", "end", "age", "reason"] {
                        o.remove(k);
                    }
                }
                serde_json::json!([v["app_proto"], v["proto"], f])
            }
            _ => continue,
        };
        out.push(format!("{t} {body}"));
    }
    out.sort();
    out
}

fn engine_for_recycling() -> Engine {
    let mut e = Engine::new(Config::default(), intel());
    e.set_sigs(app_sigs());
    e.set_names(Some(palisade::engine::NameScoring::bundled()));
    e
}

/// Replays the captures in `order` through `e`, each after the previous flows timed out; the
/// application-layer events.
fn replay_in_order(
    e: &mut Engine,
    caps: &[Vec<(i64, u32, Vec<u8>)>],
    order: &[usize],
) -> Vec<String> {
    let mut eve = Vec::new();
    let mut clock = 1_000_000_000_000i64;
    let mut n = 0u64;
    for &i in order {
        clock = play(e, &caps[i], clock, &mut n, &mut |b| {
            eve.extend_from_slice(b)
        });
    }
    e.finish();
    e.take_events(|b| eve.extend_from_slice(b));
    app_events(&eve)
}

/// Recycled state carries nothing over: each capture replayed alone on a fresh thread (every
/// object made new) logs what the same captures log replayed together, forwards then
/// backwards, on one thread whose pools hand each flow objects another kind of flow filled
/// (hellos, certificates, HTTP transactions, QUIC connections, flowbits, stream buffers).
#[test]
fn recycled_state_logs_what_fresh_state_logs() {
    let _serial = one_at_a_time();
    let caps: Vec<_> = NEW_FLOW_CAPTURES
        .iter()
        .map(|c| capture_frames(c))
        .collect();
    let mut fresh = Vec::new();
    for (i, name) in NEW_FLOW_CAPTURES.iter().enumerate() {
        let caps = caps.clone();
        let ev = std::thread::spawn(move || {
            let mut e = engine_for_recycling();
            replay_in_order(&mut e, &caps, &[i])
        })
        .join()
        .unwrap();
        assert!(!ev.is_empty(), "{name}");
        fresh.extend(ev);
    }
    let order: Vec<usize> = (0..caps.len()).chain((0..caps.len()).rev()).collect();
    let mut e = engine_for_recycling();
    let recycled = replay_in_order(&mut e, &caps, &order);
    assert!(palisade::pool::thread_stats().reused > 20);
    let mut want: Vec<String> = fresh.iter().chain(fresh.iter()).cloned().collect();
    want.sort();
    assert!(
        want.iter().any(|l| l.starts_with("alert [11,")),
        "{want:#?}"
    );
    let count = |sid: &str| want.iter().filter(|l| l.starts_with(sid)).count();
    assert_eq!(count("alert [20,"), count("alert [11,"));
    // Only the differences, when there are any.
    let missing: Vec<_> = want.iter().filter(|l| !recycled.contains(l)).collect();
    let extra: Vec<_> = recycled.iter().filter(|l| !want.contains(l)).collect();
    assert!(
        missing.is_empty() && extra.is_empty() && recycled.len() == want.len(),
        "{} events fresh, {} recycled\nonly fresh: {missing:#?}\nonly recycled: {extra:#?}",
        want.len(),
        recycled.len()
    );
    assert_eq!(recycled, want, "the same events, as often");
}

/// Lookups of a blocked name: each one raises an intel alert (and a sinkhole verdict); the
/// alerts' messages are built in pooled buffers, so alerting allocates nothing once warm either.
#[test]
fn warm_alerts_do_not_allocate() {
    let _serial = one_at_a_time();
    let (allocs, measured, e) = run_with(
        Engine::new(Config::default(), intel()),
        "blocked.example",
        false,
    );
    assert!(measured >= 8000, "{measured}");
    assert!(e.stats.alerts_blocked > 500, "{}", e.stats.alerts_blocked);
    assert_eq!(allocs, 0);
}
