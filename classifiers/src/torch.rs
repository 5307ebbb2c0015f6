//! The domain model's network in tch, for training and for checking the plain-Rust server
//! against it (only with the `train` feature, which needs libtorch).

use crate::features::INPUT;
use tch::nn::{self, Module};

/// `INPUT -> h1 -> h2 -> 1` with ReLU, named as the Rust server reads it (`l1.weight`, ...).
pub fn net(vs: &nn::Path<'_>, h1: i64, h2: i64) -> impl Module {
    nn::seq()
        .add(nn::linear(vs / "l1", INPUT as i64, h1, Default::default()))
        .add_fn(|x| x.relu())
        .add(nn::linear(vs / "l2", h1, h2, Default::default()))
        .add_fn(|x| x.relu())
        .add(nn::linear(vs / "l3", h2, 1, Default::default()))
}

/// A dense `input -> h1 -> h2 -> 1` network with ReLU (the flow model), same names.
pub fn dense_net(vs: &nn::Path<'_>, input: i64, h1: i64, h2: i64) -> impl Module {
    nn::seq()
        .add(nn::linear(vs / "l1", input, h1, Default::default()))
        .add_fn(|x| x.relu())
        .add(nn::linear(vs / "l2", h1, h2, Default::default()))
        .add_fn(|x| x.relu())
        .add(nn::linear(vs / "l3", h2, 1, Default::default()))
}
