//! Per-queue statistics: counters, received source MACs and Ethertypes through VLAN tags.
//!
//! Every (interface, queue) has one [`QueueStats`], cache-line aligned so that two workers never
//! write the same line. The per-frame part ([`QueueStats::on_rx`]) is written only by the worker
//! that owns the queue, so it uses plain relaxed load + store instead of locked read-modify-write
//! instructions, and its tables are preallocated: no lock, no allocation, no syscall per frame.
//! The batch counters (`add_*`) use `fetch_add`, so a worker may also count, say, frames it
//! transmitted on the other interface. The control thread reads everything through atomics at any
//! time and sums the queues ([`StatsBoard`]).
//!
//! Reset while workers keep writing, without stopping them:
//! * counters: the control thread records each counter's current value as its baseline and
//!   readers subtract it. Nothing the workers do has to change, and a counter that another thread
//!   adds to is handled the same way.
//! * tables: baselines would leave the table full of MACs that are gone, so the control thread
//!   instead raises a reset request and the owning worker empties its own tables at its next
//!   frame (the single-writer rule holds). Until it has, readers report the tables as empty.

use crate::wire::{self, ethertype, Mac};
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::sync::Arc;

/// Source MACs remembered per queue; frames from further MACs are counted as overflow.
pub const MAC_TABLE_CAPACITY: usize = 1024;
/// Twice the capacity, so an empty slot always ends a probe and probes stay short.
const MAC_SLOTS: usize = 2 * MAC_TABLE_CAPACITY;
/// (VLAN level, Ethertype) pairs remembered per queue; frames of further pairs are counted as
/// overflow.
pub const ETYPE_TABLE_CAPACITY: usize = 128;
const ETYPE_SLOTS: usize = 2 * ETYPE_TABLE_CAPACITY;

/// Marks a used table slot (MAC 00:00:00:00:00:00 is a valid key).
const USED: u64 = 1 << 63;

#[derive(Clone, Copy)]
#[repr(usize)]
enum C {
    Rx,
    Tx,
    Drop,
    Noif,
    Err,
    FiDropped,
    FiFlipped,
    FiDuplicated,
    RxBytes,
    TxBytes,
}
const N_COUNTERS: usize = 10;

/// Counter values (since the last reset), of one queue or summed over several.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Counters {
    /// Frames received.
    pub rx: u64,
    /// Frames transmitted.
    pub tx: u64,
    /// Frames dropped (drop machash and fault injection).
    pub drop: u64,
    /// Frames for an output interface that was down.
    pub noif: u64,
    /// Frames lost to internal errors.
    pub err: u64,
    /// Frames dropped by fault injection.
    pub fi_dropped: u64,
    /// Frames with a bit flipped by fault injection.
    pub fi_flipped: u64,
    /// Frames sent twice by fault injection.
    pub fi_duplicated: u64,
    /// Bytes of the frames received (Ethernet header to the end of the payload, no FCS).
    pub rx_bytes: u64,
    /// Bytes of the frames transmitted, counted as `rx_bytes`.
    pub tx_bytes: u64,
}

impl std::ops::AddAssign for Counters {
    fn add_assign(&mut self, o: Counters) {
        self.rx += o.rx;
        self.tx += o.tx;
        self.drop += o.drop;
        self.noif += o.noif;
        self.err += o.err;
        self.fi_dropped += o.fi_dropped;
        self.fi_flipped += o.fi_flipped;
        self.fi_duplicated += o.fi_duplicated;
        self.rx_bytes += o.rx_bytes;
        self.tx_bytes += o.tx_bytes;
    }
}

/// Frames seen from one source MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MacCount {
    /// The source MAC.
    pub mac: Mac,
    /// Frames received from it.
    pub frames: u64,
}

/// Sorts a MAC table into report order: most frames first, then by MAC.
pub fn sort_macs(macs: &mut [MacCount]) {
    macs.sort_by(|a, b| b.frames.cmp(&a.frames).then(a.mac.cmp(&b.mac)));
}

/// The source-MAC table of a queue or an interface, sorted by frames (most first), then MAC.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct MacReport {
    /// The MACs in the table.
    pub macs: Vec<MacCount>,
    /// Frames whose source MAC did not fit in a full table.
    pub overflow: u64,
    /// About how many distinct MACs those frames came from (see [`OverflowSketch`]).
    pub overflow_macs: OverflowEstimate,
}

/// Bits of the sketch that estimates how many distinct MACs did not fit.
const SKETCH_BITS: usize = 4096;
/// 64-bit words of the overflow sketch.
pub const SKETCH_WORDS: usize = SKETCH_BITS / 64;

/// Distinct source MACs that did not fit in a full MAC table, estimated by linear counting: each
/// such MAC sets one hashed bit of a 4096-bit map, and n = -m ln(zero bits / m). Exact counting
/// would need the storage the table just ran out of; the estimate is within a few percent up to
/// several thousand MACs, and the maps of several queues merge by OR into the estimate of their
/// union.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverflowSketch([u64; SKETCH_WORDS]);

impl Default for OverflowSketch {
    fn default() -> Self {
        OverflowSketch([0; SKETCH_WORDS])
    }
}

/// The estimate of an [`OverflowSketch`].
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub enum OverflowEstimate {
    /// No MAC overflowed.
    #[default]
    None,
    /// About this many.
    About(u64),
    /// Every bit is set: at least this many.
    AtLeast(u64),
}

impl OverflowSketch {
    /// A sketch of these 64 words (bit `b` is bit `b % 64` of word `b / 64`), as the kernel
    /// path keeps it.
    pub fn from_words(words: [u64; SKETCH_WORDS]) -> OverflowSketch {
        OverflowSketch(words)
    }

    /// Adds the MACs of `other` (the sketch of their union).
    pub fn merge(&mut self, other: &OverflowSketch) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a |= b;
        }
    }

    /// How many distinct MACs the sketch saw.
    pub fn estimate(&self) -> OverflowEstimate {
        let m = SKETCH_BITS as f64;
        let zeros = self.0.iter().map(|w| w.count_zeros()).sum::<u32>();
        match zeros as usize {
            SKETCH_BITS => OverflowEstimate::None,
            0 => OverflowEstimate::AtLeast((m * m.ln()) as u64),
            z => OverflowEstimate::About((-m * (z as f64 / m).ln()).round().max(1.0) as u64),
        }
    }
}

/// Frames seen with one Ethertype at one VLAN level (0 = the Ethernet header's own type,
/// n = the type after n VLAN tags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EtypeCount {
    /// The VLAN level.
    pub level: u8,
    /// The Ethertype ([`ethertype::LENGTH_8023`] for every 802.3 length).
    pub ethertype: u16,
    /// Frames seen with it.
    pub frames: u64,
    /// The source MAC of the last of them.
    pub last_src: Mac,
}

/// The Ethertype table of a queue or an interface, sorted by level, then Ethertype.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct EtypeReport {
    /// The (level, Ethertype) rows in the table.
    pub types: Vec<EtypeCount>,
    /// Frames with a (level, Ethertype) that did not fit in a full table.
    pub overflow: u64,
}

#[derive(Default)]
struct MacSlot {
    key: AtomicU64,
    frames: AtomicU64,
}

#[derive(Default)]
struct EtypeSlot {
    key: AtomicU64,
    frames: AtomicU64,
    last_src: AtomicU64,
}

/// Adds to a counter that only the calling thread writes: a plain load and store.
#[inline]
fn bump(a: &AtomicU64, n: u64) {
    a.store(a.load(Relaxed).wrapping_add(n), Relaxed);
}

/// Bits of the overflow sketch set by `mac` (the kernel path's program computes the same).
pub fn sketch_bit(mac: u64) -> usize {
    (sketch_hash(mac) >> 52) as usize
}

/// A full mix for the overflow sketch: linear counting assumes random-looking bits, and a plain
/// multiplicative hash spreads runs of consecutive MACs too evenly (no collisions at all), which
/// made it overestimate by a quarter.
#[inline]
fn sketch_hash(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[inline]
fn slot_of(key: u64, slots: usize) -> usize {
    (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - slots.trailing_zeros())) as usize
}

/// The statistics of one (interface, queue); see the module comment for who writes what.
#[repr(C, align(64))]
pub struct QueueStats {
    counters: [AtomicU64; N_COUNTERS],
    /// Counter values at the last reset; written by the control thread only.
    baseline: [AtomicU64; N_COUNTERS],
    /// Raised by the control thread; the worker empties its tables when `tables_reset` lags.
    reset_requested: AtomicU64,
    tables_reset: AtomicU64,
    macs_used: AtomicU64,
    mac_overflow: AtomicU64,
    mac_overflow_sketch: [AtomicU64; SKETCH_WORDS],
    etypes_used: AtomicU64,
    etype_overflow: AtomicU64,
    macs: Box<[MacSlot]>,
    etypes: Box<[EtypeSlot]>,
}

impl Default for QueueStats {
    fn default() -> Self {
        QueueStats::new()
    }
}

impl QueueStats {
    /// Zero counters and empty tables (allocated here, once).
    pub fn new() -> QueueStats {
        QueueStats {
            counters: Default::default(),
            baseline: Default::default(),
            reset_requested: AtomicU64::new(0),
            tables_reset: AtomicU64::new(0),
            macs_used: AtomicU64::new(0),
            mac_overflow: AtomicU64::new(0),
            mac_overflow_sketch: std::array::from_fn(|_| AtomicU64::new(0)),
            etypes_used: AtomicU64::new(0),
            etype_overflow: AtomicU64::new(0),
            macs: (0..MAC_SLOTS).map(|_| MacSlot::default()).collect(),
            etypes: (0..ETYPE_SLOTS).map(|_| EtypeSlot::default()).collect(),
        }
    }

    /// One received frame: `rx`, its source MAC and its Ethertypes. Only the worker that owns
    /// this queue may call it (single writer). Frames too short for a field are counted in
    /// `rx` and skip what they do not have. Always inlined: it is most of the per-frame work,
    /// and a call per frame showed in the benchmark once it had two callers.
    #[inline(always)]
    pub fn on_rx(&self, frame: &[u8]) {
        let requested = self.reset_requested.load(Acquire);
        if requested != self.tables_reset.load(Relaxed) {
            self.clear_tables();
            self.tables_reset.store(requested, Release);
        }
        bump(&self.counters[C::Rx as usize], 1);
        let Some(src) = wire::src_mac(frame) else {
            return;
        };
        let src = src.to_u64();
        self.count_mac(src);
        for layer in wire::vlan_walk(frame) {
            let t = ethertype::fold_length(layer.ethertype);
            self.count_etype(u64::from(layer.level), t, src);
        }
    }

    #[inline]
    fn count_mac(&self, mac: u64) {
        let key = mac | USED;
        let mut i = slot_of(mac, MAC_SLOTS);
        loop {
            let slot = &self.macs[i];
            let k = slot.key.load(Relaxed);
            if k == key {
                bump(&slot.frames, 1);
                return;
            }
            if k == 0 {
                if self.macs_used.load(Relaxed) >= MAC_TABLE_CAPACITY as u64 {
                    bump(&self.mac_overflow, 1);
                    let bit = sketch_bit(mac);
                    let word = &self.mac_overflow_sketch[bit / 64];
                    word.store(word.load(Relaxed) | 1 << (bit % 64), Relaxed);
                } else {
                    slot.frames.store(1, Relaxed);
                    slot.key.store(key, Release);
                    bump(&self.macs_used, 1);
                }
                return;
            }
            i = (i + 1) % MAC_SLOTS;
        }
    }

    #[inline]
    fn count_etype(&self, level: u64, ethertype: u16, src: u64) {
        let key = USED | level << 16 | u64::from(ethertype);
        let mut i = slot_of(key, ETYPE_SLOTS);
        loop {
            let slot = &self.etypes[i];
            let k = slot.key.load(Relaxed);
            if k == key {
                bump(&slot.frames, 1);
                slot.last_src.store(src, Relaxed);
                return;
            }
            if k == 0 {
                if self.etypes_used.load(Relaxed) >= ETYPE_TABLE_CAPACITY as u64 {
                    bump(&self.etype_overflow, 1);
                } else {
                    slot.frames.store(1, Relaxed);
                    slot.last_src.store(src, Relaxed);
                    slot.key.store(key, Release);
                    bump(&self.etypes_used, 1);
                }
                return;
            }
            i = (i + 1) % ETYPE_SLOTS;
        }
    }

    /// Worker side of a reset (see the module comment).
    #[cold]
    fn clear_tables(&self) {
        for s in self.macs.iter() {
            s.key.store(0, Relaxed);
            s.frames.store(0, Relaxed);
        }
        for s in self.etypes.iter() {
            s.key.store(0, Relaxed);
            s.frames.store(0, Relaxed);
            s.last_src.store(0, Relaxed);
        }
        for a in [
            &self.macs_used,
            &self.mac_overflow,
            &self.etypes_used,
            &self.etype_overflow,
        ] {
            a.store(0, Relaxed);
        }
        for w in &self.mac_overflow_sketch {
            w.store(0, Relaxed);
        }
    }

    #[inline]
    fn add(&self, c: C, n: u64) {
        self.counters[c as usize].fetch_add(n, Relaxed);
    }
    /// `n` frames transmitted on this interface.
    pub fn add_tx(&self, n: u64) {
        self.add(C::Tx, n)
    }
    /// `n` frames dropped (drop machash or fault injection).
    pub fn add_drop(&self, n: u64) {
        self.add(C::Drop, n)
    }
    /// `n` frames not sent because the output interface was down.
    pub fn add_noif(&self, n: u64) {
        self.add(C::Noif, n)
    }
    /// `n` frames lost to an internal error.
    pub fn add_err(&self, n: u64) {
        self.add(C::Err, n)
    }
    /// `n` frames dropped by fault injection.
    pub fn add_fi_dropped(&self, n: u64) {
        self.add(C::FiDropped, n)
    }
    /// `n` frames with a bit flipped by fault injection.
    pub fn add_fi_flipped(&self, n: u64) {
        self.add(C::FiFlipped, n)
    }
    /// `n` frames duplicated by fault injection.
    pub fn add_fi_duplicated(&self, n: u64) {
        self.add(C::FiDuplicated, n)
    }
    /// `n` bytes transmitted on this interface.
    pub fn add_tx_bytes(&self, n: u64) {
        self.add(C::TxBytes, n)
    }

    /// Adds a worker's per-batch tally: one atomic add for each counter that is not zero.
    #[inline]
    pub fn add_counts(&self, c: &Counters) {
        for (counter, n) in [
            (C::Rx, c.rx),
            (C::Tx, c.tx),
            (C::Drop, c.drop),
            (C::Noif, c.noif),
            (C::Err, c.err),
            (C::FiDropped, c.fi_dropped),
            (C::FiFlipped, c.fi_flipped),
            (C::FiDuplicated, c.fi_duplicated),
            (C::RxBytes, c.rx_bytes),
            (C::TxBytes, c.tx_bytes),
        ] {
            if n > 0 {
                self.add(counter, n);
            }
        }
    }

    /// The counters since the last reset.
    pub fn counters(&self) -> Counters {
        let v = |c: C| {
            let i = c as usize;
            // A reset between the two loads can make the baseline the larger one: show 0.
            self.counters[i]
                .load(Relaxed)
                .saturating_sub(self.baseline[i].load(Relaxed))
        };
        Counters {
            rx: v(C::Rx),
            tx: v(C::Tx),
            drop: v(C::Drop),
            noif: v(C::Noif),
            err: v(C::Err),
            fi_dropped: v(C::FiDropped),
            fi_flipped: v(C::FiFlipped),
            fi_duplicated: v(C::FiDuplicated),
            rx_bytes: v(C::RxBytes),
            tx_bytes: v(C::TxBytes),
        }
    }

    fn tables_pending_reset(&self) -> bool {
        self.reset_requested.load(Acquire) != self.tables_reset.load(Acquire)
    }

    fn overflow_sketch(&self) -> OverflowSketch {
        if self.tables_pending_reset() {
            return OverflowSketch::default();
        }
        OverflowSketch(std::array::from_fn(|i| {
            self.mac_overflow_sketch[i].load(Relaxed)
        }))
    }

    /// The source MACs since the last reset.
    pub fn macs(&self) -> MacReport {
        let mut r = MacReport::default();
        if self.tables_pending_reset() {
            return r;
        }
        r.overflow_macs = self.overflow_sketch().estimate();
        for s in self.macs.iter() {
            let k = s.key.load(Acquire);
            let frames = s.frames.load(Relaxed);
            if k & USED != 0 && frames > 0 {
                r.macs.push(MacCount {
                    mac: Mac::from_u64(k & !USED),
                    frames,
                });
            }
        }
        r.overflow = self.mac_overflow.load(Relaxed);
        sort_macs(&mut r.macs);
        r
    }

    /// The Ethertypes per VLAN level since the last reset.
    pub fn etypes(&self) -> EtypeReport {
        let mut r = EtypeReport::default();
        if self.tables_pending_reset() {
            return r;
        }
        for s in self.etypes.iter() {
            let k = s.key.load(Acquire);
            let frames = s.frames.load(Relaxed);
            if k & USED != 0 && frames > 0 {
                r.types.push(EtypeCount {
                    level: (k >> 16 & 0xff) as u8,
                    ethertype: k as u16,
                    frames,
                    last_src: Mac::from_u64(s.last_src.load(Relaxed)),
                });
            }
        }
        r.overflow = self.etype_overflow.load(Relaxed);
        r.types.sort_by_key(|t| (t.level, t.ethertype));
        r
    }

    /// Zero everything as seen by readers; safe while the worker keeps counting.
    pub fn reset(&self) {
        for (c, b) in self.counters.iter().zip(&self.baseline) {
            b.store(c.load(Relaxed), Relaxed);
        }
        self.reset_requested.fetch_add(1, Release);
    }
}

/// Statistics kept outside the workers: the frames an interface's kernel path forwarded
/// (docs/kernel-path.md). Each one was received on that interface and transmitted on the other.
/// Readers see them as if a worker had counted them; everything is since the last `reset`.
pub trait KernelTally: Send + Sync {
    /// Frames and bytes received on queue `q` and forwarded, in `rx`/`rx_bytes`.
    fn queue(&self, q: usize) -> Counters;
    /// Frames and bytes received on every queue (also the unserved ones) and forwarded.
    fn total(&self) -> Counters;
    /// Their source MACs and the sketch of the MACs that did not fit.
    fn macs(&self) -> (MacReport, OverflowSketch);
    /// Their Ethertypes per VLAN level.
    fn etypes(&self) -> EtypeReport;
    /// Zero everything as seen by readers.
    fn reset(&self);
}

/// What the kernel forwarded in `k` (received) as the transmit side of the other port.
fn as_transmitted(k: Counters) -> Counters {
    Counters {
        tx: k.rx,
        tx_bytes: k.rx_bytes,
        ..Counters::default()
    }
}

/// The statistics of the whole engine: `[interface][queue]`, plus the kernel path's.
pub struct StatsBoard {
    queues: Vec<Vec<Arc<QueueStats>>>,
    /// `[interface]`: its kernel path, when it has one (bridge mode).
    kernel: Vec<Option<Arc<dyn KernelTally>>>,
    /// `reset` calls so far (the control plane logs commands that change something).
    resets: AtomicU64,
}

impl StatsBoard {
    /// Statistics for `ifaces` interfaces of `queues` queues each.
    pub fn new(ifaces: usize, queues: usize) -> StatsBoard {
        StatsBoard {
            queues: (0..ifaces)
                .map(|_| (0..queues).map(|_| Arc::new(QueueStats::new())).collect())
                .collect(),
            kernel: (0..ifaces).map(|_| None).collect(),
            resets: AtomicU64::new(0),
        }
    }

    /// The board with `kernel[i]` as interface `i`'s kernel path (two interfaces: what one
    /// forwards is transmitted on the other).
    pub fn with_kernel(mut self, kernel: Vec<Option<Arc<dyn KernelTally>>>) -> StatsBoard {
        self.kernel = kernel;
        self.kernel.resize_with(self.queues.len(), || None);
        self
    }

    /// Interfaces on the board.
    pub fn interfaces(&self) -> usize {
        self.queues.len()
    }

    /// Queues per interface.
    pub fn queues(&self) -> usize {
        self.queues.first().map_or(0, Vec::len)
    }

    /// The statistics a worker writes. Panics on indices outside `new`'s dimensions (a
    /// programming error in the engine, not user input; words use [`StatsBoard::queue_counters`]).
    pub fn queue(&self, ifidx: usize, q: usize) -> Arc<QueueStats> {
        self.queues[ifidx][q].clone()
    }

    fn of(&self, ifidx: usize) -> &[Arc<QueueStats>] {
        self.queues.get(ifidx).map_or(&[], Vec::as_slice)
    }

    fn kernel_of(&self, ifidx: usize) -> Option<&dyn KernelTally> {
        self.kernel.get(ifidx)?.as_deref()
    }

    /// The kernel path whose frames go out on `ifidx`: the other interface's.
    fn kernel_into(&self, ifidx: usize) -> Option<&dyn KernelTally> {
        (self.queues.len() == 2 && ifidx < 2)
            .then(|| self.kernel_of(1 - ifidx))
            .flatten()
    }

    /// The counters of one queue of an interface, the kernel path's frames of that queue
    /// included; None if there is no such queue (for the words).
    pub fn queue_counters(&self, ifidx: usize, q: usize) -> Option<Counters> {
        let mut c = self.queues.get(ifidx)?.get(q)?.counters();
        if let Some(k) = self.kernel_of(ifidx) {
            c += k.queue(q);
        }
        if let Some(k) = self.kernel_into(ifidx) {
            c += as_transmitted(k.queue(q));
        }
        Some(c)
    }

    /// The counters of an interface, summed over its queues and its kernel path.
    pub fn totals(&self, ifidx: usize) -> Counters {
        let mut sum = Counters::default();
        for q in self.of(ifidx) {
            sum += q.counters();
        }
        if let Some(k) = self.kernel_of(ifidx) {
            sum += k.total();
        }
        if let Some(k) = self.kernel_into(ifidx) {
            sum += as_transmitted(k.total());
        }
        sum
    }

    /// The source MACs of an interface, merged over its queues and its kernel path.
    pub fn macs(&self, ifidx: usize) -> MacReport {
        let mut merged = std::collections::HashMap::<Mac, u64>::new();
        let mut overflow = 0;
        let mut sketch = OverflowSketch::default();
        let mut add = |r: MacReport, s: &OverflowSketch| {
            overflow += r.overflow;
            sketch.merge(s);
            for m in r.macs {
                *merged.entry(m.mac).or_default() += m.frames;
            }
        };
        for q in self.of(ifidx) {
            add(q.macs(), &q.overflow_sketch());
        }
        if let Some(k) = self.kernel_of(ifidx) {
            let (r, s) = k.macs();
            add(r, &s);
        }
        let mut macs: Vec<MacCount> = merged
            .into_iter()
            .map(|(mac, frames)| MacCount { mac, frames })
            .collect();
        sort_macs(&mut macs);
        MacReport {
            macs,
            overflow,
            overflow_macs: sketch.estimate(),
        }
    }

    /// The Ethertypes of an interface, merged over its queues and its kernel path. They keep
    /// no common clock, so the last source MAC shown is that of the one that saw the type most
    /// often.
    pub fn etypes(&self, ifidx: usize) -> EtypeReport {
        let mut merged = std::collections::BTreeMap::<(u8, u16), (u64, u64, Mac)>::new();
        let mut overflow = 0;
        let kernel = self.kernel_of(ifidx).map(|k| k.etypes());
        for r in self.of(ifidx).iter().map(|q| q.etypes()).chain(kernel) {
            overflow += r.overflow;
            for t in r.types {
                let e = merged
                    .entry((t.level, t.ethertype))
                    .or_insert((0, 0, t.last_src));
                e.0 += t.frames;
                if t.frames > e.1 {
                    e.1 = t.frames;
                    e.2 = t.last_src;
                }
            }
        }
        let types = merged
            .into_iter()
            .map(|((level, ethertype), (frames, _, last_src))| EtypeCount {
                level,
                ethertype,
                frames,
                last_src,
            })
            .collect();
        EtypeReport { types, overflow }
    }

    /// `if.stats.reset`: zero every queue of every interface, and the kernel paths.
    pub fn reset(&self) {
        for q in self.queues.iter().flatten() {
            q.reset();
        }
        for k in self.kernel.iter().flatten() {
            k.reset();
        }
        self.resets.fetch_add(1, AcqRel);
    }

    /// How many times [`StatsBoard::reset`] ran.
    pub fn resets(&self) -> u64 {
        self.resets.load(Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::wire::frame::test_frame;
    use crate::wire::MAX_VLAN_TAGS;

    /// A 60-byte broadcast frame (plus its tags) from `src`.
    fn frame(src: Mac, tags: &[u16], ethertype: u16) -> Vec<u8> {
        test_frame(Mac::BROADCAST, src, tags, ethertype, 60 + 4 * tags.len())
    }

    const A: Mac = Mac([0, 0x1b, 0x21, 0, 0, 1]);
    const B: Mac = Mac([2, 0, 0, 0, 0, 2]);

    #[test]
    fn the_struct_is_cache_line_aligned() {
        assert_eq!(std::mem::align_of::<QueueStats>() % 64, 0);
        let board = StatsBoard::new(2, 2);
        for (i, q) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            assert_eq!(Arc::as_ptr(&board.queue(i, q)) as usize % 64, 0);
        }
    }

    #[test]
    fn counters_count_and_reset() {
        let q = QueueStats::new();
        q.on_rx(&frame(A, &[], 0x0800));
        q.add_tx(3);
        q.add_drop(4);
        q.add_noif(5);
        q.add_err(6);
        q.add_fi_dropped(7);
        q.add_fi_flipped(8);
        q.add_fi_duplicated(9);
        q.add_counts(&Counters {
            rx_bytes: 60,
            ..Counters::default()
        });
        q.add_tx_bytes(11);
        let expected = Counters {
            rx: 1,
            tx: 3,
            drop: 4,
            noif: 5,
            err: 6,
            fi_dropped: 7,
            fi_flipped: 8,
            fi_duplicated: 9,
            rx_bytes: 60,
            tx_bytes: 11,
        };
        assert_eq!(q.counters(), expected);
        q.reset();
        assert_eq!(q.counters(), Counters::default());
        q.add_tx(2);
        assert_eq!(q.counters().tx, 2);
    }

    #[test]
    fn macs_and_plain_ethertypes() {
        let q = QueueStats::new();
        for _ in 0..3 {
            q.on_rx(&frame(A, &[], 0x0800));
        }
        q.on_rx(&frame(B, &[], 0x86dd));
        q.on_rx(&frame(B, &[], 0x0026)); // an 802.3 length
        let m = q.macs();
        assert_eq!(
            m.macs,
            vec![
                MacCount { mac: A, frames: 3 },
                MacCount { mac: B, frames: 2 }
            ]
        );
        assert_eq!(m.overflow, 0);
        let t = q.etypes().types;
        let row = |level, ethertype, frames, last_src| EtypeCount {
            level,
            ethertype,
            frames,
            last_src,
        };
        assert_eq!(
            t,
            vec![
                row(0, ethertype::LENGTH_8023, 1, B),
                row(0, 0x0800, 3, A),
                row(0, 0x86dd, 1, B),
            ]
        );
    }

    #[test]
    fn ethertypes_through_vlan_tags() {
        let q = QueueStats::new();
        q.on_rx(&frame(A, &[0x8100], 0x0800));
        q.on_rx(&frame(B, &[0x88a8, 0x8100], 0x0806));
        q.on_rx(&frame(A, &[0x88a8, 0x8100], 0x0806));
        let keys: Vec<(u8, u16, u64, Mac)> = q
            .etypes()
            .types
            .iter()
            .map(|t| (t.level, t.ethertype, t.frames, t.last_src))
            .collect();
        assert_eq!(
            keys,
            vec![
                (0, 0x8100, 1, A),
                (0, 0x88a8, 2, A),
                (1, 0x0800, 1, A),
                (1, 0x8100, 2, A),
                (2, 0x0806, 2, A),
            ]
        );
    }

    #[test]
    fn at_most_four_tags_are_followed() {
        let q = QueueStats::new();
        q.on_rx(&frame(A, &[0x8100; 6], 0x0800));
        let t = q.etypes().types;
        assert_eq!(t.len(), MAX_VLAN_TAGS + 1);
        assert!(t.iter().all(|t| t.ethertype == 0x8100));
        assert_eq!(t.last().unwrap().level as usize, MAX_VLAN_TAGS);
    }

    #[test]
    fn short_and_truncated_frames_count_what_they_have() {
        let q = QueueStats::new();
        let f = frame(A, &[0x8100], 0x0800);
        for len in 0..=f.len() {
            q.on_rx(&f[..len]);
        }
        let c = q.counters();
        assert_eq!(c.rx, f.len() as u64 + 1);
        // Source complete from 12 bytes on.
        assert_eq!(
            q.macs().macs,
            vec![MacCount {
                mac: A,
                frames: f.len() as u64 - 11
            }]
        );
        let t = q.etypes().types;
        assert_eq!(
            t[0].frames,
            f.len() as u64 - 13,
            "outer type from 14 bytes on"
        );
        assert_eq!(
            t[1].frames,
            f.len() as u64 - 17,
            "inner type from 18 bytes on"
        );
    }

    #[test]
    fn mac_table_overflow_is_counted_not_stored() {
        let q = QueueStats::new();
        let mac = |i: usize| Mac([0, 0x50, 0x56, 0, (i >> 8) as u8, i as u8]);
        for i in 0..MAC_TABLE_CAPACITY + 10 {
            q.on_rx(&frame(mac(i), &[], 0x0800));
        }
        for i in 0..MAC_TABLE_CAPACITY + 10 {
            q.on_rx(&frame(mac(i), &[], 0x0800));
        }
        let r = q.macs();
        assert_eq!(r.macs.len(), MAC_TABLE_CAPACITY);
        assert!(r.macs.iter().all(|m| m.frames == 2));
        assert_eq!(r.overflow, 20, "10 MACs that did not fit, twice");
        assert_eq!(r.overflow_macs, OverflowEstimate::About(10));
        q.reset();
        q.on_rx(&frame(mac(5000), &[], 0x0800));
        let r = q.macs();
        assert_eq!(
            r.macs,
            vec![MacCount {
                mac: mac(5000),
                frames: 1
            }]
        );
        assert_eq!(r.overflow, 0);
        assert_eq!(r.overflow_macs, OverflowEstimate::None);
    }

    #[test]
    fn the_overflow_sketch_estimates_distinct_macs_and_merges_queues() {
        let board = StatsBoard::new(1, 2);
        let mac = |i: u32| Mac([0x00, 0x50, (i >> 16) as u8, (i >> 8) as u8, i as u8, 1]);
        for q in 0..2 {
            for i in 0..MAC_TABLE_CAPACITY as u32 {
                board
                    .queue(0, q)
                    .on_rx(&frame(mac(1_000_000 + i), &[], 0x0800));
            }
        }
        // 2000 further MACs, half seen by both queues: 1500 distinct overall.
        for i in 0..1000 {
            board.queue(0, 0).on_rx(&frame(mac(i), &[], 0x0800));
            board.queue(0, 1).on_rx(&frame(mac(i + 500), &[], 0x0800));
        }
        let OverflowEstimate::About(n) = board.macs(0).overflow_macs else {
            panic!("an estimate expected")
        };
        assert!((1400..=1600).contains(&n), "{n}");
        let mut full = OverflowSketch::default();
        full.merge(&OverflowSketch([u64::MAX; SKETCH_WORDS]));
        assert!(matches!(full.estimate(), OverflowEstimate::AtLeast(n) if n > 30_000));
    }

    #[test]
    fn etype_table_overflow_is_counted() {
        let q = QueueStats::new();
        for t in 0..ETYPE_TABLE_CAPACITY as u16 + 5 {
            q.on_rx(&frame(A, &[], 0x0900 + t));
        }
        let r = q.etypes();
        assert_eq!(r.types.len(), ETYPE_TABLE_CAPACITY);
        assert_eq!(r.overflow, 5);
    }

    #[test]
    fn tables_read_empty_right_after_reset_before_the_worker_clears_them() {
        let q = QueueStats::new();
        q.on_rx(&frame(A, &[], 0x0800));
        q.reset();
        assert_eq!(q.macs(), MacReport::default());
        assert_eq!(q.etypes(), EtypeReport::default());
        q.on_rx(&frame(B, &[], 0x0806));
        assert_eq!(q.macs().macs, vec![MacCount { mac: B, frames: 1 }]);
        assert_eq!(q.etypes().types.len(), 1);
    }

    /// A kernel path with fixed figures: 5 frames (300 bytes) on queue 1, 4 of them from B and
    /// one from A, all IPv4; the sketch has one bit set.
    #[derive(Default)]
    struct FixedKernel {
        resets: AtomicU64,
    }

    impl KernelTally for FixedKernel {
        fn queue(&self, q: usize) -> Counters {
            if q != 1 {
                return Counters::default();
            }
            Counters {
                rx: 5,
                rx_bytes: 300,
                ..Counters::default()
            }
        }
        fn total(&self) -> Counters {
            self.queue(1)
        }
        fn macs(&self) -> (MacReport, OverflowSketch) {
            let mut words = [0; SKETCH_WORDS];
            words[0] = 1;
            let report = MacReport {
                macs: vec![
                    MacCount { mac: B, frames: 4 },
                    MacCount { mac: A, frames: 1 },
                ],
                overflow: 2,
                overflow_macs: OverflowEstimate::About(1),
            };
            (report, OverflowSketch::from_words(words))
        }
        fn etypes(&self) -> EtypeReport {
            EtypeReport {
                types: vec![EtypeCount {
                    level: 0,
                    ethertype: 0x0800,
                    frames: 5,
                    last_src: B,
                }],
                overflow: 1,
            }
        }
        fn reset(&self) {
            self.resets.fetch_add(1, Relaxed);
        }
    }

    #[test]
    fn the_board_counts_the_kernel_path_as_received_here_and_transmitted_there() {
        let kernel = Arc::new(FixedKernel::default());
        let board =
            StatsBoard::new(2, 2).with_kernel(vec![Some(kernel.clone() as Arc<dyn KernelTally>)]);
        board.queue(0, 0).on_rx(&frame(A, &[], 0x0800));
        board.queue(0, 0).add_counts(&Counters {
            rx_bytes: 60,
            ..Counters::default()
        });
        let t = board.totals(0);
        assert_eq!((t.rx, t.rx_bytes, t.tx), (6, 360, 0));
        let t = board.totals(1);
        assert_eq!((t.rx, t.tx, t.tx_bytes), (0, 5, 300), "forwarded out of 1");
        assert_eq!(board.queue_counters(0, 1).unwrap().rx, 5);
        assert_eq!(board.queue_counters(0, 0).unwrap().rx, 1);
        assert_eq!(board.queue_counters(1, 1).unwrap().tx, 5);
        assert_eq!(board.queue_counters(1, 0).unwrap().tx, 0);
        let m = board.macs(0);
        assert_eq!(
            m.macs,
            vec![
                MacCount { mac: B, frames: 4 },
                MacCount { mac: A, frames: 2 }
            ]
        );
        assert_eq!(m.overflow, 2);
        assert_eq!(
            m.overflow_macs,
            OverflowEstimate::About(1),
            "the sketches merge"
        );
        let e = board.etypes(0);
        assert_eq!((e.types[0].frames, e.types[0].last_src), (6, B));
        assert_eq!(e.overflow, 1);
        assert!(board.macs(1).macs.is_empty(), "no kernel path on 1");
        board.reset();
        assert_eq!(kernel.resets.load(Relaxed), 1);
        assert_eq!(board.totals(0).rx, 5, "the fixed kernel figures stay");
    }

    #[test]
    fn board_sums_queues_and_resets_everything() {
        let board = StatsBoard::new(2, 2);
        board.queue(0, 0).on_rx(&frame(A, &[], 0x0800));
        board.queue(0, 1).on_rx(&frame(A, &[], 0x0800));
        board.queue(0, 1).on_rx(&frame(B, &[], 0x0800));
        board.queue(0, 1).add_tx(5);
        board.queue(1, 0).on_rx(&frame(B, &[], 0x0806));
        let t = board.totals(0);
        assert_eq!((t.rx, t.tx), (3, 5));
        assert_eq!(board.totals(1).rx, 1);
        assert_eq!(
            board.totals(7),
            Counters::default(),
            "unknown interface reads as zero"
        );
        assert_eq!(
            board.macs(0).macs,
            vec![
                MacCount { mac: A, frames: 2 },
                MacCount { mac: B, frames: 1 }
            ]
        );
        let e = board.etypes(0).types;
        assert_eq!((e.len(), e[0].frames, e[0].last_src), (1, 3, B));
        board.reset();
        assert_eq!(board.totals(0), Counters::default());
        assert!(board.macs(0).macs.is_empty() && board.etypes(1).types.is_empty());
        assert!(board.queue_counters(2, 0).is_none() && board.queue_counters(0, 2).is_none());
    }
}
