//! Cost of scoring a name, one core: the plain-Rust server (features + network, AVX2 and
//! portable kernels), and the same network through tch at batch 1 and batch 1024.
//!
//! ```text
//! cargo run --release -p palisade-classifiers --features train --bin domain-bench [-- NAMES]
//! ```
//! The names are the evaluation set's held-out benign names and generated names of every family
//! (about 70,000), scored in a loop; each figure is the median (and the fastest) of 21 passes
//! over them, since this VM's speed drifts by up to 2x within a minute. tch times cover the
//! forward pass on ready dense inputs.

use palisade_classifiers::data::{domain_data, Sources};
use palisade_classifiers::features::{NameFeatures, INPUT};
use palisade_classifiers::psl::Psl;
use palisade_classifiers::DomainModel;
use std::hint::black_box;
use std::time::Instant;
use tch::nn::Module;
use tch::{Device, Tensor};

fn main() {
    tch::set_num_threads(1);
    let psl = Psl::bundled();
    let data = domain_data(&Sources::default_paths(), &psl).unwrap_or_else(|e| {
        eprintln!("domain-bench: {e}");
        std::process::exit(1)
    });
    let mut names: Vec<String> = data.test_benign.clone();
    for (_, v) in data.test_in_family.iter().chain(&data.test_held_out) {
        names.extend(v.iter().cloned());
    }
    let model = DomainModel::bundled();
    let mut portable = model.clone();
    portable.mlp_mut().set_portable();
    let mut avx2 = model.clone();
    avx2.mlp_mut().set_avx2();
    let n = names.len();
    let time = |what: &str, m: &DomainModel| {
        let mut acc = 0f32;
        let (ns, fastest) = passes(n, || {
            for name in &names {
                acc += m.score(black_box(name.as_bytes()));
            }
        });
        println!("{what}: {ns:.0} ns/name (fastest pass {fastest:.0}; {n} names x {PASSES}; checksum {acc:.1})");
        ns
    };
    let fast = time(
        &format!(
            "rust, features + network ({} kernels, the best this CPU has)",
            model.mlp().kernel()
        ),
        &model,
    );
    time(
        &format!("rust, features + network ({} kernels)", avx2.mlp().kernel()),
        &avx2,
    );
    time("rust, features + network (portable kernels)", &portable);
    // Features alone.
    let mut f = NameFeatures::default();
    let (feat, _) = passes(n, || {
        for name in &names {
            model.features(black_box(name.as_bytes()), &mut f);
            black_box(&f);
        }
    });
    println!(
        "rust, features only: {feat:.0} ns/name; network only: {:.0} ns/name",
        fast - feat
    );

    // The flow model on the labelled flow records.
    let flows = palisade_classifiers::flow::read_flows(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/flows/records.csv"
    )))
    .unwrap_or_default();
    if !flows.is_empty() {
        let best = palisade_classifiers::flow::FlowModel::bundled();
        let mut portable = best.clone();
        portable.set_portable();
        let (ns, _) = passes(flows.len(), || {
            for f in &flows {
                black_box(palisade_classifiers::flow::flow_features(black_box(
                    &f.record,
                )));
            }
        });
        println!("rust flow model, features only: {ns:.0} ns/flow");
        for fm in [&best, &portable] {
            let mut acc = 0f32;
            let (ns, fastest) = passes(flows.len(), || {
                for f in &flows {
                    acc += fm.score(black_box(&f.record));
                }
            });
            println!(
                "rust flow model, features + network ({} kernels): {ns:.0} ns/flow (fastest pass {fastest:.0}; {} flows x {PASSES}; checksum {acc:.1})",
                fm.kernel(),
                flows.len()
            );
        }
    }

    // tch: the same weights.
    let batch = 1024usize;
    let mut x = vec![0f32; batch * INPUT];
    for (k, name) in names.iter().take(batch).enumerate() {
        model.features(name.as_bytes(), &mut f);
        f.dense(&mut x[k * INPUT..(k + 1) * INPUT]);
    }
    let (h1, h2) = model.mlp().shape();
    let (b1, bb) = time_tch("models/domain.safetensors", INPUT, (h1, h2), &x, batch, 200);
    println!("tch forward, batch 1: {b1:.0} ns/name; batch {batch}: {bb:.0} ns/name (dense inputs ready, features not counted)");
    println!(
        "ratio: rust (with features) is {:.1}x faster than tch batch 1, {:.2}x tch batch {batch}",
        b1 / fast,
        bb / fast
    );

    // The flow model through tch, batch 1 and 1024, on the flow records' features.
    if flows.len() >= batch {
        use palisade_classifiers::flow::{flow_features, FlowModel, FLOW_INPUT};
        let mut x = Vec::with_capacity(batch * FLOW_INPUT);
        for f in flows.iter().take(batch) {
            x.extend_from_slice(&flow_features(&f.record));
        }
        let shape = FlowModel::bundled().shape();
        let (b1, bb) = time_tch(
            "models/flow.safetensors",
            FLOW_INPUT,
            shape,
            &x,
            batch,
            2_000,
        );
        println!("tch flow model forward, batch 1: {b1:.0} ns/flow; batch {batch}: {bb:.0} ns/flow (features ready)");
    }
}

/// Passes over the inputs per figure.
const PASSES: usize = 21;

/// Runs `pass` (one pass over `items` inputs) once to warm up, then [`PASSES`] times: the median
/// and the fastest pass's ns per input.
fn passes(items: usize, mut pass: impl FnMut()) -> (f64, f64) {
    pass();
    let mut ns: Vec<f64> = (0..PASSES)
        .map(|_| {
            let t = Instant::now();
            pass();
            t.elapsed().as_nanos() as f64 / items.max(1) as f64
        })
        .collect();
    ns.sort_by(f64::total_cmp);
    (ns[PASSES / 2], ns[0])
}

/// Loads a model file (relative to the crate) into tch and times its forward pass on the first
/// row of `x` (batch 1, 20,000 times) and on all `batch` rows (`reps` times): ns per example.
fn time_tch(
    file: &str,
    input: usize,
    (h1, h2): (usize, usize),
    x: &[f32],
    batch: usize,
    reps: usize,
) -> (f64, f64) {
    let mut vs = tch::nn::VarStore::new(Device::Cpu);
    let net =
        palisade_classifiers::torch::dense_net(&vs.root(), input as i64, h1 as i64, h2 as i64);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    if let Err(e) = vs.load(&path) {
        eprintln!("domain-bench: {}: {e}", path.display());
        std::process::exit(1)
    }
    let xb = Tensor::from_slice(x).view([batch as i64, input as i64]);
    let x1 = xb.narrow(0, 0, 1).contiguous();
    tch::no_grad(|| {
        for _ in 0..100 {
            let _ = black_box(net.forward(&x1));
        }
        let ones = 20_000;
        let t = Instant::now();
        for _ in 0..ones {
            let _ = black_box(net.forward(&x1));
        }
        let b1 = t.elapsed().as_nanos() as f64 / ones as f64;
        let t = Instant::now();
        for _ in 0..reps {
            let _ = black_box(net.forward(&xb));
        }
        (b1, t.elapsed().as_nanos() as f64 / (reps * batch) as f64)
    })
}
