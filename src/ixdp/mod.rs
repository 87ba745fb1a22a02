//! The IXDP engine: interfaces, XDP program, AF_XDP sockets, workers, statistics, faults.

pub mod engine;
pub mod fault;
pub mod machash;
pub mod netdev;
pub mod policy;
pub mod stats;
pub mod words;
pub mod worker;
pub mod xdp;
pub mod xsk;

pub use engine::{Engine, EngineConfig, MAX_QUEUES};
pub use worker::Polling;

use policy::PolicyCell;
use stats::StatsBoard;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum XdpMode {
    Auto,
    Drv,
    Skb,
}

/// What the words know about an interface of the running engine.
#[derive(Clone, Debug)]
pub struct InterfaceInfo {
    pub index: usize,
    pub name: String,
    pub driver: String,
    pub queues: u32,
    pub zerocopy: bool,
    /// `Drv` or `Skb` once attached.
    pub attached_mode: XdpMode,
}

/// `bridge mode on 0 eth0, 1 eth1` or `mirror mode on 0 eth0`: how the front ends name what
/// the engine does.
pub fn mode_summary(ifs: &[InterfaceInfo]) -> String {
    let names: Vec<String> = ifs
        .iter()
        .map(|i| format!("{} {}", i.index, i.name))
        .collect();
    format!("{} mode on {}", mode_name(ifs), names.join(", "))
}

/// Two interfaces bridge; one is a mirror (SPAN) port.
pub fn mode_name(ifs: &[InterfaceInfo]) -> &'static str {
    if ifs.len() == 2 {
        "bridge"
    } else {
        "mirror"
    }
}

/// The running engine as the control words see it.
pub trait EngineView: Send + Sync {
    fn interfaces(&self) -> &[InterfaceInfo];
    fn policy(&self) -> &PolicyCell;
    fn stats(&self) -> &StatsBoard;
    /// `if.qstats` extras: ring occupancy and `xdp_statistics` of one socket.
    fn ring_details(&self, ifidx: usize, queue: usize) -> Result<String, String>;
}
