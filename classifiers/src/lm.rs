//! A character trigram model of benign names: how surprising each character of a label is after
//! the two before it, in bits.
//!
//! The domain model's hashed n-grams learn which n-grams the training families use; this table
//! says instead how unusual a name's character sequence is for legitimate names, counted exactly
//! (no hash collisions) over every benign training name. Random strings spend many bits per
//! character whatever family made them, which is what carries to families never trained on.
//!
//! The table holds `-log2 p(c | a b)` for every pair of preceding symbols `a b` and symbol `c`,
//! over [`SYMBOLS`] symbols (a-z, 0-9, `-`, the label's end mark, anything else), quantised to
//! 1/8 bit in one byte ([`CELLS`] bytes, 59 KB). The trainer builds it from counts and stores it
//! in the model file (`lm.cost`), so training and serving read the same quantised values.
//! Probabilities interpolate trigram, bigram and unigram estimates with a uniform floor; a
//! context never seen passes its weight to the lower orders.

/// Symbols: a-z, 0-9, `-`, the end mark, other.
pub const SYMBOLS: usize = 39;
/// Table cells: one per (two symbols of context, symbol).
pub const CELLS: usize = SYMBOLS * SYMBOLS * SYMBOLS;
/// The end mark (before a label's first character and after its last).
pub const MARK: u8 = 37;
/// Steps of the quantised cost per bit.
pub const STEPS_PER_BIT: f32 = 8.0;
/// A cost at or above this many bits counts as a rare transition.
pub const RARE_BITS: f32 = 9.0;

/// The symbol of a (lower-cased) byte: letters 0-25, digits 26-35, `-` 36, anything else 38.
#[inline(always)]
pub fn symbol(c: u8) -> u8 {
    // A table, not a match: letters and digits alternate in random names, and the match's
    // branches mispredicted on them.
    SYMBOL_OF[c as usize]
}

const SYMBOL_OF: [u8; 256] = {
    let mut t = [38u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = match b {
            b'a'..=b'z' => b - b'a',
            b'0'..=b'9' => 26 + (b - b'0'),
            b'-' => 36,
            _ => 38,
        };
        c += 1;
    }
    t
};

/// Counts of benign labels, to build a [`CharLm`] from.
#[derive(Debug, Clone)]
pub struct Counts {
    tri: Vec<u32>,
}

impl Default for Counts {
    fn default() -> Self {
        Counts {
            tri: vec![0; CELLS],
        }
    }
}

impl Counts {
    /// Counts the transitions of one label (without its end marks), at most 63 bytes of it.
    pub fn add_label(&mut self, label: &[u8]) {
        let (mut a, mut b) = (MARK, MARK);
        for &c in label.iter().take(63) {
            let s = symbol(c);
            self.tri[cell(a, b, s)] += 1;
            (a, b) = (b, s);
        }
        self.tri[cell(a, b, MARK)] += 1;
    }

    /// Counts every dot-separated label of a name.
    pub fn add_name(&mut self, name: &str) {
        for l in name.split('.').filter(|l| !l.is_empty()) {
            self.add_label(l.as_bytes());
        }
    }

    /// The model these counts give.
    pub fn build(&self) -> CharLm {
        const L3: f64 = 0.6;
        const L2: f64 = 0.3;
        const L1: f64 = 0.09;
        const L0: f64 = 0.01;
        let n = SYMBOLS;
        // Bigram counts (b, c) and unigram counts (c), with their context totals.
        let mut bi = vec![0u64; n * n];
        let mut uni = vec![0u64; n];
        let mut ctx3 = vec![0u64; n * n];
        for a in 0..n {
            for b in 0..n {
                for c in 0..n {
                    let k = self.tri[(a * n + b) * n + c] as u64;
                    bi[b * n + c] += k;
                    uni[c] += k;
                    ctx3[a * n + b] += k;
                }
            }
        }
        let mut ctx2 = vec![0u64; n];
        for b in 0..n {
            ctx2[b] = (0..n).map(|c| bi[b * n + c]).sum();
        }
        let total: u64 = uni.iter().sum();
        let mut cost = vec![0u8; CELLS];
        for a in 0..n {
            for b in 0..n {
                for c in 0..n {
                    let mut p = 0.0;
                    let mut w = 0.0;
                    let t = ctx3[a * n + b];
                    if t > 0 {
                        p += L3 * self.tri[(a * n + b) * n + c] as f64 / t as f64;
                        w += L3;
                    }
                    if ctx2[b] > 0 {
                        p += L2 * bi[b * n + c] as f64 / ctx2[b] as f64;
                        w += L2;
                    }
                    if total > 0 {
                        p += L1 * uni[c] as f64 / total as f64;
                        w += L1;
                    }
                    p += L0 / n as f64;
                    w += L0;
                    let bits = -(p / w).log2();
                    cost[(a * n + b) * n + c] =
                        (bits * STEPS_PER_BIT as f64).round().clamp(0.0, 255.0) as u8;
                }
            }
        }
        CharLm { cost }
    }
}

#[inline(always)]
fn cell(a: u8, b: u8, c: u8) -> usize {
    (a as usize * SYMBOLS + b as usize) * SYMBOLS + c as usize
}

/// The quantised table (see the module's text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharLm {
    cost: Vec<u8>,
}

/// How surprising a label is: its characters' mean cost and its share of rare transitions.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Surprise {
    /// Mean bits per transition (each character and the end).
    pub mean_bits: f32,
    /// Share of transitions costing at least [`RARE_BITS`].
    pub rare: f32,
}

impl CharLm {
    /// A table from its [`CELLS`] bytes.
    pub fn from_cost(cost: &[u8]) -> Result<CharLm, String> {
        if cost.len() != CELLS {
            return Err(format!("lm.cost: {} bytes, want {CELLS}", cost.len()));
        }
        Ok(CharLm {
            cost: cost.to_vec(),
        })
    }

    /// The table's bytes (what the model file stores).
    pub fn cost(&self) -> &[u8] {
        &self.cost
    }

    /// The surprise of `label` (lower-cased bytes, without its end marks); zero for an empty one.
    #[inline]
    pub fn surprise(&self, label: &[u8]) -> Surprise {
        if label.is_empty() {
            return Surprise::default();
        }
        let rare_steps = (RARE_BITS * STEPS_PER_BIT) as u8;
        let (mut a, mut b) = (MARK, MARK);
        let (mut sum, mut rare) = (0u32, 0u32);
        let mut step = |a: u8, b: u8, c: u8| {
            // Every index is below CELLS: symbols are below SYMBOLS.
            let q = self.cost.get(cell(a, b, c)).copied().unwrap_or(255);
            sum += q as u32;
            rare += (q >= rare_steps) as u32;
        };
        for &c in label {
            let s = symbol(c);
            step(a, b, s);
            (a, b) = (b, s);
        }
        step(a, b, MARK);
        let n = (label.len() + 1) as f32;
        Surprise {
            mean_bits: sum as f32 / STEPS_PER_BIT / n,
            rare: rare as f32 / n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_cost_less_than_noise() {
        let mut c = Counts::default();
        for w in [
            "example",
            "google",
            "wikipedia",
            "mail",
            "shop",
            "online",
            "network",
            "service",
            "homepage",
            "forum",
            "news",
            "bank",
            "travel",
            "company",
            "garden",
        ] {
            for _ in 0..10 {
                c.add_name(w);
            }
        }
        let lm = c.build();
        assert_eq!(lm.cost().len(), CELLS);
        let word = lm.surprise(b"newsforum");
        let noise = lm.surprise(b"xqzjvkwpq");
        assert!(word.mean_bits < noise.mean_bits, "{word:?} {noise:?}");
        assert!(word.rare < noise.rare);
        assert_eq!(lm.surprise(b""), Surprise::default());
        // Any bytes are accepted.
        let odd = lm.surprise(b"\xff\x00_?");
        assert!(odd.mean_bits.is_finite());
        assert_eq!(CharLm::from_cost(lm.cost()), Ok(lm));
        assert!(CharLm::from_cost(&[0; 5]).is_err());
    }
}
