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

use palisade_classifiers::flow::{FlowModel, FlowRecord};
use palisade_classifiers::DomainModel;

use super::{raise_alert, AlertSpec, AppProto, Cx, Flow, Mode, Verdict};
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
    let spec = AlertSpec {
        gid: 1,
        sid: 9_100_021,
        rev: 1,
        signature: "PALISADE model flow score",
        category: "Machine learning: beaconing, tunnelling, scanning or exfiltration-like flow",
        severity: if block { 1 } else { 2 },
        action: Verdict::Drop,
        enforce: block && cx.mode == Mode::Block,
        target: None,
        metadata: &[],
    };
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

/// Entries in [`ScoreCache`].
const CACHE_SLOTS: usize = 8192;
/// Longest name the cache holds (longer ones are scored every time).
const CACHE_NAME: usize = 62;

/// Recent scores, so a name logged in a request, its response and its alert check is scored
/// once: direct-mapped by a cheap mix of the name's length and its first and last 8 bytes, the
/// whole name compared on a hit, so a collision (or a crafted name) costs a recomputation and
/// never a wrong score. Names longer than 62 bytes are scored every time. Fixed size (8,192
/// slots, about 550 KB), allocated once per engine; cleared when the model changes.
#[derive(Debug)]
pub(super) struct ScoreCache {
    slots: Box<[Slot]>,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Feature scratch space, so a miss does not zero a fresh one.
    scratch: palisade_classifiers::features::NameFeatures,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    len: u8,
    name: [u8; CACHE_NAME],
    score: f32,
}

impl Default for ScoreCache {
    fn default() -> Self {
        ScoreCache {
            slots: vec![
                Slot {
                    len: 0,
                    name: [0; CACHE_NAME],
                    score: 0.0,
                };
                CACHE_SLOTS
            ]
            .into_boxed_slice(),
            hits: 0,
            scratch: Default::default(),
        }
    }
}

/// The cache slot of a name (1..=62 bytes).
fn slot_of(b: &[u8]) -> usize {
    let n = b.len();
    let mut head = [0u8; 8];
    let mut tail = [0u8; 8];
    let k = n.min(8);
    head[..k].copy_from_slice(&b[..k]);
    tail[..k].copy_from_slice(&b[n - k..]);
    let x = u64::from_le_bytes(head).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ u64::from_le_bytes(tail)
            .rotate_left(29)
            .wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
        ^ (n as u64).wrapping_mul(0x1656_67b1_9e37_79f9);
    ((x ^ (x >> 31)) >> 17) as usize % CACHE_SLOTS
}

impl ScoreCache {
    /// Forgets every score (the model changed).
    pub(super) fn clear(&mut self) {
        for s in self.slots.iter_mut() {
            s.len = 0;
        }
    }

    fn get_or(&mut self, name: &str, model: &DomainModel) -> f32 {
        let b = name.as_bytes();
        if b.is_empty() || b.len() > CACHE_NAME {
            return model.score_with(b, &mut self.scratch);
        }
        let i = slot_of(b);
        if let Some(slot) = self.slots.get(i) {
            if slot.len as usize == b.len() && &slot.name[..b.len()] == b {
                self.hits += 1;
                return slot.score;
            }
        }
        let score = model.score_with(b, &mut self.scratch);
        if let Some(slot) = self.slots.get_mut(i) {
            slot.len = b.len() as u8;
            slot.name[..b.len()].copy_from_slice(b);
            slot.score = score;
        }
        score
    }
}

/// True for what the model should not score: IP literals and single labels.
fn unscored(name: &str) -> bool {
    name.is_empty()
        || !name.contains('.')
        || name.contains(':')
        || name.bytes().all(|c| c.is_ascii_digit() || c == b'.')
}

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
    if sc.shadow || intel_decided || score < sc.alert {
        return;
    }
    cx.stats.names_alerted += 1;
    let block = sc.block.is_some_and(|b| score >= b);
    let mut sig = String::with_capacity(96);
    sig.push_str("PALISADE model domain score ");
    sig.push_str(field);
    sig.push(' ');
    sig.push_str(name);
    let spec = AlertSpec {
        gid: 1,
        sid: 9_100_020,
        rev: 1,
        signature: &sig,
        category: "Machine learning: generated or malicious-looking name",
        severity: if block { 1 } else { 2 },
        action,
        enforce: block && cx.mode == Mode::Block,
        target: None,
        metadata: &[],
    };
    let version = sc.model.version();
    let (alert_t, block_t) = (sc.alert, sc.block);
    raise_alert(cx, flow, dir, spec, |p| {
        p.obj("model", |m| {
            m.str("name", "domain").str("version", version);
            let mut b = [0u8; 16];
            m.raw(
                "score",
                super::fmt_small(&mut b, format_args!("{score:.6}")),
            );
            let mut b = [0u8; 16];
            m.raw(
                "alert_threshold",
                super::fmt_small(&mut b, format_args!("{alert_t:.6}")),
            );
            if let Some(t) = block_t {
                let mut b = [0u8; 16];
                m.raw(
                    "block_threshold",
                    super::fmt_small(&mut b, format_args!("{t:.6}")),
                );
            }
        });
        p.str("field", field).str("value", name);
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
        ] {
            assert!(unscored(n), "{n}");
        }
        assert!(!unscored("example.com"));
        assert!(!unscored("1.example"));
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
