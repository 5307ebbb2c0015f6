//! The prefilter for bulk bytes (payloads, stream chunks, HTTP bodies): a hashed-prefix sieve
//! in the manner of Rabin-Karp and Hyperscan's FDR.
//!
//! Every pattern of at least 4 bytes is keyed by its first 4 bytes folded (each byte ORed with
//! 0x20, which maps ASCII upper case onto lower case and merges a few other byte pairs); the keys
//! are hashed into a bitmap of 2^k bits (k from 12 to 18, at least 128 bits per pattern, so at
//! most 32 KB: L1 or L2). The scan reads 4 bytes at every position, folds, hashes and tests one
//! bit; only on a set bit does it compare the patterns of that bucket, case-insensitively,
//! against the data. Patterns of 2 or 3 bytes have their own bitmap indexed by the 2 folded
//! bytes directly, and 1-byte patterns are looked for once each with `memchr`. The data are
//! never copied or lowercased.
//!
//! Two kernels compute which positions to verify, with the same result:
//! - scalar, 32 positions per step into a mask without branches (any CPU);
//! - AVX-512 (F, BW, VBMI; chosen at run time, `PALISADE_NO_AVX512` in the environment turns it
//!   off), 64 positions per step: the 6 bytes at each position are looked up in register-held
//!   128-entry tables of bucket bits (`lead`, the filter Hyperscan's FDR and Teddy use), and
//!   only the groups of 16 positions that pass have their 4-byte windows hashed (one byte
//!   permutation, one multiplication) and their bits fetched by one gather; 2- and 3-byte
//!   patterns by two more tables. The last block of a buffer is loaded under a mask, reading
//!   no byte past it.
//!
//! Patterns that every rule behind them bounds to the first bytes of the buffer (an absolute
//! `depth`, or `within` on a sticky buffer's first content: `file.data; content:"PK"; depth:2`)
//! are kept in a second sieve scanned over those bytes only (`head_part`), not over the whole
//! buffer: such 2-byte magic numbers would otherwise keep the short-pattern check alive across
//! every body.
//!
//! Cost, on ET Open's 1,600 response-body patterns over the benchmark corpus's bodies (2-core
//! AMD EPYC VM): about 1.6 ns per byte scalar, about 0.6 ns with AVX-512; the whole ET Open
//! replay runs 0.59 M packets/s without the AVX-512 kernel and 0.88 M with it
//! (`bench/RESULTS.md`). A hit costs one comparison per pattern of the bucket,
//! and the first 8 bytes are compared in one step; patterns already found in this buffer are not
//! compared again (`seen`), so bytes crafted to hit a bucket at every position cost at most the
//! bucket's size in 8-byte comparisons per byte. Bucket sizes are reported by
//! [`Sieve::max_bucket`].
//!
//! Like the automaton it replaced, it reports every pattern that occurs (its id, once or more;
//! bounded patterns possibly beyond their bound); the signatures behind it are then evaluated
//! in full.

/// Words of the largest bitmap (2^18 bits).
const BITS_WORDS: usize = (1 << 18) / 64;

/// Multiplier of the 4-byte hash (Knuth's golden-ratio constant).
const MUL: u32 = 0x9E37_79B1;

/// Patterns bounded to end within this many bytes of the buffer's start are looked for there
/// only.
const HEAD_MAX: usize = 256;

/// Words of the 2-byte bitmap.
const SHORT_WORDS: usize = (1 << 16) / 64;

/// Hashed-prefix prefilter over a fixed pattern set.
#[derive(Debug)]
pub(crate) struct Sieve {
    /// The patterns, lowercased.
    pats: Vec<Box<[u8]>>,
    /// Per pattern of 8 bytes or more, its first 8 bytes folded (else 0).
    head: Vec<u64>,
    /// Bitmap over hashed 4-byte keys (2^k bits used, allocated at the largest k so indexing
    /// needs no bounds check).
    bits: Box<[u64; BITS_WORDS]>,
    /// 32 - k.
    shift: u32,
    /// Bucket h holds `ids[start[h]..start[h + 1]]`.
    start: Vec<u32>,
    ids: Vec<u32>,
    /// Bitmap over the 2 folded first bytes of the 2- and 3-byte patterns, and their buckets
    /// (sorted by key).
    short_bits: Box<[u64; SHORT_WORDS]>,
    short: Vec<(u16, u32)>,
    /// 1-byte patterns: (byte, its other case or itself, id).
    single: Vec<(u8, u8, u32)>,
    /// For the wide scan, the short patterns' first 2 bytes as two 128-entry tables (see
    /// [`set_both_cases`]): pair j sets bit j % 8 in `short_t[0][its first byte]` and
    /// `short_t[1][its second byte]`; a position may start a short pattern when the two entries
    /// share a bit (exact up to 8 pairs, a superset beyond).
    short_t: [[u8; 128]; 2],
    /// For the wide scan, a first filter on the long patterns without memory reads (Hyperscan's
    /// FDR and Teddy work this way): their first 6 bytes in six register-resident 128-entry
    /// tables (both cases, see [`set_both_cases`]), patterns of 6 bytes or more in 7 or 8
    /// buckets by sorted prefix (so a bucket's patterns share leading bytes), those of 4 and 5
    /// bytes in the last bucket with every entry of the bytes they lack set; a position passes
    /// when the six entries of its bytes share a bucket. Only then is the bitmap read. On ET
    /// Open with the benchmark corpus, 6 bytes instead of 4 made the whole replay 4% faster.
    lead: [[u8; 128]; 6],
    /// The CPU has AVX-512 (F, BW, VBMI): masks are computed 64 positions at a time.
    wide: bool,
    /// Patterns whose every rule bounds them near the buffer's start (an absolute `depth`, so
    /// the match ends by byte `end`): left out of the bitmaps above and looked for by this
    /// second sieve in the first `end` bytes only (the largest such end).
    head_part: Option<(Box<Sieve>, usize)>,
}

fn fold4(b: [u8; 4]) -> u32 {
    u32::from_le_bytes(b) | 0x2020_2020
}

/// Sets `bit` in a wide-kernel table for a pattern byte (lowercased) in either case: the table
/// is indexed by the data's raw byte (the byte permutation reads its low 7 bits, so bytes from
/// 0x80 share the entries of 0x00-0x7f: more candidates, never fewer), which spares the kernel
/// any folding and keeps `\0` apart from space, as folding by OR 0x20 would not.
fn set_both_cases(t: &mut [u8; 128], c: u8, bit: u8) {
    t[(c & 0x7f) as usize] |= bit;
    t[(c.to_ascii_uppercase() & 0x7f) as usize] |= bit;
}

fn fold8(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a) | 0x2020_2020_2020_2020
}

/// Whether [`Sieve::mask64`] can run here.
pub(crate) fn wide_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::env::var_os("PALISADE_NO_AVX512").is_none()
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vbmi")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

fn test(bits: &[u64], h: usize) -> bool {
    bits[h >> 6] >> (h & 63) & 1 != 0
}

impl Sieve {
    /// Builds over `patterns` (any case; matched case-insensitively). Empty patterns are not
    /// allowed (the rule parser refuses empty contents). `ends[id]`: the pattern can only
    /// matter when it ends by that byte of the buffer (see [`Sieve::scan`]'s `origin`).
    /// `wide`: the AVX-512 kernel (the CPU must have it: [`wide_available`]), else the scalar
    /// one.
    pub(crate) fn with_kernel(patterns: &[&[u8]], ends: &[Option<u32>], wide: bool) -> Sieve {
        let head: Vec<bool> = (0..patterns.len())
            .map(|i| {
                ends.get(i)
                    .copied()
                    .flatten()
                    .is_some_and(|e| e as usize <= HEAD_MAX)
            })
            .collect();
        let mut s = Sieve::subset(patterns, &|id| !head[id], wide);
        if head.iter().any(|&h| h) {
            let end = (0..patterns.len())
                .filter(|&i| head[i])
                .filter_map(|i| ends[i])
                .max()
                .unwrap_or(0) as usize;
            s.head_part = Some((Box::new(Sieve::subset(patterns, &|id| head[id], wide)), end));
        }
        s
    }

    /// Over the patterns `keep` selects (ids stay the indices in `patterns`).
    fn subset(patterns: &[&[u8]], keep: &dyn Fn(usize) -> bool, wide: bool) -> Sieve {
        let pats: Vec<Box<[u8]>> = patterns
            .iter()
            .map(|p| p.to_ascii_lowercase().into())
            .collect();
        let long = (0..pats.len())
            .filter(|&i| keep(i) && pats[i].len() >= 4)
            .count();
        let k = (long.max(1) * 128)
            .next_power_of_two()
            .trailing_zeros()
            .clamp(12, 18);
        let shift = 32 - k;
        let mut bits = Box::new([0u64; BITS_WORDS]);
        let mut keyed: Vec<(u32, u32)> = Vec::with_capacity(long);
        let mut short_bits = Box::new([0u64; SHORT_WORDS]);
        let mut short = Vec::new();
        let mut single = Vec::new();
        let mut head = Vec::with_capacity(pats.len());
        for (id, p) in pats.iter().enumerate() {
            if !keep(id) {
                head.push(0);
                continue;
            }
            let id = id as u32;
            head.push(if p.len() >= 8 { fold8(p) } else { 0 });
            match p.len() {
                0 => {}
                1 => single.push((p[0], p[0].to_ascii_uppercase(), id)),
                2 | 3 => {
                    let key = u16::from_le_bytes([p[0], p[1]]) | 0x2020;
                    short_bits[key as usize >> 6] |= 1 << (key & 63);
                    short.push((key, id));
                }
                _ => {
                    let h = fold4([p[0], p[1], p[2], p[3]]).wrapping_mul(MUL) >> shift;
                    bits[h as usize >> 6] |= 1 << (h & 63);
                    keyed.push((h, id));
                }
            }
        }
        keyed.sort_unstable();
        short.sort_unstable();
        let mut lead = [[0u8; 128]; 6];
        // Patterns of 4 or 5 bytes share the last bucket, whose entries in the tables of
        // bytes they lack are all set.
        let mut by_prefix: Vec<(u32, usize)> = (0..pats.len())
            .filter(|&i| keep(i) && pats[i].len() >= 6)
            .map(|i| {
                let p = &pats[i];
                (
                    u32::from_be_bytes([p[0], p[1], p[2], p[3]]) | 0x2020_2020,
                    i,
                )
            })
            .collect();
        by_prefix.sort_unstable();
        let mid: Vec<usize> = (0..pats.len())
            .filter(|&i| keep(i) && (4..6).contains(&pats[i].len()))
            .collect();
        let buckets = if mid.is_empty() { 8 } else { 7 };
        let n_long = by_prefix.len().max(1);
        for (rank, &(_, i)) in by_prefix.iter().enumerate() {
            let bucket = rank * buckets / n_long;
            for (j, t) in lead.iter_mut().enumerate() {
                set_both_cases(t, pats[i][j], 1 << bucket);
            }
        }
        for &i in &mid {
            for (j, t) in lead.iter_mut().enumerate() {
                match pats[i].get(j) {
                    Some(&b) => set_both_cases(t, b, 0x80),
                    None => t.iter_mut().for_each(|e| *e |= 0x80),
                }
            }
        }
        let mut short_t = [[0u8; 128]; 2];
        // Distinct first two bytes (lowercased) in turn get bits 0..8; the tables hold the
        // bytes themselves, not the folded key.
        let mut pairs: Vec<[u8; 2]> = short
            .iter()
            .map(|&(_, id)| [pats[id as usize][0], pats[id as usize][1]])
            .collect();
        pairs.sort_unstable();
        pairs.dedup();
        for (j, &[a, b]) in pairs.iter().enumerate() {
            set_both_cases(&mut short_t[0], a, 1 << (j % 8));
            set_both_cases(&mut short_t[1], b, 1 << (j % 8));
        }
        let mut start = vec![0u32; (1 << k) + 1];
        for &(h, _) in &keyed {
            start[h as usize + 1] += 1;
        }
        for h in 0..(1usize << k) {
            start[h + 1] += start[h];
        }
        let ids = keyed.into_iter().map(|(_, id)| id).collect();
        Sieve {
            pats,
            head,
            bits,
            shift,
            start,
            ids,
            short_bits,
            short,
            single,
            short_t,
            lead,
            wide,
            head_part: None,
        }
    }

    /// The most patterns sharing one bucket.
    #[cfg(test)]
    pub fn max_bucket(&self) -> usize {
        self.start
            .windows(2)
            .map(|w| (w[1] - w[0]) as usize)
            .max()
            .unwrap_or(0)
    }

    /// Heap bytes held.
    pub fn memory_usage(&self) -> usize {
        self.pats.iter().map(|p| p.len() + 16).sum::<usize>()
            + self.head.len() * 8
            + BITS_WORDS * 8
            + self.start.len() * 4
            + self.ids.len() * 4
            + SHORT_WORDS * 8
            + self.short.len() * 8
            + self.single.len() * 8
            + self
                .head_part
                .as_ref()
                .map_or(0, |(h, _)| std::mem::size_of::<Sieve>() + h.memory_usage())
    }

    /// Calls `hit(id)` for every pattern occurring in `data` (at least once per pattern that
    /// occurs; `seen(id)` says a pattern was already reported and need not be compared again).
    /// `data` starts at byte `origin` of the buffer: patterns bounded to end before it are not
    /// looked for, the others bounded to the first bytes only there. Patterns may be reported
    /// that occur beyond their bound (the rules check bounds), never the reverse.
    pub fn scan(
        &self,
        data: &[u8],
        origin: usize,
        seen: &dyn Fn(usize) -> bool,
        hit: &mut dyn FnMut(usize),
    ) {
        if let Some((h, end)) = &self.head_part {
            if origin < *end {
                h.scan(&data[..data.len().min(end - origin)], 0, seen, hit);
            }
        }
        for &(a, b, id) in &self.single {
            if !seen(id as usize) && memchr::memchr2(a, b, data).is_some() {
                hit(id as usize);
            }
        }
        let n = data.len();
        let mut i = 0;
        // 2- and 3-byte patterns are probed for until each has been found: in text they
        // usually are, early, and the rest of the buffer is then probed for the longer ones only.
        let mut short_left = self
            .short
            .iter()
            .filter(|&&(_, id)| !seen(id as usize))
            .count();
        if short_left > 0 || !self.ids.is_empty() {
            // 64 positions per step with AVX-512, where the CPU has it, to the buffer's end
            // (the last block loaded under a mask).
            #[cfg(target_arch = "x86_64")]
            if self.wide {
                while i < n {
                    let avail = n - i;
                    // SAFETY: the CPU has the features (checked at build); `avail` bytes from
                    // `i` are in `data`.
                    #[allow(unsafe_code)]
                    let mut mask =
                        unsafe { self.mask64(data.as_ptr().add(i), avail.min(69), short_left > 0) };
                    while mask != 0 {
                        let k = mask.trailing_zeros() as usize;
                        mask &= mask - 1;
                        let at = &data[i + k..];
                        let key = if let [a, b, c, d, ..] = *at {
                            let x = fold4([a, b, c, d]);
                            self.probe(x, at, seen, hit);
                            x as u16
                        } else {
                            u16::from_le_bytes([at[0], at[1]]) | 0x2020
                        };
                        self.short_probe(key, at, &mut short_left, seen, hit);
                    }
                    i += 64;
                    if short_left == 0 && self.ids.is_empty() {
                        break;
                    }
                }
                // Nothing left for the scalar loops below.
                i = n;
            }
            // 32 positions per step: their bits gathered into a mask without branches, then
            // the (rare) set ones verified. While 2- and 3-byte patterns remain unfound, the
            // mask also holds their bitmap's bit.
            while let Some(w) = data.get(i..i + 35) {
                let w: &[u8; 35] = w.try_into().expect("35 bytes");
                let mut mask = if short_left > 0 {
                    self.mask32::<true>(w)
                } else {
                    self.mask32::<false>(w)
                };
                while mask != 0 {
                    let k = mask.trailing_zeros() as usize;
                    mask &= mask - 1;
                    let x = fold4([w[k], w[k + 1], w[k + 2], w[k + 3]]);
                    let at = &data[i + k..];
                    self.probe(x, at, seen, hit);
                    self.short_probe(x as u16, at, &mut short_left, seen, hit);
                }
                i += 32;
                if short_left == 0 && self.ids.is_empty() {
                    break;
                }
            }
            while let Some(w) = data.get(i..i + 4) {
                if short_left == 0 && self.ids.is_empty() {
                    break;
                }
                let x = fold4([w[0], w[1], w[2], w[3]]);
                self.probe(x, &data[i..], seen, hit);
                self.short_probe(x as u16, &data[i..], &mut short_left, seen, hit);
                i += 1;
            }
            i = i.max(n.saturating_sub(3));
        }
        // The last positions, where fewer than 4 bytes remain: only 2- and 3-byte patterns.
        if short_left > 0 {
            for i in i.max(n.saturating_sub(3))..n.saturating_sub(1) {
                let x = u16::from_le_bytes([data[i], data[i + 1]]) | 0x2020;
                self.short_probe(x, &data[i..], &mut short_left, seen, hit);
            }
        }
    }

    /// Bit k: position k of `w` may start a pattern of 4 bytes or more, or, with `SHORT`, a
    /// 2- or 3-byte one.
    #[inline(always)]
    fn mask32<const SHORT: bool>(&self, w: &[u8; 35]) -> u32 {
        let mut mask = 0u32;
        for k in 0..32 {
            let x = fold4([w[k], w[k + 1], w[k + 2], w[k + 3]]);
            let h = (x.wrapping_mul(MUL) >> self.shift) as usize;
            let mut bit = self.bits[(h >> 6) % BITS_WORDS] >> (h & 63) & 1;
            if SHORT {
                let s = (x & 0xffff) as usize;
                bit |= self.short_bits[(s >> 6) % SHORT_WORDS] >> (s & 63) & 1;
            }
            mask |= (bit as u32) << k;
        }
        mask
    }

    /// As [`Sieve::mask32`] for the 64 positions from
    /// `p`, of which `avail` bytes (1 to 69) are readable: bits only for positions with 4 bytes
    /// (long patterns) or 2 bytes (short ones) left. The 4-byte windows at 16 positions are put
    /// in the 16 lanes of a vector by one byte permutation, folded, hashed by one
    /// multiplication, and their bits fetched by one gather, for the lanes that passed the lead
    /// tables.
    ///
    /// # Safety
    /// The CPU has AVX-512 F, BW and VBMI; `p` points to `avail` readable bytes.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    #[allow(unsafe_code)]
    unsafe fn mask64(&self, p: *const u8, avail: usize, short: bool) -> u64 {
        use std::arch::x86_64::*;
        // Lane l of group g takes bytes 16g + l .. 16g + l + 4.
        const fn windows(g: usize) -> [u8; 64] {
            let mut t = [0u8; 64];
            let mut b = 0;
            while b < 64 {
                t[b] = (16 * g + b / 4 + b % 4) as u8;
                b += 1;
            }
            t
        }
        const W: [[u8; 64]; 4] = [windows(0), windows(1), windows(2), windows(3)];
        // Byte k + j at k.
        const fn shifted(j: u8) -> [u8; 64] {
            let mut t = [0u8; 64];
            let mut b = 0;
            while b < 64 {
                t[b] = b as u8 + j;
                b += 1;
            }
            t
        }
        const NEXT: [[u8; 64]; 5] = [shifted(1), shifted(2), shifted(3), shifted(4), shifted(5)];
        // Positions with 4 and 2 bytes left.
        let long_ok = if avail >= 67 {
            u64::MAX
        } else {
            (1u64 << avail.saturating_sub(3)) - 1
        };
        let short_ok = if avail >= 65 {
            u64::MAX
        } else {
            (1u64 << avail.saturating_sub(1)) - 1
        };
        // SAFETY: the caller guarantees `avail` readable bytes at `p` and the CPU features;
        // the loads read no byte past them (masked-off bytes are not accessed).
        unsafe {
            let lo = if avail >= 64 {
                _mm512_loadu_si512(p as *const __m512i)
            } else {
                _mm512_maskz_loadu_epi8((1u64 << avail) - 1, p as *const i8)
            };
            let hi = if avail > 64 {
                _mm512_maskz_loadu_epi8((1u64 << (avail - 64)) - 1, p.add(64) as *const i8)
            } else {
                _mm512_setzero_si512()
            };
            let fold = _mm512_set1_epi32(0x2020_2020);
            let mul = _mm512_set1_epi32(MUL as i32);
            let shift = _mm_cvtsi32_si128(self.shift as i32);
            let low5 = _mm512_set1_epi32(31);
            let one = _mm512_set1_epi32(1);
            let bits = self.bits.as_ptr() as *const i32;
            // Byte k + j of the block at k, for j = 0..6.
            let at = |j: usize| {
                if j == 0 {
                    lo
                } else {
                    let i = _mm512_loadu_si512(NEXT[j - 1].as_ptr() as *const __m512i);
                    _mm512_permutex2var_epi8(lo, i, hi)
                }
            };
            // The table entries of those bytes (the permutation reads the low 7 bits of each;
            // the tables hold both cases: `set_both_cases`).
            let t = |i: __m512i, tab: &[u8; 128]| {
                _mm512_permutex2var_epi8(
                    _mm512_loadu_si512(tab.as_ptr() as *const __m512i),
                    i,
                    _mm512_loadu_si512(tab.as_ptr().add(64) as *const __m512i),
                )
            };
            let b = [at(0), at(1), at(2), at(3), at(4), at(5)];
            let mut mask = 0u64;
            if short {
                mask = _mm512_test_epi8_mask(t(b[0], &self.short_t[0]), t(b[1], &self.short_t[1]))
                    & short_ok;
            }
            let l = &self.lead;
            let v = _mm512_and_si512(
                _mm512_and_si512(t(b[0], &l[0]), t(b[1], &l[1])),
                _mm512_and_si512(t(b[2], &l[2]), t(b[3], &l[3])),
            );
            let v = _mm512_and_si512(v, _mm512_and_si512(t(b[4], &l[4]), t(b[5], &l[5])));
            let lead = _mm512_test_epi8_mask(v, v) & long_ok;
            if lead == 0 {
                return mask;
            }
            for (g, idx) in W.iter().enumerate() {
                let pass = (lead >> (16 * g)) as u16;
                if pass == 0 {
                    continue;
                }
                let idx = _mm512_loadu_si512(idx.as_ptr() as *const __m512i);
                let x = _mm512_or_si512(_mm512_permutex2var_epi8(lo, idx, hi), fold);
                let h = _mm512_srl_epi32(_mm512_mullo_epi32(x, mul), shift);
                let words = _mm512_mask_i32gather_epi32::<4>(
                    _mm512_setzero_si512(),
                    pass,
                    _mm512_srli_epi32::<5>(h),
                    bits,
                );
                let v = _mm512_srlv_epi32(words, _mm512_and_si512(h, low5));
                mask |= (_mm512_mask_test_epi32_mask(pass, v, one) as u64) << (16 * g);
            }
            mask
        }
    }

    /// Tests the 4 folded bytes at the start of `at` against the long patterns' bitmap.
    #[inline(always)]
    fn probe(&self, x: u32, at: &[u8], seen: &dyn Fn(usize) -> bool, hit: &mut dyn FnMut(usize)) {
        let h = (x.wrapping_mul(MUL) >> self.shift) as usize;
        if test(&self.bits[..], h) {
            self.verify(h, at, seen, hit);
        }
    }

    #[inline(never)]
    fn verify(
        &self,
        h: usize,
        at: &[u8],
        seen: &dyn Fn(usize) -> bool,
        hit: &mut dyn FnMut(usize),
    ) {
        let head = if at.len() >= 8 { fold8(at) } else { 0 };
        for &id in &self.ids[self.start[h] as usize..self.start[h + 1] as usize] {
            let id = id as usize;
            // The first 8 bytes in one comparison before the whole pattern.
            if self.pats[id].len() < 8 || self.head[id] == head {
                self.compare(id, at, seen, hit);
            }
        }
    }

    /// Reports pattern `id` when it starts `at` and was not reported before in this buffer.
    #[inline(always)]
    fn compare(
        &self,
        id: usize,
        at: &[u8],
        seen: &dyn Fn(usize) -> bool,
        hit: &mut dyn FnMut(usize),
    ) -> bool {
        let p = &self.pats[id];
        let found = p.len() <= at.len() && !seen(id) && at[..p.len()].eq_ignore_ascii_case(p);
        if found {
            hit(id);
        }
        found
    }

    /// While 2- and 3-byte patterns remain unfound (`left`), tests the folded 2 bytes `key` at
    /// the start of `at` against their bitmap and verifies that bucket, counting `left` down.
    #[inline(always)]
    fn short_probe(
        &self,
        key: u16,
        at: &[u8],
        left: &mut usize,
        seen: &dyn Fn(usize) -> bool,
        hit: &mut dyn FnMut(usize),
    ) {
        if *left > 0 && test(&self.short_bits[..], key as usize) {
            *left = left.saturating_sub(self.verify_short(key, at, seen, hit));
        }
    }

    #[inline(never)]
    fn verify_short(
        &self,
        key: u16,
        at: &[u8],
        seen: &dyn Fn(usize) -> bool,
        hit: &mut dyn FnMut(usize),
    ) -> usize {
        let from = self.short.partition_point(|&(k, _)| k < key);
        let mut found = 0;
        for &(k, id) in &self.short[from..] {
            if k != key {
                break;
            }
            found += usize::from(self.compare(id as usize, at, seen, hit));
        }
        found
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    thread_local! {
        /// Whether the sieves these tests build may use AVX-512 (where the CPU has it).
        static WIDE: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
    }

    /// Runs `f` with the wide kernel, where the CPU has it, and with the scalar one.
    fn both_kernels(f: impl Fn()) {
        for w in [true, false] {
            WIDE.with(|c| c.set(w));
            f();
        }
        WIDE.with(|c| c.set(true));
    }

    /// Every pattern id occurring in `data`, the slow way.
    pub(in crate::sig) fn naive(pats: &[Vec<u8>], data: &[u8]) -> BTreeSet<usize> {
        (0..pats.len())
            .filter(|&i| {
                let p = &pats[i];
                data.windows(p.len()).any(|w| w.eq_ignore_ascii_case(p))
            })
            .collect()
    }

    /// What the sieve reports, with `seen` kept as the engine keeps it.
    fn sieved(pats: &[Vec<u8>], data: &[u8], pre: &[usize]) -> (BTreeSet<usize>, usize) {
        sieved_from(pats, &[], data, 0, pre)
    }

    /// As [`sieved`], with bounds and the data starting at `origin` of its buffer.
    fn sieved_from(
        pats: &[Vec<u8>],
        ends: &[Option<u32>],
        data: &[u8],
        origin: usize,
        pre: &[usize],
    ) -> (BTreeSet<usize>, usize) {
        let refs: Vec<&[u8]> = pats.iter().map(|p| &p[..]).collect();
        let s = Sieve::with_kernel(&refs, ends, WIDE.with(|w| w.get()) && wide_available());
        let found = RefCell::new(pre.iter().copied().collect::<BTreeSet<usize>>());
        let mut calls = 0;
        s.scan(
            data,
            origin,
            &|id| found.borrow().contains(&id),
            &mut |id| {
                calls += 1;
                found.borrow_mut().insert(id);
            },
        );
        (found.into_inner(), calls)
    }

    #[test]
    fn finds_every_length_case_insensitively() {
        let pats: Vec<Vec<u8>> = [
            &b"x"[..],
            b"Mz",
            b"pk\x03",
            b"\x00\x00\x00",
            b"abcd",
            b"abcde",
            b"ELF\x01\x02\x03\x04\x05\x06",
            b"content-length: ",
            b"zzzz",
        ]
        .iter()
        .map(|p| p.to_vec())
        .collect();
        both_kernels(|| {
            let data =
                b"..mZ..PK\x03 \x00\x00\x00 ABCDE elf\x01\x02\x03\x04\x05\x06 Content-Length: 5 X";
            let (got, _) = sieved(&pats, data, &[]);
            assert_eq!(got, naive(&pats, data));
            assert_eq!(got, [0, 1, 2, 3, 4, 5, 6, 7].into_iter().collect());
            // At the very end of the buffer, and in buffers shorter than 4 bytes.
            for data in [&b"..mz"[..], b"mz", b"pk\x03", b"ab", b"", b"x"] {
                assert_eq!(sieved(&pats, data, &[]).0, naive(&pats, data), "{data:?}");
            }
            // Each pattern at every position of a buffer long enough for the wide kernel's
            // blocks, and at its very end.
            for p in &pats {
                for at in [0, 1, 31, 32, 60, 63, 64, 65, 66, 127, 128, 190] {
                    let mut data = vec![b'.'; 220];
                    data[at..at + p.len()].copy_from_slice(&p.to_ascii_uppercase());
                    assert_eq!(
                        sieved(&pats, &data, &[]).0,
                        naive(&pats, &data),
                        "{p:?} at {at}"
                    );
                    let end = data.len() - p.len();
                    data[end..].copy_from_slice(p);
                    assert_eq!(
                        sieved(&pats, &data, &[]).0,
                        naive(&pats, &data),
                        "{p:?} at end"
                    );
                }
            }
        });
    }

    #[test]
    fn patterns_already_found_are_not_compared_again() {
        let pats = vec![b"aaaa".to_vec(), b"aa".to_vec(), b"aaaab".to_vec()];
        let data = vec![b'a'; 10_000];
        both_kernels(|| {
            let (got, calls) = sieved(&pats, &data, &[]);
            assert_eq!(got, [0, 1].into_iter().collect());
            assert_eq!(calls, 2, "each pattern reported once");
            // A pattern reported by an earlier pass is not reported again.
            let (_, calls) = sieved(&pats, &data, &[0]);
            assert_eq!(calls, 1);
        });
    }

    #[test]
    fn buckets_stay_small_on_et_open_like_sets() {
        // 2,000 patterns sharing 4-byte prefixes in groups of 4.
        let pats: Vec<Vec<u8>> = (0..2000u32)
            .map(|i| format!("p{:03}-{i:05}", i / 4).into_bytes())
            .collect();
        let refs: Vec<&[u8]> = pats.iter().map(|p| &p[..]).collect();
        let s = Sieve::with_kernel(&refs, &[], false);
        assert!(s.max_bucket() <= 48, "{}", s.max_bucket());
        let data = b"xx P123-00494 yy p499-01999";
        assert_eq!(sieved(&pats, data, &[]).0, naive(&pats, data));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn same_as_a_naive_search(
            pats in proptest::collection::vec(
                proptest::collection::vec(prop_oneof![Just(0u8), Just(b'a'), Just(b'B'), Just(b'@'), Just(b'`'), any::<u8>()], 1..12),
                1..80),
            data in proptest::collection::vec(prop_oneof![Just(0u8), Just(b'A'), Just(b'b'), Just(b'@'), Just(b'`'), any::<u8>()], 0..300),
        ) {
            for wide in [true, false] {
                WIDE.with(|c| c.set(wide));
                let (got, _) = sieved(&pats, &data, &[]);
                prop_assert_eq!(got, naive(&pats, &data), "wide {}", wide);
            }
        }

        /// Patterns bounded to the buffer's first bytes: every occurrence within its bound is
        /// reported, whatever part of the buffer the scan starts at; nothing that does not
        /// occur is.
        #[test]
        fn bounded_patterns_are_found_within_their_bound(
            pats in proptest::collection::vec(
                (proptest::collection::vec(prop_oneof![Just(0u8), Just(b'a'), Just(b'B'), any::<u8>()], 1..8),
                 proptest::option::of(0u32..120)),
                1..40),
            data in proptest::collection::vec(prop_oneof![Just(0u8), Just(b'A'), Just(b'b'), any::<u8>()], 0..300),
            origin in 0usize..150,
        ) {
            let (ps, ends): (Vec<Vec<u8>>, Vec<Option<u32>>) = pats.into_iter().unzip();
            for wide in [true, false] {
                WIDE.with(|c| c.set(wide));
                let (got, _) = sieved_from(&ps, &ends, &data, origin, &[]);
                let within: BTreeSet<usize> = (0..ps.len())
                    .filter(|&i| {
                        let lim = match ends[i] {
                            Some(e) => (e as usize).saturating_sub(origin).min(data.len()),
                            None => data.len(),
                        };
                        data[..lim].windows(ps[i].len()).any(|w| w.eq_ignore_ascii_case(&ps[i]))
                    })
                    .collect();
                let anywhere = naive(&ps, &data);
                prop_assert!(within.is_subset(&got), "missed {:?} (wide {})", within.difference(&got).collect::<Vec<_>>(), wide);
                prop_assert!(got.is_subset(&anywhere), "wide {}", wide);
            }
        }
    }
}
