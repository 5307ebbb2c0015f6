//! Palisade: a network protection filter. This crate holds the sans-IO engine (decode, flows,
//! app layer, intel verdicts, eve events) and the capture-file reader; the binary `palisade`
//! is a thin shell over it.
//!
//! Everything below `engine` takes time and bytes as arguments: replaying a capture and
//! filtering inline run the same code.
#![forbid(unsafe_code)]

pub mod app;
pub mod capture;
pub mod engine;
pub mod eve;
pub mod firewall;
pub mod fleet;
pub mod flow;
pub mod metrics;
pub mod pool;
pub mod replay;
pub mod respond;
pub mod settings;
pub mod sinks;
pub mod wire;

pub use engine::{Config, Engine, Mode, Verdict};
