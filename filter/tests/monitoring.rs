//! The Prometheus alerting rules shipped in `systemd/`: Prometheus's own `promtool` checks them
//! and runs their unit tests (`palisade-alerts.test.yml`), and every metric they use is one the
//! metrics endpoint serves.
#![allow(clippy::unwrap_used)]

mod lab;

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

use palisade::capture::nfqueue::{ModelHealth, PolicyHealth, Snapshot};
use palisade_rules::{Action, ListInfo};

fn systemd_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../systemd")
}

/// `promtool` with `args` in `systemd/`: whether it succeeded and what it said; None when it is
/// not installed (a failure under CI=true, as for the lab's other tools).
fn promtool(args: &[&str]) -> Option<(bool, String)> {
    lab::tools(&["promtool"]).then(|| {
        let o = Command::new("promtool")
            .args(args)
            .current_dir(systemd_dir())
            .output()
            .unwrap();
        let say =
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
        (o.status.success(), say)
    })
}

#[test]
fn alert_rules_load_and_pass_their_unit_tests() {
    let Some((ok, say)) = promtool(&["check", "rules", "palisade-alerts.yml"]) else {
        return;
    };
    assert!(ok, "{say}");
    assert!(say.contains("SUCCESS: 8 rules found"), "{say}");
    let (ok, say) = promtool(&["test", "rules", "palisade-alerts.test.yml"]).unwrap();
    assert!(ok, "{say}");
    assert!(say.contains("SUCCESS"), "{say}");
}

#[test]
fn alert_rules_use_only_served_metrics() {
    let rules = std::fs::read_to_string(systemd_dir().join("palisade-alerts.yml")).unwrap();
    let policy = PolicyHealth {
        lists: vec![ListInfo {
            name: "feed.txt".into(),
            action: Action::Block,
            domains: 1,
            addrs: 0,
            urls: 0,
            bad_lines: 0,
        }],
        signatures: 0,
        models: vec![ModelHealth {
            kind: "domain",
            version: "domain-x".into(),
            alert: 0.9,
            block: None,
            shadow: false,
        }],
        loaded_at: 1,
        failures: 0,
        last_ok: true,
    };
    let queue_drops = "0  1234  0 2 65531 0 0 0  1\n";
    let text = palisade::metrics::render(
        &[(0, Arc::new(Mutex::new(Snapshot::default())))],
        &policy,
        queue_drops,
    );
    let served: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let mut used = Vec::new();
    for (i, _) in rules.match_indices("palisade_") {
        let name: String = rules[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        // Alert names are CamelCase (`PalisadeDown`); file names end in `.yml` or `.toml`.
        let after = rules[i + name.len()..].chars().next();
        if after != Some('.') && !used.contains(&name) {
            used.push(name);
        }
    }
    assert!(used.len() >= 8, "{used:?}");
    for name in &used {
        assert!(
            served.contains(&name.as_str()),
            "the rules use {name}, which the endpoint does not serve ({served:?})"
        );
    }
}
