//! The kernel path (docs/kernel-path.md): in bridge mode, frames nothing in user space wants
//! are counted by the XDP program and forwarded by the TC program. These lab tests (root) show
//! that such frames cross unchanged, that every statistic reads exactly as when the workers
//! forward them, and that switching between the two paths under traffic loses, duplicates and
//! misses nothing.

mod lab;

use lab::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const OTHER: Mac = Mac([0x00, 0x1b, 0x21, 0x0a, 0x0b, 0x0c]);

/// A line of `if.qstats` output, by its label.
fn qstat(eng: &mut LabEngine, ifidx: usize, queue: usize, label: &str) -> u64 {
    let text = eng.ok(&format!("{queue} {ifidx} if.qstats"));
    text.lines()
        .find_map(|l| {
            let l = l.trim_start();
            let rest = l.strip_prefix(label)?;
            rest.trim().parse().ok()
        })
        .unwrap_or_else(|| panic!("no `{label}` in:\n{text}"))
}

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
    qstat(eng, 0, 0, "xdp kernel path")
}

/// Waits until port 0 forwards in the kernel (when `kernel`) and then empties the statistics:
/// the lab's veths report a carrier only once the kernel's link watch ran, up to a second
/// after they came up, and the kernel path waits for it. Returns the kernel-path frames so far.
fn settle(lab: &Lab, eng: &mut LabEngine, kernel: bool) -> u64 {
    let tx = lab.packet_socket(&lab.h1, "e0");
    let rx = lab.packet_socket(&lab.h2, "e1");
    let probe = frame(E1_MAC, Mac([2, 0, 0, 0, 0, 0x99]), &[], 999_999, 60);
    let ready = wait_for(Duration::from_secs(5), || {
        tx.send(&probe);
        std::thread::sleep(Duration::from_millis(20));
        !kernel || kernel_frames(eng) > 0
    });
    assert!(ready, "port 0 never forwarded in the kernel");
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
    let mut config = ethertap::ixdp::EngineConfig::new(vec!["p0".into(), "p1".into()]);
    config.kernel_path = kernel_path;
    config.xdp_mode = mode;
    config.queue_name = Some(format!("et-{test}-{}", std::process::id()));
    let mut eng = lab.start_engine_with(config);
    let before = settle(&lab, &mut eng, kernel_path);
    let tx = lab.packet_socket(&lab.h1, "e0");
    let rx = lab.packet_socket(&lab.h2, "e1");
    tx.send_all(frames);
    let got = rx.collect(frames.len(), QUIET);
    assert_same_frames(&got, frames);
    let kernel = kernel_frames(&mut eng) - before;
    let per_queue: u64 = (0..2).map(|q| qstat(&mut eng, 0, q, "rx")).sum();
    assert_eq!(per_queue, frames.len() as u64, "if.qstats rx adds up");
    let per_queue_tx: u64 = (0..2).map(|q| qstat(&mut eng, 1, q, "tx")).sum();
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
    let redirected_before = qstat(&mut eng, 0, 0, "xdp redirected");
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
    let redirected = qstat(&mut eng, 0, 0, "xdp redirected") - redirected_before;
    assert!(
        kernel > 0 && redirected > 0 && kernel + redirected == sent as u64,
        "both paths carried frames: kernel {kernel}, workers {redirected}, sent {sent}"
    );
}

#[test]
fn a_tap_turned_on_gets_every_frame_from_then_on() {
    let lab = Lab::bridge("kptap");
    let mut eng = lab.start_engine("kptap");
    let before = settle(&lab, &mut eng, true);
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
        tx.send_all(&tapped);
        assert_eq!(rx.collect(tapped.len(), QUIET).len(), tapped.len());
        let queue = drain_queue(&eng.queue_name, 2 * tapped.len());
        for dir in [
            ethertap::pqueue::Direction::Rx,
            ethertap::pqueue::Direction::Tx,
        ] {
            let copies: Vec<Vec<u8>> = queue
                .iter()
                .filter(|t| t.dir == dir)
                .map(|t| t.data.clone())
                .collect();
            assert_frames(&copies, &tapped, &format!("round {round}: {dir:?} tap"));
        }
        eng.ok("0 tap.rx.disable 1 tap.tx.disable");
    }
    assert_eq!(eng.stat(0, "rx"), 3000);
    assert_eq!(eng.stat(1, "tx"), 3000);
    assert_eq!(
        kernel_frames(&mut eng) - before,
        1500,
        "the untapped frames took the kernel path"
    );
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
    let mut config = ethertap::ixdp::EngineConfig::new(vec!["p0".into(), "p1".into()]);
    config.kernel_path = false;
    config.queue_name = Some(format!("et-kpstop-{}", std::process::id()));
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
    let lab = Lab::bridge(test);
    for (ns, i) in [
        (&lab.h1, "e0"),
        (&lab.br, "p0"),
        (&lab.br, "p1"),
        (&lab.h2, "e1"),
    ] {
        lab.ip(ns, &["link", "set", i, "mtu", "9000"]);
    }
    let mut config = ethertap::ixdp::EngineConfig::new(vec!["p0".into(), "p1".into()]);
    config.xdp_mode = mode;
    config.queue_name = Some(format!("et-{test}-{}", std::process::id()));
    let mut eng = lab.start_engine_with(config);
    let before = settle(&lab, &mut eng, true);
    let frames: Vec<Vec<u8>> = [60, 1514, 1515, 3000, 4097, 8000, 9013, 9014]
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            let mut f = frame(E1_MAC, E0_MAC, &[], i as u32, len);
            // Bytes that differ all along the frame, so a piece out of place shows.
            for (at, b) in f.iter_mut().enumerate().skip(24) {
                *b = (at * 7 + i) as u8;
            }
            f
        })
        .collect();
    let tx = lab.packet_socket(&lab.h1, "e0");
    let rx = lab.packet_socket(&lab.h2, "e1");
    tx.send_all(&frames);
    assert_same_frames(&rx.collect(frames.len(), QUIET), &frames);
    assert_eq!(kernel_frames(&mut eng) - before, frames.len() as u64);
    assert_eq!(eng.stat(1, "tx"), frames.len() as u64);
    assert_eq!(eng.stat(0, "err"), 0);
}
