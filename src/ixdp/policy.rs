//! What the workers obey: tap flags, the three machashes, the tap selection (filter, sampling,
//! snap length), the queues the taps feed and fault settings, published by the control thread as immutable snapshots.
//!
//! A word never edits the policy a worker is looking at: it copies the current snapshot,
//! changes the copy and swaps the pointer (RCU style, `arc-swap`). A worker loads the pointer
//! once per batch, so it never takes a lock and sees every change from its next batch on.

use super::chain::FrameBytes;
use super::fanout::TapQueue;
use super::machash::MacSet;
use super::select::{Sample, SnapLen, TapFilter};
use crate::wire::{dst_mac, src_mac};
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Interfaces an engine drives: one in mirror mode, two in bridge mode.
pub const MAX_IFS: usize = 2;

/// The probability scale of fault injection: `PROBABILITY_SCALE` means always.
pub const PROBABILITY_SCALE: u32 = 100_000;

/// Fault injection on frames received on one interface; probabilities in 1/100000.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct FaultConfig {
    /// `fault.enable` / `fault.disable`.
    pub enabled: bool,
    /// Chance that a selected frame is dropped.
    pub drop_p: u32,
    /// Chance that one bit past the Ethernet header is flipped.
    pub flip_p: u32,
    /// Chance that the frame is sent twice.
    pub dup_p: u32,
}

/// One immutable snapshot of everything the words set and the workers obey.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct Policy {
    /// RX tap per interface (`tap.rx.enable`).
    pub tap_rx: [bool; MAX_IFS],
    /// TX tap per interface (`tap.tx.enable`).
    pub tap_tx: [bool; MAX_IFS],
    /// The TAP machash: which frames the taps copy.
    pub tap_hash: MacSet,
    /// The pcap-filter expression a tapped frame must also match (`tap.filter`); None: all.
    pub tap_filter: Option<TapFilter>,
    /// One in n of the frames that pass the machash and the filter is tapped (`tap.sample`).
    pub sample: Sample,
    /// How much of a tapped frame goes into the queue (`tap.snaplen`).
    pub snaplen: SnapLen,
    /// The drop machash: source MACs whose frames are not forwarded.
    pub drop_hash: MacSet,
    /// The fault machash: source MACs fault injection applies to.
    pub fault_hash: MacSet,
    /// Fault injection per receiving interface.
    pub fault: [FaultConfig; MAX_IFS],
    /// The packet queues the taps feed, the default one first (`tap.queue.add`); each gets a
    /// copy of every tapped frame it takes. Empty: the engine runs without taps.
    pub queues: Vec<TapQueue>,
}

impl Policy {
    /// TAP machash rule: an empty set selects every frame; otherwise the source or the
    /// destination MAC must be in it.
    #[inline]
    pub fn tap_selects(&self, frame: &[u8]) -> bool {
        if self.tap_hash.is_empty() {
            return true;
        }
        src_mac(frame).is_some_and(|m| self.tap_hash.contains(&m))
            || dst_mac(frame).is_some_and(|m| self.tap_hash.contains(&m))
    }

    /// The pcap-filter rule: no filter takes every frame. Runs only for frames that reached a
    /// tap point and passed [`Policy::tap_selects`].
    #[inline]
    pub fn tap_filter_takes<F: FrameBytes + ?Sized>(&self, frame: &F) -> bool {
        match &self.tap_filter {
            None => true,
            Some(f) => f.matches(frame),
        }
    }

    /// Drop machash: the source MAC is listed. An empty set drops nothing.
    #[inline]
    pub fn drop_selects(&self, frame: &[u8]) -> bool {
        !self.drop_hash.is_empty() && src_mac(frame).is_some_and(|m| self.drop_hash.contains(&m))
    }

    /// Fault injection applies to frames received on `rx_if` when it is enabled there and the
    /// fault machash is empty or lists the source MAC.
    #[inline]
    pub fn fault_selects(&self, rx_if: usize, frame: &[u8]) -> bool {
        let Some(cfg) = self.fault.get(rx_if) else {
            return false;
        };
        cfg.enabled
            && (self.fault_hash.is_empty()
                || src_mac(frame).is_some_and(|m| self.fault_hash.contains(&m)))
    }
}

/// The published policy. Workers `load()` once per batch; words `update()`. The second field
/// counts the updates, so that the control plane can tell that a command changed something
/// (and log it) without knowing the words.
#[derive(Default)]
pub struct PolicyCell(ArcSwap<Policy>, AtomicU64, Observer);

/// Called after every update (the kernel path recomputes its flags).
type Observer = std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>;

impl PolicyCell {
    /// A cell publishing `policy`.
    pub fn new(policy: Policy) -> PolicyCell {
        PolicyCell(
            ArcSwap::from_pointee(policy),
            AtomicU64::new(0),
            Observer::new(),
        )
    }

    /// How many updates were published so far.
    pub fn version(&self) -> u64 {
        self.1.load(Ordering::Acquire)
    }

    /// The current snapshot; cheap and lock-free (for the per-batch load of a worker).
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<Policy>> {
        self.0.load()
    }

    /// The current snapshot as an owned pointer (for readers that keep it a while).
    pub fn snapshot(&self) -> Arc<Policy> {
        self.0.load_full()
    }

    /// Publishes a changed copy of the current snapshot. `f` may run more than once if
    /// another thread published in between (read-copy-update retries), hence `Fn`.
    pub fn update(&self, f: impl Fn(&mut Policy)) {
        self.0.rcu(|current| {
            let mut next = Policy::clone(current);
            f(&mut next);
            next
        });
        self.1.fetch_add(1, Ordering::AcqRel);
        if let Some(observer) = self.2.get() {
            observer();
        }
    }

    /// Calls `observer` after every later update, once the new snapshot is published (one
    /// observer per cell; a second one is ignored).
    pub fn observe(&self, observer: Box<dyn Fn() + Send + Sync>) {
        let _ = self.2.set(observer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Mac;

    const A: Mac = Mac([0x00, 0x1b, 0x21, 0, 0, 0xa]);
    const B: Mac = Mac([0x00, 0x1b, 0x21, 0, 0, 0xb]);
    const C: Mac = Mac([0x02, 0, 0, 0, 0, 0xc]);

    fn frame(dst: Mac, src: Mac) -> Vec<u8> {
        crate::wire::frame::test_frame(dst, src, &[], 0x0800, 60)
    }

    #[test]
    fn tap_machash_empty_selects_everything() {
        let p = Policy::default();
        assert!(p.tap_selects(&frame(A, B)));
        assert!(p.tap_selects(&[]), "even a runt: the set does not filter");
    }

    #[test]
    fn tap_machash_matches_source_or_destination() {
        let p = Policy {
            tap_hash: MacSet::new().inserted(A),
            ..Policy::default()
        };
        assert!(p.tap_selects(&frame(A, B)), "destination listed");
        assert!(p.tap_selects(&frame(B, A)), "source listed");
        assert!(!p.tap_selects(&frame(B, C)), "neither listed");
        assert!(
            !p.tap_selects(&frame(A, B)[..5]),
            "too short for a destination"
        );
        assert!(
            p.tap_selects(&frame(A, B)[..6]),
            "destination complete, source missing"
        );
        assert!(!p.tap_selects(&frame(B, A)[..11]), "source cut off");
    }

    #[test]
    fn drop_machash_looks_at_the_source_only() {
        let p = Policy {
            drop_hash: MacSet::new().inserted(A),
            ..Policy::default()
        };
        assert!(p.drop_selects(&frame(B, A)));
        assert!(!p.drop_selects(&frame(A, B)), "destination does not count");
        assert!(!p.drop_selects(&frame(B, A)[..11]));
        assert!(
            !Policy::default().drop_selects(&frame(B, A)),
            "empty set drops nothing"
        );
    }

    #[test]
    fn fault_selection_needs_enabled_interface_and_listed_source() {
        let mut p = Policy::default();
        assert!(!p.fault_selects(0, &frame(A, B)), "disabled by default");
        p.fault[1].enabled = true;
        assert!(!p.fault_selects(0, &frame(A, B)));
        assert!(
            p.fault_selects(1, &frame(A, B)),
            "empty fault hash: every frame"
        );
        assert!(p.fault_selects(1, &[]), "empty fault hash: even a runt");
        assert!(!p.fault_selects(2, &frame(A, B)), "no such interface");
        assert!(!p.fault_selects(usize::MAX, &frame(A, B)));
        p.fault_hash = MacSet::new().inserted(B);
        assert!(p.fault_selects(1, &frame(A, B)), "source listed");
        assert!(
            !p.fault_selects(1, &frame(B, A)),
            "only the destination listed"
        );
        assert!(!p.fault_selects(1, &frame(A, B)[..10]));
    }

    #[test]
    fn short_frames_never_panic() {
        let p = Policy {
            tap_hash: MacSet::new().inserted(A),
            drop_hash: MacSet::new().inserted(A),
            fault_hash: MacSet::new().inserted(A),
            fault: [FaultConfig {
                enabled: true,
                ..Default::default()
            }; MAX_IFS],
            ..Policy::default()
        };
        let f = frame(A, A);
        for len in 0..=14 {
            p.tap_selects(&f[..len]);
            p.drop_selects(&f[..len]);
            p.fault_selects(0, &f[..len]);
        }
    }

    #[test]
    fn update_publishes_a_new_snapshot_and_keeps_the_old_one_intact() {
        let cell = PolicyCell::default();
        let before = cell.snapshot();
        cell.update(|p| {
            p.tap_rx[0] = true;
            p.tap_hash = p.tap_hash.inserted(A);
        });
        let after = cell.load();
        assert!(after.tap_rx[0] && after.tap_hash.contains(&A));
        assert!(!before.tap_rx[0] && before.tap_hash.is_empty());
    }

    #[test]
    fn concurrent_updates_are_not_lost() {
        let cell = Arc::new(PolicyCell::default());
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let cell = cell.clone();
                std::thread::spawn(move || {
                    for i in 0..50u8 {
                        cell.update(|p| p.tap_hash = p.tap_hash.inserted(Mac([t, i, 0, 0, 0, 0])));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(cell.load().tap_hash.len(), 200);
    }
}
