//! Training and evaluation data for the domain model: loaders and the deterministic split.
//!
//! Sources (see `MODEL.md` for licences):
//! - benign: the Chromium HSTS preload list (PyPI `hstspreload`, BSD-3, listed by
//!   `scripts/hsts-names.py`) and the OpenDNS top and random lists (public domain);
//! - malicious: the [`dga`](crate::dga) generators and the maltrail family lists (MIT);
//! - evaluation only, never training: the research-use DGA sets (`domains/dga/`).
//!
//! Every split is a pure function of the names (a hash of the registrable domain) and of fixed
//! seeds, so training and evaluation agree on it from any checkout.

use crate::dga::{Family, HELD_OUT, TRAIN};
use crate::features::Normal;
use crate::psl::Psl;
use std::path::{Path, PathBuf};

/// A read or format error naming the file and, where there is one, the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataError(pub String);

impl std::fmt::Display for DataError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DataError {}

fn read(path: &Path) -> Result<String, DataError> {
    std::fs::read_to_string(path).map_err(|e| DataError(format!("{}: {e}", path.display())))
}

fn clean(name: &str) -> Option<String> {
    let n = Normal::new(name.trim().as_bytes());
    let s = n.as_str();
    let ok = !s.is_empty()
        && s.contains('.')
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_');
    ok.then(|| s.to_string())
}

/// Reads a list of names: one per line, `#` comments, hosts-file lines (`0.0.0.0 name`)
/// accepted. Lines that hold no usable name are skipped; the count comes back with the names.
pub fn read_names(path: &Path) -> Result<(Vec<String>, usize), DataError> {
    let text = read(path)?;
    let mut names = Vec::new();
    let mut skipped = 0;
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut it = line.split_whitespace();
        let first = it.next().unwrap_or("");
        let token = if first.parse::<std::net::IpAddr>().is_ok() {
            it.next().unwrap_or("")
        } else {
            first
        };
        match clean(token) {
            Some(n) => names.push(n),
            None => skipped += 1,
        }
    }
    Ok((names, skipped))
}

/// One labelled name from a user's CSV.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    /// The name.
    pub name: String,
    /// True for malicious or generated.
    pub malicious: bool,
    /// A family or source column, when the file has one.
    pub family: String,
}

fn label_word(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "dga" | "malicious" | "bad" | "true" | "malware" => Some(true),
        "0" | "legit" | "benign" | "good" | "false" | "clean" => Some(false),
        _ => None,
    }
}

/// Reads labelled names from CSV: each line holds a name (the field with a dot), a label
/// (`1`/`0`, `dga`/`legit`, `malicious`/`benign`, `true`/`false`) and optionally a family; the
/// columns may come in any order (`name,label`, or the `class,family,domain` layout of public
/// DGA sets). A header line is allowed; any other line without a name and a label is an error
/// naming the file and line.
pub fn read_labelled_csv(path: &Path) -> Result<Vec<Labelled>, DataError> {
    let text = read(path)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let name = fields.iter().position(|f| f.contains('.'));
        let label = fields
            .iter()
            .enumerate()
            .find(|(k, f)| Some(*k) != name && label_word(f).is_some());
        match (name.and_then(|k| clean(fields[k]).map(|n| (k, n))), label) {
            (Some((nk, n)), Some((lk, l))) => {
                let family = fields
                    .iter()
                    .enumerate()
                    .find(|(k, _)| *k != nk && *k != lk)
                    .map(|(_, f)| f.to_string())
                    .unwrap_or_default();
                out.push(Labelled {
                    name: n,
                    malicious: label_word(l).unwrap_or(false),
                    family,
                });
            }
            _ if i == 0 => {} // a header
            _ => {
                return Err(DataError(format!(
                    "{}:{}: want a name and a label (1/0, dga/legit, malicious/benign)",
                    path.display(),
                    i + 1
                )))
            }
        }
    }
    Ok(out)
}

/// The registrable domain of a name (the whole name when the list has none).
pub fn registrable<'a>(psl: &Psl, name: &'a str) -> &'a str {
    let s = psl.split(name);
    &name[s.label..]
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// True for the fifth of names held out for evaluation (decided by the registrable domain, so
/// `a.example.com` and `b.example.com` fall on the same side).
pub fn is_held_out(psl: &Psl, name: &str) -> bool {
    in_fifth(psl, name, 0)
}

/// True for the names in fifth `r` (0 to 4) of the split by registrable domain: fifth 0 is
/// the one held out for the shipped model; a model trained with another fifth held out
/// (`domain-train --held-out-fifth`) is evaluated on that one, for a cross-fitted estimate.
pub fn in_fifth(psl: &Psl, name: &str, r: u64) -> bool {
    fnv(registrable(psl, name)) % 5 == r
}

/// Which of `k` folds a name falls in (by its registrable domain, like [`is_held_out`] but
/// independent of it): the trainer builds each training name's character model without the
/// benign names of its fold.
pub fn fold_of(psl: &Psl, name: &str, k: usize) -> usize {
    ((fnv(registrable(psl, name)) / 5) % k.max(1) as u64) as usize
}

/// Where the inputs are.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The shared data folder (`../shared/data` beside the repository).
    pub shared: PathBuf,
    /// The HSTS names, one per line (`scripts/hsts-names.py > FILE`).
    pub hsts: PathBuf,
    /// Which fifth of the split by registrable domain is held out (0, the shipped model's,
    /// unless a cross-fitting run says otherwise).
    pub held_out_fifth: u64,
    /// The ceiling experiment (`domain-train --ceiling`): the held-out families' generators
    /// join training too, on the training families' days, so the model has seen every family
    /// it is tested on. Their test days stay unseen. It measures what this benign data allows
    /// at best; a model trained so says it in its file and is never shipped.
    pub ceiling: bool,
}

impl Sources {
    /// The defaults: `../shared/data` beside the repository and `target/hsts-names.txt` in it.
    pub fn default_paths() -> Sources {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        Sources {
            shared: root.join("../shared/data"),
            hsts: root.join("target/hsts-names.txt"),
            held_out_fifth: 0,
            ceiling: false,
        }
    }
}

/// A name with its label and training weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The name.
    pub name: String,
    /// 1.0 malicious, 0.0 benign.
    pub label: f32,
    /// Where it came from (`benign`, a DGA family, `maltrail/<family>`).
    pub source: String,
    /// Weight in the loss before class balancing (maltrail names, which mostly look like any
    /// other name, count less than generated ones).
    pub weight: f32,
}

/// Loss weight of a maltrail name relative to a generated one.
pub const MALTRAIL_WEIGHT: f32 = 0.3;

/// The whole data set, split.
#[derive(Debug, Clone, Default)]
pub struct DomainData {
    /// Training examples, in a fixed shuffled order.
    pub train: Vec<Example>,
    /// Benign names held out (by registrable domain).
    pub test_benign: Vec<String>,
    /// Names of the training families from days never trained on, by family.
    pub test_in_family: Vec<(String, Vec<String>)>,
    /// Names of families never trained on, by family.
    pub test_held_out: Vec<(String, Vec<String>)>,
    /// Maltrail names whose registrable domain is held out, by family.
    pub test_maltrail: Vec<(String, Vec<String>)>,
}

/// Days (generator seeds) used for training and for the in-family test.
const TRAIN_DAYS: u64 = 40;
/// The generators' days held out for testing.
pub const TEST_DAYS: std::ops::Range<u64> = 5000..5004;
/// Names a generator gives per day.
pub const PER_DAY: usize = 500;

fn generate(f: &Family, days: impl Iterator<Item = u64>) -> Vec<String> {
    let mut v = Vec::new();
    for d in days {
        (f.generate)(d, PER_DAY, &mut v);
    }
    v.sort();
    v.dedup();
    v
}

/// A family's generated names as training examples, less any the benign list holds.
fn generated<'a>(
    f: &'a Family,
    names: Vec<String>,
    benign: &'a std::collections::HashSet<&str>,
) -> impl Iterator<Item = Example> + 'a {
    names
        .into_iter()
        .filter(|n| !benign.contains(n.as_str()))
        .map(|name| Example {
            name,
            label: 1.0,
            source: f.name.into(),
            weight: 1.0,
        })
}

/// Builds the data set from the sources; deterministic.
pub fn domain_data(src: &Sources, psl: &Psl) -> Result<DomainData, DataError> {
    let mut benign: Vec<String> = Vec::new();
    let (hsts, _) = read_names(&src.hsts).map_err(|e| {
        DataError(format!(
            "{e} (make it with: python3 classifiers/scripts/hsts-names.py > {})",
            src.hsts.display()
        ))
    })?;
    benign.extend(hsts);
    benign.sort();
    benign.dedup();
    let benign_set: std::collections::HashSet<&str> = benign.iter().map(String::as_str).collect();

    let mut data = DomainData::default();
    let mut train = Vec::new();
    for n in &benign {
        if in_fifth(psl, n, src.held_out_fifth) {
            data.test_benign.push(n.clone());
        } else {
            train.push(Example {
                name: n.clone(),
                label: 0.0,
                source: "benign".into(),
                weight: 1.0,
            });
        }
    }
    for f in TRAIN {
        let trained = generate(f, 0..TRAIN_DAYS);
        // "Unseen days" means unseen names: some DGAs repeat names across days (Pykspa's
        // precursor falls into short cycles), and those are left out of the test.
        let mut unseen = generate(f, TEST_DAYS);
        unseen.retain(|n| trained.binary_search(n).is_err());
        train.extend(generated(f, trained, &benign_set));
        data.test_in_family.push((f.name.into(), unseen));
    }
    for f in HELD_OUT {
        let test = generate(f, TEST_DAYS);
        if src.ceiling {
            let mut days = generate(f, 0..TRAIN_DAYS);
            days.retain(|n| test.binary_search(n).is_err());
            train.extend(generated(f, days, &benign_set));
        }
        data.test_held_out.push((f.name.into(), test));
    }
    // Maltrail: category, family, domain.
    let mt = src
        .shared
        .join("domains/malicious/maltrail/maltrail_labelled_domains_capped200.tsv");
    let text = read(&mt)?;
    let mut by_family: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for line in text.lines().skip(1) {
        let mut it = line.split('\t');
        let (Some(cat), Some(fam), Some(dom)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        // Families held out of training stay out entirely, whatever the source.
        if cat != "malware" || HELD_OUT.iter().any(|f| f.name == fam) {
            continue;
        }
        let Some(n) = clean(dom) else { continue };
        if benign_set.contains(n.as_str()) || benign_set.contains(registrable(psl, &n)) {
            continue;
        }
        if in_fifth(psl, &n, src.held_out_fifth) {
            by_family.entry(fam.to_string()).or_default().push(n);
        } else {
            train.push(Example {
                name: n,
                label: 1.0,
                source: format!("maltrail/{fam}"),
                weight: MALTRAIL_WEIGHT,
            });
        }
    }
    data.test_maltrail = by_family.into_iter().collect();
    // A fixed shuffle (Fisher-Yates with the crate's generator).
    let mut r = crate::dga::Rng::new(0x7061_6c69);
    for i in (1..train.len()).rev() {
        let j = r.below(i as u64 + 1) as usize;
        train.swap(i, j);
    }
    data.train = train;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str, text: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("palisade-cls-{}-{name}", std::process::id()));
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        p
    }

    /// The held-out families never reach training, unless the ceiling experiment asks for
    /// them; even then their test days stay unseen.
    #[test]
    fn held_out_families_reach_training_only_in_the_ceiling_experiment() {
        let psl = Psl::bundled();
        let hsts = tmp("hsts", "example.com\nexample.org\nwikipedia.org\n");
        let mut src = Sources::default_paths();
        src.hsts = hsts.clone();
        assert!(
            src.shared.join("domains").is_dir(),
            "{}: the shared data is missing",
            src.shared.display()
        );
        let held = |d: &DomainData| -> Vec<(String, usize)> {
            HELD_OUT
                .iter()
                .map(|f| {
                    let n = d.train.iter().filter(|e| e.source == f.name).count();
                    (f.name.to_string(), n)
                })
                .collect()
        };
        let plain = domain_data(&src, &psl).unwrap_or_else(|e| panic!("{e}"));
        src.ceiling = true;
        let ceiling = domain_data(&src, &psl).unwrap_or_else(|e| panic!("{e}"));
        let _ = std::fs::remove_file(hsts);
        assert!(
            held(&plain).iter().all(|(_, n)| *n == 0),
            "{:?}",
            held(&plain)
        );
        for (f, n) in held(&ceiling) {
            assert!(
                n >= 4_000,
                "{f}: {n} training names in the ceiling experiment"
            );
        }
        // Everything else is the same data, and the test sets do not change.
        assert_eq!(
            ceiling.train.len() - plain.train.len(),
            held(&ceiling).iter().map(|(_, n)| n).sum::<usize>()
        );
        assert_eq!(plain.test_held_out, ceiling.test_held_out);
        assert_eq!(plain.test_benign, ceiling.test_benign);
        let trained: std::collections::HashSet<&str> =
            ceiling.train.iter().map(|e| e.name.as_str()).collect();
        for (f, names) in &ceiling.test_held_out {
            assert!(!names.is_empty(), "{f}");
            assert!(names.iter().all(|n| !trained.contains(n.as_str())), "{f}");
        }
    }

    #[test]
    fn names_and_hosts_lines() {
        let p = tmp(
            "names",
            "# c\nExample.COM.\n0.0.0.0 bad.example\n\nnot a name\n-- \n",
        );
        let (n, skipped) = read_names(&p).unwrap_or_default();
        assert_eq!(n, vec!["example.com", "bad.example"]);
        assert_eq!(skipped, 2);
        let _ = std::fs::remove_file(p);
    }

    #[test]
    fn labelled_csv_layouts_and_errors() {
        let p = tmp(
            "csv",
            "class,family,domain\ndga,gozi,abcdxyz.com\nlegit,alexa,example.org\n",
        );
        let v = read_labelled_csv(&p).unwrap_or_default();
        assert_eq!(v.len(), 2);
        assert!(v[0].malicious && v[0].family == "gozi" && v[0].name == "abcdxyz.com");
        assert!(!v[1].malicious);
        let q = tmp("csv2", "example.com,0\nx.biz,1\nbroken line\n");
        let e = read_labelled_csv(&q).err().map(|e| e.0).unwrap_or_default();
        assert!(
            e.ends_with(":3: want a name and a label (1/0, dga/legit, malicious/benign)"),
            "{e}"
        );
        let _ = std::fs::remove_file(p);
        let _ = std::fs::remove_file(q);
    }

    #[test]
    fn split_follows_the_registrable_domain() {
        let psl = Psl::bundled();
        let mut held = 0;
        for i in 0..1000 {
            let base = format!("site{i}.co.uk");
            let h = is_held_out(&psl, &base);
            assert_eq!(h, is_held_out(&psl, &format!("www.{base}")));
            held += h as usize;
        }
        assert!((150..250).contains(&held), "{held}");
    }

    #[test]
    fn the_five_fifths_partition_the_names() {
        let psl = Psl::bundled();
        let mut sizes = [0usize; 5];
        for i in 0..1000 {
            let name = format!("a.host{i}.org");
            let inside: Vec<u64> = (0..5).filter(|&r| in_fifth(&psl, &name, r)).collect();
            assert_eq!(inside.len(), 1, "{name}: {inside:?}");
            assert_eq!(inside[0] == 0, is_held_out(&psl, &name));
            sizes[inside[0] as usize] += 1;
        }
        assert!(sizes.iter().all(|n| (150..250).contains(n)), "{sizes:?}");
    }
}
