//! Domain-name features: hashed character n-grams plus lexical measures.
//!
//! A name is lower-cased and split by the Public Suffix List into the subdomain part, the
//! registrable label and the public suffix (`cdn.img` · `example` · `co.uk`). The model sees:
//!
//! - **n-grams of the registrable label**, with `^` and `$` marking its ends: every 1-, 2- and
//!   3-gram ([`ORDERS`]), hashed (FNV-1a, one namespace per order) into [`NGRAM_BUCKETS`]
//!   buckets;
//! - **the public suffix** as one token (DGA families favour a few suffixes), and whether it is a
//!   dynamic-DNS zone (maltrail's list, added to the suffix rules by [`Psl::bundled`]);
//! - **3-grams of the subdomain part**, its last [`SUB_CHARS`] characters, in a namespace of
//!   their own;
//! - [`LEX`] **lexical measures**, each scaled to about 0..1: lengths, label count, Shannon entropy,
//!   digit, vowel and distinct-character ratios, the longest consonant run, hyphens, letter-digit
//!   alternations, punycode, and the same for the subdomain part;
//! - **surprise** under a character trigram model of benign names ([`crate::lm`]): the mean bits
//!   per character of the registrable label and of the subdomain part, the label's share of rare
//!   transitions, and the label's total bits and rare transitions.
//!
//! The token values form a sparse input vector: each occurrence adds `1/sqrt(tokens)` to its
//! bucket, so long and short names weigh the same. [`NameFeatures::dense`] writes the vector out
//! in full for training; serving adds weight rows for the tokens and never builds it.
//!
//! Everything is bounded: names are cut at 253 bytes, labels at 63, so a name yields at most
//! [`MAX_TOKENS`] tokens, and extraction allocates nothing.

use crate::lm::CharLm;
use crate::psl::Psl;

/// Hash buckets for the n-gram and suffix tokens.
pub const NGRAM_BUCKETS: usize = 8192;
/// Lexical measures, the character model's among them.
pub const LEX: usize = 22;
/// Longest n-gram of the registrable label (4-grams added tokens, not accuracy, once the
/// character model was in: `MODEL.md`).
pub const ORDERS: usize = 3;
/// Width of the model's input vector: buckets, then lexical measures.
pub const INPUT: usize = NGRAM_BUCKETS + LEX;
/// Subdomain characters looked at (the ones nearest the registrable label).
pub const SUB_CHARS: usize = 48;
/// Most tokens a name can give ([`ORDERS`] orders over a 63-byte label with its two end marks,
/// the suffix, and the subdomain's 3-grams).
pub const MAX_TOKENS: usize = ORDERS * 65 + 1 + SUB_CHARS;
/// Longest name considered, in bytes.
pub const MAX_NAME: usize = 253;
/// Version of this feature layout; the model file records the one it was trained on.
pub const FEATURES_VERSION: &str = "5";

/// The features of one name.
#[derive(Debug, Clone)]
pub struct NameFeatures {
    /// Bucket of each token, `tokens` of them.
    pub idx: [u16; MAX_TOKENS],
    /// Number of tokens.
    pub tokens: usize,
    /// Lexical measures.
    pub lex: [f32; LEX],
}

impl Default for NameFeatures {
    fn default() -> Self {
        NameFeatures {
            idx: [0; MAX_TOKENS],
            tokens: 0,
            lex: [0.0; LEX],
        }
    }
}

/// A name lower-cased into a fixed buffer: ASCII letters lowered, a trailing dot dropped, bytes
/// outside printable ASCII mapped to `?`, cut at [`MAX_NAME`] bytes.
#[derive(Debug, Clone, Copy)]
pub struct Normal {
    buf: [u8; MAX_NAME],
    len: usize,
}

impl Normal {
    /// Normalises `name`.
    pub fn new(name: &[u8]) -> Normal {
        let mut buf = [0u8; MAX_NAME];
        let name = name.strip_suffix(b".").unwrap_or(name);
        let len = name.len().min(MAX_NAME);
        for (d, &c) in buf.iter_mut().zip(&name[..len]) {
            *d = match c {
                b'A'..=b'Z' => c + 32,
                0x21..=0x7e => c,
                _ => b'?',
            };
        }
        Normal { buf, len }
    }

    /// The normalised name.
    pub fn as_str(&self) -> &str {
        // Only printable ASCII is ever written.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

/// The bucket of a token whose FNV-1a hash is `h`, in namespace `ns` (the n-gram order, or 5 for
/// the suffix and 6 for subdomain 3-grams).
fn bucket_of(h: u32, ns: u32) -> u16 {
    let h = (h ^ ns.wrapping_mul(0x9e37_79b1)).wrapping_mul(FNV_PRIME);
    // Fold the high bits in: FNV's low bits alone mix poorly for short inputs.
    ((h ^ (h >> 16)) as usize % NGRAM_BUCKETS) as u16
}

fn fnv(bytes: &[u8]) -> u32 {
    let mut h = FNV_OFFSET;
    for &b in bytes {
        h = (h ^ b as u32).wrapping_mul(FNV_PRIME);
    }
    h
}

/// `c * log2(c)` for the counts a label can hold, for entropy without a logarithm per call.
fn clog2c(c: usize) -> f32 {
    static TABLE: std::sync::OnceLock<[f32; MAX_NAME + 2]> = std::sync::OnceLock::new();
    let t = TABLE.get_or_init(|| {
        let mut t = [0f32; MAX_NAME + 2];
        for (i, v) in t.iter_mut().enumerate().skip(1) {
            *v = i as f32 * (i as f32).log2();
        }
        t
    });
    t[c.min(MAX_NAME + 1)]
}

fn is_vowel(c: u8) -> bool {
    matches!(c, b'a' | b'e' | b'i' | b'o' | b'u' | b'y')
}

/// Shannon entropy in bits per character: `log2(n) - sum(c log2 c) / n`.
fn entropy(s: &[u8]) -> f32 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u8; 128];
    let mut distinct = [0u8; 64];
    let mut nd = 0;
    for &c in s {
        let k = &mut counts[(c & 0x7f) as usize];
        if *k == 0 && nd < distinct.len() {
            distinct[nd] = c & 0x7f;
            nd += 1;
        }
        *k = k.saturating_add(1);
    }
    entropy_of(&counts, &distinct[..nd], s.len())
}

/// Shannon entropy in bits per symbol from symbol counts, summed over the symbols in the order
/// given (their first appearance), so every caller computes the same bits.
fn entropy_of(counts: &[u8; 128], distinct: &[u8], n: usize) -> f32 {
    if n == 0 {
        return 0.0;
    }
    let sum: f32 = distinct
        .iter()
        .map(|&c| clog2c(counts[(c & 0x7f) as usize] as usize))
        .sum();
    (clog2c(n) - sum) / n as f32
}

fn ratio(a: usize, b: usize) -> f32 {
    if b == 0 {
        0.0
    } else {
        a as f32 / b as f32
    }
}

impl NameFeatures {
    /// Extracts the features of `name` (any bytes; normalised first).
    pub fn extract(&mut self, psl: &Psl, lm: &CharLm, name: &[u8]) {
        let norm = Normal::new(name);
        self.extract_normal(psl, lm, norm.as_str());
    }

    /// Extracts the features of an already normalised name.
    pub fn extract_normal(&mut self, psl: &Psl, lm: &CharLm, name: &str) {
        let b = name.as_bytes();
        let split = psl.split(name);
        let label_end = if split.label < split.suffix {
            split.suffix - 1
        } else {
            split.label
        };
        let label = &b[split.label..label_end.min(split.label + 63)];
        let suffix = &b[split.suffix..];
        let sub = if split.label > 0 {
            &b[..split.label - 1]
        } else {
            &b[..0]
        };
        let sub_tail = &sub[sub.len().saturating_sub(SUB_CHARS)..];

        self.tokens = 0;
        let push = |f: &mut NameFeatures, idx: u16| {
            if f.tokens < MAX_TOKENS {
                f.idx[f.tokens] = idx;
                f.tokens += 1;
            }
        };
        // The label with its end marks.
        let mut marked = [0u8; 65];
        marked[0] = b'^';
        marked[1..=label.len()].copy_from_slice(label);
        marked[label.len() + 1] = b'$';
        let marked = &marked[..label.len() + 2];
        // One FNV pass from each start position gives its 1- to 3-grams; unigrams of the end
        // marks are not tokens.
        for i in 0..marked.len() {
            let mut h = FNV_OFFSET;
            for (k, &c) in marked[i..].iter().take(ORDERS).enumerate() {
                h = (h ^ c as u32).wrapping_mul(FNV_PRIME);
                if k > 0 || (c != b'^' && c != b'$') {
                    push(self, bucket_of(h, k as u32 + 1));
                }
            }
        }
        push(self, bucket_of(fnv(suffix), 5));
        for w in sub_tail.windows(3) {
            push(self, bucket_of(fnv(w), 6));
        }

        // Lexical measures, the label's in one pass.
        let (mut digits, mut letters, mut vowels, mut hyphens) = (0usize, 0usize, 0usize, 0usize);
        let (mut run, mut max_run, mut distinct, mut alternations) =
            (0usize, 0usize, 0usize, 0usize);
        // Per-symbol counts and the symbols in order of first appearance, for the entropy (a
        // label is at most 63 bytes, so neither overflows).
        let mut counts = [0u8; 128];
        let mut order = [0u8; 64];
        let mut prev_digit = None;
        for &c in label {
            let digit = c.is_ascii_digit();
            let lower = c.is_ascii_lowercase();
            let vowel = is_vowel(c);
            digits += digit as usize;
            letters += lower as usize;
            vowels += vowel as usize;
            hyphens += (c == b'-') as usize;
            // Without branches: consonants and first appearances come in no pattern a branch
            // predictor could learn on random names.
            run = (run + 1) * (lower && !vowel) as usize;
            max_run = max_run.max(run);
            let k = &mut counts[(c & 0x7f) as usize];
            // The slot past the last symbol is scratch until a new symbol takes it.
            order[distinct & 63] = c & 0x7f;
            distinct += (*k == 0) as usize;
            *k = k.saturating_add(1);
            alternations += (prev_digit.is_some_and(|p| p != digit)) as usize;
            prev_digit = Some(digit);
        }
        let sub_digits = sub.iter().filter(|c| c.is_ascii_digit()).count();
        let labels = 1 + b.iter().filter(|&&c| c == b'.').count();
        let suffix_labels = if suffix.is_empty() {
            0
        } else {
            1 + suffix.iter().filter(|&&c| c == b'.').count()
        };
        let max_sub_label = sub
            .split(|&c| c == b'.')
            .map(|l| l.len())
            .max()
            .unwrap_or(0);
        let surprise = lm.surprise(label);
        let (mut sub_bits, mut sub_n) = (0f32, 0usize);
        for l in sub_tail.split(|&c| c == b'.').filter(|l| !l.is_empty()) {
            sub_bits += lm.surprise(l).mean_bits * (l.len() + 1) as f32;
            sub_n += l.len() + 1;
        }
        self.lex = [
            (b.len() as f32 / 64.0).min(4.0),
            label.len() as f32 / 32.0,
            (sub.len() as f32 / 64.0).min(4.0),
            (labels as f32 / 8.0).min(4.0),
            entropy_of(&counts, &order[..distinct.min(64)], label.len()) / 5.0,
            ratio(digits, label.len()),
            ratio(vowels, letters),
            (max_run as f32 / 10.0).min(2.0),
            (hyphens as f32 / 4.0).min(2.0),
            ratio(sub_digits, sub.len()),
            ratio(distinct, label.len()),
            ratio(alternations, label.len()),
            if name.contains("xn--") { 1.0 } else { 0.0 },
            suffix_labels as f32 / 3.0,
            entropy(sub_tail) / 5.0,
            (max_sub_label as f32 / 63.0).min(1.0),
            surprise.mean_bits / 16.0,
            surprise.rare,
            // Total evidence: a long random label says more than a short one.
            (surprise.mean_bits * (label.len() + 1) as f32 / 128.0).min(4.0),
            (surprise.rare * (label.len() + 1) as f32 / 16.0).min(4.0),
            if sub_n == 0 {
                0.0
            } else {
                sub_bits / sub_n as f32 / 16.0
            },
            if split.dynamic { 1.0 } else { 0.0 },
        ];
    }

    /// The weight each token occurrence carries.
    pub fn token_weight(&self) -> f32 {
        if self.tokens == 0 {
            0.0
        } else {
            1.0 / (self.tokens as f32).sqrt()
        }
    }

    /// Writes the full input vector (length [`INPUT`]) into `out`, which is zeroed first.
    pub fn dense(&self, out: &mut [f32]) {
        assert_eq!(out.len(), INPUT);
        out.fill(0.0);
        let w = self.token_weight();
        for &i in &self.idx[..self.tokens] {
            out[i as usize] += w;
        }
        out[NGRAM_BUCKETS..].copy_from_slice(&self.lex);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_and_bounds() {
        let psl = Psl::bundled();
        let lm = crate::lm::Counts::default().build();
        let mut f = NameFeatures::default();
        f.extract(&psl, &lm, b"WWW.Example.CO.UK.");
        // "example": 7 unigrams, 8 bigrams and 7 trigrams over "^example$", the suffix; "www"
        // gives one 3-gram.
        assert_eq!(f.tokens, 7 + 8 + 7 + 1 + 1);
        assert!((f.lex[1] - 7.0 / 32.0).abs() < 1e-6);
        assert!((f.lex[13] - 2.0 / 3.0).abs() < 1e-6);
        // The longest possible name stays within the token cap and gives finite measures.
        let long = vec![b'a'; 1000];
        f.extract(&psl, &lm, &long);
        assert!(f.tokens <= MAX_TOKENS);
        let mut odd = b"\xff\x00..-.".to_vec();
        odd.extend_from_slice(&[b'.'; 300]);
        f.extract(&psl, &lm, &odd);
        assert!(f.lex.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn dense_matches_sparse() {
        let psl = Psl::bundled();
        let lm = crate::lm::Counts::default().build();
        let mut f = NameFeatures::default();
        f.extract(&psl, &lm, b"a1b2c3d4.ddns.net");
        let mut v = vec![0.0; INPUT];
        f.dense(&mut v);
        let total: f32 = v[..NGRAM_BUCKETS].iter().sum();
        assert!((total - f.tokens as f32 * f.token_weight()).abs() < 1e-4);
        assert_eq!(&v[NGRAM_BUCKETS..], &f.lex);
    }

    #[test]
    fn label_entropy_from_the_lexical_pass_is_the_entropy() {
        let psl = Psl::bundled();
        let lm = crate::lm::Counts::default().build();
        let mut f = NameFeatures::default();
        let mut r = crate::dga::Rng::new(7);
        const SYMS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-_";
        for _ in 0..2000 {
            let len = 1 + r.below(63) as usize;
            let label: Vec<u8> = (0..len).map(|_| *r.pick(SYMS)).collect();
            let mut name = b"www.".to_vec();
            name.extend_from_slice(&label);
            name.extend_from_slice(b".co.uk");
            f.extract(&psl, &lm, &name);
            let want = entropy(&label) / 5.0;
            assert_eq!(
                f.lex[4].to_bits(),
                want.to_bits(),
                "{}",
                String::from_utf8_lossy(&label)
            );
        }
    }

    #[test]
    fn normalisation() {
        assert_eq!(Normal::new(b"ABC.com.").as_str(), "abc.com");
        assert_eq!(Normal::new(b"a\xc3\xa9.com").as_str(), "a??.com");
    }
}
