//! NXDOMAIN bursts: the context a single name lacks. A host running a domain generation
//! algorithm asks for many names its operators never registered, so its resolver answers
//! NXDOMAIN, for names in as many different registered domains, and those names look generated.
//! One such name can look like a benign one (the domain model's 1-in-10,000 point lets half of
//! Kraken's six- to twelve-letter names through, `classifiers/MODEL.md`); several from one
//! client within minutes, each failing to resolve, rarely do.
//!
//! For every DNS response with rcode NXDOMAIN whose query name the domain model scores at or
//! above its 1-in-1,000 point (the model file's `threshold_fpr_1e-3`), the client (the flow's
//! initiator) gets an entry: the registrable domain's fingerprint, the time, the score and the
//! name's first [`NAME_BYTES`] bytes. When a client holds [`Burst::count`] such entries for
//! distinct registrable domains within [`Burst::window_ns`], an alert names the client, the
//! count, the window and every name with its score; the client is then quiet for one window
//! (its entries still counted), so a running DGA gives one alert per window, not one per name.
//! The alert itself blocks nothing: its names already failed to resolve. With [`Burst::block`]
//! (`--name-burst-block`) the client is then blocked for [`BLOCK_NS`]: its later names (DNS
//! queries, TLS and QUIC SNI, HTTP Host) that score at or above the same 1-in-1,000 point are
//! blocked as a listed name is (sinkholed, reset, dropped), so the generated name its operators
//! did register, whichever it is, does not resolve; names below that point, and other clients,
//! pass. Blocked names are counted and noted once a minute at most (`engine::blocks`).
//!
//! Fixed size, allocated once per engine when name scoring is on: [`CLIENTS`] clients of
//! [`PER_CLIENT`] entries each (3 MiB), 4-way set-associative by a keyed hash of the client
//! address; a new client replaces the one of its set that was quiet longest, a blocked one
//! only when all four are (counted, and reported as `detect.name_burst_evicted` in `stats`
//! events).
//! Within a client, a new entry replaces the oldest. Nothing is allocated per packet.
//!
//! Where it sees no clients it sees nothing: a sensor between a resolver and the Internet sees
//! the resolver as the one client of every name (see the README's limits).

use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr};

use palisade_classifiers::psl::Psl;

use super::blocks::{Blocked, Notes};

/// Clients tracked at once (16 under the fuzzer, so short inputs reach eviction).
pub const CLIENTS: usize = if cfg!(fuzzing) { 16 } else { 4096 };
/// Ways per set of clients.
const WAYS: usize = 4;
/// Entries kept per client (so at most this many names count toward a burst).
pub const PER_CLIENT: usize = 8;
/// Bytes of each name kept for the alert.
pub const NAME_BYTES: usize = 64;
/// How long a client stays blocked after its burst, with [`Burst::block`] (one hour).
pub const BLOCK_NS: i64 = 3_600_000_000_000;

/// When a burst raises an alert.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Burst {
    /// Suspicious NXDOMAIN names, in distinct registrable domains, from one client (2 to
    /// [`PER_CLIENT`]).
    pub count: u8,
    /// Within this many nanoseconds.
    pub window_ns: i64,
    /// Block the client's later suspicious names for [`BLOCK_NS`] (block mode; audit mode
    /// logs what would be).
    pub block: bool,
}

impl Default for Burst {
    /// Four names within five minutes, alert only.
    fn default() -> Self {
        Burst {
            count: 4,
            window_ns: 300_000_000_000,
            block: false,
        }
    }
}

impl Burst {
    /// What `--name-burst` and the `name_burst` setting take.
    pub const EXPECTED: &str = "COUNT/SECONDS (COUNT 2 to 8, SECONDS 1 to 86400) or off";

    /// Parses `COUNT/SECONDS` (`4/300`); `None` for anything else or out of range (count 2 to
    /// [`PER_CLIENT`], 1 s to one day).
    pub fn parse(s: &str) -> Option<Burst> {
        let (count, window_ns) = super::count_per_seconds(s, 2..=PER_CLIENT as u8)?;
        Some(Burst {
            count,
            window_ns,
            block: false,
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Fingerprint of the registrable domain (0: empty).
    fp: u64,
    at_ns: i64,
    score: f32,
    len: u8,
    name: [u8; NAME_BYTES],
}

impl Default for Entry {
    fn default() -> Self {
        Entry {
            fp: 0,
            at_ns: 0,
            score: 0.0,
            len: 0,
            name: [0; NAME_BYTES],
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Client {
    ip: IpAddr,
    /// When it last got an entry (the longest quiet client of a set is replaced first).
    last_ns: i64,
    /// False: an empty slot.
    used: bool,
    /// No new alert before this time.
    quiet_until: i64,
    /// Its suspicious names are blocked until then ([`Burst::block`]).
    blocked_until: i64,
    /// Its blocked names since its last alert.
    notes: Notes,
    entries: [Entry; PER_CLIENT],
}

impl Default for Client {
    fn default() -> Self {
        Client {
            ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            last_ns: 0,
            used: false,
            quiet_until: i64::MIN,
            blocked_until: i64::MIN,
            notes: Notes::default(),
            entries: [Entry::default(); PER_CLIENT],
        }
    }
}

/// What [`Bursts::observe`] found: the entries of a burst, oldest first.
#[derive(Debug, Default)]
pub(super) struct Found {
    entries: [Entry; PER_CLIENT],
    pub n: usize,
}

impl Found {
    /// The burst's names (as kept: their first [`NAME_BYTES`] bytes) and scores.
    pub fn iter(&self) -> impl Iterator<Item = (&str, f32)> {
        self.entries[..self.n].iter().map(|e| {
            (
                std::str::from_utf8(&e.name[..e.len as usize]).unwrap_or("?"),
                e.score,
            )
        })
    }
}

/// The table of clients.
#[derive(Debug)]
pub(super) struct Bursts {
    clients: Box<[Client]>,
    keys: super::Keys,
    /// A name counts at or above this score (the model's 1e-3 point; infinite: no model).
    pub score: f32,
    /// Clients replaced while they still held entries.
    pub evicted: u64,
}

impl Default for Bursts {
    /// An empty table: [`Bursts::allocate`] gives it its clients when bursts are on.
    fn default() -> Self {
        Bursts {
            clients: Box::default(),
            keys: super::Keys::random(),
            score: f32::INFINITY,
            evicted: 0,
        }
    }
}

impl Bursts {
    /// An empty one whose hashes are keyed by `keys` ([`super::Config::hash_seed`]).
    pub(super) fn with_keys(keys: super::Keys) -> Self {
        Bursts {
            keys,
            ..Self::default()
        }
    }

    /// Sizes the table, once (an engine without name scoring or bursts never does).
    pub fn allocate(&mut self) {
        if self.clients.is_empty() {
            self.clients = vec![Client::default(); CLIENTS].into_boxed_slice();
        }
    }

    /// Forgets every client (the model changed, so the scores did).
    pub fn clear(&mut self) {
        for c in self.clients.iter_mut() {
            c.used = false;
        }
    }

    /// The first slot of the client's set.
    fn set_of(&self, ip: IpAddr) -> usize {
        (self.keys.hash_one(ip) as usize) % (CLIENTS / WAYS) * WAYS
    }

    /// The client's slot, taken over from the set's longest-quiet client when it has none (a
    /// blocked one only when all are).
    fn slot(&mut self, ip: IpAddr, now: i64) -> Option<&mut Client> {
        let at = self.set_of(ip);
        let set = self.clients.get_mut(at..at + WAYS)?;
        let i = match set.iter().position(|c| c.used && c.ip == ip) {
            Some(i) => i,
            None => {
                let i = set
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, c)| {
                        if c.used {
                            (now < c.blocked_until, c.last_ns)
                        } else {
                            (false, i64::MIN)
                        }
                    })
                    .map_or(0, |(i, _)| i);
                if set[i].used {
                    self.evicted += 1;
                }
                set[i] = Client {
                    ip,
                    used: true,
                    ..Client::default()
                };
                i
            }
        };
        set.get_mut(i)
    }

    /// Records an NXDOMAIN answer to `client` for `name` (lower-case, no trailing dot) scored
    /// `score` (already at or above the burst threshold) at `now`, and returns the burst when
    /// this entry completes one.
    pub fn observe(
        &mut self,
        psl: &Psl,
        cfg: Burst,
        client: IpAddr,
        name: &str,
        score: f32,
        now: i64,
    ) -> Option<Found> {
        let split = psl.split(name);
        let reg = name.get(split.label..).unwrap_or(name);
        let fp = self.keys.hash_one(reg) | 1;
        let c = self.slot(client, now)?;
        c.last_ns = now;
        // The same registrable domain again refreshes its entry; otherwise the oldest goes.
        let i = match c.entries.iter().position(|e| e.fp == fp) {
            Some(i) => i,
            None => c
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| if e.fp == 0 { i64::MIN } else { e.at_ns })
                .map_or(0, |(i, _)| i),
        };
        let e = c.entries.get_mut(i)?;
        let b = name.as_bytes();
        let len = b.len().min(NAME_BYTES);
        e.fp = fp;
        e.at_ns = now;
        e.score = score;
        e.len = len as u8;
        e.name[..len].copy_from_slice(&b[..len]);
        // The entries within the window.
        let since = now.saturating_sub(cfg.window_ns);
        let mut live = [0usize; PER_CLIENT];
        let mut n = 0;
        for (i, e) in c.entries.iter().enumerate() {
            if e.fp != 0 && e.at_ns > since {
                live[n] = i;
                n += 1;
            }
        }
        if n < cfg.count as usize || now < c.quiet_until {
            return None;
        }
        c.quiet_until = now.saturating_add(cfg.window_ns);
        if cfg.block {
            c.blocked_until = now.saturating_add(BLOCK_NS);
            c.notes.alerted(now);
        }
        let live = &mut live[..n];
        // Oldest first; ties in slot order (no allocation: an unstable sort on a distinct key).
        live.sort_unstable_by_key(|&i| (c.entries[i].at_ns, i));
        let mut f = Found::default();
        for (slot, &i) in f.entries.iter_mut().zip(live.iter()) {
            *slot = c.entries[i];
        }
        f.n = n;
        Some(f)
    }

    /// A name of `client` at or above the burst threshold, at `now`: counted and returned as
    /// blocked when the client is blocked after its burst. Looks the client up only (a client
    /// without a slot is not blocked).
    pub fn blocked(&mut self, client: IpAddr, now: i64) -> Option<Blocked> {
        let at = self.set_of(client);
        let set = self.clients.get_mut(at..at + WAYS)?;
        let c = set.iter_mut().find(|c| c.used && c.ip == client)?;
        (now < c.blocked_until).then(|| c.notes.block(now, c.blocked_until))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
    }

    #[test]
    fn table_size() {
        let bytes = std::mem::size_of::<Client>() * CLIENTS;
        eprintln!("burst table: {bytes} bytes");
        assert!(bytes <= 3 << 20, "{bytes}");
    }

    #[test]
    fn parse_counts_and_windows() {
        assert_eq!(
            Burst::parse("4/300"),
            Some(Burst {
                count: 4,
                window_ns: 300 * S,
                block: false,
            })
        );
        for bad in ["1/60", "9/60", "4/0", "4/86401", "4", "a/b", "4/-1", ""] {
            assert_eq!(Burst::parse(bad), None, "{bad}");
        }
        // The text errors quote says what parse takes.
        assert!(Burst::EXPECTED.contains(&format!("COUNT 2 to {PER_CLIENT}")));
    }

    #[test]
    fn distinct_registrable_domains_within_the_window() {
        let psl = Psl::bundled();
        let cfg = Burst::default();
        let mut b = Bursts::default();
        // Unallocated, nothing is recorded and nothing breaks.
        assert!(b.observe(&psl, cfg, ip(5), "a.com", 0.99, 0).is_none());
        b.allocate();
        let c = ip(5);
        // Four names under one registered domain are one entry.
        for (i, n) in ["a.x.com", "b.x.com", "c.x.com", "d.x.com"]
            .iter()
            .enumerate()
        {
            assert!(b.observe(&psl, cfg, c, n, 0.99, i as i64 * S).is_none());
        }
        // Three more domains: the fourth distinct one completes a burst; a dynamic-DNS zone's
        // hosts are registrable domains of their own.
        assert!(b.observe(&psl, cfg, c, "qzx.net", 0.99, 10 * S).is_none());
        assert!(b
            .observe(&psl, cfg, c, "abc.dyndns.org", 0.99, 11 * S)
            .is_none());
        let f = b
            .observe(&psl, cfg, c, "xyz.dyndns.org", 0.995, 12 * S)
            .expect("a burst");
        let names: Vec<(&str, f32)> = f.iter().collect();
        assert_eq!(
            names,
            vec![
                ("d.x.com", 0.99),
                ("qzx.net", 0.99),
                ("abc.dyndns.org", 0.99),
                ("xyz.dyndns.org", 0.995)
            ]
        );
        // Quiet for a window, then again.
        assert!(b.observe(&psl, cfg, c, "more.org", 0.99, 20 * S).is_none());
        assert!(b
            .observe(&psl, cfg, c, "again.org", 0.99, 313 * S)
            .is_none());
        assert!(b
            .observe(&psl, cfg, c, "third.org", 0.99, 314 * S)
            .is_none());
        let f = b
            .observe(&psl, cfg, c, "fourth.org", 0.99, 315 * S)
            .expect("a second burst after the quiet window");
        let names: Vec<&str> = f.iter().map(|x| x.0).collect();
        assert_eq!(names, ["more.org", "again.org", "third.org", "fourth.org"]);
        // Another client's names are its own; names spread wider than the window never burst.
        let d = ip(6);
        for i in 0..20 {
            let n = format!("n{i}.com");
            assert!(b.observe(&psl, cfg, d, &n, 0.99, i * 120 * S).is_none());
        }
    }

    /// `--name-burst-block`: after its burst, the client's suspicious names are blocked for the
    /// hour, noted once a minute at most; other clients are not, nor the client without
    /// blocking; a blocked client keeps its slot while its set holds others to replace.
    #[test]
    fn a_bursting_client_is_blocked_for_the_hour() {
        let psl = Psl::bundled();
        for block in [true, false] {
            let cfg = Burst {
                block,
                ..Burst::default()
            };
            let mut b = Bursts::default();
            b.allocate();
            let c = ip(7);
            assert!(b.blocked(c, 0).is_none(), "unknown client");
            for (i, n) in ["qx.com", "zv.net", "kw.org"].iter().enumerate() {
                b.observe(&psl, cfg, c, n, 0.99, i as i64 * S);
                assert!(b.blocked(c, i as i64 * S).is_none(), "no burst yet");
            }
            assert!(b.observe(&psl, cfg, c, "jy.cc", 0.99, 3 * S).is_some());
            let (mut blocked, mut notes) = (0, 0);
            // A suspicious name every 5 s for two hours.
            for k in 1..1440 {
                let now = 3 * S + k * 5 * S;
                match b.blocked(c, now) {
                    Some(x) => {
                        assert!(block && now < 3 * S + BLOCK_NS, "{k}");
                        assert_eq!(x.left_ns, 3 * S + BLOCK_NS - now);
                        blocked += 1;
                        notes += x.note as u32;
                    }
                    None => assert!(!block || now >= 3 * S + BLOCK_NS, "{k}"),
                }
                assert!(b.blocked(ip(8), now).is_none());
            }
            if block {
                assert_eq!(blocked, 719, "the hour's names");
                assert_eq!(notes, 59, "one a minute after the first minute");
                // Clients filling its set (each new one replaces the longest quiet) pass it by.
                let at = b.set_of(c);
                let mut n = 100;
                let mut others = 0;
                while others < 8 {
                    n += 1;
                    if b.set_of(ip(n)) == at {
                        b.observe(&psl, cfg, ip(n), "one.example", 0.99, 10 * S + n as i64);
                        others += 1;
                    }
                }
                assert!(b.blocked(c, 20 * S + n as i64).is_some(), "still blocked");
            } else {
                assert_eq!(blocked, 0);
            }
        }
    }

    #[test]
    fn bounded_with_replacement_counted() {
        let psl = Psl::bundled();
        let cfg = Burst::default();
        let mut b = Bursts::default();
        b.allocate();
        for i in 0..(CLIENTS as u32 * 3) {
            b.observe(&psl, cfg, ip(i), "one.example.com", 0.99, i as i64);
        }
        assert!(b.evicted >= CLIENTS as u64, "{}", b.evicted);
        assert_eq!(b.clients.len(), CLIENTS);
        // A long name is kept to its first bytes.
        let long = format!("{}.com", "a".repeat(200));
        let c = ip(1 << 20);
        for (i, n) in ["b.com", "c.com", "d.com"].iter().enumerate() {
            b.observe(&psl, cfg, c, n, 0.99, i as i64);
        }
        let f = b.observe(&psl, cfg, c, &long, 0.99, 5).expect("a burst");
        assert_eq!(f.iter().last().map(|x| x.0.len()), Some(NAME_BYTES));
    }
}
