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
    seen: HashSet<(u32, u64)>,
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
            seen: HashSet::new(),
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
                return Err(err("expected 'config classification: name,description,priority'"));
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
                if !self.seen.insert((s.gid, s.sid)) {
                    counts.errors += 1;
                    self.problems.push(problem(
                        Some(s.sid),
                        RuleErrorKind::Syntax(format!("duplicate signature id {}:{}", s.gid, s.sid)),
                    ));
                    return;
                }
                let base = self.regexes.len();
                for l in &mut s.lists {
                    for st in &mut l.steps {
                        if let Step::Pcre { re, .. } = st {
                            *re += base;
                        }
                    }
                }
                self.regexes.extend(res);
                self.sigs.push(*s);
                counts.loaded += 1;
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
        let mut pats: Vec<BTreeMap<(Buf, Vec<Transform>), Vec<(Vec<u8>, u32)>>> =
            (0..HOOKS * CLASSES_PER_HOOK).map(|_| BTreeMap::new()).collect();
        for (i, s) in sigs.iter().enumerate() {
            let fp = fast_pattern(s);
            for slot in slots(s) {
                match &fp {
                    Some((buf, tr, pat)) => pats[slot]
                        .entry((*buf, tr.clone()))
                        .or_default()
                        .push((pat.clone(), i as u32)),
                    None => idx[slot].always.push(i as u32),
                }
            }
        }
        let mut pattern_base = 0u32;
        for (slot, m) in pats.into_iter().enumerate() {
            for ((buf, tr), list) in m {
                // One pattern per distinct byte string; each lists its signatures.
                let mut uniq: HashMap<Vec<u8>, Vec<u32>> = HashMap::new();
                for (p, s) in list {
                    let mut p = p;
                    p.make_ascii_lowercase();
                    uniq.entry(p).or_default().push(s);
                }
                let mut keys: Vec<_> = uniq.into_iter().collect();
                keys.sort();
                let patterns: Vec<&[u8]> = keys.iter().map(|(k, _)| &k[..]).collect();
                let Ok(ac) = AhoCorasick::builder()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::Standard)
                    .build(&patterns)
                else {
                    // Too many patterns for the automaton: evaluate them all instead.
                    for (_, s) in keys {
                        idx[slot].always.extend(s);
                    }
                    continue;
                };
                let n = keys.len() as u32;
                let max_len = keys.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
                idx[slot].pf.push(Prefilter {
                    max_len,
                    buf,
                    transforms: tr,
                    ac,
                    sigs: keys.into_iter().map(|(_, s)| s).collect(),
                    base: pattern_base,
                });
                pattern_base += n;
            }
        }
        for i in &mut idx {
            i.always.sort_unstable();
            i.always.dedup();
        }
        SigSet {
            inner: Arc::new(Inner {
                sigs,
                regexes: self.regexes,
                idx,
                patterns: pattern_base as usize,
                classes: self.classes,
                files: self.files,
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
            Proto::Tcp | Proto::TcpPkt | Proto::TcpStream | Proto::Http | Proto::Tls => {
                out.push(base)
            }
            Proto::Udp | Proto::Quic => out.push(base + 1),
            Proto::Icmp => out.push(base + 2),
            Proto::Dns => {
                out.push(base);
                out.push(base + 1)
            }
            Proto::Ip => out.extend(base..base + 4),
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

/// The prefilter pattern: the `fast_pattern` content, else the longest positive content.
fn fast_pattern(s: &Sig) -> Option<(Buf, Vec<Transform>, Vec<u8>)> {
    let mut best: Option<(&List, &Content)> = None;
    for l in &s.lists {
        for st in &l.steps {
            if let Step::Content(c) = st {
                if c.negated {
                    continue;
                }
                if c.fast_pattern {
                    return Some((l.buf, l.transforms.clone(), c.pat.clone()));
                }
                if best.is_none_or(|(_, b)| c.pat.len() > b.pat.len()) {
                    best = Some((l, c));
                }
            }
        }
    }
    best.map(|(l, c)| (l.buf, l.transforms.clone(), c.pat.clone()))
}

#[derive(Debug, Default)]
pub(crate) struct HookIndex {
    pub always: Vec<u32>,
    pub pf: Vec<Prefilter>,
}

#[derive(Debug)]
pub(crate) struct Prefilter {
    pub buf: Buf,
    pub transforms: Vec<Transform>,
    pub ac: AhoCorasick,
    /// Pattern id -> signatures.
    pub sigs: Vec<Vec<u32>>,
    /// First pattern's global number (for the scratch's seen-stamps).
    pub base: u32,
    /// Longest pattern.
    pub max_len: usize,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub sigs: Vec<Sig>,
    pub regexes: Vec<regex::bytes::Regex>,
    pub idx: Vec<HookIndex>,
    pub patterns: usize,
    pub classes: HashMap<String, (String, u8)>,
    pub files: Vec<String>,
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
        let b = hook as usize * CLASSES_PER_HOOK;
        self.inner.idx[b..b + CLASSES_PER_HOOK]
            .iter()
            .any(|i| !i.always.is_empty() || !i.pf.is_empty())
    }

    /// Approximate heap bytes of the prefilter automata.
    pub fn memory_usage(&self) -> usize {
        self.inner
            .idx
            .iter()
            .flat_map(|i| i.pf.iter())
            .map(|p| p.ac.memory_usage())
            .sum()
    }
}
