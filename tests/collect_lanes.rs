//! Lanes on the queue side, with real collect processes: each claims a lane of its own (and
//! says which), gets exactly the frames hashed to it, and a lane nobody consumes fills up
//! and counts `full` without stopping the others; a killed collect's lane is taken over by
//! `collect --lane K`; `control collect status` names the lane. (The engine's side, flows
//! across the bridge into lanes, is tests/engine_fanout.rs.)

use std::io::Read;
use std::net::SocketAddrV4;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod scratch;
use scratch::Lab;

use ethertap::lab::frames;
use ethertap::pqueue::{now_ns, Direction, Layout, Marks, Producer, Queue, Tag};
use ethertap::wire::{lane_of, Mac};

const COLLECT: &str = env!("CARGO_BIN_EXE_collect");

/// A UDP frame of flow `flow` (its own source port), one direction or the other.
fn udp(flow: u16, back: bool, seq: u16) -> Vec<u8> {
    let a = SocketAddrV4::new([10, 0, 0, 1].into(), 10_000 + flow);
    let b = SocketAddrV4::new([10, 0, 0, 2].into(), 53);
    let (ma, mb) = (Mac([2, 0, 0, 0, 0, 1]), Mac([2, 0, 0, 0, 0, 2]));
    let payload = seq.to_be_bytes();
    if back {
        frames::udp4(ma, mb, &[], b, a, &payload).unwrap()
    } else {
        frames::udp4(mb, ma, &[], a, b, &payload).unwrap()
    }
}

fn push(p: &Producer, f: &[u8], lanes: u32) -> bool {
    let tag = Tag {
        ifindex: 0,
        dir: Direction::Rx,
        ts_ns: now_ns(),
        marks: Marks::NONE,
    };
    p.push_to(lane_of(f, lanes), f, f.len() as u32, tag)
}

fn start(lab: &mut Lab, args: &[&str]) -> (u32, u32) {
    let mut child = Command::new(COLLECT)
        .args(["-q", &lab.queue])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first line of stderr names the lane.
    let mut err = child.stderr.take().unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while err.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    let line = String::from_utf8(line).unwrap();
    let lane: u32 = line
        .strip_prefix("collect: consuming lane ")
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("collect did not name its lane: {line:?}"))
        .parse()
        .unwrap();
    let pid = child.id();
    lab.children.push(child);
    (pid, lane)
}

/// Waits until nothing waits in `lanes` of the lab's queue. collect ends at SIGTERM without
/// taking what still waits, and a fixed pause before it could be too short for a collect
/// slowed down by a loaded machine: its file would then miss frames.
fn wait_drained(lab: &Lab, lanes: &[u32]) {
    let mut q = Queue::open_existing(&lab.queue).unwrap();
    let start = Instant::now();
    loop {
        let st = q.status().unwrap();
        let left: Vec<(u32, u64)> = lanes
            .iter()
            .map(|&k| (k, st.lanes[k as usize].waiting))
            .filter(|&(_, n)| n > 0)
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "frames still waiting (lane, frames): {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap();
}

fn wait(lab: &mut Lab, pid: u32) {
    let child: &mut Child = lab.children.iter_mut().find(|c| c.id() == pid).unwrap();
    let st = child.wait().unwrap();
    assert!(
        st.success() || st.signal_number() == Some(9),
        "collect {pid}: {st}"
    );
}

use std::os::unix::process::ExitStatusExt;
trait SignalNumber {
    fn signal_number(&self) -> Option<i32>;
}
impl SignalNumber for std::process::ExitStatus {
    fn signal_number(&self) -> Option<i32> {
        self.signal()
    }
}

/// The first two payload bytes of every UDP record of a pcap file, with its source port.
fn records(file: &str) -> Vec<(u16, u16)> {
    let out = Command::new("tshark")
        .args([
            "-r",
            file,
            "-T",
            "fields",
            "-e",
            "udp.srcport",
            "-e",
            "udp.dstport",
            "-e",
            "udp.payload",
        ])
        .output()
        .expect("tshark is needed (apt-get install tshark)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let port: u16 = if f[0] == "53" {
                f[1].parse().unwrap()
            } else {
                f[0].parse().unwrap()
            };
            (port - 10_000, u16::from_str_radix(&f[2][..4], 16).unwrap())
        })
        .collect()
}

#[test]
fn each_collect_gets_its_lane_whole_and_an_unconsumed_lane_only_fills() {
    let mut lab = Lab::new("lanes-four");
    let lanes = 4;
    let p = Producer::open(
        &lab.queue,
        Layout {
            lanes,
            slots: 256,
            ..Layout::default()
        },
    )
    .unwrap();
    let dir = lab.dir.clone();
    let file = |k: u32| {
        dir.join(format!("lane{k}.pcap"))
            .to_str()
            .unwrap()
            .to_string()
    };
    // Three of four lanes consumed.
    let mut running = Vec::new();
    for _ in 0..3 {
        let out = dir.join(format!("tmp{}.pcap", running.len()));
        let (pid, lane) = start(&mut lab, &[out.to_str().unwrap()]);
        running.push((pid, lane, out));
    }
    let mut seen: Vec<u32> = running.iter().map(|r| r.1).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3, "three different lanes: {running:?}");
    let idle = (0..lanes).find(|k| !seen.contains(k)).unwrap();

    // 60 flows, both directions, 20 frames each way.
    let mut expect: Vec<Vec<(u16, u16)>> = vec![Vec::new(); lanes as usize];
    let mut refused_idle = 0;
    for seq in 0..20u16 {
        for flow in 0..60u16 {
            for back in [false, true] {
                let f = udp(flow, back, seq * 2 + back as u16);
                let lane = lane_of(&f, lanes);
                let start = Instant::now();
                loop {
                    if push(&p, &f, lanes) {
                        expect[lane as usize].push((flow, seq * 2 + back as u16));
                        break;
                    }
                    if lane == idle {
                        refused_idle += 1;
                        break;
                    }
                    assert!(
                        start.elapsed() < Duration::from_secs(10),
                        "lane {lane} stayed full"
                    );
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
    }
    assert!(refused_idle > 0, "the idle lane filled up");
    wait_drained(&lab, &seen);
    for (pid, _, _) in &running {
        signal(*pid, nix::sys::signal::Signal::SIGTERM);
    }
    for (pid, lane, out) in &running {
        wait(&mut lab, *pid);
        std::fs::rename(out, file(*lane)).unwrap();
    }
    let mut flows_in = vec![None; 60];
    for (_, lane, _) in &running {
        let got = records(&file(*lane));
        assert_eq!(
            got, expect[*lane as usize],
            "lane {lane} holds its frames in order"
        );
        for (flow, _) in got {
            assert!(
                flows_in[flow as usize].is_none_or(|l| l == *lane),
                "flow {flow} in two lanes"
            );
            flows_in[flow as usize] = Some(*lane);
        }
    }
    let mut q = Queue::open_existing(&lab.queue).unwrap();
    let st = q.status().unwrap();
    assert_eq!(st.lanes[idle as usize].full, refused_idle);
    assert_eq!(
        st.lanes[idle as usize].waiting, 256,
        "the idle lane is full, nothing more"
    );
    // (The consumed lanes may have been full for a moment too: the test then pushed again,
    // and every frame of theirs is in its file, above.)
}

#[test]
fn a_killed_collects_lane_is_taken_over_with_lane_k_and_others_go_on() {
    let mut lab = Lab::new("lanes-kill");
    let lanes = 2;
    let p = Producer::open(
        &lab.queue,
        Layout {
            lanes,
            ..Layout::default()
        },
    )
    .unwrap();
    let a_out = lab.dir.join("a.pcap");
    let b_out = lab.dir.join("b.pcap");
    let (a, lane_a) = start(&mut lab, &[a_out.to_str().unwrap()]);
    let (b, lane_b) = start(&mut lab, &[b_out.to_str().unwrap()]);
    assert_ne!(lane_a, lane_b);
    // A third one finds no free lane, and --lane of a live consumer is refused.
    let out = Command::new(COLLECT)
        .args(["-q", &lab.queue, "-s", "/dev/null"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("every one of the 2 lanes has a consumer")
    );
    let out = Command::new(COLLECT)
        .args([
            "-q",
            &lab.queue,
            "-s",
            "--lane",
            &lane_a.to_string(),
            "/dev/null",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("lane {lane_a} is consumed by PID {a}")),
        "{err}"
    );

    signal(a, nix::sys::signal::Signal::SIGKILL);
    wait(&mut lab, a);
    let frames: Vec<Vec<u8>> = (0..200).map(|i| udp(i % 50, i % 2 == 1, i)).collect();
    for f in &frames {
        assert!(push(&p, f, lanes));
    }
    let c_out = lab.dir.join("c.pcap");
    let (c, lane_c) = start(
        &mut lab,
        &["-n", "--lane", &lane_a.to_string(), c_out.to_str().unwrap()],
    );
    assert_eq!(lane_c, lane_a, "the dead collect's lane");
    wait_drained(&lab, &[lane_a, lane_b]);
    for pid in [b, c] {
        signal(pid, nix::sys::signal::Signal::SIGTERM);
        wait(&mut lab, pid);
    }
    let want = |lane: u32| frames.iter().filter(|f| lane_of(f, lanes) == lane).count();
    assert_eq!(
        records(c_out.to_str().unwrap()).len(),
        want(lane_a),
        "the taken-over lane goes on"
    );
    assert_eq!(
        records(b_out.to_str().unwrap()).len(),
        want(lane_b),
        "the other lane never noticed"
    );
}

#[test]
fn control_collect_status_names_the_lane_of_a_background_collect() {
    let lab = Lab::new("lanes-ctl");
    let _p = Producer::open(
        &lab.queue,
        Layout {
            lanes: 3,
            ..Layout::default()
        },
    )
    .unwrap();
    let run = lab.dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    let out = lab.dir.join("bg.pcap");
    let st = Command::new(COLLECT)
        .env("ETHERTAP_RUN_DIR", &run)
        .args(["-q", &lab.queue, "-d", "--id", "lanetest", "--lane", "2"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let control = |action: &str| {
        Command::new(env!("CARGO_BIN_EXE_control"))
            .env("ETHERTAP_RUN_DIR", &run)
            .args(["lanetest", action])
            .output()
            .unwrap()
    };
    let status = control("status");
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains(&format!("lane 2 of 3 of packet queue {}", lab.queue)),
        "{text}"
    );
    assert!(control("stop").status.success());
}
