//! Suricata-style signatures: the rule language parsed into [`Sig`]s, compiled into an immutable
//! [`SigSet`] with one Aho-Corasick prefilter per inspection hook, and matched against the
//! buffers the engine hands over.
//!
//! # Loading
//! [`SigSetBuilder::add_file`] (or [`SigSetBuilder::add_text`]) reads rule files line by line
//! (a trailing `\` continues a rule on the next line). Each rule ends in one of three ways:
//! - loaded;
//! - skipped with a [`Skip`]: the rule is valid Suricata but uses something Palisade cannot honour
//!   exactly (a keyword, a protocol it does not parse, a PCRE construct the regex crate lacks).
//!   The skip names the file, line, sid and keyword; nothing is silently approximated;
//! - a syntax error ([`RuleError`], file and line): the rest of the file still loads.
//!
//! # Matching
//! Every signature belongs to one [`Hook`]: a packet, a TCP stream chunk, a DNS query, a TLS or
//! QUIC hello, an HTTP request or response. For each hook and each buffer the set holds one
//! prefilter automaton over the signatures' fast patterns (the `fast_pattern` content, else the
//! longest positive content); only signatures whose fast pattern occurs, plus those that have
//! none, are evaluated in full. Evaluation follows Suricata's content inspection: relative
//! matches (`distance`, `within`, relative `pcre`, `isdataat`, `byte_jump`) backtrack through
//! earlier occurrences, bounded by [`MAX_STEPS`] per list.
//!
//! # Resource usage
//! Building parses and compiles every rule once (regexes included); all of ET Open (23,445 rules)
//! builds in about half a second on one core, with about 63 MB of automata (see
//! `bench/RESULTS.md`). Matching allocates nothing once
//! the [`Scratch`] has grown to the largest candidate list; per-flow state ([`FlowSigs`]) holds
//! flowbits (at most [`MAX_FLOWBITS`]) and a stream tail of at most [`STREAM_TAIL`] bytes per
//! direction; thresholds keep at most [`MAX_THRESHOLDS`] tracked entries, oldest evicted first.

mod build;
mod eval;
mod parse;
mod pcre;
mod sieve;
#[cfg(test)]
mod tests;

pub use build::{SigSet, SigSetBuilder};
pub use eval::{Buffers, FlowSigs, Matched, Packet, Scratch};
pub use parse::{parse_rule, Parsed, Vars};

/// The prefilter kernel this CPU runs for payloads, streams and bodies: `avx512` (the sieve's
/// 64-position kernel) or `scalar` (a 32-position sieve, Teddy for small sets). Throughput
/// with large rule sets differs by about 1.5x between the two (`bench/RESULTS.md`).
pub fn prefilter_kernel() -> &'static str {
    if sieve::wide_available() {
        "avx512"
    } else {
        "scalar"
    }
}

/// A fixed set of anomaly event names (from [`EVENTS`]): the first 8 distinct added, the rest
/// ignored. A packet's raised events and a flow's application events are kept in one each; no
/// allocation.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventSet {
    names: [&'static str; 8],
    n: u8,
}

impl EventSet {
    /// Adds `name` unless present or the set is full.
    pub fn add(&mut self, name: &'static str) {
        let n = self.n as usize;
        if n < self.names.len() && !self.names[..n].contains(&name) {
            self.names[n] = name;
            self.n += 1;
        }
    }

    /// The names held, in the order added.
    pub fn as_slice(&self) -> &[&'static str] {
        &self.names[..self.n as usize]
    }

    /// Whether `name` is held.
    pub fn contains(&self, name: &str) -> bool {
        self.as_slice().contains(&name)
    }

    /// Empties the set.
    pub fn clear(&mut self) {
        self.n = 0;
    }
}

use std::fmt;
use std::net::IpAddr;

/// Steps a content list may take while backtracking before it gives up (counted as a miss).
pub const MAX_STEPS: u32 = 4096;
/// Flowbits held per flow.
pub const MAX_FLOWBITS: usize = 64;
/// Bytes of earlier stream data kept per direction so matches may span chunks.
pub const STREAM_TAIL: usize = 2048;
/// Tracked threshold and detection_filter entries (oldest evicted first).
pub const MAX_THRESHOLDS: usize = 65_536;

/// A rule's action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SigAction {
    /// Stops inspection of the flow; no alert unless the rule says `alert`.
    Pass,
    /// Drops the packet and the rest of the flow (inline).
    Drop,
    /// Drops and sends resets to both ends (inline; UDP and others: drop).
    Reject,
    /// Raises an alert only.
    Alert,
}

impl SigAction {
    /// Suricata's name for the action.
    pub fn as_str(self) -> &'static str {
        match self {
            SigAction::Pass => "pass",
            SigAction::Drop => "drop",
            SigAction::Reject => "reject",
            SigAction::Alert => "alert",
        }
    }
}

/// The protocol named in a rule header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    /// Any IP packet.
    Ip,
    /// TCP (content is matched over the reassembled stream).
    Tcp,
    /// TCP, packet payloads only.
    TcpPkt,
    /// TCP, reassembled stream only.
    TcpStream,
    /// UDP.
    Udp,
    /// ICMP and ICMPv6.
    Icmp,
    /// A flow recognised as DNS.
    Dns,
    /// A flow recognised as TLS.
    Tls,
    /// A flow recognised as HTTP/1.x.
    Http,
    /// A flow recognised as QUIC.
    Quic,
    /// Suricata's `pkthdr`: any packet, also one that failed to decode (for `decode-event`).
    Pkthdr,
    /// A TCP flow recognised as SMTP, FTP, SSH or SMB (detected, not parsed: raw content only).
    Smtp,
    /// FTP control connection.
    Ftp,
    /// SSH.
    Ssh,
    /// SMB (over NetBIOS session service).
    Smb,
}

/// The application protocol the engine recognised on a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum App {
    /// Nothing recognised (yet).
    #[default]
    None,
    /// DNS.
    Dns,
    /// TLS.
    Tls,
    /// HTTP/1.x.
    Http,
    /// QUIC.
    Quic,
    /// SMTP (detected by the client's `EHLO`/`HELO`).
    Smtp,
    /// FTP (detected by the client's first command).
    Ftp,
    /// SSH (the `SSH-` banner).
    Ssh,
    /// SMB (a NetBIOS session message carrying SMB1, SMB2 or SMB3).
    Smb,
}

/// Where a signature is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Hook {
    /// Each packet (payload content, header keywords).
    Packet = 0,
    /// Each in-order chunk of a TCP stream.
    Stream,
    /// Each DNS query name (requests and responses).
    Dns,
    /// A TLS ClientHello.
    TlsClient,
    /// A TLS ServerHello.
    TlsServer,
    /// The server's certificates (TLS 1.2 and older send them in clear).
    TlsCert,
    /// A QUIC ClientHello.
    Quic,
    /// A complete HTTP request (head, and body up to the inspection limit).
    HttpRequest,
    /// A complete HTTP response, with its request's buffers.
    HttpResponse,
}

/// Number of hooks.
pub const HOOKS: usize = 9;

macro_rules! buffers {
    ($( $v:ident = $name:literal, $dir:ident, $hook:ident; )*) => {
        /// A named buffer a content list inspects.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        #[allow(missing_docs)]
        pub enum Buf { $( $v, )* }

        /// Number of buffers.
        pub const BUFS: usize = [$( Buf::$v, )*].len();

        impl Buf {
            /// Suricata's sticky-buffer name.
            pub fn name(self) -> &'static str {
                match self { $( Buf::$v => $name, )* }
            }
            /// Which side of an HTTP transaction carries it.
            pub(crate) fn side(self) -> Side {
                match self { $( Buf::$v => Side::$dir, )* }
            }
            /// The hook that provides it.
            pub(crate) fn hook(self) -> Option<Hook> {
                match self { $( Buf::$v => hook!($hook), )* }
            }
        }
    };
}

macro_rules! hook {
    (Any) => {
        None
    };
    ($h:ident) => {
        Some(Hook::$h)
    };
}

/// Which side of a transaction a buffer belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Any,
    Request,
    Response,
    Both,
}

buffers! {
    Payload = "payload", Any, Any;
    DnsQuery = "dns.query", Any, Dns;
    TlsSni = "tls.sni", Any, TlsClient;
    TlsAlpn = "tls.alpn", Any, TlsClient;
    Ja3Hash = "ja3.hash", Any, TlsClient;
    Ja3String = "ja3.string", Any, TlsClient;
    Ja4Hash = "ja4.hash", Any, TlsClient;
    Ja3sHash = "ja3s.hash", Any, TlsServer;
    Ja3sString = "ja3s.string", Any, TlsServer;
    TlsCertSubject = "tls.cert_subject", Any, TlsCert;
    TlsCertIssuer = "tls.cert_issuer", Any, TlsCert;
    TlsCertSerial = "tls.cert_serial", Any, TlsCert;
    TlsCertFingerprint = "tls.cert_fingerprint", Any, TlsCert;
    TlsCerts = "tls.certs", Any, TlsCert;
    TlsSubjectAltName = "tls.subjectaltname", Any, TlsCert;
    QuicSni = "quic.sni", Any, Quic;
    QuicVersion = "quic.version", Any, Quic;
    QuicCyuHash = "quic.cyu.hash", Any, Quic;
    QuicCyuString = "quic.cyu.string", Any, Quic;
    QuicUa = "quic.ua", Any, Quic;
    HttpUri = "http.uri", Request, HttpRequest;
    HttpUriRaw = "http.uri.raw", Request, HttpRequest;
    HttpMethod = "http.method", Request, HttpRequest;
    HttpHost = "http.host", Request, HttpRequest;
    HttpHostRaw = "http.host.raw", Request, HttpRequest;
    HttpUserAgent = "http.user_agent", Request, HttpRequest;
    HttpReferer = "http.referer", Request, HttpRequest;
    HttpAccept = "http.accept", Request, HttpRequest;
    HttpAcceptEnc = "http.accept_enc", Request, HttpRequest;
    HttpAcceptLang = "http.accept_lang", Request, HttpRequest;
    HttpRequestLine = "http.request_line", Request, HttpRequest;
    HttpRequestBody = "http.request_body", Request, HttpRequest;
    HttpCookie = "http.cookie", Both, HttpRequest;
    HttpHeader = "http.header", Both, HttpRequest;
    HttpHeaderRaw = "http.header.raw", Both, HttpRequest;
    HttpHeaderNames = "http.header_names", Both, HttpRequest;
    HttpContentType = "http.content_type", Both, HttpRequest;
    HttpContentLen = "http.content_len", Both, HttpRequest;
    HttpConnection = "http.connection", Both, HttpRequest;
    HttpStart = "http.start", Both, HttpRequest;
    HttpProtocol = "http.protocol", Both, HttpRequest;
    FileData = "file.data", Both, HttpRequest;
    HttpStatCode = "http.stat_code", Response, HttpResponse;
    HttpStatMsg = "http.stat_msg", Response, HttpResponse;
    HttpResponseLine = "http.response_line", Response, HttpResponse;
    HttpResponseBody = "http.response_body", Response, HttpResponse;
    HttpServer = "http.server", Response, HttpResponse;
    HttpLocation = "http.location", Response, HttpResponse;
}

/// A numeric comparison (`dsize`, `bsize`, `urilen`, `itype`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// Equal.
    Eq(u64),
    /// Not equal.
    Ne(u64),
    /// Less than.
    Lt(u64),
    /// Less than or equal.
    Le(u64),
    /// Greater than.
    Gt(u64),
    /// Greater than or equal.
    Ge(u64),
    /// Strictly between (`a<>b`).
    Between(u64, u64),
    /// Inclusive range (`a-b`, as `vlan.id` writes it).
    Range(u64, u64),
}

impl Cmp {
    /// Whether `v` satisfies the comparison.
    pub fn test(self, v: u64) -> bool {
        match self {
            Cmp::Eq(a) => v == a,
            Cmp::Ne(a) => v != a,
            Cmp::Lt(a) => v < a,
            Cmp::Le(a) => v <= a,
            Cmp::Gt(a) => v > a,
            Cmp::Ge(a) => v >= a,
            Cmp::Between(a, b) => v > a && v < b,
            Cmp::Range(a, b) => v >= a && v <= b,
        }
    }
}

/// One `content`.
#[derive(Debug, Clone)]
pub struct Content {
    /// The bytes (lowercased when `nocase`).
    pub pat: Vec<u8>,
    /// Case-insensitive (ASCII).
    pub nocase: bool,
    /// `!content`: the pattern must not occur in the window.
    pub negated: bool,
    /// Absolute window start.
    pub offset: u32,
    /// Absolute window length from `offset`.
    pub depth: Option<u32>,
    /// Relative: start at least this far after the previous match (may be negative).
    pub distance: Option<i32>,
    /// Relative: end at most this far after the previous match end (plus `distance`).
    pub within: Option<u32>,
    /// Must end where the buffer ends.
    pub endswith: bool,
    /// Marked `fast_pattern`.
    pub fast_pattern: bool,
}

impl Content {
    pub(crate) fn relative(&self) -> bool {
        self.distance.is_some() || self.within.is_some()
    }
}

/// `byte_test` and `byte_jump` number encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumFmt {
    /// Binary, big endian.
    Big,
    /// Binary, little endian.
    Little,
    /// ASCII digits in the given base (8, 10, 16).
    Str(u32),
}

/// One element of a content list, evaluated in order.
#[derive(Debug, Clone)]
pub enum Step {
    /// `content`.
    Content(Content),
    /// `pcre` (an index into the set's regexes).
    Pcre {
        /// Index of the compiled regex.
        re: usize,
        /// Start at the previous match end (`R`).
        relative: bool,
        /// `!` in front: must not match.
        negated: bool,
    },
    /// `isdataat`.
    IsDataAt {
        /// Position.
        n: u32,
        /// From the previous match end.
        relative: bool,
        /// `!`: there must be no data there.
        negated: bool,
    },
    /// `bsize`: the buffer's length.
    Bsize(Cmp),
    /// `byte_test`.
    ByteTest {
        /// Bytes to read (1-10).
        bytes: u8,
        /// Operator and operand.
        op: ByteOp,
        /// Whether the result is negated (`!op`).
        negated: bool,
        /// Where to read.
        offset: i32,
        /// From the previous match end.
        relative: bool,
        /// Encoding.
        fmt: NumFmt,
        /// Mask applied before comparing.
        bitmask: Option<u64>,
    },
    /// `base64_decode` followed by `base64_data`: the steps after it run on the decoded bytes.
    Base64 {
        /// Input bytes to decode at most (the rest of the buffer when absent).
        bytes: Option<u32>,
        /// Where decoding starts.
        offset: u32,
        /// From the previous match end.
        relative: bool,
    },
    /// `dataset`: the whole (transformed) buffer against a named set of strings.
    Dataset {
        /// Index of the set.
        id: u32,
        /// What to do.
        op: DatasetOp,
        /// `match subdomain`: the buffer or a parent domain of it is in the set.
        subdomain: bool,
    },
    /// `byte_jump`: moves the cursor.
    ByteJump {
        /// Bytes to read (1-10).
        bytes: u8,
        /// Where to read.
        offset: i32,
        /// From the previous match end.
        relative: bool,
        /// Encoding.
        fmt: NumFmt,
        /// Multiplier of the value read.
        multiplier: u32,
        /// Round the jump up to a multiple of 4.
        align: bool,
        /// Jump from the buffer start instead of after the bytes read.
        from_beginning: bool,
        /// Jump from the buffer end.
        from_end: bool,
        /// Added after the jump.
        post_offset: i32,
        /// Mask applied to the value read.
        bitmask: Option<u64>,
    },
}

/// `dataset` operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetOp {
    /// Matches when the value is in the set.
    IsSet,
    /// Matches when it is not.
    IsNotSet,
    /// Adds the value; matches when it was not there yet.
    Set,
}

/// `byte_test` operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOp {
    /// `<`
    Lt(u64),
    /// `>`
    Gt(u64),
    /// `<=`
    Le(u64),
    /// `>=`
    Ge(u64),
    /// `=`
    Eq(u64),
    /// `&`: any of the bits set.
    And(u64),
    /// `^`: any bit differs.
    Xor(u64),
}

/// A transform applied to a buffer before inspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Transform {
    /// Prepends a `.` (so `.example.com` matches the name and its subdomains only).
    DotPrefix,
    /// ASCII lowercase.
    ToLower,
    /// Removes spaces and tabs.
    StripWhitespace,
}

/// A buffer with its transforms and its steps.
#[derive(Debug, Clone)]
pub struct List {
    /// Which buffer.
    pub buf: Buf,
    /// Transforms, in order.
    pub transforms: Vec<Transform>,
    /// Steps, in rule order.
    pub steps: Vec<Step>,
}

/// `flow:` options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowOpts {
    /// Client to server only.
    pub to_server: bool,
    /// Server to client only.
    pub to_client: bool,
    /// Only once the handshake completed.
    pub established: bool,
    /// Only before.
    pub not_established: bool,
    /// Only on stream (reassembled) data.
    pub only_stream: bool,
    /// Only on packet payloads.
    pub no_stream: bool,
}

/// A flowbits operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flowbit {
    /// Sets the bits when the rule matches.
    Set(Vec<u32>),
    /// Clears them when the rule matches.
    Unset(Vec<u32>),
    /// Flips them when the rule matches.
    Toggle(Vec<u32>),
    /// Condition: any of the bits is set.
    IsSet(Vec<u32>),
    /// Condition: none of the bits is set.
    IsNotSet(Vec<u32>),
}

/// A `flowint` operation on a per-flow integer variable (names interned like flowbits').
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flowint {
    /// `=`: set to the target when the rule matches.
    Set(u32, IntArg),
    /// `+`: add the target when the rule matches (an unset variable becomes the target;
    /// 32-bit arithmetic wraps, as Suricata's).
    Add(u32, IntArg),
    /// `-`: subtract the target when the rule matches (an unset variable stays unset).
    Sub(u32, IntArg),
    /// Condition `==, !=, <, <=, >, >=` against the target; false when the variable is unset.
    Cmp(u32, IntCmp, IntArg),
    /// Condition: the variable is set.
    IsSet(u32),
    /// Condition: the variable is not set.
    NotSet(u32),
}

/// A `flowint` target: a number, or another variable (unset counts as 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntArg {
    /// A literal.
    Value(u32),
    /// A variable.
    Var(u32),
}

/// A `flowint` comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntCmp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// Per-flow `flowint` variables, at most this many (more are counted and not created).
pub const MAX_FLOWINTS: usize = 64;

/// An `xbits` operation: a named bit held per host or host pair for a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xbit {
    /// The operation (the `Flowbit` variants are reused: set, unset, toggle, isset, isnotset).
    pub op: Flowbit,
    /// `ip_src`, `ip_dst` or `ip_pair`.
    pub track: Track,
    /// Seconds a set bit lives (Suricata's default: 30).
    pub expire: u32,
}

/// What a threshold tracks by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Track {
    /// Source address.
    Src,
    /// Destination address.
    Dst,
    /// Both addresses.
    Both,
    /// The rule as a whole.
    Rule,
}

/// `threshold` and `detection_filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threshold {
    /// Alert on the first `count` matches per window.
    Limit {
        /// Tracked by.
        track: Track,
        /// Count.
        count: u32,
        /// Window in seconds.
        seconds: u32,
    },
    /// Alert on every `count`-th match within the window.
    Threshold {
        /// Tracked by.
        track: Track,
        /// Count.
        count: u32,
        /// Window in seconds.
        seconds: u32,
    },
    /// Alert once per window, when the count is reached.
    Both {
        /// Tracked by.
        track: Track,
        /// Count.
        count: u32,
        /// Window in seconds.
        seconds: u32,
    },
    /// `detection_filter`: alert on each match after the first `count` within the window.
    Filter {
        /// Tracked by.
        track: Track,
        /// Count.
        count: u32,
        /// Window in seconds.
        seconds: u32,
    },
}

/// An address group: `any`, addresses, CIDRs, nested groups, negation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrExpr {
    /// Anything.
    Any,
    /// A prefix.
    Net(IpAddr, u8),
    /// Negation.
    Not(Box<AddrExpr>),
    /// A group: matches when some positive item matches (or there is none) and no negated one.
    List(Vec<AddrExpr>),
}

/// A port group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortExpr {
    /// Anything.
    Any,
    /// An inclusive range.
    Range(u16, u16),
    /// Negation.
    Not(Box<PortExpr>),
    /// A group, as for addresses.
    List(Vec<PortExpr>),
}

/// A loaded signature.
#[derive(Debug, Clone)]
pub struct Sig {
    /// Action.
    pub action: SigAction,
    /// Header protocol.
    pub proto: Proto,
    /// Source addresses.
    pub src: AddrExpr,
    /// Source ports.
    pub sport: PortExpr,
    /// Destination addresses.
    pub dst: AddrExpr,
    /// Destination ports.
    pub dport: PortExpr,
    /// `<>`: either direction.
    pub bidir: bool,
    /// `msg`.
    pub msg: String,
    /// `sid`.
    pub sid: u64,
    /// `rev`.
    pub rev: u32,
    /// `gid`.
    pub gid: u32,
    /// `classtype`.
    pub classtype: Option<String>,
    /// Severity: `priority`, else the classtype's, else 3.
    pub priority: u8,
    /// `metadata` (kept for the alert).
    pub metadata: Vec<String>,
    /// `target:src_ip|dest_ip`: which side is the target.
    pub target: Option<bool>,
    /// `flow`.
    pub flow: FlowOpts,
    /// `dsize`.
    pub dsize: Option<Cmp>,
    /// `urilen`.
    pub urilen: Option<Cmp>,
    /// `flags`/`tcp.flags`: (mask of flags that must be set, mask of flags ignored, mode).
    pub tcp_flags: Option<(u8, u8, FlagMode)>,
    /// `itype`.
    pub itype: Option<Cmp>,
    /// `icode`.
    pub icode: Option<Cmp>,
    /// `ip_proto`.
    pub ip_proto: Option<u8>,
    /// `tls.version` (the hello's legacy version, e.g. 0x0303).
    pub tls_version: Option<u16>,
    /// `vlan.id` conditions: the comparison and the layer (`None`: any layer; `Some(i)`: that
    /// layer, negative from the innermost; [`VLAN_ALL`]: every layer).
    pub vlan_ids: Vec<(Cmp, Option<i8>)>,
    /// `vlan.layers`.
    pub vlan_layers: Option<Cmp>,
    /// `stream_size`: which side (0 client, 1 server, 2 both, 3 either) and the comparison.
    pub stream_size: Option<(u8, Cmp)>,
    /// Content lists by buffer.
    pub lists: Vec<List>,
    /// Flowbit conditions and actions, in rule order.
    pub flowbits: Vec<Flowbit>,
    /// `xbits` conditions and actions.
    pub xbits: Vec<Xbit>,
    /// `flowint` conditions and operations, in rule order.
    pub flowints: Vec<Flowint>,
    /// `flowbits:noalert` or `noalert`.
    pub noalert: bool,
    /// `alert` inside a `pass` rule: log the pass as an alert.
    pub pass_alert: bool,
    /// `threshold` or `detection_filter`.
    pub threshold: Option<Threshold>,
    /// `decode-event`, `stream-event` and `app-layer-event` conditions: anomaly names as the
    /// engine raises them (see [`EVENTS`]); all must have been raised.
    pub events: Vec<&'static str>,
    /// Where it is evaluated.
    pub hook: Hook,
    /// Source file and line (for explanations).
    pub file: std::sync::Arc<str>,
    /// 1-based line.
    pub line: u32,
}

/// The anomaly events the engine raises (the names of its `anomaly` events), which rules may
/// name with `decode-event` (`decoder.` + the keyword's value), `stream-event` (`stream.` + the
/// value) and `app-layer-event` (the value as written, `dns.malformed_data`). A rule naming an
/// event not listed here is skipped with that reason rather than loaded to never match. The
/// engine's tests check that every name it raises is listed.
pub const EVENTS: &[&str] = &[
    "decoder.ethernet.pkt_too_small",
    "decoder.gre.pkt_too_small",
    "decoder.erspan.pkt_too_small",
    "decoder.geneve.pkt_too_small",
    "decoder.mpls.header_too_small",
    "decoder.mpls.too_many_labels",
    "decoder.pppoe.pkt_too_small",
    "decoder.pppoe.wrong_code",
    "decoder.icmpv4.pkt_too_small",
    "decoder.icmpv6.pkt_too_small",
    "decoder.ip.invalid_version",
    "decoder.ip.pkt_too_small",
    "decoder.ipraw.invalid_ip_version",
    "decoder.ipv4.hlen_too_small",
    "decoder.ipv4.invalid_auth_header",
    "decoder.ipv4.trunc_pkt",
    "decoder.ipv4.wrong_ip_version",
    "decoder.ipv6.exthdr_invalid",
    "decoder.ipv6.jumbogram_unsupported",
    "decoder.ipv6.trunc_pkt",
    "decoder.ipv6.wrong_ip_version",
    "decoder.link.unsupported_linktype",
    "decoder.nflog.bad_tlv_length",
    "decoder.nflog.pkt_too_small",
    "decoder.null.pkt_too_small",
    "decoder.sll.pkt_too_small",
    "decoder.sll2.pkt_too_small",
    "decoder.tcp.pkt_too_small",
    "decoder.tunnel.too_deep",
    "decoder.udp.hlen_invalid",
    "decoder.udp.hlen_too_small",
    "decoder.udp.pkt_too_small",
    "decoder.vlan.header_too_small",
    "decoder.vlan.too_many_layers",
    "defrag.frag_not_multiple_of_8",
    "defrag.inconsistent_length",
    "defrag.ipv4_too_large",
    "defrag.ipv6_overlap",
    "defrag.max_frags",
    "defrag.memcap",
    "defrag.overlap_different",
    "flow.memcap",
    "stream.pkt_invalid_timestamp",
    "stream.reassembly_overlap_different_data",
    "gquic.malformed",
    "gquic.too_many_tags",
    "dns.malformed_data",
    "dns.name_too_long",
    "http.invalid_chunk_data",
    "http.invalid_chunklen",
    "http.request_header_too_long",
    "http.request_line_invalid",
    "http.response_header_too_long",
    "http.response_line_invalid",
    "http.too_many_transactions",
    "http.unsolicited_response",
    "quic.crypto_too_large",
    "quic.decrypt_failed",
    "quic.ech_outer_sni",
    "quic.error",
    "quic.malformed_packet",
    "quic.not_initial",
    "tls.ech_outer_sni",
    "tls.handshake_too_long",
    "tls.invalid_certificate",
    "tls.invalid_handshake_message",
];

/// Application-layer events (kept on the flow for `app-layer-event`), as opposed to decoder and
/// stream events, which belong to the packet that raised them.
pub fn is_app_event(name: &str) -> bool {
    !["decoder.", "defrag.", "stream.", "flow."]
        .iter()
        .any(|p| name.starts_with(p))
}

/// The `all` layer selector of `vlan.id`.
pub const VLAN_ALL: i8 = i8::MAX;

/// `flags` modifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagMode {
    /// Exactly these (ignoring the masked ones).
    Exact,
    /// At least these (`+`).
    All,
    /// Any of these (`*`).
    Any,
    /// None of these (`!`).
    Not,
}

/// Why a valid rule was not loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// The keyword (or `protocol`, `pcre`) at fault.
    pub keyword: String,
    /// Why it cannot be honoured exactly.
    pub reason: String,
}

/// A syntax error or a skipped rule, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// The file (as given).
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// The rule's sid, when it could be read.
    pub sid: Option<u64>,
    /// What happened.
    pub kind: RuleErrorKind,
}

/// A syntax error, or a skip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleErrorKind {
    /// The rule is malformed.
    Syntax(String),
    /// The rule is valid but cannot be honoured exactly.
    Skipped(Skip),
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file, self.line)?;
        if let Some(sid) = self.sid {
            write!(f, "sid {sid}: ")?;
        }
        match &self.kind {
            RuleErrorKind::Syntax(r) => write!(f, "syntax error: {r}"),
            RuleErrorKind::Skipped(s) => write!(f, "skipped ({}): {}", s.keyword, s.reason),
        }
    }
}

impl std::error::Error for RuleError {}

/// Standard base64. `strict`: every byte must decode (trailing `=` allowed), else `None`;
/// otherwise decoding stops at the first byte outside the alphabet, as `base64_decode` does.
pub(crate) fn base64(b: &[u8], strict: bool) -> Option<Vec<u8>> {
    let b = if strict {
        let mut e = b.len();
        while e > 0 && b[e - 1] == b'=' {
            e -= 1;
        }
        &b[..e]
    } else {
        b
    };
    let mut out = Vec::with_capacity(b.len() / 4 * 3 + 3);
    let (mut acc, mut n) = (0u32, 0u8);
    for &c in b {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ if strict => return None,
            _ => break,
        };
        acc = acc << 6 | v as u32;
        n += 1;
        if n == 4 {
            out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
            (acc, n) = (0, 0);
        }
    }
    match n {
        2 => out.push((acc >> 4) as u8),
        3 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
        1 if strict => return None,
        _ => {}
    }
    Some(out)
}
