//! MAC addresses: the [`Mac`] type, its one text form (parse and print), the vendor (OUI)
//! a MAC belongs to, and ranges of MACs ([`MacRange`], RPCL's `macrange_t`).

use std::fmt;
use std::str::FromStr;

/// A 48-bit Ethernet MAC address, in wire order.
#[repr(transparent)]
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

/// What [`Mac::describe`] says for a MAC whose prefix is not in the registry.
pub const UNKNOWN_VENDOR: &str = "unknown vendor";
/// What [`Mac::describe`] says for a MAC with the locally-administered bit (0x02 of the first
/// octet).
pub const LAA: &str = "Locally Administered Address (LAA)";

/// Text that is not a MAC address; the message names the text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("\"{text}\" is not a MAC address")]
pub struct MacParseError {
    /// The text as given.
    pub text: String,
}

impl Mac {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: Mac = Mac([0xff; 6]);

    /// The MAC as a 48-bit big-endian integer: one compare instead of a six-byte `memcmp`
    /// for the tables and sets of the fast path.
    #[inline]
    pub const fn to_u64(self) -> u64 {
        let m = self.0;
        u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]])
    }

    /// The inverse of [`Mac::to_u64`] (the upper 16 bits are ignored).
    #[inline]
    pub const fn from_u64(k: u64) -> Mac {
        let b = k.to_be_bytes();
        Mac([b[2], b[3], b[4], b[5], b[6], b[7]])
    }

    /// True when the locally-administered bit is set: such MACs are not in the registry.
    pub const fn is_locally_administered(self) -> bool {
        self.0[0] & 0x02 != 0
    }

    /// The organisation the IEEE registered the MAC's prefix to, if any.
    pub fn vendor(self) -> Option<&'static str> {
        super::oui::vendor(self)
    }

    /// The vendor of a MAC for display: the IEEE registry's organisation name, [`LAA`], or
    /// [`UNKNOWN_VENDOR`]. The well-known group addresses a TAP machash may list as
    /// destinations are named instead, since the registry has no entry for them (and 33:33:…
    /// and ff:ff:… also carry the local bit).
    pub fn describe(self) -> &'static str {
        match self.0 {
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff] => return "Broadcast",
            [0x33, 0x33, ..] => return "IPv6 multicast",
            [0x01, 0x00, 0x5e, b, ..] if b & 0x80 == 0 => return "IPv4 multicast",
            [0x01, 0x80, 0xc2, 0x00, 0x00, b] if b <= 0x0f => {
                return "IEEE 802.1 link-local (STP, LACP, LLDP, 802.1X)"
            }
            _ => {}
        }
        if self.is_locally_administered() {
            return LAA;
        }
        self.vendor().unwrap_or(UNKNOWN_VENDOR)
    }
}

impl From<[u8; 6]> for Mac {
    fn from(octets: [u8; 6]) -> Mac {
        Mac(octets)
    }
}

impl From<Mac> for [u8; 6] {
    fn from(m: Mac) -> [u8; 6] {
        m.0
    }
}

impl TryFrom<&[u8]> for Mac {
    type Error = std::array::TryFromSliceError;

    /// The MAC in a slice of exactly six bytes.
    #[inline]
    fn try_from(b: &[u8]) -> Result<Mac, Self::Error> {
        <[u8; 6]>::try_from(b).map(Mac)
    }
}

fn hex_value(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

impl FromStr for Mac {
    type Err = MacParseError;

    /// `aa:bb:cc:dd:ee:ff` in any case; `aa-bb-cc-dd-ee-ff` too (as Windows prints MACs), with
    /// the same separator throughout.
    fn from_str(s: &str) -> Result<Mac, MacParseError> {
        let bad = || MacParseError {
            text: s.to_string(),
        };
        let b = s.as_bytes();
        let sep = *b.get(2).ok_or_else(bad)?;
        if b.len() != 17 || (sep != b':' && sep != b'-') {
            return Err(bad());
        }
        let mut mac = [0u8; 6];
        for (i, byte) in mac.iter_mut().enumerate() {
            let at = 3 * i;
            if i > 0 && b[at - 1] != sep {
                return Err(bad());
            }
            let hi = hex_value(b[at]).ok_or_else(bad)?;
            let lo = hex_value(b[at + 1]).ok_or_else(bad)?;
            *byte = hi << 4 | lo;
        }
        Ok(Mac(mac))
    }
}

impl fmt::Display for Mac {
    /// Lower-case `aa:bb:cc:dd:ee:ff`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mac({self})")
    }
}

/// The MACs from `from` to `to`, both included (`from <= to`): a machash entry, and what
/// RPCL's `macrange_t` holds. A range of one MAC is that MAC.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacRange {
    from: Mac,
    to: Mac,
}

/// A range whose first MAC is above its last.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{from}-{to} is not a range: FROM is above TO")]
pub struct MacRangeError {
    /// The first MAC given.
    pub from: Mac,
    /// The last MAC given.
    pub to: Mac,
}

impl MacRange {
    /// The MACs from `from` to `to`, both included.
    pub fn new(from: Mac, to: Mac) -> Result<MacRange, MacRangeError> {
        if from > to {
            return Err(MacRangeError { from, to });
        }
        Ok(MacRange { from, to })
    }

    /// The first MAC of the range.
    pub const fn first(self) -> Mac {
        self.from
    }

    /// The last MAC of the range.
    pub const fn last(self) -> Mac {
        self.to
    }

    /// True when the range holds exactly one MAC.
    pub fn is_single(self) -> bool {
        self.from == self.to
    }

    /// True when `m` is in the range.
    #[inline]
    pub fn contains(self, m: Mac) -> bool {
        self.from <= m && m <= self.to
    }

    /// The range as the 12 bytes of RPCL's `macrange_t`: FROM, then TO.
    pub fn to_bytes(self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[..6].copy_from_slice(&self.from.0);
        b[6..].copy_from_slice(&self.to.0);
        b
    }

    /// The range in the 12 bytes of a `macrange_t`; None for another length or FROM above TO.
    pub fn from_bytes(b: &[u8]) -> Option<MacRange> {
        let (from, to) = (b.get(..6)?, b.get(6..)?);
        MacRange::new(Mac::try_from(from).ok()?, Mac::try_from(to).ok()?).ok()
    }
}

/// Text that is not a MAC range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MacRangeParseError {
    /// Not two MACs joined by `-`.
    #[error("\"{0}\" is not a MAC range FROM-TO")]
    Syntax(String),
    /// Two MACs in the wrong order.
    #[error(transparent)]
    Reversed(#[from] MacRangeError),
}

impl FromStr for MacRange {
    type Err = MacRangeParseError;

    /// `FROM-TO`, each end as [`Mac`] reads it (so `aa-bb-…-ff-aa-bb-…-ff` works too).
    fn from_str(s: &str) -> Result<MacRange, MacRangeParseError> {
        let syntax = || MacRangeParseError::Syntax(s.to_string());
        let (from, to) = match (s.get(..17), s.as_bytes().get(17), s.get(18..)) {
            (Some(from), Some(b'-'), Some(to)) => (from, to),
            _ => return Err(syntax()),
        };
        let (from, to) = (
            from.parse().map_err(|_| syntax())?,
            to.parse().map_err(|_| syntax())?,
        );
        Ok(MacRange::new(from, to)?)
    }
}

impl From<Mac> for MacRange {
    /// The range holding only `m`.
    fn from(m: Mac) -> MacRange {
        MacRange { from: m, to: m }
    }
}

impl fmt::Display for MacRange {
    /// `FROM-TO` as `str->macrange_t` reads it; a range of one MAC prints as that MAC.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_single() {
            write!(f, "{}", self.from)
        } else {
            write!(f, "{}-{}", self.from, self.to)
        }
    }
}

impl fmt::Debug for MacRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacRange({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Mac, MacParseError> {
        s.parse()
    }

    #[test]
    fn parse_accepts_both_cases_and_dashes() {
        assert_eq!(
            parse("AA:bb:0C:dd:EE:ff"),
            Ok(Mac([0xaa, 0xbb, 0x0c, 0xdd, 0xee, 0xff]))
        );
        assert_eq!(
            parse("00-1b-21-3A-4f-01"),
            Ok(Mac([0x00, 0x1b, 0x21, 0x3a, 0x4f, 0x01]))
        );
    }

    #[test]
    fn parse_rejects_malformed_text_and_names_it() {
        for bad in [
            "",
            "zz:00",
            "aa:bb:cc:dd:ee",
            "aa:bb:cc:dd:ee:ff:00",
            "aa:bb:cc:dd:ee:f",
            "aa:bb:cc:dd:ee:fff",
            "aa-bb:cc:dd:ee:ff",
            "aa:bb:cc:dd:ee-ff",
            "aa.bb.cc.dd.ee.ff",
            "gg:bb:cc:dd:ee:ff",
            "+a:bb:cc:dd:ee:ff",
            "aa:bb:cc:dd:ee:ff:",
            "aabbccddeeff",
            "aa:bb:cc:dd:ee:f\u{e9}",
            "\u{e9}:bb:cc:dd:ee:ff",
            "aa:bb:cc:dd:ee:\u{ff11}",
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.to_string(), format!("\"{bad}\" is not a MAC address"));
            assert_eq!(e.text, bad);
        }
    }

    #[test]
    fn display_is_lower_case_colons_and_round_trips() {
        let m = Mac([0x00, 0x1b, 0x21, 0x3a, 0x4f, 0xab]);
        assert_eq!(m.to_string(), "00:1b:21:3a:4f:ab");
        assert_eq!(format!("{m:?}"), "Mac(00:1b:21:3a:4f:ab)");
        assert_eq!(parse(&m.to_string()), Ok(m));
    }

    #[test]
    fn integer_form_keeps_the_order_of_the_octets() {
        let (a, b) = (Mac([0, 0, 0, 0, 0, 0xff]), Mac([0, 0, 0, 0, 1, 0]));
        assert!(a < b && a.to_u64() < b.to_u64());
        assert_eq!(Mac::BROADCAST.to_u64(), 0xffff_ffff_ffff);
        for m in [a, b, Mac::BROADCAST, Mac([1, 2, 3, 4, 5, 6])] {
            assert_eq!(Mac::from_u64(m.to_u64()), m);
        }
        assert_eq!(
            Mac::try_from(&[1u8, 2, 3, 4, 5, 6][..]).ok(),
            Some(Mac([1, 2, 3, 4, 5, 6]))
        );
        assert!(Mac::try_from(&[1u8, 2, 3][..]).is_err());
    }

    #[test]
    fn describe_knows_vendors_laa_and_unknowns() {
        let d = |m: [u8; 6]| Mac(m).describe();
        assert_eq!(d([0x00, 0x00, 0x0c, 1, 2, 3]), "Cisco Systems, Inc");
        assert_eq!(d([0x00, 0x50, 0x56, 0xaa, 0xbb, 0xcc]), "VMware, Inc");
        assert_eq!(d([0x02, 0x42, 0xac, 0x11, 0x00, 0x02]), LAA);
        assert_eq!(d([0xde, 0xad, 0xbe, 0xef, 0x00, 0x01]), LAA);
        assert_eq!(d([0xff; 6]), "Broadcast");
        assert_eq!(d([0x33, 0x33, 0, 0, 0, 1]), "IPv6 multicast");
        assert_eq!(d([0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb]), "IPv4 multicast");
        assert_eq!(
            d([0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e]),
            "IEEE 802.1 link-local (STP, LACP, LLDP, 802.1X)"
        );
        // F4:FF:FF is not assigned in the bundled registry.
        assert_eq!(Mac([0xf4, 0xff, 0xff, 0, 0, 1]).vendor(), None);
        assert_eq!(d([0xf4, 0xff, 0xff, 0, 0, 1]), UNKNOWN_VENDOR);
        assert!(Mac([0x02, 0, 0, 0, 0, 0]).is_locally_administered());
        assert!(!Mac([0x00, 0x1b, 0x21, 0, 0, 0]).is_locally_administered());
    }

    #[test]
    fn longer_assignments_win_over_their_containing_block() {
        let v = |m: [u8; 6]| Mac(m).vendor();
        // 70:B3:D5 is the registration authority's block; 70:B3:D5:44:D is one MA-S inside it.
        assert_eq!(
            v([0x70, 0xb3, 0xd5, 0x44, 0xd1, 0x23]),
            Some("Vessel Tech Ltd")
        );
        assert_eq!(
            v([0x70, 0xb3, 0xd5, 0x31, 0x80, 0x00]),
            Some("Exemplar Medical, Llc")
        );
        // A 28-bit MA-M block: 9C:69:B4:3.
        assert_eq!(
            v([0x9c, 0x69, 0xb4, 0x3f, 0xff, 0xff]),
            Some("Appareo Systems, Llc")
        );
        assert_ne!(
            v([0x9c, 0x69, 0xb4, 0x40, 0, 0]),
            Some("Appareo Systems, Llc")
        );
        assert!(super::super::oui::table_len() > 50_000);
    }

    #[test]
    fn ranges_hold_both_ends_and_refuse_a_reversed_order() {
        let (a, b) = (
            Mac([0, 0, 0x0c, 0, 0, 0]),
            Mac([0, 0, 0x0c, 0xff, 0xff, 0xff]),
        );
        let r = MacRange::new(a, b).unwrap();
        assert!(r.contains(a) && r.contains(b) && r.contains(Mac([0, 0, 0x0c, 1, 2, 3])));
        assert!(!r.contains(Mac([0, 0, 0x0b, 0xff, 0xff, 0xff])));
        assert!(!r.contains(Mac([0, 0, 0x0d, 0, 0, 0])));
        assert_eq!(r.to_string(), "00:00:0c:00:00:00-00:00:0c:ff:ff:ff");
        assert_eq!(MacRange::from(a).to_string(), "00:00:0c:00:00:00");
        assert!(MacRange::from(a).is_single() && !r.is_single());
        assert_eq!(MacRange::from_bytes(&r.to_bytes()), Some(r));
        assert_eq!(MacRange::from_bytes(&r.to_bytes()[..11]), None);
        let e = MacRange::new(b, a).unwrap_err();
        assert_eq!(
            e.to_string(),
            "00:00:0c:ff:ff:ff-00:00:0c:00:00:00 is not a range: FROM is above TO"
        );
        assert_eq!("00:00:0c:00:00:00-00:00:0c:ff:ff:ff".parse(), Ok(r));
        assert_eq!("00-00-0C-00-00-00-00-00-0c-FF-FF-FF".parse(), Ok(r));
        for bad in [
            "",
            "00:00:0c:00:00:00",
            "00:00:0c:00:00:00-",
            "00:00:0c:00:00:00 00:00:0c:ff:ff:ff",
            "00:00:0c:00:00:00-00:00:0c:ff:ff:fg",
            "\u{e9}0:00:0c:00:00:00-00:00:0c:ff:ff:ff",
        ] {
            assert_eq!(
                bad.parse::<MacRange>().unwrap_err().to_string(),
                format!("\"{bad}\" is not a MAC range FROM-TO")
            );
        }
        assert_eq!(
            "00:00:0c:ff:ff:ff-00:00:0c:00:00:00"
                .parse::<MacRange>()
                .unwrap_err()
                .to_string(),
            "00:00:0c:ff:ff:ff-00:00:0c:00:00:00 is not a range: FROM is above TO"
        );
        let mut reversed = r.to_bytes();
        reversed.rotate_left(6);
        assert_eq!(MacRange::from_bytes(&reversed), None);
    }
}
