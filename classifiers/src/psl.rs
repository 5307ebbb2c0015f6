//! The Public Suffix List: which part of a name is the registrable domain.
//!
//! Rules are loaded once (normal, wildcard `*.x` and exception `!y.x` rules, IDN rules converted
//! to their ASCII form); a lookup walks the name's label boundaries from the right and probes a
//! hash set, so it allocates nothing. As the list's own algorithm says: the longest matching rule
//! wins, an exception beats everything, and with no rule the last label is the suffix (the
//! implicit `*` rule).

use hashbrown::HashMap;

type Map = HashMap<Box<str>, u8, foldhash::fast::FixedState>;

/// `x` is a rule.
const NORMAL: u8 = 1;
/// `*.x` is a rule.
const WILDCARD: u8 = 2;
/// `!x` is a rule.
const EXCEPTION: u8 = 4;
/// `x` is a dynamic-DNS zone: its subdomains are handed out to anyone, like a public suffix's.
const DYNAMIC: u8 = 8;

/// A parsed Public Suffix List: one map from a suffix to the kinds of rule on it, so a lookup
/// costs one probe per label.
#[derive(Debug, Clone, Default)]
pub struct Psl {
    rules: Map,
    count: usize,
}

/// Where the parts of a name are, as byte offsets into the (normalised) name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// Start of the public suffix (`co.uk` in `a.b.example.co.uk`).
    pub suffix: usize,
    /// Start of the registrable label (`example`); equal to `suffix` when the name is itself a
    /// public suffix.
    pub label: usize,
    /// The suffix is a dynamic-DNS zone ([`Psl::add_dynamic`]).
    pub dynamic: bool,
}

/// A line of the list that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PslError {
    /// 1-based line number.
    pub line: usize,
    /// Why.
    pub reason: &'static str,
}

impl std::fmt::Display for PslError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl Psl {
    /// The list shipped with the crate (`data/public_suffix_list.dat`, MPL-2.0) with maltrail's
    /// dynamic-DNS zones added (`data/dynamic_dns.txt`, MIT; both in `data/SOURCES.md`): the
    /// rules the shipped model was trained with.
    pub fn bundled() -> Psl {
        let (mut psl, errors) = Psl::parse(include_str!("../data/public_suffix_list.dat"));
        debug_assert!(errors.is_empty());
        let errors = psl.add_dynamic(include_str!("../data/dynamic_dns.txt"));
        debug_assert!(errors.is_empty());
        psl
    }

    /// [`Psl::bundled`], parsed once per process and shared.
    pub fn shared() -> &'static Psl {
        static PSL: std::sync::OnceLock<Psl> = std::sync::OnceLock::new();
        PSL.get_or_init(Psl::bundled)
    }

    /// Adds dynamic-DNS zones, one per line (`#` starts a comment): each becomes a suffix rule
    /// marked dynamic, so `x.mooo.com` has `x` as its registrable label, as `x.ddns.net` already
    /// has by the list's private section. Lines that cannot be used are returned by number.
    pub fn add_dynamic(&mut self, text: &str) -> Vec<PslError> {
        let mut errors = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let Some(zone) = line
                .split('#')
                .next()
                .and_then(|l| l.split_whitespace().next())
            else {
                continue;
            };
            let zone = zone.trim_end_matches('.').to_ascii_lowercase();
            let usable = zone.contains('.')
                && !zone.starts_with('.')
                && zone
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.');
            if !usable {
                errors.push(PslError {
                    line: i + 1,
                    reason: "not a dynamic-DNS zone",
                });
                continue;
            }
            let bits = self.rules.entry(zone.into_boxed_str()).or_insert(0);
            if *bits & NORMAL == 0 {
                self.count += 1;
            }
            *bits |= NORMAL | DYNAMIC;
        }
        errors
    }

    /// The dynamic-DNS zones added by [`Psl::add_dynamic`], sorted.
    pub fn dynamic_zones(&self) -> Vec<&str> {
        let mut v: Vec<&str> = (self.rules.iter())
            .filter(|(_, &bits)| bits & DYNAMIC != 0)
            .map(|(k, _)| &**k)
            .collect();
        v.sort_unstable();
        v
    }

    /// Parses the list's text. Lines that cannot be used are returned with their line number;
    /// every other rule is kept.
    pub fn parse(text: &str) -> (Psl, Vec<PslError>) {
        let mut psl = Psl::default();
        let mut errors = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let Some(rule) = line.split_whitespace().next() else {
                continue;
            };
            if rule.starts_with("//") {
                continue;
            }
            let (kind, body) = if let Some(r) = rule.strip_prefix('!') {
                (EXCEPTION, r)
            } else if let Some(r) = rule.strip_prefix("*.") {
                (WILDCARD, r)
            } else {
                (NORMAL, rule)
            };
            let ascii = if body.is_ascii() {
                Some(body.to_ascii_lowercase())
            } else {
                idna::domain_to_ascii(body).ok()
            };
            match ascii {
                Some(a) if !a.is_empty() && !a.contains('*') && !a.starts_with('.') => {
                    let bits = psl.rules.entry(a.into_boxed_str()).or_insert(0);
                    if *bits & kind == 0 {
                        *bits |= kind;
                        psl.count += 1;
                    }
                }
                _ => errors.push(PslError {
                    line: i + 1,
                    reason: "not a usable rule",
                }),
            }
        }
        (psl, errors)
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when no rule is loaded (every name then has its last label as suffix).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Splits a lower-case ASCII name without a trailing dot.
    pub fn split(&self, name: &str) -> Split {
        let b = name.as_bytes();
        // Label starts, right to left: the last label first.
        let mut best: Option<usize> = None;
        let mut dynamic = false;
        let mut end = b.len();
        let mut prev_start: Option<usize> = None;
        let mut prev_bits = 0u8;
        loop {
            let start = b[..end]
                .iter()
                .rposition(|&c| c == b'.')
                .map_or(0, |p| p + 1);
            let bits = self.rules.get(&name[start..]).copied().unwrap_or(0);
            if bits & EXCEPTION != 0 {
                // The exception's own leftmost label is registrable: its suffix starts at the
                // label to the right.
                best = prev_start.or(Some(b.len()));
                dynamic = prev_bits & DYNAMIC != 0;
                break;
            }
            // This label is a suffix by its own rule, or by a wildcard on its parent.
            if bits & NORMAL != 0 || prev_bits & WILDCARD != 0 {
                best = Some(start);
                dynamic = bits & DYNAMIC != 0;
            }
            prev_bits = bits;
            prev_start = Some(start);
            if start == 0 {
                break;
            }
            end = start - 1;
        }
        let suffix = best.unwrap_or_else(|| name.rfind('.').map_or(0, |p| p + 1));
        let label = if suffix == 0 {
            0
        } else {
            name[..suffix - 1].rfind('.').map_or(0, |p| p + 1)
        };
        Split {
            suffix,
            label,
            dynamic,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(psl: &Psl, name: &str) -> Option<String> {
        let s = psl.split(name);
        (s.label < s.suffix).then(|| name[s.label..].to_string())
    }

    /// The list's own test vectors (`test_psl.txt`, CC0, from the Debian package), read from
    /// `../shared` beside the repository.
    #[test]
    fn public_suffix_list_test_vectors() {
        let psl = Psl::bundled();
        assert!(psl.len() > 9000, "{} rules", psl.len());
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/data/domains/psl/test_psl.txt"
        );
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                assert!(std::env::var("CI").as_deref() != Ok("true"), "{path}: {e}");
                eprintln!("skipping: {path}: {e}");
                return;
            }
        };
        let mut checked = 0;
        for line in text.lines() {
            let line = line.trim();
            let Some(args) = line.strip_prefix("checkPublicSuffix(") else {
                continue;
            };
            let args = args.trim_end_matches(");");
            let mut it = args.split(',').map(|a| a.trim());
            let (Some(input), Some(want)) = (it.next(), it.next()) else {
                continue;
            };
            let input = input.trim_matches('\'');
            let want = (want != "null").then(|| want.trim_matches('\'').to_string());
            if input == "null" || input.starts_with('.') || !input.is_ascii() {
                // Leading dots and Unicode input are the caller's job (names are normalised
                // and ASCII before they get here).
                continue;
            }
            let lower = input.to_ascii_lowercase();
            assert_eq!(reg(&psl, &lower), want, "{input}");
            checked += 1;
        }
        assert!(checked > 60, "only {checked} vectors");
    }

    #[test]
    fn wildcard_exception_and_default() {
        let (psl, errs) = Psl::parse("com\n*.ck\n!www.ck\nco.uk\n// comment\nuk\n");
        assert!(errs.is_empty());
        assert_eq!(
            reg(&psl, "a.b.example.co.uk").as_deref(),
            Some("example.co.uk")
        );
        assert_eq!(reg(&psl, "x.y.ck").as_deref(), Some("x.y.ck"));
        assert_eq!(reg(&psl, "www.ck").as_deref(), Some("www.ck"));
        assert_eq!(reg(&psl, "a.www.ck").as_deref(), Some("www.ck"));
        assert_eq!(reg(&psl, "foo.unlisted").as_deref(), Some("foo.unlisted"));
        assert_eq!(reg(&psl, "unlisted"), None);
        assert_eq!(reg(&psl, "co.uk"), None);
        let s = psl.split("mail.example.com");
        assert_eq!((s.label, s.suffix), (5, 13));
    }

    #[test]
    fn dynamic_zones_are_suffixes() {
        let (mut psl, _) = Psl::parse("com\norg\nddns.net\nnet\n*.dyn.example.com\n");
        let errs = psl.add_dynamic("# header\nmooo.com\nddns.net # no-ip\n\ncom\nbad_zone.org\n");
        assert_eq!(errs.iter().map(|e| e.line).collect::<Vec<_>>(), vec![5, 6]);
        let s = psl.split("a.zukeujat.mooo.com");
        assert_eq!((s.label, s.suffix, s.dynamic), (2, 11, true));
        let s = psl.split("x.ddns.net");
        assert_eq!((s.label, s.suffix, s.dynamic), (0, 2, true));
        // A longer ordinary rule under a zone wins, and is not dynamic.
        let s = psl.split("a.b.dyn.example.com");
        assert_eq!((s.label, s.dynamic), (0, false));
        assert!(!psl.split("example.com").dynamic);
        // The zone itself is all suffix.
        let s = psl.split("mooo.com");
        assert_eq!((s.label, s.suffix, s.dynamic), (0, 0, true));
        // The bundled rules carry maltrail's zones.
        let b = Psl::bundled();
        assert!(b.split("zukeujat.yi.org").dynamic);
        assert!(b.split("host.duckdns.org").dynamic);
        assert!(!b.split("www.example.co.uk").dynamic);
        let zones = b.dynamic_zones();
        assert!(zones.len() == 2035 && zones.windows(2).all(|w| w[0] < w[1]));
        assert!(zones.contains(&"mooo.com") && !zones.contains(&"com"));
    }

    #[test]
    fn bad_lines_are_reported_by_number() {
        let (psl, errs) = Psl::parse("com\n*.*.x\n!.\nnet\n");
        assert_eq!(psl.len(), 2);
        assert_eq!(errs.iter().map(|e| e.line).collect::<Vec<_>>(), vec![2, 3]);
    }
}
