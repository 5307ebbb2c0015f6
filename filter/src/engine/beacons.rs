//! Beaconing across connections: the periodicity that defines a command-and-control check-in,
//! which no single flow shows. An implant sleeps, wakes, opens a connection to its server, asks
//! for work, and sleeps again; its operators add jitter so the period is not exact. Each of
//! those connections looks like any small HTTPS request (the flow model judges only one flow's
//! shape, `classifiers/MODEL.md`); the series of them, from one client to one server, is regular
//! in a way people and most programs are not.
//!
//! A series is one client, one server, one server port and one protocol; the server is an
//! address, or a name: a connection's first name (TLS or QUIC SNI, HTTP Host) also counts it in
//! its client's series by that name, which follows an implant whose server hides behind a CDN's
//! many edges or a fast-flux set of addresses, none of which sees the whole rhythm (the alert
//! then counts how often the address changed). The two views of one beacon raise one alert:
//! each series stays silent while the other view of the same connections alerted within the
//! hour. Series are kept for TCP connections the capture saw open (a SYN without ACK) and for
//! UDP flows to unicast addresses and to ports other than the local services that poll by
//! design (DNS, mDNS, LLMNR, NTP, DHCP, NetBIOS, SSDP, WS-Discovery). Each new connection
//! appends its start time, and records its client-to-server payload bytes at the first of: the
//! end of its inspection (after which an inline filter lets the kernel pass the rest of it by,
//! so replay and inline judge the same bytes: for TLS, the ClientHello), its first FIN or RST,
//! its end. When a series holds at least [`Beacon::count`] connections, the last [`STARTS`] of
//! them are judged with robust statistics, which a few late or missed check-ins do not move (as
//! RITA judges its beacons):
//!
//! - gap regularity: `1 - MAD/median` of the gaps between connection starts (0 when the median
//!   absolute deviation reaches the median). Jitter of up to half the period, drawn evenly as
//!   Cobalt Strike and Sliver draw it, gives about 0.83; arrivals at random times (a Poisson
//!   process: a person, a program acting on events) about 0.31;
//! - size regularity: `1 - MAD/median` of the connections' client-to-server payload bytes, when
//!   at least half of the judged connections have ended (a check-in without work sends the same
//!   request each time).
//!
//! The score is the lower of the two (the gaps alone while too few connections have ended). The
//! new connection raises an alert when the score is at least [`SCORE`], the gaps' spread (the
//! shortest over the longest, an eighth of them left out at each end) at least [`SPREAD`], and
//! the median gap at least [`Beacon::min_interval_ns`] (faster repeats are a client fetching in
//! a loop, not a sleeping implant). The spread is what random arrivals cannot fake: among 15
//! exponential gaps the second shortest is about a seventeenth of the second longest, where
//! jitter of up to 60% keeps them within 0.4 of each other. The series is then quiet for
//! [`QUIET_NS`], so a beacon raises one alert an hour, not one per check-in. Alert only by
//! default: the connections are regular, not known bad; the alert names the server, the period
//! and its spread, the score's parts, and the last name the series' connections carried (SNI,
//! Host, QUIC SNI). With [`Beacon::block`] (`--beacon-block`) the connection that alerted and the
//! series' later connections in its quiet hour are blocked (a TCP reset, at the SYN for a series
//! by address, at the name for one by name; UDP dropped), counted and noted once a minute at most
//! (`engine::blocks`); the client's connections to other servers pass, and after the hour the
//! series is judged again from its recorded starts (blocked attempts included).
//!
//! Measured by simulation (this module's tests, 200 series each, alerts within 20
//! connections): beacons of period 60 s with even jitter of up to 50% of the period alert at
//! their 16th connection or soon after, 199 or 200 of 200; 60%, 190; 80% (gaps from a fifth of
//! the period to all of it, close to random arrivals), 46. Poisson arrivals with a mean gap of
//! 60 s, followed for 200 connections and judged at every one: at most 1 series in 500 alerts,
//! whether their sizes vary or not. `bench/beacons.sh` measures the same on a capture
//! (`bench/RESULTS.md`).
//!
//! Legitimate software beacons too (update checks, telemetry, monitoring scrapes, push
//! channels): connections whose server or client address an intel list allows are not recorded,
//! and a series whose connections carried a name an allow list holds never alerts.
//!
//! Fixed size, allocated once per engine, at the first connection it follows (4.5 MiB). A
//! connection whose key has no series waits in [`SINGLES`] direct-mapped slots (the key's keyed
//! 64-bit fingerprint and the start, 1 MiB); a second connection of the same key makes it a
//! series. One-off connections, most of them, thus only replace each other there, not series.
//! Series: [`SERIES`] of 440 bytes each (3.4 MiB; starts are kept as milliseconds after the
//! series' first, and a series that reaches 49 days starts over), 4-way set-associative by a
//! keyed hash of the key (so traffic cannot be crafted to evict a chosen series), with each
//! set's four hashes side by side (64 KiB in all), so a lookup reads one cache line before the
//! series it finds. A new series replaces, in its set, the series with fewest connections
//! (fewer than 3 first), then one not quiet after an alert before one that is (a beacon keeps
//! its quiet, or blocked, hour while the set holds another to replace), the least recently
//! active among equals; replacements of series with 3 or more connections are counted
//! (`detect.beacon_evicted` in `stats` events). Nothing is allocated per packet.
//!
//! Where connections to one server spread over several engines they are several series: the
//! inline workers are fed by NFQUEUE's queue balancing, which hashes the addresses, not the
//! ports, so one client's connections to one server address reach one worker. A series by name
//! whose addresses change is spread over the workers that its addresses hash to: with several
//! queues, each sees only its part (one queue sees all of it).

use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr};

use super::blocks::{Blocked, Notes};

/// Series tracked at once (16 under the fuzzer, so short inputs reach eviction and each input
/// sets up quickly).
pub const SERIES: usize = if cfg!(fuzzing) { 16 } else { 8192 };
/// Ways per set.
const WAYS: usize = 4;
/// First connections waiting for a second (64 under the fuzzer).
pub const SINGLES: usize = if cfg!(fuzzing) { 64 } else { 65_536 };
/// Connection starts kept (and scored) per series.
pub const STARTS: usize = 32;
/// Bytes of the series' last name kept for the alert.
pub const NAME_BYTES: usize = 64;
/// Score at or above which a series alerts.
pub const SCORE: f32 = 0.75;
/// Shortest gap over longest (an eighth left out at each end) at or above which a series can
/// alert: jitter of up to 60% of the period.
pub const SPREAD: f32 = 0.4;
/// After an alert, a series is quiet this long (one hour).
pub const QUIET_NS: i64 = 3_600_000_000_000;

/// UDP server ports of local services that poll by design (and DNS, judged by its own parts).
const UDP_SERVICES: [u16; 12] = [53, 67, 68, 123, 137, 138, 546, 547, 1900, 3702, 5353, 5355];

/// When a series is judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Beacon {
    /// Connections in the series before it is judged (4 to [`STARTS`]).
    pub count: u8,
    /// Shortest median gap between connections that counts as a beacon, nanoseconds.
    pub min_interval_ns: i64,
    /// Block the connection that alerted and the series' later ones for [`QUIET_NS`] (block
    /// mode; audit mode logs what would be).
    pub block: bool,
}

impl Default for Beacon {
    /// Sixteen connections, at least ten seconds apart in the median; alert only.
    fn default() -> Self {
        Beacon {
            count: 16,
            min_interval_ns: 10_000_000_000,
            block: false,
        }
    }
}

impl Beacon {
    /// What `--beacon` and the `beacon` setting take.
    pub const EXPECTED: &str = "COUNT/SECONDS (COUNT 4 to 32, SECONDS 1 to 86400) or off";

    /// Parses `COUNT/SECONDS` (`16/10`); `None` for anything else or out of range (count 4 to
    /// [`STARTS`], 1 s to one day).
    pub fn parse(s: &str) -> Option<Beacon> {
        let (count, min_interval_ns) = super::count_per_seconds(s, 4..=STARTS as u8)?;
        Some(Beacon {
            count,
            min_interval_ns,
            block: false,
        })
    }
}

/// Whom a series connects to: one address, or one name whatever addresses it resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Peer {
    Addr(IpAddr),
    /// The name's keyed fingerprint ([`Beacons::name_fp`]).
    Name(u64),
}

/// A series' identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Key {
    pub client: IpAddr,
    pub server: Peer,
    pub port: u16,
    pub proto: u8,
}

impl Key {
    /// The key of a flow from `client` to `server`, or `None` when such flows are not tracked
    /// (not TCP or UDP; UDP to a polling service, multicast or broadcast).
    pub fn of(client: IpAddr, server: (IpAddr, u16), proto: u8) -> Option<Key> {
        let tracked = match proto {
            6 => true,
            17 => {
                !UDP_SERVICES.contains(&server.1)
                    && !server.0.is_multicast()
                    && server.0 != IpAddr::V4(Ipv4Addr::BROADCAST)
            }
            _ => false,
        };
        tracked.then_some(Key {
            client,
            server: Peer::Addr(server.0),
            port: server.1,
            proto,
        })
    }

    /// The series of the same connections by the name they carry (fingerprint `fp`).
    pub fn by_name(self, fp: u64) -> Key {
        Key {
            server: Peer::Name(fp),
            ..self
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Series {
    key: Key,
    /// The allow list named one of its names.
    allowed: bool,
    /// Connections seen (all of them, not only those kept).
    n: u32,
    /// Where the next start goes in `starts`.
    head: u8,
    /// The series' first connection start; `starts` are milliseconds after it.
    base_ns: i64,
    /// Connection starts, in arrival order around `head`.
    starts: [u32; STARTS],
    /// Each kept connection's client bytes once it ended (`u32::MAX`: not yet).
    bytes: [u32; STARTS],
    /// When the series last saw a connection start.
    last_ns: i64,
    /// No new alert before this time (and blocked until then, with [`Beacon::block`]).
    quiet_until: i64,
    /// Its blocked connections since its last alert.
    notes: Notes,
    /// The server address of its latest connection, and how often that changed.
    addr: IpAddr,
    addr_changes: u16,
    name_len: u8,
    name: [u8; NAME_BYTES],
}

impl Default for Series {
    fn default() -> Self {
        Series {
            key: Key {
                client: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                server: Peer::Addr(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                port: 0,
                proto: 0,
            },
            allowed: false,
            n: 0,
            head: 0,
            base_ns: 0,
            starts: [0; STARTS],
            bytes: [u32::MAX; STARTS],
            last_ns: 0,
            quiet_until: i64::MIN,
            notes: Notes::default(),
            addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            addr_changes: 0,
            name_len: 0,
            name: [0; NAME_BYTES],
        }
    }
}

impl Series {
    /// Keeps `name`, cut to [`NAME_BYTES`] on a character boundary.
    fn set_name(&mut self, name: &str) {
        let b = name.as_bytes();
        let mut len = b.len().min(NAME_BYTES);
        while len > 0 && !name.is_char_boundary(len) {
            len -= 1;
        }
        self.name[..len].copy_from_slice(&b[..len]);
        self.name_len = len as u8;
    }
}

/// What [`Beacons::start`] found: a series judged periodic.
#[derive(Debug, Clone, Copy)]
pub(super) struct Found {
    /// Connections in the series so far.
    pub connections: u32,
    /// Gaps scored (connections kept, less one).
    pub gaps: usize,
    /// Median gap and its median absolute deviation, nanoseconds.
    pub median_ns: i64,
    pub mad_ns: i64,
    /// The score and its parts (sizes: `None` when too few connections had ended).
    pub score: f32,
    pub gap_regularity: f32,
    /// Shortest gap over longest, an eighth left out at each end.
    pub gap_spread: f32,
    pub size_regularity: Option<f32>,
    /// Median client bytes of the ended connections scored.
    pub median_bytes: Option<u32>,
    /// A series by name (else by address), and how often its server address changed.
    pub by_name: bool,
    pub addr_changes: u16,
    name_len: u8,
    name: [u8; NAME_BYTES],
}

impl Found {
    /// The last name the series' connections carried, if any.
    pub fn name(&self) -> Option<&str> {
        let n = self.name.get(..self.name_len as usize)?;
        (!n.is_empty()).then(|| std::str::from_utf8(n).unwrap_or("?"))
    }
}

/// What a recorded connection start did.
#[derive(Debug, Clone, Copy)]
pub(super) enum Hit {
    /// It made its series alert (outside a quiet time); block it with [`Beacon::block`].
    Periodic(Found),
    /// It belongs to a series blocked after its alert ([`Beacon::block`] only).
    Blocked(Blocked),
}

/// Median of a sorted slice (the mean of the middle two for an even length; 0 when empty).
fn median(sorted: &[i64]) -> i64 {
    let n = sorted.len();
    match n {
        0 => 0,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => ((sorted[n / 2 - 1] as i128 + sorted[n / 2] as i128) / 2) as i64,
    }
}

/// `1 - MAD/median` of `v` (sorted in place; `abs` is scratch of the same length), clamped to
/// 0..1, with the median and the MAD. A zero median: 1 when every value is zero, else 0.
fn dispersion(v: &mut [i64], abs: &mut [i64]) -> (f32, i64, i64) {
    v.sort_unstable();
    let m = median(v);
    for (a, x) in abs.iter_mut().zip(v.iter()) {
        *a = (x - m).abs();
    }
    abs.sort_unstable();
    let mad = median(abs);
    let s = if m <= 0 {
        if mad == 0 {
            1.0
        } else {
            0.0
        }
    } else {
        (1.0 - mad as f64 / m as f64).clamp(0.0, 1.0) as f32
    };
    (s, m, mad)
}

/// The table of series.
#[derive(Debug)]
pub(super) struct Beacons {
    series: Box<[Series]>,
    /// Each series slot's key hash (0: empty), side by side so that a lookup reads one cache
    /// line of a set, and the series itself only when its hash matches.
    tags: Box<[u64]>,
    /// First connections: (fingerprint of the key, start), direct-mapped. A series takes a slot
    /// in `series` only at its second connection, so one-off connections (most of them) only
    /// overwrite each other here.
    singles: Box<[(u64, i64)]>,
    keys: super::Keys,
    /// Connection starts recorded.
    pub starts: u64,
    /// Series with 3 or more connections replaced by a new one.
    pub evicted: u64,
}

impl Default for Beacons {
    /// An empty table: the first connection recorded sizes it.
    fn default() -> Self {
        Beacons {
            series: Box::default(),
            tags: Box::default(),
            singles: Box::default(),
            keys: super::Keys::random(),
            starts: 0,
            evicted: 0,
        }
    }
}

impl Beacons {
    /// An empty one whose hashes are keyed by `keys` ([`super::Config::hash_seed`]).
    pub(super) fn with_keys(keys: super::Keys) -> Self {
        Beacons {
            keys,
            ..Self::default()
        }
    }

    /// Sizes the table, once.
    fn allocate(&mut self) {
        if self.series.is_empty() {
            self.series = vec![Series::default(); SERIES].into_boxed_slice();
            self.tags = vec![0; SERIES].into_boxed_slice();
            self.singles = vec![(0, 0); SINGLES].into_boxed_slice();
        }
    }

    /// The key's keyed hash (never 0), the first slot of its set, and its slot in `singles`.
    fn place(&self, key: &Key) -> (u64, usize, usize) {
        let h = self.keys.hash_one(key) | 1;
        let set = (h as usize) % (SERIES / WAYS) * WAYS;
        (h, set, (h.rotate_left(29) as usize) % SINGLES)
    }

    /// The slot of `key`'s series in its set, if it has one.
    fn way(&self, key: &Key, h: u64, at: usize) -> Option<usize> {
        let tags = self.tags.get(at..at + WAYS)?;
        (0..WAYS).find(|&i| tags[i] == h && self.series[at + i].key == *key)
    }

    /// The series of `key`, if tracked.
    fn find(&mut self, key: &Key) -> Option<&mut Series> {
        let (h, at, _) = self.place(key);
        let i = self.way(key, h, at)?;
        self.series.get_mut(at + i)
    }

    /// Records a connection of `key` to `addr` starting at `now`, and returns the series when
    /// this start makes it alert, or, with [`Beacon::block`], that the connection is one to
    /// block (its series alerted within the hour). `allowed`: an allow list holds the server's
    /// or the client's address, or the series' name (the connection is then not recorded).
    /// `name`: a series by name's name, kept when the series is made.
    pub fn start(
        &mut self,
        cfg: Beacon,
        key: Key,
        addr: IpAddr,
        now: i64,
        allowed: bool,
        name: Option<&str>,
    ) -> Option<Hit> {
        if allowed {
            return None;
        }
        self.allocate();
        if matches!(key.server, Peer::Addr(_)) {
            self.starts += 1;
        }
        let (h, at, one) = self.place(&key);
        let found = self.way(&key, h, at);
        let set = self.series.get_mut(at..at + WAYS)?;
        let tags = self.tags.get_mut(at..at + WAYS)?;
        let mut first = None;
        let i = match found {
            Some(i) => i,
            None => {
                // A first connection waits in `singles`; a second one makes a series of both.
                let slot = self.singles.get_mut(one)?;
                if slot.0 != h {
                    *slot = (h, now);
                    return None;
                }
                first = Some(slot.1);
                *slot = (0, 0);
                // An empty slot (tag 0) first, then the fewest connections, one not quiet
                // after an alert (so a beacon keeps its quiet, or blocked, hour), the least
                // recent.
                let i = (0..WAYS)
                    .min_by_key(|&i| match tags[i] {
                        0 => (0, false, i64::MIN),
                        _ => (set[i].n.min(3), now < set[i].quiet_until, set[i].last_ns),
                    })
                    .unwrap_or(0);
                if tags[i] != 0 && set[i].n >= 3 {
                    self.evicted += 1;
                }
                set[i] = Series {
                    key,
                    ..Series::default()
                };
                tags[i] = h;
                i
            }
        };
        let s = set.get_mut(i)?;
        if s.addr != addr {
            if first.is_none() && s.n > 0 {
                s.addr_changes = s.addr_changes.saturating_add(1);
            }
            s.addr = addr;
        }
        if let Some(t0) = first {
            if let Some(n) = name {
                s.set_name(n);
            }
            // Its first connection (its size is not known: it ended as a single).
            let t0 = t0.min(now);
            s.base_ns = t0;
            s.last_ns = t0;
            s.starts[0] = 0;
            s.head = 1;
            s.n = 1;
        }
        if now.saturating_sub(s.base_ns) / 1_000_000 > u32::MAX as i64 {
            // Too long for its clock (or a first connection that long before): starts over
            // here, keeping its allow mark, address and name.
            *s = Series {
                key,
                allowed: s.allowed,
                base_ns: now,
                last_ns: now,
                addr: s.addr,
                name_len: s.name_len,
                name: s.name,
                ..Series::default()
            };
        }
        // Packets of one capture can be out of order by a little; a start never goes backward.
        let now = now.max(s.last_ns);
        let h = s.head as usize % STARTS;
        s.starts[h] = ((now - s.base_ns) / 1_000_000) as u32;
        s.bytes[h] = u32::MAX;
        s.head = ((h + 1) % STARTS) as u8;
        s.n = s.n.saturating_add(1);
        s.last_ns = now;
        if s.allowed || s.n < cfg.count as u32 {
            return None;
        }
        if now < s.quiet_until {
            return cfg
                .block
                .then(|| Hit::Blocked(s.notes.block(now, s.quiet_until)));
        }
        let f = judge(s)?;
        if f.score < SCORE || f.gap_spread < SPREAD || f.median_ns < cfg.min_interval_ns {
            return None;
        }
        s.quiet_until = now.saturating_add(QUIET_NS);
        s.notes.alerted(now);
        Some(Hit::Periodic(f))
    }

    /// Records the client bytes of the connection of `key` that started at `start_ns`, at its
    /// end (nothing when it is no longer kept).
    pub fn ended(&mut self, key: &Key, start_ns: i64, client_bytes: u64) {
        if let Some(s) = self.find(key) {
            let Ok(ms) = u32::try_from(start_ns.saturating_sub(s.base_ns) / 1_000_000) else {
                return;
            };
            let kept = s.n.min(STARTS as u32) as usize;
            // The newest kept start of that millisecond still without a size.
            for k in 1..=kept {
                let j = (s.head as usize + STARTS - k) % STARTS;
                if s.starts[j] == ms && s.bytes[j] == u32::MAX {
                    s.bytes[j] = client_bytes.min(u32::MAX as u64 - 1) as u32;
                    break;
                }
            }
        }
    }

    /// The keyed fingerprint of a name for series by name (case and a final dot ignored; never
    /// 0).
    pub fn name_fp(&self, name: &str) -> u64 {
        let mut h = self.keys.build_hasher();
        for b in name.strip_suffix('.').unwrap_or(name).bytes() {
            h.write_u8(b.to_ascii_lowercase());
        }
        h.finish() | 1
    }

    /// Whether `key`'s series alerted within the last [`QUIET_NS`] (so the same connections
    /// seen the other way, by name or by address, need no second alert).
    pub fn quiet(&self, key: &Key, now: i64) -> bool {
        let (h, at, _) = self.place(key);
        self.way(key, h, at)
            .is_some_and(|i| self.series[at + i].quiet_until > now)
    }

    /// Records a name a connection of `key` carried (lower-case or not; kept as given, cut to
    /// [`NAME_BYTES`]); `allowed`: an allow list named it.
    pub fn named(&mut self, key: &Key, name: &str, allowed: bool) {
        if let Some(s) = self.find(key) {
            s.allowed |= allowed;
            s.set_name(name);
        }
    }
}

/// Scores a series' kept connections.
fn judge(s: &Series) -> Option<Found> {
    let kept = s.n.min(STARTS as u32) as usize;
    if kept < 3 {
        return None;
    }
    // The kept starts oldest first.
    let mut t = [0i64; STARTS];
    let mut b = [u32::MAX; STARTS];
    for k in 0..kept {
        let j = (s.head as usize + STARTS - kept + k) % STARTS;
        t[k] = s.starts[j] as i64;
        b[k] = s.bytes[j];
    }
    let mut gaps = [0i64; STARTS];
    let g = kept - 1;
    for k in 0..g {
        gaps[k] = t[k + 1] - t[k];
    }
    let mut abs = [0i64; STARTS];
    let (gap_regularity, median_ms, mad_ms) = dispersion(&mut gaps[..g], &mut abs[..g]);
    // The gaps are sorted now: the spread between the shortest and the longest, an eighth of
    // them left out at each end (one of 15, so one missed or late check-in does not count).
    let k = g / 8;
    let (lo, hi) = (gaps[k], gaps[g - 1 - k]);
    let gap_spread = if hi <= 0 {
        1.0
    } else {
        (lo as f64 / hi as f64) as f32
    };
    let mut sizes = [0i64; STARTS];
    let mut m = 0;
    for &x in b[..kept].iter().filter(|&&x| x != u32::MAX) {
        sizes[m] = x as i64;
        m += 1;
    }
    let (size, median_bytes) = if m * 2 >= kept {
        let (d, med, _) = self::dispersion(&mut sizes[..m], &mut abs[..m]);
        (Some(d), Some(med as u32))
    } else {
        (None, None)
    };
    Some(Found {
        connections: s.n,
        gaps: g,
        median_ns: median_ms * 1_000_000,
        mad_ns: mad_ms * 1_000_000,
        score: size.map_or(gap_regularity, |z| z.min(gap_regularity)),
        gap_regularity,
        gap_spread,
        size_regularity: size,
        median_bytes,
        by_name: matches!(s.key.server, Peer::Name(_)),
        addr_changes: s.addr_changes,
        name_len: s.name_len,
        name: s.name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    const SRV: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));

    fn key(n: u32) -> Key {
        Key {
            client: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n)),
            server: Peer::Addr(SRV),
            port: 443,
            proto: 6,
        }
    }

    /// xorshift64*: a fixed sequence, so the statistical checks below give the same answer on
    /// every run.
    struct Rng(u64);
    impl Rng {
        fn unit(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// The findings of a start that made its series alert.
    fn periodic(h: Option<Hit>) -> Option<Found> {
        match h {
            Some(Hit::Periodic(f)) => Some(f),
            _ => None,
        }
    }

    /// Runs `conns` connections of one series with the given gaps (seconds) and client bytes,
    /// each ending before the next starts; the first alert's findings, if any.
    fn run(
        b: &mut Beacons,
        cfg: Beacon,
        k: Key,
        mut gap: impl FnMut() -> f64,
        mut size: impl FnMut() -> u64,
        conns: usize,
    ) -> Option<Found> {
        let mut t = 1_000 * S;
        let mut first = None;
        for _ in 0..conns {
            let f = b.start(cfg, k, SRV, t, false, None);
            first = first.or(periodic(f));
            b.ended(&k, t, size());
            t += (gap() * S as f64) as i64;
        }
        first
    }

    #[test]
    fn table_size() {
        let bytes = (std::mem::size_of::<Series>() + 8) * SERIES + 16 * SINGLES;
        eprintln!("beacon table: {bytes} bytes");
        assert!(bytes <= 4_720_000, "{bytes}");
    }

    #[test]
    fn parse_counts_and_intervals() {
        assert_eq!(
            Beacon::parse("10/10"),
            Some(Beacon {
                count: 10,
                min_interval_ns: 10 * S,
                block: false,
            })
        );
        assert_eq!(Beacon::parse("32/86400").map(|b| b.count), Some(32));
        assert!(Beacon::EXPECTED.contains(&format!("COUNT 4 to {STARTS}")));
        for bad in [
            "3/10", "33/10", "10/0", "10/86401", "10", "a/b", "10/-1", "",
        ] {
            assert_eq!(Beacon::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn robust_statistics() {
        let mut abs = [0i64; 8];
        // An exact period: fully regular.
        let mut v = [60, 60, 60, 60, 60];
        assert_eq!(dispersion(&mut v, &mut abs[..5]), (1.0, 60, 0));
        // One missed check-in (a doubled gap) hardly moves the median or the MAD.
        let mut v = [60, 61, 59, 120, 60, 60, 61];
        let (d, m, mad) = dispersion(&mut v, &mut abs[..7]);
        assert_eq!((m, mad), (60, 1));
        assert!((d - 59.0 / 60.0).abs() < 1e-6, "{d}");
        // Exponential-like gaps: the MAD near the median.
        let mut v = [3, 40, 7, 120, 15, 1, 60, 25];
        let (d, m, mad) = dispersion(&mut v, &mut abs[..8]);
        assert_eq!((m, mad), (20, 18));
        assert!(d < 0.3, "{d}");
        // Zero sizes: regular when all are zero, or most.
        let mut z = [0, 0, 0];
        assert_eq!(dispersion(&mut z, &mut abs[..3]).0, 1.0);
        let mut z = [0, 0, 5];
        assert_eq!(dispersion(&mut z, &mut abs[..3]).0, 1.0);
        let mut z = [0, 5, 10];
        assert_eq!(dispersion(&mut z, &mut abs[..3]).0, 0.0);
        assert_eq!(median(&[i64::MAX, i64::MAX]), i64::MAX);
        assert_eq!(median(&[1, 2]), 1);
        assert_eq!(median(&[]), 0);
    }

    #[test]
    fn jittered_beacons_alert_random_arrivals_do_not() {
        let cfg = Beacon::default();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        // Cobalt Strike's jitter: each sleep is the period less up to `j` of it, drawn evenly.
        let cases = [
            (0.0, 60.0),
            (0.2, 60.0),
            (0.3, 300.0),
            (0.5, 60.0),
            (0.6, 60.0),
            (0.8, 60.0),
        ];
        for (j, period) in cases {
            let mut hits = 0;
            for trial in 0..200 {
                let mut b = Beacons::default();
                let mut r2 = Rng(trial + 1);
                let f = run(
                    &mut b,
                    cfg,
                    key(1),
                    || period * (1.0 - j * rng.unit()),
                    || 400 + (r2.unit() * 40.0) as u64,
                    20,
                );
                hits += f.is_some_and(|f| f.connections <= 20) as u32;
            }
            eprintln!("jitter {j}: {hits} of 200");
            // Up to half the period: all but a few; 60%: most; 80% (gaps from a fifth of the
            // period to all of it, close to random arrivals) is reported, not required.
            let want = match j {
                j if j <= 0.5 => 196,
                j if j <= 0.6 => 180,
                _ => 0,
            };
            assert!(hits >= want, "jitter {j}: {hits} of 200");
        }
        // Poisson arrivals (a person or a program acting at random times), mean gap 60 s,
        // followed for 200 connections: sizes spread, or regular too.
        for spread in [5_000.0, 40.0, 0.0] {
            let mut hits = 0;
            for trial in 0..500 {
                let mut b = Beacons::default();
                let mut r2 = Rng(trial + 7);
                let f = run(
                    &mut b,
                    cfg,
                    key(2),
                    || -60.0 * (1.0 - rng.unit()).ln(),
                    || (400.0 + spread * r2.unit()) as u64,
                    200,
                );
                hits += f.is_some() as u32;
            }
            eprintln!("poisson, sizes spread {spread}: {hits} of 500");
            assert!(hits <= 3, "poisson, sizes spread {spread}: {hits} of 500");
        }
    }

    /// `--beacon-block`: every connection of the series in the hour after its alert is one to
    /// block, noted once a minute at most; after the hour the series, still beaconing, alerts
    /// again at once. The client's other servers, and the same series without blocking, are
    /// never blocked.
    #[test]
    fn a_blocked_beacon_stays_blocked_for_the_hour() {
        for block in [true, false] {
            let cfg = Beacon {
                block,
                ..Beacon::default()
            };
            let mut b = Beacons::default();
            let (k, other) = (key(9), key(9).by_name(77));
            let (mut alerts, mut blocked, mut noted, mut notes) = (Vec::new(), 0, 0, 0);
            // A check-in every 30 s, 1 or 2 s late a third of the time each, for two hours.
            for i in 0..240i64 {
                let t = i * 30 * S + (i % 3) * S;
                let in_block = alerts
                    .last()
                    .is_some_and(|&a: &i64| t > a && t < a + QUIET_NS);
                match b.start(cfg, k, SRV, t, false, None) {
                    Some(Hit::Periodic(_)) => {
                        assert!(!in_block);
                        alerts.push(t);
                    }
                    Some(Hit::Blocked(bl)) => {
                        assert!(block && in_block, "{i}");
                        assert_eq!(bl.left_ns, alerts.last().unwrap() + QUIET_NS - t);
                        if alerts.len() > 1 {
                            continue;
                        }
                        blocked += 1;
                        if bl.note {
                            notes += 1;
                            noted += bl.count;
                            let note = crate::engine::blocks::NOTE_NS;
                            assert!((note..note + 32 * S).contains(&bl.since_ns), "{bl:?}");
                        }
                    }
                    None => assert!(!in_block || !block, "{i}"),
                }
                b.ended(&k, t, 321);
                // Another series of the client, one connection every 10 minutes.
                if i % 20 == 0 {
                    assert!(!matches!(
                        b.start(cfg, other, SRV, t, false, None),
                        Some(Hit::Blocked(_))
                    ));
                }
            }
            assert_eq!(alerts.len(), 2, "{alerts:?}");
            assert_eq!(alerts[0], 15 * 30 * S, "at the 16th connection");
            assert!(alerts[1] >= alerts[0] + QUIET_NS && alerts[1] < alerts[0] + QUIET_NS + 32 * S);
            if block {
                // The hour's 120 check-ins after the alerting one, less the one at its very end.
                assert!((119..=120).contains(&blocked), "{blocked}");
                // One note at the first block a minute or more after the last: every second or
                // third check-in (gaps of 28 to 31 s), counting all but the last few blocks.
                assert!((35..=60).contains(&notes), "{notes}");
                assert!(
                    noted <= blocked && blocked - noted <= 2,
                    "{noted} of {blocked}"
                );
            }
        }
    }

    /// A beacon quiet (or blocked) after its alert keeps its place while its set holds other
    /// series to replace, however long ago its last connection: new series formed in its set
    /// replace those instead.
    #[test]
    fn a_quiet_series_is_not_the_one_replaced() {
        let cfg = Beacon {
            block: true,
            ..Beacon::default()
        };
        let mut b = Beacons::default();
        b.allocate();
        let beacon = key(1);
        let (_, set, _) = b.place(&beacon);
        let others: Vec<Key> = (2..1_000_000)
            .map(key)
            .filter(|k| b.place(k).1 == set)
            .take(7)
            .collect();
        assert_eq!(others.len(), 7);
        let mut t = 0;
        let mut alerted = false;
        for _ in 0..16 {
            alerted |= periodic(b.start(cfg, beacon, SRV, t, false, None)).is_some();
            t += 30 * S;
        }
        assert!(alerted);
        // Three series of three connections fill the set, all more recent than the beacon;
        // four more keys come twice each, each a new series that must replace one.
        for k in &others[..3] {
            for _ in 0..3 {
                b.start(cfg, *k, SRV, t, false, None);
                t += S;
            }
        }
        for k in &others[3..] {
            for _ in 0..2 {
                b.start(cfg, *k, SRV, t, false, None);
                t += S;
            }
        }
        assert!(b.evicted >= 1, "series of 3 were replaced");
        assert!(matches!(
            b.start(cfg, beacon, SRV, t, false, None),
            Some(Hit::Blocked(_))
        ));
    }

    #[test]
    fn alert_contents_quiet_period_and_allow() {
        let cfg = Beacon::default();
        let mut b = Beacons::default();
        // Before the first connection nothing is allocated, and nothing breaks.
        b.named(&key(3), "x.example", false);
        b.ended(&key(3), 0, 10);
        assert!(b.series.is_empty() && b.singles.is_empty());
        let k = key(3);
        let mut t = 0;
        let mut found = None;
        for i in 0..16 {
            found = periodic(b.start(cfg, k, SRV, t, false, None));
            if i == 1 {
                b.named(&k, "c2.example.net", false);
            }
            b.ended(&k, t, 321);
            if i < 15 {
                assert!(found.is_none(), "alert before the 16th connection");
            }
            t += 30 * S + (i % 3) * S;
        }
        let f = found.expect("the 16th connection alerts");
        assert_eq!(f.connections, 16);
        assert_eq!(f.gaps, 15);
        assert_eq!(f.median_ns, 31 * S);
        assert_eq!(f.mad_ns, S);
        // The 16th has not ended when it is judged: 15 of 16 sizes known, all 321.
        assert_eq!((f.size_regularity, f.median_bytes), (Some(1.0), Some(321)));
        assert_eq!(f.name(), Some("c2.example.net"));
        assert!((f.score - 30.0 / 31.0).abs() < 1e-6, "{}", f.score);
        // Quiet for an hour, then again: 300 more connections 30 s apart (150 minutes).
        let mut again = Vec::new();
        for _ in 0..300 {
            if b.start(cfg, k, SRV, t, false, None).is_some() {
                again.push(t);
            }
            t += 30 * S;
        }
        assert_eq!(again.len(), 2, "one alert an hour: {again:?}");
        assert!(again[0] >= 15 * 31 * S + QUIET_NS - 30 * S, "{again:?}");
        assert!(again[1] - again[0] >= QUIET_NS, "{again:?}");
        // Sizes that vary keep a regular period from alerting.
        let k = key(8);
        for i in 0..40 {
            let t = i * 60 * S;
            assert!(b.start(cfg, k, SRV, t, false, None).is_none());
            b.ended(&k, t, [100, 5_000, 900, 20_000][i as usize % 4]);
        }
        // A faster period than the minimum does not alert.
        let k = key(4);
        for i in 0..40 {
            assert!(b.start(cfg, k, SRV, i * 2 * S, false, None).is_none());
        }
        // A series whose connections carry an allow-listed name is never judged (the first
        // connection, a single, has no series to mark: the second marks it).
        let k = key(5);
        for i in 0..40 {
            assert!(b.start(cfg, k, SRV, i * 60 * S, false, None).is_none());
            b.named(&k, "updates.example.org", i == 1);
        }
        // An allow-listed address, likewise.
        let k = key(6);
        for i in 0..40 {
            assert!(b.start(cfg, k, SRV, i * 60 * S, true, None).is_none());
        }
        // A name longer than kept is cut on a character boundary.
        let k = key(7);
        b.start(cfg, k, SRV, 0, false, None);
        b.start(cfg, k, SRV, S, false, None);
        let long = format!("{}é.example", "a".repeat(NAME_BYTES - 1));
        b.named(&k, &long, false);
        assert_eq!(
            b.find(&k).map(|s| s.name_len as usize),
            Some(NAME_BYTES - 1)
        );
        // A series older than its millisecond clock starts over.
        let k = key(9);
        let day = 86_400 * S;
        for i in 0..20 {
            b.start(cfg, k, SRV, i * day, false, None);
        }
        b.start(cfg, k, SRV, 60 * day, false, None);
        assert_eq!(b.find(&k).map(|s| (s.n, s.base_ns)), Some((1, 60 * day)));
    }

    #[test]
    fn series_by_name_across_rotating_addresses() {
        let cfg = Beacon::default();
        let mut b = Beacons::default();
        let ip = key(20);
        let fp = b.name_fp("C2.Example.NET.");
        assert_eq!(fp, b.name_fp("c2.example.net"));
        assert_ne!(fp, b.name_fp("c3.example.net"));
        let named = ip.by_name(fp);
        let mut found = None;
        for i in 0..16i64 {
            // Four addresses in turn (a CDN's edges): each address sees 4 of the 16.
            let addr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, (i % 4) as u8 + 1));
            let k = Key {
                server: Peer::Addr(addr),
                ..ip
            };
            assert!(b.start(cfg, k, addr, i * 60 * S, false, None).is_none());
            found = periodic(b.start(cfg, named, addr, i * 60 * S, false, Some("c2.example.net")));
        }
        let f = found.expect("the name's series alerts");
        assert!(f.by_name);
        assert_eq!(f.name(), Some("c2.example.net"));
        // Every connection after the first two went to another address than the one before.
        assert_eq!(f.addr_changes, 14);
        assert!(b.quiet(&named, 16 * 60 * S));
        assert!(!b.quiet(&named, 16 * 60 * S + QUIET_NS));
        assert!(!b.quiet(&ip, 16 * 60 * S));
    }

    /// Capture timestamps are hostile too: any order, any value, never a panic or a clock
    /// that wraps.
    #[test]
    fn hostile_times() {
        let cfg = Beacon {
            count: 4,
            min_interval_ns: 1,
            block: false,
        };
        let mut b = Beacons::default();
        let k = key(30);
        let times = [
            i64::MIN,
            i64::MAX,
            0,
            i64::MIN,
            -5,
            i64::MAX - 1,
            1 << 62,
            -(1 << 62),
            0,
            0,
            0,
            i64::MAX,
            i64::MAX,
        ];
        for t in times {
            let _ = b.start(cfg, k, SRV, t, false, None);
            b.ended(&k, t, u64::MAX);
            b.named(&k, "x.example", false);
        }
        // A single from long before its second connection: the series starts at the second.
        let k = key(31);
        b.start(cfg, k, SRV, -(1 << 62), false, None);
        b.start(cfg, k, SRV, 1 << 62, false, None);
        assert_eq!(b.find(&k).map(|s| (s.n, s.base_ns)), Some((1, 1 << 62)));
    }

    #[test]
    fn which_flows_are_series() {
        let c = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let s = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        assert!(Key::of(c, (s, 443), 6).is_some());
        assert!(Key::of(c, (s, 443), 17).is_some());
        assert!(Key::of(c, (s, 53), 6).is_some());
        for p in UDP_SERVICES {
            assert!(Key::of(c, (s, p), 17).is_none(), "{p}");
        }
        assert!(Key::of(c, (s, 0), 1).is_none());
        let mc = IpAddr::V4(Ipv4Addr::new(239, 255, 255, 250));
        assert!(Key::of(c, (mc, 4000), 17).is_none());
        assert!(Key::of(c, (IpAddr::V4(Ipv4Addr::BROADCAST), 4000), 17).is_none());
        assert!(Key::of(c, ("ff02::1".parse().unwrap(), 4000), 17).is_none());
    }

    #[test]
    fn bounded_with_replacement_counted() {
        let cfg = Beacon::default();
        let mut b = Beacons::default();
        // A beacon at 60 s keeps its series while single connections to many servers churn
        // through its set: those replace each other first.
        let k = key(1 << 20);
        let mut alerted = false;
        for i in 0..30i64 {
            alerted |= b.start(cfg, k, SRV, i * 60 * S, false, None).is_some();
            for j in 0..(SERIES as u32) {
                let other = Key {
                    server: Peer::Addr(IpAddr::V4(Ipv4Addr::from(
                        0xc000_0000 + j + i as u32 * 65_536,
                    ))),
                    ..key(9)
                };
                b.start(cfg, other, SRV, i * 60 * S + 1 + j as i64, false, None);
            }
        }
        assert!(alerted, "the beacon survived the churn");
        assert_eq!(b.series.len(), SERIES);
        // Series of 3 or more connections replaced are counted.
        let before = b.evicted;
        for i in 0..(SERIES as u32 * 2) {
            for t in 0..3 {
                b.start(cfg, key(i), SRV, t * S, false, None);
            }
        }
        assert!(b.evicted > before + SERIES as u64 / 2, "{}", b.evicted);
    }
}
