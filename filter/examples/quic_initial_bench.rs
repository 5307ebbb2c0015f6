//! Cost of QUIC Initial handling per packet: key derivation, header protection, AES-128-GCM
//! decryption, frames, CRYPTO reassembly and ClientHello parsing (the work the engine does on a
//! client's first datagram). `cargo run --release --example quic_initial_bench [N]`.

use std::time::Instant;

use palisade::app::quic::{seal_client_initial, Hello, QuicConn};
use palisade::app::tls::client_hello_record;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    // 64 distinct connections (DCIDs), a ClientHello padded to a full 1200-byte Initial.
    let pkts: Vec<Vec<u8>> = (0..64u8)
        .map(|i| {
            let rec = client_hello_record(&format!("host{i}.bench.example"));
            let hs = &rec[5..];
            let mut f = vec![0x06, 0x00];
            f.extend_from_slice(&((hs.len() as u16) | 0x4000).to_be_bytes());
            f.extend_from_slice(hs);
            f.resize(1150, 0); // PADDING frames, as clients pad Initials to 1200 bytes
            seal_client_initial(1, &[i, 1, 2, 3, 4, 5, 6, 7], 0, &f).expect("seal")
        })
        .collect();
    let mut found = 0usize;
    let t = Instant::now();
    for i in 0..n {
        let mut c = QuicConn::default();
        if let Ok(Some(Hello::Client(ch))) = c.datagram(&pkts[i % pkts.len()], true) {
            found += usize::from(ch.sni.is_some());
        }
    }
    let s = t.elapsed().as_secs_f64();
    assert_eq!(found, n, "every Initial yields its ClientHello");
    println!(
        "{n} Initials of {} bytes: {:.2} us per packet, {:.0} packets/s, {:.2} Gbit/s",
        pkts[0].len(),
        s / n as f64 * 1e6,
        n as f64 / s,
        (n * pkts[0].len() * 8) as f64 / s / 1e9
    );
}
