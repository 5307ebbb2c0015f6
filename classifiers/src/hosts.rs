//! Ordinary host names under a registered domain (`www.`, `mail2.`, `api-eu.`, `i9.`,
//! `us-east-1.`), written here, for training and evaluating the domain model on names as DNS
//! traffic carries them.
//!
//! The benign training list (HSTS preload) holds registered domains almost only: 0.3% of its
//! names have a subdomain, against 19% of the maltrail names and half of one DGA family's. A
//! model trained on that learns "has a subdomain" as a sign of malice, and in real traffic
//! nearly every name has one (`outlook.office365.com`, `i9.ytimg.com`). Training copies of
//! names of every class under such hosts (`domain-train --hosts`) teach that an ordinary host
//! label says nothing either way; what the name says lies in its registered label, and in a
//! subdomain part only when that is unusual (long, encoded).
//!
//! The words are split in two: every fifth is kept for evaluation ([`prefix`] with
//! `held_out`), so the card's row for names under hosts measures words never trained on.

use crate::dga::Rng;

/// Common host labels: services, roles, content, places, environments.
const WORDS: &[&str] = &[
    "www",
    "mail",
    "webmail",
    "smtp",
    "imap",
    "pop",
    "mx",
    "ns",
    "dns",
    "api",
    "cdn",
    "static",
    "assets",
    "img",
    "images",
    "media",
    "video",
    "videos",
    "login",
    "auth",
    "sso",
    "accounts",
    "account",
    "id",
    "portal",
    "vpn",
    "remote",
    "secure",
    "shop",
    "store",
    "blog",
    "news",
    "docs",
    "help",
    "support",
    "status",
    "dev",
    "test",
    "staging",
    "beta",
    "m",
    "mobile",
    "app",
    "apps",
    "download",
    "downloads",
    "update",
    "updates",
    "files",
    "cloud",
    "my",
    "admin",
    "dashboard",
    "analytics",
    "stats",
    "metrics",
    "events",
    "ads",
    "ad",
    "track",
    "pixel",
    "tags",
    "web",
    "www2",
    "en",
    "de",
    "fr",
    "es",
    "it",
    "nl",
    "jp",
    "uk",
    "us",
    "eu",
    "asia",
    "global",
    "int",
    "edge",
    "origin",
    "proxy",
    "gateway",
    "gw",
    "lb",
    "db",
    "sql",
    "git",
    "ci",
    "build",
    "jira",
    "wiki",
    "intranet",
    "extranet",
    "crm",
    "erp",
    "hr",
    "jobs",
    "careers",
    "forum",
    "community",
    "chat",
    "meet",
    "calendar",
    "drive",
    "photos",
    "music",
    "tv",
    "live",
    "stream",
    "play",
    "games",
    "search",
    "maps",
    "pay",
    "payments",
    "checkout",
    "cart",
    "billing",
    "invoice",
    "partners",
    "developer",
    "developers",
    "graph",
    "data",
    "feeds",
    "rss",
    "push",
    "notify",
    "alerts",
    "telemetry",
    "logs",
    "log",
    "backup",
    "sync",
    "time",
    "ntp",
    "ocsp",
    "crl",
    "pki",
    "cert",
    "autodiscover",
    "autoconfig",
    "lyncdiscover",
    "sip",
    "voip",
    "exchange",
    "owa",
    "outlook",
    "office",
    "teams",
    "connect",
    "link",
    "links",
    "go",
    "s",
    "t",
    "a",
    "b",
    "c",
    "u",
    "l",
    "email",
    "click",
    "open",
    "info",
    "learn",
    "training",
    "research",
    "library",
    "students",
    "staff",
    "alumni",
    "events2",
    "ftp",
    "sftp",
    "files2",
    "share",
    "box",
    "mirror",
    "mirrors",
    "repo",
    "packages",
    "registry",
    "docker",
    "k8s",
    "cluster",
    "node",
    "prod",
];

/// Region and zone names as clouds and CDNs spell them.
const REGIONS: &[&str] = &[
    "us-east-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-southeast-1",
    "ap-northeast-1",
    "sa-east-1",
    "ca-central-1",
    "westeurope",
    "eastus",
    "northeurope",
    "uksouth",
];

fn word(r: &mut Rng, held_out: bool) -> &'static str {
    // Every fifth word is the evaluation's; the rest train.
    loop {
        let i = r.below(WORDS.len() as u64) as usize;
        if (i % 5 == 4) == held_out {
            return WORDS[i];
        }
    }
}

fn digits(r: &mut Rng, n: usize, out: &mut String) {
    for _ in 0..n {
        out.push((b'0' + r.below(10) as u8) as char);
    }
}

fn alnum(r: &mut Rng, n: usize, hex: bool, out: &mut String) {
    const HEX: &[u8] = b"0123456789abcdef";
    const B36: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let set = if hex { HEX } else { B36 };
    for _ in 0..n {
        out.push(*r.pick(set) as char);
    }
}

fn label(r: &mut Rng, held_out: bool, out: &mut String) {
    let k = r.below(100);
    match k {
        // A word; www alone is a fifth of these, as it is of real lookups.
        0..=44 => {
            if !held_out && r.below(5) == 0 {
                out.push_str("www");
            } else {
                out.push_str(word(r, held_out));
            }
        }
        // A word numbered: mail2, ns1, web01, srv-03.
        45..=59 => {
            out.push_str(word(r, held_out));
            if r.below(3) == 0 {
                out.push('-');
            }
            let n = 1 + r.below(2) as usize;
            digits(r, n, out);
        }
        // Two words: api-eu, static-cdn.
        60..=69 => {
            out.push_str(word(r, held_out));
            out.push('-');
            out.push_str(word(r, held_out));
        }
        // A shard: a letter or two and digits (i9, e1234, cdn77).
        70..=81 => {
            let letters = 1 + r.below(2) as usize;
            for _ in 0..letters {
                out.push((b'a' + r.below(26) as u8) as char);
            }
            let n = 1 + r.below(4) as usize;
            digits(r, n, out);
        }
        // A region.
        82..=87 => {
            let region: &&str = r.pick(REGIONS);
            out.push_str(region)
        }
        // An identifier a service hands out: hex or base 36, 6 to 16 characters (CDN
        // distributions, tenants, hashed shards).
        88..=95 => {
            let n = 6 + r.below(11) as usize;
            let hex = r.below(2) == 0;
            alnum(r, n, hex, out);
        }
        // A video shard in the style of large CDNs: r2---sn-ab5l6nzr.
        _ => {
            out.push('r');
            digits(r, 1, out);
            out.push_str("---sn-");
            alnum(r, 8, false, out);
        }
    }
}

/// `name` under a host part ([`prefix`]).
pub fn under(r: &mut Rng, held_out: bool, name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 24);
    prefix(r, held_out, &mut s);
    s.push_str(name);
    s
}

/// Appends a host part and its dot (`www.`, `api.eu.`, `i9.`) to `out`: one label, or two a
/// quarter of the time. `held_out` draws from the words kept for evaluation.
pub fn prefix(r: &mut Rng, held_out: bool, out: &mut String) {
    let labels = if r.below(4) == 0 { 2 } else { 1 };
    for _ in 0..labels {
        label(r, held_out, out);
        out.push('.');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_valid_host_labels_and_split_their_words() {
        let mut r = Rng::new(7);
        let mut seen_train = std::collections::HashSet::new();
        let mut seen_eval = std::collections::HashSet::new();
        for i in 0..20_000 {
            let held = i % 2 == 0;
            let mut s = String::new();
            prefix(&mut r, held, &mut s);
            assert!(s.ends_with('.'), "{s}");
            for l in s.trim_end_matches('.').split('.') {
                assert!(!l.is_empty() && l.len() <= 63, "{s}");
                assert!(
                    l.bytes()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'),
                    "{s}"
                );
                assert!(!l.starts_with('-') && !l.ends_with('-'), "{s}");
                if WORDS.contains(&l) {
                    if held {
                        seen_eval.insert(l.to_string());
                    } else {
                        seen_train.insert(l.to_string());
                    }
                }
            }
        }
        // Whole-word labels never cross the split.
        assert!(seen_train.is_disjoint(&seen_eval));
        assert!(seen_train.len() > 100 && seen_eval.len() > 25);
    }
}
