//! The kernel tap (docs/kernel-path.md, "Tapped frames"): the taps of frames that the kernel
//! path forwards. Where a port's frames are wanted only by a tap, the XDP program forwards them
//! in the kernel like untapped ones and copies each into its interface's BPF ring buffer
//! (`ktap_ring`) on the way. One thread reads the rings of both ports and runs the taps' rule
//! over every copy, into the packet queues.
//!
//! Why not the workers: a frame through a worker pays AF_XDP's copy into the UMEM, a wake-up of
//! the worker, and a transmit on the other port (in copy mode, a new skb and a second copy);
//! here the kernel forwards the frame itself and the tap pays one copy into the ring, read in
//! batches. A ring that is full loses nothing: the program hands the frame to the AF_XDP socket
//! instead, and the worker forwards and taps it.
//!
//! The thread waits as the workers do ([`Pacer`]), with longer bounds: it reads at once while
//! the rings keep filling, lets records gather at medium rates and sleeps on the rings' epoll
//! descriptors when traffic is low.

use super::fastpath::tap_forwarded;
use super::pacing::{Next, Pacer, Polling, Round};
use super::policy::{Policy, PolicyCell};
use super::select::Sampler;
use super::xdp::{u32_at, u64_at};
use crate::pqueue;
use libbpf_rs::{MapHandle, RingBufferBuilder};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use std::cell::RefCell;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bytes before the frame in a ring record (`struct ktap_hdr` of bpf/ethertap.bpf.c): the
/// CLOCK_MONOTONIC time of the copy in ns, the frame's length, the receive queue.
pub const RECORD_HEADER: usize = 16;

/// Records read per round at most, so that a ring that never empties still lets the thread
/// see the clock, policy updates and stop requests.
const ROUND_RECORDS: usize = 256;

/// Records a wait tries to gather: the kernel has forwarded every frame already, so a wait adds
/// latency only to the capture, and the reader waits for batches many times the workers'.
const GATHER: usize = 256;
/// The longest such wait. At the highest rate a veth carries (1.5 Mpps) the ring fills 4 MiB
/// in about 30 ms, so nothing is near full after 2 ms; a small packet queue shortens it
/// (`Reader::room`).
const MAX_WAIT: Duration = Duration::from_millis(2);

/// How the reader thread runs. It always waits in proportion to the traffic, with bounds of its
/// own ([`GATHER`], [`MAX_WAIT`]): `--busy-poll` and `--poll-wait` are for the workers, which
/// forward frames, and a spinning reader would only take a core from a worker.
#[derive(Clone, Copy, Debug)]
pub struct ReaderConfig {
    /// The CPU to pin it to.
    pub cpu: Option<usize>,
    /// Its niceness.
    pub nice: Option<i32>,
}

/// A frame copied by the XDP program, as read from a ring record.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// CLOCK_MONOTONIC time of the copy, ns.
    pub mono_ns: u64,
    /// The receive queue.
    pub queue: u32,
    /// The frame, whole.
    pub frame: &'a [u8],
}

impl<'a> Record<'a> {
    /// Parses a record; None for one shorter than its header says.
    pub fn parse(rec: &'a [u8]) -> Option<Record<'a>> {
        let mono_ns = u64_at(rec, 0)?;
        let len = u32_at(rec, 8)? as usize;
        let queue = u32_at(rec, 12)?;
        let frame = rec.get(RECORD_HEADER..RECORD_HEADER.checked_add(len)?)?;
        Some(Record {
            mono_ns,
            queue,
            frame,
        })
    }
}

/// What the callbacks of the rings share.
struct Reader<'c> {
    cell: &'c PolicyCell,
    /// The snapshot of `cell` in use, and the cell's version when it was taken.
    policy: Arc<Policy>,
    version: u64,
    /// [queue]: the sampling counts, shared with the workers.
    samplers: Vec<Sampler>,
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC at the round's start, ns: the queue's time stamps
    /// are wall-clock time.
    offset_ns: u64,
    /// Per port, records of the round: what pcapng calls frames received on the interface.
    received: [u64; 2],
}

impl Reader<'_> {
    fn begin(&mut self) {
        self.offset_ns = pqueue::now_ns().saturating_sub(monotonic_ns());
    }

    /// Takes the newest policy if it changed. Checked per record: a record exists only because
    /// the tap flag was set, which the control side does after publishing the policy that
    /// wants it, so a record is never judged by a policy older than the one it was copied for.
    fn newest_policy(&mut self) {
        let version = self.cell.version();
        if version != self.version {
            self.version = version;
            self.policy = self.cell.snapshot();
        }
    }

    fn record(&mut self, port: usize, rec: &[u8]) {
        self.newest_policy();
        // Our own program writes the records; one that does not parse is skipped.
        let Some(r) = Record::parse(rec) else {
            return;
        };
        self.received[port] += 1;
        let ts = r.mono_ns.saturating_add(self.offset_ns);
        // Only served queues take the kernel path, and the engine has a count for each.
        let Some(sampler) = self.samplers.get_mut(r.queue as usize) else {
            return;
        };
        tap_forwarded(&self.policy, sampler, port, 1 - port, r.frame, ts);
    }

    /// The longest wait that leaves every packet queue's lanes three quarters free at the
    /// rate `pacer` measured: a wait must not fill a small queue (`--slots`) by itself.
    fn room(&self, pacer: &Pacer) -> Duration {
        let p = &self.policy;
        let Some(slots) = p.queues.iter().map(|q| q.producer.layout().slots).min() else {
            return Duration::MAX;
        };
        // A record fills a slot per tap point that takes it: two with the RX tap on its input
        // and the TX tap on its output.
        let copies = (0..2)
            .map(|i| u32::from(p.tap_rx[i]) + u32::from(p.tap_tx[1 - i]))
            .max()
            .unwrap_or(1)
            .max(1);
        pacer.time_for(f64::from(slots) / 4.0 / f64::from(copies))
    }

    /// Adds the round's received frames to the queues' interface counters.
    fn end(&mut self) {
        for (p, n) in self.received.iter_mut().enumerate() {
            if *n > 0 {
                for q in &self.policy.queues {
                    q.producer.count_received(p, *n);
                }
                *n = 0;
            }
        }
    }
}

fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
    })
}

/// Starts the reader of `rings` (one per port, in port order) under `policy`; it runs until
/// `stop` is raised. Returns once the reader has mapped the rings, or why it could not.
pub fn spawn(
    rings: Vec<MapHandle>,
    policy: Arc<PolicyCell>,
    samplers: Vec<Sampler>,
    config: ReaderConfig,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    let (ready, started) = std::sync::mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("ixdp-ktap".into())
        .spawn(move || {
            super::worker::settle_thread(config.cpu, config.nice);
            run(&rings, &policy, samplers, &stop, ready);
        })?;
    match started.recv() {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => {
            let _ = handle.join();
            Err(std::io::Error::other(format!("mapping the rings: {e}")))
        }
        Err(_) => Err(std::io::Error::other(
            "the reader thread ended at its start",
        )),
    }
}

/// The reader's body: maps the rings, says so on `ready`, then reads until `stop`.
fn run(
    rings: &[MapHandle],
    cell: &PolicyCell,
    samplers: Vec<Sampler>,
    stop: &AtomicBool,
    ready: std::sync::mpsc::Sender<Result<(), libbpf_rs::Error>>,
) {
    let reader = RefCell::new(Reader {
        cell,
        version: cell.version(),
        policy: cell.snapshot(),
        samplers,
        offset_ns: 0,
        received: [0; 2],
    });
    // A consumer per ring: libbpf reads the rings of one consumer in order and stops after n
    // records, so with one consumer a busy first ring would starve the second.
    let rbs = rings
        .iter()
        .enumerate()
        .take(2)
        .map(|(port, ring)| {
            let reader = &reader;
            let mut builder = RingBufferBuilder::new();
            builder.add(ring, move |rec: &[u8]| {
                reader.borrow_mut().record(port, rec);
                0
            })?;
            builder.build()
        })
        .collect::<Result<Vec<_>, _>>();
    let rbs = match rbs {
        Ok(rbs) => {
            let _ = ready.send(Ok(()));
            rbs
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let mut pacer = Pacer::gathering(
        Polling::Proportional { max_wait: MAX_WAIT },
        GATHER,
        Instant::now(),
    );
    while !stop.load(Ordering::Relaxed) {
        reader.borrow_mut().begin();
        let mut n = 0;
        let mut more = false;
        for rb in &rbs {
            let got = rb.consume_raw_n(ROUND_RECORDS).max(0) as usize;
            n += got;
            more |= got >= ROUND_RECORDS;
        }
        reader.borrow_mut().end();
        let round = Round {
            received: n,
            work: n,
            more,
            tx_waiting: false,
        };
        match pacer.next(&round, Instant::now) {
            Next::Go | Next::Spin => {}
            Next::Wait(wait) => {
                std::thread::sleep(wait.min(reader.borrow().room(&pacer)));
            }
            Next::Poll(ms) => wait_for_records(&rbs, ms),
        }
    }
    // What the rings still hold when the engine stops goes to the queues too.
    reader.borrow_mut().begin();
    for rb in &rbs {
        rb.consume_raw();
    }
    reader.borrow_mut().end();
}

/// Sleeps until a ring holds a record (the program wakes its reader when it writes into an
/// empty ring), at most `ms`.
fn wait_for_records(rbs: &[libbpf_rs::RingBuffer<'_>], ms: u8) {
    let mut fds: Vec<PollFd<'_>> = rbs
        .iter()
        .map(|rb| {
            // SAFETY: the descriptor belongs to the ring buffer, alive for this whole call.
            let fd = unsafe { BorrowedFd::borrow_raw(rb.epoll_fd()) };
            PollFd::new(fd, PollFlags::POLLIN)
        })
        .collect();
    let _ = nix::poll::poll(&mut fds, PollTimeout::from(ms));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(mono_ns: u64, frame: &[u8], pad: usize) -> Vec<u8> {
        let mut r = mono_ns.to_ne_bytes().to_vec();
        r.extend_from_slice(&(frame.len() as u32).to_ne_bytes());
        r.extend_from_slice(&3u32.to_ne_bytes());
        r.extend_from_slice(frame);
        r.resize(r.len() + pad, 0);
        r
    }

    #[test]
    fn a_record_is_the_time_then_the_length_then_the_frame() {
        let frame = [7u8; 60];
        let rec = record(42, &frame, 0);
        assert_eq!(
            Record::parse(&rec),
            Some(Record {
                mono_ns: 42,
                queue: 3,
                frame: &frame
            })
        );
        // The kernel rounds a record up to 8 bytes: the length says where the frame ends.
        let rec = record(42, &frame, 4);
        assert_eq!(Record::parse(&rec).map(|r| r.frame.len()), Some(60));
    }

    #[test]
    fn a_short_record_is_refused() {
        let rec = record(1, &[1u8; 60], 0);
        assert_eq!(Record::parse(&rec[..RECORD_HEADER + 59]), None);
        assert_eq!(Record::parse(&rec[..10]), None);
        assert_eq!(Record::parse(&[]), None);
    }
}
