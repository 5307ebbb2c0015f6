//! Event sinks, as Suricata's eve output offers them: a file reopened on SIGHUP (for
//! logrotate), syslog, a Unix socket (datagram or stream) and Redis (list, pub/sub channel or
//! stream), so Filebeat, Vector, Logstash or Wazuh read Palisade's events unchanged.
//!
//! Each sink runs on its own thread behind a bounded queue of event chunks (whole lines), so a
//! slow or absent consumer never stalls the packet path: on a node a full queue drops the chunk
//! and counts it; on the manager (`block = true`) it waits, and the nodes spool meanwhile.
//! Stream sinks (Redis, Unix stream) reconnect with backoff and resend the chunk in flight, so
//! they deliver in order and at least once; a datagram that cannot be sent is counted dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

/// Bumped by SIGHUP: every [`ReopeningFile`] reopens its path before its next write.
pub static REOPEN: AtomicU64 = AtomicU64::new(0);

/// What the bus calls with each chunk before the sinks (a node's spool).
pub type ChunkFn = Box<dyn FnMut(&[u8]) + Send>;

/// One sink's queue: (name, sender, counters).
type Out = (String, SyncSender<Arc<[u8]>>, Arc<SinkCounters>);

/// Chunks queued per sink.
pub const QUEUE: usize = 1024;

/// An append-only file that reopens its path after a SIGHUP (logrotate's `postrotate`).
#[derive(Debug)]
pub struct ReopeningFile {
    path: PathBuf,
    gen: u64,
    out: std::io::BufWriter<std::fs::File>,
}

impl ReopeningFile {
    /// Opens `path` for appending.
    pub fn open(path: &Path) -> std::io::Result<ReopeningFile> {
        Ok(ReopeningFile {
            path: path.to_path_buf(),
            gen: REOPEN.load(Ordering::Acquire),
            out: std::io::BufWriter::new(Self::file(path)?),
        })
    }

    fn file(path: &Path) -> std::io::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    }

    fn check(&mut self) -> std::io::Result<()> {
        let g = REOPEN.load(Ordering::Acquire);
        if g != self.gen {
            self.out.flush()?;
            self.out = std::io::BufWriter::new(Self::file(&self.path)?);
            self.gen = g;
        }
        Ok(())
    }
}

impl Write for ReopeningFile {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.check()?;
        self.out.write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// How events reach Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisMode {
    /// `LPUSH key event` (Suricata's `list`; consumers pop from the right).
    Lpush,
    /// `RPUSH key event`.
    Rpush,
    /// `PUBLISH key event` (Suricata's `channel`).
    Publish,
    /// `XADD key MAXLEN ~ 100000 * eve event` (Suricata's `stream`).
    Stream,
}

/// A sink as configured: `file:PATH`, `syslog[:FACILITY][@SOCKET]`, `unix-dgram:PATH`,
/// `unix-stream:PATH`, `redis://HOST:PORT/MODE/KEY` with MODE `list`, `lpush`, `rpush`,
/// `channel`, `publish` or `stream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkSpec {
    /// A file, reopened on SIGHUP.
    File(PathBuf),
    /// Syslog over its Unix socket (facility number, socket path).
    Syslog(u8, PathBuf),
    /// One datagram per event.
    UnixDgram(PathBuf),
    /// Lines over a stream socket.
    UnixStream(PathBuf),
    /// Redis: address, mode, key.
    Redis(String, RedisMode, String),
}

const FACILITIES: [(&str, u8); 12] = [
    ("user", 1),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

impl SinkSpec {
    /// Parses a sink; the error says what was expected.
    pub fn parse(s: &str) -> Result<SinkSpec, String> {
        let bad = |what: &str| Err(format!("sink `{s}`: {what}"));
        if let Some(p) = s.strip_prefix("file:") {
            return Ok(SinkSpec::File(p.into()));
        }
        if let Some(rest) = s.strip_prefix("syslog") {
            let (fac, sock) = match rest.split_once('@') {
                Some((f, p)) => (f, PathBuf::from(p)),
                None => (rest, PathBuf::from("/dev/log")),
            };
            let fac = fac.strip_prefix(':').unwrap_or(fac);
            let fac = if fac.is_empty() { "local5" } else { fac };
            return match FACILITIES.iter().find(|(n, _)| *n == fac) {
                Some(&(_, n)) => Ok(SinkSpec::Syslog(n, sock)),
                None => bad("unknown syslog facility (user, daemon, auth, syslog, local0..local7)"),
            };
        }
        if let Some(p) = s.strip_prefix("unix-dgram:") {
            return Ok(SinkSpec::UnixDgram(p.into()));
        }
        if let Some(p) = s.strip_prefix("unix-stream:") {
            return Ok(SinkSpec::UnixStream(p.into()));
        }
        if let Some(rest) = s.strip_prefix("redis://") {
            let mut it = rest.splitn(3, '/');
            let (Some(addr), Some(mode), Some(key)) = (it.next(), it.next(), it.next()) else {
                return bad("expected redis://HOST:PORT/MODE/KEY");
            };
            let mode = match mode {
                "list" | "lpush" => RedisMode::Lpush,
                "rpush" => RedisMode::Rpush,
                "channel" | "publish" => RedisMode::Publish,
                "stream" | "xadd" => RedisMode::Stream,
                _ => return bad("mode must be list, lpush, rpush, channel, publish or stream"),
            };
            if key.is_empty() || addr.is_empty() {
                return bad("expected redis://HOST:PORT/MODE/KEY");
            }
            let addr = if addr.contains(':') {
                addr.to_string()
            } else {
                format!("{addr}:6379")
            };
            return Ok(SinkSpec::Redis(addr, mode, key.to_string()));
        }
        bad("expected file:PATH, syslog[:FACILITY][@SOCKET], unix-dgram:PATH, unix-stream:PATH or redis://HOST:PORT/MODE/KEY")
    }
}

/// Counters of one sink.
#[derive(Debug, Default)]
pub struct SinkCounters {
    /// Events handed to the consumer.
    pub delivered: AtomicU64,
    /// Events dropped: queue full, or a datagram that could not be sent.
    pub dropped: AtomicU64,
    /// Errors: failed connections, writes, error replies.
    pub errors: AtomicU64,
}

/// The running sinks.
#[derive(Debug)]
pub struct Sinks {
    outs: Vec<Out>,
    threads: Vec<std::thread::JoinHandle<()>>,
    block: bool,
}

fn lines(chunk: &[u8]) -> impl Iterator<Item = &[u8]> {
    chunk.split(|&b| b == b'\n').filter(|l| !l.is_empty())
}

impl Sinks {
    /// Starts a thread per sink. `block`: a full queue waits instead of dropping.
    pub fn start(specs: &[SinkSpec], block: bool) -> Result<Sinks, String> {
        let mut outs = Vec::new();
        let mut threads = Vec::new();
        for spec in specs {
            let (tx, rx) = sync_channel::<Arc<[u8]>>(QUEUE);
            let c = Arc::new(SinkCounters::default());
            let mut worker = Worker::new(spec.clone(), c.clone())?;
            let name = format!("{spec:?}");
            threads.push(
                std::thread::Builder::new()
                    .name("palisade-sink".into())
                    .spawn(move || worker.run(rx))
                    .map_err(|e| e.to_string())?,
            );
            outs.push((name, tx, c));
        }
        Ok(Sinks {
            outs,
            threads,
            block,
        })
    }

    /// Waits until every sink has delivered what it was given, at most `limit` (a sink whose
    /// consumer is gone keeps retrying until then). Returns the counters and whether every sink
    /// finished.
    pub fn finish(self, limit: Duration) -> (Vec<(String, u64, u64, u64)>, bool) {
        let Sinks { outs, threads, .. } = self;
        let counters: Vec<(String, Arc<SinkCounters>)> =
            outs.into_iter().map(|(n, _, c)| (n, c)).collect();
        let deadline = std::time::Instant::now() + limit;
        while !threads.iter().all(|t| t.is_finished()) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let done = threads.iter().all(|t| t.is_finished());
        let counters = counters
            .into_iter()
            .map(|(n, c)| {
                (
                    n,
                    c.delivered.load(Ordering::Relaxed),
                    c.dropped.load(Ordering::Relaxed),
                    c.errors.load(Ordering::Relaxed),
                )
            })
            .collect();
        (counters, done)
    }

    /// No sinks.
    pub fn is_empty(&self) -> bool {
        self.outs.is_empty()
    }

    /// Hands a chunk of whole event lines to every sink.
    pub fn send(&self, chunk: Arc<[u8]>) {
        for (_, tx, c) in &self.outs {
            if self.block {
                let _ = tx.send(chunk.clone());
            } else if let Err(TrySendError::Full(ch)) = tx.try_send(chunk.clone()) {
                c.dropped
                    .fetch_add(lines(&ch).count() as u64, Ordering::Relaxed);
            }
        }
    }

    /// (sink, delivered, dropped, errors).
    pub fn counters(&self) -> Vec<(String, u64, u64, u64)> {
        self.outs
            .iter()
            .map(|(n, _, c)| {
                (
                    n.clone(),
                    c.delivered.load(Ordering::Relaxed),
                    c.dropped.load(Ordering::Relaxed),
                    c.errors.load(Ordering::Relaxed),
                )
            })
            .collect()
    }
}

enum Conn {
    None,
    File(ReopeningFile),
    Dgram(std::os::unix::net::UnixDatagram),
    Stream(std::os::unix::net::UnixStream),
    Redis(BufReader<std::net::TcpStream>),
}

struct Worker {
    spec: SinkSpec,
    c: Arc<SinkCounters>,
    conn: Conn,
    cmd: Vec<u8>,
    pid: u32,
    logged: u64,
}

impl Worker {
    fn new(spec: SinkSpec, c: Arc<SinkCounters>) -> Result<Worker, String> {
        let conn = match &spec {
            SinkSpec::File(p) => {
                Conn::File(ReopeningFile::open(p).map_err(|e| format!("{}: {e}", p.display()))?)
            }
            _ => Conn::None,
        };
        Ok(Worker {
            spec,
            c,
            conn,
            cmd: Vec::new(),
            pid: std::process::id(),
            logged: 0,
        })
    }

    fn complain(&mut self, what: &str) {
        self.c.errors.fetch_add(1, Ordering::Relaxed);
        // The first few and then every 1000th, so a dead consumer does not flood stderr.
        self.logged += 1;
        if self.logged <= 5 || self.logged.is_multiple_of(1000) {
            eprintln!("palisade: sink {:?}: {what}", self.spec);
        }
    }

    fn run(&mut self, rx: Receiver<Arc<[u8]>>) {
        while let Ok(chunk) = rx.recv() {
            let mut backoff = Duration::from_millis(50);
            loop {
                match self.deliver(&chunk) {
                    Ok(()) => break,
                    Err(e) => {
                        self.conn = Conn::None;
                        self.complain(&e);
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
                }
            }
        }
        if let Conn::File(f) = &mut self.conn {
            let _ = f.flush();
        }
    }

    fn connect(&mut self) -> Result<(), String> {
        if !matches!(self.conn, Conn::None) {
            return Ok(());
        }
        self.conn = match &self.spec {
            SinkSpec::File(p) => Conn::File(ReopeningFile::open(p).map_err(|e| e.to_string())?),
            SinkSpec::Syslog(_, p) | SinkSpec::UnixDgram(p) => {
                let s = std::os::unix::net::UnixDatagram::unbound().map_err(|e| e.to_string())?;
                s.connect(p).map_err(|e| format!("{}: {e}", p.display()))?;
                Conn::Dgram(s)
            }
            SinkSpec::UnixStream(p) => Conn::Stream(
                std::os::unix::net::UnixStream::connect(p)
                    .map_err(|e| format!("{}: {e}", p.display()))?,
            ),
            SinkSpec::Redis(addr, ..) => {
                let s = std::net::TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
                let _ = s.set_nodelay(true);
                s.set_read_timeout(Some(Duration::from_secs(10)))
                    .map_err(|e| e.to_string())?;
                Conn::Redis(BufReader::new(s))
            }
        };
        Ok(())
    }

    /// Delivers a whole chunk, or fails (the caller reconnects and calls again). Datagram
    /// sinks never fail: an event that cannot be sent is counted dropped.
    fn deliver(&mut self, chunk: &[u8]) -> Result<(), String> {
        let n = lines(chunk).count() as u64;
        if let Err(e) = self.connect() {
            if matches!(self.spec, SinkSpec::Syslog(..) | SinkSpec::UnixDgram(_)) {
                self.c.dropped.fetch_add(n, Ordering::Relaxed);
                self.complain(&e);
                return Ok(());
            }
            return Err(e);
        }
        let pid = self.pid;
        match (&mut self.conn, &self.spec) {
            (Conn::File(f), _) => {
                f.write_all(chunk)
                    .and_then(|_| f.flush())
                    .map_err(|e| e.to_string())?;
            }
            (Conn::Dgram(s), spec) => {
                let mut dropped = 0;
                let mut msg = Vec::new();
                for l in lines(chunk) {
                    msg.clear();
                    if let SinkSpec::Syslog(fac, _) = spec {
                        // RFC 3164 as glibc sends it to the local socket; severity info.
                        let _ = write!(msg, "<{}>palisade[{pid}]: ", *fac as u32 * 8 + 6);
                    }
                    msg.extend_from_slice(l);
                    if s.send(&msg).is_err() {
                        dropped += 1;
                    }
                }
                self.c.dropped.fetch_add(dropped, Ordering::Relaxed);
                self.c.delivered.fetch_add(n - dropped, Ordering::Relaxed);
                if dropped > 0 {
                    self.conn = Conn::None;
                    self.complain(&format!("{dropped} events not sent"));
                }
                return Ok(());
            }
            (Conn::Stream(s), _) => s.write_all(chunk).map_err(|e| e.to_string())?,
            (Conn::Redis(r), SinkSpec::Redis(_, mode, key)) => {
                self.cmd.clear();
                for l in lines(chunk) {
                    let args: &[&[u8]] = match mode {
                        RedisMode::Lpush => &[b"LPUSH", key.as_bytes(), l],
                        RedisMode::Rpush => &[b"RPUSH", key.as_bytes(), l],
                        RedisMode::Publish => &[b"PUBLISH", key.as_bytes(), l],
                        RedisMode::Stream => &[
                            b"XADD",
                            key.as_bytes(),
                            b"MAXLEN",
                            b"~",
                            b"100000",
                            b"*",
                            b"eve",
                            l,
                        ],
                    };
                    resp_command(&mut self.cmd, args);
                }
                r.get_mut()
                    .write_all(&self.cmd)
                    .map_err(|e| e.to_string())?;
                let mut errors = Vec::new();
                for _ in 0..n {
                    if let Some(e) = resp_reply(r)? {
                        errors.push(e);
                    }
                }
                for e in errors {
                    self.complain(&format!("redis refused an event: {e}"));
                }
            }
            (Conn::None | Conn::Redis(_), _) => return Err("not connected".into()),
        }
        self.c.delivered.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }
}

/// Appends a RESP array of bulk strings.
pub fn resp_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    let _ = write!(out, "*{}\r\n", args.len());
    for a in args {
        let _ = write!(out, "${}\r\n", a.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Reads one RESP reply: `Ok(None)` for success, `Ok(Some(message))` for an error reply,
/// `Err` when the connection failed or the reply is malformed. Nested replies are read whole.
pub fn resp_reply<R: BufRead>(r: &mut R) -> Result<Option<String>, String> {
    let mut line = Vec::new();
    let mut pending = 1u64;
    let mut err = None;
    while pending > 0 {
        pending -= 1;
        line.clear();
        let n = r
            .by_ref()
            .take(64 << 10)
            .read_until(b'\n', &mut line)
            .map_err(|e| e.to_string())?;
        if n < 3 || !line.ends_with(b"\r\n") {
            return Err("redis closed the connection or sent a malformed reply".into());
        }
        let body = &line[1..line.len() - 2];
        let num = || -> Result<i64, String> {
            std::str::from_utf8(body)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| "malformed redis reply".to_string())
        };
        match line[0] {
            b'+' | b':' => {}
            b'-' => err = Some(String::from_utf8_lossy(body).into_owned()),
            b'$' => {
                let len = num()?;
                if len > 512 << 20 {
                    return Err("redis reply too long".into());
                }
                if len >= 0 {
                    // Skipped without holding it: a reply's size is the server's to choose.
                    let want = len as u64 + 2;
                    let got = std::io::copy(&mut r.by_ref().take(want), &mut std::io::sink())
                        .map_err(|e| e.to_string())?;
                    if got != want {
                        return Err("redis closed the connection mid-reply".into());
                    }
                }
            }
            b'*' => pending += num()?.max(0) as u64,
            _ => return Err("malformed redis reply".into()),
        }
    }
    Ok(err)
}

/// The event bus of a long-running command: workers hand it whole event lines through
/// [`BusWriter`]s (a bounded queue; a full one drops and counts, never blocks the packet path),
/// one thread passes each chunk to `first` (a node's spool) and then to the sinks.
#[derive(Debug, Clone)]
pub struct Bus {
    tx: SyncSender<Vec<u8>>,
    /// Event lines dropped because the bus was full.
    pub dropped: Arc<AtomicU64>,
}

impl Bus {
    /// Starts the bus thread.
    pub fn start(mut first: Option<ChunkFn>, sinks: Sinks) -> Bus {
        let (tx, rx) = sync_channel::<Vec<u8>>(QUEUE * 4);
        std::thread::Builder::new()
            .name("palisade-bus".into())
            .spawn(move || {
                while let Ok(chunk) = rx.recv() {
                    if let Some(f) = first.as_mut() {
                        f(&chunk);
                    }
                    if !sinks.is_empty() {
                        sinks.send(Arc::from(chunk));
                    }
                }
            })
            .ok();
        Bus {
            tx,
            dropped: Arc::default(),
        }
    }

    /// A writer for one worker.
    pub fn writer(&self) -> BusWriter {
        BusWriter {
            buf: Vec::new(),
            bus: self.clone(),
        }
    }
}

/// A worker's side of the bus: bytes written are sent, whole lines at a time, on flush.
#[derive(Debug)]
pub struct BusWriter {
    buf: Vec<u8>,
    bus: Bus,
}

impl Write for BusWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        let Some(end) = self.buf.iter().rposition(|&b| b == b'\n') else {
            return Ok(());
        };
        let rest = self.buf.split_off(end + 1);
        let chunk = std::mem::replace(&mut self.buf, rest);
        if let Err(TrySendError::Full(c) | TrySendError::Disconnected(c)) =
            self.bus.tx.try_send(chunk)
        {
            self.bus
                .dropped
                .fetch_add(lines(&c).count() as u64, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Writes to two outputs (a worker's eve file and the bus).
#[derive(Debug)]
pub struct Tee<A, B>(pub A, pub B);

impl<A: Write, B: Write> Write for Tee<A, B> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.write_all(b)?;
        self.1.write_all(b)?;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()?;
        self.1.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_errors_say_what_was_expected() {
        assert_eq!(
            SinkSpec::parse("redis://127.0.0.1:6380/stream/eve").unwrap(),
            SinkSpec::Redis("127.0.0.1:6380".into(), RedisMode::Stream, "eve".into())
        );
        assert_eq!(
            SinkSpec::parse("redis://localhost/list/suricata").unwrap(),
            SinkSpec::Redis("localhost:6379".into(), RedisMode::Lpush, "suricata".into())
        );
        assert_eq!(
            SinkSpec::parse("syslog").unwrap(),
            SinkSpec::Syslog(21, "/dev/log".into())
        );
        assert_eq!(
            SinkSpec::parse("syslog:daemon@/tmp/s").unwrap(),
            SinkSpec::Syslog(3, "/tmp/s".into())
        );
        assert!(SinkSpec::parse("redis://h/queue/k")
            .unwrap_err()
            .contains("mode must be"));
        assert!(SinkSpec::parse("kafka://x")
            .unwrap_err()
            .contains("expected file:PATH"));
        assert!(SinkSpec::parse("syslog:kern").is_err());
    }

    #[test]
    fn resp_replies_are_read_whole_and_bounded() {
        let mut c = Vec::new();
        resp_command(&mut c, &[b"LPUSH", b"k", b"{\"a\":1}"]);
        assert_eq!(c, b"*3\r\n$5\r\nLPUSH\r\n$1\r\nk\r\n$7\r\n{\"a\":1}\r\n");
        let replies =
            b":1\r\n$15\r\n1700000000000-0\r\n-WRONGTYPE no\r\n*2\r\n$1\r\na\r\n:3\r\n+OK\r\n";
        let mut r = &replies[..];
        assert_eq!(resp_reply(&mut r).unwrap(), None);
        assert_eq!(resp_reply(&mut r).unwrap(), None);
        assert_eq!(resp_reply(&mut r).unwrap().unwrap(), "WRONGTYPE no");
        assert_eq!(resp_reply(&mut r).unwrap(), None);
        assert_eq!(resp_reply(&mut r).unwrap(), None);
        assert!(resp_reply(&mut r).is_err());
        // Found by the fleet fuzz target: an empty line.
        assert!(resp_reply(&mut &b"\r\n"[..]).is_err());
        assert!(resp_reply(&mut &b"$5\r\nab"[..]).is_err());
        for n in 0..replies.len() {
            let mut r = &replies[..n];
            while resp_reply(&mut r).is_ok() {}
        }
    }

    #[test]
    fn file_sink_reopens_after_sighup_rotation() {
        let d = std::env::temp_dir().join(format!("palisade-sink-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("eve.json");
        let mut f = ReopeningFile::open(&p).unwrap();
        f.write_all(b"{\"n\":1}\n").unwrap();
        f.flush().unwrap();
        std::fs::rename(&p, d.join("eve.json.1")).unwrap();
        f.write_all(b"{\"n\":2}\n").unwrap();
        f.flush().unwrap();
        REOPEN.fetch_add(1, Ordering::AcqRel);
        f.write_all(b"{\"n\":3}\n").unwrap();
        f.flush().unwrap();
        assert_eq!(
            std::fs::read_to_string(d.join("eve.json.1")).unwrap(),
            "{\"n\":1}\n{\"n\":2}\n"
        );
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\"n\":3}\n");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
