//! The domain model's network, served in plain Rust: `INPUT -> H1 -> H2 -> 1`, ReLU between
//! layers and a sigmoid at the end, read from a safetensors file.
//!
//! The first layer is stored input-major (one row of `H1` weights per input), so a name costs one
//! row addition per token plus one per lexical measure instead of a `INPUT x H1` product. The
//! kernels run over fixed 8-lane chunks that the compiler vectorises; on x86-64 machines with
//! AVX2 and FMA a copy compiled for them is chosen once at load (see [`simd`]). Scoring allocates
//! nothing: activations live on the stack.

use crate::features::{NameFeatures, INPUT, LEX, NGRAM_BUCKETS};
use safetensors::SafeTensors;
use sha2::{Digest, Sha256};

/// Widest hidden layer the stack buffers hold.
pub const MAX_HIDDEN: usize = 256;

/// Why a model file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelError(pub String);

impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ModelError {}

/// A three-layer ReLU network's weights read from safetensors (torch's `Linear` stores
/// `lN.weight` as `[out, in]`; the first two layers are kept input-major here), with the file's
/// version and metadata. Shared by the domain and the flow model.
#[derive(Debug, Clone)]
pub(crate) struct Layers {
    /// First layer, input-major: `input` rows of `h1`.
    pub(crate) w1t: Vec<f32>,
    pub(crate) b1: Vec<f32>,
    /// Second layer, input-major: `h1` rows of `h2`.
    pub(crate) w2t: Vec<f32>,
    pub(crate) b2: Vec<f32>,
    pub(crate) w3: Vec<f32>,
    pub(crate) b3: f32,
    pub(crate) h1: usize,
    pub(crate) h2: usize,
    /// `kind-<first 12 hex digits of the file's SHA-256>`.
    pub(crate) version: String,
    /// The file's metadata, sorted by key.
    pub(crate) metadata: Vec<(String, String)>,
}

/// Weights smaller than this in magnitude are served as zeros (see [`tensor`]).
pub const TINY_WEIGHT: f32 = 1e-20;

fn tensor(st: &SafeTensors<'_>, name: &str, shape: &[usize]) -> Result<Vec<f32>, ModelError> {
    let t = st
        .tensor(name)
        .map_err(|e| ModelError(format!("tensor {name}: {e}")))?;
    if t.dtype() != safetensors::Dtype::F32 {
        return Err(ModelError(format!(
            "tensor {name}: {:?}, want F32",
            t.dtype()
        )));
    }
    if t.shape() != shape {
        return Err(ModelError(format!(
            "tensor {name}: shape {:?}, want {:?}",
            t.shape(),
            shape
        )));
    }
    // Weight decay leaves a fifth of the domain model's first layer subnormal (below 1.2e-38)
    // and more just above; a multiply with a subnormal operand or result takes a microcode
    // assist on x86, which made a name cost several times its arithmetic. Weights below
    // TINY_WEIGHT are read as zeros: with inputs at most 1e6 they change a logit by less than
    // 1e-8, and the products of the rest with inputs above 1e-18 stay normal.
    let v: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .map(|x| if x.abs() < TINY_WEIGHT { 0.0 } else { x })
        .collect();
    if v.iter().any(|x| !x.is_finite()) {
        return Err(ModelError(format!("tensor {name}: not finite")));
    }
    Ok(v)
}

fn st_dim(st: &SafeTensors<'_>, name: &str) -> Result<usize, ModelError> {
    let t = st
        .tensor(name)
        .map_err(|e| ModelError(format!("tensor {name}: {e}")))?;
    match t.shape() {
        [n] => Ok(*n),
        s => Err(ModelError(format!(
            "tensor {name}: shape {s:?}, want one dimension"
        ))),
    }
}

/// The bfloat16 nearest `x` (round to nearest, ties to even), as its 16 bits; exact for values
/// that are already bfloat16.
pub fn to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// A bfloat16's value.
#[inline(always)]
pub fn from_bf16(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// `w` (`rows x cols`, row-major) transposed, in 16 x 16 tiles. Row by row, each write of the
/// domain model's 64 x 8,214 first layer landed on another cache line: 2.7 ms of a demo
/// replay's 17 ms, against 0.7 ms in tiles.
fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    const TILE: usize = 16;
    let mut t = vec![0.0; w.len()];
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    t[c * rows + r] = w[r * cols + c];
                }
            }
        }
    }
    t
}

impl Layers {
    /// Reads the layers from safetensors bytes. The file's `model` metadata must be `kind` and
    /// its `features` metadata `features` (the feature layout this build computes); the first
    /// layer takes `input` inputs.
    pub(crate) fn read(
        bytes: &[u8],
        kind: &str,
        features: &str,
        input: usize,
    ) -> Result<Layers, ModelError> {
        let (_, meta) = SafeTensors::read_metadata(bytes)
            .map_err(|e| ModelError(format!("not a safetensors file: {e}")))?;
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| ModelError(format!("not a safetensors file: {e}")))?;
        let mut md: Vec<(String, String)> = meta
            .metadata()
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        md.sort();
        let get = |k: &str| md.iter().find(|(kk, _)| kk == k).map(|(_, v)| v.as_str());
        if get("model") != Some(kind) {
            return Err(ModelError(format!(
                "metadata model = {:?}, want {kind:?}",
                get("model")
            )));
        }
        if get("features") != Some(features) {
            return Err(ModelError(format!(
                "metadata features = {:?}, this build computes version {features}",
                get("features")
            )));
        }
        let b1 = tensor(&st, "l1.bias", &[st_dim(&st, "l1.bias")?])?;
        let h1 = b1.len();
        let b2 = tensor(&st, "l2.bias", &[st_dim(&st, "l2.bias")?])?;
        let h2 = b2.len();
        if h1 == 0 || h2 == 0 || h1 > MAX_HIDDEN || h2 > MAX_HIDDEN {
            return Err(ModelError(format!(
                "hidden sizes {h1}, {h2}: each must be 1..={MAX_HIDDEN}"
            )));
        }
        let w1 = tensor(&st, "l1.weight", &[h1, input])?;
        let w2 = tensor(&st, "l2.weight", &[h2, h1])?;
        let w3 = tensor(&st, "l3.weight", &[1, h2])?;
        let b3 = tensor(&st, "l3.bias", &[1])?[0];
        let digest = Sha256::digest(bytes);
        let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        Ok(Layers {
            w1t: transpose(&w1, h1, input),
            b1,
            w2t: transpose(&w2, h2, h1),
            b2,
            w3,
            b3,
            h1,
            h2,
            version: format!("{kind}-{hex}"),
            metadata: md,
        })
    }

    /// The score above which the given share of held-out benign examples fell when the model
    /// was trained (`fpr` is `"1e-3"` or `"1e-4"`), from the file's metadata.
    pub(crate) fn threshold_at_fpr(&self, fpr: &str) -> Option<f32> {
        self.metadata_value(&format!("threshold_fpr_{fpr}"))
            .and_then(|v| v.parse().ok())
            .filter(|t: &f32| t.is_finite())
    }

    /// The value of one key of the file's metadata.
    pub(crate) fn metadata_value(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The network on a dense input vector of `w1t.len() / h1` values, any widths.
    pub(crate) fn dense_general(&self, x: &[f32]) -> f32 {
        let h1n = self.h1;
        let mut h1 = [0f32; MAX_HIDDEN];
        let h1 = &mut h1[..h1n];
        h1.copy_from_slice(&self.b1);
        add_rows(h1, &self.w1t, x, |v| v != 0.0);
        self.tail(h1)
    }

    /// Layers two and three on the first layer's sums (before its ReLU): the logit.
    #[inline(always)]
    pub(crate) fn tail(&self, h1: &[f32]) -> f32 {
        let h2n = self.h2;
        let mut h2 = [0f32; MAX_HIDDEN];
        let h2 = &mut h2[..h2n];
        h2.copy_from_slice(&self.b2);
        add_rows(h2, &self.w2t, h1, |v| v > 0.0);
        let mut out = self.b3;
        for (w, &v) in self.w3.iter().zip(h2.iter()) {
            out += w * v.max(0.0);
        }
        out
    }
}

/// The domain model's network: [`Layers`] plus the n-gram rows in bfloat16.
#[derive(Debug, Clone)]
pub struct Mlp {
    l: Layers,
    /// The n-gram rows of the first layer (`NGRAM_BUCKETS x h1`) as bfloat16 bits: half the
    /// bytes, so the table a name touches stays in cache. The trainer rounds these weights to
    /// bfloat16 before saving, so they are exact here and tch computes with the same values.
    w1b: Vec<u16>,
    kernel: Kernel,
}

/// Which copy of the kernels runs (chosen at load from what the CPU has).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernel {
    Portable,
    Avx2,
    Avx512,
}

impl Kernel {
    /// The widest this CPU has.
    pub(crate) fn best() -> Kernel {
        if simd::avx512_available() {
            Kernel::Avx512
        } else if simd::avx2_available() {
            Kernel::Avx2
        } else {
            Kernel::Portable
        }
    }

    /// `avx512`, `avx2` or `portable`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kernel::Portable => "portable",
            Kernel::Avx2 => "avx2",
            Kernel::Avx512 => "avx512",
        }
    }
}

impl Mlp {
    /// Loads a model from safetensors bytes. `kind` must equal the file's `model` metadata
    /// (`domain`), and its `features` metadata the crate's feature version.
    pub fn from_bytes(bytes: &[u8], kind: &str) -> Result<Mlp, ModelError> {
        let l = Layers::read(bytes, kind, crate::features::FEATURES_VERSION, INPUT)?;
        let w1b = l.w1t[..NGRAM_BUCKETS * l.h1]
            .iter()
            .map(|&x| to_bf16(x))
            .collect();
        Ok(Mlp {
            l,
            w1b,
            kernel: Kernel::best(),
        })
    }

    /// `kind-<12 hex digits of the file's SHA-256>`: names the exact weights in events.
    pub fn version(&self) -> &str {
        &self.l.version
    }

    /// The file's metadata, sorted by key.
    pub fn metadata(&self) -> &[(String, String)] {
        &self.l.metadata
    }

    /// The value of one key of the file's metadata.
    pub fn metadata_value(&self, key: &str) -> Option<&str> {
        self.l.metadata_value(key)
    }

    /// A threshold recorded in the file's metadata (see [`Layers::threshold_at_fpr`]).
    pub fn threshold_at_fpr(&self, fpr: &str) -> Option<f32> {
        self.l.threshold_at_fpr(fpr)
    }

    /// Hidden layer sizes.
    pub fn shape(&self) -> (usize, usize) {
        (self.l.h1, self.l.h2)
    }

    /// Turns off the SIMD kernels (for comparing).
    pub fn set_portable(&mut self) {
        self.kernel = Kernel::Portable;
    }

    /// Uses the AVX2 kernels even where AVX-512 is present (for comparing); no change on a CPU
    /// without AVX2.
    pub fn set_avx2(&mut self) {
        if simd::avx2_available() {
            self.kernel = Kernel::Avx2;
        }
    }

    /// The kernels in use: `avx512`, `avx2` or `portable`.
    pub fn kernel(&self) -> &'static str {
        self.kernel.name()
    }

    /// The logit (before the sigmoid) for a name's features.
    pub fn logit(&self, f: &NameFeatures) -> f32 {
        simd::logit(self.kernel, self, f)
    }
}

/// Most values [`Active`] covers (hidden widths and the dense network's inputs).
const MAX_ROWS: usize = 256;

/// The values that `keep` selects among the first [`MAX_ROWS`] of a vector, as bits: the units
/// a ReLU lets through (`v > 0`), the non-zero inputs. Set without a branch (a branch per value
/// mispredicts on about half of them) and iterated in order, so skipping the others' weight rows
/// changes no sum.
#[derive(Clone, Copy)]
struct Active {
    words: [u64; MAX_ROWS / 64],
    /// The word being iterated.
    at: usize,
}

impl Active {
    #[inline(always)]
    fn of(v: &[f32], keep: impl Fn(f32) -> bool) -> Active {
        let mut words = [0u64; MAX_ROWS / 64];
        for (w, chunk) in words.iter_mut().zip(v.chunks(64)) {
            for (k, &x) in chunk.iter().enumerate() {
                *w |= (keep(x) as u64) << k;
            }
        }
        Active { words, at: 0 }
    }
}

/// The selected indices, lowest first.
impl Iterator for Active {
    type Item = usize;

    #[inline(always)]
    fn next(&mut self) -> Option<usize> {
        while let Some(w) = self.words.get_mut(self.at) {
            if *w != 0 {
                let j = self.at * 64 + w.trailing_zeros() as usize;
                *w &= *w - 1;
                return Some(j);
            }
            self.at += 1;
        }
        None
    }
}

/// `acc += x[j] * row j of w` (rows as wide as `acc`) for each `x[j]` that `keep` selects, in
/// order: a layer of the general code.
#[inline(always)]
fn add_rows(acc: &mut [f32], w: &[f32], x: &[f32], keep: impl Fn(f32) -> bool) {
    let n = acc.len();
    for (j, &v) in x.iter().enumerate() {
        if keep(v) {
            if let Some(r) = w.get(j * n..(j + 1) * n) {
                axpy(acc, r, v);
            }
        }
    }
}

/// `acc += a * row`, in 8-lane chunks.
#[inline(always)]
fn axpy(acc: &mut [f32], row: &[f32], a: f32) {
    let mut ac = acc.chunks_exact_mut(8);
    let mut rc = row.chunks_exact(8);
    for (x, r) in (&mut ac).zip(&mut rc) {
        for i in 0..8 {
            x[i] += a * r[i];
        }
    }
    for (x, r) in ac.into_remainder().iter_mut().zip(rc.remainder()) {
        *x += a * r;
    }
}

#[inline(always)]
fn logit_impl(m: &Mlp, f: &NameFeatures) -> f32 {
    let l = &m.l;
    let h1n = l.h1;
    let mut acc = [0f32; MAX_HIDDEN];
    let acc = &mut acc[..h1n];
    for &i in &f.idx[..f.tokens] {
        let i = i as usize;
        if let Some(r) = m.w1b.get(i * h1n..(i + 1) * h1n) {
            for (a, &w) in acc.iter_mut().zip(r) {
                *a += from_bf16(w);
            }
        }
    }
    let mut h1 = [0f32; MAX_HIDDEN];
    let h1 = &mut h1[..h1n];
    h1.copy_from_slice(&l.b1);
    axpy(h1, acc, f.token_weight());
    for j in 0..LEX {
        let r = (NGRAM_BUCKETS + j) * h1n;
        axpy(h1, &l.w1t[r..r + h1n], f.lex[j]);
    }
    l.tail(h1)
}

fn row<const N: usize>(v: &[f32], r: usize) -> Option<&[f32; N]> {
    v.get(r * N..(r + 1) * N).and_then(|s| s.try_into().ok())
}

fn row16<const N: usize>(v: &[u16], r: usize) -> Option<&[u16; N]> {
    v.get(r * N..(r + 1) * N).and_then(|s| s.try_into().ok())
}

/// The first layer's sums (before its ReLU) with its width known at compile time: rows become
/// fixed arrays, so the loops unroll into straight vector code with no bounds checks inside.
#[inline(always)]
fn first_layer<const H1: usize>(m: &Mlp, f: &NameFeatures) -> [f32; H1] {
    let mut acc = [0f32; H1];
    for &i in &f.idx[..f.tokens] {
        if let Some(r) = row16::<H1>(&m.w1b, i as usize) {
            for k in 0..H1 {
                acc[k] += from_bf16(r[k]);
            }
        }
    }
    let w = f.token_weight();
    let mut h1 = [0f32; H1];
    if let Some(b) = row::<H1>(&m.l.b1, 0) {
        for k in 0..H1 {
            h1[k] = b[k] + w * acc[k];
        }
    }
    for j in 0..LEX {
        if let Some(r) = row::<H1>(&m.l.w1t, NGRAM_BUCKETS + j) {
            let x = f.lex[j];
            for k in 0..H1 {
                h1[k] += x * r[k];
            }
        }
    }
    h1
}

/// The output on the second layer's sums (before its ReLU): eight running sums side by side,
/// then added in pairs (one chain of `H2` dependent additions was a fifth of the network's
/// time). `H2` is a multiple of 8.
#[inline(always)]
fn output(m: &Mlp, h2: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    for (h, w) in h2.chunks_exact(8).zip(m.l.w3.chunks_exact(8)) {
        for i in 0..8 {
            lanes[i] += w[i] * if h[i] > 0.0 { h[i] } else { 0.0 };
        }
    }
    let [s0, s1, s2, s3, s4, s5, s6, s7] = lanes;
    m.l.b3 + (((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7)))
}

/// The network with its widths known at compile time (`H2` a multiple of 8).
#[inline(always)]
fn logit_fixed<const H1: usize, const H2: usize>(m: &Mlp, f: &NameFeatures) -> f32 {
    let h1 = first_layer::<H1>(m, f);
    let mut h2 = [0f32; H2];
    if let Some(b) = row::<H2>(&m.l.b2, 0) {
        h2 = *b;
    }
    for j in Active::of(&h1, |v| v > 0.0) {
        if let (Some(r), Some(&v)) = (row::<H2>(&m.l.w2t, j), h1.get(j)) {
            for k in 0..H2 {
                h2[k] += v * r[k];
            }
        }
    }
    output(m, &h2)
}

/// Picks the fixed-width kernel for the model's shape, or the general one.
#[inline(always)]
fn logit_any(m: &Mlp, f: &NameFeatures) -> f32 {
    match (m.l.h1, m.l.h2) {
        (64, 32) => logit_fixed::<64, 32>(m, f),
        (32, 32) => logit_fixed::<32, 32>(m, f),
        (32, 16) => logit_fixed::<32, 16>(m, f),
        (128, 32) => logit_fixed::<128, 32>(m, f),
        _ => logit_impl(m, f),
    }
}

fn logit_portable(m: &Mlp, f: &NameFeatures) -> f32 {
    logit_any(m, f)
}

/// The logistic function, clamped so extreme logits give exactly 0 or 1 without overflow.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x.clamp(-80.0, 80.0)).exp())
}

/// The AVX2+FMA and AVX-512 copies of the kernels: the same code, compiled for those
/// instructions, chosen at load when the CPU has them. The only `unsafe` in the crate is calling
/// them, which is sound because the features were detected at run time before the kernel was
/// chosen.
#[allow(unsafe_code)]
pub(crate) mod simd {
    #[cfg(target_arch = "x86_64")]
    use super::{first_layer, logit_any, output};
    use super::{Kernel, Layers, Mlp, NameFeatures};

    pub fn avx2_available() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    pub fn avx512_available() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            avx2_available()
                && std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vl")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// A 32 -> 16 dense network (the flow model) in 8-lane registers, each layer over the rows
    /// of its selected inputs in order, as the portable code adds them (a branch per input
    /// would mispredict on the flow model's half-zero vectors). Written with intrinsics because
    /// the compiler splits a 32-float accumulator into scalars. Other widths take the general
    /// code.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dense_avx2_inner(l: &Layers, x: &[f32]) -> f32 {
        const W: usize = 32;
        const W2: usize = 16;
        if l.h1 != W || l.b1.len() != W || l.w1t.len() < x.len() * W || x.len() > super::MAX_ROWS {
            return l.dense_general(x);
        }
        let mut h1 = [0f32; W];
        // SAFETY: `b1` holds 32 floats and `w1t` at least `x.len()` rows of 32 (checked above).
        unsafe { layer::<4>(&l.b1, &l.w1t, x, |v| v != 0.0, &mut h1) };
        if l.h2 != W2 || l.b2.len() != W2 || l.w2t.len() < W * W2 || l.w3.len() != W2 {
            return l.tail(&h1);
        }
        let mut h2 = [0f32; W2];
        // SAFETY: `b2` holds 16 floats and `w2t` 32 rows of 16 (checked above).
        unsafe { layer::<2>(&l.b2, &l.w2t, &h1, |v| v > 0.0, &mut h2) };
        let mut out = l.b3;
        for (w, &v) in l.w3.iter().zip(h2.iter()) {
            out += w * v.max(0.0);
        }
        out
    }

    /// `out = bias + sum of x[j] * row j of w` over the `x[j]` that `keep` selects, in order,
    /// `R` 8-lane registers wide (rows of `8 * R` floats). Multiply then add, as the portable
    /// code does, so the bits are the same.
    ///
    /// # Safety
    /// `bias` and `out` hold `8 * R` floats, `w` at least `x.len()` rows of them, `x` at most
    /// [`super::MAX_ROWS`] values, and the CPU has AVX.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn layer<const R: usize>(
        bias: &[f32],
        w: &[f32],
        x: &[f32],
        keep: impl Fn(f32) -> bool,
        out: &mut [f32],
    ) {
        use std::arch::x86_64::*;
        // SAFETY: the caller's contract; the loads and stores are unaligned.
        unsafe {
            let mut acc: [__m256; R] =
                std::array::from_fn(|k| _mm256_loadu_ps(bias.as_ptr().add(8 * k)));
            for j in super::Active::of(x, keep) {
                let r = w.as_ptr().add(j * 8 * R);
                let v = _mm256_set1_ps(x[j]);
                for (k, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_add_ps(*a, _mm256_mul_ps(v, _mm256_loadu_ps(r.add(8 * k))));
                }
            }
            for (k, a) in acc.iter().enumerate() {
                _mm256_storeu_ps(out.as_mut_ptr().add(8 * k), *a);
            }
        }
    }

    /// The dense network (the flow model) with the chosen kernel.
    pub fn dense(kernel: Kernel, l: &Layers, x: &[f32]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        {
            match kernel {
                // SAFETY: the kernel is AVX2 or wider only where AVX2 and FMA were found on
                // this CPU; 256-bit lanes are all a 32-wide layer needs.
                Kernel::Avx512 | Kernel::Avx2 => unsafe { dense_avx2_inner(l, x) },
                Kernel::Portable => l.dense_general(x),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = kernel;
            l.dense_general(x)
        }
    }

    /// The domain network with its second layer of 32 (or 16) units in four (two) 8-lane
    /// registers, by [`layer`]: as an array the compiler kept it in 2-lane ones, at a third of
    /// the network's time. The same operations in the same order as [`logit_any`], so the
    /// same bits.
    ///
    /// # Safety
    /// The CPU has AVX2 (the callers are compiled for it and chosen only where it was found).
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn logit_wide(m: &Mlp, f: &NameFeatures) -> f32 {
        /// `R` registers of 8 for the second layer, after a first layer of `H1` units.
        ///
        /// # Safety
        /// As for [`logit_wide`].
        #[inline(always)]
        unsafe fn net<const H1: usize, const R: usize>(m: &Mlp, f: &NameFeatures) -> f32 {
            let l = &m.l;
            if l.b2.len() != 8 * R || l.w2t.len() < H1 * 8 * R || H1 > super::MAX_ROWS {
                return logit_any(m, f);
            }
            let h1 = first_layer::<H1>(m, f);
            let mut h2 = [0f32; 32];
            // SAFETY: `b2` holds `8 * R` floats, `w2t` `H1` rows of them and `h1` at most
            // MAX_ROWS values (checked above); the caller's contract gives AVX2.
            unsafe { layer::<R>(&l.b2, &l.w2t, &h1, |v| v > 0.0, &mut h2) };
            output(m, &h2[..8 * R])
        }
        // SAFETY: the caller's contract.
        unsafe {
            match (m.l.h1, m.l.h2) {
                (64, 32) => net::<64, 4>(m, f),
                (32, 32) => net::<32, 4>(m, f),
                (32, 16) => net::<32, 2>(m, f),
                (128, 32) => net::<128, 4>(m, f),
                _ => logit_any(m, f),
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn logit_avx2_inner(m: &Mlp, f: &NameFeatures) -> f32 {
        // SAFETY: compiled for AVX2, called only where it was found.
        unsafe { logit_wide(m, f) }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl")]
    unsafe fn logit_avx512_inner(m: &Mlp, f: &NameFeatures) -> f32 {
        // SAFETY: compiled for AVX-512 (and AVX2), called only where they were found.
        unsafe { logit_wide(m, f) }
    }

    /// The logit with the chosen kernel.
    pub fn logit(kernel: Kernel, m: &Mlp, f: &NameFeatures) -> f32 {
        #[cfg(target_arch = "x86_64")]
        {
            match kernel {
                // SAFETY: the kernel is AVX-512 only where `avx512_available()` found these
                // features on this CPU.
                Kernel::Avx512 => unsafe { logit_avx512_inner(m, f) },
                // SAFETY: the kernel is AVX2 only where `avx2_available()` found AVX2 and FMA.
                Kernel::Avx2 => unsafe { logit_avx2_inner(m, f) },
                Kernel::Portable => super::logit_portable(m, f),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = kernel;
            super::logit_portable(m, f)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A network of the given widths with weights from a fixed xorshift sequence (n-gram rows on
    /// the bfloat16 grid, as the trainer writes them), half of them negative so that about half
    /// of each layer's units are cut by the ReLU.
    fn random_mlp(h1: usize, h2: usize, seed: u64) -> Mlp {
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        };
        let mut v = |n: usize, scale: f32| (0..n).map(|_| next() * scale).collect::<Vec<f32>>();
        let w1t: Vec<f32> = v(INPUT * h1, 0.5)
            .iter()
            .map(|&w| from_bf16(to_bf16(w)))
            .collect();
        let l = Layers {
            b1: v(h1, 0.1),
            w2t: v(h1 * h2, 0.3),
            b2: v(h2, 0.1),
            w3: v(h2, 0.5),
            b3: 0.25,
            w1t,
            h1,
            h2,
            version: String::new(),
            metadata: Vec::new(),
        };
        let w1b = l.w1t[..NGRAM_BUCKETS * h1]
            .iter()
            .map(|&w| to_bf16(w))
            .collect();
        Mlp {
            l,
            w1b,
            kernel: Kernel::Portable,
        }
    }

    /// The network by its definition, in f64: what every kernel must compute.
    fn reference(m: &Mlp, f: &NameFeatures) -> f64 {
        let (h1n, h2n) = (m.l.h1, m.l.h2);
        let w = f.token_weight() as f64;
        let relu = |v: f64| v.max(0.0);
        let h1: Vec<f64> = (0..h1n)
            .map(|k| {
                let tokens: f64 = f.idx[..f.tokens]
                    .iter()
                    .map(|&i| from_bf16(m.w1b[i as usize * h1n + k]) as f64)
                    .sum();
                let lex: f64 = (0..LEX)
                    .map(|j| f.lex[j] as f64 * m.l.w1t[(NGRAM_BUCKETS + j) * h1n + k] as f64)
                    .sum();
                relu(m.l.b1[k] as f64 + w * tokens + lex)
            })
            .collect();
        let out: f64 = (0..h2n)
            .map(|k| {
                let s: f64 = (0..h1n).map(|j| h1[j] * m.l.w2t[j * h2n + k] as f64).sum();
                m.l.w3[k] as f64 * relu(m.l.b2[k] as f64 + s)
            })
            .sum();
        m.l.b3 as f64 + out
    }

    /// Every width with a kernel of its own, and one without (the general code): the SIMD
    /// copies give the portable code's bits, and all agree with the definition.
    #[test]
    fn every_kernel_computes_the_network_for_every_width() {
        let mut kernels = vec![Kernel::Portable];
        if simd::avx2_available() {
            kernels.push(Kernel::Avx2);
        }
        if simd::avx512_available() {
            kernels.push(Kernel::Avx512);
        }
        for (n, &(h1, h2)) in [(64, 32), (32, 32), (32, 16), (128, 32), (48, 24)]
            .iter()
            .enumerate()
        {
            let mut m = random_mlp(h1, h2, 0x9e37_79b9_7f4a_7c15 ^ n as u64);
            let mut f = NameFeatures::default();
            for name in 0..200u32 {
                f.tokens = 1 + (name as usize * 7) % 60;
                for (t, i) in f.idx[..f.tokens].iter_mut().enumerate() {
                    *i = ((name as usize * 2_654_435_761 + t * 40_503) % NGRAM_BUCKETS) as u16;
                }
                for (j, v) in f.lex.iter_mut().enumerate() {
                    *v = ((name as usize * 31 + j * 17) % 100) as f32 / 100.0;
                }
                let want = reference(&m, &f);
                let mut got = Vec::new();
                for &k in &kernels {
                    m.kernel = k;
                    got.push(m.logit(&f));
                }
                for (k, g) in kernels.iter().zip(&got) {
                    let err = (*g as f64 - want).abs();
                    assert!(
                        err <= 1e-4 * (1.0 + want.abs()),
                        "{h1}x{h2} {}: {g} against {want}",
                        k.name()
                    );
                    assert_eq!(g.to_bits(), got[0].to_bits(), "{h1}x{h2} {}", k.name());
                }
            }
        }
    }

    #[test]
    fn transpose_moves_every_value() {
        for (rows, cols) in [(64, 8214), (32, 80), (1, 7), (17, 33), (0, 5)] {
            let w: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let t = transpose(&w, rows, cols);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(t[c * rows + r], w[r * cols + c], "{rows}x{cols} at {r},{c}");
                }
            }
        }
    }

    proptest::proptest! {
        /// The bits visit exactly the selected values, lowest first, in vectors of any length
        /// up to MAX_ROWS (the second layer's 64 units, the flow model's 80 inputs, wider).
        #[test]
        fn active_visits_the_selected_indices_in_order(
            v in proptest::collection::vec(-1.0f32..1.0, 0..=MAX_ROWS)
        ) {
            let want: Vec<usize> = (0..v.len()).filter(|&j| v[j] > 0.0).collect();
            let got: Vec<usize> = Active::of(&v, |x| x > 0.0).collect();
            proptest::prop_assert_eq!(got, want);
        }
    }

    /// The shipped files hold weights below [`TINY_WEIGHT`] (weight decay puts them there); the
    /// served layers hold none, so no multiply meets a subnormal operand from the weights.
    #[test]
    fn tiny_weights_are_served_as_zeros() {
        let small = |x: f32| x != 0.0 && x.abs() < TINY_WEIGHT;
        let raw = |bytes: &[u8]| {
            let st = SafeTensors::deserialize(bytes).unwrap();
            let t = st.tensor("l1.weight").unwrap();
            t.data()
                .chunks_exact(4)
                .filter(|c| small(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .count()
        };
        let domain = Mlp::from_bytes(crate::domain::BUNDLED, "domain").unwrap();
        let flow = Layers::read(
            crate::flow::BUNDLED_FLOW,
            "flow",
            crate::flow::FLOW_FEATURES_VERSION,
            crate::flow::FLOW_INPUT,
        )
        .unwrap();
        assert!(raw(crate::domain::BUNDLED) > 100_000);
        for l in [&domain.l, &flow] {
            let served = l
                .w1t
                .iter()
                .chain(&l.b1)
                .chain(&l.w2t)
                .chain(&l.b2)
                .chain(&l.w3);
            assert_eq!(served.filter(|&&x| small(x)).count(), 0);
        }
        assert!(!domain.w1b.iter().any(|&h| small(from_bf16(h))));
    }
}
