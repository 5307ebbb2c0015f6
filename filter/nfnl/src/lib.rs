//! A netfilter queue (NFQUEUE) client over a plain netlink socket: bind a queue, set its copy
//! range, length and fail-open flag, receive packets, and give verdicts, one at a time or in
//! batches (`NFQNL_MSG_VERDICT_BATCH`: one message settles every packet up to an id).
//!
//! Messages are built and parsed here as bytes (netlink header, `nfgenmsg`, attributes), with
//! every length checked against the datagram. The only `unsafe` is one line that reads the
//! bytes a non-blocking `recv` has written into its buffer; everything else is safe Rust over
//! socket2. Receiving in bursts without blocking is what lets a worker batch its verdicts.
#![deny(missing_docs)]

use std::io;
use std::mem::MaybeUninit;

use socket2::{Domain, Protocol, Socket, Type};

const AF_NETLINK: i32 = 16;
const NETLINK_NETFILTER: i32 = 12;
const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFQNL_MSG_PACKET: u16 = NFNL_SUBSYS_QUEUE << 8;
const NFQNL_MSG_VERDICT: u16 = NFNL_SUBSYS_QUEUE << 8 | 1;
const NFQNL_MSG_CONFIG: u16 = NFNL_SUBSYS_QUEUE << 8 | 2;
const NFQNL_MSG_VERDICT_BATCH: u16 = NFNL_SUBSYS_QUEUE << 8 | 3;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQA_MARK: u16 = 3;
const NFQA_PAYLOAD: u16 = 10;
const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQA_CFG_QUEUE_MAXLEN: u16 = 3;
const NFQA_CFG_MASK: u16 = 4;
const NFQA_CFG_FLAGS: u16 = 5;
const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_COPY_PACKET: u8 = 2;
const NFQA_CFG_F_FAIL_OPEN: u32 = 1;
const MSG_DONTWAIT: i32 = 0x40;

/// A verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Drop the packet.
    Drop,
    /// Let it continue.
    Accept,
}

/// One queued packet, borrowed from the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The kernel's packet id (increasing within a queue).
    pub id: u32,
    /// Its mark (nfmark) when queued.
    pub mark: u32,
    /// The packet from its network header.
    pub payload: &'a [u8],
}

/// A bound queue.
#[derive(Debug)]
pub struct Queue {
    sock: Socket,
    queue: u16,
    seq: u32,
    rx: Vec<MaybeUninit<u8>>,
    tx: Vec<u8>,
    /// Receive errors the kernel reported as lost messages (ENOBUFS): packets that were never
    /// read. A later batch verdict settles them too.
    pub overruns: u64,
}

/// Appends one attribute (type, payload), padded to 4 bytes.
fn attr(out: &mut Vec<u8>, t: u16, payload: &[u8]) {
    out.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&t.to_ne_bytes());
    out.extend_from_slice(payload);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// Starts a message (netlink header with a length to fill in, then `nfgenmsg`).
fn begin(out: &mut Vec<u8>, msg_type: u16, flags: u16, seq: u32, queue: u16) {
    out.clear();
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&msg_type.to_ne_bytes());
    out.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&[0, 0]); // AF_UNSPEC, version 0
    out.extend_from_slice(&queue.to_be_bytes());
}

fn finish(out: &mut [u8]) {
    let n = out.len() as u32;
    out[..4].copy_from_slice(&n.to_ne_bytes());
}

/// Builds a verdict (`batch`: for every packet up to `id`) with an optional mark.
pub fn verdict_message(
    out: &mut Vec<u8>,
    queue: u16,
    id: u32,
    v: Verdict,
    mark: Option<u32>,
    batch: bool,
) {
    let t = if batch {
        NFQNL_MSG_VERDICT_BATCH
    } else {
        NFQNL_MSG_VERDICT
    };
    begin(out, t, 0, 0, queue);
    let mut hdr = [0u8; 8];
    hdr[..4].copy_from_slice(&(if v == Verdict::Accept { 1u32 } else { 0 }).to_be_bytes());
    hdr[4..].copy_from_slice(&id.to_be_bytes());
    attr(out, NFQA_VERDICT_HDR, &hdr);
    if let Some(m) = mark {
        attr(out, NFQA_MARK, &m.to_be_bytes());
    }
    finish(out);
}

/// Reads the attributes of a message body, calling `f(type, payload)` for each.
fn attrs<'a>(mut b: &'a [u8], mut f: impl FnMut(u16, &'a [u8])) {
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let t = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            return;
        }
        f(t, &b[4..len]);
        let next = (len + 3) & !3;
        b = b.get(next..).unwrap_or(&[]);
    }
}

/// What one datagram from the kernel holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// A queued packet.
    Packet(Packet<'a>),
    /// An acknowledgement (0) or error (errno) for a request.
    Ack(i32),
    /// Something else (ignored).
    Other,
}

/// A packet message's id, mark and payload (as a range of the datagram), or what else it is.
enum Parsed {
    Packet(u32, u32, std::ops::Range<usize>),
    Other(Message<'static>),
}

fn parse_at(d: &[u8]) -> Option<Parsed> {
    let len = u32::from_ne_bytes(d.get(..4)?.try_into().ok()?) as usize;
    let t = u16::from_ne_bytes(d.get(4..6)?.try_into().ok()?);
    let m = d.get(..len)?;
    if t == NLMSG_ERROR {
        let e = i32::from_ne_bytes(m.get(16..20)?.try_into().ok()?);
        return Some(Parsed::Other(Message::Ack(-e)));
    }
    if t != NFQNL_MSG_PACKET {
        return Some(Parsed::Other(Message::Other));
    }
    let (mut id, mut mark, mut payload) = (None, 0, 0..0);
    attrs(m.get(20..)?, |t, p| match t {
        NFQA_PACKET_HDR if p.len() >= 4 => id = Some(u32::from_be_bytes([p[0], p[1], p[2], p[3]])),
        NFQA_MARK if p.len() >= 4 => mark = u32::from_be_bytes([p[0], p[1], p[2], p[3]]),
        NFQA_PAYLOAD => {
            // Where the attribute's bytes sit in the datagram (both are views of `d`).
            let at = p.as_ptr() as usize - d.as_ptr() as usize;
            payload = at..at + p.len();
        }
        _ => {}
    });
    Some(Parsed::Packet(id?, mark, payload))
}

/// Parses the first netlink message of a datagram.
pub fn parse(d: &[u8]) -> Option<Message<'_>> {
    Some(match parse_at(d)? {
        Parsed::Packet(id, mark, r) => Message::Packet(Packet {
            id,
            mark,
            payload: &d[r],
        }),
        Parsed::Other(m) => m,
    })
}

impl Queue {
    /// Opens a netlink socket and binds queue `queue`, copying whole packets (up to 64 KiB).
    pub fn open(queue: u16) -> io::Result<Queue> {
        let sock = Socket::new(
            Domain::from(AF_NETLINK),
            Type::RAW,
            Some(Protocol::from(NETLINK_NETFILTER)),
        )?;
        // Room for bursts; capped by the system's rmem_max.
        let _ = sock.set_recv_buffer_size(8 << 20);
        let mut q = Queue {
            sock,
            queue,
            seq: 0,
            rx: vec![MaybeUninit::new(0); 0x10000 + 4096],
            tx: Vec::with_capacity(256),
            overruns: 0,
        };
        q.config(|m| attr(m, NFQA_CFG_CMD, &[NFQNL_CFG_CMD_BIND, 0, 0, 0]))?;
        q.config(|m| {
            let mut p = [0u8; 5];
            p[..4].copy_from_slice(&0xffffu32.to_be_bytes());
            p[4] = NFQNL_COPY_PACKET;
            attr(m, NFQA_CFG_PARAMS, &p);
        })?;
        Ok(q)
    }

    /// The kernel's queue length limit.
    pub fn set_max_len(&mut self, n: u32) -> io::Result<()> {
        self.config(|m| attr(m, NFQA_CFG_QUEUE_MAXLEN, &n.to_be_bytes()))
    }

    /// Fail open: let packets pass when the queue is full.
    pub fn set_fail_open(&mut self, on: bool) -> io::Result<()> {
        self.config(|m| {
            attr(
                m,
                NFQA_CFG_FLAGS,
                &(if on { NFQA_CFG_F_FAIL_OPEN } else { 0 }).to_be_bytes(),
            );
            attr(m, NFQA_CFG_MASK, &NFQA_CFG_F_FAIL_OPEN.to_be_bytes());
        })
    }

    /// Sends a configuration request and waits for its acknowledgement (packets that arrive
    /// meanwhile are not expected: configuration comes before traffic is queued to us).
    fn config(&mut self, body: impl FnOnce(&mut Vec<u8>)) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let mut m = std::mem::take(&mut self.tx);
        begin(&mut m, NFQNL_MSG_CONFIG, NLM_F_ACK, self.seq, self.queue);
        body(&mut m);
        finish(&mut m);
        let sent = self.sock.send(&m);
        self.tx = m;
        sent?;
        loop {
            let n = self.recv_raw(0)?;
            match parse(self.bytes(n)) {
                Some(Message::Ack(0)) => return Ok(()),
                Some(Message::Ack(e)) => return Err(io::Error::from_raw_os_error(e)),
                _ => continue,
            }
        }
    }

    fn recv_raw(&mut self, flags: i32) -> io::Result<usize> {
        loop {
            match self.sock.recv_with_flags(&mut self.rx, flags) {
                Ok(n) => return Ok(n.min(self.rx.len())),
                Err(e) if e.raw_os_error() == Some(105) => self.overruns += 1, // ENOBUFS
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn bytes(&self, n: usize) -> &[u8] {
        let init = &self.rx[..n.min(self.rx.len())];
        // SAFETY: the buffer was initialised when it was allocated (`MaybeUninit::new(0)`) and
        // `recv` only ever writes initialised bytes into it, so every element is initialised;
        // `MaybeUninit<u8>` has the layout of `u8`.
        #[allow(unsafe_code)]
        unsafe {
            std::slice::from_raw_parts(init.as_ptr().cast::<u8>(), init.len())
        }
    }

    /// The next packet: blocks when `wait`, else returns `None` when nothing is queued.
    pub fn recv(&mut self, wait: bool) -> io::Result<Option<Packet<'_>>> {
        loop {
            let n = match self.recv_raw(if wait { 0 } else { MSG_DONTWAIT }) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e),
            };
            // Parsed once; the packet is then lent out of the receive buffer.
            if let Some(Parsed::Packet(id, mark, r)) = parse_at(self.bytes(n)) {
                return Ok(Some(Packet {
                    id,
                    mark,
                    payload: &self.bytes(n)[r],
                }));
            }
        }
    }

    /// Settles packet `id` (or, with `batch`, every packet up to `id` still queued) with a
    /// verdict and, when given, a new mark.
    pub fn verdict(
        &mut self,
        id: u32,
        v: Verdict,
        mark: Option<u32>,
        batch: bool,
    ) -> io::Result<()> {
        verdict_message(&mut self.tx, self.queue, id, v, mark, batch);
        self.sock.send(&self.tx).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_laid_out_as_the_kernel_expects() {
        let mut m = Vec::new();
        verdict_message(&mut m, 7, 0x01020304, Verdict::Accept, Some(0x40), true);
        // nlmsghdr (16) + nfgenmsg (4) + verdict header attribute (12) + mark (8).
        assert_eq!(m.len(), 40);
        assert_eq!(u32::from_ne_bytes(m[..4].try_into().unwrap()), 40);
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), 0x0303);
        assert_eq!(&m[18..20], &[0, 7]);
        assert_eq!(&m[24..32], &[0, 0, 0, 1, 1, 2, 3, 4]);
        assert_eq!(&m[36..40], &[0, 0, 0, 0x40]);
        let mut m2 = Vec::new();
        verdict_message(&mut m2, 7, 9, Verdict::Drop, None, false);
        assert_eq!(m2.len(), 32);
        assert_eq!(u16::from_ne_bytes([m2[4], m2[5]]), 0x0301);
    }

    #[test]
    fn packets_parse_and_hostile_lengths_do_not() {
        // A packet message as the kernel sends it: header, nfgenmsg, PACKET_HDR, MARK, PAYLOAD.
        let mut m = Vec::new();
        begin(&mut m, NFQNL_MSG_PACKET, 0, 0, 3);
        attr(&mut m, NFQA_PACKET_HDR, &[0, 0, 0, 42, 0x08, 0x00, 1]);
        attr(&mut m, NFQA_MARK | 0x4000, &5u32.to_be_bytes());
        attr(&mut m, NFQA_PAYLOAD, b"\x45abc");
        finish(&mut m);
        assert_eq!(
            parse(&m),
            Some(Message::Packet(Packet {
                id: 42,
                mark: 5,
                payload: b"\x45abc"
            }))
        );
        for n in 0..m.len() {
            let _ = parse(&m[..n]);
        }
        let mut bad = m.clone();
        bad[20] = 0xff; // attribute length past the message
        assert_eq!(parse(&bad), None);
        let mut ack = vec![0u8; 36];
        ack[..4].copy_from_slice(&36u32.to_ne_bytes());
        ack[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        ack[16..20].copy_from_slice(&(-1i32).to_ne_bytes());
        assert_eq!(parse(&ack), Some(Message::Ack(1)));
    }
}
