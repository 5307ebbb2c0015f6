//! DNS tunnels: data carried in query names, which no single query shows. A tunnel (iodine,
//! dns2tcp, dnscat2, an implant's exfiltration) must put what it sends into the names it asks
//! for, since a resolver answers a repeated name from its cache; so its client asks for name
//! after name that was never asked before, all under the one domain whose name server the
//! tunnel's operator runs, each name as long as the encoding allows. One such name looks like a
//! random host name (the domain model may score it high, `classifiers/MODEL.md`); hundreds of
//! them, from one client under one registered domain within minutes, carrying kilobytes, are
//! what a tunnel is.
//!
//! A series is one client (the querier: the flow's initiator) and one registrable domain (the
//! Public Suffix List's, with dynamic-DNS zones as suffixes, so `x.ddns.net` is a domain of its
//! own). A DNS query's first name carries **payload bytes**: the length of its part left of the
//! registrable domain, less [`ALLOWANCE`] bytes, a host name's worth (`www`, `mail2`,
//! `r4---sn-5hne6nsr`, `selector1._domainkey` carry nothing; the 60-character labels of a
//! tunnel carry most of theirs). A name that carries payload counts in its series once per
//! window: a name asked again (retries, A and AAAA for one name, any letter case) is a repeat
//! and adds nothing. So a busy resolver's many CDN hosts, a DNS blocklist's reversed addresses
//! (`4.3.2.1.zen.spamhaus.org`), and a search list's expansions (`www.google.com.corp.example`)
//! add little or nothing, where each query of a tunnel adds tens of bytes; and names within the
//! allowance, most of them, touch no series at all. When a series' payload bytes reach
//! [`DnsTunnel::bytes`] within [`DnsTunnel::window_ns`], the query that crossed raises an alert
//! naming the client, the domain, the distinct names that carried payload, the payload and all
//! their bytes, how many of those queries (repeats included) asked for TXT, NULL, CNAME, MX, SRV
//! or ANY (the types tunnels carry data back in), the longest name, and the name that crossed.
//! The series is then quiet for [`QUIET_NS`]: a running tunnel raises one alert an hour, not
//! one per query.
//!
//! Alert only, unless [`DnsTunnel::block`] (`--dns-tunnel-block`): then the query that crossed
//! and, for the quiet hour, every later query of the series that carries payload (repeats and
//! retries included) are answered from the sinkhole, so the tunnel stops after the threshold's
//! bytes. Names within the allowance still pass (at most that many bytes each, as before the
//! alert), and so do the client's other domains: a false alarm costs the one domain's long
//! names for an hour, not the client's DNS. The blocked queries are counted and noted once a
//! minute at most (`engine::blocks`).
//!
//! Windows are counted from a series' first name: when a query comes a window or more after
//! it, the series starts over with that query. Names are told apart by a 1,024-bit set of keyed
//! hashes per series, so a new name that shares a bit with an earlier one counts as a repeat:
//! with 130 names counted (2 KiB of 16-byte payloads) that is about 6 names in 100, an
//! undercount, never an overcount.
//!
//! Names are measured as the parser writes them: a byte outside printable ASCII counts four
//! (`\xNN`), so binary labels (iodine's raw encodings) weigh more, not less; names up to the
//! parser's 1,025 characters are counted.
//!
//! Not counted: special-use names (reverse lookups, `.local`, ...: the same top-level names
//! as the domain model skips), single labels, names that are themselves a public suffix, and
//! names an intel list holds (allowed ones: a security product's lookups over DNS, such as an
//! antivirus cloud's hashes, are tunnels by design and belong on an allow list; blocked ones
//! already alerted).
//!
//! Fixed size, allocated once per engine at the first name it counts: [`SERIES`] series of 200
//! bytes (800 KiB), 4-way set-associative by a keyed hash of the client and the domain. A new
//! series replaces, in its set, one that is not quiet after an alert before one that is (so a
//! tunnel that alerted keeps its quiet hour), then the one with the fewest payload bytes in its
//! window (an expired window counts as none), the least recently active among equals: one-off
//! lookups of many domains replace each other, not a tunnel in progress. Replacing a quiet
//! series, or one that held at least a quarter of the threshold, is counted
//! (`detect.dns_tunnel_evicted` in `stats` events).
//! Nothing is allocated per packet.
//!
//! What it cannot see: DNS over HTTPS, TLS or QUIC (encrypted to the resolver); a tunnel slower
//! than the threshold per window (`--dns-tunnel` lowers it); names shorter than the allowance;
//! behind a resolver, the resolver is the one client of every name (as for NXDOMAIN bursts).

use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;

use palisade_classifiers::psl::Psl;

use super::blocks::{Blocked, Notes};

/// Series tracked at once (16 under the fuzzer, so short inputs reach eviction).
pub const SERIES: usize = if cfg!(fuzzing) { 16 } else { 4096 };
/// Ways per set.
const WAYS: usize = 4;
/// Bits of the per-series set of names seen.
const BITS: usize = 1024;
/// Bytes of each name's subdomain part that count as a host name, not payload.
pub const ALLOWANCE: usize = 24;
/// After an alert, the series raises no other for this long (one hour), and is blocked for
/// as long when [`DnsTunnel::block`] is on.
pub const QUIET_NS: i64 = 3_600_000_000_000;

/// When a series raises an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsTunnel {
    /// Payload bytes of distinct names under one domain from one client (256 to 1,000,000).
    pub bytes: u32,
    /// Within this many nanoseconds.
    pub window_ns: i64,
    /// Sinkhole the query that crossed and the series' later payload-carrying queries for
    /// [`QUIET_NS`] (in block mode; audit mode logs what would be).
    pub block: bool,
}

impl Default for DnsTunnel {
    /// 2,048 payload bytes within five minutes, alert only.
    fn default() -> Self {
        DnsTunnel {
            bytes: 2048,
            window_ns: 300_000_000_000,
            block: false,
        }
    }
}

impl DnsTunnel {
    /// What `--dns-tunnel` and the `dns_tunnel` setting take.
    pub const EXPECTED: &str = "BYTES/SECONDS (BYTES 256 to 1000000, SECONDS 1 to 86400) or off";

    /// Parses `BYTES/SECONDS` (`2048/300`); `None` for anything else or out of range.
    pub fn parse(s: &str) -> Option<DnsTunnel> {
        let (bytes, window_ns) = super::count_per_seconds(s, 256..=1_000_000u32)?;
        Some(DnsTunnel {
            bytes,
            window_ns,
            block: false,
        })
    }
}

/// False for a name too short to carry payload, whatever its split: its subdomain part is at
/// most the name less a dot and the shortest registrable domain (`a.b`). The one check most
/// lookups cost.
pub(super) fn may_carry(name: &str) -> bool {
    name.strip_suffix('.').unwrap_or(name).len() > ALLOWANCE + 4
}

/// Query types that carry data back to a tunnel's client: CNAME, NULL, MX, TXT, SRV, ANY.
fn carrier_type(qtype: u16) -> bool {
    matches!(qtype, 5 | 10 | 15 | 16 | 33 | 255)
}

#[derive(Debug, Clone, Copy)]
struct Series {
    /// Keyed fingerprint of the client and the domain (0: an empty slot).
    key: u64,
    /// Start of the window (its first name).
    start_ns: i64,
    /// Last query.
    last_ns: i64,
    /// No new alert before this time (and blocked until then, with [`DnsTunnel::block`]).
    quiet_until: i64,
    /// Its blocked queries since its last alert.
    notes: Notes,
    /// Payload bytes of the window's distinct names (their subdomain parts' bytes are these
    /// and [`ALLOWANCE`] for each).
    payload: u32,
    /// Distinct names in the window (all carrying payload: no other name reaches a series).
    names: u32,
    /// Queries in the window that carried payload, repeats included.
    queries: u32,
    /// Of those, for a type that carries data back ([`carrier_type`]).
    carrier: u32,
    /// The window's longest name.
    longest: u16,
    /// Names seen in the window (bits of their keyed hashes).
    seen: [u64; BITS / 64],
}

impl Default for Series {
    fn default() -> Self {
        Series {
            key: 0,
            start_ns: 0,
            last_ns: 0,
            quiet_until: i64::MIN,
            notes: Notes::default(),
            payload: 0,
            names: 0,
            queries: 0,
            carrier: 0,
            longest: 0,
            seen: [0; BITS / 64],
        }
    }
}

impl Series {
    /// Its window has ended at `now` (or time went back before its start).
    fn expired(&self, now: i64, window_ns: i64) -> bool {
        now < self.start_ns || now.saturating_sub(self.start_ns) >= window_ns
    }

    /// Payload bytes still in their window at `now` (0 for a window that has ended).
    fn live_payload(&self, now: i64, window_ns: i64) -> u32 {
        if self.key == 0 || self.expired(now, window_ns) {
            0
        } else {
            self.payload
        }
    }
}

/// What a series held when it crossed the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Found {
    pub payload: u32,
    pub bytes: u32,
    pub names: u32,
    pub queries: u32,
    pub carrier: u32,
    pub longest: u16,
    /// Nanoseconds from the window's first name to this one.
    pub span_ns: i64,
    /// Where the registrable domain starts in the name observed.
    pub domain_at: usize,
}

/// What a counted query did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hit {
    /// It made its series cross the threshold (outside a quiet time): alert, and block with
    /// [`DnsTunnel::block`].
    Crossed(Found),
    /// It carries payload in a series blocked after its alert ([`DnsTunnel::block`] only);
    /// where the registrable domain starts in the name observed.
    Blocked(Blocked, usize),
}

/// The table of series.
#[derive(Debug)]
pub(super) struct Tunnels {
    series: Box<[Series]>,
    keys: super::Keys,
    /// Query names counted (distinct or not).
    pub names: u64,
    /// Series replaced while they held at least a quarter of the threshold.
    pub evicted: u64,
}

impl Default for Tunnels {
    /// An empty table: the first name counted allocates its series.
    fn default() -> Self {
        Tunnels {
            series: Box::default(),
            keys: super::Keys::random(),
            names: 0,
            evicted: 0,
        }
    }
}

impl Tunnels {
    /// An empty one whose hashes are keyed by `keys` ([`super::Config::hash_seed`]).
    pub(super) fn with_keys(keys: super::Keys) -> Self {
        Tunnels {
            keys,
            ..Self::default()
        }
    }

    /// The series of `key`, taken over from its set's least valuable one when it has none.
    fn slot(&mut self, key: u64, cfg: DnsTunnel, now: i64) -> Option<&mut Series> {
        if self.series.is_empty() {
            self.series = vec![Series::default(); SERIES].into_boxed_slice();
        }
        let at = (key as usize) % (SERIES / WAYS) * WAYS;
        let set = self.series.get_mut(at..at + WAYS)?;
        let i = match set.iter().position(|s| s.key == key) {
            Some(i) => i,
            None => {
                let i = set
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, s)| {
                        let used = s.key != 0;
                        let quiet = now < s.quiet_until;
                        (used, quiet, s.live_payload(now, cfg.window_ns), s.last_ns)
                    })
                    .map_or(0, |(i, _)| i);
                let victim = &set[i];
                if now < victim.quiet_until
                    || victim.live_payload(now, cfg.window_ns) >= cfg.bytes / 4
                {
                    self.evicted += 1;
                }
                set[i] = Series {
                    key,
                    start_ns: now,
                    last_ns: now,
                    ..Series::default()
                };
                i
            }
        };
        set.get_mut(i)
    }

    /// Counts a query from `client` for `name` (lower-case ASCII, no trailing dot) of type
    /// `qtype` at `now`, and returns what the series held when this name made it cross the
    /// threshold (outside a quiet time), or, with [`DnsTunnel::block`], that the query is one
    /// to block. Names not counted (see the module's notes) return `None` at once.
    pub fn query(
        &mut self,
        cfg: DnsTunnel,
        client: IpAddr,
        name: &str,
        qtype: u16,
        now: i64,
    ) -> Option<Hit> {
        if !may_carry(name) {
            return None;
        }
        // The bundled list with dynamic-DNS zones, parsed once per process (when the first
        // engine with the detector on is made).
        let split = Psl::shared().split(name);
        // A public suffix itself, or a single label: no registrable domain to count under.
        if split.label >= split.suffix {
            return None;
        }
        let domain = name.get(split.label..)?;
        // The subdomain part (without its dot): within the allowance, a host name carrying
        // nothing, which touches no series (so ordinary lookups cost no table access and push
        // nothing out).
        let sub = split.label.saturating_sub(1);
        if sub <= ALLOWANCE {
            return None;
        }
        self.names += 1;
        let key = {
            let mut h = self.keys.build_hasher();
            client.hash(&mut h);
            domain.hash(&mut h);
            h.finish() | 1
        };
        let bit = (self.keys.hash_one(name) as usize) % BITS;
        let s = self.slot(key, cfg, now)?;
        if s.expired(now, cfg.window_ns) {
            // The window ended (or time went back): start over from this query.
            *s = Series {
                key,
                start_ns: now,
                quiet_until: s.quiet_until,
                notes: s.notes,
                ..Series::default()
            };
        }
        s.last_ns = now;
        if cfg.block && now < s.quiet_until {
            // Blocked after its alert: every payload-carrying query, repeats too.
            let b = s.notes.block(now, s.quiet_until);
            return Some(Hit::Blocked(b, split.label));
        }
        s.queries = s.queries.saturating_add(1);
        if carrier_type(qtype) {
            s.carrier = s.carrier.saturating_add(1);
        }
        let word = &mut s.seen[bit / 64];
        if *word & (1 << (bit % 64)) != 0 {
            return None;
        }
        *word |= 1 << (bit % 64);
        let before = s.payload;
        s.names = s.names.saturating_add(1);
        s.payload = s
            .payload
            .saturating_add(sub.saturating_sub(ALLOWANCE) as u32);
        s.longest = s.longest.max(name.len().min(u16::MAX as usize) as u16);
        if before >= cfg.bytes || s.payload < cfg.bytes || now < s.quiet_until {
            return None;
        }
        s.quiet_until = now.saturating_add(QUIET_NS);
        s.notes.alerted(now);
        Some(Hit::Crossed(Found {
            payload: s.payload,
            bytes: s
                .payload
                .saturating_add(s.names.saturating_mul(ALLOWANCE as u32)),
            names: s.names,
            queries: s.queries,
            carrier: s.carrier,
            longest: s.longest,
            span_ns: now - s.start_ns,
            domain_at: split.label,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::blocks::NOTE_NS;
    use std::net::Ipv4Addr;

    const S: i64 = 1_000_000_000;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    /// A tunnel-like name: `n` encoded as 48 base32-ish characters under `domain`.
    fn encoded(n: u64, domain: &str) -> String {
        let mut x = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut label = String::new();
        for _ in 0..48 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            label.push(b"abcdefghijklmnopqrstuvwxyz234567"[(x % 32) as usize] as char);
        }
        format!("{label}.t.{domain}")
    }

    /// What the series held when the query crossed the threshold.
    fn crossed(h: Option<Hit>) -> Option<Found> {
        match h {
            Some(Hit::Crossed(f)) => Some(f),
            _ => None,
        }
    }

    #[test]
    fn a_tunnel_alerts_once_when_its_payload_crosses() {
        let cfg = DnsTunnel::default();
        let mut t = Tunnels::default();
        let mut alerts = Vec::new();
        for i in 0..200u64 {
            let name = encoded(i, "example.com");
            if let Some(f) = crossed(t.query(cfg, ip(1), &name, 16, i as i64 * S / 10)) {
                alerts.push((i, f));
            }
        }
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let (i, f) = alerts[0];
        // Each name carries 48 + 2 ("t.") - 24 = 26 payload bytes. A new name whose hash bit
        // an earlier one set counts as a repeat (about 4 of 80 names, by chance: keyed at
        // random): the alert comes that many queries later, never earlier.
        let expect = (cfg.bytes as u64).div_ceil(26) - 1;
        assert!((expect..=expect + 16).contains(&i), "alert at query {i}");
        assert_eq!(f.payload, f.names * 26, "{f:?}");
        assert_eq!(f.names as u64, (cfg.bytes as u64).div_ceil(26), "{f:?}");
        assert_eq!(f.bytes - f.payload, f.names * ALLOWANCE as u32);
        assert_eq!(f.queries, i as u32 + 1);
        assert_eq!(f.carrier, f.queries, "all TXT");
        assert_eq!(f.longest as usize, 48 + 2 + "example.com".len() + 1);
        let name = encoded(i, "example.com");
        assert_eq!(&name[f.domain_at..], "example.com");
        // After the quiet hour, a tunnel still running alerts again.
        let later = 3601 * S;
        let again = (0..200u64).find_map(|k| {
            crossed(t.query(
                cfg,
                ip(1),
                &encoded(1000 + k, "example.com"),
                1,
                later + k as i64 * S / 10,
            ))
        });
        assert!(again.is_some_and(|f| f.carrier == 0));
    }

    #[test]
    fn a_blocked_tunnel_stays_blocked_for_the_hour_and_is_noted_once_a_minute() {
        let cfg = DnsTunnel {
            block: true,
            ..DnsTunnel::default()
        };
        let mut t = Tunnels::default();
        let (mut crossings, mut blocked, mut noted) = (Vec::new(), 0u32, 0u32);
        let mut notes: Vec<(i64, Blocked)> = Vec::new();
        // Ten queries a second for 4,000 s; every tenth retries the one before.
        for i in 0..40_000u64 {
            let now = i as i64 * S / 10;
            let name = encoded(if i % 10 == 9 { i - 1 } else { i }, "example.com");
            let in_block = crossings
                .last()
                .is_some_and(|&c: &i64| now > c && now < c + QUIET_NS);
            match t.query(cfg, ip(1), &name, 16, now) {
                Some(Hit::Crossed(_)) => {
                    assert!(!in_block, "no new alert while blocked");
                    crossings.push(now);
                }
                Some(Hit::Blocked(b, _)) => {
                    assert!(in_block, "blocked at {now} after {crossings:?}");
                    assert_eq!(b.left_ns, crossings.last().unwrap() + QUIET_NS - now);
                    if crossings.len() > 1 {
                        continue;
                    }
                    blocked += 1;
                    if b.note {
                        noted += b.count;
                        notes.push((now, b));
                    }
                }
                None => assert!(!in_block, "every query blocked, retries too: {i}"),
            }
            // The client's names within the allowance, its other domains, and other clients
            // of the domain pass (a name every 10 s: no tunnel of their own).
            if i % 100 != 0 {
                continue;
            }
            for (c, n) in [
                (ip(1), "www.example.com".to_string()),
                (ip(1), encoded(i, "other.example")),
                (ip(2), encoded(i, "example.com")),
            ] {
                assert!(
                    !matches!(t.query(cfg, c, &n, 1, now), Some(Hit::Blocked(..))),
                    "{n}"
                );
            }
        }
        // The tunnel crossed within seconds, and again when the hour was over.
        assert_eq!(crossings.len(), 2, "{crossings:?}");
        assert!(crossings[0] < 20 * S);
        assert!((crossings[0] + QUIET_NS..crossings[0] + QUIET_NS + 20 * S).contains(&crossings[1]));
        // Every query of the hour was blocked: 10 a second, less the crossing one.
        assert_eq!(blocked as i64, QUIET_NS / (S / 10) - 1);
        // One note a minute, at the first blocked query a minute after the one before, each
        // counting the queries since; those after the last note wait for the next one.
        assert_eq!(notes.len(), 59, "{}", notes.len());
        let mut last = crossings[0];
        for (now, b) in &notes {
            assert_eq!(b.since_ns, now - last);
            assert!((NOTE_NS..NOTE_NS + S / 10).contains(&b.since_ns), "{b:?}");
            assert_eq!(b.count as i64, b.since_ns / (S / 10));
            last = *now;
        }
        assert_eq!(
            blocked - noted,
            ((crossings[0] + QUIET_NS - last) / (S / 10) - 1) as u32
        );
    }

    #[test]
    fn repeats_and_letter_case_add_nothing() {
        let cfg = DnsTunnel::default();
        let mut t = Tunnels::default();
        let name = encoded(7, "example.net");
        for k in 0..10_000 {
            // The caller lower-cases; the same name again and again is one name.
            assert!(t.query(cfg, ip(1), &name, 1, k * S / 100).is_none());
        }
    }

    #[test]
    fn host_names_carry_no_payload() {
        let cfg = DnsTunnel {
            bytes: 256,
            window_ns: 3600 * S,
            ..DnsTunnel::default()
        };
        let mut t = Tunnels::default();
        // A resolver's CDN hosts, a blocklist's reversed addresses, a search list's expansions,
        // thousands of distinct names each, none longer than the allowance.
        for i in 0..5000u32 {
            let names = [
                format!("rr{}---sn-{:08x}.googlevideo.com", i % 10, i),
                format!("{}.{}.{}.{}.zen.spamhaus.org", i % 256, i / 256, 7, 10),
                format!("www.site{i}.com.corp.example"),
            ];
            for n in &names {
                assert!(
                    t.query(cfg, ip(2), n, 1, i as i64 * S / 10).is_none(),
                    "{n}"
                );
            }
        }
    }

    #[test]
    fn slow_tunnels_start_over_with_each_window() {
        // 26 bytes every 10 s: 780 bytes per 300 s window, never 2,048.
        let cfg = DnsTunnel::default();
        let mut t = Tunnels::default();
        for i in 0..1000u64 {
            assert!(t
                .query(
                    cfg,
                    ip(3),
                    &encoded(i, "slow.example"),
                    16,
                    i as i64 * 10 * S
                )
                .is_none());
        }
        // A lower threshold, or a longer window, catches it.
        let cfg = DnsTunnel {
            bytes: 1024,
            window_ns: 3600 * S,
            ..DnsTunnel::default()
        };
        let mut t = Tunnels::default();
        let hit = (0..1000u64)
            .find(|&i| {
                t.query(
                    cfg,
                    ip(3),
                    &encoded(i, "slow.example"),
                    16,
                    i as i64 * 10 * S,
                )
                .is_some()
            })
            .unwrap();
        // The 40th name counted brings 1,040 bytes (a collision may delay it, never advance it).
        assert!((39..=39 + 12).contains(&hit), "{hit}");
    }

    #[test]
    fn clients_and_domains_are_apart() {
        let cfg = DnsTunnel::default();
        let mut t = Tunnels::default();
        // Half the payload from each of two clients, and from one client under two domains.
        for i in 0..40u64 {
            let now = i as i64 * S;
            assert!(t
                .query(cfg, ip(4), &encoded(i, "a.example"), 1, now)
                .is_none());
            assert!(t
                .query(cfg, ip(5), &encoded(i, "a.example"), 1, now)
                .is_none());
            assert!(t
                .query(cfg, ip(4), &encoded(i, "b.example"), 1, now)
                .is_none());
        }
    }

    #[test]
    fn what_is_not_counted() {
        let cfg = DnsTunnel {
            bytes: 256,
            window_ns: 3600 * S,
            ..DnsTunnel::default()
        };
        let mut t = Tunnels::default();
        for n in ["com", "co.uk", "example.com", "localhost", "x"] {
            assert!(t.query(cfg, ip(6), n, 16, 0).is_none());
        }
        assert_eq!(t.names, 0);
        // Under a dynamic-DNS zone, the host is the domain: its subdomains count under it.
        let hit = (0..100u64)
            .find_map(|i| crossed(t.query(cfg, ip(6), &encoded(i, "x.ddns.net"), 10, 0)));
        let f = hit.unwrap();
        assert!(f.payload >= 256);
    }

    #[test]
    fn hostile_times_do_not_panic_or_alert_wrongly() {
        let cfg = DnsTunnel::default();
        let mut t = Tunnels::default();
        for (i, now) in [i64::MIN, i64::MAX, 0, -5, i64::MAX - 1, i64::MIN + 1]
            .into_iter()
            .cycle()
            .take(600)
            .enumerate()
        {
            // Time jumping back and forth starts the window over each time: never enough.
            assert!(t
                .query(cfg, ip(7), &encoded(i as u64, "x.example"), 16, now)
                .is_none());
        }
        // A blocked series whose time jumps: blocked until its hour ends, never noted twice
        // within a minute of its own clock, no overflow.
        let cfg = DnsTunnel {
            bytes: 256,
            block: true,
            ..DnsTunnel::default()
        };
        let mut t = Tunnels::default();
        let crossed_at = (0..100u64)
            .find(|&i| {
                crossed(t.query(cfg, ip(7), &encoded(i, "y.example"), 16, i as i64)).is_some()
            })
            .unwrap();
        for (i, now) in [0, 1, i64::MAX, i64::MIN, 5, i64::MAX - 1, -S, 2 * NOTE_NS]
            .into_iter()
            .cycle()
            .take(800)
            .enumerate()
        {
            let h = t.query(cfg, ip(7), &encoded(1000 + i as u64, "y.example"), 16, now);
            if let Some(Hit::Blocked(b, _)) = h {
                assert!(now < crossed_at as i64 + QUIET_NS);
                assert!(b.since_ns >= 0 && b.left_ns > 0, "{b:?}");
                assert!(!b.note || b.since_ns >= NOTE_NS, "{b:?}");
            }
        }
    }

    #[test]
    fn one_off_lookups_do_not_push_a_tunnel_out() {
        let cfg = DnsTunnel::default();
        let mut t = Tunnels::default();
        let mut alerted = false;
        let mut n = 0u64;
        for i in 0..120u64 {
            let now = i as i64 * S;
            alerted |= t
                .query(cfg, ip(8), &encoded(i, "tun.example"), 16, now)
                .is_some();
            // Between two tunnel queries, 100 clients look up 10 domains each once, names a little
            // longer than the allowance (7 payload bytes each), so each makes a series.
            for _ in 0..1000 {
                n += 1;
                let c = IpAddr::V4(Ipv4Addr::from(0x0a01_0000 + (n % 100) as u32));
                let name = format!("host-{n:026}.d{n}.example");
                assert!(t.query(cfg, c, &name, 1, now).is_none());
            }
        }
        assert!(
            alerted,
            "the tunnel's series survived 120,000 one-off lookups"
        );
        assert_eq!(t.evicted, 0, "none of them held a quarter of the threshold");
    }

    #[test]
    fn a_tunnel_that_alerted_stays_quiet_through_churn() {
        // A tunnel with long names, a query every 7 s for half an hour: its windows end between
        // two of its queries and start over at the next; between two of its queries 2,048
        // one-off lookups with a little payload each pass (two per set), spread over the gap. It alerts once: its series,
        // quiet after the alert, is not the one replaced, even while its window has ended and
        // holds no payload.
        let cfg = DnsTunnel::default();
        let mut t = Tunnels::default();
        let long = |i: u64| {
            let e = encoded(i, "example.org");
            format!("{}.{}.{}", &e[..40], &e[..40], e)
        };
        let mut alerts = 0;
        let mut n = 0u64;
        for i in 0..258u64 {
            let now = i as i64 * 7 * S;
            alerts += t.query(cfg, ip(9), &long(i), 16, now).is_some() as usize;
            for k in 0..2048 {
                n += 1;
                let c = IpAddr::V4(Ipv4Addr::from(0x0a02_0000 + (n % 4096) as u32));
                let name = format!("host-{n:026}.d{n}.example");
                let at = now + (k as i64 + 1) * 7 * S / 2049;
                assert!(t.query(cfg, c, &name, 1, at).is_none());
            }
        }
        assert_eq!(alerts, 1);
        assert_eq!(t.evicted, 0);
    }

    #[test]
    fn parse_and_size() {
        assert_eq!(DnsTunnel::parse("2048/300"), Some(DnsTunnel::default()));
        for bad in [
            "255/300",
            "1000001/1",
            "2048/0",
            "2048/86401",
            "2048",
            "x/1",
            "2048/300/1",
        ] {
            assert_eq!(DnsTunnel::parse(bad), None, "{bad}");
        }
        assert!(
            std::mem::size_of::<Series>() <= 200,
            "{}",
            std::mem::size_of::<Series>()
        );
        assert_eq!(
            Tunnels::default().series.len(),
            0,
            "allocated at the first name"
        );
    }
}
