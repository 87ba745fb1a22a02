//! The per-frame costs of the engine's control side, each beside the obvious alternative:
//! * vendor lookup: the build-time table vs `mac_oui::Oui::default()` + lookup (the crate's way)
//! * machash membership: `MacSet::contains` vs `std::collections::HashSet<[u8; 6]>`, and with
//!   MAC ranges
//! * per-frame statistics: `QueueStats::on_rx` (single writer, no locks) vs the same counts
//!   kept in `HashMap`s behind a `Mutex`
//! * fault decision: `decide` with all three probabilities set
//! * the tap filter per tapped frame: the crate's cBPF interpreter (`TapFilter::matches`) vs
//!   libpcap's `pcap_offline_filter` on the same compiled program, match and miss
//! * the fast path over a batch: `fastpath::run_batch` (every stage, frames in plain memory)
//!   with the policies the engine meets: nothing set, a drop machash, fault injection, taps,
//!   taps with a filter, a snap length and sampling, and fan-out: two and four queues (each a
//!   copy of every frame), a queue in four lanes, a second queue with its own filter

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use ethertap::ixdp::fanout::TapQueue;
use ethertap::ixdp::fastpath::{
    run_batch, BatchContext, FrameLists, MemoryFrames, Route, WorkerState,
};
use ethertap::ixdp::fault::{decide, FaultRng};
use ethertap::ixdp::machash::MacSet;
use ethertap::ixdp::policy::{FaultConfig, Policy};
use ethertap::ixdp::select::{Sample, SnapLen, TapFilter};
use ethertap::ixdp::stats::QueueStats;
use ethertap::lab::frames;
use ethertap::pqueue::{queue_path, Batch, Consumer, Layout, Producer, Queue};
use ethertap::wire::{ethertype, Mac, MacRange};
use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::net::SocketAddrV4;
use std::sync::{Arc, Mutex};

fn macs(n: usize) -> Vec<Mac> {
    (0..n as u32)
        .map(|i| {
            let h = i.wrapping_mul(0x9e37_79b9);
            Mac([0x00, 0x1b, 0x21, (h >> 16) as u8, (h >> 8) as u8, h as u8])
        })
        .collect()
}

fn frames(n: usize) -> Vec<Vec<u8>> {
    macs(n)
        .iter()
        .enumerate()
        .map(|(i, src)| {
            let mut f = vec![0xff; 6];
            f.extend_from_slice(&src.0);
            if i % 4 == 0 {
                f.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
            }
            f.extend_from_slice(if i % 3 == 0 {
                &[0x86, 0xdd]
            } else {
                &[0x08, 0x00]
            });
            f.resize(64, 0);
            f
        })
        .collect()
}

fn vendor_lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("vendor lookup");
    g.sample_size(10);
    let mac = Mac([0x00, 0x1b, 0x21, 0x3a, 0x4f, 0x01]);
    g.bench_function("Mac::describe (build-time table)", |b| {
        b.iter(|| black_box(mac).describe())
    });
    g.bench_function("mac_oui::Oui::default + lookup_by_mac", |b| {
        b.iter(|| {
            let db = mac_oui::Oui::default().unwrap();
            db.lookup_by_mac(black_box("00:1b:21:3a:4f:01"))
                .unwrap()
                .map(|e| e.company_name.clone())
        })
    });
    g.finish();
}

fn machash(c: &mut Criterion) {
    let mut g = c.benchmark_group("machash contains, 64 lookups");
    for n in [4usize, 1000] {
        let members = macs(n);
        let probes: Vec<Mac> = macs(2 * n).into_iter().cycle().take(64).collect();
        let set: MacSet = members.iter().copied().collect();
        let hash: HashSet<Mac> = members.iter().copied().collect();
        g.bench_function(format!("MacSet, {n} MACs"), |b| {
            b.iter(|| probes.iter().filter(|m| set.contains(black_box(m))).count())
        });
        g.bench_function(format!("HashSet, {n} MACs"), |b| {
            b.iter(|| {
                probes
                    .iter()
                    .filter(|m| hash.contains(black_box(*m)))
                    .count()
            })
        });
    }
    // The cost of ranges: the 4 MACs and two ranges, half the probes inside one.
    let probes: Vec<Mac> = macs(8).into_iter().cycle().take(64).collect();
    let ranged = macs(4).into_iter().collect::<MacSet>().inserted(
        MacRange::new(
            Mac([0x00, 0x1b, 0x21, 0, 0, 0]),
            Mac([0x00, 0x1b, 0x21, 0x7f, 0xff, 0xff]),
        )
        .unwrap(),
    );
    let ranged = ranged.inserted(
        MacRange::new(Mac([0x02, 0, 0, 0, 0, 0]), Mac([0x02, 0, 0, 0, 0xff, 0xff])).unwrap(),
    );
    g.bench_function("MacSet, 4 MACs and 2 ranges", |b| {
        b.iter(|| {
            probes
                .iter()
                .filter(|m| ranged.contains(black_box(m)))
                .count()
        })
    });
    g.finish();
}

/// rx, frames per source MAC, (frames, last source) per (VLAN level, Ethertype).
type Tables = (u64, HashMap<Mac, u64>, HashMap<(u8, u16), (u64, Mac)>);

/// The obvious alternative to `QueueStats`: counters and tables behind one lock.
#[derive(Default)]
struct LockedStats {
    inner: Mutex<Tables>,
}

impl LockedStats {
    fn on_rx(&self, frame: &[u8]) {
        let mut g = self.inner.lock().unwrap();
        g.0 += 1;
        let Some(src) = frame.get(6..12) else { return };
        let src = Mac::try_from(src).unwrap();
        *g.1.entry(src).or_default() += 1;
        let mut at = 12;
        for level in 0..=4u8 {
            let Some(&[hi, lo]) = frame.get(at..at + 2) else {
                break;
            };
            let t = u16::from_be_bytes([hi, lo]);
            let e = g.2.entry((level, t)).or_insert((0, src));
            e.0 += 1;
            e.1 = src;
            if !ethertype::is_vlan_tag(t) {
                break;
            }
            at += 4;
        }
    }
}

fn per_frame_stats(c: &mut Criterion) {
    let mut g = c.benchmark_group("per-frame statistics, 64 frames");
    let batch = frames(64);
    let q = QueueStats::new();
    g.bench_function("QueueStats::on_rx", |b| {
        b.iter(|| batch.iter().for_each(|f| q.on_rx(black_box(f))))
    });
    let locked = LockedStats::default();
    g.bench_function("Mutex<HashMap> stats", |b| {
        b.iter(|| batch.iter().for_each(|f| locked.on_rx(black_box(f))))
    });
    g.finish();
}

fn fault_decision(c: &mut Criterion) {
    let cfg = FaultConfig {
        enabled: true,
        drop_p: 1_000,
        flip_p: 5_000,
        dup_p: 5_000,
    };
    let mut rng = FaultRng::new(42);
    c.bench_function("fault decide, 64 frames", |b| {
        b.iter(|| {
            (0..64)
                .filter(|_| decide(black_box(&cfg), &mut rng).drop)
                .count()
        })
    });
}

/// A TCP segment from 10.0.0.2:40000 to 10.0.0.9:`port`, 64 bytes of payload.
fn tcp_to(port: u16) -> Vec<u8> {
    let from = SocketAddrV4::new([10, 0, 0, 2].into(), 40000);
    let to = SocketAddrV4::new([10, 0, 0, 9].into(), port);
    let (a, b) = (Mac([2, 0, 0, 0, 0, 1]), Mac([2, 0, 0, 0, 0, 2]));
    frames::tcp4(b, a, &[], from, to, 1, &[0; 64]).unwrap()
}

/// The filter's cost for one frame that reached a tap point: both ways of running the program
/// libpcap compiled, on a frame it takes (TCP to port 443) and on one it does not (port 22,
/// which reads as far as the ports).
fn tap_filter(c: &mut Criterion) {
    let mut g = c.benchmark_group("tap filter, one frame");
    let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET).unwrap();
    for expr in [
        "tcp port 443",
        "tcp and (port 80 or port 443) and not host 10.0.0.1",
    ] {
        let ours = TapFilter::compile(expr).unwrap();
        let libpcap = dead.compile(expr, true).unwrap();
        for (case, frame) in [("match", tcp_to(443)), ("miss", tcp_to(22))] {
            assert_eq!(ours.matches(&frame), case == "match");
            assert_eq!(libpcap.filter(&frame), case == "match");
            let insns = ours.instructions();
            g.bench_function(
                format!("{expr} ({insns} insns), {case}, cBPF interpreter"),
                |b| b.iter(|| ours.matches(black_box(&frame))),
            );
            g.bench_function(
                format!("{expr} ({insns} insns), {case}, pcap_offline_filter"),
                |b| b.iter(|| libpcap.filter(black_box(&frame))),
            );
        }
    }
    g.finish();
}

/// Removes the bench's packet queue when the bench ends.
struct BenchQueue(String);

impl Drop for BenchQueue {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(queue_path(&self.0));
    }
}

fn fast_path(c: &mut Criterion) {
    let mut g = c.benchmark_group("fast path, run_batch over 64 frames");
    let batch = frames(64);
    let n = batch.len();
    let spares = 2 * n;
    // Queues of 4096 slots per lane: room for every frame of a batch at both tap points.
    let open = |tag: &str, lanes: u32| {
        let name = format!("bench-fastpath.{tag}.{}", std::process::id());
        let layout = Layout {
            slots: 4096,
            slot_size: 128,
            lanes,
        };
        let producer = Arc::new(Producer::open(&name, layout).unwrap());
        let handle = Queue::open_existing(&name).unwrap();
        (BenchQueue(name), TapQueue::new(producer), handle)
    };
    let (_files, queues, mut handles): (Vec<_>, Vec<_>, Vec<_>) = [
        open("a", 1),
        open("b", 1),
        open("c", 1),
        open("d", 1),
        open("lanes", 4),
    ]
    .into_iter()
    .fold(
        (vec![], vec![], vec![]),
        |(mut f, mut q, mut h), (a, b, c)| {
            f.push(a);
            q.push(b);
            h.push(c);
            (f, q, h)
        },
    );
    // Queue a is emptied by a consumer before each batch, as before fan-out (so that the cases
    // of one queue compare with that build); the others a case feeds are reset.
    let mut consumer = Consumer::attach(handles[0].name()).unwrap();
    let mut taken = Batch::with_capacity(4096, 128);
    let feeding = |policy: &Policy, which: &[usize]| Policy {
        queues: which.iter().map(|&i| queues[i].clone()).collect(),
        ..policy.clone()
    };
    let listed: MacSet = macs(64).into_iter().step_by(8).collect();
    let faults = FaultConfig {
        enabled: true,
        drop_p: 1_000,
        flip_p: 5_000,
        dup_p: 5_000,
    };
    let mut tap = Policy::default();
    tap.tap_rx[0] = true;
    tap.tap_tx[1] = true;
    let mut fault = Policy::default();
    fault.fault[0] = faults;
    // Every fourth frame of the batch is TCP to port 443: what the filter takes.
    let mut mixed = batch.clone();
    for f in mixed.iter_mut().step_by(4) {
        *f = tcp_to(443);
    }
    let filtered = Policy {
        tap_filter: Some(TapFilter::compile("tcp port 443").unwrap()),
        ..feeding(&tap, &[0])
    };
    let cut = Policy {
        sample: Sample::new(10).unwrap(),
        snaplen: SnapLen::new(32).unwrap(),
        ..feeding(&tap, &[0])
    };
    let mut narrowed = feeding(&tap, &[0, 1]);
    narrowed.queues[1].filter = Some(TapFilter::compile("tcp port 443").unwrap());
    narrowed.queues[1].snaplen = SnapLen::new(32).unwrap();
    let cases = [
        ("no policy", Policy::default(), &batch),
        (
            "drop machash of 8",
            Policy {
                drop_hash: listed,
                ..Policy::default()
            },
            &batch,
        ),
        ("fault injection", fault, &batch),
        ("RX and TX tap", feeding(&tap, &[0]), &batch),
        (
            "RX and TX tap, filter tcp port 443 (1 in 4 matches)",
            filtered,
            &mixed,
        ),
        ("RX and TX tap, sample 10, snaplen 32", cut, &batch),
        ("RX and TX tap, 2 queues", feeding(&tap, &[0, 1]), &batch),
        (
            "RX and TX tap, 4 queues",
            feeding(&tap, &[0, 1, 2, 3]),
            &batch,
        ),
        (
            "RX and TX tap, 1 queue of 4 lanes",
            feeding(&tap, &[4]),
            &mixed,
        ),
        (
            "RX and TX tap, 2 queues, the second tcp port 443 and snaplen 32",
            narrowed,
            &mixed,
        ),
    ];
    let stats = QueueStats::new();
    let mut state = WorkerState::new(FaultRng::new(42));
    for (name, policy, frames) in &cases {
        let mut store = MemoryFrames::new(
            frames
                .iter()
                .cloned()
                .chain((0..spares).map(|_| Vec::new()))
                .collect(),
        );
        let mut rx: Vec<usize> = (0..n).collect();
        let (mut recycle, mut out) = (Vec::with_capacity(n), Vec::with_capacity(2 * n));
        let mut marked = Vec::with_capacity(2 * n);
        let mut spare_pool: Vec<usize> = Vec::with_capacity(spares);
        let others: Vec<usize> = (1..handles.len())
            .filter(|&i| policy.queues.iter().any(|q| q.name() == handles[i].name()))
            .collect();
        let cx = BatchContext {
            policy,
            port: 0,
            route: Route::Bridge {
                out: 1,
                out_down: false,
            },
            ts: 1,
            room: 2 * n,
        };
        // Each batch starts with the frame lists as the worker has them and empty packet queues
        // (a full one would make the taps' pushes cheap no-ops).
        g.bench_function(*name, |b| {
            b.iter_batched(
                || {
                    let _ = consumer.try_pop(&mut taken, 4096);
                    for &i in &others {
                        let _ = handles[i].reset();
                    }
                },
                |()| {
                    recycle.clear();
                    out.clear();
                    marked.clear();
                    spare_pool.clear();
                    spare_pool.extend(n..n + spares);
                    let lists = FrameLists {
                        recycle: &mut recycle,
                        out: &mut out,
                        spares: &mut spare_pool,
                        marked: &mut marked,
                    };
                    run_batch(&cx, &mut store, &mut rx, &stats, &mut state, lists)
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    vendor_lookup,
    machash,
    per_frame_stats,
    fault_decision,
    tap_filter,
    fast_path
);
criterion_main!(benches);
