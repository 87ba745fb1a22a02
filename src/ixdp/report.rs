//! The figures of `if.stats` as data, for the machine-readable outputs: `if.stats.json`,
//! `ethertap stats --json` and the Prometheus metrics (docs/operations.md lists the fields;
//! their names are a contract). Read from the same per-queue counters the words read, through
//! atomics only: building a report never touches a worker.

use super::policy::PROBABILITY_SCALE;
use super::{EngineView, InterfaceInfo, XdpMode};
use serde::{Deserialize, Serialize};

/// Fault injection of one interface: its settings and what it did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultReport {
    /// `fault injection` enabled.
    pub enabled: bool,
    /// `drop probability`, in 1/100000.
    pub drop_probability: u32,
    /// `flip probability`, in 1/100000.
    pub flip_probability: u32,
    /// `dup probability`, in 1/100000.
    pub dup_probability: u32,
    /// The scale of the probabilities (100000 = always).
    pub probability_scale: u32,
    /// `dropped by FI`.
    pub dropped: u64,
    /// `flipped by FI`.
    pub flipped: u64,
    /// `duplicated by FI`.
    pub duplicated: u64,
}

/// Which interface, and how the engine serves it: the header line of `if.stats`, and an
/// interface of `ethertap status --json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceId {
    /// The engine's index (command-line order).
    pub index: usize,
    /// The kernel's name.
    pub name: String,
    /// The driver.
    pub driver: String,
    /// Queues served.
    pub queues: u32,
    /// `ZEROCOPY` (true) or `COPY` (false).
    pub zerocopy: bool,
    /// How the XDP program is attached: `drv` or `skb`.
    pub xdp_mode: String,
}

impl From<&InterfaceInfo> for InterfaceId {
    fn from(info: &InterfaceInfo) -> InterfaceId {
        InterfaceId {
            index: info.index,
            name: info.name.clone(),
            driver: info.driver.clone(),
            queues: info.queues,
            zerocopy: info.zerocopy,
            xdp_mode: xdp_mode_name(info.attached_mode).to_string(),
        }
    }
}

/// One interface of `if.stats`, plus its byte counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceReport {
    /// Which interface (its fields appear at the top level of the object).
    #[serde(flatten)]
    pub id: InterfaceId,
    /// `rx`: frames received.
    pub rx: u64,
    /// `tx`: frames transmitted on this interface.
    pub tx: u64,
    /// `drop`: frames received here and dropped (drop machash, fault injection).
    pub drop: u64,
    /// `noif`: frames received while the output interface was down.
    pub noif: u64,
    /// `err`: frames lost to ring errors.
    pub err: u64,
    /// Bytes of the frames received (no FCS).
    pub rx_bytes: u64,
    /// Bytes of the frames transmitted (no FCS).
    pub tx_bytes: u64,
    /// `RX tap` enabled.
    pub rx_tap: bool,
    /// `TX tap` enabled.
    pub tx_tap: bool,
    /// Fault injection.
    pub fault: FaultReport,
}

impl InterfaceReport {
    /// Frames dropped by the drop machash: `drop` less what fault injection dropped.
    pub fn machash_dropped(&self) -> u64 {
        self.drop.saturating_sub(self.fault.dropped)
    }
}

/// `drv` or `skb` (`auto` only before attaching).
pub fn xdp_mode_name(mode: XdpMode) -> &'static str {
    match mode {
        XdpMode::Drv => "drv",
        XdpMode::Skb => "skb",
        XdpMode::Auto => "auto",
    }
}

/// Every interface of the running engine, in index order.
pub fn interface_reports(e: &dyn EngineView) -> Vec<InterfaceReport> {
    let policy = e.policy().snapshot();
    e.interfaces()
        .iter()
        .enumerate()
        .map(|(i, info)| {
            let c = e.stats().totals(i);
            let fault = policy.fault.get(i).copied().unwrap_or_default();
            InterfaceReport {
                id: InterfaceId::from(info),
                rx: c.rx,
                tx: c.tx,
                drop: c.drop,
                noif: c.noif,
                err: c.err,
                rx_bytes: c.rx_bytes,
                tx_bytes: c.tx_bytes,
                rx_tap: policy.tap_rx.get(i) == Some(&true),
                tx_tap: policy.tap_tx.get(i) == Some(&true),
                fault: FaultReport {
                    enabled: fault.enabled,
                    drop_probability: fault.drop_p,
                    flip_probability: fault.flip_p,
                    dup_probability: fault.dup_p,
                    probability_scale: PROBABILITY_SCALE,
                    dropped: c.fi_dropped,
                    flipped: c.fi_flipped,
                    duplicated: c.fi_duplicated,
                },
            }
        })
        .collect()
}
