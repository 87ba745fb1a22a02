//! Packet queue throughput between processes, side by side with a naive baseline (a Unix
//! datagram socket pair: one syscall per packet on each side), and `collect` writing pcap to
//! tmpfs. Criterion drives `iter_custom`: each sample forks producer and consumer processes,
//! releases them together, and times until every frame was consumed. Consumers may sleep
//! (the queue's normal spin-then-sleep path). Run: `cargo bench --bench pqueue`.

use std::hint::black_box;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ethertap::pqueue::{queue_path, testgen, Batch, Consumer, Direction, Layout, Producer, Queue};

/// Flags shared with the forked children (an anonymous shared mapping).
#[repr(C)]
struct Control {
    go: AtomicU32,
    stop: AtomicU32,
    consumed: AtomicU64,
}

struct Shared(*mut Control);

impl Shared {
    fn new() -> Shared {
        // SAFETY: a fresh anonymous shared mapping, zeroed, large enough for Control.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        Shared(p as *mut Control)
    }
    fn get(&self) -> &Control {
        // SAFETY: mapped in new() and alive until drop.
        unsafe { &*self.0 }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: unmapping what new() mapped.
        unsafe { libc::munmap(self.0 as *mut libc::c_void, 4096) };
    }
}

/// Fork a child running `f`, which must not allocate (the parent may have threads).
fn fork_child(f: impl FnOnce()) -> libc::pid_t {
    // SAFETY: the child only runs `f` on pre-allocated state, then _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        f();
        // SAFETY: leave the child without running the parent's destructors.
        unsafe { libc::_exit(0) };
    }
    pid
}

fn wait_all(pids: &[libc::pid_t]) {
    for &pid in pids {
        let mut st = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(pid, &mut st, 0) };
    }
}

fn wait_go(ctl: &Control) {
    while ctl.go.load(Ordering::Acquire) == 0 {
        std::hint::spin_loop();
    }
}

/// A producer that found the queue full waits a little before offering the frame again,
/// instead of hammering the slot the consumer is copying, and lets a consumer that shares
/// its CPU run (the engine never retries: it counts the frame in `full`).
fn backoff() {
    for _ in 0..16 {
        std::hint::spin_loop();
    }
    std::thread::yield_now();
}

/// Release every child at once and time until `iters` packets were consumed.
fn release_and_time(ctl: &Control, producers: &[libc::pid_t], iters: u64) -> Duration {
    let start = Instant::now();
    ctl.go.store(1, Ordering::Release);
    wait_all(producers);
    while ctl.consumed.load(Ordering::Relaxed) < iters {
        std::thread::sleep(Duration::from_micros(50));
    }
    start.elapsed()
}

fn share(iters: u64, n: u64, i: u64) -> u64 {
    iters / n + u64::from(i < iters % n)
}

fn run_pqueue(size: usize, np: u64, nc: u64, iters: u64) -> Duration {
    let name = format!("pqbench.{}", std::process::id());
    let producer = Producer::open(&name, Layout::default()).unwrap();
    let shared = Shared::new();
    let ctl = shared.get();
    let mut pids = vec![];
    for c in 0..nc {
        let mut consumer = Consumer::attach(&name).unwrap();
        let mut batch = Batch::with_capacity(256, 2048);
        let _ = c;
        pids.push(fork_child(|| {
            wait_go(ctl);
            while ctl.stop.load(Ordering::Acquire) == 0 {
                let n = consumer
                    .pop_wait(&mut batch, 256, Duration::from_millis(5))
                    .unwrap_or(0);
                if n > 0 {
                    black_box(batch.get(0));
                    ctl.consumed.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        }));
    }
    let mut producers = vec![];
    for p in 0..np {
        let mut frame = testgen::frame(size, p as u16);
        let count = share(iters, np, p);
        let producer = &producer;
        producers.push(fork_child(move || {
            wait_go(ctl);
            for s in 0..count {
                testgen::set_seq(&mut frame, s);
                while !producer.push(&frame, 0, Direction::Rx, 0) {
                    backoff();
                }
            }
        }));
    }
    let elapsed = release_and_time(ctl, &producers, iters);
    ctl.stop.store(1, Ordering::Release);
    wait_all(&pids);
    drop(producer);
    let _ = std::fs::remove_file(queue_path(&name));
    elapsed
}

fn run_dgram(size: usize, np: u64, nc: u64, iters: u64) -> Duration {
    let mut fds = [0; 2];
    // SAFETY: socketpair into a local array.
    assert_eq!(
        // SAFETY: socketpair writes two descriptors into the array we own.
        unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_DGRAM, 0, fds.as_mut_ptr()) },
        0
    );
    let shared = Shared::new();
    let ctl = shared.get();
    let mut consumers = vec![];
    for _ in 0..nc {
        let mut buf = vec![0u8; 2048];
        consumers.push(fork_child(move || {
            wait_go(ctl);
            loop {
                // SAFETY: receiving into our own buffer.
                let n = unsafe { libc::recv(fds[1], buf.as_mut_ptr() as *mut _, buf.len(), 0) };
                if n > 0 {
                    ctl.consumed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let mut producers = vec![];
    for p in 0..np {
        let mut frame = testgen::frame(size, p as u16);
        let count = share(iters, np, p);
        producers.push(fork_child(move || {
            wait_go(ctl);
            for s in 0..count {
                testgen::set_seq(&mut frame, s);
                // SAFETY: sending our own buffer; blocks while the peer's queue is full.
                unsafe { libc::send(fds[0], frame.as_ptr() as *const _, frame.len(), 0) };
            }
        }));
    }
    let elapsed = release_and_time(ctl, &producers, iters);
    for &pid in &consumers {
        // SAFETY: killing our own child, blocked in recv.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    wait_all(&consumers);
    // SAFETY: closing our own descriptors.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    elapsed
}

/// `ncollect` `collect` processes (the release binary) writing pcap to tmpfs while one
/// producer fills the queue; they share the packets, each stopping at its share.
fn run_collect(size: usize, iters: u64, ncollect: u64) -> Duration {
    let name = format!("pqbench.collect.{}", std::process::id());
    let producer = Producer::open(&name, Layout::default()).unwrap();
    let mut children = vec![];
    let mut files = vec![];
    for i in 0..ncollect {
        let out = format!("/dev/shm/pqbench.{}.{i}.pcap", std::process::id());
        let limit = share(iters, ncollect, i).to_string();
        children.push(
            Command::new(env!("CARGO_BIN_EXE_collect"))
                .args(["-s", "-n", "-q", &name, "-p", &limit, &out])
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        );
        files.push(out);
    }
    let mut frame = testgen::frame(size, 0);
    let start = Instant::now();
    for s in 0..iters {
        testgen::set_seq(&mut frame, s);
        while !producer.push(&frame, 0, Direction::Rx, 0) {
            backoff();
        }
    }
    for c in &mut children {
        assert!(c.wait().unwrap().success());
    }
    let elapsed = start.elapsed();
    let mut q = Queue::attach(&name).unwrap();
    assert_eq!(q.status().unwrap().retrieved, iters);
    for f in files {
        let _ = std::fs::remove_file(f);
    }
    let _ = std::fs::remove_file(queue_path(&name));
    elapsed
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    for size in [64usize, 1500] {
        for (np, nc) in [(1u64, 1u64), (2, 2)] {
            g.bench_function(format!("pqueue/{size}B/{np}p{nc}c"), |b| {
                b.iter_custom(|iters| run_pqueue(size, np, nc, iters))
            });
            g.bench_function(format!("unix-dgram/{size}B/{np}p{nc}c"), |b| {
                b.iter_custom(|iters| run_dgram(size, np, nc, iters))
            });
        }
    }
    g.finish();
    // One iteration = 1000 packets, so that starting collect is amortised.
    let mut g = c.benchmark_group("collect");
    g.throughput(Throughput::Elements(1000));
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    for ncollect in [1u64, 2] {
        g.bench_function(format!("collect-tmpfs/1500B/1p{ncollect}c"), |b| {
            b.iter_custom(|iters| run_collect(1500, iters * 1000, ncollect))
        });
    }
    g.finish();
}

criterion_group!(pqueue, benches);
criterion_main!(pqueue);
