//! The console server with real unix sockets and a real VM, in-process: the daemon's
//! concurrency and robustness rules without needing an engine.

use ethertap::ctl::client::{Client, Outcome};
use ethertap::ctl::proto::{JsonReport, Reply, Request};
use ethertap::ctl::server::{Host, Server, ServerConfig};
use ethertap::rpcl::Vm;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct TestHost {
    stops: AtomicUsize,
}

impl Host for TestHost {
    fn status(&self) -> String {
        "test host\n".into()
    }
    fn json(&self, _report: JsonReport) -> String {
        "{\"test\":true}".into()
    }
    fn request_stop(&self) {
        self.stops.fetch_add(1, Ordering::SeqCst);
    }
}

struct Lab {
    dir: tempfile::TempDir,
    server: Server,
    host: Arc<TestHost>,
}

impl Lab {
    fn new(config: ServerConfig) -> Lab {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ethertap.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        let host = Arc::new(TestHost {
            stops: AtomicUsize::new(0),
        });
        let mut vm = Vm::new();
        vm.set_budget(50_000_000);
        let server = Server::start(listener, vm, host.clone(), config).expect("server");
        Lab { dir, server, host }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("ethertap.sock")
    }

    fn client(&self) -> Client {
        Client::connect(&self.path())
            .unwrap()
            .expect("daemon socket")
    }
}

fn call(client: &mut Client, req: Request) -> (Outcome, String, String) {
    let never = AtomicBool::new(false);
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    let outcome = client
        .call(&req, &mut out, &mut notes, &never)
        .expect("call");
    (
        outcome,
        String::from_utf8(out).unwrap(),
        String::from_utf8(notes).unwrap(),
    )
}

fn eval(client: &mut Client, line: &str) -> (Outcome, String) {
    let (o, out, _) = call(client, Request::Eval(line.into()));
    (o, out)
}

/// Keeps what it is given and runs `on_write` each time: the test learns that a request
/// has started from its first output, which it sees as it is streamed, not at the end.
struct Watch<F: FnMut(&[u8])> {
    seen: Vec<u8>,
    on_write: F,
}

impl<F: FnMut(&[u8])> Watch<F> {
    fn new(on_write: F) -> Self {
        Watch {
            seen: Vec::new(),
            on_write,
        }
    }
}

impl<F: FnMut(&[u8])> Write for Watch<F> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.seen.extend_from_slice(buf);
        (self.on_write)(&self.seen);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Reads a raw connection's replies until its text has printed: from then on it runs.
fn wait_output(raw: &mut UnixStream) {
    raw.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    loop {
        match Reply::read_from(raw) {
            Ok(Reply::Output(_)) => break,
            Ok(Reply::Notice(_)) => continue,
            other => panic!("the text did not start printing: {other:?}"),
        }
    }
    raw.set_read_timeout(None).unwrap();
}

#[test]
fn eval_and_run_stream_output_and_report_errors() {
    let lab = Lab::new(ServerConfig::default());
    let mut c = lab.client();
    assert_eq!(eval(&mut c, "1 2 + ."), (Outcome::Done, "3\n".into()));
    let (o, out, _) = call(
        &mut c,
        Request::Run {
            file: "t.rpcl".into(),
            source: "\"a\" .\n\n drop\n".into(),
            args: vec![],
        },
    );
    assert_eq!(out, "a\n");
    match o {
        Outcome::Failed(msg) => assert!(msg.starts_with("t.rpcl:3:"), "{msg}"),
        other => panic!("expected an error, got {other:?}"),
    }
    // The same connection goes on working after an error.
    assert_eq!(eval(&mut c, "\"ok\" ."), (Outcome::Done, "ok\n".into()));
}

#[test]
fn clients_have_their_own_stacks_but_share_the_dictionary() {
    let lab = Lab::new(ServerConfig::default());
    let mut a = lab.client();
    let mut b = lab.client();
    assert_eq!(call(&mut a, Request::OpenSession).0, Outcome::Done);
    let (o, _, _) = call(&mut a, Request::Line("41 \"1 +\" inc !!".into()));
    assert_eq!(o, Outcome::Done);
    // b sees the word a defined, but not a's stack.
    assert_eq!(
        eval(&mut b, ".s \"done\" ."),
        (Outcome::Done, "done\n".into())
    );
    assert_eq!(eval(&mut b, "1 inc ."), (Outcome::Done, "2\n".into()));
    let (o, out, _) = call(&mut a, Request::Line("inc .".into()));
    assert_eq!((o, out), (Outcome::Done, "42\n".into()));
}

#[test]
fn one_console_session_at_a_time() {
    let lab = Lab::new(ServerConfig::default());
    let mut a = lab.client();
    let mut b = lab.client();
    assert_eq!(call(&mut a, Request::OpenSession).0, Outcome::Done);
    match call(&mut b, Request::OpenSession).0 {
        Outcome::Refused(msg) => assert!(msg.contains("in use by PID"), "{msg}"),
        other => panic!("second session not refused: {other:?}"),
    }
    // When the holder leaves, the next one gets it.
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match call(&mut b, Request::OpenSession).0 {
            Outcome::Done => break,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            other => panic!("session never freed: {other:?}"),
        }
    }
}

#[test]
fn interrupt_stops_a_runaway_script_and_the_vm_stays_usable() {
    let lab = Lab::new(ServerConfig::default());
    let mut c = lab.client();
    let flag = AtomicBool::new(false);
    // Ctrl-C once the loop runs: one raised before the request starts is not for it, and the
    // loop would then end on its budget instead.
    let mut out = Watch::new(|_: &[u8]| flag.store(true, Ordering::SeqCst));
    let mut notes = Vec::new();
    let outcome = c
        .call(
            &Request::Eval("\"go\" . .fflush begin 0 until".into()),
            &mut out,
            &mut notes,
            &flag,
        )
        .unwrap();
    assert!(
        matches!(&outcome, Outcome::Failed(msg) if msg.contains("interrupted")),
        "{outcome:?}"
    );
    assert_eq!(out.seen, b"go\n");
    assert_eq!(eval(&mut c, "5 ."), (Outcome::Done, "5\n".into()));
}

#[test]
fn a_busy_vm_makes_others_wait_with_a_notice() {
    let lab = Lab::new(ServerConfig::default());
    let mut slow = lab.client();
    let path = lab.path();
    // The slow line computes (holding the VM) until the waiter was told to wait: then this
    // file exists, and loading it pushes a number that ends the loop.
    let told = lab.dir.path().join("told.rpcl");
    let (go_tx, go_rx) = std::sync::mpsc::channel();
    let waiter = {
        let told = told.clone();
        std::thread::spawn(move || {
            // Once the slow line printed, it has the VM.
            go_rx
                .recv_timeout(Duration::from_secs(20))
                .expect("the slow line started");
            let mut c = Client::connect(&path).unwrap().unwrap();
            let never = AtomicBool::new(false);
            let mut out = Vec::new();
            let mut notes = Watch::new(|seen: &[u8]| {
                if String::from_utf8_lossy(seen).contains("waiting") {
                    std::fs::write(&told, "1\n").unwrap();
                }
            });
            let o = c
                .call(
                    &Request::Eval("\"second\" .".into()),
                    &mut out,
                    &mut notes,
                    &never,
                )
                .expect("call");
            (
                o,
                String::from_utf8(out).unwrap(),
                String::from_utf8(notes.seen).unwrap(),
            )
        })
    };
    // Computing holds the VM (waiting would not: see the next test).
    let mut out = Watch::new(|_: &[u8]| {
        let _ = go_tx.send(());
    });
    let never = AtomicBool::new(false);
    let line = format!(
        "\"go\" . .fflush begin \"{}\" load-if-present depth until drop \"first\" .",
        told.display()
    );
    let outcome = slow
        .call(&Request::Eval(line), &mut out, &mut Vec::new(), &never)
        .expect("call");
    assert_eq!(
        (outcome, String::from_utf8(out.seen).unwrap()),
        (Outcome::Done, "go\nfirst\n".into())
    );
    let (o, out, notes) = waiter.join().unwrap();
    assert_eq!((o, out.as_str()), (Outcome::Done, "second\n"));
    assert!(notes.contains("waiting"), "no waiting notice: {notes:?}");
}

/// A script that waits in a loop gives the VM up while it waits: another client's line runs
/// meanwhile, on its own stack; Ctrl-C ends the waiting script at the word that waits, with
/// its stack as it was, and the budget still counts.
#[test]
fn a_waiting_script_does_not_hold_the_vm() {
    let lab = Lab::new(ServerConfig::default());
    let path = lab.path();
    let flag = Arc::new(AtomicBool::new(false));
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let (asleep_tx, asleep_rx) = std::sync::mpsc::channel();
    let sleeper = {
        let flag = flag.clone();
        std::thread::spawn(move || {
            let mut c = Client::connect(&path).unwrap().unwrap();
            let mut out = Watch::new(|_: &[u8]| {
                let _ = asleep_tx.send(());
            });
            let mut notes = Vec::new();
            let outcome = c
                .call(
                    &Request::Run {
                        file: "sleep.rpcl".into(),
                        source: "7 \"asleep\" . .fflush\nbegin 50 ms 0 until\n".into(),
                        args: vec![],
                    },
                    &mut out,
                    &mut notes,
                    &flag,
                )
                .unwrap();
            let _ = done_tx.send(());
            (outcome, String::from_utf8(out.seen).unwrap(), c)
        })
    };
    // The sleeper is in its loop once it printed and then gave the VM up: the only time it
    // does before its end is to wait in `ms`.
    asleep_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the sleeper printed");
    lab.server.with_vm(|_| ());
    let mut other = lab.client();
    let (tx, rx) = std::sync::mpsc::channel();
    let path = lab.path();
    std::thread::spawn(move || {
        let mut c = Client::connect(&path).unwrap().unwrap();
        let _ = tx.send(call(&mut c, Request::Eval("1 2 + dup . .s".into())));
    });
    let (o, out, notes) = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a line of another client runs while a script waits in a loop");
    assert_eq!((o, out.as_str()), (Outcome::Done, "3\n 0 [3]\n"));
    assert!(!notes.contains("waiting"), "the VM was not busy: {notes:?}");
    assert!(
        done_rx.try_recv().is_err(),
        "the sleeping script is still running"
    );
    assert_eq!(eval(&mut other, "\"x\" ."), (Outcome::Done, "x\n".into()));
    flag.store(true, Ordering::SeqCst);
    let (outcome, out, mut c) = sleeper.join().unwrap();
    assert_eq!(out, "asleep\n");
    assert_eq!(
        outcome,
        Outcome::Failed("sleep.rpcl:2:10: error: ms: interrupted".into())
    );
    // The interrupted script's stack was its own; the connection goes on.
    assert_eq!(eval(&mut c, "depth ."), (Outcome::Done, "0\n".into()));

    // A loop that waits pays for its instructions like any other (budget 50 000 000).
    let mut c = lab.client();
    match eval(&mut c, "begin 0 ms 0 until").0 {
        Outcome::Failed(msg) => assert!(msg.contains("budget exhausted"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_client_that_disconnects_mid_script_leaves_the_daemon_healthy() {
    let lab = Lab::new(ServerConfig::default());
    {
        let mut raw = UnixStream::connect(lab.path()).unwrap();
        Request::Eval("\"go\" . .fflush begin 0 until".into())
            .write_to(&mut raw)
            .unwrap();
        // It runs once it printed: leaving earlier would not test a script cut off.
        wait_output(&mut raw);
    }
    let mut c = lab.client();
    assert_eq!(eval(&mut c, "7 ."), (Outcome::Done, "7\n".into()));
}

#[test]
fn a_client_that_never_reads_cannot_hold_the_vm() {
    let lab = Lab::new(ServerConfig {
        write_timeout: Duration::from_millis(500),
        ..ServerConfig::default()
    });
    let mut raw = UnixStream::connect(lab.path()).unwrap();
    Request::Eval("begin \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\" . 0 until".into())
        .write_to(&mut raw)
        .unwrap();
    // Not a single reply more is read once it runs.
    wait_output(&mut raw);
    let mut c = lab.client();
    assert_eq!(eval(&mut c, "8 ."), (Outcome::Done, "8\n".into()));
    drop(raw);
}

#[test]
fn garbage_and_huge_requests_get_an_error_and_the_next_client_is_served() {
    let lab = Lab::new(ServerConfig::default());
    for junk in [b"\x00\x01\x02garbage bytes\xff\xfe".to_vec(), {
        let mut huge = vec![b'E'];
        huge.extend_from_slice(&(64u32 << 20).to_be_bytes());
        huge.extend_from_slice(&[b'x'; 4096]);
        huge
    }] {
        let mut raw = UnixStream::connect(lab.path()).unwrap();
        raw.write_all(&junk).unwrap();
        raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        match Reply::read_from(&mut raw) {
            Ok(Reply::Failed(msg)) => assert!(msg.starts_with("bad request"), "{msg}"),
            other => panic!("expected a bad-request error, got {other:?}"),
        }
        let mut rest = Vec::new();
        let _ = raw.read_to_end(&mut rest);
    }
    let mut c = lab.client();
    assert_eq!(eval(&mut c, "9 ."), (Outcome::Done, "9\n".into()));
}

#[test]
fn status_and_stop_reach_the_host() {
    let lab = Lab::new(ServerConfig::default());
    let mut c = lab.client();
    let (o, out, _) = call(&mut c, Request::Status);
    assert_eq!((o, out.as_str()), (Outcome::Done, "test host\n"));
    assert_eq!(call(&mut c, Request::Stop).0, Outcome::Done);
    // The server answers first (so that the client hears it), then asks the host to stop.
    let deadline = Instant::now() + Duration::from_secs(5);
    while lab.host.stops.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(lab.host.stops.load(Ordering::SeqCst), 1);
    let (o, out, _) = call(&mut c, Request::Json(JsonReport::Stats));
    assert_eq!((o, out.as_str()), (Outcome::Done, "{\"test\":true}\n"));
}

#[test]
fn idle_sessions_are_closed() {
    let lab = Lab::new(ServerConfig {
        idle_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    });
    let mut a = lab.client();
    assert_eq!(call(&mut a, Request::OpenSession).0, Outcome::Done);
    // a stays connected and silent: only its idleness can free the session.
    let mut b = lab.client();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match call(&mut b, Request::OpenSession).0 {
            Outcome::Done => break,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            other => panic!("the idle session was never closed: {other:?}"),
        }
    }
    drop(a);
}
