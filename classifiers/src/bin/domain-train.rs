//! Trains the domain model with tch (libtorch) and writes its safetensors weights.
//!
//! ```text
//! cargo run -p palisade-classifiers --features train --release --bin domain-train -- \
//!     [--out classifiers/models/domain.safetensors] [--hsts target/hsts-names.txt]
//!     [--shared ../shared/data] [--epochs 8] [--wd 1e-4] [--seed 1] [--h1 64] [--h2 32]
//!     [--limit N] [--csv LABELLED.csv]... [--maltrail-weight 0.3] [--benign-weight 1] [--swa 3]
//!     [--reparent 0.25] [--hosts 0.25] [--held-out-fifth 0] [--ngram-drop 0] [--ceiling]
//! ```
//! `--hosts` is the share of training names also trained on under an ordinary host part
//! (`www.`, `api-eu.`, `i9.`: `hosts.rs`); `--ngram-drop` (an experiment, off) blanks the
//! n-gram inputs of that share of each batch's names.
//! `--held-out-fifth 1` to `4` holds out another fifth of the benign and maltrail names (by
//! registrable domain) and records it in the file, so `domain-eval --model` evaluates on that
//! fifth: five trainings give every benign name a score from a model that never saw it.
//! `--ceiling` (an experiment, never shipped) also trains on the held-out families' generators
//! (their training days; their test days stay unseen) and says so in the file: how far the
//! benign data lets a model go on families it has seen, an upper bound for families it has not.
//! Seeded and single-threaded, so the same inputs give the same weights, bit for bit, on the
//! same machine and libtorch. The data and its split come from
//! `palisade_classifiers::data::domain_data`, which the evaluator shares.

use palisade_classifiers::data::{domain_data, fold_of, Sources};
use palisade_classifiers::dga::Rng;
use palisade_classifiers::features::{NameFeatures, INPUT};
use palisade_classifiers::lm::Counts;
use palisade_classifiers::psl::Psl;
use palisade_classifiers::torch::net;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};

/// Folds for the training names' character models.
const LM_FOLDS: usize = 8;

struct Args {
    out: PathBuf,
    src: Sources,
    epochs: usize,
    seed: u64,
    h1: i64,
    h2: i64,
    limit: usize,
    batch: usize,
    lr: f64,
    wd: f64,
    csv: Vec<PathBuf>,
    maltrail_weight: f32,
    benign_weight: f32,
    swa: usize,
    reparent: f64,
    ngram_drop: f64,
    hosts: f64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        out: PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/models/domain.safetensors"
        )),
        src: Sources::default_paths(),
        epochs: 8,
        seed: 1,
        h1: 64,
        h2: 32,
        limit: usize::MAX,
        batch: 256,
        lr: 2e-3,
        wd: 1e-4,
        csv: Vec::new(),
        maltrail_weight: palisade_classifiers::data::MALTRAIL_WEIGHT,
        benign_weight: 1.0,
        swa: 3,
        reparent: 0.25,
        ngram_drop: 0.0,
        hosts: 0.25,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or_else(|| format!("{k} needs a value"));
        match k.as_str() {
            "--ceiling" => a.src.ceiling = true,
            "--out" => a.out = v()?.into(),
            "--hsts" => a.src.hsts = v()?.into(),
            "--shared" => a.src.shared = v()?.into(),
            "--epochs" => a.epochs = v()?.parse().map_err(|e| format!("--epochs: {e}"))?,
            "--seed" => a.seed = v()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--h1" => a.h1 = v()?.parse().map_err(|e| format!("--h1: {e}"))?,
            "--h2" => a.h2 = v()?.parse().map_err(|e| format!("--h2: {e}"))?,
            "--limit" => a.limit = v()?.parse().map_err(|e| format!("--limit: {e}"))?,
            "--batch" => a.batch = v()?.parse().map_err(|e| format!("--batch: {e}"))?,
            "--csv" => a.csv.push(v()?.into()),
            "--wd" => a.wd = v()?.parse().map_err(|e| format!("--wd: {e}"))?,
            "--maltrail-weight" => {
                a.maltrail_weight = v()?
                    .parse()
                    .map_err(|e| format!("--maltrail-weight: {e}"))?
            }
            "--benign-weight" => {
                a.benign_weight = v()?.parse().map_err(|e| format!("--benign-weight: {e}"))?
            }
            "--swa" => a.swa = v()?.parse().map_err(|e| format!("--swa: {e}"))?,
            "--reparent" => a.reparent = v()?.parse().map_err(|e| format!("--reparent: {e}"))?,
            "--held-out-fifth" => {
                a.src.held_out_fifth = v()?
                    .parse()
                    .ok()
                    .filter(|r| *r < 5)
                    .ok_or("--held-out-fifth: expected 0 to 4")?
            }
            "--ngram-drop" => {
                a.ngram_drop = v()?.parse().map_err(|e| format!("--ngram-drop: {e}"))?
            }
            "--hosts" => a.hosts = v()?.parse().map_err(|e| format!("--hosts: {e}"))?,
            "--lr" => a.lr = v()?.parse().map_err(|e| format!("--lr: {e}"))?,
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    Ok(a)
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("domain-train: {e}");
            std::process::exit(2);
        }
    };
    tch::manual_seed(a.seed as i64);
    tch::set_num_threads(1);
    let psl = Psl::bundled();
    let t0 = Instant::now();
    let data = match domain_data(&a.src, &psl) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("domain-train: {e}");
            std::process::exit(1);
        }
    };
    // Users' own labelled names (CSV: name, label[, family]) join the training set.
    let mut data = data;
    for p in &a.csv {
        match palisade_classifiers::data::read_labelled_csv(p) {
            Ok(rows) => {
                eprintln!(
                    "domain-train: {}: {} labelled names",
                    p.display(),
                    rows.len()
                );
                for r in rows {
                    data.train.push(palisade_classifiers::data::Example {
                        name: r.name,
                        label: if r.malicious { 1.0 } else { 0.0 },
                        source: format!("csv/{}", r.family),
                        weight: 1.0,
                    });
                }
            }
            Err(e) => {
                eprintln!("domain-train: {e}");
                std::process::exit(1);
            }
        }
    }
    for e in &mut data.train {
        if e.source.starts_with("maltrail/") {
            e.weight = a.maltrail_weight;
        }
    }
    data.train.retain(|e| e.weight > 0.0);
    let train: Vec<_> = data.train.iter().take(a.limit).collect();
    let pos = train.iter().filter(|e| e.label > 0.5).count();
    let neg = train.len() - pos;
    let mut by_source: HashMap<&str, usize> = HashMap::new();
    for e in &train {
        let s = e.source.split('/').next().unwrap_or("");
        *by_source.entry(s).or_default() += 1;
    }
    let mut sources: Vec<_> = by_source.into_iter().collect();
    sources.sort();
    eprintln!(
        "domain-train: {} examples ({pos} malicious, {neg} benign) in {:.1} s; by source: {sources:?}",
        train.len(),
        t0.elapsed().as_secs_f64()
    );
    // The character model of benign names: the shipped one from every benign training name;
    // each training name's features use one built without its fold's benign names, so the
    // model learns from surprise as it will be on names the table has never counted.
    let t = Instant::now();
    let folds: Vec<usize> = train
        .iter()
        .map(|e| fold_of(&psl, &e.name, LM_FOLDS))
        .collect();
    let lm_without = |skip: Option<usize>| {
        let mut c = Counts::default();
        for (e, &k) in train.iter().zip(&folds) {
            if e.label < 0.5 && skip != Some(k) {
                c.add_name(&e.name);
            }
        }
        c.build()
    };
    let lm = lm_without(None);
    let fold_lms: Vec<_> = (0..LM_FOLDS).map(|k| lm_without(Some(k))).collect();
    // Copies of a share of the training names under another name (`rename`, `None`: no copy),
    // label and fold kept; one generator per kind of copy, so each kind's draws stay the same.
    let mut copies = Vec::new();
    let mut copy_folds = Vec::new();
    let mut copy =
        |seed: u64, share: f64, rename: &mut dyn FnMut(&mut Rng, &str) -> Option<String>| {
            let mut r = Rng::new(a.seed ^ seed);
            let before = copies.len();
            for (e, &k) in train.iter().zip(&folds) {
                if r.unit() >= share {
                    continue;
                }
                if let Some(name) = rename(&mut r, &e.name) {
                    let mut c = (*e).clone();
                    c.name = name;
                    copies.push(c);
                    copy_folds.push(k);
                }
            }
            copies.len() - before
        };
    // Re-parented copies (--reparent, the share): names of every class, benign ones too, moved
    // under a random dynamic-DNS zone with their label, registrable label and fold kept, and not
    // counted in the character models. Anyone can register a host under such a zone, so what
    // the name says lies in its own label; the copies teach that the zone alone is no verdict
    // either way (a random label under `mooo.com` is as suspicious as under `.com`, a word
    // under `duckdns.org` as harmless).
    let zones = psl.dynamic_zones();
    let n = copy(0x5e9a_7e17, a.reparent, &mut |r, name| {
        let sp = psl.split(name);
        (sp.suffix != 0 && sp.label < sp.suffix)
            .then(|| format!("{}{}", &name[..sp.suffix], r.pick(&zones)))
    });
    eprintln!("domain-train: {n} re-parented copies");
    // Host copies (--hosts, the share): names of every class under an ordinary host part
    // (`www.`, `mail2.`, `i9.`; `hosts.rs`). Nearly every name in traffic has one, the benign
    // list nearly none; without them the network learns the host part as a sign of malice.
    let n = copy(0x4057_5eed, a.hosts, &mut |r, name| {
        let n = palisade_classifiers::hosts::under(r, false, name);
        (n.len() <= palisade_classifiers::features::MAX_NAME).then_some(n)
    });
    eprintln!("domain-train: {n} copies under host names");
    let mut folds = folds;
    folds.extend(copy_folds);
    let train: Vec<&palisade_classifiers::data::Example> =
        train.into_iter().chain(copies.iter()).collect();
    eprintln!(
        "domain-train: character models in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // Features once, kept dense-ready as (tokens, weight, lex).
    let mut feats: Vec<NameFeatures> = Vec::with_capacity(train.len());
    for (e, &k) in train.iter().zip(&folds) {
        let mut f = NameFeatures::default();
        f.extract(&psl, &fold_lms[k], e.name.as_bytes());
        feats.push(f);
    }
    // Classes weigh the same in the loss.
    let wsum = |l: bool| -> f32 {
        train
            .iter()
            .filter(|e| (e.label > 0.5) == l)
            .map(|e| e.weight)
            .sum()
    };
    // --benign-weight tilts that balance towards the benign side (fewer false positives).
    let w_pos = if pos > 0 {
        wsum(false) / wsum(true) / a.benign_weight
    } else {
        1.0
    };

    let vs = nn::VarStore::new(Device::Cpu);
    let model = net(&vs.root(), a.h1, a.h2);
    let mut opt = match (nn::Adam {
        wd: a.wd,
        ..Default::default()
    })
    .build(&vs, a.lr)
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("domain-train: optimiser: {e}");
            std::process::exit(1);
        }
    };
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut xbuf = vec![0f32; a.batch * INPUT];
    let mut swa_sum: HashMap<String, Tensor> = HashMap::new();
    let mut swa_n = 0usize;
    for epoch in 0..a.epochs {
        let mut r = Rng::new(a.seed.wrapping_mul(1000).wrapping_add(epoch as u64));
        for i in (1..order.len()).rev() {
            let j = r.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
        // The learning rate drops to a quarter for the last epochs (two, or the --swa ones).
        let lr = if epoch + a.swa.max(2) >= a.epochs {
            a.lr / 4.0
        } else {
            a.lr
        };
        opt.set_lr(lr);
        let t = Instant::now();
        let mut total = 0f64;
        let mut batches = 0;
        for chunk in order.chunks(a.batch) {
            let b = chunk.len();
            let x = &mut xbuf[..b * INPUT];
            let mut y = Vec::with_capacity(b);
            let mut w = Vec::with_capacity(b);
            for (k, &i) in chunk.iter().enumerate() {
                feats[i].dense(&mut x[k * INPUT..(k + 1) * INPUT]);
                if a.ngram_drop > 0.0 && r.unit() < a.ngram_drop {
                    x[k * INPUT..k * INPUT + palisade_classifiers::features::NGRAM_BUCKETS]
                        .fill(0.0);
                }
                y.push(train[i].label);
                w.push(train[i].weight * if train[i].label > 0.5 { w_pos } else { 1.0 });
            }
            let xt = Tensor::from_slice(x).view([b as i64, INPUT as i64]);
            let yt = Tensor::from_slice(&y).view([b as i64, 1]);
            let wt = Tensor::from_slice(&w).view([b as i64, 1]);
            let logits = model.forward(&xt);
            let loss = logits.binary_cross_entropy_with_logits::<&Tensor>(
                &yt,
                Some(&wt),
                None,
                tch::Reduction::Mean,
            );
            opt.backward_step(&loss);
            total += loss.double_value(&[]);
            batches += 1;
        }
        eprintln!(
            "epoch {epoch}: loss {:.5} lr {lr:.1e} ({:.1} s)",
            total / batches.max(1) as f64,
            t.elapsed().as_secs_f64()
        );
        // Weight averaging over the last --swa epochs.
        if epoch + a.swa >= a.epochs {
            swa_n += 1;
            tch::no_grad(|| {
                for (k, t) in vs.variables() {
                    swa_sum
                        .entry(k)
                        .and_modify(|s| *s += &t)
                        .or_insert_with(|| t.copy());
                }
            });
        }
    }
    if swa_n > 1 {
        tch::no_grad(|| {
            for (k, mut t) in vs.variables() {
                if let Some(s) = swa_sum.get(&k) {
                    t.copy_(&(s / swa_n as f64));
                }
            }
        });
    }
    // The n-gram rows of the first layer are served as bfloat16 (half the cache footprint):
    // round them here, so the saved weights, tch and the Rust server all use the same values.
    tch::no_grad(|| {
        for (name, t) in vs.variables() {
            if name == "l1.weight" {
                let cols = palisade_classifiers::features::NGRAM_BUCKETS as i64;
                let rounded = t
                    .narrow(1, 0, cols)
                    .to_kind(Kind::BFloat16)
                    .to_kind(Kind::Float);
                t.narrow(1, 0, cols).copy_(&rounded);
            }
        }
    });
    // Thresholds on the held-out benign names, recorded in the file so a deployment can start
    // from a known false-positive rate: the score above which 1e-3 and 1e-4 of them fall.
    let mut neg_logits: Vec<f32> = Vec::with_capacity(data.test_benign.len());
    for chunk in data.test_benign.chunks(a.batch) {
        let b = chunk.len();
        let x = &mut xbuf[..b * INPUT];
        for (k, n) in chunk.iter().enumerate() {
            let mut f = NameFeatures::default();
            f.extract(&psl, &lm, n.as_bytes());
            f.dense(&mut x[k * INPUT..(k + 1) * INPUT]);
        }
        let xt = Tensor::from_slice(x).view([b as i64, INPUT as i64]);
        let out = tch::no_grad(|| model.forward(&xt)).view([-1]);
        neg_logits.extend(Vec::<f32>::try_from(&out).unwrap_or_default());
    }
    let thresholds: Vec<(String, f32)> = [("1e-3", 1e-3), ("1e-4", 1e-4)]
        .iter()
        .map(|(k, fpr)| {
            let t = palisade_classifiers::metrics::threshold_at(&neg_logits, *fpr);
            (
                format!("threshold_fpr_{k}"),
                palisade_classifiers::mlp::sigmoid(t),
            )
        })
        .collect();
    eprintln!(
        "domain-train: thresholds on {} held-out benign names: {thresholds:?}",
        neg_logits.len()
    );
    // Write the weights with the metadata the server checks.
    let mut meta: Vec<(String, String)> = [
        ("model", "domain".to_string()),
        (
            "features",
            palisade_classifiers::features::FEATURES_VERSION.to_string(),
        ),
        ("seed", a.seed.to_string()),
        ("epochs", a.epochs.to_string()),
        ("hidden", format!("{}x{}", a.h1, a.h2)),
        ("lr", a.lr.to_string()),
        ("weight_averaging_epochs", a.swa.to_string()),
        ("weight_decay", a.wd.to_string()),
        ("examples", train.len().to_string()),
        (
            "data",
            "hstspreload 2025.1.1 (benign); dga generators + maltrail malware families (malicious)"
                .to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    // Only a cross-fitting run says which fifth it held out (the shipped file keeps its bytes).
    if a.src.held_out_fifth != 0 {
        meta.push((
            "held_out_fifth".to_string(),
            a.src.held_out_fifth.to_string(),
        ));
    }
    if a.src.ceiling {
        meta.push(("ceiling_experiment".to_string(), "1".to_string()));
    }
    meta.extend(
        thresholds
            .iter()
            .map(|(k, v)| (k.clone(), format!("{v:.6}"))),
    );
    if let Err(e) = palisade_classifiers::torch::save(
        &vs,
        &[(palisade_classifiers::domain::LM_TENSOR, lm.cost())],
        meta,
        &a.out,
    ) {
        eprintln!("domain-train: {e}");
        std::process::exit(1);
    }
    eprintln!(
        "domain-train: wrote {} in {:.1} s total",
        a.out.display(),
        t0.elapsed().as_secs_f64()
    );
}
