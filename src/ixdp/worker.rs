//! One worker thread per queue index: moves frames between the interfaces' sockets of that
//! queue, in the order of product.md §2. Per round: one policy snapshot load, ring operations
//! in batches, one clock read per batch when a tap is on; per frame: no lock, no allocation,
//! no syscall.

use super::fault::{self, FaultRng};
use super::policy::{Policy, PolicyCell};
use super::stats::QueueStats;
use super::xsk::{owner_of, Owner, Port, QueueSockets, RX_RING_SIZE, TX_RING_SIZE};
use crate::pqueue::{Direction, Producer};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xsk_rs::FrameDesc;

/// Frames taken from an RX ring at once.
pub const BATCH: usize = 64;
/// How long a worker in adaptive mode keeps spinning after the last frame before it sleeps.
const SPIN_BEFORE_SLEEP: Duration = Duration::from_millis(2);
/// Upper bound of one sleep, so the worker sees stop and refresh requests.
const SLEEP_MS: i32 = 100;
/// The kernel's copy-mode transmit handles 32 descriptors per kick.
const MAX_KICKS: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Polling {
    /// Spin while traffic flows, sleep in poll() when the rings stay empty.
    Adaptive,
    /// Spin always (a dedicated core).
    Busy,
}

/// Ring occupancy and socket statistics of one (interface, queue), written by its worker
/// when the control side asks (`if.qstats`), never on the packet path.
#[derive(Default)]
pub struct RingSnapshot {
    pub fill: AtomicU64,
    pub rx: AtomicU64,
    pub tx: AtomicU64,
    pub comp: AtomicU64,
    pub free_frames: AtomicU64,
    pub spare_frames: AtomicU64,
    pub rx_dropped: AtomicU64,
    pub rx_invalid_descs: AtomicU64,
    pub tx_invalid_descs: AtomicU64,
    pub rx_ring_full: AtomicU64,
    pub rx_fill_ring_empty_descs: AtomicU64,
    pub tx_ring_empty_descs: AtomicU64,
}

/// A request/answer pair between the control thread and one worker.
#[derive(Default)]
pub struct Refresh {
    pub requested: AtomicU64,
    pub done: AtomicU64,
}

/// Everything one worker owns or reads.
pub struct Worker {
    pub sockets: QueueSockets,
    pub bridge: bool,
    pub polling: Polling,
    pub cpu: Option<usize>,
    pub nice: Option<i32>,
    pub policy: Arc<PolicyCell>,
    pub stats: Vec<Arc<QueueStats>>,
    pub snapshots: Vec<Arc<RingSnapshot>>,
    pub refresh: Arc<Refresh>,
    pub producer: Option<Arc<Producer>>,
    pub stop: Arc<AtomicBool>,
    pub seed: u64,
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we own (vDSO, no syscall).
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Per-thread scratch space, allocated once when the worker starts.
struct Scratch {
    rx: Vec<FrameDesc>,
    comp: Vec<FrameDesc>,
    out: Vec<FrameDesc>,
}

impl Worker {
    pub fn run(mut self) {
        if let Some(cpu) = self.cpu {
            pin_to_cpu(cpu);
        }
        if let Some(nice) = self.nice {
            set_thread_nice(nice);
        }
        let mut scratch = Scratch {
            rx: vec![FrameDesc::default(); BATCH],
            comp: vec![FrameDesc::default(); TX_RING_SIZE as usize],
            out: Vec::with_capacity(2 * BATCH),
        };
        let mut rng = FaultRng::new(self.seed);
        let mut pollfds: Vec<libc::pollfd> = self
            .sockets
            .ports
            .iter()
            .map(|p| libc::pollfd {
                fd: p.fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let mut last_work = Instant::now();
        let mut empty_rounds: u32 = 0;
        let mut dozing = false;
        let mut tx_dirty = vec![false; self.sockets.ports.len()];

        while !self.stop.load(Ordering::Relaxed) {
            let policy = self.policy.load();
            let mut work = 0usize;
            for p in 0..self.sockets.ports.len() {
                work += self.reclaim(p, &mut scratch.comp);
                self.refill(p);
            }
            for p in 0..self.sockets.ports.len() {
                let (got, sent_on) = self.receive(p, &policy, &mut rng, &mut scratch);
                work += got;
                if let Some(o) = sent_on {
                    tx_dirty[o] = true;
                }
            }
            drop(policy);
            for (p, dirty) in tx_dirty.iter_mut().enumerate() {
                let port = &mut self.sockets.ports[p];
                if *dirty || port.down {
                    *dirty = kick_tx(port);
                }
            }

            let requested = self.refresh.requested.load(Ordering::Acquire);
            if requested != self.refresh.done.load(Ordering::Relaxed) {
                self.publish_snapshots();
                self.refresh.done.store(requested, Ordering::Release);
            }

            if work > 0 {
                empty_rounds = 0;
                dozing = false;
                continue;
            }
            if self.polling == Polling::Busy {
                std::hint::spin_loop();
                continue;
            }
            empty_rounds += 1;
            // Reading the clock on every empty round would cost more than the round itself.
            // Once a sleep ran out without traffic, sleep again at once: spinning after
            // every timeout would cost a few percent of a core on an idle tap.
            if dozing || empty_rounds % 256 == 0 {
                if !dozing && empty_rounds == 256 {
                    last_work = Instant::now();
                } else if dozing || last_work.elapsed() >= SPIN_BEFORE_SLEEP {
                    let timeout = if tx_dirty.iter().any(|&d| d) {
                        1
                    } else {
                        SLEEP_MS
                    };
                    // SAFETY: pollfds is a valid array of pollfd for the call.
                    let ready = unsafe {
                        libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, timeout)
                    };
                    dozing = ready == 0;
                    empty_rounds = 0;
                    continue;
                }
            }
            std::hint::spin_loop();
        }
    }

    /// Takes transmitted frames back from port `p`'s completion ring and returns each to its
    /// owner.
    fn reclaim(&mut self, p: usize, comp: &mut [FrameDesc]) -> usize {
        let nports = self.sockets.ports.len();
        // SAFETY: the completion ring only returns frames of this UMEM.
        let n = unsafe { self.sockets.ports[p].comp.consume(comp) };
        for d in &comp[..n] {
            match owner_of(d.addr(), nports) {
                Owner::Circuit(c) => self.sockets.ports[c].free.push(*d),
                Owner::Spare => self.sockets.spares.push(*d),
            }
        }
        n
    }

    /// Gives port `p`'s fill ring every free frame of its circuit that fits.
    fn refill(&mut self, p: usize) {
        let port = &mut self.sockets.ports[p];
        let have = port.free.len();
        if have > 0 {
            let room = port.fill.nb_free(have as u32) as usize;
            let k = room.min(have);
            if k > 0 {
                // SAFETY: these frames are ours (taken from rings of this UMEM) and in no ring.
                let put = unsafe { port.fill.produce(&port.free[have - k..]) };
                port.free.truncate(have - put);
            }
        }
        if port.fill.needs_wakeup() {
            let _ = port.fill.wakeup(port.rx.fd_mut(), 0);
        }
    }

    /// Receives a batch on port `p` and runs the fast path over it. Returns the frames
    /// received and the port something was queued on for transmission.
    fn receive(
        &mut self,
        p: usize,
        policy: &Policy,
        rng: &mut FaultRng,
        scratch: &mut Scratch,
    ) -> (usize, Option<usize>) {
        let o = if self.bridge { Some(1 - p) } else { None };
        // Never take more frames than the output TX ring can hold: then no frame is ever
        // dropped for lack of ring room here, and a slow output pushes back to the kernel.
        let limit = match o {
            Some(o) => (self.sockets.ports[o].tx.nb_free(BATCH as u32) as usize).min(BATCH),
            None => BATCH,
        };
        // With duplication on, take only as many frames as leave a slot for each copy.
        let cfg = &policy.fault[p];
        let take = if o.is_some() && cfg.enabled && cfg.dup_p > 0 {
            limit / 2
        } else {
            limit
        };
        if take == 0 {
            return (0, None);
        }
        // SAFETY: the RX ring only returns frames of this UMEM.
        let n = unsafe { self.sockets.ports[p].rx.consume(&mut scratch.rx[..take]) };
        if n == 0 {
            return (0, None);
        }
        let stats = &self.stats[p];
        let umem = &self.sockets.umem;
        // The kernel wrote these frames on another CPU (the one that ran the receive
        // softirq), so the first read of each header is a cache miss: measured with perf, the
        // read of the source MAC for the statistics was 40 % of the worker's user-space time.
        // Asking for every header of the batch at once overlaps those misses.
        for d in &scratch.rx[..n] {
            // SAFETY: d came from this UMEM's RX ring; only the address is computed.
            prefetch(unsafe { umem.data(d) }.contents().as_ptr());
        }
        let producer = self.producer.as_deref();
        let tap_rx = policy.tap_rx[p];
        // One clock read per batch, and only when a tap will stamp frames with it.
        let ts = if tap_rx || o.is_some_and(|o| policy.tap_tx[o]) {
            now_ns()
        } else {
            0
        };
        scratch.out.clear();
        let mut dropped = 0u64;
        let mut fi_dropped = 0u64;
        let mut fi_flipped = 0u64;
        let mut fi_dup = 0u64;
        let mut noif = 0u64;
        for d in scratch.rx[..n].iter_mut() {
            // SAFETY: d came from this UMEM's RX ring and is in no ring now.
            let frame = unsafe { umem.data(d) }.contents();
            stats.on_rx(frame);
            if tap_rx && policy.tap_selects(frame) {
                if let Some(q) = producer {
                    q.push(frame, p as u8, Direction::Rx, ts);
                }
            }
            let Some(out_port) = o else {
                // Mirror mode: receive and tap only.
                self.sockets.ports[p].free.push(*d);
                continue;
            };
            if self.sockets.ports[out_port].down {
                noif += 1;
                self.sockets.ports[p].free.push(*d);
                continue;
            }
            if policy.drop_selects(frame) {
                dropped += 1;
                self.sockets.ports[p].free.push(*d);
                continue;
            }
            if policy.fault_selects(p, frame) {
                let decision = fault::decide(&policy.fault[p], rng);
                if decision.drop {
                    fi_dropped += 1;
                    dropped += 1;
                    self.sockets.ports[p].free.push(*d);
                    continue;
                }
                if decision.flip {
                    // SAFETY: the worker holds d exclusively (see above).
                    let mut data = unsafe { umem.data_mut(d) };
                    // A frame of 14 bytes or less has no bit that may flip: not counted.
                    if fault::flip_random_bit(data.contents_mut(), rng) {
                        fi_flipped += 1;
                    }
                }
                scratch.out.push(*d);
                // A duplicate needs a second frame and a second TX slot; without either the
                // frame goes once and is not counted as duplicated.
                if decision.dup && scratch.out.len() < limit {
                    if let Some(mut spare) = self.sockets.spares.pop() {
                        // SAFETY: d and spare are distinct frames of this UMEM held by us.
                        let src = unsafe { umem.data(d) }.contents();
                        let mut dst = unsafe { umem.data_mut(&mut spare) };
                        let mut cursor = dst.cursor();
                        cursor.set_pos(0);
                        if cursor.write_all(src).is_ok() {
                            scratch.out.push(spare);
                            fi_dup += 1;
                        } else {
                            self.sockets.spares.push(spare);
                        }
                    }
                }
                continue;
            }
            scratch.out.push(*d);
        }
        if dropped > 0 {
            stats.add_drop(dropped);
        }
        if noif > 0 {
            stats.add_noif(noif);
        }
        if fi_dropped > 0 {
            stats.add_fi_dropped(fi_dropped);
        }
        if fi_flipped > 0 {
            stats.add_fi_flipped(fi_flipped);
        }
        if fi_dup > 0 {
            stats.add_fi_duplicated(fi_dup);
        }
        let Some(o) = o else {
            return (n, None);
        };
        if scratch.out.is_empty() {
            return (n, None);
        }
        if policy.tap_tx[o] {
            if let Some(q) = producer {
                for d in &scratch.out {
                    // SAFETY: frames in `out` are held by this worker until produced below.
                    let frame = unsafe { umem.data(d) }.contents();
                    if policy.tap_selects(frame) {
                        q.push(frame, o as u8, Direction::Tx, ts);
                    }
                }
            }
        }
        // SAFETY: every frame in `out` belongs to this UMEM and is in no ring; `limit` was the
        // free room of this TX ring, and only this thread produces on it.
        let sent = unsafe { self.sockets.ports[o].tx.produce(&scratch.out) };
        if sent == scratch.out.len() {
            self.stats[o].add_tx(sent as u64);
        } else {
            // Cannot happen while we are the ring's only producer; account for it rather
            // than lose frames if it ever does.
            self.stats[p].add_err(scratch.out.len() as u64);
            let nports = self.sockets.ports.len();
            for d in scratch.out.drain(..) {
                match owner_of(d.addr(), nports) {
                    Owner::Circuit(c) => self.sockets.ports[c].free.push(d),
                    Owner::Spare => self.sockets.spares.push(d),
                }
            }
        }
        (n, Some(o))
    }

    fn publish_snapshots(&mut self) {
        let spares = self.sockets.spares.len() as u64;
        for (port, snap) in self.sockets.ports.iter_mut().zip(&self.snapshots) {
            let r = Ordering::Relaxed;
            snap.fill
                .store((RX_RING_SIZE - port.fill.nb_free_exact()) as u64, r);
            snap.rx.store(port.rx.nb_avail_exact() as u64, r);
            snap.tx
                .store((TX_RING_SIZE - port.tx.nb_free_exact()) as u64, r);
            snap.comp.store(port.comp.nb_avail_exact() as u64, r);
            snap.free_frames.store(port.free.len() as u64, r);
            snap.spare_frames.store(spares, r);
            if let Ok(s) = port.rx.fd().xdp_statistics() {
                snap.rx_dropped.store(s.rx_dropped(), r);
                snap.rx_invalid_descs.store(s.rx_invalid_descs(), r);
                snap.tx_invalid_descs.store(s.tx_invalid_descs(), r);
                snap.rx_ring_full.store(s.rx_ring_full(), r);
                snap.rx_fill_ring_empty_descs
                    .store(s.rx_fill_ring_empty_descs(), r);
                snap.tx_ring_empty_descs.store(s.tx_ring_empty_descs(), r);
            }
        }
    }
}

/// Hints the CPU to load the cache line at `p`; never faults, changes nothing.
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults, even on an invalid address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Asks the kernel to transmit what waits in the TX ring (copy mode needs a kick per 32
/// descriptors). Returns whether frames are still waiting.
fn kick_tx(port: &mut Port) -> bool {
    // While the interface is down the kernel may also have drained the ring, so a down port
    // is probed even with nothing to send: that is how it notices the port came back.
    if port.down && !tx_kick(port) {
        return port.tx.nb_free_exact() != TX_RING_SIZE;
    }
    for _ in 0..MAX_KICKS {
        if port.tx.nb_free_exact() == TX_RING_SIZE {
            return false;
        }
        if !port.tx.needs_wakeup() {
            return true;
        }
        if !tx_kick(port) {
            return true;
        }
    }
    port.tx.nb_free_exact() != TX_RING_SIZE
}

/// One transmit kick; records and returns whether the interface is up. A raw sendto
/// because `TxQueue::wakeup` hides ENETDOWN.
fn tx_kick(port: &mut Port) -> bool {
    // SAFETY: a zero-length sendto on our own socket, as AF_XDP defines the kick.
    let rc = unsafe {
        libc::sendto(
            port.fd,
            std::ptr::null(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null(),
            0,
        )
    };
    port.down = rc < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENETDOWN);
    !port.down
}

/// Niceness is per thread on Linux: PRIO_PROCESS with a thread id changes only that thread.
fn set_thread_nice(nice: i32) {
    // SAFETY: plain syscalls about the calling thread.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice);
    }
}

fn pin_to_cpu(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    if set.set(cpu).is_ok() {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
    }
}
