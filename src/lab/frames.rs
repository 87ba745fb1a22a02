//! Frames for the demo and the tests, built with etherparse: an Ethernet II header, any number
//! of 802.1Q / 802.1ad tags (outermost first), then a payload of the caller's choice, a
//! numbered test payload, or IPv4 UDP, TCP or ICMP echo with the checksums etherparse computes.

use super::LabError;
use crate::wire::Mac;
use etherparse::{EtherType, Ethernet2Header, PacketBuilder, SingleVlanHeader};
use std::net::{Ipv4Addr, SocketAddrV4};

/// Ethertype 0x88b5 (IEEE local experimental): what nothing on the lab's path interprets.
pub const EXPERIMENTAL: u16 = 0x88b5;

/// The shortest Ethernet frame without FCS; [`numbered`] pads up to it.
pub const MIN_LEN: usize = 60;

/// One VLAN tag as it goes on the wire: its TPID and its tag control information.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag {
    /// 0x8100 (802.1Q, customer) or 0x88a8 (802.1ad, provider), or any other value a test wants.
    pub tpid: u16,
    /// Priority (3 bits), drop eligibility (1 bit) and VLAN id (12 bits).
    pub tci: u16,
}

impl Tag {
    /// An 802.1Q customer tag with VLAN id `vid` and priority 0.
    pub const fn dot1q(vid: u16) -> Tag {
        Tag {
            tpid: 0x8100,
            tci: vid,
        }
    }

    /// An 802.1ad provider (QinQ outer) tag with VLAN id `vid` and priority 0.
    pub const fn dot1ad(vid: u16) -> Tag {
        Tag {
            tpid: 0x88a8,
            tci: vid,
        }
    }
}

/// The Ethernet header and the `tags` in front of a payload of type `ethertype`.
pub fn header(dst: impl Into<Mac>, src: impl Into<Mac>, tags: &[Tag], ethertype: u16) -> Vec<u8> {
    let (dst, src) = (dst.into(), src.into());
    // Each header names the type of what follows it: the next tag's TPID, or the payload's.
    let next = |i: usize| tags.get(i).map_or(ethertype, |t| t.tpid);
    let eth = Ethernet2Header {
        destination: dst.0,
        source: src.0,
        ether_type: EtherType(next(0)),
    };
    let mut f = Vec::with_capacity(eth.header_len() + 4 * tags.len());
    f.extend_from_slice(&eth.to_bytes());
    for (i, tag) in tags.iter().enumerate() {
        let [t0, t1] = tag.tci.to_be_bytes();
        let [e0, e1] = next(i + 1).to_be_bytes();
        f.extend_from_slice(&SingleVlanHeader::from_bytes([t0, t1, e0, e1]).to_bytes());
    }
    f
}

/// A frame of type `ethertype` carrying `payload` as it is (no padding).
pub fn raw(
    dst: impl Into<Mac>,
    src: impl Into<Mac>,
    tags: &[Tag],
    ethertype: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = header(dst, src, tags, ethertype);
    f.extend_from_slice(payload);
    f
}

/// A numbered test frame of [`EXPERIMENTAL`] type, `len` bytes long (at least [`MIN_LEN`]):
/// the big-endian sequence number right after the Ethertype, then the bytes 0, 1, 2, …
/// (wrapping), so that every frame of a run is distinct and a changed byte shows.
pub fn numbered(
    dst: impl Into<Mac>,
    src: impl Into<Mac>,
    tags: &[Tag],
    seq: u32,
    len: usize,
) -> Vec<u8> {
    let mut f = header(dst, src, tags, EXPERIMENTAL);
    f.extend_from_slice(&seq.to_be_bytes());
    let pad = len.max(MIN_LEN).saturating_sub(f.len());
    f.extend((0..pad).map(|i| i as u8));
    f
}

/// The sequence number [`numbered`] wrote into a frame with `tags` VLAN tags.
pub fn seq_of(frame: &[u8], tags: usize) -> Option<u32> {
    let at = Ethernet2Header::LEN + SingleVlanHeader::LEN * tags;
    let b = frame.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// An IPv4/UDP frame from `from` to `to` (TTL 64) carrying `payload`, with the IPv4 header and
/// UDP checksums computed by etherparse.
pub fn udp4(
    dst: impl Into<Mac>,
    src: impl Into<Mac>,
    tags: &[Tag],
    from: SocketAddrV4,
    to: SocketAddrV4,
    payload: &[u8],
) -> Result<Vec<u8>, LabError> {
    let mut f = header(dst, src, tags, EtherType::IPV4.0);
    PacketBuilder::ipv4(from.ip().octets(), to.ip().octets(), 64)
        .udp(from.port(), to.port())
        .write(&mut f, payload)?;
    Ok(f)
}

/// An IPv4/TCP segment from `from` to `to` (TTL 64) with sequence number `seq`, the ACK flag
/// set (acknowledging 1) and `payload`, checksums computed by etherparse.
pub fn tcp4(
    dst: impl Into<Mac>,
    src: impl Into<Mac>,
    tags: &[Tag],
    from: SocketAddrV4,
    to: SocketAddrV4,
    seq: u32,
    payload: &[u8],
) -> Result<Vec<u8>, LabError> {
    let mut f = header(dst, src, tags, EtherType::IPV4.0);
    PacketBuilder::ipv4(from.ip().octets(), to.ip().octets(), 64)
        .tcp(from.port(), to.port(), seq, 65535)
        .ack(1)
        .write(&mut f, payload)?;
    Ok(f)
}

/// An IPv4 ICMP echo request from `from` to `to` (TTL 64) with identifier `id`, sequence
/// number `seq` and `payload`, checksums computed by etherparse.
pub fn icmp4_echo(
    dst: impl Into<Mac>,
    src: impl Into<Mac>,
    tags: &[Tag],
    (from, to): (Ipv4Addr, Ipv4Addr),
    (id, seq): (u16, u16),
    payload: &[u8],
) -> Result<Vec<u8>, LabError> {
    let mut f = header(dst, src, tags, EtherType::IPV4.0);
    PacketBuilder::ipv4(from.octets(), to.octets(), 64)
        .icmpv4_echo_request(id, seq)
        .write(&mut f, payload)?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{LinkExtHeader, NetHeaders, PacketHeaders, TransportHeader};

    const A: Mac = Mac([0x02, 0, 0, 0, 0, 0x0a]);
    const B: Mac = Mac([0x02, 0, 0, 0, 0, 0x0b]);

    #[test]
    fn numbered_frames_have_the_sequence_number_after_the_tags_and_a_counting_pad() {
        let f = numbered(B, A, &[], 0x0102_0304, 64);
        assert_eq!(f.len(), 64);
        assert_eq!(&f[..6], &B.0);
        assert_eq!(&f[6..12], &A.0);
        assert_eq!(&f[12..18], &[0x88, 0xb5, 1, 2, 3, 4]);
        assert_eq!(&f[18..21], &[0, 1, 2]);
        assert_eq!(seq_of(&f, 0), Some(0x0102_0304));

        let tags = [Tag::dot1ad(100), Tag::dot1q(20)];
        let f = numbered(B, A, &tags, 7, 0);
        assert_eq!(f.len(), MIN_LEN, "padded to the minimum");
        assert_eq!(
            &f[12..24],
            &[0x88, 0xa8, 0, 100, 0x81, 0x00, 0, 20, 0x88, 0xb5, 0, 0]
        );
        assert_eq!(seq_of(&f, 2), Some(7));
        assert_eq!(numbered(B, A, &[], 0, 1514).len(), 1514);
        assert_eq!(seq_of(&f[..20], 2), None, "cut short");
    }

    #[test]
    fn raw_frames_carry_the_payload_unpadded() {
        let f = raw(B, A, &[Tag::dot1q(10)], 0x0806, &[9; 3]);
        assert_eq!(
            f[12..],
            [0x81, 0x00, 0, 10, 0x08, 0x06, 9, 9, 9],
            "tag, then type, then payload"
        );
    }

    #[test]
    fn udp_frames_parse_back_with_valid_checksums_through_four_tags() {
        let tags = [Tag::dot1ad(1), Tag::dot1q(2), Tag::dot1q(3), Tag::dot1q(4)];
        let from: SocketAddrV4 = "10.77.0.1:9999".parse().unwrap();
        let to: SocketAddrV4 = "10.77.0.2:53".parse().unwrap();
        let f = udp4(B, A, &tags, from, to, b"hello").unwrap();
        assert_eq!(
            &f[12..30],
            &[0x88, 0xa8, 0, 1, 0x81, 0x00, 0, 2, 0x81, 0x00, 0, 3, 0x81, 0x00, 0, 4, 0x08, 0x00]
        );
        // etherparse reads at most three tags: check the IP part on its own.
        let h = PacketHeaders::from_ip_slice(&f[30..]).unwrap();
        let Some(NetHeaders::Ipv4(ip, _)) = h.net else {
            panic!("IPv4 expected")
        };
        assert_eq!(ip.header_checksum, ip.calc_header_checksum());
        assert_eq!(ip.source, [10, 77, 0, 1]);
        let Some(TransportHeader::Udp(udp)) = h.transport else {
            panic!("UDP expected")
        };
        assert_eq!((udp.source_port, udp.destination_port), (9999, 53));
        assert_eq!(udp.checksum, udp.calc_checksum_ipv4(&ip, b"hello").unwrap());
        assert_eq!(h.payload.slice(), b"hello");
    }

    #[test]
    fn tagged_frames_parse_back_with_their_vlan_ids() {
        let from: SocketAddrV4 = "10.77.0.1:9999".parse().unwrap();
        let f = udp4(B, A, &[Tag::dot1ad(200), Tag::dot1q(10)], from, from, b"").unwrap();
        let h = PacketHeaders::from_ethernet_slice(&f).unwrap();
        let vids: Vec<u16> = h
            .link_exts
            .iter()
            .filter_map(|e| match e {
                LinkExtHeader::Vlan(v) => Some(v.vlan_id.value()),
                _ => None,
            })
            .collect();
        assert_eq!(vids, [200, 10]);
        assert!(matches!(h.transport, Some(TransportHeader::Udp(_))));
    }

    #[test]
    fn tcp_and_icmp_frames_parse_back_with_valid_checksums() {
        let from: SocketAddrV4 = "10.77.0.1:40000".parse().unwrap();
        let to: SocketAddrV4 = "10.77.0.2:443".parse().unwrap();
        let f = tcp4(B, A, &[Tag::dot1q(10)], from, to, 77, b"data").unwrap();
        let h = PacketHeaders::from_ethernet_slice(&f).unwrap();
        let Some(NetHeaders::Ipv4(ip, _)) = h.net else {
            panic!("IPv4 expected")
        };
        let Some(TransportHeader::Tcp(tcp)) = h.transport else {
            panic!("TCP expected")
        };
        assert_eq!(
            (tcp.source_port, tcp.destination_port, tcp.sequence_number),
            (40000, 443, 77)
        );
        assert!(tcp.ack);
        assert_eq!(tcp.checksum, tcp.calc_checksum_ipv4(&ip, b"data").unwrap());
        let ips = (*from.ip(), *to.ip());
        let f = icmp4_echo(B, A, &[], ips, (5, 6), b"ping").unwrap();
        let h = PacketHeaders::from_ethernet_slice(&f).unwrap();
        let Some(TransportHeader::Icmpv4(icmp)) = h.transport else {
            panic!("ICMP expected")
        };
        assert_eq!(icmp.checksum, icmp.icmp_type.calc_checksum(b"ping"));
        assert_eq!(h.payload.slice(), b"ping");
    }
}
