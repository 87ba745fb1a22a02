//! `collect -d` in the background, driven by `control ID status|stop`, with the runtime
//! directory redirected by ETHERTAP_RUN_DIR.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ethertap::ctl::pidfile;
use ethertap::pqueue::{queue_path, testgen, Direction, Layout, Producer};

const COLLECT: &str = env!("CARGO_BIN_EXE_collect");
const CONTROL: &str = env!("CARGO_BIN_EXE_control");

struct Lab {
    queue: String,
    run_dir: PathBuf,
    id: String,
}

impl Lab {
    fn new(test: &str) -> Lab {
        let id = format!("t{test}{}", std::process::id());
        let queue = format!("pqtest.daemon-{test}.{}", std::process::id());
        let run_dir =
            std::env::temp_dir().join(format!("pqtest-run-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&run_dir);
        std::fs::create_dir_all(&run_dir).unwrap();
        Lab { queue, run_dir, id }
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        Command::new(program)
            .args(args)
            .env("ETHERTAP_RUN_DIR", &self.run_dir)
            .output()
            .unwrap()
    }

    fn pid_file(&self) -> PathBuf {
        self.run_dir.join(format!("collect.{}.pid", self.id))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // A background collect left by a failed test: stop it by its pid.
        if let Some(pid) = pidfile::running_pid(&self.pid_file()) {
            // SAFETY: kill(2) on the collect this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = std::fs::remove_file(queue_path(&self.queue));
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).trim().to_string(),
        String::from_utf8_lossy(&o.stderr).trim().to_string(),
    )
}

#[test]
fn background_collect_is_reported_and_stopped_by_control() {
    let lab = Lab::new("bg");
    let p = Producer::open(&lab.queue, Layout::default()).unwrap();
    let out = lab.run_dir.join("bg.pcap");
    let out = out.to_str().unwrap();
    let o = lab.run(COLLECT, &["-d", "--id", &lab.id, "-q", &lab.queue, out]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stdout} {stderr}");
    assert_eq!(stdout, "collect going to background ...");
    let pid = pidfile::read_pid(&lab.pid_file())
        .unwrap()
        .expect("pid file written");
    assert!(ethertap::sys::is_alive(pid));

    let o = lab.run(CONTROL, &[&lab.id, "status"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(text(&o).0, format!("collect PID {pid} running"));

    // A second collector with the same id is refused, naming the first.
    let o = lab.run(COLLECT, &["-d", "--id", &lab.id, "-q", &lab.queue, out]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o)
            .1
            .contains(&format!("already running as PID {pid}")),
        "{:?}",
        text(&o)
    );

    let mut f = testgen::frame(200, 1);
    for s in 0..500 {
        testgen::set_seq(&mut f, s);
        assert!(p.push(&f, 0, Direction::Rx, 0));
    }
    let start = Instant::now();
    while ethertap::pqueue::Queue::attach(&lab.queue)
        .unwrap()
        .status()
        .unwrap()
        .retrieved
        < 500
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "background collect does not read"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    let o = lab.run(CONTROL, &[&lab.id, "stop"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    assert_eq!(
        text(&o).0,
        format!("shutdown of collect PID {pid} complete")
    );
    assert!(!ethertap::sys::is_alive(pid));
    assert!(!lab.pid_file().exists(), "pid file removed");

    let ts = Command::new("tshark")
        .args(["-r", out, "-T", "fields", "-e", "frame.len"])
        .output()
        .expect("tshark is needed for this test");
    assert!(
        ts.status.success(),
        "{}",
        String::from_utf8_lossy(&ts.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ts.stdout).lines().count(), 500);

    let o = lab.run(CONTROL, &[&lab.id, "status"]);
    assert_eq!(o.status.code(), Some(pidfile::NOT_RUNNING));
    assert!(
        text(&o).1.starts_with("collect is not running"),
        "{:?}",
        text(&o)
    );
    let o = lab.run(CONTROL, &[&lab.id, "stop"]);
    assert_eq!(o.status.code(), Some(pidfile::NOT_RUNNING));
}

#[test]
fn control_without_an_action_explains_itself() {
    let lab = Lab::new("noaction");
    let o = lab.run(CONTROL, &["collect"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).1.contains("control collect status"),
        "{:?}",
        text(&o)
    );
    let o = lab.run(CONTROL, &["-v"]);
    assert!(o.status.success());
    assert!(text(&o).0.starts_with("control "));
    let o = lab.run(CONTROL, &["-c"]);
    assert!(text(&o).0.contains("Copyright"));
}
