//! Statistics and policy under the conditions of the engine: frames built by a real packet
//! library, a worker thread writing while the control thread reads, resets and swaps policies.

use etherparse::{LinkExtHeader, LinkHeader, PacketBuilder, PacketHeaders};
use ethertap::ixdp::policy::PolicyCell;
use ethertap::ixdp::stats::{MacCount, QueueStats, StatsBoard};
use ethertap::wire::{ethertype, Mac};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;

const A: Mac = Mac([0x00, 0x1b, 0x21, 0x00, 0x00, 0x0a]);
const B: Mac = Mac([0x02, 0x00, 0x00, 0x00, 0x00, 0x0b]);
const DST: Mac = Mac([0x00, 0x50, 0x56, 0x00, 0x00, 0x01]);

fn udp(src: Mac, vlans: &[u16]) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(src.0, DST.0);
    let mut f = Vec::new();
    let payload = [0x5a; 32];
    match vlans {
        [] => eth
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1000, 2000)
            .write(&mut f, &payload),
        [v] => eth
            .single_vlan((*v).try_into().unwrap())
            .ipv6([1; 16], [2; 16], 64)
            .udp(1000, 2000)
            .write(&mut f, &payload),
        [o, i] => eth
            .double_vlan((*o).try_into().unwrap(), (*i).try_into().unwrap())
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1000, 2000)
            .write(&mut f, &payload),
        _ => unreachable!(),
    }
    .unwrap();
    f
}

/// The Ethertype at every level of a frame as etherparse reads it.
fn levels(frame: &[u8]) -> Vec<u16> {
    let h = PacketHeaders::from_ethernet_slice(frame).unwrap();
    let Some(LinkHeader::Ethernet2(eth)) = h.link else {
        panic!("not Ethernet II")
    };
    let mut types = vec![eth.ether_type.0];
    for ext in &h.link_exts {
        if let LinkExtHeader::Vlan(v) = ext {
            types.push(v.ether_type.0);
        }
    }
    types
}

#[test]
fn ethertype_levels_agree_with_etherparse() {
    let q = QueueStats::new();
    let frames = [
        udp(A, &[]),
        udp(B, &[10]),
        udp(A, &[100, 200]),
        udp(B, &[100, 200]),
    ];
    let mut expected = std::collections::BTreeMap::<(u8, u16), (u64, Mac)>::new();
    for f in &frames {
        q.on_rx(f);
        let src = Mac::try_from(&f[6..12]).unwrap();
        for (level, t) in levels(f).into_iter().enumerate() {
            let e = expected.entry((level as u8, t)).or_insert((0, src));
            e.0 += 1;
            e.1 = src;
        }
    }
    let got: Vec<((u8, u16), (u64, Mac))> = q
        .etypes()
        .types
        .iter()
        .map(|t| ((t.level, t.ethertype), (t.frames, t.last_src)))
        .collect();
    assert_eq!(got, expected.into_iter().collect::<Vec<_>>());
    // The double-tagged frames really use a provider (0x88a8) and a customer (0x8100) tag.
    assert!(got.iter().any(|((l, t), _)| (*l, *t) == (0, 0x88a8)));
    assert!(got.iter().any(|((l, t), _)| (*l, *t) == (1, 0x8100)));
    assert!(got
        .iter()
        .any(|((l, t), (n, _))| (*l, *t, *n) == (2, 0x0800, 2)));
    assert_eq!(
        q.macs().macs,
        vec![
            MacCount { mac: A, frames: 2 },
            MacCount { mac: B, frames: 2 }
        ]
    );
}

#[test]
fn reset_while_a_worker_keeps_counting() {
    let q = Arc::new(QueueStats::new());
    let sent = Arc::new(AtomicU64::new(0));
    let phase_a_done = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (q, sent, phase_a_done, stop) =
            (q.clone(), sent.clone(), phase_a_done.clone(), stop.clone());
        thread::spawn(move || {
            let (fa, fb) = (udp(A, &[]), udp(B, &[7]));
            for _ in 0..1000 {
                q.on_rx(&fa);
                q.add_tx(1);
                sent.fetch_add(1, SeqCst);
            }
            phase_a_done.store(true, SeqCst);
            while !stop.load(SeqCst) {
                q.on_rx(&fb);
                q.add_tx(1);
                sent.fetch_add(1, SeqCst);
            }
        })
    };
    let wait_for = |n: u64| {
        while sent.load(SeqCst) < n {
            thread::yield_now();
        }
    };
    while !phase_a_done.load(SeqCst) {
        thread::yield_now();
    }
    wait_for(3000);
    // A reader racing the writer sees counts that only grow.
    let mut last = 0;
    for _ in 0..200 {
        let rx = q.counters().rx;
        assert!(rx >= last);
        last = rx;
        let _ = q.macs();
        let _ = q.etypes();
    }
    let before = sent.load(SeqCst);
    q.reset();
    let after = sent.load(SeqCst);
    wait_for(after + 3000);
    stop.store(true, SeqCst);
    worker.join().unwrap();
    let total = sent.load(SeqCst);

    let c = q.counters();
    let bounds = (total - after).saturating_sub(1)..=total - before;
    assert!(bounds.contains(&c.rx), "rx {} outside {bounds:?}", c.rx);
    assert!(bounds.contains(&c.tx), "tx {} outside {bounds:?}", c.tx);
    let macs = q.macs().macs;
    assert_eq!(
        macs.len(),
        1,
        "A's frames were all before the reset: {macs:?}"
    );
    assert_eq!(macs[0].mac, B);
    // The worker clears its tables at its first frame after the request, one frame late at most.
    let loose = (total - after).saturating_sub(2)..=total - before;
    assert!(
        loose.contains(&macs[0].frames),
        "{} outside {loose:?}",
        macs[0].frames
    );
    let types = q.etypes().types;
    assert_eq!(types.len(), 2, "{types:?}");
    assert!(types
        .iter()
        .all(|t| t.last_src == B && loose.contains(&t.frames)));
}

#[test]
fn board_reset_reaches_every_queue() {
    let board = StatsBoard::new(2, 3);
    for i in 0..2 {
        for q in 0..3 {
            board.queue(i, q).on_rx(&udp(A, &[]));
            board.queue(i, q).add_drop(2);
        }
    }
    assert_eq!((board.totals(1).rx, board.totals(1).drop), (3, 6));
    assert_eq!(board.macs(1).macs, vec![MacCount { mac: A, frames: 3 }]);
    board.reset();
    for i in 0..2 {
        assert_eq!(board.totals(i), Default::default());
        assert!(board.macs(i).macs.is_empty() && board.etypes(i).types.is_empty());
    }
}

#[test]
fn a_worker_sees_a_new_policy_at_its_next_batch() {
    let cell = Arc::new(PolicyCell::default());
    cell.update(|p| p.tap_hash = p.tap_hash.inserted(B));
    let tapped = Arc::new(AtomicU64::new(0));
    let batches = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (cell, tapped, batches, stop) =
            (cell.clone(), tapped.clone(), batches.clone(), stop.clone());
        thread::spawn(move || {
            let f = udp(A, &[]);
            while !stop.load(SeqCst) {
                let policy = cell.load();
                for _ in 0..64 {
                    if policy.tap_selects(&f) {
                        tapped.fetch_add(1, SeqCst);
                    }
                }
                batches.fetch_add(1, SeqCst);
            }
        })
    };
    let wait_batches = |n: u64| {
        let start = batches.load(SeqCst);
        while batches.load(SeqCst) < start + n {
            thread::yield_now();
        }
    };
    wait_batches(10);
    assert_eq!(
        tapped.load(SeqCst),
        0,
        "A is neither source nor destination of a listed MAC"
    );
    cell.update(|p| p.tap_hash = p.tap_hash.inserted(A));
    wait_batches(2);
    stop.store(true, SeqCst);
    worker.join().unwrap();
    assert!(tapped.load(SeqCst) >= 64, "the batch after the swap taps A");
}

#[test]
fn random_frames_never_panic_and_the_tables_add_up() {
    use ethertap::ixdp::fault::{flip_random_bit, FaultRng};
    use ethertap::ixdp::policy::Policy;
    let mut rng = FaultRng::new(0x5eed);
    let q = QueueStats::new();
    let policy = Policy {
        tap_hash: [A, B].into_iter().collect(),
        drop_hash: [B].into_iter().collect(),
        fault_hash: [A].into_iter().collect(),
        ..Policy::default()
    };
    let (mut with_src, mut with_type) = (0u64, 0u64);
    let n = 20_000u64;
    for _ in 0..n {
        let len = rng.below(80) as usize;
        let mut f: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        // Make tags, listed MACs and short frames common enough to matter.
        if len >= 12 && rng.chance(50_000) {
            f[6..12].copy_from_slice(if rng.chance(50_000) { &A.0 } else { &B.0 });
        }
        let mut at = 12;
        while at + 2 <= len && rng.chance(60_000) {
            let tag: u16 = if rng.chance(50_000) { 0x8100 } else { 0x88a8 };
            f[at..at + 2].copy_from_slice(&tag.to_be_bytes());
            at += 4;
        }
        q.on_rx(&f);
        let _ = (
            policy.tap_selects(&f),
            policy.drop_selects(&f),
            policy.fault_selects(0, &f),
        );
        assert_eq!(flip_random_bit(&mut f, &mut rng), len > 14);
        with_src += u64::from(len >= 12);
        with_type += u64::from(len >= 14);
    }
    assert_eq!(q.counters().rx, n);
    let macs = q.macs();
    assert_eq!(
        macs.macs.iter().map(|m| m.frames).sum::<u64>() + macs.overflow,
        with_src
    );
    let types = q.etypes();
    let level0: u64 = types
        .types
        .iter()
        .filter(|t| t.level == 0)
        .map(|t| t.frames)
        .sum();
    assert!(level0 <= with_type && level0 + types.overflow >= with_type);
    // Every frame counted at level n > 0 was counted at level n - 1 as a tag.
    for level in 1..=4u8 {
        let here: u64 = types
            .types
            .iter()
            .filter(|t| t.level == level)
            .map(|t| t.frames)
            .sum();
        let tags_above: u64 = types
            .types
            .iter()
            .filter(|t| t.level == level - 1 && ethertype::is_vlan_tag(t.ethertype))
            .map(|t| t.frames)
            .sum();
        assert!(here <= tags_above, "level {level}: {here} > {tags_above}");
    }
}
