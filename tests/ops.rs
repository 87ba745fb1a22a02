//! Operations (issue 17) and the refusals of issue 16 (items 4, 13, 14), through the real
//! binaries: a daemon on a namespace lab scraped by a real Prometheus server, the JSON reports
//! against the text ones, the log, a non-root stop, pid files that name someone else, and
//! scripts too large or not regular (needs root, `ip`, `ethtool`, `curl`, and the Debian
//! package `prometheus` for `prometheus` and `promtool`).

mod daemonlab;
mod lab;

use daemonlab::*;
use ethertap::ctl::report::{StatsReport, StatusReport};
use ethertap::ixdp::report::InterfaceReport;
use lab::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const CONTROL: &str = env!("CARGO_BIN_EXE_control");
/// A MAC no lab interface owns: the far host counts the frames and drops them cheaply.
const NOBODY: Mac = Mac([0x02, 0x99, 0, 0, 0, 0x09]);

fn require(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "this test needs `{tool}` (apt-get install {package})"
    );
}

/// What the operations tests ask of the daemon beyond the shared harness.
impl Daemon {
    /// Runs `ethertap eval LINE` and returns the client's pid with the output.
    fn eval_with_pid(&self, line: &str) -> (u32, String) {
        let child = self
            .env(Command::new(ETHERTAP))
            .args(["eval", line])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ethertap eval");
        let pid = child.id();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{line}: {}", text(&out.stderr));
        (pid, text(&out.stdout))
    }

    fn stats(&self) -> StatsReport {
        serde_json::from_str(&self.ok(&["stats", "--json"])).expect("stats --json parses")
    }

    /// Sends frames from h1 to h2 and back (to a MAC nobody owns) and waits until they crossed
    /// (nine tenths of those from h2, which fault injection may thin out) and settled.
    fn traffic(&self, each_way: u32) {
        let a = self.lab.packet_socket(&self.lab.h1, "e0");
        let b = self.lab.packet_socket(&self.lab.h2, "e1");
        let frames = |src, n: u32, len| -> Vec<Vec<u8>> {
            (0..n).map(|i| frame(NOBODY, src, &[], i, len)).collect()
        };
        a.send_all(&frames(E0_MAC, each_way, 60));
        b.send_all(&frames(E1_MAC, each_way / 2, 300));
        assert!(
            wait_for(Duration::from_secs(10), || {
                self.lab.counter(&self.lab.h2, "e1", "rx_packets") >= u64::from(each_way)
                    && self.lab.counter(&self.lab.h1, "e0", "rx_packets")
                        >= u64::from(each_way / 2 * 9 / 10)
            }),
            "the frames crossed the bridge"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// `ip netns exec NS curl -s URL`: the body.
fn curl(ns: &str, url: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "curl", "-sf", url])
        .output()
        .expect("curl");
    assert!(out.status.success(), "curl {url}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// The values Prometheus' HTTP API returns for an instant query, by interface; none while
/// the server does not answer yet (it takes a while to start on a loaded machine).
fn prometheus_values(ns: &str, metric: &str) -> Vec<(String, u64)> {
    let url = format!("http://127.0.0.1:9090/api/v1/query?query={metric}");
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "curl", "-sf", &url])
        .output()
        .expect("curl");
    if !out.status.success() {
        return Vec::new();
    }
    let v: serde_json::Value =
        serde_json::from_str(&text(&out.stdout)).expect("API answer is JSON");
    let mut values: Vec<(String, u64)> = v["data"]["result"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .filter_map(|r| {
                    let name = r["metric"]["interface"].as_str()?.to_string();
                    let value = r["value"][1].as_str()?.parse().ok()?;
                    Some((name, value))
                })
                .collect()
        })
        .unwrap_or_default();
    values.sort();
    values
}

#[test]
fn prometheus_scrapes_the_daemon_and_agrees_with_if_stats_and_the_far_hosts() {
    require("curl", "curl");
    require("prometheus", "prometheus");
    require("promtool", "prometheus");
    let mut d = Daemon::start_with("prom", None, &["--metrics", "127.0.0.1:9101"]);
    d.traffic(400);

    // The exposition itself: the classic text format, clean for promtool.
    let scrape = curl(&d.lab.br, "http://127.0.0.1:9101/metrics");
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    use std::io::Write;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let checked = check.wait_with_output().unwrap();
    assert!(
        checked.status.success() && checked.stdout.is_empty() && checked.stderr.is_empty(),
        "promtool check metrics: {}{}\n{scrape}",
        text(&checked.stdout),
        text(&checked.stderr)
    );
    for family in [
        "ethertap_drop_total{interface=\"p0\",reason=\"machash\"}",
        "ethertap_tap_queue_depth{queue=",
        "ethertap_build_info{version=",
        "ethertap_up 1",
    ] {
        assert!(scrape.contains(family), "{family} in\n{scrape}");
    }

    // A real Prometheus server, unprivileged, scraping every second.
    let prom_dir = tempfile::tempdir().unwrap();
    let config = prom_dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ethertap\n    static_configs:\n      - targets: ['127.0.0.1:9101']\n",
    )
    .unwrap();
    let tsdb = prom_dir.path().join("tsdb");
    std::fs::create_dir(&tsdb).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(prom_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    nix::unistd::chown(&tsdb, Some(65534.into()), Some(65534.into())).unwrap();
    let (config_arg, tsdb_arg) = (
        format!("--config.file={}", config.display()),
        format!("--storage.tsdb.path={}", tsdb.display()),
    );
    let br = d.lab.br.clone();
    d.lab.spawn(
        &br,
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "prometheus",
            &config_arg,
            &tsdb_arg,
            "--web.listen-address=127.0.0.1:9090",
        ],
    );

    let want = |f: fn(&InterfaceReport) -> u64, s: &StatsReport| -> Vec<(String, u64)> {
        let mut v: Vec<_> = s
            .interfaces
            .iter()
            .map(|i| (i.id.name.clone(), f(i)))
            .collect();
        v.sort();
        v
    };
    let mut last = String::new();
    let agreed = wait_for(Duration::from_secs(40), || {
        let stats = d.stats();
        let text = d.ok(&["eval", "if.stats"]);
        let far = (
            d.lab.counter(&d.lab.h2, "e1", "rx_packets"),
            d.lab.counter(&d.lab.h2, "e1", "rx_bytes"),
            d.lab.counter(&d.lab.h1, "e0", "rx_packets"),
            d.lab.counter(&d.lab.h1, "e0", "rx_bytes"),
        );
        let p1 = &stats.interfaces[1];
        let p0 = &stats.interfaces[0];
        let mut ok = (p1.tx, p1.tx_bytes, p0.tx, p0.tx_bytes) == far;
        ok &=
            parse_stat(&text, 1, "tx") == Some(p1.tx) && parse_stat(&text, 0, "rx") == Some(p0.rx);
        for (metric, f) in [
            (
                "ethertap_receive_packets_total",
                (|i: &InterfaceReport| i.rx) as fn(&_) -> u64,
            ),
            ("ethertap_transmit_packets_total", |i| i.tx),
            ("ethertap_receive_bytes_total", |i| i.rx_bytes),
            ("ethertap_transmit_bytes_total", |i| i.tx_bytes),
        ] {
            let got = prometheus_values(&d.lab.br, metric);
            ok &= got == want(f, &stats);
            last = format!("{metric}: Prometheus {got:?}, if.stats {:?}, far hosts (tx p1, bytes, tx p0, bytes) {far:?}", want(f, &stats));
        }
        if !ok {
            std::thread::sleep(Duration::from_millis(500));
        }
        ok
    });
    assert!(
        agreed,
        "Prometheus, if.stats and the far hosts disagree: {last}"
    );
    let stats = d.stats();
    assert!(stats.interfaces[0].rx >= 400 && stats.interfaces[1].tx_bytes >= 400 * 60);
}

#[test]
fn stats_and_status_json_carry_the_figures_of_the_text_outputs() {
    let d = Daemon::start("json");
    d.ok(&[
        "eval",
        "0 tap.rx.enable 1000 1 fault.drop.probability 1 fault.enable",
    ]);
    d.traffic(300);
    let text = d.ok(&["eval", "if.stats"]);
    let json = d.stats();
    assert_eq!(json.interfaces.len(), 2);
    for (i, ifr) in json.interfaces.iter().enumerate() {
        for (label, value) in [
            ("rx", ifr.rx),
            ("tx", ifr.tx),
            ("drop", ifr.drop),
            ("noif", ifr.noif),
            ("err", ifr.err),
            ("dropped by FI", ifr.fault.dropped),
            ("flipped by FI", ifr.fault.flipped),
            ("duplicated by FI", ifr.fault.duplicated),
        ] {
            assert_eq!(parse_stat(&text, i, label), Some(value), "{label} of {i}");
        }
        assert!(ifr.rx_bytes >= ifr.rx * 60, "bytes counted: {ifr:?}");
    }
    assert!(json.interfaces[0].rx_tap && !json.interfaces[1].rx_tap);
    assert_eq!(json.interfaces[1].fault.drop_probability, 1000);
    assert!(json.interfaces[1].fault.enabled);
    assert!(text.contains("1 p1 veth queues:2 COPY"), "{text}");

    // The word prints the same interfaces, and tap.queue.status the same queue figures.
    let word: serde_json::Value =
        serde_json::from_str(&d.ok(&["eval", "if.stats.json"])).expect("if.stats.json parses");
    let from_word: Vec<InterfaceReport> =
        serde_json::from_value(word["interfaces"].clone()).unwrap();
    assert_eq!(from_word, json.interfaces);
    let queue_text = d.ok(&["eval", "tap.queue.status"]);
    let q = &json.queues[0];
    assert_eq!(q.name, d.queue);
    for (label, value) in [
        ("inserted", q.inserted),
        ("full", q.full),
        ("retrieved", q.retrieved),
        ("head", q.head),
        ("tail", q.tail),
    ] {
        let line = queue_text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(label))
            .unwrap_or_else(|| panic!("{label} in {queue_text}"));
        assert_eq!(
            line.split_whitespace().nth(1),
            Some(value.to_string().as_str())
        );
    }
    assert!(
        q.inserted >= 300,
        "the RX tap of port 0 filled the queue: {q:?}"
    );

    let status: StatusReport =
        serde_json::from_str(&d.ok(&["status", "--json"])).expect("status --json parses");
    let status_text = d.ok(&["status"]);
    assert!(status_text.starts_with(&format!("ethertap PID {} running", status.pid)));
    assert_eq!(status.mode, "bridge");
    assert!(status_text.contains("  mode                  bridge"));
    for i in &status.interfaces {
        assert!(
            status_text.contains(&format!(
                "interface {}           {} veth queues:{}",
                i.index, i.name, i.queues
            )),
            "{status_text}"
        );
    }
    assert_eq!(status.queue.name, d.queue);
    assert_eq!(status.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(status.metrics, None);
    // `ethertap stats` without --json: the two text reports.
    let both = d.ok(&["stats"]);
    assert!(both.contains("0 p0 veth") && both.contains(&format!("packet queue {}", d.queue)));
}

/// `2026-12-02T05:42:22.123Z LEVEL uid U pid P: MESSAGE` → (level, uid, pid, message).
fn parse_log_line(line: &str) -> Option<(&str, u32, u32, &str)> {
    let (time, rest) = line.split_once(' ')?;
    let t = time.as_bytes();
    let rfc3339 = time.len() == 24
        && t[4] == b'-'
        && t[10] == b'T'
        && t[19] == b'.'
        && time.ends_with('Z')
        && humantime::parse_rfc3339(time).is_ok();
    if !rfc3339 {
        return None;
    }
    let (level, rest) = rest.split_once(' ')?;
    let rest = rest.strip_prefix("uid ")?;
    let (uid, rest) = rest.split_once(" pid ")?;
    let (pid, msg) = rest.split_once(": ")?;
    Some((level, uid.parse().ok()?, pid.parse().ok()?, msg))
}

#[test]
fn the_log_records_start_changes_an_interface_removal_and_stop_with_time_uid_and_pid() {
    let d = Daemon::start("log");
    let (fault_pid, _) = d.eval_with_pid("5000 0 fault.drop.probability");
    let (tap_pid, _) = d.eval_with_pid("1 tap.tx.enable");
    let (_, _) = d.eval_with_pid("if.stats");
    d.lab.ip(&d.lab.br, &["link", "del", "p1"]);
    assert!(
        wait_for(Duration::from_secs(5), || std::fs::read_to_string(d.log())
            .unwrap_or_default()
            .contains("is gone")),
        "the removal is logged"
    );
    let recent = d.ok(&["log", "-n", "3"]);
    assert_eq!(recent.lines().count(), 3, "{recent}");
    assert!(recent.contains("p1 is gone"), "{recent}");
    let stop = d
        .env(Command::new(ETHERTAP))
        .arg("stop")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stop_pid = stop.id();
    assert!(stop.wait_with_output().unwrap().status.success());

    let log = std::fs::read_to_string(d.log()).unwrap();
    let lines: Vec<_> = log
        .lines()
        .map(|l| parse_log_line(l).unwrap_or_else(|| panic!("not a log line: {l:?}\n{log}")))
        .collect();
    let find = |pred: &dyn Fn(&str) -> bool| {
        *lines
            .iter()
            .find(|(_, _, _, m)| pred(m))
            .unwrap_or_else(|| panic!("missing in the log:\n{log}"))
    };
    let started = find(&|m| m.starts_with("ethertap ") && m.contains(" started: bridge mode"));
    let daemon_pid = started.2;
    assert_eq!((started.0, started.1), ("INFO", 0));
    assert_eq!(
        find(&|m| m == "eval: 5000 0 fault.drop.probability"),
        ("INFO", 0, fault_pid, "eval: 5000 0 fault.drop.probability")
    );
    assert_eq!(
        find(&|m| m == "eval: 1 tap.tx.enable"),
        ("INFO", 0, tap_pid, "eval: 1 tap.tx.enable")
    );
    let gone = find(&|m| m.contains("p1 is gone"));
    assert_eq!((gone.0, gone.2), ("WARN", daemon_pid));
    assert_eq!(find(&|m| m == "stop"), ("INFO", 0, stop_pid, "stop"));
    let stopped = find(&|m| m.contains("stopped, interfaces restored"));
    assert_eq!(stopped.2, daemon_pid);
    assert!(
        !lines.iter().any(|(_, _, _, m)| m.contains("if.stats")),
        "reading words change nothing and are not logged:\n{log}"
    );
}

#[test]
fn a_refused_stop_ends_at_once_with_the_reason() {
    let d = Daemon::start("nrstop");
    // A socket reachable by mistake: the daemon still refuses other users, and the client
    // must not wait for a stop that will not come.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        d.dir.path().join("ethertap.sock"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    let mut c = d.env(Command::new("setpriv"));
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", ETHERTAP])
        .args(["stop", "--timeout", "30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("setpriv");
    let begun = Instant::now();
    let ended = wait_for(Duration::from_secs(10), || {
        child.try_wait().ok().flatten().is_some()
    });
    if !ended {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    assert!(ended, "a refused stop waited ({:?})", begun.elapsed());
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("permission denied"),
        "{}",
        text(&out.stderr)
    );
    assert!(d.ok(&["status"]).contains("running"), "the daemon runs on");
}

#[test]
fn pid_files_naming_an_unrelated_process_are_neither_running_nor_killed() {
    let dir = tempfile::tempdir().unwrap();
    let mut unrelated = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = unrelated.id();
    for f in ["collect.pid", "ethertap.pid", "collect.night.pid"] {
        std::fs::write(dir.path().join(f), format!("{pid}\n")).unwrap();
    }
    let run = |prog: &str, args: &[&str]| {
        Command::new(prog)
            .args(args)
            .env("ETHERTAP_RUN_DIR", dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    for (prog, args) in [
        (CONTROL, &["collect", "status"][..]),
        (CONTROL, &["collect", "stop"]),
        (CONTROL, &["night", "stop"]),
        (CONTROL, &["ethertap", "stop"]),
        (ETHERTAP, &["stop", "--timeout", "2"]),
    ] {
        let out = run(prog, args);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(
            unrelated.try_wait().unwrap().is_none(),
            "{args:?} killed an unrelated process"
        );
    }
    let status = run(CONTROL, &["collect", "status"]);
    assert!(
        text(&status.stderr).contains("not running (stale pid file"),
        "{}",
        text(&status.stderr)
    );
    unrelated.kill().unwrap();
    unrelated.wait().unwrap();
}

/// Runs `ethertap ARGS` with no daemon; fails the test if it does not end within 10 s.
fn ethertap_no_daemon(dir: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(ETHERTAP)
        .args(args)
        .env("ETHERTAP_RUN_DIR", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ended = wait_for(Duration::from_secs(10), || {
        child.try_wait().ok().flatten().is_some()
    });
    if !ended {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        ended,
        "ethertap {args:?} did not end: {}",
        text(&out.stderr)
    );
    out
}

#[test]
fn scripts_too_large_or_not_regular_are_refused_before_they_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.rpcl");
    // 100 MB (sparse): refused from its size, not compiled.
    std::fs::File::create(&big)
        .unwrap()
        .set_len(100 << 20)
        .unwrap();
    let fifo = dir.path().join("fifo.rpcl");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let (big_s, fifo_s) = (big.to_str().unwrap(), fifo.to_str().unwrap());
    for args in [
        &["run", big_s][..],
        &["run", "--local", big_s],
        &["check", big_s],
    ] {
        let out = ethertap_no_daemon(dir.path(), args);
        let e = text(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            e.contains(big_s) && e.contains("104857600 bytes") && e.contains("limit of"),
            "{args:?}: {e}"
        );
    }
    for args in [&["run", fifo_s][..], &["check", fifo_s]] {
        let out = ethertap_no_daemon(dir.path(), args);
        let e = text(&out.stderr);
        assert!(
            !out.status.success() && e.contains("not a regular file"),
            "{args:?}: {e}"
        );
    }
    let small = dir.path().join("ok.rpcl");
    std::fs::write(&small, "1 2 + .\n").unwrap();
    let out = ethertap_no_daemon(dir.path(), &["run", "--local", small.to_str().unwrap()]);
    assert!(
        out.status.success() && text(&out.stdout) == "3\n",
        "{}",
        text(&out.stderr)
    );
}

/// A queue file this test created, removed when it ends (also when it fails).
struct QueueFile(String);

impl Drop for QueueFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(ethertap::pqueue::queue_path(&self.0));
    }
}

#[test]
fn an_added_queue_is_fed_through_its_filter_and_reported_beside_the_default_one() {
    let d = Daemon::start("fanq");
    let extra = QueueFile(format!("{}.extra", d.queue));
    let name = &extra.0;
    // Only the frames h1 sends to the MAC nobody owns: nothing the hosts send by themselves.
    d.ok(&[
        "eval",
        &format!(
            "0 tap.rx.enable 1 tap.rx.enable \"{name}\" tap.queue.add \
             \"ether src {} and ether dst {}\" \"{name}\" tap.queue.filter",
            mac_text(E0_MAC),
            mac_text(NOBODY)
        ),
    ]);
    d.traffic(300);
    let json = d.stats();
    let names: Vec<&str> = json.queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(
        names,
        [d.queue.as_str(), name.as_str()],
        "the default first"
    );
    assert!(json.queues[0].inserted >= 450, "{:?}", json.queues[0]);
    assert_eq!(json.queues[1].inserted, 300, "{:?}", json.queues[1]);
    let status = d.ok(&["eval", "tap.queue.status"]);
    assert!(
        status.contains(&format!("packet queue {}\n", d.queue))
            && status.contains(&format!("packet queue {name}\n")),
        "{status}"
    );
    let list = d.ok(&["eval", "tap.queue.list"]);
    assert!(
        list.starts_with(&format!("{} (default)\n", d.queue)),
        "{list}"
    );
    assert!(list.contains("inserted 300, full 0"), "{list}");
    // The default queue stays; the added one goes, and the reports forget it.
    let refused = d.output(&["eval", &format!("\"{}\" tap.queue.remove", d.queue)]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("default packet queue"),
        "{}",
        text(&refused.stderr)
    );
    d.ok(&["eval", &format!("\"{name}\" tap.queue.remove")]);
    assert_eq!(d.stats().queues.len(), 1);
}
