//! `collect` end to end: frames put into a queue come out in pcap files that tshark reads
//! back with the same bytes.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod scratch;
use scratch::Lab;

use ethertap::pqueue::{queue_path, testgen, Direction, Layout, Producer};

const COLLECT: &str = env!("CARGO_BIN_EXE_collect");

impl Lab {
    fn file(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_string()
    }

    fn collect(&mut self, args: &[&str], stdout: Stdio) -> &mut Child {
        let child = Command::new(COLLECT)
            .args(["-q", &self.queue])
            .args(args)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {COLLECT}: {e}"));
        self.children.push(child);
        self.children.last_mut().unwrap()
    }
}

/// Frame number `seq` of the test stream: sizes vary from 60 to 1514 bytes.
fn frame(seq: u64) -> Vec<u8> {
    let size = 60 + (seq as usize * 97) % 1455;
    let mut f = testgen::frame(size, 3);
    testgen::set_seq(&mut f, seq);
    f
}

fn push_frames(p: &Producer, seqs: std::ops::Range<u64>, ts_ns: u64) {
    for s in seqs {
        let f = frame(s);
        let start = Instant::now();
        while !p.push(&f, 0, Direction::Rx, ts_ns + s) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "queue stayed full"
            );
            std::thread::sleep(Duration::from_micros(100));
        }
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> (std::process::ExitStatus, String) {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                e.read_to_string(&mut err).unwrap();
            }
            return (st, err);
        }
        assert!(
            start.elapsed() < limit,
            "collect (pid {}) did not exit",
            child.id()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn tshark(args: &[&str]) -> Output {
    Command::new("tshark")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("tshark is needed for this test (apt-get install tshark): {e}"))
}

/// tshark's view of a pcap file: (frame.len, frame.cap_len, eth.src, eth.type, payload hex).
fn tshark_frames(file: &str) -> Vec<(usize, usize, String, String)> {
    let out = tshark(&[
        "-r",
        file,
        "-T",
        "fields",
        "-e",
        "frame.len",
        "-e",
        "frame.cap_len",
        "-e",
        "eth.src",
        "-e",
        "data",
    ]);
    assert!(
        out.status.success(),
        "tshark -r {file} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("cut short") && !err.contains("appears to be damaged"),
        "tshark: {err}"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].to_string(),
                f.get(3).unwrap_or(&"").to_string(),
            )
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Parse a classic pcap file by hand: pcap-file's reader refuses records whose original
/// length exceeds the snap length, which is exactly what --snaplen produces.
struct Pcap {
    nano: bool,
    snaplen: u32,
    linktype: u32,
    packets: Vec<(Duration, u32, Vec<u8>)>,
}

fn read_pcap(path: &str) -> Pcap {
    let b = std::fs::read(path).unwrap();
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let nano = match u32_at(0) {
        0xa1b2c3d4 => false,
        0xa1b23c4d => true,
        m => panic!("{path}: magic {m:#x}"),
    };
    let mut packets = vec![];
    let mut o = 24;
    while o < b.len() {
        assert!(o + 16 <= b.len(), "{path}: record header cut short");
        let (sec, frac, incl, orig) = (u32_at(o), u32_at(o + 4), u32_at(o + 8), u32_at(o + 12));
        let end = o + 16 + incl as usize;
        assert!(end <= b.len(), "{path}: record data cut short");
        let ts = Duration::from_secs(sec as u64)
            + if nano {
                Duration::from_nanos(frac as u64)
            } else {
                Duration::from_micros(frac as u64)
            };
        packets.push((ts, orig, b[o + 16..end].to_vec()));
        o = end;
    }
    Pcap {
        nano,
        snaplen: u32_at(16),
        linktype: u32_at(20),
        packets,
    }
}

#[test]
fn plimit_writes_exactly_n_packets_with_the_bytes_put_in() {
    let mut lab = Lab::new("collect-plimit");
    let p = Producer::open(&lab.queue, Layout::default()).unwrap();
    push_frames(&p, 0..1500, 0);
    let out = lab.file("sample.pcap");
    let child = lab.collect(&["-n", "-s", "-p", "1000", &out], Stdio::null());
    let (st, err) = wait_exit(child, Duration::from_secs(30));
    assert!(st.success(), "collect failed: {err}");
    let frames = tshark_frames(&out);
    assert_eq!(frames.len(), 1000);
    for (s, (len, cap, src, data)) in frames.iter().enumerate() {
        let f = frame(s as u64);
        assert_eq!((*len, *cap), (f.len(), f.len()), "frame {s}");
        assert_eq!(src, "02:50:51:00:00:03");
        assert_eq!(*data, hex(&f[14..]), "bytes of frame {s}");
    }
    let pcap = read_pcap(&out);
    assert_eq!(pcap.linktype, 1, "Ethernet");
    assert!(!pcap.nano);
    assert_eq!(pcap.packets.len(), 1000);
    for (s, (_, orig, data)) in pcap.packets.iter().enumerate() {
        assert_eq!(*data, frame(s as u64));
        assert_eq!(*orig as usize, data.len());
    }
    // The other 500 are still waiting for the next consumer.
    let mut q = ethertap::pqueue::Queue::attach(&lab.queue).unwrap();
    assert_eq!(q.status().unwrap().waiting(), 500);
}

#[test]
fn silent_stdout_pipes_into_tshark() {
    let mut lab = Lab::new("collect-pipe");
    let p = Producer::open(&lab.queue, Layout::default()).unwrap();
    push_frames(&p, 0..200, 0);
    let child = lab.collect(&["-n", "--silent", "-p", "200", "-"], Stdio::piped());
    let stdout = child.stdout.take().unwrap();
    let ts = Command::new("tshark")
        .args(["-r", "-", "-T", "fields", "-e", "frame.len"])
        .stdin(stdout)
        .output()
        .expect("tshark is needed for this test");
    let (st, err) = wait_exit(lab.children.last_mut().unwrap(), Duration::from_secs(30));
    assert!(st.success(), "{err}");
    assert!(err.is_empty(), "--silent printed: {err}");
    assert!(
        ts.status.success(),
        "{}",
        String::from_utf8_lossy(&ts.stderr)
    );
    let lens: Vec<usize> = String::from_utf8_lossy(&ts.stdout)
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let expect: Vec<usize> = (0..200).map(|s| frame(s).len()).collect();
    assert_eq!(lens, expect);
}

#[test]
fn stdout_is_flushed_promptly_for_a_pipe_reader() {
    let mut lab = Lab::new("collect-flush");
    let p = Producer::open(&lab.queue, Layout::default()).unwrap();
    let child = lab.collect(&["-n", "-s", "-"], Stdio::piped());
    let mut stdout = child.stdout.take().unwrap();
    push_frames(&p, 0..3, 0);
    // 24-byte file header + 3 records, while collect keeps running.
    let want = 24 + (0..3).map(|s| 16 + frame(s).len()).sum::<usize>();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; want];
        stdout.read_exact(&mut buf).map(|_| buf)
    });
    let start = Instant::now();
    while !reader.is_finished() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "packets not flushed to the pipe"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let buf = reader.join().unwrap().unwrap();
    assert_eq!(&buf[24 + 16..24 + 16 + frame(0).len()], &frame(0)[..]);
    let child = lab.children.last_mut().unwrap();
    assert!(child.try_wait().unwrap().is_none(), "collect still runs");
}

#[test]
fn sigterm_leaves_a_whole_file() {
    let mut lab = Lab::new("collect-sigterm");
    let p = std::sync::Arc::new(Producer::open(&lab.queue, Layout::default()).unwrap());
    let out = lab.file("term.pcap");
    let pid = lab.collect(&["-s", &out], Stdio::null()).id() as i32;
    // Frames before its reset would not count; a fixed pause can be too short when loaded.
    scratch::wait_collect_ready(pid as u32, &lab.queue);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (p2, stop2) = (p.clone(), stop.clone());
    let feeder = std::thread::spawn(move || {
        let mut s = 0;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            p2.push(&frame(s), 0, Direction::Rx, 0);
            s += 1;
            if s % 64 == 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    });
    std::thread::sleep(Duration::from_millis(700));
    // SAFETY: kill(2) on the collect we started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let (st, err) = wait_exit(lab.children.last_mut().unwrap(), Duration::from_secs(10));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    feeder.join().unwrap();
    assert!(st.success(), "collect after SIGTERM: {st} {err}");
    let frames = tshark_frames(&out);
    assert!(frames.len() > 10, "only {} packets", frames.len());
    let packets = read_pcap(&out).packets;
    assert_eq!(packets.len(), frames.len());
    for (_, _, data) in &packets {
        let (_, seq) = testgen::parse(data).unwrap();
        assert_eq!(*data, frame(seq));
    }
}

#[test]
fn snaplen_nano_capture_time_and_byte_limit() {
    let mut lab = Lab::new("collect-options");
    let p = Producer::open(
        &lab.queue,
        Layout {
            slots: 4096,
            slot_size: 1024,
            ..Layout::default()
        },
    )
    .unwrap();
    let ts0 = 1_700_000_000_123_456_789u64;
    push_frames(&p, 0..100, ts0);
    let out = lab.file("opts.pcap");
    let child = lab.collect(
        &[
            "-n",
            "-s",
            "--snaplen",
            "100",
            "--nano",
            "--capture-time",
            "-b",
            "5000",
            &out,
        ],
        Stdio::null(),
    );
    let (st, err) = wait_exit(child, Duration::from_secs(30));
    assert!(st.success(), "{err}");
    let pcap = read_pcap(&out);
    assert_eq!(pcap.snaplen, 100);
    assert!(pcap.nano);
    let packets = pcap.packets;
    // Stops once 5000 bytes of packet data are written.
    let total: usize = packets.iter().map(|p| p.2.len()).sum();
    assert!((5000..5100).contains(&total), "{total} bytes");
    for (s, (ts, orig, data)) in packets.iter().enumerate() {
        let f = frame(s as u64);
        assert_eq!(*ts, Duration::from_nanos(ts0 + s as u64));
        // Cut to the 1024-byte slot by the queue, then to 100 by --snaplen.
        assert_eq!(*orig as usize, f.len());
        assert_eq!(*data, f[..f.len().min(100)]);
    }
    let frames = tshark_frames(&out);
    assert_eq!(frames.len(), packets.len());
    let big = frames
        .iter()
        .find(|f| f.0 > 1024)
        .expect("a frame longer than the slot");
    assert_eq!(big.1, 100);
}

#[test]
fn size_rotation_keeps_a_ring_of_files() {
    let mut lab = Lab::new("collect-rotate");
    let p = Producer::open(&lab.queue, Layout::default()).unwrap();
    let out = lab.file("ring.pcap");
    let child = lab.collect(
        &["-s", "-C", "1", "-W", "3", "-p", "5000", &out],
        Stdio::null(),
    );
    let pid = child.id();
    // Its reset at start would throw away frames pushed before it: wait for it, a fixed
    // pause can be too short on a loaded machine.
    scratch::wait_collect_ready(pid, &lab.queue);
    push_frames(&p, 0..5000, 0);
    let (st, err) = wait_exit(lab.children.last_mut().unwrap(), Duration::from_secs(30));
    assert!(st.success(), "collect {pid}: {err}");
    // ~4 MB of frames: files 0, 1, 2, then 0 and 1 again.
    let mut total = 0;
    for i in 0..3 {
        let name = format!("{out}{i}");
        let len = std::fs::metadata(&name).unwrap().len();
        assert!(len <= 1_000_000, "{name} is {len} bytes");
        total += tshark_frames(&name).len();
    }
    assert!(!Path::new(&format!("{out}3")).exists());
    assert!(total < 5000, "the first files were reused");
}

#[test]
fn time_rotation_starts_a_new_file_every_interval() {
    let mut lab = Lab::new("collect-rotate-time");
    let p = Producer::open(&lab.queue, Layout::default()).unwrap();
    let out = lab.file("timed.pcap");
    let pid = lab.collect(&["-s", "-G", "1", &out], Stdio::null()).id() as i32;
    // Its reset at start would throw away frames pushed before it: wait for it, a fixed
    // pause can be too short on a loaded machine.
    scratch::wait_collect_ready(pid as u32, &lab.queue);
    for s in 0..25 {
        push_frames(&p, s..s + 1, 0);
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: kill(2) on the collect we started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let (st, err) = wait_exit(lab.children.last_mut().unwrap(), Duration::from_secs(10));
    assert!(st.success(), "{err}");
    let names: Vec<String> = std::iter::once(out.clone())
        .chain((1..10).map(|i| format!("{out}{i}")))
        .filter(|n| Path::new(n).exists())
        .collect();
    assert!(names.len() >= 2, "files: {names:?}");
    let total: usize = names.iter().map(|n| tshark_frames(n).len()).sum();
    assert_eq!(total, 25, "every packet in exactly one file");
}

#[test]
fn bad_options_are_refused_with_a_reason() {
    let mut lab = Lab::new("collect-badopts");
    let child = lab.collect(&["-G", "5", "-"], Stdio::null());
    let (st, err) = wait_exit(child, Duration::from_secs(10));
    assert_eq!(st.code(), Some(2));
    assert!(err.contains("needs an output file name"), "{err}");
    let child = lab.collect(&["-d", "relative.pcap"], Stdio::null());
    let (st, err) = wait_exit(child, Duration::from_secs(10));
    assert_eq!(st.code(), Some(2));
    assert!(err.contains("absolute OUTPUT"), "{err}");
    let junk = format!("pqtest.collect-junk.{}", std::process::id());
    std::fs::write(queue_path(&junk), vec![1u8; 8192]).unwrap();
    let out = lab.file("x.pcap");
    let mut child = Command::new(COLLECT)
        .args(["-q", &junk, &out])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (st, err) = wait_exit(&mut child, Duration::from_secs(10));
    let kept = std::fs::read(queue_path(&junk)).unwrap();
    let _ = std::fs::remove_file(queue_path(&junk));
    assert_eq!(st.code(), Some(1));
    assert!(err.contains("is not a packet queue"), "{err}");
    assert_eq!(kept, vec![1u8; 8192], "never overwritten");
}
