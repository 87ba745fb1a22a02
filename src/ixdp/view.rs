//! The running engine as the control side sees it: [`EngineView`] and the values it hands
//! out. The words (`words.rs`) format these; nothing here prints.

use super::fanout::TapQueue;
use super::policy::PolicyCell;
use super::stats::StatsBoard;
use super::xdp::ProgramCounters;
use crate::pqueue::{self, Layout, Producer};
use std::sync::Arc;

/// How the XDP program is attached (`--xdp-mode`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum XdpMode {
    /// Native if the driver has it, else generic.
    Auto,
    /// Native (driver) mode.
    Drv,
    /// Generic (skb) mode.
    Skb,
}

/// What the words know about an interface of the running engine.
#[derive(Clone, Debug)]
pub struct InterfaceInfo {
    /// The engine's index of the interface (command-line order).
    pub index: usize,
    /// The kernel's name of the interface.
    pub name: String,
    /// The driver ethtool reports.
    pub driver: String,
    /// Queues served, one worker each.
    pub queues: u32,
    /// Whether the AF_XDP sockets are zero-copy.
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

/// Ring occupancy and socket statistics of one (interface, queue), as its worker last
/// published them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingFigures {
    /// Descriptors in the fill ring.
    pub fill: u64,
    /// Descriptors waiting in the RX ring.
    pub rx: u64,
    /// Descriptors in the TX ring.
    pub tx: u64,
    /// Descriptors waiting in the completion ring.
    pub comp: u64,
    /// Frames of the port's circuit in the worker's free list.
    pub free_frames: u64,
    /// Frames in the spare pool (fault duplicates) of the queue.
    pub spare_frames: u64,
    /// `xdp_statistics.rx_dropped`: frames the kernel dropped (e.g. too long for a frame).
    pub rx_dropped: u64,
    /// `xdp_statistics.rx_invalid_descs`.
    pub rx_invalid_descs: u64,
    /// `xdp_statistics.tx_invalid_descs`.
    pub tx_invalid_descs: u64,
    /// `xdp_statistics.rx_ring_full`: frames lost because the RX ring was full.
    pub rx_ring_full: u64,
    /// `xdp_statistics.rx_fill_ring_empty_descs`: frames lost for want of a receive buffer.
    pub rx_fill_ring_empty_descs: u64,
    /// `xdp_statistics.tx_ring_empty_descs`.
    pub tx_ring_empty_descs: u64,
}

/// How current [`RingDetails`] are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Freshness {
    /// The worker answered the request just now.
    #[default]
    Fresh,
    /// The engine has stopped: the values its workers published last.
    Stopped,
    /// The worker did not answer in time: the values may be old.
    NoAnswer,
}

/// `if.qstats` extras of one (interface, queue).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingDetails {
    /// The rings and the socket's statistics.
    pub rings: RingFigures,
    /// The XDP program's counters of the interface (all queues).
    pub program: ProgramCounters,
    /// Whether the worker answered.
    pub freshness: Freshness,
}

/// Why [`EngineView::ring_details`] has nothing to say.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// No such interface.
    #[error("{ifidx} is not an interface (0..{last})")]
    NoInterface {
        /// The index asked for.
        ifidx: usize,
        /// The highest index there is.
        last: usize,
    },
    /// No such queue.
    #[error("{queue} is not a queue of the engine (0..{last})")]
    NoQueue {
        /// The queue asked for.
        queue: usize,
        /// The highest queue there is.
        last: usize,
    },
}

/// What the control thread last saw of an interface (logged when it changes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Present and up.
    Up = 0,
    /// Present, administratively or operationally down.
    Down = 1,
    /// No interface of that name, or another one under the name (deleted and re-created).
    Gone = 2,
}

impl LinkState {
    /// The state of the interface `name` that had the index `ifindex` when the engine took it.
    pub fn of(name: &str, ifindex: u32) -> LinkState {
        match super::netdev::if_index(name) {
            Ok(idx) if idx == ifindex => match super::netdev::is_up(name) {
                Ok(false) => LinkState::Down,
                _ => LinkState::Up,
            },
            _ => LinkState::Gone,
        }
    }

    /// The log line for a change from `before` to `self` of interface `i` named `name`.
    pub fn change_text(self, before: LinkState, i: usize, name: &str) -> String {
        match (before, self) {
            (_, LinkState::Gone) => format!(
                "interface {i} {name} is gone (deleted or re-created): its frames are no longer bridged or tapped until it is back and up"
            ),
            (_, LinkState::Down) => format!("interface {i} {name} is down"),
            (LinkState::Down, LinkState::Up) => format!("interface {i} {name} is up again"),
            (_, LinkState::Up) => format!("interface {i} {name} is back and bridged again"),
        }
    }

    /// The word `if.stats` and `status` add to an interface that is not up (`DOWN`, `GONE`).
    pub fn token(self) -> Option<&'static str> {
        match self {
            LinkState::Up => None,
            LinkState::Down => Some("DOWN"),
            LinkState::Gone => Some("GONE"),
        }
    }

    /// As kept in an atomic.
    pub fn to_byte(self) -> u8 {
        self as u8
    }

    /// From [`LinkState::to_byte`]; anything else is `Up`.
    pub fn from_byte(b: u8) -> LinkState {
        match b {
            1 => LinkState::Down,
            2 => LinkState::Gone,
            _ => LinkState::Up,
        }
    }
}

/// The running engine as the control words see it.
pub trait EngineView: Send + Sync {
    /// The interfaces, in index order.
    fn interfaces(&self) -> &[InterfaceInfo];
    /// The policy the workers obey.
    fn policy(&self) -> &PolicyCell;
    /// The statistics the workers write.
    fn stats(&self) -> &StatsBoard;
    /// What the control thread saw last of interface `ifidx` (always up where nobody watches).
    fn link_state(&self, _ifidx: usize) -> LinkState {
        LinkState::Up
    }
    /// The packet queue the engine always feeds (`--queue-name`), which `tap.queue.remove`
    /// refuses; None when it runs without taps, and for views with no such queue.
    fn default_queue(&self) -> Option<&str> {
        None
    }
    /// The queues the taps feed besides the default one (`tap.queue.add`), in order.
    fn added_queues(&self) -> Vec<TapQueue> {
        let default = self.default_queue();
        self.policy()
            .snapshot()
            .queues
            .iter()
            .filter(|q| Some(q.name()) != default)
            .cloned()
            .collect()
    }
    /// The layout a queue `tap.queue.add` creates gets (lanes aside): the default queue's;
    /// None when the engine runs without taps.
    fn queue_layout(&self) -> Option<Layout> {
        Some(Layout::default())
    }
    /// Creates (or re-initialises, as a new generation) the packet queue `name` with `lanes`
    /// lanes ([`super::fanout::lane_layout`]) for the taps to feed, and describes the
    /// interfaces to its consumers.
    fn open_queue(&self, name: &str, lanes: u32) -> Result<Arc<Producer>, pqueue::Error> {
        let layout = self.queue_layout().unwrap_or_default();
        Producer::open(name, super::fanout::lane_layout(layout, lanes)).map(Arc::new)
    }
    /// `if.qstats` extras: ring occupancy and `xdp_statistics` of one socket.
    fn ring_details(&self, ifidx: usize, queue: usize) -> Result<RingDetails, RingError>;
    /// A number that grows whenever a word changes what the engine does or counts (policy
    /// updates, statistics resets): the control plane logs the commands that moved it.
    fn changes(&self) -> u64 {
        self.policy().version() + self.stats().resets()
    }
}
