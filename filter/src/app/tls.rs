//! TLS handshake: ClientHello (SNI, ALPN, supported versions, JA3, JA4, ECH) and ServerHello
//! (version, cipher, JA3S), gathered across records and TCP segments.
//!
//! [`TlsStream`] is fed the bytes of one direction in order. Complete records are parsed in place;
//! only a record or handshake message that spans segments is copied, into a buffer capped at
//! [`MAX_HANDSHAKE`] bytes. Once the hello of that direction is parsed the stream stops looking.

use md5::{Digest as _, Md5};
use sha2::Sha256;

use crate::eve::HEX;
use crate::pool::{give_bytes, keep, keep_str, more, Lent, Packed, Pooled, Recycle, Spares};

/// Largest handshake message gathered (a ClientHello with post-quantum key shares is ~2 KB).
pub const MAX_HANDSHAKE: usize = 64 << 10;

/// Fields of a ClientHello.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ClientHello {
    /// legacy_version.
    pub version: u16,
    /// Server name (first host_name entry), as sent.
    pub sni: Option<String>,
    /// ALPN protocol names, in order.
    pub alpn: Vec<String>,
    /// supported_versions, GREASE removed, in order.
    pub versions: Vec<u16>,
    /// The encrypted_client_hello extension is present.
    pub ech: bool,
    /// JA3 string.
    pub ja3: String,
    /// JA3 MD5, lowercase hex.
    pub ja3_hash: String,
    /// JA4 fingerprint (`t13d1516h2_8daaf6152771_e5627efa2ab1`).
    pub ja4: String,
    /// Extension types in the order sent (GREASE included).
    pub extensions: Vec<u16>,
    /// Buffers of the parse, kept for the next hello parsed into this one.
    scratch: Scratch,
}

/// Lists a hello parse gathers on its way and strings kept for reuse: capacity carried from one
/// hello to the next (see [`crate::pool`]), not part of a hello's value (two scratches are
/// always equal).
#[derive(Debug, Default, Clone)]
struct Scratch {
    ciphers: Vec<u16>,
    groups: Vec<u16>,
    points: Vec<u16>,
    sigalgs: Vec<u16>,
    sorted: Vec<u16>,
    strings: Spares,
}

impl PartialEq for Scratch {
    fn eq(&self, _: &Scratch) -> bool {
        true
    }
}

impl Eq for Scratch {}

impl Scratch {
    fn recycle(&mut self) {
        for v in [
            &mut self.ciphers,
            &mut self.groups,
            &mut self.points,
            &mut self.sigalgs,
            &mut self.sorted,
        ] {
            keep(v);
        }
    }

    fn held(&self) -> usize {
        (self.ciphers.capacity()
            + self.groups.capacity()
            + self.points.capacity()
            + self.sigalgs.capacity()
            + self.sorted.capacity())
            * 2
            + self.strings.held()
    }
}

impl Recycle for ClientHello {
    fn recycle(&mut self) {
        self.version = 0;
        if let Some(s) = self.sni.take() {
            self.scratch.strings.put(s);
        }
        for a in self.alpn.drain(..) {
            self.scratch.strings.put(a);
        }
        keep(&mut self.alpn);
        keep(&mut self.versions);
        self.ech = false;
        keep_str(&mut self.ja3);
        keep_str(&mut self.ja3_hash);
        keep_str(&mut self.ja4);
        keep(&mut self.extensions);
        self.scratch.recycle();
    }
    fn bytes(&self) -> usize {
        self.held()
    }
    crate::thread_pool!(ClientHello);
}

impl ClientHello {
    /// Bytes held by its buffers (a hostile ClientHello makes a long JA3 string).
    pub fn held(&self) -> usize {
        std::mem::size_of::<ClientHello>()
            + self.ja3.capacity()
            + self.ja3_hash.capacity()
            + self.ja4.capacity()
            + self.sni.as_ref().map_or(0, String::capacity)
            + self.alpn.iter().map(|a| a.capacity()).sum::<usize>()
            + self.alpn.capacity() * 24
            + self.versions.capacity() * 2
            + self.extensions.capacity() * 2
            + self.scratch.held()
    }
}

/// Fields of a ServerHello.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ServerHello {
    /// The negotiated version (supported_versions if present, else legacy_version).
    pub version: u16,
    /// The chosen cipher suite.
    pub cipher: u16,
    /// The chosen ALPN protocol, if any.
    pub alpn: Option<String>,
    /// JA3S string.
    pub ja3s: String,
    /// JA3S MD5.
    pub ja3s_hash: String,
    /// Extension types in the order sent.
    pub extensions: Vec<u16>,
    /// Strings kept for the next hello parsed into this one.
    spares: Spares,
}

impl Recycle for ServerHello {
    fn recycle(&mut self) {
        self.version = 0;
        self.cipher = 0;
        if let Some(a) = self.alpn.take() {
            self.spares.put(a);
        }
        keep_str(&mut self.ja3s);
        keep_str(&mut self.ja3s_hash);
        keep(&mut self.extensions);
    }
    fn bytes(&self) -> usize {
        self.held()
    }
    crate::thread_pool!(ServerHello);
}

impl ServerHello {
    /// Bytes held by its buffers.
    pub fn held(&self) -> usize {
        std::mem::size_of::<ServerHello>()
            + self.ja3s.capacity()
            + self.ja3s_hash.capacity()
            + self.alpn.as_ref().map_or(0, String::capacity)
            + self.extensions.capacity() * 2
            + self.spares.held()
    }
}

/// Parse faults, as anomaly names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsError {
    /// A length field runs past its container.
    Malformed,
    /// A handshake message over [`MAX_HANDSHAKE`].
    TooLong,
}

impl TlsError {
    /// Suricata-style anomaly event name.
    pub fn event(self) -> &'static str {
        match self {
            TlsError::Malformed => "tls.invalid_handshake_message",
            TlsError::TooLong => "tls.handshake_too_long",
        }
    }
}

/// A bounded reader over a byte slice (after rustls' `Reader`).
struct Rd<'a> {
    b: &'a [u8],
}

impl<'a> Rd<'a> {
    fn u8(&mut self) -> Result<u8, TlsError> {
        let (&v, rest) = self.b.split_first().ok_or(TlsError::Malformed)?;
        self.b = rest;
        Ok(v)
    }
    fn u16(&mut self) -> Result<u16, TlsError> {
        let t = self.take(2)?;
        Ok(u16::from_be_bytes([t[0], t[1]]))
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], TlsError> {
        if self.b.len() < n {
            return Err(TlsError::Malformed);
        }
        let (a, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(a)
    }
    fn sub8(&mut self) -> Result<Rd<'a>, TlsError> {
        let n = self.u8()? as usize;
        Ok(Rd { b: self.take(n)? })
    }
    fn sub16(&mut self) -> Result<Rd<'a>, TlsError> {
        let n = self.u16()? as usize;
        Ok(Rd { b: self.take(n)? })
    }
    fn is_empty(&self) -> bool {
        self.b.is_empty()
    }
}

/// True for the GREASE values of RFC 8701 (0x0a0a, 0x1a1a, ... 0xfafa).
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

/// Appends a number in decimal (JA3's fields), without `fmt`.
fn push_dec(out: &mut String, v: u16) {
    let mut b = crate::eve::itoa_buf::Buf::default();
    out.extend(b.fmt(u64::from(v)).iter().map(|&c| char::from(c)));
}

/// Four lowercase hex digits (JA4's cipher and extension lists).
fn hex4(v: u16) -> [u8; 4] {
    [12, 8, 4, 0].map(|k| HEX[usize::from(v >> k & 15)])
}

fn join_dec(out: &mut String, vals: impl Iterator<Item = u16>) {
    for (i, v) in vals.enumerate() {
        if i > 0 {
            out.push('-');
        }
        push_dec(out, v);
    }
}

/// Appends bytes as lowercase hex (JA3 and CYU hashes, bundle digests).
pub(crate) fn hex_lower(bytes: &[u8], out: &mut String) {
    for &b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
}

/// JA4's hash of lists of values: each value as four hex digits, joined by `,`, the lists
/// joined by `_` (empty lists left out), the first 12 hex digits of the SHA-256. Hashed as it is
/// written, so no string is built.
fn sha12_lists(lists: &[&[u16]], out: &mut String) {
    let mut h = Sha256::new();
    let mut first_list = true;
    for l in lists.iter().filter(|l| !l.is_empty()) {
        if !first_list {
            h.update(b"_");
        }
        first_list = false;
        for (i, &v) in l.iter().enumerate() {
            if i > 0 {
                h.update(b",");
            }
            h.update(hex4(v));
        }
    }
    hex_lower(&h.finalize()[..6], out);
}

/// Parses a ClientHello body (after the 4-byte handshake header). `quic` selects the JA4 prefix.
pub fn parse_client_hello(body: &[u8], quic: bool) -> Result<ClientHello, TlsError> {
    let mut ch = ClientHello::default();
    parse_client_hello_into(body, quic, &mut ch)?;
    Ok(ch)
}

/// [`parse_client_hello`] into `ch` (emptied first), reusing its buffers: a recycled hello
/// (see [`crate::pool`]) parses without allocating. On an error `ch` holds a partial parse.
pub fn parse_client_hello_into(
    body: &[u8],
    quic: bool,
    ch: &mut ClientHello,
) -> Result<(), TlsError> {
    with_scratch(ch, |ch, sc| client_hello_fields(body, quic, ch, sc))
}

/// Empties `ch` and runs a parse with its scratch lent out beside it (the parse needs both
/// mutably).
fn with_scratch(
    ch: &mut ClientHello,
    parse: impl FnOnce(&mut ClientHello, &mut Scratch) -> Result<(), TlsError>,
) -> Result<(), TlsError> {
    ch.recycle();
    let mut sc = std::mem::take(&mut ch.scratch);
    let r = parse(ch, &mut sc);
    ch.scratch = sc;
    r
}

/// Writes `ch`'s JA4 from the lists the parse gathered.
fn set_ja4(ch: &mut ClientHello, sc: &mut Scratch, quic: bool) {
    let mut out = std::mem::take(&mut ch.ja4);
    let l = Lists {
        ciphers: &sc.ciphers,
        exts: &ch.extensions,
        sigalgs: &sc.sigalgs,
    };
    ja4(&mut out, ch, l, quic, &mut sc.sorted);
    ch.ja4 = out;
}

fn client_hello_fields(
    body: &[u8],
    quic: bool,
    ch: &mut ClientHello,
    sc: &mut Scratch,
) -> Result<(), TlsError> {
    let mut r = Rd { b: body };
    ch.version = r.u16()?;
    r.take(32)?; // random
    r.sub8()?; // session id
    let mut cs = r.sub16()?;
    // Room for every list at once (a no-op for a recycled hello's buffers): one allocation
    // each for a new hello instead of a doubling series.
    sc.ciphers.reserve(cs.b.len() / 2);
    while !cs.is_empty() {
        sc.ciphers.push(cs.u16()?);
    }
    r.sub8()?; // compression methods
    if !r.is_empty() {
        let mut e = r.sub16()?;
        ch.extensions.reserve(e.b.len() / 4);
        while !e.is_empty() {
            let typ = e.u16()?;
            let mut d = e.sub16()?;
            ch.extensions.push(typ);
            match typ {
                0 => {
                    let mut list = d.sub16()?;
                    while !list.is_empty() {
                        let kind = list.u8()?;
                        let name = list.sub16()?;
                        if kind == 0 && ch.sni.is_none() {
                            ch.sni = Some(sc.strings.text(name.b));
                        }
                    }
                }
                10 => {
                    let mut l = d.sub16()?;
                    sc.groups.reserve(l.b.len() / 2);
                    while !l.is_empty() {
                        sc.groups.push(l.u16()?);
                    }
                }
                11 => {
                    let l = d.sub8()?;
                    sc.points.extend(l.b.iter().map(|&b| b as u16));
                }
                13 => {
                    let mut l = d.sub16()?;
                    sc.sigalgs.reserve(l.b.len() / 2);
                    while !l.is_empty() {
                        sc.sigalgs.push(l.u16()?);
                    }
                }
                16 => {
                    let mut l = d.sub16()?;
                    while !l.is_empty() {
                        let p = l.sub8()?;
                        ch.alpn.push(sc.strings.text(p.b));
                    }
                }
                43 => {
                    let mut l = d.sub8()?;
                    while !l.is_empty() {
                        let v = l.u16()?;
                        if !is_grease(v) {
                            ch.versions.push(v);
                        }
                    }
                }
                0xfe0d => ch.ech = true,
                _ => {}
            }
        }
    }
    // JA3: version, ciphers, extensions, groups, point formats; GREASE removed. At most six
    // characters a value.
    ch.ja3.reserve(
        6 * (1 + sc.ciphers.len() + ch.extensions.len() + sc.groups.len() + sc.points.len()),
    );
    ch.ja3_hash.reserve(32);
    ch.ja4.reserve(36);
    push_dec(&mut ch.ja3, ch.version);
    ch.ja3.push(',');
    join_dec(
        &mut ch.ja3,
        sc.ciphers.iter().copied().filter(|&v| !is_grease(v)),
    );
    ch.ja3.push(',');
    join_dec(
        &mut ch.ja3,
        ch.extensions.iter().copied().filter(|&v| !is_grease(v)),
    );
    ch.ja3.push(',');
    join_dec(
        &mut ch.ja3,
        sc.groups.iter().copied().filter(|&v| !is_grease(v)),
    );
    ch.ja3.push(',');
    join_dec(&mut ch.ja3, sc.points.iter().copied());
    hex_lower(&Md5::digest(ch.ja3.as_bytes()), &mut ch.ja3_hash);
    set_ja4(ch, sc, quic);
    Ok(())
}

/// JA4's two characters for the highest version offered (supported_versions, else legacy).
fn ja4_version(ch: &ClientHello) -> &'static str {
    match ch.versions.iter().copied().max().unwrap_or(ch.version) {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

/// The lists JA4 hashes, as sent.
#[derive(Clone, Copy)]
struct Lists<'a> {
    ciphers: &'a [u16],
    exts: &'a [u16],
    sigalgs: &'a [u16],
}

/// Writes JA4 to `out` (emptied first); `sorted` is a buffer for the sorted lists.
fn ja4(out: &mut String, ch: &ClientHello, l: Lists<'_>, quic: bool, sorted: &mut Vec<u16>) {
    out.clear();
    let ver = ja4_version(ch);
    let not_grease = |v: &&u16| !is_grease(**v);
    let n_ciphers = l.ciphers.iter().filter(not_grease).count();
    let n_exts = l.exts.iter().filter(not_grease).count();
    out.push(if quic { 'q' } else { 't' });
    out.push_str(ver);
    out.push(if ch.sni.is_some() { 'd' } else { 'i' });
    for n in [n_ciphers, n_exts] {
        let n = n.min(99) as u8;
        out.push(char::from(b'0' + n / 10));
        out.push(char::from(b'0' + n % 10));
    }
    match ch.alpn.first().map(|a| a.as_bytes()) {
        Some([]) | None => out.push_str("00"),
        Some(a) => {
            let (f, l) = (a[0], a[a.len() - 1]);
            if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() {
                out.push(char::from(f));
                out.push(char::from(l));
            } else {
                // The first and last hex digits of the value.
                out.push(char::from(HEX[usize::from(f >> 4)]));
                out.push(char::from(HEX[usize::from(l & 15)]));
            }
        }
    }
    out.push('_');
    sorted.clear();
    sorted.reserve(l.ciphers.len().max(l.exts.len()));
    sorted.extend(l.ciphers.iter().filter(not_grease));
    sorted.sort_unstable();
    if sorted.is_empty() {
        out.push_str("000000000000");
    } else {
        sha12_lists(&[sorted], out);
    }
    out.push('_');
    sorted.clear();
    sorted.extend(
        l.exts
            .iter()
            .filter(not_grease)
            .filter(|&&v| v != 0 && v != 16),
    );
    sorted.sort_unstable();
    if sorted.is_empty() {
        out.push_str("000000000000");
    } else {
        sha12_lists(&[sorted, l.sigalgs], out);
    }
}

/// Parses an SSLv2-framed ClientHello (RFC 6101 appendix E): no extensions, so no SNI.
/// Only a hello within one segment is parsed (real clients send it whole).
pub fn parse_sslv2_hello(rec: &[u8]) -> Result<ClientHello, TlsError> {
    let mut ch = ClientHello::default();
    parse_sslv2_hello_into(rec, &mut ch)?;
    Ok(ch)
}

/// [`parse_sslv2_hello`] into `ch` (emptied first), reusing its buffers.
pub fn parse_sslv2_hello_into(rec: &[u8], ch: &mut ClientHello) -> Result<(), TlsError> {
    with_scratch(ch, |ch, sc| sslv2_fields(rec, ch, sc))
}

fn sslv2_fields(rec: &[u8], ch: &mut ClientHello, sc: &mut Scratch) -> Result<(), TlsError> {
    let mut r = Rd { b: rec };
    let len = (r.u16()? & 0x7fff) as usize;
    let mut r = Rd { b: r.take(len)? };
    if r.u8()? != 1 {
        return Err(TlsError::Malformed);
    }
    let version = r.u16()?;
    let cs_len = r.u16()? as usize;
    let sid_len = r.u16()? as usize;
    let ch_len = r.u16()? as usize;
    let specs = r.take(cs_len)?;
    r.take(sid_len)?;
    r.take(ch_len)?;
    if !cs_len.is_multiple_of(3) {
        return Err(TlsError::Malformed);
    }
    // V2 cipher specs whose first byte is 0 are TLS cipher suites.
    sc.ciphers.reserve(specs.len() / 3);
    sc.ciphers.extend(
        specs
            .chunks(3)
            .filter(|c| c[0] == 0)
            .map(|c| u16::from_be_bytes([c[1], c[2]])),
    );
    ch.version = version;
    push_dec(&mut ch.ja3, version);
    ch.ja3.push(',');
    join_dec(
        &mut ch.ja3,
        sc.ciphers.iter().copied().filter(|&v| !is_grease(v)),
    );
    ch.ja3.push_str(",,,");
    hex_lower(&Md5::digest(ch.ja3.as_bytes()), &mut ch.ja3_hash);
    // No extensions or signature algorithms in SSLv2: those lists are empty.
    set_ja4(ch, sc, false);
    Ok(())
}

/// Parses a ServerHello body.
pub fn parse_server_hello(body: &[u8]) -> Result<ServerHello, TlsError> {
    let mut sh = ServerHello::default();
    parse_server_hello_into(body, &mut sh)?;
    Ok(sh)
}

/// [`parse_server_hello`] into `sh` (emptied first), reusing its buffers.
pub fn parse_server_hello_into(body: &[u8], sh: &mut ServerHello) -> Result<(), TlsError> {
    sh.recycle();
    let mut r = Rd { b: body };
    let legacy = r.u16()?;
    r.take(32)?;
    r.sub8()?;
    let cipher = r.u16()?;
    r.u8()?;
    sh.version = legacy;
    sh.cipher = cipher;
    if !r.is_empty() {
        let mut e = r.sub16()?;
        sh.extensions.reserve(e.b.len() / 4);
        while !e.is_empty() {
            let typ = e.u16()?;
            let mut d = e.sub16()?;
            sh.extensions.push(typ);
            match typ {
                43 if d.b.len() == 2 => sh.version = d.u16()?,
                16 => {
                    let mut l = d.sub16()?;
                    if !l.is_empty() {
                        let a = sh.spares.text(l.sub8()?.b);
                        if let Some(old) = sh.alpn.replace(a) {
                            sh.spares.put(old);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    sh.ja3s.reserve(6 * (2 + sh.extensions.len()));
    sh.ja3s_hash.reserve(32);
    push_dec(&mut sh.ja3s, legacy);
    sh.ja3s.push(',');
    push_dec(&mut sh.ja3s, cipher);
    sh.ja3s.push(',');
    join_dec(
        &mut sh.ja3s,
        sh.extensions.iter().copied().filter(|&v| !is_grease(v)),
    );
    hex_lower(&Md5::digest(sh.ja3s.as_bytes()), &mut sh.ja3s_hash);
    Ok(())
}

/// An extension's name as Suricata logs it in `quic.extensions[].name`.
pub fn extension_name(t: u16) -> Option<&'static str> {
    Some(match t {
        0 => "server_name",
        1 => "max_fragment_length",
        5 => "status_request",
        10 => "supported_groups",
        11 => "ec_point_formats",
        13 => "signature_algorithms",
        14 => "use_srtp",
        15 => "heartbeat",
        16 => "alpn",
        18 => "signed_certificate_timestamp",
        21 => "padding",
        22 => "encrypt_then_mac",
        23 => "extended_master_secret",
        27 => "compress_certificate",
        28 => "record_size_limit",
        35 => "session_ticket",
        41 => "pre_shared_key",
        42 => "early_data",
        43 => "supported_versions",
        44 => "cookie",
        45 => "psk_key_exchange_modes",
        49 => "post_handshake_auth",
        50 => "signature_algorithms_cert",
        51 => "key_share",
        57 => "quic_transport_parameters",
        0xfe0d => "encrypted_client_hello",
        0xff01 => "renegotiation_info",
        _ => return None,
    })
}

/// The version as Suricata writes it in `tls.version`.
pub fn version_name(v: u16) -> &'static str {
    const DRAFTS: [&str; 29] = [
        "TLS 1.3 draft-0",
        "TLS 1.3 draft-1",
        "TLS 1.3 draft-2",
        "TLS 1.3 draft-3",
        "TLS 1.3 draft-4",
        "TLS 1.3 draft-5",
        "TLS 1.3 draft-6",
        "TLS 1.3 draft-7",
        "TLS 1.3 draft-8",
        "TLS 1.3 draft-9",
        "TLS 1.3 draft-10",
        "TLS 1.3 draft-11",
        "TLS 1.3 draft-12",
        "TLS 1.3 draft-13",
        "TLS 1.3 draft-14",
        "TLS 1.3 draft-15",
        "TLS 1.3 draft-16",
        "TLS 1.3 draft-17",
        "TLS 1.3 draft-18",
        "TLS 1.3 draft-19",
        "TLS 1.3 draft-20",
        "TLS 1.3 draft-21",
        "TLS 1.3 draft-22",
        "TLS 1.3 draft-23",
        "TLS 1.3 draft-24",
        "TLS 1.3 draft-25",
        "TLS 1.3 draft-26",
        "TLS 1.3 draft-27",
        "TLS 1.3 draft-28",
    ];
    if v >> 8 == 0x7f && ((v & 0xff) as usize) < DRAFTS.len() {
        return DRAFTS[(v & 0xff) as usize];
    }
    match v {
        0x0304 => "TLS 1.3",
        0x0303 => "TLS 1.2",
        0x0302 => "TLS 1.1",
        0x0301 => "TLSv1",
        0x0300 => "SSLv3",
        0x0002 => "SSLv2",
        _ => "UNDETERMINED",
    }
}

/// What a [`TlsStream`] found in the bytes it was fed.
#[derive(Debug)]
pub enum TlsEvent {
    /// A ClientHello.
    Client(Pooled<ClientHello>),
    /// A ServerHello.
    Server(Pooled<ServerHello>),
    /// A fault; the stream stops parsing this direction.
    Error(TlsError),
}

/// Per-direction TLS record reader that stops after the first hello.
#[derive(Debug, Default)]
pub struct TlsStream {
    /// Partial record header/body carried across feeds.
    rec: Vec<u8>,
    /// Handshake bytes gathered across records.
    hs: Vec<u8>,
    done: bool,
    /// The client sent an SSLv2-framed hello (gathered in `rec`).
    v2: bool,
    /// Bytes were fed before: an SSLv2 hello can only start the stream.
    started: bool,
    /// Server side: go on after the ServerHello (TLS 1.2 and older) to the Certificate.
    keep_certs: bool,
    /// The ServerHello was parsed; looking for the Certificate message.
    after_sh: bool,
    /// The certificate chain (DER, leaf first), until taken.
    certs: Option<Pooled<CertChain>>,
}

impl Recycle for [TlsStream; 2] {
    fn recycle(&mut self) {
        for t in self.iter_mut() {
            give_bytes(&mut t.rec);
            give_bytes(&mut t.hs);
            *t = TlsStream::default();
        }
    }
    fn bytes(&self) -> usize {
        std::mem::size_of::<[TlsStream; 2]>() + self[0].held() + self[1].held()
    }
    crate::thread_pool!([TlsStream; 2]);
}

/// Most certificates kept from one chain.
pub const MAX_CERTS: usize = 16;

/// A certificate chain (DER, leaf first), held in one buffer.
#[derive(Debug, Default)]
pub struct CertChain(Packed);

impl std::ops::Deref for CertChain {
    type Target = Packed;
    fn deref(&self) -> &Packed {
        &self.0
    }
}

impl Recycle for CertChain {
    /// A chain lives from its parse to the end of the packet that completed it, so a few do.
    const CAP: usize = 4;

    fn recycle(&mut self) {
        // At most a handshake message's bytes (MAX_HANDSHAKE), times CAP.
        self.0.clear(MAX_HANDSHAKE);
    }
    fn bytes(&self) -> usize {
        std::mem::size_of::<CertChain>() + self.0.held()
    }
    crate::thread_pool!(CertChain);
}

/// The `certificate_list` of a Certificate message body (TLS 1.2 and older), leaf first.
fn certificate_list(body: &[u8]) -> Option<Pooled<CertChain>> {
    let n = u32::from_be_bytes([0, *body.first()?, *body.get(1)?, *body.get(2)?]) as usize;
    let mut rest = body.get(3..3 + n)?;
    let mut out = Pooled::<CertChain>::take();
    while rest.len() >= 3 && out.len() < MAX_CERTS {
        let l = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
        let c = rest.get(3..3 + l)?;
        out.0.push(c);
        rest = &rest[3 + l..];
    }
    Some(out)
}

impl TlsStream {
    /// True when nothing more will be parsed in this direction.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Bytes held across feeds (charged to the reassembly budget by the caller).
    pub fn held(&self) -> usize {
        self.rec.capacity() + self.hs.capacity() + self.certs.as_ref().map_or(0, |c| c.held())
    }

    /// Server side: after the ServerHello of TLS 1.2 or older, go on to the Certificate message
    /// (then [`TlsStream::take_certs`]).
    pub fn set_keep_certs(&mut self, on: bool) {
        self.keep_certs = on;
    }

    /// The certificate chain, once parsed (leaf first, DER).
    pub fn take_certs(&mut self) -> Option<Pooled<CertChain>> {
        self.certs.take()
    }

    /// Handshake messages after the ServerHello: stop at the Certificate or ServerHelloDone.
    fn drain_after_sh(&mut self) {
        loop {
            if self.hs.len() < 4 {
                return;
            }
            let hlen = u32::from_be_bytes([0, self.hs[1], self.hs[2], self.hs[3]]) as usize;
            if hlen > MAX_HANDSHAKE {
                self.done = true;
                return;
            }
            if self.hs.len() < 4 + hlen {
                return;
            }
            match self.hs[0] {
                11 => {
                    self.certs = certificate_list(&self.hs[4..4 + hlen]);
                    self.done = true;
                    return;
                }
                14 => {
                    self.done = true;
                    return;
                }
                _ => {
                    self.hs.drain(..4 + hlen);
                }
            }
        }
    }

    /// After a parsed hello: whether to keep going, with the bytes that followed it.
    fn continue_after(&mut self, ev: &Option<TlsEvent>, msg: &[u8], is_client: bool) {
        if let Some(TlsEvent::Server(sh)) = ev {
            if self.keep_certs && !is_client && sh.version < 0x0304 && msg.len() >= 4 {
                let hlen = u32::from_be_bytes([0, msg[1], msg[2], msg[3]]) as usize;
                self.after_sh = true;
                self.hs.clear();
                more(&mut self.hs, msg.get(4 + hlen..).unwrap_or(&[]));
            }
        }
    }

    /// Feeds in-order bytes; returns at most one event (the hello, or an error).
    pub fn feed(&mut self, mut data: &[u8], is_client: bool) -> Option<TlsEvent> {
        let at_start = !self.started;
        if !data.is_empty() {
            self.started = true;
        }
        if is_client
            && !self.done
            && (self.v2 || (at_start && data.first().is_some_and(|b| b & 0x80 != 0)))
        {
            // An SSLv2-framed (compatible) ClientHello: 2-byte length with the top bit set,
            // gathered until the whole record is here.
            self.v2 = true;
            let need = |r: &[u8]| {
                if r.len() >= 2 {
                    2 + (u16::from_be_bytes([r[0], r[1]]) & 0x7fff) as usize
                } else {
                    2
                }
            };
            while self.rec.len() < need(&self.rec) && !data.is_empty() {
                let take = (need(&self.rec) - self.rec.len()).min(data.len());
                more(&mut self.rec, &data[..take]);
                data = &data[take..];
            }
            if self.rec.len() < need(&self.rec) {
                return None;
            }
            self.done = true;
            let rec = Lent::take(&mut self.rec);
            let mut ch = Pooled::<ClientHello>::take();
            return Some(match parse_sslv2_hello_into(&rec, &mut ch) {
                Ok(()) => TlsEvent::Client(ch),
                Err(e) => TlsEvent::Error(e),
            });
        }
        let mut stash = None;
        while !self.done && !data.is_empty() {
            // Complete a partial record header/body first.
            let record: &[u8];
            let owned;
            if !self.rec.is_empty() || data.len() < 5 {
                let need_hdr = 5usize.saturating_sub(self.rec.len());
                let take = need_hdr.min(data.len());
                more(&mut self.rec, &data[..take]);
                data = &data[take..];
                if self.rec.len() < 5 {
                    return stash;
                }
                let len = u16::from_be_bytes([self.rec[3], self.rec[4]]) as usize;
                let want = 5 + len - self.rec.len().min(5 + len);
                let take = want.min(data.len());
                more(&mut self.rec, &data[..take]);
                data = &data[take..];
                if self.rec.len() < 5 + len {
                    return stash;
                }
                owned = std::mem::take(&mut self.rec);
                record = &owned;
            } else {
                let len = u16::from_be_bytes([data[3], data[4]]) as usize;
                if data.len() < 5 + len {
                    more(&mut self.rec, data);
                    return stash;
                }
                record = &data[..5 + len];
                data = &data[5 + len..];
                owned = Vec::new();
            }
            let ev = self.on_record(record, is_client);
            if !owned.is_empty() {
                // Keep the allocation for reuse.
                self.rec = owned;
                self.rec.clear();
            }
            if ev.is_some() {
                if self.after_sh && stash.is_none() {
                    // The ServerHello: report it, and go on to the Certificate.
                    stash = ev;
                    self.drain_after_sh();
                    continue;
                }
                self.done = true;
                give_bytes(&mut self.rec);
                give_bytes(&mut self.hs);
                return ev;
            }
        }
        if self.done {
            give_bytes(&mut self.rec);
            give_bytes(&mut self.hs);
        }
        stash
    }

    fn on_record(&mut self, rec: &[u8], is_client: bool) -> Option<TlsEvent> {
        let ctype = rec[0];
        if self.after_sh {
            // Anything but handshake (ChangeCipherSpec, alert) ends the cleartext part.
            if ctype != 22 || self.hs.len() + rec.len() > MAX_HANDSHAKE + 4 {
                self.done = true;
                return None;
            }
            more(&mut self.hs, &rec[5..]);
            self.drain_after_sh();
            return None;
        }
        if !(20..=24).contains(&ctype) || rec[1] != 3 {
            return Some(TlsEvent::Error(TlsError::Malformed));
        }
        if ctype != 22 {
            // Change cipher spec, alert, application data before a hello: nothing to find.
            return if ctype == 23 {
                Some(TlsEvent::Error(TlsError::Malformed))
            } else {
                None
            };
        }
        let frag = &rec[5..];
        if !self.hs.is_empty() {
            if self.hs.len() + frag.len() > MAX_HANDSHAKE + 4 {
                return Some(TlsEvent::Error(TlsError::TooLong));
            }
            more(&mut self.hs, frag);
            let hs = Lent::take(&mut self.hs);
            let r = on_message(&hs, is_client);
            if r.is_none() {
                self.hs = hs.into_vec();
            } else {
                self.continue_after(&r, &hs, is_client);
            }
            return r;
        }
        let r = on_message(frag, is_client);
        if r.is_none() {
            more(&mut self.hs, frag);
        } else {
            self.continue_after(&r, frag, is_client);
        }
        r
    }
}

/// Parses one handshake message if it is complete; `None` asks for more bytes.
fn on_message(msg: &[u8], is_client: bool) -> Option<TlsEvent> {
    if msg.len() < 4 {
        return None;
    }
    let hlen = u32::from_be_bytes([0, msg[1], msg[2], msg[3]]) as usize;
    if hlen > MAX_HANDSHAKE {
        return Some(TlsEvent::Error(TlsError::TooLong));
    }
    if msg.len() < 4 + hlen {
        return None;
    }
    let body = &msg[4..4 + hlen];
    Some(match (msg[0], is_client) {
        (1, true) => {
            let mut ch = Pooled::<ClientHello>::take();
            match parse_client_hello_into(body, false, &mut ch) {
                Ok(()) => TlsEvent::Client(ch),
                Err(e) => TlsEvent::Error(e),
            }
        }
        (2, false) => {
            let mut sh = Pooled::<ServerHello>::take();
            match parse_server_hello_into(body, &mut sh) {
                Ok(()) => TlsEvent::Server(sh),
                Err(e) => TlsEvent::Error(e),
            }
        }
        _ => TlsEvent::Error(TlsError::Malformed),
    })
}

/// A ClientHello record with the given SNI, laid out as a TLS 1.3 client sends one (GREASE,
/// SNI, groups, point formats, signature algorithms, ALPN h2 and http/1.1, supported versions).
/// For tests, benchmarks and fuzz seeds.
#[doc(hidden)]
pub fn client_hello_record(sni: &str) -> Vec<u8> {
    hello_record(sni, false)
}

/// The same with an `encrypted_client_hello` extension (`sni` is then the outer, public name).
#[doc(hidden)]
pub fn client_hello_record_ech(sni: &str) -> Vec<u8> {
    hello_record(sni, true)
}

fn hello_record(sni: &str, ech: bool) -> Vec<u8> {
    let mut ext = Vec::new();
    let mut push_ext = |t: u16, d: &[u8]| {
        ext.extend_from_slice(&t.to_be_bytes());
        ext.extend_from_slice(&(d.len() as u16).to_be_bytes());
        ext.extend_from_slice(d);
    };
    let mut s = vec![0u8];
    s.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    s.extend_from_slice(sni.as_bytes());
    let mut sl = (s.len() as u16).to_be_bytes().to_vec();
    sl.extend_from_slice(&s);
    push_ext(0x0a0a, &[]);
    push_ext(0, &sl);
    push_ext(10, &[0, 4, 0, 0x1d, 0, 0x17]);
    push_ext(11, &[1, 0]);
    push_ext(13, &[0, 4, 4, 3, 8, 4]);
    push_ext(
        16,
        &[
            0, 12, 2, b'h', b'2', 8, b'h', b't', b't', b'p', b'/', b'1', b'.', b'1',
        ],
    );
    push_ext(43, &[4, 0x3a, 0x3a, 3, 4]);
    if ech {
        push_ext(0xfe0d, &[0, 0, 1, 0, 1, 7, 0, 0, 0, 0]);
    }
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]);
    body.push(0);
    body.extend_from_slice(&[0, 6, 0x1a, 0x1a, 0x13, 0x01, 0xc0, 0x2f]);
    body.extend_from_slice(&[1, 0]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1, 0];
    hs.extend_from_slice(&(body.len() as u16).to_be_bytes());
    hs.extend_from_slice(&body);
    let mut rec = vec![22, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

/// Cheap test for the start of a TLS handshake record (type 22, version 3.x).
pub fn probe(b: &[u8]) -> Option<bool> {
    match b {
        [22, 3, 0..=4, ..] => Some(true),
        // SSLv2-framed ClientHello offering SSL 3.0 or TLS.
        [h, _, 1, 3 | 0, ..] if h & 0x80 != 0 => Some(true),
        [h, ..] | [h, _] | [h, _, 1] if h & 0x80 != 0 && b.len() < 4 => None,
        [22] | [22, 3] => None,
        [] => None,
        _ => Some(false),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The first 12 hex digits of a string's SHA-256 (JA4's hashes, written literally).
    fn sha12(s: &str) -> String {
        let d = Sha256::digest(s.as_bytes());
        let mut o = String::with_capacity(12);
        hex_lower(&d[..6], &mut o);
        o
    }

    /// JA4 written literally from its spec with `format!` and `join` (the writer before it was
    /// made to hash as it writes), to check [`ja4`] against.
    fn ja4_reference(ch: &ClientHello, ciphers: &[u16], exts: &[u16], sigalgs: &[u16]) -> String {
        let ver = ja4_version(ch);
        let mut c: Vec<u16> = ciphers.iter().copied().filter(|&v| !is_grease(v)).collect();
        let mut e: Vec<u16> = exts.iter().copied().filter(|&v| !is_grease(v)).collect();
        let alpn = match ch.alpn.first().map(|a| a.as_bytes()) {
            Some([]) | None => "00".to_string(),
            Some(a) => {
                let (f, l) = (a[0], a[a.len() - 1]);
                if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() {
                    format!("{}{}", f as char, l as char)
                } else {
                    let h: String = a.iter().map(|b| format!("{b:02x}")).collect();
                    format!("{}{}", &h[..1], &h[h.len() - 1..])
                }
            }
        };
        let mut out = format!(
            "t{ver}{}{:02}{:02}{alpn}_",
            if ch.sni.is_some() { 'd' } else { 'i' },
            c.len().min(99),
            e.len().min(99)
        );
        c.sort_unstable();
        let hex = |v: &[u16]| {
            v.iter()
                .map(|x| format!("{x:04x}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        out += &if c.is_empty() {
            "000000000000".into()
        } else {
            sha12(&hex(&c))
        };
        out.push('_');
        e.retain(|&v| v != 0 && v != 16);
        e.sort_unstable();
        out += &if e.is_empty() {
            "000000000000".into()
        } else if sigalgs.is_empty() {
            sha12(&hex(&e))
        } else {
            sha12(&format!("{}_{}", hex(&e), hex(sigalgs)))
        };
        out
    }

    proptest::proptest! {
        #[test]
        fn ja4_agrees_with_its_literal_form(
            ciphers in proptest::collection::vec(proptest::prelude::any::<u16>(), 0..120),
            exts in proptest::collection::vec(proptest::prelude::any::<u16>(), 0..120),
            sigalgs in proptest::collection::vec(proptest::prelude::any::<u16>(), 0..20),
            alpn in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4),
            sni: bool,
            version in 0x0300u16..0x0306,
        ) {
            let ch = ClientHello {
                version,
                sni: sni.then(|| "a.example".to_string()),
                alpn: vec![String::from_utf8_lossy(&alpn).into_owned()],
                ..Default::default()
            };
            // Written over a used string and sort buffer, as a recycled hello's are.
            let mut out = String::from("left over");
            let mut sorted = vec![7u16; 9];
            let l = Lists { ciphers: &ciphers, exts: &exts, sigalgs: &sigalgs };
            ja4(&mut out, &ch, l, false, &mut sorted);
            proptest::prop_assert_eq!(out, ja4_reference(&ch, &ciphers, &exts, &sigalgs));
        }
    }

    /// A ServerHello body: TLS 1.2 legacy version, `cipher`, supported_versions when `v13`,
    /// ALPN `alpn` when not empty.
    fn server_hello_body(cipher: u16, v13: bool, alpn: &[u8]) -> Vec<u8> {
        let mut ext = Vec::new();
        if v13 {
            ext.extend_from_slice(&[0, 43, 0, 2, 3, 4]);
        }
        if !alpn.is_empty() {
            let n = alpn.len() as u16;
            ext.extend_from_slice(&[0, 16]);
            ext.extend_from_slice(&(n + 3).to_be_bytes());
            ext.extend_from_slice(&(n + 1).to_be_bytes());
            ext.push(alpn.len() as u8);
            ext.extend_from_slice(alpn);
        }
        let mut b = vec![3, 3];
        b.extend_from_slice(&[9; 32]);
        b.push(0);
        b.extend_from_slice(&cipher.to_be_bytes());
        b.push(0);
        b.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        b.extend_from_slice(&ext);
        b
    }

    /// Overwrites bytes of `b` (positions taken modulo its length).
    fn mutate(b: &mut [u8], muts: &[(usize, u8)]) {
        if b.is_empty() {
            return;
        }
        let n = b.len();
        for &(i, v) in muts {
            b[i % n] = v;
        }
    }

    proptest::proptest! {
        /// A hello parsed into one that held another hello (as a recycled one has) is the hello
        /// a fresh parse gives, or the same error: nothing of the first one shows through.
        #[test]
        fn a_used_client_hello_parses_as_a_fresh_one(
            a in 0usize..4,
            b in 0usize..4,
            muts in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 0..6),
        ) {
            let seeds = [
                client_hello_record("example.com"),
                client_hello_record_ech("a-much-longer-name.example.org"),
                client_hello_record(""),
                hello_record("x", false)[..40].to_vec(),
            ];
            let mut used = ClientHello::default();
            let _ = parse_client_hello_into(seeds[a].get(9..).unwrap_or(&[]), a == 1, &mut used);
            let mut body = seeds[b].get(9..).unwrap_or(&[]).to_vec();
            mutate(&mut body, &muts);
            let fresh = parse_client_hello(&body, false);
            let again = parse_client_hello_into(&body, false, &mut used).map(|()| used.clone());
            proptest::prop_assert_eq!(fresh, again);
        }

        #[test]
        fn a_used_server_hello_parses_as_a_fresh_one(
            first in (proptest::prelude::any::<u16>(), proptest::prelude::any::<bool>(), proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12)),
            second in (proptest::prelude::any::<u16>(), proptest::prelude::any::<bool>(), proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12)),
            muts in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 0..4),
        ) {
            let mut used = ServerHello::default();
            let a = server_hello_body(first.0, first.1, &first.2);
            proptest::prop_assert!(parse_server_hello_into(&a, &mut used).is_ok());
            let mut b = server_hello_body(second.0, second.1, &second.2);
            mutate(&mut b, &muts);
            let fresh = parse_server_hello(&b);
            let again = parse_server_hello_into(&b, &mut used).map(|()| used.clone());
            proptest::prop_assert_eq!(fresh, again);
        }
    }

    #[test]
    fn recycled_hellos_equal_new_ones() {
        let mut ch = parse_client_hello(&client_hello_record_ech("a.example")[9..], false).unwrap();
        assert!(ch.sni.is_some() && ch.ech && !ch.alpn.is_empty());
        ch.recycle();
        assert_eq!(ch, ClientHello::default());
        let mut sh = parse_server_hello(&server_hello_body(0x1301, true, b"h2")).unwrap();
        assert_eq!((sh.version, sh.alpn.as_deref()), (0x0304, Some("h2")));
        sh.recycle();
        assert_eq!(sh, ServerHello::default());
    }

    #[test]
    fn digit_writers_agree_with_fmt_on_every_value() {
        let mut out = String::new();
        for v in 0..=u16::MAX {
            out.clear();
            push_dec(&mut out, v);
            assert_eq!(out, v.to_string());
            assert_eq!(hex4(v), format!("{v:04x}").as_bytes());
        }
        let all: Vec<u8> = (0..=255).collect();
        out.clear();
        hex_lower(&all, &mut out);
        let want: String = all.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(out, want);
    }

    #[test]
    fn client_hello_fields_and_fingerprints() {
        let rec = client_hello_record("example.com");
        let ch = parse_client_hello(&rec[9..], false).unwrap();
        assert_eq!(ch.sni.as_deref(), Some("example.com"));
        assert_eq!(ch.alpn, ["h2", "http/1.1"]);
        assert_eq!(ch.versions, [0x0304]);
        assert_eq!(ch.ja3, "771,4865-49199,0-10-11-13-16-43,29-23,0");
        assert_eq!(ch.ja3_hash.len(), 32);
        // t, 1.3, SNI, 2 ciphers, 6 extensions, ALPN h2.
        assert!(ch.ja4.starts_with("t13d0206h2_"), "{}", ch.ja4);
        assert_eq!(ch.ja4.len(), 36);
        assert_eq!(&ch.ja4[11..23], &sha12("1301,c02f"));
        assert_eq!(&ch.ja4[24..], &sha12("000a,000b,000d,002b_0403,0804"));
    }

    #[test]
    fn hello_split_anywhere_gives_the_same_result() {
        // Split into two records, then feed in every 2-way byte split.
        let rec = client_hello_record("split.example");
        let hs = &rec[5..];
        let mut two = vec![22, 3, 1, 0, 10];
        two.extend_from_slice(&hs[..10]);
        two.extend_from_slice(&[22, 3, 1]);
        two.extend_from_slice(&((hs.len() - 10) as u16).to_be_bytes());
        two.extend_from_slice(&hs[10..]);
        for cut in 0..two.len() {
            let mut s = TlsStream::default();
            let a = s.feed(&two[..cut], true);
            let b = a.or_else(|| s.feed(&two[cut..], true));
            match b {
                Some(TlsEvent::Client(ch)) => assert_eq!(ch.sni.as_deref(), Some("split.example")),
                other => panic!("cut {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn sslv2_hello_split_anywhere_gives_the_same_result() {
        // 2-byte length (top bit set), CLIENT-HELLO, version 3.1, 2 cipher specs, no session
        // id, 16-byte challenge.
        let mut body = vec![1, 3, 1, 0, 6, 0, 0, 0, 16, 0, 0, 0x2f, 0, 0, 0x35];
        body.extend_from_slice(&[9; 16]);
        let mut rec = vec![0x80 | (body.len() >> 8) as u8, body.len() as u8];
        rec.extend_from_slice(&body);
        for cut in 0..rec.len() {
            let mut s = TlsStream::default();
            let ev = s
                .feed(&rec[..cut], true)
                .or_else(|| s.feed(&rec[cut..], true));
            match ev {
                Some(TlsEvent::Client(ch)) => assert_eq!(
                    (ch.version, ch.ja3.as_str()),
                    (0x0301, "769,47-53,,,"),
                    "cut {cut}"
                ),
                other => panic!("cut {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn only_the_first_byte_of_the_stream_can_start_an_sslv2_hello() {
        // An empty handshake record, then a record whose first byte has the top bit set: this is
        // not SSLv2, whichever way the bytes are split (found by the tls fuzz target).
        let bytes = [0x16, 3, 1, 0, 0, 0x93, 1, 0, 0, 1, 0xdb];
        let whole = format!(
            "{:?}",
            TlsStream::default()
                .feed(&bytes, true)
                .map(|e| matches!(e, TlsEvent::Error(_)))
        );
        for cut in 0..bytes.len() {
            let mut s = TlsStream::default();
            let ev = s
                .feed(&bytes[..cut], true)
                .or_else(|| s.feed(&bytes[cut..], true));
            assert_eq!(
                format!("{:?}", ev.map(|e| matches!(e, TlsEvent::Error(_)))),
                whole,
                "cut {cut}"
            );
        }
        assert_eq!(whole, "Some(true)");
    }

    #[test]
    fn malformed_lengths_are_errors_not_panics() {
        let rec = client_hello_record("x.example");
        for n in 0..rec.len() - 5 {
            let _ = parse_client_hello(&rec[9..9 + n.min(rec.len() - 9)], false);
        }
        let mut bad = rec.clone();
        bad[9 + 2 + 32] = 200; // session id length past the end
        assert_eq!(
            parse_client_hello(&bad[9..], false),
            Err(TlsError::Malformed)
        );
    }
}
