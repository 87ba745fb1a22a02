//! The README's first command, `./run demo`, end to end; and Ctrl-C at several points of
//! `ethertap demo`, which must still stop the daemon and remove the lab.
//!
//! Both check that nothing is left behind: the lab's namespaces, the daemon process, its run
//! directory (pid file, socket), its packet queue in /dev/shm and its XDP program.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One demo at a time: `./run demo` may re-link target/release/ethertap and collect (a build
/// without the dev-dependencies' features) while another test would start them.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn require_root_and_tools(tools: &[&str]) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the demo tests need root (network namespaces, XDP)"
    );
    for tool in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(found, "the demo tests need `{tool}` (scripts/install-deps)");
    }
}

/// What the demo printed about the things it built, to check they are gone.
struct Traces {
    demo_pid: u32,
    daemon_pid: Option<i32>,
    xdp_prog_id: Option<u32>,
}

/// The number after `prefix` on the first line containing it.
fn number_after<T: std::str::FromStr>(text: &str, prefix: &str) -> Option<T> {
    let at = text.find(prefix)? + prefix.len();
    let digits: String = text[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

fn traces(output: &str) -> Traces {
    let demo_pid = number_after(output, "ip netns add et-demo-")
        .unwrap_or_else(|| panic!("the demo names its lab:\n{output}"));
    traces_of(demo_pid, output)
}

fn traces_of(demo_pid: u32, output: &str) -> Traces {
    Traces {
        demo_pid,
        daemon_pid: number_after(output, "started in the background (PID "),
        xdp_prog_id: number_after(output, "prog/xdp id "),
    }
}

/// Alive and not a zombie.
fn process_running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the command name in parentheses, which may contain spaces.
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

fn xdp_program_exists(id: u32) -> bool {
    libbpf_rs::query::ProgInfoIter::default().any(|p| p.id == id)
}

fn assert_nothing_left(t: &Traces, output: &str) {
    let prefix = format!("et-demo-{}-", t.demo_pid);
    let namespaces = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let namespaces = String::from_utf8_lossy(&namespaces.stdout);
    assert!(
        !namespaces.contains(&prefix),
        "the lab's namespaces are gone:\n{namespaces}\n--- demo output:\n{output}"
    );
    if let Some(pid) = t.daemon_pid {
        // `ethertap stop` returns once the daemon is going; init reaps it a moment later
        // (a moment that a loaded host stretches, hence the generous bound).
        let deadline = Instant::now() + Duration::from_secs(20);
        while process_running(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            !process_running(pid),
            "the demo's daemon (PID {pid}) has exited"
        );
    }
    let run_dir = std::env::temp_dir().join(format!("ethertap-demo-{}", t.demo_pid));
    assert!(
        !run_dir.exists(),
        "{} (pid file, socket, log) is removed",
        run_dir.display()
    );
    let queue = PathBuf::from(format!("/dev/shm/ixdp.pqueue.demo-{}", t.demo_pid));
    assert!(!queue.exists(), "{} is removed", queue.display());
    if let Some(id) = t.xdp_prog_id {
        // The kernel frees a program once nothing holds it; give it a moment after the
        // namespaces went away (the kernel frees it from a deferred work item, which a
        // loaded host delays).
        let deadline = Instant::now() + Duration::from_secs(20);
        while xdp_program_exists(id) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!xdp_program_exists(id), "XDP program {id} is unloaded");
    }
}

/// Frames of the capture that match a tshark display filter.
fn tshark_count(pcap: &Path, filter: &str) -> usize {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-Y", filter, "-T", "fields", "-e", "frame.number"])
        .output()
        .expect("tshark");
    assert!(
        out.status.success(),
        "tshark reads {} ({filter}): {}",
        pcap.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Sum of a numeric field over the frames matching `filter`.
fn tshark_sum(pcap: &Path, filter: &str, field: &str) -> u64 {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-Y", filter, "-T", "fields", "-e", field])
        .output()
        .expect("tshark");
    assert!(out.status.success(), "tshark -e {field}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse::<u64>().ok())
        .sum()
}

/// A line of the demo's "sent" or summary tables: the value after the label.
fn table_value<'a>(output: &'a str, label: &str) -> &'a str {
    output
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .unwrap_or_else(|| panic!("the demo prints `{label}`:\n{output}"))
        .trim()
}

#[test]
fn make_demo_runs_the_whole_job_and_leaves_nothing_behind() {
    let _one = one_at_a_time();
    require_root_and_tools(&["tshark", "ip", "ethtool"]);
    let repo = env!("CARGO_MANIFEST_DIR");
    let out_dir = tempfile::tempdir().expect("temp dir");
    // The README's first command, with the capture put aside so the test leaves the
    // checkout clean. It builds release; under `cargo test --release` that is a no-op.
    let mut make = Command::new("timeout");
    make.args(["900", "./run", "demo"])
        .arg(format!("--out-dir={}", out_dir.path().display()))
        .current_dir(repo)
        .env("CARGO", option_env!("CARGO").unwrap_or("cargo"))
        .stdin(Stdio::null());
    let started = Instant::now();
    let out = make.output().expect("./run demo");
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "./run demo succeeds:\n{stdout}\n--- stderr:\n{stderr}"
    );
    let t = traces(&stdout);
    assert!(
        t.daemon_pid.is_some(),
        "the demo started a daemon:\n{stdout}"
    );
    assert!(
        t.xdp_prog_id.is_some(),
        "the demo shows its XDP program:\n{stdout}"
    );

    // It says what it does, step by step, with the commands to type.
    for expected in [
        "[1/8] building the lab",
        "[2/8] starting the engine as a daemon",
        "$ ethertap start -d port0 port1",
        "[3/8] tapping",
        "$ ethertap run examples/tap-all.rpcl",
        "[4/8] sending real traffic",
        "[5/8] recording the tapped frames with collect",
        "$ collect -n -p ",
        "[6/8] engine statistics",
        "$ ethertap eval 'if.stats'",
        "0 port0 veth queues:1",
        "1 port1 veth queues:1",
        "  RX tap                enabled",
        "$ ethertap eval '0 if.mac.show'",
        "$ ethertap eval '1 if.mac.show'",
        "0 port0 source MACs: 1",
        "1 port1 source MACs: 1",
        "$ ethertap eval '0 if.etype.show'",
        "0x8100 802.1Q VLAN",
        "0x88a8 802.1ad QinQ",
        "[7/8] what the capture holds",
        "[8/8] stopping the engine and removing the lab",
        "$ ethertap stop",
        "Next:",
    ] {
        assert!(stdout.contains(expected), "prints {expected:?}:\n{stdout}");
    }
    assert_eq!(
        table_value(&stdout, "ICMP echo requests h1 → h2"),
        "5 (all answered)"
    );
    assert_eq!(
        table_value(&stdout, "TCP transfer h1 → h2"),
        "262144 bytes, all received"
    );
    assert_eq!(table_value(&stdout, "802.1Q VLAN 100 frames"), "3");
    assert_eq!(table_value(&stdout, "QinQ 200/10 frames"), "3");

    // The pcap: tshark reads it, and it holds at least what the demo says it sent.
    let pcap = out_dir.path().join("ethertap-demo.pcap");
    assert!(pcap.exists(), "{} written", pcap.display());
    let total: usize = table_value(&stdout, "total").parse().expect("total frames");
    assert_eq!(
        tshark_count(&pcap, "frame"),
        total,
        "tshark reads every frame the summary counts"
    );
    assert!(
        tshark_count(&pcap, "icmp.type == 8") >= 5,
        "5 echo requests"
    );
    assert!(tshark_count(&pcap, "icmp.type == 0") >= 5, "5 echo replies");
    assert!(
        tshark_sum(&pcap, "tcp.dstport == 5201", "tcp.len") >= 262_144,
        "the whole TCP transfer crossed the tap"
    );
    assert!(
        tshark_count(&pcap, "eth.type == 0x8100 && vlan.id == 100 && udp") >= 3,
        "3 frames in 802.1Q VLAN 100"
    );
    assert!(
        tshark_count(
            &pcap,
            "eth.type == 0x88a8 && ieee8021ad.id == 200 && vlan.id == 10 && udp"
        ) >= 3,
        "3 QinQ frames, 802.1ad 200 / 802.1Q 10"
    );
    // The issue asks for under a minute; the build before it is cargo's business.
    let demo_secs: f64 = number_after::<u32>(&stdout, "done in ").map_or(f64::MAX, f64::from);
    assert!(
        demo_secs < 60.0,
        "the demo takes under a minute (./run demo took {elapsed:?}):\n{stdout}"
    );

    assert_nothing_left(&t, &stdout);
}

/// Start `ethertap demo` in a process group of its own (as a shell job), send SIGINT to the
/// whole group (as Ctrl-C does) once it prints the line starting with `at`, and check it cleans up.
fn interrupt_demo_at(at: &str) {
    let _one = one_at_a_time();
    require_root_and_tools(&["ip", "ethtool"]);
    let out_dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ethertap"))
        .arg("demo")
        .arg("--out-dir")
        .arg(out_dir.path())
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ethertap demo");
    let demo_pid = child.id();
    let group = nix::unistd::Pid::from_raw(-(demo_pid as i32));
    let stdout = child.stdout.take().expect("stdout");
    let at_owned = at.to_string();
    let reader = std::thread::spawn(move || {
        let mut seen = String::new();
        let mut sent = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            seen.push_str(&line);
            seen.push('\n');
            if !sent && line.starts_with(&at_owned) {
                nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGINT)
                    .expect("SIGINT to the demo's process group");
                sent = true;
            }
        }
        (seen, sent)
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the demo did not end within 60 s of starting (Ctrl-C at {at:?})");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (output, sent) = reader.join().expect("reader");
    let mut stderr = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr);
    assert!(
        sent,
        "the demo reached {at:?}:\n{output}\n--- stderr:\n{stderr}"
    );
    assert_eq!(
        status.code(),
        Some(1),
        "an interrupted demo fails:\n{output}\n--- stderr:\n{stderr}"
    );
    assert!(
        output.contains("interrupted: the engine is stopped and the lab removed"),
        "it says so:\n{output}\n--- stderr:\n{stderr}"
    );
    assert!(
        !output.contains("[8/8]"),
        "it stopped at Ctrl-C, not at the end:\n{output}"
    );
    assert_nothing_left(&traces_of(demo_pid, &output), &output);
}

#[test]
fn ctrl_c_while_the_lab_is_built_still_removes_everything() {
    interrupt_demo_at("[1/8]");
}

#[test]
fn ctrl_c_while_the_engine_starts_still_removes_everything() {
    interrupt_demo_at("[2/8]");
}

#[test]
fn ctrl_c_during_the_traffic_still_removes_everything() {
    // The ping of step 4 runs for about a second: the demo must not wait for it to finish.
    interrupt_demo_at("    $ ip netns exec et-demo-");
}

#[test]
fn ctrl_c_during_the_statistics_still_removes_everything() {
    interrupt_demo_at("[6/8]");
}
