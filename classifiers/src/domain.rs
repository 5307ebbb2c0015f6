//! The domain model: a name in, a score in 0..1 out (1 = generated or malicious-looking).

use crate::features::{NameFeatures, Normal};
use crate::lm::{CharLm, CELLS};
use crate::mlp::{sigmoid, Mlp, ModelError};
use crate::psl::Psl;

/// The weights shipped in the repository (`models/domain.safetensors`, see `MODEL.md`).
pub const BUNDLED: &[u8] = include_bytes!("../models/domain.safetensors");

/// A loaded domain model with the suffix list its features need.
#[derive(Debug, Clone)]
pub struct DomainModel {
    mlp: Mlp,
    psl: Psl,
    lm: CharLm,
}

/// Reads the character model (`lm.cost`, `U8`, one byte per cell) from a model file.
fn read_lm(bytes: &[u8]) -> Result<CharLm, ModelError> {
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| ModelError(format!("not a safetensors file: {e}")))?;
    let t = st
        .tensor(LM_TENSOR)
        .map_err(|e| ModelError(format!("tensor {LM_TENSOR}: {e}")))?;
    if t.dtype() != safetensors::Dtype::U8 || t.shape() != [CELLS] {
        return Err(ModelError(format!(
            "tensor {LM_TENSOR}: {:?} {:?}, want U8 [{CELLS}]",
            t.dtype(),
            t.shape()
        )));
    }
    CharLm::from_cost(t.data()).map_err(ModelError)
}

/// The model file's tensor holding the character model.
pub const LM_TENSOR: &str = "lm.cost";

impl DomainModel {
    /// The shipped weights with the bundled suffix list.
    pub fn bundled() -> DomainModel {
        match DomainModel::from_bytes(BUNDLED, Psl::bundled()) {
            Ok(m) => m,
            // The bundled file is checked by the crate's tests; a build cannot ship a bad one.
            Err(e) => panic!("bundled domain model: {e}"),
        }
    }

    /// A model from safetensors bytes.
    pub fn from_bytes(bytes: &[u8], psl: Psl) -> Result<DomainModel, ModelError> {
        Ok(DomainModel {
            mlp: Mlp::from_bytes(bytes, "domain")?,
            psl,
            lm: read_lm(bytes)?,
        })
    }

    /// A model from a file; the error names the file.
    pub fn from_file(path: &std::path::Path, psl: Psl) -> Result<DomainModel, ModelError> {
        let bytes =
            std::fs::read(path).map_err(|e| ModelError(format!("{}: {e}", path.display())))?;
        DomainModel::from_bytes(&bytes, psl)
            .map_err(|e| ModelError(format!("{}: {}", path.display(), e.0)))
    }

    /// `domain-<12 hex digits>`: which weights scored a name.
    pub fn version(&self) -> &str {
        self.mlp.version()
    }

    /// The score above which the given share of held-out benign names fell when the model was
    /// trained (`fpr` is `"1e-3"` or `"1e-4"`), from the file's metadata.
    pub fn threshold_at_fpr(&self, fpr: &str) -> Option<f32> {
        self.mlp.threshold_at_fpr(fpr)
    }

    /// The network.
    pub fn mlp(&self) -> &Mlp {
        &self.mlp
    }

    /// Mutable network (to pick the portable kernels in comparisons).
    pub fn mlp_mut(&mut self) -> &mut Mlp {
        &mut self.mlp
    }

    /// The suffix list.
    pub fn psl(&self) -> &Psl {
        &self.psl
    }

    /// The character model of benign names the features use.
    pub fn lm(&self) -> &CharLm {
        &self.lm
    }

    /// Features of `name` into `f`.
    pub fn features(&self, name: &[u8], f: &mut NameFeatures) {
        let n = Normal::new(name);
        f.extract_normal(&self.psl, &self.lm, n.as_str());
    }

    /// Scores a name with caller-provided scratch space.
    pub fn score_with(&self, name: &[u8], f: &mut NameFeatures) -> f32 {
        self.features(name, f);
        sigmoid(self.mlp.logit(f))
    }

    /// The logit (before the sigmoid) for a name: ranks names without the sigmoid's saturation.
    pub fn logit(&self, name: &[u8]) -> f32 {
        let mut f = NameFeatures::default();
        self.features(name, &mut f);
        self.mlp.logit(&f)
    }

    /// Scores a name (any bytes; normalised first). Allocates nothing.
    pub fn score(&self, name: &[u8]) -> f32 {
        let mut f = NameFeatures::default();
        self.score_with(name, &mut f)
    }
}
