//! Domain model on arbitrary bytes: features stay within their bounds, scores in 0..1, the
//! portable and AVX2 kernels agree; arbitrary model files load or fail, never panic; the flow
//! model scores any record in 0..1, its SIMD and portable kernels to the same bits.
#![no_main]
use libfuzzer_sys::fuzz_target;
use palisade_classifiers::features::{NameFeatures, MAX_TOKENS, NGRAM_BUCKETS};
use palisade_classifiers::flow::{FlowModel, FlowRecord, FLOW_PKTS};
use palisade_classifiers::psl::Psl;
use palisade_classifiers::DomainModel;
use std::sync::OnceLock;

static MODELS: OnceLock<(DomainModel, DomainModel)> = OnceLock::new();
static FLOWS: OnceLock<(FlowModel, FlowModel)> = OnceLock::new();

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
    // The flow model on a record made of the same bytes, and its CSV reader on them as text.
    let mut r = FlowRecord::default();
    let mut it = data.iter().copied();
    let mut next = || it.next().unwrap_or(0);
    r.proto = next();
    r.server_port = u16::from_le_bytes([next(), next()]);
    r.n = next();
    for i in 0..FLOW_PKTS {
        r.size[i] = i32::from_le_bytes([next(), next(), next(), next()]);
        r.gap_us[i] = u32::from_le_bytes([next(), next(), next(), next()]);
        r.flags[i] = next();
    }
    r.pkts = [u64::from(next()) << 56, u64::from(next())];
    r.app = next();
    r.name_score = f32::from_le_bytes([next(), next(), next(), next()]);
    let (flow, flow_portable) = FLOWS.get_or_init(|| {
        let m = FlowModel::bundled();
        let mut p = m.clone();
        p.set_portable();
        (m, p)
    });
    let s = flow.score(&r);
    assert!((0.0..=1.0).contains(&s), "{s}");
    let x = palisade_classifiers::flow::flow_features(&r);
    let (a, b) = (flow.logit_of(&x), flow_portable.logit_of(&x));
    assert_eq!(a.to_bits(), b.to_bits(), "{a} {b}");
    if let Ok(text) = std::str::from_utf8(data) {
        let f: Vec<&str> = text.split(',').collect();
        let _ = FlowRecord::from_csv(&f);
    }
});
