//! App-layer parsers: pure functions and per-direction stream states over `&[u8]`.
//! Each file holds a parser and its tests; detection and logging live in the engine.

pub mod dns;
pub mod gquic;
pub mod http;
pub mod quic;
pub mod tls;
pub mod x509;
