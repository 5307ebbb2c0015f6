//! Intel list parser: arbitrary lists load (bad lines skipped, each reported with its file and
//! line, at most `MAX_PROBLEMS` kept) or are refused with an error naming the file; lookups of
//! arbitrary names never panic, and a name that was accepted matches itself. The bytes after a
//! NUL are a second list, an allow list, so the same indicators meet with both actions; an
//! address's hit names a prefix that holds the address.
#![no_main]
use libfuzzer_sys::fuzz_target;
use palisade_rules::{Action, IntelBuilder, MAX_PROBLEMS};

fn contains(prefix: &str, a: std::net::IpAddr) -> bool {
    let Some((net, len)) = prefix.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(len)) = (net.parse::<std::net::IpAddr>(), len.parse::<u32>()) else {
        return false;
    };
    match (net, a) {
        (std::net::IpAddr::V4(n), std::net::IpAddr::V4(a)) if len <= 32 => {
            let m = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(n) & m == u32::from(a) & m
        }
        (std::net::IpAddr::V6(n), std::net::IpAddr::V6(a)) if len <= 128 => {
            let m = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(n) & m == u128::from(a) & m
        }
        _ => false,
    }
}

fuzz_target!(|input: &[u8]| {
    let (data, allow) = match input.iter().position(|&b| b == 0) {
        Some(i) => (&input[..i], Some(&input[i + 1..])),
        None => (input, None),
    };
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
    if let Some(allow) = allow {
        if let Err(e) = b.add_bytes("allow.txt", allow, Action::Allow) {
            assert_eq!(e.file, "allow.txt");
        }
    }
    let set = b.build();
    for text in [Some(data), allow].into_iter().flatten() {
        let Ok(text) = std::str::from_utf8(text) else {
            continue;
        };
        for line in text.lines().take(64) {
            let _ = set.match_domain(line);
            let _ = set.match_url(line, line);
            for word in line.split([' ', '\t', '|', '^', '@']) {
                if let Ok(a) = word.parse() {
                    if let Some(h) = set.match_addr(a) {
                        assert!(contains(h.indicator, a), "{} for {a}", h.indicator);
                    }
                }
            }
        }
    }
    if let (Ok(text), None) = (std::str::from_utf8(data), allow) {
        if res.is_ok() && text.lines().count() == 1 {
            let name = text.trim();
            if !name.is_empty() && name.bytes().all(|c| c.is_ascii_lowercase() || c == b'.') && !name.contains("..") && !name.starts_with('.') && !name.ends_with('.') {
                assert!(set.match_domain(name).is_some(), "{name}");
            }
        }
    }
});
