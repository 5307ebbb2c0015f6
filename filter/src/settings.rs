//! The settings file (`/etc/palisade/palisade.toml`): every option of `palisade inline`, with
//! command-line flags taking precedence. Unknown keys and bad values are errors that name the
//! file, line and column. `systemd/palisade.toml` documents every key.

use serde::Deserialize;

/// The `[inline]` and `[intel]` settings; every field is optional.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Block or audit.
    pub mode: Option<String>,
    /// Queues, `N` or `N:M`.
    pub queue: Option<String>,
    /// Eve output path, or `-`.
    pub eve: Option<String>,
    /// `nxdomain` or an address.
    pub sinkhole: Option<String>,
    /// Reset blocked TCP connections (true) or drop silently (false).
    pub reset: Option<bool>,
    /// `open` or `closed` (the queue's fail-open flag).
    pub fail: Option<String>,
    /// Seconds between `stats` events.
    pub stats_interval: Option<u64>,
    /// Metrics listen address, or `off`.
    pub metrics: Option<String>,
    /// Memory budget in MiB.
    pub memcap_mib: Option<usize>,
    /// Seed of the detectors' table keys (`--hash-seed`); absent: random for each worker.
    pub hash_seed: Option<u64>,
    /// Where the daemon writes its process id.
    pub pidfile: Option<String>,
    /// QUIC policy: allow, downgrade-unknown, block or off.
    pub quic: Option<String>,
    /// Encrypted ClientHello policy: allow, audit or block.
    pub ech: Option<String>,
    /// Domain model: `bundled` (default), `off`, or a safetensors file.
    pub name_model: Option<String>,
    /// Alert when a name scores at or above this (0..1).
    pub name_alert: Option<f32>,
    /// Block when a name scores at or above this (0..1); absent: never.
    pub name_block: Option<f32>,
    /// Log scores only.
    pub name_shadow: Option<bool>,
    /// NXDOMAIN bursts: `COUNT/SECONDS` (default `4/300`) or `off`.
    pub name_burst: Option<String>,
    /// Block a bursting client's suspicious names for an hour (`--name-burst-block`).
    pub name_burst_block: Option<bool>,
    /// Beaconing: `COUNT/SECONDS` (default `16/10`) or `off`.
    pub beacon: Option<String>,
    /// Block alerted beacons' later connections for an hour (`--beacon-block`).
    pub beacon_block: Option<bool>,
    /// DNS tunnels: `BYTES/SECONDS` (default `2048/300`) or `off`.
    pub dns_tunnel: Option<String>,
    /// Sinkhole alerted DNS tunnels' later queries for an hour (`--dns-tunnel-block`).
    pub dns_tunnel_block: Option<bool>,
    /// Flow model: `bundled` (default), `off`, or a safetensors file.
    pub flow_model: Option<String>,
    /// Alert when a flow scores at or above this (0..1); absent: scores are only logged.
    pub flow_alert: Option<f32>,
    /// Drop the rest of a flow scoring at or above this (0..1); absent: never.
    pub flow_block: Option<f32>,
    /// Intel lists.
    #[serde(default)]
    pub intel: Vec<IntelList>,
    /// Suricata rule files or directories.
    #[serde(default)]
    pub rules: Vec<String>,
    /// Event sinks besides the eve file (`syslog`, `unix-dgram:PATH`, `unix-stream:PATH`,
    /// `redis://HOST:PORT/MODE/KEY`, `file:PATH`).
    #[serde(default)]
    pub sinks: Vec<String>,
    /// The fleet manager, `ADDRESS:PORT` (absent: no manager).
    pub manager: Option<String>,
    /// The name the manager's certificate carries (default: its address).
    pub manager_name: Option<String>,
    /// The operator's CA certificate (PEM).
    pub ca: Option<String>,
    /// This node's certificate (PEM).
    pub cert: Option<String>,
    /// This node's private key (PEM).
    pub key: Option<String>,
    /// The operator's bundle-signing public key (PEM).
    pub bundle_key: Option<String>,
    /// Rollout group.
    pub group: Option<String>,
    /// Where the last good bundle and the event spool live.
    pub state_dir: Option<String>,
    /// Event spool cap, MiB.
    pub spool_max_mib: Option<u64>,
    /// Rule variables (`HOME_NET = "[10.0.0.0/8]"`, `HTTP_PORTS = "[80,8080]"`).
    #[serde(default)]
    pub vars: std::collections::BTreeMap<String, String>,
}

/// One list and its action.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IntelList {
    /// Path of the list.
    pub path: String,
    /// `block` (default), `audit` or `allow`.
    #[serde(default = "block")]
    pub action: String,
}

fn block() -> String {
    "block".into()
}

/// Parses settings text; `name` is used in error messages.
pub fn parse(name: &str, text: &str) -> Result<Settings, String> {
    let s: Settings = toml::from_str(text).map_err(|e| locate(name, text, &e))?;
    // Values are checked here so a bad one names its line too.
    let check = |key: &str, ok: bool, what: &str| -> Result<(), String> {
        if ok {
            Ok(())
        } else {
            let line = text
                .lines()
                .position(|l| {
                    l.trim_start()
                        .strip_prefix(key)
                        .is_some_and(|r| r.trim_start().starts_with('='))
                })
                .map_or(0, |i| i + 1);
            Err(format!("{name}:{line}: `{key}`: expected {what}"))
        }
    };
    check(
        "mode",
        s.mode
            .as_deref()
            .is_none_or(|m| m == "block" || m == "audit"),
        "block or audit",
    )?;
    check(
        "fail",
        s.fail
            .as_deref()
            .is_none_or(|m| m == "open" || m == "closed"),
        "open or closed",
    )?;
    check(
        "quic",
        s.quic
            .as_deref()
            .is_none_or(|m| ["allow", "downgrade-unknown", "block", "off"].contains(&m)),
        "allow, downgrade-unknown, block or off",
    )?;
    check(
        "ech",
        s.ech
            .as_deref()
            .is_none_or(|m| ["allow", "audit", "block"].contains(&m)),
        "allow, audit or block",
    )?;
    check(
        "name_burst",
        s.name_burst
            .as_deref()
            .is_none_or(|b| b == "off" || crate::engine::Burst::parse(b).is_some()),
        crate::engine::Burst::EXPECTED,
    )?;
    check(
        "beacon",
        s.beacon
            .as_deref()
            .is_none_or(|b| b == "off" || crate::engine::Beacon::parse(b).is_some()),
        crate::engine::Beacon::EXPECTED,
    )?;
    check(
        "dns_tunnel",
        s.dns_tunnel
            .as_deref()
            .is_none_or(|b| b == "off" || crate::engine::DnsTunnel::parse(b).is_some()),
        crate::engine::DnsTunnel::EXPECTED,
    )?;
    // A detector's blocking needs the detector.
    for (detector, setting, block) in [
        ("name_burst", &s.name_burst, s.name_burst_block),
        ("beacon", &s.beacon, s.beacon_block),
        ("dns_tunnel", &s.dns_tunnel, s.dns_tunnel_block),
    ] {
        check(
            &format!("{detector}_block"),
            block != Some(true) || setting.as_deref() != Some("off"),
            &format!("false while `{detector}` is off"),
        )?;
    }
    check(
        "memcap_mib",
        s.memcap_mib.is_none_or(|m| m >= 16),
        "at least 16",
    )?;
    for (key, v) in [
        ("name_alert", s.name_alert),
        ("name_block", s.name_block),
        ("flow_alert", s.flow_alert),
        ("flow_block", s.flow_block),
    ] {
        check(
            key,
            v.is_none_or(|x| (0.0..=1.0).contains(&x)),
            "a score between 0 and 1",
        )?;
    }
    for k in &s.sinks {
        if let Err(e) = crate::sinks::SinkSpec::parse(k) {
            check("sinks", false, &e)?;
        }
    }
    for l in &s.intel {
        check(
            "action",
            ["block", "audit", "allow"].contains(&l.action.as_str()),
            "block, audit or allow",
        )?;
    }
    Ok(s)
}

pub(crate) fn locate(name: &str, text: &str, e: &toml::de::Error) -> String {
    let msg = e.message();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("{name}:{line}:{col}: {msg}")
        }
        None => format!("{name}: {msg}"),
    }
}

/// The manager's settings file (`/etc/palisade/manager.toml`): every option of
/// `palisade manager`, command-line flags taking precedence. `systemd/manager.toml` documents
/// every key.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ManagerSettings {
    /// QUIC listen address.
    pub listen: Option<String>,
    /// The signed bundles' directory.
    pub policy: Option<String>,
    /// The operator's CA certificate.
    pub ca: Option<String>,
    /// The manager's certificate.
    pub cert: Option<String>,
    /// Its private key.
    pub key: Option<String>,
    /// Where the nodes' event positions are kept.
    pub state_dir: Option<String>,
    /// Status listen address, or `off`.
    pub status: Option<String>,
    /// Eve file for the nodes' events, or `off`.
    pub eve: Option<String>,
    /// Further event sinks.
    #[serde(default)]
    pub sinks: Vec<String>,
    /// Connection idle timeout, seconds.
    pub idle: Option<u64>,
    /// When given, bundles that do not verify are not served.
    pub bundle_key: Option<String>,
    /// Most connections at once.
    pub max_connections: Option<u64>,
}

impl ManagerSettings {
    /// The settings as `palisade manager` flags.
    pub fn to_args(&self) -> Vec<(String, String)> {
        let mut a = Vec::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                a.push((k.to_string(), v));
            }
        };
        put("--listen", self.listen.clone());
        put("--policy", self.policy.clone());
        put("--ca", self.ca.clone());
        put("--cert", self.cert.clone());
        put("--key", self.key.clone());
        put("--state-dir", self.state_dir.clone());
        put("--status", self.status.clone());
        put("--eve", self.eve.clone());
        put("--idle", self.idle.map(|v| v.to_string()));
        put("--bundle-key", self.bundle_key.clone());
        put(
            "--max-connections",
            self.max_connections.map(|v| v.to_string()),
        );
        for k in &self.sinks {
            a.push(("--sink".into(), k.clone()));
        }
        a
    }
}

/// Reads and parses a manager settings file; errors name the file, line and column.
pub fn load_manager(path: &str) -> Result<ManagerSettings, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let s: ManagerSettings = toml::from_str(&text).map_err(|e| locate(path, &text, &e))?;
    for k in &s.sinks {
        if let Err(e) = crate::sinks::SinkSpec::parse(k) {
            let line = text
                .lines()
                .position(|l| l.contains(k.as_str()))
                .map_or(0, |i| i + 1);
            return Err(format!("{path}:{line}: {e}"));
        }
    }
    Ok(s)
}

/// Reads and parses a settings file.
pub fn load(path: &str) -> Result<Settings, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    parse(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_manager_example_parses() {
        let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../systemd/manager.toml");
        let s = load_manager(p).unwrap();
        assert_eq!(s.listen.as_deref(), Some("[::]:7790"));
        assert_eq!(s.policy.as_deref(), Some("/etc/palisade/bundles"));
        assert!(s.to_args().iter().any(|(k, _)| k == "--cert"));
    }

    #[test]
    fn documented_example_parses_and_errors_are_located() {
        let example = include_str!("../../systemd/palisade.toml");
        let s = parse("palisade.toml", example).unwrap();
        assert_eq!(s.mode.as_deref(), Some("block"));
        assert_eq!(s.intel.len(), 2);
        assert_eq!(s.rules, ["/etc/palisade/rules"]);
        assert_eq!(
            s.vars.get("HTTP_PORTS").map(String::as_str),
            Some("[80,8080]")
        );
        assert_eq!(s.name_model.as_deref(), Some("bundled"));
        assert_eq!(s.name_alert, Some(0.9995));
        assert_eq!(s.name_block, None);
        assert_eq!(s.name_burst.as_deref(), Some("4/300"));
        let e = parse("y.toml", "mode = \"audit\"\nname_burst = \"9/60\"\n").unwrap_err();
        assert_eq!(
            e,
            "y.toml:2: `name_burst`: expected COUNT/SECONDS (COUNT 2 to 8, SECONDS 1 to 86400) or off"
        );
        assert_eq!(s.beacon.as_deref(), Some("16/10"));
        let e = parse("y.toml", "mode = \"audit\"\n\nbeacon = \"3/10\"\n").unwrap_err();
        assert_eq!(
            e,
            "y.toml:3: `beacon`: expected COUNT/SECONDS (COUNT 4 to 32, SECONDS 1 to 86400) or off"
        );
        assert_eq!(s.dns_tunnel.as_deref(), Some("2048/300"));
        let e = parse("y.toml", "mode = \"audit\"\ndns_tunnel = \"100/300\"\n").unwrap_err();
        assert_eq!(
            e,
            "y.toml:2: `dns_tunnel`: expected BYTES/SECONDS (BYTES 256 to 1000000, SECONDS 1 to 86400) or off"
        );
        assert_eq!(s.dns_tunnel_block, Some(false));
        assert_eq!(s.beacon_block, Some(false));
        assert_eq!(s.name_burst_block, Some(false));
        let e = parse("y.toml", "name_burst_block = true\nname_burst = \"off\"\n").unwrap_err();
        assert_eq!(
            e,
            "y.toml:1: `name_burst_block`: expected false while `name_burst` is off"
        );
        let e = parse("y.toml", "beacon = \"off\"\n\nbeacon_block = true\n").unwrap_err();
        assert_eq!(
            e,
            "y.toml:3: `beacon_block`: expected false while `beacon` is off"
        );
        let e = parse(
            "y.toml",
            "dns_tunnel_block = true\nmode = \"audit\"\ndns_tunnel = \"off\"\n",
        )
        .unwrap_err();
        assert_eq!(
            e,
            "y.toml:1: `dns_tunnel_block`: expected false while `dns_tunnel` is off"
        );
        let e = parse("y.toml", "mode = \"audit\"\nname_block = 1.5\n").unwrap_err();
        assert_eq!(
            e,
            "y.toml:2: `name_block`: expected a score between 0 and 1"
        );
        let e = parse("x.toml", "mode = \"block\"\nqueue = \"0\"\nbogus = 1\n").unwrap_err();
        assert!(e.starts_with("x.toml:3:1: unknown field `bogus`"), "{e}");
        let e = parse("x.toml", "mode = \"loud\"\n").unwrap_err();
        assert_eq!(e, "x.toml:1: `mode`: expected block or audit");
        let e = parse("x.toml", "reset = \"yes\"\n").unwrap_err();
        assert!(e.starts_with("x.toml:1:9: invalid type"), "{e}");
        let e = parse("x.toml", "[[intel]]\npath = \"a\"\naction = \"nuke\"\n").unwrap_err();
        assert_eq!(e, "x.toml:3: `action`: expected block, audit or allow");
    }
}
