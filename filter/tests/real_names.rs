//! The domain model on the names of real traffic: every capture in `../shared/data/pcaps`
//! replayed with the shipped model and NXDOMAIN bursts on (the defaults of `palisade replay`).
//!
//! Those captures hold ordinary traffic (Google's CDNs, Signal, Windows and mDNS lookups, reverse
//! lookups) and one DNS tunnel (suricata-verify's `dns-bug-1158`, queries under
//! `srv.tunnel.com`). The model alerts on the tunnel and on nothing else: models trained without
//! names under host parts alerted on `i9.ytimg.com`, `yt3.ggpht.com`, googlevideo shards and
//! reverse lookups here (`classifiers/MODEL.md`, "Names as traffic carries them").
#![allow(clippy::unwrap_used)]

mod common;

use palisade::engine::{Config, Engine, NameScoring};
use palisade_rules::IntelSet;

#[test]
fn real_captures_raise_model_alerts_on_the_dns_tunnel_only() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let files = common::captures(&data.join("pcaps"));
    assert!(files.len() > 100, "{} captures", files.len());
    let mut tunnel = 0;
    let mut other = Vec::new();
    let mut bursts = 0;
    let mut scored = 0;
    for f in &files {
        let mut e = Engine::new(Config::default(), IntelSet::default());
        e.set_names(Some(NameScoring::bundled()));
        let (_, s) = common::replay_engine(e, std::slice::from_ref(f));
        for ev in common::events(&s) {
            if ev["palisade"]["name_score"].is_number() {
                scored += 1;
            }
            if ev["event_type"] != "alert" {
                continue;
            }
            match ev["alert"]["signature_id"].as_u64() {
                Some(9_100_020) => {
                    let name = ev["palisade"]["value"].as_str().unwrap_or("").to_string();
                    let in_tunnel = f.to_string_lossy().contains("dns__bug-1158");
                    if in_tunnel && name.to_ascii_lowercase().ends_with(".srv.tunnel.com") {
                        tunnel += 1;
                    } else {
                        other.push(format!("{}: {name}", f.display()));
                    }
                }
                Some(9_100_022) => bursts += 1,
                _ => {}
            }
        }
    }
    // The captures carry names enough for the claim to mean something.
    assert!(scored > 300, "{scored} events with a name score");
    assert!(
        other.is_empty(),
        "model alerts on ordinary names: {other:#?}"
    );
    assert_eq!(bursts, 0, "NXDOMAIN bursts on real captures");
    // The tunnel's 22 distinct queries: nearly all alert.
    assert!(tunnel >= 18, "{tunnel} tunnel queries alerted");
}
