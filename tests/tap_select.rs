//! Tap selection on the real engine in a namespace lab (needs root, tshark, tcpdump):
//! pcap-filter expressions at both tap points with `collect` writing the file and tshark and
//! tcpdump counting it, a filter changed while traffic flows, snap lengths, sampling, and MAC
//! ranges in the three machashes. Forwarding is checked against what the far host received.

mod lab;
mod readers;

use lab::*;
use readers::clean;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use ethertap::lab::frames::{icmp4_echo, tcp4, udp4};

/// An address h2 does not own: h2 counts the frames and drops them without answering.
const FAR: Ipv4Addr = Ipv4Addr::new(10, 77, 9, 9);
const NEAR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

fn udp(tags: &[Tag], sport: u16, dport: u16, seq: u32) -> Vec<u8> {
    let (a, b) = (
        SocketAddrV4::new(NEAR, sport),
        SocketAddrV4::new(FAR, dport),
    );
    udp4(E1_MAC, E0_MAC, tags, a, b, &seq.to_be_bytes()).unwrap()
}

fn tcp(tags: &[Tag], dport: u16, seq: u32) -> Vec<u8> {
    let (a, b) = (
        SocketAddrV4::new(NEAR, 40000),
        SocketAddrV4::new(FAR, dport),
    );
    tcp4(E1_MAC, E0_MAC, tags, a, b, seq, b"tcp").unwrap()
}

fn icmp(seq: u16) -> Vec<u8> {
    icmp4_echo(E1_MAC, E0_MAC, &[], (NEAR, FAR), (7, seq), b"ping").unwrap()
}

/// The mixed traffic of the issue, every frame distinct: UDP to ports 1234 and 5678, TCP to
/// port 80, ICMP echo, and 802.1Q-tagged UDP to port 1234 (VLAN 10) and TCP (VLAN 20).
fn mixed() -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    for i in 0..60u32 {
        v.push(udp(&[], 5000, 1234, i));
        v.push(udp(&[], 5001, 5678, i));
        if i % 3 == 0 {
            v.push(tcp(&[], 80, i));
            v.push(icmp(i as u16));
        }
        if i % 2 == 0 {
            v.push(udp(&[Tag::dot1q(10)], 5002, 1234, i));
            v.push(tcp(&[Tag::dot1q(20)], 443, i));
        }
    }
    v
}

fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v
}

/// The same frames in any order, each as often; else says what is missing and what is extra.
#[track_caller]
fn assert_same_frames(got: Vec<Vec<u8>>, want: Vec<Vec<u8>>, what: &str) {
    let (got, want) = (sorted(got), sorted(want));
    if got == want {
        return;
    }
    let count = |v: &[Vec<u8>]| {
        let mut m = std::collections::BTreeMap::new();
        for f in v {
            *m.entry(f.clone()).or_insert(0i32) += 1;
        }
        m
    };
    let (g, w) = (count(&got), count(&want));
    let missing: Vec<_> = w
        .iter()
        .filter(|(f, n)| g.get(*f) != Some(n))
        .take(3)
        .collect();
    let extra: Vec<_> = g
        .iter()
        .filter(|(f, n)| w.get(*f) != Some(n))
        .take(3)
        .collect();
    panic!(
        "{what}: got {} frames, want {}; short of (first 3, with wanted count) {missing:02x?}; \
         over (first 3, with count got) {extra:02x?}",
        got.len(),
        want.len()
    );
}

/// The frames of a pcap file with their original lengths.
fn read_pcap(file: &str) -> Vec<(Vec<u8>, u32)> {
    let f = std::fs::File::open(file).unwrap_or_else(|e| panic!("{file}: {e}"));
    let mut r = pcap_file::pcap::PcapReader::new(f).unwrap();
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.unwrap();
        out.push((p.data.to_vec(), p.orig_len));
    }
    out
}

fn write_pcap(file: &str, frames: &[Vec<u8>]) {
    let f = std::fs::File::create(file).unwrap();
    let mut w = pcap_file::pcap::PcapWriter::new(f).unwrap();
    for (i, fr) in frames.iter().enumerate() {
        let ts = Duration::from_millis(i as u64);
        w.write_packet(&pcap_file::pcap::PcapPacket::new(ts, fr.len() as u32, fr))
            .unwrap();
    }
}

/// Frames tshark reads in `file` that match the display filter.
fn tshark_count(file: &str, display: &str) -> usize {
    clean("tshark", &["-r", file, "-Y", display])
        .lines()
        .count()
}

/// The 1-based numbers of the frames of `file` that match the display filter.
fn tshark_numbers(file: &str, display: &str) -> Vec<usize> {
    clean(
        "tshark",
        &[
            "-r",
            file,
            "-Y",
            display,
            "-T",
            "fields",
            "-e",
            "frame.number",
        ],
    )
    .lines()
    .map(|l| l.trim().parse().unwrap())
    .collect()
}

fn tcpdump_count(file: &str, expr: &str) -> usize {
    clean("tcpdump", &["-nn", "-r", file, expr]).lines().count()
}

fn temp_file(dir: &tempfile::TempDir, name: &str) -> String {
    dir.path().join(name).to_str().unwrap().to_string()
}

/// The filter expressions of the issue, each with the tshark display filter that selects the
/// same frames of [`mixed`]. The syntaxes differ: a pcap-filter primitive without `vlan`
/// looks at untagged frames only, and `vlan 10` at the outer tag.
const FILTERS: [(&str, &str); 3] = [
    ("udp port 1234", "!vlan && udp.port == 1234"),
    ("vlan 10", "vlan.id == 10"),
    ("tcp", "!vlan && tcp"),
];

#[test]
fn filters_tap_exactly_the_matching_frames_at_both_tap_points_and_forwarding_is_unaffected() {
    let lab = Lab::bridge("tsfilt");
    let mut eng = lab.start_engine("tsfilt");
    eng.ok("0 tap.rx.enable 1 tap.tx.enable");
    let s0 = lab.packet_socket(&lab.h1, "e0");
    let s1 = lab.packet_socket(&lab.h2, "e1");
    let frames = mixed();
    let dir = tempfile::tempdir().unwrap();
    let reference = temp_file(&dir, "sent.pcap");
    write_pcap(&reference, &frames);
    for (expr, display) in FILTERS {
        eng.ok(&format!("\"{expr}\" tap.filter"));
        assert_eq!(eng.ok("tap.filter.show"), format!("{expr}\n"));
        let file = temp_file(&dir, &format!("{}.pcap", expr.replace(' ', "_")));
        let collect = Collect::start(&eng.queue_name, &file);
        s0.send_all(&frames);
        let got = s1.collect(frames.len(), QUIET);
        collect.stop();
        assert_same_frames(
            got,
            frames.clone(),
            &format!("{expr}: forwarded once, unchanged"),
        );

        // What the filter should take, by tshark's dissectors and by tcpdump.
        let wanted: Vec<Vec<u8>> = tshark_numbers(&reference, display)
            .into_iter()
            .map(|n| frames[n - 1].clone())
            .collect();
        assert!(!wanted.is_empty() && wanted.len() < frames.len(), "{expr}");
        assert_eq!(tcpdump_count(&reference, expr), wanted.len(), "{expr}");
        // The capture: each wanted frame twice (RX tap on port 0, TX tap on port 1), nothing
        // else, whole.
        let captured: Vec<Vec<u8>> = read_pcap(&file).into_iter().map(|(d, _)| d).collect();
        let twice: Vec<Vec<u8>> = wanted.iter().chain(&wanted).cloned().collect();
        assert_same_frames(
            captured,
            twice,
            &format!("{expr}: exactly the matching frames, twice"),
        );
        assert_eq!(tshark_count(&file, display), 2 * wanted.len(), "{expr}");
        assert_eq!(tshark_count(&file, &format!("!({display})")), 0, "{expr}");
    }
    eng.ok("tap.filter.reset");
    let status = eng.ok("tap.status");
    assert!(
        status.contains("filter                  none (every frame)"),
        "{status}"
    );
}

#[test]
fn a_filter_changed_while_traffic_flows_loses_and_repeats_no_forwarded_frame() {
    let lab = Lab::bridge("tsswap");
    let mut eng = lab.start_engine("tsswap");
    eng.ok("0 tap.rx.enable 1 tap.tx.enable");
    let s1 = lab.packet_socket(&lab.h2, "e1");
    // One flow per port, so each stays on one queue and arrives in order.
    let frames: Vec<Vec<u8>> = (0..30_000u32)
        .map(|i| match i % 3 {
            0 => udp(&[], 6000, 1234, i),
            1 => udp(&[], 6001, 53, i),
            _ => tcp(&[], 80, i),
        })
        .collect();
    let to_send = frames.clone();
    let s0 = lab.packet_socket(&lab.h1, "e0");
    let sender = std::thread::spawn(move || s0.send_all(&to_send));
    let filters = [
        "\"udp port 1234\" tap.filter",
        "\"tcp port\" tap.filter",
        "\"udp port 53 or tcp\" tap.filter",
        "tap.filter.reset",
        "\"no such\" tap.filter",
        "\"udp\" tap.filter",
        "\"\" tap.filter",
    ];
    let mut changes = 0;
    while !sender.is_finished() {
        let line = filters[changes % filters.len()];
        let r = eng.eval(line);
        assert_eq!(
            r.is_err(),
            line.contains("port\"") || line.contains("such"),
            "{line}: {r:?}"
        );
        if r.is_err() {
            eng.ok(".cs");
        }
        changes += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    sender.join().unwrap();
    assert!(
        changes > 20,
        "the filter changed {changes} times while frames flowed"
    );
    let got = s1.collect(frames.len(), QUIET);
    assert_eq!(got.len(), frames.len(), "no frame lost or repeated");
    assert_same_frames(got, frames.clone(), "every frame once, unchanged");
    assert_eq!(eng.stat(0, "rx"), frames.len() as u64);
    assert_eq!(eng.stat(1, "tx"), frames.len() as u64);
    assert_eq!(eng.stat(0, "drop") + eng.stat(0, "err"), 0);
    // Whatever was tapped in between is whole frames that were sent, none more than twice.
    let tapped = drain_queue(&eng.queue_name, 1);
    let mut seen = std::collections::HashMap::new();
    for t in &tapped {
        *seen.entry(t.data.clone()).or_insert(0) += 1;
    }
    let sent: std::collections::HashSet<&Vec<u8>> = frames.iter().collect();
    assert!(seen.iter().all(|(f, &n)| sent.contains(f) && n <= 2));
}

#[test]
fn snaplen_96_keeps_96_bytes_and_the_original_length() {
    let lab = Lab::bridge("tssnap");
    let mut eng = lab.start_engine("tssnap");
    eng.ok("0 tap.rx.enable 96 tap.snaplen");
    let s0 = lab.packet_socket(&lab.h1, "e0");
    let s1 = lab.packet_socket(&lab.h2, "e1");
    let frames: Vec<Vec<u8>> = (0..200u32)
        .map(|i| frame(E1_MAC, E0_MAC, &[], i, 60 + (i as usize * 37) % 1455))
        .collect();
    assert!(frames.iter().any(|f| f.len() < 96) && frames.iter().any(|f| f.len() > 1000));
    let dir = tempfile::tempdir().unwrap();
    let want: Vec<(usize, usize)> = frames.iter().map(|f| (f.len().min(96), f.len())).collect();
    for name in ["snap.pcap", "snap.pcapng"] {
        let file = temp_file(&dir, name);
        let collect = Collect::start(&eng.queue_name, &file);
        s0.send_all(&frames);
        assert_eq!(s1.collect(frames.len(), QUIET), frames, "forwarded whole");
        collect.stop();
        let fields = [
            "-r",
            &file,
            "-T",
            "fields",
            "-e",
            "frame.cap_len",
            "-e",
            "frame.len",
        ];
        let rows: Vec<(usize, usize)> = clean("tshark", &fields)
            .lines()
            .map(|l| {
                let (c, o) = l.split_once('\t').unwrap();
                (c.parse().unwrap(), o.parse().unwrap())
            })
            .collect();
        assert_eq!(
            rows, want,
            "{name}: caplen = min(len, 96), origlen = len, per record"
        );
        if name.ends_with(".pcap") {
            for ((data, orig), f) in read_pcap(&file).iter().zip(&frames) {
                let whole = (&f[..f.len().min(96)], f.len());
                assert_eq!((&data[..], *orig as usize), whole);
            }
        }
    }
    eng.ok("0 tap.snaplen");
    assert!(eng
        .ok("tap.status")
        .contains("snaplen                 0 (whole frames)"));
}

#[test]
fn sample_10_taps_exactly_1000_of_10000_qualifying_frames() {
    let (_lab, mut eng, s0, s1) = sampling_lab("tssamp");
    // 10,000 qualifying frames of one flow (one queue) between 10,000 others.
    let frames = sampled_frames(0);
    s0.send_all(&frames);
    assert_eq!(s1.collect(frames.len(), QUIET).len(), frames.len());
    let seqs = sampled_seqs(&eng, 1000);
    let per_queue: Vec<String> = (0..2)
        .map(|q| {
            eng.ok(&format!("{q} 0 if.qstats"))
                .lines()
                .nth(1)
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        seqs,
        (0..10_000).step_by(10).collect::<Vec<u32>>(),
        "the first and every tenth qualifying frame (port 0 queues: {per_queue:?})"
    );
}

/// A lab bridge tapping one in ten frames of `udp port 1234` received on port 0, once port 0
/// forwards in the kernel, and packet sockets on h1 and h2 (h2's drained).
fn sampling_lab(test: &str) -> (Lab, LabEngine, Wire, Wire) {
    let lab = Lab::bridge(test);
    let mut eng = lab.start_engine(test);
    eng.ok("0 tap.rx.enable \"udp port 1234\" tap.filter 10 tap.sample");
    // Frames the filter refuses do not count: wait for the kernel path with them, so that a
    // test's frames go one way unless it switches.
    eng.wait_for_kernel_path(&lab, &udp(&[], 7001, 4321, 999_999));
    let s0 = lab.packet_socket(&lab.h1, "e0");
    let s1 = lab.packet_socket(&lab.h2, "e1");
    let _ = s1.collect(usize::MAX, Duration::from_millis(200));
    (lab, eng, s0, s1)
}

/// 10,000 frames of the qualifying flow (`udp port 1234`, sequence numbers from `first`)
/// between 10,000 others.
fn sampled_frames(first: u32) -> Vec<Vec<u8>> {
    (0..20_000u32)
        .map(|i| match i % 2 {
            0 => udp(&[], 7000, 1234, first + i / 2),
            _ => udp(&[], 7001, 4321, first + i / 2),
        })
        .collect()
}

/// The sequence numbers of the frames the tap took, each checked to qualify.
fn sampled_seqs(eng: &LabEngine, expect: usize) -> Vec<u32> {
    drain_queue(&eng.queue_name, expect)
        .iter()
        .map(|t| {
            assert_eq!(
                t.data[36..38],
                1234u16.to_be_bytes(),
                "only qualifying frames"
            );
            u32::from_be_bytes(t.data[42..46].try_into().unwrap())
        })
        .collect()
}

#[test]
fn sampling_counts_on_across_a_switch_between_the_kernel_tap_and_the_workers() {
    let (_lab, mut eng, s0, s1) = sampling_lab("tsswit");
    let kernel0 = eng.qstat(0, 0, "xdp kernel tap");
    // Half through the kernel tap, then (fault injection on, nothing injected) half through
    // the workers, then back.
    let mut sent = 0;
    for (i, switch) in ["0 fault.enable", "0 fault.disable", ""].iter().enumerate() {
        let frames = sampled_frames(i as u32 * 10_000);
        s0.send_all(&frames);
        assert_eq!(s1.collect(frames.len(), QUIET).len(), frames.len());
        sent += frames.len() / 2;
        if !switch.is_empty() {
            eng.ok(switch);
        }
    }
    let seqs = sampled_seqs(&eng, sent / 10);
    assert_eq!(
        seqs.len(),
        sent / 10,
        "exactly one in ten qualifying frames"
    );
    let mut distinct = seqs.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), seqs.len(), "each frame at most once");
    let through_kernel = eng.qstat(0, 0, "xdp kernel tap") - kernel0;
    assert_eq!(
        through_kernel, 40_000,
        "two of the three rounds took the kernel tap"
    );
}

/// Experimental frames from `src` to `dst`, numbered from `first`.
fn numbered(dst: Mac, src: Mac, first: u32, n: u32) -> Vec<Vec<u8>> {
    (first..first + n)
        .map(|i| frame(dst, src, &[], i, 64))
        .collect()
}

#[test]
fn mac_ranges_select_in_the_tap_drop_and_fault_machashes() {
    let lab = Lab::bridge("tsrange");
    let mut eng = lab.start_engine("tsrange");
    let s0 = lab.packet_socket(&lab.h1, "e0");
    let s1 = lab.packet_socket(&lab.h2, "e1");
    let inside = Mac([0x02, 0x88, 0, 0, 0, 0x10]);
    let edge = Mac([0x02, 0x88, 0, 0, 0, 0xff]);
    let outside = Mac([0x02, 0x88, 0, 0, 1, 0x00]);
    let range = "02:88:00:00:00:00-02:88:00:00:00:ff";
    let traffic = |first| {
        let mut v = numbered(E1_MAC, inside, first, 10);
        v.extend(numbered(E1_MAC, edge, first + 10, 10));
        v.extend(numbered(E1_MAC, outside, first + 20, 10));
        v.extend(numbered(inside, E0_MAC, first + 30, 10));
        v
    };

    // TAP machash: frames from or to a MAC in the range.
    eng.ok(&format!(
        "0 tap.rx.enable \"{range}\" str->macrange_t tap.hash.insert"
    ));
    assert_eq!(
        eng.ok("tap.hash.show"),
        format!("{range} Locally Administered Address (LAA)\n")
    );
    let frames = traffic(0);
    s0.send_all(&frames);
    assert_eq!(s1.collect(frames.len(), QUIET).len(), frames.len());
    let tapped: Vec<Vec<u8>> = drain_queue(&eng.queue_name, 30)
        .into_iter()
        .map(|t| t.data)
        .collect();
    let want: Vec<u32> = (0..20).chain(30..40).collect();
    assert_eq!(
        seqs(&tapped),
        want,
        "inside and at the edge, as source or destination"
    );
    eng.ok("tap.hash.reset 0 tap.rx.disable");

    // Drop machash: sources in the range are dropped. Fault machash: only sources in the
    // range get faults (here: always dropped).
    let cases = [
        (
            format!("{range} drop.hash.insert"),
            "drop",
            format!("{range} drop.hash.delete"),
        ),
        (
            format!("0 fault.enable 100000 0 fault.drop.probability {range} fault.hash.insert"),
            "dropped by FI",
            "0 fault.disable".to_string(),
        ),
    ];
    for (first, (setup, counter, undo)) in [100, 200].into_iter().zip(cases) {
        eng.ok(&format!("{setup} if.stats.reset"));
        s0.send_all(&traffic(first));
        let got = s1.collect(20, QUIET);
        let outside: Vec<u32> = (first + 20..first + 40).collect();
        assert_eq!(seqs(&got), outside, "{setup}: only sources outside pass");
        assert_eq!(eng.stat(0, counter), 20, "{setup}");
        eng.ok(&undo);
    }
}
