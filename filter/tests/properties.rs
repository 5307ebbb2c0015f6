//! Property tests through the whole engine: any segmentation, reordering and duplication of a
//! TCP stream yields the same bytes and the same extracted name; any fragmentation, ordering and
//! duplication of an IP datagram yields the same datagram and the same name.

#![allow(clippy::unwrap_used)]

use etherparse::PacketBuilder;
use palisade::app::tls::client_hello_record;
use palisade::engine::{Config, Engine};
use palisade::flow::defrag::{Defrag, DefragConfig, DefragResult};
use palisade::flow::Budget;
use palisade::wire::FragInfo;
use palisade_rules::IntelSet;
use proptest::prelude::*;

const CLI: [u8; 4] = [10, 0, 0, 1];
const SRV: [u8; 4] = [10, 0, 0, 2];

fn tcp(from_client: bool, seq: u32, ack: u32, syn: bool, payload: &[u8]) -> Vec<u8> {
    let (s, d, sp, dp) = if from_client {
        (CLI, SRV, 40000, 443)
    } else {
        (SRV, CLI, 443, 40000)
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
    b.write(&mut v, payload).unwrap();
    v
}

fn run(frames: &[Vec<u8>]) -> Engine {
    let cfg = Config {
        tap_streams: true,
        ..Config::default()
    };
    let mut e = Engine::new(cfg, IntelSet::empty());
    for (i, f) in frames.iter().enumerate() {
        e.handle(1_000_000_000 + i as i64 * 1000, i as u64 + 1, 1, f);
    }
    e.finish();
    e
}

fn sni_of(e: &mut Engine) -> Vec<String> {
    let mut out = Vec::new();
    e.take_events(|b| {
        for l in b.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
            let v: serde_json::Value = serde_json::from_slice(l).unwrap();
            if v["event_type"] == "tls" {
                out.push(v["tls"]["sni"].as_str().unwrap_or("").to_string());
            }
            if v["event_type"] == "dns" {
                out.push(
                    v["dns"]["queries"][0]["rrname"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                );
            }
        }
    });
    out
}

prop_compose! {
    /// Cut points, a permutation and duplicates for a stream of `len` bytes.
    fn plan(len: usize)(cuts in proptest::collection::vec(1..len, 0..12),
                        order in Just(()).prop_perturb(|_, mut rng| rng.random::<u64>()),
                        dups in proptest::collection::vec(0..16usize, 0..4))
        -> (Vec<usize>, u64, Vec<usize>) { (cuts, order, dups) }
}

fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        v.swap(i, (seed >> 33) as usize % (i + 1));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn tcp_any_segmentation_gives_same_bytes_and_sni(
        label in "[a-z][a-z0-9-]{0,20}",
        (cuts, order, dups) in plan(300),
    ) {
        let sni = format!("{label}.example.com");
        let data = client_hello_record(&sni);
        let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c < data.len()).collect();
        cuts.push(0);
        cuts.push(data.len());
        cuts.sort_unstable();
        cuts.dedup();
        let isn = 0xfffffff0u32; // the stream wraps the sequence space
        let mut segs: Vec<Vec<u8>> = cuts
            .windows(2)
            .map(|w| tcp(true, isn.wrapping_add(1 + w[0] as u32), 1, false, &data[w[0]..w[1]]))
            .collect();
        for d in dups {
            let i = d % segs.len();
            segs.push(segs[i].clone());
        }
        shuffle(&mut segs, order);
        let mut frames = vec![tcp(true, isn, 0, true, &[]), tcp(false, 7, isn.wrapping_add(1), true, &[]), tcp(true, isn.wrapping_add(1), 8, false, &[])];
        frames.extend(segs);
        let mut e = run(&frames);
        let got: Vec<u8> = e.stream_tap.iter().filter(|r| r.dir == 0).flat_map(|r| r.data.clone().unwrap()).collect();
        prop_assert_eq!(&got, &data);
        prop_assert_eq!(sni_of(&mut e), vec![sni]);
    }

    #[test]
    fn ip_any_fragmentation_gives_same_datagram(
        payload in proptest::collection::vec(any::<u8>(), 1..3000),
        cuts in proptest::collection::vec(1..400usize, 0..10),
        order in any::<u64>(),
        dups in proptest::collection::vec(0..16usize, 0..3),
    ) {
        let mut offs: Vec<usize> = cuts.into_iter().map(|c| c * 8).filter(|&c| c < payload.len()).collect();
        offs.push(0);
        offs.sort_unstable();
        offs.dedup();
        offs.push(payload.len());
        let mut frags: Vec<(u32, bool, &[u8])> = offs.windows(2).map(|w| (w[0] as u32, w[1] != payload.len(), &payload[w[0]..w[1]])).collect();
        for d in dups {
            let i = d % frags.len();
            frags.push(frags[i]);
        }
        shuffle(&mut frags, order);
        let mut budget = Budget::new(1 << 20);
        let mut d = Defrag::new(DefragConfig::default());
        let mut done = None;
        for (off, more, part) in frags {
            if let DefragResult::Complete(p) = d.add(0, CLI.into(), SRV.into(), 17, [0; 3], FragInfo { id: 9, offset: off, more }, part, &mut budget) {
                done = Some(p.to_vec());
            }
        }
        prop_assert_eq!(done.as_deref(), Some(&payload[..]));
        // A duplicate that arrives after completion opens a new datagram that waits for its
        // timeout; clearing (end of input) returns every byte.
        d.clear(&mut budget);
        prop_assert_eq!(budget.used(), 0);
    }

    #[test]
    fn fragmented_dns_query_gives_same_name(label in "[a-z][a-z0-9]{0,40}", fsize in 1..6usize, order in any::<u64>()) {
        let name = format!("{label}.frag.example");
        let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        let mut udp = Vec::new();
        PacketBuilder::ipv4(CLI, SRV, 64).udp(5353, 53).write(&mut udp, &q).unwrap();
        let l4 = udp[20..].to_vec();
        let step = fsize * 8;
        let mut frames = Vec::new();
        for (i, chunk) in l4.chunks(step).enumerate() {
            let off = (i * step / 8) as u16;
            let more = (i + 1) * step < l4.len();
            let mut h = vec![0x45, 0, 0, 0, 0xab, 0xcd, 0, 0, 64, 17, 0, 0];
            h.extend_from_slice(&CLI);
            h.extend_from_slice(&SRV);
            let total = (20 + chunk.len()) as u16;
            h[2..4].copy_from_slice(&total.to_be_bytes());
            let fo = off | if more { 0x2000 } else { 0 };
            h[6..8].copy_from_slice(&fo.to_be_bytes());
            h.extend_from_slice(chunk);
            frames.push(h);
        }
        shuffle(&mut frames, order);
        let cfg = Config::default();
        let mut e = Engine::new(cfg, IntelSet::empty());
        for (i, f) in frames.iter().enumerate() {
            e.handle(1_000_000_000, i as u64 + 1, 101, f);
        }
        e.finish();
        prop_assert_eq!(sni_of(&mut e), vec![name]);
        prop_assert_eq!(e.memory().0, 0);
    }

    #[test]
    fn fragmented_ipv6_dns_query_gives_same_name(label in "[a-z][a-z0-9]{0,40}", fsize in 1..6usize, order in any::<u64>()) {
        let name = format!("{label}.frag6.example");
        let mut q = vec![0x43, 0x21, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 28, 0, 1]);
        let (src, dst) = ([0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], [0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        let mut udp = Vec::new();
        PacketBuilder::ipv6(src, dst, 64).udp(5353, 53).write(&mut udp, &q).unwrap();
        let l4 = udp[40..].to_vec();
        let step = fsize * 8;
        let mut frames = Vec::new();
        for (i, chunk) in l4.chunks(step).enumerate() {
            let off = (i * step / 8) as u16;
            let more = (i + 1) * step < l4.len();
            let mut h = vec![0x60, 0, 0, 0];
            h.extend_from_slice(&((8 + chunk.len()) as u16).to_be_bytes());
            h.extend_from_slice(&[44, 64]);
            h.extend_from_slice(&src);
            h.extend_from_slice(&dst);
            let fo = (off << 3) | u16::from(more);
            h.extend_from_slice(&[17, 0]);
            h.extend_from_slice(&fo.to_be_bytes());
            h.extend_from_slice(&0x0bad_cafe_u32.to_be_bytes());
            h.extend_from_slice(chunk);
            frames.push(h);
        }
        shuffle(&mut frames, order);
        let mut e = Engine::new(Config::default(), IntelSet::empty());
        for (i, f) in frames.iter().enumerate() {
            e.handle(1_000_000_000, i as u64 + 1, 101, f);
        }
        e.finish();
        prop_assert_eq!(sni_of(&mut e), vec![name]);
        prop_assert_eq!(e.memory().0, 0);
    }

    #[test]
    fn quic_crypto_split_across_initials_gives_the_same_hello(
        label in "[a-z][a-z0-9-]{0,20}",
        cuts in proptest::collection::vec(1..300usize, 0..8),
        packets in 1..5usize,
        order in any::<u64>(),
        dups in proptest::collection::vec(0..16usize, 0..3),
        v2 in any::<bool>(),
    ) {
        let sni = format!("{label}.quic.example");
        let rec = client_hello_record(&sni);
        let hs = &rec[5..];
        let mut offs: Vec<usize> = cuts.into_iter().filter(|&c| c < hs.len()).collect();
        offs.push(0);
        offs.push(hs.len());
        offs.sort_unstable();
        offs.dedup();
        // CRYPTO frames (offset and length as 4- and 2-byte varints), dealt out to the packets.
        let mut per_packet = vec![Vec::new(); packets];
        for (i, w) in offs.windows(2).enumerate() {
            let f = &mut per_packet[i % packets];
            f.push(0x06);
            f.extend_from_slice(&((w[0] as u32) | 0x8000_0000).to_be_bytes());
            f.extend_from_slice(&(((w[1] - w[0]) as u16) | 0x4000).to_be_bytes());
            f.extend_from_slice(&hs[w[0]..w[1]]);
        }
        let version = if v2 { 0x6b33_43cf } else { 1 };
        let dcid = [0xd1, 0xc1, 0xd0, 0x01, 0x02, 0x03, 0x04, 0x05];
        let mut frames: Vec<Vec<u8>> = per_packet
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.is_empty())
            .map(|(pn, f)| {
                let pkt = palisade::app::quic::seal_client_initial(version, &dcid, pn as u8, f).unwrap();
                let mut v = Vec::new();
                PacketBuilder::ipv4(CLI, SRV, 64).udp(50000, 443).write(&mut v, &pkt).unwrap();
                v
            })
            .collect();
        for d in dups {
            let i = d % frames.len();
            frames.push(frames[i].clone());
        }
        shuffle(&mut frames, order);
        let mut e = Engine::new(Config::default(), IntelSet::empty());
        for (i, f) in frames.iter().enumerate() {
            e.handle(1_000_000_000, i as u64 + 1, 101, f);
        }
        e.finish();
        let mut snis = Vec::new();
        e.take_events(|b| {
            for l in b.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
                let v: serde_json::Value = serde_json::from_slice(l).unwrap();
                if v["event_type"] == "quic" {
                    snis.push(v["quic"]["sni"].as_str().unwrap_or("").to_string());
                }
            }
        });
        prop_assert_eq!(snis, vec![sni]);
        prop_assert_eq!(e.memory().0, 0);
    }
}
