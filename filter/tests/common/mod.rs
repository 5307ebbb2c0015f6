//! Helpers shared by the integration tests.
#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use palisade::engine::{Config, Engine};
use palisade::replay::{self, EveOut, ReplayOpts, Summary};
use palisade_rules::IntelSet;

/// `../shared/data` beside the repository; `None` (with a message) when absent outside CI.
pub fn shared_data() -> Option<PathBuf> {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    if d.exists() {
        return Some(d);
    }
    assert!(
        std::env::var("CI").is_err(),
        "CI=true but {} is missing",
        d.display()
    );
    eprintln!("skipping: {} is missing", d.display());
    None
}

/// Every capture in `../shared/data/pcaps` (over a hundred); `None` as [`shared_data`].
pub fn real_captures() -> Option<Vec<PathBuf>> {
    let files = captures(&shared_data()?.join("pcaps"));
    assert!(files.len() > 100, "{} captures", files.len());
    Some(files)
}

/// True when `tool` runs; fails loudly under CI=true when it does not.
pub fn have_tool(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "CI=true but `{tool}` is not installed"
        );
        eprintln!("skipping: `{tool}` is not installed");
    }
    ok
}

/// Replays files through a fresh engine and returns the summary (events in memory).
pub fn replay_files(files: &[PathBuf], cfg: Config, intel: IntelSet) -> (Engine, Summary) {
    replay_engine(Engine::new(cfg, intel), files)
}

/// The suricata-verify case folders (`<data>/pcaps/suricata-verify/*`), sorted.
#[allow(dead_code)]
pub fn sv_cases(data: &Path) -> Vec<PathBuf> {
    let root = data.join("pcaps/suricata-verify");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// Replays files through the given engine.
pub fn replay_engine(mut e: Engine, files: &[PathBuf]) -> (Engine, Summary) {
    let opts = ReplayOpts {
        files: files.to_vec(),
        eve: EveOut::Memory,
        stats_interval_s: 0,
        progress: false,
    };
    let s = replay::run(&mut e, &opts).expect("replay");
    (e, s)
}

/// Parses eve lines.
pub fn events(s: &Summary) -> Vec<serde_json::Value> {
    s.events
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_slice(l)
                .unwrap_or_else(|e| panic!("bad JSON line {}: {e}", String::from_utf8_lossy(l)))
        })
        .collect()
}

/// Every capture file under a directory, sorted.
pub fn captures(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if n.ends_with(".pcap")
                    || n.ends_with(".pcapng")
                    || n.ends_with(".pcap.gz")
                    || n.ends_with(".pcapng.gz")
                {
                    v.push(p);
                }
            }
        }
    }
    v.sort();
    v
}

/// A field of an eve event by suricata-verify's path syntax (`a.b[0].c`, `x.__len`).
#[allow(dead_code)]
pub fn sv_lookup<'a>(v: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    let mut cur = v;
    if let Some(base) = path.strip_suffix(".__len") {
        let b = sv_lookup(v, base)?;
        let n = match b {
            serde_json::Value::String(s) => s.len(),
            _ => b.as_array()?.len(),
        };
        return Some(Box::leak(Box::new(serde_json::Value::from(n))));
    }
    for part in path.split('.') {
        let (name, idx) = match part.find('[') {
            Some(i) => (
                &part[..i],
                part[i + 1..part.len() - 1].parse::<usize>().ok(),
            ),
            None => (part, None),
        };
        cur = cur.get(name)?;
        if let Some(i) = idx {
            cur = cur.get(i)?;
        }
    }
    Some(cur)
}

/// Whether an eve value equals a suricata-verify expectation (numbers may be written as
/// strings).
#[allow(dead_code)]
pub fn sv_same(expected: &serde_yaml::Value, got: &serde_json::Value) -> bool {
    use serde_yaml::Value as Y;
    match (expected, got) {
        (Y::String(s), serde_json::Value::String(g)) => s == g,
        (Y::Number(n), serde_json::Value::Number(g)) => {
            n.as_u64() == g.as_u64() && n.as_i64() == g.as_i64()
        }
        (Y::Number(n), serde_json::Value::String(g)) => n.to_string() == *g,
        (Y::Bool(b), serde_json::Value::Bool(g)) => b == g,
        (Y::Sequence(s), serde_json::Value::Array(a)) => {
            s.len() == a.len() && s.iter().zip(a).all(|(x, y)| sv_same(x, y))
        }
        _ => false,
    }
}

/// `n` names of a held-out DGA family (`classifiers/src/dga.rs`) for `day` that the shipped
/// domain model scores at or above its 1e-3 point, each with its own first label (so in its own
/// registered domain).
pub fn suspicious_generated_names(family: &str, day: u64, n: usize) -> Vec<String> {
    let model = palisade_classifiers::DomainModel::bundled();
    let t3 = model.threshold_at_fpr("1e-3").unwrap();
    let f = palisade_classifiers::dga::HELD_OUT
        .iter()
        .find(|f| f.name == family)
        .unwrap();
    let mut generated = Vec::new();
    (f.generate)(day, 200, &mut generated);
    let mut names: Vec<String> = Vec::new();
    for name in generated {
        let label = name.split('.').next().unwrap_or("").to_string();
        if model.score(name.as_bytes()) >= t3
            && !names.iter().any(|m| m.split('.').next() == Some(&label))
        {
            names.push(name);
        }
    }
    names.truncate(n);
    assert_eq!(names.len(), n, "{family} names above the 1e-3 point");
    names
}

/// The names a burst alert (sid 9100022) lists, in its order.
pub fn burst_names(alert: &serde_json::Value) -> Vec<String> {
    alert["palisade"]["burst"]["names"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["rrname"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Names by kind (`dns`, `sni`, `host`, `qsni`: SNI inside QUIC Initials).
pub type Names = BTreeMap<&'static str, BTreeSet<String>>;

/// The distinct names live tshark extracts from a capture, by kind (out-of-order reassembly
/// on, as Wireshark's own reassembly tests run); `None` when tshark cannot run.
pub fn tshark_names(file: &Path) -> Option<Names> {
    let out = Command::new("tshark")
        .args(["-n", "-o", "tcp.reassemble_out_of_order:TRUE", "-r"])
        .arg(file)
        .args([
            "-T",
            "fields",
            "-E",
            "separator=\t",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=\u{1}",
        ])
        .args([
            "-e",
            "dns.qry.name",
            "-e",
            "tls.handshake.extensions_server_name",
            "-e",
            "http.host",
            "-e",
            "quic.packet_length",
            "-e",
            "gquic.tag.sni",
        ])
        .output()
        .ok()?;
    let mut n = Names::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let quic = cols.get(3).is_some_and(|c| !c.is_empty());
        for (i, k) in ["dns", "sni", "host"].into_iter().enumerate() {
            // SNI inside QUIC Initials is compared as its own kind.
            let k = if i == 1 && quic { "qsni" } else { k };
            for v in cols
                .get(i)
                .unwrap_or(&"")
                .split('\u{1}')
                .filter(|v| !v.is_empty())
            {
                let v = if k == "host" {
                    strip_port(v)
                } else {
                    v.to_string()
                };
                let v = if v == "<Root>" {
                    "<root>".to_string()
                } else {
                    v
                };
                n.entry(k).or_default().insert(v);
            }
        }
        // gQUIC's CHLO names its server in the clear.
        for v in cols
            .get(4)
            .unwrap_or(&"")
            .split('\u{1}')
            .filter(|v| !v.is_empty())
        {
            n.entry("qsni").or_default().insert(v.to_string());
        }
    }
    Some(n)
}

/// An HTTP Host without its port.
pub fn strip_port(h: &str) -> String {
    if h.starts_with('[') {
        return h.split_inclusive(']').next().unwrap_or("").to_string();
    }
    match h.rsplit_once(':') {
        Some((a, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !a.contains(':') => a.to_string(),
        _ => h.to_string(),
    }
}

/// The distinct names Palisade's events carry for a capture, by the same kinds.
pub fn palisade_names(file: &Path) -> Names {
    let (_, s) = replay_files(&[file.to_path_buf()], Config::default(), IntelSet::empty());
    let mut n = Names::new();
    for e in events(&s) {
        match e["event_type"].as_str() {
            Some("dns") => {
                for q in e["dns"]["queries"].as_array().into_iter().flatten() {
                    n.entry("dns")
                        .or_default()
                        .insert(q["rrname"].as_str().unwrap_or("").to_string());
                }
            }
            Some("tls") => {
                if let Some(s) = e["tls"]["sni"].as_str() {
                    n.entry("sni").or_default().insert(s.to_string());
                }
            }
            Some("quic") => {
                if let Some(s) = e["quic"]["sni"].as_str() {
                    n.entry("qsni").or_default().insert(s.to_string());
                }
            }
            Some("http") => {
                if let Some(h) = e["http"]["hostname"].as_str() {
                    n.entry("host").or_default().insert(h.to_string());
                }
            }
            _ => {}
        }
    }
    n
}
