//! Proportional polling: an idle engine, and an idle `collect` attached to it, cost (almost) no
//! CPU, and a trickle of frames costs a small part of a core instead of the whole core a
//! spinning worker or consumer would take. CPU shares only, never durations or rates. Alone in
//! its own test binary, one engine at a time, so that no other engine's worker is measured
//! (needs root).

mod lab;

use lab::*;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Held by every test while its engine runs: the CPU of `ixdp-q*` threads is then its own.
static ONE_ENGINE: Mutex<()> = Mutex::new(());

fn one_engine() -> std::sync::MutexGuard<'static, ()> {
    ONE_ENGINE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Clock ticks per second of /proc's utime and stime.
const HZ: f64 = 100.0;

/// utime + stime (clock ticks) from the text of a /proc `stat` file.
fn stat_ticks(stat: &str) -> u64 {
    // The fields after the command name, which is in parentheses and may hold spaces.
    let after = &stat[stat.rfind(')').map(|i| i + 2).unwrap_or(0)..];
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

/// CPU time (clock ticks) of this process's threads whose name starts with `name`.
fn thread_cpu_ticks(name: &str) -> u64 {
    let mut sum = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim().starts_with(name) {
            sum +=
                stat_ticks(&std::fs::read_to_string(task.path().join("stat")).unwrap_or_default());
        }
    }
    sum
}

/// CPU time (clock ticks) of process `pid`, all its threads.
fn process_cpu_ticks(pid: u32) -> u64 {
    stat_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default())
}

/// The share of a core that `ticks` are over the time since `since`.
fn share(ticks: u64, since: Instant) -> f64 {
    ticks as f64 / HZ / since.elapsed().as_secs_f64()
}

/// `collect` writing the engine's queue to a pcap file, started before any traffic.
fn start_collect(queue: &str, file: &std::path::Path, packets: Option<u64>) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_collect"));
    cmd.args(["-s", "-n", "-q", queue]);
    if let Some(n) = packets {
        cmd.args(["-p", &n.to_string()]);
    }
    let child = cmd
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start collect");
    // Measured from here: a collect still starting up on a loaded machine would count its
    // start-up as idle CPU, and a fixed pause does not know how long that takes.
    wait_collect_ready(child.id(), queue);
    child
}

#[test]
fn an_idle_worker_sleeps_instead_of_spinning() {
    let _one = one_engine();
    let lab = Lab::bridge("bridl");
    let eng = lab.start_engine("bridl");
    // This test binary runs one engine at a time, so its `ixdp-q*` threads are the workers.
    std::thread::sleep(Duration::from_millis(300));
    let t0 = thread_cpu_ticks("ixdp-q");
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let busy = share(thread_cpu_ticks("ixdp-q") - t0, start);
    // A spinning worker would show close to 1.0 (a full core).
    assert!(
        busy < 0.3,
        "idle workers used {:.0} % of a core",
        busy * 100.0
    );
    drop(eng);
}

#[test]
fn an_idle_collect_sleeps_on_the_queue() {
    let _one = one_engine();
    let lab = Lab::bridge("colidl");
    let mut eng = lab.start_engine("colidl");
    eng.ok("0 tap.rx.enable 1 tap.tx.enable");
    let dir = tempfile::tempdir().unwrap();
    let child = start_collect(&eng.queue_name, &dir.path().join("idle.pcap"), None);
    let c0 = process_cpu_ticks(child.id());
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let busy = share(process_cpu_ticks(child.id()) - c0, start);
    let out = signal_and_wait(child, nix::sys::signal::Signal::SIGTERM);
    assert!(
        out.status.success(),
        "collect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A consumer that polls the empty queue would show close to 1.0.
    assert!(
        busy < 0.1,
        "an idle collect used {:.0} % of a core",
        busy * 100.0
    );
    drop(eng);
}

#[test]
fn a_trickle_of_frames_costs_a_small_part_of_a_core() {
    let _one = one_engine();
    const FRAMES: u32 = 2000;
    let lab = Lab::bridge("brtrk");
    let mut eng = lab.start_engine("brtrk");
    eng.ok("0 tap.rx.enable");
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("trickle.pcap");
    let child = start_collect(&eng.queue_name, &pcap, Some(FRAMES.into()));
    let s0 = lab.packet_socket(&lab.h1, "e0");
    let s1 = lab.packet_socket(&lab.h2, "e1");
    let w0 = thread_cpu_ticks("ixdp-q");
    let c0 = process_cpu_ticks(child.id());
    let start = Instant::now();
    // About 2,000 frames a second: a frame every 500 µs kept the old adaptive worker spinning
    // (it slept only after 2 ms without a frame) and costs a wake-up per frame now.
    for seq in 0..FRAMES {
        s0.send(&frame(E1_MAC, E0_MAC, &[], seq, 60));
        std::thread::sleep(Duration::from_micros(500));
    }
    let worker = share(thread_cpu_ticks("ixdp-q") - w0, start);
    let collect = share(process_cpu_ticks(child.id()) - c0, start);
    let got = s1.collect(FRAMES as usize, QUIET);
    let out = child.wait_with_output().unwrap();
    assert_eq!(got.len(), FRAMES as usize, "frames forwarded");
    // collect -p N ends after N packets: every tapped frame reached the file.
    assert!(
        out.status.success(),
        "collect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pcap_frames = std::fs::metadata(&pcap).unwrap().len().saturating_sub(24) / (16 + 60);
    assert_eq!(pcap_frames, u64::from(FRAMES), "frames in the pcap file");
    assert!(
        worker < 0.3,
        "the workers used {:.0} % of a core for a trickle",
        worker * 100.0
    );
    assert!(
        collect < 0.3,
        "collect used {:.0} % of a core for a trickle",
        collect * 100.0
    );
    drop(eng);
}

#[test]
fn workers_are_pinned_to_the_cpus_given() {
    let _one = one_engine();
    let lab = Lab::bridge("brpin");
    let mut config = ethertap::ixdp::EngineConfig::new(vec!["p0".into(), "p1".into()]);
    let cpu = std::thread::available_parallelism()
        .map(|n| n.get() - 1)
        .unwrap_or(0);
    config.cpus = vec![cpu];
    config.queue_name = Some(format!("et-brpin-{}", std::process::id()));
    let eng = lab.start_engine_with(config);
    let mut pinned = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("ixdp-q") {
            continue;
        }
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        if status
            .lines()
            .any(|l| l.starts_with("Cpus_allowed_list:") && l.ends_with(&format!("\t{cpu}")))
        {
            pinned += 1;
        }
    }
    assert_eq!(
        pinned, 2,
        "both workers (two veth queues) run on CPU {cpu} only"
    );
    drop(eng);
}
