//! Generated, numbered frames for tests and benchmarks of the queue and of `collect`
//! (the `pqueue-gen` binary is a thin front end to this).
//!
//! Frame: Ethernet header (dst 02:00:00:00:00:02, src 02:50:51:00:ID, Ethertype 0x88b5,
//! "local experimental"), then `PQGN`, the producer id (u16, big-endian), the sequence
//! number (u64, big-endian), then filler bytes `i ^ id` (a pattern a reader can verify).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{now_ns, Batch, Consumer, Direction, Error, Producer};

/// The Ethertype of generated frames (IEEE "local experimental 1").
pub const ETHERTYPE: u16 = 0x88b5;
const MAGIC: &[u8; 4] = b"PQGN";
const SEQ_AT: usize = 20;
/// The smallest frame that carries the numbering.
pub const MIN_SIZE: usize = 28;

/// Build the frame of producer `id` with number 0; `set_seq` renumbers it in place.
pub fn frame(size: usize, id: u16) -> Vec<u8> {
    let size = size.max(MIN_SIZE);
    let mut f = vec![0u8; size];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[6..12].copy_from_slice(&[0x02, 0x50, 0x51, 0, (id >> 8) as u8, id as u8]);
    f[12..14].copy_from_slice(&ETHERTYPE.to_be_bytes());
    f[14..18].copy_from_slice(MAGIC);
    f[18..20].copy_from_slice(&id.to_be_bytes());
    for (i, b) in f.iter_mut().enumerate().skip(MIN_SIZE) {
        *b = (i as u8) ^ (id as u8);
    }
    f
}

/// Writes sequence number `seq` into a generated frame.
pub fn set_seq(frame: &mut [u8], seq: u64) {
    frame[SEQ_AT..SEQ_AT + 8].copy_from_slice(&seq.to_be_bytes());
}

/// (producer id, sequence number) of a generated frame; None for anything else.
pub fn parse(frame: &[u8]) -> Option<(u16, u64)> {
    if frame.len() < MIN_SIZE || frame[12..14] != ETHERTYPE.to_be_bytes() || &frame[14..18] != MAGIC
    {
        return None;
    }
    let id = u16::from_be_bytes([frame[18], frame[19]]);
    let seq = u64::from_be_bytes(frame[SEQ_AT..SEQ_AT + 8].try_into().ok()?);
    Some((id, seq))
}

/// True when `captured` is exactly what `frame(orig_len, id)` numbered `seq` starts with.
pub fn verify(captured: &[u8], orig_len: usize) -> bool {
    let Some((id, _)) = parse(captured) else {
        return false;
    };
    captured.len() <= orig_len.max(MIN_SIZE)
        && captured[..6] == [0x02, 0, 0, 0, 0, 0x02]
        && captured[6..12] == [0x02, 0x50, 0x51, 0, (id >> 8) as u8, id as u8]
        && captured
            .iter()
            .enumerate()
            .skip(MIN_SIZE)
            .all(|(i, &b)| b == (i as u8) ^ (id as u8))
}

/// A record of one received frame, as the consumer writes them: id << 48 | seq.
pub fn record(id: u16, seq: u64) -> u64 {
    (id as u64) << 48 | (seq & 0xffff_ffff_ffff)
}

#[derive(Clone, Debug)]
/// What `produce` puts in.
pub struct GenConfig {
    /// Frames to offer to the queue.
    pub count: u64,
    /// Frame size in bytes (at least MIN_SIZE).
    pub size: usize,
    /// Frames per second; 0 = as fast as possible.
    pub rate: u64,
    /// The id in every frame (and in its source MAC).
    pub producer_id: u16,
    /// Offer a frame again until the queue takes it (what a test of "nothing lost" needs);
    /// otherwise a full queue drops it, as the engine does.
    pub retry_full: bool,
    /// Number frames from here.
    pub first_seq: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
/// What `produce` did.
pub struct GenReport {
    /// Frames the queue took.
    pub inserted: u64,
    /// Pushes refused because the queue was full.
    pub full: u64,
}

/// Offer `cfg.count` numbered frames to the queue, paced to `cfg.rate`; stops early when
/// `stop` is set.
pub fn produce(p: &Producer, cfg: &GenConfig, stop: &AtomicBool) -> GenReport {
    let mut f = frame(cfg.size, cfg.producer_id);
    let mut report = GenReport::default();
    let start = Instant::now();
    let ts = now_ns();
    for n in 0..cfg.count {
        if n % 256 == 0 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if let Some(due_ns) = n.saturating_mul(1_000_000_000).checked_div(cfg.rate) {
                let due = Duration::from_nanos(due_ns);
                let now = start.elapsed();
                if due > now {
                    std::thread::sleep(due - now);
                }
            }
        }
        set_seq(&mut f, cfg.first_seq + n);
        loop {
            if p.push(&f, 0, Direction::Rx, ts) {
                report.inserted += 1;
                break;
            }
            report.full += 1;
            if !cfg.retry_full || stop.load(Ordering::Relaxed) {
                break;
            }
            std::thread::yield_now();
        }
    }
    report
}

/// What `consume` took out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsumeReport {
    /// Frames taken out.
    pub received: u64,
    /// Frames that were not generated frames, or whose bytes were not what was generated.
    pub bad: u64,
}

/// Take frames until `stop` is set or `max` (0 = no limit) arrived, writing one `record`
/// (u64, little-endian) per frame to `out`, one write per batch so that a consumer killed
/// at any point has written whole records of everything but its last batch.
pub fn consume(
    c: &mut Consumer,
    out: &mut dyn Write,
    batch_size: usize,
    max: u64,
    stop: &AtomicBool,
) -> Result<ConsumeReport, Error> {
    let mut batch = Batch::new();
    let mut report = ConsumeReport::default();
    let mut records = Vec::with_capacity(batch_size * 8);
    while !stop.load(Ordering::Relaxed) && (max == 0 || report.received < max) {
        let want = if max == 0 {
            batch_size
        } else {
            batch_size.min((max - report.received) as usize)
        };
        let n = c.pop_wait(&mut batch, want, Duration::from_millis(100))?;
        if n == 0 {
            continue;
        }
        records.clear();
        for p in batch.iter() {
            match parse(p.data) {
                Some((id, seq)) if verify(p.data, p.orig_len as usize) => {
                    records.extend_from_slice(&record(id, seq).to_le_bytes());
                }
                _ => report.bad += 1,
            }
        }
        report.received += n as u64;
        out.write_all(&records).map_err(|e| Error::Io {
            path: "consumer output".into(),
            source: e,
        })?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_verify() {
        let mut f = frame(100, 7);
        set_seq(&mut f, 123_456);
        assert_eq!(parse(&f), Some((7, 123_456)));
        assert!(verify(&f, 100));
        assert!(verify(&f[..64], 100));
        let mut bad = f.clone();
        bad[90] ^= 1;
        assert!(!verify(&bad, 100));
        assert_eq!(parse(&[0u8; 40]), None);
    }
}
