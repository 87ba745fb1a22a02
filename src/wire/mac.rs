//! MAC addresses: parsing, formatting and the vendor (OUI) a MAC belongs to.

pub use super::oui::vendor;

pub type Mac = [u8; 6];

/// What `describe` says for a MAC whose prefix is not in the registry.
pub const UNKNOWN_VENDOR: &str = "unknown vendor";
/// What `describe` says for a MAC with the locally-administered bit (0x02 of the first octet).
pub const LAA: &str = "Locally Administered Address (LAA)";

/// Parses `aa:bb:cc:dd:ee:ff` (any case; `-` also accepted as the separator, as Windows
/// prints MACs). The error names the text.
pub fn parse_mac(s: &str) -> Result<Mac, String> {
    let bad = || format!("\"{s}\" is not a MAC address");
    let sep = if s.contains('-') { '-' } else { ':' };
    let mut mac = [0u8; 6];
    let mut parts = s.split(sep);
    for byte in mac.iter_mut() {
        let part = parts.next().ok_or_else(bad)?;
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(mac)
}

/// Lower-case `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(m: &Mac) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// True when the locally-administered bit is set: such MACs are not in the registry.
pub fn is_locally_administered(m: &Mac) -> bool {
    m[0] & 0x02 != 0
}

/// The vendor of a MAC for display: the IEEE registry's organisation name, [`LAA`], or
/// [`UNKNOWN_VENDOR`]. The well-known group addresses a TAP machash may list as destinations are
/// named instead, since the registry has no entry for them (and 33:33:… and ff:ff:… also carry
/// the local bit).
pub fn describe(m: &Mac) -> String {
    match m {
        [0xff, 0xff, 0xff, 0xff, 0xff, 0xff] => return "Broadcast".to_string(),
        [0x33, 0x33, ..] => return "IPv6 multicast".to_string(),
        [0x01, 0x00, 0x5e, b, ..] if b & 0x80 == 0 => return "IPv4 multicast".to_string(),
        [0x01, 0x80, 0xc2, 0x00, 0x00, b] if *b <= 0x0f => {
            return "IEEE 802.1 link-local (STP, LACP, LLDP, 802.1X)".to_string()
        }
        _ => {}
    }
    if is_locally_administered(m) {
        return LAA.to_string();
    }
    vendor(m).unwrap_or(UNKNOWN_VENDOR).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_both_cases_and_dashes() {
        assert_eq!(
            parse_mac("AA:bb:0C:dd:EE:ff"),
            Ok([0xaa, 0xbb, 0x0c, 0xdd, 0xee, 0xff])
        );
        assert_eq!(
            parse_mac("00-1b-21-3A-4f-01"),
            Ok([0x00, 0x1b, 0x21, 0x3a, 0x4f, 0x01])
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
            "gg:bb:cc:dd:ee:ff",
            "+a:bb:cc:dd:ee:ff",
            "aa:bb:cc:dd:ee:ff:",
            "aabbccddeeff",
            "é:bb:cc:dd:ee:ff",
        ] {
            assert_eq!(
                parse_mac(bad),
                Err(format!("\"{bad}\" is not a MAC address")),
                "{bad}"
            );
        }
    }

    #[test]
    fn format_round_trips() {
        let m = [0x00, 0x1b, 0x21, 0x3a, 0x4f, 0x01];
        assert_eq!(format_mac(&m), "00:1b:21:3a:4f:01");
        assert_eq!(parse_mac(&format_mac(&m)), Ok(m));
    }

    #[test]
    fn describe_knows_vendors_laa_and_unknowns() {
        assert_eq!(describe(&[0x00, 0x00, 0x0c, 1, 2, 3]), "Cisco Systems, Inc");
        assert_eq!(
            describe(&[0x00, 0x50, 0x56, 0xaa, 0xbb, 0xcc]),
            "VMware, Inc"
        );
        assert_eq!(describe(&[0x02, 0x42, 0xac, 0x11, 0x00, 0x02]), LAA);
        assert_eq!(describe(&[0xde, 0xad, 0xbe, 0xef, 0x00, 0x01]), LAA);
        assert_eq!(describe(&[0xff; 6]), "Broadcast");
        assert_eq!(describe(&[0x33, 0x33, 0, 0, 0, 1]), "IPv6 multicast");
        assert_eq!(
            describe(&[0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb]),
            "IPv4 multicast"
        );
        assert_eq!(
            describe(&[0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e]),
            "IEEE 802.1 link-local (STP, LACP, LLDP, 802.1X)"
        );
        // F4:FF:FF is not assigned in the bundled registry.
        assert_eq!(vendor(&[0xf4, 0xff, 0xff, 0, 0, 1]), None);
        assert_eq!(describe(&[0xf4, 0xff, 0xff, 0, 0, 1]), UNKNOWN_VENDOR);
    }

    #[test]
    fn longer_assignments_win_over_their_containing_block() {
        // 70:B3:D5 is the registration authority's block; 70:B3:D5:44:D is one MA-S inside it.
        assert_eq!(
            vendor(&[0x70, 0xb3, 0xd5, 0x44, 0xd1, 0x23]),
            Some("Vessel Tech Ltd")
        );
        assert_eq!(
            vendor(&[0x70, 0xb3, 0xd5, 0x31, 0x80, 0x00]),
            Some("Exemplar Medical, Llc")
        );
        // A 28-bit MA-M block: 9C:69:B4:3.
        assert_eq!(
            vendor(&[0x9c, 0x69, 0xb4, 0x3f, 0xff, 0xff]),
            Some("Appareo Systems, Llc")
        );
        assert_ne!(
            vendor(&[0x9c, 0x69, 0xb4, 0x40, 0, 0]),
            Some("Appareo Systems, Llc")
        );
        assert!(super::super::oui::table_len() > 50_000);
    }
}
