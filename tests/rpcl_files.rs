//! Every file the language reads is a regular file of at most 1 MiB, opened without blocking:
//! `load` and `load-if-present` in a VM, `ethertap run` and `check` (issue 16, class 1). A
//! device or a FIFO is refused before anything is read, so nothing waits on it.

use ethertap::rpcl::{Vm, MAX_SOURCE};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ethertap");

/// `line` in a fresh VM, in a thread: its error, or a failure if it does not end at once
/// (before the fix `load` of a FIFO waited for a writer, and of /dev/zero ate the memory).
fn eval_at_once(line: String) -> String {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut vm = Vm::new();
        let r = vm.eval_line(&line, &mut Vec::new());
        let _ = tx.send(r.map_err(|e| e.to_string()));
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Err(e)) => e,
        Ok(Ok(())) => panic!("the line succeeded"),
        Err(_) => panic!("the line did not end within 10 s"),
    }
}

fn fifo(dir: &Path) -> String {
    let path = dir.join("pipe.rpcl");
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    path.to_str().unwrap().to_string()
}

#[test]
fn load_refuses_devices_fifos_directories_and_large_files_at_once() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        eval_at_once("\"/dev/zero\" load".into()),
        "error: load: cannot read \"/dev/zero\": not a regular file (it is a character device)"
    );
    let pipe = fifo(dir.path());
    assert_eq!(
        eval_at_once(format!("\"{pipe}\" load")),
        format!("error: load: cannot read \"{pipe}\": not a regular file (it is a FIFO)")
    );
    // Present but unreadable is an error for load-if-present too; only missing is skipped.
    assert_eq!(
        eval_at_once(format!("\"{pipe}\" load-if-present")),
        format!(
            "error: load-if-present: cannot read \"{pipe}\": not a regular file (it is a FIFO)"
        )
    );
    // A symlink is followed to what it names.
    let link = dir.path().join("zero.rpcl");
    std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
    let link = link.to_str().unwrap();
    assert!(eval_at_once(format!("\"{link}\" load")).ends_with("(it is a character device)"));
    let d = dir.path().to_str().unwrap();
    assert!(eval_at_once(format!("\"{d}\" load")).ends_with("(it is a directory)"));

    let big = dir.path().join("big.rpcl");
    std::fs::write(&big, " ".repeat(MAX_SOURCE + 1)).unwrap();
    let big = big.to_str().unwrap();
    assert_eq!(
        eval_at_once(format!("\"{big}\" load")),
        format!(
            "error: load: cannot read \"{big}\": {} bytes is more than the limit of {MAX_SOURCE} bytes for a source file",
            MAX_SOURCE + 1
        )
    );
    // At the limit it loads.
    let fits = dir.path().join("fits.rpcl");
    let mut text = "\"loaded\" .\n".to_string();
    text.push_str(&" ".repeat(MAX_SOURCE - text.len()));
    std::fs::write(&fits, text).unwrap();
    let mut out = Vec::new();
    Vm::new()
        .eval_line(&format!("\"{}\" load", fits.display()), &mut out)
        .unwrap();
    assert_eq!(out, b"loaded\n");
}

/// `ethertap ARGS` that must end within 10 s: its stderr and status.
fn ethertap_at_once(args: &[&str]) -> (String, Option<i32>) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .env("ETHERTAP_RUN_DIR", dir.path())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("ethertap {args:?} did not end within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stderr: String = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.starts_with("ethertap: no daemon running;"))
        .map(|l| format!("{l}\n"))
        .collect();
    (stderr, out.status.code())
}

#[test]
fn run_and_check_refuse_devices_fifos_and_large_files_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let pipe = fifo(dir.path());
    for cmd in ["run", "check"] {
        assert_eq!(
            ethertap_at_once(&[cmd, "/dev/zero"]),
            (
                "ethertap: cannot read /dev/zero: not a regular file (it is a character device)\n"
                    .into(),
                Some(1)
            )
        );
        assert_eq!(
            ethertap_at_once(&[cmd, &pipe]),
            (
                format!("ethertap: cannot read {pipe}: not a regular file (it is a FIFO)\n"),
                Some(1)
            )
        );
    }
    let big = dir.path().join("big.rpcl");
    std::fs::write(&big, "1 drop\n".repeat(MAX_SOURCE / 7 + 1)).unwrap();
    let (err, code) = ethertap_at_once(&["run", big.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(
        err.ends_with(&format!(
            "bytes is more than the limit of {MAX_SOURCE} bytes for a source file\n"
        )),
        "{err}"
    );
}
