//! QUIC Initial packets (RFC 9000/9001, version 2 per RFC 9369): derive the client's initial keys
//! from the Destination Connection ID, remove header protection, decrypt, walk the frames, and
//! reassemble the CRYPTO stream (out of order, duplicates allowed) until the ClientHello inside
//! is complete.
//!
//! Bounds: CRYPTO data is gathered up to [`MAX_CRYPTO`] bytes and at most [`MAX_INITIALS`]
//! Initial packets per connection; past either, the connection is given up (an anomaly).

use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, Nonce, Tag};
use hkdf::Hkdf;
use sha2::Sha256;

use super::tls::{parse_client_hello_into, parse_server_hello_into, ClientHello, ServerHello};
use crate::eve::fmt_small;
use crate::pool::{keep, keep_upto, Lent, Pooled, Recycle, KEEP_BYTES};

/// CRYPTO bytes gathered per connection.
pub const MAX_CRYPTO: usize = 64 << 10;
/// Initial packets looked at per connection.
pub const MAX_INITIALS: u32 = 32;

const SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];
const SALT_V2: [u8; 20] = [
    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb,
    0xf9, 0xbd, 0x2e, 0xd9,
];
/// Draft versions 29-32 used the v1 labels with this salt.
const SALT_D29: [u8; 20] = [
    0xaf, 0xbf, 0xec, 0x28, 0x99, 0x93, 0xd2, 0x4c, 0x9e, 0x97, 0x86, 0xf1, 0x9c, 0x61, 0x11, 0xe0,
    0x43, 0x90, 0xa8, 0x99,
];

/// Why a packet could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuicError {
    /// Not a long-header Initial of a version Palisade decrypts.
    NotInitial,
    /// A length runs past the datagram.
    Malformed,
    /// Authentication failed (not the client's Initial, or corrupt).
    Decrypt,
    /// A cap was reached.
    TooMuch,
}

impl QuicError {
    /// Anomaly event name.
    pub fn event(self) -> &'static str {
        match self {
            QuicError::NotInitial => "quic.not_initial",
            QuicError::Malformed => "quic.malformed_packet",
            QuicError::Decrypt => "quic.decrypt_failed",
            QuicError::TooMuch => "quic.crypto_too_large",
        }
    }
}

fn expand_label(secret: &[u8], label: &str, len: usize, out: &mut [u8]) {
    // HkdfLabel (RFC 8446 7.1): length, "tls13 " + label, an empty context. The labels are
    // this file's constants, so the info fits on the stack.
    const PREFIX: &[u8] = b"tls13 ";
    let mut info = [0u8; 4 + PREFIX.len() + 32];
    let n = PREFIX.len() + label.len();
    if n > 32 {
        return;
    }
    info[..2].copy_from_slice(&(len as u16).to_be_bytes());
    info[2] = n as u8;
    info[3..3 + PREFIX.len()].copy_from_slice(PREFIX);
    info[3 + PREFIX.len()..3 + n].copy_from_slice(label.as_bytes());
    // info[3 + n] is the empty context's length, 0.
    if let Ok(hk) = Hkdf::<Sha256>::from_prk(secret) {
        let _ = hk.expand(&info[..4 + n], &mut out[..len]);
    }
}

struct Keys {
    key: [u8; 16],
    iv: [u8; 12],
    hp: [u8; 16],
}

fn initial_keys(version: u32, dcid: &[u8], server: bool) -> Option<Keys> {
    let (salt, v2) = match version {
        1 => (&SALT_V1, false),
        0x6b33_43cf => (&SALT_V2, true),
        0xff00_001d..=0xff00_0020 => (&SALT_D29, false),
        _ => return None,
    };
    let (prk, _) = Hkdf::<Sha256>::extract(Some(salt), dcid);
    let mut client = [0u8; 32];
    expand_label(
        &prk,
        if server { "server in" } else { "client in" },
        32,
        &mut client,
    );
    let (lk, li, lh) = if v2 {
        ("quicv2 key", "quicv2 iv", "quicv2 hp")
    } else {
        ("quic key", "quic iv", "quic hp")
    };
    let mut k = Keys {
        key: [0; 16],
        iv: [0; 12],
        hp: [0; 16],
    };
    expand_label(&client, lk, 16, &mut k.key);
    expand_label(&client, li, 12, &mut k.iv);
    expand_label(&client, lh, 16, &mut k.hp);
    Some(k)
}

fn varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let first = *b.get(*pos)?;
    let len = 1usize << (first >> 6);
    let bytes = b.get(*pos..*pos + len)?;
    let mut v = (first & 0x3f) as u64;
    for &x in &bytes[1..] {
        v = (v << 8) | x as u64;
    }
    *pos += len;
    Some(v)
}

/// The version of a long-header packet, if the datagram starts with one.
pub fn long_header_version(d: &[u8]) -> Option<u32> {
    if d.len() < 7 || d[0] & 0x80 == 0 {
        return None;
    }
    Some(u32::from_be_bytes([d[1], d[2], d[3], d[4]]))
}

/// A hello found in the Initial packets.
#[derive(Debug)]
pub enum Hello {
    /// The client's.
    Client(Pooled<ClientHello>),
    /// The server's.
    Server(Pooled<ServerHello>),
}

/// One direction's CRYPTO stream.
#[derive(Debug, Default)]
struct CryptoAsm {
    crypto: Vec<u8>,
    /// Covered ranges of `crypto`, sorted and merged.
    have: Vec<(u32, u32)>,
    done: bool,
}

/// The Initial packets of one connection, both directions.
#[derive(Debug, Default)]
pub struct QuicConn {
    /// The version of the first Initial.
    pub version: u32,
    /// The Destination Connection ID of the client's (latest) first Initial: both directions'
    /// initial keys derive from it.
    dcid: Vec<u8>,
    initials: u32,
    client: CryptoAsm,
    server: CryptoAsm,
}

impl Recycle for QuicConn {
    fn recycle(&mut self) {
        self.version = 0;
        keep(&mut self.dcid);
        self.initials = 0;
        for asm in [&mut self.client, &mut self.server] {
            // A CRYPTO stream holds a whole hello (about 2 KiB with post-quantum key shares).
            keep_upto(&mut asm.crypto, 4 * KEEP_BYTES);
            keep(&mut asm.have);
            asm.done = false;
        }
    }
    fn bytes(&self) -> usize {
        std::mem::size_of::<QuicConn>() + self.held()
    }
    crate::thread_pool!(QuicConn);
}

impl QuicConn {
    /// Bytes held.
    pub fn held(&self) -> usize {
        self.client.crypto.capacity()
            + self.server.crypto.capacity()
            + (self.client.have.capacity() + self.server.have.capacity()) * 8
            + self.dcid.capacity()
    }

    /// True once both hellos were returned (or the connection was given up).
    pub fn is_done(&self) -> bool {
        self.client.done && self.server.done
    }

    /// True once the client's hello was returned (or given up).
    pub fn client_done(&self) -> bool {
        self.client.done
    }

    /// Handles a datagram (possibly several coalesced packets) from the client or the server.
    /// Returns a hello once its CRYPTO stream holds all of it.
    pub fn datagram(&mut self, d: &[u8], from_client: bool) -> Result<Option<Hello>, QuicError> {
        let mut rest = d;
        while !rest.is_empty() {
            let Some(version) = long_header_version(rest) else {
                break;
            };
            let used = self.packet(rest, version, from_client)?;
            rest = &rest[used..];
            if let Some(h) = self.try_hello(from_client)? {
                return Ok(Some(h));
            }
        }
        Ok(None)
    }

    /// Decrypts one long-header packet; returns its length in the datagram.
    fn packet(&mut self, p: &[u8], version: u32, from_client: bool) -> Result<usize, QuicError> {
        let ptype = (p[0] >> 4) & 0x03;
        let v2 = version == 0x6b33_43cf;
        let initial = if v2 { ptype == 1 } else { ptype == 0 };
        let retry = if v2 { ptype == 0 } else { ptype == 3 };
        let mut pos = 5;
        let dcid_len = *p.get(pos).ok_or(QuicError::Malformed)? as usize;
        let dcid = p
            .get(pos + 1..pos + 1 + dcid_len)
            .ok_or(QuicError::Malformed)?;
        pos += 1 + dcid_len;
        let scid_len = *p.get(pos).ok_or(QuicError::Malformed)? as usize;
        pos += 1 + scid_len;
        if version == 0 {
            return Ok(p.len()); // version negotiation: nothing more in the datagram
        }
        if retry {
            // The client starts again with a new DCID (and a new ClientHello).
            if !from_client {
                self.client = CryptoAsm::default();
                self.server = CryptoAsm::default();
                self.dcid.clear();
            }
            return Ok(p.len());
        }
        if !initial {
            // 0-RTT or Handshake packets coalesced after the Initial: skip by their length.
            let len = varint(p, &mut pos).ok_or(QuicError::Malformed)? as usize;
            return Ok((pos + len).min(p.len()));
        }
        if from_client && self.dcid.is_empty() {
            self.dcid.extend_from_slice(dcid);
        }
        let asm_done = if from_client {
            self.client.done
        } else {
            self.server.done
        };
        let tok_len = varint(p, &mut pos).ok_or(QuicError::Malformed)? as usize;
        pos = pos.checked_add(tok_len).ok_or(QuicError::Malformed)?;
        let len = varint(p, &mut pos).ok_or(QuicError::Malformed)? as usize;
        let end = pos
            .checked_add(len)
            .filter(|&e| e <= p.len())
            .ok_or(QuicError::Malformed)?;
        if asm_done || self.dcid.is_empty() {
            return Ok(end);
        }
        let keys = initial_keys(version, &self.dcid, !from_client).ok_or(QuicError::NotInitial)?;
        if self.version == 0 {
            self.version = version;
        }
        self.initials += 1;
        if self.initials > MAX_INITIALS {
            self.client.done = true;
            self.server.done = true;
            return Err(QuicError::TooMuch);
        }
        let pn_off = pos;
        let sample = p.get(pn_off + 4..pn_off + 20).ok_or(QuicError::Malformed)?;
        let hp = aes::Aes128::new(GenericArray::from_slice(&keys.hp));
        let mut mask = GenericArray::clone_from_slice(sample);
        hp.encrypt_block(&mut mask);
        let first = p[0] ^ (mask[0] & 0x0f);
        let pn_len = (first & 0x03) as usize + 1;
        if pn_off + pn_len > end || end - (pn_off + pn_len) < 16 {
            return Err(QuicError::Malformed);
        }
        // Header and payload are decrypted in buffers lent by the thread's pool.
        let mut header = Lent::copy(&p[..pn_off + pn_len]);
        header[0] = first;
        let mut pn = 0u64;
        for i in 0..pn_len {
            header[pn_off + i] ^= mask[1 + i];
            pn = (pn << 8) | header[pn_off + i] as u64;
        }
        let mut nonce = keys.iv;
        for (i, b) in pn.to_be_bytes().iter().enumerate() {
            nonce[4 + i] ^= b;
        }
        let body = &p[pn_off + pn_len..end];
        let (ct, tag) = body.split_at(body.len() - 16);
        let mut plain = Lent::copy(ct);
        let aead = Aes128Gcm::new(GenericArray::from_slice(&keys.key));
        aead.decrypt_in_place_detached(
            Nonce::from_slice(&nonce),
            &header,
            &mut plain,
            Tag::from_slice(tag),
        )
        .map_err(|_| QuicError::Decrypt)?;
        let asm = if from_client {
            &mut self.client
        } else {
            &mut self.server
        };
        asm.frames(&plain)?;
        Ok(end)
    }

    fn try_hello(&mut self, from_client: bool) -> Result<Option<Hello>, QuicError> {
        let asm = if from_client {
            &mut self.client
        } else {
            &mut self.server
        };
        if asm.done {
            return Ok(None);
        }
        let Some(&(0, contiguous)) = asm.have.first() else {
            return Ok(None);
        };
        let c = &asm.crypto[..contiguous as usize];
        if c.len() < 4 {
            return Ok(None);
        }
        let want = if from_client { 1 } else { 2 };
        if c[0] != want {
            asm.done = true;
            return Err(QuicError::Malformed);
        }
        let len = u32::from_be_bytes([0, c[1], c[2], c[3]]) as usize;
        if c.len() < 4 + len {
            return Ok(None);
        }
        let body = &c[4..4 + len];
        let r = if from_client {
            let mut h = Pooled::<ClientHello>::take();
            parse_client_hello_into(body, true, &mut h).map(|()| Hello::Client(h))
        } else {
            let mut h = Pooled::<ServerHello>::take();
            parse_server_hello_into(body, &mut h).map(|()| Hello::Server(h))
        };
        asm.done = true;
        r.map(Some).map_err(|_| QuicError::Malformed)
    }
}

impl CryptoAsm {
    fn frames(&mut self, f: &[u8]) -> Result<(), QuicError> {
        let mut pos = 0;
        while pos < f.len() {
            let t = varint(f, &mut pos).ok_or(QuicError::Malformed)?;
            match t {
                0x00 | 0x01 => {}
                0x02 | 0x03 => {
                    // ACK: largest, delay, range count, first range, ranges, (ECN counts).
                    let _ = varint(f, &mut pos).ok_or(QuicError::Malformed)?;
                    let _ = varint(f, &mut pos).ok_or(QuicError::Malformed)?;
                    let n = varint(f, &mut pos).ok_or(QuicError::Malformed)?;
                    let _ = varint(f, &mut pos).ok_or(QuicError::Malformed)?;
                    for _ in 0..n.min(1024) * 2 {
                        let _ = varint(f, &mut pos).ok_or(QuicError::Malformed)?;
                    }
                    if t == 0x03 {
                        for _ in 0..3 {
                            let _ = varint(f, &mut pos).ok_or(QuicError::Malformed)?;
                        }
                    }
                }
                0x06 => {
                    let off = varint(f, &mut pos).ok_or(QuicError::Malformed)? as usize;
                    let len = varint(f, &mut pos).ok_or(QuicError::Malformed)? as usize;
                    let data = f.get(pos..pos + len).ok_or(QuicError::Malformed)?;
                    pos += len;
                    self.crypto_at(off, data)?;
                }
                // CONNECTION_CLOSE, or anything that cannot appear in an Initial: stop here.
                _ => return Ok(()),
            }
        }
        Ok(())
    }

    /// Stores CRYPTO bytes at `off`; the first copy of a byte wins.
    fn crypto_at(&mut self, off: usize, data: &[u8]) -> Result<(), QuicError> {
        let end = off.checked_add(data.len()).ok_or(QuicError::TooMuch)?;
        if end > MAX_CRYPTO {
            self.done = true;
            return Err(QuicError::TooMuch);
        }
        if self.crypto.len() < end {
            self.crypto.resize(end, 0);
        }
        let mut cur = off;
        for &(s, e) in &self.have {
            let (s, e) = (s as usize, e as usize);
            if e <= cur || s >= end {
                continue;
            }
            if s > cur {
                self.crypto[cur..s].copy_from_slice(&data[cur - off..s - off]);
            }
            cur = cur.max(e);
        }
        if cur < end {
            self.crypto[cur..end].copy_from_slice(&data[cur - off..]);
        }
        let mut m = (off as u32, end as u32);
        self.have.retain(|&(s, e)| {
            if e < m.0 || s > m.1 {
                true
            } else {
                m = (m.0.min(s), m.1.max(e));
                false
            }
        });
        let at = self.have.partition_point(|&(s, _)| s < m.0);
        self.have.insert(at, m);
        if self.have.len() > 256 {
            self.done = true;
            return Err(QuicError::TooMuch);
        }
        Ok(())
    }
}

/// Builds a client Initial packet carrying `frames` (for tests, benchmarks and fuzz seeds): the
/// exact inverse of what [`QuicConn`] decrypts. Version 1 or 2, 1-byte packet number.
#[doc(hidden)]
pub fn seal_client_initial(version: u32, dcid: &[u8], pn: u8, frames: &[u8]) -> Option<Vec<u8>> {
    let keys = initial_keys(version, dcid, false)?;
    let ptype: u8 = if version == 0x6b33_43cf { 1 } else { 0 };
    // Pad so the header-protection sample (4 bytes past the packet number, 16 long) exists.
    let mut payload = frames.to_vec();
    if payload.len() < 20 {
        payload.resize(20, 0);
    }
    let len = 1 + payload.len() + 16;
    if len > 0x3fff {
        return None;
    }
    let mut h = vec![0xc0 | (ptype << 4), 0, 0, 0, 0];
    h[1..5].copy_from_slice(&version.to_be_bytes());
    h.push(dcid.len() as u8);
    h.extend_from_slice(dcid);
    h.push(0); // no SCID
    h.push(0); // no token
    h.extend_from_slice(&((len as u16) | 0x4000).to_be_bytes());
    let pn_off = h.len();
    h.push(pn);
    let mut nonce = keys.iv;
    nonce[11] ^= pn;
    let aead = Aes128Gcm::new(GenericArray::from_slice(&keys.key));
    let tag = aead
        .encrypt_in_place_detached(Nonce::from_slice(&nonce), &h, &mut payload)
        .ok()?;
    let mut pkt = h;
    pkt.extend_from_slice(&payload);
    pkt.extend_from_slice(&tag);
    let hp = aes::Aes128::new(GenericArray::from_slice(&keys.hp));
    let mut mask = GenericArray::clone_from_slice(&pkt[pn_off + 4..pn_off + 20]);
    hp.encrypt_block(&mut mask);
    pkt[0] ^= mask[0] & 0x0f;
    pkt[pn_off] ^= mask[1];
    Some(pkt)
}

/// Version as Suricata writes it ("1", "v2", "draft-29", else hex), written in `buf`.
pub fn version_name(v: u32, buf: &mut [u8; 16]) -> &str {
    let b = match v {
        1 => return "1",
        0x6b33_43cf => return "v2",
        0xff00_0000..=0xff00_00ff => fmt_small(buf, format_args!("draft-{}", v & 0xff)),
        _ => fmt_small(buf, format_args!("{v:#x}")),
    };
    // Digits, letters and '-' only.
    std::str::from_utf8(b).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names_agree_with_their_formatted_form() {
        let want = |v: u32| match v {
            1 => "1".to_string(),
            0x6b33_43cf => "v2".to_string(),
            0xff00_0000..=0xff00_00ff => format!("draft-{}", v & 0xff),
            _ => format!("{v:#x}"),
        };
        let mut vs = vec![
            0,
            1,
            2,
            0xf,
            0x10,
            0x6b33_43cf,
            0xff00_0000,
            0xff00_001d,
            0xff00_00ff,
        ];
        vs.extend([0xff00_0100, 0xfaceb002, 0x5135_3030, u32::MAX, 0x0a0a_0a0a]);
        vs.extend((0..2000u32).map(|i| i.wrapping_mul(2_654_435_761)));
        for v in vs {
            let mut buf = [0u8; 16];
            assert_eq!(version_name(v, &mut buf), want(v), "{v:#x}");
        }
    }

    /// RFC 9001 appendix A: the client keys for DCID 0x8394c8f03e515708.
    #[test]
    fn rfc9001_initial_keys() {
        let dcid = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];
        let k = initial_keys(1, &dcid, false).unwrap();
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(hex(&k.key), "1f369613dd76d5467730efcbe3b1a22d");
        assert_eq!(hex(&k.iv), "fa044b2f42a3fd3b46fb255c");
        assert_eq!(hex(&k.hp), "9f50449e04a0e810283a1e9933adedd2");
        // RFC 9369 appendix A (version 2).
        let k = initial_keys(0x6b33_43cf, &dcid, false).unwrap();
        assert_eq!(hex(&k.key), "8b1a0bc121284290a29e0971b5cd045d");
        assert_eq!(hex(&k.iv), "91f73e2351d8fa91660e909f");
        assert_eq!(hex(&k.hp), "45b95e15235d6f45a6b19cbcb0294ba9");
    }

    #[test]
    fn sealed_initial_round_trips() {
        let rec = crate::app::tls::client_hello_record("seal.example");
        let hs = &rec[5..];
        let mut f = vec![0x06, 0x00];
        f.extend_from_slice(&((hs.len() as u16) | 0x4000).to_be_bytes());
        f.extend_from_slice(hs);
        for v in [1, 0x6b33_43cf] {
            let pkt = seal_client_initial(v, &[1, 2, 3, 4, 5, 6, 7, 8], 0, &f).unwrap();
            match QuicConn::default().datagram(&pkt, true) {
                Ok(Some(Hello::Client(ch))) => assert_eq!(ch.sni.as_deref(), Some("seal.example")),
                other => panic!("{v:#x}: {other:?}"),
            }
        }
    }

    #[test]
    fn crypto_in_any_order_with_duplicates() {
        let mut c = CryptoAsm::default();
        c.crypto_at(6, b"ghij").unwrap();
        c.crypto_at(0, b"abc").unwrap();
        c.crypto_at(2, b"XdeZ").unwrap(); // 'c' stays; d, e, Z are new
        c.crypto_at(3, b"def").unwrap(); // a later copy: 'Z' (the first copy of byte 5) stays
        assert_eq!(&c.crypto, b"abcdeZghij");
        assert_eq!(c.have, [(0, 10)]);
        assert_eq!(c.crypto_at(MAX_CRYPTO, b"x"), Err(QuicError::TooMuch));
    }
}
