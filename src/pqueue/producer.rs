//! The producer side: called per packet by the engine's worker threads.

use std::sync::atomic::{fence, AtomicBool, Ordering};

use super::segment::Segment;
use super::{Direction, Error, Layout};

/// A handle for putting frames into a queue. Send + Sync: the worker threads of one
/// process share it through an `Arc`.
pub struct Producer {
    seg: Segment,
    /// Set when a push found the queue full. While the consumers' tail has not moved past
    /// the slot that blocked us, further pushes fail from the tail hint alone, without
    /// touching that slot: it is the one a consumer is copying, and polling its cache line
    /// at line rate would slow the very consumer that has to make room.
    saw_full: AtomicBool,
}

impl Producer {
    /// The daemon's side: create the segment, or replace an existing queue by a fresh one
    /// with `layout` and the next generation (attached consumers notice and reattach), so
    /// the daemon's start always leaves a clean queue. A file that is not a queue is refused.
    pub fn open(name: &str, layout: Layout) -> Result<Producer, Error> {
        let seg = Segment::recreate(name, layout)?;
        seg.header()
            .producer_pid
            .store(std::process::id(), Ordering::Relaxed);
        Ok(Producer {
            seg,
            saw_full: AtomicBool::new(false),
        })
    }

    /// Join an existing queue (creating it with the default layout if there is none)
    /// without re-initialising it: extra producer processes in tests and benchmarks.
    pub fn attach(name: &str) -> Result<Producer, Error> {
        Ok(Producer {
            seg: Segment::open_or_create(name, Layout::default())?,
            saw_full: AtomicBool::new(false),
        })
    }

    pub fn layout(&self) -> Layout {
        self.seg.layout()
    }

    pub fn name(&self) -> &str {
        &self.seg.name
    }

    /// Put one frame in the queue. Never blocks and makes no syscall unless a consumer is
    /// asleep; returns false (and counts `full`) when the queue is full. `frame` longer than
    /// a slot is truncated, its original length kept. `ts_ns`: see `pqueue::now_ns`.
    pub fn push(&self, frame: &[u8], ifindex: u8, dir: Direction, ts_ns: u64) -> bool {
        let seg = &self.seg;
        let hdr = seg.header();
        let mut pos = hdr.head.0.load(Ordering::Relaxed);
        if self.saw_full.load(Ordering::Relaxed) {
            if hdr.tail.0.load(Ordering::Relaxed) + seg.slots <= pos {
                hdr.full.0.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            self.saw_full.store(false, Ordering::Relaxed);
        }
        loop {
            let seq = seg.seq(pos).load(Ordering::Acquire);
            if seq == pos {
                match hdr.head.0.compare_exchange_weak(
                    pos,
                    pos + 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break,
                    Err(now) => pos = now,
                }
            } else if seq < pos {
                // The slot still holds position pos - slots: a full lap behind us.
                hdr.full.0.fetch_add(1, Ordering::Relaxed);
                self.saw_full.store(true, Ordering::Relaxed);
                return false;
            } else {
                pos = hdr.head.0.load(Ordering::Relaxed);
            }
        }
        let cap = frame.len().min(seg.slot_size as usize);
        let meta = seg.meta(pos);
        // SAFETY: winning the head CAS for `pos` while the slot said "empty for pos" makes us
        // its only writer until we publish; the slot has room for SLOT_META + slot_size.
        unsafe {
            (*meta).ts_ns = ts_ns;
            (*meta).orig_len = frame.len().min(u32::MAX as usize) as u32;
            (*meta).cap_len = cap as u32;
            (*meta).ifindex = ifindex;
            (*meta).dir = dir.to_byte();
            std::ptr::copy_nonoverlapping(
                frame.as_ptr(),
                seg.slot_ptr(pos).add(super::segment::SLOT_META),
                cap,
            );
        }
        seg.seq(pos).store(pos + 1, Ordering::Release);
        // Pairs with the fence a consumer makes after announcing that it goes to sleep:
        // either it sees this packet or we see it sleeping.
        fence(Ordering::SeqCst);
        if hdr.sleepers.0.load(Ordering::Relaxed) != 0 {
            wake_one(seg);
        }
        true
    }
}

/// Post the wake-up semaphore unless a post is already pending, so a burst arriving while
/// consumers wake up does not pile up tokens (or syscalls).
pub(crate) fn wake_one(seg: &Segment) {
    let mut value: libc::c_int = 0;
    // SAFETY: the semaphore lives in the validated header and was initialised with pshared=1.
    unsafe {
        libc::sem_getvalue(seg.sem(), &mut value);
        if value <= 0 {
            libc::sem_post(seg.sem());
        }
    }
}
