//! Names known to be good for QUIC (`--quic downgrade-unknown`): a name enters when a TLS
//! connection over TCP to it got its ServerHello with the flow still allowed (so the name was
//! checked against the lists and rules, and the server answered). QUIC to a name not (or no
//! longer) here is dropped, the client falls back to TCP, where TLS inspection works, and the
//! name is learnt for its next QUIC attempt.
//!
//! Fixed size, allocated once per engine: 16,384 direct-mapped slots of (keyed 64-bit hash of
//! the lower-cased name, expiry). A new name overwrites what shared its slot (counted); entries
//! expire after an hour. The hash is keyed per engine, so names cannot be crafted to evict a
//! chosen one. A hash collision can only let a QUIC connection through that TLS would have
//! been inspected for, about one in 2^64.

use std::hash::{BuildHasher, Hasher};

/// Slots in the table.
pub const SLOTS: usize = 16_384;
/// How long a learnt name stays good, nanoseconds.
pub const TTL_NS: i64 = 3_600_000_000_000;

/// The table.
#[derive(Debug)]
pub(super) struct KnownGood {
    slots: Box<[(u64, i64)]>,
    keys: super::Keys,
}

impl Default for KnownGood {
    fn default() -> Self {
        KnownGood {
            slots: vec![(0, 0); SLOTS].into_boxed_slice(),
            keys: super::Keys::random(),
        }
    }
}

impl KnownGood {
    /// An empty one whose hashes are keyed by `keys` ([`super::Config::hash_seed`]).
    pub(super) fn with_keys(keys: super::Keys) -> Self {
        KnownGood {
            keys,
            ..Self::default()
        }
    }

    fn hash(&self, name: &str) -> u64 {
        let mut h = self.keys.build_hasher();
        for b in name.bytes() {
            h.write_u8(b.to_ascii_lowercase());
        }
        h.finish() | 1
    }

    /// Learns `name` at `now`; true when it replaced another live name.
    pub(super) fn insert(&mut self, name: &str, now: i64) -> bool {
        let x = self.hash(name);
        let Some(slot) = self.slots.get_mut(x as usize % SLOTS) else {
            return false;
        };
        let replaced = slot.0 != 0 && slot.0 != x && slot.1 > now;
        *slot = (x, now.saturating_add(TTL_NS));
        replaced
    }

    /// Whether `name` was learnt and has not expired.
    pub(super) fn contains(&self, name: &str, now: i64) -> bool {
        let x = self.hash(name);
        self.slots
            .get(x as usize % SLOTS)
            .is_some_and(|&(h, until)| h == x && until > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learnt_names_are_found_until_they_expire_or_are_replaced() {
        let mut k = KnownGood::default();
        assert!(!k.contains("www.example.com", 0));
        assert!(!k.insert("www.example.com", 10));
        assert!(k.contains("WWW.Example.COM", 11));
        assert!(!k.contains("example.com", 11));
        assert!(!k.contains("www.example.com", 10 + TTL_NS));
        // Filling the table replaces older names (counted), never grows it.
        let mut replaced = 0;
        for i in 0..SLOTS * 2 {
            replaced += k.insert(&format!("n{i}.example"), 20) as usize;
        }
        assert!(replaced > SLOTS / 2, "{replaced}");
        assert_eq!(k.slots.len(), SLOTS);
    }
}
