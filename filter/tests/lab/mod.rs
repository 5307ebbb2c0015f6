//! The network lab shared by the inline and fleet tests: namespaces joined by veth pairs, nginx
//! and dnsmasq as servers, curl and dig as clients, and the `palisade` binary. Needs root and
//! those tools; with CI=true a missing one fails the test instead of skipping.
#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_palisade");

pub fn ready() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let missing = missing(&[
        "ip", "iptables", "nginx", "dnsmasq", "curl", "dig", "openssl",
    ]);
    if root && missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("CI").is_err(),
        "CI=true but the inline tests cannot run: root={root}, missing {missing:?}"
    );
    eprintln!("skipping inline tests: root={root}, missing {missing:?}");
    false
}

/// The tools of `names` that are not on the PATH.
fn missing<'a>(names: &[&'a str]) -> Vec<&'a str> {
    names
        .iter()
        .copied()
        .filter(|t| !sh(&format!("command -v {t}")).status.success())
        .collect()
}

/// True when every tool a test needs beyond [`ready`]'s is installed; fails loudly under
/// CI=true when one is not.
pub fn tools(names: &[&str]) -> bool {
    let missing = missing(names);
    if !missing.is_empty() {
        assert!(
            std::env::var("CI").is_err(),
            "CI=true but {missing:?} not installed"
        );
        eprintln!("skipping: {missing:?} not installed");
    }
    missing.is_empty()
}

pub fn sh(cmd: &str) -> Output {
    Command::new("sh")
        .args(["-c", cmd])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

pub fn must(cmd: &str) {
    let o = sh(cmd);
    assert!(
        o.status.success(),
        "`{cmd}` failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Namespaces, servers and Palisade processes of one scenario; all removed on drop.
pub struct Lab {
    pub tag: String,
    pub dir: PathBuf,
    pub netns: Vec<String>,
    pub children: Vec<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.netns {
            // Kill anything left in the namespace (servers started with setsid), then remove it.
            let _ = sh(&format!(
                "ip netns pids {ns} 2>/dev/null | xargs -r kill -9"
            ));
            let _ = sh(&format!("ip netns del {ns}"));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Lab {
    /// A lab named by `tag`, which must be unique within the test binary: tests run in
    /// parallel, and the tag names the namespaces, links and directory.
    pub fn new(tag: &str) -> Lab {
        static TAGS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
        {
            let mut used = TAGS.lock().unwrap_or_else(|e| e.into_inner());
            assert!(
                !used.iter().any(|t| t == tag),
                "lab tag `{tag}` used twice in one test binary"
            );
            used.push(tag.to_string());
        }
        let tag = format!("{tag}{}", std::process::id() % 10000);
        let dir = std::env::temp_dir().join(format!("palisade-lab-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Lab {
            tag,
            dir,
            netns: Vec::new(),
            children: Vec::new(),
        }
    }

    pub fn ns(&mut self, name: &str) -> String {
        let n = format!("pal{}{}", name, self.tag);
        let _ = sh(&format!("ip netns del {n}"));
        must(&format!("ip netns add {n} && ip -n {n} link set lo up"));
        self.netns.push(n.clone());
        n
    }

    /// A veth pair between two namespaces with the given addresses (first address per side).
    pub fn link(&self, a: &str, a_addrs: &[&str], b: &str, b_addrs: &[&str], id: &str) {
        let (va, vb) = (format!("va{id}{}", self.tag), format!("vb{id}{}", self.tag));
        must(&format!("ip link add {va} type veth peer name {vb} && ip link set {va} netns {a} && ip link set {vb} netns {b}"));
        for x in a_addrs {
            must(&format!("ip -n {a} addr add {x} dev {va}"));
        }
        for x in b_addrs {
            must(&format!("ip -n {b} addr add {x} dev {vb}"));
        }
        must(&format!(
            "ip -n {a} link set {va} up && ip -n {b} link set {vb} up"
        ));
    }

    /// nginx (TLS on 443, HTTP on 80) on the given addresses and dnsmasq on the first one.
    pub fn servers(&mut self, ns: &str, addrs: &[&str]) {
        let d = self.dir.display().to_string();
        must(&format!(
            "openssl req -x509 -newkey rsa:2048 -nodes -keyout {d}/key.pem -out {d}/cert.pem -days 1 -subj /CN=lab.example -addext subjectAltName=DNS:*.example 2>/dev/null"
        ));
        std::fs::write(self.dir.join("big.bin"), vec![0x5a; 4 << 20]).unwrap();
        let listens: String = addrs
            .iter()
            .map(|a| format!("listen {a}:443 ssl; listen {a}:80; "))
            .collect();
        std::fs::write(
            self.dir.join("nginx.conf"),
            format!(
                "daemon off; pid {d}/nginx.pid; error_log {d}/nginx.log; worker_processes 1;\nevents {{}}\nhttp {{ access_log off; server {{ {listens} ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem; location /big.bin {{ root {d}; }} location / {{ return 200 \"ok\\n\"; }} }} }}\n"
            ),
        )
        .unwrap();
        self.spawn(
            &format!("ip netns exec {ns} nginx -c {d}/nginx.conf -p {d}"),
            "nginx.out",
        );
        self.spawn(
            &format!(
                "ip netns exec {ns} dnsmasq --no-daemon --no-resolv --no-hosts --listen-address={} --bind-interfaces --address=/example/{} --log-queries --log-facility={d}/dnsmasq.log --pid-file={d}/dnsmasq.pid",
                addrs[0], addrs[0]
            ),
            "dnsmasq.out",
        );
        wait_until(Duration::from_secs(5), || {
            sh(&format!(
                "ip netns exec {ns} curl -s -m 1 http://{}/",
                addrs[0]
            ))
            .status
            .success()
        });
    }

    pub fn spawn(&mut self, cmd: &str, log: &str) -> usize {
        let f = std::fs::File::create(self.dir.join(log)).unwrap();
        let c = Command::new("sh")
            .args(["-c", &format!("exec {cmd}")])
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap();
        self.children.push(c);
        self.children.len() - 1
    }

    /// Starts `palisade inline` in a namespace and waits until its queue is bound.
    pub fn palisade(&mut self, ns: &str, queue: u16, extra: &str, log: &str) -> usize {
        let d = self.dir.display().to_string();
        let i = self.spawn(&format!("ip netns exec {ns} {BIN} inline --queue {queue} --intel {d}/block.txt {extra} --eve {d}/eve.json"), log);
        let p = self.dir.join(log);
        wait_until(Duration::from_secs(10), || {
            std::fs::read_to_string(&p).is_ok_and(|s| s.contains("ready"))
        });
        i
    }

    /// The filter as a host firewall in `ns`: `block.txt` listing `blocked.example`, the
    /// firewall rules sending to `queue` (fail closed), and `palisade inline` on it with
    /// `extra` arguments. Returns its child.
    pub fn host_filter(&mut self, ns: &str, queue: u16, extra: &str) -> usize {
        std::fs::write(self.dir.join("block.txt"), "blocked.example\n").unwrap();
        must(&format!(
            "ip netns exec {ns} {BIN} firewall install --role host --queue {queue} --fail closed"
        ));
        self.palisade(ns, queue, extra, "inline.log")
    }

    /// Waits (5 s at most) until something in `ns` listens on TCP `port`.
    pub fn wait_listening(ns: &str, port: u16) {
        wait_until(Duration::from_secs(5), || {
            sh(&format!(
                "ip netns exec {ns} sh -c 'ss -ltn | grep -q :{port}'"
            ))
            .status
            .success()
        });
    }

    /// SIGTERM, so the process can finish writing (tcpdump), then wait.
    pub fn stop(&mut self, i: usize) {
        let c = &mut self.children[i];
        let _ = sh(&format!("kill -TERM {}", c.id()));
        let _ = c.wait();
    }

    pub fn kill(&mut self, i: usize) {
        let c = &mut self.children[i];
        let _ = c.kill();
        let _ = c.wait();
    }

    pub fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    pub fn alerts(&self) -> Vec<serde_json::Value> {
        self.file("eve.json")
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|e| e["event_type"] == "alert")
            .collect()
    }

    /// The alerts of one signature id.
    pub fn alerts_of(&self, sid: u64) -> Vec<serde_json::Value> {
        self.alerts()
            .into_iter()
            .filter(|a| a["alert"]["signature_id"] == sid)
            .collect()
    }
}

pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("condition not met within {limit:?}");
}

/// curl from a namespace: (exit code, HTTP code, seconds).
pub fn curl(ns: &str, args: &str) -> (i32, String, f64) {
    let o = sh(&format!(
        "ip netns exec {ns} curl -sk -m 3 -o /dev/null -w '%{{http_code}} %{{time_total}}' {args}"
    ));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let mut it = out.split_whitespace();
    let code = it.next().unwrap_or("").to_string();
    let t = it.next().and_then(|t| t.parse().ok()).unwrap_or(99.0);
    (o.status.code().unwrap_or(-1), code, t)
}

pub fn dig(ns: &str, server: &str, name: &str) -> String {
    let o = sh(&format!(
        "ip netns exec {ns} dig +time=2 +tries=1 +short @{server} {name}"
    ));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// The Prometheus text `palisade inline` serves on 127.0.0.1:`port` inside `ns`.
pub fn metrics(ns: &str, port: u16) -> String {
    String::from_utf8_lossy(
        &sh(&format!(
            "ip netns exec {ns} curl -s -m 2 http://127.0.0.1:{port}/metrics"
        ))
        .stdout,
    )
    .to_string()
}

/// Runs `cmd` with `input` on its standard input; returns its output.
fn with_stdin(cmd: &mut Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

/// Parses a scrape with Prometheus's own text parser (Debian's python3-prometheus-client):
/// returns each sample as `name{label="value",...}` (labels sorted, values unescaped) and its
/// value. Panics when the parser refuses the text or reads other samples than the text's lines.
pub fn prometheus_samples(m: &str) -> Vec<(String, f64)> {
    assert!(tools(&["/usr/bin/python3"]), "no system python3");
    let py = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        labels = ",".join('%s="%s"' % (k, v) for k, v in sorted(s.labels.items()))
        print("%s{%s}\t%r" % (s.name, labels, s.value))
"#;
    let out = with_stdin(Command::new("/usr/bin/python3").args(["-c", py]), m);
    assert!(
        out.status.success(),
        "Prometheus's parser refused the scrape: {}\n{m}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<(String, f64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.rsplit_once('\t')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect();
    let lines = m
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    assert_eq!(samples.len(), lines, "samples read against lines:\n{m}");
    samples
}

/// Lints a scrape with Prometheus's `promtool check metrics` (names, types, help, duplicates).
pub fn promtool_lint(m: &str) {
    assert!(tools(&["promtool"]), "promtool is not installed");
    let out = with_stdin(Command::new("promtool").args(["check", "metrics"]), m);
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}\n{m}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value of the parsed sample `key` (as [`prometheus_samples`] writes it).
pub fn sample(samples: &[(String, f64)], key: &str) -> f64 {
    samples
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no sample `{key}` in {samples:?}"))
}

/// The value of the metric line that starts with `needle`.
pub fn metric(m: &str, needle: &str) -> u64 {
    m.lines()
        .find(|l| l.starts_with(needle))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no `{needle}` in {m}"))
}
