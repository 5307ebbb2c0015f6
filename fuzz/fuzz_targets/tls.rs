//! TLS record/handshake reader: the same bytes fed whole or split at any point give the same
//! first event; hello parsers never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use palisade::app::tls::{parse_client_hello, parse_server_hello, TlsEvent, TlsStream};

fn key(e: Option<TlsEvent>) -> String {
    match e {
        Some(TlsEvent::Client(c)) => format!("c {:?} {} {}", c.sni, c.ja3, c.ja4),
        Some(TlsEvent::Server(s)) => format!("s {} {}", s.ja3s, s.cipher),
        Some(TlsEvent::Error(e)) => format!("e {e:?}"),
        None => "none".into(),
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = parse_client_hello(data, false);
    let _ = parse_server_hello(data);
    if data.is_empty() {
        return;
    }
    let cut = data[0] as usize % data.len();
    let body = &data[1..];
    for client in [true, false] {
        let whole = key(TlsStream::default().feed(body, client));
        let mut s = TlsStream::default();
        let a = s.feed(&body[..cut.min(body.len())], client);
        let split = if a.is_some() { key(a) } else { key(s.feed(&body[cut.min(body.len())..], client)) };
        assert_eq!(whole, split);
    }
});
