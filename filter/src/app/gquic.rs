//! Google QUIC (gQUIC, versions Q039-Q046): the client's CHLO, sent in the clear (behind a
//! 12-byte message authentication hash, not encryption) in a STREAM frame on stream 1.
//! Suricata logs its version, SNI, user agent (`UAID`) and CYU, the gQUIC analogue of JA3
//! (`<version number>,<tag>-<tag>-...` in CHLO order, and its MD5).
//!
//! Q046 uses the IETF long-header layout (connection ID lengths in one byte); Q043 and older
//! the public header (flags, 8-byte connection ID, version). Q050 and later encrypt their
//! Initials with gQUIC's own salt and are not read here (reported as versions only). Bounded: a
//! CHLO is read from one packet, at most [`MAX_TAGS`] tags.

use md5::{Digest, Md5};

/// Most tags read from one CHLO (real clients send about 25).
pub const MAX_TAGS: usize = 64;

/// What one CHLO says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chlo {
    /// The packet's version, e.g. `Q046`.
    pub version: [u8; 4],
    /// Server name (`SNI` tag).
    pub sni: Option<String>,
    /// User agent (`UAID` tag).
    pub ua: Option<String>,
    /// `46,PAD-SNI-...`.
    pub cyu: String,
    /// MD5 of `cyu`, lowercase hex.
    pub cyu_hash: String,
}

/// Why a gQUIC packet could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GquicError {
    /// A header, frame or CHLO runs past the packet, or its offsets do not add up.
    Malformed,
    /// More tags than [`MAX_TAGS`].
    TooManyTags,
}

impl GquicError {
    /// The anomaly event's name.
    pub fn event(self) -> &'static str {
        match self {
            GquicError::Malformed => "gquic.malformed",
            GquicError::TooManyTags => "gquic.too_many_tags",
        }
    }
}

fn is_gquic_version(v: &[u8]) -> bool {
    v.len() == 4 && v[0] == b'Q' && v[1..].iter().all(u8::is_ascii_digit)
}

/// The version of a packet (either direction) that carries one and is gQUIC (`Q0xx`).
pub fn packet_version(d: &[u8]) -> Option<[u8; 4]> {
    let &flags = d.first()?;
    let v = if flags & 0x80 != 0 {
        d.get(1..5)?
    } else if flags & 0x01 != 0 {
        // Public header: flags, connection ID (when flagged), version.
        let at = if flags & 0x08 != 0 { 9 } else { 1 };
        d.get(at..at + 4)?
    } else {
        return None;
    };
    is_gquic_version(v).then(|| [v[0], v[1], v[2], v[3]])
}

fn take<'a>(d: &'a [u8], pos: &mut usize, n: usize) -> Result<&'a [u8], GquicError> {
    let s = d.get(*pos..*pos + n).ok_or(GquicError::Malformed)?;
    *pos += n;
    Ok(s)
}

fn be(b: &[u8]) -> u64 {
    b.iter().fold(0, |v, &x| v << 8 | x as u64)
}

/// Reads a client packet: `Ok(Some)` when it carries the start of a CHLO, `Ok(None)` when it
/// is gQUIC without one (acknowledgements, later stream data, frames not read here).
pub fn parse_client(d: &[u8]) -> Result<Option<Chlo>, GquicError> {
    let version = packet_version(d).ok_or(GquicError::Malformed)?;
    let flags = d[0];
    let mut pos;
    let pn_len;
    if flags & 0x80 != 0 {
        // Q046: flags, version, connection ID lengths (4 bits each, +3 when not zero).
        let cil = *d.get(5).ok_or(GquicError::Malformed)?;
        let len = |n: u8| if n == 0 { 0 } else { n as usize + 3 };
        pos = 6 + len(cil >> 4) + len(cil & 0x0f);
        pn_len = (flags & 0x03) as usize + 1;
        pos += pn_len;
    } else {
        pos = 1;
        if flags & 0x08 != 0 {
            pos += 8;
        }
        pos += 4;
        if flags & 0x04 != 0 {
            pos += 32; // diversification nonce (the server's)
        }
        pn_len = [1, 2, 4, 6][((flags >> 4) & 0x03) as usize];
        pos += pn_len;
    }
    // Message authentication hash of an unencrypted packet.
    take(d, &mut pos, 12)?;
    while pos < d.len() {
        let t = d[pos];
        pos += 1;
        match t {
            0x00 => return Ok(None), // padding to the end
            0x07 => continue,        // PING
            0x80..=0xff => {
                // STREAM: 1 f d ooo ss.
                let off_len = match (t >> 2) & 0x07 {
                    0 => 0,
                    n => n as usize + 1,
                };
                let sid = be(take(d, &mut pos, (t & 0x03) as usize + 1)?);
                take(d, &mut pos, off_len)?; // the stream offset
                let len = if t & 0x20 != 0 {
                    be(take(d, &mut pos, 2)?) as usize
                } else {
                    d.len() - pos
                };
                let data = take(d, &mut pos, len)?;
                // The handshake stream: a CHLO at its start, or a second one after the REJ.
                if sid == 1 && data.starts_with(b"CHLO") {
                    return chlo(version, data).map(Some);
                }
            }
            0x40..=0x7f => {
                // ACK: 01nullmm (n: several blocks, ll: largest acked length, mm: block length).
                let width = |x: u8| [1usize, 2, 4, 6][(x & 0x03) as usize];
                let (ll, mm) = (width(t >> 2), width(t));
                take(d, &mut pos, ll + 2)?; // largest acked, ack delay
                let blocks = if t & 0x20 != 0 {
                    take(d, &mut pos, 1)?[0] as usize
                } else {
                    0
                };
                take(d, &mut pos, mm + blocks * (1 + mm))?;
                let stamps = take(d, &mut pos, 1)?[0] as usize;
                if stamps > 0 {
                    take(d, &mut pos, 5 + (stamps - 1) * 3)?;
                }
            }
            0x06 => {
                take(d, &mut pos, pn_len)?; // STOP_WAITING (before Q044)
            }
            _ => return Ok(None), // control frames: not needed for the hello
        }
    }
    Ok(None)
}

fn chlo(version: [u8; 4], m: &[u8]) -> Result<Chlo, GquicError> {
    let n = m
        .get(4..6)
        .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
        .ok_or(GquicError::Malformed)?;
    if n > MAX_TAGS {
        return Err(GquicError::TooManyTags);
    }
    let index = m.get(8..8 + 8 * n).ok_or(GquicError::Malformed)?;
    let values = &m[8 + 8 * n..];
    let num: String = version[1..]
        .iter()
        .map(|&c| c as char)
        .collect::<String>()
        .trim_start_matches('0')
        .to_string();
    let mut c = Chlo {
        version,
        cyu: format!("{num},"),
        ..Chlo::default()
    };
    let mut start = 0usize;
    for (i, e) in index.chunks_exact(8).enumerate() {
        let tag = &e[..4];
        let end = u32::from_le_bytes([e[4], e[5], e[6], e[7]]) as usize;
        let value = values.get(start..end).ok_or(GquicError::Malformed)?;
        start = end;
        let name = tag.split(|&b| b == 0).next().unwrap_or_default();
        if !name.iter().all(u8::is_ascii_graphic) {
            return Err(GquicError::Malformed);
        }
        if i > 0 {
            c.cyu.push('-');
        }
        c.cyu.extend(name.iter().map(|&b| b as char));
        let text = || String::from_utf8_lossy(value).into_owned();
        match name {
            b"SNI" => c.sni = Some(text()),
            b"UAID" => c.ua = Some(text()),
            _ => {}
        }
    }
    super::tls::hex_lower(&Md5::digest(c.cyu.as_bytes()), &mut c.cyu_hash);
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CHLO with the given (tag, value) pairs.
    fn chlo_bytes(tags: &[(&[u8; 4], &[u8])]) -> Vec<u8> {
        let mut m = b"CHLO".to_vec();
        m.extend((tags.len() as u16).to_le_bytes());
        m.extend([0, 0]);
        let mut end = 0u32;
        for (t, v) in tags {
            end += v.len() as u32;
            m.extend(*t);
            m.extend(end.to_le_bytes());
        }
        for (_, v) in tags {
            m.extend(*v);
        }
        m
    }

    fn stream_frame(data: &[u8]) -> Vec<u8> {
        let mut f = vec![0xa0, 0x01];
        f.extend((data.len() as u16).to_be_bytes());
        f.extend(data);
        f
    }

    #[test]
    fn q046_and_q043_headers_give_the_chlo() {
        let m = chlo_bytes(&[
            (b"PAD\0", b"----"),
            (b"SNI\0", b"www.example.com"),
            (b"VER\0", b"Q046"),
            (b"UAID", b"Chrome/79"),
        ]);
        // Q046: long header, DCID 8 bytes (5 + 3), packet number 4 bytes.
        let mut p = vec![0xc3];
        p.extend(b"Q046");
        p.push(0x50);
        p.extend([1; 8]);
        p.extend([0, 0, 0, 1]);
        p.extend([0xaa; 12]);
        p.extend(stream_frame(&m));
        p.extend([0; 40]);
        assert_eq!(packet_version(&p), Some(*b"Q046"));
        let c = parse_client(&p).unwrap().unwrap();
        assert_eq!(c.sni.as_deref(), Some("www.example.com"));
        assert_eq!(c.ua.as_deref(), Some("Chrome/79"));
        assert_eq!(c.cyu, "46,PAD-SNI-VER-UAID");
        assert_eq!(
            c.cyu_hash,
            format!("{:x}", Md5::digest(b"46,PAD-SNI-VER-UAID"))
        );
        // Q043: public header with connection ID and version, packet number 1 byte.
        let mut p = vec![0x09];
        p.extend([2; 8]);
        p.extend(b"Q043");
        p.push(1);
        p.extend([0xbb; 12]);
        p.extend(stream_frame(&m));
        let c = parse_client(&p).unwrap().unwrap();
        assert_eq!(c.cyu, "43,PAD-SNI-VER-UAID");
        // Every truncation is an error or nothing, never a panic; bad offsets are errors.
        for n in 0..p.len() {
            let _ = parse_client(&p[..n]);
        }
        let mut bad = chlo_bytes(&[(b"SNI\0", b"abc")]);
        bad[12] = 0xff; // end offset past the values
        let mut p = vec![0x09];
        p.extend([2; 8]);
        p.extend(b"Q043");
        p.push(1);
        p.extend([0xbb; 12]);
        p.extend(stream_frame(&bad));
        assert_eq!(parse_client(&p), Err(GquicError::Malformed));
        // An ACK frame before the STREAM frame (a second CHLO, after the server's REJ).
        let mut p = vec![0xc3];
        p.extend(b"Q046");
        p.push(0x50);
        p.extend([1; 8]);
        p.extend([0, 0, 0, 2]);
        p.extend([0xaa; 12]);
        p.extend([
            0x45, 0x00, 0x01, 0x00, 0x00, 0x01, 0x01, 0x01, 0x07, 0x12, 0x34, 0x56, 0x78,
        ]);
        p.extend(stream_frame(&m));
        assert_eq!(
            parse_client(&p).unwrap().unwrap().cyu,
            "46,PAD-SNI-VER-UAID"
        );
        // IETF QUIC is not gQUIC.
        assert_eq!(packet_version(&[0xc3, 0, 0, 0, 1, 8]), None);
    }
}
