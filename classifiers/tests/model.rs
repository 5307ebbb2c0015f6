//! The shipped domain model as a user of the crate meets it: it loads, scores any bytes without
//! allocating or panicking, refuses broken files, its AVX2 and portable kernels agree, and its
//! model card's metrics are what these weights give.

#![allow(clippy::unwrap_used)]

use palisade_classifiers::features::NameFeatures;
use palisade_classifiers::psl::Psl;
use palisade_classifiers::DomainModel;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

mod common;

/// Counts allocations made by the current thread.
struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

#[allow(unsafe_code)]
// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(|c| c.get())
}

const NAMES: &[&str] = &[
    "google.com",
    "www.wikipedia.org",
    "mail.example.co.uk",
    "xjkqzvbwpt.ru",
    "kq0qw6o2siwq.org",
    "earnestnessbiophysicalohax.com",
    "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6.cc",
    "d21laxujm54z8h.cloudfront.net",
    "xn--80ak6aa92e.com",
    "localhost",
    "",
    ".",
];

#[test]
fn bundled_model_loads_and_names_its_weights() {
    let m = DomainModel::bundled();
    let v = m.version();
    assert!(
        v.starts_with("domain-") && v.len() == "domain-".len() + 12,
        "{v}"
    );
    assert_eq!(m.mlp().shape(), (64, 32));
    let t3 = m.threshold_at_fpr("1e-3").unwrap();
    let t4 = m.threshold_at_fpr("1e-4").unwrap();
    assert!(0.5 < t3 && t3 < t4 && t4 < 1.0, "{t3} {t4}");
}

#[test]
fn scoring_allocates_nothing_and_stays_in_range() {
    let m = DomainModel::bundled();
    for n in NAMES {
        m.score(n.as_bytes());
    }
    let before = allocs();
    let mut sum = 0f32;
    for _ in 0..200 {
        for n in NAMES {
            let s = m.score(n.as_bytes());
            assert!((0.0..=1.0).contains(&s), "{n}: {s}");
            sum += s;
        }
    }
    assert_eq!(allocs() - before, 0, "allocations while scoring");
    assert!(sum > 0.0);
}

#[test]
fn simd_and_portable_kernels_agree() {
    let fast = DomainModel::bundled();
    let mut avx2 = fast.clone();
    avx2.mlp_mut().set_avx2();
    let mut portable = fast.clone();
    portable.mlp_mut().set_portable();
    eprintln!(
        "kernels: {} (best here), {}, {}",
        fast.mlp().kernel(),
        avx2.mlp().kernel(),
        portable.mlp().kernel()
    );
    let mut f = NameFeatures::default();
    let (mut worst, mut wide) = (0f32, 0f32);
    for n in NAMES {
        fast.features(n.as_bytes(), &mut f);
        let (a, b, c) = (
            fast.mlp().logit(&f),
            avx2.mlp().logit(&f),
            portable.mlp().logit(&f),
        );
        worst = worst.max((a - c).abs()).max((b - c).abs());
        wide = wide.max((a - b).abs());
    }
    // FMA rounds once where mul+add rounds twice; logits stay within a few ulps.
    assert!(worst < 1e-3, "logits differ by {worst}");
    // AVX-512 and AVX2 run the same operations in the same order, wider.
    assert_eq!(wide, 0.0, "AVX-512 and AVX2 logits differ by {wide}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
    #[test]
    fn any_bytes_score_without_panic(name in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
        let m = DomainModel::bundled();
        let s = m.score(&name);
        proptest::prop_assert!((0.0..=1.0).contains(&s));
    }
}

fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = hay
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern in the file");
    let mut v = hay.to_vec();
    v[at..at + from.len()].copy_from_slice(to);
    v
}

/// Another two-dimensional shape with as many elements as `n` = 64 x 4-digit width, written as
/// many characters as the first layer's, so that only the model's own check can tell.
fn same_size_shape(n: usize) -> String {
    (10..100)
        .filter(|&a| a != 64 && n.is_multiple_of(a) && (1000..10000).contains(&(n / a)))
        .map(|a| format!("\"shape\":[{a},{}]", n / a))
        .next()
        .expect("a divisor")
}

#[test]
fn broken_model_files_are_refused_with_a_reason() {
    use palisade_classifiers::features::INPUT;
    let good = palisade_classifiers::domain::BUNDLED;
    let psl = Psl::bundled();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("truncated", good[..good.len() / 2].to_vec()),
        (
            "garbage",
            b"\xff\xff\xff\xff\xff\xff\xff\x7fnot json".to_vec(),
        ),
        // The metadata says another kind of model.
        (
            "kind",
            replace(good, b"\"model\":\"domain\"", b"\"model\":\"flowxx\""),
        ),
        // A tensor of the wrong shape (same byte count, so only the model check can tell).
        (
            "shape",
            replace(
                good,
                format!("\"shape\":[64,{INPUT}]").as_bytes(),
                same_size_shape(64 * INPUT).as_bytes(),
            ),
        ),
        // The character model's table in another type (same byte count).
        (
            "lm",
            replace(good, b"\"dtype\":\"U8\"", b"\"dtype\":\"I8\""),
        ),
    ];
    for (what, bytes) in cases {
        let e = DomainModel::from_bytes(&bytes, psl.clone()).err();
        assert!(e.is_some(), "{what} accepted");
        let e = e.unwrap().0;
        match what {
            "kind" => assert!(e.contains("metadata model"), "{e}"),
            "shape" => assert!(e.contains("l1.weight"), "{e}"),
            "lm" => assert!(e.contains("lm.cost"), "{e}"),
            _ => {}
        }
    }
    let e = DomainModel::from_file(Path::new("/nonexistent/model.safetensors"), psl)
        .err()
        .unwrap();
    assert!(e.0.starts_with("/nonexistent/model.safetensors: "), "{e}");
}

/// The model card's metrics block is what these weights give on this data: "the trained weights
/// reproduce the published metrics". Needs the HSTS names (`.ci/test.sh` lists them into
/// `target/hsts-names.txt`) and `../shared/data`.
#[test]
fn model_card_metrics_are_reproduced() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let hsts = root.join("../target/hsts-names.txt");
    let shared = root.join("../../shared/data");
    if !common::present(&[&hsts, &shared]) {
        return;
    }
    check_card(env!("CARGO_BIN_EXE_domain-eval"));
}

/// Runs an evaluator with `--check MODEL.md` and fails with its output when the card's block
/// differs from what the shipped weights give.
fn check_card(eval: &str) {
    let card = Path::new(env!("CARGO_MANIFEST_DIR")).join("MODEL.md");
    let out = std::process::Command::new(eval)
        .arg("--check")
        .arg(card)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}

mod flow {
    use super::allocs;
    use palisade_classifiers::flow::{flow_features, read_flows, FlowModel, FlowRecord};
    use std::path::Path;

    fn records() -> Vec<palisade_classifiers::flow::LabelledFlow> {
        read_flows(&Path::new(env!("CARGO_MANIFEST_DIR")).join("flows/records.csv")).unwrap()
    }

    #[test]
    fn bundled_flow_model_loads_and_scores_without_allocating() {
        let m = FlowModel::bundled();
        assert!(m.version().starts_with("flow-"));
        assert_eq!(m.shape(), (32, 16));
        let t = m.threshold_at_fpr("1e-3").unwrap();
        assert!(0.0 < t && t < 1.0);
        let flows = records();
        assert!(flows.len() > 2000);
        let before = allocs();
        let mut n = 0;
        for f in &flows {
            let s = m.score(&f.record);
            assert!((0.0..=1.0).contains(&s));
            n += 1;
        }
        assert_eq!(allocs() - before, 0);
        assert_eq!(n, flows.len());
        // The record file's bad lines are located.
        let dir = std::env::temp_dir().join(format!("pal-flows-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad.csv");
        std::fs::write(&p, "label,file\n1,x.pcap,1,6,80\n").unwrap();
        let e = read_flows(&p).unwrap_err();
        assert!(e.ends_with("bad.csv:2: not a flow record"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }

    proptest::proptest! {
        #[test]
        fn any_record_scores_in_range(
            n in 0u8..=255, proto in proptest::num::u8::ANY, port in proptest::num::u16::ANY,
            size in proptest::array::uniform8(proptest::num::i32::ANY),
            gap in proptest::array::uniform8(proptest::num::u32::ANY),
            flags in proptest::array::uniform8(proptest::num::u8::ANY),
            pk in proptest::array::uniform2(proptest::num::u64::ANY),
            by in proptest::array::uniform2(proptest::num::u64::ANY),
            dur in proptest::num::u64::ANY, app in proptest::num::u8::ANY,
            ns in proptest::num::f32::ANY,
        ) {
            let r = FlowRecord { proto, server_port: port, n, size, gap_us: gap, flags, pkts: pk,
                bytes: by, duration_us: dur, app, name_score: ns };
            proptest::prop_assert!(flow_features(&r).iter().all(|v| v.is_finite() && v.abs() <= 4.0));
            let s = FlowModel::bundled().score(&r);
            proptest::prop_assert!((0.0..=1.0).contains(&s));
        }
    }

    #[test]
    fn flow_kernels_agree() {
        let fast = FlowModel::bundled();
        let mut portable = fast.clone();
        portable.set_portable();
        eprintln!(
            "flow kernels: {} (best here), {}",
            fast.kernel(),
            portable.kernel()
        );
        let flows = records();
        let mut differ = 0;
        for f in &flows {
            let x = flow_features(&f.record);
            let (a, c) = (fast.logit_of(&x), portable.logit_of(&x));
            differ += (a.to_bits() != c.to_bits()) as usize;
        }
        // The kernels differ in instructions, not in the order of the sums.
        assert_eq!(differ, 0, "{differ} of {} flows", flows.len());
    }

    /// The flow section of the model card is what these weights give on the held-out run.
    #[test]
    fn flow_card_metrics_are_reproduced() {
        super::check_card(env!("CARGO_BIN_EXE_flow-eval"));
    }
}
