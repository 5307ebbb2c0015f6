//! Trains the flow model with tch on labelled flow records (`classifiers/flows/records.csv`,
//! made by `classifiers/flows/capture.sh` and `palisade flow-features`) and writes
//! `models/flow.safetensors`. Runs 1-3 of every scenario train, run 4 is held out.
//!
//! ```text
//! cargo run -p palisade-classifiers --features train --release --bin flow-train -- \
//!     [--csv classifiers/flows/records.csv] [--out classifiers/models/flow.safetensors]
//!     [--epochs 400] [--seed 1] [--h1 32] [--h2 16]
//! ```

use palisade_classifiers::flow::{flow_features, read_flows, FLOW_FEATURES_VERSION, FLOW_INPUT};
use palisade_classifiers::metrics::threshold_at;
use palisade_classifiers::mlp::sigmoid;
use std::path::PathBuf;
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Tensor};

/// The held-out run.
const TEST_RUN: u32 = 4;

fn main() {
    let mut csv = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/flows/records.csv"));
    let mut out = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/flow.safetensors"
    ));
    let (mut epochs, mut seed, mut h1, mut h2) = (400usize, 1u64, 32i64, 16i64);
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_default();
        let bad = |e: &dyn std::fmt::Display| -> ! {
            eprintln!("flow-train: {k}: {e}");
            std::process::exit(2)
        };
        match k.as_str() {
            "--csv" => csv = v.into(),
            "--out" => out = v.into(),
            "--epochs" => epochs = v.parse().unwrap_or_else(|e| bad(&e)),
            "--seed" => seed = v.parse().unwrap_or_else(|e| bad(&e)),
            "--h1" => h1 = v.parse().unwrap_or_else(|e| bad(&e)),
            "--h2" => h2 = v.parse().unwrap_or_else(|e| bad(&e)),
            _ => bad(&"unknown argument"),
        }
    }
    tch::manual_seed(seed as i64);
    tch::set_num_threads(1);
    let flows = read_flows(&csv).unwrap_or_else(|e| {
        eprintln!("flow-train: {e}");
        std::process::exit(1)
    });
    let (test, train): (Vec<_>, Vec<_>) = flows.iter().partition(|f| f.run() == TEST_RUN);
    let pos = train.iter().filter(|f| f.label > 0.5).count();
    let neg = train.len() - pos;
    eprintln!(
        "flow-train: {} train flows ({pos} malicious, {neg} benign), {} held out",
        train.len(),
        test.len()
    );
    let to_x = |set: &[&palisade_classifiers::flow::LabelledFlow]| -> Tensor {
        let mut x = Vec::with_capacity(set.len() * FLOW_INPUT);
        for f in set {
            x.extend_from_slice(&flow_features(&f.record));
        }
        Tensor::from_slice(&x).view([set.len() as i64, FLOW_INPUT as i64])
    };
    let x = to_x(&train);
    let y = Tensor::from_slice(&train.iter().map(|f| f.label).collect::<Vec<_>>()).view([-1, 1]);
    let w_pos = neg as f32 / pos.max(1) as f32;
    let w = Tensor::from_slice(
        &train
            .iter()
            .map(|f| if f.label > 0.5 { w_pos } else { 1.0 })
            .collect::<Vec<_>>(),
    )
    .view([-1, 1]);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = palisade_classifiers::torch::dense_net(&vs.root(), FLOW_INPUT as i64, h1, h2);
    let mut opt = (nn::Adam {
        wd: 1e-4,
        ..Default::default()
    })
    .build(&vs, 3e-3)
    .unwrap_or_else(|e| {
        eprintln!("flow-train: {e}");
        std::process::exit(1)
    });
    for epoch in 0..epochs {
        let loss = net.forward(&x).binary_cross_entropy_with_logits::<&Tensor>(
            &y,
            Some(&w),
            None,
            tch::Reduction::Mean,
        );
        opt.backward_step(&loss);
        if epoch % 100 == 0 || epoch + 1 == epochs {
            eprintln!("epoch {epoch}: loss {:.5}", loss.double_value(&[]));
        }
    }
    // Threshold: the 1e-3 false-positive point of the training runs' benign flows (the held-out
    // run is for evaluation).
    let benign: Vec<&_> = train.iter().copied().filter(|f| f.label < 0.5).collect();
    let logits: Vec<f32> =
        Vec::try_from(&tch::no_grad(|| net.forward(&to_x(&benign))).view([-1])).unwrap_or_default();
    let t3 = sigmoid(threshold_at(&logits, 1e-3));
    eprintln!(
        "flow-train: threshold at FPR 1e-3 on {} training benign flows: {t3}",
        benign.len()
    );
    let meta: Vec<(String, String)> = [
        ("model", "flow".to_string()),
        ("features", FLOW_FEATURES_VERSION.to_string()),
        ("seed", seed.to_string()),
        ("epochs", epochs.to_string()),
        ("hidden", format!("{h1}x{h2}")),
        ("threshold_fpr_1e-3", format!("{t3:.6}")),
        (
            "data",
            "classifiers/flows/records.csv runs 1-3 (captures made here)".to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Err(e) = palisade_classifiers::torch::save(&vs, &[], meta, &out) {
        eprintln!("flow-train: {e}");
        std::process::exit(1);
    }
    eprintln!("flow-train: wrote {}", out.display());
}
