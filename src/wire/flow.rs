//! The symmetric flow hash that spreads frames over the lanes of a queue so that each
//! consumer gets whole flows: both directions of a connection hash alike, as do both tap
//! points (the frame is the same when received and when sent).
//!
//! What is hashed, through up to [`MAX_VLAN_TAGS`](super::MAX_VLAN_TAGS) VLAN tags:
//! * IPv4 and IPv6: the unordered pair of addresses and the protocol; for TCP, UDP, SCTP and
//!   UDP-Lite the ports too, kept with their addresses (the pair of endpoints is unordered).
//!   IPv4 fragments hash without ports, so that every fragment of a datagram lands with its
//!   first; IPv6 extension headers are not followed (their flows hash by addresses and the
//!   first next-header value, still symmetric).
//! * anything else: the unordered pair of MACs and the innermost Ethertype.

use super::ethertype;
use super::frame::vlan_walk;

const IPV4: u16 = 0x0800;
const IPV6: u16 = 0x86dd;
const TCP: u8 = 6;
const UDP: u8 = 17;
const SCTP: u8 = 132;
const UDPLITE: u8 = 136;

/// A 64-bit mix of one word into the running hash (a multiply and the high half folded in):
/// cheap, and it spreads consecutive addresses and ports over every lane.
#[inline(always)]
fn mix(h: u64, x: u64) -> u64 {
    let m = u128::from(h ^ x) * 0x9e37_79b9_7f4a_7c15_u128;
    (m as u64) ^ ((m >> 64) as u64)
}

/// Hashes an unordered pair of endpoints (address bytes, port): the smaller one first.
#[inline(always)]
fn endpoints(h: u64, a: (&[u8], u16), b: (&[u8], u16)) -> u64 {
    let (first, second) = if (a.0, a.1) <= (b.0, b.1) {
        (a, b)
    } else {
        (b, a)
    };
    let mut h = h;
    for (addr, port) in [first, second] {
        for chunk in addr.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            h = mix(h, u64::from_le_bytes(word));
        }
        h = mix(h, u64::from(port));
    }
    h
}

/// The ports of a transport header at `at`, when the protocol has them and they are there.
#[inline(always)]
fn ports(frame: &[u8], proto: u8, at: usize) -> (u16, u16) {
    match (proto, frame.get(at..at + 4)) {
        (TCP | UDP | SCTP | UDPLITE, Some(p)) => (
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
        ),
        _ => (0, 0),
    }
}

/// The symmetric flow hash of a frame (see the module documentation). Any frame, of any
/// length, has one; frames of one flow always have the same.
#[inline]
pub fn flow_hash(frame: &[u8]) -> u64 {
    let inner = vlan_walk(frame).last();
    let (ethertype, l3) = inner.map_or((0, frame.len()), |l| (l.ethertype, l.offset));
    match ethertype {
        IPV4 => {
            if let Some(ip) = frame.get(l3..l3 + 20) {
                let ihl = usize::from(ip[0] & 0x0f) * 4;
                let proto = ip[9];
                let fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0;
                let (sp, dp) = if fragment || ihl < 20 {
                    (0, 0)
                } else {
                    ports(frame, proto, l3 + ihl)
                };
                let h = mix(0x4, u64::from(proto));
                return endpoints(h, (&ip[12..16], sp), (&ip[16..20], dp));
            }
        }
        IPV6 => {
            if let Some(ip) = frame.get(l3..l3 + 40) {
                let proto = ip[6];
                let (sp, dp) = ports(frame, proto, l3 + 40);
                let h = mix(0x6, u64::from(proto));
                return endpoints(h, (&ip[8..24], sp), (&ip[24..40], dp));
            }
        }
        _ => {}
    }
    let (dst, src) = match (frame.get(0..6), frame.get(6..12)) {
        (Some(d), Some(s)) => (d, s),
        _ => (frame, &[][..]),
    };
    let h = mix(0x2, u64::from(ethertype::fold_length(ethertype)));
    endpoints(h, (dst, 0), (src, 0))
}

/// The lane of `lanes` a frame goes to: its flow hash spread evenly over the lanes.
#[inline]
pub fn lane_of(frame: &[u8], lanes: u32) -> u32 {
    if lanes <= 1 {
        return 0;
    }
    lane_of_hash(flow_hash(frame), lanes)
}

/// The lane of `lanes` for the flow hash `hash` ([`flow_hash`]): for a caller that spreads one
/// frame over several laned queues and hashes it once.
#[inline]
pub fn lane_of_hash(hash: u64, lanes: u32) -> u32 {
    ((u128::from(hash) * u128::from(lanes.max(1))) >> 64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ethernet + VLAN tags + an IPv4 header (protocol, addresses) + the two ports.
    fn ipv4(tags: &[u16], proto: u8, src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        for &vid in tags {
            f.extend_from_slice(&[0x81, 0x00]);
            f.extend_from_slice(&vid.to_be_bytes());
        }
        f.extend_from_slice(&IPV4.to_be_bytes());
        f.extend_from_slice(&[0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, proto, 0, 0]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&sp.to_be_bytes());
        f.extend_from_slice(&dp.to_be_bytes());
        f.extend_from_slice(&[0; 16]);
        f
    }

    fn swap_macs(f: &[u8]) -> Vec<u8> {
        let mut g = f.to_vec();
        g[..6].copy_from_slice(&f[6..12]);
        g[6..12].copy_from_slice(&f[..6]);
        g
    }

    #[test]
    fn both_directions_of_a_flow_hash_alike() {
        let a = [10, 0, 0, 1];
        let b = [10, 0, 0, 2];
        for proto in [TCP, UDP, SCTP, 1] {
            for tags in [&[][..], &[10][..], &[100, 20][..]] {
                let there = ipv4(tags, proto, a, b, 40000, 443);
                let back = swap_macs(&ipv4(tags, proto, b, a, 443, 40000));
                assert_eq!(
                    flow_hash(&there),
                    flow_hash(&back),
                    "proto {proto} tags {tags:?}"
                );
            }
        }
    }

    #[test]
    fn different_flows_differ_and_spread_over_the_lanes() {
        let mut per_lane = [0u32; 4];
        let mut hashes = std::collections::HashSet::new();
        for port in 0..4000u16 {
            let f = ipv4(&[], TCP, [10, 0, 0, 1], [10, 0, 0, 2], 30000 + port, 80);
            hashes.insert(flow_hash(&f));
            per_lane[lane_of(&f, 4) as usize] += 1;
        }
        assert_eq!(hashes.len(), 4000, "no collision among 4000 flows");
        for n in per_lane {
            assert!((800..=1200).contains(&n), "{per_lane:?}");
        }
        // Ports matter for TCP, not for ICMP.
        let icmp = |p| ipv4(&[], 1, [10, 0, 0, 1], [10, 0, 0, 2], p, 0);
        assert_eq!(flow_hash(&icmp(1)), flow_hash(&icmp(2)));
    }

    #[test]
    fn fragments_stay_with_their_datagram_and_non_ip_hashes_by_macs() {
        let mut first = ipv4(&[], UDP, [10, 0, 0, 1], [10, 0, 0, 2], 5000, 53);
        let at = 14 + 6;
        first[at] = 0x20; // more fragments, offset 0
        let mut later = first.clone();
        later[at] = 0x00;
        later[at + 1] = 0x10; // offset 16, no ports in this fragment
        later[34..38].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(flow_hash(&first), flow_hash(&later));
        let arp = {
            let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x06];
            f.extend_from_slice(&[0; 28]);
            f
        };
        assert_eq!(flow_hash(&arp), flow_hash(&swap_macs(&arp)));
        let other = {
            let mut f = swap_macs(&arp);
            f[0] = 4;
            f
        };
        assert_ne!(flow_hash(&arp), flow_hash(&other));
    }

    #[test]
    fn ipv6_flows_are_symmetric() {
        let build = |src: u8, dst: u8, sp: u16, dp: u16| {
            let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd];
            f.extend_from_slice(&[0x60, 0, 0, 0, 0, 20, TCP, 64]);
            let mut a = [0u8; 16];
            a[0] = 0xfd;
            a[15] = src;
            f.extend_from_slice(&a);
            a[15] = dst;
            f.extend_from_slice(&a);
            f.extend_from_slice(&sp.to_be_bytes());
            f.extend_from_slice(&dp.to_be_bytes());
            f.extend_from_slice(&[0; 16]);
            f
        };
        assert_eq!(
            flow_hash(&build(1, 2, 1000, 22)),
            flow_hash(&swap_macs(&build(2, 1, 22, 1000)))
        );
        assert_ne!(
            flow_hash(&build(1, 2, 1000, 22)),
            flow_hash(&build(1, 2, 1001, 22))
        );
    }

    #[test]
    fn any_frame_has_a_hash_and_a_lane() {
        let f = ipv4(&[10, 20], TCP, [1, 2, 3, 4], [5, 6, 7, 8], 1, 2);
        for len in 0..f.len() {
            let _ = flow_hash(&f[..len]);
            assert!(lane_of(&f[..len], 7) < 7);
        }
        assert_eq!(lane_of(&f, 1), 0);
    }
}
