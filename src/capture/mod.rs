//! Captures: what `collect` does with the frames it takes from the packet queue. The queue is
//! [`crate::pqueue`]; here are the file formats ([`pcap`], [`pcapng`]), the output with its
//! rotation ([`sink`]) and the loop that ties them together with limits and progress
//! ([`collect`]). A new output format goes beside them and becomes one more arm of
//! [`sink::FileWriter`].

pub mod collect;
pub mod pcap;
pub mod pcapng;
pub mod sink;

use std::time::Duration;

use crate::pqueue::{Direction, IfCounts, InterfaceDesc, Marks, Queue};

/// What a capture file may say about the engine's ports besides their frames: how the
/// engine described them and its counters (both recorded in the queue segment).
pub trait PortInfo {
    /// The engine's description of interface `index`, if it gave one.
    fn interface(&self, index: usize) -> Option<InterfaceDesc>;
    /// Frames interface `index` received and tapped frames of it that found no room.
    fn counts(&self, index: usize) -> IfCounts;
}

impl PortInfo for Queue {
    fn interface(&self, index: usize) -> Option<InterfaceDesc> {
        Queue::interface(self, index)
    }
    fn counts(&self, index: usize) -> IfCounts {
        self.if_counts(index)
    }
}

/// The file format collect writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Classic pcap (the default).
    Pcap,
    /// pcapng: ports, directions, capture times, fault marks, statistics.
    PcapNg,
}

pub use collect::{run, CollectOptions, CollectReport, DEFAULT_SNAPLEN};

/// One frame as a capture file receives it.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    /// The timestamp the file stores (write time or capture time, as collect was told).
    pub ts: Duration,
    /// The bytes the queue holds (possibly already cut by the engine).
    pub data: &'a [u8],
    /// The frame's length on the wire.
    pub orig_len: u32,
    /// The engine interface it was tapped on (0, 1, … as in `if.stats`).
    pub ifindex: u8,
    /// Which tap saw it.
    pub dir: Direction,
    /// What fault injection did to it.
    pub marks: Marks,
}

/// Why a capture could not start or stopped early.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The options contradict each other or are out of range.
    #[error("{0}")]
    Options(String),
    /// Binary pcap to a terminal would only garble it.
    #[error("refusing to write binary pcap to a terminal: pipe it (collect - | tshark -r -) or give a file name")]
    Terminal,
    /// The packet queue could not be attached or read.
    #[error(transparent)]
    Queue(#[from] crate::pqueue::Error),
    /// `--wait SECONDS` ran out with no engine feeding the queue.
    #[error("no engine fed queue {queue} within {seconds} s (--wait); is `ethertap start` running with --queue-name {queue}?")]
    NoEngine {
        /// The queue's name.
        queue: String,
        /// The `--wait` bound.
        seconds: u64,
    },
    /// Writing an output file (or stdout) failed.
    #[error("{file}: {source}")]
    Write {
        /// The file name, or `stdout`.
        file: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
}
