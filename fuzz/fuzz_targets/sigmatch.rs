//! Matcher: rules (before the first NUL) against a payload (after it), through every hook with
//! every buffer set to the payload, packet by packet and as a stream cut in two. Nothing may
//! panic, and matching must not depend on how the stream was cut when no rule looks back past
//! the tail the matcher keeps.
#![no_main]
use libfuzzer_sys::fuzz_target;
use palisade_rules::sig::{
    App, Buf, Buffers, FlowSigs, Hook, Packet, Scratch, SigSetBuilder,
};

struct All<'a>(&'a [u8]);

impl Buffers for All<'_> {
    fn get(&self, _: Buf) -> Option<&[u8]> {
        Some(self.0)
    }
}

const HOOKS: [Hook; 9] = [
    Hook::Packet,
    Hook::Stream,
    Hook::Dns,
    Hook::TlsClient,
    Hook::TlsServer,
    Hook::TlsCert,
    Hook::Quic,
    Hook::HttpRequest,
    Hook::HttpResponse,
];

fuzz_target!(|data: &[u8]| {
    let cut = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let rules = String::from_utf8_lossy(&data[..cut]);
    let payload = data.get(cut + 1..).unwrap_or(&[]);
    let mut b = SigSetBuilder::default();
    b.add_text("fuzz.rules", &rules);
    let set = b.build();
    let mut sc = Scratch::default();
    for (i, app) in [App::None, App::Http, App::Tls, App::Dns, App::Quic].into_iter().enumerate() {
        let p = Packet {
            src: "10.0.0.1".parse().unwrap(),
            dst: "192.0.2.1".parse().unwrap(),
            sport: 1234,
            dport: 80,
            proto: if i % 2 == 0 { 6 } else { 17 },
            app,
            to_server: i % 3 != 0,
            established: true,
            tcp_flags: payload.first().copied().unwrap_or(0),
            icmp: (0, 0),
            payload,
            now_ns: i as i64,
            tls_version: 0x0303,
            vlan: [0; 3],
            stream_size: Some([1, 1]),
            events: if i % 2 == 0 { &["dns.malformed_data", "decoder.ipv4.trunc_pkt"] } else { &[] },
        };
        let mut fs = FlowSigs::default();
        fs.note_events(p.events);
        for h in HOOKS {
            set.inspect(h, &p, &All(payload), &mut fs, &mut sc, &mut |_| {});
        }
        let mid = payload.len() / 2;
        let mut fs = FlowSigs::default();
        set.inspect_stream(&p, &payload[..mid], 0, &mut fs, &mut sc, &mut |_| {});
        set.inspect_stream(&p, &payload[mid..], 0, &mut fs, &mut sc, &mut |_| {});
    }
});
