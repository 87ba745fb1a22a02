//! The kernel path (docs/kernel-path.md): in bridge mode, frames nothing in user space wants
//! are counted by the XDP program and forwarded by the TC program. These lab tests (root) show
//! that such frames cross unchanged, that every statistic reads exactly as when the workers
//! forward them, that switching between the two paths under traffic loses, duplicates and
//! misses nothing, and that the kernel tap records every tapped frame of the kernel path.

mod lab;

use lab::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const OTHER: Mac = Mac([0x00, 0x1b, 0x21, 0x0a, 0x0b, 0x0c]);

/// Frames from h1 to h2: two sources, untagged, 802.1Q, QinQ and an 802.3 length.
fn mixed_frames() -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    for i in 0..300u32 {
        let src = if i % 3 == 0 { OTHER } else { E0_MAC };
        let tags: &[Tag] = match i % 4 {
            0 => &[],
            1 => &[Tag::dot1q(10)],
            2 => &[Tag::dot1ad(100), Tag::dot1q(20)],
            _ => &[Tag::dot1ad(1), Tag::dot1q(2), Tag::dot1q(3)],
        };
        frames.push(frame(E1_MAC, src, tags, i, 64 + (i as usize % 200)));
    }
    frames
}

/// The engine configuration of a lab bridge p0–p1, with a packet queue named after `test`.
fn bridge_config(test: &str) -> ethertap::ixdp::EngineConfig {
    let mut config = ethertap::ixdp::EngineConfig::new(vec!["p0".into(), "p1".into()]);
    config.queue_name = Some(format!("et-{test}-{}", std::process::id()));
    config
}

/// A lab bridge whose four interfaces have an MTU of 9000.
fn jumbo_lab(test: &str) -> Lab {
    let lab = Lab::bridge(test);
    for (ns, i) in [
        (&lab.h1, "e0"),
        (&lab.br, "p0"),
        (&lab.br, "p1"),
        (&lab.h2, "e1"),
    ] {
        lab.ip(ns, &["link", "set", i, "mtu", "9000"]);
    }
    lab
}

/// `got` holds exactly the frames of `sent`, unchanged. Not necessarily in the order sent: the
/// lab's packet socket spreads frames over the two queues of its veth by a hash of their
/// contents, even frames of one flow, and a bridge keeps the order of each queue only.
fn assert_same_frames(got: &[Vec<u8>], sent: &[Vec<u8>]) {
    let sorted = |v: &[Vec<u8>]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    assert_frames(
        &sorted(got),
        &sorted(sent),
        "every frame arrives once, unchanged",
    );
}

/// Frames of the kernel path on port 0 so far (the XDP program's counter, never reset).
fn kernel_frames(eng: &mut LabEngine) -> u64 {
    eng.qstat(0, 0, "xdp kernel path")
}

/// Waits until port 0 forwards in the kernel (when `kernel`; `LabEngine::wait_for_kernel_path`)
/// and then empties the statistics. Returns the kernel-path frames so far.
fn settle(lab: &Lab, eng: &mut LabEngine, kernel: bool) -> u64 {
    let rx = lab.packet_socket(&lab.h2, "e1");
    let probe = frame(E1_MAC, Mac([2, 0, 0, 0, 0, 0x99]), &[], 999_999, 60);
    if kernel {
        eng.wait_for_kernel_path(lab, &probe);
    } else {
        lab.packet_socket(&lab.h1, "e0").send(&probe);
    }
    let _ = rx.collect(usize::MAX, Duration::from_millis(200));
    eng.ok("if.stats.reset");
    kernel_frames(eng)
}

/// What the statistics words print after `frames` crossed an engine started with
/// `kernel_path`, and how many frames the kernel path forwarded.
fn statistics_after(
    kernel_path: bool,
    mode: ethertap::ixdp::XdpMode,
    frames: &[Vec<u8>],
) -> (Vec<String>, u64) {
    let test = match (kernel_path, mode) {
        (false, _) => "kpoff",
        (true, ethertap::ixdp::XdpMode::Skb) => "kpskb",
        (true, _) => "kpon",
    };
    let lab = Lab::bridge(test);
    let mut config = bridge_config(test);
    config.kernel_path = kernel_path;
    config.xdp_mode = mode;
    let mut eng = lab.start_engine_with(config);
    let before = settle(&lab, &mut eng, kernel_path);
    let tx = lab.packet_socket(&lab.h1, "e0");
    let rx = lab.packet_socket(&lab.h2, "e1");
    tx.send_all(frames);
    let got = rx.collect(frames.len(), QUIET);
    assert_same_frames(&got, frames);
    let kernel = kernel_frames(&mut eng) - before;
    let per_queue: u64 = (0..2).map(|q| eng.qstat(0, q, "rx")).sum();
    assert_eq!(per_queue, frames.len() as u64, "if.qstats rx adds up");
    let per_queue_tx: u64 = (0..2).map(|q| eng.qstat(1, q, "tx")).sum();
    assert_eq!(per_queue_tx, frames.len() as u64, "if.qstats tx adds up");
    let words = [
        "if.stats",
        "0 if.mac.show",
        "0 if.etype.show",
        "if.stats.json",
    ];
    let mut out: Vec<String> = words.iter().map(|w| eng.ok(w)).collect();
    // The last source of an Ethertype row depends on which queue's frame came last.
    out[2] = out[2]
        .lines()
        .map(|l| match l.rsplit_once("  ") {
            Some((row, _last_source)) if l.contains("0x") => row.trim_end(),
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    (out, kernel)
}

#[test]
fn untapped_frames_take_the_kernel_path_and_read_exactly_as_through_the_workers() {
    use ethertap::ixdp::XdpMode;
    let frames = mixed_frames();
    let (workers, forwarded_by_workers) = statistics_after(false, XdpMode::Drv, &frames);
    assert_eq!(forwarded_by_workers, 0, "--no-kernel-path keeps it off");
    for mode in [XdpMode::Drv, XdpMode::Skb] {
        let (kernel, forwarded_in_kernel) = statistics_after(true, mode, &frames);
        assert_eq!(
            forwarded_in_kernel,
            frames.len() as u64,
            "{mode:?}: every frame took the kernel path"
        );
        for (k, w) in kernel.iter().zip(&workers) {
            // The mode is the one thing that differs.
            let k = k
                .replace("COPY SKB", "COPY DRV")
                .replace("\"xdp_mode\":\"skb\"", "\"xdp_mode\":\"drv\"");
            assert_eq!(
                &k, w,
                "{mode:?}: the statistics read the same on both paths"
            );
        }
        assert!(
            kernel[0].contains("rx                    300"),
            "{}",
            kernel[0]
        );
        assert!(kernel[1].contains("200"), "E0's frames: {}", kernel[1]);
        assert!(kernel[2].contains("8100"), "tags are walked: {}", kernel[2]);
    }
}

/// A sender of numbered frames from h1 until stopped; returns how many it sent.
fn send_until(lab: &Lab, stop: Arc<AtomicBool>, first: u32) -> std::thread::JoinHandle<u32> {
    let tx = lab.packet_socket(&lab.h1, "e0");
    std::thread::spawn(move || {
        let mut seq = first;
        while !stop.load(Ordering::Relaxed) {
            tx.send(&frame(E1_MAC, E0_MAC, &[], seq, 80));
            seq += 1;
            std::thread::sleep(Duration::from_micros(100));
        }
        seq - first
    })
}

#[test]
fn switching_paths_under_traffic_loses_duplicates_and_misses_nothing() {
    let lab = Lab::bridge("kpsw");
    let mut eng = lab.start_engine("kpsw");
    let kernel_before = settle(&lab, &mut eng, true);
    let redirected_before = eng.qstat(0, 0, "xdp redirected");
    let rx = lab.packet_socket(&lab.h2, "e1");
    let stop = Arc::new(AtomicBool::new(false));
    let sender = send_until(&lab, stop.clone(), 0);
    let pause = || std::thread::sleep(Duration::from_millis(150));
    // Each change turns port 0's kernel path off, then the next one on again.
    let switches = [
        ("0 tap.rx.enable", "0 tap.rx.disable"),
        ("1 tap.tx.enable", "1 tap.tx.disable"),
        ("0 fault.enable", "0 fault.disable"),
        (
            &format!("{} drop.hash.insert", mac_text(OTHER)) as &str,
            &format!("{} drop.hash.delete", mac_text(OTHER)) as &str,
        ),
    ];
    for _ in 0..3 {
        for (on, off) in &switches {
            pause();
            eng.ok(on);
            pause();
            eng.ok(off);
        }
    }
    pause();
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().unwrap() as usize;
    let got = rx.collect(sent, QUIET);
    let seqs = seqs(&got);
    assert_eq!(
        seqs,
        (0..sent as u32).collect::<Vec<_>>(),
        "each of the {sent} frames arrived exactly once"
    );
    assert_eq!(eng.stat(0, "rx"), sent as u64);
    assert_eq!(eng.stat(1, "tx"), sent as u64);
    let kernel = kernel_frames(&mut eng) - kernel_before;
    let redirected = eng.qstat(0, 0, "xdp redirected") - redirected_before;
    assert!(
        kernel > 0 && redirected > 0 && kernel + redirected == sent as u64,
        "both paths carried frames: kernel {kernel}, workers {redirected}, sent {sent}"
    );
}

/// Frames port 0's kernel path copied into the kernel tap's ring so far.
fn kernel_tapped(eng: &mut LabEngine) -> u64 {
    eng.qstat(0, 0, "xdp kernel tap")
}

#[test]
fn a_tap_turned_on_gets_every_frame_from_then_on_through_the_workers() {
    tap_turned_on("kptap", false, ethertap::ixdp::XdpMode::Drv);
}

#[test]
fn a_tap_turned_on_gets_every_frame_from_then_on_through_the_kernel_tap() {
    tap_turned_on("kptkd", true, ethertap::ixdp::XdpMode::Drv);
}

#[test]
fn the_kernel_tap_works_in_generic_mode() {
    tap_turned_on("kptks", true, ethertap::ixdp::XdpMode::Skb);
}

/// Three rounds of 500 untapped then 500 tapped frames (RX tap on 0, TX tap on 1): every
/// tapped frame is in the queue once per tap point, unchanged and stamped with the time it was
/// seen; with `kernel_tap`, every frame takes the kernel path, else the tapped ones go through
/// the workers.
fn tap_turned_on(test: &str, kernel_tap: bool, mode: ethertap::ixdp::XdpMode) {
    let lab = Lab::bridge(test);
    let mut config = bridge_config(test);
    config.kernel_tap = kernel_tap;
    config.xdp_mode = mode;
    let mut eng = lab.start_engine_with(config);
    let before = settle(&lab, &mut eng, true);
    let tapped_before = kernel_tapped(&mut eng);
    let tx = lab.packet_socket(&lab.h1, "e0");
    let rx = lab.packet_socket(&lab.h2, "e1");
    let batch = |from: u32| -> Vec<Vec<u8>> {
        (from..from + 500)
            .map(|i| frame(E1_MAC, E0_MAC, &[], i, 90))
            .collect()
    };
    for round in 0..3u32 {
        let untapped = batch(round * 1000);
        let k0 = kernel_frames(&mut eng);
        tx.send_all(&untapped);
        assert_eq!(rx.collect(untapped.len(), QUIET).len(), untapped.len());
        assert_eq!(
            kernel_frames(&mut eng) - k0,
            500,
            "round {round}: kernel path"
        );
        eng.ok("0 tap.rx.enable 1 tap.tx.enable");
        let tapped = batch(round * 1000 + 500);
        let sent_at = ethertap::pqueue::now_ns();
        tx.send_all(&tapped);
        assert_eq!(rx.collect(tapped.len(), QUIET).len(), tapped.len());
        let queue = drain_queue(&eng.queue_name, 2 * tapped.len());
        let now = ethertap::pqueue::now_ns();
        for (dir, ifindex) in [
            (ethertap::pqueue::Direction::Rx, 0),
            (ethertap::pqueue::Direction::Tx, 1),
        ] {
            let copies: Vec<&Tapped> = queue.iter().filter(|t| t.dir == dir).collect();
            let data: Vec<Vec<u8>> = copies.iter().map(|t| t.data.clone()).collect();
            assert_frames(&data, &tapped, &format!("round {round}: {dir:?} tap"));
            assert!(
                copies.iter().all(|t| t.ifindex == ifindex),
                "round {round}: {dir:?} copies name port {ifindex}"
            );
            assert!(
                copies
                    .iter()
                    .all(|t| t.ts_ns >= sent_at.saturating_sub(1_000_000) && t.ts_ns <= now),
                "round {round}: {dir:?} copies are stamped between the send and the drain"
            );
        }
        eng.ok("0 tap.rx.disable 1 tap.tx.disable");
    }
    assert_eq!(eng.stat(0, "rx"), 3000);
    assert_eq!(eng.stat(1, "tx"), 3000);
    let (kernel, tapped_in_kernel) = if kernel_tap { (3000, 1500) } else { (1500, 0) };
    assert_eq!(
        kernel_frames(&mut eng) - before,
        kernel,
        "frames of the kernel path"
    );
    assert_eq!(
        kernel_tapped(&mut eng) - tapped_before,
        tapped_in_kernel,
        "frames the kernel tap copied"
    );
    assert_eq!(eng.qstat(0, 0, "xdp kernel tap full"), 0);
}

#[test]
fn the_kernel_tap_reads_both_ports_at_once() {
    let lab = Lab::bridge("kptbo");
    let mut eng = lab.start_engine_with(bridge_config("kptbo"));
    settle(&lab, &mut eng, true);
    eng.ok("0 tap.rx.enable 1 tap.rx.enable");
    let one_way = |src, dst, from: u32| -> Vec<Vec<u8>> {
        (from..from + 2000)
            .map(|i| frame(dst, src, &[], i, 70))
            .collect()
    };
    let (east, west) = (one_way(E0_MAC, E1_MAC, 0), one_way(E1_MAC, E0_MAC, 10_000));
    let (h1, h2) = (
        lab.packet_socket(&lab.h1, "e0"),
        lab.packet_socket(&lab.h2, "e1"),
    );
    std::thread::scope(|s| {
        s.spawn(|| h1.send_all(&east));
        s.spawn(|| h2.send_all(&west));
    });
    let queue = drain_queue(&eng.queue_name, east.len() + west.len());
    for (port, sent) in [(0, &east), (1, &west)] {
        let copies: Vec<Vec<u8>> = queue
            .iter()
            .filter(|t| t.ifindex == port)
            .map(|t| t.data.clone())
            .collect();
        assert_same_frames(&copies, sent);
    }
    let tapped: u64 = (0..2).map(|i| eng.qstat(i, 0, "xdp kernel tap")).sum();
    assert_eq!(tapped, 4000, "both ports' frames took the kernel tap");
}

#[test]
fn the_kernel_tap_records_long_frames_whole() {
    let lab = jumbo_lab("kptjm");
    let mut config = bridge_config("kptjm");
    // Slots that hold a whole 9014-byte frame.
    config.layout.slot_size = 16384;
    let mut eng = lab.start_engine_with(config);
    let before = settle(&lab, &mut eng, true);
    eng.ok("0 tap.rx.enable");
    let frames = long_frames();
    send_and_tap(&lab, &eng, &frames);
    assert_eq!(kernel_frames(&mut eng) - before, frames.len() as u64);
    assert_eq!(kernel_tapped(&mut eng), frames.len() as u64);
}

#[test]
fn a_full_kernel_tap_ring_hands_frames_to_the_workers_and_loses_none() {
    let lab = Lab::bridge("kptfull");
    let mut config = bridge_config("kptfull");
    // Room for three records of these frames: a burst overflows it at once.
    config.kernel_tap_ring = 4096;
    let mut eng = lab.start_engine_with(config);
    settle(&lab, &mut eng, true);
    let (tapped0, full0) = (
        kernel_tapped(&mut eng),
        eng.qstat(0, 0, "xdp kernel tap full"),
    );
    eng.ok("0 tap.rx.enable");
    let frames: Vec<Vec<u8>> = (0..1000)
        .map(|i| frame(E1_MAC, E0_MAC, &[], i, 1000))
        .collect();
    send_and_tap(&lab, &eng, &frames);
    let in_ring = kernel_tapped(&mut eng) - tapped0;
    let to_workers = eng.qstat(0, 0, "xdp kernel tap full") - full0;
    assert_eq!(in_ring + to_workers, 1000, "each frame took one of the two");
    assert!(
        in_ring > 0 && to_workers > 0,
        "both carried frames: ring {in_ring}, workers {to_workers}"
    );
    assert_eq!(eng.stat(0, "rx"), 1000);
    assert_eq!(eng.stat(1, "tx"), 1000);
}

/// Sends `frames` from h1 and checks that each crossed once, unchanged, and is in the packet
/// queue once (one tap point on).
fn send_and_tap(lab: &Lab, eng: &LabEngine, frames: &[Vec<u8>]) {
    let tx = lab.packet_socket(&lab.h1, "e0");
    let rx = lab.packet_socket(&lab.h2, "e1");
    tx.send_all(frames);
    assert_same_frames(&rx.collect(frames.len(), QUIET), frames);
    let copies: Vec<Vec<u8>> = drain_queue(&eng.queue_name, frames.len())
        .into_iter()
        .map(|t| t.data)
        .collect();
    assert_same_frames(&copies, frames);
}

/// Frames of every length class up to the longest untagged frame at MTU 9000, with bytes that
/// differ all along the frame, so a piece out of place shows.
fn long_frames() -> Vec<Vec<u8>> {
    [60, 1514, 1515, 3000, 4097, 8000, 9013, 9014]
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            let mut f = frame(E1_MAC, E0_MAC, &[], i as u32, len);
            for (at, b) in f.iter_mut().enumerate().skip(24) {
                *b = (at * 7 + i) as u8;
            }
            f
        })
        .collect()
}

#[test]
fn a_reset_zeroes_both_paths() {
    let lab = Lab::bridge("kpres");
    let mut eng = lab.start_engine("kpres");
    settle(&lab, &mut eng, true);
    let tx = lab.packet_socket(&lab.h1, "e0");
    let rx = lab.packet_socket(&lab.h2, "e1");
    let frames: Vec<Vec<u8>> = (0..200).map(|i| frame(E1_MAC, OTHER, &[], i, 70)).collect();
    tx.send_all(&frames);
    eng.ok("0 tap.rx.enable");
    tx.send_all(&frames);
    assert_eq!(rx.collect(400, QUIET).len(), 400);
    assert_eq!(eng.stat(0, "rx"), 400);
    eng.ok("if.stats.reset");
    assert_eq!(eng.stat(0, "rx"), 0);
    assert_eq!(eng.stat(1, "tx"), 0);
    let macs = eng.ok("0 if.mac.show");
    assert!(!macs.contains(&mac_text(OTHER)), "tables emptied: {macs}");
    eng.ok("0 tap.rx.disable");
    tx.send_all(&frames[..50]);
    assert_eq!(rx.collect(50, QUIET).len(), 50);
    assert_eq!(eng.stat(0, "rx"), 50, "counting goes on from zero");
    assert_eq!(eng.stat(1, "tx"), 50);
    let macs = eng.ok("0 if.mac.show");
    assert!(
        macs.contains(&mac_text(OTHER)) && macs.contains("50"),
        "{macs}"
    );
}

#[test]
fn a_stop_removes_the_tc_program_and_no_kernel_path_attaches_none() {
    let lab = Lab::bridge("kpstop");
    let tcx = |lab: &Lab| {
        lab.in_ns(&lab.br, || {
            let idx = ethertap::ixdp::netdev::if_index("p0").expect("p0");
            ethertap::ixdp::xdp::tcx_ingress_programs(idx).expect("query tcx")
        })
    };
    let mut config = bridge_config("kpstop");
    config.kernel_path = false;
    let mut eng = lab.start_engine_with(config);
    assert_eq!(tcx(&lab), 0, "--no-kernel-path attaches no TC program");
    let ping = lab.sh(&lab.h1, &format!("ping -c 3 -i 0.05 -W 2 {H2_IP}"));
    assert!(ping.contains("3 received"), "{ping}");
    assert_eq!(kernel_frames(&mut eng), 0);
    eng.stop();
    let mut eng = lab.start_engine("kpnat");
    assert_eq!(tcx(&lab), 1, "the default attaches it");
    let before = settle(&lab, &mut eng, true);
    let ping = lab.sh(&lab.h1, &format!("ping -c 3 -i 0.05 -W 2 {H2_IP}"));
    assert!(ping.contains("3 received"), "{ping}");
    assert_eq!(kernel_frames(&mut eng) - before, 3, "the echo requests");
    eng.stop();
    assert_eq!(tcx(&lab), 0, "stopping removes it");
}

#[test]
fn jumbo_frames_cross_the_kernel_path_whole_in_native_mode() {
    jumbo(ethertap::ixdp::XdpMode::Drv, "kpjum");
}

#[test]
fn jumbo_frames_cross_the_kernel_path_whole_in_generic_mode() {
    jumbo(ethertap::ixdp::XdpMode::Skb, "kpjus");
}

fn jumbo(mode: ethertap::ixdp::XdpMode, test: &str) {
    let lab = jumbo_lab(test);
    let mut config = bridge_config(test);
    config.xdp_mode = mode;
    let mut eng = lab.start_engine_with(config);
    let before = settle(&lab, &mut eng, true);
    let frames = long_frames();
    let tx = lab.packet_socket(&lab.h1, "e0");
    let rx = lab.packet_socket(&lab.h2, "e1");
    tx.send_all(&frames);
    assert_same_frames(&rx.collect(frames.len(), QUIET), &frames);
    assert_eq!(kernel_frames(&mut eng) - before, frames.len() as u64);
    assert_eq!(eng.stat(1, "tx"), frames.len() as u64);
    assert_eq!(eng.stat(0, "err"), 0);
}
