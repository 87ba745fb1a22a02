//! `collect` (product.md §6): take packets from the queue and write classic pcap files.
//! The binary in src/bin/collect.rs only parses arguments and detaches.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, Endianness, TsResolution};

use crate::pqueue::{Batch, Consumer};

/// Snap length written in the pcap header when `--snaplen` is not given (as tcpdump).
pub const DEFAULT_SNAPLEN: u32 = 262_144;
const BATCH: usize = 256;

#[derive(Clone, Debug)]
pub struct CollectOptions {
    /// File name, or `-` for stdout.
    pub output: String,
    pub queue: String,
    pub byte_limit: Option<u64>,
    pub packet_limit: Option<u64>,
    pub keep_waiting: bool,
    pub silent: bool,
    pub capture_time: bool,
    pub nano: bool,
    pub snaplen: u32,
    /// Start a new file when this one would exceed this many millions of bytes.
    pub rotate_mb: Option<u64>,
    /// Start a new file every this many seconds.
    pub rotate_secs: Option<u64>,
    /// Keep at most this many files, reusing names in a ring.
    pub ring_files: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CollectReport {
    pub packets: u64,
    pub bytes: u64,
    pub files: u64,
    /// Packets the queue refused (full) while we ran.
    pub queue_drops: u64,
}

impl CollectOptions {
    pub fn check(&self) -> Result<(), String> {
        let rotating = self.rotate_mb.is_some() || self.rotate_secs.is_some();
        if self.output == "-" && (rotating || self.ring_files.is_some()) {
            return Err("file rotation (-C, -G, -W) needs an output file name, not -".into());
        }
        if self.ring_files.is_some() && !rotating {
            return Err("-W FILES needs -C MB or -G SECONDS".into());
        }
        if self.rotate_mb == Some(0) || self.rotate_secs == Some(0) || self.ring_files == Some(0) {
            return Err("-C, -G and -W take a number greater than 0".into());
        }
        if self.snaplen == 0 {
            return Err("--snaplen must be at least 1".into());
        }
        Ok(())
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

/// The buffered output, shared between the PcapWriter (which offers no flush of its own)
/// and the sink, which flushes it for readers on a pipe and closes it whole.
#[derive(Clone)]
struct Out(Rc<RefCell<BufWriter<Box<dyn Write>>>>);

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.borrow_mut().write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.borrow_mut().flush()
    }
}

/// The pcap output: one stream, or a sequence of rotated files.
struct Sink<'a> {
    opts: &'a CollectOptions,
    writer: Option<(PcapWriter<Out>, Out)>,
    index: u64,
    file_bytes: u64,
    opened: Instant,
}

impl<'a> Sink<'a> {
    fn new(opts: &'a CollectOptions) -> io::Result<Sink<'a>> {
        let mut s = Sink {
            opts,
            writer: None,
            index: 0,
            file_bytes: 0,
            opened: Instant::now(),
        };
        s.open()?;
        Ok(s)
    }

    fn header(&self) -> PcapHeader {
        PcapHeader {
            snaplen: self.opts.snaplen,
            datalink: DataLink::ETHERNET,
            ts_resolution: if self.opts.nano {
                TsResolution::NanoSecond
            } else {
                TsResolution::MicroSecond
            },
            endianness: Endianness::native(),
            ..PcapHeader::default()
        }
    }

    fn open(&mut self) -> io::Result<()> {
        let out: Box<dyn Write> = if self.opts.output == "-" {
            Box::new(io::stdout())
        } else {
            let name = self.opts.file_name(self.index);
            Box::new(
                File::create(&name)
                    .map_err(|e| io::Error::new(e.kind(), format!("{name}: {e}")))?,
            )
        };
        let out = Out(Rc::new(RefCell::new(BufWriter::with_capacity(
            1 << 18,
            out,
        ))));
        let w = PcapWriter::with_header(out.clone(), self.header()).map_err(pcap_io)?;
        self.writer = Some((w, out));
        self.file_bytes = 24;
        self.opened = Instant::now();
        Ok(())
    }

    fn close(&mut self) -> io::Result<()> {
        if let Some((w, mut out)) = self.writer.take() {
            drop(w);
            out.flush()?;
        }
        Ok(())
    }

    fn rotate_if_due(&mut self, record_len: u64) -> io::Result<()> {
        let by_size = self.opts.rotate_mb.is_some_and(|mb| {
            self.file_bytes > 24 && self.file_bytes + record_len > mb * 1_000_000
        });
        let by_time = self
            .opts
            .rotate_secs
            .is_some_and(|s| self.opened.elapsed() >= Duration::from_secs(s));
        if by_size || by_time {
            self.close()?;
            self.index += 1;
            self.open()?;
        }
        Ok(())
    }

    fn write(&mut self, ts: Duration, data: &[u8], orig_len: u32) -> io::Result<()> {
        let record_len = 16 + data.len() as u64;
        self.rotate_if_due(record_len)?;
        let (w, _) = self
            .writer
            .as_mut()
            .expect("a file is open between open() and close()");
        w.write_packet(&PcapPacket::new(ts, orig_len.max(data.len() as u32), data))
            .map_err(pcap_io)?;
        self.file_bytes += record_len;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.writer.as_mut() {
            Some((_, out)) => out.flush(),
            None => Ok(()),
        }
    }
}

fn pcap_io(e: pcap_file::PcapError) -> io::Error {
    match e {
        pcap_file::PcapError::IoError(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

fn is_broken_pipe(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
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
) -> Result<CollectReport, String> {
    opts.check()?;
    if opts.output == "-" && io::stdout().is_terminal() {
        return Err("refusing to write binary pcap to a terminal: pipe it (collect - | tshark -r -) or give a file name".into());
    }
    let mut consumer = Consumer::attach(&opts.queue).map_err(|e| e.to_string())?;
    if !opts.keep_waiting {
        consumer.reset().map_err(|e| e.to_string())?;
    }
    let full_at_start = consumer.status().map_err(|e| e.to_string())?.full;
    let mut sink = Sink::new(opts).map_err(|e| e.to_string())?;
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
    let outcome: Result<(), io::Error> = (|| {
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
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
            let n = consumer
                .pop_wait(&mut batch, want, Duration::from_millis(100))
                .map_err(|e| io::Error::other(e.to_string()))?;
            for p in batch.iter() {
                let ts = if opts.capture_time {
                    Duration::from_nanos(p.ts_ns)
                } else {
                    wall_clock()
                };
                let cut = p.data.len().min(opts.snaplen as usize);
                sink.write(ts, &p.data[..cut], p.orig_len)?;
                report.packets += 1;
                report.bytes += cut as u64;
            }
            report.files = sink.index + 1;
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
                bar.set_message(format!(
                    "{} packets, {}, {:.0} pkt/s, {} queue drops",
                    report.packets,
                    HumanBytes(report.bytes),
                    report.packets as f64 / secs,
                    report.queue_drops
                ));
                bar.tick();
            }
        }
    })();
    let closed = sink.close();
    bar.finish_and_clear();
    if let Ok(s) = consumer.status() {
        report.queue_drops = s.full.saturating_sub(full_at_start);
    }
    for r in [outcome, closed] {
        match r {
            Err(e) if !(to_stdout && is_broken_pipe(&e)) => return Err(e.to_string()),
            _ => {}
        }
    }
    if !opts.silent {
        eprintln!(
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
            byte_limit: None,
            packet_limit: None,
            keep_waiting: false,
            silent: true,
            capture_time: false,
            nano: false,
            snaplen: DEFAULT_SNAPLEN,
            rotate_mb: None,
            rotate_secs: None,
            ring_files: None,
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
        assert!(o.check().unwrap_err().contains("needs an output file"));
        let mut o = opts("f");
        o.ring_files = Some(3);
        assert!(o.check().unwrap_err().contains("-W FILES needs"));
    }
}
