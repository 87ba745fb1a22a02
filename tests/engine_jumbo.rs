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

/// What a packet socket on the far host reads of `frame`: the receiving stack takes the
/// outer VLAN tag out of the frame (into the packet's metadata) before any socket sees it.
fn as_read(frame: &[u8]) -> Vec<u8> {
    if frame[12..14] == [0x81, 0x00] {
        [&frame[..12], &frame[16..]].concat()
    } else {
        frame.to_vec()
    }
}

fn as_read_all(frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    sorted(frames.iter().map(|f| as_read(f)).collect())
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
        &as_read_all(&there),
        "h1 -> h2: every length arrives unchanged",
    );
    s1.send_all(&back);
    assert_frames(
        &sorted(s0.collect(back.len(), QUIET)),
        &as_read_all(&back),
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
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_collect"))
        .args(["-p", &want.to_string(), "-n", "-s", "-q", &eng.queue_name])
        .arg(&pcap)
        .output()
        .expect("run collect");
    assert!(
        out.status.success(),
        "collect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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
