//! OUI vendor lookup over the table that `build/oui.rs` generates (see there for the layout).

use super::Mac;

static NAMES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/oui_names.bin"));
static ENTRIES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/oui_entries.bin"));

const RECORD: usize = 16;
/// Registry assignment sizes, longest prefix first so that a 36-bit MA-S block wins over the
/// 24-bit block of the registration authority that contains it.
const PREFIX_BITS: [u64; 3] = [36, 28, 24];

/// The `i`-th record's field at byte `at` of its 16 bytes.
fn field<const N: usize>(i: usize, at: usize) -> [u8; N] {
    let start = i * RECORD + at;
    ENTRIES[start..start + N].try_into().expect("N bytes")
}

/// The key of record `i`: all a probe of the binary search needs.
fn key(i: usize) -> u64 {
    u64::from_le_bytes(field(i, 0))
}

/// The vendor name of record `i` (read only for the record found: the search would otherwise
/// check the UTF-8 of every name it passes).
fn name(i: usize) -> &'static str {
    let offset = u32::from_le_bytes(field(i, 8)) as usize;
    let len = u32::from_le_bytes(field(i, 12)) as usize;
    NAMES
        .get(offset..offset + len)
        .and_then(|b| std::str::from_utf8(b).ok())
        .unwrap_or("")
}

/// Number of registry assignments in the table.
pub(super) fn table_len() -> usize {
    ENTRIES.len() / RECORD
}

/// The organisation the IEEE registered the MAC's prefix to, if any ([`Mac::vendor`]).
pub(super) fn vendor(mac: Mac) -> Option<&'static str> {
    let value = mac.to_u64();
    let n = table_len();
    for bits in PREFIX_BITS {
        let wanted = bits << 48 | (value >> (48 - bits) << (48 - bits));
        let (mut lo, mut hi) = (0usize, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match key(mid).cmp(&wanted) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(name(mid)).filter(|n| !n.is_empty()),
            }
        }
    }
    None
}
