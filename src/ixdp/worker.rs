//! One worker thread per queue index: moves frames between the interfaces' sockets of that
//! queue (docs/data-path.md, "The worker loop"). This file holds the rings and the thread
//! around the per-frame stages of `fastpath.rs`. Per round: one policy snapshot load, ring
//! operations in batches, one clock read per batch when a tap is on; per frame: no lock, no
//! allocation, no syscall.

use super::chain::Reassembly;
use super::fastpath::{self, BatchContext, FrameLists, FrameStore, Marked, Route, WorkerState};
use super::fault::FaultRng;
use super::pacing::{Next, Pacer, Polling, Round};
use super::policy::{Policy, PolicyCell};
use super::select::Sampler;
use super::stats::QueueStats;
use super::view::RingFigures;
use super::xsk::{Port, QueueSockets, RX_RING_SIZE, TX_RING_SIZE};
use crate::pqueue;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::MsgFlags;
use std::io::Write;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use xsk_rs::{FrameDesc, Umem};

/// Frames taken from an RX ring at once.
pub const BATCH: usize = 64;
/// The kernel's copy-mode transmit handles 32 descriptors per kick.
const MAX_KICKS: usize = 8;

/// Ring occupancy and socket statistics of one (interface, queue), written by its worker
/// when the control side asks (`if.qstats`), never on the packet path.
#[derive(Default)]
pub struct RingSnapshot {
    fill: AtomicU64,
    rx: AtomicU64,
    tx: AtomicU64,
    comp: AtomicU64,
    free_frames: AtomicU64,
    spare_frames: AtomicU64,
    rx_dropped: AtomicU64,
    rx_invalid_descs: AtomicU64,
    tx_invalid_descs: AtomicU64,
    rx_ring_full: AtomicU64,
    rx_fill_ring_empty_descs: AtomicU64,
    tx_ring_empty_descs: AtomicU64,
}

impl RingSnapshot {
    /// The figures the worker published last.
    pub fn load(&self) -> RingFigures {
        let r = Ordering::Relaxed;
        RingFigures {
            fill: self.fill.load(r),
            rx: self.rx.load(r),
            tx: self.tx.load(r),
            comp: self.comp.load(r),
            free_frames: self.free_frames.load(r),
            spare_frames: self.spare_frames.load(r),
            rx_dropped: self.rx_dropped.load(r),
            rx_invalid_descs: self.rx_invalid_descs.load(r),
            tx_invalid_descs: self.tx_invalid_descs.load(r),
            rx_ring_full: self.rx_ring_full.load(r),
            rx_fill_ring_empty_descs: self.rx_fill_ring_empty_descs.load(r),
            tx_ring_empty_descs: self.tx_ring_empty_descs.load(r),
        }
    }

    fn store(&self, f: &RingFigures) {
        let r = Ordering::Relaxed;
        self.fill.store(f.fill, r);
        self.rx.store(f.rx, r);
        self.tx.store(f.tx, r);
        self.comp.store(f.comp, r);
        self.free_frames.store(f.free_frames, r);
        self.spare_frames.store(f.spare_frames, r);
        self.rx_dropped.store(f.rx_dropped, r);
        self.rx_invalid_descs.store(f.rx_invalid_descs, r);
        self.tx_invalid_descs.store(f.tx_invalid_descs, r);
        self.rx_ring_full.store(f.rx_ring_full, r);
        self.rx_fill_ring_empty_descs
            .store(f.rx_fill_ring_empty_descs, r);
        self.tx_ring_empty_descs.store(f.tx_ring_empty_descs, r);
    }
}

/// A request/answer pair between the control thread and one worker: the control thread bumps
/// `requested`, the worker publishes its snapshots and sets `done` to it.
#[derive(Default)]
pub struct Refresh {
    /// Requests made.
    pub requested: AtomicU64,
    /// The last request answered.
    pub done: AtomicU64,
}

/// Everything one worker owns or reads.
pub struct Worker {
    /// The sockets of its queue, one per interface.
    pub sockets: QueueSockets,
    /// Bridge mode (two interfaces) or mirror mode (one).
    pub bridge: bool,
    /// How it waits.
    pub polling: Polling,
    /// The CPU to pin the thread to.
    pub cpu: Option<usize>,
    /// The thread's niceness.
    pub nice: Option<i32>,
    /// The policy the words publish.
    pub policy: Arc<PolicyCell>,
    /// The statistics of its queue, per interface.
    pub stats: Vec<Arc<QueueStats>>,
    /// Where it publishes ring details, per interface.
    pub snapshots: Vec<Arc<RingSnapshot>>,
    /// Ring-detail requests of the control thread.
    pub refresh: Arc<Refresh>,
    /// Its queue's tap sampling count (shared with the kernel tap's reader).
    pub sampler: Sampler,
    /// Raised when the engine stops.
    pub stop: Arc<AtomicBool>,
}

/// What [`Worker::receive`] did on one port.
struct Received {
    frames: usize,
    /// It took as many frames as it asked for: the RX ring may hold more.
    full: bool,
    /// The port it queued frames on for transmission.
    sent_on: Option<usize>,
}

impl Received {
    const NOTHING: Received = Received {
        frames: 0,
        full: false,
        sent_on: None,
    };
}

/// Per-thread scratch space, allocated once when the worker starts.
struct Scratch {
    /// Per port: the descriptors received and not yet handed on (a long frame's buffers may
    /// arrive over two receives).
    rx: Vec<Reassembly<FrameDesc>>,
    comp: Vec<FrameDesc>,
    out: Vec<FrameDesc>,
    /// Fault marks of `out`'s frames (see `fastpath::FrameLists`).
    marked: Vec<Marked>,
}

/// The frames of a UMEM, for the stages of `fastpath.rs`.
struct UmemFrames<'a>(&'a Umem);

impl FrameStore for UmemFrames<'_> {
    type Desc = FrameDesc;

    #[inline(always)]
    fn continues(&self, d: &FrameDesc) -> bool {
        d.has_more_frames()
    }

    #[inline(always)]
    unsafe fn buffer(&self, d: &FrameDesc) -> &[u8] {
        // SAFETY: the caller holds d (FrameStore's contract): a buffer of this UMEM in no
        // ring, so the kernel does not write it.
        unsafe { self.0.data(d) }.contents()
    }

    #[inline(always)]
    unsafe fn flip(&mut self, d: &mut FrameDesc, at: usize, mask: u8) {
        // SAFETY: as in `buffer`; no other reference to the buffer is alive.
        let mut data = unsafe { self.0.data_mut(d) };
        if let Some(b) = data.contents_mut().get_mut(at) {
            *b ^= mask;
        }
    }

    #[inline]
    unsafe fn copy(&mut self, from: &FrameDesc, to: &mut FrameDesc) -> bool {
        // SAFETY: as in `buffer`, for two distinct buffers held by the caller.
        let (src, mut dst) = unsafe { (self.0.data(from).contents(), self.0.data_mut(to)) };
        let mut cursor = dst.cursor();
        cursor.set_pos(0);
        let fits = cursor.write_all(src).is_ok();
        // The copy is a chain of its own: a buffer continues where its original did.
        to.set_options(from.options());
        fits
    }
}

impl Worker {
    /// The thread's body: rounds over the sockets until the engine stops.
    pub fn run(mut self) {
        settle_thread(self.cpu, self.nice);
        let mut scratch = Scratch {
            rx: (0..self.sockets.ports.len())
                .map(|_| Reassembly::new(BATCH))
                .collect(),
            comp: vec![FrameDesc::default(); TX_RING_SIZE as usize],
            out: Vec::with_capacity(2 * BATCH),
            marked: Vec::with_capacity(2 * BATCH),
        };
        let mut state = WorkerState::new(FaultRng::for_worker(self.sockets.queue as usize));
        state.sampler = self.sampler.clone();
        let mut pollfds = poll_fds(&self.sockets.ports);
        let mut pacer = Pacer::new(self.polling, Instant::now());
        let mut tx_dirty = vec![false; self.sockets.ports.len()];
        while !self.stop.load(Ordering::Relaxed) {
            let round = self.round(&mut state, &mut scratch, &mut tx_dirty);
            self.answer_refresh();
            match pacer.next(&round, Instant::now) {
                Next::Go => {}
                Next::Spin => std::hint::spin_loop(),
                Next::Wait(wait) => std::thread::sleep(wait),
                Next::Poll(ms) => {
                    let _ = nix::poll::poll(&mut pollfds, PollTimeout::from(ms));
                }
            }
        }
    }

    /// One pass over every port: completions and fill rings, one batch received per port,
    /// transmit kicks. Returns what it did, for the polling policy.
    fn round(
        &mut self,
        state: &mut WorkerState,
        scratch: &mut Scratch,
        tx_dirty: &mut [bool],
    ) -> Round {
        let policy = self.policy.load();
        let mut r = Round::default();
        for p in 0..self.sockets.ports.len() {
            r.work += self.reclaim(p, &mut scratch.comp);
            self.refill(p);
        }
        for p in 0..self.sockets.ports.len() {
            let got = self.receive(p, &policy, state, scratch);
            r.received += got.frames;
            r.more |= got.full;
            if let Some(o) = got.sent_on {
                tx_dirty[o] = true;
            }
        }
        r.work += r.received;
        drop(policy);
        for (port, dirty) in self.sockets.ports.iter_mut().zip(tx_dirty) {
            if *dirty || port.down {
                *dirty = kick_tx(port);
            }
            r.tx_waiting |= *dirty;
        }
        r
    }

    /// Publishes the ring snapshots if the control thread asked for them.
    fn answer_refresh(&mut self) {
        let requested = self.refresh.requested.load(Ordering::Acquire);
        if requested != self.refresh.done.load(Ordering::Relaxed) {
            self.publish_snapshots();
            self.refresh.done.store(requested, Ordering::Release);
        }
    }

    /// Takes transmitted frames back from port `p`'s completion ring and returns each to its
    /// owner.
    fn reclaim(&mut self, p: usize, comp: &mut [FrameDesc]) -> usize {
        // SAFETY: the completion ring only returns frames of this UMEM.
        let n = unsafe { self.sockets.ports[p].comp.consume(comp) };
        for d in &comp[..n] {
            self.sockets.give_back(*d);
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

    /// Where frames received on port `p` go now.
    fn route(&self, p: usize) -> Route {
        if self.bridge {
            let out = 1 - p;
            Route::Bridge {
                out,
                out_down: self.sockets.ports[out].down,
            }
        } else {
            Route::Mirror
        }
    }

    /// Receives a batch on port `p` and runs the fast path over it.
    fn receive(
        &mut self,
        p: usize,
        policy: &Policy,
        state: &mut WorkerState,
        scratch: &mut Scratch,
    ) -> Received {
        let route = self.route(p);
        // Never take more frames than the output TX ring can hold: then no frame is ever
        // dropped for lack of ring room here, and a slow output pushes back to the kernel.
        let room = match route {
            Route::Bridge { out, .. } => {
                (self.sockets.ports[out].tx.nb_free(BATCH as u32) as usize).min(BATCH)
            }
            Route::Mirror => BATCH,
        };
        // Descriptors of a frame whose end is still in the RX ring wait here, and go out with
        // the next batch: leave TX room for them.
        let reasm = &mut scratch.rx[p];
        let take = batch_size(policy, p, route, room).saturating_sub(reasm.held());
        if take == 0 {
            return Received::NOTHING;
        }
        // SAFETY: the RX ring only returns buffers of this UMEM.
        let n = unsafe { self.sockets.ports[p].rx.consume(reasm.space(take)) };
        if n == 0 {
            return Received::NOTHING;
        }
        let settled = reasm.settle(
            n,
            FrameDesc::has_more_frames,
            &mut self.sockets.ports[p].free,
        );
        if settled.too_long > 0 {
            self.stats[p].add_err(settled.too_long);
        }
        let received = reasm.frames();
        if received.is_empty() {
            reasm.keep_pending();
            return Received {
                frames: n,
                full: n == take,
                sent_on: None,
            };
        }
        prefetch_headers(&self.sockets.umem, received);
        let cx = BatchContext {
            policy,
            port: p,
            route,
            ts: batch_time(policy, p, route),
            room,
        };
        if !policy.queues.is_empty() {
            // What pcapng's statistics call frames received on the interface.
            let frames = received.iter().filter(|d| !d.has_more_frames()).count() as u64;
            for q in &policy.queues {
                q.producer.count_received(p, frames);
            }
        }
        scratch.out.clear();
        scratch.marked.clear();
        let sockets = &mut self.sockets;
        let lists = FrameLists {
            recycle: &mut sockets.ports[p].free,
            out: &mut scratch.out,
            spares: &mut sockets.spares,
            marked: &mut scratch.marked,
        };
        let mut frames = UmemFrames(&sockets.umem);
        let mut counts =
            fastpath::run_batch(&cx, &mut frames, received, &self.stats[p], state, lists);
        reasm.keep_pending();
        let out_frames = std::mem::take(&mut counts.tx);
        let out_bytes = std::mem::take(&mut counts.tx_bytes);
        self.stats[p].add_counts(&counts);
        let sent_on = match route {
            Route::Bridge { out, .. } if !scratch.out.is_empty() => {
                self.transmit(p, out, &mut scratch.out, out_frames, out_bytes);
                Some(out)
            }
            _ => None,
        };
        Received {
            frames: n,
            full: n == take,
            sent_on,
        }
    }

    /// Puts the buffers of the frames of a batch received on `p` (`frames` frames, `bytes` in
    /// all) into the TX ring of `o`.
    fn transmit(&mut self, p: usize, o: usize, out: &mut Vec<FrameDesc>, frames: u64, bytes: u64) {
        // SAFETY: every buffer in `out` belongs to this UMEM and is in no ring; the batch took
        // no more buffers than this TX ring had room for, and only this thread produces on it.
        // A long frame's buffers keep their XDP_PKT_CONTD marks, so they go out as one frame.
        let sent = unsafe { self.sockets.ports[o].tx.produce(out) };
        if sent == out.len() {
            self.stats[o].add_tx(frames);
            self.stats[o].add_tx_bytes(bytes);
            return;
        }
        // Cannot happen while we are the ring's only producer; account for it rather than
        // lose frames if it ever does.
        self.stats[p].add_err(frames);
        for d in out.drain(..) {
            self.sockets.give_back(d);
        }
    }

    fn publish_snapshots(&mut self) {
        let spares = self.sockets.spares.len() as u64;
        for (port, snap) in self.sockets.ports.iter_mut().zip(&self.snapshots) {
            // The socket statistics keep their last values when the kernel does not answer.
            let mut f = snap.load();
            f.fill = u64::from(RX_RING_SIZE - port.fill.nb_free_exact());
            f.rx = u64::from(port.rx.nb_avail_exact());
            f.tx = u64::from(TX_RING_SIZE - port.tx.nb_free_exact());
            f.comp = u64::from(port.comp.nb_avail_exact());
            f.free_frames = port.free.len() as u64;
            f.spare_frames = spares;
            if let Ok(s) = port.rx.fd().xdp_statistics() {
                f.rx_dropped = s.rx_dropped();
                f.rx_invalid_descs = s.rx_invalid_descs();
                f.tx_invalid_descs = s.tx_invalid_descs();
                f.rx_ring_full = s.rx_ring_full();
                f.rx_fill_ring_empty_descs = s.rx_fill_ring_empty_descs();
                f.tx_ring_empty_descs = s.tx_ring_empty_descs();
            }
            snap.store(&f);
        }
    }
}

/// How many frames to take from the RX ring: at most `room`, and with duplication on only as
/// many as leave a TX slot for each copy.
fn batch_size(policy: &Policy, p: usize, route: Route, room: usize) -> usize {
    let cfg = &policy.fault[p];
    if matches!(route, Route::Bridge { .. }) && cfg.enabled && cfg.dup_p > 0 {
        room / 2
    } else {
        room
    }
}

/// The time stamp of a batch: one clock read, and only when a tap will stamp frames with it.
fn batch_time(policy: &Policy, p: usize, route: Route) -> u64 {
    let tx_tap = matches!(route, Route::Bridge { out, .. } if policy.tap_tx[out]);
    if policy.tap_rx[p] || tx_tap {
        pqueue::now_ns()
    } else {
        0
    }
}

/// The kernel wrote these frames on another CPU (the one that ran the receive softirq), so
/// the first read of each header is a cache miss: measured with perf, the read of the source
/// MAC for the statistics was 40 % of the worker's user-space time. Asking for every header of
/// the batch at once overlaps those misses.
#[inline]
fn prefetch_headers(umem: &Umem, frames: &[FrameDesc]) {
    for d in frames {
        // SAFETY: d came from this UMEM's RX ring; only the address is computed.
        prefetch(unsafe { umem.data(d) }.contents().as_ptr());
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

/// What the worker sleeps on in poll(): every RX socket, for a frame to read.
fn poll_fds(ports: &[Port]) -> Vec<PollFd<'static>> {
    ports
        .iter()
        .map(|p| {
            // SAFETY: the descriptors belong to the worker's sockets, which the worker owns
            // and which outlive this (a local of `Worker::run`, dropped before it).
            let fd = unsafe { BorrowedFd::borrow_raw(p.fd) };
            PollFd::new(fd, PollFlags::POLLIN)
        })
        .collect()
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

/// One transmit kick (a zero-length send, as AF_XDP defines it); records and returns whether
/// the interface is up. Not `TxQueue::wakeup`, which hides ENETDOWN.
fn tx_kick(port: &mut Port) -> bool {
    let sent = nix::sys::socket::send(port.fd, &[], MsgFlags::MSG_DONTWAIT);
    port.down = sent == Err(Errno::ENETDOWN);
    !port.down
}

/// Niceness is per thread on Linux: PRIO_PROCESS with a thread id changes only that thread.
/// Pins the calling thread to `cpu` and renices it, as configured.
pub(super) fn settle_thread(cpu: Option<usize>, nice: Option<i32>) {
    if let Some(cpu) = cpu {
        pin_to_cpu(cpu);
    }
    if let Some(nice) = nice {
        set_thread_nice(nice);
    }
}

fn set_thread_nice(nice: i32) {
    let tid = nix::unistd::gettid().as_raw();
    // SAFETY: a plain syscall about the calling thread (nix has no setpriority).
    unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) };
}

fn pin_to_cpu(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    if set.set(cpu).is_ok() {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
    }
}
