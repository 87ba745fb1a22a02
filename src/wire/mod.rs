//! Ethernet on the wire: MAC addresses and their vendors, Ethertypes, and the fields of a
//! frame read in place (MACs, the VLAN walk). A leaf: it imports nothing of the crate, and
//! every other module may use it.

pub mod ethertype;
pub mod flow;
pub mod frame;
pub mod mac;
mod oui;

pub use flow::{flow_hash, lane_of};
pub use frame::{dst_mac, src_mac, vlan_walk, EtherLayer, VlanWalk, HEADER_LEN, MAX_VLAN_TAGS};
pub use mac::{
    Mac, MacParseError, MacRange, MacRangeError, MacRangeParseError, LAA, UNKNOWN_VENDOR,
};
