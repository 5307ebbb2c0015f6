//! Evaluates the flow model in plain Rust on the held-out run of the labelled flow records and
//! prints the flow metrics block of `MODEL.md` (`--check` / `--write` as `domain-eval`).
//!
//! ```text
//! flow-eval [--model FILE] [--csv classifiers/flows/records.csv] [--check MODEL.md | --write MODEL.md]
//! ```

use palisade_classifiers::flow::{read_flows, FlowModel};
use palisade_classifiers::metrics::auc;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

const BEGIN: &str = "<!-- flowmetrics:begin (written by flow-eval --write; checked by --check) -->";
const END: &str = "<!-- flowmetrics:end -->";
const TEST_RUN: u32 = 4;

fn main() {
    let mut csv = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/flows/records.csv"));
    let mut model_path: Option<PathBuf> = None;
    let (mut check, mut write) = (None::<PathBuf>, None::<PathBuf>);
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_default();
        match k.as_str() {
            "--csv" => csv = v.into(),
            "--model" => model_path = Some(v.into()),
            "--check" => check = Some(v.into()),
            "--write" => write = Some(v.into()),
            _ => {
                eprintln!("flow-eval: unknown argument {k}");
                std::process::exit(2)
            }
        }
    }
    let model = match &model_path {
        Some(p) => FlowModel::from_file(p).unwrap_or_else(|e| {
            eprintln!("flow-eval: {e}");
            std::process::exit(1)
        }),
        None => FlowModel::bundled(),
    };
    let flows = read_flows(&csv).unwrap_or_else(|e| {
        eprintln!("flow-eval: {e}");
        std::process::exit(1)
    });
    let t = model.threshold_at_fpr("1e-3").unwrap_or(0.5);
    let test: Vec<_> = flows.iter().filter(|f| f.run() == TEST_RUN).collect();
    let scored: Vec<(f32, &_)> = test.iter().map(|f| (model.score(&f.record), *f)).collect();
    if std::env::var("FLOW_EVAL_DEBUG").is_ok() {
        for (s, f) in &scored {
            eprintln!("{s:.5} {} {}", f.scenario(), f.record.to_csv());
        }
    }
    let (mut tp, mut fp, mut tn, mut fneg) = (0, 0, 0, 0);
    let mut by: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (s, f) in &scored {
        let hit = *s >= t;
        let e = by.entry(f.scenario()).or_default();
        e.0 += 1;
        e.1 += hit as usize;
        match (f.label > 0.5, hit) {
            (true, true) => tp += 1,
            (true, false) => fneg += 1,
            (false, true) => fp += 1,
            (false, false) => tn += 1,
        }
    }
    let pos: Vec<f32> = scored
        .iter()
        .filter(|x| x.1.label > 0.5)
        .map(|x| x.0)
        .collect();
    let neg: Vec<f32> = scored
        .iter()
        .filter(|x| x.1.label < 0.5)
        .map(|x| x.0)
        .collect();
    let mut md = String::new();
    let _ = writeln!(md, "{BEGIN}");
    let _ = writeln!(
        md,
        "Model `{}`, alert threshold {t:.6} (the 1e-3 false-positive point of the training runs' \
         benign flows). Held-out run {TEST_RUN}: {} flows.\n",
        model.version(),
        test.len()
    );
    let prec = tp as f64 / (tp + fp).max(1) as f64;
    let rec = tp as f64 / (tp + fneg).max(1) as f64;
    let _ = writeln!(
        md,
        "Precision {:.4}, recall {:.4}, AUC {}.\n",
        prec,
        rec,
        auc(&pos, &neg).map_or("-".into(), |a| format!("{a:.5}"))
    );
    let _ = writeln!(
        md,
        "| confusion | predicted malicious | predicted benign |\n|---|---:|---:|"
    );
    let _ = writeln!(md, "| malicious | {tp} | {fneg} |");
    let _ = writeln!(md, "| benign | {fp} | {tn} |\n");
    let _ = writeln!(
        md,
        "| scenario | flows | at or above the threshold |\n|---|---:|---:|"
    );
    for (sc, (n, hit)) in &by {
        let _ = writeln!(
            md,
            "| {sc} | {n} | {hit} ({:.1}%) |",
            100.0 * *hit as f64 / (*n).max(1) as f64
        );
    }
    let _ = writeln!(md, "{END}");
    print!("{md}");
    let block = |card: &str| -> Option<(usize, usize)> {
        let s = card.find(BEGIN)?;
        Some((s, card[s..].find(END)? + s + END.len()))
    };
    if let Some(p) = check {
        let card = std::fs::read_to_string(&p).unwrap_or_default();
        match block(&card) {
            Some((s, e)) if card[s..e].trim() == md.trim() => {
                eprintln!("flow-eval: {} reproduced", p.display())
            }
            _ => {
                eprintln!(
                    "flow-eval: {}: the flow metrics differ from what these weights give",
                    p.display()
                );
                std::process::exit(1)
            }
        }
    }
    if let Some(p) = write {
        let card = std::fs::read_to_string(&p).unwrap_or_default();
        let new = match block(&card) {
            Some((s, e)) => format!("{}{}{}", &card[..s], md.trim_end(), &card[e..]),
            None => format!("{card}\n{md}"),
        };
        if let Err(e) = std::fs::write(&p, new) {
            eprintln!("flow-eval: {}: {e}", p.display());
            std::process::exit(1)
        }
    }
}
