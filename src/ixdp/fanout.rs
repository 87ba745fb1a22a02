//! Fan-out: the packet queues the taps feed (docs/pqueue.md, "Several queues").
//!
//! Every queue gets its own copy of every frame the global tap selection takes (tap flags,
//! TAP machash, `tap.filter`, `tap.sample`, `tap.snaplen`); a queue may narrow that with a
//! filter and a snap length of its own. A queue split into lanes puts each frame into the lane
//! of its symmetric flow hash ([`crate::wire::flow`]), so both directions of a connection, at
//! both tap points, land in one lane and one consumer. The queues live in the policy snapshot
//! (`Policy::queues`), so a worker sees a change from its next batch on and the fast path
//! takes no lock; each extra queue costs one copy of each frame it takes.

use std::fmt;
use std::sync::Arc;

use super::chain::FrameBytes;
use super::select::{SnapLen, TapFilter};
use crate::pqueue::{Layout, Producer, Tag};
use crate::wire::flow::{flow_hash, lane_of_hash};

/// Most queues one engine feeds, the default one included: each costs a copy of every tapped
/// frame and its shared memory, and no tool chain needs more.
pub const MAX_TAP_QUEUES: usize = 8;

/// Fewest slots a lane gets when a queue is split.
pub const MIN_LANE_SLOTS: u32 = 256;

/// The layout of a queue of `lanes` lanes made from `base` (one lane): the slots are shared out
/// among the lanes (a power of two each, at least [`MIN_LANE_SLOTS`] or all of `base`'s), so
/// that splitting a queue does not multiply its shared memory: 8 queues of 64 lanes would
/// otherwise take 64 times the memory of 8 queues.
pub fn lane_layout(base: Layout, lanes: u32) -> Layout {
    let lanes = lanes.max(1);
    let share = (base.slots / lanes)
        .max(MIN_LANE_SLOTS.min(base.slots))
        .max(1);
    let slots = 1 << (31 - share.leading_zeros());
    Layout {
        slots,
        lanes,
        ..base
    }
}

/// One queue the taps feed, with what it narrows.
#[derive(Clone)]
pub struct TapQueue {
    /// Where its frames go.
    pub producer: Arc<Producer>,
    /// The pcap-filter expression its frames must also match (`tap.queue.filter`).
    pub filter: Option<TapFilter>,
    /// How much of each frame it stores, at most (`tap.queue.snaplen`); the global snap
    /// length applies first.
    pub snaplen: SnapLen,
}

impl TapQueue {
    /// A queue that takes everything the global selection takes.
    pub fn new(producer: Arc<Producer>) -> TapQueue {
        TapQueue {
            producer,
            filter: None,
            snaplen: SnapLen::WHOLE,
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        self.producer.name()
    }

    /// Its lanes (1 when it is not split).
    pub fn lanes(&self) -> u32 {
        self.producer.layout().lanes
    }

    /// Slots per lane.
    pub fn slots(&self) -> u32 {
        self.producer.layout().slots
    }

    /// How many bytes of `frame` this queue stores, given that the global selection took
    /// `cap` of them; None when its own filter refuses the frame.
    #[inline(always)]
    pub fn takes<F: FrameBytes + ?Sized>(&self, frame: &F, cap: usize) -> Option<usize> {
        if let Some(f) = &self.filter {
            if !f.matches(frame) {
                return None;
            }
        }
        Some(self.snaplen.cap(cap))
    }
}

impl PartialEq for TapQueue {
    /// The same queue handle with the same narrowing.
    fn eq(&self, other: &TapQueue) -> bool {
        Arc::ptr_eq(&self.producer, &other.producer)
            && self.filter == other.filter
            && self.snaplen == other.snaplen
    }
}

impl Eq for TapQueue {}

impl fmt::Debug for TapQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TapQueue")
            .field("name", &self.name())
            .field("lanes", &self.lanes())
            .field("filter", &self.filter)
            .field("snaplen", &self.snaplen)
            .finish()
    }
}

/// The flow hash of one frame, computed the first time a laned queue needs it.
#[derive(Default)]
pub struct LazyHash(Option<u64>);

impl LazyHash {
    /// A hash known already (`Some`), or to be computed when needed (`None`).
    pub fn known(hash: Option<u64>) -> LazyHash {
        LazyHash(hash)
    }

    /// The lane of `lanes` for the frame whose first buffer is `head`.
    #[inline(always)]
    pub fn lane(&mut self, head: &[u8], lanes: u32) -> u32 {
        if lanes <= 1 {
            return 0;
        }
        let h = *self.0.get_or_insert_with(|| flow_hash(head));
        lane_of_hash(h, lanes)
    }
}

/// The flow hash of the frame whose first buffer is `head` when one of `queues` has lanes:
/// what a frame's TX copy must be laned by when fault injection is about to flip one of its
/// bits, which may be in an address or a port.
#[inline]
pub fn flow_if_laned(queues: &[TapQueue], head: &[u8]) -> Option<u64> {
    queues
        .iter()
        .any(|q| q.lanes() > 1)
        .then(|| flow_hash(head))
}

/// Puts a frame the global selection took (`cap` bytes of it) into every queue that takes it,
/// each in the lane of its flow (`flow`: its hash as received, when known; else computed from
/// the frame once). `parts` yields the frame's buffers, the first of which holds every header.
/// Never blocks: a full lane counts `full` and the frame goes on to the other queues.
#[inline(always)]
pub fn fan_out<'p, F, P>(
    queues: &[TapQueue],
    frame: &F,
    parts: impl Fn() -> P,
    cap: usize,
    tag: Tag,
    flow: Option<u64>,
) where
    F: FrameBytes + ?Sized,
    P: Iterator<Item = &'p [u8]>,
{
    let mut hash = LazyHash::known(flow);
    let len = frame.wire_len() as u32;
    for q in queues {
        let Some(cap) = q.takes(frame, cap) else {
            continue;
        };
        let lane = hash.lane(frame.head(), q.lanes());
        q.producer.push_parts_to(lane, parts(), cap, len, tag);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_share_the_slots_of_the_queue() {
        let base = Layout::default();
        let of = |lanes| {
            let l = lane_layout(base, lanes);
            (l.slots, l.lanes, l.slot_size)
        };
        assert_eq!(of(1), (4096, 1, 2048));
        assert_eq!(of(4), (1024, 4, 2048));
        assert_eq!(of(3), (1024, 3, 2048), "a power of two, rounded down");
        assert_eq!(of(64), (256, 64, 2048), "never fewer than 256");
        let small = Layout { slots: 64, ..base };
        assert_eq!(
            lane_layout(small, 8).slots,
            64,
            "a small queue keeps its slots"
        );
        assert_eq!(lane_layout(base, 0).lanes, 1);
    }
}
