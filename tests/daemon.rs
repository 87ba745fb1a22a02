//! The daemon end to end, through the real binaries: `ethertap start -d` in a namespace lab,
//! `ethertap run/eval/status/stop`, `control ethertap` (driven by `expect`), the examples, and
//! bad clients on the real console socket (needs root, `ip`, `ethtool`, `expect`).
//!
//! Every test has its own lab, runtime directory (pid file, socket), log and packet queue, so
//! the tests run in parallel without seeing each other.

mod daemonlab;
mod lab;

use daemonlab::*;
use lab::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

const CONTROL: &str = env!("CARGO_BIN_EXE_control");
/// An end host no lab interface owns, for frames that belong to nobody in particular.
const OTHER_MAC: Mac = Mac([0x02, 0x99, 0, 0, 0, 0x07]);
const OTHER_DST: Mac = Mac([0x02, 0x99, 0, 0, 0, 0x08]);

/// Frames from `src` to `dst`, numbered from `first`.
fn frames(dst: Mac, src: Mac, first: u32, n: u32) -> Vec<Vec<u8>> {
    (first..first + n)
        .map(|i| frame(dst, src, &[], i, 64))
        .collect()
}

fn has_src(f: &[u8], mac: Mac) -> bool {
    f.get(6..12) == Some(&mac.0[..])
}

#[test]
fn tap_all_and_tap_host_examples_steer_the_daemons_tap() {
    let d = Daemon::start("dtap");
    let s0 = d.lab.packet_socket(&d.lab.h1, "e0");
    let s1 = d.lab.packet_socket(&d.lab.h2, "e1");

    let out = d.example("tap-all.rpcl", &[]);
    assert!(out.contains("RX tap enabled on every interface"), "{out}");
    for i in 0..2 {
        assert_eq!(d.stat_text(i, "RX tap"), "enabled", "interface {i}");
    }
    s0.send_all(&frames(E1_MAC, E0_MAC, 0, 20));
    s1.send_all(&frames(E0_MAC, E1_MAC, 100, 20));
    let tapped = d.tapped(40);
    let from = |ifidx: u8| {
        tapped
            .iter()
            .filter(|(i, _)| *i == ifidx)
            .filter_map(|(_, f)| seq_of(f, 0))
            .collect::<Vec<_>>()
    };
    assert_eq!(from(0), (0..20).collect::<Vec<_>>(), "tapped on port 0");
    assert_eq!(from(1), (100..120).collect::<Vec<_>>(), "tapped on port 1");

    let h1 = mac_text(E0_MAC);
    let out = d.example("tap-host.rpcl", &[&h1]);
    assert!(
        out.contains(&format!("tapping frames from or to {h1}")),
        "{out}"
    );
    assert!(d.eval("tap.hash.show").contains(&h1));
    // h1's own frames and the frames to it are tapped, another host's are not.
    s0.send_all(&frames(OTHER_DST, OTHER_MAC, 200, 10));
    s0.send_all(&frames(E1_MAC, E0_MAC, 300, 10));
    s1.send_all(&frames(E0_MAC, E1_MAC, 400, 10));
    let tapped: Vec<Vec<u8>> = d.tapped(20).into_iter().map(|(_, f)| f).collect();
    assert_eq!(
        seqs(&tapped),
        (300..310).chain(400..410).collect::<Vec<_>>(),
        "only frames from or to {h1}"
    );

    // Without its argument the example says how to use it, and fails.
    let out = d.output(&["run", examples().join("tap-host.rpcl").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("usage: tap-host.rpcl MAC"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn drop_host_example_drops_that_host_only() {
    let d = Daemon::start("ddrop");
    let s0 = d.lab.packet_socket(&d.lab.h1, "e0");
    let s1 = d.lab.packet_socket(&d.lab.h2, "e1");
    let h1 = mac_text(E0_MAC);
    let out = d.example("drop-host.rpcl", &[&h1]);
    assert!(out.contains(&format!("dropping frames from {h1}")), "{out}");
    assert!(d.eval("drop.hash.show").contains(&h1));

    s0.send_all(&frames(E1_MAC, E0_MAC, 0, 30));
    s0.send_all(&frames(OTHER_DST, OTHER_MAC, 100, 30));
    let got = s1.collect(30, Duration::from_secs(2));
    assert!(
        got.iter().all(|f| !has_src(f, E0_MAC)),
        "a dropped frame came through"
    );
    assert_eq!(
        seqs(&got),
        (100..130).collect::<Vec<_>>(),
        "the other host passes"
    );
    assert!(
        wait_for(Duration::from_secs(3), || d.stat(0, "drop") == 30),
        "drop counter of port 0: {}",
        d.stat(0, "drop")
    );
    // The other direction is untouched.
    s1.send_all(&frames(E0_MAC, E1_MAC, 200, 10));
    let back = s0.collect(10, Duration::from_secs(2));
    assert_eq!(seqs(&back), (200..210).collect::<Vec<_>>());
}

#[test]
fn loss_example_sets_fault_injection_on_one_direction() {
    let d = Daemon::start("dloss");
    let out = d.example("loss.rpcl", &[]);
    assert!(
        out.contains("fault injection enabled on interface 0"),
        "{out}"
    );
    assert_eq!(d.stat_text(0, "fault injection"), "enabled");
    assert_eq!(d.stat_text(0, "drop probability"), "1000 (1.000%)");
    assert_eq!(d.stat_text(1, "fault injection"), "disabled");
    d.eval("0 fault.disable");

    // 100 % on interface 0: everything h1 sends is lost, h2's frames still arrive.
    let out = d.example("loss.rpcl", &["0", "100"]);
    assert!(out.contains("interface 0"), "{out}");
    assert_eq!(d.stat_text(0, "drop probability"), "100000 (100.000%)");
    let s0 = d.lab.packet_socket(&d.lab.h1, "e0");
    let s1 = d.lab.packet_socket(&d.lab.h2, "e1");
    s0.send_all(&frames(E1_MAC, E0_MAC, 0, 25));
    s1.send_all(&frames(E0_MAC, E1_MAC, 100, 25));
    let to_h1 = s0.collect(25, Duration::from_secs(2));
    let to_h2 = s1.collect(0, Duration::from_millis(500));
    assert_eq!(
        seqs(&to_h1),
        (100..125).collect::<Vec<_>>(),
        "h2 -> h1 passes"
    );
    assert!(
        to_h2.is_empty(),
        "h1 -> h2 must be lost: {} came",
        to_h2.len()
    );
    assert!(
        wait_for(Duration::from_secs(3), || d.stat(0, "dropped by FI") == 25),
        "dropped by FI: {}",
        d.stat(0, "dropped by FI")
    );

    let out = d.example("loss.rpcl", &["1"]);
    assert!(out.contains("interface 1"), "{out}");
    assert_eq!(d.stat_text(1, "drop probability"), "1000 (1.000%)");
}

#[test]
fn stats_example_streams_each_block_as_it_is_printed() {
    let d = Daemon::start("dstat");
    let path = examples().join("stats-every-second.rpcl");
    let mut child = d
        .ethertap(&["run", path.to_str().unwrap(), "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ethertap run");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a line").expect("output");
    assert!(first.starts_with("0 p0 "), "{first}");
    // The first block arrived while the script still waits its second.
    assert!(
        child.try_wait().unwrap().is_none(),
        "output was not streamed: the script had already ended"
    );
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    assert!(status.success());
    let headers = std::iter::once(&first)
        .chain(&rest)
        .filter(|l| l.starts_with("0 p0 "))
        .count();
    assert_eq!(headers, 2, "two blocks:\n{first}\n{}", rest.join("\n"));

    // `| head -1`: the reader goes away; the client ends quietly and so does its script.
    let mut child = d
        .ethertap(&["run", path.to_str().unwrap(), "30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ethertap run");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    let start = Instant::now();
    let out = d.output(&["eval", "1 2 + ."]);
    assert!(out.status.success() && text(&out.stdout).contains('3'));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "the abandoned script still ran"
    );
}

// ---- RPCL scripts that cannot fail silently, in the daemon (issue 15) and the VM's hardening
// (issue 16: the files it reads, its memory budget, waiting words).

/// `ethertap ARGS` started with its stdout and stderr piped.
fn spawn_piped(d: &Daemon, args: &[&str]) -> Child {
    d.ethertap(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ethertap")
}

/// Spawns `ethertap ARGS` (its stderr piped) whose text prints the line `marker` before it
/// loops, and returns once that line came: from then on the text runs in the daemon. Output
/// streams to the client as it is written, so the line comes while the text still runs; the
/// rest of it is left in the reader.
fn spawn_started(d: &Daemon, args: &[&str], marker: &str) -> (Child, BufReader<ChildStdout>) {
    let mut child = spawn_piped(d, args);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        let _ = tx.send((line, stdout));
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok((line, stdout)) if line == format!("{marker}\n") => (child, stdout),
        got => {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "ethertap {args:?} did not print {marker:?} first: {:?}, {}",
                got.map(|(line, _)| line),
                text(&out.stderr)
            );
        }
    }
}

/// `ethertap ARGS` that must end within `secs`: killed and failed otherwise (a request that
/// waits for a VM held by another client would hang the test).
fn within(d: &Daemon, args: &[&str], secs: u64) -> Output {
    let mut child = spawn_piped(d, args);
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ethertap {args:?} did not end within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// What a script can change and `if.stats` shows, without the counters (they move with any
/// frame), and the three machashes.
fn settings(d: &Daemon) -> String {
    const COUNTERS: [&str; 8] = [
        "rx",
        "tx",
        "drop",
        "noif",
        "err",
        "dropped by FI",
        "flipped by FI",
        "duplicated by FI",
    ];
    let stats: Vec<String> = d
        .eval("if.stats")
        .lines()
        .filter(|l| {
            let label = l.get(..24).unwrap_or(l).trim();
            !COUNTERS.contains(&label)
        })
        .map(String::from)
        .collect();
    format!(
        "{}\n{}{}{}{}",
        stats.join("\n"),
        d.eval("tap.hash.show"),
        d.eval("drop.hash.show"),
        d.eval("fault.hash.show"),
        // The queues fed and how, not their counters (frames the hosts send may arrive).
        d.eval("tap.queue.list")
            .lines()
            .filter(|l| !l.trim_start().starts_with("inserted "))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

#[test]
fn every_example_checks_its_arguments_before_it_changes_anything() {
    let d = Daemon::start("dexbad");
    d.eval(
        "02:99:00:00:00:07 tap.hash.insert 02:99:00:00:00:08 drop.hash.insert \
         02:99:00:00:00:09 fault.hash.insert 1 tap.rx.enable 500 1 fault.drop.probability",
    );
    let before = settings(&d);
    let bad: &[(&str, &[&str])] = &[
        ("tap-host.rpcl", &["not-a-mac"]),
        ("tap-host.rpcl", &[]),
        ("tap-host.rpcl", &["02:99:00:00:00:01", "extra"]),
        ("drop-host.rpcl", &["zz:zz:zz:zz:zz:zz"]),
        ("drop-host.rpcl", &[]),
        ("loss.rpcl", &["9"]),
        ("loss.rpcl", &["-1"]),
        ("loss.rpcl", &["abc"]),
        ("loss.rpcl", &["0", "500"]),
        ("loss.rpcl", &["0", "x"]),
        ("loss.rpcl", &["0", "1", "2"]),
        ("stats-every-second.rpcl", &["abc"]),
        ("stats-every-second.rpcl", &["0"]),
        ("stats-every-second.rpcl", &["1", "2"]),
        ("tap-all.rpcl", &["extra"]),
        ("flows.rpcl", &[]),
        ("flows.rpcl", &["dexbad.flows"]),
        ("flows.rpcl", &["dexbad.flows", "0"]),
        ("flows.rpcl", &["dexbad.flows", "65"]),
        ("flows.rpcl", &["dexbad.flows", "x"]),
        ("flows.rpcl", &["dexbad/flows", "4"]),
        ("flows.rpcl", &["dexbad.flows", "4", "extra"]),
        ("ethertap.rpcl", &["extra"]),
    ];
    let mut files: Vec<String> = std::fs::read_dir(examples())
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.ends_with(".rpcl").then_some(name)
        })
        .collect();
    files.sort();
    for f in &files {
        assert!(
            bad.iter().any(|(name, _)| name == f),
            "examples/{f} has no bad-argument case here"
        );
    }
    for (file, args) in bad {
        let path = examples().join(file);
        let mut all = vec!["run", path.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = within(&d, &all, 30);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{file} {args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(": error: "),
            "{file} {args:?} says what is wrong: {}",
            text(&out.stderr)
        );
        assert_eq!(settings(&d), before, "{file} {args:?} changed the engine");
    }
}

#[test]
fn published_names_and_counters_as_values() {
    let d = Daemon::start("dpub");
    // The xdptap name changes if.stats as fault.flip.probability does.
    d.eval("1000 0 fault.bitflip.probability 0 fault.enable");
    let by_published_name = settings(&d);
    assert_eq!(d.stat_text(0, "flip probability"), "1000 (1.000%)");
    assert_eq!(d.stat_text(0, "fault injection"), "enabled");
    d.eval("0 0 fault.flip.probability 0 fault.disable");
    assert_ne!(settings(&d), by_published_name);
    d.eval("1000 0 fault.flip.probability 0 fault.enable");
    assert_eq!(settings(&d), by_published_name);
    assert!(d.eval(".i").contains("fault.bitflip.probability "));

    // Always: every frame h1 sends is flipped, as if.counter tells.
    d.eval("100000 0 fault.bitflip.probability");
    let s0 = d.lab.packet_socket(&d.lab.h1, "e0");
    let s1 = d.lab.packet_socket(&d.lab.h2, "e1");
    s0.send_all(&frames(E1_MAC, E0_MAC, 0, 20));
    let got = s1.collect(20, Duration::from_secs(2));
    assert_eq!(got.len(), 20);
    assert!(
        wait_for(Duration::from_secs(3), || d
            .eval("\"flipped by FI\" 0 if.counter .")
            == "20\n"),
        "flipped by FI: {}",
        d.eval("\"flipped by FI\" 0 if.counter .")
    );
    assert_eq!(d.eval("\"bitflipped by FI\" 0 if.counter ."), "20\n");

    // Each counter of if.stats, read in the same line, is the number the line shows.
    for (label, ifidx) in [
        ("rx", 0),
        ("tx", 1),
        ("rx", 1),
        ("drop", 0),
        ("flipped by FI", 0),
    ] {
        let out = d.eval(&format!("if.stats \"{label}\" {ifidx} if.counter ."));
        let (stats, value) = out.trim_end().rsplit_once('\n').unwrap();
        assert_eq!(
            parse_stat(stats, ifidx, label),
            value.parse().ok(),
            "{label} of {ifidx}:\n{out}"
        );
    }
    assert!(parse_stat(&d.eval("if.stats"), 0, "rx").unwrap() >= 20);
    let out = d.output(&["eval", "\"frames\" 0 if.counter"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: if.counter: \"frames\" is not a counter of if.stats (rx, tx, drop, noif, err, dropped by FI, flipped by FI, duplicated by FI)\n"
    );
}

#[test]
fn a_watch_loop_ends_when_drops_are_injected_and_others_are_served_meanwhile() {
    let d = Daemon::start("dwatch");
    let (watch, mut rest) = spawn_started(
        &d,
        &[
            "eval",
            "\"watching\" . .fflush begin 100 ms \"drop\" 0 if.counter 100 > until \"drops!\" .",
        ],
        "watching",
    );
    // The watch loop waits most of the time: another client is served at once, not after it.
    let out = within(&d, &["eval", "1 2 + ."], 10);
    assert_eq!(text(&out.stdout), "3\n");
    assert!(
        !text(&out.stderr).contains("waiting"),
        "the VM was held: {}",
        text(&out.stderr)
    );
    let out = within(
        &d,
        &["eval", "100000 0 fault.drop.probability 0 fault.enable"],
        10,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s0 = d.lab.packet_socket(&d.lab.h1, "e0");
    s0.send_all(&frames(E1_MAC, E0_MAC, 0, 150));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut watch = watch;
    while watch.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the watch loop did not end after 150 dropped frames (drop {})",
            d.stat(0, "drop")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = watch.wait_with_output().unwrap();
    let mut stdout = String::new();
    rest.read_to_string(&mut stdout).unwrap();
    assert_eq!(
        (stdout.as_str(), text(&out.stderr).as_str()),
        ("drops!\n", "")
    );
    assert!(out.status.success());
    assert!(d.stat(0, "dropped by FI") > 100);
}

#[test]
fn a_sleeping_script_is_interrupted_by_ctrl_c_and_holds_nobody() {
    let d = Daemon::start("dsleep");
    let script = d.run_dir().join("sleep.rpcl");
    std::fs::write(&script, "\"asleep\" . .fflush\nbegin 1000 ms 0 until\n").unwrap();
    let mut child = d
        .ethertap(&["run", script.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "asleep\n");
    for _ in 0..3 {
        let out = within(&d, &["eval", "\"served\" ."], 10);
        assert_eq!(text(&out.stdout), "served\n");
    }
    let out = signal_and_wait(child, nix::sys::signal::Signal::SIGINT);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!("{}:2:12: error: ms: interrupted\n", script.display())
    );
    assert_eq!(d.eval("1 2 + ."), "3\n");
}

#[test]
fn warnings_come_from_the_daemons_dictionary_and_strict_refuses() {
    let d = Daemon::start("dwarn");
    let out = d.output(&["eval", "0 tap.rx.enabel drop"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stderr),
        "1:3: warning: unknown word \"tap.rx.enabel\", pushed as a string (did you mean tap.rx.enable?)\n"
    );
    assert_eq!(d.stat_text(0, "RX tap"), "disabled");
    // A word another client defined is known to the warnings, and suggested.
    d.eval("\"2 *\" double !!");
    let out = d.output(&["eval", "21 doubel drop drop"]);
    assert!(
        text(&out.stderr).contains("(did you mean double?)"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(d.eval("21 double ."), "42\n");
    let script = d.run_dir().join("typo.rpcl");
    std::fs::write(&script, "\"ran\" .\n0 tap.rx.enabel\n").unwrap();
    let path = script.to_str().unwrap();
    let warning = format!(
        "{path}:2:3: warning: unknown word \"tap.rx.enabel\", pushed as a string (did you mean tap.rx.enable?)\n"
    );
    let out = d.output(&["run", path]);
    assert_eq!(
        (text(&out.stdout), text(&out.stderr)),
        ("ran\n".into(), warning.clone())
    );
    let out = d.output(&["run", "--strict", path]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "", "nothing ran");
    assert_eq!(
        text(&out.stderr),
        format!("{warning}{path}: error: --strict: 1 warning, nothing was run\n")
    );
}

#[test]
fn the_daemon_reads_only_regular_capped_files_and_keeps_a_memory_budget() {
    let d = Daemon::start("dfiles");
    let pipe = d.run_dir().join("pipe.rpcl");
    nix::unistd::mkfifo(&pipe, nix::sys::stat::Mode::S_IRWXU).unwrap();
    for (file, kind) in [
        ("/dev/zero", "a character device"),
        (pipe.to_str().unwrap(), "a FIFO"),
    ] {
        let out = within(&d, &["eval", &format!("\"{file}\" load")], 10);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            text(&out.stderr),
            format!("error: load: cannot read \"{file}\": not a regular file (it is {kind})\n")
        );
    }
    assert_eq!(d.eval("1 2 + ."), "3\n");

    let rss = || -> usize {
        let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<usize>().ok())
            .unwrap()
            * 1024
    };
    d.eval("\"0123456789abcdefghijklmnopqrstu\" 9 0 do dup concat loop big !");
    let before = rss();
    let out = within(
        &d,
        &[
            "eval",
            "20000 0 do big @ i ->str concat \"v\" i ->str concat ! loop",
        ],
        60,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("the dictionary's memory budget of 64 MiB is used up"),
        "{}",
        text(&out.stderr)
    );
    let grown = rss().saturating_sub(before);
    assert!(grown < 96 << 20, "the daemon grew by {} MB", grown >> 20);
    d.eval("20000 0 do \"v\" i ->str concat dup defined? if forget else drop then loop");
    let after = rss();
    assert!(
        after < before + (24 << 20),
        "after forget {} MB, before {} MB",
        after >> 20,
        before >> 20
    );
    assert_eq!(d.eval("1 2 + ."), "3\n");
}

#[test]
fn shebang_script_runs_in_the_daemon() {
    let d = Daemon::start("dsheb");
    let bin_dir = Path::new(ETHERTAP).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = d.env(Command::new(examples().join("tap-all.rpcl")));
    let out = c.env("PATH", path).output().expect("running the script");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("RX tap enabled"));
    assert_eq!(
        d.stat_text(1, "RX tap"),
        "enabled",
        "the daemon's engine changed"
    );
}

#[test]
fn parse_errors_are_reported_without_touching_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.rpcl");
    std::fs::write(&bad, "1 2 +\n  \"unterminated\n").unwrap();
    // Something listening where the daemon's socket would be: it must see no connection.
    let listener = std::os::unix::net::UnixListener::bind(dir.path().join("ethertap.sock"))
        .expect("bind a stand-in socket");
    listener.set_nonblocking(true).unwrap();
    let out = Command::new(ETHERTAP)
        .env("ETHERTAP_RUN_DIR", dir.path())
        .args(["run", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "{}:2:3: error: parse: unterminated string",
            bad.display()
        )),
        "{err}"
    );
    assert!(!err.contains("no daemon"), "{err}");
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the client connected before compiling: {other:?}"),
    }
    // The same for `eval`.
    let out = Command::new(ETHERTAP)
        .env("ETHERTAP_RUN_DIR", dir.path())
        .args(["eval", "1 if"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("error"), "{}", text(&out.stderr));
    assert!(
        listener.accept().is_err(),
        "eval connected before compiling"
    );
}

#[test]
fn bad_tap_filters_are_errors_and_the_daemon_keeps_the_previous_filter() {
    let d = Daemon::start("dfilt");
    d.eval("0 tap.rx.enable \"ether proto 0x88b5 and ether[14:4] < 1000\" tap.filter");
    let good = "ether proto 0x88b5 and ether[14:4] < 1000\n";
    let long = format!("\"{}\" tap.filter", "tcp or ".repeat(1500));
    let raw = d.run_dir().join("raw.rpcl");
    std::fs::write(&raw, b"\"tcp \xff\xfe port\" tap.filter\n").unwrap();
    let cases: [(Vec<&str>, &str); 5] = [
        (vec!["eval", "\"tcp port\" tap.filter"], "\"tcp port\" is not a valid filter: can't parse filter expression: syntax error"),
        (vec!["eval", "\"no such\" tap.filter"], "\"no such\" is not a valid filter: can't parse filter expression: syntax error"),
        (vec!["eval", &long], "is not a valid filter: it is 10500 bytes long, at most 4096 are allowed"),
        (vec!["eval", "\"tcp port \u{664}\u{664}\u{663} or udp\" tap.filter"], "\"tcp port \u{664}\u{664}\u{663} or udp\" is not a valid filter: can't parse filter expression: syntax error"),
        (vec!["run", raw.to_str().unwrap()], "\"tcp \u{fffd}\u{fffd} port\" is not a valid filter: can't parse filter expression: syntax error"),
    ];
    for (args, message) in cases {
        let out = d.output(&args);
        assert_eq!(out.status.code(), Some(1), "{args:.30?}");
        let err = text(&out.stderr);
        assert!(
            err.contains("error: tap.filter: ") && err.contains(message),
            "{err}"
        );
        assert!(
            err.len() < 400,
            "the error names the expression shortly: {err}"
        );
        assert_eq!(d.eval("tap.filter.show"), good, "the previous filter stays");
    }
    // Still alive, and the previous filter still applies: sequence numbers below 1000 only.
    let s0 = d.lab.packet_socket(&d.lab.h1, "e0");
    s0.send_all(&frames(E1_MAC, E0_MAC, 990, 20));
    let tapped: Vec<Vec<u8>> = d.tapped(10).into_iter().map(|(_, f)| f).collect();
    assert_eq!(seqs(&tapped), (990..1000).collect::<Vec<_>>());
    assert!(d
        .eval("tap.status")
        .contains("filter                  ether proto 0x88b5"));
}

#[test]
fn runtime_error_names_file_line_col_and_daemon_carries_on() {
    let d = Daemon::start("derr");
    let f = d.run_dir().join("fail.rpcl");
    std::fs::write(&f, "\"before\" .\n1 2 +\n  \"x\" 1 +\n\"after\" .\n").unwrap();
    let out = d.output(&["run", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("before") && !text(&out.stdout).contains("after"));
    assert!(
        text(&out.stderr).starts_with(&format!("{}:3:", f.display())),
        "{}",
        text(&out.stderr)
    );
    assert!(d.eval("3 4 + .").contains('7'));
}

#[test]
fn local_vm_with_notice_when_no_daemon_and_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(ETHERTAP)
        .env("ETHERTAP_RUN_DIR", dir.path())
        .args(["eval", "2 3 + ."])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(text(&out.stdout).contains('5'));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one notice line: {err}");
    assert!(err.contains("no daemon running; using a local VM"), "{err}");
    // Engine words then fail and say how to start the engine.
    let out = Command::new(ETHERTAP)
        .env("ETHERTAP_RUN_DIR", dir.path())
        .args(["eval", "if.stats"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("ethertap start -d"),
        "{}",
        text(&out.stderr)
    );

    // --local with a daemon running: no notice, and not the daemon's engine.
    let d = Daemon::start("dlocal");
    assert!(d.eval("if.stats").contains("p0"));
    let out = d.output(&["eval", "--local", "if.stats"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("needs the engine"),
        "{}",
        text(&out.stderr)
    );
    let f = d.run_dir().join("local.rpcl");
    std::fs::write(&f, "0 arg 1 arg + .\n").unwrap();
    let out = d.output(&["run", "--local", f.to_str().unwrap(), "20", "22"]);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("42"));
}

#[test]
fn ctrl_c_interrupts_the_script_in_the_daemon_not_the_daemon() {
    let d = Daemon::start("dintr");
    let f = d.run_dir().join("forever.rpcl");
    // The loop computes until its budget ends it: Ctrl-C has to come after it started (the
    // client then forwards it) and before that.
    std::fs::write(&f, "\"running\" . .fflush\nbegin 0 until\n").unwrap();
    let (child, _rest) = spawn_started(&d, &["run", f.to_str().unwrap()], "running");
    let out = signal_and_wait(child, nix::sys::signal::Signal::SIGINT);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("interrupted"),
        "{}",
        text(&out.stderr)
    );
    assert!(ethertap::sys::is_alive(d.pid()));
    assert!(d.eval("1 2 + .").contains('3'));
}

#[test]
fn runaway_loop_is_stopped_by_the_budget() {
    let d = Daemon::start("dbudg");
    let out = d.output(&["eval", "begin 0 until"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("instruction budget exhausted"),
        "{}",
        text(&out.stderr)
    );
    assert!(d.eval("1 2 + .").contains('3'));
}

#[test]
fn concurrent_clients_never_share_a_stack() {
    let d = Daemon::start("dconc");
    let f = d.run_dir().join("depth.rpcl");
    // Each run pushes N items, waits (so the runs overlap), and prints its depth.
    std::fs::write(&f, "0 arg 0 do i loop 100 ms depth .\n").unwrap();
    let children: Vec<_> = (1..=4)
        .map(|n| {
            let child = d
                .ethertap(&["run", f.to_str().unwrap(), &n.to_string()])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            (n, child)
        })
        .collect();
    for (n, child) in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(
            text(&out.stdout).trim(),
            n.to_string(),
            "run with {n} items"
        );
    }
}

#[test]
fn client_disconnecting_mid_script_leaves_the_daemon_healthy() {
    let d = Daemon::start("ddisc");
    let (mut child, _rest) = spawn_started(
        &d,
        &["eval", "\"running\" . .fflush begin 10 ms 0 until"],
        "running",
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let start = Instant::now();
    // It may still be winding down (then this client is told it waits): it must not be long.
    let out = d.output(&["eval", "1 2 + ."]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains('3'));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "the vanished client's script still held the VM"
    );
}

/// Runs an `expect` script with the daemon's environment; its output, failing on error.
fn expect(d: &Daemon, script: &str) -> String {
    let file = d.run_dir().join("session.exp");
    std::fs::write(&file, script).unwrap();
    let out = d
        .env(Command::new("expect"))
        .arg(&file)
        .output()
        .expect("this test needs `expect` (apt-get install expect)");
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "expect script failed:\n{all}");
    all
}

#[test]
fn control_console_session_prompt_words_completion_and_one_at_a_time() {
    let d = Daemon::start("dcons");
    let h1 = mac_text(E0_MAC);
    // Known only to the daemon's dictionary: completion must come from there.
    d.eval("\"77 .\" probe.word !!");
    // `want` waits for a pattern on one spawned process and fails the script with `what` on a
    // timeout or an early end (expect's one-line brace form would take the block as a pattern).
    let script = r#"set timeout 10
proc fail {what} { puts "\nFAILED: $what"; exit 1 }
proc want {id pattern what} {
    expect {
        -i $id -re $pattern {}
        -i $id timeout { fail $what }
        -i $id eof { fail "$what (the program ended)" }
    }
}
spawn @CONTROL@ ethertap
set first $spawn_id
want $first "ok " "no ok prompt"
send "21 2 * .\r"
want $first "42" "no result of a word"
want $first "ok " "no prompt after a line"
send "@MAC@ tap.hash.ins\t"
want $first "tap\\.hash\\.insert" "no Tab completion"
send "\r"
want $first "ok " "no prompt after the completed word"
send "probe.wo\t"
want $first "probe\\.word" "no completion of a word defined in the daemon"
send "\r"
want $first "77" "the daemon's word did not run"
want $first "ok " "no prompt after the daemon's word"
send "1234 1 + . .fflush begin 0 until\r"
want $first "1235" "the running line printed nothing"
send "\003"
want $first "interrupted" "Ctrl-C did not interrupt the running line"
want $first "ok " "no prompt after Ctrl-C"
spawn @ETHERTAP@ console
set third $spawn_id
want $third "in use by PID \[0-9]+" "ethertap console not refused while a session is open"
catch { expect -i $third eof }
wait -i $third
spawn @CONTROL@ ethertap
set second $spawn_id
want $second "in use by PID \[0-9]+" "second session not refused with who holds it"
catch { expect -i $second eof }
lassign [wait -i $second] pid spawnid oserr code
if {$code == 0} { fail "second session exited 0" }
set spawn_id $first
send "\004"
expect {
    eof {}
    timeout { fail "Ctrl-D did not leave" }
}
lassign [wait] pid spawnid oserr code
if {$code != 0} { fail "session exit status $code" }
puts "\nSESSION-OK"
"#
    .replace("@CONTROL@", CONTROL)
    .replace("@ETHERTAP@", ETHERTAP)
    .replace("@MAC@", &h1);
    let out = expect(&d, &script);
    assert!(out.contains("SESSION-OK"), "{out}");
    assert!(out.contains("in use by PID"), "{out}");
    // The words ran in the daemon's VM, and the daemon still runs.
    assert!(d.eval("tap.hash.show").contains(&h1));
    assert!(ethertap::sys::is_alive(d.pid()));
    // The session is free again.
    let again = r#"set timeout 10
spawn @CONTROL@ ethertap
expect {
    "ok " {}
    timeout { puts "FAILED: no prompt"; exit 1 }
    eof { puts "FAILED: refused"; exit 1 }
}
send "bye\r"
expect eof
puts AGAIN-OK
"#
    .replace("@CONTROL@", CONTROL);
    let out = expect(&d, &again);
    assert!(out.contains("AGAIN-OK"), "{out}");
    assert!(
        ethertap::sys::is_alive(d.pid()),
        "bye left the daemon running"
    );
}

#[test]
fn status_stop_socket_mode_and_start_twice() {
    let d = Daemon::start("dstop");
    let pid = d.pid();
    let mode = std::fs::metadata(d.socket()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(),
        Path::new("/"),
        "the daemon's working directory"
    );
    let log = std::fs::read_to_string(d.log()).expect("the daemon's log file");
    assert!(
        log.contains(&format!(
            " pid {pid}: ethertap {} started: bridge mode on 0 p0, 1 p1",
            env!("CARGO_PKG_VERSION")
        )),
        "{log}"
    );

    for out in [
        d.output(&["status"]),
        d.env(Command::new(CONTROL))
            .args(["ethertap", "status"])
            .output()
            .unwrap(),
    ] {
        assert!(out.status.success(), "{}", text(&out.stderr));
        let s = text(&out.stdout);
        assert!(
            s.starts_with(&format!("ethertap PID {pid} running\n")),
            "{s}"
        );
        for want in [
            "  uptime ",
            "  mode                  bridge",
            "  interface 0           p0 veth",
            "  interface 1           p1 veth",
            &format!("  packet queue          {} (", d.queue),
        ] {
            assert!(s.contains(want), "{want:?} missing in\n{s}");
        }
    }

    let out = d.start_cmd().output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!("ethertap is already running (PID {pid})")),
        "{}",
        text(&out.stderr)
    );
    assert!(d.xdp_attached("p0") && d.xdp_attached("p1"));

    // A script still running when the stop comes is interrupted; it does not delay the stop.
    let (waiting, _rest) = spawn_started(
        &d,
        &["eval", "\"running\" . .fflush begin 10 ms 0 until"],
        "running",
    );
    let out = d.output(&["stop"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("shutdown of ethertap PID {pid} complete")
    );
    assert!(!ethertap::sys::is_alive(pid));
    let out = waiting.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("interrupted"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !d.xdp_attached("p0") && !d.xdp_attached("p1"),
        "XDP left on a port"
    );
    assert!(!d.pid_file().exists(), "pid file left behind");
    assert!(!d.socket().exists(), "socket left behind");
    let log = std::fs::read_to_string(d.log()).unwrap();
    assert!(
        log.contains(&format!(
            " pid {pid}: ethertap stopped, interfaces restored"
        )),
        "{log}"
    );

    for args in [&["status"][..], &["stop"][..]] {
        let out = d.output(args);
        assert_eq!(out.status.code(), Some(3), "{args:?} without a daemon");
        assert!(text(&out.stderr).contains("not running"));
    }
    let out = d
        .env(Command::new(CONTROL))
        .arg("ethertap")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "control ethertap without a daemon"
    );
    assert!(text(&out.stderr).contains("ethertap is not running"));
}

#[test]
fn control_ethertap_stop_and_restart_after_kill_9() {
    let d = Daemon::start("dkill");
    let pid = d.pid();
    d.eval("0 tap.rx.enable");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(wait_for(Duration::from_secs(5), || {
        !ethertap::sys::is_alive(pid)
    }));
    assert!(
        d.socket().exists() && d.pid_file().exists(),
        "kill -9 leaves both behind"
    );

    let out = d.start_cmd().output().unwrap();
    assert!(
        out.status.success(),
        "start after kill -9: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let new_pid = d.pid();
    assert_ne!(new_pid, pid);
    assert!(d.xdp_attached("p0") && d.xdp_attached("p1"));
    // A fresh engine: nothing of the killed daemon's settings.
    assert_eq!(d.stat_text(0, "RX tap"), "disabled");
    let s0 = d.lab.packet_socket(&d.lab.h1, "e0");
    let s1 = d.lab.packet_socket(&d.lab.h2, "e1");
    s0.send_all(&frames(E1_MAC, E0_MAC, 0, 10));
    assert_eq!(
        seqs(&s1.collect(10, Duration::from_secs(2))),
        (0..10).collect::<Vec<_>>()
    );

    let out = d
        .env(Command::new(CONTROL))
        .args(["ethertap", "stop"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("shutdown of ethertap PID {new_pid} complete")
    );
    assert!(!d.xdp_attached("p0"), "XDP left on a port");
    assert!(!d.socket().exists() && !d.pid_file().exists());
}

fn raw_client(d: &Daemon) -> UnixStream {
    let s = UnixStream::connect(d.socket()).expect("connect to the daemon's socket");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

#[test]
fn bad_clients_leave_the_daemon_answering() {
    let d = Daemon::start("dbad");
    // Garbage bytes: an unknown message type. The daemon says so and closes.
    let mut s = raw_client(&d);
    s.write_all(b"\xffgarbage\x00\x01\x02 not a frame at all")
        .unwrap();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    assert!(text(&reply).contains("bad request"), "{:?}", text(&reply));
    // A frame announcing 4 GiB: refused without reading it.
    let mut s = raw_client(&d);
    s.write_all(&[b'E', 0xff, 0xff, 0xff, 0xff]).unwrap();
    s.write_all(&[b'x'; 65536]).ok();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    assert!(
        text(&reply).contains("larger than the limit"),
        "{:?}",
        text(&reply)
    );
    // Half a frame, then the client vanishes.
    let mut s = raw_client(&d);
    s.write_all(&[b'E', 0, 0, 1, 0, b'1']).unwrap();
    drop(s);
    assert!(d.eval("1 2 + .").contains('3'));

    // A script just under the source limit (1 MiB): run, and answered.
    let big = d.run_dir().join("big.rpcl");
    let tail = "\n\"big done\" .\n";
    let body = "1 drop ".repeat((ethertap::rpcl::MAX_SOURCE - tail.len()) / 7);
    std::fs::write(&big, body + tail).unwrap();
    let out = d.output(&["run", big.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("big done"));
    // Over it (3 MB): a clear refusal before anything is compiled or sent.
    std::fs::write(&big, "1 drop ".repeat((3 << 20) / 7)).unwrap();
    let out = d.output(&["run", big.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("bytes is more than the limit of 1048576 bytes"),
        "{}",
        text(&out.stderr)
    );
    assert!(d.eval("1 2 + .").contains('3'));

    // A client whose script prints without end and who never reads: cut off by the write
    // timeout, its script interrupted; meanwhile status still answers.
    let mut never_reads = raw_client(&d);
    let flood = "begin \"flood flood flood flood flood flood flood flood\" . 0 until";
    let mut frame = vec![b'E'];
    frame.extend_from_slice(&(flood.len() as u32).to_be_bytes());
    frame.extend_from_slice(flood.as_bytes());
    never_reads.write_all(&frame).unwrap();
    // Once it printed, it runs; nothing more is read.
    assert!(
        matches!(
            ethertap::ctl::proto::Reply::read_from(&mut never_reads),
            Ok(ethertap::ctl::proto::Reply::Output(_))
        ),
        "the flood did not start"
    );
    let out = d.output(&["status"]);
    assert!(out.status.success(), "status while the VM is busy");
    let start = Instant::now();
    let out = d.output(&["eval", "40 2 + ."]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("42"));
    assert!(
        start.elapsed() < Duration::from_secs(40),
        "next client answered after {:?}",
        start.elapsed()
    );
    drop(never_reads);
    assert!(ethertap::sys::is_alive(d.pid()));
}

#[test]
fn preset_example_runs_at_start() {
    let d = Daemon::start_with("dpres", Some(examples().join("ethertap.rpcl")), &[]);
    for i in 0..2 {
        assert_eq!(d.stat_text(i, "RX tap"), "enabled", "interface {i}");
    }
    // The site word the preset defines is there for every client.
    let out = d.eval("status");
    assert!(
        out.contains("0 p0 ") && out.contains(&format!("packet queue {}", d.queue)),
        "{out}"
    );
    // A preset that fails stops the start, with the error on the terminal.
    d.output(&["stop"]);
    let bad = d.run_dir().join("bad-preset.rpcl");
    std::fs::write(&bad, "1 2 +\n7 tap.rx.enable\n").unwrap();
    let out = d
        .env(Command::new("ip"))
        .args([
            "netns", "exec", &d.lab.br, ETHERTAP, "start", "-d", "--preset",
        ])
        .arg(&bad)
        .args(["--queue-name", &d.queue, "p0", "p1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("{}:2:", bad.display())) && err.contains("not an interface"),
        "{err}"
    );
    assert!(!d.pid_file().exists() && !d.socket().exists());
    assert!(!d.xdp_attached("p0"), "XDP left after a failed start");
}

#[test]
fn other_users_are_refused_even_when_the_socket_is_reachable() {
    let d = Daemon::start("dperm");
    // Open the door by mistake: the peer-credential check must still refuse.
    std::fs::set_permissions(d.run_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(d.socket(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = d
        .env(Command::new("setpriv"))
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            ETHERTAP,
            "eval",
            "1 .",
        ])
        .output()
        .expect("this test needs `setpriv` (util-linux)");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("permission denied: the ethertap console is for root only"),
        "{}",
        text(&out.stderr)
    );
    assert!(d.eval("1 2 + .").contains('3'));
    // Nor may another user start a second engine.
    let out = d
        .env(Command::new("setpriv"))
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            ETHERTAP,
            "start",
            "-d",
        ])
        .args(["--no-preset", "p0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!text(&out.stderr).is_empty(), "a reason is given");
    assert!(ethertap::sys::is_alive(d.pid()));
}

#[test]
fn the_flows_example_feeds_a_laned_queue_and_taps_every_port() {
    let d = Daemon::start("dflows");
    let name = format!("{}.flows", d.queue);
    struct Gone(String);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(ethertap::pqueue::queue_path(&self.0));
        }
    }
    let _gone = Gone(name.clone());
    let out = d.example("flows.rpcl", &[&name, "4"]);
    assert!(
        out.contains(&format!("feeding packet queue {name} in 4 lanes")),
        "{out}"
    );
    let list = d.eval("tap.queue.list");
    assert!(
        list.contains(&format!(
            "{name}\n  lanes 4 of 1024 slots, snaplen as tapped, filter none\n"
        )),
        "{list}"
    );
    for i in 0..2 {
        assert_eq!(d.stat_text(i, "RX tap"), "enabled", "interface {i}");
    }
    let status = d.eval("tap.queue.status");
    for k in 0..4 {
        assert!(status.contains(&format!("  lane {k} ")), "{status}");
    }
}
