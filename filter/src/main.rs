//! `palisade`: the command-line shell over the engine.
//!
//! Exit codes: 0 ok; 1 bad input or usage (the message names the file, and the line or byte
//! offset); 2 internal error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod cli_fleet;

use palisade::capture::nfqueue::{self, InlineOpts, InlineStats, Reloadable, Snapshot};
use palisade::engine::{
    Beacon, Blocking, Burst, Config, DnsTunnel, EchPolicy, Engine, FlowScoring, Mode, NameScoring,
    Policy, QuicPolicy, Scoring,
};
use palisade::firewall::{self, Plan, Role};
use palisade::replay::{self, EveOut, ReplayOpts};
use palisade::respond::Sinkhole;
use palisade_classifiers::flow::{FlowModel, FlowRecord};
use palisade_classifiers::psl::Psl;
use palisade_classifiers::DomainModel;
use palisade_rules::sig::{RuleErrorKind, SigSet, SigSetBuilder, Vars};
use palisade_rules::{Action, IntelBuilder, IntelSet};

const USAGE: &str = "\
usage:
  palisade replay [FILE...] [--intel PATH[:ACTION]]... [--mode block|audit] [--eve PATH|-]
                  [--stats-interval SECS] [--memcap MiB] [--no-flow-events]
                  [--dns-port PORT] [--no-vlan-tracking] [--quic allow|downgrade-unknown|block|off]
                  [--ech allow|audit|block]
      Reads pcap/pcapng files (gzip too) in order as one timeline and writes eve JSON events.
      ACTION is block (default), audit or allow. --eve defaults to eve.json; - is stdout.
      With no FILE, runs the bundled demo capture against the bundled demo intel.
      DNS is parsed on ports 53, 5353 and 5355; --dns-port adds one more.
  palisade inline --queue N[:M] [--intel PATH[:ACTION]]... [--mode block|audit] [--eve PATH|-]
                  [--sinkhole nxdomain|ADDR] [--no-reset] [--fail open|closed] [--stats-interval SECS]
                  [--pidfile PATH] [--metrics ADDR|off] [--memcap MiB] [--config PATH] [--no-bypass]
                  [--quic allow|downgrade-unknown|block|off] [--ech allow|audit|block]
      Filters packets from netfilter queue N (one worker per queue N..M). Blocked addresses are
      dropped, blocked SNI/Host connections reset (or dropped with --no-reset), blocked DNS
      queries answered from the sinkhole (default 0.0.0.0 and ::). Needs CAP_NET_ADMIN/NET_RAW.
      Prometheus metrics on --metrics (default 127.0.0.1:9475). Settings come from --config, or
      /etc/palisade/palisade.toml when present (documented in systemd/palisade.toml); flags win.
  palisade config check FILE
      Validates a settings file (errors name file:line:column).
  palisade capture --iface NAME [--intel PATH[:ACTION]]... [--eve PATH|-] [--count N]
                  [--stats-interval SECS]
      Passive IDS on an interface (AF_PACKET): the same engine, alerts only (`allowed`).
  palisade reload --pidfile PATH
      Makes a running `palisade inline --pidfile PATH` reload its lists (as SIGHUP does): the new
      set is built off the packet path; a broken list keeps the running set and says why.
  palisade firewall install --role host|gateway --queue N[:M] [--fail open|closed] [--intel PATH]...
                  [--backend auto|nft|iptables]
  palisade firewall uninstall
      Adds (or removes) the PALISADE chain that queues traffic: host role on OUTPUT and INPUT,
      gateway role on FORWARD. --fail open lets traffic pass when Palisade is not running;
      --intel puts the lists' blocked addresses in a kernel set that stays enforced meanwhile.
      Native nftables (one `inet palisade` table) where the kernel supports `queue`, else the
      iptables NFQUEUE target; the command says which (--backend forces one).
  palisade intel check PATH[:ACTION]...
      Loads lists and reports what they hold and every bad line (file:line), which loading skips;
      exit 1 on bad lines or a refused list (unreadable, no indicator, mostly bad lines).
  palisade rules check [--var NAME=VALUE]... [--verbose] PATH...
      Loads Suricata rule files (or directories of .rules/.rules.gz) and prints loaded and
      skipped counts by reason; exit 1 on syntax errors. --verbose names every skipped rule.
  Signatures: replay, inline and capture take --rules PATH (repeatable; a file or a directory)
      and --var NAME=VALUE (HOME_NET, EXTERNAL_NET, HTTP_PORTS, ...; Suricata's defaults apply).
      As Suricata by default, payload content is not searched in TLS records after the
      handshake; --inspect-encrypted searches them too.
  Name scoring: replay, inline and capture score every DNS query name, SNI and Host with the
      bundled domain model (classifiers/MODEL.md) and log the score in the event
      (palisade.name_score). --name-alert SCORE alerts at or above SCORE (default: the model's
      1-in-10,000 false-positive threshold), --name-block SCORE|off also blocks (default off),
      --name-shadow only logs, --name-model PATH|off loads other weights or turns scoring off.
      --name-burst COUNT/SECONDS|off (default 4/300): one client's NXDOMAIN answers for names at
      or above the model's 1-in-1,000 point, in COUNT distinct registered domains within SECONDS,
      raise one alert listing them (a host running a domain generation algorithm);
      --name-burst-block (replay, inline) then blocks that client's names at or above the same
      point for an hour (sinkhole, reset or drop as for a listed name; sid 9100023 a minute at
      most).
  Beaconing: replay, inline and capture follow each client's connections to each server (address,
      port, protocol) and alert (sid 9100030, alert only) when they come at a regular period with
      regular sizes, as an implant's check-ins do: --beacon COUNT/SECONDS|off (default 16/10)
      judges a series from its COUNT-th connection (4 to 32) when its median gap is at least
      SECONDS. Addresses and names an intel list allows are not judged. --beacon-block (replay,
      inline) also blocks the connection that alerted and the series' later ones for an hour (TCP
      reset, UDP drop; sid 9100033 a minute at most).
  DNS tunnels: the same engines count each client's distinct query names under each registered
      domain and alert (sid 9100031, alert only) when their subdomain parts, less 24 bytes a name
      (a host name's worth), carry BYTES within SECONDS, as a tunnel's or an exfiltrating
      implant's do: --dns-tunnel BYTES/SECONDS|off (default 2048/300). Names an intel list holds
      are not counted. --dns-tunnel-block (replay, inline) also sinkholes the query that crossed
      and the series' later ones carrying payload for an hour (sid 9100032 a minute at most).
  Reproducibility: the bursts, beacon, tunnel and known-name tables hash their keys with a
      seed: replay uses --hash-seed N (default 0), so the same capture raises the same alerts at
      the same packets every run; inline and capture draw it at random (nobody can aim names at
      a table set) unless --hash-seed N is given; --hash-seed random draws it in replay too.
  palisade score-names FILE|- [--name-model PATH]
      Prints `name<TAB>score` for each name in FILE (one per line; hosts-file lines accepted).
  Flow scoring: the same engines score each flow with the bundled flow model at its 8th packet
      (or its end, if shorter) and log it in the flow event (palisade.flow_score). It only logs
      (trained on captures made here; see classifiers/MODEL.md) unless --flow-alert SCORE|model
      turns alerts on (model: the threshold in the model file); --flow-block SCORE also drops the
      rest of the flow; --flow-model PATH|off.
  palisade flow-features --label LABEL [--no-header] FILE...
      Prints one CSV line per flow of each capture (label, file, flow id, the flow model's record):
      labelled captures in, training data out (classifiers/flows/README.md).
  Sinks: replay, inline, capture and the manager take --sink SPEC (repeatable): syslog[:FACILITY][@SOCKET],
      unix-dgram:PATH, unix-stream:PATH, file:PATH, redis://HOST:PORT/list|rpush|channel|stream/KEY.
      SIGHUP reopens eve files (logrotate). replay feeds its sinks from the eve file once done and
      waits for them at most --sink-wait SECS (default 60; exit 1 when one did not finish).
  Fleet node: inline and capture take --manager ADDR:PORT [--manager-name NAME] --ca PEM --cert PEM
      --key PEM --bundle-key PEM [--group G] [--state-dir DIR] [--spool-max MiB] [--manager-idle SECS]:
      signed policy bundles from the manager replace the lists and rules (kept in --state-dir and
      restored at start); events are spooled there and streamed to the manager.
  palisade manager [--config PATH] --listen ADDR --policy DIR --ca PEM --cert PEM --key PEM [--state-dir DIR]
                  [--status ADDR|off] [--eve PATH|off] [--sink SPEC]... [--idle SECS]
                  [--bundle-key PEM] [--max-connections N]
      Serves the signed bundles in DIR (one, or one per subdirectory: each node gets the highest
      version targeting its group) over QUIC with mutual TLS, and stores the nodes' events.
      --config reads the settings file (documented in systemd/manager.toml); flags win.
  palisade manager init-ca --out DIR [--name NAME] [--days N]
  palisade manager issue-cert NAME --ca DIR --out DIR [--days N | --not-before DATE --not-after DATE]
  palisade manager keygen --out PREFIX          (PREFIX.key signs bundles; PREFIX.pub goes to nodes)
  palisade manager sign DIR --key PEM --version N [--group G]...
  palisade manager status [--status ADDR] [--json]
  palisade manager simulate --manager ADDR --manager-name NAME --ca-dir DIR --nodes N
                  --publish-from DIR --publish-to DIR [--events N] [--batch N] [--rate N]
      The fleet benchmark's simulated nodes (bench/fleet.sh).
  palisade --version | --help

exit codes: 0 ok, 1 bad input or usage, 2 internal error";

/// The bundled demo: suricata-verify captures (MIT) with real malicious traffic, and a list.
const DEMO_PCAPS: [(&str, &[u8]); 2] = [
    (
        "demo/sofacy-c2-dns.pcap",
        include_bytes!("../../demo/sofacy-c2-dns.pcap"),
    ),
    (
        "demo/glupteba-tls.pcap",
        include_bytes!("../../demo/glupteba-tls.pcap"),
    ),
];
const DEMO_INTEL: (&str, &[u8]) = ("demo/intel.txt", include_bytes!("../../demo/intel.txt"));
const DEMO_RULES: (&str, &str) = ("demo/demo.rules", include_str!("../../demo/demo.rules"));

struct Usage(String);

/// `palisade flow-features --label LABEL FILE...`: replays captures and prints one CSV line per
/// flow (label, file, flow id, the flow model's record): the loader for labelled captures.
fn flow_features(args: &[String]) -> Result<ExitCode, Usage> {
    let mut label = None;
    let mut files = Vec::new();
    let mut header = true;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--label" => {
                label = Some(
                    it.next()
                        .cloned()
                        .ok_or_else(|| Usage("--label needs a value".into()))?,
                )
            }
            "--no-header" => header = false,
            s if s.starts_with('-') => return Err(Usage(format!("unknown option `{s}`"))),
            f => files.push(PathBuf::from(f)),
        }
    }
    let Some(label) = label else {
        return Err(Usage(
            "flow-features needs --label LABEL (0 or 1, or a name)".into(),
        ));
    };
    if files.is_empty() {
        return Err(Usage("flow-features needs capture files".into()));
    }
    if header {
        println!("label,file,flow_id,{}", FlowRecord::csv_header());
    }
    for f in files {
        let cfg = Config {
            tap_flows: true,
            flow_events: false,
            ..Config::default()
        };
        let mut engine = Engine::new(cfg, IntelSet::default());
        engine.set_names(load_names(&NameOpts::default()).ok().flatten());
        let opts = ReplayOpts {
            files: vec![f.clone()],
            eve: EveOut::Discard,
            stats_interval_s: 0,
            progress: false,
        };
        let s = match replay::run(&mut engine, &opts) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("palisade: {e}");
                return Ok(ExitCode::from(1));
            }
        };
        if let Some((file, err)) = &s.error {
            eprintln!("palisade: {}: {err}", file.display());
            return Ok(ExitCode::from(1));
        }
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for (id, r) in &engine.flow_tap {
            println!("{label},{name},{id},{}", r.to_csv());
        }
        eprintln!(
            "palisade flow-features: {}: {} flows",
            f.display(),
            engine.flow_tap.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `palisade score-names FILE`: one `name<TAB>score` line per name, for anyone's evaluation.
fn score_names(args: &[String]) -> Result<ExitCode, Usage> {
    let mut file = None;
    let mut model_path = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--name-model" | "--model" => {
                model_path = Some(
                    it.next()
                        .cloned()
                        .ok_or_else(|| Usage(format!("{a} needs a value")))?,
                )
            }
            s if s.starts_with('-') && s != "-" => {
                return Err(Usage(format!("unknown option `{s}`")))
            }
            f => file = Some(f.to_string()),
        }
    }
    let Some(file) = file else {
        return Err(Usage("score-names needs a FILE (or - for stdin)".into()));
    };
    let model = match &model_path {
        None => DomainModel::bundled(),
        Some(p) => match DomainModel::from_file(Path::new(p), Psl::bundled()) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("palisade: {e}");
                return Ok(ExitCode::from(1));
            }
        },
    };
    let text = if file == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map(|_| s)
    } else {
        std::fs::read_to_string(&file)
    };
    let text = match text {
        Ok(t) => t,
        Err(e) => {
            eprintln!("palisade: {file}: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    let (mut n, mut skipped) = (0u64, 0u64);
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        // Hosts-file lines: the name follows the address.
        let name = if first.parse::<std::net::IpAddr>().is_ok() {
            match fields.next() {
                Some(n) => n,
                None => {
                    skipped += 1;
                    continue;
                }
            }
        } else {
            first
        };
        if std::io::Write::write_fmt(
            &mut out,
            format_args!("{name}\t{:.6}\n", model.score(name.as_bytes())),
        )
        .is_err()
        {
            // The reader went away (a pipe into head): stop quietly.
            return Ok(ExitCode::SUCCESS);
        }
        n += 1;
    }
    let _ = std::io::Write::flush(&mut out);
    eprintln!(
        "palisade score-names: {n} names scored with {} ({skipped} lines without a name)",
        model.version()
    );
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("palisade: internal error: {info}");
        std::process::exit(2);
    }));
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(Usage(msg)) => {
            eprintln!("palisade: {msg}\n\n{USAGE}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &[String]) -> Result<ExitCode, Usage> {
    match args.first().map(String::as_str) {
        Some("replay") => replay_cmd(&args[1..]),
        Some("intel") if args.get(1).map(String::as_str) == Some("check") => {
            intel_check(&args[2..])
        }
        Some("rules") if args.get(1).map(String::as_str) == Some("check") => {
            rules_check(&args[2..])
        }
        Some("inline") => inline_cmd(&args[1..]),
        Some("score-names") => score_names(&args[1..]),
        Some("flow-features") => flow_features(&args[1..]),
        Some("firewall") => firewall_cmd(&args[1..]),
        Some("reload") => reload_cmd(&args[1..]),
        Some("capture") => capture_cmd(&args[1..]),
        Some("manager") => cli_fleet::manager_cmd(&args[1..]),
        Some("config") if args.get(1).map(String::as_str) == Some("check") => {
            config_check(&args[2..])
        }
        Some("--version" | "-V") => {
            println!("palisade {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Some("--help" | "-h" | "help") => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        Some(other) => Err(Usage(format!("unknown command `{other}`"))),
        None => Err(Usage("a command is needed".into())),
    }
}

/// `off`, or `COUNT/SECONDS` as `parse` reads it (`--name-burst`, `--beacon`, `--dns-tunnel`);
/// the error says what was `expected`.
fn count_per_seconds_or_off<T>(
    flag: &str,
    v: &str,
    parse: impl Fn(&str) -> Option<T>,
    expected: &str,
) -> Result<Option<T>, Usage> {
    if v == "off" {
        return Ok(None);
    }
    parse(v)
        .map(Some)
        .ok_or_else(|| Usage(format!("{flag} {v}: expected {expected}")))
}

/// A detector's `COUNT/SECONDS|off` (`--name-burst`, `--beacon`, `--dns-tunnel`): a new
/// threshold keeps the detector's blocking (`--name-burst-block`, ...: the settings file's
/// comes first).
fn detector_setting<T: Blocking + Copy>(
    flag: &str,
    v: &str,
    current: Option<T>,
    parse: impl Fn(&str) -> Option<T>,
    expected: &str,
) -> Result<Option<T>, Usage> {
    let block = current.is_some_and(|mut t| *t.blocking());
    Ok(
        count_per_seconds_or_off(flag, v, parse, expected)?.map(|mut t| {
            *t.blocking() = block;
            t
        }),
    )
}

/// A detector's `--...-block`: blocking on, refused (saying `off`) with the detector off.
fn block_flag<T: Blocking>(flag: &str, detector: &mut Option<T>, off: &str) -> Result<(), Usage> {
    match detector {
        Some(t) => {
            *t.blocking() = true;
            Ok(())
        }
        None => Err(Usage(format!("{flag}: {off}"))),
    }
}

fn parse_intel_arg(s: &str) -> Result<(PathBuf, Action), Usage> {
    if let Some((p, a)) = s.rsplit_once(':') {
        if let Some(act) = Action::parse(a) {
            return Ok((PathBuf::from(p), act));
        }
        if !Path::new(s).exists()
            && ["block", "audit", "allow"]
                .iter()
                .all(|k| !a.is_empty() && !k.starts_with(a))
            && !a.contains('/')
        {
            return Err(Usage(format!(
                "--intel {s}: unknown action `{a}` (block, audit or allow)"
            )));
        }
    }
    Ok((PathBuf::from(s), Action::Block))
}

/// Loads the intel lists. Bad lines are reported on stderr (file, line, reason) and skipped; a
/// list that cannot be read, holds no indicator or is mostly bad lines is an error.
fn load_intel(specs: &[(PathBuf, Action)], demo: bool) -> Result<IntelSet, String> {
    let mut b = IntelBuilder::new();
    if demo {
        b.add_bytes(DEMO_INTEL.0, DEMO_INTEL.1, Action::Block)
            .map_err(|e| e.to_string())?;
    }
    for (p, a) in specs {
        b.add_file(p, *a).map_err(|e| e.to_string())?;
    }
    report_bad_lines(&b);
    Ok(b.build())
}

/// Prints the builder's bad lines (the first [`palisade_rules::MAX_PROBLEMS`], then a count of
/// the rest); returns how many lines were skipped in all.
fn report_bad_lines(b: &IntelBuilder) -> u64 {
    for p in &b.problems {
        eprintln!("palisade: intel: {p} (line skipped)");
    }
    let total = palisade_rules::bad_lines(b.lists());
    let unlisted = total.saturating_sub(b.problems.len() as u64);
    if unlisted > 0 {
        eprintln!("palisade: intel: {unlisted} more bad lines skipped (not listed)");
    }
    total
}

fn replay_cmd(args: &[String]) -> Result<ExitCode, Usage> {
    let mut files = Vec::new();
    let mut intel = Vec::new();
    let mut rules = RuleOpts::default();
    // Replays are reproducible: the detectors' table keys come from a seed (Config::hash_seed).
    let mut cfg = Config {
        hash_seed: Some(0),
        ..Config::default()
    };
    let mut eve = String::from("eve.json");
    let mut stats_interval = 0u64;
    let mut sinks = Vec::new();
    let mut sink_wait = 60u64;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| Usage(format!("{name} needs a value")))
        };
        if engine_option(a, &mut val, &mut cfg)? || rule_option(a, &mut val, &mut rules)? {
            continue;
        }
        match a.as_str() {
            "--intel" => intel.push(parse_intel_arg(&val("--intel")?)?),
            "--eve" => eve = val("--eve")?,
            "--sink-wait" => sink_wait = seconds("--sink-wait", &val("--sink-wait")?)?,
            "--sink" => {
                cli_fleet::sink_option(a, &mut val, &mut sinks)?;
            }
            "--stats-interval" => {
                stats_interval = seconds("--stats-interval", &val("--stats-interval")?)?
            }
            s if s.starts_with('-') && s != "-" => {
                return Err(Usage(format!("unknown option `{s}`")))
            }
            f => files.push(PathBuf::from(f)),
        }
    }
    if !sinks.is_empty() && eve == "-" {
        return Err(Usage(
            "--sink needs --eve FILE (sinks are fed from it)".into(),
        ));
    }
    let demo = files.is_empty();
    let mut tmp = None;
    if demo {
        // Write the bundled demo captures to a private temporary folder and replay them.
        let dir = std::env::temp_dir().join(format!("palisade-demo-{}", std::process::id()));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            eprintln!("palisade: {}: {e}", dir.display());
            return Ok(ExitCode::from(2));
        }
        for (name, bytes) in DEMO_PCAPS {
            let p = dir.join(Path::new(name).file_name().unwrap_or_default());
            if let Err(e) = std::fs::write(&p, bytes) {
                eprintln!("palisade: {}: {e}", p.display());
                return Ok(ExitCode::from(2));
            }
            files.push(p);
        }
        eprintln!(
            "palisade: no capture given: replaying the bundled demo ({} and {}) against {} and {}",
            DEMO_PCAPS[0].0, DEMO_PCAPS[1].0, DEMO_INTEL.0, DEMO_RULES.0
        );
        if eve == "eve.json" {
            eve = "-".into();
        }
        tmp = Some(dir);
    }
    let set = match load_intel(&intel, demo) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("palisade: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let (names, flows) =
        match load_names(&rules.names).and_then(|n| Ok((n, load_flows(&rules.flows)?))) {
            Ok(n) => n,
            Err(e) => {
                eprintln!("palisade: {e}");
                return Ok(ExitCode::from(1));
            }
        };
    let sigs = if demo && rules.paths.is_empty() {
        let mut b = rule_builder(&rules);
        b.add_text(DEMO_RULES.0, DEMO_RULES.1);
        b.build()
    } else {
        match load_rules(&rules) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("palisade: {e}");
                return Ok(ExitCode::from(1));
            }
        }
    };
    let mut engine = Engine::new(cfg, set);
    engine.set_sigs(sigs);
    engine.set_names(names);
    engine.set_flow_model(flows);
    let opts = ReplayOpts {
        files,
        eve: if eve == "-" {
            EveOut::Stdout
        } else {
            EveOut::File(PathBuf::from(&eve))
        },
        stats_interval_s: stats_interval,
        progress: true,
    };
    let res = replay::run(&mut engine, &opts);
    // Sinks get the eve file's events once the replay is done, and are waited for.
    if !sinks.is_empty() && res.is_ok() {
        match std::fs::read(&eve)
            .map_err(|e| format!("{eve}: {e}"))
            .and_then(|b| Ok((b, palisade::sinks::Sinks::start(&sinks, true)?)))
        {
            Ok((events, out)) => {
                for chunk in events
                    .chunk_by(|a, _| *a != b'\n')
                    .collect::<Vec<_>>()
                    .chunks(512)
                {
                    out.send(std::sync::Arc::from(chunk.concat()));
                }
                let total = events.iter().filter(|&&b| b == b'\n').count();
                let (counters, done) = out.finish(std::time::Duration::from_secs(sink_wait));
                for (name, delivered, dropped, errors) in counters {
                    eprintln!("palisade replay: sink {name}: {delivered} of {total} events delivered, {dropped} dropped, {errors} errors");
                }
                if !done {
                    eprintln!("palisade: a sink did not take every event within {sink_wait} s");
                    return Ok(ExitCode::from(1));
                }
            }
            Err(e) => {
                eprintln!("palisade: {e}");
                return Ok(ExitCode::from(1));
            }
        }
    }
    if let Some(dir) = tmp {
        let _ = std::fs::remove_dir_all(dir);
    }
    let summary = match res {
        Ok(s) => s,
        Err(e) => {
            eprintln!("palisade: eve output: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    eprint!(
        "{}",
        replay::format_summary(&engine, &summary, if eve == "-" { "stdout" } else { &eve })
    );
    if let Some((file, err)) = &summary.error {
        eprintln!(
            "palisade: {}: {err} (the {} packets before it were processed)",
            file.display(),
            summary.packets
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn intel_check(args: &[String]) -> Result<ExitCode, Usage> {
    if args.is_empty() {
        return Err(Usage("intel check needs at least one list".into()));
    }
    let mut b = IntelBuilder::new();
    for a in args {
        let (p, act) = parse_intel_arg(a)?;
        match b.add_file(&p, act) {
            Ok(info) => println!(
                "{}: {} domains, {} addresses/prefixes, {} URLs ({}){}",
                info.name,
                info.domains,
                info.addrs,
                info.urls,
                info.action.as_str(),
                match info.bad_lines {
                    0 => String::new(),
                    n => format!(", {n} bad lines skipped"),
                }
            ),
            Err(e) => {
                eprintln!("palisade: {e}");
                return Ok(ExitCode::from(1));
            }
        }
    }
    let bad = report_bad_lines(&b);
    let s = b.build();
    println!(
        "total: {} distinct domains, {} distinct addresses/prefixes, {} distinct URLs, {bad} bad lines skipped",
        s.domain_count(),
        s.addr_count(),
        s.url_count()
    );
    // As `rules check` does for syntax errors: the lists load, but they need fixing.
    Ok(if bad > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn parse_queues(v: &str) -> Result<(u16, u16), Usage> {
    let bad = || Usage(format!("--queue {v}: expected N or N:M (0..65535)"));
    let (a, b) = v.split_once(':').unwrap_or((v, v));
    let (a, b): (u16, u16) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if b < a || b - a >= 64 {
        return Err(bad());
    }
    Ok((a, b))
}

fn parse_fail(v: &str) -> Result<bool, Usage> {
    match v {
        "open" => Ok(true),
        "closed" => Ok(false),
        _ => Err(Usage(format!("--fail {v}: expected open or closed"))),
    }
}

/// Turns the settings file into `inline` arguments that the command line then overrides
/// (given later; `--intel` on the command line replaces the file's lists).
fn settings_args(st: &palisade::settings::Settings, cli: &[String]) -> Vec<String> {
    let mut a = Vec::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            a.push(k.to_string());
            a.push(v);
        }
    };
    put("--mode", st.mode.clone());
    put("--queue", st.queue.clone());
    put("--eve", st.eve.clone());
    put("--sinkhole", st.sinkhole.clone());
    put("--fail", st.fail.clone());
    put("--stats-interval", st.stats_interval.map(|v| v.to_string()));
    put("--metrics", st.metrics.clone());
    put("--memcap", st.memcap_mib.map(|v| v.to_string()));
    put("--hash-seed", st.hash_seed.map(|v| v.to_string()));
    put("--pidfile", st.pidfile.clone());
    put("--quic", st.quic.clone());
    put("--ech", st.ech.clone());
    put("--name-model", st.name_model.clone());
    put("--name-alert", st.name_alert.map(|v| v.to_string()));
    put("--name-block", st.name_block.map(|v| v.to_string()));
    put("--name-burst", st.name_burst.clone());
    put("--beacon", st.beacon.clone());
    put("--dns-tunnel", st.dns_tunnel.clone());
    put("--flow-model", st.flow_model.clone());
    put("--flow-alert", st.flow_alert.map(|v| v.to_string()));
    put("--flow-block", st.flow_block.map(|v| v.to_string()));
    put("--manager", st.manager.clone());
    put("--manager-name", st.manager_name.clone());
    put("--ca", st.ca.clone());
    put("--cert", st.cert.clone());
    put("--key", st.key.clone());
    put("--bundle-key", st.bundle_key.clone());
    put("--group", st.group.clone());
    put("--state-dir", st.state_dir.clone());
    put("--spool-max", st.spool_max_mib.map(|v| v.to_string()));
    if !cli.iter().any(|x| x == "--sink") {
        for k in &st.sinks {
            a.push("--sink".into());
            a.push(k.clone());
        }
    }
    if st.name_shadow == Some(true) {
        a.push("--name-shadow".into());
    }
    // After the detectors' own settings, which they need.
    for (flag, on) in [
        ("--dns-tunnel-block", st.dns_tunnel_block),
        ("--beacon-block", st.beacon_block),
        ("--name-burst-block", st.name_burst_block),
    ] {
        if on == Some(true) {
            a.push(flag.into());
        }
    }
    if !cli.iter().any(|x| x == "--intel") {
        for l in &st.intel {
            a.push("--intel".into());
            a.push(format!("{}:{}", l.path, l.action));
        }
    }
    if !cli.iter().any(|x| x == "--rules") {
        for r in &st.rules {
            a.push("--rules".into());
            a.push(r.clone());
        }
    }
    for (k, v) in &st.vars {
        a.push("--var".into());
        a.push(format!("{k}={v}"));
    }
    if st.reset == Some(false) {
        a.push("--no-reset".into());
    }
    a
}

/// `--rules PATH` and `--var NAME=VALUE`, shared by replay, inline and capture.
#[derive(Debug, Clone, Default)]
struct RuleOpts {
    paths: Vec<PathBuf>,
    vars: Vec<(String, String)>,
    names: NameOpts,
    flows: NameOpts,
}

/// A model's settings: `--name-model`, `--name-alert`, `--name-block`, `--name-shadow` for the
/// domain model, the same with `--flow-` for the flow model.
#[derive(Debug, Clone, Default)]
struct NameOpts {
    /// `None`: the bundled model; `Some("off")`: no scoring; else a safetensors file.
    model: Option<String>,
    alert: Option<AlertAt>,
    block: Option<f32>,
    shadow: bool,
}

/// An alert threshold: a score, or `model` for the one the model file records (its training
/// false-positive point).
#[derive(Debug, Clone, Copy)]
enum AlertAt {
    Score(f32),
    Model,
}

fn parse_score(flag: &str, v: &str) -> Result<f32, Usage> {
    v.parse::<f32>()
        .ok()
        .filter(|x| (0.0..=1.0).contains(x))
        .ok_or_else(|| Usage(format!("{flag} {v}: expected a score between 0 and 1")))
}

/// Applies the options to a model's scoring: a threshold given turns alerts on (the flow model
/// starts in shadow mode), `--*-shadow` turns them off.
fn configure<M>(mut s: Scoring<M>, o: &NameOpts) -> Scoring<M> {
    match o.alert {
        Some(AlertAt::Score(a)) => {
            s.alert = a;
            s.shadow = false;
        }
        Some(AlertAt::Model) => s.shadow = false,
        None => {}
    }
    s.block = o.block;
    s.shadow |= o.shadow;
    s
}

/// Loads the domain model as the options say (a file is read and checked here, off the packet
/// path, so a reload with a broken file keeps the running model).
fn load_names(o: &NameOpts) -> Result<Option<NameScoring>, String> {
    let model = match o.model.as_deref() {
        Some("off") => return Ok(None),
        None | Some("bundled") => DomainModel::bundled(),
        Some(p) => DomainModel::from_file(Path::new(p), Psl::bundled())
            .map_err(|e| format!("name model: {e}"))?,
    };
    Ok(Some(configure(NameScoring::with_defaults(model), o)))
}

/// Loads the flow model as the options say (shadow unless an alert threshold is given).
fn load_flows(o: &NameOpts) -> Result<Option<FlowScoring>, String> {
    let model = match o.model.as_deref() {
        Some("off") => return Ok(None),
        None | Some("bundled") => FlowModel::bundled(),
        Some(p) => FlowModel::from_file(Path::new(p)).map_err(|e| format!("flow model: {e}"))?,
    };
    Ok(Some(configure(FlowScoring::shadow(model), o)))
}

fn rule_option(
    flag: &str,
    val: &mut dyn FnMut(&str) -> Result<String, Usage>,
    r: &mut RuleOpts,
) -> Result<bool, Usage> {
    match flag {
        "--rules" => r.paths.push(PathBuf::from(val(flag)?)),
        f if f.starts_with("--name-") || f.starts_with("--flow-") => {
            let o = if f.starts_with("--name-") {
                &mut r.names
            } else {
                &mut r.flows
            };
            match &f["--name-".len()..] {
                "model" => o.model = Some(val(flag)?),
                "alert" => {
                    let v = val(flag)?;
                    o.alert = Some(if v == "model" {
                        AlertAt::Model
                    } else {
                        AlertAt::Score(parse_score(flag, &v)?)
                    });
                }
                "block" => {
                    let v = val(flag)?;
                    o.block = (v != "off").then(|| parse_score(flag, &v)).transpose()?;
                }
                "shadow" => o.shadow = true,
                _ => return Ok(false),
            }
        }
        "--var" => {
            let v = val(flag)?;
            let Some((k, x)) = v.split_once('=') else {
                return Err(Usage(format!("--var {v}: expected NAME=VALUE")));
            };
            r.vars.push((
                k.trim().trim_start_matches('$').to_owned(),
                x.trim().to_owned(),
            ));
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn rule_builder(r: &RuleOpts) -> SigSetBuilder {
    let mut vars = Vars::default();
    for (k, v) in &r.vars {
        // Suricata keeps two namespaces; port groups are named *_PORT(S) by convention.
        if k.ends_with("_PORTS") || k.ends_with("_PORT") {
            vars.set_port(k, v);
        } else {
            vars.set_addr(k, v);
        }
    }
    SigSetBuilder::new(vars)
}

/// The lists, the rules and the name model (what `inline` and `capture` enforce, and a reload
/// rebuilds).
fn load_policy(intel: &[(PathBuf, Action)], rules: &RuleOpts) -> Result<Policy, String> {
    Ok(Policy {
        intel: load_intel(intel, false)?,
        sigs: load_rules(rules)?,
        names: load_names(&rules.names)?,
        flows: load_flows(&rules.flows)?,
    })
}

/// Loads the rule files. Skipped rules and syntax errors are reported on stderr (file, line,
/// sid, reason) and the rest still loads; an unreadable path is an error.
fn load_rules(r: &RuleOpts) -> Result<SigSet, String> {
    if r.paths.is_empty() {
        return Ok(SigSet::default());
    }
    let t = std::time::Instant::now();
    let mut b = rule_builder(r);
    for p in &r.paths {
        b.add_path(p).map_err(|e| e.to_string())?;
    }
    let (mut skipped, mut errors) = (0, 0);
    for p in &b.problems {
        match p.kind {
            RuleErrorKind::Skipped(_) => skipped += 1,
            RuleErrorKind::Syntax(_) => errors += 1,
        }
        eprintln!("palisade: rules: {p}");
    }
    let loaded = b.len();
    let set = b.build();
    eprintln!(
        "palisade: rules: {loaded} loaded, {skipped} skipped, {errors} errors, built in {:.0} ms, {} prefilter kernel",
        t.elapsed().as_secs_f64() * 1e3,
        palisade_rules::sig::prefilter_kernel()
    );
    Ok(set)
}

/// `palisade rules check FILE...`: loaded and skipped counts by reason; exit 1 on syntax errors.
fn rules_check(args: &[String]) -> Result<ExitCode, Usage> {
    let mut r = RuleOpts::default();
    let mut verbose = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| Usage(format!("{name} needs a value")))
        };
        if a == "--var" {
            rule_option(a, &mut val, &mut r)?;
        } else if a == "--verbose" || a == "-v" {
            verbose = true;
        } else if a.starts_with("--") {
            return Err(Usage(format!("unknown option `{a}`")));
        } else {
            r.paths.push(PathBuf::from(a));
        }
    }
    if r.paths.is_empty() {
        return Err(Usage(
            "rules check needs at least one file or directory".into(),
        ));
    }
    let t = std::time::Instant::now();
    let mut b = rule_builder(&r);
    for p in &r.paths {
        if let Err(e) = b.add_path(p) {
            eprintln!("palisade: {e}");
            return Ok(ExitCode::from(1));
        }
    }
    let mut by_reason: std::collections::BTreeMap<String, usize> = Default::default();
    let (mut skipped, mut errors) = (0usize, 0usize);
    for p in &b.problems {
        let key = match &p.kind {
            RuleErrorKind::Skipped(s) => {
                skipped += 1;
                format!("skipped: {}", s.reason)
            }
            RuleErrorKind::Syntax(m) => {
                errors += 1;
                eprintln!("palisade: {p}");
                format!("syntax error: {m}")
            }
        };
        if verbose && matches!(p.kind, RuleErrorKind::Skipped(_)) {
            eprintln!("palisade: {p}");
        }
        *by_reason.entry(key).or_default() += 1;
    }
    let loaded = b.len();
    let set = b.build();
    let total = loaded + skipped + errors;
    let pct = if total == 0 {
        0.0
    } else {
        loaded as f64 * 100.0 / total as f64
    };
    // A closed stdout (`| head`) ends the listing quietly.
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{loaded} of {total} rules loaded ({pct:.2}%), {skipped} skipped, {errors} syntax errors; built in {:.0} ms, prefilter automata {} KiB, {} kernel",
        t.elapsed().as_secs_f64() * 1e3,
        set.memory_usage() >> 10,
        palisade_rules::sig::prefilter_kernel()
    );
    let mut v: Vec<_> = by_reason.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    for (k, n) in v {
        if writeln!(out, "{n:7}  {k}").is_err() {
            break;
        }
    }
    Ok(if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn config_check(args: &[String]) -> Result<ExitCode, Usage> {
    let [path] = args else {
        return Err(Usage("config check needs one file".into()));
    };
    match palisade::settings::load(path) {
        Ok(st) => {
            println!("{path}: ok ({} lists)", st.intel.len());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("palisade: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

fn inline_cmd(args: &[String]) -> Result<ExitCode, Usage> {
    // Settings file first (explicit --config, else /etc/palisade/palisade.toml when present).
    let explicit = args.iter().position(|a| a == "--config").map(|i| {
        args.get(i + 1)
            .cloned()
            .ok_or_else(|| Usage("--config needs a value".into()))
    });
    let config = match explicit {
        Some(p) => Some(p?),
        None => Some("/etc/palisade/palisade.toml".to_string()).filter(|p| Path::new(p).exists()),
    };
    let mut merged = Vec::new();
    if let Some(path) = &config {
        match palisade::settings::load(path) {
            Ok(st) => merged = settings_args(&st, args),
            Err(e) => {
                eprintln!("palisade: {e}");
                return Ok(ExitCode::from(1));
            }
        }
    }
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
            continue;
        }
        if a == "--config" {
            skip = true;
            continue;
        }
        merged.push(a.clone());
    }
    let args = &merged[..];
    let mut intel = Vec::new();
    let mut rules = RuleOpts::default();
    let mut cfg = Config::default();
    let mut eve = String::from("eve.json");
    let mut queues = None;
    let mut opts = InlineOpts {
        queue: 0,
        fail_open: true,
        sinkhole: Sinkhole::default(),
        reset: true,
        stats_interval: std::time::Duration::ZERO,
        bypass: true,
        reload: std::sync::Arc::new(Reloadable::default()),
        metrics: Default::default(),
    };
    let mut metrics_addr = String::from("127.0.0.1:9475");
    let mut pidfile: Option<String> = None;
    let mut fleet = cli_fleet::FleetOpts::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| Usage(format!("{name} needs a value")))
        };
        if engine_option(a, &mut val, &mut cfg)?
            || rule_option(a, &mut val, &mut rules)?
            || cli_fleet::fleet_option(a, &mut val, &mut fleet)?
        {
            continue;
        }
        match a.as_str() {
            "--queue" => queues = Some(parse_queues(&val("--queue")?)?),
            "--intel" => intel.push(parse_intel_arg(&val("--intel")?)?),
            "--eve" => eve = val("--eve")?,
            "--sinkhole" => {
                let v = val("--sinkhole")?;
                opts.sinkhole = Sinkhole::parse(&v).ok_or_else(|| {
                    Usage(format!("--sinkhole {v}: expected nxdomain or an address"))
                })?;
            }
            "--no-reset" => opts.reset = false,
            "--no-bypass" => opts.bypass = false,
            "--pidfile" => pidfile = Some(val("--pidfile")?),
            "--metrics" => metrics_addr = val("--metrics")?,
            "--fail" => opts.fail_open = parse_fail(&val("--fail")?)?,
            "--stats-interval" => {
                opts.stats_interval = std::time::Duration::from_secs(seconds(
                    "--stats-interval",
                    &val("--stats-interval")?,
                )?)
            }
            s => return Err(Usage(format!("unknown option `{s}`"))),
        }
    }
    let Some((first, last)) = queues else {
        return Err(Usage("inline needs --queue N[:M]".into()));
    };
    let policy = match load_policy(&intel, &rules) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("palisade: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    if let Some(p) = &pidfile {
        if let Err(e) = std::fs::write(p, format!("{}\n", std::process::id())) {
            eprintln!("palisade: {p}: {e}");
            return Ok(ExitCode::from(1));
        }
    }
    // Reloads (SIGHUP) rebuild the intel on this thread, off the packet path, and publish it;
    // they rebuild from the fleet bundle in force when there is one. SIGHUP also reopens the
    // eve files (logrotate).
    let reload = opts.reload.clone();
    reload.record(&policy);
    let source: cli_fleet::Source =
        std::sync::Arc::new(std::sync::Mutex::new((intel.clone(), rules.clone())));
    let reload_source = source.clone();
    let mut signals = match signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("palisade: cannot watch SIGHUP: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    std::thread::spawn(move || {
        for _ in signals.forever() {
            let t = std::time::Instant::now();
            sd_notify("RELOADING=1");
            palisade::sinks::REOPEN.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            let (specs, rule_specs) = match reload_source.lock() {
                Ok(s) => s.clone(),
                Err(_) => continue,
            };
            match load_policy(&specs, &rule_specs) {
                Ok(policy) => {
                    let summary = publish_policy(&reload, policy);
                    eprintln!(
                        "palisade inline: reload {} ok: {summary}, built in {:.1} ms",
                        reload.generation(),
                        t.elapsed().as_secs_f64() * 1e3
                    );
                }
                Err(e) => {
                    reload.refused();
                    eprintln!("palisade inline: reload failed, keeping the running set: {e}");
                }
            }
            sd_notify("READY=1");
        }
    });
    let mode = if cfg.mode == Mode::Block {
        "block"
    } else {
        "audit"
    };
    let mut workers = Vec::new();
    let n_queues = (last - first) as usize + 1;
    let ready_count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let snapshots: Vec<_> = (first..=last)
        .map(|q| {
            (
                q,
                std::sync::Arc::new(std::sync::Mutex::new(Snapshot::default())),
            )
        })
        .collect();
    // The fleet node (when --manager is given) restores its last good bundle before the queues
    // open; the event bus feeds its spool and the sinks.
    let bus = match cli_fleet::start(
        &fleet,
        source,
        opts.reload.clone(),
        cli_fleet::inline_stats(snapshots.clone()),
    ) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("palisade: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    for (q, snap) in snapshots.iter().cloned() {
        let mut engine = Engine::new(cfg.clone(), IntelSet::default());
        engine.set_policy(policy.clone());
        let mut o = opts.clone();
        o.queue = q;
        o.metrics = snap;
        let bus_writer = bus.as_ref().map(|b| b.writer());
        let o2 = o.clone();
        let ready_count = ready_count.clone();
        // One eve file per worker (no lock between workers): eve.json, eve.q1.json, ...
        let path = if q == first || eve == "-" {
            eve.clone()
        } else {
            match eve.rsplit_once('.') {
                Some((stem, ext)) => format!("{stem}.q{q}.{ext}"),
                None => format!("{eve}.q{q}"),
            }
        };
        workers.push(std::thread::spawn(move || -> Result<(), String> {
            let mut out = open_eve_append(&path)?;
            if let Some(w) = bus_writer {
                out = Box::new(palisade::sinks::Tee(out, w));
            }
            let mut st = InlineStats::default();
            let ready = move || {
                eprintln!(
                    "palisade inline: queue {q} ready (mode {mode}, fail {}), eve {path}",
                    if o2.fail_open { "open" } else { "closed" }
                );
                // systemd learns the daemon is up once every queue is bound.
                if ready_count.fetch_add(1, std::sync::atomic::Ordering::AcqRel) + 1 == n_queues {
                    sd_notify("READY=1");
                }
            };
            nfqueue::run(&mut engine, &o, &mut *out, &mut st, &ready)
                .map_err(|e| format!("queue {q}: {e}"))
        }));
    }
    if metrics_addr != "off" {
        match palisade::metrics::serve(&metrics_addr, snapshots, opts.reload.clone()) {
            Ok(()) => eprintln!("palisade inline: metrics on http://{metrics_addr}/metrics"),
            Err(e) => {
                eprintln!("palisade inline: metrics disabled, cannot listen on {metrics_addr}: {e}")
            }
        }
    }
    let mut code = ExitCode::SUCCESS;
    for w in workers {
        match w.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                eprintln!("palisade: {e}");
                code = ExitCode::from(1);
            }
            Err(_) => code = ExitCode::from(2),
        }
    }
    Ok(code)
}

fn firewall_cmd(args: &[String]) -> Result<ExitCode, Usage> {
    match args.first().map(String::as_str) {
        Some("uninstall") => {
            for line in firewall::uninstall() {
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Some("install") => {
            let mut role = None;
            let mut queues = None;
            let mut fail_open = true;
            let mut guard_lists = Vec::new();
            let mut backend = firewall::Backend::Auto;
            let mut it = args[1..].iter();
            while let Some(a) = it.next() {
                let mut val = |name: &str| {
                    it.next()
                        .cloned()
                        .ok_or_else(|| Usage(format!("{name} needs a value")))
                };
                match a.as_str() {
                    "--role" => {
                        role = Some(match val("--role")?.as_str() {
                            "host" => Role::Host,
                            "gateway" => Role::Gateway,
                            r => {
                                return Err(Usage(format!("--role {r}: expected host or gateway")))
                            }
                        })
                    }
                    "--queue" => queues = Some(parse_queues(&val("--queue")?)?),
                    "--fail" => fail_open = parse_fail(&val("--fail")?)?,
                    "--intel" => guard_lists.push(parse_intel_arg(&val("--intel")?)?),
                    "--backend" => {
                        backend = match val("--backend")?.as_str() {
                            "auto" => firewall::Backend::Auto,
                            "nft" => firewall::Backend::Nft,
                            "iptables" => firewall::Backend::Iptables,
                            b => {
                                return Err(Usage(format!(
                                    "--backend {b}: expected auto, nft or iptables"
                                )))
                            }
                        }
                    }
                    s => return Err(Usage(format!("unknown option `{s}`"))),
                }
            }
            let guard = if guard_lists.is_empty() {
                None
            } else {
                match load_intel(&guard_lists, false) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        eprintln!("palisade: {e}");
                        return Ok(ExitCode::from(1));
                    }
                }
            };
            let (Some(role), Some(queues)) = (role, queues) else {
                return Err(Usage("firewall install needs --role and --queue".into()));
            };
            match firewall::install(
                &Plan {
                    role,
                    queues,
                    fail_open,
                },
                guard.as_ref(),
                backend,
            ) {
                Ok((backend, applied)) => {
                    println!("# {backend}");
                    for a in applied {
                        println!("{a}");
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("palisade: firewall install failed (nothing left installed): {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        _ => Err(Usage("firewall needs install or uninstall".into())),
    }
}

fn reload_cmd(args: &[String]) -> Result<ExitCode, Usage> {
    let [flag, path] = args else {
        return Err(Usage("reload needs --pidfile PATH".into()));
    };
    if flag != "--pidfile" {
        return Err(Usage(format!("unknown option `{flag}`")));
    }
    let pid = match std::fs::read_to_string(path).map(|s| s.trim().parse::<u32>()) {
        Ok(Ok(p)) => p,
        Ok(Err(_)) => {
            eprintln!("palisade: {path}: not a process id");
            return Ok(ExitCode::from(1));
        }
        Err(e) => {
            eprintln!("palisade: {path}: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("palisade: could not signal process {pid} (from {path})");
        Ok(ExitCode::from(1))
    }
}

/// Puts a freshly built policy in force (SIGHUP reloads and fleet bundles alike): the kernel
/// guard's address set first when it is installed, then the workers' policy. Returns a summary.
fn publish_policy(reload: &Reloadable, policy: Policy) -> String {
    let set = &policy.intel;
    let n = set.indicator_count();
    if firewall::guard_installed() {
        match firewall::guard_refresh(set) {
            Ok(k) => eprintln!("palisade: kernel guard refreshed: {k} blocked prefixes"),
            Err(e) => eprintln!("palisade: kernel guard not refreshed: {e}"),
        }
    }
    let bad = palisade_rules::bad_lines(set.lists());
    let nsigs = policy.sigs.len();
    let model = policy
        .names
        .as_ref()
        .map_or("off".to_string(), |n| n.model.version().to_string());
    reload.publish(policy);
    format!("{n} indicators ({bad} bad list lines skipped), {nsigs} signatures, name model {model}")
}

/// Tells systemd (Type=notify) about the daemon's state; a no-op outside systemd.
fn sd_notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|a| sock.send_to_addr(state.as_bytes(), &a))
    } else {
        sock.send_to(state.as_bytes(), &path)
    };
    if let Err(e) = sent {
        eprintln!("palisade: sd_notify {state}: {e}");
    }
}

fn capture_cmd(args: &[String]) -> Result<ExitCode, Usage> {
    let mut intel = Vec::new();
    let mut rules = RuleOpts::default();
    let mut iface = None;
    let mut eve = String::from("eve.json");
    let mut count = 0u64;
    let mut stats = std::time::Duration::ZERO;
    let mut fleet = cli_fleet::FleetOpts::default();
    let mut cap_cfg = Config::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| Usage(format!("{name} needs a value")))
        };
        if rule_option(a, &mut val, &mut rules)?
            || cli_fleet::fleet_option(a, &mut val, &mut fleet)?
        {
            continue;
        }
        match a.as_str() {
            "--iface" => iface = Some(val("--iface")?),
            "--intel" => intel.push(parse_intel_arg(&val("--intel")?)?),
            "--eve" => eve = val("--eve")?,
            "--name-burst" | "--beacon" | "--dns-tunnel" => {
                engine_option(a, &mut val, &mut cap_cfg)?;
            }
            "--count" => {
                let v = val("--count")?;
                count = v
                    .parse()
                    .map_err(|_| Usage(format!("--count {v}: expected a number")))?;
            }
            "--stats-interval" => {
                stats = std::time::Duration::from_secs(seconds(
                    "--stats-interval",
                    &val("--stats-interval")?,
                )?)
            }
            s => return Err(Usage(format!("unknown option `{s}`"))),
        }
    }
    let Some(iface) = iface else {
        return Err(Usage("capture needs --iface NAME".into()));
    };
    let policy = match load_policy(&intel, &rules) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("palisade: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    // A copy of the traffic cannot be blocked: alerts are logged as `allowed`.
    let cfg = Config {
        mode: Mode::Audit,
        ..cap_cfg
    };
    let mut engine = Engine::new(cfg, IntelSet::default());
    engine.set_policy(policy);
    let reload = std::sync::Arc::new(Reloadable::default());
    let source: cli_fleet::Source = std::sync::Arc::new(std::sync::Mutex::new((intel, rules)));
    cli_fleet::reopen_on_sighup();
    let bus = match cli_fleet::start(
        &fleet,
        source,
        reload.clone(),
        std::sync::Arc::new(std::collections::BTreeMap::new),
    ) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("palisade: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let mut out = match open_eve_append(&eve) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("palisade: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    if let Some(b) = &bus {
        out = Box::new(palisade::sinks::Tee(out, b.writer()));
    }
    match palisade::capture::afpacket::run(&mut engine, &iface, count, stats, &mut *out, &reload) {
        Ok(n) => {
            eprintln!(
                "palisade capture: {n} packets, {} alerts",
                engine.stats.alerts_allowed
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("palisade: capture on {iface}: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// The engine settings that `replay` and `inline` share. Returns true when `flag` was one.
fn engine_option(
    flag: &str,
    val: &mut dyn FnMut(&str) -> Result<String, Usage>,
    cfg: &mut Config,
) -> Result<bool, Usage> {
    match flag {
        "--mode" => {
            cfg.mode = match val("--mode")?.as_str() {
                "block" => Mode::Block,
                "audit" => Mode::Audit,
                m => return Err(Usage(format!("--mode {m}: expected block or audit"))),
            }
        }
        "--hash-seed" => {
            let v = val("--hash-seed")?;
            cfg.hash_seed = match v.as_str() {
                "random" => None,
                n => Some(n.parse().map_err(|_| {
                    Usage(format!(
                        "--hash-seed {v}: expected a number (0 to 2^64-1) or random"
                    ))
                })?),
            };
        }
        "--memcap" => {
            let v = val("--memcap")?;
            let mib: usize = v
                .parse()
                .ok()
                .filter(|&m| m >= 16)
                .ok_or_else(|| Usage(format!("--memcap {v}: expected MiB, at least 16")))?;
            cfg.memcap = mib << 20;
        }
        "--quic" => {
            let v = val("--quic")?;
            cfg.quic = QuicPolicy::parse(&v).ok_or_else(|| {
                Usage(format!(
                    "--quic {v}: expected allow, downgrade-unknown, block or off"
                ))
            })?;
        }
        "--ech" => {
            let v = val("--ech")?;
            cfg.ech = EchPolicy::parse(&v)
                .ok_or_else(|| Usage(format!("--ech {v}: expected allow, audit or block")))?;
        }
        "--name-burst" => {
            let v = val(flag)?;
            cfg.name_burst =
                detector_setting(flag, &v, cfg.name_burst, Burst::parse, Burst::EXPECTED)?;
        }
        "--name-burst-block" => block_flag(
            flag,
            &mut cfg.name_burst,
            "NXDOMAIN bursts are off (--name-burst off)",
        )?,
        "--beacon" => {
            let v = val(flag)?;
            cfg.beacon = detector_setting(flag, &v, cfg.beacon, Beacon::parse, Beacon::EXPECTED)?;
        }
        "--beacon-block" => block_flag(
            flag,
            &mut cfg.beacon,
            "the beacon detector is off (--beacon off)",
        )?,
        "--dns-tunnel" => {
            let v = val(flag)?;
            cfg.dns_tunnel = detector_setting(
                flag,
                &v,
                cfg.dns_tunnel,
                DnsTunnel::parse,
                DnsTunnel::EXPECTED,
            )?;
        }
        "--dns-tunnel-block" => block_flag(
            flag,
            &mut cfg.dns_tunnel,
            "the DNS tunnel detector is off (--dns-tunnel off)",
        )?,
        "--no-flow-events" => cfg.flow_events = false,
        "--inspect-encrypted" => cfg.inspect_encrypted = true,
        "--no-vlan-tracking" => cfg.vlan_tracking = false,
        "--dns-port" => {
            let v = val("--dns-port")?;
            cfg.dns_ports[3] = v
                .parse()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| Usage(format!("--dns-port {v}: expected a port number")))?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// A whole number of seconds for `flag`.
fn seconds(flag: &str, v: &str) -> Result<u64, Usage> {
    v.parse()
        .map_err(|_| Usage(format!("{flag} {v}: expected seconds")))
}

/// The eve output of a long-running command: stdout for `-`, else the file, appended to and
/// reopened after SIGHUP (log rotation).
fn open_eve_append(path: &str) -> Result<Box<dyn std::io::Write + Send>, String> {
    if path == "-" {
        return Ok(Box::new(std::io::stdout()));
    }
    let f = palisade::sinks::ReopeningFile::open(Path::new(path))
        .map_err(|e| format!("{path}: {e}"))?;
    Ok(Box::new(f))
}
