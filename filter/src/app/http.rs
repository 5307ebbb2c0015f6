//! HTTP/1.x requests and responses over one TCP stream, pipelining included.
//!
//! Each direction has an [`HttpStream`]: it gathers a message head (request or status line plus
//! headers, at most [`MAX_HEAD`] bytes), parses it, then skips the body as framed by
//! Content-Length or chunked encoding (or until close, for responses without framing).
//! A head is parsed in place when it arrives whole; only a head split across segments is copied.

use crate::pool::{give_bytes, keep, keep_str, more, push_lossy, Lent, Pooled, Recycle, Spares};

/// Largest message head gathered; a longer one is an anomaly and ends parsing of the direction.
pub const MAX_HEAD: usize = 16 << 10;
const MAX_FIELD: usize = 4096;

/// A parsed request head.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method (`GET`).
    pub method: String,
    /// Request target as sent.
    pub uri: String,
    /// Protocol (`HTTP/1.1`).
    pub protocol: String,
    /// Host header (port removed, as Suricata's `hostname`).
    pub host: Option<String>,
    /// User-Agent header.
    pub user_agent: Option<String>,
    /// The head as sent (request line and headers, up to and including the blank line); kept
    /// only when the stream was asked for it ([`HttpStream::keep_raw`]).
    pub head: Vec<u8>,
    /// A body follows (Content-Length above 0, or chunked).
    pub has_body: bool,
    /// Strings kept for the next request parsed into this one.
    spares: Spares,
}

impl Recycle for Request {
    fn recycle(&mut self) {
        keep_str(&mut self.method);
        keep_str(&mut self.uri);
        keep_str(&mut self.protocol);
        for s in [self.host.take(), self.user_agent.take()]
            .into_iter()
            .flatten()
        {
            self.spares.put(s);
        }
        keep(&mut self.head);
        self.has_body = false;
    }
    fn bytes(&self) -> usize {
        self.held()
    }
    crate::thread_pool!(Request);
}

impl Request {
    /// Bytes held by its strings.
    pub fn held(&self) -> usize {
        std::mem::size_of::<Request>()
            + self.method.capacity()
            + self.uri.capacity()
            + self.protocol.capacity()
            + self.host.as_ref().map_or(0, String::capacity)
            + self.user_agent.as_ref().map_or(0, String::capacity)
            + self.head.capacity()
            + self.spares.held()
    }
}

/// A parsed response head.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Protocol (`HTTP/1.1`).
    pub protocol: String,
    /// Content-Type header.
    pub content_type: Option<String>,
    /// Content-Length header, if any.
    pub content_length: Option<u64>,
    /// The head as sent, when kept ([`HttpStream::keep_raw`]).
    pub head: Vec<u8>,
    /// Strings kept for the next response parsed into this one.
    spares: Spares,
}

impl Recycle for Response {
    fn recycle(&mut self) {
        self.status = 0;
        keep_str(&mut self.protocol);
        if let Some(s) = self.content_type.take() {
            self.spares.put(s);
        }
        self.content_length = None;
        keep(&mut self.head);
    }
    fn bytes(&self) -> usize {
        std::mem::size_of::<Response>()
            + self.protocol.capacity()
            + self.content_type.as_ref().map_or(0, String::capacity)
            + self.head.capacity()
            + self.spares.held()
    }
    crate::thread_pool!(Response);
}

/// Most events one step of [`HttpStream::feed_upto`] raises (a head and the end of its empty
/// body; body bytes and their end).
pub const STEP_EVENTS: usize = 2;

/// What a stream found.
#[derive(Debug)]
pub enum HttpEvent<'a> {
    /// A request head.
    Request(Pooled<Request>),
    /// A response head (interim 1xx responses are reported too).
    Response(Pooled<Response>),
    /// Body bytes (after de-chunking), when the stream was asked for them
    /// ([`HttpStream::keep_raw`]).
    Body(&'a [u8]),
    /// The body of the last head ended (for requests: only those with a body); its length in
    /// bytes (after de-chunking).
    BodyEnd(u64),
    /// A fault: anomaly name; parsing of this direction stops.
    Error(&'static str),
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Body {
    #[default]
    Head,
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkCrlf(u8),
    Trailer,
    UntilClose,
    /// After CONNECT/101: the stream carries another protocol.
    Tunnel,
    Dead,
}

/// One direction of an HTTP/1.x connection.
#[derive(Debug, Default)]
pub struct HttpStream {
    buf: Vec<u8>,
    body: Body,
    /// For responses: methods of requests not answered yet (HEAD has no body), oldest first.
    pending_head: u32,
    /// Lines of the chunked trailer or chunk-size line gathered so far.
    line_len: usize,
    /// Body bytes of the current message so far.
    body_seen: u64,
    /// Keep heads and report body bytes (for signatures).
    raw: bool,
}

impl HttpStream {
    /// Back to a new stream's state, its buffer returned to the thread's pool.
    pub fn reset(&mut self) {
        give_bytes(&mut self.buf);
        *self = HttpStream::default();
    }

    /// Keeps each head's raw bytes and reports body bytes as [`HttpEvent::Body`].
    pub fn keep_raw(&mut self, on: bool) {
        self.raw = on;
    }

    /// True after CONNECT or an upgrade: the bytes that follow are another protocol.
    pub fn is_tunnel(&self) -> bool {
        self.body == Body::Tunnel
    }

    /// True when this direction can no longer be parsed.
    pub fn is_dead(&self) -> bool {
        self.body == Body::Dead
    }

    /// Body bytes of the current message seen so far (for a body that runs to the close).
    pub fn body_seen(&self) -> u64 {
        self.body_seen
    }

    /// Bytes held across feeds.
    pub fn held(&self) -> usize {
        self.buf.capacity()
    }

    /// Marks the next response as having no body (the request was HEAD).
    pub fn expect_head_response(&mut self) {
        self.pending_head = self.pending_head.saturating_add(1);
    }

    /// Switches this direction to tunnel mode (after a CONNECT was answered 2xx, or 101).
    pub fn set_tunnel(&mut self) {
        self.body = Body::Tunnel;
        give_bytes(&mut self.buf);
    }

    /// A gap in the stream: message boundaries are lost, so parsing stops.
    pub fn gap(&mut self) {
        if self.body != Body::Tunnel {
            self.body = Body::Dead;
            give_bytes(&mut self.buf);
        }
    }

    /// Feeds in-order bytes; calls `out` for each head found. Returns how many bytes were
    /// consumed before the stream turned into a tunnel (all of them otherwise).
    pub fn feed<'d>(
        &mut self,
        data: &'d [u8],
        is_request: bool,
        out: &mut impl FnMut(HttpEvent<'d>),
    ) -> usize {
        self.feed_upto(data, is_request, usize::MAX, out)
    }

    /// [`HttpStream::feed`], stopping before a step that could take the events past `max`
    /// (a step raises at most [`STEP_EVENTS`]; the first step always runs): a caller that holds
    /// the events in a fixed array feeds the rest again after handling them. Returns the bytes
    /// consumed.
    pub fn feed_upto<'d>(
        &mut self,
        mut data: &'d [u8],
        is_request: bool,
        max: usize,
        out: &mut impl FnMut(HttpEvent<'d>),
    ) -> usize {
        let total = data.len();
        let raised = std::cell::Cell::new(0usize);
        let out = &mut |e: HttpEvent<'d>| {
            raised.set(raised.get() + 1);
            out(e)
        };
        let mut first = true;
        while !data.is_empty() {
            if !first && raised.get().saturating_add(STEP_EVENTS) > max {
                return total - data.len();
            }
            first = false;
            match self.body {
                Body::Dead => return total,
                Body::Tunnel => return total - data.len(),
                Body::UntilClose => {
                    self.body_seen += data.len() as u64;
                    if self.raw {
                        out(HttpEvent::Body(data));
                    }
                    return total;
                }
                Body::Length(n) => {
                    let k = (n as usize).min(data.len()) as u64;
                    if self.raw {
                        out(HttpEvent::Body(&data[..k as usize]));
                    }
                    data = &data[k as usize..];
                    self.body_seen += k;
                    self.body = if n == k {
                        Body::Head
                    } else {
                        Body::Length(n - k)
                    };
                    if n == k {
                        out(HttpEvent::BodyEnd(self.body_seen));
                    }
                }
                Body::ChunkData(n) => {
                    let k = (n as usize).min(data.len()) as u64;
                    if self.raw {
                        out(HttpEvent::Body(&data[..k as usize]));
                    }
                    data = &data[k as usize..];
                    self.body_seen += k;
                    self.body = if n == k {
                        Body::ChunkCrlf(0)
                    } else {
                        Body::ChunkData(n - k)
                    };
                }
                Body::ChunkCrlf(seen) => {
                    // Accept CRLF or a bare LF.
                    let b = data[0];
                    data = &data[1..];
                    self.body = match (seen, b) {
                        (0, b'\r') => Body::ChunkCrlf(1),
                        (_, b'\n') => Body::ChunkSize,
                        _ => {
                            out(HttpEvent::Error("http.invalid_chunk_data"));
                            Body::Dead
                        }
                    };
                }
                Body::ChunkSize | Body::Trailer => {
                    let Some(nl) = data.iter().position(|&b| b == b'\n') else {
                        self.buf_line(data, out);
                        return total;
                    };
                    let line_owned;
                    let line: &[u8] = if self.buf.is_empty() {
                        &data[..nl]
                    } else {
                        more(&mut self.buf, &data[..nl]);
                        line_owned = Lent::take(&mut self.buf);
                        &line_owned
                    };
                    data = &data[nl + 1..];
                    self.line_len = 0;
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    if self.body == Body::Trailer {
                        if line.is_empty() {
                            self.body = Body::Head;
                            out(HttpEvent::BodyEnd(self.body_seen));
                        }
                        continue;
                    }
                    let hex = line.split(|&b| b == b';').next().unwrap_or(&[]);
                    let hex = trim(hex);
                    if hex.is_empty() {
                        // Blank lines before a chunk size are tolerated (as libhtp does).
                        continue;
                    }
                    match parse_hex(hex) {
                        Some(0) => self.body = Body::Trailer,
                        Some(n) => self.body = Body::ChunkData(n),
                        None => {
                            out(HttpEvent::Error("http.invalid_chunklen"));
                            self.body = Body::Dead;
                        }
                    }
                }
                Body::Head => {
                    // Skip stray CRLFs between messages (RFC 9112 2.2).
                    if self.buf.is_empty() {
                        let skip = data
                            .iter()
                            .take_while(|&&b| b == b'\r' || b == b'\n')
                            .count();
                        data = &data[skip..];
                        if data.is_empty() {
                            break;
                        }
                    }
                    let (end, from_buf) = match find_head_end(&self.buf, data) {
                        Some(x) => x,
                        None => {
                            if self.buf.len() + data.len() > MAX_HEAD {
                                out(HttpEvent::Error(if is_request {
                                    "http.request_header_too_long"
                                } else {
                                    "http.response_header_too_long"
                                }));
                                self.body = Body::Dead;
                                give_bytes(&mut self.buf);
                                return total;
                            }
                            more(&mut self.buf, data);
                            return total;
                        }
                    };
                    let owned;
                    let head: &[u8] = if from_buf == 0 {
                        let h = &data[..end];
                        data = &data[end..];
                        h
                    } else {
                        let take = end - from_buf;
                        more(&mut self.buf, &data[..take]);
                        data = &data[take..];
                        owned = Lent::take(&mut self.buf);
                        &owned
                    };
                    if head.len() > MAX_HEAD {
                        out(HttpEvent::Error("http.request_header_too_long"));
                        self.body = Body::Dead;
                        return total;
                    }
                    self.on_head(head, is_request, out);
                }
            }
        }
        total
    }

    fn buf_line<'d>(&mut self, data: &[u8], out: &mut impl FnMut(HttpEvent<'d>)) {
        self.line_len += data.len();
        if self.line_len > MAX_FIELD {
            out(HttpEvent::Error("http.invalid_chunklen"));
            self.body = Body::Dead;
            give_bytes(&mut self.buf);
            return;
        }
        more(&mut self.buf, data);
    }

    fn on_head<'d>(&mut self, head: &[u8], is_request: bool, out: &mut impl FnMut(HttpEvent<'d>)) {
        let mut lines = head
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        let first = lines.next().unwrap_or(&[]);
        let mut parts = first.split(|&b| b == b' ').filter(|p| !p.is_empty());
        let (a, b, c) = (parts.next(), parts.next(), parts.next());
        let mut clen: Option<u64> = None;
        let mut chunked = false;
        let mut host = None;
        let mut ua = None;
        let mut ctype = None;
        let mut upgrade = false;
        for l in lines {
            let Some(colon) = l.iter().position(|&b| b == b':') else {
                continue;
            };
            let (name, value) = (trim(&l[..colon]), trim(&l[colon + 1..]));
            if name.eq_ignore_ascii_case(b"host") {
                host.get_or_insert(value);
            } else if name.eq_ignore_ascii_case(b"user-agent") {
                ua.get_or_insert(value);
            } else if name.eq_ignore_ascii_case(b"content-type") {
                ctype.get_or_insert(value);
            } else if name.eq_ignore_ascii_case(b"content-length") {
                clen = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                chunked = value
                    .split(|&b| b == b',')
                    .any(|v| trim(v).eq_ignore_ascii_case(b"chunked"));
            } else if name.eq_ignore_ascii_case(b"upgrade") {
                upgrade = true;
            }
        }
        // A field's first MAX_FIELD bytes, written as text (lossy).
        let put = |out: &mut String, b: &[u8]| push_lossy(out, field(b));
        if is_request {
            let (Some(method), Some(uri)) = (a, b) else {
                out(HttpEvent::Error("http.request_line_invalid"));
                self.body = Body::Dead;
                return;
            };
            let mut req = Pooled::<Request>::take();
            put(&mut req.method, method);
            put(&mut req.uri, uri);
            if let Some(c) = c {
                put(&mut req.protocol, c);
            }
            req.host = host.map(|h| req.spares.text(field(strip_port(h))));
            req.user_agent = ua.map(|u| req.spares.text(field(u)));
            if self.raw {
                req.head.extend_from_slice(head);
            }
            req.has_body = chunked || clen.is_some_and(|n| n > 0);
            self.body_seen = 0;
            out(HttpEvent::Request(req));
            self.body = if chunked {
                Body::ChunkSize
            } else {
                match clen {
                    Some(n) if n > 0 => Body::Length(n),
                    _ => Body::Head,
                }
            };
        } else {
            let status = b
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.parse::<u16>().ok());
            let (Some(proto), Some(status)) = (
                a.filter(|p| p.len() >= 5 && p[..5].eq_ignore_ascii_case(b"HTTP/")),
                status,
            ) else {
                out(HttpEvent::Error("http.response_line_invalid"));
                self.body = Body::Dead;
                return;
            };
            self.body_seen = 0;
            let mut resp = Pooled::<Response>::take();
            resp.status = status;
            put(&mut resp.protocol, proto);
            resp.content_type = ctype.map(|t| resp.spares.text(field(t)));
            resp.content_length = clen;
            if self.raw {
                resp.head.extend_from_slice(head);
            }
            out(HttpEvent::Response(resp));
            if status == 101 && upgrade {
                self.set_tunnel();
                return;
            }
            if (100..200).contains(&status) {
                self.body = Body::Head;
                return;
            }
            let head_req = if self.pending_head > 0 {
                self.pending_head -= 1;
                true
            } else {
                false
            };
            self.body = if head_req || status == 204 || status == 304 {
                Body::Head
            } else if chunked {
                Body::ChunkSize
            } else {
                match clen {
                    Some(0) => Body::Head,
                    Some(n) => Body::Length(n),
                    None => Body::UntilClose,
                }
            };
            if self.body == Body::Head {
                out(HttpEvent::BodyEnd(0));
            }
        }
    }
}

/// A field's first [`MAX_FIELD`] bytes.
fn field(b: &[u8]) -> &[u8] {
    &b[..b.len().min(MAX_FIELD)]
}

/// Finds the end of a head (after the blank line) in `buf ++ data`.
/// Returns (end offset in the concatenation, buf.len()).
fn find_head_end(buf: &[u8], data: &[u8]) -> Option<(usize, usize)> {
    // Search the concatenation without copying: check the seam, then `data`.
    let tail_start = buf.len().saturating_sub(3);
    let mut seam = [0u8; 6];
    let tail = &buf[tail_start..];
    let head_n = data.len().min(3);
    seam[..tail.len()].copy_from_slice(tail);
    seam[tail.len()..tail.len() + head_n].copy_from_slice(&data[..head_n]);
    let seam = &seam[..tail.len() + head_n];
    for i in 0..seam.len() {
        let w = &seam[i..];
        let end = if w.starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if w.starts_with(b"\n\n") {
            Some(i + 2)
        } else if w.starts_with(b"\n\r\n") {
            Some(i + 3)
        } else {
            None
        };
        if let Some(e) = end {
            let abs = tail_start + e;
            if abs > buf.len() {
                return Some((abs, buf.len()));
            }
        }
    }
    let mut i = 0;
    while let Some(p) = memchr_nl(&data[i..]) {
        let nl = i + p;
        let rest = &data[nl + 1..];
        if rest.starts_with(b"\r\n") {
            return Some((buf.len() + nl + 3, buf.len()));
        }
        if rest.starts_with(b"\n") {
            return Some((buf.len() + nl + 2, buf.len()));
        }
        i = nl + 1;
    }
    None
}

fn memchr_nl(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

fn trim(b: &[u8]) -> &[u8] {
    let s = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let e = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(s, |e| e + 1);
    &b[s..e.max(s)]
}

fn strip_port(h: &[u8]) -> &[u8] {
    if h.starts_with(b"[") {
        // An IPv6 literal keeps its brackets, as Suricata logs it.
        return h.iter().position(|&b| b == b']').map_or(h, |e| &h[..=e]);
    }
    match h.iter().rposition(|&b| b == b':') {
        Some(i) if h[i + 1..].iter().all(u8::is_ascii_digit) => &h[..i],
        _ => h,
    }
}

fn parse_hex(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 15 {
        return None;
    }
    let mut v = 0u64;
    for &c in b {
        v = v * 16 + (c as char).to_digit(16)? as u64;
    }
    Some(v)
}

/// Cheap test for an HTTP/1.x request start: a known method and a space.
pub fn probe_request(b: &[u8]) -> Option<bool> {
    const METHODS: [&[u8]; 9] = [
        b"GET ",
        b"POST ",
        b"HEAD ",
        b"PUT ",
        b"DELETE ",
        b"OPTIONS ",
        b"CONNECT ",
        b"PATCH ",
        b"TRACE ",
    ];
    for m in METHODS {
        let n = m.len().min(b.len());
        if b[..n] == m[..n] {
            return if n == m.len() { Some(true) } else { None };
        }
    }
    Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<'d>(s: &mut HttpStream, data: &'d [u8], req: bool) -> Vec<HttpEvent<'d>> {
        let mut v = Vec::new();
        s.feed(data, req, &mut |e| v.push(e));
        v
    }

    /// The requests and responses of `data` as values (a fresh stream).
    fn heads(data: &[u8], req: bool) -> Vec<(Option<Request>, Option<Response>)> {
        let mut s = HttpStream::default();
        s.keep_raw(true);
        run(&mut s, data, req)
            .into_iter()
            .filter_map(|e| match e {
                HttpEvent::Request(r) => Some((Some((*r).clone()), None)),
                HttpEvent::Response(r) => Some((None, Some((*r).clone()))),
                _ => None,
            })
            .collect()
    }

    /// Heads parsed into recycled requests and responses (each event's object goes back to
    /// the thread's pool before the next head is read) are those a new thread, with nothing
    /// to recycle, parses.
    #[test]
    fn recycled_heads_parse_as_fresh_ones() {
        let reqs: &[&[u8]] = &[
            b"GET /a/very/long/path/with/many/parts?and=query HTTP/1.1\r\nHost: long.example:8080\r\nUser-Agent: curl/8.5.0\r\n\r\n",
            b"POST /p HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
            b"GET / HTTP/1.1\r\nUser-Agent: \xff\xfe\r\n\r\n",
            b"HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n",
        ];
        let resps: &[&[u8]] = &[
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
        ];
        for (list, req) in [(reqs, true), (resps, false)] {
            let all: Vec<u8> = list
                .iter()
                .chain(list.iter().rev())
                .flat_map(|h| h.iter().copied())
                .collect();
            let want: Vec<_> = list
                .iter()
                .chain(list.iter().rev())
                .flat_map(|h| {
                    let h = h.to_vec();
                    std::thread::spawn(move || heads(&h, req)).join().unwrap()
                })
                .collect();
            assert_eq!(want.len(), list.len() * 2);
            let _warm = heads(&all, req);
            let got = heads(&all, req);
            assert_eq!(got, want);
        }
        let mut r = heads(reqs[0], true).remove(0).0.unwrap();
        assert_eq!(r.host.as_deref(), Some("long.example"));
        r.recycle();
        assert_eq!(r, Request::default());
    }

    #[test]
    fn pipelined_requests_with_bodies_in_any_split() {
        let wire = b"POST /a HTTP/1.1\r\nHost: one.example:8080\r\nContent-Length: 5\r\n\r\nhelloGET /b?x HTTP/1.1\r\nhost: two.example\r\nUser-Agent: t/1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nHEAD /c HTTP/1.0\r\nHost: [2001:db8::1]:80\r\n\r\n";
        for cut in 0..wire.len() {
            let mut s = HttpStream::default();
            let mut ev = run(&mut s, &wire[..cut], true);
            ev.extend(run(&mut s, &wire[cut..], true));
            // The two bodies end (5 bytes, 3 bytes de-chunked).
            let ends: Vec<u64> = ev
                .iter()
                .filter_map(|e| match e {
                    HttpEvent::BodyEnd(n) => Some(*n),
                    _ => None,
                })
                .collect();
            assert_eq!(ends, [5, 3], "cut {cut}");
            let hosts: Vec<_> = ev
                .iter()
                .filter(|e| !matches!(e, HttpEvent::BodyEnd(_)))
                .map(|e| match e {
                    HttpEvent::Request(r) => (
                        r.method.clone(),
                        r.uri.clone(),
                        r.host.clone().unwrap_or_default(),
                    ),
                    other => panic!("cut {cut}: {other:?}"),
                })
                .collect();
            assert_eq!(
                hosts,
                [
                    ("POST".into(), "/a".into(), "one.example".into()),
                    ("GET".into(), "/b?x".into(), "two.example".into()),
                    ("HEAD".into(), "/c".into(), "[2001:db8::1]".into())
                ],
                "cut {cut}"
            );
        }
    }

    /// An event as comparable text.
    fn show(e: &HttpEvent<'_>) -> String {
        match e {
            HttpEvent::Request(r) => format!("req {} {} {:?}", r.method, r.uri, r.host),
            HttpEvent::Response(r) => format!("resp {} {:?}", r.status, r.content_length),
            HttpEvent::Body(b) => format!("body {}", String::from_utf8_lossy(b)),
            HttpEvent::BodyEnd(n) => format!("end {n}"),
            HttpEvent::Error(a) => format!("error {a}"),
        }
    }

    /// Fed in turns of at most `max` events (as the engine feeds, handling each turn's events
    /// before the next), every split of pipelined messages gives the events one feed of each
    /// part gives, in the same order, and no turn raises more than `max`.
    #[test]
    fn feeding_in_turns_raises_the_same_events() {
        let reqs = b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nGET /c HTTP/1.1\r\nHost: c\r\n\r\nGET /d HTTP/1.1\r\n\r\nGET /e HTTP/1.1\r\n\r\nGET /f HTTP/1.1\r\n\r\nBROKEN\r\n\r\n";
        let resps = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwxyz\r\n0\r\n\r\nHTTP/1.1 101 Switching\r\nUpgrade: h2c\r\n\r\nPRI * HTTP/2.0";
        for (wire, req) in [(&reqs[..], true), (&resps[..], false)] {
            for cut in 0..wire.len() {
                let parts = [&wire[..cut], &wire[cut..]];
                let mut want = Vec::new();
                let mut s = HttpStream::default();
                s.keep_raw(true);
                let mut want_used = 0;
                for p in parts {
                    want_used += s.feed(p, req, &mut |e| want.push(show(&e)));
                }
                for max in 2..=5 {
                    let mut got = Vec::new();
                    let mut s = HttpStream::default();
                    s.keep_raw(true);
                    let mut used = 0;
                    for p in parts {
                        let mut rest = p;
                        while !rest.is_empty() && !s.is_tunnel() {
                            let mut turn = 0;
                            let n = s.feed_upto(rest, req, max, &mut |e| {
                                turn += 1;
                                got.push(show(&e))
                            });
                            assert!(turn <= max, "cut {cut} max {max}: {turn} events");
                            if n == 0 {
                                break;
                            }
                            used += n;
                            rest = &rest[n..];
                        }
                    }
                    assert_eq!(got, want, "cut {cut} max {max}");
                    assert_eq!(used, want_used, "cut {cut} max {max}");
                }
            }
        }
    }

    #[test]
    fn responses_and_connect_tunnel() {
        let mut s = HttpStream::default();
        s.expect_head_response();
        let ev = run(&mut s, b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nnoHTTP/1.1 101 Switching\r\nUpgrade: websocket\r\n\r\n\x81\x00", false);
        let st: Vec<u16> = ev
            .iter()
            .filter_map(|e| match e {
                HttpEvent::Response(r) => Some(r.status),
                _ => None,
            })
            .collect();
        assert_eq!(st, [200, 404, 101]);
        assert!(s.is_tunnel());
    }

    #[test]
    fn oversized_head_is_an_anomaly() {
        let mut s = HttpStream::default();
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HEAD + 10));
        let ev = run(&mut s, &big, true);
        assert!(matches!(
            ev[..],
            [HttpEvent::Error("http.request_header_too_long")]
        ));
        assert!(s.is_dead());
    }
}

#[cfg(test)]
mod body_tests {
    use super::*;

    #[test]
    fn body_until_close_is_counted() {
        let mut s = HttpStream::default();
        let mut n = 0;
        s.feed(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nTHIS_IS_A_TEST",
            false,
            &mut |_| n += 1,
        );
        assert_eq!((n, s.body_seen()), (1, 14));
    }
}
