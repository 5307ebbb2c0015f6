//! The manager (`palisade manager --listen ADDR --policy DIR`): serves signed policy bundles to
//! nodes over QUIC with mutual TLS, pushes new versions as they appear in `DIR`, takes the
//! nodes' events (stored once each, in order, with the node's name as `host`) and reports every
//! node's state on a localhost status port.
//!
//! `DIR` is either one signed bundle directory or a directory of them (one per version or
//! stage): each node gets the highest version among the bundles that target its group (a
//! bundle with no `groups` targets every node), which is how a rollout is staged.
//! The manager relays bundles; it does not need the signing key and is not trusted with it.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::mpsc;

use super::bundle::{Bundle, Limits, Manifest, PublicKey, MANIFEST, SIGNATURE};
use super::pki::{self, Identity};
use super::proto::{self, Frame, Welcome};
use crate::sinks::{ReopeningFile, SinkSpec, Sinks};

/// The manager's settings.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// QUIC listen address.
    pub listen: SocketAddr,
    /// Bundle directory (one bundle, or one per subdirectory).
    pub policy: PathBuf,
    /// CA, certificate and key.
    pub identity: Identity,
    /// Where per-node event positions are kept.
    pub state_dir: PathBuf,
    /// Status listen address (localhost), if any.
    pub status: Option<String>,
    /// The manager's eve file for the nodes' events.
    pub eve: Option<PathBuf>,
    /// Further sinks for the nodes' events.
    pub sinks: Vec<SinkSpec>,
    /// Connection idle timeout.
    pub idle: Duration,
    /// How often `policy` is looked at.
    pub scan: Duration,
    /// When given, bundles that do not verify are not served (nodes check anyway).
    pub bundle_key: Option<PublicKey>,
    /// Most connections open or in their handshake at once.
    pub max_connections: u64,
}

/// One node as the status shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeStatus {
    /// Its certificate's common name.
    pub name: String,
    /// Rollout group.
    pub group: String,
    /// Address of its last connection.
    pub addr: String,
    /// Connected now.
    pub connected: bool,
    /// Bundle version in force.
    pub version: u64,
    /// Its digest.
    pub digest: String,
    /// The last bundle it refused, and why.
    pub refused: String,
    /// Last time anything was heard from it (Unix seconds).
    pub last_seen: f64,
    /// Events stored.
    pub events: u64,
    /// Events received twice (dropped; resends after a lost acknowledgement).
    pub duplicates: u64,
    /// Events the node never delivered (its spool overflowed).
    pub lost: u64,
    /// Last event sequence number stored.
    pub last_seq: u64,
    /// Time it took to apply its last bundle, ms.
    pub apply_ms: f64,
    /// The node's own counters (packets, drops, spool).
    pub counters: BTreeMap<String, u64>,
}

/// A bundle the manager serves.
#[derive(Debug, Clone, Serialize)]
pub struct BundleStatus {
    /// Its directory.
    pub dir: String,
    /// Version.
    pub version: u64,
    /// Target groups (empty: all).
    pub groups: Vec<String>,
    /// Digest of its wire form.
    pub digest: String,
    /// Bytes on the wire.
    pub bytes: usize,
}

/// The status document.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// Bundles found in the policy directory.
    pub bundles: Vec<BundleStatus>,
    /// Nodes ever seen.
    pub nodes: Vec<NodeStatus>,
    /// Connections refused (bad or expired certificates, bad greetings).
    pub refused_connections: u64,
}

enum Out {
    Frame(Frame),
    Bundle(Arc<Vec<u8>>),
}

struct Candidate {
    dir: PathBuf,
    fingerprint: Vec<u8>,
    manifest: Option<Manifest>,
    wire: Arc<Vec<u8>>,
    digest: String,
}

#[derive(Default)]
struct Entry {
    status: NodeStatus,
    tx: Option<mpsc::UnboundedSender<Out>>,
    conn: u64,
    pushed: String,
}

#[derive(Default)]
struct Shared {
    nodes: BTreeMap<String, Entry>,
    bundles: Vec<Candidate>,
    refused: u64,
}

/// Where node events go: the eve file, the sinks, and each node's position.
struct EventOut {
    eve: Option<ReopeningFile>,
    sinks: Sinks,
    /// Node name -> (spool identity, last event stored).
    seqs: HashMap<String, (u64, u64)>,
    /// Positions journal: one line appended per stored batch, `SPOOL LAST "NAME"`; read at
    /// start, rewritten whole when it passes [`JOURNAL_MAX`].
    journal: std::fs::File,
    journal_path: PathBuf,
    journal_bytes: u64,
    line: Vec<u8>,
    chunk: Vec<u8>,
}

/// The positions journal is compacted past this size.
const JOURNAL_MAX: u64 = 16 << 20;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl EventOut {
    /// Opens the positions journal in `dir` (compacting it) and the outputs.
    fn open(dir: &Path, eve: Option<ReopeningFile>, sinks: Sinks) -> Result<EventOut, String> {
        let journal_path = dir.join("positions.journal");
        let mut seqs = HashMap::new();
        if let Ok(text) = std::fs::read_to_string(&journal_path) {
            for l in text.lines() {
                let mut it = l.splitn(3, ' ');
                if let (Some(a), Some(b), Some(n)) = (it.next(), it.next(), it.next()) {
                    if let (Ok(sp), Ok(last), Ok(name)) = (
                        u64::from_str_radix(a, 16),
                        b.parse::<u64>(),
                        serde_json::from_str::<String>(n),
                    ) {
                        seqs.insert(name, (sp, last));
                    }
                }
            }
        }
        let mut out = EventOut {
            eve,
            sinks,
            seqs,
            journal: std::fs::File::create(dir.join("positions.tmp"))
                .map_err(|e| format!("{}: {e}", dir.display()))?,
            journal_path,
            journal_bytes: 0,
            line: Vec::new(),
            chunk: Vec::new(),
        };
        out.compact()?;
        Ok(out)
    }

    /// Rewrites the journal with one line per node.
    fn compact(&mut self) -> Result<(), String> {
        let tmp = self.journal_path.with_extension("tmp");
        let mut text = String::new();
        for (n, (sp, last)) in &self.seqs {
            text.push_str(&format!(
                "{sp:016x} {last} {}\n",
                serde_json::to_string(n).unwrap_or_default()
            ));
        }
        std::fs::write(&tmp, &text)
            .and_then(|_| std::fs::rename(&tmp, &self.journal_path))
            .map_err(|e| format!("{}: {e}", self.journal_path.display()))?;
        self.journal = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.journal_path)
            .map_err(|e| format!("{}: {e}", self.journal_path.display()))?;
        self.journal_bytes = text.len() as u64;
        Ok(())
    }

    fn position(&mut self, node: &str, spool: u64) -> u64 {
        let pos = match self.seqs.get(node) {
            Some(&(sp, last)) if sp == spool => last,
            Some(_) => {
                eprintln!("palisade manager: {node}: new spool, its event numbering restarts");
                0
            }
            None => 0,
        };
        self.seqs.insert(node.to_string(), (spool, pos));
        pos
    }

    /// Stores events `first..` of `node`, skipping those already stored. Returns (last stored,
    /// stored, duplicates, lost).
    fn store(
        &mut self,
        node: &str,
        first: u64,
        lines: &[u8],
    ) -> Result<(u64, u64, u64, u64), String> {
        let (spool, mut last) = self.seqs.get(node).copied().unwrap_or_default();
        let (mut stored, mut dups, mut lost) = (0, 0, 0);
        self.chunk.clear();
        let host = serde_json::to_string(node).unwrap_or_default();
        for (seq, l) in (first..).zip(lines.split(|&b| b == b'\n').filter(|l| !l.is_empty())) {
            if seq <= last {
                dups += 1;
            } else {
                lost += seq - last - 1;
                last = seq;
                stored += 1;
                self.line.clear();
                match l.strip_prefix(b"{") {
                    Some(rest) => {
                        self.line.extend_from_slice(b"{\"host\":");
                        self.line.extend_from_slice(host.as_bytes());
                        if rest.first() != Some(&b'}') {
                            self.line.push(b',');
                        }
                        self.line.extend_from_slice(rest);
                    }
                    None => self.line.extend_from_slice(l),
                }
                self.line.push(b'\n');
                self.chunk.extend_from_slice(&self.line);
            }
        }
        if !self.chunk.is_empty() {
            if let Some(f) = &mut self.eve {
                f.write_all(&self.chunk)
                    .and_then(|_| f.flush())
                    .map_err(|e| format!("manager eve: {e}"))?;
            }
            if !self.sinks.is_empty() {
                self.sinks.send(Arc::from(&self.chunk[..]));
            }
            let rec = format!("{spool:016x} {last} {host}\n");
            self.journal
                .write_all(rec.as_bytes())
                .map_err(|e| format!("{}: {e}", self.journal_path.display()))?;
            self.journal_bytes += rec.len() as u64;
        }
        self.seqs.insert(node.to_string(), (spool, last));
        if self.journal_bytes > JOURNAL_MAX {
            self.compact()?;
        }
        Ok((last, stored, dups, lost))
    }
}

/// Reads what identifies a bundle directory's content cheaply: manifest and signature bytes,
/// and the size and modification time of every file.
fn fingerprint(dir: &Path) -> Option<Vec<u8>> {
    let mut fp = std::fs::read(dir.join(MANIFEST)).ok()?;
    fp.extend(std::fs::read(dir.join(SIGNATURE)).ok()?);
    let m = super::bundle::parse_manifest("", &std::fs::read(dir.join(MANIFEST)).ok()?).ok()?;
    for f in &m.files {
        let md = std::fs::metadata(dir.join(&f.path)).ok()?;
        fp.extend(md.len().to_be_bytes());
        let t = md.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
        fp.extend(t.as_nanos().to_be_bytes());
    }
    Some(fp)
}

fn bundle_dirs(policy: &Path) -> Vec<PathBuf> {
    if policy.join(MANIFEST).exists() {
        return vec![policy.to_path_buf()];
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(policy)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.join(MANIFEST).exists())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

impl Shared {
    /// Looks at the policy directory; true when something changed.
    fn scan(
        &mut self,
        policy: &Path,
        key: Option<&PublicKey>,
        complained: &mut Vec<Vec<u8>>,
    ) -> bool {
        let dirs = bundle_dirs(policy);
        let before = self.bundles.len();
        self.bundles.retain(|c| dirs.contains(&c.dir));
        let mut changed = before != self.bundles.len();
        for dir in dirs {
            let Some(fp) = fingerprint(&dir) else {
                continue;
            };
            if self
                .bundles
                .iter()
                .any(|c| c.dir == dir && c.fingerprint == fp)
            {
                continue;
            }
            self.bundles.retain(|c| c.dir != dir);
            let r = Bundle::read_dir(&dir, Limits::default()).and_then(|b| {
                if let Some(k) = key {
                    b.verify(k)?;
                }
                Ok(b)
            });
            match r {
                Ok(b) => {
                    let wire = b.encode();
                    let digest = super::bundle::sha256_hex(&wire);
                    let manifest = b.manifest_unverified().ok();
                    eprintln!(
                        "palisade manager: serving {} (version {}, {} bytes)",
                        dir.display(),
                        manifest.as_ref().map_or(0, |m| m.version),
                        wire.len()
                    );
                    self.bundles.push(Candidate {
                        dir,
                        fingerprint: fp,
                        manifest,
                        wire: Arc::new(wire),
                        digest,
                    });
                    changed = true;
                }
                Err(e) => {
                    if !complained.contains(&fp) {
                        eprintln!("palisade manager: {}: not served: {e}", dir.display());
                        complained.push(fp);
                    }
                }
            }
        }
        changed
    }

    /// The bundle a node of `group` should run.
    fn best(&self, group: &str) -> Option<&Candidate> {
        self.bundles
            .iter()
            .filter_map(|c| c.manifest.as_ref().map(|m| (c, m)))
            .filter(|(_, m)| m.groups.is_empty() || m.groups.iter().any(|g| g == group))
            .max_by(|(a, am), (b, bm)| am.version.cmp(&bm.version).then(a.dir.cmp(&b.dir)))
            .map(|(c, _)| c)
    }

    /// Pushes to every connected node whose best bundle it neither runs nor was sent.
    fn push_all(&mut self) {
        let names: Vec<String> = self.nodes.keys().cloned().collect();
        for n in names {
            self.push(&n);
        }
    }

    fn push(&mut self, name: &str) {
        let Some(e) = self.nodes.get(name) else {
            return;
        };
        let Some(tx) = e.tx.clone() else { return };
        let Some((digest, wire)) = self
            .best(&e.status.group)
            .map(|c| (c.digest.clone(), c.wire.clone()))
        else {
            return;
        };
        if digest == e.pushed || digest == e.status.digest {
            return;
        }
        if tx.send(Out::Bundle(wire)).is_ok() {
            if let Some(e) = self.nodes.get_mut(name) {
                e.pushed = digest;
            }
        }
    }

    fn status(&self) -> Status {
        Status {
            bundles: self
                .bundles
                .iter()
                .map(|c| BundleStatus {
                    dir: c.dir.display().to_string(),
                    version: c.manifest.as_ref().map_or(0, |m| m.version),
                    groups: c
                        .manifest
                        .as_ref()
                        .map(|m| m.groups.clone())
                        .unwrap_or_default(),
                    digest: c.digest.clone(),
                    bytes: c.wire.len(),
                })
                .collect(),
            nodes: self.nodes.values().map(|e| e.status.clone()).collect(),
            refused_connections: self.refused,
        }
    }
}

/// Runs the manager until the process ends.
pub fn run(cfg: ManagerConfig) -> Result<(), String> {
    let server = pki::server_config(&cfg.identity, cfg.idle)?;
    let nodes_dir = cfg.state_dir.join("nodes");
    std::fs::create_dir_all(&nodes_dir).map_err(|e| format!("{}: {e}", nodes_dir.display()))?;
    let eve = match &cfg.eve {
        Some(p) => Some(ReopeningFile::open(p).map_err(|e| format!("{}: {e}", p.display()))?),
        None => None,
    };
    let out = Arc::new(Mutex::new(EventOut::open(
        &nodes_dir,
        eve,
        Sinks::start(&cfg.sinks, true)?,
    )?));
    let shared = Arc::new(Mutex::new(Shared::default()));
    if let Some(addr) = &cfg.status {
        serve_status(addr, shared.clone())?;
    }
    let rt = super::runtime()?;
    rt.block_on(async move {
        let ep = quinn::Endpoint::server(server, cfg.listen)
            .map_err(|e| format!("{}: {e}", cfg.listen))?;
        eprintln!(
            "palisade manager: listening on {} (QUIC, mutual TLS), policy {}",
            cfg.listen,
            cfg.policy.display()
        );
        {
            let shared = shared.clone();
            let policy = cfg.policy.clone();
            let key = cfg.bundle_key.clone();
            let every = cfg.scan;
            tokio::spawn(async move {
                let mut complained = Vec::new();
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    if let Ok(mut s) = shared.lock() {
                        s.scan(&policy, key.as_ref(), &mut complained);
                        // Every scan, not only after a change: a node whose push could not be
                        // sent (or that connected mid-scan) gets its bundle at the next one.
                        s.push_all();
                    }
                }
            });
        }
        let ids = Arc::new(AtomicU64::new(1));
        let live = Arc::new(AtomicU64::new(0));
        while let Some(inc) = ep.accept().await {
            // Connections in progress or open are capped; beyond the cap new ones are refused
            // (and counted) before any TLS work.
            if live.load(Ordering::Acquire) >= cfg.max_connections {
                if let Ok(mut s) = shared.lock() {
                    s.refused += 1;
                }
                inc.refuse();
                continue;
            }
            live.fetch_add(1, Ordering::AcqRel);
            let shared = shared.clone();
            let out = out.clone();
            let live = live.clone();
            let id = ids.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let addr = inc.remote_address();
                if let Err(e) = serve_node(inc, id, shared.clone(), out).await {
                    eprintln!("palisade manager: {addr}: {e}");
                }
                live.fetch_sub(1, Ordering::AcqRel);
            });
        }
        Ok::<(), String>(())
    })
}

async fn serve_node(
    inc: quinn::Incoming,
    id: u64,
    shared: Arc<Mutex<Shared>>,
    out: Arc<Mutex<EventOut>>,
) -> Result<(), String> {
    let addr = inc.remote_address();
    let refuse = |why: String| {
        if let Ok(mut s) = shared.lock() {
            s.refused += 1;
        }
        format!("connection refused: {why}")
    };
    let conn = match inc.await {
        Ok(c) => c,
        Err(e) => return Err(refuse(e.to_string())),
    };
    let Some(name) = pki::peer_name(&conn) else {
        conn.close(1u32.into(), b"no usable certificate name");
        return Err(refuse("certificate without a common name".into()));
    };
    let (mut tx, mut rx) = tokio::time::timeout(Duration::from_secs(10), conn.accept_bi())
        .await
        .map_err(|_| refuse(format!("{name}: no control stream")))?
        .map_err(|e| e.to_string())?;
    let hello = match tokio::time::timeout(Duration::from_secs(10), proto::read(&mut rx, 0)).await {
        Ok(Ok(Some(Frame::Hello(h)))) => h,
        Ok(other) => return Err(refuse(format!("{name}: expected a hello, got {other:?}"))),
        Err(_) => return Err(refuse(format!("{name}: no hello within 10 s"))),
    };
    let last_seq = out
        .lock()
        .map_err(|_| "poisoned")?
        .position(&name, hello.spool);
    let (otx, mut orx) = mpsc::unbounded_channel::<Out>();
    {
        let mut s = shared.lock().map_err(|_| "poisoned")?;
        let e = s.nodes.entry(name.clone()).or_default();
        e.status.name = name.clone();
        e.status.group = if hello.group.is_empty() {
            "default".into()
        } else {
            hello.group.clone()
        };
        e.status.addr = addr.to_string();
        e.status.connected = true;
        e.status.version = hello.version;
        e.status.digest = hello.digest.clone();
        e.status.last_seen = now();
        e.status.last_seq = last_seq;
        e.tx = Some(otx.clone());
        e.conn = id;
        e.pushed.clear();
    }
    eprintln!(
        "palisade manager: node {name} connected from {addr} (group {}, version {})",
        hello.group, hello.version
    );
    proto::write(
        &mut tx,
        &Frame::Welcome(Welcome {
            node: name.clone(),
            last_seq,
        }),
    )
    .await?;
    if let Ok(mut s) = shared.lock() {
        s.push(&name);
    }
    let writer = tokio::spawn(async move {
        while let Some(o) = orx.recv().await {
            let r = match o {
                Out::Frame(f) => proto::write(&mut tx, &f).await,
                Out::Bundle(b) => proto::write_bundle(&mut tx, &b).await,
            };
            if r.is_err() {
                break;
            }
        }
    });
    let result = loop {
        let f = match proto::read(&mut rx, 0).await {
            Ok(Some(f)) => f,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        let seen = now();
        match f {
            Frame::Events { first, lines } => {
                // A short file append under the lock; sinks that are full make this wait, and the
                // node spools meanwhile (backpressure, not loss).
                let r = out
                    .lock()
                    .map_err(|_| "poisoned".to_string())
                    .and_then(|mut o| o.store(&name, first, &lines));
                let (last, stored, dups, lost) = match r {
                    Ok(x) => x,
                    Err(e) => break Err(e),
                };
                if let Ok(mut s) = shared.lock() {
                    if let Some(e) = s.nodes.get_mut(&name) {
                        e.status.events += stored;
                        e.status.duplicates += dups;
                        e.status.lost += lost;
                        e.status.last_seq = last;
                        e.status.last_seen = seen;
                    }
                }
                let _ = otx.send(Out::Frame(Frame::Ack(last)));
            }
            Frame::Applied(a) => {
                if let Ok(mut s) = shared.lock() {
                    if let Some(e) = s.nodes.get_mut(&name) {
                        e.status.last_seen = seen;
                        e.status.apply_ms = a.ms;
                        if a.ok {
                            e.status.version = a.version;
                            e.status.digest = a.digest.clone();
                        } else {
                            e.status.refused = format!("version {}: {}", a.version, a.error);
                        }
                    }
                }
                if a.ok {
                    eprintln!("palisade manager: node {name} runs version {}", a.version);
                } else {
                    eprintln!(
                        "palisade manager: node {name} refused version {}: {}",
                        a.version, a.error
                    );
                }
            }
            Frame::Stats(m) => {
                if let Ok(mut s) = shared.lock() {
                    if let Some(e) = s.nodes.get_mut(&name) {
                        e.status.counters = m;
                        e.status.last_seen = seen;
                    }
                }
            }
            other => break Err(format!("unexpected frame {other:?}")),
        }
    };
    writer.abort();
    if let Ok(mut s) = shared.lock() {
        if let Some(e) = s.nodes.get_mut(&name) {
            if e.conn == id {
                e.status.connected = false;
                e.tx = None;
            }
        }
    }
    eprintln!("palisade manager: node {name} disconnected");
    result.map_err(|e| format!("node {name}: {e}"))
}

fn serve_status(addr: &str, shared: Arc<Mutex<Shared>>) -> Result<(), String> {
    crate::metrics::serve_get(addr, &["/status"], "application/json", move || {
        let st = shared.lock().map(|s| s.status()).unwrap_or_default();
        serde_json::to_string_pretty(&st).unwrap_or_default()
    })
    .map_err(|e| format!("status {addr}: {e}"))
}

/// Fetches the status document from a manager's status port.
pub fn fetch_status(addr: &str) -> Result<String, String> {
    let mut c = std::net::TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
    c.write_all(format!("GET /status HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut s = String::new();
    c.take(64 << 20)
        .read_to_string(&mut s)
        .map_err(|e| e.to_string())?;
    match s.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_string()),
        _ => Err(format!("{addr}: not a Palisade manager status port")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_stored_once_in_order_and_positions_survive_a_restart() {
        let d = std::env::temp_dir().join(format!("palisade-mgr-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let eve = d.join("eve.json");
        let open = || {
            EventOut::open(
                &d,
                Some(ReopeningFile::open(&eve).unwrap()),
                Sinks::start(&[], true).unwrap(),
            )
            .unwrap()
        };
        let mut o = open();
        assert_eq!(o.position("gw \"1\"", 7), 0);
        let r = o
            .store("gw \"1\"", 1, b"{\"a\":1}\n{\"a\":2}\n{}\n")
            .unwrap();
        assert_eq!(r, (3, 3, 0, 0));
        // A resend after a lost acknowledgement: the known ones are dropped.
        assert_eq!(
            o.store("gw \"1\"", 2, b"{\"a\":2}\n{}\n{\"a\":4}\n")
                .unwrap(),
            (4, 1, 2, 0)
        );
        // A gap (the node's spool overflowed): counted.
        assert_eq!(
            o.store("gw \"1\"", 9, b"{\"a\":9}\n").unwrap(),
            (9, 1, 0, 4)
        );
        drop(o);
        assert_eq!(
            std::fs::read_to_string(&eve).unwrap(),
            "{\"host\":\"gw \\\"1\\\"\",\"a\":1}\n{\"host\":\"gw \\\"1\\\"\",\"a\":2}\n{\"host\":\"gw \\\"1\\\"\"}\n{\"host\":\"gw \\\"1\\\"\",\"a\":4}\n{\"host\":\"gw \\\"1\\\"\",\"a\":9}\n"
        );
        // Restarted: the journal gives the position back; a new spool restarts the numbering.
        let mut o = open();
        assert_eq!(o.position("gw \"1\"", 7), 9);
        assert_eq!(
            o.store("gw \"1\"", 9, b"{\"a\":9}\n").unwrap(),
            (9, 0, 1, 0)
        );
        assert_eq!(o.position("gw \"1\"", 8), 0);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
