//! The models' networks in tch, for training and for checking the plain-Rust server
//! against it (only with the `train` feature, which needs libtorch).

use crate::features::INPUT;
use tch::nn::{self, Module};
use tch::Kind;

/// The domain model's network: `INPUT -> h1 -> h2 -> 1` (see [`dense_net`]).
pub fn net(vs: &nn::Path<'_>, h1: i64, h2: i64) -> impl Module {
    dense_net(vs, INPUT as i64, h1, h2)
}

/// A dense `input -> h1 -> h2 -> 1` network with ReLU, named as the Rust server reads it
/// (`l1.weight`, ...): the flow model's, and the domain model's with `input` = `INPUT`.
pub fn dense_net(vs: &nn::Path<'_>, input: i64, h1: i64, h2: i64) -> impl Module {
    nn::seq()
        .add(nn::linear(vs / "l1", input, h1, Default::default()))
        .add_fn(|x| x.relu())
        .add(nn::linear(vs / "l2", h1, h2, Default::default()))
        .add_fn(|x| x.relu())
        .add(nn::linear(vs / "l3", h2, 1, Default::default()))
}

/// Writes a var store's tensors (f32, sorted by name), the `bytes` tensors (u8, one dimension)
/// and `metadata` to a safetensors file, the form the Rust server reads. Errors name the tensor
/// or the file.
pub fn save(
    vs: &nn::VarStore,
    bytes: &[(&str, &[u8])],
    metadata: Vec<(String, String)>,
    path: &std::path::Path,
) -> Result<(), String> {
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, t) in vs.variables() {
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        let v = Vec::<f32>::try_from(&t.to_kind(Kind::Float).contiguous().view([-1]))
            .map_err(|e| format!("{name}: {e}"))?;
        tensors.push((
            name,
            shape,
            v.iter().flat_map(|f| f.to_le_bytes()).collect(),
        ));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let mut views = Vec::with_capacity(tensors.len());
    for (n, s, b) in &tensors {
        let v = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
            .map_err(|e| format!("{n}: {e}"))?;
        views.push((n.clone(), v));
    }
    for (n, b) in bytes {
        let v = safetensors::tensor::TensorView::new(safetensors::Dtype::U8, vec![b.len()], b)
            .map_err(|e| format!("{n}: {e}"))?;
        views.push((n.to_string(), v));
    }
    let meta: std::collections::HashMap<String, String> = metadata.into_iter().collect();
    let file = safetensors::serialize(views, &Some(meta))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::write(path, canonical_header(file)).map_err(|e| format!("{}: {e}", path.display()))
}

/// The same file with its header's keys in sorted order. safetensors writes the metadata from a
/// `HashMap`, whose order changes from run to run; the model's version is its file's digest, so
/// the same weights must make the same bytes. (A header that does not parse is left as is.)
fn canonical_header(mut file: Vec<u8>) -> Vec<u8> {
    use serde_json::{Map, Value};
    fn sorted(v: Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut kv: Vec<(String, Value)> = m.into_iter().collect();
                kv.sort_by(|a, b| a.0.cmp(&b.0));
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k, sorted(v)))
                        .collect::<Map<_, _>>(),
                )
            }
            other => other,
        }
    }
    let Some(n) = file.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) else {
        return file;
    };
    let n = u64::from_le_bytes(n) as usize;
    let Some(header) = file.get(8..8 + n) else {
        return file;
    };
    let Ok(v) = serde_json::from_slice::<Value>(header) else {
        return file;
    };
    let Ok(mut canon) = serde_json::to_vec(&sorted(v)) else {
        return file;
    };
    if canon.len() > n {
        return file;
    }
    // The header keeps its length: safetensors pads it with spaces for alignment.
    canon.resize(n, b' ');
    file[8..8 + n].copy_from_slice(&canon);
    file
}
