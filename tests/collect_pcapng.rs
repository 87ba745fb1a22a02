//! `collect --pcapng` end to end on a queue this test feeds as the engine would (the lab test
//! with the real engine is in tests/engine_pcapng.rs): interfaces named from the segment,
//! directions, capture times, fault comments, statistics blocks, rotation and stdout, read
//! back by tshark, capinfos, tcpdump, editcap and an independent Python reader.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod readers;
mod scratch;
use readers::{blocks, clean, dump, num};
use scratch::Lab;

use ethertap::pqueue::{now_ns, testgen, Direction, InterfaceDesc, Layout, Marks, Producer, Tag};

const COLLECT: &str = env!("CARGO_BIN_EXE_collect");

fn ports() -> [InterfaceDesc; 2] {
    [
        InterfaceDesc {
            name: "port-a".into(),
            driver: "veth".into(),
            mac: Some([2, 0x77, 0, 0, 1, 0]),
            mtu: 1500,
            speed_mbps: 10_000,
        },
        InterfaceDesc {
            name: "port-b".into(),
            driver: "veth".into(),
            mac: Some([2, 0x77, 0, 0, 1, 1]),
            mtu: 1500,
            speed_mbps: 0,
        },
    ]
}

/// An "engine" on the lab's queue: a fresh segment, both ports described.
fn engine(lab: &Lab, slots: u32) -> Producer {
    let p = Producer::open(
        &lab.queue,
        Layout {
            slots,
            ..Layout::default()
        },
    )
    .unwrap();
    for (i, d) in ports().iter().enumerate() {
        p.describe_interface(i, d);
    }
    p
}

fn push(p: &Producer, seq: u64, ifindex: u8, dir: Direction, marks: Marks) -> Vec<u8> {
    let mut f = testgen::frame(60 + (seq as usize * 131) % 1400, ifindex.into());
    testgen::set_seq(&mut f, seq);
    let tag = Tag {
        ifindex,
        dir,
        ts_ns: now_ns(),
        marks,
    };
    let start = Instant::now();
    while !p.push_to(0, &f, f.len() as u32, tag) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "queue stayed full"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
    f
}

fn collect(lab: &mut Lab, args: &[&str]) -> u32 {
    let child = Command::new(COLLECT)
        .args(["-q", &lab.queue, "-s"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {COLLECT}: {e}"));
    let pid = child.id();
    lab.children.push(child);
    pid
}

fn wait(lab: &mut Lab, pid: u32) -> (std::process::ExitStatus, String) {
    let child: &mut Child = lab.children.iter_mut().find(|c| c.id() == pid).unwrap();
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (st, err);
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "collect did not exit"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until collect has attached and reset the queue: a fixed pause was not enough on a
/// loaded machine, and frames pushed before the reset are thrown away (or, for the
/// statistics, counted before the file was opened).
fn settle(lab: &Lab, pid: u32) {
    scratch::wait_collect_ready(pid, &lab.queue);
}

#[test]
fn ports_directions_times_and_marks_are_in_the_file_and_every_reader_agrees() {
    let mut lab = Lab::new("ng-ports");
    let p = engine(&lab, 4096);
    let out = lab.dir.join("cap.pcapng");
    let out = out.to_str().unwrap().to_string();
    let pid = collect(&mut lab, &["-p", "8", &out]);
    settle(&lab, pid);
    let before = now_ns();
    let plan = [
        (0u8, Direction::Rx, Marks::NONE),
        (1, Direction::Tx, Marks::NONE),
        (1, Direction::Rx, Marks::NONE),
        (0, Direction::Tx, Marks::BITFLIP),
        (0, Direction::Tx, Marks::DUPLICATE),
        (0, Direction::Tx, Marks::BITFLIP.union(Marks::DUPLICATE)),
        (1, Direction::Tx, Marks::NONE),
        (0, Direction::Rx, Marks::NONE),
    ];
    let sent: Vec<Vec<u8>> = plan
        .iter()
        .enumerate()
        .map(|(i, &(ifx, dir, marks))| push(&p, i as u64, ifx, dir, marks))
        .collect();
    let (st, err) = wait(&mut lab, pid);
    assert!(st.success(), "collect: {err}");
    let after = now_ns();

    // tshark: interface names, directions, comments, in order, bytes intact.
    let fields = clean(
        "tshark",
        &[
            "-r",
            &out,
            "-T",
            "fields",
            "-e",
            "frame.interface_id",
            "-e",
            "frame.interface_name",
            "-e",
            "frame.packet_flags_direction",
            "-e",
            "frame.comment",
            "-e",
            "frame.len",
        ],
    );
    let rows: Vec<Vec<&str>> = fields.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), plan.len(), "{fields}");
    for (row, &(ifx, dir, marks)) in rows.iter().zip(&plan) {
        assert_eq!(row[0], ifx.to_string(), "{row:?}");
        assert_eq!(row[1], ["port-a", "port-b"][ifx as usize], "{row:?}");
        // tshark shows the direction field as 0x00000001 / 0x00000002 or as a number.
        let d = row[2].trim_start_matches("0x").trim_start_matches('0');
        assert_eq!(d, if dir == Direction::Rx { "1" } else { "2" }, "{row:?}");
        let comment = match (
            marks.contains(Marks::BITFLIP),
            marks.contains(Marks::DUPLICATE),
        ) {
            (false, false) => "",
            (true, false) => "fault: bitflip",
            (false, true) => "fault: duplicate",
            (true, true) => "fault: bitflip, duplicate",
        };
        assert_eq!(row.get(3).copied().unwrap_or(""), comment, "{row:?}");
    }

    // capinfos: two interfaces, by name.
    let info = clean("capinfos", &[&out]);
    assert!(
        info.contains("File type:           Wireshark/... - pcapng") || info.contains("pcapng"),
        "{info}"
    );
    assert!(info.contains("Number of interfaces in file: 2"), "{info}");
    assert!(
        info.contains("Name = port-a") && info.contains("Name = port-b"),
        "{info}"
    );

    // The independent reader: framing, ids, resolution, timestamps, bytes, statistics.
    let all = dump(&out);
    let shb = blocks(&all, "shb");
    assert_eq!(shb.len(), 1);
    assert!(
        shb[0]["userappl"].starts_with("ethertap collect "),
        "{:?}",
        shb[0]
    );
    assert!(shb[0]["os"].starts_with("Linux"), "{:?}", shb[0]);
    let idbs = blocks(&all, "idb");
    assert_eq!(idbs.len(), 2);
    for (i, idb) in idbs.iter().enumerate() {
        assert_eq!(num(idb, "tsresol"), 9);
        assert_eq!(idb["name"], ports()[i].name);
        assert_eq!(idb["hardware"], "driver veth");
        assert_eq!(idb["mac"], format!("02:77:00:00:01:{i:02x}"));
    }
    assert_eq!(num(idbs[0], "speed"), 10_000_000_000);
    assert!(!idbs[1].contains_key("speed"), "unknown speed is left out");
    let epbs = blocks(&all, "epb");
    let mut last = 0;
    for (epb, frame) in epbs.iter().zip(&sent) {
        let ts = num(epb, "ts_ns");
        assert!(
            ts >= before && ts <= after && ts >= last,
            "capture time {ts} outside {before}..{after}"
        );
        last = ts;
        assert_eq!(
            epb["data"],
            frame.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        assert_eq!(num(epb, "caplen"), frame.len() as u64);
        assert_eq!(num(epb, "origlen"), frame.len() as u64);
    }
    let isbs = blocks(&all, "isb");
    assert_eq!(isbs.len(), 2, "one statistics block per interface");
    for isb in &isbs {
        assert!(num(isb, "start_ns") <= num(isb, "end_ns"));
        assert!(num(isb, "end_ns") >= before && num(isb, "end_ns") <= after + 1_000_000_000);
    }

    // tcpdump and editcap read it; the round trip to classic pcap keeps every frame.
    let td = clean("tcpdump", &["-nn", "-r", &out]);
    let records = td.lines().filter(|l| !l.starts_with('\t')).count();
    assert_eq!(records, plan.len(), "{td}");
    let pcap = lab.dir.join("back.pcap");
    let pcap = pcap.to_str().unwrap();
    clean("editcap", &["-F", "pcap", &out, pcap]);
    let info = clean("capinfos", &["-c", "-M", pcap]);
    assert!(
        info.contains(&format!("Number of packets:   {}", plan.len())),
        "{info}"
    );
}

#[test]
fn statistics_count_what_the_interface_received_and_what_found_no_room() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let mut lab = Lab::new("ng-isb");
    let p = engine(&lab, 16);
    // Counted before collect starts: not part of its file.
    p.count_received(0, 7);
    let out = lab.dir.join("isb.pcapng").to_str().unwrap().to_string();
    let pid = collect(&mut lab, &[&out]);
    settle(&lab, pid);
    // While collect is stopped, 16 slots take 16 frames and the rest is refused: `full`,
    // counted on the interface each refused frame was tapped on.
    kill(Pid::from_raw(pid as i32), Signal::SIGSTOP).unwrap();
    p.count_received(0, 1000);
    p.count_received(1, 40);
    let mut refused = [0u64; 2];
    for seq in 0..60u64 {
        let ifx = (seq % 3 == 0) as u8;
        let f = testgen::frame(100, 1);
        let tag = Tag {
            ifindex: ifx,
            dir: Direction::Rx,
            ts_ns: now_ns(),
            marks: Marks::NONE,
        };
        if !p.push_to(0, &f, 100, tag) {
            refused[ifx as usize] += 1;
        }
    }
    kill(Pid::from_raw(pid as i32), Signal::SIGCONT).unwrap();
    let mut q = ethertap::pqueue::Queue::open_existing(&lab.queue).unwrap();
    let start = Instant::now();
    while q.status().unwrap().retrieved < 16 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "collect did not drain"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    kill(Pid::from_raw(pid as i32), Signal::SIGTERM).unwrap();
    let (st, err) = wait(&mut lab, pid);
    assert!(st.success(), "{err}");
    assert_eq!(refused[0] + refused[1], 60 - 16);
    assert!(
        refused[0] > 0 && refused[1] > 0,
        "both interfaces overflow: {refused:?}"
    );
    let all = dump(&out);
    assert_eq!(blocks(&all, "epb").len(), 16);
    let isbs = blocks(&all, "isb");
    assert_eq!(isbs.len(), 2);
    assert_eq!(
        num(isbs[0], "ifrecv"),
        1000,
        "counted while the file was open"
    );
    assert_eq!(num(isbs[1], "ifrecv"), 40);
    for (i, isb) in isbs.iter().enumerate() {
        assert_eq!(num(isb, "ifdrop"), refused[i], "interface {i}");
        assert_eq!(q.if_counts(i).full, refused[i]);
    }
}

#[test]
fn interfaces_are_described_when_collect_started_before_the_engine() {
    let mut lab = Lab::new("ng-lazy");
    let out = lab.dir.join("lazy.pcapng").to_str().unwrap().to_string();
    // collect first: it creates the queue with the default layout, nobody describes ports.
    let pid = collect(&mut lab, &["-p", "2", &out]);
    settle(&lab, pid);
    // The engine starts later (a new generation of the queue) and only port 1 sends.
    let p = engine(&lab, 4096);
    std::thread::sleep(Duration::from_millis(300));
    push(&p, 0, 1, Direction::Rx, Marks::NONE);
    push(&p, 1, 1, Direction::Tx, Marks::NONE);
    let (st, err) = wait(&mut lab, pid);
    assert!(st.success(), "{err}");
    let fields = clean(
        "tshark",
        &[
            "-r",
            &out,
            "-T",
            "fields",
            "-e",
            "frame.interface_id",
            "-e",
            "frame.interface_name",
        ],
    );
    assert_eq!(fields, "1\tport-b\n1\tport-b\n");
    let idbs: Vec<String> = blocks(&dump(&out), "idb")
        .iter()
        .map(|b| b["name"].clone())
        .collect();
    assert_eq!(idbs, ["port-a", "port-b"], "ids stay the engine's indices");
}

#[test]
fn rotated_pcapng_files_are_each_complete_and_stdout_works() {
    let mut lab = Lab::new("ng-rotate");
    let p = engine(&lab, 4096);
    let base = lab.dir.join("ring.pcapng").to_str().unwrap().to_string();
    let pid = collect(&mut lab, &["-p", "2000", "-C", "1", &base]);
    settle(&lab, pid);
    for seq in 0..2000 {
        push(&p, seq, (seq % 2) as u8, Direction::Rx, Marks::NONE);
    }
    let (st, err) = wait(&mut lab, pid);
    assert!(st.success(), "{err}");
    let mut files: Vec<_> = std::fs::read_dir(&lab.dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("ring.pcapng"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 2,
        "-C 1 rotates 2000 frames of 60..1460 bytes: {files:?}"
    );
    let mut total = 0;
    for f in &files {
        let f = f.to_str().unwrap();
        let all = dump(f);
        assert_eq!(blocks(&all, "shb").len(), 1, "{f}");
        assert_eq!(
            blocks(&all, "idb").len(),
            2,
            "{f}: both ports described in every file"
        );
        assert_eq!(
            blocks(&all, "isb").len(),
            2,
            "{f}: statistics at every close"
        );
        total += blocks(&all, "epb").len();
        clean("capinfos", &[f]);
    }
    assert_eq!(total, 2000);

    // `-` with --pcapng: a pipe reader gets a pcapng stream.
    let mut child = Command::new(COLLECT)
        .args(["-q", &lab.queue, "-s", "-p", "3", "--pcapng", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    settle(&lab, child.id());
    for seq in 0..3 {
        push(&p, seq, 0, Direction::Tx, Marks::NONE);
    }
    let mut bytes = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    assert!(child.wait().unwrap().success());
    let piped = lab.dir.join("piped.bin");
    std::fs::write(&piped, &bytes).unwrap();
    assert_eq!(
        &bytes[..4],
        &[0x0a, 0x0d, 0x0d, 0x0a],
        "a section header first"
    );
    assert_eq!(blocks(&dump(piped.to_str().unwrap()), "epb").len(), 3);
}
