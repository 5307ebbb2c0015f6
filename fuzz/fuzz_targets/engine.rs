//! The whole engine (decode, defrag, flows, reassembly, app layer, intel) on arbitrary frames.
//! Input: repeated [linktype selector u8][time step u8][len u16 le][frame]. Invariants: the
//! memory budget is never exceeded, every event line is valid JSON-ish (starts `{`, ends `}`),
//! and after `finish` all traffic-derived memory is released.
#![no_main]
use libfuzzer_sys::fuzz_target;
use palisade::engine::{Config, Engine};
use palisade_rules::{Action, IntelBuilder};

fuzz_target!(|data: &[u8]| {
    let mut b = IntelBuilder::new();
    let _ = b.add_bytes("fuzz", b"example.com\n10.0.0.0/8\n", Action::Block);
    let cfg = Config { memcap: 4 << 20, max_flows: 64, ..Config::default() };
    let mut e = Engine::new(cfg, b.build());
    let mut rest = data;
    let mut now = 1_000_000_000i64;
    let mut n = 0;
    while rest.len() >= 4 {
        let lt = [1u32, 101, 113, 276, 0, 239, 228, 229][(rest[0] & 7) as usize];
        now += rest[1] as i64 * 50_000_000;
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
