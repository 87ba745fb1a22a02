//! Multi-process tests of the packet queue: producer and consumer processes of the
//! `pqueue-gen` binary, killed by pid where the test says so.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod scratch;
use scratch::Lab;

use ethertap::pqueue::{queue_path, testgen, Batch, Consumer, Direction, Layout, Producer, Queue};

const GEN: &str = env!("CARGO_BIN_EXE_pqueue-gen");

impl Lab {
    fn spawn(&mut self, args: &[&str]) -> usize {
        let child = Command::new(GEN)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {GEN}: {e}"));
        self.children.push(child);
        self.children.len() - 1
    }

    fn producer(&mut self, id: u16, count: u64, extra: &[&str]) -> usize {
        let (id, count) = (id.to_string(), count.to_string());
        let q = self.queue.clone();
        let mut args = vec!["produce", "-q", &q, "--id", &id, "-n", &count];
        args.extend_from_slice(extra);
        self.spawn(&args)
    }

    fn consumer(&mut self, n: usize) -> (usize, PathBuf) {
        let out = self.dir.join(format!("consumer{n}.rec"));
        let q = self.queue.clone();
        let o = out.to_str().unwrap().to_string();
        (self.spawn(&["consume", "-q", &q, "-o", &o]), out)
    }

    fn pid(&self, i: usize) -> i32 {
        self.children[i].id() as i32
    }

    /// Wait for child `i` to exit within `limit`; its stdout.
    fn finish(&mut self, i: usize, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(status) = self.children[i].try_wait().unwrap() {
                let mut out = String::new();
                self.children[i]
                    .stdout
                    .take()
                    .unwrap()
                    .read_to_string(&mut out)
                    .unwrap();
                assert!(status.success(), "child {i} failed: {status} {out}");
                return out;
            }
            assert!(
                start.elapsed() < limit,
                "child {i} (pid {}) did not finish within {limit:?}",
                self.pid(i)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn signal(&self, i: usize, sig: i32) {
        // SAFETY: plain kill(2) on a child we started and have not reaped.
        assert_eq!(unsafe { libc::kill(self.pid(i), sig) }, 0);
    }

    /// Wait until every one of `expect_inserted` packets was taken out of the queue.
    fn wait_drained(&self, expect_inserted: u64, limit: Duration) {
        let mut q = Queue::attach(&self.queue).unwrap();
        let start = Instant::now();
        loop {
            let s = q.status().unwrap();
            if s.inserted == expect_inserted && s.waiting() == 0 {
                return;
            }
            assert!(start.elapsed() < limit, "queue not drained: {s:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn records(path: &Path) -> Vec<u64> {
    let bytes = std::fs::read(path).unwrap();
    bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn parse_counts(out: &str, first: &str, second: &str) -> (u64, u64) {
    let w: Vec<&str> = out.split_whitespace().collect();
    assert!(
        w.len() == 4 && w[0] == first && w[2] == second,
        "unexpected output {out:?}"
    );
    (w[1].parse().unwrap(), w[3].parse().unwrap())
}

/// How many times each record was seen.
fn tally(all: &[Vec<u64>]) -> HashMap<u64, u32> {
    let mut seen = HashMap::new();
    for r in all.iter().flatten() {
        *seen.entry(*r).or_insert(0) += 1;
    }
    seen
}

#[test]
fn two_producers_three_consumers_a_million_frames_each_exactly_once() {
    let mut lab = Lab::new("million");
    let per = 500_000u64;
    let _daemon = Producer::open(&lab.queue, Layout::default()).unwrap();
    let consumers: Vec<_> = (0..3).map(|n| lab.consumer(n)).collect();
    let producers: Vec<_> = (0..2)
        .map(|id| lab.producer(id, per, &["--retry"]))
        .collect();
    for p in producers {
        let out = lab.finish(p, Duration::from_secs(90));
        assert_eq!(parse_counts(&out, "inserted", "full").0, per);
    }
    lab.wait_drained(2 * per, Duration::from_secs(60));
    let mut all = vec![];
    for (c, path) in consumers {
        lab.signal(c, libc::SIGTERM);
        let out = lab.finish(c, Duration::from_secs(10));
        let (received, bad) = parse_counts(&out, "received", "bad");
        assert_eq!(bad, 0);
        let r = records(&path);
        assert_eq!(r.len() as u64, received);
        all.push(r);
    }
    let seen = tally(&all);
    assert_eq!(seen.len() as u64, 2 * per, "distinct frames received");
    assert!(seen.values().all(|&n| n == 1), "a frame was received twice");
    for id in 0..2u16 {
        for s in 0..per {
            assert!(
                seen.contains_key(&testgen::record(id, s)),
                "frame {id}/{s} missing"
            );
        }
    }
    assert!(
        all.iter().all(|r| !r.is_empty()),
        "every consumer took a share"
    );
}

#[test]
fn a_consumer_killed_mid_stream_does_not_stop_the_others_or_the_producers() {
    let mut lab = Lab::new("kill");
    let per = 300_000u64;
    let layout = Layout {
        slots: 1024,
        slot_size: 256,
        ..Layout::default()
    };
    let _daemon = Producer::open(&lab.queue, layout).unwrap();
    let consumers: Vec<_> = (0..3).map(|n| lab.consumer(n)).collect();
    let producers: Vec<_> = (0..2)
        .map(|id| lab.producer(id, per, &["--retry", "--rate", "200000"]))
        .collect();
    // Kill consumer 0 once the stream is well under way.
    let mut q = Queue::attach(&lab.queue).unwrap();
    let start = Instant::now();
    while q.status().unwrap().retrieved < per / 2 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "stream did not start"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    lab.signal(consumers[0].0, libc::SIGKILL);
    let killed_at = q.status().unwrap();
    // More consumers come and are killed at arbitrary instants while the stream flows.
    // The instants are measured in stream progress, not wall-clock time: on a loaded host
    // the spawns and sleeps of this thread could otherwise outlast the paced producers
    // (about 1.5 s in all) and the kills would land after the stream ended.
    let mut victims = vec![consumers[0].1.clone()];
    for n in 3..7 {
        let (v, path) = lab.consumer(n);
        let due = killed_at.retrieved + (n as u64 - 2) * 20_000;
        let start = Instant::now();
        while q.status().unwrap().retrieved < due {
            assert!(start.elapsed() < Duration::from_secs(60), "stream stalled");
            std::thread::sleep(Duration::from_millis(1));
        }
        lab.signal(v, libc::SIGKILL);
        victims.push(path);
    }
    let after_kills = q.status().unwrap();
    for p in producers {
        let out = lab.finish(p, Duration::from_secs(90));
        assert_eq!(
            parse_counts(&out, "inserted", "full").0,
            per,
            "the producers finished"
        );
    }
    assert!(
        after_kills.inserted < 2 * per,
        "the kills happened mid-stream: {after_kills:?}"
    );
    assert!(
        killed_at.inserted < 2 * per,
        "the kill happened mid-stream: {killed_at:?}"
    );
    // The survivors drain everything, including anything the dead one had leased.
    lab.wait_drained(2 * per, Duration::from_secs(60));
    let mut all: Vec<Vec<u64>> = victims.iter().map(|p| records(p)).collect();
    for (c, path) in &consumers[1..] {
        lab.signal(*c, libc::SIGTERM);
        let out = lab.finish(*c, Duration::from_secs(10));
        assert_eq!(parse_counts(&out, "received", "bad").1, 0);
        all.push(records(path));
    }
    let seen = tally(&all);
    assert!(seen.values().all(|&n| n == 1), "a frame was received twice");
    // Only the batch each killed consumer had taken but not yet written can be missing
    // (it was delivered to that consumer, which died holding it).
    let missing = 2 * per - seen.len() as u64;
    assert!(
        missing <= 64 * victims.len() as u64,
        "{missing} frames lost"
    );
    let mut c = Consumer::attach(&lab.queue).unwrap();
    let mut b = Batch::new();
    assert_eq!(c.try_pop(&mut b, 10).unwrap(), 0, "queue is empty");
}

#[test]
fn a_full_queue_counts_full_and_loses_nothing_it_inserted() {
    let mut lab = Lab::new("full");
    let per = 100_000u64;
    let layout = Layout {
        slots: 16,
        slot_size: 128,
        ..Layout::default()
    };
    let _daemon = Producer::open(&lab.queue, layout).unwrap();
    let (c, path) = lab.consumer(0);
    let producers: Vec<_> = (0..2).map(|id| lab.producer(id, per, &[])).collect();
    let mut inserted_by = vec![];
    let mut full_total = 0;
    for p in producers {
        let out = lab.finish(p, Duration::from_secs(90));
        let (inserted, full) = parse_counts(&out, "inserted", "full");
        assert_eq!(inserted + full, per);
        inserted_by.push(inserted);
        full_total += full;
    }
    let inserted: u64 = inserted_by.iter().sum();
    assert!(full_total > 0, "a 16-slot queue overflowed");
    let s = Queue::attach(&lab.queue).unwrap().status().unwrap();
    assert_eq!((s.inserted, s.full), (inserted, full_total));
    lab.wait_drained(inserted, Duration::from_secs(30));
    lab.signal(c, libc::SIGTERM);
    let out = lab.finish(c, Duration::from_secs(10));
    assert_eq!(parse_counts(&out, "received", "bad"), (inserted, 0));
    let seen = tally(&[records(&path)]);
    assert_eq!(
        seen.len() as u64,
        inserted,
        "every inserted frame arrived once"
    );
    for (id, &n) in inserted_by.iter().enumerate() {
        let got = seen.keys().filter(|r| *r >> 48 == id as u64).count() as u64;
        assert_eq!(got, n, "producer {id}");
    }
}

#[test]
fn consumers_started_first_create_the_queue_and_follow_the_daemon_reinit() {
    let mut lab = Lab::new("order");
    let (c, path) = lab.consumer(0);
    // The consumer creates the default queue...
    let start = Instant::now();
    while !queue_path(&lab.queue).exists() {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(5));
    }
    // ...and has it mapped (a fixed pause would only guess), so the re-initialisation
    // below retires a generation the consumer is really attached to.
    let maps = format!("/proc/{}/maps", lab.pid(c));
    let path_text = queue_path(&lab.queue).display().to_string();
    while !std::fs::read_to_string(&maps).is_ok_and(|m| m.contains(&path_text)) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the consumer maps the queue"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // ...then a daemon starts with another layout and re-initialises it.
    let layout = Layout {
        slots: 64,
        slot_size: 512,
        ..Layout::default()
    };
    let p = Producer::open(&lab.queue, layout).unwrap();
    let mut f = testgen::frame(300, 9);
    for s in 0..1000 {
        testgen::set_seq(&mut f, s);
        while !p.push(&f, 0, Direction::Rx, 0) {
            std::thread::yield_now();
        }
    }
    lab.wait_drained(1000, Duration::from_secs(30));
    lab.signal(c, libc::SIGTERM);
    let out = lab.finish(c, Duration::from_secs(10));
    assert_eq!(parse_counts(&out, "received", "bad"), (1000, 0));
    assert_eq!(tally(&[records(&path)]).len(), 1000);
}
