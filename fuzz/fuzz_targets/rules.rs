//! Rule parser: arbitrary rule text loads, is skipped with a reason, or fails with an error that
//! names the file and a line that exists; the set builds and every loaded rule names its line.
#![no_main]
use libfuzzer_sys::fuzz_target;
use palisade_rules::sig::{RuleErrorKind, SigSetBuilder};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines = text.lines().count() as u32;
    let mut b = SigSetBuilder::default();
    let c = b.add_text("fuzz.rules", &text);
    assert_eq!(c.skipped + c.errors, b.problems.len());
    for p in &b.problems {
        assert_eq!(p.file, "fuzz.rules");
        assert!(p.line >= 1 && p.line <= lines.max(1), "{p}");
        if let RuleErrorKind::Skipped(s) = &p.kind {
            assert!(!s.keyword.is_empty() && !s.reason.is_empty());
        }
    }
    let set = b.build();
    assert_eq!(set.len(), c.loaded);
    for s in set.sigs() {
        assert!(s.line >= 1 && s.line <= lines);
    }
});
