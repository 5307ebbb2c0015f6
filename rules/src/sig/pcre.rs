//! `pcre:"/pattern/flags"` compiled with the regex crate.
//!
//! The regex crate runs in linear time and lacks some PCRE constructs. Those (lookaround,
//! backreferences, atomic groups, possessive quantifiers, recursion, conditionals, `\Q..\E`,
//! `\G`, `\K`, verbs) are reported as skips naming the construct, never rewritten into something
//! else. Two PCRE behaviours are reproduced exactly: `$` without `m` also matches before a final
//! newline (written `(?:\n?\z)`, so the match may include that newline), and `\Z` likewise.
//! `\h`/`\H` become `[\t ]`/`[^\t ]`, `\e` becomes `\x1B`. Matching is on bytes with Unicode
//! off, as PCRE without the UTF flag: `.` is any byte but newline, `\w`, `\d`, `\s` are ASCII.

use super::parse::Fail;
use super::{Buf, Skip};

pub(crate) struct PcreFlags {
    pub relative: bool,
    pub buf: Option<Buf>,
}

fn skip<T>(reason: impl Into<String>) -> Result<T, Fail> {
    Err(Fail::Skip(Skip {
        keyword: "pcre".into(),
        reason: reason.into(),
    }))
}

fn syn<T>(reason: impl Into<String>) -> Result<T, Fail> {
    Err(Fail::Syntax(reason.into()))
}

/// Compiles the text between the quotes of a `pcre` option.
pub(crate) fn compile(quoted: &str) -> Result<(regex::bytes::Regex, PcreFlags), Fail> {
    // Rule-level escapes of the quote and semicolon.
    let text = quoted.replace("\\;", ";").replace("\\\"", "\"");
    let Some(rest) = text.strip_prefix('/') else {
        return syn("pcre must start with '/'");
    };
    let Some(end) = rest.rfind('/') else {
        return syn("pcre has no closing '/'");
    };
    let (pat, flags) = (&rest[..end], &rest[end + 1..]);
    let (mut ci, mut dotall, mut multi, mut ext, mut anchored, mut dollar_end, mut ungreedy) =
        (false, false, false, false, false, false, false);
    let mut f = PcreFlags {
        relative: false,
        buf: None,
    };
    for c in flags.chars() {
        let buf = match c {
            'i' => {
                ci = true;
                None
            }
            's' => {
                dotall = true;
                None
            }
            'm' => {
                multi = true;
                None
            }
            'x' => {
                ext = true;
                None
            }
            'A' => {
                anchored = true;
                None
            }
            'E' => {
                dollar_end = true;
                None
            }
            'G' => {
                ungreedy = true;
                None
            }
            'R' => {
                f.relative = true;
                None
            }
            'B' | 'O' => None,
            'U' => Some(Buf::HttpUri),
            'I' => Some(Buf::HttpUriRaw),
            'P' => Some(Buf::HttpRequestBody),
            'Q' => Some(Buf::FileData),
            'H' => Some(Buf::HttpHeader),
            'D' => Some(Buf::HttpHeaderRaw),
            'M' => Some(Buf::HttpMethod),
            'C' => Some(Buf::HttpCookie),
            'S' => Some(Buf::HttpStatCode),
            'Y' => Some(Buf::HttpStatMsg),
            'V' => Some(Buf::HttpUserAgent),
            'W' => Some(Buf::HttpHost),
            'Z' => Some(Buf::HttpHostRaw),
            _ => return syn(format!("unknown pcre flag '{c}'")),
        };
        if let Some(x) = buf {
            if f.buf.is_some_and(|y| y != x) {
                return syn("two buffer flags in one pcre");
            }
            f.buf = Some(x);
        }
    }
    let translated = translate(pat, multi, dollar_end)?;
    let full = if anchored {
        format!("\\A(?:{translated})")
    } else {
        translated
    };
    let mut b = regex::bytes::RegexBuilder::new(&full);
    b.case_insensitive(ci)
        .dot_matches_new_line(dotall)
        .multi_line(multi)
        .ignore_whitespace(ext)
        .swap_greed(ungreedy)
        .unicode(false)
        .octal(true)
        .size_limit(4 << 20)
        .dfa_size_limit(256 << 10);
    match b.build() {
        Ok(re) => Ok((re, f)),
        Err(regex::Error::CompiledTooBig(n)) => skip(format!(
            "compiled pattern exceeds the {} KiB limit",
            n >> 10
        )),
        Err(e) => {
            let first = e.to_string();
            let first = first.lines().last().unwrap_or("").trim().to_owned();
            skip(format!("the regex crate rejects it: {first}"))
        }
    }
}

/// Rewrites PCRE-only spellings; reports constructs the regex crate cannot express.
fn translate(p: &str, multi: bool, dollar_end: bool) -> Result<String, Fail> {
    let b = p.as_bytes();
    let mut out = String::with_capacity(p.len() + 8);
    let mut i = 0;
    let mut class = false;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' {
            let Some(&n) = b.get(i + 1) else {
                return syn("pcre ends with '\\'");
            };
            match n {
                b'1'..=b'9' if !class => return skip("backreference (\\N)"),
                b'g' | b'k' if !class => return skip("backreference (\\g, \\k)"),
                b'Q' | b'E' => return skip("\\Q...\\E quoting"),
                b'G' | b'K' | b'C' | b'X' | b'R' if !class => {
                    return skip(format!("\\{} is not supported", n as char))
                }
                b'Z' if !class => out.push_str("(?:\\n?\\z)"),
                b'h' => out.push_str(if class { "\\t " } else { "[\\t ]" }),
                b'H' if !class => out.push_str("[^\\t ]"),
                b'e' => out.push_str("\\x1B"),
                b'/' => out.push('/'),
                _ => {
                    // Keep other escapes; bytes after the backslash are copied whole (UTF-8).
                    let ch_len = utf8_len(n);
                    out.push('\\');
                    out.push_str(&p[i + 1..(i + 1 + ch_len).min(p.len())]);
                    i += 1 + ch_len;
                    continue;
                }
            }
            i += 2;
            continue;
        }
        if class {
            if c == b']' {
                class = false;
            } else if c == b'[' && b.get(i + 1) == Some(&b':') {
                // POSIX class [:alpha:], copied whole.
                if let Some(end) = p[i + 2..].find(":]") {
                    out.push_str(&p[i..i + 2 + end + 2]);
                    i += 2 + end + 2;
                    continue;
                }
            } else if c == b'[' {
                // A literal '[' inside a class: the regex crate would read a nested class.
                out.push_str("\\[");
                i += 1;
                continue;
            } else if c == b'&' || c == b'~' || c == b'-' && b.get(i + 1) == Some(&b'-') {
                // Class set operators in the regex crate; literals in PCRE.
                out.push('\\');
                out.push(c as char);
                i += 1;
                continue;
            }
            let ch_len = utf8_len(c);
            out.push_str(&p[i..(i + ch_len).min(p.len())]);
            i += ch_len;
            continue;
        }
        match c {
            b'[' => {
                class = true;
                out.push('[');
                i += 1;
                // A ']' (after an optional '^') first in a class is a literal.
                if b.get(i) == Some(&b'^') {
                    out.push('^');
                    i += 1;
                }
                if b.get(i) == Some(&b']') {
                    out.push_str("\\]");
                    i += 1;
                }
                continue;
            }
            b'(' => {
                let rest = &p[i + 1..];
                if rest.starts_with("?=") || rest.starts_with("?!") {
                    return skip("lookahead");
                }
                if rest.starts_with("?<=") || rest.starts_with("?<!") {
                    return skip("lookbehind");
                }
                if rest.starts_with("?>") {
                    return skip("atomic group");
                }
                if rest.starts_with("?(") {
                    return skip("conditional group");
                }
                if rest.starts_with("?P=") {
                    return skip("backreference ((?P=name))");
                }
                if rest.starts_with("?R") || rest.starts_with("?&") || rest.starts_with("?P>") {
                    return skip("recursion");
                }
                if rest.starts_with('*') {
                    return skip("backtracking verb");
                }
                let r1 = rest.as_bytes().get(1).copied().unwrap_or(0);
                let r2 = rest.as_bytes().get(2).copied().unwrap_or(0);
                if rest.starts_with('?')
                    && (r1.is_ascii_digit() || r1 == b'+' || r1 == b'-' && r2.is_ascii_digit())
                {
                    return skip("recursion");
                }
                out.push('(');
            }
            b'+' | b'*' | b'?' | b'}' => {
                out.push(c as char);
                if b.get(i + 1) == Some(&b'+') {
                    return skip("possessive quantifier");
                }
            }
            b'{' => {
                // PCRE reads '{' that does not start a valid quantifier as a literal.
                let rest = &p[i + 1..];
                let q = rest.find('}').map(|e| &rest[..e]);
                let valid = q.is_some_and(|q| {
                    let mut parts = q.splitn(2, ',');
                    let a = parts.next().unwrap_or("");
                    let bb = parts.next();
                    !a.is_empty()
                        && a.bytes().all(|d| d.is_ascii_digit())
                        && bb.is_none_or(|x| x.bytes().all(|d| d.is_ascii_digit()))
                });
                if valid {
                    out.push('{');
                } else {
                    out.push_str("\\{");
                }
            }
            b'$' if multi => out.push('$'),
            b'$' if dollar_end => out.push_str("\\z"),
            b'$' => out.push_str("(?:\\n?\\z)"),
            _ => {
                let ch_len = utf8_len(c);
                out.push_str(&p[i..(i + ch_len).min(p.len())]);
                i += ch_len;
                continue;
            }
        }
        i += 1;
    }
    if class {
        return syn("unterminated character class in pcre");
    }
    Ok(out)
}

fn utf8_len(b: u8) -> usize {
    match b {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    }
}
