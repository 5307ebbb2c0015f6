//! A node's side of the control plane (`palisade inline|capture ... --manager ADDR`): connect
//! with its certificate, greet, apply bundles pushed by the manager (after checking the
//! operator's signature), and stream its spooled events with sequence numbers until they are
//! acknowledged. Reconnects with backoff, forever; the packet path never waits for any of it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::bundle::{Bundle, Limits, Manifest, PublicKey};
use super::pki::{self, Identity};
use super::proto::{self, Applied, Frame, Hello};
use super::spool::Spool;

/// How a node reaches its manager.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The manager's address.
    pub manager: SocketAddr,
    /// The name the manager's certificate must carry (its DNS name or address).
    pub server_name: String,
    /// CA, certificate and key.
    pub identity: Identity,
    /// The operator's bundle-signing public key.
    pub bundle_key: PublicKey,
    /// Rollout group.
    pub group: String,
    /// Where the last good bundle and the spool live.
    pub state_dir: PathBuf,
    /// Spool cap, bytes.
    pub spool_max: u64,
    /// Idle timeout of the connection (a dead link is noticed within it).
    pub idle: Duration,
}

/// Applies a verified bundle unpacked in a directory (builds the policy and publishes it);
/// returns a summary for the log, or why it cannot be applied.
pub type ApplyFn = dyn Fn(&Path, &Manifest) -> Result<String, String> + Send + Sync;
/// Called for each bundle the node refuses (a bad signature, a rollback, a policy that does not
/// build; the last good bundle unusable at start), so the filter's metrics count it.
pub type RefusedFn = dyn Fn() + Send + Sync;
/// The node's counters for the manager's status.
pub type StatsFn = dyn Fn() -> BTreeMap<String, u64> + Send + Sync;

/// The bundle in force.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Running {
    /// Its version (0: none).
    pub version: u64,
    /// Its digest.
    pub digest: String,
}

/// A running node.
pub struct Node {
    cfg: NodeConfig,
    spool: Arc<Mutex<Spool>>,
    notify: Arc<Notify>,
    running: Arc<Mutex<Running>>,
    apply: Arc<ApplyFn>,
    refused: Arc<RefusedFn>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("cfg", &self.cfg).finish()
    }
}

/// Events up to this many ahead of the manager's acknowledgement are in flight.
const WINDOW: u64 = 50_000;
/// Bytes per events frame.
const BATCH: usize = 256 << 10;

fn bundles_dir(state: &Path) -> PathBuf {
    state.join("bundles")
}

/// The directory name a verified bundle is written to: `v<version>-<12 hex digits of its
/// digest>`, under the state directory's `bundles`.
fn bundle_dir_name(version: u64, digest: &str) -> String {
    format!("v{version}-{}", digest.get(..12).unwrap_or(digest))
}

/// A path inside an applied bundle, relative to the bundle (`feed.txt` for
/// `/var/lib/palisade/bundles/v12-0123456789ab/feed.txt`): a name that stays the same from one
/// bundle version to the next. `None` for a path outside any bundle.
pub fn bundle_relative(path: &str) -> Option<&str> {
    let (_, rest) = path
        .rsplit_once("/bundles/v")
        .or_else(|| path.strip_prefix("bundles/v").map(|r| ("", r)))?;
    let (dir, inner) = rest.split_once('/')?;
    let (version, digest) = dir.split_once('-')?;
    let ok = !version.is_empty()
        && version.bytes().all(|b| b.is_ascii_digit())
        && digest.len() == 12
        && digest.bytes().all(|b| b.is_ascii_hexdigit());
    (ok && !inner.is_empty()).then_some(inner)
}

impl Node {
    /// Opens the state directory and the spool, and applies the last good bundle found there
    /// (verified again) so a restart without the manager keeps the fleet policy.
    pub fn new(
        cfg: NodeConfig,
        apply: Arc<ApplyFn>,
        refused: Arc<RefusedFn>,
    ) -> Result<Node, String> {
        std::fs::create_dir_all(bundles_dir(&cfg.state_dir))
            .map_err(|e| format!("{}: {e}", cfg.state_dir.display()))?;
        let spool = Spool::open(&cfg.state_dir.join("spool"), cfg.spool_max)
            .map_err(|e| format!("{}/spool: {e}", cfg.state_dir.display()))?;
        let node = Node {
            spool: Arc::new(Mutex::new(spool)),
            notify: Arc::new(Notify::new()),
            running: Arc::default(),
            apply,
            refused,
            cfg,
        };
        if let Ok(name) = std::fs::read_to_string(node.cfg.state_dir.join("current")) {
            let dir = bundles_dir(&node.cfg.state_dir).join(name.trim());
            let r = Bundle::read_dir(&dir, Limits::default()).and_then(|b| {
                let m = b.verify(&node.cfg.bundle_key)?;
                let s = (node.apply)(&dir, &m)?;
                Ok((m.version, b.digest(), s))
            });
            match r {
                Ok((version, digest, s)) => {
                    eprintln!("palisade fleet: restored bundle version {version}: {s}");
                    *node.running.lock().map_err(|_| "poisoned")? = Running { version, digest };
                }
                Err(e) => {
                    (node.refused)();
                    eprintln!(
                        "palisade fleet: last bundle in {} not usable, waiting for the manager: {e}",
                        dir.display()
                    );
                }
            }
        }
        Ok(node)
    }

    /// The bundle in force.
    pub fn running(&self) -> Running {
        self.running.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// What the event bus calls with each chunk of event lines: spool them, wake the sender.
    pub fn spooler(&self) -> crate::sinks::ChunkFn {
        let spool = self.spool.clone();
        let notify = self.notify.clone();
        Box::new(move |chunk: &[u8]| {
            if let Ok(mut s) = spool.lock() {
                for l in chunk.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    if let Err(e) = s.append(l) {
                        eprintln!("palisade fleet: spool: {e}");
                        break;
                    }
                }
                let _ = s.flush();
            }
            notify.notify_one();
        })
    }

    /// Spool counters: (next sequence number, bytes, dropped when full, oversize).
    pub fn spool_counters(&self) -> (u64, u64, u64, u64) {
        self.spool
            .lock()
            .map(|s| (s.next_seq(), s.bytes(), s.dropped, s.oversize))
            .unwrap_or_default()
    }

    /// Runs the connection loop on its own thread, forever.
    pub fn spawn(self: Arc<Self>, stats: Arc<StatsFn>) -> Result<(), String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let client = pki::client_config(&self.cfg.identity, self.cfg.idle)?;
        std::thread::Builder::new()
            .name("palisade-fleet".into())
            .spawn(move || rt.block_on(self.connect_loop(client, stats)))
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    async fn connect_loop(self: Arc<Self>, client: quinn::ClientConfig, stats: Arc<StatsFn>) {
        let bind: SocketAddr = if self.cfg.manager.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let mut last_err = String::new();
        let mut backoff = Duration::from_millis(200);
        loop {
            let r = match quinn::Endpoint::client(bind) {
                Ok(ep) => {
                    let r = self.session(&ep, client.clone(), &stats).await;
                    ep.close(0u32.into(), b"bye");
                    r
                }
                Err(e) => Err(e.to_string()),
            };
            match r {
                Ok(()) => backoff = Duration::from_millis(200),
                Err(e) => {
                    if e != last_err {
                        eprintln!("palisade fleet: manager {}: {e}", self.cfg.manager);
                        last_err = e;
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    async fn session(
        &self,
        ep: &quinn::Endpoint,
        client: quinn::ClientConfig,
        stats: &Arc<StatsFn>,
    ) -> Result<(), String> {
        let conn = ep
            .connect_with(client, self.cfg.manager, &self.cfg.server_name)
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| format!("connection failed: {e}"))?;
        let (mut tx, mut rx) = conn.open_bi().await.map_err(|e| e.to_string())?;
        let running = self.running();
        let spool_id = self.spool.lock().map_err(|_| "poisoned")?.id;
        proto::write(
            &mut tx,
            &Frame::Hello(Hello {
                group: self.cfg.group.clone(),
                version: running.version,
                digest: running.digest,
                agent: env!("CARGO_PKG_VERSION").into(),
                spool: spool_id,
            }),
        )
        .await?;
        let welcome = match proto::read(&mut rx, 0).await? {
            Some(Frame::Welcome(w)) => w,
            other => return Err(format!("expected a welcome, got {other:?}")),
        };
        eprintln!(
            "palisade fleet: connected to manager {} as {} (it holds events up to {})",
            self.cfg.manager, welcome.node, welcome.last_seq
        );
        let mut acked = welcome.last_seq;
        let mut sent = acked;
        if let Ok(mut s) = self.spool.lock() {
            s.ack(acked);
        }
        // Frames from the manager arrive through a task (reads are not cancel-safe).
        let (ftx, mut frx) = tokio::sync::mpsc::channel::<Result<Frame, String>>(16);
        let cap = Limits::default().max_bytes as usize + (17 << 20);
        let reader = tokio::spawn(async move {
            loop {
                let f = proto::read(&mut rx, cap).await;
                let end = !matches!(f, Ok(Some(_)));
                let _ = ftx
                    .send(f.and_then(|f| f.ok_or_else(|| "manager closed the stream".into())))
                    .await;
                if end {
                    break;
                }
            }
        });
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut last_stats = Instant::now() - Duration::from_secs(10);
        let result = loop {
            tokio::select! {
                f = frx.recv() => {
                    match f {
                        Some(Ok(Frame::Ack(seq))) => {
                            acked = acked.max(seq);
                            if let Ok(mut s) = self.spool.lock() {
                                s.ack(acked);
                            }
                        }
                        Some(Ok(Frame::Bundle(b))) => {
                            let a = self.receive_bundle(&b);
                            proto::write(&mut tx, &Frame::Applied(a)).await?;
                        }
                        Some(Ok(other)) => break Err(format!("unexpected frame {other:?}")),
                        Some(Err(e)) => break Err(e),
                        None => break Err("manager stream ended".into()),
                    }
                }
                _ = self.notify.notified() => {}
                _ = tick.tick() => {}
            }
            // Events the manager has not seen yet, within the window.
            while sent < acked + WINDOW {
                let batch = self
                    .spool
                    .lock()
                    .map_err(|_| "poisoned".to_string())?
                    .read(sent + 1, BATCH)
                    .map_err(|e| format!("spool: {e}"))?;
                let Some((first, lines)) = batch else { break };
                let n = lines.iter().filter(|&&b| b == b'\n').count() as u64;
                proto::write(&mut tx, &Frame::Events { first, lines }).await?;
                sent = first + n - 1;
            }
            if last_stats.elapsed() >= Duration::from_secs(1) {
                last_stats = Instant::now();
                let mut m = stats();
                let (next, bytes, dropped, oversize) = self.spool_counters();
                m.insert("spool_next_seq".into(), next);
                m.insert("spool_bytes".into(), bytes);
                m.insert("spool_dropped".into(), dropped);
                m.insert("spool_oversize".into(), oversize);
                proto::write(&mut tx, &Frame::Stats(m)).await?;
            }
        };
        reader.abort();
        conn.close(0u32.into(), b"node closing");
        result
    }

    /// Checks, stores and applies a bundle; says what happened.
    fn receive_bundle(&self, wire: &[u8]) -> Applied {
        let t = Instant::now();
        let mut a = Applied::default();
        let r = (|| -> Result<String, String> {
            let b = Bundle::decode(wire, Limits::default())?;
            a.digest = b.digest();
            if let Ok(m) = b.manifest_unverified() {
                a.version = m.version;
            }
            let m = b.verify(&self.cfg.bundle_key)?;
            let running = self.running();
            if m.version == running.version && a.digest == running.digest {
                return Ok("already in force".into());
            }
            if m.version <= running.version {
                return Err(format!(
                    "version {} is not newer than version {} in force (rollback refused)",
                    m.version, running.version
                ));
            }
            let name = bundle_dir_name(m.version, &a.digest);
            let dir = bundles_dir(&self.cfg.state_dir).join(&name);
            b.write_to(&dir)?;
            let summary = (self.apply)(&dir, &m)?;
            let cur = self.cfg.state_dir.join("current");
            let tmp = self.cfg.state_dir.join("current.tmp");
            std::fs::write(&tmp, &name)
                .and_then(|_| std::fs::rename(&tmp, &cur))
                .map_err(|e| format!("{}: {e}", cur.display()))?;
            // Keep this bundle and the one before it.
            let old = self.running();
            if let Ok(rd) = std::fs::read_dir(bundles_dir(&self.cfg.state_dir)) {
                let prev = format!("v{}-", old.version);
                for e in rd.flatten() {
                    let n = e.file_name().to_string_lossy().into_owned();
                    if n != name
                        && !(n.starts_with(&prev) && old.digest.starts_with(&n[prev.len()..]))
                    {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
            if let Ok(mut r) = self.running.lock() {
                *r = Running {
                    version: m.version,
                    digest: a.digest.clone(),
                };
            }
            Ok(summary)
        })();
        a.ms = t.elapsed().as_secs_f64() * 1e3;
        match r {
            Ok(s) => {
                a.ok = true;
                eprintln!(
                    "palisade fleet: bundle version {} applied in {:.1} ms: {s}",
                    a.version, a.ms
                );
            }
            Err(e) => {
                (self.refused)();
                eprintln!(
                    "palisade fleet: bundle version {} refused, keeping version {}: {e}",
                    a.version,
                    self.running().version
                );
                a.error = e;
            }
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_inside_a_bundle_are_named_relative_to_it() {
        let dir = bundles_dir(Path::new("/var/lib/palisade"))
            .join(bundle_dir_name(12, "0123456789abcdef0123"));
        let list = dir.join("intel/feed.txt").display().to_string();
        assert_eq!(bundle_relative(&list), Some("intel/feed.txt"));
        let rel = bundles_dir(Path::new("state"))
            .join(bundle_dir_name(3, "00000000000000ff"))
            .join("a.txt");
        assert_eq!(bundle_relative(&rel.display().to_string()), Some("a.txt"));
        for outside in [
            "/etc/palisade/feed.txt",
            "/var/lib/palisade/bundles/current/feed.txt",
            "/var/lib/palisade/bundles/v12-0123/feed.txt",
            "/var/lib/palisade/bundles/vx-0123456789ab/feed.txt",
            "/var/lib/palisade/bundles/v12-0123456789ab",
            "/var/lib/palisade/bundles/v12-0123456789ab/",
        ] {
            assert_eq!(bundle_relative(outside), None, "{outside}");
        }
    }
}
