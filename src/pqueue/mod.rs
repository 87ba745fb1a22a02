//! The packet queue (product.md §5): a multi-producer / multi-consumer queue of fixed-size
//! slots in a `/dev/shm` file, shared by the engine's worker threads (producers) and any
//! number of `collect` processes and `tap.queue.get` (consumers).
//!
//! Why it cannot be wedged by a killed consumer (design-notes.md §1): a consumer takes a
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

pub use consumer::{Batch, Consumer, Packet, Queue, Status};
pub use producer::Producer;
pub use segment::{queue_path, LAYOUT_VERSION};
pub use words::register_words;

/// The queue the daemon creates and `collect` reads unless told otherwise.
pub const DEFAULT_NAME: &str = "ixdp.pqueue.tap";

/// Slot count and per-slot frame capacity (bytes of frame data a slot holds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub slots: u32,
    pub slot_size: u32,
}

impl Default for Layout {
    /// 4096 slots of 2 KiB: 8 MiB of frames, as the original.
    fn default() -> Self {
        Layout {
            slots: 4096,
            slot_size: 2048,
        }
    }
}

/// Whether a tapped frame was received or transmitted by the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Rx,
    Tx,
}

impl Direction {
    fn to_byte(self) -> u8 {
        match self {
            Direction::Rx => 0,
            Direction::Tx => 1,
        }
    }
    fn from_byte(b: u8) -> Direction {
        if b == 1 {
            Direction::Tx
        } else {
            Direction::Rx
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a packet queue ({why}); refusing to use or overwrite it")]
    NotAQueue { path: String, why: String },
    #[error("{path}: packet queue layout version {found}, this program uses version {expected}")]
    Version {
        path: String,
        found: u32,
        expected: u32,
    },
    #[error("{path}: damaged packet queue header: {what}")]
    Corrupt { path: String, what: String },
    #[error("invalid packet queue name {0:?}: use a plain file name of /dev/shm (no '/', not starting with '.')")]
    BadName(String),
    #[error("invalid packet queue layout: {0}")]
    BadLayout(String),
}

/// Wall-clock time in ns since the Unix epoch: the `ts_ns` that `Producer::push` expects
/// (`collect --capture-time` writes it into the pcap records).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
