//! Classic pcap (libpcap's file format, Ethernet link type): what tcpdump and tshark read
//! everywhere. One file header, then a 16-byte record header and the captured bytes per frame.

use std::io::{self, Write};

use pcap_file::pcap::PcapHeader;
use pcap_file::{DataLink, Endianness, TsResolution};

use super::Record;

/// The size of the pcap file header.
pub const FILE_HEADER_LEN: u64 = 24;
/// The size of a pcap record header; a record is this plus its captured bytes.
pub const RECORD_HEADER_LEN: u64 = 16;

/// Writes classic pcap records to `W` (the caller buffers and flushes it).
pub struct PcapFile<W: Write> {
    out: W,
    ts_resolution: TsResolution,
    snaplen: u32,
}

impl<W: Write> PcapFile<W> {
    /// Writes the file header: Ethernet, `snaplen`, micro- or nanosecond timestamps, the
    /// host's byte order (as libpcap writes).
    pub fn create(mut out: W, snaplen: u32, nano: bool) -> io::Result<PcapFile<W>> {
        let ts_resolution = if nano {
            TsResolution::NanoSecond
        } else {
            TsResolution::MicroSecond
        };
        let header = PcapHeader {
            snaplen,
            datalink: DataLink::ETHERNET,
            ts_resolution,
            endianness: Endianness::native(),
            ..PcapHeader::default()
        };
        header.write_to(&mut out).map_err(pcap_io)?;
        Ok(PcapFile {
            out,
            ts_resolution,
            snaplen,
        })
    }

    /// Bytes a record of `captured` bytes takes in the file.
    pub fn record_len(captured: usize) -> u64 {
        RECORD_HEADER_LEN + captured as u64
    }

    /// Appends one record: the frame cut to the snap length, its original length kept.
    pub fn write(&mut self, rec: &Record<'_>) -> io::Result<u64> {
        let data = &rec.data[..rec.data.len().min(self.snaplen as usize)];
        let orig_len = rec.orig_len.max(data.len() as u32);
        // pcap stores seconds in 32 bits: the year 2106 is far enough.
        let secs = rec.ts.as_secs().min(u64::from(u32::MAX)) as u32;
        let frac = match self.ts_resolution {
            TsResolution::NanoSecond => rec.ts.subsec_nanos(),
            TsResolution::MicroSecond => rec.ts.subsec_micros(),
        };
        // The record header is in the host's byte order, as the file header says.
        let mut header = [0u8; RECORD_HEADER_LEN as usize];
        for (field, value) in
            header
                .chunks_exact_mut(4)
                .zip([secs, frac, data.len() as u32, orig_len])
        {
            field.copy_from_slice(&value.to_ne_bytes());
        }
        self.out.write_all(&header)?;
        self.out.write_all(data)?;
        Ok(Self::record_len(data.len()))
    }

    /// The output, to flush it or to take it back.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Ends the file (classic pcap has no trailer) and gives the output back.
    pub fn finish(self) -> W {
        self.out
    }
}

/// pcap-file wraps I/O errors; callers want them back as they were (a broken pipe, a full disk).
pub(crate) fn pcap_io(e: pcap_file::PcapError) -> io::Error {
    match e {
        pcap_file::PcapError::IoError(e) => e,
        other => io::Error::other(other.to_string()),
    }
}
