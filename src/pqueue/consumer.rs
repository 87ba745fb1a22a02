//! The consumer side: batches out of the ring, sleeping on the segment's semaphore when idle,
//! plus the status and reset operations every consumer-side tool shares.

use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use super::segment::{Ring, Segment, SLOT_META};
use super::{Direction, Error, InterfaceDesc, Layout, Marks};
use crate::coalesce::Coalescer;

/// The longest a consumer whose last batch emptied its lanes waits for packets to gather
/// before it looks again (docs/pqueue.md, "Sleeping and waking"): the latency it may add to a
/// packet, and at most one wake-up per wait whatever the rate.
pub const DEFAULT_GATHER_WAIT: Duration = Duration::from_millis(2);
/// Packets such a wait tries to gather (collect's batch).
const GATHER: usize = 256;

/// A snapshot of a queue's counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The queue's name.
    pub name: String,
    /// Next position a producer writes, counted from the creation of this generation (lane
    /// 0 of a laned queue); `format` shows it as a slot index, like the original.
    pub head: u64,
    /// Next position a consumer reads (lane 0 of a laned queue).
    pub tail: u64,
    /// Packets put in since the last reset (all lanes).
    pub inserted: u64,
    /// Packets refused because their lane was full (all lanes).
    pub full: u64,
    /// Packets taken out by any consumer (all lanes).
    pub retrieved: u64,
    /// The queue's layout.
    pub layout: Layout,
    /// Its generation (1 when created, +1 per re-initialisation).
    pub generation: u64,
    /// Each lane, when the queue has more than one.
    pub lanes: Vec<LaneStatus>,
}

impl Status {
    /// The figures `tap.queue.status` prints, by their labels: `head` and `tail` as slot
    /// indices, then `inserted`, `full`, `retrieved` (`tap.queue.counter` reads them).
    pub fn counters(&self) -> [(&'static str, u64); 5] {
        let slots = self.layout.slots as u64;
        [
            ("head", self.head % slots),
            ("tail", self.tail % slots),
            ("inserted", self.inserted),
            ("full", self.full),
            ("retrieved", self.retrieved),
        ]
    }

    /// Packets waiting in the queue.
    pub fn waiting(&self) -> u64 {
        self.head.saturating_sub(self.tail)
    }

    /// The `tap.queue.status` text (docs/pqueue.md).
    pub fn format(&self) -> String {
        let mut s = format!("packet queue {}\n", self.name);
        for (label, value) in self.counters() {
            s.push_str(&format!("  {label:<22}{value}\n"));
        }
        for l in &self.lanes {
            let consumer = l.consumer.map_or_else(
                || "no consumer".to_string(),
                |pid| format!("consumer PID {pid}"),
            );
            s.push_str(&format!(
                "  {:<22}inserted {}, full {}, retrieved {}, waiting {}, {consumer}\n",
                format!("lane {}", l.lane),
                l.inserted,
                l.full,
                l.retrieved,
                l.waiting
            ));
        }
        s
    }
}

struct Item {
    start: usize,
    cap_len: u32,
    orig_len: u32,
    ts_ns: u64,
    ifindex: u8,
    dir: Direction,
    marks: Marks,
}

/// Packets taken out of the queue, owned by the consumer; reused from batch to batch so
/// the steady state allocates nothing.
#[derive(Default)]
pub struct Batch {
    data: Vec<u8>,
    items: Vec<Item>,
}

/// One packet of a batch.
#[derive(Clone, Copy, Debug)]
pub struct Packet<'a> {
    /// The bytes stored (the frame, possibly cut).
    pub data: &'a [u8],
    /// The frame's length on the wire.
    pub orig_len: u32,
    /// Capture time, ns since the Unix epoch.
    pub ts_ns: u64,
    /// The engine interface it was tapped on.
    pub ifindex: u8,
    /// The tap that saw it.
    pub dir: Direction,
    /// What fault injection did to it.
    pub marks: Marks,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }
    /// A batch that holds `packets` packets of up to `bytes_each` bytes without allocating.
    pub fn with_capacity(packets: usize, bytes_each: usize) -> Batch {
        Batch {
            data: Vec::with_capacity(packets * bytes_each),
            items: Vec::with_capacity(packets),
        }
    }
    /// Forgets the packets, keeps the memory.
    pub fn clear(&mut self) {
        self.data.clear();
        self.items.clear();
    }
    /// Packets in the batch.
    pub fn len(&self) -> usize {
        self.items.len()
    }
    /// True when the batch holds no packet.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// Packet `i`, in queue order.
    pub fn get(&self, i: usize) -> Option<Packet<'_>> {
        self.items.get(i).map(|it| Packet {
            data: &self.data[it.start..it.start + it.cap_len as usize],
            orig_len: it.orig_len,
            ts_ns: it.ts_ns,
            ifindex: it.ifindex,
            dir: it.dir,
            marks: it.marks,
        })
    }
    /// The packets in queue order.
    pub fn iter(&self) -> impl Iterator<Item = Packet<'_>> {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

/// Copy the packet at position `pos` into `batch` and commit with the one CAS that both
/// claims and frees the slot. False when another consumer committed it first (its copy is
/// then dropped: it may have been torn by a producer already reusing the slot).
fn take_slot(seg: Ring<'_>, pos: u64, batch: &mut Batch) -> bool {
    let meta = seg.meta(pos);
    // SAFETY: in-bounds slot. The reads may race with a producer that reuses the slot after
    // another consumer freed it; such a copy is never used because our CAS then fails.
    let (cap, orig_len, ts_ns, ifindex, dir, marks) = unsafe {
        (
            (std::ptr::read_volatile(&(*meta).cap_len)).min(seg.slot_size()) as usize,
            std::ptr::read_volatile(&(*meta).orig_len),
            std::ptr::read_volatile(&(*meta).ts_ns),
            std::ptr::read_volatile(&(*meta).ifindex),
            std::ptr::read_volatile(&(*meta).dir),
            std::ptr::read_volatile(&(*meta).marks),
        )
    };
    let start = batch.data.len();
    batch.data.reserve(cap);
    // SAFETY: reserved `cap` bytes; the source lies inside the slot (cap <= slot_size).
    unsafe {
        std::ptr::copy_nonoverlapping(
            seg.slot_ptr(pos).add(SLOT_META),
            batch.data.as_mut_ptr().add(start),
            cap,
        );
    }
    let committed = seg
        .seq(pos)
        .compare_exchange(
            pos + 1,
            pos + seg.slots,
            Ordering::AcqRel,
            Ordering::Relaxed,
        )
        .is_ok();
    if committed {
        // SAFETY: the bytes were initialised by the copy above.
        unsafe { batch.data.set_len(start + cap) };
        batch.items.push(Item {
            start,
            cap_len: cap as u32,
            orig_len,
            ts_ns,
            ifindex,
            dir: Direction::from_byte(dir),
            marks: Marks::from_bits(marks),
        });
    }
    committed
}

/// Take up to `max` packets in order from the tail: lease the run of ready slots by moving
/// the tail past it, then commit each slot. The lease only keeps consumers off each
/// other's slots; correctness rests on the per-slot CAS.
fn take(seg: Ring<'_>, batch: &mut Batch, max: usize) -> usize {
    let hdr = seg.header();
    let mut got = 0;
    while got < max {
        let tail = hdr.tail.0.load(Ordering::Acquire);
        let want = (max - got) as u64;
        let mut ready = 0;
        let mut stale_tail = false;
        while ready < want {
            let p = tail + ready;
            let seq = seg.seq(p).load(Ordering::Acquire);
            if seq == p + 1 {
                ready += 1;
            } else {
                // seq > p + 1: already taken (the hint lags); seq == p: not published yet;
                // seq < p: an abandoned packet of the previous lap, left to the sweep.
                stale_tail = ready == 0 && seq > p + 1;
                break;
            }
        }
        if stale_tail {
            let _ =
                hdr.tail
                    .0
                    .compare_exchange(tail, tail + 1, Ordering::AcqRel, Ordering::Relaxed);
            continue;
        }
        if ready == 0 {
            break;
        }
        if hdr
            .tail
            .0
            .compare_exchange(tail, tail + ready, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            continue;
        }
        for p in tail..tail + ready {
            if take_slot(seg, p, batch) {
                got += 1;
            }
        }
    }
    if got > 0 {
        hdr.retrieved.0.fetch_add(got as u64, Ordering::Relaxed);
    }
    got
}

/// Positions behind the tail whose slots are still full: packets leased by a consumer that
/// has not committed them yet, because it is busy, preempted, or dead.
fn behind_tail(seg: Ring<'_>, found: &mut Vec<u64>) {
    found.clear();
    let tail = seg.header().tail.0.load(Ordering::Acquire);
    for p in tail.saturating_sub(seg.slots)..tail {
        if seg.seq(p).load(Ordering::Acquire) == p + 1 {
            found.push(p);
        }
    }
}

fn take_positions(seg: Ring<'_>, positions: &[u64], batch: &mut Batch, max: usize) -> usize {
    let mut got = 0;
    for &p in positions {
        if got >= max {
            break;
        }
        if seg.seq(p).load(Ordering::Acquire) == p + 1 && take_slot(seg, p, batch) {
            got += 1;
        }
    }
    if got > 0 {
        seg.header()
            .retrieved
            .0
            .fetch_add(got as u64, Ordering::Relaxed);
    }
    got
}

/// Finds packets abandoned behind the tail by a consumer that leased them and died before
/// committing; without this, producers would stop at such a slot one lap later. A packet is
/// only taken when two sweeps at least `SWEEP_EVERY` apart both saw it, so a live consumer
/// is not robbed of the lease it is working on (that would be safe, the per-slot CAS decides,
/// but it would copy packets twice for nothing).
struct Sweeper {
    last: Option<Instant>,
    suspects: Vec<u64>,
    found: Vec<u64>,
}

const SWEEP_EVERY: Duration = Duration::from_millis(10);

impl Sweeper {
    fn new() -> Sweeper {
        Sweeper {
            last: None,
            suspects: Vec::new(),
            found: Vec::new(),
        }
    }

    fn sweep(&mut self, seg: Ring<'_>, batch: &mut Batch, max: usize) -> usize {
        if self.last.is_some_and(|t| t.elapsed() < SWEEP_EVERY) {
            return 0;
        }
        self.last = Some(Instant::now());
        behind_tail(seg, &mut self.found);
        self.found
            .retain(|p| self.suspects.binary_search(p).is_ok());
        let got = take_positions(seg, &self.found, batch, max);
        behind_tail(seg, &mut self.suspects);
        got
    }
}

/// Frames an interface received and frames tapped on it that found no room (from the
/// engine's counters in the segment; since the segment was created).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfCounts {
    /// Frames received on the interface.
    pub received: u64,
    /// Tapped frames of the interface refused because their lane was full.
    pub full: u64,
}

/// Takes and discards every packet of `ring` up to the head seen at the start, including
/// those abandoned behind the tail; returns how many.
fn drain(ring: Ring<'_>) -> u64 {
    let mut discarded = 0;
    let mut batch = Batch::new();
    let head_at_start = ring.header().head.0.load(Ordering::Acquire);
    loop {
        batch.clear();
        let mut n = take(ring, &mut batch, 256);
        if n == 0 {
            let mut behind = Vec::new();
            behind_tail(ring, &mut behind);
            n = take_positions(ring, &behind, &mut batch, 256);
        }
        discarded += n as u64;
        if n == 0 || ring.header().tail.0.load(Ordering::Acquire) >= head_at_start {
            return discarded;
        }
    }
}

/// One lane's counters (since the last reset) and its consumer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaneStatus {
    /// The lane's index.
    pub lane: u32,
    /// Packets waiting in the lane.
    pub waiting: u64,
    /// Packets put in.
    pub inserted: u64,
    /// Packets refused because the lane was full.
    pub full: u64,
    /// Packets taken out.
    pub retrieved: u64,
    /// The live consumer that claimed the lane.
    pub consumer: Option<u32>,
}

/// A handle on a queue for status and reset (what `tap.queue.status/reset` use).
pub struct Queue {
    seg: Segment,
}

impl Queue {
    /// Attach to queue `name`, creating it with the default layout when it does not exist
    /// yet (start order does not matter).
    pub fn attach(name: &str) -> Result<Queue, Error> {
        Ok(Queue {
            seg: Segment::open_or_create(name, Layout::default())?,
        })
    }

    /// Attach to an existing queue only.
    pub fn open_existing(name: &str) -> Result<Queue, Error> {
        Ok(Queue {
            seg: Segment::open_existing(name)?,
        })
    }

    /// Follow a re-initialisation (a newer generation replaced ours under the same name).
    /// True when it reattached.
    pub fn refresh(&mut self) -> Result<bool, Error> {
        if !self.seg.is_retired() {
            return Ok(false);
        }
        self.seg = Segment::open_or_create(&self.seg.name, Layout::default())?;
        Ok(true)
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.seg.name
    }
    /// The file behind the queue.
    pub fn path(&self) -> &std::path::Path {
        &self.seg.path
    }
    /// The layout of the generation we are attached to.
    pub fn layout(&self) -> Layout {
        self.seg.layout
    }
    /// The generation we are attached to.
    pub fn generation(&self) -> u64 {
        self.seg.generation
    }

    /// The counters, summed over the lanes (head and tail of lane 0).
    pub fn status(&mut self) -> Result<Status, Error> {
        self.refresh()?;
        let mut st = Status {
            name: self.seg.name.clone(),
            head: 0,
            tail: 0,
            inserted: 0,
            full: 0,
            retrieved: 0,
            layout: self.seg.layout,
            generation: self.seg.generation,
            lanes: if self.seg.layout.lanes > 1 {
                self.lanes()
            } else {
                Vec::new()
            },
        };
        for (k, ring) in self.seg.rings().enumerate() {
            let hdr = ring.header();
            let head = hdr.head.0.load(Ordering::Acquire);
            if k == 0 {
                st.head = head;
                st.tail = hdr.tail.0.load(Ordering::Acquire).min(head);
            }
            st.inserted += head.saturating_sub(hdr.inserted_base.0.load(Ordering::Relaxed));
            st.full += hdr.full.0.load(Ordering::Relaxed);
            st.retrieved += hdr.retrieved.0.load(Ordering::Relaxed);
        }
        Ok(st)
    }

    /// The engine's description of its interface `index`, once the engine wrote it.
    pub fn interface(&self, index: usize) -> Option<InterfaceDesc> {
        let slot = self.seg.if_slot(index)?;
        // SAFETY: an in-bounds entry of the header; its fields are complete once `valid`
        // (stored last with Release by the producer) is non-zero.
        unsafe {
            let valid = (*slot).valid.load(Ordering::Acquire);
            if valid == 0 {
                return None;
            }
            let text = |b: &[u8]| {
                let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                String::from_utf8_lossy(&b[..end]).into_owned()
            };
            Some(InterfaceDesc {
                name: text(&std::ptr::read_volatile(&(*slot).name)),
                driver: text(&std::ptr::read_volatile(&(*slot).driver)),
                mac: (valid & 2 != 0).then(|| std::ptr::read_volatile(&(*slot).mac)),
                mtu: std::ptr::read_volatile(&(*slot).mtu),
                speed_mbps: std::ptr::read_volatile(&(*slot).speed_mbps),
            })
        }
    }

    /// The engine's counters of interface `index` (zero for an interface it does not have).
    pub fn if_counts(&self, index: usize) -> IfCounts {
        self.seg
            .header()
            .if_counters
            .get(index)
            .map_or(IfCounts::default(), |c| IfCounts {
                received: c.rx.0.load(Ordering::Relaxed),
                full: c.full.0.load(Ordering::Relaxed),
            })
    }

    /// The live engine feeding this queue, if any (its pid).
    pub fn producer(&self) -> Option<u32> {
        let hdr = self.seg.header();
        let pid = hdr.producer_pid.load(Ordering::Acquire);
        let start = hdr.producer_start.load(Ordering::Relaxed);
        (pid != 0 && crate::sys::is_same_process(pid as i32, start)).then_some(pid)
    }

    /// Empty the queue and zero its counters. Packets pushed while this runs may stay.
    /// Returns how many packets were discarded. When the engine that produced into this
    /// queue is dead and left a slot half-written (which would stop every consumer at it),
    /// the queue is re-initialised instead (new generation, same layout).
    pub fn reset(&mut self) -> Result<u64, Error> {
        self.refresh()?;
        let discarded = self.seg.rings().map(drain).sum();
        if self.abandoned_by_dead_producer() {
            self.seg = Segment::recreate(&self.seg.name, self.seg.layout, |_| Ok(()))?;
            return Ok(discarded);
        }
        for ring in self.seg.rings() {
            let hdr = ring.header();
            hdr.full.0.store(0, Ordering::Relaxed);
            hdr.retrieved.0.store(0, Ordering::Relaxed);
            hdr.inserted_base
                .0
                .store(hdr.head.0.load(Ordering::Acquire), Ordering::Relaxed);
        }
        Ok(discarded)
    }

    /// Claims lane `k` for this process: free, or held by a process that is gone. Returns the
    /// live holder when it is taken.
    fn try_claim(&self, k: u32) -> Option<u32> {
        let claim = &self.seg.ring(k).header().claim.0;
        let me = std::process::id();
        loop {
            let holder = claim.pid.load(Ordering::Acquire);
            if holder != 0 && holder != me {
                let start = claim.start.load(Ordering::Relaxed);
                if crate::sys::is_same_process(holder as i32, start) {
                    return Some(holder);
                }
            }
            if claim
                .pid
                .compare_exchange(holder, me, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                let start = crate::sys::start_time(me as i32).unwrap_or(0);
                claim.start.store(start, Ordering::Release);
                return None;
            }
        }
    }

    /// Gives lane `k` up, if this process holds it.
    fn release(&self, k: u32) {
        let claim = &self.seg.ring(k).header().claim.0;
        let me = std::process::id();
        if claim
            .pid
            .compare_exchange(me, 0, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            claim.start.store(0, Ordering::Relaxed);
        }
    }

    /// The live consumer that claimed lane `k`, if any.
    pub fn lane_consumer(&self, k: u32) -> Option<u32> {
        if k >= self.seg.layout.lanes {
            return None;
        }
        let claim = &self.seg.ring(k).header().claim.0;
        let pid = claim.pid.load(Ordering::Acquire);
        let start = claim.start.load(Ordering::Relaxed);
        (pid != 0 && crate::sys::is_same_process(pid as i32, start)).then_some(pid)
    }

    /// The counters of each lane.
    pub fn lanes(&self) -> Vec<LaneStatus> {
        self.seg
            .rings()
            .enumerate()
            .map(|(k, ring)| {
                let hdr = ring.header();
                let head = hdr.head.0.load(Ordering::Acquire);
                let tail = hdr.tail.0.load(Ordering::Acquire).min(head);
                LaneStatus {
                    lane: k as u32,
                    waiting: head - tail,
                    inserted: head.saturating_sub(hdr.inserted_base.0.load(Ordering::Relaxed)),
                    full: hdr.full.0.load(Ordering::Relaxed),
                    retrieved: hdr.retrieved.0.load(Ordering::Relaxed),
                    consumer: self.lane_consumer(k as u32),
                }
            })
            .collect()
    }

    /// Empties lane `k` and zeroes its counters; returns the packets discarded.
    fn reset_lane(&self, k: u32) -> u64 {
        let ring = self.seg.ring(k);
        let discarded = drain(ring);
        let hdr = ring.header();
        hdr.full.0.store(0, Ordering::Relaxed);
        hdr.retrieved.0.store(0, Ordering::Relaxed);
        hdr.inserted_base
            .0
            .store(hdr.head.0.load(Ordering::Acquire), Ordering::Relaxed);
        discarded
    }

    fn abandoned_by_dead_producer(&self) -> bool {
        let stuck = self.seg.rings().any(|ring| {
            let hdr = ring.header();
            let tail = hdr.tail.0.load(Ordering::Acquire);
            tail < hdr.head.0.load(Ordering::Acquire)
                && ring.seq(tail).load(Ordering::Acquire) == tail
        });
        let pid = self.seg.header().producer_pid.load(Ordering::Relaxed);
        pid != 0 && stuck && self.producer().is_none()
    }
}

/// Which lanes a consumer takes packets from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LaneChoice {
    /// Every lane, without claiming any (`tap.queue.get`, tools that look).
    All,
    /// A free lane of a laned queue, claimed for this process (`collect -q NAME`); lane 0,
    /// shared with the other consumers, of a queue without lanes.
    Any,
    /// This lane, claimed for this process (`collect --lane K`); a lane a live consumer holds
    /// is refused, one whose consumer died is taken over.
    Lane(u32),
}

/// A consumer: takes packets in batches, each packet going to exactly one consumer.
pub struct Consumer {
    queue: Queue,
    /// How long to poll an empty queue before sleeping on the semaphore (none by default).
    spin: Duration,
    /// The arrival rate, and how long to let packets gather after a batch that emptied the
    /// lanes.
    coalescer: Coalescer,
    /// The last take emptied the lanes (it got packets, fewer than asked for).
    drained: bool,
    sweeper: Sweeper,
    /// The next lane to look at first, so that no lane of a laned queue starves.
    next_lane: u32,
    choice: LaneChoice,
    /// The lane this consumer takes from; `None` for [`LaneChoice::All`].
    lane: Option<u32>,
    /// Whether `lane` is claimed in the segment (a laned queue), so that it is released.
    claimed: bool,
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.release();
    }
}

impl Consumer {
    /// Attach to queue `name`, creating it with the default layout if needed, taking from
    /// every lane.
    pub fn attach(name: &str) -> Result<Consumer, Error> {
        Consumer::attach_lane(name, LaneChoice::All)
    }

    /// Attach to queue `name` (creating it if needed) and take the lanes `choice` says.
    pub fn attach_lane(name: &str, choice: LaneChoice) -> Result<Consumer, Error> {
        let mut c = Consumer {
            queue: Queue::attach(name)?,
            spin: Duration::ZERO,
            coalescer: Coalescer::new(DEFAULT_GATHER_WAIT, GATHER, Instant::now()),
            drained: false,
            sweeper: Sweeper::new(),
            next_lane: 0,
            choice,
            lane: None,
            claimed: false,
        };
        c.claim()?;
        Ok(c)
    }

    /// The lane this consumer takes from and the queue's lane count (`None`: every lane).
    pub fn lane(&self) -> Option<(u32, u32)> {
        self.lane.map(|k| (k, self.queue.layout().lanes))
    }

    /// Claims the lane `choice` names in the current generation.
    fn claim(&mut self) -> Result<(), Error> {
        let lanes = self.queue.layout().lanes;
        let path = || self.queue.path().display().to_string();
        self.claimed = false;
        self.lane = match self.choice {
            LaneChoice::All => None,
            LaneChoice::Any | LaneChoice::Lane(0) if lanes == 1 => Some(0),
            LaneChoice::Lane(k) if k >= lanes => {
                return Err(Error::NoLane {
                    path: path(),
                    lane: k,
                    lanes,
                })
            }
            LaneChoice::Lane(k) => {
                if let Some(pid) = self.queue.try_claim(k) {
                    return Err(Error::LaneBusy {
                        path: path(),
                        lane: k,
                        pid,
                    });
                }
                self.claimed = true;
                Some(k)
            }
            LaneChoice::Any => {
                // After a re-initialisation, the lane we had first.
                let first = self.lane.unwrap_or(0) % lanes;
                let k = (first..lanes)
                    .chain(0..first)
                    .find(|&k| self.queue.try_claim(k).is_none())
                    .ok_or_else(|| Error::NoFreeLane {
                        path: path(),
                        lanes,
                    })?;
                self.claimed = true;
                Some(k)
            }
        };
        Ok(())
    }

    fn release(&mut self) {
        if let (true, Some(k)) = (self.claimed, self.lane) {
            self.queue.release(k);
            self.claimed = false;
        }
    }

    /// Follows a re-initialised queue, claiming a lane in it again.
    fn refresh(&mut self) -> Result<(), Error> {
        if self.queue.seg.is_retired() {
            self.release();
            self.queue.refresh()?;
            self.claim()?;
        }
        Ok(())
    }

    /// How long to poll an empty queue before sleeping on the semaphore (default: not at all).
    pub fn set_spin(&mut self, spin: Duration) {
        self.spin = spin;
    }

    /// The longest wait for packets to gather after a batch that emptied the lanes (default
    /// [`DEFAULT_GATHER_WAIT`]; zero: never wait, take packets as soon as they come).
    pub fn set_gather_wait(&mut self, max_wait: Duration) {
        self.coalescer = Coalescer::new(max_wait, GATHER, Instant::now());
    }

    /// The queue, for status and reset.
    pub fn queue(&mut self) -> &mut Queue {
        &mut self.queue
    }

    /// The queue, for what it describes (interfaces, counters).
    pub fn queue_ref(&self) -> &Queue {
        &self.queue
    }

    /// The layout of the generation we are attached to.
    pub fn layout(&self) -> Layout {
        self.queue.layout()
    }

    /// The longest nap that leaves a lane three quarters empty at the measured rate, so that a
    /// small queue (`--slots`) is never filled by the consumer's own nap.
    fn nap_room(&self) -> Duration {
        let quarter = f64::from(self.queue.layout().slots) / 4.0;
        self.coalescer.time_for(quarter)
    }

    /// Takes up to `max` packets from the lanes, starting with a different lane each time.
    fn take_any(&mut self, batch: &mut Batch, max: usize) -> usize {
        if let Some(k) = self.lane {
            return take(self.queue.seg.ring(k), batch, max);
        }
        let lanes = self.queue.seg.layout.lanes;
        let first = self.next_lane % lanes;
        self.next_lane = first + 1;
        let mut got = 0;
        for k in (first..lanes).chain(0..first) {
            got += take(self.queue.seg.ring(k), batch, max - got);
            if got >= max {
                break;
            }
        }
        got
    }

    /// Take up to `max` packets without waiting. `batch` is cleared first.
    pub fn try_pop(&mut self, batch: &mut Batch, max: usize) -> Result<usize, Error> {
        batch.clear();
        self.refresh()?;
        Ok(self.take_any(batch, max))
    }

    /// Take up to `max` packets, waiting up to `timeout` for the first. After a batch that
    /// emptied the lanes while packets flow fast enough, first wait for more to gather (without
    /// telling producers: they make no syscall for it); then take, and when there is nothing,
    /// sweep for abandoned packets and sleep on the semaphore until a producer posts. Returns 0
    /// on timeout or when a signal interrupted the sleep (callers check their stop flags and
    /// call again).
    pub fn pop_wait(
        &mut self,
        batch: &mut Batch,
        max: usize,
        timeout: Duration,
    ) -> Result<usize, Error> {
        if self.drained {
            if let Some(wait) = self.coalescer.wait() {
                std::thread::sleep(wait.min(timeout).min(self.nap_room()));
            }
        }
        let n = self.try_pop(batch, max)?;
        let n = if n > 0 {
            n
        } else {
            self.wait_first(batch, max, timeout)?
        };
        self.coalescer.count(n, Instant::now());
        self.drained = n > 0 && n < max;
        Ok(n)
    }

    /// The lanes are empty: spin if asked to, sweep, sleep on the semaphore.
    fn wait_first(
        &mut self,
        batch: &mut Batch,
        max: usize,
        timeout: Duration,
    ) -> Result<usize, Error> {
        let start = Instant::now();
        let mut rounds = 0u32;
        while start.elapsed() < self.spin.min(timeout) {
            for _ in 0..32 {
                std::hint::spin_loop();
            }
            rounds += 1;
            if rounds % 8 == 0 {
                std::thread::yield_now();
            }
            let n = self.take_any(batch, max);
            if n > 0 {
                return Ok(n);
            }
        }
        let my_lanes = match self.lane {
            Some(k) => k..k + 1,
            None => 0..self.queue.seg.layout.lanes,
        };
        for k in my_lanes {
            let n = self.sweeper.sweep(self.queue.seg.ring(k), batch, max);
            if n > 0 {
                return Ok(n);
            }
        }
        let Some(lane) = self
            .lane
            .or((self.queue.seg.layout.lanes == 1).then_some(0))
        else {
            // One semaphore per lane, and we take from all of them: no single one to sleep
            // on. Nap briefly instead (collect claims one lane and never gets here).
            std::thread::sleep(timeout.min(Duration::from_millis(1)));
            return Ok(self.take_any(batch, max));
        };
        let ring = self.queue.seg.ring(lane);
        let hdr = ring.header();
        // A consumer killed while asleep leaves `sleepers` one too high for the life of this
        // generation. That costs producers one load of the semaphore value per push and at
        // most one post per sleep of a live consumer (a post is skipped while one is pending),
        // never a syscall per packet; the next engine start or dead-producer reset clears it.
        hdr.sleepers.0.fetch_add(1, Ordering::SeqCst);
        // Pairs with the producer's fence after publishing (see Producer::push_to).
        fence(Ordering::SeqCst);
        let mut n = take(ring, batch, max);
        if n == 0 && !self.queue.seg.is_retired() {
            let left = timeout.saturating_sub(start.elapsed());
            sleep_on(ring, left);
        }
        hdr.sleepers.0.fetch_sub(1, Ordering::SeqCst);
        if n == 0 {
            n = take(ring, batch, max);
        }
        Ok(n)
    }

    /// The queue's counters.
    pub fn status(&mut self) -> Result<Status, Error> {
        self.queue.status()
    }

    /// Empties the queue and zeroes its counters (see [`Queue::reset`]); a consumer of one
    /// lane of a laned queue empties only its lane, the other lanes' packets are not its to
    /// discard.
    pub fn reset(&mut self) -> Result<u64, Error> {
        self.refresh()?;
        match (self.claimed, self.lane) {
            (true, Some(k)) => Ok(self.queue.reset_lane(k)),
            _ => self.queue.reset(),
        }
    }
}

fn sleep_on(seg: Ring<'_>, timeout: Duration) {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: plain libc calls on a valid timespec and the segment's initialised semaphore.
    unsafe {
        libc::clock_gettime(libc::CLOCK_REALTIME, &mut now);
        let total_ns = now.tv_nsec as u64 + timeout.subsec_nanos() as u64;
        let deadline = libc::timespec {
            tv_sec: now.tv_sec
                + timeout.as_secs() as libc::time_t
                + (total_ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (total_ns % 1_000_000_000) as libc::c_long,
        };
        // Returns on a post, the deadline, or a signal (EINTR): all fine for the caller.
        libc::sem_timedwait(seg.sem(), &deadline);
    }
}

/// The lanes process `pid` consumes, in every queue of `/dev/shm`: (queue, lane, lanes). For
/// `control collect status`, which knows a collect by its pid only.
pub fn lanes_consumed_by(pid: u32) -> Vec<(String, u32, u32)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(super::queue_path("")) else {
        return found;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let Ok(queue) = Queue::open_existing(&name) else {
            continue;
        };
        for k in 0..queue.layout().lanes {
            if queue.layout().lanes > 1 && queue.lane_consumer(k) == Some(pid) {
                found.push((name.clone(), k, queue.layout().lanes));
            }
        }
    }
    found.sort();
    found
}
