//! The packet queue (docs/pqueue.md): a multi-producer / multi-consumer queue of fixed-size
//! slots in a `/dev/shm` file, shared by the engine's worker threads (producers) and any
//! number of `collect` processes and `tap.queue.get` (consumers). A queue may be split into
//! lanes, each a ring of its own.
//!
//! Why it cannot be wedged by a killed consumer (docs/pqueue.md, crash rules): a consumer takes a
//! packet by copying it out and then flipping the slot's sequence from "full for p" to
//! "empty for p + slots" with one CAS, which claims and releases in the same step. The
//! shared `tail` is only a hint: consumers lease a run of ready slots by advancing it, but a
//! slot left full behind the tail (its leaseholder died before its CAS) is picked up by the
//! next consumer that runs dry and sweeps the ring before it sleeps. Semaphores only carry
//! wake-ups, with timed waits, so a lost wake-up costs one timeout and never a hang.

mod consumer;
mod producer;
mod segment;
pub mod testgen;
mod words;

#[cfg(test)]
mod tests;

use std::time::{SystemTime, UNIX_EPOCH};

pub use consumer::{
    lanes_consumed_by, Batch, Consumer, IfCounts, LaneChoice, LaneStatus, Packet, Queue, Status,
};
pub use producer::Producer;
pub use segment::{
    parse_header, queue_path, HeaderProblem, LAYOUT_VERSION, MAX_INTERFACES, MAX_LANES,
};
pub use words::{register_words, register_words_fed};

/// The queue the daemon creates and `collect` reads unless told otherwise.
pub const DEFAULT_NAME: &str = "ixdp.pqueue.tap";

/// The shape of a queue: lanes, slots per lane and per-slot frame capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Slots per lane (a power of two).
    pub slots: u32,
    /// Bytes of frame data a slot holds; longer frames are cut, their length kept.
    pub slot_size: u32,
    /// Rings the queue is split into (1 to [`MAX_LANES`]).
    pub lanes: u32,
}

impl Default for Layout {
    /// 4096 slots of 2 KiB in one lane: 8 MiB of frames, as the original.
    fn default() -> Self {
        Layout {
            slots: 4096,
            slot_size: 2048,
            lanes: 1,
        }
    }
}

/// What fault injection did to a tapped frame, carried in its slot so that a capture can say
/// so (a pcapng comment).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Marks(u8);

impl Marks {
    /// Nothing happened to the frame.
    pub const NONE: Marks = Marks(0);
    /// A bit of the frame was flipped.
    pub const BITFLIP: Marks = Marks(1);
    /// The frame is the extra copy of a duplicated one.
    pub const DUPLICATE: Marks = Marks(2);

    /// Both sets of marks.
    pub const fn union(self, other: Marks) -> Marks {
        Marks(self.0 | other.0)
    }
    /// True when every mark of `other` is set.
    pub const fn contains(self, other: Marks) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }
    /// True when no mark is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The byte stored in a slot.
    pub const fn bits(self) -> u8 {
        self.0
    }
    /// Marks from a slot's byte (unknown bits are kept, and ignored by readers).
    pub const fn from_bits(b: u8) -> Marks {
        Marks(b)
    }
}

/// What a slot records about a frame besides its bytes and lengths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag {
    /// The engine interface it was tapped on.
    pub ifindex: u8,
    /// The tap that saw it.
    pub dir: Direction,
    /// Capture time, ns since the Unix epoch ([`now_ns`]).
    pub ts_ns: u64,
    /// What fault injection did to it.
    pub marks: Marks,
}

/// An engine interface as the queue describes it to consumers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterfaceDesc {
    /// The interface name (`enp1s0f0`), at most 15 bytes.
    pub name: String,
    /// The driver (`ixgbe`, `veth`), at most 23 bytes.
    pub driver: String,
    /// Its MAC address, when it has one.
    pub mac: Option<[u8; 6]>,
    /// Its MTU.
    pub mtu: u32,
    /// Link speed in Mbit/s, 0 when unknown.
    pub speed_mbps: u64,
}

/// Whether a tapped frame was received or transmitted by the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Seen by the RX tap: received on the interface.
    Rx,
    /// Seen by the TX tap: transmitted on the interface.
    Tx,
}

impl Direction {
    pub(crate) fn to_byte(self) -> u8 {
        match self {
            Direction::Rx => 0,
            Direction::Tx => 1,
        }
    }
    pub(crate) fn from_byte(b: u8) -> Direction {
        if b == 1 {
            Direction::Tx
        } else {
            Direction::Rx
        }
    }
}

/// Why a queue could not be used. Every text names the queue's file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call on the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The queue's file.
        path: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a packet queue; it is left alone.
    #[error("{path} is not a packet queue ({why}); refusing to use or overwrite it")]
    NotAQueue {
        /// The file.
        path: String,
        /// What gave it away.
        why: String,
    },
    /// A queue of another layout version.
    #[error("{path}: packet queue layout version {found}, this program uses version {expected}")]
    Version {
        /// The queue's file.
        path: String,
        /// Its version.
        found: u32,
        /// Ours.
        expected: u32,
    },
    /// A queue whose header contradicts itself or the file.
    #[error("{path}: damaged packet queue header: {what}")]
    Corrupt {
        /// The queue's file.
        path: String,
        /// What does not fit.
        what: String,
    },
    /// A name that is not a plain file name of /dev/shm.
    #[error("invalid packet queue name {0:?}: use a plain file name of /dev/shm (no '/', not starting with '.')")]
    BadName(String),
    /// Slots, slot size or lanes out of range.
    #[error("invalid packet queue layout: {0}")]
    BadLayout(String),
    /// A file others could have planted or written: a link, foreign, or writable by others.
    #[error("{path}: refusing to use this packet queue: {why}")]
    Unsafe {
        /// The queue's file.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// `--lane K` of a lane a live consumer holds.
    #[error("{path}: lane {lane} is consumed by PID {pid}; choose another --lane, or none to take a free one")]
    LaneBusy {
        /// The queue's file.
        path: String,
        /// The lane asked for.
        lane: u32,
        /// Its consumer.
        pid: u32,
    },
    /// `--lane K` beyond the queue's lanes.
    #[error("{path}: no lane {lane}: the packet queue has {lanes} lane(s), 0 to {}", lanes - 1)]
    NoLane {
        /// The queue's file.
        path: String,
        /// The lane asked for.
        lane: u32,
        /// The queue's lane count.
        lanes: u32,
    },
    /// Every lane of a laned queue has its consumer.
    #[error("{path}: every one of the {lanes} lanes has a consumer")]
    NoFreeLane {
        /// The queue's file.
        path: String,
        /// The queue's lane count.
        lanes: u32,
    },
    /// Another live engine feeds the queue.
    #[error("{path}: the packet queue is fed by the running engine PID {pid}; choose another --queue-name, or --take-over to take it from that engine")]
    Busy {
        /// The queue's file.
        path: String,
        /// That engine.
        pid: u32,
    },
}

/// Wall-clock time in ns since the Unix epoch: the `ts_ns` that `Producer::push` expects
/// (`collect --capture-time` writes it into the pcap records).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
