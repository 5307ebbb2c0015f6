//! Inline protection for real: network namespaces joined by veth pairs, nginx (TLS and HTTP) and
//! dnsmasq as servers, curl and dig as clients, iptables NFQUEUE, and `palisade inline`.
//! Needs root and those tools; with CI=true a missing one fails the test instead of skipping.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

mod common;
mod lab;

use lab::*;

/// The checks every role must pass, with the client in `cli` and servers at `srv` (names and
/// the HTTP Host resolve there) and `bad` (a listed address).
fn check_blocking(lab: &Lab, cli: &str, srv: &str, bad: &str) {
    let (rc, code, _) = curl(
        cli,
        &format!("--resolve ok.example:443:{srv} https://ok.example/"),
    );
    assert_eq!((rc, code.as_str()), (0, "200"), "allowed name");
    let (rc, _, t) = curl(
        cli,
        &format!("--resolve www.blocked.example:443:{srv} https://www.blocked.example/"),
    );
    assert!(
        rc == 35 || rc == 56,
        "blocked SNI must be reset, curl exit {rc}"
    );
    assert!(t < 1.0, "reset within 1 s: {t}");
    assert_eq!(
        dig(cli, srv, "www.blocked.example"),
        "0.0.0.0",
        "sinkhole answer"
    );
    assert_eq!(
        dig(cli, srv, "fine.example"),
        srv,
        "allowed query reaches dnsmasq"
    );
    let log = lab.file("dnsmasq.log");
    assert!(log.contains("query[A] fine.example"), "{log}");
    assert!(
        !log.contains("blocked.example"),
        "dnsmasq never saw the blocked query: {log}"
    );
    let (rc, _, _) = curl(cli, &format!("-m 2 http://{bad}/"));
    assert_eq!(
        rc, 28,
        "a listed address never completes the handshake (timeout)"
    );
    let (rc, _, t) = curl(cli, &format!("-H 'Host: blocked.example' http://{srv}/"));
    assert_eq!(rc, 56, "blocked Host is reset");
    assert!(t < 1.0);
    let kinds: Vec<String> = lab
        .alerts()
        .iter()
        .map(|a| {
            format!(
                "{} {}",
                a["palisade"]["field"].as_str().unwrap(),
                a["alert"]["action"].as_str().unwrap()
            )
        })
        .collect();
    for want in [
        "tls.sni blocked",
        "dns.query blocked",
        "dest_ip blocked",
        "http.hostname blocked",
    ] {
        assert!(
            kinds.iter().any(|k| k == want),
            "no `{want}` alert in {kinds:?}"
        );
    }
}

#[test]
fn host_role_blocks_before_payload_and_cleans_up() {
    if !ready() {
        return;
    }
    let mut lab = Lab::new("h");
    let (cli, srv) = (lab.ns("c"), lab.ns("s"));
    lab.link(
        &cli,
        &["10.77.0.1/24"],
        &srv,
        &["10.77.0.2/24", "10.77.0.3/24"],
        "0",
    );
    lab.servers(&srv, &["10.77.0.2", "10.77.0.3"]);
    std::fs::write(lab.dir.join("block.txt"), "blocked.example\n10.77.0.3\n").unwrap();
    let fw = sh(&format!(
        "ip netns exec {cli} {BIN} firewall install --role host --queue 7 --fail open"
    ));
    assert!(
        fw.status.success(),
        "{}",
        String::from_utf8_lossy(&fw.stderr)
    );
    let say = String::from_utf8_lossy(&fw.stdout);
    assert!(
        say.contains("using the iptables NFQUEUE target") || say.contains("nftables supports"),
        "{say}"
    );
    let p = lab.palisade(&cli, 7, "", "inline.log");
    check_blocking(&lab, &cli, "10.77.0.2", "10.77.0.3");
    // Metrics: published within a second, scraped on the namespace's loopback.
    std::thread::sleep(Duration::from_millis(1200));
    let _ = curl(
        &cli,
        "--resolve ok.example:443:10.77.0.2 https://ok.example/",
    );
    let m = metrics(&cli, 9475);
    let value = |needle: &str| metric(&m, needle);
    assert!(value("palisade_packets_total{queue=\"7\"}") > 10);
    assert!(value("palisade_verdicts_total{queue=\"7\",action=\"drop\"}") >= 4);
    assert!(value("palisade_resets_sent_total{queue=\"7\"}") >= 4);
    assert!(value("palisade_sinkhole_answers_total{queue=\"7\"}") >= 1);
    assert!(value("palisade_alerts_total{queue=\"7\",action=\"blocked\"}") >= 4);
    // Per-flow state came from the worker's pools: the first flows' objects were made fresh.
    assert!(value("palisade_pooled_objects_total{queue=\"7\",outcome=\"fresh\"}") > 0);
    assert!(
        m.contains("palisade_pooled_objects_total{queue=\"7\",outcome=\"reused\"}"),
        "{m}"
    );
    // What the pools hold now: at least a worker's first ended flows' objects, at most the
    // README's bound of about 14 MiB.
    let pooled = value("palisade_pooled_bytes{queue=\"7\"}");
    assert!(pooled > 0 && pooled < 14 << 20, "{pooled}");
    assert!(
        m.contains("palisade_kernel_queue_dropped_total{queue=\"7\",reason=\"queue_full\"}"),
        "{m}"
    );
    // The whole scrape is read by Prometheus's own parser and passes its linter; the policy's
    // gauges are there.
    let s = prometheus_samples(&m);
    promtool_lint(&m);
    let list = lab.dir.join("block.txt").display().to_string();
    for (kind, n) in [("domain", 1.0), ("address", 1.0), ("url", 0.0)] {
        let key = format!(
            "palisade_intel_indicators{{action=\"block\",kind=\"{kind}\",list=\"{list}\"}}"
        );
        assert_eq!(sample(&s, &key), n, "{key}");
    }
    let models: Vec<&String> = s
        .iter()
        .filter(|(k, v)| k.starts_with("palisade_model_info{") && *v == 1.0)
        .map(|(k, _)| k)
        .collect();
    assert!(
        models.len() == 2
            && models[0].starts_with(
                "palisade_model_info{mode=\"alert\",model=\"domain\",version=\"domain-"
            )
            && models[1]
                .starts_with("palisade_model_info{mode=\"shadow\",model=\"flow\",version=\"flow-"),
        "{models:?}"
    );
    let alert = sample(
        &s,
        "palisade_model_threshold{action=\"alert\",model=\"domain\"}",
    );
    assert!(alert > 0.9 && alert < 1.0, "{alert}");

    // Bypass: once the TLS hellos are seen, the rest of a 4 MB download skips the queue.
    let scrape = || {
        std::thread::sleep(Duration::from_millis(1100));
        let _ = curl(
            &cli,
            "--resolve ok.example:443:10.77.0.2 https://ok.example/",
        );
        metric(&metrics(&cli, 9475), "palisade_packets_total{queue=\"7\"}")
    };
    let before = scrape();
    let (rc, code, _) = curl(
        &cli,
        "--resolve ok.example:443:10.77.0.2 https://ok.example/big.bin",
    );
    assert_eq!((rc, code.as_str()), (0, "200"));
    let queued = scrape() - before;
    eprintln!("bypass: a 4 MB TLS download put {queued} packets through the queue");
    assert!(
        queued < 60,
        "{queued} packets queued for a 4 MB download (about 3000 without bypass)"
    );

    // Fail open: kill -9 the daemon, traffic flows (uninspected); a restart restores blocking.
    lab.kill(p);
    assert_eq!(
        curl(
            &cli,
            "--resolve www.blocked.example:443:10.77.0.2 https://www.blocked.example/"
        )
        .0,
        0,
        "fail open passes traffic"
    );
    let p = lab.palisade(&cli, 7, "", "inline2.log");
    assert!(
        curl(
            &cli,
            "--resolve www.blocked.example:443:10.77.0.2 https://www.blocked.example/"
        )
        .0 != 0,
        "restart restores inspection"
    );
    lab.kill(p);

    // Fail closed: with no daemon, nothing passes.
    must(&format!(
        "ip netns exec {cli} {BIN} firewall install --role host --queue 7 --fail closed"
    ));
    assert_eq!(
        curl(
            &cli,
            "-m 2 --resolve ok.example:443:10.77.0.2 https://ok.example/"
        )
        .0,
        28,
        "fail closed stops traffic"
    );

    // Audit mode: everything passes, alerts say `allowed`.
    let _ = std::fs::remove_file(lab.dir.join("eve.json"));
    let p = lab.palisade(&cli, 7, "--mode audit", "inline3.log");
    assert_eq!(
        curl(
            &cli,
            "--resolve www.blocked.example:443:10.77.0.2 https://www.blocked.example/"
        )
        .1,
        "200"
    );
    assert_eq!(dig(&cli, "10.77.0.2", "www.blocked.example"), "10.77.0.2");
    let a = lab.alerts();
    assert!(
        !a.is_empty() && a.iter().all(|x| x["alert"]["action"] == "allowed"),
        "{a:?}"
    );
    lab.kill(p);

    // Uninstall leaves nothing of Palisade in the ruleset.
    must(&format!("ip netns exec {cli} {BIN} firewall uninstall"));
    let rules = String::from_utf8_lossy(
        &sh(&format!(
            "ip netns exec {cli} iptables-save; ip netns exec {cli} ip6tables-save"
        ))
        .stdout,
    )
    .to_string();
    assert!(
        !rules.contains("PALISADE") && !rules.contains("NFQUEUE"),
        "{rules}"
    );
    assert_eq!(
        curl(
            &cli,
            "--resolve ok.example:443:10.77.0.2 https://ok.example/"
        )
        .1,
        "200"
    );
}

#[test]
fn gateway_role_blocks_forwarded_traffic() {
    if !ready() {
        return;
    }
    let mut lab = Lab::new("g");
    let (cli, gw, srv) = (lab.ns("c"), lab.ns("g"), lab.ns("s"));
    lab.link(&cli, &["10.78.1.1/24"], &gw, &["10.78.1.254/24"], "1");
    lab.link(
        &gw,
        &["10.78.2.254/24"],
        &srv,
        &["10.78.2.2/24", "10.78.2.3/24"],
        "2",
    );
    must(&format!("ip -n {cli} route add default via 10.78.1.254 && ip -n {srv} route add default via 10.78.2.254"));
    must(&format!(
        "ip netns exec {gw} sysctl -qw net.ipv4.ip_forward=1"
    ));
    lab.servers(&srv, &["10.78.2.2", "10.78.2.3"]);
    std::fs::write(lab.dir.join("block.txt"), "blocked.example\n10.78.2.3\n").unwrap();
    must(&format!(
        "ip netns exec {gw} {BIN} firewall install --role gateway --queue 9 --fail closed"
    ));
    // Capture what reaches the gateway from the client, to replay it afterwards.
    let pcap = lab.dir.join("gw.pcap").display().to_string();
    let dump = lab.spawn(
        &format!(
            "ip netns exec {gw} tcpdump -i vb1{} --immediate-mode -U -w {pcap}",
            lab.tag
        ),
        "tcpdump.log",
    );
    wait_until(Duration::from_secs(5), || {
        lab.file("tcpdump.log").contains("listening")
    });
    let p = lab.palisade(&gw, 9, "", "inline.log");
    check_blocking(&lab, &cli, "10.78.2.2", "10.78.2.3");
    std::thread::sleep(Duration::from_millis(300));
    lab.kill(p);
    lab.stop(dump);
    // Replay parity: the same alerts (field, value, indicator, action) from the capture.
    let key = |a: &serde_json::Value| {
        let p = &a["palisade"];
        format!(
            "{} {} {} {}",
            p["field"], p["value"], p["indicator"], a["alert"]["action"]
        )
    };
    let mut live: Vec<String> = lab.alerts().iter().map(key).collect();
    let d = lab.dir.display().to_string();
    let out = sh(&format!(
        "{BIN} replay {pcap} --intel {d}/block.txt --eve -"
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut replayed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event_type"] == "alert")
        .map(|a| key(&a))
        .collect();
    live.sort();
    replayed.sort();
    assert!(!live.is_empty());
    assert_eq!(live, replayed, "live and replayed alerts differ");
    must(&format!("ip netns exec {gw} {BIN} firewall uninstall"));
    let rules = String::from_utf8_lossy(&sh(&format!("ip netns exec {gw} iptables-save")).stdout)
        .to_string();
    assert!(!rules.contains("PALISADE"), "{rules}");
}

#[test]
fn reload_while_connecting() {
    if !ready() {
        return;
    }
    let mut lab = Lab::new("r");
    let (cli, srv) = (lab.ns("c"), lab.ns("s"));
    lab.link(&cli, &["10.79.0.1/24"], &srv, &["10.79.0.2/24"], "3");
    lab.servers(&srv, &["10.79.0.2"]);
    std::fs::write(lab.dir.join("block.txt"), "blocked.example\n").unwrap();
    must(&format!(
        "ip netns exec {cli} {BIN} firewall install --role host --queue 11 --fail closed"
    ));
    let pidfile = lab.dir.join("palisade.pid").display().to_string();
    lab.palisade(&cli, 11, &format!("--pidfile {pidfile}"), "inline.log");
    let blocked = |name: &str| {
        curl(
            &cli,
            &format!("--resolve {name}:443:10.79.0.2 https://{name}/"),
        )
        .0 != 0
    };
    assert!(!blocked("newbad.example"));

    // A client loop keeps connecting to an allowed name across the reloads.
    let loop_ns = cli.clone();
    let client = std::thread::spawn(move || {
        (0..40)
            .filter(|_| {
                curl(
                    &loop_ns,
                    "--resolve ok.example:443:10.79.0.2 https://ok.example/",
                )
                .1 != "200"
            })
            .count()
    });
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(
        lab.dir.join("block.txt"),
        "blocked.example\nnewbad.example\n",
    )
    .unwrap();
    let t = Instant::now();
    must(&format!("{BIN} reload --pidfile {pidfile}"));
    wait_until(Duration::from_secs(1), || blocked("newbad.example"));
    let took = t.elapsed();
    // The metrics say what is in force and how the reloads went, read by Prometheus's parser.
    let list = lab.dir.join("block.txt").display().to_string();
    let health = || {
        let s = prometheus_samples(&metrics(&cli, 9475));
        let domains = sample(
            &s,
            &format!(
                "palisade_intel_indicators{{action=\"block\",kind=\"domain\",list=\"{list}\"}}"
            ),
        );
        let bad = sample(
            &s,
            &format!("palisade_intel_bad_lines{{action=\"block\",list=\"{list}\"}}"),
        );
        let failures = sample(&s, "palisade_policy_reload_failures_total{}");
        let ok = sample(&s, "palisade_policy_last_reload_successful{}");
        let loaded = sample(&s, "palisade_policy_loaded_timestamp_seconds{}");
        (domains, bad, failures, ok, loaded)
    };
    let (domains, bad, failures, ok, first_load) = health();
    assert_eq!((domains, bad, failures, ok), (2.0, 0.0, 0.0, 1.0));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - first_load).abs() < 60.0,
        "{first_load} against {now}"
    );
    // A bad line: named in the log and skipped; the list's other lines are in force.
    std::fs::write(
        lab.dir.join("block.txt"),
        "blocked.example\nbad..name\nnewer.example\n",
    )
    .unwrap();
    must(&format!("{BIN} reload --pidfile {pidfile}"));
    let log = lab.dir.join("inline.log");
    let logged = |needle: &str| {
        wait_until(Duration::from_secs(2), || {
            std::fs::read_to_string(&log).unwrap().contains(needle)
        })
    };
    logged("reload 2 ok");
    let text = lab.file("inline.log");
    assert!(
        text.contains("block.txt:2: empty label in `bad..name` (line skipped)")
            && text.contains("(1 bad list lines skipped)"),
        "{text}"
    );
    assert!(blocked("newer.example"), "the good lines are in force");
    assert!(!blocked("newbad.example"), "the new set replaced the old");
    let (domains, bad, failures, ok, loaded) = health();
    assert_eq!((domains, bad, failures, ok), (2.0, 1.0, 0.0, 1.0));
    assert!(loaded >= first_load);
    // A list that is not a list (an error page): the running set stays, the log names the file.
    std::fs::write(
        lab.dir.join("block.txt"),
        "<html>\n<body>Not Found</body>\n</html>\n",
    )
    .unwrap();
    must(&format!("{BIN} reload --pidfile {pidfile}"));
    logged("reload failed");
    let text = lab.file("inline.log");
    assert!(
        text.contains("keeping the running set")
            && text.contains("block.txt:1: ")
            && text.contains("not a list of indicators, refused"),
        "{text}"
    );
    assert!(
        blocked("newer.example") && blocked("blocked.example"),
        "the last good set is still in force"
    );
    let (domains, bad, failures, ok, after) = health();
    assert_eq!(
        (domains, bad, failures, ok, after),
        (2.0, 1.0, 1.0, 0.0, loaded),
        "the refused reload is counted; the running set's figures stay"
    );
    let failures = client.join().unwrap();
    assert_eq!(
        failures, 0,
        "no allowed connection failed during the reloads"
    );
    eprintln!("reload: new indicator in force after {took:?}");
    assert!(text.contains("reload 1 ok"), "{text}");
}

#[test]
fn notifies_systemd_when_ready_and_around_reloads() {
    if !ready() {
        return;
    }
    let mut lab = Lab::new("n");
    let cli = lab.ns("c");
    std::fs::write(lab.dir.join("block.txt"), "blocked.example\n").unwrap();
    let sock_path = lab.dir.join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let d = lab.dir.display().to_string();
    let pidfile = format!("{d}/p.pid");
    lab.spawn(
        &format!("env NOTIFY_SOCKET={} ip netns exec {cli} {BIN} inline --queue 13 --intel {d}/block.txt --pidfile {pidfile} --eve {d}/eve.json", sock_path.display()),
        "inline.log",
    );
    let mut buf = [0u8; 64];
    let n = sock.recv(&mut buf).expect("READY=1 within 10 s");
    assert_eq!(&buf[..n], b"READY=1");
    assert!(
        lab.file("inline.log").contains("queue 13 ready"),
        "ready is sent after the queue is bound"
    );
    must(&format!("{BIN} reload --pidfile {pidfile}"));
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"RELOADING=1");
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"READY=1");
}

#[test]
fn passive_capture_alerts_without_blocking() {
    if !ready() {
        return;
    }
    let mut lab = Lab::new("p");
    let (cli, srv) = (lab.ns("c"), lab.ns("s"));
    lab.link(&cli, &["10.80.0.1/24"], &srv, &["10.80.0.2/24"], "4");
    lab.servers(&srv, &["10.80.0.2"]);
    std::fs::write(lab.dir.join("block.txt"), "blocked.example\n").unwrap();
    let d = lab.dir.display().to_string();
    let cap = lab.spawn(&format!("ip netns exec {srv} {BIN} capture --iface vb4{} --intel {d}/block.txt --eve {d}/eve.json", lab.tag), "capture.log");
    wait_until(Duration::from_secs(5), || {
        lab.file("capture.log").contains("listening")
    });
    // Nothing is blocked on a copy of the traffic...
    assert_eq!(
        curl(
            &cli,
            "--resolve www.blocked.example:443:10.80.0.2 https://www.blocked.example/"
        )
        .1,
        "200"
    );
    assert_eq!(dig(&cli, "10.80.0.2", "www.blocked.example"), "10.80.0.2");
    // ...but it is seen and explained.
    wait_until(Duration::from_secs(3), || lab.alerts().len() >= 2);
    lab.stop(cap);
    let kinds: Vec<String> = lab
        .alerts()
        .iter()
        .map(|a| {
            format!(
                "{} {}",
                a["palisade"]["field"].as_str().unwrap(),
                a["alert"]["action"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        kinds.contains(&"tls.sni allowed".to_string())
            && kinds.contains(&"dns.query allowed".to_string()),
        "{kinds:?}"
    );
}

#[test]
fn kernel_guard_holds_listed_addresses_while_the_daemon_is_down() {
    if !ready() {
        return;
    }
    let ipset = Command::new("ipset")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ipset || std::env::var("CI").is_err(),
        "CI=true but ipset is missing"
    );
    if !ipset {
        return;
    }
    let mut lab = Lab::new("k");
    let (cli, srv) = (lab.ns("c"), lab.ns("s"));
    lab.link(
        &cli,
        &["10.81.0.1/24"],
        &srv,
        &["10.81.0.2/24", "10.81.0.3/24", "10.81.0.4/24"],
        "5",
    );
    lab.servers(&srv, &["10.81.0.2", "10.81.0.3", "10.81.0.4"]);
    let d = lab.dir.display().to_string();
    std::fs::write(lab.dir.join("block.txt"), "blocked.example\n10.81.0.3\n").unwrap();
    // Control: fail open without the guard, and no daemon: the listed address is reachable.
    must(&format!(
        "ip netns exec {cli} {BIN} firewall install --role host --queue 15 --fail open"
    ));
    assert_eq!(
        curl(&cli, "http://10.81.0.3/").1,
        "200",
        "control: reachable without the guard"
    );
    // With the guard: still unreachable while no daemon runs; everything else flows.
    let o = sh(&format!("ip netns exec {cli} {BIN} firewall install --role host --queue 15 --fail open --intel {d}/block.txt"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("1 blocked prefixes"));
    assert_eq!(
        curl(&cli, "-m 2 http://10.81.0.3/").0,
        28,
        "the kernel guard drops the listed address"
    );
    assert_eq!(curl(&cli, "http://10.81.0.2/").1, "200");
    // With the daemon: accepted traffic passes the guard; a reload refreshes the set.
    let pidfile = format!("{d}/p.pid");
    lab.palisade(&cli, 15, &format!("--pidfile {pidfile}"), "inline.log");
    assert_eq!(
        curl(
            &cli,
            "--resolve ok.example:443:10.81.0.2 https://ok.example/"
        )
        .1,
        "200"
    );
    std::fs::write(
        lab.dir.join("block.txt"),
        "blocked.example\n10.81.0.3\n10.81.0.4\n",
    )
    .unwrap();
    must(&format!("{BIN} reload --pidfile {pidfile}"));
    let log = lab.dir.join("inline.log");
    wait_until(Duration::from_secs(2), || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("kernel guard refreshed: 2")
    });
    assert!(sh(&format!(
        "ip netns exec {cli} ipset test palisade4 10.81.0.4"
    ))
    .status
    .success());
    // Uninstall removes the chains and the sets.
    must(&format!("ip netns exec {cli} {BIN} firewall uninstall"));
    let rules = String::from_utf8_lossy(&sh(&format!("ip netns exec {cli} iptables-save")).stdout)
        .to_string();
    assert!(!rules.contains("PALISADE"), "{rules}");
    let sets = String::from_utf8_lossy(&sh(&format!("ip netns exec {cli} ipset list -n")).stdout)
        .to_string();
    assert!(!sets.contains("palisade"), "{sets}");
}

#[test]
fn settings_file_with_command_line_overrides() {
    if !ready() {
        return;
    }
    let mut lab = Lab::new("f");
    let (cli, srv) = (lab.ns("c"), lab.ns("s"));
    lab.link(&cli, &["10.82.0.1/24"], &srv, &["10.82.0.2/24"], "6");
    lab.servers(&srv, &["10.82.0.2"]);
    let d = lab.dir.display().to_string();
    std::fs::write(lab.dir.join("block.txt"), "blocked.example\n").unwrap();
    std::fs::write(
        lab.dir.join("palisade.toml"),
        format!("mode = \"block\"\nqueue = \"17\"\neve = \"{d}/eve.json\"\nmetrics = \"off\"\n[[intel]]\npath = \"{d}/block.txt\"\n"),
    )
    .unwrap();
    must(&format!(
        "ip netns exec {cli} {BIN} firewall install --role host --queue 17 --fail closed"
    ));
    // The file says block; the command line says audit, and wins.
    lab.spawn(
        &format!("ip netns exec {cli} {BIN} inline --config {d}/palisade.toml --mode audit"),
        "inline.log",
    );
    wait_until(Duration::from_secs(10), || {
        lab.file("inline.log")
            .contains("queue 17 ready (mode audit")
    });
    assert_eq!(
        curl(
            &cli,
            "--resolve www.blocked.example:443:10.82.0.2 https://www.blocked.example/"
        )
        .1,
        "200"
    );
    let a = lab.alerts();
    assert!(
        !a.is_empty() && a[0]["alert"]["action"] == "allowed",
        "lists and eve path came from the file: {a:?}"
    );
}

#[test]
fn two_queues_two_workers() {
    if !ready() {
        return;
    }
    let mut lab = Lab::new("m");
    let (cli, srv) = (lab.ns("c"), lab.ns("s"));
    // The kernel balances by a hash of the addresses (not ports) keyed at boot: several client
    // addresses spread the flows. With six, one boot in 32 put all of them on one queue; with
    // sixteen, one in 32,768.
    let clients: Vec<String> = std::iter::once(1)
        .chain(11..26)
        .map(|h| format!("10.83.0.{h}"))
        .collect();
    let with_len: Vec<String> = clients.iter().map(|c| format!("{c}/24")).collect();
    let with_len: Vec<&str> = with_len.iter().map(String::as_str).collect();
    lab.link(&cli, &with_len, &srv, &["10.83.0.2/24"], "7");
    lab.servers(&srv, &["10.83.0.2"]);
    let d = lab.dir.display().to_string();
    std::fs::write(lab.dir.join("block.txt"), "blocked.example\n").unwrap();
    must(&format!(
        "ip netns exec {cli} {BIN} firewall install --role host --queue 20:21 --fail closed"
    ));
    lab.spawn(&format!("ip netns exec {cli} {BIN} inline --queue 20:21 --intel {d}/block.txt --eve {d}/eve.json"), "inline.log");
    wait_until(Duration::from_secs(10), || {
        let l = lab.file("inline.log");
        l.contains("queue 20 ready") && l.contains("queue 21 ready")
    });
    // Flows hash over both queues; every blocked one is reset, every allowed one succeeds.
    for (i, from) in clients.iter().enumerate() {
        assert_eq!(
            curl(
                &cli,
                &format!(
                    "--interface {from} --resolve ok.example:443:10.83.0.2 https://ok.example/"
                )
            )
            .1,
            "200",
            "allowed {i}"
        );
        let rc = curl(&cli, &format!("--interface {from} --resolve www.blocked.example:443:10.83.0.2 https://www.blocked.example/")).0;
        assert!(rc == 35 || rc == 56, "blocked {i}: curl exit {rc}");
    }
    let count = |f: &str| {
        lab.file(f)
            .lines()
            .filter(|l| l.contains("\"event_type\":\"alert\""))
            .count()
    };
    let (a, b) = (count("eve.json"), count("eve.q21.json"));
    assert_eq!(
        a + b,
        clients.len(),
        "every blocked connection alerted once: {a} + {b}"
    );
    assert!(a > 0 && b > 0, "both workers saw traffic: {a} and {b}");
}

/// The python with aioquic: `PALISADE_QUIC_PY` (set by .ci/test.sh), else the system python.
fn quic_python() -> Option<String> {
    let py = std::env::var("PALISADE_QUIC_PY").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import aioquic"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "CI=true but {py} cannot import aioquic"
        );
        eprintln!("skipping QUIC peers: {py} has no aioquic");
        return None;
    }
    Some(py)
}

#[test]
fn quic_initials_with_listed_names_are_dropped() {
    if !ready() {
        return;
    }
    let Some(py) = quic_python() else { return };
    let peers = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/quic_peers.py");
    let mut lab = Lab::new("q");
    let (cli, srv) = (lab.ns("c"), lab.ns("s"));
    lab.link(&cli, &["10.84.0.1/24"], &srv, &["10.84.0.2/24"], "8");
    lab.servers(&srv, &["10.84.0.2"]);
    let d = lab.dir.display().to_string();
    lab.spawn(
        &format!("ip netns exec {srv} {py} {peers} server 10.84.0.2 443 {d}/cert.pem {d}/key.pem"),
        "quic-server.log",
    );
    wait_until(Duration::from_secs(10), || {
        lab.file("quic-server.log").contains("listening")
    });
    std::fs::write(lab.dir.join("block.txt"), "blocked.example\n").unwrap();
    let quic = |sni: &str| {
        sh(&format!(
            "ip netns exec {cli} {py} {peers} client 10.84.0.2 443 {sni} 2"
        ))
        .status
        .success()
    };
    assert!(
        quic("www.blocked.example"),
        "without Palisade the handshake completes"
    );
    // A ClientHello too large for one Initial, from the real client, captured: Palisade
    // reassembles it across the Initials and reads the name tshark reads.
    let dump = lab.spawn(
        &format!("ip netns exec {cli} tcpdump -i any -U -w {d}/big.pcap udp port 443"),
        "tcpdump.log",
    );
    std::thread::sleep(Duration::from_millis(500));
    let big = sh(&format!(
        "ip netns exec {cli} {py} {peers} get-big 10.84.0.2 443 large-hello.example 3"
    ));
    assert_eq!(String::from_utf8_lossy(&big.stdout).trim(), "h3 200");
    std::thread::sleep(Duration::from_millis(300));
    lab.stop(dump);
    let pcap = lab.dir.join("big.pcap");
    let o = sh(&format!(
        "tshark -r {} -Y 'tls.handshake.type == 1' -T fields -e tls.handshake.length -e tls.handshake.extensions_server_name -o quic.reassemble_crypto_out_of_order:TRUE",
        pcap.display()
    ));
    let t = String::from_utf8_lossy(&o.stdout).to_string();
    let mut f = t.split_whitespace();
    let ch_len: usize = f.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    assert!(
        ch_len > 1300,
        "the ClientHello fits one Initial ({ch_len} bytes): {t}"
    );
    assert_eq!(f.next(), Some("large-hello.example"), "tshark: {t}");
    let r = sh(&format!("{BIN} replay {} --eve -", pcap.display()));
    let quic_snis: Vec<String> = String::from_utf8_lossy(&r.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event_type"] == "quic")
        .filter_map(|e| e["quic"]["sni"].as_str().map(str::to_string))
        .collect();
    assert_eq!(quic_snis, ["large-hello.example"]);
    must(&format!(
        "ip netns exec {cli} {BIN} firewall install --role host --queue 23 --fail closed"
    ));
    let p = lab.palisade(&cli, 23, "", "inline.log");
    // HTTP/3 requests: an allowed name is answered, a listed one never completes.
    let run = |mode: &str, sni: &str| {
        let o = sh(&format!(
            "ip netns exec {cli} {py} {peers} {mode} 10.84.0.2 443 {sni} 2"
        ));
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).trim().to_string(),
        )
    };
    assert_eq!(run("get", "ok.example"), (true, "h3 200".into()));
    assert!(quic("ok.example"), "an allowed name connects over QUIC");
    assert!(
        !quic("www.blocked.example"),
        "a listed name never completes its handshake"
    );
    assert!(!run("get", "www.blocked.example").0);
    // The same for a ClientHello spread over several Initials.
    assert_eq!(run("get-big", "ok.example"), (true, "h3 200".into()));
    assert!(!run("get-big", "www.blocked.example").0);
    let a = lab.alerts();
    assert!(
        a.iter().any(|x| x["palisade"]["field"] == "quic.sni"
            && x["palisade"]["value"] == "www.blocked.example"
            && x["alert"]["action"] == "blocked"),
        "{a:?}"
    );
    lab.kill(p);
    // --quic block: no QUIC at all; a browser-like client falls back to HTTPS over TCP.
    let p = lab.palisade(&cli, 23, "--quic block", "inline2.log");
    assert!(!quic("ok.example"), "quic=block stops QUIC");
    assert_eq!(run("fetch", "ok.example"), (true, "tcp 200".into()));
    lab.kill(p);
    // downgrade-unknown: QUIC to a name not yet seen allowed over TCP is dropped, the client
    // falls back to TCP, where the connection is inspected and the name learnt; its next
    // attempt goes over HTTP/3. A listed name is refused on both.
    let _ = std::fs::remove_file(lab.dir.join("eve.json"));
    lab.palisade(&cli, 23, "--quic downgrade-unknown", "inline3.log");
    assert_eq!(run("fetch", "fresh.example"), (true, "tcp 200".into()));
    assert_eq!(run("fetch", "fresh.example"), (true, "h3 200".into()));
    assert!(!run("fetch", "www.blocked.example").0);
    let a = lab.alerts();
    assert!(
        a.iter()
            .any(|x| x["palisade"]["policy"] == "quic=downgrade-unknown"
                && x["palisade"]["value"] == "fresh.example"
                && x["alert"]["action"] == "blocked"),
        "{a:?}"
    );
}

#[test]
fn signatures_drop_and_reject_inline_and_reload() {
    if !ready() {
        return;
    }
    let mut lab = Lab::new("x");
    let (cli, srv) = (lab.ns("c"), lab.ns("s"));
    lab.link(&cli, &["10.85.0.1/24"], &srv, &["10.85.0.2/24"], "9");
    lab.servers(&srv, &["10.85.0.2"]);
    let d = lab.dir.display().to_string();
    std::fs::write(lab.dir.join("block.txt"), "unused.invalid\n").unwrap();
    // A reject on an HTTP URI, a drop on a TLS SNI, and an alert-only rule.
    std::fs::write(
        lab.dir.join("lab.rules"),
        concat!(
            "reject http $HOME_NET any -> any any (msg:\"LAB reject admin\"; flow:established,to_server; http.uri; content:\"/admin\"; startswith; classtype:web-application-attack; sid:1000001; rev:2;)\n",
            "drop tls any any -> any 443 (msg:\"LAB drop evil SNI\"; flow:to_server; tls.sni; content:\"evil.example\"; endswith; nocase; classtype:trojan-activity; sid:1000002; rev:1;)\n",
            "alert http any any -> any any (msg:\"LAB curl UA\"; http.user_agent; content:\"curl/\"; startswith; sid:1000003; rev:1;)\n",
        ),
    )
    .unwrap();
    must(&format!(
        "ip netns exec {cli} {BIN} firewall install --role host --queue 24 --fail open"
    ));
    lab.palisade(
        &cli,
        24,
        &format!("--rules {d}/lab.rules --var HOME_NET=[10.85.0.0/16] --pidfile {d}/pid"),
        "inline.log",
    );
    let log = lab.file("inline.log");
    assert!(
        log.contains("rules: 3 loaded, 0 skipped, 0 errors"),
        "{log}"
    );
    let (rc, code, _) = curl(&cli, "http://10.85.0.2/index");
    assert_eq!((rc, code.as_str()), (0, "200"), "allowed URI");
    let (rc, _, t) = curl(&cli, "http://10.85.0.2/admin/x");
    assert_eq!(rc, 56, "reject resets the connection");
    assert!(t < 1.0, "{t}");
    let (rc, _, _) = curl(
        &cli,
        "--resolve www.evil.example:443:10.85.0.2 https://www.evil.example/",
    );
    assert!(
        rc == 35 || rc == 28 || rc == 56,
        "dropped ClientHello: curl exit {rc}"
    );
    let (rc, code, _) = curl(
        &cli,
        "--resolve ok.example:443:10.85.0.2 https://ok.example/",
    );
    assert_eq!((rc, code.as_str()), (0, "200"), "allowed SNI");
    let alerts = lab.alerts();
    let by_sid = |sid: u64| -> Vec<&serde_json::Value> {
        alerts
            .iter()
            .filter(|a| a["alert"]["signature_id"] == sid)
            .collect()
    };
    let rej = by_sid(1_000_001);
    assert_eq!(rej.len(), 1, "{alerts:?}");
    assert_eq!(rej[0]["alert"]["action"], "blocked");
    assert_eq!(rej[0]["alert"]["rev"], 2);
    assert_eq!(rej[0]["alert"]["signature"], "LAB reject admin");
    assert_eq!(rej[0]["alert"]["category"], "Web Application Attack");
    assert_eq!(rej[0]["alert"]["severity"], 1);
    assert_eq!(rej[0]["palisade"]["rule"]["line"], 1);
    assert_eq!(rej[0]["palisade"]["inline"]["action"], "reset");
    let drop = by_sid(1_000_002);
    assert_eq!(drop.len(), 1, "{alerts:?}");
    assert_eq!(drop[0]["palisade"]["inline"]["action"], "drop");
    assert_eq!(drop[0]["palisade"]["inline"]["before_server_payload"], true);
    let ua = by_sid(1_000_003);
    assert!(
        ua.len() >= 2,
        "alert-only rule on every request: {}",
        ua.len()
    );
    assert!(ua.iter().all(|a| a["alert"]["action"] == "allowed"));
    // Reload with the reject rule removed: /admin passes.
    std::fs::write(
        lab.dir.join("lab.rules"),
        "alert http any any -> any any (msg:\"LAB admin seen\"; http.uri; content:\"/admin\"; sid:1000004;)\n",
    )
    .unwrap();
    must(&format!("{BIN} reload --pidfile {d}/pid"));
    wait_until(Duration::from_secs(5), || {
        lab.file("inline.log").contains("reload 1 ok")
    });
    let (rc, code, _) = curl(&cli, "http://10.85.0.2/admin/x");
    assert_eq!((rc, code.as_str()), (0, "200"), "after reload");
    assert!(lab
        .alerts()
        .iter()
        .any(|a| a["alert"]["signature_id"] == 1_000_004));
}

#[test]
fn batch_verdicts_settle_bursts_with_fewer_messages() {
    if !ready() {
        return;
    }
    let mut lab = Lab::new("b");
    let (cli, srv) = (lab.ns("c"), lab.ns("s"));
    lab.link(&cli, &["10.86.0.1/24"], &srv, &["10.86.0.2/24"], "9");
    lab.servers(&srv, &["10.86.0.2"]);
    std::fs::write(lab.dir.join("block.txt"), "blocked.example\n").unwrap();
    must(&format!(
        "ip netns exec {cli} {BIN} firewall install --role host --queue 27 --fail closed"
    ));
    // Every packet inspected (no bypass): a 4 MB download is some 3000 queued packets.
    lab.palisade(
        &cli,
        27,
        "--no-bypass --metrics 127.0.0.1:9481",
        "inline.log",
    );
    let (rc, code, _) = curl(
        &cli,
        "--resolve ok.example:443:10.86.0.2 https://ok.example/big.bin",
    );
    assert_eq!((rc, code.as_str()), (0, "200"));
    assert_eq!(
        curl(
            &cli,
            "--resolve www.blocked.example:443:10.86.0.2 https://www.blocked.example/"
        )
        .0,
        35,
        "blocking still works with batched verdicts"
    );
    std::thread::sleep(Duration::from_millis(1200));
    let _ = curl(
        &cli,
        "--resolve ok.example:443:10.86.0.2 https://ok.example/",
    );
    let m = metrics(&cli, 9481);
    let packets = metric(&m, "palisade_packets_total{queue=\"27\"}");
    let messages = metric(&m, "palisade_verdict_messages_total{queue=\"27\"}");
    eprintln!("batch verdicts: {packets} packets settled by {messages} verdict messages");
    assert!(packets > 1000, "{packets}");
    assert!(
        messages < packets,
        "{messages} messages for {packets} packets"
    );
}

#[test]
fn native_nftables_backend_loads_or_is_refused_cleanly() {
    if !ready() {
        return;
    }
    let mut lab = Lab::new("t");
    let ns = lab.ns("n");
    let plan = palisade::firewall::Plan {
        role: palisade::firewall::Role::Gateway,
        queues: (0, 1),
        fail_open: true,
    };
    let script = palisade::firewall::nft_ruleset(&plan);
    let check = |text: &str| {
        let f = lab.dir.join("check.nft");
        std::fs::write(&f, text).unwrap();
        sh(&format!("ip netns exec {ns} nft -c -f {}", f.display()))
    };
    // Everything but the queue statement is accepted by this kernel as written.
    let without_queue = script.replace("queue num 0-1 bypass,fanout", "counter");
    let o = check(&without_queue);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let supported = sh(&format!(
        "ip netns exec {ns} nft add table inet probe && ip netns exec {ns} nft add chain inet probe c && ip netns exec {ns} nft add rule inet probe c queue num 0 bypass; r=$?; ip netns exec {ns} nft delete table inet probe; exit $r"
    ))
    .status
    .success();
    let leftovers = || {
        String::from_utf8_lossy(
            &sh(&format!(
                "ip netns exec {ns} nft list ruleset; ip netns exec {ns} iptables-save"
            ))
            .stdout,
        )
        .to_string()
    };
    let o = sh(&format!(
        "ip netns exec {ns} {BIN} firewall install --role gateway --queue 0:1 --backend nft"
    ));
    let out = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    if supported {
        // A kernel with nft `queue`: the native table is installed, then removed.
        assert!(o.status.success(), "{out}");
        assert!(out.contains("native nftables"), "{out}");
        assert!(leftovers().contains("table inet palisade"));
        must(&format!("ip netns exec {ns} {BIN} firewall uninstall"));
    } else {
        // This kernel: the queue statement is refused, the command says why, nothing is left.
        let o2 = check(&script);
        let e = String::from_utf8_lossy(&o2.stderr);
        assert!(!o2.status.success() && !e.contains("syntax error"), "{e}");
        assert_eq!(o.status.code(), Some(1), "{out}");
        assert!(
            out.contains("`queue` is not supported by this kernel"),
            "{out}"
        );
        // Auto chooses iptables here and says so.
        let a = sh(&format!(
            "ip netns exec {ns} {BIN} firewall install --role gateway --queue 0:1"
        ));
        assert!(String::from_utf8_lossy(&a.stdout).contains("using the iptables NFQUEUE target"));
        must(&format!("ip netns exec {ns} {BIN} firewall uninstall"));
    }
    let left = leftovers();
    assert!(
        !left.contains("palisade") && !left.contains("PALISADE"),
        "{left}"
    );
}

/// The name model is read from its file again on reload: a new file's version and threshold are
/// in force for the next query, and a broken file keeps the running model.
#[test]
fn name_model_swapped_on_reload() {
    if !ready() {
        return;
    }
    use palisade_classifiers::{psl::Psl, DomainModel};
    // A name the shipped model scores between 0.6 and its own alert threshold (dnsmasq answers
    // every name under `example`).
    let shipped = DomainModel::bundled();
    let alert_at = shipped.threshold_at_fpr("1e-4").unwrap();
    let name = [
        "kq3zr9x.example",
        "zk4hv.example",
        "qzv7xk.example",
        "x9kq2.example",
    ]
    .into_iter()
    .find(|n| (0.6..alert_at - 0.001).contains(&shipped.score(n.as_bytes())))
    .expect("a candidate name between 0.6 and the alert threshold");
    // The second file: the same weights with the alert threshold rewritten to 0.500000 in the
    // metadata (same length, so the header stays valid), hence another version.
    let bytes = palisade_classifiers::domain::BUNDLED.to_vec();
    let key = b"\"threshold_fpr_1e-4\":\"";
    let at = bytes
        .windows(key.len())
        .position(|w| w == key)
        .expect("the threshold in the file's header")
        + key.len();
    let mut low = bytes.clone();
    low[at..at + 8].copy_from_slice(b"0.500000");

    let mut lab = Lab::new("d");
    let (cli, srv) = (lab.ns("c"), lab.ns("s"));
    lab.link(&cli, &["10.87.0.1/24"], &srv, &["10.87.0.2/24"], "5");
    lab.servers(&srv, &["10.87.0.2"]);
    std::fs::write(lab.dir.join("block.txt"), "blocked.example\n").unwrap();
    let model = lab.dir.join("domain.safetensors");
    std::fs::write(&model, &bytes).unwrap();
    let low_version = {
        let p = lab.dir.join("low.safetensors");
        std::fs::write(&p, &low).unwrap();
        DomainModel::from_file(&p, Psl::bundled())
            .unwrap()
            .version()
            .to_string()
    };
    assert_ne!(low_version, shipped.version());
    must(&format!(
        "ip netns exec {cli} {BIN} firewall install --role host --queue 29 --fail closed"
    ));
    let pidfile = lab.dir.join("palisade.pid").display().to_string();
    lab.palisade(
        &cli,
        29,
        &format!("--pidfile {pidfile} --name-model {}", model.display()),
        "inline.log",
    );
    let model_alerts = |lab: &Lab| lab.alerts_of(9_100_020);
    let scored = |lab: &Lab| {
        lab.file("eve.json")
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|e| {
                e["event_type"] == "dns"
                    && e["dns"]["queries"][0]["rrname"] == name
                    && e["palisade"]["name_score"].is_number()
            })
            .count()
    };
    assert_eq!(dig(&cli, "10.87.0.2", name), "10.87.0.2");
    wait_until(Duration::from_secs(2), || scored(&lab) >= 1);
    assert!(model_alerts(&lab).is_empty(), "below the shipped threshold");

    // Swap in the file with the low threshold: the next query of the same name alerts, naming
    // the new version and threshold.
    std::fs::write(lab.dir.join("next.safetensors"), &low).unwrap();
    std::fs::rename(lab.dir.join("next.safetensors"), &model).unwrap();
    must(&format!("{BIN} reload --pidfile {pidfile}"));
    wait_until(Duration::from_secs(5), || {
        lab.file("inline.log").contains("reload 1 ok")
    });
    assert!(
        lab.file("inline.log")
            .contains(&format!("name model {low_version}")),
        "{}",
        lab.file("inline.log")
    );
    assert_eq!(dig(&cli, "10.87.0.2", name), "10.87.0.2", "alert only");
    wait_until(Duration::from_secs(2), || !model_alerts(&lab).is_empty());
    let a = &model_alerts(&lab)[0];
    assert_eq!(a["palisade"]["value"], name, "{a}");
    assert_eq!(a["palisade"]["inline"]["action"], "accept", "{a}");
    assert_eq!(
        a["palisade"]["model"]["version"],
        low_version.as_str(),
        "{a}"
    );
    assert_eq!(a["palisade"]["model"]["alert_threshold"], 0.5, "{a}");
    let s = a["palisade"]["model"]["score"].as_f64().unwrap();
    assert!(
        (s - f64::from(shipped.score(name.as_bytes()))).abs() < 1e-5,
        "same weights, same score: {a}"
    );

    // A broken file: the reload is refused and the running model stays.
    std::fs::write(&model, &low[..low.len() / 2]).unwrap();
    must(&format!("{BIN} reload --pidfile {pidfile}"));
    wait_until(Duration::from_secs(5), || {
        lab.file("inline.log").contains("reload failed")
    });
    let log = lab.file("inline.log");
    assert!(
        log.contains("keeping the running set") && log.contains("name model:"),
        "{log}"
    );
    let before = model_alerts(&lab).len();
    assert_eq!(dig(&cli, "10.87.0.2", name), "10.87.0.2");
    wait_until(Duration::from_secs(2), || model_alerts(&lab).len() > before);
    assert_eq!(
        model_alerts(&lab).last().unwrap()["palisade"]["model"]["version"],
        low_version.as_str()
    );
    must(&format!("ip netns exec {cli} {BIN} firewall uninstall"));
}

/// A host looking up generated names that do not exist: dnsmasq answers NXDOMAIN, and the inline
/// filter raises one burst alert naming the client and the names (and blocks nothing).
#[test]
fn nxdomain_burst_from_a_client_alerts_inline() {
    if !ready() {
        return;
    }
    let names = common::suspicious_generated_names("kraken", 7002, 5);
    let (mut lab, cli, p) = nx_lab("z", 88, 31, "");
    for n in &names {
        let o = sh(&format!(
            "ip netns exec {cli} dig +time=2 +tries=1 @10.88.0.3 {n}"
        ));
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains("status: NXDOMAIN"), "{n}: {text}");
    }
    let bursts = |lab: &Lab| lab.alerts_of(9_100_022);
    wait_until(Duration::from_secs(3), || !bursts(&lab).is_empty());
    std::thread::sleep(Duration::from_millis(300));
    lab.stop(p);
    let b = bursts(&lab);
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0]["palisade"]["burst"]["client"], "10.88.0.1");
    assert_eq!(common::burst_names(&b[0]), names[..4]);
    must(&format!("ip netns exec {cli} {BIN} firewall uninstall"));
}

/// `--name-burst-block`: after the burst, the host's next generated names are answered from
/// the sinkhole (0.0.0.0), not by the resolver; its ordinary lookups still resolve.
#[test]
fn name_burst_block_sinkholes_a_dga_hosts_next_names_inline() {
    if !ready() {
        return;
    }
    let names = common::suspicious_generated_names("kraken", 7004, 7);
    let (mut lab, cli, p) = nx_lab("o", 94, 37, "--name-burst-block");
    let ask = |n: &str, server: &str| {
        let o = sh(&format!(
            "ip netns exec {cli} dig +time=2 +tries=1 @{server} {n}"
        ));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    for n in &names[..4] {
        let text = ask(n, "10.94.0.3");
        assert!(text.contains("status: NXDOMAIN"), "{n}: {text}");
    }
    wait_until(Duration::from_secs(3), || {
        !lab.alerts_of(9_100_022).is_empty()
    });
    for n in &names[4..] {
        let text = ask(n, "10.94.0.3");
        assert!(
            text.contains("status: NOERROR") && text.contains("0.0.0.0"),
            "{n} from the sinkhole: {text}"
        );
    }
    assert!(ask("www.example", "10.94.0.2").contains("10.94.0.2"));
    wait_until(Duration::from_secs(3), || {
        metric(
            &metrics(&cli, 9475),
            "palisade_name_burst_blocked_total{queue=\"37\"}",
        ) == 3
    });
    lab.stop(p);
    let b = lab.alerts_of(9_100_022);
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0]["palisade"]["burst"]["block_s"], 3600);
    must(&format!("ip netns exec {cli} {BIN} firewall uninstall"));
}

/// A client namespace with 10.N.0.1 linked to a server namespace with 10.N.0.2 (nginx, dnsmasq:
/// `Lab::servers`) and 10.N.0.3, left for the test's own DNS server. Returns the lab, the client
/// and server namespaces and the two server addresses.
fn two_server_lab(name: &str, net: u8) -> (Lab, String, String, String, String) {
    let mut lab = Lab::new(name);
    let (cli, srv) = (lab.ns("c"), lab.ns("s"));
    let (web, other) = (format!("10.{net}.0.2"), format!("10.{net}.0.3"));
    lab.link(
        &cli,
        &[&format!("10.{net}.0.1/24")],
        &srv,
        &[&format!("{web}/24"), &format!("{other}/24")],
        name,
    );
    lab.servers(&srv, &[&web]);
    (lab, cli, srv, web, other)
}

/// A lab for NXDOMAIN bursts: client 10.N.0.1; server 10.N.0.2 (nginx, dnsmasq answering
/// `*.example`) and 10.N.0.3 (a resolver for which .com, .net, .org, .tv and .cc hold nothing:
/// NXDOMAIN); the filter on queue `queue` of the client with `extra` arguments.
fn nx_lab(name: &str, net: u8, queue: u16, extra: &str) -> (Lab, String, usize) {
    let (mut lab, cli, srv, _, nx) = two_server_lab(name, net);
    let d = lab.dir.display().to_string();
    lab.spawn(
        &format!("ip netns exec {srv} dnsmasq --no-daemon --no-resolv --no-hosts --listen-address={nx} --bind-interfaces --local=/com/net/org/tv/cc/ --log-queries --log-facility={d}/nx.log --pid-file={d}/nx.pid"),
        "nx.out",
    );
    wait_until(Duration::from_secs(5), || {
        sh(&format!(
            "ip netns exec {cli} dig +time=1 +tries=1 @{nx} probe.com | grep -q NXDOMAIN"
        ))
        .status
        .success()
    });
    let p = lab.host_filter(&cli, queue, extra);
    (lab, cli, p)
}

/// One HTTPS check-in from `cli` to `name` (resolved to `addr`), a POST of a fixed size.
fn check_in(cli: &str, name: &str, addr: &str, seq: usize) -> String {
    let (rc, code, _) = curl(
        cli,
        &format!("--resolve {name}:443:{addr} -X POST -d 'id=4f3a9c21&seq={seq:04}' https://{name}/checkin"),
    );
    format!("{rc} {code}")
}

#[test]
fn beaconing_client_alerts_inline_irregular_and_allowed_do_not() {
    if !ready() {
        return;
    }
    let mut lab = Lab::new("w");
    let (cli, srv) = (lab.ns("c"), lab.ns("s"));
    lab.link(
        &cli,
        &["10.89.0.1/24"],
        &srv,
        &["10.89.0.2/24", "10.89.0.3/24", "10.89.0.4/24"],
        "w",
    );
    lab.servers(&srv, &["10.89.0.2", "10.89.0.3", "10.89.0.4"]);
    std::fs::write(lab.dir.join("block.txt"), "blocked.example\n").unwrap();
    std::fs::write(lab.dir.join("allow.txt"), "updates.example\n").unwrap();
    must(&format!(
        "ip netns exec {cli} {BIN} firewall install --role host --queue 32 --fail closed"
    ));
    let d = lab.dir.display().to_string();
    let p = lab.palisade(
        &cli,
        32,
        &format!("--intel {d}/allow.txt:allow --beacon 10/1"),
        "inline.log",
    );
    // Three clients at once, 11 connections each. An implant: a period of 2 s less up to 30%
    // (evenly drawn, Cobalt Strike's jitter), the same check-in each time. An updater: a
    // period of exactly 2 s, to a name the allow list holds. A person: the same requests at
    // irregular times (gaps of 1 to 4 s). Each gap also holds curl's own start-up, which a
    // loaded machine stretches: the period is long enough for that to stay small.
    let jitter = [0.12, 0.83, 0.47, 0.05, 0.91, 0.33, 0.68, 0.21, 0.56, 0.94];
    let irregular = [1.0, 3.5, 1.2, 2.9, 1.05, 4.0, 1.6, 1.1, 3.2, 1.9];
    std::thread::scope(|s| {
        let cli = &cli;
        let implant = s.spawn(move || {
            (0..11)
                .map(|i| {
                    let r = check_in(cli, "c2.example", "10.89.0.2", i);
                    if let Some(u) = jitter.get(i) {
                        std::thread::sleep(Duration::from_secs_f64(2.0 * (1.0 - 0.3 * u)));
                    }
                    r
                })
                .collect::<Vec<_>>()
        });
        let updater = s.spawn(move || {
            (0..11)
                .map(|i| {
                    let r = check_in(cli, "updates.example", "10.89.0.4", i);
                    std::thread::sleep(Duration::from_millis(2000));
                    r
                })
                .collect::<Vec<_>>()
        });
        let person = s.spawn(move || {
            (0..11)
                .map(|i| {
                    let r = check_in(cli, "www.example", "10.89.0.3", i);
                    if let Some(g) = irregular.get(i) {
                        std::thread::sleep(Duration::from_secs_f64(*g));
                    }
                    r
                })
                .collect::<Vec<_>>()
        });
        for (who, h) in [
            ("implant", implant),
            ("updater", updater),
            ("person", person),
        ] {
            let codes = h.join().unwrap();
            // Alert only: every check-in went through.
            assert!(codes.iter().all(|c| c == "0 200"), "{who}: {codes:?}");
        }
    });
    // The worker's counters say so too (published at most once a second).
    wait_until(Duration::from_secs(3), || {
        let m = metrics(&cli, 9475);
        metric(
            &m,
            "palisade_detections_total{queue=\"32\",detector=\"beacon\"}",
        ) == 1
    });
    lab.stop(p);
    let b = lab.alerts_of(9_100_030);
    assert_eq!(b.len(), 1, "one alert, for the implant: {b:#?}");
    let a = &b[0];
    let bc = &a["palisade"]["beacon"];
    assert_eq!(
        (&bc["client"], &bc["server"], &bc["port"], &bc["proto"]),
        (
            &serde_json::json!("10.89.0.1"),
            &serde_json::json!("10.89.0.2"),
            &serde_json::json!(443),
            &serde_json::json!("TCP")
        ),
        "{a:#}"
    );
    assert_eq!(bc["name"], "c2.example", "{a:#}");
    assert_eq!(bc["connections"], 10, "alerts at the 10th: {a:#}");
    let gap = bc["median_gap_s"].as_f64().unwrap();
    assert!((1.4..2.3).contains(&gap), "{a:#}");
    assert!(bc["score"].as_f64().is_some_and(|x| x >= 0.75), "{a:#}");
    // Sizes as the filter saw them: each check-in's ClientHello, after which the kernel passed
    // the connection by.
    let size = bc["parts"]["size_regularity"].as_f64();
    assert!(size.is_some_and(|x| x >= 0.75), "{a:#}");
    assert_eq!(a["alert"]["action"], "allowed");
    assert_eq!(a["src_ip"], "10.89.0.1");
    // Raised at the connection's SYN, before the server sent anything.
    assert_eq!(
        a["palisade"]["inline"]["before_server_payload"], true,
        "{a:#}"
    );
    must(&format!("ip netns exec {cli} {BIN} firewall uninstall"));
}

/// `--beacon-block`: a real implant's check-ins (curl, HTTPS POSTs at a jittered period) are
/// reset at their SYN from the one that makes the series alert, and stay so; the client's
/// request to another server still goes through.
#[test]
fn beacon_block_resets_a_real_implant_inline() {
    if !ready() {
        return;
    }
    let mut lab = Lab::new("u");
    let (cli, srv) = (lab.ns("c"), lab.ns("s"));
    lab.link(
        &cli,
        &["10.93.0.1/24"],
        &srv,
        &["10.93.0.2/24", "10.93.0.3/24"],
        "u",
    );
    lab.servers(&srv, &["10.93.0.2", "10.93.0.3"]);
    let p = lab.host_filter(&cli, 36, "--beacon 8/1 --beacon-block");
    let jitter = [
        0.12, 0.83, 0.47, 0.05, 0.91, 0.33, 0.68, 0.21, 0.56, 0.94, 0.4,
    ];
    let codes: Vec<String> = (0..12)
        .map(|i| {
            let r = check_in(&cli, "c2.example", "10.93.0.2", i);
            if let Some(u) = jitter.get(i) {
                std::thread::sleep(Duration::from_secs_f64(2.0 * (1.0 - 0.3 * u)));
            }
            r
        })
        .collect();
    // The first seven go through; the series is judged from the 8th, and once one is reset
    // every later one is.
    assert!(codes[..7].iter().all(|c| c == "0 200"), "{codes:?}");
    let first = codes
        .iter()
        .position(|c| c != "0 200")
        .unwrap_or_else(|| panic!("no check-in was blocked: {codes:?}"));
    assert!(
        codes[first..].iter().all(|c| c.starts_with("7 ")),
        "refused from the {first}th on: {codes:?}"
    );
    // Another server of the same client.
    assert_eq!(check_in(&cli, "www.example", "10.93.0.3", 0), "0 200");
    wait_until(Duration::from_secs(3), || {
        metric(
            &metrics(&cli, 9475),
            "palisade_beacon_blocked_total{queue=\"36\"}",
        ) == (codes.len() - first - 1) as u64
    });
    lab.stop(p);
    let b = lab.alerts_of(9_100_030);
    assert_eq!(b.len(), 1, "{b:#?}");
    let a = &b[0];
    assert_eq!(a["alert"]["action"], "blocked", "{a:#}");
    assert_eq!(a["palisade"]["inline"]["action"], "reset");
    assert_eq!(a["palisade"]["inline"]["before_server_payload"], true);
    assert_eq!(a["palisade"]["beacon"]["server"], "10.93.0.2");
    assert_eq!(a["palisade"]["beacon"]["block_s"], 3600);
    assert_eq!(
        a["palisade"]["beacon"]["connections"].as_u64(),
        Some(first as u64 + 1)
    );
    must(&format!("ip netns exec {cli} {BIN} firewall uninstall"));
}

/// A real DNS tunnel (dns2tcp: TCP carried in TXT queries) through the filter: a client posts
/// 6 KB through it to the lab's web server. The filter raises one DNS tunnel alert naming the
/// client and the tunnel's domain; 300 ordinary lookups of distinct hosts under one domain, from
/// the same client, raise none.
#[test]
fn dns_tunnel_alerts_inline_and_ordinary_lookups_do_not() {
    if !ready() {
        return;
    }
    if !tools(&["dns2tcpc", "dns2tcpd"]) {
        return;
    }
    let (mut lab, cli, _, p) = dns2tcp_lab("y", 90, 80, 33, "");
    // Ordinary lookups first: 300 hosts of one domain, each asked once (A), through dnsmasq.
    let names: String = (0..300).map(|i| format!("host{i}.corp.example ")).collect();
    let o = sh(&format!(
        "ip netns exec {cli} dig +time=2 +tries=1 +short @10.90.0.2 {names}"
    ));
    let answers = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        answers.lines().filter(|l| *l == "10.90.0.2").count(),
        300,
        "every ordinary lookup answered: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    dns2tcp_client(&mut lab, &cli, 90);
    let a = post_through_tunnel(&mut lab, &cli, p, 33, "http://127.0.0.1:8080/", "10.90.0.1");
    assert_eq!(a["dest_ip"], "10.90.0.3");
    assert_eq!(a["dest_port"], 53);
    // Alert only: the lookups were answered and logged.
    let dns_events = lab
        .file("eve.json")
        .lines()
        .filter(|l| l.contains("\"event_type\":\"dns\"") && l.contains("corp.example"))
        .count();
    assert!(
        dns_events >= 300,
        "{dns_events} dns events for the ordinary lookups"
    );
    must(&format!("ip netns exec {cli} {BIN} firewall uninstall"));
}

/// With `--dns-tunnel-block`, the same dns2tcp tunnel stops once it has carried the threshold's
/// bytes: its later queries are answered from the sinkhole, so the 6 KB post never completes;
/// the alert says it blocked, and the client's ordinary lookups still resolve.
#[test]
fn dns_tunnel_block_stops_a_real_tunnel_inline() {
    if !ready() {
        return;
    }
    if !tools(&["dns2tcpc", "dns2tcpd"]) {
        return;
    }
    let (mut lab, cli, srv, p) = dns2tcp_lab("v", 92, 9000, 35, "--dns-tunnel-block");
    tcp_sink(&mut lab, &srv);
    dns2tcp_client(&mut lab, &cli, 92);
    let post = post_body(&lab);
    let (rc, code, _) = curl(
        &cli,
        &format!("-m 15 --data-binary @{post} http://127.0.0.1:8080/"),
    );
    assert!(
        rc != 0 && code != "200",
        "the post did not get through: {rc} {code}"
    );
    let got = sink_received(&lab);
    assert!(
        (1..6000).contains(&got),
        "the server got {got} bytes: the tunnel carried some, then stopped"
    );
    let m = metrics(&cli, 9475);
    let blocked = metric(&m, "palisade_dns_tunnel_blocked_total{queue=\"35\"}");
    let answers = metric(&m, "palisade_sinkhole_answers_total{queue=\"35\"}");
    assert!(
        blocked > 0 && answers > blocked,
        "{blocked} blocked, {answers} answers"
    );
    // The client's other lookups resolve.
    assert_eq!(dig(&cli, "10.92.0.2", "host1.corp.example"), "10.92.0.2");
    lab.stop(p);
    let t = lab.alerts_of(9_100_031);
    assert_eq!(t.len(), 1, "{t:#?}");
    let a = &t[0];
    assert_eq!(a["alert"]["action"], "blocked", "{a:#}");
    assert_eq!(a["palisade"]["inline"]["action"], "sinkhole");
    assert_eq!(a["palisade"]["dns_tunnel"]["client"], "10.92.0.1");
    assert_eq!(a["palisade"]["dns_tunnel"]["domain"], "tunnel.lab");
    assert_eq!(a["palisade"]["dns_tunnel"]["block_s"], 3600);
    must(&format!("ip netns exec {cli} {BIN} firewall uninstall"));
}

/// A TCP server in `ns` on port 9000 that reads one connection up to 6,000 bytes, logging the
/// running count (`sink.log`), then answers as HTTP.
fn tcp_sink(lab: &mut Lab, ns: &str) {
    std::fs::write(
        lab.dir.join("sink.py"),
        "import socket\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('0.0.0.0', 9000))\ns.listen()\nc, _ = s.accept()\nn = 0\nwhile n < 6000:\n    b = c.recv(65536)\n    if not b:\n        break\n    n += len(b)\n    print(n, flush=True)\nc.sendall(b'HTTP/1.0 200 OK\\r\\nContent-Length: 3\\r\\n\\r\\nok\\n')\nc.close()\n",
    )
    .unwrap();
    let d = lab.dir.display().to_string();
    lab.spawn(
        &format!("ip netns exec {ns} python3 {d}/sink.py"),
        "sink.log",
    );
    Lab::wait_listening(ns, 9000);
}

/// The bytes the TCP sink got (0 before any).
fn sink_received(lab: &Lab) -> u32 {
    lab.file("sink.log")
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0)
}

/// Writes the 6,000 bytes posted through tunnels; returns the file's path.
fn post_body(lab: &Lab) -> String {
    let body: String = (0..6000)
        .map(|i| char::from(b'a' + ((i * 7 + i / 13) % 26) as u8))
        .collect();
    std::fs::write(lab.dir.join("post.txt"), body).unwrap();
    lab.dir.join("post.txt").display().to_string()
}

/// A lab for dns2tcp: client 10.N.0.1, server 10.N.0.2 (nginx, dnsmasq) and 10.N.0.3
/// (dns2tcpd, answering for tunnel.lab, its one resource 10.N.0.2:`port`), the filter on queue
/// `queue` of the client with `extra` arguments. Returns the lab, the client, the server and the
/// filter.
fn dns2tcp_lab(
    name: &str,
    net: u8,
    port: u16,
    queue: u16,
    extra: &str,
) -> (Lab, String, String, usize) {
    let (mut lab, cli, srv, web, tun) = two_server_lab(name, net);
    let d = lab.dir.display().to_string();
    std::fs::write(
        lab.dir.join("dns2tcpd.conf"),
        format!(
            "listen = {tun}\nport = 53\nuser = nobody\nchroot = {d}\ndomain = tunnel.lab\nresources = web:{web}:{port}\n"
        ),
    )
    .unwrap();
    lab.spawn(
        &format!("ip netns exec {srv} dns2tcpd -F -f {d}/dns2tcpd.conf"),
        "dns2tcpd.log",
    );
    let p = lab.host_filter(&cli, queue, extra);
    (lab, cli, srv, p)
}

/// The tunnel's client: it listens on the client's loopback (port 8080) and carries each
/// connection over DNS to 10.N.0.3.
fn dns2tcp_client(lab: &mut Lab, cli: &str, net: u8) {
    lab.spawn(
        &format!("ip netns exec {cli} dns2tcpc -z tunnel.lab -r web -l 8080 10.{net}.0.3"),
        "dns2tcpc.log",
    );
    Lab::wait_listening(cli, 8080);
}

/// iodine, IP over DNS: it carries its packets in NULL queries whose names hold binary bytes
/// (its Base128 codec, written `\xNN` in events). A 6 KB upload through the tunnel raises one
/// DNS tunnel alert naming the client and the tunnel's domain.
#[test]
fn iodine_tunnel_with_binary_names_alerts_inline() {
    if !ready() {
        return;
    }
    if !tools(&["iodine", "iodined", "python3"]) {
        return;
    }
    let mut lab = Lab::new("j");
    let (cli, srv) = (lab.ns("c"), lab.ns("s"));
    lab.link(&cli, &["10.91.0.1/24"], &srv, &["10.91.0.3/24"], "j");
    // The tunnel's server: its end of the tunnel is 192.168.91.1; behind it, a TCP sink that
    // reads 6,000 bytes and answers as HTTP.
    lab.spawn(
        &format!(
            "ip netns exec {srv} iodined -f -c -P labsecret -l 10.91.0.3 192.168.91.1 tunnel.lab"
        ),
        "iodined.log",
    );
    tcp_sink(&mut lab, &srv);
    let p = lab.host_filter(&cli, 34, "");
    // -r: no raw UDP shortcut to the server, everything over DNS.
    lab.spawn(
        &format!("ip netns exec {cli} iodine -f -r -P labsecret 10.91.0.3 tunnel.lab"),
        "iodine.log",
    );
    wait_until(Duration::from_secs(20), || {
        lab.file("iodine.log").contains("Connection setup complete")
    });
    let a = post_through_tunnel(
        &mut lab,
        &cli,
        p,
        34,
        "http://192.168.91.1:9000/",
        "10.91.0.1",
    );
    assert!(sink_received(&lab) >= 6000);
    // Base128: bytes outside printable ASCII in the name.
    assert!(
        a["palisade"]["value"].as_str().unwrap().contains("\\x"),
        "{a:#}"
    );
    assert_eq!(a["dest_ip"], "10.91.0.3");
    must(&format!("ip netns exec {cli} {BIN} firewall uninstall"));
}

/// Posts 6,000 bytes from `cli` to `url`, through a DNS tunnel; waits until the inline worker
/// `p` on `queue` counts one DNS tunnel alert, stops it, and returns that alert once it says
/// what every tunnel's must: the client, the tunnel's domain (`tunnel.lab`), at least the
/// threshold's payload, queries of a type that carries data back, and alert only.
fn post_through_tunnel(
    lab: &mut Lab,
    cli: &str,
    p: usize,
    queue: u16,
    url: &str,
    client: &str,
) -> serde_json::Value {
    let post = post_body(lab);
    let (rc, code, _) = curl(cli, &format!("-m 30 --data-binary @{post} {url}"));
    assert_eq!(
        (rc, code.as_str()),
        (0, "200"),
        "the post went through the tunnel"
    );
    wait_until(Duration::from_secs(3), || {
        let m = metrics(cli, 9475);
        let key = format!("palisade_detections_total{{queue=\"{queue}\",detector=\"dns_tunnel\"}}");
        metric(&m, &key) == 1
    });
    lab.stop(p);
    let t = lab.alerts_of(9_100_031);
    assert_eq!(t.len(), 1, "one alert, for the tunnel: {t:#?}");
    let a = t[0].clone();
    let dt = &a["palisade"]["dns_tunnel"];
    assert_eq!(dt["client"], client, "{a:#}");
    assert_eq!(dt["domain"], "tunnel.lab", "{a:#}");
    assert!(dt["payload_bytes"].as_u64() >= Some(2048), "{a:#}");
    assert!(dt["data_type_queries"].as_u64() > Some(0), "{a:#}");
    assert_eq!(a["alert"]["action"], "allowed");
    a
}
