//! DNS message parser: never panics; names stay within the cap; record counts stay bounded.
#![no_main]
use libfuzzer_sys::fuzz_target;
use palisade::app::dns::{DnsMsg, MAX_NAME, MAX_RECORDS};

fuzz_target!(|data: &[u8]| {
    let mut m = DnsMsg::default();
    if m.parse(data).is_ok() {
        for q in m.queries.iter().chain(&m.answers).chain(&m.authorities) {
            assert!(m.text(&q.name).len() <= MAX_NAME + 4);
        }
        assert!(m.queries.len() <= MAX_RECORDS);
        assert!(m.answers.len() <= MAX_RECORDS * 2 && m.authorities.len() <= MAX_RECORDS * 2);
    }
});
