//! Going to the background.
//!
//! The parent does not exit as soon as it has forked: it waits until the background process
//! says it is ready (for ethertap: engine started, preset run, socket listening) or why it
//! failed, so that `ethertap start -d` or `collect -d` reports a wrong interface or a bad
//! output file on the terminal, with the right exit status, instead of in a log nobody reads.

use nix::unistd::{dup2_stderr, dup2_stdin, dup2_stdout, fork, pipe, setsid, ForkResult};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// The background process's end of the start-up report; reports once.
pub struct Detached {
    ready: Option<File>,
}

impl Detached {
    /// Start-up succeeded; the waiting parent prints `msg` (if not empty) and exits 0.
    pub fn started(&mut self, msg: &str) {
        self.report(&format!("ok {msg}"));
    }

    /// Start-up failed; the waiting parent prints `msg` and exits 1.
    pub fn failed(&mut self, msg: &str) {
        self.report(&format!("error {msg}"));
    }

    fn report(&mut self, line: &str) {
        if let Some(mut p) = self.ready.take() {
            let _ = p.write_all(line.as_bytes());
        }
    }
}

/// Fork twice, start a new session, change to `/`, stdin from /dev/null and stdout/stderr to
/// `log` (or /dev/null). Returns in the background process only; the original process waits
/// for the [`Detached`] report and exits with it. Must be called before any thread starts.
pub fn detach(log: Option<&Path>) -> Result<Detached, String> {
    let output = match log {
        Some(path) => OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?,
        None => OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .map_err(|e| format!("/dev/null: {e}"))?,
    };
    let (read_end, write_end) = pipe().map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: no other thread runs yet (documented precondition), so the child may go on
    // running arbitrary code.
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Parent { .. } => {
            drop(write_end);
            wait_for_report(read_end)
        }
        ForkResult::Child => {}
    }
    drop(read_end);
    setsid().map_err(|e| format!("setsid: {e}"))?;
    // SAFETY: as above, still single-threaded.
    if let ForkResult::Parent { .. } = unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        // SAFETY: leave without running destructors or flushing stdio buffers twice.
        unsafe { libc::_exit(0) };
    }
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))?;
    let devnull = File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
    dup2_stdin(&devnull).map_err(|e| format!("stdin: {e}"))?;
    dup2_stdout(&output).map_err(|e| format!("stdout: {e}"))?;
    dup2_stderr(&output).map_err(|e| format!("stderr: {e}"))?;
    Ok(Detached {
        ready: Some(File::from(write_end)),
    })
}

fn wait_for_report(read_end: OwnedFd) -> ! {
    let mut report = String::new();
    let _ = File::from(read_end).read_to_string(&mut report);
    let (status, msg) = report.split_once(' ').unwrap_or((report.as_str(), ""));
    match status {
        "ok" => {
            if !msg.is_empty() {
                println!("{msg}");
            }
            std::process::exit(0)
        }
        "error" => {
            eprintln!("{msg}");
            std::process::exit(1)
        }
        _ => {
            eprintln!("the background process exited during start-up without a report");
            std::process::exit(1)
        }
    }
}

/// Where the ethertap daemon's output goes: `$ETHERTAP_LOG`, else `/var/log/ethertap.log`.
pub fn log_path() -> PathBuf {
    std::env::var_os("ETHERTAP_LOG")
        .filter(|v| !v.is_empty())
        .map(Into::into)
        .unwrap_or_else(|| "/var/log/ethertap.log".into())
}
