//! Loads rule files and prints how many loaded and why the rest were skipped.
use std::collections::BTreeMap;

use palisade_rules::sig::{RuleErrorKind, SigSetBuilder};

fn main() {
    let mut b = SigSetBuilder::default();
    for a in std::env::args().skip(1) {
        if let Err(e) = b.add_path(std::path::Path::new(&a)) {
            eprintln!("{e}");
        }
    }
    let t = std::time::Instant::now();
    let n = b.len();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for p in &b.problems {
        let k = match &p.kind {
            RuleErrorKind::Syntax(m) => format!("syntax: {m}"),
            RuleErrorKind::Skipped(s) => format!("{}: {}", s.keyword, s.reason),
        };
        *reasons.entry(k).or_default() += 1;
        if std::env::var("VERBOSE").is_ok() {
            println!("{p}");
        }
    }
    let set = b.build();
    let mut v: Vec<_> = reasons.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1));
    for (k, c) in v {
        println!("{c:6} {k}");
    }
    println!("loaded {n}, build {:?}, automata {} KiB", t.elapsed(), set.memory_usage() >> 10);
}
