//! The per-frame fast path of a worker, as small stages in the order of docs/data-path.md:
//!
//! 1. rx counters, source-MAC and Ethertype statistics ([`QueueStats::on_rx`]);
//! 2. RX tap into the packet queues (tap flag, TAP machash, filter, sampling, snap length,
//!    then each queue's own filter, snap length and lane: [`fan_out`]);
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
//!
//! A frame is a chain of one or more buffers (multi-buffer AF_XDP, docs/data-path.md, "Long
//! frames"): the statistics and the machashes read its first buffer, which holds every
//! header; the tap filter reads the whole frame through [`FrameBytes`]; a flip lands in
//! whichever buffer holds the chosen bit; a duplicate copies every buffer; the frame goes out
//! and is tapped with all its buffers.

use super::chain::{read_parts, FrameBytes};
use super::fanout::{fan_out, flow_if_laned};
use super::fault::{self, FaultRng};
use super::policy::Policy;
use super::select::Sampler;
use super::stats::{Counters, QueueStats};
use crate::pqueue::{Direction, Marks, Tag};

/// Where frames received on one port go; fixed for a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Mirror (SPAN) mode: receive and tap only.
    Mirror,
    /// Bridge mode: out on port `out`.
    Bridge {
        /// The output port.
        out: usize,
        /// The output's interface refused the last transmit kick (down or gone).
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
        /// Send a copy too (when spare frames and TX slots are free).
        dup: bool,
    },
}

/// Stages 3–5 for one frame received on `port`: forward decision, drop machash, fault
/// injection. Reads the frame's headers (its first buffer) and its length; draws from `rng`
/// only when fault injection selects the frame.
#[inline]
pub fn verdict<F: FrameBytes + ?Sized>(
    policy: &Policy,
    port: usize,
    route: Route,
    frame: &F,
    rng: &mut FaultRng,
) -> Verdict {
    let Route::Bridge { out_down, .. } = route else {
        return Verdict::Mirror;
    };
    if out_down {
        return Verdict::NoIf;
    }
    let head = frame.head();
    if policy.drop_selects(head) {
        return Verdict::Dropped;
    }
    if !policy.fault_selects(port, head) {
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
            .then(|| fault::flip_position(frame.wire_len(), rng))
            .flatten(),
        dup: decision.dup,
    }
}

/// Buffers in the worker's hands, wherever they live. A frame is a run of buffers, each but
/// the last followed by another of the same frame ([`FrameStore::continues`]).
pub trait FrameStore {
    /// Names one buffer.
    type Desc: Copy;

    /// Whether buffer `d` is followed by another buffer of its frame (`XDP_PKT_CONTD`).
    fn continues(&self, d: &Self::Desc) -> bool;

    /// The contents of buffer `d`.
    ///
    /// # Safety
    /// `d` must be a buffer of this store that the caller holds (in no ring).
    unsafe fn buffer(&self, d: &Self::Desc) -> &[u8];

    /// Flips the bits `mask` of byte `at` of buffer `d`; nothing happens past its end.
    ///
    /// # Safety
    /// As for [`FrameStore::buffer`].
    unsafe fn flip(&mut self, d: &mut Self::Desc, at: usize, mask: u8);

    /// Copies buffer `from` (its bytes, and whether its frame continues) into buffer `to`;
    /// false when it does not fit.
    ///
    /// # Safety
    /// As for [`FrameStore::buffer`], for both buffers, which must differ.
    unsafe fn copy(&mut self, from: &Self::Desc, to: &mut Self::Desc) -> bool;
}

/// The number of buffers of the frame that starts `descs`: up to the first buffer that does
/// not continue (all of `descs` if none ends it).
#[inline(always)]
fn chain_len<S: FrameStore>(store: &S, descs: &[S::Desc]) -> usize {
    descs
        .iter()
        .position(|d| !store.continues(d))
        .map_or(descs.len(), |i| i + 1)
}

/// One frame of a batch as the stages read it: its buffers in the store, its first buffer and
/// its length.
pub struct Frame<'a, S: FrameStore> {
    store: &'a S,
    descs: &'a [S::Desc],
    head: &'a [u8],
    len: usize,
}

impl<'a, S: FrameStore> Frame<'a, S> {
    /// The frame whose buffers are `descs` (at least one).
    ///
    /// # Safety
    /// The caller holds every buffer of `descs` (see [`FrameStore::buffer`]) while the frame
    /// lives.
    #[inline(always)]
    unsafe fn new(store: &'a S, descs: &'a [S::Desc]) -> Frame<'a, S> {
        // SAFETY: the caller holds the buffers.
        let head = unsafe { store.buffer(&descs[0]) };
        let len = if descs.len() == 1 {
            head.len()
        } else {
            // SAFETY: as above.
            descs.iter().map(|d| unsafe { store.buffer(d) }.len()).sum()
        };
        Frame {
            store,
            descs,
            head,
            len,
        }
    }

    /// The frame's buffers, in order.
    #[inline(always)]
    fn parts(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let store = self.store;
        // SAFETY: the frame's creator holds its buffers while it lives (Frame::new).
        self.descs.iter().map(move |d| unsafe { store.buffer(d) })
    }
}

impl<S: FrameStore> FrameBytes for Frame<'_, S> {
    #[inline(always)]
    fn wire_len(&self) -> usize {
        self.len
    }
    #[inline(always)]
    fn head(&self) -> &[u8] {
        self.head
    }
    #[inline]
    fn read_at(&self, at: usize, out: &mut [u8]) -> bool {
        read_parts(self.parts(), at, out)
    }
}

/// Buffers in plain memory, buffer `i` being `buffers[i]`: for the unit tests and the
/// benchmark of the stages (and anything else that runs them outside a UMEM).
#[derive(Clone, Debug, Default)]
pub struct MemoryFrames {
    /// The bytes of each buffer.
    pub buffers: Vec<Vec<u8>>,
    /// Buffer `i` is followed by another of its frame when `continued[i]` is true (missing
    /// entries are false).
    pub continued: Vec<bool>,
}

impl MemoryFrames {
    /// Frames of one buffer each.
    pub fn new(frames: Vec<Vec<u8>>) -> MemoryFrames {
        MemoryFrames {
            buffers: frames,
            continued: Vec::new(),
        }
    }

    /// Appends `frame` cut into buffers of at most `size` bytes and returns their indices.
    pub fn push_chain(&mut self, frame: &[u8], size: usize) -> Vec<usize> {
        self.continued.resize(self.buffers.len(), false);
        let first = self.buffers.len();
        let parts: Vec<&[u8]> = frame.chunks(size.max(1)).collect();
        for (i, part) in parts.iter().enumerate() {
            self.buffers.push(part.to_vec());
            self.continued.push(i + 1 < parts.len());
        }
        (first..self.buffers.len()).collect()
    }

    /// The frame that starts at buffer `first`, its buffers joined.
    pub fn frame_at(&self, first: usize) -> Vec<u8> {
        let n = chain_len(self, &(first..self.buffers.len()).collect::<Vec<_>>());
        self.buffers[first..first + n].concat()
    }
}

impl FrameStore for MemoryFrames {
    type Desc = usize;

    fn continues(&self, d: &usize) -> bool {
        self.continued.get(*d) == Some(&true)
    }

    unsafe fn buffer(&self, d: &usize) -> &[u8] {
        &self.buffers[*d]
    }

    unsafe fn flip(&mut self, d: &mut usize, at: usize, mask: u8) {
        if let Some(b) = self.buffers[*d].get_mut(at) {
            *b ^= mask;
        }
    }

    unsafe fn copy(&mut self, from: &usize, to: &mut usize) -> bool {
        // Reuses the target's allocation once it is large enough.
        let src = std::mem::take(&mut self.buffers[*from]);
        self.buffers[*to].clone_from(&src);
        self.buffers[*from] = src;
        let more = self.continues(from);
        if self.continued.len() <= *to {
            self.continued.resize(*to + 1, false);
        }
        self.continued[*to] = more;
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
    /// Time stamp of the batch for the taps.
    pub ts: u64,
    /// Free slots (descriptors) of the output TX ring: `out` never holds more.
    pub room: usize,
}

/// A frame of the output list that fault injection changed, for the TX tap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marked {
    /// The index in the output list of the frame's first buffer.
    pub at: usize,
    /// What was done to it (recorded in its queue slots).
    pub marks: Marks,
    /// The flow hash of the frame as it was received, when a queue has lanes: its TX copy goes
    /// to the lane of its flow even when the flip hit an address or a port.
    pub flow: Option<u64>,
}

/// The buffer lists a batch sorts its frames into.
pub struct FrameLists<'a, D> {
    /// Back to the receiving port's fill ring (mirror mode, output down, dropped).
    pub recycle: &'a mut Vec<D>,
    /// To the output TX ring, duplicates included, every frame with all its buffers.
    pub out: &'a mut Vec<D>,
    /// The spare pool the duplicates are taken from.
    pub spares: &'a mut Vec<D>,
    /// Frames of `out` that fault injection changed, by the index in `out` of their first
    /// buffer, in order: what the TX tap records in their queue slots (empty while nothing is
    /// flipped or duplicated).
    pub marked: &'a mut Vec<Marked>,
}

/// Runs every stage over the frames whose buffers are `rx` (complete frames only), received on
/// `cx.port`, and returns the batch's counters (all but `rx`, which `stats.on_rx` counted per
/// frame) for the caller to add to the receiving port's statistics, except `tx` and
/// `tx_bytes`: the frames and bytes in `lists.out`, which belong to the output port once the
/// caller has put them in its TX ring.
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
    let rx_tap = !cx.policy.queues.is_empty() && cx.policy.tap_rx.get(cx.port) == Some(&true);
    let mut at = 0;
    while at < rx.len() {
        let n = chain_len(store, &rx[at..]);
        let chain = &mut rx[at..at + n];
        at += n;
        // SAFETY: the caller holds every buffer of `rx` (see FrameStore).
        let frame = unsafe { Frame::new(store, chain) };
        let len = frame.len as u64;
        counts.rx_bytes += len;
        receive_stage(cx, rx_tap, stats, &mut state.sampler, &frame);
        match verdict(cx.policy, cx.port, cx.route, &frame, &mut state.rng) {
            Verdict::Forward { flip, dup } => {
                let sent = forward_stage(cx, store, chain, flip, dup, &mut counts, &mut lists);
                counts.tx += sent;
                counts.tx_bytes += len * sent;
            }
            v => {
                tally(&mut counts, v);
                lists.recycle.extend_from_slice(chain);
            }
        }
    }
    if let Route::Bridge { out, .. } = cx.route {
        tx_tap_stage(cx, store, out, lists.out, lists.marked, &mut state.sampler);
    }
    counts
}

/// The tap rule past a tap point's flag, in order: TAP machash, filter, sampling. Returns how
/// many bytes of the frame to copy (cut to the snap length), or None. The filter runs only for
/// frames the machash selected, and the sampler counts only frames that passed both.
#[inline(always)]
fn tap_rule<F: FrameBytes + ?Sized>(
    policy: &Policy,
    sampler: &mut Sampler,
    frame: &F,
) -> Option<usize> {
    let takes = policy.tap_selects(frame.head())
        && policy.tap_filter_takes(frame)
        && sampler.take(policy.sample);
    takes.then(|| policy.snaplen.cap(frame.wire_len()))
}

/// A tap point past its flag: the tap rule, then the copy (`parts`, the frame's buffers) into
/// every queue that takes it, tagged `tag`.
#[inline(always)]
fn tap_point<'p, F, P>(
    policy: &Policy,
    sampler: &mut Sampler,
    frame: &F,
    parts: impl Fn() -> P,
    tag: Tag,
    flow: Option<u64>,
) where
    F: FrameBytes + ?Sized,
    P: Iterator<Item = &'p [u8]>,
{
    if let Some(cap) = tap_rule(policy, sampler, frame) {
        fan_out(&policy.queues, frame, parts, cap, tag, flow);
    }
}

/// Stages 1 and 2: statistics, then the RX tap.
#[inline(always)]
fn receive_stage<S: FrameStore>(
    cx: &BatchContext<'_>,
    rx_tap: bool,
    stats: &QueueStats,
    sampler: &mut Sampler,
    frame: &Frame<'_, S>,
) {
    stats.on_rx(frame.head);
    if !rx_tap {
        return;
    }
    let tag = Tag {
        ifindex: cx.port as u8,
        dir: Direction::Rx,
        ts_ns: cx.ts,
        marks: Marks::NONE,
    };
    tap_point(cx.policy, sampler, frame, || frame.parts(), tag, None);
}

/// Stages 2 and 6 for a frame that the kernel path forwarded unchanged from `port` to `out`
/// (bridge mode), over its copy `frame` (the kernel tap, ktap.rs): the RX tap on `port` and the
/// TX tap on `out`, by the same rule as for a worker's frames.
#[inline]
pub fn tap_forwarded(
    policy: &Policy,
    sampler: &mut Sampler,
    port: usize,
    out: usize,
    frame: &[u8],
    ts_ns: u64,
) {
    if policy.queues.is_empty() {
        return;
    }
    let points = [
        (policy.tap_rx.get(port), port, Direction::Rx),
        (policy.tap_tx.get(out), out, Direction::Tx),
    ];
    for (on, ifindex, dir) in points {
        if on != Some(&true) {
            continue;
        }
        let tag = Tag {
            ifindex: ifindex as u8,
            dir,
            ts_ns,
            marks: Marks::NONE,
        };
        tap_point(policy, sampler, frame, || std::iter::once(frame), tag, None);
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

/// Flips bit `bit` ([`fault::flip_position`] numbering) of the frame whose buffers are
/// `chain`, in whichever buffer holds it.
///
/// # Safety
/// The caller holds every buffer of `chain`.
#[inline(always)]
unsafe fn flip_in_chain<S: FrameStore>(store: &mut S, chain: &mut [S::Desc], bit: usize) {
    let (mut at, mask) = fault::flip_target(bit);
    for d in chain {
        // SAFETY: the caller holds d.
        let len = unsafe { store.buffer(d) }.len();
        if at < len {
            // SAFETY: as above; no other reference to the buffer is alive.
            unsafe { store.flip(d, at, mask) };
            return;
        }
        at -= len;
    }
}

/// Applies a forward verdict: the flip, the frame, and its duplicate when spare buffers and TX
/// slots for all its buffers are free (else the frame goes once and is not counted as
/// duplicated). Returns the frames queued: 1, or 2 with the duplicate.
#[inline(always)]
fn forward_stage<S: FrameStore>(
    cx: &BatchContext<'_>,
    store: &mut S,
    chain: &mut [S::Desc],
    flip: Option<usize>,
    dup: bool,
    counts: &mut Counters,
    lists: &mut FrameLists<'_, S::Desc>,
) -> u64 {
    let (marks, flow) = if let Some(bit) = flip {
        // SAFETY: the caller holds the chain (see run_batch).
        let flow = flow_if_laned(&cx.policy.queues, unsafe { store.buffer(&chain[0]) });
        // SAFETY: as above.
        unsafe { flip_in_chain(store, chain, bit) };
        counts.fi_flipped += 1;
        lists.marked.push(Marked {
            at: lists.out.len(),
            marks: Marks::BITFLIP,
            flow,
        });
        (Marks::BITFLIP, flow)
    } else {
        (Marks::NONE, None)
    };
    lists.out.extend_from_slice(chain);
    let n = chain.len();
    if !dup || lists.out.len() + n > cx.room || lists.spares.len() < n {
        return 1;
    }
    let first = lists.out.len();
    for d in chain.iter() {
        let Some(mut spare) = lists.spares.pop() else {
            break;
        };
        // SAFETY: d and the spare are distinct buffers the caller holds.
        if !unsafe { store.copy(d, &mut spare) } {
            lists.spares.push(spare);
            break;
        }
        lists.out.push(spare);
    }
    if lists.out.len() - first < n {
        // A buffer did not fit: the partial copy goes back to the pool.
        lists.spares.extend(lists.out.drain(first..));
        return 1;
    }
    lists.marked.push(Marked {
        at: first,
        marks: marks.union(Marks::DUPLICATE),
        flow,
    });
    counts.fi_duplicated += 1;
    2
}

/// Stage 6: the TX tap over the frames going out on `out`, each with what fault injection
/// did to it (`marked`, sorted by the index of the frame's first buffer).
#[inline]
fn tx_tap_stage<S: FrameStore>(
    cx: &BatchContext<'_>,
    store: &S,
    out: usize,
    frames: &[S::Desc],
    marked: &[Marked],
    sampler: &mut Sampler,
) {
    if cx.policy.queues.is_empty() || cx.policy.tap_tx.get(out) != Some(&true) {
        return;
    }
    let mut next_marked = marked.iter().peekable();
    let mut at = 0;
    while at < frames.len() {
        let n = chain_len(store, &frames[at..]);
        let (marks, flow) = match next_marked.peek() {
            Some(m) if m.at == at => {
                let m = **m;
                next_marked.next();
                (m.marks, m.flow)
            }
            _ => (Marks::NONE, None),
        };
        // SAFETY: frames going out are held by the caller until it hands them to the ring.
        let frame = unsafe { Frame::new(store, &frames[at..at + n]) };
        let tag = Tag {
            ifindex: out as u8,
            dir: Direction::Tx,
            ts_ns: cx.ts,
            marks,
        };
        tap_point(cx.policy, sampler, &frame, || frame.parts(), tag, flow);
        at += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ixdp::fanout::TapQueue;
    use crate::ixdp::policy::{FaultConfig, MAX_IFS};
    use crate::pqueue::{queue_path, Batch, Consumer, Layout, Producer};
    use crate::wire::Mac;
    use std::sync::Arc;

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
        fn new(test: &str) -> (TestQueue, Arc<Producer>, Consumer) {
            TestQueue::with_slots(test, 128)
        }

        fn with_slots(test: &str, slot_size: u32) -> (TestQueue, Arc<Producer>, Consumer) {
            let name = format!("fastpath.{test}.{}", std::process::id());
            let layout = Layout {
                slots: 256,
                slot_size,
                ..Layout::default()
            };
            let producer = Arc::new(Producer::open(&name, layout).unwrap());
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
        queue: Option<&Arc<Producer>>,
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
        queue: Option<&Arc<Producer>>,
        frames: Vec<Vec<u8>>,
        spares: usize,
        room: usize,
    ) -> (Outcome, MemoryFrames) {
        let rx: Vec<usize> = (0..frames.len()).collect();
        let store = MemoryFrames::new(frames);
        run_store(state, policy, route, queue, store, rx, spares, room)
    }

    /// Runs `frames` cut into buffers of `size` bytes (received on port 0) as one batch, with
    /// `spares` spare buffers after them.
    fn chained(
        policy: &Policy,
        queue: Option<&Arc<Producer>>,
        frames: &[Vec<u8>],
        size: usize,
        spares: usize,
        room: usize,
    ) -> (Outcome, MemoryFrames) {
        let mut store = MemoryFrames::default();
        let rx: Vec<usize> = frames
            .iter()
            .flat_map(|f| store.push_chain(f, size))
            .collect();
        let mut state = WorkerState::new(FaultRng::new(6));
        run_store(&mut state, policy, BRIDGE, queue, store, rx, spares, room)
    }

    /// Runs the buffers `rx` of `store` as one batch, with `spares` spare buffers added.
    #[allow(clippy::too_many_arguments)]
    fn run_store(
        state: &mut WorkerState,
        policy: &Policy,
        route: Route,
        queue: Option<&Arc<Producer>>,
        mut store: MemoryFrames,
        mut rx: Vec<usize>,
        spares: usize,
        room: usize,
    ) -> (Outcome, MemoryFrames) {
        let n = store.buffers.len();
        store.buffers.extend((0..spares).map(|_| Vec::new()));
        let mut spare_lane: Vec<usize> = (n..n + spares).collect();
        let (mut recycle, mut out, mut marked) = (Vec::new(), Vec::new(), Vec::new());
        let stats = QueueStats::new();
        let mut policy = policy.clone();
        if let Some(q) = queue {
            policy.queues = vec![TapQueue::new(q.clone())];
        }
        let cx = BatchContext {
            policy: &policy,
            port: 0,
            route,
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
        assert_eq!(store.buffers[10], store.buffers[0], "the copy is the frame");
        assert_eq!(store.buffers[8], store.buffers[2]);
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
        assert_eq!(store.buffers[0], original[0]);
        let diff: u32 = (0..64)
            .map(|i| (store.buffers[1][i] ^ original[1][i]).count_ones())
            .sum();
        assert_eq!(diff, 1);
        assert_eq!(store.buffers[1][..14], original[1][..14]);
        let mut b = Batch::new();
        consumer.try_pop(&mut b, 10).unwrap();
        let tx: Vec<&[u8]> = b
            .iter()
            .filter(|t| t.dir == Direction::Tx)
            .map(|t| t.data)
            .collect();
        assert_eq!(tx.len(), 2);
        assert_eq!(tx[1], &store.buffers[1][..], "the TX tap sees what is sent");
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
    fn the_kernel_taps_copies_are_chosen_as_a_workers_are() {
        let frames = vec![
            udp(E0, &[], 1234, 10),
            udp(BAD, &[], 1234, 10),
            udp(BAD, &[], 5, 10),
            frame(BAD, 64),
        ];
        let p = Policy {
            tap_hash: [BAD].into_iter().collect(),
            ..filtered("udp port 1234")
        };
        let (_w, producer, mut worker_side) = TestQueue::new("ktap-w");
        batch(&p, BRIDGE, Some(&producer), frames.clone(), 0, 64);
        let expect = tapped(&mut worker_side);
        assert_eq!(
            expect,
            vec![(0, Direction::Rx, BAD), (1, Direction::Tx, BAD)]
        );
        let (_k, producer, mut kernel_side) = TestQueue::new("ktap-k");
        let kp = Policy {
            queues: vec![TapQueue::new(producer)],
            ..p
        };
        let mut sampler = Sampler::default();
        for f in &frames {
            tap_forwarded(&kp, &mut sampler, 0, 1, f, 77);
        }
        assert_eq!(tapped(&mut kernel_side), expect);
        let untapped = Policy {
            tap_rx: [false; MAX_IFS],
            tap_tx: [false; MAX_IFS],
            ..kp
        };
        for f in &frames {
            tap_forwarded(&untapped, &mut sampler, 0, 1, f, 77);
        }
        assert!(tapped(&mut kernel_side).is_empty(), "no tap point is on");
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
        assert_eq!(store.buffers[0].len(), 100, "the forwarded frame is whole");
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

    /// Buffer size of the chain tests: what a 2 KiB UMEM frame holds.
    const BUF: usize = 1792;

    fn jumbo(src: Mac, len: usize) -> Vec<u8> {
        let mut f = frame(src, len);
        for (i, b) in f.iter_mut().enumerate().skip(20) {
            *b = (i % 251) as u8;
        }
        f
    }

    #[test]
    fn long_frames_go_out_with_all_their_buffers_and_count_once() {
        let frames = vec![jumbo(E0, 9000), frame(E0, 64), jumbo(E0, 1793)];
        let (o, store) = chained(&Policy::default(), None, &frames, BUF, 0, 64);
        assert_eq!(
            o.out,
            (0..9).collect::<Vec<_>>(),
            "6 + 1 + 2 buffers, in order"
        );
        assert_eq!((o.rx, o.counts.tx), (3, 3));
        assert_eq!(o.counts.rx_bytes, 9000 + 64 + 1793);
        assert_eq!(o.counts.tx_bytes, 9000 + 64 + 1793);
        assert_eq!(store.frame_at(0), frames[0]);
        assert_eq!(store.frame_at(7), frames[2]);
        // Dropped: every buffer back to the fill ring.
        let p = Policy {
            drop_hash: [E0].into_iter().collect(),
            ..Policy::default()
        };
        let (o, _) = chained(&p, None, &frames, BUF, 0, 64);
        assert_eq!((o.recycle.len(), o.out.len(), o.counts.drop), (9, 0, 3));
    }

    #[test]
    fn the_taps_store_long_frames_whole_or_cut_to_the_snap_length() {
        let (_q, producer, mut consumer) = TestQueue::with_slots("tapjumbo", 9216);
        let frames = vec![jumbo(E0, 9018), frame(E0, 60)];
        chained(&tapping_both_ways(), Some(&producer), &frames, BUF, 0, 64);
        let mut b = Batch::new();
        consumer.try_pop(&mut b, 10).unwrap();
        let got: Vec<(Direction, &[u8], u32)> =
            b.iter().map(|t| (t.dir, t.data, t.orig_len)).collect();
        use Direction::{Rx, Tx};
        fn whole(d: Direction, f: &[u8]) -> (Direction, &[u8], u32) {
            (d, f, f.len() as u32)
        }
        assert_eq!(
            got,
            vec![
                whole(Rx, &frames[0]),
                whole(Rx, &frames[1]),
                whole(Tx, &frames[0]),
                whole(Tx, &frames[1])
            ]
        );
        let cut = Policy {
            snaplen: crate::ixdp::select::SnapLen::new(2000).unwrap(),
            ..tapping_both_ways()
        };
        chained(&cut, Some(&producer), &frames[..1], BUF, 0, 64);
        consumer.try_pop(&mut b, 10).unwrap();
        for t in b.iter() {
            assert_eq!((t.data, t.orig_len), (&frames[0][..2000], 9018));
        }
    }

    #[test]
    fn the_filter_reads_the_whole_of_a_long_frame() {
        let (_q, producer, mut consumer) = TestQueue::with_slots("filterjumbo", 9216);
        let mut marked = jumbo(E0, 6000);
        marked[5000] = 0xee;
        let plain = jumbo(E0, 6000);
        assert_ne!(plain[5000], 0xee);
        let frames = vec![plain, marked.clone(), frame(E0, 64)];
        let p = filtered("ether[5000] = 0xee");
        let (o, _) = chained(&p, Some(&producer), &frames, BUF, 0, 64);
        assert_eq!(o.counts.tx, 3, "the filter selects nothing for forwarding");
        let mut b = Batch::new();
        consumer.try_pop(&mut b, 10).unwrap();
        let data: Vec<&[u8]> = b.iter().map(|t| t.data).collect();
        assert_eq!(data, vec![&marked[..], &marked[..]], "RX and TX tap");
        // The length is the whole frame's too.
        chained(
            &filtered("greater 5999"),
            Some(&producer),
            &frames,
            BUF,
            0,
            64,
        );
        consumer.try_pop(&mut b, 10).unwrap();
        assert_eq!(b.iter().count(), 4, "both long frames, at both tap points");
    }

    #[test]
    fn a_flip_lands_in_any_buffer_of_a_long_frame() {
        let mut p = Policy::default();
        p.fault[0] = always(0, 100_000, 0);
        let frames: Vec<Vec<u8>> = (0..300).map(|_| jumbo(E0, 5000)).collect();
        let (o, store) = chained(&p, None, &frames, BUF, 0, 2000);
        assert_eq!(o.counts.fi_flipped, 300);
        let mut buffers_hit = [0; 3];
        for (i, f) in frames.iter().enumerate() {
            let sent = store.frame_at(3 * i);
            let diff: Vec<usize> = (0..5000).filter(|&k| sent[k] != f[k]).collect();
            assert_eq!(diff.len(), 1, "one byte of frame {i}");
            assert_eq!((sent[diff[0]] ^ f[diff[0]]).count_ones(), 1, "one bit");
            assert!(diff[0] >= 14);
            buffers_hit[diff[0] / BUF] += 1;
        }
        assert!(buffers_hit.iter().all(|&n| n > 30), "{buffers_hit:?}");
    }

    #[test]
    fn a_duplicate_copies_every_buffer_or_is_not_made() {
        let mut p = Policy::default();
        p.fault[0] = always(0, 0, 100_000);
        let frames = vec![jumbo(E0, 4000), frame(E0, 64)];
        // 3 + 1 buffers, spares 4..12 taken from the end.
        let (o, store) = chained(&p, None, &frames, BUF, 8, 64);
        assert_eq!(o.out, vec![0, 1, 2, 11, 10, 9, 3, 8]);
        assert_eq!((o.counts.fi_duplicated, o.counts.tx), (2, 4));
        assert_eq!(o.counts.tx_bytes, 2 * (4000 + 64));
        let copy: Vec<u8> = [11, 10, 9]
            .iter()
            .flat_map(|&i| store.buffers[i].clone())
            .collect();
        assert_eq!(copy, frames[0]);
        assert_eq!(
            [11, 10, 9].map(|i| store.continues(&i)),
            [true, true, false],
            "the copy is a chain of its own"
        );
        // Two spares: the long frame goes once, the short one twice.
        let (o, _) = chained(&p, None, &frames, BUF, 2, 64);
        assert_eq!((o.out, o.counts.fi_duplicated), (vec![0, 1, 2, 3, 5], 1));
        // Room for five buffers: no TX slots for the long frame's copy.
        let (o, _) = chained(&p, None, &frames, BUF, 8, 5);
        assert_eq!(o.out.len(), 5);
        assert_eq!((o.counts.fi_duplicated, o.spares.len()), (1, 7));
    }

    /// A queue of `lanes` lanes and 64-byte slots, removed when the test ends.
    fn laned(test: &str, lanes: u32) -> (TestQueue, TapQueue, Vec<Consumer>) {
        let name = format!("fastpath.{test}.{}", std::process::id());
        let layout = Layout {
            slots: 256,
            slot_size: 128,
            lanes,
        };
        let producer = Arc::new(Producer::open(&name, layout).unwrap());
        let consumers = (0..lanes)
            .map(|k| {
                let choice = if lanes > 1 {
                    crate::pqueue::LaneChoice::Lane(k)
                } else {
                    crate::pqueue::LaneChoice::Any
                };
                Consumer::attach_lane(&name, choice).unwrap()
            })
            .collect();
        (TestQueue(name), TapQueue::new(producer), consumers)
    }

    fn popped(c: &mut Consumer) -> Vec<(Direction, Vec<u8>, u32)> {
        let mut b = Batch::new();
        c.try_pop(&mut b, 1000).unwrap();
        b.iter()
            .map(|t| (t.dir, t.data.to_vec(), t.orig_len))
            .collect()
    }

    #[test]
    fn every_queue_gets_its_own_copy_of_every_tapped_frame() {
        let (_a, qa, mut ca) = laned("fan-a", 1);
        let (_b, qb, mut cb) = laned("fan-b", 1);
        let p = Policy {
            queues: vec![qa, qb],
            tap_hash: [BAD].into_iter().collect(),
            ..tapping_both_ways()
        };
        let frames = vec![frame(BAD, 64), frame(E0, 64), frame(BAD, 80)];
        let (o, _) = batch(&p, BRIDGE, None, frames.clone(), 0, 64);
        assert_eq!(o.out.len(), 3, "fan-out changes nothing for forwarding");
        let (a, b) = (popped(&mut ca[0]), popped(&mut cb[0]));
        assert_eq!(a, b, "the same frames, in the same order");
        let want: Vec<&[u8]> = vec![&frames[0], &frames[2], &frames[0], &frames[2]];
        assert_eq!(a.iter().map(|t| &t.1[..]).collect::<Vec<_>>(), want);
    }

    #[test]
    fn a_queue_narrows_the_global_selection_with_its_own_filter_and_snap_length() {
        let (_a, mut qa, mut ca) = laned("narrow-a", 1);
        let (_b, mut qb, mut cb) = laned("narrow-b", 1);
        let (_c, qc, mut cc) = laned("narrow-c", 1);
        qa.snaplen = crate::ixdp::select::SnapLen::new(20).unwrap();
        qb.filter = Some(crate::ixdp::select::TapFilter::compile("udp port 53").unwrap());
        let mut p = Policy {
            queues: vec![qa, qb, qc],
            snaplen: crate::ixdp::select::SnapLen::new(40).unwrap(),
            ..tapping_both_ways()
        };
        p.tap_tx = [false; MAX_IFS];
        let frames = vec![udp(E0, &[], 53, 30), udp(E0, &[], 54, 30), frame(E0, 64)];
        batch(&p, BRIDGE, None, frames.clone(), 0, 64);
        let a = popped(&mut ca[0]);
        let b = popped(&mut cb[0]);
        let c = popped(&mut cc[0]);
        let lens = |v: &[(Direction, Vec<u8>, u32)]| -> Vec<(usize, u32)> {
            v.iter().map(|t| (t.1.len(), t.2)).collect()
        };
        let l = |i: usize| frames[i].len() as u32;
        assert_eq!(
            lens(&a),
            vec![(20, l(0)), (20, l(1)), (20, 64)],
            "its own, shorter snap length"
        );
        assert_eq!(
            lens(&b),
            vec![(40, l(0))],
            "its filter, the global snap length"
        );
        assert_eq!(
            lens(&c),
            vec![(40, l(0)), (40, l(1)), (40, 64)],
            "the global selection"
        );
        assert_eq!(&b[0].1[..], &frames[0][..40]);
        // The global filter still comes first: a queue cannot take what the taps refuse.
        let p = Policy {
            tap_filter: Some(crate::ixdp::select::TapFilter::compile("udp port 54").unwrap()),
            ..p
        };
        batch(&p, BRIDGE, None, frames, 0, 64);
        assert!(popped(&mut cb[0]).is_empty());
        assert_eq!(popped(&mut cc[0]).len(), 1);
    }

    #[test]
    fn lanes_keep_both_directions_of_a_flow_together() {
        let (_q, q, mut lanes) = laned("lanes", 4);
        let p = Policy {
            queues: vec![q],
            ..tapping_both_ways()
        };
        let flow = |sport: u16, back: bool| {
            let a = std::net::SocketAddrV4::new([10, 0, 0, 1].into(), sport);
            let b = std::net::SocketAddrV4::new([10, 0, 0, 2].into(), 53);
            let (src, dst) = if back { (b, a) } else { (a, b) };
            crate::lab::frames::udp4(E1, E0, &[], src, dst, &sport.to_be_bytes()).unwrap()
        };
        let frames: Vec<Vec<u8>> = (0..64u16)
            .flat_map(|f| [flow(1000 + f, false), flow(1000 + f, true)])
            .collect();
        batch(&p, BRIDGE, None, frames.clone(), 0, 256);
        let mut seen = std::collections::HashMap::new();
        let mut total = 0;
        for (k, c) in lanes.iter_mut().enumerate() {
            let got = popped(c);
            assert!(!got.is_empty(), "64 flows reach every one of 4 lanes");
            for (_, data, _) in &got {
                let sport = u16::from_be_bytes([data[42], data[43]]);
                let lane = seen.entry(sport).or_insert(k);
                assert_eq!(
                    *lane, k,
                    "flow {sport}: both directions, both tap points, one lane"
                );
            }
            total += got.len();
        }
        assert_eq!(total, 2 * frames.len(), "RX and TX tap, each frame once");
        assert_eq!(seen.len(), 64);
    }

    #[test]
    fn a_flipped_frame_is_tx_tapped_into_the_lane_of_its_flow_as_received() {
        let (_q, q, mut lanes) = laned("lanesflip", 4);
        let mut p = Policy {
            queues: vec![q],
            ..tapping_both_ways()
        };
        p.fault[0] = always(0, 100_000, 100_000);
        // Short UDP frames: most flips land in the addresses or the ports.
        let frames: Vec<Vec<u8>> = (0..64u16).map(|f| udp(E0, &[], 1000 + f, 2)).collect();
        let (o, _) = batch(&p, BRIDGE, None, frames, 128, 256);
        assert_eq!((o.counts.fi_flipped, o.counts.fi_duplicated), (64, 64));
        let mut total = 0;
        for c in lanes.iter_mut() {
            let got = popped(c);
            let rx: Vec<&Vec<u8>> = got
                .iter()
                .filter(|t| t.0 == Direction::Rx)
                .map(|t| &t.1)
                .collect();
            let tx: Vec<&Vec<u8>> = got
                .iter()
                .filter(|t| t.0 == Direction::Tx)
                .map(|t| &t.1)
                .collect();
            assert_eq!(
                tx.len(),
                2 * rx.len(),
                "each frame's flipped copy and its duplicate"
            );
            for (k, r) in rx.iter().enumerate() {
                for t in &tx[2 * k..2 * k + 2] {
                    let bits: u32 = r
                        .iter()
                        .zip(t.iter())
                        .map(|(a, b)| (a ^ b).count_ones())
                        .sum();
                    assert_eq!(
                        bits, 1,
                        "the TX copies of frame {k} of the lane are its own, flipped"
                    );
                }
            }
            total += got.len();
        }
        assert_eq!(total, 3 * 64);
    }
}
