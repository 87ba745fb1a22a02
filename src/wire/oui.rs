//! OUI vendor lookup over the table that `build/oui.rs` generates (see there for the layout).

use super::Mac;

static NAMES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/oui_names.bin"));
static ENTRIES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/oui_entries.bin"));

const RECORD: usize = 16;
/// Registry assignment sizes, longest prefix first so that a 36-bit MA-S block wins over the
/// 24-bit block of the registration authority that contains it.
const PREFIX_BITS: [u64; 3] = [36, 28, 24];

fn record(i: usize) -> (u64, &'static str) {
    let r = &ENTRIES[i * RECORD..(i + 1) * RECORD];
    let key = u64::from_le_bytes(r[0..8].try_into().expect("8 bytes"));
    let offset = u32::from_le_bytes(r[8..12].try_into().expect("4 bytes")) as usize;
    let len = u32::from_le_bytes(r[12..16].try_into().expect("4 bytes")) as usize;
    let name = NAMES
        .get(offset..offset + len)
        .and_then(|b| std::str::from_utf8(b).ok())
        .unwrap_or("");
    (key, name)
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
        let key = bits << 48 | (value >> (48 - bits) << (48 - bits));
        let (mut lo, mut hi) = (0usize, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let (k, name) = record(mid);
            match k.cmp(&key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(name).filter(|n| !n.is_empty()),
            }
        }
    }
    None
}
