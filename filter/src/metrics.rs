//! Prometheus text exposition of the inline workers' counters, served on a localhost port.
//! The workers publish snapshots at most once a second; a scrape only reads them.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use crate::capture::nfqueue::{PolicyHealth, Reloadable, Snapshot};

/// Renders the metrics of the given workers (queue number, snapshot), then those of the policy
/// in force and the kernel queues.
pub fn render(
    workers: &[(u16, Arc<Mutex<Snapshot>>)],
    policy: &PolicyHealth,
    queue_drops: &str,
) -> String {
    let snaps: Vec<(u16, Snapshot)> = workers
        .iter()
        .filter_map(|(q, s)| s.lock().ok().map(|s| (*q, s.clone())))
        .collect();
    let mut o = String::new();
    let mut metric =
        |name: &str, kind: &str, help: &str, f: &dyn Fn(&Snapshot) -> Vec<(String, u64)>| {
            head(&mut o, name, kind, help);
            for (q, s) in &snaps {
                for (labels, v) in f(s) {
                    let sep = if labels.is_empty() { "" } else { "," };
                    let _ = writeln!(o, "palisade_{name}{{queue=\"{q}\"{sep}{labels}}} {v}");
                }
            }
        };
    metric(
        "packets_total",
        "counter",
        "Packets received from the queue.",
        &|s| vec![(String::new(), s.inline.packets)],
    );
    metric("verdicts_total", "counter", "Verdicts by action.", &|s| {
        vec![
            ("action=\"accept\"".into(), s.inline.accepted),
            ("action=\"drop\"".into(), s.inline.dropped),
        ]
    });
    metric(
        "bypass_marks_total",
        "counter",
        "Accepted packets marked for the kernel's bypass: their flow needs no more inspection, and the kernel stops queueing the connection they belong to.",
        &|s| vec![(String::new(), s.inline.bypassed)],
    );
    metric(
        "tunnelled_packets_total",
        "counter",
        "Packets inspected inside a tunnel (IP-in-IP, GRE, VXLAN, Geneve); their flows are never bypassed.",
        &|s| vec![(String::new(), s.engine.tunnelled)],
    );
    metric(
        "resets_sent_total",
        "counter",
        "TCP resets injected.",
        &|s| vec![(String::new(), s.inline.resets_sent)],
    );
    metric(
        "sinkhole_answers_total",
        "counter",
        "DNS answers sent from the sinkhole.",
        &|s| vec![(String::new(), s.inline.sinkhole_answers)],
    );
    metric(
        "verdict_messages_total",
        "counter",
        "Verdict messages sent to the kernel (batch verdicts: fewer than packets).",
        &|s| vec![(String::new(), s.inline.verdict_messages)],
    );
    metric(
        "socket_overruns_total",
        "counter",
        "Queue messages lost on the worker's socket (ENOBUFS).",
        &|s| vec![(String::new(), s.inline.overruns)],
    );
    metric(
        "inject_errors_total",
        "counter",
        "Injections that failed.",
        &|s| vec![(String::new(), s.inline.inject_errors)],
    );
    metric("alerts_total", "counter", "Alerts by action.", &|s| {
        vec![
            ("action=\"blocked\"".into(), s.engine.alerts_blocked),
            ("action=\"allowed\"".into(), s.engine.alerts_allowed),
        ]
    });
    metric(
        "detections_total",
        "counter",
        "Alerts of Palisade's own detectors: the domain and flow models, NXDOMAIN bursts, beacons, DNS tunnels.",
        &|s| {
            vec![
                ("detector=\"name_model\"".into(), s.engine.names_alerted),
                ("detector=\"flow_model\"".into(), s.engine.flows_alerted),
                ("detector=\"nxdomain_burst\"".into(), s.engine.name_bursts),
                ("detector=\"beacon\"".into(), s.engine.beacons),
                ("detector=\"dns_tunnel\"".into(), s.engine.dns_tunnels),
            ]
        },
    );
    metric(
        "name_burst_blocked_total",
        "counter",
        "Suspicious names of clients blocked after their NXDOMAIN burst (--name-burst-block).",
        &|s| vec![(String::new(), s.engine.name_burst_blocked)],
    );
    metric(
        "beacon_blocked_total",
        "counter",
        "Connections of alerted beacons blocked afterwards (--beacon-block).",
        &|s| vec![(String::new(), s.engine.beacon_blocked)],
    );
    metric(
        "dns_tunnel_blocked_total",
        "counter",
        "Queries of alerted DNS tunnels sinkholed afterwards (--dns-tunnel-block).",
        &|s| vec![(String::new(), s.engine.dns_tunnel_blocked)],
    );
    metric(
        "signature_matches_total",
        "counter",
        "Signature matches (alerts, silent drops, passes).",
        &|s| vec![(String::new(), s.engine.sig_matches)],
    );
    metric("flows_active", "gauge", "Flows in the table.", &|s| {
        vec![(String::new(), s.flows.0)]
    });
    metric("flows_total", "counter", "Flows created.", &|s| {
        vec![(String::new(), s.flows.1)]
    });
    metric(
        "memory_bytes",
        "gauge",
        "Traffic-derived memory in use, and the cap.",
        &|s| {
            vec![
                ("kind=\"used\"".into(), s.memory.0),
                ("kind=\"cap\"".into(), s.memory.1),
            ]
        },
    );
    metric(
        "pooled_objects_total",
        "counter",
        "Per-flow state taken from the workers' pools (reused), allocated because a pool was empty (fresh), or freed because a pool was full (freed).",
        &|s| {
            vec![
                ("outcome=\"reused\"".into(), s.pools.reused),
                ("outcome=\"fresh\"".into(), s.pools.fresh),
                ("outcome=\"freed\"".into(), s.pools.freed),
            ]
        },
    );
    metric(
        "pooled_bytes",
        "gauge",
        "Bytes the workers' pools hold for reuse (objects and buffers waiting, with their buffers' capacity); outside the memory budget, bounded by the pools' caps (README \"Limits\").",
        &|s| vec![(String::new(), s.pools.held_bytes)],
    );
    metric(
        "cap_hits_total",
        "counter",
        "Limits reached: segments refused, app buffers dropped, reassembly depth.",
        &|s| {
            vec![
                ("cap=\"tcp_segment\"".into(), s.engine.tcp_refused),
                ("cap=\"app_memory\"".into(), s.engine.app_memcap),
                ("cap=\"reassembly_depth\"".into(), s.engine.tcp_depth),
            ]
        },
    );
    metric("anomalies_total", "counter", "Anomaly events.", &|s| {
        vec![(String::new(), s.engine.anomaly_total())]
    });
    metric(
        "reloads_total",
        "counter",
        "Intel reloads in force.",
        &|s| vec![(String::new(), s.reloads)],
    );
    render_policy(&mut o, policy);
    // Kernel side: /proc/net/netfilter/nfnetlink_queue (queue, portid, waiting, mode, range,
    // queue_dropped, user_dropped, id, 1).
    let _ = writeln!(o, "# HELP palisade_kernel_queue_dropped_total Packets the kernel dropped (queue full, or sent to a listener that failed).\n# TYPE palisade_kernel_queue_dropped_total counter");
    for line in queue_drops.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 7 && workers.iter().any(|(q, _)| q.to_string() == f[0]) {
            let _ = writeln!(
                o,
                "palisade_kernel_queue_dropped_total{{queue=\"{}\",reason=\"queue_full\"}} {}",
                f[0], f[5]
            );
            let _ = writeln!(
                o,
                "palisade_kernel_queue_dropped_total{{queue=\"{}\",reason=\"user\"}} {}",
                f[0], f[6]
            );
        }
    }
    o
}

/// A metric's HELP and TYPE lines.
fn head(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(
        o,
        "# HELP palisade_{name} {help}\n# TYPE palisade_{name} {kind}"
    );
}

/// A label value in the text format: backslash, double quote and line feed escaped.
fn label(v: &str) -> String {
    let mut o = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

/// The policy in force (shared by the workers, so without a queue label): its lists and their
/// skipped lines, signatures, models and thresholds, and how reloads went.
fn render_policy(o: &mut String, p: &PolicyHealth) {
    head(
        o,
        "intel_indicators",
        "gauge",
        "Indicators in force, by list, its action and the kind of indicator.",
    );
    // A list from a fleet bundle is named inside the bundle, so its series carry on from one
    // bundle version to the next. A file given twice with one action is one series (summed):
    // a scrape may not repeat a series.
    let mut lists: Vec<(String, &str, [u64; 4])> = Vec::new();
    for l in &p.lists {
        let name = label(crate::fleet::node::bundle_relative(&l.name).unwrap_or(&l.name));
        let n = [l.domains, l.addrs, l.urls, l.bad_lines].map(u64::from);
        let action = l.action.as_str();
        match lists
            .iter_mut()
            .find(|(m, a, _)| *m == name && *a == action)
        {
            Some((_, _, sum)) => sum.iter_mut().zip(n).for_each(|(s, n)| *s += n),
            None => lists.push((name, action, n)),
        }
    }
    for (name, action, n) in &lists {
        for (kind, n) in ["domain", "address", "url"].into_iter().zip(n) {
            let _ = writeln!(
                o,
                "palisade_intel_indicators{{list=\"{name}\",action=\"{action}\",kind=\"{kind}\"}} {n}"
            );
        }
    }
    head(
        o,
        "intel_bad_lines",
        "gauge",
        "Lines of each list in force that were skipped as bad (the daemon's log names them).",
    );
    for (name, action, n) in &lists {
        let _ = writeln!(
            o,
            "palisade_intel_bad_lines{{list=\"{name}\",action=\"{action}\"}} {}",
            n[3]
        );
    }
    head(o, "signatures", "gauge", "Signatures in force.");
    let _ = writeln!(o, "palisade_signatures {}", p.signatures);
    head(
        o,
        "model_info",
        "gauge",
        "The models in force (1 each), with their version and mode (shadow, alert or block).",
    );
    for m in &p.models {
        let mode = if m.shadow {
            "shadow"
        } else if m.block.is_some() {
            "block"
        } else {
            "alert"
        };
        let _ = writeln!(
            o,
            "palisade_model_info{{model=\"{}\",version=\"{}\",mode=\"{mode}\"}} 1",
            m.kind,
            label(&m.version)
        );
    }
    head(
        o,
        "model_threshold",
        "gauge",
        "Score thresholds of the models in force (block only when blocking is on).",
    );
    for m in &p.models {
        let _ = writeln!(
            o,
            "palisade_model_threshold{{model=\"{}\",action=\"alert\"}} {}",
            m.kind, m.alert
        );
        if let Some(b) = m.block {
            let _ = writeln!(
                o,
                "palisade_model_threshold{{model=\"{}\",action=\"block\"}} {b}",
                m.kind
            );
        }
    }
    head(
        o,
        "policy_loaded_timestamp_seconds",
        "gauge",
        "When the policy in force was loaded (at start, by SIGHUP or from a fleet bundle).",
    );
    let _ = writeln!(
        o,
        "palisade_policy_loaded_timestamp_seconds {}",
        p.loaded_at
    );
    head(
        o,
        "policy_reload_failures_total",
        "counter",
        "Policies refused (SIGHUP reloads, fleet bundles); the running policy stayed in force.",
    );
    let _ = writeln!(o, "palisade_policy_reload_failures_total {}", p.failures);
    head(
        o,
        "policy_last_reload_successful",
        "gauge",
        "1 when the latest attempt to load a policy succeeded, 0 when it was refused.",
    );
    let _ = writeln!(
        o,
        "palisade_policy_last_reload_successful {}",
        u8::from(p.last_ok)
    );
}

/// Serves `/metrics` on `addr` (for example 127.0.0.1:9475) until the process ends.
pub fn serve(
    addr: &str,
    workers: Vec<(u16, Arc<Mutex<Snapshot>>)>,
    policy: Arc<Reloadable>,
) -> std::io::Result<()> {
    serve_get(
        addr,
        &["/metrics", "/"],
        "text/plain; version=0.0.4",
        move || {
            render(
                &workers,
                &policy.health(),
                &std::fs::read_to_string("/proc/net/netfilter/nfnetlink_queue").unwrap_or_default(),
            )
        },
    )
}

/// A minimal HTTP/1.x server for local scrapes on its own thread: reads a request head (up to
/// 4 KiB, 2 s), answers `GET` of one of `paths` with `body()`, anything else with 404, and
/// closes the connection.
pub fn serve_get(
    addr: &str,
    paths: &'static [&'static str],
    content_type: &'static str,
    body: impl Fn() -> String + Send + 'static,
) -> std::io::Result<()> {
    let l = TcpListener::bind(addr)?;
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let mut c = conn;
            let _ = c.set_read_timeout(Some(std::time::Duration::from_secs(2)));
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while req.len() < 4096 && !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let ok = paths
                .iter()
                .any(|p| req.starts_with(format!("GET {p} ").as_bytes()));
            let (status, text) = if ok {
                ("200 OK", body())
            } else {
                ("404 Not Found", "not found\n".to_string())
            };
            let _ = c.write_all(
                format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                )
                .as_bytes(),
            );
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_rules::{Action, ListInfo};

    fn health(name: &str) -> PolicyHealth {
        PolicyHealth {
            lists: vec![ListInfo {
                name: name.into(),
                action: Action::Audit,
                domains: 3,
                addrs: 2,
                urls: 1,
                bad_lines: 4,
            }],
            signatures: 7,
            models: vec![crate::capture::nfqueue::ModelHealth {
                kind: "domain",
                version: "domain-x".into(),
                alert: 0.5,
                block: Some(0.75),
                shadow: false,
            }],
            loaded_at: 1_700_000_000,
            failures: 2,
            last_ok: false,
        }
    }

    #[test]
    fn policy_gauges_name_the_list_with_its_label_escaped() {
        let text = render(&[], &health("/srv/a \"b\"\\c\nd.txt"), "");
        let list = r#"list="/srv/a \"b\"\\c\nd.txt""#;
        for line in [
            format!("palisade_intel_indicators{{{list},action=\"audit\",kind=\"domain\"}} 3"),
            format!("palisade_intel_indicators{{{list},action=\"audit\",kind=\"address\"}} 2"),
            format!("palisade_intel_indicators{{{list},action=\"audit\",kind=\"url\"}} 1"),
            format!("palisade_intel_bad_lines{{{list},action=\"audit\"}} 4"),
            "palisade_signatures 7".into(),
            "palisade_model_info{model=\"domain\",version=\"domain-x\",mode=\"block\"} 1".into(),
            "palisade_model_threshold{model=\"domain\",action=\"alert\"} 0.5".into(),
            "palisade_model_threshold{model=\"domain\",action=\"block\"} 0.75".into(),
            "palisade_policy_loaded_timestamp_seconds 1700000000".into(),
            "palisade_policy_reload_failures_total 2".into(),
            "palisade_policy_last_reload_successful 0".into(),
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
        // Every sample line sits under its own HELP and TYPE, and no raw line feed splits one.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap_or_default();
            assert!(text.contains(&format!("# TYPE {name} ")), "{l}");
        }
    }

    #[test]
    fn a_bundle_list_keeps_its_name_across_versions() {
        for v in ["v7-0123456789ab", "v8-ba9876543210"] {
            let text = render(
                &[],
                &health(&format!("/var/lib/palisade/bundles/{v}/feed.txt")),
                "",
            );
            assert!(
                text.contains("palisade_intel_bad_lines{list=\"feed.txt\",action=\"audit\"} 4"),
                "{text}"
            );
        }
    }

    #[test]
    fn a_list_given_twice_with_one_action_is_one_series() {
        let mut h = health("feed.txt");
        h.lists.push(h.lists[0].clone());
        let mut allow = h.lists[0].clone();
        allow.action = Action::Allow;
        h.lists.push(allow);
        let text = render(&[], &h, "");
        let count = |needle: &str| text.lines().filter(|l| l.starts_with(needle)).count();
        let audit = "palisade_intel_indicators{list=\"feed.txt\",action=\"audit\",kind=\"domain\"}";
        assert_eq!(count(audit), 1, "{text}");
        assert!(text.contains(&format!("{audit} 6")), "{text}");
        assert!(text.contains("palisade_intel_bad_lines{list=\"feed.txt\",action=\"allow\"} 4"));
        assert!(text.contains("palisade_intel_bad_lines{list=\"feed.txt\",action=\"audit\"} 8"));
    }

    #[test]
    fn refused_reloads_are_counted_and_a_success_clears_the_flag() {
        let r = Reloadable::default();
        let policy = crate::engine::Policy {
            intel: palisade_rules::IntelSet::default(),
            sigs: palisade_rules::sig::SigSet::default(),
            names: None,
            flows: None,
        };
        r.record(&policy);
        assert!(r.health().last_ok && r.health().loaded_at > 0);
        r.refused();
        r.refused();
        assert_eq!((r.health().failures, r.health().last_ok), (2, false));
        r.publish(policy);
        assert_eq!((r.health().failures, r.health().last_ok), (2, true));
        assert_eq!(r.generation(), 1);
    }
}
