//! Event sinks against real consumers: redis-server (list, rpush, stream and pub/sub channel,
//! with Redis started only after Palisade began sending), a syslog socket, and Unix datagram
//! and stream listeners. Every event of the eve file must arrive, in order. redis-server and
//! redis-cli are needed; with CI=true their absence fails the test.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_palisade");

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("palisade-sinks-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The suricata-verify captures, replayed as one timeline: a few hundred varied events.
fn inputs() -> Option<Vec<PathBuf>> {
    let data = common::shared_data()?;
    let v = common::captures(&data.join("pcaps/suricata-verify"));
    assert!(v.len() > 50);
    Some(v)
}

fn replay(files: &[PathBuf], eve: &Path, sinks: &[String]) -> std::process::Child {
    let mut c = Command::new(BIN);
    c.arg("replay").args(files).arg("--eve").arg(eve);
    for s in sinks {
        c.args(["--sink", s]);
    }
    c.stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(mut c: Child, limit: Duration) -> String {
    let t = Instant::now();
    loop {
        if let Some(st) = c.try_wait().unwrap() {
            let mut err = String::new();
            c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            assert!(st.success(), "replay failed: {err}");
            return err;
        }
        if t.elapsed() > limit {
            let _ = c.kill();
            panic!("replay with sinks did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Equal sequences, or the first difference (not the whole of both).
fn same(got: &[String], want: &[String], what: &str) {
    if let Some(i) = (0..got.len().min(want.len())).find(|&i| got[i] != want[i]) {
        panic!(
            "{what}: event {i} differs:\n got {}\nwant {}",
            got[i], want[i]
        );
    }
    assert_eq!(got.len(), want.len(), "{what}: event counts");
}

struct Redis {
    child: Child,
    port: u16,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Redis {
    fn cli(&self, args: &[&str]) -> String {
        let o = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "--raw"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    }
}

fn start_redis(dir: &Path, port: u16) -> Redis {
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir.display().to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let r = Redis { child, port };
    let t = Instant::now();
    while r.cli(&["PING"]).trim() != "PONG" {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "redis-server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    r
}

fn have(tool: &str) -> bool {
    let ok = common::have_tool(tool);
    assert!(
        ok || std::env::var("CI").is_err(),
        "CI=true but {tool} is missing"
    );
    ok
}

#[test]
fn redis_list_stream_and_channel_get_every_event_in_order() {
    if !have("redis-server") || !have("redis-cli") {
        return;
    }
    let Some(files) = inputs() else { return };
    let d = tmp("redis");
    let port = 20000 + (std::process::id() % 20000) as u16;
    let url = |mode: &str, key: &str| format!("redis://127.0.0.1:{port}/{mode}/{key}");
    // Palisade starts first: the sinks retry until Redis is up, losing nothing.
    let eve = d.join("eve.json");
    let c = replay(
        &files,
        &eve,
        &[
            url("list", "evl"),
            url("rpush", "evr"),
            url("stream", "evs"),
        ],
    );
    std::thread::sleep(Duration::from_millis(800));
    let redis = start_redis(&d, port);
    let err = finish(c, Duration::from_secs(60));
    let want = lines(&eve);
    assert!(want.len() > 300, "{} events", want.len());
    assert!(err.contains("events delivered"), "{err}");

    // LPUSH (Suricata's list mode): the newest first.
    let mut got: Vec<String> = redis
        .cli(&["LRANGE", "evl", "0", "-1"])
        .lines()
        .map(str::to_string)
        .collect();
    got.reverse();
    same(&got, &want, "list");
    let got: Vec<String> = redis
        .cli(&["LRANGE", "evr", "0", "-1"])
        .lines()
        .map(str::to_string)
        .collect();
    same(&got, &want, "rpush");
    // XADD: id, field `eve`, the event, in order.
    let raw = redis.cli(&["XRANGE", "evs", "-", "+"]);
    let got: Vec<String> = raw
        .lines()
        .collect::<Vec<_>>()
        .chunks(3)
        .map(|c| {
            assert_eq!(c[1], "eve");
            c[2].to_string()
        })
        .collect();
    same(&got, &want, "stream");

    // Pub/sub: a subscriber that is listening gets every event (a RESP subscriber here, so
    // nothing sits in a client's output buffer).
    let mut sub = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::io::Write::write_all(&mut sub, b"*2\r\n$9\r\nSUBSCRIBE\r\n$3\r\nevc\r\n").unwrap();
    sub.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut r = std::io::BufReader::new(sub);
    let mut bulk = || -> Option<String> {
        use std::io::BufRead;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if let Some(n) = line.trim_end().strip_prefix('$') {
                let mut b = vec![0u8; n.parse::<usize>().ok()? + 2];
                r.read_exact(&mut b).ok()?;
                b.truncate(b.len() - 2);
                return Some(String::from_utf8(b).unwrap());
            }
        }
    };
    assert_eq!(bulk().as_deref(), Some("subscribe"));
    assert_eq!(bulk().as_deref(), Some("evc"));
    let eve2 = d.join("eve2.json");
    let c = replay(&files, &eve2, &[url("channel", "evc")]);
    let mut msgs = Vec::new();
    while let (Some(kind), Some(chan), Some(payload)) = (bulk(), bulk(), bulk()) {
        assert_eq!((kind.as_str(), chan.as_str()), ("message", "evc"));
        msgs.push(payload);
        if msgs.len() == want.len() {
            break;
        }
    }
    finish(c, Duration::from_secs(60));
    same(&msgs, &lines(&eve2), "channel");
    drop(redis);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn syslog_and_unix_socket_sinks_get_every_event_in_order() {
    use std::os::unix::net::{UnixDatagram, UnixListener};
    let Some(files) = inputs() else { return };
    let d = tmp("unix");
    let syslog = UnixDatagram::bind(d.join("log")).unwrap();
    let dgram = UnixDatagram::bind(d.join("dgram")).unwrap();
    let stream = UnixListener::bind(d.join("stream")).unwrap();
    // Datagram sockets hold a bounded backlog: read them while the replay runs.
    let reader = |s: UnixDatagram| {
        std::thread::spawn(move || {
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let mut got = Vec::new();
            let mut buf = vec![0u8; 1 << 20];
            while let Ok(n) = s.recv(&mut buf) {
                got.push(String::from_utf8_lossy(&buf[..n]).to_string());
            }
            got
        })
    };
    let (sys_t, dgram_t) = (reader(syslog), reader(dgram));
    let stream_t = std::thread::spawn(move || {
        let (mut c, _) = stream.accept().unwrap();
        let mut s = String::new();
        c.read_to_string(&mut s).unwrap();
        s
    });
    let eve = d.join("eve.json");
    finish(
        replay(
            &files,
            &eve,
            &[
                format!("syslog:local5@{}", d.join("log").display()),
                format!("unix-dgram:{}", d.join("dgram").display()),
                format!("unix-stream:{}", d.join("stream").display()),
            ],
        ),
        Duration::from_secs(60),
    );
    let want = lines(&eve);
    let sys = sys_t.join().unwrap();
    assert_eq!(sys.len(), want.len());
    for (g, w) in sys.iter().zip(&want) {
        // local5 (21) * 8 + info (6) = 174, then the tag, then the event.
        let (head, body) = g.split_once(": ").unwrap();
        assert!(head.starts_with("<174>palisade["), "{head}");
        assert_eq!(body, w);
    }
    same(&dgram_t.join().unwrap(), &want, "unix-dgram");
    let s = stream_t.join().unwrap();
    let got: Vec<String> = s.lines().map(str::to_string).collect();
    same(&got, &want, "unix-stream");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_sink_that_never_answers_fails_the_replay_after_its_wait_instead_of_hanging() {
    let d = tmp("dead");
    // A stream socket path nobody listens on: the sink retries, then gives up at the limit.
    let t = Instant::now();
    let c = Command::new(BIN)
        .args(["replay", "--eve"])
        .arg(d.join("eve.json"))
        .args([
            "--sink",
            &format!("unix-stream:{}", d.join("nobody").display()),
        ])
        .args(["--sink-wait", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let o = c.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("did not take every event") && err.contains("0 of"),
        "{err}"
    );
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    std::fs::remove_dir_all(&d).unwrap();
}
