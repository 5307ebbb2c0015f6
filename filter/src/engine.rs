//! The sans-IO pipeline: `Engine::handle(now, packet_no, linktype, frame) -> Verdict`.
//!
//! Time and bytes come in as arguments; eve JSON lines accumulate in a buffer the caller
//! drains with [`Engine::take_events`]. Replay and inline mode run this same code.
//!
//! Per packet: link and IP decode (anomalies become events), defragmentation, tunnel
//! decapsulation, flow lookup, TCP reassembly, app-layer parsing (DNS, TLS, HTTP), intel checks
//! (addresses when a flow starts, names when they appear), a verdict, and events.

use std::collections::VecDeque;
use std::net::IpAddr;

use palisade_classifiers::flow::{FlowRecord, FLOW_PKTS};
use palisade_rules::sig::{FlowSigs, Hook, Scratch, SigSet};
use palisade_rules::{Action, Hit, IntelSet, Kind};

use crate::app::dns::{self, DnsMsg, RData};
use crate::app::gquic;
use crate::app::http::{HttpEvent, HttpStream, Request};
use crate::app::tls::{self, ClientHello, ServerHello, TlsEvent, TlsStream};
use crate::eve::{self, fmt_small, Obj};
use crate::flow::defrag::{Defrag, DefragConfig, DefragResult};
use crate::flow::stream::{Chunk, Stream};
use crate::flow::{flow_charge, Budget, EndReason, FlowKey, FlowTable};
use crate::pool::{Lent, Pooled, Recycle};
use crate::wire::{self, Inner};

mod beacons;
mod blocks;
mod bursts;
mod detect;
mod known;
mod names;
mod tunnels;

pub use beacons::Beacon;
pub use bursts::Burst;
pub use names::{FlowScoring, NameScoring, Scoring};
pub use tunnels::DnsTunnel;

/// A detector across packets or connections that can block after its alert (`engine::blocks`):
/// NXDOMAIN bursts, beacons, DNS tunnels.
pub trait Blocking {
    /// Whether it blocks its series' later packets after its alert.
    fn blocking(&mut self) -> &mut bool;
}

impl Blocking for Burst {
    fn blocking(&mut self) -> &mut bool {
        &mut self.block
    }
}

impl Blocking for Beacon {
    fn blocking(&mut self) -> &mut bool {
        &mut self.block
    }
}

impl Blocking for DnsTunnel {
    fn blocking(&mut self) -> &mut bool {
        &mut self.block
    }
}

/// Block or audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Block what block indicators match.
    Block,
    /// Only alert (`alert.action: allowed`).
    Audit,
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Block or audit.
    pub mode: Mode,
    /// Bytes for flows, fragments and stream buffers together.
    pub memcap: usize,
    /// Seed of the keys that hash clients, domains, names and connection series into the
    /// detectors' fixed tables (NXDOMAIN bursts, beacons, DNS tunnels, known-good names), which
    /// decide which entries share a set and which names share a tunnel series' bit. `None`
    /// (inline and capture): drawn at random for each engine, so nobody can aim traffic at a
    /// set or a bit. `Some`: derived from the seed, so a capture replayed again raises the same
    /// alerts at the same packets (replay's default: `--hash-seed`).
    pub hash_seed: Option<u64>,
    /// Most flows held at once.
    pub max_flows: usize,
    /// Community ID seed.
    pub community_id_seed: u16,
    /// Defragmentation limits.
    pub defrag: DefragConfig,
    /// Emit `flow` events when flows end.
    pub flow_events: bool,
    /// VLAN ids are part of the flow key (Suricata's `vlan.use-for-tracking`); turn off where
    /// the two directions of a conversation are tagged differently.
    pub vlan_tracking: bool,
    /// Ports parsed as DNS over UDP and TCP (0 = unused slot): DNS, mDNS, LLMNR by default.
    pub dns_ports: [u16; 4],
    /// Record every reassembled TCP chunk in [`Engine::stream_tap`] (tests and debugging).
    pub tap_streams: bool,
    /// Keep every ended flow's [`FlowRecord`] in [`Engine::flow_tap`] (`palisade flow-features`).
    pub tap_flows: bool,
    /// What to do with QUIC.
    pub quic: QuicPolicy,
    /// What to do with encrypted ClientHellos (TLS and QUIC).
    pub ech: EchPolicy,
    /// Match signatures' payload content against TLS records after the handshake (Suricata's
    /// `encryption-handling: full`); off by default, as Suricata's default: the encrypted bytes
    /// of a TLS flow are not searched, its hellos and certificates are.
    pub inspect_encrypted: bool,
    /// NXDOMAIN bursts (`engine::bursts`): alert when one client gets this many NXDOMAIN
    /// answers for suspicious-looking names in distinct registered domains within the window;
    /// `None`: off. Needs name scoring (and no shadow mode) to alert.
    pub name_burst: Option<Burst>,
    /// Beaconing across connections (`engine::beacons`): alert when one client's connections to
    /// one server come at a regular period; `None`: off.
    pub beacon: Option<Beacon>,
    /// DNS tunnels (`engine::tunnels`): alert when one client's distinct query names under one
    /// registered domain carry this many payload bytes within the window; `None`: off.
    pub dns_tunnel: Option<DnsTunnel>,
}

/// Parses `COUNT/SECONDS` with COUNT in `counts` and SECONDS from 1 to one day: the count
/// and the seconds in nanoseconds (`--name-burst`, `--beacon`, `--dns-tunnel`).
fn count_per_seconds<T: std::str::FromStr + PartialOrd>(
    s: &str,
    counts: std::ops::RangeInclusive<T>,
) -> Option<(T, i64)> {
    let (c, w) = s.split_once('/')?;
    let count: T = c.parse().ok()?;
    let secs: i64 = w.parse().ok()?;
    (counts.contains(&count) && (1..=86_400).contains(&secs))
        .then_some((count, secs * 1_000_000_000))
}

/// QUIC policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QuicPolicy {
    /// Inspect QUIC like TLS: the SNI of the Initial goes to intel.
    #[default]
    Allow,
    /// Drop QUIC whose name cannot be read (unknown version, undecryptable, no SNI) or is not
    /// yet known to be good (seen allowed over TLS on TCP, see `known.rs`), so the client falls
    /// back to TCP where TLS inspection works. Initials of a ClientHello that spans several
    /// packets pass until the hello is complete (no application data can flow before).
    DowngradeUnknown,
    /// Drop all QUIC.
    Block,
    /// Do not parse QUIC: its flows stay unknown UDP (no `quic` events, no SNI checks). For
    /// measurements, or where QUIC is handled elsewhere.
    Off,
}

impl QuicPolicy {
    /// Parses `allow`, `downgrade-unknown`, `block` or `off`.
    pub fn parse(s: &str) -> Option<QuicPolicy> {
        Some(match s {
            "allow" => QuicPolicy::Allow,
            "downgrade-unknown" => QuicPolicy::DowngradeUnknown,
            "block" => QuicPolicy::Block,
            "off" => QuicPolicy::Off,
            _ => return None,
        })
    }
}

/// Encrypted ClientHello policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EchPolicy {
    /// Let it through (the outer SNI still goes to intel).
    #[default]
    Allow,
    /// Alert (`allowed`) on every ECH ClientHello.
    Audit,
    /// Stop connections that use ECH (reset for TLS, drop for QUIC).
    Block,
}

impl EchPolicy {
    /// Parses `allow`, `audit` or `block`.
    pub fn parse(s: &str) -> Option<EchPolicy> {
        Some(match s {
            "allow" => EchPolicy::Allow,
            "audit" => EchPolicy::Audit,
            "block" => EchPolicy::Block,
            _ => return None,
        })
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Block,
            memcap: 320 << 20,
            hash_seed: None,
            max_flows: 1 << 20,
            community_id_seed: 0,
            defrag: DefragConfig::default(),
            flow_events: true,
            vlan_tracking: true,
            dns_ports: [53, 5353, 5355, 0],
            tap_streams: false,
            tap_flows: false,
            quic: QuicPolicy::Allow,
            ech: EchPolicy::Allow,
            inspect_encrypted: false,
            name_burst: Some(Burst::default()),
            beacon: Some(Beacon::default()),
            dns_tunnel: Some(DnsTunnel::default()),
        }
    }
}

/// What an inline filter does with the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Verdict {
    /// Let it through.
    #[default]
    Accept,
    /// Drop it silently.
    Drop,
    /// Drop it and reset the TCP connection.
    Reset,
    /// Answer the DNS query from the sinkhole instead of forwarding it.
    Sinkhole,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Accept => "accept",
            Verdict::Drop => "drop",
            Verdict::Reset => "reset",
            Verdict::Sinkhole => "sinkhole",
        }
    }
}

/// One reassembled TCP chunk, as recorded when [`Config::tap_streams`] is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapRecord {
    /// The flow's `flow_id`.
    pub flow_id: u64,
    /// 0: client to server, 1: server to client.
    pub dir: u8,
    /// The bytes, or `Err(n)` for a gap of `n` bytes.
    pub data: Result<Vec<u8>, u32>,
}

/// Counters, reported in `stats` events and the replay summary.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Packets handled.
    pub packets: u64,
    /// Bytes handled (captured length).
    pub bytes: u64,
    /// IPv4 / IPv6 / TCP / UDP / ICMP packets.
    pub ipv4: u64,
    /// IPv6 packets.
    pub ipv6: u64,
    /// TCP packets.
    pub tcp: u64,
    /// UDP packets.
    pub udp: u64,
    /// ICMP packets (v4 and v6).
    pub icmp: u64,
    /// Frames that carried no IP (ARP and the like), tunnelled ones included.
    pub non_ip: u64,
    /// Packets decoded from inside a tunnel (IP-in-IP, GRE, VXLAN, Geneve), counted once each
    /// however deep.
    pub tunnelled: u64,
    /// Anomalies by event name.
    pub anomalies: Vec<(&'static str, u64)>,
    /// The anomaly events raised while handling the current packet (the first 8 distinct), for
    /// rules' `decode-event`, `stream-event` and `app-layer-event`.
    raised: palisade_rules::sig::EventSet,
    /// Events written, by type.
    pub events: [u64; EVENT_TYPES.len()],
    /// Alerts whose action was `blocked`.
    pub alerts_blocked: u64,
    /// Alerts whose action was `allowed` (audit).
    pub alerts_allowed: u64,
    /// TCP bytes skipped as gaps.
    pub tcp_gap_bytes: u64,
    /// TCP gaps.
    pub tcp_gaps: u64,
    /// TCP segments overlapping buffered data with different bytes.
    pub tcp_overlap_diff: u64,
    /// TCP retransmissions (wholly old segments).
    pub tcp_retrans: u64,
    /// TCP segments that arrived ahead of the next expected byte and were buffered.
    pub tcp_out_of_order: u64,
    /// TCP segments that could not be buffered (window, hole list, memory).
    pub tcp_refused: u64,
    /// TCP segments discarded for a stale timestamp (`stream.pkt_invalid_timestamp`).
    pub tcp_invalid_ts: u64,
    /// Flows whose app-layer buffers were dropped for lack of memory.
    pub app_memcap: u64,
    /// Flows that reached the reassembly depth.
    pub tcp_depth: u64,
    /// Signature matches (alerts, silent drops and passes).
    pub sig_matches: u64,
    /// Matches beyond the per-inspection cap, not acted on.
    pub sig_hits_dropped: u64,
    /// Names scored by the domain model.
    pub names_scored: u64,
    /// Names whose score reached the alert threshold.
    pub names_alerted: u64,
    /// NXDOMAIN answers for suspicious names recorded per client (`engine::bursts`).
    pub name_burst_names: u64,
    /// NXDOMAIN bursts alerted.
    pub name_bursts: u64,
    /// Names of clients blocked after their burst (`--name-burst-block`; in audit mode, those
    /// that would be).
    pub name_burst_blocked: u64,
    /// Beaconing series alerted (`engine::beacons`).
    pub beacons: u64,
    /// Connections of alerted beacons blocked afterwards (`--beacon-block`; in audit mode,
    /// those that would be).
    pub beacon_blocked: u64,
    /// DNS tunnels alerted (`engine::tunnels`).
    pub dns_tunnels: u64,
    /// Queries of alerted DNS tunnels blocked afterwards (`--dns-tunnel-block`; in audit mode,
    /// those that would be).
    pub dns_tunnel_blocked: u64,
    /// Flows scored by the flow model.
    pub flows_scored: u64,
    /// Flows whose score reached the alert threshold.
    pub flows_alerted: u64,
    /// Names learnt as good for QUIC (`--quic downgrade-unknown`).
    pub quic_known_good: u64,
    /// Of those, learnt over another live name in its slot.
    pub quic_known_good_replaced: u64,
    /// QUIC connections dropped because their name was not yet known to be good.
    pub quic_downgraded: u64,
}

/// Event types, in the order of [`Stats::events`].
pub const EVENT_TYPES: [&str; 8] = [
    "flow", "dns", "tls", "http", "alert", "anomaly", "stats", "quic",
];

impl Stats {
    fn anomaly(&mut self, name: &'static str) {
        // Rules can name only what is listed (see `palisade_rules::sig::EVENTS`); the test
        // builds check every name raised.
        debug_assert!(
            palisade_rules::sig::EVENTS.contains(&name),
            "anomaly {name} is not in palisade_rules::sig::EVENTS"
        );
        match self.anomalies.iter_mut().find(|(n, _)| *n == name) {
            Some((_, c)) => *c += 1,
            None => self.anomalies.push((name, 1)),
        }
        self.raised.add(name);
    }

    /// The anomaly events raised while handling the current packet.
    fn raised(&self) -> &[&'static str] {
        self.raised.as_slice()
    }

    /// Total anomalies.
    pub fn anomaly_total(&self) -> u64 {
        self.anomalies.iter().map(|(_, c)| c).sum()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum AppProto {
    #[default]
    Unknown,
    Dns,
    Tls,
    Http,
    Quic,
    /// Detected from the first bytes, not parsed (rules see their raw content).
    Smtp,
    Ftp,
    Ssh,
    Smb,
    Failed,
}

impl AppProto {
    fn as_str(self) -> &'static str {
        match self {
            AppProto::Unknown => "unknown",
            AppProto::Dns => "dns",
            AppProto::Tls => "tls",
            AppProto::Http => "http",
            AppProto::Quic => "quic",
            AppProto::Smtp => "smtp",
            AppProto::Ftp => "ftp",
            AppProto::Ssh => "ssh",
            AppProto::Smb => "smb",
            AppProto::Failed => "failed",
        }
    }
}

#[derive(Debug)]
enum Parser {
    None,
    Tls(Pooled<[TlsStream; 2]>),
    Http(Pooled<HttpPair>),
    DnsTcp([DnsTcp; 2]),
    Quic(Pooled<crate::app::quic::QuicConn>),
    /// gQUIC: the client's CHLOs seen so far (each is read from its own packet).
    Gquic(u8),
}

impl Parser {
    fn held(&self) -> usize {
        match self {
            Parser::None => 0,
            Parser::Tls(t) => t.bytes(),
            Parser::Http(h) => h.held(),
            Parser::DnsTcp([a, b]) => a.buf.capacity() + b.buf.capacity(),
            Parser::Quic(q) => q.bytes(),
            Parser::Gquic(_) => 0,
        }
    }
}

#[derive(Debug, Default)]
struct HttpPair {
    streams: [HttpStream; 2],
    /// Requests waiting for their response (at most [`MAX_PENDING_TX`]).
    pending: VecDeque<Pooled<Request>>,
    /// The answered transaction whose response body is still running.
    answered: Option<(Pooled<Request>, Pooled<crate::app::http::Response>)>,
    tx: u64,
    /// Bodies kept for signatures (request, response), at most `detect::BODY_LIMIT` each.
    body: [Vec<u8>; 2],
    /// The last queued request has a body still arriving.
    req_body_open: bool,
    /// The running response's body decoder (Content-Encoding gzip or deflate).
    inflate: Option<Box<detect::Inflate>>,
}

const MAX_PENDING_TX: usize = 32;

impl HttpPair {
    /// Bytes held: the streams' buffers, the kept bodies, an inflater, the queued requests
    /// and the answered transaction's request.
    fn held(&self) -> usize {
        self.streams[0].held()
            + self.streams[1].held()
            + self.body[0].capacity()
            + self.body[1].capacity()
            + self.inflate.as_ref().map_or(0, |_| detect::INFLATE_HELD)
            + std::mem::size_of::<HttpPair>()
            + self.pending.iter().map(|r| r.held()).sum::<usize>()
            + self.pending.capacity() * 8
            + self.answered.as_ref().map_or(0, |(r, _)| r.held())
    }
}

#[derive(Debug, Default)]
struct DnsTcp {
    /// A message gathered across segments, in a buffer from the thread's byte pool.
    buf: crate::pool::Lent,
}

impl Recycle for FlowSigs {
    fn recycle(&mut self) {
        // A stream tail holds up to STREAM_TAIL bytes for every flow with stream signatures
        // (in a buffer grown by doubling, so up to twice that).
        self.reset(2 * palisade_rules::sig::STREAM_TAIL);
    }
    fn bytes(&self) -> usize {
        self.held()
    }
    crate::thread_pool!(FlowSigs);
}

impl Recycle for HttpPair {
    fn recycle(&mut self) {
        for st in &mut self.streams {
            st.reset();
        }
        // The requests go back to their pool; the queue keeps its room (MAX_PENDING_TX).
        self.pending.clear();
        self.answered = None;
        self.tx = 0;
        for b in &mut self.body {
            crate::pool::give_bytes(b);
        }
        self.req_body_open = false;
        self.inflate = None;
    }
    fn bytes(&self) -> usize {
        self.held()
    }
    crate::thread_pool!(HttpPair);
}

impl TlsLog {
    /// Bytes held by the logged hellos (a hostile ClientHello makes a long JA3 string).
    fn held(&self) -> usize {
        std::mem::size_of::<TlsLog>()
            + self.client.as_ref().map_or(0, |c| c.held())
            + self.server.as_ref().map_or(0, |s| s.held())
            + self.cert.as_ref().map_or(0, |c| c.held())
    }
}

#[derive(Debug, Default)]
struct TlsLog {
    client: Option<Pooled<ClientHello>>,
    server: Option<Pooled<ServerHello>>,
    /// The server's leaf certificate (TLS 1.2 and older).
    cert: Option<Pooled<crate::app::x509::CertInfo>>,
    logged: bool,
}

impl Recycle for TlsLog {
    fn recycle(&mut self) {
        // The hellos go back to their own pools.
        self.client = None;
        self.server = None;
        self.cert = None;
        self.logged = false;
    }
    fn bytes(&self) -> usize {
        self.held()
    }
    crate::thread_pool!(TlsLog);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum TcpState {
    #[default]
    None,
    SynSent,
    SynRecv,
    Established,
    FinWait1,
    FinWait2,
    TimeWait,
    CloseWait,
    LastAck,
    Closed,
}

impl TcpState {
    fn as_str(self) -> &'static str {
        match self {
            TcpState::None => "none",
            TcpState::SynSent => "syn_sent",
            TcpState::SynRecv => "syn_recv",
            TcpState::Established => "established",
            TcpState::FinWait1 => "fin_wait1",
            TcpState::FinWait2 => "fin_wait2",
            TcpState::TimeWait => "time_wait",
            TcpState::CloseWait => "close_wait",
            TcpState::LastAck => "last_ack",
            TcpState::Closed => "closed",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Meta {
    id: u64,
    cli: (IpAddr, u16),
    srv: (IpAddr, u16),
    proto: u8,
    vlan: [u16; 3],
    start_ns: i64,
    cid: [u8; 30],
    /// The tunnel the flow's first packet came in, if any.
    tunnel: Option<Tunnel>,
}

/// The outermost packet around a tunnelled one: which tunnel endpoints carried it, how, and
/// how many tunnels deep the flow sat. Logged as `tunnel` in the flow's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tunnel {
    src: IpAddr,
    dst: IpAddr,
    /// The outer packet's protocol number (UDP for VXLAN and Geneve).
    proto: u8,
    /// `vxlan`, `geneve`, `gre`, `ipip` or `ipv6-in-ip`: the outermost tunnel.
    kind: &'static str,
    depth: u8,
    /// The innermost VXLAN or Geneve segment id, if any.
    vni: Option<u32>,
}

impl Tunnel {
    /// The flow key's zone ([`FlowKey::zone`]): the depth and the segment id, so bare and
    /// tunnelled copies of one conversation, or two segments' hosts with the same addresses,
    /// are different flows.
    fn zone(&self) -> u32 {
        u32::from(self.depth) << 24 | self.vni.unwrap_or(0) & 0xff_ffff
    }
}

impl Meta {
    /// A packet's source and destination endpoints in direction `dir` (0: client to server).
    fn ends(&self, dir: usize) -> ((IpAddr, u16), (IpAddr, u16)) {
        if dir == 0 {
            (self.cli, self.srv)
        } else {
            (self.srv, self.cli)
        }
    }

    /// The flow's connection series by address (`beacons`), if flows like it are followed.
    fn series(&self) -> Option<beacons::Key> {
        beacons::Key::of(self.cli.0, self.srv, self.proto)
    }
}

/// Per-flow state.
#[derive(Debug)]
pub struct Flow {
    meta: Meta,
    pkts: [u64; 2],
    bytes: [u64; 2],
    flags: [u8; 2],
    tcp_state: TcpState,
    fin_seen: [bool; 2],
    server_payload: bool,
    streams: Option<Pooled<[Stream; 2]>>,
    /// Bytes charged for `streams` (released when the flow ends).
    streams_charged: u32,
    /// SYN sequence numbers seen before any payload (streams are allocated at the first byte,
    /// so scans and SYN floods cost no stream memory).
    isn: [Option<u32>; 2],
    /// Each side's latest TCP timestamp (TSval) from an in-order segment, once it sent one.
    ts_last: [Option<u32>; 2],
    app: AppProto,
    parser: Parser,
    app_charged: usize,
    probe: [ProbeBuf; 2],
    tls: Option<Pooled<TlsLog>>,
    dns_tx: u64,
    /// What the flow was decided to be (Accept until an indicator or policy blocks it).
    verdict: Verdict,
    alerted: bool,
    /// Signature state (flowbits, stream tails), allocated at the first inspection.
    sigs: Option<Pooled<FlowSigs>>,
    /// Highest domain-model score of the flow's names (negative: none scored).
    name_score: f32,
    /// The first packets and totals, for the flow model.
    rec: FlowRecord,
    /// The flow model's score, once given, and the packet count it was given at (0: at the end).
    flow_score: Option<(f32, u8)>,
    /// Its client bytes went to its connection series (`beacons`).
    sized: bool,
    /// Not followed for beaconing (an allow list holds an address of it).
    beacon_skip: bool,
    /// Blocked (or, in audit mode, would be) as a beacon's connection, by one view of it.
    beacon_blocked: bool,
    /// Fingerprint of the first name it carried, for its series by name (0: none).
    beacon_name: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct ProbeBuf {
    b: [u8; 8],
    n: u8,
}

impl Default for Flow {
    fn default() -> Self {
        let z = (IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);
        Flow {
            meta: Meta {
                id: 0,
                cli: z,
                srv: z,
                proto: 0,
                vlan: [0, 0, 0],
                start_ns: 0,
                cid: [0; 30],
                tunnel: None,
            },
            pkts: [0; 2],
            bytes: [0; 2],
            flags: [0; 2],
            tcp_state: TcpState::None,
            fin_seen: [false; 2],
            server_payload: false,
            streams: None,
            streams_charged: 0,
            isn: [None; 2],
            ts_last: [None; 2],
            app: AppProto::Unknown,
            parser: Parser::None,
            app_charged: 0,
            probe: [ProbeBuf::default(); 2],
            tls: None,
            dns_tx: 0,
            verdict: Verdict::Accept,
            alerted: false,
            sigs: None,
            name_score: -1.0,
            rec: FlowRecord::default(),
            flow_score: None,
            sized: false,
            beacon_skip: false,
            beacon_blocked: false,
            beacon_name: 0,
        }
    }
}

/// What the engine enforces, built off the packet path and swapped whole on reload.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Intel lists.
    pub intel: IntelSet,
    /// Signatures.
    pub sigs: SigSet,
    /// Name scoring (`None`: off).
    pub names: Option<NameScoring>,
    /// Flow scoring (`None`: off).
    pub flows: Option<FlowScoring>,
}

/// The engine.
#[derive(Debug)]
pub struct Engine {
    cfg: Config,
    intel: IntelSet,
    flows: FlowTable<Flow>,
    defrag: Defrag,
    budget: Budget,
    /// Counters.
    pub stats: Stats,
    /// Ended flows' records with their flow id, when [`Config::tap_flows`] is on.
    pub flow_tap: Vec<(u64, FlowRecord)>,
    /// Reassembled chunks, when [`Config::tap_streams`] is on.
    pub stream_tap: Vec<TapRecord>,
    out: Vec<u8>,
    dns: DnsMsg,
    next_flow_id: u64,
    last_expire_ns: i64,
    cid: String,
    first_ns: Option<i64>,
    last_ns: i64,
    last_bypass: bool,
    /// The tunnel around the last handled packet, outermost (`None`: it came bare).
    outer: Option<Tunnel>,
    sigs: SigSet,
    sig_scratch: Scratch,
    sig_bufs: (Vec<u8>, Vec<u8>),
    names: Option<NameScoring>,
    name_cache: names::ScoreCache,
    bursts: bursts::Bursts,
    beacons: beacons::Beacons,
    tunnels: tunnels::Tunnels,
    known_good: known::KnownGood,
    flows_model: Option<FlowScoring>,
}

/// Context handed to the app-layer handlers: everything but the flow table.
struct Cx<'a> {
    out: &'a mut Vec<u8>,
    intel: &'a IntelSet,
    stats: &'a mut Stats,
    dns: &'a mut DnsMsg,
    mode: Mode,
    now: i64,
    pkt: u64,
    /// The verdict for the packet being handled (a DNS sinkhole acts on one query only).
    verdict: Verdict,
    dns_ports: [u16; 4],
    tap: Option<&'a mut Vec<TapRecord>>,
    quic: QuicPolicy,
    ech: EchPolicy,
    inspect_encrypted: bool,
    sigs: &'a SigSet,
    sc: &'a mut Scratch,
    sc_bufs: &'a mut (Vec<u8>, Vec<u8>),
    /// Name scoring, when on.
    names: Option<&'a NameScoring>,
    /// Flow scoring, when on.
    flow_model: Option<&'a FlowScoring>,
    name_cache: &'a mut names::ScoreCache,
    /// NXDOMAIN bursts per client, and when they alert (`None`: off).
    bursts: &'a mut bursts::Bursts,
    burst: Option<Burst>,
    /// Connection series per client and server (`engine::beacons`; empty when off), and when
    /// they alert (`None`: off).
    beacons: &'a mut beacons::Beacons,
    beacon: Option<Beacon>,
    /// Query names per client and registered domain (`engine::tunnels`; empty when off), and
    /// when they alert (`None`: off).
    tunnels: &'a mut tunnels::Tunnels,
    dns_tunnel: Option<DnsTunnel>,
    /// Names learnt as good for QUIC.
    known_good: &'a mut known::KnownGood,
    /// The packet being handled (for signatures).
    pk: PktInfo<'a>,
}

/// What signatures read of the packet being handled.
#[derive(Debug, Clone, Copy, Default)]
struct PktInfo<'a> {
    payload: &'a [u8],
    flags: u8,
    icmp: (u8, u8),
}

/// What a packet's handling borrows from the engine besides the context: the flow table, the
/// memory budget and the bypass flag.
struct Parts<'a> {
    flows: &'a mut FlowTable<Flow>,
    budget: &'a mut Budget,
    last_bypass: &'a mut bool,
}

impl Engine {
    /// Splits the engine into the flow table and budget, and a context for the app-layer
    /// handlers over everything else.
    fn split(&mut self, now: i64, pkt: u64) -> (Parts<'_>, Cx<'_>) {
        let Engine {
            flows,
            out,
            intel,
            stats,
            dns,
            budget,
            cfg,
            stream_tap,
            sigs,
            sig_scratch,
            sig_bufs,
            last_bypass,
            names,
            name_cache,
            bursts,
            beacons,
            tunnels,
            known_good,
            flows_model,
            ..
        } = self;
        let cx = Cx {
            out,
            intel,
            stats,
            dns,
            mode: cfg.mode,
            now,
            pkt,
            verdict: Verdict::Accept,
            dns_ports: cfg.dns_ports,
            tap: cfg.tap_streams.then_some(stream_tap),
            quic: cfg.quic,
            ech: cfg.ech,
            inspect_encrypted: cfg.inspect_encrypted,
            sigs,
            sc: sig_scratch,
            sc_bufs: sig_bufs,
            names: names.as_ref(),
            flow_model: flows_model.as_ref(),
            name_cache,
            bursts,
            burst: cfg.name_burst,
            beacons,
            beacon: cfg.beacon,
            tunnels,
            dns_tunnel: cfg.dns_tunnel,
            known_good,
            pk: PktInfo::default(),
        };
        let parts = Parts {
            flows,
            budget,
            last_bypass,
        };
        (parts, cx)
    }
}

impl Engine {
    /// An engine with the given settings and intel.
    pub fn new(cfg: Config, intel: IntelSet) -> Engine {
        if cfg.dns_tunnel.is_some() {
            // The Public Suffix List is parsed here, once per process, not on a packet's path.
            palisade_classifiers::psl::Psl::shared();
        }
        let seed = cfg.hash_seed;
        Engine {
            // Flows may take at most half the budget, so reassembly, fragments and parsers keep
            // room under a flow flood; the table is sized once to that count.
            flows: FlowTable::new(
                cfg.max_flows
                    .min(cfg.memcap / 2 / flow_charge::<Flow>())
                    .max(1),
            ),
            defrag: Defrag::new(cfg.defrag),
            budget: Budget::new(cfg.memcap),
            cfg,
            intel,
            stats: Stats::default(),
            stream_tap: Vec::new(),
            out: Vec::with_capacity(1 << 16),
            dns: DnsMsg::default(),
            next_flow_id: 0,
            last_expire_ns: i64::MIN,
            cid: String::with_capacity(32),
            first_ns: None,
            last_ns: 0,
            last_bypass: false,
            outer: None,
            sigs: SigSet::default(),
            sig_scratch: Scratch::default(),
            sig_bufs: (Vec::new(), Vec::new()),
            names: None,
            name_cache: names::ScoreCache::default(),
            bursts: bursts::Bursts::with_keys(keys(seed, 1)),
            beacons: beacons::Beacons::with_keys(keys(seed, 2)),
            tunnels: tunnels::Tunnels::with_keys(keys(seed, 3)),
            known_good: known::KnownGood::with_keys(keys(seed, 4)),
            flows_model: None,
            flow_tap: Vec::new(),
        }
    }

    /// Replaces the signatures (a reload); flows keep their decisions and flowbits.
    pub fn set_sigs(&mut self, sigs: SigSet) {
        self.sigs = sigs;
    }

    /// Signature counters: threshold evictions and content lists cut at the step limit.
    pub fn sig_counters(&self) -> (u64, u64) {
        (
            self.sig_scratch.threshold_evictions,
            self.sig_scratch.step_limit_hits,
        )
    }

    /// Replaces the intel (a reload); flows keep their decisions.
    pub fn set_intel(&mut self, intel: IntelSet) {
        self.intel = intel;
    }

    /// Installs a whole policy (intel, signatures, name scoring) at once, as a reload does.
    pub fn set_policy(&mut self, p: Policy) {
        self.intel = p.intel;
        self.sigs = p.sigs;
        self.set_names(p.names);
        self.flows_model = p.flows;
    }

    /// Turns flow scoring on (with this model and thresholds) or off.
    pub fn set_flow_model(&mut self, f: Option<FlowScoring>) {
        self.flows_model = f;
    }

    /// When NXDOMAIN bursts alert (`None`: off).
    pub fn name_burst(&self) -> Option<Burst> {
        self.cfg.name_burst
    }

    /// When connection series alert as beacons (`None`: off).
    pub fn beacon(&self) -> Option<Beacon> {
        self.cfg.beacon
    }

    /// When query names alert as a DNS tunnel (`None`: off).
    pub fn dns_tunnel(&self) -> Option<DnsTunnel> {
        self.cfg.dns_tunnel
    }

    /// Query names counted for DNS tunnels.
    pub fn dns_tunnel_names(&self) -> u64 {
        self.tunnels.names
    }

    /// Connection starts followed for beaconing.
    pub fn beacon_starts(&self) -> u64 {
        self.beacons.starts
    }

    /// The flow scoring in force.
    pub fn flow_model(&self) -> Option<&FlowScoring> {
        self.flows_model.as_ref()
    }

    /// Turns name scoring on (with this model and thresholds) or off. The score cache and the
    /// NXDOMAIN bursts start over when the model changes; a reload that brings the same model
    /// (same version: the same file) keeps them.
    pub fn set_names(&mut self, names: Option<NameScoring>) {
        let same = matches!((&self.names, &names),
            (Some(a), Some(b)) if a.model.version() == b.model.version());
        self.bursts.score = names
            .as_ref()
            .and_then(|n| n.model.threshold_at_fpr("1e-3"))
            .unwrap_or(f32::INFINITY);
        if names.is_some() && self.cfg.name_burst.is_some() {
            self.bursts.allocate();
        }
        self.names = names;
        if !same {
            self.name_cache.clear();
            self.bursts.clear();
        }
    }

    /// Name scores answered from the per-engine cache instead of the model.
    pub fn name_cache_hits(&self) -> u64 {
        self.name_cache.hits
    }

    /// The name scoring in force.
    pub fn names(&self) -> Option<&NameScoring> {
        self.names.as_ref()
    }

    /// Bytes of traffic-derived state in use, and the cap.
    pub fn memory(&self) -> (usize, usize) {
        (self.budget.used(), self.budget.cap())
    }

    /// Flows in the table.
    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    /// Hands the pending eve lines to `f` and clears the buffer.
    pub fn take_events(&mut self, f: impl FnOnce(&[u8])) {
        if !self.out.is_empty() {
            f(&self.out);
            self.out.clear();
        }
    }

    /// Bytes of pending eve lines.
    pub fn pending_events(&self) -> usize {
        self.out.len()
    }

    /// True when the flow of the last handled packet needs no more inspection (its hellos are
    /// parsed, its protocol is not one Palisade parses, or both directions passed the reassembly
    /// depth) and was accepted: an inline shell may let the kernel bypass the rest of it.
    pub fn bypass(&self) -> bool {
        self.last_bypass
    }

    /// Handles one frame captured at `now_ns`; `pkt` is its 1-based number in the input.
    pub fn handle(&mut self, now_ns: i64, pkt: u64, linktype: u32, frame: &[u8]) -> Verdict {
        self.last_bypass = false;
        self.outer = None;
        self.stats.raised.clear();
        self.stats.packets += 1;
        self.stats.bytes += frame.len() as u64;
        self.first_ns.get_or_insert(now_ns);
        self.last_ns = self.last_ns.max(now_ns);
        if now_ns.saturating_sub(self.last_expire_ns) >= 1_000_000_000
            || now_ns < self.last_expire_ns
        {
            self.last_expire_ns = now_ns;
            self.expire(now_ns);
        }
        let (l3, vlan) = match wire::link(linktype, frame) {
            Ok(Some(x)) => x,
            Ok(None) => {
                self.stats.non_ip += 1;
                return Verdict::Accept;
            }
            Err(a) => {
                self.anomaly_event(now_ns, pkt, None, "decode", a.0);
                return self.event_rules(now_ns, pkt, None);
            }
        };
        let v = self.handle_ip(now_ns, pkt, l3, vlan, 0);
        if self.outer.is_none() {
            return v;
        }
        // The kernel sees the tunnel, not the flow inside it: bypassing would mark the outer
        // connection, which carries every other flow of the tunnel too (a VXLAN pair, all of a
        // GRE tunnel), so a tunnelled flow is never bypassed. A reset or a sinkhole answer
        // would have to go back inside the tunnel; the packet is dropped instead.
        self.last_bypass = false;
        match v {
            Verdict::Reset | Verdict::Sinkhole => Verdict::Drop,
            v => v,
        }
    }

    fn handle_ip(&mut self, now: i64, pkt: u64, l3: &[u8], vlan: [u16; 3], depth: u8) -> Verdict {
        let ip = match wire::ip(l3) {
            Ok(ip) => ip,
            Err(a) => {
                self.anomaly_event(now, pkt, None, "decode", a.0);
                return self.event_rules(now, pkt, None);
            }
        };
        if ip.src.is_ipv4() {
            self.stats.ipv4 += 1;
        } else {
            self.stats.ipv6 += 1;
        }
        let ends = Some((ip.src, ip.dst, ip.proto));
        let Some(frag) = ip.frag else {
            return self.handle_l4(now, pkt, ip.src, ip.dst, ip.proto, ip.payload, vlan, depth);
        };
        let r = self.defrag.add(
            now,
            ip.src,
            ip.dst,
            ip.proto,
            vlan,
            frag,
            ip.payload,
            &mut self.budget,
        );
        if let Some(a) = self.defrag.last_anomaly {
            self.anomaly_event(now, pkt, ends, "decode", a);
        }
        match r {
            DefragResult::Pending => self.event_rules(now, pkt, ends),
            DefragResult::Dropped(why) => {
                self.anomaly_event(now, pkt, ends, "decode", why);
                self.event_rules(now, pkt, ends)
            }
            DefragResult::Complete(datagram) => {
                let v = self.handle_l4(now, pkt, ip.src, ip.dst, ip.proto, &datagram, vlan, depth);
                // The buffer serves the next datagram.
                self.defrag.recycle(datagram);
                v
            }
        }
    }

    /// True when a tunnel's own endpoints are listed (blocked or audited) by address intel.
    /// Such a tunnel is not opened: it is judged as the connection to a listed address it is,
    /// so wrapping traffic in VXLAN or GRE to a listed server does not hide the server.
    fn listed_ends(&self, src: IpAddr, dst: IpAddr) -> bool {
        [dst, src]
            .into_iter()
            .find_map(|a| self.intel.match_addr(a))
            .is_some_and(|h| h.action != Action::Allow)
    }

    /// Goes into a tunnel's inner packet (at most three deep), noting the tunnel in `outer`.
    #[allow(clippy::too_many_arguments)]
    fn tunnel(
        &mut self,
        now: i64,
        pkt: u64,
        (src, dst, proto): (IpAddr, IpAddr, u8),
        inner: Inner<'_>,
        vlan: [u16; 3],
        depth: u8,
        kind: &'static str,
        vni: Option<u32>,
    ) -> Verdict {
        let t = self.outer.get_or_insert_with(|| {
            self.stats.tunnelled += 1;
            Tunnel {
                src,
                dst,
                proto,
                kind,
                depth: 0,
                vni: None,
            }
        });
        t.depth = depth + 1;
        t.vni = vni.or(t.vni);
        let ends = Some((src, dst, proto));
        if depth >= 3 {
            self.anomaly_event(now, pkt, ends, "decode", "decoder.tunnel.too_deep");
            return self.event_rules(now, pkt, ends);
        }
        match inner {
            Inner::Ip(ip) => self.handle_ip(now, pkt, ip, vlan, depth + 1),
            Inner::NonIp => {
                self.stats.non_ip += 1;
                Verdict::Accept
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_l4(
        &mut self,
        now: i64,
        pkt: u64,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        payload: &[u8],
        vlan: [u16; 3],
        depth: u8,
    ) -> Verdict {
        let ends = Some((src, dst, proto));
        match wire::tunnel_inner(proto, payload) {
            Ok(Some(_)) if self.listed_ends(src, dst) => {}
            Ok(Some(inner)) => {
                let kind = match proto {
                    4 => "ipip",
                    41 => "ipv6-in-ip",
                    _ => "gre",
                };
                let outer = (src, dst, proto);
                return self.tunnel(now, pkt, outer, Inner::Ip(inner), vlan, depth, kind, None);
            }
            Ok(None) => {}
            Err(a) => {
                self.anomaly_event(now, pkt, ends, "decode", a.0);
                return self.event_rules(now, pkt, ends);
            }
        }
        match proto {
            6 => {
                self.stats.tcp += 1;
                let t = match etherparse::TcpSlice::from_slice(payload) {
                    Ok(t) => t,
                    Err(_) => {
                        self.anomaly_event(now, pkt, ends, "decode", "decoder.tcp.pkt_too_small");
                        return self.event_rules(now, pkt, ends);
                    }
                };
                let seg = Seg {
                    sport: t.source_port(),
                    dport: t.destination_port(),
                    seq: t.sequence_number(),
                    ack: t.acknowledgment_number(),
                    flags: (t.slice()[13]),
                    payload: t.payload(),
                    ts: tcp_timestamps(t.header_slice()),
                };
                self.flow_packet(now, pkt, src, dst, proto, vlan, seg)
            }
            17 => {
                self.stats.udp += 1;
                let u = match etherparse::UdpSlice::from_slice(payload) {
                    Ok(u) => u,
                    Err(_) => {
                        // Suricata's names: shorter than the header, a length field under 8,
                        // or more bytes claimed than captured.
                        let name = match payload {
                            [_, _, _, _, a, b, _, _, ..] if u16::from_be_bytes([*a, *b]) < 8 => {
                                "decoder.udp.hlen_invalid"
                            }
                            [_, _, _, _, _, _, _, _, ..] => "decoder.udp.pkt_too_small",
                            _ => "decoder.udp.hlen_too_small",
                        };
                        self.anomaly_event(now, pkt, ends, "decode", name);
                        return self.event_rules(now, pkt, ends);
                    }
                };
                match wire::udp_tunnel_inner(u.destination_port(), u.payload()) {
                    Ok(Some(_)) if self.listed_ends(src, dst) => {}
                    Ok(Some((inner, vni))) => {
                        let kind = if u.destination_port() == wire::VXLAN_PORT {
                            "vxlan"
                        } else {
                            "geneve"
                        };
                        let outer = (src, dst, proto);
                        return self.tunnel(now, pkt, outer, inner, vlan, depth, kind, Some(vni));
                    }
                    Ok(None) => {}
                    Err(a) => {
                        self.anomaly_event(now, pkt, ends, "decode", a.0);
                        return self.event_rules(now, pkt, ends);
                    }
                }
                let seg = Seg {
                    sport: u.source_port(),
                    dport: u.destination_port(),
                    seq: 0,
                    ack: 0,
                    flags: 0,
                    payload: u.payload(),
                    ts: None,
                };
                self.flow_packet(now, pkt, src, dst, proto, vlan, seg)
            }
            1 | 58 => {
                self.stats.icmp += 1;
                if payload.len() < 4 {
                    let name = if proto == 1 {
                        "decoder.icmpv4.pkt_too_small"
                    } else {
                        "decoder.icmpv6.pkt_too_small"
                    };
                    self.anomaly_event(now, pkt, ends, "decode", name);
                    return self.event_rules(now, pkt, ends);
                }
                let seg = Seg {
                    sport: payload[0] as u16,
                    dport: payload[1] as u16,
                    seq: 0,
                    ack: 0,
                    flags: 0,
                    payload: &[],
                    ts: None,
                };
                self.flow_packet(now, pkt, src, dst, proto, vlan, seg)
            }
            _ => {
                let seg = Seg {
                    sport: 0,
                    dport: 0,
                    seq: 0,
                    ack: 0,
                    flags: 0,
                    payload: &[],
                    ts: None,
                };
                self.flow_packet(now, pkt, src, dst, proto, vlan, seg)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn flow_packet(
        &mut self,
        now: i64,
        pkt: u64,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        vlan: [u16; 3],
        seg: Seg<'_>,
    ) -> Verdict {
        let key_vlan = if self.cfg.vlan_tracking { vlan } else { [0; 3] };
        let (mut key, _) = FlowKey::new((src, seg.sport), (dst, seg.dport), proto, key_vlan);
        key.zone = self.outer.map_or(0, |t| t.zone());
        let idx = match self.flows.find(&key) {
            Some(i) => i,
            None => match self.new_flow(now, pkt, key, src, dst, proto, vlan, &seg) {
                Some(i) => i,
                None => return Verdict::Accept,
            },
        };
        let mode = self.cfg.mode;
        let (
            Parts {
                flows,
                budget,
                last_bypass,
            },
            mut cx,
        ) = self.split(now, pkt);
        // The table still holds the previous packet's time (it is touched below).
        let prev_ns = flows.last_seen(idx);
        let flow = flows.get_mut(idx);
        let dir = usize::from(flow.meta.cli != (src, seg.sport));
        flow.pkts[dir] += 1;
        flow.bytes[dir] += seg.payload.len() as u64;
        if (flow.rec.n as usize) < FLOW_PKTS {
            let gap_us = ((now - prev_ns).max(0) / 1000).min(u32::MAX as i64) as u32;
            flow.rec
                .push(dir == 0, seg.payload.len(), gap_us, seg.flags);
        }
        if dir == 1 && !seg.payload.is_empty() {
            flow.server_payload = true;
        }
        // Parsing goes on after a block: replay logs what the capture holds, and the verdict
        // says what an inline filter would have done with each packet.
        cx.pk = PktInfo {
            payload: seg.payload,
            flags: seg.flags,
            icmp: if matches!(proto, 1 | 58) {
                (seg.sport as u8, seg.dport as u8)
            } else {
                (0, 0)
            },
        };
        if proto == 6 {
            tcp_packet(&mut cx, flow, dir, &seg, budget);
        } else if proto == 17 {
            udp_packet(&mut cx, flow, dir, seg.payload);
        }
        // Application-layer events stay on the flow for rules inspected at later packets.
        if !cx.stats.raised().is_empty() && !cx.sigs.is_empty() {
            let raised = cx.stats.raised();
            flow.sigs
                .get_or_insert_with(Pooled::take)
                .note_events(raised);
        }
        // The flow model decides at the packet that completes its record (after the app layer
        // has had its say, so the record knows the protocol and the names' scores).
        if flow.flow_score.is_none() && flow.rec.n as usize == FLOW_PKTS && cx.flow_model.is_some()
        {
            names::flow_check(&mut cx, flow, dir, FLOW_PKTS as u8);
        }
        if cx.sigs.wants(Hook::Packet) {
            // Payload content is not searched in encrypted TLS records (header keywords are).
            let payload = if detect::encrypted(&cx, flow) {
                &[][..]
            } else {
                seg.payload
            };
            detect::inspect(
                &mut cx,
                flow,
                dir,
                Hook::Packet,
                &detect::PktBufs(payload),
                0,
            );
        }
        // Charge (or release) what the app parsers hold now.
        let held = flow.parser.held()
            + flow.tls.as_ref().map_or(0, |t| t.held())
            + flow.sigs.as_ref().map_or(0, |s| s.held());
        if held > flow.app_charged {
            if budget.try_charge(held - flow.app_charged) {
                flow.app_charged = held;
            } else {
                cx.stats.app_memcap += 1;
                budget.release(flow.app_charged);
                flow.app_charged = 0;
                flow.parser = Parser::None;
                flow.tls = None;
                flow.app = AppProto::Failed;
            }
        } else if held < flow.app_charged {
            budget.release(flow.app_charged - held);
            flow.app_charged = held;
        }
        let class = timeout_class(flow);
        let verdict = if mode == Mode::Block {
            flow.verdict.max(cx.verdict)
        } else {
            Verdict::Accept
        };
        *last_bypass = verdict == Verdict::Accept && inspection_done(flow, cx.sigs);
        if *last_bypass {
            // Inline, the kernel passes the rest of the flow by: its size for beaconing is
            // what it sent until now, in every deployment alike.
            beacon_ended(&mut cx, flow);
        }
        flows.touch(idx, now, class);
        verdict
    }

    #[allow(clippy::too_many_arguments)]
    fn new_flow(
        &mut self,
        now: i64,
        pkt: u64,
        key: FlowKey,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        vlan: [u16; 3],
        seg: &Seg<'_>,
    ) -> Option<u32> {
        // Make room: the count cap and the memory budget.
        let charge = flow_charge::<Flow>();
        let mut tries = 0;
        while self.flows.is_full() || !self.budget.try_charge(charge) {
            tries += 1;
            match self.flows.victim() {
                Some(v) if tries < 64 => {
                    self.flows.stats.evicted += 1;
                    self.end_flow(v, EndReason::Forced);
                }
                _ => {
                    self.stats.anomaly("flow.memcap");
                    return None;
                }
            }
        }
        // Who is the client: the sender, unless this is a SYN/ACK or the sender uses a
        // well-known port and the receiver does not.
        let syn_ack = proto == 6 && seg.flags & 0x12 == 0x12;
        let from_server = syn_ack
            || (proto != 6 || seg.flags & 0x02 == 0) && seg.sport < 1024 && seg.dport >= 1024;
        let (cli, srv) = if from_server {
            ((dst, seg.dport), (src, seg.sport))
        } else {
            ((src, seg.sport), (dst, seg.dport))
        };
        self.next_flow_id += 1;
        let id = self.next_flow_id.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 13;
        eve::community_id(&mut self.cid, self.cfg.community_id_seed, cli, srv, proto);
        let mut cid = [0u8; 30];
        let n = self.cid.len().min(30);
        cid[..n].copy_from_slice(&self.cid.as_bytes()[..n]);
        let flow = Flow {
            meta: Meta {
                id,
                cli,
                srv,
                proto,
                vlan,
                start_ns: now,
                cid,
                tunnel: self.outer,
            },
            ..Flow::default()
        };
        let idx = self
            .flows
            .insert(key, flow, now, if proto == 6 { 1 } else { 0 });
        // Address intel: the server first, then the client (an inbound connection from a listed host).
        let (parts, mut cx) = self.split(now, pkt);
        let intel = cx.intel;
        let hit = [(srv.0, "dest_ip"), (cli.0, "src_ip")]
            .into_iter()
            .find_map(|(a, field)| intel.match_addr(a).map(|h| (h, field, a)));
        let allowed = hit.is_some_and(|h| h.0.action == Action::Allow);
        if let Some((hit, field, addr)) = hit {
            let flow = parts.flows.get_mut(idx);
            let dir = usize::from(flow.meta.cli != (src, seg.sport));
            let mut buf = [0u8; 45];
            let v = fmt_ip(&mut buf, addr);
            decide(&mut cx, flow, dir, hit, field, v, Verdict::Drop);
        }
        // A connection the capture saw open starts or extends its client's series to the server
        // (one seen midstream starts no series, by address or by name).
        let opened = proto != 6 || seg.flags & 0x12 == 0x02;
        let flow = parts.flows.get_mut(idx);
        flow.beacon_skip = allowed || !opened;
        if let (Some(b), true) = (cx.beacon, opened) {
            if let Some(key) = flow.meta.series() {
                match cx.beacons.start(b, key, srv.0, now, allowed, None) {
                    Some(beacons::Hit::Periodic(found)) => {
                        // Not again for connections the series by name alerted on already.
                        let by_name = found.name().map(|n| key.by_name(cx.beacons.name_fp(n)));
                        if !by_name.is_some_and(|k| cx.beacons.quiet(&k, now)) {
                            beacon_alert(&mut cx, flow, b, &found);
                        }
                    }
                    Some(beacons::Hit::Blocked(bl)) => beacon_blocked(&mut cx, flow, bl, None),
                    None => {}
                }
            }
        }
        Some(idx)
    }

    /// Ends flows whose timeout passed.
    pub fn expire(&mut self, now_ns: i64) {
        self.defrag.expire(now_ns, &mut self.budget);
        while let Some(i) = self.flows.next_expired(now_ns) {
            self.flows.stats.timed_out += 1;
            self.end_flow(i, EndReason::Timeout);
        }
    }

    /// End of input: ends every flow (flushing reassembly) and writes a final `stats` event.
    pub fn finish(&mut self) {
        self.finish_with(|_| {});
    }

    /// As [`Engine::finish`], handing the pending eve lines to `drain` every 1,024 flows (and
    /// at the end), so the buffer does not grow to hold every live flow's events at once.
    pub fn finish_with(&mut self, mut drain: impl FnMut(&mut Engine)) {
        for (k, i) in self.flows.live_indices().into_iter().enumerate() {
            self.end_flow(i, EndReason::Shutdown);
            if k % 1024 == 1023 {
                drain(self);
            }
        }
        self.defrag.clear(&mut self.budget);
        self.stats_event(self.last_ns);
        drain(self);
    }

    fn end_flow(&mut self, idx: u32, reason: EndReason) {
        // A flow can end while another's packet is handled (expiry, eviction): the events its
        // flush raises are its own, and the packet's stay the packet's.
        let raised = std::mem::take(&mut self.stats.raised);
        self.end_flow_inner(idx, reason);
        self.stats.raised = raised;
    }

    fn end_flow_inner(&mut self, idx: u32, reason: EndReason) {
        let (_, mut flow, last_ns) = self.flows.remove(idx);
        let flow_events = self.cfg.flow_events;
        let mut flow_tap = if self.cfg.tap_flows {
            Some(std::mem::take(&mut self.flow_tap))
        } else {
            None
        };
        let (Parts { budget, .. }, mut cx) = self.split(last_ns, 0);
        // Flush what reassembly still holds, then log unfinished transactions.
        if let Some(mut st) = flow.streams.take() {
            for dir in 0..2 {
                let (s, rest) = st.split_at_mut(1);
                let s = if dir == 0 { &mut s[0] } else { &mut rest[0] };
                s.flush(budget, &mut |c| app_chunk(&mut cx, &mut flow, dir, c));
                s.clear(budget);
            }
        }
        log_tls(&mut cx, &mut flow);
        if let Parser::Http(h) = &mut flow.parser {
            if let Some((r, s)) = h.answered.take() {
                let tx = h.tx;
                h.tx += 1;
                let seen = h.streams[1].body_seen();
                let body = Lent::take(&mut h.body[1]);
                http_event(&mut cx, &flow.meta, &r, Some((&*s, seen)), tx);
                // A body that ran to the close ends here.
                detect::http_response(&mut cx, &mut flow, &r, &s, &body);
            }
        }
        // Requests never answered (the response inspection above needed the whole flow).
        if let Parser::Http(h) = &mut flow.parser {
            while let Some(req) = h.pending.pop_front() {
                let tx = h.tx;
                h.tx += 1;
                http_event(&mut cx, &flow.meta, &req, None, tx);
            }
        }
        budget.release(flow.app_charged + flow.streams_charged as usize + flow_charge::<Flow>());
        beacon_ended(&mut cx, &mut flow);
        // Flows that ended before the model's packet count are scored at their end.
        if flow.flow_score.is_none() && cx.flow_model.is_some() {
            names::flow_check(&mut cx, &mut flow, 0, 0);
        }
        if let Some(tap) = flow_tap.as_mut() {
            tap.push((flow.meta.id, names::record_of(&flow, last_ns)));
        }
        if flow_events {
            flow_event(&mut cx, &flow, last_ns, reason);
        }
        if let Some(tap) = flow_tap {
            self.flow_tap = tap;
        }
    }

    /// Event rules for a packet without a flow (see [`detect::event_rules`]).
    fn event_rules(&mut self, now: i64, pkt: u64, ends: Option<(IpAddr, IpAddr, u8)>) -> Verdict {
        detect::event_rules(self, now, pkt, ends)
    }

    fn anomaly_event(
        &mut self,
        now: i64,
        pkt: u64,
        ends: Option<(IpAddr, IpAddr, u8)>,
        kind: &str,
        name: &'static str,
    ) {
        self.stats.anomaly(name);
        self.stats.events[5] += 1;
        let mut e = flowless_header(&mut self.out, now, pkt, ends, "anomaly");
        e.obj("anomaly", |a| {
            a.str("type", kind).str("event", name);
        });
        e.close();
        self.out.push(b'\n');
    }

    /// Writes a `stats` event (also called periodically by the shells).
    pub fn stats_event(&mut self, now: i64) {
        self.stats.events[6] += 1;
        let s = &self.stats;
        let fs = self.flows.stats;
        let ds = self.defrag.stats;
        let (evicted, step_limit) = self.sig_counters();
        let nsigs = self.sigs.len() as u64;
        let indicators = self.intel.indicator_count() as u64;
        let bad_lines = palisade_rules::bad_lines(self.intel.lists());
        let o = &mut self.out;
        let mut e = Obj::new(o);
        e.ts("timestamp", now);
        e.str("event_type", "stats");
        e.obj("stats", |st| {
            st.u64(
                "uptime",
                (self
                    .last_ns
                    .saturating_sub(self.first_ns.unwrap_or(self.last_ns))
                    .max(0)
                    / 1_000_000_000) as u64,
            );
            st.obj("decoder", |d| {
                d.u64("pkts", s.packets)
                    .u64("bytes", s.bytes)
                    .u64("ipv4", s.ipv4)
                    .u64("ipv6", s.ipv6);
                d.u64("tcp", s.tcp)
                    .u64("udp", s.udp)
                    .u64("icmp", s.icmp)
                    .u64("non_ip", s.non_ip)
                    .u64("tunnelled", s.tunnelled);
                d.u64("anomalies", s.anomaly_total());
            });
            st.obj("flow", |f| {
                f.u64("total", fs.created)
                    .u64("active", self.flows.len() as u64);
                f.u64("timeout", fs.timed_out).u64("evicted", fs.evicted);
            });
            st.obj("defrag", |d| {
                d.u64("fragments", ds.fragments)
                    .u64("reassembled", ds.reassembled);
                d.u64("timeouts", ds.timeouts)
                    .u64("evicted", ds.evicted)
                    .u64("memcap_drop", ds.refused);
                d.u64("overlaps", ds.overlaps);
            });
            st.obj("tcp", |t| {
                t.u64("reassembly_gap", s.tcp_gaps)
                    .u64("gap_bytes", s.tcp_gap_bytes);
                t.u64("overlap_diff_data", s.tcp_overlap_diff)
                    .u64("retransmission", s.tcp_retrans);
                t.u64("out_of_order", s.tcp_out_of_order);
                t.u64("segment_refused", s.tcp_refused)
                    .u64("depth_reached", s.tcp_depth);
                t.u64("pkt_invalid_timestamp", s.tcp_invalid_ts);
            });
            st.obj("memory", |m| {
                m.u64("used", self.budget.used() as u64)
                    .u64("cap", self.budget.cap() as u64);
                m.u64("refusals", self.budget.refusals)
                    .u64("app_memcap", s.app_memcap);
                let p = crate::pool::thread_stats();
                m.u64("pool_reused", p.reused)
                    .u64("pool_fresh", p.fresh)
                    .u64("pool_freed", p.freed);
                m.u64("pool_held", p.held)
                    .u64("pool_held_bytes", p.held_bytes);
            });
            st.obj("detect", |d| {
                d.u64("alerts_blocked", s.alerts_blocked)
                    .u64("alerts_allowed", s.alerts_allowed);
                d.u64("indicators", indicators)
                    .u64("intel_bad_lines", bad_lines);
                d.u64("signatures", nsigs)
                    .u64("signature_matches", s.sig_matches)
                    .u64("signature_matches_dropped", s.sig_hits_dropped);
                d.u64("threshold_evictions", evicted)
                    .u64("content_step_limit", step_limit);
                d.u64("names_scored", s.names_scored)
                    .u64("names_alerted", s.names_alerted);
                d.u64("name_burst_names", s.name_burst_names)
                    .u64("name_bursts", s.name_bursts)
                    .u64("name_burst_blocked", s.name_burst_blocked)
                    .u64("name_burst_evicted", self.bursts.evicted);
                d.u64("beacon_starts", self.beacons.starts)
                    .u64("beacons", s.beacons)
                    .u64("beacon_blocked", s.beacon_blocked)
                    .u64("beacon_evicted", self.beacons.evicted)
                    .u64("dns_tunnel_names", self.tunnels.names)
                    .u64("dns_tunnels", s.dns_tunnels)
                    .u64("dns_tunnel_blocked", s.dns_tunnel_blocked)
                    .u64("dns_tunnel_evicted", self.tunnels.evicted);
                d.u64("flows_scored", s.flows_scored)
                    .u64("flows_alerted", s.flows_alerted);
                d.u64("quic_known_good", s.quic_known_good)
                    .u64("quic_known_good_replaced", s.quic_known_good_replaced)
                    .u64("quic_downgraded", s.quic_downgraded);
                if let Some(n) = &self.names {
                    d.str("name_model", n.model.version());
                }
                if let Some(f) = &self.flows_model {
                    d.str("flow_model", f.model.version());
                }
            });
            st.obj("anomaly", |a| {
                for (n, c) in &s.anomalies {
                    a.u64(n, *c);
                }
            });
        });
        e.close();
        o.push(b'\n');
    }

    /// Flows created so far.
    pub fn flows_created(&self) -> u64 {
        self.flows.stats.created
    }

    /// First and last packet timestamps seen.
    pub fn time_span(&self) -> (i64, i64) {
        (self.first_ns.unwrap_or(0), self.last_ns)
    }
}

struct Seg<'a> {
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &'a [u8],
    /// TCP: the timestamp option's TSval and TSecr, when present.
    ts: Option<(u32, u32)>,
}

/// The TSval and TSecr of a TCP header's timestamp option (kind 8, length 10), if it has one;
/// malformed options end the walk. Not etherparse's options iterator: it stops at the first
/// option kind it does not know, where a receiver skips it by its length, so a segment could
/// hide its timestamp behind an unknown option and escape the staleness check.
fn tcp_timestamps(header: &[u8]) -> Option<(u32, u32)> {
    let mut o = header.get(20..)?;
    // The layout nearly every stack sends after the handshake (NOP, NOP, timestamps), first.
    if let [1, 1, 8, 10, a, b, c, d, e, f, g, h, ..] = *o {
        return Some((
            u32::from_be_bytes([a, b, c, d]),
            u32::from_be_bytes([e, f, g, h]),
        ));
    }
    while let Some(&kind) = o.first() {
        match kind {
            0 => return None,
            1 => o = &o[1..],
            _ => {
                let len = *o.get(1)? as usize;
                if len < 2 || len > o.len() {
                    return None;
                }
                if kind == 8 && len == 10 {
                    return Some((
                        u32::from_be_bytes([o[2], o[3], o[4], o[5]]),
                        u32::from_be_bytes([o[6], o[7], o[8], o[9]]),
                    ));
                }
                o = &o[len..];
            }
        }
    }
    None
}

/// Whether anything more can be learned from this flow (see [`Engine::bypass`]).
fn inspection_done(f: &Flow, sigs: &SigSet) -> bool {
    if f.sigs.as_ref().is_some_and(|s| s.passed) {
        return true;
    }
    // Packet and stream signatures read every packet (up to the reassembly depth).
    if sigs.wants(Hook::Packet) {
        return false;
    }
    if sigs.wants(Hook::Stream) && f.meta.proto == 6 {
        return f
            .streams
            .as_ref()
            .is_some_and(|s| s[0].depth_reached && s[1].depth_reached);
    }
    match f.meta.proto {
        6 => {
            let depth = f
                .streams
                .as_ref()
                .is_some_and(|s| s[0].depth_reached && s[1].depth_reached);
            depth
                || match f.app {
                    AppProto::Tls => f.tls.as_ref().is_some_and(|t| t.logged),
                    // SSH is encrypted after its banners, as failed detection has nothing to
                    // parse; SMTP, FTP and SMB carry cleartext that rules may read.
                    AppProto::Failed | AppProto::Ssh => true,
                    // Each HTTP request and DNS query must be checked; unknown is undecided.
                    _ => false,
                }
        }
        17 => match (&f.app, &f.parser) {
            (AppProto::Dns, _) => false,
            (AppProto::Quic, Parser::Quic(q)) => q.is_done(),
            _ => f.pkts[0] > 0 && f.pkts[1] > 0,
        },
        _ => true,
    }
}

fn timeout_class(f: &Flow) -> u8 {
    if f.meta.proto == 6 {
        match f.tcp_state {
            TcpState::Established => 3,
            _ => 1,
        }
    } else if f.pkts[1] > 0 && f.pkts[0] > 0 {
        2
    } else {
        0
    }
}

fn proto_name(p: u8) -> &'static str {
    match p {
        6 => "TCP",
        17 => "UDP",
        1 => "ICMP",
        58 => "IPv6-ICMP",
        47 => "GRE",
        50 => "ESP",
        132 => "SCTP",
        _ => "IP",
    }
}

fn fmt_ip(buf: &mut [u8; 45], a: IpAddr) -> &str {
    use std::io::Write as _;
    let mut c = std::io::Cursor::new(&mut buf[..]);
    let _ = write!(c, "{a}");
    let n = c.position() as usize;
    std::str::from_utf8(&buf[..n]).unwrap_or("")
}

/// Writes the common header of a flow-scoped event, in packet direction `dir`.
fn header<'a>(
    out: &'a mut Vec<u8>,
    now: i64,
    pkt: u64,
    m: &Meta,
    dir: usize,
    event_type: &str,
) -> Obj<'a> {
    let (s, d) = m.ends(dir);
    let mut e = Obj::new(out);
    e.ts("timestamp", now);
    e.u64("flow_id", m.id);
    if pkt > 0 {
        e.u64("pcap_cnt", pkt);
    }
    e.str("event_type", event_type);
    if m.vlan[0] != 0 {
        let mut vb = [0u8; 16];
        let vs = match m.vlan {
            [a, 0, _] => fmt_small(&mut vb, format_args!("[{a}]")),
            [a, b, 0] => fmt_small(&mut vb, format_args!("[{a},{b}]")),
            [a, b, c] => fmt_small(&mut vb, format_args!("[{a},{b},{c}]")),
        };
        e.raw("vlan", vs);
    }
    e.ip("src_ip", s.0);
    if matches!(m.proto, 6 | 17) {
        e.u64("src_port", s.1 as u64);
    }
    e.ip("dest_ip", d.0);
    if matches!(m.proto, 6 | 17) {
        e.u64("dest_port", d.1 as u64);
    }
    e.str("proto", proto_name(m.proto));
    let n = m.cid.iter().position(|&b| b == 0).unwrap_or(30);
    e.bytes("community_id", &m.cid[..n]);
    if let Some(t) = &m.tunnel {
        e.obj("tunnel", |o| {
            o.ip("src_ip", t.src)
                .ip("dest_ip", t.dst)
                .str("proto", proto_name(t.proto))
                .str("kind", t.kind)
                .u64("depth", t.depth.into());
            if let Some(v) = t.vni {
                o.u64("vni", v.into());
            }
        });
    }
    e
}

/// The `palisade` object of an app-layer event: the domain model's score of its name.
fn name_score_obj(e: &mut Obj<'_>, score: Option<f32>) {
    if let Some(s) = score {
        e.obj("palisade", |p| names::write(p, s));
    }
}

fn end_line(cx: &mut Cx<'_>, idx: usize) {
    cx.out.push(b'\n');
    cx.stats.events[idx] += 1;
}

fn app_anomaly(cx: &mut Cx<'_>, m: &Meta, dir: usize, app: &str, name: &'static str) {
    cx.stats.anomaly(name);
    let mut e = header(cx.out, cx.now, cx.pkt, m, dir, "anomaly");
    e.str("app_proto", app);
    e.obj("anomaly", |a| {
        a.str("type", "applayer")
            .str("event", name)
            .str("layer", "proto_parser");
    });
    e.close();
    end_line(cx, 5);
}

fn stream_anomaly(cx: &mut Cx<'_>, m: &Meta, dir: usize, name: &'static str) {
    cx.stats.anomaly(name);
    let mut e = header(cx.out, cx.now, cx.pkt, m, dir, "anomaly");
    e.obj("anomaly", |a| {
        a.str("type", "stream").str("event", name);
    });
    e.close();
    end_line(cx, 5);
}

/// What an alert says besides its explanation.
struct AlertSpec<'s> {
    gid: u64,
    sid: u64,
    rev: u64,
    signature: &'s str,
    category: &'s str,
    severity: u64,
    /// What an inline filter does.
    action: Verdict,
    /// Whether it does it (block mode and a blocking indicator or policy).
    enforce: bool,
    /// A rule's `target`: true when the packet's source is the target, false for its
    /// destination (the alert then names `source` and `target` as Suricata does).
    target: Option<bool>,
    /// A rule's `metadata` entries (`key value`), written grouped by key as Suricata does.
    metadata: &'s [String],
}

/// The alert of one of Palisade's own detectors (gid 1, rev 1): alert only at severity 2, or,
/// with `block`, that action at severity 1, enforced in block mode.
fn detector_spec<'s>(
    mode: Mode,
    sid: u64,
    signature: &'s str,
    category: &'s str,
    block: Option<Verdict>,
) -> AlertSpec<'s> {
    AlertSpec {
        gid: 1,
        sid,
        rev: 1,
        signature,
        category,
        severity: if block.is_some() { 1 } else { 2 },
        action: block.unwrap_or(Verdict::Accept),
        enforce: block.is_some() && mode == Mode::Block,
        target: None,
        metadata: &[],
    }
}

/// The start of an event about a packet without a flow: time, packet number, type, and the
/// addresses and protocol when its IP header was read.
fn flowless_header<'a>(
    out: &'a mut Vec<u8>,
    now: i64,
    pkt: u64,
    ends: Option<(IpAddr, IpAddr, u8)>,
    event_type: &str,
) -> Obj<'a> {
    let mut e = Obj::new(out);
    e.ts("timestamp", now);
    e.u64("pcap_cnt", pkt);
    e.str("event_type", event_type);
    if let Some((s, d, p)) = ends {
        e.ip("src_ip", s)
            .ip("dest_ip", d)
            .str("proto", proto_name(p));
    }
    e
}

/// An alert's own fields, as Suricata writes them: action, gid, signature_id, rev, signature,
/// category, severity and the rule's metadata grouped by key.
fn alert_fields(a: &mut Obj<'_>, spec: &AlertSpec<'_>) {
    a.str("action", if spec.enforce { "blocked" } else { "allowed" });
    a.u64("gid", spec.gid)
        .u64("signature_id", spec.sid)
        .u64("rev", spec.rev);
    a.str("signature", spec.signature);
    a.str("category", spec.category);
    a.u64("severity", spec.severity);
    if !spec.metadata.is_empty() {
        a.obj("metadata", |o| {
            let md = spec.metadata;
            for (i, entry) in md.iter().enumerate() {
                let key = entry.split_whitespace().next().unwrap_or("");
                // Each key once, at its first entry, with all its values.
                if key.is_empty()
                    || md[..i]
                        .iter()
                        .any(|e| e.split_whitespace().next() == Some(key))
                {
                    continue;
                }
                o.arr(key, |arr| {
                    for e in md
                        .iter()
                        .filter(|e| e.split_whitespace().next() == Some(key))
                    {
                        arr.str(e[key.len()..].trim());
                    }
                });
            }
        });
    }
}

/// Applies an alert's verdict to the flow (or, for a DNS sinkhole, to this packet only), counts
/// it, and writes the alert; `explain` adds the fields that say why (indicator or policy).
fn raise_alert(
    cx: &mut Cx<'_>,
    flow: &mut Flow,
    dir: usize,
    spec: AlertSpec<'_>,
    explain: impl FnOnce(&mut Obj<'_>),
) {
    if spec.enforce {
        enforce(cx, flow, spec.action);
        cx.stats.alerts_blocked += 1;
    } else {
        cx.stats.alerts_allowed += 1;
    }
    flow.alerted = true;
    let m = flow.meta;
    let pkt = cx.pkt;
    let before = !flow.server_payload;
    let app = flow.app;
    let mut e = header(cx.out, cx.now, cx.pkt, &m, dir, "alert");
    if app != AppProto::Unknown {
        e.str("app_proto", app.as_str());
    }
    e.obj("alert", |a| {
        alert_fields(a, &spec);
        if let Some(src_is_target) = spec.target {
            let (s, d) = m.ends(dir);
            let (t, o) = if src_is_target { (s, d) } else { (d, s) };
            for (k, ep) in [("source", o), ("target", t)] {
                a.obj(k, |x| {
                    x.ip("ip", ep.0);
                    if matches!(m.proto, 6 | 17) {
                        x.u64("port", ep.1 as u64);
                    }
                });
            }
        }
    });
    e.obj("palisade", |p| {
        explain(p);
        p.obj("inline", |i| {
            i.str("action", spec.action.as_str());
            i.bool("enforced", spec.enforce);
            i.u64("pcap_cnt", pkt);
            i.bool("before_server_payload", before);
        });
    });
    e.close();
    end_line(cx, 4);
}

/// An item a detector's series blocks after its alert (`blocks`), counted by the caller: true
/// when a note is due, for the caller's alert, which blocks it as it is raised; otherwise
/// blocked here (block mode) without an alert.
fn block_unless_noted(
    cx: &mut Cx<'_>,
    flow: &mut Flow,
    b: &blocks::Blocked,
    action: Verdict,
) -> bool {
    if b.note {
        return true;
    }
    if cx.mode == Mode::Block {
        enforce(cx, flow, action);
    }
    false
}

/// Blocks: a sinkhole answers this packet (a DNS query); any other verdict holds for the rest
/// of the flow (the first one given stands).
fn enforce(cx: &mut Cx<'_>, flow: &mut Flow, action: Verdict) {
    if action == Verdict::Sinkhole {
        cx.verdict = cx.verdict.max(action);
    } else if flow.verdict == Verdict::Accept {
        flow.verdict = action;
    }
}

/// A verdict from a policy (QUIC, ECH) rather than an indicator: an alert that names the policy.
#[allow(clippy::too_many_arguments)]
fn policy_alert(
    cx: &mut Cx<'_>,
    flow: &mut Flow,
    dir: usize,
    policy: &str,
    field: &str,
    value: &str,
    action: Verdict,
    enforce: bool,
) {
    let mut sig = crate::pool::Text::with_capacity(64);
    sig.push_str("PALISADE policy ");
    sig.push_str(policy);
    let spec = AlertSpec {
        gid: 1,
        sid: 9_100_010,
        rev: 1,
        signature: &sig,
        category: "Policy",
        severity: 2,
        action,
        enforce: enforce && cx.mode == Mode::Block,
        target: None,
        metadata: &[],
    };
    raise_alert(cx, flow, dir, spec, |p| {
        p.str("policy", policy)
            .str("field", field)
            .str("value", value);
    });
}

/// Gives the flow's client bytes to its connection series (`beacons`), once: at the first of
/// its inspection's end (after which an inline filter no longer sees it), its first FIN or RST,
/// and its end.
fn beacon_ended(cx: &mut Cx<'_>, flow: &mut Flow) {
    if flow.sized {
        return;
    }
    flow.sized = true;
    let (start, sent) = (flow.meta.start_ns, flow.bytes[0]);
    if let Some(key) = flow.meta.series() {
        cx.beacons.ended(&key, start, sent);
        if flow.beacon_name != 0 {
            cx.beacons
                .ended(&key.by_name(flow.beacon_name), start, sent);
        }
    }
}

/// A name a connection carried (SNI, QUIC SNI, Host; `allowed`: an allow list holds it). The
/// connection's first name names its series by address, and starts or extends its client's
/// series by that name, which follows a server across its addresses (a CDN's edges, fast flux).
fn beacon_name(cx: &mut Cx<'_>, flow: &mut Flow, name: &str, allowed: bool) {
    let Some(b) = cx.beacon else { return };
    if flow.beacon_name != 0 || flow.beacon_skip {
        return;
    }
    let m = flow.meta;
    let Some(key) = m.series() else {
        return;
    };
    cx.beacons.named(&key, name, allowed);
    let fp = cx.beacons.name_fp(name);
    flow.beacon_name = fp;
    let by_name = key.by_name(fp);
    let found = cx
        .beacons
        .start(b, by_name, m.srv.0, m.start_ns, allowed, Some(name));
    match found {
        // Not again for connections the series by address alerted on already.
        Some(beacons::Hit::Periodic(found)) if !cx.beacons.quiet(&key, cx.now) => {
            beacon_alert(cx, flow, b, &found);
        }
        Some(beacons::Hit::Periodic(_)) => {}
        Some(beacons::Hit::Blocked(bl)) => beacon_blocked(cx, flow, bl, Some(name)),
        None => {}
    }
}

/// What blocking a connection of a beacon does: a TCP reset (at the SYN, or at the name for a
/// series by name), a drop for UDP.
fn beacon_block_action(flow: &Flow) -> Verdict {
    if flow.meta.proto == 6 {
        Verdict::Reset
    } else {
        Verdict::Drop
    }
}

/// A connection of a beacon blocked after its alert (`--beacon-block`): blocked in block mode,
/// counted, and once a minute at most an alert (sid 9100033) saying how many were since the
/// series' last alert. `name`: the series' name, for a series by name.
fn beacon_blocked(cx: &mut Cx<'_>, flow: &mut Flow, b: blocks::Blocked, name: Option<&str>) {
    // One connection blocked by both views of it (by address at its SYN, by name at its
    // ClientHello, as a replay still sees) counts once.
    if flow.beacon_blocked {
        return;
    }
    flow.beacon_blocked = true;
    cx.stats.beacon_blocked += 1;
    let action = beacon_block_action(flow);
    if !block_unless_noted(cx, flow, &b, action) {
        return;
    }
    let m = flow.meta;
    let since_s = b.since_s();
    let mut buf = [0u8; 45];
    let server = name.unwrap_or_else(|| fmt_ip(&mut buf, m.srv.0));
    let sig = crate::pool::Text::fmt(format_args!(
        "PALISADE beacon blocked: {} connections to {server} port {} blocked in {since_s} s",
        b.count, m.srv.1
    ));
    let spec = detector_spec(cx.mode, 9_100_033, &sig, BEACON_CATEGORY, Some(action));
    raise_alert(cx, flow, 0, spec, |p| {
        p.obj("beacon", |o| {
            o.str("by", if name.is_some() { "name" } else { "address" });
            o.ip("client", m.cli.0)
                .ip("server", m.srv.0)
                .u64("port", m.srv.1 as u64)
                .str("proto", proto_name(m.proto));
            if let Some(n) = name {
                o.str("name", n);
            }
            b.write(o, "blocked_connections");
        });
        let mut buf = [0u8; 45];
        p.str("field", "dest_ip")
            .str("value", fmt_ip(&mut buf, m.srv.0));
    });
}

const BEACON_CATEGORY: &str = "Periodic connections (possible command and control)";

/// A connection series judged periodic (`beacons`): an alert on the connection that completed
/// it, naming the server, the period and its spread, the score with its parts and the settings
/// it was judged by. Alert only, unless `--beacon-block`: then the connection is blocked too.
fn beacon_alert(cx: &mut Cx<'_>, flow: &mut Flow, cfg: Beacon, f: &beacons::Found) {
    cx.stats.beacons += 1;
    let spec = detector_spec(
        cx.mode,
        9_100_030,
        "PALISADE beacon: periodic connections from one client to one server",
        BEACON_CATEGORY,
        cfg.block.then(|| beacon_block_action(flow)),
    );
    let m = flow.meta;
    flow.beacon_blocked = cfg.block;
    raise_alert(cx, flow, 0, spec, |p| {
        p.obj("beacon", |o| {
            o.str("by", if f.by_name { "name" } else { "address" });
            o.ip("client", m.cli.0)
                .ip("server", m.srv.0)
                .u64("port", m.srv.1 as u64)
                .str("proto", proto_name(m.proto));
            if let Some(n) = f.name() {
                o.str("name", n);
            }
            o.u64("address_changes", f.addr_changes as u64);
            o.u64("connections", f.connections as u64)
                .u64("gaps", f.gaps as u64);
            for (k, ns) in [("median_gap_s", f.median_ns), ("gap_mad_s", f.mad_ns)] {
                let mut b = [0u8; 16];
                o.raw(k, fmt_small(&mut b, format_args!("{:.3}", ns as f64 / 1e9)));
            }
            if let Some(mb) = f.median_bytes {
                o.u64("median_client_bytes", mb as u64);
            }
            let mut b = [0u8; 8];
            o.raw("score", names::fixed6(&mut b, f.score));
            o.obj("parts", |q| {
                let mut b = [0u8; 8];
                q.raw("gap_regularity", names::fixed6(&mut b, f.gap_regularity));
                q.raw("gap_spread", names::fixed6(&mut b, f.gap_spread));
                if let Some(z) = f.size_regularity {
                    q.raw("size_regularity", names::fixed6(&mut b, z));
                }
            });
            o.raw("threshold", names::fixed6(&mut b, beacons::SCORE));
            o.raw("spread_threshold", names::fixed6(&mut b, beacons::SPREAD));
            o.u64("min_connections", cfg.count as u64).u64(
                "min_interval_s",
                (cfg.min_interval_ns / 1_000_000_000) as u64,
            );
            if cfg.block {
                o.u64("block_s", (beacons::QUIET_NS / 1_000_000_000) as u64);
            }
        });
        let mut buf = [0u8; 45];
        p.str("field", "dest_ip")
            .str("value", fmt_ip(&mut buf, m.srv.0));
    });
}

/// A DNS query for `name` of type `qtype`: counted in its client's series under the name's
/// registered domain (`tunnels`), and an alert when it makes the series' distinct names carry
/// the threshold's payload bytes within the window. With `--dns-tunnel-block`, that query and
/// the series' later payload-carrying ones for the quiet hour are sinkholed (block mode), with
/// an alert a minute at most about those. Special-use names do not count (nor, by the caller,
/// names an intel list holds).
fn dns_tunnel(cx: &mut Cx<'_>, flow: &mut Flow, dir: usize, name: &str, qtype: u16) {
    let Some(cfg) = cx.dns_tunnel else { return };
    if !tunnels::may_carry(name) || names::special_use(name) {
        return;
    }
    // As long as the parser writes names (bytes outside printable ASCII as `\xNN`).
    let mut buf = [0u8; dns::MAX_NAME];
    let Some(lower) = names::lowered(name, &mut buf) else {
        return;
    };
    // The querier is where the query comes from.
    let ((client, _), _) = flow.meta.ends(dir);
    match cx.tunnels.query(cfg, client, lower, qtype, cx.now) {
        None => {}
        Some(tunnels::Hit::Crossed(f)) => {
            tunnel_crossed(cx, flow, dir, cfg, client, name, lower, f)
        }
        Some(tunnels::Hit::Blocked(b, domain_at)) => {
            cx.stats.dns_tunnel_blocked += 1;
            if block_unless_noted(cx, flow, &b, Verdict::Sinkhole) {
                let domain = lower.get(domain_at..).unwrap_or(lower);
                tunnel_blocked(cx, flow, dir, client, name, domain, b);
            }
        }
    }
}

/// The alert of a DNS tunnel's series crossing the threshold (sid 9100031); with
/// `--dns-tunnel-block` it sinkholes the query.
#[allow(clippy::too_many_arguments)]
fn tunnel_crossed(
    cx: &mut Cx<'_>,
    flow: &mut Flow,
    dir: usize,
    cfg: DnsTunnel,
    client: IpAddr,
    name: &str,
    lower: &str,
    f: tunnels::Found,
) {
    cx.stats.dns_tunnels += 1;
    let domain = lower.get(f.domain_at..).unwrap_or(lower);
    let window_s = cfg.window_ns / 1_000_000_000;
    let sig = crate::pool::Text::fmt(format_args!(
            "PALISADE DNS tunnel: {} distinct names under {domain} carried {} payload bytes within {window_s} s",
            f.names, f.payload
    ));
    let block = cfg.block.then_some(Verdict::Sinkhole);
    let spec = detector_spec(cx.mode, 9_100_031, &sig, TUNNEL_CATEGORY, block);
    raise_alert(cx, flow, dir, spec, |p| {
        p.obj("dns_tunnel", |o| {
            o.ip("client", client)
                .str("domain", domain)
                .u64("names", f.names as u64)
                .u64("payload_bytes", f.payload as u64)
                .u64("name_bytes", f.bytes as u64)
                .u64("queries", f.queries as u64)
                .u64("data_type_queries", f.carrier as u64)
                .u64("longest_name", f.longest as u64);
            let mut b = [0u8; 16];
            o.raw(
                "span_s",
                fmt_small(&mut b, format_args!("{:.3}", f.span_ns as f64 / 1e9)),
            );
            o.u64("threshold_bytes", cfg.bytes as u64)
                .u64("window_s", window_s as u64)
                .u64("allowance", tunnels::ALLOWANCE as u64);
            if cfg.block {
                o.u64("block_s", (tunnels::QUIET_NS / 1_000_000_000) as u64);
            }
        });
        tunnel_query_field(p, name);
    });
}

/// The alert about a blocked DNS tunnel's queries (sid 9100032): how many were sinkholed since
/// its last alert; this one is too.
fn tunnel_blocked(
    cx: &mut Cx<'_>,
    flow: &mut Flow,
    dir: usize,
    client: IpAddr,
    name: &str,
    domain: &str,
    b: blocks::Blocked,
) {
    let sig = crate::pool::Text::fmt(format_args!(
        "PALISADE DNS tunnel blocked: {} queries under {domain} sinkholed in {} s",
        b.count,
        b.since_s()
    ));
    let block = Some(Verdict::Sinkhole);
    let spec = detector_spec(cx.mode, 9_100_032, &sig, TUNNEL_CATEGORY, block);
    raise_alert(cx, flow, dir, spec, |p| {
        p.obj("dns_tunnel", |o| {
            o.ip("client", client).str("domain", domain);
            b.write(o, "blocked_queries");
        });
        tunnel_query_field(p, name);
    });
}

const TUNNEL_CATEGORY: &str = "Data carried in DNS query names (possible tunnel or exfiltration)";

/// The alert's field: the name as asked (tunnels' encodings may use letter case).
fn tunnel_query_field(p: &mut Obj<'_>, name: &str) {
    let t = name.strip_suffix('.').unwrap_or(name);
    p.str("field", "dns.query").str("value", t);
}

/// Applies an intel hit to a flow: an alert, and (in block mode) the verdict.
fn decide(
    cx: &mut Cx<'_>,
    flow: &mut Flow,
    dir: usize,
    hit: Hit<'_>,
    field: &str,
    value: &str,
    action: Verdict,
) {
    if hit.action == Action::Allow {
        return;
    }
    let sid = match (hit.kind, field) {
        (_, "dns.query") => 9_100_001,
        (_, "tls.sni") => 9_100_002,
        (_, "quic.sni") => 9_100_007,
        (_, "http.hostname") => 9_100_003,
        (Kind::Url | Kind::Path, _) => 9_100_004,
        (Kind::Addr, _) => 9_100_005,
        _ => 9_100_006,
    };
    let kind = match hit.kind {
        Kind::Domain => "domain",
        Kind::Addr => "ip",
        Kind::Url => "url",
        Kind::Path => "url-path",
    };
    let mut sig = crate::pool::Text::with_capacity(96);
    sig.push_str("PALISADE intel ");
    sig.push_str(hit.action.as_str());
    sig.push(' ');
    sig.push_str(field);
    sig.push(' ');
    sig.push_str(hit.indicator);
    let spec = AlertSpec {
        gid: 1,
        sid,
        rev: 1,
        signature: &sig,
        category: "Threat intelligence indicator",
        severity: if hit.action == Action::Block { 1 } else { 3 },
        action,
        enforce: hit.action == Action::Block && cx.mode == Mode::Block,
        target: None,
        metadata: &[],
    };
    raise_alert(cx, flow, dir, spec, |p| {
        p.str("indicator", hit.indicator).str("kind", kind);
        p.str("list", hit.list).u64("line", hit.line as u64);
        p.str("list_action", hit.action.as_str())
            .str("precedence", hit.rule);
        p.str("field", field).str("value", value);
    });
}

fn check_domain(
    cx: &mut Cx<'_>,
    flow: &mut Flow,
    dir: usize,
    field: &str,
    name: &str,
    action: Verdict,
) -> bool {
    // The hit borrows the intel set, which outlives the context.
    let intel = cx.intel;
    let hit = intel.match_domain(name);
    let decided = hit.is_some();
    // The names connection series carry (their allow-listing too), for beacon alerts.
    if !field.starts_with("dns.") {
        let allowed = hit.as_ref().is_some_and(|h| h.action == Action::Allow);
        beacon_name(cx, flow, name, allowed);
    }
    if let Some(hit) = hit {
        decide(cx, flow, dir, hit, field, name, action);
    }
    // The model judges names asked for, not the names answers point at.
    if field != "dns.answer" {
        names::check(cx, flow, dir, field, name, action, decided);
    }
    decided
}

/// Whether a segment's timestamps show it would be discarded by the endpoint, so it must not move
/// the state or reach reassembly here either (a forged RST, FIN or payload is an evasion):
/// - PAWS (RFC 7323) as a Linux receiver applies it: a TSval older than its sender's latest by
///   more than one tick (Linux's tolerance);
/// - before the server's SYN-ACK, a server segment must echo the client's SYN timestamp (or 0
///   when the SYN had none): one that echoes something else answers no SYN of this connection
///   (as Suricata's check of the SYN_SENT state).
fn stale_timestamp(flow: &Flow, dir: usize, ts: u32, echo: u32) -> bool {
    if let Some(last) = flow.ts_last[dir] {
        if (ts.wrapping_sub(last) as i32) < -1 {
            return true;
        }
    }
    if dir == 1 && flow.tcp_state == TcpState::SynSent {
        return match flow.ts_last[0] {
            Some(syn_ts) => echo != 0 && echo != syn_ts,
            None => echo != 0,
        };
    }
    false
}

fn tcp_packet(cx: &mut Cx<'_>, flow: &mut Flow, dir: usize, seg: &Seg<'_>, budget: &mut Budget) {
    if let Some((ts, echo)) = seg.ts {
        if stale_timestamp(flow, dir, ts, echo) {
            cx.stats.tcp_invalid_ts += 1;
            stream_anomaly(cx, &flow.meta, dir, "stream.pkt_invalid_timestamp");
            return;
        }
        // The latest is taken from in-order segments only, so reordering on the wire does not
        // make a good segment look stale.
        // Before any payload there is no stream yet: the next byte follows the SYN.
        let next = match flow.streams.as_ref() {
            Some(s) => s[dir].next_seq(),
            None => flow.isn[dir].map(|i| i.wrapping_add(1)),
        };
        let in_order = next.is_none_or(|n| n == seg.seq || seg.flags & 0x02 != 0);
        if in_order && flow.ts_last[dir].is_none_or(|l| (ts.wrapping_sub(l) as i32) > 0) {
            flow.ts_last[dir] = Some(ts);
        }
    }
    let f = seg.flags;
    let (syn, ack, fin, rst) = (f & 0x02 != 0, f & 0x10 != 0, f & 0x01 != 0, f & 0x04 != 0);
    // The first FIN or RST: the client has sent what it will (its size for beaconing, before
    // the closed flow's timeout ends it, which can be after the next check-in).
    if (fin || rst) && flow.fin_seen == [false; 2] && flow.tcp_state != TcpState::Closed {
        beacon_ended(cx, flow);
    }
    flow.flags[dir] |= f;
    // State machine, as far as an observer can tell.
    flow.tcp_state = match (flow.tcp_state, dir, syn, ack) {
        (_, _, _, _) if rst => TcpState::Closed,
        (TcpState::None, 0, true, false) => TcpState::SynSent,
        (TcpState::SynSent, 1, true, true) | (TcpState::None, 1, true, true) => TcpState::SynRecv,
        (TcpState::SynRecv, 0, false, true) => TcpState::Established,
        (TcpState::None, _, false, _) => TcpState::Established,
        (s, _, _, _) => s,
    };
    if syn {
        flow.isn[dir] = Some(seg.seq);
    }
    if flow.streams.is_none() {
        if seg.payload.is_empty() || rst {
            return;
        }
        if !budget.try_charge(std::mem::size_of::<[Stream; 2]>()) {
            cx.stats.tcp_refused += 1;
            return;
        }
        let mut st = Pooled::<[Stream; 2]>::take();
        for (d, isn) in flow.isn.iter().enumerate() {
            if let Some(isn) = isn {
                st[d].syn(*isn);
            }
        }
        flow.streams = Some(st);
        flow.streams_charged = std::mem::size_of::<[Stream; 2]>() as u32;
    }
    let Some(mut st) = flow.streams.take() else {
        return;
    };
    if syn {
        st[dir].syn(seg.seq);
    }
    let data_seq = if syn {
        seg.seq.wrapping_add(1)
    } else {
        seg.seq
    };
    if !seg.payload.is_empty() && !rst {
        let (a, b) = st.split_at_mut(1);
        let s = if dir == 0 { &mut a[0] } else { &mut b[0] };
        let before_gap = s.gap_bytes;
        let was_depth = s.depth_reached;
        let notes = s.segment(data_seq, seg.payload, budget, &mut |c| {
            app_chunk(cx, flow, dir, c)
        });
        if notes.overlap_different {
            cx.stats.tcp_overlap_diff += 1;
            stream_anomaly(
                cx,
                &flow.meta,
                dir,
                "stream.reassembly_overlap_different_data",
            );
        }
        if notes.retransmission {
            cx.stats.tcp_retrans += 1;
        }
        if notes.out_of_order {
            cx.stats.tcp_out_of_order += 1;
        }
        if notes.refused {
            cx.stats.tcp_refused += 1;
        }
        if s.gap_bytes != before_gap {
            cx.stats.tcp_gaps += 1;
        }
        if s.depth_reached && !was_depth {
            cx.stats.tcp_depth += 1;
        }
    }
    if fin {
        st[dir].fin(data_seq.wrapping_add(seg.payload.len() as u32));
        flow.fin_seen[dir] = true;
        flow.tcp_state = match flow.tcp_state {
            TcpState::Established | TcpState::SynRecv | TcpState::SynSent => {
                if dir == 0 {
                    TcpState::FinWait1
                } else {
                    TcpState::CloseWait
                }
            }
            TcpState::FinWait1 | TcpState::FinWait2 if dir == 1 => TcpState::TimeWait,
            TcpState::CloseWait if dir == 0 => TcpState::LastAck,
            s => s,
        };
    } else if ack && flow.fin_seen[0] && flow.fin_seen[1] {
        flow.tcp_state = TcpState::Closed;
    } else if ack && flow.tcp_state == TcpState::FinWait1 && dir == 1 {
        flow.tcp_state = TcpState::FinWait2;
    }
    if ack && !rst {
        // The peer acknowledged: bytes of the other direction we never saw are a gap.
        let other = 1 - dir;
        let (a, b) = st.split_at_mut(1);
        let s = if other == 0 { &mut a[0] } else { &mut b[0] };
        let before_gap = s.gap_bytes;
        s.ack(seg.ack, budget, &mut |c| app_chunk(cx, flow, other, c));
        if s.gap_bytes != before_gap {
            cx.stats.tcp_gaps += 1;
            cx.stats.tcp_gap_bytes += s.gap_bytes - before_gap;
        }
    }
    flow.streams = Some(st);
}

/// Feeds one reassembled chunk of direction `dir` to the app layer.
fn app_chunk(cx: &mut Cx<'_>, flow: &mut Flow, dir: usize, c: Chunk<'_>) {
    if let Some(t) = cx.tap.as_mut() {
        t.push(TapRecord {
            flow_id: flow.meta.id,
            dir: dir as u8,
            data: match &c {
                Chunk::Data(d) => Ok(d.to_vec()),
                Chunk::Gap(n) => Err(*n),
            },
        });
    }
    let data = match c {
        Chunk::Gap(_) => {
            stream_gap(flow, dir);
            return;
        }
        Chunk::Data(d) => d,
    };
    if flow.app == AppProto::Unknown {
        if !probe(flow, dir, data, &cx.dns_ports) {
            return;
        }
        // Replay what the probe held back, then this chunk.
        let pb = flow.probe[dir];
        flow.probe[dir] = ProbeBuf::default();
        if pb.n > 0 {
            let held = pb.b;
            app_data(cx, flow, dir, &held[..pb.n as usize]);
        }
    }
    app_data(cx, flow, dir, data);
    if cx.sigs.wants(Hook::Stream) && !detect::encrypted(cx, flow) {
        detect::inspect_stream(cx, flow, dir, data);
    }
}

fn stream_gap(flow: &mut Flow, dir: usize) {
    match &mut flow.parser {
        Parser::Http(h) => h.streams[dir].gap(),
        Parser::Tls(t) => t[dir] = TlsStream::default(),
        Parser::DnsTcp(d) => d[dir].buf.clear(),
        Parser::Quic(_) | Parser::Gquic(_) | Parser::None => {}
    }
    if flow.app == AppProto::Unknown {
        flow.probe[dir] = ProbeBuf::default();
    }
}

/// Protocols detected from their first bytes but not parsed, as Suricata's probing
/// patterns: SSH's `SSH-` banner (either side), a NetBIOS session message carrying SMB1, 2 or 3
/// (either side), and the client's first command for SMTP (`EHLO`, `HELO`) and FTP (`USER `,
/// `PASS `, `PORT `, `FEAT`, `SYST`, `AUTH TLS`, `AUTH SSL`); both servers speak first with a
/// `220` banner, which waits for the client. `Some(None)`: a prefix of one of these, more bytes
/// needed; `None`: none of these.
fn probe_detected(head: &[u8], dir: usize) -> Option<Option<AppProto>> {
    const CLIENT: &[(&[u8], AppProto)] = &[
        (b"EHLO", AppProto::Smtp),
        (b"HELO", AppProto::Smtp),
        (b"USER ", AppProto::Ftp),
        (b"PASS ", AppProto::Ftp),
        (b"PORT ", AppProto::Ftp),
        (b"FEAT", AppProto::Ftp),
        (b"SYST", AppProto::Ftp),
        (b"AUTH TLS", AppProto::Ftp),
        (b"AUTH SSL", AppProto::Ftp),
    ];
    let n = head.len();
    let starts = |tok: &[u8]| n >= tok.len() && head[..tok.len()].eq_ignore_ascii_case(tok);
    let prefix = |tok: &[u8]| n < tok.len() && tok[..n].eq_ignore_ascii_case(head);
    if starts(b"SSH-") {
        return Some(Some(AppProto::Ssh));
    }
    if n >= 8 && head[0] == 0 && matches!(&head[4..8], b"\xffSMB" | b"\xfeSMB" | b"\xfdSMB") {
        return Some(Some(AppProto::Smb));
    }
    if dir == 0 {
        if let Some((_, p)) = CLIENT.iter().find(|(t, _)| starts(t)) {
            return Some(Some(*p));
        }
        // "AUTH " alone is SMTP's too: wait for the mechanism.
        if CLIENT.iter().any(|(t, _)| prefix(t)) || prefix(b"SSH-") {
            return Some(None);
        }
    } else if prefix(b"SSH-") {
        return Some(None);
    }
    None
}

/// Decides the protocol from the first bytes. Returns false while more bytes are needed
/// (they are held in the small probe buffer).
fn probe(flow: &mut Flow, dir: usize, data: &[u8], dns_ports: &[u16; 4]) -> bool {
    let pb = &mut flow.probe[dir];
    let mut b = [0u8; 8];
    let n = (pb.n as usize + data.len()).min(8);
    b[..pb.n as usize].copy_from_slice(&pb.b[..pb.n as usize]);
    b[pb.n as usize..n].copy_from_slice(&data[..n - pb.n as usize]);
    let head = &b[..n];
    let dns_port = is_dns_flow(&flow.meta, dns_ports);
    let decided = if let Some(d) = probe_detected(head, dir) {
        d
    } else if dir == 0 {
        // Content first (HTTP from port 53 is still HTTP), then the DNS ports.
        match (tls::probe(head), crate::app::http::probe_request(head)) {
            (Some(true), _) => Some(AppProto::Tls),
            (_, Some(true)) => Some(AppProto::Http),
            _ if dns_port => Some(AppProto::Dns),
            (Some(false), Some(false)) => Some(AppProto::Failed),
            _ if n >= 8 => Some(AppProto::Failed),
            _ => None,
        }
    } else if head.starts_with(b"HTTP/") {
        Some(AppProto::Http)
    } else if dns_port {
        // The 2-byte length prefix may arrive one byte at a time.
        if n >= 2 {
            Some(AppProto::Dns)
        } else {
            None
        }
    } else if b"HTTP/".starts_with(head) {
        None
    } else {
        // Server speaks first with something else; wait for the client direction.
        flow.probe[dir] = ProbeBuf::default();
        return false;
    };
    match decided {
        None => {
            // Hold these bytes (at most 8) until the probe can decide.
            let add = n - pb.n as usize;
            pb.b[pb.n as usize..n].copy_from_slice(&data[..add]);
            pb.n = n as u8;
            if add < data.len() {
                // More than 8 bytes and still undecided cannot happen (n >= 8 decides).
                return true;
            }
            false
        }
        Some(p) => {
            flow.app = p;
            flow.parser = match p {
                AppProto::Tls => Parser::Tls(Pooled::take()),
                AppProto::Http => Parser::Http(Pooled::take()),
                AppProto::Dns => Parser::DnsTcp(Default::default()),
                _ => Parser::None,
            };
            true
        }
    }
}

fn app_data(cx: &mut Cx<'_>, flow: &mut Flow, dir: usize, data: &[u8]) {
    match flow.app {
        AppProto::Tls => tls_data(cx, flow, dir, data),
        AppProto::Http => http_data(cx, flow, dir, data),
        AppProto::Dns => dns_tcp_data(cx, flow, dir, data),
        _ => {}
    }
}

fn tls_data(cx: &mut Cx<'_>, flow: &mut Flow, dir: usize, data: &[u8]) {
    let Parser::Tls(t) = &mut flow.parser else {
        return;
    };
    if t[dir].is_done() {
        return;
    }
    t[1].set_keep_certs(true);
    let ev = t[dir].feed(data, dir == 0);
    let certs = t[dir].take_certs();
    let server_done = dir == 1 && t[1].is_done();
    if let Some(ev) = ev {
        tls_event(cx, flow, dir, ev);
    }
    if let Some(certs) = certs {
        tls_certs(cx, flow, dir, &certs);
    }
    // The tls event waits for the certificate (or the end of the cleartext handshake).
    if server_done && flow.tls.as_ref().is_some_and(|l| l.server.is_some()) {
        log_tls(cx, flow);
    }
}

/// The server's certificate chain: logged fields from the leaf, and the certificate hook.
fn tls_certs(cx: &mut Cx<'_>, flow: &mut Flow, dir: usize, certs: &tls::CertChain) {
    let Some(leaf) = certs.get(0) else { return };
    let mut parsed = Pooled::<crate::app::x509::CertInfo>::take();
    let info = crate::app::x509::parse_into(leaf, &mut parsed).then_some(parsed);
    if info.is_none() {
        let m = flow.meta;
        app_anomaly(cx, &m, dir, "tls", "tls.invalid_certificate");
    }
    if cx.sigs.wants(Hook::TlsCert) {
        let v = flow
            .tls
            .as_ref()
            .and_then(|l| l.server.as_ref())
            .map_or(0, |s| s.version);
        detect::tls_certs(cx, flow, dir, certs, info.as_deref(), v);
    }
    if let Some(info) = info {
        flow.tls.get_or_insert_with(Pooled::take).cert = Some(info);
    }
}

fn tls_event(cx: &mut Cx<'_>, flow: &mut Flow, dir: usize, ev: TlsEvent) {
    let m = flow.meta;
    match ev {
        TlsEvent::Client(ch) => {
            let log = flow.tls.get_or_insert_with(Pooled::take);
            if log.client.is_some() {
                return;
            }
            if cx.sigs.wants(Hook::TlsClient) {
                let bufs = detect::HelloBufs {
                    ch: Some(&ch),
                    quic_version: None,
                    gquic: None,
                };
                detect::inspect(cx, flow, dir, Hook::TlsClient, &bufs, ch.version);
            }
            // The hello joins the flow's log after the checks, which need the flow mutably
            // and read the name from it (nothing on their way reads the log's hello).
            if ch.ech && cx.ech != EchPolicy::Allow {
                let outer = ch.sni.as_deref().unwrap_or_default();
                policy_alert(
                    cx,
                    flow,
                    dir,
                    if cx.ech == EchPolicy::Block {
                        "ech=block"
                    } else {
                        "ech=audit"
                    },
                    "tls.ech_outer_sni",
                    outer,
                    Verdict::Reset,
                    cx.ech == EchPolicy::Block,
                );
            }
            if let Some(sni) = ch.sni.as_deref() {
                check_domain(cx, flow, dir, "tls.sni", sni, Verdict::Reset);
            }
            flow.tls.get_or_insert_with(Pooled::take).client = Some(ch);
        }
        TlsEvent::Server(sh) => {
            if cx.sigs.wants(Hook::TlsServer) {
                detect::tls_server(cx, flow, dir, &sh);
            }
            // The server answered a connection that is still allowed: its name is good for
            // QUIC under downgrade-unknown.
            if cx.quic == QuicPolicy::DowngradeUnknown && flow.verdict == Verdict::Accept {
                let sni = flow
                    .tls
                    .as_ref()
                    .and_then(|t| t.client.as_ref())
                    .and_then(|c| c.sni.as_deref());
                if let Some(sni) = sni {
                    cx.stats.quic_known_good += 1;
                    if cx.known_good.insert(sni, cx.now) {
                        cx.stats.quic_known_good_replaced += 1;
                    }
                }
            }
            // Logged by `tls_data` once the certificate is in (or will not come).
            flow.tls.get_or_insert_with(Pooled::take).server = Some(sh);
        }
        TlsEvent::Error(e) => app_anomaly(cx, &m, dir, "tls", e.event()),
    }
}

fn log_tls(cx: &mut Cx<'_>, flow: &mut Flow) {
    let Some(log) = flow.tls.as_mut() else { return };
    if log.logged || (log.client.is_none() && log.server.is_none()) {
        return;
    }
    log.logged = true;
    let m = flow.meta;
    let sni = log
        .client
        .as_ref()
        .and_then(|c| c.sni.as_deref())
        .unwrap_or("");
    let score = names::score(cx, sni);
    let mut e = header(cx.out, cx.now, cx.pkt, &m, 0, "tls");
    e.obj("tls", |t| {
        if let Some(ch) = &log.client {
            if let Some(sni) = &ch.sni {
                t.str("sni", sni);
            }
        }
        let ver = log.server.as_ref().map(|s| s.version).or(log
            .client
            .as_ref()
            .map(|c| c.versions.iter().copied().max().unwrap_or(c.version)));
        if let Some(c) = &log.cert {
            t.str("subject", &c.subject).str("issuerdn", &c.issuer);
            t.str("serial", &c.serial)
                .str("fingerprint", &c.fingerprint);
        }
        t.str("version", tls::version_name(ver.unwrap_or(0)));
        if let Some(c) = &log.cert {
            if !c.not_before.is_empty() {
                t.str("notbefore", &c.not_before);
            }
            if !c.not_after.is_empty() {
                t.str("notafter", &c.not_after);
            }
        }
        if let Some(ch) = &log.client {
            t.obj("ja3", |j| {
                j.str("hash", &ch.ja3_hash).str("string", &ch.ja3);
            });
            t.str("ja4", &ch.ja4);
            if !ch.alpn.is_empty() {
                t.arr("client_alpns", |a| ch.alpn.iter().for_each(|p| a.str(p)));
            }
            if ch.ech {
                t.bool("ech", true);
            }
        }
        if let Some(sh) = &log.server {
            t.obj("ja3s", |j| {
                j.str("hash", &sh.ja3s_hash).str("string", &sh.ja3s);
            });
            if let Some(a) = &sh.alpn {
                t.arr("server_alpns", |arr| arr.str(a));
            }
            let mut b = [0u8; 16];
            t.raw(
                "cipher_suite",
                fmt_small(&mut b, format_args!("\"0x{:04x}\"", sh.cipher)),
            );
        }
    });
    name_score_obj(&mut e, score);
    e.close();
    end_line(cx, 2);
}

fn http_data(cx: &mut Cx<'_>, flow: &mut Flow, dir: usize, data: &[u8]) {
    let mut rest = data;
    loop {
        let Parser::Http(h) = &mut flow.parser else {
            return;
        };
        if h.streams[dir].is_tunnel() {
            // After CONNECT: the tunnel usually carries TLS.
            if dir == 0 {
                if let Some(true) = tls::probe(rest) {
                    flow.app = AppProto::Tls;
                    flow.parser = Parser::Tls(Pooled::take());
                    tls_data(cx, flow, dir, rest);
                }
            }
            return;
        }
        let raw = cx.sigs.wants(Hook::HttpRequest) || cx.sigs.wants(Hook::HttpResponse);
        h.streams[dir].keep_raw(raw);
        // The events of a few messages at a time, in a fixed array: pipelined requests in one
        // segment are parsed in turns of at most `evs.len()` events, each turn's handled
        // before the next is parsed.
        let mut evs: [Option<HttpEvent>; 4] = [None, None, None, None];
        let mut n = 0;
        let used = h.streams[dir].feed_upto(rest, dir == 0, evs.len(), &mut |e| {
            // feed_upto never raises more than asked (tested in app::http); a surplus would be
            // a bug, not input.
            if let Some(slot) = evs.get_mut(n) {
                *slot = Some(e);
            }
            n += 1;
        });
        debug_assert!(n <= evs.len(), "{n} events in one turn");
        rest = &rest[used..];
        for ev in evs.into_iter().flatten() {
            http_event_in(cx, flow, dir, ev);
        }
        if rest.is_empty() || used == 0 {
            return;
        }
    }
}

fn http_event_in(cx: &mut Cx<'_>, flow: &mut Flow, dir: usize, ev: HttpEvent) {
    let m = flow.meta;
    match ev {
        HttpEvent::Request(req) => {
            let Parser::Http(h) = &mut flow.parser else {
                return;
            };
            if req.method == "HEAD" {
                h.streams[1].expect_head_response();
            }
            // Intel first, on the request as parsed; it is queued for its response afterwards.
            if let Some(host) = req.host.as_deref() {
                check_domain(cx, flow, dir, "http.hostname", host, Verdict::Reset);
                let intel = cx.intel;
                if let Some(hit) = intel.match_url(host, &req.uri) {
                    let mut v = crate::pool::Text::with_capacity(host.len() + req.uri.len());
                    v.push_str(host);
                    v.push_str(&req.uri);
                    decide(cx, flow, dir, hit, "http.url", &v, Verdict::Reset);
                }
            }
            let Parser::Http(h) = &mut flow.parser else {
                return;
            };
            if h.pending.len() >= MAX_PENDING_TX {
                let old = h.pending.pop_front();
                let tx = h.tx;
                h.tx += 1;
                if let Some(old) = old {
                    http_event(cx, &m, &old, None, tx);
                }
                app_anomaly(cx, &m, dir, "http", "http.too_many_transactions");
            }
            if req.has_body {
                let Parser::Http(h) = &mut flow.parser else {
                    return;
                };
                h.req_body_open = true;
                h.body[0].clear();
            } else {
                detect::http_request(cx, flow, &req, &[]);
            }
            let Parser::Http(h) = &mut flow.parser else {
                return;
            };
            h.pending.push_back(req);
        }
        HttpEvent::Body(d) => {
            let Parser::Http(h) = &mut flow.parser else {
                return;
            };
            let h = &mut **h;
            if dir == 1 {
                if h.body[1].capacity() == 0 {
                    // Room for the whole body at once, not a doubling series of copies up to
                    // the limit: the declared length, else 16 KiB (charged to the flow as
                    // held); a pooled buffer when one is big enough.
                    let hint = h
                        .answered
                        .as_ref()
                        .and_then(|(_, r)| r.content_length)
                        .map_or(16 << 10, |n| n.min(detect::BODY_LIMIT as u64) as usize);
                    h.body[1] = crate::pool::bytes(hint);
                }
                match h.inflate.as_mut() {
                    Some(z) => z.feed(d, &mut h.body[1]),
                    None => detect::keep_body(&mut h.body[1], d),
                }
            } else if h.req_body_open {
                if h.body[0].capacity() == 0 {
                    h.body[0] = crate::pool::bytes(0);
                }
                detect::keep_body(&mut h.body[0], d);
            }
        }
        HttpEvent::BodyEnd(_) if dir == 0 => {
            let Parser::Http(h) = &mut flow.parser else {
                return;
            };
            if !std::mem::take(&mut h.req_body_open) {
                return;
            }
            let body = Lent::take(&mut h.body[0]);
            if let Some(req) = h.pending.pop_back() {
                detect::http_request(cx, flow, &req, &body);
                if let Parser::Http(h) = &mut flow.parser {
                    h.pending.push_back(req);
                }
            }
        }
        HttpEvent::Response(resp) => {
            let Parser::Http(h) = &mut flow.parser else {
                return;
            };
            if (100..200).contains(&resp.status) && resp.status != 101 {
                return;
            }
            let Some(req) = h.pending.pop_front() else {
                app_anomaly(cx, &m, dir, "http", "http.unsolicited_response");
                return;
            };
            if req.method == "CONNECT" && (200..300).contains(&resp.status) {
                h.streams[0].set_tunnel();
                h.streams[1].set_tunnel();
            }
            let tunnel = h.streams[0].is_tunnel() || h.streams[1].is_tunnel();
            if tunnel {
                // CONNECT or an upgrade: nothing more is HTTP, log the transaction now.
                let tx = h.tx;
                h.tx += 1;
                http_event(cx, &m, &req, Some((&resp, 0)), tx);
                detect::http_response(cx, flow, &req, &resp, &[]);
                return;
            }
            // Logged when its body ends (Suricata's `length` is the body bytes seen).
            let old_body = Lent::take(&mut h.body[1]);
            h.inflate = if cx.sigs.wants(Hook::HttpResponse) {
                detect::Inflate::for_head(&resp.head)
            } else {
                None
            };
            if let Some((r, s)) = h.answered.replace((req, resp)) {
                let tx = h.tx;
                h.tx += 1;
                let n = s.content_length.unwrap_or(0);
                http_event(cx, &m, &r, Some((&*s, n)), tx);
                detect::http_response(cx, flow, &r, &s, &old_body);
            }
        }
        HttpEvent::BodyEnd(n) => {
            let Parser::Http(h) = &mut flow.parser else {
                return;
            };
            if let Some((r, s)) = h.answered.take() {
                let tx = h.tx;
                h.tx += 1;
                let body = Lent::take(&mut h.body[1]);
                http_event(cx, &m, &r, Some((&*s, n)), tx);
                detect::http_response(cx, flow, &r, &s, &body);
            }
        }
        HttpEvent::Error(name) => app_anomaly(cx, &m, dir, "http", name),
    }
}

fn http_event(
    cx: &mut Cx<'_>,
    m: &Meta,
    req: &Request,
    resp: Option<(&crate::app::http::Response, u64)>,
    tx: u64,
) {
    let host = req.host.as_deref().unwrap_or("");
    let score = names::score(cx, host);
    let mut e = header(cx.out, cx.now, cx.pkt, m, 0, "http");
    e.u64("tx_id", tx);
    e.obj("http", |h| {
        if let Some(host) = &req.host {
            h.str("hostname", host);
        }
        h.str("url", &req.uri);
        if let Some(ua) = &req.user_agent {
            h.str("http_user_agent", ua);
        }
        if let Some((r, _)) = resp {
            if let Some(ct) = &r.content_type {
                h.str("http_content_type", ct);
            }
        }
        h.str("http_method", &req.method);
        h.str("protocol", &req.protocol);
        if let Some((r, _)) = resp {
            h.u64("status", r.status as u64);
        }
        h.u64("length", resp.map_or(0, |(_, n)| n));
    });
    name_score_obj(&mut e, score);
    e.close();
    end_line(cx, 3);
}

fn dns_tcp_data(cx: &mut Cx<'_>, flow: &mut Flow, dir: usize, mut data: &[u8]) {
    // Length-prefixed messages; parse in place when whole, else gather (capped at 64 KiB + 2).
    loop {
        let Parser::DnsTcp(d) = &mut flow.parser else {
            return;
        };
        let buf = &mut d[dir].buf;
        if buf.is_empty() {
            if data.len() >= 2 {
                let len = u16::from_be_bytes([data[0], data[1]]) as usize;
                if data.len() >= 2 + len {
                    let msg = &data[2..2 + len];
                    data = &data[2 + len..];
                    dns_message(cx, flow, dir, msg);
                    if data.is_empty() {
                        return;
                    }
                    continue;
                }
            }
            if data.is_empty() {
                return;
            }
            crate::pool::more(buf, data);
            return;
        }
        let need = if buf.len() >= 2 {
            2 + u16::from_be_bytes([buf[0], buf[1]]) as usize
        } else {
            2
        };
        let take = need.saturating_sub(buf.len()).min(data.len());
        crate::pool::more(buf, &data[..take]);
        data = &data[take..];
        if buf.len() < 2 {
            return;
        }
        let need = 2 + u16::from_be_bytes([buf[0], buf[1]]) as usize;
        if buf.len() < need {
            if data.is_empty() {
                return;
            }
            continue;
        }
        let msg = std::mem::take(buf);
        dns_message(cx, flow, dir, &msg[2..need]);
        if let Parser::DnsTcp(d) = &mut flow.parser {
            let mut msg = msg;
            msg.clear();
            d[dir].buf = msg;
        }
        if data.is_empty() {
            return;
        }
    }
}

/// The keyed hash of the detectors' tables ([`Config::hash_seed`]).
pub(crate) type Keys = foldhash::fast::SeedableRandomState;

/// Keys for table `part` of an engine: random, or derived from `seed` (each part its own).
fn keys(seed: Option<u64>, part: u64) -> Keys {
    match seed {
        None => Keys::random(),
        Some(s) => Keys::with_seed(
            s.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ part.wrapping_mul(0xc2b2_ae3d_27d4_eb4f),
            foldhash::SharedSeed::global_fixed(),
        ),
    }
}

/// Whether either end of the flow uses a port parsed as DNS (0 marks an unused slot).
fn is_dns_flow(m: &Meta, dns_ports: &[u16; 4]) -> bool {
    [m.cli.1, m.srv.1]
        .iter()
        .any(|&p| p != 0 && dns_ports.contains(&p))
}

fn udp_packet(cx: &mut Cx<'_>, flow: &mut Flow, dir: usize, payload: &[u8]) {
    let dns = is_dns_flow(&flow.meta, &cx.dns_ports);
    if dns && !payload.is_empty() {
        if flow.app == AppProto::Unknown {
            flow.app = AppProto::Dns;
        }
        dns_message(cx, flow, dir, payload);
        return;
    }
    // QUIC: the client's first datagram is a long-header Initial of a known version, or a
    // gQUIC packet carrying its version (Q0xx).
    let undecided = flow.verdict == Verdict::Accept;
    if cx.quic == QuicPolicy::Off {
        return;
    }
    if flow.app == AppProto::Unknown && dir == 0 && gquic::packet_version(payload).is_some() {
        flow.app = AppProto::Quic;
        flow.parser = Parser::Gquic(0);
    }
    if flow.app == AppProto::Unknown && dir == 0 {
        if let Some(v) = crate::app::quic::long_header_version(payload) {
            if matches!(v, 1 | 0x6b33_43cf | 0xff00_001d..=0xff00_0020) {
                flow.app = AppProto::Quic;
                flow.parser = Parser::Quic(Pooled::take());
            } else if cx.quic != QuicPolicy::Allow && flow.meta.srv.1 == 443 && undecided {
                // A version Palisade cannot read: its name stays unknown.
                let mut buf = [0u8; 16];
                let name = crate::app::quic::version_name(v, &mut buf);
                policy_alert(
                    cx,
                    flow,
                    dir,
                    quic_policy_name(cx.quic),
                    "quic.version",
                    name,
                    Verdict::Drop,
                    true,
                );
                return;
            }
        }
    }
    if flow.app == AppProto::Quic && cx.quic == QuicPolicy::Block && undecided {
        let mut buf = [0u8; 16];
        let name = match gquic::packet_version(payload) {
            Some(v) => std::str::from_utf8(fmt_small(
                &mut buf,
                format_args!("{}", String::from_utf8_lossy(&v)),
            ))
            .unwrap_or_default(),
            None => crate::app::quic::version_name(
                crate::app::quic::long_header_version(payload).unwrap_or(0),
                &mut buf,
            ),
        };
        policy_alert(
            cx,
            flow,
            dir,
            "quic=block",
            "quic.version",
            name,
            Verdict::Drop,
            true,
        );
        return;
    }
    if let Parser::Gquic(seen) = &mut flow.parser {
        // Each packet that carries a version is a transaction for the rules (quic.version), as
        // in Suricata; the client's CHLOs (at most MAX_CHLOS a flow) are read and logged.
        let Some(version) = gquic::packet_version(payload) else {
            return;
        };
        let m = flow.meta;
        let chlo = if dir == 0 && *seen < MAX_CHLOS {
            gquic::parse_client(payload)
        } else {
            Ok(None)
        };
        match chlo {
            Ok(Some(c)) => {
                *seen += 1;
                gquic_event(cx, &m, dir, &c);
                if cx.sigs.wants(Hook::Quic) {
                    let bufs = detect::HelloBufs {
                        ch: None,
                        quic_version: Some(c.version),
                        gquic: Some(&c),
                    };
                    detect::inspect(cx, flow, dir, Hook::Quic, &bufs, 0);
                }
                quic_name(cx, flow, dir, c.sni.as_deref());
            }
            Ok(None) => {
                if cx.sigs.wants(Hook::Quic) {
                    let bufs = detect::HelloBufs {
                        ch: None,
                        quic_version: Some(version),
                        gquic: None,
                    };
                    detect::inspect(cx, flow, dir, Hook::Quic, &bufs, 0);
                }
            }
            Err(e) => app_anomaly(cx, &m, dir, "quic", e.event()),
        }
        return;
    }
    let Parser::Quic(q) = &mut flow.parser else {
        return;
    };
    if q.is_done() {
        return;
    }
    let m = flow.meta;
    match q.datagram(payload, dir == 0) {
        Ok(Some(crate::app::quic::Hello::Client(ch))) => {
            let version = q.version;
            quic_event(cx, &m, dir, version, &ch.extensions, Some(&ch));
            if cx.sigs.wants(Hook::Quic) {
                let bufs = detect::HelloBufs {
                    ch: Some(&ch),
                    quic_version: Some(version.to_be_bytes()),
                    gquic: None,
                };
                detect::inspect(cx, flow, dir, Hook::Quic, &bufs, ch.version);
            }
            if ch.ech && cx.ech != EchPolicy::Allow {
                let outer = ch.sni.as_deref().unwrap_or_default();
                let name = if cx.ech == EchPolicy::Block {
                    "ech=block"
                } else {
                    "ech=audit"
                };
                policy_alert(
                    cx,
                    flow,
                    dir,
                    name,
                    "quic.ech_outer_sni",
                    outer,
                    Verdict::Drop,
                    cx.ech == EchPolicy::Block,
                );
            }
            quic_name(cx, flow, dir, ch.sni.as_deref());
        }
        Ok(Some(crate::app::quic::Hello::Server(sh))) => {
            let version = q.version;
            quic_event(cx, &m, dir, version, &sh.extensions, None);
            if cx.sigs.wants(Hook::Quic) {
                let bufs = detect::HelloBufs {
                    ch: None,
                    quic_version: Some(version.to_be_bytes()),
                    gquic: None,
                };
                detect::inspect(cx, flow, dir, Hook::Quic, &bufs, 0);
            }
        }
        Ok(None) => {}
        Err(e) => {
            app_anomaly(cx, &m, dir, "quic", e.event());
            if dir == 0
                && cx.quic == QuicPolicy::DowngradeUnknown
                && flow.verdict == Verdict::Accept
            {
                policy_alert(
                    cx,
                    flow,
                    dir,
                    "quic=downgrade-unknown",
                    "quic.error",
                    e.event(),
                    Verdict::Drop,
                    true,
                );
            }
        }
    }
}

fn quic_policy_name(p: QuicPolicy) -> &'static str {
    match p {
        QuicPolicy::Allow => "quic=allow",
        QuicPolicy::DowngradeUnknown => "quic=downgrade-unknown",
        QuicPolicy::Block => "quic=block",
        QuicPolicy::Off => "quic=off",
    }
}

/// A `quic` event for a hello: the client's (with SNI, JA3, JA4) or the server's.
fn quic_event(
    cx: &mut Cx<'_>,
    m: &Meta,
    dir: usize,
    version: u32,
    extensions: &[u16],
    ch: Option<&ClientHello>,
) {
    let sni = ch.and_then(|c| c.sni.as_deref()).unwrap_or("");
    let score = names::score(cx, sni);
    let mut e = header(cx.out, cx.now, cx.pkt, m, dir, "quic");
    e.obj("quic", |q| {
        let mut buf = [0u8; 16];
        q.str("version", crate::app::quic::version_name(version, &mut buf));
        if let Some(ch) = ch {
            if let Some(sni) = &ch.sni {
                q.str("sni", sni);
            }
            q.obj("ja3", |j| {
                j.str("hash", &ch.ja3_hash).str("string", &ch.ja3);
            });
            q.str("ja4", &ch.ja4);
        }
        q.arr("extensions", |a| {
            for &t in extensions {
                a.obj(|x| {
                    if let Some(n) = tls::extension_name(t) {
                        x.str("name", n);
                    }
                    x.u64("type", t as u64);
                    match (t, ch) {
                        (0, Some(ch)) => {
                            if let Some(sni) = &ch.sni {
                                x.arr("values", |v| v.str(sni));
                            }
                        }
                        (16, Some(ch)) if !ch.alpn.is_empty() => {
                            x.arr("values", |v| ch.alpn.iter().for_each(|p| v.str(p)));
                        }
                        _ => {}
                    }
                });
            }
        });
    });
    name_score_obj(&mut e, score);
    e.close();
    end_line(cx, 7);
}

/// The name of a QUIC client hello (IETF or gQUIC): checked against intel like a TLS SNI, then
/// `--quic downgrade-unknown`: QUIC whose name cannot be read, or was not yet seen allowed over
/// TLS on TCP, is dropped (once per flow; not when the name's own check already alerted), so
/// the client falls back to TCP, where the connection is inspected and the name learnt.
fn quic_name(cx: &mut Cx<'_>, flow: &mut Flow, dir: usize, sni: Option<&str>) {
    if let Some(sni) = sni {
        check_domain(cx, flow, dir, "quic.sni", sni, Verdict::Drop);
    }
    if cx.quic != QuicPolicy::DowngradeUnknown || flow.verdict != Verdict::Accept {
        return;
    }
    if let Some(sni) = sni {
        if flow.alerted || cx.known_good.contains(sni, cx.now) {
            return;
        }
        cx.stats.quic_downgraded += 1;
    }
    policy_alert(
        cx,
        flow,
        dir,
        "quic=downgrade-unknown",
        "quic.sni",
        sni.unwrap_or(""),
        Verdict::Drop,
        true,
    );
}

/// gQUIC CHLOs read per flow (a client sends one, or two after a REJ).
const MAX_CHLOS: u8 = 8;

/// A `quic` event for a gQUIC CHLO, as Suricata writes it: version, SNI, user agent, CYU.
fn gquic_event(cx: &mut Cx<'_>, m: &Meta, dir: usize, c: &gquic::Chlo) {
    let sni = c.sni.as_deref().unwrap_or("");
    let score = names::score(cx, sni);
    let mut e = header(cx.out, cx.now, cx.pkt, m, dir, "quic");
    e.obj("quic", |q| {
        q.bytes("version", &c.version);
        if let Some(sni) = &c.sni {
            q.str("sni", sni);
        }
        if let Some(ua) = &c.ua {
            q.str("ua", ua);
        }
        q.arr("cyu", |a| {
            a.obj(|x| {
                x.str("hash", &c.cyu_hash).str("string", &c.cyu);
            });
        });
    });
    name_score_obj(&mut e, score);
    e.close();
    end_line(cx, 7);
}

fn dns_message(cx: &mut Cx<'_>, flow: &mut Flow, dir: usize, msg: &[u8]) {
    let m = flow.meta;
    let mut d = std::mem::take(cx.dns);
    if let Err(e) = d.parse(msg) {
        *cx.dns = d;
        app_anomaly(cx, &m, dir, "dns", e.event());
        return;
    }
    // As Suricata over UDP, every message is its own transaction.
    let tx = flow.dns_tx;
    flow.dns_tx += 1;
    if d.name_truncated {
        app_anomaly(cx, &m, dir, "dns", "dns.name_too_long");
    }
    if d.incomplete {
        app_anomaly(cx, &m, dir, "dns", "dns.malformed_data");
    }
    dns_event(
        cx,
        &m,
        dir,
        &d,
        if d.is_response() {
            tx.saturating_sub(1)
        } else {
            tx
        },
    );
    // Intel: query names, and in responses the names answers point at (CNAME cloaking).
    for (i, q) in d.queries.iter().enumerate() {
        let name = d.text(&q.name);
        if !d.is_response() {
            let listed = check_domain(cx, flow, dir, "dns.query", name, Verdict::Sinkhole);
            // A query's first name counts toward a DNS tunnel, unless a list holds it.
            if i == 0 && !listed {
                dns_tunnel(cx, flow, dir, name, q.rtype);
            }
        }
        // Suricata's dns.query inspects requests.
        if !d.is_response() && cx.sigs.wants(Hook::Dns) {
            let bufs = detect::DnsBufs {
                query: name.as_bytes(),
                payload: msg,
            };
            detect::inspect(cx, flow, dir, Hook::Dns, &bufs, 0);
        }
    }
    if d.is_response() {
        if d.rcode() == dns::NXDOMAIN {
            if let Some(q) = d.queries.first() {
                names::nxdomain(cx, flow, dir, d.text(&q.name));
            }
        }
        for a in &d.answers {
            if let RData::Text(t) = &a.rdata {
                if matches!(a.rtype, 5 | 39 | 64 | 65) {
                    check_domain(cx, flow, dir, "dns.answer", d.text(t), Verdict::Drop);
                }
            }
        }
    }
    *cx.dns = d;
}

fn dns_event(cx: &mut Cx<'_>, m: &Meta, dir: usize, d: &DnsMsg, tx: u64) {
    let qname = d.queries.first().map(|q| d.text(&q.name)).unwrap_or("");
    let score = names::score(cx, qname);
    let mut e = header(cx.out, cx.now, cx.pkt, m, dir, "dns");
    e.obj("dns", |o| {
        o.u64("version", 3);
        o.str(
            "type",
            if d.is_response() {
                "response"
            } else {
                "request"
            },
        );
        o.u64("tx_id", tx);
        o.u64("id", d.id as u64);
        let mut b = [0u8; 16];
        o.raw(
            "flags",
            fmt_small(&mut b, format_args!("\"{:x}\"", d.flags)),
        );
        let f = d.flags;
        for (bit, name) in [
            (0x8000, "qr"),
            (0x0400, "aa"),
            (0x0200, "tc"),
            (0x0100, "rd"),
            (0x0080, "ra"),
            (0x0040, "z"),
        ] {
            if f & bit != 0 {
                o.bool(name, true);
            }
        }
        o.u64("opcode", d.opcode() as u64);
        match dns::rcode_name(d.rcode()) {
            Some(r) => o.str("rcode", r),
            None => o.u64("rcode", d.rcode() as u64),
        };
        let rr_type = |o: &mut Obj<'_>, t: u16| match dns::rtype_name(t) {
            Some(n) => {
                o.str("rrtype", n);
            }
            None => {
                let mut b = [0u8; 16];
                o.raw("rrtype", fmt_small(&mut b, format_args!("\"{t}\"")));
            }
        };
        if !d.queries.is_empty() {
            o.arr("queries", |a| {
                for q in &d.queries {
                    a.obj(|qo| {
                        qo.str("rrname", d.text(&q.name));
                        if q.truncated {
                            qo.bool("rrname_truncated", true);
                        }
                        rr_type(qo, q.rtype);
                    });
                }
            });
        }
        let rrs = |a: &mut crate::eve::Arr<'_>, list: &[dns::Rr]| {
            for r in list {
                a.obj(|ro| {
                    ro.str("rrname", d.text(&r.name));
                    if r.truncated {
                        ro.bool("rrname_truncated", true);
                    }
                    rr_type(ro, r.rtype);
                    ro.u64("ttl", r.ttl as u64);
                    if r.ech {
                        ro.bool("ech_config", true);
                    }
                    match &r.rdata {
                        RData::Addr(ip) => {
                            ro.ip("rdata", *ip);
                        }
                        RData::Text(t) => {
                            ro.str("rdata", d.text(t));
                        }
                        RData::None => {}
                    }
                });
            }
        };
        if !d.answers.is_empty() {
            o.arr("answers", |a| rrs(a, &d.answers));
            // Suricata's `grouped`: answer data by type.
            o.obj("grouped", |g| {
                let mut seen: [u16; 8] = [0; 8];
                let mut ns = 0;
                for r in &d.answers {
                    if matches!(r.rdata, RData::None) || seen[..ns].contains(&r.rtype) || ns == 8 {
                        continue;
                    }
                    seen[ns] = r.rtype;
                    ns += 1;
                    let Some(tn) = dns::rtype_name(r.rtype) else {
                        continue;
                    };
                    g.arr(tn, |a| {
                        for r2 in d.answers.iter().filter(|x| x.rtype == r.rtype) {
                            match &r2.rdata {
                                RData::Addr(ip) => a.ip(*ip),
                                RData::Text(t) => a.str(d.text(t)),
                                RData::None => {}
                            }
                        }
                    });
                }
            });
        }
        if !d.authorities.is_empty() {
            o.arr("authorities", |a| rrs(a, &d.authorities));
        }
    });
    name_score_obj(&mut e, score);
    e.close();
    end_line(cx, 1);
}

fn flow_event(cx: &mut Cx<'_>, f: &Flow, last_ns: i64, reason: EndReason) {
    let saved = cx.now;
    cx.now = last_ns;
    let m = f.meta;
    let mode = cx.mode;
    let mut e = header(cx.out, cx.now, cx.pkt, &m, 0, "flow");
    if f.app != AppProto::Unknown && f.app != AppProto::Failed {
        e.str("app_proto", f.app.as_str());
    } else if f.app == AppProto::Failed {
        e.str("app_proto", "failed");
    }
    e.obj("flow", |o| {
        o.u64("pkts_toserver", f.pkts[0])
            .u64("pkts_toclient", f.pkts[1]);
        o.u64("bytes_toserver", f.bytes[0])
            .u64("bytes_toclient", f.bytes[1]);
        o.ts("start", m.start_ns).ts("end", last_ns);
        o.u64(
            "age",
            (last_ns.saturating_sub(m.start_ns).max(0) / 1_000_000_000) as u64,
        );
        let state = if m.proto == 6 {
            match f.tcp_state {
                TcpState::Closed | TcpState::TimeWait | TcpState::LastAck => "closed",
                TcpState::Established
                | TcpState::FinWait1
                | TcpState::FinWait2
                | TcpState::CloseWait => "established",
                _ => "new",
            }
        } else if f.pkts[0] > 0 && f.pkts[1] > 0 {
            "established"
        } else {
            "new"
        };
        o.str("state", state);
        o.str("reason", reason.as_str());
        o.bool("alerted", f.alerted);
        if f.verdict != Verdict::Accept {
            o.str("action", if mode == Mode::Block { "drop" } else { "pass" });
        }
    });
    if m.proto == 6 {
        e.obj("tcp", |t| {
            let all = f.flags[0] | f.flags[1];
            let mut b = [0u8; 16];
            t.raw(
                "tcp_flags",
                fmt_small(&mut b, format_args!("\"{all:02x}\"")),
            );
            let mut b = [0u8; 16];
            t.raw(
                "tcp_flags_ts",
                fmt_small(&mut b, format_args!("\"{:02x}\"", f.flags[0])),
            );
            let mut b = [0u8; 16];
            t.raw(
                "tcp_flags_tc",
                fmt_small(&mut b, format_args!("\"{:02x}\"", f.flags[1])),
            );
            for (bit, name) in [
                (0x01, "fin"),
                (0x02, "syn"),
                (0x04, "rst"),
                (0x08, "psh"),
                (0x10, "ack"),
                (0x20, "urg"),
                (0x40, "ecn"),
                (0x80, "cwr"),
            ] {
                if all & bit != 0 {
                    t.bool(name, true);
                }
            }
            t.str("state", f.tcp_state.as_str());
        });
    }
    let name = cx.names.is_some() && f.name_score >= 0.0;
    let fm = cx.flow_model.and(f.flow_score);
    if name || fm.is_some() {
        e.obj("palisade", |p| {
            let mut b = [0u8; 8];
            if name {
                p.raw("name_score", names::fixed6(&mut b, f.name_score));
            }
            if let Some((score, at)) = fm {
                p.raw("flow_score", names::fixed6(&mut b, score));
                p.u64("flow_score_at", at as u64);
            }
        });
    }
    e.close();
    end_line(cx, 0);
    cx.now = saved;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_timestamp_option() {
        let hdr = |opts: &[u8]| {
            let mut h = vec![0u8; 20];
            h.extend_from_slice(opts);
            h
        };
        // MSS, SACK permitted, NOP, NOP, timestamps.
        let h = hdr(&[2, 4, 5, 180, 4, 2, 1, 1, 8, 10, 0, 0, 1, 0, 0, 0, 0, 7]);
        assert_eq!(tcp_timestamps(&h), Some((256, 7)));
        assert_eq!(tcp_timestamps(&hdr(&[])), None);
        assert_eq!(
            tcp_timestamps(&hdr(&[0, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2])),
            None,
            "after EOL"
        );
        assert_eq!(tcp_timestamps(&hdr(&[8, 10, 0, 0])), None, "cut short");
        assert_eq!(
            tcp_timestamps(&hdr(&[3, 0, 8, 10])),
            None,
            "zero length ends the walk"
        );
        assert_eq!(
            tcp_timestamps(&hdr(&[8, 9, 0, 0, 0, 1, 0, 0, 0])),
            None,
            "wrong length"
        );
        assert_eq!(tcp_timestamps(&[0u8; 10]), None, "shorter than a header");
    }

    #[test]
    fn detection_of_unparsed_protocols() {
        let d = |h: &[u8], dir| probe_detected(h, dir);
        assert_eq!(d(b"SSH-2.0-", 1), Some(Some(AppProto::Ssh)));
        assert_eq!(d(b"SSH-2.0-", 0), Some(Some(AppProto::Ssh)));
        assert_eq!(d(b"SS", 1), Some(None), "a prefix waits");
        assert_eq!(d(b"\0\0\0\x2f\xfeSMB", 0), Some(Some(AppProto::Smb)));
        assert_eq!(d(b"\0\0\0\x2f\xffSMB", 1), Some(Some(AppProto::Smb)));
        assert_eq!(d(b"\x01\0\0\x2f\xffSMB", 0), None, "not a session message");
        assert_eq!(d(b"ehlo x\r\n", 0), Some(Some(AppProto::Smtp)));
        assert_eq!(d(b"HELO x\r\n", 0), Some(Some(AppProto::Smtp)));
        assert_eq!(d(b"USER bob", 0), Some(Some(AppProto::Ftp)));
        assert_eq!(d(b"AUTH TLS", 0), Some(Some(AppProto::Ftp)));
        // SMTP's AUTH is not FTP's; HTTP and TLS are left to their own probes.
        assert_eq!(d(b"AUTH LOG", 0), None);
        assert_eq!(d(b"AUTH", 0), Some(None));
        assert_eq!(d(b"PO", 0), Some(None));
        assert_eq!(d(b"POST / H", 0), None);
        assert_eq!(d(b"\x16\x03\x01\x02\x00\x01\x00\x01", 0), None);
        // Servers' banners wait for the client; a client command from the server side is not
        // taken as one.
        assert_eq!(d(b"220 mx E", 1), None);
        assert_eq!(d(b"EHLO x\r\n", 1), None);
    }
}
