//! Ethernet on the wire: MAC addresses and their vendors. A leaf: it imports nothing of the
//! crate, and every other module may use it.

pub mod mac;
mod oui;

pub use mac::{
    describe, format_mac, is_locally_administered, parse_mac, vendor, Mac, LAA, UNKNOWN_VENDOR,
};
