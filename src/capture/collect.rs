//! `collect` (docs/pqueue.md, `collect --help`): take packets from the queue and write them
//! to capture files until a limit, a signal or a closed pipe ends it. The binary in
//! src/bin/collect.rs only parses arguments and detaches.

use std::io::{self, IsTerminal};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::sink::Sink;
use super::{CaptureError, Format, Record};
use crate::pqueue::{Batch, Consumer, LaneChoice};

/// Snap length written in the pcap header when `--snaplen` is not given (as tcpdump).
pub const DEFAULT_SNAPLEN: u32 = 262_144;
const BATCH: usize = 256;

/// What `collect` was asked to do.
#[derive(Clone, Debug)]
pub struct CollectOptions {
    /// File name, or `-` for stdout.
    pub output: String,
    /// The packet queue's name.
    pub queue: String,
    /// The lane of a laned queue to consume (`None`: a free one).
    pub lane: Option<u32>,
    /// Stop after this many bytes of packet data.
    pub byte_limit: Option<u64>,
    /// Stop after exactly this many packets.
    pub packet_limit: Option<u64>,
    /// Keep the packets already waiting (default: empty the queue at start).
    pub keep_waiting: bool,
    /// No progress display.
    pub silent: bool,
    /// Timestamp records with the time the engine tapped the frame, not the write time
    /// (pcapng always does).
    pub capture_time: bool,
    /// Write pcapng (also chosen by an OUTPUT ending in `.pcapng`).
    pub pcapng: bool,
    /// Nanosecond timestamps.
    pub nano: bool,
    /// Keep at most this many bytes of each frame.
    pub snaplen: u32,
    /// Start a new file when this one would exceed this many millions of bytes.
    pub rotate_mb: Option<u64>,
    /// Start a new file every this many seconds.
    pub rotate_secs: Option<u64>,
    /// Keep at most this many files, reusing names in a ring.
    pub ring_files: Option<u32>,
    /// Give up (exit 1) when no engine has fed the queue for this many seconds.
    pub wait: Option<u64>,
}

/// Whether an engine feeds the queue, as the progress line and the one-time notice say it.
struct EngineWatch {
    /// Since when nobody feeds it (`None`: an engine does).
    unfed_since: Option<Instant>,
    told: bool,
    last_check: Instant,
}

impl EngineWatch {
    fn new() -> EngineWatch {
        EngineWatch {
            unfed_since: None,
            told: false,
            last_check: Instant::now() - Duration::from_secs(1),
        }
    }

    /// Looks (at most every 200 ms) whether a live engine feeds the queue; says once that
    /// none does yet, and fails when `--wait` ran out.
    fn check(
        &mut self,
        opts: &CollectOptions,
        queue: &crate::pqueue::Queue,
    ) -> Result<(), CaptureError> {
        if self.last_check.elapsed() < Duration::from_millis(200) {
            return Ok(());
        }
        self.last_check = Instant::now();
        if queue.producer().is_some() {
            self.unfed_since = None;
            return Ok(());
        }
        let since = *self.unfed_since.get_or_insert_with(Instant::now);
        if !self.told {
            self.told = true;
            let bound = match opts.wait {
                Some(s) => format!("for at most {s} s (--wait)"),
                None => "(--wait SECONDS bounds the wait)".to_string(),
            };
            eprintln!(
                "collect: no engine feeds queue {} yet; waiting for one {bound}",
                opts.queue
            );
        }
        match opts.wait {
            Some(seconds) if since.elapsed() >= Duration::from_secs(seconds) => {
                Err(CaptureError::NoEngine {
                    queue: opts.queue.clone(),
                    seconds,
                })
            }
            _ => Ok(()),
        }
    }

    fn waiting(&self) -> Option<Duration> {
        self.unfed_since.map(|t| t.elapsed())
    }
}

/// What a finished `collect` wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CollectReport {
    /// Records written.
    pub packets: u64,
    /// Bytes of packet data written (after the snap length).
    pub bytes: u64,
    /// Files started (1 without rotation).
    pub files: u64,
    /// Packets the queue refused (full) while we ran.
    pub queue_drops: u64,
}

impl CollectOptions {
    /// Rejects contradicting or out-of-range options before anything is opened.
    pub fn check(&self) -> Result<(), CaptureError> {
        let bad = |msg: &str| Err(CaptureError::Options(msg.into()));
        let rotating = self.rotate_mb.is_some() || self.rotate_secs.is_some();
        if self.output == "-" && (rotating || self.ring_files.is_some()) {
            return bad("file rotation (-C, -G, -W) needs an output file name, not -");
        }
        if self.ring_files.is_some() && !rotating {
            return bad("-W FILES needs -C MB or -G SECONDS");
        }
        if self.rotate_mb == Some(0)
            || self.rotate_secs == Some(0)
            || self.ring_files == Some(0)
            || self.wait == Some(0)
        {
            return bad("-C, -G, -W and --wait take a number greater than 0");
        }
        if self.snaplen == 0 {
            return bad("--snaplen must be at least 1");
        }
        Ok(())
    }

    /// The file format: pcapng when asked for or when OUTPUT ends in `.pcapng`.
    pub fn format(&self) -> Format {
        if self.pcapng || self.output.ends_with(".pcapng") {
            Format::PcapNg
        } else {
            Format::Pcap
        }
    }

    /// Name of the `index`-th file (0-based): tcpdump's scheme. Without rotation, OUTPUT;
    /// with -C/-G, OUTPUT, OUTPUT1, OUTPUT2...; with -W N, OUTPUT0..OUTPUT(N-1) zero-padded
    /// to the same width, reused in a ring.
    pub fn file_name(&self, index: u64) -> String {
        match self.ring_files {
            Some(n) => {
                let width = (n - 1).to_string().len();
                format!("{}{:0width$}", self.output, index % n as u64)
            }
            None if index == 0 => self.output.clone(),
            None => format!("{}{index}", self.output),
        }
    }
}

/// Writes to a closed stdout (`collect - >&-`) must not vanish, and the frames with them.
/// Rust's runtime puts /dev/null, opened read-write, in place of a standard descriptor that is
/// closed when the program starts; a shell redirection (`> /dev/null`) opens it write-only.
/// So a read-write /dev/null on stdout means it was closed: refuse at start.
fn stdout_is_open() -> Result<(), CaptureError> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let closed = |why: String| CaptureError::Write {
        file: "stdout".into(),
        source: io::Error::new(io::ErrorKind::NotConnected, why),
    };
    let out = std::io::stdout();
    let st = nix::sys::stat::fstat(&out).map_err(|e| closed(format!("stdout is closed ({e})")))?;
    let flags =
        fcntl(&out, FcntlArg::F_GETFL).map_err(|e| closed(format!("stdout is closed ({e})")))?;
    let dev_null = st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == libc::makedev(1, 3);
    let read_write = OFlag::from_bits_truncate(flags) & OFlag::O_ACCMODE == OFlag::O_RDWR;
    if dev_null && read_write {
        return Err(closed(
            "stdout is closed (nothing would receive the packets; give a file name or a pipe)"
                .into(),
        ));
    }
    Ok(())
}

/// Tells which lane of a laned queue this collect consumes.
fn say_lane(queue: &str, lane: Option<(u32, u32)>) {
    if let Some((k, lanes)) = lane.filter(|&(_, n)| n > 1) {
        crate::note!("collect: consuming lane {k} of {lanes} of packet queue {queue}");
    }
}

/// The reader of stdout went away (`collect - | head`): the end of the capture, not a failure.
fn is_broken_pipe(e: &CaptureError) -> bool {
    matches!(e, CaptureError::Write { source, .. } if source.kind() == io::ErrorKind::BrokenPipe)
}

fn wall_clock() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn progress_bar(silent: bool) -> ProgressBar {
    if silent {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(5));
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar
}

/// Run until a limit is reached, `stop` is set (SIGINT/SIGTERM) or the reader of stdout
/// goes away; every record written is complete and the file is flushed and closed.
/// `started` is called once the queue is attached (and reset) and the output is open.
pub fn run(
    opts: &CollectOptions,
    stop: &AtomicBool,
    started: &mut dyn FnMut(),
) -> Result<CollectReport, CaptureError> {
    opts.check()?;
    if opts.output == "-" && io::stdout().is_terminal() {
        return Err(CaptureError::Terminal);
    }
    if opts.output == "-" {
        stdout_is_open()?;
    }
    let choice = opts.lane.map_or(LaneChoice::Any, LaneChoice::Lane);
    let mut consumer = Consumer::attach_lane(&opts.queue, choice)?;
    let mut lane = consumer.lane();
    // The output first: a file that cannot be written must not cost the frames a reset
    // would discard.
    let mut sink = Sink::new(opts, consumer.queue_ref())?;
    if !opts.keep_waiting {
        consumer.reset()?;
    }
    // Said once the lane is ours and emptied: from here on its frames are recorded.
    if !opts.silent {
        say_lane(&opts.queue, lane);
    }
    let full_at_start = consumer.status()?.full;
    let mut generation = consumer.queue().generation();
    let capture_time = opts.capture_time || opts.format() == Format::PcapNg;
    started();

    let bar = progress_bar(opts.silent);
    let to_stdout = opts.output == "-";
    let mut report = CollectReport {
        files: 1,
        ..Default::default()
    };
    let mut batch = Batch::new();
    let began = Instant::now();
    let mut last_show = Instant::now();
    let mut last_flush = Instant::now();
    let mut unflushed = false;
    let mut engine = EngineWatch::new();
    let outcome: Result<(), CaptureError> = (|| {
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            engine.check(opts, consumer.queue_ref())?;
            let mut want = BATCH;
            if let Some(limit) = opts.packet_limit {
                if report.packets >= limit {
                    return Ok(());
                }
                want = want.min((limit - report.packets) as usize);
            }
            if let Some(limit) = opts.byte_limit {
                if report.bytes >= limit {
                    return Ok(());
                }
                // Close to the limit, take one packet at a time so that the packets past it
                // stay in the queue for other consumers.
                let slot = consumer.layout().slot_size as u64;
                if limit - report.bytes < want as u64 * slot {
                    want = 1;
                }
            }
            let n = consumer.pop_wait(&mut batch, want, Duration::from_millis(100))?;
            if consumer.queue().generation() != generation {
                generation = consumer.queue().generation();
                sink.engine_changed(consumer.queue())?;
                if consumer.lane() != lane {
                    lane = consumer.lane();
                    if !opts.silent {
                        bar.suspend(|| say_lane(&opts.queue, lane));
                    }
                }
            }
            let ports = consumer.queue_ref();
            for p in batch.iter() {
                let ts = if capture_time {
                    Duration::from_nanos(p.ts_ns)
                } else {
                    wall_clock()
                };
                let rec = Record {
                    ts,
                    data: p.data,
                    orig_len: p.orig_len,
                    ifindex: p.ifindex,
                    dir: p.dir,
                    marks: p.marks,
                };
                sink.write(&rec, ports)?;
                report.packets += 1;
                report.bytes += p.data.len().min(opts.snaplen as usize) as u64;
            }
            report.files = sink.files();
            if n > 0 {
                unflushed = true;
            }
            // A pipe reader sees packets as they come; a file is flushed once a second.
            if unflushed && (to_stdout || last_flush.elapsed() >= Duration::from_secs(1)) {
                sink.flush()?;
                unflushed = false;
                last_flush = Instant::now();
            }
            if last_show.elapsed() >= Duration::from_millis(200) {
                last_show = Instant::now();
                report.queue_drops = consumer
                    .status()
                    .map(|s| s.full.saturating_sub(full_at_start))
                    .unwrap_or(report.queue_drops);
                let secs = began.elapsed().as_secs_f64().max(1e-3);
                let mut msg = format!(
                    "{} packets, {}, {:.0} pkt/s, {} queue drops",
                    report.packets,
                    HumanBytes(report.bytes),
                    report.packets as f64 / secs,
                    report.queue_drops
                );
                if let Some(w) = engine.waiting() {
                    msg = format!("waiting for an engine ({} s); {msg}", w.as_secs());
                }
                bar.set_message(msg);
                bar.tick();
            }
        }
    })();
    let closed = sink.close(consumer.queue());
    bar.finish_and_clear();
    if let Ok(s) = consumer.status() {
        report.queue_drops = s.full.saturating_sub(full_at_start);
    }
    for r in [outcome, closed] {
        match r {
            Err(e) if !(to_stdout && is_broken_pipe(&e)) => return Err(e),
            _ => {}
        }
    }
    if !opts.silent {
        crate::note!(
            "{} packets, {} written to {}, {} queue drops",
            report.packets,
            HumanBytes(report.bytes),
            if to_stdout {
                "stdout"
            } else {
                opts.output.as_str()
            },
            report.queue_drops
        );
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(out: &str) -> CollectOptions {
        CollectOptions {
            output: out.into(),
            queue: "x".into(),
            lane: None,
            byte_limit: None,
            packet_limit: None,
            keep_waiting: false,
            silent: true,
            capture_time: false,
            pcapng: false,
            nano: false,
            snaplen: DEFAULT_SNAPLEN,
            rotate_mb: None,
            rotate_secs: None,
            ring_files: None,
            wait: None,
        }
    }

    #[test]
    fn file_names_follow_tcpdump() {
        let mut o = opts("cap.pcap");
        assert_eq!(o.file_name(0), "cap.pcap");
        o.rotate_mb = Some(1);
        assert_eq!(o.file_name(3), "cap.pcap3");
        o.ring_files = Some(12);
        assert_eq!(o.file_name(0), "cap.pcap00");
        assert_eq!(o.file_name(13), "cap.pcap01");
    }

    #[test]
    fn option_conflicts_are_explained() {
        let mut o = opts("-");
        o.rotate_secs = Some(5);
        assert!(o
            .check()
            .unwrap_err()
            .to_string()
            .contains("needs an output file"));
        let mut o = opts("f");
        o.ring_files = Some(3);
        assert!(o
            .check()
            .unwrap_err()
            .to_string()
            .contains("-W FILES needs"));
    }
}
