//! The output of a capture: one stream (a file or stdout), or a sequence of rotated files
//! named as tcpdump names them, each a complete capture file of its own (a pcapng file with
//! its own section header, interface descriptions and statistics).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::time::{Duration, Instant};

use super::collect::CollectOptions;
use super::pcap::{self, PcapFile};
use super::pcapng::PcapNgFile;
use super::{CaptureError, Format, PortInfo, Record};

/// Where records go: buffered, so that a record costs no syscall.
type Output = BufWriter<Box<dyn Write>>;

/// An open capture file in the format collect was asked for.
pub enum FileWriter {
    /// Classic pcap.
    Pcap(PcapFile<Output>),
    /// pcapng.
    PcapNg(PcapNgFile<Output>),
}

impl FileWriter {
    fn write(&mut self, rec: &Record<'_>, ports: &dyn PortInfo) -> io::Result<u64> {
        match self {
            FileWriter::Pcap(f) => f.write(rec),
            FileWriter::PcapNg(f) => f.write(rec, ports),
        }
    }

    fn output(&mut self) -> &mut Output {
        match self {
            FileWriter::Pcap(f) => f.get_mut(),
            FileWriter::PcapNg(f) => f.get_mut(),
        }
    }

    fn finish(self, ports: &dyn PortInfo) -> io::Result<Output> {
        match self {
            FileWriter::Pcap(f) => Ok(f.finish()),
            FileWriter::PcapNg(f) => f.finish(ports, crate::pqueue::now_ns()),
        }
    }
}

/// The capture output: opens, rotates, flushes and closes files.
pub struct Sink<'a> {
    opts: &'a CollectOptions,
    writer: Option<FileWriter>,
    /// The current file (not stdout), to cut it back to its last complete record if a
    /// write fails half-way (a full disk).
    file: Option<File>,
    /// The length the file had at the last successful flush: every record up to it is whole.
    safe_len: u64,
    /// The current file's name (`stdout` for `-`), for error messages.
    name: String,
    index: u64,
    file_bytes: u64,
    opened: Instant,
}

impl<'a> Sink<'a> {
    /// Opens the first file (or stdout).
    pub fn new(opts: &'a CollectOptions, ports: &dyn PortInfo) -> Result<Sink<'a>, CaptureError> {
        let mut s = Sink {
            opts,
            writer: None,
            file: None,
            safe_len: 0,
            name: String::new(),
            index: 0,
            file_bytes: 0,
            opened: Instant::now(),
        };
        s.open(ports)?;
        Ok(s)
    }

    /// How many files were started (1 without rotation).
    pub fn files(&self) -> u64 {
        self.index + 1
    }

    /// The error for a failed write. The file is cut back to its last complete record (the
    /// buffered writer is dropped first, so nothing more reaches the file afterwards).
    fn failed(&mut self, source: io::Error) -> CaptureError {
        if let Some(file) = self.file.take() {
            self.writer = None;
            let _ = file.set_len(self.safe_len);
        }
        CaptureError::Write {
            file: self.name.clone(),
            source,
        }
    }

    /// Records that everything written so far reached the file whole.
    fn mark_safe(&mut self) {
        if let Some(len) = self
            .file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| m.len())
        {
            self.safe_len = len;
        }
    }

    fn open(&mut self, ports: &dyn PortInfo) -> Result<(), CaptureError> {
        let out: Box<dyn Write> = if self.opts.output == "-" {
            self.name = "stdout".into();
            self.file = None;
            Box::new(io::stdout())
        } else {
            self.name = self.opts.file_name(self.index);
            let file = File::create(&self.name).map_err(|e| self.failed(e))?;
            self.file = Some(file.try_clone().map_err(|e| self.failed(e))?);
            self.safe_len = 0;
            Box::new(file)
        };
        let out = BufWriter::with_capacity(1 << 18, out);
        let writer = match self.opts.format() {
            Format::Pcap => {
                PcapFile::create(out, self.opts.snaplen, self.opts.nano).map(FileWriter::Pcap)
            }
            Format::PcapNg => PcapNgFile::create(out, self.opts.snaplen, crate::pqueue::now_ns())
                .and_then(|mut f| f.describe_known(ports).map(|_| f))
                .map(FileWriter::PcapNg),
        };
        let writer = writer.map_err(|e| self.failed(e))?;
        self.writer = Some(writer);
        self.file_bytes = pcap::FILE_HEADER_LEN;
        self.opened = Instant::now();
        // The header reaches the file at once: a capture that fails later still leaves a
        // valid (empty) file, and a full disk shows at start.
        self.flush()
    }

    /// Ends the current file (statistics written, flushed whole); nothing is open afterwards.
    pub fn close(&mut self, ports: &dyn PortInfo) -> Result<(), CaptureError> {
        if let Some(w) = self.writer.take() {
            let mut out = w.finish(ports).map_err(|e| self.failed(e))?;
            let flushed = out.flush();
            drop(out);
            flushed.map_err(|e| self.failed(e))?;
            if let Some(file) = self.file.take() {
                file.sync_data().map_err(|e| self.failed(e))?;
            }
        }
        Ok(())
    }

    /// Ends the current file and starts the next one.
    fn rotate(&mut self, ports: &dyn PortInfo) -> Result<(), CaptureError> {
        self.close(ports)?;
        self.index += 1;
        self.open(ports)
    }

    fn rotate_if_due(&mut self, record_len: u64, ports: &dyn PortInfo) -> Result<(), CaptureError> {
        let by_size = self.opts.rotate_mb.is_some_and(|mb| {
            self.file_bytes > pcap::FILE_HEADER_LEN
                && self.file_bytes + record_len > mb.saturating_mul(1_000_000)
        });
        let by_time = self
            .opts
            .rotate_secs
            .is_some_and(|s| self.opened.elapsed() >= Duration::from_secs(s));
        if by_size || by_time {
            self.rotate(ports)?;
        }
        Ok(())
    }

    /// Appends one record, starting a new file first when rotation is due.
    pub fn write(&mut self, rec: &Record<'_>, ports: &dyn PortInfo) -> Result<(), CaptureError> {
        // About the size of the record: exact for pcap, a close upper bound for pcapng.
        let estimate = 16 + 48 + rec.data.len().min(self.opts.snaplen as usize) as u64;
        self.rotate_if_due(estimate, ports)?;
        let w = self
            .writer
            .as_mut()
            .expect("a file is open between open() and close()");
        let written = w.write(rec, ports).map_err(|e| self.failed(e))?;
        self.file_bytes += written;
        Ok(())
    }

    /// Follows an engine that was restarted under the same queue: a pcapng file whose ports
    /// the engine now describes differently goes on in a new section, so that no frame is
    /// filed under the wrong port.
    pub fn engine_changed(&mut self, ports: &dyn PortInfo) -> Result<(), CaptureError> {
        let r = match &mut self.writer {
            Some(FileWriter::PcapNg(f)) if f.ports_changed(ports) => {
                f.new_section(ports, crate::pqueue::now_ns())
            }
            _ => Ok(()),
        };
        r.map_err(|e| self.failed(e))
    }

    /// Hands what is buffered to the file or pipe.
    pub fn flush(&mut self) -> Result<(), CaptureError> {
        let r = match self.writer.as_mut() {
            Some(w) => w.output().flush(),
            None => Ok(()),
        };
        r.map_err(|e| self.failed(e))?;
        self.mark_safe();
        Ok(())
    }
}
