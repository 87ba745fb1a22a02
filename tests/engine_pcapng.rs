//! pcapng from the real engine on a namespace lab: with RX and TX taps on both ports every
//! bridged frame is in the file once inbound on the port it arrived on and once outbound on
//! the port it left by, named and timed; fault injection marks the frames it changed; the
//! statistics blocks agree with `if.stats` and the queue's `full`.

mod lab;
mod readers;

use lab::*;
use readers::{blocks, clean, dump, num};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// tshark's per-frame view: interface name, direction (1 in, 2 out), epoch time, comment,
/// ICMP type and sequence.
fn tshark_rows(file: &str) -> Vec<Vec<String>> {
    clean(
        "tshark",
        &[
            "-r",
            file,
            "-T",
            "fields",
            "-E",
            "occurrence=f",
            "-e",
            "frame.interface_name",
            "-e",
            "frame.packet_flags_direction",
            "-e",
            "frame.time_epoch",
            "-e",
            "frame.comment",
            "-e",
            "icmp.type",
            "-e",
            "icmp.seq",
        ],
    )
    .lines()
    .map(|l| l.split('\t').map(str::to_string).collect())
    .collect()
}

fn direction(field: &str) -> u32 {
    u32::from_str_radix(field.trim_start_matches("0x"), 16).unwrap_or(0)
}

#[test]
fn every_bridged_frame_is_in_once_on_its_port_and_out_once_on_the_other() {
    let lab = Lab::bridge("ngboth");
    let mut eng = lab.start_engine("ngboth");
    eng.ok("0 tap.rx.enable 1 tap.rx.enable 0 tap.tx.enable 1 tap.tx.enable if.stats.reset");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("both.pcapng");
    let file = file.to_str().unwrap();
    let before = wall_ns();
    let collect = Collect::start(&eng.queue_name, file);

    let ping = lab.sh(&lab.h1, &format!("ping -c 5 -i 0.05 -W 2 {H2_IP}"));
    assert!(ping.contains("5 received"), "{ping}");
    tcp_transfer(&lab, 300_000, 5202);
    collect.stop();
    let after = wall_ns();

    let all = dump(file);
    let epbs = blocks(&all, "epb");
    let rows = tshark_rows(file);
    assert_eq!(
        rows.len(),
        epbs.len(),
        "tshark and the reader see the same frames"
    );
    let rx = [eng.stat(0, "rx"), eng.stat(1, "rx")];
    let tx = [eng.stat(0, "tx"), eng.stat(1, "tx")];
    // h2 answers with 5 echo replies and the ACKs of 300 kB; a slowed h2 acknowledges many
    // segments at once (36 ACK-side frames seen under load), so only the handshake, the replies
    // and a few ACKs are certain.
    assert!(rx[0] > 100 && rx[1] > 10, "ping and TCP crossed: {rx:?}");
    assert_eq!(epbs.len() as u64, rx[0] + rx[1] + tx[0] + tx[1]);

    // Every record: the port tshark names is the one the reader's interface id says, and
    // the direction flag matches. Pair the copies of each frame by their bytes.
    let names = ["p0", "p1"];
    let mut seen: BTreeMap<&str, Vec<(u64, u32)>> = BTreeMap::new();
    let mut last_ts = 0;
    for (epb, row) in epbs.iter().zip(&rows) {
        let ifx = num(epb, "if");
        assert_eq!(row[0], names[ifx as usize], "{row:?}");
        let dir = direction(&row[1]);
        assert_eq!(u64::from(dir), num(epb, "flags"), "{row:?}");
        assert!(dir == 1 || dir == 2, "{row:?}");
        assert_eq!(
            row.get(3).map_or("", |s| s.as_str()),
            "",
            "no fault, no comment"
        );
        let ts = num(epb, "ts_ns");
        assert!(
            ts + 1_000_000_000 >= before && ts <= after + 1_000_000_000,
            "{ts} not near {before}..{after}"
        );
        assert!(ts + 50_000_000 >= last_ts, "records in capture order");
        last_ts = last_ts.max(ts);
        seen.entry(&epb["data"]).or_default().push((ifx, dir));
    }
    for (data, copies) in &seen {
        let mut inbound = [0u32; 2];
        let mut outbound = [0u32; 2];
        for &(ifx, dir) in copies {
            if dir == 1 {
                inbound[ifx as usize] += 1;
            } else {
                outbound[ifx as usize] += 1;
            }
        }
        assert_eq!(
            (inbound[0], inbound[1]),
            (outbound[1], outbound[0]),
            "in on one port, out on the other, as often: {copies:?} {}",
            &data[..40.min(data.len())]
        );
    }
    let inbound_on = |i: u64| {
        epbs.iter()
            .filter(|e| num(e, "if") == i && num(e, "flags") == 1)
            .count() as u64
    };
    assert_eq!(
        inbound_on(0),
        rx[0],
        "every frame port 0 received, inbound on p0"
    );
    assert_eq!(inbound_on(1), rx[1]);

    // Request before reply: each echo request is in (on p0) before its reply is in (on p1).
    for seq in 1..=5 {
        let at = |ty: &str, port: &str| -> f64 {
            rows.iter()
                .find(|r| {
                    r[0] == port
                        && direction(&r[1]) == 1
                        && r.get(4).map(String::as_str) == Some(ty)
                        && r.get(5).map(|s| s.trim()) == Some(&seq.to_string())
                })
                .unwrap_or_else(|| panic!("no ICMP type {ty} seq {seq} inbound on {port}"))[2]
                .parse()
                .unwrap()
        };
        assert!(
            at("8", "p0") <= at("0", "p1"),
            "request {seq} before its reply"
        );
    }

    let info = clean("capinfos", &[file]);
    assert!(info.contains("Number of interfaces in file: 2"), "{info}");
    assert!(
        info.contains("Name = p0") && info.contains("Name = p1"),
        "{info}"
    );
    let isbs = blocks(&all, "isb");
    assert_eq!(isbs.len(), 2);
    assert_eq!(num(isbs[0], "ifrecv"), rx[0], "isb_ifrecv = if.stats rx");
    assert_eq!(num(isbs[1], "ifrecv"), rx[1]);
    assert_eq!(num(isbs[0], "ifdrop") + num(isbs[1], "ifdrop"), 0);
    let idbs = blocks(&all, "idb");
    assert_eq!(idbs[0]["hardware"], "driver veth");
    assert_eq!(idbs[0]["mac"], mac_text(P0_MAC));
    assert_eq!(idbs[1]["mac"], mac_text(P1_MAC));
    // Every other reader reads it without a word.
    clean("tcpdump", &["-nn", "-r", file]);
    let pcap = dir.path().join("back.pcap");
    clean("editcap", &["-F", "pcap", file, pcap.to_str().unwrap()]);
}

#[test]
fn frames_fault_injection_flipped_or_duplicated_carry_a_comment() {
    let lab = Lab::bridge("ngfault");
    let mut eng = lab.start_engine("ngfault");
    eng.ok("0 tap.rx.enable 1 tap.tx.enable 0 fault.enable 100000 0 fault.flip.probability");
    let dir = tempfile::tempdir().unwrap();
    let s0 = lab.packet_socket(&lab.h1, "e0");
    let s1 = lab.packet_socket(&lab.h2, "e1");
    let frames: Vec<Vec<u8>> = (0..50).map(|i| frame(E1_MAC, E0_MAC, &[], i, 80)).collect();

    let flip = dir.path().join("flip.pcapng");
    let flip = flip.to_str().unwrap();
    let collect = Collect::start(&eng.queue_name, flip);
    s0.send_all(&frames);
    assert_eq!(s1.collect(frames.len(), QUIET).len(), frames.len());
    collect.stop();
    let epbs = dump(flip)
        .into_iter()
        .filter(|b| b["block"] == "epb")
        .collect::<Vec<_>>();
    assert_eq!(epbs.len(), 100);
    for e in &epbs {
        let expect = if num(e, "flags") == 2 {
            "fault: bitflip"
        } else {
            "null"
        };
        assert_eq!(
            e.get("comment").map(String::as_str).unwrap_or("null"),
            expect,
            "{e:?}"
        );
    }
    let rows = tshark_rows(flip);
    assert_eq!(
        rows.iter()
            .filter(|r| r.get(3).map(String::as_str) == Some("fault: bitflip"))
            .count(),
        50
    );

    eng.ok("0 0 fault.flip.probability 100000 0 fault.dup.probability");
    let dup = dir.path().join("dup.pcapng");
    let dup = dup.to_str().unwrap();
    let collect = Collect::start(&eng.queue_name, dup);
    s0.send_all(&frames);
    assert_eq!(s1.collect(2 * frames.len(), QUIET).len(), 2 * frames.len());
    collect.stop();
    let epbs = dump(dup)
        .into_iter()
        .filter(|b| b["block"] == "epb")
        .collect::<Vec<_>>();
    let out: Vec<_> = epbs.iter().filter(|e| num(e, "flags") == 2).collect();
    assert_eq!(out.len(), 100, "each frame out twice");
    let marked: Vec<_> = out
        .iter()
        .filter(|e| e.get("comment").map(String::as_str) == Some("fault: duplicate"))
        .collect();
    assert_eq!(marked.len(), 50, "the copies, and only they");
    for pair in out.chunks(2) {
        assert_eq!(
            pair[0]["data"], pair[1]["data"],
            "a copy follows its original"
        );
        assert_eq!(pair[0].get("comment").map(String::as_str), Some("null"));
    }
}

#[test]
fn statistics_blocks_equal_if_stats_rx_and_the_queue_full_of_each_port() {
    let lab = Lab::bridge("ngisb");
    let mut config = ethertap::ixdp::EngineConfig::new(vec!["p0".into(), "p1".into()]);
    let queue = format!("et-ngisb-{}", std::process::id());
    config.queue_name = Some(queue.clone());
    config.layout.slots = 64;
    let mut eng = lab.start_engine_with(config);
    eng.ok("0 tap.rx.enable 1 tap.rx.enable if.stats.reset");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("isb.pcapng");
    let file = file.to_str().unwrap();
    let collect = Collect::start(&queue, file);
    let pid = collect.pid();
    // collect stopped: 64 slots fill and the rest of what both ports receive is `full`.
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let s0 = lab.packet_socket(&lab.h1, "e0");
    let s1 = lab.packet_socket(&lab.h2, "e1");
    s0.send_all(
        &(0..300)
            .map(|i| frame(E1_MAC, E0_MAC, &[], i, 64))
            .collect::<Vec<_>>(),
    );
    s1.send_all(
        &(0..100)
            .map(|i| frame(E0_MAC, E1_MAC, &[], i, 64))
            .collect::<Vec<_>>(),
    );
    // Every frame has been put in or refused before collect goes on.
    let taken = || {
        let st = ethertap::pqueue::Queue::open_existing(&queue)
            .and_then(|mut q| q.status())
            .unwrap();
        st.inserted + st.full
    };
    assert!(
        wait_for(Duration::from_secs(20), || taken() >= 400),
        "the engine tapped {} of 400 frames",
        taken()
    );
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    collect.stop();
    let q = ethertap::pqueue::Queue::open_existing(&queue).unwrap();
    let all = dump(file);
    let isbs = blocks(&all, "isb");
    assert_eq!(isbs.len(), 2);
    let mut full = 0;
    for (i, isb) in isbs.iter().enumerate() {
        assert_eq!(num(isb, "ifrecv"), eng.stat(i, "rx"), "port {i}");
        assert_eq!(num(isb, "ifdrop"), q.if_counts(i).full, "port {i}");
        full += num(isb, "ifdrop");
    }
    let status = eng.ok("tap.queue.status");
    assert!(
        status.contains(&format!("  full                  {full}\n")),
        "{status}"
    );
    assert!(
        full > 0 && num(isbs[0], "ifdrop") > 0 && num(isbs[1], "ifdrop") > 0,
        "both ports overflowed"
    );
    assert_eq!(blocks(&all, "epb").len() as u64 + full, 400);
}
