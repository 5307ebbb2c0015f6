//! Link and network decoding over `&[u8]` with etherparse: Ethernet with up to three VLAN tags
//! (802.1Q, 802.1ad QinQ), Linux SLL and SLL2, BSD/OpenBSD loopback, raw IP, NFLOG; IPv4 with
//! options and IPv6 with extension headers; IP-in-IP, IPv6-in-IP and GRE are decapsulated.
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
            (et, rest)
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
}
