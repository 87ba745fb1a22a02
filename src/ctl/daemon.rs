//! Going to the background.
//!
//! The parent does not exit as soon as it has forked: it waits until the daemon says it is
//! ready (engine started, preset run, socket listening) or why it failed, so that
//! `ethertap start -d` reports a wrong interface or a missing XDP driver on the terminal with
//! the right exit status instead of in a log file nobody reads.

use anyhow::{bail, Context};
use nix::unistd::{dup2_stderr, dup2_stdin, dup2_stdout, fork, pipe, setsid, ForkResult};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;

/// The daemon's end of the start-up report.
pub struct Readiness {
    pipe: Option<File>,
}

impl Readiness {
    /// Start-up succeeded; `msg` is printed by the waiting parent.
    pub fn ready(mut self, msg: &str) {
        self.report(&format!("ok {msg}"));
    }

    /// Start-up failed; `msg` is printed by the parent, which exits 1.
    pub fn failed(mut self, msg: &str) {
        self.report(&format!("error {msg}"));
    }

    fn report(&mut self, line: &str) {
        if let Some(mut p) = self.pipe.take() {
            let _ = p.write_all(line.as_bytes());
        }
    }
}

/// Fork twice, start a new session, change to `/`, send output to `log`. Returns in the
/// daemon only; the original process waits for the [`Readiness`] report and exits with it.
/// Must be called before any thread is started.
pub fn detach(log: &Path) -> anyhow::Result<Readiness> {
    let log_file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open log file {}", log.display()))?;
    let (read_end, write_end) = pipe().context("pipe")?;
    // SAFETY: no other thread runs yet (documented precondition), so the child may continue
    // with arbitrary code.
    match unsafe { fork() }.context("fork")? {
        ForkResult::Parent { .. } => {
            drop(write_end);
            wait_for_report(read_end)
        }
        ForkResult::Child => {
            drop(read_end);
            setsid().context("setsid")?;
            // SAFETY: as above, still single-threaded.
            if let ForkResult::Parent { .. } = unsafe { fork() }.context("fork")? {
                std::process::exit(0);
            }
            std::env::set_current_dir("/").context("chdir /")?;
            let devnull = File::open("/dev/null").context("/dev/null")?;
            dup2_stdin(&devnull).context("stdin")?;
            dup2_stdout(&log_file).context("stdout")?;
            dup2_stderr(&log_file).context("stderr")?;
            Ok(Readiness {
                pipe: Some(File::from(write_end)),
            })
        }
    }
}

fn wait_for_report(read_end: OwnedFd) -> ! {
    let mut report = String::new();
    let _ = File::from(read_end).read_to_string(&mut report);
    match report.split_once(' ') {
        Some(("ok", msg)) => {
            println!("{msg}");
            std::process::exit(0)
        }
        Some(("error", msg)) => {
            eprintln!("{msg}");
            std::process::exit(1)
        }
        _ => {
            eprintln!("the daemon exited during start-up without a report; see its log file");
            std::process::exit(1)
        }
    }
}

/// Where the daemon's output goes: `$ETHERTAP_LOG`, else `/var/log/ethertap.log`.
pub fn log_path() -> std::path::PathBuf {
    std::env::var_os("ETHERTAP_LOG")
        .map(Into::into)
        .unwrap_or_else(|| "/var/log/ethertap.log".into())
}

/// Refuse to start when the socket answers: a daemon already runs.
pub fn ensure_not_running(socket: &Path, pid_hint: Option<i32>) -> anyhow::Result<()> {
    if std::os::unix::net::UnixStream::connect(socket).is_ok() {
        match pid_hint {
            Some(pid) => bail!("ethertap is already running (PID {pid}); `ethertap stop` first"),
            None => bail!(
                "ethertap is already running ({} answers); `ethertap stop` first",
                socket.display()
            ),
        }
    }
    Ok(())
}
