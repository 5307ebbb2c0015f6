//! The fleet's command line: `palisade manager ...`, the node options of `inline` and `capture`
//! (`--manager`, certificates, bundle key, group, spool) and `--sink` for every long-running
//! command.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use palisade::capture::nfqueue::Reloadable;
use palisade::fleet::bundle::{self, PublicKey, SigningKey};
use palisade::fleet::manager::{self, ManagerConfig};
use palisade::fleet::node::{Node, NodeConfig, StatsFn};
use palisade::fleet::pki::{self, Identity};
use palisade::sinks::{Bus, SinkSpec, Sinks};
use palisade_rules::Action;

use crate::{load_policy, parse_intel_arg, rule_option, seconds, RuleOpts, Usage};

/// What a reload rebuilds from: the command line's lists and rules, or the bundle in force.
pub(crate) type Source = Arc<Mutex<(Vec<(PathBuf, Action)>, RuleOpts)>>;

/// Node and sink options of `inline` and `capture`.
#[derive(Debug, Clone, Default)]
pub(crate) struct FleetOpts {
    manager: Option<String>,
    manager_name: Option<String>,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    bundle_key: Option<PathBuf>,
    group: Option<String>,
    state_dir: Option<PathBuf>,
    spool_mib: Option<u64>,
    idle: Option<u64>,
    pub(crate) sinks: Vec<SinkSpec>,
}

/// `--sink SPEC` (repeatable), shared by replay, inline, capture and the manager.
pub(crate) fn sink_option(
    flag: &str,
    val: &mut dyn FnMut(&str) -> Result<String, Usage>,
    sinks: &mut Vec<SinkSpec>,
) -> Result<bool, Usage> {
    if flag != "--sink" {
        return Ok(false);
    }
    sinks.push(SinkSpec::parse(&val(flag)?).map_err(Usage)?);
    Ok(true)
}

/// The node options; true when `flag` was one.
pub(crate) fn fleet_option(
    flag: &str,
    val: &mut dyn FnMut(&str) -> Result<String, Usage>,
    o: &mut FleetOpts,
) -> Result<bool, Usage> {
    if sink_option(flag, val, &mut o.sinks)? {
        return Ok(true);
    }
    match flag {
        "--manager" => o.manager = Some(val(flag)?),
        "--manager-name" => o.manager_name = Some(val(flag)?),
        "--ca" => o.ca = Some(val(flag)?.into()),
        "--cert" => o.cert = Some(val(flag)?.into()),
        "--key" => o.key = Some(val(flag)?.into()),
        "--bundle-key" => o.bundle_key = Some(val(flag)?.into()),
        "--group" => o.group = Some(val(flag)?),
        "--state-dir" => o.state_dir = Some(val(flag)?.into()),
        "--spool-max" => {
            let v = val(flag)?;
            o.spool_mib = Some(
                v.parse()
                    .ok()
                    .filter(|&m| m >= 1)
                    .ok_or_else(|| Usage(format!("{flag} {v}: expected MiB, at least 1")))?,
            )
        }
        "--manager-idle" => o.idle = Some(seconds(flag, &val(flag)?)?.max(1)),
        _ => return Ok(false),
    }
    Ok(true)
}

fn identity(
    ca: &Option<PathBuf>,
    cert: &Option<PathBuf>,
    key: &Option<PathBuf>,
) -> Result<Identity, Usage> {
    match (ca, cert, key) {
        (Some(ca), Some(cert), Some(key)) => Ok(Identity {
            ca: ca.clone(),
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => Err(Usage("--ca, --cert and --key are all needed".into())),
    }
}

/// Turns a verified bundle's `policy.toml` into lists and rules (paths inside the bundle).
/// Settings that a reload cannot change are refused, not silently ignored.
fn bundle_source(dir: &Path) -> Result<(Vec<(PathBuf, Action)>, RuleOpts), String> {
    let path = dir.join(bundle::POLICY);
    let st = palisade::settings::load(&path.display().to_string())?;
    let fixed = [
        ("mode", st.mode.is_some()),
        ("queue", st.queue.is_some()),
        ("eve", st.eve.is_some()),
        ("sinkhole", st.sinkhole.is_some()),
        ("reset", st.reset.is_some()),
        ("fail", st.fail.is_some()),
        ("stats_interval", st.stats_interval.is_some()),
        ("metrics", st.metrics.is_some()),
        ("memcap_mib", st.memcap_mib.is_some()),
        ("hash_seed", st.hash_seed.is_some()),
        ("pidfile", st.pidfile.is_some()),
        ("quic", st.quic.is_some()),
        ("ech", st.ech.is_some()),
    ];
    if let Some((k, _)) = fixed.iter().find(|(_, set)| *set) {
        return Err(format!(
            "{}: `{k}` is a node setting, not part of a policy bundle",
            path.display()
        ));
    }
    let inside = |p: &str| -> Result<String, String> {
        if bundle::safe_path(p) {
            Ok(dir.join(p).display().to_string())
        } else {
            Err(format!(
                "{}: `{p}`: not a path inside the bundle",
                path.display()
            ))
        }
    };
    let model = |m: &Option<String>| -> Result<Option<String>, String> {
        match m.as_deref() {
            None | Some("bundled") | Some("off") => Ok(m.clone()),
            Some(p) => inside(p).map(Some),
        }
    };
    let mut st = st;
    for l in &mut st.intel {
        l.path = inside(&l.path)?;
    }
    for r in &mut st.rules {
        *r = inside(r)?;
    }
    st.name_model = model(&st.name_model)?;
    st.flow_model = model(&st.flow_model)?;
    let args = crate::settings_args(&st, &[]);
    let mut intel = Vec::new();
    let mut rules = RuleOpts::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| Usage(format!("{name} needs a value")))
        };
        let known = rule_option(a, &mut val, &mut rules).map_err(|u| u.0)?;
        if !known {
            if a == "--intel" {
                intel.push(parse_intel_arg(&val(a).map_err(|u| u.0)?).map_err(|u| u.0)?);
            } else {
                return Err(format!("{}: `{a}` is not a policy setting", path.display()));
            }
        }
    }
    Ok((intel, rules))
}

/// Starts the event bus (when there are sinks or a manager) and the node (when there is a
/// manager). The node applies bundles by building the policy and publishing it to `reload`,
/// and makes the bundle the source of later SIGHUP reloads.
pub(crate) fn start(
    fo: &FleetOpts,
    source: Source,
    reload: Arc<Reloadable>,
    stats: Arc<StatsFn>,
) -> Result<Option<Bus>, String> {
    let sinks = Sinks::start(&fo.sinks, false)?;
    let Some(addr) = &fo.manager else {
        return Ok((!fo.sinks.is_empty()).then(|| Bus::start(None, sinks)));
    };
    let manager: std::net::SocketAddr = addr
        .parse()
        .map_err(|_| format!("--manager {addr}: expected ADDRESS:PORT"))?;
    let id = identity(&fo.ca, &fo.cert, &fo.key).map_err(|u| u.0)?;
    let key = fo
        .bundle_key
        .as_ref()
        .ok_or("--manager needs --bundle-key (the operator's public key)")?;
    let cfg = NodeConfig {
        manager,
        server_name: fo
            .manager_name
            .clone()
            .unwrap_or_else(|| manager.ip().to_string()),
        identity: id,
        bundle_key: PublicKey::load(key)?,
        group: fo.group.clone().unwrap_or_else(|| "default".into()),
        state_dir: fo
            .state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/var/lib/palisade")),
        spool_max: fo.spool_mib.unwrap_or(256) << 20,
        idle: Duration::from_secs(fo.idle.unwrap_or(5)),
    };
    let refused = {
        let reload = reload.clone();
        Arc::new(move || reload.refused())
    };
    let apply = move |dir: &Path, m: &bundle::Manifest| -> Result<String, String> {
        let (intel, rules) = bundle_source(dir)?;
        let policy = load_policy(&intel, &rules)?;
        let summary = crate::publish_policy(&reload, policy);
        if let Ok(mut s) = source.lock() {
            *s = (intel, rules);
        }
        Ok(format!("version {}: {summary}", m.version))
    };
    let node = Arc::new(Node::new(cfg, Arc::new(apply), refused)?);
    let bus = Bus::start(Some(node.spooler()), sinks);
    let dropped = bus.dropped.clone();
    let stats: Arc<StatsFn> = Arc::new(move || {
        let mut m = stats();
        m.insert(
            "bus_dropped".into(),
            dropped.load(std::sync::atomic::Ordering::Relaxed),
        );
        m
    });
    node.spawn(stats)?;
    Ok(Some(bus))
}

/// For commands without reloads (capture, manager): SIGHUP only reopens eve files (logrotate).
pub(crate) fn reopen_on_sighup() {
    std::thread::spawn(|| {
        if let Ok(mut s) = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP]) {
            for _ in s.forever() {
                palisade::sinks::REOPEN.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            }
        }
    });
}

/// Sums the inline workers' snapshots for the manager's status.
pub(crate) fn inline_stats(
    snaps: Vec<(u16, Arc<Mutex<palisade::capture::nfqueue::Snapshot>>)>,
) -> Arc<StatsFn> {
    Arc::new(move || {
        let mut m = BTreeMap::new();
        for (_, s) in &snaps {
            if let Ok(s) = s.lock() {
                for (k, v) in [
                    ("packets", s.inline.packets),
                    ("accepted", s.inline.accepted),
                    ("dropped", s.inline.dropped),
                    ("bypassed", s.inline.bypassed),
                    ("resets_sent", s.inline.resets_sent),
                    ("sinkhole_answers", s.inline.sinkhole_answers),
                    ("alerts_blocked", s.engine.alerts_blocked),
                    ("alerts_allowed", s.engine.alerts_allowed),
                ] {
                    *m.entry(k.to_string()).or_insert(0) += v;
                }
            }
        }
        m
    })
}

const MANAGER_USAGE: &str =
    "manager needs: --listen ADDR --policy DIR --ca PEM --cert PEM --key PEM, \
or init-ca, issue-cert, keygen, sign, status";

/// `palisade manager ...`.
pub(crate) fn manager_cmd(args: &[String]) -> Result<ExitCode, Usage> {
    let fail = |e: String| {
        eprintln!("palisade: {e}");
        Ok(ExitCode::from(1))
    };
    let opts = |args: &[String]| -> Result<BTreeMap<String, Vec<String>>, Usage> {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if a == "--json" {
                m.entry(a.clone()).or_default();
                continue;
            }
            if !a.starts_with("--") {
                m.entry(String::new()).or_default().push(a.clone());
                continue;
            }
            let v = it
                .next()
                .ok_or_else(|| Usage(format!("{a} needs a value")))?;
            m.entry(a.clone()).or_default().push(v.clone());
        }
        Ok(m)
    };
    let one = |m: &BTreeMap<String, Vec<String>>, k: &str| m.get(k).and_then(|v| v.last()).cloned();
    let need = |m: &BTreeMap<String, Vec<String>>, k: &str| {
        one(m, k).ok_or_else(|| Usage(format!("manager: {k} is needed")))
    };
    // The first bare argument (options map it under "").
    let operand = |m: &BTreeMap<String, Vec<String>>, why: &str| {
        m.get("")
            .and_then(|v| v.first())
            .cloned()
            .ok_or_else(|| Usage(why.into()))
    };
    let write = |path: &Path, text: &str, secret: bool| -> Result<(), String> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        if secret {
            o.mode(0o600);
        }
        std::io::Write::write_all(
            &mut o
                .open(path)
                .map_err(|e| format!("{}: {e}", path.display()))?,
            text.as_bytes(),
        )
        .map_err(|e| format!("{}: {e}", path.display()))?;
        println!("wrote {}", path.display());
        Ok(())
    };
    match args.first().map(String::as_str) {
        Some("init-ca") => {
            let m = opts(&args[1..])?;
            let out = PathBuf::from(need(&m, "--out")?);
            let name = one(&m, "--name").unwrap_or_else(|| "Palisade fleet CA".into());
            let days: i64 = one(&m, "--days")
                .map(|d| {
                    d.parse()
                        .map_err(|_| Usage(format!("--days {d}: expected a number")))
                })
                .transpose()?
                .unwrap_or(3650);
            let r = std::fs::create_dir_all(&out)
                .map_err(|e| format!("{}: {e}", out.display()))
                .and_then(|_| pki::init_ca(&name, days))
                .and_then(|(c, k)| {
                    write(&out.join("ca.pem"), &c, false)?;
                    write(&out.join("ca.key"), &k, true)
                });
            r.map_or_else(fail, |_| Ok(ExitCode::SUCCESS))
        }
        Some("issue-cert") => {
            let m = opts(&args[1..])?;
            let name = operand(&m, "issue-cert needs a NAME")?;
            let ca = PathBuf::from(need(&m, "--ca")?);
            let out = PathBuf::from(need(&m, "--out")?);
            let now = time::OffsetDateTime::now_utc();
            let date = |k: &str, default| -> Result<time::OffsetDateTime, Usage> {
                match one(&m, k) {
                    None => Ok(default),
                    Some(d) => pki::parse_date(&d)
                        .ok_or_else(|| Usage(format!("{k} {d}: expected YYYY-MM-DD"))),
                }
            };
            let days: i64 = one(&m, "--days")
                .map(|d| {
                    d.parse()
                        .map_err(|_| Usage(format!("--days {d}: expected a number")))
                })
                .transpose()?
                .unwrap_or(825);
            let nb = date("--not-before", now - time::Duration::hours(1))?;
            let na = date("--not-after", now + time::Duration::days(days))?;
            let r = (|| {
                let read = |p: PathBuf| {
                    std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))
                };
                let (c, k) = pki::issue(
                    &read(ca.join("ca.pem"))?,
                    &read(ca.join("ca.key"))?,
                    &name,
                    nb,
                    na,
                )?;
                std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
                write(&out.join(format!("{name}.pem")), &c, false)?;
                write(&out.join(format!("{name}.key")), &k, true)
            })();
            r.map_or_else(fail, |_| Ok(ExitCode::SUCCESS))
        }
        Some("keygen") => {
            let m = opts(&args[1..])?;
            let out = need(&m, "--out")?;
            let r = SigningKey::generate().and_then(|(private, public)| {
                write(Path::new(&format!("{out}.key")), &private, true)?;
                write(Path::new(&format!("{out}.pub")), &public, false)
            });
            r.map_or_else(fail, |_| Ok(ExitCode::SUCCESS))
        }
        Some("sign") => {
            let m = opts(&args[1..])?;
            let dir = operand(&m, "sign needs a bundle DIR")?;
            let key = need(&m, "--key")?;
            let version: u64 = need(&m, "--version")?
                .parse()
                .map_err(|_| Usage("--version: expected a number".into()))?;
            let groups = m.get("--group").cloned().unwrap_or_default();
            let created = time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            let dir = PathBuf::from(dir);
            // The policy must load before it is signed: a broken bundle is caught here. Bad list
            // lines, which a node would skip, are refused too: what is signed is meant as is.
            let r = SigningKey::load(Path::new(&key)).and_then(|k| {
                let (intel, rules) = bundle_source(&dir)?;
                let policy = load_policy(&intel, &rules)?;
                let bad = palisade_rules::bad_lines(policy.intel.lists());
                if bad > 0 {
                    return Err(format!(
                        "{bad} bad list lines (named above): fix them before signing"
                    ));
                }
                bundle::sign_dir(&dir, &k, version, &groups, &created)
            });
            match r {
                Ok(man) => {
                    println!(
                        "signed {} version {} ({} files{})",
                        dir.display(),
                        man.version,
                        man.files.len(),
                        if groups.is_empty() {
                            String::new()
                        } else {
                            format!(", groups {}", groups.join(","))
                        }
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => fail(e),
            }
        }
        Some("status") => {
            let m = opts(&args[1..])?;
            let addr = one(&m, "--status").unwrap_or_else(|| "127.0.0.1:9476".into());
            let body = match manager::fetch_status(&addr) {
                Ok(b) => b,
                Err(e) => return fail(e),
            };
            if m.contains_key("--json") {
                println!("{body}");
                return Ok(ExitCode::SUCCESS);
            }
            let st: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let empty = Vec::new();
            for b in st["bundles"].as_array().unwrap_or(&empty) {
                println!(
                    "bundle  version {:<6} groups {:<16} {}",
                    b["version"],
                    b["groups"]
                        .as_array()
                        .map(|g| g
                            .iter()
                            .filter_map(|x| x.as_str())
                            .collect::<Vec<_>>()
                            .join(","))
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| "all".into()),
                    b["dir"].as_str().unwrap_or("")
                );
            }
            println!(
                "{:<16} {:<10} {:<9} {:>7} {:>10} {:>8} {:>6} {:>10}  refused",
                "node", "group", "state", "version", "last seen", "events", "lost", "packets"
            );
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            for n in st["nodes"].as_array().unwrap_or(&empty) {
                println!(
                    "{:<16} {:<10} {:<9} {:>7} {:>9.1}s {:>8} {:>6} {:>10}  {}",
                    n["name"].as_str().unwrap_or(""),
                    n["group"].as_str().unwrap_or(""),
                    if n["connected"].as_bool() == Some(true) {
                        "connected"
                    } else {
                        "offline"
                    },
                    n["version"],
                    now - n["last_seen"].as_f64().unwrap_or(0.0),
                    n["events"],
                    n["lost"],
                    n["counters"]["packets"].as_u64().unwrap_or(0),
                    n["refused"].as_str().unwrap_or("")
                );
            }
            println!("refused connections: {}", st["refused_connections"]);
            Ok(ExitCode::SUCCESS)
        }
        Some("simulate") => {
            let m = opts(&args[1..])?;
            let num = |k: &str, d: u64| -> Result<u64, Usage> {
                one(&m, k)
                    .map(|v| {
                        v.parse()
                            .map_err(|_| Usage(format!("{k} {v}: expected a number")))
                    })
                    .transpose()
                    .map(|v| v.unwrap_or(d))
            };
            let cfg = palisade::fleet::sim::SimConfig {
                manager: need(&m, "--manager")?
                    .parse()
                    .map_err(|_| Usage("--manager: expected ADDRESS:PORT".into()))?,
                server_name: need(&m, "--manager-name")?,
                ca_dir: need(&m, "--ca-dir")?.into(),
                nodes: num("--nodes", 10)? as usize,
                publish_from: need(&m, "--publish-from")?.into(),
                publish_to: need(&m, "--publish-to")?.into(),
                events: num("--events", 1000)?,
                batch: num("--batch", 100)?.max(1) as usize,
                rate: num("--rate", 0)?,
            };
            match palisade::fleet::sim::run(cfg.clone()) {
                Ok(r) => {
                    println!(
                        "nodes={} connect_s={:.2} push_first_ms={:.1} push_all_ms={:.1} events={} events_s={:.2} events_per_s={:.0} latency_ms_p50={:.2} p99={:.2} max={:.2}",
                        r.connected,
                        r.connect_s,
                        r.push_first_ms,
                        r.push_all_ms,
                        r.events,
                        r.events_s,
                        r.events as f64 / r.events_s,
                        r.latency_ms.0,
                        r.latency_ms.1,
                        r.latency_ms.2
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => fail(e),
            }
        }
        Some(a) if a.starts_with("--") => {
            let mut m = opts(args)?;
            // The settings file fills what the command line leaves out.
            if let Some(path) = one(&m, "--config") {
                match palisade::settings::load_manager(&path) {
                    Ok(st) => {
                        for (k, v) in st.to_args() {
                            if !m.contains_key(&k)
                                || k == "--sink" && args.iter().all(|a| a != "--sink")
                            {
                                m.entry(k).or_default().push(v);
                            }
                        }
                    }
                    Err(e) => return fail(e),
                }
                m.remove("--config");
            }
            let listen: std::net::SocketAddr = need(&m, "--listen")?
                .parse()
                .map_err(|_| Usage("--listen: expected ADDRESS:PORT".into()))?;
            let id = identity(
                &one(&m, "--ca").map(PathBuf::from),
                &one(&m, "--cert").map(PathBuf::from),
                &one(&m, "--key").map(PathBuf::from),
            )?;
            let mut sinks = Vec::new();
            for s in m.get("--sink").cloned().unwrap_or_default() {
                sinks.push(SinkSpec::parse(&s).map_err(Usage)?);
            }
            let bundle_key = match one(&m, "--bundle-key") {
                Some(p) => match PublicKey::load(Path::new(&p)) {
                    Ok(k) => Some(k),
                    Err(e) => return fail(e),
                },
                None => None,
            };
            let known = [
                "--listen",
                "--policy",
                "--ca",
                "--cert",
                "--key",
                "--state-dir",
                "--status",
                "--eve",
                "--sink",
                "--idle",
                "--bundle-key",
            ];
            if let Some(k) = m.keys().find(|k| !known.contains(&k.as_str())) {
                return Err(Usage(format!("manager: unknown option `{k}`")));
            }
            let cfg = ManagerConfig {
                listen,
                policy: need(&m, "--policy")?.into(),
                identity: id,
                state_dir: one(&m, "--state-dir")
                    .unwrap_or_else(|| "/var/lib/palisade-manager".into())
                    .into(),
                status: Some(one(&m, "--status").unwrap_or_else(|| "127.0.0.1:9476".into()))
                    .filter(|s| s != "off"),
                eve: Some(one(&m, "--eve").unwrap_or_else(|| "manager-eve.json".into()))
                    .filter(|s| s != "off")
                    .map(PathBuf::from),
                sinks,
                idle: Duration::from_secs(
                    one(&m, "--idle")
                        .map(|v| seconds("--idle", &v))
                        .transpose()?
                        .unwrap_or(5)
                        .max(1),
                ),
                scan: Duration::from_millis(200),
                bundle_key,
                max_connections: one(&m, "--max-connections")
                    .map(|v| {
                        v.parse()
                            .map_err(|_| Usage(format!("--max-connections {v}: expected a number")))
                    })
                    .transpose()?
                    .unwrap_or(20_000),
            };
            reopen_on_sighup();
            manager::run(cfg).map_or_else(fail, |_| Ok(ExitCode::SUCCESS))
        }
        _ => Err(Usage(MANAGER_USAGE.into())),
    }
}
