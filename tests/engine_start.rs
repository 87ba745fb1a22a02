//! The real `ethertap start` binary in a namespace lab (needs root).

mod lab;

use lab::*;
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_ethertap");

/// Removes a test's packet queue from /dev/shm when the test ends, passed or failed.
struct QueueFile(String);

impl QueueFile {
    fn new(test: &str) -> QueueFile {
        QueueFile(format!("et-{test}-{}", std::process::id()))
    }
}

impl Drop for QueueFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(format!("/dev/shm/{}", self.0));
    }
}

fn xdp_state(lab: &Lab, ifname: &str) -> String {
    lab.sh(&lab.br, &format!("ip -d link show {ifname}"))
}

fn attached(lab: &Lab, ifname: &str) -> bool {
    xdp_state(lab, ifname).contains("ethertap_xdp")
}

fn promiscuity(lab: &Lab, ifname: &str) -> u32 {
    let s = xdp_state(lab, ifname);
    let at = s.find("promiscuity ").expect("ip -d shows promiscuity") + 12;
    s[at..]
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a number")
}

/// The runtime directory (pid file, console socket) of the lab's engine: every start serves
/// its console socket, and tests in parallel must not see each other's.
fn run_dir(lab: &Lab) -> String {
    let dir = std::env::temp_dir().join(format!("ethertap-run-{}", lab.br));
    std::fs::create_dir_all(&dir).expect("runtime directory");
    format!("ETHERTAP_RUN_DIR={}", dir.display())
}

/// Runs `ethertap ARGS` in the bridge namespace to completion.
fn run_in_br(lab: &Lab, args: &[&str]) -> (bool, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.br, "env", &run_dir(lab), BIN])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ethertap");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts `ethertap start ARGS` in the bridge namespace and waits for its ready banner.
/// Returns the pid, the stderr lines before the banner, and the rest of its stderr
/// (collected on a thread).
fn start_bin(
    lab: &mut Lab,
    args: &[&str],
) -> (u32, Vec<String>, std::sync::mpsc::Receiver<String>) {
    let dir = run_dir(lab);
    let mut full = vec!["env", &dir, BIN, "start"];
    full.extend_from_slice(args);
    let pid = lab.spawn(&lab.br.clone(), &full);
    let mut child = lab.take_child(pid).expect("child");
    let stderr = child.stderr.take().expect("piped stderr");
    lab.adopt(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(l) if l.contains("stops it") => return (pid, seen, rx),
            Ok(l) => seen.push(l),
            Err(_) => panic!("ethertap start did not get ready: {seen:?}"),
        }
    }
}

fn wait_exit(
    child: &mut std::process::Child,
    timeout: Duration,
) -> Option<std::process::ExitStatus> {
    let end = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < end {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn start_bridges_a_ping_and_sigterm_stops_it_cleanly() {
    let mut lab = Lab::bridge("stsig");
    let queue_file = QueueFile::new("stsig");
    let queue = queue_file.0.clone();
    let (pid, _, stderr) = start_bin(
        &mut lab,
        &["--no-preset", "--queue-name", &queue, "p0", "p1"],
    );
    assert!(
        attached(&lab, "p0") && attached(&lab, "p1"),
        "the XDP program is attached"
    );
    assert!(promiscuity(&lab, "p0") >= 1, "promiscuous while running");
    lab.host_checksums_in_software();
    let ping = lab.sh(&lab.h1, &format!("ping -c 3 -i 0.1 -W 2 {H2_IP}"));
    assert!(ping.contains("3 received"), "{ping}");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let mut child = lab.take_child(pid).expect("our child");
    let status = wait_exit(&mut child, Duration::from_secs(10)).expect("stops within 10 s");
    let err: Vec<String> = stderr.try_iter().collect();
    let err = err.join("\n");
    assert!(status.success(), "clean exit: {status:?} {err}");
    assert!(err.contains("stopped"), "{err}");
    assert!(
        !attached(&lab, "p0") && !attached(&lab, "p1"),
        "XDP detached"
    );
    assert_eq!(promiscuity(&lab, "p0"), 0, "promiscuous mode restored");
}

#[test]
fn a_killed_engine_leaves_nothing_behind_and_a_new_start_works() {
    let mut lab = Lab::bridge("stkil");
    let queue_file = QueueFile::new("stkil");
    let queue = queue_file.0.clone();
    let args = ["--no-preset", "--queue-name", &queue, "p0", "p1"];
    let mut first = args.to_vec();
    first.extend(["--queues", "1"]);
    let (pid, early, _) = start_bin(&mut lab, &first);
    assert!(
        early
            .iter()
            .any(|l| l.contains(" WARN ") && l.contains("p0 has 2 receive queues")),
        "serving fewer queues than the interface has is reported: {early:?}"
    );
    assert!(attached(&lab, "p0"));
    let tcx = |lab: &Lab| {
        lab.in_ns(&lab.br, || {
            let idx = ethertap::ixdp::netdev::if_index("p0").expect("p0");
            ethertap::ixdp::xdp::tcx_ingress_programs(idx).expect("query tcx")
        })
    };
    assert_eq!(tcx(&lab), 1, "the kernel path's TC program is attached");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let mut child = lab.take_child(pid).unwrap();
    let _ = child.wait();
    assert!(
        wait_for(Duration::from_secs(5), || !attached(&lab, "p0")),
        "the bpf_link went with the process"
    );
    assert_eq!(
        tcx(&lab),
        0,
        "the kernel path's tcx link went with the process too"
    );
    assert_eq!(promiscuity(&lab, "p0"), 0);
    let _ = start_bin(&mut lab, &args);
    assert!(attached(&lab, "p0") && attached(&lab, "p1"));
    lab.host_checksums_in_software();
    let ping = lab.sh(&lab.h1, &format!("ping -c 2 -i 0.1 -W 2 {H2_IP}"));
    assert!(ping.contains("2 received"), "{ping}");
}

#[test]
fn a_stale_netlink_attached_program_of_ours_is_removed_at_start() {
    let mut lab = Lab::bridge("ststa");
    // A crashed run of an ethertap that attached through netlink leaves its program behind:
    // simulate it by attaching our own object the old way.
    let obj = std::path::Path::new(env!("ETHERTAP_BPF_OBJ"));
    lab.sh(
        &lab.br,
        &format!(
            "ip link set dev p0 xdpgeneric obj {} sec xdp.frags",
            obj.display()
        ),
    );
    assert!(attached(&lab, "p0"));
    let queue_file = QueueFile::new("ststa");
    let queue = queue_file.0.clone();
    // Native mode, so that the stale generic-mode program shows if it stayed.
    let _ = start_bin(
        &mut lab,
        &[
            "--no-preset",
            "--xdp-mode",
            "drv",
            "--queue-name",
            &queue,
            "p0",
            "p1",
        ],
    );
    let state = xdp_state(&lab, "p0");
    assert!(
        state.contains("ethertap_xdp") && !state.contains("xdpgeneric"),
        "the stale generic-mode program is gone, ours is attached: {state}"
    );
    lab.host_checksums_in_software();
    let ping = lab.sh(&lab.h1, &format!("ping -c 2 -i 0.1 -W 2 {H2_IP}"));
    assert!(ping.contains("2 received"), "{ping}");
}

#[test]
fn start_errors_name_the_problem_and_change_nothing() {
    let lab = Lab::bridge("sterr");
    let (ok, e) = run_in_br(&lab, &["start", "--no-preset", "p0", "nope0"]);
    assert!(!ok && e.contains("no interface named \"nope0\""), "{e}");
    let (ok, e) = run_in_br(&lab, &["start", "--no-preset", "p0", "p0"]);
    assert!(!ok && e.contains("\"p0\" is given twice"), "{e}");
    let (ok, e) = run_in_br(&lab, &["start", "--no-preset", "--queues", "9", "p0", "p1"]);
    assert!(!ok && e.contains("--queues 9"), "{e}");
    let (ok, e) = run_in_br(&lab, &["start", "--no-preset", "--queues", "8", "p0", "p1"]);
    assert!(
        !ok && e.contains("receive queue") && e.contains("p0"),
        "{e}"
    );
    // A Linux bridge device has no native XDP support.
    lab.sh(&lab.br, "ip link add d0 type bridge && ip link set d0 up");
    let queue_file = QueueFile::new("sterr");
    let (ok, e) = run_in_br(
        &lab,
        &[
            "start",
            "--no-preset",
            "--queue-name",
            &queue_file.0,
            "--xdp-mode",
            "drv",
            "d0",
        ],
    );
    assert!(!ok && e.contains("d0") && e.contains("native XDP"), "{e}");
    // Not Ethernet: refused before anything is attached, and no queue is made.
    let (ok, e) = run_in_br(
        &lab,
        &["start", "--no-preset", "--queue-name", &queue_file.0, "lo"],
    );
    assert!(
        !ok && e.contains("lo is not an Ethernet interface (loopback)"),
        "{e}"
    );
    lab.sh(
        &lab.br,
        "ip tuntap add mode tun name tun7 && ip link set tun7 up",
    );
    let (ok, e) = run_in_br(
        &lab,
        &[
            "start",
            "--no-preset",
            "-d",
            "--queue-name",
            &queue_file.0,
            "tun7",
        ],
    );
    assert!(
        !ok && e.contains("tun7 is not an Ethernet interface (no link layer"),
        "{e}"
    );
    assert!(
        !ethertap::pqueue::queue_path(&queue_file.0).exists(),
        "a failed start (also -d) creates no packet queue"
    );
    let (ok, e) = run_in_br(&lab, &["start", "--no-preset", "--cpus", "1000", "p0"]);
    assert!(!ok && e.contains("CPU 1000"), "{e}");
    let (ok, e) = run_in_br(&lab, &["start", "--no-preset", "--cpus", "x", "p0"]);
    assert!(!ok && e.contains("\"x\""), "{e}");
    let (ok, e) = run_in_br(&lab, &["start", "--preset", "/nonexistent.rpcl", "p0"]);
    assert!(!ok && e.contains("/nonexistent.rpcl"), "{e}");

    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.br,
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
        ])
        .args([
            "--clear-groups",
            "env",
            &run_dir(&lab),
            BIN,
            "start",
            "--no-preset",
            "p0",
            "p1",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("setpriv");
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && e.contains("needs root"), "{e}");

    for p in ["p0", "p1"] {
        assert!(!attached(&lab, p), "{p} untouched");
        assert_eq!(promiscuity(&lab, p), 0);
    }
}

#[test]
fn a_failing_preset_stops_the_start_with_its_position_and_restores_the_interfaces() {
    let lab = Lab::bridge("stpre");
    let dir = tempfile::tempdir().unwrap();
    let preset = dir.path().join("bad.rpcl");
    std::fs::write(&preset, "0 tap.rx.enable\n7 tap.tx.enable\n").unwrap();
    let queue_file = QueueFile::new("stpre");
    let queue = queue_file.0.clone();
    let (ok, e) = run_in_br(
        &lab,
        &[
            "start",
            "--preset",
            preset.to_str().unwrap(),
            "--queue-name",
            &queue,
            "p0",
            "p1",
        ],
    );
    assert!(!ok, "{e}");
    assert!(e.contains("bad.rpcl") && e.contains('7'), "{e}");
    assert!(!attached(&lab, "p0") && !attached(&lab, "p1"));
}

#[test]
fn on_a_terminal_start_runs_the_console_with_the_engine_words_and_bye_stops_it() {
    let lab = Lab::bridge("stcon");
    assert!(
        Command::new("expect").arg("-v").output().is_ok(),
        "this test needs `expect` (package expect)"
    );
    let queue_file = QueueFile::new("stcon");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("console.exp");
    std::fs::write(
        &script,
        format!(
            r#"set timeout 10
spawn ip netns exec {br} env {run_dir} {bin} start --no-preset --queue-name {q} p0 p1
expect {{
  "ok " {{}}
  timeout {{ puts "NO PROMPT"; exit 2 }}
}}
send "0 tap.rx.enable if.stats\r"
expect {{
  "RX tap                enabled" {{}}
  timeout {{ puts "NO STATS"; exit 3 }}
}}
expect "ok "
send "7 tap.rx.enable\r"
expect {{
  "7 is not an interface" {{}}
  timeout {{ puts "NO ERROR"; exit 4 }}
}}
expect "ok "
send "bye\r"
expect {{
  "stopped, interfaces restored" {{}}
  timeout {{ puts "NO STOP"; exit 5 }}
}}
expect eof
"#,
            br = lab.br,
            run_dir = run_dir(&lab),
            bin = BIN,
            q = queue_file.0
        ),
    )
    .unwrap();
    let out = Command::new("expect")
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .expect("run expect");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "console session failed:\n{text}");
    assert!(!attached(&lab, "p0"), "XDP detached after bye");
}
