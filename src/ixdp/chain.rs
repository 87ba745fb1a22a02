//! Frames that span several buffers (AF_XDP multi-buffer): a frame longer than one UMEM buffer
//! arrives as a chain of descriptors, every one but the last marked `XDP_PKT_CONTD`, and goes
//! out the same way (docs/data-path.md, "Long frames").
//!
//! * [`FrameBytes`]: what the stages read of a frame, wherever its bytes lie: the first buffer
//!   (which holds every header), the length on the wire, and bytes at any offset. Plain slices
//!   are frames of one buffer; [`super::fastpath`] gives a chain of UMEM buffers the same face,
//!   and the tap filter ([`super::cbpf`]) reads through it, so it sees the whole frame.
//! * [`Reassembly`]: a port's received descriptors sorted into complete chains, a chain whose
//!   end has not arrived yet held for the next batch, and a chain too long to transmit dropped.

/// The most buffers one frame may have: what the kernel's copy-mode transmit accepts for one
/// packet (`MAX_SKB_FRAGS` + 1; 18 on every kernel config with the default of 17 frags).
/// 18 buffers of 1792 bytes carry frames of up to 32256 bytes; a longer chain can only be a
/// merged super-frame (GRO, which the engine turns off) and is dropped (`err`).
pub const MAX_CHAIN: usize = 18;

/// A frame as the stages read it.
pub trait FrameBytes {
    /// The frame's length on the wire (every buffer, no FCS).
    fn wire_len(&self) -> usize;
    /// The frame's first buffer: the whole frame when it has one buffer; otherwise at least the
    /// first 1792 bytes, so every header (Ethernet, VLAN tags, IP, transport) is in it.
    fn head(&self) -> &[u8];
    /// Copies the bytes `at..at + out.len()` into `out`; false (and `out` unspecified) when
    /// they go past the end of the frame.
    fn read_at(&self, at: usize, out: &mut [u8]) -> bool;
}

impl FrameBytes for [u8] {
    #[inline(always)]
    fn wire_len(&self) -> usize {
        self.len()
    }
    #[inline(always)]
    fn head(&self) -> &[u8] {
        self
    }
    #[inline]
    fn read_at(&self, at: usize, out: &mut [u8]) -> bool {
        match at.checked_add(out.len()).and_then(|end| self.get(at..end)) {
            Some(b) => {
                out.copy_from_slice(b);
                true
            }
            None => false,
        }
    }
}

impl FrameBytes for Vec<u8> {
    #[inline(always)]
    fn wire_len(&self) -> usize {
        self.len()
    }
    #[inline(always)]
    fn head(&self) -> &[u8] {
        self
    }
    #[inline]
    fn read_at(&self, at: usize, out: &mut [u8]) -> bool {
        self.as_slice().read_at(at, out)
    }
}

/// Copies bytes `at..at + out.len()` of the frame whose buffers are `parts`, in order, into
/// `out`; false when the frame is shorter. The one reader of frames in several buffers.
#[inline]
pub fn read_parts<'p>(
    parts: impl IntoIterator<Item = &'p [u8]>,
    at: usize,
    out: &mut [u8],
) -> bool {
    let (mut skip, mut filled) = (at, 0);
    for part in parts {
        if filled == out.len() {
            break;
        }
        if skip >= part.len() {
            skip -= part.len();
            continue;
        }
        let n = (part.len() - skip).min(out.len() - filled);
        out[filled..filled + n].copy_from_slice(&part[skip..skip + n]);
        filled += n;
        skip = 0;
    }
    filled == out.len()
}

/// What [`Reassembly::settle`] found among the descriptors of one receive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// Descriptors of complete frames, at the start of [`Reassembly::frames`].
    pub descs: usize,
    /// Frames dropped for having more than [`MAX_CHAIN`] buffers.
    pub too_long: u64,
}

/// The descriptors one port received and has not handed to the fast path yet: complete frames
/// first, then the start of a frame whose remaining buffers are still in the RX ring. A frame's
/// buffers all come from the receiving port's fill ring, so whatever is dropped here goes back
/// to that port's free list.
#[derive(Clone, Debug)]
pub struct Reassembly<D> {
    buf: Vec<D>,
    /// Descriptors of complete frames at the start of `buf` (after `settle`).
    complete: usize,
    /// Descriptors after them: the incomplete frame, kept for the next receive.
    pending: usize,
    /// The frame being received is too long: its remaining buffers are dropped on arrival.
    discarding: bool,
}

impl<D: Copy + Default> Reassembly<D> {
    /// Room for `batch` newly received descriptors besides a held incomplete frame; allocated
    /// once, when the worker starts.
    pub fn new(batch: usize) -> Reassembly<D> {
        Reassembly {
            buf: vec![D::default(); batch + MAX_CHAIN],
            complete: 0,
            pending: 0,
            discarding: false,
        }
    }

    /// Descriptors of the incomplete frame held from an earlier receive.
    pub fn held(&self) -> usize {
        self.pending
    }

    /// Where the next receive writes up to `take` descriptors (fewer when the buffer has less
    /// room): right after the held ones.
    pub fn space(&mut self, take: usize) -> &mut [D] {
        let end = (self.pending + take).min(self.buf.len());
        &mut self.buf[self.pending..end]
    }

    /// Sorts the `n` descriptors just written into [`Reassembly::space`]: complete frames are
    /// moved to the front (see [`Reassembly::frames`]); the buffers of a frame longer than
    /// [`MAX_CHAIN`] go to `recycle`, and so do later buffers of that frame as they arrive.
    /// `continues` says whether a buffer is followed by another of its frame.
    pub fn settle(
        &mut self,
        n: usize,
        continues: impl Fn(&D) -> bool,
        recycle: &mut Vec<D>,
    ) -> Settled {
        let total = self.pending + n;
        let mut too_long = 0;
        // The held descriptors are the start of a frame that was not too long so far.
        let (mut w, mut start) = (self.pending, 0);
        for r in self.pending..total {
            let d = self.buf[r];
            if self.discarding {
                recycle.push(d);
                self.discarding = continues(&d);
                continue;
            }
            self.buf[w] = d;
            w += 1;
            if !continues(&d) {
                start = w;
            } else if w - start >= MAX_CHAIN {
                recycle.extend_from_slice(&self.buf[start..w]);
                w = start;
                self.discarding = true;
                too_long += 1;
            }
        }
        self.complete = start;
        self.pending = w - start;
        Settled {
            descs: start,
            too_long,
        }
    }

    /// The complete frames found by the last [`Reassembly::settle`].
    pub fn frames(&mut self) -> &mut [D] {
        &mut self.buf[..self.complete]
    }

    /// Once the complete frames were handed on: keeps the incomplete frame for the next
    /// receive.
    pub fn keep_pending(&mut self) {
        let start = self.complete;
        self.buf.copy_within(start..start + self.pending, 0);
        self.complete = 0;
    }

    /// Takes every held descriptor (at stop, or when the port's sockets go away).
    pub fn drain_into(&mut self, out: &mut Vec<D>) {
        out.extend_from_slice(&self.buf[..self.complete + self.pending]);
        self.complete = 0;
        self.pending = 0;
        self.discarding = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Descriptors as (id, continues).
    type D = (u32, bool);

    fn more(d: &D) -> bool {
        d.1
    }

    /// Receives `descs` into `r` as one batch; returns the complete frames, then keeps the rest.
    fn receive(r: &mut Reassembly<D>, descs: &[D], recycle: &mut Vec<D>) -> (Vec<D>, u64) {
        let space = r.space(descs.len());
        space[..descs.len()].copy_from_slice(descs);
        let s = r.settle(descs.len(), more, recycle);
        let frames = r.frames().to_vec();
        assert_eq!(frames.len(), s.descs);
        r.keep_pending();
        (frames, s.too_long)
    }

    fn chain(first: u32, len: u32) -> Vec<D> {
        (first..first + len)
            .map(|i| (i, i + 1 < first + len))
            .collect()
    }

    #[test]
    fn single_buffer_frames_pass_as_they_are() {
        let mut r = Reassembly::new(8);
        let mut recycle = Vec::new();
        let descs: Vec<D> = (0..8).map(|i| (i, false)).collect();
        assert_eq!(receive(&mut r, &descs, &mut recycle), (descs.clone(), 0));
        assert_eq!(r.held(), 0);
        assert!(recycle.is_empty());
    }

    #[test]
    fn a_frame_cut_by_the_batch_end_waits_for_its_last_buffers() {
        let mut r = Reassembly::new(8);
        let mut recycle = Vec::new();
        let mut descs = vec![(0, false)];
        descs.extend(chain(1, 3));
        descs.extend(chain(4, 6));
        let (frames, _) = receive(&mut r, &descs[..6], &mut recycle);
        assert_eq!(frames, descs[..4]);
        assert_eq!(r.held(), 2);
        // Room for the rest next to the held part.
        assert_eq!(r.space(8).len(), 8);
        let (frames, _) = receive(&mut r, &descs[6..], &mut recycle);
        assert_eq!(frames, descs[4..]);
        assert_eq!(r.held(), 0);
        assert!(recycle.is_empty());
    }

    #[test]
    fn a_frame_of_max_chain_buffers_passes_and_a_longer_one_is_dropped_to_its_end() {
        let mut r = Reassembly::new(64);
        let mut recycle = Vec::new();
        let ok = chain(0, MAX_CHAIN as u32);
        assert_eq!(receive(&mut r, &ok, &mut recycle), (ok.clone(), 0));
        // 40 buffers over three batches, then a small frame.
        let long = chain(100, 40);
        let (frames, n) = receive(&mut r, &long[..10], &mut recycle);
        assert_eq!((frames.len(), n, r.held()), (0, 0, 10));
        let (frames, n) = receive(&mut r, &long[10..25], &mut recycle);
        assert_eq!((frames.len(), n, r.held()), (0, 1, 0));
        let mut last = long[25..].to_vec();
        last.push((500, false));
        let (frames, n) = receive(&mut r, &last, &mut recycle);
        assert_eq!((frames, n), (vec![(500, false)], 0));
        let mut dropped: Vec<u32> = recycle.iter().map(|d| d.0).collect();
        dropped.sort();
        assert_eq!(
            dropped,
            (100..140).collect::<Vec<_>>(),
            "every buffer, once"
        );
    }

    #[test]
    fn drain_takes_everything_held() {
        let mut r = Reassembly::new(8);
        let mut recycle = Vec::new();
        receive(&mut r, &chain(0, 3)[..2], &mut recycle);
        let mut out = Vec::new();
        r.drain_into(&mut out);
        assert_eq!(out, chain(0, 3)[..2]);
        assert_eq!(r.held(), 0);
    }

    #[test]
    fn reading_across_buffers_gives_the_bytes_of_the_whole_frame() {
        let frame: Vec<u8> = (0..=255).collect();
        let parts: Vec<&[u8]> = frame.chunks(100).collect();
        let mut out = [0u8; 4];
        assert!(read_parts(parts.iter().copied(), 98, &mut out));
        assert_eq!(out, [98, 99, 100, 101]);
        assert!(read_parts(parts.iter().copied(), 252, &mut out));
        assert!(!read_parts(parts.iter().copied(), 253, &mut out));
        assert!(!frame[..].read_at(usize::MAX, &mut out));
        assert!(frame.read_at(0, &mut out));
        assert_eq!(out, [0, 1, 2, 3]);
    }
}
