//! Threat intelligence for Palisade: domain, address and URL indicators compiled into an
//! immutable [`IntelSet`]; and Suricata-style signatures in [`sig`].
//!
//! # Input
//! Every line of a list is classified on its own, so one file may mix formats:
//! - a domain name (`evil.example`), optionally `*.evil.example`;
//! - a hosts-file line (`0.0.0.0 evil.example other.example`, any address in front);
//! - an AdBlock network rule (`||evil.example^`, `@@||good.example^` is an exception = allow);
//! - an IPv4/IPv6 address or CIDR (`192.0.2.1`, `198.51.100.0/24`, `2001:db8::/32`),
//!   also `192.0.2.1:443` as maltrail writes them (the port is not kept: the address is the indicator);
//! - a URL (`http://host/path`): with no path it is a domain (or address) indicator, with a path it
//!   is a URL indicator matched on HTTP requests (host plus path, query ignored).
//!
//! Blank lines and comments (`#`, `!`, `[Adblock Plus ...]`) are skipped, as are the usual
//! hosts-file self entries (`localhost`, `broadcasthost`, `ip6-*`, `0.0.0.0`).
//! A line that is none of these is skipped and reported, naming the file, the line and the reason
//! ([`LoadError`] in [`IntelBuilder::problems`], counted in [`ListInfo::bad_lines`]); the list's
//! other lines load, as Pi-hole's gravity skips invalid entries. A list whose bad lines outnumber
//! its lines with indicators is refused as a whole: it is most likely not a list at all (an HTML
//! error page where a feed was expected). So is a list with no indicator, and a file that cannot
//! be read. A builder that refused a list may keep part of it: callers drop it.
//!
//! # Matching
//! A listed domain matches itself and every subdomain. Names are ASCII-lowercased, a trailing dot
//! is dropped and IDNs are compared in punycode (`xn--`). The most specific indicator decides
//! (the longest matching domain suffix, the longest matching prefix); when the same name or prefix
//! is listed with several actions, allow beats block beats audit.
//!
//! # Resource usage
//! Names live in one byte arena; a hashed table of 4-byte slots maps each name to a 16-byte entry.
//! A lookup hashes each label suffix of the queried name once (at most 128 probes, usually 2-4) and
//! allocates nothing. One million names take about 60-70 MB while building (the file is read
//! whole) and about 40 MB afterwards; see `bench/RESULTS.md` for measured figures.
// Unsafe code only in the prefilter's AVX-512 kernel (`sig::sieve`), each block with its reasons.
#![deny(unsafe_code)]
#![deny(missing_docs)]

use std::fmt;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;

use hashbrown::{HashMap, HashTable};

pub mod sig;

/// What an indicator asks for. Ordered by precedence: on a tie, allow beats block beats audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Log an alert with `action: allowed` and let the traffic through.
    Audit,
    /// Stop the traffic (in audit mode: log what would have been blocked).
    Block,
    /// An explicit exception: never block, overrides less specific blocks.
    Allow,
}

impl Action {
    /// Parses `block`, `audit` or `allow`.
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "block" => Some(Action::Block),
            "audit" => Some(Action::Audit),
            "allow" => Some(Action::Allow),
            _ => None,
        }
    }

    /// The lowercase name used in events and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Block => "block",
            Action::Audit => "audit",
            Action::Allow => "allow",
        }
    }
}

/// An error while loading a list: the file, the 1-based line and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The list's name (its path, as given).
    pub file: String,
    /// 1-based line number; 0 when the error concerns the whole file (unreadable, empty).
    pub line: u32,
    /// What was wrong.
    pub reason: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.reason)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.reason)
        }
    }
}

impl std::error::Error for LoadError {}

/// A list that was loaded: its name, its default action and how many indicators it gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListInfo {
    /// The list's name (its path, as given).
    pub name: String,
    /// The action of its lines (AdBlock `@@` exceptions are always allow).
    pub action: Action,
    /// Indicators taken from it: domains, addresses/prefixes and URLs.
    pub domains: u32,
    /// Address and prefix indicators.
    pub addrs: u32,
    /// URL indicators.
    pub urls: u32,
    /// Lines skipped as bad (each is reported in [`IntelBuilder::problems`] while there is room).
    pub bad_lines: u32,
}

/// What kind of value an indicator matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A domain name (itself and its subdomains).
    Domain,
    /// An address or CIDR prefix.
    Addr,
    /// A URL: host plus path.
    Url,
    /// A URL path on any host (maltrail writes these as `/path`).
    Path,
}

/// Why a lookup matched: enough to explain a verdict (which indicator, which list, which line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit<'a> {
    /// The action that decides.
    pub action: Action,
    /// The indicator as stored (normalised name, `addr/len`, or `host/path`).
    pub indicator: &'a str,
    /// The list it came from.
    pub list: &'a str,
    /// Its 1-based line in that list.
    pub line: u32,
    /// What kind of indicator it is.
    pub kind: Kind,
    /// Which precedence rule decided: `exact`, `most-specific`, or `tie:allow>block>audit`.
    pub rule: &'static str,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    start: u32,
    len: u16,
    action: Action,
    /// Set when a second listing of the same value with another action was folded into this one.
    tie: bool,
    list: u16,
    line: u32,
}

/// Names keyed by hash into one arena.
///
/// Loading stages names (arena and entries are appended in file order, with their hashes) and
/// [`NameTable::commit`] inserts them sorted by table bucket: the table then fills almost
/// sequentially instead of taking two cache misses per name, which is what bounds the load
/// of a million-name list. Duplicates meet in that order too (same hash, file order kept).
#[derive(Debug, Clone, Default)]
struct NameTable {
    arena: String,
    entries: Vec<Entry>,
    table: HashTable<u32>,
    staged: Vec<(u64, u32)>,
}

impl NameTable {
    fn reserve(&mut self, n: usize) {
        self.entries.reserve(n);
        self.staged.reserve(n);
        self.arena.reserve(n * 14);
    }

    /// Appends a name for [`NameTable::commit`].
    fn stage(
        &mut self,
        hasher: &foldhash::fast::RandomState,
        name: &str,
        action: Action,
        list: u16,
        line: u32,
    ) {
        let idx = self.entries.len() as u32;
        let start = self.arena.len() as u32;
        self.arena.push_str(name);
        self.entries.push(Entry {
            start,
            len: name.len() as u16,
            action,
            tie: false,
            list,
            line,
        });
        self.staged.push((hasher.hash_one(name), idx));
    }

    /// Inserts the staged names in bucket order, folding duplicates by precedence.
    fn commit(&mut self, hasher: &foldhash::fast::RandomState) {
        if self.staged.is_empty() {
            return;
        }
        let NameTable {
            arena,
            entries,
            table,
            staged,
        } = self;
        let text = |entries: &[Entry], i: u32| {
            let e = &entries[i as usize];
            &arena[e.start as usize..e.start as usize + e.len as usize]
        };
        table.reserve(staged.len(), |&i| hasher.hash_one(text(entries, i)));
        // hashbrown starts probing at `hash & bucket_mask`; buckets = capacity * 8 / 7, a power of two.
        let mask = ((table.capacity() + table.len()) * 8 / 7).next_power_of_two() as u64 - 1;
        staged.sort_unstable_by_key(|&(h, i)| (h & mask, i));
        for &(h, i) in staged.iter() {
            let name = text(entries, i);
            if let Some(&j) = table.find(h, |&j| text(entries, j) == name) {
                let new = entries[i as usize];
                let e = &mut entries[j as usize];
                if e.action != new.action {
                    e.tie = true;
                }
                if new.action > e.action
                    || (new.action == e.action && (new.list, new.line) < (e.list, e.line))
                {
                    e.action = new.action;
                    e.list = new.list;
                    e.line = new.line;
                }
                continue;
            }
            table.insert_unique(h, i, |&j| hasher.hash_one(text(entries, j)));
        }
        *staged = Vec::new();
    }

    fn find(&self, hasher: &foldhash::fast::RandomState, name: &str) -> Option<&Entry> {
        let h = hasher.hash_one(name);
        self.table
            .find(h, |&i| {
                let e = &self.entries[i as usize];
                &self.arena[e.start as usize..e.start as usize + e.len as usize] == name
            })
            .map(|&i| &self.entries[i as usize])
    }

    fn text(&self, e: &Entry) -> &str {
        &self.arena[e.start as usize..e.start as usize + e.len as usize]
    }

    /// Inserts or folds a duplicate by precedence. Returns true when the value was new.
    fn insert(
        &mut self,
        hasher: &foldhash::fast::RandomState,
        name: &str,
        action: Action,
        list: u16,
        line: u32,
    ) -> bool {
        let h = hasher.hash_one(name);
        let NameTable {
            arena,
            entries,
            table,
            ..
        } = self;
        let same = |i: &u32, arena: &str, entries: &[Entry]| {
            let e = &entries[*i as usize];
            &arena[e.start as usize..e.start as usize + e.len as usize] == name
        };
        if let Some(&i) = table.find(h, |i| same(i, arena, entries)) {
            let e = &mut entries[i as usize];
            if e.action != action {
                e.tie = true;
            }
            if action > e.action {
                e.action = action;
                e.list = list;
                e.line = line;
            }
            return false;
        }
        let idx = entries.len() as u32;
        let start = arena.len() as u32;
        arena.push_str(name);
        entries.push(Entry {
            start,
            len: name.len() as u16,
            action,
            tie: false,
            list,
            line,
        });
        table.insert_unique(h, idx, |&i| {
            let e = &entries[i as usize];
            hasher.hash_one(&arena[e.start as usize..e.start as usize + e.len as usize])
        });
        true
    }
}

#[derive(Debug, Clone, Copy)]
struct PrefixEntry {
    action: Action,
    tie: bool,
    list: u16,
    line: u32,
    text: u32,
}

/// Longest-prefix match: one hash map per prefix length, probed from the longest present length.
#[derive(Debug, Clone, Default)]
struct PrefixTable<K: std::hash::Hash + Eq + Copy> {
    by_len: Vec<HashMap<K, PrefixEntry, foldhash::fast::RandomState>>,
    /// Prefix lengths present, longest first.
    lens: Vec<u8>,
}

impl<K: std::hash::Hash + Eq + Copy> PrefixTable<K> {
    fn with_bits(bits: usize) -> Self {
        PrefixTable {
            by_len: (0..=bits).map(|_| HashMap::default()).collect(),
            lens: Vec::new(),
        }
    }

    fn insert(&mut self, key: K, len: u8, entry: PrefixEntry) -> bool {
        let map = &mut self.by_len[len as usize];
        if let Some(e) = map.get_mut(&key) {
            if e.action != entry.action {
                e.tie = true;
            }
            if entry.action > e.action {
                // The prefix's text stays the first one recorded (the caller records a text
                // only for a new prefix, so the new entry's text index is not one).
                let (tie, text) = (e.tie, e.text);
                *e = entry;
                e.tie = tie;
                e.text = text;
            }
            return false;
        }
        map.insert(key, entry);
        if !self.lens.contains(&len) {
            self.lens.push(len);
            self.lens.sort_unstable_by(|a, b| b.cmp(a));
        }
        true
    }
}

/// An immutable, cheaply clonable set of indicators. Build it with [`IntelBuilder`].
#[derive(Debug, Clone, Default)]
pub struct IntelSet {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    hasher: foldhash::fast::RandomState,
    names: NameTable,
    urls: NameTable,
    paths: NameTable,
    v4: Option<PrefixTable<u32>>,
    v6: Option<PrefixTable<u128>>,
    /// `addr/len` texts of prefix entries.
    prefix_text: Vec<String>,
    lists: Vec<ListInfo>,
}

impl IntelSet {
    /// An empty set: nothing matches.
    pub fn empty() -> IntelSet {
        IntelSet::default()
    }

    /// The lists this set was built from.
    pub fn lists(&self) -> &[ListInfo] {
        &self.inner.lists
    }

    /// Number of distinct domain indicators.
    pub fn domain_count(&self) -> usize {
        self.inner.names.table.len()
    }

    /// Number of distinct address/prefix indicators.
    pub fn addr_count(&self) -> usize {
        self.inner.prefix_text.len()
    }

    /// Number of distinct URL indicators.
    pub fn url_count(&self) -> usize {
        self.inner.urls.table.len() + self.inner.paths.table.len()
    }

    /// The address and prefix indicators whose action is block, as (network, prefix length):
    /// what a kernel set can enforce while the filter itself is not running.
    pub fn blocked_prefixes(&self) -> Vec<(IpAddr, u8)> {
        let mut out = Vec::new();
        if let Some(t) = &self.inner.v4 {
            for (len, map) in t.by_len.iter().enumerate() {
                for (k, e) in map {
                    if e.action == Action::Block {
                        out.push((IpAddr::V4(Ipv4Addr::from(*k)), len as u8));
                    }
                }
            }
        }
        if let Some(t) = &self.inner.v6 {
            for (len, map) in t.by_len.iter().enumerate() {
                for (k, e) in map {
                    if e.action == Action::Block {
                        out.push((IpAddr::V6(Ipv6Addr::from(*k)), len as u8));
                    }
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// Distinct indicators of every kind: domains, addresses and prefixes, URLs.
    pub fn indicator_count(&self) -> usize {
        self.domain_count() + self.addr_count() + self.url_count()
    }

    /// True when the set holds no indicator at all.
    pub fn is_empty(&self) -> bool {
        self.indicator_count() == 0
    }

    /// Looks a host name up: the name itself and then each parent domain; the longest listed
    /// suffix decides. The name may carry upper case and a trailing dot; names that are not
    /// plain ASCII are looked up as given (the extractors hand over wire bytes, which for
    /// IDNs are already punycode).
    pub fn match_domain(&self, name: &str) -> Option<Hit<'_>> {
        let inner = &*self.inner;
        if inner.names.table.is_empty() {
            return None;
        }
        let mut name = name.strip_suffix('.').unwrap_or(name);
        if name.is_empty() {
            return None;
        }
        // A listed domain is at most 253 characters, so only the name's last 253 can hold it.
        // Longer names are real: a label of binary bytes is written `\xNN`, four characters a
        // byte, and an HTTP Host can be anything; their leading labels go (the name is then a
        // subdomain of any match), so a long prefix cannot hide a listed domain.
        let mut first = true;
        while name.len() > 253 {
            let i = name.find('.')?;
            name = &name[i + 1..];
            first = false;
        }
        let mut buf = [0u8; 253];
        let lower = &mut buf[..name.len()];
        lower.copy_from_slice(name.as_bytes());
        lower.make_ascii_lowercase();
        let Ok(lower) = std::str::from_utf8(lower) else {
            return None;
        };
        let mut rest = lower;
        loop {
            if let Some(e) = inner.names.find(&inner.hasher, rest) {
                return Some(self.hit_from(&inner.names, e, Kind::Domain, first));
            }
            match rest.find('.') {
                Some(i) => rest = &rest[i + 1..],
                None => return None,
            }
            first = false;
        }
    }

    /// Looks an address up: the longest listed prefix containing it decides.
    pub fn match_addr(&self, addr: IpAddr) -> Option<Hit<'_>> {
        let inner = &*self.inner;
        let (e, len, bits) = match addr {
            IpAddr::V4(a) => {
                let t = inner.v4.as_ref()?;
                let v = u32::from(a);
                t.lens.iter().find_map(|&l| {
                    let m = if l == 0 {
                        0
                    } else {
                        v & (u32::MAX << (32 - l))
                    };
                    t.by_len[l as usize].get(&m).map(|e| (e, l, 32))
                })?
            }
            IpAddr::V6(a) => {
                let t = inner.v6.as_ref()?;
                let v = u128::from(a);
                t.lens.iter().find_map(|&l| {
                    let m = if l == 0 {
                        0
                    } else {
                        v & (u128::MAX << (128 - l))
                    };
                    t.by_len[l as usize].get(&m).map(|e| (e, l, 128))
                })?
            }
        };
        Some(Hit {
            action: e.action,
            indicator: &inner.prefix_text[e.text as usize],
            list: &inner.lists[e.list as usize].name,
            line: e.line,
            kind: Kind::Addr,
            rule: rule_name(e.tie, len == bits),
        })
    }

    /// Looks an HTTP request up by host and path (the query, after `?`, is ignored).
    pub fn match_url(&self, host: &str, uri: &str) -> Option<Hit<'_>> {
        let inner = &*self.inner;
        if inner.urls.entries.is_empty() && inner.paths.entries.is_empty() {
            return None;
        }
        let path = uri.split(['?', '#']).next().unwrap_or("");
        let host = host.strip_suffix('.').unwrap_or(host);
        if host.len() + path.len() + 1 > 2048 {
            return None;
        }
        let mut buf = [0u8; 2048];
        let n = host.len();
        buf[..n].copy_from_slice(host.as_bytes());
        buf[..n].make_ascii_lowercase();
        let path = path.strip_prefix('/').unwrap_or(path);
        buf[n] = b'/';
        buf[n + 1..n + 1 + path.len()].copy_from_slice(path.as_bytes());
        let key = std::str::from_utf8(&buf[..n + 1 + path.len()]).ok()?;
        if let Some(e) = inner.urls.find(&inner.hasher, key) {
            return Some(self.hit_from(&inner.urls, e, Kind::Url, true));
        }
        let e = inner.paths.find(&inner.hasher, &key[n..]).or_else(|| {
            inner
                .paths
                .find(&inner.hasher, uri.split('#').next().unwrap_or(""))
        })?;
        Some(self.hit_from(&inner.paths, e, Kind::Path, true))
    }

    fn hit_from<'a>(&'a self, t: &'a NameTable, e: &Entry, kind: Kind, exact: bool) -> Hit<'a> {
        Hit {
            action: e.action,
            indicator: t.text(e),
            list: &self.inner.lists[e.list as usize].name,
            line: e.line,
            kind,
            rule: rule_name(e.tie, exact),
        }
    }
}

fn rule_name(tie: bool, exact: bool) -> &'static str {
    match (tie, exact) {
        (true, _) => "tie:allow>block>audit",
        (false, true) => "exact",
        (false, false) => "most-specific",
    }
}

/// Lines skipped as bad over these lists ([`IntelSet::lists`], [`IntelBuilder::lists`]).
pub fn bad_lines(lists: &[ListInfo]) -> u64 {
    lists.iter().map(|l| u64::from(l.bad_lines)).sum()
}

/// Most bad lines an [`IntelBuilder`] keeps for its report; later ones are only counted
/// ([`ListInfo::bad_lines`]).
pub const MAX_PROBLEMS: usize = 100;

/// Builds an [`IntelSet`] from lists. Bad lines are skipped and reported (file, line, reason) in
/// [`IntelBuilder::problems`]; a refused list is an error naming the file.
#[derive(Debug)]
pub struct IntelBuilder {
    inner: Inner,
    /// Reused buffer for lowercasing names while loading.
    scratch: [u8; 253],
    /// Bad lines of the lists loaded so far, in order: the first [`MAX_PROBLEMS`] of them.
    pub problems: Vec<LoadError>,
}

impl Default for IntelBuilder {
    fn default() -> Self {
        IntelBuilder::new()
    }
}

impl IntelBuilder {
    /// A builder with no lists.
    pub fn new() -> IntelBuilder {
        IntelBuilder {
            inner: Inner::default(),
            scratch: [0; 253],
            problems: Vec::new(),
        }
    }

    /// The lists added so far (a refused one too, with what it counted before it was refused).
    pub fn lists(&self) -> &[ListInfo] {
        &self.inner.lists
    }

    /// Reads a list file; every line is classified on its own and bad lines are skipped (see the
    /// crate docs). An empty list (no indicator at all) is an error, since it is almost always a
    /// mistake, and so is one whose bad lines outnumber its lines with indicators. A refused
    /// list's good lines stay in the builder: a caller discards the builder on an error (replay,
    /// inline and reloads refuse the whole policy, keeping the running one).
    pub fn add_file(&mut self, path: &Path, action: Action) -> Result<&ListInfo, LoadError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| LoadError {
            file: name.clone(),
            line: 0,
            reason: format!("cannot read: {e}"),
        })?;
        self.add_bytes(&name, &bytes, action)
    }

    /// Adds a list from memory under the given name.
    pub fn add_bytes(
        &mut self,
        name: &str,
        bytes: &[u8],
        action: Action,
    ) -> Result<&ListInfo, LoadError> {
        if self.inner.lists.len() >= u16::MAX as usize {
            return Err(LoadError {
                file: name.to_string(),
                line: 0,
                reason: "too many lists (65535 at most)".into(),
            });
        }
        let list = self.inner.lists.len() as u16;
        self.inner.lists.push(ListInfo {
            name: name.to_string(),
            action,
            domains: 0,
            addrs: 0,
            urls: 0,
            bad_lines: 0,
        });
        let err = |line: u32, reason: String| LoadError {
            file: name.to_string(),
            line,
            reason,
        };
        let reported = self.problems.len();
        let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
        // Most lists are one short name per line: size the tables once.
        self.inner.names.reserve(bytes.len() / 20);
        let (mut good, mut bad) = (0u32, 0u32);
        let mut first_bad = None;
        for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let line_no = u32::try_from(i + 1).unwrap_or(u32::MAX);
            let mut problem = None;
            let mut indicators = 0;
            match std::str::from_utf8(raw).map(|t| parse_line(t.trim())) {
                Err(_) => problem = Some("not valid UTF-8".to_string()),
                Ok(Err(r)) => problem = Some(r),
                Ok(Ok(parsed)) => {
                    for item in parsed.items() {
                        let act = if parsed.exception {
                            Action::Allow
                        } else {
                            action
                        };
                        // A hosts line's other names still load when one of them is bad.
                        match self.add_item(item, act, list, line_no) {
                            Ok(()) => indicators += 1,
                            Err(r) => problem = problem.or(Some(r)),
                        }
                    }
                }
            }
            good = good.saturating_add(u32::from(indicators > 0));
            if let Some(reason) = problem {
                bad = bad.saturating_add(1);
                let e = err(line_no, reason);
                if first_bad.is_none() {
                    first_bad = Some(e.clone());
                }
                if self.problems.len() < MAX_PROBLEMS {
                    self.problems.push(e);
                }
            }
        }
        self.inner.lists[list as usize].bad_lines = bad;
        if let Some(first) = first_bad.filter(|_| bad > good) {
            // Its lines are not reported one by one: the list as a whole is the error.
            self.problems.truncate(reported);
            return Err(LoadError {
                reason: format!(
                    "{} ({bad} bad lines against {good} with indicators: \
                     not a list of indicators, refused)",
                    first.reason
                ),
                ..first
            });
        }
        if good == 0 {
            return Err(err(0, "the list holds no indicator".into()));
        }
        Ok(&self.inner.lists[list as usize])
    }

    fn add_item(
        &mut self,
        item: Item<'_>,
        action: Action,
        list: u16,
        line: u32,
    ) -> Result<(), String> {
        let inner = &mut self.inner;
        let info = &mut inner.lists[list as usize];
        match item {
            Item::Domain(d) => {
                if let Some(name) = fast_normalize(d, &mut self.scratch) {
                    inner.names.stage(&inner.hasher, name, action, list, line);
                } else {
                    let name = normalize_domain(d)?;
                    inner.names.stage(&inner.hasher, &name, action, list, line);
                }
                info.domains += 1;
            }
            Item::Url(host, path) => {
                let host_n = normalize_domain(host)?;
                let key = format!("{host_n}/{}", path.trim_start_matches('/'));
                if key.len() > 2047 {
                    return Err("URL longer than 2047 bytes".into());
                }
                info.urls += 1;
                inner.urls.insert(&inner.hasher, &key, action, list, line);
            }
            Item::Path(path) => {
                if path.len() > 2047 {
                    return Err("URL path longer than 2047 bytes".into());
                }
                info.urls += 1;
                inner.paths.insert(&inner.hasher, path, action, list, line);
            }
            Item::Net(addr, len) => {
                info.addrs += 1;
                let text = inner.prefix_text.len() as u32;
                let entry = PrefixEntry {
                    action,
                    tie: false,
                    list,
                    line,
                    text,
                };
                let new = match addr {
                    IpAddr::V4(a) => {
                        let m = if len == 0 {
                            0
                        } else {
                            u32::from(a) & (u32::MAX << (32 - len))
                        };
                        inner
                            .v4
                            .get_or_insert_with(|| PrefixTable::with_bits(32))
                            .insert(m, len, entry)
                    }
                    IpAddr::V6(a) => {
                        let m = if len == 0 {
                            0
                        } else {
                            u128::from(a) & (u128::MAX << (128 - len))
                        };
                        inner
                            .v6
                            .get_or_insert_with(|| PrefixTable::with_bits(128))
                            .insert(m, len, entry)
                    }
                };
                if new {
                    inner.prefix_text.push(format!("{addr}/{len}"));
                }
            }
        }
        Ok(())
    }

    /// Freezes the builder into a set.
    pub fn build(mut self) -> IntelSet {
        let inner = &mut self.inner;
        inner.names.commit(&inner.hasher);
        IntelSet {
            inner: Arc::new(self.inner),
        }
    }
}

/// One indicator found on a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item<'a> {
    Domain(&'a str),
    Net(IpAddr, u8),
    Url(&'a str, &'a str),
    Path(&'a str),
}

/// What one line holds: up to a few items (hosts lines may list several names).
#[derive(Debug, Default)]
struct Parsed<'a> {
    exception: bool,
    first: Option<Item<'a>>,
    rest: Option<&'a str>,
}

impl<'a> Parsed<'a> {
    fn items(&self) -> impl Iterator<Item = Item<'a>> + '_ {
        self.first.into_iter().chain(
            self.rest
                .into_iter()
                .flat_map(|r| r.split_ascii_whitespace())
                .filter(|n| !is_hosts_self_entry(n))
                .map(Item::Domain),
        )
    }
}

fn is_hosts_self_entry(n: &str) -> bool {
    matches!(
        n,
        "localhost"
            | "localhost.localdomain"
            | "local"
            | "broadcasthost"
            | "0.0.0.0"
            | "localdomain"
    ) || n.starts_with("ip6-")
}

fn parse_line(text: &str) -> Result<Parsed<'_>, String> {
    let mut p = Parsed::default();
    if text.is_empty() || text.starts_with('#') || text.starts_with('!') || text.starts_with('[') {
        return Ok(p);
    }
    // Fast path for the common case, a bare name: one byte scan, no substring searches.
    if text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
        && !text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    {
        p.first = Some(Item::Domain(text));
        return Ok(p);
    }
    // Inline comments: `name # comment`.
    let text = match text.find(" #").or_else(|| text.find("\t#")) {
        Some(i) => text[..i].trim_end(),
        None => text,
    };
    if let Some(rule) = text.strip_prefix("@@||") {
        p.exception = true;
        p.first = Some(parse_adblock(rule)?);
        return Ok(p);
    }
    if let Some(rule) = text.strip_prefix("||") {
        p.first = Some(parse_adblock(rule)?);
        return Ok(p);
    }
    if let Some((scheme, rest)) = text.split_once("://") {
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return Err(format!("unsupported URL scheme `{scheme}`"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let host = strip_port(authority)?;
        let path = path.split(['?', '#']).next().unwrap_or("");
        p.first = Some(if path.is_empty() || path == "/" {
            host_item(host)
        } else {
            Item::Url(host, path)
        });
        return Ok(p);
    }
    let (first, rest) = match text.find([' ', '\t']) {
        Some(i) => (&text[..i], text[i..].trim_start()),
        None => (text, ""),
    };
    if !rest.is_empty() {
        // A hosts-file line: an address, then names.
        if first.parse::<IpAddr>().is_err() {
            return Err(format!(
                "expected one indicator, or a hosts line starting with an address; found `{text}`"
            ));
        }
        p.rest = Some(rest);
        return Ok(p);
    }
    if first.starts_with('/') {
        let path = first.split('#').next().unwrap_or("");
        if path.len() < 2 {
            return Err(format!("`{first}` is too short to be a URL path indicator"));
        }
        p.first = Some(Item::Path(path));
        return Ok(p);
    }
    // `host/path` without a scheme (a CIDR has only digits after the slash).
    if let Some((host, after)) = first.split_once('/') {
        if !after.bytes().all(|b| b.is_ascii_digit()) || after.is_empty() {
            let host = strip_port(host)?;
            let path = &first[first.len() - after.len() - 1..];
            let path = path.split(['?', '#']).next().unwrap_or("");
            p.first = Some(if path.len() <= 1 {
                host_item(host)
            } else {
                Item::Url(host, path)
            });
            return Ok(p);
        }
    }
    if let Some(net) = parse_net(first)? {
        p.first = Some(net);
        return Ok(p);
    }
    let name = first.strip_prefix("*.").unwrap_or(first);
    p.first = Some(Item::Domain(name));
    Ok(p)
}

fn host_item(host: &str) -> Item<'_> {
    match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(IpAddr::V4(a)) => Item::Net(IpAddr::V4(a), 32),
        Ok(IpAddr::V6(a)) => Item::Net(IpAddr::V6(a), 128),
        Err(_) => Item::Domain(host),
    }
}

fn strip_port(authority: &str) -> Result<&str, String> {
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    if authority.starts_with('[') {
        let end = authority
            .find(']')
            .ok_or_else(|| format!("unterminated IPv6 address in `{authority}`"))?;
        return Ok(&authority[..=end]);
    }
    Ok(match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    })
}

fn parse_adblock(rule: &str) -> Result<Item<'_>, String> {
    // `name^` or `name/path^`, optionally followed by `$options`; `^|` is also seen.
    let (body, _opts) = rule.split_once('$').unwrap_or((rule, ""));
    let body = body.trim_end_matches('|');
    let body = body.strip_suffix('^').unwrap_or(body);
    if body.contains(['*', '^', '|']) {
        return Err(format!(
            "AdBlock rule `||{rule}` uses wildcards or separators inside; only `||name^` and `||name/path^` are supported"
        ));
    }
    Ok(match body.find('/') {
        Some(i) if i + 1 < body.len() => Item::Url(strip_port(&body[..i])?, &body[i..]),
        Some(i) => host_item(strip_port(&body[..i])?),
        None => host_item(strip_port(body)?),
    })
}

fn parse_net(s: &str) -> Result<Option<Item<'_>>, String> {
    if let Some((a, l)) = s.split_once('/') {
        let Ok(addr) = a.parse::<IpAddr>() else {
            return if a
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.' || b == b':')
            {
                Err(format!("bad address in CIDR `{s}`"))
            } else {
                Err(format!("`{s}` is neither a domain, an address nor a CIDR"))
            };
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len: u8 = l
            .parse()
            .ok()
            .filter(|&n| n <= max)
            .ok_or_else(|| format!("bad prefix length in `{s}` (0..={max})"))?;
        return Ok(Some(Item::Net(addr, len)));
    }
    if let Ok(a) = s.parse::<Ipv4Addr>() {
        return Ok(Some(Item::Net(IpAddr::V4(a), 32)));
    }
    if let Ok(a) = s.parse::<Ipv6Addr>() {
        return Ok(Some(Item::Net(IpAddr::V6(a), 128)));
    }
    // `a.b.c.d:port` (maltrail) and `[v6]:port`.
    if let Some((a, port)) = s.rsplit_once(':') {
        if port.bytes().all(|b| b.is_ascii_digit()) && !port.is_empty() {
            let a = a.trim_start_matches('[').trim_end_matches(']');
            if let Ok(addr) = a.parse::<IpAddr>() {
                let len = if addr.is_ipv4() { 32 } else { 128 };
                return Ok(Some(Item::Net(addr, len)));
            }
        }
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') && s.split('.').count() == 4 {
        return Err(format!(
            "`{s}` looks like an address but is not a valid one"
        ));
    }
    Ok(None)
}

/// The common case without allocation: a plain ASCII name that only needs lowercasing and a
/// trailing dot removed. Returns `None` when the full [`normalize_domain`] must decide.
fn fast_normalize<'b>(d: &str, buf: &'b mut [u8; 253]) -> Option<&'b str> {
    let d = d.strip_suffix('.').unwrap_or(d).as_bytes();
    if d.is_empty() || d.len() > 253 || d[0] == b'.' || d[d.len() - 1] == b'.' {
        return None;
    }
    let mut label = 0usize;
    let mut prev_dot = false;
    for (i, &b) in d.iter().enumerate() {
        let c = match b {
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => b,
            b'A'..=b'Z' => b | 0x20,
            b'.' if !prev_dot => {
                label = 0;
                prev_dot = true;
                buf[i] = b'.';
                continue;
            }
            _ => return None,
        };
        prev_dot = false;
        label += 1;
        if label > 63 {
            return None;
        }
        buf[i] = c;
    }
    std::str::from_utf8(&buf[..d.len()]).ok()
}

/// Normalises a domain: lowercase, no trailing dot, IDNs to punycode; rejects what cannot be a
/// host name (empty labels, labels over 63 bytes, names over 253 bytes, bad characters).
pub fn normalize_domain(d: &str) -> Result<String, String> {
    let d = d.strip_suffix('.').unwrap_or(d);
    if d.is_empty() {
        return Err("empty domain name".into());
    }
    let ascii = if d.is_ascii() {
        d.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(d)
            .map_err(|_| format!("`{d}` is not a valid internationalised domain name"))?
    };
    if ascii.len() > 253 {
        return Err(format!("domain name longer than 253 bytes: `{d}`"));
    }
    for label in ascii.split('.') {
        if label.is_empty() {
            return Err(format!("empty label in `{d}`"));
        }
        if label.len() > 63 {
            return Err(format!("label longer than 63 bytes in `{d}`"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!("`{d}` is not a domain name (bad character)"));
        }
    }
    Ok(ascii)
}

#[cfg(test)]
mod tests;
