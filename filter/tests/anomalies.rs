//! Malformed packets from tcpdump's regression captures become anomaly events (never panics),
//! and the traffic around them is still processed.

#![allow(clippy::unwrap_used)]

mod common;

use palisade::engine::Config;
use palisade_rules::IntelSet;

#[test]
fn tcpdump_bad_captures_raise_named_anomalies() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let dir = data.join("pcaps/tcpdump");
    for (file, anomaly) in [
        (
            "ipv4_invalid_hdr_length.pcap",
            "decoder.ipv4.hlen_too_small",
        ),
        ("ipv4_invalid_total_length.pcap", "decoder.ipv4.trunc_pkt"),
        ("ipv6-bad-version.pcap", "decoder.ip.invalid_version"),
        ("ipv6_invalid_length.pcap", "decoder.ipv6.trunc_pkt"),
        ("heapoverflow-tcp_print.pcap", "decoder.ipv4.trunc_pkt"),
        ("esp_truncated.pcap", "decoder.ipv4.trunc_pkt"),
        ("dns-badlabel.pcap", "dns.malformed_data"),
        ("dns_fwdptr.pcap", "dns.malformed_data"),
    ] {
        let (e, s) = common::replay_files(&[dir.join(file)], Config::default(), IntelSet::empty());
        let evs = common::events(&s);
        let found = evs
            .iter()
            .any(|v| v["event_type"] == "anomaly" && v["anomaly"]["event"] == anomaly);
        assert!(
            found,
            "{file}: no {anomaly} event; anomalies: {:?}",
            e.stats.anomalies
        );
        assert!(
            e.stats
                .anomalies
                .iter()
                .any(|(n, c)| *n == anomaly && *c > 0),
            "{file}: counter"
        );
        let stats = evs.iter().rfind(|v| v["event_type"] == "stats").unwrap();
        assert!(
            stats["stats"]["anomaly"][anomaly].as_u64().unwrap() > 0,
            "{file}: stats event"
        );
    }
}
