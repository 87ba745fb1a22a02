//! Long frames (issue 14): every length from 60 bytes to the longest the MTU allows crosses
//! the bridge unchanged in both directions, native and generic XDP, and the RX and TX taps
//! hand each one whole to `collect` (needs root).

mod lab;

use ethertap::ixdp::{EngineConfig, XdpMode};
use lab::*;
use std::collections::HashMap;
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(1500);

/// The lengths of the sweep for an MTU: steps from 60 to the longest, and every length
/// around the buffer, page and 9000-byte boundaries that the MTU allows.
fn lengths(mtu: usize) -> Vec<usize> {
    // One VLAN tag on top of the MTU: the longest frame a packet socket sends and a veth
    // forwards (`is_skb_forwardable` allows the MTU, the header and one tag).
    let longest = mtu + 14 + 4;
    let mut l: Vec<usize> = (60..=longest).step_by(97).collect();
    for r in [1790..=1800, 2040..=2060, 4090..=4100, 8990..=9022] {
        l.extend(r);
    }
    l.push(longest);
    l.retain(|&n| n <= longest);
    l.sort_unstable();
    l.dedup();
    l
}

/// A numbered frame of `len` bytes from `src` to `dst`: VLAN-tagged when it is longer than
/// the MTU allows untagged (the kernel accepts the extra 4 bytes only for a tagged frame).
fn sized(dst: Mac, src: Mac, seq: u32, len: usize, mtu: usize) -> Vec<u8> {
    let tags = if len > mtu + 14 {
        vec![Tag::dot1q(7)]
    } else {
        vec![]
    };
    let mut f = frame(dst, src, &tags, seq, len);
    // Bytes that differ all along the frame, so a buffer out of place shows.
    for (i, b) in f.iter_mut().enumerate().skip(24) {
        *b = (i as u32 * 7 + seq) as u8;
    }
    f
}

/// Frames in the order of their bytes: tagged and untagged frames hash to different queues
/// of the veths, so two workers forward them and they interleave in any order.
fn sorted(mut frames: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    frames.sort();
    frames
}

/// Sets every interface of the lab to `mtu`.
fn set_mtu(lab: &Lab, mtu: usize) {
    let m = mtu.to_string();
    for (ns, i) in [
        (&lab.h1, "e0"),
        (&lab.br, "p0"),
        (&lab.br, "p1"),
        (&lab.h2, "e1"),
    ] {
        lab.ip(ns, &["link", "set", i, "mtu", &m]);
    }
}

fn start(lab: &Lab, test: &str, mode: XdpMode) -> LabEngine {
    let mut config = EngineConfig::new(vec!["p0".into(), "p1".into()]);
    config.queue_name = Some(format!("et-{test}-{}", std::process::id()));
    config.xdp_mode = mode;
    lab.start_engine_with(config)
}

/// Reads a pcap file: (caplen, origlen, data) of every record.
fn read_pcap(path: &std::path::Path) -> Vec<(u32, u32, Vec<u8>)> {
    let file = std::fs::File::open(path).expect("open the pcap");
    let mut r = pcap_file::pcap::PcapReader::new(file).expect("a pcap file");
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.expect("a pcap record");
        out.push((p.data.len() as u32, p.orig_len, p.data.into_owned()));
    }
    out
}

/// The sweep at `mtu` in `mode`: both directions, taps on, everything compared byte for byte
/// with what the far host captured and with what `collect` wrote.
fn sweep(test: &str, mtu: usize, mode: XdpMode) {
    let lab = Lab::bridge(test);
    set_mtu(&lab, mtu);
    let mut eng = start(&lab, test, mode);
    let wanted = match mode {
        XdpMode::Skb => "COPY SKB",
        _ => "COPY DRV",
    };
    let modes = eng.ok("if.stats");
    assert!(
        modes.contains(wanted),
        "the engine runs in {wanted} mode:\n{modes}\n{:?}",
        eng.engine.as_ref().map(|e| e.warnings().to_vec())
    );
    let warnings = eng.engine.as_ref().unwrap().warnings().to_vec();
    assert!(
        warnings.iter().all(|w| !w.contains("MTU")),
        "no warning about long frames at MTU {mtu}: {warnings:?}"
    );
    eng.ok("0 tap.rx.enable 1 tap.rx.enable 0 tap.tx.enable 1 tap.tx.enable");
    let s0 = lab.packet_socket(&lab.h1, "e0");
    let s1 = lab.packet_socket(&lab.h2, "e1");
    let lens = lengths(mtu);
    let there: Vec<Vec<u8>> = lens
        .iter()
        .enumerate()
        .map(|(i, &l)| sized(E1_MAC, E0_MAC, i as u32, l, mtu))
        .collect();
    let back: Vec<Vec<u8>> = lens
        .iter()
        .enumerate()
        .map(|(i, &l)| sized(E0_MAC, E1_MAC, 100_000 + i as u32, l, mtu))
        .collect();
    s0.send_all(&there);
    assert_frames(
        &sorted(s1.collect(there.len(), QUIET)),
        &sorted(there.clone()),
        "h1 -> h2: every length arrives unchanged",
    );
    s1.send_all(&back);
    assert_frames(
        &sorted(s0.collect(back.len(), QUIET)),
        &sorted(back.clone()),
        "h2 -> h1: every length arrives unchanged",
    );
    let n = lens.len() as u64;
    assert_eq!((eng.stat(0, "rx"), eng.stat(1, "tx")), (n, n));
    assert_eq!((eng.stat(1, "rx"), eng.stat(0, "tx")), (n, n));
    assert_eq!(eng.stat(0, "err"), 0);

    // Each frame four times in the taps: RX and TX, each direction.
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("jumbo.pcap");
    let want = 4 * lens.len();
    collect_packets(&eng.queue_name, want, &pcap);
    let records = read_pcap(&pcap);
    assert_eq!(records.len(), want);
    let mut seen: HashMap<&[u8], usize> = HashMap::new();
    for (cap, orig, data) in &records {
        assert_eq!(cap, orig, "caplen = origlen for a {orig}-byte frame");
        *seen.entry(data.as_slice()).or_default() += 1;
    }
    for f in there.iter().chain(&back) {
        assert_eq!(
            seen.get(f.as_slice()),
            Some(&2),
            "a {}-byte frame is in the capture whole, once at RX and once at TX",
            f.len()
        );
    }
}

#[test]
fn every_length_crosses_at_mtu_9000_in_native_mode() {
    sweep("jb9drv", 9000, XdpMode::Drv);
}

#[test]
fn every_length_crosses_at_mtu_9000_in_generic_mode() {
    sweep("jb9skb", 9000, XdpMode::Skb);
}

#[test]
fn every_length_crosses_at_mtu_1500_in_native_mode() {
    sweep("jb1drv", 1500, XdpMode::Drv);
}

#[test]
fn every_length_crosses_at_mtu_1500_in_generic_mode() {
    sweep("jb1skb", 1500, XdpMode::Skb);
}

/// A TCP transfer at MTU 9000 across the bridge: byte-exact, nothing dropped or cut.
fn tcp_at_9000(test: &str, mode: XdpMode) {
    let lab = Lab::bridge(test);
    set_mtu(&lab, 9000);
    let mut eng = start(&lab, test, mode);
    let before = lab.counter(&lab.h2, "e1", "rx_bytes");
    tcp_transfer(&lab, 20_000_000, 5202);
    let got = lab.counter(&lab.h2, "e1", "rx_bytes") - before;
    assert!(got > 20_000_000, "{got} bytes arrived");
    let mss = lab.sh(
        &lab.h1,
        "ss -tinH state all | grep -o 'mss:[0-9]*' | head -1 || true",
    );
    eprintln!("{test}: {got} bytes, {mss}");
    assert_eq!(eng.stat(0, "err"), 0, "no frame was too long");
    assert_eq!(eng.stat(1, "err"), 0);
}

#[test]
fn tcp_at_mtu_9000_is_byte_exact_in_native_mode() {
    tcp_at_9000("jbtcpd", XdpMode::Drv);
}

#[test]
fn tcp_at_mtu_9000_is_byte_exact_in_generic_mode() {
    tcp_at_9000("jbtcps", XdpMode::Skb);
}

/// Whether GRO is on for `ifname` in the bridge namespace, as ethtool shows it.
fn gro_on(lab: &Lab, ifname: &str) -> bool {
    lab.sh(&lab.br, &format!("ethtool -k {ifname}"))
        .lines()
        .any(|l| l.trim() == "generic-receive-offload: on")
}

#[test]
fn gro_is_off_while_the_engine_runs_and_restored_on_stop() {
    let lab = Lab::bridge("jbgro");
    set_mtu(&lab, 9000);
    lab.sh(&lab.br, "ethtool -K p0 gro on");
    assert!(gro_on(&lab, "p0") && !gro_on(&lab, "p1"));
    let mut eng = start(&lab, "jbgro", XdpMode::Skb);
    assert!(
        !gro_on(&lab, "p0"),
        "GRO is off on p0 while the engine runs"
    );
    let warnings = eng.engine.as_ref().unwrap().warnings().to_vec();
    assert!(
        warnings.iter().any(|w| w.starts_with("p0: GRO turned off")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().all(|w| !w.starts_with("p1:")),
        "{warnings:?}"
    );
    let sent = lab.counter(&lab.h1, "e0", "tx_packets");
    tcp_transfer(&lab, 5_000_000, 5204);
    let sent = lab.counter(&lab.h1, "e0", "tx_packets") - sent;
    assert_eq!(
        eng.stat(0, "rx"),
        sent,
        "one frame at the hook for each on the wire"
    );
    eng.stop();
    assert!(gro_on(&lab, "p0"), "GRO is back on p0");
    assert!(!gro_on(&lab, "p1"), "and p1 is as it was");
}

/// Jumbo frames from h1 (untagged, one queue) of lengths across every buffer boundary.
fn jumbo_frames(n: u32) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| sized(E1_MAC, E0_MAC, i, 1500 + (i as usize * 379) % 7515, 9000))
        .collect()
}

fn fault_lab(test: &str, mode: XdpMode) -> (Lab, LabEngine) {
    let lab = Lab::bridge(test);
    set_mtu(&lab, 9000);
    let eng = start(&lab, test, mode);
    (lab, eng)
}

/// Fault injection at 100 % on jumbo frames, native and generic: a flip changes one bit in
/// any buffer, a duplicate is the whole frame twice, a drop takes the whole frame.
fn faults_on_jumbo(test: &str, mode: XdpMode) {
    let (lab, mut eng) = fault_lab(test, mode);
    let s0 = lab.packet_socket(&lab.h1, "e0");
    let s1 = lab.packet_socket(&lab.h2, "e1");
    let frames = jumbo_frames(200);

    eng.ok("0 fault.enable 100000 0 fault.flip.probability");
    s0.send_all(&frames);
    let got = s1.collect(frames.len(), QUIET);
    assert_eq!(got.len(), frames.len());
    let mut past_first_buffer = 0;
    for (sent, recv) in frames.iter().zip(&got) {
        let flipped = one_flipped_bit(sent, recv);
        assert!(flipped >= 14);
        past_first_buffer += usize::from(flipped >= 1792);
    }
    assert!(
        past_first_buffer > 100,
        "flips land in later buffers: {past_first_buffer}"
    );
    assert_eq!(eng.stat(0, "flipped by FI"), 200);

    eng.ok("0 0 fault.flip.probability 100000 0 fault.dup.probability");
    s0.send_all(&frames);
    let got = s1.collect(2 * frames.len(), QUIET);
    let twice: Vec<Vec<u8>> = frames.iter().flat_map(|f| [f.clone(), f.clone()]).collect();
    assert_frames(
        &got,
        &twice,
        "each jumbo frame arrives twice, whole, in order",
    );
    assert_eq!(eng.stat(0, "duplicated by FI"), 200);
    assert_eq!(eng.stat(1, "tx"), 600);

    eng.ok("0 0 fault.dup.probability 100000 0 fault.drop.probability");
    s0.send_all(&frames);
    assert_eq!(
        s1.collect(frames.len(), QUIET).len(),
        0,
        "every jumbo frame dropped"
    );
    assert_eq!(eng.stat(0, "dropped by FI"), 200);
    eng.ok("0 fault.disable");
    s0.send_all(&frames);
    assert_frames(
        &s1.collect(frames.len(), QUIET),
        &frames,
        "and all pass again",
    );
    assert_eq!(eng.stat(0, "err"), 0);
}

#[test]
fn fault_injection_on_jumbo_frames_in_native_mode() {
    faults_on_jumbo("jbfid", XdpMode::Drv);
}

#[test]
fn fault_injection_on_jumbo_frames_in_generic_mode() {
    faults_on_jumbo("jbfis", XdpMode::Skb);
}

/// QinQ frames of 9019–9022 bytes (MTU 9000 with two tags). A veth lets a frame in only up to
/// its MTU + 14 + one tag, so the lab's MTU is 9004 on every veth here; the engine carries the
/// frames, native and generic, and the taps hold them whole.
#[test]
fn qinq_frames_up_to_9022_bytes_cross_whole() {
    for (test, mode) in [("jbqqd", XdpMode::Drv), ("jbqqs", XdpMode::Skb)] {
        let lab = Lab::bridge(test);
        set_mtu(&lab, 9004);
        let mut eng = start(&lab, test, mode);
        eng.ok("0 tap.rx.enable 1 tap.tx.enable");
        let tags = [Tag::dot1q(100), Tag::dot1q(7)];
        let frames: Vec<Vec<u8>> = (9019..=9022)
            .map(|len| frame(E1_MAC, E0_MAC, &tags, len as u32, len))
            .collect();
        let (s0, s1) = (
            lab.packet_socket(&lab.h1, "e0"),
            lab.packet_socket(&lab.h2, "e1"),
        );
        s0.send_all(&frames);
        let got = s1.collect(frames.len(), QUIET);
        assert_frames(
            &sorted(got),
            &sorted(frames.clone()),
            "QinQ frames of 9019-9022 bytes arrive unchanged",
        );
        let mut consumer = ethertap::pqueue::Consumer::attach(&eng.queue_name).unwrap();
        let mut batch = ethertap::pqueue::Batch::new();
        let mut tapped = Vec::new();
        for _ in 0..50 {
            consumer.try_pop(&mut batch, 64).unwrap();
            tapped.extend(batch.iter().map(|t| (t.data.to_vec(), t.orig_len)));
            if tapped.len() >= 2 * frames.len() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let want: Vec<(Vec<u8>, u32)> = frames
            .iter()
            .flat_map(|f| [(f.clone(), f.len() as u32), (f.clone(), f.len() as u32)])
            .collect();
        tapped.sort();
        assert_eq!(tapped, want, "{test}: RX and TX tap hold each frame whole");
    }
}
