//! The fleet for real: a manager and nodes in network namespaces, each node a `palisade inline`
//! on NFQUEUE in front of real curl clients, nginx as the server, QUIC with mutual TLS between
//! them, and bundles signed with the operator's key. Needs root and the lab's tools; with
//! CI=true a missing one fails the test instead of skipping.

#![allow(clippy::unwrap_used)]

mod lab;

use std::path::Path;
use std::time::{Duration, Instant};

use lab::*;

/// The operator's material in `dir`: a CA, the manager's certificate (`manager.fleet`), node
/// certificates, and a bundle-signing key.
fn pki(dir: &Path, nodes: &[&str]) {
    let d = dir.display();
    must(&format!("{BIN} manager init-ca --out {d}/pki >/dev/null"));
    for n in std::iter::once(&"manager.fleet").chain(nodes) {
        must(&format!(
            "{BIN} manager issue-cert {n} --ca {d}/pki --out {d}/pki >/dev/null"
        ));
    }
    must(&format!("{BIN} manager keygen --out {d}/signer >/dev/null"));
}

/// Writes a bundle blocking `names`, signs it as `version` (for `groups`) with `key`, and moves
/// it into the manager's policy directory in one rename, as an operator would.
fn publish(dir: &Path, version: u64, names: &[&str], groups: &[&str], key: &str) -> Instant {
    let stage = dir.join(format!("stage{version}"));
    std::fs::create_dir_all(&stage).unwrap();
    std::fs::write(stage.join("block.txt"), names.join("\n") + "\n").unwrap();
    std::fs::write(
        stage.join("policy.toml"),
        "[[intel]]\npath = \"block.txt\"\naction = \"block\"\n",
    )
    .unwrap();
    let g: String = groups.iter().map(|g| format!(" --group {g}")).collect();
    must(&format!(
        "{BIN} manager sign {} --key {key} --version {version}{g} >/dev/null",
        stage.display()
    ));
    std::fs::create_dir_all(dir.join("policy")).unwrap();
    std::fs::rename(&stage, dir.join(format!("policy/v{version}"))).unwrap();
    Instant::now()
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_default()
}

/// The lines of an eve file that are written out whole: a writer may be in the middle of the
/// last one when the file is read.
fn whole_lines(text: &str) -> impl Iterator<Item = &str> {
    text[..text.rfind('\n').map_or(0, |i| i + 1)].lines()
}

fn status(ns: &str, port: u16) -> serde_json::Value {
    let o = sh(&format!(
        "ip netns exec {ns} {BIN} manager status --status 127.0.0.1:{port} --json"
    ));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        eprintln!(
            "status: {e}: {} {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::Value::Null
    })
}

fn node<'a>(st: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    st["nodes"]
        .as_array()
        .and_then(|v| v.iter().find(|n| n["name"] == name))
        .unwrap_or(&serde_json::Value::Null)
}

fn start_manager(lab: &mut Lab, ns: &str, extra: &str) -> usize {
    let d = lab.dir.display().to_string();
    // Settings from the file; the status port from the command line, which wins over the
    // file's `off`.
    std::fs::write(
        lab.dir.join("manager.toml"),
        format!(
            "listen = \"0.0.0.0:7790\"\npolicy = \"{d}/policy\"\nca = \"{d}/pki/ca.pem\"\ncert = \"{d}/pki/manager.fleet.pem\"\nkey = \"{d}/pki/manager.fleet.key\"\nstate_dir = \"{d}/mstate\"\nstatus = \"off\"\neve = \"{d}/manager-eve.json\"\n"
        ),
    )
    .unwrap();
    let i = lab.spawn(
        &format!(
            "ip netns exec {ns} {BIN} manager --config {d}/manager.toml --status 127.0.0.1:7791 {extra}"
        ),
        "manager.log",
    );
    let p = lab.dir.join("manager.log");
    wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&p).is_ok_and(|s| s.contains("listening"))
    });
    i
}

/// `palisade inline` as node `name` in `ns` (host role, queue 0), managed from `mgr`.
fn start_node(lab: &mut Lab, ns: &str, name: &str, mgr: &str, extra: &str) -> usize {
    let d = lab.dir.display().to_string();
    must(&format!(
        "ip netns exec {ns} {BIN} firewall install --role host --queue 0 --fail open >/dev/null"
    ));
    let i = lab.spawn(
        &format!(
            "ip netns exec {ns} {BIN} inline --queue 0 --eve {d}/{name}-eve.json --manager {mgr}:7790 --manager-name manager.fleet --ca {d}/pki/ca.pem --cert {d}/pki/{name}.pem --key {d}/pki/{name}.key --bundle-key {d}/signer.pub --state-dir {d}/{name}-state {extra}"
        ),
        &format!("{name}.log"),
    );
    let p = lab.dir.join(format!("{name}.log"));
    wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&p).is_ok_and(|s| s.contains("ready"))
    });
    i
}

/// curl with a Host header from `ns` to `addr`: (exit code, HTTP code).
fn get(ns: &str, addr: &str, host: &str) -> (i32, String) {
    let (rc, code, _) = curl(ns, &format!("-H 'Host: {host}' http://{addr}/"));
    (rc, code)
}

#[test]
fn manager_pushes_signed_policy_to_three_nodes_and_refuses_tampering() {
    if !ready() {
        return;
    }
    let mut lab = Lab::new("f");
    let m = lab.ns("m");
    let nodes: Vec<(String, String, String)> = (1..=3)
        .map(|i| {
            let ns = lab.ns(&format!("n{i}"));
            let (srv, cli) = (format!("10.81.{i}.1"), format!("10.81.{i}.2"));
            lab.link(
                &m,
                &[&format!("{srv}/24")],
                &ns,
                &[&format!("{cli}/24")],
                &i.to_string(),
            );
            (ns, format!("node{i}"), srv)
        })
        .collect();
    let srvs: Vec<&str> = nodes.iter().map(|n| n.2.as_str()).collect();
    lab.servers(&m, &srvs);
    let names: Vec<&str> = nodes.iter().map(|n| n.1.as_str()).collect();
    pki(&lab.dir, &names);
    let d = lab.dir.clone();
    let key = format!("{}/signer.key", d.display());
    publish(&d, 1, &["blocked-one.example"], &[], &key);
    start_manager(&mut lab, &m, "");
    let mut procs = Vec::new();
    for (i, (ns, name, srv)) in nodes.iter().enumerate() {
        let group = if i == 0 { "--group canary" } else { "" };
        procs.push(start_node(&mut lab, ns, name, srv, group));
    }
    // Every node pulls version 1 on connect and enforces it.
    wait_until(Duration::from_secs(10), || {
        let st = status(&m, 7791);
        names.iter().all(|n| node(&st, n)["version"] == 1)
    });
    for (ns, _, srv) in &nodes {
        assert_eq!(get(ns, srv, "blocked-one.example").0, 56, "reset");
        assert_eq!(get(ns, srv, "fresh.example").1, "200");
    }

    // A new indicator, published once, is enforced by every node within a second: a real
    // client's connection gets reset.
    let t0 = publish(&d, 2, &["blocked-one.example", "fresh.example"], &[], &key);
    let mut pending: Vec<usize> = (0..nodes.len()).collect();
    let mut took = Vec::new();
    while !pending.is_empty() && t0.elapsed() < Duration::from_secs(5) {
        pending.retain(|&i| {
            let (ns, _, srv) = &nodes[i];
            let (rc, _, _) = curl(
                ns,
                &format!("-m 0.5 -H 'Host: fresh.example' http://{srv}/"),
            );
            if rc == 56 {
                took.push(t0.elapsed());
                false
            } else {
                true
            }
        });
    }
    assert!(
        pending.is_empty(),
        "nodes {pending:?} never enforced version 2"
    );
    let slowest = took.iter().max().unwrap();
    eprintln!("version 2 enforced by every node; slowest {slowest:?}, all {took:?}");
    assert!(*slowest < Duration::from_secs(1), "{took:?}");

    // A bundle altered after signing, and one signed with another key, are refused everywhere;
    // version 2 stays in force.
    publish(
        &d,
        3,
        &["blocked-one.example", "fresh.example", "tampered.example"],
        &[],
        &key,
    );
    std::fs::write(
        d.join("policy/v3/block.txt"),
        "blocked-one.example\nfresh.example\ntampered.example\nok.example\n",
    )
    .unwrap();
    wait_until(Duration::from_secs(5), || {
        let st = status(&m, 7791);
        names.iter().all(|n| {
            node(&st, n)["refused"]
                .as_str()
                .is_some_and(|r| r.starts_with("version 3:") && r.contains("does not match"))
        })
    });
    must(&format!(
        "{BIN} manager keygen --out {}/rogue >/dev/null",
        d.display()
    ));
    publish(
        &d,
        4,
        &["ok.example"],
        &[],
        &format!("{}/rogue.key", d.display()),
    );
    wait_until(Duration::from_secs(5), || {
        let st = status(&m, 7791);
        names.iter().all(|n| {
            node(&st, n)["refused"]
                .as_str()
                .is_some_and(|r| r.starts_with("version 4:") && r.contains("signature"))
        })
    });
    let st = status(&m, 7791);
    for ((ns, name, srv), n) in nodes.iter().zip(&names) {
        assert_eq!(node(&st, n)["version"], 2, "{name}");
        assert_eq!(
            get(ns, srv, "fresh.example").0,
            56,
            "{name}: version 2 in force"
        );
        assert_eq!(
            get(ns, srv, "ok.example").1,
            "200",
            "{name}: tampered list not applied"
        );
    }
    // Each node's metrics count the two refusals and still describe version 2's list, named
    // inside the bundle.
    for (ns, name, _) in &nodes {
        let s = prometheus_samples(&metrics(ns, 9475));
        let failures = sample(&s, "palisade_policy_reload_failures_total{}");
        assert!(failures >= 2.0, "{name}: {failures}");
        assert_eq!(
            (
                sample(&s, "palisade_policy_last_reload_successful{}"),
                sample(
                    &s,
                    "palisade_intel_indicators{action=\"block\",kind=\"domain\",list=\"block.txt\"}"
                ),
            ),
            (0.0, 2.0),
            "{name}"
        );
    }
    std::fs::remove_dir_all(d.join("policy/v3")).unwrap();
    std::fs::remove_dir_all(d.join("policy/v4")).unwrap();

    // Staged rollout: version 5 targets the canary group (node1) only.
    publish(
        &d,
        5,
        &["blocked-one.example", "fresh.example", "staged.example"],
        &["canary"],
        &key,
    );
    wait_until(Duration::from_secs(5), || {
        node(&status(&m, 7791), "node1")["version"] == 5
    });
    std::thread::sleep(Duration::from_millis(600));
    let st = status(&m, 7791);
    assert_eq!(node(&st, "node2")["version"], 2);
    assert_eq!(node(&st, "node3")["version"], 2);
    assert_eq!(get(&nodes[0].0, &nodes[0].2, "staged.example").0, 56);
    assert_eq!(get(&nodes[1].0, &nodes[1].2, "staged.example").1, "200");
    // Then everyone.
    publish(
        &d,
        6,
        &["blocked-one.example", "fresh.example", "staged.example"],
        &[],
        &key,
    );
    wait_until(Duration::from_secs(5), || {
        let st = status(&m, 7791);
        names.iter().all(|n| node(&st, n)["version"] == 6)
    });
    assert_eq!(get(&nodes[2].0, &nodes[2].2, "staged.example").0, 56);

    // A restarted node restores its last good bundle before the manager answers.
    lab.kill(procs[2]);
    start_node(&mut lab, &nodes[2].0, "node3", &nodes[2].2, "");
    assert!(lab.file("node3.log").contains("restored bundle version 6"));

    // The status command lists every node with its version.
    let o = sh(&format!(
        "ip netns exec {m} {BIN} manager status --status 127.0.0.1:7791"
    ));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("node1") && text.contains("canary"), "{text}");

    // Certificates: one from another CA, and an expired one, are refused.
    let other = d.join("other");
    must(&format!(
        "{BIN} manager init-ca --out {o} >/dev/null && {BIN} manager issue-cert intruder --ca {o} --out {o} >/dev/null",
        o = other.display()
    ));
    must(&format!(
        "{BIN} manager issue-cert expired --ca {d}/pki --out {d}/pki --not-before 2020-01-01 --not-after 2020-06-01 >/dev/null",
        d = d.display()
    ));
    let before = status(&m, 7791)["refused_connections"]
        .as_u64()
        .unwrap_or_else(|| panic!("no status: {}", lab.file("manager.log")));
    for (name, ca) in [("intruder", other.clone()), ("expired", d.join("pki"))] {
        let ns = &nodes[0].0;
        let o = sh(&format!(
            "ip netns exec {ns} timeout 4 {BIN} capture --iface lo --count 1000000 --eve /dev/null --manager {srv}:7790 --manager-name manager.fleet --ca {d}/pki/ca.pem --cert {c}/{name}.pem --key {c}/{name}.key --bundle-key {d}/signer.pub --state-dir {d}/{name}-state 2>&1",
            srv = nodes[0].2,
            d = d.display(),
            c = ca.display()
        ));
        let log = String::from_utf8_lossy(&o.stdout);
        assert!(!log.contains("connected to manager"), "{name}: {log}");
    }
    let st = status(&m, 7791);
    assert!(node(&st, "intruder").is_null() && node(&st, "expired").is_null());
    assert!(
        st["refused_connections"].as_u64().unwrap() >= before + 2,
        "{st}"
    );
    let mlog = lab.file("manager.log");
    assert!(
        mlog.contains("connection refused") && mlog.to_lowercase().contains("expired"),
        "{mlog}"
    );
}

#[test]
fn events_reach_the_manager_exactly_once_in_order_across_a_link_failure() {
    if !ready() {
        return;
    }
    let mut lab = Lab::new("e");
    let (m, n, s) = (lab.ns("m"), lab.ns("n"), lab.ns("s"));
    // Control link node <-> manager; traffic link node <-> server.
    lab.link(&m, &["10.82.1.1/24"], &n, &["10.82.1.2/24"], "1");
    lab.link(&s, &["10.82.2.1/24"], &n, &["10.82.2.2/24"], "2");
    lab.servers(&s, &["10.82.2.1"]);
    pki(&lab.dir, &["edge"]);
    let d = lab.dir.clone();
    publish(
        &d,
        1,
        &["blocked.example"],
        &[],
        &format!("{}/signer.key", d.display()),
    );
    let mgr = start_manager(&mut lab, &m, "");
    start_node(&mut lab, &n, "edge", "10.82.1.1", "--manager-idle 2");
    wait_until(Duration::from_secs(10), || {
        node(&status(&m, 7791), "edge")["version"] == 1
    });
    // Traffic that makes events (http, alerts) before, during and after the outage.
    let traffic = |k: usize| {
        for i in 0..k {
            let host = if i % 5 == 0 {
                "blocked.example"
            } else {
                "ok.example"
            };
            let _ = get(&n, "10.82.2.1", host);
        }
    };
    traffic(20);
    must(&format!("ip -n {n} link set vb1{} down", lab.tag));
    let down = Instant::now();
    traffic(60);
    while down.elapsed() < Duration::from_secs(4) {
        std::thread::sleep(Duration::from_millis(100));
    }
    must(&format!("ip -n {n} link set vb1{} up", lab.tag));
    traffic(20);
    // Every event the node wrote reaches the manager, once, in order, tagged with its name.
    let node_events = || -> Vec<serde_json::Value> {
        whole_lines(&read(&d, "edge-eve.json"))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let manager_events = || -> Vec<serde_json::Value> {
        whole_lines(&read(&d, "manager-eve.json"))
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|mut e| {
                assert_eq!(e["host"], "edge");
                e.as_object_mut().unwrap().remove("host");
                e
            })
            .collect()
    };
    // The node writes its file before it spools, so the manager's copy is always a prefix of
    // the node's file, and catches up with all of it.
    let before = node_events().len();
    wait_until(Duration::from_secs(20), || manager_events().len() >= before);
    let me = manager_events();
    let ne = node_events();
    assert!(ne.len() >= 100, "{} events", ne.len());
    assert!(ne.iter().any(|e| e["event_type"] == "alert"));
    assert!(
        me.len() <= ne.len() && me[..] == ne[..me.len()],
        "manager's copy is not the node's events once each in order ({} vs {})",
        me.len(),
        ne.len()
    );
    // Rotation: the manager's eve file moved away, SIGHUP, and events continue in a new file;
    // together they are still every event once, in order.
    std::fs::rename(d.join("manager-eve.json"), d.join("manager-eve.json.1")).unwrap();
    must(&format!("kill -HUP {}", lab.children[mgr].id()));
    traffic(10);
    let rotated = || -> Vec<serde_json::Value> {
        let mut all = read(&d, "manager-eve.json.1");
        all.push_str(&read(&d, "manager-eve.json"));
        whole_lines(&all)
            .map(|l| {
                let mut e: serde_json::Value = serde_json::from_str(l).unwrap();
                e.as_object_mut().unwrap().remove("host");
                e
            })
            .collect()
    };
    let before = node_events().len();
    wait_until(Duration::from_secs(20), || rotated().len() >= before);
    assert!(!read(&d, "manager-eve.json").is_empty());
    let (me, ne) = (rotated(), node_events());
    assert!(me.len() <= ne.len() && me[..] == ne[..me.len()]);
    // The manager killed and restarted: its positions journal keeps the node's events once.
    lab.kill(mgr);
    traffic(10);
    start_manager(&mut lab, &m, "");
    traffic(10);
    let before = node_events().len();
    wait_until(Duration::from_secs(20), || rotated().len() >= before);
    let (me, ne) = (rotated(), node_events());
    assert!(
        me.len() <= ne.len() && me[..] == ne[..me.len()],
        "after a manager restart: {} vs {}",
        me.len(),
        ne.len()
    );
    let log = read(&d, "edge.log");
    assert!(
        log.matches("connected to manager").count() >= 2,
        "the outage did not break the connection: {log}"
    );
    let st = status(&m, 7791);
    let e = node(&st, "edge");
    assert_eq!(e["lost"], 0);
    assert!(e["last_seq"].as_u64().unwrap() as usize >= me.len());
    eprintln!(
        "{} events, duplicates resent and dropped by the manager: {}",
        me.len(),
        e["duplicates"]
    );
}
