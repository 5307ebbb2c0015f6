//! Simulated nodes for the fleet benchmark (`palisade manager simulate`): N nodes, each with its
//! own certificate, multiplexed over one QUIC endpoint. They connect and take the current
//! bundle, then the simulator publishes a new bundle (a rename into the policy directory) and
//! times its distribution to every node, then every node sends events and the simulator times
//! their acknowledgement (events per second, delivery latency percentiles).
//!
//! Nodes do not apply bundles (they acknowledge them): this measures the manager.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::pki;
use super::proto::{self, Applied, Frame, Hello};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The manager.
    pub manager: SocketAddr,
    /// Its certificate's name.
    pub server_name: String,
    /// A directory with the operator's `ca.pem` and `ca.key` (node certificates are issued).
    pub ca_dir: PathBuf,
    /// Number of nodes.
    pub nodes: usize,
    /// A signed bundle directory renamed to `publish_to` once every node runs the first one.
    pub publish_from: PathBuf,
    /// Where it goes (inside the manager's policy directory).
    pub publish_to: PathBuf,
    /// Events each node sends.
    pub events: u64,
    /// Events per frame.
    pub batch: usize,
    /// Total events per second across all nodes (0: as fast as acknowledgements allow).
    pub rate: u64,
}

/// What was measured.
#[derive(Debug, Clone, Default)]
pub struct SimReport {
    /// Nodes connected.
    pub connected: usize,
    /// Time for all of them to connect and receive the first bundle, seconds.
    pub connect_s: f64,
    /// From the rename of the new bundle into place until the first and the last node had
    /// received it, milliseconds.
    pub push_first_ms: f64,
    /// The last node.
    pub push_all_ms: f64,
    /// Events acknowledged.
    pub events: u64,
    /// Seconds from the first event sent to the last acknowledged.
    pub events_s: f64,
    /// Delivery latency (frame sent to acknowledgement received), p50/p99/max, milliseconds.
    pub latency_ms: (f64, f64, f64),
}

/// A typical eve event, about 450 bytes, numbered.
fn event(node: usize, seq: u64) -> String {
    format!(
        "{{\"timestamp\":\"2026-11-30T10:00:00.000000+0000\",\"flow_id\":{seq},\"event_type\":\"tls\",\"src_ip\":\"10.{}.{}.2\",\"src_port\":{},\"dest_ip\":\"192.0.2.10\",\"dest_port\":443,\"proto\":\"TCP\",\"community_id\":\"1:TgqdR3yl6WHHPpcZ/ztYuhvOzi4=\",\"tls\":{{\"sni\":\"www.example.com\",\"version\":\"TLS 1.3\",\"ja3\":{{\"hash\":\"30a698686f2c9e27606afeeda2c990be\"}},\"ja4\":\"t13d1516h2_8daaf6152771_b0da82dd1658\"}},\"palisade\":{{\"name_score\":0.012345}}}}",
        node / 250,
        node % 250,
        1024 + seq % 60000
    )
}

struct Shared {
    got_first: AtomicU64,
    got_second: AtomicU64,
    second_times: Mutex<Vec<Instant>>,
    latencies: Mutex<Vec<f64>>,
    acked: AtomicU64,
    go_events: tokio::sync::Notify,
    go: std::sync::atomic::AtomicBool,
}

/// Runs the simulation.
pub fn run(cfg: SimConfig) -> Result<SimReport, String> {
    let read = |n: &str| {
        let p = cfg.ca_dir.join(n);
        std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))
    };
    let (ca_cert, ca_key) = (read("ca.pem")?, read("ca.key")?);
    let dir = std::env::temp_dir().join(format!("palisade-sim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let now = time::OffsetDateTime::now_utc();
    let mut configs = Vec::with_capacity(cfg.nodes);
    for i in 0..cfg.nodes {
        let name = format!("sim{i:05}");
        let (c, k) = pki::issue(
            &ca_cert,
            &ca_key,
            &name,
            now - time::Duration::hours(1),
            now + time::Duration::days(1),
        )?;
        let (cp, kp) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&cp, c).map_err(|e| e.to_string())?;
        std::fs::write(&kp, k).map_err(|e| e.to_string())?;
        configs.push(pki::client_config(
            &pki::Identity {
                ca: cfg.ca_dir.join("ca.pem"),
                cert: cp,
                key: kp,
            },
            Duration::from_secs(30),
        )?);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let rt = super::runtime()?;
    rt.block_on(async move {
        let ep = quinn::Endpoint::client(([0, 0, 0, 0], 0).into()).map_err(|e| e.to_string())?;
        let sh = Arc::new(Shared {
            got_first: AtomicU64::new(0),
            got_second: AtomicU64::new(0),
            second_times: Mutex::new(Vec::new()),
            latencies: Mutex::new(Vec::new()),
            acked: AtomicU64::new(0),
            go_events: tokio::sync::Notify::new(),
            go: std::sync::atomic::AtomicBool::new(false),
        });
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for (i, cc) in configs.into_iter().enumerate() {
            let ep = ep.clone();
            let sh = sh.clone();
            let cfg = cfg.clone();
            tasks.push(tokio::spawn(async move { node(i, ep, cc, cfg, sh).await }));
            // Pace the handshakes a little so the manager is not flooded all at once.
            if i % 50 == 49 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let n = cfg.nodes as u64;
        let deadline = Instant::now() + Duration::from_secs(120);
        while sh.got_first.load(Ordering::Acquire) < n {
            if Instant::now() > deadline {
                return Err(format!(
                    "only {} of {n} nodes got the first bundle",
                    sh.got_first.load(Ordering::Acquire)
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let connect_s = t0.elapsed().as_secs_f64();
        let t_pub = Instant::now();
        std::fs::rename(&cfg.publish_from, &cfg.publish_to)
            .map_err(|e| format!("{}: {e}", cfg.publish_from.display()))?;
        while sh.got_second.load(Ordering::Acquire) < n {
            if Instant::now() > deadline + Duration::from_secs(60) {
                return Err("the new bundle did not reach every node".into());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let times = sh.second_times.lock().map_err(|_| "poisoned")?.clone();
        let ms = |t: &Instant| t.duration_since(t_pub).as_secs_f64() * 1e3;
        let push_first_ms = times.iter().map(ms).fold(f64::MAX, f64::min);
        let push_all_ms = times.iter().map(ms).fold(0.0, f64::max);
        // Events.
        let t_ev = Instant::now();
        sh.go.store(true, Ordering::Release);
        sh.go_events.notify_waiters();
        let total = n * cfg.events;
        while sh.acked.load(Ordering::Acquire) < total {
            if t_ev.elapsed() > Duration::from_secs(300) {
                return Err(format!(
                    "only {} of {total} events acknowledged",
                    sh.acked.load(Ordering::Acquire)
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let events_s = t_ev.elapsed().as_secs_f64();
        for t in tasks {
            t.abort();
        }
        ep.close(0u32.into(), b"done");
        let mut lat = sh.latencies.lock().map_err(|_| "poisoned")?.clone();
        lat.sort_by(f64::total_cmp);
        let pct = |p: f64| {
            lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0.0)
        };
        Ok(SimReport {
            connected: cfg.nodes,
            connect_s,
            push_first_ms,
            push_all_ms,
            events: total,
            events_s,
            latency_ms: (pct(0.5), pct(0.99), lat.last().copied().unwrap_or(0.0)),
        })
    })
}

async fn node(
    i: usize,
    ep: quinn::Endpoint,
    cc: quinn::ClientConfig,
    cfg: SimConfig,
    sh: Arc<Shared>,
) -> Result<(), String> {
    let conn = ep
        .connect_with(cc, cfg.manager, &cfg.server_name)
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    let (mut tx, mut rx) = conn.open_bi().await.map_err(|e| e.to_string())?;
    proto::write(
        &mut tx,
        &Frame::Hello(Hello {
            group: "default".into(),
            version: 0,
            digest: String::new(),
            agent: "simulator".into(),
            spool: 1 + i as u64,
        }),
    )
    .await?;
    let welcome = match proto::read(&mut rx, 0).await? {
        Some(Frame::Welcome(w)) => w,
        other => return Err(format!("expected a welcome, got {other:?}")),
    };
    // Sent frames waiting for their acknowledgement: (last sequence number, sent at).
    let pending: Arc<Mutex<VecDeque<(u64, Instant)>>> = Arc::default();
    let (btx, mut brx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let reader = {
        let pending = pending.clone();
        let sh = sh.clone();
        tokio::spawn(async move {
            let mut bundles = 0;
            while let Ok(Some(f)) = proto::read(&mut rx, 512 << 20).await {
                match f {
                    Frame::Bundle(b) => {
                        bundles += 1;
                        if bundles == 1 {
                            sh.got_first.fetch_add(1, Ordering::AcqRel);
                        } else if bundles == 2 {
                            if let Ok(mut t) = sh.second_times.lock() {
                                t.push(Instant::now());
                            }
                            sh.got_second.fetch_add(1, Ordering::AcqRel);
                        }
                        let _ = btx.send(b);
                    }
                    Frame::Ack(seq) => {
                        let now = Instant::now();
                        if let (Ok(mut p), Ok(mut l)) = (pending.lock(), sh.latencies.lock()) {
                            while let Some(&(last, at)) = p.front() {
                                if last > seq {
                                    break;
                                }
                                l.push(now.duration_since(at).as_secs_f64() * 1e3);
                                p.pop_front();
                            }
                        }
                    }
                    _ => {}
                }
            }
        })
    };
    // Acknowledge bundles (as applied) until the events start.
    let mut seq = welcome.last_seq;
    let last = seq + cfg.events;
    loop {
        tokio::select! {
            b = brx.recv() => {
                let Some(b) = b else { break };
                let digest = super::bundle::sha256_hex(&b);
                proto::write(&mut tx, &Frame::Applied(Applied { version: 0, digest, ok: true, ..Default::default() })).await?;
            }
            _ = sh.go_events.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        if sh.go.load(Ordering::Acquire) {
            break;
        }
    }
    let mut lines = Vec::new();
    // Paced: this node's share of the rate, one frame per interval, starting at a random-ish
    // offset so the nodes do not send in lockstep.
    let interval = (cfg.rate > 0)
        .then(|| Duration::from_secs_f64(cfg.batch as f64 * cfg.nodes as f64 / cfg.rate as f64));
    let mut next = Instant::now();
    if let Some(iv) = interval {
        next += iv.mul_f64((i as f64 * 0.618_033_988_7).fract());
    }
    while seq < last {
        if let Some(iv) = interval {
            tokio::time::sleep_until(next.into()).await;
            next += iv;
        }
        // At most 20 frames in flight.
        while pending.lock().map_or(0, |p| p.len()) >= 20 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        lines.clear();
        let first = seq + 1;
        let n = (cfg.batch as u64).min(last - seq);
        for s in first..first + n {
            lines.extend_from_slice(event(i, s).as_bytes());
            lines.push(b'\n');
        }
        seq += n;
        if let Ok(mut p) = pending.lock() {
            p.push_back((seq, Instant::now()));
        }
        proto::write(
            &mut tx,
            &Frame::Events {
                first,
                lines: lines.clone(),
            },
        )
        .await?;
    }
    while pending.lock().map_or(0, |p| p.len()) > 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    sh.acked.fetch_add(cfg.events, Ordering::AcqRel);
    // Stay connected until the simulation ends.
    let _ = reader.await;
    Ok(())
}
