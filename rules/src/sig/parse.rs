//! The rule language: header, options, content strings, keyword semantics.

use std::net::IpAddr;

use std::collections::HashMap;

use super::pcre::{self, PcreFlags};
use super::*;

/// Address and port variables (`$HOME_NET`, `$HTTP_PORTS`, ...), with Suricata's defaults.
#[derive(Debug, Clone)]
pub struct Vars {
    addr: HashMap<String, String>,
    port: HashMap<String, String>,
}

impl Default for Vars {
    fn default() -> Self {
        let mut v = Vars {
            addr: HashMap::new(),
            port: HashMap::new(),
        };
        let home = "[192.168.0.0/16,10.0.0.0/8,172.16.0.0/12]";
        v.set_addr("HOME_NET", home);
        v.set_addr("EXTERNAL_NET", "!$HOME_NET");
        for s in [
            "HTTP_SERVERS",
            "SMTP_SERVERS",
            "SQL_SERVERS",
            "DNS_SERVERS",
            "TELNET_SERVERS",
            "AIM_SERVERS",
            "DC_SERVERS",
            "DNP3_SERVER",
            "DNP3_CLIENT",
            "MODBUS_CLIENT",
            "MODBUS_SERVER",
            "ENIP_CLIENT",
            "ENIP_SERVER",
        ] {
            v.set_addr(s, "$HOME_NET");
        }
        for (k, p) in [
            ("HTTP_PORTS", "80"),
            ("SHELLCODE_PORTS", "!80"),
            ("ORACLE_PORTS", "1521"),
            ("SSH_PORTS", "22"),
            ("DNP3_PORTS", "20000"),
            ("MODBUS_PORTS", "502"),
            ("FILE_DATA_PORTS", "[$HTTP_PORTS,110,143]"),
            ("FTP_PORTS", "21"),
            ("GENEVE_PORTS", "6081"),
            ("VXLAN_PORTS", "4789"),
            ("TEREDO_PORTS", "3544"),
        ] {
            v.set_port(k, p);
        }
        v
    }
}

impl Vars {
    /// Sets an address variable (name without `$`).
    pub fn set_addr(&mut self, name: &str, value: &str) {
        self.addr.insert(name.to_owned(), value.to_owned());
    }
    /// Sets a port variable (name without `$`).
    pub fn set_port(&mut self, name: &str, value: &str) {
        self.port.insert(name.to_owned(), value.to_owned());
    }
}

/// What [`parse_rule`] made of a line.
#[derive(Debug)]
pub enum Parsed {
    /// A signature, with the regexes it needs compiled (indices in its steps are local).
    Sig(Box<Sig>, Vec<regex::bytes::Regex>),
    /// Valid but not honoured.
    Skip(Option<u64>, Skip),
    /// Malformed.
    Error(Option<u64>, String),
}

/// Interns flowbit names to small numbers shared by the whole set.
#[derive(Debug, Default)]
pub(crate) struct Names {
    pub map: HashMap<String, u32>,
    /// Datasets by name: the values loaded, and the intel lists behind it (`format intel`).
    pub datasets: Vec<(
        String,
        std::collections::HashSet<Vec<u8>>,
        Vec<crate::IntelSet>,
    )>,
}

/// Entries a dataset file may hold.
const MAX_DATASET: usize = 1 << 20;

/// Reads a dataset file: `base64` lines (Suricata's string format) or `ndjson` with a key.
fn load_dataset(
    path: &std::path::Path,
    ndjson_key: Option<&str>,
) -> Result<std::collections::HashSet<Vec<u8>>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut set = std::collections::HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let v = match ndjson_key {
            Some(k) => json_string(l, k)
                .ok_or_else(|| format!("{}:{}: no string \"{k}\"", path.display(), i + 1))?,
            None => super::base64(l.as_bytes(), true)
                .ok_or_else(|| format!("{}:{}: not base64", path.display(), i + 1))?,
        };
        if set.len() >= MAX_DATASET {
            return Err(format!(
                "{}: more than {MAX_DATASET} entries",
                path.display()
            ));
        }
        set.insert(v);
    }
    Ok(set)
}

/// The string value of `"key": "..."` in a one-line JSON object (escapes \" \\ \/ only).
fn json_string(l: &str, key: &str) -> Option<Vec<u8>> {
    let pat = format!("\"{key}\"");
    let at = l.find(&pat)? + pat.len();
    let rest = l[at..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    let mut out = Vec::new();
    let mut it = rest.bytes();
    while let Some(c) = it.next() {
        match c {
            b'"' => return Some(out),
            b'\\' => match it.next()? {
                e @ (b'"' | b'\\' | b'/') => out.push(e),
                _ => return None,
            },
            _ => out.push(c),
        }
    }
    None
}

impl Names {
    fn id(&mut self, n: &str) -> u32 {
        let len = self.map.len() as u32;
        *self.map.entry(n.to_owned()).or_insert(len)
    }
}

type R<T> = Result<T, Fail>;

pub(crate) enum Fail {
    Syntax(String),
    Skip(Skip),
}

fn syn<T>(msg: impl Into<String>) -> R<T> {
    Err(Fail::Syntax(msg.into()))
}

fn skip<T>(kw: &str, reason: impl Into<String>) -> R<T> {
    Err(Fail::Skip(Skip {
        keyword: kw.to_owned(),
        reason: reason.into(),
    }))
}

/// Parses one rule. `classes` maps classtypes to priorities.
pub fn parse_rule(
    line: &str,
    vars: &Vars,
    classes: &HashMap<String, (String, u8)>,
    file: &std::sync::Arc<str>,
    lineno: u32,
) -> Parsed {
    let mut names = Names::default();
    parse_rule_in(line, vars, classes, file, lineno, &mut names)
}

pub(crate) fn parse_rule_in(
    line: &str,
    vars: &Vars,
    classes: &HashMap<String, (String, u8)>,
    file: &std::sync::Arc<str>,
    lineno: u32,
    names: &mut Names,
) -> Parsed {
    let sid = quick_sid(line);
    let mut regexes = Vec::new();
    match parse_inner(line, vars, classes, names, &mut regexes, file) {
        Ok(mut s) => {
            s.file = file.clone();
            s.line = lineno;
            Parsed::Sig(Box::new(s), regexes)
        }
        Err(Fail::Syntax(m)) => Parsed::Error(sid, m),
        Err(Fail::Skip(k)) => Parsed::Skip(sid, k),
    }
}

/// The sid, read loosely, so errors can name it.
fn quick_sid(line: &str) -> Option<u64> {
    let i = line.find("sid:")?;
    let rest = line[i + 4..].trim_start();
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn parse_inner(
    line: &str,
    vars: &Vars,
    classes: &HashMap<String, (String, u8)>,
    names: &mut Names,
    regexes: &mut Vec<regex::bytes::Regex>,
    file: &std::sync::Arc<str>,
) -> R<Sig> {
    let line = line.trim();
    let Some(open) = line.find('(') else {
        return syn("no option list '(...)'");
    };
    if !line.ends_with(')') {
        return syn("the option list does not end with ')'");
    }
    let head = &line[..open];
    let body = &line[open + 1..line.len() - 1];
    let toks = header_tokens(head)?;
    if toks.len() != 7 {
        return syn(format!(
            "header has {} fields, expected 7 (action proto src sport dir dst dport)",
            toks.len()
        ));
    }
    let action = match toks[0] {
        "alert" => SigAction::Alert,
        "drop" => SigAction::Drop,
        "reject" | "rejectsrc" | "rejectdst" | "rejectboth" => SigAction::Reject,
        "pass" => SigAction::Pass,
        "config" => {
            return skip(
                "config",
                "config rules (conditional logging) are not supported",
            )
        }
        a => return syn(format!("unknown action '{a}'")),
    };
    let proto = match toks[1] {
        "ip" => Proto::Ip,
        "tcp" => Proto::Tcp,
        "tcp-pkt" => Proto::TcpPkt,
        "tcp-stream" => Proto::TcpStream,
        "udp" => Proto::Udp,
        "icmp" | "icmpv4" | "icmpv6" => Proto::Icmp,
        "dns" => Proto::Dns,
        "tls" => Proto::Tls,
        "http" | "http1" => Proto::Http,
        "quic" => Proto::Quic,
        "pkthdr" => Proto::Pkthdr,
        "smtp" => Proto::Smtp,
        "ftp" => Proto::Ftp,
        "ssh" => Proto::Ssh,
        "smb" => Proto::Smb,
        p => {
            return skip(
                "protocol",
                format!(
                    "protocol '{p}' is not detected by Palisade (dns, tls, http, quic are parsed; smtp, ftp, ssh, smb detected)"
                ),
            )
        }
    };
    let src = parse_addr(toks[2], vars, 0)?;
    let sport = parse_port(toks[3], vars, 0)?;
    let bidir = match toks[4] {
        "->" => false,
        "<>" => true,
        "=>" => {
            return skip(
                "=>",
                "transactional (both directions at once) rules are not supported",
            )
        }
        d => return syn(format!("bad direction '{d}'")),
    };
    let dst = parse_addr(toks[5], vars, 0)?;
    let dport = parse_port(toks[6], vars, 0)?;
    let mut b = SigB {
        sig: Sig {
            action,
            proto,
            src,
            sport,
            dst,
            dport,
            bidir,
            msg: String::new(),
            sid: 0,
            rev: 0,
            gid: 1,
            classtype: None,
            priority: 0,
            metadata: Vec::new(),
            target: None,
            flow: FlowOpts::default(),
            dsize: None,
            urilen: None,
            tcp_flags: None,
            itype: None,
            icode: None,
            ip_proto: None,
            tls_version: None,
            vlan_ids: Vec::new(),
            vlan_layers: None,
            stream_size: None,
            lists: Vec::new(),
            flowbits: Vec::new(),
            xbits: Vec::new(),
            flowints: Vec::new(),
            noalert: false,
            pass_alert: false,
            threshold: None,
            events: Vec::new(),
            hook: Hook::Packet,
            file: file.clone(),
            line: 0,
        },
        cur: None,
        last: None,
        have_sid: false,
        b64: None,
        b64_open: false,
    };
    for opt in split_options(body)? {
        let (key, val) = match opt.find(':') {
            Some(i) => (opt[..i].trim(), Some(opt[i + 1..].trim())),
            None => (opt.trim(), None),
        };
        b.option(key, val, classes, names, regexes)?;
    }
    b.finish(classes)
}

/// Splits the header on whitespace, keeping bracketed groups whole.
fn header_tokens(head: &str) -> R<Vec<&str>> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = None;
    for (i, c) in head.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return syn("unbalanced ']' in header");
        }
        if c.is_whitespace() && depth == 0 {
            if let Some(s) = start.take() {
                out.push(&head[s..i]);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if depth != 0 {
        return syn("unbalanced '[' in header");
    }
    if let Some(s) = start {
        out.push(&head[s..]);
    }
    Ok(out)
}

/// Splits options on `;` outside quotes and not escaped.
fn split_options(body: &str) -> R<Vec<&str>> {
    let mut out = Vec::new();
    let bytes = body.as_bytes();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b';' => {
                let o = body[start..i].trim();
                if !o.is_empty() {
                    out.push(o);
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if !body[start.min(body.len())..].trim().is_empty() {
        return syn("the last option does not end with ';'");
    }
    Ok(out)
}

fn resolve<'a>(v: &'a str, map: &'a HashMap<String, String>, depth: u8) -> R<&'a str> {
    if depth > 16 {
        return syn("variables nest too deep (a loop?)");
    }
    match map.get(v) {
        Some(s) => Ok(s),
        None => syn(format!("unknown variable ${v}")),
    }
}

/// Splits a group body on commas at depth 0.
fn group_items(s: &str) -> R<Vec<&str>> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[start..].trim());
    if out.iter().any(|x| x.is_empty()) {
        return syn(format!("empty item in group '[{s}]'"));
    }
    Ok(out)
}

pub(crate) fn parse_addr(s: &str, vars: &Vars, depth: u8) -> R<AddrExpr> {
    let s = s.trim();
    if depth > 16 {
        return syn("address groups nest too deep");
    }
    if let Some(r) = s.strip_prefix('!') {
        return Ok(AddrExpr::Not(Box::new(parse_addr(r, vars, depth + 1)?)));
    }
    if s == "any" {
        return Ok(AddrExpr::Any);
    }
    if let Some(v) = s.strip_prefix('$') {
        let val = resolve(v, &vars.addr, depth)?;
        return parse_addr(val, vars, depth + 1);
    }
    if let Some(inner) = s.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        let items = group_items(inner)?
            .into_iter()
            .map(|i| parse_addr(i, vars, depth + 1))
            .collect::<R<Vec<_>>>()?;
        return Ok(AddrExpr::List(items));
    }
    let (a, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let Ok(ip) = a.parse::<IpAddr>() else {
        return syn(format!("bad address '{s}'"));
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) => match l.parse::<u8>() {
            Ok(n) if n <= max => n,
            _ => {
                // A dotted netmask (192.168.0.0/255.255.0.0).
                match l.parse::<std::net::Ipv4Addr>() {
                    Ok(m) if ip.is_ipv4() => {
                        let bits = u32::from(m);
                        if bits.leading_ones() + bits.trailing_zeros() != 32 {
                            return syn(format!("bad netmask in '{s}'"));
                        }
                        bits.leading_ones() as u8
                    }
                    _ => return syn(format!("bad prefix length in '{s}'")),
                }
            }
        },
    };
    Ok(AddrExpr::Net(ip, len))
}

pub(crate) fn parse_port(s: &str, vars: &Vars, depth: u8) -> R<PortExpr> {
    let s = s.trim();
    if depth > 16 {
        return syn("port groups nest too deep");
    }
    if let Some(r) = s.strip_prefix('!') {
        return Ok(PortExpr::Not(Box::new(parse_port(r, vars, depth + 1)?)));
    }
    if s == "any" {
        return Ok(PortExpr::Any);
    }
    if let Some(v) = s.strip_prefix('$') {
        let val = resolve(v, &vars.port, depth)?;
        return parse_port(val, vars, depth + 1);
    }
    if let Some(inner) = s.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        let items = group_items(inner)?
            .into_iter()
            .map(|i| parse_port(i, vars, depth + 1))
            .collect::<R<Vec<_>>>()?;
        return Ok(PortExpr::List(items));
    }
    let num = |x: &str| -> R<u16> {
        x.trim()
            .parse::<u16>()
            .or_else(|_| syn(format!("bad port '{s}'")))
    };
    if let Some((a, b)) = s.split_once(':') {
        let lo = if a.trim().is_empty() { 0 } else { num(a)? };
        let hi = if b.trim().is_empty() { 65535 } else { num(b)? };
        if lo > hi {
            return syn(format!("port range '{s}' is reversed"));
        }
        return Ok(PortExpr::Range(lo, hi));
    }
    let p = num(s)?;
    Ok(PortExpr::Range(p, p))
}

/// Unquotes a `"..."` value, resolving `\"`, `\\`, `\;` and `\:`.
fn unquote(v: &str) -> R<String> {
    let v = v.trim();
    let Some(inner) = v.strip_prefix('"').and_then(|x| x.strip_suffix('"')) else {
        return syn(format!("expected a quoted string, got {v}"));
    };
    let mut out = String::with_capacity(inner.len());
    let mut it = inner.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some(n) => out.push(n),
                None => return syn("dangling '\\' in string"),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// Parses a content string: text with `|hex|` runs and escapes.
pub(crate) fn content_bytes(v: &str) -> R<Vec<u8>> {
    let v = v.trim();
    let Some(inner) = v.strip_prefix('"').and_then(|x| x.strip_suffix('"')) else {
        return syn(format!("content must be quoted: {v}"));
    };
    let b = inner.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let mut hex = false;
    let mut nib: Option<u8> = None;
    while i < b.len() {
        let c = b[i];
        if hex {
            match c {
                b'|' => {
                    if nib.is_some() {
                        return syn("odd number of hex digits in content");
                    }
                    hex = false;
                }
                b' ' | b'\t' => {
                    if nib.is_some() {
                        return syn("hex digit pair split by a space in content");
                    }
                }
                _ => {
                    let d = match c {
                        b'0'..=b'9' => c - b'0',
                        b'a'..=b'f' => c - b'a' + 10,
                        b'A'..=b'F' => c - b'A' + 10,
                        _ => return syn(format!("bad hex digit '{}' in content", c as char)),
                    };
                    nib = match nib {
                        None => Some(d),
                        Some(h) => {
                            out.push(h << 4 | d);
                            None
                        }
                    };
                }
            }
        } else {
            match c {
                b'|' => hex = true,
                b'\\' => {
                    i += 1;
                    match b.get(i) {
                        Some(&e @ (b'"' | b'\\' | b';' | b':' | b'|')) => out.push(e),
                        Some(&e) => {
                            return syn(format!("unknown escape '\\{}' in content", e as char))
                        }
                        None => return syn("dangling '\\' in content"),
                    }
                }
                b'"' => return syn("unescaped '\"' inside content"),
                b';' => return syn("unescaped ';' inside content"),
                _ => out.push(c),
            }
        }
        i += 1;
    }
    if hex {
        return syn("unterminated |hex| run in content");
    }
    if out.is_empty() {
        return syn("empty content");
    }
    Ok(out)
}

fn parse_u64(v: &str) -> Option<u64> {
    let v = v.trim();
    if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else {
        v.parse().ok()
    }
}

/// `N`, `<N`, `>N`, `<=N`, `>=N`, `!N`, `N<>M`, `N-M` (inclusive range, as vlan/itype write it).
pub(crate) fn parse_cmp(v: &str, kw: &str) -> R<Cmp> {
    let v = v.trim();
    let num = |x: &str| -> R<u64> {
        parse_u64(x).map_or_else(|| syn(format!("bad value '{v}' for {kw}")), Ok)
    };
    Ok(if let Some((a, b)) = v.split_once("<>") {
        let (a, b) = (num(a)?, num(b)?);
        if a >= b {
            return syn(format!("bad range '{v}' for {kw}"));
        }
        Cmp::Between(a, b)
    } else if let Some(x) = v.strip_prefix("<=") {
        Cmp::Le(num(x)?)
    } else if let Some(x) = v.strip_prefix(">=") {
        Cmp::Ge(num(x)?)
    } else if let Some(x) = v.strip_prefix('<') {
        Cmp::Lt(num(x)?)
    } else if let Some(x) = v.strip_prefix('>') {
        Cmp::Gt(num(x)?)
    } else if let Some(x) = v.strip_prefix('!') {
        Cmp::Ne(num(x)?)
    } else if let Some(x) = v.strip_prefix('=') {
        Cmp::Eq(num(x)?)
    } else {
        Cmp::Eq(num(v)?)
    })
}

struct SigB {
    sig: Sig,
    /// The sticky buffer (index into lists), if one is active.
    cur: Option<usize>,
    /// Last content: (list, step).
    last: Option<(usize, usize)>,
    have_sid: bool,
    /// The list a `base64_decode` was added to, until `base64_data`.
    b64: Option<usize>,
    /// `base64_data` was seen.
    b64_open: bool,
}

/// Keywords that only describe the rule.
const META: &[&str] = &["reference", "rawbytes", "prefilter", "requires"];

fn sticky(name: &str) -> Option<Buf> {
    Some(match name {
        "pkt_data" => Buf::Payload,
        "dns.query" | "dns_query" => Buf::DnsQuery,
        "tls.sni" | "tls_sni" => Buf::TlsSni,
        "tls.alpn" => Buf::TlsAlpn,
        "ja3.hash" | "ja3_hash" => Buf::Ja3Hash,
        "ja3.string" | "ja3_string" => Buf::Ja3String,
        "ja4.hash" => Buf::Ja4Hash,
        "ja3s.hash" | "ja3s_hash" => Buf::Ja3sHash,
        "ja3s.string" | "ja3s_string" => Buf::Ja3sString,
        "tls.cert_subject" | "tls_cert_subject" => Buf::TlsCertSubject,
        "tls.cert_issuer" | "tls_cert_issuer" => Buf::TlsCertIssuer,
        "tls.cert_serial" | "tls_cert_serial" => Buf::TlsCertSerial,
        "tls.cert_fingerprint" | "tls_cert_fingerprint" => Buf::TlsCertFingerprint,
        "tls.certs" => Buf::TlsCerts,
        "tls.subjectaltname" => Buf::TlsSubjectAltName,
        "quic.sni" => Buf::QuicSni,
        "quic.version" => Buf::QuicVersion,
        "quic.cyu.hash" => Buf::QuicCyuHash,
        "quic.cyu.string" => Buf::QuicCyuString,
        "quic.ua" => Buf::QuicUa,
        "http.uri" => Buf::HttpUri,
        "http.uri.raw" => Buf::HttpUriRaw,
        "http.method" => Buf::HttpMethod,
        "http.host" => Buf::HttpHost,
        "http.host.raw" => Buf::HttpHostRaw,
        "http.user_agent" => Buf::HttpUserAgent,
        "http.referer" => Buf::HttpReferer,
        "http.accept" => Buf::HttpAccept,
        "http.accept_enc" => Buf::HttpAcceptEnc,
        "http.accept_lang" => Buf::HttpAcceptLang,
        "http.request_line" | "http_request_line" => Buf::HttpRequestLine,
        "http.request_body" => Buf::HttpRequestBody,
        "http.cookie" => Buf::HttpCookie,
        "http.header" => Buf::HttpHeader,
        "http.header.raw" => Buf::HttpHeaderRaw,
        "http.header_names" => Buf::HttpHeaderNames,
        "http.content_type" | "http_content_type" => Buf::HttpContentType,
        "http.content_len" => Buf::HttpContentLen,
        "http.connection" => Buf::HttpConnection,
        "http.start" => Buf::HttpStart,
        "http.protocol" => Buf::HttpProtocol,
        "file.data" | "file_data" => Buf::FileData,
        "http.stat_code" => Buf::HttpStatCode,
        "http.stat_msg" => Buf::HttpStatMsg,
        "http.response_line" | "http_response_line" => Buf::HttpResponseLine,
        "http.response_body" => Buf::HttpResponseBody,
        "http.server" => Buf::HttpServer,
        "http.location" => Buf::HttpLocation,
        _ => return None,
    })
}

/// Legacy content modifiers: they move the preceding content into a buffer.
fn modifier(name: &str) -> Option<Buf> {
    Some(match name {
        "http_uri" => Buf::HttpUri,
        "http_raw_uri" => Buf::HttpUriRaw,
        "http_method" => Buf::HttpMethod,
        "http_header" => Buf::HttpHeader,
        "http_raw_header" => Buf::HttpHeaderRaw,
        "http_cookie" => Buf::HttpCookie,
        "http_client_body" => Buf::HttpRequestBody,
        "http_server_body" => Buf::HttpResponseBody,
        "http_stat_code" => Buf::HttpStatCode,
        "http_stat_msg" => Buf::HttpStatMsg,
        "http_user_agent" => Buf::HttpUserAgent,
        "http_host" => Buf::HttpHost,
        "http_raw_host" => Buf::HttpHostRaw,
        _ => return None,
    })
}

fn threshold_opts(v: &str, kw: &str, filter: bool) -> R<Threshold> {
    let (mut ty, mut track, mut count, mut seconds) = (None, None, None, None);
    for part in v.split(',') {
        let part = part.trim();
        let (k, x) = part
            .split_once(char::is_whitespace)
            .map(|(a, b)| (a.trim(), b.trim()))
            .unwrap_or((part, ""));
        match k {
            "type" => ty = Some(x),
            "track" => {
                track = Some(match x {
                    "by_src" => Track::Src,
                    "by_dst" => Track::Dst,
                    "by_both" => Track::Both,
                    "by_rule" => Track::Rule,
                    "by_flow" => return skip(kw, "track by_flow is not supported"),
                    _ => return syn(format!("{kw}: bad track '{x}'")),
                })
            }
            "count" => count = x.parse::<u32>().ok(),
            "seconds" => seconds = x.parse::<u32>().ok(),
            "unique_on" => return skip(kw, "unique_on is not supported"),
            _ => return syn(format!("{kw}: unknown part '{part}'")),
        }
    }
    let (Some(track), Some(count), Some(seconds)) = (track, count, seconds) else {
        return syn(format!("{kw} needs track, count and seconds"));
    };
    if filter {
        return Ok(Threshold::Filter {
            track,
            count,
            seconds,
        });
    }
    Ok(match ty {
        Some("limit") => Threshold::Limit {
            track,
            count,
            seconds,
        },
        Some("threshold") => Threshold::Threshold {
            track,
            count,
            seconds,
        },
        Some("both") => Threshold::Both {
            track,
            count,
            seconds,
        },
        Some("backoff") => return skip(kw, "type backoff is not supported"),
        _ => return syn(format!("{kw} needs type limit, threshold or both")),
    })
}

fn flag_bits(s: &str) -> R<u8> {
    let mut m = 0u8;
    for c in s.chars() {
        m |= match c {
            'F' | 'f' => 0x01,
            'S' | 's' => 0x02,
            'R' | 'r' => 0x04,
            'P' | 'p' => 0x08,
            'A' | 'a' => 0x10,
            'U' | 'u' => 0x20,
            'E' | 'e' | '2' => 0x40,
            'C' | 'c' | '1' => 0x80,
            '0' => 0,
            _ => return syn(format!("bad TCP flag '{c}'")),
        };
    }
    Ok(m)
}

fn num_fmt(words: &[&str], kw: &str) -> R<NumFmt> {
    let mut fmt = NumFmt::Big;
    let mut string = false;
    for w in words {
        match *w {
            "big" => fmt = NumFmt::Big,
            "little" => fmt = NumFmt::Little,
            "string" => string = true,
            "dec" if string => fmt = NumFmt::Str(10),
            "hex" if string => fmt = NumFmt::Str(16),
            "oct" if string => fmt = NumFmt::Str(8),
            "dce" => return skip(kw, "dce byte order needs DCERPC parsing"),
            _ => {}
        }
    }
    if string && !matches!(fmt, NumFmt::Str(_)) {
        return syn(format!("{kw}: 'string' needs dec, hex or oct"));
    }
    Ok(fmt)
}

fn int_arg(x: &str, kw: &str) -> R<i32> {
    let x = x.trim();
    if x.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        return skip(kw, "byte_extract variables are not supported");
    }
    match x.parse::<i64>() {
        Ok(v) if v.unsigned_abs() <= 1 << 20 => Ok(v as i32),
        _ => syn(format!("bad number '{x}' for {kw}")),
    }
}

fn bitmask(words: &[&str], kw: &str) -> R<Option<u64>> {
    for w in words {
        if let Some(m) = w.strip_prefix("bitmask") {
            return parse_u64(m)
                .map(Some)
                .ok_or(())
                .or_else(|_| syn(format!("{kw}: bad bitmask")));
        }
    }
    Ok(None)
}

impl SigB {
    fn list(&mut self, buf: Buf) -> usize {
        // A sticky buffer named again continues its list only if it is the current one.
        if let Some(c) = self.cur {
            if self.sig.lists[c].buf == buf {
                return c;
            }
        }
        self.sig.lists.push(List {
            buf,
            transforms: Vec::new(),
            steps: Vec::new(),
        });
        self.sig.lists.len() - 1
    }

    /// The list content goes to now: the sticky buffer, or the payload list.
    fn target(&mut self) -> usize {
        match self.cur {
            Some(c) => c,
            None => self.list_for_modifier(Buf::Payload),
        }
    }

    fn push(&mut self, list: usize, step: Step) {
        let is_content = matches!(step, Step::Content(_));
        self.sig.lists[list].steps.push(step);
        if is_content {
            self.last = Some((list, self.sig.lists[list].steps.len() - 1));
        }
    }

    fn last_content(&mut self, kw: &str) -> R<&mut Content> {
        match self.last {
            Some((l, s)) => match &mut self.sig.lists[l].steps[s] {
                Step::Content(c) => Ok(c),
                _ => syn(format!("{kw} must follow a content")),
            },
            None => syn(format!("{kw} without a preceding content")),
        }
    }

    fn option(
        &mut self,
        key: &str,
        val: Option<&str>,
        classes: &HashMap<String, (String, u8)>,
        names: &mut Names,
        regexes: &mut Vec<regex::bytes::Regex>,
    ) -> R<()> {
        let need = |kw: &str| -> R<&str> {
            match val {
                Some(v) if !v.is_empty() => Ok(v),
                _ => syn(format!("{kw} needs a value")),
            }
        };
        if let Some(buf) = sticky(key) {
            if val.is_some() {
                return syn(format!("{key} takes no value"));
            }
            let l = self.list(buf);
            self.cur = Some(l);
            return Ok(());
        }
        const FLAGS: &[&str] = &[
            "nocase",
            "startswith",
            "endswith",
            "dotprefix",
            "to_lowercase",
            "strip_whitespace",
            "noalert",
            "base64_data",
            "rawbytes",
        ];
        if val.is_some() && FLAGS.contains(&key) {
            return syn(format!("{key} takes no value"));
        }
        if let Some(buf) = modifier(key) {
            let Some((l, s)) = self.last else {
                return syn(format!("{key} without a preceding content"));
            };
            if self.cur.is_some() {
                return syn(format!("{key} after a sticky buffer"));
            }
            // The emptied payload list, if any, is dropped by `finish`.
            let step = self.sig.lists[l].steps.remove(s);
            let to = self.list_for_modifier(buf);
            self.sig.lists[to].steps.push(step);
            self.last = Some((to, self.sig.lists[to].steps.len() - 1));
            return Ok(());
        }
        match key {
            "msg" => self.sig.msg = unquote(need(key)?)?,
            "sid" => {
                self.sig.sid = need(key)?
                    .parse()
                    .or_else(|_| syn("sid must be a number"))?;
                self.have_sid = true;
            }
            "rev" => self.sig.rev = need(key)?.parse().or_else(|_| syn("bad rev"))?,
            "gid" => self.sig.gid = need(key)?.parse().or_else(|_| syn("bad gid"))?,
            "classtype" => {
                let c = need(key)?;
                if !classes.contains_key(c) {
                    return syn(format!("unknown classtype '{c}'"));
                }
                self.sig.classtype = Some(c.to_owned());
            }
            "priority" => {
                self.sig.priority = match need(key)?.parse::<u8>() {
                    Ok(p) if (1..=255).contains(&p) => p,
                    _ => return syn("priority must be 1-255"),
                }
            }
            "metadata" => self
                .sig
                .metadata
                .extend(need(key)?.split(',').map(|s| s.trim().to_owned())),
            "target" => {
                self.sig.target = Some(match need(key)? {
                    "src_ip" => true,
                    "dest_ip" => false,
                    v => return syn(format!("target must be src_ip or dest_ip, not {v}")),
                })
            }
            k if META.contains(&k) => {}
            "content" | "uricontent" => {
                let v = need(key)?;
                let (negated, v) = match v.strip_prefix('!') {
                    Some(r) => (true, r),
                    None => (false, v),
                };
                let pat = content_bytes(v)?;
                let c = Content {
                    pat,
                    nocase: false,
                    negated,
                    offset: 0,
                    depth: None,
                    distance: None,
                    within: None,
                    endswith: false,
                    fast_pattern: false,
                };
                let l = if key == "uricontent" {
                    if self.cur.is_some() {
                        return syn("uricontent after a sticky buffer");
                    }
                    self.list_for_modifier(Buf::HttpUri)
                } else {
                    self.target()
                };
                self.push(l, Step::Content(c));
            }
            "nocase" => {
                let c = self.last_content(key)?;
                c.nocase = true;
                c.pat.make_ascii_lowercase();
            }
            "offset" | "depth" | "distance" | "within" => {
                let v = int_arg(need(key)?, key)?;
                let c = self.last_content(key)?;
                match key {
                    "offset" if v >= 0 => c.offset = v as u32,
                    "depth" if v > 0 => c.depth = Some(v as u32),
                    "distance" => c.distance = Some(v),
                    "within" if v > 0 => c.within = Some(v as u32),
                    _ => return syn(format!("bad value {v} for {key}")),
                }
                if key == "within" && (v as usize) < c.pat.len() {
                    return syn("within is shorter than the content");
                }
                if key == "depth" && (v as usize) < c.pat.len() {
                    return syn("depth is shorter than the content");
                }
            }
            "startswith" => {
                let c = self.last_content(key)?;
                if c.relative() {
                    return syn("startswith with distance/within");
                }
                c.offset = 0;
                c.depth = Some(c.pat.len() as u32);
            }
            "endswith" => self.last_content(key)?.endswith = true,
            "fast_pattern" => {
                let c = self.last_content(key)?;
                if c.negated {
                    // Suricata allows it only with a few conditions; nothing to prefilter.
                    return Ok(());
                }
                c.fast_pattern = true;
                if let Some(v) = val {
                    if v != "only" {
                        let Some((o, l)) = v.split_once(',') else {
                            return syn("fast_pattern takes 'only' or 'offset,length'");
                        };
                        let (o, l): (usize, usize) = match (o.trim().parse(), l.trim().parse()) {
                            (Ok(o), Ok(l)) => (o, l),
                            _ => return syn("bad fast_pattern offset,length"),
                        };
                        if o + l > c.pat.len() || l == 0 {
                            return syn("fast_pattern range outside the content");
                        }
                        // The set uses the whole content as its prefilter pattern (a superset
                        // of the chosen slice's matches would be no stronger).
                    }
                }
            }
            "pcre" => {
                let v = need(key)?;
                let (negated, v) = match v.strip_prefix('!') {
                    Some(r) => (true, r.trim_start()),
                    None => (false, v),
                };
                let Some(inner) = v.strip_prefix('"').and_then(|x| x.strip_suffix('"')) else {
                    return syn("pcre must be quoted");
                };
                let (re, flags) = pcre::compile(inner)?;
                let PcreFlags { relative, buf } = flags;
                let l = match buf {
                    Some(b) => match self.cur {
                        Some(c) if self.sig.lists[c].buf == b => c,
                        _ => self.list_for_modifier(b),
                    },
                    None => self.target(),
                };
                regexes.push(re);
                self.push(
                    l,
                    Step::Pcre {
                        re: regexes.len() - 1,
                        relative,
                        negated,
                    },
                );
            }
            "isdataat" => {
                let v = need(key)?;
                let (negated, v) = match v.strip_prefix('!') {
                    Some(r) => (true, r),
                    None => (false, v),
                };
                let mut parts = v.split(',').map(str::trim);
                let n = int_arg(parts.next().unwrap_or(""), key)?;
                let mut relative = false;
                for p in parts {
                    match p {
                        "relative" => relative = true,
                        "rawbytes" => {}
                        _ => return syn(format!("isdataat: unknown '{p}'")),
                    }
                }
                if n < 0 {
                    return syn("isdataat must not be negative");
                }
                let l = self.target();
                self.push(
                    l,
                    Step::IsDataAt {
                        n: n as u32,
                        relative,
                        negated,
                    },
                );
            }
            "bsize" => {
                let cmp = parse_cmp(need(key)?, key)?;
                let Some(c) = self.cur else {
                    return syn("bsize needs a sticky buffer");
                };
                self.sig.lists[c].steps.push(Step::Bsize(cmp));
            }
            "byte_test" => {
                let v = need(key)?;
                let w: Vec<&str> = v.split(',').map(str::trim).collect();
                if w.len() < 4 {
                    return syn("byte_test needs bytes, operator, value, offset");
                }
                let bytes = w[0]
                    .parse::<u8>()
                    .or_else(|_| syn("byte_test: bad count"))?;
                let fmt = num_fmt(&w[4..], key)?;
                // 0 with `string`: the digits up to the end of the buffer.
                if bytes > 10 || bytes == 0 && !matches!(fmt, NumFmt::Str(_)) {
                    return syn("byte_test reads 1 to 10 bytes (0 only with string)");
                }
                if matches!(fmt, NumFmt::Big | NumFmt::Little) && bytes > 8 {
                    return syn("byte_test reads at most 8 binary bytes");
                }
                // `!=` is `=` negated, like any other `!op`.
                let (negated, op) = match w[1].strip_prefix('!') {
                    Some(o) => (true, o),
                    None => (false, w[1]),
                };
                if w[2].starts_with(|c: char| c.is_ascii_alphabetic()) {
                    return skip(key, "byte_extract variables are not supported");
                }
                let Some(n) = parse_u64(w[2]) else {
                    return syn("byte_test: bad value");
                };
                let op = match op {
                    "<" => ByteOp::Lt(n),
                    ">" => ByteOp::Gt(n),
                    "<=" => ByteOp::Le(n),
                    ">=" => ByteOp::Ge(n),
                    "=" => ByteOp::Eq(n),
                    "&" => ByteOp::And(n),
                    "^" => ByteOp::Xor(n),
                    o => return syn(format!("byte_test: bad operator '{o}'")),
                };
                let offset = int_arg(w[3], key)?;
                let relative = w[4..].contains(&"relative");
                let bm = bitmask(&w[4..], key)?;
                let l = self.target();
                self.push(
                    l,
                    Step::ByteTest {
                        bytes,
                        op,
                        negated,
                        offset,
                        relative,
                        fmt,
                        bitmask: bm,
                    },
                );
            }
            "byte_jump" => {
                let v = need(key)?;
                let w: Vec<&str> = v.split(',').map(str::trim).collect();
                if w.len() < 2 {
                    return syn("byte_jump needs bytes and offset");
                }
                let bytes = w[0]
                    .parse::<u8>()
                    .or_else(|_| syn("byte_jump: bad count"))?;
                let fmt = num_fmt(&w[2..], key)?;
                if bytes == 0
                    || bytes > 10
                    || matches!(fmt, NumFmt::Big | NumFmt::Little) && bytes > 8
                {
                    return syn("byte_jump: bad byte count");
                }
                let offset = int_arg(w[1], key)?;
                let (mut multiplier, mut post_offset) = (1u32, 0i32);
                let mut flags = (false, false, false, false);
                for x in &w[2..] {
                    if let Some(m) = x.strip_prefix("multiplier") {
                        multiplier = m
                            .trim()
                            .parse()
                            .or_else(|_| syn("byte_jump: bad multiplier"))?;
                    } else if let Some(p) = x.strip_prefix("post_offset") {
                        post_offset = int_arg(p, key)?;
                    } else {
                        match *x {
                            "relative" => flags.0 = true,
                            "align" => flags.1 = true,
                            "from_beginning" => flags.2 = true,
                            "from_end" => flags.3 = true,
                            _ => {}
                        }
                    }
                }
                let bm = bitmask(&w[2..], key)?;
                let l = self.target();
                self.push(
                    l,
                    Step::ByteJump {
                        bytes,
                        offset,
                        relative: flags.0,
                        fmt,
                        multiplier,
                        align: flags.1,
                        from_beginning: flags.2,
                        from_end: flags.3,
                        post_offset,
                        bitmask: bm,
                    },
                );
            }
            "dataset" => {
                let v = need(key)?;
                let parts: Vec<&str> = v.split(',').map(str::trim).collect();
                let [op, name, opts @ ..] = &parts[..] else {
                    return syn("dataset needs an operation and a name");
                };
                let op = match *op {
                    "isset" => DatasetOp::IsSet,
                    "isnotset" => DatasetOp::IsNotSet,
                    "set" => DatasetOp::Set,
                    "unset" => return skip(key, "dataset unset is not supported"),
                    o => return syn(format!("dataset: unknown operation '{o}'")),
                };
                let (mut ty, mut load, mut format, mut vkey, mut subdomain) =
                    (None, None, None, None, false);
                for o in opts {
                    let (k, x) = o
                        .split_once(char::is_whitespace)
                        .map(|(a, b)| (a, b.trim()))
                        .unwrap_or((o, ""));
                    match k {
                        "type" => ty = Some(x),
                        "load" => load = Some(x),
                        "format" => format = Some(x),
                        "value_key" => vkey = Some(x),
                        "match" if x == "subdomain" => subdomain = true,
                        "context_key" | "memcap" | "hashsize" => {}
                        "save" | "state" => {
                            return skip(key, "dataset save/state (writing files) is not supported")
                        }
                        _ => return syn(format!("dataset: unknown option '{o}'")),
                    }
                }
                if ty != Some("string") {
                    return skip(
                        key,
                        format!(
                            "dataset type {} is not supported (string is)",
                            ty.unwrap_or("-")
                        ),
                    );
                }
                let path = load.map(|f| {
                    let p = std::path::Path::new(f);
                    if p.is_absolute() {
                        p.to_path_buf()
                    } else {
                        std::path::Path::new(&*self.sig.file)
                            .parent()
                            .unwrap_or(std::path::Path::new("."))
                            .join(p)
                    }
                });
                let (mut values, mut intel) = (Default::default(), Vec::new());
                match (format, &path) {
                    // Palisade's extension: a dataset backed by an intel list (domains with
                    // their subdomains, hosts files, AdBlock lines, addresses and CIDRs).
                    (Some("intel"), Some(p)) => {
                        let mut b = crate::IntelBuilder::new();
                        b.add_file(p, crate::Action::Block)
                            .or_else(|e| syn(format!("dataset: {e}")))?;
                        // The rule is what gets refused here: a list with a bad line is an
                        // error of the rule, as it was before lists skipped bad lines.
                        if let Some(e) = b.problems.first() {
                            let n = crate::bad_lines(b.lists());
                            return syn(format!("dataset: {e} ({n} bad lines)"));
                        }
                        intel.push(b.build());
                    }
                    (Some("intel"), None) => return syn("dataset: format intel needs load"),
                    (None | Some("csv"), Some(p)) => {
                        values = load_dataset(p, None).or_else(|e| syn(format!("dataset: {e}")))?
                    }
                    (Some("ndjson"), Some(p)) => {
                        let Some(k) = vkey else {
                            return syn("dataset: ndjson needs value_key");
                        };
                        values =
                            load_dataset(p, Some(k)).or_else(|e| syn(format!("dataset: {e}")))?
                    }
                    (None | Some("csv" | "ndjson"), None) => {}
                    (Some(f), _) => return syn(format!("dataset: unknown format '{f}'")),
                }
                let id = match names.datasets.iter().position(|(n, _, _)| n == name) {
                    Some(i) => {
                        names.datasets[i].1.extend(values);
                        names.datasets[i].2.extend(intel);
                        i
                    }
                    None => {
                        names.datasets.push((name.to_string(), values, intel));
                        names.datasets.len() - 1
                    }
                };
                let l = self.target();
                self.push(
                    l,
                    Step::Dataset {
                        id: id as u32,
                        op,
                        subdomain,
                    },
                );
            }
            "base64_decode" => {
                let (mut bytes, mut offset, mut relative) = (None, 0u32, false);
                for part in val.unwrap_or("").split(',').map(str::trim) {
                    if part.is_empty() {
                        continue;
                    }
                    let (k, v) = part
                        .split_once(char::is_whitespace)
                        .map(|(a, b)| (a, b.trim()))
                        .unwrap_or((part, ""));
                    let n = || -> R<u32> {
                        v.parse()
                            .or_else(|_| syn(format!("base64_decode: bad {k}")))
                    };
                    match k {
                        "bytes" => bytes = Some(n()?),
                        "offset" => offset = n()?,
                        "relative" => relative = true,
                        _ => return syn(format!("base64_decode: unknown '{part}'")),
                    }
                }
                let l = self.target();
                self.sig.lists[l].steps.push(Step::Base64 {
                    bytes,
                    offset,
                    relative,
                });
                self.b64 = Some(l);
            }
            "base64_data" => {
                let Some(l) = self.b64.take() else {
                    return syn("base64_data without base64_decode");
                };
                // Contents from here on go to the same list, after the decode step.
                self.cur = Some(l);
                self.b64_open = true;
            }
            "dotprefix" | "to_lowercase" | "strip_whitespace" => {
                let Some(c) = self.cur else {
                    return syn(format!("{key} needs a sticky buffer"));
                };
                let c = if self.sig.lists[c].steps.is_empty() {
                    c
                } else {
                    // After contents: the transform starts a new inspection of the buffer.
                    let l = List {
                        buf: self.sig.lists[c].buf,
                        transforms: self.sig.lists[c].transforms.clone(),
                        steps: Vec::new(),
                    };
                    self.sig.lists.push(l);
                    self.cur = Some(self.sig.lists.len() - 1);
                    self.sig.lists.len() - 1
                };
                self.sig.lists[c].transforms.push(match key {
                    "dotprefix" => Transform::DotPrefix,
                    "to_lowercase" => Transform::ToLower,
                    _ => Transform::StripWhitespace,
                });
            }
            "flow" => {
                for p in need(key)?.split(',').map(str::trim) {
                    let f = &mut self.sig.flow;
                    match p {
                        "to_server" | "from_client" => f.to_server = true,
                        "to_client" | "from_server" => f.to_client = true,
                        "established" => f.established = true,
                        "not_established" => f.not_established = true,
                        "stateless" => {}
                        "only_stream" => f.only_stream = true,
                        "no_stream" => f.no_stream = true,
                        "only_frag" | "no_frag" => {
                            return skip(key, format!("flow:{p} is not supported"))
                        }
                        _ => return syn(format!("unknown flow option '{p}'")),
                    }
                }
                if self.sig.flow.to_server && self.sig.flow.to_client {
                    return syn("flow: to_server and to_client together");
                }
            }
            "flowbits" => {
                let v = need(key)?;
                let (op, rest) = match v.split_once(',') {
                    Some((a, b)) => (a.trim(), b.trim()),
                    None => (v.trim(), ""),
                };
                if op == "noalert" {
                    self.sig.noalert = true;
                    return Ok(());
                }
                if rest.is_empty() || rest.contains('&') {
                    return if rest.is_empty() {
                        syn(format!("flowbits:{op} needs a name"))
                    } else {
                        skip(key, "'&' combinations are not supported")
                    };
                }
                let ids: Vec<u32> = rest.split('|').map(|n| names.id(n.trim())).collect();
                self.sig.flowbits.push(match op {
                    "set" => Flowbit::Set(ids),
                    "unset" => Flowbit::Unset(ids),
                    "toggle" => Flowbit::Toggle(ids),
                    "isset" => Flowbit::IsSet(ids),
                    "isnotset" => Flowbit::IsNotSet(ids),
                    _ => return syn(format!("unknown flowbits operation '{op}'")),
                });
            }
            "flowint" => {
                let v = need(key)?;
                let parts: Vec<&str> = v.split(',').map(str::trim).collect();
                let (name, op, target) = match parts[..] {
                    [n, o] => (n, o, None),
                    [n, o, t] => (n, o, Some(t)),
                    _ => return syn("flowint: name, operation[, value]"),
                };
                if name.is_empty() {
                    return syn("flowint needs a name");
                }
                // Own namespace: flowint names are not flowbits.
                let id = names.id(&format!("flowint\u{0}{name}"));
                let arg = |names: &mut Names| -> R<IntArg> {
                    let Some(t) = target.filter(|t| !t.is_empty()) else {
                        return syn(format!("flowint:{name},{op} needs a value"));
                    };
                    if t.as_bytes()[0].is_ascii_digit() {
                        t.parse::<u32>().map(IntArg::Value).or_else(|_| {
                            syn(format!("flowint: value '{t}' is not a 32-bit number"))
                        })
                    } else {
                        Ok(IntArg::Var(names.id(&format!("flowint\u{0}{t}"))))
                    }
                };
                let cmp = |c: IntCmp, names: &mut Names| -> R<Flowint> {
                    Ok(Flowint::Cmp(id, c, arg(names)?))
                };
                let f = match op {
                    "=" => Flowint::Set(id, arg(names)?),
                    "+" => Flowint::Add(id, arg(names)?),
                    "-" => Flowint::Sub(id, arg(names)?),
                    "==" => cmp(IntCmp::Eq, names)?,
                    "!=" => cmp(IntCmp::Ne, names)?,
                    "<" => cmp(IntCmp::Lt, names)?,
                    "<=" => cmp(IntCmp::Le, names)?,
                    ">" => cmp(IntCmp::Gt, names)?,
                    ">=" => cmp(IntCmp::Ge, names)?,
                    "isset" | "notset" | "isnotset" if target.is_some() => {
                        return syn(format!("flowint:{name},{op} takes no value"))
                    }
                    "isset" => Flowint::IsSet(id),
                    "notset" | "isnotset" => Flowint::NotSet(id),
                    _ => return syn(format!("unknown flowint operation '{op}'")),
                };
                self.sig.flowints.push(f);
            }
            "xbits" => {
                let v = need(key)?;
                let parts: Vec<&str> = v.split(',').map(str::trim).collect();
                let [op, name, rest @ ..] = &parts[..] else {
                    return syn("xbits needs an operation and a name");
                };
                let (mut track, mut expire) = (None, 30u32);
                for r in rest {
                    let (k, x) = r
                        .split_once(char::is_whitespace)
                        .map(|(a, b)| (a, b.trim()))
                        .unwrap_or((r, ""));
                    match k {
                        "track" => {
                            track = Some(match x {
                                "ip_src" => Track::Src,
                                "ip_dst" => Track::Dst,
                                "ip_pair" => Track::Both,
                                "tx" => return skip(key, "xbits track tx is not supported"),
                                _ => return syn(format!("xbits: bad track '{x}'")),
                            })
                        }
                        "expire" => {
                            expire = x
                                .parse()
                                .or_else(|_| syn(format!("xbits: bad expire '{x}'")))?
                        }
                        _ => return syn(format!("xbits: unknown option '{r}'")),
                    }
                }
                let Some(track) = track else {
                    return syn("xbits needs track");
                };
                // Own namespace: Suricata keeps xbits apart from flowbits.
                let ids = vec![names.id(&format!("xbits\u{0}{name}"))];
                let op = match *op {
                    "set" => Flowbit::Set(ids),
                    "unset" => Flowbit::Unset(ids),
                    "toggle" => Flowbit::Toggle(ids),
                    "isset" => Flowbit::IsSet(ids),
                    "isnotset" => Flowbit::IsNotSet(ids),
                    o => return syn(format!("unknown xbits operation '{o}'")),
                };
                self.sig.xbits.push(Xbit { op, track, expire });
            }
            "noalert" => self.sig.noalert = true,
            "alert" if self.sig.action == SigAction::Pass => self.sig.pass_alert = true,
            "threshold" => {
                if self.sig.threshold.is_some() {
                    return skip(key, "threshold together with detection_filter");
                }
                self.sig.threshold = Some(threshold_opts(need(key)?, key, false)?)
            }
            "detection_filter" => {
                if self.sig.threshold.is_some() {
                    return skip(key, "threshold together with detection_filter");
                }
                self.sig.threshold = Some(threshold_opts(need(key)?, key, true)?)
            }
            "dsize" => self.sig.dsize = Some(parse_cmp(need(key)?, key)?),
            "urilen" => {
                let v = need(key)?;
                let (v, raw) = match v.split_once(',') {
                    Some((a, b)) => (a, b.trim()),
                    None => (v, "norm"),
                };
                if raw == "raw" {
                    return skip(key, "urilen on the raw URI is not supported");
                }
                self.sig.urilen = Some(parse_cmp(v, key)?);
            }
            "flags" | "tcp.flags" => {
                let v = need(key)?;
                let (f, ignore) = match v.split_once(',') {
                    Some((a, b)) => (a.trim(), flag_bits(b.trim())?),
                    None => (v.trim(), 0),
                };
                let (mode, f) = if let Some(r) = f.strip_prefix('+').or(f.strip_suffix('+')) {
                    (FlagMode::All, r)
                } else if let Some(r) = f.strip_prefix('*').or(f.strip_suffix('*')) {
                    (FlagMode::Any, r)
                } else if let Some(r) = f.strip_prefix('!').or(f.strip_suffix('!')) {
                    (FlagMode::Not, r)
                } else {
                    (FlagMode::Exact, f)
                };
                self.sig.tcp_flags = Some((flag_bits(f)?, ignore, mode));
            }
            "vlan.layers" => self.sig.vlan_layers = Some(parse_cmp(need(key)?, key)?),
            "stream_size" => {
                let v = need(key)?;
                let parts: Vec<&str> = v.split(',').map(str::trim).collect();
                let [side, op, n] = parts[..] else {
                    return syn("stream_size needs side, operator, number");
                };
                let side = match side {
                    "client" => 0,
                    "server" => 1,
                    "both" => 2,
                    "either" => 3,
                    _ => return syn(format!("stream_size: bad side '{side}'")),
                };
                let Some(n) = parse_u64(n) else {
                    return syn(format!("stream_size: bad number '{n}'"));
                };
                let cmp = match op {
                    "<" => Cmp::Lt(n),
                    ">" => Cmp::Gt(n),
                    "=" => Cmp::Eq(n),
                    "!=" => Cmp::Ne(n),
                    "<=" => Cmp::Le(n),
                    ">=" => Cmp::Ge(n),
                    _ => return syn(format!("stream_size: bad operator '{op}'")),
                };
                self.sig.stream_size = Some((side, cmp));
            }
            "vlan.id" => {
                let v = need(key)?;
                let (id, layer) = match v.split_once(',') {
                    Some((a, b)) => (a.trim(), Some(b.trim())),
                    None => (v, None),
                };
                let layer = match layer {
                    None => None,
                    Some("all") => Some(VLAN_ALL),
                    Some(l) => match l.parse::<i8>() {
                        Ok(n) if (-3..=2).contains(&n) => Some(n),
                        _ => return syn(format!("vlan.id: bad layer '{l}'")),
                    },
                };
                let cmp = match id.split_once('-') {
                    Some((a, b)) if !a.is_empty() => match (parse_u64(a), parse_u64(b)) {
                        (Some(a), Some(b)) if a <= b => Cmp::Range(a, b),
                        _ => return syn(format!("vlan.id: bad range '{id}'")),
                    },
                    _ => parse_cmp(id, key)?,
                };
                self.sig.vlan_ids.push((cmp, layer));
            }
            "decode-event" | "stream-event" | "app-layer-event" => {
                let v = need(key)?.trim();
                if v.starts_with('!') {
                    return skip(key, format!("{key}: negated events are not supported"));
                }
                let full = match key {
                    // Suricata's decoder events for fragments are named after the IP version.
                    "decode-event" => match v {
                        "ipv6.frag_overlap" => "defrag.ipv6_overlap".to_string(),
                        _ => format!("decoder.{v}"),
                    },
                    "stream-event" => format!("stream.{v}"),
                    _ => v.to_string(),
                };
                let Some(name) = EVENTS.iter().find(|e| **e == full) else {
                    return skip(
                        key,
                        format!("{key} {v}: Palisade does not detect this event"),
                    );
                };
                if self.sig.events.len() >= 8 {
                    return skip(key, "more than 8 events in one rule");
                }
                self.sig.events.push(name);
            }
            "itype" => self.sig.itype = Some(parse_cmp(need(key)?, key)?),
            "icode" => self.sig.icode = Some(parse_cmp(need(key)?, key)?),
            "ip_proto" => {
                let v = need(key)?;
                self.sig.ip_proto = Some(match v {
                    "tcp" | "TCP" => 6,
                    "udp" | "UDP" => 17,
                    "icmp" | "ICMP" => 1,
                    "ipv6-icmp" => 58,
                    "gre" | "GRE" => 47,
                    _ => v.parse().or_else(|_| {
                        skip(
                            key,
                            format!("ip_proto '{v}': only numbers and common names"),
                        )
                    })?,
                });
            }
            "tls.version" => {
                let v = need(key)?;
                self.sig.tls_version = Some(match v {
                    "1.0" => 0x0301,
                    "1.1" => 0x0302,
                    "1.2" => 0x0303,
                    "1.3" => 0x0304,
                    "3.0" | "ssl3" => 0x0300,
                    _ => parse_u64(v)
                        .and_then(|x| u16::try_from(x).ok())
                        .ok_or(())
                        .or_else(|_| syn("bad tls.version"))?,
                });
            }
            k if k.is_empty()
                || !k
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) =>
            {
                return syn(format!("'{k}' is not a keyword (a missing ';'?)"))
            }
            _ => return skip(key, unsupported_reason(key)),
        }
        Ok(())
    }

    fn list_for_modifier(&mut self, buf: Buf) -> usize {
        if let Some(i) = self
            .sig
            .lists
            .iter()
            .position(|l| l.buf == buf && l.transforms.is_empty())
        {
            return i;
        }
        self.sig.lists.push(List {
            buf,
            transforms: Vec::new(),
            steps: Vec::new(),
        });
        self.sig.lists.len() - 1
    }

    fn finish(mut self, classes: &HashMap<String, (String, u8)>) -> R<Sig> {
        if !self.have_sid {
            return syn("no sid");
        }
        if self.b64.is_some() {
            return skip("base64_decode", "base64_decode without base64_data");
        }
        let s = &mut self.sig;
        if s.priority == 0 {
            s.priority = s
                .classtype
                .as_ref()
                .and_then(|c| classes.get(c))
                .map_or(3, |c| c.1);
        }
        s.lists
            .retain(|l| !l.steps.is_empty() || !l.transforms.is_empty());
        for l in &s.lists {
            // A relative step at the start of a list is relative to the buffer start.
            if l.steps.is_empty() {
                return syn(format!("{} has no content", l.buf.name()));
            }
        }
        s.hook = hook_of(s)?;
        Ok(self.sig)
    }
}

/// Decides where a signature is evaluated.
fn hook_of(s: &Sig) -> R<Hook> {
    let detected_only = match s.proto {
        Proto::Smtp => Some("smtp"),
        Proto::Ftp => Some("ftp"),
        Proto::Ssh => Some("ssh"),
        Proto::Smb => Some("smb"),
        _ => None,
    };
    if let Some(p) = detected_only {
        if let Some(l) = s.lists.iter().find(|l| l.buf != Buf::Payload) {
            return skip(
                l.buf.name(),
                format!(
                    "{} in an {p} rule: Palisade detects {p} but does not parse it (raw content only)",
                    l.buf.name()
                ),
            );
        }
    }
    let mut hook: Option<Hook> = None;
    let mut side_req = false;
    let mut side_resp = false;
    for l in &s.lists {
        match l.buf.side() {
            Side::Request => side_req = true,
            Side::Response => side_resp = true,
            _ => {}
        }
        let Some(h) = l.buf.hook() else { continue };
        let h = if h == Hook::HttpRequest || h == Hook::HttpResponse {
            Hook::HttpRequest
        } else {
            h
        };
        let tls = |x: Hook| matches!(x, Hook::TlsClient | Hook::TlsServer | Hook::TlsCert);
        match hook {
            None => hook = Some(h),
            Some(x) if x == h => {}
            // The ClientHello is known when the server's hello and certificates are inspected.
            Some(x) if tls(x) && tls(h) => hook = Some(x.max(h)),
            Some(x) => {
                return skip(
                    l.buf.name(),
                    format!("buffers of two hooks ({x:?} and {h:?}) in one rule"),
                )
            }
        }
    }
    if let Some(h) = hook {
        if h == Hook::HttpRequest {
            let to_client = s.flow.to_client || side_resp;
            if to_client && s.flow.to_server {
                return syn("response buffers with flow:to_server");
            }
            return Ok(if to_client {
                Hook::HttpResponse
            } else if s.flow.to_server || side_req {
                Hook::HttpRequest
            } else {
                // Header-type buffers without a direction: requests (Suricata inspects both;
                // see Sig docs). The set registers these for both hooks.
                Hook::HttpRequest
            });
        }
        if s.urilen.is_some() {
            return skip("urilen", "urilen in a non-HTTP rule");
        }
        return Ok(h);
    }
    if s.urilen.is_some() {
        return Ok(if s.flow.to_client {
            Hook::HttpResponse
        } else {
            Hook::HttpRequest
        });
    }
    if s.tls_version.is_some() {
        return Ok(if s.flow.to_client {
            Hook::TlsServer
        } else {
            Hook::TlsClient
        });
    }
    let has_payload = s.lists.iter().any(|l| l.buf == Buf::Payload);
    let stream = match s.proto {
        Proto::Tcp
        | Proto::Http
        | Proto::Tls
        | Proto::Smtp
        | Proto::Ftp
        | Proto::Ssh
        | Proto::Smb => has_payload && s.dsize.is_none() && !s.flow.no_stream,
        Proto::TcpStream => true,
        _ => false,
    };
    if s.proto == Proto::TcpStream && s.dsize.is_some() {
        return syn("dsize in a tcp-stream rule");
    }
    Ok(if stream { Hook::Stream } else { Hook::Packet })
}

fn unsupported_reason(k: &str) -> String {
    match k {
        "tag" => "tag (logging of further packets) is not supported".into(),
        "byte_extract" | "byte_math" => format!("{k} is not supported"),
        "datarep" => "datarep is not supported".into(),
        "tls.cert_chain_len" => "tls.cert_chain_len is not supported".into(),
        _ => format!("keyword '{k}' is not supported"),
    }
}
