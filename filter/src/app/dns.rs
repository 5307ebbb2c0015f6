//! DNS messages (RFC 1035 and later record types), as carried over UDP or TCP.
//!
//! The parser fills a reusable [`DnsMsg`]: names go into one string arena, records into vectors
//! that are cleared, not freed, so a warm parser allocates nothing. Every data-driven loop is
//! bounded: at most [`MAX_RECORDS`] records per section, names of at most 255 bytes (longer
//! names are cut and flagged), and compression pointers must point strictly backwards (so they
//! cannot loop) with at most 128 jumps per name.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

/// Records kept per section; more are counted and flagged.
pub const MAX_RECORDS: usize = 256;
/// Longest name logged. A name on the wire is at most 255 bytes, but compression pointers can
/// chain labels into longer ones; like Suricata, Palisade keeps up to 1025 bytes and flags the cut.
pub const MAX_NAME: usize = 1025;

/// Record data as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    /// An A or AAAA address, or nothing for other types that carry no name.
    Addr(std::net::IpAddr),
    /// A name or text in the arena (CNAME, NS, PTR, MX exchange, SOA mname, SRV/HTTPS/SVCB target, TXT).
    Text(Range<u32>),
    /// Data not logged.
    None,
}

/// One resource record or question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rr {
    /// Owner name (range in the arena).
    pub name: Range<u32>,
    /// Record type.
    pub rtype: u16,
    /// TTL (answers only).
    pub ttl: u32,
    /// Parsed data (answers only).
    pub rdata: RData,
    /// The owner name was longer than [`MAX_NAME`] and was cut.
    pub truncated: bool,
    /// An HTTPS/SVCB record that carries an ECH configuration (SvcParam `ech`, key 5).
    pub ech: bool,
}

/// A parsed message. Reuse it across calls to avoid allocation.
#[derive(Debug, Default, Clone)]
pub struct DnsMsg {
    /// Transaction id.
    pub id: u16,
    /// The 16 flag bits (QR, opcode, AA, TC, RD, RA, Z, AD, CD, rcode).
    pub flags: u16,
    /// Name and text arena.
    pub arena: String,
    /// Question section.
    pub queries: Vec<Rr>,
    /// Answer section.
    pub answers: Vec<Rr>,
    /// Authority section.
    pub authorities: Vec<Rr>,
    /// A name was longer than [`MAX_NAME`] bytes and was cut.
    pub name_truncated: bool,
    /// A section held more than [`MAX_RECORDS`] records, or the message ended inside a record
    /// after the questions (the records before the fault are kept).
    pub incomplete: bool,
    last_cut: bool,
}

/// Why a message could not be parsed at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsError {
    /// Shorter than the 12-byte header, or the questions run past the end.
    Truncated,
    /// A compression pointer that points forward or loops, or a bad label type.
    BadName,
    /// Header counts impossible for the message size (garbage, not DNS).
    Implausible,
}

impl DnsError {
    /// Suricata-style anomaly event name.
    pub fn event(self) -> &'static str {
        match self {
            DnsError::Truncated => "dns.malformed_data",
            DnsError::BadName => "dns.malformed_data",
            DnsError::Implausible => "dns.malformed_data",
        }
    }
}

impl DnsMsg {
    /// True for a response.
    pub fn is_response(&self) -> bool {
        self.flags & 0x8000 != 0
    }

    /// The 4-bit response code.
    pub fn rcode(&self) -> u16 {
        self.flags & 0xf
    }

    /// The 4-bit opcode.
    pub fn opcode(&self) -> u16 {
        (self.flags >> 11) & 0xf
    }

    /// A string in the arena.
    pub fn text(&self, r: &Range<u32>) -> &str {
        &self.arena[r.start as usize..r.end as usize]
    }

    /// Parses `buf` into `self`, replacing what was there.
    pub fn parse(&mut self, buf: &[u8]) -> Result<(), DnsError> {
        self.arena.clear();
        self.queries.clear();
        self.answers.clear();
        self.authorities.clear();
        self.name_truncated = false;
        self.incomplete = false;
        if buf.len() < 12 {
            return Err(DnsError::Truncated);
        }
        self.id = u16::from_be_bytes([buf[0], buf[1]]);
        self.flags = u16::from_be_bytes([buf[2], buf[3]]);
        let qd = u16::from_be_bytes([buf[4], buf[5]]) as usize;
        let an = u16::from_be_bytes([buf[6], buf[7]]) as usize;
        let ns = u16::from_be_bytes([buf[8], buf[9]]) as usize;
        // Each question needs at least 5 bytes, each record 11.
        if qd * 5 > buf.len() {
            return Err(DnsError::Implausible);
        }
        let mut pos = 12;
        for i in 0..qd {
            if i >= MAX_RECORDS {
                // Keep the first questions; the rest (and the records after them) are not read.
                self.incomplete = true;
                return Ok(());
            }
            let name = self.read_name(buf, &mut pos)?;
            let Some(t) = buf.get(pos..pos + 4) else {
                return Err(DnsError::Truncated);
            };
            pos += 4;
            let truncated = self.last_cut;
            self.queries.push(Rr {
                name,
                rtype: u16::from_be_bytes([t[0], t[1]]),
                ttl: 0,
                rdata: RData::None,
                truncated,
                ech: false,
            });
        }
        for (count, is_answer) in [(an, true), (ns, false)] {
            for i in 0..count {
                if i >= MAX_RECORDS {
                    self.incomplete = true;
                    break;
                }
                if self.read_rr(buf, &mut pos, is_answer).is_err() {
                    self.incomplete = true;
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Reads one record into the answer or authority list. A TXT record gives one entry per
    /// character-string, as Suricata logs them.
    fn read_rr(&mut self, buf: &[u8], pos: &mut usize, is_answer: bool) -> Result<(), DnsError> {
        let name = self.read_name(buf, pos)?;
        let truncated = self.last_cut;
        let Some(h) = buf.get(*pos..*pos + 10) else {
            return Err(DnsError::Truncated);
        };
        let rtype = u16::from_be_bytes([h[0], h[1]]);
        let ttl = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        let rdlen = u16::from_be_bytes([h[8], h[9]]) as usize;
        let start = *pos + 10;
        let Some(rd) = buf.get(start..start + rdlen) else {
            return Err(DnsError::Truncated);
        };
        *pos = start + rdlen;
        let mut p = start;
        let mut ech = false;
        let rdata = match rtype {
            1 if rdlen == 4 => RData::Addr(Ipv4Addr::new(rd[0], rd[1], rd[2], rd[3]).into()),
            28 if rdlen == 16 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(rd);
                RData::Addr(Ipv6Addr::from(a).into())
            }
            // CNAME, NS, PTR, DNAME, SOA (mname): a name at the start.
            5 | 2 | 12 | 39 | 6 => RData::Text(self.read_name(buf, &mut p)?),
            // MX: preference, exchange.
            15 if rdlen >= 3 => {
                p += 2;
                RData::Text(self.read_name(buf, &mut p)?)
            }
            // SRV: priority, weight, port, target.
            33 if rdlen >= 7 => {
                p += 6;
                RData::Text(self.read_name(buf, &mut p)?)
            }
            // SVCB/HTTPS: priority, target (never compressed, but the reader is the same).
            64 | 65 if rdlen >= 3 => {
                p += 2;
                let target = self.read_name(buf, &mut p)?;
                // SvcParams: key, length, value; bounded by the record.
                let end = start + rdlen;
                while p + 4 <= end {
                    let key = u16::from_be_bytes([buf[p], buf[p + 1]]);
                    let len = u16::from_be_bytes([buf[p + 2], buf[p + 3]]) as usize;
                    if key == 5 {
                        ech = true;
                    }
                    p += 4 + len;
                }
                RData::Text(target)
            }
            16 => {
                let mut q = 0;
                let mut n = 0;
                while q < rd.len() {
                    let l = rd[q] as usize;
                    let Some(chunk) = rd.get(q + 1..q + 1 + l) else {
                        return Err(DnsError::Truncated);
                    };
                    let s = self.arena.len() as u32;
                    for &b in chunk {
                        push_escaped(&mut self.arena, b);
                    }
                    let rr = Rr {
                        name: name.clone(),
                        rtype,
                        ttl,
                        rdata: RData::Text(s..self.arena.len() as u32),
                        truncated,
                        ech: false,
                    };
                    self.push_rr(rr, is_answer);
                    q += 1 + l;
                    n += 1;
                }
                if n == 0 {
                    let s = self.arena.len() as u32;
                    self.push_rr(
                        Rr {
                            name,
                            rtype,
                            ttl,
                            rdata: RData::Text(s..s),
                            truncated,
                            ech: false,
                        },
                        is_answer,
                    );
                }
                return Ok(());
            }
            _ => RData::None,
        };
        self.push_rr(
            Rr {
                name,
                rtype,
                ttl,
                rdata,
                truncated,
                ech,
            },
            is_answer,
        );
        Ok(())
    }

    fn push_rr(&mut self, rr: Rr, is_answer: bool) {
        let list = if is_answer {
            &mut self.answers
        } else {
            &mut self.authorities
        };
        if list.len() < MAX_RECORDS * 2 {
            list.push(rr);
        } else {
            self.incomplete = true;
        }
    }

    /// Reads a (possibly compressed) name at `*pos` into the arena and advances `*pos` past it.
    fn read_name(&mut self, buf: &[u8], pos: &mut usize) -> Result<Range<u32>, DnsError> {
        self.last_cut = false;
        let start = self.arena.len();
        let mut p = *pos;
        let mut jumped = false;
        let mut jumps = 0;
        // Lowest offset we may jump to: pointers must go strictly backwards.
        let mut limit = p;
        loop {
            let Some(&len) = buf.get(p) else {
                self.arena.truncate(start);
                return Err(DnsError::Truncated);
            };
            match len & 0xc0 {
                0x00 => {
                    if len == 0 {
                        if !jumped {
                            *pos = p + 1;
                        }
                        break;
                    }
                    let l = len as usize;
                    let Some(label) = buf.get(p + 1..p + 1 + l) else {
                        self.arena.truncate(start);
                        return Err(DnsError::Truncated);
                    };
                    // Fill up to MAX_NAME bytes exactly, then flag the cut (as Suricata).
                    if !self.last_cut {
                        if self.arena.len() > start {
                            self.arena.push('.');
                        }
                        for &b in label {
                            push_escaped(&mut self.arena, b);
                        }
                        if self.arena.len() - start > MAX_NAME {
                            self.arena.truncate(start + MAX_NAME);
                            self.name_truncated = true;
                            self.last_cut = true;
                        }
                    }
                    p += 1 + l;
                }
                0xc0 => {
                    let Some(&lo) = buf.get(p + 1) else {
                        self.arena.truncate(start);
                        return Err(DnsError::Truncated);
                    };
                    let target = (((len & 0x3f) as usize) << 8) | lo as usize;
                    jumps += 1;
                    if target >= limit || jumps > 128 {
                        self.arena.truncate(start);
                        return Err(DnsError::BadName);
                    }
                    if !jumped {
                        *pos = p + 2;
                    }
                    jumped = true;
                    limit = target;
                    p = target;
                }
                _ => {
                    self.arena.truncate(start);
                    return Err(DnsError::BadName);
                }
            }
        }
        if self.arena.len() == start {
            self.arena.push_str("<root>");
        }
        Ok(start as u32..self.arena.len() as u32)
    }
}

fn push_escaped(s: &mut String, b: u8) {
    if b.is_ascii_graphic() || b == b' ' {
        s.push(b as char);
    } else {
        let _ = write!(s, "\\x{b:02x}");
    }
}

/// The mnemonic of a record type as Suricata logs it; unknown types give `None`.
pub fn rtype_name(t: u16) -> Option<&'static str> {
    Some(match t {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        10 => "NULL",
        12 => "PTR",
        13 => "HINFO",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        35 => "NAPTR",
        39 => "DNAME",
        41 => "OPT",
        43 => "DS",
        44 => "SSHFP",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        50 => "NSEC3",
        52 => "TLSA",
        64 => "SVCB",
        65 => "HTTPS",
        99 => "SPF",
        249 => "TKEY",
        250 => "TSIG",
        251 => "IXFR",
        252 => "AXFR",
        255 => "ANY",
        257 => "CAA",
        _ => return None,
    })
}

/// The response code of a name that does not exist.
pub const NXDOMAIN: u16 = 3;

/// The response-code mnemonic as Suricata logs it.
pub fn rcode_name(r: u16) -> Option<&'static str> {
    Some(match r {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        NXDOMAIN => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Query for www.example.com A, id 0x1234, RD.
    const QUERY: &[u8] = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x03com\x00\x00\x01\x00\x01";

    #[test]
    fn query_and_compressed_answer() {
        let mut m = DnsMsg::default();
        m.parse(QUERY).unwrap();
        assert_eq!((m.id, m.is_response()), (0x1234, false));
        assert_eq!(m.text(&m.queries[0].name), "www.example.com");
        let mut r = QUERY.to_vec();
        r[2] = 0x81;
        r[3] = 0x80;
        r[7] = 2;
        // CNAME www -> ptr to example.com (offset 16), then A for example.com.
        r.extend_from_slice(b"\xc0\x0c\x00\x05\x00\x01\x00\x00\x00\x3c\x00\x02\xc0\x10");
        r.extend_from_slice(b"\xc0\x10\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x5d\xb8\xd8\x22");
        m.parse(&r).unwrap();
        assert_eq!(m.answers.len(), 2);
        assert_eq!(m.answers[0].rdata, RData::Text(m.answers[0].rdata_range()));
        let RData::Text(t) = &m.answers[0].rdata else {
            panic!()
        };
        assert_eq!(m.text(t), "example.com");
        assert_eq!(
            m.answers[1].rdata,
            RData::Addr("93.184.216.34".parse().unwrap())
        );
        assert_eq!(m.answers[1].ttl, 60);
    }

    #[test]
    fn https_record_with_ech_config_is_flagged() {
        // Response for example.com HTTPS: priority 1, target ".", alpn=h2, and maybe ech.
        let msg = |rdata: &[u8]| {
            let mut r = b"\x12\x34\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00\x07example\x03com\x00\x00\x41\x00\x01".to_vec();
            r.extend_from_slice(b"\xc0\x0c\x00\x41\x00\x01\x00\x00\x00\x3c");
            r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            r.extend_from_slice(rdata);
            r
        };
        let plain: &[u8] = b"\x00\x01\x00\x00\x01\x00\x03\x02h2";
        let mut with_ech = plain.to_vec();
        with_ech.extend_from_slice(b"\x00\x05\x00\x04\xfe\x0d\x00\x00");
        let mut m = DnsMsg::default();
        m.parse(&msg(&with_ech)).unwrap();
        assert_eq!(m.answers.len(), 1);
        assert!(m.answers[0].ech);
        m.parse(&msg(plain)).unwrap();
        assert_eq!(m.answers.len(), 1);
        assert!(!m.answers[0].ech);
    }

    #[test]
    fn pointer_loops_and_forward_pointers_are_rejected() {
        let mut q = QUERY[..12].to_vec();
        q.extend_from_slice(b"\xc0\x0c\x00\x01\x00\x01"); // points at itself
        let mut m = DnsMsg::default();
        assert_eq!(m.parse(&q), Err(DnsError::BadName));
        let mut q = QUERY[..12].to_vec();
        q.extend_from_slice(b"\xc0\x20\x00\x01\x00\x01"); // forward
        assert_eq!(m.parse(&q), Err(DnsError::BadName));
        assert_eq!(m.parse(&QUERY[..20]), Err(DnsError::Truncated));
    }

    #[test]
    fn overlong_names_are_cut_and_flagged() {
        let mut q = QUERY[..12].to_vec();
        for _ in 0..20 {
            q.push(63);
            q.extend_from_slice(&[b'a'; 63]);
        }
        q.extend_from_slice(b"\x00\x00\x01\x00\x01");
        let mut m = DnsMsg::default();
        m.parse(&q).unwrap();
        assert!(m.name_truncated);
        assert!(m.text(&m.queries[0].name).len() <= MAX_NAME);
        assert!(m.queries[0].truncated);
    }

    impl Rr {
        fn rdata_range(&self) -> Range<u32> {
            match &self.rdata {
                RData::Text(r) => r.clone(),
                _ => 0..0,
            }
        }
    }
}
