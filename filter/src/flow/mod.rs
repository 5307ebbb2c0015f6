//! Flows: the table, IP defragmentation and TCP stream reassembly, all bounded.
//!
//! # Flow table
//! A slab of flows indexed by a `hashbrown` table whose hasher is seeded at random per process
//! (foldhash), so crafted addresses cannot force collisions. Each flow sits on one of four LRU
//! lists, one per timeout value (30 s, 60 s, 300 s, 600 s, as Suricata's defaults for UDP/ICMP
//! new, TCP new and closed, UDP established, TCP established). Within a list the head is the
//! oldest, so expiry pops heads in O(1) per flow and is exact.
//!
//! When the table is full (flow count or memory budget), the flow closest to its own expiry is
//! evicted (the smallest `last_seen + timeout` among the four heads), counted in `evicted`.
//!
//! # Memory
//! One [`Budget`] is shared by flows (a fixed charge each), defragmentation and stream buffers.
//! The default total is 320 MiB, which keeps the whole process under 512 MB.

pub mod defrag;
pub mod stream;

use std::hash::BuildHasher;
use std::net::IpAddr;

use hashbrown::HashTable;

/// A byte budget shared by everything that holds traffic-derived memory.
#[derive(Debug, Clone)]
pub struct Budget {
    cap: usize,
    used: usize,
    /// Charges refused because the budget was exhausted.
    pub refusals: u64,
}

impl Budget {
    /// A budget of `cap` bytes.
    pub fn new(cap: usize) -> Budget {
        Budget {
            cap,
            used: 0,
            refusals: 0,
        }
    }

    /// Charges `n` bytes if they fit.
    pub fn try_charge(&mut self, n: usize) -> bool {
        if self.used + n > self.cap {
            self.refusals += 1;
            return false;
        }
        self.used += n;
        true
    }

    /// Returns `n` bytes.
    pub fn release(&mut self, n: usize) {
        self.used = self.used.saturating_sub(n);
    }

    /// Bytes in use.
    pub fn used(&self) -> usize {
        self.used
    }

    /// The total.
    pub fn cap(&self) -> usize {
        self.cap
    }
}

/// A bidirectional flow key: both directions of a conversation map to the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// The lower (address, port) endpoint.
    pub a: (IpAddr, u16),
    /// The higher endpoint.
    pub b: (IpAddr, u16),
    /// IP protocol number.
    pub proto: u8,
    /// VLAN ids.
    pub vlan: [u16; 3],
    /// Where inside tunnels the flow sits: 0 for a bare flow, else the depth (bits 24 to 31)
    /// and the innermost VXLAN or Geneve segment id (bits 0 to 23), so the same addresses
    /// bare and tunnelled, or in two segments, are different flows.
    pub zone: u32,
}

impl FlowKey {
    /// Builds the key; the boolean is true when `src` is the `a` endpoint.
    pub fn new(
        src: (IpAddr, u16),
        dst: (IpAddr, u16),
        proto: u8,
        vlan: [u16; 3],
    ) -> (FlowKey, bool) {
        if src <= dst {
            (
                FlowKey {
                    a: src,
                    b: dst,
                    proto,
                    vlan,
                    zone: 0,
                },
                true,
            )
        } else {
            (
                FlowKey {
                    a: dst,
                    b: src,
                    proto,
                    vlan,
                    zone: 0,
                },
                false,
            )
        }
    }
}

/// Timeout classes (index into the LRU lists).
pub const TIMEOUTS_S: [i64; 4] = [30, 60, 300, 600];

/// Why a flow left the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Idle past its timeout.
    Timeout,
    /// Evicted to make room.
    Forced,
    /// End of input.
    Shutdown,
}

impl EndReason {
    /// As Suricata writes `flow.reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Timeout => "timeout",
            EndReason::Forced => "forced",
            EndReason::Shutdown => "shutdown",
        }
    }
}

const NIL: u32 = u32::MAX;

#[derive(Debug)]
struct Slot<V> {
    key: FlowKey,
    val: V,
    last_ns: i64,
    prev: u32,
    next: u32,
    class: u8,
    live: bool,
}

#[derive(Debug, Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

/// Table counters.
#[derive(Debug, Default, Clone, Copy)]
pub struct TableStats {
    /// Flows created.
    pub created: u64,
    /// Flows ended on timeout.
    pub timed_out: u64,
    /// Flows evicted to make room.
    pub evicted: u64,
}

/// The flow table. `V` is the per-flow state.
#[derive(Debug)]
pub struct FlowTable<V> {
    slots: Vec<Slot<V>>,
    free: Vec<u32>,
    index: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
    lists: [List; 4],
    max_flows: usize,
    live: usize,
    /// Counters.
    pub stats: TableStats,
}

/// Fixed memory charged per flow besides what its state allocates.
pub fn flow_charge<V>() -> usize {
    std::mem::size_of::<Slot<()>>() + std::mem::size_of::<V>() + 16
}

impl<V> FlowTable<V> {
    /// A table holding at most `max_flows` flows.
    pub fn new(max_flows: usize) -> FlowTable<V> {
        // Reserved up front (address space only; pages are touched as flows arrive), so the
        // slab never reallocates and briefly holds two copies of itself.
        FlowTable {
            slots: Vec::with_capacity(max_flows),
            free: Vec::new(),
            index: HashTable::with_capacity(max_flows),
            hasher: foldhash::fast::RandomState::default(),
            lists: [List {
                head: NIL,
                tail: NIL,
            }; 4],
            max_flows,
            live: 0,
            stats: TableStats::default(),
        }
    }

    /// Flows in the table.
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// True when the count cap is reached.
    pub fn is_full(&self) -> bool {
        self.live >= self.max_flows
    }

    /// Finds a flow.
    pub fn find(&self, key: &FlowKey) -> Option<u32> {
        let h = self.hasher.hash_one(key);
        self.index
            .find(h, |&i| self.slots[i as usize].key == *key)
            .copied()
    }

    /// The state of a live flow.
    pub fn get_mut(&mut self, idx: u32) -> &mut V {
        &mut self.slots[idx as usize].val
    }

    /// The key of a live flow.
    pub fn key(&self, idx: u32) -> &FlowKey {
        &self.slots[idx as usize].key
    }

    /// Inserts a new flow (the caller checked it is absent and made room).
    pub fn insert(&mut self, key: FlowKey, val: V, now_ns: i64, class: u8) -> u32 {
        let slot = Slot {
            key,
            val,
            last_ns: now_ns,
            prev: NIL,
            next: NIL,
            class,
            live: true,
        };
        let idx = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        let h = self.hasher.hash_one(key);
        let slots = &self.slots;
        let hasher = &self.hasher;
        self.index
            .insert_unique(h, idx, |&i| hasher.hash_one(slots[i as usize].key));
        self.push_tail(idx, class);
        self.live += 1;
        self.stats.created += 1;
        idx
    }

    /// When a flow was last marked seen (its previous packet, until [`FlowTable::touch`]).
    pub fn last_seen(&self, idx: u32) -> i64 {
        self.slots[idx as usize].last_ns
    }

    /// Marks a flow as seen now, in the given timeout class.
    pub fn touch(&mut self, idx: u32, now_ns: i64, class: u8) {
        self.unlink(idx);
        let s = &mut self.slots[idx as usize];
        s.last_ns = s.last_ns.max(now_ns);
        self.push_tail(idx, class);
    }

    fn push_tail(&mut self, idx: u32, class: u8) {
        let l = &mut self.lists[class as usize];
        let tail = l.tail;
        {
            let s = &mut self.slots[idx as usize];
            s.class = class;
            s.prev = tail;
            s.next = NIL;
        }
        if tail == NIL {
            self.lists[class as usize].head = idx;
        } else {
            self.slots[tail as usize].next = idx;
        }
        self.lists[class as usize].tail = idx;
    }

    fn unlink(&mut self, idx: u32) {
        let (prev, next, class) = {
            let s = &self.slots[idx as usize];
            (s.prev, s.next, s.class as usize)
        };
        if prev == NIL {
            self.lists[class].head = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            self.lists[class].tail = prev;
        } else {
            self.slots[next as usize].prev = prev;
        }
    }

    /// Removes a flow and returns its state.
    pub fn remove(&mut self, idx: u32) -> (FlowKey, V, i64)
    where
        V: Default,
    {
        self.unlink(idx);
        let key = self.slots[idx as usize].key;
        let h = self.hasher.hash_one(key);
        if let Ok(e) = self.index.find_entry(h, |&i| i == idx) {
            e.remove();
        }
        let s = &mut self.slots[idx as usize];
        s.live = false;
        let val = std::mem::take(&mut s.val);
        self.free.push(idx);
        self.live -= 1;
        (key, val, s.last_ns)
    }

    /// The next flow whose timeout has passed at `now_ns`, if any.
    pub fn next_expired(&self, now_ns: i64) -> Option<u32> {
        (0..4).find_map(|c| {
            let h = self.lists[c].head;
            (h != NIL
                && self.slots[h as usize]
                    .last_ns
                    .saturating_add(TIMEOUTS_S[c] * 1_000_000_000)
                    <= now_ns)
                .then_some(h)
        })
    }

    /// The flow closest to its expiry (the eviction victim).
    pub fn victim(&self) -> Option<u32> {
        (0..4)
            .filter_map(|c| {
                let h = self.lists[c].head;
                (h != NIL).then(|| {
                    (
                        self.slots[h as usize]
                            .last_ns
                            .saturating_add(TIMEOUTS_S[c] * 1_000_000_000),
                        h,
                    )
                })
            })
            .min()
            .map(|(_, h)| h)
    }

    /// Every live flow index (for the end-of-input flush).
    pub fn live_indices(&self) -> Vec<u32> {
        (0..self.slots.len() as u32)
            .filter(|&i| self.slots[i as usize].live)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: u16) -> FlowKey {
        FlowKey::new(
            ("10.0.0.1".parse().unwrap(), p),
            ("10.0.0.2".parse().unwrap(), 80),
            6,
            [0, 0, 0],
        )
        .0
    }

    #[test]
    fn key_is_direction_free() {
        let a = ("10.0.0.1".parse().unwrap(), 1234);
        let b = ("10.0.0.2".parse().unwrap(), 80);
        assert_eq!(
            FlowKey::new(a, b, 6, [0, 0, 0]).0,
            FlowKey::new(b, a, 6, [0, 0, 0]).0
        );
        assert_ne!(
            FlowKey::new(a, b, 6, [0, 0, 0]).1,
            FlowKey::new(b, a, 6, [0, 0, 0]).1
        );
    }

    #[test]
    fn expiry_is_exact_per_class_and_victim_is_closest_to_expiry() {
        let mut t: FlowTable<u32> = FlowTable::new(10);
        let s = 1_000_000_000;
        let a = t.insert(key(1), 1, 0, 3); // 600 s
        let b = t.insert(key(2), 2, 10 * s, 0); // 30 s -> expires at 40 s
        let _c = t.insert(key(3), 3, 20 * s, 1); // 60 s -> 80 s
        assert_eq!(t.victim(), Some(b));
        assert_eq!(t.next_expired(39 * s), None);
        assert_eq!(t.next_expired(40 * s), Some(b));
        t.touch(b, 50 * s, 2); // now 300 s class -> 350 s
        assert_eq!(t.next_expired(79 * s), None);
        assert_eq!(t.find(&key(2)), Some(b));
        let (_, v, _) = t.remove(a);
        assert_eq!(v, 1);
        assert_eq!(t.find(&key(1)), None);
        assert_eq!(t.len(), 2);
        let d = t.insert(key(4), 4, 90 * s, 0);
        assert_eq!(d, a, "slot reused");
    }
}
