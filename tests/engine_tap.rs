//! RX and TX taps into the packet queue, mirror mode and the TAP machash (needs root).

mod lab;

use ethertap::pqueue::Direction;
use lab::*;
use std::time::Duration;

fn of(t: &[Tapped], ifindex: u8, dir: Direction) -> Vec<Vec<u8>> {
    t.iter()
        .filter(|p| p.ifindex == ifindex && p.dir == dir)
        .map(|p| p.data.clone())
        .collect()
}

#[test]
fn mirror_mode_taps_every_frame_and_forwards_nothing() {
    let lab = Lab::mirror("mirr");
    let mut eng = lab.start_engine("mirr");
    assert!(eng.ok("if.stats").contains("p0"), "one interface");
    eng.ok("0 tap.rx.enable");
    let s0 = lab.packet_socket(&lab.h1, "e0");
    let rx_before = lab.counter(&lab.h1, "e0", "rx_packets");
    let frames: Vec<Vec<u8>> = (0..200)
        .map(|i| {
            frame(
                [0x02, 0x99, 0, 0, 0, 9],
                E0_MAC,
                &[],
                i,
                60 + (i as usize % 40),
            )
        })
        .collect();
    s0.send_all(&frames);
    let tapped = drain_queue(&eng.queue_name, frames.len());
    assert_frames(
        &of(&tapped, 0, Direction::Rx),
        &frames,
        "RX tap of mirror port",
    );
    assert_eq!(tapped.len(), frames.len(), "nothing but the RX tap");
    assert_eq!(eng.stat(0, "rx"), 200);
    assert_eq!(eng.stat(0, "tx"), 0);
    assert_eq!(eng.stat(0, "noif"), 0, "mirror mode counts nothing in noif");
    assert!(
        s0.collect(1, Duration::from_millis(300)).is_empty(),
        "nothing comes back"
    );
    assert_eq!(lab.counter(&lab.h1, "e0", "rx_packets"), rx_before);
}

#[test]
fn taps_capture_everything_with_an_empty_machash_and_only_listed_macs_otherwise() {
    let lab = Lab::bridge("tapmh");
    let mut eng = lab.start_engine("tapmh");
    eng.ok("0 tap.rx.enable 1 tap.tx.enable");
    let s0 = lab.packet_socket(&lab.h1, "e0");
    let s1 = lab.packet_socket(&lab.h2, "e1");
    let other = [0x00, 0x1b, 0x21, 0x33, 0x44, 0x55];
    let sink = [0x02, 0x99, 0, 0, 0, 0x77];
    let mut frames = Vec::new();
    for i in 0..60u32 {
        frames.push(frame(E1_MAC, E0_MAC, &[], i, 64));
        frames.push(frame(sink, other, &[], 1000 + i, 90));
    }
    s0.send_all(&frames);
    assert_eq!(s1.collect(frames.len(), QUIET).len(), frames.len());
    let tapped = drain_queue(&eng.queue_name, 2 * frames.len());
    assert_frames(
        &of(&tapped, 0, Direction::Rx),
        &frames,
        "RX tap on 0, empty machash",
    );
    assert_frames(
        &of(&tapped, 1, Direction::Tx),
        &frames,
        "TX tap on 1, empty machash",
    );
    assert_eq!(tapped.len(), 2 * frames.len());

    // A listed source MAC selects its frames only.
    eng.ok(&format!("{} tap.hash.insert", mac_text(other)));
    s0.send_all(&frames);
    assert_eq!(
        s1.collect(frames.len(), QUIET).len(),
        frames.len(),
        "all still forwarded"
    );
    let tapped = drain_queue(&eng.queue_name, frames.len());
    let from_other: Vec<Vec<u8>> = frames
        .iter()
        .filter(|f| f[6..12] == other)
        .cloned()
        .collect();
    assert_frames(
        &of(&tapped, 0, Direction::Rx),
        &from_other,
        "RX tap, source listed",
    );
    assert_frames(
        &of(&tapped, 1, Direction::Tx),
        &from_other,
        "TX tap, source listed",
    );
    assert_eq!(tapped.len(), 2 * from_other.len());

    // A listed destination MAC selects as well.
    eng.ok(&format!(
        "{} tap.hash.delete {} tap.hash.insert",
        mac_text(other),
        mac_text(E1_MAC)
    ));
    s0.send_all(&frames);
    s1.collect(frames.len(), QUIET);
    let tapped = drain_queue(&eng.queue_name, frames.len());
    let to_e1: Vec<Vec<u8>> = frames
        .iter()
        .filter(|f| f[0..6] == E1_MAC.0)
        .cloned()
        .collect();
    assert_frames(
        &of(&tapped, 0, Direction::Rx),
        &to_e1,
        "RX tap, destination listed",
    );

    // Disabled taps capture nothing; the traffic still flows.
    eng.ok("tap.hash.reset 0 tap.rx.disable 1 tap.tx.disable");
    s0.send_all(&frames);
    assert_eq!(s1.collect(frames.len(), QUIET).len(), frames.len());
    assert!(drain_queue(&eng.queue_name, 0).is_empty(), "taps off");
}

#[test]
fn tx_tap_shows_the_frame_as_sent_after_fault_injection() {
    let lab = Lab::bridge("tapfi");
    let mut eng = lab.start_engine("tapfi");
    eng.ok("1 tap.rx.enable 0 tap.tx.enable 1 fault.enable 100000 1 fault.flip.probability");
    let s0 = lab.packet_socket(&lab.h1, "e0");
    let s1 = lab.packet_socket(&lab.h2, "e1");
    let frames: Vec<Vec<u8>> = (0..50).map(|i| frame(E0_MAC, E1_MAC, &[], i, 80)).collect();
    s1.send_all(&frames);
    let arrived = s0.collect(frames.len(), QUIET);
    let tapped = drain_queue(&eng.queue_name, 2 * frames.len());
    assert_frames(
        &of(&tapped, 1, Direction::Rx),
        &frames,
        "RX tap sees the frame as received",
    );
    assert_frames(
        &of(&tapped, 0, Direction::Tx),
        &arrived,
        "TX tap sees the frame as sent",
    );
    assert!(
        arrived.iter().zip(&frames).all(|(a, b)| a != b),
        "every frame was flipped"
    );
}

#[test]
fn tapped_frames_recorded_by_collect_read_back_with_tshark() {
    let lab = Lab::bridge("tapcol");
    let mut eng = lab.start_engine("tapcol");
    let listed = [0x00, 0x1b, 0x21, 0x01, 0x02, 0x03];
    eng.ok(&format!(
        "0 tap.rx.enable {} tap.hash.insert",
        mac_text(listed)
    ));
    let s0 = lab.packet_socket(&lab.h1, "e0");
    let s1 = lab.packet_socket(&lab.h2, "e1");
    let mut frames = Vec::new();
    for i in 0..40u32 {
        frames.push(frame(E1_MAC, E0_MAC, &[], i, 64 + i as usize));
        frames.push(frame(
            E1_MAC,
            listed,
            &[Tag::dot1q(5)],
            100 + i,
            70 + i as usize,
        ));
        frames.push(frame(listed, E0_MAC, &[], 200 + i, 80));
    }
    s0.send_all(&frames);
    assert_eq!(s1.collect(frames.len(), QUIET).len(), frames.len());
    let expect: Vec<&Vec<u8>> = frames
        .iter()
        .filter(|f| f[0..6] == listed || f[6..12] == listed)
        .collect();
    assert_eq!(expect.len(), 80);

    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("tap.pcap");
    collect_packets(&eng.queue_name, 80, &pcap);
    let tshark = std::process::Command::new("tshark")
        .args(["-r"])
        .arg(&pcap)
        .args([
            "-T",
            "fields",
            "-e",
            "eth.dst",
            "-e",
            "eth.src",
            "-e",
            "frame.len",
        ])
        .output()
        .expect("tshark is installed");
    assert!(
        tshark.status.success(),
        "{}",
        String::from_utf8_lossy(&tshark.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8_lossy(&tshark.stdout)
        .lines()
        .map(|l| l.to_string())
        .collect();
    let mut want: Vec<String> = expect
        .iter()
        .map(|f| {
            let m = |b: &[u8]| mac_text(<[u8; 6]>::try_from(b).unwrap());
            format!("{}\t{}\t{}", m(&f[0..6]), m(&f[6..12]), f.len())
        })
        .collect();
    // The tagged frames travel on the other veth queue, so the two workers interleave them
    // with the untagged ones in any order: compare as sets.
    lines.sort();
    want.sort();
    assert_eq!(lines, want, "the pcap holds exactly the selected frames");
}
