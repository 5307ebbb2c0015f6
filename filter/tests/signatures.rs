//! Signatures against real captures.
//!
//! - suricata-verify: every case with a rules file is replayed with its rules; each `alert`
//!   check whose signature Palisade loaded must give exactly the expected count (with every
//!   other field of the check that Palisade writes). Checks on signatures Palisade skips are out
//!   of scope and counted by reason; the known differences are listed with theirs.
//! - ET Open (`../shared/data/signatures/`): the share of rules that load, with every skip
//!   explained, and the malware cases replayed with the whole set.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use palisade::engine::{Config, Engine};
use palisade_rules::sig::{RuleErrorKind, SigSet, SigSetBuilder, Vars};
use palisade_rules::IntelSet;
use serde_json::Value;

/// Known differences: (case, signature id (0: a check on all alerts), reason).
const EXPECTED_FAILS: &[(&str, u64, &str)] = &[
    ("exception-policy-defrag-01", 0, "the case sets a tiny defrag memcap with the drop exception policy, so Suricata drops the ICMP echo Palisade alerts on (Palisade's defrag budget is its memcap)"),
];

fn replay_with(files: &[PathBuf], cfg: Config, sigs: SigSet) -> Vec<Value> {
    let mut e = Engine::new(cfg, IntelSet::empty());
    e.set_sigs(sigs);
    common::events(&common::replay_engine(e, files).1)
}

/// Variables a case's suricata.yaml sets (HOME_NET and friends), in `Vars` form.
fn case_vars(dir: &Path) -> Vars {
    let mut v = Vars::default();
    let Ok(y) = std::fs::read_to_string(dir.join("suricata.yaml")) else {
        return v;
    };
    for l in y.lines() {
        let t = l.trim();
        let Some((k, val)) = t.split_once(':') else {
            continue;
        };
        let k = k.trim();
        let val = val.trim().trim_matches('"');
        if k.chars().all(|c| c.is_ascii_uppercase() || c == '_') && k.len() > 3 && !val.is_empty() {
            if k.ends_with("_PORTS") || k.ends_with("_PORT") {
                v.set_port(k, val);
            } else if k.ends_with("_NET") || k.ends_with("_SERVERS") {
                v.set_addr(k, val);
            }
        }
    }
    v
}

use common::{sv_lookup as lookup, sv_same as same};

/// Alert fields Palisade writes.
const ALERT_FIELDS: &[&str] = &[
    "event_type",
    "alert.signature_id",
    "alert.gid",
    "alert.rev",
    "alert.signature",
    "alert.category",
    "alert.severity",
    "src_ip",
    "src_port",
    "dest_ip",
    "dest_port",
    "proto",
    "pcap_cnt",
    "app_proto",
];

#[test]
fn suricata_verify_alerts() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let (mut pass, mut listed) = (0, 0);
    let mut out: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for dir in common::sv_cases(&data) {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let rules: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "rules"))
            .collect();
        let Ok(text) = std::fs::read_to_string(dir.join("test.yaml")) else {
            continue;
        };
        if rules.is_empty() {
            continue;
        }
        let y: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let mut pcaps: Vec<PathBuf> = match y.get("pcap").and_then(|p| p.as_str()) {
            Some(p) => vec![dir.join(p)],
            None => common::captures(&dir),
        };
        pcaps.retain(|p| p.exists());
        if pcaps.is_empty() {
            continue;
        }
        let mut b = SigSetBuilder::new(case_vars(&dir));
        for r in &rules {
            b.add_path(r).unwrap();
        }
        let mut skipped: BTreeMap<u64, String> = BTreeMap::new();
        for p in &b.problems {
            let why = match &p.kind {
                RuleErrorKind::Skipped(s) => format!("skipped: {}", s.reason),
                RuleErrorKind::Syntax(m) => format!("not loaded (syntax): {m}"),
            };
            if let Some(sid) = p.sid {
                skipped.insert(sid, why);
            }
        }
        let sigs = b.build();
        let rule_sids: Vec<(String, u64)> =
            sigs.sigs().iter().map(|s| (s.msg.clone(), s.sid)).collect();
        let cfg = Config {
            vlan_tracking: !text.contains("vlan.use-for-tracking=false"),
            ..Config::default()
        };
        let evs = replay_with(&pcaps, cfg, sigs);
        let Some(checks) = y.get("checks").and_then(|c| c.as_sequence()) else {
            continue;
        };
        for c in checks {
            let Some(f) = c.get("filter") else { continue };
            let Some(m) = f.get("match").and_then(|m| m.as_mapping()) else {
                continue;
            };
            let fields: Vec<(String, serde_yaml::Value)> = m
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.clone())))
                .collect();
            let is_alert = fields
                .iter()
                .any(|(k, v)| k == "event_type" && v.as_str() == Some("alert"));
            if !is_alert {
                continue;
            }
            let sid = fields
                .iter()
                .find(|(k, _)| k == "alert.signature_id")
                .and_then(|(_, v)| v.as_u64())
                .or_else(|| {
                    // A check by message: the rule with that msg.
                    let msg = fields
                        .iter()
                        .find(|(k, _)| k == "alert.signature")
                        .and_then(|(_, v)| v.as_str())?;
                    rule_sids.iter().find(|(m, _)| m == msg).map(|(_, s)| *s)
                });
            let why = match sid {
                Some(s) => skipped.get(&s).cloned(),
                // A check on all alerts needs every rule of the case.
                None => skipped
                    .values()
                    .next()
                    .map(|w| format!("count of all alerts, a rule {w}")),
            };
            if let Some(why) = why {
                *out.entry(why).or_default() += 1;
                continue;
            }
            if f.get("lt").is_some() || f.get("gt").is_some() || f.get("requires").is_some() {
                *out.entry("check needs a Suricata version or comparison".into())
                    .or_default() += 1;
                continue;
            }
            if let Some(k) = fields
                .iter()
                .map(|(k, _)| k)
                .find(|k| !ALERT_FIELDS.contains(&k.as_str()) && !k.starts_with("vlan["))
            {
                *out.entry(format!("checks field {k}, not written"))
                    .or_default() += 1;
                continue;
            }
            let want = f.get("count").and_then(|c| c.as_u64());
            let n = evs
                .iter()
                .filter(|e| {
                    // `null` in a check means the field is absent.
                    fields.iter().all(|(k, v)| match lookup(e, k) {
                        None => v.is_null(),
                        Some(g) => g.is_null() && v.is_null() || same(v, g),
                    })
                })
                .count() as u64;
            let ok = match want {
                Some(w) => n == w,
                None => n >= 1,
            };
            let known = EXPECTED_FAILS
                .iter()
                .any(|(c, s, _)| *c == name && *s == sid.unwrap_or(0));
            match (ok, known) {
                (true, false) => pass += 1,
                (false, true) => listed += 1,
                (true, true) => failures.push(format!("{name} sid {sid:?}: listed but passes")),
                (false, false) => failures.push(format!(
                    "{name} sid {sid:?}: want {want:?} alerts, got {n} (fields {fields:?})"
                )),
            }
        }
    }
    eprintln!("suricata-verify alerts: {pass} checks pass, {listed} listed differences");
    for (why, n) in &out {
        eprintln!("  out of scope: {n:3}  {why}");
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(pass >= 20, "{pass}");
}

fn et_open(data: &Path) -> PathBuf {
    data.join("signatures/et-open-suricata-5.0-enhanced-2024-04-21")
}

#[test]
fn et_open_loads_and_fires_on_the_cases_that_use_it() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let t = std::time::Instant::now();
    let mut b = SigSetBuilder::default();
    b.add_path(&et_open(&data)).unwrap();
    let loaded = b.len();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for p in &b.problems {
        match &p.kind {
            RuleErrorKind::Skipped(s) => *reasons.entry(s.reason.clone()).or_default() += 1,
            RuleErrorKind::Syntax(m) => panic!("Suricata loads every ET Open rule: {p} ({m})"),
        }
    }
    let total = loaded + b.problems.len();
    let set = b.build();
    eprintln!(
        "ET Open: {loaded} of {total} loaded ({:.2}%), built in {:?}",
        loaded as f64 * 100.0 / total as f64,
        t.elapsed()
    );
    for (r, n) in &reasons {
        eprintln!("  skipped {n:4}  {r}");
    }
    assert_eq!(total, 23_445, "the set's active rules");
    assert!(loaded * 100 >= total * 98, "{loaded} of {total}");
    let et_sids: std::collections::HashSet<u64> = set.sigs().iter().map(|s| s.sid).collect();
    // Cases whose own rules are ET rules: the whole set must raise what the case expects.
    let mut checked = 0;
    let mut failures = Vec::new();
    for dir in common::sv_cases(&data) {
        let Ok(text) = std::fs::read_to_string(dir.join("test.yaml")) else {
            continue;
        };
        let mut case_sids = Vec::new();
        for r in std::fs::read_dir(&dir).unwrap().flatten() {
            if r.path().extension().is_some_and(|e| e == "rules") {
                let t = std::fs::read_to_string(r.path()).unwrap();
                case_sids.extend(t.lines().filter_map(|l| {
                    let i = l.find("sid:")?;
                    l[i + 4..].split(';').next()?.trim().parse::<u64>().ok()
                }));
            }
        }
        let y: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let Some(checks) = y.get("checks").and_then(|c| c.as_sequence()) else {
            continue;
        };
        let mut want: Vec<(u64, u64)> = Vec::new();
        for c in checks {
            let Some(f) = c.get("filter") else { continue };
            let Some(m) = f.get("match") else { continue };
            if m.get("event_type").and_then(|v| v.as_str()) != Some("alert")
                || m.as_mapping().is_some_and(|m| m.len() != 2)
            {
                continue;
            }
            let (Some(sid), Some(n)) = (
                m.get("alert.signature_id").and_then(|v| v.as_u64()),
                f.get("count").and_then(|v| v.as_u64()),
            ) else {
                continue;
            };
            if (2_000_000..2_200_000).contains(&sid)
                && case_sids.contains(&sid)
                && et_sids.contains(&sid)
            {
                want.push((sid, n));
            }
        }
        if want.is_empty() {
            continue;
        }
        let mut pcaps: Vec<PathBuf> = match y.get("pcap").and_then(|p| p.as_str()) {
            Some(p) => vec![dir.join(p)],
            None => common::captures(&dir),
        };
        pcaps.retain(|p| p.exists());
        let evs = replay_with(&pcaps, Config::default(), set.clone());
        for (sid, n) in want {
            let got = evs
                .iter()
                .filter(|e| e["event_type"] == "alert" && e["alert"]["signature_id"] == sid)
                .count() as u64;
            checked += 1;
            if got != n {
                failures.push(format!("{}: sid {sid}: want {n}, got {got}", dir.display()));
            }
        }
    }
    eprintln!("ET Open on suricata-verify cases that use ET rules: {checked} checks");
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(checked >= 1, "{checked}");
}
