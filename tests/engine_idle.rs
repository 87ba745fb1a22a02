//! Adaptive polling: an idle engine costs (almost) no CPU. Alone in its own test binary so
//! no other engine's worker is measured (needs root).

mod lab;

use lab::*;
use std::time::Duration;

/// CPU time (user + system, in clock ticks) of this process's threads whose name starts with `name`.
fn thread_cpu_ticks(name: &str) -> u64 {
    let mut sum = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.trim().starts_with(name) {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let after = &stat[stat.rfind(')').map(|i| i + 2).unwrap_or(0)..];
        let f: Vec<&str> = after.split_whitespace().collect();
        sum += f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
    }
    sum
}

#[test]
fn an_idle_worker_sleeps_instead_of_spinning() {
    let lab = Lab::bridge("bridl");
    let eng = lab.start_engine("bridl");
    // This test binary runs this one engine only, so its `ixdp-q0` thread is the worker.
    std::thread::sleep(Duration::from_millis(300));
    let t0 = thread_cpu_ticks("ixdp-q");
    let start = std::time::Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let ticks = thread_cpu_ticks("ixdp-q") - t0;
    let hz = 100.0;
    let busy = ticks as f64 / hz / start.elapsed().as_secs_f64();
    // A spinning worker would show close to 1.0 (a full core).
    assert!(
        busy < 0.3,
        "idle workers used {:.0} % of a core",
        busy * 100.0
    );
    drop(eng);
}

#[test]
fn workers_are_pinned_to_the_cpus_given() {
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
