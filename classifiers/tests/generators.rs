//! The held-out DGA generators make names of the shape the real families make. Their detection
//! rate is the model's headline figure, so a generator that drifts from its family (an earlier
//! Kraken added vowels the malware never does) would misstate it. Each character-based held-out
//! family is compared with the real names of that family in the research-use sample in
//! `../shared/data/domains/dga/` (read here for evaluation only, never for training): the same
//! alphabet, the same share of vowels and of digits, the same mean length, and (but for a few
//! names: a sample of two hundred does not show every suffix) the parents the real names use.

#![allow(clippy::unwrap_used)]

use palisade_classifiers::dga::HELD_OUT;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

mod common;

/// The measures compared, over the first label of each name.
#[derive(Debug)]
struct Shape {
    alphabet: BTreeSet<char>,
    vowels: f64,
    digits: f64,
    mean_len: f64,
    parents: BTreeMap<String, usize>,
}

fn shape<'a>(names: impl IntoIterator<Item = &'a str>) -> Shape {
    let (mut chars, mut vowels, mut digits, mut count) = (BTreeSet::new(), 0usize, 0usize, 0usize);
    let mut parents = BTreeMap::new();
    let mut total = 0usize;
    for name in names {
        let (label, parent) = name.split_once('.').unwrap();
        *parents.entry(parent.to_string()).or_insert(0) += 1;
        for c in label.chars() {
            chars.insert(c);
            vowels += usize::from("aeiou".contains(c));
            digits += usize::from(c.is_ascii_digit());
        }
        total += label.len();
        count += 1;
    }
    Shape {
        alphabet: chars,
        vowels: vowels as f64 / total as f64,
        digits: digits as f64 / total as f64,
        mean_len: total as f64 / count as f64,
        parents,
    }
}

#[test]
fn generators_follow_the_real_samples() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/domains/dga/chrmor_dga_domains_sample.csv");
    if !common::present(&[&sample]) {
        return;
    }
    let text = std::fs::read_to_string(&sample).unwrap();
    let mut real: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        let mut it = line.split(',');
        if let (Some("dga"), Some(family), Some(name)) = (it.next(), it.next(), it.next()) {
            real.entry(family)
                .or_default()
                .push(name.to_ascii_lowercase());
        }
    }
    let mut compared = 0;
    for family in HELD_OUT.iter().filter(|f| !f.dictionary) {
        let Some(names) = real.get(family.name) else {
            continue;
        };
        let mut ours = Vec::new();
        for day in 0..4 {
            (family.generate)(5000 + day, 500, &mut ours);
        }
        let (want, got) = (
            shape(names.iter().map(String::as_str)),
            shape(ours.iter().map(String::as_str)),
        );
        let f = family.name;
        assert!(names.len() >= 150, "{f}: {} real names", names.len());
        assert_eq!(got.alphabet, want.alphabet, "{f}: alphabet");
        assert!(
            (got.vowels - want.vowels).abs() < 0.03,
            "{f}: {got:?} {want:?}"
        );
        assert!(
            (got.digits - want.digits).abs() < 0.03,
            "{f}: {got:?} {want:?}"
        );
        assert!(
            (got.mean_len - want.mean_len).abs() < 1.0,
            "{f}: {got:?} {want:?}"
        );
        let known: usize = (got.parents.iter())
            .filter(|(p, _)| want.parents.contains_key(*p))
            .map(|(_, n)| n)
            .sum();
        assert!(known * 10 >= ours.len() * 9, "{f}: {got:?} {want:?}");
        compared += 1;
    }
    // Tinba, Corebot and Kraken are in the sample; Dyre is not.
    assert_eq!(compared, 3);
}
