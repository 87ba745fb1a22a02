//! The producer side: called per packet by the engine's worker threads.

use std::sync::atomic::{fence, AtomicBool, Ordering};

use super::segment::{Ring, Segment, SLOT_META};
use super::{Error, InterfaceDesc, Layout, Tag};

/// A handle for putting frames into a queue. Send + Sync: the worker threads of one
/// process share it through an `Arc`.
pub struct Producer {
    seg: Segment,
    /// Per lane: set when a push found the lane full. While the consumers' tail has not moved
    /// past the slot that blocked us, further pushes fail from the tail hint alone, without
    /// touching that slot: it is the one a consumer is copying, and polling its cache line at
    /// line rate would slow the very consumer that has to make room.
    saw_full: Box<[AtomicBool]>,
}

impl Producer {
    /// The engine's side: create the segment, or replace an existing queue by a fresh one
    /// with `layout` and the next generation (attached consumers notice and reattach), so
    /// the engine's start always leaves a clean queue. A file that is not a queue is refused,
    /// and so is a queue another live engine feeds ([`Error::Busy`]).
    pub fn open(name: &str, layout: Layout) -> Result<Producer, Error> {
        Producer::open_with(name, layout, false)
    }

    /// [`Producer::open`], taking the queue from another live engine when `take_over` is set
    /// (that engine notices: [`Producer::replaced_by`]).
    pub fn open_with(name: &str, layout: Layout, take_over: bool) -> Result<Producer, Error> {
        let me = std::process::id();
        let seg = Segment::recreate(name, layout, |old| {
            let hdr = old.header();
            let pid = hdr.producer_pid.load(Ordering::Acquire);
            let start = hdr.producer_start.load(Ordering::Relaxed);
            let live = pid != 0 && pid != me && crate::sys::is_same_process(pid as i32, start);
            if live && !take_over {
                return Err(Error::Busy {
                    path: old.path.display().to_string(),
                    pid,
                });
            }
            Ok(())
        })?;
        let hdr = seg.header();
        let me = std::process::id();
        let start = crate::sys::start_time(me as i32).unwrap_or(0);
        hdr.producer_start.store(start, Ordering::Relaxed);
        hdr.producer_pid.store(me, Ordering::Release);
        Ok(Producer::over(seg))
    }

    /// Join an existing queue (creating it with the default layout if there is none)
    /// without re-initialising it: extra producer processes in tests and benchmarks.
    pub fn attach(name: &str) -> Result<Producer, Error> {
        Ok(Producer::over(Segment::open_or_create(
            name,
            Layout::default(),
        )?))
    }

    fn over(seg: Segment) -> Producer {
        let saw_full = (0..seg.layout.lanes)
            .map(|_| AtomicBool::new(false))
            .collect();
        Producer { seg, saw_full }
    }

    /// The engine that took this queue over (`--take-over`), once one did: the segment we
    /// feed was replaced under its name and nobody reads it any more.
    pub fn replaced_by(&self) -> Option<u32> {
        if !self.seg.is_retired() {
            return None;
        }
        let now = Segment::open_existing(&self.seg.name).ok()?;
        Some(now.header().producer_pid.load(Ordering::Acquire))
    }

    /// The queue's layout (slots per lane, slot size, lanes).
    pub fn layout(&self) -> Layout {
        self.seg.layout
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.seg.name
    }

    /// Records what the engine knows about its interface `index`, for consumers that name
    /// ports (pcapng). Call before frames of that interface are pushed; names longer than
    /// 15 bytes and drivers longer than 23 are cut.
    pub fn describe_interface(&self, index: usize, desc: &InterfaceDesc) {
        let Some(slot) = self.seg.if_slot(index) else {
            return;
        };
        // SAFETY: the engine describes its interfaces once, before its workers push, from one
        // thread; consumers read a slot only after `valid` (stored last, with Release) says so.
        unsafe {
            (*slot).valid.store(0, Ordering::Relaxed);
            copy_text(&mut (*slot).name, &desc.name);
            copy_text(&mut (*slot).driver, &desc.driver);
            (*slot).mac = desc.mac.unwrap_or([0; 6]);
            (*slot).mtu = desc.mtu;
            (*slot).speed_mbps = desc.speed_mbps;
            let valid = if desc.mac.is_some() { 3 } else { 1 };
            (*slot).valid.store(valid, Ordering::Release);
        }
    }

    /// Adds `n` frames received on interface `ifindex` to the counter a capture's
    /// statistics read (`isb_ifrecv` in pcapng); once per batch, not per frame.
    #[inline]
    pub fn count_received(&self, ifindex: usize, n: u64) {
        if let Some(c) = self.seg.header().if_counters.get(ifindex) {
            c.rx.0.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Puts one frame in lane 0 with no marks: the common case of an unlaned queue.
    pub fn push(&self, frame: &[u8], ifindex: u8, dir: super::Direction, ts_ns: u64) -> bool {
        let tag = Tag {
            ifindex,
            dir,
            ts_ns,
            marks: super::Marks::NONE,
        };
        self.push_to(0, frame, frame.len() as u32, tag)
    }

    /// Put one frame in lane `lane`: `frame` is what to store (already cut to a snap length,
    /// if any), `orig_len` its length on the wire. Never blocks and makes no syscall unless a
    /// consumer is asleep; returns false (and counts `full`, for the lane and the interface)
    /// when the lane is full. A frame longer than a slot is cut, its original length kept.
    #[inline]
    pub fn push_to(&self, lane: u32, frame: &[u8], orig_len: u32, tag: Tag) -> bool {
        self.push_parts_to(lane, [frame], frame.len(), orig_len, tag)
    }

    /// [`Producer::push_to`] for a frame whose bytes lie in several buffers (`parts`, in
    /// order): the first `cap_len` bytes are stored, one slot per frame.
    #[inline]
    pub fn push_parts_to<'p>(
        &self,
        lane: u32,
        parts: impl IntoIterator<Item = &'p [u8]>,
        cap_len: usize,
        orig_len: u32,
        tag: Tag,
    ) -> bool {
        let lane = lane.min(self.seg.layout.lanes - 1);
        let ring = self.seg.ring(lane);
        let Some(pos) = self.claim(ring, lane as usize) else {
            ring.header().full.0.fetch_add(1, Ordering::Relaxed);
            if let Some(c) = self.seg.header().if_counters.get(tag.ifindex as usize) {
                c.full.0.fetch_add(1, Ordering::Relaxed);
            }
            return false;
        };
        let cap = cap_len.min(ring.slot_size() as usize);
        let meta = ring.meta(pos);
        // SAFETY: winning the head CAS for `pos` while the slot said "empty for pos" makes us
        // its only writer until we publish; the slot has room for SLOT_META + slot_size, and
        // at most `cap` (≤ slot_size) bytes are written after the meta.
        unsafe {
            let data = ring.slot_ptr(pos).add(SLOT_META);
            let mut copied = 0;
            for part in parts {
                let n = part.len().min(cap - copied);
                std::ptr::copy_nonoverlapping(part.as_ptr(), data.add(copied), n);
                copied += n;
                if copied == cap {
                    break;
                }
            }
            (*meta).ts_ns = tag.ts_ns;
            (*meta).orig_len = orig_len.max(copied as u32);
            (*meta).cap_len = copied as u32;
            (*meta).ifindex = tag.ifindex;
            (*meta).dir = tag.dir.to_byte();
            (*meta).marks = tag.marks.bits();
        }
        ring.seq(pos).store(pos + 1, Ordering::Release);
        // Pairs with the fence a consumer makes after announcing that it goes to sleep:
        // either it sees this packet or we see it sleeping.
        fence(Ordering::SeqCst);
        if ring.header().sleepers.0.load(Ordering::Relaxed) != 0 {
            wake_one(ring);
        }
        true
    }

    /// Wins the next position of `ring` for writing, or None when the lane is full.
    #[inline]
    fn claim(&self, ring: Ring<'_>, lane: usize) -> Option<u64> {
        let hdr = ring.header();
        let saw_full = &self.saw_full[lane];
        let mut pos = hdr.head.0.load(Ordering::Relaxed);
        if saw_full.load(Ordering::Relaxed) {
            if hdr.tail.0.load(Ordering::Relaxed) + ring.slots <= pos {
                return None;
            }
            saw_full.store(false, Ordering::Relaxed);
        }
        loop {
            let seq = ring.seq(pos).load(Ordering::Acquire);
            if seq == pos {
                match hdr.head.0.compare_exchange_weak(
                    pos,
                    pos + 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Some(pos),
                    Err(now) => pos = now,
                }
            } else if seq < pos {
                // The slot still holds position pos - slots: a full lap behind us.
                saw_full.store(true, Ordering::Relaxed);
                return None;
            } else {
                pos = hdr.head.0.load(Ordering::Relaxed);
            }
        }
    }
}

/// Copies `text` into a NUL-padded field, cut to leave at least one NUL.
fn copy_text(field: &mut [u8], text: &str) {
    field.fill(0);
    let n = text.len().min(field.len() - 1);
    field[..n].copy_from_slice(&text.as_bytes()[..n]);
}

/// Post the wake-up semaphore unless a post is already pending, so a burst arriving while
/// consumers wake up does not pile up tokens (or syscalls).
pub(crate) fn wake_one(ring: Ring<'_>) {
    let mut value: libc::c_int = 0;
    // SAFETY: the semaphore lives in the validated lane header, initialised with pshared=1.
    unsafe {
        libc::sem_getvalue(ring.sem(), &mut value);
        if value <= 0 {
            libc::sem_post(ring.sem());
        }
    }
}
