//! Offline replay: capture files in order as one timeline through the engine, eve lines out.
//! This is a shell: it owns the files and the clock-free loop, the engine does the work.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::capture::{CaptureError, CaptureReader};
use crate::engine::{Engine, Verdict, EVENT_TYPES};

/// Where events go.
#[derive(Debug)]
pub enum EveOut {
    /// A file (created or truncated).
    File(PathBuf),
    /// Standard output.
    Stdout,
    /// Kept in memory (tests).
    Memory,
    /// Dropped (when only the engine's taps or counters are wanted).
    Discard,
}

/// Replay settings beyond the engine's.
#[derive(Debug)]
pub struct ReplayOpts {
    /// Files, read in order as one timeline.
    pub files: Vec<PathBuf>,
    /// Event destination.
    pub eve: EveOut,
    /// A `stats` event every this many seconds of capture time (0: only at the end).
    pub stats_interval_s: u64,
    /// Show a progress bar (only when stderr is a terminal and the input is large).
    pub progress: bool,
}

/// What a replay did.
#[derive(Debug, Default)]
pub struct Summary {
    /// Packets read.
    pub packets: u64,
    /// Bytes read (captured lengths).
    pub bytes: u64,
    /// Wall time of the packet loop.
    pub elapsed: Duration,
    /// Packets an inline filter would have dropped, reset or sinkholed.
    pub verdicts_blocked: u64,
    /// Events kept in memory (with `EveOut::Memory`).
    pub events: Vec<u8>,
    /// The first capture error, if any: (file, error). Everything before it was processed.
    pub error: Option<(PathBuf, CaptureError)>,
}

/// Runs the replay. I/O errors on the eve output are returned; capture faults end the input
/// early and are reported in [`Summary::error`] after everything before them was processed.
pub fn run(engine: &mut Engine, opts: &ReplayOpts) -> std::io::Result<Summary> {
    let mut sink: Box<dyn Write> = match &opts.eve {
        EveOut::File(p) => Box::new(std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(p)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", p.display())))?,
        )),
        EveOut::Stdout => Box::new(std::io::BufWriter::with_capacity(
            1 << 16,
            std::io::stdout().lock(),
        )),
        EveOut::Memory | EveOut::Discard => Box::new(std::io::sink()),
    };
    let mut mem = Vec::new();
    let keep = matches!(opts.eve, EveOut::Memory);
    let total_size: u64 = opts
        .files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let show = opts.progress && std::io::stderr().is_terminal() && total_size > (64 << 20);
    let mut s = Summary::default();
    let start = Instant::now();
    // The first frame is drawn at the first check, then at most four a second.
    let mut last_draw = start.checked_sub(Duration::from_secs(1)).unwrap_or(start);
    let mut read_bytes = 0u64;
    let mut pkt_no = 0u64;
    let mut next_stats: Option<i64> = None;
    let mut io_err: Option<std::io::Error> = None;
    let flush = |engine: &mut Engine,
                 sink: &mut dyn Write,
                 mem: &mut Vec<u8>,
                 io_err: &mut Option<std::io::Error>| {
        engine.take_events(|b| {
            if keep {
                mem.extend_from_slice(b);
            } else if io_err.is_none() {
                if let Err(e) = sink.write_all(b) {
                    *io_err = Some(e);
                }
            }
        });
    };
    'files: for path in &opts.files {
        let mut rdr = match CaptureReader::open(path) {
            Ok(r) => r,
            Err(e) => {
                s.error = Some((path.clone(), e));
                break;
            }
        };
        loop {
            let p = match rdr.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => {
                    s.error = Some((path.clone(), e));
                    break 'files;
                }
            };
            pkt_no += 1;
            s.packets += 1;
            s.bytes += p.data.len() as u64;
            read_bytes += p.data.len() as u64 + 16;
            let ts = p.ts_ns;
            if engine.handle(ts, pkt_no, p.linktype, p.data) != Verdict::Accept {
                s.verdicts_blocked += 1;
            }
            if opts.stats_interval_s > 0 {
                let iv = opts.stats_interval_s as i64 * 1_000_000_000;
                let due = *next_stats.get_or_insert(ts + iv);
                if ts >= due {
                    engine.stats_event(ts);
                    next_stats = Some(ts + iv);
                }
            }
            if engine.pending_events() > (256 << 10) {
                flush(engine, &mut *sink, &mut mem, &mut io_err);
            }
            if show
                && pkt_no.is_multiple_of(4096)
                && last_draw.elapsed() > Duration::from_millis(250)
            {
                last_draw = Instant::now();
                draw_progress(read_bytes, total_size, s.packets, start.elapsed());
            }
        }
    }
    engine.finish_with(|e| flush(e, &mut *sink, &mut mem, &mut io_err));
    s.elapsed = start.elapsed();
    if show {
        eprint!("\r{:79}\r", "");
    }
    if let Some(e) = io_err {
        return Err(e);
    }
    sink.flush()?;
    s.events = mem;
    Ok(s)
}

fn draw_progress(done: u64, total: u64, pkts: u64, t: Duration) {
    let frac = (done as f64 / total.max(1) as f64).min(1.0);
    let w = 30;
    let filled = (frac * w as f64) as usize;
    let rate = done as f64 / t.as_secs_f64().max(1e-9) / 1e6;
    eprint!(
        "\r[{}{}] {:3.0}% {} packets {:.0} MB/s ",
        "=".repeat(filled),
        " ".repeat(w - filled),
        frac * 100.0,
        pkts,
        rate
    );
}

/// A detector's summary line: `  NAME (SETTINGS[, blocking]): COUNTS[, N later WHAT blocked]`,
/// the blocked count when its blocking is on.
fn detector_line(
    out: &mut String,
    name: &str,
    settings: std::fmt::Arguments<'_>,
    block: bool,
    counts: std::fmt::Arguments<'_>,
    (blocked, what): (u64, &str),
) {
    use std::fmt::Write as _;
    let _ = write!(out, "  {name} ({settings}");
    if block {
        out.push_str(", blocking");
    }
    let _ = write!(out, "): {counts}");
    if block {
        let _ = write!(out, ", {blocked} later {what} blocked");
    }
    out.push('\n');
}

/// The end-of-run summary printed on stderr.
pub fn format_summary(engine: &Engine, s: &Summary, eve: &str) -> String {
    let st = &engine.stats;
    let secs = s.elapsed.as_secs_f64().max(1e-9);
    let mut out = String::new();
    out.push_str(&format!(
        "palisade replay: {} packets, {} bytes, {} flows in {:.3} s ({:.0} packets/s, {:.3} Gbit/s)\n",
        s.packets,
        s.bytes,
        engine.flows_created(),
        secs,
        s.packets as f64 / secs,
        s.bytes as f64 * 8.0 / secs / 1e9
    ));
    out.push_str("  events:");
    for (i, t) in EVENT_TYPES.iter().enumerate() {
        out.push_str(&format!(" {t} {}", st.events[i]));
    }
    out.push('\n');
    out.push_str(&format!(
        "  alerts: {} blocked, {} allowed; packets an inline filter would stop: {}\n",
        st.alerts_blocked, st.alerts_allowed, s.verdicts_blocked
    ));
    match engine.names() {
        Some(n) => out.push_str(&format!(
            "  names: {} scored with {} ({} lookups from the cache; {}), {} at or above the alert threshold {:.6}\n",
            st.names_scored,
            n.model.version(),
            engine.name_cache_hits(),
            if n.shadow { "shadow" } else { "alerting" },
            st.names_alerted,
            n.alert
        )),
        None => out.push_str("  names: scoring off\n"),
    }
    if engine.names().is_some() {
        match engine.name_burst() {
            Some(b) => detector_line(
                &mut out,
                "NXDOMAIN bursts",
                format_args!("{} names in {} s", b.count, b.window_ns / 1_000_000_000),
                b.block,
                format_args!(
                    "{} alerted, {} suspicious NXDOMAIN names recorded",
                    st.name_bursts, st.name_burst_names
                ),
                (st.name_burst_blocked, "names"),
            ),
            None => out.push_str("  NXDOMAIN bursts: off\n"),
        }
    }
    match engine.beacon() {
        Some(b) => detector_line(
            &mut out,
            "beacons",
            format_args!(
                "from the {}th connection, median gap at least {} s",
                b.count,
                b.min_interval_ns / 1_000_000_000
            ),
            b.block,
            format_args!(
                "{} alerted, {} connections followed",
                st.beacons,
                engine.beacon_starts()
            ),
            (st.beacon_blocked, "connections"),
        ),
        None => out.push_str("  beacons: off\n"),
    }
    match engine.dns_tunnel() {
        Some(t) => detector_line(
            &mut out,
            "DNS tunnels",
            format_args!(
                "{} payload bytes in {} s",
                t.bytes,
                t.window_ns / 1_000_000_000
            ),
            t.block,
            format_args!(
                "{} alerted, {} query names counted",
                st.dns_tunnels,
                engine.dns_tunnel_names()
            ),
            (st.dns_tunnel_blocked, "queries"),
        ),
        None => out.push_str("  DNS tunnels: off\n"),
    }
    match engine.flow_model() {
        Some(f) => out.push_str(&format!(
            "  flows: {} scored with {} ({}), {} at or above the alert threshold {:.6}\n",
            st.flows_scored,
            f.model.version(),
            if f.shadow {
                "shadow: scores logged only"
            } else {
                "alerting"
            },
            st.flows_alerted,
            f.alert
        )),
        None => out.push_str("  flows: scoring off\n"),
    }
    let mut an: Vec<_> = st.anomalies.clone();
    an.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    out.push_str(&format!("  anomalies: {}", st.anomaly_total()));
    for (n, c) in an.iter().take(8) {
        out.push_str(&format!(" [{n} {c}]"));
    }
    out.push('\n');
    let (used, cap) = engine.memory();
    out.push_str(&format!(
        "  memory: {} of {} bytes held at the end; eve: {eve}\n",
        used, cap
    ));
    out
}
