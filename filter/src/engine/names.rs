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

use palisade_classifiers::DomainModel;

use super::{raise_alert, AlertSpec, Cx, Flow, Mode, Verdict};
use crate::eve::Obj;

/// The model and what to do with its scores.
#[derive(Debug, Clone)]
pub struct NameScoring {
    /// The loaded model (shared by the workers; a reload swaps the `Arc`).
    pub model: Arc<DomainModel>,
    /// Alert at or above this score.
    pub alert: f32,
    /// Block at or above this score (block mode); `None`: never.
    pub block: Option<f32>,
    /// Log scores only: no alert, no block.
    pub shadow: bool,
}

impl NameScoring {
    /// The shipped model with its default thresholds: alert where 1 in 10,000 held-out benign
    /// names scored higher when it was trained, never block.
    pub fn bundled() -> NameScoring {
        NameScoring::with_defaults(DomainModel::bundled())
    }

    /// A model with the default thresholds read from its file (0.9995 when it carries none).
    pub fn with_defaults(model: DomainModel) -> NameScoring {
        let alert = model.threshold_at_fpr("1e-4").unwrap_or(0.9995);
        NameScoring {
            model: Arc::new(model),
            alert,
            block: None,
            shadow: false,
        }
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
pub(super) fn score(cx: &Cx<'_>, name: &str) -> Option<f32> {
    let s = cx.names?;
    if unscored(name) {
        return None;
    }
    Some(s.model.score(name.as_bytes()))
}

/// Writes `"name_score": {"name", "score", "model"}` into an event's `palisade` object.
pub(super) fn write(o: &mut Obj<'_>, cx_model: &str, name: &str, score: f32) {
    o.obj("name_score", |n| {
        n.str("name", name);
        let mut b = [0u8; 16];
        n.raw(
            "score",
            super::fmt_small(&mut b, format_args!("{score:.6}")),
        );
        n.str("model", cx_model);
    });
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
}
