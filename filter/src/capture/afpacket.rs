//! Passive capture from an interface (AF_PACKET through pnet): the IDS deployment. Every frame
//! goes through the same engine; verdicts are only logged (alerts say `allowed`, since nothing
//! can be stopped from a copy of the traffic).

use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pnet_datalink::{self as datalink, Channel, Config};

use crate::capture::linktype;
use crate::engine::Engine;

/// Captures on `iface` until `limit` packets (0: no limit) or an error; events go to `eve`.
/// A policy published to `reload` (a fleet bundle) is taken before the next frame.
pub fn run(
    engine: &mut Engine,
    iface: &str,
    limit: u64,
    stats_interval: Duration,
    eve: &mut dyn Write,
    reload: &crate::capture::nfqueue::Reloadable,
) -> std::io::Result<u64> {
    let ifaces = datalink::interfaces();
    let Some(ni) = ifaces.iter().find(|i| i.name == iface) else {
        let names: Vec<&str> = ifaces.iter().map(|i| i.name.as_str()).collect();
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no interface `{iface}` (have: {})", names.join(", ")),
        ));
    };
    let cfg = Config {
        read_timeout: Some(Duration::from_millis(200)),
        read_buffer_size: 1 << 16,
        promiscuous: true,
        ..Config::default()
    };
    let mut rx = match datalink::channel(ni, cfg)? {
        Channel::Ethernet(_tx, rx) => rx,
        _ => return Err(std::io::Error::other("unsupported channel type")),
    };
    eprintln!("palisade capture: listening on {iface}");
    let mut n = 0u64;
    let mut last_stats = Instant::now();
    let mut seen = 0;
    loop {
        if let Some(policy) = reload.take_if_newer(&mut seen) {
            engine.set_policy(policy);
        }
        match rx.next() {
            Ok(frame) => {
                n += 1;
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as i64);
                engine.handle(now, n, linktype::ETHERNET, frame);
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => return Err(e),
        }
        if !stats_interval.is_zero() && last_stats.elapsed() >= stats_interval {
            last_stats = Instant::now();
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as i64);
            engine.stats_event(now);
        }
        if engine.pending_events() > 0 {
            let mut res = Ok(());
            engine.take_events(|b| res = eve.write_all(b));
            res?;
            eve.flush()?;
        }
        if limit > 0 && n >= limit {
            engine.finish();
            let mut res = Ok(());
            engine.take_events(|b| res = eve.write_all(b));
            res?;
            eve.flush()?;
            return Ok(n);
        }
    }
}
