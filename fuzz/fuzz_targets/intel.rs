//! Intel list parser: arbitrary lists load (bad lines skipped, each reported with its file and
//! line, at most `MAX_PROBLEMS` kept) or are refused with an error naming the file; lookups of
//! arbitrary names never panic, and a name that was accepted matches itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use palisade_rules::{Action, IntelBuilder, MAX_PROBLEMS};

fuzz_target!(|data: &[u8]| {
    let mut b = IntelBuilder::new();
    let res = b.add_bytes("fuzz.txt", data, Action::Block).map(|i| i.domains);
    if let Err(e) = &res {
        assert_eq!(e.file, "fuzz.txt");
    }
    assert!(b.problems.len() <= MAX_PROBLEMS);
    for p in &b.problems {
        assert!(p.file == "fuzz.txt" && p.line >= 1, "{p}");
    }
    if res.is_ok() {
        assert!(b.lists()[0].bad_lines as usize >= b.problems.len());
    }
    let set = b.build();
    if let Ok(text) = std::str::from_utf8(data) {
        for line in text.lines().take(64) {
            let _ = set.match_domain(line);
            let _ = set.match_url(line, line);
            if let Ok(a) = line.trim().parse() {
                let _ = set.match_addr(a);
            }
        }
        if res.is_ok() && text.lines().count() == 1 {
            let name = text.trim();
            if !name.is_empty() && name.bytes().all(|c| c.is_ascii_lowercase() || c == b'.') && !name.contains("..") && !name.starts_with('.') && !name.ends_with('.') {
                assert!(set.match_domain(name).is_some(), "{name}");
            }
        }
    }
});
