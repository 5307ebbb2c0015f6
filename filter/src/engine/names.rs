//! Name scoring in the engine: the domain model (`palisade-classifiers`) on DNS query names, TLS
//! and QUIC SNI and HTTP Host.
//!
//! Every scored name's score goes into its event (`palisade.name_score`) and the flow keeps the
//! highest for its `flow` event. A score at or above the alert threshold raises an alert naming
//! the model, its version, the score and the thresholds; at or above the block threshold the
//! alert is enforced like an intel hit (sinkhole for DNS, reset for TLS and HTTP, drop for QUIC).
//! Intel goes first: a name an intel list allows or already blocks raises no model alert. In
//! shadow mode scores are only logged.

use std::sync::Arc;

use palisade_classifiers::features::MAX_NAME;
use palisade_classifiers::flow::{FlowModel, FlowRecord};
use palisade_classifiers::DomainModel;

use super::blocks::Blocked;
use super::{raise_alert, AppProto, Cx, Flow, Verdict};
use crate::eve::Obj;

/// A model and what to do with its scores: [`NameScoring`] for the domain model,
/// [`FlowScoring`] for the flow model.
#[derive(Debug, Clone)]
pub struct Scoring<M> {
    /// The loaded model (shared by the workers; a reload swaps the `Arc`).
    pub model: Arc<M>,
    /// Alert at or above this score.
    pub alert: f32,
    /// Block at or above this score (block mode; for flows, only when the score comes at the
    /// model's packet count, not at the flow's end); `None`: never.
    pub block: Option<f32>,
    /// Log scores only: no alert, no block.
    pub shadow: bool,
}

/// The domain model's scoring.
pub type NameScoring = Scoring<DomainModel>;
/// The flow model's scoring.
pub type FlowScoring = Scoring<FlowModel>;

impl Scoring<DomainModel> {
    /// The shipped model with its default thresholds: alert where 1 in 10,000 held-out benign
    /// names scored higher when it was trained, never block.
    pub fn bundled() -> NameScoring {
        NameScoring::with_defaults(DomainModel::bundled())
    }

    /// A model with the default thresholds read from its file (0.9995 when it carries none).
    pub fn with_defaults(model: DomainModel) -> NameScoring {
        let alert = model.threshold_at_fpr("1e-4").unwrap_or(0.9995);
        Scoring {
            model: Arc::new(model),
            alert,
            block: None,
            shadow: false,
        }
    }
}

impl Scoring<FlowModel> {
    /// The shipped flow model in shadow mode: scores logged, no alert, no block. Its malicious
    /// side is lab scenarios (classifiers/MODEL.md), so alerting is for the user to turn on.
    pub fn bundled() -> FlowScoring {
        FlowScoring::shadow(FlowModel::bundled())
    }

    /// A model that only logs scores (its file's 1e-3 threshold kept for when alerts are on).
    pub fn shadow(model: FlowModel) -> FlowScoring {
        let alert = model.threshold_at_fpr("1e-3").unwrap_or(0.99);
        Scoring {
            model: Arc::new(model),
            alert,
            block: None,
            shadow: true,
        }
    }
}

/// The flow's record as the model reads it, totals filled in up to `now`.
pub(super) fn record_of(f: &Flow, now: i64) -> FlowRecord {
    let mut r = f.rec;
    r.proto = f.meta.proto;
    r.server_port = f.meta.srv.1;
    r.pkts = f.pkts;
    r.bytes = f.bytes;
    r.duration_us = (now.saturating_sub(f.meta.start_ns).max(0) / 1000) as u64;
    r.app = match f.app {
        AppProto::Dns => 1,
        AppProto::Tls => 2,
        AppProto::Http => 3,
        AppProto::Quic => 4,
        _ => 0,
    };
    r.name_score = f.name_score;
    r
}

/// Scores the flow (`at`: the packet count the record is complete at, 0 at the flow's end),
/// alerts at or above the alert threshold, and drops the rest of the flow above the block
/// threshold when the score came while the flow was live. A flow that already raised an alert
/// (intel, a rule, the domain model) gets no second one from this model: its score is still
/// logged in the flow event.
pub(super) fn flow_check(cx: &mut Cx<'_>, flow: &mut Flow, dir: usize, at: u8) {
    let Some(fs) = cx.flow_model else { return };
    let rec = record_of(flow, cx.now);
    let score = fs.model.score(&rec);
    flow.flow_score = Some((score, at));
    cx.stats.flows_scored += 1;
    if fs.shadow || score < fs.alert || flow.alerted {
        return;
    }
    cx.stats.flows_alerted += 1;
    let block = at > 0 && fs.block.is_some_and(|b| score >= b);
    let spec = super::detector_spec(
        cx.mode,
        9_100_021,
        "PALISADE model flow score",
        "Machine learning: beaconing, tunnelling, scanning or exfiltration-like flow",
        block.then_some(Verdict::Drop),
    );
    let version = fs.model.version();
    let (alert_t, block_t) = (fs.alert, fs.block);
    raise_alert(cx, flow, dir, spec, |p| {
        p.obj("model", |m| {
            m.str("name", "flow").str("version", version);
            let mut b = [0u8; 8];
            m.raw("score", fixed6(&mut b, score));
            let mut b = [0u8; 8];
            m.raw("alert_threshold", fixed6(&mut b, alert_t));
            if let Some(t) = block_t {
                let mut b = [0u8; 8];
                m.raw("block_threshold", fixed6(&mut b, t));
            }
            m.u64("at_packet", at as u64);
        });
    });
}

/// Entries in [`ScoreCache`] (16 under the fuzzer, so short inputs reach replacement).
const CACHE_SLOTS: usize = if cfg!(fuzzing) { 16 } else { 8192 };
/// Slots per set (the cache is set-associative; a set is 64 bytes).
const CACHE_WAYS: usize = 4;

/// Recent scores, so a name logged in a request, its response and its alert check is scored
/// once. A name is known by a 64-bit fingerprint from a hasher seeded at random per engine
/// (foldhash, as the flow table's): the table is 8,192 slots of 16 bytes (128 KB, so it stays in
/// the core's cache where slots holding the names themselves, 590 KB, cost a trip to memory per
/// lookup), 4-way set-associative, the least recently used of a set replaced. A wrong score
/// would take two names with the same 64-bit fingerprint under a seed nobody outside the
/// process sees (about 2^-51 per lookup by chance). Fixed size, allocated once per engine;
/// cleared when the model changes. (Direct-mapped, the 5,878 distinct names of the benchmark
/// corpus had cost about 7,900 model runs through conflicts.)
#[derive(Debug)]
pub(super) struct ScoreCache {
    slots: Box<[Slot]>,
    hasher: foldhash::fast::RandomState,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Use counter for the slots' `used` (wraps; a wrapped slot merely looks old).
    clock: u32,
    /// Feature scratch space, so a miss does not zero a fresh one.
    scratch: palisade_classifiers::features::NameFeatures,
    /// The last name looked up and its score: a DNS query's alert check and its event, or a
    /// response right after its query, ask for the same name in a row, and comparing it here
    /// (in the core's first-level cache) saves the hash and the trip to the table.
    last: Last,
}

/// The last name scored (at most [`MAX_NAME`] bytes, the longest the model reads; longer ones
/// go to the table only; `len` 0: none).
#[derive(Debug)]
struct Last {
    name: [u8; MAX_NAME],
    len: usize,
    score: f32,
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// The name's fingerprint, never 0 (0: empty).
    fp: u64,
    score: f32,
    /// When it was last used (the cache's use counter).
    used: u32,
}

impl Default for ScoreCache {
    fn default() -> Self {
        ScoreCache {
            slots: vec![Slot::default(); CACHE_SLOTS].into_boxed_slice(),
            hasher: foldhash::fast::RandomState::default(),
            hits: 0,
            clock: 0,
            scratch: Default::default(),
            last: Last {
                name: [0; MAX_NAME],
                len: 0,
                score: 0.0,
            },
        }
    }
}

impl ScoreCache {
    /// Forgets every score (the model changed).
    pub(super) fn clear(&mut self) {
        for s in self.slots.iter_mut() {
            s.fp = 0;
        }
        self.last.len = 0;
    }

    fn get_or(&mut self, name: &str, model: &DomainModel) -> f32 {
        let b = name.as_bytes();
        if !b.is_empty() && self.last.len == b.len() && self.last.name.get(..b.len()) == Some(b) {
            self.hits += 1;
            return self.last.score;
        }
        let score = self.lookup(b, model);
        if let Some(d) = self.last.name.get_mut(..b.len()) {
            d.copy_from_slice(b);
            self.last.len = b.len();
            self.last.score = score;
        }
        score
    }

    /// The set-associative table behind the memo.
    fn lookup(&mut self, b: &[u8], model: &DomainModel) -> f32 {
        use std::hash::BuildHasher;
        let fp = self.hasher.hash_one(b) | 1;
        self.clock = self.clock.wrapping_add(1);
        let at = (fp >> 40) as usize % (CACHE_SLOTS / CACHE_WAYS) * CACHE_WAYS;
        let Some(set) = self.slots.get_mut(at..at + CACHE_WAYS) else {
            return model.score_with(b, &mut self.scratch);
        };
        if let Some(slot) = set.iter_mut().find(|s| s.fp == fp) {
            slot.used = self.clock;
            self.hits += 1;
            return slot.score;
        }
        let score = model.score_with(b, &mut self.scratch);
        let clock = self.clock;
        // An empty slot, else the least recently used.
        let age = |s: &Slot| {
            if s.fp == 0 {
                u32::MAX
            } else {
                clock.wrapping_sub(s.used)
            }
        };
        if let Some(slot) = set.iter_mut().max_by_key(|s| age(s)) {
            *slot = Slot {
                fp,
                score,
                used: clock,
            };
        }
        score
    }
}

/// Special-use top-level names that are not registered in the DNS, so no one picks their labels
/// there: reverse lookups (`in-addr.arpa`, `ip6.arpa`, `home.arpa`; RFC 6761, 8375), multicast
/// DNS and DNS-SD (`local`, RFC 6762: `_googlecast._tcp.local`, device names), `localhost` and
/// `invalid` (RFC 6761), Tor (`onion`, RFC 7686) and private networks (`internal`, reserved by
/// ICANN in 2024). A reverse lookup's labels are an address, a device's are its serial number:
/// a DGA score there says nothing and would alert on every PTR query.
const SPECIAL_USE: [&str; 6] = ["arpa", "local", "localhost", "invalid", "onion", "internal"];

/// True for what the model should not score: IP literals, single labels and special-use names.
fn unscored(name: &str) -> bool {
    name.is_empty()
        || !name.contains('.')
        || name.contains(':')
        || name.bytes().all(|c| c.is_ascii_digit() || c == b'.')
        || special_use(name)
}

/// True for a name under a special-use top-level name ([`SPECIAL_USE`]).
pub(super) fn special_use(name: &str) -> bool {
    let tld = name.trim_end_matches('.').rsplit('.').next().unwrap_or("");
    SPECIAL_USE.iter().any(|s| tld.eq_ignore_ascii_case(s))
}

/// The alert category of the domain model's alerts.
const NAME_CATEGORY: &str = "Machine learning: generated or malicious-looking name";

/// The score of `name`, when scoring is on and the name is one to score.
pub(super) fn score(cx: &mut Cx<'_>, name: &str) -> Option<f32> {
    let s = cx.names?;
    if unscored(name) {
        return None;
    }
    Some(cx.name_cache.get_or(name, &s.model))
}

/// Writes `"name_score": 0.123456` into an event's `palisade` object (the name is the event's
/// own: `dns.queries[0].rrname`, `tls.sni`, `quic.sni`, `http.hostname`; which model scored it is
/// in alerts, `stats` events and the replay summary, not repeated in every event).
pub(super) fn write(o: &mut Obj<'_>, score: f32) {
    let mut b = [0u8; 8];
    o.raw("name_score", fixed6(&mut b, score));
}

/// A score in 0..=1 as `d.dddddd`, without the float formatter (this runs for every event).
pub(super) fn fixed6(b: &mut [u8; 8], score: f32) -> &[u8] {
    let x = if score.is_nan() {
        0.0
    } else {
        score.clamp(0.0, 1.0)
    };
    let mut v = (x as f64 * 1e6).round() as u32;
    b[1] = b'.';
    for i in (2..8).rev() {
        b[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    b[0] = b'0' + v.min(9) as u8;
    &b[..]
}

/// Scores a name that intel did not decide, remembers the flow's highest score, and alerts or
/// blocks above the thresholds. `action` is what a block does for this field.
pub(super) fn check(
    cx: &mut Cx<'_>,
    flow: &mut Flow,
    dir: usize,
    field: &str,
    name: &str,
    action: Verdict,
    intel_decided: bool,
) {
    let Some(sc) = cx.names else { return };
    let Some(score) = score(cx, name) else { return };
    cx.stats.names_scored += 1;
    if score > flow.name_score {
        flow.name_score = score;
    }
    if sc.shadow || intel_decided {
        return;
    }
    // A client blocked after its NXDOMAIN burst (`--name-burst-block`): its names at or above
    // the burst threshold, as it sends them (the caller does not check answers' names here).
    if score >= cx.bursts.score && cx.burst.is_some_and(|b| b.block) {
        let ((client, _), _) = flow.meta.ends(dir);
        if let Some(b) = cx.bursts.blocked(client, cx.now) {
            burst_blocked(cx, flow, dir, field, name, score, action, b);
            return;
        }
    }
    if score < sc.alert {
        return;
    }
    cx.stats.names_alerted += 1;
    let block = sc.block.is_some_and(|b| score >= b);
    let mut sig = crate::pool::Text::with_capacity(96);
    sig.push_str("PALISADE model domain score ");
    sig.push_str(field);
    sig.push(' ');
    sig.push_str(name);
    let spec = super::detector_spec(
        cx.mode,
        9_100_020,
        &sig,
        NAME_CATEGORY,
        block.then_some(action),
    );
    let version = sc.model.version();
    let (alert_t, block_t) = (sc.alert, sc.block);
    raise_alert(cx, flow, dir, spec, |p| {
        p.obj("model", |m| {
            m.str("name", "domain").str("version", version);
            let mut b = [0u8; 8];
            m.raw("score", fixed6(&mut b, score));
            m.raw("alert_threshold", fixed6(&mut b, alert_t));
            if let Some(t) = block_t {
                m.raw("block_threshold", fixed6(&mut b, t));
            }
        });
        p.str("field", field).str("value", name);
    });
}

/// A name of a client blocked after its NXDOMAIN burst: blocked as a listed name of its field
/// is (`action`; block mode), counted, and once a minute at most an alert (sid 9100023) naming
/// it and counting the client's names blocked since its last alert.
#[allow(clippy::too_many_arguments)]
fn burst_blocked(
    cx: &mut Cx<'_>,
    flow: &mut Flow,
    dir: usize,
    field: &str,
    name: &str,
    score: f32,
    action: Verdict,
    b: Blocked,
) {
    cx.stats.name_burst_blocked += 1;
    if !super::block_unless_noted(cx, flow, &b, action) {
        return;
    }
    let Some(sc) = cx.names else { return };
    let ((client, _), _) = flow.meta.ends(dir);
    let sig = crate::pool::Text::fmt(format_args!(
        "PALISADE model DGA host blocked: {} names at or above the burst threshold blocked in {} s",
        b.count,
        b.since_s()
    ));
    let spec = super::detector_spec(cx.mode, 9_100_023, &sig, NAME_CATEGORY, Some(action));
    let version = sc.model.version();
    let threshold = cx.bursts.score;
    raise_alert(cx, flow, dir, spec, |p| {
        burst_model(p, version, Some(score), threshold);
        p.obj("burst", |o| {
            o.ip("client", client);
            b.write(o, "blocked_names");
        });
        p.str("field", field).str("value", name);
    });
}

/// The domain model's object in a burst's alerts: its version, the name's score (when the
/// alert is about one name) and the burst threshold.
fn burst_model(p: &mut Obj<'_>, version: &str, score: Option<f32>, threshold: f32) {
    p.obj("model", |m| {
        m.str("name", "domain").str("version", version);
        let mut b = [0u8; 8];
        if let Some(score) = score {
            m.raw("score", fixed6(&mut b, score));
        }
        m.raw("burst_threshold", fixed6(&mut b, threshold));
    });
}

/// `name` lower-cased and without its trailing dot, written into `buf`; `None` when it is longer
/// than the buffer.
pub(super) fn lowered<'a>(name: &str, buf: &'a mut [u8]) -> Option<&'a str> {
    let t = name.strip_suffix('.').unwrap_or(name);
    let lower = buf.get_mut(..t.len())?;
    lower.copy_from_slice(t.as_bytes());
    lower.make_ascii_lowercase();
    std::str::from_utf8(lower).ok()
}

/// An NXDOMAIN answer for `name` to the client that asked: a name the model scores at or above the
/// burst threshold (its 1e-3 point) is recorded for the client (`super::bursts`), and the entry
/// that completes a burst raises an alert naming the client, the window and every name with its
/// score (and, with `--name-burst-block`, blocks the client's later suspicious names: `check`).
/// Nothing in shadow mode or with bursts off, and names an intel list holds do not count.
pub(super) fn nxdomain(cx: &mut Cx<'_>, flow: &mut Flow, dir: usize, name: &str) {
    let (Some(sc), Some(cfg)) = (cx.names, cx.burst) else {
        return;
    };
    if sc.shadow {
        return;
    }
    // The response's event scored this name already: the cache answers.
    let Some(score) = score(cx, name) else { return };
    // Intel goes first, as for single names: a listed name (allowed, or already blocked and
    // explained) does not count.
    if score < cx.bursts.score || cx.intel.match_domain(name).is_some() {
        return;
    }
    let mut buf = [0u8; MAX_NAME];
    let Some(lower) = lowered(name, &mut buf) else {
        return;
    };
    cx.stats.name_burst_names += 1;
    // The querier is where the answer goes (the flow's client, unless the capture missed the
    // query and took the answer's sender for the client).
    let (_, (client, _)) = flow.meta.ends(dir);
    let found = cx
        .bursts
        .observe(sc.model.psl(), cfg, client, lower, score, cx.now);
    let Some(found) = found else { return };
    cx.stats.name_bursts += 1;
    let window_s = cfg.window_ns / 1_000_000_000;
    let sig = crate::pool::Text::fmt(format_args!(
        "PALISADE model DGA burst: {} NXDOMAIN names in distinct domains within {window_s} s",
        found.n
    ));
    // Nothing to stop: the names already failed to resolve.
    let spec = super::detector_spec(cx.mode, 9_100_022, &sig, NAME_CATEGORY, None);
    let version = sc.model.version();
    let threshold = cx.bursts.score;
    raise_alert(cx, flow, dir, spec, |p| {
        burst_model(p, version, None, threshold);
        p.obj("burst", |o| {
            o.ip("client", client)
                .u64("count", found.n as u64)
                .u64("window_s", window_s as u64);
            if cfg.block {
                o.u64("block_s", (super::bursts::BLOCK_NS / 1_000_000_000) as u64);
            }
            o.arr("names", |a| {
                for (n, s) in found.iter() {
                    a.obj(|x| {
                        let mut b = [0u8; 8];
                        x.str("rrname", n).raw("score", fixed6(&mut b, s));
                    });
                }
            });
        });
        p.str("field", "dns.rrname").str("value", lower);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_not_scored() {
        for n in [
            "",
            "localhost",
            "10.0.0.1",
            "::1",
            "[fe80::1]",
            "2001:db8::1",
            "4.4.8.8.in-addr.arpa",
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.IP6.ARPA.",
            "printer.home.arpa",
            "_googlecast._tcp.local",
            "chromecast-8a7b6c5d4e3f2a1b._googlecast._tcp.local.",
            "my-laptop.localhost",
            "x.invalid",
            "duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad.onion",
            "vault.corp.internal",
        ] {
            assert!(unscored(n), "{n}");
        }
        assert!(!unscored("example.com"));
        assert!(!unscored("1.example"));
        // Only the last label counts: these are ordinary registered names.
        assert!(!unscored("arpa.example.com"));
        assert!(!unscored("local.news"));
        assert!(!unscored("onion.com."));
    }

    #[test]
    fn cache_keeps_a_working_set_and_gives_the_models_scores() {
        let model = DomainModel::bundled();
        let mut c = ScoreCache::default();
        let mut f = Default::default();
        let names: Vec<String> = (0..2000)
            .map(|i| format!("h{i}.example{}.com", i % 7))
            .collect();
        let first: Vec<f32> = names.iter().map(|n| c.get_or(n, &model)).collect();
        assert_eq!(c.hits, 0);
        // 2,000 names in 2,048 sets of 4: a second pass is answered from the cache (but for
        // the sets that drew more than four: a cyclic pass misses all of such a set's names,
        // about 36 expected), and every answer is the model's own score for that name.
        for (n, s) in names.iter().zip(&first) {
            assert_eq!(c.get_or(n, &model), *s);
            assert_eq!(*s, model.score_with(n.as_bytes(), &mut f), "{n}");
        }
        assert!(c.hits >= 1900, "{}", c.hits);
        // Twice the capacity cycled through: bounded, nothing wrong, the newest kept.
        let more: Vec<String> = (0..16_384).map(|i| format!("x{i}.example.net")).collect();
        for n in &more {
            c.get_or(n, &model);
        }
        let before = c.hits;
        for n in &more[16_384 - 1000..] {
            assert_eq!(c.get_or(n, &model), model.score_with(n.as_bytes(), &mut f));
        }
        assert!(c.hits - before > 900, "{}", c.hits - before);
        c.clear();
        let before = c.hits;
        c.get_or(&more[16_383], &model);
        assert_eq!(c.hits, before, "cleared");
    }

    #[test]
    fn last_name_memo() {
        let model = DomainModel::bundled();
        let mut c = ScoreCache::default();
        let mut f = Default::default();
        let (a, b) = ("qwxzkvbt.example.com", "www.example.org");
        let sa = c.get_or(a, &model);
        assert_eq!(c.hits, 0);
        assert_eq!(c.get_or(a, &model), sa);
        assert_eq!(c.hits, 1);
        // Another name replaces the memo; the first still comes from the table, unchanged.
        let sb = c.get_or(b, &model);
        assert_eq!(sb, model.score_with(b.as_bytes(), &mut f));
        assert_eq!(c.get_or(a, &model), sa);
        assert_eq!(c.hits, 2);
        // A name longer than the memo holds is kept by the table only, and right.
        let long = format!("{}.example.com", "a".repeat(300));
        let sl = c.get_or(&long, &model);
        assert_eq!(c.get_or(&long, &model), sl);
        assert_eq!(sl, model.score_with(long.as_bytes(), &mut f));
        // A prefix of the memo's name is another name.
        assert_eq!(
            c.get_or("qwxzkvbt.example.co", &model),
            model.score_with(b"qwxzkvbt.example.co", &mut f)
        );
    }

    #[test]
    fn score_formatting() {
        let mut b = [0u8; 8];
        for (x, want) in [
            (0.0, "0.000000"),
            (1.0, "1.000000"),
            (0.9994281, "0.999428"),
            (0.0000004, "0.000000"),
            (0.9999996, "1.000000"),
            (f32::NAN, "0.000000"),
            (-3.0, "0.000000"),
        ] {
            let got = std::str::from_utf8(fixed6(&mut b, x)).unwrap_or("");
            assert_eq!(got, want, "{x}");
        }
    }
}
