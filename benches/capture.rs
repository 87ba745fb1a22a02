//! Capture file writing: records per second for classic pcap and pcapng (direction flag on
//! every record, a fault comment on none), 64-byte and 1500-byte frames, into a buffered
//! writer that discards the bytes (the format's own cost, not the disk's). The end-to-end
//! comparison with the engine feeding collect is bench/engine-lab.sh.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ethertap::capture::pcap::PcapFile;
use ethertap::capture::pcapng::PcapNgFile;
use ethertap::capture::{PortInfo, Record};
use ethertap::pqueue::{Direction, IfCounts, InterfaceDesc, Marks};
use std::io::{BufWriter, Sink};
use std::time::Duration;

struct TwoPorts;

impl PortInfo for TwoPorts {
    fn interface(&self, index: usize) -> Option<InterfaceDesc> {
        (index < 2).then(|| InterfaceDesc {
            name: format!("port{index}"),
            driver: "veth".into(),
            mac: Some([2, 0, 0, 0, 0, index as u8]),
            mtu: 1500,
            speed_mbps: 10_000,
        })
    }
    fn counts(&self, _: usize) -> IfCounts {
        IfCounts::default()
    }
}

const BATCH: u64 = 1024;

fn records(frame: &[u8]) -> Vec<Record<'_>> {
    (0..BATCH)
        .map(|i| Record {
            ts: Duration::from_nanos(1_700_000_000_000_000_000 + i * 1000),
            data: frame,
            orig_len: frame.len() as u32,
            ifindex: (i % 2) as u8,
            dir: if i % 3 == 0 {
                Direction::Tx
            } else {
                Direction::Rx
            },
            marks: Marks::NONE,
        })
        .collect()
}

fn formats(c: &mut Criterion) {
    let mut g = c.benchmark_group("capture_write");
    g.measurement_time(Duration::from_secs(3));
    for size in [64usize, 1500] {
        let frame = vec![0x5au8; size];
        let recs = records(&frame);
        g.throughput(Throughput::Elements(BATCH));
        let out = || BufWriter::with_capacity(1 << 18, std::io::sink());
        let mut pcap = PcapFile::create(out(), 262_144, false).unwrap();
        g.bench_with_input(BenchmarkId::new("pcap", size), &recs, |b, recs| {
            b.iter(|| {
                for r in recs {
                    pcap.write(r).unwrap();
                }
            })
        });
        let mut ng: PcapNgFile<BufWriter<Sink>> = PcapNgFile::create(out(), 262_144, 0).unwrap();
        ng.describe_known(&TwoPorts).unwrap();
        g.bench_with_input(BenchmarkId::new("pcapng", size), &recs, |b, recs| {
            b.iter(|| {
                for r in recs {
                    ng.write(r, &TwoPorts).unwrap();
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, formats);
criterion_main!(benches);
