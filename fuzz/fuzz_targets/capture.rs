//! The capture reader on arbitrary bytes: never panics, never returns a packet longer than the
//! record limit, and stops (error or end) within a bounded number of records.
#![no_main]
use libfuzzer_sys::fuzz_target;
use palisade::capture::{CaptureReader, MAX_RECORD};

fuzz_target!(|data: &[u8]| {
    let Ok(mut r) = CaptureReader::new(Box::new(std::io::Cursor::new(data.to_vec()))) else {
        return;
    };
    for _ in 0..100_000 {
        match r.next_packet() {
            Ok(Some(p)) => assert!(p.data.len() <= MAX_RECORD && p.data.len() <= data.len()),
            Ok(None) | Err(_) => return,
        }
    }
    panic!("reader did not terminate");
});
