//! The plain-Rust server against tch on the shipped weights (|score difference| <= 1e-4), and
//! training's reproducibility. Needs libtorch: `--features train` (see MODEL.md).
#![cfg(feature = "train")]
#![allow(clippy::unwrap_used)]

use palisade_classifiers::features::{NameFeatures, INPUT};
use palisade_classifiers::mlp::sigmoid;
use palisade_classifiers::psl::Psl;
use palisade_classifiers::DomainModel;
use std::path::Path;
use tch::nn::Module;
use tch::{Device, Tensor};

mod common;

#[test]
fn rust_scores_match_tch_on_the_shipped_weights() {
    tch::set_num_threads(1);
    let m = DomainModel::bundled();
    let (h1, h2) = m.mlp().shape();
    let mut vs = tch::nn::VarStore::new(Device::Cpu);
    let net = palisade_classifiers::torch::net(&vs.root(), h1 as i64, h2 as i64);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/domain.safetensors");
    vs.load(&path).unwrap();
    // Fixed inputs: generated names of every family, ordinary names, odd bytes.
    let mut names: Vec<String> = [
        "google.com",
        "www.wikipedia.org",
        "mail.example.co.uk",
        "a.b.c.d.e.f.example.com.br",
        "xn--80ak6aa92e.com",
        "localhost",
        "",
        "-.-",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for f in palisade_classifiers::dga::TRAIN
        .iter()
        .chain(palisade_classifiers::dga::HELD_OUT)
    {
        (f.generate)(11, 20, &mut names);
    }
    let psl = Psl::bundled();
    let mut x = vec![0f32; names.len() * INPUT];
    let mut feats = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let mut f = NameFeatures::default();
        f.extract(&psl, m.lm(), n.as_bytes());
        f.dense(&mut x[i * INPUT..(i + 1) * INPUT]);
        feats.push(f);
    }
    let xt = Tensor::from_slice(&x).view([names.len() as i64, INPUT as i64]);
    let logits: Vec<f32> = Vec::try_from(&tch::no_grad(|| net.forward(&xt)).view([-1])).unwrap();
    let mut worst = 0f32;
    for (i, n) in names.iter().enumerate() {
        let ours = m.score(n.as_bytes());
        let theirs = sigmoid(logits[i]);
        let d = (ours - theirs).abs();
        assert!(d <= 1e-4, "{n:?}: rust {ours} tch {theirs}");
        worst = worst.max(d);
        // The logits agree too (relative: large logits saturate the sigmoid).
        let (a, b) = (m.mlp().logit(&feats[i]), logits[i]);
        assert!(
            (a - b).abs() <= 1e-3 * (1.0 + b.abs()),
            "{n:?}: logit {a} vs {b}"
        );
    }
    eprintln!("{} names, worst score difference {worst:e}", names.len());
}

/// Whether two safetensors files hold the same tensors (and metadata, when asked), whatever the
/// order of their headers' keys.
fn same(a: &[u8], b: &[u8], with_metadata: bool) -> bool {
    let (x, y) = (
        safetensors::SafeTensors::deserialize(a).unwrap(),
        safetensors::SafeTensors::deserialize(b).unwrap(),
    );
    let (mx, my) = (
        safetensors::SafeTensors::read_metadata(a).unwrap().1,
        safetensors::SafeTensors::read_metadata(b).unwrap().1,
    );
    let mut names = x.names();
    names.sort();
    let mut names_y = y.names();
    names_y.sort();
    names == names_y
        && (!with_metadata || mx.metadata() == my.metadata())
        && names
            .iter()
            .all(|n| x.tensor(n).unwrap().data() == y.tensor(n).unwrap().data())
}

/// Runs a trainer with seeds 1, 1 and 2 (plus `args`) and checks that the same seed gives the
/// same file, byte for byte (the model's version is its digest), and another seed other tensors.
fn assert_reproducible(bin: &str, args: &[&str]) {
    let name = Path::new(bin)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let dir = std::env::temp_dir().join(format!("palisade-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut outs = Vec::new();
    for (i, seed) in ["1", "1", "2"].iter().enumerate() {
        let out = dir.join(format!("m{i}.safetensors"));
        let st = std::process::Command::new(bin)
            .args(args)
            .args(["--seed", seed, "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        outs.push(std::fs::read(&out).unwrap());
    }
    assert!(
        same(&outs[0], &outs[1], true),
        "{name}: same seed, different weights"
    );
    assert!(outs[0] == outs[1], "{name}: same weights, different bytes");
    assert!(
        !same(&outs[0], &outs[2], false),
        "{name}: the seed changes no weight"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// The flow trainer: the same seed gives the same tensors, another seed others.
#[test]
fn flow_training_is_reproducible() {
    assert_reproducible(env!("CARGO_BIN_EXE_flow-train"), &["--epochs", "30"]);
}

/// Two trainings with the same seed give the same tensors (a short run: 4,000 names, one
/// epoch).
#[test]
fn training_is_reproducible() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let hsts = root.join("../target/hsts-names.txt");
    if !common::present(&[&hsts]) {
        return;
    }
    assert_reproducible(
        env!("CARGO_BIN_EXE_domain-train"),
        &["--epochs", "1", "--limit", "4000"],
    );
}

/// The flow model: Rust against tch on every labelled flow record.
#[test]
fn rust_flow_scores_match_tch() {
    use palisade_classifiers::flow::{flow_features, read_flows, FlowModel, FLOW_INPUT};
    tch::set_num_threads(1);
    let m = FlowModel::bundled();
    let (h1, h2) = m.shape();
    let mut vs = tch::nn::VarStore::new(Device::Cpu);
    let net =
        palisade_classifiers::torch::dense_net(&vs.root(), FLOW_INPUT as i64, h1 as i64, h2 as i64);
    vs.load(Path::new(env!("CARGO_MANIFEST_DIR")).join("models/flow.safetensors"))
        .unwrap();
    let flows =
        read_flows(&Path::new(env!("CARGO_MANIFEST_DIR")).join("flows/records.csv")).unwrap();
    let mut x = Vec::with_capacity(flows.len() * FLOW_INPUT);
    for f in &flows {
        x.extend_from_slice(&flow_features(&f.record));
    }
    let xt = Tensor::from_slice(&x).view([flows.len() as i64, FLOW_INPUT as i64]);
    let logits: Vec<f32> = Vec::try_from(&tch::no_grad(|| net.forward(&xt)).view([-1])).unwrap();
    for (f, l) in flows.iter().zip(&logits) {
        let (ours, theirs) = (m.score(&f.record), sigmoid(*l));
        assert!(
            (ours - theirs).abs() <= 1e-4,
            "{}: rust {ours} tch {theirs}",
            f.file
        );
    }
}
