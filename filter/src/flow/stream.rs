//! One direction of a TCP byte stream.
//!
//! In-order data is handed to the consumer straight from the packet (no copy). Out-of-order
//! data is buffered, sorted by sequence number, up to [`WINDOW`] bytes ahead of the next
//! expected byte and within the shared [`Budget`], in buffers of a few size classes that are
//! reused across segments and flows ([`crate::pool::seg_copy`]), so holding a segment allocates
//! nothing once a worker has held one of its size. Overlaps: the first copy of a byte wins;
//! overlapping bytes that differ from the buffered copy raise an anomaly.
//!
//! Gaps: when the peer acknowledges bytes that were never seen, when the window or the budget
//! is full, or when the flow ends, the stream skips to the next buffered byte and reports a
//! [`Chunk::Gap`]. After [`DEPTH`] bytes a direction stops delivering (reassembly depth).

use super::Budget;

/// Out-of-order bytes buffered ahead of the next expected byte.
pub const WINDOW: u32 = 256 << 10;
/// Bytes delivered per direction before reassembly stops.
pub const DEPTH: u64 = 1 << 20;
/// Buffered segments per direction (each is a hole boundary).
pub const MAX_SEGS: usize = 1024;
/// Delivered segments remembered (sequence, length, hash) to spot rewritten retransmissions.
const RECENT: usize = 8;

/// What the stream hands its consumer.
#[derive(Debug)]
pub enum Chunk<'a> {
    /// The next in-order bytes.
    Data(&'a [u8]),
    /// This many bytes were lost.
    Gap(u32),
}

/// Things worth an anomaly event or a counter.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StreamNotes {
    /// A segment overlapped buffered data with different bytes.
    pub overlap_different: bool,
    /// A segment was wholly old (retransmission).
    pub retransmission: bool,
    /// A segment could not be buffered (window, segment count or budget).
    pub refused: bool,
    /// A segment (or part of one) arrived ahead of the next expected byte and was buffered.
    pub out_of_order: bool,
}

/// A segment held out of order, in a buffer from the thread's segment pool
/// ([`crate::pool::seg_copy`]) that goes back there when the segment is delivered or dropped.
#[derive(Debug)]
struct Seg {
    seq: u32,
    data: Vec<u8>,
}

impl Seg {
    /// What holding `len` bytes charges the budget: the buffer's capacity and the entry.
    fn cost(len: usize) -> usize {
        crate::pool::seg_capacity(len) + std::mem::size_of::<Seg>()
    }

    /// What this segment was charged ([`Seg::cost`] of its length).
    fn held(&self) -> usize {
        self.data.capacity() + std::mem::size_of::<Seg>()
    }
}

impl Drop for Seg {
    fn drop(&mut self) {
        crate::pool::seg_give(&mut self.data);
    }
}

/// One direction of a TCP stream.
#[derive(Debug, Default)]
pub struct Stream {
    started: bool,
    /// Sequence number of the next byte to deliver.
    next: u32,
    fin_seq: Option<u32>,
    segs: Vec<Seg>,
    buffered: usize,
    delivered: u64,
    /// Bytes skipped as gaps.
    pub gap_bytes: u64,
    /// Reassembly depth reached: nothing more is delivered.
    pub depth_reached: bool,
    /// Fingerprints of the last delivered segments: (seq, len, hash). In-order bytes are not
    /// kept (they go to the parser without a copy), so a retransmission that rewrites them is
    /// recognised by its hash when it covers a remembered segment.
    recent: [(u32, u32, u64); RECENT],
    recent_pos: usize,
}

impl crate::pool::Recycle for [Stream; 2] {
    fn recycle(&mut self) {
        // Buffered segments were released to the budget by `clear` when the flow ended; the
        // segment list keeps its capacity.
        for st in self.iter_mut() {
            let mut segs = std::mem::take(&mut st.segs);
            crate::pool::keep(&mut segs);
            *st = Stream::default();
            st.segs = segs;
        }
    }
    fn bytes(&self) -> usize {
        std::mem::size_of::<[Stream; 2]>()
            + self
                .iter()
                .map(|s| s.segs.capacity() * std::mem::size_of::<Seg>())
                .sum::<usize>()
    }
    crate::thread_pool!([Stream; 2]);
}

fn fingerprint(b: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0x5eed).hash_one(b)
}

#[inline]
fn rel(a: u32, b: u32) -> i64 {
    a.wrapping_sub(b) as i32 as i64
}

impl Stream {
    /// True once the first sequence number is known.
    pub fn started(&self) -> bool {
        self.started
    }

    /// The next in-order sequence number expected (once started).
    pub fn next_seq(&self) -> Option<u32> {
        self.started.then_some(self.next)
    }

    /// Bytes buffered out of order.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Starts the stream at a SYN's sequence number (data starts at `isn + 1`).
    pub fn syn(&mut self, isn: u32) {
        if !self.started {
            self.started = true;
            self.next = isn.wrapping_add(1);
        }
    }

    /// Records the FIN's position (after the segment's data).
    pub fn fin(&mut self, seq_after_data: u32) {
        self.fin_seq.get_or_insert(seq_after_data);
    }

    /// Handles a segment's payload; calls `out` for each in-order chunk.
    pub fn segment(
        &mut self,
        seq: u32,
        mut data: &[u8],
        budget: &mut Budget,
        out: &mut impl FnMut(Chunk<'_>),
    ) -> StreamNotes {
        let mut notes = StreamNotes::default();
        if data.is_empty() {
            return notes;
        }
        if !self.started {
            // Midstream pick-up: the first byte seen is where the stream starts.
            self.started = true;
            self.next = seq;
        }
        if self.depth_reached {
            return notes;
        }
        let mut off = rel(seq, self.next);
        if off < 0 {
            // Does this retransmission cover a delivered segment we remember, with other bytes?
            for &(rs, rl, rh) in &self.recent {
                let d = rel(rs, seq);
                if rl > 0 && d >= 0 && d as usize + rl as usize <= data.len() {
                    let part = &data[d as usize..d as usize + rl as usize];
                    if fingerprint(part) != rh {
                        notes.overlap_different = true;
                    }
                }
            }
            let old = (-off) as usize;
            if old >= data.len() {
                notes.retransmission = true;
                return notes;
            }
            data = &data[old..];
            off = 0;
        }
        if off > WINDOW as i64 {
            notes.refused = true;
            return notes;
        }
        if off == 0 {
            self.deliver_from(data, &mut notes, budget, out);
        } else {
            self.buffer(self.next.wrapping_add(off as u32), data, &mut notes, budget);
        }
        notes
    }

    /// Delivers `data` starting at `self.next`, letting buffered bytes win where they overlap.
    fn deliver_from(
        &mut self,
        mut data: &[u8],
        notes: &mut StreamNotes,
        budget: &mut Budget,
        out: &mut impl FnMut(Chunk<'_>),
    ) {
        while !data.is_empty() {
            let cut = match self.segs.first() {
                Some(s) => (rel(s.seq, self.next).max(0) as usize).min(data.len()),
                None => data.len(),
            };
            if cut > 0 {
                self.emit(&data[..cut], out);
                data = &data[cut..];
            }
            if data.is_empty() {
                break;
            }
            // The first buffered segment starts here: it wins over the new bytes.
            let s = self.segs.remove(0);
            self.release(&s, budget);
            let n = s.data.len().min(data.len());
            if s.data[..n] != data[..n] {
                notes.overlap_different = true;
            }
            self.emit(&s.data, out);
            data = &data[n..];
        }
        self.drain(budget, out);
    }

    fn emit(&mut self, bytes: &[u8], out: &mut impl FnMut(Chunk<'_>)) {
        if !self.depth_reached {
            self.recent[self.recent_pos] = (self.next, bytes.len() as u32, fingerprint(bytes));
            self.recent_pos = (self.recent_pos + 1) % RECENT;
        }
        self.next = self.next.wrapping_add(bytes.len() as u32);
        if self.depth_reached {
            return;
        }
        let room = DEPTH - self.delivered;
        let n = (bytes.len() as u64).min(room) as usize;
        self.delivered += n as u64;
        if n > 0 {
            out(Chunk::Data(&bytes[..n]));
        }
        if self.delivered >= DEPTH {
            self.depth_reached = true;
        }
    }

    fn release(&mut self, s: &Seg, budget: &mut Budget) {
        self.buffered -= s.data.len();
        budget.release(s.held());
    }

    /// Delivers buffered segments that now touch the delivered edge.
    fn drain(&mut self, budget: &mut Budget, out: &mut impl FnMut(Chunk<'_>)) {
        while let Some(s) = self.segs.first() {
            let off = rel(s.seq, self.next);
            if off > 0 {
                break;
            }
            let s = self.segs.remove(0);
            self.release(&s, budget);
            let skip = (-off) as usize;
            if skip < s.data.len() {
                self.emit(&s.data[skip..], out);
            }
        }
    }

    fn buffer(&mut self, seq: u32, data: &[u8], notes: &mut StreamNotes, budget: &mut Budget) {
        // Split the new segment into the parts not yet covered; compare the covered parts.
        let end = rel(seq, self.next) + data.len() as i64;
        if end > WINDOW as i64 {
            notes.refused = true;
            return;
        }
        let mut cur = rel(seq, self.next);
        let base = cur;
        let mut pieces: [(i64, i64); 8] = [(0, 0); 8];
        let mut np = 0;
        let mut complete = true;
        for s in &self.segs {
            let ss = rel(s.seq, self.next);
            let se = ss + s.data.len() as i64;
            if se <= cur {
                continue;
            }
            if ss >= end {
                break;
            }
            if ss > cur {
                if np == pieces.len() {
                    // More holes than tracked here: the rest is refused (counted), not lost silently.
                    complete = false;
                    notes.refused = true;
                    break;
                }
                pieces[np] = (cur, ss);
                np += 1;
            }
            let (a, b) = (ss.max(cur), se.min(end));
            if a < b {
                let new = &data[(a - base) as usize..(b - base) as usize];
                let old = &s.data[(a - ss) as usize..(b - ss) as usize];
                if new != old {
                    notes.overlap_different = true;
                }
            }
            cur = cur.max(se);
        }
        if complete && cur < end && np < pieces.len() {
            pieces[np] = (cur, end);
            np += 1;
        }
        for &(a, b) in &pieces[..np] {
            if self.segs.len() >= MAX_SEGS {
                notes.refused = true;
                return;
            }
            let bytes = &data[(a - base) as usize..(b - base) as usize];
            if !budget.try_charge(Seg::cost(bytes.len())) {
                notes.refused = true;
                return;
            }
            let seq = self.next.wrapping_add(a as u32);
            let pos = self.segs.partition_point(|s| rel(s.seq, self.next) < a);
            let data = crate::pool::seg_copy(bytes);
            debug_assert_eq!(data.capacity(), crate::pool::seg_capacity(bytes.len()));
            self.segs.insert(pos, Seg { seq, data });
            self.buffered += bytes.len();
            notes.out_of_order = true;
        }
    }

    /// The peer acknowledged up to `ack`: bytes before it that were never seen are a gap.
    pub fn ack(&mut self, ack: u32, budget: &mut Budget, out: &mut impl FnMut(Chunk<'_>)) {
        if !self.started {
            return;
        }
        let mut ahead = rel(ack, self.next);
        if let Some(f) = self.fin_seq {
            // The FIN takes one sequence number.
            if rel(ack, f) >= 0 {
                ahead = rel(f, self.next);
            }
        }
        if ahead <= 0 || ahead > WINDOW as i64 * 4 {
            return;
        }
        self.skip_to(self.next.wrapping_add(ahead as u32), budget, out);
    }

    fn skip_to(&mut self, to: u32, budget: &mut Budget, out: &mut impl FnMut(Chunk<'_>)) {
        let n = rel(to, self.next);
        if n <= 0 {
            return;
        }
        // Only the part not covered by buffered data is a gap.
        let gap_end = match self.segs.first() {
            Some(s) => rel(s.seq, self.next).min(n),
            None => n,
        };
        if gap_end > 0 {
            self.gap_bytes += gap_end as u64;
            self.next = self.next.wrapping_add(gap_end as u32);
            if !self.depth_reached {
                out(Chunk::Gap(gap_end as u32));
            }
        }
        self.drain(budget, out);
        if rel(to, self.next) > 0 {
            self.skip_to(to, budget, out);
        }
    }

    /// End of flow (or a forced flush): deliver everything buffered, gaps included.
    pub fn flush(&mut self, budget: &mut Budget, out: &mut impl FnMut(Chunk<'_>)) {
        while let Some(s) = self.segs.first() {
            let to = s.seq;
            self.skip_to(to, budget, out);
            self.drain(budget, out);
        }
    }

    /// Frees every buffer (flow eviction).
    pub fn clear(&mut self, budget: &mut Budget) {
        for s in self.segs.drain(..) {
            budget.release(s.held());
        }
        self.buffered = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(s: &mut Stream, b: &mut Budget, segs: &[(u32, &[u8])]) -> Vec<u8> {
        let mut v = Vec::new();
        for &(seq, d) in segs {
            s.segment(seq, d, b, &mut |c| {
                if let Chunk::Data(x) = c {
                    v.extend_from_slice(x)
                }
            });
        }
        s.flush(b, &mut |c| match c {
            Chunk::Data(x) => v.extend_from_slice(x),
            Chunk::Gap(n) => v.extend(std::iter::repeat_n(b'?', n as usize)),
        });
        v
    }

    #[test]
    fn reorder_overlap_first_copy_wins() {
        let mut b = Budget::new(1 << 20);
        let mut s = Stream::default();
        s.syn(99);
        let out = collect(
            &mut s,
            &mut b,
            &[(106, b"world"), (100, b"hello "), (103, b"ZZZZZ")],
        );
        assert_eq!(out, b"hello world");
        assert_eq!(b.used(), 0);
        // Buffered copy wins over later in-order bytes, and the difference is noted.
        let mut s = Stream::default();
        s.syn(0);
        let mut v = Vec::new();
        s.segment(4, b"DDDD", &mut b, &mut |_| {});
        let n = s.segment(1, b"abcZZZZ", &mut b, &mut |c| {
            if let Chunk::Data(x) = c {
                v.extend_from_slice(x)
            }
        });
        assert!(n.overlap_different);
        assert_eq!(v, b"abcDDDD");
    }

    #[test]
    fn rewritten_retransmission_of_delivered_bytes_is_noted() {
        let mut b = Budget::new(1 << 20);
        let mut s = Stream::default();
        s.syn(0);
        let mut v = Vec::new();
        s.segment(1, b"GET /a", &mut b, &mut |c| {
            if let Chunk::Data(x) = c {
                v.extend_from_slice(x)
            }
        });
        assert!(
            !s.segment(1, b"GET /a", &mut b, &mut |_| {})
                .overlap_different
        );
        let n = s.segment(1, b"GET /b", &mut b, &mut |_| panic!("first copy wins"));
        assert!(n.overlap_different && n.retransmission);
        assert_eq!(v, b"GET /a");
    }

    /// Arrivals for a property case: segments `(offset, length, version)` cut from the stream
    /// (and re-cut: copies overlap), each `version` a distinct copy of those bytes (0 the
    /// original; any other rewrites them), in the order they come.
    fn arrivals(len: usize, cuts: &[(usize, usize, u8)]) -> Vec<(usize, usize, u8)> {
        let mut v: Vec<(usize, usize, u8)> = cuts
            .iter()
            .filter(|&&(o, l, _)| l > 0 && o < len)
            .map(|&(o, l, ver)| (o, l.min(len - o), ver))
            .collect();
        // The whole stream, in three original pieces, somewhere among them, so every byte comes.
        let (a, b) = (len / 3, 2 * len / 3);
        for (k, (o, e)) in [(0, a), (a, b), (b, len)].into_iter().enumerate() {
            if e > o {
                let at = (o + k) % (v.len() + 1);
                v.insert(at, (o, e - o, 0));
            }
        }
        v
    }

    /// The bytes of copy `ver` at stream position `i`.
    fn byte(orig: &[u8], i: usize, ver: u8) -> u8 {
        if ver == 0 {
            orig[i]
        } else {
            orig[i] ^ ver
        }
    }

    /// Feeds `arr` to a stream starting after `isn`; returns what it delivered (gaps as `?`,
    /// after a flush), the notes, and the budget after the flush.
    fn feed(orig: &[u8], isn: u32, arr: &[(usize, usize, u8)]) -> (Vec<u8>, StreamNotes, Budget) {
        let mut b = Budget::new(1 << 20);
        let mut s = Stream::default();
        s.syn(isn);
        let mut got = Vec::new();
        let mut all = StreamNotes::default();
        let mut out = |c: Chunk<'_>| match c {
            Chunk::Data(x) => got.extend_from_slice(x),
            Chunk::Gap(n) => got.extend(std::iter::repeat_n(b'?', n as usize)),
        };
        for &(o, l, ver) in arr {
            let bytes: Vec<u8> = (o..o + l).map(|i| byte(orig, i, ver)).collect();
            let seq = isn.wrapping_add(1).wrapping_add(o as u32);
            let n = s.segment(seq, &bytes, &mut b, &mut out);
            all.overlap_different |= n.overlap_different;
            all.refused |= n.refused;
            all.out_of_order |= n.out_of_order;
        }
        s.flush(&mut b, &mut out);
        assert_eq!(s.buffered(), 0);
        (got, all, b)
    }

    proptest::proptest! {
        /// Any order of a stream's segments, overlapping copies of them included, delivers the
        /// stream itself, each byte once, and gives back everything it held; sequence numbers
        /// wrap anywhere.
        #[test]
        fn any_order_of_identical_copies_reassembles_the_stream(
            orig in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..3000),
            isn in proptest::prelude::any::<u32>(),
            cuts in proptest::collection::vec((0usize..3000, 0usize..1600, 0u8..1), 0..4),
        ) {
            let arr = arrivals(orig.len(), &cuts);
            let (got, notes, b) = feed(&orig, isn, &arr);
            proptest::prop_assert!(!notes.refused && !notes.overlap_different);
            proptest::prop_assert_eq!(got, orig);
            proptest::prop_assert_eq!(b.used(), 0);
        }

        /// With rewritten copies among them, each byte is the one that came first (the rule the
        /// module states), a rewrite of a held byte is noted, and holding charged the budget
        /// what the held buffers' classes cost.
        #[test]
        fn the_first_copy_of_each_byte_wins(
            orig in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..3000),
            isn in proptest::prelude::any::<u32>(),
            cuts in proptest::collection::vec((0usize..3000, 0usize..1600, 0u8..4), 0..4),
        ) {
            let arr = arrivals(orig.len(), &cuts);
            let mut first: Vec<Option<u8>> = vec![None; orig.len()];
            let mut conflict = false;
            for &(o, l, ver) in &arr {
                for (i, f) in first.iter_mut().enumerate().skip(o).take(l) {
                    let v = byte(&orig, i, ver);
                    conflict |= f.is_some_and(|x| x != v);
                    f.get_or_insert(v);
                }
            }
            let want: Vec<u8> = first.iter().map(|b| b.unwrap()).collect();
            let (got, notes, b) = feed(&orig, isn, &arr);
            proptest::prop_assert!(!notes.refused);
            proptest::prop_assert_eq!(got, want);
            proptest::prop_assert_eq!(b.used(), 0);
            if !conflict {
                proptest::prop_assert!(!notes.overlap_different);
            }
        }
    }

    #[test]
    fn held_segments_are_charged_their_class_and_buffers_are_reused() {
        let mut b = Budget::new(1 << 20);
        let mut s = Stream::default();
        s.syn(0);
        let seg = [7u8; 1448];
        // Three segments ahead of a missing first one.
        for k in 1..4u32 {
            let n = s.segment(1 + k * 1448, &seg, &mut b, &mut |_| {
                panic!("nothing in order")
            });
            assert!(n.out_of_order);
        }
        let each = 1536 + std::mem::size_of::<Seg>();
        assert_eq!(b.used(), 3 * each);
        assert_eq!(s.buffered(), 3 * 1448);
        let mut got = 0;
        let n = s.segment(1, &seg, &mut b, &mut |c| {
            if let Chunk::Data(x) = c {
                got += x.len()
            }
        });
        assert!(!n.out_of_order);
        assert_eq!((got, b.used()), (4 * 1448, 0));
        // The three buffers went back to the pool: holding three more takes them again.
        let before = crate::pool::thread_stats();
        for k in 5..8u32 {
            s.segment(1 + k * 1448, &seg, &mut b, &mut |_| {
                panic!("nothing in order")
            });
        }
        let after = crate::pool::thread_stats();
        assert_eq!(after.reused - before.reused, 3);
        assert_eq!(after.fresh, before.fresh);
        s.clear(&mut b);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn ack_beyond_seen_data_is_a_gap() {
        let mut b = Budget::new(1 << 20);
        let mut s = Stream::default();
        s.syn(0);
        let mut ev = Vec::new();
        s.segment(1, b"ab", &mut b, &mut |_| {});
        s.segment(8, b"hi", &mut b, &mut |_| {});
        s.ack(10, &mut b, &mut |c| ev.push(format!("{c:?}")));
        assert_eq!(ev, ["Gap(5)", "Data([104, 105])"]);
        assert_eq!(s.gap_bytes, 5);
    }
}
