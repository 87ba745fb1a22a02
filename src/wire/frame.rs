//! Fields of an Ethernet frame read in place: the two MACs and the Ethertypes through VLAN
//! tags. Every accessor takes the frame as received, of any length, and reads only what is
//! there: a short frame yields `None` or fewer items, never a panic.

use super::ethertype;
use super::Mac;

/// Bytes of the Ethernet header: destination, source, Ethertype.
pub const HEADER_LEN: usize = 14;
/// VLAN tags followed into a frame (802.1Q and 802.1ad tags, in any nesting).
pub const MAX_VLAN_TAGS: usize = 4;
/// Bytes of one VLAN tag (TPID and TCI).
const TAG_LEN: usize = 4;
/// Offset of the outer Ethertype.
const TYPE_AT: usize = 12;

/// The destination MAC, if the frame is long enough to have one.
#[inline]
pub fn dst_mac(frame: &[u8]) -> Option<Mac> {
    frame.get(0..6).and_then(|b| Mac::try_from(b).ok())
}

/// The source MAC, if the frame is long enough to have one.
#[inline]
pub fn src_mac(frame: &[u8]) -> Option<Mac> {
    frame.get(6..12).and_then(|b| Mac::try_from(b).ok())
}

/// One Ethertype of a frame, as [`vlan_walk`] finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EtherLayer {
    /// 0 for the Ethernet header's own type, n for the type after n VLAN tags.
    pub level: u8,
    /// The value in the type position (a VLAN TPID, an Ethertype or an 802.3 length).
    pub ethertype: u16,
    /// Offset of what this type announces: the tag's TCI for a VLAN tag, the payload (the L3
    /// header) otherwise.
    pub offset: usize,
}

/// The Ethertypes of a frame, outermost first: through up to [`MAX_VLAN_TAGS`] tags (802.1Q
/// 0x8100 and 802.1ad 0x88a8, in any nesting), ending with the first type that is not a tag,
/// or with the type after the last tag followed, or where the frame ends.
#[inline]
pub fn vlan_walk(frame: &[u8]) -> VlanWalk<'_> {
    VlanWalk {
        frame,
        at: TYPE_AT,
        level: 0,
    }
}

/// The iterator of [`vlan_walk`].
#[derive(Clone, Debug)]
pub struct VlanWalk<'a> {
    frame: &'a [u8],
    /// Offset of the next type field.
    at: usize,
    /// Level of the next type; past [`MAX_VLAN_TAGS`] once the walk is over.
    level: u8,
}

/// The `level` a finished walk holds.
const DONE: u8 = u8::MAX;

impl Iterator for VlanWalk<'_> {
    type Item = EtherLayer;

    #[inline]
    fn next(&mut self) -> Option<EtherLayer> {
        if usize::from(self.level) > MAX_VLAN_TAGS {
            return None;
        }
        let Some(&[hi, lo]) = self.frame.get(self.at..self.at + 2) else {
            self.level = DONE;
            return None;
        };
        let ethertype = u16::from_be_bytes([hi, lo]);
        let layer = EtherLayer {
            level: self.level,
            ethertype,
            offset: self.at + 2,
        };
        self.level = if ethertype::is_vlan_tag(ethertype) {
            self.level + 1
        } else {
            DONE
        };
        self.at += TAG_LEN;
        Some(layer)
    }
}

/// A frame for the crate's unit tests: `dst`, `src`, one VLAN tag per TPID in `tpids` (VIDs 10,
/// 11, …), `ethertype`, then payload bytes 0x5a up to `len` bytes; cut to `len` when that is
/// shorter (runts).
#[cfg(test)]
pub(crate) fn test_frame(dst: Mac, src: Mac, tpids: &[u16], ethertype: u16, len: usize) -> Vec<u8> {
    let mut f = dst.0.to_vec();
    f.extend_from_slice(&src.0);
    for (vid, tpid) in (10u16..).zip(tpids) {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&vid.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.resize(len, 0x5a);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tags, the inner type and 4 payload bytes.
    fn frame(tags: &[u16], inner: u16) -> Vec<u8> {
        let src = Mac([0x00, 0x1b, 0x21, 1, 2, 3]);
        test_frame(
            Mac::BROADCAST,
            src,
            tags,
            inner,
            HEADER_LEN + TAG_LEN * tags.len() + 4,
        )
    }

    fn walk(f: &[u8]) -> Vec<(u8, u16, usize)> {
        vlan_walk(f)
            .map(|l| (l.level, l.ethertype, l.offset))
            .collect()
    }

    #[test]
    fn macs_are_read_where_they_are() {
        let f = frame(&[], ethertype::IPV4);
        assert_eq!(dst_mac(&f), Some(Mac::BROADCAST));
        assert_eq!(src_mac(&f), Some(Mac([0x00, 0x1b, 0x21, 1, 2, 3])));
        assert_eq!(dst_mac(&f[..5]), None);
        assert_eq!(src_mac(&f[..11]), None);
        assert!(src_mac(&f[..12]).is_some());
    }

    #[test]
    fn an_untagged_frame_has_one_level() {
        assert_eq!(walk(&frame(&[], 0x86dd)), vec![(0, 0x86dd, 14)]);
        assert_eq!(
            walk(&frame(&[], 0x0026)),
            vec![(0, 0x0026, 14)],
            "a length too"
        );
    }

    #[test]
    fn tags_are_followed_in_any_nesting() {
        assert_eq!(
            walk(&frame(&[0x88a8, 0x8100], 0x0800)),
            vec![(0, 0x88a8, 14), (1, 0x8100, 18), (2, 0x0800, 22)]
        );
        assert_eq!(
            walk(&frame(&[0x8100, 0x88a8, 0x8100], 0x0806)),
            vec![
                (0, 0x8100, 14),
                (1, 0x88a8, 18),
                (2, 0x8100, 22),
                (3, 0x0806, 26)
            ]
        );
    }

    #[test]
    fn at_most_four_tags_are_followed() {
        let w = walk(&frame(&[0x8100; 6], 0x0800));
        assert_eq!(w.len(), MAX_VLAN_TAGS + 1);
        assert!(w.iter().all(|&(_, t, _)| t == 0x8100));
        assert_eq!(w.last().map(|l| l.0), Some(MAX_VLAN_TAGS as u8));
        let long = frame(&[0x8100; 6], 0x0800);
        let mut it = vlan_walk(&long);
        it.by_ref().for_each(drop);
        assert_eq!(it.next(), None, "a finished walk stays finished");
    }

    #[test]
    fn a_truncated_frame_yields_what_it_has() {
        let f = frame(&[0x8100], 0x0800);
        for len in 0..f.len() {
            let w = walk(&f[..len]);
            let want = match len {
                0..=13 => 0,
                14..=17 => 1,
                _ => 2,
            };
            assert_eq!(w.len(), want, "{len} bytes: {w:?}");
        }
    }
}
