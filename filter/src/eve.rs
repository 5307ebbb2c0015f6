//! Eve JSON lines, as Suricata writes them: a tiny writer over a reused `Vec<u8>` (no
//! allocation per event once warm), Suricata's timestamp format, and Community ID v1.

use std::net::IpAddr;

use base64_lite::encode_into;
use sha1_smol::Sha1;

/// A JSON object writer appending to a byte buffer.
#[derive(Debug)]
pub struct Obj<'a> {
    buf: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    /// Opens an object.
    pub fn new(buf: &'a mut Vec<u8>) -> Obj<'a> {
        buf.push(b'{');
        Obj { buf, first: true }
    }

    fn key(&mut self, k: &str) {
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
        self.buf.push(b'"');
        self.buf.extend_from_slice(k.as_bytes());
        self.buf.extend_from_slice(b"\":");
    }

    /// A string field.
    pub fn str(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k);
        escape(self.buf, v.as_bytes());
        self
    }

    /// A string field from bytes (invalid UTF-8 is escaped as `\u00XX`).
    pub fn bytes(&mut self, k: &str, v: &[u8]) -> &mut Self {
        self.key(k);
        escape(self.buf, v);
        self
    }

    /// An unsigned number.
    pub fn u64(&mut self, k: &str, v: u64) -> &mut Self {
        self.key(k);
        let mut b = itoa_buf::Buf::default();
        self.buf.extend_from_slice(b.fmt(v));
        self
    }

    /// A boolean.
    pub fn bool(&mut self, k: &str, v: bool) -> &mut Self {
        self.key(k);
        self.buf
            .extend_from_slice(if v { b"true" } else { b"false" });
        self
    }

    /// An IP address as a string; IPv6 fully expanded, as Suricata writes it.
    pub fn ip(&mut self, k: &str, v: IpAddr) -> &mut Self {
        self.key(k);
        self.buf.push(b'"');
        write_ip(self.buf, v);
        self.buf.push(b'"');
        self
    }

    /// A Suricata timestamp from nanoseconds since the epoch.
    pub fn ts(&mut self, k: &str, ns: i64) -> &mut Self {
        self.key(k);
        timestamp(self.buf, ns);
        self
    }

    /// Raw, already-formatted JSON.
    pub fn raw(&mut self, k: &str, json: &[u8]) -> &mut Self {
        self.key(k);
        self.buf.extend_from_slice(json);
        self
    }

    /// A nested object, filled by `f`.
    pub fn obj(&mut self, k: &str, f: impl FnOnce(&mut Obj<'_>)) -> &mut Self {
        self.key(k);
        let mut o = Obj::new(self.buf);
        f(&mut o);
        o.close();
        self
    }

    /// An array of values, each written by `f` into the buffer (use [`Arr`]).
    pub fn arr(&mut self, k: &str, f: impl FnOnce(&mut Arr<'_>)) -> &mut Self {
        self.key(k);
        self.buf.push(b'[');
        let mut a = Arr {
            buf: self.buf,
            first: true,
        };
        f(&mut a);
        self.buf.push(b']');
        self
    }

    /// Closes the object.
    pub fn close(self) {
        self.buf.push(b'}');
    }
}

/// Lowercase hex digits, by value.
pub(crate) const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes an address as Suricata does: dotted quad, or eight 4-digit hex groups. Written digit by
/// digit: `fmt` costs several times as much, and every event has two addresses.
pub fn write_ip(buf: &mut Vec<u8>, v: IpAddr) {
    match v {
        IpAddr::V4(a) => {
            let mut digits = itoa_buf::Buf::default();
            for (i, o) in a.octets().into_iter().enumerate() {
                if i > 0 {
                    buf.push(b'.');
                }
                buf.extend_from_slice(digits.fmt(u64::from(o)));
            }
        }
        IpAddr::V6(a) => {
            for (i, s) in a.segments().into_iter().enumerate() {
                if i > 0 {
                    buf.push(b':');
                }
                buf.extend_from_slice(&[
                    HEX[usize::from(s >> 12)],
                    HEX[usize::from(s >> 8 & 15)],
                    HEX[usize::from(s >> 4 & 15)],
                    HEX[usize::from(s & 15)],
                ]);
            }
        }
    }
}

/// A JSON array writer.
#[derive(Debug)]
pub struct Arr<'a> {
    buf: &'a mut Vec<u8>,
    first: bool,
}

impl Arr<'_> {
    fn sep(&mut self) {
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
    }

    /// A string element.
    pub fn str(&mut self, v: &str) {
        self.sep();
        escape(self.buf, v.as_bytes());
    }

    /// An address element.
    pub fn ip(&mut self, v: IpAddr) {
        self.sep();
        self.buf.push(b'"');
        write_ip(self.buf, v);
        self.buf.push(b'"');
    }

    /// An object element.
    pub fn obj(&mut self, f: impl FnOnce(&mut Obj<'_>)) {
        self.sep();
        let mut o = Obj::new(self.buf);
        f(&mut o);
        o.close();
    }
}

/// Bytes that JSON lets through as they are (besides valid UTF-8 sequences, handled apart).
fn plain(c: u8) -> bool {
    (0x20..0x80).contains(&c) && c != b'"' && c != b'\\'
}

fn escape(buf: &mut Vec<u8>, v: &[u8]) {
    buf.push(b'"');
    let mut i = 0;
    while i < v.len() {
        // Runs of plain bytes (almost every name and URL is one run) are copied at once.
        let run = v[i..]
            .iter()
            .position(|&c| !plain(c))
            .unwrap_or(v.len() - i);
        buf.extend_from_slice(&v[i..i + run]);
        i += run;
        let Some(&c) = v.get(i) else { break };
        match c {
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            _ => {
                // Keep valid UTF-8 sequences, escape control characters and stray bytes.
                let len = match c {
                    0xc2..=0xdf => 2,
                    0xe0..=0xef => 3,
                    0xf0..=0xf4 => 4,
                    _ => 0,
                };
                if len > 0 && i + len <= v.len() && std::str::from_utf8(&v[i..i + len]).is_ok() {
                    buf.extend_from_slice(&v[i..i + len]);
                    i += len;
                    continue;
                }
                buf.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(c >> 4)],
                    HEX[usize::from(c & 15)],
                ]);
            }
        }
        i += 1;
    }
    buf.push(b'"');
}

/// Writes a Suricata timestamp (`2016-09-28T23:38:07.123456+0000`, UTC) as a JSON string.
pub fn timestamp(buf: &mut Vec<u8>, ns: i64) {
    let secs = ns.div_euclid(1_000_000_000);
    let us = ns.rem_euclid(1_000_000_000) / 1000;
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    // Every i64 of nanoseconds falls in the years 1677 to 2262: four digits.
    let mut t = *b"\"0000-00-00T00:00:00.000000+0000\"";
    let mut put = |at: usize, width: usize, mut v: u64| {
        for k in (at..at + width).rev() {
            t[k] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(1, 4, y as u64);
    put(6, 2, u64::from(m));
    put(9, 2, u64::from(d));
    put(12, 2, (sod / 3600) as u64);
    put(15, 2, (sod / 60 % 60) as u64);
    put(18, 2, (sod % 60) as u64);
    put(21, 6, us as u64);
    buf.extend_from_slice(&t);
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Community ID v1 (`1:` + base64 of SHA-1), written into `out` (cleared first).
pub fn community_id(
    out: &mut String,
    seed: u16,
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    proto: u8,
) {
    // Order endpoints so the smaller (address, then port) comes first.
    let (a, b) = if (src.0, src.1) <= (dst.0, dst.1) {
        (src, dst)
    } else {
        (dst, src)
    };
    let mut h = Sha1::new();
    h.update(&seed.to_be_bytes());
    let put = |h: &mut Sha1, ip: IpAddr| match ip {
        IpAddr::V4(v) => h.update(&v.octets()),
        IpAddr::V6(v) => h.update(&v.octets()),
    };
    put(&mut h, a.0);
    put(&mut h, b.0);
    h.update(&[proto, 0]);
    if matches!(proto, 6 | 17 | 132 | 1 | 58) {
        h.update(&a.1.to_be_bytes());
        h.update(&b.1.to_be_bytes());
    }
    out.clear();
    out.push_str("1:");
    encode_into(&h.digest().bytes(), out);
}

/// Decimal digits of an integer, without `fmt` or allocation.
pub(crate) mod itoa_buf {
    #[derive(Default)]
    pub struct Buf([u8; 20]);
    impl Buf {
        pub fn fmt(&mut self, mut v: u64) -> &[u8] {
            let mut i = 20;
            loop {
                i -= 1;
                self.0[i] = b'0' + (v % 10) as u8;
                v /= 10;
                if v == 0 {
                    break;
                }
            }
            &self.0[i..]
        }
    }
}

/// Standard base64 with padding.
pub(crate) mod base64_lite {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    pub fn encode_into(b: &[u8], out: &mut String) {
        for c in b.chunks(3) {
            let n = (c[0] as u32) << 16
                | (*c.get(1).unwrap_or(&0) as u32) << 8
                | *c.get(2).unwrap_or(&0) as u32;
            out.push(T[(n >> 18) as usize & 63] as char);
            out.push(T[(n >> 12) as usize & 63] as char);
            out.push(if c.len() > 1 {
                T[(n >> 6) as usize & 63] as char
            } else {
                '='
            });
            out.push(if c.len() > 2 {
                T[n as usize & 63] as char
            } else {
                '='
            });
        }
    }
}

/// Writes `args` into `buf` on the stack and returns what was written (at most 16 bytes: short
/// numbers and names for event fields, without allocating).
pub(crate) fn fmt_small<'b>(buf: &'b mut [u8; 16], args: std::fmt::Arguments<'_>) -> &'b [u8] {
    use std::io::Write as _;
    let mut c = std::io::Cursor::new(&mut buf[..]);
    let _ = c.write_fmt(args);
    let n = c.position() as usize;
    &buf[..n]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn community_id_matches_the_spec_vector() {
        // From the Community ID spec's baseline: TCP 128.232.110.120:34855 -> 66.35.250.204:80.
        let mut s = String::new();
        community_id(
            &mut s,
            0,
            ("128.232.110.120".parse().unwrap(), 34855),
            ("66.35.250.204".parse().unwrap(), 80),
            6,
        );
        assert_eq!(s, "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
        let mut t = String::new();
        community_id(
            &mut t,
            0,
            ("66.35.250.204".parse().unwrap(), 80),
            ("128.232.110.120".parse().unwrap(), 34855),
            6,
        );
        assert_eq!(s, t);
    }

    proptest::proptest! {
        /// The digit-by-digit writers against `fmt`, over the whole range of their inputs.
        #[test]
        fn writers_agree_with_fmt(ns: i64, v4: u32, v6: u128, bytes: Vec<u8>, text: String) {
            let mut b = Vec::new();
            timestamp(&mut b, ns);
            let secs = ns.div_euclid(1_000_000_000);
            let (y, m, d) = civil_from_days(secs.div_euclid(86400));
            let sod = secs.rem_euclid(86400);
            let want = format!(
                "\"{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}+0000\"",
                sod / 3600,
                sod / 60 % 60,
                sod % 60,
                ns.rem_euclid(1_000_000_000) / 1000
            );
            proptest::prop_assert_eq!(String::from_utf8(b).unwrap(), want);
            let mut b = Vec::new();
            write_ip(&mut b, IpAddr::V4(v4.into()));
            proptest::prop_assert_eq!(String::from_utf8(b).unwrap(), std::net::Ipv4Addr::from(v4).to_string());
            let mut b = Vec::new();
            write_ip(&mut b, IpAddr::V6(v6.into()));
            let segs: Vec<String> = std::net::Ipv6Addr::from(v6).segments().iter().map(|s| format!("{s:04x}")).collect();
            proptest::prop_assert_eq!(String::from_utf8(b).unwrap(), segs.join(":"));
            // Escaped output is JSON that decodes to the input (valid UTF-8) ...
            let mut b = Vec::new();
            escape(&mut b, text.as_bytes());
            let back: String = serde_json::from_slice(&b).unwrap();
            proptest::prop_assert_eq!(back, text);
            // ... and any bytes give valid JSON that keeps every byte: valid UTF-8 as it is, a
            // stray byte as the character of its value (`\u00XX`).
            let mut b = Vec::new();
            escape(&mut b, &bytes);
            let back: String = serde_json::from_slice(&b).unwrap();
            let mut want = String::new();
            for chunk in bytes.utf8_chunks() {
                want.push_str(chunk.valid());
                want.extend(chunk.invalid().iter().map(|&c| char::from(c)));
            }
            proptest::prop_assert_eq!(back, want);
        }
    }

    #[test]
    fn timestamps_and_escaping() {
        let mut b = Vec::new();
        timestamp(&mut b, 1_475_105_887_123_456_789);
        assert_eq!(b, b"\"2016-09-28T23:38:07.123456+0000\"");
        let mut b = Vec::new();
        let mut o = Obj::new(&mut b);
        o.bytes("k", b"a\"\\\n\x01\xff\xc3\xa9");
        o.close();
        assert_eq!(
            String::from_utf8(b).unwrap(),
            "{\"k\":\"a\\\"\\\\\\n\\u0001\\u00ffé\"}"
        );
    }
}
