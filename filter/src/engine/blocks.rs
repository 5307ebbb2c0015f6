//! Blocking after an alert, for the detectors that judge a series across packets or connections
//! (DNS tunnels, beacons): once a series has alerted, blocking on, its later queries or
//! connections are blocked until its quiet time ends. Each is counted; one alert a minute at
//! most, raised by the first blocked one a minute or more after the series' last alert, says how
//! many were blocked since, so the log explains every block without a line per packet.
//!
//! Sans-IO and fixed size: [`Notes`] is two words a series keeps; time comes in as arguments and
//! may go back (a hostile capture's timestamps): counting then starts over from the earlier time.

use crate::eve::Obj;

/// A blocked series raises at most one alert about its blocked items this often (a minute).
pub const NOTE_NS: i64 = 60_000_000_000;

/// What a series keeps to note its blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Notes {
    /// When the last alert about the series was raised (its own, or a note of blocks).
    noted_ns: i64,
    /// Items blocked since then.
    blocked: u32,
}

impl Default for Notes {
    fn default() -> Self {
        Notes {
            noted_ns: i64::MIN,
            blocked: 0,
        }
    }
}

/// One blocked item (a query, a connection) of a series blocked after its alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Blocked {
    /// Items of the series blocked since its last alert, this one included.
    pub count: u32,
    /// Nanoseconds since that alert.
    pub since_ns: i64,
    /// Raise an alert about them now (none was for [`NOTE_NS`]).
    pub note: bool,
    /// Nanoseconds until the block ends.
    pub left_ns: i64,
}

impl Blocked {
    /// Writes a note's counts into its alert's detector object: `key` (what was blocked since
    /// the series' last alert), `since_s` and `block_left_s`.
    pub fn write(&self, o: &mut Obj<'_>, key: &str) {
        o.u64(key, self.count as u64)
            .u64("since_s", self.since_s())
            .u64("block_left_s", (self.left_ns.max(0) / 1_000_000_000) as u64);
    }

    /// Whole seconds since the series' last alert.
    pub fn since_s(&self) -> u64 {
        (self.since_ns.max(0) / 1_000_000_000) as u64
    }
}

impl Notes {
    /// The series alerted at `now`.
    pub fn alerted(&mut self, now: i64) {
        *self = Notes {
            noted_ns: now,
            blocked: 0,
        };
    }

    /// Counts an item blocked at `now` in a series blocked until `until`.
    pub fn block(&mut self, now: i64, until: i64) -> Blocked {
        self.blocked = self.blocked.saturating_add(1);
        // Time gone back: count from now.
        self.noted_ns = self.noted_ns.min(now);
        let since_ns = now.saturating_sub(self.noted_ns);
        let b = Blocked {
            count: self.blocked,
            since_ns,
            note: since_ns >= NOTE_NS,
            left_ns: until.saturating_sub(now),
        };
        if b.note {
            self.alerted(now);
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn one_note_a_minute_counting_the_blocks_since() {
        let mut n = Notes::default();
        n.alerted(10 * S);
        let until = 10 * S + 3600 * S;
        let mut notes = Vec::new();
        // A block every 7 s for 10 minutes.
        for k in 1..=86 {
            let now = 10 * S + k * 7 * S;
            let b = n.block(now, until);
            assert_eq!(b.left_ns, until - now);
            if b.note {
                notes.push((now, b));
            }
        }
        let mut last = 10 * S;
        for (now, b) in &notes {
            assert_eq!(b.since_ns, now - last);
            assert!((NOTE_NS..NOTE_NS + 7 * S).contains(&b.since_ns), "{b:?}");
            assert_eq!(b.count as i64, b.since_ns / (7 * S));
            last = *now;
        }
        // 602 s: a note every 63 s (the first block a minute after the last).
        assert_eq!(notes.len(), 9, "{notes:?}");
    }

    #[test]
    fn hostile_times_neither_overflow_nor_note_early() {
        let mut n = Notes::default();
        for now in [
            i64::MAX,
            i64::MIN,
            0,
            -S,
            i64::MAX - 1,
            2 * NOTE_NS,
            i64::MIN + 1,
        ] {
            let b = n.block(now, i64::MAX);
            assert!(b.since_ns >= 0 && b.left_ns >= 0, "{b:?}");
            let b = n.block(now, i64::MIN);
            assert!(!b.note || b.since_ns >= NOTE_NS);
        }
        // Never alerted: the first block notes at once (nothing explained it yet).
        let mut n = Notes::default();
        assert!(n.block(5 * S, 6 * S).note);
    }
}
