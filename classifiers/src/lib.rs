//! Palisade's compact neural scoring.
//!
//! - [`psl`]: the Public Suffix List, to find a name's registrable label.
//! - [`features`]: a name's hashed character n-grams and lexical measures.
//! - [`lm`]: a character trigram model of benign names (how surprising a label is).
//! - [`mlp`]: a small network served in plain Rust from safetensors weights, with no allocation
//!   per call and AVX2 kernels where the CPU has them.
//! - [`domain`]: the domain model (names from DNS queries, SNI, Host headers) and its shipped
//!   weights.
//! - [`flow`]: the flow model: a flow's first packets and totals, features, and its network.
//! - [`dga`]: domain generation algorithms written here from published descriptions, the
//!   licence-clean malicious half of the training data.
//! - [`hosts`]: ordinary host labels (`www.`, `api-eu.`, `i9.`) for names as traffic carries
//!   them.
//! - [`data`]: loaders for training and evaluation data (name lists, labelled CSV) and the
//!   deterministic splits.
//! - [`metrics`]: ROC AUC and detection rate at a fixed false-positive rate.
//!
//! Training needs libtorch and lives behind the `train` feature (`src/bin/domain-train.rs`);
//! nothing here reads the clock or does IO on the scoring path.
#![deny(missing_docs)]

pub mod data;
pub mod dga;
pub mod domain;
pub mod features;
pub mod flow;
pub mod hosts;
pub mod lm;
pub mod metrics;
pub mod mlp;
pub mod psl;
#[cfg(feature = "train")]
pub mod torch;

pub use domain::DomainModel;
