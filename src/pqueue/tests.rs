//! Single-process tests of the queue protocol (the multi-process ones are in tests/).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::*;

/// A uniquely named queue removed when the test ends, pass or fail.
struct TestQueue(String);

impl TestQueue {
    fn new(test: &str) -> TestQueue {
        let name = format!("pqtest.{test}.{}", std::process::id());
        let _ = std::fs::remove_file(queue_path(&name));
        TestQueue(name)
    }
}

impl Drop for TestQueue {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(queue_path(&self.0));
    }
}

fn small() -> Layout {
    Layout {
        slots: 8,
        slot_size: 128,
        ..Layout::default()
    }
}

#[test]
fn push_pop_keeps_bytes_and_metadata() {
    let q = TestQueue::new("meta");
    let p = Producer::open(&q.0, small()).unwrap();
    let mut c = Consumer::attach(&q.0).unwrap();
    assert!(p.push(b"hello world, this is frame one", 1, Direction::Tx, 42));
    let long = vec![0xabu8; 300];
    assert!(p.push(&long, 0, Direction::Rx, 43));
    let mut b = Batch::new();
    assert_eq!(c.try_pop(&mut b, 10).unwrap(), 2);
    let a = b.get(0).unwrap();
    assert_eq!(a.data, b"hello world, this is frame one");
    assert_eq!(
        (a.orig_len, a.ifindex, a.dir, a.ts_ns),
        (30, 1, Direction::Tx, 42)
    );
    let t = b.get(1).unwrap();
    assert_eq!(t.data.len(), 128, "truncated to the slot size");
    assert_eq!(t.orig_len, 300);
    assert_eq!(t.dir, Direction::Rx);
    assert_eq!(c.try_pop(&mut b, 10).unwrap(), 0);
}

#[test]
fn full_queue_counts_and_loses_nothing_inserted() {
    let q = TestQueue::new("full");
    let p = Producer::open(&q.0, small()).unwrap();
    let mut c = Consumer::attach(&q.0).unwrap();
    let mut accepted = vec![];
    for i in 0..20u8 {
        if p.push(&[i; 64], 0, Direction::Rx, 0) {
            accepted.push(i);
        }
    }
    assert_eq!(accepted, (0..8).collect::<Vec<_>>());
    let s = c.status().unwrap();
    assert_eq!((s.inserted, s.full, s.retrieved), (8, 12, 0));
    let mut b = Batch::new();
    assert_eq!(c.try_pop(&mut b, 100).unwrap(), 8);
    let got: Vec<u8> = b.iter().map(|p| p.data[0]).collect();
    assert_eq!(got, accepted);
    assert!(
        p.push(&[99; 64], 0, Direction::Rx, 0),
        "room again after draining"
    );
    let s = c.status().unwrap();
    assert_eq!((s.inserted, s.full, s.retrieved), (9, 12, 8));
}

#[test]
fn status_format_matches_the_spec() {
    let q = TestQueue::new("status");
    let p = Producer::open(&q.0, small()).unwrap();
    let mut c = Consumer::attach(&q.0).unwrap();
    for _ in 0..11 {
        p.push(&[0; 60], 0, Direction::Rx, 0);
    }
    let mut b = Batch::new();
    c.try_pop(&mut b, 3).unwrap();
    let text = c.status().unwrap().format();
    let expect = format!(
        "packet queue {}\n  head                  0\n  tail                  3\n  inserted              8\n  full                  3\n  retrieved             3\n",
        q.0
    );
    assert_eq!(text, expect);
}

#[test]
fn reset_empties_and_zeroes() {
    let q = TestQueue::new("reset");
    let p = Producer::open(&q.0, small()).unwrap();
    let mut c = Consumer::attach(&q.0).unwrap();
    for _ in 0..10 {
        p.push(&[1; 60], 0, Direction::Rx, 0);
    }
    assert_eq!(c.reset().unwrap(), 8);
    let s = c.status().unwrap();
    assert_eq!((s.inserted, s.full, s.retrieved, s.waiting()), (0, 0, 0, 0));
    assert!(p.push(&[2; 60], 0, Direction::Rx, 0));
    let mut b = Batch::new();
    assert_eq!(c.try_pop(&mut b, 10).unwrap(), 1);
    assert_eq!(b.get(0).unwrap().data[0], 2);
}

#[test]
fn refuses_a_file_that_is_not_a_queue_and_leaves_it_alone() {
    let q = TestQueue::new("notaqueue");
    let junk = vec![7u8; 10000];
    std::fs::write(queue_path(&q.0), &junk).unwrap();
    let e = Consumer::attach(&q.0).err().unwrap().to_string();
    assert!(e.contains("is not a packet queue (bad magic)"), "{e}");
    let e = Producer::open(&q.0, Layout::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("is not a packet queue"), "{e}");
    std::fs::write(queue_path(&q.0), b"short").unwrap();
    let e = Queue::attach(&q.0).err().unwrap().to_string();
    assert!(e.contains("too short"), "{e}");
    assert_eq!(std::fs::read(queue_path(&q.0)).unwrap(), b"short");
}

#[test]
fn rejects_bad_names_and_layouts() {
    assert!(matches!(Queue::attach("a/b"), Err(Error::BadName(_))));
    assert!(matches!(Queue::attach(".hidden"), Err(Error::BadName(_))));
    let q = TestQueue::new("layout");
    let e = Producer::open(
        &q.0,
        Layout {
            slots: 1000,
            slot_size: 2048,
            ..Layout::default()
        },
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("power of two"), "{e}");
}

#[test]
fn created_mode_0600_with_header() {
    use std::os::unix::fs::PermissionsExt;
    let q = TestQueue::new("mode");
    let _c = Consumer::attach(&q.0).unwrap();
    let md = std::fs::metadata(queue_path(&q.0)).unwrap();
    assert_eq!(md.permissions().mode() & 0o777, 0o600);
    // A page of header, a page for the lane header, then the slots.
    let expect = 8192 + 4096 * (2048 + 32usize).div_ceil(64) * 64;
    assert_eq!(md.len() as usize, expect);
}

#[test]
fn reopen_by_the_daemon_bumps_generation_and_consumers_follow() {
    let q = TestQueue::new("generation");
    let p1 = Producer::open(&q.0, small()).unwrap();
    let mut c = Consumer::attach(&q.0).unwrap();
    let g1 = c.queue().generation();
    p1.push(&[1; 60], 0, Direction::Rx, 0);
    let big = Layout {
        slots: 16,
        slot_size: 256,
        ..Layout::default()
    };
    let p2 = Producer::open(&q.0, big).unwrap();
    assert!(p2.push(&[2; 200], 0, Direction::Rx, 0));
    let mut b = Batch::new();
    assert_eq!(c.try_pop(&mut b, 10).unwrap(), 1);
    assert_eq!(
        b.get(0).unwrap().data,
        &[2; 200][..],
        "the old packet went with the old generation"
    );
    assert_eq!(c.queue().generation(), g1 + 1);
    assert_eq!(c.layout(), big);
}

#[test]
fn a_leaseholder_that_dies_before_committing_does_not_wedge() {
    let q = TestQueue::new("orphan");
    let p = Producer::open(&q.0, small()).unwrap();
    let mut c = Consumer::attach(&q.0).unwrap();
    for i in 0..8u8 {
        assert!(p.push(&[i; 60], 0, Direction::Rx, 0));
    }
    // A consumer that leased slots 0..3 (moved the tail) and was killed before its CASes.
    let seg = segment::Segment::open_existing(&q.0).unwrap();
    seg.ring(0).header().tail.0.store(3, Ordering::Release);
    let mut seen = vec![];
    let mut b = Batch::new();
    c.try_pop(&mut b, 100).unwrap();
    seen.extend(b.iter().map(|p| p.data[0]));
    assert_eq!(seen, vec![3, 4, 5, 6, 7]);
    // The producers are one lap away from the abandoned slots: full...
    assert!(!p.push(&[8; 60], 0, Direction::Rx, 0));
    // ...until a consumer that runs dry has seen them abandoned in two sweeps.
    let start = std::time::Instant::now();
    while seen.len() < 8 && start.elapsed() < Duration::from_secs(10) {
        c.pop_wait(&mut b, 100, Duration::from_millis(5)).unwrap();
        seen.extend(b.iter().map(|p| p.data[0]));
    }
    seen.sort();
    assert_eq!(seen, (0..8).collect::<Vec<_>>());
    assert!(p.push(&[8; 60], 0, Direction::Rx, 0));
}

#[test]
fn sleeping_consumer_is_woken_by_a_push() {
    let q = TestQueue::new("wake");
    let p = Arc::new(Producer::open(&q.0, small()).unwrap());
    let mut c = Consumer::attach(&q.0).unwrap();
    let p2 = p.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        p2.push(&[5; 60], 0, Direction::Rx, 0)
    });
    let start = std::time::Instant::now();
    let mut b = Batch::new();
    let mut n = 0;
    while n == 0 && start.elapsed() < Duration::from_secs(20) {
        n = c.pop_wait(&mut b, 4, Duration::from_secs(10)).unwrap();
    }
    assert!(t.join().unwrap());
    assert_eq!(n, 1);
    // Woken by the post, not by the 10 s timeout.
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn threads_share_a_producer_and_every_frame_arrives_once() {
    let q = TestQueue::new("threads");
    let p = Arc::new(
        Producer::open(
            &q.0,
            Layout {
                slots: 256,
                slot_size: 128,
                ..Layout::default()
            },
        )
        .unwrap(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let per = 20_000u64;
    let workers: Vec<_> = (0..3u16)
        .map(|id| {
            let (p, stop) = (p.clone(), stop.clone());
            std::thread::spawn(move || {
                let cfg = testgen::GenConfig {
                    count: per,
                    size: 64,
                    rate: 0,
                    producer_id: id,
                    retry_full: true,
                    first_seq: 0,
                };
                testgen::produce(&p, &cfg, &stop)
            })
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let (name, stop) = (q.0.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut c = Consumer::attach(&name).unwrap();
                let mut out = Vec::new();
                testgen::consume(&mut c, &mut out, 32, 0, &stop).map(|r| (r, out))
            })
        })
        .collect();
    for w in workers {
        assert_eq!(w.join().unwrap().inserted, per);
    }
    let mut probe = Queue::attach(&q.0).unwrap();
    while probe.status().unwrap().retrieved < 3 * per {
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    let mut all = vec![];
    for c in consumers {
        let (r, out) = c.join().unwrap().unwrap();
        assert_eq!(r.bad, 0);
        all.extend(
            out.chunks(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap())),
        );
    }
    all.sort_unstable();
    let mut expect: Vec<u64> = (0..3u16)
        .flat_map(|id| (0..per).map(move |s| testgen::record(id, s)))
        .collect();
    expect.sort_unstable();
    assert_eq!(all.len(), expect.len());
    assert!(all == expect, "every frame exactly once");
}

#[test]
fn producer_is_send_and_sync() {
    fn shared_by_threads<T: Send + Sync>() {}
    shared_by_threads::<Producer>();
    fn movable<T: Send>() {}
    movable::<Consumer>();
}

/// Overwrite `bytes` at `offset` of the queue file, as damage or another version would.
fn patch(name: &str, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(queue_path(name))
        .unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

#[test]
fn another_layout_version_or_a_wrong_size_is_refused_clearly() {
    let q = TestQueue::new("version");
    drop(Producer::open(&q.0, small()).unwrap());
    patch(&q.0, 8, &7u32.to_le_bytes());
    let e = Consumer::attach(&q.0).err().unwrap().to_string();
    assert!(
        e.contains("layout version 7, this program uses version 2"),
        "{e}"
    );
    // The daemon may replace an older queue of ours: that is the upgrade path.
    let p = Producer::open(&q.0, small()).unwrap();
    assert!(Consumer::attach(&q.0).is_ok());
    drop(p);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(queue_path(&q.0))
        .unwrap();
    f.set_len(4096 + 7 * 192).unwrap();
    let e = Queue::attach(&q.0).err().unwrap().to_string();
    assert!(e.contains("damaged packet queue header"), "{e}");
}

#[test]
fn reset_reinitialises_a_queue_whose_dead_producer_left_a_slot_half_written() {
    let q = TestQueue::new("deadproducer");
    let p = Producer::open(&q.0, small()).unwrap();
    assert!(p.push(&[1; 60], 0, Direction::Rx, 0));
    let gen = Queue::attach(&q.0).unwrap().generation();
    // A producer that claimed position 1 and died before publishing it...
    let seg = segment::Segment::open_existing(&q.0).unwrap();
    seg.ring(0).header().head.0.store(2, Ordering::Release);
    // ...belonging to a daemon that is gone.
    seg.header()
        .producer_pid
        .store(2_147_483_000, Ordering::Relaxed);
    drop(p);
    let mut c = Consumer::attach(&q.0).unwrap();
    let mut b = Batch::new();
    assert_eq!(c.try_pop(&mut b, 10).unwrap(), 1);
    assert_eq!(
        c.try_pop(&mut b, 10).unwrap(),
        0,
        "stuck at the half-written slot"
    );
    c.reset().unwrap();
    assert_eq!(c.queue().generation(), gen + 1);
    assert_eq!(c.layout(), small());
    let p = Producer::attach(&q.0).unwrap();
    assert!(p.push(&[2; 60], 0, Direction::Rx, 0));
    assert_eq!(c.try_pop(&mut b, 10).unwrap(), 1);
}

#[test]
fn fault_marks_and_cut_frames_keep_their_original_length() {
    let q = TestQueue::new("marks");
    let p = Producer::open(&q.0, small()).unwrap();
    let mut c = Consumer::attach(&q.0).unwrap();
    let tag = Tag {
        ifindex: 1,
        dir: Direction::Tx,
        ts_ns: 7,
        marks: Marks::BITFLIP.union(Marks::DUPLICATE),
    };
    assert!(p.push_to(0, &[5; 40], 1500, tag));
    let mut b = Batch::new();
    assert_eq!(c.try_pop(&mut b, 10).unwrap(), 1);
    let got = b.get(0).unwrap();
    assert_eq!((got.data.len(), got.orig_len), (40, 1500));
    assert!(got.marks.contains(Marks::BITFLIP) && got.marks.contains(Marks::DUPLICATE));
    assert_eq!((got.ifindex, got.dir, got.ts_ns), (1, Direction::Tx, 7));
    assert!(p.push(&[6; 40], 0, Direction::Rx, 8));
    c.try_pop(&mut b, 10).unwrap();
    assert!(b.get(0).unwrap().marks.is_empty());
}

#[test]
fn the_engine_describes_its_interfaces_and_counts_per_interface() {
    let q = TestQueue::new("ifdesc");
    let p = Producer::open(&q.0, small()).unwrap();
    let queue = Queue::attach(&q.0).unwrap();
    assert_eq!(queue.interface(0), None, "nothing described yet");
    let desc = InterfaceDesc {
        name: "a-very-long-interface-name".into(),
        driver: "veth".into(),
        mac: Some([2, 0, 0, 0, 0, 1]),
        mtu: 9000,
        speed_mbps: 10_000,
    };
    p.describe_interface(1, &desc);
    p.describe_interface(MAX_INTERFACES, &desc);
    let got = queue.interface(1).unwrap();
    assert_eq!(got.name, "a-very-long-int", "cut to 15 bytes");
    assert_eq!(
        (got.driver.as_str(), got.mac, got.mtu, got.speed_mbps),
        ("veth", desc.mac, 9000, 10_000)
    );
    assert_eq!(queue.interface(MAX_INTERFACES), None);
    p.describe_interface(
        0,
        &InterfaceDesc {
            name: "lo0".into(),
            ..Default::default()
        },
    );
    assert_eq!(queue.interface(0).unwrap().mac, None);
    p.count_received(1, 5);
    p.count_received(1, 2);
    p.count_received(99, 2);
    for i in 0..12u8 {
        p.push(&[i; 60], 1, Direction::Rx, 0);
    }
    assert_eq!(
        queue.if_counts(1),
        IfCounts {
            received: 7,
            full: 4
        }
    );
    assert_eq!(queue.if_counts(0), IfCounts::default());
    assert_eq!(
        queue.producer(),
        Some(std::process::id()),
        "we are the producer"
    );
}

#[test]
fn lanes_are_rings_of_their_own() {
    let q = TestQueue::new("lanes");
    let layout = Layout {
        lanes: 3,
        ..small()
    };
    let p = Producer::open(&q.0, layout).unwrap();
    let mut c = Consumer::attach(&q.0).unwrap();
    assert_eq!(c.layout().lanes, 3);
    let tag = |i: u8| Tag {
        ifindex: 0,
        dir: Direction::Rx,
        ts_ns: u64::from(i),
        marks: Marks::NONE,
    };
    // Lane 2 fills up on its own; the others still take frames.
    for i in 0..10u8 {
        p.push_to(2, &[i; 60], 60, tag(i));
    }
    assert!(p.push_to(0, &[100; 60], 60, tag(100)));
    assert!(p.push_to(1, &[101; 60], 60, tag(101)));
    let s = c.status().unwrap();
    assert_eq!((s.inserted, s.full), (10, 2));
    let mut b = Batch::new();
    let mut seen = vec![];
    while c.try_pop(&mut b, 4).unwrap() > 0 {
        seen.extend(b.iter().map(|p| p.data[0]));
    }
    seen.sort();
    assert_eq!(seen, [0, 1, 2, 3, 4, 5, 6, 7, 100, 101]);
    assert_eq!(c.status().unwrap().retrieved, 10);
    c.reset().unwrap();
    let s = c.status().unwrap();
    assert_eq!((s.inserted, s.full, s.retrieved), (0, 0, 0));
}

fn temporaries_of(name: &str) -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| f.starts_with(&format!(".{name}.tmp.")))
        .collect()
}

#[test]
fn a_planted_symlink_is_refused_at_once_and_nothing_is_left_behind() {
    let q = TestQueue::new("symlink");
    let target = format!("/dev/shm/{}.target", q.0);
    // Dangling: once this made every consumer spin forever.
    std::os::unix::fs::symlink(&target, queue_path(&q.0)).unwrap();
    let started = std::time::Instant::now();
    let e = Consumer::attach(&q.0).err().expect("refused").to_string();
    assert!(e.contains("symbolic link"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(1));
    let e = Producer::open(&q.0, small())
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("symbolic link"), "{e}");
    assert!(
        !std::path::Path::new(&target).exists(),
        "the link was never followed"
    );
    // Pointing at a real queue does not make it acceptable either.
    drop(Producer::open(&format!("{}.target", q.0), small()).unwrap());
    let e = Queue::attach(&q.0).err().expect("refused").to_string();
    assert!(e.contains("symbolic link"), "{e}");
    let _ = std::fs::remove_file(&target);
    assert!(
        temporaries_of(&q.0).is_empty(),
        "{:?}",
        temporaries_of(&q.0)
    );
    assert!(std::fs::symlink_metadata(queue_path(&q.0))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn a_queue_file_others_own_or_may_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let q = TestQueue::new("foreign");
    drop(Producer::open(&q.0, small()).unwrap());
    let path = queue_path(&q.0);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let e = Consumer::attach(&q.0).err().expect("refused").to_string();
    assert!(e.contains("others may write it (mode 0666)"), "{e}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(Consumer::attach(&q.0).is_ok());
    if nix::unistd::geteuid().is_root() {
        nix::unistd::chown(&path, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        let e = Consumer::attach(&q.0).err().expect("refused").to_string();
        assert!(e.contains("belongs to uid 65534"), "{e}");
        let e = Producer::open(&q.0, small())
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("belongs to uid 65534"), "{e}");
    }
}

#[test]
fn a_queue_a_live_engine_feeds_is_taken_only_when_asked_and_the_engine_notices() {
    let q = TestQueue::new("busy");
    let first = Producer::open(&q.0, small()).unwrap();
    // Make the queue look fed by another live process: pid 1, with its own start time.
    let seg = segment::Segment::open_existing(&q.0).unwrap();
    seg.header()
        .producer_start
        .store(crate::sys::start_time(1).unwrap(), Ordering::Relaxed);
    seg.header().producer_pid.store(1, Ordering::Release);
    let e = Producer::open(&q.0, small())
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("fed by the running engine PID 1") && e.contains("--take-over"),
        "{e}"
    );
    assert_eq!(first.replaced_by(), None);
    let second = Producer::open_with(&q.0, small(), true).unwrap();
    assert_eq!(first.replaced_by(), Some(std::process::id()));
    assert_eq!(second.replaced_by(), None);
    // A recycled pid (same number, another start time) is not a live engine.
    let seg = segment::Segment::open_existing(&q.0).unwrap();
    seg.header().producer_start.store(1, Ordering::Relaxed);
    seg.header().producer_pid.store(1, Ordering::Release);
    assert!(Producer::open(&q.0, small()).is_ok());
}

#[test]
fn stale_temporaries_of_dead_processes_are_removed() {
    let q = TestQueue::new("stale");
    let dead = format!("/dev/shm/.{}.tmp.2147483000.5", q.0);
    let alive = format!("/dev/shm/.{}.tmp.{}.6", q.0, std::process::id());
    std::fs::write(&dead, b"x").unwrap();
    std::fs::write(&alive, b"x").unwrap();
    drop(Producer::open(&q.0, small()).unwrap());
    assert!(!std::path::Path::new(&dead).exists());
    assert!(
        std::path::Path::new(&alive).exists(),
        "a live process's file stays"
    );
    std::fs::remove_file(&alive).unwrap();
    assert!(temporaries_of(&q.0).is_empty());
}

/// Makes lane `k` look claimed by another live process: pid 1, with its own start time.
fn claim_by_init(name: &str, k: u32) {
    let seg = segment::Segment::open_existing(name).unwrap();
    let claim = &seg.ring(k).header().claim.0;
    claim
        .start
        .store(crate::sys::start_time(1).unwrap(), Ordering::Relaxed);
    claim.pid.store(1, Ordering::Release);
}

#[test]
fn lanes_are_claimed_one_consumer_each_and_dead_claims_are_taken_over() {
    let q = TestQueue::new("claims");
    let layout = Layout {
        lanes: 3,
        ..small()
    };
    let p = Producer::open(&q.0, layout).unwrap();
    claim_by_init(&q.0, 0);
    let e = Consumer::attach_lane(&q.0, LaneChoice::Lane(0))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("lane 0 is consumed by PID 1"), "{e}");
    let e = Consumer::attach_lane(&q.0, LaneChoice::Lane(3))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("no lane 3") && e.contains("3 lane(s), 0 to 2"),
        "{e}"
    );
    let mut c = Consumer::attach_lane(&q.0, LaneChoice::Any).unwrap();
    assert_eq!(c.lane(), Some((1, 3)), "the first free lane");
    let tag = Tag {
        ifindex: 0,
        dir: Direction::Rx,
        ts_ns: 0,
        marks: Marks::NONE,
    };
    for k in 0..3 {
        assert!(p.push_to(k, &[k as u8; 60], 60, tag));
    }
    let mut b = Batch::new();
    assert_eq!(c.try_pop(&mut b, 10).unwrap(), 1);
    assert_eq!(b.get(0).unwrap().data[0], 1, "only its own lane");
    // A reset by a lane's consumer empties only that lane.
    assert!(p.push_to(1, &[1; 60], 60, tag));
    c.reset().unwrap();
    let queue = Queue::open_existing(&q.0).unwrap();
    let lanes = queue.lanes();
    assert_eq!(
        lanes.iter().map(|l| l.waiting).collect::<Vec<_>>(),
        [1, 0, 1]
    );
    assert_eq!(lanes[1].consumer, Some(std::process::id()));
    assert_eq!(lanes[0].consumer, Some(1));
    assert_eq!(lanes[2].consumer, None);
    let mut status = queue_status(&q.0);
    assert!(
        status.contains(
            "  lane 1                inserted 0, full 0, retrieved 0, waiting 0, consumer PID "
        ),
        "{status}"
    );
    assert!(
        status.contains(
            "  lane 2                inserted 1, full 0, retrieved 0, waiting 1, no consumer\n"
        ),
        "{status}"
    );
    drop(c);
    assert_eq!(queue.lanes()[1].consumer, None, "released on drop");
    // A claim whose process is gone (a recycled pid has another start time) is taken over.
    let seg = segment::Segment::open_existing(&q.0).unwrap();
    seg.ring(0)
        .header()
        .claim
        .0
        .start
        .store(7, Ordering::Relaxed);
    let c0 = Consumer::attach_lane(&q.0, LaneChoice::Lane(0)).unwrap();
    assert_eq!(c0.lane(), Some((0, 3)));
    status = queue_status(&q.0);
    assert!(
        status.contains(&format!("waiting 1, consumer PID {}\n", std::process::id())),
        "{status}"
    );
}

fn queue_status(name: &str) -> String {
    Queue::open_existing(name)
        .unwrap()
        .status()
        .unwrap()
        .format()
}

#[test]
fn an_unlaned_queue_is_shared_and_a_consumer_follows_a_relaning() {
    let q = TestQueue::new("relane");
    let p = Producer::open(&q.0, small()).unwrap();
    let mut c = Consumer::attach_lane(&q.0, LaneChoice::Any).unwrap();
    assert_eq!(c.lane(), Some((0, 1)));
    assert!(
        Consumer::attach_lane(&q.0, LaneChoice::Lane(0)).is_ok(),
        "lane 0 of one is shared"
    );
    assert!(queue_status(&q.0)
        .lines()
        .all(|l| !l.starts_with("  lane ")));
    drop(p);
    // The engine re-initialises the queue with 4 lanes: the consumer claims one of them.
    let p = Producer::open(
        &q.0,
        Layout {
            lanes: 4,
            ..small()
        },
    )
    .unwrap();
    let mut b = Batch::new();
    c.try_pop(&mut b, 1).unwrap();
    assert_eq!(c.lane(), Some((0, 4)));
    let tag = Tag {
        ifindex: 0,
        dir: Direction::Rx,
        ts_ns: 0,
        marks: Marks::NONE,
    };
    assert!(p.push_to(0, &[9; 60], 60, tag));
    assert_eq!(c.try_pop(&mut b, 1).unwrap(), 1);
}
