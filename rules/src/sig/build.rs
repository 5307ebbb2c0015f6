//! Loading rule files and compiling them into a [`SigSet`].

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};
use std::collections::{HashMap, HashSet};

use super::parse::{parse_rule_in, Names, Parsed, Vars};
use super::*;

/// Suricata's default classification.config plus the ET additions: name, description, priority.
const CLASSES: &str = include_str!("classification.config");

/// Loads rule files; [`SigSetBuilder::build`] compiles them.
#[derive(Debug)]
pub struct SigSetBuilder {
    vars: Vars,
    classes: HashMap<String, (String, u8)>,
    sigs: Vec<Sig>,
    regexes: Vec<regex::bytes::Regex>,
    names: Names,
    /// (gid, sid) -> index in `sigs`.
    seen: HashMap<(u32, u64), usize>,
    /// Syntax errors and skips, in load order.
    pub problems: Vec<RuleError>,
    files: Vec<String>,
}

impl Default for SigSetBuilder {
    fn default() -> Self {
        SigSetBuilder::new(Vars::default())
    }
}

/// Per-file outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileCounts {
    /// Rules loaded.
    pub loaded: usize,
    /// Rules skipped.
    pub skipped: usize,
    /// Syntax errors.
    pub errors: usize,
}

impl SigSetBuilder {
    /// A builder with the given variables and the built-in classification.
    pub fn new(vars: Vars) -> SigSetBuilder {
        let mut b = SigSetBuilder {
            vars,
            classes: HashMap::new(),
            sigs: Vec::new(),
            regexes: Vec::new(),
            names: Names::default(),
            seen: HashMap::new(),
            problems: Vec::new(),
            files: Vec::new(),
        };
        // The built-in file is known to parse.
        let _ = b.add_classification("classification.config", CLASSES);
        b
    }

    /// Adds `config classification: name,description,priority` lines.
    pub fn add_classification(&mut self, file: &str, text: &str) -> Result<(), RuleError> {
        for (i, line) in text.lines().enumerate() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let err = |m: &str| RuleError {
                file: file.to_owned(),
                line: i as u32 + 1,
                sid: None,
                kind: RuleErrorKind::Syntax(m.to_owned()),
            };
            let Some(rest) = l.strip_prefix("config classification:") else {
                return Err(err(
                    "expected 'config classification: name,description,priority'",
                ));
            };
            let parts: Vec<&str> = rest.split(',').map(str::trim).collect();
            let [name, desc, prio] = parts[..] else {
                return Err(err("expected three comma-separated fields"));
            };
            let Ok(p) = prio.parse::<u8>() else {
                return Err(err("priority must be a number"));
            };
            self.classes
                .insert(name.to_owned(), (desc.to_owned(), p.max(1)));
        }
        Ok(())
    }

    /// Loads a rules file, a gzip-compressed one (`.gz`), or every `.rules`/`.rules.gz` file of a
    /// directory (sorted by name). Unreadable paths are an error; problems inside files are
    /// recorded in [`SigSetBuilder::problems`] and loading goes on.
    pub fn add_path(&mut self, path: &Path) -> Result<(), RuleError> {
        let io = |e: std::io::Error| RuleError {
            file: path.display().to_string(),
            line: 0,
            sid: None,
            kind: RuleErrorKind::Syntax(format!("cannot read: {e}")),
        };
        if path.is_dir() {
            let mut files: Vec<_> = std::fs::read_dir(path)
                .map_err(io)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    n.ends_with(".rules") || n.ends_with(".rules.gz")
                })
                .collect();
            files.sort();
            for f in files {
                self.add_path(&f)?;
            }
            return Ok(());
        }
        let raw = std::fs::read(path).map_err(io)?;
        let text = if path.extension().is_some_and(|e| e == "gz") {
            let mut s = Vec::new();
            flate2::read::MultiGzDecoder::new(&raw[..])
                .take(256 << 20)
                .read_to_end(&mut s)
                .map_err(io)?;
            s
        } else {
            raw
        };
        let text = String::from_utf8_lossy(&text);
        self.add_text(&path.display().to_string(), &text);
        Ok(())
    }

    /// Loads rules from text; `file` names them in errors and alerts.
    pub fn add_text(&mut self, file: &str, text: &str) -> FileCounts {
        let name: Arc<str> = Arc::from(file);
        self.files.push(file.to_owned());
        let mut counts = FileCounts::default();
        let mut pending = String::new();
        let mut start_line = 0u32;
        for (i, raw) in text.lines().enumerate() {
            let lineno = i as u32 + 1;
            let l = raw.trim_end_matches('\r');
            if pending.is_empty() {
                let t = l.trim_start();
                if t.is_empty() || t.starts_with('#') {
                    continue;
                }
                start_line = lineno;
            }
            if let Some(cont) = l.strip_suffix('\\') {
                pending.push_str(cont);
                continue;
            }
            pending.push_str(l);
            let rule = std::mem::take(&mut pending);
            self.one(&rule, &name, start_line, &mut counts);
        }
        if !pending.is_empty() {
            self.problems.push(RuleError {
                file: file.to_owned(),
                line: start_line,
                sid: None,
                kind: RuleErrorKind::Syntax("the file ends inside a continued rule".into()),
            });
            counts.errors += 1;
        }
        counts
    }

    fn one(&mut self, rule: &str, name: &Arc<str>, line: u32, counts: &mut FileCounts) {
        let parsed = parse_rule_in(rule, &self.vars, &self.classes, name, line, &mut self.names);
        let problem = |sid, kind| RuleError {
            file: name.to_string(),
            line,
            sid,
            kind,
        };
        match parsed {
            Parsed::Sig(mut s, res) => {
                // A second rule with the same gid and sid replaces the first when its rev is
                // higher (as Suricata does, so an updated rule can follow the old one); else it
                // is an error and the first stays.
                let replace = match self.seen.get(&(s.gid, s.sid)) {
                    Some(&i) if self.sigs[i].rev < s.rev => Some(i),
                    Some(_) => {
                        counts.errors += 1;
                        self.problems.push(problem(
                            Some(s.sid),
                            RuleErrorKind::Syntax(format!(
                                "duplicate signature id {}:{} (rev {} is not above the loaded one's)",
                                s.gid, s.sid, s.rev
                            )),
                        ));
                        return;
                    }
                    None => None,
                };
                let base = self.regexes.len();
                for l in &mut s.lists {
                    for st in &mut l.steps {
                        if let Step::Pcre { re, .. } = st {
                            *re += base;
                        }
                    }
                }
                self.regexes.extend(res);
                match replace {
                    Some(i) => self.sigs[i] = *s,
                    None => {
                        self.seen.insert((s.gid, s.sid), self.sigs.len());
                        self.sigs.push(*s);
                        counts.loaded += 1;
                    }
                }
            }
            Parsed::Skip(sid, k) => {
                counts.skipped += 1;
                self.problems.push(problem(sid, RuleErrorKind::Skipped(k)));
            }
            Parsed::Error(sid, m) => {
                counts.errors += 1;
                self.problems.push(problem(sid, RuleErrorKind::Syntax(m)));
            }
        }
    }

    /// Signatures loaded so far.
    pub fn len(&self) -> usize {
        self.sigs.len()
    }

    /// True when nothing loaded.
    pub fn is_empty(&self) -> bool {
        self.sigs.is_empty()
    }

    /// Compiles the prefilters.
    pub fn build(self) -> SigSet {
        let mut sigs = self.sigs;
        // Evaluation order: pass, drop, reject, alert; then severity; then load order.
        sigs.sort_by_key(|s| (s.action, s.priority));
        let mut idx: Vec<HookIndex> = (0..HOOKS * CLASSES_PER_HOOK)
            .map(|_| HookIndex::default())
            .collect();
        // Keyed by buffer, transforms and direction (0: to server, 1: to client); a signature
        // without a direction is in both, so each inspection scans one automaton per buffer.
        type Key = (Buf, Vec<Transform>, u8, bool);
        type Group = BTreeMap<Key, Vec<(Vec<u8>, u32, u16, Option<u32>)>>;
        let mut pats: Vec<Group> = (0..HOOKS * CLASSES_PER_HOOK)
            .map(|_| BTreeMap::new())
            .collect();
        for (i, s) in sigs.iter().enumerate() {
            let fp = fast_pattern(s);
            let dirs: &[u8] = if s.flow.to_server {
                &[0]
            } else if s.flow.to_client {
                &[1]
            } else {
                &[0, 1]
            };
            for slot in slots(s) {
                match &fp {
                    Some((buf, tr, pat, end)) => {
                        // Packet rules whose dsize caps the payload at SMALL bytes or less have their
                        // own automaton, not scanned for bigger packets.
                        let small = s.hook == Hook::Packet
                            && s.dsize.and_then(max_of).is_some_and(|m| m <= SMALL as u64);
                        // Rules of an application protocol are looked for in its flows only;
                        // response bodies are one buffer, whichever name a rule uses.
                        let app = app_code(proto_app(s.proto));
                        let buf = if *buf == Buf::HttpResponseBody && s.hook == Hook::HttpResponse {
                            Buf::FileData
                        } else {
                            *buf
                        };
                        for &d in dirs {
                            pats[slot]
                                .entry((buf, tr.clone(), d, small))
                                .or_default()
                                .push((pat.clone(), i as u32, app, *end))
                        }
                    }
                    None => {
                        // Packet rules without a pattern are found by a narrow address list,
                        // else by their ports, else by a broad address list; the rest run on
                        // every packet.
                        let (mut src, mut dst) = (Vec::new(), Vec::new());
                        let src_ok = plain_prefixes(&s.src, &mut src);
                        let dst_ok = plain_prefixes(&s.dst, &mut dst);
                        let narrow = |v: &[(std::net::IpAddr, u8)]| {
                            v.iter()
                                .all(|(a, l)| *l >= if a.is_ipv4() { 16 } else { 32 })
                        };
                        let mut ports = Vec::new();
                        let by_port = plain_ports(&s.dport, &mut ports) || {
                            ports.clear();
                            plain_ports(&s.sport, &mut ports)
                        };
                        let x = &mut idx[slot];
                        if s.hook != Hook::Packet {
                            x.always.push(i as u32);
                        } else if let Some(e) = s.events.first() {
                            // Event rules run only for packets that raised their first event.
                            x.by_event.entry(e).or_default().push(i as u32);
                        } else if src_ok && narrow(&src) {
                            src.iter()
                                .for_each(|(a, l)| x.by_addr.insert(*a, *l, i as u32));
                        } else if dst_ok && narrow(&dst) {
                            dst.iter()
                                .for_each(|(a, l)| x.by_addr.insert(*a, *l, i as u32));
                        } else if by_port {
                            for p in ports {
                                let e = x.by_port.entry(p).or_default();
                                if e.last() != Some(&(i as u32)) {
                                    e.push(i as u32);
                                }
                            }
                        } else if src_ok || dst_ok {
                            let v = if src_ok { &src } else { &dst };
                            v.iter()
                                .for_each(|(a, l)| x.by_addr.insert(*a, *l, i as u32));
                        } else {
                            x.always.push(i as u32)
                        }
                    }
                }
            }
        }
        let mut pattern_base = 0u32;
        for (slot, m) in pats.into_iter().enumerate() {
            for ((buf, tr, dir, small), list) in m {
                // One automaton for rules of no application protocol, serving flows of every
                // protocol without rules of its own; one per protocol with rules, holding those
                // and the generic ones: each inspection scans one automaton per buffer.
                let mut apps: Vec<u16> = list.iter().map(|x| x.2).filter(|&a| a != 0).collect();
                apps.sort_unstable();
                apps.dedup();
                let all: u16 = (1 << APPS) - 1;
                let generic_serves = apps.iter().fold(all, |m, &a| m & !(1 << a));
                let variants: Vec<(u16, u16)> = std::iter::once((0u16, generic_serves))
                    .chain(apps.iter().map(|&a| (a, 1u16 << a)))
                    .collect();
                for (app, serves) in variants {
                    // One pattern per distinct byte string; each lists its signatures, and the
                    // byte by which it must end when every one of them bounds it.
                    let mut uniq: HashMap<Vec<u8>, (Vec<u32>, Option<u32>)> = HashMap::new();
                    for (p, s, a, end) in &list {
                        if *a != 0 && *a != app {
                            continue;
                        }
                        let mut p = p.clone();
                        p.make_ascii_lowercase();
                        let e = uniq.entry(p).or_insert_with(|| (Vec::new(), *end));
                        e.0.push(*s);
                        e.1 = e.1.zip(*end).map(|(a, b)| a.max(b));
                    }
                    if uniq.is_empty() || serves == 0 {
                        continue;
                    }
                    let mut keys: Vec<_> = uniq.into_iter().collect();
                    keys.sort();
                    let patterns: Vec<&[u8]> = keys.iter().map(|(k, _)| &k[..]).collect();
                    let ends: Vec<Option<u32>> = keys.iter().map(|(_, (_, e))| *e).collect();
                    let bulk = matches!(
                        buf,
                        Buf::Payload | Buf::FileData | Buf::HttpResponseBody | Buf::HttpRequestBody
                    );
                    let Some(matcher) = Matcher::new(&patterns, &ends, bulk) else {
                        // Too many patterns for the automaton: evaluate them all instead.
                        for (_, (s, _)) in keys {
                            idx[slot].always.extend(s);
                        }
                        continue;
                    };
                    let n = keys.len() as u32;
                    let max_len = keys.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
                    let min_len = keys.iter().map(|(k, _)| k.len()).min().unwrap_or(0);
                    let short = keys.iter().filter(|(k, _)| k.len() < 4).count();
                    idx[slot].pf.push(Prefilter {
                        matcher,
                        small,
                        serves,
                        max_len,
                        min_len,
                        short,
                        dir,
                        buf,
                        transforms: tr.clone(),
                        sigs: keys.into_iter().map(|(_, (s, _))| s).collect(),
                        base: pattern_base,
                    });
                    pattern_base += n;
                }
            }
        }
        for i in &mut idx {
            i.always.sort_unstable();
            i.always.dedup();
        }
        let mut wants = [false; HOOKS];
        for (slot, i) in idx.iter().enumerate() {
            wants[slot / CLASSES_PER_HOOK] |= !i.is_empty();
        }
        SigSet {
            inner: Arc::new(Inner {
                wants,
                sigs,
                regexes: self.regexes,
                idx,
                patterns: pattern_base as usize,
                classes: self.classes,
                files: self.files,
                datasets: self
                    .names
                    .datasets
                    .into_iter()
                    .map(|(_, v, i)| (v, i))
                    .collect(),
            }),
        }
    }
}

/// Packet and stream hooks are split by transport: TCP, UDP, ICMP, other.
pub(crate) const CLASSES_PER_HOOK: usize = 4;

pub(crate) fn l4_class(proto: u8) -> usize {
    match proto {
        6 => 0,
        17 => 1,
        1 | 58 => 2,
        _ => 3,
    }
}

/// The index slots a signature is registered in.
fn slots(s: &Sig) -> Vec<usize> {
    let base = s.hook as usize * CLASSES_PER_HOOK;
    let mut out = Vec::with_capacity(4);
    match s.hook {
        Hook::Packet | Hook::Stream => match s.proto {
            Proto::Tcp
            | Proto::TcpPkt
            | Proto::TcpStream
            | Proto::Http
            | Proto::Tls
            | Proto::Smtp
            | Proto::Ftp
            | Proto::Ssh
            | Proto::Smb => out.push(base),
            Proto::Udp | Proto::Quic => out.push(base + 1),
            Proto::Icmp => out.push(base + 2),
            Proto::Dns => {
                out.push(base);
                out.push(base + 1)
            }
            Proto::Ip | Proto::Pkthdr => out.extend(base..base + 4),
        },
        _ => out.push(base),
    }
    if s.hook == Hook::HttpRequest && also_response(s) {
        out.push(Hook::HttpResponse as usize * CLASSES_PER_HOOK);
    }
    out
}

/// HTTP rules without a direction whose buffers exist on both sides run on both.
pub(crate) fn also_response(s: &Sig) -> bool {
    !s.flow.to_server
        && s.urilen.is_none()
        && s.lists
            .iter()
            .all(|l| matches!(l.buf.side(), Side::Both | Side::Any) && l.buf != Buf::Payload)
}

/// Prefilter patterns are cut to their first 16 bytes: the candidates are a superset (every one
/// is evaluated in full), and the automata take half the memory (ET Open: 63 MB instead of
/// 120) at the same speed.
const FP_MAX: usize = 16;

/// A rule's fast pattern: its buffer, the buffer's transforms, the bytes, and the byte by
/// which a match must end when its window bounds it ([`content_end`]).
type FastPattern = (Buf, Vec<Transform>, Vec<u8>, Option<u32>);

/// The prefilter pattern: the `fast_pattern` content, else the longest positive content (at
/// most [`FP_MAX`] bytes of it).
fn fast_pattern(s: &Sig) -> Option<FastPattern> {
    let mut best: Option<(&List, &Content, bool)> = None;
    'lists: for l in &s.lists {
        // Contents after a base64 decode are in decoded bytes: not prefilter patterns.
        let raw = l
            .steps
            .iter()
            .position(|x| matches!(x, Step::Base64 { .. }))
            .unwrap_or(l.steps.len());
        for (k, st) in l.steps[..raw].iter().enumerate() {
            if let Step::Content(c) = st {
                if c.negated {
                    continue;
                }
                let first = k == 0 && l.buf != Buf::Payload;
                if c.fast_pattern {
                    best = Some((l, c, first));
                    break 'lists;
                }
                if best.is_none_or(|(_, b, _)| c.pat.len() > b.pat.len()) {
                    best = Some((l, c, first));
                }
            }
        }
    }
    best.map(|(l, c, first)| {
        (
            l.buf,
            l.transforms.clone(),
            c.pat[..c.pat.len().min(FP_MAX)].to_vec(),
            content_end(c, first),
        )
    })
}

/// The byte of the buffer by which a match of `c` ends, when its window bounds it: an
/// absolute depth, or `within` on the first step of a sticky buffer's list (relative to the
/// buffer's start there; payload lists are left out, a stream window's start being no fixed
/// place in the stream).
fn content_end(c: &Content, first_in_buffer: bool) -> Option<u32> {
    if c.relative() {
        let w = c.within.filter(|_| first_in_buffer)?;
        return Some((c.distance.unwrap_or(0).max(0) as u32).saturating_add(w));
    }
    c.depth.map(|d| c.offset.saturating_add(d))
}

#[derive(Debug, Default)]
pub(crate) struct HookIndex {
    pub always: Vec<u32>,
    pub pf: Vec<Prefilter>,
    /// Signatures without a fast pattern whose source or destination is a list of addresses:
    /// found by looking the packet's addresses up, not evaluated on every packet.
    pub by_addr: AddrIndex,
    /// Signatures without a fast pattern and with a few explicit ports: port -> signatures.
    pub by_port: FastMap<u16, Vec<u32>>,
    /// Packet signatures without a fast pattern that name an event: their first event ->
    /// signatures (evaluated only for a packet that raised it).
    pub by_event: FastMap<&'static str, Vec<u32>>,
}

/// The ports of a plain port list (at most 64, no `any`, no negation), if it is one.
fn plain_ports(e: &PortExpr, out: &mut Vec<u16>) -> bool {
    match e {
        PortExpr::Range(a, b) => {
            if (*b as usize) - (*a as usize) >= 64 || out.len() > 64 {
                return false;
            }
            out.extend(*a..=*b);
            true
        }
        PortExpr::List(items) => !items.is_empty() && items.iter().all(|i| plain_ports(i, out)),
        PortExpr::Any | PortExpr::Not(_) => false,
    }
}

/// Masked address -> signatures, for one prefix length.
type PrefixTable = FastMap<u128, Vec<u32>>;

/// The maps read per packet: foldhash (their keys come from the rules, so a packet cannot
/// choose what collides; SipHash was 7% of a replay with ET Open).
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Address prefixes to signatures: one hash table per prefix length in use.
#[derive(Debug, Default)]
pub(crate) struct AddrIndex {
    /// (prefix length, IPv6) -> masked address -> signatures.
    tables: Vec<((u8, bool), PrefixTable)>,
}

impl HookIndex {
    /// Nothing to evaluate in this slot.
    pub fn is_empty(&self) -> bool {
        self.always.is_empty()
            && self.pf.is_empty()
            && self.by_addr.is_empty()
            && self.by_port.is_empty()
            && self.by_event.is_empty()
    }
}

impl AddrIndex {
    fn key(a: std::net::IpAddr, len: u8) -> (u128, bool) {
        match a {
            std::net::IpAddr::V4(v) => {
                let m = if len == 0 {
                    0
                } else {
                    u32::MAX << (32 - len as u32)
                };
                ((u32::from(v) & m) as u128, false)
            }
            std::net::IpAddr::V6(v) => {
                let m = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len as u32)
                };
                (u128::from(v) & m, true)
            }
        }
    }

    fn insert(&mut self, a: std::net::IpAddr, len: u8, sig: u32) {
        let (k, v6) = Self::key(a, len);
        let t = match self.tables.iter_mut().position(|(l, _)| *l == (len, v6)) {
            Some(i) => &mut self.tables[i].1,
            None => {
                self.tables.push(((len, v6), FastMap::default()));
                &mut self.tables.last_mut().expect("just pushed").1
            }
        };
        let e = t.entry(k).or_default();
        if e.last() != Some(&sig) {
            e.push(sig);
        }
    }

    /// Calls `f` with every signature indexed under a prefix holding `a`.
    pub fn lookup(&self, a: std::net::IpAddr, f: &mut impl FnMut(u32)) {
        let v6 = a.is_ipv6();
        for ((len, t6), t) in &self.tables {
            if *t6 != v6 {
                continue;
            }
            if let Some(v) = t.get(&Self::key(a, *len).0) {
                v.iter().for_each(|&s| f(s));
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }
}

/// The prefixes of a plain address list (no `any`, no negation), if it is one.
fn plain_prefixes(e: &AddrExpr, out: &mut Vec<(std::net::IpAddr, u8)>) -> bool {
    match e {
        AddrExpr::Net(a, l) => {
            out.push((*a, *l));
            true
        }
        AddrExpr::List(items) => !items.is_empty() && items.iter().all(|i| plain_prefixes(i, out)),
        AddrExpr::Any | AddrExpr::Not(_) => false,
    }
}

#[derive(Debug)]
pub(crate) struct Prefilter {
    pub buf: Buf,
    pub transforms: Vec<Transform>,
    pub matcher: Matcher,
    /// Pattern id -> signatures.
    pub sigs: Vec<Vec<u32>>,
    /// First pattern's global number (for the scratch's seen-stamps).
    pub base: u32,
    /// Longest pattern.
    pub max_len: usize,
    /// Shortest pattern.
    pub min_len: usize,
    /// Patterns under 4 bytes.
    pub short: usize,
    /// 0: packets to the server, 1: to the client.
    pub dir: u8,
    /// Only for payloads of at most [`SMALL`] bytes.
    pub small: bool,
    /// The flows it is scanned for: bit [`app_code`] of their application protocol.
    pub serves: u16,
}

/// How a prefilter finds its patterns (see `build`).
#[derive(Debug)]
pub(crate) enum Matcher {
    /// Up to 64 patterns: leftmost-first over the lowercased bytes, restarted after each match.
    Packed {
        ac: AhoCorasick,
        /// Pattern id -> other patterns that may match at the same start.
        related: Vec<Vec<u32>>,
        /// The patterns, lowercased.
        lowered: Vec<Vec<u8>>,
        /// Over bulk bytes, the same patterns in a sieve, for data where they repeat.
        sieve: Option<super::sieve::Sieve>,
    },
    /// Bulk bytes, more patterns.
    Sieve(super::sieve::Sieve),
    /// Small app-layer buffers, more patterns: every match of a case-insensitive automaton.
    Nfa(AhoCorasick),
}

impl Matcher {
    /// Picks and builds the matcher for lowercased `patterns`: up to 64, a leftmost-first
    /// searcher over the lowercased buffer, which aho-corasick runs with its SIMD Teddy
    /// prefilter (gigabytes per second); overlapping matches are recovered by restarting one
    /// byte after each start and checking the patterns that share a start (prefixes of each
    /// other). More patterns over `bulk` bytes (payloads, streams, bodies): the hashed-prefix
    /// sieve (see `sieve`); over the small app-layer buffers, a contiguous NFA, which takes
    /// little memory. None when the automaton cannot be built.
    pub fn new(patterns: &[&[u8]], ends: &[Option<u32>], bulk: bool) -> Option<Matcher> {
        Matcher::with_kernel(patterns, ends, bulk, super::sieve::wide_available())
    }

    /// As [`Matcher::new`], for a CPU with (`wide`) or without the sieve's AVX-512 kernel.
    pub(crate) fn with_kernel(
        patterns: &[&[u8]],
        ends: &[Option<u32>],
        bulk: bool,
        wide: bool,
    ) -> Option<Matcher> {
        use super::sieve::Sieve;
        // Over bulk bytes the sieve's AVX-512 kernel outruns Teddy (ET Open's 34 payload
        // patterns sent to clients: 1.5 GB/s with Teddy and the lowercased copy it needs,
        // 5 GB/s with the sieve); without AVX-512, Teddy does for small sets.
        let packed = if patterns.len() <= 64 && !(bulk && wide) {
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostFirst)
                .build(patterns)
                .ok()
        } else {
            None
        };
        if let Some(ac) = packed {
            let related = patterns
                .iter()
                .map(|p| {
                    (0..patterns.len() as u32)
                        .filter(|&q| {
                            let q = patterns[q as usize];
                            q != *p && (q.starts_with(p) || p.starts_with(q))
                        })
                        .collect()
                })
                .collect();
            return Some(Matcher::Packed {
                ac,
                related,
                lowered: patterns.iter().map(|p| p.to_vec()).collect(),
                // Takes over mid-buffer: no bounds.
                sieve: bulk.then(|| Sieve::with_kernel(patterns, &[], wide)),
            });
        }
        if bulk {
            return Some(Matcher::Sieve(Sieve::with_kernel(patterns, ends, wide)));
        }
        AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .kind(Some(aho_corasick::AhoCorasickKind::ContiguousNFA))
            .build(patterns)
            .ok()
            .map(Matcher::Nfa)
    }

    /// Calls `hit(id)` for every pattern occurring in `data` (`seen(id)`: already reported;
    /// `lower`: scratch for the lowercased bytes; `origin`: where `data` starts in its buffer,
    /// see [`super::sieve::Sieve::scan`]).
    pub fn scan(
        &self,
        data: &[u8],
        origin: usize,
        lower: &mut Vec<u8>,
        seen: &dyn Fn(usize) -> bool,
        hit: &mut dyn FnMut(usize),
    ) {
        match self {
            Matcher::Packed {
                ac,
                related,
                lowered,
                sieve,
            } => {
                lower.clear();
                lower.extend_from_slice(data);
                lower.make_ascii_lowercase();
                let mut at = 0;
                while at < lower.len() {
                    let input = aho_corasick::Input::new(&lower[..]).span(at..lower.len());
                    let Some(m) = ac.find(input) else { break };
                    let pid = m.pattern().as_usize();
                    if let (Some(sieve), true) = (sieve, seen(pid)) {
                        // A pattern found again (a run of zeros, a repeated header): restarting
                        // after each match would cost a search per occurrence, so the rest is
                        // scanned by the sieve, which skips patterns already found.
                        sieve.scan(&data[m.start()..], usize::MAX, seen, hit);
                        break;
                    }
                    hit(pid);
                    for &q in &related[pid] {
                        if lower[m.start()..].starts_with(&lowered[q as usize]) {
                            hit(q as usize);
                        }
                    }
                    at = m.start() + 1;
                }
            }
            Matcher::Sieve(s) => s.scan(data, origin, seen, hit),
            Matcher::Nfa(ac) => {
                for m in ac.find_overlapping_iter(data) {
                    hit(m.pattern().as_usize());
                }
            }
        }
    }

    /// Heap bytes held.
    pub fn memory_usage(&self) -> usize {
        match self {
            Matcher::Packed { ac, sieve, .. } => {
                ac.memory_usage() + sieve.as_ref().map_or(0, |s| s.memory_usage())
            }
            Matcher::Nfa(ac) => ac.memory_usage(),
            Matcher::Sieve(s) => s.memory_usage(),
        }
    }
}

/// The application protocol a rule header names, if any.
fn proto_app(p: Proto) -> App {
    match p {
        Proto::Dns => App::Dns,
        Proto::Tls => App::Tls,
        Proto::Http => App::Http,
        Proto::Quic => App::Quic,
        Proto::Smtp => App::Smtp,
        Proto::Ftp => App::Ftp,
        Proto::Ssh => App::Ssh,
        Proto::Smb => App::Smb,
        _ => App::None,
    }
}

/// 0 for none, else a small number per application protocol.
pub(crate) fn app_code(a: App) -> u16 {
    match a {
        App::None => 0,
        App::Dns => 1,
        App::Tls => 2,
        App::Http => 3,
        App::Quic => 4,
        App::Smtp => 5,
        App::Ftp => 6,
        App::Ssh => 7,
        App::Smb => 8,
    }
}

/// Application protocol codes ([`app_code`]: 0 for none, then one per protocol).
const APPS: u16 = 9;

/// Payload size under which packet rules capped by `dsize` are looked for.
pub(crate) const SMALL: usize = 256;

/// The largest value a comparison allows, if bounded.
fn max_of(c: Cmp) -> Option<u64> {
    match c {
        Cmp::Eq(n) | Cmp::Le(n) => Some(n),
        Cmp::Lt(n) => Some(n.saturating_sub(1)),
        Cmp::Between(_, b) => Some(b.saturating_sub(1)),
        Cmp::Range(_, b) => Some(b),
        Cmp::Ne(_) | Cmp::Gt(_) | Cmp::Ge(_) => None,
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub sigs: Vec<Sig>,
    pub regexes: Vec<regex::bytes::Regex>,
    pub idx: Vec<HookIndex>,
    pub patterns: usize,
    pub classes: HashMap<String, (String, u8)>,
    pub files: Vec<String>,
    /// Hooks some signature inspects (decided at build).
    pub wants: [bool; HOOKS],
    /// Dataset values loaded, and intel lists behind them, by index.
    pub datasets: Vec<(HashSet<Vec<u8>>, Vec<crate::IntelSet>)>,
}

/// A compiled, immutable rule set; cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct SigSet {
    pub(crate) inner: Arc<Inner>,
}

impl Default for SigSet {
    fn default() -> Self {
        SigSetBuilder::default().build()
    }
}

impl SigSet {
    /// Number of signatures.
    pub fn len(&self) -> usize {
        self.inner.sigs.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.inner.sigs.is_empty()
    }

    /// The signatures, in evaluation order.
    pub fn sigs(&self) -> &[Sig] {
        &self.inner.sigs
    }

    /// The category (classtype description) of a signature.
    pub fn category(&self, s: &Sig) -> &str {
        s.classtype
            .as_ref()
            .and_then(|c| self.inner.classes.get(c))
            .map_or("", |c| c.0.as_str())
    }

    /// The files the set was loaded from.
    pub fn files(&self) -> &[String] {
        &self.inner.files
    }

    /// True when some signature inspects the given hook (the engine skips building buffers
    /// nobody reads).
    pub fn wants(&self, hook: Hook) -> bool {
        self.inner.wants[hook as usize]
    }

    /// Per index slot (hook x transport): signatures always evaluated, prefilter patterns.
    pub fn index_stats(&self) -> Vec<(usize, usize, usize)> {
        self.inner
            .idx
            .iter()
            .enumerate()
            .map(|(i, x)| (i, x.always.len(), x.pf.iter().map(|p| p.sigs.len()).sum()))
            .collect()
    }

    /// Prefilter pattern lengths per slot and buffer: (slot, buffer, dir, patterns, shortest,
    /// patterns under 4 bytes).
    pub fn pattern_stats(&self) -> Vec<(usize, Buf, u8, usize, usize, usize)> {
        let mut v = Vec::new();
        for (i, x) in self.inner.idx.iter().enumerate() {
            for p in &x.pf {
                v.push((i, p.buf, p.dir, p.sigs.len(), p.min_len, p.short));
            }
        }
        v
    }

    /// Approximate heap bytes of the prefilter automata.
    pub fn memory_usage(&self) -> usize {
        self.inner
            .idx
            .iter()
            .flat_map(|i| i.pf.iter())
            .map(|p| p.matcher.memory_usage())
            .sum()
    }
}
