//! IPv4 and IPv6 reassembly of fragmented datagrams.
//!
//! # Bounds and eviction
//! - At most [`DefragConfig::max_frags`] fragments per datagram (more: the datagram is dropped,
//!   anomaly `defrag.max_frags`).
//! - At most [`DefragConfig::max_datagrams`] datagrams in flight; a new one beyond that evicts the
//!   oldest (counter `evicted`).
//! - Bytes held by all datagrams are charged to a shared [`Budget`]; a fragment that does not fit
//!   drops its datagram (counter `refused`).
//! - A datagram not completed within [`DefragConfig::timeout_ns`] is dropped (counter `timeouts`).
//! - The buffers of ended datagrams are kept for the next ones (at most [`SPARE`] of each kind,
//!   reassembly buffers of at most [`SPARE_BYTES`]), so fragments allocate nothing once the
//!   defragmenter has seen datagrams of their size.
//!
//! # Overlaps
//! IPv4: the first copy of a byte wins; an overlap whose bytes differ raises
//! `defrag.overlap_different` (and any overlap counts in `overlaps`). IPv6: any overlap drops the
//! whole datagram (RFC 5722), anomaly `defrag.ipv6_overlap`.

use std::collections::VecDeque;
use std::net::IpAddr;

use hashbrown::HashMap;

use super::Budget;
use crate::pool::Pool;

/// Buffers of ended datagrams kept for reuse (of each kind: reassembly and coverage).
pub const SPARE: usize = 32;

/// Largest reassembly buffer kept for reuse.
pub const SPARE_BYTES: usize = 16 << 10;

/// Limits for the defragmenter.
#[derive(Debug, Clone, Copy)]
pub struct DefragConfig {
    /// Fragments per datagram.
    pub max_frags: usize,
    /// Datagrams in flight.
    pub max_datagrams: usize,
    /// Time a datagram may take to complete.
    pub timeout_ns: i64,
}

impl Default for DefragConfig {
    fn default() -> Self {
        DefragConfig {
            max_frags: 256,
            max_datagrams: 16384,
            timeout_ns: 60_000_000_000,
        }
    }
}

/// Counters.
#[derive(Debug, Default, Clone, Copy)]
pub struct DefragStats {
    /// Fragments seen.
    pub fragments: u64,
    /// Datagrams completed.
    pub reassembled: u64,
    /// Datagrams dropped on timeout.
    pub timeouts: u64,
    /// Datagrams evicted because too many were in flight.
    pub evicted: u64,
    /// Datagrams dropped because the memory budget was exhausted.
    pub refused: u64,
    /// Overlapping fragments seen.
    pub overlaps: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    id: u32,
    vlan: [u16; 3],
}

#[derive(Debug)]
struct Datagram {
    data: Vec<u8>,
    /// Covered byte ranges [start, end), sorted, merged.
    have: Vec<(u32, u32)>,
    frags: usize,
    total: Option<u32>,
    charged: usize,
    /// Generation number to match entries of the age queue.
    gen: u64,
}

/// What a fragment produced.
#[derive(Debug)]
pub enum DefragResult {
    /// Still waiting for more fragments.
    Pending,
    /// The datagram is complete: its upper-layer payload (the reassembly buffer itself).
    Complete(Vec<u8>),
    /// The fragment (and its datagram) was dropped; the anomaly name says why.
    Dropped(&'static str),
}

/// The defragmenter. Time is an argument; nothing reads a clock.
#[derive(Debug)]
pub struct Defrag {
    cfg: DefragConfig,
    map: HashMap<Key, Datagram, foldhash::fast::RandomState>,
    age: VecDeque<(Key, u64, i64)>,
    gen: u64,
    /// Counters.
    pub stats: DefragStats,
    /// Anomaly raised by the last call (besides a drop), e.g. differing overlap.
    pub last_anomaly: Option<&'static str>,
    spare_data: Pool<Vec<u8>>,
    spare_have: Pool<Vec<(u32, u32)>>,
}

impl Defrag {
    /// A defragmenter with the given limits.
    pub fn new(cfg: DefragConfig) -> Defrag {
        Defrag {
            cfg,
            map: HashMap::default(),
            age: VecDeque::new(),
            gen: 0,
            stats: DefragStats::default(),
            last_anomaly: None,
            spare_data: Pool::new(),
            spare_have: Pool::new(),
        }
    }

    /// Keeps a completed datagram's buffer (handed out by [`DefragResult::Complete`]) for the
    /// next datagram, within [`SPARE`] and [`SPARE_BYTES`].
    pub fn recycle(&mut self, data: Vec<u8>) {
        if data.capacity() <= SPARE_BYTES {
            self.spare_data.put(data, SPARE, Vec::clear);
        }
    }

    fn recycle_have(&mut self, have: Vec<(u32, u32)>) {
        if have.capacity() <= 256 {
            self.spare_have.put(have, SPARE, Vec::clear);
        }
    }

    fn recycle_datagram(&mut self, d: Datagram) {
        self.recycle(d.data);
        self.recycle_have(d.have);
    }

    /// Datagrams in flight.
    pub fn in_flight(&self) -> usize {
        self.map.len()
    }

    fn drop_key(&mut self, k: &Key, budget: &mut Budget) {
        if let Some(d) = self.map.remove(k) {
            budget.release(d.charged);
            self.recycle_datagram(d);
        }
    }

    /// Drops every pending datagram (end of input).
    pub fn clear(&mut self, budget: &mut Budget) {
        // The map is lent out while its datagrams' buffers go to the spares (and keeps its
        // room).
        let mut map = std::mem::take(&mut self.map);
        for (_, d) in map.drain() {
            budget.release(d.charged);
            self.recycle_datagram(d);
        }
        self.map = map;
        self.age.clear();
    }

    /// Drops datagrams older than the timeout.
    pub fn expire(&mut self, now_ns: i64, budget: &mut Budget) {
        while let Some(&(k, gen, t)) = self.age.front() {
            if now_ns.saturating_sub(t) < self.cfg.timeout_ns {
                break;
            }
            self.age.pop_front();
            if self.map.get(&k).is_some_and(|d| d.gen == gen) {
                self.stats.timeouts += 1;
                self.drop_key(&k, budget);
            }
        }
    }

    /// Adds one fragment. `v6` selects the RFC 5722 overlap policy.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        now_ns: i64,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        vlan: [u16; 3],
        frag: crate::wire::FragInfo,
        payload: &[u8],
        budget: &mut Budget,
    ) -> DefragResult {
        self.stats.fragments += 1;
        self.last_anomaly = None;
        self.expire(now_ns, budget);
        let v6 = src.is_ipv6();
        let key = Key {
            src,
            dst,
            proto: if v6 { 0 } else { proto },
            id: frag.id,
            vlan,
        };
        let start = frag.offset;
        let end = start as u64 + payload.len() as u64;
        if end > 65535 {
            self.drop_key(&key, budget);
            return DefragResult::Dropped("defrag.ipv4_too_large");
        }
        let end = end as u32;
        if frag.more && !payload.len().is_multiple_of(8) {
            self.drop_key(&key, budget);
            return DefragResult::Dropped("defrag.frag_not_multiple_of_8");
        }
        if !self.map.contains_key(&key) {
            if self.map.len() >= self.cfg.max_datagrams {
                // Evict the oldest live datagram.
                while let Some((k, gen, _)) = self.age.pop_front() {
                    if self.map.get(&k).is_some_and(|d| d.gen == gen) {
                        self.stats.evicted += 1;
                        self.drop_key(&k, budget);
                        break;
                    }
                }
            }
            self.gen += 1;
            let overhead = std::mem::size_of::<Datagram>() + 64;
            if !budget.try_charge(overhead) {
                self.stats.refused += 1;
                return DefragResult::Dropped("defrag.memcap");
            }
            let data = self.spare_data.pop().unwrap_or_default();
            let have = self.spare_have.pop().unwrap_or_default();
            self.map.insert(
                key,
                Datagram {
                    data,
                    have,
                    frags: 0,
                    total: None,
                    charged: overhead,
                    gen: self.gen,
                },
            );
            self.age.push_back((key, self.gen, now_ns));
        }
        let Some(d) = self.map.get_mut(&key) else {
            return DefragResult::Dropped("defrag.memcap");
        };
        d.frags += 1;
        if d.frags > self.cfg.max_frags {
            self.drop_key(&key, budget);
            return DefragResult::Dropped("defrag.max_frags");
        }
        if !frag.more {
            if d.total.is_some_and(|t| t != end) || d.have.last().is_some_and(|&(_, e)| e > end) {
                self.drop_key(&key, budget);
                return DefragResult::Dropped("defrag.inconsistent_length");
            }
            d.total = Some(end);
        } else if d.total.is_some_and(|t| end > t) {
            self.drop_key(&key, budget);
            return DefragResult::Dropped("defrag.inconsistent_length");
        }
        if d.data.len() < end as usize {
            let grow = end as usize - d.data.len();
            if !budget.try_charge(grow) {
                self.stats.refused += 1;
                self.drop_key(&key, budget);
                return DefragResult::Dropped("defrag.memcap");
            }
            d.charged += grow;
            d.data.resize(end as usize, 0);
        }
        // Copy only the bytes not covered yet (first copy wins); compare the covered ones.
        let mut overlap = false;
        let mut differ = false;
        let mut cur = start;
        for &(hs, he) in &d.have {
            if he <= cur || hs >= end {
                continue;
            }
            if hs > cur {
                let (a, b) = (cur as usize, hs as usize);
                d.data[a..b].copy_from_slice(&payload[a - start as usize..b - start as usize]);
            }
            let (a, b) = (hs.max(cur) as usize, he.min(end) as usize);
            if a < b {
                overlap = true;
                if d.data[a..b] != payload[a - start as usize..b - start as usize] {
                    differ = true;
                }
            }
            cur = cur.max(he);
        }
        if cur < end {
            let (a, b) = (cur as usize, end as usize);
            d.data[a..b].copy_from_slice(&payload[a - start as usize..b - start as usize]);
        }
        if overlap {
            self.stats.overlaps += 1;
            if v6 {
                self.drop_key(&key, budget);
                return DefragResult::Dropped("defrag.ipv6_overlap");
            }
            if differ {
                self.last_anomaly = Some("defrag.overlap_different");
            }
        }
        // Merge [start, end) into the coverage list.
        let mut merged = (start, end);
        d.have.retain(|&(s, e)| {
            if e < merged.0 || s > merged.1 {
                true
            } else {
                merged = (merged.0.min(s), merged.1.max(e));
                false
            }
        });
        let pos = d.have.partition_point(|&(s, _)| s < merged.0);
        d.have.insert(pos, merged);
        if let (Some(t), [(0, e)]) = (d.total, d.have.as_slice()) {
            if *e == t {
                let mut d = self.map.remove(&key).expect("present");
                budget.release(d.charged);
                self.stats.reassembled += 1;
                d.data.truncate(t as usize);
                self.recycle_have(std::mem::take(&mut d.have));
                return DefragResult::Complete(d.data);
            }
        }
        DefragResult::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::FragInfo;

    fn frag(
        d: &mut Defrag,
        b: &mut Budget,
        v6: bool,
        off: u32,
        more: bool,
        data: &[u8],
    ) -> Option<Vec<u8>> {
        let (s, t): (IpAddr, IpAddr) = if v6 {
            (
                "2001:db8::1".parse().unwrap(),
                "2001:db8::2".parse().unwrap(),
            )
        } else {
            ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap())
        };
        match d.add(
            0,
            s,
            t,
            17,
            [0, 0, 0],
            FragInfo {
                id: 7,
                offset: off,
                more,
            },
            data,
            b,
        ) {
            DefragResult::Complete(p) => Some(p),
            DefragResult::Pending => None,
            DefragResult::Dropped(why) => Some(why.as_bytes().to_vec()),
        }
    }

    /// A completed datagram's buffer, given back, reassembles the next datagram: a longer one
    /// first, so stale bytes past the new one's end would show; a dropped datagram's buffers
    /// come back too; and what is kept is bounded.
    #[test]
    fn buffers_are_reused_without_stale_bytes() {
        let mut b = Budget::new(1 << 20);
        let mut d = Defrag::new(DefragConfig::default());
        assert_eq!(frag(&mut d, &mut b, false, 16, false, b"CCCCCCCC"), None);
        assert_eq!(frag(&mut d, &mut b, false, 0, true, b"AAAAAAAA"), None);
        let long = frag(&mut d, &mut b, false, 8, true, b"BBBBBBBB").unwrap();
        assert_eq!(long, b"AAAAAAAABBBBBBBBCCCCCCCC");
        let ptr = long.as_ptr();
        d.recycle(long);
        // The next datagram fills the same buffer, its gaps with its own bytes only.
        assert_eq!(frag(&mut d, &mut b, false, 8, false, b"yy"), None);
        let short = frag(&mut d, &mut b, false, 0, true, b"xxxxxxxx").unwrap();
        assert_eq!(short, b"xxxxxxxxyy");
        assert_eq!(short.as_ptr(), ptr, "the buffer was reused");
        d.recycle(short);
        // A datagram dropped for an overlap (IPv6) returns its buffers as well.
        assert_eq!(frag(&mut d, &mut b, true, 8, false, b"BBBBBBBB"), None);
        assert_eq!(
            frag(&mut d, &mut b, true, 0, true, b"AAAAAAAABBBBBBBB").unwrap(),
            b"defrag.ipv6_overlap"
        );
        assert_eq!(d.spare_data.len(), 1);
        assert_eq!(b.used(), 0);
        for _ in 0..SPARE + 5 {
            d.recycle(Vec::with_capacity(64));
        }
        d.recycle(Vec::with_capacity(SPARE_BYTES + 1));
        assert_eq!(d.spare_data.len(), SPARE);
        assert!(d.spare_data.iter().all(|v| v.capacity() <= SPARE_BYTES));
    }

    #[test]
    fn v4_first_copy_wins_and_v6_overlap_drops() {
        let mut b = Budget::new(1 << 20);
        let mut d = Defrag::new(DefragConfig::default());
        // The second fragment overlaps 8..16 with different bytes: anomaly, first copy kept.
        assert_eq!(frag(&mut d, &mut b, false, 8, false, b"BBBBBBBB"), None);
        let out = frag(&mut d, &mut b, false, 0, true, b"AAAAAAAAZZZZZZZZ").unwrap();
        assert_eq!(out, b"AAAAAAAABBBBBBBB");
        assert_eq!(d.last_anomaly, Some("defrag.overlap_different"));
        let mut d = Defrag::new(DefragConfig::default());
        assert_eq!(frag(&mut d, &mut b, true, 8, false, b"BBBBBBBB"), None);
        assert_eq!(
            frag(&mut d, &mut b, true, 0, true, b"AAAAAAAABBBBBBBB").unwrap(),
            b"defrag.ipv6_overlap"
        );
        assert_eq!(d.in_flight(), 0);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn caps_hold() {
        let mut b = Budget::new(1 << 20);
        let mut d = Defrag::new(DefragConfig {
            max_datagrams: 4,
            ..Default::default()
        });
        for id in 0..100u32 {
            let _ = d.add(
                0,
                "10.0.0.1".parse().unwrap(),
                "10.0.0.2".parse().unwrap(),
                6,
                [0, 0, 0],
                FragInfo {
                    id,
                    offset: 0,
                    more: true,
                },
                &[0; 8],
                &mut b,
            );
        }
        assert_eq!(d.in_flight(), 4);
        assert_eq!(d.stats.evicted, 96);
        d.expire(61_000_000_000, &mut b);
        assert_eq!((d.in_flight(), b.used()), (0, 0));
    }
}
