//! Recycled per-flow objects, so that a new flow costs no heap allocation once its kinds of
//! state have been seen.
//!
//! A flow's parsed hellos, parser state and stream pair are taken from a [`Pooled`] box and go
//! back to their pool when the flow drops them (its end, eviction, a memcap, a protocol change):
//! [`Recycle::recycle`] empties the object and keeps its buffers' capacity, so the next flow
//! fills the same memory.
//!
//! # Bounds
//! Each pool holds at most [`POOL_CAP`] objects per thread (each engine runs on its own thread;
//! a type may set a smaller [`Recycle::CAP`]);
//! an object given back to a full pool is freed and counted in [`PoolStats::freed`]. `recycle` keeps
//! a buffer's capacity only up to [`KEEP_BYTES`] (a larger one, grown by a hostile hello, is
//! freed), so what the pools hold is bounded by `POOL_CAP` times each type's size and kept
//! buffers, whatever the traffic: about 14 MiB per worker at most with the engine's types and the
//! out-of-order segment classes ([`SEG_CLASSES`]) (README
//! "Limits"). Pooled memory belongs to no flow, so it is not charged to the flow
//! [`Budget`](crate::flow::Budget); objects in use are, as before, by their capacity.
//!
//! # Counters
//! [`thread_stats`] reads a thread's pools, all kinds together: objects reused, objects made
//! fresh (an allocation each), and objects freed because their pool was full; and, as gauges,
//! the objects and buffers waiting now and the bytes they hold ([`Recycle::bytes`],
//! [`Bytes`]).

use std::fmt;
use std::ops::{Deref, DerefMut};

/// Most objects kept per type and thread.
pub const POOL_CAP: usize = 128;

/// Largest buffer capacity, in bytes, a recycled object keeps (types whose buffers are larger
/// by nature say so: a QUIC CRYPTO stream, a signature stream tail).
pub const KEEP_BYTES: usize = 1024;

/// An object that can be emptied for reuse.
pub trait Recycle: Default + 'static {
    /// Most objects of this type kept per thread.
    const CAP: usize = POOL_CAP;

    /// Empties the object as [`Default`] would, keeping buffers of at most [`KEEP_BYTES`].
    fn recycle(&mut self);

    /// Bytes the object holds, its own size and its buffers' capacity (what a pool of them
    /// holds, [`PoolStats::held_bytes`]).
    fn bytes(&self) -> usize;

    /// Runs `f` on this type's pool for the current thread (`None` while the thread's locals
    /// are being torn down).
    fn with_pool<R>(f: impl FnOnce(&mut Pool<Box<Self>>) -> R) -> Option<R>;
}

/// Counters of a thread's pools, all types together.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Objects taken from a pool.
    pub reused: u64,
    /// Objects allocated because their pool was empty.
    pub fresh: u64,
    /// Objects freed because their pool was full.
    pub freed: u64,
    /// Objects and buffers waiting in the pools now (a gauge).
    pub held: u64,
    /// Bytes they hold now: each object's size and its buffers' capacity (a gauge; outside the
    /// flow budget, bounded as the module says).
    pub held_bytes: u64,
}

thread_local! {
    static TOTAL: std::cell::Cell<PoolStats> = const {
        std::cell::Cell::new(PoolStats { reused: 0, fresh: 0, freed: 0, held: 0, held_bytes: 0 })
    };
}

/// What a pooled thing holds, for [`PoolStats::held_bytes`].
pub trait Bytes {
    /// Bytes held: its size and its buffers' capacity.
    fn bytes(&self) -> usize;
}

impl<T> Bytes for Vec<T> {
    fn bytes(&self) -> usize {
        self.capacity() * std::mem::size_of::<T>()
    }
}

impl<T: Recycle> Bytes for Box<T> {
    fn bytes(&self) -> usize {
        Recycle::bytes(&**self)
    }
}

fn count(f: impl FnOnce(&mut PoolStats)) {
    let _ = TOTAL.try_with(|t| {
        let mut s = t.get();
        f(&mut s);
        t.set(s);
    });
}

/// The counters of every pool of the current thread (each engine runs on its own).
pub fn thread_stats() -> PoolStats {
    TOTAL.try_with(std::cell::Cell::get).unwrap_or_default()
}

/// Free objects of one kind (boxed objects, byte buffers, a defragmenter's buffers), counted in
/// the thread's [`PoolStats`].
#[derive(Debug)]
pub struct Pool<T: Bytes> {
    free: Vec<T>,
}

impl<T: Bytes> Default for Pool<T> {
    fn default() -> Self {
        Pool::new()
    }
}

impl<T: Bytes> Pool<T> {
    /// An empty pool (allocates at the first object given back).
    pub const fn new() -> Pool<T> {
        Pool { free: Vec::new() }
    }

    /// An object to reuse, if one is waiting (`None`: the caller makes a fresh one).
    pub fn pop(&mut self) -> Option<T> {
        let v = self.free.pop();
        let bytes = v.as_ref().map_or(0, |v| v.bytes() as u64);
        count(|s| {
            if v.is_some() {
                s.reused += 1;
                s.held -= 1;
                s.held_bytes -= bytes;
            } else {
                s.fresh += 1
            }
        });
        v
    }

    /// Keeps `v`, emptied by `empty`, unless `cap` objects are waiting already (then it is
    /// freed and counted).
    pub fn put(&mut self, mut v: T, cap: usize, empty: impl FnOnce(&mut T)) {
        if self.free.len() >= cap {
            count(|s| s.freed += 1);
            return;
        }
        if self.free.capacity() == 0 {
            self.free.reserve_exact(cap);
        }
        empty(&mut v);
        let bytes = v.bytes() as u64;
        count(|s| {
            s.held += 1;
            s.held_bytes += bytes;
        });
        self.free.push(v);
    }

    /// Objects waiting for reuse.
    pub fn len(&self) -> usize {
        self.free.len()
    }

    /// No object is waiting.
    pub fn is_empty(&self) -> bool {
        self.free.is_empty()
    }

    /// The objects waiting (tests).
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.free.iter()
    }
}

impl<T: Bytes> Drop for Pool<T> {
    /// What a dropped pool held leaves the gauge (a defragmenter's pools go with their engine).
    fn drop(&mut self) {
        let n = self.free.len() as u64;
        let bytes: u64 = self.free.iter().map(|v| v.bytes() as u64).sum();
        count(|s| {
            s.held -= n;
            s.held_bytes -= bytes;
        });
    }
}

/// Declares the thread's pool of a type (in its [`Recycle`] impl).
#[macro_export]
#[doc(hidden)]
macro_rules! thread_pool {
    ($t:ty) => {
        fn with_pool<R>(f: impl FnOnce(&mut $crate::pool::Pool<Box<$t>>) -> R) -> Option<R> {
            thread_local! {
                static POOL: std::cell::RefCell<$crate::pool::Pool<Box<$t>>> =
                    const { std::cell::RefCell::new($crate::pool::Pool::new()) };
            }
            POOL.try_with(|p| p.try_borrow_mut().ok().map(|mut p| f(&mut p)))
                .ok()
                .flatten()
        }
    };
}

/// A box taken from its type's pool and given back when dropped.
pub struct Pooled<T: Recycle>(Option<Box<T>>);

impl<T: Recycle> Pooled<T> {
    /// An empty object: a recycled one when the pool has one.
    pub fn take() -> Pooled<T> {
        Pooled(Some(T::with_pool(Pool::pop).flatten().unwrap_or_default()))
    }
}

impl<T: Recycle> Default for Pooled<T> {
    fn default() -> Self {
        Pooled::take()
    }
}

impl<T: Recycle> Drop for Pooled<T> {
    fn drop(&mut self) {
        if let Some(b) = self.0.take() {
            // During thread teardown the pool is gone and the box is simply freed.
            let _ = T::with_pool(|p| p.put(b, T::CAP, |b| b.recycle()));
        }
    }
}

impl<T: Recycle> Deref for Pooled<T> {
    type Target = T;
    fn deref(&self) -> &T {
        match &self.0 {
            Some(b) => b,
            None => unreachable!("a Pooled is only empty while it drops"),
        }
    }
}

impl<T: Recycle> DerefMut for Pooled<T> {
    fn deref_mut(&mut self) -> &mut T {
        match &mut self.0 {
            Some(b) => b,
            None => unreachable!("a Pooled is only empty while it drops"),
        }
    }
}

impl<T: Recycle + fmt::Debug> fmt::Debug for Pooled<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

/// Empties a buffer for reuse: cleared, and freed if it grew past [`KEEP_BYTES`].
pub fn keep<T>(v: &mut Vec<T>) {
    keep_upto(v, KEEP_BYTES);
}

/// [`keep`] with another limit, in bytes.
pub fn keep_upto<T>(v: &mut Vec<T>, max_bytes: usize) {
    if v.capacity() * std::mem::size_of::<T>().max(1) > max_bytes {
        *v = Vec::new();
    } else {
        v.clear();
    }
}

/// [`keep`] for a string.
pub fn keep_str(s: &mut String) {
    if s.capacity() > KEEP_BYTES {
        *s = String::new();
    } else {
        s.clear();
    }
}

/// Byte buffers kept per thread for parsers that gather bytes across packets (TLS records and
/// handshake messages): [`more`] takes one when a buffer starts, [`give_bytes`] returns it.
pub const BYTES_CAP: usize = 32;

/// Largest byte buffer kept (a handshake message with a certificate chain fits).
pub const BYTES_KEEP: usize = 16 << 10;

thread_local! {
    static BYTES: std::cell::RefCell<Pool<Vec<u8>>> = const { std::cell::RefCell::new(Pool::new()) };
}

fn pop_bytes() -> Option<Vec<u8>> {
    BYTES
        .try_with(|b| b.try_borrow_mut().ok()?.pop())
        .ok()
        .flatten()
}

/// Appends `data` to `buf`, starting it with a buffer from the thread's pool when it has none.
pub fn more(buf: &mut Vec<u8>, data: &[u8]) {
    if buf.capacity() == 0 && !data.is_empty() {
        if let Some(v) = pop_bytes() {
            *buf = v;
        }
    }
    buf.extend_from_slice(data);
}

/// An empty buffer with room for at least `hint` bytes: one from the thread's pool (grown if
/// it is smaller), else a new one.
pub fn bytes(hint: usize) -> Vec<u8> {
    let mut v = pop_bytes().unwrap_or_default();
    v.reserve_exact(hint);
    v
}

/// A byte buffer that goes back to the thread's pool when dropped: the buffers a call needs for
/// its own length (a decrypted packet, a head or line gathered across segments, a body under
/// inspection), given back on every path out of it.
#[derive(Debug, Default)]
pub struct Lent(Vec<u8>);

impl Lent {
    /// `data`, copied into a buffer from the pool.
    pub fn copy(data: &[u8]) -> Lent {
        let mut v = Vec::new();
        more(&mut v, data);
        Lent(v)
    }

    /// `buf`'s bytes, leaving it empty and without a buffer.
    pub fn take(buf: &mut Vec<u8>) -> Lent {
        Lent(std::mem::take(buf))
    }

    /// The buffer itself, kept by the caller instead of going back.
    pub fn into_vec(mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

impl Deref for Lent {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl DerefMut for Lent {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        give_bytes(&mut self.0);
    }
}

/// Capacities of the buffers that hold out-of-order TCP segments. A segment is copied into the
/// smallest class that holds it, so the flow [`Budget`](crate::flow::Budget), which charges a
/// buffer's capacity, pays for what is held: at most twice a segment's length, and little more
/// for the usual sizes (a 1,448-byte segment takes 1,536, a 9,000-byte jumbo one 9,216). A
/// buffer given back serves the next segment of its class without an allocation.
pub const SEG_CLASSES: [usize; 12] = [
    64, 128, 256, 512, 1024, 1536, 2048, 4096, 9216, 16384, 32768, 65536,
];

/// Bytes of free segment buffers kept per class and thread: the count kept is this divided by
/// the class ([`seg_keep`]), at most 64, so the segment pools hold at most 1,662,976 bytes
/// (about 1.6 MiB) a worker, whatever the traffic.
pub const SEG_KEEP_BYTES: usize = 256 << 10;

/// Free buffers kept for class `k` of [`SEG_CLASSES`].
pub const fn seg_keep(k: usize) -> usize {
    let n = SEG_KEEP_BYTES / SEG_CLASSES[k];
    if n > 64 {
        64
    } else {
        n
    }
}

thread_local! {
    static SEGS: std::cell::RefCell<[Pool<Vec<u8>>; SEG_CLASSES.len()]> =
        const { std::cell::RefCell::new([const { Pool::new() }; SEG_CLASSES.len()]) };
}

fn seg_class(len: usize) -> Option<usize> {
    SEG_CLASSES.iter().position(|&c| c >= len)
}

/// The capacity [`seg_copy`] gives a segment of `len` bytes: its class, or `len` itself beyond
/// the largest class (a length no TCP segment reaches).
pub fn seg_capacity(len: usize) -> usize {
    seg_class(len).map_or(len, |k| SEG_CLASSES[k])
}

/// `data` (a segment held out of order), copied into a buffer of capacity
/// [`seg_capacity`]`(data.len())` from the thread's pool of that class, or a new one.
pub fn seg_copy(data: &[u8]) -> Vec<u8> {
    let mut v = match seg_class(data.len()) {
        Some(k) => SEGS
            .try_with(|p| p.try_borrow_mut().ok()?[k].pop())
            .ok()
            .flatten()
            .unwrap_or_else(|| Vec::with_capacity(SEG_CLASSES[k])),
        None => Vec::with_capacity(data.len()),
    };
    v.extend_from_slice(data);
    v
}

/// Takes a buffer made by [`seg_copy`] back to its class's pool (emptied; freed and counted
/// when [`seg_keep`] are waiting), leaving `buf` without one.
pub fn seg_give(buf: &mut Vec<u8>) {
    let v = std::mem::take(buf);
    // Only buffers of exactly a class's capacity (those seg_copy made) are kept.
    let Some(k) = seg_class(v.capacity()).filter(|&k| SEG_CLASSES[k] == v.capacity()) else {
        return;
    };
    let _ = SEGS.try_with(|p| {
        if let Ok(mut p) = p.try_borrow_mut() {
            p[k].put(v, seg_keep(k), Vec::clear);
        }
    });
}

/// A string in a buffer from the thread's byte pool, given back when dropped (alert messages).
#[derive(Debug)]
pub struct Text(String);

impl Text {
    /// An empty one with room for `hint` bytes.
    pub fn with_capacity(hint: usize) -> Text {
        Text(String::from_utf8(bytes(hint)).unwrap_or_default())
    }

    /// `args` written out.
    pub fn fmt(args: fmt::Arguments<'_>) -> Text {
        let mut t = Text::with_capacity(96);
        let _ = fmt::Write::write_fmt(&mut t.0, args);
        t
    }
}

impl Deref for Text {
    type Target = String;
    fn deref(&self) -> &String {
        &self.0
    }
}

impl DerefMut for Text {
    fn deref_mut(&mut self) -> &mut String {
        &mut self.0
    }
}

impl Drop for Text {
    fn drop(&mut self) {
        give_bytes(&mut std::mem::take(&mut self.0).into_bytes());
    }
}

/// Takes `buf`'s memory back to the thread's pool (emptied; a buffer over [`BYTES_KEEP`] is
/// freed, and one beyond [`BYTES_CAP`] kept is freed and counted), leaving `buf` without one.
pub fn give_bytes(buf: &mut Vec<u8>) {
    let v = std::mem::take(buf);
    if v.capacity() == 0 || v.capacity() > BYTES_KEEP {
        return;
    }
    let _ = BYTES.try_with(|b| {
        if let Ok(mut b) = b.try_borrow_mut() {
            b.put(v, BYTES_CAP, Vec::clear);
        }
    });
}

/// A list of byte strings held in one buffer (certificate chains, DNS names): filling a
/// recycled one allocates nothing.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Packed {
    bytes: Vec<u8>,
    ends: Vec<u32>,
}

impl Packed {
    /// The `k`th entry.
    pub fn get(&self, k: usize) -> Option<&[u8]> {
        let end = *self.ends.get(k)? as usize;
        let start = k.checked_sub(1).map_or(0, |p| self.ends[p] as usize);
        self.bytes.get(start..end)
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// No entry.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Appends an entry.
    pub fn push(&mut self, b: &[u8]) {
        self.bytes.extend_from_slice(b);
        self.end_entry();
    }

    /// Appends an entry as text ([`push_lossy`]), so that [`Packed::get`] gives UTF-8.
    pub fn push_text(&mut self, b: &[u8]) {
        lossy(b, |t| self.bytes.extend_from_slice(t.as_bytes()));
        self.end_entry();
    }

    fn end_entry(&mut self) {
        self.ends.push(self.bytes.len() as u32);
    }

    /// Empties it, keeping its buffers (the bytes up to `max_bytes`, the offsets up to
    /// [`KEEP_BYTES`]).
    pub fn clear(&mut self, max_bytes: usize) {
        keep_upto(&mut self.bytes, max_bytes);
        keep(&mut self.ends);
    }

    /// Bytes held.
    pub fn held(&self) -> usize {
        self.bytes.capacity() + self.ends.capacity() * 4
    }
}

/// Spare strings kept by an object that holds a varying number of them (ALPN lists, names).
#[derive(Debug, Default, Clone)]
pub struct Spares(Vec<String>);

/// Spare strings are capacity, not content: any two are equal.
impl PartialEq for Spares {
    fn eq(&self, _: &Spares) -> bool {
        true
    }
}

impl Eq for Spares {}

/// Most spare strings one object keeps.
const MAX_SPARES: usize = 4;

impl Spares {
    /// An empty string, recycled when one is spare.
    pub fn get(&mut self) -> String {
        self.0.pop().unwrap_or_default()
    }

    /// `b` as text ([`push_lossy`]) in a spare string.
    pub fn text(&mut self, b: &[u8]) -> String {
        let mut s = self.get();
        push_lossy(&mut s, b);
        s
    }

    /// Keeps `s` (emptied) for a later [`Spares::get`], within the bounds.
    pub fn put(&mut self, mut s: String) {
        if self.0.len() < MAX_SPARES && s.capacity() <= KEEP_BYTES {
            s.clear();
            if self.0.capacity() == 0 {
                self.0.reserve_exact(MAX_SPARES);
            }
            self.0.push(s);
        }
    }

    /// Capacity held (for memory accounting).
    pub fn held(&self) -> usize {
        self.0.iter().map(|s| s.capacity() + 24).sum::<usize>() + self.0.capacity() * 24
    }
}

/// Appends `b` as [`String::from_utf8_lossy`] would write it, without an intermediate string.
pub fn push_lossy(out: &mut String, b: &[u8]) {
    lossy(b, |t| out.push_str(t));
}

/// `b` as [`String::from_utf8_lossy`] reads it, in pieces: its valid runs, and U+FFFD for each
/// invalid sequence.
fn lossy(b: &[u8], mut put: impl FnMut(&str)) {
    for c in b.utf8_chunks() {
        put(c.valid());
        if !c.invalid().is_empty() {
            put("\u{fffd}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq)]
    struct Obj {
        buf: Vec<u8>,
        n: u32,
    }

    impl Recycle for Obj {
        fn recycle(&mut self) {
            keep(&mut self.buf);
            self.n = 0;
        }
        fn bytes(&self) -> usize {
            std::mem::size_of::<Obj>() + self.buf.capacity()
        }
        crate::thread_pool!(Obj);
    }

    #[test]
    fn objects_come_back_emptied_with_their_buffers() {
        let mut a: Pooled<Obj> = Pooled::take();
        a.buf.extend_from_slice(&[1; 100]);
        a.n = 7;
        let p = a.buf.as_ptr();
        drop(a);
        let b: Pooled<Obj> = Pooled::take();
        assert_eq!(*b, Obj::default());
        assert!(b.buf.capacity() >= 100);
        assert_eq!(b.buf.as_ptr(), p, "the same buffer is reused");
        let s = thread_stats();
        assert_eq!((s.fresh, s.reused), (1, 1));
    }

    #[test]
    fn the_pool_and_kept_buffers_are_bounded() {
        let all: Vec<Pooled<Obj>> = (0..POOL_CAP + 10)
            .map(|_| {
                let mut o: Pooled<Obj> = Pooled::take();
                o.buf.resize(KEEP_BYTES + 1, 0);
                o
            })
            .collect();
        drop(all);
        assert_eq!(Obj::with_pool(|p| p.len()), Some(POOL_CAP));
        assert_eq!(thread_stats().freed, 10);
        let o: Pooled<Obj> = Pooled::take();
        assert_eq!(o.buf.capacity(), 0, "an oversized buffer is not kept");
    }

    #[test]
    fn lent_buffers_go_back_on_drop_unless_kept() {
        let a = Lent::copy(b"hello");
        assert_eq!(&a[..], b"hello");
        let p = a.as_ptr();
        drop(a);
        let mut field = bytes(0);
        assert_eq!(
            field.as_ptr(),
            p,
            "the dropped buffer came back to the pool"
        );
        field.extend_from_slice(b"kept");
        let b = Lent::take(&mut field);
        assert_eq!(field.capacity(), 0);
        let kept = b.into_vec();
        assert_eq!((kept.as_ptr(), &kept[..]), (p, &b"kept"[..]));
        assert!(
            pop_bytes().is_none_or(|v| v.as_ptr() != p),
            "a kept buffer is not pooled"
        );
    }

    /// The gauge follows what the pools hold: objects given back add their size and kept
    /// buffers, objects taken out and dropped pools take theirs away, full pools add nothing.
    #[test]
    fn the_held_gauge_counts_what_waits_in_the_pools() {
        std::thread::spawn(|| {
            let start = thread_stats();
            assert_eq!((start.held, start.held_bytes), (0, 0));
            let objs: Vec<Pooled<Obj>> = (0..POOL_CAP + 3)
                .map(|k| {
                    let mut o = Pooled::<Obj>::take();
                    o.buf.reserve_exact(10 * k);
                    o
                })
                .collect();
            // Each keeps its buffer up to KEEP_BYTES (larger ones are freed by `recycle`).
            let kept = |c: usize| if c > KEEP_BYTES { 0 } else { c };
            let want: u64 = objs[..POOL_CAP]
                .iter()
                .map(|o| (std::mem::size_of::<Obj>() + kept(o.buf.capacity())) as u64)
                .sum();
            drop(objs);
            let s = thread_stats();
            assert_eq!(s.held, POOL_CAP as u64);
            assert_eq!(s.held_bytes, want);
            assert_eq!(s.freed, 3);
            // Taking one out removes what it holds.
            let o = Pooled::<Obj>::take();
            let s = thread_stats();
            let back = (std::mem::size_of::<Obj>() + o.buf.capacity()) as u64;
            assert_eq!((s.held, s.held_bytes), (POOL_CAP as u64 - 1, want - back));
            drop(o);
            assert_eq!(thread_stats().held_bytes, want);
            // A pool that is not a thread's (a defragmenter's) leaves the gauge when dropped.
            let mut p: Pool<Vec<u8>> = Pool::new();
            p.put(Vec::with_capacity(100), 4, Vec::clear);
            assert_eq!(thread_stats().held_bytes, want + 100);
            drop(p);
            assert_eq!(thread_stats().held_bytes, want);
            // Segment and byte buffers count too.
            let mut v = seg_copy(b"abc");
            seg_give(&mut v);
            let mut b = bytes(300);
            b.push(1);
            let cap = b.capacity() as u64;
            give_bytes(&mut b);
            let s = thread_stats();
            assert_eq!(s.held, POOL_CAP as u64 + 2);
            assert_eq!(s.held_bytes, want + 64 + cap);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn segment_buffers_take_their_class_and_the_pools_are_bounded() {
        // Each length gets the smallest class that holds it, with exactly that capacity.
        for (len, class) in [(1, 64), (64, 64), (65, 128), (1448, 1536), (9000, 9216)] {
            let mut v = seg_copy(&vec![5; len]);
            assert_eq!((v.len(), v.capacity()), (len, class), "{len}");
            assert_eq!(seg_capacity(len), class);
            seg_give(&mut v);
        }
        // Beyond the largest class: its own size, not kept.
        let big = SEG_CLASSES[SEG_CLASSES.len() - 1] + 1;
        let mut v = seg_copy(&vec![1; big]);
        assert_eq!(v.capacity(), big);
        seg_give(&mut v);
        // A returned buffer is reused, emptied of its bytes.
        std::thread::spawn(|| {
            let mut a = seg_copy(b"first");
            seg_give(&mut a);
            let before = thread_stats();
            let b = seg_copy(b"xy");
            assert_eq!(&b[..], b"xy");
            assert_eq!(thread_stats().reused, before.reused + 1);
            // A full class frees what comes back beyond its count.
            let k = SEG_CLASSES.iter().position(|&c| c == 16384).unwrap();
            let held: Vec<Vec<u8>> = (0..seg_keep(k) + 5)
                .map(|_| seg_copy(&[0; 10_000]))
                .collect();
            let freed = thread_stats().freed;
            for mut h in held {
                seg_give(&mut h);
            }
            assert_eq!(thread_stats().freed, freed + 5);
            assert_eq!(SEGS.with(|p| p.borrow()[k].len()), seg_keep(k));
        })
        .join()
        .unwrap();
        // The bound the README states: every class full.
        let most: usize = (0..SEG_CLASSES.len())
            .map(|k| seg_keep(k) * SEG_CLASSES[k])
            .sum();
        assert!(most <= 1_700_000, "{most}");
    }

    #[test]
    fn packed_entries_and_text() {
        let mut p = Packed::default();
        p.push(b"\x30\x01");
        p.push(b"");
        p.push_text(b"a\xffb");
        assert_eq!(p.len(), 3);
        assert_eq!(p.get(0), Some(&b"\x30\x01"[..]));
        assert_eq!(p.get(1), Some(&b""[..]));
        assert_eq!(p.get(2), Some("a\u{fffd}b".as_bytes()));
        assert_eq!(p.get(3), None);
        let held = p.held();
        p.clear(KEEP_BYTES);
        assert!(p.is_empty() && p.get(0).is_none());
        assert_eq!(p.held(), held, "buffers kept");
        p.push(&[1; 100]);
        p.clear(10);
        assert_eq!(p, Packed::default());
    }

    #[test]
    fn lossy_append_matches_from_utf8_lossy() {
        for b in [
            &b"plain"[..],
            b"\xff\xfeab\xc3",
            b"a\xe2\x82\xacb\xe2\x82",
            b"",
            b"\xf0\x9f\x98\x80x\x80",
        ] {
            let mut s = String::from("x");
            push_lossy(&mut s, b);
            assert_eq!(s, format!("x{}", String::from_utf8_lossy(b)));
        }
    }
}
