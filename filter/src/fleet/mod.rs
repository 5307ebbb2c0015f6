//! Fleet: one manager, many filters. The manager serves signed policy bundles over QUIC with
//! mutual TLS and pushes new versions; nodes verify and apply them through the same atomic
//! reload as SIGHUP, and stream their events back, spooled on disk, numbered and acknowledged,
//! so every event reaches the manager once and in order across link failures.
//!
//! - [`bundle`]: the bundle format, signing and verification (ed25519).
//! - [`pki`]: CA and certificates for operators, TLS settings.
//! - [`proto`]: the frames on the control stream.
//! - [`spool`]: a node's bounded on-disk event spool.
//! - [`node`] and [`manager`]: the two ends.
//! - [`sim`]: simulated nodes for the benchmark.

pub mod bundle;
pub mod manager;
pub mod node;
pub mod pki;
pub mod proto;
pub mod sim;
pub mod spool;

/// The manager's (and the simulator's) runtime: two worker threads.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}
