//! Link and network decoding over `&[u8]` with etherparse: Ethernet with up to three VLAN tags
//! (802.1Q, 802.1ad QinQ), MPLS label stacks and PPPoE sessions, Linux SLL and SLL2, BSD/OpenBSD loopback, raw IP, NFLOG; IPv4 with
//! options and IPv6 with extension headers; IP-in-IP, IPv6-in-IP, GRE (and ERSPAN in it), VXLAN
//! (UDP port 4789) and Geneve (UDP port 6081) are decapsulated.
//!
//! Nothing here allocates or panics: every length is checked by etherparse or by an explicit
//! bound before use, and a malformed packet yields an [`Anomaly`] naming the layer and fault.

use std::net::IpAddr;

use etherparse::{Ipv4Slice, Ipv6Slice};

use crate::capture::linktype;

/// A decoder anomaly: Suricata-style event name (`decoder.<layer>.<fault>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Anomaly(pub &'static str);

/// Up to two VLAN ids (outer, inner); 0 means absent. A third tag is decoded but not kept.
pub type Vlans = [u16; 3];

/// Where an IP fragment belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragInfo {
    /// IPv4 identification (16 bits) or IPv6 fragment identification (32 bits).
    pub id: u32,
    /// Byte offset of this fragment's payload in the datagram.
    pub offset: u32,
    /// More fragments follow.
    pub more: bool,
}

/// The network layer of a packet.
#[derive(Debug, Clone, Copy)]
pub struct Ip<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// The upper-layer protocol number (after IPv6 extension headers).
    pub proto: u8,
    /// Upper-layer bytes (for a fragment: this fragment's part).
    pub payload: &'a [u8],
    /// Set when this packet is a fragment.
    pub frag: Option<FragInfo>,
}

/// Finds the network-layer bytes in a frame of the given link type.
/// Returns the IP bytes and the VLAN ids, or `Ok(None)` for non-IP frames (ARP, LLDP...).
pub fn link(linktype: u32, data: &[u8]) -> Result<Option<(&[u8], Vlans)>, Anomaly> {
    let mut vlans = [0u16; 3];
    let (ethertype, l3) = match linktype {
        linktype::ETHERNET => {
            let eth = etherparse::Ethernet2HeaderSlice::from_slice(data)
                .map_err(|_| Anomaly("decoder.ethernet.pkt_too_small"))?;
            let mut et = eth.ether_type().0;
            let mut rest = &data[14..];
            let mut tags = 0;
            while matches!(et, 0x8100 | 0x88a8 | 0x9100) {
                if tags == 3 {
                    return Err(Anomaly("decoder.vlan.too_many_layers"));
                }
                let v = etherparse::SingleVlanHeaderSlice::from_slice(rest)
                    .map_err(|_| Anomaly("decoder.vlan.header_too_small"))?;
                vlans[tags] = v.vlan_identifier().value();
                tags += 1;
                et = v.ether_type().0;
                rest = &rest[4..];
            }
            ethernet_payload(et, rest)?
        }
        linktype::LINUX_SLL => {
            if data.len() < 16 {
                return Err(Anomaly("decoder.sll.pkt_too_small"));
            }
            (u16::from_be_bytes([data[14], data[15]]), &data[16..])
        }
        linktype::LINUX_SLL2 => {
            if data.len() < 20 {
                return Err(Anomaly("decoder.sll2.pkt_too_small"));
            }
            (u16::from_be_bytes([data[0], data[1]]), &data[20..])
        }
        linktype::NULL | linktype::LOOP => {
            if data.len() < 4 {
                return Err(Anomaly("decoder.null.pkt_too_small"));
            }
            let le = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
            let be = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
            let fam = if linktype == linktype::LOOP {
                be
            } else {
                le.min(be)
            };
            let et = match fam {
                2 => 0x0800,
                24 | 28 | 30 => 0x86dd,
                _ => return Ok(None),
            };
            (et, &data[4..])
        }
        linktype::RAW | linktype::RAW_12 | linktype::RAW_14 | linktype::IPV4 | linktype::IPV6 => {
            match data.first().map(|b| b >> 4) {
                Some(4) => (0x0800, data),
                Some(6) => (0x86dd, data),
                _ => return Err(Anomaly("decoder.ipraw.invalid_ip_version")),
            }
        }
        linktype::NFLOG => {
            if data.len() < 4 {
                return Err(Anomaly("decoder.nflog.pkt_too_small"));
            }
            let fam = data[0];
            let mut rest = &data[4..];
            let mut payload = None;
            while rest.len() >= 4 {
                let len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
                let typ = u16::from_le_bytes([rest[2], rest[3]]);
                if len < 4 || len > rest.len() {
                    return Err(Anomaly("decoder.nflog.bad_tlv_length"));
                }
                if typ == 9 {
                    payload = Some(&rest[4..len]);
                    break;
                }
                rest = rest.get((len + 3) & !3..).unwrap_or(&[]);
            }
            let Some(p) = payload else { return Ok(None) };
            (if fam == 10 { 0x86dd } else { 0x0800 }, p)
        }
        _ => return Err(Anomaly("decoder.link.unsupported_linktype")),
    };
    match ethertype {
        0x0800 | 0x86dd => Ok(Some((l3, vlans))),
        _ => Ok(None),
    }
}

/// MPLS labels at most before the payload (routers push a few; 16 is far past practice).
const MPLS_MAX_LABELS: usize = 16;

/// What an Ethernet frame's payload of type `et` carries as (type, bytes): MPLS label stacks
/// and PPPoE sessions are opened down to IPv4 or IPv6; anything else is returned as it is.
/// After the bottom label, the IPv4 and IPv6 explicit-null labels say which; otherwise the
/// first nibble does (4 or 6), as routers and Suricata read it. Pseudowires (Ethernet over
/// MPLS) and PPP protocols other than IP are not IP here.
fn ethernet_payload(et: u16, data: &[u8]) -> Result<(u16, &[u8]), Anomaly> {
    match et {
        0x8847 | 0x8848 => {
            let mut rest = data;
            for _ in 0..MPLS_MAX_LABELS {
                let Some(l) = rest.get(..4) else {
                    return Err(Anomaly("decoder.mpls.header_too_small"));
                };
                let label = u32::from_be_bytes([0, l[0], l[1], l[2]]) >> 4;
                let bottom = l[2] & 0x01 != 0;
                rest = &rest[4..];
                if !bottom {
                    continue;
                }
                let et = match (label, rest.first().map(|b| b >> 4)) {
                    (0, _) | (_, Some(4)) if label != 2 => 0x0800,
                    (2, _) | (_, Some(6)) => 0x86dd,
                    _ => 0,
                };
                return Ok((et, rest));
            }
            Err(Anomaly("decoder.mpls.too_many_labels"))
        }
        0x8864 => {
            // Version and type (0x11), code (0 in a session), session id, length; then the
            // PPP protocol.
            let Some(h) = data.get(..8) else {
                return Err(Anomaly("decoder.pppoe.pkt_too_small"));
            };
            if h[0] != 0x11 {
                return Ok((0, data));
            }
            if h[1] != 0 {
                return Err(Anomaly("decoder.pppoe.wrong_code"));
            }
            let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
            let Some(body) = data.get(6..6 + len) else {
                return Err(Anomaly("decoder.pppoe.pkt_too_small"));
            };
            let et = match u16::from_be_bytes([h[6], h[7]]) {
                0x0021 => 0x0800,
                0x0057 => 0x86dd,
                _ => 0,
            };
            Ok((et, body.get(2..).unwrap_or(&[])))
        }
        _ => Ok((et, data)),
    }
}

/// Decodes the IP header. Tunnels are not followed here; see [`tunnel_inner`].
pub fn ip(data: &[u8]) -> Result<Ip<'_>, Anomaly> {
    match data.first().map(|b| b >> 4) {
        Some(4) => {
            if data.len() >= 20 && data[2] == 0 && data[3] == 0 {
                // Total length 0: captured before TCP segmentation offload filled it in; the
                // captured length is the datagram (as tshark and Suricata read it).
                let (s, _) = etherparse::LaxIpv4Slice::from_slice(data)
                    .map_err(|_| Anomaly("decoder.ipv4.hlen_too_small"))?;
                let h = s.header();
                let p = s.payload();
                return Ok(Ip {
                    src: IpAddr::V4(h.source_addr()),
                    dst: IpAddr::V4(h.destination_addr()),
                    proto: p.ip_number.0,
                    payload: p.payload,
                    frag: None,
                });
            }
            let s = Ipv4Slice::from_slice(data).map_err(v4_anomaly)?;
            let h = s.header();
            let p = s.payload();
            let frag = if h.more_fragments() || h.fragments_offset().value() != 0 {
                Some(FragInfo {
                    id: h.identification() as u32,
                    offset: h.fragments_offset().value() as u32 * 8,
                    more: h.more_fragments(),
                })
            } else {
                None
            };
            Ok(Ip {
                src: IpAddr::V4(h.source_addr()),
                dst: IpAddr::V4(h.destination_addr()),
                proto: p.ip_number.0,
                payload: p.payload,
                frag,
            })
        }
        Some(6) => {
            let s = Ipv6Slice::from_slice(data).map_err(v6_anomaly)?;
            let h = s.header();
            let p = s.payload();
            let frag = v6_fragment(data);
            if p.payload.is_empty() && h.payload_length() == 0 && p.ip_number.0 == 0 {
                return Err(Anomaly("decoder.ipv6.jumbogram_unsupported"));
            }
            Ok(Ip {
                src: IpAddr::V6(h.source_addr()),
                dst: IpAddr::V6(h.destination_addr()),
                proto: p.ip_number.0,
                payload: p.payload,
                frag,
            })
        }
        Some(_) => Err(Anomaly("decoder.ip.invalid_version")),
        None => Err(Anomaly("decoder.ip.pkt_too_small")),
    }
}

/// Finds the IPv6 fragment header by walking the extension chain of a datagram that
/// etherparse already validated (so the chain fits). At most 8 extension headers are walked.
fn v6_fragment(data: &[u8]) -> Option<FragInfo> {
    let mut next = *data.get(6)?;
    let mut off = 40usize;
    for _ in 0..8 {
        match next {
            0 | 43 | 60 => {
                let len = (*data.get(off + 1)? as usize + 1) * 8;
                next = *data.get(off)?;
                off += len;
            }
            51 => {
                let len = (*data.get(off + 1)? as usize + 2) * 4;
                next = *data.get(off)?;
                off += len;
            }
            44 => {
                let f = data.get(off..off + 8)?;
                let v = u16::from_be_bytes([f[2], f[3]]);
                let (offset, more) = ((v >> 3) as u32 * 8, v & 1 != 0);
                if offset == 0 && !more {
                    return None; // an atomic fragment: a whole datagram
                }
                return Some(FragInfo {
                    id: u32::from_be_bytes([f[4], f[5], f[6], f[7]]),
                    offset,
                    more,
                });
            }
            _ => return None,
        }
    }
    None
}

fn v4_anomaly(e: etherparse::err::ipv4::SliceError) -> Anomaly {
    use etherparse::err::ipv4::{HeaderError, SliceError};
    match e {
        SliceError::Len(_) => Anomaly("decoder.ipv4.trunc_pkt"),
        SliceError::Header(HeaderError::HeaderLengthSmallerThanHeader { .. }) => {
            Anomaly("decoder.ipv4.hlen_too_small")
        }
        SliceError::Header(HeaderError::UnexpectedVersion { .. }) => {
            Anomaly("decoder.ipv4.wrong_ip_version")
        }
        SliceError::Exts(_) => Anomaly("decoder.ipv4.invalid_auth_header"),
    }
}

fn v6_anomaly(e: etherparse::err::ipv6::SliceError) -> Anomaly {
    use etherparse::err::ipv6::SliceError;
    match e {
        SliceError::Len(_) => Anomaly("decoder.ipv6.trunc_pkt"),
        SliceError::Header(_) => Anomaly("decoder.ipv6.wrong_ip_version"),
        SliceError::Exts(_) => Anomaly("decoder.ipv6.exthdr_invalid"),
    }
}

/// If `ip` carries another IP packet (IP-in-IP, IPv6-in-IP, GRE with IP or Ethernet inside),
/// returns the inner IP bytes. VLAN tags of an inner Ethernet frame are ignored.
pub fn tunnel_inner(proto: u8, payload: &[u8]) -> Result<Option<&[u8]>, Anomaly> {
    match proto {
        4 | 41 => Ok(Some(payload)),
        47 => {
            if payload.len() < 4 {
                return Err(Anomaly("decoder.gre.pkt_too_small"));
            }
            let flags = u16::from_be_bytes([payload[0], payload[1]]);
            if flags & 0x0007 != 0 {
                // Only GRE version 0 is decapsulated (version 1 is PPTP).
                return Ok(None);
            }
            let et = u16::from_be_bytes([payload[2], payload[3]]);
            let mut off = 4;
            if flags & 0x8000 != 0 {
                off += 4; // checksum + reserved
            }
            if flags & 0x2000 != 0 {
                off += 4; // key
            }
            if flags & 0x1000 != 0 {
                off += 4; // sequence
            }
            let Some(inner) = payload.get(off..) else {
                return Err(Anomaly("decoder.gre.pkt_too_small"));
            };
            match et {
                0x0800 | 0x86dd => Ok(Some(inner)),
                0x6558 => Ok(link(linktype::ETHERNET, inner)?.map(|(l3, _)| l3)),
                // ERSPAN type II: 8-byte header, then the mirrored Ethernet frame.
                0x88be => {
                    let eth = inner
                        .get(8..)
                        .ok_or(Anomaly("decoder.erspan.pkt_too_small"))?;
                    Ok(link(linktype::ETHERNET, eth)?.map(|(l3, _)| l3))
                }
                // ERSPAN type III: 12-byte header, plus an 8-byte platform subheader when O is set.
                0x22eb => {
                    let o = inner
                        .get(11)
                        .ok_or(Anomaly("decoder.erspan.pkt_too_small"))?
                        & 0x01
                        != 0;
                    let eth = inner
                        .get(if o { 20 } else { 12 }..)
                        .ok_or(Anomaly("decoder.erspan.pkt_too_small"))?;
                    Ok(link(linktype::ETHERNET, eth)?.map(|(l3, _)| l3))
                }
                _ => Ok(None),
            }
        }
        _ => Ok(None),
    }
}

/// The UDP port VXLAN is sent to (RFC 7348).
pub const VXLAN_PORT: u16 = 4789;
/// The UDP port Geneve is sent to (RFC 8926).
pub const GENEVE_PORT: u16 = 6081;

/// What a tunnel carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inner<'a> {
    /// An IP packet (the inner network layer).
    Ip(&'a [u8]),
    /// A frame that is not IP (ARP, LLDP...) inside the tunnel.
    NonIp,
}

/// If a UDP datagram sent to `dport` is a VXLAN or Geneve packet, what it carries and its
/// 24-bit segment id (VNI); `Ok(None)` for any other datagram, including one sent to those
/// ports that is not the protocol's (a VXLAN header without its I flag, a Geneve version other
/// than 0, which receivers drop): that is ordinary UDP, as Suricata treats it. Reserved bits are ignored, as the RFCs tell
/// receivers to, so setting them does not hide the inner packet from Palisade from a tunnel
/// endpoint that accepts it. A header that claims more bytes than the datagram holds, or an
/// inner frame too short for its own header, is an anomaly. Inner VLAN tags are decoded and
/// not kept.
pub fn udp_tunnel_inner(dport: u16, payload: &[u8]) -> Result<Option<(Inner<'_>, u32)>, Anomaly> {
    let eth = |frame| -> Result<Inner<'_>, Anomaly> {
        Ok(match link(linktype::ETHERNET, frame)? {
            Some((l3, _)) => Inner::Ip(l3),
            None => Inner::NonIp,
        })
    };
    let vni = |h: &[u8]| u32::from_be_bytes([0, h[4], h[5], h[6]]);
    match dport {
        VXLAN_PORT => {
            // Flags (I = 0x08, the rest reserved), 24 reserved bits, the 24-bit VNI, 8 reserved.
            let Some(h) = payload.get(..8) else {
                return Ok(None);
            };
            if h[0] & 0x08 == 0 {
                return Ok(None);
            }
            Ok(Some((eth(&payload[8..])?, vni(h))))
        }
        GENEVE_PORT => {
            // Version (2 bits) and options length (6 bits, in 4-byte words); O, C and 6 reserved
            // bits; the protocol type; the 24-bit VNI and 8 reserved bits; then the options.
            let Some(h) = payload.get(..8) else {
                return Ok(None);
            };
            if h[0] >> 6 != 0 {
                return Ok(None);
            }
            let len = 8 + 4 * usize::from(h[0] & 0x3f);
            let inner = payload
                .get(len..)
                .ok_or(Anomaly("decoder.geneve.pkt_too_small"))?;
            let inner = match u16::from_be_bytes([h[2], h[3]]) {
                0x6558 => eth(inner)?,
                0x0800 | 0x86dd => Inner::Ip(inner),
                _ => Inner::NonIp,
            };
            Ok(Some((inner, vni(h))))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qinq_ids_kept_and_short_frames_are_anomalies() {
        // dst, src, 0x88a8 tag 100, 0x8100 tag 200, IPv4 minimal header.
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x88, 0xa8, 0x00, 100, 0x81, 0x00, 0x00, 200, 0x08, 0x00]);
        f.extend_from_slice(&[
            0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        let (l3, v) = link(linktype::ETHERNET, &f).unwrap().unwrap();
        assert_eq!(v, [100, 200, 0]);
        assert_eq!(ip(l3).unwrap().proto, 17);
        assert_eq!(
            link(linktype::ETHERNET, &f[..10]).unwrap_err().0,
            "decoder.ethernet.pkt_too_small"
        );
        assert_eq!(
            link(linktype::ETHERNET, &f[..16]).unwrap_err().0,
            "decoder.vlan.header_too_small"
        );
        // IPv4 total length says 40, only 20 present.
        let mut t = f.clone();
        t[25] = 40;
        let (l3, _) = link(linktype::ETHERNET, &t).unwrap().unwrap();
        assert_eq!(ip(l3).unwrap_err().0, "decoder.ipv4.trunc_pkt");
        assert_eq!(ip(&[0x55]).unwrap_err().0, "decoder.ip.invalid_version");
    }

    const IP: [u8; 20] = [
        0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];

    fn ether(et: u16, body: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        f.extend_from_slice(&et.to_be_bytes());
        f.extend_from_slice(body);
        f
    }

    #[test]
    fn vxlan_is_decapsulated_by_its_i_flag_whatever_the_reserved_bits() {
        let frame = ether(0x0800, &IP);
        let with = |h: [u8; 8], inner: &[u8]| {
            let mut p = h.to_vec();
            p.extend_from_slice(inner);
            p
        };
        let plain = with([0x08, 0, 0, 0, 0, 0, 42, 0], &frame);
        assert_eq!(
            udp_tunnel_inner(VXLAN_PORT, &plain),
            Ok(Some((Inner::Ip(&IP[..]), 42)))
        );
        // Reserved bits set (receivers ignore them; so does Palisade), an inner VLAN tag.
        let mut tagged = vec![
            2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x81, 0x00, 0x00, 7, 0x08, 0x00,
        ];
        tagged.extend_from_slice(&IP);
        let odd = with([0xff, 1, 2, 3, 0, 0, 42, 9], &tagged);
        assert_eq!(
            udp_tunnel_inner(VXLAN_PORT, &odd),
            Ok(Some((Inner::Ip(&IP[..]), 42)))
        );
        // Not VXLAN: no I flag, a short datagram, another port. Plain UDP then.
        assert_eq!(
            udp_tunnel_inner(VXLAN_PORT, &with([0x00, 0, 0, 0, 0, 0, 42, 0], &frame)),
            Ok(None)
        );
        assert_eq!(udp_tunnel_inner(VXLAN_PORT, &plain[..7]), Ok(None));
        assert_eq!(udp_tunnel_inner(4790, &plain), Ok(None));
        // ARP inside; a truncated inner frame.
        let arp = with([0x08, 0, 0, 0, 0, 0, 42, 0], &ether(0x0806, &[0; 28]));
        assert_eq!(
            udp_tunnel_inner(VXLAN_PORT, &arp),
            Ok(Some((Inner::NonIp, 42)))
        );
        assert_eq!(
            udp_tunnel_inner(VXLAN_PORT, &plain[..8 + 10]),
            Err(Anomaly("decoder.ethernet.pkt_too_small"))
        );
    }

    #[test]
    fn geneve_options_protocols_and_bad_lengths() {
        // Two option words, then IPv4 directly.
        let mut p = vec![0x02, 0x40, 0x08, 0x00, 0, 0, 7, 0, 1, 2, 3, 4, 5, 6, 7, 8];
        p.extend_from_slice(&IP);
        assert_eq!(
            udp_tunnel_inner(GENEVE_PORT, &p),
            Ok(Some((Inner::Ip(&IP[..]), 7)))
        );
        // Ethernet inside, no options.
        let mut e = vec![0x00, 0x00, 0x65, 0x58, 0, 0, 7, 0];
        e.extend(ether(0x86dd, &[0x60; 40]));
        assert_eq!(
            udp_tunnel_inner(GENEVE_PORT, &e),
            Ok(Some((Inner::Ip(&[0x60; 40][..]), 7)))
        );
        // Options longer than the datagram: an anomaly, not a read past the end.
        let mut long = p[..8].to_vec();
        long[0] = 0x3f;
        long.extend_from_slice(&[0; 16]);
        assert_eq!(
            udp_tunnel_inner(GENEVE_PORT, &long),
            Err(Anomaly("decoder.geneve.pkt_too_small"))
        );
        // Another version is not Geneve (receivers drop it); another protocol is not IP.
        let mut v1 = p.clone();
        v1[0] |= 0x40;
        assert_eq!(udp_tunnel_inner(GENEVE_PORT, &v1), Ok(None));
        let mut nsh = p.clone();
        nsh[2..4].copy_from_slice(&0x894fu16.to_be_bytes());
        assert_eq!(
            udp_tunnel_inner(GENEVE_PORT, &nsh),
            Ok(Some((Inner::NonIp, 7)))
        );
    }

    #[test]
    fn mpls_and_pppoe_open_to_ip_and_refuse_bad_headers() {
        fn eth_ip(f: &[u8]) -> Result<Option<&[u8]>, Anomaly> {
            link(linktype::ETHERNET, f).map(|o| o.map(|(l3, _)| l3))
        }
        // One label, bottom of stack, IPv4 by the nibble.
        let one = ether(0x8847, &[[0, 0x10, 0x01, 0xff].as_slice(), &IP].concat());
        assert_eq!(eth_ip(&one), Ok(Some(&IP[..])));
        // A pseudowire (control word, Ethernet inside) is not IP here.
        let pw = ether(0x8847, &[0, 0x10, 0x01, 0xff, 0, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(eth_ip(&pw), Ok(None));
        // No bottom label before the bytes end; more labels than any router pushes.
        assert_eq!(
            eth_ip(&ether(0x8847, &[0, 0x10, 0x00, 0xff, 0, 0x20])),
            Err(Anomaly("decoder.mpls.header_too_small"))
        );
        assert_eq!(
            eth_ip(&ether(0x8847, &[0, 0x10, 0x00, 0xff].repeat(17))),
            Err(Anomaly("decoder.mpls.too_many_labels"))
        );
        // PPPoE session: IPv4 inside; the length field bounds the payload.
        let ppp = |code: u8, len: u16, proto: u16, body: &[u8]| {
            let mut h = vec![0x11, code, 0, 1];
            h.extend_from_slice(&len.to_be_bytes());
            h.extend_from_slice(&proto.to_be_bytes());
            h.extend_from_slice(body);
            ether(0x8864, &h)
        };
        assert_eq!(eth_ip(&ppp(0, 22, 0x0021, &IP)), Ok(Some(&IP[..])));
        assert_eq!(
            eth_ip(&ppp(0, 22, 0x0021, &[IP.as_slice(), &[0xee; 6]].concat())),
            Ok(Some(&IP[..])),
            "padding after the session's length is not IP"
        );
        assert_eq!(
            eth_ip(&ppp(0, 200, 0x0021, &IP)),
            Err(Anomaly("decoder.pppoe.pkt_too_small"))
        );
        assert_eq!(
            eth_ip(&ppp(7, 22, 0x0021, &IP)),
            Err(Anomaly("decoder.pppoe.wrong_code"))
        );
        // LCP, and a frame too short for the header.
        assert_eq!(eth_ip(&ppp(0, 22, 0xc021, &IP)), Ok(None));
        assert_eq!(
            eth_ip(&ether(0x8864, &[0x11, 0])),
            Err(Anomaly("decoder.pppoe.pkt_too_small"))
        );
    }

    /// Whatever the bytes, the UDP tunnel decoder neither panics nor returns bytes that are
    /// not a suffix of its input.
    #[test]
    fn udp_tunnel_decoding_stays_inside_its_input() {
        let mut rng = 0x2545f4914f6cdd1du64;
        for _ in 0..20_000 {
            let mut b = [0u8; 80];
            let n = (rng % 81) as usize;
            for x in b.iter_mut() {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                *x = rng as u8;
            }
            // Often a valid start, so the inner paths run too.
            if rng & 1 == 0 {
                b[0] = 0x08;
            } else if rng & 2 == 0 {
                b[0] &= 0x3;
            }
            for port in [VXLAN_PORT, GENEVE_PORT] {
                if let Ok(Some((Inner::Ip(inner), _))) = udp_tunnel_inner(port, &b[..n]) {
                    assert!(b[..n].ends_with(inner));
                }
            }
        }
    }
}
