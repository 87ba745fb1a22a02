//! The per-frame fast path of a worker, as small stages in the order of docs/data-path.md:
//!
//! 1. rx counters, source-MAC and Ethertype statistics ([`QueueStats::on_rx`]);
//! 2. RX tap into the packet queue (tap flag, TAP machash, filter, sampling, snap length);
//! 3. forward decision (bridge: to the other port; mirror mode ends here);
//! 4. drop machash;
//! 5. fault injection (drop, flip one bit, duplicate);
//! 6. TX tap over what goes out, by the same rule as the RX tap (the worker then hands the
//!    frames to the TX ring).
//!
//! Stages 3–5 are one pure function, [`verdict`], so their order is tested without sockets.
//! [`run_batch`] applies every stage to one received batch; it is generic over where the frames
//! live ([`FrameStore`]: the UMEM in the engine, plain memory in the tests) and monomorphised,
//! so the abstraction costs nothing per frame. Counters are tallied per batch in a
//! [`Counters`] and added to the shared statistics once per batch.

use super::fault::{self, FaultRng};
use super::policy::Policy;
use super::select::Sampler;
use super::stats::{Counters, QueueStats};
use crate::pqueue::{Direction, Marks, Producer, Tag};

/// Where frames received on one port go; fixed for a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Mirror (SPAN) mode: receive and tap only.
    Mirror,
    /// Bridge mode: out on port `out`.
    Bridge {
        /// The output port.
        out: usize,
        /// The output's interface refused the last transmit kick (ENETDOWN).
        out_down: bool,
    },
}

/// What happens to one received frame after the RX stages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Mirror mode: nothing to send.
    Mirror,
    /// The output interface is down: counted in `noif`.
    NoIf,
    /// The source MAC is in the drop machash: counted in `drop`.
    Dropped,
    /// Fault injection dropped it: counted in `drop` and `dropped by FI`.
    FaultDropped,
    /// Transmit it on the output port.
    Forward {
        /// Flip this bit first ([`fault::flip_position`] numbering).
        flip: Option<usize>,
        /// Send a copy too (when a spare frame and a TX slot are free).
        dup: bool,
    },
}

/// Stages 3–5 for one frame received on `port`: forward decision, drop machash, fault
/// injection. Draws from `rng` only when fault injection selects the frame.
#[inline]
pub fn verdict(
    policy: &Policy,
    port: usize,
    route: Route,
    frame: &[u8],
    rng: &mut FaultRng,
) -> Verdict {
    let Route::Bridge { out_down, .. } = route else {
        return Verdict::Mirror;
    };
    if out_down {
        return Verdict::NoIf;
    }
    if policy.drop_selects(frame) {
        return Verdict::Dropped;
    }
    if !policy.fault_selects(port, frame) {
        return Verdict::Forward {
            flip: None,
            dup: false,
        };
    }
    let decision = fault::decide(&policy.fault[port], rng);
    if decision.drop {
        return Verdict::FaultDropped;
    }
    Verdict::Forward {
        // A frame of 14 bytes or less has no bit that may flip: not flipped, not counted.
        flip: decision
            .flip
            .then(|| fault::flip_position(frame.len(), rng))
            .flatten(),
        dup: decision.dup,
    }
}

/// Frames in the worker's hands, wherever they live.
pub trait FrameStore {
    /// Names one frame.
    type Desc: Copy;

    /// The contents of frame `d`.
    ///
    /// # Safety
    /// `d` must be a frame of this store that the caller holds (in no ring).
    unsafe fn frame(&self, d: &Self::Desc) -> &[u8];

    /// Flips bit `bit` of frame `d` ([`fault::flip_bit`]).
    ///
    /// # Safety
    /// As for [`FrameStore::frame`].
    unsafe fn flip(&mut self, d: &mut Self::Desc, bit: usize);

    /// Copies frame `from` into frame `to`; false when it does not fit.
    ///
    /// # Safety
    /// As for [`FrameStore::frame`], for both frames, which must differ.
    unsafe fn copy(&mut self, from: &Self::Desc, to: &mut Self::Desc) -> bool;
}

/// Frames in plain memory, frame `i` being `self.0[i]`: for the unit tests and the benchmark
/// of the stages (and anything else that runs them outside a UMEM).
#[derive(Clone, Debug, Default)]
pub struct MemoryFrames(pub Vec<Vec<u8>>);

impl FrameStore for MemoryFrames {
    type Desc = usize;

    unsafe fn frame(&self, d: &usize) -> &[u8] {
        &self.0[*d]
    }

    unsafe fn flip(&mut self, d: &mut usize, bit: usize) {
        fault::flip_bit(&mut self.0[*d], bit);
    }

    unsafe fn copy(&mut self, from: &usize, to: &mut usize) -> bool {
        // Reuses the target's allocation once it is large enough.
        let src = std::mem::take(&mut self.0[*from]);
        self.0[*to].clone_from(&src);
        self.0[*from] = src;
        true
    }
}

/// What a worker carries from one batch to the next.
#[derive(Clone, Debug)]
pub struct WorkerState {
    /// Its fault-injection random generator.
    pub rng: FaultRng,
    /// Its count of frames that qualify for the taps (`tap.sample`), over both tap points.
    pub sampler: Sampler,
}

impl WorkerState {
    /// A state whose generator starts from `rng`, the sampling count from zero.
    pub fn new(rng: FaultRng) -> WorkerState {
        WorkerState {
            rng,
            sampler: Sampler::default(),
        }
    }
}

/// What a batch needs besides its frames; fixed for the batch.
#[derive(Clone, Copy)]
pub struct BatchContext<'a> {
    /// The policy snapshot of this round.
    pub policy: &'a Policy,
    /// The port the batch was received on.
    pub port: usize,
    /// Where it goes.
    pub route: Route,
    /// The packet queue of the taps, if the engine has one.
    pub queue: Option<&'a Producer>,
    /// Time stamp of the batch for the taps.
    pub ts: u64,
    /// Free slots of the output TX ring: `out` never holds more.
    pub room: usize,
}

/// The frame lists a batch sorts its frames into.
pub struct FrameLists<'a, D> {
    /// Back to the receiving port's fill ring (mirror mode, output down, dropped).
    pub recycle: &'a mut Vec<D>,
    /// To the output TX ring, duplicates included.
    pub out: &'a mut Vec<D>,
    /// The spare pool the duplicates are taken from.
    pub spares: &'a mut Vec<D>,
    /// Frames of `out` that fault injection changed, by their index in `out`, in order: what
    /// the TX tap records in their queue slots (empty while nothing is flipped or duplicated).
    pub marked: &'a mut Vec<(usize, Marks)>,
}

/// Runs every stage over the frames `rx` received on `cx.port` and returns the batch's
/// counters (all but `rx`, which `stats.on_rx` counted per frame) for the caller to add to the
/// receiving port's statistics, except `tx_bytes`: the bytes of the frames in `lists.out`,
/// which belong to the output port once the caller has put them in its TX ring.
#[inline]
pub fn run_batch<S: FrameStore>(
    cx: &BatchContext<'_>,
    store: &mut S,
    rx: &mut [S::Desc],
    stats: &QueueStats,
    state: &mut WorkerState,
    mut lists: FrameLists<'_, S::Desc>,
) -> Counters {
    let mut counts = Counters::default();
    let rx_tap = cx
        .queue
        .filter(|_| cx.policy.tap_rx.get(cx.port) == Some(&true));
    for d in rx.iter_mut() {
        // SAFETY: the caller holds every frame of `rx` (see FrameStore).
        let frame = unsafe { store.frame(d) };
        let len = frame.len() as u64;
        counts.rx_bytes += len;
        receive_stage(cx, rx_tap, stats, &mut state.sampler, frame);
        match verdict(cx.policy, cx.port, cx.route, frame, &mut state.rng) {
            Verdict::Forward { flip, dup } => {
                let before = lists.out.len() as u64;
                forward_stage(cx, store, d, flip, dup, &mut counts, &mut lists);
                // The frame, and its duplicate when one went out too.
                counts.tx_bytes += len * (lists.out.len() as u64 - before);
            }
            v => {
                tally(&mut counts, v);
                lists.recycle.push(*d);
            }
        }
    }
    if let Route::Bridge { out, .. } = cx.route {
        tx_tap_stage(cx, store, out, lists.out, lists.marked, &mut state.sampler);
    }
    counts
}

/// The tap rule past a tap point's flag, in order: TAP machash, filter, sampling. Returns the
/// part of the frame to copy (cut to the snap length), or None. The filter runs only for
/// frames the machash selected, and the sampler counts only frames that passed both.
#[inline(always)]
fn tap_rule<'f>(policy: &Policy, sampler: &mut Sampler, frame: &'f [u8]) -> Option<&'f [u8]> {
    let takes =
        policy.tap_selects(frame) && policy.tap_filter_takes(frame) && sampler.take(policy.sample);
    takes.then(|| policy.snaplen.cut(frame))
}

/// Stages 1 and 2: statistics, then the RX tap.
#[inline(always)]
fn receive_stage(
    cx: &BatchContext<'_>,
    rx_tap: Option<&Producer>,
    stats: &QueueStats,
    sampler: &mut Sampler,
    frame: &[u8],
) {
    stats.on_rx(frame);
    if let Some(q) = rx_tap {
        if let Some(copy) = tap_rule(cx.policy, sampler, frame) {
            let tag = Tag {
                ifindex: cx.port as u8,
                dir: Direction::Rx,
                ts_ns: cx.ts,
                marks: Marks::NONE,
            };
            q.push_to(0, copy, frame.len() as u32, tag);
        }
    }
}

/// Counts a frame that does not go out.
#[inline(always)]
fn tally(counts: &mut Counters, v: Verdict) {
    match v {
        Verdict::NoIf => counts.noif += 1,
        Verdict::Dropped => counts.drop += 1,
        Verdict::FaultDropped => {
            counts.drop += 1;
            counts.fi_dropped += 1;
        }
        Verdict::Mirror | Verdict::Forward { .. } => {}
    }
}

/// Applies a forward verdict: the flip, the frame, and its duplicate when a spare frame and a
/// TX slot are free (else the frame goes once and is not counted as duplicated).
#[inline(always)]
fn forward_stage<S: FrameStore>(
    cx: &BatchContext<'_>,
    store: &mut S,
    d: &mut S::Desc,
    flip: Option<usize>,
    dup: bool,
    counts: &mut Counters,
    lists: &mut FrameLists<'_, S::Desc>,
) {
    let marks = if let Some(bit) = flip {
        // SAFETY: the caller holds d (see run_batch).
        unsafe { store.flip(d, bit) };
        counts.fi_flipped += 1;
        lists.marked.push((lists.out.len(), Marks::BITFLIP));
        Marks::BITFLIP
    } else {
        Marks::NONE
    };
    lists.out.push(*d);
    if !dup || lists.out.len() >= cx.room {
        return;
    }
    let Some(mut spare) = lists.spares.pop() else {
        return;
    };
    // SAFETY: d and the spare are distinct frames the caller holds.
    if unsafe { store.copy(d, &mut spare) } {
        lists
            .marked
            .push((lists.out.len(), marks.union(Marks::DUPLICATE)));
        lists.out.push(spare);
        counts.fi_duplicated += 1;
    } else {
        lists.spares.push(spare);
    }
}

/// Stage 6: the TX tap over the frames going out on `out`, each with what fault injection
/// did to it (`marked`, sorted by index).
#[inline]
fn tx_tap_stage<S: FrameStore>(
    cx: &BatchContext<'_>,
    store: &S,
    out: usize,
    frames: &[S::Desc],
    marked: &[(usize, Marks)],
    sampler: &mut Sampler,
) {
    let Some(q) = cx
        .queue
        .filter(|_| cx.policy.tap_tx.get(out) == Some(&true))
    else {
        return;
    };
    let mut next_marked = marked.iter().peekable();
    for (i, d) in frames.iter().enumerate() {
        let marks = match next_marked.peek() {
            Some(&&(at, m)) if at == i => {
                next_marked.next();
                m
            }
            _ => Marks::NONE,
        };
        // SAFETY: frames going out are held by the caller until it hands them to the ring.
        let frame = unsafe { store.frame(d) };
        if let Some(copy) = tap_rule(cx.policy, sampler, frame) {
            let tag = Tag {
                ifindex: out as u8,
                dir: Direction::Tx,
                ts_ns: cx.ts,
                marks,
            };
            q.push_to(0, copy, frame.len() as u32, tag);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ixdp::policy::{FaultConfig, MAX_IFS};
    use crate::pqueue::{queue_path, Batch, Consumer, Layout};
    use crate::wire::Mac;

    const E0: Mac = Mac([0x02, 0, 0, 0, 0, 0xe0]);
    const E1: Mac = Mac([0x02, 0, 0, 0, 0, 0xe1]);
    const BAD: Mac = Mac([0x02, 0, 0, 0, 0, 0xbd]);

    /// A frame from `src` to E1 with `len` bytes.
    fn frame(src: Mac, len: usize) -> Vec<u8> {
        crate::wire::frame::test_frame(E1, src, &[], 0x88b5, len)
    }

    fn always(drop_p: u32, flip_p: u32, dup_p: u32) -> FaultConfig {
        FaultConfig {
            enabled: true,
            drop_p,
            flip_p,
            dup_p,
        }
    }

    const BRIDGE: Route = Route::Bridge {
        out: 1,
        out_down: false,
    };
    const DOWN: Route = Route::Bridge {
        out: 1,
        out_down: true,
    };

    #[test]
    fn mirror_mode_never_forwards() {
        let mut p = Policy::default();
        p.fault[0] = always(0, 100_000, 100_000);
        let mut rng = FaultRng::new(1);
        let v = verdict(&p, 0, Route::Mirror, &frame(E0, 64), &mut rng);
        assert_eq!(v, Verdict::Mirror);
    }

    #[test]
    fn a_down_output_counts_noif_before_any_other_stage() {
        let p = Policy {
            drop_hash: [E0].into_iter().collect(),
            ..Policy::default()
        };
        let v = verdict(&p, 0, DOWN, &frame(E0, 64), &mut FaultRng::new(2));
        assert_eq!(v, Verdict::NoIf);
    }

    #[test]
    fn the_drop_machash_comes_before_fault_injection() {
        let mut p = Policy {
            drop_hash: [BAD].into_iter().collect(),
            ..Policy::default()
        };
        p.fault[0] = always(0, 100_000, 100_000);
        let mut rng = FaultRng::new(3);
        let before = rng.clone().next_u64();
        assert_eq!(
            verdict(&p, 0, BRIDGE, &frame(BAD, 64), &mut rng),
            Verdict::Dropped
        );
        assert_eq!(rng.next_u64(), before, "no fault decision was drawn");
        assert!(matches!(
            verdict(&p, 0, BRIDGE, &frame(E0, 64), &mut rng),
            Verdict::Forward {
                flip: Some(_),
                dup: true
            }
        ));
    }

    #[test]
    fn faults_apply_to_the_receiving_interface_and_flip_only_past_byte_14() {
        let mut p = Policy::default();
        p.fault[1] = always(0, 100_000, 0);
        let mut rng = FaultRng::new(4);
        let plain = Verdict::Forward {
            flip: None,
            dup: false,
        };
        assert_eq!(verdict(&p, 0, BRIDGE, &frame(E0, 64), &mut rng), plain);
        assert_eq!(
            verdict(&p, 1, BRIDGE, &frame(E0, 14), &mut rng),
            plain,
            "nothing to flip in a bare header"
        );
        for _ in 0..1000 {
            let Verdict::Forward {
                flip: Some(bit), ..
            } = verdict(&p, 1, BRIDGE, &frame(E0, 15), &mut rng)
            else {
                panic!("a 15-byte frame has 8 bits that may flip");
            };
            assert!(bit < 8, "{bit}");
        }
        p.fault[1] = always(100_000, 100_000, 100_000);
        assert_eq!(
            verdict(&p, 1, BRIDGE, &frame(E0, 64), &mut rng),
            Verdict::FaultDropped
        );
    }

    /// A uniquely named packet queue, removed when the test ends.
    struct TestQueue(String);

    impl TestQueue {
        fn new(test: &str) -> (TestQueue, Producer, Consumer) {
            let name = format!("fastpath.{test}.{}", std::process::id());
            let layout = Layout {
                slots: 256,
                slot_size: 128,
                ..Layout::default()
            };
            let producer = Producer::open(&name, layout).unwrap();
            let consumer = Consumer::attach(&name).unwrap();
            (TestQueue(name), producer, consumer)
        }
    }

    impl Drop for TestQueue {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(queue_path(&self.0));
        }
    }

    /// (port, direction, source MAC) of everything the taps wrote.
    fn tapped(c: &mut Consumer) -> Vec<(u8, Direction, Mac)> {
        let mut b = Batch::new();
        c.try_pop(&mut b, 1000).unwrap();
        b.iter()
            .map(|p| (p.ifindex, p.dir, Mac::try_from(&p.data[6..12]).unwrap()))
            .collect()
    }

    /// The outcome of one batch: the counters and the frames in each lane.
    struct Outcome {
        counts: Counters,
        recycle: Vec<usize>,
        out: Vec<usize>,
        spares: Vec<usize>,
        rx: u64,
    }

    /// Runs `frames` (received on port 0) as one batch, with `spares` spare frames after them.
    fn batch(
        policy: &Policy,
        route: Route,
        queue: Option<&Producer>,
        frames: Vec<Vec<u8>>,
        spares: usize,
        room: usize,
    ) -> (Outcome, MemoryFrames) {
        let mut state = WorkerState::new(FaultRng::new(5));
        batch_in(&mut state, policy, route, queue, frames, spares, room)
    }

    /// [`batch`] with the worker's state carried over from earlier batches.
    fn batch_in(
        state: &mut WorkerState,
        policy: &Policy,
        route: Route,
        queue: Option<&Producer>,
        frames: Vec<Vec<u8>>,
        spares: usize,
        room: usize,
    ) -> (Outcome, MemoryFrames) {
        let n = frames.len();
        let mut store = MemoryFrames(frames);
        store.0.extend((0..spares).map(|_| Vec::new()));
        let mut rx: Vec<usize> = (0..n).collect();
        let mut spare_lane: Vec<usize> = (n..n + spares).collect();
        let (mut recycle, mut out, mut marked) = (Vec::new(), Vec::new(), Vec::new());
        let stats = QueueStats::new();
        let cx = BatchContext {
            policy,
            port: 0,
            route,
            queue,
            ts: 7,
            room,
        };
        let lists = FrameLists {
            recycle: &mut recycle,
            out: &mut out,
            spares: &mut spare_lane,
            marked: &mut marked,
        };
        let counts = run_batch(&cx, &mut store, &mut rx, &stats, state, lists);
        let outcome = Outcome {
            counts,
            recycle,
            out,
            spares: spare_lane,
            rx: stats.counters().rx,
        };
        (outcome, store)
    }

    fn tapping_both_ways() -> Policy {
        let mut p = Policy::default();
        p.tap_rx[0] = true;
        p.tap_tx[1] = true;
        p
    }

    #[test]
    fn a_dropped_frame_is_counted_and_rx_tapped_but_never_tx_tapped() {
        let (_q, producer, mut consumer) = TestQueue::new("drop");
        let mut p = tapping_both_ways();
        p.drop_hash = [BAD].into_iter().collect();
        let frames = vec![frame(E0, 64), frame(BAD, 64), frame(E0, 64)];
        let (o, _) = batch(&p, BRIDGE, Some(&producer), frames, 0, 64);
        assert_eq!((o.rx, o.counts.drop), (3, 1));
        assert_eq!((o.recycle, o.out), (vec![1], vec![0, 2]));
        use Direction::{Rx, Tx};
        assert_eq!(
            tapped(&mut consumer),
            vec![
                (0, Rx, E0),
                (0, Rx, BAD),
                (0, Rx, E0),
                (1, Tx, E0),
                (1, Tx, E0)
            ]
        );
    }

    #[test]
    fn a_fault_dropped_frame_is_never_tx_tapped() {
        let (_q, producer, mut consumer) = TestQueue::new("fidrop");
        let mut p = tapping_both_ways();
        p.fault[0] = always(100_000, 0, 0);
        let (o, _) = batch(&p, BRIDGE, Some(&producer), vec![frame(E0, 64)], 0, 64);
        assert_eq!((o.counts.drop, o.counts.fi_dropped), (1, 1));
        assert!(o.out.is_empty());
        assert_eq!(tapped(&mut consumer), vec![(0, Direction::Rx, E0)]);
    }

    #[test]
    fn mirror_mode_recycles_everything_after_the_rx_tap() {
        let (_q, producer, mut consumer) = TestQueue::new("mirror");
        let mut p = tapping_both_ways();
        p.fault[0] = always(0, 100_000, 100_000);
        let frames = vec![frame(E0, 64), frame(E1, 64)];
        let (o, _) = batch(&p, Route::Mirror, Some(&producer), frames, 4, 64);
        assert_eq!((o.recycle, o.out.len()), (vec![0, 1], 0));
        let received_only = Counters {
            rx_bytes: 128,
            ..Counters::default()
        };
        assert_eq!(o.counts, received_only);
        assert_eq!(o.spares.len(), 4, "no spare used");
        assert_eq!(tapped(&mut consumer).len(), 2, "RX tap only");
    }

    #[test]
    fn a_down_output_counts_noif_and_recycles() {
        let (o, _) = batch(
            &Policy::default(),
            DOWN,
            None,
            vec![frame(E0, 64); 3],
            0,
            64,
        );
        assert_eq!((o.rx, o.counts.noif), (3, 3));
        assert_eq!((o.recycle.len(), o.out.len()), (3, 0));
    }

    #[test]
    fn bytes_count_what_is_received_and_what_goes_out() {
        let mut p = Policy {
            drop_hash: [BAD].into_iter().collect(),
            ..Policy::default()
        };
        p.fault[0] = always(0, 0, 100_000);
        let frames = vec![frame(E0, 60), frame(BAD, 70), frame(E0, 80)];
        let (o, _) = batch(&p, BRIDGE, None, frames.clone(), 1, 64);
        assert_eq!(o.counts.rx_bytes, 210);
        // The first frame and its copy, the dropped one not at all, the last once (no spare).
        assert_eq!(o.counts.tx_bytes, 60 + 60 + 80);
        let (o, _) = batch(&p, DOWN, None, frames, 1, 64);
        assert_eq!((o.counts.rx_bytes, o.counts.tx_bytes), (210, 0));
    }

    #[test]
    fn a_duplicate_needs_a_spare_frame_and_a_tx_slot() {
        let mut p = Policy::default();
        p.fault[0] = always(0, 0, 100_000);
        let frames = || vec![frame(E0, 64), frame(E0, 65), frame(E0, 66)];
        // Spares (3..11, taken from the end) and room for everything: each frame, then its
        // copy.
        let (o, store) = batch(&p, BRIDGE, None, frames(), 8, 64);
        assert_eq!(o.counts.fi_duplicated, 3);
        assert_eq!(o.out, vec![0, 10, 1, 9, 2, 8]);
        assert_eq!(store.0[10], store.0[0], "the copy is the frame");
        assert_eq!(store.0[8], store.0[2]);
        // Two spares: the third frame goes once and is not counted.
        let (o, _) = batch(&p, BRIDGE, None, frames(), 2, 64);
        assert_eq!((o.counts.fi_duplicated, o.out), (2, vec![0, 4, 1, 3, 2]));
        assert!(o.spares.is_empty());
        // Room for five: the third copy has no TX slot, and its spare stays in the pool.
        let (o, _) = batch(&p, BRIDGE, None, frames(), 8, 5);
        assert_eq!(o.out, vec![0, 10, 1, 9, 2]);
        assert_eq!((o.counts.fi_duplicated, o.spares.len()), (2, 6));
    }

    #[test]
    fn flips_change_one_bit_past_the_header_and_are_tx_tapped_flipped() {
        let (_q, producer, mut consumer) = TestQueue::new("flip");
        let mut p = tapping_both_ways();
        p.fault[0] = always(0, 100_000, 0);
        let original = vec![frame(E0, 14), frame(E0, 64)];
        let (o, store) = batch(&p, BRIDGE, Some(&producer), original.clone(), 0, 64);
        assert_eq!(o.counts.fi_flipped, 1, "the bare header is not flipped");
        assert_eq!(store.0[0], original[0]);
        let diff: u32 = (0..64)
            .map(|i| (store.0[1][i] ^ original[1][i]).count_ones())
            .sum();
        assert_eq!(diff, 1);
        assert_eq!(store.0[1][..14], original[1][..14]);
        let mut b = Batch::new();
        consumer.try_pop(&mut b, 10).unwrap();
        let tx: Vec<&[u8]> = b
            .iter()
            .filter(|t| t.dir == Direction::Tx)
            .map(|t| t.data)
            .collect();
        assert_eq!(tx.len(), 2);
        assert_eq!(tx[1], &store.0[1][..], "the TX tap sees what is sent");
    }

    #[test]
    fn the_tap_machash_selects_for_both_taps() {
        let (_q, producer, mut consumer) = TestQueue::new("taphash");
        let mut p = tapping_both_ways();
        p.tap_hash = [BAD].into_iter().collect();
        let frames = vec![frame(E0, 64), frame(BAD, 64)];
        let (o, _) = batch(&p, BRIDGE, Some(&producer), frames, 0, 64);
        assert_eq!(
            o.out.len(),
            2,
            "the tap machash selects nothing for forwarding"
        );
        assert_eq!(
            tapped(&mut consumer),
            vec![(0, Direction::Rx, BAD), (1, Direction::Tx, BAD)]
        );
    }

    /// Frames of the tap-selection tests: UDP to port `dport`, from `src`, maybe tagged.
    fn udp(src: Mac, tags: &[crate::lab::frames::Tag], dport: u16, len: usize) -> Vec<u8> {
        let a = std::net::SocketAddrV4::new([10, 0, 0, 1].into(), 999);
        let b = std::net::SocketAddrV4::new([10, 0, 0, 2].into(), dport);
        crate::lab::frames::udp4(E1, src, tags, a, b, &vec![0xab; len]).unwrap()
    }

    fn filtered(expr: &str) -> Policy {
        Policy {
            tap_filter: Some(crate::ixdp::select::TapFilter::compile(expr).unwrap()),
            ..tapping_both_ways()
        }
    }

    #[test]
    fn the_filter_narrows_both_tap_points_and_never_forwarding() {
        let (_q, producer, mut consumer) = TestQueue::new("filter");
        let p = filtered("udp port 1234");
        let frames = vec![udp(E0, &[], 1234, 10), udp(E0, &[], 53, 10), frame(E0, 64)];
        let (o, _) = batch(&p, BRIDGE, Some(&producer), frames.clone(), 0, 64);
        assert_eq!(o.out, vec![0, 1, 2], "every frame forwarded");
        let mut b = Batch::new();
        consumer.try_pop(&mut b, 10).unwrap();
        let got: Vec<(Direction, &[u8])> = b.iter().map(|t| (t.dir, t.data)).collect();
        assert_eq!(
            got,
            vec![
                (Direction::Rx, &frames[0][..]),
                (Direction::Tx, &frames[0][..])
            ]
        );
        // The machash comes first: a listed MAC is also needed.
        let p = Policy {
            tap_hash: [BAD].into_iter().collect(),
            ..filtered("udp port 1234")
        };
        let frames = vec![
            udp(E0, &[], 1234, 10),
            udp(BAD, &[], 1234, 10),
            udp(BAD, &[], 5, 10),
        ];
        batch(&p, BRIDGE, Some(&producer), frames, 0, 64);
        assert_eq!(
            tapped(&mut consumer),
            vec![(0, Direction::Rx, BAD), (1, Direction::Tx, BAD)]
        );
    }

    #[test]
    fn the_snap_length_cuts_the_copy_and_keeps_the_original_length() {
        let (_q, producer, mut consumer) = TestQueue::new("snaplen");
        let p = Policy {
            snaplen: crate::ixdp::select::SnapLen::new(40).unwrap(),
            ..tapping_both_ways()
        };
        let frames = vec![frame(E0, 100), frame(E0, 30)];
        let (o, store) = batch(&p, BRIDGE, Some(&producer), frames.clone(), 0, 64);
        assert_eq!(store.0[0].len(), 100, "the forwarded frame is whole");
        assert_eq!(o.out.len(), 2);
        let mut b = Batch::new();
        consumer.try_pop(&mut b, 10).unwrap();
        let got: Vec<(usize, u32)> = b.iter().map(|t| (t.data.len(), t.orig_len)).collect();
        assert_eq!(got, vec![(40, 100), (30, 30), (40, 100), (30, 30)]);
        assert!(b
            .iter()
            .all(|t| frames.iter().any(|f| f.starts_with(t.data))));
    }

    #[test]
    fn sampling_counts_only_frames_that_reach_a_tap_point_and_pass_the_filter() {
        let (_q, producer, mut consumer) = TestQueue::new("sample");
        let mut state = WorkerState::new(FaultRng::new(9));
        let sample = crate::ixdp::select::Sample::new(3).unwrap();
        // No tap on: nothing counts, so the sampler does not move.
        let off = Policy {
            sample,
            ..Policy::default()
        };
        batch_in(
            &mut state,
            &off,
            BRIDGE,
            Some(&producer),
            vec![frame(E0, 64); 5],
            0,
            64,
        );
        assert_eq!(state.sampler, Default::default());
        // RX tap only, a filter: the frames it refuses do not count either.
        let mut p = Policy {
            sample,
            ..filtered("udp")
        };
        p.tap_tx = [false; MAX_IFS];
        let frames: Vec<Vec<u8>> = (0..30u16)
            .map(|i| {
                if i % 2 == 0 {
                    udp(E0, &[], i, 4)
                } else {
                    frame(E0, 64)
                }
            })
            .collect();
        for chunk in frames.chunks(7) {
            batch_in(
                &mut state,
                &p,
                BRIDGE,
                Some(&producer),
                chunk.to_vec(),
                0,
                64,
            );
        }
        let mut b = Batch::new();
        consumer.try_pop(&mut b, 100).unwrap();
        let ports: Vec<u16> = b
            .iter()
            .map(|t| u16::from_be_bytes([t.data[36], t.data[37]]))
            .collect();
        assert_eq!(
            ports,
            vec![0, 6, 12, 18, 24],
            "UDP frames 1, 4, 7, 10, 13 of 15, across batches"
        );
    }
}
