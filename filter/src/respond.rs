//! Responses an inline filter sends instead of forwarding: TCP resets to both ends, and DNS
//! answers from the sinkhole. Pure functions from the offending packet (raw IP) to the bytes to
//! inject (raw IP, checksums filled); the capture shell sends them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

/// What a blocked DNS query is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sinkhole {
    /// NXDOMAIN (the name does not exist).
    NxDomain,
    /// An A answer with this address and an AAAA answer with `v6` (0.0.0.0 and :: by default);
    /// other query types get an empty NOERROR answer.
    Address {
        /// Answer to A queries.
        v4: Ipv4Addr,
        /// Answer to AAAA queries.
        v6: Ipv6Addr,
    },
}

impl Default for Sinkhole {
    fn default() -> Self {
        Sinkhole::Address {
            v4: Ipv4Addr::UNSPECIFIED,
            v6: Ipv6Addr::UNSPECIFIED,
        }
    }
}

impl Sinkhole {
    /// Parses `nxdomain` or an address (v4 sets the A answer, v6 the AAAA answer).
    pub fn parse(s: &str) -> Option<Sinkhole> {
        if s == "nxdomain" {
            return Some(Sinkhole::NxDomain);
        }
        match s.parse::<IpAddr>().ok()? {
            IpAddr::V4(v4) => Some(Sinkhole::Address {
                v4,
                v6: Ipv6Addr::UNSPECIFIED,
            }),
            IpAddr::V6(v6) => Some(Sinkhole::Address {
                v4: Ipv4Addr::UNSPECIFIED,
                v6,
            }),
        }
    }
}

struct Ends {
    src: IpAddr,
    dst: IpAddr,
}

fn ends(p: &SlicedPacket<'_>) -> Option<Ends> {
    match p.net.as_ref()? {
        NetSlice::Ipv4(v4) => Some(Ends {
            src: v4.header().source_addr().into(),
            dst: v4.header().destination_addr().into(),
        }),
        NetSlice::Ipv6(v6) => Some(Ends {
            src: v6.header().source_addr().into(),
            dst: v6.header().destination_addr().into(),
        }),
    }
}

fn builder(
    src: IpAddr,
    dst: IpAddr,
) -> Option<etherparse::PacketBuilderStep<etherparse::IpHeaders>> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Some(PacketBuilder::ipv4(s.octets(), d.octets(), 64)),
        (IpAddr::V6(s), IpAddr::V6(d)) => Some(PacketBuilder::ipv6(s.octets(), d.octets(), 64)),
        _ => None,
    }
}

/// Two resets for a TCP packet that is being dropped: one to its destination (as if from its
/// sender, at the sender's sequence number) and one back to its sender (as if from the
/// destination, at the sequence number the sender acknowledged). Empty for non-TCP packets.
pub fn tcp_resets(ip_packet: &[u8]) -> Vec<(IpAddr, Vec<u8>)> {
    let Ok(p) = SlicedPacket::from_ip(ip_packet) else {
        return Vec::new();
    };
    let (Some(e), Some(TransportSlice::Tcp(t))) = (ends(&p), p.transport.as_ref()) else {
        return Vec::new();
    };
    if t.rst() {
        return Vec::new();
    }
    let seg_len = t.payload().len() as u32 + u32::from(t.syn()) + u32::from(t.fin());
    let mut out = Vec::with_capacity(2);
    // To the destination: RST at the sender's sequence number (the dropped bytes never arrived).
    if let Some(b) = builder(e.src, e.dst) {
        let mut v = Vec::with_capacity(60);
        if b.tcp(
            t.source_port(),
            t.destination_port(),
            t.sequence_number(),
            0,
        )
        .rst()
        .write(&mut v, &[])
        .is_ok()
        {
            out.push((e.dst, v));
        }
    }
    // Back to the sender: RST|ACK from the destination at the sender's acknowledged position.
    if let Some(b) = builder(e.dst, e.src) {
        let mut v = Vec::with_capacity(60);
        let seq = if t.ack() {
            t.acknowledgment_number()
        } else {
            0
        };
        let ack = t.sequence_number().wrapping_add(seg_len);
        if b.tcp(t.destination_port(), t.source_port(), seq, 0)
            .rst()
            .ack(ack)
            .write(&mut v, &[])
            .is_ok()
        {
            out.push((e.src, v));
        }
    }
    out
}

/// The sinkhole's answer to a DNS query over UDP, as a raw IP packet from the server the query
/// was sent to, back to the client. `None` when the packet is not a DNS query over UDP.
pub fn dns_answer(ip_packet: &[u8], how: Sinkhole) -> Option<(IpAddr, Vec<u8>)> {
    let p = SlicedPacket::from_ip(ip_packet).ok()?;
    let e = ends(&p)?;
    let Some(TransportSlice::Udp(u)) = p.transport.as_ref() else {
        return None;
    };
    let q = u.payload();
    if q.len() < 12 || q[2] & 0x80 != 0 || u16::from_be_bytes([q[4], q[5]]) == 0 {
        return None;
    }
    // The end of the first question: name labels, then type and class.
    let mut i = 12;
    loop {
        let l = *q.get(i)? as usize;
        if l == 0 {
            i += 1;
            break;
        }
        if l & 0xc0 != 0 {
            return None; // compression in a query's first name: not worth answering
        }
        i += 1 + l;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    let qend = i + 4;
    q.get(..qend)?;
    let mut r = Vec::with_capacity(qend + 32);
    r.extend_from_slice(&q[..2]);
    let rd = q[2] & 0x01;
    let (rcode, answer): (u8, Option<Vec<u8>>) = match (how, qtype) {
        (Sinkhole::NxDomain, _) => (3, None),
        (Sinkhole::Address { v4, .. }, 1) => (0, Some(v4.octets().to_vec())),
        (Sinkhole::Address { v6, .. }, 28) => (0, Some(v6.octets().to_vec())),
        (Sinkhole::Address { .. }, _) => (0, None),
    };
    r.extend_from_slice(&[0x80 | (q[2] & 0x78) | rd, 0x80 | rcode]);
    r.extend_from_slice(&[0, 1, 0, u8::from(answer.is_some()), 0, 0, 0, 0]);
    r.extend_from_slice(&q[12..qend]);
    if let Some(rdata) = answer {
        r.extend_from_slice(&[0xc0, 0x0c]);
        r.extend_from_slice(&qtype.to_be_bytes());
        r.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
        r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        r.extend_from_slice(&rdata);
    }
    let mut v = Vec::with_capacity(r.len() + 48);
    builder(e.dst, e.src)?
        .udp(u.destination_port(), u.source_port())
        .write(&mut v, &r)
        .ok()?;
    Some((e.src, v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::dns::{DnsMsg, RData};

    #[test]
    fn resets_go_both_ways_at_the_right_sequence_numbers() {
        let mut pkt = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 443, 1000, 500)
            .ack(7000)
            .write(&mut pkt, &[0x16; 100])
            .unwrap();
        let r = tcp_resets(&pkt);
        assert_eq!(r.len(), 2);
        let to_srv = SlicedPacket::from_ip(&r[0].1).unwrap();
        let Some(TransportSlice::Tcp(t)) = to_srv.transport else {
            panic!()
        };
        assert!(t.rst() && t.sequence_number() == 1000 && t.destination_port() == 443);
        let to_cli = SlicedPacket::from_ip(&r[1].1).unwrap();
        let Some(TransportSlice::Tcp(t)) = to_cli.transport else {
            panic!()
        };
        assert!(
            t.rst() && t.ack() && t.sequence_number() == 7000 && t.acknowledgment_number() == 1100
        );
        assert_eq!(r[1].0, IpAddr::from([10, 0, 0, 1]));
    }

    #[test]
    fn sinkhole_answers_a_aaaa_and_nxdomain() {
        let mut q = vec![
            0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'b', b'a', b'd', 7,
        ];
        q.extend_from_slice(b"example\x00\x00\x01\x00\x01");
        let mut pkt = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 53], 64)
            .udp(33333, 53)
            .write(&mut pkt, &q)
            .unwrap();
        let (to, ans) = dns_answer(&pkt, Sinkhole::default()).unwrap();
        assert_eq!(to, IpAddr::from([10, 0, 0, 1]));
        let p = SlicedPacket::from_ip(&ans).unwrap();
        let Some(TransportSlice::Udp(u)) = p.transport else {
            panic!()
        };
        assert_eq!((u.source_port(), u.destination_port()), (53, 33333));
        let mut m = DnsMsg::default();
        m.parse(u.payload()).unwrap();
        assert!(m.is_response() && m.id == 0xabcd && m.rcode() == 0);
        assert_eq!(m.text(&m.queries[0].name), "bad.example");
        assert_eq!(m.answers[0].rdata, RData::Addr("0.0.0.0".parse().unwrap()));
        let (_, nx) = dns_answer(&pkt, Sinkhole::NxDomain).unwrap();
        let p = SlicedPacket::from_ip(&nx).unwrap();
        m.parse(
            p.transport
                .map(|t| match t {
                    TransportSlice::Udp(u) => u.payload().to_vec(),
                    _ => vec![],
                })
                .unwrap()
                .as_slice(),
        )
        .unwrap();
        assert_eq!((m.rcode(), m.answers.len()), (3, 0));
    }
}
