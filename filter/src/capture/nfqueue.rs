//! Inline: packets from a netfilter queue through the engine, verdicts back to the kernel.
//!
//! One worker per queue, each with its own engine and eve writer (no lock on the packet path).
//! Injected packets (resets, sinkhole answers) leave through a raw socket carrying
//! [`MARK_INJECTED`], which the firewall rules let through without queueing them again.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use socket2::{Domain, Protocol, Socket, Type};

use crate::capture::linktype;
use crate::engine::{Engine, Scoring, Verdict};
use crate::respond::{self, Sinkhole};

/// Mark on packets Palisade injects; the firewall chain returns them unqueued.
pub const MARK_INJECTED: u32 = 0x0010_0000;
/// Mark on an accepted packet whose flow needs no more inspection; the firewall saves it to the
/// connection (connmark), and the rest of the flow is no longer queued.
pub const MARK_BYPASS: u32 = 0x0020_0000;
/// Mark on every packet Palisade accepted: the kernel guard (which drops listed addresses while
/// Palisade is not running) lets these through.
pub const MARK_INSPECTED: u32 = 0x0040_0000;

/// The intel in force, swapped by reloads. Workers compare the generation (one atomic load per
/// packet) and take the new set only when it changed; the lock is never taken on the packet path
/// otherwise, and the set is built before it is published.
#[derive(Debug, Default)]
pub struct Reloadable {
    generation: AtomicU64,
    current: Mutex<Option<crate::engine::Policy>>,
    health: Mutex<PolicyHealth>,
}

/// What the policy in force holds and how the attempts to replace it went, for the metrics
/// endpoint: an operator learns that a feed shrank, skipped lines or stopped reloading without
/// reading the daemon's log.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PolicyHealth {
    /// The intel lists in force: name, action, indicators and bad lines skipped.
    pub lists: Vec<palisade_rules::ListInfo>,
    /// Signatures in force.
    pub signatures: u64,
    /// The models in force: (`domain` or `flow`, version, alert threshold, block threshold,
    /// shadow).
    pub models: Vec<ModelHealth>,
    /// When the policy in force was loaded (Unix seconds; zero before the first).
    pub loaded_at: u64,
    /// Attempts to load a new policy that were refused (the running one stayed in force).
    pub failures: u64,
    /// Whether the latest attempt succeeded (false only before any policy is recorded, and
    /// after a refused attempt until the next success).
    pub last_ok: bool,
}

/// A model in force, for [`PolicyHealth`].
#[derive(Debug, Clone, PartialEq)]
pub struct ModelHealth {
    /// `domain` or `flow`.
    pub kind: &'static str,
    /// The model's version.
    pub version: String,
    /// Alert threshold.
    pub alert: f32,
    /// Block threshold, when blocking is on.
    pub block: Option<f32>,
    /// Scores are only logged.
    pub shadow: bool,
}

impl PolicyHealth {
    /// The health of `policy`, loaded at `now` (Unix seconds), with earlier failures kept.
    fn of(policy: &crate::engine::Policy, now: u64, failures: u64) -> PolicyHealth {
        fn model<M>(kind: &'static str, s: &Scoring<M>, version: &str) -> ModelHealth {
            ModelHealth {
                kind,
                version: version.to_string(),
                alert: s.alert,
                block: s.block,
                shadow: s.shadow,
            }
        }
        let names = (policy.names.as_ref()).map(|n| model("domain", n, n.model.version()));
        let flows = (policy.flows.as_ref()).map(|f| model("flow", f, f.model.version()));
        let models = names.into_iter().chain(flows).collect();
        PolicyHealth {
            lists: policy.intel.lists().to_vec(),
            signatures: policy.sigs.len() as u64,
            models,
            loaded_at: now,
            failures,
            last_ok: true,
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Reloadable {
    /// Publishes a new policy (intel, signatures, name model).
    pub fn publish(&self, policy: crate::engine::Policy) {
        self.record(&policy);
        if let Ok(mut c) = self.current.lock() {
            *c = Some(policy);
        }
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Records `policy` as the one in force (the workers' first policy, which is not published).
    pub fn record(&self, policy: &crate::engine::Policy) {
        if let Ok(mut h) = self.health.lock() {
            *h = PolicyHealth::of(policy, unix_now(), h.failures);
        }
    }

    /// Counts an attempt to replace the policy that was refused; the running one stays.
    pub fn refused(&self) {
        if let Ok(mut h) = self.health.lock() {
            h.failures = h.failures.saturating_add(1);
            h.last_ok = false;
        }
    }

    /// The policy in force and the reload attempts, as last recorded.
    pub fn health(&self) -> PolicyHealth {
        self.health.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Reloads published so far.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The published policy, when its generation is not `seen` (which is updated).
    pub fn take_if_newer(&self, seen: &mut u64) -> Option<crate::engine::Policy> {
        let g = self.generation.load(Ordering::Acquire);
        if g == *seen {
            return None;
        }
        *seen = g;
        self.current.lock().ok()?.clone()
    }
}

/// Settings of one inline worker.
#[derive(Debug, Clone)]
pub struct InlineOpts {
    /// The queue number.
    pub queue: u16,
    /// Let packets pass when the queue is full (the kernel's fail-open flag).
    pub fail_open: bool,
    /// What blocked DNS queries are answered with.
    pub sinkhole: Sinkhole,
    /// Reset blocked TCP connections (true) or drop their packets silently (false).
    pub reset: bool,
    /// A `stats` event this often (wall time); zero for none.
    pub stats_interval: Duration,
    /// Mark finished flows for kernel bypass (false: inspect every packet, for measurements).
    pub bypass: bool,
    /// Where reloaded intel is published.
    pub reload: Arc<Reloadable>,
    /// Where the worker publishes its counters for the metrics endpoint (at most once a second).
    pub metrics: Arc<Mutex<Snapshot>>,
}

/// A worker's counters as last published.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Inline counters.
    pub inline: InlineStats,
    /// Engine counters.
    pub engine: crate::engine::Stats,
    /// Flows in the table, and flows created so far.
    pub flows: (u64, u64),
    /// Traffic-derived memory in use and its cap.
    pub memory: (u64, u64),
    /// Reload generation in force in this worker.
    pub reloads: u64,
    /// The worker's pools of per-flow state ([`crate::pool::thread_stats`]).
    pub pools: crate::pool::PoolStats,
}

/// Counters of a worker, besides the engine's.
#[derive(Debug, Default, Clone, Copy)]
pub struct InlineStats {
    /// Packets received from the queue.
    pub packets: u64,
    /// Packets accepted.
    pub accepted: u64,
    /// Accepted packets marked for bypass (their flow needs no more inspection).
    pub bypassed: u64,
    /// Packets dropped (including those answered by a reset or the sinkhole).
    pub dropped: u64,
    /// Resets sent.
    pub resets_sent: u64,
    /// Sinkhole answers sent.
    pub sinkhole_answers: u64,
    /// Injections that failed (the packet was still dropped).
    pub inject_errors: u64,
    /// Verdict messages sent (each settles a run of packets with the same verdict and mark).
    pub verdict_messages: u64,
    /// Messages the kernel could not deliver to the worker's socket (ENOBUFS); the packets
    /// they carried are settled by the next batch verdict.
    pub overruns: u64,
}

/// Raw sockets for injection (IPv4 and IPv6), marked so they are not queued again.
struct Injector {
    v4: Socket,
    v6: Option<Socket>,
}

impl Injector {
    fn new() -> std::io::Result<Injector> {
        let v4 = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(255)))?;
        v4.set_mark(MARK_INJECTED)?;
        let v6 = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(255))).ok();
        if let Some(s) = &v6 {
            s.set_mark(MARK_INJECTED)?;
        }
        Ok(Injector { v4, v6 })
    }

    fn send(&self, to: IpAddr, packet: &[u8]) -> std::io::Result<()> {
        let addr = SocketAddr::new(to, 0);
        let sock = match to {
            IpAddr::V4(_) => &self.v4,
            IpAddr::V6(_) => self.v6.as_ref().ok_or(std::io::ErrorKind::Unsupported)?,
        };
        sock.send_to(packet, &addr.into()).map(|_| ())
    }
}

fn publish(engine: &Engine, stats: &InlineStats, reloads: u64, to: &Mutex<Snapshot>) {
    if let Ok(mut s) = to.lock() {
        let (used, cap) = engine.memory();
        *s = Snapshot {
            inline: *stats,
            engine: engine.stats.clone(),
            flows: (engine.flow_count() as u64, engine.flows_created()),
            memory: (used as u64, cap as u64),
            reloads,
            pools: crate::pool::thread_stats(),
        };
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Packets handled before pending verdicts are sent even if more are waiting.
pub const MAX_BURST: u32 = 64;

/// Runs a worker until the queue fails. Packets are read in bursts (as many as are queued, up
/// to [`MAX_BURST`]); consecutive packets with the same verdict and mark are settled by one
/// batch verdict, sent when the verdict or mark changes and when the burst ends, so an idle
/// queue never holds a packet. Events are written (and flushed) after each packet that produced
/// any, so a killed daemon loses none. `on_ready` is called once the queue is bound and the
/// injector open.
pub fn run(
    engine: &mut Engine,
    opts: &InlineOpts,
    eve: &mut dyn Write,
    stats: &mut InlineStats,
    on_ready: &dyn Fn(),
) -> std::io::Result<()> {
    use palisade_nfnl::{Queue, Verdict as V};
    let mut q = Queue::open(opts.queue)?;
    q.set_fail_open(opts.fail_open)?;
    q.set_max_len(8192)?;
    let inj = Injector::new()?;
    on_ready();
    let mut n = 0u64;
    let mut last_stats = Instant::now();
    // Zero: a policy published before the queue opened (a restored fleet bundle) is taken.
    let mut seen = 0;
    let mut last_publish = Instant::now();
    publish(engine, stats, seen, &opts.metrics);
    // The run of packets waiting for one batch verdict: (last id, verdict, mark).
    let mut pending: Option<(u32, V, Option<u32>)> = None;
    let mut burst = 0u32;
    loop {
        let wait = pending.is_none();
        let Some(p) = q.recv(wait)? else {
            // Nothing more queued: settle the run, then the once-a-second work.
            settle(&mut q, pending.take(), stats)?;
            burst = 0;
            stats.overruns = q.overruns;
            periodic(
                engine,
                opts,
                eve,
                stats,
                seen,
                &mut last_publish,
                &mut last_stats,
            )?;
            continue;
        };
        if let Some(policy) = opts.reload.take_if_newer(&mut seen) {
            engine.set_policy(policy);
        }
        n += 1;
        stats.packets += 1;
        let (id, queued_mark) = (p.id, p.mark);
        let verdict = engine.handle(now_ns(), n, linktype::RAW, p.payload);
        let send = |to: IpAddr, pkt: &[u8], stats: &mut InlineStats| match inj.send(to, pkt) {
            Ok(()) => true,
            Err(_) => {
                stats.inject_errors += 1;
                false
            }
        };
        let this = match verdict {
            Verdict::Accept => {
                stats.accepted += 1;
                let mut mark = queued_mark | MARK_INSPECTED;
                if opts.bypass && engine.bypass() {
                    stats.bypassed += 1;
                    mark |= MARK_BYPASS;
                }
                (V::Accept, Some(mark))
            }
            Verdict::Drop => {
                stats.dropped += 1;
                (V::Drop, None)
            }
            Verdict::Reset => {
                stats.dropped += 1;
                if opts.reset {
                    for (to, pkt) in respond::tcp_resets(p.payload) {
                        if send(to, &pkt, stats) {
                            stats.resets_sent += 1;
                        }
                    }
                }
                (V::Drop, None)
            }
            Verdict::Sinkhole => {
                stats.dropped += 1;
                match respond::dns_answer(p.payload, opts.sinkhole) {
                    Some((to, pkt)) => {
                        if send(to, &pkt, stats) {
                            stats.sinkhole_answers += 1;
                        }
                    }
                    // DNS over TCP: reset the connection instead.
                    None => {
                        for (to, pkt) in respond::tcp_resets(p.payload) {
                            if send(to, &pkt, stats) {
                                stats.resets_sent += 1;
                            }
                        }
                    }
                }
                (V::Drop, None)
            }
        };
        // A different verdict or mark ends the run; so does a full burst.
        if pending.is_some_and(|(_, v, m)| (v, m) != this) {
            settle(&mut q, pending.take(), stats)?;
        }
        pending = Some((id, this.0, this.1));
        burst += 1;
        if burst >= MAX_BURST {
            settle(&mut q, pending.take(), stats)?;
            burst = 0;
        }
        periodic(
            engine,
            opts,
            eve,
            stats,
            seen,
            &mut last_publish,
            &mut last_stats,
        )?;
    }
}

/// Sends the batch verdict of a run of packets (every packet up to its last id), if any.
fn settle(
    q: &mut palisade_nfnl::Queue,
    run: Option<(u32, palisade_nfnl::Verdict, Option<u32>)>,
    stats: &mut InlineStats,
) -> std::io::Result<()> {
    if let Some((last, v, mark)) = run {
        q.verdict(last, v, mark, true)?;
        stats.verdict_messages += 1;
    }
    Ok(())
}

/// After each packet and when the queue is idle: events out, counters published once a second,
/// a `stats` event at its interval.
fn periodic(
    engine: &mut Engine,
    opts: &InlineOpts,
    eve: &mut dyn Write,
    stats: &InlineStats,
    seen: u64,
    last_publish: &mut Instant,
    last_stats: &mut Instant,
) -> std::io::Result<()> {
    if last_publish.elapsed() >= Duration::from_secs(1) {
        *last_publish = Instant::now();
        publish(engine, stats, seen, &opts.metrics);
    }
    if !opts.stats_interval.is_zero() && last_stats.elapsed() >= opts.stats_interval {
        *last_stats = Instant::now();
        engine.stats_event(now_ns());
    }
    if engine.pending_events() > 0 {
        let mut res = Ok(());
        engine.take_events(|b| res = eve.write_all(b));
        res?;
        eve.flush()?;
    }
    Ok(())
}
