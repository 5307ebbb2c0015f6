//! QUIC Initial decryption and CRYPTO reassembly, and gQUIC's CHLO reader, on arbitrary
//! datagrams: never panics, memory
//! stays within the caps. Input: datagrams separated by a length byte; the top bit of that byte
//! says which side sent it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use palisade::app::quic::{QuicConn, MAX_CRYPTO};

fuzz_target!(|data: &[u8]| {
    let mut c = QuicConn::default();
    let mut rest = data;
    while let Some((&h, tail)) = rest.split_first() {
        let len = ((h & 0x7f) as usize * 16).min(tail.len());
        let (d, t) = tail.split_at(len);
        rest = t;
        let _ = c.datagram(d, h & 0x80 == 0);
        assert!(c.held() <= 2 * MAX_CRYPTO + 2 * 256 * 8 + 64 + 255, "{}", c.held());
    }
    // A whole datagram as one client packet, as the engine sees the first one.
    let _ = QuicConn::default().datagram(data, true);
    // gQUIC: the CHLO reader on the same bytes; an accepted CHLO stays within its tag cap.
    if let Ok(Some(c)) = palisade::app::gquic::parse_client(data) {
        assert!(c.cyu.matches('-').count() < palisade::app::gquic::MAX_TAGS);
        assert_eq!(c.cyu_hash.len(), 32);
    }
});
