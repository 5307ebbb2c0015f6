//! Signatures in the engine: the buffers each hook offers, and what a match does.
//!
//! Hooks and their buffers:
//! - packet: the payload of every packet of a flow (`tcp-pkt`, `udp`, `icmp`, `ip` rules and
//!   rules with header keywords only);
//! - stream: every in-order chunk of a TCP stream, with the tail of the previous chunk;
//! - dns: each query name (`dns.query`), requests and responses, with the UDP payload;
//! - tls client / server: SNI, ALPN, JA3, JA4 / JA3S, and the hello's version;
//! - quic: SNI, version (4 bytes, as sent), JA4;
//! - http request: once the request is complete (head, and body up to [`BODY_LIMIT`]);
//! - http response: once the response is complete, with its request's head.
//!
//! HTTP buffers are cut from the raw head without copies, except `http.host` (lowercased) and
//! `http.header_names`, which go to reusable scratch buffers. `http.uri` is the request target
//! as sent, minus scheme and authority for absolute targets; Palisade does not percent-decode or
//! normalise paths as libhtp does (documented in `rules/README.md`).

use palisade_rules::sig::{self, App, Buf, Buffers, Hook, Matched, SigAction};

use super::*;

/// Body bytes kept per HTTP message for `http.request_body` and `file.data`.
pub(super) const BODY_LIMIT: usize = 64 << 10;

/// Most signatures acted on for one inspection; more are counted in `sig_hits_dropped`.
const MAX_HITS: usize = 16;

fn app_of(a: AppProto) -> App {
    match a {
        AppProto::Dns => App::Dns,
        AppProto::Tls => App::Tls,
        AppProto::Http => App::Http,
        AppProto::Quic => App::Quic,
        AppProto::Smtp => App::Smtp,
        AppProto::Ftp => App::Ftp,
        AppProto::Ssh => App::Ssh,
        AppProto::Smb => App::Smb,
        _ => App::None,
    }
}

/// A TLS flow past its cleartext handshake (the ServerHello parsed and the server's cleartext
/// part, certificates included, over), unless encrypted records are to be inspected.
pub(super) fn encrypted(cx: &Cx<'_>, f: &Flow) -> bool {
    !cx.inspect_encrypted
        && f.app == AppProto::Tls
        && f.tls.as_ref().is_some_and(|l| l.server.is_some())
        && matches!(&f.parser, Parser::Tls(t) if t[1].is_done())
}

/// Sequence space used per direction (client, server), when both initial numbers are known.
fn stream_size(f: &Flow) -> Option<[u32; 2]> {
    let st = f.streams.as_ref();
    let mut out = [0u32; 2];
    for (d, o) in out.iter_mut().enumerate() {
        let isn = f.isn[d]?;
        // Before any payload there is no stream yet: only the SYN was used.
        let next = match st.and_then(|s| s[d].next_seq()) {
            Some(n) => n,
            None => isn.wrapping_add(1),
        };
        *o = next.wrapping_sub(isn);
    }
    Some(out)
}

fn established(f: &Flow) -> bool {
    match f.meta.proto {
        6 => !matches!(
            f.tcp_state,
            TcpState::None | TcpState::SynSent | TcpState::SynRecv
        ),
        _ => f.pkts[0] > 0 && f.pkts[1] > 0,
    }
}

/// Runs one hook and applies what matched.
pub(super) fn inspect(
    cx: &mut Cx<'_>,
    flow: &mut Flow,
    dir: usize,
    hook: Hook,
    bufs: &dyn Buffers,
    tls_version: u16,
) {
    run(cx, flow, dir, tls_version, |sigs, p, fs, sc, out| {
        sigs.inspect(hook, p, bufs, fs, sc, out)
    });
}

/// Runs the stream hook over an in-order chunk.
pub(super) fn inspect_stream(cx: &mut Cx<'_>, flow: &mut Flow, dir: usize, chunk: &[u8]) {
    run(cx, flow, dir, 0, |sigs, p, fs, sc, out| {
        sigs.inspect_stream(p, chunk, dir, fs, sc, out)
    });
}

fn run<'r>(
    cx: &mut Cx<'r>,
    flow: &mut Flow,
    dir: usize,
    tls_version: u16,
    f: impl FnOnce(
        &'r sig::SigSet,
        &sig::Packet<'_>,
        &mut sig::FlowSigs,
        &mut sig::Scratch,
        &mut dyn FnMut(Matched<'r>),
    ),
) {
    let sigs = cx.sigs;
    if sigs.is_empty() {
        return;
    }
    let m = flow.meta;
    let (s, d) = if dir == 0 {
        (m.cli, m.srv)
    } else {
        (m.srv, m.cli)
    };
    let icmp = matches!(m.proto, 1 | 58);
    let p = sig::Packet {
        src: s.0,
        dst: d.0,
        sport: if icmp { 0 } else { s.1 },
        dport: if icmp { 0 } else { d.1 },
        proto: m.proto,
        app: app_of(flow.app),
        to_server: dir == 0,
        established: established(flow),
        tcp_flags: cx.pk.flags,
        icmp: cx.pk.icmp,
        payload: cx.pk.payload,
        now_ns: cx.now,
        tls_version,
        vlan: m.vlan,
        stream_size: stream_size(flow),
        events: cx.stats.raised(),
    };
    let fs = flow.sigs.get_or_insert_with(crate::pool::Pooled::take);
    let (hits, dropped) = collect(|out| f(sigs, &p, fs, cx.sc, out));
    cx.stats.sig_hits_dropped += dropped;
    for h in hits.into_iter().flatten() {
        act(cx, flow, dir, h);
    }
}

/// The first [`MAX_HITS`] matches an inspection reports, and how many more it reported.
fn collect<'r>(
    inspect: impl FnOnce(&mut dyn FnMut(Matched<'r>)),
) -> ([Option<Matched<'r>>; MAX_HITS], u64) {
    let mut hits: [Option<Matched<'r>>; MAX_HITS] = [None; MAX_HITS];
    let mut n = 0usize;
    let mut dropped = 0u64;
    inspect(&mut |m| {
        if n < MAX_HITS {
            hits[n] = Some(m);
            n += 1;
        } else {
            dropped += 1;
        }
    });
    (hits, dropped)
}

/// What an alert of signature `s` says (`target`: where the flow's endpoints are known).
fn sig_spec<'s>(
    sigs: &'s sig::SigSet,
    s: &'s sig::Sig,
    action: Verdict,
    enforce: bool,
    target: Option<bool>,
) -> AlertSpec<'s> {
    AlertSpec {
        gid: s.gid as u64,
        sid: s.sid,
        rev: s.rev as u64,
        signature: &s.msg,
        category: sigs.category(s),
        severity: s.priority as u64,
        action,
        enforce,
        target,
        metadata: &s.metadata,
    }
}

/// The rule behind an alert: its action, file and line.
fn rule_obj(p: &mut Obj<'_>, s: &sig::Sig) {
    p.obj("rule", |r| {
        r.str("action", s.action.as_str());
        r.str("file", &s.file).u64("line", s.line as u64);
    });
}

/// Rules for a packet that raised anomaly events but has no flow (it failed to decode, or is a
/// fragment still waiting for the rest of its datagram): `decode-event` rules with headers that
/// match what is known of it (addresses and protocol when the IP header was read; ports are 0).
/// Their alerts carry no flow fields, as Suricata's; a `drop` or `reject` rule in block mode
/// drops the packet. Returns the packet's verdict.
pub(super) fn event_rules(
    e: &mut Engine,
    now: i64,
    pkt: u64,
    ends: Option<(IpAddr, IpAddr, u8)>,
) -> Verdict {
    if e.stats.raised().is_empty() || !e.sigs.wants(Hook::Packet) {
        return Verdict::Accept;
    }
    let unknown = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
    let (src, dst, proto) = ends.unwrap_or((unknown, unknown, 0));
    let p = sig::Packet {
        src,
        dst,
        sport: 0,
        dport: 0,
        proto,
        app: App::None,
        to_server: true,
        established: false,
        tcp_flags: 0,
        icmp: (0, 0),
        payload: &[],
        now_ns: now,
        tls_version: 0,
        vlan: [0; 3],
        stream_size: None,
        events: e.stats.raised(),
    };
    let mut fs = sig::FlowSigs::default();
    let (sigs, sc) = (&e.sigs, &mut e.sig_scratch);
    let (hits, dropped) =
        collect(|out| sigs.inspect(Hook::Packet, &p, &PktBufs(&[]), &mut fs, sc, out));
    e.stats.sig_hits_dropped += dropped;
    let mut verdict = Verdict::Accept;
    for h in hits.into_iter().flatten() {
        let s = h.sig;
        let action = match s.action {
            SigAction::Drop | SigAction::Reject => Verdict::Drop,
            SigAction::Alert | SigAction::Pass => Verdict::Accept,
        };
        let enforce = action != Verdict::Accept && e.cfg.mode == Mode::Block;
        e.stats.sig_matches += 1;
        if enforce {
            verdict = Verdict::Drop;
        }
        if !h.alert {
            continue;
        }
        if enforce {
            e.stats.alerts_blocked += 1;
        } else {
            e.stats.alerts_allowed += 1;
        }
        let spec = sig_spec(&e.sigs, s, action, enforce, None);
        let mut o = flowless_header(&mut e.out, now, pkt, ends, "alert");
        o.obj("alert", |a| alert_fields(a, &spec));
        o.obj("palisade", |x| {
            rule_obj(x, s);
            x.arr("events", |a| {
                for ev in e.stats.raised() {
                    a.str(ev);
                }
            });
            x.obj("inline", |i| {
                i.str("action", action.as_str());
                i.bool("enforced", enforce);
                i.u64("pcap_cnt", pkt);
            });
        });
        o.close();
        e.out.push(b'\n');
        e.stats.events[4] += 1;
    }
    verdict
}

fn act(cx: &mut Cx<'_>, flow: &mut Flow, dir: usize, h: Matched<'_>) {
    let s = h.sig;
    let action = match s.action {
        SigAction::Drop => Verdict::Drop,
        SigAction::Reject if flow.meta.proto == 6 => Verdict::Reset,
        SigAction::Reject => Verdict::Drop,
        SigAction::Alert | SigAction::Pass => Verdict::Accept,
    };
    let enforce = action != Verdict::Accept && cx.mode == Mode::Block;
    cx.stats.sig_matches += 1;
    if !h.alert {
        if enforce && flow.verdict == Verdict::Accept {
            flow.verdict = action;
        }
        return;
    }
    let spec = sig_spec(cx.sigs, s, action, enforce, s.target);
    raise_alert(cx, flow, dir, spec, |p| rule_obj(p, s));
}

/// Packet payload only.
pub(super) struct PktBufs<'a>(pub &'a [u8]);

impl Buffers for PktBufs<'_> {
    fn get(&self, b: Buf) -> Option<&[u8]> {
        (b == Buf::Payload).then_some(self.0)
    }
}

/// A DNS query name, with the message.
pub(super) struct DnsBufs<'a> {
    pub query: &'a [u8],
    pub payload: &'a [u8],
}

impl Buffers for DnsBufs<'_> {
    fn get(&self, b: Buf) -> Option<&[u8]> {
        match b {
            Buf::DnsQuery => Some(self.query),
            Buf::Payload => Some(self.payload),
            _ => None,
        }
    }
}

/// A ClientHello (TLS or QUIC) and, for QUIC, the version; for gQUIC, its CHLO instead.
pub(super) struct HelloBufs<'a> {
    /// The ClientHello (none for a QUIC server Initial or gQUIC).
    pub ch: Option<&'a ClientHello>,
    pub quic_version: Option<[u8; 4]>,
    /// A gQUIC CHLO.
    pub gquic: Option<&'a crate::app::gquic::Chlo>,
}

impl Buffers for HelloBufs<'_> {
    fn get(&self, b: Buf) -> Option<&[u8]> {
        if b == Buf::QuicVersion {
            return self.quic_version.as_ref().map(|v| &v[..]);
        }
        if let Some(c) = self.gquic {
            return match b {
                Buf::QuicSni => c.sni.as_deref().map(str::as_bytes),
                Buf::QuicUa => c.ua.as_deref().map(str::as_bytes),
                Buf::QuicCyuHash => Some(c.cyu_hash.as_bytes()),
                Buf::QuicCyuString => Some(c.cyu.as_bytes()),
                _ => None,
            };
        }
        client_buf(self.ch?, b, self.quic_version.is_some())
    }
}

/// A ClientHello's buffers (TLS, or QUIC when `quic`).
fn client_buf(ch: &ClientHello, b: Buf, quic: bool) -> Option<&[u8]> {
    match b {
        Buf::TlsSni if !quic => ch.sni.as_deref().map(str::as_bytes),
        Buf::QuicSni if quic => ch.sni.as_deref().map(str::as_bytes),
        Buf::TlsAlpn => ch.alpn.first().map(String::as_bytes),
        Buf::Ja3Hash => Some(ch.ja3_hash.as_bytes()),
        Buf::Ja3String => Some(ch.ja3.as_bytes()),
        Buf::Ja4Hash => Some(ch.ja4.as_bytes()),
        _ => None,
    }
}

/// A ServerHello, with the flow's ClientHello.
struct ServerBufs<'a> {
    sh: &'a ServerHello,
    ch: Option<&'a ClientHello>,
}

impl Buffers for ServerBufs<'_> {
    fn get(&self, b: Buf) -> Option<&[u8]> {
        match b {
            Buf::Ja3sHash => Some(self.sh.ja3s_hash.as_bytes()),
            Buf::Ja3sString => Some(self.sh.ja3s.as_bytes()),
            _ => client_buf(self.ch?, b, false),
        }
    }
}

/// The server's certificates: the leaf's fields, and one chain entry as `tls.certs`.
struct CertBufs<'a> {
    ch: Option<&'a ClientHello>,
    info: Option<&'a crate::app::x509::CertInfo>,
    der: &'a [u8],
    san: Option<&'a [u8]>,
}

impl Buffers for CertBufs<'_> {
    fn get(&self, b: Buf) -> Option<&[u8]> {
        match b {
            Buf::TlsCerts => Some(self.der),
            Buf::TlsSubjectAltName => self.san,
            Buf::TlsSni | Buf::TlsAlpn | Buf::Ja3Hash | Buf::Ja3String | Buf::Ja4Hash => {
                client_buf(self.ch?, b, false)
            }
            _ => {
                let i = self.info?;
                Some(
                    match b {
                        Buf::TlsCertSubject => &i.subject,
                        Buf::TlsCertIssuer => &i.issuer,
                        Buf::TlsCertSerial => &i.serial,
                        Buf::TlsCertFingerprint => &i.fingerprint,
                        _ => return None,
                    }
                    .as_bytes(),
                )
            }
        }
    }
}

/// Runs the certificate hook: the leaf with its fields and first DNS name, then each further
/// chain entry (`tls.certs`) and each further DNS name (`tls.subjectaltname`). A signature of
/// this hook alerts at most once per flow.
pub(super) fn tls_certs(
    cx: &mut Cx<'_>,
    flow: &mut Flow,
    dir: usize,
    certs: &crate::app::tls::CertChain,
    info: Option<&crate::app::x509::CertInfo>,
    version: u16,
) {
    let sans = info.map(|i| &i.sans);
    let n = certs.len().max(sans.map_or(0, |s| s.len()));
    with_client(flow, |flow, ch| {
        for k in 0..n {
            let bufs = CertBufs {
                ch,
                info: if k == 0 { info } else { None },
                der: certs.get(k).unwrap_or_default(),
                san: sans.and_then(|s| s.get(k)).map(str::as_bytes),
            };
            inspect(cx, flow, dir, Hook::TlsCert, &bufs, version);
        }
    });
}

/// Runs the ServerHello hook (with the flow's ClientHello).
pub(super) fn tls_server(cx: &mut Cx<'_>, flow: &mut Flow, dir: usize, sh: &ServerHello) {
    with_client(flow, |flow, ch| {
        let bufs = ServerBufs { sh, ch };
        inspect(cx, flow, dir, Hook::TlsServer, &bufs, sh.version);
    });
}

/// Runs `f` with the flow's ClientHello lent out (inspection needs the flow itself mutably).
fn with_client(flow: &mut Flow, f: impl FnOnce(&mut Flow, Option<&ClientHello>)) {
    let ch = flow.tls.as_mut().and_then(|l| l.client.take());
    f(flow, ch.as_deref());
    if let (Some(l), Some(ch)) = (flow.tls.as_mut(), ch) {
        l.client = Some(ch);
    }
}

/// One HTTP head, cut into its parts.
#[derive(Default)]
pub(super) struct Head<'a> {
    line: &'a [u8],
    /// Header lines (each ending in CRLF or LF), without the blank line.
    headers: &'a [u8],
    /// Request line and headers with the blank line.
    start: &'a [u8],
}

impl<'a> Head<'a> {
    pub fn new(raw: &'a [u8]) -> Head<'a> {
        let nl = raw.iter().position(|&b| b == b'\n').unwrap_or(raw.len());
        let line = raw[..nl].strip_suffix(b"\r").unwrap_or(&raw[..nl]);
        let rest = raw.get(nl + 1..).unwrap_or(&[]);
        // Drop the blank line that ends the head.
        let headers = rest
            .strip_suffix(b"\r\n")
            .or_else(|| rest.strip_suffix(b"\n"))
            .unwrap_or(rest);
        Head {
            line,
            headers,
            start: raw,
        }
    }

    fn word(&self, i: usize) -> Option<&'a [u8]> {
        self.line
            .split(|&b| b == b' ')
            .filter(|w| !w.is_empty())
            .nth(i)
    }

    /// The first value of a header, trimmed.
    fn value(&self, name: &[u8]) -> Option<&'a [u8]> {
        for l in self.headers.split(|&b| b == b'\n') {
            let Some(c) = l.iter().position(|&b| b == b':') else {
                continue;
            };
            if l[..c].trim_ascii().eq_ignore_ascii_case(name) {
                let v = &l[c + 1..];
                let v = v.strip_suffix(b"\r").unwrap_or(v);
                return Some(v.trim_ascii());
            }
        }
        None
    }

    /// `\r\nName1\r\nName2\r\n\r\n`, as Suricata builds `http.header_names`.
    fn names_into(&self, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(b"\r\n");
        for l in self.headers.split(|&b| b == b'\n') {
            if let Some(c) = l.iter().position(|&b| b == b':') {
                out.extend_from_slice(l[..c].trim_ascii());
                out.extend_from_slice(b"\r\n");
            }
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// An HTTP transaction: the request, and the response when inspecting it.
pub(super) struct HttpBufs<'a> {
    pub req: Head<'a>,
    pub req_body: Option<&'a [u8]>,
    pub resp: Option<Head<'a>>,
    pub resp_body: Option<&'a [u8]>,
    pub host_lc: &'a [u8],
    pub names: &'a [u8],
}

/// Builds the scratch buffers `HttpBufs` borrows: the lowercased host and the header names of
/// the side being inspected.
pub(super) fn http_scratch(
    req: &Head<'_>,
    resp: Option<&Head<'_>>,
    host: &mut Vec<u8>,
    names: &mut Vec<u8>,
) {
    host.clear();
    if let Some(h) = req.value(b"host") {
        // Port removed, lowercased (Suricata's normalised host).
        let h = match h.iter().rposition(|&b| b == b':') {
            Some(i) if !h.contains(&b']') || h[..i].ends_with(b"]") => &h[..i],
            _ => h,
        };
        host.extend(h.iter().map(u8::to_ascii_lowercase));
    }
    match resp {
        Some(r) => r.names_into(names),
        None => req.names_into(names),
    }
}

fn uri_path(target: &[u8]) -> &[u8] {
    // Absolute form (proxies): drop scheme and authority.
    for scheme in [&b"http://"[..], b"https://"] {
        if target.len() > scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme) {
            let rest = &target[scheme.len()..];
            return match rest.iter().position(|&b| b == b'/') {
                Some(i) => &rest[i..],
                None => b"/",
            };
        }
    }
    target
}

impl Buffers for HttpBufs<'_> {
    fn get(&self, b: Buf) -> Option<&[u8]> {
        let q = &self.req;
        // Header-type buffers come from the side being inspected.
        let side = self.resp.as_ref().unwrap_or(q);
        match b {
            Buf::HttpMethod => q.word(0),
            Buf::HttpUri => q.word(1).map(uri_path),
            Buf::HttpUriRaw => q.word(1),
            Buf::HttpRequestLine => Some(q.line),
            Buf::HttpHost => q.value(b"host").map(|_| self.host_lc),
            Buf::HttpHostRaw => q.value(b"host"),
            Buf::HttpUserAgent => q.value(b"user-agent"),
            Buf::HttpReferer => q.value(b"referer"),
            Buf::HttpAccept => q.value(b"accept"),
            Buf::HttpAcceptEnc => q.value(b"accept-encoding"),
            Buf::HttpAcceptLang => q.value(b"accept-language"),
            Buf::HttpRequestBody => self.req_body,
            Buf::HttpCookie => {
                if self.resp.is_some() {
                    side.value(b"set-cookie")
                } else {
                    q.value(b"cookie")
                }
            }
            Buf::HttpHeader | Buf::HttpHeaderRaw => Some(side.headers),
            Buf::HttpHeaderNames => Some(self.names),
            Buf::HttpContentType => side.value(b"content-type"),
            Buf::HttpContentLen => side.value(b"content-length"),
            Buf::HttpConnection => side.value(b"connection"),
            Buf::HttpStart => Some(side.start),
            Buf::HttpProtocol => {
                if self.resp.is_some() {
                    side.word(0)
                } else {
                    q.word(2)
                }
            }
            Buf::FileData => {
                if self.resp.is_some() {
                    self.resp_body
                } else {
                    self.req_body
                }
            }
            Buf::HttpStatCode => self.resp.as_ref()?.word(1),
            Buf::HttpStatMsg => {
                let r = self.resp.as_ref()?;
                let mut it = r.line.splitn(3, |&b| b == b' ');
                it.next();
                it.next();
                Some(it.next().unwrap_or(&[]))
            }
            Buf::HttpResponseLine => Some(self.resp.as_ref()?.line),
            Buf::HttpResponseBody => self.resp_body,
            Buf::HttpServer => self.resp.as_ref()?.value(b"server"),
            Buf::HttpLocation => self.resp.as_ref()?.value(b"location"),
            // Suricata's payload for HTTP rules is the stream; the request head stands in here.
            Buf::Payload => Some(side.start),
            _ => None,
        }
    }
}

/// Decompresses a `Content-Encoding: gzip` or `deflate` body into the kept body, at most
/// [`BODY_LIMIT`] bytes of output whatever the input (bombs stop at the limit); a corrupt stream
/// keeps what was decoded before the fault.
#[derive(Debug)]
pub(super) struct Inflate {
    z: flate2::Decompress,
    /// gzip: header bytes gathered until the header is complete (`None` once it is).
    header: Option<Vec<u8>>,
    /// `deflate`: zlib or raw is decided by the first two bytes (held here until both came).
    sniff: bool,
    pending: Vec<u8>,
    stop: bool,
}

/// Bytes an [`Inflate`] holds (its window and tables), charged to the flow.
pub(super) const INFLATE_HELD: usize = 48 << 10;

impl Inflate {
    /// For a response head: the decoder its body needs, if any.
    pub fn for_head(head: &[u8]) -> Option<Box<Inflate>> {
        let v = Head::new(head).value(b"content-encoding")?;
        let v = v.trim_ascii();
        let gzip = v.eq_ignore_ascii_case(b"gzip") || v.eq_ignore_ascii_case(b"x-gzip");
        let deflate = v.eq_ignore_ascii_case(b"deflate");
        if !gzip && !deflate {
            return None;
        }
        Some(Box::new(Inflate {
            z: flate2::Decompress::new(false),
            header: gzip.then(Vec::new),
            sniff: deflate,
            pending: Vec::new(),
            stop: false,
        }))
    }

    /// Feeds compressed bytes; appends what they decode to `out`.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if self.stop {
            return;
        }
        if let Some(h) = &mut self.header {
            h.extend_from_slice(data);
            match gzip_header_len(h) {
                Ok(Some(n)) => {
                    let rest = h.split_off(n);
                    self.header = None;
                    self.inflate(&rest, out);
                }
                // A header (name, comment, extra field) longer than 64 KiB is not believed.
                Ok(None) if h.len() <= 64 << 10 => {}
                _ => {
                    self.stop = true;
                    self.header = Some(Vec::new());
                }
            }
            return;
        }
        self.inflate(data, out);
    }

    fn inflate(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if self.sniff {
            // Two bytes decide: a zlib header (RFC 1950: CM 8, a check over both) or raw.
            let mut first = std::mem::take(&mut self.pending);
            first.extend_from_slice(&data[..data.len().min(2)]);
            if first.len() < 2 {
                self.pending = first;
                return;
            }
            self.sniff = false;
            if first[0] & 0x0f == 8 && u16::from_be_bytes([first[0], first[1]]).is_multiple_of(31) {
                self.z = flate2::Decompress::new(true);
            }
            // Bytes held from an earlier feed go first.
            let held = first.len() - data.len().min(2);
            if held > 0 {
                let h = first[..held].to_vec();
                self.inflate_raw(&h, out);
            }
        }
        self.inflate_raw(data, out);
    }

    fn inflate_raw(&mut self, mut data: &[u8], out: &mut Vec<u8>) {
        let mut buf = [0u8; 4096];
        while out.len() < BODY_LIMIT && !self.stop {
            let n = (BODY_LIMIT - out.len()).min(buf.len());
            let (i0, o0) = (self.z.total_in(), self.z.total_out());
            let res = self
                .z
                .decompress(data, &mut buf[..n], flate2::FlushDecompress::None);
            let used = ((self.z.total_in() - i0) as usize).min(data.len());
            let made = ((self.z.total_out() - o0) as usize).min(n);
            out.extend_from_slice(&buf[..made]);
            data = &data[used..];
            match res {
                Ok(flate2::Status::StreamEnd) | Err(_) => self.stop = true,
                Ok(_) if used == 0 && made == 0 => return,
                Ok(_) => {}
            }
        }
    }
}

/// The length of a complete gzip header, `Ok(None)` when more bytes are needed, `Err` when it
/// is not gzip.
fn gzip_header_len(h: &[u8]) -> Result<Option<usize>, ()> {
    if h.len() < 10 {
        return if h.len() >= 2 && h[..2] != [0x1f, 0x8b] {
            Err(())
        } else {
            Ok(None)
        };
    }
    if h[..3] != [0x1f, 0x8b, 8] {
        return Err(());
    }
    let flags = h[3];
    let mut n = 10;
    if flags & 4 != 0 {
        let Some(x) = h.get(n..n + 2) else {
            return Ok(None);
        };
        n += 2 + u16::from_le_bytes([x[0], x[1]]) as usize;
    }
    for bit in [8u8, 16] {
        if flags & bit != 0 {
            let Some(z) = h.get(n..).and_then(|r| r.iter().position(|&b| b == 0)) else {
                return Ok(None);
            };
            n += z + 1;
        }
    }
    if flags & 2 != 0 {
        n += 2;
    }
    Ok((h.len() >= n).then_some(n))
}

/// Keeps a message's body up to [`BODY_LIMIT`].
pub(super) fn keep_body(body: &mut Vec<u8>, data: &[u8]) {
    let room = BODY_LIMIT.saturating_sub(body.len());
    body.extend_from_slice(&data[..data.len().min(room)]);
}

/// Runs the request hook.
pub(super) fn http_request(cx: &mut Cx<'_>, flow: &mut Flow, req: &Request, body: &[u8]) {
    if !cx.sigs.wants(Hook::HttpRequest) || req.head.is_empty() {
        return;
    }
    let head = Head::new(&req.head);
    let (mut host, mut names) = (
        std::mem::take(&mut cx.sc_bufs.0),
        std::mem::take(&mut cx.sc_bufs.1),
    );
    http_scratch(&head, None, &mut host, &mut names);
    let bufs = HttpBufs {
        req: head,
        req_body: Some(body),
        resp: None,
        resp_body: None,
        host_lc: &host,
        names: &names,
    };
    inspect(cx, flow, 0, Hook::HttpRequest, &bufs, 0);
    *cx.sc_bufs = (host, names);
}

/// Runs the response hook.
pub(super) fn http_response(
    cx: &mut Cx<'_>,
    flow: &mut Flow,
    req: &Request,
    resp: &crate::app::http::Response,
    body: &[u8],
) {
    if !cx.sigs.wants(Hook::HttpResponse) || resp.head.is_empty() {
        return;
    }
    let q = Head::new(&req.head);
    let r = Head::new(&resp.head);
    let (mut host, mut names) = (
        std::mem::take(&mut cx.sc_bufs.0),
        std::mem::take(&mut cx.sc_bufs.1),
    );
    http_scratch(&q, Some(&r), &mut host, &mut names);
    let bufs = HttpBufs {
        req: q,
        req_body: None,
        resp: Some(r),
        resp_body: Some(body),
        host_lc: &host,
        names: &names,
    };
    inspect(cx, flow, 1, Hook::HttpResponse, &bufs, 0);
    *cx.sc_bufs = (host, names);
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn compress(kind: &str, data: &[u8]) -> Vec<u8> {
        let lvl = flate2::Compression::default();
        match kind {
            "gzip" => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), lvl);
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            "zlib" => {
                let mut e = flate2::write::ZlibEncoder::new(Vec::new(), lvl);
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            _ => {
                let mut e = flate2::write::DeflateEncoder::new(Vec::new(), lvl);
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
        }
    }

    fn head(enc: &str) -> Vec<u8> {
        format!("HTTP/1.1 200 OK\r\nContent-Encoding: {enc}\r\n\r\n").into_bytes()
    }

    #[test]
    fn bodies_are_decompressed_in_any_split_and_capped() {
        let text: Vec<u8> = (0..20_000u32)
            .flat_map(|i| format!("<script>var x{i}=1;</script>").into_bytes())
            .collect();
        for (enc, kind) in [
            ("gzip", "gzip"),
            ("x-gzip", "gzip"),
            ("deflate", "zlib"),
            ("deflate", "raw"),
        ] {
            let z = compress(kind, &text);
            for cut in [1, 2, 9, 10, 11, 100, z.len() / 2] {
                let mut inf = Inflate::for_head(&head(enc)).unwrap();
                let mut out = Vec::new();
                inf.feed(&z[..cut.min(z.len())], &mut out);
                inf.feed(&z[cut.min(z.len())..], &mut out);
                assert_eq!(out.len(), BODY_LIMIT, "{enc}/{kind} cut {cut}");
                assert_eq!(out, text[..BODY_LIMIT], "{enc}/{kind} cut {cut}");
            }
        }
        // A bomb: a few KB that inflate to 100 MB stop at the limit.
        let bomb = compress("gzip", &vec![0u8; 100 << 20]);
        let mut inf = Inflate::for_head(&head("gzip")).unwrap();
        let mut out = Vec::new();
        inf.feed(&bomb, &mut out);
        assert_eq!(out.len(), BODY_LIMIT);
        // Not gzip at all, and no encoding.
        let mut inf = Inflate::for_head(&head("gzip")).unwrap();
        let mut out = Vec::new();
        inf.feed(b"plain text, not gzip", &mut out);
        assert!(out.is_empty());
        assert!(Inflate::for_head(&head("br")).is_none());
        assert!(Inflate::for_head(b"HTTP/1.1 200 OK\r\n\r\n").is_none());
    }
}
