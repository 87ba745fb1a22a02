//! Build-time generation of the OUI vendor table used by `wire::Mac::describe`.
//!
//! `mac_oui` ships the registry as a 6 MB CSV that its `Oui::default()` parses on every call
//! (about 310 ms and 80 MB of memory), and it files the 28-bit (MA-M) and 36-bit (MA-S, IAB)
//! assignments under wrong 24-bit ranges. So the build reads the registry once through the
//! crate (a build-dependency, which makes Cargo find and version the data for us) and writes
//! two compact blobs into OUT_DIR that `src/wire/oui.rs` includes and binary-searches:
//!
//! * `oui_names.bin`: every distinct vendor name, concatenated (UTF-8).
//! * `oui_entries.bin`: 16-byte records sorted by key, `key: u64 LE` then `name offset: u32 LE`
//!   then `name length: u32 LE`, where key = prefix length in bits << 48 | the prefix's
//!   first 48 bits (remaining bits zero). Sorting by that key groups the records by prefix
//!   length, so a lookup is one binary search per length, longest first.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::Path;

/// Turns the registry's `00:50:C2:29:E` style prefix into (bits, value left-aligned to 48 bits).
fn parse_prefix(text: &str) -> Option<(u64, u64)> {
    let hex: String = text.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    if hex.is_empty()
        || hex.len() > 12
        || hex.len() + text.matches([':', '-', '.']).count() != text.len()
    {
        return None;
    }
    let bits = hex.len() as u64 * 4;
    let value = u64::from_str_radix(&hex, 16).ok()?;
    Some((bits, value << (48 - bits)))
}

pub fn generate(out_dir: &Path) {
    println!("cargo:rerun-if-changed=build/oui.rs");
    let db = mac_oui::Oui::default().expect("mac_oui's bundled registry loads");
    let mut records: BTreeMap<u64, String> = BTreeMap::new();
    for vendor in db.get_unique_manufacturers().expect("vendor list") {
        let Ok(Some(entries)) = db.lookup_by_manufacturer(&vendor) else {
            continue;
        };
        for entry in entries {
            let Some((bits, value)) = parse_prefix(&entry.oui) else {
                println!(
                    "cargo:warning=OUI table: skipping unreadable prefix {:?}",
                    entry.oui
                );
                continue;
            };
            let name = entry.company_name.trim();
            if name.is_empty() {
                continue;
            }
            records.insert(bits << 48 | value, name.to_string());
        }
    }

    let mut names = Vec::<u8>::new();
    let mut name_at: HashMap<&str, (u32, u32)> = HashMap::new();
    let mut entries = Vec::<u8>::with_capacity(records.len() * 16);
    for (key, name) in &records {
        let (offset, len) = *name_at.entry(name.as_str()).or_insert_with(|| {
            let at = (names.len() as u32, name.len() as u32);
            names.extend_from_slice(name.as_bytes());
            at
        });
        entries.extend_from_slice(&key.to_le_bytes());
        entries.extend_from_slice(&offset.to_le_bytes());
        entries.extend_from_slice(&len.to_le_bytes());
    }
    std::fs::write(out_dir.join("oui_names.bin"), names).expect("write oui_names.bin");
    std::fs::write(out_dir.join("oui_entries.bin"), entries).expect("write oui_entries.bin");
}
