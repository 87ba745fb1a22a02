//! Ethertypes: the constants the engine and the demo test for, and the common names
//! `if.etype.show` prints.

/// IPv4.
pub const IPV4: u16 = 0x0800;
/// ARP.
pub const ARP: u16 = 0x0806;
/// IPv6.
pub const IPV6: u16 = 0x86dd;
/// An 802.1Q VLAN tag (customer tag).
pub const VLAN: u16 = 0x8100;
/// An 802.1ad tag (provider tag, QinQ).
pub const QINQ: u16 = 0x88a8;
/// The smallest Ethertype: values below it in the type position are 802.3 lengths.
pub const MIN: u16 = 0x0600;
/// The one value every 802.3 length is counted and shown as (see [`fold_length`]).
pub const LENGTH_8023: u16 = 0;

/// True for the Ethertypes of the VLAN tags the engine follows (802.1Q and 802.1ad).
#[inline]
pub const fn is_vlan_tag(t: u16) -> bool {
    t == VLAN || t == QINQ
}

/// `t`, or [`LENGTH_8023`] when `t` is an 802.3 length: the statistics keep one row for all
/// lengths instead of one per frame size.
#[inline]
pub const fn fold_length(t: u16) -> u16 {
    if t < MIN {
        LENGTH_8023
    } else {
        t
    }
}

/// A common name for an Ethertype (and "802.3 length (LLC)" for [`LENGTH_8023`]).
pub fn name(t: u16) -> Option<&'static str> {
    Some(match t {
        LENGTH_8023 => "802.3 length (LLC)",
        IPV4 => "IPv4",
        ARP => "ARP",
        0x0842 => "Wake-on-LAN",
        0x22f0 => "AVTP",
        0x22f3 => "TRILL",
        0x6558 => "Transparent Ethernet Bridging",
        0x8035 => "RARP",
        0x809b => "AppleTalk",
        VLAN => "802.1Q VLAN",
        0x8137 => "IPX",
        IPV6 => "IPv6",
        0x8808 => "Ethernet flow control",
        0x8809 => "Slow protocols (LACP)",
        0x8847 => "MPLS unicast",
        0x8848 => "MPLS multicast",
        0x8863 => "PPPoE discovery",
        0x8864 => "PPPoE session",
        0x887b => "HomePlug",
        0x888e => "802.1X EAPOL",
        0x8892 => "PROFINET",
        0x88a4 => "EtherCAT",
        QINQ => "802.1ad QinQ",
        0x88b5 => "Local experimental 1",
        0x88b6 => "Local experimental 2",
        0x88b8 => "GOOSE",
        0x88ba => "Sampled values",
        0x88cc => "LLDP",
        0x88e5 => "MACsec",
        0x88e7 => "802.1ah PBB",
        0x88f7 => "PTP",
        0x88fb => "PRP",
        0x8902 => "CFM / Y.1731",
        0x8906 => "FCoE",
        0x8914 => "FCoE initialization",
        0x8915 => "RoCE",
        0x892f => "HSR",
        0x9000 => "Ethernet loopback",
        0x9100 => "VLAN (legacy QinQ)",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_fold_into_one_value_and_types_stay() {
        assert_eq!(fold_length(0x0026), LENGTH_8023);
        assert_eq!(fold_length(MIN - 1), LENGTH_8023);
        assert_eq!(fold_length(MIN), MIN);
        assert_eq!(fold_length(IPV6), IPV6);
    }

    #[test]
    fn only_the_two_tag_types_are_tags() {
        assert!(is_vlan_tag(VLAN) && is_vlan_tag(QINQ));
        assert!(!is_vlan_tag(0x9100) && !is_vlan_tag(IPV4));
        assert_eq!(name(QINQ), Some("802.1ad QinQ"));
        assert_eq!(name(0x1234), None);
    }
}
