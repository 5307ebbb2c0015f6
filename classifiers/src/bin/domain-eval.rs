//! Evaluates the domain model in plain Rust (no libtorch) and prints the metrics block of
//! `MODEL.md`.
//!
//! ```text
//! domain-eval [--model FILE] [--hsts FILE] [--shared DIR] [--check MODEL.md | --write MODEL.md]
//!             [--csv LABELLED.csv]...
//! ```
//! `--csv` adds a table for a labelled set of one's own (name, label[, family] per line; see
//! `data::read_labelled_csv`): AUC against its own benign names and detection at the thresholds.
//! For looking into a model: `DOMAIN_EVAL_TOP=N` prints the N highest-scoring held-out benign
//! names; `DOMAIN_EVAL_DUMP=FAMILY` prints the logit of every test name of a family and exits.
//! `--check` exits non-zero when the block in the model card differs from what these weights
//! give on this data (the "reproduce the published metrics" check); `--write` replaces it.

use palisade_classifiers::data::{
    domain_data, read_labelled_csv, read_names, registrable, Sources, PER_DAY, TEST_DAYS,
};
use palisade_classifiers::dga::{HELD_OUT, TRAIN};
use palisade_classifiers::metrics::{
    auc, count_above, detection, negatives_for_detection, threshold_at,
};
use palisade_classifiers::psl::Psl;
use palisade_classifiers::DomainModel;
use std::fmt::Write as _;
use std::path::PathBuf;

const BEGIN: &str = "<!-- metrics:begin (written by domain-eval --write; checked by --check) -->";
const END: &str = "<!-- metrics:end -->";

/// Logits, not probabilities: the sigmoid saturates in f32 and would tie the highest scores.
fn scores(m: &DomainModel, names: &[String]) -> Vec<f32> {
    names.iter().map(|n| m.logit(n.as_bytes())).collect()
}

/// What each false-positive rate buys on the held-out character-based families, and how many
/// benign names a threshold must let through for 90% of them: the published bar's terms, on
/// these negatives. The benign names above that threshold are named, so a reader can see
/// what they look like.
fn operating_points(md: &mut String, pos: &[f32], neg: &[f32], neg_names: &[String]) {
    let _ = writeln!(
        md,
        "\nOperating points on the held-out character-based families: benign names let through \
         (of {}) against detection.\n\n| benign let through | FPR | threshold (logit) | detected |\n|---:|---:|---:|---:|",
        neg.len()
    );
    let mut sorted = neg.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    for k in [0usize, 1, 3, 10, 32, 100, 322] {
        let Some(&t) = sorted.get(k) else { continue };
        let through = count_above(&sorted[..k], t);
        let _ = writeln!(
            md,
            "| {through} | {} | {t:.3} | {} |",
            rate(through, neg.len()),
            pct(detection(pos, t))
        );
    }
    match negatives_for_detection(pos, neg, 0.9) {
        Some((through, t)) => {
            let mut above: Vec<(f32, &String)> = neg
                .iter()
                .copied()
                .zip(neg_names)
                .filter(|(s, _)| *s > t)
                .collect();
            above.sort_by(|a, b| b.0.total_cmp(&a.0));
            let names: Vec<String> = above.iter().map(|(_, n)| format!("`{n}`")).collect();
            let _ = writeln!(
                md,
                "\n90% detection needs a threshold of {t:.3}, which lets {through} benign names \
                 through (FPR {}): {}.",
                rate(through, neg.len()),
                names.join(", ")
            );
        }
        None => {
            let _ = writeln!(md, "\n90% detection is not reached above any benign name.");
        }
    }
}

/// `k` of `n` as a rate in the card's style (`3.1e-4`; a plain `0` for none).
fn rate(k: usize, n: usize) -> String {
    if k == 0 {
        "0".into()
    } else {
        format!("{:.1e}", k as f64 / n as f64)
    }
}

/// Writes to standard output; a reader that went away (`| head`) ends the program quietly
/// instead of a panic.
fn out(s: &str) {
    use std::io::Write as _;
    let mut o = std::io::stdout().lock();
    if let Err(e) = o.write_all(s.as_bytes()).and_then(|()| o.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("domain-eval: standard output: {e}");
        std::process::exit(1);
    }
}

/// Names in distinct registered domains at or above the 1e-3 threshold that make an NXDOMAIN
/// burst (the engine's default count, `filter/src/engine/bursts.rs`).
const BURST_NAMES: usize = 4;
/// Days of each held-out generator the host level runs: the test days and the sixteen after
/// them (none is trained on: training uses days 0 to 39).
const HOST_DAYS: std::ops::Range<u64> = TEST_DAYS.start..TEST_DAYS.start + 20;

/// The host level, as the engine's NXDOMAIN bursts see it: a host running each held-out family
/// looks up a test day's names in the generator's order and every lookup fails; how many lookups
/// until the burst's fourth name (in a distinct registered domain, above the 1e-3 threshold).
/// A DGA's pace, many lookups a minute, keeps them within the burst window.
fn host_level(md: &mut String, model: &DomainModel, t3: f32) {
    let _ = writeln!(
        md,
        "\nHost level with NXDOMAIN bursts (README): a host runs each held-out family, looking up \
         one day's {PER_DAY} names (20 days from the first test day) in the generator's order, every lookup failing; lookups until \
         the {BURST_NAMES}th name in a distinct registered domain above the 1e-3 threshold raises \
         the alert; with `--name-burst-block` the day's later lookups above that threshold are \
         blocked.\n\n| family | days | lookups to the alert, median | worst | days without an alert | later lookups blocked |\n|---|---:|---:|---:|---:|---:|"
    );
    for f in HELD_OUT {
        let mut took: Vec<usize> = Vec::new();
        let mut none = 0;
        // Lookups after the alerting one, and those of them above the threshold.
        let (mut later, mut blocked) = (0usize, 0usize);
        let days = HOST_DAYS.count();
        for day in HOST_DAYS {
            let mut names = Vec::new();
            (f.generate)(day, PER_DAY, &mut names);
            let mut seen: Vec<&str> = Vec::new();
            let mut at = None;
            for (i, n) in names.iter().enumerate() {
                if model.logit(n.as_bytes()) <= t3 {
                    continue;
                }
                let reg = registrable(model.psl(), n);
                if !seen.contains(&reg) {
                    seen.push(reg);
                }
                if seen.len() == BURST_NAMES {
                    at = Some(i + 1);
                    break;
                }
            }
            match at {
                Some(k) => {
                    took.push(k);
                    let rest = &names[k..];
                    later += rest.len();
                    blocked += rest
                        .iter()
                        .filter(|n| model.logit(n.as_bytes()) > t3)
                        .count();
                }
                None => none += 1,
            }
        }
        took.sort_unstable();
        let median = took
            .get(took.len().saturating_sub(1) / 2)
            .map_or("-".to_string(), |k| k.to_string());
        let worst = took.last().map_or("-".to_string(), |k| k.to_string());
        let share = if later == 0 {
            "-".to_string()
        } else {
            pct(blocked as f64 / later as f64)
        };
        let _ = writeln!(
            md,
            "| {} | {days} | {median} | {worst} | {none} | {share} |",
            f.name
        );
    }
}

fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

/// Each name under a host part made of the words `hosts.rs` keeps for evaluation.
fn under_hosts(names: &[String], seed: u64) -> Vec<String> {
    let mut r = palisade_classifiers::dga::Rng::new(seed ^ 0x4057_e7a1);
    names
        .iter()
        .map(|n| palisade_classifiers::hosts::under(&mut r, true, n))
        .collect()
}

fn main() {
    let mut src = Sources::default_paths();
    let mut model_path: Option<PathBuf> = None;
    let mut check: Option<PathBuf> = None;
    let mut write: Option<PathBuf> = None;
    let mut csvs: Vec<PathBuf> = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| {
            eprintln!("domain-eval: {k} needs a value");
            std::process::exit(2)
        });
        match k.as_str() {
            "--model" => model_path = Some(v.into()),
            "--hsts" => src.hsts = v.into(),
            "--shared" => src.shared = v.into(),
            "--check" => check = Some(v.into()),
            "--write" => write = Some(v.into()),
            "--csv" => csvs.push(v.into()),
            _ => {
                eprintln!("domain-eval: unknown argument {k}");
                std::process::exit(2)
            }
        }
    }
    let psl = Psl::bundled();
    let model = match &model_path {
        Some(p) => DomainModel::from_file(p, psl.clone()).unwrap_or_else(|e| {
            eprintln!("domain-eval: {e}");
            std::process::exit(1)
        }),
        None => DomainModel::bundled(),
    };
    // A model trained with another fifth held out (cross-fitting) is evaluated on that fifth.
    src.held_out_fifth = model
        .mlp()
        .metadata_value("held_out_fifth")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // A ceiling experiment (`domain-train --ceiling`) has seen the held-out families' other
    // days: its rows say so, and it never goes into the model card.
    src.ceiling = model.mlp().metadata_value("ceiling_experiment") == Some("1");
    if src.ceiling && write.is_some() {
        eprintln!(
            "domain-eval: this model was trained on the held-out families (--ceiling); \
             its figures do not go into the model card"
        );
        std::process::exit(2)
    }
    let data = domain_data(&src, &psl).unwrap_or_else(|e| {
        eprintln!("domain-eval: {e}");
        std::process::exit(1)
    });
    let neg = scores(&model, &data.test_benign);
    if let Ok(n) = std::env::var("DOMAIN_EVAL_TOP") {
        let mut v: Vec<(f32, &String)> = neg.iter().copied().zip(&data.test_benign).collect();
        v.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (s, name) in v.iter().take(n.parse().unwrap_or(20)) {
            eprintln!("{s:8.3} {name}");
        }
    }
    if let Ok(fam) = std::env::var("DOMAIN_EVAL_DUMP") {
        for (f, v) in data.test_held_out.iter().chain(&data.test_in_family) {
            if *f == fam {
                for n in v {
                    out(&format!("{:8.3} {n}\n", model.logit(n.as_bytes())));
                }
            }
        }
        return;
    }
    let t3 = threshold_at(&neg, 1e-3);
    let t4 = threshold_at(&neg, 1e-4);
    let mut md = String::new();
    let _ = writeln!(md, "{BEGIN}");
    let _ = writeln!(
        md,
        "Model `{}`. Negatives: {} benign names held out by registrable domain. Thresholds at \
         those negatives (as logits; the score is their sigmoid): {t3:.3} (FPR 1e-3), {t4:.3} \
         (FPR 1e-4).\n",
        model.version(),
        neg.len()
    );
    if src.ceiling {
        let _ = writeln!(
            md,
            "**Ceiling experiment** (`domain-train --ceiling`): this model was trained on the \
             held-out families' generators too (their training days), so the rows named \
             held-out below are families it has seen, on days it has not.\n"
        );
    }
    let _ = writeln!(
        md,
        "| set | names | AUC | detected at FPR 1e-3 | detected at FPR 1e-4 |\n|---|---:|---:|---:|---:|"
    );
    let row = |md: &mut String, label: &str, pos: &[f32], neg: &[f32], t3: f32, t4: f32| {
        let a = auc(pos, neg).map_or("-".into(), |a| format!("{a:.5}"));
        let _ = writeln!(
            md,
            "| {label} | {} | {a} | {} | {} |",
            pos.len(),
            pct(detection(pos, t3)),
            pct(detection(pos, t4))
        );
    };
    let is_dict = |fam: &str| {
        TRAIN
            .iter()
            .chain(HELD_OUT)
            .any(|f| f.name == fam && f.dictionary)
    };
    // Generated families never trained on.
    let mut held_all = Vec::new();
    let mut held_dict = Vec::new();
    for (fam, names) in &data.test_held_out {
        let s = scores(&model, names);
        row(&mut md, &format!("held-out family {fam}"), &s, &neg, t3, t4);
        if is_dict(fam) {
            held_dict.extend(s);
        } else {
            held_all.extend(s);
        }
    }
    row(
        &mut md,
        "**held-out families, character-based**",
        &held_all,
        &neg,
        t3,
        t4,
    );
    row(
        &mut md,
        "**held-out families, dictionary**",
        &held_dict,
        &neg,
        t3,
        t4,
    );
    // Trained families, days never trained on.
    let mut inf = Vec::new();
    let mut inf_dict = Vec::new();
    for (fam, names) in &data.test_in_family {
        let s = scores(&model, names);
        row(
            &mut md,
            &format!("trained family {fam}, unseen days"),
            &s,
            &neg,
            t3,
            t4,
        );
        if is_dict(fam) {
            inf_dict.extend(s);
        } else {
            inf.extend(s);
        }
    }
    row(
        &mut md,
        "trained families, unseen days, character-based",
        &inf,
        &neg,
        t3,
        t4,
    );
    row(
        &mut md,
        "trained families, unseen days, dictionary (suppobox)",
        &inf_dict,
        &neg,
        t3,
        t4,
    );
    let mt: Vec<String> = data
        .test_maltrail
        .iter()
        .flat_map(|(_, v)| v.iter().cloned())
        .collect();
    row(
        &mut md,
        "maltrail malware names, held-out domains",
        &scores(&model, &mt),
        &neg,
        t3,
        t4,
    );

    // A set's share above the thresholds, where there is nothing to detect (benign names).
    // (No negatives, so no AUC: the row's "-".)
    let share = |md: &mut String, label: &str, s: &[f32]| {
        row(
            md,
            &format!("{label}: share above the thresholds"),
            s,
            &[],
            t3,
            t4,
        )
    };
    // The OpenDNS lists: real query names of 2014, DGA names included, so a false-positive
    // rate on them is an upper bound.
    for f in ["opendns-top-domains.txt", "opendns-random-domains.txt"] {
        let names = read_names(&src.shared.join("domains/benign").join(f))
            .map(|x| x.0)
            .unwrap_or_else(|e| {
                eprintln!("domain-eval: {e}");
                std::process::exit(1)
            });
        share(
            &mut md,
            &format!("OpenDNS `{f}` (2014 queries, not trained on; holds DGA names)"),
            &scores(&model, &names),
        );
    }

    // Names as traffic carries them: under a host part. The benign list has almost no
    // subdomains, so its thresholds say little about `outlook.office365.com` unless these rows
    // say it too. Host parts from the words `hosts.rs` keeps out of training.
    let own_sub: Vec<String> = data
        .test_benign
        .iter()
        .filter(|n| psl.split(n).label > 0)
        .cloned()
        .collect();
    share(
        &mut md,
        "held-out benign names with a subdomain of their own",
        &scores(&model, &own_sub),
    );
    share(
        &mut md,
        "held-out benign names under a host part (`www.`, `api-eu.`, `i9.`; words not trained on)",
        &scores(&model, &under_hosts(&data.test_benign, 1)),
    );
    let held_names: Vec<String> = data
        .test_held_out
        .iter()
        .filter(|(f, _)| !is_dict(f))
        .flat_map(|(_, v)| v.iter().cloned())
        .collect();
    row(
        &mut md,
        "held-out families, character-based, under a host part",
        &scores(&model, &under_hosts(&held_names, 2)),
        &neg,
        t3,
        t4,
    );

    operating_points(&mut md, &held_all, &neg, &data.test_benign);
    host_level(&mut md, &model, t3);

    // The research-use DGA sets: evaluation only.
    let _ = writeln!(
        md,
        "\nResearch-use DGA sets in `../shared/data/domains/dga/` (never trained on). Detection \
         uses the thresholds above; AUC is against each set's own legitimate names.\n"
    );
    let _ = writeln!(
        md,
        "| set | names | AUC (own legit) | detected at FPR 1e-3 | detected at FPR 1e-4 | own legit above 1e-4 threshold |\n|---|---:|---:|---:|---:|---:|"
    );
    let dga_dir = src.shared.join("domains/dga");
    let maltrail_trained: std::collections::BTreeSet<&str> = data
        .train
        .iter()
        .filter_map(|e| e.source.strip_prefix("maltrail/"))
        .collect();
    let research_row = |md: &mut String, label: &str, pos: &[f32], own: &[f32]| {
        let a = auc(pos, own).map_or("-".into(), |a| format!("{a:.5}"));
        let _ = writeln!(
            md,
            "| {label} | {} | {a} | {} | {} | {} |",
            pos.len(),
            pct(detection(pos, t3)),
            pct(detection(pos, t4)),
            pct(detection(own, t4))
        );
    };
    match read_labelled_csv(&dga_dir.join("chrmor_dga_domains_sample.csv")) {
        Ok(rows) => {
            let legit: Vec<String> = rows
                .iter()
                .filter(|r| !r.malicious)
                .map(|r| r.name.clone())
                .collect();
            let own = scores(&model, &legit);
            let mut fams: Vec<&str> = rows
                .iter()
                .filter(|r| r.malicious)
                .map(|r| r.family.as_str())
                .collect();
            fams.sort();
            fams.dedup();
            let mut all = Vec::new();
            let mut dict = Vec::new();
            let dict_fams = ["suppobox", "matsnu", "gozi"];
            for fam in &fams {
                let names: Vec<String> = rows
                    .iter()
                    .filter(|r| r.malicious && r.family == *fam)
                    .map(|r| r.name.clone())
                    .collect();
                let s = scores(&model, &names);
                let trained = TRAIN.iter().any(|f| f.name == *fam);
                let via_maltrail = maltrail_trained.contains(*fam);
                let label = format!(
                    "chrmor {fam}{}",
                    match (trained, via_maltrail) {
                        (true, _) => " (family generated for training)",
                        (false, true) => " (maltrail names of the family trained on)",
                        _ => "",
                    }
                );
                research_row(&mut md, &label, &s, &own);
                if dict_fams.contains(fam) {
                    dict.extend(s);
                } else {
                    all.extend(s);
                }
            }
            research_row(
                &mut md,
                "**chrmor, all character-based families**",
                &all,
                &own,
            );
            research_row(
                &mut md,
                "**chrmor, dictionary families (suppobox, matsnu, gozi)**",
                &dict,
                &own,
            );
        }
        Err(e) => {
            eprintln!("domain-eval: {e}");
            std::process::exit(1)
        }
    }
    match (
        read_names(&dga_dir.join("ndpi_test_dga.csv")),
        read_names(&dga_dir.join("ndpi_test_non_dga.csv")),
    ) {
        (Ok((d, _)), Ok((l, _))) => {
            let own = scores(&model, &l);
            research_row(
                &mut md,
                "nDPI test split (all families)",
                &scores(&model, &d),
                &own,
            );
        }
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("domain-eval: {e}");
            std::process::exit(1)
        }
    }
    let _ = writeln!(md, "{END}");
    out(&md);
    // Users' labelled sets: printed after the card's block, never part of it.
    for p in &csvs {
        let rows = read_labelled_csv(p).unwrap_or_else(|e| {
            eprintln!("domain-eval: {e}");
            std::process::exit(1)
        });
        let (bad, good): (Vec<_>, Vec<_>) = rows.iter().partition(|r| r.malicious);
        let sb = scores(
            &model,
            &bad.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
        );
        let sg = scores(
            &model,
            &good.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
        );
        out(&format!(
            "\n{}: {} malicious, {} benign; AUC {}; malicious above the 1e-3 / 1e-4 thresholds {} / {}; benign above them {} / {}\n",
            p.display(),
            sb.len(),
            sg.len(),
            auc(&sb, &sg).map_or("-".into(), |a| format!("{a:.5}")),
            pct(detection(&sb, t3)),
            pct(detection(&sb, t4)),
            pct(detection(&sg, t3)),
            pct(detection(&sg, t4)),
        ));
    }

    if let Some(p) = check {
        let card = std::fs::read_to_string(&p).unwrap_or_else(|e| {
            eprintln!("domain-eval: {}: {e}", p.display());
            std::process::exit(1)
        });
        let Some(published) = block(&card) else {
            eprintln!("domain-eval: {}: no metrics block", p.display());
            std::process::exit(1)
        };
        if published.trim() != md.trim() {
            eprintln!(
                "domain-eval: {}: the published metrics differ from what these weights give",
                p.display()
            );
            std::process::exit(1)
        }
        eprintln!("domain-eval: {} reproduced", p.display());
    }
    if let Some(p) = write {
        let card = std::fs::read_to_string(&p).unwrap_or_default();
        let new = match block(&card) {
            Some(old) => card.replace(old, md.trim_end()),
            None => format!("{card}\n{md}"),
        };
        if let Err(e) = std::fs::write(&p, new) {
            eprintln!("domain-eval: {}: {e}", p.display());
            std::process::exit(1)
        }
    }
}

/// The metrics block of a model card, markers included.
fn block(card: &str) -> Option<&str> {
    let s = card.find(BEGIN)?;
    let e = card[s..].find(END)? + s + END.len();
    Some(&card[s..e])
}
