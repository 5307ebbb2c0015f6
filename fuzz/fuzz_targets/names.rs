//! Domain model on arbitrary bytes: features stay within their bounds, scores in 0..1, the
//! portable and AVX2 kernels agree; and arbitrary model files load or fail, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use palisade_classifiers::features::{NameFeatures, MAX_TOKENS, NGRAM_BUCKETS};
use palisade_classifiers::psl::Psl;
use palisade_classifiers::DomainModel;
use std::sync::OnceLock;

static MODELS: OnceLock<(DomainModel, DomainModel)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let (fast, portable) = MODELS.get_or_init(|| {
        let m = DomainModel::bundled();
        let mut p = m.clone();
        p.mlp_mut().set_portable();
        (m, p)
    });
    let s = fast.score(data);
    assert!((0.0..=1.0).contains(&s), "{s}");
    let mut f = NameFeatures::default();
    fast.features(data, &mut f);
    assert!(f.tokens <= MAX_TOKENS);
    assert!(f.idx[..f.tokens].iter().all(|&i| (i as usize) < NGRAM_BUCKETS));
    assert!(f.lex.iter().all(|v| v.is_finite()));
    let (a, b) = (fast.mlp().logit(&f), portable.mlp().logit(&f));
    assert!((a - b).abs() <= 1e-3 * (1.0 + a.abs()), "{a} {b}");
    // The same bytes as a model file (and as a file with a real header's prefix).
    let _ = DomainModel::from_bytes(data, Psl::default());
    let mut doctored = palisade_classifiers::domain::BUNDLED[..8.min(data.len())].to_vec();
    doctored.extend_from_slice(data);
    let _ = DomainModel::from_bytes(&doctored, Psl::default());
});
