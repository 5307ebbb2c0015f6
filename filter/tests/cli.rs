//! The `palisade` binary as a user meets it: the demo, bad input, exit codes and messages.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn palisade(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run palisade")
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("palisade-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn lines(out: &[u8]) -> Vec<serde_json::Value> {
    out.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("eve line is JSON"))
        .collect()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn demo_gives_real_alerts() {
    let d = tmpdir("demo");
    let o = palisade(&["replay"], &d);
    assert!(o.status.success(), "{}", err(&o));
    let ev = lines(&o.stdout);
    // The bundled rules: the Sofacy lookup (one query for the name) and the Glupteba server's
    // certificate, whose DNS name is an IDN under .рф (xn--p1ai).
    let sigs: Vec<u64> = ev
        .iter()
        .filter(|e| e["event_type"] == "alert" && e["palisade"]["rule"].is_object())
        .map(|a| a["alert"]["signature_id"].as_u64().unwrap())
        .collect();
    assert_eq!(sigs, [9_000_001, 9_000_002]);
    let alerts: Vec<_> = ev
        .iter()
        .filter(|e| e["event_type"] == "alert" && e["palisade"]["indicator"].is_string())
        .collect();
    let inds: Vec<&str> = alerts
        .iter()
        .map(|a| a["palisade"]["indicator"].as_str().unwrap())
        .collect();
    assert_eq!(
        inds,
        ["drivres-update.info", "softupdates.info", "72.16.54.30/32"]
    );
    assert!(alerts.iter().all(|a| a["alert"]["action"] == "blocked"));
    assert_eq!(alerts[0]["palisade"]["inline"]["action"], "sinkhole");
    assert_eq!(alerts[2]["palisade"]["inline"]["action"], "drop");
    assert_eq!(
        alerts[2]["palisade"]["inline"]["before_server_payload"],
        true
    );
    assert!(
        err(&o).contains("alerts: 3 blocked, 2 allowed"),
        "{}",
        err(&o)
    );
    assert!(!d.join("eve.json").exists(), "the demo writes to stdout");
}

#[test]
fn audit_mode_and_allow_lists() {
    let d = tmpdir("audit");
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo");
    std::fs::write(d.join("allow.txt"), "softupdates.info\n").unwrap();
    let pcap = demo.join("sofacy-c2-dns.pcap");
    let intel = demo.join("intel.txt");
    let o = palisade(
        &[
            "replay",
            pcap.to_str().unwrap(),
            "--intel",
            intel.to_str().unwrap(),
            "--intel",
            "allow.txt:allow",
            "--mode",
            "audit",
            "--eve",
            "-",
        ],
        &d,
    );
    assert!(o.status.success(), "{}", err(&o));
    let alerts: Vec<_> = lines(&o.stdout)
        .into_iter()
        .filter(|e| e["event_type"] == "alert")
        .collect();
    assert_eq!(alerts.len(), 1, "the allow list removes softupdates.info");
    assert_eq!(alerts[0]["alert"]["action"], "allowed");
    assert_eq!(alerts[0]["palisade"]["inline"]["enforced"], false);
}

#[test]
fn truncated_capture_keeps_events_before_the_damage() {
    let d = tmpdir("trunc");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo/sofacy-c2-dns.pcap");
    let mut b = std::fs::read(src).unwrap();
    b.truncate(b.len() - 30);
    std::fs::write(d.join("cut.pcap"), &b).unwrap();
    let o = palisade(&["replay", "cut.pcap", "--eve", "out.json"], &d);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    let e = err(&o);
    assert!(e.contains("palisade: cut.pcap: truncated at byte "), "{e}");
    assert!(e.contains("packets before it were processed"), "{e}");
    let ev = lines(&std::fs::read(d.join("out.json")).unwrap());
    let dns = ev.iter().filter(|e| e["event_type"] == "dns").count();
    assert!(dns >= 2, "events before the damage are written: {dns}");
    assert!(ev.iter().any(|e| e["event_type"] == "stats"));
}

/// A replay is reproducible: the tables of the burst, beacon, tunnel and known-name detectors
/// hash with keys from a seed (`--hash-seed`, default 0), so suricata-verify's DNS tunnel
/// capture (22 long names under `tunnel.com`) raises its tunnel alert at the same packet every
/// run. Other seeds move that packet (names that share a bit in a series count once), which
/// is what random keys did from one run to the next.
#[test]
fn replays_are_reproducible_with_a_seed() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let cap = data.join("pcaps/suricata-verify/dns__bug-1158/input.pcap");
    let cap = cap.to_str().unwrap();
    let d = tmpdir("seed");
    // (packet, sid, message) of every alert.
    let alerts = |extra: &[&str]| {
        let mut args = vec!["replay", cap, "--eve", "-"];
        args.extend_from_slice(extra);
        let o = palisade(&args, &d);
        assert_eq!(o.status.code(), Some(0), "{}", err(&o));
        lines(&o.stdout)
            .iter()
            .filter(|e| e["event_type"] == "alert")
            .map(|e| {
                (
                    e["pcap_cnt"].as_u64().unwrap(),
                    e["alert"]["signature_id"].as_u64().unwrap(),
                    e["alert"]["signature"].as_str().unwrap().to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    let first = alerts(&[]);
    assert!(
        first.iter().any(|a| a.1 == 9100031),
        "the tunnel alert: {first:?}"
    );
    for _ in 0..3 {
        assert_eq!(alerts(&[]), first);
    }
    assert_eq!(alerts(&["--hash-seed", "0"]), first);
    let mut seen = std::collections::BTreeSet::new();
    // About one seed in ten makes two of the names share a bit (seeds 15 and 19 here).
    for seed in 1..=20u32 {
        let s = seed.to_string();
        let a = alerts(&["--hash-seed", &s]);
        assert!(a.iter().any(|a| a.1 == 9100031), "seed {s}: {a:?}");
        seen.insert(a);
    }
    assert!(
        seen.len() > 1,
        "the seed decides the alert's packet: {seen:?}"
    );
    assert_eq!(
        alerts(&["--hash-seed", "15"]),
        alerts(&["--hash-seed", "15"])
    );
    assert!(!alerts(&["--hash-seed", "random"]).is_empty());
    let o = palisade(&["replay", cap, "--hash-seed", "x"], &d);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("--hash-seed x: expected a number"),
        "{}",
        err(&o)
    );
}

#[test]
fn garbage_missing_and_usage_errors() {
    let d = tmpdir("garbage");
    std::fs::write(d.join("junk.pcap"), b"this is not a capture file at all").unwrap();
    let o = palisade(&["replay", "junk.pcap", "--eve", "-"], &d);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("junk.pcap: not a pcap or pcapng file (magic 74686973 at byte 0)"),
        "{}",
        err(&o)
    );
    let o = palisade(&["replay", "nope.pcap"], &d);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("nope.pcap: cannot open: No such file"),
        "{}",
        err(&o)
    );
    let o = palisade(&["replay", "--bogus"], &d);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("unknown option `--bogus`") && err(&o).contains("usage:"));
    let o = palisade(&["replay", "--mode", "loud"], &d);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("--mode loud: expected block or audit"));
    let o = palisade(&["frobnicate"], &d);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn bad_and_empty_lists_name_file_and_line() {
    let d = tmpdir("lists");
    // A bad line is named and skipped; the list's other lines still block (the demo's C2 name).
    std::fs::write(
        d.join("bad.txt"),
        "good.example\n# comment\nbad..example\ndrivres-update.info\n",
    )
    .unwrap();
    std::fs::write(d.join("empty.txt"), "# only comments\n\n").unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo/sofacy-c2-dns.pcap");
    let demo = demo.to_str().unwrap();
    let o = palisade(&["replay", demo, "--intel", "bad.txt", "--eve", "-"], &d);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        err(&o)
            .contains("palisade: intel: bad.txt:3: empty label in `bad..example` (line skipped)"),
        "{}",
        err(&o)
    );
    let alerts: Vec<_> = lines(&o.stdout)
        .into_iter()
        .filter(|e| e["event_type"] == "alert" && e["palisade"]["list"].is_string())
        .collect();
    assert!(
        !alerts.is_empty()
            && alerts
                .iter()
                .all(|a| a["palisade"]["list"] == "bad.txt" && a["palisade"]["line"] == 4),
        "{alerts:?}"
    );
    // The stats event counts what is in force and what was skipped.
    let stats = lines(&o.stdout)
        .into_iter()
        .find(|e| e["event_type"] == "stats")
        .unwrap();
    assert_eq!(stats["stats"]["detect"]["indicators"], 2, "{stats}");
    assert_eq!(stats["stats"]["detect"]["intel_bad_lines"], 1, "{stats}");
    let o = palisade(&["intel", "check", "bad.txt"], &d);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a list with bad lines needs fixing"
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).lines().next(),
        Some("bad.txt: 2 domains, 0 addresses/prefixes, 0 URLs (block), 1 bad lines skipped")
    );
    // Mostly bad lines: not a list (an error page saved as one); refused, nothing runs.
    std::fs::write(
        d.join("page.txt"),
        "<html>\n<body>\nNot Found\n</body>\n</html>\ndrivres-update.info\n",
    )
    .unwrap();
    let o = palisade(&["replay", demo, "--intel", "page.txt", "--eve", "-"], &d);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    assert!(
        err(&o).contains("page.txt:1: ")
            && err(&o).contains(
                "(5 bad lines against 1 with indicators: not a list of indicators, refused)"
            ),
        "{}",
        err(&o)
    );
    let o = palisade(&["intel", "check", "empty.txt"], &d);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("empty.txt: the list holds no indicator"),
        "{}",
        err(&o)
    );
    std::fs::write(
        d.join("ok.txt"),
        "a.example\n0.0.0.0 b.example\n10.0.0.0/8\n",
    )
    .unwrap();
    let o = palisade(&["intel", "check", "ok.txt:audit"], &d);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).lines().next(),
        Some("ok.txt: 2 domains, 1 addresses/prefixes, 0 URLs (audit)")
    );
}

#[test]
fn pcapng_with_unknown_blocks_and_several_files_in_order() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let d = tmpdir("multi");
    let a = data.join("pcaps/file-format/pcap-parser-0.17.0/test010-le.pcapng");
    let b = Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo/sofacy-c2-dns.pcap");
    let o = palisade(
        &[
            "replay",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--eve",
            "-",
        ],
        &d,
    );
    assert!(o.status.success(), "{}", err(&o));
    let ev = lines(&o.stdout);
    // Packet numbers continue across files: the first DNS query of the second file is packet 4 + n.
    let first_dns = ev
        .iter()
        .filter(|e| e["event_type"] == "dns")
        .map(|e| e["pcap_cnt"].as_u64().unwrap())
        .min()
        .unwrap();
    assert!(first_dns > 4, "{first_dns}");
    assert!(err(&o).contains("packets"), "{}", err(&o));
}

/// Writes a classic pcap of `n` Ethernet/IPv4/UDP frames of `size` bytes, one per 10 ms.
fn synth_pcap(path: &Path, n: u32, size: usize) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(&[
        0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0,
    ])
    .unwrap();
    let mut frame = vec![0u8; size];
    frame[12] = 0x08;
    let ip_len = (size - 14) as u16;
    frame[14..34].copy_from_slice(&[
        0x45,
        0,
        (ip_len >> 8) as u8,
        ip_len as u8,
        0,
        0,
        0,
        0,
        64,
        17,
        0,
        0,
        10,
        0,
        0,
        1,
        10,
        0,
        0,
        2,
    ]);
    let udp_len = ip_len - 20;
    frame[34..42].copy_from_slice(&[
        0x30,
        0x39,
        0x30,
        0x3a,
        (udp_len >> 8) as u8,
        udp_len as u8,
        0,
        0,
    ]);
    for i in 0..n {
        let (sec, usec) = (1_700_000_000 + i / 100, (i % 100) * 10_000);
        for v in [sec, usec, size as u32, size as u32] {
            f.write_all(&v.to_le_bytes()).unwrap();
        }
        f.write_all(&frame).unwrap();
    }
}

#[test]
fn progress_bar_on_a_terminal_and_periodic_stats() {
    let d = tmpdir("progress");
    synth_pcap(&d.join("big.pcap"), 50_000, 1400);
    // `script` gives the child a terminal on stderr.
    let ok = Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "CI=true but `script` (util-linux) is missing"
        );
        return;
    }
    let cmd = format!(
        "{} replay big.pcap --eve /dev/null --stats-interval 100",
        env!("CARGO_BIN_EXE_palisade")
    );
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(&d)
        .output()
        .unwrap();
    let tty = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{tty}");
    assert!(
        tty.contains("[=") && tty.contains("% ") && tty.contains(" MB/s"),
        "no progress bar: {tty}"
    );
    assert!(tty.contains("palisade replay: 50000 packets"), "{tty}");
    // Without a terminal: no bar, same summary; periodic stats every 100 s of capture time.
    let o = palisade(
        &[
            "replay",
            "big.pcap",
            "--eve",
            "-",
            "--stats-interval",
            "100",
        ],
        &d,
    );
    assert!(o.status.success());
    assert!(!err(&o).contains('['), "{}", err(&o));
    let stats = lines(&o.stdout)
        .iter()
        .filter(|e| e["event_type"] == "stats")
        .count();
    assert_eq!(stats, 5, "500 s of capture: 4 periodic + 1 final");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn rules_load_skip_and_fail_with_file_line_and_sid() {
    let d = tmpdir("rules");
    std::fs::write(
        d.join("my.rules"),
        concat!(
            "alert dns any any -> any any (msg:\"Sofacy C2 lookup\"; dns.query; content:\"drivres-update\"; nocase; classtype:trojan-activity; target:src_ip; metadata:created_at 2024_01_01, tag apt, tag c2; sid:5; rev:3;)\n",
            "alert dcerpc any any -> any any (msg:\"rpc\"; content:\"x\"; sid:6;)\n",
            "alert tcp any any -> any (content:\"x\"; sid:7;)\n",
        ),
    )
    .unwrap();
    let o = palisade(&["rules", "check", "my.rules"], &d);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(1),
        "syntax errors fail the check: {out}"
    );
    assert!(
        out.starts_with("1 of 3 rules loaded (33.33%), 1 skipped, 1 syntax errors"),
        "{out}"
    );
    assert!(
        out.contains("1  skipped: protocol 'dcerpc' is not detected"),
        "{out}"
    );
    assert!(
        err(&o).contains("my.rules:3: sid 7: syntax error: header has 6 fields"),
        "{}",
        err(&o)
    );
    // Replay loads what it can, says what it skipped, and alerts with the rule's fields.
    let pcap = Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo/sofacy-c2-dns.pcap");
    let o = palisade(
        &[
            "replay",
            pcap.to_str().unwrap(),
            "--rules",
            "my.rules",
            "--eve",
            "-",
        ],
        &d,
    );
    assert!(o.status.success(), "{}", err(&o));
    let e = err(&o);
    assert!(e.contains("my.rules:2: sid 6: skipped (protocol)"), "{e}");
    assert!(e.contains("rules: 1 loaded, 1 skipped, 1 errors"), "{e}");
    let alerts: Vec<_> = lines(&o.stdout)
        .into_iter()
        .filter(|v| v["event_type"] == "alert")
        .collect();
    assert_eq!(alerts.len(), 1, "one query for the name: {alerts:?}");
    let a = &alerts[0];
    assert_eq!(a["alert"]["signature_id"], 5);
    assert_eq!(a["alert"]["rev"], 3);
    assert_eq!(a["alert"]["signature"], "Sofacy C2 lookup");
    assert_eq!(a["alert"]["category"], "A Network Trojan was detected");
    assert_eq!(a["alert"]["severity"], 1);
    assert_eq!(a["alert"]["action"], "allowed");
    assert_eq!(a["palisade"]["rule"]["file"], "my.rules");
    assert_eq!(a["palisade"]["rule"]["line"], 1);
    assert_eq!(a["app_proto"], "dns");
    // `target:src_ip`: the querying host is the target, as Suricata writes it.
    assert_eq!(a["alert"]["target"]["ip"], a["src_ip"]);
    assert_eq!(a["alert"]["target"]["port"], a["src_port"]);
    assert_eq!(a["alert"]["source"]["ip"], a["dest_ip"]);
    assert_eq!(
        a["alert"]["metadata"],
        serde_json::json!({"created_at": ["2024_01_01"], "tag": ["apt", "c2"]})
    );
    // A missing rules path is an error before anything runs.
    let o = palisade(
        &["replay", pcap.to_str().unwrap(), "--rules", "nope.rules"],
        &d,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("nope.rules"), "{}", err(&o));
}

#[test]
fn score_names_and_name_model_options() {
    let d = tmpdir("names");
    std::fs::write(
        d.join("names.txt"),
        "# a comment\nxjkqzvbwpt.ru\nwww.wikipedia.org\n0.0.0.0 kq0qw6o2siwq.org\n\n127.0.0.1\n",
    )
    .unwrap();
    let o = palisade(&["score-names", "names.txt"], &d);
    assert!(o.status.success(), "{}", err(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let rows: Vec<(&str, f64)> = out
        .lines()
        .map(|l| {
            let (n, s) = l.split_once('\t').expect("name<TAB>score");
            (n, s.parse::<f64>().expect("a number"))
        })
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| r.0).collect();
    assert_eq!(
        names,
        ["xjkqzvbwpt.ru", "www.wikipedia.org", "kq0qw6o2siwq.org"]
    );
    assert!(rows.iter().all(|r| (0.0..=1.0).contains(&r.1)));
    assert!(
        rows[0].1 > 0.999 && rows[2].1 > 0.999 && rows[1].1 < 0.5,
        "{rows:?}"
    );
    let e = err(&o);
    assert!(
        e.contains("3 names scored with domain-") && e.contains("1 lines without a name"),
        "{e}"
    );
    // The same from stdin, through the library's scorer: the binary prints what it computes.
    let lib = palisade_classifiers::DomainModel::bundled();
    assert!((rows[1].1 - lib.score(b"www.wikipedia.org") as f64).abs() < 1e-6);

    let o = palisade(&["score-names", "missing.txt"], &d);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("missing.txt: No such file"), "{}", err(&o));
    let o = palisade(&["replay", "--name-alert", "2"], &d);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("--name-alert 2: expected a score between 0 and 1"),
        "{}",
        err(&o)
    );
    for bad in ["1/60", "4/0", "four"] {
        let o = palisade(&["replay", "--name-burst", bad], &d);
        assert_eq!(o.status.code(), Some(1));
        assert!(
            err(&o).contains(&format!("--name-burst {bad}: expected COUNT/SECONDS")),
            "{}",
            err(&o)
        );
    }
    let o = palisade(&["replay", "--name-burst", "3/60"], &d);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        err(&o).contains("NXDOMAIN bursts (3 names in 60 s): "),
        "{}",
        err(&o)
    );
    let o = palisade(&["replay", "--name-burst", "off"], &d);
    assert!(err(&o).contains("NXDOMAIN bursts: off"), "{}", err(&o));
    let o = palisade(
        &["replay", "--name-burst-block", "--name-burst", "3/60"],
        &d,
    );
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        err(&o).contains("NXDOMAIN bursts (3 names in 60 s, blocking): 0 alerted, ")
            && err(&o).contains(", 0 later names blocked"),
        "{}",
        err(&o)
    );
    let o = palisade(&["replay", "--name-burst", "off", "--name-burst-block"], &d);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("--name-burst-block: NXDOMAIN bursts are off"),
        "{}",
        err(&o)
    );
    for bad in ["3/10", "33/10", "16/0", "often"] {
        let o = palisade(&["replay", "--beacon", bad], &d);
        assert_eq!(o.status.code(), Some(1));
        assert!(
            err(&o).contains(&format!("--beacon {bad}: expected COUNT/SECONDS")),
            "{}",
            err(&o)
        );
    }
    let o = palisade(&["replay", "--beacon", "8/60"], &d);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        err(&o)
            .contains("beacons (from the 8th connection, median gap at least 60 s): 0 alerted, "),
        "{}",
        err(&o)
    );
    let o = palisade(&["replay", "--beacon", "off"], &d);
    assert!(err(&o).contains("beacons: off"), "{}", err(&o));
    let o = palisade(&["replay", "--beacon-block", "--beacon", "8/60"], &d);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        err(&o).contains(
            "beacons (from the 8th connection, median gap at least 60 s, blocking): 0 alerted, "
        ) && err(&o).contains(", 0 later connections blocked"),
        "{}",
        err(&o)
    );
    let o = palisade(&["replay", "--beacon", "off", "--beacon-block"], &d);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("--beacon-block: the beacon detector is off"),
        "{}",
        err(&o)
    );
    for bad in ["255/300", "1000001/300", "2048/0", "2048", "lots"] {
        let o = palisade(&["replay", "--dns-tunnel", bad], &d);
        assert_eq!(o.status.code(), Some(1));
        assert!(
            err(&o).contains(&format!(
                "--dns-tunnel {bad}: expected BYTES/SECONDS (BYTES 256 to 1000000"
            )),
            "{}",
            err(&o)
        );
    }
    let o = palisade(&["replay", "--dns-tunnel", "4096/600"], &d);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        err(&o).contains("DNS tunnels (4096 payload bytes in 600 s): 0 alerted, "),
        "{}",
        err(&o)
    );
    let o = palisade(&["replay", "--dns-tunnel", "off"], &d);
    assert!(err(&o).contains("DNS tunnels: off"), "{}", err(&o));
    // Blocking: kept across a later threshold; refused with the detector off.
    let o = palisade(
        &["replay", "--dns-tunnel-block", "--dns-tunnel", "4096/600"],
        &d,
    );
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        err(&o).contains(
            "DNS tunnels (4096 payload bytes in 600 s, blocking): 0 alerted, 0 query names counted, 0 later queries blocked"
        ),
        "{}",
        err(&o)
    );
    let o = palisade(&["replay", "--dns-tunnel", "off", "--dns-tunnel-block"], &d);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("--dns-tunnel-block: the DNS tunnel detector is off"),
        "{}",
        err(&o)
    );
    std::fs::write(d.join("bad.safetensors"), b"not a model").unwrap();
    let o = palisade(&["replay", "--name-model", "bad.safetensors"], &d);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("name model: bad.safetensors: not a safetensors file"),
        "{}",
        err(&o)
    );

    // The demo logs scores by default, none with the model off.
    let on = palisade(&["replay"], &d);
    assert!(on.status.success());
    let ev = lines(&on.stdout);
    let scored: Vec<_> = ev
        .iter()
        .filter(|e| e["palisade"]["name_score"].is_number())
        .collect();
    assert!(
        scored.iter().any(|e| e["event_type"] == "dns"),
        "{scored:?}"
    );
    assert!(err(&on).contains("names: ") && err(&on).contains("scored with domain-"));
    let off = palisade(&["replay", "--name-model", "off"], &d);
    assert!(off.status.success());
    assert!(lines(&off.stdout)
        .iter()
        .all(|e| e["palisade"]["name_score"].is_null()));
    assert!(err(&off).contains("names: scoring off"));
}

#[test]
fn flow_features_and_flow_model_options() {
    let d = tmpdir("flows");
    // A capture from the shared suites.
    let Some(data) = common::shared_data() else {
        return;
    };
    let pcap = data.join("pcaps/suricata-verify/dns-udp-dig-a-www-suricata-ids-org/input.pcap");
    let pcap = if pcap.exists() {
        pcap
    } else {
        common::captures(&data.join("pcaps/suricata-verify"))
            .into_iter()
            .next()
            .unwrap()
    };
    let p = pcap.to_str().unwrap();
    let o = palisade(&["flow-features", "--label", "0", p], &d);
    assert!(o.status.success(), "{}", err(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let mut csv = out.lines();
    let header = csv.next().unwrap();
    assert!(header.starts_with("label,file,flow_id,proto,server_port,n,size0"));
    let rows: Vec<&str> = csv.collect();
    assert!(!rows.is_empty());
    for r in &rows {
        let f: Vec<&str> = r.split(',').collect();
        assert_eq!(f.len(), header.split(',').count());
        assert!(
            palisade_classifiers::flow::FlowRecord::from_csv(&f[3..]).is_some(),
            "{r}"
        );
    }
    // As many records as the replay has flows, and the replay logs each flow's score.
    let o2 = palisade(&["replay", p, "--eve", "-"], &d);
    let flows: Vec<_> = lines(&o2.stdout)
        .into_iter()
        .filter(|e| e["event_type"] == "flow")
        .collect();
    assert_eq!(flows.len(), rows.len());
    assert!(flows
        .iter()
        .all(|e| e["palisade"]["flow_score"].is_number()));
    assert!(err(&o2).contains("flows: ") && err(&o2).contains("shadow: scores logged only"));
    let o3 = palisade(&["replay", p, "--eve", "-", "--flow-model", "off"], &d);
    assert!(lines(&o3.stdout)
        .iter()
        .all(|e| e["palisade"]["flow_score"].is_null()));
    let o4 = palisade(&["replay", p, "--eve", "-", "--flow-alert", "model"], &d);
    assert!(o4.status.success());
    assert!(err(&o4).contains("(alerting),"), "{}", err(&o4));
    let o = palisade(&["replay", p, "--flow-alert", "1.5"], &d);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("--flow-alert 1.5: expected a score between 0 and 1"));
    let o = palisade(&["flow-features", p], &d);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("flow-features needs --label"));
}

#[test]
fn fleet_commands_refuse_bad_input_with_located_errors() {
    let d = tmpdir("fleet");
    let ok = |args: &[&str]| {
        let o = palisade(args, &d);
        assert!(o.status.success(), "{args:?}: {}", err(&o));
    };
    ok(&["manager", "init-ca", "--out", "pki"]);
    ok(&[
        "manager",
        "issue-cert",
        "node1",
        "--ca",
        "pki",
        "--out",
        "pki",
    ]);
    ok(&["manager", "keygen", "--out", "signer"]);
    let sign = |key: &str| {
        palisade(
            &["manager", "sign", "b", "--key", key, "--version", "1"],
            &d,
        )
    };
    // A bundle whose list has a bad line is not signed; the error names file and line.
    std::fs::create_dir_all(d.join("b")).unwrap();
    std::fs::write(
        d.join("b/block.txt"),
        "good.example\nbad example with spaces\n",
    )
    .unwrap();
    std::fs::write(
        d.join("b/policy.toml"),
        "[[intel]]\npath = \"block.txt\"\naction = \"block\"\n",
    )
    .unwrap();
    let o = sign("signer.key");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("block.txt:2:") && err(&o).contains("fix them before signing"),
        "{}",
        err(&o)
    );
    assert!(!d.join("b/bundle.sig").exists());
    // Node settings in a bundle are refused; paths must stay inside the bundle.
    std::fs::write(d.join("b/block.txt"), "good.example\n").unwrap();
    std::fs::write(d.join("b/policy.toml"), "mode = \"audit\"\n").unwrap();
    let o = sign("signer.key");
    assert!(err(&o).contains("`mode` is a node setting"), "{}", err(&o));
    std::fs::write(d.join("b/policy.toml"), "rules = [\"../etc/x.rules\"]\n").unwrap();
    let o = sign("signer.key");
    assert!(
        err(&o).contains("not a path inside the bundle"),
        "{}",
        err(&o)
    );
    // A signing key that is not one.
    let o = sign("pki/ca.pem");
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("pki/ca.pem"), "{}", err(&o));
    // Sinks and node options.
    let o = palisade(&["replay", "--sink", "kafka://x"], &d);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("sink `kafka://x`"), "{}", err(&o));
    let o = palisade(
        &[
            "capture",
            "--iface",
            "lo",
            "--manager",
            "127.0.0.1:1",
            "--ca",
            "pki/ca.pem",
            "--cert",
            "pki/node1.pem",
            "--key",
            "pki/node1.key",
        ],
        &d,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("--bundle-key"), "{}", err(&o));
    let o = palisade(
        &[
            "manager",
            "--listen",
            "127.0.0.1:0",
            "--policy",
            "b",
            "--ca",
            "pki/ca.pem",
            "--cert",
            "pki/missing.pem",
            "--key",
            "pki/node1.key",
            "--state-dir",
            "st",
        ],
        &d,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("pki/missing.pem"), "{}", err(&o));
    // A settings file with a bad sink names its line.
    std::fs::write(
        d.join("p.toml"),
        "mode = \"block\"\nsinks = [\"redis://h/queue/k\"]\n",
    )
    .unwrap();
    let o = palisade(&["config", "check", "p.toml"], &d);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("p.toml:2:"), "{}", err(&o));
    let _ = std::fs::remove_dir_all(&d);
}
