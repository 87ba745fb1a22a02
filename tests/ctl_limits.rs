//! The console server's limits (issue 16, item 6), in-process with real unix sockets: more
//! connections than the cap are refused with a clear reason, idle connections are really
//! closed at the timeout (their threads and descriptors freed), and requests queued while the
//! VM is busy cannot raise the memory without bound. One test in its own binary, so that the
//! counts of threads and descriptors of this process are its alone.

use ethertap::ctl::proto::{JsonReport, Reply, Request, MAX_FRAME};
use ethertap::ctl::server::{Host, Server, ServerConfig};
use ethertap::rpcl::Vm;
use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct TestHost;

impl Host for TestHost {
    fn status(&self) -> String {
        String::new()
    }
    fn json(&self, _: JsonReport) -> String {
        "{}".into()
    }
    fn request_stop(&self) {}
}

fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).expect(dir).count()
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start_server(dir: &tempfile::TempDir, config: ServerConfig) -> Server {
    let listener = UnixListener::bind(dir.path().join("s")).unwrap();
    Server::start(listener, Vm::new(), Arc::new(TestHost), config).unwrap()
}

#[test]
fn connections_are_capped_idle_ones_closed_and_queued_requests_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let server = start_server(
        &dir,
        ServerConfig {
            idle_timeout: Duration::from_millis(800),
            max_connections: 4,
            ..ServerConfig::default()
        },
    );
    // Settle: the accept thread and the harness' threads exist now.
    std::thread::sleep(Duration::from_millis(100));
    let (fds, threads) = (count("/proc/self/fd"), count("/proc/self/task"));

    let idle: Vec<UnixStream> = (0..4)
        .map(|_| UnixStream::connect(&path).unwrap())
        .collect();
    wait_for("4 connections", Duration::from_secs(5), || {
        server.connections() == 4
    });
    let mut fifth = UnixStream::connect(&path).unwrap();
    fifth
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    match Reply::read_from(&mut fifth) {
        Ok(Reply::Failed(msg)) => assert!(msg.contains("at most 4 console connections"), "{msg}"),
        other => panic!("the fifth connection was not refused: {other:?}"),
    }
    drop(fifth);

    // Idle past the timeout: each gets the notice and the end of the stream, and the server
    // holds nothing for them any more.
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        match Reply::read_from(&mut s) {
            Ok(Reply::Notice(msg)) => assert!(msg.contains("without input"), "{msg}"),
            other => panic!("no idle notice: {other:?}"),
        }
        assert!(
            Reply::read_from(&mut s).is_err(),
            "the server closed the connection"
        );
    }
    wait_for("the connections to end", Duration::from_secs(5), || {
        server.connections() == 0
    });
    wait_for(
        "the threads and descriptors to be freed",
        Duration::from_secs(5),
        || count("/proc/self/task") == threads && count("/proc/self/fd") == fds,
    );
    drop(server);

    // 200 requests of 4 MB queued behind a VM that is busy: what the server reads and keeps
    // is bounded by its request budget, not by what the clients send.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let server = Arc::new(start_server(
        &dir,
        ServerConfig {
            max_connections: 64,
            ..ServerConfig::default()
        },
    ));
    let mut frame = Vec::new();
    Request::Eval(format!("\\ {}", "x".repeat(MAX_FRAME - 8)))
        .write_to(&mut frame)
        .unwrap();
    let frame = Arc::new(frame);
    let before = rss_kib();
    let hold = {
        let server = server.clone();
        std::thread::spawn(move || {
            server.with_vm(|_| std::thread::sleep(Duration::from_secs(4)));
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let clients: Vec<_> = (0..50)
        .map(|_| {
            let frame = frame.clone();
            let path = path.clone();
            std::thread::spawn(move || {
                let mut s = UnixStream::connect(&path).unwrap();
                s.set_write_timeout(Some(Duration::from_secs(6))).unwrap();
                for _ in 0..4 {
                    if s.write_all(&frame).is_err() {
                        break;
                    }
                }
                s
            })
        })
        .collect();
    let mut peak = before;
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        peak = peak.max(rss_kib());
        std::thread::sleep(Duration::from_millis(25));
    }
    let grew_mib = (peak.saturating_sub(before)) / 1024;
    assert!(
        grew_mib < 96,
        "200 queued 4 MB requests raised the RSS by {grew_mib} MiB (budget 32 MiB)"
    );
    hold.join().unwrap();
    for c in clients {
        drop(c.join());
    }
}
