//! The few X.509 fields Suricata logs and matches: subject, issuer, serial, SHA-1 fingerprint,
//! validity and DNS subject alternative names, read from DER with a bounded TLV reader.
//!
//! Names are written as Suricata writes them: attributes in certificate order, `C=US, O=...,
//! CN=...`, with `Email=` for emailAddress and the dotted OID for attributes it has no name for.
//! Anything malformed yields `None`; nothing here can read past its input.

use crate::pool::{keep_str, push_lossy, Packed, Recycle, KEEP_BYTES};

/// What is logged and matched of one certificate.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// `C=.., O=.., CN=..`.
    pub subject: String,
    /// The issuer, the same way.
    pub issuer: String,
    /// Serial number bytes as uppercase hex pairs joined by `:`.
    pub serial: String,
    /// SHA-1 of the DER, lowercase hex pairs joined by `:`.
    pub fingerprint: String,
    /// notBefore, `YYYY-MM-DDTHH:MM:SS`.
    pub not_before: String,
    /// notAfter, the same way.
    pub not_after: String,
    /// DNS names of the subjectAltName extension (at most [`MAX_SANS`]).
    pub sans: Sans,
}

/// DNS names, held in one buffer (so a recycled certificate fills the same memory).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sans(Packed);

impl Sans {
    /// The names, in certificate order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).filter_map(|k| self.get(k))
    }

    /// The `k`th name.
    pub fn get(&self, k: usize) -> Option<&str> {
        // Written by `Packed::push_text`, so always UTF-8.
        std::str::from_utf8(self.0.get(k)?).ok()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// None.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn push(&mut self, name: &[u8]) {
        self.0.push_text(name);
    }

    fn clear(&mut self) {
        self.0.clear(KEEP_BYTES);
    }

    /// Bytes held.
    pub fn held(&self) -> usize {
        self.0.held()
    }
}

impl CertInfo {
    /// Bytes held by its strings.
    pub fn held(&self) -> usize {
        std::mem::size_of::<CertInfo>()
            + self.subject.capacity()
            + self.issuer.capacity()
            + self.serial.capacity()
            + self.fingerprint.capacity()
            + self.not_before.capacity()
            + self.not_after.capacity()
            + self.sans.held()
    }
}

impl Recycle for CertInfo {
    fn recycle(&mut self) {
        for s in [
            &mut self.subject,
            &mut self.issuer,
            &mut self.serial,
            &mut self.fingerprint,
            &mut self.not_before,
            &mut self.not_after,
        ] {
            keep_str(s);
        }
        self.sans.clear();
    }
    fn bytes(&self) -> usize {
        self.held()
    }
    crate::thread_pool!(CertInfo);
}

/// Most DNS names kept from one certificate.
pub const MAX_SANS: usize = 64;

/// One TLV: (tag, content, rest).
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, b) = b.split_first()?;
    let (&l0, mut b) = b.split_first()?;
    let len = if l0 < 0x80 {
        l0 as usize
    } else {
        let n = (l0 & 0x7f) as usize;
        if n == 0 || n > 4 || b.len() < n {
            return None;
        }
        let mut v = 0usize;
        for &x in &b[..n] {
            v = v << 8 | x as usize;
        }
        b = &b[n..];
        v
    };
    if b.len() < len {
        return None;
    }
    Some((tag, &b[..len], &b[len..]))
}

fn hex_join(b: &[u8], upper: bool, out: &mut String) {
    out.reserve(3 * b.len());
    use std::fmt::Write;
    for (i, x) in b.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        let _ = if upper {
            write!(out, "{x:02X}")
        } else {
            write!(out, "{x:02x}")
        };
    }
}

fn oid_name(oid: &[u8]) -> Option<&'static str> {
    Some(match oid {
        [0x55, 0x04, 0x03] => "CN",
        [0x55, 0x04, 0x06] => "C",
        [0x55, 0x04, 0x07] => "L",
        [0x55, 0x04, 0x08] => "ST",
        [0x55, 0x04, 0x09] => "street",
        [0x55, 0x04, 0x0a] => "O",
        [0x55, 0x04, 0x0b] => "OU",
        [0x55, 0x04, 0x05] => "serialNumber",
        [0x55, 0x04, 0x04] => "SN",
        [0x55, 0x04, 0x2a] => "GN",
        [0x55, 0x04, 0x0c] => "title",
        [0x55, 0x04, 0x11] => "postalCode",
        [0x55, 0x04, 0x0f] => "businessCategory",
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "Email",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => "UID",
        _ => return None,
    })
}

fn oid_dotted(oid: &[u8], out: &mut String) {
    use std::fmt::Write;
    let mut first = true;
    let mut v: u64 = 0;
    for &b in oid {
        v = v.saturating_mul(128) | (b & 0x7f) as u64;
        if b & 0x80 == 0 {
            if first {
                let (a, c) = if v < 80 {
                    (v / 40, v % 40)
                } else {
                    (2, v - 80)
                };
                let _ = write!(out, "{a}.{c}");
                first = false;
            } else {
                let _ = write!(out, ".{v}");
            }
            v = 0;
        }
    }
}

fn string_value(tag: u8, v: &[u8], out: &mut String) {
    match tag {
        // BMPString: UTF-16BE, written as `String::from_utf16_lossy` would.
        0x1e => out.extend(
            char::decode_utf16(v.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])))
                .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)),
        ),
        _ => push_lossy(out, v),
    }
}

/// Writes a distinguished name to `out` (emptied first).
fn name(b: &[u8], out: &mut String) -> Option<()> {
    out.clear();
    // The text is about as long as the DER (one allocation for a new string).
    out.reserve(b.len().min(4096));
    let mut rdns = b;
    while !rdns.is_empty() {
        let (tag, set, rest) = tlv(rdns)?;
        rdns = rest;
        if tag != 0x31 {
            return None;
        }
        let mut atvs = set;
        while !atvs.is_empty() {
            let (tag, atv, rest) = tlv(atvs)?;
            atvs = rest;
            if tag != 0x30 {
                return None;
            }
            let (t, oid, rest) = tlv(atv)?;
            if t != 0x06 {
                return None;
            }
            let (vt, val, _) = tlv(rest)?;
            if !out.is_empty() {
                out.push_str(", ");
            }
            match oid_name(oid) {
                Some(n) => out.push_str(n),
                None => oid_dotted(oid, out),
            }
            out.push('=');
            string_value(vt, val, out);
            if out.len() > 4096 {
                return None;
            }
        }
    }
    Some(())
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) as `YYYY-MM-DDTHH:MM:SS`,
/// written to `out` (left empty when the time is malformed).
fn time(tag: u8, v: &[u8], out: &mut String) -> Option<()> {
    out.clear();
    out.reserve(19);
    let s = std::str::from_utf8(v).ok()?;
    let digits = s.trim_end_matches('Z');
    let (year, rest) = match tag {
        0x17 if digits.len() >= 10 => {
            let yy: u32 = digits.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        0x18 if digits.len() >= 12 => (digits.get(..4)?.parse().ok()?, &digits[4..]),
        _ => return None,
    };
    if !rest.bytes().take(10).all(|b| b.is_ascii_digit()) || rest.len() < 10 {
        return None;
    }
    let sec = rest.get(8..10).unwrap_or("00");
    for k in (0..4).rev() {
        out.push(char::from(b'0' + (year / 10u32.pow(k) % 10) as u8));
    }
    for (sep, part) in [
        ('-', &rest[0..2]),
        ('-', &rest[2..4]),
        ('T', &rest[4..6]),
        (':', &rest[6..8]),
        (':', sec),
    ] {
        out.push(sep);
        out.push_str(part);
    }
    Some(())
}

fn sans(ext: &[u8], out: &mut Sans) -> Option<()> {
    let (t, seq, _) = tlv(ext)?;
    if t != 0x30 {
        return None;
    }
    let mut rest = seq;
    while !rest.is_empty() && out.len() < MAX_SANS {
        let (t, v, r) = tlv(rest)?;
        rest = r;
        if t == 0x82 {
            out.push(v);
        }
    }
    Some(())
}

/// Parses one DER certificate.
pub fn parse(der: &[u8]) -> Option<CertInfo> {
    let mut info = CertInfo::default();
    parse_into(der, &mut info).then_some(info)
}

/// [`parse`] into `info` (emptied first), reusing its strings; false when the certificate is
/// malformed (`info` then holds a partial parse).
pub fn parse_into(der: &[u8], info: &mut CertInfo) -> bool {
    info.recycle();
    fields(der, info).is_some()
}

fn fields(der: &[u8], info: &mut CertInfo) -> Option<()> {
    let (t, cert, _) = tlv(der)?;
    if t != 0x30 {
        return None;
    }
    let (t, tbs, _) = tlv(cert)?;
    if t != 0x30 {
        return None;
    }
    let mut rest = tbs;
    let (mut t, mut v, mut r) = tlv(rest)?;
    if t == 0xa0 {
        rest = r;
        (t, v, r) = tlv(rest)?;
    }
    if t != 0x02 {
        return None;
    }
    hex_join(v, true, &mut info.serial);
    rest = r;
    let (_, _, r) = tlv(rest)?; // signature algorithm
    let (t, issuer, r) = tlv(r)?;
    if t != 0x30 {
        return None;
    }
    name(issuer, &mut info.issuer)?;
    let (t, validity, r) = tlv(r)?;
    if t == 0x30 {
        if let Some((t1, v1, rr)) = tlv(validity) {
            // A malformed time is left empty.
            let _ = time(t1, v1, &mut info.not_before);
            if let Some((t2, v2, _)) = tlv(rr) {
                let _ = time(t2, v2, &mut info.not_after);
            }
        }
    }
    let (t, subject, r) = tlv(r)?;
    if t != 0x30 {
        return None;
    }
    name(subject, &mut info.subject)?;
    let (_, _, mut r) = tlv(r)?; // subjectPublicKeyInfo
    while !r.is_empty() {
        let (t, v, rr) = tlv(r)?;
        r = rr;
        if t != 0xa3 {
            continue;
        }
        let (_, exts, _) = tlv(v)?;
        let mut e = exts;
        while !e.is_empty() {
            let (_, ext, er) = tlv(e)?;
            e = er;
            let (_, oid, mut x) = tlv(ext)?;
            if oid != [0x55, 0x1d, 0x11] {
                continue;
            }
            // Optional `critical` BOOLEAN, then the OCTET STRING.
            let (mut t, mut val, rx) = tlv(x)?;
            if t == 0x01 {
                x = rx;
                (t, val, _) = tlv(x)?;
            }
            if t == 0x04 {
                sans(val, &mut info.sans);
            }
        }
    }
    let digest = sha1_smol::Sha1::from(der).digest().bytes();
    hex_join(&digest, false, &mut info.fingerprint);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlv_is_bounded() {
        assert_eq!(tlv(&[0x30, 0x05, 1, 2]), None);
        assert_eq!(tlv(&[0x30, 0x85, 0, 0, 0, 0, 1]), None);
        assert_eq!(tlv(&[0x30, 0x81]), None);
        assert_eq!(
            tlv(&[0x04, 0x02, 1, 2, 9]),
            Some((4, &[1u8, 2][..], &[9u8][..]))
        );
        for n in 0..64 {
            let junk: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            let _ = parse(&junk);
        }
    }

    /// A self-signed certificate for `sans` with common name `cn` (rcgen).
    fn cert(cn: &str, sans: &[&str]) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.distinguished_name
            .push(rcgen::DnType::OrganizationName, "Palisade tests");
        p.self_signed(&key).unwrap().der().to_vec()
    }

    /// A certificate parsed into a CertInfo that held another (as a recycled one has) reads as
    /// a fresh parse does, malformed or not: names, SANs and times of the first do not show.
    #[test]
    fn a_used_cert_info_parses_as_a_fresh_one() {
        let many: Vec<String> = (0..40).map(|i| format!("h{i}.many.example")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let certs = [
            cert("first.example", &["first.example", "www.first.example"]),
            cert("a-second-and-longer-name.example.org", &many),
            cert("third", &[]),
        ];
        for a in &certs {
            for b in &certs {
                for cut in [b.len(), b.len() / 2, 40] {
                    let mut used = CertInfo::default();
                    assert!(parse_into(a, &mut used));
                    let fresh = parse(&b[..cut]);
                    let ok = parse_into(&b[..cut], &mut used);
                    assert_eq!(fresh.is_some(), ok);
                    if let Some(f) = fresh {
                        assert_eq!(f, used);
                        assert!(!f.subject.is_empty() && !f.fingerprint.is_empty());
                    }
                }
            }
        }
        let mut info = parse(&certs[1]).unwrap();
        assert_eq!(info.sans.len(), 40);
        assert_eq!(info.sans.get(39), Some("h39.many.example"));
        assert_eq!(info.sans.iter().next(), Some("h0.many.example"));
        info.recycle();
        assert_eq!(info, CertInfo::default());
    }

    #[test]
    fn dotted_oid_and_time() {
        let mut s = String::new();
        oid_dotted(&[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x3c], &mut s);
        assert_eq!(s, "1.3.6.1.4.1.311.60");
        let t = |tag, v: &[u8]| {
            let mut s = String::from("old");
            time(tag, v, &mut s).map(|()| s)
        };
        assert_eq!(
            t(0x17, b"170323000000Z").as_deref(),
            Some("2017-03-23T00:00:00")
        );
        assert_eq!(
            t(0x17, b"491231235959Z").as_deref(),
            Some("2049-12-31T23:59:59")
        );
        assert_eq!(
            t(0x17, b"500101000000Z").as_deref(),
            Some("1950-01-01T00:00:00")
        );
        assert_eq!(
            t(0x18, b"20500101123456Z").as_deref(),
            Some("2050-01-01T12:34:56")
        );
        assert_eq!(
            t(0x18, b"00070101123456Z").as_deref(),
            Some("0007-01-01T12:34:56")
        );
        assert_eq!(t(0x17, b"17xx"), None);
    }
}
