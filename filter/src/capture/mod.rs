//! Capture files: pcap (both byte orders, micro- and nanosecond, the "modified" variant) and
//! pcapng (sections in either byte order, several interfaces with their own link type and
//! timestamp resolution, EPB/SPB/OPB packets, every other block skipped), optionally gzipped.
//!
//! The reader streams: it holds one record at a time in a reused buffer, so memory does not
//! depend on the file size. A record longer than [`MAX_RECORD`] is corruption, not data.
//! Errors carry the byte offset (in the uncompressed stream) of the record that was bad;
//! every packet before it has already been returned.

pub mod afpacket;
pub mod nfqueue;

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

/// Largest record accepted (pcap record or pcapng block), 16 MiB.
pub const MAX_RECORD: usize = 16 << 20;

/// Link-layer header types (the LINKTYPE_ values of tcpdump.org).
pub mod linktype {
    /// BSD loopback: a 4-byte address family in host byte order.
    pub const NULL: u32 = 0;
    /// Ethernet.
    pub const ETHERNET: u32 = 1;
    /// Raw IP (as some systems number it).
    pub const RAW_12: u32 = 12;
    /// Raw IP (OpenBSD numbering).
    pub const RAW_14: u32 = 14;
    /// Raw IP.
    pub const RAW: u32 = 101;
    /// OpenBSD loopback: family in network byte order.
    pub const LOOP: u32 = 108;
    /// Linux cooked capture v1.
    pub const LINUX_SLL: u32 = 113;
    /// Raw IPv4.
    pub const IPV4: u32 = 228;
    /// Raw IPv6.
    pub const IPV6: u32 = 229;
    /// Linux netfilter NFLOG.
    pub const NFLOG: u32 = 239;
    /// Linux cooked capture v2.
    pub const LINUX_SLL2: u32 = 276;
}

/// One packet as read from a file. `data` borrows the reader's buffer.
#[derive(Debug)]
pub struct Packet<'a> {
    /// Nanoseconds since the Unix epoch.
    pub ts_ns: i64,
    /// The link type of the interface it was captured on.
    pub linktype: u32,
    /// Captured bytes.
    pub data: &'a [u8],
    /// Length on the wire (may exceed `data.len()` when the capture was snapped).
    pub orig_len: u32,
}

/// What went wrong, and where.
#[derive(Debug)]
pub struct CaptureError {
    /// Byte offset of the record (or header) that could not be read.
    pub offset: u64,
    /// What was wrong.
    pub kind: CaptureErrorKind,
}

/// The kinds of capture-file faults.
#[derive(Debug)]
pub enum CaptureErrorKind {
    /// The file could not be opened.
    Open(io::Error),
    /// An I/O error from the operating system.
    Io(io::Error),
    /// The file ends inside a header or record.
    Truncated {
        /// Bytes the record needed.
        needed: usize,
        /// Bytes that were there.
        got: usize,
    },
    /// Not a pcap or pcapng file (or not a gzip of one).
    UnknownFormat([u8; 4]),
    /// A header field is impossible.
    Corrupt(&'static str),
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            CaptureErrorKind::Open(e) => write!(f, "cannot open: {e}"),
            CaptureErrorKind::Io(e) => write!(f, "read error at byte {}: {e}", self.offset),
            CaptureErrorKind::Truncated { needed, got } => write!(
                f,
                "truncated at byte {}: record needs {needed} bytes, file has {got}",
                self.offset
            ),
            CaptureErrorKind::UnknownFormat(m) => write!(
                f,
                "not a pcap or pcapng file (magic {:02x}{:02x}{:02x}{:02x} at byte {})",
                m[0], m[1], m[2], m[3], self.offset
            ),
            CaptureErrorKind::Corrupt(what) => write!(f, "corrupt at byte {}: {what}", self.offset),
        }
    }
}

impl std::error::Error for CaptureError {}

#[derive(Debug, Clone, Copy)]
struct Iface {
    linktype: u32,
    snaplen: u32,
    /// Timestamp units per second are 10^n (`false`) or 2^n (`true`).
    /// Stored as (numerator multiplier to ns, divisor) to avoid floats.
    ts_mul: u64,
    ts_div: u64,
    ts_offset_s: i64,
}

impl Iface {
    fn ts_ns(&self, units: u64) -> i64 {
        let ns = if self.ts_div == 1 {
            units.saturating_mul(self.ts_mul)
        } else {
            // 10^n or 2^n units per second with n > 9: divide.
            ((units as u128 * 1_000_000_000) / self.ts_div as u128) as u64
        };
        (ns as i64).saturating_add(self.ts_offset_s.saturating_mul(1_000_000_000))
    }
}

#[derive(Debug)]
enum Format {
    Pcap {
        big: bool,
        nanos: bool,
        modified: bool,
        linktype: u32,
    },
    PcapNg {
        big: bool,
        ifaces: Vec<Iface>,
    },
}

/// A streaming reader over a capture file.
pub struct CaptureReader {
    src: Box<dyn Read + Send>,
    format: Format,
    buf: Vec<u8>,
    offset: u64,
    /// The pcapng magic was consumed while sniffing the format and starts the first block.
    pending_magic: bool,
    /// Number of pcapng blocks skipped because their type is not a packet block.
    pub skipped_blocks: u64,
}

impl fmt::Debug for CaptureReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureReader")
            .field("format", &self.format)
            .field("offset", &self.offset)
            .finish()
    }
}

fn rd_u16(b: &[u8], big: bool) -> u16 {
    let a = [b[0], b[1]];
    if big {
        u16::from_be_bytes(a)
    } else {
        u16::from_le_bytes(a)
    }
}

fn rd_u32(b: &[u8], big: bool) -> u32 {
    let a = [b[0], b[1], b[2], b[3]];
    if big {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

/// Reads exactly `buf.len()` bytes; returns how many were read (less means end of file).
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl CaptureReader {
    /// Opens a file; gzip is recognised by its magic and decompressed on the fly.
    pub fn open(path: &Path) -> Result<CaptureReader, CaptureError> {
        let f = File::open(path).map_err(|e| CaptureError {
            offset: 0,
            kind: CaptureErrorKind::Open(e),
        })?;
        let mut r = BufReader::with_capacity(256 << 10, f);
        let head = {
            use std::io::BufRead;
            let b = r.fill_buf().map_err(|e| CaptureError {
                offset: 0,
                kind: CaptureErrorKind::Io(e),
            })?;
            b.len() >= 2 && b[0] == 0x1f && b[1] == 0x8b
        };
        if head {
            let gz = flate2::read::MultiGzDecoder::new(r);
            Self::new(Box::new(BufReader::with_capacity(256 << 10, gz)))
        } else {
            Self::new(Box::new(r))
        }
    }

    /// Reads the file header from any byte source.
    pub fn new(mut src: Box<dyn Read + Send>) -> Result<CaptureReader, CaptureError> {
        let mut magic = [0u8; 4];
        let n = read_full(&mut *src, &mut magic).map_err(|e| CaptureError {
            offset: 0,
            kind: CaptureErrorKind::Io(e),
        })?;
        if n < 4 {
            return Err(CaptureError {
                offset: 0,
                kind: CaptureErrorKind::Truncated { needed: 24, got: n },
            });
        }
        let mut rdr = CaptureReader {
            src,
            format: Format::PcapNg {
                big: false,
                ifaces: Vec::new(),
            },
            buf: Vec::with_capacity(65536),
            offset: 4,
            pending_magic: false,
            skipped_blocks: 0,
        };
        let m = u32::from_le_bytes(magic);
        let pcap = match m {
            0xa1b2c3d4 => Some((false, false, false)),
            0xd4c3b2a1 => Some((true, false, false)),
            0xa1b23c4d => Some((false, true, false)),
            0x4d3cb2a1 => Some((true, true, false)),
            0xa1b2cd34 => Some((false, false, true)),
            0x34cdb2a1 => Some((true, false, true)),
            _ => None,
        };
        if let Some((big, nanos, modified)) = pcap {
            let mut h = [0u8; 20];
            let n = rdr.read_exact_at(&mut h)?;
            if n < 20 {
                return Err(CaptureError {
                    offset: 0,
                    kind: CaptureErrorKind::Truncated {
                        needed: 24,
                        got: 4 + n,
                    },
                });
            }
            let linktype = rd_u32(&h[16..], big) & 0x0fff_ffff;
            rdr.format = Format::Pcap {
                big,
                nanos,
                modified,
                linktype,
            };
            return Ok(rdr);
        }
        if m == 0x0a0d0d0a {
            // The section header is read as the first block.
            rdr.buf.clear();
            rdr.buf.extend_from_slice(&magic);
            rdr.pending_magic = true;
            return Ok(rdr);
        }
        Err(CaptureError {
            offset: 0,
            kind: CaptureErrorKind::UnknownFormat(magic),
        })
    }
}

impl CaptureReader {
    fn read_exact_at(&mut self, buf: &mut [u8]) -> Result<usize, CaptureError> {
        let n = read_full(&mut *self.src, buf).map_err(|e| CaptureError {
            offset: self.offset,
            kind: CaptureErrorKind::Io(e),
        })?;
        self.offset += n as u64;
        Ok(n)
    }

    /// Returns the next packet, `Ok(None)` at a clean end of file.
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, CaptureError> {
        match self.format {
            Format::Pcap { .. } => self.next_pcap(),
            Format::PcapNg { .. } => self.next_pcapng(),
        }
    }

    fn next_pcap(&mut self) -> Result<Option<Packet<'_>>, CaptureError> {
        let Format::Pcap {
            big,
            nanos,
            modified,
            linktype,
        } = self.format
        else {
            return Ok(None);
        };
        let hlen = if modified { 24 } else { 16 };
        let start = self.offset;
        let mut h = [0u8; 24];
        let n = self.read_exact_at(&mut h[..hlen])?;
        if n == 0 {
            return Ok(None);
        }
        if n < hlen {
            return Err(CaptureError {
                offset: start,
                kind: CaptureErrorKind::Truncated {
                    needed: hlen,
                    got: n,
                },
            });
        }
        let sec = rd_u32(&h[0..], big) as i64;
        let frac = rd_u32(&h[4..], big) as i64;
        let caplen = rd_u32(&h[8..], big) as usize;
        let orig_len = rd_u32(&h[12..], big);
        if caplen > MAX_RECORD {
            return Err(CaptureError {
                offset: start,
                kind: CaptureErrorKind::Corrupt("record length over 16 MiB"),
            });
        }
        self.buf.resize(caplen, 0);
        let mut buf = std::mem::take(&mut self.buf);
        let got = self.read_exact_at(&mut buf[..caplen]);
        self.buf = buf;
        let got = got?;
        if got < caplen {
            return Err(CaptureError {
                offset: start,
                kind: CaptureErrorKind::Truncated {
                    needed: hlen + caplen,
                    got: hlen + got,
                },
            });
        }
        let ts_ns = sec * 1_000_000_000
            + if nanos {
                frac
            } else {
                frac.saturating_mul(1000)
            };
        Ok(Some(Packet {
            ts_ns,
            linktype,
            data: &self.buf[..caplen],
            orig_len,
        }))
    }

    fn next_pcapng(&mut self) -> Result<Option<Packet<'_>>, CaptureError> {
        loop {
            let start = if self.pending_magic {
                self.offset - 4
            } else {
                self.offset
            };
            // Block header: type and total length.
            let mut h = [0u8; 8];
            let have = if self.pending_magic {
                self.pending_magic = false;
                h[..4].copy_from_slice(&self.buf[..4]);
                4 + self.read_exact_at(&mut h[4..])?
            } else {
                self.read_exact_at(&mut h)?
            };
            if have == 0 {
                return Ok(None);
            }
            if have < 8 {
                return Err(CaptureError {
                    offset: start,
                    kind: CaptureErrorKind::Truncated {
                        needed: 8,
                        got: have,
                    },
                });
            }
            let btype_raw = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
            let mut big = match &self.format {
                Format::PcapNg { big, .. } => *big,
                Format::Pcap { .. } => false,
            };
            if btype_raw == 0x0a0d0d0a {
                // Section header: the byte-order magic decides this section's order.
                let mut bom = [0u8; 4];
                let n = self.read_exact_at(&mut bom)?;
                if n < 4 {
                    return Err(CaptureError {
                        offset: start,
                        kind: CaptureErrorKind::Truncated {
                            needed: 12,
                            got: 8 + n,
                        },
                    });
                }
                big = match u32::from_le_bytes(bom) {
                    0x1a2b3c4d => false,
                    0x4d3c2b1a => true,
                    _ => {
                        return Err(CaptureError {
                            offset: start,
                            kind: CaptureErrorKind::Corrupt("bad pcapng byte-order magic"),
                        })
                    }
                };
                let total = rd_u32(&h[4..], big) as usize;
                if !(28..=MAX_RECORD).contains(&total) || !total.is_multiple_of(4) {
                    return Err(CaptureError {
                        offset: start,
                        kind: CaptureErrorKind::Corrupt("bad section header length"),
                    });
                }
                self.read_body(start, total - 12)?;
                self.format = Format::PcapNg {
                    big,
                    ifaces: Vec::new(),
                };
                continue;
            }
            let btype = rd_u32(&h[0..], big);
            let total = rd_u32(&h[4..], big) as usize;
            if total < 12 || !total.is_multiple_of(4) || total > MAX_RECORD {
                return Err(CaptureError {
                    offset: start,
                    kind: CaptureErrorKind::Corrupt("bad pcapng block length"),
                });
            }
            self.read_body(start, total - 8)?;
            let body_len = total - 12;
            let trailer = rd_u32(&self.buf[body_len..], big) as usize;
            if trailer != total {
                return Err(CaptureError {
                    offset: start,
                    kind: CaptureErrorKind::Corrupt(
                        "pcapng block trailer length differs from header",
                    ),
                });
            }
            let Format::PcapNg { ifaces, .. } = &mut self.format else {
                return Ok(None);
            };
            let body = &self.buf[..body_len];
            match btype {
                1 => {
                    if body.len() < 8 {
                        return Err(CaptureError {
                            offset: start,
                            kind: CaptureErrorKind::Corrupt("interface block too short"),
                        });
                    }
                    let linktype = rd_u16(body, big) as u32;
                    let snaplen = rd_u32(&body[4..], big);
                    let mut iface = Iface {
                        linktype,
                        snaplen,
                        ts_mul: 1000,
                        ts_div: 1,
                        ts_offset_s: 0,
                    };
                    let mut opts = &body[8..];
                    while opts.len() >= 4 {
                        let code = rd_u16(opts, big);
                        let len = rd_u16(&opts[2..], big) as usize;
                        let padded = (len + 3) & !3;
                        if code == 0 || opts.len() < 4 + len {
                            break;
                        }
                        let v = &opts[4..4 + len];
                        match (code, len) {
                            (9, 1) => {
                                let r = v[0];
                                let n = (r & 0x7f) as u32;
                                let per_sec: Option<u64> = if r & 0x80 != 0 {
                                    1u64.checked_shl(n)
                                } else {
                                    10u64.checked_pow(n)
                                };
                                let Some(per_sec) = per_sec else {
                                    return Err(CaptureError {
                                        offset: start,
                                        kind: CaptureErrorKind::Corrupt("if_tsresol out of range"),
                                    });
                                };
                                if 1_000_000_000 % per_sec == 0 {
                                    iface.ts_mul = 1_000_000_000 / per_sec;
                                    iface.ts_div = 1;
                                } else {
                                    iface.ts_mul = 0;
                                    iface.ts_div = per_sec;
                                }
                            }
                            (14, 8) => {
                                iface.ts_offset_s = if big {
                                    i64::from_be_bytes(v.try_into().unwrap_or([0; 8]))
                                } else {
                                    i64::from_le_bytes(v.try_into().unwrap_or([0; 8]))
                                };
                            }
                            _ => {}
                        }
                        opts = opts.get(4 + padded..).unwrap_or(&[]);
                    }
                    if ifaces.len() >= 65536 {
                        return Err(CaptureError {
                            offset: start,
                            kind: CaptureErrorKind::Corrupt("more than 65536 interfaces"),
                        });
                    }
                    ifaces.push(iface);
                }
                6 | 2 => {
                    // EPB: iface u32, ts hi, ts lo, caplen, origlen. OPB: iface u16, drops u16, ...
                    if body.len() < 20 {
                        return Err(CaptureError {
                            offset: start,
                            kind: CaptureErrorKind::Corrupt("packet block too short"),
                        });
                    }
                    let ifid = if btype == 6 {
                        rd_u32(body, big) as usize
                    } else {
                        rd_u16(body, big) as usize
                    };
                    let Some(iface) = ifaces.get(ifid).copied() else {
                        return Err(CaptureError {
                            offset: start,
                            kind: CaptureErrorKind::Corrupt(
                                "packet block names an undefined interface",
                            ),
                        });
                    };
                    let ts =
                        ((rd_u32(&body[4..], big) as u64) << 32) | rd_u32(&body[8..], big) as u64;
                    let caplen = rd_u32(&body[12..], big) as usize;
                    let orig_len = rd_u32(&body[16..], big);
                    if caplen > body.len() - 20 {
                        return Err(CaptureError {
                            offset: start,
                            kind: CaptureErrorKind::Corrupt("captured length exceeds block"),
                        });
                    }
                    return Ok(Some(Packet {
                        ts_ns: iface.ts_ns(ts),
                        linktype: iface.linktype,
                        data: &self.buf[20..20 + caplen],
                        orig_len,
                    }));
                }
                3 => {
                    // SPB: original length, then data; captured = min(orig, snaplen, block).
                    let Some(iface) = ifaces.first().copied() else {
                        return Err(CaptureError {
                            offset: start,
                            kind: CaptureErrorKind::Corrupt(
                                "simple packet block before any interface",
                            ),
                        });
                    };
                    if body.len() < 4 {
                        return Err(CaptureError {
                            offset: start,
                            kind: CaptureErrorKind::Corrupt("simple packet block too short"),
                        });
                    }
                    let orig_len = rd_u32(body, big);
                    let mut caplen = (orig_len as usize).min(body.len() - 4);
                    if iface.snaplen != 0 {
                        caplen = caplen.min(iface.snaplen as usize);
                    }
                    return Ok(Some(Packet {
                        ts_ns: 0,
                        linktype: iface.linktype,
                        data: &self.buf[4..4 + caplen],
                        orig_len,
                    }));
                }
                _ => self.skipped_blocks += 1,
            }
        }
    }

    fn read_body(&mut self, start: u64, len: usize) -> Result<(), CaptureError> {
        self.buf.resize(len, 0);
        let mut buf = std::mem::take(&mut self.buf);
        let got = self.read_exact_at(&mut buf[..len]);
        self.buf = buf;
        let got = got?;
        if got < len {
            return Err(CaptureError {
                offset: start,
                kind: CaptureErrorKind::Truncated { needed: len, got },
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
