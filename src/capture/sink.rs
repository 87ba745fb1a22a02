//! The output of a capture: one stream (a file or stdout), or a sequence of rotated files
//! named as tcpdump names them, each a complete capture file of its own.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::time::{Duration, Instant};

use super::collect::CollectOptions;
use super::pcap::{self, PcapFile};
use super::{CaptureError, Record};

/// Where records go: buffered, so that a record costs no syscall.
type Output = BufWriter<Box<dyn Write>>;

/// An open capture file in the format collect was asked for.
pub enum FileWriter {
    /// Classic pcap.
    Pcap(PcapFile<Output>),
}

impl FileWriter {
    fn write(&mut self, rec: &Record<'_>) -> io::Result<u64> {
        match self {
            FileWriter::Pcap(f) => f.write(rec),
        }
    }

    fn record_len(&self, rec: &Record<'_>, snaplen: u32) -> u64 {
        match self {
            FileWriter::Pcap(_) => {
                PcapFile::<Output>::record_len(rec.data.len().min(snaplen as usize))
            }
        }
    }

    fn output(&mut self) -> &mut Output {
        match self {
            FileWriter::Pcap(f) => f.get_mut(),
        }
    }

    fn finish(self) -> io::Result<Output> {
        match self {
            FileWriter::Pcap(f) => Ok(f.finish()),
        }
    }
}

/// The capture output: opens, rotates, flushes and closes files.
pub struct Sink<'a> {
    opts: &'a CollectOptions,
    writer: Option<FileWriter>,
    /// The current file's name (`stdout` for `-`), for error messages.
    name: String,
    index: u64,
    file_bytes: u64,
    opened: Instant,
}

impl<'a> Sink<'a> {
    /// Opens the first file (or stdout).
    pub fn new(opts: &'a CollectOptions) -> Result<Sink<'a>, CaptureError> {
        let mut s = Sink {
            opts,
            writer: None,
            name: String::new(),
            index: 0,
            file_bytes: 0,
            opened: Instant::now(),
        };
        s.open()?;
        Ok(s)
    }

    /// How many files were started (1 without rotation).
    pub fn files(&self) -> u64 {
        self.index + 1
    }

    fn failed(&self, source: io::Error) -> CaptureError {
        CaptureError::Write {
            file: self.name.clone(),
            source,
        }
    }

    fn open(&mut self) -> Result<(), CaptureError> {
        let out: Box<dyn Write> = if self.opts.output == "-" {
            self.name = "stdout".into();
            Box::new(io::stdout())
        } else {
            self.name = self.opts.file_name(self.index);
            Box::new(File::create(&self.name).map_err(|e| self.failed(e))?)
        };
        let out = BufWriter::with_capacity(1 << 18, out);
        let file =
            PcapFile::create(out, self.opts.snaplen, self.opts.nano).map_err(|e| self.failed(e))?;
        self.writer = Some(FileWriter::Pcap(file));
        self.file_bytes = pcap::FILE_HEADER_LEN;
        self.opened = Instant::now();
        Ok(())
    }

    /// Ends the current file (flushed whole); nothing is open afterwards.
    pub fn close(&mut self) -> Result<(), CaptureError> {
        if let Some(w) = self.writer.take() {
            let mut out = w.finish().map_err(|e| self.failed(e))?;
            out.flush().map_err(|e| self.failed(e))?;
        }
        Ok(())
    }

    fn rotate_if_due(&mut self, record_len: u64) -> Result<(), CaptureError> {
        let by_size = self.opts.rotate_mb.is_some_and(|mb| {
            self.file_bytes > pcap::FILE_HEADER_LEN
                && self.file_bytes + record_len > mb.saturating_mul(1_000_000)
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

    /// Appends one record, starting a new file first when rotation is due.
    pub fn write(&mut self, rec: &Record<'_>) -> Result<(), CaptureError> {
        let len = match &self.writer {
            Some(w) => w.record_len(rec, self.opts.snaplen),
            None => 0,
        };
        self.rotate_if_due(len)?;
        let w = self
            .writer
            .as_mut()
            .expect("a file is open between open() and close()");
        let written = w.write(rec);
        let written = written.map_err(|e| self.failed(e))?;
        self.file_bytes += written;
        Ok(())
    }

    /// Hands what is buffered to the file or pipe.
    pub fn flush(&mut self) -> Result<(), CaptureError> {
        let r = match self.writer.as_mut() {
            Some(w) => w.output().flush(),
            None => Ok(()),
        };
        r.map_err(|e| self.failed(e))
    }
}
