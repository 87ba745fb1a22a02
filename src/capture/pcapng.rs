//! pcapng (the format dumpcap and xdpdump write): a section header naming the application,
//! one Interface Description Block per engine interface (`interface_id` = the index of
//! `if.stats`), one Enhanced Packet Block per frame with its direction, its capture time and
//! a comment on what fault injection did to it, and Interface Statistics Blocks at the end.
//!
//! Interfaces are described lazily, as pcapng allows: when the first frame of interface k
//! arrives, the blocks of 0..=k that are missing are written, from what the engine recorded in
//! the queue segment ([`PortInfo`]), so the ids stay the engine's indices also when collect
//! started before the engine.

use std::borrow::Cow;
use std::io::{self, Write};
use std::time::Duration;

use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::interface_statistics::{
    InterfaceStatisticsBlock, InterfaceStatisticsOption,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, Endianness};

use super::pcap::pcap_io;
use super::{PortInfo, Record};
use crate::pqueue::{Direction, IfCounts, InterfaceDesc, Marks};

/// `epb_flags` direction bits (pcapng §4.3.1): inbound and outbound.
const INBOUND: u32 = 1;
const OUTBOUND: u32 = 2;

/// What a file has said about one interface: its description and its counters when the
/// file started, so that its statistics block covers this file only.
struct Described {
    desc: InterfaceDesc,
    at_start: IfCounts,
}

/// Writes pcapng to `W` (the caller buffers and flushes it).
pub struct PcapNgFile<W: Write> {
    writer: PcapNgWriter<W>,
    snaplen: u32,
    /// Interfaces described in this section, by engine index.
    interfaces: Vec<Described>,
    /// When the file was opened, ns since the epoch (`isb_starttime`).
    started_ns: u64,
}

/// The text of `shb_userappl`.
pub fn application() -> String {
    format!("ethertap collect {}", env!("CARGO_PKG_VERSION"))
}

/// The text of `shb_os`: the kernel's name and release.
fn operating_system() -> String {
    match nix::sys::utsname::uname() {
        Ok(u) => format!(
            "{} {}",
            u.sysname().to_string_lossy(),
            u.release().to_string_lossy()
        ),
        Err(_) => "Linux".into(),
    }
}

/// The Section Header Block every section starts with.
fn section_header() -> SectionHeaderBlock<'static> {
    SectionHeaderBlock {
        endianness: Endianness::Little,
        options: vec![
            SectionHeaderOption::UserApplication(Cow::Owned(application())),
            SectionHeaderOption::OS(Cow::Owned(operating_system())),
            SectionHeaderOption::Hardware(Cow::Borrowed(std::env::consts::ARCH)),
        ],
        ..SectionHeaderBlock::default()
    }
}

/// pcapng stores a 64-bit timestamp as its high 32 bits, then its low 32 bits, each in the
/// section's byte order; pcap-file writes a `u64` option or field in one piece, so the halves
/// are swapped for the little-endian sections we write.
fn split_ts(ns: u64) -> u64 {
    ns.rotate_left(32)
}

impl<W: Write> PcapNgFile<W> {
    /// Writes the Section Header Block; interfaces follow as their frames arrive (or at once
    /// with [`PcapNgFile::describe_known`]).
    pub fn create(out: W, snaplen: u32, now_ns: u64) -> io::Result<PcapNgFile<W>> {
        let writer = PcapNgWriter::with_section_header(out, section_header()).map_err(pcap_io)?;
        Ok(PcapNgFile {
            writer,
            snaplen,
            interfaces: Vec::new(),
            started_ns: now_ns,
        })
    }

    /// Describes every interface the engine has described so far (a file that starts while
    /// the engine runs lists all its ports, even those no frame came from).
    pub fn describe_known(&mut self, ports: &dyn PortInfo) -> io::Result<()> {
        let mut known = 0;
        while ports.interface(known).is_some() {
            known += 1;
        }
        if known > 0 {
            self.describe_up_to(known - 1, ports)?;
        }
        Ok(())
    }

    /// Writes the Interface Description Blocks of interfaces `..=index` not yet described.
    fn describe_up_to(&mut self, index: usize, ports: &dyn PortInfo) -> io::Result<()> {
        while self.interfaces.len() <= index {
            let i = self.interfaces.len();
            let desc = ports.interface(i).unwrap_or_else(|| InterfaceDesc {
                name: format!("if{i}"),
                ..InterfaceDesc::default()
            });
            let mut options = vec![
                InterfaceDescriptionOption::IfName(Cow::Owned(desc.name.clone())),
                InterfaceDescriptionOption::IfDescription(Cow::Owned(format!(
                    "ethertap interface {i}"
                ))),
                // pcap-file writes EPB timestamps in ns whatever this says: it must say 9.
                InterfaceDescriptionOption::IfTsResol(9),
            ];
            if !desc.driver.is_empty() {
                options.push(InterfaceDescriptionOption::IfHardware(Cow::Owned(format!(
                    "driver {}",
                    desc.driver
                ))));
            }
            if let Some(mac) = desc.mac {
                options.push(InterfaceDescriptionOption::IfMacAddr(Cow::Owned(
                    mac.to_vec(),
                )));
            }
            if desc.speed_mbps > 0 {
                options.push(InterfaceDescriptionOption::IfSpeed(
                    desc.speed_mbps.saturating_mul(1_000_000),
                ));
            }
            let idb = InterfaceDescriptionBlock {
                linktype: DataLink::ETHERNET,
                snaplen: self.snaplen,
                options,
            };
            self.writer.write_pcapng_block(idb).map_err(pcap_io)?;
            self.interfaces.push(Described {
                desc,
                at_start: ports.counts(i),
            });
        }
        Ok(())
    }

    /// True when the engine now describes an interface of this file differently (it was
    /// restarted on other ports): the caller starts a new section.
    pub fn ports_changed(&self, ports: &dyn PortInfo) -> bool {
        self.interfaces
            .iter()
            .enumerate()
            .any(|(i, d)| ports.interface(i).is_some_and(|now| now != d.desc))
    }

    /// Appends one Enhanced Packet Block: the frame cut to the snap length, its original
    /// length, capture time, direction and fault marks.
    pub fn write(&mut self, rec: &Record<'_>, ports: &dyn PortInfo) -> io::Result<u64> {
        let index = usize::from(rec.ifindex);
        if index >= self.interfaces.len() {
            self.describe_up_to(index, ports)?;
        }
        let data = &rec.data[..rec.data.len().min(self.snaplen as usize)];
        let mut options = Vec::with_capacity(2);
        options.push(EnhancedPacketOption::Flags(match rec.dir {
            Direction::Rx => INBOUND,
            Direction::Tx => OUTBOUND,
        }));
        if let Some(comment) = fault_comment(rec.marks) {
            options.push(EnhancedPacketOption::Comment(Cow::Borrowed(comment)));
        }
        let epb = EnhancedPacketBlock {
            interface_id: u32::from(rec.ifindex),
            timestamp: rec.ts,
            original_len: rec.orig_len.max(data.len() as u32),
            data: Cow::Borrowed(data),
            options,
        };
        let n = self.writer.write_pcapng_block(epb).map_err(pcap_io)?;
        Ok(n as u64)
    }

    /// Ends this section (its statistics) and starts a new one in the same file, for an
    /// engine that was restarted on other ports: interface ids are per section, so frames of
    /// the new engine are never filed under the old one's ports.
    pub fn new_section(&mut self, ports: &dyn PortInfo, now_ns: u64) -> io::Result<()> {
        self.write_statistics(ports, now_ns)?;
        self.writer
            .write_pcapng_block(section_header())
            .map_err(pcap_io)?;
        self.interfaces.clear();
        self.started_ns = now_ns;
        self.describe_known(ports)
    }

    /// The output, to flush it.
    pub fn get_mut(&mut self) -> &mut W {
        self.writer.get_mut()
    }

    /// Writes one Interface Statistics Block per described interface — start and end time,
    /// frames the interface received and tapped frames the queue had no room for, both
    /// counted over this file's life — and gives the output back.
    pub fn finish(mut self, ports: &dyn PortInfo, now_ns: u64) -> io::Result<W> {
        self.write_statistics(ports, now_ns)?;
        Ok(self.writer.into_inner())
    }

    fn write_statistics(&mut self, ports: &dyn PortInfo, now_ns: u64) -> io::Result<()> {
        for (i, d) in self.interfaces.iter().enumerate() {
            let now = ports.counts(i);
            let isb = InterfaceStatisticsBlock {
                interface_id: i as u32,
                timestamp: split_ts(now_ns),
                options: vec![
                    InterfaceStatisticsOption::IsbStartTime(split_ts(self.started_ns)),
                    InterfaceStatisticsOption::IsbEndTime(split_ts(now_ns)),
                    InterfaceStatisticsOption::IsbIfRecv(
                        now.received.saturating_sub(d.at_start.received),
                    ),
                    InterfaceStatisticsOption::IsbIfDrop(now.full.saturating_sub(d.at_start.full)),
                ],
            };
            self.writer.write_pcapng_block(isb).map_err(pcap_io)?;
        }
        Ok(())
    }

    /// The timestamp a record of `ts` gets (pcapng always stores capture time).
    pub fn timestamp(ts_ns: u64) -> Duration {
        Duration::from_nanos(ts_ns)
    }
}

/// The comment of a frame fault injection changed, if it did.
pub fn fault_comment(marks: Marks) -> Option<&'static str> {
    let flip = marks.contains(Marks::BITFLIP);
    let dup = marks.contains(Marks::DUPLICATE);
    match (flip, dup) {
        (false, false) => None,
        (true, false) => Some("fault: bitflip"),
        (false, true) => Some("fault: duplicate"),
        (true, true) => Some("fault: bitflip, duplicate"),
    }
}
